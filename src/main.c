/*
 * main.c — start-up and shutdown of the Fusion process.
 *
 * Order: configuration → logging → libraries → database (migrations run
 * here, once, before any worker exists) → listening socket and workers →
 * wait for SIGTERM/SIGINT → graceful stop → exit 0.  Any failure before
 * serving exits non-zero with one clear line.
 */
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "admin/admin.h"
#include "app.h"
#include "auth/secrets.h"
#include "config.h"
#include "gateway/logwriter.h"
#include "gateway/snapshot.h"
#include "http/server.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/log.h"

#include "version.h"

extern char **environ;

/* Each client connection is a descriptor; lift the soft limit to the hard one. */
static void raise_fd_limit(const struct config *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)cfg->max_connections + 64 > rl.rlim_cur)
		log_warn(NULL,
		         "MAX_CONNECTIONS=%d is above what the descriptor limit (%llu) allows; "
		         "connections beyond it will wait in the accept queue",
		         cfg->max_connections, (unsigned long long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct app app = { 0 };
	struct secrets *secrets = NULL;
	char err[1024] = "";
	int rc = 1;

	switch (config_load(&cfg, argc, argv, environ, err, sizeof(err))) {
	case CONFIG_EXIT_OK:
		config_free(&cfg);
		return 0;
	case CONFIG_ERROR:
		fprintf(stderr, "fusion: %s\n", err);
		config_free(&cfg);
		return 2;
	case CONFIG_OK:
		break;
	}
	log_setup(cfg.log_level, cfg.log_format);

	if (sodium_init() < 0) {
		log_error(NULL, "cannot initialise libsodium");
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error(NULL, "cannot initialise libcurl");
		goto out;
	}
	if (evthread_use_pthreads() != 0) {
		log_error(NULL, "cannot enable libevent threading");
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(&cfg);

	/* Migrations happen here, once, before anything serves. */
	struct store *st = NULL;
	if (store_open(cfg.db_path, STORE_MIGRATE, &st, err, sizeof(err)) != 0) {
		log_error(NULL, "cannot open database: %s", err);
		goto out;
	}
	int version = 0;
	if (store_schema_version(st, &version) != 0) {
		log_error(NULL, "cannot read the schema version: %s", store_errmsg(st));
		store_close(st);
		goto out;
	}

	/* Secrets at rest, the first administrator, and the first snapshot. */
	if (secrets_open(cfg.db_path, getenv("FUSION_SECRET_KEY"), &secrets, err, sizeof(err)) != 0) {
		log_error(NULL, "%s", err);
		store_close(st);
		goto out;
	}
	if (admin_bootstrap(st, secrets, getenv("FUSION_ADMIN_PASSWORD"), err, sizeof(err)) != 0) {
		log_error(NULL, "%s", err);
		store_close(st);
		goto out;
	}
	struct snapshot *snap = NULL;
	if (snapshot_build(st, secrets, &snap, err, sizeof(err)) != 0) {
		log_error(NULL, "cannot load the configuration: %s", err);
		store_close(st);
		goto out;
	}
	store_close(st);
	app.cfg = &cfg;
	app.secrets = secrets;
	app.hub = snapshot_hub_new(snap);
	app.logw = logwriter_start(cfg.db_path, NULL, err, sizeof(err));
	if (!app.logw) {
		log_error(NULL, "cannot start the request-log writer: %s", err);
		goto out;
	}

	/* Workers inherit this mask: only the main thread takes these signals. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	struct server srv;
	if (server_start(&srv, &cfg, &app, err, sizeof(err)) != 0) {
		log_error(NULL, "cannot start: %s", err);
		goto out;
	}
	log_info(NULL,
	         "Fusion %s listening on %s%s%s:%d with %d worker(s); database %s (schema v%d); allocator %s",
	         FUSION_VERSION, strchr(cfg.listen_addr, ':') ? "[" : "", cfg.listen_addr,
	         strchr(cfg.listen_addr, ':') ? "]" : "", srv.port, cfg.workers, cfg.db_path, version,
	         alloc_allocator());

	int sig;
	do
		sig = sigwaitinfo(&sigs, NULL);
	while (sig < 0);
	log_info(NULL, "received %s: finishing in-flight requests (up to %d ms)",
	         sig == SIGTERM ? "SIGTERM" : "SIGINT", cfg.shutdown_timeout_ms);
	server_stop(&srv);
	struct logwriter_stats ls;
	logwriter_stop(app.logw, cfg.shutdown_timeout_ms > 5000 ? cfg.shutdown_timeout_ms : 5000, &ls);
	app.logw = NULL;
	log_info(NULL, "stopped; request logs written %llu, dropped %llu", (unsigned long long)ls.written,
	         (unsigned long long)ls.dropped);
	rc = 0;

out:
	logwriter_stop(app.logw, 5000, NULL);
	snapshot_hub_free(app.hub);
	secrets_close(secrets);
	config_free(&cfg);
	curl_global_cleanup();
	libevent_global_shutdown();
	return rc;
}
