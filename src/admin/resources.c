/*
 * resources.c — the admin API's resources and its router.
 *
 *   /api/admin/providers[/{id}]          + POST /providers/batch
 *   /api/admin/providers/{id}/keys       upstream keys of one provider
 *   /api/admin/provider-keys/{id}
 *   /api/admin/models[/{id}]
 *   /api/admin/model-mappings[/{id}]
 *   /api/admin/keys[/{id}]               client keys
 *   /api/admin/users[/{id}]
 *   /api/admin/settings
 *   /api/admin/logs[/{id}], /api/admin/stats   (logs.c)
 *
 * Secrets: a provider's API keys and extra headers are encrypted with
 * the master key before they reach the database, and only masked hints
 * ("sk-…abcd") are ever shown.  A client key is shown in full once, in
 * the answer that creates it; the database keeps only its SHA-256.
 */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/admin.h"
#include "admin/crud.h"
#include "app.h"
#include "auth/mask.h"
#include "auth/password.h"
#include "auth/secrets.h"
#include "auth/token.h"
#include "gateway/snapshot.h"
#include "http/body.h"
#include "http/request.h"
#include "http/server.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/str.h"

#define SECRET_MAX 4096
#define HEADERS_MAX 64

static const char *const provider_types[] = { "openai", "anthropic", "gemini", NULL };

/* ---- shared helpers ------------------------------------------------- */

void admin_config_changed(struct http_req *r)
{
	const struct app *app = r->w->srv->app;
	char err[512];
	if (snapshot_rebuild(app->hub, r->w->store, app->secrets, err, sizeof(err)) != 0)
		log_error(r->id, "configuration saved but not published to the proxy: %s", err);
}

void admin_reply_store_error(struct http_req *r, struct store *st, int rc, const char *what)
{
	if (rc == STORE_ECONFLICT) {
		http_reply_error(r, 409, "conflict", "a %s with the same unique value already exists", what);
		return;
	}
	if (rc == STORE_ECONSTRAINT) {
		http_reply_error(r, 400, "invalid_field",
		                 "the %s violates a constraint (a referenced row is missing?)", what);
		return;
	}
	log_error(r->id, "database error (%s): %s", what, store_errmsg(st));
	http_reply_error(r, 500, "internal_error", "database error");
}

/* Encrypt a secret into an owned blob assignment plus its masked hint. */
static int encrypt_into(struct crud_ctx *c, const char *field, const char *plain, size_t len,
                        const char *blob_col, const char *hint_col, const char *hint, struct assigns *as)
{
	const struct app *app = c->r->w->srv->app;
	unsigned char *enc = NULL;
	size_t enclen = 0;
	if (secrets_encrypt(app->secrets, plain, len, &enc, &enclen))
		return crud_fail(c, 500, "%s: could not encrypt", field);
	assigns_add(as, blob_col, sv_blob(enc, enclen), enc);
	if (hint_col) {
		char *h = xstrdup(hint);
		assigns_add(as, hint_col, sv_text(h), h);
	}
	return 0;
}

/* The secret string in v, or NULL after recording a 400 for field. */
static const char *secret_string(struct crud_ctx *c, const char *field, json_t *v)
{
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > SECRET_MAX ||
	    strlen(json_string_value(v)) != json_string_length(v) ||
	    !crud_is_line(json_string_value(v), json_string_length(v))) {
		crud_fail(c, 400, "%s: must be a non-empty one-line string of at most %d bytes", field,
		          SECRET_MAX);
		return NULL;
	}
	return json_string_value(v);
}

/* ---- providers ------------------------------------------------------ */

static const struct field provider_fields[] = {
	{ "name", K_STR, F_REQ, 1, 128, NULL, NULL },
	{ "type", K_ENUM, F_REQ | F_FILTER, 0, 0, provider_types, NULL },
	{ "base_url", K_STR, 0, 1, 2048, NULL, NULL },
	{ "priority", K_INT, 0, -1000000, 1000000, NULL, NULL },
	{ "weight", K_INT, 0, 1, 1000000, NULL, NULL },
	{ "timeout_ms", K_INT, 0, 1000, 600000, NULL, NULL },
	{ "enabled", K_BOOL, F_FILTER, 0, 0, NULL, NULL },
	{ "health_status", K_STR, F_RO, 0, 0, NULL, NULL },
	{ "latency_ms", K_INT, F_RO, 0, 0, NULL, NULL },
	{ "last_checked_at", K_TIME, F_RO, 0, 0, NULL, NULL },
	{ "last_status_code", K_INT, F_RO, 0, 0, NULL, NULL },
	{ "last_error", K_STR, F_RO, 0, 0, NULL, NULL },
	{ "headers_enc", K_STR, F_HIDDEN, 0, 0, NULL, NULL },
	{ "headers_hint", K_STR, F_HIDDEN, 0, 0, NULL, NULL },
	{ "api_key", K_STR, F_VIRTUAL, 0, 0, NULL, NULL },
	{ "headers", K_STR, F_VIRTUAL, 0, 0, NULL, NULL },
	{ "config", K_STR, F_VIRTUAL | F_CREATE, 0, 0, NULL, NULL },
};

static bool valid_base_url(const char *u)
{
	const char *rest = strncmp(u, "http://", 7) == 0    ? u + 7
	                   : strncmp(u, "https://", 8) == 0 ? u + 8
	                                                    : NULL;
	if (!rest || !*rest || *rest == '/' || *rest == '?' || *rest == '#')
		return false;
	for (const char *p = u; *p; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '\\')
			return false;
	}
	/* Credentials in the URL would leak into logs; keys go in api_key. */
	const char *slash = strchr(rest, '/');
	const char *at = strchr(rest, '@');
	return !(at && (!slash || at < slash));
}

/* Header names: RFC 9110 tokens, minus the ones the gateway owns. */
static bool valid_header_name(const char *n)
{
	static const char *const reserved[] = { "host",
		                                "content-length",
		                                "transfer-encoding",
		                                "connection",
		                                "content-type",
		                                "keep-alive",
		                                "upgrade",
		                                "te",
		                                "trailer",
		                                NULL };
	if (!*n || strlen(n) > 128)
		return false;
	for (const char *p = n; *p; p++) {
		if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p))
			return false;
	}
	for (const char *const *r = reserved; *r; r++) {
		if (strcasecmp(n, *r) == 0)
			return false;
	}
	return true;
}

struct provider_hook {
	char api_key[SECRET_MAX + 1]; /* "" when not given */
};

static int provider_prepare(struct crud_ctx *c, json_t *in, bool create, int64_t id, struct assigns *as)
{
	json_t *jkey = json_object_get(in, "api_key");
	json_t *jurl = json_object_get(in, "base_url");
	const char *url = json_string_value(jurl);

	/* Seed format: "config" as a JSON string or object with baseUrl / apiKey. */
	json_t *cfg = json_object_get(in, "config");
	json_t *parsed = NULL;
	if (cfg && json_is_string(cfg)) {
		parsed = json_loads(json_string_value(cfg), JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(parsed)) {
			json_decref(parsed);
			return crud_fail(c, 400, "config: must be a JSON object (or a string holding one)");
		}
		cfg = parsed;
	} else if (cfg && !json_is_object(cfg)) {
		return crud_fail(c, 400, "config: must be a JSON object (or a string holding one)");
	}
	int rc = 0;
	if (cfg) {
		const char *k;
		json_t *v;
		json_object_foreach (cfg, k, v) {
			if (strcmp(k, "baseUrl") != 0 && strcmp(k, "apiKey") != 0 &&
			    strcmp(k, "base_url") != 0 && strcmp(k, "api_key") != 0) {
				rc = crud_fail(c, 400,
				               "config.%.64s: unknown; config takes baseUrl and apiKey", k);
				goto out;
			}
		}
		json_t *cu = json_object_get(cfg, "baseUrl") ? json_object_get(cfg, "baseUrl")
		                                             : json_object_get(cfg, "base_url");
		json_t *ck = json_object_get(cfg, "apiKey") ? json_object_get(cfg, "apiKey")
		                                            : json_object_get(cfg, "api_key");
		if (cu && !url) {
			if (!json_is_string(cu)) {
				rc = crud_fail(c, 400, "config.baseUrl: must be a string");
				goto out;
			}
			url = json_string_value(cu);
			if (json_string_length(cu) > 2048) {
				rc = crud_fail(c, 400, "config.baseUrl: at most 2048 bytes");
				goto out;
			}
			char *copy = xstrdup(url);
			assigns_add(as, "base_url", sv_text(copy), copy);
			url = copy;
		}
		if (ck && !jkey)
			jkey = ck;
	}
	if (create && !url) {
		rc = crud_fail(c, 400, "base_url: is required");
		goto out;
	}
	if (url && !valid_base_url(url)) {
		rc = crud_fail(c, 400,
		               "base_url: must be an http:// or https:// URL with a host and no credentials");
		goto out;
	}

	struct provider_hook *h = xcalloc(1, sizeof(*h));
	c->hook_data = h;
	if (jkey && !json_is_null(jkey)) {
		const char *key = secret_string(c, "api_key", jkey);
		if (!key) {
			rc = -1;
			goto out;
		}
		str_copy(h->api_key, sizeof(h->api_key), key);
	}

	json_t *hdrs = json_object_get(in, "headers");
	if (hdrs && json_is_null(hdrs)) {
		assigns_add(as, "headers_enc", sv_null(), NULL);
		assigns_add(as, "headers_hint", sv_text("{}"), NULL);
	} else if (hdrs) {
		if (!json_is_object(hdrs) || json_object_size(hdrs) > HEADERS_MAX) {
			rc = crud_fail(c, 400, "headers: must be an object of at most %d name/value strings",
			               HEADERS_MAX);
			goto out;
		}
		json_t *hint = json_object();
		const char *k;
		json_t *v;
		json_object_foreach (hdrs, k, v) {
			if (!valid_header_name(k)) {
				json_decref(hint);
				rc = crud_fail(c, 400, "headers.%.64s: not an allowed header name", k);
				goto out;
			}
			if (!json_is_string(v) || json_string_length(v) > SECRET_MAX ||
			    !crud_is_line(json_string_value(v), json_string_length(v))) {
				json_decref(hint);
				rc = crud_fail(c, 400, "headers.%.64s: value must be a one-line string", k);
				goto out;
			}
			char m[MASK_BUF];
			mask_secret(json_string_value(v), m, sizeof(m));
			json_object_set_new(hint, k, json_string(m));
		}
		char *plain = json_dumps(hdrs, JSON_COMPACT | JSON_SORT_KEYS);
		char *hint_txt = json_dumps(hint, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(hint);
		rc = encrypt_into(c, "headers", plain, strlen(plain), "headers_enc", "headers_hint", hint_txt,
		                  as);
		free(plain);
		free(hint_txt);
	}
out:
	json_decref(parsed);
	return rc;
}

/* The provider's api_key is its first key (lowest position, then id). */
static int provider_after_write(struct crud_ctx *c, json_t *in, bool create, int64_t id)
{
	struct provider_hook *h = c->hook_data;
	if (!h || !h->api_key[0])
		return 0;
	const struct app *app = c->r->w->srv->app;
	unsigned char *enc = NULL;
	size_t enclen = 0;
	if (secrets_encrypt(app->secrets, h->api_key, strlen(h->api_key), &enc, &enclen))
		return crud_fail(c, 500, "api_key: could not encrypt");
	char hint[MASK_BUF];
	mask_secret(h->api_key, hint, sizeof(hint));
	int64_t now = clock_wall_ms();
	struct store_value q[] = { sv_int(id) };
	struct store_rows *rows = NULL;
	int rc = store_query(
	    c->st, "SELECT id FROM provider_keys WHERE provider_id = ? ORDER BY position, id LIMIT 1", q, 1,
	    &rows);
	if (!rc && store_rows_count(rows)) {
		struct store_value u[] = { sv_blob(enc, enclen), sv_text(hint), sv_int(now),
			                   sv_int(store_rows_int(rows, 0, "id", 0)) };
		rc = store_exec(c->st,
		                "UPDATE provider_keys SET key_enc = ?, key_hint = ?, status = 'ok', "
		                "status_reason = NULL, "
		                "updated_at = ? WHERE id = ?",
		                u, 4, NULL);
	} else if (!rc) {
		struct store_value i[] = { sv_int(id), sv_blob(enc, enclen), sv_text(hint), sv_int(now),
			                   sv_int(now) };
		rc = store_exec(c->st,
		                "INSERT INTO provider_keys (provider_id, key_enc, key_hint, position, "
		                "created_at, updated_at) "
		                "VALUES (?, ?, ?, 0, ?, ?)",
		                i, 5, NULL);
	}
	store_rows_free(rows);
	free(enc);
	sodium_memzero(h->api_key, sizeof(h->api_key));
	return rc ? crud_fail(c, 500, "api_key: could not be saved") : 0;
}

static void provider_decorate(struct crud_ctx *c, json_t *out, int64_t id)
{
	struct store_value q[] = { sv_int(id) };
	struct store_value q2[] = { sv_int(id), sv_int(id) };
	struct store_rows *rows = NULL;
	json_t *key = json_null();
	json_int_t count = 0;
	if (store_query(
	        c->st,
	        "SELECT key_hint, (SELECT count(*) FROM provider_keys k2 WHERE k2.provider_id = ?) AS n "
	        "FROM provider_keys WHERE provider_id = ? ORDER BY position, id LIMIT 1",
	        q2, 2, &rows) == 0 &&
	    store_rows_count(rows)) {
		key = json_string(store_rows_text(rows, 0, "key_hint"));
		count = store_rows_int(rows, 0, "n", 0);
	}
	store_rows_free(rows);
	json_object_set_new(out, "api_key", key);
	json_object_set_new(out, "key_count", json_integer(count));
	rows = NULL;
	json_t *hint = NULL;
	if (store_query(c->st, "SELECT headers_hint FROM providers WHERE id = ?", q, 1, &rows) == 0 &&
	    store_rows_text(rows, 0, "headers_hint"))
		hint = json_loads(store_rows_text(rows, 0, "headers_hint"), 0, NULL);
	store_rows_free(rows);
	json_object_set_new(out, "headers", json_is_object(hint) ? hint : json_object());
	if (hint && !json_is_object(hint))
		json_decref(hint);
}

static const struct resource providers = {
	.name = "provider",
	.table = "providers",
	.fields = provider_fields,
	.nfields = sizeof(provider_fields) / sizeof(provider_fields[0]),
	.prepare = provider_prepare,
	.after_write = provider_after_write,
	.decorate = provider_decorate,
};

/* ---- provider keys -------------------------------------------------- */

static const struct field provider_key_fields[] = {
	{ "provider_id", K_REF, F_RO, 0, 0, NULL, "providers" },
	{ "api_key", K_STR, F_VIRTUAL, 0, 0, NULL, NULL },
	{ "weight", K_INT, 0, 1, 1000000, NULL, NULL },
	{ "enabled", K_BOOL, 0, 0, 0, NULL, NULL },
	{ "position", K_INT, 0, 0, 1000000, NULL, NULL },
	{ "status", K_STR, F_RO, 0, 0, NULL, NULL },
	{ "status_reason", K_STR, F_RO, 0, 0, NULL, NULL },
	{ "key_enc", K_STR, F_HIDDEN, 0, 0, NULL, NULL },
	{ "key_hint", K_STR, F_HIDDEN, 0, 0, NULL, NULL },
};

static int provider_key_prepare(struct crud_ctx *c, json_t *in, bool create, int64_t id, struct assigns *as)
{
	json_t *jkey = json_object_get(in, "api_key");
	if (create && !jkey)
		return crud_fail(c, 400, "api_key: is required");
	if (jkey) {
		const char *key = secret_string(c, "api_key", jkey);
		if (!key)
			return -1;
		char hint[MASK_BUF];
		mask_secret(key, hint, sizeof(hint));
		if (encrypt_into(c, "api_key", key, strlen(key), "key_enc", "key_hint", hint, as))
			return -1;
	}
	/* A key marked bad by the proxy is trusted again once edited. */
	if (!create) {
		assigns_add(as, "status", sv_text("ok"), NULL);
		assigns_add(as, "status_reason", sv_null(), NULL);
	}
	return 0;
}

static void provider_key_decorate(struct crud_ctx *c, json_t *out, int64_t id)
{
	struct store_value q[] = { sv_int(id) };
	struct store_rows *rows = NULL;
	json_t *hint = json_null();
	if (store_query(c->st, "SELECT key_hint FROM provider_keys WHERE id = ?", q, 1, &rows) == 0 &&
	    store_rows_text(rows, 0, "key_hint"))
		hint = json_string(store_rows_text(rows, 0, "key_hint"));
	store_rows_free(rows);
	json_object_set_new(out, "api_key", hint);
}

static const struct resource provider_keys = {
	.name = "provider key",
	.table = "provider_keys",
	.fields = provider_key_fields,
	.nfields = sizeof(provider_key_fields) / sizeof(provider_key_fields[0]),
	.parent_col = "provider_id",
	.prepare = provider_key_prepare,
	.decorate = provider_key_decorate,
};

/* ---- models and mappings -------------------------------------------- */

static const struct field model_fields[] = {
	{ "name", K_STR, F_REQ | F_FILTER, 1, 256, NULL, NULL },
	{ "provider_id", K_REF, F_REQ | F_FILTER, 0, 0, NULL, "providers" },
	{ "provider_model", K_STR, 0, 1, 256, NULL, NULL },
	{ "enabled", K_BOOL, F_FILTER, 0, 0, NULL, NULL },
	{ "description", K_TEXT, 0, 0, 4096, NULL, NULL },
	{ "input_price_per_mtok", K_REAL, F_NULL, 0, 0, NULL, NULL },
	{ "output_price_per_mtok", K_REAL, F_NULL, 0, 0, NULL, NULL },
};

static int model_prepare(struct crud_ctx *c, json_t *in, bool create, int64_t id, struct assigns *as)
{
	/* provider_model defaults to the model's name. */
	if (create && !json_object_get(in, "provider_model")) {
		char *copy = xstrdup(json_string_value(json_object_get(in, "name")));
		assigns_add(as, "provider_model", sv_text(copy), copy);
	}
	return 0;
}

static const struct resource models = {
	.name = "model",
	.table = "models",
	.fields = model_fields,
	.nfields = sizeof(model_fields) / sizeof(model_fields[0]),
	.prepare = model_prepare,
};

static const struct field mapping_fields[] = {
	{ "client_model", K_STR, F_REQ | F_FILTER, 1, 256, NULL, NULL },
	{ "provider_id", K_REF, F_REQ | F_FILTER, 0, 0, NULL, "providers" },
	{ "provider_model", K_STR, F_REQ, 1, 256, NULL, NULL },
	{ "priority", K_INT, 0, -1000000, 1000000, NULL, NULL },
	{ "weight", K_INT, 0, 1, 1000000, NULL, NULL },
	{ "enabled", K_BOOL, F_FILTER, 0, 0, NULL, NULL },
};

static const struct resource mappings = {
	.name = "model mapping",
	.table = "model_mappings",
	.fields = mapping_fields,
	.nfields = sizeof(mapping_fields) / sizeof(mapping_fields[0]),
};

/* ---- client keys ---------------------------------------------------- */

static const struct field client_key_fields[] = {
	{ "name", K_STR, F_REQ, 1, 128, NULL, NULL },
	{ "enabled", K_BOOL, F_FILTER, 0, 0, NULL, NULL },
	{ "expires_at", K_TIME, F_NULL, 0, 0, NULL, NULL },
	{ "allowed_models", K_STRLIST, 0, 0, 1000, NULL, NULL },
	{ "rpm_limit", K_INT, 0, 0, 1000000000, NULL, NULL },
	{ "tpm_limit", K_INT, 0, 0, 2000000000, NULL, NULL },
	{ "max_concurrency", K_INT, 0, 0, 1000000, NULL, NULL },
	{ "key_prefix", K_STR, F_RO, 0, 0, NULL, NULL },
	{ "last_used_at", K_TIME, F_RO, 0, 0, NULL, NULL },
	{ "key_hash", K_STR, F_HIDDEN, 0, 0, NULL, NULL },
};

static int client_key_prepare(struct crud_ctx *c, json_t *in, bool create, int64_t id, struct assigns *as)
{
	if (!create)
		return 0;
	char key[TOKEN_BUF];
	token_new("fk-", key);
	char *hash = xmalloc(TOKEN_HASH_BUF);
	token_hash(key, hash);
	assigns_add(as, "key_hash", sv_text(hash), hash);
	char *prefix = xmalloc(32);
	snprintf(prefix, 32, "%.7s…", key);
	assigns_add(as, "key_prefix", sv_text(prefix), prefix);
	/* The only time the whole key is ever shown. */
	c->extra_out = json_pack("{s:s}", "key", key);
	sodium_memzero(key, sizeof(key));
	return 0;
}

static const struct resource client_keys = {
	.name = "client key",
	.table = "client_keys",
	.fields = client_key_fields,
	.nfields = sizeof(client_key_fields) / sizeof(client_key_fields[0]),
	.prepare = client_key_prepare,
};

/* ---- users ---------------------------------------------------------- */

static const struct field user_fields[] = {
	{ "username", K_STR, F_REQ, 1, 128, NULL, NULL },
	{ "password", K_STR, F_VIRTUAL, 0, 0, NULL, NULL },
	{ "is_admin", K_BOOL, 0, 0, 0, NULL, NULL },
	{ "must_change_password", K_BOOL, 0, 0, 0, NULL, NULL },
	{ "password_hash", K_STR, F_HIDDEN, 0, 0, NULL, NULL },
};

static int count_admins(struct crud_ctx *c, int64_t except_id, int64_t *n)
{
	struct store_value q[] = { sv_int(except_id) };
	struct store_rows *rows = NULL;
	int rc =
	    store_query(c->st, "SELECT count(*) AS n FROM users WHERE is_admin = 1 AND id <> ?", q, 1, &rows);
	*n = store_rows_int(rows, 0, "n", 0);
	store_rows_free(rows);
	return rc;
}

static int user_prepare(struct crud_ctx *c, json_t *in, bool create, int64_t id, struct assigns *as)
{
	json_t *ju = json_object_get(in, "username");
	if (ju) {
		const char *u = json_string_value(ju);
		for (const char *p = u; p && *p; p++) {
			if (!isalnum((unsigned char)*p) && !strchr("._-@", *p))
				return crud_fail(c, 400,
				                 "username: only letters, digits and . _ - @ are allowed");
		}
	}
	json_t *jp = json_object_get(in, "password");
	if (create && !jp)
		return crud_fail(c, 400, "password: is required");
	if (jp) {
		if (!json_is_string(jp) || json_string_length(jp) < 8 ||
		    json_string_length(jp) > PASSWORD_MAX_LEN ||
		    strlen(json_string_value(jp)) != json_string_length(jp))
			return crud_fail(c, 400, "password: must be a string of 8 to %d bytes",
			                 PASSWORD_MAX_LEN);
		char *hash = xmalloc(PASSWORD_HASH_BUF);
		if (password_hash(json_string_value(jp), hash, PASSWORD_HASH_BUF)) {
			free(hash);
			return crud_fail(c, 500, "password: could not hash");
		}
		assigns_add(as, "password_hash", sv_text(hash), hash);
	}
	json_t *ja = json_object_get(in, "is_admin");
	if (!create && ja && json_is_false(ja)) {
		int64_t n = 0;
		if (count_admins(c, id, &n))
			return crud_fail(c, 500, "is_admin: lookup failed");
		if (n == 0)
			return crud_fail(c, 409, "is_admin: this is the last administrator");
	}
	return 0;
}

static int user_after_write(struct crud_ctx *c, json_t *in, bool create, int64_t id)
{
	/* A password set by someone else ends that user's sessions. */
	if (!create && json_object_get(in, "password")) {
		/* Setting your own password here keeps the session you are using. */
		int64_t keep = id == c->user->id ? c->user->session_id : 0;
		struct store_value q[] = { sv_int(id), sv_int(keep) };
		if (store_exec(c->st, "DELETE FROM sessions WHERE user_id = ? AND id <> ?", q, 2, NULL))
			return crud_fail(c, 500, "password: could not revoke sessions");
	}
	return 0;
}

static int user_before_delete(struct crud_ctx *c, int64_t id)
{
	if (id == c->user->id)
		return crud_fail(c, 409, "you cannot delete your own user");
	int64_t n = 0;
	if (count_admins(c, id, &n))
		return crud_fail(c, 500, "lookup failed");
	if (n == 0)
		return crud_fail(c, 409, "this is the last administrator");
	return 0;
}

static const struct resource users = {
	.name = "user",
	.table = "users",
	.fields = user_fields,
	.nfields = sizeof(user_fields) / sizeof(user_fields[0]),
	.prepare = user_prepare,
	.after_write = user_after_write,
	.before_delete = user_before_delete,
};

/* ---- batch ---------------------------------------------------------- */

static void providers_batch(struct crud_ctx *c)
{
	json_t *in = http_read_json_object(c->r, ADMIN_BODY_MAX);
	if (!in)
		return;
	const char *given = json_string_value(json_object_get(in, "action"));
	json_t *ids = json_object_get(in, "ids");
	const char *sql = NULL, *action = NULL; /* static strings: they outlive `in` */
	if (given && strcmp(given, "enable") == 0) {
		action = "enable";
		sql = "UPDATE providers SET enabled = 1, updated_at = ? WHERE id = ?";
	} else if (given && strcmp(given, "disable") == 0) {
		action = "disable";
		sql = "UPDATE providers SET enabled = 0, updated_at = ? WHERE id = ?";
	} else if (given && strcmp(given, "delete") == 0) {
		action = "delete";
		sql = "DELETE FROM providers WHERE id = ? AND ? > 0";
	}
	if (!sql) {
		json_decref(in);
		http_reply_error(c->r, 400, "invalid_field",
		                 "action: must be one of enable, disable, delete");
		return;
	}
	const char *k;
	json_t *kv;
	json_object_foreach (in, k, kv) {
		if (strcmp(k, "action") != 0 && strcmp(k, "ids") != 0) {
			http_reply_error(c->r, 400, "invalid_field",
			                 "%.64s: unknown field; batch takes action and ids", k);
			json_decref(in);
			return;
		}
	}
	if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 1000) {
		json_decref(in);
		http_reply_error(c->r, 400, "invalid_field",
		                 "ids: must be an array of 1 to 1000 provider ids");
		return;
	}
	size_t i;
	json_t *v;
	json_array_foreach (ids, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 1) {
			json_decref(in);
			http_reply_error(c->r, 400, "invalid_field", "ids[%zu]: must be a positive integer",
			                 i);
			return;
		}
	}
	int64_t now = clock_wall_ms(), affected = 0;
	bool del = strcmp(action, "delete") == 0;
	int rc = store_begin(c->st);
	json_array_foreach (ids, i, v) {
		if (rc)
			break;
		int64_t ch = 0;
		struct store_value p[] = { del ? sv_int(json_integer_value(v)) : sv_int(now),
			                   del ? sv_int(1) : sv_int(json_integer_value(v)) };
		rc = store_exec(c->st, sql, p, 2, &ch);
		affected += ch;
	}
	if (!rc)
		rc = store_commit(c->st);
	json_decref(in);
	if (rc) {
		store_rollback(c->st);
		admin_reply_store_error(c->r, c->st, rc, "provider");
		return;
	}
	log_info(c->r->id, "batch %s of providers: %lld affected, by %s", action, (long long)affected,
	         c->user->username);
	admin_config_changed(c->r);
	http_reply_json(c->r, 200,
	                json_pack("{s:s, s:I}", "action", action, "affected", (json_int_t)affected));
}

/* ---- router --------------------------------------------------------- */

static bool parse_id(const char *s, size_t len, int64_t *out)
{
	if (len == 0 || len > 18)
		return false;
	int64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return v > 0;
}

static bool is(const char *m, const char *want)
{
	return strcmp(m, want) == 0;
}

static void method_not_allowed(struct http_req *r, const char *allow)
{
	http_req_set_header(r, "Allow", allow);
	http_reply_error(r, 405, "method_not_allowed", "method %s is not allowed on %s", r->method, r->path);
}

/* Collection + item routes of one resource. */
static void route_resource(struct crud_ctx *c, const struct resource *res, bool item, int64_t id,
                           bool can_write)
{
	struct http_req *r = c->r;
	const char *m = r->method;
	bool read = is(m, "GET") || is(m, "HEAD");
	if (!read && !can_write) {
		http_reply_error(r, 403, "forbidden", "this user may only read the configuration");
		return;
	}
	if (!item) {
		if (read)
			crud_list(c, res);
		else if (is(m, "POST"))
			crud_create(c, res);
		else
			method_not_allowed(r, "GET, HEAD, POST");
		return;
	}
	if (read)
		crud_get(c, res, id);
	else if (is(m, "PUT") || is(m, "PATCH"))
		crud_update(c, res, id);
	else if (is(m, "DELETE"))
		crud_delete(c, res, id);
	else
		method_not_allowed(r, "GET, HEAD, PUT, PATCH, DELETE");
}

void admin_dispatch(struct http_req *r)
{
	struct admin_user u;
	if (admin_authenticate(r, &u, false))
		return;
	struct crud_ctx c = { .r = r, .st = r->w->store, .user = &u };
	const char *p = r->path + strlen("/api/admin");
	if (*p == '/')
		p++;
	/* Split into at most three segments: name / id / sub. */
	const char *seg[4] = { 0 };
	size_t len[4] = { 0 };
	size_t n = 0;
	while (*p && n < 4) {
		const char *e = strchr(p, '/');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		seg[n] = p;
		len[n++] = l;
		p += l;
		if (*p == '/')
			p++;
	}
	if (*p || n == 0)
		goto not_found;
#define SEG(i, s) (len[i] == strlen(s) && strncmp(seg[i], s, len[i]) == 0)
	int64_t id = 0;
	bool has_id = n >= 2 && parse_id(seg[1], len[1], &id);
	const struct resource *res = NULL;
	if (SEG(0, "providers")) {
		if (n == 2 && SEG(1, "batch")) {
			if (!is(r->method, "POST"))
				method_not_allowed(r, "POST");
			else if (!u.is_admin)
				http_reply_error(r, 403, "forbidden",
				                 "this user may only read the configuration");
			else
				providers_batch(&c);
			return;
		}
		if (n == 3 && has_id && SEG(2, "keys")) {
			int e = crud_exists(c.st, "providers", id);
			if (e <= 0) {
				if (e < 0)
					admin_reply_store_error(r, c.st, STORE_EIO, "provider");
				else
					http_reply_error(r, 404, "not_found", "no provider with id %lld",
					                 (long long)id);
				return;
			}
			c.parent_id = id;
			route_resource(&c, &provider_keys, false, 0, u.is_admin);
			return;
		}
		res = &providers;
	} else if (SEG(0, "provider-keys") && n == 2) {
		res = &provider_keys;
	} else if (SEG(0, "models")) {
		res = &models;
	} else if (SEG(0, "model-mappings")) {
		res = &mappings;
	} else if (SEG(0, "keys")) {
		res = &client_keys;
	} else if (SEG(0, "users")) {
		res = &users;
	} else if (SEG(0, "settings") && n == 1) {
		if (is(r->method, "GET") || is(r->method, "HEAD"))
			settings_get_handler(r, &u);
		else if (is(r->method, "PUT") || is(r->method, "PATCH")) {
			if (!u.is_admin)
				http_reply_error(r, 403, "forbidden",
				                 "this user may only read the configuration");
			else
				settings_put_handler(r, &u);
		} else
			method_not_allowed(r, "GET, HEAD, PUT, PATCH");
		return;
	} else if (SEG(0, "logs") && n <= 2) { /* request logs: logs.c */
		admin_logs_route(r, &u, n == 2 ? seg[1] : NULL, n == 2 ? len[1] : 0);
		return;
	} else if (SEG(0, "stats") && n == 1) { /* dashboard numbers: logs.c */
		admin_stats_route(r, &u);
		return;
	}
#undef SEG
	if (!res || n > 2 || (n == 2 && !has_id) || (res == &provider_keys && n == 1))
		goto not_found;
	route_resource(&c, res, n == 2, id, u.is_admin);
	return;
not_found:
	http_reply_error(r, 404, "not_found", "no admin resource at %s", r->path);
}
