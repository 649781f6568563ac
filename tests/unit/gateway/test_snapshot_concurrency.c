/*
 * test_snapshot_concurrency.c — publication of snapshots to worker
 * threads (snapshot_hub in src/gateway/snapshot.c), without a store: the
 * snapshots are made by hand with snapshot__new/snapshot__alloc, so this
 * file can also be built alone under ThreadSanitizer:
 *
 *   gcc -std=c17 -D_GNU_SOURCE -DSNAPSHOT_TEST_NO_CRITERION -Isrc -Ibuild/gen -Itests/unit \
 *       -O1 -g -fsanitize=thread <every .c of src/util src/store src/auth src/gateway> \
 *       tests/unit/gateway/test_snapshot_concurrency.c -o /tmp/sn/tsan \
 *       $(pkg-config --cflags --libs sqlite3 jansson libsodium libevent libevent_pthreads) \
 *       -lpthread && /tmp/sn/tsan
 *
 * (without Criterion, which cannot run under TSan: see tests/unit/minitest.h).
 *
 * The stress test: READERS threads each run their own event_base,
 * subscribed to one hub, and every ~1 ms (half of them: after every
 * loop turn, spinning) check the snapshot in their slot — its version never goes down and its contents match
 * its version (the publisher writes the version it will get into the contents) — while holding the previous
 * tick's snapshot as a request would.  One publisher thread publishes PUBLISHES snapshots as fast as it can;
 * the main thread reads snapshot_hub_current() meanwhile.  At the end every reader has seen the final version
 * and, once the hub is freed, no snapshot is alive.  Reader threads never call cr_assert (it must run on the
 * test's thread): they record failures, which the test asserts after joining them.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The TSan build gets minitest.h's stand-in for Criterion; each test ends
 * with no live snapshot, so running them in one process is fine. */
#ifdef SNAPSHOT_TEST_NO_CRITERION
#define MINITEST_NO_CRITERION
#endif
#include "minitest.h"

#include "gateway/snapshot.h"
#include "util/clock.h"
#include "util/log.h"

#define READERS 4
#define PUBLISHES 2000
#define FINAL_VERSION (1 + PUBLISHES) /* the hub's initial snapshot is version 1 */
#define READER_DEADLINE_NS (40ull * 1000000000ull)

static void setup(void)
{
	log_setup(LOG_ERROR, LOG_TEXT);
	cr_assert_geq(sodium_init(), 0);
	cr_assert_eq(evthread_use_pthreads(), 0);
}

TestSuite(snapshot_pub, .init = setup, .timeout = 90);

/* A snapshot whose contents say which version it expects to get: one
 * provider with id = version and name "p<version>", and one target for
 * it named "m<version>". */
static struct snapshot *make(uint64_t expect_version)
{
	char buf[32];
	struct snapshot *s = snapshot__new();
	s->providers = snapshot__alloc(s, sizeof(*s->providers));
	s->nproviders = 1;
	struct snap_provider *p = &s->providers[0];
	p->id = (int64_t)expect_version;
	snprintf(buf, sizeof(buf), "p%" PRIu64, expect_version);
	p->name = snapshot__strdup(s, buf);
	p->base_url = snapshot__strdup(s, "http://x");
	p->keys = snapshot__alloc(s, sizeof(*p->keys));
	p->nkeys = 1;
	p->keys[0].secret = snapshot__strdup(s, "sk-test");
	s->targets = snapshot__alloc(s, sizeof(*s->targets));
	s->ntargets = 1;
	snprintf(buf, sizeof(buf), "m%" PRIu64, expect_version);
	s->targets[0].client_name = snapshot__strdup(s, buf);
	s->targets[0].provider = p;
	s->targets[0].provider_model = snapshot__strdup(s, "pm");
	return s;
}

/* 0 when s is a valid snapshot whose contents match its version. */
static int check(const struct snapshot *s)
{
	char buf[32];
	if (!s || s->version == 0 || s->version > FINAL_VERSION || s->nproviders != 1)
		return -1;
	const struct snap_provider *p = snapshot_provider(s, (int64_t)s->version);
	if (!p || p != &s->providers[0] || p->nkeys != 1 || strcmp(p->keys[0].secret, "sk-test") != 0)
		return -1;
	snprintf(buf, sizeof(buf), "p%" PRIu64, s->version);
	if (strcmp(p->name, buf) != 0)
		return -1;
	snprintf(buf, sizeof(buf), "m%" PRIu64, s->version);
	const struct snap_target *t;
	if (snapshot_targets(s, buf, &t) != 1 || t->provider != p)
		return -1;
	return 0;
}

/* ---- the stress test ----------------------------------------------------- */

struct reader {
	int index;
	struct snapshot_hub *hub;
	pthread_barrier_t *ready;
	struct snapshot *slot;   /* the worker's current snapshot, owned via the sub */
	struct snapshot *held;   /* a "request" reference from the previous tick */
	struct event_base *base; /* owned */
	struct event *tick;      /* owned */
	uint64_t last_version;   /* highest seen */
	unsigned long checks;    /* ticks that checked a snapshot */
	unsigned long changes;   /* times the version moved */
	uint64_t deadline_ns;
	bool done;         /* saw FINAL_VERSION */
	char failure[160]; /* "" when all went well */
};

static void reader_fail(struct reader *r, const char *what)
{
	if (!r->failure[0])
		snprintf(r->failure, sizeof(r->failure), "reader %d: %s (last version %" PRIu64 ")", r->index,
		         what, r->last_version);
	event_base_loopbreak(r->base);
}

/* One look at the slot, as a request arriving now would take it. */
static void reader_check(struct reader *r)
{
	struct snapshot *s = r->slot;
	if (check(s) != 0) {
		reader_fail(r, "invalid snapshot in slot");
		return;
	}
	if (s->version < r->last_version) {
		reader_fail(r, "version went backwards");
		return;
	}
	if (s->version != r->last_version)
		r->changes++;
	r->last_version = s->version;
	r->checks++;
	/* A request that began at the previous check ends now; its snapshot
	 * may have been replaced in the slot meanwhile and must still be
	 * intact. */
	if (r->held && check(r->held) != 0) {
		reader_fail(r, "held snapshot changed under a reference");
		return;
	}
	snapshot_unref(r->held);
	r->held = snapshot_ref(s);
	if (s->version == FINAL_VERSION) {
		r->done = true;
		event_base_loopexit(r->base, NULL);
	} else if (clock_mono_ns() > r->deadline_ns) {
		reader_fail(r, "final version not seen before the deadline");
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	reader_check(arg);
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	r->base = event_base_new();
	r->tick = event_new(r->base, -1, EV_PERSIST, on_tick, r);
	struct snapshot_sub *sub = snapshot_subscribe(r->hub, r->base, &r->slot);
	if (check(r->slot) != 0)
		reader_fail(r, "subscribe gave no valid snapshot");
	struct timeval ms = clock_tv_ms(1);
	r->deadline_ns = clock_mono_ns() + READER_DEADLINE_NS;
	pthread_barrier_wait(r->ready);
	if (r->index % 2 == 0) {
		/* Even readers: a 1 ms timer, like a janitor. */
		event_add(r->tick, &ms);
		event_base_dispatch(r->base);
	} else {
		/* Odd readers spin the loop by hand and check after every
		 * turn, so their reads interleave with the wakes far more
		 * often than 1 ms ticks can while the publisher runs flat out. */
		while (!r->done && !r->failure[0]) {
			event_base_loop(r->base, EVLOOP_NONBLOCK);
			reader_check(r);
		}
	}
	snapshot_unref(r->held);
	r->held = NULL;
	snapshot_unsubscribe(r->hub, sub);
	if (r->slot)
		reader_fail(r, "unsubscribe left the slot set");
	event_free(r->tick);
	event_base_free(r->base);
	return NULL;
}

struct publisher {
	struct snapshot_hub *hub;
	pthread_barrier_t *ready;
};

static void *publisher_main(void *arg)
{
	struct publisher *p = arg;
	pthread_barrier_wait(p->ready);
	for (uint64_t v = 2; v <= FINAL_VERSION; v++)
		snapshot_publish(p->hub, make(v));
	return NULL;
}

Test(snapshot_pub, concurrent_readers_see_monotonic_valid_snapshots)
{
	struct snapshot_hub *hub = snapshot_hub_new(make(1));
	pthread_barrier_t ready;
	pthread_barrier_init(&ready, NULL, READERS + 2);
	struct reader readers[READERS];
	pthread_t rt[READERS], pt;
	struct publisher pub = { .hub = hub, .ready = &ready };

	memset(readers, 0, sizeof(readers));
	for (int i = 0; i < READERS; i++) {
		readers[i] = (struct reader){ .index = i, .hub = hub, .ready = &ready };
		cr_assert_eq(pthread_create(&rt[i], NULL, reader_main, &readers[i]), 0);
	}
	cr_assert_eq(pthread_create(&pt, NULL, publisher_main, &pub), 0);
	pthread_barrier_wait(&ready);

	/* The main thread reads the hub's current snapshot meanwhile. */
	uint64_t last = 0;
	bool main_ok = true;
	for (int i = 0; i < 500; i++) {
		struct snapshot *s = snapshot_hub_current(hub);
		main_ok = main_ok && check(s) == 0 && s->version >= last;
		last = s->version;
		snapshot_unref(s);
	}

	pthread_join(pt, NULL);
	for (int i = 0; i < READERS; i++)
		pthread_join(rt[i], NULL);
	pthread_barrier_destroy(&ready);

	cr_assert(main_ok, "snapshot_hub_current went backwards or gave an invalid snapshot");
	for (int i = 0; i < READERS; i++) {
		struct reader *r = &readers[i];
		cr_assert_eq(r->failure[0], '\0', "%s", r->failure);
		cr_assert_eq(r->last_version, FINAL_VERSION, "reader %d ended at %" PRIu64, i,
		             r->last_version);
		cr_assert_gt(r->checks, 0);
		cr_log_info("reader %d: %lu checks, %lu version changes", i, r->checks, r->changes);
	}
	struct snapshot *s = snapshot_hub_current(hub);
	cr_assert_eq(s->version, FINAL_VERSION);
	snapshot_unref(s);
	cr_assert_eq(snapshot__live_count(), 1, "only the hub's current snapshot is left");
	snapshot_hub_free(hub);
	cr_assert_eq(snapshot__live_count(), 0, "every reference was dropped");
}

/* ---- single-threaded edges ---------------------------------------------- */

Test(snapshot_pub, swap_happens_on_the_worker_loop)
{
	struct snapshot_hub *hub = snapshot_hub_new(make(1));
	struct event_base *base = event_base_new();
	struct snapshot *slot = NULL;
	struct snapshot_sub *sub = snapshot_subscribe(hub, base, &slot);
	cr_assert_not_null(slot);
	cr_assert_eq(slot->version, 1);
	cr_assert_eq(atomic_load(&slot->refs), 2, "hub + slot");

	snapshot_publish(hub, make(2));
	cr_assert_eq(slot->version, 1, "the slot changes only on the worker's loop");
	cr_assert_eq(snapshot__live_count(), 2, "v1 is still in the slot");
	event_base_loop(base, EVLOOP_NONBLOCK);
	cr_assert_eq(slot->version, 2);
	cr_assert_eq(check(slot), 0);
	cr_assert_eq(snapshot__live_count(), 1, "v1 freed once the worker let go");

	snapshot_unsubscribe(hub, sub);
	cr_assert_null(slot);
	event_base_free(base);
	snapshot_hub_free(hub);
	cr_assert_eq(snapshot__live_count(), 0);
}

Test(snapshot_pub, pending_snapshots_are_replaced_and_dropped)
{
	struct snapshot_hub *hub = snapshot_hub_new(make(1));
	struct event_base *base = event_base_new();
	struct snapshot *slot = NULL;
	struct snapshot_sub *sub = snapshot_subscribe(hub, base, &slot);

	/* The worker's loop does not run: each publish replaces the pending one. */
	for (uint64_t v = 2; v <= 10; v++)
		snapshot_publish(hub, make(v));
	cr_assert_eq(snapshot__live_count(), 2, "v1 in the slot, v10 in hub and mailbox; v2..v9 freed");
	event_base_loop(base, EVLOOP_NONBLOCK);
	cr_assert_eq(slot->version, 10, "straight to the newest");
	cr_assert_eq(snapshot__live_count(), 1);

	/* A pending one at unsubscribe is dropped too. */
	snapshot_publish(hub, make(11));
	snapshot_unsubscribe(hub, sub);
	event_base_free(base);
	cr_assert_eq(snapshot__live_count(), 1, "only the hub's v11");
	snapshot_hub_free(hub);
	cr_assert_eq(snapshot__live_count(), 0);
}

Test(snapshot_pub, republishing_is_refused)
{
	struct snapshot *s = make(1);
	struct snapshot_hub *hub = snapshot_hub_new(s);
	snapshot_publish(hub, snapshot_ref(s)); /* same snapshot again: ignored, ref dropped */
	struct snapshot *cur = snapshot_hub_current(hub);
	cr_assert_eq(cur, s);
	cr_assert_eq(cur->version, 1);
	cr_assert_eq(atomic_load(&cur->refs), 2, "hub + ours: the extra reference was dropped");
	snapshot_unref(cur);
	snapshot_hub_free(hub);
	cr_assert_eq(snapshot__live_count(), 0);
}

Test(snapshot_pub, late_subscriber_starts_at_current)
{
	struct snapshot_hub *hub = snapshot_hub_new(make(1));
	for (uint64_t v = 2; v <= 5; v++)
		snapshot_publish(hub, make(v));
	struct event_base *base = event_base_new();
	struct snapshot *slot = NULL;
	struct snapshot_sub *sub = snapshot_subscribe(hub, base, &slot);
	cr_assert_eq(slot->version, 5);
	cr_assert_eq(check(slot), 0);
	snapshot_unsubscribe(hub, sub);
	snapshot_unsubscribe(hub, NULL);
	event_base_free(base);
	snapshot_hub_free(hub);
	snapshot_hub_free(NULL);
	cr_assert_eq(snapshot__live_count(), 0);
}
