/*
 * str.h — bounded string copies without the printf machinery.
 *
 * snprintf(dst, size, "%s", src) costs about a thousand instructions a
 * call (format parsing, stdio stream set-up); a proxied request made a
 * dozen such copies.  These do the same (cut to fit, always terminated)
 * with strlen + memcpy.  Like BSD strlcpy/strlcat they return the length
 * the result would have had uncut, so `>= size` means it was cut.  And an
 * integer in decimal, for the same reason.
 */
#ifndef FUSION_UTIL_STR_H
#define FUSION_UTIL_STR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Copy src into dst (size > 0 bytes). */
static inline size_t str_copy(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);
	size_t k = n < size ? n : size - 1;
	memcpy(dst, src, k);
	dst[k] = '\0';
	return n;
}

/* Append src to the string in dst (size > 0 bytes, dst terminated within them). */
static inline size_t str_append(char *dst, size_t size, const char *src)
{
	size_t used = strnlen(dst, size);
	if (used == size)
		return used + strlen(src);
	return used + str_copy(dst + used, size - used, src);
}

/* v in decimal into buf (STR_I64_BUF bytes: sign, 19 digits, NUL); its length. */
#define STR_I64_BUF 21
static inline size_t str_i64(char *buf, int64_t v)
{
	char tmp[STR_I64_BUF];
	size_t n = 0;
	uint64_t m = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do
		tmp[n++] = (char)('0' + m % 10);
	while ((m /= 10) != 0);
	size_t len = 0;
	if (v < 0)
		buf[len++] = '-';
	while (n)
		buf[len++] = tmp[--n];
	buf[len] = '\0';
	return len;
}

#endif
