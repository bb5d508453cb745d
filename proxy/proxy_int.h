/*
 * proxy_int.h — private to proxy/: the worker loops, the per-request
 * context and the handlers of the OCI pull API.
 */
#ifndef PROXY_PROXY_INT_H
#define PROXY_PROXY_INT_H

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <sys/queue.h>

#include <event2/http.h>
#include <event2/util.h>

#include "common/digest.h"

struct config;
struct upstream;
struct upstream_worker;

#define PROXY_REQ_MAGIC		0x70726571
#define PROXY_MANIFEST_MAX	(4 * 1024 * 1024)
#define PROXY_HEADERS_MAX	100
#define PROXY_TAGS_MAX		(4 * 1024 * 1024)

/* Blob fetches in progress from one upstream on a worker ([upstream]
 * max_fills, shared out between the workers), and those that wait. */
struct proxy_bfetch;
struct proxy_fill_slots {
	unsigned			 active, cap, nqueued;
	TAILQ_HEAD(, proxy_bfetch)	 queue;
};

struct proxy_worker {
	int			 id;
	const struct config	*cfg;
	struct event_base	*base;
	struct evhttp		*http;		/* plain listeners */
	struct evhttp		*https;		/* TLS listeners */
	struct upstream_worker	*up;
	void			*conns;		/* proxy_conn.c's trackers */
	struct proxy_fill_slots	*fills;		/* by upstream index */
	struct event		*beat_ev;	/* every second: beat */
	_Atomic int64_t		 beat;		/* monotonic s, last run */
};

/*
 * A worker whose loop has not run for max_age seconds (blocked, or
 * spinning in one callback), or -1: /healthz asks, from the jobs' loop,
 * and so does the main thread before each systemd watchdog ping.
 */
int	proxy_workers_stalled(int64_t max_age);
/* A worker loop silent this long makes /healthz fail and stops the
 * WATCHDOG=1 pings (one threshold: systemd restarts what /healthz calls
 * stalled). */
#define PROXY_STALL_SECONDS	10

/*
 * The systemd watchdog (proxy_watchdog.c): the main thread waits for its
 * signals with proxy_watchdog_sigwait(), which sends WATCHDOG=1 meanwhile
 * when systemd asks for it, while no worker has stalled.
 */
struct proxy_watchdog {
	uint64_t	half;		/* us between pings; 0: no watchdog */
	uint64_t	next;		/* monotonic us of the next ping */
	int		stalled;	/* the stalled worker, or -1 */
	uint64_t	since;		/* monotonic us it was found */
	int		nw;		/* workers, for the status line */
};

void	proxy_watchdog_init(struct proxy_watchdog *, int nw);
/* The next signal of set, or -1 (none yet: call again). */
int	proxy_watchdog_sigwait(struct proxy_watchdog *, const sigset_t *);

enum proxy_kind {
	PROXY_KIND_BASE = 0,
	PROXY_KIND_MANIFEST,
	PROXY_KIND_BLOB,
	PROXY_KIND_TAGS,
	PROXY_KIND_REFERRERS,
	PROXY_KIND_CATALOG,
};

struct proxy_req;
struct rbuf;
typedef void	(*proxy_reply_hook)(struct proxy_req *, int status,
		    const char *ctype, struct rbuf *);

/* One client request, from routing to the access log line. */
struct proxy_req {
	unsigned		 magic;
	uint64_t		 id;
	struct proxy_worker	*w;
	struct evhttp_request	*req;
	enum evhttp_cmd_type	 method;
	char			*uri;		/* as received, for the log */
	char			 peer[64];
	struct timespec		 start;
	struct upstream		*up;
	enum proxy_kind		 kind;
	char			*repo;		/* name at the upstream */
	char			*ref;		/* tag or digest */
	char			*query;		/* after '?', or NULL */
	int			 ref_is_digest;
	struct digest		 digest;
	int			 status;
	uint64_t		 bytes;
	const char		*src;		/* hit, miss, attach, ... */
	int			 tls;		/* came on a TLS listener */
	/* The repository is known to hold the blob. */
	int			 linked;
	int			 done;
	struct proxy_mflight	*mflight;	/* leads this manifest fetch */
	/* Told of the reply before it is sent (then cleared): a flight's
	 * leader hands the same reply to its waiters (proxy_oci.c). */
	proxy_reply_hook	 on_reply;
	/* Access control (proxy_access.c): the client's address (the peer,
	 * or X-Forwarded-For behind trusted_proxies), who it is ("" when
	 * anonymous), the rule that decided, and what serves it then. */
	char			 client[64];
	char			 user[129];
	int			 how;		/* enum access_how */
	const char		*user_how;	/* "cert:" for a CN, or NULL */
	const char		*rule;
	void			(*access_ok)(struct proxy_req *);
};

/* proxy_reload.c: SIGHUP's config reread (running: the start-up
 * config); 0, or -1 when it has errors and nothing may be reloaded. */
int	proxy_config_reload(const struct config *running);

/* proxy_access.c */
struct evbuffer;
int	proxy_access_init(const struct config *);
/* The login threads stopped, before the worker loops are freed. */
void	proxy_access_stop(void);
void	proxy_access_fini(void);
int	proxy_access_reload(void);
/* SIGHUP: new [access] rules (taken); 1 replaced, 0 the same (or no
 * access control: turning it on needs a restart). */
struct config_access;
int	proxy_access_rules_reload(struct config_access *, size_t);
/* Serve pr with ok if the rules allow it; else 401, 403 or 429. */
void	proxy_access_check(struct proxy_req *, void (*ok)(struct proxy_req *));
/* The token service: uri is its path (proxy_token_path), serve it. */
int	proxy_token_path(const char *uri);
void	proxy_token_serve(struct proxy_req *);
/* Decisions by rule, in the Prometheus text format. */
void	proxy_access_metrics(struct evbuffer *);
/* Whether pr's lists are cut to its rules; the cut answer (a ref). */
int	proxy_access_cuts(const struct proxy_req *);
struct rbuf *proxy_access_catalog(struct proxy_req *, struct rbuf *);

/*
 * proxy_conn.c: client connections — caps, head and handshake deadlines,
 * TCP_NODELAY, accept errors.  All on the worker's loop.
 */
typedef void	(*proxy_conn_close_f)(void *arg);
void	proxy_conn_init(const struct config *);
/* Accept on fd with http (a worker's), pausing on EMFILE. */
void	proxy_conn_listen(struct proxy_worker *, struct evhttp *,
	    evutil_socket_t fd);
/* evhttp's bufferevent constructor calls this with the bufferevent it
 * made for a new connection; returns it. */
struct bufferevent *proxy_conn_bev_new(struct proxy_worker *,
	    struct bufferevent *, int tls);
/* A request head arrived on its connection (stops the head deadline). */
void	proxy_conn_request(struct proxy_worker *, struct evhttp_request *);
/* Tell cb (once) when the connection closes, replacing any earlier cb;
 * cb NULL clears it.  -1 if the connection is not tracked. */
int	proxy_conn_on_close(struct proxy_worker *, struct evhttp_connection *,
	    proxy_conn_close_f cb, void *arg);
/* Client connections open now. */
unsigned proxy_conn_count(void);
/* SIGTERM: close w's listeners and idle connections (w's thread). */
void	proxy_conn_unlisten(struct proxy_worker *);
void	proxy_conn_drain_sweep(struct proxy_worker *);
void	proxy_conn_fini(struct proxy_worker *);
/* 1 from SIGTERM on: /readyz 503, every reply "Connection: close". */
int	proxy_draining(void);

/*
 * proxy_limit.c: a request the cache cannot answer is about to go
 * upstream: within its client's miss_limit (1), or answered 429 with
 * Retry-After here (0: pr is finished).
 */
int	proxy_limit_allow(struct proxy_req *);
/* A cold fill for pr's client (max_fills_per_client): 0 counted (key
 * set, give it back when the fill's fetch ends), -1 over. */
int	proxy_limit_fill_take(const struct proxy_req *, char *key, size_t len);
void	proxy_limit_fill_give(const char *key);

/* proxy_server.c */
/* The most bytes of a request head evhttp is let to buffer. */
size_t	proxy_head_cap(const struct config *);
/* Is pr one of the mirror's own jobs (sync_token() in X-Regmirror-Job)? */
int	proxy_req_is_job(const struct proxy_req *);
long	proxy_tag_ttl(const struct proxy_req *);

/*
 * proxy_admin.c: the admin API ([server] admin_listen) and who may use
 * it.  proxy_admin_new loads its token files (admin_token_file,
 * events_token_file): NULL when one cannot be used (said in the log);
 * tcp is 0 on a unix socket, where no client certificate (admin_client_ca)
 * can arrive.  proxy_admin_serve answers on base,
 * accepting on the listening socket fd (which it takes); bevcb, when not
 * NULL, makes each connection's bufferevent (TLS).  proxy_admin_reload
 * rereads the token files (SIGHUP, from another thread): 0, or -1 with
 * the old tokens kept.  proxy_admin_free after base stopped.
 */
struct proxy_admin;
struct proxy_admin	*proxy_admin_new(const struct config *, int tcp);
void			 proxy_admin_serve(struct proxy_admin *,
			    struct event_base *base, evutil_socket_t fd,
			    struct bufferevent *(*bevcb)(struct event_base *,
			    void *));
int			 proxy_admin_reload(struct proxy_admin *);
void			 proxy_admin_free(struct proxy_admin *);

/* proxy_oci.c */
/* HEAD pr's digest in its repository upstream: on 200 link it there and
 * call then(pr), else answer the upstream's refusal (finishing pr). */
void	proxy_link_check(struct proxy_req *, void (*then)(struct proxy_req *));
/* 1 if ctype names a manifest media type (parameters ignored). */
int	proxy_manifest_type_ok(const char *ctype);
void	proxy_oci_request_cb(struct evhttp_request *, void *);
void	proxy_oci_request_tls_cb(struct evhttp_request *, void *);

/* proxy_blob.c */
void	proxy_blob_get(struct proxy_req *);

/* proxy_range.c: a client's Range header (one byte range, or none). */
enum proxy_range_kind {
	PROXY_RANGE_NONE = 0,	/* no header, or one to ignore: 200 */
	PROXY_RANGE_FROM_TO,	/* bytes=a-b */
	PROXY_RANGE_FROM,	/* bytes=a- */
	PROXY_RANGE_SUFFIX,	/* bytes=-b: the last b bytes */
};
struct proxy_range {
	enum proxy_range_kind	 kind;
	uint64_t		 a, b;
};
/* Parse header h (NULL: absent) into r: 1 if it is a range to honour,
 * 0 if there is none or it is to be ignored (r->kind is then NONE). */
int	proxy_range_parse(const char *h, struct proxy_range *r);
/* The bytes [*start, *end) of a blob of size bytes that r asks for (all
 * of them for NONE): 0, or -1 when unsatisfiable (416; *start and *end
 * untouched).  A satisfiable range is never empty. */
int	proxy_range_resolve(const struct proxy_range *r, uint64_t size,
	    uint64_t *start, uint64_t *end);

/*
 * proxy_reply.c: replies built in memory (OCI errors, small bodies,
 * shared buffers), the mapping of upstream failures, and the end of
 * every request (its access log line and counters).  Depends on nothing
 * else in proxy/.
 */
/* The headers every reply carries (API version, nosniff). */
void	proxy_req_common_headers(struct proxy_req *);
/* The access log line and counters, then free pr (not its evhttp
 * request). */
void	proxy_req_finish(struct proxy_req *);
#define PROXY_ERROR_MSG_MAX	512
/* The OCI error JSON for code and msg (any bytes), malloc'd, never NULL. */
char	*proxy_error_body(const char *code, const char *msg);
void	proxy_error(struct proxy_req *, int status, const char *code,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Map a failed or non-2xx upstream exchange to the client's reply. */
void	proxy_error_upstream(struct proxy_req *, int upstream_status,
	    const char *err, const char *errmsg, const char *retry_after);
struct proxy_err {
	int		 status;
	const char	*code;
	int		 retry;		/* send Retry-After */
	const char	*retry_after;	/* its value, when ours */
	char		 msg[256];
};
void	proxy_map_upstream(enum proxy_kind, const char *ref, const char *repo,
	    const char *upname, int ustatus, const char *err,
	    const char *errmsg, struct proxy_err *out);
/* The Retry-After to send with a mapped reply, given the upstream's
 * (NULL: it sent none); NULL when the reply carries none. */
const char *proxy_error_retry_after(const struct proxy_err *,
	    const char *upstream);
/* Send a whole in-memory body (small JSON: copied once). */
void	proxy_reply_buf(struct proxy_req *, int status, const char *ctype,
	    const void *data, size_t len);
/* Send a shared buffer by reference (manifests, tag lists). */
void	proxy_reply_rbuf(struct proxy_req *, int status, const char *ctype,
	    struct rbuf *);
struct evbuffer;
void	proxy_evbuffer_add_rbuf(struct evbuffer *, struct rbuf *);

/*
 * proxy_route.c: a request target (path and query, as received) to what
 * it asks for.  The upstreams are reached through cfg: find(name, arg)
 * returns the upstream with that section name or alias, or, for name
 * NULL, the default one; NULL when there is none.  docker_hub(up, arg)
 * is 1 when up's single-component names become library/NAME.
 *
 * proxy_route_parse returns 0 when the request is routed, or -1 with err
 * set to the refusal (status, OCI code, message: the reply to send).
 * Either way out holds what was learnt (a refused request may still name
 * its upstream and kind, for the access log) and the caller owns its
 * strings: take them or proxy_route_fini(out).  out->ns is the ns query
 * parameter when it named an upstream (the reply's OCI-Namespace).
 */
#define PROXY_ROUTE_PATH_MAX	2048	/* bytes of the path, query aside */
struct proxy_route_cfg {
	struct upstream	*(*find)(const char *name, void *arg);
	int		 (*docker_hub)(const struct upstream *, void *arg);
	void		*arg;
};
struct proxy_route {
	struct upstream	*up;
	enum proxy_kind	 kind;
	char		*repo;		/* name at the upstream */
	char		*ref;		/* tag or digest, or NULL */
	char		*query;		/* n, last, artifactType, or NULL */
	int		 ref_is_digest;
	struct digest	 digest;
	char		*ns;
};
struct proxy_route_err {
	int		 status;
	const char	*code;
	char		 msg[PROXY_ERROR_MSG_MAX];
};
int	proxy_route_parse(const char *uri, const struct proxy_route_cfg *cfg,
	    struct proxy_route *out, struct proxy_route_err *err);
/* The same against the configured upstreams (proxy_oci.c). */
int	proxy_oci_route(const char *uri, struct proxy_route *out,
	    struct proxy_route_err *err);
void	proxy_route_fini(struct proxy_route *);

#endif
