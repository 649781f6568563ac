/*
 * waker.c — see waker.h.
 */
#include "util/waker.h"

#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/alloc.h"

struct waker {
	int fd;
	struct event *ev;
	void (*cb)(void *arg);
	void *arg;
};

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct waker *w = arg;
	uint64_t n;
	if (read(w->fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	w->cb(w->arg);
}

struct waker *waker_new(struct event_base *base, void (*cb)(void *arg), void *arg)
{
	struct waker *w = xcalloc(1, sizeof(*w));
	w->cb = cb;
	w->arg = arg;
	w->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->fd < 0) {
		free(w);
		return NULL;
	}
	w->ev = event_new(base, w->fd, EV_READ | EV_PERSIST, on_readable, w);
	if (!w->ev || event_add(w->ev, NULL) != 0) {
		if (w->ev)
			event_free(w->ev);
		close(w->fd);
		free(w);
		return NULL;
	}
	return w;
}

void waker_signal(struct waker *w)
{
	uint64_t one = 1;
	/* Only EAGAIN can fail here (the counter at its maximum), and then a
	 * wake is pending anyway. */
	ssize_t n = write(w->fd, &one, sizeof(one));
	(void)n;
}

void waker_free(struct waker *w)
{
	if (!w)
		return;
	event_free(w->ev);
	close(w->fd);
	free(w);
}
