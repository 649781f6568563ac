/*
 * xlate_testutil.h — helpers for the translation tests: read a fixture
 * file, compare JSON documents, and run a provider SSE byte stream
 * through the SSE parser, a format's stream decoder and another format's
 * stream encoder, fed whole, split at every byte boundary, or one byte at
 * a time, so a test can check that splitting never changes the output.
 *
 * Fixtures live in tests/unit/providers/fixtures/ (paths are relative to
 * the repository root, where the unit tests run).
 */
#ifndef FUSION_TESTS_XLATE_TESTUTIL_H
#define FUSION_TESTS_XLATE_TESTUTIL_H

#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "gateway/sse.h"
#include "providers/format.h"
#include "util/alloc.h"

#define XLATE_FIXTURES "tests/unit/providers/fixtures/"

/* The whole fixture file (malloc'd, NUL-terminated); *len its size. */
static inline char *xlate_read(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof(path), XLATE_FIXTURES "%s", name);
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "fixture %s missing", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = xmalloc((size_t)n + 1);
	size_t got = fread(buf, 1, (size_t)n, f);
	fclose(f);
	buf[got] = '\0';
	if (len)
		*len = got;
	return buf;
}

/* A fixture parsed as JSON (new reference). */
static inline json_t *xlate_json(const char *name)
{
	json_error_t e;
	char path[512];
	snprintf(path, sizeof(path), XLATE_FIXTURES "%s", name);
	json_t *j = json_load_file(path, 0, &e);
	cr_assert_not_null(j, "%s:%d: %s", path, e.line, e.text);
	return j;
}

/* Assert two JSON values are equal, printing both when they differ. */
static inline void xlate_assert_json_eq(const json_t *got, const json_t *want, const char *what)
{
	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_INDENT(1) | JSON_SORT_KEYS);
		char *w = json_dumps(want, JSON_INDENT(1) | JSON_SORT_KEYS);
		cr_assert_fail("%s differs\n--- got ---\n%s\n--- want ---\n%s", what, g ? g : "(null)",
		               w ? w : "(null)");
	}
}

struct xlate_run {
	const struct wire_format *enc;
	struct wire_sdec *d;
	struct wire_senc *e;
	struct evbuffer *out;
	int rc;
};

static inline int xlate_on_cev(const struct cev *ev, void *arg)
{
	struct xlate_run *x = arg;
	x->enc->senc_event(x->e, ev, x->out);
	return 0;
}

struct xlate_pair {
	const struct wire_format *from, *to;
	struct xlate_run run;
};

static inline int xlate_pair_on_sse(const struct sse_event *ev, void *arg)
{
	struct xlate_pair *x = arg;
	int rc = x->from->sdec_event(x->run.d, ev->event, ev->event_len, ev->data, ev->data_len, xlate_on_cev,
	                             &x->run);
	if (rc < 0)
		x->run.rc = rc;
	return 0;
}

/*
 * Translate the SSE bytes in (len n) from format `from` to format `to`
 * with options o, feeding the bytes in pieces: step 0 means whole; a
 * split at byte k means [0,k) then [k,n) (pass split = k, step = 0);
 * step 1 means one byte at a time.  Each piece is its own malloc'd copy
 * (ASan catches a decoder that keeps pointers into it).  Returns the
 * client bytes (malloc'd, NUL-terminated).
 */
static inline char *xlate_stream(const struct wire_format *from, const struct wire_format *to,
                                 const struct wire_opts *o, const char *in, size_t n, size_t split,
                                 size_t step)
{
	struct xlate_pair x = { .from = from, .to = to };
	x.run.enc = to;
	x.run.d = from->sdec_new();
	x.run.e = to->senc_new(o);
	x.run.out = evbuffer_new();
	struct sse_parser *sp = sse_new(4u << 20);
	size_t pos = 0;
	while (pos < n) {
		size_t take = n - pos;
		if (step)
			take = step < take ? step : take;
		else if (split && pos < split)
			take = split - pos;
		char *piece = xmalloc(take ? take : 1);
		memcpy(piece, in + pos, take);
		int rc = sse_feed(sp, piece, take, xlate_pair_on_sse, &x);
		free(piece);
		cr_assert_eq(rc, 0, "sse_feed failed: %d", rc);
		pos += take;
	}
	int rc = sse_finish(sp, xlate_pair_on_sse, &x);
	cr_assert(rc == 0 || rc == SSE_ETRUNCATED, "sse_finish: %d", rc);
	from->sdec_end(x.run.d, xlate_on_cev, &x.run);
	sse_free(sp);
	size_t len = evbuffer_get_length(x.run.out);
	char *s = xmalloc(len + 1);
	evbuffer_remove(x.run.out, s, len);
	s[len] = '\0';
	evbuffer_free(x.run.out);
	from->sdec_free(x.run.d);
	to->senc_free(x.run.e);
	return s;
}

/*
 * Run xlate_stream whole, at every split point and byte by byte, and
 * assert every result equals the whole-stream one.  Returns the whole
 * result (malloc'd).  Generated ids differ per run, so encoders must be
 * given deterministic ids in tests: see each format's test for how the
 * ids are normalised (xlate_normalise).
 */
typedef void (*xlate_norm_fn)(char *s);

static inline char *xlate_stream_all_splits(const struct wire_format *from, const struct wire_format *to,
                                            const struct wire_opts *o, const char *in, size_t n,
                                            xlate_norm_fn norm)
{
	char *whole = xlate_stream(from, to, o, in, n, 0, 0);
	if (norm)
		norm(whole);
	for (size_t k = 1; k < n; k++) {
		char *s = xlate_stream(from, to, o, in, n, k, 0);
		if (norm)
			norm(s);
		cr_assert_str_eq(s, whole, "output differs when the input is split at byte %zu", k);
		free(s);
	}
	char *s = xlate_stream(from, to, o, in, n, 0, 1);
	if (norm)
		norm(s);
	cr_assert_str_eq(s, whole, "output differs when the input is fed byte by byte");
	free(s);
	return whole;
}

/* ---- decoder traces: one line per canonical event ---- */

static inline void xlate_trace_str(struct evbuffer *b, const char *s, size_t n)
{
	evbuffer_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			evbuffer_add_printf(b, "\\%c", c);
		else if (c == '\n')
			evbuffer_add(b, "\\n", 2);
		else if (c < 0x20)
			evbuffer_add_printf(b, "\\x%02x", c);
		else
			evbuffer_add(b, &s[i], 1);
	}
	evbuffer_add(b, "\"", 1);
}

static inline void xlate_trace_usage(struct evbuffer *b, const struct wire_usage *u)
{
	evbuffer_add_printf(b, " usage=%lld/%lld/%lld/%lld/%lld", (long long)u->prompt,
	                    (long long)u->completion, (long long)u->total, (long long)u->cached,
	                    (long long)u->reasoning);
}

/* One line per event, e.g.
 *   START id="msg_1" model="m" usage=25/-1/-1/-1/-1
 *   TEXT "Hello"
 *   TOOL_START 0 id="toolu_1" name="get_weather"
 *   TOOL_ARGS 0 "{\"city\""
 *   FINISH tool_calls
 *   USAGE usage=25/12/37/0/-1
 *   END
 * usage is prompt/completion/total/cached/reasoning. */
static inline int xlate_trace_cev(const struct cev *ev, void *arg)
{
	struct evbuffer *b = arg;
	static const char *const names[] = { "START",     "TEXT",  "THINKING", "SIGNATURE", "TOOL_START",
		                             "TOOL_ARGS", "USAGE", "FINISH",   "ERROR",     "END" };
	evbuffer_add_printf(b, "%s", names[ev->type]);
	switch (ev->type) {
	case CEV_START:
		evbuffer_add(b, " id=", 4);
		xlate_trace_str(b, ev->id ? ev->id : "", ev->id ? strlen(ev->id) : 0);
		evbuffer_add(b, " model=", 7);
		xlate_trace_str(b, ev->model ? ev->model : "", ev->model ? strlen(ev->model) : 0);
		xlate_trace_usage(b, &ev->usage);
		break;
	case CEV_TEXT:
	case CEV_THINKING:
		evbuffer_add(b, " ", 1);
		xlate_trace_str(b, ev->text, ev->len);
		break;
	case CEV_SIGNATURE:
		evbuffer_add_printf(b, " %d ", ev->index);
		xlate_trace_str(b, ev->text, ev->len);
		break;
	case CEV_TOOL_START:
		evbuffer_add_printf(b, " %d id=", ev->index);
		xlate_trace_str(b, ev->id ? ev->id : "", ev->id ? strlen(ev->id) : 0);
		evbuffer_add(b, " name=", 6);
		xlate_trace_str(b, ev->name ? ev->name : "", ev->name ? strlen(ev->name) : 0);
		break;
	case CEV_TOOL_ARGS:
		evbuffer_add_printf(b, " %d ", ev->index);
		xlate_trace_str(b, ev->text, ev->len);
		break;
	case CEV_USAGE:
		xlate_trace_usage(b, &ev->usage);
		break;
	case CEV_FINISH:
		evbuffer_add_printf(b, " %s", ev->finish ? ev->finish : "(null)");
		if (ev->text) {
			evbuffer_add(b, " stop_sequence=", 15);
			xlate_trace_str(b, ev->text, ev->len);
		}
		break;
	case CEV_ERROR:
		if (ev->error)
			evbuffer_add_printf(b, " %d %s %s", ev->error->status, ev->error->type,
			                    ev->error->message);
		break;
	case CEV_END:
		break;
	}
	evbuffer_add(b, "\n", 1);
	return 0;
}

struct xlate_tr {
	const struct wire_format *from;
	struct wire_sdec *d;
	struct evbuffer *b;
};

static inline int xlate_tr_on_sse(const struct sse_event *ev, void *arg)
{
	struct xlate_tr *t = arg;
	(void)t->from->sdec_event(t->d, ev->event, ev->event_len, ev->data, ev->data_len, xlate_trace_cev,
	                          t->b);
	return 0;
}

/* The decoder trace of SSE bytes in (split as in xlate_stream); malloc'd. */
static inline char *xlate_trace(const struct wire_format *from, const char *in, size_t n, size_t split,
                                size_t step)
{
	struct xlate_tr t = { .from = from, .d = from->sdec_new(), .b = evbuffer_new() };
	struct sse_parser *sp = sse_new(4u << 20);
	size_t pos = 0;
	while (pos < n) {
		size_t take = n - pos;
		if (step)
			take = step < take ? step : take;
		else if (split && pos < split)
			take = split - pos;
		char *piece = xmalloc(take ? take : 1);
		memcpy(piece, in + pos, take);
		int rc = sse_feed(sp, piece, take, xlate_tr_on_sse, &t);
		free(piece);
		cr_assert_eq(rc, 0, "sse_feed failed: %d", rc);
		pos += take;
	}
	int rc = sse_finish(sp, xlate_tr_on_sse, &t);
	cr_assert(rc == 0 || rc == SSE_ETRUNCATED, "sse_finish: %d", rc);
	from->sdec_end(t.d, xlate_trace_cev, t.b);
	sse_free(sp);
	size_t len = evbuffer_get_length(t.b);
	char *s = xmalloc(len + 1);
	evbuffer_remove(t.b, s, len);
	s[len] = '\0';
	evbuffer_free(t.b);
	from->sdec_free(t.d);
	return s;
}

/* The trace whole, asserting the same at every split and byte by byte. */
static inline char *xlate_trace_all_splits(const struct wire_format *from, const char *in, size_t n)
{
	char *whole = xlate_trace(from, in, n, 0, 0);
	for (size_t k = 1; k < n; k++) {
		char *s = xlate_trace(from, in, n, k, 0);
		cr_assert_str_eq(s, whole, "trace differs when the input is split at byte %zu", k);
		free(s);
	}
	char *s = xlate_trace(from, in, n, 0, 1);
	cr_assert_str_eq(s, whole, "trace differs when the input is fed byte by byte");
	free(s);
	return whole;
}

#endif
