/*
 * client.c — see client.h.  A libcurl multi handle driven by one worker's
 * event_base (the hiperfifo / multi-event pattern), plus the timeouts and
 * pause rules an LLM stream needs.
 *
 * Control flow, socket side:
 *   curl says which sockets it wants watched  -> sock_cb: one struct usock
 *       (owning a persistent event) per socket, remembered with
 *       curl_multi_assign; on CURL_POLL_REMOVE parked while the socket
 *       stays open (see sock_park) or freed;
 *   curl says when it next wants to run        -> timer_cb: (re)arms the one
 *       timer_ev, -1 deletes it.  It only schedules: curl is never called
 *       from inside curl's own callback chain;
 *   a socket is ready / timer_ev fires         -> curl_multi_socket_action,
 *       during which curl calls our per-transfer callbacks (prereq_cb,
 *       header_cb, write_cb -> the caller's on_response / on_data);
 *   then check_multi_info drains curl_multi_info_read and finishes each
 *       completed transfer: curl_multi_remove_handle (we are outside curl
 *       now), then on_done.
 *
 * Our own timers: each transfer has one deadline_ev.  Armed in prereq_cb
 * (request about to go out) for the first-byte limit, re-armed on the
 * status line for the idle limit.  Activity only stamps last_rx_ns; the
 * timer, when it fires, re-arms itself for the remainder instead of being
 * re-added on every chunk.  Curl's low-speed limits cannot be used: they do
 * not run while a transfer is paused, and there is no CURLOPT_TIMEOUT (it
 * would kill long streams).
 *
 * Pause/resume: on_data returning UPSTREAM_PAUSE makes write_cb return
 * CURL_WRITEFUNC_PAUSE (curl keeps the bytes and offers them again) and
 * stops the idle clock.  upstream_resume only marks the transfer and queues
 * it; kick_cb calls curl_easy_pause(CONT) on the next loop turn, outside any
 * curl callback (curl may deliver the held bytes from inside that call).
 *
 * Deferred work and freeing: u->queue holds transfers with something to do
 * on the next loop turn (kick_ev): a curl_multi_add_handle that was asked
 * for from inside a curl callback, a resume, or the final free of a
 * finished or cancelled transfer.  A transfer is freed in exactly one place,
 * xfer_free, called from kick_cb (or upstream_free), never from inside a
 * curl or caller callback.  Cancel only marks and queues; kick_cb's
 * curl_multi_remove_handle of an unfinished transfer makes curl close an
 * HTTP/1 connection (it cannot be reused mid-response), which is what lets
 * the provider see the client go away.
 */
#include "upstream/client.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"

/* Connections kept open per worker after use.  Below the number of
 * requests a busy worker has in flight, every burst would close and
 * reopen upstream connections (the bench saw half its requests connect
 * anew at 64). */
#define POOL_MAX_CONNS 1024
#define KEEPALIVE_IDLE_S 30
#define KEEPALIVE_INTVL_S 15
#define METHOD_MAX 16
#define DETAIL_MAX 256
#define NS_PER_MS 1000000u

/* One socket curl asked us to watch. */
struct usock {
	struct event *ev;          /* owned */
	struct upstream *u;        /* borrowed back-pointer */
	struct usock *prev, *next; /* in u->socks */
	curl_socket_t fd;
	short kind;  /* what ev is registered for */
	bool parked; /* curl let go of it (idle connection); ev still registered */
};

enum xfer_state {
	XFER_RUNNING,   /* callbacks may run */
	XFER_DONE,      /* on_done ran or is running; waiting in the queue to be freed */
	XFER_CANCELLED, /* upstream_cancel'd; waiting in the queue to be removed and freed */
};

enum xfer_phase {
	PH_CONNECT,     /* curl's connect timeout applies */
	PH_WAIT_STATUS, /* request going out; first-byte timer armed */
	PH_RESPONSE,    /* status line seen; idle timer armed (unless paused) */
};

/* A URL parsed once by curl's URL API and handed to every transfer to it
 * (CURLOPT_CURLU): curl otherwise parses the URL and prints it back for
 * each transfer (~10k instructions, 6% of a small proxied request).
 * Kept per origin, at most ORIGIN_URLS_MAX (a Gemini origin has a URL per
 * model; past the bound curl parses as usual), and freed with the origin,
 * which outlives every transfer counted against it. */
struct parsed_url {
	struct parsed_url *next;
	CURLU *uh; /* owned */
	char url[];
};
#define ORIGIN_URLS_MAX 32

/*
 * What is known of the connections to one origin ("http://host:port" as
 * the URL writes it).  Before it reuses a connection, curl 7.88 walks
 * every connection it holds to the host, busy ones included, comparing
 * each at length; with thousands of streams open that walk became most
 * of the cost of starting a request (and quadratic in a burst).  When
 * every socket open to the origin belongs to a running transfer, no idle
 * connection can exist, and the transfer asks for a fresh one without
 * the walk.  Only for HTTP/1 origins: over HTTP/2 busy connections are
 * shared, so an origin that ever answered in HTTP/2, or an https one
 * not yet seen answering in HTTP/1.1, is left to curl.
 */
struct origin {
	struct origin *next; /* in u->origins */
	struct upstream *u;  /* borrowed back-pointer, for the socket callbacks */
	size_t open;         /* sockets open to it (CURLOPT_OPENSOCKETFUNCTION .. CLOSESOCKET) */
	size_t busy;         /* transfers in curl that may hold one of them */
	bool h1_seen;        /* a transfer completed over HTTP/1.x */
	bool multiplexed;    /* a transfer completed over HTTP/2 or later */
	bool https;
	struct parsed_url *urls; /* owned: URLs of this origin curl has parsed for us */
	size_t nurls;
	char key[];
};

struct upstream_xfer {
	struct upstream *u;                  /* borrowed: the client this transfer belongs to */
	struct origin *origin;               /* borrowed: owned by u */
	bool counted;                        /* counted in origin->busy */
	CURL *easy;                          /* owned; cleaned up in xfer_free */
	struct curl_slist *headers;          /* owned: req->headers; curl borrows it until xfer_free */
	struct curl_slist *own_tail;         /* last node of headers, linked on to header_set's */
	struct upstream_headers *header_set; /* a reference, or NULL */
	struct event *deadline_ev;           /* owned; first-byte / idle timer */
	struct upstream_xfer *prev, *next;   /* in u->xfers, which owns every transfer until xfer_free */
	struct upstream_xfer *qnext;         /* in u->queue while queued */
	bool queued;
	bool added;          /* in the multi handle */
	bool add_pending;    /* to be added by kick_cb (start from inside curl) */
	bool resume_pending; /* upstream_resume asked; kick_cb acts */
	bool paused;         /* write_cb returned CURL_WRITEFUNC_PAUSE */
	bool headers_done;   /* on_response ran (or was due) */
	enum xfer_state state;
	enum xfer_phase phase;
	enum upstream_result abort_result; /* why our callback told curl to stop, or OK */
	long status;                       /* last status line seen */
	int first_byte_ms, idle_ms;
	uint64_t t_start_ns, t_sent_ns, t_status_ns, t_data_ns, last_rx_ns;
	int (*on_response)(void *ud, long status, const char *content_type);
	int (*on_data)(void *ud, const char *p, size_t n);
	void (*on_done)(void *ud, enum upstream_result r, long status, const char *detail);
	void *ud;
	char errbuf[CURL_ERROR_SIZE]; /* curl's CURLOPT_ERRORBUFFER */
	char detail[DETAIL_MAX];      /* what on_done receives */
};

/* Finished easy handles are parked (easy_park) and kept for the next
 * transfer (up to this many per worker): a new handle costs allocations
 * and buffers on every request otherwise. */
#define EASY_SPARE_MAX 64
#define RECV_BUFFER_BYTES 2048 /* CURLOPT_BUFFERSIZE (curl's default: 16 KiB) */
#define ORIGINS_MAX 64         /* origins remembered per worker before unused ones go */

/* Per socket number: whether open_socket_cb opened it (so close_socket_cb
 * will see it closed), and its parked watcher if any. */
struct fdslot {
	bool ours;
	struct usock *parked; /* in u->socks too */
};

struct upstream_headers {
	struct curl_slist *list; /* owned: the lines, then "Expect:" unless one names Expect */
	struct upstream_headers_key key;
	unsigned refs; /* the client's slot, and each transfer sending it */
};

struct upstream {
	struct event_base *base;             /* borrowed; outlives u */
	CURLM *multi;                        /* owned */
	struct event *timer_ev;              /* owned; curl's single timeout */
	struct event *kick_ev;               /* owned; runs the queue on the next loop turn */
	struct usock *socks;                 /* owned list */
	struct upstream_xfer *xfers;         /* owned list: every transfer not yet freed */
	struct upstream_xfer *queue, *qtail; /* links into xfers: deferred work, FIFO */
	size_t active;                       /* transfers RUNNING */
	int in_curl;                         /* > 0 while a curl call of ours is on the stack */
	int in_user;                         /* > 0 while a caller's callback is on the stack */
	struct origin *origins;              /* owned list; outlives the multi handle */
	size_t norigins;
	CURL *spare[EASY_SPARE_MAX]; /* owned: parked handles kept for reuse (easy_park) */
	size_t nspare;
	struct fdslot *fds; /* owned, indexed by fd, nfds long (see sock_park) */
	size_t nfds;
	bool freeing;                                         /* upstream_free: no more spares */
	struct upstream_headers *hsets[UPSTREAM_HEADER_SETS]; /* references; see upstream_headers_put */
	uint64_t hsets_generation;                            /* the newest generation put */
};

const char *upstream_result_name(enum upstream_result r)
{
	switch (r) {
	case UPSTREAM_OK:
		return "ok";
	case UPSTREAM_ECONNECT:
		return "connect_failed";
	case UPSTREAM_ETIMEOUT_CONNECT:
		return "timeout_connect";
	case UPSTREAM_ETIMEOUT_FIRST_BYTE:
		return "timeout_first_byte";
	case UPSTREAM_ETIMEOUT_IDLE:
		return "timeout_idle";
	case UPSTREAM_EPROTOCOL:
		return "protocol_error";
	case UPSTREAM_EABORTED:
		return "aborted";
	case UPSTREAM_EOTHER:
		return "error";
	}
	return "unknown";
}

/* ---- small helpers -------------------------------------------------- */

static void arm_ns(struct upstream_xfer *x, uint64_t ns)
{
	struct timeval tv = { .tv_sec = (time_t)(ns / 1000000000u),
		              .tv_usec = (suseconds_t)((ns % 1000000000u) / 1000u) };
	evtimer_add(x->deadline_ev, &tv);
}

/* x->detail = formatted text, cut at a '?' so a URL query (Gemini's ?key=)
 * that some message might quote never reaches a log. */
static void set_detail(struct upstream_xfer *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_detail(struct upstream_xfer *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->detail, sizeof(x->detail), fmt, ap);
	va_end(ap);
	x->detail[strcspn(x->detail, "?\r\n")] = '\0';
}

static void queue_push(struct upstream_xfer *x)
{
	struct upstream *u = x->u;
	if (x->queued)
		return;
	x->queued = true;
	x->qnext = NULL;
	if (u->qtail)
		u->qtail->qnext = x;
	else
		u->queue = x;
	u->qtail = x;
	event_active(u->kick_ev, EV_TIMEOUT, 0);
}

static void xfer_unlink(struct upstream_xfer *x)
{
	struct upstream *u = x->u;
	if (x->prev)
		x->prev->next = x->next;
	else
		u->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
}

/* ---- origins ----------------------------------------------------- */

static void origin_free(struct origin *o)
{
	for (struct parsed_url *pu = o->urls, *next; pu; pu = next) {
		next = pu->next;
		curl_url_cleanup(pu->uh);
		free(pu);
	}
	free(o);
}

/* url parsed by curl (with the flags curl itself would use), or NULL when
 * it is not kept: the transfer then gives curl the text only. */
static CURLU *origin_parsed_url(struct origin *o, const char *url)
{
	for (struct parsed_url *pu = o->urls; pu; pu = pu->next) {
		if (strcmp(pu->url, url) == 0)
			return pu->uh;
	}
	if (o->nurls >= ORIGIN_URLS_MAX)
		return NULL;
	CURLU *uh = curl_url();
	if (!uh || curl_url_set(uh, CURLUPART_URL, url, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) !=
	               CURLUE_OK) {
		curl_url_cleanup(uh);
		return NULL; /* curl reports the error when the transfer runs */
	}
	size_t n = strlen(url);
	struct parsed_url *pu = xmalloc(sizeof(*pu) + n + 1);
	memcpy(pu->url, url, n + 1);
	pu->uh = uh;
	pu->next = o->urls;
	o->urls = pu;
	o->nurls++;
	return uh;
}

/* The origin of url (checked by url_check: "http(s)://" then more). */
static struct origin *origin_of(struct upstream *u, const char *url, bool https)
{
	const char *host = url + (https ? 8 : 7);
	size_t n = (size_t)(host - url) + strcspn(host, "/?#");
	for (struct origin *o = u->origins; o; o = o->next) {
		if (strlen(o->key) == n && strncasecmp(o->key, url, n) == 0)
			return o;
	}
	/* Bounded: origins nothing uses any more (a provider's old base URL)
	 * go when the list grows.  Only a counted transfer or an open socket
	 * holds a pointer to one. */
	if (u->norigins >= ORIGINS_MAX) {
		for (struct origin **pp = &u->origins; *pp;) {
			struct origin *dead = *pp;
			if (dead->open == 0 && dead->busy == 0) {
				*pp = dead->next;
				origin_free(dead);
				u->norigins--;
			} else {
				pp = &dead->next;
			}
		}
	}
	struct origin *o = xcalloc(1, sizeof(*o) + n + 1);
	u->norigins++;
	memcpy(o->key, url, n);
	o->https = https;
	o->u = u;
	o->next = u->origins;
	u->origins = o;
	return o;
}

/* Whether a new transfer to o can only get a fresh connection. */
static bool origin_no_idle(const struct origin *o)
{
	if (o->multiplexed || (o->https && !o->h1_seen))
		return false;
	return o->open <= o->busy;
}

/* x no longer holds a connection of its origin (it left curl). */
static void origin_release(struct upstream_xfer *x)
{
	if (!x->counted)
		return;
	x->counted = false;
	x->origin->busy--;
}

static void usock_free(struct upstream *u, struct usock *s);

/* u->fds[fd] (fd >= 0), the table grown to hold it. */
static struct fdslot *fd_slot(struct upstream *u, curl_socket_t fd)
{
	if ((size_t)fd >= u->nfds) {
		size_t n = u->nfds ? u->nfds : 64;
		while (n <= (size_t)fd)
			n *= 2;
		struct fdslot *t = xrealloc(u->fds, n * sizeof(*t));
		memset(t + u->nfds, 0, (n - u->nfds) * sizeof(*t));
		u->fds = t;
		u->nfds = n;
	}
	return &u->fds[fd];
}

static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct origin *o = clientp;
	curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (fd == CURL_SOCKET_BAD)
		return fd;
	fd_slot(o->u, fd)->ours = true;
	o->open++;
	return fd;
}

static int close_socket_cb(void *clientp, curl_socket_t fd)
{
	struct origin *o = clientp;
	struct upstream *u = o->u;
	if (o->open)
		o->open--;
	if (fd >= 0 && (size_t)fd < u->nfds) {
		struct fdslot *slot = &u->fds[fd];
		if (slot->parked)
			usock_free(u, slot->parked); /* while fd still names this socket */
		slot->ours = false;
	}
	return close(fd);
}

/* curl_easy_setopt unless an earlier option failed: rc keeps the first error. */
#define EASY_SET(rc, e, opt, val)                                                                            \
	do {                                                                                                 \
		if ((rc) == CURLE_OK)                                                                        \
			(rc) = curl_easy_setopt((e), (opt), (val));                                          \
	} while (0)

/* A handle kept for the next transfer keeps the options every transfer
 * sets alike (setup_easy's "fresh" part; curl_easy_reset and setting
 * them again cost more than a small request's own work).  What pointed
 * into the transfer goes, and the copy of its body. */
static CURLcode easy_park(CURL *e)
{
	CURLcode rc = CURLE_OK;
#define SET(opt, val) EASY_SET(rc, e, opt, val)
	SET(CURLOPT_COPYPOSTFIELDS, (char *)NULL);
	SET(CURLOPT_CURLU, (CURLU *)NULL); /* owned by an origin that may go */
	SET(CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
	SET(CURLOPT_PRIVATE, (void *)NULL);
	SET(CURLOPT_ERRORBUFFER, (char *)NULL);
	SET(CURLOPT_HEADERDATA, (void *)NULL);
	SET(CURLOPT_WRITEDATA, (void *)NULL);
	SET(CURLOPT_PREREQDATA, (void *)NULL);
	SET(CURLOPT_OPENSOCKETDATA, (void *)NULL);
	SET(CURLOPT_CLOSESOCKETDATA, (void *)NULL);
#undef SET
	return rc;
}

static void hset_release(struct upstream_headers *h)
{
	if (!h || --h->refs > 0)
		return;
	for (struct curl_slist *l = h->list; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data)); /* an auth line holds a secret */
	curl_slist_free_all(h->list);
	free(h);
}

/* The transfer's own header nodes, cut from the set's they lead into. */
static void xfer_headers_free(struct upstream_xfer *x)
{
	if (x->own_tail)
		x->own_tail->next = NULL;
	curl_slist_free_all(x->headers);
	hset_release(x->header_set);
	x->headers = x->own_tail = NULL;
	x->header_set = NULL;
}

/* The one place a transfer is freed.  Never inside a curl callback. */
static void xfer_free(struct upstream_xfer *x)
{
	struct upstream *u = x->u;
	if (x->added)
		curl_multi_remove_handle(u->multi, x->easy);
	origin_release(x);
	if (x->easy) {
		if (u->nspare < EASY_SPARE_MAX && !u->freeing && easy_park(x->easy) == CURLE_OK) {
			u->spare[u->nspare++] = x->easy;
		} else {
			curl_easy_cleanup(x->easy);
		}
	}
	xfer_headers_free(x);
	if (x->deadline_ev)
		event_free(x->deadline_ev);
	xfer_unlink(x);
	free(x);
}

/* End x with r: detach it from curl, tell the caller, queue the free.
 * Only from our own event callbacks (never inside curl). */
static void xfer_finish(struct upstream_xfer *x, enum upstream_result r)
{
	struct upstream *u = x->u;
	x->state = XFER_DONE;
	u->active--;
	evtimer_del(x->deadline_ev);
	long status = x->status;
	if (!x->headers_done || status < 200) {
		long code = 0;
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
		status = code;
	}
	if (x->added) {
		long ver = 0;
		if (r == UPSTREAM_OK && curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &ver) == CURLE_OK) {
			if (ver == CURL_HTTP_VERSION_1_0 || ver == CURL_HTTP_VERSION_1_1)
				x->origin->h1_seen = true;
			else if (ver != CURL_HTTP_VERSION_NONE)
				x->origin->multiplexed = true;
		}
		curl_multi_remove_handle(u->multi, x->easy);
		x->added = false;
	}
	origin_release(x);
	if (r == UPSTREAM_OK)
		x->detail[0] = '\0';
	u->in_user++;
	x->on_done(x->ud, r, status, x->detail);
	u->in_user--;
	queue_push(x);
}

/* Which upstream_result a curl outcome is, with x->detail filled. */
static enum upstream_result classify(struct upstream_xfer *x, CURLcode rc)
{
	if (rc == CURLE_OK)
		return UPSTREAM_OK;
	if (x->abort_result != UPSTREAM_OK)
		return x->abort_result; /* detail set where we aborted */
	const char *msg = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
	set_detail(x, "%s", msg);
	switch (rc) {
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_OUT_OF_MEMORY:
	case CURLE_FAILED_INIT:
	case CURLE_BAD_FUNCTION_ARGUMENT:
		return UPSTREAM_EOTHER;
	default:
		break;
	}
	if (x->phase == PH_CONNECT) /* the request never left */
		return rc == CURLE_OPERATION_TIMEDOUT ? UPSTREAM_ETIMEOUT_CONNECT : UPSTREAM_ECONNECT;
	switch (rc) {
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_HTTP3:
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_SSL_CONNECT_ERROR:
		return UPSTREAM_EPROTOCOL;
	default:
		return UPSTREAM_EOTHER;
	}
}

static void check_multi_info(struct upstream *u)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(u->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURLcode rc = msg->data.result;
		char *priv = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		struct upstream_xfer *x = (struct upstream_xfer *)(void *)priv;
		if (!x || x->state != XFER_RUNNING)
			continue; /* cancelled: kick_cb removes it */
		xfer_finish(x, classify(x, rc));
	}
}

/* ---- curl -> libevent glue ------------------------------------------ */

static void sock_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;
	if (fd >= 0 && (size_t)fd < u->nfds && u->fds[fd].parked) {
		usock_free(u, u->fds[fd].parked); /* an idle connection stirred: see sock_park */
		return;
	}
	int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	int running;
	u->in_curl++;
	curl_multi_socket_action(u->multi, fd, action, &running);
	u->in_curl--;
	check_multi_info(u);
}

static void timer_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;
	int running;
	u->in_curl++;
	curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	u->in_curl--;
	check_multi_info(u);
}

static void usock_free(struct upstream *u, struct usock *s)
{
	if (s->parked && u->fds && s->fd >= 0 && (size_t)s->fd < u->nfds && u->fds[s->fd].parked == s)
		u->fds[s->fd].parked = NULL;
	if (s->prev)
		s->prev->next = s->next;
	else
		u->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	event_free(s->ev);
	free(s);
}

/*
 * Parking.  When a transfer ends, curl lets go of its connection's socket
 * (CURL_POLL_REMOVE) and asks for it again when the next transfer reuses
 * the connection: under steady load that is an epoll_ctl DEL and ADD for
 * every request.  A socket we opened ourselves (open_socket_cb; only then
 * does close_socket_cb see it closed) keeps its watcher registered
 * instead, parked under its number.  If curl asks for it again, the
 * watcher is handed back, unchanged when the events wanted are the same.
 * If the parked watcher fires first (the server closed the idle
 * connection, or sent something it should not have), it is removed then:
 * curl is not told, it finds a dead connection itself when it next looks.
 * When curl closes the socket, close_socket_cb frees the watcher first.
 * Sockets curl made otherwise (a resolver's socket pair) are never
 * parked: their number could be reused behind our back.
 */
static void sock_park(struct upstream *u, struct usock *us)
{
	struct fdslot *slot = (us->fd >= 0 && (size_t)us->fd < u->nfds) ? &u->fds[us->fd] : NULL;
	if (!slot || !slot->ours || slot->parked) {
		usock_free(u, us);
		return;
	}
	us->parked = true;
	slot->parked = us;
}

static struct usock *sock_unpark(struct upstream *u, curl_socket_t fd)
{
	if (fd < 0 || (size_t)fd >= u->nfds || !u->fds[fd].parked)
		return NULL;
	struct usock *us = u->fds[fd].parked;
	u->fds[fd].parked = NULL;
	us->parked = false;
	return us;
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what curl wants, or stop watching. */
static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct upstream *u = userp;
	struct usock *us = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (us)
			sock_park(u, us); /* curl forgets the assignment itself */
		return 0;
	}
	short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) |
	                     EV_PERSIST);
	if (!us && (us = sock_unpark(u, s)) != NULL) {
		curl_multi_assign(u->multi, s, us);
		if (us->kind == kind)
			return 0; /* still registered for just that */
	}
	if (!us) {
		us = xcalloc(1, sizeof(*us));
		us->u = u;
		us->fd = s;
		us->ev = event_new(u->base, s, kind, sock_event_cb, u);
		if (!us->ev) {
			free(us);
			return -1;
		}
		us->next = u->socks;
		if (u->socks)
			u->socks->prev = us;
		u->socks = us;
		curl_multi_assign(u->multi, s, us);
	} else {
		event_del(us->ev);
		event_assign(us->ev, u->base, s, kind, sock_event_cb, u);
	}
	us->kind = kind;
	event_add(us->ev, NULL);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: only (re)arm or delete; curl runs from timer_event_cb. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct upstream *u = userp;
	if (timeout_ms < 0) {
		evtimer_del(u->timer_ev);
	} else {
		struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
		evtimer_add(u->timer_ev, &tv);
	}
	return 0;
}

/* ---- per-transfer curl callbacks (inside curl: never remove or free) ---- */

/* CURLOPT_PREREQFUNCTION: connected (or reused); the request goes out now. */
static int prereq_cb(void *clientp, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
	struct upstream_xfer *x = clientp;
	if (x->state != XFER_RUNNING)
		return CURL_PREREQFUNC_ABORT;
	x->t_sent_ns = clock_mono_ns();
	x->phase = PH_WAIT_STATUS;
	arm_ns(x, (uint64_t)x->first_byte_ms * NS_PER_MS);
	return CURL_PREREQFUNC_OK;
}

static long parse_status(const char *p, size_t n)
{
	/* "HTTP/1.1 200 OK" or "HTTP/2 200" */
	size_t i = 5;
	while (i < n && p[i] != ' ')
		i++;
	while (i < n && p[i] == ' ')
		i++;
	if (i + 3 > n)
		return 0;
	long code = 0;
	for (size_t k = 0; k < 3; k++) {
		if (p[i + k] < '0' || p[i + k] > '9')
			return 0;
		code = code * 10 + (p[i + k] - '0');
	}
	return code;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *arg)
{
	struct upstream_xfer *x = arg;
	size_t n = size * nitems;
	if (x->state != XFER_RUNNING)
		return 0; /* cancelled: stop (any value != n aborts) */
	/* Activity is stamped at the first status line and at the end of each
	 * head, not on every header line (a head arrives in one read or a
	 * few, well within the idle limit). */
	if (x->phase != PH_RESPONSE) {
		uint64_t now = clock_mono_ns();
		x->last_rx_ns = now;
		x->phase = PH_RESPONSE;
		x->t_status_ns = now;
		arm_ns(x, (uint64_t)x->idle_ms * NS_PER_MS);
	}
	if (x->headers_done)
		return n; /* trailers */
	if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		x->status = parse_status(buf, n);
		return n;
	}
	if (!(n == 2 && buf[0] == '\r' && buf[1] == '\n') && !(n == 1 && buf[0] == '\n'))
		return n;
	/* End of a response head. */
	x->last_rx_ns = clock_mono_ns();
	if (x->status == 0)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->status >= 100 && x->status < 200)
		return n; /* interim (103 Early Hints, ...): the real one follows */
	x->headers_done = true;
	if (!x->on_response)
		return n;
	char *ct = NULL;
	curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
	x->u->in_user++;
	int r = x->on_response(x->ud, x->status, ct);
	x->u->in_user--;
	if (x->state != XFER_RUNNING)
		return 0;
	if (r != 0) {
		x->abort_result = UPSTREAM_EABORTED;
		set_detail(x, "aborted by on_response");
		return 0;
	}
	return n;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct upstream_xfer *x = arg;
	size_t n = size * nmemb;
	if (x->state != XFER_RUNNING)
		return CURL_WRITEFUNC_ERROR;
	uint64_t now = clock_mono_ns();
	x->last_rx_ns = now;
	if (!x->t_data_ns)
		x->t_data_ns = now;
	if (!x->on_data || n == 0)
		return n;
	x->u->in_user++;
	int r = x->on_data(x->ud, p, n);
	x->u->in_user--;
	if (x->state != XFER_RUNNING)
		return CURL_WRITEFUNC_ERROR; /* cancelled from on_data */
	if (r == 0)
		return n;
	if (r == UPSTREAM_PAUSE) {
		x->paused = true;
		evtimer_del(x->deadline_ev); /* the idle clock stops while we hold it back */
		return CURL_WRITEFUNC_PAUSE;
	}
	x->abort_result = UPSTREAM_EABORTED;
	set_detail(x, "aborted by on_data");
	return CURL_WRITEFUNC_ERROR;
}

/* ---- deferred work -------------------------------------------------- */

static void xfer_add(struct upstream_xfer *x)
{
	x->add_pending = false;
	if (curl_multi_add_handle(x->u->multi, x->easy) == CURLM_OK) {
		x->added = true;
		return;
	}
	set_detail(x, "could not add the transfer to curl");
	xfer_finish(x, UPSTREAM_EOTHER);
}

static void xfer_unpause(struct upstream_xfer *x)
{
	struct upstream *u = x->u;
	x->paused = false;
	x->last_rx_ns = clock_mono_ns();
	if (x->phase == PH_RESPONSE)
		arm_ns(x, (uint64_t)x->idle_ms * NS_PER_MS);
	u->in_curl++;
	CURLcode rc = curl_easy_pause(x->easy, CURLPAUSE_CONT); /* may call write_cb right here */
	u->in_curl--;
	if (rc != CURLE_OK && x->state == XFER_RUNNING) {
		if (x->abort_result == UPSTREAM_OK)
			set_detail(x, "resume failed: %s", curl_easy_strerror(rc));
		xfer_finish(x, x->abort_result != UPSTREAM_OK ? x->abort_result : UPSTREAM_EOTHER);
	}
}

/* The queue, on the loop turn after something was pushed. */
static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;
	struct upstream_xfer *x = u->queue, *next;
	u->queue = u->qtail = NULL; /* pushes from here on run on the next turn */
	for (; x; x = next) {
		next = x->qnext;
		x->queued = false;
		x->qnext = NULL;
		if (x->state != XFER_RUNNING) {
			xfer_free(x);
			continue;
		}
		if (x->add_pending) {
			xfer_add(x);
			continue;
		}
		if (x->resume_pending) {
			x->resume_pending = false;
			if (x->paused)
				xfer_unpause(x);
		}
	}
	check_multi_info(u); /* a resume may have let a transfer end */
}

/* Our first-byte / idle deadline. */
static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_xfer *x = arg;
	if (x->state != XFER_RUNNING || x->paused)
		return;
	if (x->phase == PH_WAIT_STATUS) {
		set_detail(x, "no response status within %d ms of sending the request", x->first_byte_ms);
		xfer_finish(x, UPSTREAM_ETIMEOUT_FIRST_BYTE);
		return;
	}
	if (x->phase != PH_RESPONSE)
		return;
	uint64_t now = clock_mono_ns();
	uint64_t due = x->last_rx_ns + (uint64_t)x->idle_ms * NS_PER_MS;
	if (due > now + NS_PER_MS) {
		arm_ns(x, due - now); /* activity since it was armed */
		return;
	}
	set_detail(x, "no data from upstream for %d ms", x->idle_ms);
	xfer_finish(x, UPSTREAM_ETIMEOUT_IDLE);
}

/* ---- public API ----------------------------------------------------- */

struct upstream *upstream_new(struct event_base *base)
{
	if (!base)
		return NULL;
	struct upstream *u = xcalloc(1, sizeof(*u));
	u->base = base;
	u->multi = curl_multi_init();
	u->timer_ev = evtimer_new(base, timer_event_cb, u);
	u->kick_ev = event_new(base, -1, 0, kick_cb, u);
	if (!u->multi || !u->timer_ev || !u->kick_ev)
		goto fail;
	CURLMcode rc = CURLM_OK;
#define MSET(opt, val)                                                                                       \
	do {                                                                                                 \
		if (rc == CURLM_OK)                                                                          \
			rc = curl_multi_setopt(u->multi, opt, val);                                          \
	} while (0)
	MSET(CURLMOPT_SOCKETFUNCTION, sock_cb);
	MSET(CURLMOPT_SOCKETDATA, u);
	MSET(CURLMOPT_TIMERFUNCTION, timer_cb);
	MSET(CURLMOPT_TIMERDATA, u);
	MSET(CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	MSET(CURLMOPT_MAXCONNECTS, (long)POOL_MAX_CONNS);
#undef MSET
	if (rc != CURLM_OK)
		goto fail;
	return u;
fail:
	upstream_free(u);
	return NULL;
}

void upstream_free(struct upstream *u)
{
	if (!u)
		return;
	if (u->in_user || u->in_curl) {
		log_error(NULL, "upstream_free called from inside an upstream callback");
		abort();
	}
	u->freeing = true;
	for (struct upstream_xfer *x = u->xfers, *next; x; x = next) {
		next = x->next;
		xfer_free(x); /* removing an unfinished one closes its connection */
	}
	if (u->multi)
		curl_multi_cleanup(u->multi); /* may still call sock_cb / timer_cb */
	for (struct usock *s = u->socks, *next; s; s = next) {
		next = s->next;
		usock_free(u, s);
	}
	if (u->timer_ev)
		event_free(u->timer_ev);
	if (u->kick_ev)
		event_free(u->kick_ev);
	for (size_t i = 0; i < u->nspare; i++)
		curl_easy_cleanup(u->spare[i]);
	for (size_t i = 0; i < UPSTREAM_HEADER_SETS; i++)
		hset_release(u->hsets[i]);                        /* after the transfers that held them */
	for (struct origin *o = u->origins, *next; o; o = next) { /* after curl closed its sockets */
		next = o->next;
		origin_free(o);
	}
	free(u->fds);
	free(u);
}

size_t upstream_active(const struct upstream *u)
{
	return u ? u->active : 0;
}

static bool method_ok(const char *m)
{
	size_t n = strlen(m);
	if (n == 0 || n > METHOD_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (m[i] < 'A' || m[i] > 'Z')
			return false;
	}
	return true;
}

static bool header_ok(const char *h)
{
	size_t n = strnlen(h, UPSTREAM_MAX_HEADER_LEN + 1);
	if (n == 0 || n > UPSTREAM_MAX_HEADER_LEN || h[0] == ':' || h[0] == ' ')
		return false;
	if (strpbrk(h, "\r\n"))
		return false; /* no request smuggling through a header value */
	return strchr(h, ':') || strchr(h, ';');
}

/* 0 when url is http(s); *https says which.  Only the scheme is checked
 * here (curl parses the rest, and a URL it cannot parse ends the transfer
 * with CURLE_URL_MALFORMAT): parsing it twice per request was one of the
 * dearest steps of starting a transfer. */
static int url_check(const char *url, bool *https)
{
	if (strncasecmp(url, "https://", 8) == 0 && url[8])
		*https = true;
	else if (strncasecmp(url, "http://", 7) == 0 && url[7])
		*https = false;
	else
		return -1;
	return 0;
}

static bool request_ok(const struct upstream_request *req, bool *https)
{
	if (!req->url || !req->on_done || req->connect_timeout_ms <= 0 || req->first_byte_timeout_ms <= 0 ||
	    req->idle_timeout_ms <= 0)
		return false;
	if (req->method && !method_ok(req->method))
		return false;
	if (req->nheaders > UPSTREAM_MAX_HEADERS || (req->nheaders && !req->headers))
		return false;
	if (req->body_len && !req->body)
		return false;
	for (size_t i = 0; i < req->nheaders; i++) {
		if (!req->headers[i] || !header_ok(req->headers[i]))
			return false;
	}
	return url_check(req->url, https) == 0;
}

static bool names_header(const char *line, const char *name, size_t n)
{
	return strncasecmp(line, name, n) == 0 && (line[n] == ':' || line[n] == ';');
}

static bool has_header(const struct upstream_request *req, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < req->nheaders; i++) {
		if (names_header(req->headers[i], name, n))
			return true;
	}
	return false;
}

static size_t hset_slot(const struct upstream_headers_key *k)
{
	uint64_t v[4] = { k->generation, k->a, k->b, k->c };
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < 4; i++)
		h = (h ^ v[i]) * 1099511628211ull;
	return (size_t)(h ^ (h >> 32)) & (UPSTREAM_HEADER_SETS - 1);
}

static bool hkey_eq(const struct upstream_headers_key *x, const struct upstream_headers_key *y)
{
	return x->generation == y->generation && x->a == y->a && x->b == y->b && x->c == y->c;
}

struct upstream_headers *upstream_headers_get(struct upstream *u, const struct upstream_headers_key *k)
{
	struct upstream_headers *h = u->hsets[hset_slot(k)];
	return h && hkey_eq(&h->key, k) ? h : NULL;
}

struct upstream_headers *upstream_headers_put(struct upstream *u, const struct upstream_headers_key *k,
                                              const char *const *lines, size_t n)
{
	if (n > UPSTREAM_MAX_HEADERS || (n && !lines))
		return NULL;
	bool expect = false;
	for (size_t i = 0; i < n; i++) {
		if (!lines[i] || !header_ok(lines[i]))
			return NULL;
		expect = expect || names_header(lines[i], "Expect", 6);
	}
	struct upstream_headers *h = xcalloc(1, sizeof(*h));
	h->key = *k;
	h->refs = 1;
	struct curl_slist **tail = &h->list;
	for (size_t i = 0; i <= n; i++) {
		if (i == n && expect)
			break;
		struct curl_slist *l = curl_slist_append(NULL, i < n ? lines[i] : "Expect:");
		if (!l) {
			hset_release(h);
			return NULL;
		}
		*tail = l;
		tail = &l->next;
	}
	if (k->generation > u->hsets_generation) { /* the older sets are not asked for again */
		for (size_t i = 0; i < UPSTREAM_HEADER_SETS; i++) {
			hset_release(u->hsets[i]);
			u->hsets[i] = NULL;
		}
		u->hsets_generation = k->generation;
	}
	size_t slot = hset_slot(k);
	hset_release(u->hsets[slot]);
	u->hsets[slot] = h;
	return h;
}

/* Build x->headers and every option of x->easy: all of them on a fresh
 * handle, the ones that differ per transfer on a parked one (easy_park).
 * CURLE_OK or the first error. */
static CURLcode setup_easy(struct upstream_xfer *x, const struct upstream_request *req, bool https,
                           bool fresh)
{
	CURL *e = x->easy;
	for (size_t i = 0; i < req->nheaders; i++) {
		struct curl_slist *l = curl_slist_append(x->headers, req->headers[i]);
		if (!l)
			return CURLE_OUT_OF_MEMORY;
		x->headers = l;
	}
	/* No "Expect: 100-continue" round trip (up to 1 s) for bodies over 1 KiB
	 * (a header set has its own "Expect:"). */
	if (!req->header_set && !has_header(req, "Expect")) {
		struct curl_slist *l = curl_slist_append(x->headers, "Expect:");
		if (!l)
			return CURLE_OUT_OF_MEMORY;
		x->headers = l;
	}
	struct curl_slist *hlist = x->headers;
	if (req->header_set) {
		x->header_set = req->header_set;
		x->header_set->refs++;
		if (x->headers) {
			for (x->own_tail = x->headers; x->own_tail->next; x->own_tail = x->own_tail->next)
				;
			x->own_tail->next = x->header_set->list;
		} else {
			hlist = x->header_set->list;
		}
	}

	CURLcode rc = CURLE_OK;
#define SET(opt, val) EASY_SET(rc, e, opt, val)
	if (fresh) {
		SET(CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
		SET(CURLOPT_CLOSESOCKETFUNCTION, close_socket_cb);
		SET(CURLOPT_PROTOCOLS_STR, "http,https");
		SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
		SET(CURLOPT_FOLLOWLOCATION, 0L);
		/* curl's receive buffer lives as long as the transfer: 16 KiB by
		 * default, the largest single cost of an open stream.  Answers and
		 * SSE events arrive in pieces far smaller; a bigger answer only
		 * takes a few more reads. */
		SET(CURLOPT_BUFFERSIZE, (long)RECV_BUFFER_BYTES);
		SET(CURLOPT_NOSIGNAL, 1L);
		SET(CURLOPT_TCP_KEEPALIVE, 1L);
		SET(CURLOPT_TCP_KEEPIDLE, (long)KEEPALIVE_IDLE_S);
		SET(CURLOPT_TCP_KEEPINTVL, (long)KEEPALIVE_INTVL_S);
		SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
		SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L); /* a proxy's CONNECT answer is not the response */
		SET(CURLOPT_HEADERFUNCTION, header_cb);
		SET(CURLOPT_WRITEFUNCTION, write_cb);
		SET(CURLOPT_PREREQFUNCTION, prereq_cb);
	}
	/* The text for curl's messages and CURLINFO_EFFECTIVE_URL; the parsed
	 * form, when there is one, is what curl connects with. */
	SET(CURLOPT_URL, req->url);
	SET(CURLOPT_CURLU, origin_parsed_url(x->origin, req->url));
	SET(CURLOPT_OPENSOCKETDATA, (void *)x->origin);
	SET(CURLOPT_CLOSESOCKETDATA, (void *)x->origin);
	SET(CURLOPT_FRESH_CONNECT, origin_no_idle(x->origin) ? 1L : 0L);
	SET(CURLOPT_PRIVATE, (void *)x);
	SET(CURLOPT_ERRORBUFFER, x->errbuf);
	SET(CURLOPT_HTTPHEADER, hlist);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);
	/* https: wait for a connection that may multiplex rather than open another */
	SET(CURLOPT_PIPEWAIT, https ? 1L : 0L);
	/* Only when asked: curl spends as much building the Accept-Encoding
	 * line and its decoders as on the rest of a small request, and a chat
	 * answer gains little from compression (a stream must not wait on a
	 * compressor's buffer anyway).  Embeddings, which can run to
	 * megabytes of numbers, ask for it. */
	SET(CURLOPT_ACCEPT_ENCODING, req->compressed ? "" : (const char *)NULL);
	SET(CURLOPT_HEADERDATA, (void *)x);
	SET(CURLOPT_WRITEDATA, (void *)x);
	SET(CURLOPT_PREREQDATA, (void *)x);

	const char *m = req->method ? req->method : (req->body_len ? "POST" : "GET");
	bool with_body =
	    req->body_len > 0 || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
	/* Every method option is set, whatever the handle did before. */
	if (with_body) {
		SET(CURLOPT_NOBODY, 0L);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		SET(CURLOPT_COPYPOSTFIELDS,
		    req->body_len ? (const char *)req->body : ""); /* curl owns the copy */
		SET(CURLOPT_CUSTOMREQUEST, strcmp(m, "POST") != 0 ? m : (const char *)NULL);
	} else if (strcmp(m, "HEAD") == 0) {
		SET(CURLOPT_HTTPGET, 1L);
		SET(CURLOPT_CUSTOMREQUEST, (const char *)NULL);
		SET(CURLOPT_NOBODY, 1L);
	} else {
		SET(CURLOPT_HTTPGET, 1L);
		SET(CURLOPT_CUSTOMREQUEST, strcmp(m, "GET") != 0 ? m : (const char *)NULL);
	}
#undef SET
	return rc;
}

struct upstream_xfer *upstream_start(struct upstream *u, const struct upstream_request *req)
{
	bool https = false;
	if (!u || !req || !request_ok(req, &https))
		return NULL;
	struct upstream_xfer *x = xcalloc(1, sizeof(*x));
	x->u = u;
	x->state = XFER_RUNNING;
	x->phase = PH_CONNECT;
	x->first_byte_ms = req->first_byte_timeout_ms;
	x->idle_ms = req->idle_timeout_ms;
	x->on_response = req->on_response;
	x->on_data = req->on_data;
	x->on_done = req->on_done;
	x->ud = req->ud;
	x->origin = origin_of(u, req->url, https);
	bool fresh = u->nspare == 0;
	x->easy = fresh ? curl_easy_init() : u->spare[--u->nspare];
	x->deadline_ev = evtimer_new(u->base, deadline_cb, x);
	if (!x->easy || !x->deadline_ev || setup_easy(x, req, https, fresh) != CURLE_OK)
		goto fail;

	x->t_start_ns = clock_mono_ns();
	x->next = u->xfers;
	if (u->xfers)
		u->xfers->prev = x;
	u->xfers = x;
	if (u->in_curl) {
		/* curl_multi_add_handle inside a curl callback would be refused. */
		x->add_pending = true;
		queue_push(x);
	} else if (curl_multi_add_handle(u->multi, x->easy) != CURLM_OK) {
		xfer_unlink(x);
		goto fail;
	} else {
		x->added = true;
	}
	x->counted = true;
	x->origin->busy++;
	u->active++;
	return x;
fail:
	if (x->easy)
		curl_easy_cleanup(x->easy);
	xfer_headers_free(x);
	if (x->deadline_ev)
		event_free(x->deadline_ev);
	free(x);
	return NULL;
}

void upstream_resume(struct upstream_xfer *x)
{
	if (!x || x->state != XFER_RUNNING)
		return;
	x->resume_pending = true;
	queue_push(x);
}

void upstream_cancel(struct upstream_xfer *x)
{
	if (!x || x->state != XFER_RUNNING)
		return;
	x->state = XFER_CANCELLED;
	x->u->active--;
	evtimer_del(x->deadline_ev);
	queue_push(x);
}

static int64_t since_start_us(const struct upstream_xfer *x, uint64_t t)
{
	return t ? (int64_t)((t - x->t_start_ns) / 1000u) : -1;
}

void upstream_xfer_timing(const struct upstream_xfer *x, struct upstream_timing *t)
{
	memset(t, 0, sizeof(*t));
	t->sent_us = since_start_us(x, x->t_sent_ns);
	t->status_us = since_start_us(x, x->t_status_ns);
	t->first_data_us = since_start_us(x, x->t_data_ns);
	long conns = -1, ver = 0;
	curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &conns);
	curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &ver);
	t->reused = x->t_sent_ns && conns == 0;
	switch (ver) {
	case CURL_HTTP_VERSION_1_0:
		t->http_version = 10;
		break;
	case CURL_HTTP_VERSION_1_1:
		t->http_version = 11;
		break;
	case CURL_HTTP_VERSION_2_0:
		t->http_version = 20;
		break;
	case CURL_HTTP_VERSION_3:
		t->http_version = 30;
		break;
	default:
		t->http_version = 0;
	}
}

const char *upstream_response_header(struct upstream_xfer *x, const char *name)
{
	struct curl_header *h = NULL;
	if (!x || !name || x->state != XFER_RUNNING)
		return NULL;
	if (curl_easy_header(x->easy, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h)
		return NULL;
	/* index 0 is the first; ask for the last when repeated */
	if (h->amount > 1 &&
	    curl_easy_header(x->easy, name, h->amount - 1, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return NULL;
	return h->value;
}
