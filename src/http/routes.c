/*
 * routes.c — see routes.h.
 */
#include "http/routes.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin.h"
#include "gateway/proxy.h"
#include "http/request.h"

struct route {
	const char *method; /* "GET" also answers HEAD; "*" any (the handler routes further) */
	const char *path;
	bool prefix; /* path matches itself and anything below it */
	http_handler_fn handler;
};

/* clang-format off */
static const struct route routes[] = {
	{ "GET", "/healthz",     false, health_live },
	{ "GET", "/readyz",      false, health_ready },
	{ "GET", "/api/version", false, health_version },
	{ "*",   "/api/auth",    true,  auth_dispatch },
	{ "*",   "/api/admin",   true,  admin_dispatch },
	{ "POST", "/v1/chat/completions", false, proxy_chat_completions },
	{ "POST", "/v1/embeddings",       false, proxy_embeddings },
	{ "POST", "/v1/messages",         false, proxy_messages },
	{ "POST", "/v1/messages/count_tokens", false, proxy_count_tokens },
	{ "POST", "/v1beta/models",       true,  proxy_gemini },
	{ "GET",  "/v1/models",           true,  proxy_models },
};
/* clang-format on */

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

static bool path_matches(const struct route *rt, const char *path)
{
	if (!rt->prefix)
		return strcmp(rt->path, path) == 0;
	size_t n = strlen(rt->path);
	return strncmp(rt->path, path, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static bool method_matches(const char *want, const char *got)
{
	return strcmp(want, "*") == 0 || strcmp(want, got) == 0 ||
	       (strcmp(want, "GET") == 0 && strcmp(got, "HEAD") == 0);
}

static bool is_api_path(const char *path)
{
	static const char *const apis[] = { "/api", "/v1", "/v1beta" };
	for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++) {
		size_t n = strlen(apis[i]);
		if (strncmp(path, apis[i], n) == 0 && (path[n] == '\0' || path[n] == '/'))
			return true;
	}
	return false;
}

void routes_dispatch(struct http_req *r)
{
	char allow[64] = "";
	size_t alen = 0;
	for (size_t i = 0; i < N_ROUTES; i++) {
		const struct route *rt = &routes[i];
		if (!path_matches(rt, r->path))
			continue;
		if (method_matches(rt->method, r->method)) {
			rt->handler(r);
			return;
		}
		if (alen < sizeof(allow) - 16 && !strstr(allow, rt->method)) {
			int n = snprintf(allow + alen, sizeof(allow) - alen, "%s%s", alen ? ", " : "",
			                 rt->method);
			if (n > 0)
				alen += (size_t)n;
			if (strcmp(rt->method, "GET") == 0 && alen < sizeof(allow) - 8) {
				n = snprintf(allow + alen, sizeof(allow) - alen, ", HEAD");
				if (n > 0)
					alen += (size_t)n;
			}
		}
	}
	if (alen) {
		http_req_set_header(r, "Allow", allow);
		http_reply_error(r, 405, "method_not_allowed", "method %s is not allowed on %s", r->method,
		                 r->path);
		return;
	}
	if (!is_api_path(r->path) && (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0)) {
		static_serve(r);
		return;
	}
	http_reply_error(r, 404, "not_found", "no route for %s %s", r->method, r->path);
}
