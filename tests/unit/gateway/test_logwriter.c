/*
 * test_logwriter.c — the asynchronous request-log writer
 * (src/gateway/logwriter.c): rows round-trip, unknowns become NULL,
 * concurrent producers lose nothing, a full queue drops instead of
 * blocking, stop drains or gives up on time, batches really batch, and
 * database failures are retried then dropped.
 *
 * Each test gets its own directory and a migrated database (the writer
 * opens its own handle).  A second handle holding store_begin() stands in
 * for "the database is locked"; renaming request_logs away stands in for
 * a database error that is quick to produce.  What is on disk is read
 * back through a third handle with store_query.
 *
 * The file also builds without Criterion, for ThreadSanitizer (Criterion
 * cannot start under TSan: Snaipe/Criterion#274):
 *
 *   gcc -std=c17 -D_GNU_SOURCE -DLOGWRITER_TEST_NO_CRITERION -Isrc -Ibuild/gen -Itests/unit -O1 -g \
 *       -fsanitize=thread <every .c of src/util and src/store> src/gateway/logwriter.c \
 *       tests/unit/gateway/test_logwriter.c -o /tmp/lw/tsan \
 *       $(pkg-config --cflags --libs sqlite3 jansson libsodium) -lpthread && /tmp/lw/tsan
 *
 * Producer threads never call cr_assert (it must run on the test's
 * thread): they count, and the test asserts after joining them.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef LOGWRITER_TEST_NO_CRITERION
#define MINITEST_NO_CRITERION /* the TSan build: see minitest.h */
#endif
#include "logwriter_fixture.h"
#include "util/packbuf.h"

static void setup(void)
{
	logwriter_fixture_setup("lw");
}

TestSuite(logwriter, .init = setup, .fini = logwriter_fixture_teardown, .timeout = 30);

/* ---- helpers ----------------------------------------------------------- */

static int64_t ms_since(uint64_t t0)
{
	return (int64_t)((clock_mono_ns() - t0) / 1000000u);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static struct logwriter *start(size_t max_queue, int batch_max, int flush_ms)
{
	char err[512] = "";
	struct logwriter_opts o = { .max_queue = max_queue, .batch_max = batch_max, .flush_ms = flush_ms };
	struct logwriter *w = logwriter_start(g_db, &o, err, sizeof(err));
	cr_assert_not_null(w, "logwriter_start: %s", err);
	return w;
}

static struct log_record *rec(const char *prefix, int i)
{
	struct log_record *r = log_record_new();
	snprintf(r->id, sizeof(r->id), "%s-%d", prefix, i);
	r->created_at = 1700000000000 + i;
	r->outcome = strdup("ok");
	r->status_code = 200;
	return r;
}

static struct logwriter_stats stats(struct logwriter *w)
{
	struct logwriter_stats s;
	logwriter_stats(w, &s);
	return s;
}

/* Poll until at least `written` rows are written, or timeout_ms passed.
 * True when reached. */
static bool wait_written(struct logwriter *w, uint64_t written, int timeout_ms)
{
	uint64_t t0 = clock_mono_ns();
	while (stats(w).written < written) {
		if (ms_since(t0) > timeout_ms)
			return false;
		usleep(1000);
	}
	return true;
}

static int64_t count_rows(void)
{
	struct store *st = open_ok(0);
	struct store_rows *rows = NULL;
	int rc = store_query(st, "SELECT COUNT(*) AS n FROM request_logs", NULL, 0, &rows);
	cr_assert_eq(rc, STORE_OK, "%s", store_errmsg(st));
	int64_t n = store_rows_int(rows, 0, "n", -1);
	store_rows_free(rows);
	store_close(st);
	return n;
}

/* The row with this id (the caller frees it); fails the test when absent. */
static struct store_rows *row(struct store *st, const char *id)
{
	struct store_rows *rows = NULL;
	struct store_value p[] = { sv_text(id) };
	int rc = store_query(st, "SELECT * FROM request_logs WHERE id = ?", p, 1, &rows);
	cr_assert_eq(rc, STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(store_rows_count(rows), 1, "row %s", id);
	return rows;
}

/* Another handle holding the write lock: "the database is locked". */
static struct store *lock_db(void)
{
	struct store *st = open_ok(0);
	int rc = store_begin(st);
	cr_assert_eq(rc, STORE_OK, "%s", store_errmsg(st));
	return st;
}

static void unlock_db(struct store *st)
{
	store_rollback(st);
	store_close(st);
}

static void exec_ok(const char *sql)
{
	struct store *st = open_ok(0);
	int rc = store_exec(st, sql, NULL, 0, NULL);
	cr_assert_eq(rc, STORE_OK, "%s: %s", sql, store_errmsg(st));
	store_close(st);
}

/* The identities logwriter.h promises for one snapshot. */
static void check_identities(const struct logwriter_stats *s)
{
	cr_assert_eq(s->submitted, s->written + s->dropped + s->queued, "submitted %" PRIu64, s->submitted);
	cr_assert_eq(s->submitted, s->enqueued + s->rejected);
	cr_assert_geq(s->dropped, s->rejected + s->duplicates);
}

/* ---- tests ------------------------------------------------------------- */

Test(logwriter, every_column_round_trips)
{
	struct logwriter *w = start(0, 0, 10);
	struct log_record *r = log_record_new();
	snprintf(r->id, sizeof(r->id), "req-0123456789abcdef");
	r->created_at = 1712345678901;
	r->client_key_id = 42;
	r->client_key_name = strdup("team-a");
	r->client_format = strdup("anthropic");
	r->client_model = strdup("claude-x");
	r->provider_id = 7;
	r->provider_name = strdup("openai-main");
	r->provider_model = strdup("gpt-4o");
	r->status_code = 502;
	r->outcome = strdup("upstream_error");
	r->error = strdup("upstream returned 500");
	r->latency_ms = 1234;
	r->ttft_ms = 0; /* known and zero, not unknown */
	r->prompt_tokens = 11;
	r->completion_tokens = 22;
	r->total_tokens = 33;
	r->cached_tokens = 4;
	r->stream = true;
	r->client_addr = strdup("192.0.2.1");
	r->attempts_json = strdup("[{\"provider_id\":7,\"status\":500}]");
	r->request_body = strdup("{\"messages\":[{\"content\":\"h\xc3\xa9llo \xf0\x9f\x98\x80\"}]}");
	r->response_body = strdup("");
	cr_assert(logwriter_submit(w, r));

	struct logwriter_stats fin;
	logwriter_stop(w, 5000, &fin);
	cr_assert_eq(fin.written, 1);
	cr_assert_eq(fin.dropped, 0);

	struct store *st = open_ok(0);
	struct store_rows *rows = row(st, "req-0123456789abcdef");
	cr_assert_eq(store_rows_int(rows, 0, "created_at", 0), 1712345678901);
	cr_assert_eq(store_rows_int(rows, 0, "client_key_id", 0), 42);
	cr_assert_str_eq(store_rows_text(rows, 0, "client_key_name"), "team-a");
	cr_assert_str_eq(store_rows_text(rows, 0, "client_format"), "anthropic");
	cr_assert_str_eq(store_rows_text(rows, 0, "client_model"), "claude-x");
	cr_assert_eq(store_rows_int(rows, 0, "provider_id", 0), 7);
	cr_assert_str_eq(store_rows_text(rows, 0, "provider_name"), "openai-main");
	cr_assert_str_eq(store_rows_text(rows, 0, "provider_model"), "gpt-4o");
	cr_assert_eq(store_rows_int(rows, 0, "status_code", 0), 502);
	cr_assert_str_eq(store_rows_text(rows, 0, "outcome"), "upstream_error");
	cr_assert_str_eq(store_rows_text(rows, 0, "error"), "upstream returned 500");
	cr_assert_eq(store_rows_int(rows, 0, "latency_ms", -1), 1234);
	cr_assert(!store_rows_isnull(rows, 0, "ttft_ms"));
	cr_assert_eq(store_rows_int(rows, 0, "ttft_ms", -1), 0);
	cr_assert_eq(store_rows_int(rows, 0, "prompt_tokens", -1), 11);
	cr_assert_eq(store_rows_int(rows, 0, "completion_tokens", -1), 22);
	cr_assert_eq(store_rows_int(rows, 0, "total_tokens", -1), 33);
	cr_assert_eq(store_rows_int(rows, 0, "cached_tokens", -1), 4);
	cr_assert_eq(store_rows_int(rows, 0, "stream", -1), 1);
	cr_assert_str_eq(store_rows_text(rows, 0, "client_addr"), "192.0.2.1");
	cr_assert_str_eq(store_rows_text(rows, 0, "attempts"), "[{\"provider_id\":7,\"status\":500}]");
	cr_assert_str_eq(store_rows_text(rows, 0, "request_body"),
	                 "{\"messages\":[{\"content\":\"h\xc3\xa9llo \xf0\x9f\x98\x80\"}]}");
	cr_assert_str_eq(store_rows_text(rows, 0, "response_body"), ""); /* empty, not NULL */
	store_rows_free(rows);
	store_close(st);
}

/* A body handed over in compressed pieces is stored whole. */
Test(logwriter, response_pieces_are_joined)
{
	struct logwriter *w = start(0, 0, 10);
	struct log_record *r = log_record_new();
	snprintf(r->id, sizeof(r->id), "req-pieces");
	r->created_at = 1;
	r->response_pieces = packbuf_new();
	char *want = malloc(20000);
	size_t n = 0;
	while (n < 19000)
		n += (size_t)snprintf(want + n, 20000 - n, "data: {\"n\":%zu}\n\n", n);
	for (size_t off = 0; off < n; off += 333)
		packbuf_append(r->response_pieces, want + off, off + 333 <= n ? 333 : n - off);
	cr_assert(logwriter_submit(w, r));
	struct logwriter_stats fin;
	logwriter_stop(w, 5000, &fin);
	cr_assert_eq(fin.written, 1);
	struct store *st = open_ok(0);
	struct store_rows *rows = row(st, "req-pieces");
	cr_assert_str_eq(store_rows_text(rows, 0, "response_body"), want);
	store_rows_free(rows);
	store_close(st);
	free(want);
}

Test(logwriter, unknowns_are_null)
{
	struct logwriter *w = start(0, 0, 10);
	struct log_record *r = log_record_new();
	cr_assert_eq(r->ttft_ms, -1);
	cr_assert_eq(r->latency_ms, -1);
	cr_assert_eq(r->prompt_tokens, -1);
	cr_assert_eq(r->cached_tokens, -1);
	snprintf(r->id, sizeof(r->id), "bare");
	int64_t before = clock_wall_ms();
	cr_assert(logwriter_submit(w, r)); /* created_at 0: stamped by submit */
	int64_t after = clock_wall_ms();
	logwriter_stop(w, 5000, NULL);

	static const char *const nullable[] = {
		"client_key_id", "client_key_name", "client_format", "client_model", "provider_id",
		"provider_name", "provider_model",  "status_code",   "outcome",      "error",
		"latency_ms",    "ttft_ms",         "prompt_tokens", "total_tokens", "completion_tokens",
		"cached_tokens", "client_addr",     "attempts",      "request_body", "response_body",
	};
	struct store *st = open_ok(0);
	struct store_rows *rows = row(st, "bare");
	for (size_t i = 0; i < sizeof(nullable) / sizeof(nullable[0]); i++) {
		cr_assert_geq(store_rows_col(rows, nullable[i]), 0, "column %s exists", nullable[i]);
		cr_assert(store_rows_isnull(rows, 0, nullable[i]), "%s is NULL", nullable[i]);
	}
	cr_assert_eq(store_rows_int(rows, 0, "stream", -1), 0);
	int64_t created = store_rows_int(rows, 0, "created_at", 0);
	cr_assert(created >= before && created <= after, "created_at %" PRId64, created);
	store_rows_free(rows);
	store_close(st);
}

#define PRODUCERS 4
#define PER_PRODUCER 5000

struct producer {
	struct logwriter *w;
	int index;
	int accepted;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	char prefix[16];
	snprintf(prefix, sizeof(prefix), "p%d", p->index);
	for (int i = 0; i < PER_PRODUCER; i++) {
		struct log_record *r = rec(prefix, i);
		r->request_body = strdup("{\"model\":\"m\",\"messages\":[]}");
		if (logwriter_submit(p->w, r))
			p->accepted++;
	}
	return NULL;
}

Test(logwriter, concurrent_producers_lose_nothing)
{
	struct logwriter *w = start(PRODUCERS * PER_PRODUCER, 256, 20);
	pthread_t t[PRODUCERS];
	struct producer p[PRODUCERS];

	for (int i = 0; i < PRODUCERS; i++) {
		p[i] = (struct producer){ .w = w, .index = i };
		cr_assert_eq(pthread_create(&t[i], NULL, produce, &p[i]), 0);
	}
	/* Stats are readable while producers and the writer run. */
	for (int i = 0; i < 20; i++) {
		struct logwriter_stats s = stats(w);
		check_identities(&s);
		usleep(500);
	}
	for (int i = 0; i < PRODUCERS; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(p[i].accepted, PER_PRODUCER);
	}
	struct logwriter_stats fin;
	logwriter_stop(w, 10000, &fin);
	check_identities(&fin);
	cr_assert_eq(fin.submitted, PRODUCERS * PER_PRODUCER);
	cr_assert_eq(fin.enqueued, fin.written + fin.dropped);
	cr_assert_eq(fin.written, PRODUCERS * PER_PRODUCER);
	cr_assert_eq(fin.dropped, 0);
	cr_assert_eq(fin.failed_batches, 0);
	cr_assert_eq(fin.queued, 0);
	cr_assert_eq(fin.queued_bytes, 0);
	cr_assert_eq(count_rows(), PRODUCERS * PER_PRODUCER);
}

Test(logwriter, full_queue_drops_without_blocking)
{
	struct store *lock = lock_db();
	struct logwriter *w = start(10, 4, 5);

	uint64_t t0 = clock_mono_ns();
	int accepted = 0;
	for (int i = 0; i < 1000; i++)
		accepted += logwriter_submit(w, rec("q", i));
	int64_t took = ms_since(t0);
	cr_assert_lt(took, 1000, "1000 submits took %" PRId64 " ms", took);

	sleep_ms(100); /* the writer is now waiting for the lock inside store_begin */
	struct logwriter_stats s = stats(w);
	check_identities(&s);
	cr_assert_eq(accepted, 10);
	cr_assert_eq(s.enqueued, 10);
	cr_assert_eq(s.rejected, 990);
	cr_assert_eq(s.dropped, 990);
	cr_assert_eq(s.written, 0);
	cr_assert_eq(s.queued, 10); /* taken by the writer still counts */

	unlock_db(lock);
	cr_assert(wait_written(w, 10, 5000), "the queued records get written once the lock is gone");
	cr_assert(logwriter_submit(w, rec("after", 0)), "room again");
	struct logwriter_stats fin;
	logwriter_stop(w, 5000, &fin);
	check_identities(&fin);
	cr_assert_eq(fin.written, 11);
	cr_assert_eq(fin.dropped, 990);
	cr_assert_eq(fin.failed_batches, 0);
	cr_assert_eq(count_rows(), 11);
}

Test(logwriter, stop_drains_everything_queued)
{
	/* flush_ms and batch_max so large that only stop makes it write. */
	struct logwriter *w = start(10000, 5000, 60000);
	for (int i = 0; i < 3000; i++)
		cr_assert(logwriter_submit(w, rec("d", i)));
	sleep_ms(100);
	cr_assert_eq(stats(w).written, 0);
	cr_assert_eq(stats(w).queued, 3000);

	struct logwriter_stats fin;
	uint64_t t0 = clock_mono_ns();
	logwriter_stop(w, 10000, &fin);
	cr_assert_lt(ms_since(t0), 10000);
	check_identities(&fin);
	cr_assert_eq(fin.written, 3000);
	cr_assert_eq(fin.dropped, 0);
	cr_assert_eq(fin.batches, 1);
	cr_assert_eq(count_rows(), 3000);
	cr_assert_eq(logwriter__threads_alive(), 0, "joined");
}

Test(logwriter, stop_gives_up_on_time_when_locked)
{
	struct store *lock = lock_db();
	struct logwriter *w = start(1000, 256, 5);
	for (int i = 0; i < 100; i++)
		cr_assert(logwriter_submit(w, rec("s", i)));
	sleep_ms(50); /* the writer is inside store_begin, waiting up to 5 s */

	struct logwriter_stats fin;
	uint64_t t0 = clock_mono_ns();
	logwriter_stop(w, 300, &fin);
	int64_t took = ms_since(t0);
	cr_assert_geq(took, 290, "stop waited for its timeout (%" PRId64 " ms)", took);
	cr_assert_lt(took, 300 + 250, "stop returned within timeout + margin (%" PRId64 " ms)", took);
	check_identities(&fin);
	cr_assert_eq(fin.submitted, 100);
	cr_assert_eq(fin.written, 0);
	cr_assert_eq(fin.dropped, 100);
	cr_assert_eq(fin.queued, 0);

	/* The detached thread finishes when it gets the lock, and must not
	 * write what stop reported as dropped. */
	cr_assert_eq(logwriter__threads_alive(), 1);
	unlock_db(lock);
	uint64_t t1 = clock_mono_ns();
	while (logwriter__threads_alive() > 0 && ms_since(t1) < 6000)
		usleep(1000);
	cr_assert_eq(logwriter__threads_alive(), 0);
	cr_assert_eq(count_rows(), 0);
}

Test(logwriter, batching_batches)
{
	struct logwriter *w = start(10000, 256, 50);
	for (int i = 0; i < 1000; i++)
		cr_assert(logwriter_submit(w, rec("b", i)));
	cr_assert(wait_written(w, 1000, 5000));
	struct logwriter_stats fin;
	logwriter_stop(w, 5000, &fin);
	cr_assert_eq(fin.written, 1000);
	/* At most batch_max rows per commit, and far fewer commits than rows. */
	cr_assert_geq(fin.batches, 4, "batches %" PRIu64, fin.batches);
	cr_assert_leq(fin.batches, 12, "batches %" PRIu64, fin.batches);
	cr_assert_eq(count_rows(), 1000);
}

Test(logwriter, lone_record_waits_flush_ms)
{
	struct logwriter *w = start(0, 256, 200);
	uint64_t t0 = clock_mono_ns();
	cr_assert(logwriter_submit(w, rec("f", 0)));
	cr_assert(wait_written(w, 1, 3000));
	int64_t took = ms_since(t0);
	cr_assert_geq(took, 150, "written after %" PRId64 " ms: did not wait for a batch", took);
	cr_assert_lt(took, 2000, "written after %" PRId64 " ms", took);
	logwriter_stop(w, 5000, NULL);
}

Test(logwriter, duplicate_id_is_dropped_not_failed)
{
	struct logwriter *w = start(0, 256, 5);
	struct log_record *r = rec("dup", 0);
	cr_assert(logwriter_submit(w, r));
	cr_assert(wait_written(w, 1, 3000));

	r = rec("dup", 0);
	free(r->outcome);
	r->outcome = strdup("second");
	cr_assert(logwriter_submit(w, r));
	cr_assert(logwriter_submit(w, rec("twice", 0))); /* twice in one batch */
	cr_assert(logwriter_submit(w, rec("twice", 0)));
	cr_assert(logwriter_submit(w, rec("new", 0)));
	struct logwriter_stats fin;
	logwriter_stop(w, 5000, &fin);
	check_identities(&fin);
	cr_assert_eq(fin.written, 3);
	cr_assert_eq(fin.duplicates, 2);
	cr_assert_eq(fin.dropped, 2);
	cr_assert_eq(fin.failed_batches, 0);

	struct store *st = open_ok(0);
	struct store_rows *rows = row(st, "dup-0");
	cr_assert_str_eq(store_rows_text(rows, 0, "outcome"), "ok", "the first row is kept");
	store_rows_free(rows);
	store_close(st);
	cr_assert_eq(count_rows(), 3);
}

/* A trigger that makes the row "bad-0" violate NOT NULL
 * (STORE_ECONSTRAINT): a refusal that depends on the row, not on the
 * database. */
static void refuse_bad_0(void)
{
	exec_ok("CREATE TRIGGER refuse_bad BEFORE INSERT ON request_logs WHEN NEW.id = 'bad-0' "
	        "BEGIN INSERT INTO settings (key, value, updated_at) VALUES ('x', NULL, 0); END");
}

Test(logwriter, refused_row_is_dropped_alone)
{
	refuse_bad_0();
	struct logwriter *w = start(0, 256, 20);
	cr_assert(logwriter_submit(w, rec("good", 0)));
	cr_assert(logwriter_submit(w, rec("bad", 0)));
	cr_assert(logwriter_submit(w, rec("good", 1)));
	struct logwriter_stats fin;
	logwriter_stop(w, 5000, &fin);
	check_identities(&fin);
	cr_assert_eq(fin.written, 2);
	cr_assert_eq(fin.dropped, 1);
	cr_assert_eq(fin.duplicates, 0);
	cr_assert_eq(fin.failed_batches, 0);
	cr_assert_eq(fin.batches, 1);
	cr_assert_eq(count_rows(), 2);
}

/* Rows go in several to a statement: a refused row and a duplicate in
 * the middle of a long batch cost only themselves, every other row of
 * their statements is written, and each row keeps its own columns. */
Test(logwriter, grouped_inserts_settle_each_row)
{
	refuse_bad_0();
	struct logwriter *w = start(0, 256, 200);
	for (int i = 0; i < 40; i++) {
		if (i == 20)
			cr_assert(logwriter_submit(w, rec("bad", 0)));
		if (i == 37)
			cr_assert(logwriter_submit(w, rec("g", 5))); /* g-5 again */
		cr_assert(logwriter_submit(w, rec("g", i)));
	}
	struct logwriter_stats fin;
	logwriter_stop(w, 5000, &fin);
	check_identities(&fin);
	cr_assert_eq(fin.written, 40);
	cr_assert_eq(fin.duplicates, 1);
	cr_assert_eq(fin.dropped, 2);
	cr_assert_eq(fin.failed_batches, 0);
	cr_assert_eq(fin.batches, 1);
	cr_assert_eq(count_rows(), 40);
	struct store *st = open_ok(0);
	for (int i = 0; i < 40; i += 13) {
		char id[16];
		snprintf(id, sizeof(id), "g-%d", i);
		struct store_rows *rows = row(st, id);
		cr_assert_str_eq(store_rows_text(rows, 0, "id"), id);
		cr_assert_eq(store_rows_int(rows, 0, "created_at", 0), 1700000000000 + i, "%s", id);
		cr_assert_str_eq(store_rows_text(rows, 0, "outcome"), "ok");
		store_rows_free(rows);
	}
	store_close(st);
}

Test(logwriter, failed_batch_is_retried)
{
	struct logwriter *w = start(0, 256, 5);
	exec_ok("ALTER TABLE request_logs RENAME TO request_logs_away");
	for (int i = 0; i < 3; i++)
		cr_assert(logwriter_submit(w, rec("r", i)));
	uint64_t t0 = clock_mono_ns();
	while (stats(w).failed_batches < 1 && ms_since(t0) < 3000)
		usleep(1000);
	cr_assert_geq(stats(w).failed_batches, 1);
	exec_ok("ALTER TABLE request_logs_away RENAME TO request_logs");

	cr_assert(wait_written(w, 3, 5000), "the same batch is written on a later attempt");
	struct logwriter_stats fin;
	logwriter_stop(w, 5000, &fin);
	check_identities(&fin);
	cr_assert_eq(fin.written, 3);
	cr_assert_eq(fin.dropped, 0);
	cr_assert_eq(fin.batches, 1);
	cr_assert_geq(fin.failed_batches, 1);
	cr_assert_lt(fin.failed_batches, LOGWRITER_ATTEMPTS);
	cr_assert_eq(count_rows(), 3);
}

Test(logwriter, batch_failing_every_attempt_is_dropped)
{
	struct logwriter *w = start(0, 256, 5);
	exec_ok("ALTER TABLE request_logs RENAME TO request_logs_away");
	uint64_t t0 = clock_mono_ns();
	for (int i = 0; i < 3; i++)
		cr_assert(logwriter_submit(w, rec("x", i)));
	while (stats(w).dropped < 3 && ms_since(t0) < 5000)
		usleep(1000);
	int64_t took = ms_since(t0);
	struct logwriter_stats s = stats(w);
	check_identities(&s);
	cr_assert_eq(s.dropped, 3);
	cr_assert_eq(s.written, 0);
	cr_assert_eq(s.failed_batches, LOGWRITER_ATTEMPTS);
	cr_assert_geq(took, 100 + 200 + 400 - 50, "backed off between attempts (%" PRId64 " ms)", took);

	/* The writer goes on once the database is back. */
	exec_ok("ALTER TABLE request_logs_away RENAME TO request_logs");
	cr_assert(logwriter_submit(w, rec("y", 0)));
	cr_assert(logwriter_submit(w, rec("y", 1)));
	struct logwriter_stats fin;
	logwriter_stop(w, 5000, &fin);
	check_identities(&fin);
	cr_assert_eq(fin.written, 2);
	cr_assert_eq(fin.dropped, 3);
	cr_assert_eq(fin.failed_batches, LOGWRITER_ATTEMPTS);
	cr_assert_eq(count_rows(), 2);
}

Test(logwriter, invalid_utf8_is_repaired_not_refused)
{
	struct logwriter *w = start(0, 256, 5);
	struct log_record *r = rec("u", 0);
	r->request_body = strdup("ok\xff\xfe end");
	r->client_model = strdup("\xc0\xaf");      /* overlong '/' */
	r->response_body = strdup("cut \xe2\x82"); /* truncated sequence */
	cr_assert(logwriter_submit(w, r));
	struct logwriter_stats fin;
	logwriter_stop(w, 5000, &fin);
	cr_assert_eq(fin.written, 1);

	struct store *st = open_ok(0);
	struct store_rows *rows = row(st, "u-0");
	cr_assert_str_eq(store_rows_text(rows, 0, "request_body"), "ok\xef\xbf\xbd\xef\xbf\xbd end");
	cr_assert_str_eq(store_rows_text(rows, 0, "client_model"), "\xef\xbf\xbd\xef\xbf\xbd");
	cr_assert_str_eq(store_rows_text(rows, 0, "response_body"), "cut \xef\xbf\xbd\xef\xbf\xbd");
	store_rows_free(rows);
	store_close(st);
}

Test(logwriter, oversized_text_is_cut_at_a_character)
{
	struct logwriter *w = start(0, 256, 5);
	struct log_record *r = rec("huge", 0);
	size_t n = (size_t)STORE_VALUE_MAX + 1024;
	r->response_body = malloc(n + 1);
	memset(r->response_body, 'a', n);
	memcpy(r->response_body + STORE_VALUE_MAX - 1, "\xc3\xa9", 2); /* straddles the limit */
	r->response_body[n] = '\0';
	cr_assert(logwriter_submit(w, r));
	struct logwriter_stats fin;
	logwriter_stop(w, 10000, &fin);
	cr_assert_eq(fin.written, 1);

	struct store *st = open_ok(0);
	struct store_rows *rows = NULL;
	int rc = store_query(st, "SELECT length(response_body) AS n FROM request_logs", NULL, 0, &rows);
	cr_assert_eq(rc, STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(store_rows_int(rows, 0, "n", -1), STORE_VALUE_MAX - 1);
	store_rows_free(rows);
	store_close(st);
}

Test(logwriter, byte_bound_rejects)
{
	char err[512] = "";
	struct logwriter_opts o = { .max_queue_bytes = 4096, .flush_ms = 60000 };
	struct logwriter *w = logwriter_start(g_db, &o, err, sizeof(err));
	cr_assert_not_null(w, "%s", err);

	struct log_record *big = rec("big", 0);
	big->request_body = malloc(5000);
	memset(big->request_body, 'a', 4999);
	big->request_body[4999] = '\0';
	cr_assert(!logwriter_submit(w, big), "bigger than the whole budget");

	int accepted = 0;
	for (int i = 0; i < 100; i++)
		accepted += logwriter_submit(w, rec("small", i));
	struct logwriter_stats s = stats(w);
	check_identities(&s);
	cr_assert_gt(accepted, 0);
	cr_assert_lt(accepted, 100);
	cr_assert_leq(s.queued_bytes, 4096);
	cr_assert_eq(s.rejected, 1 + 100 - (uint64_t)accepted);

	struct logwriter_stats fin;
	logwriter_stop(w, 5000, &fin);
	cr_assert_eq(fin.written, (uint64_t)accepted);
	cr_assert_eq(count_rows(), accepted);
}

Test(logwriter, edges)
{
	char err[512] = "";

	log_record_free(NULL);
	cr_assert(!logwriter_submit(NULL, rec("none", 0)), "no writer: freed, not queued");
	logwriter_stop(NULL, 0, NULL);

	struct logwriter_opts bad = { .batch_max = -1 };
	cr_assert_null(logwriter_start(g_db, &bad, err, sizeof(err)));
	cr_assert_neq(err[0], '\0');
	err[0] = '\0';
	char missing[256];
	snprintf(missing, sizeof(missing), "%s/no/such/dir/x.db", g_dir);
	cr_assert_null(logwriter_start(missing, NULL, err, sizeof(err)));
	cr_assert_neq(err[0], '\0');

	struct logwriter *w = start(0, 0, 0);
	cr_assert(!logwriter_submit(w, NULL));
	struct log_record *r = log_record_new(); /* empty id */
	cr_assert(!logwriter_submit(w, r));
	r = rec("long", 0);
	memset(r->id, 'z', sizeof(r->id)); /* no terminator: cut at LOGWRITER_ID_MAX */
	cr_assert(logwriter_submit(w, r));
	struct logwriter_stats fin;
	logwriter_stop(w, 5000, &fin);
	cr_assert_eq(fin.rejected, 1);
	cr_assert_eq(fin.written, 1);
	char id[LOGWRITER_ID_MAX + 1];
	memset(id, 'z', LOGWRITER_ID_MAX);
	id[LOGWRITER_ID_MAX] = '\0';
	struct store *st = open_ok(0);
	store_rows_free(row(st, id));
	store_close(st);
}

/* Short strings live inside the record; what does not fit gets its own
 * allocation; log_record_free frees exactly the latter (ASan checks). */
Test(logwriter, record_strings_inside_the_record_and_beyond)
{
	struct log_record *r = log_record_new();
	cr_assert_null(log_record_strdup(r, NULL));
	r->client_format = log_record_strdup(r, "openai");
	r->outcome = log_record_strdup(r, "ok");
	cr_assert(r->client_format >= r->small && r->client_format < r->small + sizeof(r->small));
	cr_assert_str_eq(r->client_format, "openai");
	char big[400];
	memset(big, 'm', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	r->client_model = log_record_strdup(r, big); /* larger than the room */
	cr_assert(!(r->client_model >= r->small && r->client_model < r->small + sizeof(r->small)));
	cr_assert_str_eq(r->client_model, big);
	/* fill the room exactly, then one more byte goes outside */
	size_t left = sizeof(r->small) - r->small_used;
	char fill[sizeof(r->small)];
	memset(fill, 'f', left - 1);
	fill[left - 1] = '\0';
	r->provider_name = log_record_strdup(r, fill);
	cr_assert_eq(r->small_used, sizeof(r->small));
	r->provider_model = log_record_strdup(r, "x");
	cr_assert(!(r->provider_model >= r->small && r->provider_model < r->small + sizeof(r->small)));
	cr_assert_str_eq(r->outcome, "ok"); /* earlier copies untouched */
	log_record_free(r);
}
