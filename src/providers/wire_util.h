/*
 * wire_util.h — helpers the format files share (format.c).  Internal to
 * src/providers/.
 */
#ifndef FUSION_PROVIDERS_WIRE_UTIL_H
#define FUSION_PROVIDERS_WIRE_UTIL_H

#include <stdarg.h>

#include "providers/format.h"

/* Fill err (may be NULL) with status and a printf-style message. */
void wire_err_set(struct wire_err *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Append one SSE event: "event: NAME\n" when event is non-NULL, then
 * "data: <compact JSON>\n\n". */
void wire_sse_json(struct evbuffer *out, const char *event, const json_t *data);

/* prefix + 24 random alphanumerics, NUL-terminated, truncated to size. */
void wire_random_id(char *buf, size_t size, const char *prefix);

/* obj[key] if it is a string, else NULL. */
const char *wire_str(const json_t *obj, const char *key);
/* obj[key] = val (stolen) when val is a non-empty array or object; else val is freed. */
void wire_set_nonempty(json_t *obj, const char *key, json_t *val);
/* obj[key] if it is a non-negative number, else -1. */
int64_t wire_int(const json_t *obj, const char *key);

/* base without trailing '/' followed by suffix (malloc'd). */
char *wire_join_url(const char *base, const char *suffix);
/* "name: value" (malloc'd). */
char *wire_header(const char *name, const char *value);

/* Emit a plain event of type with index and text/len, unknown usage. */
int wire_emit(cev_fn fn, void *arg, enum cev_type type, int index, const char *text, size_t len);

#endif
