/*
 * request.c — see request.h.  Replies and the request life cycle.
 */
#include "http/request.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <sys/socket.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/conn_guard.h"
#include "http/errors.h"
#include "http/path.h"
#include "http/routes.h"
#include "http/server.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"

static const char *method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	}
	return "OTHER";
}

struct http_req *http_req_begin(struct worker *w, struct evhttp_request *ev)
{
	struct http_req *r = xcalloc(1, sizeof(*r));
	r->ev = ev;
	r->w = w;
	r->start_ns = clock_mono_ns();
	r->method = method_name(evhttp_request_get_command(ev));
	reqid_take_or_make(evhttp_find_header(evhttp_request_get_input_headers(ev), "X-Request-Id"), r->id);

	r->next = w->inflight;
	if (w->inflight)
		w->inflight->prev = r;
	w->inflight = r;
	w->inflight_count++;

	/* The request target as sent.  evhttp's own URI parse reads a target
	 * starting with "//" as an authority ("//api/admin" would become host
	 * "api", path "/admin"), so origin-form targets are split here; only
	 * absolute-form ("http://host/path") goes through evhttp's parser. */
	const char *target = evhttp_request_get_uri(ev);
	const char *raw = "/";
	size_t raw_len = 1;
	if (target && target[0] == '/') {
		raw = target;
		raw_len = strcspn(target, "?#");
		if (target[raw_len] == '?') {
			size_t qlen = strcspn(target + raw_len + 1, "#");
			r->query_owned = xstrndup(target + raw_len + 1, qlen);
			r->query = r->query_owned;
		}
	} else {
		const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
		const char *p = uri ? evhttp_uri_get_path(uri) : NULL;
		r->query = uri ? evhttp_uri_get_query(uri) : NULL;
		if (p && *p) {
			raw = p;
			raw_len = strlen(p);
		}
	}
	if (http_path_normalize(raw, raw_len, &r->path) != 0) {
		r->path = NULL;
		http_reply_error(r, 400, "invalid_path", "request path is malformed or ambiguous");
		return NULL;
	}
	return r;
}

const char *http_req_header(const struct http_req *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

struct evbuffer *http_req_body(const struct http_req *r)
{
	return evhttp_request_get_input_buffer(r->ev);
}

const char *http_req_peer(const struct http_req *r)
{
	char *addr = NULL;
	ev_uint16_t port = 0;
	struct evhttp_connection *c = evhttp_request_get_connection(r->ev);
	if (!c)
		return "?";
	evhttp_connection_get_peer(c, &addr, &port);
	return addr ? addr : "?";
}

void http_req_set_header(struct http_req *r, const char *name, const char *value)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
	evhttp_remove_header(h, name);
	evhttp_add_header(h, name, value);
}

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
	struct http_req *r = arg;
	void (*cb)(struct http_req *, void *) = r->close_cb;
	r->close_cb = NULL;
	if (cb)
		cb(r, r->close_arg);
}

static void clear_close_cb(struct http_req *r)
{
	if (!r->close_cb || !r->ev)
		return;
	struct evhttp_connection *c = evhttp_request_get_connection(r->ev);
	if (c)
		evhttp_connection_set_closecb(c, NULL, NULL);
	r->close_cb = NULL;
}

void http_req_on_close(struct http_req *r, void (*cb)(struct http_req *r, void *arg), void *arg)
{
	struct evhttp_connection *c = evhttp_request_get_connection(r->ev);
	r->close_cb = cb;
	r->close_arg = arg;
	if (c)
		evhttp_connection_set_closecb(c, on_conn_close, r);
}

void http_req_set_abort(struct http_req *r, void (*abort)(struct http_req *r))
{
	r->abort_cb = abort;
}

bool http_req_client_closed(const struct http_req *r)
{
	struct evhttp_connection *c = r->ev ? evhttp_request_get_connection(r->ev) : NULL;
	if (!c)
		return true; /* evhttp already let go of the connection */
	struct bufferevent *bev = evhttp_connection_get_bufferevent(c);
	struct bufferevent *under = bev ? bufferevent_get_underlying(bev) : NULL;
	evutil_socket_t fd = bufferevent_getfd(under ? under : bev);
	if (fd < 0)
		return true;
	char byte;
	ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0)
		return false; /* more data (a pipelined request): still there */
	if (n == 0)
		return true; /* end of file */
	return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

size_t http_req_output_pending(const struct http_req *r)
{
	struct evhttp_connection *c = r->ev ? evhttp_request_get_connection(r->ev) : NULL;
	return c ? conn_guard_output_pending(evhttp_connection_get_bufferevent(c)) : 0;
}

/* The Date header's value (RFC 9110 IMF-fixdate), formatted once a second
 * per thread: evhttp would otherwise run gmtime and a printf for every
 * answer that has none. */
static const char *http_date(void)
{
	static _Thread_local time_t cached_at = (time_t)-1;
	static _Thread_local char text[40];
	time_t now = time(NULL);
	if (now != cached_at) {
		struct tm tm;
		if (!gmtime_r(&now, &tm) ||
		    strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
			return NULL;
		cached_at = now;
	}
	return text;
}

/* Headers every answer carries. */
static void common_headers(struct http_req *r, const char *content_type)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
	const char *date = http_date();
	if (date && !evhttp_find_header(h, "Date"))
		evhttp_add_header(h, "Date", date);
	if (content_type)
		http_req_set_header(r, "Content-Type", content_type);
	evhttp_add_header(h, "X-Request-Id", r->id);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	if (!evhttp_find_header(h, "Cache-Control"))
		evhttp_add_header(h, "Cache-Control", "no-store");
	if (r->w->draining)
		http_req_set_header(r, "Connection", "close");
}

static void end_request(struct http_req *r, int status)
{
	double ms = (double)(clock_mono_ns() - r->start_ns) / 1e6;
	log_info(r->id, "%s %s %d %.1fms", r->method, r->path ? r->path : "(invalid)", status, ms);
	worker_request_done(r->w, r);
}

void http_stream_start(struct http_req *r, int status, const char *content_type)
{
	common_headers(r, content_type);
	r->stream_status = status;
	evhttp_send_reply_start(r->ev, status, NULL);
}

static void on_chunk_drained(struct evhttp_connection *c, void *arg)
{
	struct http_req *r = arg;
	void (*cb)(struct http_req *, void *) = r->drain_cb;
	if (cb)
		cb(r, r->drain_arg);
}

/*
 * evhttp_send_reply_chunk_with_cb appends the bytes to the connection's
 * output and then re-enables reading and writing on it, which re-arms the
 * connection's read and write timeouts (idle_timeout_ms): three timer
 * updates per stream event, ~8% of an event's cost.  Nothing else it does
 * changes from one chunk to the next (the same drained callback, the same
 * bufferevent callbacks), so a chunk written within a short interval of
 * the last re-arm goes straight to the output buffer, where the connection
 * guard sends it as usual (conn_guard.c, output side).  The interval is an
 * eighth of the idle timeout, at most a second: a stream's connection
 * never gets closer than that to timing out while it is written to.
 */
#define REARM_MAX_NS 1000000000u

void http_stream_write(struct http_req *r, struct evbuffer *buf)
{
	size_t n = evbuffer_get_length(buf);
	if (n == 0)
		return;
	struct evhttp_request *ev = r->ev;
	struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
	if (!evcon) { /* the client is gone: nothing to send */
		evbuffer_drain(buf, n);
		return;
	}
	bool chunked = ev->chunked;
	if (chunked) {
		/* evhttp frames each chunk with a printf of its size, a noticeable
		 * share of a stream's cost per event.  Frame it here and hand evhttp
		 * the framed bytes with chunking off for that one call (libevent
		 * 2.1's evhttp_send_reply_chunk_with_cb reads the flag only to
		 * frame; it stays on for the final chunk). */
		static const char hex[] = "0123456789abcdef";
		char head[2 * sizeof(size_t) + 2], *h = head + sizeof(head);
		*--h = '\n';
		*--h = '\r';
		do {
			*--h = hex[n & 15];
			n >>= 4;
		} while (n);
		evbuffer_prepend(buf, h, (size_t)(head + sizeof(head) - h));
		evbuffer_add(buf, "\r\n", 2);
	}
	uint64_t now = clock_mono_ns();
	uint64_t every = (uint64_t)r->w->srv->cfg->idle_timeout_ms * 1000000u / 8;
	if (every > REARM_MAX_NS)
		every = REARM_MAX_NS;
	/* (A HEAD answer carries no body: evhttp drops it, and so must we.) */
	if (r->rearmed_ns && now - r->rearmed_ns < every &&
	    evhttp_request_get_command(ev) != EVHTTP_REQ_HEAD) {
		evbuffer_add_buffer(bufferevent_get_output(evhttp_connection_get_bufferevent(evcon)), buf);
		return;
	}
	r->rearmed_ns = now;
	ev->chunked = 0;
	evhttp_send_reply_chunk_with_cb(ev, buf, on_chunk_drained, r);
	ev->chunked = chunked;
}

void http_stream_on_drained(struct http_req *r, void (*drained)(struct http_req *r, void *arg), void *arg)
{
	r->drain_cb = drained;
	r->drain_arg = arg;
}

void http_stream_end(struct http_req *r)
{
	clear_close_cb(r);
	r->drain_cb = NULL;
	evhttp_send_reply_end(r->ev);
	r->ev = NULL;
	end_request(r, r->stream_status);
}

void http_reply(struct http_req *r, int status, const char *content_type, struct evbuffer *body)
{
	clear_close_cb(r);
	r->drain_cb = NULL;
	common_headers(r, content_type);
	evhttp_send_reply(r->ev, status, NULL, body);
	r->ev = NULL; /* evhttp owns and frees it from here */
	end_request(r, status);
}

void http_reply_json(struct http_req *r, int status, json_t *doc)
{
	struct evbuffer *b = evbuffer_new();
	char *s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (s) {
		evbuffer_add(b, s, strlen(s));
		free(s);
	} else {
		status = 500;
		evbuffer_add_printf(b, "{\"error\":{\"message\":\"could not serialise the response\","
		                       "\"type\":\"server_error\",\"code\":null}}");
	}
	http_reply(r, status, "application/json", b);
	evbuffer_free(b);
}

void http_reply_error(struct http_req *r, int status, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	char *body = http_error_body(msg, http_error_type_for(status), code);
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, body, strlen(body));
	free(body);
	http_reply(r, status, "application/json", b);
	evbuffer_free(b);
}
