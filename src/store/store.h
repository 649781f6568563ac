/*
 * store.h — the configuration and log store, behind one interface.
 *
 * Callers see only `struct store *` and the store_* functions below; the
 * back-end (SQLite now, PostgreSQL later) is chosen by store_open() from
 * the location string and reached through a const table of function
 * pointers (struct store_backend in store_backend.h).  Both back-ends
 * share one schema and one list of migrations (migrations.c).
 *
 * Threading: a `struct store` handle is used by one thread at a time.
 * Each thread that needs the database opens its own handle; SQLite in
 * WAL mode lets them run concurrently.
 *
 * Durability: configuration writes commit with synchronous=FULL; the
 * request-log writer opens its handle with STORE_LOG_WRITER, which uses
 * synchronous=NORMAL (a crash may lose the last log batch, never
 * configuration, never integrity).
 *
 * Errors: functions return 0 on success or a negative STORE_E* code, and
 * write a human-readable message into the handle (store_errmsg).  A
 * message never contains a bound parameter value (they can be secrets).
 *
 * Generic SQL (store_exec / store_query): one statement per call with
 * `?` placeholders, values always bound, never pasted into the SQL.
 * Write the SQL in the subset both back-ends accept (see the notes at
 * store_exec).  Queries materialise their whole result into a struct
 * store_rows owned by the caller, so no statement stays open between
 * calls and a handle never holds a read snapshot while idle.
 */
#ifndef FUSION_STORE_STORE_H
#define FUSION_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct store;

enum {
	STORE_OK = 0,
	STORE_EIO = -1,         /* database error (message in store_errmsg) */
	STORE_ENOTFOUND = -2,   /* no such row */
	STORE_ECONFLICT = -3,   /* unique constraint */
	STORE_ETOONEW = -4,     /* database written by a newer schema version */
	STORE_EINVAL = -5,      /* bad argument or location */
	STORE_ECONSTRAINT = -6, /* foreign key, CHECK or NOT NULL constraint */
};

enum store_open_flags {
	STORE_MIGRATE = 1 << 0,    /* apply pending migrations (only the main thread at start) */
	STORE_LOG_WRITER = 1 << 1, /* cheaper durability for request-log batches */
	STORE_READONLY = 1 << 2,
};

/*
 * Open the store at `location`: a file path for SQLite (created if
 * missing unless STORE_READONLY), later "postgres://..." for PostgreSQL.
 * On failure returns NULL-out and a negative code, and writes a message
 * into err (errlen bytes).  A database whose schema version is newer than
 * this binary knows gives STORE_ETOONEW and is left untouched.
 */
int store_open(const char *location, int flags, struct store **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void store_close(struct store *st); /* NULL is a no-op */

const char *store_errmsg(const struct store *st);

/* Cheap liveness query (SELECT 1) for /readyz. */
int store_ping(struct store *st);

/* The schema version recorded in the database, and the one this binary writes. */
int store_schema_version(struct store *st, int *version_out);
int store_schema_version_latest(void);

/* Settings: a key/value table.  get returns STORE_ENOTFOUND when unset;
 * *value_out is malloc'd and owned by the caller. */
int store_setting_get(struct store *st, const char *key, char **value_out);
int store_setting_set(struct store *st, const char *key, const char *value);

/* ---- generic SQL ------------------------------------------------------- */

/* Bounds, enforced before anything reaches the database. */
#define STORE_SQL_MAX (64 * 1024)               /* bytes of SQL text per statement */
#define STORE_PARAMS_MAX 999                    /* bound parameters per statement */
#define STORE_VALUE_MAX (32 * 1024 * 1024)      /* bytes of one TEXT/BLOB parameter */
#define STORE_ROWS_MAX_BYTES (64 * 1024 * 1024) /* one materialised result, all included */

enum store_type { STORE_T_NULL = 0, STORE_T_INT, STORE_T_REAL, STORE_T_TEXT, STORE_T_BLOB };

/*
 * One SQL value.  Parameters borrow p (it must stay valid for the call
 * only); values in a struct store_rows point into the rows' own copy.
 * TEXT is UTF-8 of len bytes, need not be NUL-terminated as a parameter
 * and must not contain a NUL byte (PostgreSQL cannot store one: use a
 * BLOB); REAL must not be NaN (SQLite would store NULL).
 */
struct store_value {
	enum store_type type;
	int64_t i;     /* STORE_T_INT */
	double d;      /* STORE_T_REAL */
	const void *p; /* STORE_T_TEXT / STORE_T_BLOB; may be NULL only when len is 0 */
	size_t len;    /* bytes at p (TEXT: without a terminator) */
	bool checked;  /* TEXT the caller already knows is UTF-8 without NUL (sv_text_checked) */
};

static inline struct store_value sv_null(void)
{
	return (struct store_value){ .type = STORE_T_NULL };
}

static inline struct store_value sv_int(int64_t i)
{
	return (struct store_value){ .type = STORE_T_INT, .i = i };
}

static inline struct store_value sv_bool(bool b)
{
	return sv_int(b ? 1 : 0);
}

static inline struct store_value sv_real(double d)
{
	return (struct store_value){ .type = STORE_T_REAL, .d = d };
}

static inline struct store_value sv_textn(const char *s, size_t len)
{
	return (struct store_value){ .type = STORE_T_TEXT, .p = s, .len = len };
}

/* A NUL-terminated string; NULL gives a NULL value. */
/* TEXT the caller has just validated itself (valid UTF-8, no NUL byte, at
 * most STORE_VALUE_MAX bytes): the store does not scan it again. */
static inline struct store_value sv_text_checked(const char *s, size_t len)
{
	return (struct store_value){ .type = STORE_T_TEXT, .p = s, .len = len, .checked = true };
}

static inline struct store_value sv_text(const char *s)
{
	return s ? sv_textn(s, strlen(s)) : sv_null();
}

static inline struct store_value sv_blob(const void *p, size_t len)
{
	return (struct store_value){ .type = STORE_T_BLOB, .p = p, .len = len };
}

/*
 * Execute one statement with `?` placeholders, one parameter per `?`
 * (nparams must equal their number, else STORE_EINVAL).  *changes_out
 * (may be NULL) gets the rows inserted, updated or deleted by the
 * statement itself (not by cascades or triggers; 0 for anything else).
 * Rows a statement returns are discarded: use store_query for them.
 *
 * Outside store_begin/store_commit the statement is its own transaction,
 * committed with the handle's durability (synchronous=FULL for normal
 * handles) before this returns.
 *
 * Errors: STORE_ECONFLICT for a UNIQUE / PRIMARY KEY violation,
 * STORE_ECONSTRAINT for FOREIGN KEY / CHECK / NOT NULL, STORE_EINVAL for
 * a bad argument (parameter count, a bound exceeded, more than one
 * statement, transaction control such as BEGIN/COMMIT/SAVEPOINT, which
 * must go through store_begin & co), STORE_EIO for anything else.
 *
 * Portable SQL: plain `?` only (a PostgreSQL back-end rewrites them to
 * $1, $2, ...; never write a literal '?' inside the SQL text, bind it),
 * ON CONFLICT ... DO NOTHING/UPDATE rather than INSERT OR ..., RETURNING
 * rather than last-insert-id, BIGINT epoch milliseconds for times, 0/1
 * for booleans, and an alias (AS name) for every computed column.
 */
int store_exec(struct store *st, const char *sql, const struct store_value *params, size_t nparams,
               int64_t *changes_out) __attribute__((warn_unused_result));

/*
 * Run one statement (SELECT, or INSERT/UPDATE/DELETE ... RETURNING) and
 * materialise its whole result into *out, owned by the caller (free with
 * store_rows_free).  The result is bounded by STORE_ROWS_MAX_BYTES
 * (STORE_EINVAL beyond it): callers bound it with LIMIT.  On error *out
 * is NULL.  Same parameters, errors and portability notes as store_exec.
 */
struct store_rows;
int store_query(struct store *st, const char *sql, const struct store_value *params, size_t nparams,
                struct store_rows **out) __attribute__((warn_unused_result));

/* Result accessors.  Every one accepts NULL rows (as an empty result)
 * and out-of-range indexes (NULL / -1 / the default). */
size_t store_rows_count(const struct store_rows *r);
size_t store_rows_ncols(const struct store_rows *r);
const char *store_rows_colname(const struct store_rows *r, size_t col);
/* Index of the first column named `name` (ASCII case-insensitive, as
 * SQL identifiers are), or -1. */
int store_rows_col(const struct store_rows *r, const char *name);
/* The value at (row, col), or NULL when out of range.  TEXT values are
 * NUL-terminated in the copy (len excludes the terminator); a zero-length
 * TEXT or BLOB still has a non-NULL p. */
const struct store_value *store_rows_get(const struct store_rows *r, size_t row, size_t col);

/* Getters by column name with strict types: a missing column, a NULL, or
 * a value of another type gives the default (a TEXT "42" is not an
 * integer).  store_rows_real also accepts an INT (SQL arithmetic mixes
 * them).  store_rows_text returns NULL unless the value is TEXT; the
 * string lives as long as the rows.  store_rows_isnull is true for NULL
 * and for a missing column. */
int64_t store_rows_int(const struct store_rows *r, size_t row, const char *name, int64_t dflt);
const char *store_rows_text(const struct store_rows *r, size_t row, const char *name);
double store_rows_real(const struct store_rows *r, size_t row, const char *name, double dflt);
bool store_rows_isnull(const struct store_rows *r, size_t row, const char *name);
void store_rows_free(struct store_rows *r); /* NULL is a no-op */

/*
 * Transactions.  store_begin takes the write lock up front (SQLite:
 * BEGIN IMMEDIATE, retried while busy for up to 5 s), so statements
 * inside never fail for a lock and never see another writer's changes
 * half-way.  Keep transactions short: they block every other writer.
 *
 * A second store_begin before commit/rollback is STORE_EINVAL.  When
 * store_commit fails, the transaction has been rolled back: nothing of
 * it is stored and none is open.  store_rollback without an open
 * transaction is a no-op returning 0, so error paths may call it
 * unconditionally.  If the database itself aborts the transaction after
 * an error (disk full, I/O error), every later store_exec/store_query
 * fails with STORE_EIO until store_rollback, so the rest of the work can
 * never silently run outside the transaction.  Closing a handle rolls
 * back an open transaction.
 */
int store_begin(struct store *st) __attribute__((warn_unused_result));
int store_commit(struct store *st) __attribute__((warn_unused_result));
int store_rollback(struct store *st);

/*
 * Maintenance: give back to the file system up to max_pages (≥ 1) of the
 * pages that deletions left free (SQLite: PRAGMA incremental_vacuum, on a
 * database created with auto_vacuum=INCREMENTAL, which store_open sets
 * for new files; a no-op for other databases and back-ends).  Runs as its
 * own short write transaction, so not between store_begin and commit
 * (STORE_EINVAL).  *free_pages_out (may be NULL) gets the free pages
 * still reclaimable this way afterwards (0 when there is nothing to do).
 */
int store_reclaim(struct store *st, int max_pages, int64_t *free_pages_out)
    __attribute__((warn_unused_result));

#endif
