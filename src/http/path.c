/*
 * path.c — see path.h.
 *
 * Two passes over a buffer no longer than the input: decode escapes,
 * then walk segments keeping a stack of where each output segment began
 * (the output itself is the stack).
 */
#include "http/path.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int http_path_normalize(const char *raw, size_t len, char **out)
{
	*out = NULL;
	if (len == 0 || raw[0] != '/')
		return -1;

	char *dec = xmalloc(len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)raw[i];
		if (c == '%') {
			int hi = i + 2 < len ? hexval(raw[i + 1]) : -1;
			int lo = i + 2 < len ? hexval(raw[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				goto fail;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
			if (c == '/')
				goto fail; /* an encoded slash would split differently for others */
		}
		if (c < 0x20 || c == 0x7f || c == '\\')
			goto fail;
		dec[n++] = (char)c;
	}

	/* Resolve segments into res; res never grows beyond dec. */
	char *res = xmalloc(n + 2);
	size_t r = 0;
	size_t i = 0;
	while (i < n) {
		while (i < n && dec[i] == '/')
			i++;
		size_t start = i;
		while (i < n && dec[i] != '/')
			i++;
		size_t seglen = i - start;
		bool trailing = i >= n; /* last segment */
		if (seglen == 0)
			break;
		if (seglen == 1 && dec[start] == '.') {
			if (trailing)
				res[r++] = '/';
			continue;
		}
		if (seglen == 2 && dec[start] == '.' && dec[start + 1] == '.') {
			if (r == 0) {
				free(res);
				goto fail; /* above the root */
			}
			while (r > 0 && res[r - 1] != '/')
				r--;
			if (r > 0)
				r--; /* drop the slash too */
			if (trailing)
				res[r++] = '/';
			continue;
		}
		res[r++] = '/';
		memcpy(res + r, dec + start, seglen);
		r += seglen;
	}
	/* Keep one trailing slash when the input had it ("/api/" stays "/api/"). */
	if (n > 1 && dec[n - 1] == '/' && (r == 0 || res[r - 1] != '/'))
		res[r++] = '/';
	if (r == 0)
		res[r++] = '/';
	/* "/x/." or "/x/.." handling above may leave "//": collapse. */
	if (r >= 2 && res[r - 1] == '/' && res[r - 2] == '/')
		r--;
	res[r] = '\0';
	free(dec);
	*out = res;
	return 0;

fail:
	free(dec);
	return -1;
}
