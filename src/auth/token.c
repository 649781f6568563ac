/*
 * token.c — see token.h.  All randomness comes from libsodium's
 * randombytes (the OS CSPRNG); the raw bytes are wiped after encoding.
 */
#include "auth/token.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "util/log.h"

#define TOKEN_RAW_BYTES 32

_Static_assert(sodium_base64_ENCODED_LEN(TOKEN_RAW_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING) ==
                   TOKEN_RANDOM_CHARS + 1,
               "43 base64url characters for 32 bytes");
_Static_assert(TOKEN_PREFIX_MAX + TOKEN_RANDOM_CHARS + 1 <= TOKEN_BUF, "TOKEN_BUF too small");
_Static_assert(crypto_hash_sha256_BYTES * 2 + 1 == TOKEN_HASH_BUF, "TOKEN_HASH_BUF must hold hex SHA-256");

void token_new(const char *prefix, char out[TOKEN_BUF])
{
	unsigned char raw[TOKEN_RAW_BYTES];
	size_t plen;

	if (!prefix)
		prefix = "";
	plen = strnlen(prefix, TOKEN_PREFIX_MAX + 1);
	if (plen > TOKEN_PREFIX_MAX) {
		/* A constant in our own code is wrong; better to stop than to mint odd tokens. */
		log_error(NULL, "token_new: prefix longer than %d characters", TOKEN_PREFIX_MAX);
		abort();
	}
	memcpy(out, prefix, plen);
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(out + plen, TOKEN_BUF - plen, raw, sizeof(raw),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
}

void token_hash(const char *token, char out[TOKEN_HASH_BUF])
{
	unsigned char digest[crypto_hash_sha256_BYTES];

	if (!token)
		token = "";
	crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
	sodium_bin2hex(out, TOKEN_HASH_BUF, digest, sizeof(digest));
}

bool token_equal(const char *a, const char *b)
{
	size_t n;

	if (!a || !b)
		return false;
	n = strlen(a);
	if (n != strlen(b))
		return false;
	return sodium_memcmp(a, b, n) == 0;
}
