/*
 * logwriter.c — see logwriter.h.  The queue, the writer thread, and how
 * a batch of request_logs rows reaches the database.
 *
 * The queue is an intrusive singly linked list (log_record.lw_next) with
 * a head, a tail and a count, under one mutex.  Two sizes are kept:
 * `pending`, the records not yet taken by the writer, and `queued` /
 * `queued_bytes`, which also count the records the writer has taken and
 * not yet settled.  Submissions are admitted against the latter, so the
 * bound holds however slow the database is.
 *
 * The writer thread takes the whole pending list in O(1) under the lock
 * and releases it before any I/O; it then writes the list in chunks of
 * batch_max rows, one transaction each, and after each chunk takes the
 * lock again only to settle the counters.  Records are freed outside
 * the lock.
 *
 * Stop: `stopping` makes submit refuse and the writer flush at once;
 * when the caller's deadline passes, `abandon` makes the writer drop
 * what it holds at its next check (between database calls, or during a
 * backoff).  If the writer is stuck inside one call (store_begin waits
 * up to 5 s for a lock), stop marks w `orphaned` and detaches the
 * thread, which then owns w and frees it when it exits.  Whoever sees
 * `done` set under the lock decides: stop joins and frees, or the
 * orphaned thread frees itself — never both.
 *
 * Retention is the writer's other job, in the same thread because that
 * thread owns the log handle and knows when rows are waiting: its wait
 * also ends at the next retention deadline, and a retention run stops
 * between statements as soon as a batch is due (batch_ready), so
 * request logs are never held back by more than one DELETE of
 * RETENTION_BATCH rows.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/logwriter.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/packbuf.h"
#include "util/utf8.h"

#define DEFAULT_MAX_QUEUE 10000
#define DEFAULT_MAX_QUEUE_BYTES ((size_t)64 * 1024 * 1024)
#define DEFAULT_BATCH_MAX                                                                                    \
	1024 /* rows per transaction (a page a batch touches goes to the WAL once per commit) */
#define DEFAULT_FLUSH_MS 200
#define BATCH_MAX_LIMIT 10000  /* rows per transaction: keep the write lock short */
#define FLUSH_MS_LIMIT 3600000 /* one hour */
#define BACKOFF_FIRST_MS 100   /* after the first failed attempt, doubling */
#define BACKOFF_MAX_MS 5000    /* ... up to this */
#define STOP_GRACE_MS 50       /* after the deadline, for the writer to notice `abandon` */
#define NSTR 11                /* string columns of a row */
#define NCOLS 23               /* columns of request_logs */

/* Retention (see retention_run). */
#define RETENTION_DEFAULT_MS 600000 /* ten minutes between retention checks */
#define RETENTION_FIRST_MS 60000    /* the first check, at most this long after start */
#define RETENTION_RESUME_MS 1000    /* after a run that yielded with work left */
#define RETENTION_MAX_MS 86400000   /* retention_check_ms bound: one day */
#define RETENTION_BATCH 1000        /* rows per DELETE (one transaction each) */
#define RETENTION_PAUSE_MS 5        /* between two DELETEs: other writers get the lock */
#define RETENTION_DAYS_DEFAULT 30   /* as settings.c: when the setting is absent or invalid */
#define RETENTION_DAYS_MAX 3650     /* as settings.c */
#define RECLAIM_PAGES 512           /* pages per store_reclaim step */
#define RECLAIM_STEPS 64            /* steps per run: 32768 pages, 128 MiB of 4 KiB pages */

/* Rows go in up to ROWS_PER_INSERT per INSERT statement: the statement's
 * own set-up and end (binding aside) cost about as much as a sixth of a
 * row's insert, paid once for the group.  insert_sql[k] names k rows. */
#define ROWS_PER_INSERT 16
#define INSERT_HEAD                                                                                          \
	"INSERT INTO request_logs (id, created_at, client_key_id, client_key_name, client_format, "          \
	"client_model, provider_id, provider_name, provider_model, status_code, outcome, error, "            \
	"latency_ms, ttft_ms, prompt_tokens, completion_tokens, total_tokens, cached_tokens, stream, "       \
	"client_addr, attempts, request_body, response_body) VALUES "
#define INSERT_ROW "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#define INSERT_TAIL " ON CONFLICT (id) DO NOTHING"

static char *insert_sql[ROWS_PER_INSERT + 1];
static pthread_once_t insert_sql_once = PTHREAD_ONCE_INIT;

static void make_insert_sql(void)
{
	for (size_t k = 1; k <= ROWS_PER_INSERT; k++) {
		size_t len = sizeof(INSERT_HEAD) + k * sizeof(INSERT_ROW) + sizeof(INSERT_TAIL);
		char *q = xmalloc(len);
		size_t o = 0;
		memcpy(q, INSERT_HEAD, sizeof(INSERT_HEAD) - 1);
		o += sizeof(INSERT_HEAD) - 1;
		for (size_t i = 0; i < k; i++) {
			if (i)
				q[o++] = ',';
			memcpy(q + o, INSERT_ROW, sizeof(INSERT_ROW) - 1);
			o += sizeof(INSERT_ROW) - 1;
		}
		memcpy(q + o, INSERT_TAIL, sizeof(INSERT_TAIL)); /* with its NUL */
		insert_sql[k] = q;                               /* kept for the process's life */
	}
}

/* Oldest first, so an interrupted run leaves no holes; the created_at
 * index finds them and the primary key deletes them. */
static const char expire_sql[] = "DELETE FROM request_logs WHERE id IN (SELECT id FROM request_logs "
                                 "WHERE created_at < ? ORDER BY created_at LIMIT ?)";

#define DROP_WARN_EVERY_NS (10ull * 1000000000ull)

struct logwriter {
	/* Set by logwriter_start, read-only afterwards. */
	size_t max_queue;
	size_t max_bytes;
	size_t batch_max;
	int flush_ms;
	int retention_ms; /* 0 = retention off */
	pthread_t thread;
	uint64_t last_drop_warn_ns; /* under mu: when a full queue was last reported */

	uint64_t retention_due_ns; /* clock_mono_ns() of the next check; only the writer thread */

	struct store *st; /* owned by the writer thread, which closes it */

	atomic_bool abandon; /* set by stop at its deadline; read by the writer without the lock */

	pthread_mutex_t mu;
	pthread_cond_t wake;    /* the writer waits here: records, stop, abandon */
	pthread_cond_t done_cv; /* stop waits here for `done` */

	/* Under mu. */
	struct log_record *head, *tail; /* owned: records not yet taken by the writer */
	size_t pending;                 /* records in head..tail */
	uint64_t oldest_ns;             /* clock_mono_ns() when head arrived */
	size_t queued;                  /* pending + taken by the writer and not settled */
	size_t queued_bytes;            /* their lw_bytes */
	struct logwriter_stats c;       /* counters; c.queued* unused (see above) */
	bool stopping;                  /* submit refuses; the writer flushes and exits when empty */
	bool done;                      /* the thread has finished with everything but w itself */
	bool orphaned;                  /* stop gave up waiting: the thread frees w */
};

static atomic_int threads_alive;

int logwriter__threads_alive(void)
{
	return atomic_load(&threads_alive);
}

/* ---- records ----------------------------------------------------------- */

struct log_record *log_record_new(void)
{
	struct log_record *r = xcalloc(1, sizeof(*r));

	r->latency_ms = -1;
	r->ttft_ms = -1;
	r->prompt_tokens = -1;
	r->completion_tokens = -1;
	r->total_tokens = -1;
	r->cached_tokens = -1;
	return r;
}

/* The string fields of r, in column order, for loops over them. */
static void record_strings(struct log_record *r, char **out[NSTR])
{
	out[0] = &r->client_key_name;
	out[1] = &r->client_format;
	out[2] = &r->client_model;
	out[3] = &r->provider_name;
	out[4] = &r->provider_model;
	out[5] = &r->outcome;
	out[6] = &r->error;
	out[7] = &r->client_addr;
	out[8] = &r->attempts_json;
	out[9] = &r->request_body;
	out[10] = &r->response_body;
}

char *log_record_strdup(struct log_record *r, const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	if (n > sizeof(r->small) - r->small_used)
		return xstrdup(s);
	char *d = r->small + r->small_used;
	memcpy(d, s, n);
	r->small_used += n;
	return d;
}

static bool in_small(const struct log_record *r, const char *p)
{
	return p >= r->small && p < r->small + sizeof(r->small);
}

void log_record_free(struct log_record *r)
{
	char **s[NSTR];

	if (!r)
		return;
	record_strings(r, s);
	for (int i = 0; i < NSTR; i++) {
		if (!in_small(r, *s[i]))
			free(*s[i]);
	}
	packbuf_free(r->response_pieces);
	free(r);
}

/* What r counts against max_queue_bytes. */
static size_t record_bytes(struct log_record *r)
{
	char **s[NSTR];
	size_t n = sizeof(*r);

	record_strings(r, s);
	for (int i = 0; i < NSTR; i++) {
		if (*s[i])
			n += strlen(*s[i]) + 1;
	}
	if (r->response_pieces)
		n += packbuf_memory(r->response_pieces);
	return n;
}

static void free_list(struct log_record *r)
{
	while (r) {
		struct log_record *next = r->lw_next;
		log_record_free(r);
		r = next;
	}
}

/* ---- TEXT parameters --------------------------------------------------- */

/*
 * s as a TEXT parameter the store accepts.  Usually it borrows s; when s
 * is not valid UTF-8 or is longer than STORE_VALUE_MAX, *copy_out gets a
 * malloc'd copy (freed by the caller after the statement) with U+FFFD for
 * each bad byte, cut at a character boundary within STORE_VALUE_MAX.
 */
static struct store_value text_param(const char *s, char **copy_out)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t len, i = 0, o = 0, cap;
	char *out;

	*copy_out = NULL;
	if (!s)
		return sv_null();
	len = strlen(s);
	if (len <= STORE_VALUE_MAX && utf8_valid(u, len))
		return sv_text_checked(s, len); /* strlen: no NUL inside */
	cap = len > STORE_VALUE_MAX / 3 ? STORE_VALUE_MAX : len * 3;
	out = xmalloc(cap + 1);
	while (i < len) {
		size_t k = utf8_seq_len(u + i, len - i);
		if (k) {
			if (o + k > cap)
				break;
			memcpy(out + o, s + i, k);
			o += k;
			i += k;
		} else {
			if (o + 3 > cap)
				break;
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	out[o] = '\0';
	*copy_out = out;
	return sv_text_checked(out, o); /* made of whole characters */
}

static struct store_value opt_int(int64_t v, bool known)
{
	return known ? sv_int(v) : sv_null();
}

/* ---- writing one chunk --------------------------------------------------- */

struct chunk_result {
	size_t written;    /* rows inserted */
	size_t duplicates; /* rows whose id already existed */
	size_t refused;    /* rows the store refused on their own */
};

/* The parameters of one row (NCOLS of them); strings that had to be
 * repaired are copied into copies[0..NSTR), to be freed after the
 * statement (NULL where no copy was needed). */
static void row_params(struct log_record *r, struct store_value *p, char **copies)
{
	if (r->response_pieces) { /* join the pieces, here in the writer */
		if (!r->response_body) {
			r->response_body = packbuf_join(r->response_pieces, NULL);
			if (!r->response_body)
				log_error(
				    r->id,
				    "logwriter: a kept response body did not decompress; logged without it");
		}
		packbuf_free(r->response_pieces);
		r->response_pieces = NULL;
	}
	p[0] = sv_textn(r->id, strnlen(r->id, LOGWRITER_ID_MAX));
	p[1] = sv_int(r->created_at);
	p[2] = opt_int(r->client_key_id, r->client_key_id != 0);
	p[3] = text_param(r->client_key_name, &copies[0]);
	p[4] = text_param(r->client_format, &copies[1]);
	p[5] = text_param(r->client_model, &copies[2]);
	p[6] = opt_int(r->provider_id, r->provider_id != 0);
	p[7] = text_param(r->provider_name, &copies[3]);
	p[8] = text_param(r->provider_model, &copies[4]);
	p[9] = opt_int(r->status_code, r->status_code != 0);
	p[10] = text_param(r->outcome, &copies[5]);
	p[11] = text_param(r->error, &copies[6]);
	p[12] = opt_int(r->latency_ms, r->latency_ms >= 0);
	p[13] = opt_int(r->ttft_ms, r->ttft_ms >= 0);
	p[14] = opt_int(r->prompt_tokens, r->prompt_tokens >= 0);
	p[15] = opt_int(r->completion_tokens, r->completion_tokens >= 0);
	p[16] = opt_int(r->total_tokens, r->total_tokens >= 0);
	p[17] = opt_int(r->cached_tokens, r->cached_tokens >= 0);
	p[18] = sv_bool(r->stream);
	p[19] = text_param(r->client_addr, &copies[7]);
	p[20] = text_param(r->attempts_json, &copies[8]);
	p[21] = text_param(r->request_body, &copies[9]);
	p[22] = text_param(r->response_body, &copies[10]);
}

/* Refusals that depend on the statement's rows alone: the statement was
 * rolled back, the transaction goes on. */
static bool refused_alone(int rc)
{
	return rc == STORE_EINVAL || rc == STORE_ECONSTRAINT || rc == STORE_ECONFLICT;
}

/*
 * Insert rows[0..k) (1 <= k <= ROWS_PER_INSERT) inside the open
 * transaction with one statement.  0 when every row is settled (inserted,
 * duplicate or refused alone: counted in *res), else the store's error,
 * which fails the whole attempt.  When the store refuses the group, each
 * row is tried alone, so one bad row costs only itself.
 */
static int insert_rows(struct store *st, struct log_record **rows, size_t k, struct chunk_result *res)
{
	struct store_value p[ROWS_PER_INSERT * NCOLS] = { 0 };
	char *copies[ROWS_PER_INSERT * NSTR];
	int64_t changes = 0;

	for (size_t i = 0; i < k; i++)
		row_params(rows[i], p + i * NCOLS, copies + i * NSTR);
	int rc = store_exec(st, insert_sql[k], p, k * NCOLS, &changes);
	for (size_t i = 0; i < k * NSTR; i++)
		free(copies[i]);
	if (rc == STORE_OK) {
		res->written += (size_t)changes;
		res->duplicates += k - (size_t)changes; /* ON CONFLICT DO NOTHING */
		return STORE_OK;
	}
	if (!refused_alone(rc))
		return rc;
	if (k > 1) {
		for (size_t i = 0; i < k; i++) {
			rc = insert_rows(st, rows + i, 1, res);
			if (rc)
				return rc;
		}
		return STORE_OK;
	}
	log_warn(rows[0]->id, "logwriter: request log row refused, dropped: %s", store_errmsg(st));
	res->refused++;
	return STORE_OK;
}

#define ABANDONED 1 /* not a STORE_E* code: stop gave up, the chunk is dropped */

/* One attempt at rows[0..n) in one transaction. */
static int write_chunk(struct logwriter *w, struct log_record **rows, size_t n, struct chunk_result *res)
{
	int rc;

	*res = (struct chunk_result){ 0 };
	rc = store_begin(w->st);
	if (rc)
		return rc;
	pthread_once(&insert_sql_once, make_insert_sql);
	for (size_t i = 0; i < n; i += ROWS_PER_INSERT) {
		if (atomic_load(&w->abandon)) {
			rc = ABANDONED;
			goto fail;
		}
		rc = insert_rows(w->st, rows + i, n - i < ROWS_PER_INSERT ? n - i : ROWS_PER_INSERT, res);
		if (rc)
			goto fail;
	}
	if (atomic_load(&w->abandon)) {
		rc = ABANDONED;
		goto fail;
	}
	return store_commit(w->st); /* rolled back on failure */
fail:
	store_rollback(w->st);
	return rc;
}

/* A CLOCK_MONOTONIC deadline for pthread_cond_timedwait (the condition
 * variables are made with that clock: wall-clock jumps do not matter). */
static struct timespec mono_ts(uint64_t ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u) };
}

/* Sleep ms, or less if stop abandons the queue. */
static void backoff(struct logwriter *w, int ms)
{
	uint64_t deadline = clock_mono_ns() + (uint64_t)ms * 1000000u;
	struct timespec ts = mono_ts(deadline);

	pthread_mutex_lock(&w->mu);
	while (!atomic_load(&w->abandon) && clock_mono_ns() < deadline)
		pthread_cond_timedwait(&w->wake, &w->mu, &ts);
	pthread_mutex_unlock(&w->mu);
}

/*
 * Write rows[0..n) with retries, then settle them: counters, queue size.
 * *streak counts consecutive failed attempts across chunks (the backoff
 * grows with it, so a long outage neither spins nor floods the log).
 */
static void write_settle(struct logwriter *w, struct log_record **rows, size_t n, unsigned *streak)
{
	struct chunk_result res = { 0 };
	bool committed = false;
	size_t bytes = 0;
	int rc;

	for (int attempt = 1; attempt <= LOGWRITER_ATTEMPTS; attempt++) {
		if (atomic_load(&w->abandon))
			break;
		rc = write_chunk(w, rows, n, &res);
		if (rc == STORE_OK) {
			if (*streak)
				log_info(NULL,
				         "logwriter: writing request logs again after %u failed attempt%s",
				         *streak, *streak == 1 ? "" : "s");
			*streak = 0;
			committed = true;
			break;
		}
		if (rc == ABANDONED)
			break;
		(*streak)++;
		pthread_mutex_lock(&w->mu);
		w->c.failed_batches++;
		pthread_mutex_unlock(&w->mu);
		log_warn(NULL, "logwriter: writing %zu request logs failed (attempt %d of %d%s): %s", n,
		         attempt, LOGWRITER_ATTEMPTS, attempt == LOGWRITER_ATTEMPTS ? ", dropping them" : "",
		         store_errmsg(w->st));
		if (attempt < LOGWRITER_ATTEMPTS) {
			unsigned shift = *streak - 1 < 6 ? *streak - 1 : 6;
			int ms = BACKOFF_FIRST_MS << shift;
			backoff(w, ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS);
		}
	}
	if (!committed)
		res = (struct chunk_result){ 0 };

	for (size_t i = 0; i < n; i++)
		bytes += rows[i]->lw_bytes;
	pthread_mutex_lock(&w->mu);
	w->queued -= n;
	w->queued_bytes -= bytes;
	w->c.written += res.written;
	w->c.duplicates += res.duplicates;
	w->c.dropped += n - res.written;
	if (committed)
		w->c.batches++;
	pthread_mutex_unlock(&w->mu);
	for (size_t i = 0; i < n; i++)
		log_record_free(rows[i]);
}

/* ---- the writer thread ------------------------------------------------- */

/* With w->mu held: is a batch due now (full, flush_ms old, or stopping)? */
static bool batch_ready(struct logwriter *w, uint64_t now)
{
	if (w->pending == 0)
		return false;
	return w->stopping || w->pending >= w->batch_max ||
	       now >= w->oldest_ns + (uint64_t)w->flush_ms * 1000000u;
}

enum work { WORK_EXIT, WORK_BATCH, WORK_RETENTION };

/* With w->mu held: wait until there is a batch to write or a retention
 * check is due, or the thread should exit.  Batches come first. */
static enum work wait_for_work(struct logwriter *w)
{
	for (;;) {
		uint64_t now = clock_mono_ns(), deadline = UINT64_MAX;

		if (atomic_load(&w->abandon))
			return WORK_EXIT;
		if (w->pending == 0 && w->stopping)
			return WORK_EXIT;
		if (batch_ready(w, now))
			return WORK_BATCH;
		if (w->retention_ms && !w->stopping) {
			if (now >= w->retention_due_ns)
				return WORK_RETENTION;
			deadline = w->retention_due_ns;
		}
		if (w->pending) {
			uint64_t flush = w->oldest_ns + (uint64_t)w->flush_ms * 1000000u;
			deadline = flush < deadline ? flush : deadline;
		}
		if (deadline == UINT64_MAX) {
			pthread_cond_wait(&w->wake, &w->mu);
		} else {
			struct timespec ts = mono_ts(deadline);
			pthread_cond_timedwait(&w->wake, &w->mu, &ts);
		}
	}
}

/* ---- retention ----------------------------------------------------------- */

/* log_retention_days from the settings table; the default when absent
 * or not an integer in range (settings.c validates writes, but the row
 * may have been written by hand); -1 when it cannot be read now. */
static int64_t retention_days(struct logwriter *w)
{
	char *v = NULL, *end = NULL;
	int rc = store_setting_get(w->st, "log_retention_days", &v);
	int64_t days;

	if (rc == STORE_ENOTFOUND)
		return RETENTION_DAYS_DEFAULT;
	if (rc) {
		log_warn(NULL, "logwriter: retention: cannot read log_retention_days: %s",
		         store_errmsg(w->st));
		return -1;
	}
	errno = 0;
	days = strtoll(v, &end, 10);
	if (errno || end == v || *end || days < 1 || days > RETENTION_DAYS_MAX) {
		log_warn(NULL,
		         "logwriter: retention: log_retention_days is not an integer from 1 to %d; using %d",
		         RETENTION_DAYS_MAX, RETENTION_DAYS_DEFAULT);
		days = RETENTION_DAYS_DEFAULT;
	}
	free(v);
	return days;
}

/* Pause up to ms between two retention statements.  True when the run
 * should stop now: a batch of request logs is due, or stop was called. */
static bool retention_yield(struct logwriter *w, int ms)
{
	uint64_t deadline = clock_mono_ns() + (uint64_t)ms * 1000000u;
	struct timespec ts = mono_ts(deadline);
	bool stop;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		uint64_t now = clock_mono_ns();
		stop = atomic_load(&w->abandon) || w->stopping || batch_ready(w, now);
		if (stop || now >= deadline)
			break;
		pthread_cond_timedwait(&w->wake, &w->mu, &ts);
	}
	pthread_mutex_unlock(&w->mu);
	return stop;
}

/*
 * One retention check: delete expired rows, then reclaim free pages.
 * Always does at least one statement of each, so a busy writer still
 * makes progress; when it yields with work left it comes back after
 * RETENTION_RESUME_MS instead of the full period.  Errors are logged and
 * retried at the next check.
 */
static void retention_run(struct logwriter *w)
{
	int64_t days = retention_days(w), deleted = 0, left = 0;
	bool more = false;
	int rc = STORE_OK;

	if (days > 0) {
		int64_t cutoff = clock_wall_ms() - days * 86400000;
		for (;;) {
			struct store_value p[] = { sv_int(cutoff), sv_int(RETENTION_BATCH) };
			int64_t n = 0;
			rc = store_exec(w->st, expire_sql, p, 2, &n);
			if (rc) {
				log_warn(NULL, "logwriter: retention: deleting old request logs failed: %s",
				         store_errmsg(w->st));
				break;
			}
			deleted += n;
			pthread_mutex_lock(&w->mu);
			w->c.expired += (uint64_t)n;
			pthread_mutex_unlock(&w->mu);
			if (n < RETENTION_BATCH)
				break;
			if (retention_yield(w, RETENTION_PAUSE_MS)) {
				more = true;
				break;
			}
		}
	}
	if (deleted > 0)
		log_info(NULL, "logwriter: retention: deleted %lld request logs older than %lld days%s",
		         (long long)deleted, (long long)days, more ? " (more to come)" : "");
	for (int step = 0; !more && step < RECLAIM_STEPS; step++) {
		if (step > 0 && retention_yield(w, RETENTION_PAUSE_MS)) {
			more = true;
			break;
		}
		rc = store_reclaim(w->st, RECLAIM_PAGES, &left);
		if (rc) {
			log_warn(NULL, "logwriter: retention: reclaiming free pages failed: %s",
			         store_errmsg(w->st));
			break;
		}
		if (left == 0)
			break;
		if (step == RECLAIM_STEPS - 1)
			more = true;
	}

	pthread_mutex_lock(&w->mu);
	w->c.retention_runs++;
	pthread_mutex_unlock(&w->mu);
	int next_ms = more && RETENTION_RESUME_MS < w->retention_ms ? RETENTION_RESUME_MS : w->retention_ms;
	w->retention_due_ns = clock_mono_ns() + (uint64_t)next_ms * 1000000u;
}

static void logwriter_destroy(struct logwriter *w)
{
	pthread_cond_destroy(&w->done_cv);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

static void *writer_main(void *arg)
{
	struct logwriter *w = arg;
	struct log_record **rows = xcalloc(w->batch_max, sizeof(struct log_record *));
	unsigned streak = 0;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		enum work k = wait_for_work(w);
		if (k == WORK_EXIT)
			break;
		if (k == WORK_RETENTION) {
			pthread_mutex_unlock(&w->mu);
			retention_run(w);
			pthread_mutex_lock(&w->mu);
			continue;
		}
		struct log_record *list = w->head;
		w->head = w->tail = NULL;
		w->pending = 0;
		pthread_mutex_unlock(&w->mu);

		while (list) {
			size_t n = 0;
			while (list && n < w->batch_max) {
				rows[n++] = list;
				list = list->lw_next;
			}
			write_settle(w, rows, n, &streak);
		}
		pthread_mutex_lock(&w->mu);
	}

	/* Abandoned (or stopping with nothing left): drop what is pending. */
	struct log_record *rest = w->head;
	size_t nrest = w->pending;
	w->head = w->tail = NULL;
	w->pending = 0;
	w->queued -= nrest;
	for (struct log_record *r = rest; r; r = r->lw_next)
		w->queued_bytes -= r->lw_bytes;
	w->c.dropped += nrest;
	pthread_mutex_unlock(&w->mu);

	free_list(rest);
	free(rows);
	store_close(w->st);
	w->st = NULL;

	pthread_mutex_lock(&w->mu);
	bool orphan = w->orphaned;
	w->done = true;
	pthread_cond_signal(&w->done_cv);
	pthread_mutex_unlock(&w->mu);
	/* Unless orphaned, stop owns w from here on: touch nothing. */
	if (orphan)
		logwriter_destroy(w);
	atomic_fetch_sub(&threads_alive, 1);
	return NULL;
}

/* ---- public API -------------------------------------------------------- */

struct logwriter *logwriter_start(const char *db_location, const struct logwriter_opts *opts, char *err,
                                  size_t errlen)
{
	struct logwriter_opts o = opts ? *opts : (struct logwriter_opts){ 0 };
	struct logwriter *w = NULL;
	struct store *st = NULL;
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	if (errlen)
		err[0] = '\0';
	if (o.batch_max < 0 || o.batch_max > BATCH_MAX_LIMIT || o.flush_ms < 0 ||
	    o.flush_ms > FLUSH_MS_LIMIT || o.retention_check_ms > RETENTION_MAX_MS) {
		snprintf(
		    err, errlen,
		    "logwriter: batch_max must be 0..%d, flush_ms 0..%d and retention_check_ms at most %d",
		    BATCH_MAX_LIMIT, FLUSH_MS_LIMIT, RETENTION_MAX_MS);
		return NULL;
	}
	rc = store_open(db_location, STORE_LOG_WRITER, &st, err, errlen);
	if (rc)
		return NULL;

	w = xcalloc(1, sizeof(*w));
	w->max_queue = o.max_queue ? o.max_queue : DEFAULT_MAX_QUEUE;
	w->max_bytes = o.max_queue_bytes ? o.max_queue_bytes : DEFAULT_MAX_QUEUE_BYTES;
	w->batch_max = (size_t)(o.batch_max ? o.batch_max : DEFAULT_BATCH_MAX);
	w->flush_ms = o.flush_ms ? o.flush_ms : DEFAULT_FLUSH_MS;
	w->retention_ms = o.retention_check_ms < 0 ? 0
	                  : o.retention_check_ms   ? o.retention_check_ms
	                                           : RETENTION_DEFAULT_MS;
	w->retention_due_ns =
	    clock_mono_ns() +
	    (uint64_t)(w->retention_ms < RETENTION_FIRST_MS ? w->retention_ms : RETENTION_FIRST_MS) *
	        1000000u;
	w->st = st;
	atomic_init(&w->abandon, false);
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &ca);
	pthread_cond_init(&w->done_cv, &ca);
	pthread_condattr_destroy(&ca);

	/* The thread inherits a full mask: signals go to the threads that
	 * handle them, never to this one. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	atomic_fetch_add(&threads_alive, 1);
	rc = pthread_create(&w->thread, NULL, writer_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		atomic_fetch_sub(&threads_alive, 1);
		snprintf(err, errlen, "logwriter: cannot start its thread: %s", strerror(rc));
		store_close(st);
		logwriter_destroy(w);
		return NULL;
	}
	pthread_setname_np(w->thread, "fusion-logw");
	return w;
}

bool logwriter_submit(struct logwriter *w, struct log_record *r)
{
	bool ok;
	size_t bytes;
	uint64_t now;

	if (!r)
		return false;
	if (!w) {
		log_record_free(r);
		return false;
	}
	r->id[LOGWRITER_ID_MAX] = '\0';
	if (r->created_at == 0)
		r->created_at = clock_wall_ms();
	r->lw_next = NULL;
	r->lw_bytes = bytes = record_bytes(r);
	now = clock_mono_ns();

	pthread_mutex_lock(&w->mu);
	w->c.submitted++;
	ok = !w->stopping && r->id[0] != '\0' && w->queued < w->max_queue && bytes <= w->max_bytes &&
	     w->queued_bytes <= w->max_bytes - bytes;
	if (ok) {
		if (w->tail)
			w->tail->lw_next = r;
		else
			w->head = r;
		w->tail = r;
		w->pending++;
		w->queued++;
		w->queued_bytes += bytes;
		w->c.enqueued++;
		/* Wake the writer when its wait changes: from "nothing to do"
		 * to "flush at oldest + flush_ms", or to "a batch is full". */
		if (w->pending == 1) {
			w->oldest_ns = now;
			pthread_cond_signal(&w->wake);
		} else if (w->pending == w->batch_max) {
			pthread_cond_signal(&w->wake);
		}
	} else {
		w->c.rejected++;
		w->c.dropped++;
	}
	/* A full queue loses rows: say so, at most every 10 s. */
	bool warn = !ok && !w->stopping && now - w->last_drop_warn_ns >= DROP_WARN_EVERY_NS;
	uint64_t dropped = w->c.dropped;
	size_t queued = w->queued;
	if (warn)
		w->last_drop_warn_ns = now;
	pthread_mutex_unlock(&w->mu);
	if (warn)
		log_warn(NULL, "request-log queue full (%zu queued): %llu rows dropped so far", queued,
		         (unsigned long long)dropped);
	if (!ok)
		log_record_free(r);
	return ok;
}

/* With w->mu held. */
static void stats_locked(struct logwriter *w, struct logwriter_stats *out)
{
	*out = w->c;
	out->queued = w->queued;
	out->queued_bytes = w->queued_bytes;
}

void logwriter_stats(struct logwriter *w, struct logwriter_stats *out)
{
	if (!w) {
		*out = (struct logwriter_stats){ 0 };
		return;
	}
	pthread_mutex_lock(&w->mu);
	stats_locked(w, out);
	pthread_mutex_unlock(&w->mu);
}

/* With w->mu held: wait for `done` until deadline (monotonic ns). */
static void wait_done(struct logwriter *w, uint64_t deadline)
{
	struct timespec ts = mono_ts(deadline);

	while (!w->done && clock_mono_ns() < deadline)
		pthread_cond_timedwait(&w->done_cv, &w->mu, &ts);
}

void logwriter_stop(struct logwriter *w, int timeout_ms, struct logwriter_stats *final_out)
{
	struct logwriter_stats fin;

	if (!w) {
		if (final_out)
			*final_out = (struct logwriter_stats){ 0 };
		return;
	}
	if (timeout_ms < 0)
		timeout_ms = 0;

	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_signal(&w->wake);
	wait_done(w, clock_mono_ns() + (uint64_t)timeout_ms * 1000000u);
	if (!w->done) {
		atomic_store(&w->abandon, true);
		pthread_cond_signal(&w->wake);
		wait_done(w, clock_mono_ns() + (uint64_t)STOP_GRACE_MS * 1000000u);
	}
	if (!w->done) {
		/* Stuck in a database call: leave w to the thread. */
		pthread_t tid = w->thread;
		size_t left = w->queued;
		stats_locked(w, &fin);
		fin.dropped += fin.queued;
		fin.queued = 0;
		fin.queued_bytes = 0;
		w->orphaned = true;
		pthread_mutex_unlock(&w->mu);
		pthread_detach(tid);
		log_warn(NULL,
		         "logwriter: stop timed out after %d ms inside a database call; %zu request logs "
		         "dropped; the writer thread exits when the call returns",
		         timeout_ms, left);
		if (final_out)
			*final_out = fin;
		return;
	}
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);

	stats_locked(w, &fin); /* the thread is gone: no lock needed */
	if (atomic_load(&w->abandon)) {
		/* Lost after acceptance: failed batches, refused rows, left at stop. */
		unsigned long long lost = fin.dropped - fin.rejected - fin.duplicates;
		log_warn(NULL,
		         "logwriter: stop timed out after %d ms and dropped what was left; since start %llu "
		         "request logs written, %llu lost after being queued",
		         timeout_ms, (unsigned long long)fin.written, lost);
	}
	logwriter_destroy(w);
	if (final_out)
		*final_out = fin;
}
