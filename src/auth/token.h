/*
 * token.h — random bearer tokens (session tokens, client API keys).
 *
 * A token is a short readable prefix ("fs_" for sessions, "fk-" for
 * client keys) followed by 43 characters of URL-safe base64 (no
 * padding) of 32 random bytes: 256 bits, so guessing is hopeless and a
 * plain SHA-256 is the right storage form (no salt or slow hash needed;
 * the lookup can be an indexed equality on the hash column).
 *
 * Data flow: token_new() -> show the token to the user once -> store
 * only token_hash(token).  On each request: token_hash(presented) ->
 * look the row up by hash.  token_equal() is for the rare case where two
 * secret strings must be compared directly (e.g. a CSRF token against
 * the session's copy).
 *
 * Preconditions: the process has called sodium_init() successfully.
 * Threads: every function is safe to call from several threads at once.
 */
#ifndef FUSION_AUTH_TOKEN_H
#define FUSION_AUTH_TOKEN_H

#include <stdbool.h>

#define TOKEN_PREFIX_MAX 8
#define TOKEN_RANDOM_CHARS 43 /* base64url, no padding, of 32 bytes */
#define TOKEN_BUF 64          /* >= TOKEN_PREFIX_MAX + TOKEN_RANDOM_CHARS + 1 */
#define TOKEN_HASH_BUF 65     /* 64 lowercase hex digits + NUL */

/*
 * Write prefix + 43 random [A-Za-z0-9_-] characters, NUL-terminated,
 * into out.  prefix NULL means "".  A prefix longer than
 * TOKEN_PREFIX_MAX is a programming error: the process aborts.
 */
void token_new(const char *prefix, char out[TOKEN_BUF]);

/* Lowercase hex SHA-256 of the bytes of token (NUL-terminated). */
void token_hash(const char *token, char out[TOKEN_HASH_BUF]);

/*
 * Constant-time (in the content; the length is not secret) comparison.
 * False if either is NULL or the lengths differ.
 */
bool token_equal(const char *a, const char *b) __attribute__((warn_unused_result));

#endif
