/*
 * utf8.h — strict UTF-8 checks: no overlong forms, no surrogates, nothing
 * above U+10FFFF (what PostgreSQL accepts, and what jansson needs to
 * build a response).  Shared by the store's TEXT parameter check and the
 * log writer's repair of TEXT it is handed.
 */
#ifndef FUSION_UTIL_UTF8_H
#define FUSION_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the well-formed UTF-8 sequence at s (n > 0 bytes available),
 * or 0 when the bytes there are not one. */
size_t utf8_seq_len(const unsigned char *s, size_t n);

/* Whether the n bytes at s are well-formed UTF-8 throughout. */
bool utf8_valid(const unsigned char *s, size_t n);

#endif
