/*
 * settings.c — the settings document, /api/admin/settings.
 *
 * Which settings exist, their types, ranges and defaults are in the one
 * table of src/settings.c; this file is the HTTP side: unknown names and
 * out-of-range values are a 400 naming the setting, and a PUT writes all
 * it changes in one transaction, then publishes a new configuration
 * snapshot so workers use the values at once.  Internal rows of the
 * settings table (the master-key check) are never shown or writable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "http/body.h"
#include "http/request.h"
#include "http/server.h"
#include "settings.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"

static json_t *value_json(const struct setting_def *d, int64_t v)
{
	return d->kind == SETTING_BOOL ? json_boolean(v != 0) : json_integer(v);
}

static void reply_settings(struct http_req *r, const struct settings *s)
{
	json_t *o = json_object();
	for (size_t i = 0; i < settings_ndefs; i++)
		json_object_set_new(o, settings_defs[i].key,
		                    value_json(&settings_defs[i], settings_get(s, &settings_defs[i])));
	http_reply_json(r, 200, o);
}

void settings_get_handler(struct http_req *r, const struct admin_user *u)
{
	struct settings s;
	int rc = settings_load(r->w->store, &s);
	if (rc) {
		admin_reply_store_error(r, r->w->store, rc, "settings");
		return;
	}
	reply_settings(r, &s);
}

void settings_put_handler(struct http_req *r, const struct admin_user *u)
{
	json_t *in = http_read_json_object(r, ADMIN_BODY_MAX);
	if (!in)
		return;
	struct settings s;
	bool changed[16] = { 0 };
	struct store *st = r->w->store;
	int rc = settings_load(st, &s);
	if (rc) {
		json_decref(in);
		admin_reply_store_error(r, st, rc, "settings");
		return;
	}
	const char *k;
	json_t *v;
	json_object_foreach (in, k, v) {
		size_t i = 0;
		while (i < settings_ndefs && strcmp(settings_defs[i].key, k) != 0)
			i++;
		if (i == settings_ndefs) {
			http_reply_error(r, 400, "invalid_field", "%.64s: unknown setting", k);
			json_decref(in);
			return;
		}
		const struct setting_def *d = &settings_defs[i];
		if (d->kind == SETTING_BOOL) {
			if (!json_is_boolean(v)) {
				http_reply_error(r, 400, "invalid_field", "%s: must be true or false", k);
				json_decref(in);
				return;
			}
			settings_set(&s, d, json_is_true(v));
		} else {
			if (!json_is_integer(v) || json_integer_value(v) < d->min ||
			    json_integer_value(v) > d->max) {
				http_reply_error(r, 400, "invalid_field",
				                 "%s: must be an integer from %lld to %lld", k,
				                 (long long)d->min, (long long)d->max);
				json_decref(in);
				return;
			}
			settings_set(&s, d, json_integer_value(v));
		}
		changed[i] = true;
	}
	json_decref(in);

	int64_t now = clock_wall_ms();
	rc = store_begin(st);
	for (size_t i = 0; !rc && i < settings_ndefs; i++) {
		if (!changed[i])
			continue;
		json_t *j = value_json(&settings_defs[i], settings_get(&s, &settings_defs[i]));
		char *txt = json_dumps(j, JSON_ENCODE_ANY);
		json_decref(j);
		struct store_value p[] = { sv_text(settings_defs[i].key), sv_text(txt), sv_int(now) };
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
	reply_settings(r, &s);
}
