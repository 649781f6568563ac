/*
 * test_anthropic.c — unit tests for the Anthropic Messages wire format
 * (src/providers/anthropic.c).
 *
 * Each direction is checked against golden files in
 * tests/unit/providers/fixtures/anthropic/ (built from the shapes in
 * Anthropic's API reference): a client request decoded to canonical, a
 * canonical request encoded for the provider, provider answers decoded,
 * a canonical answer encoded for a client.  Hostile inputs must give a
 * 400 (client side) or 502 (provider side), never a crash; ASan/UBSan
 * catch the rest.
 *
 * Streams: the decoder is run on SSE fixtures through
 * xlate_trace_all_splits (whole, split at every byte, byte by byte) and
 * its trace compared with a golden trace.  The encoder is fed scripted
 * canonical events and its bytes compared exactly with golden .sse files;
 * ids are deterministic because the events carry them (msg_..., toolu_...).
 * Each stream bug listed in WIRE.md that concerns Anthropic has a test
 * named after it.
 */
#include <criterion/criterion.h>
#include <ctype.h>

#include "providers/format.h"
#include "xlate_testutil.h"

#define FX "anthropic/"
#define A (&wire_anthropic)

/* ---- helpers ---- */

static const struct wire_opts OPTS = {
	.model = "claude-sonnet-4-5",
	.stream = true,
	.default_max_tokens = 1024,
	.prompt_estimate = -1,
};

static json_t *parse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
	cr_assert_not_null(j, "bad test JSON: %s: %s", e.text, s);
	return j;
}

/* decode_request must fail with 400 and a message containing want. */
static void expect_decode_400(const char *body, const char *want)
{
	json_t *b = parse(body);
	struct wire_err err = { 0 };
	json_t *c = A->decode_request(b, &err);
	char *dump = c ? json_dumps(c, JSON_COMPACT) : NULL;
	cr_assert_null(c, "accepted %s -> %s", body, dump ? dump : "");
	cr_assert_eq(err.status, 400, "status %d for %s", err.status, body);
	cr_assert(strstr(err.message, want), "message '%s' lacks '%s' (%s)", err.message, want, body);
	json_decref(b);
}

static json_t *encode_ok(const char *canon, const struct wire_opts *o)
{
	json_t *c = parse(canon);
	struct wire_err err = { 0 };
	json_t *r = A->encode_request(c, o, &err);
	cr_assert_not_null(r, "encode_request failed: %d %s", err.status, err.message);
	json_decref(c);
	return r;
}

static void expect_encode_400(const char *canon, const char *want)
{
	json_t *c = parse(canon);
	struct wire_err err = { 0 };
	json_t *r = A->encode_request(c, &OPTS, &err);
	char *dump = r ? json_dumps(r, JSON_COMPACT) : NULL;
	cr_assert_null(r, "accepted %s -> %s", canon, dump ? dump : "");
	cr_assert_eq(err.status, 400, "status %d for %s", err.status, canon);
	cr_assert(strstr(err.message, want), "message '%s' lacks '%s'", err.message, want);
	json_decref(c);
}

/* Replace generated ids (prefix + 24 alphanumerics) with prefix + "X". */
static void normalise_ids(char *s)
{
	static const char *const prefixes[] = { "msg_", "toolu_" };
	for (size_t p = 0; p < 2; p++) {
		size_t pl = strlen(prefixes[p]);
		for (char *q = strstr(s, prefixes[p]); q; q = strstr(q + pl, prefixes[p])) {
			char *r = q + pl;
			size_t n = 0;
			while (isalnum((unsigned char)r[n]))
				n++;
			if (n != 24)
				continue;
			r[0] = 'X';
			memmove(r + 1, r + n, strlen(r + n) + 1);
		}
	}
}

/* ---- decode_request ---- */

Test(anthropic, decode_request_golden)
{
	json_t *in = xlate_json(FX "request_full.json");
	json_t *want = xlate_json(FX "request_full.canon.json");
	struct wire_err err = { 0 };
	json_t *got = A->decode_request(in, &err);
	cr_assert_not_null(got, "%d %s", err.status, err.message);
	xlate_assert_json_eq(got, want, "canonical request");
	json_decref(in);
	json_decref(want);
	json_decref(got);
}

Test(anthropic, decode_request_string_content_and_choices)
{
	static const struct {
		const char *tool_choice, *want;
	} cases[] = {
		{ "{\"type\":\"auto\"}", "\"auto\"" },
		{ "{\"type\":\"none\"}", "\"none\"" },
		{ "{\"type\":\"any\"}", "\"required\"" },
		{ "{\"type\":\"tool\",\"name\":\"f\"}",
		  "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[512];
		snprintf(body, sizeof(body),
		         "{\"model\":\"m\",\"max_tokens\":5,\"system\":\"Be "
		         "nice.\",\"messages\":[{\"role\":\"user\","
		         "\"content\":\"hi\"}],\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":"
		         "\"object\"}}],"
		         "\"tool_choice\":%s}",
		         cases[i].tool_choice);
		json_t *b = parse(body);
		struct wire_err err = { 0 };
		json_t *c = A->decode_request(b, &err);
		cr_assert_not_null(c, "%s", err.message);
		json_t *want = parse(cases[i].want);
		xlate_assert_json_eq(json_object_get(c, "tool_choice"), want, "tool_choice");
		cr_assert_null(json_object_get(c, "parallel_tool_calls"));
		json_t *msgs = parse("[{\"role\":\"system\",\"content\":\"Be "
		                     "nice.\"},{\"role\":\"user\",\"content\":\"hi\"}]");
		xlate_assert_json_eq(json_object_get(c, "messages"), msgs, "messages");
		json_decref(msgs);
		json_decref(want);
		json_decref(c);
		json_decref(b);
	}
}

Test(anthropic, decode_request_hostile_is_400)
{
	expect_decode_400("[]", "JSON object");
	expect_decode_400("{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model");
	expect_decode_400("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
	                  "max_tokens");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
	    "max_tokens");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":-3,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
	    "max_tokens");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":1.5,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
	    "max_tokens");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":\"10\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
	    "max_tokens");
	expect_decode_400("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[]}", "messages");
	expect_decode_400("{\"model\":\"m\",\"max_tokens\":5,\"messages\":{}}", "messages");
	expect_decode_400("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[42]}", "messages[0]");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}",
	    "role");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
	    "role");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":7}]}",
	    "messages[0].content");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[]}]}",
	    "messages[0].content");
	expect_decode_400("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{"
	                  "\"type\":\"text\"}]}]}",
	                  "messages[0].content[0].text");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[\"x\"]}]}",
	    "messages[0].content[0]");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
	    "\"document\",\"source\":{}}]}]}",
	    "document");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
	    "\"image\",\"source\":{\"type\":\"file\",\"file_id\":\"f\"}}]}]}",
	    "source.type");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
	    "\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\"}}]}]}",
	    "media_type and data");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
	    "\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"a;b,c\",\"data\":\"x\"}}]}]}",
	    "media_type");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
	    "\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}]}]}",
	    "user turn");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"assistant\",\"content\":[{"
	    "\"type\":\"tool_result\",\"tool_use_id\":\"t\"}]}]}",
	    "assistant turn");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"assistant\",\"content\":[{"
	    "\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":\"{}\"}]}]}",
	    "input");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"assistant\",\"content\":[{"
	    "\"type\":\"tool_use\",\"name\":\"f\",\"input\":{}}]}]}",
	    "id and name");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
	    "\"tool_result\"}]}]}",
	    "tool_use_id");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
	    "\"tool_result\",\"tool_use_id\":\"t\",\"is_error\":\"yes\"}]}]}",
	    "is_error");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
	    "\"tool_result\",\"tool_use_id\":\"t\",\"content\":5}]}]}",
	    "content");
	expect_decode_400(
	    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
	    "\"tool_result\",\"tool_use_id\":\"t\",\"content\":[{\"type\":\"document\"}]}]}]}",
	    "tool_result");
	static const char *const tail[][2] = {
		{ "\"system\":5", "system" },
		{ "\"system\":[{\"type\":\"image\"}]", "system[0]" },
		{ "\"stop_sequences\":\"END\"", "stop_sequences" },
		{ "\"stop_sequences\":[1]", "stop_sequences[0]" },
		{ "\"temperature\":1.5", "temperature" },
		{ "\"temperature\":\"hot\"", "temperature" },
		{ "\"top_p\":-0.1", "top_p" },
		{ "\"top_k\":-1", "top_k" },
		{ "\"top_k\":2.5", "top_k" },
		{ "\"tools\":{}", "tools" },
		{ "\"tools\":[{\"name\":\"f\"}]", "input_schema" },
		{ "\"tools\":[{\"input_schema\":{}}]", "tools[0].name" },
		{ "\"tools\":[{\"name\":\"f\",\"input_schema\":{},\"description\":3}]", "description" },
		{ "\"tools\":[{\"type\":\"web_search_20250305\",\"name\":\"web_search\"}]",
		  "web_search_20250305" },
		{ "\"tool_choice\":\"auto\"", "tool_choice" },
		{ "\"tool_choice\":{\"type\":\"tool\"}", "tool_choice.name" },
		{ "\"tool_choice\":{\"type\":\"sometimes\"}", "tool_choice.type" },
		{ "\"tool_choice\":{\"type\":\"auto\",\"disable_parallel_tool_use\":1}", "disable_parallel" },
		{ "\"thinking\":true", "thinking" },
		{ "\"stream\":\"yes\"", "stream" },
	};
	for (size_t i = 0; i < sizeof(tail) / sizeof(tail[0]); i++) {
		char body[512];
		snprintf(body, sizeof(body),
		         "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
		         "\"x\"}],%s}",
		         tail[i][0]);
		expect_decode_400(body, tail[i][1]);
	}
}

/* ---- encode_request ---- */

Test(anthropic, encode_request_golden)
{
	json_t *in = xlate_json(FX "canon_request.json");
	json_t *want = xlate_json(FX "canon_request.anthropic.json");
	struct wire_err err = { 0 };
	json_t *got = A->encode_request(in, &OPTS, &err);
	cr_assert_not_null(got, "%d %s", err.status, err.message);
	xlate_assert_json_eq(got, want, "Anthropic request");
	json_decref(in);
	json_decref(want);
	json_decref(got);
}

/* WIRE.md: consecutive tool messages become ONE user turn of tool_result
 * blocks, and a user message after them joins that same turn. */
Test(anthropic, encode_request_tool_results_one_user_turn)
{
	json_t *r = encode_ok(
	    "{\"messages\":[{\"role\":\"user\",\"content\":\"go\"},{\"role\":\"assistant\",\"content\":null,"
	    "\"tool_calls\":[{\"id\":\"a\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
	    "\"{}\"}},"
	    "{\"id\":\"b\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}"
	    "\"}},"
	    "{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\" \"}}]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"a\",\"content\":\"1\"},{\"role\":\"tool\",\"tool_call_"
	    "id\":\"b\","
	    "\"content\":\"\"},{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":[{\"type\":\"text\","
	    "\"text\":"
	    "\"3\"}]},{\"role\":\"user\",\"content\":\"next\"}]}",
	    &OPTS);
	json_t *want = parse(
	    "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"go\"}]},{\"role\":\"assistant\","
	    "\"content\":[{\"type\":\"tool_use\",\"id\":\"a\",\"name\":\"f\",\"input\":{}},{\"type\":\"tool_"
	    "use\","
	    "\"id\":\"b\",\"name\":\"f\",\"input\":{\"x\":1}},{\"type\":\"tool_use\",\"id\":\"c\",\"name\":"
	    "\"g\","
	    "\"input\":{}}]},{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"a\","
	    "\"content\":\"1\"},{\"type\":\"tool_result\",\"tool_use_id\":\"b\"},{\"type\":\"tool_result\","
	    "\"tool_use_id\":\"c\",\"content\":\"3\"},{\"type\":\"text\",\"text\":\"next\"}]}]");
	xlate_assert_json_eq(json_object_get(r, "messages"), want, "messages");
	json_decref(want);
	json_decref(r);
}

Test(anthropic, encode_request_defaults_and_choices)
{
	/* max_tokens: canonical max_tokens, else the route default, else 4096 */
	json_t *r = encode_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":7,"
	                      "\"max_completion_tokens\":9}",
	                      &OPTS);
	cr_assert_eq(json_integer_value(json_object_get(r, "max_tokens")), 7);
	json_decref(r);
	struct wire_opts o = OPTS;
	o.stream = false;
	r = encode_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0.7,"
	              "\"tool_choice\":\"required\",\"parallel_tool_calls\":false,\"stop\":[\"\",\"x\"]}",
	              &o);
	json_t *want =
	    parse("{\"model\":\"claude-sonnet-4-5\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
	          "\"text\",\"text\":\"hi\"}]}],\"max_tokens\":1024,\"stop_sequences\":[\"x\"],"
	          "\"temperature\":0.7}");
	/* no tools: tool_choice and parallel_tool_calls are dropped */
	xlate_assert_json_eq(r, want, "request without tools");
	json_decref(want);
	json_decref(r);
	o.default_max_tokens = 0;
	r = encode_ok("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &o);
	cr_assert_eq(json_integer_value(json_object_get(r, "max_tokens")), 4096);
	json_decref(r);

	static const struct {
		const char *choice, *want;
	} cases[] = {
		{ "\"auto\"", "{\"type\":\"auto\"}" },
		{ "\"none\"", "{\"type\":\"none\"}" },
		{ "\"required\"", "{\"type\":\"any\"}" },
		{ "null", "{\"type\":\"auto\",\"disable_parallel_tool_use\":true}" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[512];
		snprintf(body, sizeof(body),
		         "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{\"type\":"
		         "\"function\","
		         "\"function\":{\"name\":\"f\",\"parameters\":{}}}],\"tool_choice\":%s%s}",
		         cases[i].choice, i == 3 ? ",\"parallel_tool_calls\":false" : "");
		r = encode_ok(body, &OPTS);
		want = parse(cases[i].want);
		xlate_assert_json_eq(json_object_get(r, "tool_choice"), want, "tool_choice");
		json_t *schema = parse("{\"type\":\"object\"}");
		xlate_assert_json_eq(
		    json_object_get(json_array_get(json_object_get(r, "tools"), 0), "input_schema"), schema,
		    "input_schema of a tool with empty parameters");
		json_decref(schema);
		json_decref(want);
		json_decref(r);
	}
}

Test(anthropic, encode_request_hostile_is_400)
{
	expect_encode_400("[1]", "JSON object");
	expect_encode_400("{\"messages\":{}}", "messages");
	expect_encode_400("{\"messages\":[]}", "no user or assistant");
	expect_encode_400("{\"messages\":[{\"role\":\"system\",\"content\":\"only a system prompt\"}]}",
	                  "no user or assistant");
	expect_encode_400("{\"messages\":[5]}", "messages[0]");
	expect_encode_400("{\"messages\":[{\"role\":\"function\",\"content\":\"x\"}]}", "role");
	expect_encode_400("{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "content");
	expect_encode_400("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]}",
	                  "input_audio");
	expect_encode_400("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":5}]}]}",
	                  "text");
	expect_encode_400(
	    "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{"
	    "\"url\":\"ftp://x/y.png\"}}]}]}",
	    "data: URI or an http(s) URL");
	expect_encode_400(
	    "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{"
	    "\"url\":\"data:image/png,abc\"}}]}]}",
	    "base64");
	expect_encode_400(
	    "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{"
	    "\"url\":\"data:;base64,abc\"}}]}]}",
	    "base64");
	expect_encode_400(
	    "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{"
	    "\"url\":\"data:image/png;base64,\"}}]}]}",
	    "base64");
	expect_encode_400("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
	                  "url");
	expect_encode_400(
	    "{\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\",\"image_url\":{"
	    "\"url\":\"https://x/y.png\"}}]},{\"role\":\"user\",\"content\":\"x\"}]}",
	    "image_url");
	expect_encode_400("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":{}}]}", "tool_calls");
	expect_encode_400(
	    "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\",\"function\":{}}]}]}",
	    "function name");
	expect_encode_400(
	    "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\",\"function\":{"
	    "\"name\":\"f\",\"arguments\":\"{\\\"x\\\":\"}}]}]}",
	    "not a JSON object");
	expect_encode_400(
	    "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\",\"function\":{"
	    "\"name\":\"f\",\"arguments\":\"[1,2]\"}}]}]}",
	    "not a JSON object");
	expect_encode_400(
	    "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"a\",\"function\":{"
	    "\"name\":\"f\",\"arguments\":7}}]}]}",
	    "arguments");
	expect_encode_400("{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "tool_call_id");
	static const char *const tail[][2] = {
		{ "\"max_tokens\":0", "max_tokens" },
		{ "\"max_tokens\":\"9\"", "max_tokens" },
		{ "\"max_completion_tokens\":-1", "max_tokens" },
		{ "\"stop\":5", "stop" },
		{ "\"stop\":[\"a\",5]", "stop[1]" },
		{ "\"temperature\":-1", "temperature" },
		{ "\"temperature\":\"x\"", "temperature" },
		{ "\"top_p\":2", "top_p" },
		{ "\"x_top_k\":-2", "top_k" },
		{ "\"n\":2", "one choice" },
		{ "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{"
		  "}}}",
		  "json_schema" },
		{ "\"tools\":{}", "tools" },
		{ "\"tools\":[{\"type\":\"code_interpreter\"}]", "code_interpreter" },
		{ "\"tools\":[{\"type\":\"function\",\"function\":{}}]", "name" },
		{ "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":[]}}]",
		  "parameters" },
		{ "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":"
		  "\"sometimes\"",
		  "tool_choice" },
		{ "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":{"
		  "\"type\":"
		  "\"function\"}",
		  "tool_choice" },
	};
	for (size_t i = 0; i < sizeof(tail) / sizeof(tail[0]); i++) {
		char body[512];
		snprintf(body, sizeof(body), "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],%s}",
		         tail[i][0]);
		expect_encode_400(body, tail[i][1]);
	}
}

/* Thinking blocks (with their signatures, in order) survive Anthropic
 * client -> canonical -> Anthropic provider, as Anthropic requires when
 * a tool loop continues with thinking enabled. */
Test(anthropic, thinking_signature_round_trip)
{
	json_t *in = xlate_json(FX "request_full.json");
	struct wire_err err = { 0 };
	json_t *c = A->decode_request(in, &err);
	cr_assert_not_null(c);
	json_t *out = A->encode_request(c, &OPTS, &err);
	cr_assert_not_null(out, "%s", err.message);
	const json_t *orig = json_object_get(json_array_get(json_object_get(in, "messages"), 1), "content");
	const json_t *got = json_object_get(json_array_get(json_object_get(out, "messages"), 1), "content");
	xlate_assert_json_eq(json_array_get(got, 0), json_array_get(orig, 0), "thinking block");
	xlate_assert_json_eq(json_array_get(got, 1), json_array_get(orig, 1), "redacted thinking block");
	xlate_assert_json_eq(json_array_get(got, 3), json_array_get(orig, 4), "first tool_use");
	xlate_assert_json_eq(json_object_get(out, "thinking"), json_object_get(in, "thinking"),
	                     "thinking config");
	xlate_assert_json_eq(json_object_get(out, "tool_choice"), json_object_get(in, "tool_choice"),
	                     "tool_choice");
	cr_assert_str_eq(json_string_value(json_object_get(out, "system")),
	                 "You are a weather assistant.\n\nAnswer briefly.");
	json_decref(out);
	json_decref(c);
	json_decref(in);
}

/* ---- responses ---- */

static void check_decode_response(const char *in_name, const char *want_name)
{
	json_t *in = xlate_json(in_name);
	json_t *want = xlate_json(want_name);
	struct wire_err err = { 0 };
	json_t *got = A->decode_response(in, &err);
	cr_assert_not_null(got, "%d %s", err.status, err.message);
	cr_assert(json_integer_value(json_object_get(got, "created")) > 1600000000);
	json_object_set_new(got, "created", json_integer(0));
	xlate_assert_json_eq(got, want, want_name);
	json_decref(in);
	json_decref(want);
	json_decref(got);
}

Test(anthropic, decode_response_text_with_cache_usage)
{
	check_decode_response(FX "response_text.json", FX "response_text.canon.json");
}

Test(anthropic, decode_response_tools_and_thinking)
{
	check_decode_response(FX "response_tools.json", FX "response_tools.canon.json");
}

Test(anthropic, decode_response_stop_reasons)
{
	static const char *const map[][2] = {
		{ "end_turn", "stop" },      { "stop_sequence", "stop" },  { "pause_turn", "stop" },
		{ "max_tokens", "length" },  { "tool_use", "tool_calls" }, { "refusal", "content_filter" },
		{ "something_new", "stop" },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		char body[256];
		snprintf(body, sizeof(body),
		         "{\"id\":\"msg_1\",\"model\":\"m\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}],"
		         "\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":1,"
		         "\"output_tokens\":2}}",
		         map[i][0]);
		json_t *b = parse(body);
		struct wire_err err = { 0 };
		json_t *c = A->decode_response(b, &err);
		cr_assert_not_null(c);
		const json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
		cr_assert_str_eq(json_string_value(json_object_get(ch, "finish_reason")), map[i][1], "for %s",
		                 map[i][0]);
		cr_assert_null(json_object_get(c, "x_stop_sequence"));
		json_decref(c);
		json_decref(b);
	}
}

Test(anthropic, decode_response_malformed_is_502)
{
	static const char *const bad[] = {
		"[]",
		"{}",
		"{\"content\":\"text\"}",
		"{\"content\":[{\"type\":\"tool_use\",\"input\":{}}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *b = parse(bad[i]);
		struct wire_err err = { 0 };
		cr_assert_null(A->decode_response(b, &err), "accepted %s", bad[i]);
		cr_assert_eq(err.status, 502);
		json_decref(b);
	}
	/* odd but harmless shapes are accepted */
	json_t *b = parse("{\"content\":[5,{\"type\":\"text\"},{\"type\":\"image\"}],\"usage\":7}");
	struct wire_err err = { 0 };
	json_t *c = A->decode_response(b, &err);
	cr_assert_not_null(c);
	cr_assert_null(json_object_get(c, "usage"));
	json_decref(c);
	json_decref(b);
}

Test(anthropic, encode_response_golden)
{
	json_t *in = xlate_json(FX "canon_response.json");
	json_t *want = xlate_json(FX "canon_response.anthropic.json");
	json_t *got = A->encode_response(in, &OPTS);
	const char *id = json_string_value(json_object_get(got, "id"));
	cr_assert(id && strncmp(id, "msg_", 4) == 0 && strlen(id) == 28, "id %s", id ? id : "(null)");
	json_object_set_new(got, "id", json_string("msg_X"));
	xlate_assert_json_eq(got, want, "Anthropic response");
	json_decref(in);
	json_decref(want);
	json_decref(got);
}

Test(anthropic, encode_response_stop_reasons)
{
	static const struct {
		const char *finish, *extra, *reason, *seq;
	} cases[] = {
		{ "stop", "", "end_turn", NULL },
		{ "stop", ",\"x_stop_sequence\":\"END\"", "stop_sequence", "END" },
		{ "length", "", "max_tokens", NULL },
		{ "tool_calls", "", "tool_use", NULL },
		{ "content_filter", "", "refusal", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[512];
		snprintf(body, sizeof(body),
		         "{\"id\":\"msg_keep\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
		         "\"content\":\"\"},\"finish_reason\":\"%s\"}],\"usage\":{\"prompt_tokens\":3,"
		         "\"completion_tokens\":4}%s}",
		         cases[i].finish, cases[i].extra);
		json_t *c = parse(body);
		json_t *r = A->encode_response(c, &OPTS);
		char want[512];
		snprintf(want, sizeof(want),
		         "{\"id\":\"msg_keep\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],"
		         "\"model\":"
		         "\"claude-sonnet-4-5\",\"stop_reason\":\"%s\",\"stop_sequence\":%s%s%s,\"usage\":{"
		         "\"input_tokens\":3,\"output_tokens\":4}}",
		         cases[i].reason, cases[i].seq ? "\"" : "", cases[i].seq ? cases[i].seq : "null",
		         cases[i].seq ? "\"" : "");
		json_t *w = parse(want);
		xlate_assert_json_eq(r, w, cases[i].finish);
		json_decref(w);
		json_decref(r);
		json_decref(c);
	}
	/* hostile canonical answers still give a well-formed message */
	static const char *const odd[] = { "{}", "[]",
		                           "{\"choices\":[{\"message\":{\"content\":5,\"tool_calls\":[7,"
		                           "{\"function\":5}]}}],\"usage\":{\"prompt_tokens\":-4}}" };
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		json_t *c = parse(odd[i]);
		json_t *r = A->encode_response(c, &OPTS);
		cr_assert_not_null(r);
		cr_assert_str_eq(json_string_value(json_object_get(r, "type")), "message");
		cr_assert(json_is_array(json_object_get(r, "content")));
		json_decref(r);
		json_decref(c);
	}
}

Test(anthropic, usage_with_cache_tokens)
{
	json_t *b = xlate_json(FX "response_text.json");
	struct wire_usage u;
	A->usage(b, &u);
	cr_assert_eq(u.prompt, 2210);
	cr_assert_eq(u.completion, 25);
	cr_assert_eq(u.total, 2235);
	cr_assert_eq(u.cached, 2000);
	cr_assert_eq(u.reasoning, -1);
	json_decref(b);
	b = parse("{\"usage\":\"none\"}");
	A->usage(b, &u);
	cr_assert_eq(u.prompt, -1);
	cr_assert_eq(u.completion, -1);
	json_decref(b);
}

/* ---- errors ---- */

Test(anthropic, decode_error_json)
{
	static const char body[] = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
	                           "\"Overloaded\"},\"request_id\":\"req_1\"}";
	struct wire_error e;
	A->decode_error(529, body, sizeof(body) - 1, &e);
	cr_assert_eq(e.status, 529);
	cr_assert_str_eq(e.type, "overloaded_error");
	cr_assert_str_eq(e.message, "Overloaded");

	static const char *const types[] = {
		"invalid_request_error", "authentication_error", "permission_error", "not_found_error",
		"request_too_large",     "rate_limit_error",     "api_error",        "overloaded_error"
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		char b[256];
		snprintf(b, sizeof(b), "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"m\"}}",
		         types[i]);
		A->decode_error(400, b, strlen(b), &e);
		cr_assert_str_eq(e.type, types[i]);
	}
	/* an unknown type falls back to the status' type */
	static const char odd[] =
	    "{\"type\":\"error\",\"error\":{\"type\":\"billing_error\",\"message\":\"pay\"}}";
	A->decode_error(429, odd, sizeof(odd) - 1, &e);
	cr_assert_str_eq(e.type, "rate_limit_error");
	cr_assert_str_eq(e.message, "pay");
	static const char nomsg[] = "{\"error\":{}}";
	A->decode_error(500, nomsg, sizeof(nomsg) - 1, &e);
	cr_assert_str_eq(e.type, "api_error");
	cr_assert_str_eq(e.message, "Anthropic provider answered HTTP 500");
}

Test(anthropic, decode_error_html_and_text)
{
	struct wire_error e;
	/* a big HTML page from a proxy in front of the provider */
	size_t n = 100000;
	char *html = xmalloc(n);
	memset(html, 'x', n);
	memcpy(html, "\n<!DOCTYPE html><html>", 22);
	A->decode_error(502, html, n, &e);
	cr_assert_eq(e.status, 502);
	cr_assert_str_eq(e.type, "api_error");
	cr_assert_str_eq(e.message, "Anthropic provider answered HTTP 502 with an HTML page");
	/* long plain text is cut short */
	memset(html, 'y', n);
	A->decode_error(413, html, n, &e);
	cr_assert_str_eq(e.type, "request_too_large");
	cr_assert(strlen(e.message) < 200, "message too long: %zu", strlen(e.message));
	cr_assert(strstr(e.message, "HTTP 413: yyy"));
	cr_assert(strstr(e.message, "..."));
	free(html);
	/* control bytes and broken UTF-8 do not reach the message */
	static const char bin[] = "bad\x01\xff gateway\r\n";
	A->decode_error(503, bin, sizeof(bin) - 1, &e);
	cr_assert_str_eq(e.type, "overloaded_error");
	cr_assert_str_eq(e.message, "Anthropic provider answered HTTP 503: bad ? gateway  ");
	A->decode_error(401, "", 0, &e);
	cr_assert_str_eq(e.type, "authentication_error");
	cr_assert_str_eq(e.message, "Anthropic provider answered HTTP 401 with an empty body");
	A->decode_error(404, NULL, 0, &e);
	cr_assert_str_eq(e.type, "not_found_error");
	/* JSON that is not an error object */
	A->decode_error(500, "[1,2]", 5, &e);
	cr_assert_str_eq(e.type, "api_error");
	cr_assert_str_eq(e.message, "Anthropic provider answered HTTP 500: [1,2]");
}

Test(anthropic, encode_error)
{
	struct wire_error e = { .status = 429, .type = "rate_limit_error", .message = "slow down" };
	json_t *j = A->encode_error(&e);
	json_t *want =
	    parse("{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}");
	xlate_assert_json_eq(j, want, "error");
	json_decref(j);
	json_decref(want);
	struct wire_error e2 = { .status = 404 };
	j = A->encode_error(&e2);
	want = parse("{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"\"}}");
	xlate_assert_json_eq(j, want, "error without type");
	json_decref(j);
	json_decref(want);
}

/* ---- upstream ---- */

Test(anthropic, chat_url_and_headers)
{
	static const char *const cases[][2] = {
		{ "https://api.anthropic.com", "https://api.anthropic.com/v1/messages" },
		{ "https://api.anthropic.com/", "https://api.anthropic.com/v1/messages" },
		{ "https://api.anthropic.com/v1", "https://api.anthropic.com/v1/messages" },
		{ "https://api.anthropic.com/v1/", "https://api.anthropic.com/v1/messages" },
		{ "http://proxy:8080/anthropic", "http://proxy:8080/anthropic/v1/messages" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *u = A->chat_url(cases[i][0], "claude", true);
		cr_assert_str_eq(u, cases[i][1]);
		free(u);
	}
	char *h[4] = { 0 };
	size_t n = A->auth_headers("sk-ant-1", h, 4);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(h[0], "x-api-key: sk-ant-1");
	cr_assert_str_eq(h[1], "anthropic-version: 2023-06-01");
	free(h[0]);
	free(h[1]);
	n = A->auth_headers(NULL, h, 4);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(h[0], "anthropic-version: 2023-06-01");
	free(h[0]);
	n = A->auth_headers("k", h, 1);
	cr_assert_eq(n, 1);
	free(h[0]);
	cr_assert_eq(A->auth_headers("k", h, 0), 0);
}

/* ---- stream decoder ---- */

static void check_trace(const char *sse_name, const char *trace_name)
{
	size_t n;
	char *in = xlate_read(sse_name, &n);
	char *want = xlate_read(trace_name, NULL);
	char *got = xlate_trace_all_splits(A, in, n);
	cr_assert_str_eq(got, want, "trace of %s:\n%s", sse_name, got);
	free(got);
	free(want);
	free(in);
}

/* Text, then two tool_use blocks (Anthropic indexes 1 and 2 -> tool
 * ordinals 0 and 1), ping, message_delta with usage, cache tokens. */
Test(anthropic, sdec_text_then_tools)
{
	check_trace(FX "stream_tool.sse", FX "stream_tool.trace");
}

Test(anthropic, sdec_error_mid_stream)
{
	check_trace(FX "stream_error.sse", FX "stream_error.trace");
}

Test(anthropic, sdec_thinking_signature_stop_sequence)
{
	check_trace(FX "stream_thinking.sse", FX "stream_thinking.trace");
}

static char *trace_of(const char *sse)
{
	return xlate_trace_all_splits(A, sse, strlen(sse));
}

Test(anthropic, sdec_ended_early)
{
	char *t =
	    trace_of("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\","
	             "\"model\":\"m\",\"usage\":{\"input_tokens\":3}}}\n\nevent: content_block_delta\ndata: "
	             "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
	             "\"text\":\"Hi\"}}\n\n");
	cr_assert_str_eq(t, "START id=\"msg_1\" model=\"m\" usage=3/-1/-1/0/-1\nTEXT \"Hi\"\n"
	                    "ERROR 502 api_error stream ended early\n");
	free(t);
	/* an empty body is an early end as well */
	t = trace_of("");
	cr_assert_str_eq(t, "ERROR 502 api_error stream ended early\n");
	free(t);
}

Test(anthropic, sdec_malformed_events)
{
	static const struct {
		const char *data, *want;
	} cases[] = {
		{ "{not json", "ERROR 502 api_error malformed event in the Anthropic stream\n" },
		{ "[1]", "ERROR 502 api_error malformed event in the Anthropic stream\n" },
		{ "{\"type\":\"message_start\",\"message\":5}",
		  "ERROR 502 api_error malformed message_start event in the Anthropic stream\n" },
		{ "{\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"input_json_delta\","
		  "\"partial_json\":\"{\"}}",
		  "START id=\"\" model=\"\" usage=-1/-1/-1/-1/-1\nERROR 502 api_error malformed "
		  "content_block_delta "
		  "event in the Anthropic stream\n" },
		{ "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\"}}",
		  "START id=\"\" model=\"\" usage=-1/-1/-1/-1/-1\nERROR 502 api_error malformed "
		  "content_block_start "
		  "event in the Anthropic stream\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wire_sdec *d = A->sdec_new();
		struct evbuffer *b = evbuffer_new();
		int rc = A->sdec_event(d, "", 0, cases[i].data, strlen(cases[i].data), xlate_trace_cev, b);
		cr_assert_eq(rc, -1, "rc %d for %s", rc, cases[i].data);
		/* nothing more after the failure, not even at the end */
		static const char stop[] = "{\"type\":\"message_stop\"}";
		cr_assert_eq(A->sdec_event(d, "", 0, stop, sizeof(stop) - 1, xlate_trace_cev, b), 0);
		cr_assert_eq(A->sdec_end(d, xlate_trace_cev, b), 0);
		size_t len = evbuffer_get_length(b);
		char *s = xmalloc(len + 1);
		evbuffer_remove(b, s, len);
		s[len] = '\0';
		cr_assert_str_eq(s, cases[i].want, "for %s", cases[i].data);
		free(s);
		evbuffer_free(b);
		A->sdec_free(d);
	}
}

static int stop_at_second(const struct cev *ev, void *arg)
{
	int *n = arg;
	return ++*n == 2 ? 7 : 0;
}

Test(anthropic, sdec_callback_stop_value)
{
	struct wire_sdec *d = A->sdec_new();
	int n = 0;
	static const char start[] = "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}";
	static const char text[] =
	    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
	    "\"text\":\"x\"}}";
	cr_assert_eq(A->sdec_event(d, "message_start", 13, start, sizeof(start) - 1, stop_at_second, &n), 0);
	cr_assert_eq(A->sdec_event(d, "content_block_delta", 19, text, sizeof(text) - 1, stop_at_second, &n),
	             7);
	A->sdec_free(d);
	A->sdec_free(NULL);
}

/* The data's type field decides; the event: line only helps when the
 * data has none. */
Test(anthropic, sdec_event_name_fallback)
{
	char *t =
	    trace_of("event: message_start\ndata: {\"message\":{\"id\":\"msg_9\",\"model\":\"m\"}}\n\n"
	             "event: message_delta\ndata: {\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{"
	             "\"input_tokens\":4,\"output_tokens\":9}}\n\nevent: message_stop\ndata: {}\n\n");
	cr_assert_str_eq(t, "START id=\"msg_9\" model=\"m\" usage=-1/-1/-1/-1/-1\nFINISH length\n"
	                    "USAGE usage=4/9/13/0/-1\nEND\n");
	free(t);
}

/* ---- stream encoder ---- */

#define U_NONE                                                                                               \
	{                                                                                                    \
		-1, -1, -1, -1, -1                                                                           \
	}
#define EV_START(id_)                                                                                        \
	{                                                                                                    \
		.type = CEV_START, .id = id_, .model = "gpt-4o", .usage = U_NONE                             \
	}
#define EV_START_U(id_, p, c)                                                                                \
	{                                                                                                    \
		.type = CEV_START, .id = id_, .usage = {                                                     \
			.prompt = p,                                                                         \
			.completion = -1,                                                                    \
			.total = -1,                                                                         \
			.cached = c,                                                                         \
			.reasoning = -1                                                                      \
		}                                                                                            \
	}
#define EV_TEXT(s)                                                                                           \
	{                                                                                                    \
		.type = CEV_TEXT, .index = -1, .text = s, .len = sizeof(s) - 1, .usage = U_NONE              \
	}
#define EV_THINK(s)                                                                                          \
	{                                                                                                    \
		.type = CEV_THINKING, .index = -1, .text = s, .len = sizeof(s) - 1, .usage = U_NONE          \
	}
#define EV_SIG(i, s)                                                                                         \
	{                                                                                                    \
		.type = CEV_SIGNATURE, .index = i, .text = s, .len = sizeof(s) - 1, .usage = U_NONE          \
	}
#define EV_TOOL(i, id_, name_)                                                                               \
	{                                                                                                    \
		.type = CEV_TOOL_START, .index = i, .id = id_, .name = name_, .usage = U_NONE                \
	}
#define EV_ARGS(i, s)                                                                                        \
	{                                                                                                    \
		.type = CEV_TOOL_ARGS, .index = i, .text = s, .len = sizeof(s) - 1, .usage = U_NONE          \
	}
#define EV_FINISH(f)                                                                                         \
	{                                                                                                    \
		.type = CEV_FINISH, .finish = f, .usage = U_NONE                                             \
	}
#define EV_FINISH_SEQ(f, s)                                                                                  \
	{                                                                                                    \
		.type = CEV_FINISH, .finish = f, .text = s, .len = sizeof(s) - 1, .usage = U_NONE            \
	}
#define EV_USAGE(p, c, cached_)                                                                              \
	{                                                                                                    \
		.type = CEV_USAGE, .usage = {                                                                \
			.prompt = p,                                                                         \
			.completion = c,                                                                     \
			.total = p + c,                                                                      \
			.cached = cached_,                                                                   \
			.reasoning = -1                                                                      \
		}                                                                                            \
	}
#define EV_END                                                                                               \
	{                                                                                                    \
		.type = CEV_END, .usage = U_NONE                                                             \
	}

static char *run_senc(const struct cev *evs, size_t n, const struct wire_opts *o)
{
	struct wire_senc *e = A->senc_new(o);
	struct evbuffer *out = evbuffer_new();
	for (size_t i = 0; i < n; i++)
		A->senc_event(e, &evs[i], out);
	A->senc_free(e);
	size_t len = evbuffer_get_length(out);
	char *s = xmalloc(len + 1);
	evbuffer_remove(out, s, len);
	s[len] = '\0';
	evbuffer_free(out);
	return s;
}

static void check_senc(const struct cev *evs, size_t n, const struct wire_opts *o, const char *want_name)
{
	char *got = run_senc(evs, n, o);
	normalise_ids(got);
	char *want = xlate_read(want_name, NULL);
	cr_assert_str_eq(got, want, "%s: got\n%s", want_name, got);
	free(want);
	free(got);
}

#define CHECK_SENC(evs, o, name) check_senc(evs, sizeof(evs) / sizeof(evs[0]), o, FX name)

/* OpenAI order: the finish chunk comes before the usage chunk, so
 * message_delta must wait for END to carry both.  No usage at START:
 * message_start takes the prompt estimate. */
Test(anthropic, senc_text_only_finish_before_usage)
{
	const struct cev evs[] = {
		EV_START("msg_t1"), EV_TEXT("Hello"),   EV_TEXT(""), EV_TEXT(" world"),
		EV_FINISH("stop"),  EV_USAGE(40, 5, 0), EV_END,      EV_TEXT("after the end")
	};
	struct wire_opts o = OPTS;
	o.prompt_estimate = 42;
	CHECK_SENC(evs, &o, "senc_text.sse");
}

/* WIRE.md: message_start must carry real input_tokens when known (Claude
 * Code rejects zeros); cached tokens are reported apart. */
Test(anthropic, senc_start_with_real_usage)
{
	const struct cev evs[] = { EV_START_U("msg_t2", 1500, 1024), EV_TEXT("Hi"), EV_USAGE(1500, 7, 1024),
		                   EV_FINISH("length"), EV_END };
	struct wire_opts o = OPTS;
	o.prompt_estimate = 9; /* not used: the real number is known */
	CHECK_SENC(evs, &o, "senc_real_usage.sse");
}

/* No START at all and no estimate: message_start is written lazily with
 * a generated id and input_tokens 0. */
Test(anthropic, senc_lazy_start_without_estimate)
{
	const struct cev evs[] = { EV_TEXT("x"), EV_END };
	CHECK_SENC(evs, &OPTS, "senc_lazy.sse");
}

/* WIRE.md: when a tool call starts after text, close the text block, open
 * tool_use with input {}, and send the fragment that came with the switch
 * as the first input_json_delta. */
Test(anthropic, senc_text_to_tool_keeps_first_fragment)
{
	const struct cev evs[] = {
		EV_START("msg_t3"),       EV_TEXT("Let me check."), EV_TOOL(0, "call_1", "get_weather"),
		EV_ARGS(0, "{\"city\":"), EV_ARGS(0, ""),           EV_ARGS(0, "\"Paris\"}"),
		EV_FINISH("tool_calls"),  EV_USAGE(20, 11, -1),     EV_END
	};
	CHECK_SENC(evs, &OPTS, "senc_text_tool.sse");
}

/* Two tools after text get block indexes 1 and 2; arguments for tool 0
 * that arrive after tool 1 started go to block 1, not lost; a tool
 * without an id gets a generated toolu_ id; arguments whose tool never
 * started open a block for it. */
Test(anthropic, senc_two_tools)
{
	const struct cev evs[] = { EV_START("msg_t4"),
		                   EV_TEXT("Two calls."),
		                   EV_TOOL(0, "call_a", "f"),
		                   EV_ARGS(0, "{\"a\":"),
		                   EV_TOOL(1, NULL, "g"),
		                   EV_ARGS(1, "{}"),
		                   EV_ARGS(0, "1}"),
		                   EV_TOOL(1, "dup", "g"),
		                   EV_ARGS(2, "{\"late\":true}"),
		                   EV_FINISH("tool_calls"),
		                   EV_END };
	CHECK_SENC(evs, &OPTS, "senc_two_tools.sse");
}

Test(anthropic, senc_error_mid_stream)
{
	struct wire_error err = { .status = 529, .type = "overloaded_error", .message = "Overloaded" };
	struct cev ev_err = { .type = CEV_ERROR, .usage = U_NONE, .error = &err };
	const struct cev evs[] = { EV_START("msg_t5"), EV_TEXT("Part"), ev_err, EV_TEXT("more"), EV_END };
	CHECK_SENC(evs, &OPTS, "senc_error.sse");
	/* an error before anything else is the whole stream */
	struct cev ev_err2 = { .type = CEV_ERROR, .usage = U_NONE, .error = NULL };
	const struct cev evs2[] = { ev_err2, EV_END };
	char *s = run_senc(evs2, 2, &OPTS);
	cr_assert_str_eq(
	    s, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":"
	       "\"upstream error\"}}\n\n");
	free(s);
}

/* Thinking opens a thinking block, the signature goes inside it, text
 * then gets its own block; a signature outside a thinking block (Gemini's
 * thoughtSignature) is dropped; the stop sequence is reported. */
Test(anthropic, senc_thinking_signature)
{
	const struct cev evs[] = { EV_START_U("msg_t6", 30, -1),
		                   EV_THINK("Hmm"),
		                   EV_THINK(", yes."),
		                   EV_SIG(-1, "sig=="),
		                   EV_TEXT("42"),
		                   EV_SIG(-1, "gemini-sig"),
		                   EV_SIG(0, "tool-sig"),
		                   EV_FINISH_SEQ("stop", "END"),
		                   EV_USAGE(30, 15, -1),
		                   EV_END };
	CHECK_SENC(evs, &OPTS, "senc_thinking.sse");
}

/* Anthropic upstream -> Anthropic client through the canonical events,
 * at every split: the output is a valid Anthropic stream again. */
Test(anthropic, stream_anthropic_to_anthropic)
{
	size_t n;
	char *in = xlate_read(FX "stream_tool.sse", &n);
	char *got = xlate_stream_all_splits(A, A, &OPTS, in, n, NULL);
	char *want = xlate_read(FX "stream_tool.anthropic.sse", NULL);
	cr_assert_str_eq(got, want, "got\n%s", got);
	free(want);
	free(got);
	free(in);
}

/* WIRE.md: text blocks are never empty — a stream that starts with a
 * tool call has no text block at all. */
Test(anthropic, senc_tool_only_has_no_empty_text_block)
{
	const struct cev evs[] = { EV_START("msg_t7"),        EV_TEXT(""),
		                   EV_TOOL(0, "call_1", "f"), EV_ARGS(0, "{}"),
		                   EV_FINISH("tool_calls"),   EV_END };
	char *s = run_senc(evs, sizeof(evs) / sizeof(evs[0]), &OPTS);
	cr_assert_null(strstr(s, "\"type\":\"text\""), "%s", s);
	cr_assert(strstr(s, "\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_1\""), "%s",
	          s);
	free(s);
}

/* Broken UTF-8 in event strings is repaired, never a dropped event. */
Test(anthropic, senc_bad_utf8_is_repaired)
{
	const struct cev evs[] = { EV_START("msg_\xff"), EV_TEXT("a\xc3"), EV_TOOL(0, "id\xfe", "n\x80"),
		                   EV_FINISH_SEQ("stop", "\xff"), EV_END };
	char *s = run_senc(evs, sizeof(evs) / sizeof(evs[0]), &OPTS);
	cr_assert(strstr(s, "\"id\":\"msg_\xEF\xBF\xBD\""), "%s", s);
	cr_assert(strstr(s, "\"text\":\"a\xEF\xBF\xBD\""), "%s", s);
	cr_assert(strstr(s, "\"id\":\"id\xEF\xBF\xBD\",\"name\":\"n\xEF\xBF\xBD\""), "%s", s);
	cr_assert(strstr(s, "\"stop_sequence\":\"\xEF\xBF\xBD\""), "%s", s);
	cr_assert(strstr(s, "event: message_stop\n"), "%s", s);
	free(s);
}

/* A START that comes after content still gives message_delta its usage. */
Test(anthropic, senc_late_start_usage)
{
	const struct cev evs[] = { EV_TEXT("x"), EV_START_U("msg_late", 50, 10), EV_END };
	char *s = run_senc(evs, sizeof(evs) / sizeof(evs[0]), &OPTS);
	cr_assert(
	    strstr(s,
	           "\"usage\":{\"input_tokens\":40,\"output_tokens\":0,\"cache_read_input_tokens\":10}}\n"),
	    "%s", s);
	cr_assert_null(strstr(s, "msg_late"), "%s", s);
	free(s);
}

/* tool_result blocks become tool messages before the user's own text,
 * whatever their order in the turn (a tool answer must follow the call). */
Test(anthropic, decode_request_tool_results_before_text)
{
	json_t *b =
	    parse("{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
	          "\"text\",\"text\":\"see:\"},{\"type\":\"tool_result\",\"tool_use_id\":\"t1\"}]}]}");
	struct wire_err err = { 0 };
	json_t *c = A->decode_request(b, &err);
	cr_assert_not_null(c, "%s", err.message);
	json_t *want =
	    parse("[{\"role\":\"tool\",\"tool_call_id\":\"t1\",\"content\":\"\"},{\"role\":\"user\","
	          "\"content\":[{\"type\":\"text\",\"text\":\"see:\"}]}]");
	xlate_assert_json_eq(json_object_get(c, "messages"), want, "messages");
	json_decref(want);
	json_decref(c);
	json_decref(b);
}

/* A provider message longer than wire_error.message is cut between
 * characters, never inside one. */
Test(anthropic, decode_error_long_message_cut_at_character)
{
	char *body = xmalloc(2200);
	int o = snprintf(body, 200, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"");
	for (size_t i = 0; i < 1000; i++) {
		memcpy(body + o, "\xC3\xA9", 2); /* é */
		o += 2;
	}
	memcpy(body + o, "\"}}", 4);
	struct wire_error e;
	A->decode_error(500, body, strlen(body), &e);
	free(body);
	size_t len = strlen(e.message);
	cr_assert_eq(len, 510, "len %zu", len);
	cr_assert_eq((unsigned char)e.message[len - 2], 0xC3);
	json_t *j = A->encode_error(&e);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
	                 e.message);
	json_decref(j);
}

/* A hostile upstream cannot make the decoder track tool blocks without
 * limit: past 4096 tool_use blocks the stream fails. */
Test(anthropic, sdec_tool_block_bound)
{
	struct wire_sdec *d = A->sdec_new();
	struct evbuffer *b = evbuffer_new();
	int rc = 0;
	for (int i = 0; i <= 4096 && rc == 0; i++) {
		char ev[200];
		int n = snprintf(ev, sizeof(ev),
		                 "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{\"type\":"
		                 "\"tool_use\",\"id\":\"t%d\",\"name\":\"f\",\"input\":{}}}",
		                 i, i);
		rc = A->sdec_event(d, "", 0, ev, (size_t)n, xlate_trace_cev, b);
		if (i < 4096)
			cr_assert_eq(rc, 0, "block %d", i);
	}
	cr_assert_eq(rc, -1);
	evbuffer_free(b);
	A->sdec_free(d);
}
