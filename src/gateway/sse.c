/*
 * sse.c — see sse.h.
 *
 * Design: the parser owns one buffer (the "arena") holding four regions
 * back to back:
 *
 *     [ last id | event type | data (joined) | partial line ]
 *
 * Input is scanned for line ends once.  A line that lies whole inside
 * the chunk being fed is parsed where it is; only the tail of a chunk
 * that does not end a line is appended to the partial-line region, and
 * the next chunk completes it there.  Consumed bytes are never kept, so
 * there is no read offset and nothing to compact: each region shrinks or
 * is dropped the moment it is used.
 *
 * Zero-copy: while one sse_feed call runs, the event type and the first
 * data line may stay "views" into the caller's chunk (ev_view,
 * data_view).  A dispatch in the same call hands those pointers to the
 * callback as they are.  Before sse_feed returns, any view still pending
 * is copied into its region ("materialised"), because the chunk goes
 * away.  A second data line materialises the first so they can be
 * joined.
 *
 * Lines that completed in the partial-line region are parsed in place
 * without a second copy (which would briefly hold a line twice and break
 * the bound): a data value is moved down onto the end of the data region
 * (which is right before the line); an id or event value, always the
 * tail of the line, is rotated to the front of its region.
 *
 * Accounting is logical, not physical: held() counts the id, the event
 * type and the data whether viewed or copied, plus the partial line.  It
 * is checked against the bound before a line is taken, so failing never
 * depends on where the chunks were cut, and the arena (always <= held())
 * never needs more than max bytes.  Growth doubles (amortised O(1) per
 * byte for many small feeds) and is clamped to max; after a large event
 * the arena shrinks back so an idle stream does not pin memory.
 */
#include "gateway/sse.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

enum { INITIAL_CAP = 256, SHRINK_ABOVE = 64 * 1024 };

static const unsigned char BOM[3] = { 0xEF, 0xBB, 0xBF };

struct sse_parser {
	size_t max; /* bound on held(), and on cap */
	char *a;    /* owned: the arena, regions as in the file comment */
	size_t cap;
	size_t id_len, ev_len, data_len, line_len; /* region lengths in a */
	size_t data_lines;   /* data: lines in the pending event; 0 = nothing to dispatch */
	const char *ev_view; /* borrowed from the chunk being fed, or NULL */
	size_t ev_view_len;
	const char *data_view; /* borrowed: the single data line so far, or NULL */
	size_t data_view_len;
	uint64_t comments;
	size_t consumed;   /* by the last sse_feed */
	unsigned bom_have; /* BOM bytes matched so far at the very start */
	bool bom_done;     /* the first bytes have been checked for a BOM */
	bool pending_cr;   /* the last byte seen was a CR: a leading LF is part of that line end */
	bool failed;       /* SSE_ETOOLONG happened; sticky */
};

enum region { REG_ID, REG_EV };

static size_t used_bytes(const struct sse_parser *p)
{
	return p->id_len + p->ev_len + p->data_len + p->line_len;
}

/* Everything the stream currently makes us hold, however it is stored. */
static size_t held(const struct sse_parser *p)
{
	size_t ev = p->ev_view ? p->ev_view_len : p->ev_len;
	size_t data = p->data_view ? p->data_view_len : p->data_len;
	return p->id_len + ev + data + p->line_len;
}

/* Can we take `more` bytes on top of held()? */
static bool fits(const struct sse_parser *p, size_t more)
{
	return more <= p->max - held(p);
}

/* Make room for need bytes in total.  Callers have checked the bound
 * through fits(), and used_bytes() <= held(), so need <= max. */
static void arena_reserve(struct sse_parser *p, size_t need)
{
	if (need <= p->cap)
		return;
	if (need > p->max)
		abort(); /* a missed fits() check: a bug, not input */
	size_t cap = p->cap;
	while (cap < need)
		cap = cap > p->max / 2 ? p->max : cap * 2;
	p->a = xrealloc(p->a, cap);
	p->cap = cap;
}

/* After a large event, give the memory back rather than pin it for the
 * rest of a long stream. */
static void arena_maybe_shrink(struct sse_parser *p)
{
	size_t used = used_bytes(p);
	if (p->cap <= SHRINK_ABOVE || used > p->cap / 4)
		return;
	size_t cap = used * 2 > INITIAL_CAP ? used * 2 : INITIAL_CAP;
	if (cap > p->max)
		cap = p->max;
	p->a = xrealloc(p->a, cap);
	p->cap = cap;
}

static size_t *region_len(struct sse_parser *p, enum region r, size_t *start)
{
	*start = r == REG_ID ? 0 : p->id_len;
	return r == REG_ID ? &p->id_len : &p->ev_len;
}

/* Replace region r with v (which is not inside the arena). */
static void region_set(struct sse_parser *p, enum region r, const char *v, size_t vlen)
{
	size_t start;
	size_t *len = region_len(p, r, &start);
	size_t old = *len;
	size_t used = used_bytes(p);
	if (vlen > old)
		arena_reserve(p, used + (vlen - old));
	memmove(p->a + start + vlen, p->a + start + old, used - start - old);
	memcpy(p->a + start, v, vlen);
	*len = vlen;
}

static void reverse(char *s, size_t n)
{
	for (size_t i = 0, j = n; i + 1 < j; i++, j--) {
		char c = s[i];
		s[i] = s[j - 1];
		s[j - 1] = c;
	}
}

/* Replace region r with the last vlen bytes of the partial-line region,
 * in place: rotate them to the front of r, then close the gap left by
 * the old value.  What stays in the line region is the line's head,
 * which the caller drops. */
static void region_from_line(struct sse_parser *p, enum region r, size_t vlen)
{
	size_t start;
	size_t *len = region_len(p, r, &start);
	size_t old = *len;
	size_t n = used_bytes(p) - start;
	char *s = p->a + start;
	/* [old | regions after r | line head | value] -> [value | old | ... | line head] */
	reverse(s, n);
	reverse(s, vlen);
	reverse(s + vlen, n - vlen);
	memmove(s + vlen, s + vlen + old, n - vlen - old);
	*len = vlen;
}

/* Copy the views into the arena: the chunk they point into is going away. */
static void materialise(struct sse_parser *p)
{
	if (p->ev_view) {
		const char *v = p->ev_view;
		p->ev_view = NULL;
		region_set(p, REG_EV, v, p->ev_view_len);
	}
	if (p->data_view) {
		/* the line region is empty here: data is the last region */
		arena_reserve(p, used_bytes(p) + p->data_view_len);
		memcpy(p->a + used_bytes(p), p->data_view, p->data_view_len);
		p->data_len = p->data_view_len;
		p->data_view = NULL;
	}
}

static void data_append(struct sse_parser *p, const char *v, size_t vlen, bool in_arena)
{
	if (in_arena) {
		/* v is the tail of the line region, which starts where data ends;
		 * the "data" name before v leaves room for the '\n'.  The caller
		 * drops the line region. */
		char *dst = p->a + p->id_len + p->ev_len + p->data_len;
		if (p->data_lines > 0)
			*dst++ = '\n';
		memmove(dst, v, vlen);
		p->data_len = (size_t)(dst - (p->a + p->id_len + p->ev_len)) + vlen;
		p->data_lines++;
		return;
	}
	if (p->data_lines == 0) {
		p->data_view = v;
		p->data_view_len = vlen;
		p->data_lines = 1;
		return;
	}
	materialise(p);
	arena_reserve(p, used_bytes(p) + 1 + vlen);
	char *dst = p->a + used_bytes(p);
	dst[0] = '\n';
	memcpy(dst + 1, v, vlen);
	p->data_len += 1 + vlen;
	p->data_lines++;
}

static void reset_event(struct sse_parser *p)
{
	/* id persists across events; the line region is empty at a blank line */
	p->ev_len = 0;
	p->data_len = 0;
	p->data_lines = 0;
	p->ev_view = NULL;
	p->data_view = NULL;
}

static int dispatch(struct sse_parser *p, sse_event_fn cb, void *arg)
{
	if (p->data_lines == 0) {
		reset_event(p);
		return 0;
	}
	struct sse_event ev;
	ev.id = p->id_len ? p->a : "";
	ev.id_len = p->id_len;
	if (p->ev_view) {
		ev.event = p->ev_view;
		ev.event_len = p->ev_view_len;
	} else {
		ev.event = p->ev_len ? p->a + p->id_len : "";
		ev.event_len = p->ev_len;
	}
	if (p->data_view) {
		ev.data = p->data_view;
		ev.data_len = p->data_view_len;
	} else {
		ev.data = p->data_len ? p->a + p->id_len + p->ev_len : "";
		ev.data_len = p->data_len;
	}
	int rc = cb(&ev, arg);
	reset_event(p);
	arena_maybe_shrink(p);
	return rc;
}

static bool field_is(const char *s, size_t len, const char *name)
{
	size_t n = strlen(name);
	return len == n && memcmp(s, name, n) == 0;
}

/* One complete line, without its line end.  in_arena: s is the
 * partial-line region (else it is in the chunk being fed, and stays
 * valid until sse_feed returns). */
static int process_line(struct sse_parser *p, const char *s, size_t len, bool in_arena, sse_event_fn cb,
                        void *arg)
{
	if (len == 0)
		return dispatch(p, cb, arg);
	if (s[0] == ':') {
		p->comments++;
		return 0;
	}
	const char *colon = memchr(s, ':', len);
	size_t flen = colon ? (size_t)(colon - s) : len;
	const char *v = colon ? colon + 1 : s + len;
	size_t vlen = len - (size_t)(v - s);
	if (vlen > 0 && *v == ' ') {
		v++;
		vlen--;
	}

	if (field_is(s, flen, "data")) {
		data_append(p, v, vlen, in_arena);
	} else if (field_is(s, flen, "event")) {
		if (in_arena) {
			region_from_line(p, REG_EV, vlen);
		} else {
			region_set(p, REG_EV, "", 0);
			p->ev_view = v;
			p->ev_view_len = vlen;
		}
	} else if (field_is(s, flen, "id")) {
		if (memchr(v, '\0', vlen) != NULL)
			return 0; /* the spec ignores such an id */
		if (in_arena)
			region_from_line(p, REG_ID, vlen);
		else
			region_set(p, REG_ID, v, vlen);
	}
	/* retry: a reconnection delay; we do not reconnect.  Others: ignored. */
	return 0;
}

static int fail(struct sse_parser *p)
{
	p->failed = true;
	return SSE_ETOOLONG;
}

static int line_append(struct sse_parser *p, const char *s, size_t n)
{
	if (!fits(p, n))
		return fail(p);
	arena_reserve(p, used_bytes(p) + n);
	memcpy(p->a + used_bytes(p), s, n);
	p->line_len += n;
	return 0;
}

/* The partial line is complete: parse it where it is, then drop it. */
static int process_arena_line(struct sse_parser *p, sse_event_fn cb, void *arg)
{
	size_t off = p->id_len + p->ev_len + p->data_len;
	int rc = process_line(p, p->a + off, p->line_len, true, cb, arg);
	p->line_len = 0;
	arena_maybe_shrink(p);
	return rc;
}

/* Scan buf for lines; *used = bytes consumed (n unless stopped or failed). */
static int feed_lines(struct sse_parser *p, const char *buf, size_t n, sse_event_fn cb, void *arg,
                      size_t *used)
{
	size_t i = 0;
	int rc = 0;
	if (p->pending_cr && n > 0) {
		p->pending_cr = false;
		if (buf[0] == '\n')
			i = 1;
	}
	/* Line ends are found with memchr (a byte loop was a tenth of a
	 * stream's CPU); the next CR is looked up once and reused until the
	 * scan passes it, since most streams have none. */
	const char *cr = NULL;
	bool cr_known = false;
	while (i < n) {
		if (!cr_known || (cr && cr < buf + i)) {
			cr = memchr(buf + i, '\r', n - i);
			cr_known = true;
		}
		const char *end = memchr(buf + i, '\n', n - i);
		if (cr && (!end || cr < end))
			end = cr;
		size_t j = end ? (size_t)(end - buf) : n;
		if (j == n) {
			materialise(p);
			rc = line_append(p, buf + i, n - i);
			if (rc == 0)
				i = n;
			break;
		}
		size_t next = j + 1;
		if (buf[j] == '\r') {
			if (next < n && buf[next] == '\n')
				next++;
			else if (next == n)
				p->pending_cr = true;
		}
		if (p->line_len > 0) {
			rc = line_append(p, buf + i, j - i);
			if (rc == 0)
				rc = process_arena_line(p, cb, arg);
		} else if (!fits(p, j - i)) {
			rc = fail(p);
		} else {
			rc = process_line(p, buf + i, j - i, false, cb, arg);
		}
		if (rc == SSE_ETOOLONG)
			break;
		i = next;
		if (rc != 0)
			break;
	}
	if (rc != SSE_ETOOLONG)
		materialise(p);
	*used = i;
	return rc;
}

struct sse_parser *sse_new(size_t max_event_bytes)
{
	struct sse_parser *p = xcalloc(1, sizeof(*p));
	p->max = max_event_bytes > 0 ? max_event_bytes : 1;
	p->cap = p->max < INITIAL_CAP ? p->max : INITIAL_CAP;
	p->a = xmalloc(p->cap);
	return p;
}

void sse_free(struct sse_parser *p)
{
	if (!p)
		return;
	free(p->a);
	free(p);
}

int sse_feed(struct sse_parser *p, const char *buf, size_t n, sse_event_fn cb, void *arg)
{
	size_t i = 0;
	size_t took = 0;
	int rc = 0;
	if (p->failed) {
		rc = SSE_ETOOLONG;
		goto out;
	}
	/* A BOM may itself arrive split; the bytes of a near miss are line bytes. */
	while (!p->bom_done && i < n) {
		if ((unsigned char)buf[i] == BOM[p->bom_have]) {
			i++;
			if (++p->bom_have == sizeof(BOM)) {
				p->bom_done = true;
				p->bom_have = 0;
			}
			continue;
		}
		p->bom_done = true;
		rc = line_append(p, (const char *)BOM, p->bom_have);
		p->bom_have = 0;
		if (rc != 0)
			goto out;
	}
	if (i < n) {
		rc = feed_lines(p, buf + i, n - i, cb, arg, &took);
		i += took;
	}
out:
	p->consumed = i;
	return rc;
}

size_t sse_consumed(const struct sse_parser *p)
{
	return p->consumed;
}

static void reset_stream(struct sse_parser *p)
{
	reset_event(p);
	p->id_len = 0;
	p->line_len = 0;
	p->bom_have = 0;
	p->bom_done = false;
	p->pending_cr = false;
	p->failed = false;
	p->a = xrealloc(p->a, p->max < INITIAL_CAP ? p->max : INITIAL_CAP);
	p->cap = p->max < INITIAL_CAP ? p->max : INITIAL_CAP;
}

int sse_finish(struct sse_parser *p, sse_event_fn cb, void *arg)
{
	int rc = 0;
	bool truncated = false;
	if (p->failed) {
		rc = SSE_ETOOLONG;
		goto out;
	}
	if (!p->bom_done && p->bom_have > 0) {
		rc = line_append(p, (const char *)BOM, p->bom_have);
		if (rc != 0)
			goto out;
	}
	if (p->line_len > 0) {
		truncated = true;
		rc = process_arena_line(p, cb, arg);
		if (rc != 0)
			goto out;
	}
	rc = dispatch(p, cb, arg);
	if (rc == 0 && truncated)
		rc = SSE_ETRUNCATED;
out:
	reset_stream(p);
	return rc;
}

size_t sse_buffered(const struct sse_parser *p)
{
	return p->cap;
}

uint64_t sse_comments(const struct sse_parser *p)
{
	return p->comments;
}
