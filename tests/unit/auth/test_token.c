/*
 * test_token.c — unit tests for src/auth/token.c: format, uniqueness,
 * hashing and constant-time equality.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "auth/token.h"
#include "util/log.h"

static void setup(void)
{
	alarm(30); /* per-test time limit in place of .timeout (see test_token.c) */
	cr_assert_geq(sodium_init(), 0, "sodium_init failed");
	log_setup(LOG_WARN, LOG_TEXT);
}

/*
 * No .timeout on this suite: Criterion 2.4.1's timeout thread (BoxFort)
 * leaks a 48-byte request when two timed tests overlap under --jobs 2,
 * which LeakSanitizer reports in the runner process.  Each test's worker
 * process sets alarm() in .init instead; SIGALRM shows as a crash.
 */
TestSuite(token, .init = setup);

static bool b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_';
}

static void check_format(const char *prefix, const char *t)
{
	size_t plen = strlen(prefix);

	cr_assert_eq(strlen(t), plen + TOKEN_RANDOM_CHARS, "token %s has length %zu", t, strlen(t));
	cr_assert_eq(strncmp(t, prefix, plen), 0, "token %s lacks prefix %s", t, prefix);
	for (size_t i = plen; t[i]; i++)
		cr_assert(b64url_char(t[i]), "token %s has %c at %zu", t, t[i], i);
}

Test(token, format)
{
	char t[TOKEN_BUF];

	token_new("fs_", t);
	check_format("fs_", t);
	token_new("fk-", t);
	check_format("fk-", t);
	token_new("", t);
	check_format("", t);
	token_new(NULL, t);
	check_format("", t);
	token_new("12345678", t);
	check_format("12345678", t);
	cr_assert_lt(strlen(t), TOKEN_BUF);
}

Test(token, random_part_decodes_to_32_bytes)
{
	char t[TOKEN_BUF];
	unsigned char bin[64];
	size_t bin_len = 0;
	const char *end = NULL;

	token_new("fk-", t);
	cr_assert_eq(sodium_base642bin(bin, sizeof(bin), t + 3, strlen(t + 3), NULL, &bin_len, &end,
	                               sodium_base64_VARIANT_URLSAFE_NO_PADDING),
	             0);
	cr_assert_eq(bin_len, 32);
	cr_assert_eq(*end, '\0');
}

Test(token, prefix_too_long_aborts, .signal = SIGABRT)
{
	char t[TOKEN_BUF];

	token_new("123456789", t); /* logs one error line, then aborts */
}

static int cmp_tok(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

Test(token, unique_over_1000)
{
	enum { N = 1000 };
	char(*t)[TOKEN_BUF] = calloc(N, TOKEN_BUF);

	cr_assert_not_null(t);
	for (int i = 0; i < N; i++)
		token_new("fs_", t[i]);
	qsort(t, N, TOKEN_BUF, cmp_tok);
	for (int i = 1; i < N; i++)
		cr_assert_str_neq(t[i - 1], t[i], "duplicate token");
	free(t);
}

Test(token, hash_is_hex_sha256_and_deterministic)
{
	char t[TOKEN_BUF], a[TOKEN_HASH_BUF], b[TOKEN_HASH_BUF], c[TOKEN_HASH_BUF];

	token_hash("abc", a);
	cr_assert_str_eq(a, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	token_hash("", a);
	cr_assert_str_eq(a, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

	token_new("fk-", t);
	token_hash(t, a);
	token_hash(t, b);
	cr_assert_str_eq(a, b);
	cr_assert_eq(strlen(a), 64);
	for (size_t i = 0; i < 64; i++)
		cr_assert((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f'), "non-hex %c", a[i]);
	t[5] ^= 1;
	token_hash(t, c);
	cr_assert_str_neq(a, c);
}

Test(token, equal)
{
	char t[TOKEN_BUF], u[TOKEN_BUF];

	token_new("fs_", t);
	memcpy(u, t, sizeof(t));
	cr_assert(token_equal(t, u));
	cr_assert(token_equal("", ""));
	u[10] = u[10] == 'a' ? 'b' : 'a';
	cr_assert_not(token_equal(t, u));
	u[10] = t[10];
	u[strlen(u) - 1] = '\0';
	cr_assert_not(token_equal(t, u), "prefix of a token is not equal");
	cr_assert_not(token_equal(u, t));
	cr_assert_not(token_equal(t, NULL));
	cr_assert_not(token_equal(NULL, t));
	cr_assert_not(token_equal(NULL, NULL));
	cr_assert_not(token_equal("abc", "abd"));
	cr_assert_not(token_equal("abc", "ab"));
}
