/*
 * format.h — the wire formats Fusion speaks (OpenAI Chat Completions,
 * Anthropic Messages, Gemini generateContent), one table of function
 * pointers per format, one file per format (openai.c, anthropic.c,
 * gemini.c).  Adding a format is one file and one entry in wire_formats[].
 *
 * Every format is both a client format (what a caller sends Fusion) and a
 * provider format (what Fusion sends upstream).  Between two different
 * formats everything passes through one canonical form:
 *
 *   request   client JSON --C.decode_request--> canonical
 *                         --P.encode_request--> provider JSON
 *   answer    provider JSON --P.decode_response--> canonical
 *                           --C.encode_response--> client JSON
 *   stream    provider SSE events --P stream decoder--> struct cev events
 *                                 --C stream encoder--> client bytes
 *   errors    provider status+body --P.decode_error--> struct wire_error
 *                                  --C.encode_error--> client JSON
 *
 * The canonical request and response are OpenAI Chat Completions JSON
 * plus a few extension fields (prefix "x_") for what OpenAI cannot carry;
 * docs/TRANSLATION.md lists them and every rule.  Canonical request:
 *
 *   {model, messages:[...], stream, max_tokens, temperature, top_p,
 *    x_top_k, stop:[...], tools:[{type:"function", function:{name,
 *    description, parameters}}], tool_choice, parallel_tool_calls,
 *    response_format, x_thinking (Anthropic thinking config, passed on),
 *    x_thinking_config (Gemini thinkingConfig, passed on)}
 *   messages[]: {role:"system"|"user"|"assistant"|"tool", content:
 *    string | null | [{type:"text", text} | {type:"image_url",
 *    image_url:{url}}]} (url is a data: URI for inline images);
 *    assistant: tool_calls:[{id, type:"function", function:{name,
 *    arguments:string}, x_thought_signature?}], x_thinking:[{thinking,
 *    signature} | {redacted_thinking:data}], x_thought_signature? (on a
 *    text answer);  tool: tool_call_id, content, x_name? (the function's
 *    name when the source format carries it), x_is_error?
 *
 * Canonical response: an OpenAI chat.completion with one choice:
 *   {id, object:"chat.completion", created, model, choices:[{index:0,
 *    message:{role:"assistant", content, tool_calls?, x_thinking?,
 *    x_thought_signature?}, finish_reason}], usage:{prompt_tokens,
 *    completion_tokens, total_tokens, prompt_tokens_details:
 *    {cached_tokens}, completion_tokens_details:{reasoning_tokens}},
 *    x_stop_sequence?}
 *   finish_reason: "stop" | "length" | "tool_calls" | "content_filter".
 *
 * Ownership: every function returning json_t* returns a new reference the
 * caller owns (NULL with *err filled on failure); inputs are borrowed.
 */
#ifndef FUSION_PROVIDERS_FORMAT_H
#define FUSION_PROVIDERS_FORMAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum wire { WIRE_OPENAI, WIRE_ANTHROPIC, WIRE_GEMINI, WIRE_COUNT };

/* A request that cannot be translated: status (400 for the client's own
 * mistakes or features the target lacks) and a message for the client. */
struct wire_err {
	int status;
	char message[256];
};

/* Token counts in one normalised form; -1 when unknown. */
struct wire_usage {
	int64_t prompt;     /* includes cached and cache-creation tokens */
	int64_t completion; /* includes reasoning / thought tokens */
	int64_t total;
	int64_t cached;    /* prompt tokens read from a cache */
	int64_t reasoning; /* completion tokens spent thinking */
};
void wire_usage_init(struct wire_usage *u);
/* The numbers of a canonical (OpenAI-shaped) usage object; -1 for what
 * it does not say, total derived from prompt + completion if absent. */
void wire_canon_usage(const json_t *usage, struct wire_usage *out);
/* The same read from the text of a usage object s[0..n) without parsing
 * it into a document (the proxy's hot path); false when s is not a
 * complete object (then *out says nothing). */
bool wire_canon_usage_text(const char *s, size_t n, struct wire_usage *out);
/* Copy into dst every number src knows (>= 0); keep dst's others. */
void wire_usage_merge(struct wire_usage *dst, const struct wire_usage *src);

/* An error in neutral terms.  type is one of: invalid_request_error,
 * authentication_error, permission_error, not_found_error,
 * request_too_large, rate_limit_error, api_error, overloaded_error,
 * timeout_error. */
struct wire_error {
	int status;
	char type[48];
	char message[512];
};
/* The neutral type for an HTTP status (used when a body says nothing). */
const char *wire_error_type_for_status(int status);

struct wire_opts {
	const char *model;          /* the model name to put in the output */
	bool stream;                /* the request streams */
	int64_t default_max_tokens; /* Anthropic needs one; used when absent */
	bool json_array;            /* Gemini stream without alt=sse: one JSON array */
	bool include_usage;         /* OpenAI client asked for the usage chunk */
	int64_t prompt_estimate;    /* prompt tokens guessed from the request
	                               size, for a stream encoder that must name
	                               them before the upstream does; -1 none */
};

/* ---- streams ---- */

enum cev_type {
	CEV_START,      /* id, model (may be NULL); usage: prompt tokens if known */
	CEV_TEXT,       /* text/len: a fragment of answer text */
	CEV_THINKING,   /* text/len: a fragment of reasoning text */
	CEV_SIGNATURE,  /* text/len: signature of the current thinking block
	                   (Anthropic) or a Gemini thoughtSignature; index is the
	                   tool call it belongs to, -1 for text/thinking */
	CEV_TOOL_START, /* index (0, 1, ... in order of appearance), id, name */
	CEV_TOOL_ARGS,  /* index, text/len: a fragment of the arguments JSON */
	CEV_USAGE,      /* usage: numbers seen so far (cumulative), -1 unknown */
	CEV_FINISH,     /* finish: "stop" | "length" | "tool_calls" |
	                   "content_filter"; text: stop sequence if known */
	CEV_ERROR,      /* error: the upstream failed mid-stream */
	CEV_END,        /* the stream ended normally */
};

struct cev {
	enum cev_type type;
	int index;
	const char *id, *name, *model;
	const char *text;
	size_t len;
	const char *finish;
	struct wire_usage usage;
	const struct wire_error *error;
};

/* Receives decoded events; a non-zero return stops the decoder, which
 * returns that value. */
typedef int (*cev_fn)(const struct cev *ev, void *arg);

struct wire_sdec; /* a stream decoder (provider side) */
struct wire_senc; /* a stream encoder (client side) */

struct wire_format {
	const char *name; /* "openai", "anthropic", "gemini" */

	/* Client request → canonical (validates; 400 on bad input). */
	json_t *(*decode_request)(const json_t *body, struct wire_err *err);
	/* Canonical → provider request body for o->model (provider model). */
	json_t *(*encode_request)(const json_t *canon, const struct wire_opts *o, struct wire_err *err);
	/* Provider answer → canonical chat.completion (502 if malformed). */
	json_t *(*decode_response)(const json_t *body, struct wire_err *err);
	/* Canonical chat.completion → client answer naming o->model. */
	json_t *(*encode_response)(const json_t *canon, const struct wire_opts *o);

	/* A provider's non-2xx answer (body may be anything, even HTML). */
	void (*decode_error)(int status, const char *body, size_t len, struct wire_error *out);
	/* An error in this client format's own shape. */
	json_t *(*encode_error)(const struct wire_error *e);

	/* Provider stream: feed one SSE event (event name may be ""), then
	 * sdec_end at the end of the upstream body.  Emits zero or more
	 * events per call.  Returns 0, the callback's non-zero value, or -1
	 * on malformed input (an error event was emitted first). */
	struct wire_sdec *(*sdec_new)(void);
	int (*sdec_event)(struct wire_sdec *d, const char *event, size_t event_len, const char *data,
	                  size_t data_len, cev_fn fn, void *arg);
	int (*sdec_end)(struct wire_sdec *d, cev_fn fn, void *arg);
	void (*sdec_free)(struct wire_sdec *d);

	/* Client stream: turn canonical events into this format's bytes,
	 * appended to out.  CEV_END / CEV_ERROR write the format's ending. */
	struct wire_senc *(*senc_new)(const struct wire_opts *o);
	void (*senc_event)(struct wire_senc *e, const struct cev *ev, struct evbuffer *out);
	void (*senc_free)(struct wire_senc *e);

	/* Usage of a provider answer in this format (passthrough). */
	void (*usage)(const json_t *body, struct wire_usage *u);

	/* Upstream: the URL of a chat call to model (malloc'd; base_url is
	 * used as given, trailing '/' ignored), and the header lines
	 * ("Name: value", each malloc'd, at most max) that authenticate with
	 * secret (NULL: none) plus any the format requires.  Returns how many
	 * header lines were written. */
	char *(*chat_url)(const char *base_url, const char *model, bool stream);
	size_t (*auth_headers)(const char *secret, char **h, size_t max);
};

extern const struct wire_format *const wire_formats[WIRE_COUNT];
extern const struct wire_format wire_openai, wire_anthropic, wire_gemini;

#endif
