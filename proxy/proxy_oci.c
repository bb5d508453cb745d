/*
 * proxy_oci.c — the OCI distribution-spec pull API: parse and check the
 * request, route it to an upstream, and serve manifests and tag lists
 * (blobs are proxy_blob.c's).
 *
 * Routing (proxy_route.c), first match wins: the "ns" query parameter
 * (containerd); the first path component after /v2/ when it names an
 * upstream or alias (podman/CRI-O mirrors with a path); a prefix before
 * /v2 (Docker mirror URLs with a path); otherwise the default upstream.  A
 * request naming no configured upstream is refused: the mirror is never
 * an open proxy.
 *
 * Manifests by tag: a tag validated within tag_ttl is served with no
 * upstream request.  A stale tag is revalidated with HEAD; the manifest is
 * fetched only when its digest is not cached.  If revalidation fails, the
 * last known manifest is served with a Warning header.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>

#include "cache/cache.h"
#include "common/hash.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/log.h"
#include "common/obj.h"
#include "common/rbuf.h"
#include "common/ref.h"
#include "common/text.h"
#include "common/xmalloc.h"
#include "proxy/proxy_int.h"
#include "sync/sync.h"
#include "upstream/upstream.h"

uint64_t	proxy_req_next_id(void);

/* Every manifest type we can store and serve, most specific first. */
static const char proxy_manifest_accept[] =
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5";

/*
 * Is ctype a manifest media type (parameters ignored)?  Anything else an
 * upstream answers a manifest request with — an HTML login page, a
 * redirect target's JSON, a blob — is neither stored nor served.
 */
int
proxy_manifest_type_ok(const char *ctype)
{
	static const char *const types[] = {
		"application/vnd.oci.image.manifest.v1+json",
		"application/vnd.oci.image.index.v1+json",
		"application/vnd.docker.distribution.manifest.v2+json",
		"application/vnd.docker.distribution.manifest.list.v2+json",
		"application/vnd.docker.distribution.manifest.v1+prettyjws",
		"application/vnd.docker.distribution.manifest.v1+json",
		"application/vnd.oci.artifact.manifest.v1+json",
	};
	size_t	n, i;

	if (ctype == NULL || strlen(ctype) > 255 || !text_printable(ctype))
		return 0;
	n = strcspn(ctype, ";");
	while (n > 0 && (ctype[n - 1] == ' ' || ctype[n - 1] == '\t'))
		n--;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strlen(types[i]) == n &&
		    strncasecmp(ctype, types[i], n) == 0)
			return 1;
	return 0;
}

/* A manifest fetch in progress. */
struct proxy_mfetch {
	struct proxy_req	*pr;
	int			 by_tag;
	int			 revalidate;	/* HEAD of a stale tag */
	char			 old_digest[DIGEST_STR_MAX];
	int64_t			 old_validated;
	char			*up_digest;	/* Docker-Content-Digest */
	char			*ctype;
};

static void	proxy_manifest_fetch(struct proxy_req *, int revalidate,
		    const char *old_digest, int64_t old_validated);

#define PROXY_TAG_NEGATIVE	CACHE_TAG_NEGATIVE

/* A manifest reply, from a shared buffer (never a copy per client). */
static void
proxy_manifest_send(struct proxy_req *pr, const char *digest,
    const char *ctype, struct rbuf *rb, const char *warning)
{
	struct evkeyvalq	*out;
	char			 etag[DIGEST_STR_MAX + 2];
	size_t			 n;

	out = evhttp_request_get_output_headers(pr->req);
	evhttp_add_header(out, "Docker-Content-Digest", digest);
	etag[0] = '"';
	n = text_copy(etag + 1, sizeof(etag) - 2, digest);
	etag[n + 1] = '"';
	etag[n + 2] = '\0';
	evhttp_add_header(out, "Etag", etag);
	if (warning != NULL)
		evhttp_add_header(out, "Warning", warning);
	proxy_reply_rbuf(pr, 200, ctype, rb);
}

/* Serve digest from the cache; 0 if served, 1 if not cached. */
static int
proxy_manifest_serve_cached(struct proxy_req *pr, const char *digest,
    const char *warning)
{
	struct cache_mem_hold	h;

	if (cache_manifest_hold(digest, upstream_name(pr->up), &h) != 0)
		return 1;
	proxy_manifest_send(pr, digest, h.ctype, h.body, warning);
	cache_mem_release(&h);
	return 0;
}

/*
 * The tag moved to a digest we already hold (e.g. a rollback): point the
 * tag at it and serve it, without a GET.  0 if served.
 */
static int
proxy_tag_move_cached(struct proxy_req *pr, const char *digest)
{
	struct digest		d;
	struct cache_mem_hold	h;

	if (digest_parse(digest, &d) != 0 ||
	    cache_manifest_hold(d.str, upstream_name(pr->up), &h) != 0)
		return 1;
	if (cache_manifest_put(upstream_name(pr->up), pr->repo, pr->ref,
	    d.str, h.ctype, h.body->data, h.body->len) != 0)
		log_warnx("r%llu: could not move tag %s to %s",
		    (unsigned long long)pr->id, pr->ref, d.str);
	pr->src = "revalidated";
	proxy_manifest_send(pr, d.str, h.ctype, h.body, NULL);
	cache_mem_release(&h);
	return 0;
}

/* Upstream says the tag does not exist: remember it for negative_ttl. */
static void
proxy_tag_gone(struct proxy_req *pr)
{
	if (upstream_negative_ttl(pr->up) > 0)
		cache_tag_validated(upstream_name(pr->up), pr->repo, pr->ref,
		    PROXY_TAG_NEGATIVE);
	proxy_error(pr, 404, "MANIFEST_UNKNOWN",
	    "manifest %s not found at upstream %s", pr->ref,
	    upstream_name(pr->up));
}

static void
proxy_mfetch_free(struct proxy_mfetch *mf)
{
	free(mf->up_digest);
	free(mf->ctype);
	free(mf);
}

static int
proxy_manifest_head_cb(struct upstream_req *ur, int status,
    struct evkeyvalq *h, int64_t clen, void *arg)
{
	struct proxy_mfetch	*mf = arg;
	const char		*v;

	(void)ur;
	(void)status;
	(void)clen;
	if ((v = evhttp_find_header(h, "Docker-Content-Digest")) != NULL)
		mf->up_digest = xstrdup(v);
	if ((v = evhttp_find_header(h, "Content-Type")) != NULL)
		mf->ctype = xstrdup(v);
	return 0;
}

/* A tag's HEAD came back: the cached manifest is still it, or the tag
 * moved (to one we hold, or not), is gone, or the upstream failed. */
static void
proxy_manifest_revalidated(struct proxy_mfetch *mf, struct upstream_req *ur,
    const char *err, int status)
{
	struct proxy_req	*pr = mf->pr;
	const char		*upname = upstream_name(pr->up);

	if (err == NULL && status == 200 && mf->up_digest != NULL &&
	    strcmp(mf->up_digest, mf->old_digest) == 0) {
		cache_tag_validated(upname, pr->repo, pr->ref, mf->old_digest);
		pr->src = "revalidated";
		if (proxy_manifest_serve_cached(pr, mf->old_digest, NULL) == 0)
			return;
	}
	if (err == NULL && status == 200 && mf->up_digest != NULL &&
	    proxy_tag_move_cached(pr, mf->up_digest) == 0)
		return;
	if (err == NULL && status == 404) {
		proxy_tag_gone(pr);
		return;
	}
	if (err == NULL && status == 200) {
		/* Moved: ask for the manifest itself. */
		proxy_manifest_fetch(pr, 0, NULL, 0);
		return;
	}
	/*
	 * Upstream trouble: the last known tag beats an outage, for
	 * stale_if_error past its tag_ttl.
	 */
	if ((int64_t)time(NULL) - mf->old_validated <
	    proxy_tag_ttl(pr) + upstream_stale_if_error(pr->up)) {
		log_warnx("r%llu: revalidating %s:%s at %s failed (%s), "
		    "serving the cached %s", (unsigned long long)pr->id,
		    pr->repo, pr->ref, upname, err != NULL ? err :
		    "bad status", mf->old_digest);
		pr->src = "stale";
		if (proxy_manifest_serve_cached(pr, mf->old_digest,
		    "110 - \"Response is Stale\"") == 0)
			return;
	}
	proxy_error_upstream(pr, status, err, upstream_req_errmsg(ur),
	    upstream_req_retry_after(ur));
}

/*
 * A manifest body from upstream, checked before it is cached: its digest
 * (the one asked for, or its Docker-Content-Digest), its Content-Type,
 * and a JSON object.  0 with *got its digest, or -1 (replied).
 */
static int
proxy_manifest_check(struct proxy_mfetch *mf, const unsigned char *data,
    size_t len, struct digest *got)
{
	struct proxy_req	*pr = mf->pr;
	const char		*upname = upstream_name(pr->up);
	const char		*ctype = mf->ctype;
	struct digest		 hdr;
	size_t			 k = 0;

	if (pr->ref_is_digest) {
		digest_buf(pr->digest.algo, data, len, got);
		if (strcmp(got->str, pr->digest.str) != 0) {
			proxy_error(pr, 502, "UNAVAILABLE", "upstream %s sent "
			    "a manifest whose digest %s is not the requested "
			    "%s", upname, got->str, pr->digest.str);
			return -1;
		}
	} else if (mf->up_digest != NULL &&
	    digest_parse(mf->up_digest, &hdr) == 0) {
		digest_buf(hdr.algo, data, len, got);
		if (strcmp(got->str, hdr.str) != 0) {
			proxy_error(pr, 502, "UNAVAILABLE", "upstream %s sent "
			    "a manifest that does not match its "
			    "Docker-Content-Digest %s", upname, hdr.str);
			return -1;
		}
	} else
		digest_buf(DIGEST_SHA256, data, len, got);
	if (!proxy_manifest_type_ok(ctype)) {
		proxy_error(pr, 502, "UNAVAILABLE",
		    "upstream %s answered a manifest request with %s%s%s, not "
		    "a manifest", upname, ctype != NULL ? "Content-Type '" :
		    "no Content-Type", ctype != NULL ? ctype : "",
		    ctype != NULL ? "'" : "");
		return -1;
	}
	while (k < len && (data[k] == ' ' || data[k] == '\t' ||
	    data[k] == '\r' || data[k] == '\n'))
		k++;
	if (k == len || data[k] != '{') {
		proxy_error(pr, 502, "UNAVAILABLE", "upstream %s sent a "
		    "manifest that is not a JSON object", upname);
		return -1;
	}
	return 0;
}

/* A manifest GET's 200: checked, cached, sent from one shared buffer. */
static void
proxy_manifest_take(struct proxy_mfetch *mf, struct evbuffer *body)
{
	struct proxy_req	*pr = mf->pr;
	const unsigned char	*data = evbuffer_pullup(body, -1);
	size_t			 len = evbuffer_get_length(body);
	struct digest		 got;
	struct rbuf		*rb;

	if (proxy_manifest_check(mf, data, len, &got) != 0)
		return;
	if (cache_manifest_put(upstream_name(pr->up), pr->repo,
	    pr->ref_is_digest ? NULL : pr->ref, got.str, mf->ctype, data,
	    len) != 0)
		log_warnx("r%llu: could not cache manifest %s",
		    (unsigned long long)pr->id, got.str);
	pr->src = "miss";
	rb = rbuf_new(data, len);
	cache_mem_put(got.str, rbuf_ref(rb), mf->ctype, NULL, NULL);
	proxy_manifest_send(pr, got.str, mf->ctype, rb, NULL);
	rbuf_unref(rb);
}

static void
proxy_manifest_done_cb(struct upstream_req *ur, const char *err,
    struct evbuffer *body, void *arg)
{
	struct proxy_mfetch	*mf = arg;
	struct proxy_req	*pr = mf->pr;
	int			 status = upstream_req_status(ur);

	if (mf->revalidate)
		proxy_manifest_revalidated(mf, ur, err, status);
	else if (err == NULL && status == 404 && !pr->ref_is_digest)
		proxy_tag_gone(pr);
	else if (err != NULL || status != 200)
		proxy_error_upstream(pr, status, err, upstream_req_errmsg(ur),
		    upstream_req_retry_after(ur));
	else
		proxy_manifest_take(mf, body);
	proxy_mfetch_free(mf);
}

static void
proxy_manifest_fetch(struct proxy_req *pr, int revalidate,
    const char *old_digest, int64_t old_validated)
{
	struct proxy_mfetch	*mf;
	char			*path;

	mf = xcalloc(1, sizeof(*mf));
	mf->pr = pr;
	mf->revalidate = revalidate;
	mf->old_validated = old_validated;
	if (old_digest != NULL)
		snprintf(mf->old_digest, sizeof(mf->old_digest), "%s",
		    old_digest);
	xasprintf(&path, "/v2/%s/manifests/%s", pr->repo, pr->ref);
	upstream_req_start(pr->w->up, pr->up,
	    revalidate ? EVHTTP_REQ_HEAD : EVHTTP_REQ_GET, path, pr->repo,
	    proxy_manifest_accept, PROXY_MANIFEST_MAX,
	    proxy_manifest_head_cb, NULL, proxy_manifest_done_cb, mf);
	free(path);
}

/*
 * Manifest single-flight, per worker thread: requests for a tag or digest
 * whose fetch (or revalidation) is already under way on this worker wait
 * for it and get the same reply, so a rollout's burst of pulls costs one
 * upstream request per worker, not one per client.
 *
 * The leader's reply (status, body, and the headers that describe it) is
 * captured as it is sent (its on_reply hook) and replayed to each waiter,
 * from the same buffer.
 */
struct proxy_mflight {
	char			*key;		/* upstream \n repo \n ref */
	struct proxy_req	**waiters;
	size_t			 nwaiters;
	LIST_ENTRY(proxy_mflight) entry;
};
/* Per worker, hashed by key (a flood of distinct names must not make
 * each lookup a walk of them all). */
#define PROXY_MFLIGHT_BUCKETS	512
LIST_HEAD(proxy_mflight_list, proxy_mflight);
static __thread struct proxy_mflight_list proxy_mflights[PROXY_MFLIGHT_BUCKETS];

static struct proxy_mflight_list *
proxy_mflight_bucket(const char *key)
{
	return &proxy_mflights[hash_str(key) % PROXY_MFLIGHT_BUCKETS];
}

static const char *const proxy_mflight_headers[] = {
	"Docker-Content-Digest", "Etag", "Warning", "Retry-After", "Link",
	"OCI-Filters-Applied",
};

/*
 * A list's reply: a _catalog is cut, for each client, to what its rules
 * let it see (proxy_access.c); everything else goes as it is.
 */
static void
proxy_list_reply(struct proxy_req *pr, int status, const char *ctype,
    struct rbuf *rb)
{
	struct rbuf	*mine;

	if (status != 200 || pr->kind != PROXY_KIND_CATALOG) {
		proxy_reply_rbuf(pr, status, ctype, rb);
		return;
	}
	/*
	 * A cut list pages no further: the upstream's Link names the next
	 * repository ("last=..."), which may be one the client may not see.
	 */
	if (proxy_access_cuts(pr))
		evhttp_remove_header(evhttp_request_get_output_headers(
		    pr->req), "Link");
	if ((mine = proxy_access_catalog(pr, rb)) == NULL) {
		proxy_error(pr, 502, "UNKNOWN", "upstream %s sent a catalog "
		    "that is not one", upstream_name(pr->up));
		return;
	}
	proxy_reply_rbuf(pr, status, ctype, mine);
	rbuf_unref(mine);
}

/* The leader's reply (its on_reply hook): the same to every waiter. */
static void
proxy_mflight_land(struct proxy_req *pr, int status, const char *ctype,
    struct rbuf *rb)
{
	struct proxy_mflight	*fl = pr->mflight;
	struct evkeyvalq	*in, *out;
	const char		*v;
	size_t			 i, k;

	pr->mflight = NULL;
	LIST_REMOVE(fl, entry);
	in = evhttp_request_get_output_headers(pr->req);
	for (i = 0; i < fl->nwaiters; i++) {
		struct proxy_req *w = fl->waiters[i];

		out = evhttp_request_get_output_headers(w->req);
		for (k = 0; k < sizeof(proxy_mflight_headers) /
		    sizeof(proxy_mflight_headers[0]); k++)
			if ((v = evhttp_find_header(in,
			    proxy_mflight_headers[k])) != NULL)
				evhttp_add_header(out,
				    proxy_mflight_headers[k], v);
		w->src = "coalesced";
		proxy_list_reply(w, status, ctype, rb);
	}
	free(fl->waiters);
	free(fl->key);
	free(fl);
}

/*
 * Join the flight for key (which this takes), or lead a new one: 1 if pr
 * now waits for the leader's reply, 0 if pr leads (pr->mflight set).
 */
static int
proxy_flight_join(struct proxy_req *pr, char *key)
{
	struct proxy_mflight	*fl;

	LIST_FOREACH(fl, proxy_mflight_bucket(key), entry)
		if (strcmp(fl->key, key) == 0)
			break;
	if (fl != NULL) {
		free(key);
		fl->waiters = xreallocarray(fl->waiters, fl->nwaiters + 1,
		    sizeof(*fl->waiters));
		fl->waiters[fl->nwaiters++] = pr;
		return 1;
	}
	fl = xcalloc(1, sizeof(*fl));
	fl->key = key;
	LIST_INSERT_HEAD(proxy_mflight_bucket(key), fl, entry);
	pr->mflight = fl;
	pr->on_reply = proxy_mflight_land;
	return 0;
}

/* Fetch for pr, or wait for the same fetch already under way. */
static void
proxy_manifest_fetch_shared(struct proxy_req *pr, int revalidate,
    const char *old_digest, int64_t old_validated)
{
	char	*key;

	xasprintf(&key, "M\n%s\n%s\n%s", upstream_name(pr->up), pr->repo,
	    pr->ref);
	if (proxy_flight_join(pr, key) == 0)
		proxy_manifest_fetch(pr, revalidate, old_digest, old_validated);
}

/*
 * "Cache-Control: no-cache" from one of our own jobs (replication):
 * revalidate.  From anyone else it is ignored: a client must not be able
 * to make the mirror spend the upstream's quota (Docker Hub counts
 * requests) at will.
 */
static int
proxy_no_cache(const struct proxy_req *pr)
{
	const char *cc = evhttp_find_header(
	    evhttp_request_get_input_headers(pr->req), "Cache-Control");

	return cc != NULL && strstr(cc, "no-cache") != NULL &&
	    proxy_req_is_job(pr);
}

/*
 * Content cached (or streaming) for another repository or upstream: HEAD
 * it in this one, and go on (then) only if upstream says this repository
 * holds it; the answer links the digest to this repository only.  The
 * one rule for blobs and manifests by digest: no cross-repository read.
 */
struct proxy_lcheck {
	struct proxy_req	*pr;
	void			(*then)(struct proxy_req *);
};

static void
proxy_lcheck_done_cb(struct upstream_req *ur, const char *err,
    struct evbuffer *body, void *arg)
{
	struct proxy_lcheck	*lc = arg;
	struct proxy_req	*pr = lc->pr;
	int			 status = upstream_req_status(ur);

	(void)body;
	if (err == NULL && status == 200) {
		cache_blob_link(upstream_name(pr->up), pr->repo,
		    pr->digest.str);
		pr->linked = 1;
		lc->then(pr);
	} else
		proxy_error_upstream(pr, status, err, upstream_req_errmsg(ur),
		    upstream_req_retry_after(ur));
	free(lc);
}

void
proxy_link_check(struct proxy_req *pr, void (*then)(struct proxy_req *))
{
	struct proxy_lcheck	*lc;
	char			*path;
	int			 blob = pr->kind == PROXY_KIND_BLOB;

	if (!proxy_limit_allow(pr))
		return;
	lc = xcalloc(1, sizeof(*lc));
	lc->pr = pr;
	lc->then = then;
	xasprintf(&path, "/v2/%s/%s/%s", pr->repo, blob ? "blobs" :
	    "manifests", pr->digest.str);
	upstream_req_start(pr->w->up, pr->up, EVHTTP_REQ_HEAD, path, pr->repo,
	    blob ? NULL : proxy_manifest_accept, blob ? 0 : PROXY_MANIFEST_MAX,
	    NULL, NULL, proxy_lcheck_done_cb, lc);
	free(path);
}

static void	proxy_manifest_get(struct proxy_req *);

/* Is digest cached and linked to the request's repository?  0 yes,
 * 1 cached but not linked, 2 not cached (for this upstream). */
static int
proxy_manifest_cached(struct proxy_req *pr)
{
	if (!cache_manifest_has(pr->digest.str, upstream_name(pr->up)))
		return 2;
	if (pr->linked || cache_blob_linked(upstream_name(pr->up), pr->repo,
	    pr->digest.str) == 0)
		return 0;
	return 1;
}

static void
proxy_manifest_get(struct proxy_req *pr)
{
	const char	*upname = upstream_name(pr->up);
	char		 digest[DIGEST_STR_MAX];
	int64_t		 validated;

	if (pr->ref_is_digest) {
		switch (proxy_manifest_cached(pr)) {
		case 0:
			pr->src = "hit";
			if (proxy_manifest_serve_cached(pr, pr->digest.str,
			    NULL) == 0)
				return;
			pr->src = NULL;
			break;
		case 1:
			proxy_link_check(pr, proxy_manifest_get);
			return;
		}
		if (proxy_limit_allow(pr))
			proxy_manifest_fetch_shared(pr, 0, NULL, 0);
		return;
	}
	if (cache_tag_get(upname, pr->repo, pr->ref, digest,
	    &validated) != 0) {
		if (proxy_limit_allow(pr))
			proxy_manifest_fetch_shared(pr, 0, NULL, 0);
		return;
	}
	if (strcmp(digest, PROXY_TAG_NEGATIVE) == 0) {
		if ((int64_t)time(NULL) - validated <
		    upstream_negative_ttl(pr->up)) {
			pr->src = "negative";
			proxy_error(pr, 404, "MANIFEST_UNKNOWN",
			    "manifest %s not found at upstream %s (cached "
			    "answer)", pr->ref, upname);
			return;
		}
		if (proxy_limit_allow(pr))
			proxy_manifest_fetch_shared(pr, 0, NULL, 0);
		return;
	}
	if ((int64_t)time(NULL) - validated < proxy_tag_ttl(pr) &&
	    !proxy_no_cache(pr)) {
		pr->src = "hit";
		if (proxy_manifest_serve_cached(pr, digest, NULL) == 0)
			return;
		pr->src = NULL;
		proxy_manifest_fetch_shared(pr, 0, NULL, 0);
		return;
	}
	proxy_manifest_fetch_shared(pr, 1, digest, validated);
}

/*
 * tags/list, _catalog and referrers: passed through, bounded, with Link,
 * Content-Type (and OCI-Filters-Applied for referrers); kept in memory
 * for [cache] list_ttl (see proxy_tags_get).
 */
struct proxy_tfetch {
	struct proxy_req	*pr;
	char			*key;		/* in the memory cache */
	char			*ctype;
	char			*link;
	char			*filters;
};

static int
proxy_tags_head_cb(struct upstream_req *ur, int status, struct evkeyvalq *h,
    int64_t clen, void *arg)
{
	struct proxy_tfetch	*tf = arg;
	const char		*v;

	(void)ur;
	(void)status;
	(void)clen;
	if ((v = evhttp_find_header(h, "Content-Type")) != NULL)
		tf->ctype = xstrdup(v);
	if ((v = evhttp_find_header(h, "Link")) != NULL)
		tf->link = xstrdup(v);
	if ((v = evhttp_find_header(h, "OCI-Filters-Applied")) != NULL)
		tf->filters = xstrdup(v);
	return 0;
}

static void
proxy_tags_done_cb(struct upstream_req *ur, const char *err,
    struct evbuffer *body, void *arg)
{
	struct proxy_tfetch	*tf = arg;
	struct proxy_req	*pr = tf->pr;
	struct evkeyvalq	*out;
	int			 status = upstream_req_status(ur);
	const char		*ctype, *link, *filters;
	struct rbuf		*rb;
	proxy_reply_hook	 hook;

	out = evhttp_request_get_output_headers(pr->req);
	if (err != NULL || status != 200) {
		if (status == 404 && pr->kind == PROXY_KIND_REFERRERS)
			/* No referrers API there: clients fall back to the
			 * tag schema (sha256-<hex> tags), as they should. */
			proxy_error(pr, 404, "NAME_UNKNOWN",
			    "upstream %s does not serve referrers for %s",
			    upstream_name(pr->up), pr->ref);
		else if (status == 404)
			proxy_error(pr, 404, "NAME_UNKNOWN",
			    "repository %s not known to upstream %s", pr->repo,
			    upstream_name(pr->up));
		else
			proxy_error_upstream(pr, status, err,
			    upstream_req_errmsg(ur),
			    upstream_req_retry_after(ur));
		goto done;
	}
	/*
	 * Our types, not the upstream's: a list served as text/html from
	 * the mirror's origin would be the upstream's page on our name.
	 * Pagination links only as paths on this API (distribution sends
	 * "</v2/...>; rel=\"next\""): never a link to another host.
	 */
	link = tf->link != NULL && strlen(tf->link) <= 1024 &&
	    strncmp(tf->link, "</v2/", 5) == 0 && text_printable(tf->link) ?
	    tf->link : NULL;
	filters = tf->filters != NULL && strlen(tf->filters) <= 1024 &&
	    text_printable(tf->filters) ? tf->filters : NULL;
	ctype = pr->kind == PROXY_KIND_REFERRERS ?
	    "application/vnd.oci.image.index.v1+json" : "application/json";
	if (link != NULL)
		evhttp_add_header(out, "Link", link);
	if (filters != NULL)
		evhttp_add_header(out, "OCI-Filters-Applied", filters);
	pr->src = "pass";
	rb = rbuf_new(evbuffer_pullup(body, -1), evbuffer_get_length(body));
	if (pr->w->cfg->list_ttl > 0)
		cache_mem_put(tf->key, rbuf_ref(rb), ctype, link, filters);
	/* Waiters get the whole list, each to be cut by its own rules. */
	if ((hook = pr->on_reply) != NULL) {
		pr->on_reply = NULL;
		hook(pr, 200, ctype, rb);
	}
	proxy_list_reply(pr, 200, ctype, rb);
	rbuf_unref(rb);
done:
	free(tf->key);
	free(tf->ctype);
	free(tf->link);
	free(tf->filters);
	free(tf);
}

/*
 * tags/list, _catalog and referrers: answered from memory for list_ttl
 * (their answers change with every push, but a rollout's burst must not
 * become one upstream request per host), single-flighted per worker,
 * else passed through.  The mirror's own jobs always ask upstream (they
 * refresh the copy): replication must see a tag pushed a second ago.
 */
static void
proxy_tags_get(struct proxy_req *pr)
{
	struct proxy_tfetch	*tf;
	struct cache_mem_hold	 h;
	struct evkeyvalq	*out;
	char			*path, *key;

	out = evhttp_request_get_output_headers(pr->req);
	if (pr->kind == PROXY_KIND_CATALOG)
		xasprintf(&path, "/v2/_catalog%s%s",
		    pr->query != NULL ? "?" : "",
		    pr->query != NULL ? pr->query : "");
	else if (pr->kind == PROXY_KIND_REFERRERS)
		xasprintf(&path, "/v2/%s/referrers/%s%s%s", pr->repo,
		    pr->digest.str, pr->query != NULL ? "?" : "",
		    pr->query != NULL ? pr->query : "");
	else
		xasprintf(&path, "/v2/%s/tags/list%s%s", pr->repo,
		    pr->query != NULL ? "?" : "",
		    pr->query != NULL ? pr->query : "");
	xasprintf(&key, "L\n%s\n%s", upstream_name(pr->up), path);
	if (!proxy_req_is_job(pr) && pr->w->cfg->list_ttl > 0 &&
	    cache_mem_get(key, pr->w->cfg->list_ttl * 1000, &h) == 0) {
		if (h.link != NULL)
			evhttp_add_header(out, "Link", h.link);
		if (h.filters != NULL)
			evhttp_add_header(out, "OCI-Filters-Applied",
			    h.filters);
		pr->src = "hit";
		proxy_list_reply(pr, 200, h.ctype, h.body);
		cache_mem_release(&h);
		free(key);
		free(path);
		return;
	}
	if (!proxy_limit_allow(pr)) {
		free(key);
		free(path);
		return;
	}
	if (!proxy_req_is_job(pr) && proxy_flight_join(pr, xstrdup(key))) {
		free(key);
		free(path);
		return;
	}
	tf = xcalloc(1, sizeof(*tf));
	tf->pr = pr;
	tf->key = key;
	upstream_req_start(pr->w->up, pr->up, EVHTTP_REQ_GET, path, pr->repo,
	    pr->kind == PROXY_KIND_REFERRERS ?
	    "application/vnd.oci.image.index.v1+json" : "application/json",
	    PROXY_TAGS_MAX, proxy_tags_head_cb, NULL, proxy_tags_done_cb, tf);
	free(path);
}

/* Routing's view of the configured upstreams (proxy_route.c): by name
 * or alias, or the default for name NULL. */
static struct upstream *
proxy_oci_route_find(const char *name, void *arg)
{
	(void)arg;
	return name != NULL ? upstream_find(name) : upstream_default();
}

static int
proxy_oci_route_docker_hub(const struct upstream *up, void *arg)
{
	(void)arg;
	return upstream_is_docker_hub(up);
}

static const struct proxy_route_cfg proxy_oci_routes = {
	proxy_oci_route_find, proxy_oci_route_docker_hub, NULL
};

int
proxy_oci_route(const char *uri, struct proxy_route *out,
    struct proxy_route_err *err)
{
	return proxy_route_parse(uri, &proxy_oci_routes, out, err);
}

/* Move what routing learnt into pr, refused or not (the access log and
 * the counters name the upstream and kind of a refused request too). */
static void
proxy_oci_route_take(struct proxy_req *pr, struct proxy_route *rt)
{
	if (rt->ns != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(pr->req),
		    "OCI-Namespace", rt->ns);
	pr->up = rt->up;
	pr->kind = rt->kind;
	pr->repo = rt->repo;
	pr->ref = rt->ref;
	pr->query = rt->query;
	pr->ref_is_digest = rt->ref_is_digest;
	pr->digest = rt->digest;
	rt->repo = rt->ref = rt->query = NULL;
	proxy_route_fini(rt);
}

static void	proxy_oci_request(struct evhttp_request *,
		    struct proxy_worker *, int);
static void	proxy_oci_serve(struct proxy_req *);

void
proxy_oci_request_cb(struct evhttp_request *req, void *arg)
{
	proxy_oci_request(req, arg, 0);
}

void
proxy_oci_request_tls_cb(struct evhttp_request *req, void *arg)
{
	proxy_oci_request(req, arg, 1);
}

/* A new request object for req: its id, clock, printable URI, peer. */
static struct proxy_req *
proxy_req_new(struct evhttp_request *req, struct proxy_worker *w, int tls)
{
	struct proxy_req	*pr;
	struct evhttp_connection *evcon;
	char			*host;
	ev_uint16_t		 port;

	pr = xcalloc(1, sizeof(*pr));
	pr->magic = PROXY_REQ_MAGIC;
	pr->id = proxy_req_next_id();
	pr->w = w;
	pr->req = req;
	pr->tls = tls;
	pr->method = evhttp_request_get_command(req);
	clock_gettime(CLOCK_MONOTONIC, &pr->start);
	pr->uri = xstrndup(evhttp_request_get_uri(req), 1024);
	for (char *c = pr->uri; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == '"' || *c == 0x7f)
			*c = '?';
	if ((evcon = evhttp_request_get_connection(req)) != NULL) {
		evhttp_connection_get_peer(evcon, &host, &port);
		text_copy(pr->peer, sizeof(pr->peer),
		    host != NULL ? host : "-");
	}
	return pr;
}

/*
 * What every request must pass before routing: the head within
 * max_header_size and PROXY_HEADERS_MAX fields (evhttp's own cap is
 * looser, proxy_server.c, so that most get an OCI error from here), and
 * a pull method.  0, or -1 (replied).
 */
static int
proxy_req_admit(struct proxy_req *pr)
{
	struct evkeyval	*kv;
	size_t		 hsize, nhdr = 0;

	hsize = strlen(evhttp_request_get_uri(pr->req));
	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(pr->req), next) {
		hsize += strlen(kv->key) + strlen(kv->value) + 4;
		nhdr++;
	}
	if (nhdr > PROXY_HEADERS_MAX) {
		proxy_error(pr, 431, "UNSUPPORTED",
		    "too many request header fields (%zu; the limit is %d)",
		    nhdr, PROXY_HEADERS_MAX);
		return -1;
	}
	if (hsize > pr->w->cfg->max_header_size) {
		proxy_error(pr, 431, "UNSUPPORTED",
		    "request header fields too large (%zu bytes; the limit is "
		    "%zu)", hsize, pr->w->cfg->max_header_size);
		return -1;
	}
	if (pr->method != EVHTTP_REQ_GET && pr->method != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(pr->req),
		    "Allow", "GET, HEAD");
		proxy_error(pr, 405, "UNSUPPORTED",
		    "this mirror is read-only: pull API only");
		return -1;
	}
	return 0;
}

static void
proxy_oci_request(struct evhttp_request *req, struct proxy_worker *w, int tls)
{
	struct proxy_req	*pr;
	struct proxy_route	 rt;
	struct proxy_route_err	 rerr;
	int			 rc;

	proxy_conn_request(w, req);
	pr = proxy_req_new(req, w, tls);
	if (proxy_req_admit(pr) != 0)
		return;
	if (proxy_token_path(evhttp_request_get_uri(req))) {
		proxy_token_serve(pr);
		return;
	}
	rc = proxy_route_parse(evhttp_request_get_uri(req), &proxy_oci_routes,
	    &rt, &rerr);
	proxy_oci_route_take(pr, &rt);
	if (rc != 0) {
		proxy_error(pr, rerr.status, rerr.code, "%s", rerr.msg);
		return;
	}
	proxy_access_check(pr, proxy_oci_serve);
}

/* A routed request the rules allow. */
static void
proxy_oci_serve(struct proxy_req *pr)
{
	switch (pr->kind) {
	case PROXY_KIND_BASE:
		pr->src = "-";
		proxy_reply_buf(pr, 200, "application/json", "{}", 2);
		break;
	case PROXY_KIND_MANIFEST:
		proxy_manifest_get(pr);
		break;
	case PROXY_KIND_BLOB:
		if (!pr->ref_is_digest) {
			proxy_error(pr, 400, "DIGEST_INVALID",
			    "invalid or unsupported digest");
			break;
		}
		proxy_blob_get(pr);
		break;
	case PROXY_KIND_TAGS:
	case PROXY_KIND_CATALOG:
		proxy_tags_get(pr);
		break;
	case PROXY_KIND_REFERRERS:
		if (!pr->ref_is_digest) {
			proxy_error(pr, 400, "DIGEST_INVALID",
			    "referrers are asked for by digest");
			break;
		}
		proxy_tags_get(pr);
		break;
	}
}
