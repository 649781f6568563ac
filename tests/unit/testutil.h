/*
 * testutil.h — helpers shared by the unit tests: a fresh temporary
 * directory per test, removed (with the files in it) afterwards, and a
 * store opened in it.  Works with Criterion or the minitest.h stand-in.
 */
#ifndef FUSION_TESTS_TESTUTIL_H
#define FUSION_TESTS_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "minitest.h"
#include "store/store.h"

/* Make /tmp/fusion-<tag>-XXXXXX into dir (dirlen bytes); fails the test on error. */
static inline void testutil_mkdtemp(char *dir, size_t dirlen, const char *tag)
{
	snprintf(dir, dirlen, "/tmp/fusion-%s-XXXXXX", tag);
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

/* Remove dir and the plain files in it (tests make no subdirectories). */
static inline void testutil_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	char p[512];
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

/* testutil_mkdtemp, and the path of a database "fusion.db" in it into db. */
static inline void testutil_mkdtemp_db(char *dir, size_t dirlen, char *db, size_t dblen, const char *tag)
{
	testutil_mkdtemp(dir, dirlen, tag);
	snprintf(db, dblen, "%s/fusion.db", dir);
}

/* store_open(path, flags); fails the test unless it succeeds. */
static inline struct store *testutil_store_open(const char *path, int flags)
{
	struct store *st = NULL;
	char err[512] = "";
	int rc = store_open(path, flags, &st, err, sizeof(err));
	cr_assert_eq(rc, STORE_OK, "store_open: %d %s", rc, err);
	cr_assert_not_null(st);
	return st;
}

#endif
