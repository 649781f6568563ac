/*
 * testutil.h — helpers shared by the unit tests: a fresh temporary
 * directory per test, removed (with the files in it) afterwards.
 */
#ifndef FUSION_TESTS_TESTUTIL_H
#define FUSION_TESTS_TESTUTIL_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#endif
