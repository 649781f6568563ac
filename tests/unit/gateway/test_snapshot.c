/*
 * test_snapshot.c — unit tests for building the configuration snapshot
 * (src/gateway/snapshot.c) from a real database, its lookups, and
 * snapshot_rebuild through a hub.  The publication stress test is in
 * test_snapshot_concurrency.c, which builds without a store.
 *
 * Each test gets a mkdtemp directory with a migrated SQLite database and
 * a secrets handle made from a fixed hex master key (so no key file is
 * written).  Rows are inserted with store_exec/store_query; provider keys
 * and headers are encrypted with secrets_encrypt exactly as the admin API
 * stores them.  Criterion runs every test in its own process, so
 * snapshot__live_count() starts at 0 in each.
 */
#include <dirent.h>
#include <errno.h>
#include <event2/thread.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "testutil.h"

#include "auth/secrets.h"
#include "gateway/snapshot.h"
#include "store/store.h"
#include "util/log.h"

#define MASTER_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define OTHER_HEX "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static char g_dir[64];
static char g_db[128];
static struct store *g_st;
static struct secrets *g_sec;

static void setup(void)
{
	char err[512] = "";
	log_setup(LOG_ERROR, LOG_TEXT);
	cr_assert_geq(sodium_init(), 0);
	cr_assert_eq(evthread_use_pthreads(), 0);
	testutil_mkdtemp(g_dir, sizeof(g_dir), "snap");
	snprintf(g_db, sizeof(g_db), "%s/fusion.db", g_dir);
	cr_assert_eq(store_open(g_db, STORE_MIGRATE, &g_st, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(secrets_open(g_db, MASTER_HEX, &g_sec, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
	store_close(g_st);
	secrets_close(g_sec);
	g_st = NULL;
	g_sec = NULL;
	testutil_rmdir(g_dir);
}

TestSuite(snapshot, .init = setup, .fini = teardown, .timeout = 60);

/* ---- fixture helpers --------------------------------------------------- */

static int64_t insert_returning_id(const char *sql, const struct store_value *params, size_t n)
{
	struct store_rows *r = NULL;
	cr_assert_eq(store_query(g_st, sql, params, n, &r), 0, "%s: %s", sql, store_errmsg(g_st));
	cr_assert_eq(store_rows_count(r), 1);
	int64_t id = store_rows_int(r, 0, "id", -1);
	store_rows_free(r);
	return id;
}

/* Ciphertext of plain under sec, as a BLOB parameter; *buf to free. */
static struct store_value enc(const struct secrets *sec, const char *plain, unsigned char **buf)
{
	size_t len = 0;
	cr_assert_eq(secrets_encrypt(sec, plain, strlen(plain), buf, &len), 0);
	return sv_blob(*buf, len);
}

static int64_t add_provider_sec(const struct secrets *sec, const char *name, const char *type, int prio,
                                int weight, bool enabled, const char *headers_json)
{
	unsigned char *ct = NULL;
	struct store_value p[] = {
		sv_text(name),
		sv_text(type),
		sv_text("https://upstream.example/v1"),
		sv_int(prio),
		sv_int(weight),
		sv_int(30000),
		sv_bool(enabled),
		headers_json ? enc(sec, headers_json, &ct) : sv_null(),
	};
	int64_t id =
	    insert_returning_id("INSERT INTO providers (name, type, base_url, priority, weight, timeout_ms, "
	                        "enabled, headers_enc, created_at, updated_at) "
	                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0) RETURNING id",
	                        p, 8);
	free(ct);
	return id;
}

static int64_t add_provider(const char *name, const char *type, int prio, int weight, bool enabled,
                            const char *headers_json)
{
	return add_provider_sec(g_sec, name, type, prio, weight, enabled, headers_json);
}

static int64_t add_key_sec(const struct secrets *sec, int64_t provider, const char *secret, int weight,
                           bool enabled, const char *status, int position)
{
	unsigned char *ct = NULL;
	struct store_value p[] = {
		sv_int(provider), enc(sec, secret, &ct), sv_text("sk-...xx"), sv_int(weight),
		sv_bool(enabled), sv_text(status),       sv_int(position),
	};
	int64_t id =
	    insert_returning_id("INSERT INTO provider_keys (provider_id, key_enc, key_hint, weight, enabled, "
	                        "status, position, created_at, updated_at) "
	                        "VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0) RETURNING id",
	                        p, 7);
	free(ct);
	return id;
}

static int64_t add_key(int64_t provider, const char *secret, int weight, bool enabled, const char *status,
                       int position)
{
	return add_key_sec(g_sec, provider, secret, weight, enabled, status, position);
}

/* in/out < 0 leave the price NULL. */
static int64_t add_model(const char *name, int64_t provider, const char *pmodel, bool enabled, double in,
                         double out)
{
	struct store_value p[] = {
		sv_text(name),
		sv_int(provider),
		sv_text(pmodel),
		sv_bool(enabled),
		in < 0 ? sv_null() : sv_real(in),
		out < 0 ? sv_null() : sv_real(out),
	};
	return insert_returning_id("INSERT INTO models (name, provider_id, provider_model, enabled, "
	                           "input_price_per_mtok, output_price_per_mtok, created_at, updated_at) "
	                           "VALUES (?, ?, ?, ?, ?, ?, 0, 0) RETURNING id",
	                           p, 6);
}

static int64_t add_mapping(const char *client, int64_t provider, const char *pmodel, int prio, int weight,
                           bool enabled)
{
	struct store_value p[] = {
		sv_text(client), sv_int(provider), sv_text(pmodel),
		sv_int(prio),    sv_int(weight),   sv_bool(enabled),
	};
	return insert_returning_id("INSERT INTO model_mappings (client_model, provider_id, provider_model, "
	                           "priority, weight, enabled, created_at, updated_at) "
	                           "VALUES (?, ?, ?, ?, ?, ?, 0, 0) RETURNING id",
	                           p, 6);
}

static int64_t add_client_key(const char *name, const char *hash, bool enabled, int64_t expires_at,
                              const char *allowed, int rpm, int tpm, int conc)
{
	struct store_value p[] = {
		sv_text(name),
		sv_text(hash),
		sv_text("fk-abc"),
		sv_bool(enabled),
		expires_at ? sv_int(expires_at) : sv_null(),
		sv_text(allowed),
		sv_int(rpm),
		sv_int(tpm),
		sv_int(conc),
	};
	return insert_returning_id(
	    "INSERT INTO client_keys (name, key_hash, key_prefix, enabled, expires_at, "
	    "allowed_models, rpm_limit, tpm_limit, max_concurrency, created_at, "
	    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0) RETURNING id",
	    p, 9);
}

/* The lower-case hex sha256 of s. */
static void hash_hex(const char *s, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)s, strlen(s));
	sodium_bin2hex(out, 65, h, sizeof(h));
}

static struct snapshot *build_ok(void)
{
	struct snapshot *s = NULL;
	char err[512] = "";
	cr_assert_eq(snapshot_build(g_st, g_sec, &s, err, sizeof(err)), 0, "build failed: %s", err);
	cr_assert_not_null(s);
	return s;
}

/* Build must fail; returns the message (static buffer). */
static const char *build_fails(void)
{
	static char err[512];
	struct snapshot *s = (struct snapshot *)1;
	err[0] = '\0';
	cr_assert_neq(snapshot_build(g_st, g_sec, &s, err, sizeof(err)), 0, "build should have failed");
	cr_assert_null(s, "*out must be NULL on failure");
	cr_assert_neq(err[0], '\0', "a failed build must say why");
	cr_assert_eq(snapshot__live_count(), 0, "the half-built snapshot must be freed");
	return err;
}

/* ---- the full fixture -------------------------------------------------- */

struct fixture {
	int64_t p_openai, p_claude, p_gem;
	int64_t k_ok, k_disabled, k_bad, k_ant;
	int64_t m_gpt_openai, m_gpt_claude, m_solo;
	int64_t map_gem, map_openai, map_alias;
	int64_t c_all, c_some, c_off;
	char h_all[65], h_some[65], h_off[65];
};

static void make_fixture(struct fixture *f)
{
	f->p_openai = add_provider("openai-a", "openai", 10, 50, true,
	                           "{\"OpenAI-Organization\": \"org-1\", \"X-Trace\": \"a b\\tc\"}");
	f->p_claude = add_provider("claude", "anthropic", 5, 100, false, NULL);
	f->p_gem = add_provider("gem", "gemini", 0, 100, true, "{}");

	/* position order is 0, 1, 2 whatever the insert order */
	f->k_ok = add_key(f->p_openai, "sk-openai-ok", 70, true, "ok", 1);
	f->k_disabled = add_key(f->p_openai, "sk-openai-disabled", 30, false, "ok", 0);
	f->k_bad = add_key(f->p_openai, "sk-openai-bad", 10, true, "bad", 2);
	f->k_ant = add_key(f->p_claude, "sk-ant-123", 100, true, "ok", 0);

	f->m_gpt_openai = add_model("gpt-4o", f->p_openai, "gpt-4o-2024", true, 2.5, 10.0);
	f->m_gpt_claude = add_model("gpt-4o", f->p_claude, "claude-x", false, -1, -1);
	f->m_solo = add_model("solo", f->p_gem, "gemini-pro", true, 0.5, -1);
	f->map_gem = add_mapping("gpt-4o", f->p_gem, "gemini-1.5", 20, 40, true);
	f->map_openai = add_mapping("gpt-4o", f->p_openai, "gpt-4o-2024", 1, 60, true);
	f->map_alias = add_mapping("alias", f->p_openai, "gpt-4o-2024", 0, 100, false);

	hash_hex("fk-all", f->h_all);
	hash_hex("fk-some", f->h_some);
	hash_hex("fk-off", f->h_off);
	f->c_all = add_client_key("all", f->h_all, true, 0, "[]", 60, 1000, 4);
	f->c_some = add_client_key("some", f->h_some, true, 0, "[\"gpt-4o\", \"solo\"]", 0, 0, 0);
	f->c_off = add_client_key("off", f->h_off, false, 1700000000000, "[]", 0, 0, 0);
}

Test(snapshot, providers_keys_and_headers)
{
	struct fixture f;
	make_fixture(&f);
	struct snapshot *s = build_ok();

	cr_assert_eq(s->version, 0, "not published yet");
	cr_assert_eq(s->nproviders, 3);
	for (size_t i = 1; i < s->nproviders; i++)
		cr_assert_lt(s->providers[i - 1].id, s->providers[i].id, "providers sorted by id");

	const struct snap_provider *p = snapshot_provider(s, f.p_openai);
	cr_assert_not_null(p);
	cr_assert_str_eq(p->name, "openai-a");
	cr_assert_eq(p->type, PROVIDER_OPENAI);
	cr_assert_str_eq(p->base_url, "https://upstream.example/v1");
	cr_assert_eq(p->priority, 10);
	cr_assert_eq(p->weight, 50);
	cr_assert_eq(p->timeout_ms, 30000);
	cr_assert(p->enabled);
	cr_assert_eq(p->nheaders, 2);
	bool org = false, trace = false;
	for (size_t i = 0; i < p->nheaders; i++) {
		if (strcmp(p->headers[i].name, "OpenAI-Organization") == 0)
			org = strcmp(p->headers[i].value, "org-1") == 0;
		if (strcmp(p->headers[i].name, "X-Trace") == 0)
			trace = strcmp(p->headers[i].value, "a b\tc") == 0;
	}
	cr_assert(org && trace, "both extra headers decrypted with their values");

	/* keys: every one present, in position order, flags kept */
	cr_assert_eq(p->nkeys, 3);
	cr_assert_eq(p->keys[0].id, f.k_disabled);
	cr_assert_str_eq(p->keys[0].secret, "sk-openai-disabled");
	cr_assert_not(p->keys[0].enabled);
	cr_assert_not(p->keys[0].bad);
	cr_assert_eq(p->keys[0].weight, 30);
	cr_assert_eq(p->keys[1].id, f.k_ok);
	cr_assert_str_eq(p->keys[1].secret, "sk-openai-ok");
	cr_assert(p->keys[1].enabled);
	cr_assert_not(p->keys[1].bad);
	cr_assert_eq(p->keys[1].weight, 70);
	cr_assert_eq(p->keys[2].id, f.k_bad);
	cr_assert(p->keys[2].enabled);
	cr_assert(p->keys[2].bad, "status 'bad' is flagged");

	const struct snap_provider *c = snapshot_provider(s, f.p_claude);
	cr_assert_not_null(c);
	cr_assert_eq(c->type, PROVIDER_ANTHROPIC);
	cr_assert_not(c->enabled, "disabled provider present but flagged");
	cr_assert_eq(c->nheaders, 0);
	cr_assert_eq(c->nkeys, 1);
	cr_assert_str_eq(c->keys[0].secret, "sk-ant-123");

	const struct snap_provider *g = snapshot_provider(s, f.p_gem);
	cr_assert_not_null(g);
	cr_assert_eq(g->type, PROVIDER_GEMINI);
	cr_assert_eq(g->nheaders, 0, "{} is no headers");
	cr_assert_eq(g->nkeys, 0);
	cr_assert_null(g->keys);

	cr_assert_null(snapshot_provider(s, 0));
	cr_assert_null(snapshot_provider(s, f.p_gem + 100));
	cr_assert_null(snapshot_provider(s, -1));

	snapshot_unref(s);
	cr_assert_eq(snapshot__live_count(), 0);
}

Test(snapshot, targets_sorted_and_looked_up)
{
	struct fixture f;
	make_fixture(&f);
	struct snapshot *s = build_ok();

	cr_assert_eq(s->ntargets, 6);
	for (size_t i = 1; i < s->ntargets; i++) {
		const struct snap_target *a = &s->targets[i - 1], *b = &s->targets[i];
		int c = strcmp(a->client_name, b->client_name);
		cr_assert(c < 0 || (c == 0 && a->priority >= b->priority), "targets[%zu] out of order", i);
	}

	const struct snap_target *t = NULL;
	size_t n = snapshot_targets(s, "gpt-4o", &t);
	cr_assert_eq(n, 4);
	cr_assert_not_null(t);
	/* mapping to gem (20), model on openai (provider prio 10), model on
	 * claude (provider prio 5), mapping to openai (1) */
	cr_assert(t[0].from_mapping);
	cr_assert_eq(t[0].id, f.map_gem);
	cr_assert_eq(t[0].provider->id, f.p_gem);
	cr_assert_str_eq(t[0].provider_model, "gemini-1.5");
	cr_assert_eq(t[0].priority, 20);
	cr_assert_eq(t[0].weight, 40);
	cr_assert(isnan(t[0].input_price_per_mtok) && isnan(t[0].output_price_per_mtok),
	          "no models row for gem/gemini-1.5: prices unset");

	cr_assert_not(t[1].from_mapping);
	cr_assert_eq(t[1].id, f.m_gpt_openai);
	cr_assert_eq(t[1].provider, snapshot_provider(s, f.p_openai), "points into the same snapshot");
	cr_assert_eq(t[1].priority, 10, "a models row takes its provider's priority");
	cr_assert_eq(t[1].weight, 50, "and weight");
	cr_assert_float_eq(t[1].input_price_per_mtok, 2.5, 1e-9);
	cr_assert_float_eq(t[1].output_price_per_mtok, 10.0, 1e-9);
	cr_assert(t[1].enabled);

	cr_assert_eq(t[2].id, f.m_gpt_claude);
	cr_assert_not(t[2].enabled, "disabled model present but flagged");
	cr_assert_not(t[2].provider->enabled, "its provider is disabled too");
	cr_assert(isnan(t[2].input_price_per_mtok));

	cr_assert(t[3].from_mapping);
	cr_assert_eq(t[3].id, f.map_openai);
	cr_assert_eq(t[3].priority, 1);
	cr_assert_float_eq(t[3].input_price_per_mtok, 2.5, 1e-9, "mapping inherits the models row's prices");
	cr_assert_float_eq(t[3].output_price_per_mtok, 10.0, 1e-9);

	for (size_t i = 0; i < n; i++)
		cr_assert_str_eq(t[i].client_name, "gpt-4o");

	n = snapshot_targets(s, "alias", &t);
	cr_assert_eq(n, 1);
	cr_assert_not(t[0].enabled, "disabled mapping present but flagged");
	cr_assert_float_eq(t[0].input_price_per_mtok, 2.5, 1e-9);

	n = snapshot_targets(s, "solo", &t);
	cr_assert_eq(n, 1);
	cr_assert_eq(t[0].id, f.m_solo);
	cr_assert_float_eq(t[0].input_price_per_mtok, 0.5, 1e-9);
	cr_assert(isnan(t[0].output_price_per_mtok), "NULL price reads as NaN");

	t = (const struct snap_target *)s;
	cr_assert_eq(snapshot_targets(s, "gpt-4", &t), 0, "no prefix match");
	cr_assert_null(t);
	cr_assert_eq(snapshot_targets(s, "", &t), 0);
	cr_assert_eq(snapshot_targets(s, "zzz", &t), 0);
	cr_assert_eq(snapshot_targets(s, "a", &t), 0);

	snapshot_unref(s);
	cr_assert_eq(snapshot__live_count(), 0);
}

Test(snapshot, client_keys)
{
	struct fixture f;
	make_fixture(&f);
	struct snapshot *s = build_ok();

	cr_assert_eq(s->nclient_keys, 3);
	for (size_t i = 1; i < s->nclient_keys; i++)
		cr_assert_lt(strcmp(s->client_keys[i - 1].key_hash, s->client_keys[i].key_hash), 0);

	const struct snap_client_key *k = snapshot_client_key(s, f.h_all);
	cr_assert_not_null(k);
	cr_assert_eq(k->id, f.c_all);
	cr_assert_str_eq(k->name, "all");
	cr_assert(k->enabled);
	cr_assert_eq(k->expires_at, 0, "NULL expires_at is never");
	cr_assert_eq(k->nallowed, 0);
	cr_assert(snap_client_key_allows(k, "anything"), "[] allows every model");
	cr_assert_eq(k->rpm_limit, 60);
	cr_assert_eq(k->tpm_limit, 1000);
	cr_assert_eq(k->max_concurrency, 4);

	k = snapshot_client_key(s, f.h_some);
	cr_assert_not_null(k);
	cr_assert_eq(k->id, f.c_some);
	cr_assert_eq(k->nallowed, 2);
	cr_assert_str_eq(k->allowed_models[0], "gpt-4o");
	cr_assert_str_eq(k->allowed_models[1], "solo");
	cr_assert(snap_client_key_allows(k, "solo"));
	cr_assert_not(snap_client_key_allows(k, "alias"));
	cr_assert_not(snap_client_key_allows(k, "gpt-4"));

	k = snapshot_client_key(s, f.h_off);
	cr_assert_not_null(k);
	cr_assert_not(k->enabled, "disabled key present but flagged");
	cr_assert_eq(k->expires_at, 1700000000000);

	char other[65];
	hash_hex("fk-nope", other);
	cr_assert_null(snapshot_client_key(s, other));
	cr_assert_null(snapshot_client_key(s, ""));

	snapshot_unref(s);
	cr_assert_eq(snapshot__live_count(), 0);
}

Test(snapshot, upper_case_hash_is_normalised)
{
	char h[65];
	hash_hex("fk-upper", h);
	char up[65];
	for (size_t i = 0; i < 65; i++)
		up[i] = (h[i] >= 'a' && h[i] <= 'f') ? (char)(h[i] - 'a' + 'A') : h[i];
	add_client_key("up", up, true, 0, "[]", 0, 0, 0);
	struct snapshot *s = build_ok();
	cr_assert_not_null(snapshot_client_key(s, h));
	snapshot_unref(s);
}

Test(snapshot, empty_database)
{
	struct snapshot *s = build_ok();
	cr_assert_eq(s->nproviders, 0);
	cr_assert_eq(s->ntargets, 0);
	cr_assert_eq(s->nclient_keys, 0);
	const struct snap_target *t;
	cr_assert_eq(snapshot_targets(s, "x", &t), 0);
	cr_assert_null(snapshot_provider(s, 1));
	cr_assert_null(snapshot_client_key(s, "00"));
	snapshot_unref(s);
	cr_assert_eq(snapshot__live_count(), 0);
}

Test(snapshot, refcount)
{
	struct snapshot *s = build_ok();
	cr_assert_eq(atomic_load(&s->refs), 1);
	cr_assert_eq(snapshot_ref(s), s);
	cr_assert_eq(atomic_load(&s->refs), 2);
	snapshot_unref(s);
	cr_assert_eq(snapshot__live_count(), 1, "still referenced");
	snapshot_unref(s);
	cr_assert_eq(snapshot__live_count(), 0);
	snapshot_unref(NULL);
}

Test(snapshot, provider_type_names)
{
	enum provider_type t;
	cr_assert_eq(provider_type_parse("openai", &t), 0);
	cr_assert_eq(t, PROVIDER_OPENAI);
	cr_assert_eq(provider_type_parse("anthropic", &t), 0);
	cr_assert_eq(t, PROVIDER_ANTHROPIC);
	cr_assert_eq(provider_type_parse("gemini", &t), 0);
	cr_assert_eq(t, PROVIDER_GEMINI);
	cr_assert_neq(provider_type_parse("OpenAI", &t), 0);
	cr_assert_neq(provider_type_parse("", &t), 0);
	cr_assert_neq(provider_type_parse(NULL, &t), 0);
	cr_assert_str_eq(provider_type_name(PROVIDER_ANTHROPIC), "anthropic");
	cr_assert_str_eq(provider_type_name((enum provider_type)42), "unknown");
}

/* ---- failures ---------------------------------------------------------- */

Test(snapshot, key_under_another_master_key_fails_without_leaking)
{
	char err[512] = "";
	struct secrets *other = NULL;
	cr_assert_eq(secrets_open(g_db, OTHER_HEX, &other, err, sizeof(err)), 0, "%s", err);
	int64_t p1 = add_provider("fine", "openai", 0, 100, true, NULL);
	add_key(p1, "sk-fine-key", 100, true, "ok", 0);
	int64_t p2 = add_provider("broken", "anthropic", 0, 100, true, NULL);
	int64_t k = add_key_sec(other, p2, "sk-ant-TOPSECRET", 100, true, "ok", 0);
	secrets_close(other);

	const char *msg = build_fails();
	char want[64];
	snprintf(want, sizeof(want), "provider %lld:", (long long)p2);
	cr_assert_not_null(strstr(msg, want), "message names the provider: %s", msg);
	snprintf(want, sizeof(want), "key %lld", (long long)k);
	cr_assert_not_null(strstr(msg, want), "and the key id: %s", msg);
	cr_assert_null(strstr(msg, "TOPSECRET"), "never the secret: %s", msg);
	cr_assert_null(strstr(msg, "sk-"), "nor any key material: %s", msg);
}

Test(snapshot, headers_under_another_master_key_fail)
{
	char err[512] = "";
	struct secrets *other = NULL;
	cr_assert_eq(secrets_open(g_db, OTHER_HEX, &other, err, sizeof(err)), 0, "%s", err);
	int64_t p = add_provider_sec(other, "h", "openai", 0, 100, true, "{\"X-Api\": \"HDRSECRET\"}");
	secrets_close(other);
	const char *msg = build_fails();
	char want[64];
	snprintf(want, sizeof(want), "provider %lld:", (long long)p);
	cr_assert_not_null(strstr(msg, want), "%s", msg);
	cr_assert_null(strstr(msg, "HDRSECRET"), "%s", msg);
}

Test(snapshot, headers_not_an_object_fail_without_echo)
{
	add_provider("h", "openai", 0, 100, true, "[\"HDRSECRET\"]");
	const char *msg = build_fails();
	cr_assert_null(strstr(msg, "HDRSECRET"), "%s", msg);
	cr_assert_not_null(strstr(msg, "not a JSON object"), "%s", msg);
}

Test(snapshot, header_value_with_newline_fails)
{
	add_provider("h", "openai", 0, 100, true, "{\"X-Inject\": \"v\\r\\nHost: evil\"}");
	const char *msg = build_fails();
	cr_assert_not_null(strstr(msg, "X-Inject"), "names the header: %s", msg);
	cr_assert_null(strstr(msg, "evil"), "not its value: %s", msg);
}

Test(snapshot, header_bad_name_fails)
{
	add_provider("h", "openai", 0, 100, true, "{\"Bad Name\": \"v\"}");
	build_fails();
}

Test(snapshot, key_with_control_character_fails)
{
	int64_t p = add_provider("k", "openai", 0, 100, true, NULL);
	add_key(p, "sk-abc\n", 100, true, "ok", 0);
	const char *msg = build_fails();
	cr_assert_null(strstr(msg, "sk-abc"), "%s", msg);
}

Test(snapshot, unknown_provider_type_fails)
{
	int64_t p = add_provider("weird", "mistral", 0, 100, true, NULL);
	const char *msg = build_fails();
	char want[64];
	snprintf(want, sizeof(want), "provider %lld: unknown type \"mistral\"", (long long)p);
	cr_assert_str_eq(msg, want);
}

Test(snapshot, bad_allowed_models_fails)
{
	char h[65];
	hash_hex("fk-x", h);
	int64_t id = add_client_key("x", h, true, 0, "{\"a\": 1}", 0, 0, 0);
	const char *msg = build_fails();
	char want[64];
	snprintf(want, sizeof(want), "client key %lld:", (long long)id);
	cr_assert_not_null(strstr(msg, want), "%s", msg);

	struct store_value p[] = { sv_text("[\"ok\", 3]"), sv_int(id) };
	cr_assert_eq(store_exec(g_st, "UPDATE client_keys SET allowed_models = ? WHERE id = ?", p, 2, NULL),
	             0);
	build_fails();
	p[0] = sv_text("[\"ok\"]");
	cr_assert_eq(store_exec(g_st, "UPDATE client_keys SET allowed_models = ? WHERE id = ?", p, 2, NULL),
	             0);
	snapshot_unref(build_ok());
}

Test(snapshot, bad_key_hash_fails)
{
	add_client_key("x", "abc", true, 0, "[]", 0, 0, 0);
	build_fails();
}

Test(snapshot, negative_weight_fails)
{
	int64_t p = add_provider("w", "openai", 0, -1, true, NULL);
	const char *msg = build_fails();
	char want[64];
	snprintf(want, sizeof(want), "provider %lld: weight -1 is out of range", (long long)p);
	cr_assert_str_eq(msg, want);
}

Test(snapshot, build_inside_open_transaction_fails_cleanly)
{
	cr_assert_eq(store_begin(g_st), 0);
	const char *msg = build_fails();
	cr_assert_not_null(strstr(msg, "cannot read the configuration"), "%s", msg);
	cr_assert_eq(store_rollback(g_st), 0);
}

/* ---- rebuild through a hub --------------------------------------------- */

Test(snapshot, rebuild_publishes_and_failure_keeps_current)
{
	char err[512] = "";
	struct snapshot_hub *hub = snapshot_hub_new(build_ok());
	struct snapshot *cur = snapshot_hub_current(hub);
	cr_assert_eq(cur->version, 1);
	cr_assert_eq(cur->nproviders, 0);
	snapshot_unref(cur);

	int64_t p = add_provider("new", "gemini", 0, 100, true, NULL);
	cr_assert_eq(snapshot_rebuild(hub, g_st, g_sec, err, sizeof(err)), 0, "%s", err);
	cur = snapshot_hub_current(hub);
	cr_assert_eq(cur->version, 2);
	cr_assert_not_null(snapshot_provider(cur, p));
	snapshot_unref(cur);

	add_provider("bad", "nope", 0, 100, true, NULL);
	cr_assert_neq(snapshot_rebuild(hub, g_st, g_sec, err, sizeof(err)), 0);
	cr_assert_not_null(strstr(err, "unknown type"), "%s", err);
	cur = snapshot_hub_current(hub);
	cr_assert_eq(cur->version, 2, "a failed rebuild publishes nothing");
	cr_assert_eq(cur->nproviders, 1);
	snapshot_unref(cur);

	cr_assert_eq(snapshot__live_count(), 1, "only the hub's current is alive");
	snapshot_hub_free(hub);
	cr_assert_eq(snapshot__live_count(), 0);
}
