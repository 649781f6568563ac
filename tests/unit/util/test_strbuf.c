/*
 * test_strbuf.c — the small string builder (src/util/strbuf.c): appends
 * of every size keep the bytes and the NUL, formatted appends longer than
 * the stack scratch, and JSON string quoting that jansson reads back as
 * the very string that went in (every control byte, quote, backslash and
 * multi-byte UTF-8).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "util/strbuf.h"

Test(strbuf, empty_take_is_an_empty_string)
{
	struct strbuf b = { 0 };
	char *s = sb_take(&b);
	cr_assert_str_eq(s, "");
	free(s);
	sb_free(&b); /* nothing held: a no-op */
}

Test(strbuf, appends_of_every_size_keep_bytes_and_nul)
{
	struct strbuf b = { 0 };
	char want[5000];
	size_t n = 0;
	for (size_t k = 0; n + k < sizeof(want); k++) {
		char piece[100];
		for (size_t i = 0; i < k % 100; i++)
			piece[i] = (char)('a' + (n + i) % 26);
		sb_add(&b, piece, k % 100);
		memcpy(want + n, piece, k % 100);
		n += k % 100;
		cr_assert_eq(b.len, n);
		cr_assert_geq(b.cap, b.len + 1);
		cr_assert_eq(b.p[b.len], '\0');
	}
	cr_assert(memcmp(b.p, want, n) == 0);
	sb_free(&b);
	cr_assert_null(b.p);
	cr_assert_eq(b.len, 0);
}

Test(strbuf, reserve_then_fill_allocates_once)
{
	struct strbuf b = { 0 };
	sb_reserve(&b, 300);
	char *before = b.p;
	size_t cap = b.cap;
	cr_assert_geq(cap, 301);
	for (int i = 0; i < 30; i++)
		sb_add(&b, "0123456789", 10);
	cr_assert_eq(b.p, before);
	cr_assert_eq(b.cap, cap);
	cr_assert_eq(b.len, 300);
	sb_free(&b);
}

Test(strbuf, formatted_appends_short_and_long)
{
	struct strbuf b = { 0 };
	sb_addf(&b, "[%d:%s]", 42, "x");
	char longs[600];
	memset(longs, 'L', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	sb_addf(&b, "<%s>", longs); /* longer than the stack scratch */
	sb_adds(&b, "!");
	cr_assert_eq(b.len, strlen("[42:x]") + 2 + 599 + 1);
	cr_assert(strncmp(b.p, "[42:x]<LLL", 10) == 0);
	cr_assert_str_eq(b.p + b.len - 2, ">!");
	char *s = sb_take(&b);
	cr_assert_null(b.p);
	cr_assert_eq(strlen(s), strlen("[42:x]") + 2 + 599 + 1);
	free(s);
}

static void assert_json_round_trip(const char *in)
{
	struct strbuf b = { 0 };
	sb_add_json_string(&b, in);
	json_error_t err;
	json_t *v = json_loadb(b.p, b.len, JSON_DECODE_ANY, &err);
	cr_assert_not_null(v, "%s does not parse: %s", b.p, err.text);
	cr_assert(json_is_string(v));
	cr_assert_eq(json_string_length(v), strlen(in));
	cr_assert(memcmp(json_string_value(v), in, strlen(in)) == 0, "%s", b.p);
	json_decref(v);
	sb_free(&b);
}

Test(strbuf, json_string_reads_back_as_the_same_string)
{
	assert_json_round_trip("");
	assert_json_round_trip("gpt-4o-mini");
	assert_json_round_trip("quote \" backslash \\ slash / end");
	assert_json_round_trip("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	char ctl[40];
	for (int c = 1; c < 32; c++)
		ctl[c - 1] = (char)c;
	ctl[31] = 'z';
	ctl[32] = '\0';
	assert_json_round_trip(ctl);
	/* every printable ASCII byte around every control byte */
	for (int c = 1; c < 128; c++) {
		char s[4] = { 'a', (char)c, 'b', '\0' };
		assert_json_round_trip(s);
	}
}
