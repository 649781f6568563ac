/*
 * settings.c — the operator-tunable settings document, /api/admin/settings.
 *
 * Known settings only (unknown names are a 400), each with a type, a
 * range and a default; values are stored as JSON text in the settings
 * table, one row per setting, and a PUT writes all it changes in one
 * transaction.  Internal rows of that table (the master-key check) are
 * never shown or writable here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "http/body.h"
#include "http/request.h"
#include "http/server.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"

enum setting_kind { S_BOOL, S_INT };

struct setting_def {
	const char *key;
	enum setting_kind kind;
	int64_t min, max, def;
};

static const struct setting_def defs[] = {
	{ "log_body_enabled", S_BOOL, 0, 1, 1 },
	{ "log_body_max_bytes", S_INT, 0, 16 * 1024 * 1024, 64 * 1024 },
	{ "log_retention_days", S_INT, 1, 3650, 30 },
	{ "health_check_interval_seconds", S_INT, 0, 86400, 60 },
};

#define NDEFS (sizeof(defs) / sizeof(defs[0]))

static json_t *value_json(const struct setting_def *d, int64_t v)
{
	return d->kind == S_BOOL ? json_boolean(v != 0) : json_integer(v);
}

/* Current value of each setting (stored or default). */
static int load(struct store *st, int64_t values[NDEFS])
{
	for (size_t i = 0; i < NDEFS; i++)
		values[i] = defs[i].def;
	struct store_rows *rows = NULL;
	int rc = store_query(st, "SELECT key, value FROM settings", NULL, 0, &rows);
	if (rc)
		return rc;
	for (size_t r = 0; r < store_rows_count(rows); r++) {
		const char *k = store_rows_text(rows, r, "key");
		const char *v = store_rows_text(rows, r, "value");
		for (size_t i = 0; k && v && i < NDEFS; i++) {
			if (strcmp(k, defs[i].key) != 0)
				continue;
			json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
			if (json_is_integer(j))
				values[i] = json_integer_value(j);
			else if (json_is_boolean(j))
				values[i] = json_is_true(j);
			json_decref(j);
		}
	}
	store_rows_free(rows);
	return 0;
}

static void reply_settings(struct http_req *r, int64_t values[NDEFS])
{
	json_t *o = json_object();
	for (size_t i = 0; i < NDEFS; i++)
		json_object_set_new(o, defs[i].key, value_json(&defs[i], values[i]));
	http_reply_json(r, 200, o);
}

void settings_get_handler(struct http_req *r, const struct admin_user *u)
{
	int64_t values[NDEFS];
	int rc = load(r->w->store, values);
	if (rc) {
		admin_reply_store_error(r, r->w->store, rc, "settings");
		return;
	}
	reply_settings(r, values);
}

void settings_put_handler(struct http_req *r, const struct admin_user *u)
{
	json_t *in = http_read_json_object(r, ADMIN_BODY_MAX);
	if (!in)
		return;
	int64_t values[NDEFS];
	bool changed[NDEFS] = { 0 };
	struct store *st = r->w->store;
	int rc = load(st, values);
	if (rc) {
		json_decref(in);
		admin_reply_store_error(r, st, rc, "settings");
		return;
	}
	const char *k;
	json_t *v;
	json_object_foreach (in, k, v) {
		size_t i = 0;
		while (i < NDEFS && strcmp(defs[i].key, k) != 0)
			i++;
		if (i == NDEFS) {
			http_reply_error(r, 400, "invalid_field", "%.64s: unknown setting", k);
			json_decref(in);
			return;
		}
		const struct setting_def *d = &defs[i];
		if (d->kind == S_BOOL) {
			if (!json_is_boolean(v)) {
				http_reply_error(r, 400, "invalid_field", "%s: must be true or false", k);
				json_decref(in);
				return;
			}
			values[i] = json_is_true(v);
		} else {
			if (!json_is_integer(v) || json_integer_value(v) < d->min ||
			    json_integer_value(v) > d->max) {
				http_reply_error(r, 400, "invalid_field",
				                 "%s: must be an integer from %lld to %lld", k,
				                 (long long)d->min, (long long)d->max);
				json_decref(in);
				return;
			}
			values[i] = json_integer_value(v);
		}
		changed[i] = true;
	}
	json_decref(in);

	int64_t now = clock_wall_ms();
	rc = store_begin(st);
	for (size_t i = 0; !rc && i < NDEFS; i++) {
		if (!changed[i])
			continue;
		json_t *j = value_json(&defs[i], values[i]);
		char *txt = json_dumps(j, JSON_ENCODE_ANY);
		json_decref(j);
		struct store_value p[] = { sv_text(defs[i].key), sv_text(txt), sv_int(now) };
		rc = store_exec(
		    st,
		    "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO "
		    "UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
		    p, 3, NULL);
		free(txt);
	}
	if (!rc)
		rc = store_commit(st);
	if (rc) {
		store_rollback(st);
		admin_reply_store_error(r, st, rc, "settings");
		return;
	}
	log_info(r->id, "settings updated by %s", u->username);
	admin_config_changed(r);
	reply_settings(r, values);
}
