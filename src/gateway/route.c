/*
 * route.c — see route.h.
 *
 * Smooth weighted round-robin: every item carries a current weight; on
 * each pick every current weight grows by its item's weight, the largest
 * wins and gives back the total.  Over any window the picks follow the
 * weights closely and never bunch up (weights 5,1,1 give a a b a c a a).
 *
 * State lives in a small chained hash table per worker.  An entry is
 * (key string, snapshot version, current weights); a new version resets
 * it, so weights and membership changes take effect at once.  The table
 * is bounded: past ROUTE_STATE_MAX entries it is emptied and rebuilt
 * lazily, which only restarts the rotation.
 */
#include "gateway/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/breaker.h"
#include "util/alloc.h"

#define BUCKETS 256
#define ROUTE_STATE_MAX 4096

struct rr_entry {
	struct rr_entry *next;
	char *key;        /* owned */
	uint64_t version; /* snapshot version the weights belong to */
	size_t n;
	int64_t cw[]; /* current weights, one per item */
};

struct route_state {
	struct rr_entry *buckets[BUCKETS];
	size_t count;
};

struct route_state *route_state_new(void)
{
	return xcalloc(1, sizeof(struct route_state));
}

static void clear(struct route_state *rs)
{
	for (size_t b = 0; b < BUCKETS; b++) {
		for (struct rr_entry *e = rs->buckets[b], *next; e; e = next) {
			next = e->next;
			free(e->key);
			free(e);
		}
		rs->buckets[b] = NULL;
	}
	rs->count = 0;
}

void route_state_free(struct route_state *rs)
{
	if (!rs)
		return;
	clear(rs);
	free(rs);
}

static uint32_t hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The entry for key with n items at this version (fresh if needed). */
static struct rr_entry *entry(struct route_state *rs, const char *key, uint64_t version, size_t n)
{
	uint32_t b = hash(key) % BUCKETS;
	struct rr_entry **pp = &rs->buckets[b];
	for (struct rr_entry *e = *pp; e; pp = &e->next, e = e->next) {
		if (strcmp(e->key, key) != 0)
			continue;
		if (e->version == version && e->n == n)
			return e;
		*pp = e->next; /* stale: replace */
		free(e->key);
		free(e);
		rs->count--;
		break;
	}
	if (rs->count >= ROUTE_STATE_MAX)
		clear(rs);
	struct rr_entry *e = xcalloc(1, sizeof(*e) + n * sizeof(int64_t));
	e->key = xstrdup(key);
	e->version = version;
	e->n = n;
	e->next = rs->buckets[b];
	rs->buckets[b] = e;
	rs->count++;
	return e;
}

/* One smooth-WRR pick among items with the given weights (all ≥ 1). */
static size_t pick(struct rr_entry *e, const int *weights, size_t n)
{
	int64_t total = 0;
	size_t best = 0;
	for (size_t i = 0; i < n; i++) {
		e->cw[i] += weights[i];
		total += weights[i];
		if (e->cw[i] > e->cw[best])
			best = i;
	}
	e->cw[best] -= total;
	return best;
}

static bool key_usable(const struct snap_key *k)
{
	return k->enabled && !k->bad && k->secret && *k->secret;
}

bool route_target_usable(const struct snap_target *t)
{
	if (!t->enabled || !t->provider->enabled)
		return false;
	for (size_t i = 0; i < t->provider->nkeys; i++) {
		if (key_usable(&t->provider->keys[i]))
			return true;
	}
	/* A provider without keys (a local server) is usable as it is. */
	return t->provider->nkeys == 0;
}

size_t route_plan(struct route_state *rs, const struct snapshot *s, const char *model,
                  const struct snap_target **out, size_t max, int64_t now_ms)
{
	const struct snap_target *first = NULL;
	size_t n = snapshot_targets(s, model, &first);
	size_t count = 0;
	/* Targets come sorted by priority, highest first: walk each group. */
	for (size_t i = 0; i < n && count < max;) {
		size_t j = i;
		while (j < n && first[j].priority == first[i].priority)
			j++;
		const struct snap_target *group[ROUTE_MAX_CANDIDATES];
		int weights[ROUTE_MAX_CANDIDATES];
		size_t g = 0;
		for (size_t k = i; k < j && g < ROUTE_MAX_CANDIDATES; k++) {
			if (route_target_usable(&first[k]) &&
			    !(now_ms && breaker_cooling(first[k].provider, now_ms))) {
				group[g] = &first[k];
				weights[g] = first[k].weight > 0 ? first[k].weight : 1;
				g++;
			}
		}
		if (g > 0) {
			size_t chosen = 0;
			if (g > 1) {
				char key[320];
				snprintf(key, sizeof(key), "m:%d:%s", first[i].priority, model);
				chosen = pick(entry(rs, key, s->version, g), weights, g);
			}
			out[count++] = group[chosen];
			/* The rest of the group, heaviest first, as failover order. */
			for (size_t taken = 1; taken < g && count < max; taken++) {
				size_t best = SIZE_MAX;
				for (size_t k = 0; k < g; k++) {
					if (k == chosen || !group[k])
						continue;
					if (best == SIZE_MAX || weights[k] > weights[best])
						best = k;
				}
				out[count++] = group[best];
				group[best] = NULL;
			}
		}
		i = j;
	}
	return count;
}

const struct snap_key *route_pick_key(struct route_state *rs, const struct snapshot *s,
                                      const struct snap_provider *p, int64_t now_ms)
{
	const struct snap_key *usable[ROUTE_MAX_CANDIDATES];
	int weights[ROUTE_MAX_CANDIDATES];
	size_t n = 0;
	for (size_t i = 0; i < p->nkeys && n < ROUTE_MAX_CANDIDATES; i++) {
		if (key_usable(&p->keys[i]) && !breaker_key_cooling(&p->keys[i], now_ms)) {
			usable[n] = &p->keys[i];
			weights[n] = p->keys[i].weight > 0 ? p->keys[i].weight : 1;
			n++;
		}
	}
	if (n == 0)
		return NULL;
	if (n == 1)
		return usable[0];
	char key[48];
	snprintf(key, sizeof(key), "k:%lld", (long long)p->id);
	return usable[pick(entry(rs, key, s->version, n), weights, n)];
}
