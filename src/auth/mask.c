/*
 * mask.c — see mask.h.  Works on bytes; the only UTF-8 awareness needed
 * is to not start the shown tail on a continuation byte.
 */
#include "auth/mask.h"

#include <stdbool.h>
#include <string.h>

#define ELLIPSIS "\xe2\x80\xa6" /* U+2026 */
#define PREFIX_MAX 8

static bool is_lower(unsigned char c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_sep(unsigned char c)
{
	return c == '-' || c == '_';
}

/* Length of the vendor-tag prefix (see mask.h), 0 if none. */
static size_t prefix_len(const unsigned char *s, size_t n)
{
	size_t limit = n < PREFIX_MAX ? n : PREFIX_MAX;
	size_t end = 0; /* length of the accepted prefix so far */
	size_t i = 0;

	for (int seg = 0;; seg++) {
		size_t start = i;
		while (i < limit && (is_lower(s[i]) || (seg == 0 && i > start && is_digit(s[i]))))
			i++;
		if (i == start || i >= limit || !is_sep(s[i]))
			return end;
		end = ++i; /* the separator is part of the prefix */
	}
}

/* Start index of the last `want` bytes of s, moved forward off UTF-8 continuation bytes. */
static size_t tail_start(const unsigned char *s, size_t n, size_t want)
{
	size_t i = n - want;

	while (i < n && (s[i] & 0xC0) == 0x80)
		i++;
	return i;
}

void mask_secret(const char *secret, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)(secret ? secret : "");
	size_t n = strlen((const char *)s);
	char buf[MASK_BUF];
	size_t plen = 0, tail = 0, t, len = 0;

	if (!out || outlen == 0)
		return;
	if (n >= 12) {
		tail = 4;
		plen = prefix_len(s, n);
		if (plen + tail > n / 2)
			plen = 0;
	} else if (n >= 6) {
		tail = 2;
	}
	memcpy(buf, s, plen);
	len = plen;
	memcpy(buf + len, ELLIPSIS, sizeof(ELLIPSIS) - 1);
	len += sizeof(ELLIPSIS) - 1;
	if (tail > 0) {
		t = tail_start(s, n, tail);
		memcpy(buf + len, s + t, n - t);
		len += n - t;
	}
	buf[len] = '\0';

	if (len < outlen)
		memcpy(out, buf, len + 1);
	else if (sizeof(ELLIPSIS) <= outlen)
		memcpy(out, ELLIPSIS, sizeof(ELLIPSIS));
	else
		out[0] = '\0';
}
