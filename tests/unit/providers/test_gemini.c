/*
 * test_gemini.c — unit tests for the Gemini wire format
 * (src/providers/gemini.c).
 *
 * Golden fixtures live in tests/unit/providers/fixtures/gemini/: each
 * direction (client request → canonical, canonical → provider request,
 * provider answer → canonical, canonical → client answer) has an input
 * and the expected output, compared with json_equal.  Ids the code
 * generates at random ("call_<24 random>_<n>" in decoded requests) are
 * normalised to "call_gen_<n>" before comparing; ids derived from a
 * responseId are deterministic and compared as they are.
 *
 * Streams: the decoder is checked with xlate_trace_all_splits (the same
 * trace whole, split at every byte and byte by byte); the encoder is fed
 * scripted canonical events and must write exactly the bytes of a
 * fixture.  Hostile inputs must give a 400 (client request) or 502
 * (provider answer) with a message, never a crash (ASan/UBSan run these).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "providers/format.h"
#include "providers/wire_util.h"
#include "xlate_testutil.h"

#define G (&wire_gemini)

/* ---- helpers ---- */

/* "call_<24 alphanumerics>_<n>" → "call_gen_<n>", everywhere in j. */
static void norm_ids(json_t *j)
{
	if (json_is_object(j)) {
		const char *k;
		json_t *v;
		json_object_foreach (j, k, v) {
			if (json_is_string(v)) {
				const char *s = json_string_value(v);
				size_t n = strlen(s), i;
				if (n >= 31 && strncmp(s, "call_", 5) == 0 && s[29] == '_') {
					for (i = 5; i < 29; i++)
						if (!((s[i] >= 'a' && s[i] <= 'z') ||
						      (s[i] >= 'A' && s[i] <= 'Z') ||
						      (s[i] >= '0' && s[i] <= '9')))
							break;
					if (i == 29) {
						char buf[64];
						snprintf(buf, sizeof(buf), "call_gen_%s", s + 30);
						json_string_set(v, buf);
					}
				}
			} else
				norm_ids(v);
		}
	} else if (json_is_array(j)) {
		size_t i;
		json_t *v;
		json_array_foreach (j, i, v)
			norm_ids(v);
	}
}

static json_t *parse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);
	cr_assert_not_null(j, "bad test JSON: %s: %s", e.text, s);
	return j;
}

/* decode_request of a fixture, ids normalised, compared with another. */
static void check_decode_request(const char *in, const char *want)
{
	json_t *body = xlate_json(in), *exp = xlate_json(want);
	struct wire_err err = { 0 };
	json_t *got = G->decode_request(body, &err);
	cr_assert_not_null(got, "%s: %d %s", in, err.status, err.message);
	norm_ids(got);
	xlate_assert_json_eq(got, exp, in);
	json_decref(body);
	json_decref(exp);
	json_decref(got);
}

static void check_decode_response(const char *in, const char *want)
{
	json_t *body = xlate_json(in), *exp = xlate_json(want);
	struct wire_err err = { 0 };
	json_t *got = G->decode_response(body, &err);
	cr_assert_not_null(got, "%s: %d %s", in, err.status, err.message);
	cr_assert(json_integer_value(json_object_get(got, "created")) > 1600000000);
	json_object_set_new(got, "created", json_integer(0));
	xlate_assert_json_eq(got, exp, in);
	json_decref(body);
	json_decref(exp);
	json_decref(got);
}

/* decode_request of inline JSON must fail with 400 and a message containing want. */
static void expect_req_400(const char *body, const char *want)
{
	json_t *b = parse(body);
	struct wire_err err = { 0 };
	json_t *got = G->decode_request(b, &err);
	cr_assert_null(got, "accepted: %s", body);
	cr_assert_eq(err.status, 400, "%s: status %d", body, err.status);
	cr_assert_not_null(strstr(err.message, want), "%s: message \"%s\" lacks \"%s\"", body, err.message,
	                   want);
	json_decref(b);
}

static void expect_enc_400(const char *canon, const char *want)
{
	json_t *c = parse(canon);
	struct wire_err err = { 0 };
	struct wire_opts o = { .model = "gemini-2.0-flash", .prompt_estimate = -1 };
	json_t *got = G->encode_request(c, &o, &err);
	cr_assert_null(got, "accepted: %s", canon);
	cr_assert_eq(err.status, 400, "%s: status %d", canon, err.status);
	cr_assert_not_null(strstr(err.message, want), "%s: message \"%s\" lacks \"%s\"", canon, err.message,
	                   want);
	json_decref(c);
}

/* ---- client request → canonical ---- */

Test(gemini, decode_request_chat)
{
	check_decode_request("gemini/req_chat.json", "gemini/req_chat.canon.json");
}

Test(gemini, decode_request_tools_pairs_generated_ids)
{
	check_decode_request("gemini/req_tools.json", "gemini/req_tools.canon.json");
}

Test(gemini, decode_request_function_response_ids)
{
	/* explicit ids win over order; an answer without id takes the
	 * earliest unanswered call of its name in the latest model turn */
	json_t *b = parse("{\"contents\":["
	                  "{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\"}}]},"
	                  "{\"role\":\"model\",\"parts\":["
	                  "{\"functionCall\":{\"id\":\"A\",\"name\":\"f\",\"args\":{}}},"
	                  "{\"functionCall\":{\"id\":\"B\",\"name\":\"f\",\"args\":{}}},"
	                  "{\"functionCall\":{\"name\":\"g\",\"args\":{}}}]},"
	                  "{\"role\":\"user\",\"parts\":["
	                  "{\"functionResponse\":{\"id\":\"B\",\"name\":\"f\",\"response\":{\"r\":2}}},"
	                  "{\"functionResponse\":{\"name\":\"f\",\"response\":{\"r\":1}}},"
	                  "{\"functionResponse\":{\"name\":\"g\",\"response\":{}}},"
	                  "{\"text\":\"go on\"}]}]}");
	struct wire_err err = { 0 };
	json_t *c = G->decode_request(b, &err);
	cr_assert_not_null(c, "%s", err.message);
	json_t *m = json_object_get(c, "messages");
	cr_assert_eq(json_array_size(m), 6);
	cr_assert_str_eq(wire_str(json_array_get(m, 2), "tool_call_id"), "B");
	cr_assert_str_eq(wire_str(json_array_get(m, 3), "tool_call_id"), "A");
	const char *gid =
	    wire_str(json_array_get(json_object_get(json_array_get(m, 1), "tool_calls"), 2), "id");
	cr_assert_str_eq(wire_str(json_array_get(m, 4), "tool_call_id"), gid);
	cr_assert_str_eq(wire_str(json_array_get(m, 4), "content"), "{}");
	cr_assert_str_eq(wire_str(json_array_get(m, 5), "role"), "user");
	cr_assert_str_eq(wire_str(json_array_get(m, 5), "content"), "go on");
	json_decref(c);
	json_decref(b);
}

Test(gemini, decode_request_misc_fields)
{
	json_t *b = parse("{\"systemInstruction\":\"plain\",\"contents\":[{\"role\":\"user\",\"parts\":["
	                  "{\"fileData\":{\"mimeType\":\"image/png\",\"fileUri\":\"gs://b/cat.png\"}},"
	                  "{\"text\":\"\"},{\"text\":\"hidden\",\"thought\":true}]}],"
	                  "\"generation_config\":{\"response_mime_type\":\"application/json\",\"seed\":7,"
	                  "\"presencePenalty\":0.5,\"max_output_tokens\":\"64\"},"
	                  "\"tools\":[{\"functionDeclarations\":[]}],"
	                  "\"tool_config\":{\"function_calling_config\":{\"mode\":\"ANY\","
	                  "\"allowed_function_names\":[\"a\",\"b\"]}},"
	                  "\"cachedContent\":\"cachedContents/x\"}");
	json_t *want = parse("{\"messages\":[{\"role\":\"system\",\"content\":\"plain\"},"
	                     "{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
	                     "{\"url\":\"gs://b/cat.png\"}}]}],"
	                     "\"response_format\":{\"type\":\"json_object\"},\"seed\":7,"
	                     "\"presence_penalty\":0.5,\"max_tokens\":64,\"tool_choice\":\"required\"}");
	struct wire_err err = { 0 };
	json_t *c = G->decode_request(b, &err);
	cr_assert_not_null(c, "%s", err.message);
	xlate_assert_json_eq(c, want, "misc fields");
	json_decref(c);
	json_decref(want);
	json_decref(b);
}

Test(gemini, decode_request_schema_conversion)
{
	json_t *b =
	    parse("{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"tools\":[{\"function_declarations\":[{"
	          "\"name\":\"f\",\"parameters\":{\"type\":\"OBJECT\",\"properties\":{"
	          "\"any\":{\"type\":\"TYPE_UNSPECIFIED\",\"description\":\"d\"},"
	          "\"n\":{\"type\":\"INTEGER\",\"minimum\":1,\"max_length\":\"4\",\"example\":2},"
	          "\"u\":{\"any_of\":[{\"type\":\"STRING\"},{\"type\":\"NUMBER\",\"nullable\":true}]}},"
	          "\"property_ordering\":[\"n\",\"any\"]}}]}]}");
	json_t *want = parse("{\"type\":\"object\",\"properties\":{\"any\":{\"description\":\"d\"},"
	                     "\"n\":{\"type\":\"integer\",\"minimum\":1,\"maxLength\":4},"
	                     "\"u\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":[\"number\",\"null\"]}]}}}");
	struct wire_err err = { 0 };
	json_t *c = G->decode_request(b, &err);
	cr_assert_not_null(c, "%s", err.message);
	xlate_assert_json_eq(
	    json_object_get(json_object_get(json_array_get(json_object_get(c, "tools"), 0), "function"),
	                    "parameters"),
	    want, "parameters");
	json_decref(c);
	json_decref(want);
	json_decref(b);
}

Test(gemini, decode_request_hostile)
{
	expect_req_400("[]", "JSON object");
	expect_req_400("{}", "contents");
	expect_req_400("{\"contents\":[]}", "contents");
	expect_req_400("{\"contents\":{\"parts\":[]}}", "contents");
	expect_req_400("{\"contents\":[1]}", "contents[0]");
	expect_req_400("{\"contents\":[{\"parts\":[]}]}", "parts");
	expect_req_400("{\"contents\":[{\"parts\":\"hi\"}]}", "parts");
	expect_req_400("{\"contents\":[{\"role\":7,\"parts\":[{\"text\":\"x\"}]}]}", "role");
	expect_req_400("{\"contents\":[{\"role\":\"system\",\"parts\":[{\"text\":\"x\"}]}]}", "role");
	expect_req_400("{\"contents\":[{\"parts\":[\"text\"]}]}", "parts[0]");
	expect_req_400("{\"contents\":[{\"parts\":[{\"text\":5}]}]}", "text");
	expect_req_400(
	    "{\"contents\":[{\"parts\":[{\"inlineData\":{\"mimeType\":\"audio/wav\",\"data\":\"AA\"}}]}]}",
	    "only images");
	expect_req_400("{\"contents\":[{\"parts\":[{\"inlineData\":{\"data\":\"AA\"}}]}]}", "mimeType");
	expect_req_400(
	    "{\"contents\":[{\"parts\":[{\"fileData\":{\"mimeType\":\"video/mp4\",\"fileUri\":\"x\"}}]}]}",
	    "image");
	expect_req_400("{\"contents\":[{\"parts\":[{\"fileData\":{}}]}]}", "fileUri");
	expect_req_400("{\"contents\":[{\"parts\":[{\"functionCall\":{\"name\":\"f\"}}]}]}", "model turn");
	expect_req_400(
	    "{\"contents\":[{\"parts\":[{\"functionResponse\":{\"name\":\"f\",\"response\":{}}}]}]}",
	    "answers no functionCall");
	expect_req_400("{\"contents\":[{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\"}}]},"
	               "{\"parts\":[{\"functionResponse\":{\"name\":\"f\",\"response\":[1]}}]}]}",
	               "response must be an object");
	expect_req_400("{\"contents\":[{\"parts\":[{\"functionResponse\":{\"response\":{}}}]}]}", "name");
	expect_req_400("{\"contents\":[{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\","
	               "\"args\":[1]}}]}]}",
	               "args must be an object");
	expect_req_400("{\"contents\":[{\"role\":\"model\",\"parts\":[{\"functionCall\":{}}]}]}", "name");
	expect_req_400(
	    "{\"contents\":[{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\",\"id\":3}}]}]}",
	    "id must be a string");
	expect_req_400(
	    "{\"contents\":[{\"role\":\"model\",\"parts\":[{\"inlineData\":{\"mimeType\":\"image/png\","
	    "\"data\":\"AA\"}}]}]}",
	    "model turn");
	expect_req_400(
	    "{\"contents\":[{\"role\":\"model\",\"parts\":[{\"text\":\"a\",\"thoughtSignature\":5}]}]}",
	    "thoughtSignature");
	expect_req_400("{\"contents\":[{\"parts\":[{\"executableCode\":{\"code\":\"1\"}}]}]}",
	               "unsupported part");
	expect_req_400("{\"systemInstruction\":{\"parts\":[{\"inlineData\":{}}]},\"contents\":[{\"parts\":[{"
	               "\"text\":\"x\"}]}]}",
	               "systemInstruction");
	expect_req_400("{\"systemInstruction\":5,\"contents\":[{\"parts\":[{\"text\":\"x\"}]}]}",
	               "systemInstruction");

	const char *ok = "\"contents\":[{\"parts\":[{\"text\":\"x\"}]}]";
	char buf[512];
#define GC(cfg, want)                                                                                        \
	do {                                                                                                 \
		snprintf(buf, sizeof(buf), "{%s,\"generationConfig\":%s}", ok, cfg);                         \
		expect_req_400(buf, want);                                                                   \
	} while (0)
	GC("[]", "generationConfig");
	GC("{\"candidateCount\":2}", "candidateCount");
	GC("{\"candidateCount\":\"many\"}", "candidateCount");
	GC("{\"temperature\":\"hot\"}", "temperature");
	GC("{\"topP\":[]}", "topP");
	GC("{\"topK\":-3}", "topK");
	GC("{\"maxOutputTokens\":-1}", "maxOutputTokens");
	GC("{\"maxOutputTokens\":1.5}", "maxOutputTokens");
	GC("{\"maxOutputTokens\":\"99999999999999999999\"}", "maxOutputTokens");
	GC("{\"stopSequences\":\"x\"}", "stopSequences");
	GC("{\"stopSequences\":[1]}", "stopSequences");
	GC("{\"seed\":\"s\"}", "seed");
	GC("{\"responseMimeType\":\"text/x.enum\"}", "responseMimeType");
	GC("{\"responseMimeType\":5}", "responseMimeType");
	GC("{\"responseSchema\":{\"type\":\"STRING\"}}", "application/json");
	GC("{\"responseMimeType\":\"application/json\",\"responseSchema\":[]}", "schema");
	GC("{\"responseMimeType\":\"application/json\",\"responseJsonSchema\":1}", "responseJsonSchema");
	GC("{\"responseModalities\":[\"IMAGE\"]}", "responseModalities");
	GC("{\"thinkingConfig\":true}", "thinkingConfig");
#undef GC
#define TL(tools, want)                                                                                      \
	do {                                                                                                 \
		snprintf(buf, sizeof(buf), "{%s,\"tools\":%s}", ok, tools);                                  \
		expect_req_400(buf, want);                                                                   \
	} while (0)
	TL("{}", "tools must be an array");
	TL("[1]", "tools[0]");
	TL("[{\"googleSearch\":{}}]", "googleSearch");
	TL("[{\"codeExecution\":{}}]", "codeExecution");
	TL("[{\"functionDeclarations\":{}}]", "functionDeclarations");
	TL("[{\"functionDeclarations\":[{\"description\":\"x\"}]}]", "name");
	TL("[{\"functionDeclarations\":[{\"name\":\"f\",\"description\":1}]}]", "description");
	TL("[{\"functionDeclarations\":[{\"name\":\"f\",\"parameters\":[]}]}]", "schema");
	TL("[{\"functionDeclarations\":[{\"name\":\"f\",\"parameters\":{\"properties\":[]}}]}]", "malformed");
	TL("[{\"functionDeclarations\":[{\"name\":\"f\",\"parametersJsonSchema\":1}]}]",
	   "parametersJsonSchema");
#undef TL
	snprintf(buf, sizeof(buf), "{%s,\"toolConfig\":{\"functionCallingConfig\":{\"mode\":\"SOMETIMES\"}}}",
	         ok);
	expect_req_400(buf, "mode");
	snprintf(buf, sizeof(buf), "{%s,\"toolConfig\":{\"functionCallingConfig\":{\"mode\":1}}}", ok);
	expect_req_400(buf, "functionCallingConfig");
	snprintf(buf, sizeof(buf), "{%s,\"toolConfig\":[]}", ok);
	expect_req_400(buf, "toolConfig");
}

Test(gemini, decode_request_deep_schema)
{
	/* 200 nested "items": bounded recursion, not a stack overflow */
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(
	    b, "{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}],\"tools\":[{\"functionDeclarations\":"
	       "[{\"name\":\"f\",\"parameters\":");
	for (int i = 0; i < 200; i++)
		evbuffer_add_printf(b, "{\"type\":\"ARRAY\",\"items\":");
	evbuffer_add_printf(b, "{\"type\":\"STRING\"}");
	for (int i = 0; i < 200; i++)
		evbuffer_add_printf(b, "}");
	evbuffer_add_printf(b, "}]}]}");
	evbuffer_add(b, "", 1);
	expect_req_400((const char *)evbuffer_pullup(b, -1), "too deeply");
	evbuffer_free(b);
}

/* ---- canonical → provider request ---- */

Test(gemini, encode_request_golden)
{
	json_t *c = xlate_json("gemini/canon_req.json"), *want = xlate_json("gemini/canon_req.gemini.json");
	struct wire_err err = { 0 };
	struct wire_opts o = { .model = "gemini-2.0-flash", .stream = true, .prompt_estimate = -1 };
	json_t *got = G->encode_request(c, &o, &err);
	cr_assert_not_null(got, "%d %s", err.status, err.message);
	xlate_assert_json_eq(got, want, "encode_request");
	json_decref(got);
	json_decref(c);
	json_decref(want);
}

Test(gemini, encode_request_tool_choice_and_thinking)
{
	static const char *const cases[][2] = {
		{ "\"auto\"", "{\"mode\":\"AUTO\"}" },
		{ "\"none\"", "{\"mode\":\"NONE\"}" },
		{ "\"required\"", "{\"mode\":\"ANY\"}" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[512];
		snprintf(buf, sizeof(buf),
		         "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{\"type\":"
		         "\"function\","
		         "\"function\":{\"name\":\"f\"}}],\"tool_choice\":%s,\"max_completion_tokens\":9,"
		         "\"x_thinking\":{\"type\":\"enabled\",\"budget_tokens\":2048}}",
		         cases[i][0]);
		json_t *c = parse(buf), *want = parse(cases[i][1]);
		struct wire_err err = { 0 };
		json_t *got = G->encode_request(c, NULL, &err);
		cr_assert_not_null(got, "%s", err.message);
		xlate_assert_json_eq(
		    json_object_get(json_object_get(got, "toolConfig"), "functionCallingConfig"), want,
		    cases[i][0]);
		json_t *gc = json_object_get(got, "generationConfig");
		json_t *wgc = parse("{\"maxOutputTokens\":9,\"thinkingConfig\":{\"includeThoughts\":true,"
		                    "\"thinkingBudget\":2048}}");
		xlate_assert_json_eq(gc, wgc, "generationConfig");
		json_decref(wgc);
		json_decref(got);
		json_decref(c);
		json_decref(want);
	}
}

Test(gemini, encode_request_hostile)
{
	expect_enc_400("{}", "messages");
	expect_enc_400("{\"messages\":[1]}", "role");
	expect_enc_400("{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", "role");
	expect_enc_400("{\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}", "at least one");
	expect_enc_400("{\"messages\":[{\"role\":\"user\",\"content\":\"\"}]}", "at least one");
	expect_enc_400("{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "content");
	expect_enc_400("{\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\"}]}]}",
	               "text parts");
	expect_enc_400("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
	               "{\"url\":\"https://example.com/cat.png\"}}]}]}",
	               "remote image URLs cannot be sent to a Gemini provider yet");
	expect_enc_400("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":"
	               "{\"url\":\"data:image/png,abc\"}}]}]}",
	               "base64 data: URI");
	expect_enc_400("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "url");
	expect_enc_400("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"video\"}]}]}", "video");
	expect_enc_400("{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}", "type");
	expect_enc_400("{\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"nope\",\"content\":\"x\"}]}",
	               "unknown tool_call_id \"nope\"");
	expect_enc_400("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\",\"function\":"
	               "{\"name\":\"f\",\"arguments\":\"not json\"}}]}]}",
	               "not a JSON object");
	expect_enc_400("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\",\"function\":"
	               "{\"name\":\"f\",\"arguments\":\"[1]\"}}]}]}",
	               "not a JSON object");
	expect_enc_400("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\"}]}]}",
	               "function name");
	expect_enc_400("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":{}}]}", "tool_calls");
	const char *m = "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]";
	char buf[1024];
#define E(extra, want)                                                                                       \
	do {                                                                                                 \
		snprintf(buf, sizeof(buf), "{%s,%s}", m, extra);                                             \
		expect_enc_400(buf, want);                                                                   \
	} while (0)
	E("\"n\":2", "n > 1");
	E("\"n\":0", "n must be");
	E("\"max_tokens\":\"x\"", "max_tokens");
	E("\"max_tokens\":-5", "max_tokens");
	E("\"temperature\":\"x\"", "temperature");
	E("\"x_top_k\":1.5", "top_k");
	E("\"stop\":5", "stop");
	E("\"stop\":[1]", "stop");
	E("\"response_format\":{\"type\":\"xml\"}", "response_format");
	E("\"response_format\":{}", "response_format");
	E("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":5}}", "schema");
	E("\"x_thinking_config\":1", "x_thinking_config");
	E("\"tools\":{}", "tools");
	E("\"tools\":[{\"type\":\"web_search\"}]", "only function tools");
	E("\"tools\":[{\"type\":\"function\",\"function\":{}}]", "name");
	E("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":5}}]", "schema");
	E("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":5}}}]",
	  "type");
	E("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"$ref\":\"http://"
	  "x\"}}}]",
	  "local");
	E("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":"
	  "\"object\","
	  "\"properties\":{\"n\":{\"$ref\":\"#/$defs/N\"}},\"$defs\":{\"N\":{\"type\":\"object\","
	  "\"properties\":{\"next\":{\"$ref\":\"#/$defs/N\"}}}}}}}]",
	  "recursive");
	E("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"anyOf\":{}}}}]",
	  "anyOf");
	E("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"sometimes\"",
	  "tool_choice");
#undef E
}

Test(gemini, encode_request_ref_fanout_is_bounded)
{
	/* each level references the next twice: 2^40 nodes if expanded naively */
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(
	    b, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
	       "\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"$ref\":\"#/$defs/L0\","
	       "\"$defs\":{");
	for (int i = 0; i < 40; i++)
		evbuffer_add_printf(
		    b,
		    "%s\"L%d\":{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#/$defs/L%d\"},"
		    "\"b\":{\"$ref\":\"#/$defs/L%d\"}}}",
		    i ? "," : "", i, i + 1, i + 1);
	evbuffer_add_printf(b, ",\"L40\":{\"type\":\"string\"}}}}}]}");
	evbuffer_add(b, "", 1);
	expect_enc_400((const char *)evbuffer_pullup(b, -1), "too large");
	evbuffer_free(b);
}

/* ---- provider answer → canonical ---- */

Test(gemini, decode_response_text)
{
	check_decode_response("gemini/resp_text.json", "gemini/resp_text.canon.json");
}

Test(gemini, decode_response_tools_thinking_usage)
{
	check_decode_response("gemini/resp_tools.json", "gemini/resp_tools.canon.json");
}

Test(gemini, decode_response_prompt_blocked)
{
	check_decode_response("gemini/resp_blocked.json", "gemini/resp_blocked.canon.json");
}

Test(gemini, decode_response_finish_reasons)
{
	static const char *const cases[][3] = {
		{ "STOP", "", "stop" },
		{ "STOP", "f", "tool_calls" },
		{ "MAX_TOKENS", "", "length" },
		{ "MAX_TOKENS", "f", "length" },
		{ "SAFETY", "", "content_filter" },
		{ "RECITATION", "", "content_filter" },
		{ "BLOCKLIST", "", "content_filter" },
		{ "PROHIBITED_CONTENT", "", "content_filter" },
		{ "SPII", "", "content_filter" },
		{ "IMAGE_SAFETY", "", "content_filter" },
		{ "OTHER", "", "stop" },
		{ "LANGUAGE", "", "stop" },
		{ "MALFORMED_FUNCTION_CALL", "", "stop" },
		{ "FINISH_REASON_UNSPECIFIED", "", "stop" },
		{ "SOMETHING_NEW", "", "stop" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[512];
		snprintf(buf, sizeof(buf),
		         "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[%s]},\"finishReason\":"
		         "\"%s\"}]}",
		         *cases[i][1] ? "{\"functionCall\":{\"name\":\"f\",\"args\":{}}}"
		                      : "{\"text\":\"x\"}",
		         cases[i][0]);
		json_t *b = parse(buf);
		struct wire_err err = { 0 };
		json_t *c = G->decode_response(b, &err);
		cr_assert_not_null(c, "%s", err.message);
		const json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
		cr_assert_str_eq(wire_str(ch, "finish_reason"), cases[i][2], "%s", cases[i][0]);
		/* no responseId: generated ids */
		cr_assert_eq(strncmp(wire_str(c, "id"), "chatcmpl-", 9), 0);
		json_decref(c);
		json_decref(b);
	}
}

Test(gemini, decode_response_hostile)
{
	static const char *const bad[] = {
		"[]",
		"{}",
		"{\"candidates\":[]}",
		"{\"candidates\":[1]}",
		"{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"args\":{}}}]}}]}",
		"{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":\"x\"}}"
		"]}}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *b = parse(bad[i]);
		struct wire_err err = { 0 };
		json_t *c = G->decode_response(b, &err);
		cr_assert_null(c, "accepted %s", bad[i]);
		cr_assert_eq(err.status, 502, "%s", bad[i]);
		cr_assert(err.message[0]);
		json_decref(b);
	}
	/* odd but harmless shapes are tolerated */
	json_t *b = parse("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":7},{\"inlineData\":{}}]},"
	                  "\"finishReason\":5}],\"usageMetadata\":{\"promptTokenCount\":\"x\"}}");
	struct wire_err err = { 0 };
	json_t *c = G->decode_response(b, &err);
	cr_assert_not_null(c);
	cr_assert_str_eq(
	    wire_str(json_object_get(json_array_get(json_object_get(c, "choices"), 0), "message"), "content"),
	    "");
	json_decref(c);
	json_decref(b);
}

Test(gemini, usage_with_cached_and_thoughts)
{
	json_t *b = xlate_json("gemini/resp_tools.json");
	struct wire_usage u;
	G->usage(b, &u);
	cr_assert_eq(u.prompt, 1200);
	cr_assert_eq(u.completion, 140);
	cr_assert_eq(u.total, 1340);
	cr_assert_eq(u.cached, 1000);
	cr_assert_eq(u.reasoning, 100);
	json_decref(b);
	json_t *none = parse("{\"candidates\":[]}");
	G->usage(none, &u);
	cr_assert_eq(u.prompt, -1);
	cr_assert_eq(u.completion, -1);
	json_decref(none);
}

/* ---- canonical → client answer ---- */

Test(gemini, encode_response_golden)
{
	json_t *c = xlate_json("gemini/canon_resp.json"), *want = xlate_json("gemini/canon_resp.gemini.json");
	struct wire_opts o = { .model = "my-alias", .prompt_estimate = -1 };
	json_t *got = G->encode_response(c, &o);
	xlate_assert_json_eq(got, want, "encode_response");
	json_decref(got);
	json_decref(c);
	json_decref(want);
}

Test(gemini, encode_response_finish_mapping)
{
	static const char *const cases[][2] = {
		{ "stop", "STOP" },         { "tool_calls", "STOP" },
		{ "length", "MAX_TOKENS" }, { "content_filter", "SAFETY" },
		{ "weird", "STOP" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[256];
		snprintf(buf, sizeof(buf),
		         "{\"id\":\"x\",\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"\"},"
		         "\"finish_reason\":\"%s\"}]}",
		         cases[i][0]);
		json_t *c = parse(buf);
		json_t *g = G->encode_response(c, NULL);
		const json_t *cand = json_array_get(json_object_get(g, "candidates"), 0);
		cr_assert_str_eq(wire_str(cand, "finishReason"), cases[i][1]);
		/* an empty answer has no parts (as Gemini sends it) */
		cr_assert_null(json_object_get(json_object_get(cand, "content"), "parts"));
		json_decref(g);
		json_decref(c);
	}
}

/* ---- round trips ---- */

Test(gemini, thought_signature_round_trip)
{
	/* provider answer with signatures → canonical → next provider request */
	json_t *resp = xlate_json("gemini/resp_tools.json");
	struct wire_err err = { 0 };
	json_t *canon = G->decode_response(resp, &err);
	cr_assert_not_null(canon);
	json_t *msg = json_object_get(json_array_get(json_object_get(canon, "choices"), 0), "message");
	json_t *req =
	    json_pack("{s[{ss ss}O{ss ss ss}{ss ss ss}{ss ss ss}]}", "messages", "role", "user", "content",
	              "weather?", msg, "role", "tool", "tool_call_id", "call_resp-42_0", "content", "sunny",
	              "role", "tool", "tool_call_id", "call_resp-42_1", "content", "rain", "role", "tool",
	              "tool_call_id", "fc-given", "content", "{\"t\":\"12:00\"}");
	json_t *body = G->encode_request(req, NULL, &err);
	cr_assert_not_null(body, "%s", err.message);
	json_t *want =
	    parse("[{\"role\":\"user\",\"parts\":[{\"text\":\"weather?\"}]},"
	          "{\"role\":\"model\",\"parts\":[{\"text\":\"I'll check both.\"},"
	          "{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"Paris\"}},"
	          "\"thoughtSignature\":\"c2lnLTE=\"},"
	          "{\"functionCall\":{\"name\":\"get_weather\",\"args\":{\"city\":\"London\"}}},"
	          "{\"functionCall\":{\"name\":\"get_time\",\"args\":{}}}]},"
	          "{\"role\":\"user\",\"parts\":["
	          "{\"functionResponse\":{\"name\":\"get_weather\",\"response\":{\"result\":\"sunny\"}}},"
	          "{\"functionResponse\":{\"name\":\"get_weather\",\"response\":{\"result\":\"rain\"}}},"
	          "{\"functionResponse\":{\"name\":\"get_time\",\"response\":{\"t\":\"12:00\"}}}]}]");
	xlate_assert_json_eq(json_object_get(body, "contents"), want, "contents");
	json_decref(want);
	json_decref(body);
	json_decref(req);
	json_decref(canon);
	json_decref(resp);
}

Test(gemini, client_request_round_trip)
{
	/* Gemini client → canonical → Gemini provider keeps every signature */
	json_t *in = xlate_json("gemini/req_tools.json");
	struct wire_err err = { 0 };
	json_t *canon = G->decode_request(in, &err);
	cr_assert_not_null(canon);
	json_t *out = G->encode_request(canon, NULL, &err);
	cr_assert_not_null(out, "%s", err.message);
	/* the thought part is foreign thinking to a provider: dropped */
	json_t *want = json_deep_copy(json_object_get(in, "contents"));
	json_array_remove(json_object_get(json_array_get(want, 3), "parts"), 0);
	xlate_assert_json_eq(json_object_get(out, "contents"), want, "contents");
	json_t *fcc = json_object_get(json_object_get(out, "toolConfig"), "functionCallingConfig");
	xlate_assert_json_eq(fcc, json_object_get(json_object_get(in, "toolConfig"), "functionCallingConfig"),
	                     "toolConfig");
	json_decref(want);
	json_decref(out);
	json_decref(canon);
	json_decref(in);
}

Test(gemini, function_call_ids_round_trip_through_client)
{
	/* ids in our answer are echoed by the client and pair up exactly,
	 * even when the client answers in another order */
	json_t *c = xlate_json("gemini/canon_resp.json");
	json_t *answer = G->encode_response(c, NULL);
	json_t *parts = json_object_get(
	    json_object_get(json_array_get(json_object_get(answer, "candidates"), 0), "content"), "parts");
	json_t *body =
	    json_pack("{s[{ss s[{ss}]} {ss sO} {ss s[{s{ss ss s{}}} {s{ss ss s{}}}]}]}", "contents", "role",
	              "user", "parts", "text", "hi", "role", "model", "parts", parts, "role", "user", "parts",
	              "functionResponse", "id", "call_2", "name", "broken", "response", "functionResponse",
	              "id", "call_1", "name", "get_weather", "response");
	struct wire_err err = { 0 };
	json_t *canon = G->decode_request(body, &err);
	cr_assert_not_null(canon, "%s", err.message);
	json_t *m = json_object_get(canon, "messages");
	const json_t *asst = json_array_get(m, 1);
	cr_assert_str_eq(wire_str(json_array_get(json_object_get(asst, "tool_calls"), 0), "id"), "call_1");
	cr_assert_str_eq(
	    wire_str(json_array_get(json_object_get(asst, "tool_calls"), 0), "x_thought_signature"),
	    "c2lnLTE=");
	cr_assert_str_eq(wire_str(json_array_get(json_object_get(asst, "x_thinking"), 0), "signature"),
	                 "EqQBsig");
	cr_assert_str_eq(wire_str(json_array_get(m, 2), "tool_call_id"), "call_2");
	cr_assert_str_eq(wire_str(json_array_get(m, 3), "tool_call_id"), "call_1");
	json_decref(canon);
	json_decref(body);
	json_decref(answer);
	json_decref(c);
}

/* ---- errors ---- */

Test(gemini, decode_error_shapes)
{
	struct wire_error e;
	const char *j =
	    "{\"error\":{\"code\":429,\"message\":\"Resource has been exhausted (e.g. check quota).\","
	    "\"status\":\"RESOURCE_EXHAUSTED\"}}";
	G->decode_error(429, j, strlen(j), &e);
	cr_assert_eq(e.status, 429);
	cr_assert_str_eq(e.type, "rate_limit_error");
	cr_assert_str_eq(e.message, "Resource has been exhausted (e.g. check quota).");

	const char *arr = "[{\"error\":{\"code\":503,\"message\":\"The model is "
	                  "overloaded.\",\"status\":\"UNAVAILABLE\"}}]";
	G->decode_error(503, arr, strlen(arr), &e);
	cr_assert_eq(e.status, 503);
	cr_assert_str_eq(e.type, "overloaded_error");
	cr_assert_str_eq(e.message, "The model is overloaded.");

	const char *key =
	    "{\"error\":{\"code\":400,\"message\":\"API key not valid. Please pass a valid API key.\","
	    "\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type.googleapis.com/"
	    "google.rpc.ErrorInfo\",\"reason\":\"API_KEY_INVALID\"}]}}";
	G->decode_error(400, key, strlen(key), &e);
	cr_assert_eq(e.status, 400);
	cr_assert_str_eq(e.type, "authentication_error");

	static const char *const st[][2] = {
		{ "INVALID_ARGUMENT", "invalid_request_error" },
		{ "FAILED_PRECONDITION", "invalid_request_error" },
		{ "PERMISSION_DENIED", "permission_error" },
		{ "UNAUTHENTICATED", "authentication_error" },
		{ "NOT_FOUND", "not_found_error" },
		{ "INTERNAL", "api_error" },
		{ "DEADLINE_EXCEEDED", "timeout_error" },
	};
	for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
		char buf[256];
		snprintf(buf, sizeof(buf), "{\"error\":{\"code\":400,\"message\":\"m\",\"status\":\"%s\"}}",
		         st[i][0]);
		G->decode_error(400, buf, strlen(buf), &e);
		cr_assert_str_eq(e.type, st[i][1], "%s", st[i][0]);
	}

	const char *html = "<html><body><h1>502 Bad Gateway</h1></body></html>";
	G->decode_error(502, html, strlen(html), &e);
	cr_assert_eq(e.status, 502);
	cr_assert_str_eq(e.type, "api_error");
	cr_assert_str_eq(e.message, "Gemini API error (HTTP 502)");

	G->decode_error(404, NULL, 0, &e);
	cr_assert_str_eq(e.type, "not_found_error");
	G->decode_error(500, "{\"error\":\"plain\"}", 17, &e);
	cr_assert_str_eq(e.message, "plain");
	G->decode_error(500, "{\"error\":{\"message\":7}}", 23, &e);
	cr_assert_str_eq(e.message, "Gemini API error (HTTP 500)");

	/* a long multi-byte message is cut at a character boundary */
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "{\"error\":{\"code\":400,\"message\":\"");
	for (int i = 0; i < 400; i++)
		evbuffer_add_printf(b, "\xc3\xa9");
	evbuffer_add_printf(b, "\"}}");
	size_t n = evbuffer_get_length(b);
	G->decode_error(400, (const char *)evbuffer_pullup(b, -1), n, &e);
	json_t *s = json_string(e.message);
	cr_assert_not_null(s, "message is not valid UTF-8 after clipping");
	json_decref(s);
	evbuffer_free(b);
}

Test(gemini, encode_error_shapes)
{
	static const struct {
		int status;
		const char *type, *gstatus;
		int code;
	} cases[] = {
		{ 400, "invalid_request_error", "INVALID_ARGUMENT", 400 },
		{ 401, "authentication_error", "UNAUTHENTICATED", 401 },
		{ 403, "permission_error", "PERMISSION_DENIED", 403 },
		{ 404, "not_found_error", "NOT_FOUND", 404 },
		{ 429, "rate_limit_error", "RESOURCE_EXHAUSTED", 429 },
		{ 500, "api_error", "INTERNAL", 500 },
		{ 503, "overloaded_error", "UNAVAILABLE", 503 },
		{ 529, "overloaded_error", "UNAVAILABLE", 529 },
		{ 504, "timeout_error", "DEADLINE_EXCEEDED", 504 },
		{ 0, "overloaded_error", "UNAVAILABLE", 500 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wire_error e = { .status = cases[i].status };
		snprintf(e.type, sizeof(e.type), "%s", cases[i].type);
		snprintf(e.message, sizeof(e.message), "went wrong");
		json_t *j = G->encode_error(&e);
		json_t *want = json_pack("{s{si ss ss}}", "error", "code", cases[i].code, "message",
		                         "went wrong", "status", cases[i].gstatus);
		xlate_assert_json_eq(j, want, cases[i].gstatus);
		json_decref(want);
		json_decref(j);
	}
	struct wire_error bad = { .status = 400 };
	memcpy(bad.message, "\xff\xfe", 3);
	json_t *j = G->encode_error(&bad);
	cr_assert_not_null(wire_str(json_object_get(j, "error"), "message"));
	json_decref(j);
}

/* ---- stream decoder ---- */

static void check_trace(const char *sse, const char *trace)
{
	size_t n;
	char *in = xlate_read(sse, &n);
	char *want = xlate_read(trace, NULL);
	char *got = xlate_trace_all_splits(G, in, n);
	cr_assert_str_eq(got, want, "trace of %s:\n%s", sse, got);
	free(got);
	free(want);
	free(in);
}

Test(gemini, stream_decoder_text_tool_usage)
{
	check_trace("gemini/stream_tool.sse", "gemini/stream_tool.trace");
}

Test(gemini, stream_decoder_error_event)
{
	check_trace("gemini/stream_error.sse", "gemini/stream_error.trace");
}

Test(gemini, stream_decoder_cut_keeps_usage)
{
	/* no finishReason: the stream ended early, usage seen is reported */
	check_trace("gemini/stream_cut.sse", "gemini/stream_cut.trace");
}

static int collect(const struct cev *ev, void *arg)
{
	return xlate_trace_cev(ev, arg);
}

static char *decode_events(const char *const *datas, size_t n, int *last_rc)
{
	struct wire_sdec *d = G->sdec_new();
	struct evbuffer *b = evbuffer_new();
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		char *copy = xstrdup(datas[i]);
		rc = G->sdec_event(d, "", 0, copy, strlen(copy), collect, b);
		free(copy);
	}
	*last_rc = rc;
	G->sdec_end(d, collect, b);
	G->sdec_free(d);
	size_t len = evbuffer_get_length(b);
	char *s = xmalloc(len + 1);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	return s;
}

Test(gemini, stream_decoder_hostile)
{
	int rc;
	const char *garbage[] = { "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}",
		                  "not json" };
	char *t = decode_events(garbage, 2, &rc);
	cr_assert_eq(rc, -1);
	cr_assert_not_null(strstr(t, "ERROR 502 api_error malformed JSON"), "%s", t);
	cr_assert_null(strstr(t, "END"), "%s", t);
	free(t);

	const char *bad_parts[] = { "{\"candidates\":[{\"content\":{\"parts\":{}}}]}" };
	t = decode_events(bad_parts, 1, &rc);
	cr_assert_eq(rc, -1);
	cr_assert_not_null(strstr(t, "ERROR 502"), "%s", t);
	free(t);

	const char *bad_call[] = {
		"{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"args\":1}}]}}]}"
	};
	t = decode_events(bad_call, 1, &rc);
	cr_assert_eq(rc, -1);
	free(t);

	const char *scalar[] = { "[1]" };
	t = decode_events(scalar, 1, &rc);
	cr_assert_eq(rc, -1);
	free(t);

	/* an error wrapped in an array, then nothing more is decoded */
	const char *wrapped[] = {
		"[{\"error\":{\"code\":429,\"message\":\"slow down\",\"status\":\"RESOURCE_EXHAUSTED\"}}]",
		"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"late\"}]},\"finishReason\":\"STOP\"}]}"
	};
	t = decode_events(wrapped, 2, &rc);
	cr_assert_eq(rc, 0);
	cr_assert_str_eq(t, "ERROR 429 rate_limit_error slow down\n");
	free(t);

	/* prompt blocked in a stream; no responseId: generated ids */
	const char *blocked[] = { "{\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":"
		                  "{\"promptTokenCount\":3}}" };
	t = decode_events(blocked, 1, &rc);
	cr_assert_eq(strncmp(t, "START id=\"chatcmpl-", 19), 0, "%s", t);
	cr_assert_not_null(strstr(t, "FINISH content_filter\nUSAGE usage=3/0/3/0/0\nEND\n"), "%s", t);
	free(t);

	/* MAX_TOKENS after a function call stays "length"; the id is kept */
	const char *len[] = {
		"{\"responseId\":\"q\",\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":"
		"{\"id\":\"given\",\"name\":\"f\"}}]},\"finishReason\":\"MAX_TOKENS\"}]}"
	};
	t = decode_events(len, 1, &rc);
	cr_assert_str_eq(
	    t, "START id=\"q\" model=\"\" usage=-1/-1/-1/-1/-1\nTOOL_START 0 id=\"given\" name=\"f\"\n"
	       "TOOL_ARGS 0 \"{}\"\nFINISH length\nEND\n");
	free(t);
}

/* ---- stream encoder ---- */

#define U(p, c, t, ca, r)                                                                                    \
	{                                                                                                    \
		.prompt = (p), .completion = (c), .total = (t), .cached = (ca), .reasoning = (r)             \
	}
#define UNK U(-1, -1, -1, -1, -1)

/* Feed the events to a Gemini encoder; the output (malloc'd). */
static char *encode_events(const struct wire_opts *o, const struct cev *evs, size_t n)
{
	struct wire_senc *e = G->senc_new(o);
	struct evbuffer *out = evbuffer_new();
	for (size_t i = 0; i < n; i++) {
		struct cev ev = evs[i];
		if (ev.text && !ev.len)
			ev.len = strlen(ev.text);
		G->senc_event(e, &ev, out);
	}
	G->senc_free(e);
	size_t len = evbuffer_get_length(out);
	char *s = xmalloc(len + 1);
	evbuffer_remove(out, s, len);
	s[len] = '\0';
	evbuffer_free(out);
	return s;
}

static void check_encoded(const struct wire_opts *o, const struct cev *evs, size_t n, const char *fixture)
{
	char *got = encode_events(o, evs, n);
	char *want = xlate_read(fixture, NULL);
	cr_assert_str_eq(got, want, "%s: got\n%s", fixture, got);
	free(got);
	free(want);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(gemini, stream_encoder_text_only)
{
	struct wire_opts o = { .model = "gemini-alias", .prompt_estimate = -1 };
	const struct cev evs[] = {
		{ .type = CEV_START, .id = "r-1", .model = "upstream", .usage = UNK },
		{ .type = CEV_TEXT, .text = "Hel", .usage = UNK },
		{ .type = CEV_TEXT, .text = "", .usage = UNK },
		{ .type = CEV_TEXT, .text = "lo", .usage = UNK },
		{ .type = CEV_FINISH, .finish = "stop", .usage = UNK },
		{ .type = CEV_USAGE, .usage = U(10, 5, 15, -1, -1) },
		{ .type = CEV_END, .usage = UNK },
	};
	check_encoded(&o, evs, N(evs), "gemini/senc_text.sse");
}

Test(gemini, stream_encoder_text_then_fragmented_tool)
{
	struct wire_opts o = { .prompt_estimate = -1 };
	const struct cev evs[] = {
		{ .type = CEV_START, .id = "r-2", .model = "up-model", .usage = UNK },
		{ .type = CEV_TEXT, .text = "Checking.", .usage = UNK },
		{ .type = CEV_TOOL_START, .index = 0, .id = "call_1", .name = "get_weather", .usage = UNK },
		{ .type = CEV_TOOL_ARGS, .index = 0, .text = "{\"ci", .usage = UNK },
		{ .type = CEV_TOOL_ARGS, .index = 0, .text = "ty\":\"Par", .usage = UNK },
		{ .type = CEV_TOOL_ARGS, .index = 0, .text = "is\"}", .usage = UNK },
		{ .type = CEV_FINISH, .finish = "tool_calls", .usage = UNK },
		{ .type = CEV_USAGE, .usage = U(20, 8, 28, -1, -1) },
		{ .type = CEV_END, .usage = UNK },
	};
	check_encoded(&o, evs, N(evs), "gemini/senc_tool.sse");
}

Test(gemini, stream_encoder_two_tools_bad_args)
{
	struct wire_opts o = { .model = "m", .prompt_estimate = -1 };
	const struct cev evs[] = {
		{ .type = CEV_START, .id = "r-3", .usage = UNK },
		{ .type = CEV_TOOL_START, .index = 0, .id = "call_a", .name = "f1", .usage = UNK },
		{ .type = CEV_TOOL_ARGS, .index = 0, .text = "{\"x\":1}", .usage = UNK },
		{ .type = CEV_SIGNATURE, .index = 0, .text = "sigA", .usage = UNK },
		{ .type = CEV_TOOL_START, .index = 1, .id = "call_b", .name = "f2", .usage = UNK },
		{ .type = CEV_TOOL_ARGS, .index = 1, .text = "{\"y\":", .usage = UNK },
		{ .type = CEV_TOOL_ARGS, .index = 0, .text = "stray", .usage = UNK },
		{ .type = CEV_TOOL_ARGS, .index = 1, .text = "oops", .usage = UNK },
		{ .type = CEV_FINISH, .finish = "tool_calls", .usage = UNK },
		{ .type = CEV_END, .usage = UNK },
	};
	check_encoded(&o, evs, N(evs), "gemini/senc_two_tools.sse");
}

Test(gemini, stream_encoder_finish_before_usage_thinking)
{
	struct wire_opts o = { .model = "m", .prompt_estimate = 999 };
	const struct cev evs[] = {
		{ .type = CEV_START, .id = "r-4", .usage = U(7, -1, -1, -1, -1) },
		{ .type = CEV_THINKING, .text = "hmm", .usage = UNK },
		{ .type = CEV_SIGNATURE, .index = -1, .text = "sig", .usage = UNK },
		{ .type = CEV_TEXT, .text = "ok", .usage = UNK },
		{ .type = CEV_FINISH, .finish = "length", .usage = UNK },
		{ .type = CEV_USAGE, .usage = U(-1, 30, -1, 2, 10) },
		{ .type = CEV_END, .usage = UNK },
	};
	check_encoded(&o, evs, N(evs), "gemini/senc_finish_usage.sse");
}

Test(gemini, stream_encoder_error_mid_stream)
{
	struct wire_opts o = { .model = "m", .prompt_estimate = -1 };
	struct wire_error err = { .status = 529, .type = "overloaded_error", .message = "Overloaded" };
	const struct cev evs[] = {
		{ .type = CEV_START, .id = "r-5", .usage = UNK },
		{ .type = CEV_TEXT, .text = "par", .usage = UNK },
		{ .type = CEV_TOOL_START, .index = 0, .id = "call_z", .name = "f", .usage = UNK },
		{ .type = CEV_TOOL_ARGS, .index = 0, .text = "{\"a\"", .usage = UNK },
		{ .type = CEV_ERROR, .error = &err, .usage = UNK },
		{ .type = CEV_TEXT, .text = "after", .usage = UNK },
		{ .type = CEV_END, .usage = UNK },
	};
	check_encoded(&o, evs, N(evs), "gemini/senc_error.sse");
}

Test(gemini, stream_encoder_json_array)
{
	struct wire_opts o = { .model = "m", .json_array = true, .prompt_estimate = -1 };
	const struct cev evs[] = {
		{ .type = CEV_START, .id = "r-6", .usage = UNK },
		{ .type = CEV_TEXT, .text = "a", .usage = UNK },
		{ .type = CEV_TEXT, .text = "b", .usage = UNK },
		{ .type = CEV_FINISH, .finish = "stop", .usage = UNK },
		{ .type = CEV_USAGE, .usage = U(1, 2, 3, 0, 0) },
		{ .type = CEV_END, .usage = UNK },
	};
	check_encoded(&o, evs, N(evs), "gemini/senc_array.json");

	struct wire_error err = { .status = 500, .type = "api_error", .message = "boom" };
	const struct cev evs2[] = {
		{ .type = CEV_START, .id = "r-7", .usage = UNK },
		{ .type = CEV_ERROR, .error = &err, .usage = UNK },
	};
	check_encoded(&o, evs2, N(evs2), "gemini/senc_array_error.json");
}

Test(gemini, stream_encoder_empty_answer_and_odd_input)
{
	/* no content at all: one final event without content; generated id */
	struct wire_opts o = { .prompt_estimate = 12 };
	const struct cev evs[] = {
		{ .type = CEV_START, .usage = UNK },
		{ .type = CEV_TEXT, .text = "\xff bad utf8", .usage = UNK },
		{ .type = CEV_END, .usage = UNK },
	};
	char *s = encode_events(&o, evs, N(evs));
	cr_assert_not_null(strstr(s, "{\"text\":\"\xef\xbf\xbd bad utf8\"}"), "%s", s);
	cr_assert_not_null(
	    strstr(s, "\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":12}"),
	    "%s", s);
	cr_assert_not_null(strstr(s, "\"responseId\":\"chatcmpl-"), "%s", s);
	free(s);

	const struct cev evs2[] = { { .type = CEV_END, .usage = UNK } };
	s = encode_events(&o, evs2, N(evs2));
	cr_assert_eq(strncmp(s, "data: {\"candidates\":[{\"finishReason\":\"STOP\",\"index\":0}]", 55), 0,
	             "%s", s);
	free(s);
}

Test(gemini, stream_gemini_to_gemini_all_splits)
{
	size_t n;
	char *in = xlate_read("gemini/stream_tool.sse", &n);
	char *want = xlate_read("gemini/stream_tool.gemini.sse", NULL);
	struct wire_opts o = { .model = "client-model", .prompt_estimate = -1 };
	char *got = xlate_stream_all_splits(G, G, &o, in, n, NULL);
	cr_assert_str_eq(got, want, "got\n%s", got);
	free(got);
	free(want);
	free(in);
}

/* ---- upstream URL and headers ---- */

Test(gemini, chat_url_and_auth)
{
	char *u = G->chat_url("https://generativelanguage.googleapis.com/", "gemini-2.0-flash", false);
	cr_assert_str_eq(
	    u, "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent");
	free(u);
	u = G->chat_url("https://generativelanguage.googleapis.com", "models/gemini-2.5-pro", true);
	cr_assert_str_eq(u, "https://generativelanguage.googleapis.com/v1beta/models/"
	                    "gemini-2.5-pro:streamGenerateContent?alt=sse");
	free(u);
	u = G->chat_url("http://h", "a/b c?d#\xc3\xa9", false);
	cr_assert_str_eq(u, "http://h/v1beta/models/a%2Fb%20c%3Fd%23%C3%A9:generateContent");
	free(u);

	char *h[4] = { 0 };
	cr_assert_eq(G->auth_headers("sekrit", h, 4), 1);
	cr_assert_str_eq(h[0], "x-goog-api-key: sekrit");
	free(h[0]);
	cr_assert_eq(G->auth_headers(NULL, h, 4), 0);
	cr_assert_eq(G->auth_headers("k", h, 0), 0);
}

Test(gemini, table_is_complete)
{
	cr_assert_str_eq(G->name, "gemini");
	cr_assert(G->decode_request && G->encode_request && G->decode_response && G->encode_response);
	cr_assert(G->decode_error && G->encode_error && G->usage && G->chat_url && G->auth_headers);
	cr_assert(G->sdec_new && G->sdec_event && G->sdec_end && G->sdec_free);
	cr_assert(G->senc_new && G->senc_event && G->senc_free);
}
