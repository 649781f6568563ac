/*
 * settings.h — the operator-tunable settings stored in the database.
 *
 * One table (settings.c) names each setting once with its type, range
 * and default; the admin API validates and stores through it, and the
 * configuration snapshot carries the values to every worker, so a
 * change applies to the next request without a restart.
 */
#ifndef FUSION_SETTINGS_H
#define FUSION_SETTINGS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct store;

struct settings {
	bool log_body_enabled;      /* keep request/response bodies in request logs */
	int64_t log_body_max_bytes; /* per body */
	int64_t log_retention_days;
	int64_t health_check_interval_seconds;
	int64_t max_attempts;       /* upstream attempts per request, failover included */
	int64_t default_max_tokens; /* sent to a provider that requires max_tokens (Anthropic)
	                               when the client gave none */
};

enum setting_kind { SETTING_BOOL, SETTING_INT };

struct setting_def {
	const char *key;
	enum setting_kind kind;
	int64_t min, max, def;
	size_t offset; /* into struct settings */
};

extern const struct setting_def settings_defs[];
extern const size_t settings_ndefs;

/* Defaults for every setting. */
void settings_defaults(struct settings *s);

/* Read the stored values over the defaults (unknown or malformed rows are
 * ignored).  0 or a negative STORE_E* code. */
int settings_load(struct store *st, struct settings *out);

int64_t settings_get(const struct settings *s, const struct setting_def *d);
void settings_set(struct settings *s, const struct setting_def *d, int64_t v);

#endif
