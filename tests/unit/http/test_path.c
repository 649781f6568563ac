/* Unit tests for http/path.c: one normal form, refusals for ambiguity. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "http/path.h"

static void ok(const char *in, const char *want)
{
	char *out = NULL;
	cr_assert_eq(http_path_normalize(in, strlen(in), &out), 0, "refused %s", in);
	cr_assert_str_eq(out, want, "%s -> %s, want %s", in, out, want);
	free(out);
}

static void refused(const char *in)
{
	char *out = NULL;
	cr_assert_eq(http_path_normalize(in, strlen(in), &out), -1, "accepted %s as %s", in, out ? out : "");
	cr_assert_null(out);
}

Test(path, plain_paths_unchanged)
{
	ok("/", "/");
	ok("/healthz", "/healthz");
	ok("/api/admin/providers", "/api/admin/providers");
	ok("/v1beta/models/gemini-1.5-flash:generateContent",
	   "/v1beta/models/gemini-1.5-flash:generateContent");
	ok("/api/", "/api/");
}

Test(path, slashes_collapse)
{
	ok("//api/admin", "/api/admin");
	ok("/api//admin///users", "/api/admin/users");
	ok("///", "/");
}

Test(path, dots_resolve)
{
	ok("/api/./admin", "/api/admin");
	ok("/v1/../api/admin", "/api/admin");
	ok("/a/b/..", "/a/");
	ok("/a/.", "/a/");
	ok("/a/b/../../c", "/c");
}

Test(path, escapes_decode_before_resolving)
{
	ok("/%61pi/admin", "/api/admin");
	ok("/v1/%2e%2e/api/admin", "/api/admin");
	ok("/v1/%2E%2E/api/admin", "/api/admin");
	ok("/x/%2e/y", "/x/y");
	ok("/models/a%20b", "/models/a b");
}

Test(path, ambiguous_paths_refused)
{
	refused("");
	refused("api");
	refused("/..");
	refused("/../api/admin");
	refused("/a/../../b");
	refused("/%2e%2e/x");
	refused("/api%2fadmin");
	refused("/api%2Fadmin");
	refused("/api\\admin");
	refused("/api%5cadmin");
	refused("/a%00b");
	refused("/a%0ab");
	refused("/bad%zz");
	refused("/bad%4");
	refused("/bad%");
}
