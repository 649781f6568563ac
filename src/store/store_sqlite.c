/*
 * store_sqlite.c — the SQLite back-end of the store (store_backend.h).
 *
 * One handle = one sqlite3 connection, used by one thread at a time, so
 * it is opened with SQLITE_OPEN_NOMUTEX.  Concurrency between handles
 * (threads or processes) comes from WAL mode plus a 5 s busy timeout.
 *
 * Data flow: the front calls open (connect only), schema_version (a
 * read: a newer database must stay byte-for-byte untouched, so no pragma
 * that writes runs before it), configure (auto_vacuum for a brand-new
 * file, then WAL, foreign keys, synchronous), then the migration trio
 * inside one BEGIN IMMEDIATE transaction.  After that the handle serves
 * the few hot queries from a per-handle cache of prepared statements,
 * and generic statements (store_exec / store_query) from a second,
 * small LRU cache keyed by their SQL text.  Every statement is reset and
 * unbound before the call returns, so a handle never holds a read
 * snapshot while idle, and a result is always fully copied out first.
 *
 * Every value travels as a bound parameter; SQL text is constant or
 * comes from migrations.c or the callers of store_exec/store_query.
 * Errors become STORE_EIO with sqlite3_errmsg in the handle's message
 * (SQLite's messages name columns and constraints, never values),
 * unique/primary-key violations STORE_ECONFLICT, foreign-key, CHECK and
 * NOT NULL violations STORE_ECONSTRAINT.
 *
 * Why the open sequence looks the way it does:
 *  - A read on a rollback-journal database creates no file.  On a WAL
 *    database it creates -wal/-shm, and the close of the last read-write
 *    connection checkpoints (a no-op for an empty WAL) and deletes both;
 *    a read-only connection would leave them behind.  So the version
 *    check runs on the same read-write connection that is then closed.
 *  - auto_vacuum can only change while the file has no page; switching
 *    to WAL writes page 1, so auto_vacuum must come first.
 *  - busy_timeout is set at open, so the very first read already waits
 *    for a concurrent process that holds the file while converting it to
 *    WAL or migrating, instead of failing with SQLITE_BUSY.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

/* sqlite3_changes64 / total_changes64 (3.37); RETURNING needs 3.35. */
#if SQLITE_VERSION_NUMBER < 3037000
#error "Fusion needs SQLite 3.37 or newer"
#endif

#include "store/migrations.h"
#include "store/store_backend.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/str.h"

#define SQ_BUSY_TIMEOUT_MS 5000

/* Hot statements, prepared on first use and kept for the handle's life. */
enum sq_stmt_id {
	SQ_PING,
	SQ_SETTING_GET,
	SQ_SETTING_SET,
	SQ_STMT_COUNT,
};

static const char *const sq_stmt_sql[SQ_STMT_COUNT] = {
	[SQ_PING] = "SELECT 1",
	[SQ_SETTING_GET] = "SELECT value FROM settings WHERE key = ?1",
	[SQ_SETTING_SET] =
	    "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) "
	    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
};

static const struct migration_placeholder sq_dialect[] = {
	{ "ID", "INTEGER PRIMARY KEY AUTOINCREMENT" },
	{ "BLOB", "BLOB" },
	{ "REAL", "REAL" },
};

/* Generic statements kept prepared per handle; the least recently used
 * one is finalized when a new one needs its slot. */
#define SQ_CACHE_SIZE 32

struct sq_cached {
	char *sql;          /* owned: the key, NULL for a free slot */
	sqlite3_stmt *stmt; /* owned */
	uint64_t last_used; /* value of sq->tick at the last use */
};

struct sq {
	sqlite3 *db;                       /* owned; closed in sq_close */
	sqlite3_stmt *stmt[SQ_STMT_COUNT]; /* owned; NULL until first use */
	struct sq_cached cache[SQ_CACHE_SIZE];
	uint64_t tick; /* LRU clock of the cache */
};

static struct sq *sq_of(struct store *st)
{
	return st->be_data;
}

/*
 * Record the connection's last error as "<what>: <sqlite message>" and
 * map it to a store code.  Call before sqlite3_reset/finalize, which may
 * replace the error.
 */
static int sq_fail(struct store *st, const char *what)
{
	sqlite3 *db = sq_of(st)->db;
	int ext = sqlite3_extended_errcode(db);

	store__errorf(st, "%s: %s: %s", st->location, what, sqlite3_errmsg(db));
	switch (ext) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
	case SQLITE_CONSTRAINT_ROWID:
		return STORE_ECONFLICT;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
	case SQLITE_CONSTRAINT_CHECK:
	case SQLITE_CONSTRAINT_NOTNULL:
		return STORE_ECONSTRAINT;
	default:
		return STORE_EIO;
	}
}

/* A cached statement, reset and unbound by the caller via sq_release(). */
static sqlite3_stmt *sq_stmt(struct store *st, enum sq_stmt_id id, int *rc_out)
{
	struct sq *sq = sq_of(st);

	if (!sq->stmt[id] && sqlite3_prepare_v3(sq->db, sq_stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
	                                        &sq->stmt[id], NULL) != SQLITE_OK) {
		*rc_out = sq_fail(st, "preparing statement");
		return NULL;
	}
	return sq->stmt[id];
}

/* Reset so the statement holds no read snapshot (which would pin the
 * WAL and stall checkpoints), and drop pointers to the caller's strings. */
static void sq_release(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/*
 * Run one constant statement to completion once.  When text_out is
 * given, the first column of the first row is copied into it ("" if no
 * row).  On failure the message is in st->errmsg and *src_out holds
 * SQLite's extended code.
 */
static int sq_exec_once(struct store *st, const char *sql, char *text_out, size_t text_len, int *src_out)
{
	sqlite3 *db = sq_of(st)->db;
	sqlite3_stmt *s = NULL;
	bool first = true;
	int rc = STORE_OK;
	int src;

	if (text_out && text_len)
		text_out[0] = '\0';
	src = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (src != SQLITE_OK) {
		rc = sq_fail(st, sql);
		goto out;
	}
	while ((src = sqlite3_step(s)) == SQLITE_ROW) {
		if (first && text_out && text_len) {
			const unsigned char *t = sqlite3_column_text(s, 0);
			str_copy(text_out, text_len, t ? (const char *)t : "");
		}
		first = false;
	}
	if (src != SQLITE_DONE)
		rc = sq_fail(st, sql);
	else
		src = SQLITE_OK;
out:
	sqlite3_finalize(s);
	*src_out = src;
	return rc;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * sq_exec_once, retried while SQLite says SQLITE_BUSY, for at most the
 * busy timeout.  Needed because some lock conflicts skip the busy
 * handler and fail at once: switching a file to WAL while another
 * connection reads it, or two connections that both hold a read lock
 * wanting to write (SQLite returns BUSY to one of them to avoid a
 * deadlock).  Only for statements that are safe to repeat: pragmas,
 * BEGIN, COMMIT.
 */
static int sq_exec(struct store *st, const char *sql, char *text_out, size_t text_len)
{
	int64_t deadline = mono_ms() + SQ_BUSY_TIMEOUT_MS;

	for (int attempt = 1;; attempt++) {
		int src;
		int rc = sq_exec_once(st, sql, text_out, text_len, &src);
		if (rc == STORE_OK || (src & 0xff) != SQLITE_BUSY || mono_ms() >= deadline)
			return rc;
		struct timespec pause = { 0, (attempt < 10 ? attempt : 10) * 5 * 1000000L };
		nanosleep(&pause, NULL);
	}
}

/* Process-wide, before the first connection: no memory statistics.  With
 * them on, every allocation SQLite makes takes one global mutex (some
 * thirty per request-log row), shared by every thread's connection; Fusion
 * never reads them. */
static void sq_process_init(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); /* SQLITE_MISUSE if already started: fine */
}

static int sq_open(struct store *st)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, sq_process_init);

	struct sq *sq = xcalloc(1, sizeof(*sq));
	char *path = NULL;
	int oflags = SQLITE_OPEN_NOMUTEX;
	int rc = STORE_OK;

	st->be_data = sq;
	if (st->flags & STORE_READONLY)
		oflags |= SQLITE_OPEN_READONLY;
	else
		oflags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;

	/* Debian's SQLite is built with SQLITE_USE_URI: a name starting with
	 * "file:" would be parsed as a URI (with ?mode=, ?vfs=, ...).  DB_PATH
	 * is a plain path, so make it one. */
	size_t n = strlen(st->location) + 3;
	path = xmalloc(n);
	snprintf(path, n, "%s%s", strncmp(st->location, "file:", 5) == 0 ? "./" : "", st->location);

	int src = sqlite3_open_v2(path, &sq->db, oflags, NULL);
	if (src != SQLITE_OK) {
		store__errorf(st, "cannot open database %s: %s", st->location,
		              sq->db ? sqlite3_errmsg(sq->db) : sqlite3_errstr(src));
		rc = STORE_EIO;
		goto out;
	}
	sqlite3_extended_result_codes(sq->db, 1);
	sqlite3_busy_timeout(sq->db, SQ_BUSY_TIMEOUT_MS);
	/* Refuse SQL that could corrupt the file (writable_schema, ...), and
	 * the double-quoted-string misfeature so "x" is always a column. */
	sqlite3_db_config(sq->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
	sqlite3_db_config(sq->db, SQLITE_DBCONFIG_DQS_DML, 0, (int *)NULL);
	sqlite3_db_config(sq->db, SQLITE_DBCONFIG_DQS_DDL, 0, (int *)NULL);
out:
	free(path);
	return rc;
}

static void sq_close(struct store *st)
{
	struct sq *sq = sq_of(st);

	if (!sq)
		return;
	for (int i = 0; i < SQ_STMT_COUNT; i++)
		sqlite3_finalize(sq->stmt[i]);
	for (int i = 0; i < SQ_CACHE_SIZE; i++) {
		sqlite3_finalize(sq->cache[i].stmt);
		free(sq->cache[i].sql);
	}
	if (sq->db) {
		if (!sqlite3_get_autocommit(sq->db))
			sqlite3_exec(sq->db, "ROLLBACK", NULL, NULL, NULL);
		/* All statements are finalized, so close cannot be busy; if it
		 * ever is, that is a leak bug worth a log line. */
		if (sqlite3_close(sq->db) != SQLITE_OK)
			log_warn(NULL, "store: %s: sqlite3_close: %s", st->location, sqlite3_errmsg(sq->db));
	}
	free(sq);
	st->be_data = NULL;
}

static int sq_schema_version(struct store *st, int *version_out)
{
	sqlite3 *db = sq_of(st)->db;
	sqlite3_stmt *s = NULL;
	int rc = STORE_OK;

	*version_out = 0;
	/* This is the first read of the file: a non-database fails here.
	 * Column 2 counts the other tables, to tell "empty" from "someone
	 * else's database". */
	if (sqlite3_prepare_v2(db,
	                       "SELECT (SELECT count(*) FROM sqlite_master"
	                       "        WHERE type = 'table' AND name = 'schema_migrations'),"
	                       "       (SELECT count(*) FROM sqlite_master"
	                       "        WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\')",
	                       -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW) {
		int ext = sqlite3_extended_errcode(db);
		if (ext == SQLITE_NOTADB) {
			store__errorf(st, "%s is not a SQLite database (%s); refusing to touch it",
			              st->location, sqlite3_errmsg(db));
			rc = STORE_EIO;
		} else {
			rc = sq_fail(st, "reading schema version");
		}
		goto out;
	}
	bool exists = sqlite3_column_int(s, 0) > 0;
	int tables = sqlite3_column_int(s, 1);
	sqlite3_finalize(s);
	s = NULL;
	if (!exists) {
		/* Tables but no schema_migrations: not ours (migration 1 creates
		 * both in one transaction).  Do not convert it to WAL or add
		 * tables to it. */
		if (tables > 0) {
			store__errorf(
			    st,
			    "%s is a SQLite database with %d table%s but no schema_migrations table; "
			    "it is not a Fusion database, refusing to touch it",
			    st->location, tables, tables == 1 ? "" : "s");
			rc = STORE_EINVAL;
		}
		goto out;
	}

	if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1, &s, NULL) !=
	        SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW) {
		rc = sq_fail(st, "reading schema version");
		goto out;
	}
	sqlite3_int64 v = sqlite3_column_int64(s, 0);
	if (v < 0) {
		store__errorf(st, "%s: schema_migrations holds a negative version %lld", st->location,
		              (long long)v);
		rc = STORE_EIO;
		goto out;
	}
	*version_out = v > INT_MAX ? INT_MAX : (int)v;
out:
	sqlite3_finalize(s);
	return rc;
}

static int sq_configure(struct store *st)
{
	char buf[32];
	int rc;

	if (!(st->flags & STORE_READONLY)) {
		rc = sq_exec(st, "PRAGMA page_count", buf, sizeof(buf));
		if (rc)
			return rc;
		/* Brand-new file: this is the last moment auto_vacuum can be
		 * chosen.  INCREMENTAL lets a janitor return pages freed by
		 * log retention with PRAGMA incremental_vacuum. */
		if (strcmp(buf, "0") == 0) {
			rc = sq_exec(st, "PRAGMA auto_vacuum = INCREMENTAL", NULL, 0);
			if (rc)
				return rc;
		}
		rc = sq_exec(st, "PRAGMA journal_mode = WAL", buf, sizeof(buf));
		if (rc)
			return rc;
		if (strcmp(buf, "wal") != 0)
			log_warn(NULL,
			         "store: %s: journal_mode is %s, not wal; handles will block each other",
			         st->location, buf);
	}
	rc = sq_exec(st, "PRAGMA foreign_keys = ON", NULL, 0);
	if (rc)
		return rc;
	if (st->flags & STORE_LOG_WRITER) {
		/* The log writer inserts into four indexes all day: a larger page
		 * cache keeps their hot pages in memory instead of re-reading them,
		 * and fewer, larger checkpoints copy a page that changed many
		 * times once (a 32 MB WAL at most between checkpoints). */
		rc = sq_exec(st, "PRAGMA cache_size = -4096", NULL, 0);
		if (!rc)
			rc = sq_exec(st, "PRAGMA wal_autocheckpoint = 8192", NULL, 0);
		if (rc)
			return rc;
	}
	/* In WAL mode FULL syncs the WAL at every commit (survives power
	 * loss); NORMAL syncs only at checkpoints (survives a process crash,
	 * may lose the last commits on power loss). */
	return sq_exec(
	    st, (st->flags & STORE_LOG_WRITER) ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL",
	    NULL, 0);
}

static int sq_migrate_begin(struct store *st, int *version_out)
{
	/* IMMEDIATE takes the write lock now (waiting up to busy_timeout),
	 * so the version read below cannot go stale before we commit. */
	int rc = sq_exec(st, "BEGIN IMMEDIATE", NULL, 0);

	if (rc)
		return rc;
	rc = sq_schema_version(st, version_out);
	if (rc)
		sqlite3_exec(sq_of(st)->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int sq_exec_migration(struct store *st, const struct migration *m, int64_t now_ms)
{
	sqlite3 *db = sq_of(st)->db;
	sqlite3_stmt *s = NULL;
	char what[96];
	char *sql;
	int rc = STORE_OK;

	snprintf(what, sizeof(what), "migration %d (%s)", m->version, m->name);
	sql = migrations_render(m->sql, sq_dialect, sizeof(sq_dialect) / sizeof(sq_dialect[0]), st->errmsg,
	                        sizeof(st->errmsg));
	if (!sql)
		return STORE_EINVAL;

	/* The migration is several statements: prepare and run them one by one. */
	const char *p = sql;
	while (*p) {
		const char *tail = NULL;
		if (sqlite3_prepare_v2(db, p, -1, &s, &tail) != SQLITE_OK) {
			rc = sq_fail(st, what);
			goto out;
		}
		p = tail;
		if (!s) /* only whitespace or comments left */
			continue;
		int src;
		while ((src = sqlite3_step(s)) == SQLITE_ROW)
			;
		if (src != SQLITE_DONE) {
			rc = sq_fail(st, what);
			goto out;
		}
		sqlite3_finalize(s);
		s = NULL;
	}

	if (sqlite3_prepare_v2(
	        db, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)", -1, &s,
	        NULL) != SQLITE_OK) {
		rc = sq_fail(st, what);
		goto out;
	}
	sqlite3_bind_int(s, 1, m->version);
	sqlite3_bind_text(s, 2, m->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, now_ms);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = sq_fail(st, what);
out:
	sqlite3_finalize(s);
	free(sql);
	return rc;
}

static int sq_migrate_end(struct store *st, bool commit)
{
	sqlite3 *db = sq_of(st)->db;
	int rc = STORE_OK;

	if (commit)
		rc = sq_exec(st, "COMMIT", NULL, 0);
	/* A failed COMMIT may leave the transaction open: always end it. */
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int sq_ping(struct store *st)
{
	int rc = STORE_OK;
	sqlite3_stmt *s = sq_stmt(st, SQ_PING, &rc);

	if (!s)
		return rc;
	if (sqlite3_step(s) != SQLITE_ROW)
		rc = sq_fail(st, "ping");
	sq_release(s);
	return rc;
}

static int sq_setting_get(struct store *st, const char *key, char **value_out)
{
	int rc = STORE_OK;
	sqlite3_stmt *s = sq_stmt(st, SQ_SETTING_GET, &rc);

	if (!s)
		return rc;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	int src = sqlite3_step(s);
	if (src == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(s, 0);
		int n = sqlite3_column_bytes(s, 0);
		*value_out = xstrndup(v ? (const char *)v : "", v ? (size_t)n : 0);
	} else if (src == SQLITE_DONE) {
		store__errorf(st, "setting %s is not set", key);
		rc = STORE_ENOTFOUND;
	} else {
		rc = sq_fail(st, "reading setting");
	}
	sq_release(s);
	return rc;
}

static int sq_setting_set(struct store *st, const char *key, const char *value, int64_t now_ms)
{
	int rc = STORE_OK;
	sqlite3_stmt *s = sq_stmt(st, SQ_SETTING_SET, &rc);

	if (!s)
		return rc;
	/* One autocommit statement = one transaction, synced per synchronous=FULL. */
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, now_ms);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = sq_fail(st, "writing setting");
	sq_release(s);
	return rc;
}

/* ---- generic statements ------------------------------------------------ */

/* Whether `tail` (what follows the first statement) holds no statement:
 * asked of SQLite's own tokenizer, so comments and ';' count as nothing. */
static bool sq_tail_is_empty(sqlite3 *db, const char *tail)
{
	sqlite3_stmt *t = NULL;
	bool empty = sqlite3_prepare_v2(db, tail, -1, &t, NULL) == SQLITE_OK && !t;

	sqlite3_finalize(t);
	return empty;
}

/*
 * The prepared statement for sql, from the cache or prepared now (then
 * it replaces the least recently used entry).  Refuses SQL that is empty
 * or holds more than one statement: sqlite3_prepare would silently
 * ignore everything after the first.
 */
static sqlite3_stmt *sq_cache_get(struct store *st, const char *sql, int *rc_out)
{
	struct sq *sq = sq_of(st);
	struct sq_cached *slot = NULL;
	sqlite3_stmt *s = NULL;
	const char *tail = NULL;

	for (int i = 0; i < SQ_CACHE_SIZE; i++) {
		struct sq_cached *c = &sq->cache[i];
		if (c->sql && strcmp(c->sql, sql) == 0) {
			c->last_used = ++sq->tick;
			return c->stmt;
		}
		if (!slot || (slot->sql && (!c->sql || c->last_used < slot->last_used)))
			slot = c;
	}
	if (sqlite3_prepare_v3(sq->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, &tail) != SQLITE_OK) {
		*rc_out = sq_fail(st, "preparing statement");
		return NULL;
	}
	if (!s) {
		store__errorf(st, "SQL holds no statement");
		*rc_out = STORE_EINVAL;
		return NULL;
	}
	if (tail && !sq_tail_is_empty(sq->db, tail)) {
		sqlite3_finalize(s);
		store__errorf(st, "SQL holds more than one statement");
		*rc_out = STORE_EINVAL;
		return NULL;
	}
	sqlite3_finalize(slot->stmt);
	free(slot->sql);
	slot->sql = xstrdup(sql);
	slot->stmt = s;
	slot->last_used = ++sq->tick;
	return s;
}

/* Bind without copying (SQLITE_STATIC): sq_run clears the bindings
 * before it returns, so SQLite never keeps the caller's pointer. */
static int sq_bind(struct store *st, sqlite3_stmt *s, int idx, const struct store_value *v)
{
	/* SQLite binds SQL NULL for a NULL pointer: give empty values one. */
	const void *p = v->len ? v->p : "";
	int src;

	switch (v->type) {
	case STORE_T_NULL:
		src = sqlite3_bind_null(s, idx);
		break;
	case STORE_T_INT:
		src = sqlite3_bind_int64(s, idx, v->i);
		break;
	case STORE_T_REAL:
		src = sqlite3_bind_double(s, idx, v->d);
		break;
	case STORE_T_TEXT:
		src = sqlite3_bind_text64(s, idx, p, v->len, SQLITE_STATIC, SQLITE_UTF8);
		break;
	case STORE_T_BLOB:
		src = sqlite3_bind_blob64(s, idx, p, v->len, SQLITE_STATIC);
		break;
	default:
		src = SQLITE_MISUSE;
		break;
	}
	if (src == SQLITE_OK)
		return STORE_OK;
	store__errorf(st, "%s: binding parameter %d: %s", st->location, idx, sqlite3_errstr(src));
	return src == SQLITE_TOOBIG || src == SQLITE_RANGE || src == SQLITE_MISUSE ? STORE_EINVAL : STORE_EIO;
}

/* A result shaped like the statement; column metadata is read after the
 * first step, when SQLite has re-prepared a statement whose schema moved. */
static int sq_rows_start(struct store *st, sqlite3_stmt *s, struct store_rows **rows_out)
{
	int ncols = sqlite3_column_count(s);
	struct store_rows *r = store__rows_new((size_t)ncols);

	*rows_out = r;
	for (int c = 0; c < ncols; c++) {
		int rc = store__rows_colname(st, r, (size_t)c, sqlite3_column_name(s, c));
		if (rc)
			return rc;
	}
	return STORE_OK;
}

/* Copy the current row into r. */
static int sq_rows_push(struct store *st, sqlite3_stmt *s, struct store_rows *r)
{
	int ncols = sqlite3_column_count(s);

	if ((size_t)ncols != store_rows_ncols(r)) {
		store__errorf(st, "%s: the statement's columns changed while it ran", st->location);
		return STORE_EIO;
	}
	for (int c = 0; c < ncols; c++) {
		struct store_value v;
		switch (sqlite3_column_type(s, c)) {
		case SQLITE_INTEGER:
			v = sv_int(sqlite3_column_int64(s, c));
			break;
		case SQLITE_FLOAT:
			v = sv_real(sqlite3_column_double(s, c));
			break;
		case SQLITE_TEXT: {
			const unsigned char *t = sqlite3_column_text(s, c);
			if (!t)
				return sq_fail(st, "reading a TEXT value"); /* out of memory */
			v = sv_textn((const char *)t, (size_t)sqlite3_column_bytes(s, c));
			break;
		}
		case SQLITE_BLOB: {
			const void *b = sqlite3_column_blob(s, c);
			int n = sqlite3_column_bytes(s, c);
			if (!b && n > 0)
				return sq_fail(st, "reading a BLOB value");
			v = sv_blob(b, (size_t)n);
			break;
		}
		default:
			v = sv_null();
			break;
		}
		int rc = store__rows_push(st, r, &v);
		if (rc)
			return rc;
	}
	return STORE_OK;
}

static int sq_run(struct store *st, const char *sql, const struct store_value *params, size_t nparams,
                  int64_t *changes_out, struct store_rows **rows_out)
{
	struct sq *sq = sq_of(st);
	struct store_rows *rows = NULL;
	int rc = STORE_OK;
	sqlite3_stmt *s;

	if (rows_out)
		*rows_out = NULL;
	if (changes_out)
		*changes_out = 0;
	s = sq_cache_get(st, sql, &rc);
	if (!s)
		return rc;
	int want = sqlite3_bind_parameter_count(s);
	if ((size_t)want != nparams) {
		store__errorf(st, "the statement has %d placeholder%s but %zu parameter%s were given", want,
		              want == 1 ? "" : "s", nparams, nparams == 1 ? "" : "s");
		rc = STORE_EINVAL;
		goto out;
	}
	for (size_t i = 0; i < nparams; i++) {
		rc = sq_bind(st, s, (int)i + 1, &params[i]);
		if (rc)
			goto out;
	}

	sqlite3_int64 total_before = sqlite3_total_changes64(sq->db);
	int64_t deadline = mono_ms() + SQ_BUSY_TIMEOUT_MS;
	for (int attempt = 1;; attempt++) {
		size_t got = 0;
		int src;
		while ((src = sqlite3_step(s)) == SQLITE_ROW) {
			if (rows_out && !rows) {
				rc = sq_rows_start(st, s, &rows);
				if (rc)
					goto out;
			}
			if (rows) {
				rc = sq_rows_push(st, s, rows);
				if (rc)
					goto out;
			}
			got++;
		}
		if (src == SQLITE_DONE)
			break;
		/* The busy handler already waited, but some lock conflicts skip
		 * it (see sq_exec).  A statement that is its own transaction and
		 * failed before producing a row changed nothing: run it again. */
		if ((src & 0xff) == SQLITE_BUSY && got == 0 && sqlite3_get_autocommit(sq->db) &&
		    mono_ms() < deadline) {
			sqlite3_reset(s);
			struct timespec pause = { 0, (attempt < 10 ? attempt : 10) * 5 * 1000000L };
			nanosleep(&pause, NULL);
			continue;
		}
		rc = sq_fail(st, rows_out ? "query" : "exec");
		goto out;
	}
	if (rows_out && !rows)
		rc = sq_rows_start(st, s, &rows); /* no row: the columns still count */
	/* sqlite3_changes64 keeps the count of the last INSERT/UPDATE/DELETE
	 * that completed, also across a SELECT or DDL: trust it only when
	 * this statement changed something. */
	if (changes_out && sqlite3_total_changes64(sq->db) != total_before)
		*changes_out = sqlite3_changes64(sq->db);
out:
	sq_release(s);
	if (rc)
		store_rows_free(rows);
	else if (rows_out)
		*rows_out = rows;
	return rc;
}

static int sq_begin(struct store *st)
{
	/* IMMEDIATE: the write lock now, so no statement inside can hit
	 * SQLITE_BUSY on the way from reading to writing. */
	return sq_exec(st, "BEGIN IMMEDIATE", NULL, 0);
}

static int sq_commit(struct store *st)
{
	return sq_migrate_end(st, true);
}

static int sq_rollback(struct store *st)
{
	sqlite3 *db = sq_of(st)->db;

	if (sqlite3_get_autocommit(db))
		return STORE_OK;
	if (sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		return sq_fail(st, "ROLLBACK");
	return STORE_OK;
}

static bool sq_in_transaction(struct store *st)
{
	return !sqlite3_get_autocommit(sq_of(st)->db);
}

/*
 * incremental_vacuum moves up to N pages from the end of the file into
 * free slots and truncates (in WAL mode the file shrinks at the next
 * checkpoint).  It does nothing unless the file was created with
 * auto_vacuum=INCREMENTAL (sq_configure does so for new files), so
 * older files report nothing left to reclaim rather than a free list
 * that never shrinks.  The pragma's argument cannot be bound: it is an
 * integer formatted here.
 */
static int sq_reclaim(struct store *st, int max_pages, int64_t *free_pages_out)
{
	char sql[64], buf[32];
	int rc;

	*free_pages_out = 0;
	rc = sq_exec(st, "PRAGMA auto_vacuum", buf, sizeof(buf));
	if (rc || strcmp(buf, "2") != 0) /* 2 = INCREMENTAL */
		return rc;
	snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%d)", max_pages);
	rc = sq_exec(st, sql, NULL, 0);
	if (rc)
		return rc;
	rc = sq_exec(st, "PRAGMA freelist_count", buf, sizeof(buf));
	if (rc)
		return rc;
	*free_pages_out = strtoll(buf, NULL, 10);
	return STORE_OK;
}

const struct store_backend store__sqlite_backend = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.schema_version = sq_schema_version,
	.configure = sq_configure,
	.migrate_begin = sq_migrate_begin,
	.exec_migration = sq_exec_migration,
	.migrate_end = sq_migrate_end,
	.ping = sq_ping,
	.setting_get = sq_setting_get,
	.setting_set = sq_setting_set,
	.run = sq_run,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.in_transaction = sq_in_transaction,
	.reclaim = sq_reclaim,
};

struct sqlite3 *store__sqlite_db(struct store *st)
{
	if (!st || st->be != &store__sqlite_backend || !st->be_data)
		return NULL;
	return sq_of(st)->db;
}
