/*
 * test_password.c — unit tests for src/auth/password.c.
 *
 * Each argon2id hash here really costs 19 MiB and a few hundred ms under
 * ASan, so tests hash as few times as they can.  The timing test only
 * asserts a loose lower bound (burn >= 30% of a verify).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "auth/password.h"
#include "util/log.h"

static void setup(void)
{
	alarm(120); /* per-test time limit in place of .timeout (see test_token.c) */
	cr_assert_geq(sodium_init(), 0, "sodium_init failed");
	log_setup(LOG_WARN, LOG_TEXT);
}

/* No .timeout (alarm() in .init instead): see test_token.c. */
TestSuite(password, .init = setup);

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Read the unsigned number after `key` (e.g. "m=") in a hash string, or -1. */
static long param(const char *hash, const char *key)
{
	const char *p = strstr(hash, key);
	char *end = NULL;
	long v;

	if (!p)
		return -1;
	v = strtol(p + strlen(key), &end, 10);
	if (end == p + strlen(key) || (*end != ',' && *end != '$'))
		return -1;
	return v;
}

Test(password, round_trip_and_wrong_password)
{
	char h[PASSWORD_HASH_BUF];

	cr_assert_eq(password_hash("correct horse battery staple", h, sizeof(h)), 0);
	cr_assert(password_verify(h, "correct horse battery staple"));
	cr_assert_not(password_verify(h, "correct horse battery stapl"));
	cr_assert_not(password_verify(h, "correct horse battery staple "));
	cr_assert_not(password_verify(h, ""));
	cr_assert_not(password_needs_rehash(h), "a fresh hash must not need a rehash");
}

Test(password, hash_is_argon2id_with_owasp_cost)
{
	char h[PASSWORD_HASH_BUF];

	cr_assert_eq(password_hash("pw", h, sizeof(h)), 0);
	cr_assert_eq(strncmp(h, "$argon2id$v=19$", 15), 0, "hash %s is not argon2id v19", h);
	cr_assert_geq(param(h, "$m="), 19456, "memory cost in %s", h);
	cr_assert_geq(param(h, ",t="), 2, "time cost in %s", h);
	cr_assert_geq(param(h, ",p="), 1, "parallelism in %s", h);
	cr_assert_lt(strlen(h), PASSWORD_HASH_BUF);
}

Test(password, salts_differ)
{
	char a[PASSWORD_HASH_BUF], b[PASSWORD_HASH_BUF];

	cr_assert_eq(password_hash("same", a, sizeof(a)), 0);
	cr_assert_eq(password_hash("same", b, sizeof(b)), 0);
	cr_assert_str_neq(a, b, "two hashes of one password must have different salts");
}

Test(password, malformed_hashes_are_false)
{
	char h[PASSWORD_HASH_BUF];
	char cut[PASSWORD_HASH_BUF];
	char flipped[PASSWORD_HASH_BUF];
	char longer[PASSWORD_HASH_BUF + 16];

	cr_assert_eq(password_hash("pw", h, sizeof(h)), 0);
	cr_assert_not(password_verify(NULL, "pw"));
	cr_assert_not(password_verify(h, NULL));
	cr_assert_not(password_verify("", "pw"));
	cr_assert_not(password_verify("pw", "pw"));
	cr_assert_not(password_verify("$argon2id$", "pw"));
	cr_assert_not(password_verify("$argon2id$v=19$m=19456,t=2,p=1$$", "pw"));
	cr_assert_not(password_verify("$2b$12$abcdefghijklmnopqrstuuJ9Qd0mBWMoHHNf1dXzFyn7pQvmw1G6", "pw"));

	/* Truncated: drop the last 10 characters of a valid hash. */
	snprintf(cut, sizeof(cut), "%.*s", (int)strlen(h) - 10, h);
	cr_assert_not(password_verify(cut, "pw"));

	/* One character of the digest changed. */
	memcpy(flipped, h, sizeof(h));
	size_t last = strlen(flipped) - 1;
	flipped[last] = flipped[last] == 'A' ? 'B' : 'A';
	cr_assert_not(password_verify(flipped, "pw"));

	/* Longer than any libsodium hash string: refused before parsing. */
	memset(longer, 'A', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	memcpy(longer, h, strlen(h));
	cr_assert_not(password_verify(longer, "pw"));

	/*
	 * A hash string longer than crypto_pwhash_STRBYTES (a 64-byte digest)
	 * that libsodium itself would accept: refused by the length bound.
	 */
	unsigned char salt[crypto_pwhash_SALTBYTES], digest[64];
	char salt64[64], digest64[128], big[256];
	randombytes_buf(salt, sizeof(salt));
	cr_assert_eq(crypto_pwhash(digest, sizeof(digest), "pw", 2, salt, PASSWORD_OPSLIMIT,
	                           PASSWORD_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13),
	             0);
	sodium_bin2base64(salt64, sizeof(salt64), salt, sizeof(salt),
	                  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	sodium_bin2base64(digest64, sizeof(digest64), digest, sizeof(digest),
	                  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	snprintf(big, sizeof(big), "$argon2id$v=19$m=19456,t=2,p=1$%s$%s", salt64, digest64);
	cr_assert_geq(strlen(big), PASSWORD_HASH_BUF);
	cr_assert_eq(crypto_pwhash_str_verify(big, "pw", 2), 0,
	             "libsodium accepts it: the test is meaningful");
	cr_assert_not(password_verify(big, "pw"));
	cr_assert(password_needs_rehash(big));

	cr_assert(password_needs_rehash(NULL));
	cr_assert(password_needs_rehash(""));
	cr_assert(password_needs_rehash(cut));
	cr_assert(password_needs_rehash("$argon2id$garbage"));
}

Test(password, over_long_password_refused)
{
	char pw[PASSWORD_MAX_LEN + 2];
	char h[PASSWORD_HASH_BUF];

	memset(pw, 'x', sizeof(pw) - 1);
	pw[sizeof(pw) - 1] = '\0'; /* 1025 bytes */
	memcpy(h, "untouched", 10);
	cr_assert_eq(password_hash(pw, h, sizeof(h)), -1);

	/* A genuine hash of the 1025-byte password still does not verify: refused, not mismatched. */
	cr_assert_eq(crypto_pwhash_str_alg(h, pw, strlen(pw), PASSWORD_OPSLIMIT, PASSWORD_MEMLIMIT,
	                                   crypto_pwhash_ALG_ARGON2ID13),
	             0);
	cr_assert_not(password_verify(h, pw));

	/* Exactly the maximum is accepted. */
	pw[PASSWORD_MAX_LEN] = '\0';
	cr_assert_eq(password_hash(pw, h, sizeof(h)), 0);
	cr_assert(password_verify(h, pw));
}

Test(password, bad_arguments)
{
	char h[PASSWORD_HASH_BUF];

	cr_assert_eq(password_hash(NULL, h, sizeof(h)), -1);
	cr_assert_eq(password_hash("pw", NULL, sizeof(h)), -1);
	cr_assert_eq(password_hash("pw", h, PASSWORD_HASH_BUF - 1), -1);
}

Test(password, needs_rehash_for_other_params_or_algorithm)
{
	char weak[PASSWORD_HASH_BUF], strong[PASSWORD_HASH_BUF], i13[PASSWORD_HASH_BUF];

	cr_assert_eq(crypto_pwhash_str_alg(weak, "pw", 2, 1, 8 * 1024 * 1024, crypto_pwhash_ALG_ARGON2ID13),
	             0);
	cr_assert(password_verify(weak, "pw"), "old hashes keep verifying");
	cr_assert(password_needs_rehash(weak));

	cr_assert_eq(
	    crypto_pwhash_str_alg(strong, "pw", 2, 3, PASSWORD_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13), 0);
	cr_assert(password_needs_rehash(strong), "other params (even stronger) are brought to policy");

	/* argon2i needs t >= 3 in libsodium, so a real one differs in t as well ... */
	cr_assert_eq(crypto_pwhash_str_alg(i13, "pw", 2, 3, PASSWORD_MEMLIMIT, crypto_pwhash_ALG_ARGON2I13),
	             0);
	cr_assert(password_verify(i13, "pw"));
	cr_assert(password_needs_rehash(i13));

	/* ... and to test the algorithm check alone, relabel one of ours as argon2i with our params. */
	char id[PASSWORD_HASH_BUF], relabeled[PASSWORD_HASH_BUF];
	cr_assert_eq(password_hash("pw", id, sizeof(id)), 0);
	cr_assert_eq(strncmp(id, "$argon2id$", 10), 0);
	snprintf(relabeled, sizeof(relabeled), "$argon2i$%s", id + 10);
	cr_assert_eq(crypto_pwhash_str_needs_rehash(relabeled, PASSWORD_OPSLIMIT, PASSWORD_MEMLIMIT), 0,
	             "libsodium alone would keep it");
	cr_assert(password_needs_rehash(relabeled),
	          "argon2i with our params must still be rehashed to argon2id");
}

Test(password, burn_costs_about_a_verify)
{
	char h[PASSWORD_HASH_BUF];
	double verify_min = 1e9, burn_min = 1e9;

	cr_assert_eq(password_hash("secret", h, sizeof(h)), 0);
	password_burn("warm-up"); /* makes the dummy hash: not part of the measurement */
	for (int i = 0; i < 3; i++) {
		double t0 = now_s();
		cr_assert_not(password_verify(h, "wrong"));
		double t1 = now_s();
		password_burn("wrong");
		double t2 = now_s();
		if (t1 - t0 < verify_min)
			verify_min = t1 - t0;
		if (t2 - t1 < burn_min)
			burn_min = t2 - t1;
	}
	cr_assert_geq(burn_min, 0.3 * verify_min, "burn %.4fs vs verify %.4fs", burn_min, verify_min);
	/* Over-long passwords return at once from both, so they stay alike. */
	char pw[PASSWORD_MAX_LEN + 2];
	memset(pw, 'x', sizeof(pw) - 1);
	pw[sizeof(pw) - 1] = '\0';
	double t0 = now_s();
	password_burn(pw);
	password_burn(NULL);
	cr_assert_lt(now_s() - t0, 0.3 * verify_min, "over-long burn should be refused at once");
}

static void *burn_thread(void *arg)
{
	(void)arg;
	password_burn("from a thread");
	return NULL;
}

Test(password, burn_from_several_threads_at_once)
{
	pthread_t th[4];
	double t0 = now_s();

	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, burn_thread, NULL), 0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_join(th[i], NULL), 0);
	/* Each burn did real work (the first also made the dummy): at least a few ms. */
	cr_assert_gt(now_s() - t0, 0.005);
}
