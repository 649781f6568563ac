/*
 * settings.c — see settings.h.
 */
#include "settings.h"

#include <stddef.h>
#include <string.h>

#include "store/store.h"

#define OFF(f) offsetof(struct settings, f)

const struct setting_def settings_defs[] = {
	{ "log_body_enabled", SETTING_BOOL, 0, 1, 1, OFF(log_body_enabled) },
	{ "log_body_max_bytes", SETTING_INT, 0, 16 * 1024 * 1024, 64 * 1024, OFF(log_body_max_bytes) },
	{ "log_retention_days", SETTING_INT, 1, 3650, 30, OFF(log_retention_days) },
	{ "health_check_interval_seconds", SETTING_INT, 0, 86400, 60, OFF(health_check_interval_seconds) },
	{ "max_attempts", SETTING_INT, 1, 10, 5, OFF(max_attempts) },
	{ "default_max_tokens", SETTING_INT, 1, 1000000, 4096, OFF(default_max_tokens) },
};

const size_t settings_ndefs = sizeof(settings_defs) / sizeof(settings_defs[0]);

int64_t settings_get(const struct settings *s, const struct setting_def *d)
{
	const char *base = (const char *)s;
	if (d->kind == SETTING_BOOL)
		return *(const bool *)(base + d->offset) ? 1 : 0;
	return *(const int64_t *)(base + d->offset);
}

void settings_set(struct settings *s, const struct setting_def *d, int64_t v)
{
	char *base = (char *)s;
	if (d->kind == SETTING_BOOL)
		*(bool *)(base + d->offset) = v != 0;
	else
		*(int64_t *)(base + d->offset) = v;
}

void settings_defaults(struct settings *s)
{
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < settings_ndefs; i++)
		settings_set(s, &settings_defs[i], settings_defs[i].def);
}

int settings_load(struct store *st, struct settings *out)
{
	settings_defaults(out);
	struct store_rows *rows = NULL;
	int rc = store_query(st, "SELECT key, value FROM settings", NULL, 0, &rows);
	if (rc)
		return rc;
	for (size_t r = 0; r < store_rows_count(rows); r++) {
		const char *k = store_rows_text(rows, r, "key");
		const char *v = store_rows_text(rows, r, "value");
		for (size_t i = 0; k && v && i < settings_ndefs; i++) {
			const struct setting_def *d = &settings_defs[i];
			if (strcmp(k, d->key) != 0)
				continue;
			json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
			int64_t x = d->def;
			if (json_is_integer(j))
				x = json_integer_value(j);
			else if (json_is_boolean(j))
				x = json_is_true(j);
			json_decref(j);
			if (x >= d->min && x <= d->max)
				settings_set(out, d, x);
		}
	}
	store_rows_free(rows);
	return 0;
}
