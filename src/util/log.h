/*
 * log.h — levelled, one-line-per-event logging to stderr.
 *
 * Every line carries a request id ("-" when the event belongs to no
 * request).  Two formats: text (human) and json (one object per line,
 * for log shippers).  Lines are written with a single write(2) so lines
 * from different threads never interleave.  Callers must never pass
 * secrets (provider keys, client keys, passwords, tokens) to these
 * functions: nothing here can redact them.
 */
#ifndef FUSION_UTIL_LOG_H
#define FUSION_UTIL_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_TEXT = 0, LOG_JSON };

/* Set level and format; call once before threads start. Defaults: info, text. */
void log_setup(enum log_level level, enum log_format format);

/* Parse "debug|info|warn|error" / "text|json". Return 0 or -1. */
int log_level_parse(const char *s, enum log_level *out);
int log_format_parse(const char *s, enum log_format *out);

bool log_enabled(enum log_level level);

/* Write one line. request_id may be NULL ("-"). The message is truncated at 8 KiB. */
void log_msg(enum log_level level, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(rid, ...)                                                                                  \
	do {                                                                                                 \
		if (log_enabled(LOG_DEBUG))                                                                  \
			log_msg(LOG_DEBUG, rid, __VA_ARGS__);                                                \
	} while (0)
#define log_info(rid, ...) log_msg(LOG_INFO, rid, __VA_ARGS__)
#define log_warn(rid, ...) log_msg(LOG_WARN, rid, __VA_ARGS__)
#define log_error(rid, ...) log_msg(LOG_ERROR, rid, __VA_ARGS__)

#endif
