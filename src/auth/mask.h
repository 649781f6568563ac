/*
 * mask.h — show a secret just enough to recognise it ("sk-…wxyz").
 *
 * For API responses and the UI after creation, where a user must tell
 * keys apart but must never get one back.  Rules (lengths in bytes):
 *   - shorter than 6:       "…"
 *   - 6 to 11:              "…" + last 2
 *   - 12 and longer:        prefix + "…" + last 4
 * The prefix is the key's vendor tag: a first segment [a-z][a-z0-9]*
 * followed by '-' or '_', extended by further [a-z]+[-_] segments, all
 * within the first 8 bytes ("sk-", "sk-ant-", "sk-proj-", "fk-",
 * "gsk_"); nothing if the secret does not start that way ("AIza…").  The
 * prefix is also dropped when prefix + last 4 would show more than half
 * of the secret.  The "…" is U+2026 (3 bytes of UTF-8).
 *
 * Never more than 4 trailing bytes are shown, and fewer when the tail
 * would start inside a multi-byte UTF-8 sequence.
 *
 * Threads: pure function, safe from any thread.  No libsodium needed.
 */
#ifndef FUSION_AUTH_MASK_H
#define FUSION_AUTH_MASK_H

#include <stddef.h>

/* Enough for every result: 8 (prefix) + 3 ("…") + 4 (tail) + NUL. */
#define MASK_BUF 16

/*
 * Write the masked form of secret (NULL is treated as "") into out.
 * With outlen >= MASK_BUF the result is never cut; with a smaller
 * buffer the result is replaced by "…" (or "" if even that does not
 * fit) rather than truncated mid-character.
 */
void mask_secret(const char *secret, char *out, size_t outlen);

#endif
