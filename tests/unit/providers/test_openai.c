/*
 * test_openai.c — the OpenAI Chat Completions wire format (openai.c),
 * through its public table wire_openai.
 *
 * Golden fixtures live in tests/unit/providers/fixtures/openai/:
 *   req_*.json → req_*.canon.json        decode_request (client → canonical)
 *   enc_*.canon.json → enc_*.json        encode_request (canonical → provider)
 *   resp_*.json → resp_*.canon.json      decode_response (provider → canonical)
 *   canon_*.json → canon_*.client.json   encode_response (canonical → client)
 *   stream_*.sse → stream_*.trace        stream decoder, fed whole, split at
 *                                        every byte and byte by byte
 *   senc_*.sse                           stream encoder output (exact bytes,
 *                                        "created" normalised to 0)
 * The request, answer and SSE fixtures follow the shapes of the examples in
 * OpenAI's API reference (and DeepSeek's for reasoning_content).
 */
#include <ctype.h>

#include "providers/wire_util.h"
#include "providers/xlate_testutil.h"

#define FX "openai/"

static const struct wire_format *F = &wire_openai;

/* ---- helpers ---- */

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	cr_assert_not_null(j, "bad test JSON: %s: %s", e.text, text);
	return j;
}

static void check_decode_request(const char *in, const char *want)
{
	json_t *body = xlate_json(in), *exp = xlate_json(want);
	struct wire_err err = { 0 };
	json_t *got = F->decode_request(body, &err);
	cr_assert_not_null(got, "%s: %d %s", in, err.status, err.message);
	xlate_assert_json_eq(got, exp, in);
	json_decref(got);
	json_decref(exp);
	json_decref(body);
}

/* decode_request of text must fail with 400 and a message containing want. */
static void check_bad_request(const char *text, const char *want)
{
	json_t *body = parse(text);
	struct wire_err err = { 0 };
	json_t *got = F->decode_request(body, &err);
	if (got) {
		char *s = json_dumps(got, JSON_COMPACT);
		cr_assert_fail("accepted %s\n→ %s", text, s);
	}
	cr_assert_eq(err.status, 400, "%s: status %d", text, err.status);
	cr_assert(strstr(err.message, want), "%s: message \"%s\" lacks \"%s\"", text, err.message, want);
	json_decref(body);
}

static json_t *decode_ok(const char *text)
{
	json_t *body = parse(text);
	struct wire_err err = { 0 };
	json_t *got = F->decode_request(body, &err);
	cr_assert_not_null(got, "%s: %d %s", text, err.status, err.message);
	json_decref(body);
	return got;
}

static void check_encode_request(const char *in, const char *want, const struct wire_opts *o)
{
	json_t *canon = xlate_json(in), *exp = xlate_json(want);
	struct wire_err err = { 0 };
	json_t *got = F->encode_request(canon, o, &err);
	cr_assert_not_null(got, "%s: %d %s", in, err.status, err.message);
	xlate_assert_json_eq(got, exp, in);
	json_decref(got);
	json_decref(exp);
	json_decref(canon);
}

static void check_decode_response(const char *in, const char *want)
{
	json_t *body = xlate_json(in), *exp = xlate_json(want);
	struct wire_err err = { 0 };
	json_t *got = F->decode_response(body, &err);
	cr_assert_not_null(got, "%s: %d %s", in, err.status, err.message);
	xlate_assert_json_eq(got, exp, in);
	json_decref(got);
	json_decref(exp);
	json_decref(body);
}

static json_t *decode_response_text(const char *text, struct wire_err *err)
{
	json_t *body = parse(text);
	json_t *got = F->decode_response(body, err);
	json_decref(body);
	return got;
}

/* No key anywhere in j starts with "x_". */
static void assert_no_x(const json_t *j, const char *what)
{
	const char *k;
	json_t *v;
	size_t i;
	if (json_is_object(j)) {
		json_object_foreach ((json_t *)j, k, v) {
			cr_assert(strncmp(k, "x_", 2) != 0, "%s: field %s reached the output", what, k);
			assert_no_x(v, what);
		}
	} else if (json_is_array(j)) {
		json_array_foreach (j, i, v)
			assert_no_x(v, what);
	}
}

/* In place: "created":<digits> → "created":0, and generated ids
 * ("chatcmpl-" + 24 alphanumerics) → "chatcmpl-GEN". */
static void normalise(char *s)
{
	char *w = s;
	for (const char *r = s; *r;) {
		if (strncmp(r, "\"created\":", 10) == 0 && isdigit((unsigned char)r[10])) {
			memcpy(w, "\"created\":0", 11);
			w += 11;
			r += 10;
			while (isdigit((unsigned char)*r))
				r++;
			continue;
		}
		if (strncmp(r, "chatcmpl-", 9) == 0) {
			size_t n = 0;
			while (isalnum((unsigned char)r[9 + n]))
				n++;
			if (n == 24 && r[9 + n] == '"') {
				memcpy(w, "chatcmpl-GEN", 12);
				w += 12;
				r += 9 + n;
				continue;
			}
		}
		*w++ = *r++;
	}
	*w = '\0';
}

static void check_trace(const char *sse, const char *trace)
{
	size_t n;
	char *in = xlate_read(sse, &n);
	char *want = xlate_read(trace, NULL);
	char *got = xlate_trace_all_splits(F, in, n);
	cr_assert_str_eq(got, want, "%s trace:\n%s", sse, got);
	free(got);
	free(want);
	free(in);
}

/* Run scripted events through the stream encoder; the bytes, normalised. */
static char *encode_events(const struct cev *evs, size_t n, const struct wire_opts *o)
{
	struct wire_senc *e = F->senc_new(o);
	struct evbuffer *out = evbuffer_new();
	for (size_t i = 0; i < n; i++) {
		struct cev ev = evs[i];
		if (ev.type != CEV_USAGE && ev.type != CEV_START)
			wire_usage_init(&ev.usage);
		if ((ev.type == CEV_TEXT || ev.type == CEV_THINKING || ev.type == CEV_TOOL_ARGS ||
		     ev.type == CEV_SIGNATURE) &&
		    ev.text && !ev.len)
			ev.len = strlen(ev.text);
		F->senc_event(e, &ev, out);
	}
	F->senc_free(e);
	size_t len = evbuffer_get_length(out);
	char *s = xmalloc(len + 1);
	evbuffer_remove(out, s, len);
	s[len] = '\0';
	evbuffer_free(out);
	normalise(s);
	return s;
}

static void check_senc(const struct cev *evs, size_t n, const struct wire_opts *o, const char *golden)
{
	char *got = encode_events(evs, n, o);
	char *want = xlate_read(golden, NULL);
	cr_assert_str_eq(got, want, "%s:\n%s", golden, got);
	free(want);
	free(got);
}

#define USAGE(p, c, t, ca, r)                                                                                \
	{                                                                                                    \
		.prompt = (p), .completion = (c), .total = (t), .cached = (ca), .reasoning = (r)             \
	}
#define UNKNOWN USAGE(-1, -1, -1, -1, -1)

/* ---- decode_request ---- */

Test(openai, decode_request_plain_text)
{
	check_decode_request(FX "req_text.json", FX "req_text.canon.json");
}

Test(openai, decode_request_system_developer_and_options)
{
	check_decode_request(FX "req_system.json", FX "req_system.canon.json");
}

Test(openai, decode_request_multi_turn)
{
	check_decode_request(FX "req_multiturn.json", FX "req_multiturn.canon.json");
}

Test(openai, decode_request_images)
{
	check_decode_request(FX "req_image.json", FX "req_image.canon.json");
}

Test(openai, decode_request_tools)
{
	check_decode_request(FX "req_tools.json", FX "req_tools.canon.json");
}

Test(openai, decode_request_tool_round_trip)
{
	check_decode_request(FX "req_tool_round_trip.json", FX "req_tool_round_trip.canon.json");
}

Test(openai, decode_request_tool_choice_variants)
{
	static const char *const ok[][2] = {
		{ "\"auto\"", "\"auto\"" },
		{ "\"none\"", "\"none\"" },
		{ "\"required\"", "\"required\"" },
		{ "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}",
		  "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}" },
		{ "null", NULL },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char body[256];
		snprintf(
		    body, sizeof(body),
		    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
		    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":%s}",
		    ok[i][0]);
		json_t *c = decode_ok(body);
		const json_t *tc = json_object_get(c, "tool_choice");
		if (ok[i][1]) {
			json_t *want = json_loads(ok[i][1], JSON_DECODE_ANY, NULL);
			xlate_assert_json_eq(tc, want, ok[i][0]);
			json_decref(want);
		} else {
			cr_assert_null(tc);
		}
		json_decref(c);
	}
	check_bad_request(
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tool_choice\":\"any\"}",
	    "tool_choice");
	check_bad_request("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
	                  "\"tool_choice\":{\"type\":\"allowed_tools\",\"allowed_tools\":{}}}",
	                  "tool_choice.type");
	check_bad_request("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
	                  "\"tool_choice\":{\"type\":\"function\",\"function\":{}}}",
	                  "tool_choice.function.name");
	check_bad_request(
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tool_choice\":3}",
	    "tool_choice");
}

Test(openai, decode_request_reasoning_effort)
{
	static const struct {
		const char *effort;
		int budget;
	} tab[] = { { "none", 0 },      { "minimal", 1024 }, { "low", 1024 },
		    { "medium", 8192 }, { "high", 24576 },   { "xhigh", 24576 } };
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		char body[200];
		snprintf(body, sizeof(body),
		         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
		         "\"reasoning_effort\":\"%s\"}",
		         tab[i].effort);
		json_t *c = decode_ok(body);
		cr_assert_str_eq(json_string_value(json_object_get(c, "reasoning_effort")), tab[i].effort);
		cr_assert_eq(wire_int(json_object_get(c, "x_thinking_config"), "thinkingBudget"),
		             tab[i].budget);
		cr_assert_null(json_object_get(c, "x_thinking"),
		               "no Anthropic thinking from reasoning_effort");
		json_decref(c);
	}
	check_bad_request("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
	                  "\"reasoning_effort\":\"max\"}",
	                  "reasoning_effort");
}

Test(openai, decode_request_drops_client_x_fields)
{
	json_t *c = decode_ok("{\"model\":\"m\",\"x_top_k\":3,\"x_thinking\":{\"type\":\"enabled\"},"
	                      "\"messages\":[{\"role\":\"user\",\"content\":\"hi\",\"x_is_error\":true},"
	                      "{\"role\":\"assistant\",\"content\":\"a\",\"x_thought_signature\":\"s\"}]}");
	assert_no_x(c, "decoded request");
	json_decref(c);
}

Test(openai, decode_request_hostile_inputs)
{
	static const char *const cases[][2] = {
		{ "[]", "JSON object" },
		{ "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "model" },
		{ "{\"model\":7,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "model" },
		{ "{\"model\":\"\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "model" },
		{ "{\"model\":\"m\"}", "messages" },
		{ "{\"model\":\"m\",\"messages\":[]}", "messages" },
		{ "{\"model\":\"m\",\"messages\":{}}", "messages" },
		{ "{\"model\":\"m\",\"messages\":[\"hi\"]}", "messages[0]" },
		{ "{\"model\":\"m\",\"messages\":[{\"content\":\"hi\"}]}", "messages[0].role" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"robot\",\"content\":\"hi\"}]}",
		  "messages[0].role" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"function\",\"name\":\"f\",\"content\":\"1\"}]}",
		  "messages[0].role: \"function\"" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", "messages[0].content: required" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":null}]}",
		  "messages[0].content" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}",
		  "messages[0].content" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[]}]}",
		  "messages[0].content" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
		  "messages[0].content[0].text" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}]}",
		  "messages[0].content[0].type" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[7]}]}",
		  "messages[0].content[0]" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]"
		  "}",
		  "messages[0].content[0].image_url.url" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
		  "\"image_url\":{\"url\":\"u\",\"detail\":1}}]}]}",
		  "messages[0].content[0].image_url.detail" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\","
		  "\"input_audio\":{\"data\":\"AA\",\"format\":\"wav\"}}]}]}",
		  "input_audio parts are not supported when the provider is not OpenAI-compatible" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\","
		  "\"file\":{}}]}]}",
		  "file parts are not supported when the provider is not OpenAI-compatible" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\","
		  "\"image_url\":{\"url\":\"u\"}}]}]}",
		  "not allowed in system messages" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":\"a\",\"tool_calls\":{}"
		  "}]}",
		  "messages[0].tool_calls" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"type\":"
		  "\"function\","
		  "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}]}",
		  "messages[0].tool_calls[0].id" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\","
		  "\"type\":"
		  "\"custom\",\"custom\":{}}]}]}",
		  "messages[0].tool_calls[0].type" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\","
		  "\"type\":"
		  "\"function\"}]}]}",
		  "messages[0].tool_calls[0].function" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\","
		  "\"type\":"
		  "\"function\",\"function\":{\"arguments\":\"{}\"}}]}]}",
		  "messages[0].tool_calls[0].function.name" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\","
		  "\"type\":"
		  "\"function\",\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1}}}]}]}",
		  "messages[0].tool_calls[0].function.arguments: must be a string" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":null,\"function_call\":"
		  "{\"name\":\"f\",\"arguments\":\"{}\"}}]}",
		  "messages[0].function_call" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":\"a\",\"reasoning_"
		  "content\":1}]}",
		  "messages[0].reasoning_content" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"r\"}]}",
		  "messages[0].tool_call_id" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"tool_call_id\":5,\"content\":\"r\"}]}",
		  "messages[0].tool_call_id" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"functions\":[{"
		  "\"name\":\"f\"}]}",
		  "functions: legacy function calling" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"function_call\":"
		  "\"auto\"}",
		  "function_call: legacy function calling" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"n\":2}",
		  "n: more than one" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"n\":0}", "n:" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"n\":\"1\"}",
		  "n:" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":"
		  "\"10\"}",
		  "max_tokens" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":0}",
		  "max_tokens" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1."
		  "5}",
		  "max_tokens" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":"
		  "9223372036854775807}",
		  "max_tokens" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_completion_"
		  "tokens\":-5}",
		  "max_completion_tokens" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":"
		  "\"hot\"}",
		  "temperature" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":2."
		  "5}",
		  "temperature" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_p\":1e300}",
		  "top_p" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stop\":5}",
		  "stop" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stop\":[\"a\",1]"
		  "}",
		  "stop[1]" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":"
		  "\"yes\"}",
		  "stream" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream_options\":"
		  "true}",
		  "stream_options" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream_options\":"
		  "{\"include_usage\":1}}",
		  "stream_options" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":{}}",
		  "tools" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[1]}",
		  "tools[0]" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{"
		  "\"type\":"
		  "\"web_search\"}]}",
		  "tools[0].type" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{"
		  "\"type\":"
		  "\"function\"}]}",
		  "tools[0].function" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{"
		  "\"type\":"
		  "\"function\",\"function\":{\"name\":\"\"}}]}",
		  "tools[0].function.name" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{"
		  "\"type\":"
		  "\"function\",\"function\":{\"name\":\"f\",\"parameters\":\"{}\"}}]}",
		  "tools[0].function.parameters" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{"
		  "\"type\":"
		  "\"function\",\"function\":{\"name\":\"f\",\"description\":[]}}]}",
		  "tools[0].function.description" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"parallel_tool_"
		  "calls\":1}",
		  "parallel_tool_calls" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response_"
		  "format\":\"json\"}",
		  "response_format" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response_"
		  "format\":"
		  "{\"type\":\"xml\"}}",
		  "response_format.type" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response_"
		  "format\":"
		  "{\"type\":\"json_schema\"}}",
		  "response_format.json_schema" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response_"
		  "format\":"
		  "{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{}}}}",
		  "response_format.json_schema.name" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"reasoning_"
		  "effort\":3}",
		  "reasoning_effort" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"modalities\":["
		  "\"text\","
		  "\"audio\"]}",
		  "modalities" },
		{ "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"audio\":{"
		  "\"voice\":\"x\"}}",
		  "audio" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_bad_request(cases[i][0], cases[i][1]);
}

Test(openai, decode_request_long_role_is_not_echoed_whole)
{
	/* a long, multi-byte role is cut at a character boundary */
	char body[4096];
	char role[3001];
	for (size_t i = 0; i < 1000; i++)
		memcpy(role + i * 3, "\xE2\x82\xAC", 3); /* € */
	role[3000] = '\0';
	snprintf(body, sizeof(body), "{\"model\":\"m\",\"messages\":[{\"role\":\"%s\",\"content\":\"x\"}]}",
	         role);
	json_t *j = parse(body);
	struct wire_err err = { 0 };
	cr_assert_null(F->decode_request(j, &err));
	cr_assert_eq(err.status, 400);
	json_t *m = json_string(err.message);
	cr_assert_not_null(m, "error message is not valid UTF-8: %s", err.message);
	json_decref(m);
	json_decref(j);
}

/* ---- encode_request ---- */

Test(openai, encode_request_full_canonical_to_openai)
{
	struct wire_opts o = { .model = "gpt-4o", .stream = true, .prompt_estimate = -1 };
	check_encode_request(FX "enc_full.canon.json", FX "enc_full.json", &o);
}

Test(openai, encode_request_compatible_service)
{
	struct wire_opts o = { .model = "deepseek-chat", .prompt_estimate = -1 };
	check_encode_request(FX "enc_compat.canon.json", FX "enc_compat.json", &o);
}

Test(openai, encode_request_token_limit_name_by_model)
{
	static const struct {
		const char *model, *key;
	} tab[] = { { "o3", "max_completion_tokens" },
		    { "o4-mini", "max_completion_tokens" },
		    { "gpt-5", "max_completion_tokens" },
		    { "chatgpt-4o-latest", "max_completion_tokens" },
		    { "llama3.1", "max_tokens" },
		    { "openai/gpt-oss-120b", "max_tokens" },
		    { "omni", "max_tokens" },
		    { "mistral-large", "max_tokens" } };
	json_t *canon = parse(
	    "{\"model\":\"x\",\"max_tokens\":77,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		struct wire_opts o = { .model = tab[i].model };
		struct wire_err err = { 0 };
		json_t *out = F->encode_request(canon, &o, &err);
		cr_assert_not_null(out);
		cr_assert_eq(wire_int(out, "max_completion_tokens") + wire_int(out, "max_tokens"), 77 - 1,
		             "%s: exactly one limit", tab[i].model);
		cr_assert_eq(wire_int(out, tab[i].key), 77, "%s: %s", tab[i].model, tab[i].key);
		cr_assert_str_eq(wire_str(out, "model"), tab[i].model);
		json_decref(out);
	}
	json_decref(canon);
}

Test(openai, encode_request_normalises_tool_call_arguments)
{
	json_t *canon = parse(
	    "{\"model\":\"x\",\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
	    "{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1}}},"
	    "{\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"g\"}}]}]}");
	struct wire_opts o = { .model = "gpt-4o" };
	struct wire_err err = { 0 };
	json_t *out = F->encode_request(canon, &o, &err);
	cr_assert_not_null(out);
	json_t *want = parse(
	    "[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
	    "{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}"
	    "\"}},"
	    "{\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}]");
	xlate_assert_json_eq(json_object_get(out, "messages"), want, "messages");
	json_decref(want);
	json_decref(out);
	json_decref(canon);
}

Test(openai, encode_request_rejects_broken_canonical)
{
	struct wire_opts o = { .model = "gpt-4o" };
	static const char *const bad[] = {
		"{\"model\":\"x\"}",
		"{\"model\":\"x\",\"messages\":[{\"role\":\"tool\",\"content\":\"r\"}]}",
		"{\"model\":\"x\",\"messages\":[{\"role\":\"wizard\",\"content\":\"r\"}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *canon = parse(bad[i]);
		struct wire_err err = { 0 };
		cr_assert_null(F->encode_request(canon, &o, &err), "%s", bad[i]);
		cr_assert_eq(err.status, 400);
		json_decref(canon);
	}
}

/* ---- decode_response ---- */

Test(openai, decode_response_text)
{
	check_decode_response(FX "resp_text.json", FX "resp_text.canon.json");
}

Test(openai, decode_response_tool_calls)
{
	check_decode_response(FX "resp_tools.json", FX "resp_tools.canon.json");
}

Test(openai, decode_response_reasoning_content)
{
	check_decode_response(FX "resp_reasoning.json", FX "resp_reasoning.canon.json");
}

static json_t *decoded_message(const char *text, const char **finish)
{
	struct wire_err err = { 0 };
	json_t *c = decode_response_text(text, &err);
	cr_assert_not_null(c, "%s: %s", text, err.message);
	const json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
	static char buf[32];
	snprintf(buf, sizeof(buf), "%s", wire_str(ch, "finish_reason"));
	*finish = buf;
	json_t *m = json_incref(json_object_get(ch, "message"));
	json_decref(c);
	return m;
}

Test(openai, decode_response_finish_reasons)
{
	static const char *const tab[][3] = {
		/* finish_reason in, tool calls?, canonical */
		{ "\"stop\"", "0", "stop" },
		{ "\"length\"", "0", "length" },
		{ "\"content_filter\"", "0", "content_filter" },
		{ "\"tool_calls\"", "1", "tool_calls" },
		{ "\"stop\"", "1", "tool_calls" }, /* forced tool_choice */
		{ "\"function_call\"", "1", "tool_calls" },
		{ "\"eos\"", "0", "stop" },
		{ "null", "0", "stop" },
		{ "null", "1", "tool_calls" },
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		char body[400];
		snprintf(body, sizeof(body),
		         "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
		         "\"content\":\"t\"%s},"
		         "\"finish_reason\":%s}]}",
		         tab[i][1][0] == '1'
		             ? ",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":"
		               "{\"name\":\"f\",\"arguments\":\"{}\"}}]"
		             : "",
		         tab[i][0]);
		const char *finish;
		json_t *m = decoded_message(body, &finish);
		cr_assert_str_eq(finish, tab[i][2], "%s with tools=%s", tab[i][0], tab[i][1]);
		json_decref(m);
	}
}

Test(openai, decode_response_refusal_legacy_and_parts)
{
	const char *finish;
	json_t *m = decoded_message("{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,"
	                            "\"refusal\":\"I can't help with that.\"},\"finish_reason\":\"stop\"}]}",
	                            &finish);
	cr_assert_str_eq(wire_str(m, "content"), "I can't help with that.");
	cr_assert_str_eq(finish, "stop");
	json_decref(m);

	m = decoded_message(
	    "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,\"function_call\":"
	    "{\"name\":\"get_weather\",\"arguments\":\"{\\\"c\\\":1}\"}},\"finish_reason\":\"function_call\"}"
	    "]}",
	    &finish);
	cr_assert_str_eq(finish, "tool_calls");
	const json_t *tc = json_array_get(json_object_get(m, "tool_calls"), 0);
	cr_assert_str_eq(wire_str(json_object_get(tc, "function"), "name"), "get_weather");
	cr_assert_str_eq(wire_str(json_object_get(tc, "function"), "arguments"), "{\"c\":1}");
	cr_assert(strncmp(wire_str(tc, "id"), "call_", 5) == 0, "a generated id");
	cr_assert(json_is_null(json_object_get(m, "content")));
	json_decref(m);

	/* content parts (some services), reasoning under its newer name */
	m = decoded_message(
	    "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":"
	    "\"a\"},{\"type\":\"text\",\"text\":\"b\"}],\"reasoning\":\"r\"},\"finish_reason\":\"stop\"}]}",
	    &finish);
	cr_assert_str_eq(wire_str(m, "content"), "ab");
	cr_assert_str_eq(wire_str(json_array_get(json_object_get(m, "x_thinking"), 0), "thinking"), "r");
	json_decref(m);
}

Test(openai, decode_response_fills_missing_metadata)
{
	struct wire_err err = { 0 };
	json_t *c = decode_response_text("{\"choices\":[{\"message\":{\"content\":\"hi\"}}]}", &err);
	cr_assert_not_null(c);
	cr_assert(strncmp(wire_str(c, "id"), "chatcmpl-", 9) == 0);
	cr_assert_gt(wire_int(c, "created"), 0);
	cr_assert_str_eq(wire_str(c, "object"), "chat.completion");
	cr_assert_null(json_object_get(c, "usage"));
	json_decref(c);
}

Test(openai, decode_response_malformed_is_502)
{
	static const char *const bad[][2] = {
		{ "{}", "choices[0].message" },
		{ "{\"choices\":[]}", "choices[0].message" },
		{ "{\"choices\":{}}", "choices[0].message" },
		{ "{\"choices\":[{\"message\":\"hi\"}]}", "choices[0].message" },
		{ "{\"choices\":[{\"message\":{\"tool_calls\":{}}}]}", "tool_calls" },
		{ "{\"choices\":[{\"message\":{\"tool_calls\":[{\"id\":\"c\",\"function\":{}}]}}]}",
		  "tool_calls[0]" },
		{ "{\"error\":{\"message\":\"Upstream overloaded\",\"type\":\"server_error\"}}",
		  "Upstream overloaded" },
		{ "[1,2]", "choices[0].message" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct wire_err err = { 0 };
		cr_assert_null(decode_response_text(bad[i][0], &err), "%s", bad[i][0]);
		cr_assert_eq(err.status, 502, "%s", bad[i][0]);
		cr_assert(strstr(err.message, bad[i][1]), "%s: %s", bad[i][0], err.message);
	}
}

/* ---- encode_response ---- */

static void check_encode_response(const char *in, const char *want, const char *model)
{
	json_t *canon = xlate_json(in), *exp = xlate_json(want);
	struct wire_opts o = { .model = model, .prompt_estimate = -1 };
	json_t *got = F->encode_response(canon, &o);
	cr_assert_not_null(got);
	xlate_assert_json_eq(got, exp, in);
	assert_no_x(got, in);
	json_decref(got);
	json_decref(exp);
	json_decref(canon);
}

Test(openai, encode_response_from_anthropic_canonical)
{
	check_encode_response(FX "canon_anthropic.json", FX "canon_anthropic.client.json", "my-claude");
}

Test(openai, encode_response_tool_calls_only)
{
	check_encode_response(FX "canon_gemini.json", FX "canon_gemini.client.json", "gemini-route");
}

Test(openai, encode_response_defaults)
{
	json_t *canon = parse("{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null},"
	                      "\"finish_reason\":\"pause_turn\"}],\"id\":\"has \\\"quotes\\\"\"}");
	struct wire_opts o = { .model = "m" };
	json_t *got = F->encode_response(canon, &o);
	const char *id = wire_str(got, "id");
	cr_assert(strncmp(id, "chatcmpl-", 9) == 0 && strlen(id) == 9 + 24, "generated id: %s", id);
	cr_assert_gt(wire_int(got, "created"), 1700000000);
	const json_t *ch = json_array_get(json_object_get(got, "choices"), 0);
	cr_assert_str_eq(wire_str(ch, "finish_reason"), "stop");
	cr_assert_str_eq(wire_str(json_object_get(ch, "message"), "content"), "", "no text, no tools: \"\"");
	json_t *want = parse("{\"prompt_tokens\":0,\"completion_tokens\":0,\"total_tokens\":0}");
	xlate_assert_json_eq(json_object_get(got, "usage"), want, "usage");
	json_decref(want);
	json_decref(got);
	json_decref(canon);
}

/* ---- errors ---- */

static void check_decode_error(int status, const char *body, const char *type, const char *msg)
{
	struct wire_error e;
	F->decode_error(status, body, body ? strlen(body) : 0, &e);
	cr_assert_eq(e.status, status);
	cr_assert_str_eq(e.type, type, "%s", body ? body : "(null)");
	cr_assert_str_eq(e.message, msg, "%s", body ? body : "(null)");
}

Test(openai, decode_error_shapes)
{
	check_decode_error(401,
	                   "{\"error\":{\"message\":\"Incorrect API key provided: sk-abc***xyz.\",\"type\":"
	                   "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}",
	                   "authentication_error", "Incorrect API key provided: sk-abc***xyz.");
	check_decode_error(
	    429,
	    "{\"error\":{\"message\":\"You exceeded your current quota.\",\"type\":\"insufficient_quota\","
	    "\"param\":null,\"code\":\"insufficient_quota\"}}",
	    "rate_limit_error", "You exceeded your current quota.");
	check_decode_error(
	    400,
	    "{\"object\":\"error\",\"message\":\"max_tokens is too large\",\"type\":\"BadRequestError\","
	    "\"param\":null,\"code\":400}",
	    "invalid_request_error", "max_tokens is too large");
	check_decode_error(404, "{\"error\":\"model 'llama9' not found\"}", "not_found_error",
	                   "model 'llama9' not found");
	check_decode_error(503,
	                   "[{\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":"
	                   "\"UNAVAILABLE\"}}]",
	                   "overloaded_error", "The model is overloaded.");
	check_decode_error(422, "{\"detail\":\"Field required\"}", "invalid_request_error", "Field required");
	check_decode_error(500, "{\"error\":{\"type\":\"server_error\"}}", "api_error",
	                   "provider returned HTTP 500");
	check_decode_error(502, "<html><body><h1>502 Bad Gateway</h1></body></html>", "api_error",
	                   "provider returned HTTP 502 with a non-JSON body");
	check_decode_error(504, "", "timeout_error", "provider returned HTTP 504 with a non-JSON body");
	check_decode_error(500, NULL, "api_error", "provider returned HTTP 500 with a non-JSON body");
	check_decode_error(413, "\"just a string\"", "request_too_large",
	                   "provider returned HTTP 413 with a non-JSON body");
}

Test(openai, decode_error_long_message_is_cut_at_a_character)
{
	size_t n = 3 * 400;
	char *msg = xmalloc(n + 1);
	for (size_t i = 0; i < n; i += 3)
		memcpy(msg + i, "\xE2\x82\xAC", 3);
	msg[n] = '\0';
	json_t *body = json_pack("{s:{s:s}}", "error", "message", msg);
	char *s = json_dumps(body, JSON_COMPACT);
	struct wire_error e;
	F->decode_error(400, s, strlen(s), &e);
	cr_assert_lt(strlen(e.message), sizeof(e.message));
	cr_assert_eq(strlen(e.message) % 3, 0, "cut inside a character");
	free(s);
	json_decref(body);
	free(msg);
}

Test(openai, encode_error_types)
{
	static const struct {
		const char *neutral;
		int status;
		const char *type, *code;
	} tab[] = {
		{ "invalid_request_error", 400, "invalid_request_error", NULL },
		{ "authentication_error", 401, "authentication_error", "invalid_api_key" },
		{ "permission_error", 403, "permission_error", NULL },
		{ "not_found_error", 404, "not_found_error", NULL },
		{ "request_too_large", 413, "invalid_request_error", "request_too_large" },
		{ "rate_limit_error", 429, "rate_limit_error", "rate_limit_exceeded" },
		{ "api_error", 500, "server_error", NULL },
		{ "overloaded_error", 529, "server_error", "overloaded" },
		{ "timeout_error", 504, "timeout_error", "timeout" },
		{ "mystery", 429, "rate_limit_error", "rate_limit_exceeded" },
		{ "", 502, "server_error", NULL },
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		struct wire_error e = { .status = tab[i].status };
		snprintf(e.type, sizeof(e.type), "%s", tab[i].neutral);
		snprintf(e.message, sizeof(e.message), "boom %zu", i);
		json_t *got = F->encode_error(&e);
		json_t *want =
		    json_pack("{s:{s:s, s:s, s:n, s:o}}", "error", "message", e.message, "type", tab[i].type,
		              "param", "code", tab[i].code ? json_string(tab[i].code) : json_null());
		xlate_assert_json_eq(got, want, tab[i].neutral);
		json_decref(want);
		json_decref(got);
	}
	/* a message that is not valid UTF-8 still gives a body */
	struct wire_error e = { .status = 500 };
	snprintf(e.type, sizeof(e.type), "api_error");
	memcpy(e.message, "bad \xC3 byte", 11);
	json_t *got = F->encode_error(&e);
	cr_assert_not_null(got);
	cr_assert_str_eq(wire_str(json_object_get(got, "error"), "message"), "bad \xEF\xBF\xBD byte");
	json_decref(got);
}

/* ---- stream decoder ---- */

Test(openai, sdec_documented_stream_with_parallel_tools)
{
	check_trace(FX "stream_tools.sse", FX "stream_tools.trace");
}

Test(openai, sdec_tool_start_and_arguments_in_one_chunk)
{
	check_trace(FX "stream_same_chunk.sse", FX "stream_same_chunk.trace");
}

Test(openai, sdec_reasoning_content)
{
	check_trace(FX "stream_reasoning.sse", FX "stream_reasoning.trace");
}

Test(openai, sdec_error_event)
{
	check_trace(FX "stream_error.sse", FX "stream_error.trace");
}

Test(openai, sdec_ends_without_done)
{
	check_trace(FX "stream_no_done.sse", FX "stream_no_done.trace");
}

Test(openai, sdec_finish_without_done_is_a_normal_end)
{
	check_trace(FX "stream_finish_no_done.sse", FX "stream_finish_no_done.trace");
}

Test(openai, sdec_malformed_chunk)
{
	check_trace(FX "stream_malformed.sse", FX "stream_malformed.trace");
}

static int count_cev(const struct cev *ev, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static int stop_at_text(const struct cev *ev, void *arg)
{
	(*(int *)arg)++;
	return ev->type == CEV_TEXT ? 7 : 0;
}

#define EV(d, s) F->sdec_event(d, "", 0, s, strlen(s), count_cev, &n)

Test(openai, sdec_return_values)
{
	int n = 0;
	struct wire_sdec *d = F->sdec_new();
	cr_assert_eq(EV(d, "{\"id\":\"a\",\"choices\":[{\"delta\":{\"content\":\"x\"}}]}"), 0);
	cr_assert_eq(n, 2); /* START, TEXT */
	cr_assert_eq(EV(d, "not json"), -1);
	cr_assert_eq(n, 3); /* ERROR */
	cr_assert_eq(EV(d, "{\"choices\":[{\"delta\":{\"content\":\"x\"}}]}"), 0, "ignored after the error");
	cr_assert_eq(F->sdec_end(d, count_cev, &n), 0);
	cr_assert_eq(n, 3, "no second ending");
	F->sdec_free(d);

	/* a scalar, an array, whitespace-only data and an empty keep-alive */
	n = 0;
	d = F->sdec_new();
	cr_assert_eq(EV(d, "  \n "), 0);
	cr_assert_eq(EV(d, "{}"), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(EV(d, "[1]"), -1);
	F->sdec_free(d);
	n = 0;
	d = F->sdec_new();
	cr_assert_eq(EV(d, "42"), -1);
	F->sdec_free(d);

	/* the callback's value stops the decoder and is returned */
	n = 0;
	d = F->sdec_new();
	const char *two =
	    "{\"choices\":[{\"delta\":{\"content\":\"x\",\"tool_calls\":[{\"index\":0,\"id\":\"c\","
	    "\"function\":{\"name\":\"f\"}}]}}]}";
	cr_assert_eq(F->sdec_event(d, "", 0, two, strlen(two), stop_at_text, &n), 7);
	cr_assert_eq(n, 2, "START, TEXT, then stop");
	F->sdec_free(d);

	/* "event: error" with a bare message */
	n = 0;
	d = F->sdec_new();
	const char *err = "{\"message\":\"quota\"}";
	cr_assert_eq(F->sdec_event(d, "error", 5, err, strlen(err), count_cev, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(F->sdec_end(d, count_cev, &n), 0);
	cr_assert_eq(n, 1);
	F->sdec_free(d);

	/* types that are wrong inside a chunk are skipped, not fatal */
	n = 0;
	d = F->sdec_new();
	cr_assert_eq(
	    EV(d,
	       "{\"id\":5,\"choices\":[7,{\"delta\":\"x\"},{\"delta\":{\"content\":3,\"tool_calls\":"
	       "[1,{\"index\":\"0\",\"function\":{\"arguments\":5}}]},\"finish_reason\":2}],\"usage\":[]}"),
	    0);
	F->sdec_free(d);
}

struct err_capture {
	int status;
	char type[48], message[512];
	int n;
};

static int capture_error(const struct cev *ev, void *arg)
{
	struct err_capture *c = arg;
	c->n++;
	if (ev->type == CEV_ERROR && ev->error) {
		c->status = ev->error->status;
		snprintf(c->type, sizeof(c->type), "%s", ev->error->type);
		snprintf(c->message, sizeof(c->message), "%s", ev->error->message);
	}
	return 0;
}

Test(openai, sdec_error_statuses)
{
	static const struct {
		const char *data;
		int status;
		const char *type, *message;
	} tab[] = {
		{ "{\"error\":{\"message\":\"slow "
		  "down\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}",
		  429, "rate_limit_error", "slow down" },
		{ "{\"error\":{\"message\":\"ctx\",\"type\":\"invalid_request_error\"}}", 400,
		  "invalid_request_error", "ctx" },
		{ "{\"error\":{\"message\":\"busy\",\"code\":503}}", 503, "overloaded_error", "busy" },
		{ "{\"error\":\"plain\"}", 500, "api_error", "plain" },
		{ "{\"error\":{}}", 500, "api_error", "the provider reported an error" },
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		struct err_capture c = { 0 };
		struct wire_sdec *d = F->sdec_new();
		cr_assert_eq(F->sdec_event(d, "", 0, tab[i].data, strlen(tab[i].data), capture_error, &c), 0);
		cr_assert_eq(c.n, 1, "%s", tab[i].data);
		cr_assert_eq(c.status, tab[i].status, "%s", tab[i].data);
		cr_assert_str_eq(c.type, tab[i].type, "%s", tab[i].data);
		cr_assert_str_eq(c.message, tab[i].message, "%s", tab[i].data);
		F->sdec_free(d);
	}
}

Test(openai, sdec_bounds_tool_calls)
{
	int n = 0;
	struct wire_sdec *d = F->sdec_new();
	int rc = 0;
	for (int i = 0; i < 1100 && rc == 0; i++) {
		char s[160];
		snprintf(
		    s, sizeof(s),
		    "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":%d,\"id\":\"c%d\",\"function\":"
		    "{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}",
		    i, i);
		rc = EV(d, s);
	}
	cr_assert_eq(rc, -1, "a hostile number of tool calls ends the stream");
	F->sdec_free(d);
}

/* ---- stream encoder ---- */

#define START(id_, model_, u)                                                                                \
	{                                                                                                    \
		.type = CEV_START, .id = (id_), .model = (model_), .usage = u                                \
	}
#define TEXT(s)                                                                                              \
	{                                                                                                    \
		.type = CEV_TEXT, .text = (s)                                                                \
	}
#define THINK(s)                                                                                             \
	{                                                                                                    \
		.type = CEV_THINKING, .text = (s)                                                            \
	}
#define SIG(i, s)                                                                                            \
	{                                                                                                    \
		.type = CEV_SIGNATURE, .index = (i), .text = (s)                                             \
	}
#define TSTART(i, id_, name_)                                                                                \
	{                                                                                                    \
		.type = CEV_TOOL_START, .index = (i), .id = (id_), .name = (name_)                           \
	}
#define TARGS(i, s)                                                                                          \
	{                                                                                                    \
		.type = CEV_TOOL_ARGS, .index = (i), .text = (s)                                             \
	}
#define FINISH(f)                                                                                            \
	{                                                                                                    \
		.type = CEV_FINISH, .finish = (f)                                                            \
	}
#define USAGEV(u)                                                                                            \
	{                                                                                                    \
		.type = CEV_USAGE, .usage = u                                                                \
	}
#define END                                                                                                  \
	{                                                                                                    \
		.type = CEV_END                                                                              \
	}

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(openai, senc_text_only)
{
	const struct cev evs[] = { START("msg_013Zva2CMHLNnXjNJJKqJ2EF", "claude-x",
		                         USAGE(25, -1, -1, -1, -1)),
		                   TEXT("Hello"),
		                   TEXT(""),
		                   TEXT(", world — ☀️"),
		                   SIG(-1, "sig"),
		                   FINISH("stop"),
		                   USAGEV(USAGE(25, 12, 37, 0, -1)),
		                   END };
	struct wire_opts o = { .model = "my-model", .stream = true, .prompt_estimate = -1 };
	check_senc(evs, N(evs), &o, FX "senc_text.sse");
}

Test(openai, senc_text_with_include_usage)
{
	/* FINISH before USAGE, as Anthropic's message_delta gives them */
	const struct cev evs[] = { START("chatcmpl-keep", NULL, USAGE(25, -1, -1, -1, -1)),
		                   THINK("Let me think."),
		                   TEXT("Hi"),
		                   FINISH("length"),
		                   USAGEV(USAGE(-1, 12, -1, 20, 5)),
		                   END };
	struct wire_opts o = {
		.model = "my-model", .stream = true, .include_usage = true, .prompt_estimate = -1
	};
	check_senc(evs, N(evs), &o, FX "senc_text_usage.sse");
}

Test(openai, senc_two_tools_keep_order_and_index)
{
	/* the event indexes are the provider's block numbers (Anthropic: the
	 * text is block 0), the client's are 0, 1 */
	const struct cev evs[] = { START("msg_1", NULL, UNKNOWN),
		                   TEXT("Checking."),
		                   TSTART(1, "toolu_A", "get_weather"),
		                   TARGS(1, "{\"city\":"),
		                   TSTART(2, "toolu_B", "get_time"),
		                   TARGS(1, "\"Paris\"}"),
		                   TARGS(2, ""),
		                   TARGS(2, "{}"),
		                   TARGS(9, "{\"orphan\":1}"),
		                   SIG(2, "sig"),
		                   FINISH("tool_calls"),
		                   USAGEV(USAGE(10, 20, 30, -1, -1)),
		                   END };
	struct wire_opts o = { .model = "m", .stream = true, .include_usage = true, .prompt_estimate = -1 };
	check_senc(evs, N(evs), &o, FX "senc_tools.sse");
}

Test(openai, senc_error_mid_stream)
{
	struct wire_error e = { .status = 529 };
	snprintf(e.type, sizeof(e.type), "overloaded_error");
	snprintf(e.message, sizeof(e.message), "Overloaded");
	const struct cev evs[] = { START("msg_2", NULL, UNKNOWN),
		                   TEXT("Par"),
		                   { .type = CEV_ERROR, .error = &e },
		                   TEXT("ignored"),
		                   END };
	struct wire_opts o = { .model = "m", .stream = true, .include_usage = true, .prompt_estimate = -1 };
	check_senc(evs, N(evs), &o, FX "senc_error.sse");
}

Test(openai, senc_events_before_start)
{
	/* Gemini gives no id; no START at all here, and no FINISH either */
	const struct cev evs[] = { TEXT("Hi"), START("late", NULL, UNKNOWN), TSTART(0, NULL, "f"),
		                   TARGS(0, "{}"), END };
	struct wire_opts o = { .model = "m", .stream = true, .include_usage = true, .prompt_estimate = 42 };
	char *got = encode_events(evs, N(evs), &o);
	/* the generated tool id differs per run */
	char *p = strstr(got, "\"id\":\"call_");
	cr_assert_not_null(p, "%s", got);
	cr_assert_eq(strspn(p + 11, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), 24);
	memset(p + 11, 'X', 24);
	char *want = xlate_read(FX "senc_no_start.sse", NULL);
	cr_assert_str_eq(got, want, "%s", got);
	free(want);
	free(got);
}

Test(openai, senc_error_first_and_empty_stream)
{
	const struct cev only_error[] = { { .type = CEV_ERROR, .error = NULL } };
	struct wire_opts o = { .model = "m", .stream = true, .prompt_estimate = -1 };
	char *got = encode_events(only_error, 1, &o);
	cr_assert_str_eq(got,
	                 "data: {\"error\":{\"message\":\"the provider failed\",\"type\":\"server_error\","
	                 "\"param\":null,\"code\":null}}\n\ndata: [DONE]\n\n");
	free(got);

	const struct cev only_end[] = { END, END };
	got = encode_events(only_end, 2, &o);
	cr_assert_str_eq(got,
	                 "data: {\"id\":\"chatcmpl-GEN\",\"object\":\"chat.completion.chunk\",\"created\":0,"
	                 "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
	                 "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
	                 "data: {\"id\":\"chatcmpl-GEN\",\"object\":\"chat.completion.chunk\",\"created\":0,"
	                 "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
	                 "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
	free(got);
}

Test(openai, senc_same_id_and_created_in_every_chunk)
{
	const struct cev evs[] = { START("x1", NULL, UNKNOWN), TEXT("a"), TEXT("b"), FINISH("stop"), END };
	struct wire_opts o = { .model = "m", .include_usage = true, .prompt_estimate = -1 };
	struct wire_senc *e = F->senc_new(&o);
	struct evbuffer *out = evbuffer_new();
	for (size_t i = 0; i < N(evs); i++) {
		struct cev ev = evs[i];
		wire_usage_init(&ev.usage);
		if (ev.text)
			ev.len = strlen(ev.text);
		F->senc_event(e, &ev, out);
	}
	F->senc_free(e);
	size_t len = evbuffer_get_length(out);
	char *s = xmalloc(len + 1);
	evbuffer_remove(out, s, len);
	s[len] = '\0';
	evbuffer_free(out);
	long long created = -1;
	int chunks = 0;
	char *p = s;
	while ((p = strstr(p, "data: {"))) {
		char *end = strstr(p, "\n\n");
		cr_assert_not_null(end);
		json_t *c = json_loadb(p + 6, (size_t)(end - p - 6), 0, NULL);
		cr_assert_not_null(c);
		cr_assert_str_eq(wire_str(c, "id"), "chatcmpl-x1");
		if (created < 0)
			created = wire_int(c, "created");
		cr_assert_eq(wire_int(c, "created"), created);
		cr_assert(json_object_get(c, "usage") != NULL, "usage key on every chunk with include_usage");
		json_decref(c);
		chunks++;
		p = end;
	}
	cr_assert_eq(chunks, 5); /* role, a, b, finish, usage */
	free(s);
}

/* ---- decoder → encoder: an OpenAI stream comes out as an OpenAI stream ---- */

Test(openai, stream_round_trip_all_splits)
{
	size_t n;
	char *in = xlate_read(FX "stream_tools.sse", &n);
	struct wire_opts o = {
		.model = "gpt-4o-mini", .stream = true, .include_usage = true, .prompt_estimate = -1
	};
	char *got = xlate_stream_all_splits(F, F, &o, in, n, normalise);
	char *want = xlate_read(FX "stream_tools.roundtrip.sse", NULL);
	cr_assert_str_eq(got, want, "%s", got);
	free(want);
	free(got);
	free(in);
}

/* ---- passthrough usage, URL, headers ---- */

Test(openai, usage_of_a_chat_completion)
{
	json_t *body = xlate_json(FX "resp_tools.json");
	struct wire_usage u;
	F->usage(body, &u);
	cr_assert_eq(u.prompt, 82);
	cr_assert_eq(u.completion, 51);
	cr_assert_eq(u.total, 133);
	cr_assert_eq(u.cached, 64);
	cr_assert_eq(u.reasoning, -1);
	json_decref(body);

	body = xlate_json(FX "resp_reasoning.json");
	F->usage(body, &u);
	cr_assert_eq(u.reasoning, 250);
	cr_assert_eq(u.cached, -1);
	json_decref(body);

	body = parse("{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}");
	F->usage(body, &u);
	cr_assert_eq(u.total, 7);
	json_decref(body);

	body = parse("{\"usage\":\"lots\"}");
	F->usage(body, &u);
	cr_assert_eq(u.prompt, -1);
	cr_assert_eq(u.total, -1);
	json_decref(body);
}

Test(openai, chat_url_and_auth_headers)
{
	char *u = F->chat_url("https://api.openai.com/v1", "gpt-4o", false);
	cr_assert_str_eq(u, "https://api.openai.com/v1/chat/completions");
	free(u);
	u = F->chat_url("http://localhost:11434/v1/", "llama3", true);
	cr_assert_str_eq(u, "http://localhost:11434/v1/chat/completions");
	free(u);

	char *h[4] = { 0 };
	cr_assert_eq(F->auth_headers("sk-test", h, 4), 1);
	cr_assert_str_eq(h[0], "Authorization: Bearer sk-test");
	free(h[0]);
	cr_assert_eq(F->auth_headers(NULL, h, 4), 0);
	cr_assert_eq(F->auth_headers("", h, 4), 0);
	cr_assert_eq(F->auth_headers("sk-test", h, 0), 0);
}
