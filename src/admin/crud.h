/*
 * crud.h — one engine for the admin API's list/get/create/update/delete.
 *
 * A resource is a table plus a description of its fields: how each is
 * validated on input and shown on output.  Behaviour that is particular
 * to one resource (secrets to encrypt, keys to generate, computed
 * fields) lives in its hooks (resources.c); the engine does the rest the
 * same way everywhere:
 *
 *   input  → unknown field? read-only? wrong type, range or length? → 400 naming it
 *          → prepare hook (virtual fields, derived columns)
 *          → BEGIN; INSERT ... RETURNING id / UPDATE; after_write hook; COMMIT
 *          → unique violation → 409; a reference to a missing row → 400
 *   output → one JSON object per row: booleans as booleans, times as
 *            ISO-8601, hidden columns never shown, decorate hook
 *
 * Lists take page (≥1) and page_size (1..200, default 20) and answer
 * {data:[...], pagination:{page, page_size, total}}; fields marked
 * F_FILTER can be used as exact-match query parameters.
 */
#ifndef FUSION_ADMIN_CRUD_H
#define FUSION_ADMIN_CRUD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "admin/admin.h"
#include "store/store.h"

struct http_req;

enum field_kind {
	K_STR,  /* one line of text */
	K_TEXT, /* text that may hold newlines and tabs */
	K_INT,
	K_BOOL,
	K_REAL,    /* a number ≥ min */
	K_TIME,    /* ISO-8601 or epoch ms in; ISO-8601 out; stored as epoch ms */
	K_STRLIST, /* array of one-line strings, stored as JSON text */
	K_ENUM,    /* one of choices[] */
	K_REF,     /* id of a row in ref_table */
};

enum field_flags {
	F_REQ = 1 << 0,     /* required on create */
	F_RO = 1 << 1,      /* shown, never accepted */
	F_NULL = 1 << 2,    /* may be null */
	F_HIDDEN = 1 << 3,  /* a column never shown */
	F_VIRTUAL = 1 << 4, /* accepted, no column: the prepare hook consumes it */
	F_FILTER = 1 << 5,  /* usable as ?name=value on lists */
	F_CREATE = 1 << 6,  /* accepted on create only */
};

struct field {
	const char *name;
	enum field_kind kind;
	unsigned flags;
	int64_t min, max;           /* integer range; string/list length bounds */
	const char *const *choices; /* K_ENUM: NULL-terminated */
	const char *ref_table;      /* K_REF */
};

#define ASSIGN_MAX 32

struct assign {
	const char *col;
	struct store_value v;
	void *owned; /* freed after the statement */
};

struct assigns {
	struct assign a[ASSIGN_MAX];
	size_t n;
};

/* Add a column value; takes ownership of `owned` (may be NULL). */
void assigns_add(struct assigns *as, const char *col, struct store_value v, void *owned);
bool assigns_has(const struct assigns *as, const char *col);

struct crud_ctx {
	struct http_req *r;
	struct store *st;
	const struct admin_user *user;
	int64_t parent_id; /* e.g. the provider of /providers/{id}/keys; 0 if none */
	json_t *extra_out; /* fields added to the create answer only (e.g. a new key) */
	void *hook_data;   /* for prepare → after_write hand-over; freed by hooks */
	/* An error a hook reports: status (400/404/409/500) and message. */
	int err_status;
	char err_msg[512];
};

/* Report a validation error from a hook; returns -1 for convenience. */
int crud_fail(struct crud_ctx *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

struct resource {
	const char *name; /* singular, for messages: "provider" */
	const char *table;
	const struct field *fields;
	size_t nfields;
	const char *parent_col; /* column set from ctx->parent_id, or NULL */
	int (*prepare)(struct crud_ctx *c, json_t *in, bool create, int64_t id, struct assigns *as);
	int (*after_write)(struct crud_ctx *c, json_t *in, bool create, int64_t id);
	void (*decorate)(struct crud_ctx *c, json_t *out, int64_t id);
	int (*before_delete)(struct crud_ctx *c, int64_t id);
};

/* Handlers; each answers the request. */
void crud_list(struct crud_ctx *c, const struct resource *res);
void crud_get(struct crud_ctx *c, const struct resource *res, int64_t id);
void crud_create(struct crud_ctx *c, const struct resource *res);
void crud_update(struct crud_ctx *c, const struct resource *res, int64_t id);
void crud_delete(struct crud_ctx *c, const struct resource *res, int64_t id);

/* One row as the API shows it (NULL if missing); used by hooks too. */
json_t *crud_fetch(struct crud_ctx *c, const struct resource *res, int64_t id);

/* Does a row with this id exist in table? -1 on store error. */
int crud_exists(struct store *st, const char *table, int64_t id);

/* Is s one line of text without control characters? */
bool crud_is_line(const char *s, size_t len);

#endif
