/*
 * slow_streams.c — the slow-stream load client of `make bench`
 * (scripts/bench.sh, docs/BENCHMARKS.md).  It opens N streaming chat
 * completions at once, holds every one to its end, and prints one JSON
 * line: how many ended well, the errors by kind, and the distribution of
 * per-stream durations and times to first byte.
 *
 * Usage:
 *   slow_streams --url http://127.0.0.1:PORT/v1/chat/completions [--key fk-...]
 *                [--streams 4096] [--events 50] [--delay-ms 100]
 *                [--timeout-ms 0] [--label TEXT]
 *
 * Each request asks for `events` SSE events `delay-ms` apart through the
 * body fields "bench_events" / "bench_delay_ms" (tools/fast_upstream.c reads
 * them; a gateway passes the body on).  A stream is OK when the answer is
 * 200 text/event-stream, carries exactly `events` content chunks and no
 * error event, has data: [DONE], and the HTTP response then ends cleanly
 * (last chunk, or Content-Length, or close for a close-delimited body).
 * Anything else — refused, reset, wrong status, short stream, no end
 * within the timeout (default events*delay + 60 s) — is an error, counted
 * by kind with a few examples.
 *
 * duration = from just before the socket is made to the end of the
 * response; ttfb = to the end of the response head.  All connections are
 * started in one tight loop, then one epoll loop drives them: the client
 * itself costs little CPU, so it disturbs the server under test little.
 *
 * Plain C (Linux epoll), no libraries:
 *   cc -std=c17 -O2 -D_GNU_SOURCE -o build/tools/slow_streams tools/slow_streams.c
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_STREAMS 200000
#define HEAD_MAX 8192
#define EVENT_MAX 4096
#define MAX_KINDS 32
#define MAX_EXAMPLES 5

enum phase { P_CONNECT, P_HEAD, P_BODY, P_DONE };
enum chunk_state { C_SIZE, C_DATA, C_DATA_CR, C_DATA_LF, C_TRAILER };

struct conn {
	int fd;
	enum phase phase;
	double t0, ttfb;
	size_t sent; /* bytes of the request written */
	char *head;  /* the response head, until complete */
	size_t head_len;
	int status;
	bool chunked;
	long long content_left; /* Content-Length body bytes to come; -1: none */
	enum chunk_state cs;
	unsigned long long chunk_left;
	char line[64]; /* chunk-size or trailer line */
	size_t line_len;
	bool line_long;
	char ev[EVENT_MAX]; /* the SSE event being read */
	size_t ev_len;
	bool ev_nl; /* the last byte of the event was a newline */
	long content_events;
	bool done_seen;
	char error_event[160];
};

static struct {
	char host[64];
	int port;
	char path[512];
	const char *key, *label;
	long streams, events, delay_ms, timeout_ms;
} opt = { .streams = 4096, .events = 50, .delay_ms = 100, .key = "", .label = "" };

static struct {
	char name[48];
	long n;
} kinds[MAX_KINDS];
static char examples[MAX_EXAMPLES][240];
static int nexamples;
static long ok_count, error_count, events_received, open_now, peak_open;
static struct conn *conns;
static double *durations, *ttfbs;
static long ndurations, nttfbs;
static int ep;
static char *request;
static size_t request_len;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void usage_exit(const char *msg)
{
	if (msg)
		fprintf(stderr, "slow_streams: %s\n", msg);
	fprintf(stderr,
	        "usage: slow_streams --url http://HOST:PORT/PATH [--key KEY] [--streams N] [--events N] "
	        "[--delay-ms N] [--timeout-ms N] [--label TEXT]\n");
	exit(2);
}

static long num(const char *name, const char *v, long lo, long hi)
{
	char *end;
	errno = 0;
	long x = v ? strtol(v, &end, 10) : 0;
	if (!v || errno || *end || end == v || x < lo || x > hi) {
		fprintf(stderr, "slow_streams: %s must be an integer from %ld to %ld\n", name, lo, hi);
		exit(2);
	}
	return x;
}

static void parse_url(const char *u)
{
	const char *p = u;
	if (strncmp(p, "http://", 7) != 0)
		usage_exit("--url must start with http://");
	p += 7;
	const char *colon = strchr(p, ':'), *slash = strchr(p, '/');
	if (!colon || !slash || colon > slash || (size_t)(colon - p) >= sizeof(opt.host))
		usage_exit("--url must be http://IPV4:PORT/PATH");
	memcpy(opt.host, p, (size_t)(colon - p));
	opt.host[colon - p] = '\0';
	char port[8];
	size_t pl = (size_t)(slash - colon - 1);
	if (pl == 0 || pl >= sizeof(port))
		usage_exit("bad port in --url");
	memcpy(port, colon + 1, pl);
	port[pl] = '\0';
	opt.port = (int)num("the port", port, 1, 65535);
	if (strlen(slash) >= sizeof(opt.path))
		usage_exit("path too long");
	snprintf(opt.path, sizeof(opt.path), "%s", slash);
}

/* ---- results -------------------------------------------------------- */

static void count_error(const char *kind, const char *detail)
{
	error_count++;
	int i;
	for (i = 0; i < MAX_KINDS && kinds[i].name[0]; i++) {
		if (strcmp(kinds[i].name, kind) == 0)
			break;
	}
	if (i == MAX_KINDS)
		i = MAX_KINDS - 1; /* lumped into the last kind */
	if (!kinds[i].name[0])
		snprintf(kinds[i].name, sizeof(kinds[i].name), "%s", kind);
	kinds[i].n++;
	if (nexamples < MAX_EXAMPLES)
		snprintf(examples[nexamples++], sizeof(examples[0]), "%s: %s", kind, detail);
}

static void finish(struct conn *c, const char *kind, const char *detail)
{
	if (c->phase == P_DONE)
		return;
	double t = now_ms();
	if (c->fd >= 0) {
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	}
	c->phase = P_DONE;
	open_now--;
	events_received += c->content_events;
	if (!kind && c->error_event[0]) {
		kind = "error_event";
		detail = c->error_event;
	}
	char buf[96];
	if (!kind && !c->done_seen) {
		snprintf(buf, sizeof(buf), "ended after %ld events without [DONE]", c->content_events);
		kind = "no_done";
		detail = buf;
	}
	if (!kind && c->content_events != opt.events) {
		snprintf(buf, sizeof(buf), "%ld events, want %ld", c->content_events, opt.events);
		kind = "wrong_event_count";
		detail = buf;
	}
	if (kind)
		count_error(kind, detail); /* detail may point into c->head: free it after */
	else
		durations[ndurations++] = t - c->t0;
	if (!kind)
		ok_count++;
	free(c->head);
	c->head = NULL;
}

/* ---- response parsing ----------------------------------------------- */

static void sse_event(struct conn *c)
{
	/* Only the first line matters for these events: "data: ...". */
	if (c->ev_len < 5 || memcmp(c->ev, "data:", 5) != 0)
		return; /* comment (heartbeat) or other field */
	const char *d = c->ev + 5;
	size_t n = c->ev_len - 5;
	while (n && *d == ' ') {
		d++;
		n--;
	}
	if (n >= 6 && memcmp(d, "[DONE]", 6) == 0) {
		c->done_seen = true;
		return;
	}
	if (memmem(d, n, "\"error\"", 7)) {
		if (!c->error_event[0])
			snprintf(c->error_event, sizeof(c->error_event), "%.*s", (int)(n < 150 ? n : 150), d);
		return;
	}
	if (memmem(d, n, "\"content\"", 9))
		c->content_events++;
}

static void sse_bytes(struct conn *c, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		if (ch == '\r')
			continue;
		if (ch == '\n' && c->ev_nl) { /* blank line: end of the event */
			if (c->ev_len && c->ev[c->ev_len - 1] == '\n')
				c->ev_len--;
			sse_event(c);
			c->ev_len = 0;
			c->ev_nl = false;
			continue;
		}
		c->ev_nl = ch == '\n';
		if (c->ev_len < EVENT_MAX)
			c->ev[c->ev_len++] = ch;
	}
}

/* Chunked body bytes; returns true when the last chunk and trailers are in. */
static bool chunked_bytes(struct conn *c, const char *p, size_t n, bool *bad)
{
	size_t i = 0;
	while (i < n) {
		switch (c->cs) {
		case C_DATA: {
			size_t take = n - i < c->chunk_left ? n - i : (size_t)c->chunk_left;
			sse_bytes(c, p + i, take);
			i += take;
			c->chunk_left -= take;
			if (!c->chunk_left)
				c->cs = C_DATA_CR;
			break;
		}
		case C_DATA_CR:
		case C_DATA_LF: {
			char want = c->cs == C_DATA_CR ? '\r' : '\n';
			if (p[i++] != want) {
				*bad = true;
				return false;
			}
			c->cs = c->cs == C_DATA_CR ? C_DATA_LF : C_SIZE;
			break;
		}
		case C_SIZE:
		case C_TRAILER: {
			char ch = p[i++];
			if (ch != '\n') {
				if (c->line_len < sizeof(c->line) - 1)
					c->line[c->line_len++] = ch;
				else
					c->line_long = true;
				break;
			}
			if (c->line_len && c->line[c->line_len - 1] == '\r')
				c->line_len--;
			c->line[c->line_len] = '\0';
			size_t len = c->line_len;
			c->line_len = 0;
			if (c->cs == C_TRAILER) {
				if (len == 0)
					return true; /* end of the trailers: the response is complete */
				break;
			}
			char *end;
			errno = 0;
			unsigned long long sz = strtoull(c->line, &end, 16);
			if (c->line_long || end == c->line || errno || (*end && *end != ';' && *end != ' ')) {
				*bad = true;
				return false;
			}
			if (sz == 0) {
				c->cs = C_TRAILER;
			} else {
				c->chunk_left = sz;
				c->cs = C_DATA;
			}
			break;
		}
		}
	}
	return false;
}

/* Value of header `name` in a complete head (case-insensitive), or NULL. */
static const char *header(const char *head, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
		const char *h = p + 2;
		if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
			const char *v = h + nl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			const char *e = strstr(v, "\r\n");
			*vlen = e ? (size_t)(e - v) : strlen(v);
			return v;
		}
	}
	return NULL;
}

static void body_bytes(struct conn *c, const char *p, size_t n)
{
	if (c->status != 200) {
		return; /* drained; the head says enough */
	}
	if (c->chunked) {
		bool bad = false;
		if (chunked_bytes(c, p, n, &bad))
			finish(c, NULL, NULL);
		else if (bad)
			finish(c, "bad_chunked_framing", "malformed chunked body");
		return;
	}
	size_t take = n;
	if (c->content_left >= 0 && (long long)take > c->content_left)
		take = (size_t)c->content_left;
	sse_bytes(c, p, take);
	if (c->content_left >= 0) {
		c->content_left -= (long long)take;
		if (c->content_left == 0)
			finish(c, NULL, NULL);
	}
}

static void head_complete(struct conn *c, size_t head_end)
{
	c->ttfb = now_ms() - c->t0;
	ttfbs[nttfbs++] = c->ttfb;
	char *h = c->head;
	h[head_end] = '\0';
	if (strncmp(h, "HTTP/1.", 7) != 0 || strlen(h) < 12) {
		finish(c, "bad_status_line", h);
		return;
	}
	c->status = (int)strtol(h + 9, NULL, 10);
	size_t vl = 0;
	const char *ct = header(h, "Content-Type", &vl);
	const char *te = header(h, "Transfer-Encoding", &vl);
	c->chunked = te && strncasecmp(te, "chunked", 7) == 0;
	const char *cl = header(h, "Content-Length", &vl);
	c->content_left = cl ? strtoll(cl, NULL, 10) : -1;
	if (c->status != 200 || !ct || strncasecmp(ct, "text/event-stream", 17) != 0) {
		char kind[32], detail[200];
		snprintf(kind, sizeof(kind), "http_%d", c->status);
		const char *body = h + head_end + 4;
		size_t bl = c->head_len - head_end - 4;
		snprintf(detail, sizeof(detail), "%.*s", (int)(bl < 180 ? bl : 180), body);
		for (char *q = detail; *q; q++) {
			if ((unsigned char)*q < 0x20 || *q == '"' || *q == '\\')
				*q = ' ';
		}
		finish(c, kind, detail);
		return;
	}
	c->phase = P_BODY;
	size_t rest = c->head_len - head_end - 4;
	char *restp = h + head_end + 4;
	c->head = NULL;
	body_bytes(c, restp, rest);
	free(h);
}

static void on_readable(struct conn *c)
{
	char buf[16384];
	for (;;) {
		ssize_t n = read(c->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			finish(c, errno == ECONNRESET ? "reset" : "read_error", strerror(errno));
			return;
		}
		if (n == 0) {
			if (c->phase == P_BODY && c->status == 200 && !c->chunked && c->content_left < 0)
				finish(c, NULL, NULL); /* close-delimited body */
			else
				finish(c, c->phase == P_HEAD ? "closed_before_head" : "closed_mid_stream",
				       "the server closed the connection");
			return;
		}
		if (c->phase == P_HEAD) {
			if (c->head_len + (size_t)n + 1 > HEAD_MAX) {
				finish(c, "head_too_large", "response head over 8 KiB");
				return;
			}
			memcpy(c->head + c->head_len, buf, (size_t)n);
			c->head_len += (size_t)n;
			c->head[c->head_len] = '\0';
			char *e = strstr(c->head, "\r\n\r\n");
			if (e)
				head_complete(c, (size_t)(e - c->head));
		} else {
			body_bytes(c, buf, (size_t)n);
		}
		if (c->phase == P_DONE)
			return;
	}
}

static void on_writable(struct conn *c)
{
	if (c->phase == P_CONNECT) {
		int err = 0;
		socklen_t el = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			char kind[48];
			snprintf(kind, sizeof(kind), "connect_%s", err == ECONNREFUSED ? "refused" : "error");
			finish(c, kind, strerror(err));
			return;
		}
		c->phase = P_HEAD;
		c->head = malloc(HEAD_MAX);
		if (!c->head) {
			finish(c, "out_of_memory", "malloc");
			return;
		}
	}
	while (c->sent < request_len) {
		ssize_t n = write(c->fd, request + c->sent, request_len - c->sent);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			finish(c, "write_error", strerror(errno));
			return;
		}
		c->sent += (size_t)n;
	}
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* ---- output --------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void print_dist(const char *name, double *v, long n)
{
	printf("\"%s\":", name);
	if (!n) {
		printf("null");
		return;
	}
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	const double ps[] = { 50, 90, 99 };
	printf("{\"min\":%.1f", v[0]);
	for (size_t i = 0; i < 3; i++) {
		long k = (long)((ps[i] / 100.0) * (double)n + 0.999999) - 1;
		if (k < 0)
			k = 0;
		if (k >= n)
			k = n - 1;
		printf(",\"p%.0f\":%.1f", ps[i], v[k]);
	}
	printf(",\"max\":%.1f}", v[n - 1]);
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

int main(int argc, char **argv)
{
	const char *url = NULL;
	for (int i = 1; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage_exit("every option takes a value");
		if (strcmp(a, "--url") == 0)
			url = v;
		else if (strcmp(a, "--key") == 0)
			opt.key = v;
		else if (strcmp(a, "--label") == 0)
			opt.label = v;
		else if (strcmp(a, "--streams") == 0)
			opt.streams = num(a, v, 1, MAX_STREAMS);
		else if (strcmp(a, "--events") == 0)
			opt.events = num(a, v, 0, 100000);
		else if (strcmp(a, "--delay-ms") == 0)
			opt.delay_ms = num(a, v, 0, 600000);
		else if (strcmp(a, "--timeout-ms") == 0)
			opt.timeout_ms = num(a, v, 0, 86400000);
		else
			usage_exit("unknown option");
	}
	if (!url)
		usage_exit("--url is required");
	parse_url(url);
	if (!opt.timeout_ms)
		opt.timeout_ms = opt.events * opt.delay_ms + 60000;

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if ((rlim_t)opt.streams + 16 > rl.rlim_cur) {
		fprintf(stderr, "slow_streams: open-file limit %llu is too low for %ld streams\n",
		        (unsigned long long)rl.rlim_cur, opt.streams);
		return 1;
	}

	char body[256];
	int bl = snprintf(body, sizeof(body),
	                  "{\"model\":\"bench-model\",\"messages\":[{\"role\":\"user\",\"content\":"
	                  "\"Stream a long answer.\"}],\"stream\":true,\"bench_events\":%ld,"
	                  "\"bench_delay_ms\":%ld}",
	                  opt.events, opt.delay_ms);
	char auth[600] = "";
	if (opt.key[0])
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", opt.key);
	size_t cap = strlen(opt.path) + strlen(auth) + (size_t)bl + 256;
	request = malloc(cap);
	conns = calloc((size_t)opt.streams, sizeof(*conns));
	durations = calloc((size_t)opt.streams, sizeof(double));
	ttfbs = calloc((size_t)opt.streams, sizeof(double));
	if (!request || !conns || !durations || !ttfbs) {
		fprintf(stderr, "slow_streams: out of memory\n");
		return 1;
	}
	request_len = (size_t)snprintf(request, cap,
	                               "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
	                               "Accept: text/event-stream\r\n%sContent-Length: %d\r\n\r\n%s",
	                               opt.path, opt.host, opt.port, auth, bl, body);

	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port) };
	if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1)
		usage_exit("the host in --url must be an IPv4 address");
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("slow_streams: epoll_create1");
		return 1;
	}

	double start = now_ms();
	for (long i = 0; i < opt.streams; i++) {
		struct conn *c = &conns[i];
		c->t0 = now_ms();
		c->phase = P_CONNECT;
		c->cs = C_SIZE;
		open_now++;
		if (open_now > peak_open)
			peak_open = open_now;
		c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd < 0) {
			finish(c, "socket_error", strerror(errno));
			continue;
		}
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
			char kind[48];
			snprintf(kind, sizeof(kind), "connect_%s",
			         errno == ECONNREFUSED ? "refused" : "error");
			finish(c, kind, strerror(errno));
			continue;
		}
		struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = c };
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	}

	struct epoll_event evs[512];
	double deadline = start + (double)opt.timeout_ms;
	while (open_now > 0) {
		double left = deadline - now_ms();
		if (left <= 0)
			break;
		int n = epoll_wait(ep, evs, 512, left > 1000 ? 1000 : (int)left + 1);
		if (n < 0 && errno == EINTR)
			continue;
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->phase == P_DONE)
				continue;
			if (c->phase == P_CONNECT || (evs[i].events & EPOLLOUT))
				on_writable(c);
			if (c->phase != P_DONE && c->phase != P_CONNECT &&
			    (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
				on_readable(c);
		}
	}
	for (long i = 0; i < opt.streams; i++) {
		if (conns[i].phase != P_DONE) {
			char d[96];
			snprintf(d, sizeof(d), "not ended within %ld ms (%ld events seen)", opt.timeout_ms,
			         conns[i].content_events);
			finish(&conns[i], "timeout", d);
		}
	}
	double wall = now_ms() - start;

	printf("{\"label\":");
	json_str(opt.label);
	printf(",\"streams\":%ld,\"events\":%ld,\"delay_ms\":%ld,\"ok\":%ld,\"errors\":%ld,\"error_kinds\":{",
	       opt.streams, opt.events, opt.delay_ms, ok_count, error_count);
	for (int i = 0; i < MAX_KINDS && kinds[i].name[0]; i++) {
		printf("%s", i ? "," : "");
		json_str(kinds[i].name);
		printf(":%ld", kinds[i].n);
	}
	printf("},\"error_examples\":[");
	for (int i = 0; i < nexamples; i++) {
		printf("%s", i ? "," : "");
		json_str(examples[i]);
	}
	printf("],\"peak_open\":%ld,\"events_received\":%ld,\"wall_ms\":%.0f,", peak_open, events_received,
	       wall);
	print_dist("duration_ms", durations, ndurations);
	putchar(',');
	print_dist("ttfb_ms", ttfbs, nttfbs);
	printf("}\n");
	return 0;
}
