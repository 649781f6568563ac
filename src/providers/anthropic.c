/*
 * anthropic.c — the Anthropic Messages wire format (POST /v1/messages,
 * anthropic-version 2023-06-01), as a client format and as a provider
 * format.  Everything here translates between Anthropic JSON / SSE and
 * the canonical form of format.h; nothing here does I/O.
 *
 * Data flow:
 *   client request   anth_decode_request  Anthropic JSON -> canonical
 *   provider request anth_encode_request  canonical -> Anthropic JSON
 *   provider answer  anth_decode_response Anthropic message -> canonical
 *   client answer    anth_encode_response canonical -> Anthropic message
 *   errors           anth_decode_error / anth_encode_error
 *   provider stream  sdec_*  Anthropic SSE events -> struct cev
 *   client stream    senc_*  struct cev -> Anthropic SSE bytes
 *
 * The rules that lose or refuse something are decided once, here, and
 * listed in docs/TRANSLATION.md; the important ones:
 *   - Anthropic needs alternating user/assistant turns and tool results
 *     inside a user turn, so encode_request merges consecutive messages
 *     that land on the same role (tool messages become user turns of
 *     tool_result blocks) and, when the history starts with an assistant
 *     message, puts a user turn holding "." in front of it.
 *   - Tool call arguments that are not a JSON object are refused with 400
 *     when sent upstream (Anthropic's input must be an object; silently
 *     replacing them would change the conversation) and become {} when
 *     an answer is handed to an Anthropic client (nothing to refuse to).
 *   - temperature above 1 (OpenAI allows up to 2) is clamped to 1.
 *   - response_format json_schema is refused with 400 (the caller needs
 *     schema-valid output that we cannot promise); json_object and text
 *     are dropped.
 *
 * Streams: the decoder numbers tool blocks 0, 1, 2... in order of
 * appearance (Anthropic's block index also counts text and thinking
 * blocks).  The encoder cannot know the final usage before the upstream
 * ends (OpenAI sends it after the finish chunk), so it remembers FINISH
 * and USAGE and writes message_delta only at CEV_END.
 */
#include "providers/format.h"

#include <event2/buffer.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "providers/wire_util.h"
#include "util/alloc.h"
#include "util/utf8.h"
#include "util/str.h"

#define ANTHROPIC_VERSION "2023-06-01"
/* Put in front of a history that starts with an assistant turn: the
 * Messages API wants the first turn to be the user's, and text blocks
 * must not be empty. */
#define LEADING_USER_TEXT "."
/* Used by encode_request when neither the request nor the route names a
 * max_tokens (Anthropic requires one). */
#define FALLBACK_MAX_TOKENS 4096
/* Tool calls one streamed answer may open; past this a stream is treated
 * as hostile (decoder) or further tool calls are dropped (encoder). */
#define MAX_STREAM_TOOLS 4096

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

/* A JSON string of n bytes; bytes that are not well-formed UTF-8 become
 * U+FFFD so that a fragment from a sloppy upstream is never dropped. */
static json_t *jstrn(const char *s, size_t n)
{
	if (!s)
		return json_string("");
	json_t *j = json_stringn(s, n);
	if (j)
		return j;
	char *fix = xmalloc(n * 3 + 1);
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq_len((const unsigned char *)s + i, n - i);
		if (k == 0) {
			fix[o++] = '\xEF'; /* U+FFFD */
			fix[o++] = '\xBF';
			fix[o++] = '\xBD';
			i++;
		} else {
			memcpy(fix + o, s + i, k);
			o += k;
			i += k;
		}
	}
	j = json_stringn(fix, o);
	free(fix);
	return j;
}

static json_t *jstr(const char *s)
{
	return jstrn(s, s ? strlen(s) : 0);
}

static bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static bool has_prefix(const char *s, const char *p)
{
	return s && strncmp(s, p, strlen(p)) == 0;
}

/* Copy src into dst[size], cut at a character boundary so that a long
 * provider message never ends in half a UTF-8 sequence. */
static void copy_utf8(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src), o = 0;
	while (o < n) {
		size_t k = utf8_seq_len((const unsigned char *)src + o, n - o);
		if (k == 0)
			k = 1; /* not ours to repair here; jstr() does at output */
		if (o + k >= size)
			break;
		o += k;
	}
	memcpy(dst, src, o);
	dst[o] = '\0';
}

/* A growable byte string (owner: whoever declared it; free p). */
struct strb {
	char *p;
	size_t n, cap;
};

static void strb_add(struct strb *b, const char *s, size_t n)
{
	if (!s)
		n = 0;
	if (!b->p || b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->n + n + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	if (n && s)
		memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

/* Compact JSON text of v as a JSON string value (new reference). */
static json_t *json_as_string(const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_t *j = jstr(s ? s : "{}");
	free(s);
	return j;
}

/* Tool ids Anthropic accepts match ^[a-zA-Z0-9_-]+$; ids from other
 * providers are mapped character by character so that a tool_use and
 * its tool_result still agree. */
static json_t *anth_tool_id(const char *id)
{
	size_t n = strlen(id);
	char *s = xstrndup(id, n);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		          c == '_' || c == '-';
		if (!ok)
			s[i] = '_';
	}
	json_t *j = json_string(s);
	free(s);
	return j;
}

/* ------------------------------------------------------------------ */
/* errors: neutral type <-> status                                     */
/* ------------------------------------------------------------------ */

static const char *const anth_error_types[] = {
	"invalid_request_error",
	"authentication_error",
	"permission_error",
	"not_found_error",
	"request_too_large",
	"rate_limit_error",
	"api_error",
	"overloaded_error",
	"timeout_error",
	NULL,
};

static bool known_error_type(const char *t)
{
	for (size_t i = 0; t && anth_error_types[i]; i++)
		if (strcmp(t, anth_error_types[i]) == 0)
			return true;
	return false;
}

/* The HTTP status Anthropic uses for an error type (for errors that
 * arrive inside a 200 stream, which carry no status of their own). */
static int status_for_error_type(const char *t)
{
	static const struct {
		const char *type;
		int status;
	} map[] = {
		{ "invalid_request_error", 400 },
		{ "authentication_error", 401 },
		{ "permission_error", 403 },
		{ "not_found_error", 404 },
		{ "request_too_large", 413 },
		{ "rate_limit_error", 429 },
		{ "api_error", 500 },
		{ "overloaded_error", 529 },
		{ "timeout_error", 504 },
	};
	for (size_t i = 0; t && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(t, map[i].type) == 0)
			return map[i].status;
	return 500;
}

/* Fill out from an Anthropic error object {type, message} (may be NULL
 * or of the wrong shape) and the status it came with. */
static void fill_error(const json_t *eobj, int status, struct wire_error *out)
{
	const char *t = wire_str(eobj, "type");
	const char *m = wire_str(eobj, "message");
	out->status = status;
	snprintf(out->type, sizeof(out->type), "%s",
	         known_error_type(t) ? t : wire_error_type_for_status(status));
	if (m && *m)
		copy_utf8(out->message, sizeof(out->message), m);
	else
		snprintf(out->message, sizeof(out->message), "Anthropic provider answered HTTP %d", status);
}

/* ------------------------------------------------------------------ */
/* decode_request: Anthropic client request -> canonical               */
/* ------------------------------------------------------------------ */

/* An Anthropic image block -> canonical {type:image_url, image_url:{url}}. */
static json_t *dec_image(const json_t *blk, const char *where, struct wire_err *err)
{
	const json_t *src = json_object_get(blk, "source");
	const char *st = wire_str(src, "type");
	if (!json_is_object(src) || !st) {
		wire_err_set(err, 400, "%s.source: required object with a type", where);
		return NULL;
	}
	json_t *url = NULL;
	if (strcmp(st, "base64") == 0) {
		const char *mt = wire_str(src, "media_type"), *data = wire_str(src, "data");
		if (!mt || !*mt || !data || !*data) {
			wire_err_set(err, 400, "%s.source: a base64 image needs media_type and data strings",
			             where);
			return NULL;
		}
		if (strpbrk(mt, ";,") || strchr(mt, '/') == NULL) {
			wire_err_set(err, 400, "%s.source.media_type: not a media type", where);
			return NULL;
		}
		struct strb b = { 0 };
		strb_add(&b, "data:", 5);
		strb_add(&b, mt, strlen(mt));
		strb_add(&b, ";base64,", 8);
		strb_add(&b, data, strlen(data));
		url = json_stringn(b.p, b.n);
		free(b.p);
	} else if (strcmp(st, "url") == 0) {
		const char *u = wire_str(src, "url");
		if (!u || !*u) {
			wire_err_set(err, 400, "%s.source.url: required string", where);
			return NULL;
		}
		url = json_string(u);
	} else {
		wire_err_set(err, 400, "%s.source.type '%.40s' cannot be translated (only base64 and url)",
		             where, st);
		return NULL;
	}
	return json_pack("{s:s, s:{s:o}}", "type", "image_url", "image_url", "url", url);
}

/* tool_result content -> canonical tool message content. */
static json_t *dec_tool_result_content(const json_t *content, const char *where, struct wire_err *err)
{
	if (!content || json_is_null(content))
		return json_string("");
	if (json_is_string(content))
		return json_copy((json_t *)content);
	if (!json_is_array(content)) {
		wire_err_set(err, 400, "%s.content: must be a string or an array of blocks", where);
		return NULL;
	}
	json_t *parts = json_array();
	size_t i;
	const json_t *b;
	json_array_foreach (content, i, b) {
		char w[96];
		snprintf(w, sizeof(w), "%s.content[%zu]", where, i);
		const char *t = wire_str(b, "type");
		if (str_eq(t, "text")) {
			const char *text = wire_str(b, "text");
			if (!text) {
				wire_err_set(err, 400, "%s.text: required string", w);
				goto fail;
			}
			json_array_append_new(parts, json_pack("{s:s, s:s}", "type", "text", "text", text));
		} else if (str_eq(t, "image")) {
			json_t *img = dec_image(b, w, err);
			if (!img)
				goto fail;
			json_array_append_new(parts, img);
		} else {
			wire_err_set(err, 400,
			             "%s: block type '%.40s' cannot be translated inside a tool_result", w,
			             t ? t : "(none)");
			goto fail;
		}
	}
	return parts;
fail:
	json_decref(parts);
	return NULL;
}

/* The name of the tool call with id in the last assistant message of
 * msgs (a tool_result answers the turn just before it), or NULL. */
static const char *find_tool_name(const json_t *msgs, const char *id)
{
	for (size_t k = json_array_size(msgs); k-- > 0;) {
		const json_t *m = json_array_get(msgs, k);
		if (!str_eq(wire_str(m, "role"), "assistant"))
			continue;
		size_t i;
		const json_t *tc;
		json_array_foreach (json_object_get(m, "tool_calls"), i, tc) {
			if (str_eq(wire_str(tc, "id"), id))
				return wire_str(json_object_get(tc, "function"), "name");
		}
		return NULL;
	}
	return NULL;
}

/* A user turn's blocks: tool_result blocks become tool messages (first,
 * because a tool answer must follow the assistant's call), the rest one
 * user message with the parts in their order. */
static int dec_user_blocks(const json_t *content, size_t mi, json_t *msgs, struct wire_err *err)
{
	json_t *parts = json_array();
	size_t i;
	const json_t *b;
	json_array_foreach (content, i, b) {
		char w[64];
		snprintf(w, sizeof(w), "messages[%zu].content[%zu]", mi, i);
		const char *t = wire_str(b, "type");
		if (!json_is_object(b) || !t) {
			wire_err_set(err, 400, "%s: must be an object with a type", w);
			goto fail;
		}
		if (strcmp(t, "text") == 0) {
			const char *text = wire_str(b, "text");
			if (!text) {
				wire_err_set(err, 400, "%s.text: required string", w);
				goto fail;
			}
			json_array_append_new(parts, json_pack("{s:s, s:s}", "type", "text", "text", text));
		} else if (strcmp(t, "image") == 0) {
			json_t *img = dec_image(b, w, err);
			if (!img)
				goto fail;
			json_array_append_new(parts, img);
		} else if (strcmp(t, "tool_result") == 0) {
			const char *id = wire_str(b, "tool_use_id");
			if (!id || !*id) {
				wire_err_set(err, 400, "%s.tool_use_id: required string", w);
				goto fail;
			}
			const json_t *ie = json_object_get(b, "is_error");
			if (ie && !json_is_boolean(ie)) {
				wire_err_set(err, 400, "%s.is_error: must be a boolean", w);
				goto fail;
			}
			json_t *c = dec_tool_result_content(json_object_get(b, "content"), w, err);
			if (!c)
				goto fail;
			json_t *tm =
			    json_pack("{s:s, s:s, s:o}", "role", "tool", "tool_call_id", id, "content", c);
			const char *name = find_tool_name(msgs, id);
			if (name)
				json_object_set_new(tm, "x_name", json_string(name));
			if (json_is_true(ie))
				json_object_set_new(tm, "x_is_error", json_true());
			json_array_append_new(msgs, tm);
		} else {
			wire_err_set(err, 400, "%s: block type '%.40s' cannot be translated in a user turn",
			             w, t);
			goto fail;
		}
	}
	if (json_array_size(parts))
		json_array_append_new(msgs, json_pack("{s:s, s:O}", "role", "user", "content", parts));
	json_decref(parts);
	return 0;
fail:
	json_decref(parts);
	return -1;
}

/* An assistant turn's blocks -> one canonical assistant message. */
static int dec_assistant_blocks(const json_t *content, size_t mi, json_t *msgs, struct wire_err *err)
{
	struct strb text = { 0 };
	bool has_text = false;
	json_t *calls = json_array(), *thinking = json_array();
	size_t i;
	const json_t *b;
	json_array_foreach (content, i, b) {
		char w[64];
		snprintf(w, sizeof(w), "messages[%zu].content[%zu]", mi, i);
		const char *t = wire_str(b, "type");
		if (!json_is_object(b) || !t) {
			wire_err_set(err, 400, "%s: must be an object with a type", w);
			goto fail;
		}
		if (strcmp(t, "text") == 0) {
			const json_t *tv = json_object_get(b, "text");
			if (!json_is_string(tv)) {
				wire_err_set(err, 400, "%s.text: required string", w);
				goto fail;
			}
			strb_add(&text, json_string_value(tv), json_string_length(tv));
			has_text = true;
		} else if (strcmp(t, "tool_use") == 0) {
			const char *id = wire_str(b, "id"), *name = wire_str(b, "name");
			const json_t *input = json_object_get(b, "input");
			if (!id || !*id || !name || !*name) {
				wire_err_set(err, 400, "%s: tool_use needs id and name strings", w);
				goto fail;
			}
			if (!json_is_object(input)) {
				wire_err_set(err, 400, "%s.input: required object", w);
				goto fail;
			}
			json_array_append_new(calls, json_pack("{s:s, s:s, s:{s:s, s:o}}", "id", id, "type",
			                                       "function", "function", "name", name,
			                                       "arguments", json_as_string(input)));
		} else if (strcmp(t, "thinking") == 0) {
			const char *th = wire_str(b, "thinking"), *sig = wire_str(b, "signature");
			if (!th) {
				wire_err_set(err, 400, "%s.thinking: required string", w);
				goto fail;
			}
			json_t *x = json_pack("{s:s}", "thinking", th);
			if (sig)
				json_object_set_new(x, "signature", json_string(sig));
			json_array_append_new(thinking, x);
		} else if (strcmp(t, "redacted_thinking") == 0) {
			const char *data = wire_str(b, "data");
			if (!data) {
				wire_err_set(err, 400, "%s.data: required string", w);
				goto fail;
			}
			json_array_append_new(thinking, json_pack("{s:s}", "redacted_thinking", data));
		} else {
			wire_err_set(err, 400,
			             "%s: block type '%.40s' cannot be translated in an assistant turn", w,
			             t);
			goto fail;
		}
	}
	json_t *m = json_pack("{s:s}", "role", "assistant");
	if (has_text)
		json_object_set_new(m, "content", json_stringn(text.p ? text.p : "", text.n));
	else
		json_object_set_new(m, "content", json_array_size(calls) ? json_null() : json_string(""));
	if (json_array_size(calls))
		json_object_set(m, "tool_calls", calls);
	if (json_array_size(thinking))
		json_object_set(m, "x_thinking", thinking);
	json_array_append_new(msgs, m);
	free(text.p);
	json_decref(calls);
	json_decref(thinking);
	return 0;
fail:
	free(text.p);
	json_decref(calls);
	json_decref(thinking);
	return -1;
}

static int dec_system(const json_t *sys, json_t *msgs, struct wire_err *err)
{
	if (!sys || json_is_null(sys))
		return 0;
	if (json_is_string(sys)) {
		if (json_string_length(sys))
			json_array_append_new(msgs,
			                      json_pack("{s:s, s:O}", "role", "system", "content", sys));
		return 0;
	}
	if (!json_is_array(sys)) {
		wire_err_set(err, 400, "system: must be a string or an array of text blocks");
		return -1;
	}
	json_t *parts = json_array();
	size_t i;
	const json_t *b;
	json_array_foreach (sys, i, b) {
		const char *text = wire_str(b, "text");
		if (!str_eq(wire_str(b, "type"), "text") || !text) {
			wire_err_set(err, 400, "system[%zu]: must be a text block with a text string", i);
			json_decref(parts);
			return -1;
		}
		json_array_append_new(parts, json_pack("{s:s, s:s}", "type", "text", "text", text));
	}
	if (json_array_size(parts))
		json_array_append_new(msgs, json_pack("{s:s, s:O}", "role", "system", "content", parts));
	json_decref(parts);
	return 0;
}

static int dec_tools(const json_t *tools, json_t *c, struct wire_err *err)
{
	if (!tools || json_is_null(tools))
		return 0;
	if (!json_is_array(tools)) {
		wire_err_set(err, 400, "tools: must be an array");
		return -1;
	}
	json_t *out = json_array();
	size_t i;
	const json_t *t;
	json_array_foreach (tools, i, t) {
		const char *type = wire_str(t, "type");
		const char *name = wire_str(t, "name");
		const json_t *desc = json_object_get(t, "description");
		const json_t *schema = json_object_get(t, "input_schema");
		if (!json_is_object(t)) {
			wire_err_set(err, 400, "tools[%zu]: must be an object", i);
			goto fail;
		}
		if (type && strcmp(type, "custom") != 0) {
			wire_err_set(
			    err, 400,
			    "tools[%zu]: Anthropic tool type '%.60s' cannot be translated to another "
			    "provider",
			    i, type);
			goto fail;
		}
		if (!name || !*name) {
			wire_err_set(err, 400, "tools[%zu].name: required string", i);
			goto fail;
		}
		if (!json_is_object(schema)) {
			wire_err_set(err, 400, "tools[%zu].input_schema: required object", i);
			goto fail;
		}
		if (desc && !json_is_string(desc) && !json_is_null(desc)) {
			wire_err_set(err, 400, "tools[%zu].description: must be a string", i);
			goto fail;
		}
		json_t *fn = json_pack("{s:s}", "name", name);
		if (json_is_string(desc))
			json_object_set(fn, "description", (json_t *)desc);
		json_object_set_new(fn, "parameters", json_deep_copy(schema));
		json_array_append_new(out, json_pack("{s:s, s:o}", "type", "function", "function", fn));
	}
	json_object_set_new(c, "tools", out);
	return 0;
fail:
	json_decref(out);
	return -1;
}

static int dec_tool_choice(const json_t *tc, json_t *c, struct wire_err *err)
{
	if (!tc || json_is_null(tc))
		return 0;
	const char *type = wire_str(tc, "type");
	if (!json_is_object(tc) || !type) {
		wire_err_set(err, 400, "tool_choice: must be an object with a type");
		return -1;
	}
	const json_t *dp = json_object_get(tc, "disable_parallel_tool_use");
	if (dp && !json_is_boolean(dp)) {
		wire_err_set(err, 400, "tool_choice.disable_parallel_tool_use: must be a boolean");
		return -1;
	}
	json_t *v;
	if (strcmp(type, "auto") == 0) {
		v = json_string("auto");
	} else if (strcmp(type, "any") == 0) {
		v = json_string("required");
	} else if (strcmp(type, "none") == 0) {
		v = json_string("none");
	} else if (strcmp(type, "tool") == 0) {
		const char *name = wire_str(tc, "name");
		if (!name || !*name) {
			wire_err_set(err, 400, "tool_choice.name: required string for type 'tool'");
			return -1;
		}
		v = json_pack("{s:s, s:{s:s}}", "type", "function", "function", "name", name);
	} else {
		wire_err_set(err, 400, "tool_choice.type: must be auto, any, none or tool");
		return -1;
	}
	json_object_set_new(c, "tool_choice", v);
	if (json_is_true(dp))
		json_object_set_new(c, "parallel_tool_calls", json_false());
	return 0;
}

/* A number field in [lo, hi] copied to the canonical key. */
static int dec_number(const json_t *body, const char *key, double lo, double hi, json_t *c, const char *ckey,
                      struct wire_err *err)
{
	const json_t *v = json_object_get(body, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi) {
		wire_err_set(err, 400, "%s: must be a number from %g to %g", key, lo, hi);
		return -1;
	}
	json_object_set(c, ckey, (json_t *)v);
	return 0;
}

static json_t *anth_decode_request(const json_t *body, struct wire_err *err)
{
	if (!json_is_object(body)) {
		wire_err_set(err, 400, "request body must be a JSON object");
		return NULL;
	}
	const char *model = wire_str(body, "model");
	if (!model || !*model) {
		wire_err_set(err, 400, "model: required string");
		return NULL;
	}
	const json_t *mt = json_object_get(body, "max_tokens");
	if (!json_is_integer(mt) || json_integer_value(mt) < 1) {
		wire_err_set(err, 400, "max_tokens: required positive integer");
		return NULL;
	}
	const json_t *in = json_object_get(body, "messages");
	if (!json_is_array(in) || json_array_size(in) == 0) {
		wire_err_set(err, 400, "messages: required non-empty array");
		return NULL;
	}

	json_t *c = json_pack("{s:s, s:O}", "model", model, "max_tokens", mt);
	json_t *msgs = json_array();
	json_object_set_new(c, "messages", msgs);
	if (dec_system(json_object_get(body, "system"), msgs, err) < 0)
		goto fail;

	size_t i;
	const json_t *m;
	json_array_foreach (in, i, m) {
		const char *role = wire_str(m, "role");
		const json_t *content = json_object_get(m, "content");
		if (!json_is_object(m)) {
			wire_err_set(err, 400, "messages[%zu]: must be an object", i);
			goto fail;
		}
		if (!str_eq(role, "user") && !str_eq(role, "assistant")) {
			wire_err_set(err, 400, "messages[%zu].role: must be \"user\" or \"assistant\"", i);
			goto fail;
		}
		if (json_is_string(content)) {
			json_array_append_new(msgs,
			                      json_pack("{s:s, s:O}", "role", role, "content", content));
			continue;
		}
		if (!json_is_array(content) || json_array_size(content) == 0) {
			wire_err_set(err, 400,
			             "messages[%zu].content: must be a string or a non-empty array of blocks",
			             i);
			goto fail;
		}
		int rc = role[0] == 'u' ? dec_user_blocks(content, i, msgs, err)
		                        : dec_assistant_blocks(content, i, msgs, err);
		if (rc < 0)
			goto fail;
	}

	const json_t *ss = json_object_get(body, "stop_sequences");
	if (ss && !json_is_null(ss)) {
		if (!json_is_array(ss)) {
			wire_err_set(err, 400, "stop_sequences: must be an array of strings");
			goto fail;
		}
		json_t *stop = json_array();
		const json_t *s;
		json_array_foreach (ss, i, s) {
			if (!json_is_string(s)) {
				json_decref(stop);
				wire_err_set(err, 400, "stop_sequences[%zu]: must be a string", i);
				goto fail;
			}
			json_array_append(stop, (json_t *)s);
		}
		wire_set_nonempty(c, "stop", stop);
	}
	if (dec_number(body, "temperature", 0, 1, c, "temperature", err) < 0 ||
	    dec_number(body, "top_p", 0, 1, c, "top_p", err) < 0)
		goto fail;
	const json_t *tk = json_object_get(body, "top_k");
	if (tk && !json_is_null(tk)) {
		if (!json_is_integer(tk) || json_integer_value(tk) < 0) {
			wire_err_set(err, 400, "top_k: must be a non-negative integer");
			goto fail;
		}
		json_object_set(c, "x_top_k", (json_t *)tk);
	}
	if (dec_tools(json_object_get(body, "tools"), c, err) < 0 ||
	    dec_tool_choice(json_object_get(body, "tool_choice"), c, err) < 0)
		goto fail;
	const json_t *th = json_object_get(body, "thinking");
	if (th && !json_is_null(th)) {
		if (!json_is_object(th) || !wire_str(th, "type")) {
			wire_err_set(err, 400, "thinking: must be an object with a type");
			goto fail;
		}
		json_object_set_new(c, "x_thinking", json_deep_copy(th));
	}
	const json_t *st = json_object_get(body, "stream");
	if (st && !json_is_null(st)) {
		if (!json_is_boolean(st)) {
			wire_err_set(err, 400, "stream: must be a boolean");
			goto fail;
		}
		json_object_set(c, "stream", (json_t *)st);
	}
	return c;
fail:
	json_decref(c);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* encode_request: canonical -> Anthropic provider request             */
/* ------------------------------------------------------------------ */

/* Append block (stolen) to the last turn when it has role, else to a new
 * turn: Anthropic wants alternating roles. */
static void turn_add(json_t *turns, const char *role, json_t *block)
{
	size_t n = json_array_size(turns);
	json_t *last = n ? json_array_get(turns, n - 1) : NULL;
	if (last && str_eq(wire_str(last, "role"), role)) {
		json_array_append_new(json_object_get(last, "content"), block);
		return;
	}
	json_array_append_new(turns, json_pack("{s:s, s:[o]}", "role", role, "content", block));
}

/* A canonical image_url part -> Anthropic image block. */
static json_t *enc_image(const json_t *part, const char *where, struct wire_err *err)
{
	const json_t *iu = json_object_get(part, "image_url");
	const char *url = json_is_string(iu) ? json_string_value(iu) : wire_str(iu, "url");
	if (!url) {
		wire_err_set(err, 400, "%s.image_url.url: required string", where);
		return NULL;
	}
	if (has_prefix(url, "data:")) {
		/* data:<media type>[;params];base64,<data> */
		const char *comma = strchr(url, ',');
		const char *semi = comma ? memchr(url, ';', (size_t)(comma - url)) : NULL;
		if (!comma || !semi || semi == url + 5 || comma - url < 12 ||
		    memcmp(comma - 7, ";base64", 7) != 0 || comma[1] == '\0') {
			wire_err_set(err, 400,
			             "%s.image_url.url: only base64 data: URIs can be sent to Anthropic",
			             where);
			return NULL;
		}
		json_t *mt = json_stringn(url + 5, (size_t)(semi - (url + 5)));
		json_t *data = json_string(comma + 1);
		return json_pack("{s:s, s:{s:s, s:o, s:o}}", "type", "image", "source", "type", "base64",
		                 "media_type", mt, "data", data);
	}
	if (has_prefix(url, "https://") || has_prefix(url, "http://"))
		return json_pack("{s:s, s:{s:s, s:s}}", "type", "image", "source", "type", "url", "url", url);
	wire_err_set(err, 400, "%s.image_url.url: must be a data: URI or an http(s) URL", where);
	return NULL;
}

/* Canonical message content -> Anthropic blocks appended to out.  Empty
 * text is dropped (Anthropic rejects empty text blocks). */
static int enc_content(const json_t *content, const char *where, bool images, json_t *out,
                       struct wire_err *err)
{
	if (!content || json_is_null(content))
		return 0;
	if (json_is_string(content)) {
		if (json_string_length(content))
			json_array_append_new(out, json_pack("{s:s, s:O}", "type", "text", "text", content));
		return 0;
	}
	if (!json_is_array(content)) {
		wire_err_set(err, 400, "%s.content: must be a string, null or an array of parts", where);
		return -1;
	}
	size_t i;
	const json_t *p;
	json_array_foreach (content, i, p) {
		char w[96];
		snprintf(w, sizeof(w), "%s.content[%zu]", where, i);
		const char *t = wire_str(p, "type");
		if (str_eq(t, "text") || str_eq(t, "refusal")) {
			const json_t *tv = json_object_get(p, t);
			if (!json_is_string(tv)) {
				wire_err_set(err, 400, "%s.%s: required string", w, t);
				return -1;
			}
			if (json_string_length(tv))
				json_array_append_new(out,
				                      json_pack("{s:s, s:O}", "type", "text", "text", tv));
		} else if (str_eq(t, "image_url") && images) {
			json_t *img = enc_image(p, w, err);
			if (!img)
				return -1;
			json_array_append_new(out, img);
		} else {
			wire_err_set(err, 400,
			             "%s: part type '%.40s' cannot be sent to an Anthropic provider", w,
			             t ? t : "(none)");
			return -1;
		}
	}
	return 0;
}

/* Tool call arguments (a JSON string) -> the tool_use input object. */
static json_t *enc_tool_input(const json_t *args, const char *where, struct wire_err *err)
{
	if (!args || json_is_null(args))
		return json_object();
	if (json_is_object(args))
		return json_deep_copy(args);
	if (!json_is_string(args)) {
		wire_err_set(err, 400, "%s.function.arguments: must be a string", where);
		return NULL;
	}
	const char *s = json_string_value(args);
	size_t n = json_string_length(args);
	size_t k = 0;
	while (k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r'))
		k++;
	if (k == n)
		return json_object();
	json_error_t je;
	json_t *v = json_loadb(s, n, JSON_DECODE_ANY, &je);
	if (!json_is_object(v)) {
		json_decref(v);
		wire_err_set(err, 400, "%s.function.arguments: not a JSON object, which Anthropic requires",
		             where);
		return NULL;
	}
	return v;
}

static int enc_assistant(const json_t *m, size_t mi, json_t *turns, struct wire_err *err)
{
	char where[48];
	snprintf(where, sizeof(where), "messages[%zu]", mi);
	json_t *blocks = json_array();
	size_t i;
	const json_t *x;
	const json_t *xt = json_object_get(m, "x_thinking");
	json_array_foreach (xt, i, x) {
		const char *th = wire_str(x, "thinking"), *red = wire_str(x, "redacted_thinking");
		if (th) {
			json_t *b = json_pack("{s:s, s:s}", "type", "thinking", "thinking", th);
			const char *sig = wire_str(x, "signature");
			if (sig)
				json_object_set_new(b, "signature", json_string(sig));
			json_array_append_new(blocks, b);
		} else if (red) {
			json_array_append_new(
			    blocks, json_pack("{s:s, s:s}", "type", "redacted_thinking", "data", red));
		}
	}
	if (enc_content(json_object_get(m, "content"), where, false, blocks, err) < 0)
		goto fail;
	const json_t *calls = json_object_get(m, "tool_calls");
	if (calls && !json_is_null(calls) && !json_is_array(calls)) {
		wire_err_set(err, 400, "%s.tool_calls: must be an array", where);
		goto fail;
	}
	json_array_foreach (calls, i, x) {
		char w[112];
		snprintf(w, sizeof(w), "%s.tool_calls[%zu]", where, i);
		const json_t *fn = json_object_get(x, "function");
		const char *id = wire_str(x, "id"), *name = wire_str(fn, "name");
		if (!id || !*id || !name || !*name) {
			wire_err_set(err, 400, "%s: needs an id and a function name", w);
			goto fail;
		}
		json_t *input = enc_tool_input(json_object_get(fn, "arguments"), w, err);
		if (!input)
			goto fail;
		json_array_append_new(blocks, json_pack("{s:s, s:o, s:s, s:o}", "type", "tool_use", "id",
		                                        anth_tool_id(id), "name", name, "input", input));
	}
	json_t *blk;
	json_array_foreach (blocks, i, blk) {
		turn_add(turns, "assistant", json_incref(blk));
	}
	json_decref(blocks);
	return 0;
fail:
	json_decref(blocks);
	return -1;
}

static int enc_tool(const json_t *m, size_t mi, json_t *turns, struct wire_err *err)
{
	char where[48];
	snprintf(where, sizeof(where), "messages[%zu]", mi);
	const char *id = wire_str(m, "tool_call_id");
	if (!id || !*id) {
		wire_err_set(err, 400, "%s.tool_call_id: required string", where);
		return -1;
	}
	json_t *content = json_array();
	if (enc_content(json_object_get(m, "content"), where, true, content, err) < 0) {
		json_decref(content);
		return -1;
	}
	json_t *b = json_pack("{s:s, s:o}", "type", "tool_result", "tool_use_id", anth_tool_id(id));
	/* A single text block goes as a plain string, the form Anthropic's
	 * own examples use; an empty result omits content (allowed). */
	const json_t *first = json_array_get(content, 0);
	if (json_array_size(content) == 1 && str_eq(wire_str(first, "type"), "text"))
		json_object_set(b, "content", json_object_get(first, "text"));
	else if (json_array_size(content))
		json_object_set(b, "content", content);
	json_decref(content);
	if (json_is_true(json_object_get(m, "x_is_error")))
		json_object_set_new(b, "is_error", json_true());
	turn_add(turns, "user", b);
	return 0;
}

/* System text from a canonical system message, appended to sys. */
static int enc_system(const json_t *m, size_t mi, struct strb *sys, struct wire_err *err)
{
	char where[48];
	snprintf(where, sizeof(where), "messages[%zu]", mi);
	json_t *blocks = json_array();
	int rc = enc_content(json_object_get(m, "content"), where, false, blocks, err);
	size_t i;
	const json_t *b;
	json_array_foreach (blocks, i, b) {
		const json_t *t = json_object_get(b, "text");
		if (sys->n)
			strb_add(sys, "\n\n", 2);
		strb_add(sys, json_string_value(t), json_string_length(t));
	}
	json_decref(blocks);
	return rc;
}

static int enc_messages(const json_t *canon, json_t *req, struct wire_err *err)
{
	const json_t *msgs = json_object_get(canon, "messages");
	if (!json_is_array(msgs)) {
		wire_err_set(err, 400, "messages: required array");
		return -1;
	}
	struct strb sys = { 0 };
	json_t *turns = json_array();
	size_t i;
	const json_t *m;
	json_array_foreach (msgs, i, m) {
		const char *role = wire_str(m, "role");
		int rc;
		if (!json_is_object(m) || !role) {
			wire_err_set(err, 400, "messages[%zu]: must be an object with a role", i);
			goto fail;
		}
		if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
			rc = enc_system(m, i, &sys, err);
		} else if (strcmp(role, "user") == 0) {
			json_t *blocks = json_array();
			char where[48];
			snprintf(where, sizeof(where), "messages[%zu]", i);
			rc = enc_content(json_object_get(m, "content"), where, true, blocks, err);
			size_t k;
			const json_t *b;
			json_array_foreach (blocks, k, b) {
				turn_add(turns, "user", json_incref((json_t *)b));
			}
			json_decref(blocks);
		} else if (strcmp(role, "assistant") == 0) {
			rc = enc_assistant(m, i, turns, err);
		} else if (strcmp(role, "tool") == 0) {
			rc = enc_tool(m, i, turns, err);
		} else {
			wire_err_set(err, 400,
			             "messages[%zu].role '%.20s' cannot be sent to an Anthropic provider", i,
			             role);
			rc = -1;
		}
		if (rc < 0)
			goto fail;
	}
	if (json_array_size(turns) == 0) {
		wire_err_set(err, 400, "messages: no user or assistant content to send");
		goto fail;
	}
	if (!str_eq(wire_str(json_array_get(turns, 0), "role"), "user"))
		json_array_insert_new(turns, 0,
		                      json_pack("{s:s, s:[{s:s, s:s}]}", "role", "user", "content", "type",
		                                "text", "text", LEADING_USER_TEXT));
	if (sys.n)
		json_object_set_new(req, "system", json_stringn(sys.p, sys.n));
	json_object_set_new(req, "messages", turns);
	free(sys.p);
	return 0;
fail:
	free(sys.p);
	json_decref(turns);
	return -1;
}

static int enc_tools(const json_t *canon, json_t *req, struct wire_err *err)
{
	const json_t *tools = json_object_get(canon, "tools");
	if (!tools || json_is_null(tools))
		return 0;
	if (!json_is_array(tools)) {
		wire_err_set(err, 400, "tools: must be an array");
		return -1;
	}
	json_t *out = json_array();
	size_t i;
	const json_t *t;
	json_array_foreach (tools, i, t) {
		const json_t *fn = json_object_get(t, "function");
		const char *type = wire_str(t, "type"), *name = wire_str(fn, "name");
		if (type && strcmp(type, "function") != 0) {
			wire_err_set(err, 400,
			             "tools[%zu]: type '%.40s' cannot be sent to an Anthropic provider", i,
			             type);
			goto fail;
		}
		if (!name || !*name) {
			wire_err_set(err, 400, "tools[%zu].function.name: required string", i);
			goto fail;
		}
		const json_t *params = json_object_get(fn, "parameters");
		if (params && !json_is_null(params) && !json_is_object(params)) {
			wire_err_set(err, 400, "tools[%zu].function.parameters: must be an object", i);
			goto fail;
		}
		json_t *a = json_pack("{s:s}", "name", name);
		const char *desc = wire_str(fn, "description");
		if (desc)
			json_object_set_new(a, "description", json_string(desc));
		/* Anthropic requires input_schema; a function without
		 * parameters takes an empty object. */
		json_object_set_new(a, "input_schema",
		                    json_is_object(params) && json_object_size(params)
		                        ? json_deep_copy(params)
		                        : json_pack("{s:s}", "type", "object"));
		json_array_append_new(out, a);
	}
	wire_set_nonempty(req, "tools", out);
	return 0;
fail:
	json_decref(out);
	return -1;
}

static int enc_tool_choice(const json_t *canon, json_t *req, struct wire_err *err)
{
	const json_t *tc = json_object_get(canon, "tool_choice");
	const json_t *ptc = json_object_get(canon, "parallel_tool_calls");
	/* Anthropic refuses tool_choice without tools. */
	if (!json_object_get(req, "tools"))
		return 0;
	json_t *out = NULL;
	if (tc && !json_is_null(tc)) {
		const char *s = json_is_string(tc) ? json_string_value(tc) : NULL;
		const char *name = wire_str(json_object_get(tc, "function"), "name");
		if (str_eq(s, "auto"))
			out = json_pack("{s:s}", "type", "auto");
		else if (str_eq(s, "required"))
			out = json_pack("{s:s}", "type", "any");
		else if (str_eq(s, "none"))
			out = json_pack("{s:s}", "type", "none");
		else if (json_is_object(tc) && name && *name)
			out = json_pack("{s:s, s:s}", "type", "tool", "name", name);
		else {
			wire_err_set(
			    err, 400,
			    "tool_choice: must be auto, required, none or {type:function, function:{name}}");
			return -1;
		}
	}
	if (json_is_false(ptc) && !str_eq(wire_str(out, "type"), "none")) {
		if (!out)
			out = json_pack("{s:s}", "type", "auto");
		json_object_set_new(out, "disable_parallel_tool_use", json_true());
	}
	if (out)
		json_object_set_new(req, "tool_choice", out);
	return 0;
}

static int enc_sampling(const json_t *canon, const struct wire_opts *o, json_t *req, struct wire_err *err)
{
	const json_t *v = json_object_get(canon, "max_tokens");
	if (!v || json_is_null(v))
		v = json_object_get(canon, "max_completion_tokens");
	json_int_t mt;
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 1) {
			wire_err_set(err, 400, "max_tokens: must be a positive integer");
			return -1;
		}
		mt = json_integer_value(v);
	} else {
		mt = o->default_max_tokens > 0 ? o->default_max_tokens : FALLBACK_MAX_TOKENS;
	}
	json_object_set_new(req, "max_tokens", json_integer(mt));

	const json_t *stop = json_object_get(canon, "stop");
	if (stop && !json_is_null(stop)) {
		json_t *ss = json_array();
		if (json_is_string(stop)) {
			if (json_string_length(stop))
				json_array_append(ss, (json_t *)stop);
		} else if (json_is_array(stop)) {
			size_t i;
			const json_t *s;
			json_array_foreach (stop, i, s) {
				if (!json_is_string(s)) {
					json_decref(ss);
					wire_err_set(err, 400, "stop[%zu]: must be a string", i);
					return -1;
				}
				if (json_string_length(s)) /* Anthropic refuses empty ones */
					json_array_append(ss, (json_t *)s);
			}
		} else {
			json_decref(ss);
			wire_err_set(err, 400, "stop: must be a string or an array of strings");
			return -1;
		}
		wire_set_nonempty(req, "stop_sequences", ss);
	}

	v = json_object_get(canon, "temperature");
	if (v && !json_is_null(v)) {
		if (!json_is_number(v) || json_number_value(v) < 0) {
			wire_err_set(err, 400, "temperature: must be a non-negative number");
			return -1;
		}
		/* OpenAI allows up to 2, Anthropic up to 1: clamp, do not
		 * rescale (both use 1 as their default). */
		double t = json_number_value(v);
		json_object_set_new(req, "temperature", t > 1 ? json_integer(1) : json_copy((json_t *)v));
	}
	v = json_object_get(canon, "top_p");
	if (v && !json_is_null(v)) {
		if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) {
			wire_err_set(err, 400, "top_p: must be a number from 0 to 1");
			return -1;
		}
		json_object_set(req, "top_p", (json_t *)v);
	}
	v = json_object_get(canon, "x_top_k");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			wire_err_set(err, 400, "top_k: must be a non-negative integer");
			return -1;
		}
		json_object_set(req, "top_k", (json_t *)v);
	}
	v = json_object_get(canon, "n");
	if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 1)) {
		wire_err_set(err, 400, "n: Anthropic providers return one choice only");
		return -1;
	}
	const char *rf = wire_str(json_object_get(canon, "response_format"), "type");
	if (str_eq(rf, "json_schema")) {
		wire_err_set(err, 400, "response_format json_schema cannot be sent to an Anthropic provider");
		return -1;
	}
	return 0;
}

static json_t *anth_encode_request(const json_t *canon, const struct wire_opts *o, struct wire_err *err)
{
	static const struct wire_opts no_opts = { .prompt_estimate = -1 };
	if (!o)
		o = &no_opts;
	if (!json_is_object(canon)) {
		wire_err_set(err, 400, "request body must be a JSON object");
		return NULL;
	}
	json_t *req = json_pack("{s:s}", "model", o->model ? o->model : "");
	if (enc_messages(canon, req, err) < 0 || enc_sampling(canon, o, req, err) < 0 ||
	    enc_tools(canon, req, err) < 0 || enc_tool_choice(canon, req, err) < 0)
		goto fail;
	const json_t *th = json_object_get(canon, "x_thinking");
	if (json_is_object(th))
		json_object_set_new(req, "thinking", json_deep_copy(th));
	if (o->stream)
		json_object_set_new(req, "stream", json_true());
	return req;
fail:
	json_decref(req);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* responses                                                           */
/* ------------------------------------------------------------------ */

static const char *finish_from_stop_reason(const char *r)
{
	if (str_eq(r, "max_tokens") || str_eq(r, "model_context_window_exceeded"))
		return "length";
	if (str_eq(r, "tool_use"))
		return "tool_calls";
	if (str_eq(r, "refusal"))
		return "content_filter";
	return "stop"; /* end_turn, stop_sequence, pause_turn, null, unknown */
}

static const char *stop_reason_from_finish(const char *f, bool has_stop_sequence)
{
	if (str_eq(f, "length"))
		return "max_tokens";
	if (str_eq(f, "tool_calls") || str_eq(f, "function_call"))
		return "tool_use";
	if (str_eq(f, "content_filter"))
		return "refusal";
	return has_stop_sequence ? "stop_sequence" : "end_turn";
}

static void anth_usage(const json_t *body, struct wire_usage *u)
{
	wire_usage_init(u);
	const json_t *us = json_object_get(body, "usage");
	if (!json_is_object(us))
		return;
	int64_t in = wire_int(us, "input_tokens"), out = wire_int(us, "output_tokens");
	int64_t cc = wire_int(us, "cache_creation_input_tokens"),
	        cr = wire_int(us, "cache_read_input_tokens");
	if (in >= 0) {
		u->prompt = in + (cc > 0 ? cc : 0) + (cr > 0 ? cr : 0);
		u->cached = cr > 0 ? cr : 0;
	}
	u->completion = out;
	if (u->prompt >= 0 && out >= 0)
		u->total = u->prompt + out;
}

static json_t *anth_decode_response(const json_t *body, struct wire_err *err)
{
	const json_t *content = json_object_get(body, "content");
	if (!json_is_object(body) || !json_is_array(content)) {
		wire_err_set(err, 502, "malformed Anthropic response: no content array");
		return NULL;
	}
	struct strb text = { 0 };
	bool has_text = false;
	json_t *calls = json_array(), *thinking = json_array();
	size_t i;
	const json_t *b;
	json_array_foreach (content, i, b) {
		const char *t = wire_str(b, "type");
		if (str_eq(t, "text")) {
			const json_t *tv = json_object_get(b, "text");
			if (json_is_string(tv)) {
				strb_add(&text, json_string_value(tv), json_string_length(tv));
				has_text = true;
			}
		} else if (str_eq(t, "tool_use")) {
			const char *id = wire_str(b, "id"), *name = wire_str(b, "name");
			const json_t *input = json_object_get(b, "input");
			if (!id || !name) {
				wire_err_set(err, 502,
				             "malformed Anthropic response: tool_use without id or name");
				goto fail;
			}
			json_array_append_new(calls,
			                      json_pack("{s:s, s:s, s:{s:s, s:o}}", "id", id, "type",
			                                "function", "function", "name", name, "arguments",
			                                input ? json_as_string(input) : json_string("{}")));
		} else if (str_eq(t, "thinking")) {
			json_t *x = json_pack("{s:s}", "thinking",
			                      wire_str(b, "thinking") ? wire_str(b, "thinking") : "");
			const char *sig = wire_str(b, "signature");
			if (sig)
				json_object_set_new(x, "signature", json_string(sig));
			json_array_append_new(thinking, x);
		} else if (str_eq(t, "redacted_thinking") && wire_str(b, "data")) {
			json_array_append_new(thinking,
			                      json_pack("{s:s}", "redacted_thinking", wire_str(b, "data")));
		}
		/* server tool blocks (server_tool_use, web_search_tool_result,
		 * ...) have no canonical form and are dropped */
	}
	json_t *msg = json_pack("{s:s}", "role", "assistant");
	if (has_text)
		json_object_set_new(msg, "content", json_stringn(text.p ? text.p : "", text.n));
	else
		json_object_set_new(msg, "content", json_array_size(calls) ? json_null() : json_string(""));
	if (json_array_size(calls))
		json_object_set(msg, "tool_calls", calls);
	if (json_array_size(thinking))
		json_object_set(msg, "x_thinking", thinking);

	const char *id = wire_str(body, "id"), *model = wire_str(body, "model");
	json_t *c = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:s}]}", "id", id ? id : "", "object",
	                      "chat.completion", "created", (json_int_t)time(NULL), "model",
	                      model ? model : "", "choices", "index", 0, "message", msg, "finish_reason",
	                      finish_from_stop_reason(wire_str(body, "stop_reason")));
	const char *seq = wire_str(body, "stop_sequence");
	if (seq)
		json_object_set_new(c, "x_stop_sequence", json_string(seq));
	struct wire_usage u;
	anth_usage(body, &u);
	if (u.prompt >= 0 || u.completion >= 0) {
		int64_t p = u.prompt > 0 ? u.prompt : 0, o = u.completion > 0 ? u.completion : 0;
		json_object_set_new(c, "usage",
		                    json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens", (json_int_t)p,
		                              "completion_tokens", (json_int_t)o, "total_tokens",
		                              (json_int_t)p + (json_int_t)o, "prompt_tokens_details",
		                              "cached_tokens", (json_int_t)(u.cached > 0 ? u.cached : 0)));
	}
	free(text.p);
	json_decref(calls);
	json_decref(thinking);
	return c;
fail:
	free(text.p);
	json_decref(calls);
	json_decref(thinking);
	return NULL;
}

/* Canonical arguments string -> tool_use input for a client: {} when it
 * is not a JSON object (an answer cannot be refused any more). */
static json_t *client_tool_input(const json_t *args)
{
	if (json_is_object(args))
		return json_deep_copy(args);
	if (!json_is_string(args))
		return json_object();
	json_t *v = json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY, NULL);
	if (json_is_object(v))
		return v;
	json_decref(v);
	return json_object();
}

static json_t *anth_encode_response(const json_t *canon, const struct wire_opts *o)
{
	const json_t *choice = json_array_get(json_object_get(canon, "choices"), 0);
	const json_t *msg = json_object_get(choice, "message");
	/* an id that already looks like Anthropic's is kept (it may be the
	 * upstream's own); others get a fresh msg_ id */
	const char *cid = wire_str(canon, "id");
	char idbuf[48];
	if (!has_prefix(cid, "msg_")) {
		wire_random_id(idbuf, sizeof(idbuf), "msg_");
		cid = idbuf;
	}
	json_t *r =
	    json_pack("{s:s, s:s, s:s, s:[]}", "id", cid, "type", "message", "role", "assistant", "content");
	json_t *blocks = json_object_get(r, "content");

	size_t i;
	const json_t *x;
	json_array_foreach (json_object_get(msg, "x_thinking"), i, x) {
		const char *th = wire_str(x, "thinking"), *red = wire_str(x, "redacted_thinking");
		if (th)
			json_array_append_new(
			    blocks,
			    json_pack("{s:s, s:s, s:s}", "type", "thinking", "thinking", th, "signature",
			              wire_str(x, "signature") ? wire_str(x, "signature") : ""));
		else if (red)
			json_array_append_new(
			    blocks, json_pack("{s:s, s:s}", "type", "redacted_thinking", "data", red));
	}
	const json_t *content = json_object_get(msg, "content");
	struct strb text = { 0 };
	if (json_is_string(content)) {
		strb_add(&text, json_string_value(content), json_string_length(content));
	} else if (json_is_array(content)) {
		json_array_foreach (content, i, x) {
			const json_t *tv = json_object_get(x, "text");
			if (json_is_string(tv))
				strb_add(&text, json_string_value(tv), json_string_length(tv));
		}
	}
	const char *refusal = wire_str(msg, "refusal");
	if (text.n == 0 && refusal && *refusal)
		strb_add(&text, refusal, strlen(refusal));
	if (text.n)
		json_array_append_new(blocks,
		                      json_pack("{s:s, s:o}", "type", "text", "text", jstrn(text.p, text.n)));
	free(text.p);

	json_array_foreach (json_object_get(msg, "tool_calls"), i, x) {
		const json_t *fn = json_object_get(x, "function");
		const char *id = wire_str(x, "id"), *name = wire_str(fn, "name");
		char tid[48];
		if (!id || !*id)
			wire_random_id(tid, sizeof(tid), "toolu_");
		json_array_append_new(blocks,
		                      json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use", "id",
		                                id && *id ? id : tid, "name", name ? name : "", "input",
		                                client_tool_input(json_object_get(fn, "arguments"))));
	}

	const char *seq = wire_str(canon, "x_stop_sequence");
	const char *finish = wire_str(choice, "finish_reason");
	const char *sr = stop_reason_from_finish(finish, seq != NULL);
	json_object_set_new(r, "model", json_string(o && o->model ? o->model : ""));
	json_object_set_new(r, "stop_reason", json_string(sr));
	json_object_set_new(r, "stop_sequence",
	                    seq && strcmp(sr, "stop_sequence") == 0 ? json_string(seq) : json_null());

	const json_t *us = json_object_get(canon, "usage");
	int64_t p = wire_int(us, "prompt_tokens"), c = wire_int(us, "completion_tokens");
	int64_t cached = wire_int(json_object_get(us, "prompt_tokens_details"), "cached_tokens");
	if (p < 0)
		p = 0;
	if (c < 0)
		c = 0;
	if (cached > p)
		cached = p;
	json_t *u = json_pack("{s:I, s:I}", "input_tokens", (json_int_t)(p - (cached > 0 ? cached : 0)),
	                      "output_tokens", (json_int_t)c);
	if (cached >= 0)
		json_object_set_new(u, "cache_read_input_tokens", json_integer(cached));
	json_object_set_new(r, "usage", u);
	return r;
}

/* ------------------------------------------------------------------ */
/* errors                                                              */
/* ------------------------------------------------------------------ */

/* A short, printable description of a body that is not an error JSON;
 * never the whole body (it may be a huge HTML page). */
static void describe_body(int status, const char *body, size_t len, struct wire_error *out)
{
	size_t k = 0;
	while (k < len && (body[k] == ' ' || body[k] == '\t' || body[k] == '\r' || body[k] == '\n'))
		k++;
	if (k == len) {
		snprintf(out->message, sizeof(out->message),
		         "Anthropic provider answered HTTP %d with an empty body", status);
		return;
	}
	if (body[k] == '<') {
		snprintf(out->message, sizeof(out->message),
		         "Anthropic provider answered HTTP %d with an HTML page", status);
		return;
	}
	char snip[128];
	size_t o = 0;
	while (k < len && o + 4 < sizeof(snip)) {
		size_t n = utf8_seq_len((const unsigned char *)body + k, len - k);
		if (n == 0) {
			snip[o++] = '?';
			k++;
			continue;
		}
		if (o + n + 4 > sizeof(snip))
			break;
		if (n == 1 && ((unsigned char)body[k] < 0x20 || body[k] == 0x7f))
			snip[o++] = ' ';
		else {
			memcpy(snip + o, body + k, n);
			o += n;
		}
		k += n;
	}
	if (k < len) {
		memcpy(snip + o, "...", 3);
		o += 3;
	}
	snip[o] = '\0';
	snprintf(out->message, sizeof(out->message), "Anthropic provider answered HTTP %d: %s", status, snip);
}

static void anth_decode_error(int status, const char *body, size_t len, struct wire_error *out)
{
	memset(out, 0, sizeof(*out));
	json_t *j = body && len ? json_loadb(body, len, 0, NULL) : NULL;
	const json_t *e = json_object_get(j, "error");
	if (json_is_object(e)) {
		fill_error(e, status, out);
	} else {
		out->status = status;
		str_copy(out->type, sizeof(out->type), wire_error_type_for_status(status));
		describe_body(status, body ? body : "", body ? len : 0, out);
	}
	json_decref(j);
}

static json_t *anth_encode_error(const struct wire_error *e)
{
	const char *type = e->type[0] ? e->type : wire_error_type_for_status(e->status);
	return json_pack("{s:s, s:{s:s, s:o}}", "type", "error", "error", "type", type, "message",
	                 jstr(e->message));
}

/* ------------------------------------------------------------------ */
/* stream decoder: Anthropic SSE -> canonical events                   */
/* ------------------------------------------------------------------ */

/* Internal "this event is malformed" result of the sdec_* helpers; far
 * from the small positive values callbacks return to stop. */
#define SDEC_MALFORMED INT_MIN

struct wire_sdec {
	bool started, ended, failed;
	int64_t prompt, cached, completion; /* -1 unknown */
	json_int_t *tool_block;             /* owned: Anthropic block index of tool k */
	size_t ntools, cap;
	struct wire_error error; /* what the last ERROR event pointed to */
};

static struct wire_sdec *anth_sdec_new(void)
{
	struct wire_sdec *d = xcalloc(1, sizeof(*d));
	d->prompt = d->cached = d->completion = -1;
	return d;
}

static void anth_sdec_free(struct wire_sdec *d)
{
	if (!d)
		return;
	free(d->tool_block);
	free(d);
}

static void sdec_usage(const struct wire_sdec *d, struct wire_usage *u)
{
	wire_usage_init(u);
	u->prompt = d->prompt;
	u->cached = d->cached;
	u->completion = d->completion;
	if (d->prompt >= 0 && d->completion >= 0)
		u->total = d->prompt + d->completion;
}

static int sdec_fail(struct wire_sdec *d, int status, const char *type, const char *msg, cev_fn fn, void *arg)
{
	d->failed = true;
	d->error.status = status;
	str_copy(d->error.type, sizeof(d->error.type), type);
	str_copy(d->error.message, sizeof(d->error.message), msg);
	struct cev ev = { .type = CEV_ERROR, .error = &d->error };
	wire_usage_init(&ev.usage);
	return fn(&ev, arg);
}

static int sdec_start(struct wire_sdec *d, const char *id, const char *model, cev_fn fn, void *arg)
{
	d->started = true;
	struct cev ev = { .type = CEV_START, .id = id, .model = model };
	wire_usage_init(&ev.usage);
	ev.usage.prompt = d->prompt;
	ev.usage.cached = d->cached;
	return fn(&ev, arg);
}

/* Read message_start's usage (prompt = input + cache creation + cache read). */
static void sdec_take_prompt(struct wire_sdec *d, const json_t *us)
{
	int64_t in = wire_int(us, "input_tokens");
	if (in < 0)
		return;
	int64_t cc = wire_int(us, "cache_creation_input_tokens"),
	        cr = wire_int(us, "cache_read_input_tokens");
	d->prompt = in + (cc > 0 ? cc : 0) + (cr > 0 ? cr : 0);
	d->cached = cr > 0 ? cr : 0;
}

static int sdec_block_start(struct wire_sdec *d, const json_t *root, cev_fn fn, void *arg)
{
	const json_t *cb = json_object_get(root, "content_block");
	const char *t = wire_str(cb, "type");
	const json_t *idx = json_object_get(root, "index");
	if (!json_is_integer(idx) || !t)
		return SDEC_MALFORMED;
	if (strcmp(t, "text") == 0) {
		const json_t *tv = json_object_get(cb, "text");
		if (json_is_string(tv) && json_string_length(tv))
			return wire_emit(fn, arg, CEV_TEXT, -1, json_string_value(tv),
			                 json_string_length(tv));
	} else if (strcmp(t, "thinking") == 0) {
		const json_t *tv = json_object_get(cb, "thinking");
		const json_t *sv = json_object_get(cb, "signature");
		int rc = 0;
		if (json_is_string(tv) && json_string_length(tv))
			rc = wire_emit(fn, arg, CEV_THINKING, -1, json_string_value(tv),
			               json_string_length(tv));
		if (!rc && json_is_string(sv) && json_string_length(sv))
			rc = wire_emit(fn, arg, CEV_SIGNATURE, -1, json_string_value(sv),
			               json_string_length(sv));
		return rc;
	} else if (strcmp(t, "tool_use") == 0) {
		const char *id = wire_str(cb, "id"), *name = wire_str(cb, "name");
		if (!id || !name)
			return SDEC_MALFORMED;
		if (d->ntools >= MAX_STREAM_TOOLS)
			return SDEC_MALFORMED;
		if (d->ntools == d->cap) {
			d->cap = d->cap ? d->cap * 2 : 8;
			d->tool_block = xrealloc(d->tool_block, d->cap * sizeof(*d->tool_block));
		}
		int k = (int)d->ntools;
		d->tool_block[d->ntools++] = json_integer_value(idx);
		struct cev ev = { .type = CEV_TOOL_START, .index = k, .id = id, .name = name };
		wire_usage_init(&ev.usage);
		int rc = fn(&ev, arg);
		/* input normally starts as {} and arrives in deltas; a block
		 * that brings its input whole passes it on as one fragment */
		const json_t *input = json_object_get(cb, "input");
		if (!rc && json_is_object(input) && json_object_size(input)) {
			char *s = json_dumps(input, JSON_COMPACT);
			if (s)
				rc = wire_emit(fn, arg, CEV_TOOL_ARGS, k, s, strlen(s));
			free(s);
		}
		return rc;
	}
	/* redacted_thinking and server tool blocks have no event */
	return 0;
}

static int sdec_block_delta(struct wire_sdec *d, const json_t *root, cev_fn fn, void *arg)
{
	const json_t *delta = json_object_get(root, "delta");
	const char *t = wire_str(delta, "type");
	if (!t)
		return SDEC_MALFORMED;
	const json_t *v;
	if (strcmp(t, "text_delta") == 0) {
		v = json_object_get(delta, "text");
		if (json_is_string(v) && json_string_length(v))
			return wire_emit(fn, arg, CEV_TEXT, -1, json_string_value(v), json_string_length(v));
	} else if (strcmp(t, "thinking_delta") == 0) {
		v = json_object_get(delta, "thinking");
		if (json_is_string(v) && json_string_length(v))
			return wire_emit(fn, arg, CEV_THINKING, -1, json_string_value(v),
			                 json_string_length(v));
	} else if (strcmp(t, "signature_delta") == 0) {
		v = json_object_get(delta, "signature");
		if (json_is_string(v) && json_string_length(v))
			return wire_emit(fn, arg, CEV_SIGNATURE, -1, json_string_value(v),
			                 json_string_length(v));
	} else if (strcmp(t, "input_json_delta") == 0) {
		const json_t *idx = json_object_get(root, "index");
		if (!json_is_integer(idx))
			return SDEC_MALFORMED;
		json_int_t bi = json_integer_value(idx);
		for (size_t k = d->ntools; k-- > 0;) {
			if (d->tool_block[k] == bi) {
				v = json_object_get(delta, "partial_json");
				if (json_is_string(v) && json_string_length(v))
					return wire_emit(fn, arg, CEV_TOOL_ARGS, (int)k, json_string_value(v),
					                 json_string_length(v));
				return 0;
			}
		}
		return SDEC_MALFORMED; /* arguments for a block that is not a tool_use */
	}
	/* citations_delta and future delta types carry nothing canonical */
	return 0;
}

static int sdec_message_delta(struct wire_sdec *d, const json_t *root, cev_fn fn, void *arg)
{
	const json_t *delta = json_object_get(root, "delta");
	const json_t *us = json_object_get(root, "usage");
	int rc = 0;
	if (json_is_object(us)) {
		int64_t out = wire_int(us, "output_tokens");
		if (out >= 0)
			d->completion = out;
		if (d->prompt < 0) /* message_start's numbers win when it had them */
			sdec_take_prompt(d, us);
	}
	const char *sr = wire_str(delta, "stop_reason");
	if (sr) {
		const char *seq = wire_str(delta, "stop_sequence");
		struct cev ev = { .type = CEV_FINISH, .finish = finish_from_stop_reason(sr) };
		wire_usage_init(&ev.usage);
		if (seq) {
			ev.text = seq;
			ev.len = strlen(seq);
		}
		rc = fn(&ev, arg);
	}
	if (!rc && json_is_object(us)) {
		struct cev ev = { .type = CEV_USAGE };
		sdec_usage(d, &ev.usage);
		rc = fn(&ev, arg);
	}
	return rc;
}

/* Returns the callback's value, or SDEC_MALFORMED. */
static int sdec_dispatch(struct wire_sdec *d, const char *type, const json_t *root, cev_fn fn, void *arg)
{
	int rc = 0;
	if (strcmp(type, "ping") == 0)
		return 0;
	if (strcmp(type, "error") == 0) {
		const json_t *e = json_object_get(root, "error");
		d->failed = true;
		memset(&d->error, 0, sizeof(d->error));
		fill_error(e, status_for_error_type(wire_str(e, "type")), &d->error);
		struct cev ev = { .type = CEV_ERROR, .error = &d->error };
		wire_usage_init(&ev.usage);
		return fn(&ev, arg);
	}
	if (strcmp(type, "message_start") == 0) {
		const json_t *msg = json_object_get(root, "message");
		if (!json_is_object(msg))
			return SDEC_MALFORMED;
		if (d->started)
			return 0;
		sdec_take_prompt(d, json_object_get(msg, "usage"));
		return sdec_start(d, wire_str(msg, "id"), wire_str(msg, "model"), fn, arg);
	}
	bool content = strcmp(type, "content_block_start") == 0 || strcmp(type, "content_block_delta") == 0 ||
	               strcmp(type, "message_delta") == 0;
	/* content without message_start: a START the encoder needs anyway */
	if (content && !d->started && (rc = sdec_start(d, NULL, NULL, fn, arg)) != 0)
		return rc;
	if (strcmp(type, "content_block_start") == 0)
		return sdec_block_start(d, root, fn, arg);
	if (strcmp(type, "content_block_delta") == 0)
		return sdec_block_delta(d, root, fn, arg);
	if (strcmp(type, "message_delta") == 0)
		return sdec_message_delta(d, root, fn, arg);
	if (strcmp(type, "message_stop") == 0) {
		if (!d->started && (rc = sdec_start(d, NULL, NULL, fn, arg)) != 0)
			return rc;
		d->ended = true;
		return wire_emit(fn, arg, CEV_END, 0, NULL, 0);
	}
	/* content_block_stop and event types added later: nothing to say */
	return 0;
}

static int anth_sdec_event(struct wire_sdec *d, const char *event, size_t event_len, const char *data,
                           size_t data_len, cev_fn fn, void *arg)
{
	if (d->ended || d->failed)
		return 0;
	if (data_len == 6 && memcmp(data, "[DONE]", 6) == 0)
		return 0;
	json_t *root = json_loadb(data, data_len, 0, NULL);
	if (!json_is_object(root)) {
		json_decref(root);
		(void)sdec_fail(d, 502, "api_error", "malformed event in the Anthropic stream", fn, arg);
		return -1;
	}
	/* the data's own type is authoritative; the event: line is a hint */
	char type[48];
	const char *t = wire_str(root, "type");
	if (t)
		str_copy(type, sizeof(type), t);
	else
		snprintf(type, sizeof(type), "%.*s", (int)(event_len < 47 ? event_len : 47),
		         event ? event : "");
	int rc = sdec_dispatch(d, type, root, fn, arg);
	json_decref(root);
	if (rc == SDEC_MALFORMED) {
		char msg[96];
		snprintf(msg, sizeof(msg), "malformed %s event in the Anthropic stream", type);
		(void)sdec_fail(d, 502, "api_error", msg, fn, arg);
		return -1;
	}
	return rc;
}

static int anth_sdec_end(struct wire_sdec *d, cev_fn fn, void *arg)
{
	if (d->ended || d->failed)
		return 0;
	return sdec_fail(d, 502, "api_error", "stream ended early", fn, arg);
}

/* ------------------------------------------------------------------ */
/* stream encoder: canonical events -> Anthropic SSE                   */
/* ------------------------------------------------------------------ */

enum blk { BLK_NONE, BLK_TEXT, BLK_THINKING, BLK_TOOL };

struct wire_senc {
	char *model; /* owned */
	int64_t prompt_estimate;
	bool started, done, any_tool;
	int next;        /* index of the next content block */
	enum blk open;   /* kind of the open block (index next - 1) */
	int *tool_block; /* owned: block index of cev tool k, -1 none */
	size_t tool_cap;
	char finish[16];         /* "" until FINISH */
	char *stop_seq;          /* owned, NULL none */
	struct wire_usage usage; /* what the provider reported so far */
};

static struct wire_senc *anth_senc_new(const struct wire_opts *o)
{
	struct wire_senc *e = xcalloc(1, sizeof(*e));
	e->model = xstrdup(o && o->model ? o->model : "");
	e->prompt_estimate = o ? o->prompt_estimate : -1;
	wire_usage_init(&e->usage);
	return e;
}

static void anth_senc_free(struct wire_senc *e)
{
	if (!e)
		return;
	free(e->model);
	free(e->tool_block);
	free(e->stop_seq);
	free(e);
}

static void senc_emit(struct evbuffer *out, const char *event, json_t *data)
{
	wire_sse_json(out, event, data);
	json_decref(data);
}

static void senc_start(struct wire_senc *e, const char *id, struct evbuffer *out)
{
	char idbuf[48];
	if (!has_prefix(id, "msg_")) {
		wire_random_id(idbuf, sizeof(idbuf), "msg_");
		id = idbuf;
	}
	/* Clients (Claude Code) size their context from this number and
	 * reject a zero, so a guess beats nothing. */
	int64_t in = e->usage.prompt >= 0 ? e->usage.prompt - (e->usage.cached > 0 ? e->usage.cached : 0)
	                                  : (e->prompt_estimate >= 0 ? e->prompt_estimate : 0);
	if (in < 0)
		in = 0;
	json_t *u = json_pack("{s:I, s:i}", "input_tokens", (json_int_t)in, "output_tokens", 0);
	if (e->usage.prompt >= 0 && e->usage.cached >= 0)
		json_object_set_new(u, "cache_read_input_tokens", json_integer(e->usage.cached));
	senc_emit(out, "message_start",
	          json_pack("{s:s, s:{s:o, s:s, s:s, s:[], s:s, s:n, s:n, s:o}}", "type", "message_start",
	                    "message", "id", jstr(id), "type", "message", "role", "assistant", "content",
	                    "model", e->model, "stop_reason", "stop_sequence", "usage", u));
	e->started = true;
}

static void senc_close(struct wire_senc *e, struct evbuffer *out)
{
	if (e->open == BLK_NONE)
		return;
	senc_emit(out, "content_block_stop",
	          json_pack("{s:s, s:i}", "type", "content_block_stop", "index", e->next - 1));
	e->open = BLK_NONE;
}

/* Close the open block and start one described by cb (stolen). */
static int senc_open(struct wire_senc *e, enum blk kind, json_t *cb, struct evbuffer *out)
{
	senc_close(e, out);
	int idx = e->next++;
	senc_emit(
	    out, "content_block_start",
	    json_pack("{s:s, s:i, s:o}", "type", "content_block_start", "index", idx, "content_block", cb));
	e->open = kind;
	return idx;
}

static void senc_delta(struct evbuffer *out, int idx, const char *dtype, const char *key, const char *s,
                       size_t n)
{
	senc_emit(out, "content_block_delta",
	          json_pack("{s:s, s:i, s:{s:s, s:o}}", "type", "content_block_delta", "index", idx, "delta",
	                    "type", dtype, key, jstrn(s, n)));
}

/* The block index of cev tool k, -1 when it never started. */
static int senc_tool_block(const struct wire_senc *e, int k)
{
	return k >= 0 && (size_t)k < e->tool_cap ? e->tool_block[k] : -1;
}

static void senc_tool_start(struct wire_senc *e, int k, const char *id, const char *name,
                            struct evbuffer *out)
{
	if (k < 0 || k >= MAX_STREAM_TOOLS || senc_tool_block(e, k) >= 0)
		return;
	if ((size_t)k >= e->tool_cap) {
		size_t cap = e->tool_cap ? e->tool_cap : 8;
		while (cap <= (size_t)k)
			cap *= 2;
		e->tool_block = xrealloc(e->tool_block, cap * sizeof(*e->tool_block));
		for (size_t i = e->tool_cap; i < cap; i++)
			e->tool_block[i] = -1;
		e->tool_cap = cap;
	}
	char idbuf[48];
	if (!id || !*id) {
		wire_random_id(idbuf, sizeof(idbuf), "toolu_");
		id = idbuf;
	}
	e->tool_block[k] = senc_open(e, BLK_TOOL,
	                             json_pack("{s:s, s:o, s:o, s:{}}", "type", "tool_use", "id", jstr(id),
	                                       "name", jstr(name), "input"),
	                             out);
	e->any_tool = true;
}

static void senc_end(struct wire_senc *e, struct evbuffer *out)
{
	senc_close(e, out);
	bool seq = e->stop_seq != NULL && (e->finish[0] == '\0' || strcmp(e->finish, "stop") == 0);
	const char *sr =
	    e->finish[0] ? stop_reason_from_finish(e->finish, seq) : (e->any_tool ? "tool_use" : "end_turn");
	json_t *u = json_object();
	if (e->usage.prompt >= 0)
		json_object_set_new(
		    u, "input_tokens",
		    json_integer(e->usage.prompt - (e->usage.cached > 0 && e->usage.cached <= e->usage.prompt
		                                        ? e->usage.cached
		                                        : 0)));
	json_object_set_new(u, "output_tokens",
	                    json_integer(e->usage.completion >= 0 ? e->usage.completion : 0));
	if (e->usage.prompt >= 0 && e->usage.cached >= 0)
		json_object_set_new(u, "cache_read_input_tokens", json_integer(e->usage.cached));
	senc_emit(out, "message_delta",
	          json_pack("{s:s, s:{s:s, s:o}, s:o}", "type", "message_delta", "delta", "stop_reason", sr,
	                    "stop_sequence", seq ? jstr(e->stop_seq) : json_null(), "usage", u));
	senc_emit(out, "message_stop", json_pack("{s:s}", "type", "message_stop"));
}

static void anth_senc_event(struct wire_senc *e, const struct cev *ev, struct evbuffer *out)
{
	if (e->done)
		return;
	if (ev->type == CEV_ERROR) {
		const struct wire_error *er = ev->error;
		const char *type = er && er->type[0] ? er->type : "api_error";
		senc_emit(out, "error",
		          json_pack("{s:s, s:{s:o, s:o}}", "type", "error", "error", "type", jstr(type),
		                    "message", jstr(er && er->message[0] ? er->message : "upstream error")));
		e->done = true;
		return;
	}
	if (ev->type == CEV_START) {
		/* a START after content (message_start already written
		 * lazily) still brings its usage for message_delta */
		wire_usage_merge(&e->usage, &ev->usage);
		if (!e->started)
			senc_start(e, ev->id, out);
		return;
	}
	if (!e->started)
		senc_start(e, NULL, out);
	switch (ev->type) {
	case CEV_TEXT:
		if (ev->len == 0)
			break;
		if (e->open != BLK_TEXT)
			senc_open(e, BLK_TEXT, json_pack("{s:s, s:s}", "type", "text", "text", ""), out);
		senc_delta(out, e->next - 1, "text_delta", "text", ev->text, ev->len);
		break;
	case CEV_THINKING:
		if (ev->len == 0)
			break;
		if (e->open != BLK_THINKING)
			senc_open(e, BLK_THINKING,
			          json_pack("{s:s, s:s}", "type", "thinking", "thinking", ""), out);
		senc_delta(out, e->next - 1, "thinking_delta", "thinking", ev->text, ev->len);
		break;
	case CEV_SIGNATURE:
		/* Only a thinking block has a signature in this format; a
		 * Gemini thoughtSignature on text or a tool call is dropped. */
		if (ev->index < 0 && e->open == BLK_THINKING && ev->len)
			senc_delta(out, e->next - 1, "signature_delta", "signature", ev->text, ev->len);
		break;
	case CEV_TOOL_START:
		senc_tool_start(e, ev->index, ev->id, ev->name, out);
		break;
	case CEV_TOOL_ARGS: {
		if (ev->len == 0 || ev->index < 0)
			break;
		/* arguments before their tool's start still open the block */
		if (senc_tool_block(e, ev->index) < 0)
			senc_tool_start(e, ev->index, NULL, NULL, out);
		int bi = senc_tool_block(e, ev->index);
		/* A tool whose block was already closed gets its fragment at
		 * its own index: the SDKs accumulate by index, and dropping it
		 * would corrupt the arguments. */
		if (bi >= 0)
			senc_delta(out, bi, "input_json_delta", "partial_json", ev->text, ev->len);
		break;
	}
	case CEV_USAGE:
		wire_usage_merge(&e->usage, &ev->usage);
		break;
	case CEV_FINISH:
		str_copy(e->finish, sizeof(e->finish), ev->finish ? ev->finish : "stop");
		free(e->stop_seq);
		e->stop_seq = ev->text ? xstrndup(ev->text, ev->len) : NULL;
		break;
	case CEV_END:
		senc_end(e, out);
		e->done = true;
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------ */
/* upstream                                                            */
/* ------------------------------------------------------------------ */

/* base like https://api.anthropic.com, or one already ending in /v1
 * (common when the base is copied from an SDK setting): never /v1/v1. */
static char *anth_chat_url(const char *base_url, const char *model, bool stream)
{
	size_t n = strlen(base_url);
	while (n && base_url[n - 1] == '/')
		n--;
	bool v1 = n >= 3 && memcmp(base_url + n - 3, "/v1", 3) == 0;
	return wire_join_url(base_url, v1 ? "/messages" : "/v1/messages");
}

static size_t anth_auth_headers(const char *secret, char **h, size_t max)
{
	size_t n = 0;
	if (secret && *secret && n < max)
		h[n++] = wire_header("x-api-key", secret);
	if (n < max)
		h[n++] = wire_header("anthropic-version", ANTHROPIC_VERSION);
	return n;
}

const struct wire_format wire_anthropic = {
	.name = "anthropic",
	.decode_request = anth_decode_request,
	.encode_request = anth_encode_request,
	.decode_response = anth_decode_response,
	.encode_response = anth_encode_response,
	.decode_error = anth_decode_error,
	.encode_error = anth_encode_error,
	.sdec_new = anth_sdec_new,
	.sdec_event = anth_sdec_event,
	.sdec_end = anth_sdec_end,
	.sdec_free = anth_sdec_free,
	.senc_new = anth_senc_new,
	.senc_event = anth_senc_event,
	.senc_free = anth_senc_free,
	.usage = anth_usage,
	.chat_url = anth_chat_url,
	.auth_headers = anth_auth_headers,
};
