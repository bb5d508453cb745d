/*
 * proxy_admin.c — the admin listener ([server] admin_listen): health,
 * readiness, Prometheus metrics and cache statistics, as JSON or text.
 * It runs on the first worker's loop; keep it off public interfaces.
 *
 *	GET /healthz		200 {"status":"ok"} while the process serves
 *	GET /readyz		200 once listeners and cache are up
 *	GET /metrics		counters (common/metrics.h) and cache gauges
 *	GET /api/v1/cache	blobs, bytes, pinned, tags, budget (JSON)
 *	POST /api/v1/prefetch, GET /api/v1/jobs[/ID]	(proxy_prefetch.c)
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "cache/cache.h"
#include "common/log.h"
#include "common/metrics.h"
#include "proxy/proxy_int.h"

static void
proxy_admin_json(struct evhttp_request *req, int status, json_t *j)
{
	struct evbuffer	*b = evbuffer_new();
	char		*s = json_dumps(j, JSON_COMPACT);

	evbuffer_add_printf(b, "%s\n", s);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_send_reply(req, status, NULL, b);
	evbuffer_free(b);
	free(s);
	json_decref(j);
}

static void
proxy_admin_metrics(struct evhttp_request *req)
{
	struct evbuffer	*b = evbuffer_new();
	int		 m;

	for (m = 0; m < METRIC__MAX; m++)
		evbuffer_add_printf(b, "# HELP regmirror_%s %s\n"
		    "# TYPE regmirror_%s counter\nregmirror_%s %llu\n",
		    metric_name(m), metric_help(m), metric_name(m),
		    metric_name(m), (unsigned long long)metric_get(m));
	evbuffer_add_printf(b, "# HELP regmirror_cache_bytes Bytes of "
	    "stored blobs\n# TYPE regmirror_cache_bytes gauge\n"
	    "regmirror_cache_bytes %llu\n",
	    (unsigned long long)cache_usage_bytes());
	evbuffer_add_printf(b, "# HELP regmirror_cache_max_bytes The byte "
	    "budget (0: unlimited)\n# TYPE regmirror_cache_max_bytes gauge\n"
	    "regmirror_cache_max_bytes %llu\n",
	    (unsigned long long)cache_budget_bytes());
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, NULL, b);
	evbuffer_free(b);
}

static void
proxy_admin_cb(struct evhttp_request *req, void *arg)
{
	const struct config *cfg = arg;
	const char	*path = evhttp_uri_get_path(
			    evhttp_request_get_evhttp_uri(req));
	struct cache_du	 du;
	json_t		*out;
	int		 status;

	if (path == NULL)
		path = "";
	if (proxy_prefetch_route(req, path, cfg, &status, &out) == 0 ||
	    proxy_replicate_route(req, path, &status, &out) == 0) {
		proxy_admin_json(req, status, out);
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		proxy_admin_json(req, 405, json_pack("{s:s}", "error",
		    "method not allowed"));
		return;
	}
	if (strcmp(path, "/healthz") == 0)
		proxy_admin_json(req, 200, json_pack("{s:s}", "status", "ok"));
	else if (strcmp(path, "/readyz") == 0)
		proxy_admin_json(req, 200, json_pack("{s:b}", "ready", 1));
	else if (strcmp(path, "/metrics") == 0)
		proxy_admin_metrics(req);
	else if (strcmp(path, "/api/v1/cache") == 0) {
		if (cache_du(&du) != 0) {
			proxy_admin_json(req, 503, json_pack("{s:s}", "error",
			    "cache index unavailable"));
			return;
		}
		proxy_admin_json(req, 200, json_pack(
		    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "blobs",
		    (json_int_t)du.blobs, "bytes", (json_int_t)du.bytes,
		    "pinned_blobs", (json_int_t)du.pinned_blobs,
		    "pinned_bytes", (json_int_t)du.pinned_bytes,
		    "tags", (json_int_t)du.tags, "max_bytes",
		    (json_int_t)du.max_bytes, "disk_full_pass_throughs",
		    (json_int_t)cache_fill_spills()));
	} else
		proxy_admin_json(req, 404, json_pack("{s:s}", "error",
		    "not found"));
}

struct evhttp *
proxy_admin_new(struct event_base *base, evutil_socket_t fd,
    const struct config *cfg)
{
	struct evhttp	*http;

	http = evhttp_new(base);
	evhttp_set_gencb(http, proxy_admin_cb, (void *)(uintptr_t)cfg);
	evhttp_set_timeout(http, 30);
	evhttp_set_max_body_size(http, 1024 * 1024);
	if (evhttp_accept_socket(http, fd) != 0)
		fatal("admin: evhttp_accept_socket");
	return http;
}
