/*
 * waker.h — wake an event loop from another thread.
 *
 * Worker event loops run without libevent's locks (EVENT_BASE_FLAG_NOLOCK:
 * a lock/unlock pair on every event operation, some forty per proxied
 * request, for the two things that ever come from another thread: a new
 * configuration snapshot and the stop).  Those come through a waker
 * instead: an eventfd watched by the loop; waker_signal writes to it from
 * any thread, and the loop runs the callback on its own thread.  Several
 * signals before the loop looks are one callback run.
 */
#ifndef FUSION_UTIL_WAKER_H
#define FUSION_UTIL_WAKER_H

struct event_base;
struct waker;

/* On base's thread (or before its loop starts).  NULL if the eventfd or
 * the event cannot be made. */
struct waker *waker_new(struct event_base *base, void (*cb)(void *arg), void *arg);
/* Any thread, any time between waker_new and waker_free. */
void waker_signal(struct waker *w);
/* On base's thread (or after its loop ended).  NULL is a no-op. */
void waker_free(struct waker *w);

#endif
