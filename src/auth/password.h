/*
 * password.h — admin-user password hashing (argon2id, libsodium).
 *
 * Passwords are stored only as libsodium's self-describing hash string
 * ("$argon2id$v=19$m=19456,t=2,p=1$salt$hash"), which carries its own
 * salt and cost, so old hashes keep verifying after the cost is raised;
 * password_needs_rehash() tells the login path when to store a new one.
 *
 * Cost: OWASP's minimum for argon2id — 19 MiB of memory, 2 passes, one
 * lane.  Each hash or verify therefore takes ~19 MiB and tens of
 * milliseconds of one CPU: the caller must bound how many run at once
 * (e.g. a small semaphore or rate limit on the login endpoint).
 *
 * Timing: a login for an unknown user must call password_burn() so it
 * costs the same as one for a known user with a wrong password.
 *
 * Bounds: passwords longer than PASSWORD_MAX_LEN bytes are refused
 * (hash returns -1, verify/burn return at once) to bound CPU per
 * request.  The length is the only policy here: minimum length, charset
 * etc. belong to the admin API.  Passwords are treated as raw bytes (no
 * Unicode normalisation).
 *
 * Preconditions: the process has called sodium_init() successfully
 * before any function here.
 *
 * Threads: every function is safe to call from several threads at once
 * (no shared mutable state besides the dummy hash, made once under
 * pthread_once).
 */
#ifndef FUSION_AUTH_PASSWORD_H
#define FUSION_AUTH_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#define PASSWORD_MAX_LEN 1024
/* Size of a hash-string buffer: equals crypto_pwhash_STRBYTES (checked in password.c). */
#define PASSWORD_HASH_BUF 128

/* The cost every new hash gets. */
#define PASSWORD_OPSLIMIT 2ULL
#define PASSWORD_MEMLIMIT ((size_t)19 * 1024 * 1024)

/*
 * Hash `password` (NUL-terminated, at most PASSWORD_MAX_LEN bytes) into
 * out (outlen >= PASSWORD_HASH_BUF), as a NUL-terminated ASCII string
 * suitable for a TEXT column.  Returns 0, or -1 for a NULL/over-long
 * password, a short buffer, or a libsodium failure (out of memory).
 */
int password_hash(const char *password, char *out, size_t outlen) __attribute__((warn_unused_result));

/*
 * True only if stored_hash is a well-formed libsodium argon2 hash string
 * and password matches it.  False for NULL arguments, an over-long
 * password, or any malformed hash (which returns quickly: a malformed
 * stored hash is a data problem, not a timing channel).
 */
bool password_verify(const char *stored_hash, const char *password) __attribute__((warn_unused_result));

/*
 * Spend the time of one password_verify() against a real hash with our
 * parameters, and throw the result away.  Call it on the "no such user"
 * path.  The first call makes the dummy hash (one extra hash, once per
 * process); call it once at start-up to keep that off the first login.
 */
void password_burn(const char *password);

/*
 * True if stored_hash should be replaced by a fresh password_hash() of
 * the (just verified) password: it is not argon2id, its parameters
 * differ from PASSWORD_OPSLIMIT / PASSWORD_MEMLIMIT (either way), or it
 * is malformed.
 */
bool password_needs_rehash(const char *stored_hash) __attribute__((warn_unused_result));

#endif
