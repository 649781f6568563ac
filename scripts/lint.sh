#!/bin/sh
# Static checks: banned unbounded/unchecked calls, cppcheck, clang-tidy,
# and clang-format conformance.  Exits non-zero on any finding.
set -u
cd "$(dirname "$0")/.."
status=0

banned=$(grep -rnE '\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atoll|strtok|strncpy|alloca)\s*\(' src tools tests/unit tests/tools 2>/dev/null | grep -v '^\s*//')
if [ -n "$banned" ]; then
	echo "lint: banned calls (use bounded/checked forms; see ../shared/STYLE.md):"
	echo "$banned"
	status=1
fi

inc="-Isrc -Ibuild/gen $(pkg-config --cflags libevent jansson sqlite3 libsodium 2>/dev/null)"
if command -v cppcheck >/dev/null 2>&1; then
	# shellcheck disable=SC2086
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
		--std=c11 --inline-suppr --suppress=preprocessorErrorDirective -D_GNU_SOURCE $inc src tools || status=1
fi
if command -v clang-tidy >/dev/null 2>&1; then
	for f in $(find src tools -name '*.c' | sort); do
		# shellcheck disable=SC2086
		clang-tidy --quiet --warnings-as-errors='*' \
			--checks='-*,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,-bugprone-assignment-in-if-condition,-bugprone-narrowing-conversions,-bugprone-implicit-widening-of-multiplication-result,cert-err34-c,clang-analyzer-*,-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling,-clang-analyzer-optin.performance.Padding' \
			"$f" -- -std=c17 -D_GNU_SOURCE $inc 2>/dev/null || status=1
	done
fi
if command -v clang-format >/dev/null 2>&1; then
	unformatted=$(for f in $(find src tools tests/unit tests/tools -name '*.[ch]' | sort); do
		clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || echo "$f"; done)
	if [ -n "$unformatted" ]; then
		echo "lint: not clang-formatted (run 'make format'):"
		echo "$unformatted"
		status=1
	fi
fi
exit $status
