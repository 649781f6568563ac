/*
 * snapshot.c — see snapshot.h.  Building a configuration snapshot from the
 * store, the lookups the proxy does on it, and its publication to the
 * worker threads.
 *
 * Memory: a snapshot is a `struct snapshot_impl` (the public struct plus
 * its arena) and a chain of arena blocks.  Everything the build makes —
 * arrays, strings, decrypted keys and header values — is carved from the
 * arena, so freeing is one walk over the blocks, wiping each before
 * free() because it holds upstream credentials.  A failed build frees
 * the half-made snapshot the same way.
 *
 * Build (snapshot_build), inside one store transaction so the five reads
 * see one state of the database:
 *
 *   providers     ORDER BY id ─► providers[] (+ decrypted extra headers)
 *   provider_keys ORDER BY provider_id, position, id ─► each provider's keys[]
 *   models + model_mappings ─► targets[], then sorted by
 *                 (client_name, priority desc, models before mappings, id)
 *   client_keys   ─► client_keys[], sorted by key_hash
 *
 * Decrypted plaintext goes straight from secrets_decrypt()'s buffer into
 * the arena and the buffer is wiped.  Error messages name table and row
 * id, never a value that came out of a ciphertext.
 *
 * Publication: the hub keeps the current snapshot and a list of
 * subscribers.  snapshot_publish(), under the hub lock, stamps the next
 * version, and for each subscriber swaps one new reference into its
 * mailbox (an atomic pointer) and signals its waker; whatever was
 * still in the mailbox was never seen by that worker and is dropped.  The
 * wake callback runs on the worker's own loop: it takes the mailbox
 * (atomic exchange with NULL) and swaps it into the worker's slot.
 * Because mailbox stores happen in version order under the lock and a
 * worker only ever takes the newest one stored, a worker's version never
 * goes backwards.  A wake that finds the mailbox empty (its snapshot was
 * taken by an earlier wake) does nothing.
 */
#include "gateway/snapshot.h"

#include <event2/event.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/secrets.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/waker.h"

/* ---- provider types ---------------------------------------------------- */

static const char *const provider_type_names[] = {
	[PROVIDER_OPENAI] = "openai",
	[PROVIDER_ANTHROPIC] = "anthropic",
	[PROVIDER_GEMINI] = "gemini",
};

#define PROVIDER_TYPE_COUNT (sizeof(provider_type_names) / sizeof(provider_type_names[0]))

int provider_type_parse(const char *s, enum provider_type *out)
{
	if (!s)
		return -1;
	for (size_t i = 0; i < PROVIDER_TYPE_COUNT; i++) {
		if (strcmp(s, provider_type_names[i]) == 0) {
			*out = (enum provider_type)i;
			return 0;
		}
	}
	return -1;
}

const char *provider_type_name(enum provider_type t)
{
	if ((size_t)t >= PROVIDER_TYPE_COUNT)
		return "unknown";
	return provider_type_names[t];
}

/* ---- arena and lifetime ------------------------------------------------ */

#define ARENA_BLOCK_BYTES 16384
#define ARENA_ALIGN _Alignof(max_align_t)
#define ARENA_ROUND(n) (((n) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

struct arena_block {
	struct arena_block *next; /* owned: the rest of the chain */
	size_t cap;               /* usable bytes after the header */
	size_t used;
};

#define ARENA_HDR ARENA_ROUND(sizeof(struct arena_block))

struct snapshot_impl {
	struct snapshot pub;        /* first: a struct snapshot * is a struct snapshot_impl * */
	struct arena_block *blocks; /* owned: every byte the snapshot points at */
};

/* Snapshots alive in the process: a counter, for tests and stats. */
static atomic_long live_snapshots;

static struct snapshot_impl *impl_of(struct snapshot *s)
{
	return (struct snapshot_impl *)s;
}

struct snapshot *snapshot__new(void)
{
	struct snapshot_impl *im = xcalloc(1, sizeof(*im));
	atomic_init(&im->pub.refs, 1);
	settings_defaults(&im->pub.settings);
	atomic_fetch_add(&live_snapshots, 1);
	return &im->pub;
}

long snapshot__live_count(void)
{
	return atomic_load(&live_snapshots);
}

void *snapshot__alloc(struct snapshot *s, size_t size)
{
	struct snapshot_impl *im = impl_of(s);
	if (size > SIZE_MAX / 2) {
		fprintf(stderr, "fusion: snapshot allocation of %zu bytes\n", size);
		abort();
	}
	size_t need = ARENA_ROUND(size ? size : 1);
	struct arena_block *b = im->blocks;
	if (!b || b->cap - b->used < need) {
		size_t cap = need > ARENA_BLOCK_BYTES ? need : ARENA_BLOCK_BYTES;
		b = xmalloc(ARENA_HDR + cap);
		b->cap = cap;
		b->used = 0;
		if (im->blocks && need > ARENA_BLOCK_BYTES / 4) {
			/* A big array gets its own block behind the head, so the
			 * head keeps its free space for the small strings. */
			b->next = im->blocks->next;
			im->blocks->next = b;
		} else {
			b->next = im->blocks;
			im->blocks = b;
		}
	}
	void *p = (char *)b + ARENA_HDR + b->used;
	b->used += need;
	memset(p, 0, need);
	return p;
}

/* n elements of size bytes, zeroed; NULL when n is 0. */
static void *arena_array(struct snapshot *s, size_t n, size_t size)
{
	if (n == 0)
		return NULL;
	if (size && n > SIZE_MAX / 2 / size) {
		fprintf(stderr, "fusion: snapshot array of %zu x %zu bytes\n", n, size);
		abort();
	}
	return snapshot__alloc(s, n * size);
}

static char *arena_memdup(struct snapshot *s, const char *p, size_t len)
{
	char *d = snapshot__alloc(s, len + 1);
	memcpy(d, p, len);
	d[len] = '\0';
	return d;
}

char *snapshot__strdup(struct snapshot *s, const char *str)
{
	return arena_memdup(s, str, strlen(str));
}

static void snapshot_free(struct snapshot *s)
{
	struct snapshot_impl *im = impl_of(s);
	for (struct arena_block *b = im->blocks, *next; b; b = next) {
		next = b->next;
		sodium_memzero((char *)b + ARENA_HDR, b->used); /* upstream keys live here */
		free(b);
	}
	free(im);
	atomic_fetch_sub(&live_snapshots, 1);
}

struct snapshot *snapshot_ref(struct snapshot *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void snapshot_unref(struct snapshot *s)
{
	if (!s)
		return;
	/* acq_rel: every reader's last access happens before the free. */
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		snapshot_free(s);
}

/* ---- lookups ----------------------------------------------------------- */

const struct snap_provider *snapshot_provider(const struct snapshot *s, int64_t id)
{
	size_t lo = 0, hi = s->nproviders;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int64_t mid_id = s->providers[mid].id;
		if (mid_id == id)
			return &s->providers[mid];
		if (mid_id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

size_t snapshot_targets(const struct snapshot *s, const char *client_model, const struct snap_target **first)
{
	size_t lo = 0, hi = s->ntargets;
	while (lo < hi) { /* lower bound */
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(s->targets[mid].client_name, client_model) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t end = lo;
	while (end < s->ntargets && strcmp(s->targets[end].client_name, client_model) == 0)
		end++;
	*first = end > lo ? &s->targets[lo] : NULL;
	return end - lo;
}

const struct snap_client_key *snapshot_client_key(const struct snapshot *s, const char *key_hash_hex)
{
	size_t lo = 0, hi = s->nclient_keys;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->client_keys[mid].key_hash, key_hash_hex);
		if (c == 0)
			return &s->client_keys[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

bool snap_client_key_allows(const struct snap_client_key *k, const char *model)
{
	if (k->nallowed == 0)
		return true;
	for (size_t i = 0; i < k->nallowed; i++) {
		if (strcmp(k->allowed_models[i], model) == 0)
			return true;
	}
	return false;
}

/* ---- build ------------------------------------------------------------- */

struct build {
	struct store *st;          /* borrowed */
	const struct secrets *sec; /* borrowed */
	struct snapshot *s;        /* owned until handed to the caller */
	char *err;
	size_t errlen;
};

static void __attribute__((format(printf, 2, 3))) build_fail(struct build *b, const char *fmt, ...)
{
	va_list ap;
	if (!b->err || b->errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->err, b->errlen, fmt, ap);
	va_end(ap);
}

static int query(struct build *b, const char *what, const char *sql, struct store_rows **rows)
{
	if (store_query(b->st, sql, NULL, 0, rows) != 0) {
		build_fail(b, "cannot read %s: %s", what, store_errmsg(b->st));
		return -1;
	}
	return 0;
}

/* A column as an int in [min, INT_MAX]; NULL reads as dflt. */
static int col_int(struct build *b, const struct store_rows *r, size_t row, const char *col, int64_t dflt,
                   int64_t min, const char *what, int64_t id, int *out)
{
	int64_t v = store_rows_int(r, row, col, dflt);
	if (v < min || v > INT_MAX) {
		build_fail(b, "%s %" PRId64 ": %s %" PRId64 " is out of range", what, id, col, v);
		return -1;
	}
	*out = (int)v;
	return 0;
}

/* A TEXT column copied into the arena; NULL reads as "". */
static char *col_text(struct build *b, const struct store_rows *r, size_t row, const char *col)
{
	const char *t = store_rows_text(r, row, col);
	return snapshot__strdup(b->s, t ? t : "");
}

static bool col_bool(const struct store_rows *r, size_t row, const char *col)
{
	return store_rows_int(r, row, col, 0) != 0;
}

/* RFC 9110 token characters. */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool header_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if (!is_tchar((unsigned char)*s))
			return false;
	}
	return true;
}

/* What may go into a header value: HTAB, SP, VCHAR, obs-text — so no CR,
 * LF, NUL or other control byte can split or end the upstream request. */
static bool header_value_ok(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

/* The bytes of a BLOB (or TEXT) column; false when NULL or another type. */
static bool col_bytes(const struct store_rows *r, size_t row, int col, const unsigned char **p, size_t *len)
{
	const struct store_value *v = col >= 0 ? store_rows_get(r, row, (size_t)col) : NULL;
	if (!v || (v->type != STORE_T_BLOB && v->type != STORE_T_TEXT))
		return false;
	*p = v->p;
	*len = v->len;
	return true;
}

/* Decrypted extra headers: a JSON object of name → string value. */
static int load_headers(struct build *b, struct snap_provider *p, const unsigned char *c, size_t clen)
{
	char *plain = NULL;
	size_t plen = 0;
	json_t *doc = NULL;
	int rc = -1;

	if (secrets_decrypt(b->sec, c, clen, &plain, &plen) != 0) {
		build_fail(b,
		           "provider %" PRId64 ": extra headers cannot be decrypted "
		           "(wrong master key or damaged data)",
		           p->id);
		return -1;
	}
	/* No json_error_t: its text quotes the input, which is secret. */
	doc = json_loadb(plain, plen, JSON_REJECT_DUPLICATES, NULL);
	sodium_memzero(plain, plen);
	free(plain);
	if (!json_is_object(doc)) {
		build_fail(b, "provider %" PRId64 ": extra headers are not a JSON object", p->id);
		goto out;
	}
	p->headers = arena_array(b->s, json_object_size(doc), sizeof(*p->headers));
	const char *name;
	json_t *val;
	json_object_foreach (doc, name, val) {
		if (!header_name_ok(name)) {
			build_fail(b, "provider %" PRId64 ": an extra header has an invalid name", p->id);
			goto out;
		}
		if (!json_is_string(val) ||
		    !header_value_ok(json_string_value(val), json_string_length(val))) {
			build_fail(b, "provider %" PRId64 ": extra header \"%.64s\" has an invalid value",
			           p->id, name);
			goto out;
		}
		struct snap_header *h = &p->headers[p->nheaders++];
		h->name = snapshot__strdup(b->s, name);
		h->value = arena_memdup(b->s, json_string_value(val), json_string_length(val));
	}
	rc = 0;
out:
	/* jansson's own copies of the values are freed unwiped: see snapshot.h. */
	json_decref(doc);
	return rc;
}

static int load_providers(struct build *b)
{
	struct store_rows *r = NULL;
	int rc = -1;

	if (query(b, "providers",
	          "SELECT id, name, type, base_url, priority, weight, timeout_ms, enabled, headers_enc "
	          "FROM providers ORDER BY id",
	          &r))
		return -1;
	size_t n = store_rows_count(r);
	int hcol = store_rows_col(r, "headers_enc");
	struct snapshot *s = b->s;
	s->providers = arena_array(s, n, sizeof(*s->providers));
	for (size_t i = 0; i < n; i++) {
		struct snap_provider *p = &s->providers[i];
		p->id = store_rows_int(r, i, "id", 0);
		p->name = col_text(b, r, i, "name");
		const char *type = store_rows_text(r, i, "type");
		if (provider_type_parse(type, &p->type) != 0) {
			build_fail(b, "provider %" PRId64 ": unknown type \"%.32s\"", p->id,
			           type ? type : "");
			goto out;
		}
		p->base_url = col_text(b, r, i, "base_url");
		if (col_int(b, r, i, "priority", 0, INT_MIN, "provider", p->id, &p->priority) ||
		    col_int(b, r, i, "weight", 100, 0, "provider", p->id, &p->weight) ||
		    col_int(b, r, i, "timeout_ms", 60000, 0, "provider", p->id, &p->timeout_ms))
			goto out;
		p->enabled = col_bool(r, i, "enabled");
		const unsigned char *c;
		size_t clen;
		if (col_bytes(r, i, hcol, &c, &clen) && load_headers(b, p, c, clen))
			goto out;
		s->nproviders++;
	}
	rc = 0;
out:
	store_rows_free(r);
	return rc;
}

static int load_key(struct build *b, const struct store_rows *r, size_t row, int kcol,
                    struct snap_provider *p)
{
	struct snap_key *k = &p->keys[p->nkeys];
	const unsigned char *c;
	size_t clen;
	char *plain = NULL;
	size_t plen = 0;

	k->id = store_rows_int(r, row, "id", 0);
	if (!col_bytes(r, row, kcol, &c, &clen) || secrets_decrypt(b->sec, c, clen, &plain, &plen) != 0) {
		build_fail(b,
		           "provider %" PRId64 ": key %" PRId64 " cannot be decrypted "
		           "(wrong master key or damaged data)",
		           p->id, k->id);
		return -1;
	}
	bool ok = plen > 0 && header_value_ok(plain, plen);
	if (ok)
		k->secret = arena_memdup(b->s, plain, plen);
	sodium_memzero(plain, plen);
	free(plain);
	if (!ok) {
		build_fail(b, "provider %" PRId64 ": key %" PRId64 " is empty or holds a control character",
		           p->id, k->id);
		return -1;
	}
	if (col_int(b, r, row, "weight", 100, 0, "provider key", k->id, &k->weight))
		return -1;
	k->enabled = col_bool(r, row, "enabled");
	const char *status = store_rows_text(r, row, "status");
	k->bad = !status || strcmp(status, "ok") != 0;
	p->nkeys++;
	return 0;
}

static int load_keys(struct build *b)
{
	struct store_rows *r = NULL;
	int rc = -1;

	if (query(b, "provider keys",
	          "SELECT id, provider_id, key_enc, weight, enabled, status "
	          "FROM provider_keys ORDER BY provider_id, position, id",
	          &r))
		return -1;
	size_t n = store_rows_count(r);
	int kcol = store_rows_col(r, "key_enc");
	for (size_t i = 0, j; i < n; i = j) {
		int64_t pid = store_rows_int(r, i, "provider_id", 0);
		for (j = i + 1; j < n && store_rows_int(r, j, "provider_id", 0) == pid; j++)
			;
		/* The build owns this snapshot, so its providers are still ours to fill. */
		struct snap_provider *p = (struct snap_provider *)snapshot_provider(b->s, pid);
		if (!p)
			continue; /* provider deleted: keys go with it (cascade) */
		p->keys = arena_array(b->s, j - i, sizeof(*p->keys));
		for (size_t k = i; k < j; k++) {
			if (load_key(b, r, k, kcol, p))
				goto out;
		}
	}
	rc = 0;
out:
	store_rows_free(r);
	return rc;
}

static int target_cmp(const void *a, const void *b)
{
	const struct snap_target *x = a, *y = b;
	int c = strcmp(x->client_name, y->client_name);
	if (c)
		return c;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	if (x->from_mapping != y->from_mapping)
		return x->from_mapping ? 1 : -1; /* models first */
	return (x->id > y->id) - (x->id < y->id);
}

/* Order of model targets for the price lookup: (provider id, provider_model, id). */
static int price_cmp(const void *a, const void *b)
{
	const struct snap_target *x = *(const struct snap_target *const *)a;
	const struct snap_target *y = *(const struct snap_target *const *)b;
	if (x->provider->id != y->provider->id)
		return x->provider->id < y->provider->id ? -1 : 1;
	int c = strcmp(x->provider_model, y->provider_model);
	if (c)
		return c;
	return (x->id > y->id) - (x->id < y->id);
}

/* The models target with this provider and provider_model (lowest id), or NULL. */
static const struct snap_target *price_find(struct snap_target **idx, size_t n, int64_t pid, const char *pm)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct snap_target *t = idx[mid];
		int c =
		    t->provider->id != pid ? (t->provider->id < pid ? -1 : 1) : strcmp(t->provider_model, pm);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < n && idx[lo]->provider->id == pid && strcmp(idx[lo]->provider_model, pm) == 0)
		return idx[lo];
	return NULL;
}

static int load_targets(struct build *b)
{
	struct store_rows *mr = NULL, *mm = NULL;
	struct snap_target **idx = NULL; /* owned: temporary price index */
	int rc = -1;
	struct snapshot *s = b->s;

	if (query(b, "models",
	          "SELECT id, name, provider_id, provider_model, enabled, input_price_per_mtok, "
	          "output_price_per_mtok FROM models ORDER BY id",
	          &mr) ||
	    query(b, "model mappings",
	          "SELECT id, client_model, provider_id, provider_model, priority, weight, enabled "
	          "FROM model_mappings ORDER BY id",
	          &mm))
		goto out;
	size_t nm = store_rows_count(mr), nmap = store_rows_count(mm);
	s->targets = arena_array(s, nm + nmap, sizeof(*s->targets));

	for (size_t i = 0; i < nm; i++) {
		const struct snap_provider *p = snapshot_provider(s, store_rows_int(mr, i, "provider_id", 0));
		if (!p)
			continue;
		struct snap_target *t = &s->targets[s->ntargets++];
		t->id = store_rows_int(mr, i, "id", 0);
		t->client_name = col_text(b, mr, i, "name");
		t->provider = p;
		t->provider_model = col_text(b, mr, i, "provider_model");
		t->priority = p->priority;
		t->weight = p->weight;
		t->enabled = col_bool(mr, i, "enabled");
		t->from_mapping = false;
		t->input_price_per_mtok = store_rows_real(mr, i, "input_price_per_mtok", NAN);
		t->output_price_per_mtok = store_rows_real(mr, i, "output_price_per_mtok", NAN);
	}

	size_t nmodels = s->ntargets;
	idx = xcalloc(nmodels ? nmodels : 1, sizeof(struct snap_target *));
	for (size_t i = 0; i < nmodels; i++)
		idx[i] = &s->targets[i];
	qsort(idx, nmodels, sizeof(struct snap_target *), price_cmp);

	for (size_t i = 0; i < nmap; i++) {
		const struct snap_provider *p = snapshot_provider(s, store_rows_int(mm, i, "provider_id", 0));
		if (!p)
			continue;
		struct snap_target *t = &s->targets[s->ntargets];
		t->id = store_rows_int(mm, i, "id", 0);
		t->client_name = col_text(b, mm, i, "client_model");
		t->provider = p;
		t->provider_model = col_text(b, mm, i, "provider_model");
		if (col_int(b, mm, i, "priority", 0, INT_MIN, "model mapping", t->id, &t->priority) ||
		    col_int(b, mm, i, "weight", 100, 0, "model mapping", t->id, &t->weight))
			goto out;
		t->enabled = col_bool(mm, i, "enabled");
		t->from_mapping = true;
		const struct snap_target *priced = price_find(idx, nmodels, p->id, t->provider_model);
		t->input_price_per_mtok = priced ? priced->input_price_per_mtok : NAN;
		t->output_price_per_mtok = priced ? priced->output_price_per_mtok : NAN;
		s->ntargets++;
	}
	/* Sorting moves targets, so only after the price index is done with. */
	if (s->ntargets > 1) /* qsort(NULL, 0, ...) is undefined */
		qsort(s->targets, s->ntargets, sizeof(*s->targets), target_cmp);
	rc = 0;
out:
	free(idx);
	store_rows_free(mr);
	store_rows_free(mm);
	return rc;
}

static int load_allowed(struct build *b, struct snap_client_key *k, const char *text)
{
	json_t *doc = json_loads(text ? text : "[]", JSON_REJECT_DUPLICATES, NULL);
	int rc = -1;

	if (!json_is_array(doc))
		goto bad;
	k->allowed_models = arena_array(b->s, json_array_size(doc), sizeof(*k->allowed_models));
	size_t i;
	json_t *v;
	json_array_foreach (doc, i, v) {
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    strlen(json_string_value(v)) != json_string_length(v))
			goto bad;
		k->allowed_models[k->nallowed++] = snapshot__strdup(b->s, json_string_value(v));
	}
	rc = 0;
	goto out;
bad:
	build_fail(b, "client key %" PRId64 ": allowed_models is not a JSON array of model names", k->id);
out:
	json_decref(doc);
	return rc;
}

static int client_key_cmp(const void *a, const void *b)
{
	const struct snap_client_key *x = a, *y = b;
	return strcmp(x->key_hash, y->key_hash);
}

static int load_client_keys(struct build *b)
{
	struct store_rows *r = NULL;
	int rc = -1;
	struct snapshot *s = b->s;

	if (query(b, "client keys",
	          "SELECT id, name, key_hash, enabled, expires_at, allowed_models, rpm_limit, tpm_limit, "
	          "max_concurrency FROM client_keys ORDER BY id",
	          &r))
		return -1;
	size_t n = store_rows_count(r);
	s->client_keys = arena_array(s, n, sizeof(*s->client_keys));
	for (size_t i = 0; i < n; i++) {
		struct snap_client_key *k = &s->client_keys[i];
		k->id = store_rows_int(r, i, "id", 0);
		const char *h = store_rows_text(r, i, "key_hash");
		size_t hl = h ? strlen(h) : 0;
		bool ok = hl == 64;
		for (size_t j = 0; ok && j < hl; j++) {
			char c = h[j];
			if (c >= 'A' && c <= 'F')
				c = (char)(c - 'A' + 'a');
			ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
			k->key_hash[j] = c;
		}
		if (!ok) {
			build_fail(b, "client key %" PRId64 ": key_hash is not 64 hex digits", k->id);
			goto out;
		}
		k->key_hash[64] = '\0';
		k->name = col_text(b, r, i, "name");
		k->enabled = col_bool(r, i, "enabled");
		k->expires_at = store_rows_int(r, i, "expires_at", 0);
		if (load_allowed(b, k, store_rows_text(r, i, "allowed_models")) ||
		    col_int(b, r, i, "rpm_limit", 0, 0, "client key", k->id, &k->rpm_limit) ||
		    col_int(b, r, i, "tpm_limit", 0, 0, "client key", k->id, &k->tpm_limit) ||
		    col_int(b, r, i, "max_concurrency", 0, 0, "client key", k->id, &k->max_concurrency))
			goto out;
		s->nclient_keys++;
	}
	if (s->nclient_keys > 1)
		qsort(s->client_keys, s->nclient_keys, sizeof(*s->client_keys), client_key_cmp);
	/* UNIQUE holds in the database, but upper/lower case could still collide here. */
	for (size_t i = 1; i < s->nclient_keys; i++) {
		if (strcmp(s->client_keys[i - 1].key_hash, s->client_keys[i].key_hash) == 0) {
			build_fail(b, "client keys %" PRId64 " and %" PRId64 " have the same key_hash",
			           s->client_keys[i - 1].id, s->client_keys[i].id);
			goto out;
		}
	}
	rc = 0;
out:
	store_rows_free(r);
	return rc;
}

int snapshot_build(struct store *st, const struct secrets *sec, struct snapshot **out, char *err,
                   size_t errlen)
{
	struct build b = { .st = st, .sec = sec, .s = snapshot__new(), .err = err, .errlen = errlen };
	int rc = -1;

	*out = NULL;
	/* One transaction: the five reads must see one state of the
	 * database, or a write landing between them could pair a model with
	 * a provider that is no longer there, or miss a new one. */
	if (store_begin(st) != 0) {
		build_fail(&b, "cannot read the configuration: %s", store_errmsg(st));
		goto out;
	}
	rc = load_providers(&b) || load_keys(&b) || load_targets(&b) || load_client_keys(&b) ? -1 : 0;
	if (rc == 0 && settings_load(st, &b.s->settings) != 0) {
		build_fail(&b, "cannot read settings: %s", store_errmsg(st));
		rc = -1;
	}
	store_rollback(st); /* nothing was written */
out:
	if (rc == 0)
		*out = b.s;
	else
		snapshot_unref(b.s);
	return rc;
}

/* ---- publication ------------------------------------------------------- */

struct snapshot_sub {
	struct snapshot_hub *hub;           /* borrowed */
	struct waker *wake;                 /* owned; on the worker's base */
	struct snapshot **slot;             /* borrowed: the worker's pointer, written on its thread */
	_Atomic(struct snapshot *) mailbox; /* owned reference, or NULL once taken */
	struct snapshot_sub *prev, *next;   /* hub->subs, under hub->lock */
};

struct snapshot_hub {
	pthread_mutex_t lock;       /* the publish path: current, version, subs */
	pthread_mutex_t build_lock; /* one rebuild at a time */
	struct snapshot *current;   /* owned reference */
	uint64_t version;           /* of current */
	struct snapshot_sub *subs;
};

struct snapshot_hub *snapshot_hub_new(struct snapshot *initial)
{
	struct snapshot_hub *hub = xcalloc(1, sizeof(*hub));
	pthread_mutex_init(&hub->lock, NULL);
	pthread_mutex_init(&hub->build_lock, NULL);
	initial->version = hub->version = 1;
	hub->current = initial;
	return hub;
}

void snapshot_hub_free(struct snapshot_hub *hub)
{
	if (!hub)
		return;
	if (hub->subs)
		log_error(NULL, "snapshot hub freed with subscribers still attached");
	snapshot_unref(hub->current);
	pthread_mutex_destroy(&hub->lock);
	pthread_mutex_destroy(&hub->build_lock);
	free(hub);
}

/* On the worker's thread.  Freeing the old snapshot here is safe: it is
 * not a libevent object, and requests that still use it hold their own
 * reference. */
static void on_wake(void *arg)
{
	struct snapshot_sub *sub = arg;
	struct snapshot *s = atomic_exchange(&sub->mailbox, NULL);
	if (!s)
		return; /* taken by an earlier wake */
	struct snapshot *old = *sub->slot;
	*sub->slot = s;
	snapshot_unref(old);
}

struct snapshot_sub *snapshot_subscribe(struct snapshot_hub *hub, struct event_base *wake_base,
                                        struct snapshot **slot)
{
	struct snapshot_sub *sub = xcalloc(1, sizeof(*sub));
	sub->hub = hub;
	sub->slot = slot;
	atomic_init(&sub->mailbox, NULL);
	sub->wake = waker_new(wake_base, on_wake, sub);
	if (!sub->wake) {
		fprintf(stderr, "fusion: cannot create the snapshot wake event\n");
		abort();
	}
	pthread_mutex_lock(&hub->lock);
	*slot = snapshot_ref(hub->current);
	sub->next = hub->subs;
	if (hub->subs)
		hub->subs->prev = sub;
	hub->subs = sub;
	pthread_mutex_unlock(&hub->lock);
	return sub;
}

void snapshot_unsubscribe(struct snapshot_hub *hub, struct snapshot_sub *sub)
{
	if (!sub)
		return;
	pthread_mutex_lock(&hub->lock);
	if (sub->prev)
		sub->prev->next = sub->next;
	else
		hub->subs = sub->next;
	if (sub->next)
		sub->next->prev = sub->prev;
	pthread_mutex_unlock(&hub->lock);
	/* No publisher can reach sub now: publishers walk the list under the lock. */
	waker_free(sub->wake);
	snapshot_unref(atomic_exchange(&sub->mailbox, NULL));
	snapshot_unref(*sub->slot);
	*sub->slot = NULL;
	free(sub);
}

/* A configuration change must not forget which providers and keys are
 * cooling down: copy the breaker state over by id. */
static void carry_breakers(struct snapshot *to, const struct snapshot *from)
{
	for (size_t i = 0; i < to->nproviders; i++) {
		struct snap_provider *np = &to->providers[i];
		struct snap_provider *op = (struct snap_provider *)snapshot_provider(from, np->id);
		if (!op)
			continue;
		atomic_store(&np->cool_until_ms, atomic_load(&op->cool_until_ms));
		atomic_store(&np->fails, atomic_load(&op->fails));
		for (size_t k = 0; k < np->nkeys; k++) {
			for (size_t j = 0; j < op->nkeys; j++) {
				if (op->keys[j].id == np->keys[k].id)
					atomic_store(&np->keys[k].cool_until_ms,
					             atomic_load(&op->keys[j].cool_until_ms));
			}
		}
	}
}

void snapshot_publish(struct snapshot_hub *hub, struct snapshot *s)
{
	pthread_mutex_lock(&hub->lock);
	if (s->version != 0 || s == hub->current) {
		/* Republishing would break "versions only go up". */
		log_error(NULL, "snapshot published twice (version %" PRIu64 "); ignored", s->version);
		pthread_mutex_unlock(&hub->lock);
		snapshot_unref(s);
		return;
	}
	s->version = ++hub->version;
	struct snapshot *old = hub->current;
	if (old)
		carry_breakers(s, old);
	hub->current = s;
	for (struct snapshot_sub *sub = hub->subs; sub; sub = sub->next) {
		/* The reference is in the mailbox before the wake, so a wake
		 * always finds it (or a newer one). */
		snapshot_unref(atomic_exchange(&sub->mailbox, snapshot_ref(s)));
		waker_signal(sub->wake);
	}
	pthread_mutex_unlock(&hub->lock);
	snapshot_unref(old);
}

int snapshot_rebuild(struct snapshot_hub *hub, struct store *st, const struct secrets *sec, char *err,
                     size_t errlen)
{
	struct snapshot *s;
	pthread_mutex_lock(&hub->build_lock);
	int rc = snapshot_build(st, sec, &s, err, errlen);
	if (rc == 0)
		snapshot_publish(hub, s);
	pthread_mutex_unlock(&hub->build_lock);
	return rc;
}

struct snapshot *snapshot_hub_current(struct snapshot_hub *hub)
{
	pthread_mutex_lock(&hub->lock);
	struct snapshot *s = snapshot_ref(hub->current);
	pthread_mutex_unlock(&hub->lock);
	return s;
}
