/*
 * health.c — liveness, readiness and version endpoints.
 *
 *   GET /healthz     the process answers: always 200 while serving
 *   GET /readyz      this worker's database handle answers a query: 200,
 *                    else 503 (a load balancer should stop sending)
 *   GET /api/version version and source revision, for the UI and operators
 */
#include <jansson.h>

#include "http/request.h"
#include "http/routes.h"
#include "http/server.h"
#include "store/store.h"
#include "util/log.h"

#include "version.h"

void health_live(struct http_req *r)
{
	http_reply_json(r, 200, json_pack("{s:s, s:s}", "status", "ok", "version", FUSION_VERSION));
}

void health_ready(struct http_req *r)
{
	if (r->w->draining) {
		http_reply_json(r, 503,
		                json_pack("{s:s, s:s}", "status", "unavailable", "reason", "shutting down"));
		return;
	}
	if (store_ping(r->w->store) != 0) {
		/* The detail goes to the log; the answer says only what failed. */
		log_warn(r->id, "readiness check failed: %s", store_errmsg(r->w->store));
		http_reply_json(
		    r, 503,
		    json_pack("{s:s, s:s}", "status", "unavailable", "reason", "database not reachable"));
		return;
	}
	http_reply_json(r, 200, json_pack("{s:s, s:s}", "status", "ready", "database", "ok"));
}

void health_version(struct http_req *r)
{
	http_reply_json(r, 200, json_pack("{s:s, s:s}", "version", FUSION_VERSION, "revision", FUSION_REV));
}
