/*
 * body.c — see body.h.
 */
#include "http/body.h"

#include <event2/buffer.h>

#include "http/request.h"

json_t *http_read_json(struct http_req *r, size_t max_bytes)
{
	struct evbuffer *b = http_req_body(r);
	size_t len = evbuffer_get_length(b);
	if (max_bytes && len > max_bytes) {
		http_reply_error(r, 413, "request_too_large",
		                 "request body is %zu bytes; at most %zu are accepted here", len, max_bytes);
		return NULL;
	}
	if (len == 0) {
		http_reply_error(r, 400, "invalid_json",
		                 "request body is empty; a JSON document is required");
		return NULL;
	}
	const char *p = (const char *)evbuffer_pullup(b, -1);
	json_error_t e;
	json_t *doc = json_loadb(p, len, JSON_REJECT_DUPLICATES, &e);
	if (!doc) {
		http_reply_error(r, 400, "invalid_json", "malformed JSON at line %d, column %d (byte %d): %s",
		                 e.line, e.column, e.position, e.text);
		return NULL;
	}
	return doc;
}

json_t *http_read_json_object(struct http_req *r, size_t max_bytes)
{
	json_t *doc = http_read_json(r, max_bytes);
	if (doc && !json_is_object(doc)) {
		json_decref(doc);
		http_reply_error(r, 400, "invalid_json", "request body must be a JSON object");
		return NULL;
	}
	return doc;
}
