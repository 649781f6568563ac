/*
 * breaker.c — see breaker.h.  The snapshot is otherwise immutable; these
 * atomics are the documented exception, hence the casts from const.
 */
#include "gateway/breaker.h"

#include <stdatomic.h>

static struct snap_provider *mut(const struct snap_provider *p)
{
	return (struct snap_provider *)p;
}

bool breaker_cooling(const struct snap_provider *p, int64_t now_ms)
{
	return atomic_load(&mut(p)->cool_until_ms) > now_ms;
}

bool breaker_allow(const struct snap_provider *p, int64_t now_ms)
{
	struct snap_provider *m = mut(p);
	int64_t until = atomic_load(&m->cool_until_ms);
	if (until == 0)
		return true;
	if (until > now_ms)
		return false;
	/* Cooldown over: one probe.  Whoever moves the deadline claims it. */
	return atomic_compare_exchange_strong(&m->cool_until_ms, &until, now_ms + BREAKER_COOLDOWN_MS);
}

void breaker_success(const struct snap_provider *p)
{
	struct snap_provider *m = mut(p);
	atomic_store(&m->fails, 0);
	atomic_store(&m->cool_until_ms, 0);
}

void breaker_failure(const struct snap_provider *p, int64_t now_ms)
{
	struct snap_provider *m = mut(p);
	if (atomic_fetch_add(&m->fails, 1) + 1 >= BREAKER_FAILS)
		atomic_store(&m->cool_until_ms, now_ms + BREAKER_COOLDOWN_MS);
}

bool breaker_key_cooling(const struct snap_key *k, int64_t now_ms)
{
	return atomic_load(&((struct snap_key *)k)->cool_until_ms) > now_ms;
}

void breaker_key_cool(const struct snap_key *k, int64_t until_ms)
{
	struct snap_key *m = (struct snap_key *)k;
	int64_t cur = atomic_load(&m->cool_until_ms);
	while (cur < until_ms && !atomic_compare_exchange_weak(&m->cool_until_ms, &cur, until_ms))
		;
}
