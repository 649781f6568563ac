/* Unit tests for gateway/route.c: priority order, smooth weighted
 * round-robin across providers and keys, unusable targets skipped. */
#include <criterion/criterion.h>
#include <string.h>

#include "gateway/breaker.h"
#include "gateway/route.h"
#include "gateway/snapshot.h"

/* A snapshot with nprov providers, each with `keys` keys and one target
 * "m" of the given priority and weight. */
static struct snapshot *make(size_t nprov, const int *prio, const int *weight, size_t keys)
{
	struct snapshot *s = snapshot__new();
	s->version = 7;
	s->providers = snapshot__alloc(s, nprov * sizeof(struct snap_provider));
	s->nproviders = nprov;
	s->targets = snapshot__alloc(s, nprov * sizeof(struct snap_target));
	s->ntargets = nprov;
	for (size_t i = 0; i < nprov; i++) {
		struct snap_provider *p = &s->providers[i];
		p->id = (int64_t)i + 1;
		p->name = snapshot__strdup(s, "p");
		p->enabled = true;
		p->weight = 100;
		p->keys = snapshot__alloc(s, keys * sizeof(struct snap_key));
		p->nkeys = keys;
		for (size_t k = 0; k < keys; k++) {
			p->keys[k].id = (int64_t)(i * 10 + k + 1);
			p->keys[k].secret = snapshot__strdup(s, "sk-test");
			p->keys[k].weight = 1;
			p->keys[k].enabled = true;
		}
	}
	/* targets sorted by name, then priority desc: fill by priority order */
	size_t order[16];
	for (size_t i = 0; i < nprov; i++)
		order[i] = i;
	for (size_t i = 0; i < nprov; i++)
		for (size_t j = i + 1; j < nprov; j++)
			if (prio[order[j]] > prio[order[i]]) {
				size_t t = order[i];
				order[i] = order[j];
				order[j] = t;
			}
	for (size_t i = 0; i < nprov; i++) {
		size_t o = order[i];
		struct snap_target *t = &s->targets[i];
		t->client_name = snapshot__strdup(s, "m");
		t->provider = &s->providers[o];
		t->provider_model = snapshot__strdup(s, "m-up");
		t->priority = prio[o];
		t->weight = weight[o];
		t->enabled = true;
		t->id = (int64_t)o + 1;
	}
	return s;
}

Test(route, equal_weights_alternate_evenly)
{
	int prio[] = { 0, 0 }, w[] = { 100, 100 };
	struct snapshot *s = make(2, prio, w, 1);
	struct route_state *rs = route_state_new();
	int hits[2] = { 0 };
	for (int i = 0; i < 100; i++) {
		const struct snap_target *out[4];
		size_t n = route_plan(rs, s, "m", out, 4, 1);
		cr_assert_eq(n, 2);
		cr_assert_neq(out[0], out[1], "failover goes to the other provider");
		hits[out[0]->provider->id - 1]++;
	}
	cr_assert_eq(hits[0], 50);
	cr_assert_eq(hits[1], 50);
	route_state_free(rs);
	snapshot_unref(s);
}

Test(route, weights_shape_the_split)
{
	int prio[] = { 5, 5, 5 }, w[] = { 300, 100, 100 };
	struct snapshot *s = make(3, prio, w, 1);
	struct route_state *rs = route_state_new();
	int hits[3] = { 0 };
	for (int i = 0; i < 500; i++) {
		const struct snap_target *out[4];
		cr_assert_eq(route_plan(rs, s, "m", out, 4, 1), 3);
		hits[out[0]->provider->id - 1]++;
	}
	cr_assert_eq(hits[0], 300);
	cr_assert_eq(hits[1], 100);
	cr_assert_eq(hits[2], 100);
	route_state_free(rs);
	snapshot_unref(s);
}

Test(route, higher_priority_first_lower_as_failover)
{
	int prio[] = { 1, 10, 5 }, w[] = { 100, 100, 100 };
	struct snapshot *s = make(3, prio, w, 1);
	struct route_state *rs = route_state_new();
	for (int i = 0; i < 10; i++) {
		const struct snap_target *out[4];
		cr_assert_eq(route_plan(rs, s, "m", out, 4, 1), 3);
		cr_assert_eq(out[0]->priority, 10);
		cr_assert_eq(out[1]->priority, 5);
		cr_assert_eq(out[2]->priority, 1);
	}
	route_state_free(rs);
	snapshot_unref(s);
}

Test(route, unusable_targets_are_skipped)
{
	int prio[] = { 0, 0, 0 }, w[] = { 100, 100, 100 };
	struct snapshot *s = make(3, prio, w, 1);
	s->providers[0].enabled = false;    /* provider off */
	s->providers[1].keys[0].bad = true; /* its only key marked bad */
	struct route_state *rs = route_state_new();
	const struct snap_target *out[4];
	cr_assert_eq(route_plan(rs, s, "m", out, 4, 1), 1);
	cr_assert_eq(out[0]->provider->id, 3);
	cr_assert_eq(route_plan(rs, s, "unknown-model", out, 4, 1), 0);
	s->providers[2].keys[0].enabled = false;
	cr_assert_eq(route_plan(rs, s, "m", out, 4, 1), 0);
	route_state_free(rs);
	snapshot_unref(s);
}

Test(route, keys_rotate_and_skip_bad_ones)
{
	int prio[] = { 0 }, w[] = { 100 };
	struct snapshot *s = make(1, prio, w, 3);
	struct route_state *rs = route_state_new();
	const struct snap_provider *p = &s->providers[0];
	int hits[3] = { 0 };
	for (int i = 0; i < 30; i++)
		hits[route_pick_key(rs, s, p, 1)->id - 1]++;
	cr_assert(hits[0] == 10 && hits[1] == 10 && hits[2] == 10);
	s->providers[0].keys[1].bad = true;
	s->version = 8; /* a new snapshot resets the rotation */
	for (int i = 0; i < 20; i++)
		cr_assert_neq(route_pick_key(rs, s, p, 1)->id, 2);
	s->providers[0].keys[0].enabled = false;
	s->providers[0].keys[2].enabled = false;
	s->version = 9;
	cr_assert_null(route_pick_key(rs, s, p, 1));
	route_state_free(rs);
	snapshot_unref(s);
}

Test(route, cooling_providers_and_keys_are_skipped)
{
	int prio[] = { 0, 0 }, w[] = { 100, 100 };
	struct snapshot *s = make(2, prio, w, 2);
	struct route_state *rs = route_state_new();
	const struct snap_target *out[4];
	int64_t now = 1000000;
	for (int i = 0; i < BREAKER_FAILS; i++)
		breaker_failure(&s->providers[0], now);
	cr_assert(breaker_cooling(&s->providers[0], now));
	cr_assert_eq(route_plan(rs, s, "m", out, 4, now), 1);
	cr_assert_eq(out[0]->provider->id, 2);
	cr_assert_eq(route_plan(rs, s, "m", out, 4, 0), 2, "0 ignores breakers (fallback)");
	/* After the cooldown exactly one probe is allowed. */
	int64_t later = now + BREAKER_COOLDOWN_MS + 1;
	cr_assert_eq(route_plan(rs, s, "m", out, 4, later), 2);
	cr_assert(breaker_allow(&s->providers[0], later));
	cr_assert_not(breaker_allow(&s->providers[0], later), "second caller waits for the probe");
	breaker_success(&s->providers[0]);
	cr_assert(breaker_allow(&s->providers[0], later));
	/* A key cooling after a 429 is skipped until its time. */
	const struct snap_provider *p = &s->providers[1];
	breaker_key_cool(&p->keys[0], now + 5000);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(route_pick_key(rs, s, p, now)->id, p->keys[1].id);
	breaker_key_cool(&p->keys[1], now + 5000);
	cr_assert_null(route_pick_key(rs, s, p, now));
	cr_assert_not_null(route_pick_key(rs, s, p, now + 5001));
	route_state_free(rs);
	snapshot_unref(s);
}
