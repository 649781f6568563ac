/*
 * store.c — the store front: picks a back-end from the location, runs
 * the opening sequence and migrations, and forwards every other call
 * through the back-end's const function table (store_backend.h).
 *
 * Data flow of store_open():
 *
 *   location ──► backend_for() ──► be->open          (connect, no writes)
 *                                   be->schema_version
 *                                     newer than this binary → STORE_ETOONEW,
 *                                     nothing was written
 *                                     older and no STORE_MIGRATE → STORE_EINVAL
 *                                   be->configure     (WAL, pragmas, ...)
 *                                   migrate():  be->migrate_begin (lock,
 *                                     re-read version) → be->exec_migration
 *                                     for each pending one → be->migrate_end
 *
 * The version is read twice on purpose: once before any write so a newer
 * database is refused untouched, and again under the write lock so two
 * processes starting at once do not both migrate.
 *
 * The wall clock is read here (now_ms) and passed down, so back-ends
 * never disagree on what "now" is and tests could pin it.
 *
 * Generic SQL (store_exec / store_query / transactions): the front checks
 * every argument against the bounds in store.h and the portability rules
 * (TEXT is UTF-8 without NUL, no NaN, no transaction control in the SQL
 * text), keeps the transaction bookkeeping (st->in_txn, compared with
 * the connection's real state before every statement), and owns the
 * layout of a materialised result:
 *
 *   be->run ──► store__rows_new / _colname / _push (copies, bounded)
 *          ──► store__rows_seal (offsets become pointers) ──► caller
 *
 * A result is three growable arrays with one bound for all of them
 * (STORE_ROWS_MAX_BYTES): the values (row-major), the column-name
 * offsets, and one byte arena holding column names, TEXT (each
 * NUL-terminated) and BLOB bytes.  While building, a TEXT/BLOB value
 * keeps its arena offset in .i, because the arena may move as it grows;
 * sealing turns the offsets into pointers once the arena is final.
 */
#include "store/store.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "store/migrations.h"
#include "store/store_backend.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/utf8.h"
#include "util/str.h"

/* Bounds on what a caller may put in the settings table. */
#define SETTING_KEY_MAX 256
#define SETTING_VALUE_MAX (1024 * 1024)

#define STORE_FLAGS_ALL (STORE_MIGRATE | STORE_LOG_WRITER | STORE_READONLY)

void store__errorf(struct store *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(st->errmsg, sizeof(st->errmsg), fmt, ap);
	va_end(ap);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * The back-end for a location, or NULL with a message in err.  Adding a
 * back-end is one file plus one branch here.
 */
static const struct store_backend *backend_for(const char *location, char *err, size_t errlen)
{
	if (has_prefix(location, "postgres://") || has_prefix(location, "postgresql://")) {
		snprintf(err, errlen, "PostgreSQL back-end not built yet");
		return NULL;
	}
	return &store__sqlite_backend;
}

/* Apply every migration newer than the version seen under the lock. */
static int migrate(struct store *st)
{
	size_t count;
	const struct migration *list = migrations_list(&count);
	int latest = migrations_latest();
	int version = 0;
	int applied = 0;
	int rc, end_rc;

	rc = st->be->migrate_begin(st, &version);
	if (rc)
		return rc;
	if (version > latest) {
		/* A newer binary migrated between our first check and the lock. */
		store__errorf(
		    st,
		    "database %s has schema version %d but this build of Fusion knows only up to %d; "
		    "refusing to open it (upgrade Fusion or use another DB_PATH)",
		    st->location, version, latest);
		rc = STORE_ETOONEW;
		goto out;
	}
	int64_t now = now_ms();
	for (size_t i = 0; i < count; i++) {
		if (list[i].version <= version)
			continue;
		rc = st->be->exec_migration(st, &list[i], now);
		if (rc)
			goto out;
		applied++;
	}
	rc = STORE_OK;
out:
	end_rc = st->be->migrate_end(st, rc == STORE_OK);
	if (rc == STORE_OK)
		rc = end_rc;
	if (rc == STORE_OK && applied > 0)
		log_info(NULL, "store: %s: migrated schema from version %d to %d (%d migration%s)",
		         st->location, version, latest, applied, applied == 1 ? "" : "s");
	return rc;
}

int store_open(const char *location, int flags, struct store **out, char *err, size_t errlen)
{
	char scratch[STORE_ERRMSG_MAX];
	struct store *st = NULL;
	const struct store_backend *be;
	int latest = migrations_latest();
	int version = 0;
	int rc;

	if (!err || errlen == 0) {
		err = scratch;
		errlen = sizeof(scratch);
	}
	err[0] = '\0';
	if (!out) {
		snprintf(err, errlen, "store_open: out is NULL");
		return STORE_EINVAL;
	}
	*out = NULL;
	if (!location || !*location) {
		snprintf(err, errlen, "store_open: empty database location");
		return STORE_EINVAL;
	}
	if ((flags & ~STORE_FLAGS_ALL) || ((flags & STORE_MIGRATE) && (flags & STORE_READONLY))) {
		snprintf(err, errlen, "store_open: invalid flags 0x%x", (unsigned)flags);
		return STORE_EINVAL;
	}
	be = backend_for(location, err, errlen);
	if (!be)
		return STORE_EINVAL;

	st = xcalloc(1, sizeof(*st));
	st->be = be;
	st->location = xstrdup(location);
	st->flags = flags;

	rc = be->open(st);
	if (rc)
		goto out;
	rc = be->schema_version(st, &version);
	if (rc)
		goto out;
	if (version > latest) {
		store__errorf(
		    st,
		    "database %s has schema version %d but this build of Fusion knows only up to %d; "
		    "refusing to open it (upgrade Fusion or use another DB_PATH)",
		    location, version, latest);
		rc = STORE_ETOONEW;
		goto out;
	}
	if (version < latest && !(flags & STORE_MIGRATE)) {
		store__errorf(st,
		              "database %s has schema version %d but this build needs %d; "
		              "migrations are needed (open it once with migrations enabled)",
		              location, version, latest);
		rc = STORE_EINVAL;
		goto out;
	}
	rc = be->configure(st);
	if (rc)
		goto out;
	/* Already current: skip the write lock that migrate() would take. */
	if ((flags & STORE_MIGRATE) && version < latest) {
		rc = migrate(st);
		if (rc)
			goto out;
	}
	log_debug(NULL, "store: opened %s (%s, schema version %d)", location, be->name, latest);
	*out = st;
	st = NULL;
out:
	if (st) {
		str_copy(err, errlen, st->errmsg[0] ? st->errmsg : "store_open failed");
		store_close(st);
	}
	return rc;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	st->be->close(st);
	free(st->location);
	free(st);
}

const char *store_errmsg(const struct store *st)
{
	return st ? st->errmsg : "no store handle";
}

int store_ping(struct store *st)
{
	return st->be->ping(st);
}

int store_schema_version(struct store *st, int *version_out)
{
	return st->be->schema_version(st, version_out);
}

int store_schema_version_latest(void)
{
	return migrations_latest();
}

static int check_key(struct store *st, const char *key)
{
	if (!key || !*key) {
		store__errorf(st, "setting key is empty");
		return STORE_EINVAL;
	}
	if (strlen(key) > SETTING_KEY_MAX) {
		store__errorf(st, "setting key is longer than %d bytes", SETTING_KEY_MAX);
		return STORE_EINVAL;
	}
	return STORE_OK;
}

int store_setting_get(struct store *st, const char *key, char **value_out)
{
	int rc = check_key(st, key);

	*value_out = NULL;
	if (rc)
		return rc;
	return st->be->setting_get(st, key, value_out);
}

int store_setting_set(struct store *st, const char *key, const char *value)
{
	int rc = check_key(st, key);

	if (rc)
		return rc;
	if (!value) {
		store__errorf(st, "setting %s: value is NULL", key);
		return STORE_EINVAL;
	}
	if (strlen(value) > SETTING_VALUE_MAX) {
		store__errorf(st, "setting %s: value is longer than %d bytes", key, SETTING_VALUE_MAX);
		return STORE_EINVAL;
	}
	if (st->flags & STORE_READONLY) {
		store__errorf(st, "setting %s: store was opened read-only", key);
		return STORE_EINVAL;
	}
	return st->be->setting_set(st, key, value, now_ms());
}

/* ---- generic SQL: argument checks -------------------------------------- */

/* Skip whitespace, comments and empty statements (';'). */
static const char *sql_skip_noise(const char *p)
{
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v' ||
		       *p == ';')
			p++;
		if (p[0] == '-' && p[1] == '-') {
			p = strchr(p, '\n');
			if (!p)
				return "";
		} else if (p[0] == '/' && p[1] == '*') {
			const char *end = strstr(p + 2, "*/");
			if (!end)
				return "";
			p = end + 2;
		} else {
			return p;
		}
	}
}

/*
 * Whether the statement starts or ends a transaction.  Those must go
 * through store_begin/commit/rollback: otherwise st->in_txn would lie,
 * and a later store_commit would commit (or a later error roll back)
 * work the caller did not mean to group.
 */
static bool sql_is_txn_control(const char *sql)
{
	static const char *const words[] = { "BEGIN",     "COMMIT",  "END",   "ROLLBACK",
		                             "SAVEPOINT", "RELEASE", "START", "ABORT" };
	const char *p = sql_skip_noise(sql);
	size_t n = 0;

	while ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z'))
		n++;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strlen(words[i]) == n && strncasecmp(p, words[i], n) == 0)
			return true;
	}
	return false;
}

/* Messages name parameters by their 1-based position and never show a value. */
static int check_param(struct store *st, size_t idx, const struct store_value *v)
{
	switch (v->type) {
	case STORE_T_NULL:
	case STORE_T_INT:
		return STORE_OK;
	case STORE_T_REAL:
		if (isnan(v->d)) {
			store__errorf(st, "parameter %zu is NaN", idx);
			return STORE_EINVAL;
		}
		return STORE_OK;
	case STORE_T_TEXT:
	case STORE_T_BLOB:
		if (!v->p && v->len) {
			store__errorf(st, "parameter %zu has a NULL pointer and length %zu", idx, v->len);
			return STORE_EINVAL;
		}
		if (v->len > STORE_VALUE_MAX) {
			store__errorf(st, "parameter %zu is %zu bytes, more than the %d allowed", idx, v->len,
			              STORE_VALUE_MAX);
			return STORE_EINVAL;
		}
		if (v->type == STORE_T_TEXT && v->checked)
			return STORE_OK; /* the caller scanned it (sv_text_checked) */
		if (v->type == STORE_T_TEXT && v->len && memchr(v->p, '\0', v->len)) {
			store__errorf(st, "parameter %zu: TEXT holds a NUL byte (use a BLOB)", idx);
			return STORE_EINVAL;
		}
		if (v->type == STORE_T_TEXT && !utf8_valid(v->p, v->len)) {
			store__errorf(st, "parameter %zu: TEXT is not valid UTF-8", idx);
			return STORE_EINVAL;
		}
		return STORE_OK;
	}
	store__errorf(st, "parameter %zu has unknown type %d", idx, (int)v->type);
	return STORE_EINVAL;
}

/* Everything the front knows how to refuse before the back-end runs sql. */
static int check_statement(struct store *st, const char *sql, const struct store_value *params,
                           size_t nparams)
{
	int rc;

	st->errmsg[0] = '\0';
	if (!sql || !*sql) {
		store__errorf(st, "SQL is empty");
		return STORE_EINVAL;
	}
	if (strnlen(sql, STORE_SQL_MAX + 1) > STORE_SQL_MAX) {
		store__errorf(st, "SQL is longer than %d bytes", STORE_SQL_MAX);
		return STORE_EINVAL;
	}
	if (nparams > STORE_PARAMS_MAX) {
		store__errorf(st, "%zu parameters, more than the %d allowed", nparams, STORE_PARAMS_MAX);
		return STORE_EINVAL;
	}
	if (nparams && !params) {
		store__errorf(st, "%zu parameters announced but params is NULL", nparams);
		return STORE_EINVAL;
	}
	if (sql_is_txn_control(sql)) {
		store__errorf(st,
		              "transaction control in SQL text; use store_begin/store_commit/store_rollback");
		return STORE_EINVAL;
	}
	for (size_t i = 0; i < nparams; i++) {
		rc = check_param(st, i + 1, &params[i]);
		if (rc)
			return rc;
	}
	/* The database may have aborted the transaction on its own (disk
	 * full, I/O error): running on would autocommit each statement. */
	bool open = st->be->in_transaction(st);
	if (st->in_txn && !open) {
		store__errorf(st,
		              "%s: the transaction was aborted by the database after an earlier error; "
		              "call store_rollback",
		              st->location);
		return STORE_EIO;
	}
	if (!st->in_txn && open) {
		store__errorf(st,
		              "%s: a transaction is open that store_begin did not start; call store_rollback",
		              st->location);
		return STORE_EIO;
	}
	return STORE_OK;
}

int store_exec(struct store *st, const char *sql, const struct store_value *params, size_t nparams,
               int64_t *changes_out)
{
	int64_t changes = 0;
	int rc;

	if (changes_out)
		*changes_out = 0;
	rc = check_statement(st, sql, params, nparams);
	if (rc)
		return rc;
	rc = st->be->run(st, sql, params, nparams, &changes, NULL);
	if (rc == STORE_OK && changes_out)
		*changes_out = changes;
	return rc;
}

int store_query(struct store *st, const char *sql, const struct store_value *params, size_t nparams,
                struct store_rows **out)
{
	struct store_rows *rows = NULL;
	int rc;

	if (!out) {
		store__errorf(st, "store_query: out is NULL");
		return STORE_EINVAL;
	}
	*out = NULL;
	rc = check_statement(st, sql, params, nparams);
	if (rc)
		return rc;
	rc = st->be->run(st, sql, params, nparams, NULL, &rows);
	if (rc) {
		store_rows_free(rows);
		return rc;
	}
	store__rows_seal(rows);
	*out = rows;
	return STORE_OK;
}

/* ---- transactions ------------------------------------------------------ */

int store_begin(struct store *st)
{
	int rc;

	st->errmsg[0] = '\0';
	if (st->in_txn) {
		store__errorf(st, "a transaction is already open on this handle (store_begin does not nest)");
		return STORE_EINVAL;
	}
	if (st->flags & STORE_READONLY) {
		store__errorf(st, "store_begin: store was opened read-only");
		return STORE_EINVAL;
	}
	if (st->be->in_transaction(st)) {
		store__errorf(st,
		              "%s: a transaction is open that store_begin did not start; call store_rollback",
		              st->location);
		return STORE_EIO;
	}
	rc = st->be->begin(st);
	if (rc == STORE_OK)
		st->in_txn = true;
	return rc;
}

int store_commit(struct store *st)
{
	st->errmsg[0] = '\0';
	if (!st->in_txn) {
		store__errorf(st, "store_commit: no transaction is open");
		return STORE_EINVAL;
	}
	st->in_txn = false;
	if (!st->be->in_transaction(st)) {
		store__errorf(st,
		              "%s: the transaction was aborted by the database after an earlier error; "
		              "nothing was committed",
		              st->location);
		return STORE_EIO;
	}
	return st->be->commit(st);
}

int store_rollback(struct store *st)
{
	st->in_txn = false;
	/* The back-end returns 0 when there is nothing to roll back. */
	return st->be->rollback(st);
}

/* ---- maintenance ------------------------------------------------------- */

int store_reclaim(struct store *st, int max_pages, int64_t *free_pages_out)
{
	int64_t left = 0;
	int rc;

	st->errmsg[0] = '\0';
	if (free_pages_out)
		*free_pages_out = 0;
	if (max_pages < 1) {
		store__errorf(st, "store_reclaim: max_pages must be at least 1");
		return STORE_EINVAL;
	}
	if (st->flags & STORE_READONLY) {
		store__errorf(st, "store_reclaim: store was opened read-only");
		return STORE_EINVAL;
	}
	if (st->in_txn || st->be->in_transaction(st)) {
		store__errorf(st, "store_reclaim: not allowed inside a transaction");
		return STORE_EINVAL;
	}
	rc = st->be->reclaim(st, max_pages, &left);
	if (rc == STORE_OK && free_pages_out)
		*free_pages_out = left;
	return rc;
}

/* ---- materialised results ---------------------------------------------- */

struct store_rows {
	size_t ncols;
	size_t nrows;              /* complete rows; set by seal */
	size_t *name_off;          /* owned: ncols offsets of column names in arena */
	struct store_value *cells; /* owned: row-major values, cells_cap allocated */
	size_t ncells;
	size_t cells_cap;
	char *arena; /* owned: column names, TEXT (NUL-terminated) and BLOB bytes */
	size_t arena_len;
	size_t arena_cap;
	bool sealed; /* TEXT/BLOB .p point into arena (before: offset in .i) */
};

#define ROWS_ARENA_INITIAL 256
#define ROWS_CELLS_INITIAL 16

static size_t rows_bytes(const struct store_rows *r)
{
	return sizeof(*r) + r->ncols * sizeof(size_t) + r->cells_cap * sizeof(struct store_value) +
	       r->arena_cap;
}

static int rows_too_big(struct store *st)
{
	store__errorf(st, "query result is larger than %d bytes; bound it with LIMIT", STORE_ROWS_MAX_BYTES);
	return STORE_EINVAL;
}

/* Grow *cap (an array of `size`-byte items at *p) to hold `need` items,
 * doubling, but never past the result bound. */
static int rows_grow(struct store *st, struct store_rows *r, void **p, size_t *cap, size_t size, size_t need)
{
	if (need <= *cap)
		return STORE_OK;
	size_t other = rows_bytes(r) - *cap * size;
	if (other > STORE_ROWS_MAX_BYTES || need > (STORE_ROWS_MAX_BYTES - other) / size)
		return rows_too_big(st);
	size_t limit = (STORE_ROWS_MAX_BYTES - other) / size;
	size_t ncap = *cap ? *cap : 1;
	while (ncap < need)
		ncap *= 2;
	if (ncap > limit)
		ncap = limit;
	*p = xrealloc(*p, ncap * size);
	*cap = ncap;
	return STORE_OK;
}

/* Append n bytes (plus a NUL when `term`) to the arena; *off_out gets
 * where they start. */
static int rows_arena_add(struct store *st, struct store_rows *r, const void *bytes, size_t n, bool term,
                          size_t *off_out)
{
	size_t need = n + (term ? 1 : 0);
	void *arena = r->arena;

	if (need > STORE_ROWS_MAX_BYTES)
		return rows_too_big(st);
	int rc = rows_grow(st, r, &arena, &r->arena_cap, 1, r->arena_len + need);
	r->arena = arena;
	if (rc)
		return rc;
	*off_out = r->arena_len;
	if (n)
		memcpy(r->arena + r->arena_len, bytes, n);
	if (term)
		r->arena[r->arena_len + n] = '\0';
	r->arena_len += need;
	return STORE_OK;
}

struct store_rows *store__rows_new(size_t ncols)
{
	struct store_rows *r = xcalloc(1, sizeof(*r));

	r->ncols = ncols;
	r->name_off = xcalloc(ncols ? ncols : 1, sizeof(size_t));
	/* Non-NULL from the start, so an empty value can point into it. */
	r->arena = xmalloc(ROWS_ARENA_INITIAL);
	r->arena_cap = ROWS_ARENA_INITIAL;
	r->arena[0] = '\0';
	r->arena_len = 1; /* offset 0 is "": the name of a column never named */
	return r;
}

int store__rows_colname(struct store *st, struct store_rows *r, size_t col, const char *name)
{
	if (col >= r->ncols || !name)
		return STORE_OK;
	return rows_arena_add(st, r, name, strlen(name), true, &r->name_off[col]);
}

int store__rows_push(struct store *st, struct store_rows *r, const struct store_value *v)
{
	struct store_value copy = *v;
	void *cells = r->cells;
	int rc;

	if (r->ncols == 0) {
		store__errorf(st, "internal: value pushed into a result without columns");
		return STORE_EIO;
	}
	rc = rows_grow(st, r, &cells, &r->cells_cap, sizeof(struct store_value),
	               r->ncells + 1 > ROWS_CELLS_INITIAL ? r->ncells + 1 : ROWS_CELLS_INITIAL);
	r->cells = cells;
	if (rc)
		return rc;
	if (v->type == STORE_T_TEXT || v->type == STORE_T_BLOB) {
		size_t off;
		rc = rows_arena_add(st, r, v->p, v->len, v->type == STORE_T_TEXT, &off);
		if (rc)
			return rc;
		copy.p = NULL;
		copy.i = (int64_t)off;
	}
	r->cells[r->ncells++] = copy;
	return STORE_OK;
}

void store__rows_seal(struct store_rows *r)
{
	if (!r || r->sealed)
		return;
	r->nrows = r->ncols ? r->ncells / r->ncols : 0;
	for (size_t i = 0; i < r->ncells; i++) {
		struct store_value *v = &r->cells[i];
		if (v->type == STORE_T_TEXT || v->type == STORE_T_BLOB) {
			v->p = r->arena + (size_t)v->i;
			v->i = 0;
		}
	}
	r->sealed = true;
}

size_t store_rows_count(const struct store_rows *r)
{
	return r ? r->nrows : 0;
}

size_t store_rows_ncols(const struct store_rows *r)
{
	return r ? r->ncols : 0;
}

const char *store_rows_colname(const struct store_rows *r, size_t col)
{
	if (!r || col >= r->ncols)
		return NULL;
	return r->arena + r->name_off[col];
}

int store_rows_col(const struct store_rows *r, const char *name)
{
	if (!r || !name)
		return -1;
	for (size_t i = 0; i < r->ncols && i <= INT_MAX; i++) {
		if (strcasecmp(r->arena + r->name_off[i], name) == 0)
			return (int)i;
	}
	return -1;
}

const struct store_value *store_rows_get(const struct store_rows *r, size_t row, size_t col)
{
	if (!r || !r->sealed || row >= r->nrows || col >= r->ncols)
		return NULL;
	return &r->cells[row * r->ncols + col];
}

static const struct store_value *rows_by_name(const struct store_rows *r, size_t row, const char *name)
{
	int col = store_rows_col(r, name);

	return col < 0 ? NULL : store_rows_get(r, row, (size_t)col);
}

int64_t store_rows_int(const struct store_rows *r, size_t row, const char *name, int64_t dflt)
{
	const struct store_value *v = rows_by_name(r, row, name);

	return v && v->type == STORE_T_INT ? v->i : dflt;
}

const char *store_rows_text(const struct store_rows *r, size_t row, const char *name)
{
	const struct store_value *v = rows_by_name(r, row, name);

	return v && v->type == STORE_T_TEXT ? v->p : NULL;
}

double store_rows_real(const struct store_rows *r, size_t row, const char *name, double dflt)
{
	const struct store_value *v = rows_by_name(r, row, name);

	if (v && v->type == STORE_T_REAL)
		return v->d;
	if (v && v->type == STORE_T_INT)
		return (double)v->i;
	return dflt;
}

bool store_rows_isnull(const struct store_rows *r, size_t row, const char *name)
{
	const struct store_value *v = rows_by_name(r, row, name);

	return !v || v->type == STORE_T_NULL;
}

void store_rows_free(struct store_rows *r)
{
	if (!r)
		return;
	free(r->name_off);
	free(r->cells);
	free(r->arena);
	free(r);
}
