/*
 * Unit tests for upstream/client.c against a scripted HTTP/1.1 server that
 * runs inside the test process.
 *
 * The server is a thread with its own event_base + evhttp on 127.0.0.1:0;
 * each path is one behaviour (answer, stream, stall, cut, redirect, ...).
 * It counts accepted connections (keep-alive reuse) and notes when a
 * /forever stream's connection closes (cancel must close it).  The client
 * under test runs on the test thread's event_base; each test dispatches it
 * until the transfers are done (or a guard timer fires) and then checks what
 * the callbacks recorded — no assertion runs inside a callback.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "upstream/client.h"
#include "util/clock.h"

#define CHUNK_MS 20
#define MAX_STREAMS 128
#define MS(ns) ((int64_t)((ns) / 1000000u))

/* ---- the scripted server (its own thread) ---------------------------- */

struct stream {
	struct evhttp_request *req; /* NULL once ended or its connection closed */
	struct event *tick;         /* owned */
	bool live;                  /* still sending chunks */
	int sent;
	int total;       /* chunks then end; < 0: never ends */
	int cut_after;   /* > 0: shut the socket down after this many chunks */
	int stall_after; /* > 0: send this many chunks, then nothing */
	bool forever;    /* note when the connection closes */
};

static struct {
	pthread_t thread;
	struct event_base *base;
	struct evhttp *http;
	struct event *stop_ev;
	int port;
	atomic_int conns;
	atomic_int hits_json;
	atomic_int forever_closed;
	_Atomic uint64_t closed_ns;
	struct stream *streams[MAX_STREAMS]; /* server thread only */
	int nstreams;
} S;

static size_t sse_chunk(char *out, size_t cap, int i)
{
	int n = snprintf(out, cap, "data: {\"i\":%d}\n\n", i);
	return n > 0 ? (size_t)n : 0;
}

/* The connection of an unfinished reply is going away.  When the peer
 * closed it, evhttp has already detached the request (no connection) and
 * leaves it to us: evhttp_send_reply_end then frees it.  When evhttp_free
 * closes it, the request is still attached and freed with the connection. */
static void stream_closed(struct evhttp_connection *c, void *arg)
{
	struct stream *s = arg;
	if (s->forever) {
		atomic_store(&S.closed_ns, clock_mono_ns());
		atomic_fetch_add(&S.forever_closed, 1);
	}
	if (s->req && !evhttp_request_get_connection(s->req))
		evhttp_send_reply_end(s->req);
	s->req = NULL;
	s->live = false;
}

static void stream_tick(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;
	if (!s->req || !s->live)
		return;
	struct evhttp_connection *c = evhttp_request_get_connection(s->req);
	if (s->cut_after && s->sent == s->cut_after) {
		shutdown(bufferevent_getfd(evhttp_connection_get_bufferevent(c)), SHUT_RDWR);
		s->live = false; /* stream_closed or evhttp_free reclaims the request */
		return;
	}
	if (s->total >= 0 && s->sent == s->total) {
		evhttp_connection_set_closecb(c, NULL, NULL);
		evhttp_send_reply_end(s->req);
		s->req = NULL;
		return;
	}
	char line[64];
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, line, sse_chunk(line, sizeof(line), s->sent));
	evhttp_send_reply_chunk(s->req, b);
	evbuffer_free(b);
	s->sent++;
	if (s->stall_after && s->sent == s->stall_after)
		return;
	struct timeval tv = clock_tv_ms(CHUNK_MS);
	evtimer_add(s->tick, &tv);
}

/* Track req (so its closing is seen and reclaimed); start the chunks unless
 * total == 0 (the request is then never answered). */
static void stream_start(struct evhttp_request *req, int total, int cut_after, int stall_after, bool forever)
{
	if (S.nstreams == MAX_STREAMS) {
		evhttp_send_error(req, 503, "too many streams");
		return;
	}
	struct stream *s = calloc(1, sizeof(*s));
	s->req = req;
	s->live = total != 0;
	s->total = total;
	s->cut_after = cut_after;
	s->stall_after = stall_after;
	s->forever = forever;
	s->tick = evtimer_new(S.base, stream_tick, s);
	S.streams[S.nstreams++] = s;
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), stream_closed, s);
	if (!s->live)
		return;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/event-stream");
	evhttp_send_reply_start(req, 200, "OK");
	stream_tick(-1, 0, s);
}

static void srv_request(struct evhttp_request *req, void *arg)
{
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *b = evbuffer_new();
	if (!path)
		path = "";
	if (strcmp(path, "/json") == 0) {
		atomic_fetch_add(&S.hits_json, 1);
		evhttp_add_header(out, "Content-Type", "application/json");
		evhttp_add_header(out, "X-Test", "abc");
		evbuffer_add_printf(b, "{\"ok\":true}");
		evhttp_send_reply(req, 200, "OK", b);
	} else if (strcmp(path, "/echo") == 0) {
		/* "<method>|probe=<X-Probe>|auth=<yes/no>|expect=<value/none>|<n>|<body>" */
		struct evbuffer *body = evhttp_request_get_input_buffer(req);
		size_t n = evbuffer_get_length(body);
		const char *probe = evhttp_find_header(in, "X-Probe");
		const char *expect = evhttp_find_header(in, "Expect");
		enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
		evbuffer_add_printf(b, "%s|probe=%s|auth=%s|expect=%s|%zu|",
		                    cmd == EVHTTP_REQ_POST     ? "POST"
		                    : cmd == EVHTTP_REQ_GET    ? "GET"
		                    : cmd == EVHTTP_REQ_PUT    ? "PUT"
		                    : cmd == EVHTTP_REQ_DELETE ? "DELETE"
		                                               : "OTHER",
		                    probe ? probe : "",
		                    evhttp_find_header(in, "Authorization") ? "yes" : "no",
		                    expect ? expect : "none", n);
		if (n <= 64)
			evbuffer_add_buffer(b, body);
		evhttp_add_header(out, "Content-Type", "text/plain");
		evhttp_send_reply(req, 200, "OK", b);
	} else if (strcmp(path, "/headers") == 0) { /* every request header, in order */
		for (struct evkeyval *h = in->tqh_first; h; h = h->next.tqe_next)
			evbuffer_add_printf(b, "%s: %s\n", h->key, h->value);
		evhttp_add_header(out, "Content-Type", "text/plain");
		evhttp_send_reply(req, 200, "OK", b);
	} else if (strcmp(path, "/query") == 0) { /* the query string it was asked with */
		const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
		evbuffer_add_printf(b, "q=%s", q ? q : "");
		evhttp_add_header(out, "Content-Type", "text/plain");
		evhttp_send_reply(req, 200, "OK", b);
	} else if (strcmp(path, "/ae") == 0) { /* what the client offered */
		const char *ae = evhttp_find_header(in, "Accept-Encoding");
		evbuffer_add_printf(b, "ae=%s", ae ? ae : "none");
		evhttp_add_header(out, "Content-Type", "text/plain");
		evhttp_send_reply(req, 200, "OK", b);
	} else if (strcmp(path, "/500") == 0) {
		evhttp_add_header(out, "Content-Type", "application/json");
		evhttp_add_header(out, "Retry-After", "7");
		evbuffer_add_printf(b, "{\"error\":\"boom\"}");
		evhttp_send_reply(req, 500, "Internal Server Error", b);
	} else if (strcmp(path, "/302") == 0) {
		evhttp_add_header(out, "Location", "/json");
		evbuffer_add_printf(b, "moved");
		evhttp_send_reply(req, 302, "Found", b);
	} else if (strcmp(path, "/sse") == 0) {
		stream_start(req, 20, 0, 0, false);
	} else if (strcmp(path, "/sse5") == 0) {
		stream_start(req, 5, 0, 0, false);
	} else if (strcmp(path, "/forever") == 0) {
		stream_start(req, -1, 0, 0, true);
	} else if (strcmp(path, "/cut") == 0) {
		stream_start(req, -1, 3, 0, false);
	} else if (strcmp(path, "/stall-body") == 0) {
		stream_start(req, -1, 0, 1, false);
	} else if (strcmp(path, "/stall-headers") == 0) {
		stream_start(req, 0, 0, 0, false); /* never answered */
	} else {
		evhttp_send_error(req, 404, NULL);
	}
	evbuffer_free(b);
}

static struct bufferevent *srv_bev(struct event_base *base, void *arg)
{
	atomic_fetch_add(&S.conns, 1);
	return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
}

static void srv_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(S.base);
}

static void *srv_main(void *arg)
{
	event_base_loop(S.base, EVLOOP_NO_EXIT_ON_EMPTY);
	evhttp_free(S.http); /* may run stream_closed: streams are still alive */
	for (int i = 0; i < S.nstreams; i++) {
		event_free(S.streams[i]->tick);
		free(S.streams[i]);
	}
	event_free(S.stop_ev);
	event_base_free(S.base);
	return NULL;
}

static void srv_start(void)
{
	S.base = event_base_new();
	cr_assert_not_null(S.base);
	S.http = evhttp_new(S.base);
	evhttp_set_bevcb(S.http, srv_bev, NULL);
	evhttp_set_gencb(S.http, srv_request, NULL);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(S.http, "127.0.0.1", 0);
	cr_assert_not_null(bs);
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	cr_assert_eq(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &len), 0);
	S.port = ntohs(sa.sin_port);
	S.stop_ev = event_new(S.base, -1, 0, srv_stop_cb, NULL);
	cr_assert_eq(pthread_create(&S.thread, NULL, srv_main, NULL), 0);
}

static void srv_stop(void)
{
	event_active(S.stop_ev, EV_TIMEOUT, 0);
	pthread_join(S.thread, NULL);
}

/* ---- the client side (test thread) ----------------------------------- */

static struct event_base *cbase;
static struct upstream *U;
static int outstanding; /* transfers whose on_done is still due */
static bool loop_timed_out;

struct res {
	struct upstream_xfer *x;
	/* what happened */
	int responses;
	long status;
	char ctype[64];
	char hdr_test[32];
	char retry_after[16];
	char body[16384];
	size_t len;
	bool overflow;
	int takes; /* on_data calls that took the bytes */
	int calls_while_paused;
	int pauses;
	int done;
	enum upstream_result result;
	long done_status;
	char detail[256];
	struct upstream_timing timing;
	uint64_t t_start, t_first_data, t_last_data, t_done, t_cancel;
	/* how to behave */
	int abort_on_response; /* on_response returns this */
	int abort_after;       /* on_data aborts after this many takes */
	int cancel_after;      /* on_data cancels after this many takes */
	int pause_on[2];       /* return UPSTREAM_PAUSE for these deliveries (1-based; 0: no) */
	int resume_ms;         /* resume that long after a pause; 0: never */
	bool pausing;
	bool cancel_self_in_done;
	struct res *start_in_data; /* on the first take, start this one (/json) */
	struct res *then;          /* on done, start this one (/json) */
};

static struct upstream_xfer *start_req(struct res *r, const char *method, const char *path, const void *body,
                                       size_t body_len, int first_byte_ms, int idle_ms);

static struct upstream_xfer *start(struct res *r, const char *path, int first_byte_ms, int idle_ms)
{
	static const char body[] = "{\"model\":\"m\",\"stream\":true}";
	return start_req(r, "POST", path, body, sizeof(body) - 1, first_byte_ms, idle_ms);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct res *r = arg;
	r->pausing = false;
	upstream_resume(r->x);
}

static int t_on_response(void *ud, long status, const char *ct)
{
	struct res *r = ud;
	r->responses++;
	r->status = status;
	snprintf(r->ctype, sizeof(r->ctype), "%s", ct ? ct : "");
	const char *v = upstream_response_header(r->x, "X-Test");
	snprintf(r->hdr_test, sizeof(r->hdr_test), "%s", v ? v : "");
	v = upstream_response_header(r->x, "retry-after");
	snprintf(r->retry_after, sizeof(r->retry_after), "%s", v ? v : "");
	return r->abort_on_response;
}

static int t_on_data(void *ud, const char *p, size_t n)
{
	struct res *r = ud;
	if (r->pausing) {
		r->calls_while_paused++;
		return UPSTREAM_PAUSE;
	}
	if (r->pauses < 2 && r->pause_on[r->pauses] && r->takes + 1 == r->pause_on[r->pauses]) {
		r->pauses++;
		r->pausing = true;
		if (r->resume_ms) {
			struct timeval tv = clock_tv_ms(r->resume_ms);
			event_base_once(cbase, -1, EV_TIMEOUT, resume_cb, r, &tv);
		}
		return UPSTREAM_PAUSE;
	}
	if (r->len + n > sizeof(r->body))
		r->overflow = true;
	else
		memcpy(r->body + r->len, p, n);
	r->len += n;
	r->takes++;
	r->t_last_data = clock_mono_ns();
	if (!r->t_first_data)
		r->t_first_data = r->t_last_data;
	if (r->start_in_data && r->takes == 1) {
		start(r->start_in_data, "/json", 2000, 2000);
		r->start_in_data = NULL;
	}
	if (r->abort_after && r->takes == r->abort_after)
		return -1;
	if (r->cancel_after && r->takes == r->cancel_after) {
		upstream_cancel(r->x);
		r->t_cancel = clock_mono_ns();
		outstanding--;
	}
	return 0;
}

static void t_on_done(void *ud, enum upstream_result res, long status, const char *detail)
{
	struct res *r = ud;
	r->done++;
	r->result = res;
	r->done_status = status;
	snprintf(r->detail, sizeof(r->detail), "%s", detail ? detail : "(null)");
	r->t_done = clock_mono_ns();
	upstream_xfer_timing(r->x, &r->timing);
	if (r->cancel_self_in_done)
		upstream_cancel(r->x); /* a no-op once finished */
	if (r->then)
		start(r->then, "/json", 2000, 2000);
	if (--outstanding == 0)
		event_base_loopexit(cbase, NULL);
}

static bool next_compressed; /* the next start_req asks for compression */

/* A transfer to path on the test server with the given header lines and
 * header set (either may be empty). */
static struct upstream_xfer *start_xfer(struct res *r, const char *method, const char *path, const void *body,
                                        size_t body_len, int first_byte_ms, int idle_ms,
                                        const char *const *hdrs, size_t nhdrs, struct upstream_headers *set)
{
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", S.port, path);
	struct upstream_request req = {
		.method = method,
		.url = url,
		.headers = hdrs,
		.nheaders = nhdrs,
		.header_set = set,
		.body = body,
		.body_len = body_len,
		.connect_timeout_ms = 2000,
		.first_byte_timeout_ms = first_byte_ms,
		.idle_timeout_ms = idle_ms,
		.compressed = next_compressed,
		.on_response = t_on_response,
		.on_data = t_on_data,
		.on_done = t_on_done,
		.ud = r,
	};
	r->t_start = clock_mono_ns();
	r->x = upstream_start(U, &req);
	if (r->x)
		outstanding++;
	return r->x;
}

static struct upstream_xfer *start_req(struct res *r, const char *method, const char *path, const void *body,
                                       size_t body_len, int first_byte_ms, int idle_ms)
{
	static const char *const hdrs[] = { "Content-Type: application/json",
		                            "Authorization: Bearer sk-test-SECRET", "X-Probe: probe-1" };
	return start_xfer(r, method, path, body, body_len, first_byte_ms, idle_ms, hdrs, 3, NULL);
}

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
	loop_timed_out = true;
	event_base_loopexit(cbase, NULL);
}

/* Dispatch until the transfers are done (on_done exits) or max_ms. */
static void run_loop(int max_ms)
{
	struct event *g = evtimer_new(cbase, guard_cb, NULL);
	struct timeval tv = clock_tv_ms(max_ms);
	evtimer_add(g, &tv);
	loop_timed_out = false;
	event_base_dispatch(cbase);
	event_free(g);
}

static int closed_want;
static void poll_closed_cb(evutil_socket_t fd, short what, void *arg)
{
	if (atomic_load(&S.forever_closed) >= closed_want)
		event_base_loopexit(cbase, NULL);
}

/* Dispatch until the server saw `want` /forever connections close, or max_ms. */
static void run_until_closed(int want, int max_ms)
{
	closed_want = want;
	struct event *p = event_new(cbase, -1, EV_PERSIST, poll_closed_cb, NULL);
	struct timeval tv = clock_tv_ms(5);
	event_add(p, &tv);
	run_loop(max_ms);
	event_free(p);
}

static size_t expected_sse(char *out, size_t cap, int n)
{
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += sse_chunk(out + len, cap - len, i);
	return len;
}

static void assert_body_sse(const struct res *r, int n)
{
	char want[4096];
	size_t wlen = expected_sse(want, sizeof(want), n);
	cr_assert(!r->overflow);
	cr_assert_eq(r->len, wlen, "got %zu bytes, want %zu", r->len, wlen);
	cr_assert(memcmp(r->body, want, wlen) == 0, "body differs: %.*s", (int)r->len, r->body);
}

static void setup(void)
{
	cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	cr_assert_eq(evthread_use_pthreads(), 0);
	srv_start();
	cbase = event_base_new();
	cr_assert_not_null(cbase);
	U = upstream_new(cbase);
	cr_assert_not_null(U);
	outstanding = 0;
}

static void teardown(void)
{
	upstream_free(U);
	U = NULL;
	event_base_free(cbase);
	srv_stop();
	curl_global_cleanup();
	libevent_global_shutdown();
}

TestSuite(upstream, .init = setup, .fini = teardown, .timeout = 10);

/* ---- tests ----------------------------------------------------------- */

Test(upstream, json_answer)
{
	struct res r = { .cancel_self_in_done = true };
	cr_assert_not_null(start(&r, "/json", 2000, 2000));
	cr_assert_eq(upstream_active(U), 1);
	run_loop(5000);
	cr_assert(!loop_timed_out);
	cr_assert_eq(r.done, 1);
	cr_assert_eq(r.result, UPSTREAM_OK, "%s: %s", upstream_result_name(r.result), r.detail);
	cr_assert_eq(r.done_status, 200);
	cr_assert_str_eq(r.detail, "");
	cr_assert_eq(r.responses, 1);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.ctype, "application/json");
	cr_assert_str_eq(r.hdr_test, "abc");
	cr_assert_eq(r.len, strlen("{\"ok\":true}"));
	cr_assert(memcmp(r.body, "{\"ok\":true}", r.len) == 0);
	cr_assert_eq(upstream_active(U), 0);
	/* timings: ordered, plausible, first connection not reused */
	cr_assert_geq(r.timing.sent_us, 0);
	cr_assert_geq(r.timing.status_us, r.timing.sent_us);
	cr_assert_geq(r.timing.first_data_us, r.timing.status_us);
	cr_assert_lt(r.timing.first_data_us, 2000000);
	cr_assert(!r.timing.reused);
	cr_assert_eq(r.timing.http_version, 11);
}

Test(upstream, request_method_headers_body_arrive)
{
	struct res post = { 0 }, get = { 0 }, big = { 0 };
	/* curl 7.88 sends Expect: 100-continue for bodies over 1 MiB (images) */
	size_t nlarge = 1536u << 10;
	char *large = malloc(nlarge);
	memset(large, 'a', nlarge);
	cr_assert_not_null(start_req(&post, "POST", "/echo", "{\"a\":1}", 7, 2000, 2000));
	cr_assert_not_null(start_req(&get, "GET", "/echo", NULL, 0, 2000, 2000));
	cr_assert_not_null(start_req(&big, NULL, "/echo", large, nlarge, 2000, 2000));
	free(large); /* the client copied it */
	uint64_t t0 = clock_mono_ns();
	run_loop(5000);
	cr_assert(!loop_timed_out);
	cr_assert_eq(post.result, UPSTREAM_OK);
	post.body[post.len] = '\0';
	cr_assert_str_eq(post.body, "POST|probe=probe-1|auth=yes|expect=none|7|{\"a\":1}");
	get.body[get.len] = '\0';
	cr_assert_str_eq(get.body, "GET|probe=probe-1|auth=yes|expect=none|0|");
	/* a big body: POST by default, no Expect: 100-continue round trip */
	big.body[big.len] = '\0';
	cr_assert_str_eq(big.body, "POST|probe=probe-1|auth=yes|expect=none|1572864|");
	cr_assert_lt(MS(clock_mono_ns() - t0), 900);
}

/* Finished transfers hand their curl handle to the next one with the
 * options every transfer sets alike; nothing of one request may leak into
 * the next: method, body, compression, headers. */
Test(upstream, a_reused_handle_carries_nothing_over)
{
	static const struct {
		const char *method, *path, *body;
		bool compressed;
		const char *want; /* NULL: only a 200 with an empty body (HEAD) */
	} steps[] = {
		{ "POST", "/echo", "{\"a\":1}", false,
		  "POST|probe=probe-1|auth=yes|expect=none|7|{\"a\":1}" },
		{ "DELETE", "/echo", NULL, false, "DELETE|probe=probe-1|auth=yes|expect=none|0|" },
		{ "GET", "/echo", NULL, false, "GET|probe=probe-1|auth=yes|expect=none|0|" },
		{ "HEAD", "/echo", NULL, false, NULL },
		{ "PUT", "/echo", "xy", false, "PUT|probe=probe-1|auth=yes|expect=none|2|xy" },
		{ "POST", "/ae", "{}", true, "gzip" },
		{ "GET", "/echo", NULL, false, "GET|probe=probe-1|auth=yes|expect=none|0|" },
		{ "POST", "/ae", "{}", false, "ae=none" },
		{ "POST", "/echo", "{\"b\":2}", false,
		  "POST|probe=probe-1|auth=yes|expect=none|7|{\"b\":2}" },
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct res r = { 0 };
		next_compressed = steps[i].compressed;
		const char *b = steps[i].body;
		cr_assert_not_null(
		    start_req(&r, steps[i].method, steps[i].path, b, b ? strlen(b) : 0, 2000, 2000),
		    "step %zu", i);
		next_compressed = false;
		run_loop(5000);
		cr_assert(!loop_timed_out, "step %zu", i);
		/* let the finished transfer be freed (its handle parked) before the next */
		for (int k = 0; k < 3; k++)
			event_base_loop(cbase, EVLOOP_NONBLOCK);
		cr_assert_eq(r.result, UPSTREAM_OK, "step %zu: %s", i, r.detail);
		cr_assert_eq(r.status, 200, "step %zu", i);
		r.body[r.len] = '\0';
		if (!steps[i].want)
			cr_assert_eq(r.len, 0, "step %zu: %s", i, r.body);
		else if (strcmp(steps[i].path, "/ae") == 0 && steps[i].compressed)
			cr_assert(strstr(r.body, steps[i].want), "step %zu: %s", i, r.body);
		else
			cr_assert_str_eq(r.body, steps[i].want, "step %zu", i);
		if (i > 0)
			cr_assert(r.timing.reused, "step %zu: a new connection", i);
	}
	cr_assert_eq(atomic_load(&S.conns), 1);
}

/* The request headers the /headers endpoint saw, in order, without the
 * ones curl adds itself (Host, Accept, Content-Length). */
static const char *sent_headers(struct res *r)
{
	static char out[sizeof(r->body)];
	size_t o = 0;
	r->body[r->len] = '\0';
	for (const char *l = r->body; *l;) {
		const char *e = strchr(l, '\n');
		size_t n = e ? (size_t)(e - l) + 1 : strlen(l);
		if (strncmp(l, "Host: ", 6) != 0 && strncmp(l, "Accept: ", 8) != 0 &&
		    strncmp(l, "Content-Length: ", 16) != 0) {
			memcpy(out + o, l, n);
			o += n;
		}
		l += n;
	}
	out[o] = '\0';
	return out;
}

/* A header set is sent after the transfer's own lines, by every transfer
 * given it, with curl's "Expect:" suppressed; it outlives the client's slot
 * while a transfer holds it (a newer generation lets go of the slot before
 * the transfer has sent a byte). */
Test(upstream, header_sets_follow_the_transfers_own_lines)
{
	const char *lines1[] = { "Content-Type: application/json", "Authorization: Bearer sk-set-ONE",
		                 "X-Extra: one" };
	const char *lines2[] = { "Authorization: Bearer sk-set-TWO" };
	struct upstream_headers_key k1 = { .generation = 1, .a = 7, .b = 1 };
	struct upstream_headers_key k2 = { .generation = 2, .a = 7, .b = 1 };
	struct upstream_headers_key other = { .generation = 1, .a = 7, .b = 2 };

	cr_assert_null(upstream_headers_get(U, &k1));
	struct upstream_headers *s1 = upstream_headers_put(U, &k1, lines1, 3);
	cr_assert_not_null(s1);
	cr_assert_eq(upstream_headers_get(U, &k1), s1);
	cr_assert_null(upstream_headers_get(U, &other));

	const char *own_a[] = { "X-Request-Id: first" };
	const char *own_b[] = { "X-Request-Id: second" };
	struct res a = { 0 }, b = { 0 }, c = { 0 };
	cr_assert_not_null(start_xfer(&a, NULL, "/headers", "{}", 2, 2000, 2000, own_a, 1, s1));
	cr_assert_not_null(start_xfer(&b, NULL, "/headers", "{}", 2, 2000, 2000, own_b, 1, s1));
	/* A new generation: the slot lets go of set 1 before a or b ran. */
	struct upstream_headers *s2 = upstream_headers_put(U, &k2, lines2, 1);
	cr_assert_not_null(s2);
	cr_assert_null(upstream_headers_get(U, &k1));
	cr_assert_not_null(start_xfer(&c, NULL, "/headers", "{}", 2, 2000, 2000, NULL, 0, s2));
	run_loop(5000);
	cr_assert(!loop_timed_out);
	for (struct res *r = &a; r <= &c; r++)
		cr_assert_eq(r->result, UPSTREAM_OK, "%s", r->detail);
	cr_assert_str_eq(sent_headers(&a), "X-Request-Id: first\nContent-Type: application/json\n"
	                                   "Authorization: Bearer sk-set-ONE\nX-Extra: one\n");
	cr_assert_str_eq(sent_headers(&b), "X-Request-Id: second\nContent-Type: application/json\n"
	                                   "Authorization: Bearer sk-set-ONE\nX-Extra: one\n");
	cr_assert(strstr(c.body, "Authorization: Bearer sk-set-TWO\n"), "%s", c.body);
	cr_assert_null(strstr(c.body, "X-Request-Id"), "%s", c.body);
	cr_assert_null(strstr(c.body, "sk-set-ONE"), "%s", c.body);
	cr_assert_null(strstr(c.body, "Expect"), "%s", c.body);

	/* A line curl would send as two headers is refused, as in req->headers. */
	const char *bad[] = { "X-Ok: 1", "X-Bad: 1\r\nInjected: yes" };
	struct upstream_headers_key k3 = { .generation = 2, .a = 9 };
	cr_assert_null(upstream_headers_put(U, &k3, bad, 2));
	cr_assert_null(upstream_headers_get(U, &k3));
}

/* curl parses each URL once per origin (up to a bound) and every transfer
 * to it reuses the parse; past the bound curl parses as usual.  Either
 * way each transfer goes to its own URL, on one reused connection. */
Test(upstream, each_transfer_reaches_its_own_url_past_the_parsed_url_bound)
{
	for (int i = 0; i < 80; i++) {
		struct res r = { 0 };
		char path[64], want[64];
		snprintf(path, sizeof(path), "/query?n=%d", i % 50); /* 50 URLs, most used twice */
		snprintf(want, sizeof(want), "q=n=%d", i % 50);
		cr_assert_not_null(start_req(&r, "GET", path, NULL, 0, 2000, 2000), "transfer %d", i);
		run_loop(5000);
		cr_assert(!loop_timed_out, "transfer %d", i);
		for (int k = 0; k < 3; k++)
			event_base_loop(cbase, EVLOOP_NONBLOCK);
		cr_assert_eq(r.result, UPSTREAM_OK, "transfer %d: %s", i, r.detail);
		r.body[r.len] = '\0';
		cr_assert_str_eq(r.body, want, "transfer %d", i);
	}
	cr_assert_eq(atomic_load(&S.conns), 1);
}

Test(upstream, compression_only_when_asked)
{
	struct res plain = { 0 }, packed = { 0 };
	cr_assert_not_null(start(&plain, "/ae", 2000, 2000));
	next_compressed = true;
	cr_assert_not_null(start(&packed, "/ae", 2000, 2000));
	next_compressed = false;
	run_loop(5000);
	cr_assert(!loop_timed_out);
	plain.body[plain.len] = '\0';
	packed.body[packed.len] = '\0';
	cr_assert_str_eq(plain.body, "ae=none");
	cr_assert(strstr(packed.body, "gzip"), "%s", packed.body);
}

Test(upstream, sse_stream_arrives_chunk_by_chunk)
{
	/* ~400 ms of stream with a 100 ms idle limit: steady progress keeps a
	 * stream alive however long it runs (there is no total timeout). */
	struct res r = { 0 };
	cr_assert_not_null(start(&r, "/sse", 2000, 100));
	run_loop(5000);
	cr_assert(!loop_timed_out);
	cr_assert_eq(r.result, UPSTREAM_OK, "%s: %s", upstream_result_name(r.result), r.detail);
	cr_assert_eq(r.done_status, 200);
	cr_assert_str_eq(r.ctype, "text/event-stream");
	assert_body_sse(&r, 20);
	/* streamed, not buffered: bytes arrive as they are sent */
	cr_assert_geq(r.takes, 10, "only %d deliveries", r.takes);
	cr_assert_lt(MS(r.t_first_data - r.t_start), 300);
	cr_assert_geq(MS(r.t_last_data - r.t_first_data), 19 * CHUNK_MS - 20);
}

Test(upstream, first_byte_timeout)
{
	struct res r = { 0 };
	cr_assert_not_null(start(&r, "/stall-headers", 300, 5000));
	run_loop(5000);
	cr_assert(!loop_timed_out);
	cr_assert_eq(r.done, 1);
	cr_assert_eq(r.result, UPSTREAM_ETIMEOUT_FIRST_BYTE, "%s: %s", upstream_result_name(r.result),
	             r.detail);
	int64_t ms = MS(r.t_done - r.t_start);
	cr_assert(ms >= 290 && ms < 300 + 400, "took %lld ms", (long long)ms);
	cr_assert_eq(r.responses, 0);
	cr_assert_eq(r.done_status, 0);
	cr_assert_neq(r.detail[0], '\0');
	cr_assert_null(strstr(r.detail, "SECRET"));
	cr_assert_eq(r.timing.status_us, -1);
}

Test(upstream, idle_timeout_mid_body)
{
	struct res r = { 0 };
	cr_assert_not_null(start(&r, "/stall-body", 5000, 300));
	run_loop(5000);
	cr_assert(!loop_timed_out);
	cr_assert_eq(r.done, 1);
	cr_assert_eq(r.result, UPSTREAM_ETIMEOUT_IDLE, "%s: %s", upstream_result_name(r.result), r.detail);
	cr_assert_eq(r.responses, 1);
	cr_assert_eq(r.done_status, 200);
	assert_body_sse(&r, 1);
	int64_t ms = MS(r.t_done - r.t_last_data);
	cr_assert(ms >= 280 && ms < 300 + 400, "idle fired %lld ms after the last data", (long long)ms);
}

Test(upstream, error_status_is_a_response)
{
	struct res r = { 0 };
	cr_assert_not_null(start(&r, "/500", 2000, 2000));
	run_loop(5000);
	cr_assert(!loop_timed_out);
	cr_assert_eq(r.result, UPSTREAM_OK);
	cr_assert_eq(r.status, 500);
	cr_assert_eq(r.done_status, 500);
	cr_assert_str_eq(r.retry_after, "7");
	r.body[r.len] = '\0';
	cr_assert_str_eq(r.body, "{\"error\":\"boom\"}");
}

Test(upstream, redirect_not_followed)
{
	struct res r = { 0 };
	cr_assert_not_null(start(&r, "/302", 2000, 2000));
	run_loop(5000);
	cr_assert(!loop_timed_out);
	cr_assert_eq(r.result, UPSTREAM_OK);
	cr_assert_eq(r.done_status, 302);
	r.body[r.len] = '\0';
	cr_assert_str_eq(r.body, "moved");
	cr_assert_eq(atomic_load(&S.hits_json), 0, "the Location was followed");
}

Test(upstream, connection_cut_mid_stream)
{
	struct res r = { 0 };
	cr_assert_not_null(start(&r, "/cut", 2000, 2000));
	run_loop(5000);
	cr_assert(!loop_timed_out);
	cr_assert_eq(r.done, 1);
	cr_assert_eq(r.result, UPSTREAM_EPROTOCOL, "%s: %s", upstream_result_name(r.result), r.detail);
	cr_assert_eq(r.done_status, 200);
	assert_body_sse(&r, 3); /* what came before the cut was delivered */
	cr_assert_neq(r.detail[0], '\0');
}

Test(upstream, keepalive_reuses_one_connection)
{
	struct res r[5] = { 0 };
	for (int i = 0; i < 4; i++)
		r[i].then = &r[i + 1]; /* each next one starts from the previous on_done */
	cr_assert_not_null(start(&r[0], "/json", 2000, 2000));
	run_loop(5000);
	cr_assert(!loop_timed_out);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(r[i].done, 1, "request %d", i);
		cr_assert_eq(r[i].result, UPSTREAM_OK, "request %d: %s", i, r[i].detail);
		cr_assert_eq(r[i].timing.reused, i > 0, "request %d", i);
	}
	cr_assert_eq(atomic_load(&S.conns), 1, "%d connections for 5 sequential requests",
	             atomic_load(&S.conns));
}

/* A burst opens a connection per transfer (without curl's walk over busy
 * ones: see struct origin); the next burst reuses every one of them. */
Test(upstream, bursts_reuse_the_connections_they_opened)
{
	enum { N = 8 };
	struct res a[N] = { 0 }, b[N] = { 0 };
	for (int i = 0; i < N; i++)
		cr_assert_not_null(start(&a[i], "/json", 2000, 2000));
	run_loop(5000);
	cr_assert(!loop_timed_out);
	cr_assert_eq(atomic_load(&S.conns), N, "%d connections for %d at once", atomic_load(&S.conns), N);
	for (int i = 0; i < N; i++)
		cr_assert_not_null(start(&b[i], "/json", 2000, 2000));
	run_loop(5000);
	cr_assert(!loop_timed_out);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(b[i].result, UPSTREAM_OK, "request %d: %s", i, b[i].detail);
		cr_assert(b[i].timing.reused, "request %d of the second burst opened a connection", i);
	}
	cr_assert_eq(atomic_load(&S.conns), N, "%d connections after the second burst",
	             atomic_load(&S.conns));
}

Test(upstream, cancel_from_on_data_closes_the_connection)
{
	struct res r = { .cancel_after = 3 };
	cr_assert_not_null(start(&r, "/forever", 2000, 2000));
	run_until_closed(1, 3000);
	cr_assert(!loop_timed_out, "the server never saw the connection close");
	cr_assert_neq(r.t_cancel, 0);
	cr_assert_eq(r.takes, 3);
	int64_t ms = MS(atomic_load(&S.closed_ns) - r.t_cancel);
	cr_assert_lt(ms, 1000, "server saw the close %lld ms after cancel", (long long)ms);
	/* a little longer: nothing more may arrive for a cancelled transfer */
	run_loop(100);
	cr_assert_eq(r.done, 0, "on_done ran after cancel");
	cr_assert_eq(r.takes, 3);
	cr_assert_eq(upstream_active(U), 0);
}

static void cancel_cb(evutil_socket_t fd, short what, void *arg)
{
	struct res *r = arg;
	upstream_cancel(r->x);
	r->t_cancel = clock_mono_ns();
}

Test(upstream, cancel_while_paused_closes_the_connection)
{
	struct res r = { .pause_on = { 3, 0 }, .resume_ms = 0 };
	cr_assert_not_null(start(&r, "/forever", 2000, 200));
	struct timeval tv = clock_tv_ms(350); /* past the idle limit: paused time must not count */
	event_base_once(cbase, -1, EV_TIMEOUT, cancel_cb, &r, &tv);
	run_until_closed(1, 3000);
	cr_assert(!loop_timed_out, "the server never saw the connection close");
	cr_assert_eq(r.pauses, 1);
	cr_assert_eq(r.done, 0, "on_done ran: %s", upstream_result_name(r.result));
	cr_assert_neq(r.t_cancel, 0);
	int64_t ms = MS(atomic_load(&S.closed_ns) - r.t_cancel);
	cr_assert(ms >= 0 && ms < 1000, "server saw the close %lld ms after cancel", (long long)ms);
	cr_assert_eq(r.calls_while_paused, 0);
}

Test(upstream, connect_refused)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, len), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd); /* nobody listens there now */
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/json", ntohs(sa.sin_port));
	struct res r = { 0 };
	struct upstream_request req = {
		.method = "POST",
		.url = url,
		.connect_timeout_ms = 2000,
		.first_byte_timeout_ms = 2000,
		.idle_timeout_ms = 2000,
		.on_response = t_on_response,
		.on_data = t_on_data,
		.on_done = t_on_done,
		.ud = &r,
	};
	r.t_start = clock_mono_ns();
	r.x = upstream_start(U, &req);
	cr_assert_not_null(r.x);
	outstanding++;
	run_loop(5000);
	cr_assert(!loop_timed_out);
	cr_assert_eq(r.result, UPSTREAM_ECONNECT, "%s: %s", upstream_result_name(r.result), r.detail);
	cr_assert_eq(r.done_status, 0);
	cr_assert_eq(r.responses, 0);
	cr_assert_lt(MS(r.t_done - r.t_start), 1000);
	cr_assert_eq(r.timing.sent_us, -1);
}

Test(upstream, backpressure_pause_and_resume)
{
	/* Two 300 ms pauses with a 200 ms idle limit: the limit must not fire
	 * while we hold the transfer, and every byte arrives once, in order. */
	struct res r = { .pause_on = { 4, 11 }, .resume_ms = 300 };
	cr_assert_not_null(start(&r, "/sse", 2000, 200));
	run_loop(5000);
	cr_assert(!loop_timed_out);
	cr_assert_eq(r.done, 1);
	cr_assert_eq(r.result, UPSTREAM_OK, "%s: %s", upstream_result_name(r.result), r.detail);
	cr_assert_eq(r.pauses, 2);
	cr_assert_eq(r.calls_while_paused, 0);
	assert_body_sse(&r, 20);
	cr_assert_geq(MS(r.t_done - r.t_start), 600);
}

Test(upstream, idle_timeout_still_applies_after_resume)
{
	struct res r = { .pause_on = { 1, 0 }, .resume_ms = 300 };
	cr_assert_not_null(start(&r, "/stall-body", 2000, 200));
	run_loop(5000);
	cr_assert(!loop_timed_out);
	cr_assert_eq(r.pauses, 1);
	cr_assert_eq(r.result, UPSTREAM_ETIMEOUT_IDLE, "%s: %s", upstream_result_name(r.result), r.detail);
	assert_body_sse(&r, 1);
	int64_t ms = MS(r.t_done - r.t_last_data); /* the held chunk was taken on resume */
	cr_assert(ms >= 180 && ms < 200 + 400, "idle fired %lld ms after resume", (long long)ms);
}

Test(upstream, fifty_concurrent_transfers)
{
	enum { N = 50 };
	struct res *r = calloc(N, sizeof(*r));
	for (int i = 0; i < N; i++)
		cr_assert_not_null(start(&r[i], "/sse5", 3000, 3000));
	cr_assert_eq(upstream_active(U), N);
	run_loop(8000);
	cr_assert(!loop_timed_out, "%d transfers still running", outstanding);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(r[i].done, 1, "transfer %d", i);
		cr_assert_eq(r[i].result, UPSTREAM_OK, "transfer %d: %s", i, r[i].detail);
		assert_body_sse(&r[i], 5);
	}
	cr_assert_eq(upstream_active(U), 0);
	int conns = atomic_load(&S.conns);
	cr_assert(conns >= 1 && conns <= N, "%d connections", conns);
	free(r);
}

Test(upstream, on_response_can_abort)
{
	struct res r = { .abort_on_response = 1 };
	cr_assert_not_null(start(&r, "/sse", 2000, 2000));
	run_loop(5000);
	cr_assert(!loop_timed_out);
	cr_assert_eq(r.done, 1);
	cr_assert_eq(r.result, UPSTREAM_EABORTED, "%s: %s", upstream_result_name(r.result), r.detail);
	cr_assert_eq(r.done_status, 200);
	cr_assert_eq(r.takes, 0);
}

Test(upstream, on_data_can_abort)
{
	struct res r = { .abort_after = 2 };
	cr_assert_not_null(start(&r, "/sse", 2000, 2000));
	run_loop(5000);
	cr_assert(!loop_timed_out);
	cr_assert_eq(r.done, 1);
	cr_assert_eq(r.result, UPSTREAM_EABORTED, "%s: %s", upstream_result_name(r.result), r.detail);
	cr_assert_eq(r.takes, 2);
}

Test(upstream, start_from_inside_on_data)
{
	struct res inner = { 0 };
	struct res outer = { .start_in_data = &inner };
	cr_assert_not_null(start(&outer, "/sse5", 2000, 2000));
	run_loop(5000);
	cr_assert(!loop_timed_out);
	cr_assert_not_null(inner.x, "the start from inside on_data was refused");
	cr_assert_eq(outer.result, UPSTREAM_OK, "%s", outer.detail);
	cr_assert_eq(inner.done, 1);
	cr_assert_eq(inner.result, UPSTREAM_OK, "%s", inner.detail);
	cr_assert_eq(inner.done_status, 200);
}

static struct res *free_set;
static void free_cb(evutil_socket_t fd, short what, void *arg)
{
	*(uint64_t *)arg = clock_mono_ns(); /* before: the server may see the close at once */
	upstream_free(U);
	U = NULL;
}

static void check_all_streaming(evutil_socket_t fd, short what, void *arg)
{
	static bool fired;
	struct event *free_ev = arg;
	if (fired)
		return;
	for (int i = 0; i < 3; i++) {
		if (free_set[i].takes < 2)
			return;
	}
	fired = true;
	event_active(free_ev, EV_TIMEOUT, 0);
}

Test(upstream, free_with_live_transfers)
{
	struct res r[3] = { 0 };
	free_set = r;
	for (int i = 0; i < 3; i++)
		cr_assert_not_null(start(&r[i], "/forever", 2000, 2000));
	uint64_t t_free = 0;
	struct event *free_ev = event_new(cbase, -1, 0, free_cb, &t_free);
	struct event *check = event_new(cbase, -1, EV_PERSIST, check_all_streaming, free_ev);
	struct timeval tv = clock_tv_ms(5);
	event_add(check, &tv);
	run_until_closed(3, 3000);
	event_free(check);
	event_free(free_ev);
	cr_assert(!loop_timed_out, "%d of 3 connections closed", atomic_load(&S.forever_closed));
	cr_assert_null(U);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(r[i].done, 0, "on_done ran after upstream_free");
	cr_assert_lt(MS(atomic_load(&S.closed_ns) - t_free), 1000);
}

Test(upstream, invalid_requests_are_refused)
{
	struct res r = { 0 };
	const char *bad_hdr[] = { "X-A: 1\r\nX-Injected: 2" };
	const char *no_colon[] = { "NoColonHere" };
	const char *ok_hdr[] = { "X-A: 1" };
	struct upstream_request base = {
		.method = "POST",
		.url = "http://127.0.0.1:1/x",
		.connect_timeout_ms = 1000,
		.first_byte_timeout_ms = 1000,
		.idle_timeout_ms = 1000,
		.on_done = t_on_done,
		.ud = &r,
	};
	struct upstream_request q;
	q = base, q.url = NULL;
	cr_assert_null(upstream_start(U, &q));
	q = base, q.url = "ftp://127.0.0.1/x";
	cr_assert_null(upstream_start(U, &q));
	q = base, q.url = "not a url";
	cr_assert_null(upstream_start(U, &q));
	q = base, q.headers = bad_hdr, q.nheaders = 1;
	cr_assert_null(upstream_start(U, &q));
	q = base, q.headers = no_colon, q.nheaders = 1;
	cr_assert_null(upstream_start(U, &q));
	q = base, q.headers = NULL, q.nheaders = 1;
	cr_assert_null(upstream_start(U, &q));
	q = base, q.headers = ok_hdr, q.nheaders = UPSTREAM_MAX_HEADERS + 1;
	cr_assert_null(upstream_start(U, &q));
	q = base, q.connect_timeout_ms = 0;
	cr_assert_null(upstream_start(U, &q));
	q = base, q.first_byte_timeout_ms = -1;
	cr_assert_null(upstream_start(U, &q));
	q = base, q.idle_timeout_ms = 0;
	cr_assert_null(upstream_start(U, &q));
	q = base, q.method = "PO ST";
	cr_assert_null(upstream_start(U, &q));
	q = base, q.method = "POST\r\n";
	cr_assert_null(upstream_start(U, &q));
	q = base, q.on_done = NULL;
	cr_assert_null(upstream_start(U, &q));
	q = base, q.body = NULL, q.body_len = 5;
	cr_assert_null(upstream_start(U, &q));
	cr_assert_null(upstream_start(NULL, &base));
	cr_assert_null(upstream_start(U, NULL));
	cr_assert_eq(upstream_active(U), 0);
	run_loop(50);
	cr_assert_eq(r.done, 0, "a callback ran for a refused request");
	upstream_resume(NULL);
	upstream_cancel(NULL);
	upstream_free(NULL);
}

Test(upstream, result_names)
{
	const enum upstream_result all[] = { UPSTREAM_OK,
		                             UPSTREAM_ECONNECT,
		                             UPSTREAM_ETIMEOUT_CONNECT,
		                             UPSTREAM_ETIMEOUT_FIRST_BYTE,
		                             UPSTREAM_ETIMEOUT_IDLE,
		                             UPSTREAM_EPROTOCOL,
		                             UPSTREAM_EABORTED,
		                             UPSTREAM_EOTHER };
	size_t n = sizeof(all) / sizeof(all[0]);
	for (size_t i = 0; i < n; i++) {
		const char *a = upstream_result_name(all[i]);
		cr_assert_not_null(a);
		cr_assert_str_neq(a, "unknown");
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(a, upstream_result_name(all[j]));
	}
	cr_assert_str_eq(upstream_result_name((enum upstream_result)99), "unknown");
	cr_assert_str_eq(upstream_result_name(UPSTREAM_ETIMEOUT_IDLE), "timeout_idle");
}
