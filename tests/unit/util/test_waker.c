/*
 * test_waker.c — waking a lock-free event loop from another thread
 * (src/util/waker.c): the callback runs on the loop's own thread, a
 * signal before the loop runs is not lost, and signals that pile up
 * before the loop looks are one run.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <event2/event.h>

#include "util/waker.h"

struct ctx {
	struct event_base *base;
	struct waker *w;
	pthread_t loop_thread;
	atomic_int runs;
	atomic_bool on_loop_thread;
	int stop_after;
};

static void on_wake(void *arg)
{
	struct ctx *c = arg;
	atomic_store(&c->on_loop_thread, pthread_equal(pthread_self(), c->loop_thread) != 0);
	if (atomic_fetch_add(&c->runs, 1) + 1 >= c->stop_after)
		event_base_loopbreak(c->base);
}

static struct event_base *nolock_base(void)
{
	struct event_config *cfg = event_config_new();
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	struct event_base *b = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return b;
}

static void *signaller(void *arg)
{
	struct ctx *c = arg;
	usleep(20000);
	waker_signal(c->w);
	return NULL;
}

Test(waker, another_thread_wakes_the_loop_and_the_callback_runs_on_it)
{
	struct ctx c = { .stop_after = 1 };
	c.base = nolock_base();
	cr_assert_not_null(c.base);
	c.w = waker_new(c.base, on_wake, &c);
	cr_assert_not_null(c.w);
	c.loop_thread = pthread_self();
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, signaller, &c), 0);
	cr_assert_eq(event_base_dispatch(c.base), 0);
	pthread_join(t, NULL);
	cr_assert_eq(atomic_load(&c.runs), 1);
	cr_assert(atomic_load(&c.on_loop_thread));
	waker_free(c.w);
	event_base_free(c.base);
}

Test(waker, signals_before_the_loop_runs_are_one_run_and_not_lost)
{
	struct ctx c = { .stop_after = 1 };
	c.base = nolock_base();
	c.w = waker_new(c.base, on_wake, &c);
	c.loop_thread = pthread_self();
	for (int i = 0; i < 5; i++)
		waker_signal(c.w);
	cr_assert_eq(event_base_loop(c.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), 0);
	cr_assert_eq(atomic_load(&c.runs), 1);
	/* drained: nothing more to run */
	cr_assert_eq(event_base_loop(c.base, EVLOOP_NONBLOCK), 0);
	cr_assert_eq(atomic_load(&c.runs), 1);
	waker_signal(c.w); /* and it wakes again */
	cr_assert_eq(event_base_loop(c.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), 0);
	cr_assert_eq(atomic_load(&c.runs), 2);
	waker_free(c.w);
	waker_free(NULL);
	event_base_free(c.base);
}
