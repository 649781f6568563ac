/*
 * store_backend.h — the contract between the store front (store.c) and
 * one storage back-end (store_sqlite.c, later store_pg.c).
 *
 * Internal to src/store/ (and its unit tests); everyone else uses
 * store.h.  Names with a double underscore (store__) are internal, as in
 * libuv.
 *
 * Division of labour: the front owns policy — which back-end a location
 * selects, the order of the opening steps, the "too new" / "needs
 * migration" decisions and their messages, the migration loop, the
 * clock.  A back-end owns mechanics — talking to its database, mapping
 * its errors to STORE_E* codes, rendering the shared migration SQL into
 * its dialect.  store_open() drives a back-end in this order:
 *
 *   open            connect; nothing may be written yet
 *   schema_version  read MAX(version) of schema_migrations (0 if absent)
 *                   -> front refuses newer / behind databases here
 *   configure       session settings and persistent ones (WAL, ...)
 *   migrate_begin   take the schema write lock, re-read the version
 *   exec_migration  once per pending migration, in order
 *   migrate_end     commit (or roll back)
 *
 * then the handle serves ping / setting_* / run / begin / commit /
 * rollback until close.  Every function returns 0 or a negative STORE_E*
 * code and, on failure, has written a message with store__errorf().
 *
 * Generic SQL: the front validates the arguments (bounds, parameter
 * shapes, no transaction control in the text, transaction bookkeeping)
 * and hands run() only well-formed calls.  run() builds a query's result
 * with the store__rows_* builder below, which owns the memory layout and
 * its bound; the front seals it before the caller sees it.
 */
#ifndef FUSION_STORE_STORE_BACKEND_H
#define FUSION_STORE_STORE_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "store/migrations.h"
#include "store/store.h"

#define STORE_ERRMSG_MAX 512

struct store {
	const struct store_backend *be;
	void *be_data;                 /* owned by the back-end; freed by be->close */
	char *location;                /* owned: copy of the location, used in messages */
	int flags;                     /* enum store_open_flags */
	bool in_txn;                   /* between a successful store_begin and commit/rollback */
	char errmsg[STORE_ERRMSG_MAX]; /* last error, "" when none */
};

struct store_backend {
	const char *name; /* "sqlite", "postgresql": for log lines */

	/* Connect to st->location honouring st->flags and set st->be_data.
	 * Must not write to the database (a newer schema must stay
	 * untouched).  On failure be_data may be partially set; the front
	 * calls close() regardless. */
	int (*open)(struct store *st);
	/* Release everything in st->be_data; tolerates a failed open. */
	void (*close)(struct store *st);

	/* Highest version in schema_migrations, 0 when the table does not
	 * exist.  Must not write. */
	int (*schema_version)(struct store *st, int *version_out);
	/* Apply per-connection and persistent settings.  Called only after
	 * the version was found acceptable. */
	int (*configure)(struct store *st);

	/* Start the migration transaction, holding a lock that makes a
	 * concurrent migrate_begin() wait, and return the version as seen
	 * inside it. */
	int (*migrate_begin)(struct store *st, int *version_out);
	/* Run one migration's SQL (placeholders rendered for this dialect)
	 * and record it in schema_migrations with applied_at = now_ms. */
	int (*exec_migration)(struct store *st, const struct migration *m, int64_t now_ms);
	/* Commit when `commit`, else roll back.  Called exactly once after
	 * a successful migrate_begin(). */
	int (*migrate_end)(struct store *st, bool commit);

	int (*ping)(struct store *st);
	/* *value_out is malloc'd, owned by the caller. */
	int (*setting_get)(struct store *st, const char *key, char **value_out);
	/* Upsert, committed durably before returning 0. */
	int (*setting_set)(struct store *st, const char *key, const char *value, int64_t now_ms);

	/* Run one statement (sql is NUL-terminated, within STORE_SQL_MAX;
	 * params validated by the front: types in range, p non-NULL when
	 * len > 0, TEXT without NUL and valid UTF-8, REAL not NaN).  Must
	 * refuse SQL holding more than one statement and a parameter count
	 * that differs from the statement's placeholders (STORE_EINVAL).
	 * When rows_out is NULL, returned rows are discarded and
	 * *changes_out (if non-NULL) gets the statement's own changes; else
	 * *rows_out gets an unsealed result built with store__rows_* (NULL
	 * on failure).  No statement may stay active after return. */
	int (*run)(struct store *st, const char *sql, const struct store_value *params, size_t nparams,
	           int64_t *changes_out, struct store_rows **rows_out);
	/* Start a transaction holding the write lock. */
	int (*begin)(struct store *st);
	/* Commit; on failure the transaction must be ended (rolled back). */
	int (*commit)(struct store *st);
	/* Roll back; 0 when the database already ended the transaction. */
	int (*rollback)(struct store *st);
	/* Whether the connection is inside a transaction right now (false
	 * after the database aborted one on its own). */
	bool (*in_transaction)(struct store *st);
	/* store_reclaim, outside any transaction (the front checked):
	 * return up to max_pages free pages, report what is left. */
	int (*reclaim)(struct store *st, int max_pages, int64_t *free_pages_out);
};

extern const struct store_backend store__sqlite_backend;

/* Format a message into st->errmsg (truncated to fit). */
void store__errorf(struct store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Result builder for run().  new() makes an empty result of ncols
 * columns; set colname() for each; push() appends one value (row-major:
 * ncols pushes per row), copying TEXT (NUL-terminated) and BLOB bytes.
 * push() returns STORE_EINVAL with a message in st once the result
 * would exceed STORE_ROWS_MAX_BYTES; the caller then frees it with
 * store_rows_free().  The front seals a successful result (store__rows_seal)
 * before handing it out; pointers in values are valid only after that.
 */
struct store_rows *store__rows_new(size_t ncols);
int store__rows_colname(struct store *st, struct store_rows *r, size_t col, const char *name);
int store__rows_push(struct store *st, struct store_rows *r, const struct store_value *v);
void store__rows_seal(struct store_rows *r);

/* Internal, for unit tests: the raw connection behind a SQLite handle
 * (NULL for other back-ends), to check per-connection settings such as
 * foreign_keys and synchronous that no other connection can observe. */
struct sqlite3;
struct sqlite3 *store__sqlite_db(struct store *st);

#endif
