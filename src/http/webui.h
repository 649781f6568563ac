/*
 * webui.h — the built web UI, embedded into the binary.
 *
 * build/gen/webui.c is generated at build time by tools/embed.c from
 * web/dist (the Vite output).  Paths are absolute ("/index.html",
 * "/assets/index-1a2b3c.js"), sorted by strcmp so they can be searched
 * with bsearch.  The data is immutable and lives for the whole process.
 */
#ifndef FUSION_HTTP_WEBUI_H
#define FUSION_HTTP_WEBUI_H

#include <stddef.h>

struct webui_asset {
	const char *path;          /* "/assets/x.js" */
	const char *content_type;  /* "text/javascript; charset=utf-8" */
	const unsigned char *data; /* file bytes */
	size_t len;
	const char *etag; /* quoted strong validator, e.g. "\"5f3a...\"" */
	int immutable;    /* 1 for content-hashed files under /assets/ */
};

extern const struct webui_asset webui_assets[];
extern const size_t webui_assets_count;

#endif
