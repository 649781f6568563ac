/*
 * strbuf.c — see strbuf.h.
 */
#include "util/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/str.h"

void sb_reserve(struct strbuf *b, size_t n)
{
	if (n < b->cap - b->len && b->p)
		return;
	size_t want = b->len + n + 1;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
	b->p[b->len] = '\0';
}

void sb_add(struct strbuf *b, const void *data, size_t n)
{
	sb_reserve(b, n);
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void sb_adds(struct strbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

void sb_add_i64(struct strbuf *b, int64_t v)
{
	char d[STR_I64_BUF] = "";
	size_t n = str_i64(d, v);
	sb_add(b, d, n);
}

void sb_addf(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char tmp[128];
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(tmp)) {
		sb_add(b, tmp, (size_t)n);
		return;
	}
	sb_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void sb_add_json_string(struct strbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	sb_add(b, "\"", 1);
	const char *run = s;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c != '"' && c != '\\' && c >= 0x20)
			continue;
		sb_add(b, run, (size_t)(s - run));
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			sb_add(b, esc, 2);
		} else {
			char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			sb_add(b, esc, 6);
		}
		run = s + 1;
	}
	sb_add(b, run, (size_t)(s - run));
	sb_add(b, "\"", 1);
}

char *sb_take(struct strbuf *b)
{
	char *s = b->p ? b->p : xstrdup("");
	b->p = NULL;
	b->len = b->cap = 0;
	return s;
}

void sb_free(struct strbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
