/*
 * openai.c — the OpenAI Chat Completions wire format (see format.h).
 *
 * The canonical form is OpenAI Chat Completions plus "x_" fields, so this
 * file is mostly validation and filtering.  An OpenAI client talking to an
 * OpenAI provider never comes here (the proxy passes the body through);
 * these functions run when the other side is Anthropic or Gemini, so the
 * client side must refuse what the other side cannot do, and the provider
 * side must turn whatever canonical form the other decoders built into a
 * body that OpenAI and OpenAI-compatible services (DeepSeek, vLLM, Groq,
 * Ollama, ...) accept.
 *
 * Client request → canonical (decode_request).  The canonical request is
 * built from scratch: only the fields listed here are carried, everything
 * else (frequency_penalty, presence_penalty, logit_bias, logprobs,
 * top_logprobs, seed, user, metadata, store, service_tier, prediction,
 * web_search_options, verbosity, message "name", tool "strict", image
 * "detail", any "x_" field a client sends, ...) is dropped.  JSON null
 * counts as "not given" for every optional field.
 *   model (string, required), messages (non-empty array, required),
 *   stream (bool), stream_options {include_usage (bool)},
 *   max_completion_tokens or else max_tokens → max_tokens (integer
 *   1..2^31-1), temperature (number 0..2), top_p (number 0..1), stop
 *   (string or array of strings → array; [] dropped), n (1 only: n > 1 is
 *   400, Anthropic and Gemini give one choice), tools (type "function"
 *   only → {type, function:{name, description?, parameters?}}; other tool
 *   types 400), tool_choice ("auto" | "none" | "required" | {type:
 *   "function", function:{name}}; other forms 400), parallel_tool_calls
 *   (bool), response_format (type "text" | "json_object" | "json_schema"
 *   with json_schema.name; copied whole), reasoning_effort (none, minimal,
 *   low, medium, high, xhigh: carried as is, and also mapped to Gemini's
 *   x_thinking_config {thinkingBudget} with Google's documented budgets
 *   for its own OpenAI endpoint: none 0, minimal/low 1024, medium 8192,
 *   high/xhigh 24576.  It is NOT mapped to Anthropic's x_thinking: a
 *   thinking Claude needs its signed thinking blocks sent back on every
 *   tool-use turn, which an OpenAI client cannot do, and thinking also
 *   forbids temperature and forced tool_choice).
 *   Legacy function calling (functions, function_call, role "function",
 *   assistant function_call) is 400: the answer would come back as
 *   tool_calls, which a legacy client does not read.  audio output
 *   (audio, modalities with "audio") is 400.
 *   Messages: system and developer → role "system" (content: string or
 *   text parts); user (string or parts: text, image_url{url} — image_url
 *   may also be a bare string; input_audio and file parts are 400 "not
 *   supported when the provider is not OpenAI-compatible"); assistant
 *   (content string, null or text/refusal parts — refusal parts become
 *   text; tool_calls with id, type "function", function.name and
 *   function.arguments as a string; reasoning_content → x_thinking
 *   [{thinking}] without a signature); tool (tool_call_id required,
 *   content string or text parts; x_name is set to the function's name
 *   found in an earlier assistant tool call with that id, or to the
 *   message's own "name").  Wrong types are 400 naming the field.
 *
 * Canonical → provider request (encode_request): model = o->model; the
 * standard fields copied, every "x_" field dropped (x_top_k: OpenAI has no
 * top_k; x_thinking / x_thinking_config: provider-specific; x_is_error,
 * x_name, x_thought_signature: OpenAI has no place for them).  Content
 * made of text parts only becomes one string (parts joined with "\n"),
 * because many compatible services take only strings; a user message with
 * images keeps its parts.  Tool messages always get string content; images
 * in tool results (Anthropic allows them) are moved into one user message
 * placed right after the run of tool messages, since OpenAI tool messages
 * hold text only.  An assistant message with neither text nor tool calls
 * gets content "".  x_thinking on assistant messages is dropped, not sent
 * as reasoning_content: OpenAI rejects unknown message fields and
 * DeepSeek's reasoner documents a 400 when reasoning_content comes back.
 * The token limit is sent as max_completion_tokens to OpenAI's own model
 * families (names starting "gpt-", "chatgpt-" or "o" + digit, whose
 * reasoning models reject max_tokens) and as max_tokens to everything else
 * (most compatible services know only max_tokens).  tool_choice and
 * parallel_tool_calls are sent only with tools (OpenAI rejects them
 * alone).  o->stream adds stream:true and stream_options:{include_usage:
 * true} so usage can be recorded.
 *
 * Provider answer → canonical (decode_response): choices[0].message is
 * required (502 otherwise).  reasoning_content (DeepSeek, vLLM) or
 * reasoning (newer vLLM, OpenRouter) → x_thinking [{thinking}]; refusal
 * becomes the content when there is no other text; legacy function_call →
 * one tool call; finish_reason "function_call" → "tool_calls", and "stop"
 * with tool calls present → "tool_calls" (OpenAI answers "stop" when
 * tool_choice forces a function, but an Anthropic client needs tool_use);
 * unknown or missing finish_reason → "stop" ("tool_calls" with tool
 * calls).  Usage keeps cached and reasoning token details.
 *
 * Canonical → client answer (encode_response): id kept when it starts
 * "chatcmpl-", else "chatcmpl-" + id (or a generated one); model =
 * o->model; content null only when there are tool calls and no text
 * (else a string, "" at worst: clients call string methods on it);
 * refusal:null and logprobs:null as OpenAI sends them; reasoning_content
 * = x_thinking texts joined with "\n" when there are any (redacted blocks
 * and signatures are dropped); finish_reason outside the four → "stop";
 * usage always present (unknown numbers 0).  No "x_" field reaches the
 * client.
 *
 * Errors: decode_error reads {error:{message}}, {error:"..."}, a bare
 * {message}, {detail} (FastAPI services) and a JSON array of those; the
 * neutral type comes from the HTTP status (OpenAI's own type field is not
 * reliable: a bad key is 401 with type invalid_request_error).  A body
 * that is not JSON is never echoed.  encode_error maps neutral types to
 * OpenAI's (see openai_error_type).
 *
 * Streams.  Decoder (provider chunks → struct cev): START on the first
 * chunk; per chunk THINKING, TEXT (refusal deltas as text), tool calls,
 * FINISH, USAGE in that order; [DONE] → END; {error:...} (or any data
 * under "event: error") → ERROR; data: {} keep-alives are skipped.  Tool
 * calls are numbered 0, 1, 2... in order of appearance, whatever index the
 * provider uses: a fragment starts a new call when its index was not seen,
 * or when it carries a different id AND a function name (Ollama sends
 * every parallel call at index 0 with its own id; some services repeat a
 * fresh id on every fragment of one call, without the name).  A body that
 * ends without [DONE] is an error unless finish_reason was seen (some
 * compatible services omit [DONE]).
 * Encoder (struct cev → chunks for the openai SDK): every chunk has the
 * same id and created; the first carries delta {role:"assistant",
 * content:""}; usage:null on every chunk and a final choices:[] chunk with
 * usage only when the client asked include_usage; errors are sent as
 * data: {"error":{...}}, which the SDK raises as APIError, then [DONE] for
 * clients that read raw SSE.  SIGNATURE events are dropped (OpenAI has no
 * place for them).
 */
#include "providers/format.h"

#include <event2/buffer.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "providers/wire_util.h"
#include "util/alloc.h"
#include "util/utf8.h"
#include "util/str.h"

#define MAX_TOKENS_LIMIT 2147483647LL
/* Tool calls one stream may open: bounds the decoder's and encoder's
 * tables against a hostile upstream. */
#define MAX_STREAM_TOOLS 1024

/* ---- small helpers ---- */

/* obj[key] unless absent or JSON null: clients send null for "not given". */
static json_t *opt(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_null(v) ? NULL : v;
}

static bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* A JSON string of s[0, n).  jansson refuses invalid UTF-8, and a bad
 * byte from a peer must not cost the whole chunk, so each invalid byte
 * becomes U+FFFD instead. */
static json_t *jstr(const char *s, size_t n)
{
	if (!s)
		return json_string("");
	json_t *j = json_stringn(s, n);
	if (j)
		return j;
	char *buf = xmalloc(n * 3 + 1);
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq_len((const unsigned char *)s + i, n - i);
		if (k == 0) {
			buf[o++] = '\xEF'; /* U+FFFD */
			buf[o++] = '\xBF';
			buf[o++] = '\xBD';
			i++;
		} else {
			memcpy(buf + o, s + i, k);
			o += k;
			i += k;
		}
	}
	j = json_stringn(buf, o);
	free(buf);
	return j ? j : json_string("");
}

static json_t *jstr0(const char *s)
{
	return jstr(s, s ? strlen(s) : 0);
}

/* Copy src into dst[size], cut at a UTF-8 character boundary. */
static void copy_text(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);
	if (n >= size) {
		n = size - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* A short, safe echo of a client-supplied string for an error message. */
static const char *echo(char *buf, size_t size, const char *s)
{
	copy_text(buf, size, s ? s : "");
	return buf;
}

static bool is_part(const json_t *p, const char *type)
{
	return streq(wire_str(p, "type"), type);
}

/* The text of a content value: a string as is, or the "text" parts of an
 * array joined with sep.  Returns a malloc'd buffer (NUL-terminated, may
 * hold NULs), its length in *len. */
static char *join_text(const json_t *content, const char *sep, size_t *len)
{
	if (json_is_string(content)) {
		*len = json_string_length(content);
		char *s = xmalloc(*len + 1);
		memcpy(s, json_string_value(content), *len);
		s[*len] = '\0';
		return s;
	}
	size_t seplen = strlen(sep), total = 0, count = 0, i;
	json_t *p;
	json_array_foreach (content, i, p) {
		const json_t *t = json_object_get(p, "text");
		if (is_part(p, "text") && json_is_string(t))
			total += json_string_length(t) + (count++ ? seplen : 0);
	}
	char *s = xmalloc(total + 1);
	size_t o = 0;
	count = 0;
	json_array_foreach (content, i, p) {
		const json_t *t = json_object_get(p, "text");
		if (!is_part(p, "text") || !json_is_string(t))
			continue;
		if (count++) {
			memcpy(s + o, sep, seplen);
			o += seplen;
		}
		memcpy(s + o, json_string_value(t), json_string_length(t));
		o += json_string_length(t);
	}
	s[o] = '\0';
	*len = o;
	return s;
}

/* join_text as a JSON string (new reference). */
static json_t *joined(const json_t *content, const char *sep)
{
	size_t n;
	char *s = join_text(content, sep, &n);
	json_t *j = jstr(s, n);
	free(s);
	return j;
}

static bool has_part(const json_t *content, const char *type)
{
	size_t i;
	json_t *p;
	json_array_foreach (content, i, p) {
		if (is_part(p, type))
			return true;
	}
	return false;
}

/* The "chatcmpl-" id the openai SDK expects, from a peer's id when it is
 * short printable ASCII, else generated. */
static void chat_id(char *buf, size_t size, const char *id)
{
	size_t n = id ? strlen(id) : 0;
	bool ok = n > 0 && n <= 64;
	for (size_t i = 0; ok && i < n; i++)
		ok = id[i] > 0x20 && id[i] < 0x7f && id[i] != '"' && id[i] != '\\';
	if (!ok)
		wire_random_id(buf, size, "chatcmpl-");
	else if (strncmp(id, "chatcmpl-", 9) == 0)
		str_copy(buf, size, id);
	else
		snprintf(buf, size, "chatcmpl-%s", id);
}

/* Set obj[key] to a non-negative count, when known. */
static void set_count(json_t *obj, const char *key, int64_t v)
{
	if (v >= 0)
		json_object_set_new(obj, key, json_integer(v));
}

/* An OpenAI usage object; unknown counts are 0 when zeros is set (the
 * client-facing shape has no way to say "unknown"), else left out. */
static json_t *usage_to_json(const struct wire_usage *u, bool zeros)
{
	json_t *o = json_object();
	int64_t p = u->prompt, c = u->completion, t = u->total;
	if (t < 0 && p >= 0 && c >= 0)
		t = p + c;
	if (zeros) {
		p = p < 0 ? 0 : p;
		c = c < 0 ? 0 : c;
		t = t < 0 ? p + c : t;
	}
	set_count(o, "prompt_tokens", p);
	set_count(o, "completion_tokens", c);
	set_count(o, "total_tokens", t);
	if (u->cached >= 0)
		json_object_set_new(o, "prompt_tokens_details",
		                    json_pack("{s:I}", "cached_tokens", (json_int_t)u->cached));
	if (u->reasoning >= 0)
		json_object_set_new(o, "completion_tokens_details",
		                    json_pack("{s:I}", "reasoning_tokens", (json_int_t)u->reasoning));
	return o;
}

/* A canonical finish_reason from a provider's: "function_call" and a
 * "stop" that came with tool calls are "tool_calls"; unknown is "stop". */
static const char *map_finish(const char *f, bool tools)
{
	if (streq(f, "length") || streq(f, "content_filter") || streq(f, "tool_calls"))
		return f;
	if (streq(f, "function_call"))
		return "tool_calls";
	return tools ? "tool_calls" : "stop";
}

/* A finish_reason a client may see: one of the four, else "stop". */
static const char *client_finish(const char *f)
{
	if (streq(f, "length") || streq(f, "content_filter") || streq(f, "tool_calls"))
		return f;
	return "stop";
}

/* ---- client request → canonical ---- */

enum role { R_SYSTEM, R_USER, R_ASSISTANT, R_TOOL };
static const char *const role_name[] = { "system", "user", "assistant", "tool" };

/* One content part of a message → canonical part (new ref), NULL + err. */
static json_t *dec_part(const json_t *p, const char *path, enum role role, struct wire_err *err)
{
	char b[48];
	if (!json_is_object(p)) {
		wire_err_set(err, 400, "%s: must be an object", path);
		return NULL;
	}
	const char *type = wire_str(p, "type");
	if (!type) {
		wire_err_set(err, 400, "%s.type: must be a string", path);
		return NULL;
	}
	if (strcmp(type, "text") == 0) {
		const json_t *t = json_object_get(p, "text");
		if (!json_is_string(t)) {
			wire_err_set(err, 400, "%s.text: must be a string", path);
			return NULL;
		}
		return json_pack("{s:s, s:s%}", "type", "text", "text", json_string_value(t),
		                 json_string_length(t));
	}
	if (strcmp(type, "refusal") == 0 && role == R_ASSISTANT) {
		const json_t *t = json_object_get(p, "refusal");
		if (!json_is_string(t)) {
			wire_err_set(err, 400, "%s.refusal: must be a string", path);
			return NULL;
		}
		return json_pack("{s:s, s:s%}", "type", "text", "text", json_string_value(t),
		                 json_string_length(t));
	}
	if (strcmp(type, "image_url") == 0 && role == R_USER) {
		const json_t *iu = json_object_get(p, "image_url");
		const char *url = json_is_string(iu) ? json_string_value(iu) : wire_str(iu, "url");
		if (!url || !*url) {
			wire_err_set(err, 400, "%s.image_url.url: must be a non-empty string", path);
			return NULL;
		}
		const json_t *detail = opt(iu, "detail");
		if (detail && !json_is_string(detail)) {
			wire_err_set(err, 400, "%s.image_url.detail: must be a string", path);
			return NULL;
		}
		return json_pack("{s:s, s:{s:s}}", "type", "image_url", "image_url", "url", url);
	}
	if ((strcmp(type, "input_audio") == 0 || strcmp(type, "file") == 0) && role == R_USER) {
		wire_err_set(err, 400,
		             "%s: %s parts are not supported when the provider is not OpenAI-compatible",
		             path, type);
		return NULL;
	}
	wire_err_set(err, 400, "%s.type: \"%s\" parts are not allowed in %s messages", path,
	             echo(b, sizeof(b), type), role_name[role]);
	return NULL;
}

/* A message's content → canonical content (new ref: string, parts array,
 * or JSON null for an assistant message without text). */
static json_t *dec_content(const json_t *m, const char *path, enum role role, struct wire_err *err)
{
	const json_t *c = opt(m, "content");
	if (!c) {
		if (role == R_ASSISTANT)
			return json_null();
		wire_err_set(err, 400, "%s.content: required", path);
		return NULL;
	}
	if (json_is_string(c))
		return json_stringn(json_string_value(c), json_string_length(c));
	if (!json_is_array(c)) {
		wire_err_set(err, 400, "%s.content: must be a string or an array of content parts", path);
		return NULL;
	}
	if (json_array_size(c) == 0) {
		if (role == R_ASSISTANT)
			return json_null();
		wire_err_set(err, 400, "%s.content: must not be empty", path);
		return NULL;
	}
	json_t *out = json_array();
	size_t i;
	json_t *p;
	json_array_foreach (c, i, p) {
		char pp[96];
		snprintf(pp, sizeof(pp), "%s.content[%zu]", path, i);
		json_t *cp = dec_part(p, pp, role, err);
		if (!cp) {
			json_decref(out);
			return NULL;
		}
		json_array_append_new(out, cp);
	}
	return out;
}

/* An assistant message's tool_calls → canonical array (new ref), an empty
 * array when there are none; NULL + err. */
static json_t *dec_tool_calls(const json_t *m, const char *path, struct wire_err *err)
{
	const json_t *tcs = opt(m, "tool_calls");
	json_t *out = json_array();
	if (!tcs)
		return out;
	if (!json_is_array(tcs)) {
		wire_err_set(err, 400, "%s.tool_calls: must be an array", path);
		goto fail;
	}
	size_t i;
	json_t *tc;
	json_array_foreach (tcs, i, tc) {
		char b[48];
		if (!json_is_object(tc)) {
			wire_err_set(err, 400, "%s.tool_calls[%zu]: must be an object", path, i);
			goto fail;
		}
		const char *id = wire_str(tc, "id");
		if (!id || !*id) {
			wire_err_set(err, 400, "%s.tool_calls[%zu].id: must be a non-empty string", path, i);
			goto fail;
		}
		const json_t *type = opt(tc, "type");
		if (type && !streq(json_string_value(type), "function")) {
			wire_err_set(
			    err, 400,
			    "%s.tool_calls[%zu].type: only \"function\" tool calls are supported when the "
			    "provider is not OpenAI-compatible (got \"%s\")",
			    path, i, echo(b, sizeof(b), json_string_value(type)));
			goto fail;
		}
		const json_t *f = json_object_get(tc, "function");
		if (!json_is_object(f)) {
			wire_err_set(err, 400, "%s.tool_calls[%zu].function: must be an object", path, i);
			goto fail;
		}
		const char *name = wire_str(f, "name");
		if (!name || !*name) {
			wire_err_set(err, 400, "%s.tool_calls[%zu].function.name: must be a non-empty string",
			             path, i);
			goto fail;
		}
		const json_t *args = json_object_get(f, "arguments");
		if (!json_is_string(args)) {
			wire_err_set(err, 400, "%s.tool_calls[%zu].function.arguments: must be a string",
			             path, i);
			goto fail;
		}
		json_array_append_new(out, json_pack("{s:s, s:s, s:{s:s, s:s%}}", "id", id, "type",
		                                     "function", "function", "name", name, "arguments",
		                                     json_string_value(args), json_string_length(args)));
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

/* names: the function name of every tool call id seen so far (a jansson
 * object as a hash map, so a body with many tool messages stays linear). */
static json_t *dec_message(const json_t *m, size_t idx, json_t *names, struct wire_err *err)
{
	char path[48], b[48];
	snprintf(path, sizeof(path), "messages[%zu]", idx);
	if (!json_is_object(m)) {
		wire_err_set(err, 400, "%s: must be an object", path);
		return NULL;
	}
	const char *r = wire_str(m, "role");
	enum role role;
	if (!r) {
		wire_err_set(err, 400, "%s.role: must be a string", path);
		return NULL;
	} else if (strcmp(r, "system") == 0 || strcmp(r, "developer") == 0) {
		role = R_SYSTEM;
	} else if (strcmp(r, "user") == 0) {
		role = R_USER;
	} else if (strcmp(r, "assistant") == 0) {
		role = R_ASSISTANT;
	} else if (strcmp(r, "tool") == 0) {
		role = R_TOOL;
	} else if (strcmp(r, "function") == 0) {
		wire_err_set(
		    err, 400,
		    "%s.role: \"function\" messages (legacy function calling) are not supported when the "
		    "provider is not OpenAI-compatible; use tools and \"tool\" messages",
		    path);
		return NULL;
	} else {
		wire_err_set(err, 400, "%s.role: unsupported role \"%s\"", path, echo(b, sizeof(b), r));
		return NULL;
	}

	json_t *content = dec_content(m, path, role, err);
	if (!content)
		return NULL;
	json_t *out = json_pack("{s:s, s:o}", "role", role_name[role], "content", content);

	if (role == R_ASSISTANT) {
		if (opt(m, "function_call")) {
			wire_err_set(
			    err, 400,
			    "%s.function_call: legacy function calling is not supported when the provider "
			    "is not OpenAI-compatible; use tool_calls",
			    path);
			goto fail;
		}
		json_t *tcs = dec_tool_calls(m, path, err);
		if (!tcs)
			goto fail;
		size_t k;
		json_t *tc;
		json_array_foreach (tcs, k, tc) {
			json_object_set(names, wire_str(tc, "id"),
			                json_object_get(json_object_get(tc, "function"), "name"));
		}
		wire_set_nonempty(out, "tool_calls", tcs);
		const json_t *rc = opt(m, "reasoning_content");
		if (rc && !json_is_string(rc)) {
			wire_err_set(err, 400, "%s.reasoning_content: must be a string", path);
			goto fail;
		}
		if (rc && json_string_length(rc))
			json_object_set_new(
			    out, "x_thinking",
			    json_pack("[{s:s%}]", "thinking", json_string_value(rc), json_string_length(rc)));
	} else if (role == R_TOOL) {
		const char *id = wire_str(m, "tool_call_id");
		if (!id || !*id) {
			wire_err_set(err, 400, "%s.tool_call_id: must be a non-empty string", path);
			goto fail;
		}
		json_object_set_new(out, "tool_call_id", json_string(id));
		const char *name = wire_str(names, id);
		if (!name)
			name = wire_str(m, "name");
		if (name && *name)
			json_object_set_new(out, "x_name", json_string(name));
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

static json_t *dec_tools(const json_t *tools, struct wire_err *err)
{
	if (!json_is_array(tools)) {
		wire_err_set(err, 400, "tools: must be an array");
		return NULL;
	}
	json_t *out = json_array();
	size_t i;
	json_t *t;
	json_array_foreach (tools, i, t) {
		char b[48];
		if (!json_is_object(t)) {
			wire_err_set(err, 400, "tools[%zu]: must be an object", i);
			goto fail;
		}
		const char *type = wire_str(t, "type");
		if (!streq(type, "function")) {
			wire_err_set(
			    err, 400,
			    "tools[%zu].type: only \"function\" tools are supported when the provider is not "
			    "OpenAI-compatible (got \"%s\")",
			    i, echo(b, sizeof(b), type ? type : "(none)"));
			goto fail;
		}
		const json_t *f = json_object_get(t, "function");
		if (!json_is_object(f)) {
			wire_err_set(err, 400, "tools[%zu].function: must be an object", i);
			goto fail;
		}
		const char *name = wire_str(f, "name");
		if (!name || !*name) {
			wire_err_set(err, 400, "tools[%zu].function.name: must be a non-empty string", i);
			goto fail;
		}
		json_t *cf = json_pack("{s:s}", "name", name);
		const json_t *desc = opt(f, "description");
		const json_t *params = opt(f, "parameters");
		if (desc && !json_is_string(desc)) {
			json_decref(cf);
			wire_err_set(err, 400, "tools[%zu].function.description: must be a string", i);
			goto fail;
		}
		if (params && !json_is_object(params)) {
			json_decref(cf);
			wire_err_set(err, 400, "tools[%zu].function.parameters: must be an object", i);
			goto fail;
		}
		if (desc)
			json_object_set_new(cf, "description", json_deep_copy(desc));
		if (params)
			json_object_set_new(cf, "parameters", json_deep_copy(params));
		json_array_append_new(out, json_pack("{s:s, s:o}", "type", "function", "function", cf));
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

static json_t *dec_tool_choice(const json_t *tc, struct wire_err *err)
{
	if (json_is_string(tc)) {
		const char *s = json_string_value(tc);
		if (streq(s, "auto") || streq(s, "none") || streq(s, "required"))
			return json_string(s);
		wire_err_set(err, 400, "tool_choice: must be \"auto\", \"none\", \"required\" or a function");
		return NULL;
	}
	if (!json_is_object(tc)) {
		wire_err_set(err, 400, "tool_choice: must be a string or an object");
		return NULL;
	}
	if (!streq(wire_str(tc, "type"), "function")) {
		wire_err_set(err, 400,
		             "tool_choice.type: only \"function\" is supported when the provider is not "
		             "OpenAI-compatible");
		return NULL;
	}
	const char *name = wire_str(json_object_get(tc, "function"), "name");
	if (!name || !*name) {
		wire_err_set(err, 400, "tool_choice.function.name: must be a non-empty string");
		return NULL;
	}
	return json_pack("{s:s, s:{s:s}}", "type", "function", "function", "name", name);
}

static json_t *dec_response_format(const json_t *rf, struct wire_err *err)
{
	if (!json_is_object(rf)) {
		wire_err_set(err, 400, "response_format: must be an object");
		return NULL;
	}
	const char *type = wire_str(rf, "type");
	if (streq(type, "json_schema")) {
		const json_t *js = json_object_get(rf, "json_schema");
		if (!json_is_object(js)) {
			wire_err_set(err, 400, "response_format.json_schema: must be an object");
			return NULL;
		}
		if (!wire_str(js, "name")) {
			wire_err_set(err, 400, "response_format.json_schema.name: must be a string");
			return NULL;
		}
		const json_t *schema = opt(js, "schema");
		if (schema && !json_is_object(schema)) {
			wire_err_set(err, 400, "response_format.json_schema.schema: must be an object");
			return NULL;
		}
	} else if (!streq(type, "text") && !streq(type, "json_object")) {
		wire_err_set(err, 400,
		             "response_format.type: must be \"text\", \"json_object\" or \"json_schema\"");
		return NULL;
	}
	return json_deep_copy(rf);
}

/* Google's budgets for reasoning_effort on its own OpenAI endpoint. */
static int effort_budget(const char *effort)
{
	static const struct {
		const char *name;
		int budget;
	} tab[] = { { "none", 0 },      { "minimal", 1024 }, { "low", 1024 },
		    { "medium", 8192 }, { "high", 24576 },   { "xhigh", 24576 } };
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (streq(effort, tab[i].name))
			return tab[i].budget;
	return -1;
}

/* A number field within [lo, hi] copied to out; 0 absent or ok, -1 bad. */
static int dec_number(const json_t *body, const char *key, double lo, double hi, json_t *out,
                      struct wire_err *err)
{
	const json_t *v = opt(body, key);
	if (!v)
		return 0;
	if (!json_is_number(v)) {
		wire_err_set(err, 400, "%s: must be a number", key);
		return -1;
	}
	double d = json_number_value(v);
	if (!(d >= lo && d <= hi)) {
		wire_err_set(err, 400, "%s: must be between %g and %g", key, lo, hi);
		return -1;
	}
	json_object_set_new(out, key, json_deep_copy(v));
	return 0;
}

static int dec_bool(const json_t *body, const char *key, json_t *out, struct wire_err *err)
{
	const json_t *v = opt(body, key);
	if (!v)
		return 0;
	if (!json_is_boolean(v)) {
		wire_err_set(err, 400, "%s: must be a boolean", key);
		return -1;
	}
	json_object_set_new(out, key, json_boolean(json_is_true(v)));
	return 0;
}

static int dec_stop(const json_t *body, json_t *out, struct wire_err *err)
{
	const json_t *v = opt(body, "stop");
	if (!v)
		return 0;
	json_t *arr = json_array();
	if (json_is_string(v)) {
		json_array_append_new(arr, json_stringn(json_string_value(v), json_string_length(v)));
	} else if (json_is_array(v)) {
		size_t i;
		json_t *s;
		json_array_foreach (v, i, s) {
			if (!json_is_string(s)) {
				json_decref(arr);
				wire_err_set(err, 400, "stop[%zu]: must be a string", i);
				return -1;
			}
			json_array_append_new(arr, json_stringn(json_string_value(s), json_string_length(s)));
		}
	} else {
		json_decref(arr);
		wire_err_set(err, 400, "stop: must be a string or an array of strings");
		return -1;
	}
	wire_set_nonempty(out, "stop", arr);
	return 0;
}

static int dec_max_tokens(const json_t *body, json_t *out, struct wire_err *err)
{
	static const char *const keys[] = { "max_tokens", "max_completion_tokens" };
	const json_t *use = NULL;
	for (size_t i = 0; i < 2; i++) {
		const json_t *v = opt(body, keys[i]);
		if (!v)
			continue;
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > MAX_TOKENS_LIMIT) {
			wire_err_set(err, 400, "%s: must be an integer between 1 and %lld", keys[i],
			             MAX_TOKENS_LIMIT);
			return -1;
		}
		use = v; /* max_completion_tokens, the newer name, wins */
	}
	if (use)
		json_object_set_new(out, "max_tokens", json_integer(json_integer_value(use)));
	return 0;
}

/* Top-level fields we refuse rather than silently ignore: the client would
 * wait for something that never comes. */
static int dec_refused(const json_t *body, struct wire_err *err)
{
	if (opt(body, "functions") || opt(body, "function_call")) {
		wire_err_set(err, 400,
		             "%s: legacy function calling is not supported when the provider is not "
		             "OpenAI-compatible; use tools and tool_choice",
		             opt(body, "functions") ? "functions" : "function_call");
		return -1;
	}
	const json_t *n = opt(body, "n");
	if (n) {
		if (!json_is_integer(n) || json_integer_value(n) < 1) {
			wire_err_set(err, 400, "n: must be a positive integer");
			return -1;
		}
		if (json_integer_value(n) > 1) {
			wire_err_set(err, 400,
			             "n: more than one choice is not supported when the provider is not "
			             "OpenAI-compatible");
			return -1;
		}
	}
	const json_t *mod = opt(body, "modalities");
	size_t i;
	json_t *m;
	json_array_foreach (mod, i, m) {
		if (streq(json_string_value(m), "audio")) {
			wire_err_set(err, 400,
			             "modalities: audio output is not supported when the provider is not "
			             "OpenAI-compatible");
			return -1;
		}
	}
	if (opt(body, "audio")) {
		wire_err_set(
		    err, 400,
		    "audio: audio output is not supported when the provider is not OpenAI-compatible");
		return -1;
	}
	return 0;
}

static json_t *openai_decode_request(const json_t *body, struct wire_err *err)
{
	if (!json_is_object(body)) {
		wire_err_set(err, 400, "request body must be a JSON object");
		return NULL;
	}
	const char *model = wire_str(body, "model");
	if (!model || !*model) {
		wire_err_set(err, 400, "model: must be a non-empty string");
		return NULL;
	}
	const json_t *msgs = json_object_get(body, "messages");
	if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
		wire_err_set(err, 400, "messages: must be a non-empty array");
		return NULL;
	}
	if (dec_refused(body, err) < 0)
		return NULL;

	json_t *out = json_pack("{s:s}", "model", model);
	json_t *cm = json_array(), *names = json_object();
	json_object_set_new(out, "messages", cm);
	size_t i;
	json_t *m;
	json_array_foreach (msgs, i, m) {
		json_t *c = dec_message(m, i, names, err);
		if (!c) {
			json_decref(names);
			goto fail;
		}
		json_array_append_new(cm, c);
	}
	json_decref(names);

	if (dec_bool(body, "stream", out, err) < 0)
		goto fail;
	const json_t *so = opt(body, "stream_options");
	if (so) {
		const json_t *iu = opt(so, "include_usage");
		if (!json_is_object(so) || (iu && !json_is_boolean(iu))) {
			wire_err_set(err, 400,
			             "stream_options: must be an object with a boolean include_usage");
			goto fail;
		}
		if (iu)
			json_object_set_new(out, "stream_options",
			                    json_pack("{s:b}", "include_usage", json_is_true(iu)));
	}
	if (dec_max_tokens(body, out, err) < 0 || dec_number(body, "temperature", 0, 2, out, err) < 0 ||
	    dec_number(body, "top_p", 0, 1, out, err) < 0 || dec_stop(body, out, err) < 0)
		goto fail;

	const json_t *tools = opt(body, "tools");
	if (tools) {
		json_t *t = dec_tools(tools, err);
		if (!t)
			goto fail;
		wire_set_nonempty(out, "tools", t);
	}
	const json_t *tc = opt(body, "tool_choice");
	if (tc) {
		json_t *t = dec_tool_choice(tc, err);
		if (!t)
			goto fail;
		json_object_set_new(out, "tool_choice", t);
	}
	if (dec_bool(body, "parallel_tool_calls", out, err) < 0)
		goto fail;
	const json_t *rf = opt(body, "response_format");
	if (rf) {
		json_t *r = dec_response_format(rf, err);
		if (!r)
			goto fail;
		json_object_set_new(out, "response_format", r);
	}
	const json_t *re = opt(body, "reasoning_effort");
	if (re) {
		int budget = effort_budget(json_string_value(re));
		if (budget < 0) {
			wire_err_set(
			    err, 400,
			    "reasoning_effort: must be one of none, minimal, low, medium, high, xhigh");
			goto fail;
		}
		json_object_set_new(out, "reasoning_effort", json_string(json_string_value(re)));
		json_object_set_new(out, "x_thinking_config", json_pack("{s:i}", "thinkingBudget", budget));
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

/* ---- canonical → provider request ---- */

/* OpenAI's own families, whose reasoning models take only
 * max_completion_tokens (every OpenAI chat model accepts it). */
static bool openai_family(const char *model)
{
	if (!model)
		return false;
	if (strncmp(model, "gpt-", 4) == 0 || strncmp(model, "chatgpt-", 8) == 0)
		return true;
	return model[0] == 'o' && model[1] >= '0' && model[1] <= '9';
}

/* User/system content: one string when it is all text, parts otherwise. */
static json_t *enc_content(const json_t *c, bool images)
{
	if (!json_is_array(c))
		return json_is_string(c) ? json_deep_copy(c) : json_string("");
	if (!images || !has_part(c, "image_url"))
		return joined(c, "\n");
	json_t *out = json_array();
	size_t i;
	json_t *p;
	json_array_foreach (c, i, p) {
		const json_t *t = json_object_get(p, "text");
		const char *url = wire_str(json_object_get(p, "image_url"), "url");
		if (is_part(p, "text") && json_is_string(t))
			json_array_append_new(out, json_pack("{s:s, s:s%}", "type", "text", "text",
			                                     json_string_value(t), json_string_length(t)));
		else if (is_part(p, "image_url") && url)
			json_array_append_new(
			    out, json_pack("{s:s, s:{s:s}}", "type", "image_url", "image_url", "url", url));
	}
	return out;
}

static json_t *enc_tool_calls(const json_t *tcs)
{
	json_t *out = json_array();
	size_t i;
	json_t *tc;
	json_array_foreach (tcs, i, tc) {
		const json_t *f = json_object_get(tc, "function");
		const char *id = wire_str(tc, "id");
		const char *name = wire_str(f, "name");
		const json_t *args = json_object_get(f, "arguments");
		char gen[40];
		if (!name)
			continue;
		if (!id) {
			wire_random_id(gen, sizeof(gen), "call_");
			id = gen;
		}
		json_t *a;
		if (json_is_string(args)) {
			a = json_deep_copy(args);
		} else if (args && !json_is_null(args)) {
			char *s = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
			a = json_string(s ? s : "{}");
			free(s);
		} else {
			a = json_string("{}");
		}
		json_array_append_new(out, json_pack("{s:s, s:s, s:{s:s, s:o}}", "id", id, "type", "function",
		                                     "function", "name", name, "arguments", a));
	}
	return out;
}

/* Images from tool results, held until the run of tool messages ends. */
static void flush_tool_images(json_t *msgs, json_t **images)
{
	if (!*images)
		return;
	json_t *parts = json_array();
	json_array_append_new(parts, json_pack("{s:s, s:s}", "type", "text", "text",
	                                       "Images returned by the tool calls above:"));
	json_array_extend(parts, *images);
	json_decref(*images);
	*images = NULL;
	json_array_append_new(msgs, json_pack("{s:s, s:o}", "role", "user", "content", parts));
}

static int enc_message(const json_t *m, size_t idx, json_t *msgs, json_t **images, struct wire_err *err)
{
	const char *role = wire_str(m, "role");
	const json_t *c = json_object_get(m, "content");
	if (!streq(role, "tool"))
		flush_tool_images(msgs, images);
	if (streq(role, "system") || streq(role, "developer")) {
		json_array_append_new(
		    msgs, json_pack("{s:s, s:o}", "role", "system", "content", enc_content(c, false)));
	} else if (streq(role, "user")) {
		json_array_append_new(
		    msgs, json_pack("{s:s, s:o}", "role", "user", "content", enc_content(c, true)));
	} else if (streq(role, "assistant")) {
		json_t *tcs = enc_tool_calls(json_object_get(m, "tool_calls"));
		json_t *out = json_pack("{s:s}", "role", "assistant");
		size_t n;
		char *text = join_text(c, "\n", &n);
		if (n || !json_array_size(tcs))
			json_object_set_new(out, "content", jstr(text, n));
		else
			json_object_set_new(out, "content", json_null());
		free(text);
		wire_set_nonempty(out, "tool_calls", tcs);
		json_array_append_new(msgs, out);
	} else if (streq(role, "tool")) {
		const char *id = wire_str(m, "tool_call_id");
		if (!id) {
			wire_err_set(err, 400, "messages[%zu]: a tool result without a tool call id", idx);
			return -1;
		}
		size_t n;
		char *text = join_text(c, "\n", &n);
		if (json_is_array(c) && has_part(c, "image_url")) {
			size_t i;
			json_t *p;
			if (!*images)
				*images = json_array();
			json_array_foreach (c, i, p) {
				const char *url = wire_str(json_object_get(p, "image_url"), "url");
				if (is_part(p, "image_url") && url)
					json_array_append_new(*images,
					                      json_pack("{s:s, s:{s:s}}", "type", "image_url",
					                                "image_url", "url", url));
			}
			if (n == 0) {
				free(text);
				text = xstrdup("(image sent in the next message)");
				n = strlen(text);
			}
		}
		json_array_append_new(msgs, json_pack("{s:s, s:s, s:o}", "role", "tool", "tool_call_id", id,
		                                      "content", jstr(text, n)));
		free(text);
	} else {
		wire_err_set(err, 400, "messages[%zu]: unsupported role", idx);
		return -1;
	}
	return 0;
}

static json_t *openai_encode_request(const json_t *canon, const struct wire_opts *o, struct wire_err *err)
{
	const json_t *cm = json_object_get(canon, "messages");
	const char *model = o && o->model ? o->model : wire_str(canon, "model");
	if (!json_is_array(cm) || !model) {
		wire_err_set(err, 400, "request has no model or no messages");
		return NULL;
	}
	json_t *msgs = json_array(), *images = NULL;
	json_t *out = json_pack("{s:s, s:o}", "model", model, "messages", msgs);
	size_t i;
	json_t *m;
	json_array_foreach (cm, i, m) {
		if (enc_message(m, i, msgs, &images, err) < 0) {
			json_decref(images);
			json_decref(out);
			return NULL;
		}
	}
	flush_tool_images(msgs, &images);

	if (o && o->stream) {
		json_object_set_new(out, "stream", json_true());
		json_object_set_new(out, "stream_options", json_pack("{s:b}", "include_usage", 1));
	}
	int64_t mt = wire_int(canon, "max_tokens");
	if (mt > 0)
		json_object_set_new(out, openai_family(model) ? "max_completion_tokens" : "max_tokens",
		                    json_integer(mt));
	static const char *const numbers[] = { "temperature", "top_p" };
	for (size_t k = 0; k < 2; k++) {
		const json_t *v = json_object_get(canon, numbers[k]);
		if (json_is_number(v))
			json_object_set_new(out, numbers[k], json_deep_copy(v));
	}
	const json_t *stop = json_object_get(canon, "stop");
	if (json_is_array(stop) && json_array_size(stop)) {
		json_t *s = json_array(), *v;
		json_array_foreach (stop, i, v) {
			if (json_is_string(v))
				json_array_append_new(s, json_deep_copy(v));
		}
		json_object_set_new(out, "stop", s);
	} else if (json_is_string(stop)) {
		json_object_set_new(out, "stop", json_pack("[o]", json_deep_copy(stop)));
	}

	const json_t *tools = json_object_get(canon, "tools");
	json_t *ot = json_array(), *t;
	json_array_foreach (tools, i, t) {
		const json_t *f = json_object_get(t, "function");
		const char *name = wire_str(f, "name");
		if (!name || (wire_str(t, "type") && !is_part(t, "function")))
			continue;
		json_t *of = json_pack("{s:s}", "name", name);
		const json_t *desc = json_object_get(f, "description");
		const json_t *params = json_object_get(f, "parameters");
		if (json_is_string(desc))
			json_object_set_new(of, "description", json_deep_copy(desc));
		if (json_is_object(params))
			json_object_set_new(of, "parameters", json_deep_copy(params));
		json_array_append_new(ot, json_pack("{s:s, s:o}", "type", "function", "function", of));
	}
	if (json_array_size(ot)) {
		json_object_set_new(out, "tools", ot);
		const json_t *tc = json_object_get(canon, "tool_choice");
		const char *fname = wire_str(json_object_get(tc, "function"), "name");
		const char *mode = json_string_value(tc);
		if (streq(mode, "auto") || streq(mode, "none") || streq(mode, "required"))
			json_object_set_new(out, "tool_choice", json_string(mode));
		else if (fname)
			json_object_set_new(
			    out, "tool_choice",
			    json_pack("{s:s, s:{s:s}}", "type", "function", "function", "name", fname));
		const json_t *ptc = json_object_get(canon, "parallel_tool_calls");
		if (json_is_boolean(ptc))
			json_object_set_new(out, "parallel_tool_calls", json_boolean(json_is_true(ptc)));
	} else {
		json_decref(ot);
	}
	const json_t *rf = json_object_get(canon, "response_format");
	if (json_is_object(rf))
		json_object_set_new(out, "response_format", json_deep_copy(rf));
	const json_t *re = json_object_get(canon, "reasoning_effort");
	if (json_is_string(re))
		json_object_set_new(out, "reasoning_effort", json_deep_copy(re));
	return out;
}

/* ---- provider answer → canonical ---- */

static const char *error_message(const json_t *doc, const json_t **eobj);

static json_t *openai_decode_response(const json_t *body, struct wire_err *err)
{
	const json_t *choice = json_array_get(json_object_get(body, "choices"), 0);
	const json_t *msg = json_object_get(choice, "message");
	if (!json_is_object(msg)) {
		const json_t *eobj;
		const char *emsg = error_message(body, &eobj);
		char b[200];
		if (emsg && json_object_get(body, "error"))
			wire_err_set(err, 502, "provider error: %s", echo(b, sizeof(b), emsg));
		else
			wire_err_set(err, 502, "provider answer has no choices[0].message");
		return NULL;
	}
	json_t *cmsg = json_pack("{s:s}", "role", "assistant");
	json_t *out = NULL;

	/* Tool calls first: they decide what a "stop" means. */
	json_t *tcs = json_array();
	const json_t *src = opt(msg, "tool_calls");
	if (src && !json_is_array(src)) {
		wire_err_set(err, 502, "provider answer: tool_calls is not an array");
		goto fail;
	}
	size_t i;
	json_t *tc;
	json_array_foreach (src, i, tc) {
		const json_t *f = json_object_get(tc, "function");
		if (!json_is_object(f) || !wire_str(f, "name")) {
			wire_err_set(err, 502, "provider answer: tool_calls[%zu] has no function name", i);
			goto fail;
		}
		json_array_append(tcs, tc);
	}
	const json_t *legacy = opt(msg, "function_call");
	if (json_is_object(legacy) && wire_str(legacy, "name"))
		json_array_append_new(tcs, json_pack("{s:O}", "function", legacy));
	json_t *ctcs = enc_tool_calls(tcs); /* normalises ids and arguments */
	json_decref(tcs);
	tcs = NULL;

	const json_t *content = opt(msg, "content");
	const char *refusal = wire_str(msg, "refusal");
	json_t *text = NULL;
	if (json_is_string(content) || json_is_array(content))
		text = joined(content, "");
	if ((!text || json_string_length(text) == 0) && refusal && *refusal) {
		json_decref(text);
		text = json_string(refusal);
	}
	json_object_set_new(cmsg, "content", text ? text : json_null());
	wire_set_nonempty(cmsg, "tool_calls", ctcs);
	const json_t *rc = json_object_get(msg, "reasoning_content");
	if (!json_is_string(rc))
		rc = json_object_get(msg, "reasoning");
	if (json_is_string(rc) && json_string_length(rc))
		json_object_set_new(cmsg, "x_thinking", json_pack("[{s:o}]", "thinking", json_deep_copy(rc)));

	const char *finish =
	    map_finish(wire_str(choice, "finish_reason"), json_object_get(cmsg, "tool_calls") != NULL);
	const char *id = wire_str(body, "id");
	char gen[48];
	if (!id) {
		wire_random_id(gen, sizeof(gen), "chatcmpl-");
		id = gen;
	}
	int64_t created = wire_int(body, "created");
	out = json_pack("{s:s, s:s, s:I, s:[{s:i, s:o, s:s}]}", "id", id, "object", "chat.completion",
	                "created", (json_int_t)(created >= 0 ? created : (int64_t)time(NULL)), "choices",
	                "index", 0, "message", cmsg, "finish_reason", finish);
	cmsg = NULL;
	const char *model = wire_str(body, "model");
	if (model)
		json_object_set_new(out, "model", json_string(model));
	struct wire_usage u;
	wire_canon_usage(json_object_get(body, "usage"), &u);
	if (json_is_object(json_object_get(body, "usage")))
		json_object_set_new(out, "usage", usage_to_json(&u, false));
	return out;
fail:
	json_decref(tcs);
	json_decref(cmsg);
	return NULL;
}

/* ---- canonical → client answer ---- */

static json_t *openai_encode_response(const json_t *canon, const struct wire_opts *o)
{
	const json_t *choice = json_array_get(json_object_get(canon, "choices"), 0);
	const json_t *msg = json_object_get(choice, "message");
	char id[96];
	chat_id(id, sizeof(id), wire_str(canon, "id"));
	int64_t created = wire_int(canon, "created");
	const char *model = o && o->model ? o->model : wire_str(canon, "model");

	json_t *m = json_pack("{s:s}", "role", "assistant");
	json_t *tcs = enc_tool_calls(json_object_get(msg, "tool_calls"));
	const json_t *c = json_object_get(msg, "content");
	size_t n;
	char *text = join_text(c, "", &n);
	if (json_array_size(tcs) && n == 0)
		json_object_set_new(m, "content", json_null());
	else
		json_object_set_new(m, "content", jstr(text, n));
	free(text);
	json_object_set_new(m, "refusal", json_null());
	wire_set_nonempty(m, "tool_calls", tcs);
	const json_t *th = json_object_get(msg, "x_thinking");
	if (json_array_size(th)) {
		/* join_text reads "text"; thinking blocks say "thinking" */
		json_t *parts = json_array(), *b;
		size_t i;
		json_array_foreach (th, i, b) {
			const json_t *t = json_object_get(b, "thinking");
			if (json_is_string(t))
				json_array_append_new(parts,
				                      json_pack("{s:s, s:O}", "type", "text", "text", t));
		}
		if (json_array_size(parts))
			json_object_set_new(m, "reasoning_content", joined(parts, "\n"));
		json_decref(parts);
	}

	struct wire_usage u;
	wire_canon_usage(json_object_get(canon, "usage"), &u);
	return json_pack(
	    "{s:s, s:s, s:I, s:o, s:[{s:i, s:o, s:n, s:s}], s:o}", "id", id, "object", "chat.completion",
	    "created", (json_int_t)(created >= 0 ? created : (int64_t)time(NULL)), "model",
	    jstr0(model ? model : ""), "choices", "index", 0, "message", m, "logprobs", "finish_reason",
	    client_finish(wire_str(choice, "finish_reason")), "usage", usage_to_json(&u, true));
}

/* ---- errors ---- */

/* A status for an error object met inside a 200 stream: its numeric code
 * when it is an HTTP status, else guessed from its type. */
static int status_of(const json_t *e)
{
	int64_t code = wire_int(e, "code");
	if (code >= 400 && code <= 599)
		return (int)code;
	const char *t = wire_str(e, "type");
	const char *cs = wire_str(e, "code");
	if (streq(t, "invalid_request_error"))
		return 400;
	if (streq(t, "authentication_error"))
		return 401;
	if (streq(t, "permission_error"))
		return 403;
	if (streq(t, "not_found_error"))
		return 404;
	if (streq(t, "rate_limit_error") || streq(t, "requests") || streq(t, "tokens") ||
	    streq(t, "insufficient_quota") || streq(cs, "rate_limit_exceeded"))
		return 429;
	if (streq(t, "overloaded_error"))
		return 503;
	if (streq(t, "timeout_error"))
		return 504;
	return 500;
}

/* The message of an error document in any shape services use, or NULL;
 * *eobj the error object when there is one. */
static const char *error_message(const json_t *doc, const json_t **eobj)
{
	if (json_is_array(doc))
		doc = json_array_get(doc, 0);
	const json_t *e = json_object_get(doc, "error");
	*eobj = json_is_object(e) ? e : NULL;
	const char *msg = NULL;
	if (json_is_object(e))
		msg = wire_str(e, "message");
	else if (json_is_string(e))
		msg = json_string_value(e);
	if (!msg)
		msg = wire_str(doc, "message");
	if (!msg)
		msg = wire_str(doc, "detail");
	return msg && *msg ? msg : NULL;
}

static void openai_decode_error(int status, const char *body, size_t len, struct wire_error *out)
{
	memset(out, 0, sizeof(*out));
	out->status = status;
	copy_text(out->type, sizeof(out->type), wire_error_type_for_status(status));
	json_t *j = body && len ? json_loadb(body, len, 0, NULL) : NULL;
	const json_t *e;
	const char *msg = j ? error_message(j, &e) : NULL;
	if (msg)
		copy_text(out->message, sizeof(out->message), msg);
	else if (j)
		snprintf(out->message, sizeof(out->message), "provider returned HTTP %d", status);
	else
		snprintf(out->message, sizeof(out->message), "provider returned HTTP %d with a non-JSON body",
		         status);
	json_decref(j);
}

/* OpenAI's type and code for a neutral error type:
 *   invalid_request_error → invalid_request_error, null
 *   authentication_error  → authentication_error, "invalid_api_key"
 *   permission_error      → permission_error, null
 *   not_found_error       → not_found_error, null
 *   request_too_large     → invalid_request_error, "request_too_large"
 *   rate_limit_error      → rate_limit_error, "rate_limit_exceeded"
 *   api_error             → server_error, null
 *   overloaded_error      → server_error, "overloaded"
 *   timeout_error         → timeout_error, "timeout"
 * anything else: the type for the status, mapped the same way. */
static void openai_error_type(const struct wire_error *e, const char **type, const char **code)
{
	static const struct {
		const char *neutral, *type, *code;
	} tab[] = {
		{ "invalid_request_error", "invalid_request_error", NULL },
		{ "authentication_error", "authentication_error", "invalid_api_key" },
		{ "permission_error", "permission_error", NULL },
		{ "not_found_error", "not_found_error", NULL },
		{ "request_too_large", "invalid_request_error", "request_too_large" },
		{ "rate_limit_error", "rate_limit_error", "rate_limit_exceeded" },
		{ "api_error", "server_error", NULL },
		{ "overloaded_error", "server_error", "overloaded" },
		{ "timeout_error", "timeout_error", "timeout" },
	};
	const char *neutral = e->type;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
			if (streq(neutral, tab[i].neutral)) {
				*type = tab[i].type;
				*code = tab[i].code;
				return;
			}
		}
		neutral = wire_error_type_for_status(e->status);
	}
	*type = "server_error";
	*code = NULL;
}

static json_t *error_body(const struct wire_error *e)
{
	const char *type, *code;
	openai_error_type(e, &type, &code);
	char msg[sizeof(e->message)];
	memcpy(msg, e->message, sizeof(msg));
	msg[sizeof(msg) - 1] = '\0';
	return json_pack("{s:{s:o, s:s, s:n, s:o}}", "error", "message", jstr0(msg), "type", type, "param",
	                 "code", code ? json_string(code) : json_null());
}

static json_t *openai_encode_error(const struct wire_error *e)
{
	return error_body(e);
}

/* ---- stream decoder (provider chunks → canonical events) ---- */

struct sdec_tool {
	int64_t pidx; /* the provider's index, -1 when it sent none */
	char *id;     /* owned */
};

struct wire_sdec {
	bool started, finished;
	bool done;               /* END or ERROR emitted: later input is ignored */
	struct sdec_tool *tools; /* owned; tool k of the stream is tools[k] */
	size_t ntools, cap;
};

static struct wire_sdec *openai_sdec_new(void)
{
	return xcalloc(1, sizeof(struct wire_sdec));
}

static void openai_sdec_free(struct wire_sdec *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->ntools; i++)
		free(d->tools[i].id);
	free(d->tools);
	free(d);
}

static int sdec_error(struct wire_sdec *d, int status, const char *msg, cev_fn fn, void *arg)
{
	struct wire_error e = { .status = status };
	copy_text(e.type, sizeof(e.type), wire_error_type_for_status(status));
	copy_text(e.message, sizeof(e.message), msg);
	struct cev ev = { .type = CEV_ERROR, .error = &e };
	wire_usage_init(&ev.usage);
	d->done = true;
	return fn(&ev, arg);
}

/* Malformed input: an error event, then -1 (or the callback's value). */
static int sdec_fail(struct wire_sdec *d, const char *msg, cev_fn fn, void *arg)
{
	int rc = sdec_error(d, 502, msg, fn, arg);
	return rc ? rc : -1;
}

/* The call a fragment belongs to: the latest with its provider index (the
 * latest call of all when the fragment has no index); NULL if none. */
static struct sdec_tool *sdec_find(struct wire_sdec *d, int64_t pidx, size_t *ord)
{
	for (size_t k = d->ntools; k-- > 0;) {
		if (pidx < 0 || d->tools[k].pidx == pidx) {
			*ord = k;
			return &d->tools[k];
		}
	}
	return NULL;
}

static int sdec_tool_delta(struct wire_sdec *d, const json_t *tc, int64_t pidx, cev_fn fn, void *arg)
{
	if (!json_is_object(tc))
		return 0;
	const char *id = wire_str(tc, "id");
	const json_t *f = json_object_get(tc, "function");
	if (!json_is_object(f))
		f = tc; /* the legacy function_call delta is the function itself */
	const char *name = wire_str(f, "name");
	const json_t *args = json_object_get(f, "arguments");
	if (id && !*id)
		id = NULL;
	if (name && !*name)
		name = NULL;
	size_t ord = 0;
	struct sdec_tool *cur = sdec_find(d, pidx, &ord);
	int rc = 0;
	if (!cur || (id && name && strcmp(cur->id, id) != 0)) {
		if (d->ntools >= MAX_STREAM_TOOLS)
			return sdec_fail(d, "too many tool calls in the provider stream", fn, arg);
		char gen[40];
		if (!id) {
			wire_random_id(gen, sizeof(gen), "call_");
			id = gen;
		}
		if (d->ntools == d->cap || !d->tools) {
			d->cap = d->cap ? d->cap * 2 : 4;
			d->tools = xrealloc(d->tools, d->cap * sizeof(*d->tools));
		}
		ord = d->ntools++;
		d->tools[ord] = (struct sdec_tool){ .pidx = pidx, .id = xstrdup(id) };
		struct cev ev = { .type = CEV_TOOL_START,
			          .index = (int)ord,
			          .id = d->tools[ord].id,
			          .name = name ? name : "" };
		wire_usage_init(&ev.usage);
		rc = fn(&ev, arg);
		if (rc)
			return rc;
	}
	if (json_is_string(args) && json_string_length(args))
		rc = wire_emit(fn, arg, CEV_TOOL_ARGS, (int)ord, json_string_value(args),
		               json_string_length(args));
	return rc;
}

static int sdec_text(cev_fn fn, void *arg, enum cev_type type, const json_t *s)
{
	if (!json_is_string(s) || json_string_length(s) == 0)
		return 0;
	return wire_emit(fn, arg, type, 0, json_string_value(s), json_string_length(s));
}

static int sdec_choice(struct wire_sdec *d, const json_t *choice, cev_fn fn, void *arg)
{
	const json_t *delta = json_object_get(choice, "delta");
	int rc;
	const json_t *r = json_object_get(delta, "reasoning_content");
	if (!json_is_string(r))
		r = json_object_get(delta, "reasoning");
	if ((rc = sdec_text(fn, arg, CEV_THINKING, r)) ||
	    (rc = sdec_text(fn, arg, CEV_TEXT, opt(delta, "content"))) ||
	    (rc = sdec_text(fn, arg, CEV_TEXT, opt(delta, "refusal"))))
		return rc;
	size_t i;
	json_t *tc;
	json_array_foreach (json_object_get(delta, "tool_calls"), i, tc) {
		const json_t *ji = json_object_get(tc, "index");
		int64_t pidx =
		    json_is_integer(ji) && json_integer_value(ji) >= 0 ? json_integer_value(ji) : -1;
		if ((rc = sdec_tool_delta(d, tc, pidx, fn, arg)))
			return rc;
	}
	const json_t *fc = opt(delta, "function_call");
	if (fc && (rc = sdec_tool_delta(d, fc, 0, fn, arg)))
		return rc;
	const char *finish = wire_str(choice, "finish_reason");
	if (finish && !d->finished) {
		d->finished = true;
		struct cev ev = { .type = CEV_FINISH, .finish = map_finish(finish, d->ntools > 0) };
		wire_usage_init(&ev.usage);
		if ((rc = fn(&ev, arg)))
			return rc;
	}
	return 0;
}

static int sdec_chunk(struct wire_sdec *d, const json_t *j, cev_fn fn, void *arg)
{
	int rc;
	const json_t *usage = json_object_get(j, "usage");
	if (!d->started) {
		d->started = true;
		struct cev ev = { .type = CEV_START, .id = wire_str(j, "id"), .model = wire_str(j, "model") };
		wire_usage_init(&ev.usage);
		ev.usage.prompt = wire_int(usage, "prompt_tokens");
		if ((rc = fn(&ev, arg)))
			return rc;
	}
	size_t i;
	json_t *choice;
	json_array_foreach (json_object_get(j, "choices"), i, choice) {
		/* one choice was asked for; a stray other index is not ours */
		if (wire_int(choice, "index") > 0)
			continue;
		if ((rc = sdec_choice(d, choice, fn, arg)))
			return rc;
	}
	if (json_is_object(usage)) {
		struct cev ev = { .type = CEV_USAGE };
		wire_canon_usage(usage, &ev.usage);
		if ((rc = fn(&ev, arg)))
			return rc;
	}
	return 0;
}

static int openai_sdec_event(struct wire_sdec *d, const char *event, size_t event_len, const char *data,
                             size_t data_len, cev_fn fn, void *arg)
{
	if (d->done)
		return 0;
	while (data_len && (data[0] == ' ' || data[0] == '\t' || data[0] == '\n' || data[0] == '\r'))
		data++, data_len--;
	while (data_len && (data[data_len - 1] == ' ' || data[data_len - 1] == '\t' ||
	                    data[data_len - 1] == '\n' || data[data_len - 1] == '\r'))
		data_len--;
	if (data_len == 0)
		return 0;
	if (data_len == 6 && memcmp(data, "[DONE]", 6) == 0) {
		d->done = true;
		return wire_emit(fn, arg, CEV_END, 0, NULL, 0);
	}
	json_t *j = json_loadb(data, data_len, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		return sdec_fail(d, "malformed stream chunk from the provider", fn, arg);
	}
	int rc;
	const json_t *e = opt(j, "error");
	if (e || (event_len == 5 && memcmp(event, "error", 5) == 0)) {
		const json_t *eobj;
		const char *msg = error_message(j, &eobj);
		rc = sdec_error(d, eobj ? status_of(eobj) : 500, msg ? msg : "the provider reported an error",
		                fn, arg);
	} else if (json_object_get(j, "id") || json_object_get(j, "choices") || json_object_get(j, "usage")) {
		rc = sdec_chunk(d, j, fn, arg);
	} else {
		rc = 0; /* a keep-alive such as data: {} carries nothing */
	}
	json_decref(j);
	return rc;
}

static int openai_sdec_end(struct wire_sdec *d, cev_fn fn, void *arg)
{
	if (d->done)
		return 0;
	if (d->finished) {
		d->done = true;
		return wire_emit(fn, arg, CEV_END, 0, NULL, 0);
	}
	return sdec_error(d, 502, "stream ended early", fn, arg);
}

/* ---- stream encoder (canonical events → chunks for the client) ---- */

struct wire_senc {
	char *model; /* owned; NULL until known */
	bool include_usage;
	int64_t prompt_estimate;
	char id[96];
	int64_t created;
	bool started, finished, done;
	struct wire_usage usage;
	int *tool_cev; /* owned; the event index of the client's tool call k */
	size_t ntools, cap;
};

static struct wire_senc *openai_senc_new(const struct wire_opts *o)
{
	struct wire_senc *e = xcalloc(1, sizeof(*e));
	if (o && o->model)
		e->model = xstrdup(o->model);
	e->include_usage = o && o->include_usage;
	e->prompt_estimate = o ? o->prompt_estimate : -1;
	wire_usage_init(&e->usage);
	return e;
}

static void openai_senc_free(struct wire_senc *e)
{
	if (!e)
		return;
	free(e->model);
	free(e->tool_cev);
	free(e);
}

static json_t *senc_base(const struct wire_senc *e)
{
	return json_pack("{s:s, s:s, s:I, s:o}", "id", e->id, "object", "chat.completion.chunk", "created",
	                 (json_int_t)e->created, "model", jstr0(e->model ? e->model : ""));
}

/* One chunk with delta (stolen) and finish_reason (NULL: null). */
static void senc_chunk(struct wire_senc *e, json_t *delta, const char *finish, struct evbuffer *out)
{
	json_t *c = senc_base(e);
	json_object_set_new(c, "choices",
	                    json_pack("[{s:i, s:o, s:n, s:o}]", "index", 0, "delta", delta, "logprobs",
	                              "finish_reason", finish ? json_string(finish) : json_null()));
	if (e->include_usage)
		json_object_set_new(c, "usage", json_null());
	wire_sse_json(out, NULL, c);
	json_decref(c);
}

/* The first chunk, from START or made up when another event comes first. */
static void senc_start(struct wire_senc *e, const char *id, const char *model, struct evbuffer *out)
{
	e->started = true;
	chat_id(e->id, sizeof(e->id), id);
	e->created = (int64_t)time(NULL);
	if (!e->model && model)
		e->model = xstrdup(model);
	senc_chunk(e, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL, out);
}

static void senc_tool_start(struct wire_senc *e, const struct cev *ev, struct evbuffer *out)
{
	if (e->ntools >= MAX_STREAM_TOOLS)
		return;
	if (e->ntools == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 4;
		e->tool_cev = xrealloc(e->tool_cev, e->cap * sizeof(*e->tool_cev));
	}
	size_t k = e->ntools++;
	e->tool_cev[k] = ev->index;
	char gen[40];
	const char *id = ev->id;
	if (!id || !*id) {
		wire_random_id(gen, sizeof(gen), "call_");
		id = gen;
	}
	senc_chunk(e,
	           json_pack("{s:[{s:I, s:o, s:s, s:{s:o, s:s}}]}", "tool_calls", "index", (json_int_t)k,
	                     "id", jstr0(id), "type", "function", "function", "name", jstr0(ev->name),
	                     "arguments", ""),
	           NULL, out);
}

static void senc_tool_args(struct wire_senc *e, const struct cev *ev, struct evbuffer *out)
{
	if (!ev->len)
		return;
	for (size_t k = e->ntools; k-- > 0;) {
		if (e->tool_cev[k] == ev->index) {
			senc_chunk(e,
			           json_pack("{s:[{s:I, s:{s:o}}]}", "tool_calls", "index", (json_int_t)k,
			                     "function", "arguments", jstr(ev->text, ev->len)),
			           NULL, out);
			return;
		}
	}
	/* arguments of a call that never started have no name to go with */
}

static void senc_end(struct wire_senc *e, struct evbuffer *out)
{
	if (!e->finished) {
		e->finished = true;
		senc_chunk(e, json_object(), e->ntools ? "tool_calls" : "stop", out);
	}
	if (e->include_usage) {
		struct wire_usage u = e->usage;
		if (u.prompt < 0)
			u.prompt = e->prompt_estimate;
		json_t *c = senc_base(e);
		json_object_set_new(c, "choices", json_array());
		json_object_set_new(c, "usage", usage_to_json(&u, true));
		wire_sse_json(out, NULL, c);
		json_decref(c);
	}
	evbuffer_add(out, "data: [DONE]\n\n", 14);
	e->done = true;
}

static void openai_senc_event(struct wire_senc *e, const struct cev *ev, struct evbuffer *out)
{
	if (e->done)
		return;
	if (ev->type == CEV_START) {
		wire_usage_merge(&e->usage, &ev->usage);
		if (!e->started)
			senc_start(e, ev->id, ev->model, out);
		return;
	}
	if (ev->type == CEV_ERROR) {
		struct wire_error fallback = { .status = 502 };
		const struct wire_error *err = ev->error;
		if (!err) {
			copy_text(fallback.type, sizeof(fallback.type), "api_error");
			copy_text(fallback.message, sizeof(fallback.message), "the provider failed");
			err = &fallback;
		}
		json_t *b = error_body(err);
		wire_sse_json(out, NULL, b);
		json_decref(b);
		evbuffer_add(out, "data: [DONE]\n\n", 14);
		e->done = true;
		return;
	}
	if (ev->type == CEV_USAGE) {
		wire_usage_merge(&e->usage, &ev->usage);
		return;
	}
	if (ev->type == CEV_SIGNATURE)
		return;
	if (!e->started)
		senc_start(e, NULL, NULL, out);
	switch (ev->type) {
	case CEV_TEXT:
		if (ev->len)
			senc_chunk(e, json_pack("{s:o}", "content", jstr(ev->text, ev->len)), NULL, out);
		break;
	case CEV_THINKING:
		if (ev->len)
			senc_chunk(e, json_pack("{s:o}", "reasoning_content", jstr(ev->text, ev->len)), NULL,
			           out);
		break;
	case CEV_TOOL_START:
		senc_tool_start(e, ev, out);
		break;
	case CEV_TOOL_ARGS:
		senc_tool_args(e, ev, out);
		break;
	case CEV_FINISH:
		if (!e->finished) {
			e->finished = true;
			senc_chunk(e, json_object(), client_finish(ev->finish), out);
		}
		break;
	case CEV_END:
		senc_end(e, out);
		break;
	default:
		break;
	}
}

/* ---- passthrough usage, upstream URL and headers ---- */

static void openai_usage(const json_t *body, struct wire_usage *u)
{
	wire_canon_usage(json_object_get(body, "usage"), u);
}

static char *openai_chat_url(const char *base_url, const char *model, bool stream)
{
	return wire_join_url(base_url, "/chat/completions");
}

static size_t openai_auth_headers(const char *secret, char **h, size_t max)
{
	if (!secret || !*secret || max == 0)
		return 0;
	size_t len = strlen(secret) + sizeof("Bearer ");
	char *v = xmalloc(len);
	snprintf(v, len, "Bearer %s", secret);
	h[0] = wire_header("Authorization", v);
	sodium_memzero(v, len);
	free(v);
	return 1;
}

const struct wire_format wire_openai = {
	.name = "openai",
	.decode_request = openai_decode_request,
	.encode_request = openai_encode_request,
	.decode_response = openai_decode_response,
	.encode_response = openai_encode_response,
	.decode_error = openai_decode_error,
	.encode_error = openai_encode_error,
	.sdec_new = openai_sdec_new,
	.sdec_event = openai_sdec_event,
	.sdec_end = openai_sdec_end,
	.sdec_free = openai_sdec_free,
	.senc_new = openai_senc_new,
	.senc_event = openai_senc_event,
	.senc_free = openai_senc_free,
	.usage = openai_usage,
	.chat_url = openai_chat_url,
	.auth_headers = openai_auth_headers,
};
