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
 */
#include "store/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/migrations.h"
#include "store/store_backend.h"
#include "util/alloc.h"
#include "util/log.h"

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
		snprintf(err, errlen, "%s", st->errmsg[0] ? st->errmsg : "store_open failed");
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
