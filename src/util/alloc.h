/*
 * alloc.h — allocation wrappers that abort on out-of-memory.
 *
 * Running out of memory in a gateway is not a recoverable per-request
 * condition we can test honestly, so (like Redis' zmalloc) allocation
 * failure aborts with a message.  Error paths are then kept for real
 * input and I/O failures.  Every bound that could make an allocation
 * large is enforced before calling these.
 */
#ifndef FUSION_UTIL_ALLOC_H
#define FUSION_UTIL_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t n) __attribute__((malloc, returns_nonnull));
void *xcalloc(size_t count, size_t size) __attribute__((malloc, returns_nonnull));
void *xrealloc(void *p, size_t n) __attribute__((returns_nonnull));
char *xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
char *xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));

#endif
