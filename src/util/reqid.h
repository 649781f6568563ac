/*
 * reqid.h — request ids: accept a sane one from the client, else make one.
 *
 * A client-supplied X-Request-Id is echoed only when it is 1..64 bytes of
 * [A-Za-z0-9._:-], so it can go into logs, headers and database rows
 * without escaping.  Generated ids are 32 lowercase hex digits: 48 bits
 * of Unix milliseconds, then 80 random bits from libsodium (which must
 * be initialised first), so they sort by creation time.
 */
#ifndef FUSION_UTIL_REQID_H
#define FUSION_UTIL_REQID_H

#include <stdbool.h>
#include <stddef.h>

#define REQID_MAX 64
#define REQID_BUF (REQID_MAX + 1)

bool reqid_is_sane(const char *s);

/* Fill out (REQID_BUF bytes) with the incoming id if sane, else a new one. */
void reqid_take_or_make(const char *incoming, char out[REQID_BUF]);

void reqid_make(char out[REQID_BUF]);

#endif
