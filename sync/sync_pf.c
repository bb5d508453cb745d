/*
 * sync_pf.c — prefetch jobs: warm (and pin) images before a rollout.
 *
 * A job is a list of images (tags or digests), optional platforms, and a
 * pin duration.  It runs on the admin loop as a client of this very
 * mirror: every manifest and blob is requested from a local listener with
 * ?ns=<upstream>, so prefetching takes exactly the path a runtime's pull
 * takes (routing, single-flight fills, digest checks, repository links)
 * and bodies are discarded as they stream (memory stays flat).
 *
 *	image:	PENDING --root manifest--> RUNNING --all blobs--> DONE
 *		any step failing --> FAILED (the first error is kept)
 *	job:	RUNNING --every image DONE or FAILED--> DONE | FAILED (then
 *		the DONE images are pinned when a pin was asked for)
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cache/cache.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/log.h"
#include "common/obj.h"
#include "common/ref.h"
#include "common/text.h"
#include "common/xmalloc.h"
#include "sync/sync.h"
#include "sync/sync_int.h"
#include "upstream/upstream.h"

#define PF_CONNS	32	/* connections to our own listener */
#define PF_RUNNING_DFLT	4	/* requests in flight per job */
#define PF_PAUSE_DFLT	60	/* seconds between rate-limit probes */
#define PF_PAUSE_MAX	3600
#define PF_PAUSE_TOTAL	(6 * 3600)	/* then the floor is ignored */
#define PF_JOBS_KEPT	100
#define PF_SETTLE_MAX	120	/* seconds to wait for fills to publish */
#define PF_429_TRIES	5	/* 429s obeyed per request */
#define PF_429_MAX_WAIT	120	/* seconds, whatever Retry-After says */
#define PF_PIN_MAX	(10L * 365 * 86400)	/* ten years, in seconds */
#define PF_BUSY_RETRY	"30"	/* Retry-After when max_jobs are running */

/* The image manifest types (index, list, OCI and Docker manifests). */
const char sync_accept_images[] =
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

enum pf_state { PF_PENDING = 0, PF_RUNNING, PF_DONE, PF_FAILED };
static const char *const pf_state_names[] = {
	"pending", "running", "done", "failed"
};

struct pf_image {
	char		*ref;		/* as given */
	char		*ns;		/* upstream name, NULL: default */
	char		*repo;
	char		*reference;	/* tag or digest */
	char		 digest[DIGEST_STR_MAX];
	enum pf_state	 state;
	uint64_t	 bytes;
	unsigned	 blobs, blobs_done;
	unsigned	 inflight;
	char		 error[256];
	json_t		*seen;		/* digests queued: a set */
};

enum pf_kind { PF_ROOT, PF_CHILD, PF_BLOB };

#define PF_TASK_MAGIC	0x70667461

struct pf_task {
	unsigned		 magic;
	struct pf_job		*job;
	size_t			 img;
	enum pf_kind		 kind;
	char			*ref;	/* digest (or the tag for ROOT) */
	int			 tries;	/* 429s obeyed so far */
	TAILQ_ENTRY(pf_task)	 entry;
};

#define PF_JOB_MAGIC	0x70666a62

/* Has a blob of the job landed on its owner?  Asked through the front. */
struct pf_probe {
	struct pf_job		*job;
	size_t			 img;
	char			*digest;
	TAILQ_ENTRY(pf_probe)	 entry;
};

struct pf_job {
	unsigned		 magic;
	char			 id[24];
	struct pf_image		*images;
	size_t			 nimages;
	char			**platforms;
	size_t			 nplatforms;
	long			 pin;		/* seconds; 0 off, -1 forever */
	enum pf_state		 state;
	time_t			 created, finished;
	unsigned		 running;
	unsigned		 throttled;	/* 429s obeyed */
	int			 revalidate;	/* Cache-Control: no-cache */
	void			(*done_cb)(struct pf_job *, void *);
	void			*done_arg;
	int			 settling;
	time_t			 settle_start;	/* 0: not yet */
	struct event		*settle_ev;	/* PF_SETTLE_MAX passed */
	unsigned		 max_running;
	long			 rate_floor;	/* RateLimit-Remaining */
	int			 paused;	/* under the floor */
	unsigned		 pauses;
	struct upstream_req	*probe;		/* in flight */
	time_t			 paused_since;	/* first pause */
	struct event		*pause_ev;
	struct event		*check_ev;	/* deferred pf_job_check */
	int			 admin;		/* posted: counts to max_jobs */
	json_t			*seen;		/* every image's digests */
	/* Settling through a front door (pf_front_settle). */
	TAILQ_HEAD(, pf_probe)	 probes;	/* to ask */
	TAILQ_HEAD(, pf_probe)	 probes_later;	/* "not yet": again */
	TAILQ_HEAD(, pf_probe)	 probes_flight;	/* asked, no answer yet */
	unsigned		 probes_running;
	unsigned		 probes_lost;
	struct event		*probe_ev;	/* probes_later's timer */
	TAILQ_HEAD(, pf_task)	 queue;
	LIST_ENTRY(pf_job)	 entry;
};

static LIST_HEAD(, pf_job)		 pf_jobs =
					    LIST_HEAD_INITIALIZER(pf_jobs);
static size_t				 pf_njobs;
static struct event_base		*pf_base;
static struct upstream_worker		*pf_up;
static SSL_CTX				*pf_ssl_ctx;	/* TLS-only */
static char				*pf_host;	/* loopback listener */
static int				 pf_port;
static char				*pf_front;	/* front's host:port */
static struct evdns_base		*pf_dns;	/* a front's name */
static struct evhttp_connection		*pf_conns[PF_CONNS];
static struct event			*pf_end_ev;	/* a fill ended */
static unsigned				 pf_next_conn;
static unsigned long			 pf_seq;

/* How a job runs: set by whoever starts it, never by the posted JSON. */
struct pf_opts {
	long		 pin;		/* seconds; 0 none, -1 forever */
	int		 revalidate;	/* Cache-Control: no-cache */
	unsigned	 max_running;	/* 0: PF_RUNNING_DFLT */
	long		 rate_floor;
	int		 admin;		/* from the admin API: capped */
};

static void	pf_job_pump(struct pf_job *);
static void	pf_fill_end_cb(evutil_socket_t, short, void *);

/*
 * Where the jobs reach a listener "l" (host:port, [v6]:port or :port, as
 * the config checked it): its own address, or loopback for a wildcard
 * one (":port", 0.0.0.0, [::]).  *host is allocated.
 */
int
sync_self_addr(const char *l, char **host, int *port)
{
	const char	*colon = strrchr(l, ':');
	char		*h;
	struct in6_addr	 a6;
	struct in_addr	 a4;
	long		 p;

	if (colon == NULL || (p = strtol(colon + 1, NULL, 10)) <= 0 ||
	    p > 65535)
		return -1;
	if (l[0] == '[') {
		if (colon < l + 3 || colon[-1] != ']')
			return -1;
		h = xstrndup(l + 1, (size_t)(colon - l - 2));
		if (inet_pton(AF_INET6, h, &a6) == 1 &&
		    IN6_IS_ADDR_UNSPECIFIED(&a6)) {
			free(h);
			h = xstrdup("::1");
		}
	} else {
		h = xstrndup(l, (size_t)(colon - l));
		if (h[0] == '\0' || (inet_pton(AF_INET, h, &a4) == 1 &&
		    a4.s_addr == htonl(INADDR_ANY))) {
			free(h);
			h = xstrdup("127.0.0.1");
		}
	}
	*host = h;
	*port = (int)p;
	return 0;
}

/*
 * The listener prefetch talks to: the first plain one, on loopback; with
 * none, the first HTTPS one (our own certificate, on loopback: it is not
 * verified, as it may not name 127.0.0.1).
 */
/* Is pf_host an address (no name to resolve)? */
static int
pf_host_is_addr(void)
{
	struct in6_addr	a6;
	struct in_addr	a4;

	return inet_pton(AF_INET, pf_host, &a4) == 1 ||
	    inet_pton(AF_INET6, pf_host, &a6) == 1;
}

/*
 * [server] front = http(s)://host[:port] (as config_url_parse left it):
 * the jobs' requests go there, to the tier's balancer, which sends each
 * to the member that owns it.  An https front is verified against the
 * system's CAs, for its name.
 */
static int
pf_front_init(const char *url)
{
	int		 tls = strncmp(url, "https://", 8) == 0;
	const char	*hp = url + (tls ? 8 : 7), *colon;
	char		*spec;
	int		 rc;

	pf_front = xstrdup(hp);
	colon = strrchr(hp, ':');
	if (colon == NULL || (hp[0] == '[' && colon < strchr(hp, ']')))
		xasprintf(&spec, "%s:%d", hp, tls ? 443 : 80);
	else
		spec = xstrdup(hp);
	/* (A front door at a wildcard address would mean loopback, as
	 * sync_self_addr maps it.) */
	rc = sync_self_addr(spec, &pf_host, &pf_port);
	free(spec);
	if (rc != 0)
		return -1;
	/* A name is resolved on the jobs' loop without blocking it (the
	 * admin API, /readyz included, runs there too). */
	if (!pf_host_is_addr() && (pf_dns = evdns_base_new(pf_base,
	    EVDNS_BASE_INITIALIZE_NAMESERVERS)) == NULL)
		return -1;
	if (tls) {
		if ((pf_ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
		    SSL_CTX_set_default_verify_paths(pf_ssl_ctx) != 1)
			return -1;
		SSL_CTX_set_verify(pf_ssl_ctx, SSL_VERIFY_PEER, NULL);
	}
	log_info("jobs fetch through the front door %s", url);
	return 0;
}

int
sync_pf_init(struct event_base *base, struct upstream_worker *up,
    const struct config *cfg, int have_plain)
{
	const char	*l;

	pf_base = base;
	pf_up = up;
	if ((pf_end_ev = event_new(base, -1, 0, pf_fill_end_cb, NULL)) == NULL)
		return -1;
	cache_fill_end_watch(pf_end_ev);
	if (cfg->front != NULL)
		return pf_front_init(cfg->front);
	if (have_plain)
		l = cfg->listen[0];
	else {
		l = cfg->ntls_listen > 0 ? cfg->tls_listen[0] : cfg->listen[0];
		if ((pf_ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
			return -1;
		SSL_CTX_set_verify(pf_ssl_ctx, SSL_VERIFY_NONE, NULL);
	}
	return sync_self_addr(l, &pf_host, &pf_port);
}

void
sync_pf_fini(void)
{
	if (pf_end_ev != NULL) {
		cache_fill_end_unwatch(pf_end_ev);
		event_free(pf_end_ev);
		pf_end_ev = NULL;
	}
}

static void
pf_image_fail(struct pf_image *im, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
pf_image_fail(struct pf_image *im, const char *fmt, ...)
{
	va_list	ap;

	if (im->state == PF_FAILED)
		return;
	im->state = PF_FAILED;
	va_start(ap, fmt);
	vsnprintf(im->error, sizeof(im->error), fmt, ap);
	va_end(ap);
	/* Upstream words inside: the admin API's JSON must encode them. */
	text_escape_inplace(im->error, sizeof(im->error));
	log_warnx("prefetch %s: %s", im->ref, im->error);
}

static void
pf_task_add(struct pf_job *j, size_t img, enum pf_kind kind, const char *ref)
{
	struct pf_image	*im = &j->images[img];
	struct pf_task	*t;

	/* ref is a canonical digest (or the ROOT's reference): a set key. */
	if (kind != PF_ROOT) {
		if (json_object_get(im->seen, ref) != NULL)
			return;
		json_object_set_new(im->seen, ref,
		    json_integer((json_int_t)kind));
		json_object_set_new(j->seen, ref, json_true());
		if (kind == PF_BLOB)
			im->blobs++;
	}
	t = xcalloc(1, sizeof(*t));
	t->magic = PF_TASK_MAGIC;
	t->job = j;
	t->img = img;
	t->kind = kind;
	t->ref = xstrdup(ref);
	im->inflight++;
	TAILQ_INSERT_TAIL(&j->queue, t, entry);
}

/* What a manifest names, for the job: cache_manifest_each's callback. */
struct pf_walk {
	struct pf_job	*job;
	size_t		 img;
	int		 children;	/* queued, of an index */
};

static int
pf_desc_cb(const struct cache_desc *d, void *arg)
{
	struct pf_walk	*w = arg;
	struct pf_job	*j = w->job;

	switch (d->kind) {
	case CACHE_DESC_CHILD:
		if (!sync_platform_match(j->platforms, j->nplatforms, d->os,
		    d->arch, d->variant))
			break;
		pf_task_add(j, w->img, PF_CHILD, d->digest);
		w->children++;
		break;
	case CACHE_DESC_CONFIG:
	case CACHE_DESC_LAYER:
		/* Foreign layers are served from their urls, not by the
		 * registry: a client fetches them there. */
		if (!d->foreign)
			pf_task_add(j, w->img, PF_BLOB, d->digest);
		break;
	}
	return 0;
}

/*
 * Queue what manifest ref references: the index's children that match
 * the job's platforms, or an image's config and layers.  The walker
 * checks the whole manifest first: one bad field fails the image, and
 * nothing the manifest names is asked for.
 */
static void
pf_manifest_parse(struct pf_job *j, size_t img, const char *ref,
    const char *body, size_t len)
{
	struct pf_walk	 w = { j, img, 0 };
	char		 why[256];
	int		 index = 0;

	if (cache_manifest_each(body, len, &index, pf_desc_cb, &w, why,
	    sizeof(why)) != 0)
		pf_image_fail(&j->images[img], "manifest %s: %s", ref, why);
	else if (index && w.children == 0)
		pf_image_fail(&j->images[img], "no manifest in the index "
		    "matches the platforms asked for");
}

static void
pf_blob_chunk_cb(struct evhttp_request *req, void *arg)
{
	struct pf_task	*t = arg;

	CHECK_OBJ_NOTNULL(t, PF_TASK_MAGIC);

	t->job->images[t->img].bytes +=
	    evbuffer_get_length(evhttp_request_get_input_buffer(req));
}

struct pf_settle {
	int64_t		 until;
	int		 pin;
	unsigned	 final;		/* 0: count busy; 1: pin, count lost */
	unsigned	 busy;		/* fills still publishing */
	unsigned	 lost;		/* fetched, never to be stored */
	const struct pf_job *job;
};

static void
pf_settle_cb(const char *digest, int is_manifest, void *arg)
{
	struct pf_settle	*s = arg;
	uint64_t		 size;

	if (is_manifest)
		return;
	if (cache_blob_stat(digest, &size) != 0) {
		/* Not stored (yet): only the blobs this job fetched count,
		 * not other platforms'. */
		if (json_object_get(s->job->seen, digest) == NULL)
			return;
		if (cache_fill_busy(digest)) {
			s->busy++;
			return;
		}
		/* It may have been committed between the two looks. */
		if (cache_blob_stat(digest, &size) != 0) {
			s->lost += s->final;	/* passed through, or failed */
			return;
		}
	}
	/* Pins only once the job ends: a write transaction per blob. */
	if (s->pin && s->final)
		cache_blob_pin(digest, s->until);
}

/* Walk every image the job fetched with s (s->final says what for). */
static void
pf_settle_walk(const struct pf_job *j, struct pf_settle *s)
{
	size_t	i;

	for (i = 0; i < j->nimages; i++)
		if (j->images[i].state == PF_DONE)
			cache_manifest_walk(j->images[i].digest,
			    pf_settle_cb, s);
}

static void	pf_job_settle(struct pf_job *);
static void	pf_job_finish(struct pf_job *, unsigned busy, unsigned lost);
static struct evhttp_connection *pf_conn(void);
static void	pf_req_headers(struct evhttp_request *, const char *);

#define PF_PROBE_MS	100	/* between asks of a blob not landed yet */
#define PF_PROBES_MAX	8	/* asks in flight per job */

static void	pf_probes_pump(struct pf_job *);

static void
pf_probe_free(struct pf_probe *p)
{
	free(p->digest);
	free(p);
}

/*
 * Every probe of j, counted: the queued ones freed, the ones in flight
 * let go (their answer frees them, job or no job): the job ends without.
 */
static unsigned
pf_probes_drop(struct pf_job *j)
{
	struct pf_probe	*p;
	unsigned	 n = 0;

	while ((p = TAILQ_FIRST(&j->probes_flight)) != NULL) {
		TAILQ_REMOVE(&j->probes_flight, p, entry);
		p->job = NULL;
		n++;
	}
	j->probes_running = 0;
	evtimer_del(j->probe_ev);

	while ((p = TAILQ_FIRST(&j->probes)) != NULL ||
	    (p = TAILQ_FIRST(&j->probes_later)) != NULL) {
		if (p == TAILQ_FIRST(&j->probes))
			TAILQ_REMOVE(&j->probes, p, entry);
		else
			TAILQ_REMOVE(&j->probes_later, p, entry);
		pf_probe_free(p);
		n++;
	}
	return n;
}

static void
pf_landed_done_cb(struct evhttp_request *req, void *arg)
{
	struct pf_probe		*p = arg;
	struct pf_job		*j = p->job;
	struct timeval		 tv = { 0, PF_PROBE_MS * 1000 };
	int			 code;

	if (j == NULL) {	/* its job has ended */
		pf_probe_free(p);
		return;
	}
	CHECK_OBJ_NOTNULL(j, PF_JOB_MAGIC);
	TAILQ_REMOVE(&j->probes_flight, p, entry);
	code = req != NULL ? evhttp_request_get_response_code(req) : 0;
	j->probes_running--;
	if (code == 504 || code == 503 || code == 0) {
		/* Still publishing on its owner, or the owner is moving. */
		TAILQ_INSERT_TAIL(&j->probes_later, p, entry);
		if (!evtimer_pending(j->probe_ev, NULL))
			evtimer_add(j->probe_ev, &tv);
	} else {
		if (code != 200) {
			j->probes_lost++;
			log_warnx("prefetch job %s: %s of %s: front door "
			    "answered %d", j->id, p->digest,
			    j->images[p->img].ref, code);
		}
		pf_probe_free(p);
	}
	pf_probes_pump(j);
}

static void
pf_landed_later_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct pf_job	*j = arg;

	(void)fd;
	(void)ev;
	TAILQ_CONCAT(&j->probes, &j->probes_later, entry);
	pf_probes_pump(j);
}

/* HEAD /v2/REPO/blobs/D, only-if-cached, through the front. */
static int
pf_landed_send(struct pf_job *j, struct pf_probe *p)
{
	struct pf_image		*im = &j->images[p->img];
	struct evhttp_connection *c;
	struct evhttp_request	*req;
	struct evkeyvalq	*h;
	char			*path, *ens = NULL, pin[32];
	int			 rc;

	if ((c = pf_conn()) == NULL)
		return -1;
	req = evhttp_request_new(pf_landed_done_cb, p);
	pf_req_headers(req, "regmirror-prefetch");
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Cache-Control", "only-if-cached");
	if (j->pin != 0) {
		snprintf(pin, sizeof(pin), "%lld", j->pin < 0 ? -1LL :
		    (long long)time(NULL) + j->pin);
		evhttp_add_header(h, "X-Regmirror-Pin", pin);
	}
	if (im->ns != NULL)
		ens = evhttp_encode_uri(im->ns);
	xasprintf(&path, "/v2/%s/blobs/%s%s%s", im->repo, p->digest,
	    ens != NULL ? "?ns=" : "", ens != NULL ? ens : "");
	free(ens);
	rc = evhttp_make_request(c, req, EVHTTP_REQ_HEAD, path);
	free(path);
	return rc;
}

static void
pf_probes_pump(struct pf_job *j)
{
	struct pf_probe	*p;

	while (j->probes_running < PF_PROBES_MAX &&
	    (p = TAILQ_FIRST(&j->probes)) != NULL) {
		TAILQ_REMOVE(&j->probes, p, entry);
		if (pf_landed_send(j, p) != 0) {
			j->probes_lost++;
			pf_probe_free(p);
			continue;
		}
		TAILQ_INSERT_TAIL(&j->probes_flight, p, entry);
		j->probes_running++;
	}
	if (j->probes_running == 0 && TAILQ_EMPTY(&j->probes) &&
	    TAILQ_EMPTY(&j->probes_later) && j->state == PF_RUNNING)
		pf_job_finish(j, 0, j->probes_lost);
}

/*
 * Through a front door the job's blobs land on the members that own
 * them, not here: each is asked, through the front, with a HEAD that
 * says only-if-cached (and pins it there, with --pin) until its owner
 * answers 200; 504 is "not yet", asked again.  PF_SETTLE_MAX bounds the
 * wait as it does for local fills.
 */
static void
pf_front_settle(struct pf_job *j)
{
	struct timeval	 tv = { PF_SETTLE_MAX, 0 };
	struct pf_probe	*p;
	const char	*d;
	json_t		*v;
	size_t		 i;
	unsigned	 busy;

	if (j->settle_start != 0) {
		/* The settle timer: what has not landed is not waited for. */
		if (time(NULL) - j->settle_start < PF_SETTLE_MAX)
			return;
		busy = pf_probes_drop(j);
		pf_job_finish(j, busy, j->probes_lost);
		return;
	}
	j->settle_start = time(NULL);
	evtimer_add(j->settle_ev, &tv);
	for (i = 0; i < j->nimages; i++) {
		if (j->images[i].state != PF_DONE)
			continue;
		json_object_foreach(j->images[i].seen, d, v) {
			if (json_integer_value(v) != PF_BLOB)
				continue;
			p = xcalloc(1, sizeof(*p));
			p->job = j;
			p->img = i;
			p->digest = xstrdup(d);
			TAILQ_INSERT_TAIL(&j->probes, p, entry);
		}
	}
	pf_probes_pump(j);
}

/* The job's blobs have had PF_SETTLE_MAX to publish. */
static void
pf_job_settle_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct pf_job	*j = arg;

	CHECK_OBJ_NOTNULL(j, PF_JOB_MAGIC);
	(void)fd;
	(void)ev;
	if (j->settling && j->state == PF_RUNNING)
		pf_job_settle(j);
}

static void
pf_fill_end_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct pf_job	*j;

	(void)fd;
	(void)ev;
	(void)arg;
	LIST_FOREACH(j, &pf_jobs, entry)
		if (j->settling && j->state == PF_RUNNING)
			pf_job_settle(j);
}

/*
 * The last blob's bytes reach us a moment before its fill is committed to
 * the index: once no fill of the job's blobs is still publishing (the
 * cache tells us when one ends: pf_fill_end_cb), pin what is stored and
 * report the job finished.
 */
static void
pf_job_settle(struct pf_job *j)
{
	struct pf_settle	 s;
	struct timeval		 tv = { PF_SETTLE_MAX, 0 };
	unsigned		 busy;
	time_t			 now = time(NULL);

	if (pf_front != NULL) {
		pf_front_settle(j);
		return;
	}
	memset(&s, 0, sizeof(s));
	s.job = j;
	s.pin = j->pin != 0;
	s.until = j->pin < 0 ? -1 : (int64_t)now + j->pin;
	if (j->settle_start == 0) {
		j->settle_start = now;
		evtimer_add(j->settle_ev, &tv);
	}
	pf_settle_walk(j, &s);
	/* pf_fill_end_cb comes back when one ends, settle_ev at the end. */
	if (s.busy > 0 && now - j->settle_start < PF_SETTLE_MAX)
		return;
	busy = s.busy;
	s.busy = 0;
	s.final = 1;
	pf_settle_walk(j, &s);
	pf_job_finish(j, busy, s.lost);
}

/* The job's end: its blobs have landed (but busy and lost of them). */
static void
pf_job_finish(struct pf_job *j, unsigned busy, unsigned lost)
{
	size_t	i;
	int	failed = 0;

	if (busy > 0)
		log_warnx("prefetch job %s: %u blobs still publishing after "
		    "%d s: not waited for", j->id, busy, PF_SETTLE_MAX);
	evtimer_del(j->settle_ev);
	for (i = 0; i < j->nimages; i++)
		failed |= j->images[i].state == PF_FAILED;
	if (lost > 0)
		log_warnx("prefetch job %s: %u blobs were fetched but not "
		    "stored", j->id, lost);
	j->state = failed ? PF_FAILED : PF_DONE;
	j->finished = time(NULL);
	log_info("prefetch job %s %s", j->id, pf_state_names[j->state]);
	if (j->done_cb != NULL)
		j->done_cb(j, j->done_arg);
}

static void
pf_job_check(struct pf_job *j)
{
	size_t	i;

	for (i = 0; i < j->nimages; i++) {
		struct pf_image *im = &j->images[i];

		if (im->state == PF_RUNNING && im->inflight == 0)
			im->state = PF_DONE;
		if (im->state == PF_PENDING || im->state == PF_RUNNING ||
		    im->inflight > 0)
			return;
	}
	if (j->state != PF_RUNNING || j->settling)
		return;
	j->settling = 1;
	pf_job_settle(j);
}

static void	pf_task_start(struct pf_task *);

static void
pf_task_retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct pf_task	*t = arg;

	CHECK_OBJ_NOTNULL(t, PF_TASK_MAGIC);

	(void)fd;
	(void)ev;
	TAILQ_INSERT_HEAD(&t->job->queue, t, entry);
	pf_job_pump(t->job);
}

/*
 * A 429 from the mirror (its upstream is rate-limited) that t may still
 * obey: t goes back to the head of the queue after Retry-After (at least
 * 1 s, at most PF_429_MAX_WAIT).  1 when t was put off.
 */
static int
pf_task_defer(struct pf_task *t, struct evhttp_request *req, int code)
{
	struct pf_job	*j = t->job;
	struct pf_image	*im = &j->images[t->img];
	const char	*ra;
	long		 secs;
	struct timeval	 tv;

	if (code != 429 || im->state == PF_FAILED || t->tries >= PF_429_TRIES)
		return 0;
	ra = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Retry-After");
	secs = ra != NULL ? strtol(ra, NULL, 10) : 5;
	if (secs < 1)
		secs = 1;
	if (secs > PF_429_MAX_WAIT)
		secs = PF_429_MAX_WAIT;
	tv.tv_sec = secs;
	tv.tv_usec = 0;
	t->tries++;
	j->throttled++;
	log_info("prefetch %s: %s rate-limited, retrying in %ld s", im->ref,
	    t->ref, secs);
	event_base_once(pf_base, -1, EV_TIMEOUT, pf_task_retry_cb, t, &tv);
	return 1;
}

/* A 200 for t: the root names the image's digest (the mirror's
 * Docker-Content-Digest, else the body's own); manifests are walked for
 * what they name; a blob is done. */
static void
pf_task_answered(struct pf_task *t, struct evhttp_request *req)
{
	struct pf_job	*j = t->job;
	struct pf_image	*im = &j->images[t->img];
	struct evbuffer	*b = evhttp_request_get_input_buffer(req);
	struct digest	 d, got;
	const char	*dcd;

	switch (t->kind) {
	case PF_ROOT:
		dcd = evhttp_find_header(evhttp_request_get_input_headers(req),
		    "Docker-Content-Digest");
		if (dcd != NULL && digest_parse(dcd, &d) == 0)
			snprintf(im->digest, sizeof(im->digest), "%s", d.str);
		else {
			digest_buf(DIGEST_SHA256, evbuffer_pullup(b, -1),
			    evbuffer_get_length(b), &got);
			snprintf(im->digest, sizeof(im->digest), "%s",
			    got.str);
		}
		/* FALLTHROUGH */
	case PF_CHILD:
		pf_manifest_parse(j, t->img, t->ref,
		    (const char *)evbuffer_pullup(b, -1),
		    evbuffer_get_length(b));
		break;
	case PF_BLOB:
		im->blobs_done++;
		break;
	}
}

static void
pf_task_done_cb(struct evhttp_request *req, void *arg)
{
	struct pf_task	*t = arg;
	struct pf_job	*j;
	struct pf_image	*im;
	int		 code;

	CHECK_OBJ_NOTNULL(t, PF_TASK_MAGIC);
	code = req != NULL ? evhttp_request_get_response_code(req) : 0;
	j = t->job;
	im = &j->images[t->img];
	j->running--;
	if (pf_task_defer(t, req, code)) {
		pf_job_pump(j);
		return;
	}
	im->inflight--;
	if (im->state != PF_FAILED && code != 200) {
		pf_image_fail(im, "%s %s: %s", t->kind == PF_BLOB ? "blob" :
		    "manifest", t->ref, code == 0 ? "mirror unreachable" :
		    "mirror answered an error");
		if (code != 0)
			snprintf(im->error + strlen(im->error),
			    sizeof(im->error) - strlen(im->error), " (%d)",
			    code);
	} else if (im->state != PF_FAILED)
		pf_task_answered(t, req);
	free(t->ref);
	free(t);
	pf_job_pump(j);
	pf_job_check(j);
}

/* SNI and the name (or address) the front's certificate must show. */
static int
pf_tls_name(SSL *ssl)
{
	if (pf_host_is_addr())
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    pf_host) == 1 ? 0 : -1;
	if (SSL_set_tlsext_host_name(ssl, pf_host) != 1 ||
	    SSL_set1_host(ssl, pf_host) != 1)
		return -1;
	return 0;
}

/*
 * A connection to our own listener (or the front door).  Plain: one of
 * a small pool, kept alive.  HTTPS: a new one per request, freed when it
 * completes (an evhttp connection cannot redo a TLS handshake when it
 * reconnects).
 */
static struct evhttp_connection *
pf_conn(void)
{
	struct evhttp_connection	*c;
	struct bufferevent		*bev;
	SSL				*ssl;
	unsigned			 k;

	if (pf_ssl_ctx == NULL) {
		k = pf_next_conn++ % PF_CONNS;
		if (pf_conns[k] == NULL) {
			pf_conns[k] = evhttp_connection_base_new(pf_base,
			    pf_dns, pf_host, (unsigned short)pf_port);
			evhttp_connection_set_timeout(pf_conns[k], 600);
			evhttp_connection_set_retries(pf_conns[k], 1);
		}
		return pf_conns[k];
	}
	if ((ssl = SSL_new(pf_ssl_ctx)) == NULL)
		return NULL;
	/* A front door is someone else's server: its name is checked. */
	if (pf_front != NULL && pf_tls_name(ssl) != 0) {
		SSL_free(ssl);
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(pf_base, -1, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	c = evhttp_connection_base_bufferevent_new(pf_base, pf_dns, bev,
	    pf_host, (unsigned short)pf_port);
	if (c == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	evhttp_connection_set_timeout(c, 600);
	evhttp_connection_free_on_completion(c);
	return c;
}

/* Headers of every request to our own listener.  Over TLS, each
 * connection serves one request (see pf_conn) and is closed after it. */
static void
pf_req_headers(struct evhttp_request *req, const char *host)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Host", pf_front != NULL ? pf_front : host);
	evhttp_add_header(h, "User-Agent", "regmirror-prefetch/"
	    PACKAGE_VERSION);
	evhttp_add_header(h, "X-Regmirror-Job", sync_token());
	if (pf_ssl_ctx != NULL)
		evhttp_add_header(h, "Connection", "close");
}

static void
pf_task_start(struct pf_task *t)
{
	struct pf_image		*im = &t->job->images[t->img];
	struct evhttp_request	*req;
	struct evkeyvalq	*h;
	struct evhttp_connection *c;
	char			*path, *ens = NULL;

	if ((c = pf_conn()) == NULL) {
		im->inflight--;
		pf_image_fail(im, "cannot reach the mirror's own listener");
		free(t->ref);
		free(t);
		return;
	}
	req = evhttp_request_new(pf_task_done_cb, t);
	pf_req_headers(req, "regmirror-prefetch");
	h = evhttp_request_get_output_headers(req);
	if (t->kind == PF_BLOB)
		evhttp_request_set_chunked_cb(req, pf_blob_chunk_cb);
	else
		evhttp_add_header(h, "Accept", sync_accept_images);
	if (t->kind == PF_ROOT && t->job->revalidate)
		evhttp_add_header(h, "Cache-Control", "no-cache");
	if (im->ns != NULL)
		ens = evhttp_encode_uri(im->ns);
	xasprintf(&path, "/v2/%s/%s/%s%s%s", im->repo,
	    t->kind == PF_BLOB ? "blobs" : "manifests", t->ref,
	    ens != NULL ? "?ns=" : "", ens != NULL ? ens : "");
	free(ens);
	if (im->state == PF_PENDING)
		im->state = PF_RUNNING;
	t->job->running++;
	if (evhttp_make_request(c, req, EVHTTP_REQ_GET, path) != 0) {
		t->job->running--;
		im->inflight--;
		pf_image_fail(im, "cannot reach the mirror's own listener");
		free(t->ref);
		free(t);
	}
	free(path);
}

/*
 * The rate-limit floor: while the upstream's last RateLimit-Remaining is
 * under it, the job starts nothing new.  A HEAD of a manifest (which
 * Docker Hub does not count) asks the upstream again after RateLimit-Reset
 * seconds (when it sends one; else a minute), and the job goes on once
 * the answer is at or above the floor.
 */
static int
pf_rate_low(const struct pf_image *im, long floor, long *reset)
{
	struct upstream	*u;
	long		 left;

	*reset = 0;
	if (floor <= 0 || im->ns == NULL || (u = upstream_find(im->ns)) == NULL)
		return 0;
	left = upstream_rate_remaining(u, reset);
	return left >= 0 && left < floor;
}

/*
 * A probe answered without a RateLimit-Remaining count (the limit is gone,
 * or a 404 for a tag deleted since) or not at all (the upstream is down):
 * no limit is known any more, and the job goes on (and fails, if it must,
 * like any other).  Only an answer under the floor pauses it again.
 */
static void
pf_probe_done_cb(struct upstream_req *ur, const char *err,
    struct evbuffer *body, void *arg)
{
	struct pf_job	*j = arg;
	struct pf_task	*t;
	struct upstream	*u;
	struct upstream_ratelimit rl;

	CHECK_OBJ_NOTNULL(j, PF_JOB_MAGIC);
	t = TAILQ_FIRST(&j->queue);
	(void)body;
	j->probe = NULL;
	if (err == upstream_err_cancelled)	/* the job is being freed */
		return;
	if ((err != NULL || upstream_req_ratelimit(ur, &rl) == 0) &&
	    t != NULL && j->images[t->img].ns != NULL &&
	    (u = upstream_find(j->images[t->img].ns)) != NULL)
		upstream_rate_forget(u);
	j->paused = 0;
	pf_job_pump(j);
}

static void
pf_probe_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct pf_job	*j = arg;
	struct pf_task	*t;
	struct pf_image	*im;
	struct upstream	*u;
	char		*path, *repo;

	CHECK_OBJ_NOTNULL(j, PF_JOB_MAGIC);
	t = TAILQ_FIRST(&j->queue);
	(void)fd;
	(void)ev;
	if (t == NULL || pf_up == NULL || (im = &j->images[t->img])->ns ==
	    NULL || (u = upstream_find(im->ns)) == NULL) {
		j->paused = 0;
		pf_job_pump(j);
		return;
	}
	/* Docker Hub's official images are library/NAME upstream. */
	if (upstream_is_docker_hub(u) && strchr(im->repo, '/') == NULL)
		xasprintf(&repo, "library/%s", im->repo);
	else
		repo = xstrdup(im->repo);
	xasprintf(&path, "/v2/%s/manifests/%s", repo, im->reference);
	j->probe = upstream_req_start(pf_up, u, EVHTTP_REQ_HEAD, path, repo,
	    sync_accept_images, 64 * 1024, NULL, NULL, pf_probe_done_cb, j);
	free(path);
	free(repo);
}

static int
pf_job_paused(struct pf_job *j, struct pf_task *t)
{
	struct timeval	tv = { 0, 0 };
	long		reset;

	if (j->paused)
		return 1;
	if (!pf_rate_low(&j->images[t->img], j->rate_floor, &reset))
		return 0;
	if (j->paused_since == 0)
		j->paused_since = time(NULL);
	else if (time(NULL) - j->paused_since > PF_PAUSE_TOTAL) {
		log_warnx("prefetch job %s: paused for the rate limit for "
		    "%d h: going on regardless (429s are still obeyed)",
		    j->id, PF_PAUSE_TOTAL / 3600);
		j->rate_floor = 0;
		return 0;
	}
	j->paused = 1;
	j->pauses++;
	tv.tv_sec = reset > 0 ? (reset > PF_PAUSE_MAX ? PF_PAUSE_MAX : reset) :
	    PF_PAUSE_DFLT;
	log_info("prefetch job %s: the upstream's RateLimit-Remaining is "
	    "under the floor (%ld): paused, asking again in %ld s", j->id,
	    j->rate_floor, (long)tv.tv_sec);
	if (j->pause_ev == NULL)
		j->pause_ev = evtimer_new(pf_base, pf_probe_cb, j);
	evtimer_add(j->pause_ev, &tv);
	return 1;
}

static void
pf_job_check_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	pf_job_check(arg);
}

/*
 * Start queued tasks, dropping those of failed images.  Whoever pumped,
 * the job is checked for its end right after (deferred: a job pumped
 * from pf_job_new must not end before its owner has its callback set).
 */
static void
pf_job_pump(struct pf_job *j)
{
	struct timeval	 now = { 0, 0 };
	struct pf_task	*t;

	if (j->check_ev != NULL)
		evtimer_add(j->check_ev, &now);
	while (j->running < j->max_running &&
	    (t = TAILQ_FIRST(&j->queue)) != NULL) {
		if (j->images[t->img].state != PF_FAILED && pf_job_paused(j, t))
			return;
		TAILQ_REMOVE(&j->queue, t, entry);
		if (j->images[t->img].state == PF_FAILED) {
			j->images[t->img].inflight--;
			free(t->ref);
			free(t);
			continue;
		}
		pf_task_start(t);
	}
}

static void
pf_job_free(struct pf_job *j)
{
	size_t	i;

	for (i = 0; i < j->nimages; i++) {
		struct pf_image *im = &j->images[i];

		free(im->ref);
		free(im->ns);
		free(im->repo);
		free(im->reference);
		json_decref(im->seen);
	}
	free(j->images);
	json_decref(j->seen);
	for (i = 0; i < j->nplatforms; i++)
		free(j->platforms[i]);
	free(j->platforms);
	if (j->probe != NULL)
		upstream_req_cancel(j->probe);
	if (j->pause_ev != NULL)
		event_free(j->pause_ev);
	if (j->check_ev != NULL)
		event_free(j->check_ev);
	if (j->settle_ev != NULL)
		event_free(j->settle_ev);
	if (j->probe_ev != NULL) {
		pf_probes_drop(j);
		event_free(j->probe_ev);
	}
	j->magic = 0;
	free(j);
}

/* Forget the oldest finished jobs beyond PF_JOBS_KEPT. */
static void
pf_jobs_trim(void)
{
	struct pf_job	*j, *oldest;

	while (pf_njobs > PF_JOBS_KEPT) {
		oldest = NULL;
		LIST_FOREACH(j, &pf_jobs, entry)
			if (j->state != PF_RUNNING &&
			    (oldest == NULL ||
			    j->created < oldest->created))
				oldest = j;
		if (oldest == NULL)
			return;
		LIST_REMOVE(oldest, entry);
		pf_job_free(oldest);
		pf_njobs--;
	}
}

/*
 * "images": 1..max references, each on the upstream its host names (or
 * the fixed upstream: then the whole reference is the repository).
 */
static int
pf_job_images(struct pf_job *j, const struct config *cfg,
    const char *const *images, size_t n, const struct config_upstream *fixed,
    size_t max, char *err, size_t errlen)
{
	const struct config_upstream	*cu;
	struct ref_image		 ri;
	size_t				 i;

	if (n == 0 || n > max) {
		snprintf(err, errlen, "images: want a list of 1 to %zu image "
		    "references (max_job_images)", max);
		return -1;
	}
	j->images = xcalloc(n, sizeof(*j->images));
	for (i = 0; i < n; i++) {
		struct pf_image *im = &j->images[j->nimages];

		if (images[i] == NULL || ref_image_parse(images[i], &ri) != 0) {
			snprintf(err, errlen, "images[%zu]: not an image "
			    "reference", i);
			return -1;
		}
		if (fixed != NULL && ri.host != NULL) {
			char *full;

			xasprintf(&full, "%s/%s", ri.host, ri.name);
			free(ri.name);
			ri.name = full;
			free(ri.host);
			ri.host = NULL;
		}
		cu = fixed != NULL ? fixed : ri.host != NULL ?
		    config_upstream_find(cfg, ri.host) :
		    config_upstream_default(cfg);
		if (cu == NULL) {
			snprintf(err, errlen, "images[%zu]: no upstream "
			    "configured for %s", i, ri.host != NULL ? ri.host :
			    "images without a registry host");
			ref_image_fini(&ri);
			return -1;
		}
		im->ref = xstrdup(images[i]);
		im->ns = xstrdup(cu->name);
		im->repo = xstrdup(ri.name);
		im->reference = xstrdup(ri.digest != NULL ? ri.digest :
		    ri.tag != NULL ? ri.tag : "latest");
		im->seen = json_object();
		j->nimages++;
		ref_image_fini(&ri);
	}
	return 0;
}

/* "platforms": at most max of os/arch[/variant]; absent or null: all. */
static int
pf_job_platforms(struct pf_job *j, const char *const *plats, size_t n,
    size_t max, char *err, size_t errlen)
{
	size_t	i;

	if (n > max) {
		snprintf(err, errlen, "platforms: want a list of at most %zu "
		    "os/arch[/variant] (max_job_platforms)", max);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (!sync_platform_valid(plats[i])) {
			snprintf(err, errlen, "platforms[%zu]: want "
			    "os/arch[/variant], each part 1 to %d printable "
			    "characters", i, CACHE_PLATFORM_FIELD_MAX);
			return -1;
		}
		j->platforms = xreallocarray(j->platforms, j->nplatforms + 1,
		    sizeof(*j->platforms));
		j->platforms[j->nplatforms++] = xstrdup(plats[i]);
	}
	return 0;
}

/*
 * "pin": a duration ("24h"), a positive JSON integer of seconds, or
 * "forever"; at most PF_PIN_MAX, so that now + pin never overflows.
 * Absent or null: no pin.
 */
static int
pf_pin_parse(const json_t *pin, long *out, char *err, size_t errlen)
{
	const char	*s = json_string_value(pin);
	long		 secs = 0;

	*out = 0;
	if (pin == NULL || json_is_null(pin))
		return 0;
	if (s != NULL && strcmp(s, "forever") == 0) {
		*out = -1;
		return 0;
	}
	if (s != NULL) {
		if (config_parse_duration(s, &secs) != 0)
			secs = 0;
	} else if (json_is_integer(pin) && json_integer_value(pin) > 0 &&
	    json_integer_value(pin) <= PF_PIN_MAX)
		secs = (long)json_integer_value(pin);
	if (secs <= 0 || secs > PF_PIN_MAX) {
		snprintf(err, errlen, "pin: want a duration like 24h, a "
		    "positive number of seconds, or \"forever\"; at most %ld "
		    "days", PF_PIN_MAX / 86400);
		return -1;
	}
	*out = secs;
	return 0;
}

/*
 * A new job from {"images":[...],"platforms":[...],"upstream":NAME}
 * (already started), or NULL with err set.  Posted jobs (o->admin) are
 * held to max_job_images and max_job_platforms; replication's are bounded
 * by its own caps.
 */
static struct pf_job *
pf_job_new(const struct config *cfg, const struct sync_pf_params *pp,
    char *err, size_t errlen)
{
	struct pf_job			*j;
	const struct config_upstream	*fixed = NULL;
	size_t				 i;

	if (pf_host == NULL) {
		snprintf(err, errlen, "prefetch has no listener to talk to");
		return NULL;
	}
	/* An upstream named: images are repository:tag on it (replication's
	 * source, whatever its name looks like). */
	if (pp->upstream != NULL &&
	    (fixed = config_upstream_find(cfg, pp->upstream)) == NULL) {
		snprintf(err, errlen, "upstream: no such [upstream] section");
		return NULL;
	}
	j = xcalloc(1, sizeof(*j));
	j->magic = PF_JOB_MAGIC;
	TAILQ_INIT(&j->queue);
	j->check_ev = evtimer_new(pf_base, pf_job_check_cb, j);
	j->settle_ev = evtimer_new(pf_base, pf_job_settle_cb, j);
	j->probe_ev = evtimer_new(pf_base, pf_landed_later_cb, j);
	TAILQ_INIT(&j->probes);
	TAILQ_INIT(&j->probes_later);
	TAILQ_INIT(&j->probes_flight);
	j->seen = json_object();
	if (pf_job_images(j, cfg, pp->images, pp->nimages, fixed,
	    pp->admin ? (size_t)cfg->max_job_images : SIZE_MAX, err,
	    errlen) != 0 || pf_job_platforms(j, pp->platforms, pp->nplatforms,
	    pp->admin ? (size_t)cfg->max_job_platforms : SIZE_MAX, err,
	    errlen) != 0) {
		pf_job_free(j);
		return NULL;
	}
	snprintf(j->id, sizeof(j->id), "p%lu-%lx", ++pf_seq,
	    (unsigned long)time(NULL));
	j->state = PF_RUNNING;
	j->admin = pp->admin;
	j->pin = pp->pin;
	j->revalidate = pp->revalidate;
	j->max_running = pp->concurrency > 0 ? pp->concurrency :
	    PF_RUNNING_DFLT;
	j->rate_floor = pp->rate_floor;
	/* Set before any task can finish (pf_job_check is deferred). */
	j->done_cb = pp->done;
	j->done_arg = pp->arg;
	j->created = time(NULL);
	LIST_INSERT_HEAD(&pf_jobs, j, entry);
	pf_njobs++;
	pf_jobs_trim();
	for (i = 0; i < j->nimages; i++)
		pf_task_add(j, i, PF_ROOT, j->images[i].reference);
	log_info("prefetch job %s: %zu images", j->id, j->nimages);
	pf_job_pump(j);
	return j;
}

static json_t *
pf_job_json(const struct pf_job *j)
{
	json_t	*imgs = json_array();
	size_t	 i;

	for (i = 0; i < j->nimages; i++) {
		const struct pf_image *im = &j->images[i];

		json_array_append_new(imgs, json_pack(
		    "{s:s,s:s,s:s,s:I,s:I,s:I,s:s?}", "image", im->ref,
		    "digest", im->digest, "state", pf_state_names[im->state],
		    "bytes", (json_int_t)im->bytes, "blobs",
		    (json_int_t)im->blobs, "blobs_done",
		    (json_int_t)im->blobs_done, "error",
		    im->error[0] != '\0' ? im->error : NULL));
	}
	return json_pack("{s:s,s:s,s:I,s:I,s:b,s:I,s:o}", "id", j->id,
	    "state", pf_state_names[j->state], "created",
	    (json_int_t)j->created, "throttled", (json_int_t)j->throttled,
	    "paused", j->paused, "rate_limit_pauses", (json_int_t)j->pauses,
	    "images", imgs);
}

/* Posted jobs still running (what max_jobs counts). */
static int
pf_admin_running(void)
{
	struct pf_job	*j;
	int		 n = 0;

	LIST_FOREACH(j, &pf_jobs, entry)
		n += j->admin && j->state == PF_RUNNING;
	return n;
}

static int	pf_params_from_json(const json_t *, const struct config *,
		    struct sync_pf_params *, char *, size_t);

/*
 * POST /api/v1/prefetch: 202 and the new job; 400 naming the bad field;
 * 429 with Retry-After while max_jobs posted jobs are running.
 */
static void
pf_route_post(struct evhttp_request *req, const struct config *cfg,
    int *status, json_t **out)
{
	struct evbuffer		*b = evhttp_request_get_input_buffer(req);
	struct sync_pf_params	 pp;
	struct pf_job		*j = NULL;
	json_t			*in;
	json_error_t		 jerr;
	char			 err[256];

	if (pf_admin_running() >= cfg->max_jobs) {
		log_warnx("prefetch: job refused: %d jobs are running "
		    "(max_jobs)", cfg->max_jobs);
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Retry-After", PF_BUSY_RETRY);
		*status = 429;
		*out = json_pack("{s:s}", "error", "max_jobs prefetch jobs are "
		    "running: try again later");
		return;
	}
	memset(&pp, 0, sizeof(pp));
	pp.admin = 1;
	in = json_loadb((const char *)evbuffer_pullup(b, -1),
	    evbuffer_get_length(b), 0, &jerr);
	if (pf_params_from_json(in, cfg, &pp, err, sizeof(err)) == 0)
		j = pf_job_new(cfg, &pp, err, sizeof(err));
	/* The strings the parameters point into. */
	free((void *)(uintptr_t)pp.images);
	free((void *)(uintptr_t)pp.platforms);
	json_decref(in);
	if (j == NULL) {
		*status = 400;
		*out = json_pack("{s:s}", "error", err);
		return;
	}
	*status = 202;
	*out = pf_job_json(j);
}

/*
 * A posted job's parameters from its JSON ({"images":[...], "platforms":
 * [...], "pin": ..., "upstream": NAME}): the strings point into in; the
 * two arrays are malloc'd (the caller frees them).  0, or -1 and err
 * naming the field.
 */
static int
pf_params_from_json(const json_t *in, const struct config *cfg,
    struct sync_pf_params *pp, char *err, size_t errlen)
{
	const json_t	*imgs, *plats, *e, *up;
	const char	**v;
	size_t		 i;

	(void)cfg;
	if (!json_is_object(in)) {
		snprintf(err, errlen, "body is not a JSON object");
		return -1;
	}
	if (pf_pin_parse(json_object_get(in, "pin"), &pp->pin, err,
	    errlen) != 0)
		return -1;
	if ((up = json_object_get(in, "upstream")) != NULL &&
	    !json_is_string(up)) {
		snprintf(err, errlen, "upstream: no such [upstream] section");
		return -1;
	}
	pp->upstream = json_string_value(up);
	imgs = json_object_get(in, "images");
	if (!json_is_array(imgs)) {
		snprintf(err, errlen, "images: want a list of 1 to %d image "
		    "references (max_job_images)", cfg->max_job_images);
		return -1;
	}
	v = xcalloc(json_array_size(imgs) + 1, sizeof(*v));
	json_array_foreach(imgs, i, e)
		v[i] = json_string_value(e);	/* NULL: not a string */
	pp->images = v;
	pp->nimages = json_array_size(imgs);
	plats = json_object_get(in, "platforms");
	if (plats == NULL || json_is_null(plats))
		return 0;
	if (!json_is_array(plats)) {
		snprintf(err, errlen, "platforms: want a list of at most %d "
		    "os/arch[/variant] (max_job_platforms)",
		    cfg->max_job_platforms);
		return -1;
	}
	v = xcalloc(json_array_size(plats) + 1, sizeof(*v));
	json_array_foreach(plats, i, e)
		v[i] = json_string_value(e);
	pp->platforms = v;
	pp->nplatforms = json_array_size(plats);
	return 0;
}

/* The admin API's prefetch routes; 0 if path was one of them. */
int
sync_pf_route(struct evhttp_request *req, const char *path,
    const struct config *cfg, int *status, json_t **out)
{
	struct pf_job	*j;
	json_t		*list;

	if (strcmp(path, "/api/v1/prefetch") == 0) {
		if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
			*status = 405;
			*out = json_pack("{s:s}", "error", "POST a job");
			return 0;
		}
		pf_route_post(req, cfg, status, out);
		return 0;
	}
	if (strcmp(path, "/api/v1/jobs") == 0) {
		list = json_array();
		LIST_FOREACH(j, &pf_jobs, entry)
			json_array_append_new(list, pf_job_json(j));
		*status = 200;
		*out = json_pack("{s:o}", "jobs", list);
		return 0;
	}
	if (strncmp(path, "/api/v1/jobs/", 13) == 0) {
		LIST_FOREACH(j, &pf_jobs, entry)
			if (strcmp(j->id, path + 13) == 0)
				break;
		if (j == NULL) {
			*status = 404;
			*out = json_pack("{s:s}", "error", "no such job");
		} else {
			*status = 200;
			*out = pf_job_json(j);
		}
		return 0;
	}
	return -1;
}

/*
 * Jobs for replication: images as strings, a callback when finished.
 * Not counted against max_jobs (one run per policy bounds them) nor held
 * to max_job_images (the policy's max_tags is).
 */
struct pf_job *
sync_pf_start(const struct config *cfg, const struct sync_pf_params *pp,
    char *err, size_t errlen)
{
	AN(pp->pin >= -1 && pp->pin <= PF_PIN_MAX);
	return pf_job_new(cfg, pp, err, errlen);
}

void
sync_pf_stats(const struct pf_job *j, unsigned *ok, unsigned *failed,
    uint64_t *bytes, char *err, size_t errlen)
{
	size_t	i;

	*ok = *failed = 0;
	*bytes = 0;
	err[0] = '\0';
	for (i = 0; i < j->nimages; i++) {
		*bytes += j->images[i].bytes;
		if (j->images[i].state == PF_DONE)
			(*ok)++;
		else {
			(*failed)++;
			if (err[0] == '\0')
				snprintf(err, errlen, "%s: %s",
				    j->images[i].ref, j->images[i].error);
		}
	}
}

/*
 * Buffered GETs to the mirror's own listener (tags lists, catalog pages),
 * queued: at most PF_GETS_MAX in flight, however many repositories a
 * catalog glob yields.
 */
#define PF_GETS_MAX	8

struct pf_get {
	sync_self_f		 cb;
	void			*arg;
	char			*path;
	TAILQ_ENTRY(pf_get)	 entry;
};
static TAILQ_HEAD(, pf_get)	 pf_gets = TAILQ_HEAD_INITIALIZER(pf_gets);
static unsigned			 pf_gets_running;

static void	pf_gets_pump(void);

static void
pf_get_free(struct pf_get *g)
{
	free(g->path);
	free(g);
}

static void
pf_get_done_cb(struct evhttp_request *req, void *arg)
{
	struct pf_get	*g = arg;

	pf_gets_running--;
	g->cb(req != NULL ? evhttp_request_get_response_code(req) : 0,
	    req != NULL ? evhttp_request_get_input_buffer(req) : NULL,
	    req != NULL ? evhttp_find_header(evhttp_request_get_input_headers(
	    req), "Link") : NULL, g->arg);
	pf_get_free(g);
	pf_gets_pump();
}

static void
pf_get_fail_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct pf_get	*g = arg;

	(void)fd;
	(void)ev;
	g->cb(0, NULL, NULL, g->arg);
	pf_get_free(g);
}

static void
pf_gets_pump(void)
{
	struct timeval		 now = { 0, 0 };
	struct evhttp_request	*req;
	struct evhttp_connection *c;
	struct pf_get		*g;

	while (pf_gets_running < PF_GETS_MAX &&
	    (g = TAILQ_FIRST(&pf_gets)) != NULL) {
		TAILQ_REMOVE(&pf_gets, g, entry);
		if ((c = pf_conn()) != NULL) {
			req = evhttp_request_new(pf_get_done_cb, g);
			pf_req_headers(req, "regmirror-replication");
			if (evhttp_make_request(c, req, EVHTTP_REQ_GET,
			    g->path) == 0) {
				pf_gets_running++;
				continue;
			}
		}
		/* Called back as a failure, never from inside the caller. */
		event_base_once(pf_base, -1, EV_TIMEOUT, pf_get_fail_cb, g,
		    &now);
	}
}

int
sync_self_get(const char *path, sync_self_f cb, void *arg)
{
	struct pf_get	*g;

	if (pf_host == NULL)
		return -1;
	g = xcalloc(1, sizeof(*g));
	g->cb = cb;
	g->arg = arg;
	g->path = xstrdup(path);
	TAILQ_INSERT_TAIL(&pf_gets, g, entry);
	pf_gets_pump();
	return 0;
}

size_t
sync_pf_nimages(const struct pf_job *j)
{
	return j->nimages;
}

int
sync_pf_image(const struct pf_job *j, size_t i, const char **repo,
    const char **reference, const char **digest)
{
	*repo = j->images[i].repo;
	*reference = j->images[i].reference;
	*digest = j->images[i].digest;
	return j->images[i].state == PF_DONE;
}

/* 1 while the job waits for the upstream's rate limit to recover. */
int
sync_pf_paused(const struct pf_job *j)
{
	return j->paused;
}
