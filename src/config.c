/*
 * config.c — see config.h.
 *
 * One table (options[]) names every setting once: its variable, its
 * flag, its default, its help line and the parser that validates it.
 * --help is generated from the same table, so the three can't drift.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/alloc.h"

#include "version.h"

typedef int (*opt_parse_fn)(struct config *cfg, const char *value, char *why, size_t whylen);

struct option_def {
	const char *env;
	const char *flag; /* without leading "--" */
	const char *def;  /* NULL: computed (see apply_defaults) */
	const char *help;
	opt_parse_fn parse;
};

int config_parse_int(const char *s, long long min, long long max, long long *out)
{
	if (!s || !*s || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	char *end = NULL;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int config_parse_bytes(const char *s, uint64_t *out)
{
	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end = NULL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	unsigned shift = 0;
	if (*end) {
		switch (tolower((unsigned char)*end)) {
		case 'b':
			shift = 0;
			break;
		case 'k':
			shift = 10;
			break;
		case 'm':
			shift = 20;
			break;
		case 'g':
			shift = 30;
			break;
		default:
			return -1;
		}
		end++;
		/* Accept "k", "kb", "kib" (all binary). */
		if (shift && (*end == 'i' || *end == 'I'))
			end++;
		if (shift && (*end == 'b' || *end == 'B'))
			end++;
		if (*end)
			return -1;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_port(struct config *cfg, const char *v, char *why, size_t n)
{
	long long x;
	if (config_parse_int(v, 0, 65535, &x)) {
		snprintf(why, n, "must be an integer from 0 to 65535");
		return -1;
	}
	cfg->port = (int)x;
	return 0;
}

static int parse_listen(struct config *cfg, const char *v, char *why, size_t n)
{
	unsigned char tmp[16];
	if (inet_pton(AF_INET, v, tmp) != 1 && inet_pton(AF_INET6, v, tmp) != 1) {
		snprintf(why, n, "must be an IPv4 or IPv6 address such as 0.0.0.0, 127.0.0.1 or ::");
		return -1;
	}
	free(cfg->listen_addr);
	cfg->listen_addr = xstrdup(v);
	return 0;
}

static int parse_db(struct config *cfg, const char *v, char *why, size_t n)
{
	if (!*v) {
		snprintf(why, n, "must not be empty");
		return -1;
	}
	free(cfg->db_path);
	cfg->db_path = xstrdup(v);
	return 0;
}

static int parse_workers(struct config *cfg, const char *v, char *why, size_t n)
{
	long long x;
	if (config_parse_int(v, 1, 256, &x)) {
		snprintf(why, n, "must be an integer from 1 to 256");
		return -1;
	}
	cfg->workers = (int)x;
	return 0;
}

static int parse_level(struct config *cfg, const char *v, char *why, size_t n)
{
	if (log_level_parse(v, &cfg->log_level)) {
		snprintf(why, n, "must be one of debug, info, warn, error");
		return -1;
	}
	return 0;
}

static int parse_format(struct config *cfg, const char *v, char *why, size_t n)
{
	if (log_format_parse(v, &cfg->log_format)) {
		snprintf(why, n, "must be text or json");
		return -1;
	}
	return 0;
}

static int parse_size(uint64_t *dst, const char *v, uint64_t min, uint64_t max, char *why, size_t n)
{
	uint64_t x;
	if (config_parse_bytes(v, &x) || x < min || x > max) {
		snprintf(why, n, "must be a size from %llu to %llu bytes (suffixes k, m, g allowed)",
		         (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*dst = x;
	return 0;
}

static int parse_body(struct config *cfg, const char *v, char *why, size_t n)
{
	return parse_size(&cfg->max_body_bytes, v, 1024, 1ULL << 30, why, n);
}

static int parse_header(struct config *cfg, const char *v, char *why, size_t n)
{
	return parse_size(&cfg->max_header_bytes, v, 1024, 1ULL << 20, why, n);
}

static int parse_ms(int *dst, const char *v, long long min, long long max, char *why, size_t n)
{
	long long x;
	if (config_parse_int(v, min, max, &x)) {
		snprintf(why, n, "must be a number of milliseconds from %lld to %lld", min, max);
		return -1;
	}
	*dst = (int)x;
	return 0;
}

static int parse_header_timeout(struct config *cfg, const char *v, char *why, size_t n)
{
	return parse_ms(&cfg->header_timeout_ms, v, 100, 600000, why, n);
}

static int parse_body_timeout(struct config *cfg, const char *v, char *why, size_t n)
{
	return parse_ms(&cfg->body_timeout_ms, v, 100, 3600000, why, n);
}

static int parse_idle_timeout(struct config *cfg, const char *v, char *why, size_t n)
{
	return parse_ms(&cfg->idle_timeout_ms, v, 100, 3600000, why, n);
}

static int parse_shutdown_timeout(struct config *cfg, const char *v, char *why, size_t n)
{
	return parse_ms(&cfg->shutdown_timeout_ms, v, 0, 3600000, why, n);
}

static int parse_max_conns(struct config *cfg, const char *v, char *why, size_t n)
{
	long long x;
	if (config_parse_int(v, 1, 1000000, &x)) {
		snprintf(why, n, "must be an integer from 1 to 1000000");
		return -1;
	}
	cfg->max_connections = (int)x;
	return 0;
}

static int parse_session_ttl(struct config *cfg, const char *v, char *why, size_t n)
{
	long long x;
	if (config_parse_int(v, 1, 8760, &x)) {
		snprintf(why, n, "must be a number of hours from 1 to 8760");
		return -1;
	}
	cfg->session_ttl_hours = (int)x;
	return 0;
}

static const struct option_def options[] = {
	{ "PORT", "port", "8080", "TCP port to listen on (0 picks a free port)", parse_port },
	{ "LISTEN_ADDR", "listen-addr", "0.0.0.0", "address to listen on", parse_listen },
	{ "DB_PATH", "db-path", "fusion.db", "SQLite database file", parse_db },
	{ "WORKERS", "workers", NULL, "worker threads (default: number of CPUs)", parse_workers },
	{ "LOG_LEVEL", "log-level", "info", "debug, info, warn or error", parse_level },
	{ "LOG_FORMAT", "log-format", "text", "text or json", parse_format },
	{ "MAX_BODY_BYTES", "max-body-bytes", "32m", "largest request body accepted (413 above)",
	  parse_body },
	{ "MAX_HEADER_BYTES", "max-header-bytes", "32k", "largest request head accepted (431 above)",
	  parse_header },
	{ "MAX_CONNECTIONS", "max-connections", "10000", "client connections held at once (503 above)",
	  parse_max_conns },
	{ "HEADER_TIMEOUT_MS", "header-timeout-ms", "10000", "time allowed to send a whole request head",
	  parse_header_timeout },
	{ "BODY_TIMEOUT_MS", "body-timeout-ms", "60000", "time allowed to send a whole request body",
	  parse_body_timeout },
	{ "IDLE_TIMEOUT_MS", "idle-timeout-ms", "60000", "keep-alive idle time before a connection is closed",
	  parse_idle_timeout },
	{ "SESSION_TTL_HOURS", "session-ttl-hours", "168",
	  "admin login sessions expire after this many hours", parse_session_ttl },
	{ "SHUTDOWN_TIMEOUT_MS", "shutdown-timeout-ms", "30000",
	  "on SIGTERM, how long in-flight requests may take to finish", parse_shutdown_timeout },
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static void print_help(void)
{
	printf("Fusion %s — LLM gateway: one OpenAI-compatible API in front of many providers.\n\n"
	       "Usage: fusion [--flag=value ...]\n\n"
	       "Each setting is read from an environment variable or its flag twin; the flag wins.\n\n",
	       FUSION_VERSION);
	for (size_t i = 0; i < N_OPTIONS; i++) {
		char flag[64];
		snprintf(flag, sizeof(flag), "--%s", options[i].flag);
		printf("  %-22s %-20s %s", flag, options[i].env, options[i].help);
		if (options[i].def)
			printf(" [%s]", options[i].def);
		printf("\n");
	}
	printf("\n  %-22s %-20s %s\n  %-22s %-20s %s\n", "--help", "", "show this help", "--version", "",
	       "print the version and exit");
}

static const char *env_get(char **env, const char *name)
{
	size_t n = strlen(name);
	for (char **e = env; e && *e; e++) {
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	}
	return NULL;
}

static int apply(struct config *cfg, const struct option_def *o, const char *value, const char *source,
                 char *err, size_t errlen)
{
	char why[160] = "";
	if (o->parse(cfg, value, why, sizeof(why)) == 0)
		return 0;
	/* Values here are never secrets, so echoing them (bounded) helps the operator. */
	snprintf(err, errlen, "invalid %s '%.64s'%s: %s", o->env, value, source, why);
	return -1;
}

enum config_result config_load(struct config *cfg, int argc, char **argv, char **env, char *err,
                               size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	cfg->workers = cpus < 1 ? 1 : cpus > 256 ? 256 : (int)cpus;

	/* Flags first, so that only the value in effect is validated. */
	const char *flag_value[N_OPTIONS] = { 0 };
	for (int a = 1; a < argc; a++) {
		const char *arg = argv[a];
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			print_help();
			return CONFIG_EXIT_OK;
		}
		if (strcmp(arg, "--version") == 0) {
			printf("fusion %s (%s), allocator %s\n", FUSION_VERSION, FUSION_REV,
			       alloc_allocator());
			return CONFIG_EXIT_OK;
		}
		if (strncmp(arg, "--", 2) != 0) {
			snprintf(err, errlen, "unexpected argument '%.64s' (see --help)", arg);
			return CONFIG_ERROR;
		}
		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		size_t found = N_OPTIONS;
		for (size_t i = 0; i < N_OPTIONS; i++) {
			if (strlen(options[i].flag) == nlen && strncmp(options[i].flag, name, nlen) == 0)
				found = i;
		}
		if (found == N_OPTIONS) {
			snprintf(err, errlen, "unknown flag '%.64s' (see --help)", arg);
			return CONFIG_ERROR;
		}
		const char *value = eq ? eq + 1 : NULL;
		if (!value) {
			if (a + 1 >= argc) {
				snprintf(err, errlen, "flag --%s needs a value", options[found].flag);
				return CONFIG_ERROR;
			}
			value = argv[++a];
		}
		flag_value[found] = value;
	}

	for (size_t i = 0; i < N_OPTIONS; i++) {
		const char *v = flag_value[i];
		const char *source = " (from command line)";
		if (!v) {
			v = env_get(env, options[i].env);
			source = " (from environment)";
		}
		if (!v) {
			v = options[i].def;
			source = " (default)";
		}
		if (v && apply(cfg, &options[i], v, source, err, errlen))
			return CONFIG_ERROR;
	}
	return CONFIG_OK;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free(cfg->listen_addr);
	free(cfg->db_path);
	cfg->listen_addr = NULL;
	cfg->db_path = NULL;
}
