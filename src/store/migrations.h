/*
 * migrations.h — the ordered list of schema migrations, shared by every
 * storage back-end, and the placeholder renderer that turns the one
 * portable SQL text into a back-end's dialect.
 *
 * Placeholders are written {{NAME}}; each back-end supplies a table
 * mapping every NAME used by the migrations to its own spelling:
 *
 *   {{ID}}    surrogate key column   SQLite: INTEGER PRIMARY KEY AUTOINCREMENT
 *                                    PostgreSQL: BIGSERIAL PRIMARY KEY
 *   {{BLOB}}  binary data            BLOB / BYTEA
 *   {{REAL}}  8-byte float           REAL / DOUBLE PRECISION
 *
 * The rest of the SQL stays within what both dialects accept: BIGINT for
 * timestamps (epoch milliseconds) and for columns referring to an {{ID}},
 * INTEGER 0/1 for booleans, TEXT for strings and JSON.
 */
#ifndef FUSION_STORE_MIGRATIONS_H
#define FUSION_STORE_MIGRATIONS_H

#include <stddef.h>

struct migration {
	int version;      /* 1, 2, 3, ... without gaps */
	const char *name; /* recorded in schema_migrations.name */
	const char *sql;  /* one or more ';'-separated statements with placeholders */
};

struct migration_placeholder {
	const char *name;  /* without braces: "ID" */
	const char *value; /* replacement text */
};

/* The migrations in ascending version order; *count_out gets their number. */
const struct migration *migrations_list(size_t *count_out);

/* The version of the last migration: what this binary writes. */
int migrations_latest(void);

/*
 * Replace every {{NAME}} in sql using the `count` entries of `ph`.
 * Returns a malloc'd string owned by the caller, or NULL when sql uses
 * a name missing from ph or an unterminated "{{" (a programming error);
 * then err receives a message.
 */
char *migrations_render(const char *sql, const struct migration_placeholder *ph, size_t count, char *err,
                        size_t errlen);

#endif
