/*
 * logs.c — the request log and the dashboard numbers of the admin API.
 *
 *   GET    /api/admin/logs              newest first, filtered, one page
 *   GET    /api/admin/logs/{id}         one row in full: bodies, attempts
 *   DELETE /api/admin/logs?before=T     rows older than T, in batches
 *   GET    /api/admin/stats?hours=N     counts, request totals, providers
 *
 * Data flow: query string ─► parse_filters() checks each parameter and
 * turns it into one SQL condition with bound values (400 naming the
 * parameter otherwise) ─► a count and a page query on request_logs ─►
 * rows as JSON.  The rows are written by the log writer thread
 * (gateway/logwriter.c); here they are only read, and deleted on demand.
 *
 * Bounds, because these queries run on a worker's event loop:
 *  - a page is at most 200 rows, and list rows leave the bodies out (only
 *    their byte lengths), so a page never loads megabytes of bodies;
 *  - `q` (a substring of the bodies, LIKE with %, _ and \ escaped) is at
 *    most 256 bytes and searches only a time window: [from, to), where a
 *    missing `from` means 24 hours before `to` (or now).  Only that
 *    window's rows are read (through the created_at index), whatever the
 *    table holds;
 *  - DELETE works in statements of 5000 rows (each its own transaction,
 *    so the log writer waits milliseconds, not seconds) and for at most
 *    DELETE_BUDGET_MS, then answers with complete:false for the caller to
 *    repeat;
 *  - stats percentiles are computed in C over the latest 10000 latencies
 *    of each provider in the window (exact below that), read through the
 *    (provider_id, created_at) index.
 *
 * SQL: every value is bound; the only SQLite-specific expression is the
 * byte length of a body, length(CAST(x AS BLOB)) (PostgreSQL would say
 * octet_length(x)), kept in BODY_BYTES.
 */
#include <sys/queue.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/admin.h"
#include "admin/crud.h"
#include "app.h"
#include "gateway/logwriter.h"
#include "http/request.h"
#include "http/server.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/reqid.h"

#define PAGE_SIZE_DEFAULT 20
#define PAGE_SIZE_MAX 200
#define Q_MAX 256                        /* bytes of a search string */
#define Q_WINDOW_MS (24 * 3600 * 1000LL) /* default search window */
#define TEXT_FILTER_MAX 256              /* bytes of provider / model / outcome values */
#define DELETE_BATCH 5000                /* rows per DELETE statement */
#define DELETE_BUDGET_MS 5000            /* then answer and let the caller repeat */
#define STATS_HOURS_MAX 8760             /* one year */
#define LATENCY_SAMPLE 10000             /* latest latencies per provider for percentiles */
#define STATS_PROVIDERS_MAX 1000         /* providers in a stats answer */
#define TIME_MAX 253402300799999LL       /* 9999-12-31T23:59:59.999Z, as admin_parse_time */
#define WHERE_MAX 1024                   /* the conditions below fit many times over */
#define PARAMS_MAX 16                    /* bound values of the conditions */
#define BODY_BYTES(col) "length(CAST(" col " AS BLOB))"

/* Columns of a list row: everything but the bodies, whose sizes stand in. */
#define LIST_COLUMNS                                                                                         \
	"id, created_at, client_key_id, client_key_name, client_format, client_model, provider_id, "         \
	"provider_name, provider_model, status_code, outcome, error, latency_ms, ttft_ms, prompt_tokens, "   \
	"completion_tokens, total_tokens, cached_tokens, stream, client_addr, attempts, " BODY_BYTES(        \
	    "request_body") " AS request_body_bytes, " BODY_BYTES("response_body") " AS response_body_bytes"

/* A success for the statistics: the client got a 2xx or 3xx. */
#define OK_STATUS "(status_code >= 200 AND status_code < 400)"

/* ---- small helpers ---------------------------------------------------- */

static bool is(const char *m, const char *want)
{
	return strcmp(m, want) == 0;
}

static void method_not_allowed(struct http_req *r, const char *allow)
{
	http_req_set_header(r, "Allow", allow);
	http_reply_error(r, 405, "method_not_allowed", "method %s is not allowed on %s", r->method, r->path);
}

/* A decimal integer lo..hi, digits only (no sign, no spaces). */
static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	int64_t v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 18 || strspn(s, "0123456789") != n)
		return false;
	for (const char *p = s; *p; p++)
		v = v * 10 + (*p - '0');
	if (v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* Valid UTF-8 (a TEXT parameter must be, and jansson must be able to echo it). */
static bool is_utf8(const char *s)
{
	json_t *j = json_string(s);
	bool ok = j != NULL;

	json_decref(j);
	return ok;
}

/* A query-string time: ISO-8601 or epoch milliseconds (admin_parse_time). */
static bool parse_time_param(const char *s, int64_t *out)
{
	json_t *j = json_string(s);
	bool ok = j && admin_parse_time(j, out) == 0 && *out <= TIME_MAX;

	json_decref(j);
	return ok;
}

/* Parse r's query string into q (the caller clears it).  False after
 * answering 400. */
static bool parse_query(struct http_req *r, struct evkeyvalq *q)
{
	TAILQ_INIT(q);
	if (r->query && evhttp_parse_query_str(r->query, q) != 0) {
		evhttp_clear_headers(q);
		http_reply_error(r, 400, "invalid_query", "malformed query string");
		return false;
	}
	struct evkeyval *a, *b;
	TAILQ_FOREACH (a, q, next) {
		for (b = TAILQ_NEXT(a, next); b; b = TAILQ_NEXT(b, next)) {
			if (strcmp(a->key, b->key) == 0) {
				http_reply_error(r, 400, "invalid_field", "%.64s: given more than once",
				                 a->key);
				evhttp_clear_headers(q);
				return false;
			}
		}
	}
	return true;
}

static json_t *int_or_null(const struct store_rows *rows, size_t i, const char *col)
{
	return store_rows_isnull(rows, i, col) ? json_null() : json_integer(store_rows_int(rows, i, col, 0));
}

static json_t *text_or_null(const struct store_rows *rows, size_t i, const char *col)
{
	const char *t = store_rows_text(rows, i, col);
	return t ? json_string(t) : json_null();
}

/* A row of request_logs as the API shows it, in column order; with the
 * bodies when full. */
static json_t *log_json(const struct store_rows *rows, size_t i, bool full)
{
	enum col_kind { C_TEXT, C_INT, C_TIME, C_BOOL, C_JSON };
	static const struct {
		const char *name;
		enum col_kind kind;
		bool full_only;
	} cols[] = {
		{ "id", C_TEXT, false },
		{ "created_at", C_TIME, false },
		{ "client_key_id", C_INT, false },
		{ "client_key_name", C_TEXT, false },
		{ "client_format", C_TEXT, false },
		{ "client_model", C_TEXT, false },
		{ "provider_id", C_INT, false },
		{ "provider_name", C_TEXT, false },
		{ "provider_model", C_TEXT, false },
		{ "status_code", C_INT, false },
		{ "outcome", C_TEXT, false },
		{ "error", C_TEXT, false },
		{ "latency_ms", C_INT, false },
		{ "ttft_ms", C_INT, false },
		{ "prompt_tokens", C_INT, false },
		{ "completion_tokens", C_INT, false },
		{ "total_tokens", C_INT, false },
		{ "cached_tokens", C_INT, false },
		{ "stream", C_BOOL, false },
		{ "client_addr", C_TEXT, false },
		{ "attempts", C_JSON, false },
		{ "request_body_bytes", C_INT, false },
		{ "response_body_bytes", C_INT, false },
		{ "request_body", C_TEXT, true },
		{ "response_body", C_TEXT, true },
	};
	json_t *o = json_object();

	for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++) {
		const char *c = cols[k].name;
		json_t *v = NULL;
		if (cols[k].full_only && !full)
			continue;
		switch (cols[k].kind) {
		case C_TEXT:
			v = text_or_null(rows, i, c);
			break;
		case C_INT:
			v = int_or_null(rows, i, c);
			break;
		case C_TIME:
			v = admin_time_json(store_rows_int(rows, i, c, 0));
			break;
		case C_BOOL:
			v = json_boolean(store_rows_int(rows, i, c, 0) != 0);
			break;
		case C_JSON: {
			/* The proxy writes a JSON array; anything else is shown as it is. */
			const char *t = store_rows_text(rows, i, c);
			v = t ? json_loads(t, JSON_DECODE_ANY, NULL) : json_null();
			if (!v)
				v = json_string(t);
			break;
		}
		}
		json_object_set_new(o, c, v ? v : json_null());
	}
	return o;
}

/* ---- filters ---------------------------------------------------------- */

/* The WHERE clause a list's query string asks for, with its values.
 * Values borrow the parsed query string, except pattern (owned). */
struct log_filter {
	char where[WHERE_MAX];
	size_t wl;
	struct store_value p[PARAMS_MAX];
	size_t np;
	char *pattern; /* owned: the escaped LIKE pattern of q */
	int64_t page, page_size;
};

/* Append " WHERE cond" or " AND cond" with its n values. */
static void add_cond(struct log_filter *f, const char *cond, const struct store_value *v, size_t n)
{
	int k =
	    snprintf(f->where + f->wl, sizeof(f->where) - f->wl, "%s %s", f->wl ? " AND" : " WHERE", cond);
	if (k > 0)
		f->wl += (size_t)k;
	for (size_t i = 0; i < n && f->np < PARAMS_MAX; i++)
		f->p[f->np++] = v[i];
}

/* "%" + s with %, _ and \ escaped by \ + "%": a LIKE pattern for "contains s". */
static char *like_pattern(const char *s)
{
	size_t n = strlen(s), o = 0;
	char *out = xmalloc(2 * n + 3);

	out[o++] = '%';
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' || s[i] == '_' || s[i] == '\\')
			out[o++] = '\\';
		out[o++] = s[i];
	}
	out[o++] = '%';
	out[o] = '\0';
	return out;
}

/*
 * One text filter value: valid UTF-8, one line, 1..TEXT_FILTER_MAX bytes.
 * Sets *msg to the reason when not.
 */
static bool text_filter_ok(const char *v, const char **msg)
{
	size_t n = strlen(v);
	if (n > TEXT_FILTER_MAX || !is_utf8(v) || !crud_is_line(v, n)) {
		*msg = "must be a one-line string of at most 256 bytes";
		return false;
	}
	return true;
}

/*
 * Turn the list's query string into f.  Empty values mean "not given"
 * (a form that sends every field).  False after answering 400.
 */
static bool parse_filters(struct http_req *r, struct evkeyvalq *q, struct log_filter *f)
{
	int64_t from = -1, to = -1;
	const char *search = NULL, *bad = NULL, *why = NULL;
	struct evkeyval *kv;

	f->page = 1;
	f->page_size = PAGE_SIZE_DEFAULT;
	TAILQ_FOREACH (kv, q, next) {
		const char *k = kv->key, *v = kv->value;
		struct store_value sv[2];
		int64_t x;

		if (is(k, "page")) {
			if (!parse_int(v, 1, 1000000000, &f->page)) {
				bad = k;
				why = "must be an integer of at least 1";
				break;
			}
			continue;
		}
		if (is(k, "page_size")) {
			if (!parse_int(v, 1, PAGE_SIZE_MAX, &f->page_size)) {
				bad = k;
				why = "must be an integer from 1 to 200";
				break;
			}
			continue;
		}
		if (!is(k, "provider") && !is(k, "model") && !is(k, "status") && !is(k, "key_id") &&
		    !is(k, "outcome") && !is(k, "from") && !is(k, "to") && !is(k, "q")) {
			bad = k;
			why = "not a filter of request logs (filters: provider, model, status, key_id, "
			      "outcome, "
			      "from, to, q)";
			break;
		}
		if (!*v)
			continue;
		if (is(k, "provider")) {
			/* A provider's id, or its name as the log row recorded it. */
			if (parse_int(v, 1, INT64_MAX / 10, &x)) {
				sv[0] = sv_int(x);
				add_cond(f, "provider_id = ?", sv, 1);
			} else if (text_filter_ok(v, &why)) {
				sv[0] = sv_text(v);
				add_cond(f, "provider_name = ?", sv, 1);
			} else {
				bad = k;
				break;
			}
		} else if (is(k, "model") || is(k, "outcome")) {
			if (!text_filter_ok(v, &why)) {
				bad = k;
				break;
			}
			sv[0] = sv_text(v);
			add_cond(f, is(k, "model") ? "client_model = ?" : "outcome = ?", sv, 1);
		} else if (is(k, "status")) {
			/* 429, or a class: 4xx (also 4XX). */
			if (strlen(v) == 3 && v[0] >= '1' && v[0] <= '5' && strcasecmp(v + 1, "xx") == 0) {
				sv[0] = sv_int((v[0] - '0') * 100);
				sv[1] = sv_int((v[0] - '0') * 100 + 100);
				add_cond(f, "status_code >= ? AND status_code < ?", sv, 2);
			} else if (parse_int(v, 100, 599, &x)) {
				sv[0] = sv_int(x);
				add_cond(f, "status_code = ?", sv, 1);
			} else {
				bad = k;
				why = "must be a status code from 100 to 599 or a class 1xx to 5xx";
				break;
			}
		} else if (is(k, "key_id")) {
			if (!parse_int(v, 1, INT64_MAX / 10, &x)) {
				bad = k;
				why = "must be a positive integer";
				break;
			}
			sv[0] = sv_int(x);
			add_cond(f, "client_key_id = ?", sv, 1);
		} else if (is(k, "from") || is(k, "to")) {
			if (!parse_time_param(v, is(k, "from") ? &from : &to)) {
				bad = k;
				why = "must be an ISO-8601 time (e.g. 2027-01-31T00:00:00Z) or epoch "
				      "milliseconds";
				break;
			}
		} else { /* q */
			if (strlen(v) > Q_MAX || !is_utf8(v)) {
				bad = k;
				why = "must be valid UTF-8 of at most 256 bytes";
				break;
			}
			search = v;
		}
	}
	if (!bad && from >= 0 && to >= 0 && from > to) {
		bad = "from";
		why = "must not be later than to";
	}
	if (bad) {
		http_reply_error(r, 400, "invalid_field", "%.64s: %s", bad, why);
		return false;
	}
	/* A search reads the bodies of every row in its window: bound it. */
	if (search && from < 0) {
		int64_t end = to >= 0 ? to : clock_wall_ms();
		from = end > Q_WINDOW_MS ? end - Q_WINDOW_MS : 0;
	}
	struct store_value sv[2];
	if (from >= 0) {
		sv[0] = sv_int(from);
		add_cond(f, "created_at >= ?", sv, 1);
	}
	if (to >= 0) {
		sv[0] = sv_int(to);
		add_cond(f, "created_at < ?", sv, 1);
	}
	if (search) {
		f->pattern = like_pattern(search);
		sv[0] = sv_text(f->pattern);
		sv[1] = sv_text(f->pattern);
		add_cond(f, "(request_body LIKE ? ESCAPE '\\' OR response_body LIKE ? ESCAPE '\\')", sv, 2);
	}
	return true;
}

/* ---- handlers --------------------------------------------------------- */

static void logs_list(struct http_req *r)
{
	struct store *st = r->w->store;
	struct log_filter f = { .wl = 0 };
	struct evkeyvalq q;
	struct store_rows *rows = NULL;
	char sql[WHERE_MAX + 512];
	int64_t total = 0;
	int rc;

	if (!parse_query(r, &q))
		return;
	if (!parse_filters(r, &q, &f))
		goto out;

	snprintf(sql, sizeof(sql), "SELECT count(*) AS n FROM request_logs%s", f.where);
	rc = store_query(st, sql, f.p, f.np, &rows);
	if (rc) {
		admin_reply_store_error(r, st, rc, "request log");
		goto out;
	}
	total = store_rows_int(rows, 0, "n", 0);
	store_rows_free(rows);
	rows = NULL;

	/* created_at alone: SQLite walks the created_at index backwards (ties
	 * in rowid order) instead of sorting every matching row. */
	snprintf(sql, sizeof(sql),
	         "SELECT " LIST_COLUMNS " FROM request_logs%s ORDER BY created_at DESC LIMIT ? OFFSET ?",
	         f.where);
	f.p[f.np] = sv_int(f.page_size);
	f.p[f.np + 1] = sv_int((f.page - 1) * f.page_size);
	rc = store_query(st, sql, f.p, f.np + 2, &rows);
	if (rc) {
		admin_reply_store_error(r, st, rc, "request log");
		goto out;
	}
	json_t *data = json_array();
	for (size_t i = 0; i < store_rows_count(rows); i++)
		json_array_append_new(data, log_json(rows, i, false));
	http_reply_json(r, 200,
	                json_pack("{s:o, s:{s:I, s:I, s:I}}", "data", data, "pagination", "page",
	                          (json_int_t)f.page, "page_size", (json_int_t)f.page_size, "total",
	                          (json_int_t)total));
out:
	store_rows_free(rows);
	free(f.pattern);
	evhttp_clear_headers(&q);
}

static void logs_get(struct http_req *r, const char *id)
{
	struct store *st = r->w->store;
	struct store_rows *rows = NULL;
	struct store_value p[] = { sv_text(id) };
	int rc = store_query(st,
	                     "SELECT *, " BODY_BYTES("request_body") " AS request_body_bytes, " BODY_BYTES(
	                         "response_body") " AS response_body_bytes FROM request_logs WHERE id = ?",
	                     p, 1, &rows);
	if (rc) {
		admin_reply_store_error(r, st, rc, "request log");
		return;
	}
	if (store_rows_count(rows) == 0) {
		store_rows_free(rows);
		http_reply_error(r, 404, "not_found", "no request log with id %s", id);
		return;
	}
	json_t *o = log_json(rows, 0, true);
	store_rows_free(rows);
	http_reply_json(r, 200, o);
}

static void logs_delete(struct http_req *r, const struct admin_user *u)
{
	struct store *st = r->w->store;
	struct evkeyvalq q;
	struct evkeyval *kv;
	int64_t before = -1, deleted = 0;
	const char *bad = NULL;
	bool complete = false;
	int rc = STORE_OK;

	if (!parse_query(r, &q))
		return;
	TAILQ_FOREACH (kv, &q, next) {
		if (!is(kv->key, "before")) {
			bad = kv->key;
			break;
		}
		if (!parse_time_param(kv->value, &before)) {
			evhttp_clear_headers(&q);
			http_reply_error(
			    r, 400, "invalid_field",
			    "before: must be an ISO-8601 time (e.g. 2027-01-31T00:00:00Z) or epoch "
			    "milliseconds");
			return;
		}
	}
	if (bad) {
		http_reply_error(r, 400, "invalid_field",
		                 "%.64s: not a parameter of DELETE (it takes before)", bad);
		evhttp_clear_headers(&q);
		return;
	}
	evhttp_clear_headers(&q);
	if (before < 0) {
		http_reply_error(r, 400, "invalid_field",
		                 "before: is required (rows older than it are deleted)");
		return;
	}

	/* Batches, each its own short transaction: the log writer and other
	 * writers get the lock between them. */
	uint64_t deadline = clock_mono_ns() + (uint64_t)DELETE_BUDGET_MS * 1000000u;
	for (;;) {
		struct store_value p[] = { sv_int(before), sv_int(DELETE_BATCH) };
		int64_t n = 0;
		rc = store_exec(st,
		                "DELETE FROM request_logs WHERE id IN (SELECT id FROM request_logs WHERE "
		                "created_at < ? ORDER BY created_at LIMIT ?)",
		                p, 2, &n);
		if (rc)
			break;
		deleted += n;
		if (n < DELETE_BATCH) {
			complete = true;
			break;
		}
		if (clock_mono_ns() >= deadline)
			break;
	}
	char when[40];
	admin_format_time(before, when, sizeof(when));
	if (deleted > 0 || rc)
		log_info(r->id, "deleted %lld request logs older than %s by %s%s", (long long)deleted, when,
		         u->username,
		         rc         ? " (stopped by a database error)"
		         : complete ? ""
		                    : " (time budget used up)");
	if (rc) {
		admin_reply_store_error(r, st, rc, "request log");
		return;
	}
	http_reply_json(r, 200,
	                json_pack("{s:I, s:s, s:b}", "deleted", (json_int_t)deleted, "before", when,
	                          "complete", complete));
}

void admin_logs_route(struct http_req *r, const struct admin_user *u, const char *id, size_t idlen)
{
	bool read = is(r->method, "GET") || is(r->method, "HEAD");

	if (id) {
		char buf[REQID_BUF];
		if (!read) {
			method_not_allowed(r, "GET, HEAD");
			return;
		}
		/* Request ids are 1..64 bytes of [A-Za-z0-9._:-] (reqid.h). */
		if (idlen == 0 || idlen > REQID_MAX) {
			http_reply_error(r, 404, "not_found", "no request log with that id");
			return;
		}
		memcpy(buf, id, idlen);
		buf[idlen] = '\0';
		if (!reqid_is_sane(buf)) {
			http_reply_error(r, 404, "not_found", "no request log with that id");
			return;
		}
		logs_get(r, buf);
		return;
	}
	if (read) {
		logs_list(r);
	} else if (is(r->method, "DELETE")) {
		if (!u->is_admin)
			http_reply_error(r, 403, "forbidden", "this user may only read the configuration");
		else
			logs_delete(r, u);
	} else {
		method_not_allowed(r, "GET, HEAD, DELETE");
	}
}

/* ---- statistics -------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least pct % of the values at
 * or below it; v sorted ascending, n ≥ 1. */
static int64_t percentile(const int64_t *v, size_t n, int pct)
{
	size_t rank = ((size_t)pct * n + 99) / 100; /* ceil(pct/100 * n), 1-based */
	return v[rank ? rank - 1 : 0];
}

/* p50 and p95 latency of one provider over the window's latest
 * LATENCY_SAMPLE rows that have a latency; null when there is none. */
static int latency_percentiles(struct store *st, int64_t provider_id, int64_t since, json_t *out)
{
	struct store_value p[] = { sv_int(provider_id), sv_int(since), sv_int(LATENCY_SAMPLE) };
	struct store_rows *rows = NULL;
	int rc = store_query(st,
	                     "SELECT latency_ms FROM request_logs WHERE provider_id = ? AND created_at >= ? "
	                     "AND latency_ms IS NOT NULL ORDER BY created_at DESC LIMIT ?",
	                     p, 3, &rows);
	if (rc)
		return rc;
	size_t n = store_rows_count(rows);
	if (n == 0) {
		json_object_set_new(out, "p50_latency_ms", json_null());
		json_object_set_new(out, "p95_latency_ms", json_null());
		store_rows_free(rows);
		return STORE_OK;
	}
	int64_t *v = xmalloc(n * sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = store_rows_int(rows, i, "latency_ms", 0);
	store_rows_free(rows);
	qsort(v, n, sizeof(*v), cmp_i64);
	json_object_set_new(out, "p50_latency_ms", json_integer(percentile(v, n, 50)));
	json_object_set_new(out, "p95_latency_ms", json_integer(percentile(v, n, 95)));
	free(v);
	return STORE_OK;
}

static json_t *real_or_null(const struct store_rows *rows, const char *col)
{
	if (store_rows_isnull(rows, 0, col))
		return json_null();
	double d = store_rows_real(rows, 0, col, 0);
	return json_real(round(d * 100) / 100); /* two decimals are plenty for milliseconds */
}

static json_t *count_pair(const struct store_rows *rows, const char *total, const char *enabled)
{
	return json_pack("{s:I, s:I}", "total", (json_int_t)store_rows_int(rows, 0, total, 0), "enabled",
	                 (json_int_t)store_rows_int(rows, 0, enabled, 0));
}

/* The configuration's size. */
static int stats_totals(struct store *st, json_t *out)
{
	struct store_rows *rows = NULL;
	int rc = store_query(st,
	                     "SELECT (SELECT count(*) FROM providers) AS providers, "
	                     "(SELECT count(*) FROM providers WHERE enabled = 1) AS providers_enabled, "
	                     "(SELECT count(*) FROM models) AS models, "
	                     "(SELECT count(*) FROM models WHERE enabled = 1) AS models_enabled, "
	                     "(SELECT count(*) FROM model_mappings) AS mappings, "
	                     "(SELECT count(*) FROM model_mappings WHERE enabled = 1) AS mappings_enabled, "
	                     "(SELECT count(*) FROM client_keys) AS client_keys, "
	                     "(SELECT count(*) FROM client_keys WHERE enabled = 1) AS client_keys_enabled",
	                     NULL, 0, &rows);
	if (rc)
		return rc;
	json_object_set_new(out, "totals",
	                    json_pack("{s:o, s:o, s:o, s:o}", "providers",
	                              count_pair(rows, "providers", "providers_enabled"), "models",
	                              count_pair(rows, "models", "models_enabled"), "model_mappings",
	                              count_pair(rows, "mappings", "mappings_enabled"), "client_keys",
	                              count_pair(rows, "client_keys", "client_keys_enabled")));
	store_rows_free(rows);
	return STORE_OK;
}

/* Every request of the window, summed. */
static int stats_requests(struct store *st, int64_t since, json_t *out)
{
	struct store_value p[] = { sv_int(since) };
	struct store_rows *rows = NULL;
	int rc =
	    store_query(st,
	                "SELECT count(*) AS total, SUM(CASE WHEN " OK_STATUS " THEN 1 ELSE 0 END) AS ok, "
	                "SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens, "
	                "SUM(total_tokens) AS total_tokens, AVG(latency_ms) AS avg_latency_ms, "
	                "AVG(ttft_ms) AS avg_ttft_ms FROM request_logs WHERE created_at >= ?",
	                p, 1, &rows);
	if (rc)
		return rc;
	int64_t total = store_rows_int(rows, 0, "total", 0), ok = store_rows_int(rows, 0, "ok", 0);
	json_t *o = json_object();
	json_object_set_new(o, "total", json_integer(total));
	json_object_set_new(o, "ok", json_integer(ok));
	json_object_set_new(o, "errors", json_integer(total - ok));
	json_object_set_new(o, "success_rate",
	                    total ? json_real(round((double)ok / (double)total * 10000) / 10000)
	                          : json_null());
	json_object_set_new(o, "prompt_tokens", json_integer(store_rows_int(rows, 0, "prompt_tokens", 0)));
	json_object_set_new(o, "completion_tokens",
	                    json_integer(store_rows_int(rows, 0, "completion_tokens", 0)));
	json_object_set_new(o, "total_tokens", json_integer(store_rows_int(rows, 0, "total_tokens", 0)));
	json_object_set_new(o, "avg_latency_ms", real_or_null(rows, "avg_latency_ms"));
	json_object_set_new(o, "avg_ttft_ms", real_or_null(rows, "avg_ttft_ms"));
	store_rows_free(rows);
	json_object_set_new(out, "requests", o);
	return STORE_OK;
}

/* One provider's entry: conf/ci its providers row (NULL for a provider
 * that is gone), used/ui its window's aggregate (ui out of range: none). */
static int provider_entry(struct store *st, int64_t id, const struct store_rows *conf, size_t ci,
                          const struct store_rows *used, size_t ui, int64_t since, json_t *list)
{
	json_t *o = json_object();
	int rc = STORE_OK;

	json_object_set_new(o, "id", json_integer(id));
	json_object_set_new(o, "name",
	                    conf ? text_or_null(conf, ci, "name") : text_or_null(used, ui, "provider_name"));
	json_object_set_new(o, "requests", json_integer(store_rows_int(used, ui, "requests", 0)));
	json_object_set_new(o, "errors", json_integer(store_rows_int(used, ui, "errors", 0)));
	json_object_set_new(o, "tokens", json_integer(store_rows_int(used, ui, "tokens", 0)));
	if (ui < store_rows_count(used)) {
		rc = latency_percentiles(st, id, since, o);
	} else {
		json_object_set_new(o, "p50_latency_ms", json_null());
		json_object_set_new(o, "p95_latency_ms", json_null());
	}
	json_object_set_new(o, "health_status", conf ? text_or_null(conf, ci, "health_status") : json_null());
	json_object_set_new(o, "latency_ms", conf ? int_or_null(conf, ci, "latency_ms") : json_null());
	json_object_set_new(o, "deleted", json_boolean(conf == NULL));
	json_array_append_new(list, o);
	return rc;
}

/*
 * One entry per configured provider (id order), then the providers that
 * are gone but still have rows in the window (health fields null,
 * deleted: true).  At most STATS_PROVIDERS_MAX of each.
 */
static int stats_providers(struct store *st, int64_t since, json_t *out)
{
	struct store_value lim[] = { sv_int(STATS_PROVIDERS_MAX) };
	struct store_value p[] = { sv_int(since), sv_int(STATS_PROVIDERS_MAX) };
	struct store_rows *conf = NULL, *used = NULL;
	json_t *list = json_array();
	bool *seen = NULL;
	int rc =
	    store_query(st, "SELECT id, name, health_status, latency_ms FROM providers ORDER BY id LIMIT ?",
	                lim, 1, &conf);
	if (rc)
		goto out;
	rc = store_query(st,
	                 "SELECT provider_id, MAX(provider_name) AS provider_name, count(*) AS requests, "
	                 "SUM(CASE WHEN " OK_STATUS " THEN 0 ELSE 1 END) AS errors, "
	                 "SUM(total_tokens) AS tokens FROM request_logs WHERE created_at >= ? AND "
	                 "provider_id IS NOT NULL GROUP BY provider_id ORDER BY provider_id LIMIT ?",
	                 p, 2, &used);
	if (rc)
		goto out;
	size_t nconf = store_rows_count(conf), nused = store_rows_count(used);
	seen = xcalloc(nused + 1, sizeof(bool));
	for (size_t i = 0; !rc && i < nconf; i++) {
		int64_t id = store_rows_int(conf, i, "id", 0);
		size_t u = 0;
		while (u < nused && store_rows_int(used, u, "provider_id", 0) != id)
			u++;
		seen[u] = true; /* seen[nused] is a spare for "none" */
		rc = provider_entry(st, id, conf, i, used, u, since, list);
	}
	for (size_t u = 0; !rc && u < nused; u++) {
		if (!seen[u])
			rc = provider_entry(st, store_rows_int(used, u, "provider_id", 0), NULL, 0, used, u,
			                    since, list);
	}
out:
	free(seen);
	store_rows_free(conf);
	store_rows_free(used);
	if (rc) {
		json_decref(list);
		return rc;
	}
	json_object_set_new(out, "providers", list);
	return STORE_OK;
}

static void stats_get(struct http_req *r)
{
	struct store *st = r->w->store;
	struct evkeyvalq q;
	struct evkeyval *kv;
	int64_t hours = 24;
	int rc;

	if (!parse_query(r, &q))
		return;
	TAILQ_FOREACH (kv, &q, next) {
		const char *bad = NULL;
		if (!is(kv->key, "hours"))
			bad = "not a parameter of stats (it takes hours)";
		else if (!parse_int(kv->value, 1, STATS_HOURS_MAX, &hours))
			bad = "must be an integer from 1 to 8760";
		if (bad) {
			http_reply_error(r, 400, "invalid_field", "%.64s: %s", kv->key, bad);
			evhttp_clear_headers(&q);
			return;
		}
	}
	evhttp_clear_headers(&q);

	int64_t now = clock_wall_ms(), since = now - hours * 3600000;
	json_t *o = json_object();
	json_object_set_new(o, "window_hours", json_integer(hours));
	json_object_set_new(o, "since", admin_time_json(since));
	rc = stats_totals(st, o);
	if (!rc)
		rc = stats_requests(st, since, o);
	if (!rc)
		rc = stats_providers(st, since, o);
	if (rc) {
		json_decref(o);
		admin_reply_store_error(r, st, rc, "statistics");
		return;
	}
	struct logwriter_stats ls;
	logwriter_stats(r->w->srv->app->logw, &ls); /* zeros when logging is off */
	json_object_set_new(o, "log_writer",
	                    json_pack("{s:I, s:I, s:I}", "written", (json_int_t)ls.written, "dropped",
	                              (json_int_t)ls.dropped, "queued", (json_int_t)ls.queued));
	http_reply_json(r, 200, o);
}

void admin_stats_route(struct http_req *r, const struct admin_user *u)
{
	if (is(r->method, "GET") || is(r->method, "HEAD"))
		stats_get(r);
	else
		method_not_allowed(r, "GET, HEAD");
}
