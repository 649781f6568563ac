/*
 * reqid.c — see reqid.h.
 */
#include "util/reqid.h"

#include <sodium.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

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
	/* 48 bits of Unix milliseconds first (big-endian), then 80 random
	 * bits: ids sort by time, so the request_logs primary key grows at
	 * its end instead of touching a random index page per row. */
	unsigned char raw[16];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	for (int i = 5; i >= 0; i--) {
		raw[i] = (unsigned char)(ms & 0xff);
		ms >>= 8;
	}
	/* Random bytes come from a small per-thread pool: one getrandom call
	 * per 25 ids instead of one per request.  Ids are not secrets (they
	 * are echoed to clients); they only need to be unique. */
	static _Thread_local unsigned char pool[250];
	static _Thread_local size_t left;
	if (left < sizeof(raw) - 6) {
		randombytes_buf(pool, sizeof(pool));
		left = sizeof(pool);
	}
	memcpy(raw + 6, pool + sizeof(pool) - left, sizeof(raw) - 6);
	left -= sizeof(raw) - 6;
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
