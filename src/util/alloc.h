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

/*
 * Grow the calling thread's malloc heap to `bytes` once, then give the
 * memory back.  glibc makes each new page of a thread's heap usable with
 * its own mprotect call as the heap grows, and does so only the first
 * time: a burst of thousands of streams on a fresh worker cost ~40 000
 * mprotect calls in its first second.  After this, growth up to `bytes`
 * needs none; the pages are released again (no resident cost).  A no-op
 * under the sanitizers.
 */
void alloc_reserve_thread_heap(size_t bytes);

#endif
