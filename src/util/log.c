/*
 * log.c — see log.h.
 *
 * The level and format are plain globals set once at start-up, before
 * any thread exists, and only read afterwards.
 */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192

static enum log_level g_level = LOG_INFO;
static enum log_format g_format = LOG_TEXT;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_setup(enum log_level level, enum log_format format)
{
	g_level = level;
	g_format = format;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*out = LOG_WARN;
		return 0;
	}
	return -1;
}

int log_format_parse(const char *s, enum log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = LOG_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_JSON;
	else
		return -1;
	return 0;
}

bool log_enabled(enum log_level level)
{
	return level >= g_level;
}

/* Append s to out as JSON string content (no quotes). Returns new length. */
static size_t json_escape(char *out, size_t len, size_t cap, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	for (; *s && len + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[len++] = '\\';
			out[len++] = (char)c;
		} else if (c == '\n') {
			out[len++] = '\\';
			out[len++] = 'n';
		} else if (c < 0x20 || c == 0x7f) {
			out[len++] = '\\';
			out[len++] = 'u';
			out[len++] = '0';
			out[len++] = '0';
			out[len++] = hex[c >> 4];
			out[len++] = hex[c & 15];
		} else {
			out[len++] = (char)c;
		}
	}
	return len;
}

/* Replace control characters so one event stays one line. */
static void sanitize_text(char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f)
			*s = ' ';
	}
}

void log_msg(enum log_level level, const char *request_id, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;

	char msg[LOG_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[40];
	size_t wl = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + wl, sizeof(when) - wl, ".%03ldZ", ts.tv_nsec / 1000000);

	const char *rid = request_id && *request_id ? request_id : "-";
	char line[LOG_LINE_MAX + 256];
	size_t len;
	if (g_format == LOG_JSON) {
		len =
		    (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"request_id\":\"",
		                     when, level_names[level]);
		len = json_escape(line, len, sizeof(line) - 16, rid);
		len += (size_t)snprintf(line + len, sizeof(line) - len, "\",\"msg\":\"");
		len = json_escape(line, len, sizeof(line) - 4, msg);
		line[len++] = '"';
		line[len++] = '}';
		line[len++] = '\n';
	} else {
		sanitize_text(msg);
		int n = snprintf(line, sizeof(line), "%s %-5s [%s] %s\n", when, level_names[level], rid, msg);
		len = n < 0 ? 0 : (size_t)n;
		if (len >= sizeof(line)) {
			len = sizeof(line) - 1;
			line[len - 1] = '\n';
		}
	}
	/* One write per line; a short write to stderr is not worth retrying. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}
