/*
 * proxy.c — see proxy.h.  The life of one proxied request:
 *
 *   proxy_begin   client key → snapshot lookup (401/403), body → JSON
 *                 (400 with position), model → candidates (404)
 *   attempt       next candidate + key → upstream request (model rewritten,
 *                 include_usage asked for streams so tokens can be counted)
 *   on_response   status known: 2xx streams go to the client as SSE,
 *                 anything else is buffered (bounded) until done
 *   on_data       stream: parse SSE, count usage, drop the usage-only chunk
 *                 the client did not ask for, forward each event at once;
 *                 pause the upstream while the client's buffer is above
 *                 HWM, resume from the drain callback below LWM
 *   on_done       failover (connect error, timeout, 408/429/5xx) while
 *                 nothing reached the client; else answer / end the stream
 *   finish        one request_logs row to the log writer; free
 *
 * A client that goes away cancels the upstream transfer at once (the
 * provider sees its connection closed) and the row says so, with the
 * usage seen so far.  Ownership: struct proxy owns everything below it
 * and is freed only in finish(), never inside a curl callback (upstream
 * defers its own removal) — the deferred finish event is used after a
 * client close.
 */
#include "gateway/proxy.h"

#include <event2/buffer.h>
#include <sodium.h>
#include <event2/event.h>
#include <event2/http.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "app.h"
#include "auth/token.h"
#include "gateway/breaker.h"
#include "gateway/logwriter.h"
#include "gateway/route.h"
#include "gateway/snapshot.h"
#include "gateway/sse.h"
#include "http/body.h"
#include "http/request.h"
#include "http/server.h"
#include "providers/format.h"
#include "providers/wire_util.h"
#include "store/store.h"
#include "upstream/client.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/json_scan.h"
#include "util/packbuf.h"
#include "util/strbuf.h"
#include "util/log.h"
#include "util/str.h"
#include "version.h"

#define BUFFER_MAX (32u << 20)   /* a whole non-streamed answer */
#define SSE_EVENT_MAX (4u << 20) /* one upstream event */
#define HWM (256u << 10)         /* pause the upstream above this many queued bytes */
#define LWM (64u << 10)          /* resume below this */
#define HEARTBEAT_MS 5000
#define WATCH_MS 250 /* how often a waiting request looks for its client */
#define CONNECT_TIMEOUT_MS 10000
#define IDLE_TIMEOUT_MS 120000

enum kind { K_CHAT, K_EMBED };
enum mode { M_BUFFER, M_STREAM };

struct proxy {
	struct http_req *r; /* ended exactly once, in finish() */
	struct worker *w;
	struct snapshot *snap; /* own reference */
	enum kind kind;
	enum wire cfmt;         /* the client's API */
	enum wire pfmt;         /* the current attempt's provider API */
	bool array_stream;      /* a Gemini client without alt=sse: the stream is one JSON array */
	bool xlate;             /* the current attempt translates (pfmt != cfmt) */
	json_t *canon;          /* owned: the canonical request, made at the first translated attempt */
	struct wire_sdec *sdec; /* owned: the attempt's stream decoder (translation, or the usage of
	                           an Anthropic/Gemini stream passed through) */
	struct wire_senc *senc; /* owned: the client's stream encoder when translating */
	bool senc_done;         /* the encoder wrote its ending */
	char *xlate_err;        /* owned: why a candidate could not take the request; NULL if none */
	int xlate_status;
	bool bad_request;        /* the client's request could not be decoded for translation */
	int64_t prompt_estimate; /* prompt tokens guessed from the body size */
	json_t *body;            /* owned: the client's document, model rewritten per attempt */
	/* The client's bytes and where "model" sits in them: an attempt
	 * splices the provider's model in instead of re-encoding the whole
	 * document (splice false: re-encode body). */
	char *raw; /* owned */
	size_t raw_len;
	struct json_span model_span;
	size_t raw_end; /* offset of the closing '}' */
	bool splice;
	char model[257];
	bool stream;
	bool client_usage;   /* the client asked for stream usage itself */
	bool injected_usage; /* we asked for it: strip the usage-only chunk */
	const struct snap_client_key *ck;
	const struct snap_target **cands; /* owned array (the targets are the snapshot's) */
	size_t ncands, next;
	int attempts;
	struct strbuf attempts_log; /* owned: a JSON array of one object per attempt, not yet closed */

	bool ignore_breakers; /* every candidate was cooling down: try them anyway */
	size_t capture_max;   /* body bytes kept in the log row (settings) */
	bool in_read;         /* on_data is feeding one upstream read to the SSE parser */

	/* the current attempt */
	const struct snap_target *tgt;
	const struct snap_key *key; /* NULL for a provider without keys */
	int64_t retry_after_s;      /* from a 429/503 answer; 0 if none */
	struct upstream_xfer *xfer; /* NULL when none is running */
	uint64_t attempt_start_ns;
	long up_status;
	enum mode mode;
	struct evbuffer *buf; /* owned: buffered answer or error body */
	bool buf_overflow;
	struct sse_parser *sse; /* owned */
	struct evbuffer *out;   /* owned: scratch for one chunk to the client */
	bool sent_headers;
	bool paused;
	bool ended; /* r was ended */
	bool client_gone;
	struct event *heartbeat; /* owned */
	struct event *watch;     /* owned: notices a client gone before any answer byte */
	struct event *finish_ev; /* owned */
	uint64_t last_write_ns, first_token_ns;

	/* results */
	struct wire_usage usage; /* what the provider reported, normalised */
	struct packbuf *capture; /* owned: the answer as sent, bounded (compressed blocks) */
	const char *outcome;
	char *error; /* owned: what went wrong, for the log row; NULL if nothing */
	int status;
	uint64_t start_ns;
	char peer[64];
	char rid[REQID_BUF]; /* the request id, kept past the end of r */
};

static void attempt(struct proxy *p);
static json_t *request_doc(struct proxy *p);
static void finish(struct proxy *p);
static void on_client_close(struct http_req *r, void *arg);

/* ---- small helpers ------------------------------------------------- */

static void capture(struct proxy *p, const void *data, size_t n)
{
	size_t have = packbuf_length(p->capture);
	if (have < p->capture_max)
		packbuf_append(p->capture, data, n < p->capture_max - have ? n : p->capture_max - have);
}

/* *dst = the formatted message (at most 255 bytes), replacing any before. */
static void set_msg(char **dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_msg(char **dst, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(*dst);
	*dst = xstrdup(buf);
}

/* The provider refused this key (401/403): mark it bad for every worker
 * until an operator edits it.  Rare, so a synchronous write is fine. */
static void mark_key_bad(struct proxy *p, long status)
{
	if (!p->key)
		return;
	struct store *st = p->w->store;
	char reason[64];
	snprintf(reason, sizeof(reason), "upstream answered %ld", status);
	struct store_value v[] = { sv_text(reason), sv_int(clock_wall_ms()), sv_int(p->key->id) };
	if (store_exec(
	        st, "UPDATE provider_keys SET status = 'bad', status_reason = ?, updated_at = ? WHERE id = ?",
	        v, 3, NULL) != 0) {
		log_warn(p->rid, "could not mark key %lld bad: %s", (long long)p->key->id, store_errmsg(st));
		return;
	}
	log_warn(p->rid, "provider %s: key %lld marked bad (%s)", p->tgt->provider->name,
	         (long long)p->key->id, reason);
	const struct app *app = p->w->srv->app;
	char err[256];
	if (snapshot_rebuild(app->hub, st, app->secrets, err, sizeof(err)) != 0)
		log_error(p->rid, "key marked bad but the configuration was not republished: %s", err);
}

/* Feed the breaker with the outcome of the attempt that just ended. */
static void breaker_note(struct proxy *p, enum upstream_result res, long status)
{
	int64_t now = clock_wall_ms();
	const struct snap_provider *prov = p->tgt->provider;
	if (res != UPSTREAM_OK || status == 408 || status >= 500) {
		breaker_failure(prov, now);
	} else if (status == 429) {
		int64_t s = p->retry_after_s > 0 ? p->retry_after_s : 10;
		if (p->key)
			breaker_key_cool(p->key, now + s * 1000);
	} else if (status == 401 || status == 403) {
		mark_key_bad(p, status);
	} else {
		breaker_success(prov);
	}
}

/* Note a canonical (OpenAI-shaped) usage object. */
static void take_usage(struct proxy *p, const json_t *usage)
{
	struct wire_usage u;
	wire_canon_usage(usage, &u);
	wire_usage_merge(&p->usage, &u);
}

static void record_attempt(struct proxy *p, long status, const char *error)
{
	int64_t ms = (int64_t)((clock_mono_ns() - p->attempt_start_ns) / 1000000u);
	struct strbuf *b = &p->attempts_log;
	sb_adds(b, b->len ? ",{\"provider_id\":" : "[{\"provider_id\":");
	sb_add_i64(b, p->tgt->provider->id);
	sb_adds(b, ",\"provider\":");
	sb_add_json_string(b, p->tgt->provider->name);
	sb_adds(b, ",\"provider_model\":");
	sb_add_json_string(b, p->tgt->provider_model);
	sb_adds(b, ",\"latency_ms\":");
	sb_add_i64(b, ms);
	sb_adds(b, ",\"status\":");
	if (status)
		sb_add_i64(b, status);
	else
		sb_adds(b, "null");
	sb_adds(b, ",\"error\":");
	if (error)
		sb_add_json_string(b, error);
	else
		sb_adds(b, "null");
	sb_adds(b, "}");
}

/* Worth another provider: the fault is upstream's, not the request's.
 * 401/403 mean this key was refused, which another key may not be. */
static bool retryable_status(long s)
{
	return s == 401 || s == 403 || s == 408 || s == 429 || s >= 500;
}

/* Headers the client sees on a proxied answer. */
static void fusion_headers(struct proxy *p)
{
	char n[STR_I64_BUF];
	str_i64(n, p->attempts);
	http_req_set_header(p->r, "X-Fusion-Provider", p->tgt->provider->name);
	http_req_set_header(p->r, "X-Fusion-Attempts", n);
}

/* ---- answering ------------------------------------------------------ */

/* Answer r with an error in the client's own API format (OpenAI's keeps
 * Fusion's code field). */
static void client_error(struct http_req *r, enum wire cfmt, int status, const char *code, const char *msg)
{
	if (cfmt == WIRE_OPENAI) {
		http_reply_error(r, status, code, "%s", msg);
		return;
	}
	struct wire_error e = { .status = status };
	str_copy(e.type, sizeof(e.type), wire_error_type_for_status(status));
	str_copy(e.message, sizeof(e.message), msg);
	http_reply_json(r, status, wire_formats[cfmt]->encode_error(&e));
}

static void reply_error(struct proxy *p, int status, const char *code, const char *msg)
{
	p->status = status;
	set_msg(&p->error, "%s", msg);
	capture(p, msg, strlen(msg));
	p->ended = true;
	client_error(p->r, p->cfmt, status, code, msg);
}

static void start_stream(struct proxy *p)
{
	if (p->sent_headers)
		return;
	fusion_headers(p);
	http_req_set_header(p->r, "Cache-Control", "no-cache");
	http_req_set_header(p->r, "X-Accel-Buffering", "no");
	http_stream_start(p->r, 200,
	                  p->array_stream ? "application/json; charset=utf-8"
	                                  : "text/event-stream; charset=utf-8");
	p->sent_headers = true;
	p->status = 200;
	p->last_write_ns = clock_mono_ns();
	if (!p->array_stream) { /* an SSE comment would break a JSON array */
		struct timeval tv = clock_tv_ms(HEARTBEAT_MS);
		evtimer_add(p->heartbeat, &tv);
	}
}

/* Send what p->out holds to the client (and keep it for the log row). */
static void stream_flush(struct proxy *p)
{
	size_t n = evbuffer_get_length(p->out);
	const unsigned char *bytes = evbuffer_pullup(p->out, -1);
	capture(p, bytes, n);
	http_stream_write(p->r, p->out);
	p->last_write_ns = clock_mono_ns();
}

/* Flush p->out now, or, while on_data is handing out the events of one
 * upstream read (p->in_read), once they are all in: one chunk to the
 * client per read instead of one per event, and still nothing waits for
 * more upstream bytes. */
static void stream_flush_soon(struct proxy *p)
{
	if (!p->in_read && evbuffer_get_length(p->out))
		stream_flush(p);
}

static void stream_write(struct proxy *p, const char *a, size_t an, const char *b, size_t bn, const char *c,
                         size_t cn)
{
	evbuffer_add(p->out, a, an);
	if (bn)
		evbuffer_add(p->out, b, bn);
	if (cn)
		evbuffer_add(p->out, c, cn);
	stream_flush_soon(p);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *p = arg;
	if (p->ended || p->client_gone)
		return;
	if (clock_mono_ns() - p->last_write_ns >= (uint64_t)HEARTBEAT_MS * 1000000u / 2) {
		evbuffer_add(p->out, ": keep-alive\n\n", 14);
		http_stream_write(p->r, p->out);
		p->last_write_ns = clock_mono_ns();
	}
	struct timeval tv = clock_tv_ms(HEARTBEAT_MS);
	evtimer_add(p->heartbeat, &tv);
}

static void on_drained(struct http_req *r, void *arg)
{
	struct proxy *p = arg;
	if (p->paused && p->xfer && http_req_output_pending(r) < LWM) {
		p->paused = false;
		upstream_resume(p->xfer);
	}
}

/* ---- upstream callbacks --------------------------------------------- */

/* Does this JSON text hold "usage" followed by an object? (A cheap scan
 * that may say yes wrongly — e.g. inside a string — but never no wrongly
 * for the chunks providers send.) */
/* Whether the JSON text in s[0..n) is an empty array ("[]", "[ ]"). */
static bool empty_array(const char *s, size_t n)
{
	if (n < 2 || s[0] != '[' || s[n - 1] != ']')
		return false;
	for (size_t i = 1; i + 1 < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

/* One canonical stream event from the provider's decoder: count usage
 * and the first token, and, when translating, have the client's encoder
 * write it out. */
static int on_cev(const struct cev *ev, void *arg)
{
	struct proxy *p = arg;
	switch (ev->type) {
	case CEV_START:
	case CEV_USAGE:
		wire_usage_merge(&p->usage, &ev->usage);
		break;
	case CEV_TEXT:
	case CEV_THINKING:
	case CEV_TOOL_START:
		if (!p->first_token_ns)
			p->first_token_ns = clock_mono_ns();
		break;
	case CEV_ERROR:
		p->outcome = "upstream_error";
		set_msg(&p->error, "upstream stream error: %.200s",
		        ev->error ? ev->error->message : "unknown");
		break;
	default:
		break;
	}
	if (!p->senc || p->senc_done)
		return 0;
	if (ev->type == CEV_END || ev->type == CEV_ERROR)
		p->senc_done = true;
	start_stream(p);
	wire_formats[p->cfmt]->senc_event(p->senc, ev, p->out);
	stream_flush_soon(p);
	return 0;
}

/* The stream broke after bytes reached the client: an error event in the
 * client's format, then the caller ends the stream. */
static void stream_error(struct proxy *p, const char *msg)
{
	struct wire_error e = { .status = 502 };
	snprintf(e.type, sizeof(e.type), "api_error");
	str_copy(e.message, sizeof(e.message), msg);
	if (p->senc) {
		struct cev ev = { .type = CEV_ERROR, .error = &e };
		wire_usage_init(&ev.usage);
		on_cev(&ev, p);
		return;
	}
	if (p->cfmt == WIRE_OPENAI) {
		char buf[512];
		snprintf(buf, sizeof(buf),
		         "data: {\"error\":{\"message\":\"%s\",\"type\":\"upstream_error\","
		         "\"code\":\"upstream_stream_error\"}}\n\n",
		         msg);
		stream_write(p, buf, strlen(buf), NULL, 0, NULL, 0);
		return;
	}
	json_t *doc = wire_formats[p->cfmt]->encode_error(&e);
	char *s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (!s)
		return;
	if (p->cfmt == WIRE_ANTHROPIC)
		evbuffer_add(p->out, "event: error\n", 13);
	stream_write(p, "data: ", 6, s, strlen(s), "\n\n", 2);
	free(s);
}

static int on_sse_event(const struct sse_event *ev, void *arg)
{
	struct proxy *p = arg;
	if (p->sdec) {
		/* Translated (the encoder writes), or an Anthropic/Gemini stream
		 * passed through as it came, read only for its usage. */
		(void)wire_formats[p->pfmt]->sdec_event(p->sdec, ev->event, ev->event_len, ev->data,
		                                        ev->data_len, on_cev, p);
		if (p->senc)
			return 0; /* on_cev noted the first token */
		start_stream(p);
		if (ev->event_len)
			stream_write(p, "event: ", 7, ev->event, ev->event_len, "\n", 1);
		stream_write(p, "data: ", 6, ev->data, ev->data_len, "\n\n", 2);
		return 0;
	}
	if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
		start_stream(p);
		stream_write(p, "data: [DONE]\n\n", 14, NULL, 0, NULL, 0);
		return 0;
	}
	/* Only a chunk carrying a usage object needs reading, and then only
	 * that object: most chunks say "usage":null or nothing, and a full
	 * parse per event would be the proxy's dearest per-event work. */
	struct json_span us, cs;
	if (memmem(ev->data, ev->data_len, "\"usage\"", 7) && /* most chunks: no need to walk */
	    json_scan_member(ev->data, ev->data_len, "usage", &us) && ev->data[us.off] == '{') {
		struct wire_usage u;
		bool usage = wire_canon_usage_text(ev->data + us.off, us.len, &u);
		wire_usage_merge(&p->usage, &u);
		bool usage_only = usage && json_scan_member(ev->data, ev->data_len, "choices", &cs) &&
		                  empty_array(ev->data + cs.off, cs.len);
		if (usage_only && p->injected_usage)
			return 0; /* asked for by us, not by the client */
	}
	if (!p->first_token_ns)
		p->first_token_ns = clock_mono_ns();
	start_stream(p);
	if (ev->event_len)
		stream_write(p, "event: ", 7, ev->event, ev->event_len, "\n", 1);
	stream_write(p, "data: ", 6, ev->data, ev->data_len, "\n\n", 2);
	return 0;
}

static int on_response(void *ud, long status, const char *content_type)
{
	struct proxy *p = ud;
	p->up_status = status;
	p->retry_after_s = 0;
	if (status == 429 || status == 503) {
		const char *ra = upstream_response_header(p->xfer, "retry-after");
		if (ra && *ra && strspn(ra, "0123456789") == strlen(ra) && strlen(ra) < 9) {
			p->retry_after_s = strtoll(ra, NULL, 10);
			if (p->retry_after_s > BREAKER_RETRY_AFTER_MAX_S)
				p->retry_after_s = BREAKER_RETRY_AFTER_MAX_S;
		}
	}
	bool sse = content_type && strncasecmp(content_type, "text/event-stream", 17) == 0;
	p->mode = (status >= 200 && status < 300 && p->stream && sse) ? M_STREAM : M_BUFFER;
	return 0;
}

static int on_data(void *ud, const char *data, size_t n)
{
	struct proxy *p = ud;
	if (p->client_gone)
		return -1;
	if (p->mode == M_BUFFER) {
		if (evbuffer_get_length(p->buf) + n > BUFFER_MAX) {
			p->buf_overflow = true;
			return -1;
		}
		evbuffer_add(p->buf, data, n);
		return 0;
	}
	if (p->sent_headers && http_req_output_pending(p->r) > HWM) {
		p->paused = true;
		return UPSTREAM_PAUSE; /* took nothing: the same bytes come again after resume */
	}
	p->in_read = true;
	int rc = sse_feed(p->sse, data, n, on_sse_event, p);
	p->in_read = false;
	if (p->out && !p->client_gone)
		stream_flush_soon(p);
	if (rc) {
		set_msg(&p->error, "upstream sent an event over %u bytes", SSE_EVENT_MAX);
		return -1;
	}
	return 0;
}

/* Answer the client in its own format from a provider's answer in
 * another (a 2xx answer, or an error with its status kept). */
static void reply_translated(struct proxy *p)
{
	size_t n = evbuffer_get_length(p->buf);
	const char *body = (const char *)evbuffer_pullup(p->buf, -1);
	int status = (int)p->up_status;
	json_t *out = NULL;
	struct wire_error e;
	struct wire_opts o = { .model = p->model, .prompt_estimate = -1 };
	if (status < 200 || status >= 300) {
		wire_formats[p->pfmt]->decode_error(status, body ? body : "", n, &e);
		e.status = status;
		out = wire_formats[p->cfmt]->encode_error(&e);
	} else {
		struct wire_err err = { 0 };
		json_t *doc = body ? json_loadb(body, n, 0, NULL) : NULL;
		json_t *canon = doc ? wire_formats[p->pfmt]->decode_response(doc, &err) : NULL;
		json_decref(doc);
		if (!canon) {
			p->outcome = "upstream_error";
			fusion_headers(p);
			reply_error(p, 502, "upstream_bad_answer",
			            err.message[0] ? err.message : "the provider's answer is not JSON");
			return;
		}
		take_usage(p, json_object_get(canon, "usage"));
		out = wire_formats[p->cfmt]->encode_response(canon, &o);
		json_decref(canon);
	}
	char *s = out ? json_dumps(out, JSON_COMPACT) : NULL;
	json_decref(out);
	if (!s) {
		fusion_headers(p);
		reply_error(p, 502, "upstream_bad_answer", "the provider's answer could not be translated");
		return;
	}
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, s, strlen(s));
	capture(p, s, strlen(s));
	free(s);
	fusion_headers(p);
	p->status = status;
	p->ended = true;
	http_reply(p->r, status, "application/json", b);
	evbuffer_free(b);
}

/* Answer from the buffered upstream body (success or a final error). */
static void reply_buffered(struct proxy *p)
{
	size_t n = evbuffer_get_length(p->buf);
	if (p->xlate) {
		reply_translated(p);
		return;
	}
	if (p->up_status >= 200 && p->up_status < 300 && p->pfmt != WIRE_OPENAI) {
		const char *body = (const char *)evbuffer_pullup(p->buf, -1);
		json_t *doc = body ? json_loadb(body, n, 0, NULL) : NULL;
		struct wire_usage u;
		wire_usage_init(&u);
		if (doc)
			wire_formats[p->pfmt]->usage(doc, &u);
		wire_usage_merge(&p->usage, &u);
		json_decref(doc);
	} else if (p->up_status >= 200 && p->up_status < 300) {
		/* Only the usage object is read: parsing the whole answer would
		 * cost more than passing it on. */
		const char *body = (const char *)evbuffer_pullup(p->buf, -1);
		struct json_span sp;
		if (body && json_scan_member(body, n, "usage", &sp)) {
			struct wire_usage u;
			wire_canon_usage_text(body + sp.off, sp.len, &u);
			wire_usage_merge(&p->usage, &u);
		}
	}
	capture(p, evbuffer_pullup(p->buf, -1), n);
	fusion_headers(p);
	p->status = (int)p->up_status;
	p->ended = true;
	http_reply(p->r, (int)p->up_status, "application/json", p->buf);
}

static void on_done(void *ud, enum upstream_result res, long status, const char *detail)
{
	struct proxy *p = ud;
	p->xfer = NULL;
	if (p->client_gone)
		return; /* the deferred finish does the rest */

	if (p->mode == M_STREAM && (p->sent_headers || (p->senc && res == UPSTREAM_OK))) {
		/* Past the point of failover: end the stream, with an error event if it broke. */
		if (res == UPSTREAM_OK && sse_finish(p->sse, on_sse_event, p) == SSE_ETRUNCATED)
			log_info(p->rid, "upstream stream ended mid-line");
		record_attempt(p, status, res == UPSTREAM_OK ? NULL : upstream_result_name(res));
		breaker_note(p, res, res == UPSTREAM_OK ? 200 : 0);
		if (res == UPSTREAM_OK && p->sdec) /* ends a translated stream, or notes a cut one */
			(void)wire_formats[p->pfmt]->sdec_end(p->sdec, on_cev, p);
		if (res != UPSTREAM_OK) {
			char msg[160];
			snprintf(msg, sizeof(msg), "upstream stream failed: %s", upstream_result_name(res));
			stream_error(p, msg);
			p->outcome = res == UPSTREAM_ETIMEOUT_IDLE ? "timeout" : "upstream_error";
			set_msg(&p->error, "stream cut: %s", detail ? detail : upstream_result_name(res));
		} else if (!p->outcome) {
			p->outcome = "ok";
		}
		p->ended = true;
		http_stream_end(p->r);
		finish(p);
		return;
	}

	bool failed = res != UPSTREAM_OK || retryable_status(status) || p->buf_overflow;
	char err[200] = "";
	if (res != UPSTREAM_OK)
		snprintf(err, sizeof(err), "%s%s%s", upstream_result_name(res), detail ? ": " : "",
		         detail ? detail : "");
	else if (retryable_status(status))
		snprintf(err, sizeof(err), "upstream answered %ld", status);
	record_attempt(p, res == UPSTREAM_OK ? status : 0, err[0] ? err : NULL);
	breaker_note(p, res, res == UPSTREAM_OK ? status : 0);

	if (failed && !p->buf_overflow && p->next < p->ncands &&
	    p->attempts < p->snap->settings.max_attempts) {
		log_info(p->r->id, "attempt %d on %s failed (%s); trying the next provider", p->attempts,
		         p->tgt->provider->name, err);
		attempt(p);
		return;
	}
	if (res == UPSTREAM_OK && !p->buf_overflow) {
		p->outcome = failed ? "upstream_error" : (status >= 400 ? "upstream_client_error" : "ok");
		if (failed)
			set_msg(&p->error, "%s", err);
		reply_buffered(p);
	} else if (p->buf_overflow) {
		p->outcome = "upstream_error";
		reply_error(p, 502, "upstream_too_large",
		            "the upstream answer exceeds the size Fusion buffers");
	} else {
		bool timeout = res == UPSTREAM_ETIMEOUT_CONNECT || res == UPSTREAM_ETIMEOUT_FIRST_BYTE ||
		               res == UPSTREAM_ETIMEOUT_IDLE;
		p->outcome = timeout ? "timeout" : "upstream_error";
		char msg[256];
		snprintf(msg, sizeof(msg), "no provider could serve the request (last: %s)", err);
		reply_error(p, timeout ? 504 : 502, timeout ? "upstream_timeout" : "upstream_unavailable",
		            msg);
	}
	finish(p);
}

/* ---- attempts ------------------------------------------------------- */

/* The body for this attempt (malloc'd, *len bytes): the client's bytes
 * with the provider's model spliced in (and, for a stream whose client
 * did not ask for usage, stream_options added before the closing brace);
 * a re-encoded document when the bytes cannot simply be spliced. */
static char *request_payload(struct proxy *p, size_t *len)
{
	if (!p->splice) {
		json_t *doc = request_doc(p);
		if (!doc) {
			*len = 0;
			return NULL;
		}
		json_object_set_new(doc, "model", json_string(p->tgt->provider_model));
		char *s = json_dumps(doc, JSON_COMPACT);
		*len = s ? strlen(s) : 0;
		return s;
	}
	static const char usage_opt[] = ",\"stream_options\":{\"include_usage\":true}";
	struct strbuf b = { 0 };
	size_t after = p->model_span.off + p->model_span.len;
	sb_reserve(&b, p->raw_len + strlen(p->tgt->provider_model) + 8 + sizeof(usage_opt));
	sb_add(&b, p->raw, p->model_span.off);
	sb_add_json_string(&b, p->tgt->provider_model);
	if (p->injected_usage) {
		sb_add(&b, p->raw + after, p->raw_end - after);
		sb_add(&b, usage_opt, sizeof(usage_opt) - 1);
		sb_add(&b, p->raw + p->raw_end, p->raw_len - p->raw_end);
	} else {
		sb_add(&b, p->raw + after, p->raw_len - after);
	}
	*len = b.len;
	return sb_take(&b);
}

static enum wire wire_of(enum provider_type t)
{
	switch (t) {
	case PROVIDER_ANTHROPIC:
		return WIRE_ANTHROPIC;
	case PROVIDER_GEMINI:
		return WIRE_GEMINI;
	default:
		return WIRE_OPENAI;
	}
}

/* Note why the request could not be translated (for the final answer). */
static void xlate_failed(struct proxy *p, const struct wire_err *err)
{
	p->xlate_status = err->status ? err->status : 400;
	set_msg(&p->xlate_err, "%s", err->message);
}

/* The client's request in canonical form, made once, at the first
 * candidate of another format.  False: the request is bad whatever the
 * provider (p->xlate_err says why). */
static bool make_canon(struct proxy *p)
{
	struct wire_err err = { 0 };
	json_t *doc = request_doc(p);
	p->canon = doc ? wire_formats[p->cfmt]->decode_request(doc, &err) : NULL;
	if (!p->canon) {
		xlate_failed(p, &err);
		return false;
	}
	/* Gemini names the model and streaming in the URL, not the body. */
	json_object_set_new(p->canon, "model", json_string(p->model));
	json_object_set_new(p->canon, "stream", json_boolean(p->stream));
	return true;
}

/* The body for a provider in another format (malloc'd), or NULL with
 * p->xlate_err set when the request cannot be put in that format. */
static char *translated_payload(struct proxy *p, enum wire pf, size_t *len)
{
	struct wire_err err = { 0 };
	struct wire_opts o = {
		.model = p->tgt->provider_model,
		.stream = p->stream,
		.default_max_tokens = p->snap->settings.default_max_tokens,
		.prompt_estimate = -1,
	};
	json_t *enc = wire_formats[pf]->encode_request(p->canon, &o, &err);
	if (!enc) {
		xlate_failed(p, &err);
		return NULL;
	}
	char *s = json_dumps(enc, JSON_COMPACT);
	json_decref(enc);
	*len = s ? strlen(s) : 0;
	return s;
}

/* The header lines every attempt on (provider, key, kind of call) sends
 * alike, kept by this worker's upstream client per configuration version:
 * building them (and curl's list of them) for every request cost more than
 * sending them.  NULL if a line is refused (a provider's extra header
 * cannot be sent), which fails the attempt. */
static struct upstream_headers *header_set(struct proxy *p, const struct snap_provider *prov,
                                           const struct snap_key *key, enum wire pf)
{
	struct upstream_headers_key k = {
		.generation = p->snap->version,
		.a = (uint64_t)prov->id,
		.b = key ? (uint64_t)key->id : 0,
		.c = (uint64_t)pf << 8 | (uint64_t)p->stream << 1 | (uint64_t)(p->kind == K_EMBED),
	};
	struct upstream_headers *set = upstream_headers_get(p->w->up, &k);
	if (set)
		return set;
	size_t nh = 0;
	char *h[8 + 64];
	h[nh++] = xstrdup("Content-Type: application/json");
	h[nh++] = xstrdup(p->stream ? "Accept: text/event-stream" : "Accept: application/json");
	h[nh++] = xstrdup("User-Agent: fusion/" FUSION_VERSION);
	nh += wire_formats[pf]->auth_headers(key ? key->secret : NULL, h + nh, 8);
	for (size_t i = 0; i < prov->nheaders && nh < sizeof(h) / sizeof(h[0]); i++)
		h[nh++] = wire_header(prov->headers[i].name, prov->headers[i].value);
	set = upstream_headers_put(p->w->up, &k, (const char *const *)h, nh);
	for (size_t i = 0; i < nh; i++) {
		sodium_memzero(h[i], strlen(h[i]));
		free(h[i]);
	}
	return set;
}

static void attempt(struct proxy *p)
{
	while (p->next < p->ncands && p->attempts < p->snap->settings.max_attempts) {
		p->tgt = p->cands[p->next++];
		const struct snap_provider *prov = p->tgt->provider;
		enum wire pf = wire_of(prov->type);
		if (p->kind == K_EMBED && pf != WIRE_OPENAI) {
			p->xlate_status = 400;
			set_msg(&p->xlate_err, "embeddings are served only by OpenAI-compatible providers");
			continue;
		}
		if (pf != p->cfmt && !p->canon && !make_canon(p)) {
			p->bad_request = true;
			break; /* the client's request is bad whatever the provider */
		}
		size_t payload_len = 0;
		char *payload = NULL; /* owned; NULL when the client's bytes go as they are */
		const char *body;
		if (pf != p->cfmt) {
			body = payload = translated_payload(p, pf, &payload_len);
			if (!payload)
				continue; /* this provider's format cannot carry it; another may */
		} else if (p->cfmt == WIRE_GEMINI) {
			body = p->raw; /* the model is in the URL: the body goes as sent */
			payload_len = p->raw_len;
		} else {
			body = payload = request_payload(p, &payload_len);
		}
		int64_t now = clock_wall_ms();
		if (!p->ignore_breakers && !breaker_allow(prov, now)) {
			free(payload);
			continue; /* cooling down (or another request holds its one probe) */
		}
		const struct snap_key *key = route_pick_key(p->w->route, p->snap, prov, now);
		if (!key && prov->nkeys > 0)
			key =
			    route_pick_key(p->w->route, p->snap, prov, 0); /* every key cooling: try anyway */
		p->key = key;
		p->attempts++;
		p->attempt_start_ns = clock_mono_ns();
		p->up_status = 0;
		p->mode = M_BUFFER;
		p->buf_overflow = false;
		evbuffer_drain(p->buf, evbuffer_get_length(p->buf));
		/* A fresh stream state per attempt (nothing reached the client yet);
		 * the old decoder is freed by the format that made it. */
		if (p->sdec)
			wire_formats[p->pfmt]->sdec_free(p->sdec);
		if (p->senc)
			wire_formats[p->cfmt]->senc_free(p->senc);
		p->sdec = NULL;
		p->senc = NULL;
		p->senc_done = false;
		p->pfmt = pf;
		p->xlate = pf != p->cfmt;
		if (p->stream) {
			sse_free(p->sse);
			p->sse = sse_new(SSE_EVENT_MAX);
			if (p->xlate || p->cfmt != WIRE_OPENAI)
				p->sdec = wire_formats[pf]->sdec_new();
			if (p->xlate || p->array_stream) {
				struct wire_opts o = {
					.model = p->model,
					.stream = true,
					.json_array = p->array_stream,
					.include_usage = p->client_usage,
					.prompt_estimate = p->prompt_estimate,
				};
				p->senc = wire_formats[p->cfmt]->senc_new(&o);
			}
		}

		char *url =
		    p->kind == K_EMBED
		        ? wire_join_url(prov->base_url, "/embeddings")
		        : wire_formats[pf]->chat_url(prov->base_url, p->tgt->provider_model, p->stream);

		/* Headers: the request id, then ours and the provider's extras (a
		 * set per provider, key and kind of call, made once per worker and
		 * configuration); never the client's own. */
		char rid[REQID_BUF + 16] = "X-Request-Id: ";
		str_append(rid, sizeof(rid), p->r->id);
		const char *rid_line = rid;
		struct upstream_request req = {
			.method = "POST",
			.url = url,
			.headers = &rid_line,
			.nheaders = 1,
			.header_set = header_set(p, prov, key, pf),
			.body = body,
			.body_len = payload_len,
			.connect_timeout_ms = CONNECT_TIMEOUT_MS,
			.first_byte_timeout_ms = prov->timeout_ms > 0 ? prov->timeout_ms : 60000,
			.idle_timeout_ms = IDLE_TIMEOUT_MS,
			.compressed = p->kind == K_EMBED,
			.on_response = on_response,
			.on_data = on_data,
			.on_done = on_done,
			.ud = p,
		};
		p->xfer = body && req.header_set ? upstream_start(p->w->up, &req) : NULL;
		free(url);
		free(payload);
		if (p->xfer)
			return;
		record_attempt(p, 0, "could not start the upstream request");
	}
	if (p->bad_request || (p->attempts == 0 && p->xlate_err)) {
		/* The request cannot be translated, or no candidate could take it. */
		p->outcome = "rejected";
		reply_error(p, p->xlate_status ? p->xlate_status : 400, "invalid_request", p->xlate_err);
		finish(p);
		return;
	}
	p->outcome = "upstream_error";
	reply_error(p, 502, "upstream_unavailable", "no provider could serve the request");
	finish(p);
}

/* ---- the client side ------------------------------------------------ */

static void on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *p = arg;
	if (p->ended || p->client_gone || p->sent_headers)
		return; /* once bytes flow, a failed write tells us instead */
	if (http_req_client_closed(p->r)) {
		on_client_close(p->r, p);
		return;
	}
	struct timeval tv = clock_tv_ms(WATCH_MS);
	evtimer_add(p->watch, &tv);
}

static void on_finish_ev(evutil_socket_t fd, short what, void *arg)
{
	finish(arg);
}

static void on_client_close(struct http_req *r, void *arg)
{
	struct proxy *p = arg;
	p->client_gone = true;
	p->outcome = "client_disconnected";
	p->status = 499; /* the log's convention for "client closed the request" */
	if (p->xfer) {
		record_attempt(p, p->up_status, "client disconnected");
		upstream_cancel(p->xfer); /* the provider sees its connection closed now */
		p->xfer = NULL;
	}
	/* Not from inside evhttp's connection teardown: next loop turn. */
	event_active(p->finish_ev, EV_TIMEOUT, 0);
}

static void free_proxy(struct proxy *p)
{
	if (p->xfer)
		upstream_cancel(p->xfer);
	if (p->heartbeat)
		event_free(p->heartbeat);
	event_free(p->watch);
	event_free(p->finish_ev);
	sse_free(p->sse);
	evbuffer_free(p->buf);
	if (p->out)
		evbuffer_free(p->out);
	packbuf_free(p->capture);
	json_decref(p->body);
	json_decref(p->canon);
	if (p->sdec)
		wire_formats[p->pfmt]->sdec_free(p->sdec);
	if (p->senc)
		wire_formats[p->cfmt]->senc_free(p->senc);
	sb_free(&p->attempts_log);
	free(p->raw);
	free(p->error);
	free(p->xlate_err);
	free(p->cands);
	snapshot_unref(p->snap);
	free(p);
}

/* Worker stopping with this request unanswered. */
static void on_abort(struct http_req *r)
{
	/* r->close_arg is our proxy (set with http_req_on_close). */
	struct proxy *p = r->close_arg;
	if (p)
		free_proxy(p);
}

static void finish(struct proxy *p)
{
	if (p->heartbeat)
		evtimer_del(p->heartbeat);
	evtimer_del(p->watch);
	if (!p->ended) {
		/* Client gone: end r so evhttp frees it. */
		p->ended = true;
		if (p->sent_headers)
			http_stream_end(p->r);
		else
			http_reply(p->r, 499, NULL, NULL);
	}
	struct log_record *rec = log_record_new();
	str_copy(rec->id, sizeof(rec->id), p->rid);
	rec->created_at = clock_wall_ms();
	if (p->ck) {
		rec->client_key_id = p->ck->id;
		rec->client_key_name = log_record_strdup(rec, p->ck->name);
	}
	rec->client_format = log_record_strdup(rec, wire_formats[p->cfmt]->name);
	rec->client_model = log_record_strdup(rec, p->model);
	if (p->tgt) {
		rec->provider_id = p->tgt->provider->id;
		rec->provider_name = log_record_strdup(rec, p->tgt->provider->name);
		rec->provider_model = log_record_strdup(rec, p->tgt->provider_model);
	}
	rec->status_code = p->status;
	rec->outcome = log_record_strdup(rec, p->outcome ? p->outcome : "ok");
	rec->error = p->error; /* the record owns it now */
	p->error = NULL;
	rec->latency_ms = (int64_t)((clock_mono_ns() - p->start_ns) / 1000000u);
	rec->ttft_ms = p->first_token_ns ? (int64_t)((p->first_token_ns - p->start_ns) / 1000000u) : -1;
	rec->prompt_tokens = p->usage.prompt;
	rec->completion_tokens = p->usage.completion;
	rec->total_tokens = p->usage.total >= 0 ? p->usage.total
	                    : (p->usage.prompt >= 0 && p->usage.completion >= 0)
	                        ? p->usage.prompt + p->usage.completion
	                        : -1;
	rec->cached_tokens = p->usage.cached;
	rec->stream = p->stream;
	rec->client_addr = log_record_strdup(rec, p->peer);
	sb_adds(&p->attempts_log, p->attempts_log.len ? "]" : "[]");
	rec->attempts_json = sb_take(&p->attempts_log);
	if (p->capture_max) { /* bodies are kept only when the settings say so */
		/* The client's bytes, cut to the setting, become the row's. */
		size_t keep = p->raw_len < p->capture_max ? p->raw_len : p->capture_max;
		rec->request_body = keep < p->raw_len ? xrealloc(p->raw, keep + 1) : p->raw;
		rec->request_body[keep] = '\0';
		p->raw = NULL;
		rec->response_pieces = p->capture; /* the writer joins it */
		p->capture = NULL;
	}
	logwriter_submit(p->w->srv->app->logw, rec);
	free_proxy(p);
}

/* ---- entry ---------------------------------------------------------- */

/* The value of query parameter `name` (not decoded: client keys need no
 * escapes) into out; false if absent. */
static bool query_param(const char *q, const char *name, char *out, size_t size)
{
	size_t n = strlen(name);
	for (const char *p = q; p; p = strchr(p, '&')) {
		p += *p == '&';
		if (strncmp(p, name, n) == 0 && p[n] == '=') {
			snprintf(out, size, "%.*s", (int)strcspn(p + n + 1, "&"), p + n + 1);
			return true;
		}
	}
	return false;
}

/* The client key from Authorization: Bearer, x-api-key (Anthropic's
 * header), x-goog-api-key or a key= query parameter (Gemini's), looked up. */
/* Client keys this worker thread found recently, per published snapshot:
 * a hit skips the SHA-256 of the presented key (a few microseconds on
 * every call).  Only keys that exist are kept, so unknown keys cannot
 * push them out faster than they are asked for; a slot is compared in
 * constant time over its whole buffer and wiped when it is reused.  A
 * slot is valid only for the snapshot version it was found in, and the
 * request holds that snapshot, so its client_keys cannot go away. */
#define KEY_CACHE_SLOTS 64 /* a power of two */
#define KEY_TOKEN_BUF (TOKEN_BUF + 8)
struct key_cache_slot {
	uint64_t version;              /* 0: empty */
	size_t index;                  /* in the snapshot's client_keys */
	char key_hash[TOKEN_HASH_BUF]; /* that entry's, checked on every hit */
	char token[KEY_TOKEN_BUF];
};
static _Thread_local struct key_cache_slot key_cache[KEY_CACHE_SLOTS];

static struct key_cache_slot *key_cache_slot(const char *token)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *c = (const unsigned char *)token; *c; c++)
		h = (h ^ *c) * 16777619u;
	return &key_cache[h & (KEY_CACHE_SLOTS - 1)];
}

/* token (here and in key_cache_put): a KEY_TOKEN_BUF buffer, zero after
 * the string. */
static const struct snap_client_key *key_cache_find(const struct snapshot *s, const char *token)
{
	struct key_cache_slot *c = key_cache_slot(token);
	if (s->version == 0 || c->version != s->version || c->index >= s->nclient_keys ||
	    sodium_memcmp(c->token, token, KEY_TOKEN_BUF) != 0 ||
	    strcmp(s->client_keys[c->index].key_hash, c->key_hash) != 0)
		return NULL;
	return &s->client_keys[c->index];
}

static void key_cache_put(const struct snapshot *s, const char *token, const struct snap_client_key *k)
{
	if (s->version == 0)
		return;
	struct key_cache_slot *c = key_cache_slot(token);
	sodium_memzero(c->token, sizeof(c->token));
	memcpy(c->token, token, KEY_TOKEN_BUF);
	c->index = (size_t)(k - s->client_keys);
	str_copy(c->key_hash, sizeof(c->key_hash), k->key_hash);
	c->version = s->version;
}

static const struct snap_client_key *client_key(struct http_req *r, const struct snapshot *s)
{
	const char *v = http_req_header(r, "Authorization");
	char token[KEY_TOKEN_BUF] = "";
	if (v && strncasecmp(v, "Bearer ", 7) == 0)
		str_copy(token, sizeof(token), v + 7 + strspn(v + 7, " "));
	else if ((v = http_req_header(r, "x-api-key")) || (v = http_req_header(r, "x-goog-api-key")))
		str_copy(token, sizeof(token), v);
	else if (r->query)
		(void)query_param(r->query, "key", token, sizeof(token));
	if (!token[0])
		return NULL;
	size_t tl = strnlen(token, sizeof(token));
	memset(token + tl, 0, sizeof(token) - tl); /* the cache compares whole buffers */
	const struct snap_client_key *k = key_cache_find(s, token);
	if (!k) {
		char hash[TOKEN_HASH_BUF];
		token_hash(token, hash);
		k = snapshot_client_key(s, hash);
		if (k)
			key_cache_put(s, token, k);
	}
	sodium_memzero(token, sizeof(token));
	return k;
}

/* A request refused before any provider was tried still gets its log
 * row: who asked for what, and why it was refused. */
static void log_rejected(struct worker *w, enum wire cfmt, const char *rid, const char *peer,
                         const struct snap_client_key *ck, const char *model, int status, const char *error)
{
	struct log_record *rec = log_record_new();
	str_copy(rec->id, sizeof(rec->id), rid);
	rec->created_at = clock_wall_ms();
	if (ck) {
		rec->client_key_id = ck->id;
		rec->client_key_name = log_record_strdup(rec, ck->name);
	}
	rec->client_format = log_record_strdup(rec, wire_formats[cfmt]->name);
	rec->client_model = log_record_strdup(rec, model);
	rec->status_code = status;
	rec->outcome = log_record_strdup(rec, "rejected");
	rec->error = xstrdup(error);
	rec->client_addr = log_record_strdup(rec, peer);
	logwriter_submit(w->srv->app->logw, rec);
}

/* Refuse r with an error in the client's format and log it. */
static void reject(struct http_req *r, enum wire cfmt, const struct snap_client_key *ck, const char *model,
                   int status, const char *code, const char *msg)
{
	log_rejected(r->w, cfmt, r->id, http_req_peer(r), ck, model, status, msg);
	client_error(r, cfmt, status, code, msg);
}

/* 401 unless the key exists, is enabled and not expired. */
static const struct snap_client_key *authenticate(struct http_req *r, const struct snapshot *s,
                                                  enum wire cfmt)
{
	const struct snap_client_key *k = client_key(r, s);
	if (!k) {
		reject(r, cfmt, NULL, NULL, 401, "invalid_api_key",
		       "a valid Fusion client key is required (Authorization: Bearer fk-...)");
		return NULL;
	}
	if (!k->enabled || (k->expires_at && k->expires_at <= clock_wall_ms())) {
		reject(r, cfmt, k, NULL, 401, "invalid_api_key",
		       k->enabled ? "this client key is expired" : "this client key is disabled");
		return NULL;
	}
	return k;
}

/* What begin reads from a request body. */
struct quick_fields {
	char model[257];         /* "" when absent or not a string */
	bool stream;             /* "stream": true */
	bool has_stream_options; /* "stream_options" is present */
	bool include_usage;      /* "stream_options": {"include_usage": true} */
	/* Filled by the quick path only (the bytes are p->raw's): */
	bool scanned;                /* the fields below are known */
	size_t end;                  /* offset of the object's closing '}' */
	struct json_span model_span; /* the value of "model" */
};

/* The quick path: true when the body is certainly a valid object whose
 * fields all look as they should (else the caller parses it). */
static bool quick_read(struct http_req *r, enum kind kind, enum wire cfmt, struct quick_fields *q)
{
	struct evbuffer *in = http_req_body(r);
	size_t n = evbuffer_get_length(in);
	const char *s = n ? (const char *)evbuffer_pullup(in, -1) : NULL;
	memset(q, 0, sizeof(*q));
	if (!s || !json_scan_check_object(s, n))
		return false;
	const char *list = kind == K_EMBED ? "input" : cfmt == WIRE_GEMINI ? "contents" : "messages";
	const char *keys[] = { list, "model", "stream", "stream_options" };
	struct json_span sp[4];
	bool has[4];
	size_t end = json_scan_members(s, n, keys, cfmt == WIRE_GEMINI ? 1 : 4, sp, has, NULL);
	if (!has[0] || (kind == K_CHAT && s[sp[0].off] != '['))
		return false;
	q->scanned = true;
	q->end = end;
	if (cfmt == WIRE_GEMINI)
		return true;
	/* A plain string (escapes are jansson's to decode). */
	if (!has[1] || s[sp[1].off] != '"' || sp[1].len < 2 || sp[1].len - 2 >= sizeof(q->model) ||
	    memchr(s + sp[1].off, '\\', sp[1].len))
		return false;
	memcpy(q->model, s + sp[1].off + 1, sp[1].len - 2);
	q->model[sp[1].len - 2] = '\0';
	q->model_span = sp[1];
	if (has[2]) {
		if (sp[2].len == 4 && memcmp(s + sp[2].off, "true", 4) == 0)
			q->stream = true;
		else if (!(sp[2].len == 5 && memcmp(s + sp[2].off, "false", 5) == 0))
			return false;
	}
	if (has[3]) {
		struct json_span iu;
		const char *so = s + sp[3].off;
		q->has_stream_options = true;
		q->include_usage = so[0] == '{' && json_scan_member(so, sp[3].len, "include_usage", &iu) &&
		                   iu.len == 4 && memcmp(so + iu.off, "true", 4) == 0;
	}
	return true;
}

/* The slow path's reading of a parsed body; false when it answered 400. */
static bool doc_fields(struct http_req *r, json_t *body, enum kind kind, enum wire cfmt,
                       const struct snap_client_key *ck, struct quick_fields *q)
{
	memset(q, 0, sizeof(*q));
	if (cfmt != WIRE_GEMINI) {
		json_t *jm = json_object_get(body, "model");
		if (json_is_string(jm))
			str_copy(q->model, sizeof(q->model), json_string_value(jm));
		if (!json_is_string(jm) || json_string_length(jm) == 0 || json_string_length(jm) > 256) {
			reject(r, cfmt, ck, NULL, 400, "invalid_request",
			       "model: required, a non-empty string");
			json_decref(body);
			return false;
		}
	}
	const char *model = cfmt == WIRE_GEMINI ? NULL : q->model;
	const char *list = kind == K_EMBED ? "input" : cfmt == WIRE_GEMINI ? "contents" : "messages";
	json_t *jl = json_object_get(body, list);
	if (kind == K_CHAT ? !json_is_array(jl) : !jl) {
		char msg[64];
		snprintf(msg, sizeof(msg), "%s: required%s", list, kind == K_CHAT ? ", an array" : "");
		reject(r, cfmt, ck, model, 400, "invalid_request", msg);
		json_decref(body);
		return false;
	}
	json_t *js = cfmt == WIRE_GEMINI ? NULL : json_object_get(body, "stream");
	if (js && !json_is_boolean(js)) {
		reject(r, cfmt, ck, model, 400, "invalid_request", "stream: must be true or false");
		json_decref(body);
		return false;
	}
	q->stream = json_is_true(js);
	json_t *so = json_object_get(body, "stream_options");
	q->has_stream_options = so != NULL;
	q->include_usage = json_is_object(so) && json_is_true(json_object_get(so, "include_usage"));
	return true;
}

/* Ask the provider for usage in the document (see begin). */
static void inject_usage(json_t *body)
{
	json_t *so = json_object_get(body, "stream_options");
	if (!json_is_object(so)) {
		so = json_object();
		json_object_set_new(body, "stream_options", so);
	}
	json_object_set_new(so, "include_usage", json_true());
}

/* The request as a document, parsed on first need (the quick path of
 * begin builds none): for re-encoding and for translation. */
static json_t *request_doc(struct proxy *p)
{
	if (!p->body) {
		p->body = json_loadb(p->raw, p->raw_len, JSON_REJECT_DUPLICATES, NULL);
		if (p->body && p->injected_usage)
			inject_usage(p->body);
	}
	return p->body;
}

/*
 * Start a proxied request.  cfmt is the client's API; for Gemini the
 * model and streaming come from the URL (url_model, url_stream) and
 * array_stream says the client asked for a JSON array instead of SSE.
 */
static void begin(struct http_req *r, enum kind kind, enum wire cfmt, const char *url_model, bool url_stream,
                  bool array_stream)
{
	struct worker *w = r->w;
	struct snapshot *snap = w->snap;
	const struct snap_client_key *ck = authenticate(r, snap, cfmt);
	if (!ck)
		return;
	char rid[REQID_BUF], peer[64];
	str_copy(rid, sizeof(rid), r->id);
	str_copy(peer, sizeof(peer), http_req_peer(r));
	/* Most requests are read without building a document: a strict check
	 * and a scan for the few members Fusion looks at.  Anything the quick
	 * path is not sure of (and every error) goes through jansson. */
	struct quick_fields q;
	json_t *body = NULL;
	if (!quick_read(r, kind, cfmt, &q)) {
		body = http_read_json_object(r, 0);
		if (!body) { /* answered already (400 with the parse position) */
			log_rejected(w, cfmt, rid, peer, ck, NULL, 400, "the body is not a JSON object");
			return;
		}
		if (!doc_fields(r, body, kind, cfmt, ck, &q))
			return; /* answered */
	}
	const char *model = cfmt == WIRE_GEMINI ? url_model : q.model;
	if (!model || !*model || strlen(model) > 256) {
		json_decref(body);
		reject(r, cfmt, ck, NULL, 400, "invalid_request", "model: required, a non-empty string");
		return;
	}
	if (!snap_client_key_allows(ck, model)) {
		char msg[320];
		snprintf(msg, sizeof(msg), "this client key may not use model '%s'", model);
		reject(r, cfmt, ck, model, 403, "model_not_allowed", msg);
		json_decref(body);
		return;
	}

	struct proxy *p = xcalloc(1, sizeof(*p));
	p->r = r;
	p->w = w;
	p->snap = snapshot_ref(snap);
	p->kind = kind;
	p->cfmt = cfmt;
	p->pfmt = cfmt;
	p->array_stream = array_stream;
	p->body = body;
	p->ck = ck;
	p->start_ns = r->start_ns;
	str_copy(p->model, sizeof(p->model), model);
	str_copy(p->rid, sizeof(p->rid), r->id);
	str_copy(p->peer, sizeof(p->peer), http_req_peer(r));
	p->stream = kind == K_CHAT && (cfmt == WIRE_GEMINI ? url_stream : q.stream);
	p->capture_max = snap->settings.log_body_enabled ? (size_t)snap->settings.log_body_max_bytes : 0;
	wire_usage_init(&p->usage);
	p->buf = evbuffer_new();
	p->capture = packbuf_new();
	if (p->stream) {                 /* only streams need these */
		p->out = evbuffer_new(); /* p->sse: made by each attempt */
		p->heartbeat = evtimer_new(w->base, on_heartbeat, p);
	}
	p->watch = evtimer_new(w->base, on_watch, p);
	p->finish_ev = event_new(w->base, -1, 0, on_finish_ev, p);
	{
		struct evbuffer *in = http_req_body(r);
		size_t n = evbuffer_get_length(in);
		p->raw = xmalloc(n + 1);
		evbuffer_copyout(in, p->raw, n);
		/* The copy is what every later step reads: let go of the read
		 * chain now rather than for as long as a stream lasts (1 KiB or
		 * more per open stream). */
		evbuffer_drain(in, n);
		p->raw[n] = '\0';
		p->raw_len = n;
		if (q.scanned) { /* the quick path read these bytes already */
			p->raw_end = q.end;
			p->model_span = q.model_span;
			p->splice = cfmt != WIRE_GEMINI; /* names plain and unique: checked */
		} else {
			/* Splice only when every name is written plainly and once, so
			 * the "model" found in the bytes is the one jansson read. */
			size_t members = 0;
			const char *key = "model";
			bool has_model;
			p->raw_end =
			    json_scan_members(p->raw, n, &key, 1, &p->model_span, &has_model, &members);
			p->splice = cfmt != WIRE_GEMINI && has_model && members == json_object_size(body);
		}
		/* A rough count for a client stream that must name prompt tokens
		 * before the provider has (Anthropic's message_start). */
		p->prompt_estimate = (int64_t)(n / 4);
	}
	if (p->stream && cfmt == WIRE_OPENAI) {
		p->client_usage = q.include_usage;
		if (!p->client_usage) {
			/* Count tokens: ask for usage, strip that chunk before the client sees it. */
			if (q.has_stream_options)
				p->splice = false; /* rare: rewrite the client's own stream_options */
			p->injected_usage = true;
			if (body)
				inject_usage(body);
		}
	}
	http_req_on_close(r, on_client_close, p);
	http_req_set_abort(r, on_abort);
	http_stream_on_drained(r, on_drained, p);
	{
		struct timeval tv = clock_tv_ms(WATCH_MS);
		evtimer_add(p->watch, &tv);
	}

	const struct snap_target *cands[ROUTE_MAX_CANDIDATES];
	p->ncands = route_plan(w->route, snap, model, cands, ROUTE_MAX_CANDIDATES, clock_wall_ms());
	if (p->ncands == 0) {
		p->ncands = route_plan(w->route, snap, model, cands, ROUTE_MAX_CANDIDATES, 0);
		p->ignore_breakers = true;
	}
	if (p->ncands == 0) {
		const struct snap_target *t = NULL;
		bool known = snapshot_targets(snap, model, &t) > 0;
		p->outcome = "no_route";
		if (known)
			reply_error(p, 503, "model_unavailable",
			            "no enabled provider with a usable key serves this model right now");
		else
			reply_error(p, 404, "model_not_found", "the model does not exist");
		finish(p);
		return;
	}
	size_t bytes = p->ncands * sizeof(const struct snap_target *);
	p->cands = xmalloc(bytes);
	memcpy(p->cands, cands, bytes);
	attempt(p);
}

void proxy_chat_completions(struct http_req *r)
{
	begin(r, K_CHAT, WIRE_OPENAI, NULL, false, false);
}

void proxy_messages(struct http_req *r)
{
	begin(r, K_CHAT, WIRE_ANTHROPIC, NULL, false, false);
}

void proxy_count_tokens(struct http_req *r)
{
	const struct snap_client_key *ck = authenticate(r, r->w->snap, WIRE_ANTHROPIC);
	if (!ck)
		return;
	client_error(r, WIRE_ANTHROPIC, 501, "not_implemented",
	             "Fusion does not count tokens: POST /v1/messages/count_tokens is not implemented");
}

/* POST /v1beta/models/{model}:generateContent | :streamGenerateContent */
void proxy_gemini(struct http_req *r)
{
	static const char prefix[] = "/v1beta/models/";
	const char *rest =
	    strncmp(r->path, prefix, sizeof(prefix) - 1) == 0 ? r->path + sizeof(prefix) - 1 : "";
	const char *colon = strrchr(rest, ':');
	if (!colon || colon == rest || strchr(rest, '/')) {
		client_error(r, WIRE_GEMINI, 404, "not_found",
		             "expected /v1beta/models/{model}:generateContent or :streamGenerateContent");
		return;
	}
	bool stream;
	if (strcmp(colon + 1, "generateContent") == 0) {
		stream = false;
	} else if (strcmp(colon + 1, "streamGenerateContent") == 0) {
		stream = true;
	} else {
		client_error(r, WIRE_GEMINI, 501, "not_implemented",
		             "only generateContent and streamGenerateContent are served");
		return;
	}
	char model[257];
	size_t n = (size_t)(colon - rest);
	if (n >= sizeof(model)) {
		client_error(r, WIRE_GEMINI, 400, "invalid_request", "model: at most 256 bytes");
		return;
	}
	memcpy(model, rest, n);
	model[n] = '\0';
	char alt[16] = "";
	if (r->query)
		(void)query_param(r->query, "alt", alt, sizeof(alt));
	begin(r, K_CHAT, WIRE_GEMINI, model, stream, stream && strcmp(alt, "sse") != 0);
}

void proxy_embeddings(struct http_req *r)
{
	begin(r, K_EMBED, WIRE_OPENAI, NULL, false, false);
}

static json_t *model_json(const char *id)
{
	return json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created", (json_int_t)0,
	                 "owned_by", "fusion");
}

/* Is some target of this name usable (enabled all the way down)? */
static bool model_listed(const struct snapshot *s, const char *name)
{
	const struct snap_target *t = NULL;
	size_t n = snapshot_targets(s, name, &t);
	for (size_t i = 0; i < n; i++) {
		if (t[i].enabled && t[i].provider->enabled)
			return true;
	}
	return false;
}

void proxy_models(struct http_req *r)
{
	struct snapshot *snap = r->w->snap;
	const struct snap_client_key *ck = authenticate(r, snap, WIRE_OPENAI);
	if (!ck)
		return;
	const char *prefix = "/v1/models/";
	if (strncmp(r->path, prefix, strlen(prefix)) == 0 && r->path[strlen(prefix)]) {
		const char *id = r->path + strlen(prefix);
		if (!model_listed(snap, id) || !snap_client_key_allows(ck, id)) {
			http_reply_error(r, 404, "model_not_found", "the model '%s' does not exist", id);
			return;
		}
		http_reply_json(r, 200, model_json(id));
		return;
	}
	json_t *data = json_array();
	for (size_t i = 0; i < snap->ntargets; i++) {
		const char *name = snap->targets[i].client_name;
		if (i > 0 && strcmp(name, snap->targets[i - 1].client_name) == 0)
			continue; /* targets are sorted by name: one entry per name */
		if (model_listed(snap, name) && snap_client_key_allows(ck, name))
			json_array_append_new(data, model_json(name));
	}
	http_reply_json(r, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}
