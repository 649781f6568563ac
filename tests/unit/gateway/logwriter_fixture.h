/*
 * logwriter_fixture.h — the per-test fixture of the log writer's tests
 * (test_logwriter.c, test_retention.c): a fresh directory g_dir holding a
 * migrated database g_db (the writer opens its own handle), removed
 * after the test once no writer thread is left.
 */
#ifndef FUSION_TESTS_LOGWRITER_FIXTURE_H
#define FUSION_TESTS_LOGWRITER_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "gateway/logwriter.h"
#include "store/store.h"
#include "testutil.h"
#include "util/clock.h"
#include "util/log.h"

static char g_dir[64];
static char g_db[128];

/* A handle on g_db; fails the test unless it opens. */
static struct store *open_ok(int flags)
{
	return testutil_store_open(g_db, flags);
}

/* The suite's .init calls this; tag names the directory
 * (/tmp/fusion-<tag>-XXXXXX). */
static void logwriter_fixture_setup(const char *tag)
{
	log_setup(LOG_ERROR, LOG_TEXT); /* some tests provoke warnings on purpose */
	testutil_mkdtemp_db(g_dir, sizeof(g_dir), g_db, sizeof(g_db), tag);
	store_close(open_ok(STORE_MIGRATE));
}

/* The suite's .fini. */
static void logwriter_fixture_teardown(void)
{
	/* A writer detached by a timed-out stop may still be finishing. */
	uint64_t deadline = clock_mono_ns() + 8000000000ull;
	while (logwriter__threads_alive() > 0 && clock_mono_ns() < deadline)
		usleep(2000);
	testutil_rmdir(g_dir);
}

#endif
