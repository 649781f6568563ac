/*
 * route.h — which providers serve a request, and in what order.
 *
 * For a client model the candidates are the snapshot's targets of that
 * name (model catalogue rows and model mappings) whose target, provider
 * and at least one provider key are usable.  They are tried by priority,
 * highest first; among equal priorities the first choice rotates by
 * smooth weighted round-robin (equal weights give plain round-robin), so
 * load spreads in proportion to weight, and the rest follow by weight as
 * failover order.  A provider's keys rotate the same way.
 *
 * The round-robin state is per worker thread (no sharing, no locks):
 * each worker spreads its own requests evenly, so the whole process does
 * too.  State is keyed by model name (or provider id for keys) and reset
 * whenever the snapshot version changes.
 */
#ifndef FUSION_GATEWAY_ROUTE_H
#define FUSION_GATEWAY_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/snapshot.h"
#include <stdbool.h>

#define ROUTE_MAX_CANDIDATES 32

struct route_state;

struct route_state *route_state_new(void);
void route_state_free(struct route_state *rs); /* NULL ok */

/* Fill out[] with up to max usable targets for model, in attempt order.
 * Returns how many.  Does not allocate per call (state entries aside).
 * Providers whose breaker is cooling down (breaker.h) are left out while
 * now_ms is given (0 = ignore breakers, the fallback when every
 * candidate is cooling). */
size_t route_plan(struct route_state *rs, const struct snapshot *s, const char *model,
                  const struct snap_target **out, size_t max, int64_t now_ms);

/* Next key of provider p by smooth weighted round-robin among the enabled,
 * not-bad keys that are not cooling down after a 429 at now_ms; NULL when
 * there is none. */
const struct snap_key *route_pick_key(struct route_state *rs, const struct snapshot *s,
                                      const struct snap_provider *p, int64_t now_ms);

/* Is this target usable now (target, provider and some key)? */
bool route_target_usable(const struct snap_target *t);

#endif
