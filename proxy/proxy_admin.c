/*
 * proxy_admin.c — the admin listener ([server] admin_listen): health,
 * readiness, Prometheus metrics and cache statistics, as JSON or text.
 * It runs on the jobs' loop (sync/); keep it off public interfaces.
 *
 *	GET /healthz		200 {"status":"ok"} while the process serves;
 *				503 {"status":"stalled"} when a worker's loop
 *				has not run for PROXY_STALL_SECONDS
 *	GET /readyz		200 once listeners and cache are up
 *	GET /metrics		counters (common/metrics.h) and cache gauges
 *	GET /api/v1/cache	blobs, manifests, tags, negative entries,
 *				links, index size, budget (JSON; the fields
 *				of "regmirror cache du --json")
 *	POST /api/v1/prefetch, GET /api/v1/jobs[/ID]	(sync_pf.c)
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
#include "common/xmalloc.h"
#include "proxy/proxy_int.h"
#include "sync/sync.h"

/* A worker loop silent this long makes /healthz fail. */
#define PROXY_STALL_SECONDS	10

static void
proxy_admin_json(struct evhttp_request *req, int status, json_t *j)
{
	struct evbuffer	*b = evbuffer_new();
	char		*s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	if (s == NULL) {
		/* An answer jansson would not encode (it refuses invalid
		 * UTF-8): say so rather than send nothing. */
		status = 500;
		s = xstrdup("{\"error\":\"the answer could not be encoded\"}");
	}
	evbuffer_add_printf(b, "%s\n", s);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_send_reply(req, status, NULL, b);
	evbuffer_free(b);
	free(s);
	json_decref(j);
}

static void
proxy_admin_sample(struct evbuffer *b, const char *name, const char *type,
    const char *help, uint64_t v)
{
	evbuffer_add_printf(b, "# HELP regmirror_%s %s\n# TYPE regmirror_%s "
	    "%s\nregmirror_%s %llu\n", name, help, name, type, name,
	    (unsigned long long)v);
}

/* Cache figures that cost no walk of the index (cache_stats()). */
static void
proxy_admin_cache_gauges(struct evbuffer *b)
{
	struct cache_stats	s;

	proxy_admin_sample(b, "cache_bytes", "gauge", "Bytes of stored blobs",
	    cache_usage_bytes());
	proxy_admin_sample(b, "cache_max_bytes", "gauge",
	    "The byte budget (0: unlimited)", cache_budget_bytes());
	if (cache_stats(&s) != 0)
		return;
	proxy_admin_sample(b, "cache_blobs", "gauge", "Stored blobs",
	    s.blobs);
	proxy_admin_sample(b, "cache_manifests", "gauge", "Stored manifests",
	    s.manifests);
	proxy_admin_sample(b, "cache_manifest_bytes", "gauge",
	    "Bytes of stored manifests", s.manifest_bytes);
	proxy_admin_sample(b, "cache_tags", "gauge", "Cached tags",
	    s.tags);
	proxy_admin_sample(b, "cache_negative_tags", "gauge",
	    "Remembered upstream 404s for tags", s.negative_tags);
	proxy_admin_sample(b, "cache_max_negative", "gauge",
	    "The cap on remembered 404s", s.max_negative);
	proxy_admin_sample(b, "cache_negative_refused_total", "counter",
	    "Upstream 404s not remembered: at the cap", s.negative_refused);
	proxy_admin_sample(b, "cache_links", "gauge",
	    "Repository links (which repository holds which digest)",
	    s.links);
	proxy_admin_sample(b, "cache_index_bytes", "gauge",
	    "Index pages in use (manifests, tags, links)", s.index_bytes);
	proxy_admin_sample(b, "cache_used_bytes", "gauge",
	    "Blobs plus index: what max_size is compared with",
	    s.used_bytes);
}

static void
proxy_admin_metrics(struct evhttp_request *req)
{
	struct evbuffer	*b = evbuffer_new();
	enum metric	 m;

	for (m = 0; m < METRIC__MAX; m++)
		evbuffer_add_printf(b, "# HELP regmirror_%s %s\n"
		    "# TYPE regmirror_%s counter\nregmirror_%s %llu\n",
		    metric_name(m), metric_help(m), metric_name(m),
		    metric_name(m), (unsigned long long)metric_get(m));
	proxy_admin_cache_gauges(b);
	proxy_access_metrics(b);
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
	int		 status, stalled;

	if (path == NULL)
		path = "";
	if (sync_admin_route(req, path, cfg, &status, &out) == 0) {
		proxy_admin_json(req, status, out);
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		proxy_admin_json(req, 405, json_pack("{s:s}", "error",
		    "method not allowed"));
		return;
	}
	if (strcmp(path, "/healthz") == 0 &&
	    (stalled = proxy_workers_stalled(PROXY_STALL_SECONDS)) >= 0)
		proxy_admin_json(req, 503, json_pack("{s:s,s:i}", "status",
		    "stalled", "worker", stalled));
	else if (strcmp(path, "/healthz") == 0)
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
		    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
		    "s:I}", "blobs",
		    (json_int_t)du.blobs, "bytes", (json_int_t)du.bytes,
		    "pinned_blobs", (json_int_t)du.pinned_blobs,
		    "pinned_bytes", (json_int_t)du.pinned_bytes,
		    "tags", (json_int_t)du.tags, "max_bytes",
		    (json_int_t)du.max_bytes, "disk_full_pass_throughs",
		    (json_int_t)cache_fill_spills(), "manifests",
		    (json_int_t)du.manifests, "manifest_bytes",
		    (json_int_t)du.manifest_bytes, "negative_tags",
		    (json_int_t)du.negative_tags, "max_negative",
		    (json_int_t)du.max_negative, "links",
		    (json_int_t)du.links, "index_bytes",
		    (json_int_t)du.index_bytes, "used_bytes",
		    (json_int_t)du.used_bytes));
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
