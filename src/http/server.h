/*
 * server.h — the HTTP front: N worker threads sharing one listening port.
 *
 * Each worker owns one event_base, one evhttp, its own store handle and
 * everything created on them; nothing of a worker is touched by another
 * thread except through a waker (util/waker.h: its stop, a new snapshot),
 * so its loop runs without libevent's locks.  Each worker
 * accepts on its own socket bound to the same port with SO_REUSEPORT,
 * so the kernel spreads new connections evenly: with one shared socket
 * the first worker to wake took a whole burst (libevent accepts until
 * the queue is empty) while the others idled.
 *
 * Shutdown (server_stop, from the main thread): every worker stops
 * accepting, answers what it is serving (with Connection: close), waits
 * until no connection is mid-request or still flushing — bounded by
 * SHUTDOWN_TIMEOUT_MS — then closes its connections and exits its loop.
 */
#ifndef FUSION_HTTP_SERVER_H
#define FUSION_HTTP_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "http/conn_guard.h"

struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct event;
struct waker;
struct store;
struct http_req;
struct app;
struct snapshot;
struct snapshot_sub;
struct upstream;
struct route_state;

struct worker {
	int index;
	struct server *srv; /* borrowed */
	pthread_t thread;
	bool started;
	struct event_base *base;           /* owned */
	struct evhttp *http;               /* owned */
	struct evhttp_bound_socket *bound; /* owned by http */
	int listen_fd;                     /* owned: this worker's listening socket, or -1 */
	struct store *store;               /* owned; this thread's handle */
	struct snapshot *snap;             /* this worker's reference to the current configuration */
	struct snapshot_sub *snap_sub;     /* owned; the mailbox new snapshots arrive in */
	struct upstream *up;               /* owned; this worker's upstream client (curl multi) */
	struct route_state *route;         /* owned; round-robin positions of this worker */
	struct waker *stop;                /* owned; signalled by server_stop */
	struct event *drain_ev;            /* owned; polls for drain completion */
	struct event *trim_ev;             /* owned; gives memory back after bursts (trim_check) */
	int quiet_checks;
	bool burst_since_trim;
	struct conn_guard_set guards;
	struct http_req *inflight; /* requests handed to handlers, not answered */
	int inflight_count;
	bool draining;
	uint64_t drain_deadline_ns;
};

struct server {
	const struct config *cfg; /* borrowed; outlives the server */
	const struct app *app;    /* borrowed; outlives the server */
	struct conn_guard_limits limits;
	atomic_int open_connections;
	atomic_int listen_fd; /* the first listening socket until worker 0 takes it */
	int port;             /* the port actually bound */
	int nworkers;
	struct worker *workers; /* owned array */
	atomic_bool stopping;
};

/* Bind, open per-worker resources, start the threads. 0 or -1 (message in err). */
int server_start(struct server *srv, const struct config *cfg, const struct app *app, char *err,
                 size_t errlen) __attribute__((warn_unused_result));

/* Graceful stop: returns once every worker thread has exited. */
void server_stop(struct server *srv);

/* Called by request.c when a request ends. */
void worker_request_done(struct worker *w, struct http_req *r);

#endif
