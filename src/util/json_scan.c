/*
 * json_scan.c — see json_scan.h.  A small state machine over bytes: skip
 * whitespace, read a member name, skip ':' and one value, then ',' or
 * '}'.  Values are skipped by depth counting outside strings, so the
 * cost is one pass over the bytes with no allocation.
 */
#include "util/json_scan.h"

#include "util/utf8.h"

#include <stdlib.h>
#include <string.h>

static size_t skip_ws(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* s[i] is '"': the offset just past the closing quote, or n.  The quotes
 * are found with memchr; one is the end unless an odd run of backslashes
 * stands right before it (the run cannot reach back past the opening
 * quote, which is not a backslash). */
static size_t skip_string(const char *s, size_t n, size_t i)
{
	size_t from = i + 1;
	while (from < n) {
		const char *q = memchr(s + from, '"', n - from);
		if (!q)
			return n;
		size_t at = (size_t)(q - s), k = 0;
		while (at - k > i + 1 && s[at - k - 1] == '\\')
			k++;
		if (k % 2 == 0)
			return at + 1;
		from = at + 1;
	}
	return n;
}

/* The offset just past the value starting at s[i], or n if cut short. */
static size_t skip_value(const char *s, size_t n, size_t i)
{
	if (i >= n)
		return n;
	if (s[i] == '"')
		return skip_string(s, n, i);
	if (s[i] == '{' || s[i] == '[') {
		size_t depth = 0;
		while (i < n) {
			char c = s[i];
			if (c == '"') {
				i = skip_string(s, n, i);
				continue;
			}
			if (c == '{' || c == '[')
				depth++;
			else if (c == '}' || c == ']') {
				if (--depth == 0)
					return i + 1;
			}
			i++;
		}
		return n;
	}
	/* number, true, false, null */
	while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t' &&
	       s[i] != '\n' && s[i] != '\r')
		i++;
	return i;
}

/* Walk the top-level members, noting the value span of each of keys[0..nkeys)
 * (the last one when a name repeats).  Returns the offset of the closing
 * '}', or n. */
static size_t walk(const char *s, size_t n, const char *const *keys, const size_t *klens, size_t nkeys,
                   struct json_span *spans, bool *found, size_t *members)
{
	*members = 0;
	for (size_t k = 0; k < nkeys; k++)
		found[k] = false;
	size_t i = skip_ws(s, n, 0);
	if (i >= n || s[i] != '{')
		return n;
	i = skip_ws(s, n, i + 1);
	if (i < n && s[i] == '}')
		return i;
	while (i < n) {
		if (s[i] != '"')
			return n;
		size_t name = i + 1;
		size_t after = skip_string(s, n, i);
		if (after >= n)
			return n;
		size_t name_len = after - 1 - name;
		i = skip_ws(s, n, after);
		if (i >= n || s[i] != ':')
			return n;
		i = skip_ws(s, n, i + 1);
		size_t v = i;
		i = skip_value(s, n, i);
		if (i >= n)
			return n;
		(*members)++;
		for (size_t k = 0; k < nkeys; k++) {
			if (name_len == klens[k] && memcmp(s + name, keys[k], name_len) == 0) {
				spans[k].off = v;
				spans[k].len = i - v;
				found[k] = true;
			}
		}
		i = skip_ws(s, n, i);
		if (i < n && s[i] == '}')
			return i;
		if (i >= n || s[i] != ',')
			return n;
		i = skip_ws(s, n, i + 1);
	}
	return n;
}

#define SCAN_KEYS_MAX 8

size_t json_scan_members(const char *s, size_t n, const char *const *keys, size_t nkeys,
                         struct json_span *spans, bool *found, size_t *members)
{
	size_t klens[SCAN_KEYS_MAX] = { 0 }, m;
	if (nkeys > SCAN_KEYS_MAX)
		nkeys = SCAN_KEYS_MAX;
	for (size_t k = 0; k < nkeys; k++)
		klens[k] = strlen(keys[k]);
	size_t end = walk(s, n, keys, klens, nkeys, spans, found, &m);
	if (members)
		*members = m;
	if (end >= n) {
		for (size_t k = 0; k < nkeys; k++)
			found[k] = false;
	}
	return end;
}

bool json_scan_member(const char *s, size_t n, const char *key, struct json_span *out)
{
	bool hit;
	json_scan_members(s, n, &key, 1, out, &hit, NULL);
	return hit;
}

size_t json_scan_object_end(const char *s, size_t n, size_t *members)
{
	return json_scan_members(s, n, NULL, 0, NULL, NULL, members);
}

bool json_scan_int(const char *s, size_t n, const char *key, int64_t *out)
{
	struct json_span sp;
	return json_scan_member(s, n, key, &sp) && json_scan_count(s + sp.off, sp.len, out);
}

bool json_scan_count(const char *v, size_t len, int64_t *out)
{
	if (len == 0 || len > 32)
		return false;
	size_t i = v[0] == '-' ? 1 : 0;
	if (i == len || v[i] < '0' || v[i] > '9')
		return false;
	size_t digits = 0;
	while (i + digits < len && v[i + digits] >= '0' && v[i + digits] <= '9')
		digits++;
	if (i + digits == len) { /* an integer */
		if (digits > 18)
			return false;
		int64_t x = 0;
		for (size_t k = 0; k < digits; k++)
			x = x * 10 + (v[i + k] - '0');
		*out = v[0] == '-' ? -x : x;
		return true;
	}
	char buf[40]; /* a real: fraction and/or exponent */
	memcpy(buf, v, len);
	buf[len] = '\0';
	char *end;
	double d = strtod(buf, &end);
	if (*end || !(d >= 0 && d < 9e15))
		return false;
	*out = (int64_t)d;
	return true;
}

/* ---- json_scan_check_object --------------------------------------- */

#define CHECK_DEPTH_MAX 64  /* deeper documents are left to jansson */
#define CHECK_NAMES_MAX 256 /* member names held for the duplicate check */
#define CHECK_NUMBER_MAX 24 /* longer numbers may overflow: left to jansson */

struct check {
	const unsigned char *s;
	size_t n, i;
	int depth;
	size_t nnames;
	struct {
		const unsigned char *p;
		size_t len;
	} names[CHECK_NAMES_MAX];
};

static void check_ws(struct check *c)
{
	while (c->i < c->n &&
	       (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' || c->s[c->i] == '\r'))
		c->i++;
}

static int hex4(const unsigned char *h)
{
	int v = 0;
	for (int k = 0; k < 4; k++) {
		int d = h[k] >= '0' && h[k] <= '9'   ? h[k] - '0'
		        : h[k] >= 'a' && h[k] <= 'f' ? h[k] - 'a' + 10
		        : h[k] >= 'A' && h[k] <= 'F' ? h[k] - 'A' + 10
		                                     : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* c->s[c->i] is '"'.  *escaped says whether the string used escapes. */
static bool check_string(struct check *c, bool *escaped)
{
	const unsigned char *s = c->s;
	size_t i = c->i + 1, n = c->n;
	*escaped = false;
	while (i < n) {
		unsigned char ch = s[i];
		if (ch == '"') {
			c->i = i + 1;
			return true;
		}
		if (ch < 0x20)
			return false;
		if (ch < 0x80 && ch != '\\') {
			i++;
			continue;
		}
		if (ch >= 0x80) {
			size_t k = utf8_seq_len(s + i, n - i);
			if (!k)
				return false;
			i += k;
			continue;
		}
		*escaped = true; /* a backslash */
		if (i + 1 >= n)
			return false;
		ch = s[i + 1];
		if (ch == '"' || ch == '\\' || ch == '/' || ch == 'b' || ch == 'f' || ch == 'n' ||
		    ch == 'r' || ch == 't') {
			i += 2;
			continue;
		}
		if (ch != 'u' || i + 6 > n)
			return false;
		int u = hex4(s + i + 2);
		if (u <= 0) /* bad hex, or \u0000 (jansson refuses it by default) */
			return false;
		i += 6;
		if (u >= 0xDC00 && u <= 0xDFFF)
			return false;             /* a lone low surrogate */
		if (u >= 0xD800 && u <= 0xDBFF) { /* must pair with a low one */
			if (i + 6 > n || s[i] != '\\' || s[i + 1] != 'u')
				return false;
			int lo = hex4(s + i + 2);
			if (lo < 0xDC00 || lo > 0xDFFF)
				return false;
			i += 6;
		}
	}
	return false;
}

static bool check_number(struct check *c)
{
	const unsigned char *s = c->s;
	size_t i = c->i, n = c->n, start = c->i;
	if (i < n && s[i] == '-')
		i++;
	if (i >= n || s[i] < '0' || s[i] > '9')
		return false;
	if (s[i] == '0')
		i++;
	else
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	if (i - start > 18 && !(i < n && s[i] == '.'))
		return false; /* an integer jansson may find too big */
	if (i < n && s[i] == '.') {
		i++;
		if (i >= n || s[i] < '0' || s[i] > '9')
			return false;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E'))
		return false; /* an exponent may overflow: jansson decides */
	if (i - start > CHECK_NUMBER_MAX)
		return false;
	c->i = i;
	return true;
}

static bool check_literal(struct check *c, const char *word, size_t len)
{
	if (c->n - c->i < len || memcmp(c->s + c->i, word, len) != 0)
		return false;
	c->i += len;
	return true;
}

static bool check_value(struct check *c);

static bool check_object(struct check *c)
{
	size_t base = c->nnames;
	c->i++; /* '{' */
	check_ws(c);
	if (c->i < c->n && c->s[c->i] == '}') {
		c->i++;
		return true;
	}
	for (;;) {
		if (c->i >= c->n || c->s[c->i] != '"')
			return false;
		const unsigned char *name = c->s + c->i + 1;
		bool escaped;
		if (!check_string(c, &escaped) || escaped)
			return false; /* an escaped name may equal another: jansson decides */
		size_t len = (size_t)(c->s + c->i - 1 - name);
		for (size_t k = base; k < c->nnames; k++) {
			if (c->names[k].len == len && memcmp(c->names[k].p, name, len) == 0)
				return false; /* a duplicate: jansson words the refusal */
		}
		if (c->nnames == CHECK_NAMES_MAX)
			return false;
		c->names[c->nnames].p = name;
		c->names[c->nnames].len = len;
		c->nnames++;
		check_ws(c);
		if (c->i >= c->n || c->s[c->i] != ':')
			return false;
		c->i++;
		check_ws(c);
		if (!check_value(c))
			return false;
		check_ws(c);
		if (c->i < c->n && c->s[c->i] == ',') {
			c->i++;
			check_ws(c);
			continue;
		}
		if (c->i < c->n && c->s[c->i] == '}') {
			c->i++;
			c->nnames = base;
			return true;
		}
		return false;
	}
}

static bool check_array(struct check *c)
{
	c->i++; /* '[' */
	check_ws(c);
	if (c->i < c->n && c->s[c->i] == ']') {
		c->i++;
		return true;
	}
	for (;;) {
		if (!check_value(c))
			return false;
		check_ws(c);
		if (c->i < c->n && c->s[c->i] == ',') {
			c->i++;
			check_ws(c);
			continue;
		}
		if (c->i < c->n && c->s[c->i] == ']') {
			c->i++;
			return true;
		}
		return false;
	}
}

static bool check_value(struct check *c)
{
	if (c->i >= c->n)
		return false;
	bool escaped, ok;
	switch (c->s[c->i]) {
	case '{':
	case '[':
		if (++c->depth > CHECK_DEPTH_MAX)
			return false;
		ok = c->s[c->i] == '{' ? check_object(c) : check_array(c);
		c->depth--;
		return ok;
	case '"':
		return check_string(c, &escaped);
	case 't':
		return check_literal(c, "true", 4);
	case 'f':
		return check_literal(c, "false", 5);
	case 'n':
		return check_literal(c, "null", 4);
	default:
		return check_number(c);
	}
}

bool json_scan_check_object(const char *s, size_t n)
{
	struct check c = { .s = (const unsigned char *)s, .n = n };
	check_ws(&c);
	if (c.i >= n || s[c.i] != '{')
		return false;
	if (!check_value(&c))
		return false;
	check_ws(&c);
	return c.i == n;
}
