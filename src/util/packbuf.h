/*
 * packbuf.h — bytes kept for later, in LZ4-compressed blocks.
 *
 * The proxy keeps what a stream sent its client for the request log, up
 * to the log_body_max_bytes setting, until the stream ends.  Thousands of
 * streams open at once would hold all of that in memory; SSE events
 * repeat most of their bytes (id, object, model, ...) from one event to
 * the next, so each full block compresses several times over.  Appending
 * fills an open block of PACKBUF_BLOCK bytes; a full block is compressed
 * (kept as it is when that does not pay) and a new one opened.
 * packbuf_join gives the bytes back, whole and in order.
 *
 * Not thread-safe; one owner at a time (the proxy, then the log writer).
 */
#ifndef FUSION_UTIL_PACKBUF_H
#define FUSION_UTIL_PACKBUF_H

#include <stdbool.h>
#include <stddef.h>

#define PACKBUF_BLOCK 2048

struct packbuf;

/* A new, empty buffer.  Never NULL (aborts on out-of-memory). */
struct packbuf *packbuf_new(void);
void packbuf_free(struct packbuf *pb);

void packbuf_append(struct packbuf *pb, const void *data, size_t n);

/* Bytes appended so far. */
size_t packbuf_length(const struct packbuf *pb);
/* Bytes of memory held for them (blocks as stored, the open block's room). */
size_t packbuf_memory(const struct packbuf *pb);

/* The bytes appended, as one malloc'd NUL-terminated string (*len bytes
 * before the NUL; may be NULL).  NULL if a stored block fails to
 * decompress, which would be a bug. */
char *packbuf_join(const struct packbuf *pb, size_t *len);

#endif
