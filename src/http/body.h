/*
 * body.h — reading a request body as JSON, with errors clients can act on.
 *
 * A malformed body is answered with 400 naming the line, column and byte
 * position jansson stopped at; a body over the caller's bound with 413.
 * Both answers are sent here, so the caller only checks for NULL.
 */
#ifndef FUSION_HTTP_BODY_H
#define FUSION_HTTP_BODY_H

#include <jansson.h>
#include <stddef.h>

struct http_req;

/*
 * Parse the whole body as one JSON value.  Returns a new reference, or
 * NULL after answering the request (r is then gone).  An empty body is
 * malformed.  max_bytes bounds what is parsed (0 = no extra bound beyond
 * MAX_BODY_BYTES, which the connection guard already enforced).
 */
json_t *http_read_json(struct http_req *r, size_t max_bytes);

/* Same, and the value must be an object. */
json_t *http_read_json_object(struct http_req *r, size_t max_bytes);

#endif
