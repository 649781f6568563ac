/* Unit tests for the pure parsers behind conn_guard.c. */
#include <criterion/criterion.h>
#include <string.h>

#include "http/conn_guard.h"

#define S(x) x, sizeof(x) - 1

Test(head_end, finds_the_blank_line)
{
	cr_assert_eq(http_head_end(S("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), 27);
	cr_assert_eq(http_head_end(S("GET / HTTP/1.1\nHost: x\n\nbody")), 24);
	cr_assert_eq(http_head_end(S("GET / HTTP/1.1\r\nHost: x\r\n")), 0);
	cr_assert_eq(http_head_end(S("GET / HTT")), 0);
	/* Leading blank lines (between keep-alive requests) are not an end. */
	cr_assert_eq(http_head_end(S("\r\n\r\nGET / HTTP/1.1\r\n\r\n")), 22);
	cr_assert_eq(http_head_end(S("\r\n\r\n")), 0);
}

static int framing(const char *head, struct head_framing *f)
{
	return http_head_framing(head, strlen(head), f);
}

Test(head_framing, content_length_and_chunked)
{
	struct head_framing f;
	cr_assert_eq(framing("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 42\r\n\r\n", &f), FRAMING_OK);
	cr_assert(f.has_length && f.length == 42 && !f.chunked);
	cr_assert_eq(framing("POST / HTTP/1.1\r\ncontent-length:   7  \r\n\r\n", &f), FRAMING_OK);
	cr_assert_eq(f.length, 7);
	cr_assert_eq(framing("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", &f), FRAMING_OK);
	cr_assert_eq(f.length, 5);
	cr_assert_eq(framing("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &f), FRAMING_OK);
	cr_assert(f.chunked && !f.has_length);
	cr_assert_eq(framing("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &f), FRAMING_OK);
	cr_assert(!f.chunked && !f.has_length);
	cr_assert_eq(framing("POST / HTTP/1.1\r\nContent-Length: 104857600\r\n\r\n", &f), FRAMING_OK);
	cr_assert_eq(f.length, 104857600u);
}

Test(head_framing, ambiguity_is_refused)
{
	struct head_framing f;
	cr_assert_eq(framing("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", &f),
	             FRAMING_BAD);
	cr_assert_eq(framing("POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", &f), FRAMING_BAD);
	cr_assert_eq(
	    framing("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", &f),
	    FRAMING_BAD);
	cr_assert_eq(framing("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", &f), FRAMING_BAD);
	cr_assert_eq(framing("POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", &f), FRAMING_BAD);
	cr_assert_eq(framing("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", &f),
	             FRAMING_BAD);
	cr_assert_eq(framing("POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\n", &f), FRAMING_BAD);
	cr_assert_eq(framing("POST / HTTP/1.1\r\nX: a\r\n  folded\r\n\r\n", &f), FRAMING_BAD);
	cr_assert_eq(framing("POST / HTTP/1.1\r\nno colon here\r\n\r\n", &f), FRAMING_BAD);
	cr_assert_eq(framing("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", &f),
	             FRAMING_BAD);
	cr_assert_eq(
	    framing("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	            &f),
	    FRAMING_BAD);
	cr_assert_eq(framing("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &f),
	             FRAMING_UNSUPPORTED);
	cr_assert_eq(framing("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", &f),
	             FRAMING_UNSUPPORTED);
}

static int line(const char *head)
{
	return http_request_line_check(head, strlen(head));
}

Test(request_line, checks)
{
	cr_assert_eq(line("GET / HTTP/1.1\r\n\r\n"), 0);
	cr_assert_eq(line("POST /v1/chat/completions HTTP/1.0\r\n\r\n"), 0);
	cr_assert_eq(line("GET http://example.com/x HTTP/1.1\r\n\r\n"), 0);
	cr_assert_eq(line("OPTIONS /x HTTP/1.1\r\n\r\n"), 0);
	cr_assert_eq(line("BREW /pot HTTP/1.1\r\n\r\n"), 501);
	cr_assert_eq(line("GET / HTTP/2.0\r\n\r\n"), 505);
	cr_assert_eq(line("GET / HTTP/1.2\r\n\r\n"), 505);
	cr_assert_eq(line("GET / FTP/1.1\r\n\r\n"), 400);
	cr_assert_eq(line("GET /\r\n\r\n"), 400);
	cr_assert_eq(line("GET  / HTTP/1.1\r\n\r\n"), 400);
	cr_assert_eq(line("GET x HTTP/1.1\r\n\r\n"), 400);
	cr_assert_eq(line("GET / HTTP/1.1 extra\r\n\r\n"), 400);
	cr_assert_eq(line("get / HTTP/1.1\r\n\r\n"), 400);
	cr_assert_eq(line("garbage\r\n\r\n"), 400);
}

Test(chunk_size, parses_hex_with_extensions)
{
	uint64_t v;
	cr_assert_eq(http_chunk_size(S("1a"), &v), 0);
	cr_assert_eq(v, 26);
	cr_assert_eq(http_chunk_size(S("FF;name=value"), &v), 0);
	cr_assert_eq(v, 255);
	cr_assert_eq(http_chunk_size(S("0"), &v), 0);
	cr_assert_eq(v, 0);
	cr_assert_eq(http_chunk_size(S("10 ;x"), &v), 0);
	cr_assert_eq(v, 16);
	cr_assert_eq(http_chunk_size(S(""), &v), -1);
	cr_assert_eq(http_chunk_size(S("xyz"), &v), -1);
	cr_assert_eq(http_chunk_size(S("10x"), &v), -1);
	cr_assert_eq(http_chunk_size(S("-1"), &v), -1);
	cr_assert_eq(http_chunk_size(S("1234567890abcdef0"), &v), -1);
}
