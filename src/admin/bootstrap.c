/*
 * bootstrap.c — what the admin layer needs before anything serves.
 *
 * 1. The master key must be the one this database's secrets were
 *    encrypted with: a known value encrypted at first start (settings row
 *    "secrets.check") must decrypt.  Otherwise Fusion refuses to start
 *    rather than send garbage keys upstream.
 * 2. There is always an administrator: on a database without users,
 *    "admin" is created with FUSION_ADMIN_PASSWORD, or with "admin"
 *    and the must-change-password mark.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "auth/password.h"
#include "auth/secrets.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"

#define CHECK_KEY "secrets.check"

static int check_master_key(struct store *st, const struct secrets *sec, char *err, size_t errlen)
{
	char *check = NULL;
	int rc = store_setting_get(st, CHECK_KEY, &check);
	if (rc == STORE_ENOTFOUND) {
		/* First start of this database: nothing encrypted can exist yet. */
		struct store_rows *rows = NULL;
		rc = store_query(
		    st,
		    "SELECT (SELECT count(*) FROM provider_keys) + (SELECT count(*) FROM providers WHERE "
		    "headers_enc IS NOT NULL) AS n",
		    NULL, 0, &rows);
		int64_t n = store_rows_int(rows, 0, "n", 0);
		store_rows_free(rows);
		if (rc) {
			snprintf(err, errlen, "cannot read the database: %s", store_errmsg(st));
			return -1;
		}
		if (n > 0) {
			snprintf(err, errlen,
			         "the database holds encrypted secrets but no master-key check; refusing "
			         "to guess which key they were encrypted with");
			return -1;
		}
		char *made = NULL;
		if (secrets_make_check(sec, &made)) {
			snprintf(err, errlen, "cannot create the master-key check");
			return -1;
		}
		rc = store_setting_set(st, CHECK_KEY, made);
		free(made);
		if (rc) {
			snprintf(err, errlen, "cannot store the master-key check: %s", store_errmsg(st));
			return -1;
		}
		return 0;
	}
	if (rc) {
		snprintf(err, errlen, "cannot read the master-key check: %s", store_errmsg(st));
		return -1;
	}
	rc = secrets_verify_check(sec, check);
	free(check);
	if (rc) {
		snprintf(err, errlen,
		         "the master key does not match this database (FUSION_SECRET_KEY or the key file "
		         "beside the "
		         "database is not the one its secrets were encrypted with)%s",
		         secrets_key_created(sec)
		             ? "; a new key file was just created because none was found: "
		               "restore the original key file or set FUSION_SECRET_KEY"
		             : "");
		return -1;
	}
	return 0;
}

static int ensure_admin(struct store *st, const char *admin_password, char *err, size_t errlen)
{
	struct store_rows *rows = NULL;
	int rc = store_query(st, "SELECT count(*) AS n FROM users", NULL, 0, &rows);
	int64_t n = store_rows_int(rows, 0, "n", 0);
	store_rows_free(rows);
	if (rc) {
		snprintf(err, errlen, "cannot read users: %s", store_errmsg(st));
		return -1;
	}
	if (n > 0)
		return 0;
	if (admin_password && (strlen(admin_password) < 8 || strlen(admin_password) > PASSWORD_MAX_LEN)) {
		snprintf(err, errlen, "FUSION_ADMIN_PASSWORD must be 8 to %d bytes long", PASSWORD_MAX_LEN);
		return -1;
	}
	char hash[PASSWORD_HASH_BUF];
	if (password_hash(admin_password ? admin_password : "admin", hash, sizeof(hash))) {
		snprintf(err, errlen, "cannot hash the initial admin password");
		return -1;
	}
	int64_t now = clock_wall_ms();
	struct store_value p[] = { sv_text(hash), sv_int(admin_password ? 0 : 1), sv_int(now), sv_int(now) };
	rc = store_exec(
	    st,
	    "INSERT INTO users (username, password_hash, is_admin, must_change_password, created_at, "
	    "updated_at) VALUES ('admin', ?, 1, ?, ?, ?)",
	    p, 4, NULL);
	if (rc) {
		snprintf(err, errlen, "cannot create the initial admin user: %s", store_errmsg(st));
		return -1;
	}
	if (admin_password)
		log_info(NULL, "created user 'admin' with the password from FUSION_ADMIN_PASSWORD");
	else
		log_warn(NULL,
		         "created user 'admin' with password 'admin': log in and change it (every admin call "
		         "is refused until then)");
	return 0;
}

int admin_bootstrap(struct store *st, const struct secrets *sec, const char *admin_password, char *err,
                    size_t errlen)
{
	if (check_master_key(st, sec, err, errlen))
		return -1;
	return ensure_admin(st, admin_password, err, errlen);
}
