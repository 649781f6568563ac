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
 * write a human-readable message into the handle (store_errmsg).
 */
#ifndef FUSION_STORE_STORE_H
#define FUSION_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;

enum {
	STORE_OK = 0,
	STORE_EIO = -1,       /* database error (message in store_errmsg) */
	STORE_ENOTFOUND = -2, /* no such row */
	STORE_ECONFLICT = -3, /* unique constraint */
	STORE_ETOONEW = -4,   /* database written by a newer schema version */
	STORE_EINVAL = -5,    /* bad argument or location */
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

#endif
