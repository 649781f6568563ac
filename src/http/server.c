/*
 * server.c — see server.h.  Worker threads, the listening socket, and
 * graceful shutdown.
 *
 * Threads: the main thread binds the socket, starts the workers and then
 * only waits for a signal (main.c).  A worker is born with everything it
 * will use already created on its own event_base, runs that loop, and on
 * its stop waker drains and exits.  The only cross-thread calls are
 * waker_signal() (the stop, and the snapshot hub's) and pthread_join(),
 * so worker loops run without libevent's locks.
 */
#include "http/server.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app.h"
#include "gateway/route.h"
#include "gateway/snapshot.h"
#include "upstream/client.h"
#include "util/waker.h"
#include "http/request.h"
#include "http/routes.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"

#define DRAIN_POLL_MS 20
#define LISTEN_BACKLOG 4096                    /* the kernel caps it at net.core.somaxconn */
#define WORKER_HEAP_RESERVE ((size_t)48 << 20) /* see alloc_reserve_thread_heap */

/* Giving memory back after bursts: see trim_check. */
#define TRIM_EVERY_MS 5000
#define TRIM_QUIET_CHECKS 3      /* 15 s ... */
#define TRIM_QUIET_CONNECTIONS 8 /* ... with at most this many connections on the worker */
#define TRIM_FREE_BYTES ((size_t)32 * 1024 * 1024)

static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
	struct worker *w = arg;
	return conn_guard_new(base, &w->srv->limits, &w->guards);
}

static void on_request(struct evhttp_request *ev, void *arg)
{
	struct worker *w = arg;
	struct http_req *r = http_req_begin(w, ev);
	if (r)
		routes_dispatch(r);
}

void worker_request_done(struct worker *w, struct http_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		w->inflight = r->next;
	if (r->next)
		r->next->prev = r->prev;
	w->inflight_count--;
	free(r->query_owned);
	free(r->path);
	free(r);
}

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	bool idle = w->inflight_count == 0 && !conn_guard_set_busy(&w->guards);
	if (!idle && clock_mono_ns() < w->drain_deadline_ns) {
		struct timeval tv = clock_tv_ms(DRAIN_POLL_MS);
		evtimer_add(w->drain_ev, &tv);
		return;
	}
	if (!idle)
		log_warn(NULL, "worker %d: shutdown timeout with %d request(s) in flight; closing them",
		         w->index, w->inflight_count);
	event_base_loopexit(w->base, NULL);
}

/* The process's resident set, from /proc (0 if unreadable). */
static size_t rss_bytes(void)
{
	char buf[128];
	FILE *f = fopen("/proc/self/statm", "re");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *end;
	(void)strtoul(buf, &end, 10); /* total size, then the resident pages */
	unsigned long resident = strtoul(end, NULL, 10);
	return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* Every TRIM_EVERY_MS: once this worker had a burst (more than
 * TRIM_QUIET_CONNECTIONS connections at a check) and has been quiet since
 * for TRIM_QUIET_CHECKS checks in a row, give what the burst freed back to
 * the system.  The allocator keeps it otherwise (over 100 MB after 4096
 * streams at once).  Not sooner: trimming between bursts would make the
 * next one fault all those pages in again.  On the worker's own thread,
 * because mimalloc's heaps belong to their threads. */
static void trim_check(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	if (w->guards.count > TRIM_QUIET_CONNECTIONS) {
		w->burst_since_trim = true;
		w->quiet_checks = 0;
		return;
	}
	if (w->burst_since_trim && ++w->quiet_checks >= TRIM_QUIET_CHECKS) {
		size_t rss = rss_bytes();
		alloc_release_idle(TRIM_FREE_BYTES);
		log_info(
		    NULL,
		    "worker %d: quiet after a burst; freed memory given back (process RSS %zu -> %zu MB)",
		    w->index, rss >> 20, rss_bytes() >> 20);
		w->burst_since_trim = false;
		w->quiet_checks = 0;
	}
}

static void on_stop(void *arg)
{
	struct worker *w = arg;
	if (w->draining)
		return;
	w->draining = true;
	event_del(w->trim_ev);
	if (w->bound) {
		evhttp_del_accept_socket(w->http, w->bound); /* frees the listener; fd stays open */
		w->bound = NULL;
		/* Closed at once, so new connections are refused instead of
		 * waiting unseen in the backlog. */
		close(w->listen_fd);
		w->listen_fd = -1;
	}
	w->drain_deadline_ns = clock_mono_ns() + (uint64_t)w->srv->cfg->shutdown_timeout_ms * 1000000u;
	drain_check(-1, 0, w);
}

/* Free what worker_init made; safe on a partly made worker. */
static void worker_free(struct worker *w)
{
	if (w->listen_fd >= 0) { /* a worker that never accepted */
		if (w->bound)
			evhttp_del_accept_socket(w->http, w->bound);
		w->bound = NULL;
		close(w->listen_fd);
		w->listen_fd = -1;
	}
	if (w->http)
		evhttp_free(w->http); /* closes every connection, frees guards */
	/* Requests a handler still held past the shutdown bound. */
	for (struct http_req *r = w->inflight, *next; r; r = next) {
		next = r->next;
		if (r->abort_cb)
			r->abort_cb(r);
		worker_request_done(w, r);
	}
	upstream_free(w->up); /* after the requests that used it */
	w->up = NULL;
	route_state_free(w->route);
	w->route = NULL;
	if (w->snap_sub)
		snapshot_unsubscribe(w->srv->app->hub, w->snap_sub); /* drops w->snap too */
	w->snap_sub = NULL;
	w->snap = NULL;
	waker_free(w->stop);
	if (w->drain_ev)
		event_free(w->drain_ev);
	if (w->trim_ev)
		event_free(w->trim_ev);
	if (w->base)
		event_base_free(w->base);
	store_close(w->store);
	w->http = NULL;
	w->stop = NULL;
	w->drain_ev = NULL;
	w->trim_ev = NULL;
	w->base = NULL;
	w->store = NULL;
}

/* The thread: serve until stopped, then free everything of this worker
 * here, in the thread that owns it, so its connections close as soon as
 * it is done rather than when the last worker is. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	alloc_reserve_thread_heap(WORKER_HEAP_RESERVE);
	event_base_dispatch(w->base);
	worker_free(w);
	return NULL;
}

static int open_listener(struct server *srv, int port, bool probe, int *fd_out, char *err, size_t errlen);

static int worker_init(struct server *srv, struct worker *w, int index, char *err, size_t errlen)
{
	const struct config *cfg = srv->cfg;
	w->index = index;
	w->srv = srv;
	/* The changelist folds the add/del/re-add of one descriptor within a
	 * loop turn (evhttp switching a connection between reading and
	 * writing, curl taking a pooled connection back) into at most one
	 * epoll_ctl. Nothing here dup()s a descriptor, which is the flag's
	 * one caveat. */
	struct event_config *ecfg = event_config_new();
	if (ecfg) {
		event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		/* Nothing else touches this loop but through a waker. */
		event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
		w->base = event_base_new_with_config(ecfg);
		event_config_free(ecfg);
	}
	if (!w->base) {
		snprintf(err, errlen, "cannot create event loop");
		return -1;
	}
	w->http = evhttp_new(w->base);
	if (!w->http) {
		snprintf(err, errlen, "cannot create HTTP server");
		return -1;
	}
	struct timeval idle = clock_tv_ms(cfg->idle_timeout_ms);
	evhttp_set_timeout_tv(w->http, &idle);
	/* The guard enforces both limits with JSON answers; these are backstops. */
	evhttp_set_max_headers_size(w->http, (ev_ssize_t)cfg->max_header_bytes + 1024);
	evhttp_set_max_body_size(w->http, (ev_ssize_t)cfg->max_body_bytes);
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                        EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
	                                        EVHTTP_REQ_PATCH);
	evhttp_set_bevcb(w->http, make_bev, w);
	evhttp_set_gencb(w->http, on_request, w);

	/* Worker 0 takes the socket server_start bound (its port may have
	 * been chosen by the kernel); the others bind their own to that port. */
	w->listen_fd = index == 0 ? atomic_exchange(&srv->listen_fd, -1) : -1;
	if (w->listen_fd < 0 && open_listener(srv, srv->port, false, &w->listen_fd, err, errlen) != 0)
		return -1;
	struct evconnlistener *l =
	    evconnlistener_new(w->base, NULL, NULL, LEV_OPT_CLOSE_ON_EXEC, 0, (evutil_socket_t)w->listen_fd);
	if (!l) {
		snprintf(err, errlen, "cannot watch the listening socket");
		return -1;
	}
	w->bound = evhttp_bind_listener(w->http, l);
	if (!w->bound) {
		evconnlistener_free(l);
		snprintf(err, errlen, "cannot attach the listening socket");
		return -1;
	}

	w->stop = waker_new(w->base, on_stop, w);
	w->drain_ev = evtimer_new(w->base, drain_check, w);
	w->trim_ev = event_new(w->base, -1, EV_PERSIST, trim_check, w);
	struct timeval trim_every = clock_tv_ms(TRIM_EVERY_MS);
	if (!w->stop || !w->drain_ev || !w->trim_ev || event_add(w->trim_ev, &trim_every) != 0) {
		snprintf(err, errlen, "cannot create worker events");
		return -1;
	}

	if (srv->app && srv->app->hub)
		w->snap_sub = snapshot_subscribe(srv->app->hub, w->base, &w->snap);
	w->route = route_state_new();
	w->up = upstream_new(w->base);
	if (!w->up) {
		snprintf(err, errlen, "cannot create the upstream client");
		return -1;
	}

	char serr[512];
	if (store_open(cfg->db_path, 0, &w->store, serr, sizeof(serr)) != 0) {
		snprintf(err, errlen, "worker %d cannot open the database: %s", index, serr);
		return -1;
	}
	return 0;
}

/* A listening socket on the configured address and `port` (0: any), with
 * SO_REUSEPORT so that every worker can have one; *fd_out gets it.  With
 * `probe`, only a plain bind, closed again: whether the port is free. */
static int open_listener(struct server *srv, int port, bool probe, int *fd_out, char *err, size_t errlen)
{
	const struct config *cfg = srv->cfg;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	int family = strchr(cfg->listen_addr, ':') ? AF_INET6 : AF_INET;
	socklen_t slen;
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		evutil_inet_pton(AF_INET6, cfg->listen_addr, &a->sin6_addr);
		slen = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		evutil_inet_pton(AF_INET, cfg->listen_addr, &a->sin_addr);
		slen = sizeof(*a);
	}

	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (!probe && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
		snprintf(err, errlen, "SO_REUSEPORT: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)); /* "::" also takes IPv4 */
	if (bind(fd, (struct sockaddr *)&ss, slen) != 0 || (!probe && listen(fd, LISTEN_BACKLOG) != 0)) {
		snprintf(err, errlen, "cannot listen on %s port %d: %s", cfg->listen_addr, port,
		         strerror(errno));
		close(fd);
		return -1;
	}
	if (probe) {
		close(fd);
		return 0;
	}
	socklen_t got = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &got);
	srv->port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                     : ((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	return 0;
}

/* The first listening socket: it fixes the port (when 0 was asked).  A
 * fixed port is first bound without SO_REUSEPORT, which fails while
 * anything listens there: a second Fusion started on the same port must
 * be refused, not quietly handed half of the first one's connections. */
static int bind_listener(struct server *srv, char *err, size_t errlen)
{
	int fd = -1;
	if (srv->cfg->port != 0 && open_listener(srv, srv->cfg->port, true, &fd, err, errlen) != 0)
		return -1;
	if (open_listener(srv, srv->cfg->port, false, &fd, err, errlen) != 0)
		return -1;
	atomic_store(&srv->listen_fd, fd);
	return 0;
}

int server_start(struct server *srv, const struct config *cfg, const struct app *app, char *err,
                 size_t errlen)
{
	memset(srv, 0, sizeof(*srv));
	srv->cfg = cfg;
	srv->app = app;
	atomic_init(&srv->listen_fd, -1);
	atomic_init(&srv->open_connections, 0);
	atomic_init(&srv->stopping, false);
	srv->limits = (struct conn_guard_limits){
		.max_header_bytes = cfg->max_header_bytes,
		.max_body_bytes = cfg->max_body_bytes,
		.header_timeout_ms = cfg->header_timeout_ms,
		.body_timeout_ms = cfg->body_timeout_ms,
		.max_connections = cfg->max_connections,
		.open_connections = &srv->open_connections,
	};
	if (bind_listener(srv, err, errlen))
		return -1;

	srv->nworkers = cfg->workers;
	srv->workers = xcalloc((size_t)srv->nworkers, sizeof(struct worker));
	for (int i = 0; i < srv->nworkers; i++)
		srv->workers[i].listen_fd = -1;
	for (int i = 0; i < srv->nworkers; i++) {
		if (worker_init(srv, &srv->workers[i], i, err, errlen))
			goto fail;
	}
	for (int i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		int rc = pthread_create(&w->thread, NULL, worker_main, w);
		if (rc) {
			snprintf(err, errlen, "cannot start worker thread: %s", strerror(rc));
			goto fail;
		}
		w->started = true;
	}
	return 0;

fail:
	server_stop(srv);
	return -1;
}

void server_stop(struct server *srv)
{
	if (!srv->workers)
		return;
	atomic_store(&srv->stopping, true);
	for (int i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		if (w->started)
			waker_signal(w->stop);
	}
	for (int i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		if (w->started)
			pthread_join(w->thread, NULL); /* the thread freed its worker */
		else
			worker_free(w);
	}
	free(srv->workers);
	srv->workers = NULL;
	int fd = atomic_exchange(&srv->listen_fd, -1);
	if (fd >= 0)
		close(fd);
}
