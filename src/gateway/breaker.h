/*
 * breaker.h — the passive circuit breaker.
 *
 * A provider that fails BREAKER_FAILS attempts in a row (connection
 * errors, timeouts, 5xx) is skipped for BREAKER_COOLDOWN_MS; then exactly
 * one request is let through (half-open): success closes the breaker,
 * failure opens it for another cooldown.  A key answered with 429 is
 * skipped for the Retry-After the provider gave.  The state is a few
 * atomics in the snapshot's provider and key entries (carried from one
 * snapshot to the next), shared by every worker without a lock.
 */
#ifndef FUSION_GATEWAY_BREAKER_H
#define FUSION_GATEWAY_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/snapshot.h"

#define BREAKER_FAILS 3
#define BREAKER_COOLDOWN_MS 30000
#define BREAKER_RETRY_AFTER_MAX_S 3600

/* May this provider be tried now?  In the half-open moment the first
 * caller claims the one probe (true) and the others see it closed. */
bool breaker_allow(const struct snap_provider *p, int64_t now_ms);

/* Is this provider cooling down right now (without claiming a probe)? */
bool breaker_cooling(const struct snap_provider *p, int64_t now_ms);

void breaker_success(const struct snap_provider *p);
void breaker_failure(const struct snap_provider *p, int64_t now_ms);

bool breaker_key_cooling(const struct snap_key *k, int64_t now_ms);
void breaker_key_cool(const struct snap_key *k, int64_t until_ms);

#endif
