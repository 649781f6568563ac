/*
 * format.c — the table of wire formats and the few helpers every format
 * file shares (see format.h and wire_util.h).  Nothing here knows any
 * format's fields.
 */
#include "providers/format.h"
#include "util/json_scan.h"

#include <event2/buffer.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "providers/wire_util.h"
#include "util/alloc.h"
#include "util/str.h"

const struct wire_format *const wire_formats[WIRE_COUNT] = {
	[WIRE_OPENAI] = &wire_openai,
	[WIRE_ANTHROPIC] = &wire_anthropic,
	[WIRE_GEMINI] = &wire_gemini,
};

void wire_usage_init(struct wire_usage *u)
{
	u->prompt = u->completion = u->total = u->cached = u->reasoning = -1;
}

void wire_canon_usage(const json_t *u, struct wire_usage *out)
{
	wire_usage_init(out);
	if (!json_is_object(u))
		return;
	out->prompt = wire_int(u, "prompt_tokens");
	out->completion = wire_int(u, "completion_tokens");
	out->total = wire_int(u, "total_tokens");
	out->cached = wire_int(json_object_get(u, "prompt_tokens_details"), "cached_tokens");
	out->reasoning = wire_int(json_object_get(u, "completion_tokens_details"), "reasoning_tokens");
	if (out->total < 0 && out->prompt >= 0 && out->completion >= 0)
		out->total = out->prompt + out->completion;
}

/* The count in the span, or in member `field` of the object there; -1
 * when it is not one. */
static int64_t span_int(const char *s, const struct json_span *sp, bool found, const char *field)
{
	int64_t v;
	if (!found)
		return -1;
	if (!field)
		return json_scan_count(s + sp->off, sp->len, &v) ? v : -1;
	if (s[sp->off] != '{')
		return -1;
	return json_scan_int(s + sp->off, sp->len, field, &v) ? v : -1;
}

bool wire_canon_usage_text(const char *s, size_t n, struct wire_usage *out)
{
	static const char *const keys[] = { "prompt_tokens", "completion_tokens", "total_tokens",
		                            "prompt_tokens_details", "completion_tokens_details" };
	struct json_span sp[5];
	bool has[5];
	wire_usage_init(out);
	if (n == 0 || s[0] != '{' || json_scan_members(s, n, keys, 5, sp, has, NULL) >= n)
		return false;
	out->prompt = span_int(s, &sp[0], has[0], NULL);
	out->completion = span_int(s, &sp[1], has[1], NULL);
	out->total = span_int(s, &sp[2], has[2], NULL);
	out->cached = span_int(s, &sp[3], has[3], "cached_tokens");
	out->reasoning = span_int(s, &sp[4], has[4], "reasoning_tokens");
	if (out->total < 0 && out->prompt >= 0 && out->completion >= 0)
		out->total = out->prompt + out->completion;
	return true;
}

void wire_usage_merge(struct wire_usage *dst, const struct wire_usage *src)
{
	if (src->prompt >= 0)
		dst->prompt = src->prompt;
	if (src->completion >= 0)
		dst->completion = src->completion;
	if (src->total >= 0)
		dst->total = src->total;
	if (src->cached >= 0)
		dst->cached = src->cached;
	if (src->reasoning >= 0)
		dst->reasoning = src->reasoning;
}

const char *wire_error_type_for_status(int status)
{
	switch (status) {
	case 400:
		return "invalid_request_error";
	case 401:
		return "authentication_error";
	case 403:
		return "permission_error";
	case 404:
		return "not_found_error";
	case 408:
		return "timeout_error";
	case 413:
		return "request_too_large";
	case 429:
		return "rate_limit_error";
	case 503:
	case 529:
		return "overloaded_error";
	case 504:
		return "timeout_error";
	default:
		return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
	}
}

void wire_err_set(struct wire_err *err, int status, const char *fmt, ...)
{
	if (!err)
		return;
	err->status = status;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

void wire_sse_json(struct evbuffer *out, const char *event, const json_t *data)
{
	char *s = json_dumps(data, JSON_COMPACT);
	if (!s)
		return;
	if (event)
		evbuffer_add_printf(out, "event: %s\n", event);
	evbuffer_add(out, "data: ", 6);
	evbuffer_add(out, s, strlen(s));
	evbuffer_add(out, "\n\n", 2);
	free(s);
}

void wire_random_id(char *buf, size_t size, const char *prefix)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	size_t n = strlen(prefix);
	if (size == 0)
		return;
	if (n >= size)
		n = size - 1;
	memcpy(buf, prefix, n);
	size_t want = size - 1 - n < 24 ? size - 1 - n : 24;
	for (size_t i = 0; i < want; i++)
		buf[n + i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
	buf[n + want] = '\0';
}

void wire_set_nonempty(json_t *obj, const char *key, json_t *val)
{
	if ((json_is_array(val) && json_array_size(val)) || (json_is_object(val) && json_object_size(val)))
		json_object_set_new(obj, key, val);
	else
		json_decref(val);
}

const char *wire_str(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

int64_t wire_int(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 9e15)
		return (int64_t)json_real_value(v);
	return -1;
}

char *wire_join_url(const char *base, const char *suffix)
{
	size_t n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	size_t len = n + strlen(suffix) + 1;
	char *u = xmalloc(len);
	memcpy(u, base, n);
	u[n] = '\0';
	str_append(u, len, suffix);
	return u;
}

char *wire_header(const char *name, const char *value)
{
	size_t len = strlen(name) + strlen(value) + 3;
	char *h = xmalloc(len);
	str_copy(h, len, name);
	str_append(h, len, ": ");
	str_append(h, len, value);
	return h;
}

int wire_emit(cev_fn fn, void *arg, enum cev_type type, int index, const char *text, size_t len)
{
	struct cev ev = { .type = type, .index = index, .text = text, .len = len };
	wire_usage_init(&ev.usage);
	return fn(&ev, arg);
}
