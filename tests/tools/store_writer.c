/*
 * store_writer.c — helper for tests/e2e/store_crash.test.js.
 *
 *   store_writer DB_PATH [COUNT [START]]
 *
 * Opens the store with STORE_MIGRATE and writes settings
 * crash.k<i> = v<i> for i = START .. START+COUNT-1 (COUNT absent or 0:
 * forever), one store_setting_set() per key.  After each call returns 0
 * it prints "ack <i>" and flushes, so every acked line is a promise that
 * the row survives a kill -9 from that moment on.  The e2e test kills
 * this process at random points and checks that promise with the sqlite3
 * CLI.  Exits 1 with a message on stderr on any error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/store.h"

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-')
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	char err[512];
	struct store *st = NULL;
	uint64_t count = 0, start = 0;
	int status = 1;

	if (argc < 2 || argc > 4 || (argc > 2 && parse_u64(argv[2], &count) != 0) ||
	    (argc > 3 && parse_u64(argv[3], &start) != 0)) {
		fprintf(stderr, "usage: store_writer DB_PATH [COUNT [START]]\n");
		return 2;
	}
	if (store_open(argv[1], STORE_MIGRATE, &st, err, sizeof(err)) != 0) {
		fprintf(stderr, "store_writer: %s\n", err);
		return 1;
	}
	for (uint64_t i = start; count == 0 || i < start + count; i++) {
		char key[48], value[48];
		snprintf(key, sizeof(key), "crash.k%" PRIu64, i);
		snprintf(value, sizeof(value), "v%" PRIu64, i);
		if (store_setting_set(st, key, value) != 0) {
			fprintf(stderr, "store_writer: %s\n", store_errmsg(st));
			goto out;
		}
		if (printf("ack %" PRIu64 "\n", i) < 0 || fflush(stdout) != 0) {
			fprintf(stderr, "store_writer: writing to stdout failed\n");
			goto out;
		}
	}
	status = 0;
out:
	store_close(st);
	return status;
}
