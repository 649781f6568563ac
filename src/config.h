/*
 * config.h — process configuration from environment variables and
 * command-line flags.
 *
 * Every setting has an environment variable (PORT) and a flag twin
 * (--port); a flag wins over the variable, the variable over the
 * default.  Values are validated at start: anything invalid is refused
 * with a message naming the setting, and the process exits non-zero.
 * The parsed struct is immutable after start-up and shared read-only by
 * all threads.
 */
#ifndef FUSION_CONFIG_H
#define FUSION_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "util/log.h"

struct config {
	char *listen_addr; /* owned */
	char *db_path;     /* owned */
	int port;          /* 0 = pick a free port (tests) */
	int workers;
	enum log_level log_level;
	enum log_format log_format;
	uint64_t max_body_bytes;
	uint64_t max_header_bytes;
	int max_connections;
	int header_timeout_ms;   /* whole request head must arrive within this */
	int body_timeout_ms;     /* whole request body must arrive within this */
	int idle_timeout_ms;     /* keep-alive idle / per-read inactivity */
	int shutdown_timeout_ms; /* bound on draining in-flight requests */
	int session_ttl_hours;   /* admin login session lifetime */
};

enum config_result {
	CONFIG_OK = 0,
	CONFIG_EXIT_OK = 1, /* --help / --version printed: exit 0 */
	CONFIG_ERROR = -1,  /* message written to err */
};

/*
 * Fill cfg from defaults, then `env` (a NULL-terminated environ-style
 * array; pass `environ`), then argv.  On CONFIG_ERROR a one-line message
 * is in err.  --help/--version text goes to stdout.
 */
enum config_result config_load(struct config *cfg, int argc, char **argv, char **env, char *err,
                               size_t errlen);
void config_free(struct config *cfg);

/* Parse a byte size: digits with an optional k/m/g suffix (powers of 1024,
 * also "KiB"/"MB" spellings).  Returns 0 or -1. */
int config_parse_bytes(const char *s, uint64_t *out);

/* Parse a decimal integer in [min, max] with no trailing junk. Returns 0 or -1. */
int config_parse_int(const char *s, long long min, long long max, long long *out);

#endif
