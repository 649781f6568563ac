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
 * memory back (glibc only: a no-op under mimalloc).  glibc makes each new page of a thread's heap usable with
 * its own mprotect call as the heap grows, and does so only the first
 * time: a burst of thousands of streams on a fresh worker cost ~40 000
 * mprotect calls in its first second.  After this, growth up to `bytes`
 * needs none; the pages are released again (no resident cost).  A no-op
 * under the sanitizers.
 */
void alloc_reserve_thread_heap(size_t bytes);

/*
 * The allocator that serves malloc in this process, for --version and the
 * start-up line: "mimalloc 2.0.9" when the release build's mimalloc is the
 * one malloc returns memory from (checked, not assumed: an LD_PRELOADed
 * allocator would win), "glibc malloc" for a build without it, "other" for
 * a build with it whose malloc is someone else's, "sanitizer" under ASan
 * or TSan.
 */
const char *alloc_allocator(void);

/*
 * Called by each worker on its own thread once it is quiet after a burst
 * (http/server.c, trim_check): give memory the burst freed back to the
 * system.  glibc keeps what thousands of finished streams freed: trimmed
 * (malloc_trim, all arenas) when more than `min_free` bytes sit free.
 * mimalloc: the calling thread's heap is collected (mi_collect).
 */
void alloc_release_idle(size_t min_free);

#endif
