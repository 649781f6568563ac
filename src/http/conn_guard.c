/*
 * conn_guard.c — see conn_guard.h for what is enforced and why.
 *
 * Data flow: socket → underlying bufferevent input → guard_input()
 * (this file) → filter bufferevent input → evhttp.  The output side is
 * a plain pass-through.  The guard follows HTTP/1.1 request framing with
 * a small state machine so it always knows whether the next byte starts
 * a head, belongs to a body, or is chunk framing:
 *
 *   HEAD ──complete head──▶ BODY (Content-Length) ──▶ HEAD
 *        └──────────────▶ CHUNK_SIZE ⇄ CHUNK_DATA → CHUNK_CRLF
 *                                └─ size 0 ─▶ TRAILER ──blank line──▶ HEAD
 *   any state ──refusal──▶ DEAD (discard input, then fail the connection)
 *
 * One timer per connection serves, in turn, the head deadline, the body
 * deadline, the linger bound, and the immediate refusal of a connection
 * over the cap.  The guard is owned by the filter bufferevent (freed in
 * its free_context callback) and never frees anything from inside its
 * own callbacks: ending a connection is a deferred error event that
 * evhttp handles after the current callback returns.
 */
#include "http/conn_guard.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http/errors.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/reqid.h"

#define CHUNK_LINE_MAX 4096
#define LINGER_MS 1000
#define LINGER_MAX_BYTES (1u << 20)

enum guard_state {
	G_HEAD,
	G_BODY,
	G_CHUNK_SIZE,
	G_CHUNK_DATA,
	G_CHUNK_CRLF,
	G_TRAILER,
	G_DEAD,
};

enum timer_purpose {
	T_NONE,
	T_HEAD,
	T_BODY,
	T_LINGER,
	T_REJECT,
};

struct guard {
	const struct conn_guard_limits *lim; /* borrowed; outlives us */
	struct conn_guard_set *set;          /* borrowed; outlives us */
	struct guard *prev, *next;           /* links in set */
	struct bufferevent *filter;          /* the bufferevent that owns us */
	struct bufferevent *under;           /* owned by filter (CLOSE_ON_FREE) */
	struct event *timer;                 /* owned */
	struct event *flush;                 /* owned: writes queued output (on_flush) */
	enum guard_state state;
	enum timer_purpose timer_purpose;
	uint64_t remaining;  /* bytes left in a body or chunk */
	uint64_t body_total; /* chunked body bytes so far */
	uint64_t trailer_bytes;
	uint64_t linger_bytes;
};

/* ---- pure parsing helpers ------------------------------------------ */

size_t http_head_end(const char *buf, size_t len)
{
	/* A blank line: "\n\n" or "\n\r\n". Leading blank lines before a
	 * request line are not ends (RFC 9112 §2.2 lets us skip them, and
	 * evhttp does too), so the search starts after the first byte that
	 * is not a line end. */
	size_t i = 0;
	while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
		i++;
	for (; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Trim spaces and tabs from both ends of [*p, *p+*n). */
static void trim(const char **p, size_t *n)
{
	while (*n && (**p == ' ' || **p == '\t')) {
		(*p)++;
		(*n)--;
	}
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t' || (*p)[*n - 1] == '\r'))
		(*n)--;
}

static int parse_decimal(const char *p, size_t n, uint64_t *out)
{
	if (n == 0 || n > 19)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return 0;
}

/* Is the last comma-separated coding in a Transfer-Encoding value "chunked",
 * and are all codings ones we accept (only "chunked")? */
static int te_value(const char *p, size_t n, bool *chunked)
{
	*chunked = false;
	while (n) {
		const char *comma = memchr(p, ',', n);
		size_t part = comma ? (size_t)(comma - p) : n;
		const char *q = p;
		size_t qn = part;
		trim(&q, &qn);
		if (qn) {
			if (qn == 7 && strncasecmp(q, "chunked", 7) == 0) {
				if (*chunked)
					return FRAMING_BAD; /* chunked twice */
				*chunked = true;
			} else {
				return FRAMING_UNSUPPORTED;
			}
		}
		if (!comma)
			break;
		p = comma + 1;
		n -= part + 1;
	}
	return *chunked ? FRAMING_OK : FRAMING_BAD;
}

int http_head_framing(const char *head, size_t len, struct head_framing *out)
{
	memset(out, 0, sizeof(*out));
	bool have_te = false;
	const char *end = head + len;
	/* Skip leading blank lines, then the request line. */
	const char *p = head;
	while (p < end && (*p == '\r' || *p == '\n'))
		p++;
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl)
		return FRAMING_BAD;
	p = nl + 1;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		const char *line = p;
		size_t n = (size_t)(nl - p);
		p = nl + 1;
		if (n && line[n - 1] == '\r')
			n--;
		if (n == 0)
			break; /* blank line: end of head */
		if (line[0] == ' ' || line[0] == '\t')
			return FRAMING_BAD; /* obsolete line folding: refuse (RFC 9112 §5.2) */
		const char *colon = memchr(line, ':', n);
		if (!colon)
			return FRAMING_BAD;
		size_t nameLen = (size_t)(colon - line);
		if (nameLen == 0 || line[nameLen - 1] == ' ' || line[nameLen - 1] == '\t')
			return FRAMING_BAD; /* whitespace before colon: smuggling vector */
		const char *val = colon + 1;
		size_t vn = n - nameLen - 1;
		trim(&val, &vn);
		if (nameLen == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
			/* Also accept "5, 5" (a list of identical values, RFC 9110 §8.6). */
			while (vn) {
				const char *comma = memchr(val, ',', vn);
				size_t part = comma ? (size_t)(comma - val) : vn;
				const char *q = val;
				size_t qn = part;
				trim(&q, &qn);
				uint64_t v;
				if (parse_decimal(q, qn, &v))
					return FRAMING_BAD;
				if (out->has_length && out->length != v)
					return FRAMING_BAD;
				out->has_length = true;
				out->length = v;
				if (!comma)
					break;
				val = comma + 1;
				vn -= part + 1;
			}
			if (!out->has_length)
				return FRAMING_BAD;
		} else if (nameLen == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
			if (have_te)
				return FRAMING_BAD;
			have_te = true;
			int rc = te_value(val, vn, &out->chunked);
			if (rc)
				return rc;
		}
	}
	if (have_te && out->has_length)
		return FRAMING_BAD; /* both: classic request smuggling */
	return FRAMING_OK;
}

int http_request_line_check(const char *head, size_t len)
{
	static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS" };
	const char *p = head, *end = head + len;
	while (p < end && (*p == '\r' || *p == '\n'))
		p++;
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl)
		return 400;
	size_t n = (size_t)(nl - p);
	if (n && p[n - 1] == '\r')
		n--;
	const char *sp1 = memchr(p, ' ', n);
	if (!sp1)
		return 400;
	size_t mlen = (size_t)(sp1 - p);
	bool known = false;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		known = known || (strlen(methods[i]) == mlen && memcmp(methods[i], p, mlen) == 0);
	const char *target = sp1 + 1;
	const char *line_end = p + n;
	const char *sp2 = memchr(target, ' ', (size_t)(line_end - target));
	if (!sp2 || sp2 == target)
		return 400;
	const char *version = sp2 + 1;
	size_t vlen = (size_t)(line_end - version);
	if (memchr(version, ' ', vlen))
		return 400;
	if (vlen != 8 || memcmp(version, "HTTP/1.", 7) != 0)
		return vlen >= 5 && memcmp(version, "HTTP/", 5) == 0 ? 505 : 400;
	if (version[7] != '0' && version[7] != '1')
		return 505;
	if (!(target[0] == '/' || (sp2 - target > 7 && strncasecmp(target, "http://", 7) == 0) ||
	      (sp2 - target > 8 && strncasecmp(target, "https://", 8) == 0)))
		return 400;
	for (const char *c = p; c < line_end; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return 400;
	}
	if (!known) {
		for (const char *c = p; c < sp1; c++) {
			if (!isupper((unsigned char)*c))
				return 400;
		}
		return 501;
	}
	return 0;
}

int http_chunk_size(const char *line, size_t len, uint64_t *out)
{
	size_t i = 0;
	uint64_t v = 0;
	for (; i < len; i++) {
		int d;
		char c = line[i];
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			break;
		if (i >= 15)
			return -1; /* beyond any size we accept */
		v = v * 16 + (uint64_t)d;
	}
	if (i == 0)
		return -1;
	/* What follows may be whitespace and chunk extensions only. */
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i < len && line[i] != ';')
		return -1;
	*out = v;
	return 0;
}

/* ---- the guard ----------------------------------------------------- */

static void timer_arm(struct guard *g, enum timer_purpose why, int ms)
{
	struct timeval tv = clock_tv_ms(ms);
	g->timer_purpose = why;
	evtimer_add(g->timer, &tv);
}

static void timer_disarm(struct guard *g)
{
	g->timer_purpose = T_NONE;
	evtimer_del(g->timer);
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 408:
		return "Request Timeout";
	case 413:
		return "Payload Too Large";
	case 431:
		return "Request Header Fields Too Large";
	case 501:
		return "Not Implemented";
	case 505:
		return "HTTP Version Not Supported";
	case 503:
		return "Service Unavailable";
	default:
		return "Error";
	}
}

static void peer_name(int fd, char *out, size_t outlen)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl = sizeof(ss);
	snprintf(out, outlen, "?");
	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)outlen);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)outlen);
}

/*
 * Answer with an error and close.  `pending` says evhttp still holds an
 * earlier pipelined request of this connection, unanswered: our bytes
 * would overtake its response, so we close without answering instead.
 * (evhttp stops reading while it serves a request, so an earlier request
 * can only be pending when it arrived in the same read as this one.)
 */
static void refuse(struct guard *g, int status, const char *code, const char *message, bool pending)
{
	int fd = bufferevent_getfd(g->under);
	char rid[REQID_BUF];
	reqid_make(rid);
	char peer[INET6_ADDRSTRLEN];
	peer_name(fd, peer, sizeof(peer));

	bool quiet = pending || evbuffer_get_length(bufferevent_get_output(g->under)) > 0;
	if (fd >= 0 && !quiet) {
		char *body =
		    http_error_body(message, status >= 500 ? "server_error" : "invalid_request_error", code);
		char resp[1024];
		int n = snprintf(resp, sizeof(resp),
		                 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		                 "Connection: close\r\nX-Request-Id: %s\r\n\r\n%s",
		                 status, reason_phrase(status), strlen(body), rid, body);
		free(body);
		if (n > 0 && (size_t)n < sizeof(resp)) {
			/* A fresh or idle socket has an empty send buffer: this
			 * small write completes or we give up on it. */
			ssize_t w = send(fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)w;
		}
		shutdown(fd, SHUT_WR);
	}
	log_info(rid, "refused request from %s: %d %s%s", peer, status, message,
	         quiet ? " (closed without reply)" : "");

	g->state = G_DEAD;
	g->linger_bytes = 0;
	timer_arm(g, T_LINGER, LINGER_MS);
}

/* End the connection: evhttp frees it (and us) once this callback chain unwinds. */
static void fail_connection(struct guard *g)
{
	timer_disarm(g);
	bufferevent_trigger_event(g->filter, BEV_EVENT_ERROR, BEV_TRIG_DEFER_CALLBACKS);
}

static void guard_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct guard *g = arg;
	enum timer_purpose why = g->timer_purpose;
	g->timer_purpose = T_NONE;
	switch (why) {
	case T_HEAD:
		refuse(g, 408, "request_timeout", "request head not received in time", false);
		break;
	case T_BODY:
		refuse(g, 408, "request_timeout", "request body not received in time", false);
		break;
	case T_REJECT:
		refuse(g, 503, "too_many_connections", "too many open connections; retry later", false);
		break;
	case T_LINGER:
		fail_connection(g);
		break;
	case T_NONE:
		break;
	}
}

/* Find a line end within the first `max` bytes; returns its offset or -1. */
static ssize_t find_lf(struct evbuffer *src, size_t max)
{
	struct evbuffer_ptr ptr = evbuffer_search(src, "\n", 1, NULL);
	if (ptr.pos < 0 || (size_t)ptr.pos >= max)
		return -1;
	return ptr.pos;
}

static enum bufferevent_filter_result guard_input(struct evbuffer *src, struct evbuffer *dst,
                                                  ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                                  void *arg)
{
	struct guard *g = arg;
	const struct conn_guard_limits *lim = g->lim;
	bool moved = false;
	bool passed_whole = false; /* a complete request went to evhttp in this call */

	if (g->timer_purpose == T_REJECT) {
		/* Over the connection cap and the client spoke first. */
		timer_disarm(g);
		refuse(g, 503, "too_many_connections", "too many open connections; retry later", false);
	}
	for (;;) {
		size_t avail = evbuffer_get_length(src);
		if (g->state == G_DEAD) {
			evbuffer_drain(src, avail);
			g->linger_bytes += avail;
			if (g->linger_bytes > LINGER_MAX_BYTES)
				fail_connection(g);
			break;
		}
		if (avail == 0)
			break;

		switch (g->state) {
		case G_HEAD: {
			if (g->timer_purpose != T_HEAD)
				timer_arm(g, T_HEAD, lim->header_timeout_ms);
			size_t scan = avail < lim->max_header_bytes + 3 ? avail : lim->max_header_bytes + 3;
			const char *p = (const char *)evbuffer_pullup(src, (ev_ssize_t)scan);
			size_t hl = http_head_end(p, scan);
			if (hl == 0 || hl > lim->max_header_bytes) {
				if (hl == 0 && avail <= lim->max_header_bytes)
					goto out; /* wait for the rest of the head */
				refuse(g, 431, "request_header_too_large",
				       "request head exceeds the size limit", passed_whole);
				continue;
			}
			int status = http_request_line_check(p, hl);
			if (status) {
				refuse(g, status, status == 501 ? "method_not_supported" : "invalid_request",
				       status == 501   ? "request method not supported"
				       : status == 505 ? "only HTTP/1.0 and HTTP/1.1 are supported"
				                       : "malformed request line",
				       passed_whole);
				continue;
			}
			struct head_framing f;
			int rc = http_head_framing(p, hl, &f);
			if (rc == FRAMING_UNSUPPORTED) {
				refuse(g, 501, "unsupported_transfer_encoding",
				       "only the chunked transfer coding is supported", passed_whole);
				continue;
			}
			if (rc != FRAMING_OK) {
				refuse(g, 400, "invalid_request", "malformed or ambiguous request framing",
				       passed_whole);
				continue;
			}
			if (f.has_length && f.length > lim->max_body_bytes) {
				refuse(g, 413, "request_too_large", "request body exceeds the size limit",
				       passed_whole);
				continue;
			}
			/* The whole request already here (the common case): head and
			 * body go in one move, which hands over whole chains when
			 * they are all there is instead of copying into new ones. */
			bool whole = !f.chunked && f.has_length && f.length > 0 && avail - hl >= f.length;
			evbuffer_remove_buffer(src, dst, whole ? hl + (size_t)f.length : hl);
			moved = true;
			timer_disarm(g);
			if (f.chunked) {
				g->state = G_CHUNK_SIZE;
				g->body_total = 0;
				timer_arm(g, T_BODY, lim->body_timeout_ms);
			} else if (!whole && f.has_length && f.length > 0) {
				g->state = G_BODY;
				g->remaining = f.length;
				timer_arm(g, T_BODY, lim->body_timeout_ms);
			} else {
				passed_whole = true;
			}
			break;
		}
		case G_BODY:
		case G_CHUNK_DATA: {
			size_t n = avail < g->remaining ? avail : (size_t)g->remaining;
			evbuffer_remove_buffer(src, dst, n);
			moved = true;
			g->remaining -= n;
			if (g->remaining == 0) {
				if (g->state == G_CHUNK_DATA) {
					g->state = G_CHUNK_CRLF;
				} else {
					g->state = G_HEAD;
					timer_disarm(g);
					passed_whole = true;
				}
			}
			break;
		}
		case G_CHUNK_SIZE:
		case G_TRAILER: {
			ssize_t lf = find_lf(src, CHUNK_LINE_MAX);
			if (lf < 0) {
				if (avail < CHUNK_LINE_MAX)
					goto out;
				refuse(g, 400, "invalid_request", "chunk framing line too long",
				       passed_whole);
				continue;
			}
			size_t linelen = (size_t)lf + 1;
			const char *line = (const char *)evbuffer_pullup(src, (ev_ssize_t)linelen);
			size_t content = (size_t)lf;
			if (content && line[content - 1] == '\r')
				content--;
			if (g->state == G_CHUNK_SIZE) {
				uint64_t size;
				if (http_chunk_size(line, content, &size)) {
					refuse(g, 400, "invalid_request", "malformed chunk size",
					       passed_whole);
					continue;
				}
				g->body_total += size;
				if (g->body_total > lim->max_body_bytes) {
					refuse(g, 413, "request_too_large",
					       "request body exceeds the size limit", passed_whole);
					continue;
				}
				if (size == 0) {
					g->state = G_TRAILER;
					g->trailer_bytes = 0;
				} else {
					g->state = G_CHUNK_DATA;
					g->remaining = size;
				}
			} else {
				g->trailer_bytes += linelen;
				if (g->trailer_bytes > lim->max_header_bytes) {
					refuse(g, 431, "request_header_too_large",
					       "request trailers exceed the size limit", passed_whole);
					continue;
				}
				if (content == 0) {
					g->state = G_HEAD;
					timer_disarm(g);
					passed_whole = true;
				}
			}
			evbuffer_remove_buffer(src, dst, linelen);
			moved = true;
			break;
		}
		case G_CHUNK_CRLF: {
			const char *p = (const char *)evbuffer_pullup(src, avail < 2 ? (ev_ssize_t)avail : 2);
			size_t need = p[0] == '\r' ? 2 : 1;
			if (p[0] != '\r' && p[0] != '\n') {
				refuse(g, 400, "invalid_request", "missing line end after chunk data",
				       passed_whole);
				continue;
			}
			if (avail < need)
				goto out;
			if (need == 2 && p[1] != '\n') {
				refuse(g, 400, "invalid_request", "missing line end after chunk data",
				       passed_whole);
				continue;
			}
			evbuffer_remove_buffer(src, dst, need);
			moved = true;
			g->state = G_CHUNK_SIZE;
			break;
		}
		case G_DEAD:
			break;
		}
	}
out:
	return moved ? BEV_OK : BEV_NEED_MORE;
}

/*
 * Output side.  libevent 2.1's filter only pushes output while the
 * filter has EV_WRITE enabled, and evhttp adds a response *before*
 * enabling it, so a response could sit unsent until a timeout; and the
 * filter tells evhttp "written" once bytes reach the underlying buffer,
 * not the socket, so a Connection: close answer could be cut short when
 * evhttp frees the connection.  So the filter's own output function
 * never consumes anything; instead:
 *   - on_filter_output notes that output waits and has on_flush run once
 *     evhttp is done adding to it (later in the same loop turn);
 *   - on_flush writes it to the socket at once when nothing is queued
 *     there, as nginx does, rather than asking epoll whether the socket
 *     is writable first: two epoll_ctl calls and a loop turn saved per
 *     response or stream chunk.  What the kernel does not take moves to
 *     the socket bufferevent (no copy: chains move), which writes it
 *     when it can;
 *   - evhttp hears "written" (the filter's write callback) once the
 *     bytes are in the kernel — from on_flush, or from on_socket_output
 *     when the socket buffer drains — the same moment plain evhttp would.
 */
static enum bufferevent_filter_result guard_output(struct evbuffer *src, struct evbuffer *dst,
                                                   ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                                   void *arg)
{
	return BEV_NEED_MORE;
}

static void on_filter_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct guard *g = arg;
	if (info->n_added == 0 || evbuffer_get_length(buf) == 0)
		return;
	struct evbuffer *sock_out = bufferevent_get_output(g->under);
	if (evbuffer_get_length(sock_out)) {
		evbuffer_add_buffer(sock_out, buf); /* behind bytes already waiting */
		return;
	}
	event_active(g->flush, EV_WRITE, 0); /* no-op when already active */
}

static void on_flush(evutil_socket_t unused, short what, void *arg)
{
	struct guard *g = arg;
	struct evbuffer *out = bufferevent_get_output(g->filter);
	struct evbuffer *sock_out = bufferevent_get_output(g->under);
	if (evbuffer_get_length(out) == 0)
		return;
	evutil_socket_t fd = bufferevent_getfd(g->under);
	if (fd >= 0 && evbuffer_get_length(sock_out) == 0) {
		/* A failed write leaves the bytes; the bufferevent then meets the
		 * same error and reports it through the usual event callback. */
		(void)evbuffer_write(out, fd);
		if (evbuffer_get_length(out) == 0) {
			bufferevent_trigger(g->filter, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
			return;
		}
	}
	evbuffer_add_buffer(sock_out, out);
}

static void on_socket_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct guard *g = arg;
	if (info->n_deleted && evbuffer_get_length(buf) == 0)
		bufferevent_trigger(g->filter, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
}

size_t conn_guard_output_pending(struct bufferevent *bev)
{
	struct bufferevent *under = bufferevent_get_underlying(bev);
	return evbuffer_get_length(bufferevent_get_output(bev)) +
	       (under ? evbuffer_get_length(bufferevent_get_output(under)) : 0);
}

static void guard_free(void *arg)
{
	struct guard *g = arg;
	if (!g)
		return;
	event_free(g->timer);
	event_free(g->flush);
	if (g->prev)
		g->prev->next = g->next;
	else
		g->set->head = g->next;
	if (g->next)
		g->next->prev = g->prev;
	g->set->count--;
	atomic_fetch_sub_explicit(g->lim->open_connections, 1, memory_order_relaxed);
	free(g);
}

bool conn_guard_set_busy(const struct conn_guard_set *set)
{
	for (const struct guard *g = set->head; g; g = g->next) {
		if (g->state == G_DEAD)
			continue;
		if (g->state != G_HEAD || g->timer_purpose == T_HEAD)
			return true;
		if (conn_guard_output_pending(g->filter))
			return true;
	}
	return false;
}

struct bufferevent *conn_guard_new(struct event_base *base, const struct conn_guard_limits *limits,
                                   struct conn_guard_set *set)
{
	struct guard *g = xcalloc(1, sizeof(*g));
	g->lim = limits;
	g->set = set;
	g->state = G_HEAD;
	g->timer = evtimer_new(base, guard_timer_cb, g);
	g->flush = event_new(base, -1, 0, on_flush, g);
	g->under = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!g->timer || !g->flush || !g->under)
		goto fail;
	g->filter =
	    bufferevent_filter_new(g->under, guard_input, guard_output, BEV_OPT_CLOSE_ON_FREE, guard_free, g);
	if (!g->filter)
		goto fail;
	/* From here the filter owns g and the underlying bufferevent. */
	evbuffer_add_cb(bufferevent_get_output(g->filter), on_filter_output, g);
	evbuffer_add_cb(bufferevent_get_output(g->under), on_socket_output, g);
	g->next = set->head;
	if (set->head)
		set->head->prev = g;
	set->head = g;
	set->count++;
	int open = atomic_fetch_add_explicit(limits->open_connections, 1, memory_order_relaxed) + 1;
	if (open > limits->max_connections)
		timer_arm(g, T_REJECT, 0); /* evhttp sets the fd right after we return */
	return g->filter;

fail:
	if (g->under)
		bufferevent_free(g->under);
	if (g->timer)
		event_free(g->timer);
	if (g->flush)
		event_free(g->flush);
	free(g);
	return NULL;
}
