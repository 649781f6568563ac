/*
 * routes.h — which handler answers which path.
 *
 * The table in routes.c is the one place to read "where does a request
 * for X go".  Matching is on the normalised path: exact paths first,
 * then prefixes; a known path with the wrong method gets 405 with Allow;
 * unknown /api/ and /v1/ paths get a JSON 404; any other GET or HEAD is
 * the embedded web UI (static.c).
 */
#ifndef FUSION_HTTP_ROUTES_H
#define FUSION_HTTP_ROUTES_H

struct http_req;

typedef void (*http_handler_fn)(struct http_req *r);

void routes_dispatch(struct http_req *r);

/* Handlers that live in http/ itself. */
void health_live(struct http_req *r);
void health_ready(struct http_req *r);
void health_version(struct http_req *r);
void static_serve(struct http_req *r);

#endif
