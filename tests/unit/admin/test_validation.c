/* Unit tests for the admin layer's input helpers: times and text checks. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "admin/admin.h"
#include "admin/crud.h"

static int parse(const char *s, int64_t *out)
{
	json_t *v = json_string(s);
	int rc = admin_parse_time(v, out);
	json_decref(v);
	return rc;
}

Test(admin_time, iso_forms)
{
	int64_t ms;
	cr_assert_eq(parse("2027-01-01T00:00:00Z", &ms), 0);
	cr_assert_eq(ms, 1798761600000LL);
	cr_assert_eq(parse("2027-01-01T00:00:00.250Z", &ms), 0);
	cr_assert_eq(ms, 1798761600250LL);
	cr_assert_eq(parse("2027-01-01T02:00:00+02:00", &ms), 0);
	cr_assert_eq(ms, 1798761600000LL);
	cr_assert_eq(parse("2026-12-31T19:00:00-05:00", &ms), 0);
	cr_assert_eq(ms, 1798761600000LL);
	cr_assert_eq(parse("2027-01-01", &ms), 0);
	cr_assert_eq(ms, 1798761600000LL);
	cr_assert_eq(parse("2027-01-01T00:00Z", &ms), 0);
	cr_assert_eq(ms, 1798761600000LL);
	cr_assert_eq(parse("1798761600000", &ms), 0);
	cr_assert_eq(ms, 1798761600000LL);
}

Test(admin_time, epoch_integer)
{
	int64_t ms;
	json_t *v = json_integer(1798761600000LL);
	cr_assert_eq(admin_parse_time(v, &ms), 0);
	cr_assert_eq(ms, 1798761600000LL);
	json_decref(v);
	v = json_integer(-1);
	cr_assert_eq(admin_parse_time(v, &ms), -1);
	json_decref(v);
	v = json_real(1.5);
	cr_assert_eq(admin_parse_time(v, &ms), -1);
	json_decref(v);
}

Test(admin_time, refused)
{
	int64_t ms;
	const char *bad[] = { "",
		              "tomorrow",
		              "2027-13-01",
		              "2027-02-30",
		              "2027-01-01T25:00:00Z",
		              "2027-01-01T00:00:00+2",
		              "2027-01-01T00:00:00Zjunk",
		              "1969-12-31",
		              "2027/01/01",
		              "2027-01-01T00:00:00.Z" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(parse(bad[i], &ms), -1, "accepted '%s'", bad[i]);
}

Test(admin_time, formats_back)
{
	char buf[40];
	admin_format_time(1798761600250LL, buf, sizeof(buf));
	cr_assert_str_eq(buf, "2027-01-01T00:00:00.250Z");
	json_t *n = admin_time_json(0);
	cr_assert(json_is_null(n));
	json_decref(n);
}

Test(admin_text, one_line_checks)
{
	cr_assert(crud_is_line("my-provider", 11));
	cr_assert(crud_is_line("名前 ünïcode", strlen("名前 ünïcode")));
	cr_assert(crud_is_line("'); DROP TABLE providers;--", 27));
	cr_assert_not(crud_is_line("a\nb", 3));
	cr_assert_not(crud_is_line("a\tb", 3));
	cr_assert_not(crud_is_line("a\x7f", 2));
	cr_assert_not(crud_is_line("a\xc2\x85z", 4)); /* U+0085 NEL, a C1 control */
	cr_assert(crud_is_line("a\xc2\xa0z", 4));     /* U+00A0 is not a control */
}
