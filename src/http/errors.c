/*
 * errors.c — see errors.h.
 */
#include "http/errors.h"

#include <jansson.h>
#include <stdlib.h>

#include "util/alloc.h"

char *http_error_body(const char *message, const char *type, const char *code)
{
	json_t *err = json_object();
	json_object_set_new(err, "message", json_string(message ? message : ""));
	json_object_set_new(err, "type", json_string(type ? type : "error"));
	json_object_set_new(err, "code", code ? json_string(code) : json_null());
	json_t *root = json_object();
	json_object_set_new(root, "error", err);
	char *s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (!s) /* only on OOM or invalid UTF-8 in message, which callers never pass */
		return xstrdup(
		    "{\"error\":{\"message\":\"internal error\",\"type\":\"server_error\",\"code\":null}}");
	return s;
}

const char *http_error_type_for(int status)
{
	switch (status) {
	case 401:
		return "authentication_error";
	case 403:
		return "permission_error";
	case 404:
		return "not_found_error";
	case 429:
		return "rate_limit_error";
	default:
		return status >= 500 ? "server_error" : "invalid_request_error";
	}
}
