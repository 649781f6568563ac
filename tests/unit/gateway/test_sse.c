/*
 * test_sse.c — unit tests for the streaming SSE parser
 * (src/gateway/sse.c).
 *
 * Events are copied out of the callback into a `struct coll` (the
 * parser's pointers live only during the callback) and compared field by
 * field.  Every chunk is fed from its own malloc'd copy that is freed as
 * soon as sse_feed returns, so ASan catches a parser that keeps pointing
 * into a chunk (the zero-copy views must be copied before returning).
 *
 * The central check is that splitting never changes the result: one
 * realistic stream (BOM, comments, all three line ends, multi-line data,
 * ids, 2-, 3- and 4-byte UTF-8) is parsed whole, at every two-way split,
 * byte by byte and in random chunk sizes, and every run must give the
 * same events, comment count and sse_finish result.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "gateway/sse.h"
#include "util/alloc.h"

#define MAX_4M (4u * 1024 * 1024)
#define STOP 7 /* the value test callbacks return to stop */

struct ev_copy {
	char *event, *data, *id;
	size_t event_len, data_len, id_len;
	bool data_in_input; /* the data pointer pointed into the chunk being fed */
};

struct coll {
	struct ev_copy *v;
	size_t n, cap;
	size_t stop_at; /* return STOP when event number stop_at (1-based) arrives; 0: never */
	const char *in; /* the chunk being fed now, to recognise zero-copy views */
	size_t in_len;
};

static char *dup_bytes(const char *s, size_t n)
{
	char *d = xmalloc(n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static bool points_into(const char *ptr, size_t len, const char *buf, size_t n)
{
	uintptr_t p = (uintptr_t)ptr, b = (uintptr_t)buf;
	return buf && p >= b && p + len <= b + n;
}

static int on_event(const struct sse_event *ev, void *arg)
{
	struct coll *c = arg;
	cr_assert_not_null(ev->event);
	cr_assert_not_null(ev->data);
	cr_assert_not_null(ev->id);
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
	}
	struct ev_copy *e = &c->v[c->n++];
	e->event = dup_bytes(ev->event, ev->event_len);
	e->event_len = ev->event_len;
	e->data = dup_bytes(ev->data, ev->data_len);
	e->data_len = ev->data_len;
	e->id = dup_bytes(ev->id, ev->id_len);
	e->id_len = ev->id_len;
	e->data_in_input = points_into(ev->data, ev->data_len, c->in, c->in_len);
	return c->stop_at && c->n == c->stop_at ? STOP : 0;
}

static void coll_free(struct coll *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].event);
		free(c->v[i].data);
		free(c->v[i].id);
	}
	free(c->v);
	memset(c, 0, sizeof(*c));
}

/* Feed n bytes from a private copy that dies right after the call. */
static int feed(struct sse_parser *p, const char *s, size_t n, struct coll *c, size_t *used)
{
	char *chunk = n ? xmalloc(n) : NULL;
	if (n)
		memcpy(chunk, s, n);
	c->in = chunk;
	c->in_len = n;
	int rc = sse_feed(p, chunk, n, on_event, c);
	if (used)
		*used = sse_consumed(p);
	c->in = NULL;
	c->in_len = 0;
	free(chunk);
	return rc;
}

static void feed_ok(struct sse_parser *p, const char *s, struct coll *c)
{
	size_t used = 12345;
	cr_assert_eq(feed(p, s, strlen(s), c, &used), 0, "feeding \"%s\"", s);
	cr_assert_eq(used, strlen(s));
}

/* Parse s in chunks of the given sizes (summing to len), then finish. */
struct run {
	struct coll c;
	int feed_rc;   /* first non-zero sse_feed result, or 0 */
	int finish_rc; /* sse_finish result (not called when a feed failed) */
	uint64_t comments;
	size_t max_buffered;
};

static struct run parse_sizes(const char *s, size_t len, const size_t *sizes, size_t nsizes, size_t max)
{
	struct run r;
	memset(&r, 0, sizeof(r));
	struct sse_parser *p = sse_new(max);
	size_t off = 0;
	for (size_t k = 0; k < nsizes && r.feed_rc == 0; k++) {
		size_t used = 0;
		r.feed_rc = feed(p, s + off, sizes[k], &r.c, &used);
		if (r.feed_rc == 0)
			cr_assert_eq(used, sizes[k]);
		off += sizes[k];
		if (sse_buffered(p) > r.max_buffered)
			r.max_buffered = sse_buffered(p);
	}
	if (r.feed_rc == 0) {
		cr_assert_eq(off, len, "chunk sizes do not add up");
		r.finish_rc = sse_finish(p, on_event, &r.c);
	}
	r.comments = sse_comments(p);
	sse_free(p);
	return r;
}

static struct run parse_whole(const char *s, size_t len, size_t max)
{
	return parse_sizes(s, len, &len, 1, max);
}

static struct run parse_str(const char *s)
{
	return parse_whole(s, strlen(s), MAX_4M);
}

static struct run parse_bytewise(const char *s, size_t len, size_t max)
{
	size_t *sizes = xmalloc((len ? len : 1) * sizeof(*sizes));
	for (size_t i = 0; i < len; i++)
		sizes[i] = 1;
	struct run r = parse_sizes(s, len, sizes, len, max);
	free(sizes);
	return r;
}

static void assert_bytes(const char *got, size_t glen, const char *want, size_t wlen, const char *what,
                         size_t idx)
{
	cr_assert(glen == wlen && memcmp(got, want, wlen) == 0,
	          "event %zu %s: got \"%.*s\" (%zu), want \"%.*s\" (%zu)", idx, what, (int)glen, got, glen,
	          (int)wlen, want, wlen);
}

static void expect_ev(const struct coll *c, size_t i, const char *event, const char *data, const char *id)
{
	cr_assert_lt(i, c->n, "event %zu missing (got %zu events)", i, c->n);
	assert_bytes(c->v[i].event, c->v[i].event_len, event, strlen(event), "type", i);
	assert_bytes(c->v[i].data, c->v[i].data_len, data, strlen(data), "data", i);
	assert_bytes(c->v[i].id, c->v[i].id_len, id, strlen(id), "id", i);
}

static void assert_same_run(const struct run *got, const struct run *want, const char *how)
{
	cr_assert_eq(got->feed_rc, want->feed_rc, "%s: feed rc %d, want %d", how, got->feed_rc,
	             want->feed_rc);
	cr_assert_eq(got->finish_rc, want->finish_rc, "%s: finish rc %d, want %d", how, got->finish_rc,
	             want->finish_rc);
	cr_assert_eq(got->comments, want->comments, "%s: comments", how);
	cr_assert_eq(got->c.n, want->c.n, "%s: %zu events, want %zu", how, got->c.n, want->c.n);
	for (size_t i = 0; i < want->c.n; i++) {
		const struct ev_copy *g = &got->c.v[i], *w = &want->c.v[i];
		cr_assert(g->event_len == w->event_len && memcmp(g->event, w->event, w->event_len) == 0,
		          "%s: event %zu type \"%s\", want \"%s\"", how, i, g->event, w->event);
		cr_assert(g->data_len == w->data_len && memcmp(g->data, w->data, w->data_len) == 0,
		          "%s: event %zu data \"%s\", want \"%s\"", how, i, g->data, w->data);
		cr_assert(g->id_len == w->id_len && memcmp(g->id, w->id, w->id_len) == 0,
		          "%s: event %zu id \"%s\", want \"%s\"", how, i, g->id, w->id);
	}
}

/* Growable byte string for building streams. */
struct sb {
	char *s;
	size_t len, cap;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

#define SB_LIT(b, lit) sb_add((b), (lit), sizeof(lit) - 1)

/* ---- provider streams ------------------------------------------------ */

Test(sse, openai_chunks_and_done)
{
	const char *s = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
	                "\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\n"
	                "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"
	                "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\n"
	                "data: [DONE]\n\n";
	struct run r = parse_str(s);
	cr_assert_eq(r.c.n, 4);
	expect_ev(&r.c, 0, "",
	          "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
	          "\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}",
	          "");
	expect_ev(&r.c, 1, "", "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}",
	          "");
	expect_ev(&r.c, 2, "", "{\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3}}", "");
	expect_ev(&r.c, 3, "", "[DONE]", "");
	cr_assert_eq(r.finish_rc, 0);
	coll_free(&r.c);
}

Test(sse, anthropic_event_sequence)
{
	const char *s =
	    "event: message_start\n"
	    "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12}}}\n\n"
	    "event: content_block_start\n"
	    "data: {\"type\":\"content_block_start\",\"index\":0}\n\n"
	    "event: ping\n"
	    "data: {\"type\": \"ping\"}\n\n"
	    "event: content_block_delta\n"
	    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
	    "\"text\":\"Hello\"}}\n\n"
	    "event: content_block_stop\n"
	    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
	    "event: message_delta\n"
	    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n"
	    "event: message_stop\n"
	    "data: {\"type\":\"message_stop\"}\n\n";
	static const char *const types[] = { "message_start",       "content_block_start", "ping",
		                             "content_block_delta", "content_block_stop",  "message_delta",
		                             "message_stop" };
	struct run r = parse_str(s);
	cr_assert_eq(r.c.n, 7);
	for (size_t i = 0; i < 7; i++)
		assert_bytes(r.c.v[i].event, r.c.v[i].event_len, types[i], strlen(types[i]), "type", i);
	expect_ev(&r.c, 2, "ping", "{\"type\": \"ping\"}", "");
	expect_ev(&r.c, 3, "content_block_delta",
	          "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
	          "\"text\":\"Hello\"}}",
	          "");
	cr_assert_eq(r.finish_rc, 0);
	coll_free(&r.c);
}

Test(sse, gemini_crlf_line_ends)
{
	const char *s =
	    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"}}]}"
	    "\r\n\r\n"
	    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}]},\"finishReason\":\"STOP\"}],"
	    "\"usageMetadata\":{\"promptTokenCount\":4}}\r\n\r\n";
	struct run r = parse_str(s);
	cr_assert_eq(r.c.n, 2);
	expect_ev(&r.c, 0, "",
	          "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"}}]}", "");
	expect_ev(&r.c, 1, "",
	          "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}]},\"finishReason\":\"STOP\"}],"
	          "\"usageMetadata\":{\"promptTokenCount\":4}}",
	          "");
	coll_free(&r.c);
}

/* ---- line syntax ----------------------------------------------------- */

Test(sse, comments_counted_never_dispatched)
{
	struct run r =
	    parse_str(": keep-alive\n\n: ping\n:\ndata: x\n: between data lines\ndata: y\n\n: ping\n\n");
	cr_assert_eq(r.c.n, 1);
	expect_ev(&r.c, 0, "", "x\ny", "");
	cr_assert_eq(r.comments, 5);
	coll_free(&r.c);
}

Test(sse, multiline_data_joined_with_lf)
{
	struct run r = parse_str("data: {\"a\":\ndata: 1}\ndata:\ndata: end\n\ndata: one\n\n");
	cr_assert_eq(r.c.n, 2);
	expect_ev(&r.c, 0, "", "{\"a\":\n1}\n\nend", "");
	expect_ev(&r.c, 1, "", "one", "");
	coll_free(&r.c);
}

Test(sse, line_ends_lf_crlf_cr_and_mixed)
{
	static const char *const eols[] = { "\n", "\r\n", "\r" };
	for (size_t k = 0; k < 3; k++) {
		const char *e = eols[k];
		char s[256];
		snprintf(s, sizeof(s), "event: e%sdata: a%sdata: b%s%sdata: c%s%s", e, e, e, e, e, e);
		struct run r = parse_str(s);
		cr_assert_eq(r.c.n, 2, "eol %zu", k);
		expect_ev(&r.c, 0, "e", "a\nb", "");
		expect_ev(&r.c, 1, "", "c", "");
		coll_free(&r.c);
	}
	/* mixed within one stream */
	struct run r = parse_str("data: a\r\ndata: b\rdata: c\n\r\nevent: x\rdata: d\r\n\r");
	cr_assert_eq(r.c.n, 2);
	expect_ev(&r.c, 0, "", "a\nb\nc", "");
	expect_ev(&r.c, 1, "x", "d", "");
	coll_free(&r.c);
	/* LF then CR is two line ends, not one: the CR ends an empty line */
	r = parse_str("data: a\n\rdata: b\n\n");
	cr_assert_eq(r.c.n, 2);
	expect_ev(&r.c, 0, "", "a", "");
	expect_ev(&r.c, 1, "", "b", "");
	coll_free(&r.c);
}

Test(sse, crlf_split_between_feeds_is_one_line_end)
{
	struct sse_parser *p = sse_new(MAX_4M);
	struct coll c = { 0 };
	feed_ok(p, "data: a\r", &c);
	feed_ok(p, "\ndata: b\r\n\r", &c); /* a second line end would have dispatched "a" alone */
	cr_assert_eq(c.n, 1);
	expect_ev(&c, 0, "", "a\nb", "");
	feed_ok(p, "\n", &c); /* the LF of the blank line's CRLF: nothing new */
	feed_ok(p, "data: c\r", &c);
	feed_ok(p, "data: d\r", &c); /* CR then a non-LF: the CR alone ended the line */
	feed_ok(p, "\r", &c);
	cr_assert_eq(c.n, 2);
	expect_ev(&c, 1, "", "c\nd", "");
	cr_assert_eq(sse_finish(p, on_event, &c), 0);
	cr_assert_eq(c.n, 2);
	sse_free(p);
	coll_free(&c);
}

Test(sse, bom_skipped_once_even_when_split)
{
	static const char s[] = "\xEF\xBB\xBF"
	                        "data: x\n\n";
	struct run r = parse_whole(s, sizeof(s) - 1, MAX_4M);
	cr_assert_eq(r.c.n, 1);
	expect_ev(&r.c, 0, "", "x", "");
	coll_free(&r.c);
	r = parse_bytewise(s, sizeof(s) - 1, MAX_4M);
	cr_assert_eq(r.c.n, 1);
	expect_ev(&r.c, 0, "", "x", "");
	coll_free(&r.c);

	/* only one BOM: a second one is part of the first field name */
	static const char two[] = "\xEF\xBB\xBF\xEF\xBB\xBF"
	                          "data: x\n\ndata: y\n\n";
	r = parse_bytewise(two, sizeof(two) - 1, MAX_4M);
	cr_assert_eq(r.c.n, 1);
	expect_ev(&r.c, 0, "", "y", "");
	coll_free(&r.c);

	/* a near miss keeps its bytes: "\xEF\xBB" + "data" is an unknown field */
	static const char miss[] = "\xEF\xBB"
	                           "data: x\n\ndata: y\n\n";
	struct run whole = parse_whole(miss, sizeof(miss) - 1, MAX_4M);
	cr_assert_eq(whole.c.n, 1);
	expect_ev(&whole.c, 0, "", "y", "");
	r = parse_bytewise(miss, sizeof(miss) - 1, MAX_4M);
	assert_same_run(&r, &whole, "near-miss BOM bytewise");
	coll_free(&r.c);
	coll_free(&whole.c);

	/* not at the start: not a BOM */
	static const char late[] = "data: a\xEF\xBB\xBF\n\n";
	r = parse_whole(late, sizeof(late) - 1, MAX_4M);
	expect_ev(&r.c, 0, "", "a\xEF\xBB\xBF", "");
	coll_free(&r.c);
}

Test(sse, field_without_colon_has_empty_value)
{
	struct run r = parse_str("data\n\ndata\ndata\n\nevent\ndata: x\n\nid: 5\nid\ndata: y\n\n");
	cr_assert_eq(r.c.n, 4);
	expect_ev(&r.c, 0, "", "", "");
	expect_ev(&r.c, 1, "", "\n", "");
	expect_ev(&r.c, 2, "", "x", "");
	expect_ev(&r.c, 3, "", "y", "");
	coll_free(&r.c);
}

Test(sse, one_space_after_colon_removed)
{
	struct run r =
	    parse_str("data:x\n\ndata:  two\n\ndata: \n\ndata:\ttab\n\nevent:  sp\ndata: a: b\n\n");
	cr_assert_eq(r.c.n, 5);
	expect_ev(&r.c, 0, "", "x", "");
	expect_ev(&r.c, 1, "", " two", "");
	expect_ev(&r.c, 2, "", "", "");
	expect_ev(&r.c, 3, "", "\ttab", "");
	expect_ev(&r.c, 4, " sp", "a: b", "");
	coll_free(&r.c);
}

Test(sse, id_persists_resets_and_ignores_nul)
{
	static const char s[] = "id: 1\ndata: a\n\n"
	                        "data: b\n\n"           /* keeps the last id */
	                        "id: 2\n\n"             /* no data: no event, but the id is taken */
	                        "data: c\n\n"           /* "2" */
	                        "id: x\0y\ndata: d\n\n" /* NUL: ignored, still "2" */
	                        "data: e\nid:\n\n";     /* empty id resets, even after data */
	struct run r = parse_whole(s, sizeof(s) - 1, MAX_4M);
	cr_assert_eq(r.c.n, 5);
	expect_ev(&r.c, 0, "", "a", "1");
	expect_ev(&r.c, 1, "", "b", "1");
	expect_ev(&r.c, 2, "", "c", "2");
	expect_ev(&r.c, 3, "", "d", "2");
	expect_ev(&r.c, 4, "", "e", "");
	coll_free(&r.c);
}

Test(sse, event_type_reset_by_blank_line_and_fields_case_sensitive)
{
	struct run r = parse_str("event: lonely\n\ndata: a\n\n"
	                         "retry: 3000\nretry: soon\nfoo: bar\nData: no\nEVENT: no\ndata: b\n\n"
	                         "event: first\nevent: second\ndata: c\n\n");
	cr_assert_eq(r.c.n, 3);
	expect_ev(&r.c, 0, "", "a", "");
	expect_ev(&r.c, 1, "", "b", "");
	expect_ev(&r.c, 2, "second", "c", "");
	coll_free(&r.c);
}

/* ---- end of stream --------------------------------------------------- */

Test(sse, finish_dispatches_event_without_blank_line)
{
	struct run r = parse_str("data: a\n\ndata: last\n");
	cr_assert_eq(r.finish_rc, 0);
	cr_assert_eq(r.c.n, 2);
	expect_ev(&r.c, 1, "", "last", "");
	coll_free(&r.c);

	r = parse_str("event: e\ndata: cut mid-li");
	cr_assert_eq(r.finish_rc, SSE_ETRUNCATED);
	cr_assert_eq(r.c.n, 1);
	expect_ev(&r.c, 0, "e", "cut mid-li", "");
	coll_free(&r.c);

	r = parse_str("data: a\n\n");
	cr_assert_eq(r.finish_rc, 0);
	cr_assert_eq(r.c.n, 1);
	coll_free(&r.c);

	r = parse_str("data: a\r"); /* a CR is a whole line end */
	cr_assert_eq(r.finish_rc, 0);
	cr_assert_eq(r.c.n, 1);
	coll_free(&r.c);

	r = parse_str("event: no data\nid: 3\n");
	cr_assert_eq(r.finish_rc, 0);
	cr_assert_eq(r.c.n, 0);
	coll_free(&r.c);

	r = parse_str("");
	cr_assert_eq(r.finish_rc, 0);
	cr_assert_eq(r.c.n, 0);
	coll_free(&r.c);

	r = parse_str(": trailing comment"); /* truncated, but nothing to dispatch */
	cr_assert_eq(r.finish_rc, SSE_ETRUNCATED);
	cr_assert_eq(r.c.n, 0);
	cr_assert_eq(r.comments, 1);
	coll_free(&r.c);
}

Test(sse, finish_resets_for_a_new_stream)
{
	struct sse_parser *p = sse_new(MAX_4M);
	struct coll c = { 0 };
	feed_ok(p, "id: 9\nevent: e\ndata: a\n", &c);
	cr_assert_eq(sse_finish(p, on_event, &c), 0);
	expect_ev(&c, 0, "e", "a", "9");
	feed_ok(p,
	        "\xEF\xBB\xBF"
	        "data: b\n\n",
	        &c);
	cr_assert_eq(c.n, 2);
	expect_ev(&c, 1, "", "b", ""); /* BOM skipped again, id forgotten */
	cr_assert_eq(sse_finish(p, on_event, &c), 0);
	sse_free(p);
	coll_free(&c);
}

/* ---- bounds ---------------------------------------------------------- */

Test(sse, endless_line_fails_and_memory_stays_bounded)
{
	const size_t max = 64 * 1024;
	struct sse_parser *p = sse_new(max);
	struct coll c = { 0 };
	feed_ok(p, "data: before\n\n", &c);
	feed_ok(p, "data: ", &c);
	char piece[1024];
	memset(piece, 'a', sizeof(piece));
	size_t failed_at = 0;
	for (size_t k = 1; k <= 10 * 1024; k++) { /* 10 MiB in 1 KiB pieces */
		int rc = sse_feed(p, piece, sizeof(piece), on_event, &c);
		cr_assert_leq(sse_buffered(p), max, "buffered %zu after piece %zu", sse_buffered(p), k);
		if (failed_at == 0 && rc != 0) {
			cr_assert_eq(rc, SSE_ETOOLONG);
			failed_at = k;
		} else if (failed_at) {
			cr_assert_eq(rc, SSE_ETOOLONG, "a failed parser must stay failed");
		}
	}
	/* "data: " + 64 pieces = 65542 bytes is the first line over 65536 */
	cr_assert_eq(failed_at, 64);
	cr_assert_eq(sse_feed(p, "\n\n", 2, on_event, &c), SSE_ETOOLONG);
	cr_assert_eq(sse_finish(p, on_event, &c), SSE_ETOOLONG);
	cr_assert_eq(c.n, 1);
	expect_ev(&c, 0, "", "before", "");
	/* sse_finish reset it: usable again */
	feed_ok(p, "data: after\n\n", &c);
	cr_assert_eq(c.n, 2);
	sse_free(p);
	coll_free(&c);
}

Test(sse, bound_is_exact_and_independent_of_splitting)
{
	const size_t max = 64;
	char line[128];
	/* a line of exactly max bytes fits; one more byte does not */
	snprintf(line, sizeof(line), "data: %.*s\n\n", 58,
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	struct run r = parse_whole(line, strlen(line), max);
	cr_assert_eq(r.feed_rc, 0);
	cr_assert_eq(r.c.n, 1);
	cr_assert_eq(r.c.v[0].data_len, 58);
	cr_assert_leq(r.max_buffered, max);
	struct run b = parse_bytewise(line, strlen(line), max);
	assert_same_run(&b, &r, "exact fit bytewise");
	coll_free(&b.c);
	coll_free(&r.c);

	snprintf(line, sizeof(line), "data: %.*s\n\n", 59,
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	r = parse_whole(line, strlen(line), max);
	cr_assert_eq(r.feed_rc, SSE_ETOOLONG);
	cr_assert_eq(r.c.n, 0);
	b = parse_bytewise(line, strlen(line), max);
	assert_same_run(&b, &r, "one over bytewise");
	coll_free(&b.c);
	coll_free(&r.c);

	/* the last id counts too: "id: 7" holds 1 byte, so a 64-byte line no longer fits */
	snprintf(line, sizeof(line), "id: 7\ndata: %.*s\n\n", 58,
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	r = parse_whole(line, strlen(line), max);
	cr_assert_eq(r.feed_rc, SSE_ETOOLONG);
	b = parse_bytewise(line, strlen(line), max);
	assert_same_run(&b, &r, "id counts bytewise");
	coll_free(&b.c);
	coll_free(&r.c);
}

Test(sse, joined_data_over_the_bound_fails)
{
	const size_t max = 100;
	struct sb s = { 0 };
	/* each "data: 0123456789" line adds 10 bytes (+1 for the '\n' join);
	 * eight lines hold 87, a ninth (16 bytes on top of 87) does not fit */
	for (int i = 0; i < 8; i++)
		SB_LIT(&s, "data: 0123456789\n");
	SB_LIT(&s, "\n");
	struct run r = parse_whole(s.s, s.len, max);
	cr_assert_eq(r.feed_rc, 0);
	cr_assert_eq(r.c.n, 1);
	cr_assert_eq(r.c.v[0].data_len, 87);
	struct run b = parse_bytewise(s.s, s.len, max);
	assert_same_run(&b, &r, "8 lines bytewise");
	cr_assert_leq(b.max_buffered, max);
	coll_free(&b.c);
	coll_free(&r.c);

	s.len = 0;
	for (int i = 0; i < 9; i++)
		SB_LIT(&s, "data: 0123456789\n");
	SB_LIT(&s, "\n");
	r = parse_whole(s.s, s.len, max);
	cr_assert_eq(r.feed_rc, SSE_ETOOLONG);
	cr_assert_eq(r.c.n, 0);
	b = parse_bytewise(s.s, s.len, max);
	assert_same_run(&b, &r, "9 lines bytewise");
	cr_assert_leq(b.max_buffered, max);
	coll_free(&b.c);
	coll_free(&r.c);
	free(s.s);
}

Test(sse, memory_given_back_after_a_large_event)
{
	struct sse_parser *p = sse_new(MAX_4M);
	struct coll c = { 0 };
	char piece[4096];
	memset(piece, 'z', sizeof(piece));
	feed_ok(p, "data: ", &c);
	for (int i = 0; i < 256; i++) /* a 1 MiB line, split: it must be buffered */
		cr_assert_eq(sse_feed(p, piece, sizeof(piece), on_event, &c), 0);
	cr_assert_geq(sse_buffered(p), 1024 * 1024);
	cr_assert_leq(sse_buffered(p), MAX_4M);
	feed_ok(p, "\n\n", &c);
	cr_assert_eq(c.n, 1);
	cr_assert_eq(c.v[0].data_len, 1024 * 1024);
	cr_assert_leq(sse_buffered(p), 4096, "still holding %zu bytes", sse_buffered(p));
	sse_free(p);
	coll_free(&c);
}

/* ---- the split test -------------------------------------------------- */

static void build_realistic(struct sb *b)
{
	SB_LIT(b, "\xEF\xBB\xBF");
	SB_LIT(b, ": keep-alive\r\n\r\n");
	SB_LIT(
	    b,
	    "event: message_start\n"
	    "data: "
	    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":7}}}\n\n");
	SB_LIT(
	    b,
	    "event: content_block_delta\r\n"
	    "data: {\"delta\":{\"text\":\"caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x99\x82\"}}\r\n\r\n");
	SB_LIT(b, ": ping\r"
	          "event: ping\r"
	          "data: {\"type\": \"ping\"}\r\r");
	SB_LIT(b, "data: line one \xC3\xA9\n"
	          ": a comment between data lines\n"
	          "data:line two \xE4\xB8\xAD\n"
	          "data:  two spaces \xF0\x9F\x99\x82\n"
	          "id: 42\n\n");
	SB_LIT(b, "data: {\"choices\":[{\"delta\":{\"content\":\"\xF0\x9F\x99\x82\xF0\x9F\x99\x82\"}}]}\r\n"
	          "event: late_type\r\n"
	          "id: 43 \xE4\xB8\xAD\r\n"
	          "retry: 1000\r\n"
	          "unknown: x\r\n\r\n");
	SB_LIT(b, "event: ignored_no_data\n\n");
	SB_LIT(b, "id: nul\0here\n"
	          "data\n\n");
	/* a long line (longer than the parser's first allocation) of 3-byte characters */
	SB_LIT(b, "data: ");
	for (int i = 0; i < 300; i++)
		SB_LIT(b, "\xE4\xB8\xAD");
	SB_LIT(b, "\n\n");
	SB_LIT(b, "data: [DONE]\n\n");
	SB_LIT(b, "data: tail without blank line \xC3\xA9");
}

static void check_realistic_reference(const struct run *r)
{
	cr_assert_eq(r->feed_rc, 0);
	cr_assert_eq(r->finish_rc, SSE_ETRUNCATED);
	cr_assert_eq(r->comments, 3);
	cr_assert_eq(r->c.n, 9);
	expect_ev(
	    &r->c, 0, "message_start",
	    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":7}}}", "");
	expect_ev(&r->c, 1, "content_block_delta",
	          "{\"delta\":{\"text\":\"caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x99\x82\"}}", "");
	expect_ev(&r->c, 2, "ping", "{\"type\": \"ping\"}", "");
	expect_ev(&r->c, 3, "", "line one \xC3\xA9\nline two \xE4\xB8\xAD\n two spaces \xF0\x9F\x99\x82",
	          "42");
	expect_ev(&r->c, 4, "late_type",
	          "{\"choices\":[{\"delta\":{\"content\":\"\xF0\x9F\x99\x82\xF0\x9F\x99\x82\"}}]}",
	          "43 \xE4\xB8\xAD");
	expect_ev(&r->c, 5, "", "", "43 \xE4\xB8\xAD");
	cr_assert_eq(r->c.v[6].data_len, 900);
	for (size_t i = 0; i < 900; i += 3)
		cr_assert(memcmp(r->c.v[6].data + i, "\xE4\xB8\xAD", 3) == 0, "long line damaged at %zu", i);
	expect_ev(&r->c, 7, "", "[DONE]", "43 \xE4\xB8\xAD");
	expect_ev(&r->c, 8, "", "tail without blank line \xC3\xA9", "43 \xE4\xB8\xAD");
}

static uint32_t xorshift32(uint32_t *s)
{
	uint32_t x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

Test(sse, any_split_gives_the_same_events)
{
	struct sb s = { 0 };
	build_realistic(&s);
	struct run whole = parse_whole(s.s, s.len, MAX_4M);
	check_realistic_reference(&whole);

	char how[64];
	for (size_t k = 0; k <= s.len; k++) {
		size_t sizes[2] = { k, s.len - k };
		struct run r = parse_sizes(s.s, s.len, sizes, 2, MAX_4M);
		snprintf(how, sizeof(how), "split at %zu", k);
		assert_same_run(&r, &whole, how);
		coll_free(&r.c);
	}

	struct run r = parse_bytewise(s.s, s.len, MAX_4M);
	assert_same_run(&r, &whole, "byte by byte");
	coll_free(&r.c);

	size_t *sizes = xmalloc(s.len * sizeof(*sizes));
	for (uint32_t seed = 1; seed <= 300; seed++) {
		uint32_t st = seed * 2654435761u;
		size_t n = 0, off = 0;
		while (off < s.len) {
			size_t len = 1 + xorshift32(&st) % (seed % 3 == 0 ? 7 : 97);
			if (len > s.len - off)
				len = s.len - off;
			sizes[n++] = len;
			off += len;
		}
		r = parse_sizes(s.s, s.len, sizes, n, MAX_4M);
		snprintf(how, sizeof(how), "random chunks, seed %u", seed);
		assert_same_run(&r, &whole, how);
		coll_free(&r.c);
	}
	free(sizes);
	coll_free(&whole.c);
	free(s.s);
}

Test(sse, fields_split_while_data_is_pending)
{
	/* an id and an event type that arrive in pieces after data lines,
	 * so they are assembled in the parser's buffer next to that data */
	struct sse_parser *p = sse_new(MAX_4M);
	struct coll c = { 0 };
	feed_ok(p, "data: a\nid: 12", &c);
	feed_ok(p, "345\nevent: ab", &c);
	feed_ok(p, "cd\ndata: b\nid: 6", &c);
	feed_ok(p, "7\nevent: ef\n", &c);
	feed_ok(p, "\n", &c);
	cr_assert_eq(c.n, 1);
	expect_ev(&c, 0, "ef", "a\nb", "67");
	cr_assert_eq(sse_finish(p, on_event, &c), 0);
	sse_free(p);
	coll_free(&c);
}

/* ---- fast path, callback control, volume ------------------------------ */

Test(sse, whole_event_in_a_chunk_is_not_copied)
{
	struct sse_parser *p = sse_new(MAX_4M);
	struct coll c = { 0 };
	feed_ok(p, "event: e\ndata: {\"x\":1}\n\n", &c);
	cr_assert_eq(c.n, 1);
	cr_assert(c.v[0].data_in_input, "single-line data in the chunk should be handed out in place");
	feed_ok(p, "data: a\ndata: b\n\n", &c); /* joined: must be copied */
	cr_assert_eq(c.n, 2);
	cr_assert_not(c.v[1].data_in_input);
	expect_ev(&c, 1, "", "a\nb", "");
	feed_ok(p, "data: split", &c);
	feed_ok(p, "\n\n", &c);
	cr_assert_eq(c.n, 3);
	cr_assert_not(c.v[2].data_in_input);
	expect_ev(&c, 2, "", "split", "");
	feed_ok(p, "event: t\ndata: kept", &c); /* views materialised before the chunk dies */
	feed_ok(p, "\n\n", &c);
	expect_ev(&c, 3, "t", "kept", "");
	feed_ok(p, "event: t2\ndata: kept too\n", &c);
	feed_ok(p, "\n", &c);
	expect_ev(&c, 4, "t2", "kept too", "");
	sse_free(p);
	coll_free(&c);
}

Test(sse, callback_stop_leaves_the_rest_unconsumed)
{
	const char *s =
	    "data: 1\r\n\r\ndata: 2\r\n\r\ndata: 3\r\n\r\nevent: e\r\ndata: 4\r\n\r\ndata: 5\r\n\r\n";
	size_t len = strlen(s);
	struct sse_parser *p = sse_new(MAX_4M);
	struct coll c = { 0 };
	c.stop_at = 2;
	size_t used = 0;
	cr_assert_eq(feed(p, s, len, &c, &used), STOP);
	cr_assert_eq(c.n, 2);
	cr_assert_eq(used, 2 * strlen("data: 1\r\n\r\n"), "used %zu",
	             used); /* the LF of the blank line too */
	c.stop_at = 0;
	cr_assert_eq(feed(p, s + used, len - used, &c, &used), 0);
	cr_assert_eq(c.n, 5);
	for (size_t i = 0; i < 5; i++) {
		char want[2] = { (char)('1' + i), '\0' };
		expect_ev(&c, i, i == 3 ? "e" : "", want, "");
	}
	sse_free(p);
	coll_free(&c);

	/* stop on a blank line whose CR is the chunk's last byte: the LF that
	 * comes next is still recognised as part of that line end */
	p = sse_new(MAX_4M);
	memset(&c, 0, sizeof(c));
	c.stop_at = 1;
	cr_assert_eq(feed(p, "data: 1\r\n\r", 10, &c, &used), STOP);
	cr_assert_eq(used, 10);
	c.stop_at = 0;
	feed_ok(p, "\ndata: 2\r\n\r\n", &c);
	cr_assert_eq(c.n, 2);
	expect_ev(&c, 1, "", "2", "");

	/* a stop in sse_finish is returned as well */
	c.stop_at = 3;
	cr_assert_eq(sse_feed(p, "data: 3", 7, on_event, &c), 0);
	cr_assert_eq(sse_finish(p, on_event, &c), STOP);
	cr_assert_eq(c.n, 3);
	expect_ev(&c, 2, "", "3", "");
	sse_free(p);
	coll_free(&c);
}

static int count_only(const struct sse_event *ev, void *arg)
{
	size_t *n = arg;
	if (ev->data_len != 1 || ev->data[0] != 'x')
		return 1;
	(*n)++;
	return 0;
}

Test(sse, many_tiny_events_and_many_tiny_feeds)
{
	const size_t count = 100000;
	static const char one[] = "data: x\n\n";
	size_t len = count * (sizeof(one) - 1);
	char *s = xmalloc(len);
	for (size_t i = 0; i < count; i++)
		memcpy(s + i * (sizeof(one) - 1), one, sizeof(one) - 1);
	struct sse_parser *p = sse_new(MAX_4M);
	size_t n = 0;
	cr_assert_eq(sse_feed(p, s, len, count_only, &n), 0);
	cr_assert_eq(n, count);
	/* the same again, 3 bytes at a time */
	n = 0;
	for (size_t off = 0; off < len; off += 3)
		cr_assert_eq(sse_feed(p, s + off, len - off < 3 ? len - off : 3, count_only, &n), 0);
	cr_assert_eq(n, count);
	cr_assert_eq(sse_finish(p, count_only, &n), 0);
	free(s);

	/* one event of 100k data lines fed in 5-byte pieces: growth must be amortised */
	struct sb b = { 0 };
	for (size_t i = 0; i < count; i++)
		SB_LIT(&b, "data: abcdefgh\n");
	SB_LIT(&b, "\n");
	struct coll c = { 0 };
	for (size_t off = 0; off < b.len; off += 5)
		cr_assert_eq(feed(p, b.s + off, b.len - off < 5 ? b.len - off : 5, &c, NULL), 0);
	cr_assert_eq(c.n, 1);
	cr_assert_eq(c.v[0].data_len, count * 9 - 1);
	cr_assert(memcmp(c.v[0].data, "abcdefgh\nabcdefgh\n", 18) == 0);
	sse_free(p);
	coll_free(&c);
	free(b.s);
}
