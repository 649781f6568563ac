/*
 * test_store_query.c — unit tests for the generic SQL interface of the
 * store (store_exec, store_query, struct store_rows, transactions) on the
 * SQLite back-end, and for the schema constraints it reports.
 *
 * Each test gets its own directory (mkdtemp in .init, removed in .fini).
 * What must be true on disk is checked through a second, raw sqlite3
 * connection, so a test cannot pass on the handle's own view alone.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "testutil.h"
#include <sqlite3.h>

#include "store/store.h"
#include "store/store_backend.h"
#include "util/log.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static char g_dir[64];
static char g_db[128];

static void setup(void)
{
	log_setup(LOG_WARN, LOG_TEXT);
	testutil_mkdtemp_db(g_dir, sizeof(g_dir), g_db, sizeof(g_db), "sq");
}

static void teardown(void)
{
	testutil_rmdir(g_dir);
}

TestSuite(store_query, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ----------------------------------------------------------- */

static struct store *open_ok(int flags)
{
	return testutil_store_open(g_db, flags);
}

static sqlite3 *raw_open(void)
{
	sqlite3 *db = NULL;
	cr_assert_eq(sqlite3_open_v2(g_db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

/* First column of the first row of a constant query, -1 without a row. */
static long long raw_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	long long v = -1;

	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* The same, on a fresh raw connection: what is durably in the file. */
static long long disk_int(const char *sql)
{
	sqlite3 *db = raw_open();
	long long v = raw_int(db, sql);
	sqlite3_close(db);
	return v;
}

static void exec_ok(struct store *st, const char *sql, const struct store_value *p, size_t n)
{
	int rc = store_exec(st, sql, p, n, NULL);
	cr_assert_eq(rc, STORE_OK, "%s: %d %s", sql, rc, store_errmsg(st));
}

static struct store_rows *query_ok(struct store *st, const char *sql, const struct store_value *p, size_t n)
{
	struct store_rows *r = NULL;
	int rc = store_query(st, sql, p, n, &r);
	cr_assert_eq(rc, STORE_OK, "%s: %d %s", sql, rc, store_errmsg(st));
	cr_assert_not_null(r);
	return r;
}

/* One integer from a query, e.g. a count. */
static int64_t query_int(struct store *st, const char *sql, const struct store_value *p, size_t n)
{
	struct store_rows *r = query_ok(st, sql, p, n);
	cr_assert_eq(store_rows_count(r), 1, "%s", sql);
	const struct store_value *v = store_rows_get(r, 0, 0);
	cr_assert_not_null(v);
	cr_assert_eq(v->type, STORE_T_INT, "%s: type %d", sql, v->type);
	int64_t i = v->i;
	store_rows_free(r);
	return i;
}

static int64_t add_provider(struct store *st, const char *name)
{
	const struct store_value p[] = { sv_text(name), sv_text("openai"), sv_text("http://up"), sv_int(1),
		                         sv_int(1) };
	struct store_rows *r =
	    query_ok(st,
	             "INSERT INTO providers (name, type, base_url, created_at, updated_at) "
	             "VALUES (?, ?, ?, ?, ?) RETURNING id",
	             p, COUNT(p));
	cr_assert_eq(store_rows_count(r), 1);
	int64_t id = store_rows_int(r, 0, "id", -1);
	cr_assert_gt(id, 0);
	store_rows_free(r);
	return id;
}

static void add_model(struct store *st, int64_t provider_id, const char *name)
{
	const struct store_value p[] = { sv_text(name), sv_int(provider_id), sv_text(name) };
	exec_ok(st,
	        "INSERT INTO models (name, provider_id, provider_model, created_at, updated_at) "
	        "VALUES (?, ?, ?, 1, 1)",
	        p, COUNT(p));
}

static void assert_msg_clean(struct store *st, const char *secret)
{
	cr_assert_null(strstr(store_errmsg(st), secret), "message leaks a parameter: %s", store_errmsg(st));
}

/* ---- values ------------------------------------------------------------ */

Test(store_query, round_trip_every_type)
{
	static const unsigned char blob[] = { 0x00, 0x01, 0xff, 0x00, 'a', 0x00 };
	static const char utf8[] = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad";
	const struct store_value in[] = {
		sv_null(),
		sv_int(INT64_MIN),
		sv_int(INT64_MAX),
		sv_int(0),
		sv_bool(true),
		sv_real(3.141592653589793),
		sv_real(-1e308),
		sv_real(INFINITY),
		sv_text(utf8),
		sv_text(""),
		sv_textn("abcdef", 3), /* not NUL-terminated at len */
		sv_blob(blob, sizeof(blob)),
		sv_blob(NULL, 0),
		sv_text(NULL), /* NULL text is a NULL value */
	};
	struct store *st = open_ok(STORE_MIGRATE);

	/* An untyped column keeps every value exactly as bound. */
	exec_ok(st, "CREATE TABLE t (k INTEGER PRIMARY KEY, v)", NULL, 0);
	for (size_t i = 0; i < COUNT(in); i++) {
		const struct store_value p[] = { sv_int((int64_t)i), in[i] };
		int64_t changes = -1;
		cr_assert_eq(store_exec(st, "INSERT INTO t (k, v) VALUES (?, ?)", p, 2, &changes), STORE_OK,
		             "%zu: %s", i, store_errmsg(st));
		cr_assert_eq(changes, 1);
	}

	struct store_rows *r = query_ok(st, "SELECT k, v, typeof(v) AS ty FROM t ORDER BY k", NULL, 0);
	cr_assert_eq(store_rows_count(r), COUNT(in));
	cr_assert_eq(store_rows_ncols(r), 3);
	cr_assert_str_eq(store_rows_colname(r, 1), "v");
	static const char *const want_ty[] = { "null", "integer", "integer", "integer", "integer",
		                               "real", "real",    "real",    "text",    "text",
		                               "text", "blob",    "blob",    "null" };
	for (size_t i = 0; i < COUNT(in); i++) {
		const struct store_value *v = store_rows_get(r, i, 1);
		enum store_type want = in[i].type == STORE_T_TEXT && !in[i].p ? STORE_T_NULL : in[i].type;
		cr_assert_not_null(v);
		cr_assert_str_eq(store_rows_text(r, i, "ty"), want_ty[i], "row %zu stored as the wrong type",
		                 i);
		cr_assert_eq(v->type, want, "row %zu: type %d, want %d", i, v->type, want);
		switch (want) {
		case STORE_T_INT:
			cr_assert_eq(v->i, in[i].i, "row %zu", i);
			break;
		case STORE_T_REAL:
			cr_assert(v->d == in[i].d, "row %zu: %.17g != %.17g", i, v->d, in[i].d);
			break;
		case STORE_T_TEXT:
		case STORE_T_BLOB:
			cr_assert_eq(v->len, in[i].len, "row %zu: len %zu", i, v->len);
			cr_assert_not_null(v->p, "row %zu: empty values still point somewhere", i);
			cr_assert_eq(memcmp(v->p, in[i].len ? in[i].p : "", in[i].len), 0, "row %zu bytes",
			             i);
			if (want == STORE_T_TEXT)
				cr_assert_eq(((const char *)v->p)[v->len], '\0',
				             "row %zu: copy not terminated", i);
			break;
		case STORE_T_NULL:
			cr_assert(store_rows_isnull(r, i, "v"));
			break;
		}
	}
	cr_assert_str_eq(store_rows_text(r, 8, "v"), utf8);
	cr_assert_str_eq(store_rows_text(r, 10, "v"), "abc");
	store_rows_free(r);

	/* The same from the file, not the handle. */
	sqlite3 *db = raw_open();
	cr_assert_eq(raw_int(db, "SELECT v FROM t WHERE k = 1") == (long long)INT64_MIN, true);
	cr_assert_eq(raw_int(db, "SELECT length(v) FROM t WHERE k = 11"), (long long)sizeof(blob));
	cr_assert_eq(raw_int(db, "SELECT v = x'0001ff00610000' FROM t WHERE k = 11"), 0);
	cr_assert_eq(raw_int(db, "SELECT v = x'0001ff006100' FROM t WHERE k = 11"), 1);
	sqlite3_close(db);
	store_close(st);
}

Test(store_query, real_schema_columns_round_trip)
{
	static const unsigned char enc[] = { 0x00, 0x10, 0x00, 0x7f };
	struct store *st = open_ok(STORE_MIGRATE);
	int64_t pid = add_provider(st, "p");
	const struct store_value p[] = { sv_int(pid), sv_blob(enc, sizeof(enc)), sv_text("sk-...abcd") };

	exec_ok(st,
	        "INSERT INTO provider_keys (provider_id, key_enc, key_hint, created_at, updated_at) "
	        "VALUES (?, ?, ?, 1, 1)",
	        p, COUNT(p));
	const struct store_value q[] = { sv_real(2.5), sv_int(pid) };
	add_model(st, pid, "gpt");
	exec_ok(st, "UPDATE models SET input_price_per_mtok = ? WHERE provider_id = ?", q, 2);

	struct store_rows *r = query_ok(st,
	                                "SELECT k.key_enc, k.key_hint, m.input_price_per_mtok AS price, "
	                                "m.output_price_per_mtok AS out_price, p.headers_hint "
	                                "FROM provider_keys k JOIN models m ON m.provider_id = k.provider_id "
	                                "JOIN providers p ON p.id = k.provider_id",
	                                NULL, 0);
	cr_assert_eq(store_rows_count(r), 1);
	const struct store_value *v = store_rows_get(r, 0, 0);
	cr_assert_eq(v->type, STORE_T_BLOB);
	cr_assert_eq(v->len, sizeof(enc));
	cr_assert_eq(memcmp(v->p, enc, sizeof(enc)), 0);
	cr_assert_str_eq(store_rows_text(r, 0, "key_hint"), "sk-...abcd");
	cr_assert(store_rows_real(r, 0, "price", 0) == 2.5);
	cr_assert(store_rows_isnull(r, 0, "out_price"));
	cr_assert(store_rows_real(r, 0, "out_price", -7) == -7);
	cr_assert_str_eq(store_rows_text(r, 0, "headers_hint"), "{}", "headers_hint default");
	store_rows_free(r);
	store_close(st);
}

Test(store_query, big_text_round_trips)
{
	size_t n = 1024 * 1024;
	char *big = malloc(n + 1);
	cr_assert_not_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	big[n] = '\0';
	struct store *st = open_ok(STORE_MIGRATE);
	const struct store_value p[] = { sv_text("big"), sv_text(big) };

	exec_ok(st, "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, 1)", p, 2);
	struct store_rows *r = query_ok(st, "SELECT value FROM settings WHERE key = ?", p, 1);
	const struct store_value *v = store_rows_get(r, 0, 0);
	cr_assert_not_null(v);
	cr_assert_eq(v->type, STORE_T_TEXT);
	cr_assert_eq(v->len, n);
	cr_assert_eq(memcmp(v->p, big, n), 0);
	cr_assert_eq(strlen(store_rows_text(r, 0, "value")), n);
	store_rows_free(r);
	cr_assert_eq(disk_int("SELECT length(value) FROM settings WHERE key = 'big'"), (long long)n);
	free(big);
	store_close(st);
}

Test(store_query, injection_shaped_strings_stored_verbatim)
{
	static const char *const nasty[] = {
		"'; DROP TABLE providers; --",
		"Robert'); DELETE FROM settings WHERE ('1' = '1",
		"\" OR \"\" = \"",
		"? ?1 :name @x $1 %s %n",
		"x' || (SELECT value FROM settings LIMIT 1) || '",
		"/* comment */ -- trailing",
		"BEGIN; COMMIT;",
	};
	struct store *st = open_ok(STORE_MIGRATE);

	for (size_t i = 0; i < COUNT(nasty); i++) {
		const struct store_value p[] = { sv_text(nasty[i]), sv_text(nasty[i]) };
		exec_ok(st, "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, 1)", p, 2);
		struct store_rows *r = query_ok(st, "SELECT value FROM settings WHERE key = ?", p, 1);
		cr_assert_eq(store_rows_count(r), 1, "%s", nasty[i]);
		cr_assert_str_eq(store_rows_text(r, 0, "value"), nasty[i]);
		store_rows_free(r);
	}
	cr_assert_eq(query_int(st, "SELECT count(*) AS n FROM settings", NULL, 0), (int64_t)COUNT(nasty));
	store_close(st);
	cr_assert_eq(disk_int("SELECT count(*) FROM sqlite_master WHERE name = 'providers'"), 1);
	cr_assert_eq(disk_int("SELECT count(*) FROM settings"), (long long)COUNT(nasty));
}

Test(store_query, bad_parameters_refused)
{
	struct store *st = open_ok(STORE_MIGRATE);
	const struct store_value one[] = { sv_text("k") };
	const struct store_value three[] = { sv_text("k"), sv_text("v"), sv_int(1) };
	const char *ins = "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, 1)";
	struct store_rows *r = (struct store_rows *)1;

	cr_assert_eq(store_exec(st, ins, one, 1, NULL), STORE_EINVAL);
	cr_assert(strstr(store_errmsg(st), "2 placeholders but 1 parameter"), "%s", store_errmsg(st));
	cr_assert_eq(store_exec(st, ins, three, 3, NULL), STORE_EINVAL);
	cr_assert_eq(store_exec(st, ins, NULL, 0, NULL), STORE_EINVAL);
	cr_assert_eq(store_exec(st, ins, NULL, 2, NULL), STORE_EINVAL, "NULL params with a count");
	cr_assert_eq(store_exec(st, "SELECT 1", one, 1, NULL), STORE_EINVAL);
	cr_assert_eq(store_query(st, "SELECT ? AS a", NULL, 0, &r), STORE_EINVAL);
	cr_assert_null(r, "*out must be NULL on failure");
	cr_assert_eq(store_query(st, "SELECT 1", NULL, 0, NULL), STORE_EINVAL);

	/* Values the front refuses, without echoing them. */
	const struct store_value bad[][2] = {
		{ sv_text("k"), sv_textn("a\0secret-b", 10) },        /* NUL in TEXT */
		{ sv_text("k"), sv_text("secret-\xc3\x28") },         /* invalid UTF-8 */
		{ sv_text("k"), sv_text("secret-\xed\xa0\x80") },     /* surrogate */
		{ sv_text("k"), sv_text("secret-\xc0\xaf") },         /* overlong */
		{ sv_text("k"), sv_textn(NULL, 3) },                  /* NULL pointer with a length */
		{ sv_text("k"), sv_real(NAN) },                       /* SQLite would store NULL */
		{ sv_text("k"), { .type = (enum store_type)42 } },    /* unknown type */
		{ sv_text("k"), sv_blob(NULL, STORE_VALUE_MAX + 1) }, /* over the bound */
	};
	for (size_t i = 0; i < COUNT(bad); i++) {
		cr_assert_eq(store_exec(st, ins, bad[i], 2, NULL), STORE_EINVAL, "case %zu", i);
		cr_assert(strstr(store_errmsg(st), "parameter 2"), "case %zu: %s", i, store_errmsg(st));
		assert_msg_clean(st, "secret");
	}

	/* SQL the front or the back-end refuses. */
	cr_assert_eq(store_exec(st, "", NULL, 0, NULL), STORE_EINVAL);
	cr_assert_eq(store_exec(st, NULL, NULL, 0, NULL), STORE_EINVAL);
	cr_assert_eq(store_exec(st, "  -- only a comment\n", NULL, 0, NULL), STORE_EINVAL);
	cr_assert_eq(store_exec(st, "SELECT 1; DELETE FROM settings", NULL, 0, NULL), STORE_EINVAL);
	cr_assert(strstr(store_errmsg(st), "more than one statement"), "%s", store_errmsg(st));
	exec_ok(st, "SELECT 1;", NULL, 0);
	exec_ok(st, "SELECT 1; -- done\n /* really */ ;", NULL, 0);
	cr_assert_eq(store_exec(st, "SELEKT 1", NULL, 0, NULL), STORE_EIO);
	cr_assert(strstr(store_errmsg(st), "syntax error"), "%s", store_errmsg(st));
	size_t big = STORE_SQL_MAX + 1;
	char *sql = malloc(big + 1);
	cr_assert_not_null(sql);
	memset(sql, ' ', big);
	memcpy(sql, "SELECT 1", 8);
	sql[big] = '\0';
	cr_assert_eq(store_exec(st, sql, NULL, 0, NULL), STORE_EINVAL);
	free(sql);
	struct store_value many[STORE_PARAMS_MAX + 1];
	for (size_t i = 0; i < COUNT(many); i++)
		many[i] = sv_int(1);
	cr_assert_eq(store_exec(st, "SELECT ?", many, COUNT(many), NULL), STORE_EINVAL);

	/* Nothing got in, and the handle still works. */
	cr_assert_eq(query_int(st, "SELECT count(*) AS n FROM settings", NULL, 0), 0);
	store_close(st);
}

Test(store_query, changes_count_only_this_statement)
{
	struct store *st = open_ok(STORE_MIGRATE);
	int64_t ch = -1;

	exec_ok(st, "INSERT INTO settings (key, value, updated_at) VALUES ('a', '1', 1), ('b', '2', 1)", NULL,
	        0);
	cr_assert_eq(store_exec(st, "UPDATE settings SET value = 'x'", NULL, 0, &ch), STORE_OK);
	cr_assert_eq(ch, 2);
	cr_assert_eq(store_exec(st, "SELECT * FROM settings", NULL, 0, &ch), STORE_OK);
	cr_assert_eq(ch, 0, "a SELECT must not report the previous UPDATE's count");
	cr_assert_eq(store_exec(st, "CREATE TABLE z (a)", NULL, 0, &ch), STORE_OK);
	cr_assert_eq(ch, 0);
	cr_assert_eq(store_exec(st, "DELETE FROM settings WHERE key = 'none'", NULL, 0, &ch), STORE_OK);
	cr_assert_eq(ch, 0);
	cr_assert_eq(store_exec(st, "DELETE FROM settings", NULL, 0, &ch), STORE_OK);
	cr_assert_eq(ch, 2);
	store_close(st);
}

/* ---- error mapping ----------------------------------------------------- */

Test(store_query, unique_violation_is_conflict)
{
	struct store *st = open_ok(STORE_MIGRATE);
	int64_t pid = add_provider(st, "secret-dup-name");
	const struct store_value p[] = { sv_text("secret-dup-name"), sv_text("openai"), sv_text("http://x") };
	const char *ins =
	    "INSERT INTO providers (name, type, base_url, created_at, updated_at) VALUES (?, ?, ?, 1, 1)";

	cr_assert_eq(store_exec(st, ins, p, 3, NULL), STORE_ECONFLICT, "%s", store_errmsg(st));
	cr_assert(strstr(store_errmsg(st), "UNIQUE"), "%s", store_errmsg(st));
	assert_msg_clean(st, "secret");

	/* Explicit primary key reuse. */
	const struct store_value q[] = { sv_int(pid) };
	cr_assert_eq(store_exec(st,
	                        "INSERT INTO providers (id, name, type, base_url, created_at, updated_at) "
	                        "VALUES (?, 'other', 't', 'u', 1, 1)",
	                        q, 1, NULL),
	             STORE_ECONFLICT, "%s", store_errmsg(st));

	/* The new UNIQUE on model_mappings. */
	const struct store_value m[] = { sv_text("c"), sv_int(pid), sv_text("pm") };
	const char *map =
	    "INSERT INTO model_mappings (client_model, provider_id, provider_model, created_at, "
	    "updated_at) VALUES (?, ?, ?, 1, 1)";
	exec_ok(st, map, m, 3);
	cr_assert_eq(store_exec(st, map, m, 3, NULL), STORE_ECONFLICT, "%s", store_errmsg(st));
	const struct store_value m2[] = { sv_text("c"), sv_int(pid), sv_text("pm2") };
	exec_ok(st, map, m2, 3);

	/* models UNIQUE (name, provider_id). */
	add_model(st, pid, "gpt");
	const struct store_value g[] = { sv_text("gpt"), sv_int(pid), sv_text("other") };
	cr_assert_eq(
	    store_exec(st,
	               "INSERT INTO models (name, provider_id, provider_model, created_at, updated_at) "
	               "VALUES (?, ?, ?, 1, 1)",
	               g, 3, NULL),
	    STORE_ECONFLICT);

	/* client_keys names may repeat. */
	const char *ck = "INSERT INTO client_keys (name, key_hash, key_prefix, created_at, updated_at) "
	                 "VALUES ('same', ?, 'fk-', 1, 1)";
	const struct store_value h1[] = { sv_text("h1") }, h2[] = { sv_text("h2") };
	exec_ok(st, ck, h1, 1);
	exec_ok(st, ck, h2, 1);
	cr_assert_eq(store_exec(st, ck, h2, 1, NULL), STORE_ECONFLICT, "key_hash is unique");
	cr_assert_eq(disk_int("SELECT count(*) FROM providers"), 1);
	store_close(st);
}

Test(store_query, foreign_key_violation_is_constraint)
{
	struct store *st = open_ok(STORE_MIGRATE);
	const struct store_value p[] = { sv_text("m"), sv_int(999), sv_text("secret-pm") };

	cr_assert_eq(
	    store_exec(st,
	               "INSERT INTO models (name, provider_id, provider_model, created_at, updated_at) "
	               "VALUES (?, ?, ?, 1, 1)",
	               p, 3, NULL),
	    STORE_ECONSTRAINT, "%s", store_errmsg(st));
	cr_assert(strstr(store_errmsg(st), "FOREIGN KEY"), "%s", store_errmsg(st));
	assert_msg_clean(st, "secret");
	cr_assert_eq(disk_int("SELECT count(*) FROM models"), 0);
	store_close(st);
}

Test(store_query, check_and_not_null_violations_are_constraint)
{
	struct store *st = open_ok(STORE_MIGRATE);
	int64_t pid = add_provider(st, "p");
	const struct store_value p[] = { sv_int(2), sv_int(pid) };

	cr_assert_eq(store_exec(st, "UPDATE providers SET enabled = ? WHERE id = ?", p, 2, NULL),
	             STORE_ECONSTRAINT, "%s", store_errmsg(st));
	cr_assert(strstr(store_errmsg(st), "CHECK"), "%s", store_errmsg(st));
	cr_assert_eq(disk_int("SELECT enabled FROM providers"), 1);

	const struct store_value n[] = { sv_null(), sv_text("secret-type") };
	cr_assert_eq(store_exec(st,
	                        "INSERT INTO providers (name, type, base_url, created_at, updated_at) "
	                        "VALUES (?, ?, 'u', 1, 1)",
	                        n, 2, NULL),
	             STORE_ECONSTRAINT, "%s", store_errmsg(st));
	cr_assert(strstr(store_errmsg(st), "NOT NULL"), "%s", store_errmsg(st));
	assert_msg_clean(st, "secret");

	/* Other database errors stay STORE_EIO. */
	cr_assert_eq(store_exec(st, "SELECT * FROM no_such_table", NULL, 0, NULL), STORE_EIO);
	cr_assert(strstr(store_errmsg(st), "no such table"), "%s", store_errmsg(st));
	store_close(st);
}

/* ---- transactions ------------------------------------------------------ */

Test(store_query, rollback_leaves_nothing)
{
	struct store *st = open_ok(STORE_MIGRATE);

	cr_assert_eq(store_begin(st), STORE_OK, "%s", store_errmsg(st));
	int64_t pid = add_provider(st, "p");
	add_model(st, pid, "m");
	exec_ok(st, "INSERT INTO settings (key, value, updated_at) VALUES ('k', 'v', 1)", NULL, 0);
	cr_assert_eq(query_int(st, "SELECT count(*) AS n FROM models", NULL, 0), 1, "visible inside");
	cr_assert_eq(disk_int("SELECT count(*) FROM providers"), 0, "visible outside before commit");
	cr_assert_eq(store_rollback(st), STORE_OK, "%s", store_errmsg(st));

	cr_assert_eq(query_int(st, "SELECT count(*) AS n FROM providers", NULL, 0), 0);
	cr_assert_eq(query_int(st, "SELECT count(*) AS n FROM settings", NULL, 0), 0);
	store_close(st);
	cr_assert_eq(disk_int("SELECT count(*) FROM providers"), 0);
	cr_assert_eq(disk_int("SELECT count(*) FROM models"), 0);
	cr_assert_eq(disk_int("SELECT count(*) FROM settings"), 0);
}

Test(store_query, commit_persists_across_reopen)
{
	struct store *st = open_ok(STORE_MIGRATE);

	cr_assert_eq(store_begin(st), STORE_OK, "%s", store_errmsg(st));
	int64_t pid = add_provider(st, "p");
	add_model(st, pid, "m1");
	add_model(st, pid, "m2");
	cr_assert_eq(store_commit(st), STORE_OK, "%s", store_errmsg(st));
	store_close(st);

	st = open_ok(0);
	struct store_rows *r = query_ok(st, "SELECT name FROM models ORDER BY name", NULL, 0);
	cr_assert_eq(store_rows_count(r), 2);
	cr_assert_str_eq(store_rows_text(r, 0, "name"), "m1");
	cr_assert_str_eq(store_rows_text(r, 1, "name"), "m2");
	store_rows_free(r);
	store_close(st);
	cr_assert_eq(disk_int("SELECT count(*) FROM models"), 2);
}

Test(store_query, autocommit_is_durable_at_once)
{
	struct store *st = open_ok(STORE_MIGRATE);

	add_provider(st, "p");
	/* Another connection sees it before the handle closes. */
	cr_assert_eq(disk_int("SELECT count(*) FROM providers"), 1);
	cr_assert_eq(raw_int(store__sqlite_db(st), "PRAGMA synchronous"), 2);
	store_close(st);
}

Test(store_query, nested_begin_and_stray_control_refused)
{
	struct store *st = open_ok(STORE_MIGRATE);

	cr_assert_eq(store_commit(st), STORE_EINVAL, "commit without begin");
	cr_assert_eq(store_rollback(st), STORE_OK, "rollback without begin is a no-op");
	cr_assert_eq(store_begin(st), STORE_OK, "%s", store_errmsg(st));
	add_provider(st, "p");
	cr_assert_eq(store_begin(st), STORE_EINVAL);
	cr_assert(strstr(store_errmsg(st), "already open"), "%s", store_errmsg(st));

	/* Transaction control must not hide in SQL text. */
	static const char *const control[] = {
		"COMMIT",
		"  commit transaction",
		"END",
		"ROLLBACK",
		"/* x */ ROLLBACK TO s",
		"SAVEPOINT s",
		"RELEASE s",
		"BEGIN",
		";BEGIN",
		"-- c\nbegin immediate",
	};
	for (size_t i = 0; i < COUNT(control); i++)
		cr_assert_eq(store_exec(st, control[i], NULL, 0, NULL), STORE_EINVAL, "%s", control[i]);

	/* The first transaction is intact and still open. */
	cr_assert(!sqlite3_get_autocommit(store__sqlite_db(st)));
	cr_assert_eq(disk_int("SELECT count(*) FROM providers"), 0);
	cr_assert_eq(store_commit(st), STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(disk_int("SELECT count(*) FROM providers"), 1);
	cr_assert_eq(store_commit(st), STORE_EINVAL, "double commit");
	/* Not starting with a control word: fine. */
	exec_ok(st, "SELECT 'BEGIN' AS word", NULL, 0);
	store_close(st);
}

Test(store_query, aborted_transaction_is_not_continued_in_autocommit)
{
	struct store *st = open_ok(STORE_MIGRATE);

	cr_assert_eq(store_begin(st), STORE_OK);
	add_provider(st, "p1");
	/* What SQLite does on disk-full or an I/O error: the transaction is gone. */
	cr_assert_eq(sqlite3_exec(store__sqlite_db(st), "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);

	const struct store_value p[] = { sv_text("p2"), sv_text("t"), sv_text("u") };
	const char *ins =
	    "INSERT INTO providers (name, type, base_url, created_at, updated_at) VALUES (?, ?, ?, 1, 1)";
	cr_assert_eq(store_exec(st, ins, p, 3, NULL), STORE_EIO);
	cr_assert(strstr(store_errmsg(st), "aborted"), "%s", store_errmsg(st));
	cr_assert_eq(store_commit(st), STORE_EIO, "commit of an aborted transaction");
	cr_assert_eq(disk_int("SELECT count(*) FROM providers"), 0, "nothing may have autocommitted");
	cr_assert_eq(store_rollback(st), STORE_OK);
	exec_ok(st, ins, p, 3);
	cr_assert_eq(disk_int("SELECT count(*) FROM providers"), 1);
	store_close(st);
}

Test(store_query, failed_statement_inside_transaction_keeps_it)
{
	struct store *st = open_ok(STORE_MIGRATE);

	cr_assert_eq(store_begin(st), STORE_OK);
	int64_t pid = add_provider(st, "p");
	const struct store_value p[] = { sv_int(999) };
	cr_assert_eq(
	    store_exec(st,
	               "INSERT INTO models (name, provider_id, provider_model, created_at, updated_at) "
	               "VALUES ('m', ?, 'pm', 1, 1)",
	               p, 1, NULL),
	    STORE_ECONSTRAINT);
	add_model(st, pid, "ok");
	cr_assert_eq(store_commit(st), STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(disk_int("SELECT count(*) FROM models"), 1);
	cr_assert_eq(disk_int("SELECT count(*) FROM providers"), 1);
	store_close(st);
}

struct writer {
	int rc;
	char err[512];
	int64_t waited_ms;
	int64_t seen; /* providers counted inside the transaction */
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *second_writer(void *arg)
{
	struct writer *w = arg;
	struct store *st = NULL;

	w->rc = store_open(g_db, 0, &st, w->err, sizeof(w->err));
	if (w->rc)
		return NULL;
	int64_t t0 = mono_ms();
	w->rc = store_begin(st);
	if (w->rc == STORE_OK) {
		/* Read, then write: with a deferred BEGIN the read would run on
		 * the old snapshot and the write fail with SQLITE_BUSY_SNAPSHOT. */
		struct store_rows *r = NULL;
		w->rc = store_query(st, "SELECT count(*) AS n FROM providers", NULL, 0, &r);
		w->seen = store_rows_int(r, 0, "n", -1);
		store_rows_free(r);
	}
	if (w->rc == STORE_OK) {
		const struct store_value p[] = { sv_text("b"), sv_text("t"), sv_text("u") };
		w->rc = store_exec(st,
		                   "INSERT INTO providers (name, type, base_url, created_at, updated_at) "
		                   "VALUES (?, ?, ?, 1, 1)",
		                   p, 3, NULL);
		if (w->rc == STORE_OK)
			w->rc = store_commit(st);
	}
	w->waited_ms = mono_ms() - t0;
	if (w->rc)
		snprintf(w->err, sizeof(w->err), "%s", store_errmsg(st));
	store_close(st);
	return NULL;
}

Test(store_query, begin_waits_for_another_writer)
{
	struct store *a = open_ok(STORE_MIGRATE);
	struct writer w = { 0 };
	pthread_t th;

	cr_assert_eq(store_begin(a), STORE_OK);
	add_provider(a, "a");
	cr_assert_eq(pthread_create(&th, NULL, second_writer, &w), 0);
	struct timespec pause = { 0, 300 * 1000000L };
	nanosleep(&pause, NULL);
	cr_assert_eq(store_commit(a), STORE_OK, "%s", store_errmsg(a));
	pthread_join(th, NULL);
	cr_assert_eq(w.rc, STORE_OK, "second writer: %s", w.err);
	cr_assert_geq(w.waited_ms, 200, "second writer did not wait for the lock (%lld ms)",
	              (long long)w.waited_ms);
	cr_assert_eq(w.seen, 1, "the second transaction must start after the first committed");
	cr_assert_eq(disk_int("SELECT count(*) FROM providers"), 2);
	store_close(a);
}

Test(store_query, readonly_handle_refuses_writes)
{
	store_close(open_ok(STORE_MIGRATE));
	struct store *st = open_ok(STORE_READONLY);

	cr_assert_eq(store_begin(st), STORE_EINVAL);
	cr_assert_eq(store_exec(st, "INSERT INTO settings (key, value, updated_at) VALUES ('k', 'v', 1)",
	                        NULL, 0, NULL),
	             STORE_EIO);
	cr_assert(strstr(store_errmsg(st), "readonly"), "%s", store_errmsg(st));
	cr_assert_eq(query_int(st, "SELECT count(*) AS n FROM settings", NULL, 0), 0);
	store_close(st);
}

/* ---- schema behaviour through the interface ---------------------------- */

Test(store_query, delete_provider_cascades)
{
	struct store *st = open_ok(STORE_MIGRATE);
	int64_t pid = add_provider(st, "p");
	int64_t keep = add_provider(st, "keep");
	const struct store_value id[] = { sv_int(pid) };
	const struct store_value kid[] = { sv_int(keep) };

	add_model(st, pid, "m1");
	add_model(st, pid, "m2");
	add_model(st, keep, "m1");
	static const char map[] = "INSERT INTO model_mappings (client_model, provider_id, provider_model, "
	                          "created_at, updated_at) VALUES ('c', ?, 'pm', 1, 1)";
	exec_ok(st, map, id, 1);
	exec_ok(st, map, kid, 1);
	static const char key[] = "INSERT INTO provider_keys (provider_id, key_enc, key_hint, created_at, "
	                          "updated_at) VALUES (?, x'01', 'h', 1, 1)";
	exec_ok(st, key, id, 1);
	exec_ok(st, key, id, 1);
	exec_ok(st, key, kid, 1);

	int64_t ch = -1;
	cr_assert_eq(store_exec(st, "DELETE FROM providers WHERE id = ?", id, 1, &ch), STORE_OK);
	cr_assert_eq(ch, 1, "changes counts the provider only");
	store_close(st);

	cr_assert_eq(
	    disk_int("SELECT count(*) FROM models WHERE provider_id NOT IN (SELECT id FROM providers)"), 0);
	cr_assert_eq(disk_int("SELECT count(*) FROM models"), 1);
	cr_assert_eq(disk_int("SELECT count(*) FROM model_mappings"), 1);
	cr_assert_eq(disk_int("SELECT count(*) FROM provider_keys"), 1);
	cr_assert_eq(disk_int("SELECT count(*) FROM providers"), 1);
}

Test(store_query, returning_through_query)
{
	struct store *st = open_ok(STORE_MIGRATE);
	int64_t a = add_provider(st, "a");
	int64_t b = add_provider(st, "b");
	cr_assert_eq(b, a + 1);

	/* UPDATE ... RETURNING gives every changed row. */
	const struct store_value p[] = { sv_int(7) };
	struct store_rows *r =
	    query_ok(st, "UPDATE providers SET priority = ? RETURNING id, name, priority", p, 1);
	cr_assert_eq(store_rows_count(r), 2);
	cr_assert_eq(store_rows_int(r, 0, "priority", -1), 7);
	store_rows_free(r);
	cr_assert_eq(disk_int("SELECT sum(priority) FROM providers"), 14);

	/* ON CONFLICT DO NOTHING returns no row for the skipped insert. */
	const struct store_value dup[] = { sv_text("a") };
	r = query_ok(st,
	             "INSERT INTO providers (name, type, base_url, created_at, updated_at) "
	             "VALUES (?, 't', 'u', 1, 1) ON CONFLICT (name) DO NOTHING RETURNING id",
	             dup, 1);
	cr_assert_eq(store_rows_count(r), 0);
	cr_assert_eq(store_rows_ncols(r), 1, "columns are known without rows");
	cr_assert_str_eq(store_rows_colname(r, 0), "id");
	store_rows_free(r);

	/* DELETE ... RETURNING, and the delete really happened. */
	const struct store_value id[] = { sv_int(a) };
	r = query_ok(st, "DELETE FROM providers WHERE id = ? RETURNING name", id, 1);
	cr_assert_eq(store_rows_count(r), 1);
	cr_assert_str_eq(store_rows_text(r, 0, "name"), "a");
	store_rows_free(r);
	store_close(st);
	cr_assert_eq(disk_int("SELECT count(*) FROM providers"), 1);
}

Test(store_query, login_attempts_table)
{
	struct store *st = open_ok(STORE_MIGRATE);
	const char *ins = "INSERT INTO login_attempts (scope, at) VALUES (?, ?)";

	for (int i = 0; i < 5; i++) {
		const struct store_value p[] = { sv_text("user:admin"), sv_int(1000 + i) };
		exec_ok(st, ins, p, 2);
	}
	const struct store_value other[] = { sv_text("addr:1.2.3.4"), sv_int(1004) };
	exec_ok(st, ins, other, 2);
	const struct store_value q[] = { sv_text("user:admin"), sv_int(1002) };
	cr_assert_eq(
	    query_int(st, "SELECT count(*) AS n FROM login_attempts WHERE scope = ? AND at >= ?", q, 2), 3);
	const struct store_value nul[] = { sv_null(), sv_int(1) };
	cr_assert_eq(store_exec(st, ins, nul, 2, NULL), STORE_ECONSTRAINT);
	struct store_rows *r = query_ok(st,
	                                "EXPLAIN QUERY PLAN SELECT count(*) FROM login_attempts "
	                                "WHERE scope = 'x' AND at >= 1",
	                                NULL, 0);
	bool uses_index = false;
	for (size_t i = 0; i < store_rows_count(r); i++) {
		const char *d = store_rows_text(r, i, "detail");
		uses_index |= d && strstr(d, "login_attempts_scope_at") != NULL;
	}
	cr_assert(uses_index, "throttle count should use the (scope, at) index");
	store_rows_free(r);
	store_close(st);
}

/* ---- results ----------------------------------------------------------- */

Test(store_query, strict_getters)
{
	struct store *st = open_ok(STORE_MIGRATE);
	struct store_rows *r = query_ok(st,
	                                "SELECT '42' AS digits, 42 AS n, 2.5 AS x, NULL AS z, x'00' AS b, "
	                                "'' AS e, 3 AS Mixed",
	                                NULL, 0);

	cr_assert_eq(store_rows_int(r, 0, "digits", -5), -5, "TEXT digits must not convert");
	cr_assert_str_eq(store_rows_text(r, 0, "digits"), "42");
	cr_assert_eq(store_rows_int(r, 0, "n", -5), 42);
	cr_assert_null(store_rows_text(r, 0, "n"), "INT is not TEXT");
	cr_assert_eq(store_rows_int(r, 0, "x", -5), -5, "REAL is not INT");
	cr_assert(store_rows_real(r, 0, "x", 0) == 2.5);
	cr_assert(store_rows_real(r, 0, "n", 0) == 42.0, "INT widens to REAL");
	cr_assert(store_rows_real(r, 0, "digits", -1) == -1);
	cr_assert_eq(store_rows_int(r, 0, "z", -5), -5);
	cr_assert_null(store_rows_text(r, 0, "z"));
	cr_assert(store_rows_isnull(r, 0, "z"));
	cr_assert(!store_rows_isnull(r, 0, "n"));
	cr_assert(store_rows_isnull(r, 0, "missing"), "a missing column reads as NULL");
	cr_assert_eq(store_rows_int(r, 0, "missing", -5), -5);
	cr_assert_null(store_rows_text(r, 0, "b"), "BLOB is not TEXT");
	cr_assert_str_eq(store_rows_text(r, 0, "e"), "");
	cr_assert_eq(store_rows_col(r, "mixed"), 6, "names match case-insensitively");
	cr_assert_eq(store_rows_col(r, "MIXED"), 6);
	cr_assert_eq(store_rows_col(r, "nope"), -1);
	cr_assert_eq(store_rows_int(r, 1, "n", -5), -5, "row out of range");
	cr_assert_null(store_rows_get(r, 1, 0));
	cr_assert_null(store_rows_get(r, 0, 7));
	cr_assert_null(store_rows_colname(r, 7));
	store_rows_free(r);

	/* NULL rows act as an empty result. */
	cr_assert_eq(store_rows_count(NULL), 0);
	cr_assert_eq(store_rows_ncols(NULL), 0);
	cr_assert_eq(store_rows_col(NULL, "n"), -1);
	cr_assert_eq(store_rows_int(NULL, 0, "n", 9), 9);
	cr_assert_null(store_rows_get(NULL, 0, 0));
	store_rows_free(NULL);

	r = query_ok(st, "SELECT key FROM settings", NULL, 0);
	cr_assert_eq(store_rows_count(r), 0);
	cr_assert_eq(store_rows_ncols(r), 1);
	store_rows_free(r);
	store_close(st);
}

Test(store_query, statement_cache_beyond_its_size)
{
	enum { DISTINCT = 100 };
	struct store *st = open_ok(STORE_MIGRATE);
	char sql[128];

	/* Three passes in different orders: hits, misses and evictions mixed. */
	for (int pass = 0; pass < 3; pass++) {
		for (int k = 0; k < DISTINCT; k++) {
			int i = pass == 0 ? k : pass == 1 ? DISTINCT - 1 - k : (k * 37) % DISTINCT;
			snprintf(sql, sizeof(sql), "SELECT ? + %d AS v, '%d' AS tag", i, i);
			const struct store_value p[] = { sv_int(pass * 1000) };
			struct store_rows *r = query_ok(st, sql, p, 1);
			cr_assert_eq(store_rows_int(r, 0, "v", -1), pass * 1000 + i, "pass %d stmt %d", pass,
			             i);
			char tag[16];
			snprintf(tag, sizeof(tag), "%d", i);
			cr_assert_str_eq(store_rows_text(r, 0, "tag"), tag);
			store_rows_free(r);
		}
		/* A hot statement used between the others keeps working. */
		const struct store_value k[] = { sv_text("hot"), sv_text("x") };
		cr_assert_eq(store_exec(st,
		                        "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, 1) "
		                        "ON CONFLICT (key) DO UPDATE SET value = value || excluded.value",
		                        k, 2, NULL),
		             STORE_OK, "%s", store_errmsg(st));
	}
	struct store_rows *r = query_ok(st, "SELECT value FROM settings WHERE key = 'hot'", NULL, 0);
	cr_assert_str_eq(store_rows_text(r, 0, "value"), "xxx");
	store_rows_free(r);

	/* LRU: a statement used again just before a burst of 31 others
	 * survives the next miss, and the connection never holds more than
	 * the cache's 32 plus the 3 fixed hot statements of store_sqlite.c. */
	static const char keep[] = "SELECT 'keep' AS k";
	struct store_rows *kr = query_ok(st, keep, NULL, 0);
	store_rows_free(kr);
	for (int i = 0; i < 31; i++) {
		snprintf(sql, sizeof(sql), "SELECT %d AS burst", i);
		store_rows_free(query_ok(st, sql, NULL, 0));
	}
	store_rows_free(query_ok(st, keep, NULL, 0));
	store_rows_free(query_ok(st, "SELECT 'one more' AS m", NULL, 0));
	bool found = false;
	int prepared = 0;
	for (sqlite3_stmt *s = sqlite3_next_stmt(store__sqlite_db(st), NULL); s;
	     s = sqlite3_next_stmt(store__sqlite_db(st), s)) {
		prepared++;
		found |= strcmp(sqlite3_sql(s), keep) == 0;
	}
	cr_assert(found, "the most recently used statement was evicted");
	cr_assert_leq(prepared, 32 + 3, "%d statements prepared", prepared);

	/* A cached statement sees a schema change. */
	exec_ok(st, "CREATE TABLE s (a INTEGER)", NULL, 0);
	exec_ok(st, "INSERT INTO s VALUES (1)", NULL, 0);
	r = query_ok(st, "SELECT * FROM s", NULL, 0);
	cr_assert_eq(store_rows_ncols(r), 1);
	store_rows_free(r);
	exec_ok(st, "ALTER TABLE s ADD COLUMN b TEXT DEFAULT 'new'", NULL, 0);
	r = query_ok(st, "SELECT * FROM s", NULL, 0);
	cr_assert_eq(store_rows_ncols(r), 2);
	cr_assert_str_eq(store_rows_text(r, 0, "b"), "new");
	store_rows_free(r);
	store_close(st);
}

Test(store_query, statements_do_not_stay_active)
{
	struct store *st = open_ok(STORE_MIGRATE);

	exec_ok(st, "INSERT INTO settings (key, value, updated_at) VALUES ('a', '1', 1), ('b', '2', 1)", NULL,
	        0);
	struct store_rows *r = query_ok(st, "SELECT key FROM settings", NULL, 0);
	cr_assert_eq(store_rows_count(r), 2);
	/* A statement left mid-result would keep a read snapshot (blocking
	 * checkpoints) and make a later ROLLBACK/close fail. */
	for (sqlite3_stmt *s = sqlite3_next_stmt(store__sqlite_db(st), NULL); s;
	     s = sqlite3_next_stmt(store__sqlite_db(st), s))
		cr_assert(!sqlite3_stmt_busy(s), "statement still active: %s", sqlite3_sql(s));
	store_rows_free(r);
	store_close(st);
}

Test(store_query, result_size_is_bounded)
{
	struct store *st = open_ok(STORE_MIGRATE);
	struct store_rows *r = (struct store_rows *)1;

	/* 80 rows of 1 MB: over the bound, refused rather than grown. */
	int rc = store_query(st,
	                     "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 80) "
	                     "SELECT zeroblob(1024 * 1024) AS b FROM c",
	                     NULL, 0, &r);
	cr_assert_eq(rc, STORE_EINVAL, "rc %d: %s", rc, store_errmsg(st));
	cr_assert_null(r);
	cr_assert(strstr(store_errmsg(st), "LIMIT"), "%s", store_errmsg(st));
	/* Below it is fine. */
	r = query_ok(st,
	             "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 20) "
	             "SELECT zeroblob(1024 * 1024) AS b FROM c",
	             NULL, 0);
	cr_assert_eq(store_rows_count(r), 20);
	cr_assert_eq(store_rows_get(r, 19, 0)->len, 1024 * 1024);
	store_rows_free(r);
	cr_assert_eq(store_ping(st), STORE_OK);
	store_close(st);
}
