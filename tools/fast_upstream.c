/*
 * fast_upstream.c — a fast fake OpenAI-compatible provider for `make bench`
 * (scripts/bench.sh, docs/BENCHMARKS.md).  It answers
 *
 *   POST .../chat/completions
 *     without "stream": true   a fixed chat.completion JSON of about 330 bytes
 *     with "stream": true      SSE: N chat.completion.chunk events, one every
 *                              D ms (the first at once), then a finish chunk,
 *                              a usage-only chunk when the body asks for
 *                              stream_options.include_usage, and data: [DONE]
 *
 * and anything else with a JSON 404.  N and D default to 5 and 0 (or the
 * --events / --delay-ms options) and can be set per request, the first
 * found winning:
 *
 *   headers      x-bench-events: 50        x-bench-delay-ms: 100
 *   query        ?events=50&delay_ms=100
 *   body fields  "bench_events": 50,       "bench_delay_ms": 100
 *
 * The body fields are what reaches it through a gateway, which passes the
 * client's body on but not the client's headers.
 *
 * One event loop per thread (--threads, default one per CPU), each with its
 * own listening socket on the same port (SO_REUSEPORT), so the kernel
 * spreads connections over the threads.  A slow stream is a timer, not a
 * sleeping thread: thousands can be held at once.  Events are scheduled
 * from the stream's start (event i at start + i*D), so a late loop turn
 * does not stretch the stream.
 *
 * Usage:  fast_upstream [--host 127.0.0.1] [--port 0] [--threads N]
 *                       [--events 5] [--delay-ms 0]
 *
 * On start it prints "listening on HOST:PORT" on stdout (PORT 0 picks a
 * free port).  SIGTERM or SIGINT ends it at once.
 *
 * Build (the Makefile's build/tools/fast_upstream rule):
 *   cc -std=c17 -O2 -D_GNU_SOURCE -o build/tools/fast_upstream tools/fast_upstream.c \
 *      $(pkg-config --cflags --libs libevent libevent_pthreads) -lpthread
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>

#define MAX_THREADS 256
#define MAX_EVENTS 100000
#define MAX_DELAY_MS 600000
#define LISTEN_BACKLOG 65535
#define MODEL_MAX 64

static const char *opt_host = "127.0.0.1";
static int opt_port = 0;
static int opt_threads = 0;
static long opt_events = 5;
static long opt_delay_ms = 0;

struct stream {
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	struct event *timer;
	struct timespec start;
	long events, delay_ms, sent;
	bool usage;
	char model[MODEL_MAX + 1];
};

/* ---- small helpers -------------------------------------------------- */

static void die(const char *what)
{
	fprintf(stderr, "fast_upstream: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A decimal in [lo, hi]; false for anything else. */
static bool parse_long(const char *s, size_t n, long lo, long hi, long *out)
{
	char buf[24];
	if (!s || n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	char *end;
	errno = 0;
	long v = strtol(buf, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/*
 * The value of a top-level-ish JSON field in body: a pointer just after
 * `"name"`, whitespace and the colon, or NULL.  A benchmark body is small
 * and trusted; this is a scan, not a parser.
 */
static const char *json_field(const char *body, size_t len, const char *name)
{
	size_t nl = strlen(name);
	size_t i = 0;
	while (i + nl + 2 <= len) {
		const char *q = memchr(body + i, '"', len - i);
		if (!q)
			return NULL;
		i = (size_t)(q - body);
		if (i + nl + 2 > len)
			return NULL;
		if (memcmp(body + i + 1, name, nl) != 0 || body[i + nl + 1] != '"') {
			i++;
			continue;
		}
		size_t v = i + nl + 2;
		while (v < len && (body[v] == ' ' || body[v] == '\t' || body[v] == '\n' || body[v] == '\r'))
			v++;
		if (v >= len || body[v] != ':') {
			i++;
			continue;
		}
		v++;
		while (v < len && (body[v] == ' ' || body[v] == '\t' || body[v] == '\n' || body[v] == '\r'))
			v++;
		return body + v;
	}
	return NULL;
}

static bool json_true(const char *body, size_t len, const char *name)
{
	const char *v = json_field(body, len, name);
	return v && (size_t)(body + len - v) >= 4 && memcmp(v, "true", 4) == 0;
}

static bool json_long(const char *body, size_t len, const char *name, long lo, long hi, long *out)
{
	const char *v = json_field(body, len, name);
	if (!v)
		return false;
	size_t n = 0;
	while (v + n < body + len && v[n] >= '0' && v[n] <= '9')
		n++;
	return parse_long(v, n, lo, hi, out);
}

/* "model": "..." copied out when it is a plain string, else "bench". */
static void json_model(const char *body, size_t len, char out[MODEL_MAX + 1])
{
	snprintf(out, MODEL_MAX + 1, "bench");
	const char *v = json_field(body, len, "model");
	if (!v || v >= body + len || *v != '"')
		return;
	v++;
	size_t n = 0;
	while (v + n < body + len && v[n] != '"' && v[n] != '\\' && (unsigned char)v[n] >= 0x20 &&
	       n < MODEL_MAX)
		n++;
	if (v + n < body + len && v[n] == '"') {
		memcpy(out, v, n);
		out[n] = '\0';
	}
}

/* A query parameter (no decoding: digits only are accepted anyway). */
static bool query_long(const char *query, const char *name, long lo, long hi, long *out)
{
	size_t nl = strlen(name);
	for (const char *p = query; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t n = amp ? (size_t)(amp - p) : strlen(p);
		if (n > nl && memcmp(p, name, nl) == 0 && p[nl] == '=')
			return parse_long(p + nl + 1, n - nl - 1, lo, hi, out);
		p = amp ? amp + 1 : NULL;
	}
	return false;
}

static bool header_long(struct evhttp_request *req, const char *name, long lo, long hi, long *out)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), name);
	return v && parse_long(v, strlen(v), lo, hi, out);
}

static void set_nodelay(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void reply_json(struct evhttp_request *req, int status, const char *reason, const char *body)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, body, strlen(body));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, status, reason, b);
	evbuffer_free(b);
}

/* ---- streams -------------------------------------------------------- */

static void add_chunk(struct evbuffer *b, const struct stream *s, const char *delta, const char *finish)
{
	evbuffer_add_printf(b,
	                    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\","
	                    "\"created\":1700000000,\"model\":\"%s\",\"choices\":[{\"index\":0,"
	                    "\"delta\":%s,\"logprobs\":null,\"finish_reason\":%s}]}\n\n",
	                    s->model, delta, finish);
}

static void stream_free(struct stream *s)
{
	if (s->timer)
		event_free(s->timer);
	free(s);
}

/*
 * The client went away mid-stream.  evhttp has detached the request from
 * the connection (it is still ours, unfinished); ending a detached request
 * frees it.
 */
static void on_stream_close(struct evhttp_connection *evcon, void *arg)
{
	struct stream *s = arg;
	if (!evhttp_request_get_connection(s->req))
		evhttp_send_reply_end(s->req);
	stream_free(s);
}

static void stream_end(struct stream *s)
{
	struct evbuffer *b = evbuffer_new();
	add_chunk(b, s, "{}", "\"stop\"");
	if (s->usage)
		evbuffer_add_printf(
		    b,
		    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\","
		    "\"created\":1700000000,\"model\":\"%s\",\"choices\":[],\"usage\":{"
		    "\"prompt_tokens\":12,\"completion_tokens\":%ld,\"total_tokens\":%ld}}\n\n",
		    s->model, s->events, s->events + 12);
	evbuffer_add(b, "data: [DONE]\n\n", 14);
	evhttp_send_reply_chunk(s->req, b);
	evbuffer_free(b);
	/* Detach first: ending the reply may close (and free) the connection. */
	evhttp_connection_set_closecb(s->evcon, NULL, NULL);
	evhttp_send_reply_end(s->req);
	stream_free(s);
}

static long elapsed_ms(const struct timespec *from)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)((now.tv_sec - from->tv_sec) * 1000 + (now.tv_nsec - from->tv_nsec) / 1000000);
}

/* Send every event that is due; arm the timer for the next one, or end. */
static void stream_pump(struct stream *s)
{
	struct evbuffer *b = evbuffer_new();
	long due = s->delay_ms ? elapsed_ms(&s->start) / s->delay_ms + 1 : s->events;
	if (due > s->events)
		due = s->events;
	for (; s->sent < due; s->sent++) {
		char delta[80];
		if (s->sent == 0)
			snprintf(delta, sizeof(delta), "{\"role\":\"assistant\",\"content\":\"tok%ld \"}",
			         s->sent);
		else
			snprintf(delta, sizeof(delta), "{\"content\":\"tok%ld \"}", s->sent);
		add_chunk(b, s, delta, "null");
	}
	if (evbuffer_get_length(b))
		evhttp_send_reply_chunk(s->req, b);
	evbuffer_free(b);

	/* The end comes D ms after the last event, like a model's last step. */
	long next_ms = s->sent * s->delay_ms; /* event `sent`, or the end when sent == events */
	long wait = next_ms - elapsed_ms(&s->start);
	if (s->sent >= s->events && (s->delay_ms == 0 || wait <= 0)) {
		stream_end(s);
		return;
	}
	if (wait < 0)
		wait = 0;
	struct timeval tv = { wait / 1000, (wait % 1000) * 1000 };
	evtimer_add(s->timer, &tv);
}

static void on_stream_timer(evutil_socket_t fd, short what, void *arg)
{
	stream_pump(arg);
}

static void start_stream(struct evhttp_request *req, long events, long delay_ms, bool usage,
                         const char *model)
{
	struct stream *s = calloc(1, sizeof(*s));
	if (!s) {
		reply_json(req, 500, "Internal Server Error", "{\"error\":{\"message\":\"out of memory\"}}");
		return;
	}
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	s->req = req;
	s->evcon = evcon;
	s->events = events;
	s->delay_ms = delay_ms;
	s->usage = usage;
	snprintf(s->model, sizeof(s->model), "%s", model);
	clock_gettime(CLOCK_MONOTONIC, &s->start);
	s->timer = evtimer_new(evhttp_connection_get_base(evcon), on_stream_timer, s);
	set_nodelay(req);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evhttp_send_reply_start(req, 200, "OK");
	evhttp_connection_set_closecb(evcon, on_stream_close, s);
	stream_pump(s);
}

/* ---- requests ------------------------------------------------------- */

static const char COMPLETION[] =
    "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"created\":1700000000,"
    "\"model\":\"%s\",\"system_fingerprint\":\"fp_bench\",\"choices\":[{\"index\":0,"
    "\"message\":{\"role\":\"assistant\",\"content\":\"Hello! This is the fixed answer of the "
    "Fusion benchmark upstream.\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":14,\"total_tokens\":26}}";

static void on_request(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	const char *q = strchr(uri, '?');
	size_t plen = q ? (size_t)(q - uri) : strlen(uri);
	static const char suffix[] = "/chat/completions";
	size_t sl = sizeof(suffix) - 1;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST || plen < sl ||
	    memcmp(uri + plen - sl, suffix, sl) != 0) {
		reply_json(req, 404, "Not Found",
		           "{\"error\":{\"message\":\"fast_upstream: only POST .../chat/completions\","
		           "\"type\":\"invalid_request_error\"}}");
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
	char model[MODEL_MAX + 1];
	json_model(body, len, model);

	if (!json_true(body, len, "stream")) {
		char out[sizeof(COMPLETION) + MODEL_MAX];
		snprintf(out, sizeof(out), COMPLETION, model);
		reply_json(req, 200, "OK", out);
		return;
	}
	long events = opt_events, delay = opt_delay_ms;
	if (!header_long(req, "x-bench-events", 0, MAX_EVENTS, &events) &&
	    !query_long(q ? q + 1 : NULL, "events", 0, MAX_EVENTS, &events))
		json_long(body, len, "bench_events", 0, MAX_EVENTS, &events);
	if (!header_long(req, "x-bench-delay-ms", 0, MAX_DELAY_MS, &delay) &&
	    !query_long(q ? q + 1 : NULL, "delay_ms", 0, MAX_DELAY_MS, &delay))
		json_long(body, len, "bench_delay_ms", 0, MAX_DELAY_MS, &delay);
	start_stream(req, events, delay, json_true(body, len, "include_usage"), model);
}

/* ---- threads -------------------------------------------------------- */

static int listen_socket(const char *host, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "fast_upstream: --host must be an IPv4 address: %s\n", host);
		exit(2);
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
		die("SO_REUSEPORT");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("bind");
	if (listen(fd, LISTEN_BACKLOG) != 0)
		die("listen");
	return fd;
}

static int bound_port(int fd)
{
	struct sockaddr_in sa = { 0 };
	socklen_t sl = sizeof(sa);
	if (getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
		die("getsockname");
	return ntohs(sa.sin_port);
}

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct event_base *base = event_base_new();
	struct evhttp *http = base ? evhttp_new(base) : NULL;
	if (!http) {
		fprintf(stderr, "fast_upstream: cannot create the event loop\n");
		exit(1);
	}
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
	evhttp_set_max_body_size(http, 16 << 20);
	evhttp_set_timeout(http, 120);
	evhttp_set_gencb(http, on_request, NULL);
	if (!evhttp_accept_socket_with_handle(http, fd)) {
		fprintf(stderr, "fast_upstream: cannot accept on the listening socket\n");
		exit(1);
	}
	event_base_dispatch(base);
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: fast_upstream [--host 127.0.0.1] [--port 0] [--threads N] [--events 5] "
	           "[--delay-ms 0]\n");
}

static long arg_long(const char *name, const char *v, long lo, long hi)
{
	long out;
	if (!v || !parse_long(v, strlen(v), lo, hi, &out)) {
		fprintf(stderr, "fast_upstream: %s must be an integer from %ld to %ld\n", name, lo, hi);
		exit(2);
	}
	return out;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--host") == 0 && v) {
			opt_host = v;
		} else if (strcmp(a, "--port") == 0) {
			opt_port = (int)arg_long(a, v, 0, 65535);
		} else if (strcmp(a, "--threads") == 0) {
			opt_threads = (int)arg_long(a, v, 1, MAX_THREADS);
		} else if (strcmp(a, "--events") == 0) {
			opt_events = arg_long(a, v, 0, MAX_EVENTS);
		} else if (strcmp(a, "--delay-ms") == 0) {
			opt_delay_ms = arg_long(a, v, 0, MAX_DELAY_MS);
		} else {
			usage(stderr);
			return 2;
		}
		i++;
	}
	if (opt_threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		opt_threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
	}

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL); /* every thread inherits the mask */
	evthread_use_pthreads();

	int fds[MAX_THREADS];
	fds[0] = listen_socket(opt_host, opt_port);
	int port = bound_port(fds[0]);
	for (int i = 1; i < opt_threads; i++)
		fds[i] = listen_socket(opt_host, port);
	for (int i = 0; i < opt_threads; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, serve, (void *)(intptr_t)fds[i]) != 0) {
			fprintf(stderr, "fast_upstream: cannot start thread %d\n", i);
			return 1;
		}
		pthread_detach(t);
	}
	printf("listening on %s:%d (%d threads, default %ld events every %ld ms)\n", opt_host, port,
	       opt_threads, opt_events, opt_delay_ms);
	fflush(stdout);

	int sig = 0;
	sigwait(&stop, &sig);
	return 0;
}
