/*
 * strbuf.h — a growable byte string for small texts built on the request
 * path (an attempt's log entry, a request body with its model replaced).
 *
 * An evbuffer would do, but its smallest chain is a 1 KiB allocation:
 * past glibc's per-thread cache and, as a "large" request, one that makes
 * malloc consolidate its fast bins first.  A strbuf allocates what the
 * text needs (sb_reserve up front when the size is known).
 *
 * Zero-initialise (`struct strbuf b = { 0 };`) to start.  The text is
 * always NUL-terminated once anything was added.  Aborts on out-of-memory
 * like xmalloc.  Not thread-safe.
 */
#ifndef FUSION_UTIL_STRBUF_H
#define FUSION_UTIL_STRBUF_H

#include <stddef.h>
#include <stdint.h>

struct strbuf {
	char *p;    /* owned; NULL until something is added or reserved */
	size_t len; /* bytes before the NUL */
	size_t cap; /* bytes allocated */
};

/* Room for at least n more bytes (and the NUL). */
void sb_reserve(struct strbuf *b, size_t n);
void sb_add(struct strbuf *b, const void *data, size_t n);
void sb_adds(struct strbuf *b, const char *s);
/* v in decimal (no printf on the request path). */
void sb_add_i64(struct strbuf *b, int64_t v);
/* printf-style; a formatting error adds nothing. */
void sb_addf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as the text of a JSON string, quotes included (s must be UTF-8). */
void sb_add_json_string(struct strbuf *b, const char *s);
/* The text, now the caller's (malloc'd; "" if nothing was added); b is
 * empty again. */
char *sb_take(struct strbuf *b);
void sb_free(struct strbuf *b);

#endif
