/*
 * proxy_oci.c — the OCI distribution-spec pull API: parse and check the
 * request, route it to an upstream, and serve manifests and tag lists
 * (blobs are proxy_blob.c's).
 *
 * Routing, first match wins: the "ns" query parameter (containerd); the
 * first path component after /v2/ when it names an upstream or alias
 * (podman/CRI-O mirrors with a path); a prefix before /v2 (Docker mirror
 * URLs with a path); otherwise the default upstream.  A request naming no
 * configured upstream is refused: the mirror is never an open proxy.
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
		if (strlen(types[i]) == n && strncasecmp(ctype, types[i], n) == 0)
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
	char			*retry_after;
};

static void	proxy_manifest_fetch(struct proxy_req *, int revalidate,
		    const char *old_digest, int64_t old_validated);

#define PROXY_TAG_NEGATIVE	CACHE_TAG_NEGATIVE

/* A manifest reply, from a shared buffer (never a copy per client). */
static void
proxy_manifest_send(struct proxy_req *pr, const char *digest,
    const char *ctype, struct rbuf *rb, const char *warning)
{
	struct evkeyvalq	*out = evhttp_request_get_output_headers(pr->req);
	char			 etag[DIGEST_STR_MAX + 2];

	evhttp_add_header(out, "Docker-Content-Digest", digest);
	snprintf(etag, sizeof(etag), "\"%s\"", digest);
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
	free(mf->retry_after);
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
	if ((v = evhttp_find_header(h, "Retry-After")) != NULL)
		mf->retry_after = xstrdup(v);
	return 0;
}

static void
proxy_manifest_done_cb(struct upstream_req *ur, const char *err,
    struct evbuffer *body, void *arg)
{
	struct proxy_mfetch	*mf = arg;
	struct proxy_req	*pr = mf->pr;
	const char		*upname = upstream_name(pr->up);
	int			 status = upstream_req_status(ur);
	struct digest		 got, hdr;
	const unsigned char	*data;
	size_t			 len;
	char			*ctype;
	struct rbuf		*rb;

	if (mf->revalidate) {
		if (err == NULL && status == 200 && mf->up_digest != NULL &&
		    strcmp(mf->up_digest, mf->old_digest) == 0) {
			cache_tag_validated(upname, pr->repo, pr->ref,
			    mf->old_digest);
			pr->src = "revalidated";
			if (proxy_manifest_serve_cached(pr, mf->old_digest,
			    NULL) == 0)
				goto done;
		}
		if (err == NULL && status == 200 && mf->up_digest != NULL &&
		    proxy_tag_move_cached(pr, mf->up_digest) == 0)
			goto done;
		if (err == NULL && status == 404) {
			proxy_tag_gone(pr);
			goto done;
		}
		if (err == NULL && status == 200) {
			/* Moved: ask for the manifest itself. */
			proxy_manifest_fetch(pr, 0, NULL, 0);
			goto done;
		}
		/*
		 * Upstream trouble: the last known tag beats an outage, for
		 * stale_if_error past its tag_ttl.
		 */
		if ((int64_t)time(NULL) - mf->old_validated <
		    proxy_tag_ttl(pr) + upstream_stale_if_error(pr->up)) {
			log_warnx("r%llu: revalidating %s:%s at %s failed "
			    "(%s), serving the cached %s",
			    (unsigned long long)pr->id, pr->repo, pr->ref,
			    upname, err != NULL ? err : "bad status",
			    mf->old_digest);
			pr->src = "stale";
			if (proxy_manifest_serve_cached(pr, mf->old_digest,
			    "110 - \"Response is Stale\"") == 0)
				goto done;
		}
		proxy_error_upstream(pr, status, err, upstream_req_errmsg(ur),
		    mf->retry_after);
		goto done;
	}

	if (err == NULL && status == 404 && !pr->ref_is_digest) {
		proxy_tag_gone(pr);
		goto done;
	}

	if (err != NULL || status != 200) {
		proxy_error_upstream(pr, status, err, upstream_req_errmsg(ur),
		    mf->retry_after);
		goto done;
	}
	data = evbuffer_pullup(body, -1);
	len = evbuffer_get_length(body);
	if (pr->ref_is_digest) {
		digest_buf(pr->digest.algo, data, len, &got);
		if (strcmp(got.str, pr->digest.str) != 0) {
			proxy_error(pr, 502, "UNAVAILABLE",
			    "upstream %s sent a manifest whose digest %s is "
			    "not the requested %s", upname, got.str,
			    pr->digest.str);
			goto done;
		}
	} else if (mf->up_digest != NULL &&
	    digest_parse(mf->up_digest, &hdr) == 0) {
		digest_buf(hdr.algo, data, len, &got);
		if (strcmp(got.str, hdr.str) != 0) {
			proxy_error(pr, 502, "UNAVAILABLE",
			    "upstream %s sent a manifest that does not match "
			    "its Docker-Content-Digest %s", upname, hdr.str);
			goto done;
		}
	} else
		digest_buf(DIGEST_SHA256, data, len, &got);
	ctype = mf->ctype;
	if (!proxy_manifest_type_ok(ctype)) {
		proxy_error(pr, 502, "UNAVAILABLE",
		    "upstream %s answered a manifest request with %s%s%s, not "
		    "a manifest", upname, ctype != NULL ? "Content-Type '" :
		    "no Content-Type", ctype != NULL ? ctype : "",
		    ctype != NULL ? "'" : "");
		goto done;
	}
	{
		size_t k = 0;

		while (k < len && (data[k] == ' ' || data[k] == '\t' ||
		    data[k] == '\r' || data[k] == '\n'))
			k++;
		if (k == len || data[k] != '{') {
			proxy_error(pr, 502, "UNAVAILABLE",
			    "upstream %s sent a manifest that is not a JSON "
			    "object", upname);
			goto done;
		}
	}
	if (cache_manifest_put(upname, pr->repo,
	    pr->ref_is_digest ? NULL : pr->ref, got.str, ctype, data,
	    len) != 0)
		log_warnx("r%llu: could not cache manifest %s",
		    (unsigned long long)pr->id, got.str);
	pr->src = "miss";
	rb = rbuf_new(data, len);
	cache_mem_put(got.str, rbuf_ref(rb), ctype, NULL, NULL);
	proxy_manifest_send(pr, got.str, ctype, rb, NULL);
	rbuf_unref(rb);
done:
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
 * captured as it is sent (proxy_reply_rbuf) and replayed to each waiter,
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

void
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
		proxy_reply_rbuf(w, status, ctype, rb);
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
	char			*retry_after;
};

static int
proxy_lcheck_head_cb(struct upstream_req *ur, int status, struct evkeyvalq *h,
    int64_t clen, void *arg)
{
	struct proxy_lcheck	*lc = arg;
	const char		*v;

	(void)ur;
	(void)status;
	(void)clen;
	if ((v = evhttp_find_header(h, "Retry-After")) != NULL)
		lc->retry_after = xstrdup(v);
	return 0;
}

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
		    lc->retry_after);
	free(lc->retry_after);
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
	    proxy_lcheck_head_cb, NULL, proxy_lcheck_done_cb, lc);
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
	char			*retry_after;
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
	if ((v = evhttp_find_header(h, "Retry-After")) != NULL)
		tf->retry_after = xstrdup(v);
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
	struct evkeyvalq	*out = evhttp_request_get_output_headers(pr->req);
	int			 status = upstream_req_status(ur);
	const char		*ctype, *link, *filters;
	struct rbuf		*rb;

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
			    upstream_req_errmsg(ur), tf->retry_after);
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
	proxy_reply_rbuf(pr, 200, ctype, rb);
	rbuf_unref(rb);
done:
	free(tf->key);
	free(tf->ctype);
	free(tf->link);
	free(tf->retry_after);
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
	struct evkeyvalq	*out = evhttp_request_get_output_headers(pr->req);
	char			*path, *key;

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
		proxy_reply_rbuf(pr, 200, h.ctype, h.body);
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

/*
 * Keep only the query parameters that mean something upstream (n, last)
 * and pick out ns.  0 ok, -1 malformed.
 */
static unsigned
proxy_query_bit(const char *key)
{
	return key[0] == 'n' ? 1 : key[0] == 'l' ? 2 : 4;
}

/* n: a count; last: a tag or repository name; artifactType: a media
 * type. */
static int
proxy_query_value_ok(const char *key, const char *v)
{
	size_t	n = strlen(v);

	if (strcmp(key, "n") == 0)
		return n >= 1 && n <= 7 && strspn(v, "0123456789") == n;
	if (strcmp(key, "last") == 0)
		return n >= 1 && n <= 255 && (ref_tag_valid(v) ||
		    ref_name_valid(v));
	return ref_media_type_valid(v);
}

static int
proxy_parse_query(struct proxy_req *pr, const char *q, char **ns)
{
	struct evkeyvalq	 params;
	struct evkeyval		*kv;
	struct evbuffer		*b;
	char			*e;
	unsigned		 seen = 0;
	int			 rc = 0;

	*ns = NULL;
	TAILQ_INIT(&params);
	if (evhttp_parse_query_str(q, &params) != 0)
		return -1;
	b = evbuffer_new();
	TAILQ_FOREACH(kv, &params, next) {
		if (strcmp(kv->key, "ns") == 0) {
			free(*ns);
			*ns = xstrdup(kv->value);
		} else if (strcmp(kv->key, "n") == 0 ||
		    strcmp(kv->key, "last") == 0 ||
		    strcmp(kv->key, "artifactType") == 0) {
			/*
			 * Passed upstream and part of the list cache's key:
			 * what the spec allows, once each (a 12 KB "last"
			 * per request would grow the cache with junk).
			 */
			if (!proxy_query_value_ok(kv->key, kv->value) ||
			    (seen & proxy_query_bit(kv->key)) != 0) {
				rc = -1;
				break;
			}
			seen |= proxy_query_bit(kv->key);
			e = evhttp_encode_uri(kv->value);
			evbuffer_add_printf(b, "%s%s=%s",
			    evbuffer_get_length(b) > 0 ? "&" : "", kv->key, e);
			free(e);
		}
	}
	evhttp_clear_headers(&params);
	if (rc != 0) {
		evbuffer_free(b);
		return rc;
	}
	if (evbuffer_get_length(b) > 0) {
		evbuffer_add(b, "", 1);
		pr->query = xstrdup((const char *)evbuffer_pullup(b, -1));
	}
	evbuffer_free(b);
	return 0;
}

/*
 * Split "/[prefix/]v2/<name>/<kind>/<ref>" and route it.  Sends the error
 * reply itself and returns -1 when the request is refused.
 */
static int
proxy_route(struct proxy_req *pr, char *path, const char *ns)
{
	struct upstream	*up = NULL;
	char		*rest, *p, *name, *kind, *ref;

	if (strncmp(path, "/v2/", 4) == 0 || strcmp(path, "/v2") == 0)
		rest = path + 3;
	else if (path[0] == '/' && (p = strstr(path + 1, "/v2")) != NULL &&
	    (p[3] == '/' || p[3] == '\0') &&
	    memchr(path + 1, '/', (size_t)(p - path - 1)) == NULL) {
		*p = '\0';
		if ((up = upstream_find(path + 1)) == NULL) {
			proxy_error(pr, 404, "NAME_UNKNOWN",
			    "no upstream named '%s' is configured", path + 1);
			return -1;
		}
		rest = p + 3;
	} else {
		proxy_error(pr, 404, "NAME_UNKNOWN", "not a registry API path");
		return -1;
	}
	if (ns != NULL) {
		if ((up = upstream_find(ns)) == NULL) {
			proxy_error(pr, 404, "NAME_UNKNOWN",
			    "no upstream named '%s' is configured", ns);
			return -1;
		}
		evhttp_add_header(evhttp_request_get_output_headers(pr->req),
		    "OCI-Namespace", ns);
	}
	if (*rest == '\0' || strcmp(rest, "/") == 0) {
		pr->kind = PROXY_KIND_BASE;
		pr->up = up;
		return 0;
	}
	if (strcmp(rest, "/_catalog") == 0) {
		if (up == NULL && (up = upstream_default()) == NULL) {
			proxy_error(pr, 404, "NAME_UNKNOWN",
			    "request names no upstream and none is the "
			    "default");
			return -1;
		}
		pr->kind = PROXY_KIND_CATALOG;
		pr->up = up;
		pr->repo = xstrdup("_catalog");
		return 0;
	}
	rest++;		/* past '/' */

	/* <name>/tags/list or <name>/<kind>/<ref> */
	if ((p = strrchr(rest, '/')) == NULL)
		goto bad;
	ref = p + 1;
	*p = '\0';
	if (strcmp(ref, "list") == 0 && (p = strrchr(rest, '/')) != NULL &&
	    strcmp(p + 1, "tags") == 0) {
		*p = '\0';
		pr->kind = PROXY_KIND_TAGS;
		ref = NULL;
	} else {
		if ((p = strrchr(rest, '/')) == NULL)
			goto bad;
		kind = p + 1;
		*p = '\0';
		if (strcmp(kind, "manifests") == 0)
			pr->kind = PROXY_KIND_MANIFEST;
		else if (strcmp(kind, "blobs") == 0)
			pr->kind = PROXY_KIND_BLOB;
		else if (strcmp(kind, "referrers") == 0)
			pr->kind = PROXY_KIND_REFERRERS;
		else
			goto bad;
	}
	name = rest;

	/* podman/CRI-O: /v2/<upstream>/<name>/... */
	if (up == NULL && (p = strchr(name, '/')) != NULL) {
		*p = '\0';
		if (strchr(name, '.') != NULL || strchr(name, ':') != NULL ||
		    strcmp(name, "localhost") == 0)
			up = upstream_find(name);
		if (up != NULL)
			name = p + 1;
		else
			*p = '/';
	}
	if (up == NULL && (up = upstream_default()) == NULL) {
		proxy_error(pr, 404, "NAME_UNKNOWN",
		    "request names no upstream and none is the default");
		return -1;
	}
	pr->up = up;
	if (!ref_name_valid(name)) {
		proxy_error(pr, 400, "NAME_INVALID",
		    "invalid repository name");
		return -1;
	}
	if (upstream_is_docker_hub(up) && strchr(name, '/') == NULL)
		xasprintf(&pr->repo, "library/%s", name);
	else
		pr->repo = xstrdup(name);
	if (ref != NULL) {
		if (digest_parse(ref, &pr->digest) == 0)
			pr->ref_is_digest = 1;
		else if (pr->kind != PROXY_KIND_MANIFEST ||
		    !ref_tag_valid(ref)) {
			if (pr->kind == PROXY_KIND_MANIFEST &&
			    strchr(ref, ':') == NULL)
				proxy_error(pr, 400, "TAG_INVALID",
				    "invalid tag");
			else
				proxy_error(pr, 400, "DIGEST_INVALID",
				    "invalid or unsupported digest");
			return -1;
		}
		pr->ref = xstrdup(ref);
	}
	return 0;
bad:
	proxy_error(pr, 404, "NAME_UNKNOWN", "not a registry API path");
	return -1;
}

static void	proxy_oci_request(struct evhttp_request *, struct proxy_worker *,
		    int);

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

static void
proxy_oci_request(struct evhttp_request *req, struct proxy_worker *w, int tls)
{
	struct proxy_req	*pr;
	struct evhttp_connection *evcon;
	const char		*uri, *q;
	char			*path, *ns = NULL, *host;
	ev_uint16_t		 port;
	struct evkeyval		*kv;
	size_t			 hsize, nhdr;

	proxy_conn_request(w, req);
	pr = xcalloc(1, sizeof(*pr));
	pr->magic = PROXY_REQ_MAGIC;
	pr->id = proxy_req_next_id();
	pr->w = w;
	pr->req = req;
	pr->tls = tls;
	pr->method = evhttp_request_get_command(req);
	clock_gettime(CLOCK_MONOTONIC, &pr->start);
	uri = evhttp_request_get_uri(req);
	pr->uri = xstrndup(uri, 1024);
	for (char *c = pr->uri; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == '"' || *c == 0x7f)
			*c = '?';
	if ((evcon = evhttp_request_get_connection(req)) != NULL) {
		evhttp_connection_get_peer(evcon, &host, &port);
		snprintf(pr->peer, sizeof(pr->peer), "%s",
		    host != NULL ? host : "-");
	}

	/* evhttp's own cap is looser (proxy_server.c) so that most
	 * oversized requests get a proper OCI error from here. */
	hsize = strlen(uri);
	nhdr = 0;
	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next) {
		hsize += strlen(kv->key) + strlen(kv->value) + 4;
		nhdr++;
	}
	if (nhdr > PROXY_HEADERS_MAX) {
		proxy_error(pr, 431, "UNSUPPORTED",
		    "too many request header fields (%zu; the limit is %d)",
		    nhdr, PROXY_HEADERS_MAX);
		return;
	}
	if (hsize > w->cfg->max_header_size) {
		proxy_error(pr, 431, "UNSUPPORTED",
		    "request header fields too large (%zu bytes; the limit is "
		    "%zu)", hsize, w->cfg->max_header_size);
		return;
	}
	if (pr->method != EVHTTP_REQ_GET && pr->method != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, HEAD");
		proxy_error(pr, 405, "UNSUPPORTED",
		    "this mirror is read-only: pull API only");
		return;
	}
	/* The raw path is never decoded: names, tags and digests never need
	 * escapes, so a '%' fails their grammar below, and dot segments are
	 * refused here. */
	if (uri[0] != '/') {
		proxy_error(pr, 400, "NAME_INVALID", "absolute URI refused");
		return;
	}
	q = strchr(uri, '?');
	path = q != NULL ? xstrndup(uri, (size_t)(q - uri)) : xstrdup(uri);
	if (strlen(path) > 2048 ||
	    strstr(path, "/../") != NULL || strstr(path, "/./") != NULL ||
	    strstr(path, "//") != NULL ||
	    (strlen(path) >= 3 && strcmp(path + strlen(path) - 3, "/..") == 0)) {
		free(path);
		proxy_error(pr, 400, "NAME_INVALID", "malformed path");
		return;
	}
	if (q != NULL && proxy_parse_query(pr, q + 1, &ns) != 0) {
		free(path);
		proxy_error(pr, 400, "UNSUPPORTED", "malformed query");
		return;
	}
	if (proxy_route(pr, path, ns) != 0) {
		free(path);
		free(ns);
		return;
	}
	free(path);
	free(ns);

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
