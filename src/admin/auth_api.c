/*
 * auth_api.c — /api/auth: login, logout, who am I, password change.
 *
 * Login is throttled per username and per client address: after
 * LOGIN_MAX_FAILURES failures within LOGIN_WINDOW_MS, further attempts
 * get 429 with Retry-After until the oldest failure leaves the window.
 * Failures are rows in login_attempts, so the limit holds across worker
 * threads (and, with a shared database, across instances).  A login for
 * a user that does not exist spends the same argon2id time as a real
 * one, so timing does not reveal which usernames exist.
 *
 * A session token is 256 random bits, returned once in the body and in
 * an HttpOnly SameSite=Strict cookie, and stored only as its SHA-256.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin.h"
#include "auth/password.h"
#include "auth/token.h"
#include "config.h"
#include "http/body.h"
#include "http/request.h"
#include "http/server.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/str.h"

#define LOGIN_WINDOW_MS (5 * 60 * 1000)
#define LOGIN_MAX_FAILURES 10
#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024
#define USERNAME_MAX 128

static void set_session_cookie(struct http_req *r, const char *token, int64_t max_age_s)
{
	char cookie[256];
	if (token)
		snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Strict",
		         SESSION_COOKIE, token, (long long)max_age_s);
	else
		snprintf(cookie, sizeof(cookie), "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
		         SESSION_COOKIE);
	http_req_set_header(r, "Set-Cookie", cookie);
}

static json_t *user_json(int64_t id, const char *username, bool is_admin)
{
	return json_pack("{s:I, s:s, s:b}", "id", (json_int_t)id, "username", username, "is_admin", is_admin);
}

/* Count failures in the window for one scope; *oldest is the oldest one's time. */
static int failures(struct store *st, const char *scope, int64_t now, int64_t *count, int64_t *oldest)
{
	struct store_value p[] = { sv_text(scope), sv_int(now - LOGIN_WINDOW_MS) };
	struct store_rows *rows = NULL;
	int rc = store_query(
	    st, "SELECT count(*) AS n, min(at) AS oldest FROM login_attempts WHERE scope = ? AND at > ?", p,
	    2, &rows);
	if (rc)
		return rc;
	*count = store_rows_int(rows, 0, "n", 0);
	*oldest = store_rows_int(rows, 0, "oldest", now);
	store_rows_free(rows);
	return 0;
}

static void record_failure(struct http_req *r, const char *user_scope, const char *addr_scope, int64_t now)
{
	struct store *st = r->w->store;
	struct store_value a[] = { sv_text(user_scope), sv_int(now) };
	struct store_value b[] = { sv_text(addr_scope), sv_int(now) };
	struct store_value c[] = { sv_int(now - LOGIN_WINDOW_MS) };
	if (store_exec(st, "INSERT INTO login_attempts (scope, at) VALUES (?, ?)", a, 2, NULL) ||
	    store_exec(st, "INSERT INTO login_attempts (scope, at) VALUES (?, ?)", b, 2, NULL) ||
	    store_exec(st, "DELETE FROM login_attempts WHERE at <= ?", c, 1, NULL))
		log_warn(r->id, "could not record a failed login: %s", store_errmsg(st));
}

/* Create a session for user_id and answer like a login. */
static void start_session(struct http_req *r, int64_t user_id, const char *username, bool is_admin,
                          bool must_change, int status)
{
	struct store *st = r->w->store;
	const struct config *cfg = r->w->srv->cfg;
	char token[TOKEN_BUF];
	char hash[TOKEN_HASH_BUF];
	token_new("fs_", token);
	token_hash(token, hash);
	int64_t now = clock_wall_ms();
	int64_t ttl_ms = (int64_t)cfg->session_ttl_hours * 3600 * 1000;
	const char *ua = http_req_header(r, "User-Agent");
	char ua_short[257];
	str_copy(ua_short, sizeof(ua_short), ua ? ua : "");
	struct store_value p[] = { sv_int(user_id),      sv_text(hash), sv_int(now),
		                   sv_int(now + ttl_ms), sv_int(now),   sv_text(http_req_peer(r)),
		                   sv_text(ua_short) };
	int rc = store_exec(
	    st,
	    "INSERT INTO sessions (user_id, token_hash, created_at, expires_at, last_seen_at, client_addr, "
	    "user_agent) VALUES (?, ?, ?, ?, ?, ?, ?)",
	    p, 7, NULL);
	if (rc) {
		sodium_memzero(token, sizeof(token));
		admin_reply_store_error(r, st, rc, "session");
		return;
	}
	struct store_value q[] = { sv_int(now) };
	if (store_exec(st, "DELETE FROM sessions WHERE expires_at <= ?", q, 1, NULL))
		log_warn(r->id, "could not purge expired sessions: %s", store_errmsg(st));

	set_session_cookie(r, token, ttl_ms / 1000);
	json_t *out =
	    json_pack("{s:s, s:o, s:b, s:o}", "token", token, "user", user_json(user_id, username, is_admin),
	              "must_change_password", must_change, "expires_at", admin_time_json(now + ttl_ms));
	sodium_memzero(token, sizeof(token));
	http_reply_json(r, status, out);
}

static bool valid_string(const json_t *v, size_t min, size_t max)
{
	if (!json_is_string(v))
		return false;
	size_t n = json_string_length(v);
	return n >= min && n <= max && strlen(json_string_value(v)) == n;
}

static void login(struct http_req *r)
{
	json_t *in = http_read_json_object(r, 64 * 1024);
	if (!in)
		return;
	json_t *ju = json_object_get(in, "username");
	json_t *jp = json_object_get(in, "password");
	if (!valid_string(ju, 1, USERNAME_MAX)) {
		json_decref(in);
		http_reply_error(r, 400, "invalid_field", "username: required, a string of 1 to %d bytes",
		                 USERNAME_MAX);
		return;
	}
	if (!valid_string(jp, 1, PASSWORD_MAX)) {
		json_decref(in);
		http_reply_error(r, 400, "invalid_field", "password: required, a string of 1 to %d bytes",
		                 PASSWORD_MAX);
		return;
	}
	const char *username = json_string_value(ju);
	const char *password = json_string_value(jp);
	struct store *st = r->w->store;
	int64_t now = clock_wall_ms();

	char user_scope[USERNAME_MAX + 8], addr_scope[80];
	snprintf(user_scope, sizeof(user_scope), "user:%s", username);
	snprintf(addr_scope, sizeof(addr_scope), "addr:%s", http_req_peer(r));
	int64_t nu = 0, na = 0, ou = now, oa = now;
	int rc = failures(st, user_scope, now, &nu, &ou);
	if (!rc)
		rc = failures(st, addr_scope, now, &na, &oa);
	if (rc) {
		json_decref(in);
		admin_reply_store_error(r, st, rc, "login throttle");
		return;
	}
	if (nu >= LOGIN_MAX_FAILURES || na >= LOGIN_MAX_FAILURES) {
		int64_t oldest = nu >= LOGIN_MAX_FAILURES ? ou : oa;
		if (na >= LOGIN_MAX_FAILURES && oa > oldest)
			oldest = oa;
		int64_t wait_s = (oldest + LOGIN_WINDOW_MS - now + 999) / 1000;
		char ra[24];
		snprintf(ra, sizeof(ra), "%lld", (long long)(wait_s > 0 ? wait_s : 1));
		http_req_set_header(r, "Retry-After", ra);
		log_warn(r->id, "login throttled for %s from %s", username, http_req_peer(r));
		json_decref(in);
		http_reply_error(r, 429, "too_many_attempts", "too many failed logins; retry in %s seconds",
		                 ra);
		return;
	}

	struct store_value p[] = { sv_text(username) };
	struct store_rows *rows = NULL;
	rc = store_query(st,
	                 "SELECT id, username, password_hash, is_admin, must_change_password FROM users "
	                 "WHERE username = ?",
	                 p, 1, &rows);
	if (rc) {
		json_decref(in);
		admin_reply_store_error(r, st, rc, "login");
		return;
	}
	bool ok = false;
	if (store_rows_count(rows) == 1) {
		ok = password_verify(store_rows_text(rows, 0, "password_hash"), password);
	} else {
		password_burn(password);
	}
	if (!ok) {
		store_rows_free(rows);
		record_failure(r, user_scope, addr_scope, now);
		log_info(r->id, "failed login for '%s' from %s", username, http_req_peer(r));
		json_decref(in);
		http_reply_error(r, 401, "invalid_credentials", "invalid username or password");
		return;
	}
	int64_t uid = store_rows_int(rows, 0, "id", 0);
	bool is_admin = store_rows_int(rows, 0, "is_admin", 0) != 0;
	bool must_change = store_rows_int(rows, 0, "must_change_password", 0) != 0;
	char name[USERNAME_MAX + 1];
	str_copy(name, sizeof(name), store_rows_text(rows, 0, "username"));
	store_rows_free(rows);
	json_decref(in);

	struct store_value d[] = { sv_text(user_scope) };
	if (store_exec(st, "DELETE FROM login_attempts WHERE scope = ?", d, 1, NULL))
		log_warn(r->id, "could not clear failed logins: %s", store_errmsg(st));
	log_info(r->id, "login: %s from %s", name, http_req_peer(r));
	start_session(r, uid, name, is_admin, must_change, 200);
}

static void logout(struct http_req *r)
{
	struct admin_user u;
	if (admin_authenticate(r, &u, true))
		return;
	struct store_value p[] = { sv_int(u.session_id) };
	int rc = store_exec(r->w->store, "DELETE FROM sessions WHERE id = ?", p, 1, NULL);
	if (rc) {
		admin_reply_store_error(r, r->w->store, rc, "logout");
		return;
	}
	set_session_cookie(r, NULL, 0);
	http_reply_json(r, 200, json_pack("{s:b}", "ok", 1));
}

static void me(struct http_req *r)
{
	struct admin_user u;
	if (admin_authenticate(r, &u, true))
		return;
	http_reply_json(r, 200,
	                json_pack("{s:o, s:b}", "user", user_json(u.id, u.username, u.is_admin),
	                          "must_change_password", u.must_change_password));
}

static void change_password(struct http_req *r)
{
	struct admin_user u;
	if (admin_authenticate(r, &u, true))
		return;
	json_t *in = http_read_json_object(r, 64 * 1024);
	if (!in)
		return;
	json_t *jc = json_object_get(in, "current_password");
	json_t *jn = json_object_get(in, "new_password");
	if (!valid_string(jc, 1, PASSWORD_MAX)) {
		json_decref(in);
		http_reply_error(r, 400, "invalid_field", "current_password: required");
		return;
	}
	if (!valid_string(jn, PASSWORD_MIN, PASSWORD_MAX)) {
		json_decref(in);
		http_reply_error(r, 400, "invalid_field", "new_password: required, %d to %d bytes",
		                 PASSWORD_MIN, PASSWORD_MAX);
		return;
	}
	struct store *st = r->w->store;
	struct store_value p[] = { sv_int(u.id) };
	struct store_rows *rows = NULL;
	int rc = store_query(st, "SELECT password_hash FROM users WHERE id = ?", p, 1, &rows);
	if (rc) {
		json_decref(in);
		admin_reply_store_error(r, st, rc, "password change");
		return;
	}
	bool ok = store_rows_count(rows) == 1 &&
	          password_verify(store_rows_text(rows, 0, "password_hash"), json_string_value(jc));
	store_rows_free(rows);
	if (!ok) {
		json_decref(in);
		http_reply_error(r, 400, "invalid_field", "current_password: does not match");
		return;
	}
	if (strcmp(json_string_value(jc), json_string_value(jn)) == 0) {
		json_decref(in);
		http_reply_error(r, 400, "invalid_field",
		                 "new_password: must differ from the current password");
		return;
	}
	char hash[256];
	if (password_hash(json_string_value(jn), hash, sizeof(hash))) {
		json_decref(in);
		http_reply_error(r, 500, "internal_error", "could not hash the password");
		return;
	}
	json_decref(in);
	int64_t now = clock_wall_ms();
	struct store_value q[] = { sv_text(hash), sv_int(now), sv_int(u.id) };
	struct store_value s[] = { sv_int(u.id) };
	if ((rc = store_begin(st)) == 0 &&
	    (rc = store_exec(st,
	                     "UPDATE users SET password_hash = ?, must_change_password = 0, updated_at = ? "
	                     "WHERE id = ?",
	                     q, 3, NULL)) == 0 &&
	    (rc = store_exec(st, "DELETE FROM sessions WHERE user_id = ?", s, 1, NULL)) == 0)
		rc = store_commit(st);
	if (rc) {
		store_rollback(st);
		admin_reply_store_error(r, st, rc, "password change");
		return;
	}
	log_info(r->id, "password changed for %s; other sessions revoked", u.username);
	/* Every session of this user ended; the caller gets a fresh one. */
	start_session(r, u.id, u.username, u.is_admin, false, 200);
}

void auth_dispatch(struct http_req *r)
{
	static const struct {
		const char *path;
		const char *method;
		void (*fn)(struct http_req *);
	} routes[] = {
		{ "/api/auth/login", "POST", login },
		{ "/api/auth/logout", "POST", logout },
		{ "/api/auth/me", "GET", me },
		{ "/api/auth/password", "POST", change_password },
	};
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(r->path, routes[i].path) != 0)
			continue;
		if (strcmp(r->method, routes[i].method) == 0 ||
		    (strcmp(routes[i].method, "GET") == 0 && strcmp(r->method, "HEAD") == 0)) {
			routes[i].fn(r);
		} else {
			http_req_set_header(r, "Allow", routes[i].method);
			http_reply_error(r, 405, "method_not_allowed", "method %s is not allowed on %s",
			                 r->method, r->path);
		}
		return;
	}
	http_reply_error(r, 404, "not_found", "no route for %s %s", r->method, r->path);
}
