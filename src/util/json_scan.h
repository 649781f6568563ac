/*
 * json_scan.h — find a top-level member of a JSON object in its text
 * without building a document.  The proxy uses it on the hot path: to
 * read the usage object of a provider's answer and to rewrite "model" in
 * a request it passes through, where a full parse and re-encode would
 * cost more than everything else it does.
 *
 * The scanner walks only the top level: member names are compared as
 * written (a name spelled with escapes is not matched), values are
 * skipped by tracking strings and bracket depth.  It does not validate
 * the values it skips; callers either validated the document already
 * (requests are parsed once with jansson) or parse the span they get.
 */
#ifndef FUSION_UTIL_JSON_SCAN_H
#define FUSION_UTIL_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_span {
	size_t off; /* offset of the value's first byte */
	size_t len; /* length of the value's text */
};

/* Find member `key` of the top-level object in s[0..n).  Returns true
 * and fills *out with the span of its value (the last one if the name is
 * repeated, as jansson keeps the last); false when s is not an object,
 * has no such member, or is cut short. */
bool json_scan_member(const char *s, size_t n, const char *key, struct json_span *out);

/* Several members in one pass: found[k] and spans[k] for keys[k] (at most
 * 8 keys; the last of repeated names, as above).  Returns the offset of
 * the object's closing '}', or n when s is not a complete object (then
 * nothing is found); *members (may be NULL) as json_scan_object_end. */
size_t json_scan_members(const char *s, size_t n, const char *const *keys, size_t nkeys,
                         struct json_span *spans, bool *found, size_t *members);

/* Offset of the top-level object's closing '}' in s[0..n), or n when s is
 * not a complete object; *members (may be NULL) gets the number of
 * members as written, duplicates included — a caller compares it with a
 * parsed document's size to know that every name was spelled plainly and
 * once. */
size_t json_scan_object_end(const char *s, size_t n, size_t *members);

/*
 * Whether s[0..n) is certainly a JSON object that jansson would load
 * with JSON_REJECT_DUPLICATES, checked without building it: strict
 * grammar, well-formed UTF-8, valid escapes, no duplicate member name in
 * any object.  False means "not sure": invalid, or something this quick
 * check leaves to jansson (a name written with escapes, \u0000, very
 * long numbers, deep nesting, objects with many members).  Callers then
 * parse with jansson, which gives the verdict and the error position.
 */
bool json_scan_check_object(const char *s, size_t n);

/* The integer value of member `key` of the top-level object in s[0..n):
 * true when it is written as an integer, or as a real from 0 up to 9e15
 * (cut to an integer), the way the proxy reads token counts; false for
 * anything else, the member missing included. */
bool json_scan_int(const char *s, size_t n, const char *key, int64_t *out);
/* The same for a value's own text v[0..len) (a span json_scan_members gave). */
bool json_scan_count(const char *v, size_t len, int64_t *out);

#endif
