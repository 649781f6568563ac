/*
 * client.h — the upstream HTTP client: how a worker thread calls LLM
 * providers.
 *
 * One struct upstream per worker thread, created on that worker's
 * event_base and used only from that thread.  It is a libcurl multi handle
 * driven by the event loop, so every transfer of the worker shares one
 * connection pool (keep-alive, HTTP/2 multiplexing over TLS, one DNS cache).
 *
 * Process-wide precondition: main() calls curl_global_init(CURL_GLOBAL_DEFAULT)
 * once before any thread starts (and curl_global_cleanup() after they all
 * ended).  Nothing here calls it.  SIGPIPE should be ignored by the process.
 *
 * Lifetime of a transfer (struct upstream_xfer):
 *   upstream_start() returns NULL  -> nothing started, no callback ever runs.
 *   upstream_start() returns x     -> exactly one of:
 *       on_done runs once (success or failure); x is valid until on_done
 *       returns and must not be used after; or
 *       the caller calls upstream_cancel(x): no callback of x runs after it
 *       and x must not be used after it; or
 *       upstream_free(u): no callback runs after it.
 * No callback ever runs before upstream_start returns.
 *
 * Timeouts (all per transfer; there is deliberately no total timeout, so a
 * long healthy stream lives as long as it makes progress):
 *   connect_timeout_ms     DNS + TCP + TLS (curl's CURLOPT_CONNECTTIMEOUT).
 *   first_byte_timeout_ms  from the moment the connection is ready and the
 *                          request is about to be sent, until the response
 *                          status line arrives.  Worst case before any byte
 *                          is therefore connect + first_byte.
 *   idle_timeout_ms        once the status line arrived: the longest gap
 *                          between received header lines / body bytes.  The
 *                          clock is stopped while the transfer is paused by
 *                          on_data (our backpressure is not the provider's
 *                          fault) and restarts on upstream_resume.
 *
 * Response bodies: the client advertises every encoding curl decodes
 * (Accept-Encoding via CURLOPT_ACCEPT_ENCODING "") and on_data always sees
 * the decoded bytes, so the caller must not forward the provider's
 * Content-Encoding / Content-Length.  Do not pass an Accept-Encoding header.
 * Redirects are not followed: a 3xx is an ordinary response.  Requests never
 * use "Expect: 100-continue" (curl adds it to bodies over 1 MiB and may then
 * wait up to 1 s for a 100 the server never sends).  Proxies from the
 * environment (https_proxy, ...) are honoured, as curl does by default.
 */
#ifndef FUSION_UPSTREAM_CLIENT_H
#define FUSION_UPSTREAM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct upstream;
struct upstream_xfer;

/* Limits checked by upstream_start (a request over them is refused). */
#define UPSTREAM_MAX_HEADERS 100
#define UPSTREAM_MAX_HEADER_LEN 16384

/* New client on base (borrowed; must outlive the client).  NULL on failure. */
struct upstream *upstream_new(struct event_base *base);

/* Cancel every live transfer (closing their connections) and free the client
 * and its connection pool.  No on_done runs for those transfers: their owners
 * must treat them as gone.  Must not be called from inside one of this
 * client's callbacks (it aborts the process if it is: a programming error).
 * NULL is a no-op. */
void upstream_free(struct upstream *u);

/* How a transfer ended.  For failover: ECONNECT and ETIMEOUT_CONNECT mean the
 * request was never sent (always safe to retry elsewhere); the others mean
 * the provider may have received (and billed) it. */
enum upstream_result {
	UPSTREAM_OK = 0,              /* a complete response (any status, 4xx/5xx included) */
	UPSTREAM_ECONNECT,            /* DNS, TCP or TLS failed; request not sent */
	UPSTREAM_ETIMEOUT_CONNECT,    /* connect_timeout_ms passed; request not sent */
	UPSTREAM_ETIMEOUT_FIRST_BYTE, /* request sent, no status line in time */
	UPSTREAM_ETIMEOUT_IDLE,       /* response started, then stalled */
	UPSTREAM_EPROTOCOL,           /* after sending: connection closed/reset early, malformed reply */
	UPSTREAM_EABORTED,            /* on_response or on_data asked to stop */
	UPSTREAM_EOTHER,              /* anything else (local failure, bad URL at transfer time, ...) */
};

/* Stable lower-case name for logs and metrics ("ok", "timeout_idle", ...). */
const char *upstream_result_name(enum upstream_result r);

/* on_data return value: "took nothing, deliver the same bytes again after
 * upstream_resume".  Any other non-zero value aborts the transfer. */
#define UPSTREAM_PAUSE 1

/*
 * Header lines that many transfers send alike (a provider's auth and extra
 * headers, say), checked and made into curl's list once and kept by the
 * client of one worker under the caller's key.  A transfer sends its own
 * req->headers first, then those of its set.  A set lives while the client
 * keeps it or a transfer uses it; the client keeps up to
 * UPSTREAM_HEADER_SETS (one key may push out another), and putting a key
 * of a newer generation (a new configuration, say) lets go of every set of
 * an older one.  Their memory is wiped when freed: a set may hold a secret.
 * Single worker: no locks.
 */
#define UPSTREAM_HEADER_SETS 64
struct upstream_headers;
struct upstream_headers_key {
	uint64_t generation;
	uint64_t a, b, c; /* the caller's; compared, not interpreted */
};
/* The set kept under k, or NULL. */
struct upstream_headers *upstream_headers_get(struct upstream *u, const struct upstream_headers_key *k);
/* Keep lines ("Name: value", as in req->headers; copied) under k and return
 * the set; NULL when a line is invalid or there are too many. */
struct upstream_headers *upstream_headers_put(struct upstream *u, const struct upstream_headers_key *k,
                                              const char *const *lines, size_t n);

struct upstream_request {
	const char *method;                  /* "POST", "GET", ...; NULL = POST with a body, else GET */
	const char *url;                     /* http:// or https:// only; copied */
	const char *const *headers;          /* "Name: value" lines, no CR/LF; copied */
	size_t nheaders;                     /* <= UPSTREAM_MAX_HEADERS */
	struct upstream_headers *header_set; /* sent after headers; of this client; may be NULL */
	const void *body;                    /* copied; may be NULL when body_len is 0 */
	size_t body_len;
	int connect_timeout_ms;    /* > 0, e.g. 10000 */
	int first_byte_timeout_ms; /* > 0 */
	int idle_timeout_ms;       /* > 0 */
	bool compressed;           /* offer gzip/deflate/br/zstd (Accept-Encoding) and decode */
	/* Callbacks, all on the worker thread, never before upstream_start returned.
	 *
	 * on_response: once, when the final (non-1xx) response head is complete.
	 *   content_type may be NULL; both strings are valid during the call only.
	 *   Non-zero aborts (on_done then gets UPSTREAM_EABORTED).  Optional.
	 * on_data: decoded body bytes, in order.  0 = took all; UPSTREAM_PAUSE =
	 *   took nothing (same bytes again after upstream_resume); other non-zero
	 *   aborts (UPSTREAM_EABORTED).  Optional (bytes are then dropped).
	 * on_done: exactly once unless the transfer was cancelled or the client
	 *   freed first.  status is the final HTTP status (0 if none arrived).
	 *   detail is never NULL ("" on success), is valid during the call only, and
	 *   never holds request headers or a URL query string.  Required.
	 *
	 * Inside any of them the caller may: upstream_cancel (any transfer, this
	 * one included), upstream_resume, upstream_start (a start from inside
	 * on_response/on_data is added to curl on the next loop turn).  Not
	 * upstream_free. */
	int (*on_response)(void *ud, long status, const char *content_type);
	int (*on_data)(void *ud, const char *p, size_t n);
	void (*on_done)(void *ud, enum upstream_result r, long status, const char *detail);
	void *ud;
};

/* Start a transfer.  NULL when the request is invalid (bad method, URL,
 * header line, timeout) or a resource could not be made; then no callback
 * ever runs.  Everything req points to may be freed when this returns. */
struct upstream_xfer *upstream_start(struct upstream *u, const struct upstream_request *req);

/* Undo an UPSTREAM_PAUSE: on the next loop turn curl is told to continue and
 * the same bytes are delivered again.  Safe from anywhere on the worker
 * thread, including callbacks; a no-op if x is not paused by then, or was
 * cancelled or has finished. */
void upstream_resume(struct upstream_xfer *x);

/* Abandon a transfer (e.g. the client went away).  No callback of x runs
 * after this returns and x must not be used again.  The curl handle is
 * removed on the next loop turn (never from inside a curl callback); an
 * unfinished HTTP/1 response closes its connection then, so the provider
 * sees the client leave (an HTTP/2 stream is reset, its connection kept).
 * Safe from any callback of this client; a no-op once x has finished (from
 * inside its own on_done). */
void upstream_cancel(struct upstream_xfer *x);

/* Transfers started and not yet finished or cancelled. */
size_t upstream_active(const struct upstream *u);

/* Durations measured on the monotonic clock from upstream_start, in
 * microseconds, -1 when the point was not reached. */
struct upstream_timing {
	int64_t sent_us;       /* connection ready, request about to be sent (connect/TLS/pool time) */
	int64_t status_us;     /* status line received: time to first byte */
	int64_t first_data_us; /* first body bytes handed to on_data */
	bool reused;           /* the request went over a pooled connection */
	int http_version;      /* 10, 11, 20, 30; 0 if unknown */
};

/* Fill t for x.  Meant for on_response, on_data and on_done. */
void upstream_xfer_timing(const struct upstream_xfer *x, struct upstream_timing *t);

/* Value of response header name (case-insensitive; the last one if repeated)
 * of the final response, or NULL.  Valid only inside on_response and on_data,
 * until the next call of this function.  For Retry-After and rate-limit
 * headers on a 429/503. */
const char *upstream_response_header(struct upstream_xfer *x, const char *name);

#endif
