/*
 * test_packbuf.c — the compressed keep-buffer (src/util/packbuf.c): what
 * goes in comes back byte for byte whatever the append sizes, block
 * boundaries and compressibility; repetitive bytes (SSE events) are held
 * in a fraction of their size; bytes that do not compress are kept as
 * they are.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "util/packbuf.h"

static void assert_round_trip(struct packbuf *pb, const char *want, size_t n)
{
	size_t len = 12345;
	char *got = packbuf_join(pb, &len);
	cr_assert_not_null(got);
	cr_assert_eq(len, n);
	cr_assert_eq(packbuf_length(pb), n);
	cr_assert(memcmp(got, want, n) == 0, "bytes differ");
	cr_assert_eq(got[n], '\0');
	free(got);
}

Test(packbuf, empty)
{
	struct packbuf *pb = packbuf_new();
	assert_round_trip(pb, "", 0);
	packbuf_append(pb, "", 0);
	assert_round_trip(pb, "", 0);
	packbuf_free(pb);
	packbuf_free(NULL);
}

/* Stream-like bytes appended in pieces of every size from 1 to 300, and
 * at exact block multiples. */
Test(packbuf, events_round_trip_and_shrink)
{
	size_t cap = 64 * 1024, n = 0;
	char *all = malloc(cap);
	for (int i = 0; n + 400 < cap; i++)
		n += (size_t)snprintf(all + n, cap - n,
		                      "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
		                      "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"word%d \"}}]}\n\n",
		                      i);
	for (size_t step = 1; step <= 300; step += 37) {
		struct packbuf *pb = packbuf_new();
		for (size_t off = 0; off < n; off += step)
			packbuf_append(pb, all + off, off + step <= n ? step : n - off);
		assert_round_trip(pb, all, n);
		cr_assert_lt(packbuf_memory(pb), n / 3, "%zu bytes held for %zu", packbuf_memory(pb), n);
		packbuf_free(pb);
	}
	struct packbuf *pb = packbuf_new();
	packbuf_append(pb, all, PACKBUF_BLOCK); /* exactly one block */
	assert_round_trip(pb, all, PACKBUF_BLOCK);
	packbuf_append(pb, all + PACKBUF_BLOCK, 3 * PACKBUF_BLOCK); /* three more in one call */
	assert_round_trip(pb, all, 4 * PACKBUF_BLOCK);
	packbuf_free(pb);
	free(all);
}

/* Random bytes do not compress: kept as they are, still whole. */
Test(packbuf, incompressible_bytes_kept_plain)
{
	size_t n = 5 * PACKBUF_BLOCK + 77;
	char *all = malloc(n);
	unsigned x = 2463534242u;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		all[i] = (char)(x & 0xff);
	}
	struct packbuf *pb = packbuf_new();
	for (size_t off = 0; off < n; off += 1000)
		packbuf_append(pb, all + off, off + 1000 <= n ? 1000 : n - off);
	assert_round_trip(pb, all, n);
	cr_assert_geq(packbuf_memory(pb), n);
	cr_assert_lt(packbuf_memory(pb), n + 2 * PACKBUF_BLOCK);
	packbuf_free(pb);
	free(all);
}
