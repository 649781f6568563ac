/*
 * admin.h — the admin API (/api/admin/...) and its authentication
 * (/api/auth/...): the only way operators change Fusion's configuration.
 *
 * Entry points for the route table: auth_dispatch() and admin_dispatch().
 * Everything else here is shared between the admin files:
 *
 *   session.c    who is calling (Bearer token or session cookie), CSRF rule
 *   auth_api.c   login / logout / me / password, login throttling
 *   crud.c       the generic list/get/create/update/delete engine
 *   resources.c  providers, provider keys, models, mappings, client keys, users
 *   settings.c   the settings document
 *   logs.c       request logs (list, detail, delete) and /stats
 *   bootstrap.c  first start: the initial admin user, the master-key check
 *
 * Every successful write rebuilds and publishes the configuration
 * snapshot (admin_config_changed) so the proxy sees it at once.
 */
#ifndef FUSION_ADMIN_ADMIN_H
#define FUSION_ADMIN_ADMIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_req;
struct store;
struct secrets;

#define ADMIN_BODY_MAX (1u << 20) /* admin documents are small */
#define SESSION_COOKIE "fusion_session"

/* Route-table entry points. */
void auth_dispatch(struct http_req *r);
void admin_dispatch(struct http_req *r);

/* ---- session.c ---------------------------------------------------- */

struct admin_user {
	int64_t id;
	int64_t session_id;
	char username[129];
	bool is_admin;
	bool must_change_password;
	bool via_cookie;
};

/*
 * Authenticate the caller.  On success fills *u and returns 0.  On
 * failure answers the request (401, or 403 for a failed CSRF check, or
 * 403 when the password must be changed first and !allow_must_change)
 * and returns -1: r is then gone.
 */
int admin_authenticate(struct http_req *r, struct admin_user *u, bool allow_must_change);

/* ---- bootstrap.c -------------------------------------------------- */

/*
 * At start-up, before workers exist: make sure the master key matches
 * this database (refuse otherwise) and that there is an administrator.
 * admin_password is FUSION_ADMIN_PASSWORD or NULL.  0 or -1 with err.
 */
int admin_bootstrap(struct store *st, const struct secrets *sec, const char *admin_password, char *err,
                    size_t errlen);

/* ---- helpers shared by the admin files ----------------------------- */

/* Publish a new configuration snapshot after a committed write. */
void admin_config_changed(struct http_req *r);

/* Answer with the store's failure in the admin error format; conflicts → 409. */
void admin_reply_store_error(struct http_req *r, struct store *st, int rc, const char *what);

/* ISO-8601 UTC with milliseconds, e.g. 2026-11-26T12:00:00.000Z (out ≥ 32 bytes). */
void admin_format_time(int64_t epoch_ms, char *out, size_t outlen);
json_t *admin_time_json(int64_t epoch_ms); /* null for 0 */

/* Parse an ISO-8601 time ("2026-11-26T12:00:00Z", with optional
 * fraction and offset, or a date alone) or epoch milliseconds given as
 * a JSON integer or a string of digits.  0 or -1. */
int admin_parse_time(const json_t *v, int64_t *epoch_ms);

/* The settings document (settings.c), also read by other layers later. */
void settings_get_handler(struct http_req *r, const struct admin_user *u);
void settings_put_handler(struct http_req *r, const struct admin_user *u);

/* ---- logs.c ------------------------------------------------------- */

/* /api/admin/logs (id NULL) and /api/admin/logs/{id} (idlen bytes of the
 * path segment): list, detail, DELETE ?before= (administrators only). */
void admin_logs_route(struct http_req *r, const struct admin_user *u, const char *id, size_t idlen);

/* /api/admin/stats: GET/HEAD only. */
void admin_stats_route(struct http_req *r, const struct admin_user *u);

#endif
