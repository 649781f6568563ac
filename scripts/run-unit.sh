#!/bin/sh
# Run the Criterion unit tests (ASan+UBSan build) and fail on any
# sanitizer report: Criterion counts a test as passed even when
# LeakSanitizer reports a leak in its process, so the output is checked.
set -u
bin="$1"
out="${TMPDIR:-/tmp}/fusion-unit.$$.log"
ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}" \
LSAN_OPTIONS="suppressions=$(dirname "$0")/../tests/unit/lsan.supp:${LSAN_OPTIONS:-}" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
	"$bin" --jobs 2 2>&1 | tee "$out"
status=$?
# tee hides the runner's status; Criterion prints a synthesis line.
if ! grep -q 'Synthesis: Tested: [0-9]* | Passing: [0-9]* | Failing: 0 | Crashing: 0' "$out"; then
	status=1
fi
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$out"; then
	echo "unit: sanitizer reported a problem (see above)" >&2
	status=1
fi
rm -f "$out"
exit $status
