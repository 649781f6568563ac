/*
 * json_scan.c — see json_scan.h.  A small state machine over bytes: skip
 * whitespace, read a member name, skip ':' and one value, then ',' or
 * '}'.  Values are skipped by depth counting outside strings, so the
 * cost is one pass over the bytes with no allocation.
 */
#include "util/json_scan.h"

#include <string.h>

static size_t skip_ws(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* s[i] is '"': the offset just past the closing quote, or n. */
static size_t skip_string(const char *s, size_t n, size_t i)
{
	for (i++; i < n; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
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

/* Walk the top-level members; for each, call back with the name span and
 * value span.  Returns the offset of the closing '}', or n. */
static size_t walk(const char *s, size_t n, const char *key, size_t klen, struct json_span *found, bool *hit,
                   size_t *members)
{
	*members = 0;
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
		if (key && name_len == klen && memcmp(s + name, key, klen) == 0) {
			found->off = v;
			found->len = i - v;
			*hit = true;
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

bool json_scan_member(const char *s, size_t n, const char *key, struct json_span *out)
{
	bool hit = false;
	struct json_span sp = { 0, 0 };
	size_t members;
	if (walk(s, n, key, strlen(key), &sp, &hit, &members) >= n)
		return false;
	if (hit)
		*out = sp;
	return hit;
}

size_t json_scan_object_end(const char *s, size_t n, size_t *members)
{
	bool hit = false;
	struct json_span sp;
	size_t m;
	size_t end = walk(s, n, NULL, 0, &sp, &hit, &m);
	if (members)
		*members = m;
	return end;
}
