/*
 * proxy_admin.c — the admin listener ([server] admin_listen): health,
 * readiness, Prometheus metrics and cache statistics, as JSON or text.
 * It runs on the jobs' loop (sync/).  Off loopback and off a unix socket
 * the config check wants it locked (below) and on TLS.
 *
 *	GET /healthz		200 {"status":"ok"} while the process serves;
 *				503 {"status":"stalled"} when a worker's loop
 *				has not run for PROXY_STALL_SECONDS
 *	GET /readyz		200 when it should get traffic, else 503
 *				(draining, reconciling, cache not writable)
 *	GET /metrics		counters (common/metrics.h) and cache gauges
 *	GET /api/v1/cache	blobs, manifests, tags, negative entries,
 *				links, index size, budget (JSON; the fields
 *				of "regmirror cache du --json")
 *	POST /api/v1/prefetch, GET /api/v1/jobs[/ID]	(sync_pf.c)
 *	/api/v1/replication..., POST /api/v1/events	(sync_repl.c)
 *
 * Who may ask.  GET and HEAD of /healthz and /readyz are open (load
 * balancers' checks).  Once admin_token_file or admin_client_ca is set,
 * every other request needs "Authorization: Bearer TOKEN" with one of the
 * file's tokens, or a client certificate admin_client_ca verified: else
 * 401 with WWW-Authenticate: Bearer realm="regmirror-admin" and a JSON
 * error.  POST /api/v1/events (registry notifications, which can send a
 * configured Authorization header) also takes a token of
 * events_token_file; with that file set it needs one of the two even
 * when the other routes are open.  Neither set: open, as the config
 * check allows only on loopback or a unix socket.  A token never goes
 * into the log.
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cache/cache.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/tokens.h"
#include "common/xmalloc.h"
#include "proxy/proxy_int.h"
#include "sync/sync.h"

/* Bounds on what a request to the admin API may send. */
#define PROXY_ADMIN_HEAD_MAX	(64 * 1024)
#define PROXY_ADMIN_BODY_MAX	(1024 * 1024)

#define PROXY_ADMIN_REALM	"Bearer realm=\"regmirror-admin\""

struct proxy_admin {
	const struct config	*pa_cfg;
	struct evhttp		*pa_http;
	int			 pa_tcp;	/* not on a unix socket */
	int			 pa_certs;	/* verified certs are admins */
	int			 pa_locked;	/* routes need credentials */
	int			 pa_events_locked; /* /api/v1/events does */
	/* The token sets, swapped by SIGHUP on the main thread. */
	pthread_mutex_t		 pa_mtx;
	struct tokens		*pa_admin_tokens;
	struct tokens		*pa_events_tokens;
};

/* How a request to the admin API was authenticated. */
enum proxy_admin_cred {
	PROXY_ADMIN_NONE,	/* nothing offered */
	PROXY_ADMIN_BAD,	/* a token no file holds, or not Bearer */
	PROXY_ADMIN_EVENTS,	/* a token of events_token_file */
	PROXY_ADMIN_TOKEN,	/* a token of admin_token_file */
	PROXY_ADMIN_CERT,	/* a client certificate admin_client_ca took */
};

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

/* Cache figures that cost no walk of the index (cache_stats()). */
static void
proxy_admin_cache_gauges(struct evbuffer *b)
{
	struct cache_stats	s;

	metrics_write_sample(b, "cache_max_bytes", "gauge",
	    "The byte budget (0: unlimited)", cache_budget_bytes());
	if (cache_stats(&s) != 0)
		return;
	metrics_write_sample(b, "cache_bytes", "gauge", "Bytes of stored blobs",
	    s.bytes);
	metrics_write_sample(b, "cache_blobs", "gauge", "Stored blobs",
	    s.blobs);
	metrics_write_sample(b, "cache_manifests", "gauge", "Stored manifests",
	    s.manifests);
	metrics_write_sample(b, "cache_manifest_bytes", "gauge",
	    "Bytes of stored manifests", s.manifest_bytes);
	metrics_write_sample(b, "cache_tags", "gauge", "Cached tags",
	    s.tags);
	metrics_write_sample(b, "cache_negative_tags", "gauge",
	    "Remembered upstream 404s for tags", s.negative_tags);
	metrics_write_sample(b, "cache_max_negative", "gauge",
	    "The cap on remembered 404s", s.max_negative);
	metrics_write_sample(b, "cache_negative_refused_total", "counter",
	    "Upstream 404s not remembered: at the cap", s.negative_refused);
	metrics_write_sample(b, "cache_links", "gauge",
	    "Repository links (which repository holds which digest)",
	    s.links);
	metrics_write_sample(b, "cache_index_bytes", "gauge",
	    "Index pages in use (manifests, tags, links)", s.index_bytes);
	metrics_write_sample(b, "cache_used_bytes", "gauge",
	    "Blobs plus index: what max_size is compared with",
	    s.used_bytes);
}

static const char *proxy_admin_unready(const struct config *, char *, size_t);

static void
proxy_admin_metrics(struct evhttp_request *req, const struct config *cfg)
{
	struct evbuffer	*b = evbuffer_new();
	char		 why[512];

	metrics_write(b);
	/* What /readyz answers, for an alert that needs no probe. */
	metrics_write_sample(b, "ready", "gauge", "1 when /readyz answers 200 "
	    "(not draining, reconciled, cache writable)",
	    proxy_admin_unready(cfg, why, sizeof(why)) == NULL);
	proxy_admin_cache_gauges(b);
	proxy_access_metrics(b);
	sync_metrics(b);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, NULL, b);
	evbuffer_free(b);
}

static const char *
proxy_admin_method(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	default:
		return "OTHER";
	}
}

/* Whether req came with a client certificate the admin TLS context
 * verified (against admin_client_ca: the only CA it asks for). */
static int
proxy_admin_peer_cert(struct evhttp_request *req, char *cn, size_t cnlen)
{
	struct evhttp_connection	*evcon;
	struct bufferevent		*bev;
	SSL				*ssl;
	X509				*x;

	cn[0] = '\0';
	if ((evcon = evhttp_request_get_connection(req)) == NULL ||
	    (bev = evhttp_connection_get_bufferevent(evcon)) == NULL ||
	    (ssl = bufferevent_openssl_get_ssl(bev)) == NULL ||
	    (x = SSL_get0_peer_certificate(ssl)) == NULL ||
	    SSL_get_verify_result(ssl) != X509_V_OK)
		return 0;
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x),
	    NID_commonName, cn, (int)cnlen) < 0)
		snprintf(cn, cnlen, "?");
	return 1;
}

static enum proxy_admin_cred
proxy_admin_cred(struct proxy_admin *pa, struct evhttp_request *req,
    char *cn, size_t cnlen)
{
	const char		*h, *tok;
	size_t			 len;
	enum proxy_admin_cred	 c = PROXY_ADMIN_NONE;

	if (pa->pa_certs && proxy_admin_peer_cert(req, cn, cnlen))
		return PROXY_ADMIN_CERT;
	h = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (h == NULL)
		return PROXY_ADMIN_NONE;
	if ((tok = tokens_bearer(h, &len)) == NULL)
		return PROXY_ADMIN_BAD;
	pthread_mutex_lock(&pa->pa_mtx);
	/* Both sets, always: which one matched shows in no timing. */
	if (tokens_match(pa->pa_events_tokens, tok, len))
		c = PROXY_ADMIN_EVENTS;
	if (tokens_match(pa->pa_admin_tokens, tok, len))
		c = PROXY_ADMIN_TOKEN;
	pthread_mutex_unlock(&pa->pa_mtx);
	return c != PROXY_ADMIN_NONE ? c : PROXY_ADMIN_BAD;
}

/* Who sent req, for the log. */
static const char *
proxy_admin_peer(const struct proxy_admin *pa, struct evhttp_request *req)
{
	struct evhttp_connection	*evcon;
	char				*addr = NULL;
	ev_uint16_t			 port = 0;

	if (!pa->pa_tcp)
		return "the unix socket";
	if ((evcon = evhttp_request_get_connection(req)) != NULL)
		evhttp_connection_get_peer(evcon, &addr, &port);
	return addr != NULL ? addr : "?";
}

/* 401, with the challenge (RFC 6750) and a JSON error. */
static void
proxy_admin_refuse(const struct proxy_admin *pa, struct evhttp_request *req,
    const char *path, enum proxy_admin_cred c)
{
	metric_inc(METRIC_ADMIN_DENIED);
	log_info("admin: 401 %s %s from %s: %s", proxy_admin_method(
	    evhttp_request_get_command(req)), path, proxy_admin_peer(pa, req),
	    c == PROXY_ADMIN_NONE ? "no credentials" :
	    c == PROXY_ADMIN_EVENTS ? "an events token outside /api/v1/events" :
	    "a token no token file holds");
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "WWW-Authenticate", c == PROXY_ADMIN_NONE ? PROXY_ADMIN_REALM :
	    PROXY_ADMIN_REALM ", error=\"invalid_token\"");
	proxy_admin_json(req, 401, json_pack("{s:s}", "error", c ==
	    PROXY_ADMIN_NONE ? "authentication required: Authorization: "
	    "Bearer TOKEN (admin_token_file) or a client certificate" :
	    "invalid token"));
}

/*
 * Whether req may go on to its route; if not it is answered 401 here.
 * The log names the peer, the method and path, and what was offered
 * (never the token); requests that change something are logged with who
 * sent them.
 */
static int
proxy_admin_allow(struct proxy_admin *pa, struct evhttp_request *req,
    const char *path)
{
	enum evhttp_cmd_type	 m = evhttp_request_get_command(req);
	enum proxy_admin_cred	 c;
	char			 cn[256];
	int			 events;

	if ((m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD) &&
	    (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0))
		return 1;
	events = strcmp(path, "/api/v1/events") == 0;
	if (!pa->pa_locked && !(events && pa->pa_events_locked))
		return 1;
	c = proxy_admin_cred(pa, req, cn, sizeof(cn));
	if (c != PROXY_ADMIN_TOKEN && c != PROXY_ADMIN_CERT &&
	    !(events && c == PROXY_ADMIN_EVENTS)) {
		proxy_admin_refuse(pa, req, path, c);
		return 0;
	}
	if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD)
		log_info("admin: %s %s from %s by %s%s", proxy_admin_method(m),
		    path, proxy_admin_peer(pa, req), c == PROXY_ADMIN_CERT ?
		    "certificate CN=" : c == PROXY_ADMIN_EVENTS ?
		    "events token" : "token", c == PROXY_ADMIN_CERT ? cn : "");
	return 1;
}

/*
 * /readyz, the load balancer's health check: 503 and the reason while
 * draining (SIGTERM), while start-up reconcile runs (with
 * ready_after_reconcile), or while the cache cannot take a new file
 * (read-only, full or lost): a member that can only fail fills should
 * get no traffic.  /healthz stays about the process (a stalled loop).
 */
/*
 * Why this member should get no traffic now, or NULL: draining
 * (SIGTERM), start-up reconcile under way (with ready_after_reconcile),
 * or a cache that cannot take a new file (read-only, full or lost; why
 * gets the detail): a member that can only fail fills should get none.
 */
static const char *
proxy_admin_unready(const struct config *cfg, char *why, size_t whylen)
{
	why[0] = '\0';
	if (proxy_draining())
		return "draining";
	if (cfg->ready_after_reconcile && !cache_reconciled())
		return "reconciling the cache";
	if (cache_dir_writable(why, whylen) != 0)
		return "cache not writable";
	return NULL;
}

/* /readyz, the load balancer's health check: 503 and the reason while
 * proxy_admin_unready() says so.  /healthz stays about the process (a
 * stalled loop). */
static void
proxy_admin_ready(struct evhttp_request *req, const struct config *cfg)
{
	char		 why[512];
	const char	*reason = proxy_admin_unready(cfg, why, sizeof(why));

	/* The detail (a path, an errno) is for the log, not for whoever
	 * can reach this unauthenticated route. */
	static char	 logged[512];	/* the admin loop's only */

	if (reason == NULL) {
		logged[0] = '\0';
		proxy_admin_json(req, 200, json_pack("{s:b}", "ready", 1));
	} else {
		/* Once per cause, not once per check. */
		if (why[0] != '\0' && strcmp(why, logged) != 0) {
			log_warnx("readyz: %s: %s", reason, why);
			snprintf(logged, sizeof(logged), "%s", why);
		}
		proxy_admin_json(req, 503, json_pack("{s:b,s:s}", "ready", 0,
		    "reason", reason));
	}
}

static void
proxy_admin_cb(struct evhttp_request *req, void *arg)
{
	struct proxy_admin *pa = arg;
	const struct config *cfg = pa->pa_cfg;
	const char	*path = evhttp_uri_get_path(
			    evhttp_request_get_evhttp_uri(req));
	struct cache_du	 du;
	json_t		*out;
	int		 status, stalled;

	if (path == NULL)
		path = "";
	if (!proxy_admin_allow(pa, req, path))
		return;
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
		proxy_admin_ready(req, cfg);
	else if (strcmp(path, "/metrics") == 0)
		proxy_admin_metrics(req, cfg);
	else if (strcmp(path, "/api/v1/cache") == 0) {
		if (cache_du(&du) != 0) {
			proxy_admin_json(req, 503, json_pack("{s:s}", "error",
			    "cache index unavailable"));
			return;
		}
		out = cache_du_json(&du);
		json_object_set_new(out, "disk_full_pass_throughs",
		    json_integer((json_int_t)cache_fill_spills()));
		proxy_admin_json(req, 200, out);
	} else
		proxy_admin_json(req, 404, json_pack("{s:s}", "error",
		    "not found"));
}

/* Both token files into *admin and *events (NULL when not set): 0, or
 * -1 with the reason logged. */
static int
proxy_admin_tokens_load(const struct config *cfg, struct tokens **admin,
    struct tokens **events)
{
	char	err[512];

	*admin = *events = NULL;
	if (cfg->admin_token_file != NULL && tokens_load(
	    cfg->admin_token_file, admin, err, sizeof(err)) != 0) {
		log_warnx("admin_token_file %s", err);
		return -1;
	}
	if (cfg->events_token_file != NULL && tokens_load(
	    cfg->events_token_file, events, err, sizeof(err)) != 0) {
		log_warnx("events_token_file %s", err);
		tokens_free(*admin);
		*admin = NULL;
		return -1;
	}
	if (*admin != NULL || *events != NULL)
		log_info("admin: %zu admin token%s, %zu events token%s",
		    tokens_count(*admin), tokens_count(*admin) == 1 ? "" : "s",
		    tokens_count(*events), tokens_count(*events) == 1 ? "" :
		    "s");
	return 0;
}

struct proxy_admin *
proxy_admin_new(const struct config *cfg, int tcp)
{
	struct proxy_admin	*pa;

	pa = xcalloc(1, sizeof(*pa));
	pa->pa_cfg = cfg;
	pa->pa_tcp = tcp;
	pa->pa_certs = tcp && cfg->admin_client_ca != NULL;
	/* Fail closed: a client CA on a unix socket locks the routes even
	 * though no certificate can arrive there. */
	pa->pa_locked = cfg->admin_token_file != NULL ||
	    cfg->admin_client_ca != NULL;
	pa->pa_events_locked = pa->pa_locked ||
	    cfg->events_token_file != NULL;
	if (pthread_mutex_init(&pa->pa_mtx, NULL) != 0)
		fatalx("pthread_mutex_init");
	if (proxy_admin_tokens_load(cfg, &pa->pa_admin_tokens,
	    &pa->pa_events_tokens) != 0) {
		log_warnx("admin: not starting without the admin API's "
		    "tokens");
		proxy_admin_free(pa);
		return NULL;
	}
	return pa;
}

void
proxy_admin_serve(struct proxy_admin *pa, struct event_base *base,
    evutil_socket_t fd, struct bufferevent *(*bevcb)(struct event_base *,
    void *))
{
	struct evhttp	*http;

	http = evhttp_new(base);
	evhttp_set_gencb(http, proxy_admin_cb, pa);
	if (bevcb != NULL)
		evhttp_set_bevcb(http, bevcb, pa);
	evhttp_set_timeout(http, 30);
	evhttp_set_max_headers_size(http, PROXY_ADMIN_HEAD_MAX);
	evhttp_set_max_body_size(http, PROXY_ADMIN_BODY_MAX);
	if (evhttp_accept_socket(http, fd) != 0)
		fatal("admin: evhttp_accept_socket");
	pa->pa_http = http;
}

int
proxy_admin_reload(struct proxy_admin *pa)
{
	struct tokens	*admin, *events, *old_admin, *old_events;

	if (proxy_admin_tokens_load(pa->pa_cfg, &admin, &events) != 0)
		return -1;
	pthread_mutex_lock(&pa->pa_mtx);
	old_admin = pa->pa_admin_tokens;
	old_events = pa->pa_events_tokens;
	pa->pa_admin_tokens = admin;
	pa->pa_events_tokens = events;
	pthread_mutex_unlock(&pa->pa_mtx);
	tokens_free(old_admin);
	tokens_free(old_events);
	return 0;
}

void
proxy_admin_free(struct proxy_admin *pa)
{
	if (pa == NULL)
		return;
	if (pa->pa_http != NULL)
		evhttp_free(pa->pa_http);
	tokens_free(pa->pa_admin_tokens);
	tokens_free(pa->pa_events_tokens);
	pthread_mutex_destroy(&pa->pa_mtx);
	free(pa);
}
