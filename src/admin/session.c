/*
 * session.c — who is calling the admin API.
 *
 * A caller proves itself with a session token, sent either as
 * "Authorization: Bearer <token>" (scripts, the CLI) or in the HttpOnly
 * session cookie (the web UI).  Tokens are stored only as their SHA-256;
 * the lookup joins the session to its user in one query.
 *
 * CSRF: a browser attaches the cookie to cross-site requests, so a
 * state-changing call authenticated by cookie must also carry a header
 * a cross-site form cannot set (X-Requested-With) or an Origin equal to
 * this server's.  Bearer calls cannot be forged that way and need
 * neither.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "admin/admin.h"
#include "auth/token.h"
#include "http/request.h"
#include "http/server.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/str.h"

#define LAST_SEEN_EVERY_MS (5 * 60 * 1000)

/* Copy the token from the Authorization header or the cookie into out. */
static bool find_token(struct http_req *r, char *out, size_t outlen, bool *via_cookie)
{
	const char *auth = http_req_header(r, "Authorization");
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
		const char *t = auth + 7;
		while (*t == ' ')
			t++;
		size_t n = strcspn(t, " \t");
		if (n == 0 || n >= outlen)
			return false;
		memcpy(out, t, n);
		out[n] = '\0';
		*via_cookie = false;
		return true;
	}
	const char *cookie = http_req_header(r, "Cookie");
	if (!cookie)
		return false;
	size_t name_len = strlen(SESSION_COOKIE);
	for (const char *p = cookie; *p;) {
		while (*p == ' ' || *p == ';')
			p++;
		if (strncmp(p, SESSION_COOKIE, name_len) == 0 && p[name_len] == '=') {
			const char *v = p + name_len + 1;
			size_t n = strcspn(v, ";");
			while (n && v[n - 1] == ' ')
				n--;
			if (n == 0 || n >= outlen)
				return false;
			memcpy(out, v, n);
			out[n] = '\0';
			*via_cookie = true;
			return true;
		}
		p += strcspn(p, ";");
	}
	return false;
}

static bool is_safe_method(const char *m)
{
	return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "OPTIONS") == 0;
}

/* Origin must be http(s)://<Host> exactly. */
static bool origin_matches_host(struct http_req *r)
{
	const char *origin = http_req_header(r, "Origin");
	const char *host = http_req_header(r, "Host");
	if (!origin || !host)
		return false;
	const char *rest = NULL;
	if (strncmp(origin, "http://", 7) == 0)
		rest = origin + 7;
	else if (strncmp(origin, "https://", 8) == 0)
		rest = origin + 8;
	return rest && strcasecmp(rest, host) == 0;
}

int admin_authenticate(struct http_req *r, struct admin_user *u, bool allow_must_change)
{
	memset(u, 0, sizeof(*u));
	char token[TOKEN_BUF + 8];
	bool via_cookie = false;
	if (!find_token(r, token, sizeof(token), &via_cookie)) {
		http_reply_error(r, 401, "unauthorized",
		                 "authentication required: log in at /api/auth/login");
		return -1;
	}
	char hash[TOKEN_HASH_BUF];
	token_hash(token, hash);
	sodium_memzero(token, sizeof(token));

	struct store *st = r->w->store;
	struct store_value p[] = { sv_text(hash) };
	struct store_rows *rows = NULL;
	int rc = store_query(
	    st,
	    "SELECT s.id AS session_id, s.expires_at, s.last_seen_at, u.id AS user_id, u.username, "
	    "u.is_admin, u.must_change_password FROM sessions s JOIN users u ON u.id = s.user_id "
	    "WHERE s.token_hash = ?",
	    p, 1, &rows);
	if (rc != 0) {
		admin_reply_store_error(r, st, rc, "session lookup");
		return -1;
	}
	int64_t now = clock_wall_ms();
	if (store_rows_count(rows) == 0 || store_rows_int(rows, 0, "expires_at", 0) <= now) {
		store_rows_free(rows);
		http_reply_error(r, 401, "unauthorized", "session is invalid or has expired: log in again");
		return -1;
	}
	u->session_id = store_rows_int(rows, 0, "session_id", 0);
	u->id = store_rows_int(rows, 0, "user_id", 0);
	const char *name = store_rows_text(rows, 0, "username");
	str_copy(u->username, sizeof(u->username), name ? name : "");
	u->is_admin = store_rows_int(rows, 0, "is_admin", 0) != 0;
	u->must_change_password = store_rows_int(rows, 0, "must_change_password", 0) != 0;
	u->via_cookie = via_cookie;
	int64_t last_seen = store_rows_int(rows, 0, "last_seen_at", 0);
	store_rows_free(rows);

	if (via_cookie && !is_safe_method(r->method) && !http_req_header(r, "X-Requested-With") &&
	    !origin_matches_host(r)) {
		http_reply_error(
		    r, 403, "csrf_check_failed",
		    "cookie-authenticated changes need an X-Requested-With header or a same-origin "
		    "Origin header");
		return -1;
	}
	if (u->must_change_password && !allow_must_change) {
		http_reply_error(r, 403, "password_change_required",
		                 "the password must be changed first: POST /api/auth/password");
		return -1;
	}
	/* Touch the session rarely: every touch is a durable write. */
	if (now - last_seen > LAST_SEEN_EVERY_MS) {
		struct store_value q[] = { sv_int(now), sv_int(u->session_id) };
		if (store_exec(st, "UPDATE sessions SET last_seen_at = ? WHERE id = ?", q, 2, NULL) != 0)
			log_warn(r->id, "could not update session last_seen_at: %s", store_errmsg(st));
	}
	return 0;
}
