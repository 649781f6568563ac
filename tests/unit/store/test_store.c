/*
 * test_store.c — unit tests for src/store/ (front + SQLite back-end +
 * migrations).
 *
 * Each test gets its own directory from mkdtemp (created in .init,
 * removed in .fini) and a database path inside it.  Assertions about
 * what is on disk go through a second, raw sqlite3 connection, so they
 * check the file and not the handle's view of it; per-connection
 * settings (foreign_keys, synchronous) are read from the handle's own
 * connection via store__sqlite_db().
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "testutil.h"
#include <sqlite3.h>

#include "store/migrations.h"
#include "store/store.h"
#include "store/store_backend.h"
#include "util/log.h"

static char g_dir[64];
static char g_db[128];

static void setup(void)
{
	log_setup(LOG_WARN, LOG_TEXT); /* keep "migrated schema" lines out of the test output */
	testutil_mkdtemp(g_dir, sizeof(g_dir), "store");
	snprintf(g_db, sizeof(g_db), "%s/fusion.db", g_dir);
}

static void teardown(void)
{
	testutil_rmdir(g_dir);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ----------------------------------------------------------- */

static bool exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

static bool sidecar_exists(const char *db, const char *suffix)
{
	char p[256];
	snprintf(p, sizeof(p), "%s%s", db, suffix);
	return exists(p);
}

/* Whole file into a malloc'd buffer. */
static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	cr_assert_geq(n, 0);
	rewind(f);
	unsigned char *buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void spit(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	cr_assert_eq(rc, SQLITE_OK, "raw open %s: %s", path, db ? sqlite3_errmsg(db) : "?");
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
	sqlite3_free(msg);
}

/* Run sql (one optional text parameter) and return the first column of
 * the first row as int64; -1 when there is no row. */
static long long raw_int(sqlite3 *db, const char *sql, const char *param)
{
	sqlite3_stmt *s = NULL;
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	if (param)
		sqlite3_bind_text(s, 1, param, -1, SQLITE_TRANSIENT);
	long long v = -1;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	else
		cr_assert_eq(rc, SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_finalize(s);
	return v;
}

/* First column of the first row as a malloc'd string, NULL when no row. */
static char *raw_text(sqlite3 *db, const char *sql, const char *param)
{
	sqlite3_stmt *s = NULL;
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	if (param)
		sqlite3_bind_text(s, 1, param, -1, SQLITE_TRANSIENT);
	char *v = NULL;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return v;
}

static struct store *open_ok(const char *path, int flags)
{
	struct store *st = NULL;
	char err[512] = "";
	int rc = store_open(path, flags, &st, err, sizeof(err));
	cr_assert_eq(rc, STORE_OK, "store_open(%s): %d %s", path, rc, err);
	cr_assert_not_null(st);
	return st;
}

static void expect_str(sqlite3 *db, const char *sql, const char *param, const char *want)
{
	char *got = raw_text(db, sql, param);
	cr_assert_not_null(got, "%s: no row", sql);
	cr_assert_str_eq(got, want, "%s", sql);
	free(got);
}

/* A database written by "a newer Fusion": schema_migrations at 999. */
static void make_newer_db(const char *path, bool wal)
{
	sqlite3 *db = raw_open(path);
	if (wal)
		raw_exec(db, "PRAGMA journal_mode = WAL");
	raw_exec(db, "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
	             "applied_at INTEGER NOT NULL);"
	             "INSERT INTO schema_migrations VALUES (1, 'initial schema', 1), (999, 'future', 2);"
	             "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER "
	             "NOT NULL);");
	cr_assert_eq(sqlite3_close(db), SQLITE_OK);
	cr_assert(!sidecar_exists(path, "-wal") && !sidecar_exists(path, "-shm"), "raw close left sidecars");
}

/* ---- migrations ------------------------------------------------------- */

static const char *const all_tables[] = {
	"users",         "sessions",      "login_attempts", "providers",
	"provider_keys", "models",        "model_mappings", "client_keys",
	"request_logs",  "health_checks", "settings",       "schema_migrations",
};

static const char *const all_indexes[] = {
	"sessions_expires_at",
	"login_attempts_scope_at",
	"provider_keys_provider_id",
	"model_mappings_provider_id",
	"request_logs_created_at",
	"request_logs_provider_id_created_at",
	"request_logs_client_key_id_created_at",
	"request_logs_status_code_created_at",
	"health_checks_provider_id_checked_at",
};

Test(store, fresh_open_migrates_every_table)
{
	struct store *st = open_ok(g_db, STORE_MIGRATE);
	int v = -1;

	cr_assert_eq(store_schema_version(st, &v), STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(v, store_schema_version_latest());
	cr_assert_geq(store_schema_version_latest(), 1);
	store_close(st);

	sqlite3 *db = raw_open(g_db);
	for (size_t i = 0; i < sizeof(all_tables) / sizeof(all_tables[0]); i++)
		cr_expect_eq(raw_int(db,
		                     "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
		                     all_tables[i]),
		             1, "table %s missing", all_tables[i]);
	for (size_t i = 0; i < sizeof(all_indexes) / sizeof(all_indexes[0]); i++)
		cr_expect_eq(raw_int(db,
		                     "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?1",
		                     all_indexes[i]),
		             1, "index %s missing", all_indexes[i]);
	cr_assert_eq(raw_int(db, "SELECT MAX(version) FROM schema_migrations", NULL),
	             store_schema_version_latest());
	expect_str(db, "SELECT name FROM schema_migrations WHERE version = 1", NULL, "initial schema");
	long long applied = raw_int(db, "SELECT applied_at FROM schema_migrations WHERE version = 1", NULL);
	cr_assert_gt(applied, 1600000000000LL, "applied_at %lld is not epoch ms", applied);
	cr_assert_lt(applied, 4102444800000LL, "applied_at %lld is not epoch ms", applied);
	sqlite3_close(db);
}

Test(store, migrations_are_contiguous_and_render)
{
	size_t n;
	const struct migration *m = migrations_list(&n);
	cr_assert_geq(n, 1);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(m[i].version, (int)i + 1, "migration %zu has version %d", i, m[i].version);
	cr_assert_eq(migrations_latest(), (int)n);

	const struct migration_placeholder ph[] = { { "ID", "BIGSERIAL PRIMARY KEY" }, { "BLOB", "BYTEA" } };
	char err[128] = "";
	char *out = migrations_render("a {{ID}}, b {{BLOB}}, c {{ID}};", ph, 2, err, sizeof(err));
	cr_assert_not_null(out, "%s", err);
	cr_assert_str_eq(out, "a BIGSERIAL PRIMARY KEY, b BYTEA, c BIGSERIAL PRIMARY KEY;");
	free(out);

	cr_assert_null(migrations_render("x {{NOPE}}", ph, 2, err, sizeof(err)));
	cr_assert(strstr(err, "NOPE"), "message: %s", err);
	cr_assert_null(migrations_render("x {{ID", ph, 2, err, sizeof(err)));

	/* Every placeholder the real migrations use is one every back-end knows. */
	const struct migration_placeholder all[] = { { "ID", "" }, { "BLOB", "" }, { "REAL", "" } };
	for (size_t i = 0; i < n; i++) {
		out = migrations_render(m[i].sql, all, 3, err, sizeof(err));
		cr_assert_not_null(out, "migration %d: %s", m[i].version, err);
		cr_assert_null(strstr(out, "{{"));
		free(out);
	}
}

Test(store, reopen_is_fine_and_does_not_remigrate)
{
	store_close(open_ok(g_db, STORE_MIGRATE));
	struct store *st = open_ok(g_db, STORE_MIGRATE);
	cr_assert_eq(store_setting_set(st, "a", "1"), STORE_OK, "%s", store_errmsg(st));
	store_close(st);
	/* Up to date: opening without STORE_MIGRATE works too. */
	st = open_ok(g_db, 0);
	char *v = NULL;
	cr_assert_eq(store_setting_get(st, "a", &v), STORE_OK, "%s", store_errmsg(st));
	cr_assert_str_eq(v, "1");
	free(v);
	store_close(st);

	sqlite3 *db = raw_open(g_db);
	cr_assert_eq(raw_int(db, "SELECT count(*) FROM schema_migrations", NULL),
	             store_schema_version_latest());
	sqlite3_close(db);
}

Test(store, two_handles_open_at_once)
{
	struct store *a = open_ok(g_db, STORE_MIGRATE);
	struct store *b = open_ok(g_db, STORE_MIGRATE);
	struct store *c = open_ok(g_db, STORE_LOG_WRITER);
	char *v = NULL;

	cr_assert_eq(store_setting_set(a, "k", "from a"), STORE_OK, "%s", store_errmsg(a));
	cr_assert_eq(store_setting_get(b, "k", &v), STORE_OK, "%s", store_errmsg(b));
	cr_assert_str_eq(v, "from a");
	free(v);
	cr_assert_eq(store_setting_set(b, "k", "from b"), STORE_OK, "%s", store_errmsg(b));
	cr_assert_eq(store_setting_get(c, "k", &v), STORE_OK, "%s", store_errmsg(c));
	cr_assert_str_eq(v, "from b");
	free(v);
	store_close(a);
	store_close(b);
	store_close(c);
}

struct race {
	pthread_barrier_t *barrier;
	const char *path;
	int rc;
	char err[512];
};

static void *race_open(void *arg)
{
	struct race *r = arg;
	struct store *st = NULL;

	pthread_barrier_wait(r->barrier);
	r->rc = store_open(r->path, STORE_MIGRATE, &st, r->err, sizeof(r->err));
	if (r->rc == STORE_OK) {
		r->rc = store_setting_set(st, "race", "x");
		if (r->rc)
			snprintf(r->err, sizeof(r->err), "%s", store_errmsg(st));
	}
	store_close(st);
	return NULL;
}

/* Threads stand in for processes: each has its own connection, so they
 * contend on the file locks exactly as separate processes would. */
Test(store, concurrent_first_open_migrates_once)
{
	enum { THREADS = 6, ROUNDS = 8 };

	for (int round = 0; round < ROUNDS; round++) {
		char path[192];
		pthread_barrier_t barrier;
		pthread_t th[THREADS];
		struct race r[THREADS];

		snprintf(path, sizeof(path), "%s/race%d.db", g_dir, round);
		pthread_barrier_init(&barrier, NULL, THREADS);
		for (int i = 0; i < THREADS; i++) {
			r[i] = (struct race){ .barrier = &barrier, .path = path };
			cr_assert_eq(pthread_create(&th[i], NULL, race_open, &r[i]), 0);
		}
		for (int i = 0; i < THREADS; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&barrier);
		for (int i = 0; i < THREADS; i++)
			cr_assert_eq(r[i].rc, STORE_OK, "round %d thread %d: %s", round, i, r[i].err);

		sqlite3 *db = raw_open(path);
		cr_assert_eq(raw_int(db, "SELECT count(*) FROM schema_migrations", NULL),
		             store_schema_version_latest());
		cr_assert_eq(raw_int(db, "PRAGMA auto_vacuum", NULL), 2);
		expect_str(db, "PRAGMA journal_mode", NULL, "wal");
		sqlite3_close(db);
	}
}

Test(store, without_migrate_fresh_db_is_refused)
{
	struct store *st = (struct store *)1;
	char err[512] = "";
	int rc = store_open(g_db, 0, &st, err, sizeof(err));

	cr_assert_eq(rc, STORE_EINVAL, "rc %d: %s", rc, err);
	cr_assert_null(st);
	cr_assert(strstr(err, "migrations are needed"), "message: %s", err);
	/* Refused before any write: no table, no WAL conversion. */
	sqlite3 *db = raw_open(g_db);
	cr_assert_eq(raw_int(db, "SELECT count(*) FROM sqlite_master", NULL), 0);
	sqlite3_close(db);
}

Test(store, without_migrate_behind_db_is_refused)
{
	sqlite3 *db = raw_open(g_db);
	raw_exec(db, "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
	             "applied_at INTEGER NOT NULL)");
	sqlite3_close(db);

	struct store *st = NULL;
	char err[512] = "";
	int rc = store_open(g_db, STORE_LOG_WRITER, &st, err, sizeof(err));
	cr_assert_eq(rc, STORE_EINVAL, "rc %d: %s", rc, err);
	cr_assert_null(st);
	cr_assert(strstr(err, "version 0"), "message: %s", err);
	cr_assert(strstr(err, "migrations are needed"), "message: %s", err);
}

static void check_refuses_newer(bool wal, int flags)
{
	size_t before_len, after_len;
	unsigned char *before, *after;
	struct store *st = NULL;
	char err[512] = "";
	char want[32];

	make_newer_db(g_db, wal);
	before = slurp(g_db, &before_len);
	int rc = store_open(g_db, flags, &st, err, sizeof(err));
	cr_assert_eq(rc, STORE_ETOONEW, "rc %d: %s", rc, err);
	cr_assert_null(st);
	cr_assert(strstr(err, "schema version 999"), "message: %s", err);
	snprintf(want, sizeof(want), "only up to %d", store_schema_version_latest());
	cr_assert(strstr(err, want), "message: %s", err);
	cr_assert(strstr(err, g_db), "message should name the file: %s", err);

	after = slurp(g_db, &after_len);
	cr_assert_eq(after_len, before_len, "file size changed %zu -> %zu", before_len, after_len);
	cr_assert_eq(memcmp(before, after, before_len), 0, "file bytes changed");
	cr_assert(!sidecar_exists(g_db, "-wal"), "-wal left behind");
	cr_assert(!sidecar_exists(g_db, "-shm"), "-shm left behind");
	cr_assert(!sidecar_exists(g_db, "-journal"), "-journal left behind");
	free(before);
	free(after);
}

Test(store, newer_db_refused_untouched)
{
	check_refuses_newer(false, STORE_MIGRATE);
}

Test(store, newer_wal_db_refused_untouched)
{
	check_refuses_newer(true, STORE_MIGRATE);
}

Test(store, newer_db_refused_without_migrate_flag)
{
	/* ETOONEW wins over "needs migrations" and over LOG_WRITER. */
	check_refuses_newer(false, STORE_LOG_WRITER);
}

Test(store, garbage_file_refused_untouched)
{
	unsigned char junk[8192];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] =
		    (unsigned char)("this is definitely not a sqlite database\n"[i % 41] ^ (i / 41 % 3));
	spit(g_db, junk, sizeof(junk));

	struct store *st = NULL;
	char err[512] = "";
	int rc = store_open(g_db, STORE_MIGRATE, &st, err, sizeof(err));
	cr_assert_eq(rc, STORE_EIO, "rc %d: %s", rc, err);
	cr_assert_null(st);
	cr_assert(strstr(err, "not a SQLite database"), "message: %s", err);

	size_t len;
	unsigned char *after = slurp(g_db, &len);
	cr_assert_eq(len, sizeof(junk));
	cr_assert_eq(memcmp(after, junk, len), 0, "garbage file was modified");
	free(after);
	cr_assert(!sidecar_exists(g_db, "-wal") && !sidecar_exists(g_db, "-shm") &&
	          !sidecar_exists(g_db, "-journal"));
}

Test(store, foreign_sqlite_db_refused_untouched)
{
	sqlite3 *db = raw_open(g_db);
	raw_exec(
	    db,
	    "CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT); INSERT INTO photos VALUES (1, 'a')");
	sqlite3_close(db);
	size_t before_len, after_len;
	unsigned char *before = slurp(g_db, &before_len);

	struct store *st = NULL;
	char err[512] = "";
	int rc = store_open(g_db, STORE_MIGRATE, &st, err, sizeof(err));
	cr_assert_eq(rc, STORE_EINVAL, "rc %d: %s", rc, err);
	cr_assert_null(st);
	cr_assert(strstr(err, "not a Fusion database"), "message: %s", err);

	unsigned char *after = slurp(g_db, &after_len);
	cr_assert_eq(after_len, before_len);
	cr_assert_eq(memcmp(before, after, before_len), 0, "foreign database was modified");
	cr_assert(!sidecar_exists(g_db, "-wal"));
	free(before);
	free(after);
}

Test(store, bad_locations_and_flags)
{
	struct store *st = NULL;
	char err[512] = "";

	cr_assert_eq(store_open("postgres://u:p@h/db", STORE_MIGRATE, &st, err, sizeof(err)), STORE_EINVAL);
	cr_assert_str_eq(err, "PostgreSQL back-end not built yet");
	cr_assert_eq(store_open("postgresql://h/db", 0, &st, err, sizeof(err)), STORE_EINVAL);
	cr_assert_str_eq(err, "PostgreSQL back-end not built yet");
	cr_assert_eq(store_open("", STORE_MIGRATE, &st, err, sizeof(err)), STORE_EINVAL);
	cr_assert_eq(store_open(g_db, STORE_MIGRATE | STORE_READONLY, &st, err, sizeof(err)), STORE_EINVAL);
	cr_assert_eq(store_open(g_db, 1 << 10, &st, err, sizeof(err)), STORE_EINVAL);
	cr_assert_null(st);
	cr_assert(!exists(g_db), "a refused open created the file");

	char nodir[256];
	snprintf(nodir, sizeof(nodir), "%s/no/such/dir/x.db", g_dir);
	cr_assert_eq(store_open(nodir, STORE_MIGRATE, &st, err, sizeof(err)), STORE_EIO);
	cr_assert(strstr(err, "cannot open database"), "message: %s", err);
	/* NULL err buffer is allowed. */
	cr_assert_eq(store_open(nodir, STORE_MIGRATE, &st, NULL, 0), STORE_EIO);
	cr_assert_null(st);
}

Test(store, file_colon_path_is_a_path_not_a_uri)
{
	cr_assert_eq(chdir(g_dir), 0);
	store_close(open_ok("file:odd.db?mode=memory", STORE_MIGRATE));
	cr_assert(exists("file:odd.db?mode=memory"), "expected a file with the literal name");
}

/* ---- pragmas and schema behaviour -------------------------------------- */

static long long handle_pragma(struct store *st, const char *sql)
{
	sqlite3 *db = store__sqlite_db(st);
	cr_assert_not_null(db);
	return raw_int(db, sql, NULL);
}

Test(store, pragmas_applied)
{
	struct store *st = open_ok(g_db, STORE_MIGRATE);
	cr_assert_eq(handle_pragma(st, "PRAGMA foreign_keys"), 1);
	cr_assert_eq(handle_pragma(st, "PRAGMA synchronous"), 2, "config handles use synchronous=FULL");
	cr_assert_eq(handle_pragma(st, "PRAGMA busy_timeout"), 5000);

	struct store *lw = open_ok(g_db, STORE_LOG_WRITER);
	cr_assert_eq(handle_pragma(lw, "PRAGMA synchronous"), 1, "log writer uses synchronous=NORMAL");
	cr_assert_eq(handle_pragma(lw, "PRAGMA foreign_keys"), 1);

	/* Persistent settings, seen from an unrelated connection. */
	sqlite3 *db = raw_open(g_db);
	expect_str(db, "PRAGMA journal_mode", NULL, "wal");
	cr_assert_eq(raw_int(db, "PRAGMA auto_vacuum", NULL), 2, "auto_vacuum should be INCREMENTAL");
	sqlite3_close(db);
	store_close(lw);
	store_close(st);
}

Test(store, foreign_keys_enforced_and_cascade)
{
	struct store *st = open_ok(g_db, STORE_MIGRATE);
	sqlite3 *h = store__sqlite_db(st);
	char *msg = NULL;

	/* On the handle's own connection: a dangling reference is refused. */
	int rc =
	    sqlite3_exec(h,
	                 "INSERT INTO models (name, provider_id, provider_model, created_at, updated_at) "
	                 "VALUES ('m', 42, 'pm', 1, 1)",
	                 NULL, NULL, &msg);
	cr_assert_eq(rc & 0xff, SQLITE_CONSTRAINT, "dangling provider_id accepted (foreign_keys off?): %s",
	             msg ? msg : "");
	sqlite3_free(msg);

	/* ON DELETE CASCADE is declared by the schema. */
	raw_exec(
	    h,
	    "INSERT INTO providers (id, name, type, base_url, created_at, updated_at) "
	    "VALUES (1, 'p', 'openai', 'http://x', 1, 1);"
	    "INSERT INTO models (name, provider_id, provider_model, created_at, updated_at) "
	    "VALUES ('m', 1, 'pm', 1, 1);"
	    "INSERT INTO provider_keys (provider_id, key_enc, key_hint, created_at, updated_at) "
	    "VALUES (1, x'00', 'sk-...0', 1, 1);"
	    "INSERT INTO model_mappings (client_model, provider_id, provider_model, created_at, updated_at) "
	    "VALUES ('c', 1, 'pm', 1, 1);"
	    "INSERT INTO health_checks (provider_id, checked_at, status) VALUES (1, 1, 'ok');"
	    "INSERT INTO request_logs (id, created_at, provider_id) VALUES ('req-1', 1, 1);"
	    "DELETE FROM providers WHERE id = 1;");
	cr_assert_eq(raw_int(h, "SELECT count(*) FROM models", NULL), 0);
	cr_assert_eq(raw_int(h, "SELECT count(*) FROM provider_keys", NULL), 0);
	cr_assert_eq(raw_int(h, "SELECT count(*) FROM model_mappings", NULL), 0);
	cr_assert_eq(raw_int(h, "SELECT count(*) FROM health_checks", NULL), 0);
	cr_assert_eq(raw_int(h, "SELECT count(*) FROM request_logs", NULL), 1, "logs must outlive providers");

	/* Defaults and boolean checks. */
	raw_exec(h, "INSERT INTO client_keys (name, key_hash, key_prefix, created_at, updated_at) "
	            "VALUES ('k', 'h', 'fk-', 1, 1)");
	expect_str(h, "SELECT allowed_models FROM client_keys", NULL, "[]");
	cr_assert_eq(raw_int(h, "SELECT enabled FROM client_keys", NULL), 1);
	rc = sqlite3_exec(h, "UPDATE client_keys SET enabled = 2", NULL, NULL, NULL);
	cr_assert_eq(rc & 0xff, SQLITE_CONSTRAINT, "enabled = 2 accepted");
	store_close(st);
}

/* ---- settings ---------------------------------------------------------- */

Test(store, settings_get_set_upsert)
{
	struct store *st = open_ok(g_db, STORE_MIGRATE);
	char *v = (char *)1;

	cr_assert_eq(store_setting_get(st, "missing", &v), STORE_ENOTFOUND);
	cr_assert_null(v);
	cr_assert(strstr(store_errmsg(st), "missing"), "message: %s", store_errmsg(st));

	cr_assert_eq(store_setting_set(st, "theme", "dark"), STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(store_setting_get(st, "theme", &v), STORE_OK);
	cr_assert_str_eq(v, "dark");
	free(v);

	cr_assert_eq(store_setting_set(st, "theme", "light"), STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(store_setting_get(st, "theme", &v), STORE_OK);
	cr_assert_str_eq(v, "light");
	free(v);

	cr_assert_eq(store_setting_set(st, "empty", ""), STORE_OK);
	cr_assert_eq(store_setting_get(st, "empty", &v), STORE_OK);
	cr_assert_str_eq(v, "");
	free(v);

	cr_assert_eq(store_setting_set(st, "", "x"), STORE_EINVAL);
	cr_assert_eq(store_setting_set(st, "k", NULL), STORE_EINVAL);
	cr_assert_eq(store_setting_get(st, "", &v), STORE_EINVAL);
	store_close(st);

	sqlite3 *db = raw_open(g_db);
	cr_assert_eq(raw_int(db, "SELECT count(*) FROM settings WHERE key = 'theme'", NULL), 1);
	expect_str(db, "SELECT value FROM settings WHERE key = ?1", "theme", "light");
	cr_assert_gt(raw_int(db, "SELECT updated_at FROM settings WHERE key = 'theme'", NULL),
	             1600000000000LL);
	sqlite3_close(db);
}

Test(store, settings_sql_metacharacters_verbatim)
{
	static const char *const nasty[] = {
		"it's",
		"\"quoted\"",
		"'; DROP TABLE settings; --",
		"x'00' || ?1 || %s %n {{ID}}",
		"line1\nline2\r\n\ttab",
		"unicode: \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
		"back\\slash",
	};
	struct store *st = open_ok(g_db, STORE_MIGRATE);

	for (size_t i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++) {
		char *v = NULL;
		cr_assert_eq(store_setting_set(st, nasty[i], nasty[i]), STORE_OK, "%s", store_errmsg(st));
		cr_assert_eq(store_setting_get(st, nasty[i], &v), STORE_OK, "%s", store_errmsg(st));
		cr_assert_str_eq(v, nasty[i]);
		free(v);
	}
	store_close(st);

	sqlite3 *db = raw_open(g_db);
	cr_assert_eq(raw_int(db, "SELECT count(*) FROM settings", NULL),
	             (long long)(sizeof(nasty) / sizeof(nasty[0])));
	for (size_t i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++)
		expect_str(db, "SELECT value FROM settings WHERE key = ?1", nasty[i], nasty[i]);
	sqlite3_close(db);
}

Test(store, settings_bounds)
{
	struct store *st = open_ok(g_db, STORE_MIGRATE);
	char key[300];
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	cr_assert_eq(store_setting_set(st, key, "v"), STORE_EINVAL);

	size_t big = 1024 * 1024 + 1;
	char *value = malloc(big + 1);
	cr_assert_not_null(value);
	memset(value, 'v', big);
	value[big] = '\0';
	cr_assert_eq(store_setting_set(st, "big", value), STORE_EINVAL);
	value[big - 1] = '\0'; /* exactly at the limit is fine */
	cr_assert_eq(store_setting_set(st, "big", value), STORE_OK, "%s", store_errmsg(st));
	free(value);
	store_close(st);
}

Test(store, readonly_handle)
{
	struct store *st = open_ok(g_db, STORE_MIGRATE);
	cr_assert_eq(store_setting_set(st, "k", "v"), STORE_OK);
	store_close(st);

	st = open_ok(g_db, STORE_READONLY);
	char *v = NULL;
	cr_assert_eq(store_setting_get(st, "k", &v), STORE_OK, "%s", store_errmsg(st));
	cr_assert_str_eq(v, "v");
	free(v);
	cr_assert_eq(store_setting_set(st, "k", "w"), STORE_EINVAL);
	cr_assert_eq(store_ping(st), STORE_OK);
	store_close(st);

	char missing[192];
	snprintf(missing, sizeof(missing), "%s/missing.db", g_dir);
	struct store *none = NULL;
	char err[512];
	cr_assert_eq(store_open(missing, STORE_READONLY, &none, err, sizeof(err)), STORE_EIO);
	cr_assert(!exists(missing), "read-only open created the file");
}

Test(store, ping_and_errors)
{
	struct store *st = open_ok(g_db, STORE_MIGRATE);
	cr_assert_eq(store_ping(st), STORE_OK, "%s", store_errmsg(st));

	/* A database error surfaces as STORE_EIO with SQLite's message. */
	raw_exec(store__sqlite_db(st), "DROP TABLE settings");
	cr_assert_eq(store_setting_set(st, "k", "v"), STORE_EIO);
	cr_assert(strstr(store_errmsg(st), "no such table"), "message: %s", store_errmsg(st));
	char *v = NULL;
	cr_assert_eq(store_setting_get(st, "k", &v), STORE_EIO);
	cr_assert_null(v);
	cr_assert_eq(store_ping(st), STORE_OK, "%s", store_errmsg(st));
	store_close(st);
	store_close(NULL);
}
