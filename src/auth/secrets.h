/*
 * secrets.h — provider API keys encrypted at rest (libsodium secretbox).
 *
 * One 32-byte master key per installation.  It comes from the
 * environment (FUSION_SECRET_KEY) or, when that is unset, from a key
 * file beside the database, "<db_path>.key", created on first start.
 * The key lives in sodium_malloc'd memory (guard pages, mlock'd best
 * effort, excluded from core dumps, read-only after open) and is wiped
 * by secrets_close().
 *
 * Ciphertext format (store it as a BLOB, or base64 it for TEXT):
 *     version (1 byte, = 1) || nonce (24 random bytes) || secretbox (16-byte MAC || cipher)
 * so it is len + 41 bytes.  The nonce is random per call, so encrypting
 * the same key twice gives different bytes.
 *
 * Wrong-key detection: secrets_make_check() encrypts a fixed known
 * plaintext; the caller stores it once (settings key "secrets.check")
 * and at every start calls secrets_verify_check() and refuses to start
 * on mismatch, instead of failing later on every provider key.
 *
 * Preconditions: the process has called sodium_init() successfully.
 * Threads: after secrets_open() returns, a handle is read-only, so every
 * function may be called on the same handle from several threads at
 * once; only secrets_close() must not race with the others.
 * Secrets never reach the log or the err buffers: messages name files
 * and variables, never key material.
 */
#ifndef FUSION_AUTH_SECRETS_H
#define FUSION_AUTH_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

struct secrets;

#define SECRETS_VERSION 1
#define SECRETS_OVERHEAD 41 /* version + nonce + MAC */

/*
 * Load or create the master key.
 *
 * env_key: the value of FUSION_SECRET_KEY, or NULL when unset.  When not
 * NULL it must be exactly 64 hex digits, or base64 (standard or
 * URL-safe, padded or not) of exactly 32 bytes; anything else,
 * including "", fails with "FUSION_SECRET_KEY must be 32 bytes as 64
 * hex digits or base64".  No whitespace is trimmed.  The key file is
 * then neither read nor created.
 *
 * env_key NULL: "<db_path>.key" is used.  If it exists it must be a
 * regular file (not a symlink), owned by the effective user, with no
 * permission bits beyond 0600, holding exactly 64 hex digits and an
 * optional "\n"; otherwise open fails with a message saying what to fix.
 * If it does not exist a new random key is written to it (mode 0600,
 * no-clobber, file and directory fsync'd) and "created master key file
 * <path>" is logged at info; secrets_key_created() then returns true.
 * The file must be backed up with the database: without it the stored
 * provider keys cannot be decrypted.
 *
 * Returns 0 and *out (owned by the caller, free with secrets_close()),
 * or -1 with *out = NULL and a message in err (errlen bytes; err may be
 * NULL).
 */
int secrets_open(const char *db_path, const char *env_key, struct secrets **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Wipe and free the key.  NULL is a no-op. */
void secrets_close(struct secrets *s);

/* True if secrets_open() made a new key file for this handle. */
bool secrets_key_created(const struct secrets *s);

/*
 * Encrypt len bytes of plain.  On success returns 0 and *out, a
 * malloc'd buffer of *outlen = len + SECRETS_OVERHEAD bytes owned by the
 * caller (free()).  Returns -1 (and *out = NULL) only for bad arguments
 * or a length that would overflow.
 */
int secrets_encrypt(const struct secrets *s, const void *plain, size_t len, unsigned char **out,
                    size_t *outlen) __attribute__((warn_unused_result));

/*
 * Decrypt what secrets_encrypt() produced.  On success returns 0 and
 * *plain_out, a malloc'd buffer of *plainlen bytes plus a NUL (so text
 * can be used as a C string), owned by the caller: wipe it with
 * sodium_memzero(p, len) before free() once done.  Returns -1 (and
 * *plain_out = NULL, *plainlen = 0) for a short input, an unknown
 * version, a wrong key or any modified byte.
 */
int secrets_decrypt(const struct secrets *s, const unsigned char *in, size_t inlen, char **plain_out,
                    size_t *plainlen) __attribute__((warn_unused_result));

/*
 * Make the key check: a fixed known plaintext encrypted with this key,
 * as standard base64 text (malloc'd NUL-terminated, owned by the caller;
 * not secret).  Returns 0, or -1 with *check_b64_out = NULL.
 */
int secrets_make_check(const struct secrets *s, char **check_b64_out) __attribute__((warn_unused_result));

/* 0 if check_b64 (from secrets_make_check) decrypts with this key to the known plaintext, else -1. */
int secrets_verify_check(const struct secrets *s, const char *check_b64) __attribute__((warn_unused_result));

#endif
