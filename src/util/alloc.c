/*
 * alloc.c — see alloc.h.  The only place that handles malloc failure.
 */
#include "util/alloc.h"

#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FUSION_MIMALLOC
#include <mimalloc.h>
#endif

static void oom(size_t n)
{
	fprintf(stderr, "fusion: out of memory allocating %zu bytes\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (!p)
		oom(count * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
/* True when malloc hands out mimalloc's memory. */
static bool mimalloc_serves_malloc(void)
{
#ifdef FUSION_MIMALLOC
	void *p = calloc(1, 16); /* calloc: nothing read uninitialised */
	bool ours = p && mi_is_in_heap_region(p);
	free(p);
	return ours;
#else
	return false;
#endif
}
#endif

const char *alloc_allocator(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return "sanitizer";
#elif defined(FUSION_MIMALLOC)
	static char name[32];
	if (!mimalloc_serves_malloc())
		return "other";
	int v = mi_version();
	snprintf(name, sizeof(name), "mimalloc %d.%d.%d", v / 100, v / 10 % 10, v % 10);
	return name;
#else
	return "glibc malloc";
#endif
}

void alloc_release_idle(size_t min_free)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	(void)min_free;
#else
	if (mimalloc_serves_malloc()) {
#ifdef FUSION_MIMALLOC
		mi_collect(true);
#endif
	} else if (mallinfo2().fordblks > min_free) {
		malloc_trim(0);
	}
#endif
}

void alloc_reserve_thread_heap(size_t bytes)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	(void)bytes; /* the sanitizers bring their own allocator */
#else
	/* mimalloc has no per-page mprotect to save. */
	if (mimalloc_serves_malloc())
		return;
	enum { CHUNK = 60 * 1024 }; /* below malloc's mmap threshold: from this thread's heap */
	size_t n = bytes / CHUNK;
	void **v = malloc(n * sizeof(*v));
	if (!v)
		return;
	size_t got = 0;
	while (got < n && (v[got] = malloc(CHUNK)) != NULL)
		got++;
	while (got)
		free(v[--got]); /* back into one free block, which malloc then trims */
	free(v);
#endif
}
