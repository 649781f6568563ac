/*
 * migrations.c — the schema, as an append-only list of migrations.
 *
 * Data flow: store_open() (store.c) asks the back-end for the version
 * recorded in the database, then hands every migration with a higher
 * version to the back-end, which renders the placeholders for its
 * dialect (migrations_render) and runs the statements inside one
 * transaction together with the schema_migrations row.
 *
 * Rules for editing: never change a migration that has shipped — add a
 * new one at the end with the next version.  A database written by a
 * newer list is refused by older binaries (STORE_ETOONEW), so a
 * migration is a one-way door: think twice before dropping columns.
 *
 * Conventions: created_at/updated_at and every other timestamp are
 * BIGINT epoch milliseconds (INTEGER would be 32 bits in PostgreSQL);
 * booleans are INTEGER 0/1 with a CHECK; columns that point at an {{ID}}
 * are BIGINT.  Index names carry their table name because PostgreSQL
 * index names share one namespace per schema.  Child columns of every
 * ON DELETE CASCADE are indexed so deleting a provider or user does not
 * scan the child tables.
 */
#include "store/migrations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

static const char m001_initial[] =
    "CREATE TABLE users (\n"
    "  id {{ID}},\n"
    "  username TEXT NOT NULL UNIQUE,\n"
    "  password_hash TEXT NOT NULL,\n"
    "  is_admin INTEGER NOT NULL DEFAULT 1 CHECK (is_admin IN (0, 1)),\n"
    "  must_change_password INTEGER NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1)),\n"
    "  created_at BIGINT NOT NULL,\n"
    "  updated_at BIGINT NOT NULL\n"
    ");\n"

    "CREATE TABLE sessions (\n"
    "  id {{ID}},\n"
    "  user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,\n"
    "  token_hash TEXT NOT NULL UNIQUE,\n"
    "  created_at BIGINT NOT NULL,\n"
    "  expires_at BIGINT NOT NULL,\n"
    "  last_seen_at BIGINT NOT NULL,\n"
    "  client_addr TEXT,\n"
    "  user_agent TEXT\n"
    ");\n"
    "CREATE INDEX sessions_expires_at ON sessions(expires_at);\n"
    "CREATE INDEX sessions_user_id ON sessions(user_id);\n"

    /* One row per failed login, per scope ('user:<name>', 'addr:<ip>'):
     * throttling counts recent rows, so it holds across worker threads
     * and instances.  A janitor deletes rows older than the window. */
    "CREATE TABLE login_attempts (\n"
    "  id {{ID}},\n"
    "  scope TEXT NOT NULL,\n"
    "  at BIGINT NOT NULL\n"
    ");\n"
    "CREATE INDEX login_attempts_scope_at ON login_attempts(scope, at);\n"

    "CREATE TABLE providers (\n"
    "  id {{ID}},\n"
    "  name TEXT NOT NULL UNIQUE,\n"
    "  type TEXT NOT NULL,\n"
    "  base_url TEXT NOT NULL,\n"
    "  priority INTEGER NOT NULL DEFAULT 0,\n"
    "  weight INTEGER NOT NULL DEFAULT 100,\n"
    "  timeout_ms INTEGER NOT NULL DEFAULT 60000,\n"
    "  enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),\n"
    "  headers_enc {{BLOB}},\n"                    /* secretbox(JSON object of extra headers), NULL if none */
    "  headers_hint TEXT NOT NULL DEFAULT '{}',\n" /* JSON: header name -> masked value, for display */
    "  health_status TEXT NOT NULL DEFAULT 'unknown',\n"
    "  latency_ms INTEGER,\n"
    "  last_checked_at BIGINT,\n"
    "  last_status_code INTEGER,\n"
    "  last_error TEXT,\n"
    "  created_at BIGINT NOT NULL,\n"
    "  updated_at BIGINT NOT NULL\n"
    ");\n"

    "CREATE TABLE provider_keys (\n"
    "  id {{ID}},\n"
    "  provider_id BIGINT NOT NULL REFERENCES providers(id) ON DELETE CASCADE,\n"
    "  key_enc {{BLOB}} NOT NULL,\n" /* secretbox ciphertext of the upstream key */
    "  key_hint TEXT NOT NULL,\n"    /* masked form for display, e.g. sk-...abcd */
    "  weight INTEGER NOT NULL DEFAULT 100,\n"
    "  enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),\n"
    "  status TEXT NOT NULL DEFAULT 'ok',\n"
    "  status_reason TEXT,\n"
    "  position INTEGER NOT NULL DEFAULT 0,\n"
    "  created_at BIGINT NOT NULL,\n"
    "  updated_at BIGINT NOT NULL\n"
    ");\n"
    "CREATE INDEX provider_keys_provider_id ON provider_keys(provider_id);\n"

    "CREATE TABLE models (\n"
    "  id {{ID}},\n"
    "  name TEXT NOT NULL,\n"
    "  provider_id BIGINT NOT NULL REFERENCES providers(id) ON DELETE CASCADE,\n"
    "  provider_model TEXT NOT NULL,\n"
    "  enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),\n"
    "  description TEXT NOT NULL DEFAULT '',\n"
    "  input_price_per_mtok {{REAL}},\n"
    "  output_price_per_mtok {{REAL}},\n"
    "  created_at BIGINT NOT NULL,\n"
    "  updated_at BIGINT NOT NULL,\n"
    "  UNIQUE (name, provider_id)\n"
    ");\n"
    "CREATE INDEX models_provider_id ON models(provider_id);\n"

    "CREATE TABLE model_mappings (\n"
    "  id {{ID}},\n"
    "  client_model TEXT NOT NULL,\n"
    "  provider_id BIGINT NOT NULL REFERENCES providers(id) ON DELETE CASCADE,\n"
    "  provider_model TEXT NOT NULL,\n"
    "  priority INTEGER NOT NULL DEFAULT 0,\n"
    "  weight INTEGER NOT NULL DEFAULT 100,\n"
    "  enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),\n"
    "  created_at BIGINT NOT NULL,\n"
    "  updated_at BIGINT NOT NULL,\n"
    "  UNIQUE (client_model, provider_id, provider_model)\n"
    ");\n"
    /* Lookups by client_model use the UNIQUE index (it leads with it). */
    "CREATE INDEX model_mappings_provider_id ON model_mappings(provider_id);\n"

    "CREATE TABLE client_keys (\n"
    "  id {{ID}},\n"
    "  name TEXT NOT NULL,\n"
    "  key_hash TEXT NOT NULL UNIQUE,\n"
    "  key_prefix TEXT NOT NULL,\n"
    "  enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),\n"
    "  expires_at BIGINT,\n"
    "  allowed_models TEXT NOT NULL DEFAULT '[]',\n" /* JSON array of model names, [] = all */
    "  rpm_limit INTEGER NOT NULL DEFAULT 0,\n"
    "  tpm_limit INTEGER NOT NULL DEFAULT 0,\n"
    "  max_concurrency INTEGER NOT NULL DEFAULT 0,\n"
    "  last_used_at BIGINT,\n"
    "  created_at BIGINT NOT NULL,\n"
    "  updated_at BIGINT NOT NULL\n"
    ");\n"

    /* No foreign keys here on purpose: log rows outlive keys and providers. */
    "CREATE TABLE request_logs (\n"
    "  id TEXT PRIMARY KEY,\n" /* the request id */
    "  created_at BIGINT NOT NULL,\n"
    "  client_key_id BIGINT,\n"
    "  client_key_name TEXT,\n"
    "  client_format TEXT,\n"
    "  client_model TEXT,\n"
    "  provider_id BIGINT,\n"
    "  provider_name TEXT,\n"
    "  provider_model TEXT,\n"
    "  status_code INTEGER,\n"
    "  outcome TEXT,\n"
    "  error TEXT,\n"
    "  latency_ms INTEGER,\n"
    "  ttft_ms INTEGER,\n"
    "  prompt_tokens INTEGER,\n"
    "  completion_tokens INTEGER,\n"
    "  total_tokens INTEGER,\n"
    "  cached_tokens INTEGER,\n"
    "  stream INTEGER NOT NULL DEFAULT 0 CHECK (stream IN (0, 1)),\n"
    "  client_addr TEXT,\n"
    "  attempts TEXT,\n" /* JSON array of upstream attempts */
    "  request_body TEXT,\n"
    "  response_body TEXT\n"
    ");\n"
    "CREATE INDEX request_logs_created_at ON request_logs(created_at);\n"
    "CREATE INDEX request_logs_provider_id_created_at ON request_logs(provider_id, created_at);\n"
    "CREATE INDEX request_logs_client_key_id_created_at ON request_logs(client_key_id, created_at);\n"
    "CREATE INDEX request_logs_status_code_created_at ON request_logs(status_code, created_at);\n"

    "CREATE TABLE health_checks (\n"
    "  id {{ID}},\n"
    "  provider_id BIGINT NOT NULL REFERENCES providers(id) ON DELETE CASCADE,\n"
    "  checked_at BIGINT NOT NULL,\n"
    "  status TEXT NOT NULL,\n"
    "  status_code INTEGER,\n"
    "  latency_ms INTEGER,\n"
    "  error TEXT\n"
    ");\n"
    "CREATE INDEX health_checks_provider_id_checked_at ON health_checks(provider_id, checked_at);\n"

    "CREATE TABLE settings (\n"
    "  key TEXT PRIMARY KEY,\n"
    "  value TEXT NOT NULL,\n"
    "  updated_at BIGINT NOT NULL\n"
    ");\n"

    "CREATE TABLE schema_migrations (\n"
    "  version INTEGER PRIMARY KEY,\n"
    "  name TEXT NOT NULL,\n"
    "  applied_at BIGINT NOT NULL\n"
    ");\n";

static const struct migration migrations[] = {
	{ 1, "initial schema", m001_initial },
};

#define MIGRATION_COUNT (sizeof(migrations) / sizeof(migrations[0]))

const struct migration *migrations_list(size_t *count_out)
{
	*count_out = MIGRATION_COUNT;
	return migrations;
}

int migrations_latest(void)
{
	return migrations[MIGRATION_COUNT - 1].version;
}

/* Growable output for migrations_render; the input is our own constant
 * SQL, so its size is bounded by the program text. */
struct sqlbuf {
	char *p; /* owned until handed to the caller */
	size_t len;
	size_t cap;
};

static void sqlbuf_append(struct sqlbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (b->len + n + 1 > cap)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

char *migrations_render(const char *sql, const struct migration_placeholder *ph, size_t count, char *err,
                        size_t errlen)
{
	struct sqlbuf b = { 0 };
	const char *p = sql;

	sqlbuf_append(&b, "", 0);
	for (;;) {
		const char *open = strstr(p, "{{");
		if (!open) {
			sqlbuf_append(&b, p, strlen(p));
			return b.p;
		}
		sqlbuf_append(&b, p, (size_t)(open - p));
		const char *name = open + 2;
		const char *close = strstr(name, "}}");
		if (!close) {
			snprintf(err, errlen, "migration SQL has an unterminated placeholder near \"%.20s\"",
			         open);
			goto fail;
		}
		size_t nlen = (size_t)(close - name);
		size_t i;
		for (i = 0; i < count; i++) {
			if (strlen(ph[i].name) == nlen && memcmp(ph[i].name, name, nlen) == 0)
				break;
		}
		if (i == count) {
			snprintf(err, errlen, "migration SQL uses unknown placeholder {{%.*s}}", (int)nlen,
			         name);
			goto fail;
		}
		sqlbuf_append(&b, ph[i].value, strlen(ph[i].value));
		p = close + 2;
	}
fail:
	free(b.p);
	return NULL;
}
