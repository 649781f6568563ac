/*
 * gemini.c — the Gemini generateContent wire format (REST v1beta), as a
 * client format (callers POST /v1beta/models/{model}:generateContent or
 * :streamGenerateContent) and as a provider format (Fusion calls a
 * Gemini API).  See format.h for the table and the canonical form.
 *
 * The model and the choice to stream live in the URL, not the body:
 * decode_request sets neither `model` nor `stream` (the caller does) and
 * encode_request writes neither.
 *
 * Field names: Google's JSON parser accepts both the lowerCamelCase and
 * the snake_case spelling of every field (its own curl examples use
 * `system_instruction`, `inline_data`, `mime_type`), so decoding reads
 * both; encoding always writes lowerCamelCase.
 *
 * Translation rules (docs/TRANSLATION.md repeats them):
 *
 *  client request → canonical (decode_request)
 *   - systemInstruction: text parts joined with "\n" → one system
 *     message (a bare string is accepted too; other parts → 400).
 *   - contents[]: role user / function (legacy) / missing → user side,
 *     model → assistant; other roles → 400.  Empty parts → 400.
 *   - user parts: text → text part (empty text and thought parts
 *     dropped); inlineData{mimeType image/…, data} → image_url with a
 *     data: URI; fileData{fileUri, mimeType image/… or absent} →
 *     image_url with that URI; non-image media → 400.
 *     functionResponse{name, response, id?} → one role:"tool" message
 *     each (content: compact JSON of response, x_name: name), emitted
 *     before the turn's text/images (which become one user message after
 *     them).  tool_call_id: the part's id, else the id of the earliest
 *     unanswered functionCall of that name in the latest model turn; none
 *     → 400.  functionResponse.parts (multimodal results) are dropped.
 *   - model parts: text concatenated → content; thought:true text →
 *     x_thinking [{thinking, signature?}] (all thought parts joined into
 *     one entry); functionCall{name, args, id?} → tool_calls (id: the
 *     part's id else a generated "call_…"; arguments: compact JSON of args);
 *     thoughtSignature → x_thought_signature on that tool call, on the
 *     message for a text part, on the x_thinking entry for a thought part.
 *     Media or functionResponse in a model turn → 400.
 *   - generationConfig: temperature, topP → top_p, topK → x_top_k,
 *     maxOutputTokens → max_tokens, stopSequences → stop,
 *     presencePenalty / frequencyPenalty / seed → the OpenAI fields,
 *     candidateCount > 1 → 400, responseMimeType application/json →
 *     response_format json_object, or json_schema {name:"response",
 *     schema} with responseJsonSchema (as is) or responseSchema
 *     (converted: lower-case types, nullable → type [t,"null"], int64
 *     strings → numbers, propertyOrdering/example dropped); other MIME
 *     types → 400; responseModalities other than TEXT → 400;
 *     thinkingConfig → x_thinking_config (keys in camelCase).  Other
 *     generationConfig fields (logprobs, mediaResolution, …) are dropped.
 *   - tools[].functionDeclarations[] → tools (parametersJsonSchema as is,
 *     else parameters converted as above).  Any other tool kind
 *     (googleSearch, codeExecution, urlContext, …) → 400: it is a server
 *     capability another provider does not have.
 *   - toolConfig.functionCallingConfig.mode: AUTO / VALIDATED → "auto",
 *     NONE → "none", ANY → "required", ANY with exactly one
 *     allowedFunctionNames → {type:"function", function:{name}} (several
 *     names: "required", the restriction is dropped).
 *   - safetySettings, cachedContent, labels: dropped.
 *
 *  canonical → provider request (encode_request)
 *   - system / developer messages (wherever they are) →
 *     systemInstruction.parts[{text}].
 *   - user / assistant / tool messages → contents with role user / model /
 *     user; consecutive turns of the same role are merged (Gemini wants
 *     alternation); a turn left without parts is skipped; no turns → 400.
 *   - text parts (empty ones dropped); image_url / file data: URI (base64)
 *     → inlineData; input_audio → inlineData audio/{format}; an http(s)
 *     image URL → 400 (Gemini's fileData takes only Files-API/GCS URIs).
 *   - tool_calls → functionCall{name, args} (arguments parsed; not a JSON
 *     object → 400; "" → {}) plus thoughtSignature from
 *     x_thought_signature; a message-level x_thought_signature goes on the
 *     message's last text part.  x_thinking is dropped.  Call ids are not
 *     sent: Gemini pairs calls and responses by name and order.
 *   - tool messages → functionResponse{name, response}: name from x_name,
 *     else from the earlier assistant tool call with that id (none →
 *     400); response: the content if it parses as a JSON object, else
 *     {"result": parsed value or the string} ({"error": …} when
 *     x_is_error).
 *   - generationConfig: max_tokens / max_completion_tokens →
 *     maxOutputTokens, temperature, top_p → topP, x_top_k → topK, stop →
 *     stopSequences, presence/frequency_penalty, seed, response_format
 *     (json_object → responseMimeType; json_schema → responseMimeType +
 *     responseJsonSchema, the documented JSON Schema field, without
 *     "$schema"), x_thinking_config → thinkingConfig, else Anthropic
 *     x_thinking enabled → {thinkingBudget, includeThoughts:true}.  n > 1
 *     → 400.  parallel_tool_calls, reasoning_effort, logprobs, user, … are
 *     dropped.
 *   - tools → [{functionDeclarations:[{name, description, parameters}]}]
 *     with parameters cut down to Gemini's Schema (an OpenAPI subset):
 *     type upper-cased (type arrays → nullable / anyOf), local $ref
 *     inlined (recursion → 400), allOf merged, oneOf → anyOf, const →
 *     enum, non-string enums dropped, format kept only where Gemini takes
 *     it, empty properties dropped (Gemini rejects an OBJECT with empty
 *     properties; a function with no parameters gets none), and every
 *     other keyword ($schema, additionalProperties, examples, …) dropped.
 *   - tool_choice auto / none / required / {function:{name}} →
 *     functionCallingConfig AUTO / NONE / ANY / ANY + allowedFunctionNames.
 *
 *  provider answer → canonical (decode_response): candidates[0] only;
 *   text joined; thought parts → x_thinking; functionCall → tool_calls
 *   (id: the part's id, else "call_<responseId>_<n>"); other part kinds
 *   (inline images, executableCode) are dropped.  finishReason STOP →
 *   "stop" ("tool_calls" when a functionCall is present), MAX_TOKENS →
 *   "length", SAFETY / RECITATION / BLOCKLIST / PROHIBITED_CONTENT / SPII /
 *   IMAGE_* → "content_filter", anything else (OTHER, LANGUAGE,
 *   MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, …) → "stop".  No
 *   candidates with promptFeedback.blockReason → "content_filter" and
 *   empty content; no candidates otherwise → 502.  usage: prompt =
 *   promptTokenCount, cached = cachedContentTokenCount, completion =
 *   candidatesTokenCount + thoughtsTokenCount, reasoning =
 *   thoughtsTokenCount.
 *
 *  canonical → client answer (encode_response): the reverse; functionCall
 *   parts carry the canonical id so the client can echo it in
 *   functionResponse.id; invalid arguments become args {}; finish stop /
 *   tool_calls → STOP, length → MAX_TOKENS, content_filter → SAFETY;
 *   candidatesTokenCount = completion - reasoning.
 *
 *  streams: see the stream decoder and encoder sections below.
 */
#include "providers/format.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "providers/wire_util.h"
#include "util/alloc.h"
#include "util/str.h"

#define SCHEMA_MAX_DEPTH 64      /* nesting of a schema, $ref expansions included */
#define SCHEMA_MAX_NODES 20000   /* schema objects produced by one conversion */
#define TOOL_ARGS_MAX (8u << 20) /* bytes of one streamed tool call's arguments */

/* ------------------------------------------------------------------ */
/* small helpers                                                      */
/* ------------------------------------------------------------------ */

/* obj[camel], else obj[snake]: Google accepts both spellings. */
static const json_t *gget(const json_t *o, const char *camel, const char *snake)
{
	const json_t *v = json_object_get(o, camel);
	if (!v && snake)
		v = json_object_get(o, snake);
	return v;
}

/* A JSON value that is absent or null counts as not given. */
static bool given(const json_t *v)
{
	return v && !json_is_null(v);
}

/* s copied into dst (size > 0), cut at a UTF-8 character boundary: for
 * names quoted inside error messages, which must stay valid UTF-8. */
static void clip(char *dst, size_t size, const char *s, size_t n)
{
	if (n >= size) {
		n = size - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
}

#define CLIP(buf, s) clip((buf), sizeof(buf), (s), strlen(s))

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid.
 * As strict as jansson: no overlongs, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xBF;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		need = 1;
	else if (c >= 0xE0 && c <= 0xEF) {
		need = 2;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else
		return 0;
	if (n < need + 1 || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i <= need; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	return need + 1;
}

/* A JSON string of s/n; invalid UTF-8 becomes U+FFFD instead of failing
 * (jansson refuses invalid UTF-8, and an event must not vanish). */
static json_t *jstr(const char *s, size_t n)
{
	json_t *j = json_stringn(s, n);
	if (j)
		return j;
	char *buf = xmalloc(n * 3 + 1);
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		size_t k = utf8_len((const unsigned char *)s + i, n - i);
		if (k) {
			memcpy(buf + o, s + i, k);
			o += k;
			i += k;
		} else {
			static const char repl[3] = { '\xEF', '\xBF', '\xBD' }; /* U+FFFD */
			memcpy(buf + o, repl, sizeof(repl));
			o += sizeof(repl);
			i++;
		}
	}
	j = json_stringn(buf, o);
	free(buf);
	return j ? j : json_string("");
}

/* Compact JSON text of any value (malloc'd). */
static char *dump(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	return s ? s : xstrdup("null");
}

/* v as an integer: a JSON integer, an integral real, or a decimal string
 * (proto3 JSON writes int64 fields as strings). */
static bool get_int(const json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return true;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d >= -9e15 && d <= 9e15 && d == (double)(int64_t)d) {
			*out = (int64_t)d;
			return true;
		}
		return false;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		if (!*s || strlen(s) > 18)
			return false;
		long long x = strtoll(s, &end, 10);
		if (*end)
			return false;
		*out = x;
		return true;
	}
	return false;
}

/* A call id "call_<rid>_<n>" (rid: a response id, sanitised to what
 * every format accepts in an id). */
static void call_id(char *buf, size_t size, const char *rid, int n)
{
	char clean[48];
	size_t k = 0;
	for (const char *p = rid; p && *p && k < sizeof(clean) - 1; p++) {
		char c = *p;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		    c == '-')
			clean[k++] = c;
	}
	clean[k] = '\0';
	if (!k)
		wire_random_id(clean, 25, "");
	snprintf(buf, size, "call_%s_%d", clean, n);
}

/* ------------------------------------------------------------------ */
/* schemas                                                            */
/* ------------------------------------------------------------------ */

struct sconv {
	const json_t *root; /* for local $ref */
	size_t nodes;
	struct wire_err *err;
	const char *where; /* "tools[0]", "response_format", … */
};

static const char *const int_keys[][2] = {
	{ "maxItems", "max_items" },           { "minItems", "min_items" },
	{ "minLength", "min_length" },         { "maxLength", "max_length" },
	{ "minProperties", "min_properties" }, { "maxProperties", "max_properties" },
};

static const char *const copy_keys[][2] = {
	{ "format", "format" },   { "title", "title" },       { "description", "description" },
	{ "enum", "enum" },       { "required", "required" }, { "pattern", "pattern" },
	{ "default", "default" }, { "minimum", "minimum" },   { "maximum", "maximum" },
};

/* Gemini Schema (OpenAPI subset) → JSON Schema for the canonical form. */
static json_t *gschema_to_json(const json_t *s, int depth, struct sconv *c)
{
	if (depth > SCHEMA_MAX_DEPTH || ++c->nodes > SCHEMA_MAX_NODES) {
		wire_err_set(c->err, 400, "%s: schema is nested too deeply or too large", c->where);
		return NULL;
	}
	if (!json_is_object(s)) {
		wire_err_set(c->err, 400, "%s: a schema must be a JSON object", c->where);
		return NULL;
	}
	json_t *out = json_object();
	const json_t *v;
	for (size_t i = 0; i < sizeof(copy_keys) / sizeof(copy_keys[0]); i++)
		if ((v = gget(s, copy_keys[i][0], copy_keys[i][1])))
			json_object_set_new(out, copy_keys[i][0], json_deep_copy(v));
	for (size_t i = 0; i < sizeof(int_keys) / sizeof(int_keys[0]); i++) {
		int64_t n;
		if ((v = gget(s, int_keys[i][0], int_keys[i][1])) && get_int(v, &n))
			json_object_set_new(out, int_keys[i][0], json_integer(n));
	}
	if ((v = json_object_get(s, "type")) && json_is_string(v)) {
		char t[32];
		CLIP(t, json_string_value(v));
		for (char *p = t; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		if (strcmp(t, "type_unspecified") != 0) {
			if (json_is_true(json_object_get(s, "nullable")) && strcmp(t, "null") != 0)
				json_object_set_new(out, "type", json_pack("[ss]", t, "null"));
			else
				json_object_set_new(out, "type", json_string(t));
		}
	}
	if ((v = json_object_get(s, "properties"))) {
		if (!json_is_object(v))
			goto bad;
		json_t *props = json_object();
		json_object_set_new(out, "properties", props);
		const char *k;
		const json_t *sub;
		json_object_foreach ((json_t *)v, k, sub) {
			json_t *x = gschema_to_json(sub, depth + 1, c);
			if (!x)
				goto fail;
			json_object_set_new(props, k, x);
		}
	}
	if ((v = json_object_get(s, "items"))) {
		json_t *x = gschema_to_json(v, depth + 1, c);
		if (!x)
			goto fail;
		json_object_set_new(out, "items", x);
	}
	if ((v = gget(s, "anyOf", "any_of"))) {
		if (!json_is_array(v))
			goto bad;
		json_t *arr = json_array();
		json_object_set_new(out, "anyOf", arr);
		size_t i;
		const json_t *sub;
		json_array_foreach (v, i, sub) {
			json_t *x = gschema_to_json(sub, depth + 1, c);
			if (!x)
				goto fail;
			json_array_append_new(arr, x);
		}
	}
	return out;
bad:
	wire_err_set(c->err, 400, "%s: malformed schema", c->where);
fail:
	json_decref(out);
	return NULL;
}

static json_t *jschema_to_gemini(const json_t *s, int depth, struct sconv *c);

/* The target of a local "$ref" ("#/$defs/X" or "#/definitions/X"). */
static const json_t *resolve_ref(const struct sconv *c, const char *ref)
{
	const char *name = NULL;
	const json_t *defs = NULL;
	if (strncmp(ref, "#/$defs/", 8) == 0) {
		name = ref + 8;
		defs = json_object_get(c->root, "$defs");
	} else if (strncmp(ref, "#/definitions/", 14) == 0) {
		name = ref + 14;
		defs = json_object_get(c->root, "definitions");
	} else if (strcmp(ref, "#") == 0)
		return c->root;
	if (!name || strchr(name, '/') || strchr(name, '~'))
		return NULL;
	return json_object_get(defs, name);
}

static bool gemini_type_name(const char *t, char *out, size_t size)
{
	static const char *const names[][2] = { { "string", "STRING" },   { "number", "NUMBER" },
		                                { "integer", "INTEGER" }, { "boolean", "BOOLEAN" },
		                                { "array", "ARRAY" },     { "object", "OBJECT" } };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(t, names[i][0]) == 0) {
			str_copy(out, size, names[i][1]);
			return true;
		}
	return false;
}

/* Copy the keys of src not yet in dst (allOf merging). */
static void merge_missing(json_t *dst, json_t *src)
{
	const char *k;
	json_t *v;
	json_object_foreach (src, k, v) {
		json_t *have = json_object_get(dst, k);
		if (!have)
			json_object_set(dst, k, v);
		else if (json_is_object(have) && json_is_object(v) && strcmp(k, "properties") == 0)
			json_object_update_missing(have, v);
		else if (json_is_array(have) && json_is_array(v) && strcmp(k, "required") == 0)
			json_array_extend(have, v);
	}
}

/* The schemas of an anyOf / oneOf array converted into out["anyOf"]. */
static bool conv_any_of(json_t *out, const json_t *arr, int depth, struct sconv *c)
{
	if (!json_is_array(arr)) {
		wire_err_set(c->err, 400, "%s: anyOf/oneOf must be an array", c->where);
		return false;
	}
	json_t *dst = json_object_get(out, "anyOf");
	if (!dst) {
		dst = json_array();
		json_object_set_new(out, "anyOf", dst);
	}
	size_t i;
	const json_t *sub;
	json_array_foreach (arr, i, sub) {
		json_t *x = jschema_to_gemini(sub, depth + 1, c);
		if (!x)
			return false;
		json_array_append_new(dst, x);
	}
	return true;
}

/* The type keyword: a name, or an array of names ("null" → nullable;
 * several others → anyOf of bare types). */
static bool conv_type(json_t *out, const json_t *t, struct sconv *c)
{
	char g[16];
	if (json_is_string(t)) {
		if (strcmp(json_string_value(t), "null") == 0)
			json_object_set_new(out, "nullable", json_true());
		else if (gemini_type_name(json_string_value(t), g, sizeof(g)))
			json_object_set_new(out, "type", json_string(g));
		return true;
	}
	if (!json_is_array(t)) {
		wire_err_set(c->err, 400, "%s: \"type\" must be a string or an array", c->where);
		return false;
	}
	json_t *kinds = json_array();
	size_t i;
	const json_t *e;
	json_array_foreach (t, i, e) {
		if (!json_is_string(e))
			continue;
		if (strcmp(json_string_value(e), "null") == 0)
			json_object_set_new(out, "nullable", json_true());
		else if (gemini_type_name(json_string_value(e), g, sizeof(g)))
			json_array_append_new(kinds, json_string(g));
	}
	if (json_array_size(kinds) == 1)
		json_object_set(out, "type", json_array_get(kinds, 0));
	else if (json_array_size(kinds) > 1) {
		json_t *any = json_array();
		json_array_foreach (kinds, i, e) {
			json_array_append_new(any, json_pack("{sO}", "type", e));
		}
		json_object_set_new(out, "anyOf", any);
	}
	json_decref(kinds);
	return true;
}

/* Whether Gemini takes this format for this (Gemini) type. */
static bool format_ok(const char *type, const char *fmt)
{
	if (!type)
		return false;
	if (strcmp(type, "STRING") == 0)
		return strcmp(fmt, "enum") == 0 || strcmp(fmt, "date-time") == 0;
	if (strcmp(type, "NUMBER") == 0 || strcmp(type, "INTEGER") == 0)
		return strcmp(fmt, "float") == 0 || strcmp(fmt, "double") == 0 || strcmp(fmt, "int32") == 0 ||
		       strcmp(fmt, "int64") == 0;
	return false;
}

/* JSON Schema → Gemini's Schema subset (see the file comment). */
static json_t *jschema_to_gemini(const json_t *s, int depth, struct sconv *c)
{
	if (depth > SCHEMA_MAX_DEPTH || ++c->nodes > SCHEMA_MAX_NODES) {
		wire_err_set(c->err, 400,
		             "%s: schema is nested too deeply or too large for Gemini (recursive $ref?)",
		             c->where);
		return NULL;
	}
	if (json_is_true(s))
		return json_object();
	if (!json_is_object(s)) {
		wire_err_set(c->err, 400, "%s: a schema must be a JSON object", c->where);
		return NULL;
	}
	json_t *out = json_object();
	const json_t *v;

	if ((v = json_object_get(s, "$ref"))) {
		const json_t *target = json_is_string(v) ? resolve_ref(c, json_string_value(v)) : NULL;
		if (!target) {
			wire_err_set(c->err, 400,
			             "%s: only local \"#/$defs/...\" schema references are supported",
			             c->where);
			goto fail;
		}
		json_t *x = jschema_to_gemini(target, depth + 1, c);
		if (!x)
			goto fail;
		json_object_update(out, x);
		json_decref(x);
	}
	if ((v = json_object_get(s, "type")) && !conv_type(out, v, c))
		goto fail;
	if ((v = json_object_get(s, "nullable")) && json_is_boolean(v))
		json_object_set(out, "nullable", (json_t *)v);
	const char *type = wire_str(out, "type");
	if ((v = json_object_get(s, "description")) && json_is_string(v))
		json_object_set(out, "description", (json_t *)v);
	if ((v = json_object_get(s, "title")) && json_is_string(v))
		json_object_set(out, "title", (json_t *)v);
	if ((v = json_object_get(s, "format")) && json_is_string(v) && format_ok(type, json_string_value(v)))
		json_object_set(out, "format", (json_t *)v);
	if ((v = json_object_get(s, "pattern")) && json_is_string(v))
		json_object_set(out, "pattern", (json_t *)v);
	if ((v = json_object_get(s, "minimum")) && json_is_number(v))
		json_object_set(out, "minimum", (json_t *)v);
	if ((v = json_object_get(s, "maximum")) && json_is_number(v))
		json_object_set(out, "maximum", (json_t *)v);
	for (size_t i = 0; i < sizeof(int_keys) / sizeof(int_keys[0]); i++)
		if ((v = json_object_get(s, int_keys[i][0])) && json_is_integer(v))
			json_object_set(out, int_keys[i][0], (json_t *)v);
	if ((v = json_object_get(s, "default")))
		json_object_set_new(out, "default", json_deep_copy(v));
	if ((v = json_object_get(s, "example")))
		json_object_set_new(out, "example", json_deep_copy(v));
	if ((v = json_object_get(s, "propertyOrdering")) && json_is_array(v))
		json_object_set_new(out, "propertyOrdering", json_deep_copy(v));

	/* Gemini enums are string-only. */
	const json_t *en = json_object_get(s, "enum");
	json_t *one = NULL;
	if (!en && (v = json_object_get(s, "const")) && json_is_string(v))
		en = one = json_pack("[O]", v);
	if (json_is_array(en) && json_array_size(en) > 0) {
		bool strings = true;
		size_t i;
		const json_t *e;
		json_array_foreach (en, i, e) {
			strings = strings && json_is_string(e);
		}
		if (strings) {
			json_object_set_new(out, "enum", json_deep_copy(en));
			if (!type)
				json_object_set_new(out, "type", json_string("STRING"));
		}
	}
	json_decref(one);

	if ((v = json_object_get(s, "properties"))) {
		if (!json_is_object(v)) {
			wire_err_set(c->err, 400, "%s: \"properties\" must be an object", c->where);
			goto fail;
		}
		json_t *props = json_object();
		const char *k;
		const json_t *sub;
		json_object_foreach ((json_t *)v, k, sub) {
			json_t *x = jschema_to_gemini(sub, depth + 1, c);
			if (!x) {
				json_decref(props);
				goto fail;
			}
			json_object_set_new(props, k, x);
		}
		wire_set_nonempty(out, "properties", props);
	}
	if ((v = json_object_get(s, "required")) && json_is_array(v)) {
		const json_t *props = json_object_get(out, "properties");
		json_t *req = json_array();
		size_t i;
		const json_t *e;
		json_array_foreach (v, i, e) {
			if (json_is_string(e) && json_object_get(props, json_string_value(e)))
				json_array_append(req, (json_t *)e);
		}
		wire_set_nonempty(out, "required", req);
	}
	if ((v = json_object_get(s, "items")) && json_is_object(v)) {
		json_t *x = jschema_to_gemini(v, depth + 1, c);
		if (!x)
			goto fail;
		json_object_set_new(out, "items", x);
	}
	if ((v = json_object_get(s, "anyOf")) && !conv_any_of(out, v, depth, c))
		goto fail;
	if ((v = json_object_get(s, "oneOf")) && !conv_any_of(out, v, depth, c))
		goto fail;
	if ((v = json_object_get(s, "allOf"))) {
		if (!json_is_array(v)) {
			wire_err_set(c->err, 400, "%s: allOf must be an array", c->where);
			goto fail;
		}
		size_t i;
		const json_t *sub;
		json_array_foreach (v, i, sub) {
			json_t *x = jschema_to_gemini(sub, depth + 1, c);
			if (!x)
				goto fail;
			merge_missing(out, x);
			json_decref(x);
		}
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* decode_request: Gemini client request → canonical                  */
/* ------------------------------------------------------------------ */

/* Function calls of the latest model turn not answered yet, so that a
 * functionResponse without an id finds the id generated for its call. */
struct pcall {
	char *name, *id;
};
struct callq {
	struct pcall *v;
	size_t n, cap;
};

static void callq_clear(struct callq *q)
{
	for (size_t i = 0; i < q->n; i++) {
		free(q->v[i].name);
		free(q->v[i].id);
	}
	q->n = 0;
}

static void callq_push(struct callq *q, const char *name, const char *id)
{
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 8;
		q->v = xrealloc(q->v, q->cap * sizeof(*q->v));
	}
	q->v[q->n].name = xstrdup(name);
	q->v[q->n].id = xstrdup(id);
	q->n++;
}

/* Remove entry i; returns its id (malloc'd). */
static char *callq_take(struct callq *q, size_t i)
{
	char *id = q->v[i].id;
	free(q->v[i].name);
	memmove(&q->v[i], &q->v[i + 1], (q->n - i - 1) * sizeof(*q->v));
	q->n--;
	return id;
}

struct dreq {
	json_t *messages; /* borrowed from canon */
	struct callq q;
	int ncalls; /* calls given a generated id so far */
	char rid[25];
	struct wire_err *err;
};

/* An image MIME type (the only media the canonical form carries). */
static bool is_image(const char *mime)
{
	return strncasecmp(mime, "image/", 6) == 0;
}

static json_t *data_uri_part(const char *mime, const char *data)
{
	size_t len = strlen(mime) + strlen(data) + 16;
	char *url = xmalloc(len);
	snprintf(url, len, "data:%s;base64,%s", mime, data);
	json_t *p = json_pack("{ss s{ss}}", "type", "image_url", "image_url", "url", url);
	free(url);
	return p;
}

/* The system message from systemInstruction. */
static int decode_system(const json_t *si, struct dreq *r)
{
	if (json_is_string(si)) {
		if (json_string_length(si))
			json_array_append_new(r->messages,
			                      json_pack("{ss sO}", "role", "system", "content", si));
		return 0;
	}
	const json_t *parts = json_object_get(si, "parts");
	if (!json_is_object(si) || (given(parts) && !json_is_array(parts))) {
		wire_err_set(r->err, 400, "systemInstruction must be a Content object with a parts array");
		return -1;
	}
	struct evbuffer *b = evbuffer_new();
	size_t i;
	const json_t *p;
	json_array_foreach (parts, i, p) {
		const json_t *t = json_object_get(p, "text");
		if (!json_is_string(t)) {
			evbuffer_free(b);
			wire_err_set(r->err, 400,
			             "systemInstruction.parts[%zu]: only text parts are supported", i);
			return -1;
		}
		if (i)
			evbuffer_add(b, "\n", 1);
		evbuffer_add(b, json_string_value(t), json_string_length(t));
	}
	size_t n = evbuffer_get_length(b);
	if (n)
		json_array_append_new(r->messages, json_pack("{ss so}", "role", "system", "content",
		                                             jstr((const char *)evbuffer_pullup(b, -1), n)));
	evbuffer_free(b);
	return 0;
}

/* A functionResponse part → a tool message. */
static int decode_fresp(const json_t *fr, size_t ci, size_t pj, struct dreq *r)
{
	const char *name = wire_str(fr, "name");
	const json_t *resp = json_object_get(fr, "response");
	const json_t *idv = json_object_get(fr, "id");
	if (!json_is_object(fr) || !name || !*name) {
		wire_err_set(r->err, 400, "contents[%zu].parts[%zu].functionResponse needs a name", ci, pj);
		return -1;
	}
	if (given(resp) && !json_is_object(resp)) {
		wire_err_set(r->err, 400,
		             "contents[%zu].parts[%zu].functionResponse.response must be an object", ci, pj);
		return -1;
	}
	if (given(idv) && !json_is_string(idv)) {
		wire_err_set(r->err, 400, "contents[%zu].parts[%zu].functionResponse.id must be a string", ci,
		             pj);
		return -1;
	}
	char *id = NULL;
	if (given(idv) && json_string_length(idv)) {
		const char *want = json_string_value(idv);
		for (size_t i = 0; i < r->q.n; i++)
			if (strcmp(r->q.v[i].id, want) == 0) {
				free(callq_take(&r->q, i));
				break;
			}
		id = xstrdup(want);
	} else {
		for (size_t i = 0; i < r->q.n && !id; i++)
			if (strcmp(r->q.v[i].name, name) == 0)
				id = callq_take(&r->q, i);
		if (!id) {
			char nm[65];
			CLIP(nm, name);
			wire_err_set(
			    r->err, 400,
			    "contents[%zu].parts[%zu]: functionResponse \"%s\" answers no functionCall of "
			    "the previous model turn",
			    ci, pj, nm);
			return -1;
		}
	}
	json_t *obj = given(resp) ? NULL : json_object();
	char *content = dump(given(resp) ? resp : obj);
	json_decref(obj);
	json_array_append_new(r->messages, json_pack("{ss ss ss ss}", "role", "tool", "tool_call_id", id,
	                                             "content", content, "x_name", name));
	free(content);
	free(id);
	return 0;
}

/* Media (inlineData / fileData) → an image_url part, NULL + err if not an image. */
static json_t *decode_media(const json_t *part, size_t ci, size_t pj, struct wire_err *err)
{
	const json_t *in = gget(part, "inlineData", "inline_data");
	if (in) {
		const char *mime = json_string_value(gget(in, "mimeType", "mime_type"));
		const char *data = wire_str(in, "data");
		if (!mime || !data) {
			wire_err_set(err, 400, "contents[%zu].parts[%zu].inlineData needs mimeType and data",
			             ci, pj);
			return NULL;
		}
		if (!is_image(mime)) {
			char m[65];
			CLIP(m, mime);
			wire_err_set(
			    err, 400,
			    "contents[%zu].parts[%zu]: inlineData of type %s cannot be translated (only "
			    "images)",
			    ci, pj, m);
			return NULL;
		}
		return data_uri_part(mime, data);
	}
	const json_t *fd = gget(part, "fileData", "file_data");
	const char *uri = json_string_value(gget(fd, "fileUri", "file_uri"));
	const json_t *mime = gget(fd, "mimeType", "mime_type");
	if (!uri || !*uri) {
		wire_err_set(err, 400, "contents[%zu].parts[%zu].fileData needs a fileUri", ci, pj);
		return NULL;
	}
	if (given(mime) && (!json_is_string(mime) || !is_image(json_string_value(mime)))) {
		wire_err_set(err, 400, "contents[%zu].parts[%zu]: only image fileData can be translated", ci,
		             pj);
		return NULL;
	}
	return json_pack("{ss s{ss}}", "type", "image_url", "image_url", "url", uri);
}

static int decode_user_turn(const json_t *parts, size_t ci, struct dreq *r)
{
	json_t *content = json_array();
	size_t j;
	const json_t *p;
	json_array_foreach (parts, j, p) {
		const json_t *t, *x;
		if (!json_is_object(p)) {
			wire_err_set(r->err, 400, "contents[%zu].parts[%zu] must be an object", ci, j);
			goto fail;
		}
		if ((t = json_object_get(p, "text"))) {
			if (!json_is_string(t)) {
				wire_err_set(r->err, 400, "contents[%zu].parts[%zu].text must be a string",
				             ci, j);
				goto fail;
			}
			if (json_string_length(t) && !json_is_true(json_object_get(p, "thought")))
				json_array_append_new(content,
				                      json_pack("{ss sO}", "type", "text", "text", t));
		} else if (gget(p, "inlineData", "inline_data") || gget(p, "fileData", "file_data")) {
			json_t *m = decode_media(p, ci, j, r->err);
			if (!m)
				goto fail;
			json_array_append_new(content, m);
		} else if ((x = gget(p, "functionResponse", "function_response"))) {
			if (decode_fresp(x, ci, j, r) < 0)
				goto fail;
		} else if (gget(p, "functionCall", "function_call")) {
			wire_err_set(r->err, 400,
			             "contents[%zu].parts[%zu]: functionCall belongs in a model turn", ci, j);
			goto fail;
		} else {
			wire_err_set(
			    r->err, 400,
			    "contents[%zu].parts[%zu]: unsupported part (text, inlineData, fileData, "
			    "functionCall and functionResponse can be translated)",
			    ci, j);
			goto fail;
		}
	}
	if (json_array_size(content) == 1 && wire_str(json_array_get(content, 0), "text"))
		json_array_append_new(r->messages,
		                      json_pack("{ss sO}", "role", "user", "content",
		                                json_object_get(json_array_get(content, 0), "text")));
	else if (json_array_size(content))
		json_array_append_new(r->messages, json_pack("{ss sO}", "role", "user", "content", content));
	json_decref(content);
	return 0;
fail:
	json_decref(content);
	return -1;
}

static int decode_model_turn(const json_t *parts, size_t ci, struct dreq *r)
{
	struct evbuffer *text = evbuffer_new(), *think = evbuffer_new();
	json_t *calls = json_array();
	json_t *msg = json_pack("{ss}", "role", "assistant");
	const char *think_sig = NULL;
	bool any_thought = false;
	int rc = -1;
	callq_clear(&r->q); /* calls of older turns can no longer be answered */
	size_t j;
	const json_t *p;
	json_array_foreach (parts, j, p) {
		const json_t *t, *fc;
		if (!json_is_object(p)) {
			wire_err_set(r->err, 400, "contents[%zu].parts[%zu] must be an object", ci, j);
			goto out;
		}
		const json_t *sigv = gget(p, "thoughtSignature", "thought_signature");
		if (given(sigv) && !json_is_string(sigv)) {
			wire_err_set(r->err, 400,
			             "contents[%zu].parts[%zu].thoughtSignature must be a string", ci, j);
			goto out;
		}
		const char *sig = json_string_value(sigv);
		if ((t = json_object_get(p, "text"))) {
			if (!json_is_string(t)) {
				wire_err_set(r->err, 400, "contents[%zu].parts[%zu].text must be a string",
				             ci, j);
				goto out;
			}
			if (json_is_true(json_object_get(p, "thought"))) {
				any_thought = true;
				evbuffer_add(think, json_string_value(t), json_string_length(t));
				if (sig)
					think_sig = sig;
			} else {
				evbuffer_add(text, json_string_value(t), json_string_length(t));
				if (sig)
					json_object_set_new(msg, "x_thought_signature", json_string(sig));
			}
		} else if ((fc = gget(p, "functionCall", "function_call"))) {
			const char *name = wire_str(fc, "name");
			const json_t *args = json_object_get(fc, "args");
			const json_t *idv = json_object_get(fc, "id");
			if (!name || !*name) {
				wire_err_set(r->err, 400,
				             "contents[%zu].parts[%zu].functionCall needs a name", ci, j);
				goto out;
			}
			if (given(args) && !json_is_object(args)) {
				wire_err_set(r->err, 400,
				             "contents[%zu].parts[%zu].functionCall.args must be an object",
				             ci, j);
				goto out;
			}
			if (given(idv) && !json_is_string(idv)) {
				wire_err_set(r->err, 400,
				             "contents[%zu].parts[%zu].functionCall.id must be a string", ci,
				             j);
				goto out;
			}
			char idbuf[96];
			const char *id = json_string_value(idv);
			if (!id || !*id) {
				call_id(idbuf, sizeof(idbuf), r->rid, r->ncalls++);
				id = idbuf;
			}
			json_t *empty = given(args) ? NULL : json_object();
			char *a = dump(given(args) ? args : empty);
			json_decref(empty);
			json_t *call = json_pack("{ss ss s{ss ss}}", "id", id, "type", "function", "function",
			                         "name", name, "arguments", a);
			free(a);
			if (sig)
				json_object_set_new(call, "x_thought_signature", json_string(sig));
			json_array_append_new(calls, call);
			callq_push(&r->q, name, id);
		} else if (sig && json_object_size(p) == 1) {
			/* a bare signature part: keep it on the message */
			json_object_set_new(msg, "x_thought_signature", json_string(sig));
		} else if (gget(p, "functionResponse", "function_response")) {
			wire_err_set(r->err, 400,
			             "contents[%zu].parts[%zu]: functionResponse belongs in a user turn", ci,
			             j);
			goto out;
		} else {
			wire_err_set(
			    r->err, 400,
			    "contents[%zu].parts[%zu]: only text and functionCall parts can be translated "
			    "in a model turn",
			    ci, j);
			goto out;
		}
	}
	size_t n = evbuffer_get_length(text);
	if (n || !json_array_size(calls))
		json_object_set_new(msg, "content", jstr((const char *)evbuffer_pullup(text, -1), n));
	else
		json_object_set_new(msg, "content", json_null());
	if (json_array_size(calls))
		json_object_set(msg, "tool_calls", calls);
	size_t tn = evbuffer_get_length(think);
	if (any_thought && (tn || think_sig)) {
		json_t *e = json_pack("{so}", "thinking", jstr((const char *)evbuffer_pullup(think, -1), tn));
		if (think_sig)
			json_object_set_new(e, "signature", json_string(think_sig));
		json_object_set_new(msg, "x_thinking", json_pack("[o]", e));
	}
	json_array_append(r->messages, msg);
	rc = 0;
out:
	json_decref(msg);
	json_decref(calls);
	evbuffer_free(text);
	evbuffer_free(think);
	return rc;
}

static int decode_number(const json_t *gc, const char *camel, const char *snake, json_t *canon,
                         const char *key, struct wire_err *err)
{
	const json_t *v = gget(gc, camel, snake);
	if (!given(v))
		return 0;
	if (!json_is_number(v)) {
		wire_err_set(err, 400, "generationConfig.%s must be a number", camel);
		return -1;
	}
	json_object_set_new(canon, key, json_real(json_number_value(v)));
	return 0;
}

static int decode_count(const json_t *gc, const char *camel, const char *snake, json_t *canon,
                        const char *key, struct wire_err *err)
{
	const json_t *v = gget(gc, camel, snake);
	int64_t n;
	if (!given(v))
		return 0;
	if (!get_int(v, &n) || n < 0) {
		wire_err_set(err, 400, "generationConfig.%s must be a non-negative integer", camel);
		return -1;
	}
	json_object_set_new(canon, key, json_integer(n));
	return 0;
}

/* thinkingConfig with its known keys in camelCase (other providers' encoders read them). */
static json_t *norm_thinking(const json_t *tc)
{
	static const char *const keys[][2] = { { "thinkingBudget", "thinking_budget" },
		                               { "includeThoughts", "include_thoughts" },
		                               { "thinkingLevel", "thinking_level" } };
	json_t *out = json_deep_copy(tc);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(out, keys[i][1]);
		if (v) {
			if (!json_object_get(out, keys[i][0]))
				json_object_set(out, keys[i][0], v);
			json_object_del(out, keys[i][1]);
		}
	}
	return out;
}

static int decode_gen_config(const json_t *gc, json_t *canon, struct wire_err *err)
{
	const json_t *v;
	int64_t n;
	if (!json_is_object(gc)) {
		wire_err_set(err, 400, "generationConfig must be an object");
		return -1;
	}
	if (decode_number(gc, "temperature", NULL, canon, "temperature", err) < 0 ||
	    decode_number(gc, "topP", "top_p", canon, "top_p", err) < 0 ||
	    decode_number(gc, "presencePenalty", "presence_penalty", canon, "presence_penalty", err) < 0 ||
	    decode_number(gc, "frequencyPenalty", "frequency_penalty", canon, "frequency_penalty", err) < 0 ||
	    decode_count(gc, "topK", "top_k", canon, "x_top_k", err) < 0 ||
	    decode_count(gc, "maxOutputTokens", "max_output_tokens", canon, "max_tokens", err) < 0)
		return -1;
	if (given(v = json_object_get(gc, "seed"))) {
		if (!get_int(v, &n)) {
			wire_err_set(err, 400, "generationConfig.seed must be an integer");
			return -1;
		}
		json_object_set_new(canon, "seed", json_integer(n));
	}
	if (given(v = gget(gc, "stopSequences", "stop_sequences"))) {
		size_t i;
		const json_t *s;
		bool ok = json_is_array(v);
		json_array_foreach (v, i, s) {
			ok = ok && json_is_string(s);
		}
		if (!ok) {
			wire_err_set(err, 400, "generationConfig.stopSequences must be an array of strings");
			return -1;
		}
		if (json_array_size(v))
			json_object_set_new(canon, "stop", json_deep_copy(v));
	}
	if (given(v = gget(gc, "candidateCount", "candidate_count"))) {
		if (!get_int(v, &n) || n < 0) {
			wire_err_set(err, 400,
			             "generationConfig.candidateCount must be a non-negative integer");
			return -1;
		}
		if (n > 1) {
			wire_err_set(err, 400,
			             "generationConfig.candidateCount > 1 is not supported by this gateway");
			return -1;
		}
	}
	if (given(v = gget(gc, "responseModalities", "response_modalities"))) {
		size_t i;
		const json_t *m;
		bool ok = json_is_array(v);
		json_array_foreach (v, i, m) {
			ok = ok && json_is_string(m) && strcasecmp(json_string_value(m), "TEXT") == 0;
		}
		if (!ok) {
			wire_err_set(
			    err, 400,
			    "generationConfig.responseModalities other than TEXT cannot be translated");
			return -1;
		}
	}
	bool json_mode = false;
	if (given(v = gget(gc, "responseMimeType", "response_mime_type"))) {
		if (!json_is_string(v)) {
			wire_err_set(err, 400, "generationConfig.responseMimeType must be a string");
			return -1;
		}
		if (strcasecmp(json_string_value(v), "application/json") == 0)
			json_mode = true;
		else if (strcasecmp(json_string_value(v), "text/plain") != 0) {
			wire_err_set(
			    err, 400,
			    "generationConfig.responseMimeType: only text/plain and application/json can be "
			    "translated");
			return -1;
		}
	}
	const json_t *js = gget(gc, "responseJsonSchema", "response_json_schema");
	const json_t *gs = gget(gc, "responseSchema", "response_schema");
	if (given(js) || given(gs)) {
		if (!json_mode) {
			wire_err_set(
			    err, 400,
			    "generationConfig.responseSchema needs responseMimeType application/json");
			return -1;
		}
		json_t *schema;
		if (given(js)) {
			if (!json_is_object(js)) {
				wire_err_set(err, 400,
				             "generationConfig.responseJsonSchema must be an object");
				return -1;
			}
			schema = json_deep_copy(js);
		} else {
			struct sconv c = { .err = err, .where = "generationConfig.responseSchema" };
			if (!(schema = gschema_to_json(gs, 0, &c)))
				return -1;
		}
		json_object_set_new(canon, "response_format",
		                    json_pack("{ss s{ss so}}", "type", "json_schema", "json_schema", "name",
		                              "response", "schema", schema));
	} else if (json_mode)
		json_object_set_new(canon, "response_format", json_pack("{ss}", "type", "json_object"));
	if (given(v = gget(gc, "thinkingConfig", "thinking_config"))) {
		if (!json_is_object(v)) {
			wire_err_set(err, 400, "generationConfig.thinkingConfig must be an object");
			return -1;
		}
		json_object_set_new(canon, "x_thinking_config", norm_thinking(v));
	}
	return 0;
}

static int decode_tools(const json_t *tools, json_t *canon, struct wire_err *err)
{
	if (!json_is_array(tools)) {
		wire_err_set(err, 400, "tools must be an array");
		return -1;
	}
	json_t *out = json_array();
	size_t i;
	const json_t *t;
	json_array_foreach (tools, i, t) {
		if (!json_is_object(t)) {
			wire_err_set(err, 400, "tools[%zu] must be an object", i);
			goto fail;
		}
		const char *k;
		const json_t *fds = NULL, *x;
		json_object_foreach ((json_t *)t, k, x) {
			if (strcmp(k, "functionDeclarations") == 0 || strcmp(k, "function_declarations") == 0)
				fds = x;
			else if (given(x)) {
				char kn[48];
				CLIP(kn, k);
				wire_err_set(err, 400,
				             "tools[%zu].%s cannot be translated: only functionDeclarations "
				             "can be sent "
				             "to another provider format",
				             i, kn);
				goto fail;
			}
		}
		if (!given(fds))
			continue;
		if (!json_is_array(fds)) {
			wire_err_set(err, 400, "tools[%zu].functionDeclarations must be an array", i);
			goto fail;
		}
		size_t j;
		const json_t *fd;
		json_array_foreach (fds, j, fd) {
			const char *name = wire_str(fd, "name");
			const json_t *desc = json_object_get(fd, "description");
			const json_t *pj = gget(fd, "parametersJsonSchema", "parameters_json_schema");
			const json_t *pg = json_object_get(fd, "parameters");
			if (!json_is_object(fd) || !name || !*name) {
				wire_err_set(err, 400, "tools[%zu].functionDeclarations[%zu] needs a name", i,
				             j);
				goto fail;
			}
			if (given(desc) && !json_is_string(desc)) {
				wire_err_set(
				    err, 400,
				    "tools[%zu].functionDeclarations[%zu].description must be a string", i,
				    j);
				goto fail;
			}
			json_t *fn = json_pack("{ss}", "name", name);
			if (given(desc))
				json_object_set(fn, "description", (json_t *)desc);
			json_t *params = NULL;
			if (given(pj)) {
				if (!json_is_object(pj)) {
					json_decref(fn);
					wire_err_set(err, 400,
					             "tools[%zu].functionDeclarations[%zu]."
					             "parametersJsonSchema must be "
					             "an object",
					             i, j);
					goto fail;
				}
				params = json_deep_copy(pj);
			} else if (given(pg)) {
				char where[96];
				snprintf(where, sizeof(where),
				         "tools[%zu].functionDeclarations[%zu].parameters", i, j);
				struct sconv c = { .err = err, .where = where };
				if (!(params = gschema_to_json(pg, 0, &c))) {
					json_decref(fn);
					goto fail;
				}
			}
			if (params)
				json_object_set_new(fn, "parameters", params);
			json_array_append_new(out, json_pack("{ss so}", "type", "function", "function", fn));
		}
	}
	wire_set_nonempty(canon, "tools", out);
	return 0;
fail:
	json_decref(out);
	return -1;
}

static int decode_tool_config(const json_t *tc, json_t *canon, struct wire_err *err)
{
	if (!json_is_object(tc)) {
		wire_err_set(err, 400, "toolConfig must be an object");
		return -1;
	}
	const json_t *fcc = gget(tc, "functionCallingConfig", "function_calling_config");
	if (!given(fcc))
		return 0;
	const json_t *modev = json_object_get(fcc, "mode");
	const json_t *names = gget(fcc, "allowedFunctionNames", "allowed_function_names");
	if (!json_is_object(fcc) || (given(modev) && !json_is_string(modev)) ||
	    (given(names) && !json_is_array(names))) {
		wire_err_set(err, 400, "toolConfig.functionCallingConfig is malformed");
		return -1;
	}
	const char *mode = json_string_value(modev);
	if (!mode || strcasecmp(mode, "MODE_UNSPECIFIED") == 0)
		return 0;
	if (strcasecmp(mode, "AUTO") == 0 || strcasecmp(mode, "VALIDATED") == 0)
		json_object_set_new(canon, "tool_choice", json_string("auto"));
	else if (strcasecmp(mode, "NONE") == 0)
		json_object_set_new(canon, "tool_choice", json_string("none"));
	else if (strcasecmp(mode, "ANY") == 0) {
		const char *one =
		    json_array_size(names) == 1 ? json_string_value(json_array_get(names, 0)) : NULL;
		if (one)
			json_object_set_new(
			    canon, "tool_choice",
			    json_pack("{ss s{ss}}", "type", "function", "function", "name", one));
		else
			json_object_set_new(canon, "tool_choice", json_string("required"));
	} else {
		wire_err_set(err, 400, "toolConfig.functionCallingConfig.mode must be AUTO, ANY or NONE");
		return -1;
	}
	return 0;
}

static json_t *gemini_decode_request(const json_t *body, struct wire_err *err)
{
	struct dreq r = { .err = err };
	json_t *canon = NULL;
	const json_t *v;
	if (!json_is_object(body)) {
		wire_err_set(err, 400, "request body must be a JSON object");
		return NULL;
	}
	canon = json_object();
	r.messages = json_array();
	json_object_set_new(canon, "messages", r.messages);
	wire_random_id(r.rid, sizeof(r.rid), "");

	if (given(v = gget(body, "systemInstruction", "system_instruction")) && decode_system(v, &r) < 0)
		goto fail;
	const json_t *contents = json_object_get(body, "contents");
	if (!json_is_array(contents) || json_array_size(contents) == 0) {
		wire_err_set(err, 400, "contents must be a non-empty array");
		goto fail;
	}
	size_t i;
	const json_t *c;
	json_array_foreach (contents, i, c) {
		if (!json_is_object(c)) {
			wire_err_set(err, 400, "contents[%zu] must be an object", i);
			goto fail;
		}
		const json_t *rolev = json_object_get(c, "role");
		const json_t *parts = json_object_get(c, "parts");
		if (given(rolev) && !json_is_string(rolev)) {
			wire_err_set(err, 400, "contents[%zu].role must be a string", i);
			goto fail;
		}
		if (!json_is_array(parts) || json_array_size(parts) == 0) {
			wire_err_set(err, 400, "contents[%zu].parts must be a non-empty array", i);
			goto fail;
		}
		const char *role = json_string_value(rolev);
		int rc;
		if (!role || !*role || strcmp(role, "user") == 0 || strcmp(role, "function") == 0)
			rc = decode_user_turn(parts, i, &r);
		else if (strcmp(role, "model") == 0)
			rc = decode_model_turn(parts, i, &r);
		else {
			wire_err_set(err, 400, "contents[%zu].role must be \"user\" or \"model\"", i);
			goto fail;
		}
		if (rc < 0)
			goto fail;
	}
	if (given(v = gget(body, "generationConfig", "generation_config")) &&
	    decode_gen_config(v, canon, err) < 0)
		goto fail;
	if (given(v = json_object_get(body, "tools")) && decode_tools(v, canon, err) < 0)
		goto fail;
	if (given(v = gget(body, "toolConfig", "tool_config")) && decode_tool_config(v, canon, err) < 0)
		goto fail;
	callq_clear(&r.q);
	free(r.q.v);
	return canon;
fail:
	callq_clear(&r.q);
	free(r.q.v);
	json_decref(canon);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* encode_request: canonical → Gemini provider body                   */
/* ------------------------------------------------------------------ */

struct ereq {
	json_t *contents;  /* borrowed from body */
	json_t *cur_parts; /* parts of the last turn */
	const char *cur_role;
	json_t *sys_parts;  /* systemInstruction parts (owned) */
	json_t *call_names; /* tool_call id → function name (owned) */
	struct wire_err *err;
};

/* The parts array of the current turn of role, starting a turn if needed. */
static json_t *turn(struct ereq *q, const char *role)
{
	if (q->cur_role && strcmp(q->cur_role, role) == 0)
		return q->cur_parts;
	q->cur_parts = json_array();
	json_array_append_new(q->contents, json_pack("{ss sO}", "role", role, "parts", q->cur_parts));
	json_decref(q->cur_parts); /* the contents array holds it */
	q->cur_role = role;
	return q->cur_parts;
}

/* "data:<mime>;base64,<data>" → inlineData part; NULL if not that shape. */
static json_t *inline_from_data_uri(const char *url)
{
	if (strncasecmp(url, "data:", 5) != 0)
		return NULL;
	const char *mime = url + 5;
	const char *b64 = strstr(mime, ";base64,");
	if (!b64)
		return NULL;
	size_t mlen = strcspn(mime, ";,");
	if (mlen == 0)
		return NULL;
	json_t *m = json_stringn(mime, mlen);
	if (!m)
		return NULL;
	return json_pack("{s{so ss}}", "inlineData", "mimeType", m, "data", b64 + 8);
}

/* Text of a canonical content (string or parts); the parts may only be text. */
static int content_text(const json_t *content, struct evbuffer *b, const char *what, struct wire_err *err)
{
	if (!given(content))
		return 0;
	if (json_is_string(content)) {
		evbuffer_add(b, json_string_value(content), json_string_length(content));
		return 0;
	}
	if (!json_is_array(content)) {
		wire_err_set(err, 400, "%s content must be a string or an array of parts", what);
		return -1;
	}
	size_t i;
	const json_t *p;
	json_array_foreach (content, i, p) {
		const json_t *t = json_object_get(p, "text");
		if (!json_is_string(t)) {
			wire_err_set(err, 400, "%s content may only hold text parts for Gemini", what);
			return -1;
		}
		evbuffer_add(b, json_string_value(t), json_string_length(t));
	}
	return 0;
}

static void add_text(json_t *parts, const char *s, size_t n)
{
	if (n)
		json_array_append_new(parts, json_pack("{so}", "text", jstr(s, n)));
}

/* One user content part → Gemini part(s) appended to parts. */
static int encode_user_part(const json_t *p, size_t mi, json_t *parts, struct wire_err *err)
{
	const char *type = wire_str(p, "type");
	if (!type) {
		wire_err_set(err, 400, "messages[%zu]: every content part needs a type", mi);
		return -1;
	}
	if (strcmp(type, "text") == 0) {
		const json_t *t = json_object_get(p, "text");
		if (!json_is_string(t)) {
			wire_err_set(err, 400, "messages[%zu]: text part without text", mi);
			return -1;
		}
		add_text(parts, json_string_value(t), json_string_length(t));
		return 0;
	}
	const char *url = NULL;
	if (strcmp(type, "image_url") == 0) {
		const json_t *iu = json_object_get(p, "image_url");
		url = json_is_string(iu) ? json_string_value(iu) : wire_str(iu, "url");
	} else if (strcmp(type, "file") == 0) {
		url = wire_str(json_object_get(p, "file"), "file_data");
		if (!url) {
			wire_err_set(err, 400,
			             "messages[%zu]: only files sent inline as file_data can go to Gemini",
			             mi);
			return -1;
		}
	} else if (strcmp(type, "input_audio") == 0) {
		const json_t *a = json_object_get(p, "input_audio");
		const char *data = wire_str(a, "data"), *fmt = wire_str(a, "format");
		if (!data || !fmt || strlen(fmt) > 16) {
			wire_err_set(err, 400, "messages[%zu]: input_audio needs data and format", mi);
			return -1;
		}
		char mime[32];
		snprintf(mime, sizeof(mime), "audio/%s", fmt);
		json_array_append_new(parts,
		                      json_pack("{s{ss ss}}", "inlineData", "mimeType", mime, "data", data));
		return 0;
	} else {
		char tn[32];
		CLIP(tn, type);
		wire_err_set(err, 400, "messages[%zu]: content part type \"%s\" cannot be sent to Gemini", mi,
		             tn);
		return -1;
	}
	if (!url) {
		wire_err_set(err, 400, "messages[%zu]: image_url part without a url", mi);
		return -1;
	}
	json_t *in = inline_from_data_uri(url);
	if (in) {
		json_array_append_new(parts, in);
		return 0;
	}
	if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0)
		wire_err_set(
		    err, 400,
		    "messages[%zu]: remote image URLs cannot be sent to a Gemini provider yet; send the "
		    "image inline as a data: URI",
		    mi);
	else
		wire_err_set(err, 400, "messages[%zu]: image URL must be a base64 data: URI", mi);
	return -1;
}

static int encode_user(const json_t *m, size_t mi, struct ereq *q)
{
	const json_t *content = json_object_get(m, "content");
	if (json_is_string(content)) {
		if (json_string_length(content))
			add_text(turn(q, "user"), json_string_value(content), json_string_length(content));
		return 0;
	}
	if (!json_is_array(content)) {
		wire_err_set(q->err, 400, "messages[%zu]: user content must be a string or an array of parts",
		             mi);
		return -1;
	}
	json_t *parts = json_array();
	size_t i;
	const json_t *p;
	json_array_foreach (content, i, p) {
		if (encode_user_part(p, mi, parts, q->err) < 0) {
			json_decref(parts);
			return -1;
		}
	}
	if (json_array_size(parts))
		json_array_extend(turn(q, "user"), parts);
	json_decref(parts);
	return 0;
}

static int encode_assistant(const json_t *m, size_t mi, struct ereq *q)
{
	struct evbuffer *b = evbuffer_new();
	json_t *parts = json_array();
	int rc = -1;
	const json_t *content = json_object_get(m, "content");
	if (json_is_array(content)) {
		/* refusal parts carry their text in "refusal" */
		size_t i;
		const json_t *p;
		json_array_foreach (content, i, p) {
			const char *t = wire_str(p, "text");
			if (!t)
				t = wire_str(p, "refusal");
			if (!t) {
				wire_err_set(q->err, 400,
				             "messages[%zu]: assistant content may only hold text parts", mi);
				goto out;
			}
			evbuffer_add(b, t, strlen(t));
		}
	} else if (content_text(content, b, "assistant", q->err) < 0)
		goto out;
	size_t n = evbuffer_get_length(b);
	add_text(parts, (const char *)evbuffer_pullup(b, -1), n);
	const char *msig = wire_str(m, "x_thought_signature");
	if (msig && n)
		json_object_set_new(json_array_get(parts, 0), "thoughtSignature", json_string(msig));

	const json_t *calls = json_object_get(m, "tool_calls");
	if (given(calls) && !json_is_array(calls)) {
		wire_err_set(q->err, 400, "messages[%zu].tool_calls must be an array", mi);
		goto out;
	}
	size_t i;
	const json_t *tc;
	json_array_foreach (calls, i, tc) {
		const json_t *fn = json_object_get(tc, "function");
		const char *name = wire_str(fn, "name");
		const char *id = wire_str(tc, "id");
		const json_t *argv = json_object_get(fn, "arguments");
		if (!name || !*name) {
			wire_err_set(q->err, 400, "messages[%zu].tool_calls[%zu] needs a function name", mi,
			             i);
			goto out;
		}
		json_t *args;
		if (!given(argv) || (json_is_string(argv) && json_string_length(argv) == 0))
			args = json_object();
		else if (json_is_object(argv))
			args = json_deep_copy(argv);
		else if (json_is_string(argv))
			args = json_loadb(json_string_value(argv), json_string_length(argv), 0, NULL);
		else
			args = NULL;
		if (!json_is_object(args)) {
			json_decref(args);
			wire_err_set(q->err, 400,
			             "messages[%zu].tool_calls[%zu].function.arguments is not a JSON object",
			             mi, i);
			goto out;
		}
		json_t *part = json_pack("{s{ss so}}", "functionCall", "name", name, "args", args);
		const char *sig = wire_str(tc, "x_thought_signature");
		if (sig)
			json_object_set_new(part, "thoughtSignature", json_string(sig));
		json_array_append_new(parts, part);
		if (id)
			json_object_set_new(q->call_names, id, json_string(name));
	}
	if (json_array_size(parts))
		json_array_extend(turn(q, "model"), parts);
	rc = 0;
out:
	json_decref(parts);
	evbuffer_free(b);
	return rc;
}

static int encode_tool(const json_t *m, size_t mi, struct ereq *q)
{
	const char *id = wire_str(m, "tool_call_id");
	const char *name = wire_str(m, "x_name");
	if (!name && id)
		name = wire_str(q->call_names, id);
	if (!name) {
		char idc[65];
		CLIP(idc, id ? id : "");
		wire_err_set(q->err, 400, "messages[%zu]: tool message answers unknown tool_call_id \"%s\"",
		             mi, idc);
		return -1;
	}
	struct evbuffer *b = evbuffer_new();
	if (content_text(json_object_get(m, "content"), b, "tool", q->err) < 0) {
		evbuffer_free(b);
		return -1;
	}
	size_t n = evbuffer_get_length(b);
	const char *s = (const char *)evbuffer_pullup(b, -1);
	json_t *parsed = n ? json_loadb(s, n, JSON_DECODE_ANY, NULL) : NULL;
	json_t *resp;
	if (json_is_object(parsed))
		resp = json_incref(parsed);
	else
		resp = json_pack("{so}", json_is_true(json_object_get(m, "x_is_error")) ? "error" : "result",
		                 parsed ? json_incref(parsed) : jstr(s ? s : "", n));
	json_decref(parsed);
	evbuffer_free(b);
	json_array_append_new(turn(q, "user"),
	                      json_pack("{s{ss so}}", "functionResponse", "name", name, "response", resp));
	return 0;
}

static int encode_gen_config(const json_t *canon, json_t *body, struct wire_err *err)
{
	json_t *gc = json_object();
	const json_t *v;
	int64_t n;
	v = json_object_get(canon, "max_completion_tokens");
	if (!given(v))
		v = json_object_get(canon, "max_tokens");
	if (given(v)) {
		if (!get_int(v, &n) || n < 0) {
			wire_err_set(err, 400, "max_tokens must be a non-negative integer");
			goto fail;
		}
		json_object_set_new(gc, "maxOutputTokens", json_integer(n));
	}
	static const char *const nums[][2] = { { "temperature", "temperature" },
		                               { "top_p", "topP" },
		                               { "presence_penalty", "presencePenalty" },
		                               { "frequency_penalty", "frequencyPenalty" } };
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		if (!given(v = json_object_get(canon, nums[i][0])))
			continue;
		if (!json_is_number(v)) {
			wire_err_set(err, 400, "%s must be a number", nums[i][0]);
			goto fail;
		}
		json_object_set_new(gc, nums[i][1], json_real(json_number_value(v)));
	}
	if (given(v = json_object_get(canon, "x_top_k"))) {
		if (!get_int(v, &n) || n < 0) {
			wire_err_set(err, 400, "top_k must be a non-negative integer");
			goto fail;
		}
		json_object_set_new(gc, "topK", json_integer(n));
	}
	if (given(v = json_object_get(canon, "seed"))) {
		if (!get_int(v, &n)) {
			wire_err_set(err, 400, "seed must be an integer");
			goto fail;
		}
		json_object_set_new(gc, "seed", json_integer(n));
	}
	if (given(v = json_object_get(canon, "stop"))) {
		json_t *stops = json_array();
		json_object_set_new(gc, "stopSequences", stops);
		if (json_is_string(v))
			json_array_append(stops, (json_t *)v);
		else if (json_is_array(v)) {
			size_t i;
			const json_t *s;
			json_array_foreach (v, i, s) {
				if (!json_is_string(s)) {
					wire_err_set(err, 400,
					             "stop must be a string or an array of strings");
					goto fail;
				}
				json_array_append(stops, (json_t *)s);
			}
		} else {
			wire_err_set(err, 400, "stop must be a string or an array of strings");
			goto fail;
		}
		if (!json_array_size(stops))
			json_object_del(gc, "stopSequences");
	}
	if (given(v = json_object_get(canon, "n"))) {
		if (!get_int(v, &n) || n < 1) {
			wire_err_set(err, 400, "n must be a positive integer");
			goto fail;
		}
		if (n > 1) {
			wire_err_set(err, 400, "n > 1 is not supported for Gemini providers");
			goto fail;
		}
	}
	if (given(v = json_object_get(canon, "response_format"))) {
		const char *type = wire_str(v, "type");
		if (!type) {
			wire_err_set(err, 400, "response_format needs a type");
			goto fail;
		}
		if (strcmp(type, "json_object") == 0)
			json_object_set_new(gc, "responseMimeType", json_string("application/json"));
		else if (strcmp(type, "json_schema") == 0) {
			const json_t *schema = json_object_get(json_object_get(v, "json_schema"), "schema");
			json_object_set_new(gc, "responseMimeType", json_string("application/json"));
			if (given(schema)) {
				if (!json_is_object(schema)) {
					wire_err_set(err, 400,
					             "response_format.json_schema.schema must be an object");
					goto fail;
				}
				json_t *copy = json_deep_copy(schema);
				json_object_del(copy, "$schema");
				json_object_set_new(gc, "responseJsonSchema", copy);
			}
		} else if (strcmp(type, "text") != 0) {
			wire_err_set(err, 400,
			             "response_format type must be text, json_object or json_schema");
			goto fail;
		}
	}
	const json_t *th = json_object_get(canon, "x_thinking");
	if (given(v = json_object_get(canon, "x_thinking_config"))) {
		if (!json_is_object(v)) {
			wire_err_set(err, 400, "x_thinking_config must be an object");
			goto fail;
		}
		json_object_set_new(gc, "thinkingConfig", json_deep_copy(v));
	} else if (json_is_object(th) && wire_str(th, "type") &&
	           strcmp(wire_str(th, "type"), "disabled") != 0) {
		json_t *tc = json_pack("{sb}", "includeThoughts", 1);
		int64_t budget = wire_int(th, "budget_tokens");
		if (budget >= 0)
			json_object_set_new(tc, "thinkingBudget", json_integer(budget));
		json_object_set_new(gc, "thinkingConfig", tc);
	}
	wire_set_nonempty(body, "generationConfig", gc);
	return 0;
fail:
	json_decref(gc);
	return -1;
}

static int encode_tools(const json_t *canon, json_t *body, struct wire_err *err)
{
	const json_t *tools = json_object_get(canon, "tools");
	if (!given(tools))
		return 0;
	if (!json_is_array(tools)) {
		wire_err_set(err, 400, "tools must be an array");
		return -1;
	}
	json_t *decls = json_array();
	size_t i;
	const json_t *t;
	json_array_foreach (tools, i, t) {
		const char *type = wire_str(t, "type");
		const json_t *fn = json_object_get(t, "function");
		const char *name = wire_str(fn, "name");
		if (!type || strcmp(type, "function") != 0) {
			wire_err_set(err, 400, "tools[%zu]: only function tools can be sent to Gemini", i);
			goto fail;
		}
		if (!name || !*name) {
			wire_err_set(err, 400, "tools[%zu] needs a function name", i);
			goto fail;
		}
		json_t *d = json_pack("{ss}", "name", name);
		json_array_append_new(decls, d);
		const json_t *desc = json_object_get(fn, "description");
		if (json_is_string(desc) && json_string_length(desc))
			json_object_set(d, "description", (json_t *)desc);
		const json_t *params = json_object_get(fn, "parameters");
		if (given(params)) {
			char where[48];
			snprintf(where, sizeof(where), "tools[%zu].parameters", i);
			struct sconv c = { .root = params, .err = err, .where = where };
			json_t *g = jschema_to_gemini(params, 0, &c);
			if (!g)
				goto fail;
			/* Gemini rejects an OBJECT whose properties are empty: a
			 * function without parameters simply has none. */
			const char *gt = wire_str(g, "type");
			if (json_object_size(g) == 0 ||
			    (gt && strcmp(gt, "OBJECT") == 0 && !json_object_get(g, "properties")))
				json_decref(g);
			else
				json_object_set_new(d, "parameters", g);
		}
	}
	if (json_array_size(decls))
		json_object_set_new(body, "tools", json_pack("[{so}]", "functionDeclarations", decls));
	else
		json_decref(decls);

	const json_t *tc = json_object_get(canon, "tool_choice");
	if (!given(tc) || !json_object_get(body, "tools"))
		return 0;
	json_t *fcc = NULL;
	if (json_is_string(tc)) {
		const char *s = json_string_value(tc);
		const char *mode = strcmp(s, "auto") == 0       ? "AUTO"
		                   : strcmp(s, "none") == 0     ? "NONE"
		                   : strcmp(s, "required") == 0 ? "ANY"
		                                                : NULL;
		if (mode)
			fcc = json_pack("{ss}", "mode", mode);
	} else {
		const char *name = wire_str(json_object_get(tc, "function"), "name");
		if (name)
			fcc = json_pack("{ss s[s]}", "mode", "ANY", "allowedFunctionNames", name);
	}
	if (!fcc) {
		wire_err_set(err, 400,
		             "tool_choice must be auto, none, required or {type:function, function:{name}}");
		return -1;
	}
	json_object_set_new(body, "toolConfig", json_pack("{so}", "functionCallingConfig", fcc));
	return 0;
fail:
	json_decref(decls);
	return -1;
}

static json_t *gemini_encode_request(const json_t *canon, const struct wire_opts *o, struct wire_err *err)
{
	(void)o; /* model and streaming are in the URL */
	json_t *body = json_object();
	struct ereq q = {
		.contents = json_array(), .sys_parts = json_array(), .call_names = json_object(), .err = err
	};
	json_object_set_new(body, "contents", q.contents);
	const json_t *msgs = json_object_get(canon, "messages");
	if (!json_is_array(msgs)) {
		wire_err_set(err, 400, "messages must be an array");
		goto fail;
	}
	size_t i;
	const json_t *m;
	json_array_foreach (msgs, i, m) {
		const char *role = wire_str(m, "role");
		int rc;
		if (!json_is_object(m) || !role) {
			wire_err_set(err, 400, "messages[%zu] needs a role", i);
			goto fail;
		}
		if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
			struct evbuffer *b = evbuffer_new();
			rc = content_text(json_object_get(m, "content"), b, "system", err);
			add_text(q.sys_parts, (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
			evbuffer_free(b);
		} else if (strcmp(role, "user") == 0)
			rc = encode_user(m, i, &q);
		else if (strcmp(role, "assistant") == 0)
			rc = encode_assistant(m, i, &q);
		else if (strcmp(role, "tool") == 0)
			rc = encode_tool(m, i, &q);
		else {
			wire_err_set(err, 400, "messages[%zu]: unknown role", i);
			goto fail;
		}
		if (rc < 0)
			goto fail;
	}
	if (!json_array_size(q.contents)) {
		wire_err_set(err, 400, "at least one non-empty user or assistant message is required");
		goto fail;
	}
	if (json_array_size(q.sys_parts))
		json_object_set_new(body, "systemInstruction", json_pack("{sO}", "parts", q.sys_parts));
	if (encode_gen_config(canon, body, err) < 0 || encode_tools(canon, body, err) < 0)
		goto fail;
	json_decref(q.sys_parts);
	json_decref(q.call_names);
	return body;
fail:
	json_decref(q.sys_parts);
	json_decref(q.call_names);
	json_decref(body);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* responses                                                          */
/* ------------------------------------------------------------------ */

static const char *finish_from_gemini(const char *fr, bool any_call)
{
	static const char *const filtered[] = { "SAFETY",
		                                "RECITATION",
		                                "BLOCKLIST",
		                                "PROHIBITED_CONTENT",
		                                "SPII",
		                                "IMAGE_SAFETY",
		                                "IMAGE_PROHIBITED_CONTENT",
		                                "IMAGE_RECITATION" };
	if (!fr || strcmp(fr, "STOP") == 0)
		return any_call ? "tool_calls" : "stop";
	if (strcmp(fr, "MAX_TOKENS") == 0)
		return "length";
	for (size_t i = 0; i < sizeof(filtered) / sizeof(filtered[0]); i++)
		if (strcmp(fr, filtered[i]) == 0)
			return "content_filter";
	return "stop";
}

static const char *finish_to_gemini(const char *f)
{
	if (f && strcmp(f, "length") == 0)
		return "MAX_TOKENS";
	if (f && strcmp(f, "content_filter") == 0)
		return "SAFETY";
	return "STOP";
}

/* usageMetadata → wire_usage (absent counts are zero, as proto3 JSON omits zeros). */
static void gusage(const json_t *um, struct wire_usage *u)
{
	wire_usage_init(u);
	if (!json_is_object(um))
		return;
	int64_t p = wire_int(um, "promptTokenCount"), c = wire_int(um, "candidatesTokenCount");
	int64_t th = wire_int(um, "thoughtsTokenCount"), ca = wire_int(um, "cachedContentTokenCount");
	int64_t t = wire_int(um, "totalTokenCount");
	u->prompt = p < 0 ? 0 : p;
	u->reasoning = th < 0 ? 0 : th;
	u->completion = (c < 0 ? 0 : c) + u->reasoning;
	u->cached = ca < 0 ? 0 : ca;
	u->total = t >= 0 ? t : u->prompt + u->completion;
}

static void gemini_usage(const json_t *body, struct wire_usage *u)
{
	gusage(json_object_get(body, "usageMetadata"), u);
}

static json_t *gemini_decode_response(const json_t *body, struct wire_err *err)
{
	if (!json_is_object(body)) {
		wire_err_set(err, 502, "Gemini answer is not a JSON object");
		return NULL;
	}
	const json_t *cands = json_object_get(body, "candidates");
	const json_t *cand = json_array_get(cands, 0);
	const char *rid = wire_str(body, "responseId");
	const char *model = wire_str(body, "modelVersion");
	char ridbuf[25];
	if (!rid || !*rid) {
		wire_random_id(ridbuf, sizeof(ridbuf), "");
		rid = ridbuf;
	}
	char idbuf[128];
	if (wire_str(body, "responseId") && *wire_str(body, "responseId"))
		CLIP(idbuf, wire_str(body, "responseId"));
	else
		snprintf(idbuf, sizeof(idbuf), "chatcmpl-%s", rid);

	json_t *msg = json_pack("{ss}", "role", "assistant");
	const char *finish;
	if (!json_is_object(cand)) {
		const char *block = wire_str(json_object_get(body, "promptFeedback"), "blockReason");
		if (!block) {
			json_decref(msg);
			wire_err_set(err, 502, "Gemini answer has no candidates");
			return NULL;
		}
		json_object_set_new(msg, "content", json_string(""));
		finish = "content_filter";
	} else {
		const json_t *parts = json_object_get(json_object_get(cand, "content"), "parts");
		struct evbuffer *text = evbuffer_new(), *think = evbuffer_new();
		json_t *calls = json_array();
		const char *think_sig = NULL;
		bool any_thought = false;
		size_t i;
		const json_t *p;
		json_array_foreach (parts, i, p) {
			const json_t *t = json_object_get(p, "text");
			const json_t *fc = json_object_get(p, "functionCall");
			const char *sig = wire_str(p, "thoughtSignature");
			if (json_is_string(t)) {
				if (json_is_true(json_object_get(p, "thought"))) {
					any_thought = true;
					evbuffer_add(think, json_string_value(t), json_string_length(t));
					if (sig)
						think_sig = sig;
				} else {
					evbuffer_add(text, json_string_value(t), json_string_length(t));
					if (sig)
						json_object_set_new(msg, "x_thought_signature",
						                    json_string(sig));
				}
			} else if (json_is_object(fc)) {
				const char *name = wire_str(fc, "name");
				const json_t *args = json_object_get(fc, "args");
				if (!name || (given(args) && !json_is_object(args))) {
					json_decref(calls);
					json_decref(msg);
					evbuffer_free(text);
					evbuffer_free(think);
					wire_err_set(err, 502,
					             "Gemini answer holds a malformed functionCall");
					return NULL;
				}
				char cid[96];
				const char *id = wire_str(fc, "id");
				if (!id || !*id) {
					call_id(cid, sizeof(cid), rid, (int)json_array_size(calls));
					id = cid;
				}
				json_t *empty = json_object();
				char *a = dump(given(args) ? args : empty);
				json_decref(empty);
				json_t *call = json_pack("{ss ss s{ss ss}}", "id", id, "type", "function",
				                         "function", "name", name, "arguments", a);
				free(a);
				if (sig)
					json_object_set_new(call, "x_thought_signature", json_string(sig));
				json_array_append_new(calls, call);
			} else if (sig) {
				json_object_set_new(msg, "x_thought_signature", json_string(sig));
			}
		}
		size_t n = evbuffer_get_length(text);
		if (n || !json_array_size(calls))
			json_object_set_new(msg, "content", jstr((const char *)evbuffer_pullup(text, -1), n));
		else
			json_object_set_new(msg, "content", json_null());
		if (json_array_size(calls))
			json_object_set(msg, "tool_calls", calls);
		size_t tn = evbuffer_get_length(think);
		if (any_thought && (tn || think_sig)) {
			json_t *e =
			    json_pack("{so}", "thinking", jstr((const char *)evbuffer_pullup(think, -1), tn));
			if (think_sig)
				json_object_set_new(e, "signature", json_string(think_sig));
			json_object_set_new(msg, "x_thinking", json_pack("[o]", e));
		}
		finish = finish_from_gemini(wire_str(cand, "finishReason"), json_array_size(calls) > 0);
		json_decref(calls);
		evbuffer_free(text);
		evbuffer_free(think);
	}
	struct wire_usage u;
	gemini_usage(body, &u);
	if (u.prompt < 0)
		u.prompt = u.completion = u.total = u.cached = u.reasoning = 0;
	json_t *out = json_pack("{ss ss sI ss s[{si so ss}] s{sI sI sI s{sI} s{sI}}}", "id", idbuf, "object",
	                        "chat.completion", "created", (json_int_t)time(NULL), "model",
	                        model ? model : "", "choices", "index", 0, "message", msg, "finish_reason",
	                        finish, "usage", "prompt_tokens", (json_int_t)u.prompt, "completion_tokens",
	                        (json_int_t)u.completion, "total_tokens", (json_int_t)u.total,
	                        "prompt_tokens_details", "cached_tokens", (json_int_t)u.cached,
	                        "completion_tokens_details", "reasoning_tokens", (json_int_t)u.reasoning);
	return out;
}

/* usageMetadata from canonical numbers (-1: unknown, left out). */
static json_t *usage_metadata(int64_t prompt, int64_t completion, int64_t total, int64_t cached,
                              int64_t reasoning)
{
	json_t *um = json_object();
	int64_t cand = completion >= 0 ? completion - (reasoning > 0 ? reasoning : 0) : -1;
	if (cand < 0 && completion >= 0)
		cand = 0;
	if (prompt >= 0)
		json_object_set_new(um, "promptTokenCount", json_integer(prompt));
	if (cand >= 0)
		json_object_set_new(um, "candidatesTokenCount", json_integer(cand));
	if (total < 0 && prompt >= 0 && completion >= 0)
		total = prompt + completion;
	if (total >= 0)
		json_object_set_new(um, "totalTokenCount", json_integer(total));
	if (cached > 0)
		json_object_set_new(um, "cachedContentTokenCount", json_integer(cached));
	if (reasoning > 0)
		json_object_set_new(um, "thoughtsTokenCount", json_integer(reasoning));
	return um;
}

/* Arguments JSON text → args object ({} when it is not a JSON object). */
static json_t *args_object(const char *s, size_t n)
{
	json_t *a = n ? json_loadb(s, n, 0, NULL) : NULL;
	if (json_is_object(a))
		return a;
	json_decref(a);
	return json_object();
}

static json_t *gemini_encode_response(const json_t *canon, const struct wire_opts *o)
{
	const json_t *choice = json_array_get(json_object_get(canon, "choices"), 0);
	const json_t *msg = json_object_get(choice, "message");
	json_t *parts = json_array();
	size_t i;
	const json_t *x;
	json_array_foreach (json_object_get(msg, "x_thinking"), i, x) {
		const json_t *t = json_object_get(x, "thinking");
		if (!json_is_string(t) || !json_string_length(t))
			continue;
		json_t *p = json_pack("{sO sb}", "text", t, "thought", 1);
		const char *sig = wire_str(x, "signature");
		if (sig && *sig)
			json_object_set_new(p, "thoughtSignature", json_string(sig));
		json_array_append_new(parts, p);
	}
	const json_t *content = json_object_get(msg, "content");
	size_t first_text = json_array_size(parts);
	if (json_is_string(content))
		add_text(parts, json_string_value(content), json_string_length(content));
	else
		json_array_foreach (content, i, x) {
			const json_t *t = json_object_get(x, "text");
			if (json_is_string(t))
				add_text(parts, json_string_value(t), json_string_length(t));
		}
	const char *msig = wire_str(msg, "x_thought_signature");
	if (msig && json_array_size(parts) > first_text)
		json_object_set_new(json_array_get(parts, json_array_size(parts) - 1), "thoughtSignature",
		                    json_string(msig));
	json_array_foreach (json_object_get(msg, "tool_calls"), i, x) {
		const json_t *fn = json_object_get(x, "function");
		const char *name = wire_str(fn, "name");
		const char *a = wire_str(fn, "arguments");
		json_t *fc = json_pack("{ss}", "name", name ? name : "");
		json_object_set_new(fc, "args", args_object(a ? a : "", a ? strlen(a) : 0));
		if (wire_str(x, "id"))
			json_object_set_new(fc, "id", json_string(wire_str(x, "id")));
		json_t *p = json_pack("{so}", "functionCall", fc);
		const char *sig = wire_str(x, "x_thought_signature");
		if (sig)
			json_object_set_new(p, "thoughtSignature", json_string(sig));
		json_array_append_new(parts, p);
	}
	json_t *cont = json_object();
	if (json_array_size(parts))
		json_object_set(cont, "parts", parts);
	json_object_set_new(cont, "role", json_string("model"));
	json_decref(parts);
	json_t *cand = json_pack("{so ss si}", "content", cont, "finishReason",
	                         finish_to_gemini(wire_str(choice, "finish_reason")), "index", 0);
	const json_t *u = json_object_get(canon, "usage");
	json_t *out = json_pack("{s[o]}", "candidates", cand);
	if (json_is_object(u))
		json_object_set_new(
		    out, "usageMetadata",
		    usage_metadata(
		        wire_int(u, "prompt_tokens"), wire_int(u, "completion_tokens"),
		        wire_int(u, "total_tokens"),
		        wire_int(json_object_get(u, "prompt_tokens_details"), "cached_tokens"),
		        wire_int(json_object_get(u, "completion_tokens_details"), "reasoning_tokens")));
	const char *model = o && o->model ? o->model : wire_str(canon, "model");
	if (model)
		json_object_set_new(out, "modelVersion", json_string(model));
	if (wire_str(canon, "id"))
		json_object_set_new(out, "responseId", json_string(wire_str(canon, "id")));
	return out;
}

/* ------------------------------------------------------------------ */
/* errors                                                             */
/* ------------------------------------------------------------------ */

static const struct {
	const char *status;
	const char *type;
} gstatus_types[] = {
	{ "INVALID_ARGUMENT", "invalid_request_error" },
	{ "FAILED_PRECONDITION", "invalid_request_error" },
	{ "OUT_OF_RANGE", "invalid_request_error" },
	{ "UNAUTHENTICATED", "authentication_error" },
	{ "PERMISSION_DENIED", "permission_error" },
	{ "NOT_FOUND", "not_found_error" },
	{ "RESOURCE_EXHAUSTED", "rate_limit_error" },
	{ "INTERNAL", "api_error" },
	{ "UNKNOWN", "api_error" },
	{ "DATA_LOSS", "api_error" },
	{ "UNIMPLEMENTED", "api_error" },
	{ "ABORTED", "api_error" },
	{ "CANCELLED", "api_error" },
	{ "UNAVAILABLE", "overloaded_error" },
	{ "DEADLINE_EXCEEDED", "timeout_error" },
};

/* The Google status name for an HTTP status. */
static const char *gstatus_for_http(int status)
{
	switch (status) {
	case 400:
		return "INVALID_ARGUMENT";
	case 401:
		return "UNAUTHENTICATED";
	case 403:
		return "PERMISSION_DENIED";
	case 404:
		return "NOT_FOUND";
	case 408:
	case 504:
		return "DEADLINE_EXCEEDED";
	case 409:
		return "ABORTED";
	case 413:
		return "INVALID_ARGUMENT";
	case 429:
		return "RESOURCE_EXHAUSTED";
	case 499:
		return "CANCELLED";
	case 501:
		return "UNIMPLEMENTED";
	case 503:
	case 529:
		return "UNAVAILABLE";
	default:
		return status >= 400 && status < 500 ? "FAILED_PRECONDITION" : "INTERNAL";
	}
}

static void set_type(struct wire_error *out, const char *type)
{
	str_copy(out->type, sizeof(out->type), type);
}

/* Fill out from a Google error object {code, message, status, details}. */
static void apply_gerror(const json_t *e, struct wire_error *out)
{
	int64_t code = wire_int(e, "code");
	if (out->status <= 0 && code >= 100 && code <= 599) {
		out->status = (int)code;
		set_type(out, wire_error_type_for_status(out->status));
	}
	const char *st = wire_str(e, "status");
	for (size_t i = 0; st && i < sizeof(gstatus_types) / sizeof(gstatus_types[0]); i++)
		if (strcmp(st, gstatus_types[i].status) == 0)
			set_type(out, gstatus_types[i].type);
	/* An invalid key is a 400 INVALID_ARGUMENT with reason API_KEY_INVALID. */
	size_t i;
	const json_t *d;
	json_array_foreach (json_object_get(e, "details"), i, d) {
		const char *reason = wire_str(d, "reason");
		if (reason && strcmp(reason, "API_KEY_INVALID") == 0)
			set_type(out, "authentication_error");
	}
	const char *msg = wire_str(e, "message");
	if (msg && *msg)
		clip(out->message, sizeof(out->message), msg, strlen(msg));
}

static void gemini_decode_error(int status, const char *body, size_t len, struct wire_error *out)
{
	memset(out, 0, sizeof(*out));
	out->status = status;
	set_type(out, wire_error_type_for_status(status));
	snprintf(out->message, sizeof(out->message), "Gemini API error (HTTP %d)", status);
	json_t *j = body && len ? json_loadb(body, len, 0, NULL) : NULL;
	const json_t *o = json_is_array(j) ? json_array_get(j, 0) : j;
	const json_t *e = json_object_get(o, "error");
	if (json_is_object(e))
		apply_gerror(e, out);
	else if (json_is_string(e) && json_string_length(e))
		clip(out->message, sizeof(out->message), json_string_value(e), json_string_length(e));
	json_decref(j);
	if (out->status <= 0) {
		out->status = 502;
		set_type(out, "api_error");
	}
}

static json_t *gemini_encode_error(const struct wire_error *e)
{
	int status = e->status > 0 ? e->status : 500;
	json_t *msg = json_string(e->message);
	if (!msg)
		msg = json_string("upstream error");
	const char *gs = gstatus_for_http(status);
	if (status == 500 || e->status <= 0) {
		/* the neutral type may say more than a bare 500 */
		if (strcmp(e->type, "overloaded_error") == 0)
			gs = "UNAVAILABLE";
		else if (strcmp(e->type, "timeout_error") == 0)
			gs = "DEADLINE_EXCEEDED";
	}
	return json_pack("{s{si so ss}}", "error", "code", status, "message", msg, "status", gs);
}

/* ------------------------------------------------------------------ */
/* stream decoder (provider side)                                     */
/*                                                                    */
/* Provider streams are always requested with alt=sse: every data:    */
/* event is one whole GenerateContentResponse (a bare JSON array of   */
/* them is accepted too, as Google wraps errors that way).  The first */
/* event gives START; parts become TEXT / THINKING / TOOL_START +     */
/* one TOOL_ARGS with the whole args (a functionCall always arrives   */
/* whole) / SIGNATURE; finishReason gives FINISH (STOP after any      */
/* functionCall → tool_calls); usageMetadata gives USAGE whenever it  */
/* changes (Gemini's counts are cumulative).  There is no end marker: */
/* sdec_end says END if a finishReason was seen, else ERROR.          */
/* Generated ids derive from responseId ("call_<responseId>_<n>") so  */
/* that they are unique per answer yet reproducible.                  */
/* ------------------------------------------------------------------ */

struct wire_sdec {
	bool started, finished, errored, any_call, have_usage;
	int ntools;
	char rid[25]; /* used for ids when the stream has no responseId */
	char *response_id;
	struct wire_usage last;
};

static struct wire_sdec *gemini_sdec_new(void)
{
	struct wire_sdec *d = xcalloc(1, sizeof(*d));
	wire_random_id(d->rid, sizeof(d->rid), "");
	wire_usage_init(&d->last);
	return d;
}

static void gemini_sdec_free(struct wire_sdec *d)
{
	if (!d)
		return;
	free(d->response_id);
	free(d);
}

static int emit_error(cev_fn fn, void *arg, int status, const char *message)
{
	struct wire_error e = { .status = status };
	set_type(&e, wire_error_type_for_status(status));
	str_copy(e.message, sizeof(e.message), message);
	struct cev ev = { .type = CEV_ERROR, .error = &e };
	wire_usage_init(&ev.usage);
	return fn(&ev, arg);
}

static int dec_malformed(struct wire_sdec *d, cev_fn fn, void *arg, const char *what)
{
	d->errored = true;
	int rc = emit_error(fn, arg, 502, what);
	return rc ? rc : -1;
}

static bool usage_eq(const struct wire_usage *a, const struct wire_usage *b)
{
	return a->prompt == b->prompt && a->completion == b->completion && a->total == b->total &&
	       a->cached == b->cached && a->reasoning == b->reasoning;
}

static int dec_obj(struct wire_sdec *d, const json_t *o, cev_fn fn, void *arg)
{
	int rc;
	struct cev ev;
	if (!json_is_object(o))
		return dec_malformed(d, fn, arg, "malformed Gemini stream event");
	const json_t *e = json_object_get(o, "error");
	if (given(e)) {
		struct wire_error we = { 0 };
		set_type(&we, "api_error");
		snprintf(we.message, sizeof(we.message), "Gemini stream failed");
		if (json_is_object(e))
			apply_gerror(e, &we);
		if (we.status <= 0) {
			we.status = 502;
			set_type(&we, "api_error");
		}
		d->errored = true;
		memset(&ev, 0, sizeof(ev));
		ev.type = CEV_ERROR;
		ev.error = &we;
		wire_usage_init(&ev.usage);
		return fn(&ev, arg);
	}
	const json_t *um = json_object_get(o, "usageMetadata");
	if (!d->started) {
		const char *rid = wire_str(o, "responseId");
		char idbuf[40];
		d->started = true;
		if (rid && *rid)
			d->response_id = xstrdup(rid);
		else
			snprintf(idbuf, sizeof(idbuf), "chatcmpl-%s", d->rid);
		memset(&ev, 0, sizeof(ev));
		ev.type = CEV_START;
		ev.id = d->response_id ? d->response_id : idbuf;
		ev.model = wire_str(o, "modelVersion");
		wire_usage_init(&ev.usage);
		int64_t p = wire_int(um, "promptTokenCount");
		if (p >= 0)
			ev.usage.prompt = p;
		if ((rc = fn(&ev, arg)))
			return rc;
	}
	const json_t *cand = json_array_get(json_object_get(o, "candidates"), 0);
	const json_t *parts = json_object_get(json_object_get(cand, "content"), "parts");
	if (given(parts) && !json_is_array(parts))
		return dec_malformed(d, fn, arg, "malformed Gemini stream event: parts is not an array");
	size_t i;
	const json_t *p;
	json_array_foreach (parts, i, p) {
		const json_t *t = json_object_get(p, "text");
		const json_t *fc = json_object_get(p, "functionCall");
		int index = -1;
		if (json_is_string(t) && json_string_length(t)) {
			bool thought = json_is_true(json_object_get(p, "thought"));
			if ((rc = wire_emit(fn, arg, thought ? CEV_THINKING : CEV_TEXT, -1,
			                    json_string_value(t), json_string_length(t))))
				return rc;
		} else if (given(fc)) {
			const char *name = wire_str(fc, "name");
			const json_t *args = json_object_get(fc, "args");
			if (!json_is_object(fc) || !name || (given(args) && !json_is_object(args)))
				return dec_malformed(d, fn, arg, "malformed functionCall in Gemini stream");
			char cid[96];
			const char *id = wire_str(fc, "id");
			index = d->ntools++;
			if (!id || !*id) {
				call_id(cid, sizeof(cid), d->response_id ? d->response_id : d->rid, index);
				id = cid;
			}
			d->any_call = true;
			memset(&ev, 0, sizeof(ev));
			ev.type = CEV_TOOL_START;
			ev.index = index;
			ev.id = id;
			ev.name = name;
			wire_usage_init(&ev.usage);
			if ((rc = fn(&ev, arg)))
				return rc;
			json_t *empty = json_object();
			char *a = dump(given(args) ? args : empty);
			json_decref(empty);
			rc = wire_emit(fn, arg, CEV_TOOL_ARGS, index, a, strlen(a));
			free(a);
			if (rc)
				return rc;
		}
		const char *sig = wire_str(p, "thoughtSignature");
		if (sig && *sig && (rc = wire_emit(fn, arg, CEV_SIGNATURE, index, sig, strlen(sig))))
			return rc;
	}
	const char *fr = wire_str(cand, "finishReason");
	const char *block = wire_str(json_object_get(o, "promptFeedback"), "blockReason");
	if (!d->finished && (fr || (!cand && block))) {
		d->finished = true;
		memset(&ev, 0, sizeof(ev));
		ev.type = CEV_FINISH;
		ev.finish = fr ? finish_from_gemini(fr, d->any_call) : "content_filter";
		wire_usage_init(&ev.usage);
		if ((rc = fn(&ev, arg)))
			return rc;
	}
	if (json_is_object(um)) {
		struct wire_usage u;
		gusage(um, &u);
		if (!d->have_usage || !usage_eq(&u, &d->last)) {
			d->have_usage = true;
			d->last = u;
			memset(&ev, 0, sizeof(ev));
			ev.type = CEV_USAGE;
			ev.usage = u;
			if ((rc = fn(&ev, arg)))
				return rc;
		}
	}
	return 0;
}

static int gemini_sdec_event(struct wire_sdec *d, const char *event, size_t event_len, const char *data,
                             size_t data_len, cev_fn fn, void *arg)
{
	(void)event;
	(void)event_len;
	if (d->errored)
		return 0;
	json_t *j = json_loadb(data, data_len, 0, NULL);
	int rc = 0;
	if (!j)
		return dec_malformed(d, fn, arg, "malformed JSON in Gemini stream");
	if (json_is_array(j)) {
		size_t i;
		const json_t *o;
		json_array_foreach (j, i, o) {
			if (!d->errored && (rc = dec_obj(d, o, fn, arg)))
				break;
		}
	} else
		rc = dec_obj(d, j, fn, arg);
	json_decref(j);
	return rc;
}

static int gemini_sdec_end(struct wire_sdec *d, cev_fn fn, void *arg)
{
	if (d->errored)
		return 0;
	if (d->finished)
		return wire_emit(fn, arg, CEV_END, -1, NULL, 0);
	d->errored = true;
	return emit_error(fn, arg, 502, "Gemini stream ended early");
}

/* ------------------------------------------------------------------ */
/* stream encoder (client side)                                       */
/*                                                                    */
/* Each piece becomes one GenerateContentResponse, written as an SSE  */
/* "data:" event (alt=sse) or as an element of one JSON array         */
/* (o->json_array: "[" … ",\r\n" … "]").  Every event carries         */
/* modelVersion and responseId.                                       */
/*                                                                    */
/* The last event must hold real content together with finishReason   */
/* and usageMetadata: the Python SDK's chat drops a streamed turn     */
/* from its history when any chunk lacks content or has empty text,   */
/* and reads usage from the final chunk.  So the encoder always holds */
/* back the most recent event and writes it when the next one is      */
/* ready; at END the held event gets finishReason + usageMetadata.    */
/* A tool call is buffered until complete (next TOOL_START, text,     */
/* FINISH or END) and written as one functionCall {id, name, args};   */
/* arguments that are not a JSON object (or exceed TOOL_ARGS_MAX)     */
/* become args {}.  A thoughtSignature for text/thinking goes on the  */
/* held text part, else on the next one.  ERROR writes the held event */
/* (not a half-built tool call), then {error:{code, message, status}} */
/* and ends the stream.                                               */
/* ------------------------------------------------------------------ */

struct senc_tool {
	bool open;
	int index;
	char *id, *name, *sig;
	char *args; /* args.len bytes, capacity cap */
	size_t len, cap;
	bool overflow;
};

struct wire_senc {
	char *model; /* o->model, or START's model */
	char *id;    /* responseId */
	bool json_array, done;
	size_t written; /* objects written */
	json_t *held;   /* parts of the held event, or NULL */
	char *held_sig; /* signature waiting for a text part */
	struct senc_tool tool;
	const char *finish; /* Gemini finishReason */
	struct wire_usage usage;
	int64_t prompt_estimate;
};

static struct wire_senc *gemini_senc_new(const struct wire_opts *o)
{
	struct wire_senc *e = xcalloc(1, sizeof(*e));
	if (o && o->model)
		e->model = xstrdup(o->model);
	e->json_array = o && o->json_array;
	e->prompt_estimate = o ? o->prompt_estimate : -1;
	wire_usage_init(&e->usage);
	return e;
}

static void tool_reset(struct senc_tool *t)
{
	free(t->id);
	free(t->name);
	free(t->sig);
	free(t->args);
	memset(t, 0, sizeof(*t));
}

static void gemini_senc_free(struct wire_senc *e)
{
	if (!e)
		return;
	free(e->model);
	free(e->id);
	free(e->held_sig);
	json_decref(e->held);
	tool_reset(&e->tool);
	free(e);
}

static void senc_write(struct wire_senc *e, json_t *obj, struct evbuffer *out)
{
	if (e->json_array) {
		char *s = dump(obj);
		evbuffer_add(out, e->written ? ",\r\n" : "[", e->written ? 3 : 1);
		evbuffer_add(out, s, strlen(s));
		free(s);
	} else
		wire_sse_json(out, NULL, obj);
	e->written++;
}

/* One response object around parts (stolen, may be NULL). */
static json_t *senc_obj(struct wire_senc *e, json_t *parts, const char *finish, bool with_usage)
{
	json_t *cand = json_object();
	if (parts)
		json_object_set_new(cand, "content", json_pack("{so ss}", "parts", parts, "role", "model"));
	if (finish)
		json_object_set_new(cand, "finishReason", json_string(finish));
	json_object_set_new(cand, "index", json_integer(0));
	json_t *obj = json_pack("{s[o]}", "candidates", cand);
	if (with_usage) {
		const struct wire_usage *u = &e->usage;
		int64_t prompt = u->prompt >= 0 ? u->prompt : e->prompt_estimate;
		json_t *um = usage_metadata(prompt, u->completion, u->prompt >= 0 ? u->total : -1, u->cached,
		                            u->reasoning);
		wire_set_nonempty(obj, "usageMetadata", um);
	}
	if (e->model)
		json_object_set_new(obj, "modelVersion", jstr(e->model, strlen(e->model)));
	if (!e->id) {
		char buf[40];
		wire_random_id(buf, sizeof(buf), "chatcmpl-");
		e->id = xstrdup(buf);
	}
	json_object_set_new(obj, "responseId", jstr(e->id, strlen(e->id)));
	return obj;
}

static void flush_held(struct wire_senc *e, struct evbuffer *out)
{
	if (!e->held)
		return;
	json_t *obj = senc_obj(e, e->held, NULL, false);
	e->held = NULL;
	senc_write(e, obj, out);
	json_decref(obj);
}

/* Make part the held event, writing the previous one. */
static void hold_part(struct wire_senc *e, json_t *part, struct evbuffer *out)
{
	flush_held(e, out);
	e->held = json_pack("[o]", part);
}

static void flush_tool(struct wire_senc *e, struct evbuffer *out)
{
	struct senc_tool *t = &e->tool;
	if (!t->open)
		return;
	json_t *args = t->overflow ? json_object() : args_object(t->args ? t->args : "", t->len);
	json_t *fc = json_pack("{so so so}", "id", jstr(t->id, strlen(t->id)), "name",
	                       jstr(t->name, strlen(t->name)), "args", args);
	json_t *part = json_pack("{so}", "functionCall", fc);
	if (t->sig)
		json_object_set_new(part, "thoughtSignature", json_string(t->sig));
	tool_reset(t);
	hold_part(e, part, out);
}

static void senc_text(struct wire_senc *e, const struct cev *ev, bool thought, struct evbuffer *out)
{
	flush_tool(e, out);
	if (!ev->len)
		return;
	json_t *part = json_pack("{so}", "text", jstr(ev->text, ev->len));
	if (thought)
		json_object_set_new(part, "thought", json_true());
	if (e->held_sig) {
		json_object_set_new(part, "thoughtSignature", json_string(e->held_sig));
		free(e->held_sig);
		e->held_sig = NULL;
	}
	hold_part(e, part, out);
}

static void senc_signature(struct wire_senc *e, const struct cev *ev)
{
	if (!ev->len)
		return;
	json_t *sig = jstr(ev->text, ev->len);
	if (ev->index >= 0) {
		if (e->tool.open && e->tool.index == ev->index) {
			free(e->tool.sig);
			e->tool.sig = xstrdup(json_string_value(sig));
		}
		json_decref(sig);
		return;
	}
	json_t *last = e->held ? json_array_get(e->held, json_array_size(e->held) - 1) : NULL;
	if (last && json_object_get(last, "text") && !json_object_get(last, "thoughtSignature") &&
	    !e->tool.open) {
		json_object_set_new(last, "thoughtSignature", sig);
		return;
	}
	free(e->held_sig);
	e->held_sig = xstrdup(json_string_value(sig));
	json_decref(sig);
}

static void senc_tool_args(struct wire_senc *e, const struct cev *ev)
{
	struct senc_tool *t = &e->tool;
	if (!t->open || t->index != ev->index || !ev->len || t->overflow)
		return;
	if (ev->len > TOOL_ARGS_MAX - t->len) {
		t->overflow = true;
		return;
	}
	if (t->len + ev->len > t->cap) {
		size_t cap = t->cap ? t->cap : 256;
		while (cap < t->len + ev->len)
			cap *= 2;
		t->args = xrealloc(t->args, cap);
		t->cap = cap;
	}
	memcpy(t->args + t->len, ev->text, ev->len);
	t->len += ev->len;
}

static void gemini_senc_event(struct wire_senc *e, const struct cev *ev, struct evbuffer *out)
{
	if (e->done)
		return;
	switch (ev->type) {
	case CEV_START:
		if (ev->id && !e->id)
			e->id = xstrdup(ev->id);
		if (ev->model && !e->model)
			e->model = xstrdup(ev->model);
		wire_usage_merge(&e->usage, &ev->usage);
		break;
	case CEV_TEXT:
		senc_text(e, ev, false, out);
		break;
	case CEV_THINKING:
		senc_text(e, ev, true, out);
		break;
	case CEV_SIGNATURE:
		senc_signature(e, ev);
		break;
	case CEV_TOOL_START:
		flush_tool(e, out);
		e->tool.open = true;
		e->tool.index = ev->index;
		if (ev->id && *ev->id)
			e->tool.id = xstrdup(ev->id);
		else {
			char buf[32];
			wire_random_id(buf, sizeof(buf), "call_");
			e->tool.id = xstrdup(buf);
		}
		e->tool.name = xstrdup(ev->name ? ev->name : "");
		break;
	case CEV_TOOL_ARGS:
		senc_tool_args(e, ev);
		break;
	case CEV_USAGE:
		wire_usage_merge(&e->usage, &ev->usage);
		break;
	case CEV_FINISH:
		flush_tool(e, out);
		e->finish = finish_to_gemini(ev->finish);
		break;
	case CEV_ERROR: {
		tool_reset(&e->tool); /* a half-received call must not run */
		flush_held(e, out);
		int status = ev->error && ev->error->status > 0 ? ev->error->status : 502;
		const char *m =
		    ev->error && ev->error->message[0] ? ev->error->message : "upstream stream failed";
		json_t *msg = json_string(m);
		json_t *obj = json_pack("{s{si so ss}}", "error", "code", status, "message",
		                        msg ? msg : json_string("upstream stream failed"), "status",
		                        gstatus_for_http(status));
		senc_write(e, obj, out);
		json_decref(obj);
		if (e->json_array)
			evbuffer_add(out, "]", 1);
		e->done = true;
		break;
	}
	case CEV_END: {
		flush_tool(e, out);
		json_t *parts = e->held;
		e->held = NULL;
		if (e->held_sig) {
			if (!parts)
				parts = json_array();
			json_array_append_new(
			    parts, json_pack("{ss ss}", "text", "", "thoughtSignature", e->held_sig));
		}
		json_t *obj = senc_obj(e, parts, e->finish ? e->finish : "STOP", true);
		senc_write(e, obj, out);
		json_decref(obj);
		if (e->json_array)
			evbuffer_add(out, "]", 1);
		e->done = true;
		break;
	}
	}
}

/* ------------------------------------------------------------------ */
/* upstream URL and headers                                           */
/* ------------------------------------------------------------------ */

static char *gemini_chat_url(const char *base_url, const char *model, bool stream)
{
	static const char hex[] = "0123456789ABCDEF";
	if (!model)
		model = "";
	if (strncmp(model, "models/", 7) == 0)
		model += 7;
	size_t n = strlen(model);
	const char *suffix = stream ? ":streamGenerateContent?alt=sse" : ":generateContent";
	size_t len = 16 + n * 3 + strlen(suffix) + 1;
	char *path = xmalloc(len);
	size_t o = (size_t)snprintf(path, len, "/v1beta/models/");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)model[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		    c == '_' || c == '-')
			path[o++] = (char)c;
		else {
			path[o++] = '%';
			path[o++] = hex[c >> 4];
			path[o++] = hex[c & 15];
		}
	}
	str_copy(path + o, len - o, suffix);
	char *url = wire_join_url(base_url, path);
	free(path);
	return url;
}

static size_t gemini_auth_headers(const char *secret, char **h, size_t max)
{
	/* Always the header, never a key= query: URLs end up in logs. */
	if (!secret || max == 0)
		return 0;
	h[0] = wire_header("x-goog-api-key", secret);
	return 1;
}

const struct wire_format wire_gemini = {
	.name = "gemini",
	.decode_request = gemini_decode_request,
	.encode_request = gemini_encode_request,
	.decode_response = gemini_decode_response,
	.encode_response = gemini_encode_response,
	.decode_error = gemini_decode_error,
	.encode_error = gemini_encode_error,
	.sdec_new = gemini_sdec_new,
	.sdec_event = gemini_sdec_event,
	.sdec_end = gemini_sdec_end,
	.sdec_free = gemini_sdec_free,
	.senc_new = gemini_senc_new,
	.senc_event = gemini_senc_event,
	.senc_free = gemini_senc_free,
	.usage = gemini_usage,
	.chat_url = gemini_chat_url,
	.auth_headers = gemini_auth_headers,
};
