/*
 * packbuf.c — see packbuf.h.  Sealed blocks form a singly linked list
 * (oldest first); the open block grows by doubling up to PACKBUF_BLOCK,
 * so a short body costs little more than its size.
 */
#include "util/packbuf.h"

#include <lz4.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

struct block {
	struct block *next;
	uint32_t plain_len;  /* bytes it gives back */
	uint32_t stored_len; /* bytes in data */
	bool packed;         /* data is LZ4; else the bytes themselves */
	unsigned char data[];
};

struct packbuf {
	struct block *head, *tail; /* sealed blocks */
	unsigned char *open;       /* the block being filled (plain) */
	size_t open_len, open_size;
	size_t length; /* every byte appended */
	size_t memory; /* sealed blocks' stored bytes and headers */
};

struct packbuf *packbuf_new(void)
{
	return xcalloc(1, sizeof(struct packbuf));
}

void packbuf_free(struct packbuf *pb)
{
	if (!pb)
		return;
	for (struct block *b = pb->head, *next; b; b = next) {
		next = b->next;
		free(b);
	}
	free(pb->open);
	free(pb);
}

/* One compression state per thread, set up once: LZ4_compress_default
 * zeroes a fresh 16 KiB state for every block, more work than compressing
 * the 2 KiB.  LZ4_resetStream_fast makes each block independent again
 * (no dictionary from the previous one), so blocks decompress alone. */
static int compress_block(const char *src, int n, char *dst, int cap)
{
	static _Thread_local LZ4_stream_t state;
	static _Thread_local bool ready;
	if (!ready) {
		LZ4_initStream(&state, sizeof(state));
		ready = true;
	}
	LZ4_resetStream_fast(&state);
	return LZ4_compress_fast_continue(&state, src, dst, n, cap, 1);
}

/* The open block is full: store it, compressed when that saves an eighth. */
static void seal(struct packbuf *pb)
{
	char packed[LZ4_COMPRESSBOUND(PACKBUF_BLOCK)];
	int n = compress_block((const char *)pb->open, (int)pb->open_len, packed, (int)sizeof(packed));
	bool keep_packed = n > 0 && (size_t)n < pb->open_len - pb->open_len / 8;
	size_t stored = keep_packed ? (size_t)n : pb->open_len;
	struct block *b = xmalloc(sizeof(*b) + stored);
	b->next = NULL;
	b->plain_len = (uint32_t)pb->open_len;
	b->stored_len = (uint32_t)stored;
	b->packed = keep_packed;
	memcpy(b->data, keep_packed ? (const void *)packed : (const void *)pb->open, stored);
	if (pb->tail)
		pb->tail->next = b;
	else
		pb->head = b;
	pb->tail = b;
	pb->memory += sizeof(*b) + stored;
	pb->open_len = 0; /* the open block's room is kept for the next */
}

void packbuf_append(struct packbuf *pb, const void *data, size_t n)
{
	const unsigned char *p = data;
	pb->length += n;
	while (n) {
		if (pb->open_len == pb->open_size) {
			size_t size = pb->open_size ? pb->open_size * 2 : 256;
			if (size > PACKBUF_BLOCK)
				size = PACKBUF_BLOCK;
			if (pb->open_size < size) {
				pb->open = xrealloc(pb->open, size);
				pb->open_size = size;
			}
		}
		size_t room = pb->open_size - pb->open_len;
		size_t k = n < room ? n : room;
		memcpy(pb->open + pb->open_len, p, k);
		pb->open_len += k;
		p += k;
		n -= k;
		if (pb->open_len == PACKBUF_BLOCK)
			seal(pb);
	}
}

size_t packbuf_length(const struct packbuf *pb)
{
	return pb->length;
}

size_t packbuf_memory(const struct packbuf *pb)
{
	return sizeof(*pb) + pb->memory + pb->open_size;
}

char *packbuf_join(const struct packbuf *pb, size_t *len)
{
	char *out = xmalloc(pb->length + 1);
	size_t off = 0;
	for (const struct block *b = pb->head; b; b = b->next) {
		if (b->packed) {
			int n = LZ4_decompress_safe((const char *)b->data, out + off, (int)b->stored_len,
			                            (int)b->plain_len);
			if (n != (int)b->plain_len) {
				free(out);
				return NULL;
			}
		} else {
			memcpy(out + off, b->data, b->plain_len);
		}
		off += b->plain_len;
	}
	if (pb->open_len)
		memcpy(out + off, pb->open, pb->open_len);
	off += pb->open_len;
	out[off] = '\0';
	if (len)
		*len = off;
	return out;
}
