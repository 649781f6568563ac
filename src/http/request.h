/*
 * request.h — one client request as the rest of Fusion sees it.
 *
 * The worker makes a `struct http_req` when evhttp hands it a complete
 * request, normalises the path, picks a handler from the route table
 * (routes.c) and calls it.  The handler answers exactly once with one of
 * the http_reply_* functions — now, or later from an event callback for
 * asynchronous work — and that answer ends the request: the access log
 * line is written and the struct is freed.  After http_reply_* returns
 * the handler must not touch `r` again.
 *
 * Every answer carries X-Request-Id (the client's if sane, else a new
 * one) and X-Content-Type-Options: nosniff; error answers are JSON.
 */
#ifndef FUSION_HTTP_REQUEST_H
#define FUSION_HTTP_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/reqid.h"

struct evhttp_request;
struct evbuffer;
struct worker;

struct http_req {
	struct evhttp_request *ev; /* borrowed from evhttp until the reply */
	struct worker *w;          /* the worker thread serving it */
	char id[REQID_BUF];
	char *path;                   /* owned; normalised, no query */
	const char *query;            /* raw query string (after "?"); NULL if none */
	char *query_owned;            /* owned storage behind query, if any */
	const char *method;           /* "GET", ... static string */
	uint64_t start_ns;            /* monotonic */
	struct http_req *prev, *next; /* worker's in-flight list */
	int stream_status;            /* status of a streamed answer, for the access log */
	/* Set by asynchronous handlers (http_req_on_close / http_req_set_abort). */
	void (*close_cb)(struct http_req *r, void *arg);
	void *close_arg;
	void (*abort_cb)(struct http_req *r); /* worker stopping with r unanswered */
	void (*drain_cb)(struct http_req *r, void *arg);
	void *drain_arg;
	uint64_t rearmed_ns; /* last stream write through evhttp (see http_stream_write) */
};

/* Request accessors. */
const char *http_req_header(const struct http_req *r, const char *name);
struct evbuffer *http_req_body(const struct http_req *r);
const char *http_req_peer(const struct http_req *r);

/* Add a response header (before replying). */
void http_req_set_header(struct http_req *r, const char *name, const char *value);

/* Answer and end the request.  body may be NULL (empty); it is drained. */
void http_reply(struct http_req *r, int status, const char *content_type, struct evbuffer *body);

/* Answer with a JSON document; takes ownership of `doc`. */
void http_reply_json(struct http_req *r, int status, json_t *doc);

/* Answer with a JSON error: {"error":{"message","type","code"}}. */
void http_reply_error(struct http_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Streamed answers (Server-Sent Events and the like).  start sends the
 * status line and headers (chunked); write sends bytes (buf is drained);
 * end finishes and ends the request like http_reply.  drained, if set,
 * runs once the connection's output has reached the kernel — the moment
 * to resume a paused upstream.
 */
void http_stream_start(struct http_req *r, int status, const char *content_type);
void http_stream_write(struct http_req *r, struct evbuffer *buf);
void http_stream_on_drained(struct http_req *r, void (*drained)(struct http_req *r, void *arg), void *arg);
void http_stream_end(struct http_req *r);

/* Has the client closed its connection while r is unanswered?  evhttp
 * reads nothing more once a request is parsed, so a client that leaves
 * before any answer byte is written would go unnoticed; this peeks at the
 * socket (no data is consumed) for end-of-file or an error. */
bool http_req_client_closed(const struct http_req *r);

/* Response bytes queued for this client and not yet in the kernel. */
size_t http_req_output_pending(const struct http_req *r);

/*
 * Tell me when the client goes away before the answer ends.  cb runs on
 * the worker thread; r stays valid and must still be ended with one of
 * the reply functions (which then only free it).  Cleared by every end.
 */
void http_req_on_close(struct http_req *r, void (*cb)(struct http_req *r, void *arg), void *arg);

/* Called instead of an answer when the worker stops with r unanswered
 * (past SHUTDOWN_TIMEOUT_MS): free what the handler holds; r is freed
 * after. */
void http_req_set_abort(struct http_req *r, void (*abort)(struct http_req *r));

/* Worker-side life cycle (server.c). */
struct http_req *http_req_begin(struct worker *w, struct evhttp_request *ev);

#endif
