/*
 * crud.c — see crud.h.  SQL here is built only from the resource tables
 * (trusted, compile-time names); every value is a bound parameter.
 */
#include "admin/crud.h"

#include <sys/queue.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/body.h"
#include "http/request.h"
#include "http/server.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"

#define SQL_MAX 2048
#define PAGE_SIZE_DEFAULT 20
#define PAGE_SIZE_MAX 200

void assigns_add(struct assigns *as, const char *col, struct store_value v, void *owned)
{
	if (as->n >= ASSIGN_MAX) { /* the resource tables are far below this */
		free(owned);
		return;
	}
	as->a[as->n++] = (struct assign){ .col = col, .v = v, .owned = owned };
}

bool assigns_has(const struct assigns *as, const char *col)
{
	for (size_t i = 0; i < as->n; i++) {
		if (strcmp(as->a[i].col, col) == 0)
			return true;
	}
	return false;
}

static void assigns_free(struct assigns *as)
{
	for (size_t i = 0; i < as->n; i++)
		free(as->a[i].owned);
	as->n = 0;
}

int crud_fail(struct crud_ctx *c, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err_msg, sizeof(c->err_msg), fmt, ap);
	va_end(ap);
	c->err_status = status;
	return -1;
}

/* U+0080..U+009F (C1 controls) are 0xC2 0x80..0x9F in UTF-8. */
static bool is_c1(const char *s, size_t len, size_t i)
{
	return (unsigned char)s[i] == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
	       (unsigned char)s[i + 1] <= 0x9F;
}

bool crud_is_line(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f || is_c1(s, len, i))
			return false;
	}
	return true;
}

static bool is_text(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch < 0x20 && ch != '\n' && ch != '\r' && ch != '\t') || ch == 0x7f || is_c1(s, len, i))
			return false;
	}
	return true;
}

int crud_exists(struct store *st, const char *table, int64_t id)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT 1 AS x FROM %s WHERE id = ?", table);
	struct store_value p[] = { sv_int(id) };
	struct store_rows *rows = NULL;
	if (store_query(st, sql, p, 1, &rows))
		return -1;
	int n = store_rows_count(rows) > 0;
	store_rows_free(rows);
	return n;
}

static void reply_ctx_error(struct crud_ctx *c)
{
	int status = c->err_status ? c->err_status : 400;
	const char *code = status == 404   ? "not_found"
	                   : status == 409 ? "conflict"
	                   : status >= 500 ? "internal_error"
	                                   : "invalid_field";
	http_reply_error(c->r, status, code, "%s", c->err_msg);
}

/* ---- values in and out --------------------------------------------- */

/* Validate one input value for field f and turn it into a column value. */
static int take_value(struct crud_ctx *c, const struct field *f, json_t *v, struct assigns *as)
{
	if (json_is_null(v)) {
		if (!(f->flags & F_NULL))
			return crud_fail(c, 400, "%s: must not be null", f->name);
		assigns_add(as, f->name, sv_null(), NULL);
		return 0;
	}
	switch (f->kind) {
	case K_STR:
	case K_TEXT:
	case K_ENUM: {
		if (!json_is_string(v))
			return crud_fail(c, 400, "%s: must be a string", f->name);
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		if (strlen(s) != n)
			return crud_fail(c, 400, "%s: must not contain NUL characters", f->name);
		if (f->kind == K_ENUM) {
			for (const char *const *ch = f->choices; *ch; ch++) {
				if (strcmp(*ch, s) == 0) {
					assigns_add(as, f->name, sv_text(*ch), NULL);
					return 0;
				}
			}
			char list[256] = "";
			size_t len = 0;
			for (const char *const *ch = f->choices; *ch && len < sizeof(list) - 1; ch++) {
				int k =
				    snprintf(list + len, sizeof(list) - len, "%s%s", len ? ", " : "", *ch);
				if (k > 0)
					len += (size_t)k;
			}
			return crud_fail(c, 400, "%s: '%.64s' is not valid; valid values are: %s", f->name, s,
			                 list);
		}
		if ((int64_t)n < f->min || (int64_t)n > f->max)
			return crud_fail(c, 400, "%s: must be %lld to %lld bytes long", f->name,
			                 (long long)f->min, (long long)f->max);
		if (f->kind == K_STR ? !crud_is_line(s, n) : !is_text(s, n))
			return crud_fail(c, 400, "%s: must not contain control characters", f->name);
		assigns_add(as, f->name, sv_text(s), NULL);
		return 0;
	}
	case K_INT:
	case K_REF: {
		if (!json_is_integer(v))
			return crud_fail(c, 400, "%s: must be an integer", f->name);
		int64_t x = json_integer_value(v);
		if (f->kind == K_REF) {
			int e = x > 0 ? crud_exists(c->st, f->ref_table, x) : 0;
			if (e < 0)
				return crud_fail(c, 500, "%s: lookup failed", f->name);
			if (!e)
				return crud_fail(c, 400, "%s: %lld does not exist in %s", f->name,
				                 (long long)x, f->ref_table);
		} else if (x < f->min || x > f->max) {
			return crud_fail(c, 400, "%s: must be an integer from %lld to %lld", f->name,
			                 (long long)f->min, (long long)f->max);
		}
		assigns_add(as, f->name, sv_int(x), NULL);
		return 0;
	}
	case K_BOOL:
		if (!json_is_boolean(v))
			return crud_fail(c, 400, "%s: must be true or false", f->name);
		assigns_add(as, f->name, sv_int(json_is_true(v) ? 1 : 0), NULL);
		return 0;
	case K_REAL: {
		if (!json_is_number(v))
			return crud_fail(c, 400, "%s: must be a number", f->name);
		double d = json_number_value(v);
		if (d < (double)f->min || d > 1e12)
			return crud_fail(c, 400, "%s: must be a number from %lld to 1e12", f->name,
			                 (long long)f->min);
		assigns_add(as, f->name, sv_real(d), NULL);
		return 0;
	}
	case K_TIME: {
		int64_t ms;
		if (admin_parse_time(v, &ms))
			return crud_fail(c, 400,
			                 "%s: must be an ISO-8601 time (e.g. 2027-01-31T00:00:00Z) or epoch "
			                 "milliseconds",
			                 f->name);
		assigns_add(as, f->name, sv_int(ms), NULL);
		return 0;
	}
	case K_STRLIST: {
		if (!json_is_array(v))
			return crud_fail(c, 400, "%s: must be an array of strings", f->name);
		if ((int64_t)json_array_size(v) > f->max)
			return crud_fail(c, 400, "%s: at most %lld entries", f->name, (long long)f->max);
		size_t i;
		json_t *e;
		json_array_foreach (v, i, e) {
			if (!json_is_string(e) || json_string_length(e) == 0 || json_string_length(e) > 256 ||
			    strlen(json_string_value(e)) != json_string_length(e) ||
			    !crud_is_line(json_string_value(e), json_string_length(e)))
				return crud_fail(
				    c, 400,
				    "%s[%zu]: must be a non-empty one-line string of at most 256 bytes",
				    f->name, i);
		}
		char *txt = json_dumps(v, JSON_COMPACT);
		if (!txt)
			return crud_fail(c, 500, "%s: could not encode", f->name);
		assigns_add(as, f->name, sv_text(txt), txt);
		return 0;
	}
	}
	return crud_fail(c, 500, "%s: unknown field kind", f->name);
}

static const struct field *find_field(const struct resource *res, const char *name)
{
	for (size_t i = 0; i < res->nfields; i++) {
		if (strcmp(res->fields[i].name, name) == 0)
			return &res->fields[i];
	}
	return NULL;
}

/* Validate a whole input object into assignments. */
static int take_input(struct crud_ctx *c, const struct resource *res, json_t *in, bool create,
                      struct assigns *as)
{
	const char *key;
	json_t *v;
	json_object_foreach (in, key, v) {
		if (strcmp(key, "id") == 0 || strcmp(key, "created_at") == 0 ||
		    strcmp(key, "updated_at") == 0)
			return crud_fail(c, 400, "%s: is read-only", key);
		const struct field *f = find_field(res, key);
		if (!f || (f->flags & F_HIDDEN))
			return crud_fail(c, 400, "%.64s: unknown field for a %s", key, res->name);
		if (res->parent_col && strcmp(key, res->parent_col) == 0)
			return crud_fail(c, 400, "%s: is given by the URL", key);
		if (f->flags & F_RO)
			return crud_fail(c, 400, "%s: is read-only", key);
		if ((f->flags & F_CREATE) && !create)
			return crud_fail(c, 400, "%s: can only be set when creating a %s", key, res->name);
		if (f->flags & F_VIRTUAL)
			continue; /* the prepare hook reads it */
		if (take_value(c, f, v, as))
			return -1;
	}
	if (create) {
		for (size_t i = 0; i < res->nfields; i++) {
			const struct field *f = &res->fields[i];
			if ((f->flags & F_REQ) && !(f->flags & F_VIRTUAL) && !json_object_get(in, f->name) &&
			    !(res->parent_col && strcmp(f->name, res->parent_col) == 0))
				return crud_fail(c, 400, "%s: is required", f->name);
		}
	}
	return 0;
}

void admin_format_time(int64_t epoch_ms, char *out, size_t outlen)
{
	time_t t = (time_t)(epoch_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, outlen - n, ".%03dZ", (int)(epoch_ms % 1000));
}

json_t *admin_time_json(int64_t epoch_ms)
{
	if (epoch_ms <= 0)
		return json_null();
	char buf[40];
	admin_format_time(epoch_ms, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *column_json(const struct field *f, const struct store_rows *rows, size_t row, const char *col)
{
	if (store_rows_isnull(rows, row, col))
		return f && f->kind == K_STRLIST ? json_array() : json_null();
	enum field_kind kind = f ? f->kind : K_INT;
	switch (kind) {
	case K_BOOL:
		return json_boolean(store_rows_int(rows, row, col, 0) != 0);
	case K_TIME:
		return admin_time_json(store_rows_int(rows, row, col, 0));
	case K_REAL:
		return json_real(store_rows_real(rows, row, col, 0));
	case K_INT:
	case K_REF:
		return json_integer(store_rows_int(rows, row, col, 0));
	case K_STRLIST: {
		const char *t = store_rows_text(rows, row, col);
		json_t *a = t ? json_loads(t, 0, NULL) : NULL;
		if (!json_is_array(a)) {
			json_decref(a);
			a = json_array();
		}
		return a;
	}
	case K_STR:
	case K_TEXT:
	case K_ENUM: {
		const char *t = store_rows_text(rows, row, col);
		return t ? json_string(t) : json_null();
	}
	}
	return json_null();
}

static json_t *row_json(struct crud_ctx *c, const struct resource *res, const struct store_rows *rows,
                        size_t row)
{
	json_t *o = json_object();
	int64_t id = store_rows_int(rows, row, "id", 0);
	json_object_set_new(o, "id", json_integer(id));
	for (size_t i = 0; i < res->nfields; i++) {
		const struct field *f = &res->fields[i];
		if (f->flags & (F_HIDDEN | F_VIRTUAL))
			continue;
		json_object_set_new(o, f->name, column_json(f, rows, row, f->name));
	}
	json_object_set_new(o, "created_at", admin_time_json(store_rows_int(rows, row, "created_at", 0)));
	json_object_set_new(o, "updated_at", admin_time_json(store_rows_int(rows, row, "updated_at", 0)));
	if (res->decorate)
		res->decorate(c, o, id);
	return o;
}

json_t *crud_fetch(struct crud_ctx *c, const struct resource *res, int64_t id)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT * FROM %s WHERE id = ?", res->table);
	struct store_value p[] = { sv_int(id) };
	struct store_rows *rows = NULL;
	if (store_query(c->st, sql, p, 1, &rows))
		return NULL;
	json_t *o = store_rows_count(rows) ? row_json(c, res, rows, 0) : NULL;
	store_rows_free(rows);
	return o;
}

/* ---- handlers ------------------------------------------------------ */

static bool parse_positive(const char *s, int64_t max, int64_t *out)
{
	if (!s || !*s || strlen(s) > 18)
		return false;
	int64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
	}
	if (v < 1 || v > max)
		return false;
	*out = v;
	return true;
}

void crud_list(struct crud_ctx *c, const struct resource *res)
{
	struct evkeyvalq q;
	TAILQ_INIT(&q);
	if (c->r->query && evhttp_parse_query_str(c->r->query, &q) != 0) {
		http_reply_error(c->r, 400, "invalid_query", "malformed query string");
		return;
	}
	int64_t page = 1, page_size = PAGE_SIZE_DEFAULT;
	char where[SQL_MAX] = "";
	size_t wl = 0;
	struct store_value params[18]; /* filters (≤ 15) + limit + offset */
	size_t np = 0;
	struct assigns tmp = { .n = 0 };
	int fail = 0;
	if (res->parent_col) {
		wl += (size_t)snprintf(where + wl, sizeof(where) - wl, " WHERE %s = ?", res->parent_col);
		params[np++] = sv_int(c->parent_id);
	}
	struct evkeyval *kv;
	TAILQ_FOREACH (kv, &q, next) {
		if (strcmp(kv->key, "page") == 0) {
			if (!parse_positive(kv->value, 1000000000, &page)) {
				fail = crud_fail(c, 400, "page: must be an integer of at least 1");
				break;
			}
		} else if (strcmp(kv->key, "page_size") == 0) {
			if (!parse_positive(kv->value, PAGE_SIZE_MAX, &page_size)) {
				fail = crud_fail(c, 400, "page_size: must be an integer from 1 to %d",
				                 PAGE_SIZE_MAX);
				break;
			}
		} else {
			const struct field *f = find_field(res, kv->key);
			if (!f || !(f->flags & F_FILTER) || np >= 15) {
				fail =
				    crud_fail(c, 400, "%.64s: not a filter of %s lists", kv->key, res->name);
				break;
			}
			if (f->kind == K_INT || f->kind == K_REF || f->kind == K_BOOL) {
				int64_t x = 0;
				bool ok = f->kind == K_BOOL ? (strcmp(kv->value, "true") == 0 ||
				                               strcmp(kv->value, "false") == 0)
				                            : parse_positive(kv->value, INT64_MAX / 10, &x);
				if (f->kind == K_BOOL)
					x = strcmp(kv->value, "true") == 0;
				if (!ok) {
					fail = crud_fail(c, 400, "%s: not a valid filter value", f->name);
					break;
				}
				params[np++] = sv_int(x);
			} else {
				char *copy = xstrdup(kv->value);
				assigns_add(&tmp, f->name, sv_null(), copy);
				params[np++] = sv_text(copy);
			}
			wl += (size_t)snprintf(where + wl, sizeof(where) - wl, "%s %s = ?",
			                       np == 1 ? " WHERE" : " AND", f->name);
		}
	}
	evhttp_clear_headers(&q);
	if (fail) {
		assigns_free(&tmp);
		reply_ctx_error(c);
		return;
	}

	char sql[SQL_MAX + 256];
	snprintf(sql, sizeof(sql), "SELECT count(*) AS n FROM %s%s", res->table, where);
	struct store_rows *rows = NULL;
	int rc = store_query(c->st, sql, params, np, &rows);
	int64_t total = rc ? 0 : store_rows_int(rows, 0, "n", 0);
	store_rows_free(rows);
	rows = NULL;
	if (!rc) {
		snprintf(sql, sizeof(sql), "SELECT * FROM %s%s ORDER BY id LIMIT ? OFFSET ?", res->table,
		         where);
		params[np] = sv_int(page_size);
		params[np + 1] = sv_int((page - 1) * page_size);
		rc = store_query(c->st, sql, params, np + 2, &rows);
	}
	assigns_free(&tmp);
	if (rc) {
		admin_reply_store_error(c->r, c->st, rc, res->name);
		return;
	}
	json_t *data = json_array();
	for (size_t i = 0; i < store_rows_count(rows); i++)
		json_array_append_new(data, row_json(c, res, rows, i));
	store_rows_free(rows);
	http_reply_json(c->r, 200,
	                json_pack("{s:o, s:{s:I, s:I, s:I}}", "data", data, "pagination", "page",
	                          (json_int_t)page, "page_size", (json_int_t)page_size, "total",
	                          (json_int_t)total));
}

void crud_get(struct crud_ctx *c, const struct resource *res, int64_t id)
{
	json_t *o = crud_fetch(c, res, id);
	if (!o) {
		http_reply_error(c->r, 404, "not_found", "no %s with id %lld", res->name, (long long)id);
		return;
	}
	if (res->parent_col && c->parent_id &&
	    json_integer_value(json_object_get(o, res->parent_col)) != c->parent_id) {
		json_decref(o);
		http_reply_error(c->r, 404, "not_found", "no %s with id %lld", res->name, (long long)id);
		return;
	}
	http_reply_json(c->r, 200, o);
}

/* Run the write: INSERT (id==0) or UPDATE, and after_write, in one transaction. */
static int write_row(struct crud_ctx *c, const struct resource *res, json_t *in, struct assigns *as,
                     int64_t *id)
{
	bool create = *id == 0;
	int64_t now = clock_wall_ms();
	struct store_value params[ASSIGN_MAX + 4];
	size_t np = 0;
	char sql[SQL_MAX];
	size_t n = 0;
	if (create) {
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "INSERT INTO %s (", res->table);
		for (size_t i = 0; i < as->n; i++) {
			n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s, ", as->a[i].col);
			params[np++] = as->a[i].v;
		}
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "created_at, updated_at) VALUES (");
		for (size_t i = 0; i < as->n; i++)
			n += (size_t)snprintf(sql + n, sizeof(sql) - n, "?, ");
		snprintf(sql + n, sizeof(sql) - n, "?, ?) RETURNING id");
		params[np++] = sv_int(now);
		params[np++] = sv_int(now);
	} else {
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "UPDATE %s SET ", res->table);
		for (size_t i = 0; i < as->n; i++) {
			n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s = ?, ", as->a[i].col);
			params[np++] = as->a[i].v;
		}
		snprintf(sql + n, sizeof(sql) - n, "updated_at = ? WHERE id = ? RETURNING id");
		params[np++] = sv_int(now);
		params[np++] = sv_int(*id);
	}

	int rc = store_begin(c->st);
	if (rc)
		return rc;
	struct store_rows *rows = NULL;
	rc = store_query(c->st, sql, params, np, &rows);
	if (!rc && store_rows_count(rows) == 0) {
		store_rows_free(rows);
		store_rollback(c->st);
		crud_fail(c, 404, "no %s with id %lld", res->name, (long long)*id);
		return 1;
	}
	if (!rc)
		*id = store_rows_int(rows, 0, "id", 0);
	store_rows_free(rows);
	if (!rc && res->after_write && res->after_write(c, in, create, *id)) {
		store_rollback(c->st);
		return 1; /* the hook set the error */
	}
	if (!rc)
		rc = store_commit(c->st);
	if (rc)
		store_rollback(c->st);
	return rc;
}

static void write_and_answer(struct crud_ctx *c, const struct resource *res, int64_t id)
{
	bool create = id == 0;
	json_t *in = http_read_json_object(c->r, ADMIN_BODY_MAX);
	if (!in)
		return;
	struct assigns as = { .n = 0 };
	if (create && res->parent_col)
		assigns_add(&as, res->parent_col, sv_int(c->parent_id), NULL);
	int rc = 0;
	if (take_input(c, res, in, create, &as) || (res->prepare && res->prepare(c, in, create, id, &as))) {
		assigns_free(&as);
		json_decref(in);
		free(c->hook_data);
		json_decref(c->extra_out);
		reply_ctx_error(c);
		return;
	}
	rc = write_row(c, res, in, &as, &id);
	assigns_free(&as);
	json_decref(in);
	free(c->hook_data);
	c->hook_data = NULL;
	if (rc) {
		json_decref(c->extra_out);
		if (rc > 0)
			reply_ctx_error(c);
		else
			admin_reply_store_error(c->r, c->st, rc, res->name);
		return;
	}
	log_info(c->r->id, "%s %s %lld by %s", create ? "created" : "updated", res->name, (long long)id,
	         c->user->username);
	admin_config_changed(c->r);
	json_t *o = crud_fetch(c, res, id);
	if (!o) {
		json_decref(c->extra_out);
		http_reply_error(c->r, 500, "internal_error", "the %s was saved but could not be read back",
		                 res->name);
		return;
	}
	if (c->extra_out) {
		json_object_update(o, c->extra_out);
		json_decref(c->extra_out);
		c->extra_out = NULL;
	}
	http_reply_json(c->r, create ? 201 : 200, o);
}

void crud_create(struct crud_ctx *c, const struct resource *res)
{
	write_and_answer(c, res, 0);
}

void crud_update(struct crud_ctx *c, const struct resource *res, int64_t id)
{
	write_and_answer(c, res, id);
}

void crud_delete(struct crud_ctx *c, const struct resource *res, int64_t id)
{
	if (res->before_delete && res->before_delete(c, id)) {
		reply_ctx_error(c);
		return;
	}
	char sql[128];
	snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id = ?", res->table);
	struct store_value p[] = { sv_int(id) };
	int64_t changes = 0;
	/* Dependent rows go with it (ON DELETE CASCADE), in one transaction. */
	int rc = store_begin(c->st);
	if (!rc)
		rc = store_exec(c->st, sql, p, 1, &changes);
	if (!rc)
		rc = store_commit(c->st);
	if (rc) {
		store_rollback(c->st);
		admin_reply_store_error(c->r, c->st, rc, res->name);
		return;
	}
	if (changes == 0) {
		http_reply_error(c->r, 404, "not_found", "no %s with id %lld", res->name, (long long)id);
		return;
	}
	log_info(c->r->id, "deleted %s %lld by %s", res->name, (long long)id, c->user->username);
	admin_config_changed(c->r);
	http_reply_json(c->r, 200, json_pack("{s:I, s:b}", "id", (json_int_t)id, "deleted", 1));
}

/* Read exactly n digits at *p into *out; advances *p. */
static bool digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char ch = (*p)[i];
		if (ch < '0' || ch > '9')
			return false;
		v = v * 10 + (ch - '0');
	}
	*p += n;
	*out = v;
	return true;
}

int admin_parse_time(const json_t *v, int64_t *epoch_ms)
{
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0 || json_integer_value(v) > 253402300799999LL)
			return -1;
		*epoch_ms = json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return -1;
	const char *s = json_string_value(v);
	size_t len = strlen(s);
	if (len > 0 && len <= 15 && strspn(s, "0123456789") == len) {
		int64_t x = 0;
		for (const char *p = s; *p; p++)
			x = x * 10 + (*p - '0');
		*epoch_ms = x;
		return 0;
	}
	struct tm tm = { 0 };
	int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
	const char *p = s;
	if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' || !digits(&p, 2, &d))
		return -1;
	long offset_s = 0;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
			return -1;
		if (*p == ':') {
			p++;
			if (!digits(&p, 2, &sec))
				return -1;
			if (*p == '.') {
				p++;
				int nd = 0;
				while (p[nd] >= '0' && p[nd] <= '9')
					nd++;
				if (nd == 0 || nd > 9)
					return -1;
				int frac = 0;
				for (int i = 0; i < 3; i++)
					frac = frac * 10 + (i < nd ? p[i] - '0' : 0);
				ms = frac;
				p += nd;
			}
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1, oh, om;
			if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
				return -1;
			offset_s = sign * (oh * 3600L + om * 60L);
		}
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (t == (time_t)-1 || tm.tm_mday != d) /* timegm normalised an impossible date */
		return -1;
	*epoch_ms = ((int64_t)t - offset_s) * 1000 + ms;
	return *epoch_ms >= 0 ? 0 : -1;
}
