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
 * then the handle serves ping / setting_* until close.  Every function
 * returns 0 or a negative STORE_E* code and, on failure, has written a
 * message with store__errorf().
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
};

extern const struct store_backend store__sqlite_backend;

/* Format a message into st->errmsg (truncated to fit). */
void store__errorf(struct store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Internal, for unit tests: the raw connection behind a SQLite handle
 * (NULL for other back-ends), to check per-connection settings such as
 * foreign_keys and synchronous that no other connection can observe. */
struct sqlite3;
struct sqlite3 *store__sqlite_db(struct store *st);

#endif
