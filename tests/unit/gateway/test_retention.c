/*
 * test_retention.c — log retention in the log writer thread
 * (src/gateway/logwriter.c) and store_reclaim (src/store/).
 *
 * Each test gets a migrated database in its own directory, seeds
 * request_logs rows of known ages through a separate handle, starts a
 * writer with a tiny retention_check_ms and waits for its
 * retention_runs counter, then reads what is left.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "logwriter_fixture.h"

#define DAY_MS 86400000LL

static void setup(void)
{
	logwriter_fixture_setup("ret");
}

TestSuite(retention, .init = setup, .fini = logwriter_fixture_teardown, .timeout = 60);

/* ---- helpers ----------------------------------------------------------- */

/* n rows "<prefix>-<i>" created age_ms ago (minus i ms), with a body of
 * body_bytes bytes, in one transaction. */
static void seed(const char *prefix, int n, int64_t age_ms, size_t body_bytes)
{
	struct store *st = open_ok(0);
	char *body = malloc(body_bytes + 1);
	int64_t now = clock_wall_ms();

	memset(body, 'x', body_bytes);
	body[body_bytes] = '\0';
	cr_assert_eq(store_begin(st), STORE_OK, "%s", store_errmsg(st));
	for (int i = 0; i < n; i++) {
		char id[64];
		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		struct store_value p[] = { sv_text(id), sv_int(now - age_ms - i), sv_text(body) };
		int rc = store_exec(st,
		                    "INSERT INTO request_logs (id, created_at, status_code, request_body) "
		                    "VALUES (?, ?, 200, ?)",
		                    p, 3, NULL);
		cr_assert_eq(rc, STORE_OK, "%s", store_errmsg(st));
	}
	cr_assert_eq(store_commit(st), STORE_OK, "%s", store_errmsg(st));
	free(body);
	store_close(st);
}

static int64_t query_int(const char *sql, const char *col)
{
	struct store *st = open_ok(0);
	struct store_rows *rows = NULL;
	int rc = store_query(st, sql, NULL, 0, &rows);
	cr_assert_eq(rc, STORE_OK, "%s: %s", sql, store_errmsg(st));
	int64_t v = store_rows_int(rows, 0, col, -1);
	store_rows_free(rows);
	store_close(st);
	return v;
}

static int64_t count_like(const char *prefix)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) AS n FROM request_logs WHERE id LIKE '%s-%%'", prefix);
	return query_int(sql, "n");
}

static void set_days(const char *json_value)
{
	struct store *st = open_ok(0);
	cr_assert_eq(store_setting_set(st, "log_retention_days", json_value), STORE_OK, "%s",
	             store_errmsg(st));
	store_close(st);
}

static struct logwriter *start(int retention_check_ms)
{
	char err[512] = "";
	struct logwriter_opts o = { .flush_ms = 10, .retention_check_ms = retention_check_ms };
	struct logwriter *w = logwriter_start(g_db, &o, err, sizeof(err));
	cr_assert_not_null(w, "logwriter_start: %s", err);
	return w;
}

static struct logwriter_stats stats(struct logwriter *w)
{
	struct logwriter_stats s;
	logwriter_stats(w, &s);
	return s;
}

/* Wait until the writer finished `runs` retention checks; fails after 20 s. */
static void wait_runs(struct logwriter *w, uint64_t runs)
{
	uint64_t deadline = clock_mono_ns() + 20000000000ull;
	while (stats(w).retention_runs < runs) {
		cr_assert(clock_mono_ns() < deadline, "retention ran %" PRIu64 " times, want %" PRIu64,
		          stats(w).retention_runs, runs);
		usleep(2000);
	}
}

/* ---- tests ------------------------------------------------------------- */

Test(retention, deletes_rows_older_than_the_setting)
{
	set_days("7");
	seed("old", 5, 8 * DAY_MS, 10);
	seed("edge", 3, 7 * DAY_MS + 60000, 10); /* a minute past 7 days */
	seed("young", 4, 6 * DAY_MS, 10);
	struct logwriter *w = start(20);
	wait_runs(w, 1);
	struct logwriter_stats s;
	logwriter_stop(w, 5000, &s);
	cr_assert_eq(count_like("old"), 0);
	cr_assert_eq(count_like("edge"), 0);
	cr_assert_eq(count_like("young"), 4);
	cr_assert_eq(s.expired, 8, "expired %" PRIu64, s.expired);
}

Test(retention, default_is_30_days_when_absent_or_invalid)
{
	seed("d31", 2, 31 * DAY_MS, 10);
	seed("d29", 2, 29 * DAY_MS, 10);
	struct logwriter *w = start(20);
	wait_runs(w, 1);
	logwriter_stop(w, 5000, NULL);
	cr_assert_eq(count_like("d31"), 0);
	cr_assert_eq(count_like("d29"), 2);

	/* Written by hand, out of range or not an integer: still 30 days. */
	static const char *const bad[] = { "0", "\"7\"", "7.5", "true", "99999", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		set_days(bad[i]);
		seed("b31", 1, 31 * DAY_MS, 10);
		w = start(20);
		wait_runs(w, 1);
		logwriter_stop(w, 5000, NULL);
		cr_assert_eq(count_like("b31"), 0, "setting %s", bad[i]);
		cr_assert_eq(count_like("d29"), 2, "setting %s", bad[i]);
	}
}

Test(retention, many_rows_go_in_batches_and_pages_are_reclaimed)
{
	set_days("1");
	seed("bulk", 3500, 2 * DAY_MS, 2000); /* ~7 MB of bodies: pages to give back */
	seed("keep", 10, 0, 10);
	int64_t pages_before = query_int("PRAGMA page_count", "page_count");
	struct logwriter *w = start(20);
	uint64_t deadline = clock_mono_ns() + 20000000000ull;
	while (stats(w).expired < 3500 && clock_mono_ns() < deadline)
		usleep(5000);
	uint64_t runs = stats(w).retention_runs;
	wait_runs(w, runs + 1); /* one more check, after the last DELETE, reclaims */
	struct logwriter_stats s;
	logwriter_stop(w, 5000, &s);
	cr_assert_eq(s.expired, 3500, "expired %" PRIu64, s.expired);
	cr_assert_eq(count_like("bulk"), 0);
	cr_assert_eq(count_like("keep"), 10);
	cr_assert_eq(query_int("PRAGMA freelist_count", "freelist_count"), 0);
	int64_t pages_after = query_int("PRAGMA page_count", "page_count");
	cr_assert_lt(pages_after * 4, pages_before, "pages %" PRId64 " -> %" PRId64, pages_before,
	             pages_after);
}

/* A record that arrives while a long retention run is under way is
 * written long before the run ends: the run yields once a batch is due
 * (and finishes a second later). */
Test(retention, yields_to_request_logs)
{
	const int n = 60000;
	set_days("1");
	seed("bulk", n, 2 * DAY_MS, 10);
	struct logwriter *w = start(5);
	uint64_t deadline = clock_mono_ns() + 20000000000ull;
	while (stats(w).expired < 1000) {
		cr_assert(clock_mono_ns() < deadline, "retention did not start");
		usleep(500);
	}
	struct log_record *r = log_record_new();
	snprintf(r->id, sizeof(r->id), "live-1");
	r->status_code = 200;
	uint64_t t0 = clock_mono_ns();
	cr_assert(logwriter_submit(w, r));
	struct logwriter_stats s = stats(w);
	while (s.written < 1) {
		cr_assert(clock_mono_ns() < deadline, "the record was not written");
		usleep(200);
		s = stats(w);
	}
	int64_t waited = (int64_t)((clock_mono_ns() - t0) / 1000000u);
	cr_assert_lt(s.expired, (uint64_t)n,
	             "retention ended before the record was written: it did not yield");
	cr_assert_lt(waited, 1000, "the record waited %" PRId64 " ms", waited);

	deadline = clock_mono_ns() + 30000000000ull;
	while (stats(w).expired < (uint64_t)n && clock_mono_ns() < deadline)
		usleep(5000);
	logwriter_stop(w, 5000, &s);
	cr_assert_eq(s.expired, (uint64_t)n, "expired %" PRIu64, s.expired);
	cr_assert_eq(count_like("live"), 1);
	cr_assert_eq(count_like("bulk"), 0);
}

Test(retention, negative_interval_disables_it_and_bounds_are_checked)
{
	seed("old", 3, 400 * DAY_MS, 10);
	struct logwriter *w = start(-1);
	usleep(200000);
	struct logwriter_stats s;
	logwriter_stop(w, 5000, &s);
	cr_assert_eq(s.retention_runs, 0);
	cr_assert_eq(count_like("old"), 3);

	char err[256] = "";
	struct logwriter_opts o = { .retention_check_ms = 86400001 };
	cr_assert_null(logwriter_start(g_db, &o, err, sizeof(err)));
	cr_assert(strstr(err, "retention_check_ms") != NULL, "%s", err);
}

Test(retention, store_reclaim_contract)
{
	struct store *st = open_ok(0);
	int64_t left = -1;
	cr_assert_eq(store_reclaim(st, 0, &left), STORE_EINVAL);
	cr_assert_eq(store_begin(st), STORE_OK);
	cr_assert_eq(store_reclaim(st, 10, &left), STORE_EINVAL);
	cr_assert_eq(store_rollback(st), STORE_OK);
	cr_assert_eq(store_reclaim(st, 10, &left), STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(left, 0);
	cr_assert_eq(store_reclaim(st, 10, NULL), STORE_OK);
	store_close(st);

	seed("r", 500, 0, 4000);
	st = open_ok(0);
	cr_assert_eq(store_exec(st, "DELETE FROM request_logs", NULL, 0, NULL), STORE_OK);
	int64_t free0 = query_int("PRAGMA freelist_count", "freelist_count");
	cr_assert_gt(free0, 100, "freelist %" PRId64, free0);
	cr_assert_eq(store_reclaim(st, 50, &left), STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(left, free0 - 50, "left %" PRId64 " of %" PRId64, left, free0);
	cr_assert_eq(store_reclaim(st, 1000000, &left), STORE_OK);
	cr_assert_eq(left, 0);
	store_close(st);

	/* Read-only handles may not. */
	st = open_ok(STORE_READONLY);
	cr_assert_eq(store_reclaim(st, 10, &left), STORE_EINVAL);
	store_close(st);
}
