/*
 * sse.h — a streaming, bounded parser for Server-Sent Events (the
 * text/event-stream bodies OpenAI, Anthropic and Gemini stream back).
 *
 * What it is for: the proxy feeds the upstream body to sse_feed() as it
 * arrives, in chunks split at any byte, and gets whole events back one
 * by one through a callback, without ever buffering the whole stream.
 * Parsing follows the WHATWG HTML "server-sent events" rules: lines end
 * with CRLF, LF or a lone CR (also when CR and LF arrive in different
 * chunks); one leading UTF-8 BOM is skipped; lines starting with ':' are
 * comments; "field:value" loses one space after the colon; a line
 * without a colon is a field with an empty value; data/event/id are
 * used, retry and unknown fields are ignored; an id containing NUL is
 * ignored; a blank line dispatches the pending event when it has at
 * least one data line (and resets the event type either way).  Bytes
 * are passed through as they came (no UTF-8 validation or decoding), and
 * nothing is ever split inside a line, so multi-byte characters split
 * across chunks come out whole.
 *
 * One deliberate difference from the spec: at end of stream the spec
 * discards an event that lacks its final blank line, but providers do end
 * streams that way, so sse_finish() dispatches it (see there).
 *
 * Bound: everything the parser holds — the current partial line, the
 * pending event's data (lines joined with '\n'), its event type and the
 * last event id — together never exceeds max_event_bytes, set at
 * sse_new().  Input that would need more fails with SSE_ETOOLONG, and
 * the parser stays failed: the stream must end with an error.  Whether
 * that happens depends only on the bytes, never on how they were split.
 * Memory is one buffer whose capacity never exceeds max_event_bytes.
 *
 * Fast path: a line that arrives whole inside one chunk is parsed in
 * place; an event whose type and single data line are in the chunk is
 * handed to the callback pointing into the caller's buffer, with no
 * copy.  Only lines cut by a chunk boundary, multi-line data and ids are
 * copied into the parser's buffer.
 */
#ifndef FUSION_GATEWAY_SSE_H
#define FUSION_GATEWAY_SSE_H

#include <stddef.h>
#include <stdint.h>

struct sse_parser;

/*
 * One dispatched event.  The strings are NOT NUL-terminated and are
 * never NULL; they are valid only during the callback (they point into
 * the parser or into the buffer being fed).
 */
struct sse_event {
	const char *event; /* "" when there was no event: field (type "message") */
	size_t event_len;
	const char *data; /* data lines joined with '\n', no trailing newline */
	size_t data_len;
	const char *id; /* the last id: seen in the stream so far, may be "" */
	size_t id_len;
};

/*
 * Called once per event, in stream order.  Return 0 to go on, or a
 * value > 0 to stop: sse_feed/sse_finish then return that value at once.
 * (Keep it positive so it never looks like an SSE_E* code.)  The
 * callback must not call sse_feed, sse_finish or sse_free on the same
 * parser.
 */
typedef int (*sse_event_fn)(const struct sse_event *ev, void *arg);

enum {
	SSE_OK = 0,
	SSE_ETOOLONG = -1,   /* a line or an event would exceed max_event_bytes */
	SSE_ETRUNCATED = -2, /* sse_finish: the body ended inside a line */
};

/* A parser holding at most max_event_bytes (> 0; e.g. 4 MiB).  Owned by the caller: sse_free(). */
struct sse_parser *sse_new(size_t max_event_bytes);
/* NULL is a no-op. */
void sse_free(struct sse_parser *p);

/*
 * Feed the next n bytes of the body (buf may be NULL when n is 0).
 * Calls cb for each event completed by these bytes.
 *
 * Returns 0 when all n bytes were consumed; SSE_ETOOLONG when the bound
 * was crossed (no further events come from this parser: every later
 * sse_feed returns SSE_ETOOLONG); or the callback's value when it asked
 * to stop.  After a stop the parser has consumed exactly the bytes up to
 * and including the blank line that dispatched that event, and is in
 * the same state as if only those had been fed: sse_consumed() says how
 * many.  The rest is neither parsed nor kept (the bound would not hold
 * if the parser copied unconsumed input): feed buf + sse_consumed(p)
 * again to resume, or drop it.  The parser keeps no pointer into buf
 * after returning.
 */
int sse_feed(struct sse_parser *p, const char *buf, size_t n, sse_event_fn cb, void *arg)
    __attribute__((warn_unused_result));

/* How many bytes the last sse_feed call consumed (its n, unless it stopped or failed). */
size_t sse_consumed(const struct sse_parser *p);

/*
 * End of body.  A partial last line (no line end) is parsed as if it had
 * one, then a pending event with data is dispatched even without its
 * blank line.  Returns 0 when the body ended on a line end; SSE_ETRUNCATED
 * when it ended inside a line (that line was still used — the upstream
 * may have cut the stream, or just left out the final newline); the
 * callback's value when it stopped; SSE_ETOOLONG when the parser had
 * failed (no callback then).  Afterwards the parser is back in its
 * initial state (id, BOM check and all; only the comment count is kept),
 * ready for another stream.
 */
int sse_finish(struct sse_parser *p, sse_event_fn cb, void *arg);

/* Bytes allocated for buffering now (for memory accounting); never above max_event_bytes. */
size_t sse_buffered(const struct sse_parser *p);

/* Comment lines (": keep-alive", ": ping", ...) seen so far. */
uint64_t sse_comments(const struct sse_parser *p);

#endif
