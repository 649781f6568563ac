/*
 * static.c — the embedded web UI (see webui.h for where the bytes come from).
 *
 * "/" is index.html.  A path naming an embedded file serves it; any
 * other GET that does not look like a file (no extension in its last
 * segment) is a client-side route of the single-page app and gets
 * index.html too, so deep links work.  Content-hashed files under
 * /assets/ are cached forever; index.html is revalidated every time
 * (ETag / If-None-Match → 304).  The bytes are sent by reference, never
 * copied.
 */
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "http/request.h"
#include "http/routes.h"
#include "http/webui.h"

static int cmp_asset(const void *key, const void *elem)
{
	return strcmp((const char *)key, ((const struct webui_asset *)elem)->path);
}

static const struct webui_asset *find_asset(const char *path)
{
	return bsearch(path, webui_assets, webui_assets_count, sizeof(webui_assets[0]), cmp_asset);
}

/* Does the last path segment have an extension ("/x/app.js")? */
static int looks_like_file(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(path, '.');
	return dot && (!slash || dot > slash);
}

static int etag_matches(const char *if_none_match, const char *etag)
{
	if (!if_none_match)
		return 0;
	if (strcmp(if_none_match, "*") == 0)
		return 1;
	/* A list of tags, possibly weak (W/"..."): weak comparison, as
	 * RFC 9110 §13.1.2 asks for If-None-Match. */
	return strstr(if_none_match, etag) != NULL;
}

void static_serve(struct http_req *r)
{
	const char *path = strcmp(r->path, "/") == 0 ? "/index.html" : r->path;
	const struct webui_asset *a = find_asset(path);
	if (!a) {
		if (looks_like_file(r->path)) {
			http_reply_error(r, 404, "not_found", "no such file: %s", r->path);
			return;
		}
		a = find_asset("/index.html");
		if (!a) {
			http_reply_error(r, 404, "not_found", "the web UI is not built into this binary");
			return;
		}
	}

	http_req_set_header(r, "ETag", a->etag);
	http_req_set_header(r, "Cache-Control",
	                    a->immutable ? "public, max-age=31536000, immutable" : "no-cache");
	if (strncmp(a->content_type, "text/html", 9) == 0) {
		http_req_set_header(
		    r, "Content-Security-Policy",
		    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
		    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'");
		http_req_set_header(r, "X-Frame-Options", "DENY");
		http_req_set_header(r, "Referrer-Policy", "no-referrer");
	}
	if (etag_matches(http_req_header(r, "If-None-Match"), a->etag)) {
		http_reply(r, 304, NULL, NULL);
		return;
	}
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_reference(b, a->data, a->len, NULL, NULL);
	http_reply(r, 200, a->content_type, b);
	evbuffer_free(b);
}
