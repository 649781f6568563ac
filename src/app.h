/*
 * app.h — the process-wide objects every worker can reach.
 *
 * Made by main.c before any worker starts and freed after all have
 * stopped; workers only read the pointers.  The objects themselves are
 * thread-safe in their own ways: the configuration is immutable, the
 * secrets key is read-only, and the snapshot hub publishes through
 * per-worker mailboxes.
 */
#ifndef FUSION_APP_H
#define FUSION_APP_H

struct config;
struct secrets;
struct snapshot_hub;
struct logwriter;

struct app {
	const struct config *cfg;
	const struct secrets *secrets;
	struct snapshot_hub *hub;
	struct logwriter *logw; /* request logs; NULL = not logging */
};

#endif
