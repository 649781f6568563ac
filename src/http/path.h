/*
 * path.h — one normal form for request paths.
 *
 * Authentication and routing must see the same path, so the raw path is
 * normalised once, before either looks at it: percent escapes are
 * decoded, "//" collapses, "." and ".." segments are resolved.  Paths
 * that would mean different things to different readers are refused
 * rather than guessed at: an encoded slash (%2F) or backslash, NUL or
 * other control bytes, a bad escape, or ".." climbing above the root.
 */
#ifndef FUSION_HTTP_PATH_H
#define FUSION_HTTP_PATH_H

#include <stddef.h>

/*
 * raw: the path part of the request target (no query), len bytes.
 * On success returns 0 and *out is a malloc'd, NUL-terminated path that
 * starts with "/" (owned by the caller).  Returns -1 for a refused path.
 */
int http_path_normalize(const char *raw, size_t len, char **out) __attribute__((warn_unused_result));

#endif
