/*
 * snapshot.h — the immutable configuration snapshot, and its publication
 * to the worker threads.
 *
 * What it is for: the proxy reads providers, provider keys, models,
 * model mappings and client keys on every request, from every worker
 * thread, without taking a lock.  So that state is never mutated: every
 * successful admin write rebuilds a whole new `struct snapshot` from the
 * database (snapshot_rebuild) and publishes it; readers keep using the
 * one they hold until they let go of it.
 *
 * Data flow:
 *
 *   admin write commits ─► snapshot_rebuild(hub, store, secrets)
 *                            builder lock ─► snapshot_build() reads the
 *                            five tables, decrypts keys/headers, sorts
 *                            ─► snapshot_publish(): version = n + 1,
 *                            hub->current = s, and for every subscriber:
 *                            one new reference into its mailbox (an
 *                            atomic pointer; a pending one not yet taken
 *                            is replaced and dropped) + waker_signal()
 *   worker loop (its own thread) ─► mailbox callback: swap the worker's
 *                            slot to the new snapshot, unref the old one
 *   request on that worker ─► s = snapshot_ref(worker slot) at start,
 *                            snapshot_unref(s) when the request ends
 *
 * Ownership: a snapshot is one arena; every string, array and decrypted
 * secret in it belongs to the snapshot and lives exactly as long as its
 * last reference.  The arena is wiped (sodium_memzero) before it is
 * freed, because it holds upstream keys in the clear.  Pointers into a
 * snapshot (providers, targets, keys) are valid only while the caller
 * holds a reference to that snapshot.
 *
 * Threading: a snapshot is read-only once published, so any number of
 * threads may read it; only refs is atomic.  The hub's mutexes are taken
 * on the publish/build/subscribe paths, never by a reader.  A worker's
 * slot (`*slot` below) is written only on that worker's thread.
 */
#ifndef FUSION_GATEWAY_SNAPSHOT_H
#define FUSION_GATEWAY_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "settings.h"

struct store;
struct secrets;
struct event_base;

enum provider_type { PROVIDER_OPENAI, PROVIDER_ANTHROPIC, PROVIDER_GEMINI };

/* "openai" | "anthropic" | "gemini" (exact, lower case).  0, or -1 when unknown. */
int provider_type_parse(const char *s, enum provider_type *out) __attribute__((warn_unused_result));
/* The name provider_type_parse() accepts; "unknown" for an out-of-range value. */
const char *provider_type_name(enum provider_type t);

struct snap_key {
	int64_t id;
	char *secret; /* owned by the snapshot: the upstream key in the clear */
	int weight;
	bool enabled;
	bool bad; /* provider_keys.status is not 'ok' (auto-disabled after auth errors) */
	/* Breaker state, shared by all workers and carried to the next
	 * snapshot: the only mutable fields, atomics. */
	_Atomic int64_t cool_until_ms; /* epoch ms: skip the key until then (429 Retry-After) */
};

struct snap_header {
	char *name;  /* owned by the snapshot; an HTTP token */
	char *value; /* owned by the snapshot; no CR, LF or NUL */
};

struct snap_provider {
	int64_t id;
	char *name; /* owned by the snapshot */
	enum provider_type type;
	char *base_url; /* owned by the snapshot */
	int priority;
	int weight;
	int timeout_ms;
	bool enabled;
	struct snap_header *headers; /* owned by the snapshot; extra upstream headers */
	size_t nheaders;
	struct snap_key *keys; /* owned by the snapshot; in position order, then id */
	size_t nkeys;
	/* Passive circuit breaker (see gateway/breaker.h): atomics, carried
	 * from one snapshot to the next by provider id. */
	_Atomic int64_t cool_until_ms; /* epoch ms: skip the provider until then */
	atomic_int fails;              /* consecutive failed attempts */
};

/*
 * One way to serve a client model name: a row of `models` (the catalogue;
 * priority and weight are the provider's) or of `model_mappings` (its own
 * priority and weight).  `enabled` is the row's own flag only: a target
 * is usable when target->enabled && target->provider->enabled and the
 * provider has a key that is enabled and not bad.
 */
struct snap_target {
	char *client_name;                    /* owned by the snapshot */
	const struct snap_provider *provider; /* borrowed from the same snapshot; never NULL */
	char *provider_model;                 /* owned by the snapshot */
	int priority;
	int weight;
	bool enabled;
	bool from_mapping; /* true: id is a model_mappings id; false: a models id */
	int64_t id;
	/* Per million tokens; NaN if unset.  A mapping takes the prices of the
	 * models row with the same provider and provider_model, if any. */
	double input_price_per_mtok, output_price_per_mtok;
};

struct snap_client_key {
	int64_t id;
	char key_hash[65]; /* lower-case hex sha256 of the key */
	char *name;        /* owned by the snapshot */
	bool enabled;
	int64_t expires_at;    /* epoch ms; 0 = never */
	char **allowed_models; /* owned by the snapshot; nallowed == 0 means every model */
	size_t nallowed;
	int rpm_limit, tpm_limit, max_concurrency; /* 0 = unlimited */
};

struct snapshot {
	atomic_int refs;
	uint64_t version;                /* set by the hub when published: 1, 2, ...; 0 = never published */
	struct snap_provider *providers; /* owned by the snapshot; sorted by id */
	size_t nproviders;
	struct snap_target *targets; /* owned; by client_name (strcmp), then priority desc */
	size_t ntargets;
	struct snap_client_key *client_keys; /* owned; sorted by key_hash */
	size_t nclient_keys;
	struct settings settings; /* the operator settings at build time */
};

/* Lookups: binary searches, no allocation, no lock.  NULL / 0 when absent. */
const struct snap_provider *snapshot_provider(const struct snapshot *s, int64_t id);
/* All targets (enabled or not) for a client model name: *first and the
 * count of a contiguous range of s->targets, best priority first.  On 0,
 * *first is NULL. */
size_t snapshot_targets(const struct snapshot *s, const char *client_model, const struct snap_target **first);
/* key_hash_hex: 64 lower-case hex digits (sodium_bin2hex of the sha256). */
const struct snap_client_key *snapshot_client_key(const struct snapshot *s, const char *key_hash_hex);
/* Whether the key's allowed_models admits `model` (an empty list admits all). */
bool snap_client_key_allows(const struct snap_client_key *k, const char *model);

struct snapshot *snapshot_ref(struct snapshot *s); /* atomic increment; returns s */
void snapshot_unref(struct snapshot *s);           /* atomic decrement; frees at 0; NULL ok */

/*
 * Build from the database, decrypting keys and headers with sec.  On
 * success *out is a new snapshot (refs 1, version 0) owned by the caller.
 * On failure returns -1, *out is NULL and err names the row at fault
 * ("provider 3: key 7 cannot be decrypted ...") but never a secret.  A
 * row the snapshot cannot represent faithfully — a key or headers that
 * do not decrypt, an unknown provider type, a malformed key hash or
 * allowed_models, a header that is not a valid name/value — fails the
 * whole build: the admin API validates before writing, so such a row is
 * a bug or a wrong master key, and must be reported, not skipped.
 * Rows pointing at a provider that is not there are skipped (cannot
 * happen while foreign keys are on).
 *
 * The reads run in one store transaction (store_begin, which takes the
 * write lock for a few milliseconds, then store_rollback), so st must not
 * be inside a transaction of the caller's: call after the commit.
 * Limitation: the decrypted extra-headers JSON passes through jansson,
 * whose internal copies are freed without being wiped; the key secrets
 * never do.
 */
int snapshot_build(struct store *st, const struct secrets *sec, struct snapshot **out, char *err,
                   size_t errlen) __attribute__((warn_unused_result));

/* ---- publication to worker threads ------------------------------------ */

struct snapshot_hub; /* owns the current snapshot and the subscriber list */
struct snapshot_sub; /* one per worker: its mailbox */

/* Takes the caller's reference to initial (which becomes version 1). */
struct snapshot_hub *snapshot_hub_new(struct snapshot *initial);
/* After every subscriber left.  Drops the current snapshot.  NULL ok. */
void snapshot_hub_free(struct snapshot_hub *hub);

/*
 * Subscribe a worker.  wake_base is the worker's event_base (it needs no
 * libevent locks: the wake is an eventfd, see util/waker.h); *slot is the worker's current pointer, set now
 * to a new reference of the hub's current snapshot, and replaced (the old
 * one unref'd) on the worker's own thread, from a callback on wake_base,
 * whenever a newer one is published.  Call on the worker's thread, or
 * before its loop starts (pthread_create orders the write to *slot).
 * Never fails (allocation failure aborts).
 */
struct snapshot_sub *snapshot_subscribe(struct snapshot_hub *hub, struct event_base *wake_base,
                                        struct snapshot **slot);
/* On the worker thread (or after its loop ended), before wake_base is
 * freed.  Unrefs *slot (and sets it NULL) and any pending snapshot; after
 * it returns no publisher touches sub or wake_base.  NULL sub ok. */
void snapshot_unsubscribe(struct snapshot_hub *hub, struct snapshot_sub *sub);

/*
 * Publish (any thread).  Takes the caller's reference to s, which must be
 * a fresh snapshot never published before (its version is set here).
 * Publications are totally ordered by a mutex on this path; every
 * subscriber eventually holds the newest one and never goes backwards.
 */
void snapshot_publish(struct snapshot_hub *hub, struct snapshot *s);

/*
 * Build from the database and publish, both under the hub's builder lock,
 * so rebuilds run one at a time in the order they got the lock: the last
 * one to finish read the newest committed data.  Call after every admin
 * write has committed.  0, or -1 with err set (nothing published; the
 * workers keep the previous snapshot).
 */
int snapshot_rebuild(struct snapshot_hub *hub, struct store *st, const struct secrets *sec, char *err,
                     size_t errlen) __attribute__((warn_unused_result));

/* A new reference to the current snapshot (main thread, stats, admin). */
struct snapshot *snapshot_hub_current(struct snapshot_hub *hub);

/* ---- internal: for unit tests (libuv-style double underscore) ---------- */

/* An empty snapshot (refs 1, version 0) to fill by hand with memory from
 * snapshot__alloc / snapshot__strdup, which the snapshot owns. */
struct snapshot *snapshot__new(void);
void *snapshot__alloc(struct snapshot *s, size_t size); /* zeroed, max-aligned */
char *snapshot__strdup(struct snapshot *s, const char *str);
/* Snapshots allocated and not yet freed, process-wide. */
long snapshot__live_count(void);

#endif
