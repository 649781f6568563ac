/*
 * test_mask.c — unit tests for src/auth/mask.c: the documented examples,
 * length thresholds, prefix rules, UTF-8 tails and small buffers.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "auth/mask.h"

#define ELL "\xe2\x80\xa6"

static void masks(const char *secret, const char *want)
{
	char out[MASK_BUF];

	memset(out, 'Z', sizeof(out));
	mask_secret(secret, out, sizeof(out));
	cr_assert_str_eq(out, want, "mask(%s) = %s, want %s", secret ? secret : "(null)", out, want);
}

Test(mask, examples)
{
	masks("sk-abcdef1234567890wxyz", "sk-" ELL "wxyz");
	masks("sk-ant-api03-xxxxxxxxxxxxabcd", "sk-ant-" ELL "abcd");
	masks("AIzaSyA1234567890abcdEFGH", ELL "EFGH");
}

Test(mask, other_vendor_prefixes)
{
	masks("sk-proj-abcdefghijklmnopqrstuvwxyz", "sk-proj-" ELL "wxyz");
	masks("gsk_abcdefghijklmnopqrstuv", "gsk_" ELL "stuv");
	masks("fk-ABCdefGHIjklMNOpqrSTUvwxYZ0123456789-_abcd", "fk-" ELL "abcd");
	masks("r8_abcdefghijklmnopqrst", "r8_" ELL "qrst");
	masks("sk-or-v1-abcdefghijklmnop", "sk-or-" ELL "mnop");
}

Test(mask, no_prefix_when_not_a_vendor_tag)
{
	/* Separator past the first 8 bytes. */
	masks("abcdefghij-klmnopqrstuvwxyz", ELL "wxyz");
	/* Upper case, leading digit, leading separator. */
	masks("AB-cdefghijklmnopqrstuvwxyz", ELL "wxyz");
	masks("1a-cdefghijklmnopqrstuvwxyz", ELL "wxyz");
	masks("-abcdefghijklmnopqrstuvwxyz", ELL "wxyz");
	/* A hex-ish second segment does not extend the prefix. */
	masks("fk-a1b2-cdefghijklmnopqrstuv", "fk-" ELL "stuv");
}

Test(mask, length_thresholds)
{
	masks("", ELL);
	masks(NULL, ELL);
	masks("a", ELL);
	masks("abcde", ELL);            /* 5 */
	masks("abcdef", ELL "ef");      /* 6 */
	masks("abcdefghijk", ELL "jk"); /* 11 */
	masks("sk-defghijk", ELL "jk"); /* 11: no prefix below 12 */
	masks("abcdefghijkl", ELL "ijkl");
	/* 12 with a prefix: "sk-" + 4 would show 7 of 12, so the prefix goes. */
	masks("sk-defghijkl", ELL "ijkl");
	/* 14: "sk-" + 4 = 7 = half: kept. */
	masks("sk-defghijklmn", "sk-" ELL "klmn");
}

Test(mask, never_more_than_four_trailing_bytes)
{
	char secret[200], out[MASK_BUF];

	for (size_t n = 0; n < sizeof(secret) - 1; n++) {
		memset(secret, 'q', n);
		secret[n] = '\0';
		mask_secret(secret, out, sizeof(out));
		const char *e = strstr(out, ELL);
		cr_assert_not_null(e, "no ellipsis for length %zu", n);
		cr_assert_leq(strlen(e + 3), 4, "length %zu shows %s", n, e + 3);
		cr_assert_eq(e, out, "no prefix expected for length %zu", n);
	}
}

Test(mask, utf8_tail_not_split)
{
	/* "…" + last 4 bytes: 'l' + € (E2 82 AC) is whole. */
	masks("abcdefghijkl\xe2\x82\xac", ELL "l\xe2\x82\xac");
	/* Last 4 bytes start inside é (C3 A9): show only €. */
	masks("abcdefghijk\xc3\xa9\xe2\x82\xac", ELL "\xe2\x82\xac");
	/* 4-byte emoji as the whole tail. */
	masks("abcdefghijkl\xf0\x9f\x94\x91", ELL "\xf0\x9f\x94\x91");
	/* Short secret, tail of 2 bytes inside € : nothing is shown after the ellipsis. */
	masks("abcd\xe2\x82\xac", ELL);
	/* Short secret, tail é is whole. */
	masks("abcde\xc3\xa9", ELL "\xc3\xa9");
}

Test(mask, small_buffers_are_not_cut_mid_character)
{
	char out[8];

	memset(out, 'Z', sizeof(out));
	mask_secret("sk-abcdef1234567890wxyz", out, sizeof(out)); /* needs 11 bytes */
	cr_assert_str_eq(out, ELL);
	mask_secret("sk-abcdef1234567890wxyz", out, 4);
	cr_assert_str_eq(out, ELL);
	mask_secret("sk-abcdef1234567890wxyz", out, 3);
	cr_assert_str_eq(out, "");
	out[0] = 'Z';
	mask_secret("sk-abcdef1234567890wxyz", out, 0);
	cr_assert_eq(out[0], 'Z', "outlen 0 must not write");
	mask_secret("abcdefghijkl", out, sizeof(out)); /* "…ijkl" = 7 bytes + NUL */
	cr_assert_str_eq(out, ELL "ijkl");
}
