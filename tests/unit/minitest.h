/*
 * minitest.h — Criterion, or a small stand-in for it.
 *
 * Criterion cannot start under ThreadSanitizer (it maps its shared arena
 * at a fixed address TSan owns: Snaipe/Criterion#274), so a test file
 * built for TSan defines MINITEST_NO_CRITERION and gets this stand-in
 * instead: every Test registers itself, main() runs them in order in one
 * process with the suite's .init/.fini around each, and a failed
 * assertion prints where and exits 1.  Only what those files use is
 * provided: one TestSuite per file, the cr_assert forms below (their
 * messages are ignored) and cr_log_info.
 *
 * Without MINITEST_NO_CRITERION this just includes Criterion.
 */
#ifndef FUSION_TESTS_MINITEST_H
#define FUSION_TESTS_MINITEST_H

#ifndef MINITEST_NO_CRITERION
#include <criterion/criterion.h>
#else
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MINITEST_MAX 32

typedef void (*minitest_fn)(void);
struct minitest_test {
	const char *name;
	minitest_fn fn;
};
/* What a TestSuite(...) line gives: the designators Criterion takes. */
struct minitest_suite {
	minitest_fn init;
	minitest_fn fini;
	double timeout; /* not enforced */
};
static struct minitest_test minitest_tests[MINITEST_MAX];
static int minitest_ntests;
static const struct minitest_suite *minitest_suite;

static void minitest_register(const char *name, minitest_fn fn)
{
	if (minitest_ntests < MINITEST_MAX)
		minitest_tests[minitest_ntests++] = (struct minitest_test){ name, fn };
}
static void minitest_check(bool ok, const char *file, int line, const char *what)
{
	if (!ok) {
		fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, what);
		exit(1);
	}
}
#define TestSuite(suite, ...)                                                                                \
	static const struct minitest_suite minitest_suite_##suite = { __VA_ARGS__ };                         \
	__attribute__((constructor)) static void minitest_suite_##suite##_reg(void)                          \
	{                                                                                                    \
		minitest_suite = &minitest_suite_##suite;                                                    \
	}
#define Test(suite, name, ...)                                                                               \
	static void suite##_##name(void);                                                                    \
	__attribute__((constructor)) static void suite##_##name##_reg(void)                                  \
	{                                                                                                    \
		minitest_register(#suite "::" #name, suite##_##name);                                        \
	}                                                                                                    \
	static void suite##_##name(void)
#define cr_assert(c, ...) minitest_check((c), __FILE__, __LINE__, #c)
#define cr_assert_eq(a, b, ...) minitest_check((a) == (b), __FILE__, __LINE__, #a " == " #b)
#define cr_assert_neq(a, b, ...) minitest_check((a) != (b), __FILE__, __LINE__, #a " != " #b)
#define cr_assert_lt(a, b, ...) minitest_check((a) < (b), __FILE__, __LINE__, #a " < " #b)
#define cr_assert_leq(a, b, ...) minitest_check((a) <= (b), __FILE__, __LINE__, #a " <= " #b)
#define cr_assert_gt(a, b, ...) minitest_check((a) > (b), __FILE__, __LINE__, #a " > " #b)
#define cr_assert_geq(a, b, ...) minitest_check((a) >= (b), __FILE__, __LINE__, #a " >= " #b)
#define cr_assert_null(a, ...) minitest_check((a) == NULL, __FILE__, __LINE__, #a " == NULL")
#define cr_assert_not_null(a, ...) minitest_check((a) != NULL, __FILE__, __LINE__, #a " != NULL")
#define cr_assert_str_eq(a, b, ...) minitest_check(strcmp((a), (b)) == 0, __FILE__, __LINE__, #a " eq " #b)
#define cr_log_info(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))

int main(void)
{
	for (int i = 0; i < minitest_ntests; i++) {
		if (minitest_suite && minitest_suite->init)
			minitest_suite->init();
		minitest_tests[i].fn();
		if (minitest_suite && minitest_suite->fini)
			minitest_suite->fini();
		fprintf(stderr, "[PASS] %s\n", minitest_tests[i].name);
	}
	fprintf(stderr, "%d tests passed\n", minitest_ntests);
	return 0;
}
#endif

#endif
