/*
 * logwriter.h — the asynchronous, batched writer of request_logs rows.
 *
 * What it is for: every client request of the proxy ends with one row in
 * request_logs, but a worker thread must never wait for the database.  A
 * worker fills a struct log_record and hands it to logwriter_submit(),
 * which only takes a short mutex to append it to a bounded queue (or,
 * when the queue is full, frees it and counts it as dropped).  One writer
 * thread, with its own store handle opened with STORE_LOG_WRITER
 * (synchronous=NORMAL), drains the queue in batches: one transaction of
 * up to batch_max INSERTs per commit.
 *
 * Data flow:
 *
 *   worker ─► log_record_new() … fill … ─► logwriter_submit(w, r)
 *               lock ─► queue full? drop : append ─► wake writer when the
 *               queue reaches batch_max or was empty ─► unlock
 *   writer thread ─► wait until batch_max rows are queued, or flush_ms
 *               passed since the oldest one arrived, or stop ─► take the
 *               whole pending list under the lock, release it ─► for each
 *               chunk of batch_max: store_begin, INSERT … ON CONFLICT (id)
 *               DO NOTHING per row, store_commit ─► lock, settle counters
 *               and the queue's size, unlock ─► free the records
 *
 * Bounds: the queue holds at most max_queue records and max_queue_bytes
 * bytes of record strings, counting the records the writer has taken
 * but not yet settled, so memory never exceeds those whatever the
 * database does.
 *
 * Failures: a database error (locked for longer than the store's 5 s
 * busy timeout, disk full, I/O error) fails the whole batch attempt: it
 * is rolled back, logged in one line (no values: request bodies and keys
 * never reach the log) and counted in failed_batches, then retried after
 * a backoff (100 ms doubling up to 5 s, the streak carried across
 * batches so a long outage logs a line every few seconds at most).  After
 * LOGWRITER_ATTEMPTS failed attempts the batch is dropped.  A row the
 * store refuses on its own (a constraint) is dropped alone and logged
 * with its request id; a row whose id already exists is counted as a
 * duplicate.  TEXT that is not valid UTF-8 is stored with U+FFFD in place
 * of each bad byte, and TEXT longer than STORE_VALUE_MAX is cut at a
 * character boundary, rather than losing the row.
 *
 * Retention: the same thread deletes rows older than the setting
 * log_retention_days (settings table, a JSON integer 1..3650; 30 when
 * absent or invalid), a minute after start (sooner when
 * retention_check_ms is smaller) and then every retention_check_ms:
 * DELETE ... LIMIT 1000 per statement (each its own transaction, so
 * other writers wait a few milliseconds at most), oldest first, with a
 * short pause between statements; it yields to request logs as soon as
 * a batch of them is due, and comes back a second later to finish.  Then
 * it returns freed pages to the file system (store_reclaim), in the same
 * small steps.
 *
 * Threading: logwriter_submit and logwriter_stats may be called from any
 * thread, concurrently.  The mutex is never held across I/O or free().
 * logwriter_start/logwriter_stop are called once each, by one thread.
 */
#ifndef FUSION_GATEWAY_LOGWRITER_H
#define FUSION_GATEWAY_LOGWRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct packbuf;

#define LOGWRITER_ATTEMPTS 4 /* tries of one batch before it is dropped */

#define LOGWRITER_ID_MAX 64 /* bytes of a request id, without the terminator */

/*
 * One request_logs row.  Every string is owned by the record (malloc'd,
 * freed by log_record_free), NUL-terminated, and may be NULL (a NULL
 * column).  Numbers that are "unknown" become NULL columns as noted.
 */
struct log_record {
	char id[LOGWRITER_ID_MAX + 1]; /* request id, the primary key; an empty one is rejected */
	int64_t created_at;            /* epoch ms; 0 = the time of logwriter_submit */
	int64_t client_key_id;         /* 0 = none (NULL) */
	char *client_key_name;         /* owned */
	char *client_format;           /* owned: "openai", "anthropic", ... */
	char *client_model;            /* owned: the model the client asked for */
	int64_t provider_id;           /* 0 = none (NULL) */
	char *provider_name;           /* owned */
	char *provider_model;          /* owned */
	int status_code;               /* HTTP status sent to the client; 0 = none (NULL) */
	char *outcome;                 /* owned */
	char *error;                   /* owned: a message for the operator, never a secret */
	int64_t latency_ms;            /* < 0 = unknown (NULL) */
	int64_t ttft_ms;               /* time to first token; < 0 = unknown (NULL) */
	int64_t prompt_tokens;         /* < 0 = unknown (NULL), for the four token counts */
	int64_t completion_tokens;
	int64_t total_tokens;
	int64_t cached_tokens;
	bool stream;
	char *client_addr;   /* owned */
	char *attempts_json; /* owned: JSON array of upstream attempts (column "attempts") */
	char *request_body;  /* owned: capped by the caller (see max_queue_bytes) */
	char *response_body; /* owned: capped by the caller */
	/* owned, instead of response_body: the body as the caller gathered it
	 * (compressed blocks, see util/packbuf.h); the writer joins it.  A
	 * stream's body thus reaches the log without a second copy in the
	 * worker at its end, and waits in the queue compressed. */
	struct packbuf *response_pieces;

	/* Private to the writer: set by logwriter_submit. */
	struct log_record *lw_next;
	size_t lw_bytes;

	/* Room for the short strings above (names, model, outcome, address),
	 * filled by log_record_strdup: part of the record's own allocation,
	 * so a row costs the workers one malloc and the writer thread one
	 * free instead of one of each per string (a free of another
	 * thread's memory contends for that thread's heap). */
	size_t small_used;
	char small[320];
};

/* A copy of s owned by r, for one of r's string fields: inside r when it
 * fits, else its own allocation.  NULL for NULL. */
char *log_record_strdup(struct log_record *r, const char *s);

/* A zeroed record with every "unknown" number preset to -1 (latency,
 * ttft, the token counts).  Never NULL (aborts on out-of-memory). */
struct log_record *log_record_new(void);
/* Free r and every string it owns.  NULL is a no-op. */
void log_record_free(struct log_record *r);

/*
 * Counters since start.  Taken under the queue's mutex, so one snapshot
 * is consistent:  submitted == written + dropped + queued,
 * submitted == enqueued + rejected, and after logwriter_stop
 * (queued == 0) submitted == written + dropped.
 */
struct logwriter_stats {
	uint64_t submitted;      /* logwriter_submit calls on this writer */
	uint64_t enqueued;       /* records accepted into the queue */
	uint64_t written;        /* rows inserted */
	uint64_t dropped;        /* records lost for any reason, including the two below */
	uint64_t rejected;       /* refused by submit: queue full (records or bytes), stopping, empty id */
	uint64_t duplicates;     /* rows whose id was already stored */
	uint64_t batches;        /* transactions committed */
	uint64_t failed_batches; /* batch attempts that failed (each retry counts) */
	uint64_t expired;        /* rows deleted by retention */
	uint64_t retention_runs; /* retention checks finished (complete or not) */
	size_t queued;           /* now: records waiting or being written */
	size_t queued_bytes;     /* now: their bytes, as counted against max_queue_bytes */
};

/* Zero (or a NULL opts) means the default shown. */
struct logwriter_opts {
	size_t max_queue;       /* records queued or being written; 10000 */
	size_t max_queue_bytes; /* bytes of those records (struct + strings); 64 MiB */
	int batch_max;          /* rows per transaction; 1024 */
	int flush_ms;           /* longest a record waits for a batch to fill; 200 */
	int retention_check_ms; /* period of the retention check; 600000 (10 min); < 0 = never */
};

struct logwriter;

/*
 * Open a store handle on db_location with STORE_LOG_WRITER (the schema
 * must already be migrated: the main thread opens with STORE_MIGRATE
 * first) and start the writer thread, which blocks every signal.
 * Returns NULL with a message in err (errlen bytes) on failure.
 */
struct logwriter *logwriter_start(const char *db_location, const struct logwriter_opts *opts, char *err,
                                  size_t errlen);

/*
 * Any thread.  Takes ownership of r always (NULL r is ignored and
 * returns false).  Never blocks on I/O: a short mutex only, plus a
 * strlen of r's strings before it.  If the queue is full (records or
 * bytes), the writer is stopping, or r->id is empty, r is freed, counted
 * as rejected (and dropped), and false is returned; with a NULL w
 * (logging disabled) r is freed and nothing is counted.  True means
 * queued.  Sets r->created_at when 0 and cuts r->id at LOGWRITER_ID_MAX.
 */
bool logwriter_submit(struct logwriter *w, struct log_record *r);

/* Any thread; a consistent snapshot of the counters (see above). */
void logwriter_stats(struct logwriter *w, struct logwriter_stats *out);

/*
 * Stop accepting records, write everything still queued, and free w.
 * Bounded by timeout_ms (plus ~50 ms): what is still unwritten then is
 * counted as dropped and logged.  If the writer thread is at that moment
 * inside a database call (a store_begin waiting up to 5 s for a lock, a
 * slow fsync), stop does not wait for it: the thread is detached, rolls
 * back whatever it was doing when the call returns, closes its handle
 * and frees itself (see logwriter__threads_alive).  Otherwise the thread
 * is joined and the handle closed before stop returns.
 *
 * final_out (may be NULL) gets the last counters, with queued == 0.  In
 * the detached case a commit already under way may still store its rows
 * (at most batch_max), which final_out then counts as dropped.
 * NULL w is a no-op (final_out zeroed).  Call it once every thread that
 * may submit has stopped (w is freed: a later submit is a use after free).
 */
void logwriter_stop(struct logwriter *w, int timeout_ms, struct logwriter_stats *final_out);

/* Internal, for tests and for shutdown: writer threads that have not
 * exited yet, including detached ones still finishing a database call. */
int logwriter__threads_alive(void);

#endif
