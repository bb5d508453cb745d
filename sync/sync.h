/*
 * sync.h — the mirror's jobs: prefetch (warm and pin images before a
 * rollout), replication policies (keep the tags a region needs in sync,
 * optionally pushing them on) and the registry-event trigger.
 *
 * The jobs are clients of the mirror's own listener: every manifest and
 * blob they want is asked for with the same request a runtime's pull
 * makes, so that it takes exactly that path (routing, single-flight
 * fills, digest checks, repository links, limits) and lands where it
 * will be served.  They run on their own event loop and thread, which
 * also carries the admin API (proxy_admin.c), so nothing a job or an
 * operator does competes with clients on a worker's loop.
 */
#ifndef SYNC_SYNC_H
#define SYNC_SYNC_H

struct config;
struct event_base;
struct evhttp_request;
struct json_t;
struct upstream_worker;

/*
 * Set the jobs up on base (their loop; its thread is the caller's
 * business) with up as their upstream client; have_plain: the mirror
 * has a plain listener (else the jobs talk TLS to the HTTPS one).  0, or
 * -1 (logged): the jobs cannot run, the rest of the mirror can.
 */
int	sync_init(struct event_base *base, struct upstream_worker *up,
	    const struct config *, int have_plain);
/*
 * SIGHUP: the [replication] policies of a config that validated (the
 * list is taken).  Each policy takes the keys of its namesake when it is
 * next idle: at once, or when its run under way ends.  Policies the
 * running mirror does not have are dropped (adding one needs a
 * restart).  Any thread; the work is done on base's.
 */
struct config_replication;
void	sync_reload(struct config_replication *);
/* Stop every job and free what sync_init made (on base's thread). */
void	sync_fini(void);

/*
 * An admin API request for the jobs (POST /api/v1/prefetch, GET
 * /api/v1/jobs[/ID], GET /api/v1/replication, POST .../sync, POST
 * /api/v1/events): 0 with *status and *out (a new JSON reply) set when
 * path is one of them, -1 when it is not.  On base's thread.
 */
int	sync_admin_route(struct evhttp_request *, const char *path,
	    const struct config *, int *status, struct json_t **out);

struct evbuffer;
/* The jobs' figures (replication policies) for /metrics, in the
 * Prometheus text format.  On base's thread. */
void	sync_metrics(struct evbuffer *);

/*
 * The secret the jobs send in X-Regmirror-Job: only requests that carry
 * it may force a revalidation or skip the miss limits (proxy_oci.c).
 * Made at start-up; any thread.
 */
const char *sync_token(void);
/* SIGHUP: has job_token_file changed in place?  1 (logged): restart. */
unsigned sync_secret_changed(const struct config *);

#endif
