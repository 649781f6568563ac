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

/* ---- json_scan_check_object: never "sure" of what jansson refuses ---- */

#include <jansson.h>

static bool check(const char *doc, size_t n)
{
	char *copy = malloc(n ? n : 1);
	memcpy(copy, doc, n);
	bool ok = json_scan_check_object(copy, n);
	free(copy);
	return ok;
}

/* The property the proxy relies on: "sure" implies jansson loads it as an object. */
static void assert_agrees(const char *doc, size_t n)
{
	if (!check(doc, n))
		return;
	json_t *j = json_loadb(doc, n, JSON_REJECT_DUPLICATES, NULL);
	cr_assert(json_is_object(j), "quick check accepted what jansson refuses: %.*s", (int)n, doc);
	json_decref(j);
}

Test(json_check, sure_of_ordinary_requests)
{
	const char *docs[] = {
		"{}",
		" {\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]} ",
		"{\"a\":-0,\"b\":0.5,\"c\":123456789012345678,\"d\":[true,false,null,{},[]],\"e\":"
		"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
		"{\"emoji\":\"\\ud83d\\ude00 caf\xc3\xa9 \xe2\x82\xac "
		"\xf0\x9f\x98\x80\",\"n\":{\"x\":{\"x\":{\"x\":1}}}}",
		"{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":"
		"\"object\","
		"\"properties\":{\"a\":{\"type\":\"string\"}},\"required\":[\"a\"]}}}],\"temperature\":0.7}",
	};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		cr_assert(check(docs[i], strlen(docs[i])), "not sure of %s", docs[i]);
		assert_agrees(docs[i], strlen(docs[i]));
	}
}

Test(json_check, unsure_of_what_jansson_refuses_or_words)
{
	const char *docs[] = {
		"",
		"[]",
		"\"x\"",
		"{",
		"{\"a\":1,}",
		"{\"a\":1}x",
		"{\"a\":01}",
		"{\"a\":1.}",
		"{\"a\":.5}",
		"{\"a\":-}",
		"{\"a\":1e5}",                 /* exponents are left to jansson */
		"{\"a\":1234567890123456789}", /* may not fit */
		"{\"a\":tru}",
		"{\"a\":nul}",
		"{\"a\":\"\\x\"}",
		"{\"a\":\"\\u12\"}",
		"{\"a\":\"\\u0000\"}",
		"{\"a\":\"\\udc00\"}",        /* lone low surrogate */
		"{\"a\":\"\\ud83d\"}",        /* lone high surrogate */
		"{\"a\":\"\\ud83d\\u0041\"}", /* high followed by a non-surrogate */
		"{\"a\":\"tab\there\"}",      /* raw control character */
		"{\"a\":\"\xc3\"}",           /* cut UTF-8 */
		"{\"a\":\"\xc0\xaf\"}",       /* overlong */
		"{\"a\":\"\xed\xa0\x80\"}",   /* UTF-16 surrogate as UTF-8 */
		"{\"a\":1,\"a\":2}",          /* duplicate */
		"{\"x\":{\"a\":1,\"a\":2}}",  /* nested duplicate */
		"{\"\\u0061\":1}",            /* escaped name */
		"{\"a\" 1}",
		"{a:1}",
		"{\"a\":[1 2]}",
		"{\"a\":\xff}",
	};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		cr_assert_not(check(docs[i], strlen(docs[i])), "sure of %s", docs[i]);
	/* A NUL byte anywhere. */
	cr_assert_not(check("{\"a\":\"x\0y\"}", 11));
	cr_assert_not(check("{\"a\":1}\0", 8));
	/* Deep nesting is left to jansson. */
	char deep[400];
	size_t k = 0;
	deep[k++] = '{';
	deep[k++] = '"', deep[k++] = 'a', deep[k++] = '"', deep[k++] = ':';
	for (int i = 0; i < 100; i++)
		deep[k++] = '[';
	for (int i = 0; i < 100; i++)
		deep[k++] = ']';
	deep[k++] = '}';
	cr_assert_not(check(deep, k));
}

/* Every prefix and every one-byte change of a realistic request: the
 * quick check is never sure of a document jansson refuses. */
Test(json_check, mutations_agree_with_jansson)
{
	const char *base =
	    "{\"model\":\"gpt\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9 \\ud83d\\ude00 \xc3\xa9\"}],"
	    "\"max_tokens\":32,\"temperature\":0.25,\"stop\":null,\"n\":[1,2]}";
	size_t n = strlen(base);
	char *buf = malloc(n);
	static const char subst[] = "{}[]\",:\\0123456789.-eE+ tfnulrsa\x80\xc3\xff\t\n";
	for (size_t len = 0; len <= n; len++)
		assert_agrees(base, len);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < sizeof(subst) - 1; j++) {
			memcpy(buf, base, n);
			buf[i] = subst[j];
			assert_agrees(buf, n);
		}
		memcpy(buf, base, n); /* deletion */
		memmove(buf + i, buf + i + 1, n - i - 1);
		assert_agrees(buf, n - 1);
	}
	free(buf);
	cr_assert(check(base, n));
}

Test(json_check, reads_counts)
{
	const char *u = "{\"prompt_tokens\":12,\"completion_tokens\":3.0,\"total_tokens\":-1,\"x\":\"7\","
	                "\"big\":1e300,\"neg\":-2.5}";
	int64_t v = 0;
	size_t n = strlen(u);
	cr_assert(json_scan_int(u, n, "prompt_tokens", &v));
	cr_assert_eq(v, 12);
	cr_assert(json_scan_int(u, n, "completion_tokens", &v));
	cr_assert_eq(v, 3);
	cr_assert(json_scan_int(u, n, "total_tokens", &v));
	cr_assert_eq(v, -1);
	cr_assert_not(json_scan_int(u, n, "x", &v));
	cr_assert_not(json_scan_int(u, n, "big", &v));
	cr_assert_not(json_scan_int(u, n, "neg", &v));
	cr_assert_not(json_scan_int(u, n, "missing", &v));
}

/* Strings full of escaped quotes and runs of backslashes: whatever the
 * run before a quote, the member after the string is found where jansson
 * writes it. */
Test(json_scan, escapes_before_quotes_do_not_mislead_the_string_skip)
{
	static const char alphabet[] = { '\\', '"', 'a', '/', '\n', 'u' };
	unsigned seed = 12345;
	for (int t = 0; t < 2000; t++) {
		char raw[24];
		size_t len = (size_t)(t % 23);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			raw[i] = alphabet[(seed >> 16) % sizeof(alphabet)];
		}
		raw[len] = '\0';
		json_t *o = json_object();
		json_object_set_new(o, raw[0] ? raw : "k", json_string(raw));
		json_object_set_new(o, "nested", json_pack("{s:s}", "usage", raw));
		json_object_set_new(o, "usage", json_pack("{s:i}", "total_tokens", t));
		char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		struct json_span sp;
		cr_assert(json_scan_member(text, strlen(text), "usage", &sp), "%s", text);
		char want[64];
		snprintf(want, sizeof(want), "{\"total_tokens\":%d}", t);
		cr_assert_eq(sp.len, strlen(want), "%s", text);
		cr_assert(memcmp(text + sp.off, want, sp.len) == 0, "%s", text);
		free(text);
		json_decref(o);
	}
}
