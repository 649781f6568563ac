/*
 * password.c — see password.h.
 *
 * Thin policy layer over crypto_pwhash_str_*: it fixes the algorithm
 * (argon2id) and cost, bounds the input length, and keeps one dummy hash
 * so that a login for a missing user costs as much as a real verify.
 */
#include "auth/password.h"

#include <pthread.h>
#include <string.h>

#include <sodium.h>

#include "util/log.h"

_Static_assert(PASSWORD_HASH_BUF == crypto_pwhash_STRBYTES, "PASSWORD_HASH_BUF must match libsodium");
_Static_assert(PASSWORD_MEMLIMIT >= crypto_pwhash_argon2id_MEMLIMIT_MIN, "memlimit below libsodium minimum");
_Static_assert(PASSWORD_OPSLIMIT >= crypto_pwhash_argon2id_OPSLIMIT_MIN, "opslimit below libsodium minimum");

#define ARGON2ID_PREFIX "$argon2id$"

/* The dummy hash for password_burn(): written once under g_dummy_once, read-only afterwards. */
static pthread_once_t g_dummy_once = PTHREAD_ONCE_INIT;
static char g_dummy_hash[PASSWORD_HASH_BUF];
static bool g_dummy_ok;

/* Length of password if acceptable (<= PASSWORD_MAX_LEN), else -1; never reads past MAX+1 bytes. */
static long password_len(const char *password)
{
	if (!password)
		return -1;
	size_t n = strnlen(password, PASSWORD_MAX_LEN + 1);
	return n > PASSWORD_MAX_LEN ? -1 : (long)n;
}

/* A stored hash must be a NUL-terminated string that fits libsodium's buffer. */
static bool hash_fits(const char *stored_hash)
{
	return stored_hash && strnlen(stored_hash, PASSWORD_HASH_BUF) < PASSWORD_HASH_BUF;
}

int password_hash(const char *password, char *out, size_t outlen)
{
	long n = password_len(password);

	if (n < 0 || !out || outlen < PASSWORD_HASH_BUF)
		return -1;
	if (crypto_pwhash_str_alg(out, password, (unsigned long long)n, PASSWORD_OPSLIMIT, PASSWORD_MEMLIMIT,
	                          crypto_pwhash_ALG_ARGON2ID13) != 0) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

bool password_verify(const char *stored_hash, const char *password)
{
	long n = password_len(password);

	if (n < 0 || !hash_fits(stored_hash))
		return false;
	return crypto_pwhash_str_verify(stored_hash, password, (unsigned long long)n) == 0;
}

static void make_dummy(void)
{
	unsigned char pw[32];

	/* A random password nobody knows: burn() can never "succeed" meaningfully. */
	randombytes_buf(pw, sizeof(pw));
	g_dummy_ok = crypto_pwhash_str_alg(g_dummy_hash, (const char *)pw, sizeof(pw), PASSWORD_OPSLIMIT,
	                                   PASSWORD_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13) == 0;
	sodium_memzero(pw, sizeof(pw));
	if (!g_dummy_ok)
		log_warn(NULL, "password: cannot make the dummy hash; unknown-user logins will hash instead");
}

void password_burn(const char *password)
{
	long n = password_len(password);
	char tmp[PASSWORD_HASH_BUF];
	int ignored; /* the result is meaningless: only the time spent matters */

	/* Mirrors password_verify(): an over-long password is refused at once there too. */
	if (n < 0)
		return;
	pthread_once(&g_dummy_once, make_dummy);
	if (g_dummy_ok) {
		ignored = crypto_pwhash_str_verify(g_dummy_hash, password, (unsigned long long)n);
	} else {
		/* No dummy (allocation failed at init): a fresh hash costs the same as a verify. */
		ignored = crypto_pwhash_str_alg(tmp, password, (unsigned long long)n, PASSWORD_OPSLIMIT,
		                                PASSWORD_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13);
	}
	(void)ignored;
}

bool password_needs_rehash(const char *stored_hash)
{
	if (!hash_fits(stored_hash))
		return true;
	/* libsodium also accepts argon2i strings here; we want every stored hash to be argon2id. */
	if (strncmp(stored_hash, ARGON2ID_PREFIX, sizeof(ARGON2ID_PREFIX) - 1) != 0)
		return true;
	return crypto_pwhash_str_needs_rehash(stored_hash, PASSWORD_OPSLIMIT, PASSWORD_MEMLIMIT) != 0;
}
