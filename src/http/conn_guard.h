/*
 * conn_guard.h — protections in front of evhttp, one per client connection.
 *
 * libevent 2.1's evhttp enforces its size limits only by answering with
 * an HTML page (and a 413 even for oversized headers), and its timeouts
 * are per-read idle timers that a client trickling one byte at a time
 * never trips.  So each accepted connection's socket bufferevent is
 * wrapped in a filter bufferevent (handed to evhttp through
 * evhttp_set_bevcb) whose input side follows request framing and
 * enforces, before evhttp sees a byte:
 *
 *   - the request head (request line + headers) must fit in
 *     max_header_bytes                          → 431, JSON
 *   - a Content-Length above max_body_bytes     → 413, JSON, body not read
 *   - a chunked body growing past the same bound → 413, JSON
 *   - ambiguous framing (CL + TE, two different CLs, TE other than
 *     chunked)                                   → 400 / 501, JSON
 *   - the whole head within header_timeout_ms and the whole body within
 *     body_timeout_ms, counted from their first byte → 408, JSON
 *   - at most max_connections open at once (all workers) → 503, JSON
 *
 * A refused connection gets its error written straight to the socket
 * (it is small and nothing else is queued), its write side shut, and
 * then "lingers" — input read and discarded — for at most a second or
 * 1 MiB so the client can read the answer before the close, after which
 * evhttp is told the connection failed and frees it.
 *
 * Bytes pass through without copying (evbuffer chains are moved); the
 * head is held back until complete so that evhttp never parses a head
 * we would refuse.  Output goes around the filter (see conn_guard.c) so
 * evhttp's "response written" means "in the kernel", as without a
 * filter.
 */
#ifndef FUSION_HTTP_CONN_GUARD_H
#define FUSION_HTTP_CONN_GUARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct guard;
struct bufferevent;

/* The guards of one worker, so that shutdown can tell when every
 * connection has finished its request and flushed its answer. */
struct conn_guard_set {
	struct guard *head; /* intrusive list */
	int count;
};

struct conn_guard_limits {
	uint64_t max_header_bytes;
	uint64_t max_body_bytes;
	int header_timeout_ms;
	int body_timeout_ms;
	int max_connections;
	atomic_int *open_connections; /* shared by all workers */
};

/* Make the bufferevent evhttp will use for one new connection (fd is set
 * later by evhttp).  limits and set must outlive the connection. */
struct bufferevent *conn_guard_new(struct event_base *base, const struct conn_guard_limits *limits,
                                   struct conn_guard_set *set);

/* Response bytes of this connection not yet handed to the kernel (the
 * measure for backpressure).  bev is the one evhttp uses. */
size_t conn_guard_output_pending(struct bufferevent *bev);

/* True while some connection of the set is mid-request (head or body
 * partly received) or still has response bytes to flush. */
bool conn_guard_set_busy(const struct conn_guard_set *set);

/* ---- pure parsing helpers, exposed for unit tests ------------------ */

struct head_framing {
	bool chunked;
	bool has_length;
	uint64_t length;
};

enum {
	FRAMING_OK = 0,
	FRAMING_BAD = -1,         /* 400: malformed or ambiguous */
	FRAMING_UNSUPPORTED = -2, /* 501: transfer coding we do not speak */
};

/* Find the end of a request head in buf: returns the head's length
 * including the blank line, or 0 when not complete yet. Accepts CRLF and
 * bare LF line ends, as evhttp does. */
size_t http_head_end(const char *buf, size_t len);

/* Read Content-Length / Transfer-Encoding from a complete head. */
int http_head_framing(const char *head, size_t len, struct head_framing *out);

/* Check the request line of a complete head: a method we know, a
 * target in origin or absolute form, HTTP/1.0 or HTTP/1.1. Returns 0 or
 * the status to refuse with (400, 501, 505). */
int http_request_line_check(const char *head, size_t len);

/* Parse a chunk-size line (without its line end): hex digits, optional
 * ";ext". Returns 0 or -1. */
int http_chunk_size(const char *line, size_t len, uint64_t *out);

#endif
