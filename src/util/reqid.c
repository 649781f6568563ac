/*
 * reqid.c — see reqid.h.
 */
#include "util/reqid.h"

#include <sodium.h>
#include <string.h>

bool reqid_is_sane(const char *s)
{
	if (!s)
		return false;
	size_t n = 0;
	for (; s[n]; n++) {
		unsigned char c = (unsigned char)s[n];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		          c == '.' || c == '_' || c == ':' || c == '-';
		if (!ok || n >= REQID_MAX)
			return false;
	}
	return n > 0;
}

void reqid_make(char out[REQID_BUF])
{
	unsigned char raw[16];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(out, REQID_BUF, raw, sizeof(raw));
}

void reqid_take_or_make(const char *incoming, char out[REQID_BUF])
{
	if (reqid_is_sane(incoming)) {
		size_t n = strlen(incoming);
		memcpy(out, incoming, n + 1);
		return;
	}
	reqid_make(out);
}
