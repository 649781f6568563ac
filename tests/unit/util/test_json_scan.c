/*
 * test_json_scan.c — the top-level member scanner (src/util/json_scan.c):
 * spans of every kind of value, nested look-alikes that must not match,
 * strings holding quotes, brackets and escaped quotes, repeated names
 * (the last wins, as in jansson), and documents that are cut short or
 * are not objects (no match, never a read past the end: every input is a
 * malloc'd copy of exactly its length, so ASan sees an overrun).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "util/json_scan.h"

static bool scan(const char *doc, const char *key, char *val, size_t vsize)
{
	size_t n = strlen(doc);
	char *copy = malloc(n ? n : 1);
	memcpy(copy, doc, n);
	struct json_span sp;
	bool ok = json_scan_member(copy, n, key, &sp);
	if (ok) {
		cr_assert(sp.off + sp.len <= n);
		snprintf(val, vsize, "%.*s", (int)sp.len, copy + sp.off);
	}
	free(copy);
	return ok;
}

Test(json_scan, finds_each_kind_of_value)
{
	const char *doc =
	    " {\"a\": 1, \"b\" : \"x\\\"}\" ,\"c\":{\"d\":[1,{\"e\":\"]\"}]},\"f\":true,\"g\":null,"
	    "\"h\":[\"}\"] , \"i\" :-1.5e3 }";
	char v[128];
	cr_assert(scan(doc, "a", v, sizeof(v)));
	cr_assert_str_eq(v, "1");
	cr_assert(scan(doc, "b", v, sizeof(v)));
	cr_assert_str_eq(v, "\"x\\\"}\"");
	cr_assert(scan(doc, "c", v, sizeof(v)));
	cr_assert_str_eq(v, "{\"d\":[1,{\"e\":\"]\"}]}");
	cr_assert(scan(doc, "f", v, sizeof(v)));
	cr_assert_str_eq(v, "true");
	cr_assert(scan(doc, "g", v, sizeof(v)));
	cr_assert_str_eq(v, "null");
	cr_assert(scan(doc, "h", v, sizeof(v)));
	cr_assert_str_eq(v, "[\"}\"]");
	cr_assert(scan(doc, "i", v, sizeof(v)));
	cr_assert_str_eq(v, "-1.5e3");
}

Test(json_scan, nested_and_quoted_lookalikes_do_not_match)
{
	char v[64];
	cr_assert_not(scan("{\"x\":{\"usage\":{\"a\":1}}}", "usage", v, sizeof(v)));
	cr_assert_not(scan("{\"x\":\"\\\"usage\\\":{}\"}", "usage", v, sizeof(v)));
	cr_assert_not(scan("{\"x\":[\"usage\",{\"usage\":1}]}", "usage", v, sizeof(v)));
	cr_assert(scan("{\"x\":{\"usage\":2},\"usage\":{\"p\":3}}", "usage", v, sizeof(v)));
	cr_assert_str_eq(v, "{\"p\":3}");
}

Test(json_scan, last_of_repeated_names_wins)
{
	char v[64];
	cr_assert(scan("{\"model\":\"a\",\"model\":\"b\"}", "model", v, sizeof(v)));
	cr_assert_str_eq(v, "\"b\"");
}

Test(json_scan, not_an_object_or_cut_short)
{
	char v[64];
	const char *bad[] = { "",
		              "[]",
		              "\"model\"",
		              "{",
		              "{\"model\"",
		              "{\"model\":",
		              "{\"model\":\"abc",
		              "{\"model\":\"a\"",
		              "{\"model\":\"a\",",
		              "{\"model\":{\"x\":1}",
		              "{model:1}",
		              "{\"a\":1 \"model\":2}" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_not(scan(bad[i], "model", v, sizeof(v)), "matched in %s", bad[i]);
	cr_assert_not(scan("{}", "model", v, sizeof(v)));
}

Test(json_scan, object_end)
{
	const char *doc = "{\"a\":\"}\",\"b\":{}}  ";
	size_t m = 99;
	cr_assert_eq(json_scan_object_end(doc, strlen(doc), &m), 15);
	cr_assert_eq(m, 2);
	cr_assert_eq(json_scan_object_end("{}", 2, &m), 1);
	cr_assert_eq(m, 0);
	cr_assert_eq(json_scan_object_end("{\"a\":1", 6, NULL), 6);
	cr_assert_eq(json_scan_object_end("[1]", 3, NULL), 3);
	const char *dup = "{\"model\":\"a\",\"mod\\u0065l\":\"b\"}";
	cr_assert_eq(json_scan_object_end(dup, strlen(dup), &m), strlen(dup) - 1);
	cr_assert_eq(m, 2); /* jansson sees one member: the caller must not splice */
}
