/*
 * sync_push.c — push one cached image to a registry (replication with a
 * destination): the manifest named by digest, every manifest and blob
 * below it that the cache holds, then the tag.
 *
 * The order is the registry's: blobs before the manifest that names
 * them, an index's child manifests before the index, the tag last, so a
 * reader of the destination never sees a tag whose content is missing.
 *
 * One request at a time, each a step:
 *
 *	TAG_HEAD	HEAD /v2/REPO/manifests/TAG
 *	BLOB_HEAD	HEAD /v2/REPO/blobs/D
 *	BLOB_MOUNT	POST /v2/REPO/blobs/uploads/?mount=D&from=OTHER, when
 *			this process pushed D to repository OTHER there
 *	BLOB_POST	POST /v2/REPO/blobs/uploads/ (opens a session)
 *	BLOB_PUT	PUT SESSION?digest=D with the whole blob (up to
 *			chunk_size: monolithic)
 *	BLOB_PATCH	PATCH SESSION with the next chunk (Content-Range)
 *	BLOB_CLOSE	PUT SESSION?digest=D, empty: every chunk was sent
 *	MANIFEST_PUT	PUT /v2/REPO/manifests/REF: by digest (an index's
 *			children), by tag (the root, planned last)
 *
 * and its answer decides the next (push_step_to() holds every change of
 * step to this table; ITEM is the next planned blob's BLOB_HEAD or
 * manifest's MANIFEST_PUT):
 *
 *	step		answer			next
 *	NEW		-			TAG_HEAD
 *	TAG_HEAD	200 naming D		DONE (unchanged)
 *	TAG_HEAD	200 naming another, 404	ITEM
 *	BLOB_HEAD	200 (there already)	ITEM
 *	BLOB_HEAD	404, pushed elsewhere	BLOB_MOUNT
 *	BLOB_HEAD	404			BLOB_POST
 *	BLOB_MOUNT	201 (mounted)		ITEM
 *	BLOB_MOUNT	202 (a session instead)	BLOB_PUT | BLOB_PATCH
 *	BLOB_MOUNT	any other (refused)	BLOB_POST
 *	BLOB_POST	202			BLOB_PUT | BLOB_PATCH
 *	BLOB_PATCH	202			BLOB_PATCH | BLOB_CLOSE
 *	BLOB_PUT	201			ITEM
 *	BLOB_CLOSE	201			ITEM
 *	MANIFEST_PUT	201			ITEM | DONE (after the root)
 *	any but NEW	an error, other answers	FAILED
 *
 * Bodies are sent from the cache's files, one chunk at a time: memory
 * does not grow with blob size.  Everything runs on one event loop.
 *
 * The cached manifests came from an upstream: every descriptor is checked
 * (cache_manifest_each) before its digest goes into a request line, and
 * one bad descriptor fails the push before anything is sent.  What the
 * destination answers (digests, error messages) is checked or made
 * printable before it is logged.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "cache/cache.h"
#include "common/digest.h"
#include "common/log.h"
#include "common/obj.h"
#include "common/ref.h"
#include "common/xmalloc.h"
#include "sync/sync.h"
#include "sync/sync_int.h"
#include "upstream/upstream.h"

#define PUSH_MOUNTS_MAX	4096	/* digests remembered for cross-repo mounts */

/*
 * The steps and, for each, the steps that may follow it: the table at the
 * top of this file, for push_step_to() to assert.
 */
#define PUSH_STEPS(X)							\
	X(NEW,		S(TAG_HEAD))					\
	X(TAG_HEAD,	S(DONE) | ITEM | S(FAILED))			\
	X(BLOB_HEAD,	ITEM | S(BLOB_MOUNT) | S(BLOB_POST) | S(FAILED)) \
	X(BLOB_MOUNT,	ITEM | S(BLOB_PUT) | S(BLOB_PATCH) |		\
			S(BLOB_POST) | S(FAILED))			\
	X(BLOB_POST,	S(BLOB_PUT) | S(BLOB_PATCH) | S(FAILED))	\
	X(BLOB_PATCH,	S(BLOB_PATCH) | S(BLOB_CLOSE) | S(FAILED))	\
	X(BLOB_PUT,	ITEM | S(FAILED))				\
	X(BLOB_CLOSE,	ITEM | S(FAILED))				\
	X(MANIFEST_PUT,	ITEM | S(DONE) | S(FAILED))			\
	X(DONE,		0)						\
	X(FAILED,	0)

enum push_step {
#define PUSH_STEP_ENUM(name, next)	PUSH_##name,
	PUSH_STEPS(PUSH_STEP_ENUM)
#undef PUSH_STEP_ENUM
	PUSH__NSTEPS
};

#define S(name)	(1u << PUSH_##name)
#define ITEM	(S(BLOB_HEAD) | S(MANIFEST_PUT))
static const unsigned push_step_next[PUSH__NSTEPS] = {
#define PUSH_STEP_NEXT(name, next)	[PUSH_##name] = (next),
	PUSH_STEPS(PUSH_STEP_NEXT)
#undef PUSH_STEP_NEXT
};
#undef ITEM
#undef S
_Static_assert(PUSH__NSTEPS <= 32, "push_step_next holds 32 steps");

struct push_item {
	int	 manifest;
	char	 digest[DIGEST_STR_MAX];
	char	*ref;		/* manifests: tag or digest to PUT as */
};

#define PUSH_MAGIC	0x70757368

struct push {
	unsigned		 magic;
	struct upstream_worker	*w;
	struct upstream		*u;
	char			*repo;
	char			*tag;
	char			 digest[DIGEST_STR_MAX];
	uint64_t		 chunk;
	struct push_item	*items;
	size_t			 nitems, cur, items_cap;
	json_t			*planned;	/* "b:" or "m:" + digest */
	enum push_step		 step;
	int			 fd;		/* blob being uploaded */
	uint64_t		 size, off, sending;
	char			*location;	/* upload session */
	char			*req_path;	/* the last request's */
	/* the last reply */
	int			 status;
	char			*r_location;
	char			*r_digest;
	struct push_stats	 st;
	push_done_f		 done;
	void			*arg;
	char			 err[512];
};

/* Which repository of a destination holds a digest this process pushed:
 * a later push to another repository mounts it instead of uploading. */
struct push_mount {
	char	*dest;
	char	*repo;
	char	 digest[DIGEST_STR_MAX];
};
static struct push_mount	 push_mounts[PUSH_MOUNTS_MAX];
static size_t			 push_mounts_next;

static void	push_next(struct push *);
static void	push_step_to(struct push *, enum push_step);

static const char *
push_mount_from(const struct push *p, const char *digest)
{
	size_t	i;

	for (i = 0; i < PUSH_MOUNTS_MAX; i++)
		if (push_mounts[i].repo != NULL &&
		    strcmp(push_mounts[i].digest, digest) == 0 &&
		    strcmp(push_mounts[i].dest, upstream_name(p->u)) == 0 &&
		    strcmp(push_mounts[i].repo, p->repo) != 0)
			return push_mounts[i].repo;
	return NULL;
}

static void
push_mount_note(const struct push *p, const char *digest)
{
	struct push_mount	*m = &push_mounts[push_mounts_next++ %
				    PUSH_MOUNTS_MAX];

	free(m->dest);
	free(m->repo);
	m->dest = xstrdup(upstream_name(p->u));
	m->repo = xstrdup(p->repo);
	snprintf(m->digest, sizeof(m->digest), "%s", digest);
}

static void
push_free(struct push *p)
{
	size_t	i;

	for (i = 0; i < p->nitems; i++)
		free(p->items[i].ref);
	free(p->items);
	json_decref(p->planned);
	if (p->fd >= 0)
		close(p->fd);
	free(p->location);
	free(p->req_path);
	free(p->r_location);
	free(p->r_digest);
	free(p->repo);
	free(p->tag);
	free(p);
}

static void
push_finish(struct push *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
push_finish(struct push *p, const char *fmt, ...)
{
	va_list	ap;

	push_step_to(p, fmt != NULL ? PUSH_FAILED : PUSH_DONE);
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(p->err, sizeof(p->err), fmt, ap);
		va_end(ap);
		log_warnx("push %s/%s:%s: %s", upstream_name(p->u), p->repo,
		    p->tag, p->err);
	} else
		log_info("push %s/%s:%s: %s (%u blobs uploaded, %u mounted, "
		    "%u already there, %" PRIu64 " bytes)", upstream_name(p->u),
		    p->repo, p->tag, p->st.unchanged ? "unchanged" : "pushed",
		    p->st.blobs_uploaded, p->st.blobs_mounted,
		    p->st.blobs_present, p->st.bytes);
	p->done(fmt != NULL ? p->err : NULL, &p->st, p->arg);
	push_free(p);
}

/* Plan a blob or manifest (a canonical digest) once. */
static void
push_add(struct push *p, int manifest, const char *digest, const char *ref)
{
	char	key[2 + DIGEST_STR_MAX];

	snprintf(key, sizeof(key), "%c:%s", manifest ? 'm' : 'b', digest);
	if (json_object_get(p->planned, key) != NULL)
		return;
	json_object_set_new(p->planned, key, json_true());
	if (p->nitems == p->items_cap) {
		p->items_cap = p->items_cap > 0 ? 2 * p->items_cap : 16;
		p->items = xreallocarray(p->items, p->items_cap,
		    sizeof(*p->items));
	}
	p->items[p->nitems].manifest = manifest;
	snprintf(p->items[p->nitems].digest, DIGEST_STR_MAX, "%s", digest);
	p->items[p->nitems].ref = ref != NULL ? xstrdup(ref) : NULL;
	p->nitems++;
}

static int
push_manifest_cached(const char *digest)
{
	unsigned char	*data;
	char		*mt;
	size_t		 len;

	if (cache_manifest_get(digest, NULL, &mt, &data, &len) != 0)
		return 0;
	free(mt);
	free(data);
	return 1;
}

static int	push_plan(struct push *, const char *, const char *, int);

struct push_walk {
	struct push	*p;
	int		 depth;
};

/* An index's cached children, each planned before the index; an image's
 * config and layers (foreign layers are not the registry's). */
static int
push_desc_cb(const struct cache_desc *d, void *arg)
{
	struct push_walk	*w = arg;

	switch (d->kind) {
	case CACHE_DESC_CHILD:
		/* Children the policy's platforms left out are not cached:
		 * the destination may refuse the index. */
		if (w->depth > 1 || !push_manifest_cached(d->digest))
			return 0;
		return push_plan(w->p, d->digest, NULL, w->depth + 1);
	case CACHE_DESC_CONFIG:
	case CACHE_DESC_LAYER:
		if (!d->foreign)
			push_add(w->p, 0, d->digest, NULL);
		return 0;
	}
	return 0;
}

/* Queue a manifest's blobs (or an index's cached children), then itself. */
static int
push_plan(struct push *p, const char *digest, const char *ref, int depth)
{
	struct push_walk	 w = { p, depth };
	char			*mt, why[256];
	unsigned char		*data;
	size_t			 len;
	int			 rc;

	if (cache_manifest_get(digest, NULL, &mt, &data, &len) != 0) {
		snprintf(p->err, sizeof(p->err), "manifest %s is not cached",
		    digest);
		return -1;
	}
	free(mt);
	rc = cache_manifest_each(data, len, NULL, push_desc_cb, &w, why,
	    sizeof(why));
	free(data);
	if (rc < 0 && p->err[0] == '\0')
		snprintf(p->err, sizeof(p->err), "manifest %s: %s", digest,
		    why);
	if (rc != 0)
		return -1;
	push_add(p, 1, digest, ref != NULL ? ref : digest);
	return 0;
}

static int
push_head_cb(struct upstream_req *ur, int status, struct evkeyvalq *h,
    int64_t cl, void *arg)
{
	struct push	*p = arg;
	const char	*v;

	CHECK_OBJ_NOTNULL(p, PUSH_MAGIC);
	(void)ur;
	(void)cl;
	p->status = status;
	free(p->r_location);
	free(p->r_digest);
	p->r_location = (v = evhttp_find_header(h, "Location")) != NULL ?
	    xstrdup(v) : NULL;
	p->r_digest = (v = evhttp_find_header(h, "Docker-Content-Digest")) !=
	    NULL ? xstrdup(v) : NULL;
	return 0;
}

/* A string from the destination, fit for the report and the log: at
 * most outlen - 1 bytes, anything but printable ASCII as '?'. */
static const char *
push_printable(const char *in, char *out, size_t outlen)
{
	size_t	i;

	if (in == NULL)
		return NULL;
	for (i = 0; in[i] != '\0' && i + 1 < outlen; i++)
		out[i] = in[i] >= 0x20 && in[i] <= 0x7e ? in[i] : '?';
	out[i] = '\0';
	return out;
}

/* "STATUS (CODE: message)" from an OCI error body, for the report. */
static void
push_fail_reply(struct push *p, const char *what, const char *err,
    struct upstream_req *ur, struct evbuffer *body)
{
	json_t		*root, *e;
	json_error_t	 jerr;
	const char	*code = NULL, *msg = NULL;
	char		 cbuf[64], mbuf[200];

	if (err != NULL) {
		push_finish(p, "%s: %s", what, upstream_req_errmsg(ur)[0] !=
		    '\0' ? upstream_req_errmsg(ur) : err);
		return;
	}
	root = body != NULL ? json_loadb((const char *)evbuffer_pullup(body,
	    -1), evbuffer_get_length(body), 0, &jerr) : NULL;
	e = json_array_get(json_object_get(root, "errors"), 0);
	code = push_printable(json_string_value(json_object_get(e, "code")),
	    cbuf, sizeof(cbuf));
	msg = push_printable(json_string_value(json_object_get(e, "message")),
	    mbuf, sizeof(mbuf));
	if (code == NULL && p->status == 401)	/* HEAD: no body */
		code = "UNAUTHORIZED", msg = "credentials missing or refused";
	if (code == NULL && p->status == 403)
		code = "DENIED", msg = "no push access";
	push_finish(p, "%s: %s answered %d%s%s%s%s%s", what,
	    upstream_name(p->u), p->status, code != NULL ? " " : "",
	    code != NULL ? code : "", msg != NULL ? " (" : "",
	    msg != NULL ? msg : "", msg != NULL ? ")" : "");
	json_decref(root);
}

static void	push_done_cb(struct upstream_req *, const char *,
		    struct evbuffer *, void *);

/* Every change of step: one the table at the top does not allow after
 * the current step is a bug. */
static void
push_step_to(struct push *p, enum push_step next)
{
	AN(push_step_next[p->step] & (1u << next));
	p->step = next;
}

/* Every request, HEADs too, with the pull,push scope: one token serves
 * the whole push (and a registry may refuse pull on a new repository). */
static void
push_req(struct push *p, enum push_step step, enum evhttp_cmd_type m,
    const char *path, const struct upstream_body *body, const char *accept)
{
	push_step_to(p, step);
	p->status = 0;
	free(p->req_path);
	p->req_path = xstrdup(path);
	(void)upstream_req_start_push(p->w, p->u, m, path, p->repo, accept,
	    body, push_head_cb, push_done_cb, p);
}

/* The upload session's Location, as a path on the destination. */
static char *
push_location(struct push *p)
{
	char	*out, *q;

	/* Relative to the request's path without its query. */
	if ((q = strchr(p->req_path, '?')) != NULL)
		*q = '\0';
	if (upstream_location_path(p->u, p->r_location, p->req_path, &out)
	    != 0)
		return NULL;
	return out;
}

/* The next PATCH chunk, or the PUT ?digest= that ends the upload: with
 * the whole blob (BLOB_PUT) or, after the chunks, empty (BLOB_CLOSE). */
static void
push_blob_send(struct push *p)
{
	struct push_item	*it = &p->items[p->cur];
	struct upstream_body	 b;
	char			*path, range[64], *ed;
	enum push_step		 step;

	memset(&b, 0, sizeof(b));
	b.fd = p->fd;
	b.content_type = "application/octet-stream";
	if (p->size <= p->chunk || p->off == p->size) {
		if (p->off == 0) {
			step = PUSH_BLOB_PUT;
			b.offset = 0;
			b.len = (size_t)p->size;
			p->sending = p->size;
		} else {
			step = PUSH_BLOB_CLOSE;
			b.fd = -1;
		}
		ed = evhttp_encode_uri(it->digest);
		xasprintf(&path, "%s%sdigest=%s", p->location,
		    strchr(p->location, '?') != NULL ? "&" : "?", ed);
		free(ed);
		push_req(p, step, EVHTTP_REQ_PUT, path, &b, NULL);
		free(path);
		return;
	}
	b.offset = p->off;
	b.len = (size_t)(p->size - p->off < p->chunk ? p->size - p->off :
	    p->chunk);
	p->sending = b.len;
	snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, p->off,
	    p->off + b.len - 1);
	b.content_range = range;
	push_req(p, PUSH_BLOB_PATCH, EVHTTP_REQ_PATCH, p->location, &b, NULL);
}

static int
push_upload_begin(struct push *p)
{
	struct push_item	*it = &p->items[p->cur];

	free(p->location);
	if ((p->location = push_location(p)) == NULL) {
		push_finish(p, "blob %s: the upload's Location '%.200s' is "
		    "missing, malformed or on another host", it->digest,
		    p->r_location != NULL ? p->r_location : "");
		return -1;
	}
	if (p->fd < 0 &&
	    cache_blob_open(it->digest, NULL, &p->fd, &p->size) != 0) {
		push_finish(p, "blob %s is not cached", it->digest);
		return -1;
	}
	p->off = 0;
	push_blob_send(p);
	return 0;
}

static void
push_blob_done(struct push *p)
{
	push_mount_note(p, p->items[p->cur].digest);
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->cur++;
	push_next(p);
}

/* A new upload session for the current blob. */
static void
push_blob_post(struct push *p)
{
	char	*path;

	xasprintf(&path, "/v2/%s/blobs/uploads/", p->repo);
	push_req(p, PUSH_BLOB_POST, EVHTTP_REQ_POST, path, NULL, NULL);
	free(path);
}

/*
 * The answers, one handler per step (the table at the top).  Each either
 * starts the next request or finishes the push; p may be gone when it
 * returns.
 */

static void
push_tag_head_done(struct push *p, struct upstream_req *ur, const char *err,
    struct evbuffer *body)
{
	if (err == NULL && p->status == 200 && p->r_digest != NULL &&
	    strcmp(p->r_digest, p->digest) == 0) {
		p->st.unchanged = 1;
		push_finish(p, NULL);
		return;
	}
	if (err != NULL || (p->status != 200 && p->status != 404)) {
		push_fail_reply(p, "HEAD of the tag", err, ur, body);
		return;
	}
	p->cur = 0;
	push_next(p);
}

static void
push_blob_head_done(struct push *p, struct upstream_req *ur, const char *err,
    struct evbuffer *body)
{
	struct push_item	*it = &p->items[p->cur];
	char			*path, *ed, what[200];
	const char		*from;

	if (err == NULL && p->status == 200) {
		p->st.blobs_present++;
		p->cur++;
		push_next(p);
		return;
	}
	if (err != NULL || p->status != 404) {
		snprintf(what, sizeof(what), "HEAD of blob %s", it->digest);
		push_fail_reply(p, what, err, ur, body);
		return;
	}
	if ((from = push_mount_from(p, it->digest)) == NULL) {
		push_blob_post(p);
		return;
	}
	ed = evhttp_encode_uri(it->digest);
	xasprintf(&path, "/v2/%s/blobs/uploads/?mount=%s&from=%s", p->repo,
	    ed, from);
	free(ed);
	push_req(p, PUSH_BLOB_MOUNT, EVHTTP_REQ_POST, path, NULL, NULL);
	free(path);
}

static void
push_blob_mount_done(struct push *p, const char *err)
{
	if (err == NULL && p->status == 201) {
		p->st.blobs_mounted++;
		push_blob_done(p);
		return;
	}
	if (err == NULL && p->status == 202) {
		/* The registry did not mount: upload to the session it
		 * opened instead. */
		(void)push_upload_begin(p);
		return;
	}
	/* Refused (no access to the other repository, say): upload it. */
	log_info("push %s/%s: mounting %s failed (%d): uploading it",
	    upstream_name(p->u), p->repo, p->items[p->cur].digest, p->status);
	push_blob_post(p);
}

static void
push_blob_post_done(struct push *p, struct upstream_req *ur, const char *err,
    struct evbuffer *body)
{
	char	what[200];

	if (err == NULL && p->status == 202) {
		(void)push_upload_begin(p);
		return;
	}
	snprintf(what, sizeof(what), "starting the upload of blob %s",
	    p->items[p->cur].digest);
	push_fail_reply(p, what, err, ur, body);
}

static void
push_blob_patch_done(struct push *p, struct upstream_req *ur,
    const char *err, struct evbuffer *body)
{
	char	*loc, what[200];

	if (err == NULL && p->status == 202 &&
	    (loc = push_location(p)) != NULL) {
		free(p->location);
		p->location = loc;
		p->off += p->sending;
		p->st.bytes += p->sending;
		push_blob_send(p);
		return;
	}
	snprintf(what, sizeof(what), "PATCH of blob %s at %" PRIu64,
	    p->items[p->cur].digest, p->off);
	push_fail_reply(p, what, err, ur, body);
}

/* BLOB_PUT and BLOB_CLOSE: the PATCHes counted their bytes already. */
static void
push_blob_put_done(struct push *p, struct upstream_req *ur, const char *err,
    struct evbuffer *body)
{
	char	what[200];

	if (err == NULL && p->status == 201) {
		if (p->step == PUSH_BLOB_PUT)
			p->st.bytes += p->sending;
		p->st.blobs_uploaded++;
		push_blob_done(p);
		return;
	}
	snprintf(what, sizeof(what), "PUT of blob %s",
	    p->items[p->cur].digest);
	push_fail_reply(p, what, err, ur, body);
}

static void
push_manifest_put_done(struct push *p, struct upstream_req *ur,
    const char *err, struct evbuffer *body)
{
	struct push_item	*it = &p->items[p->cur];
	struct digest		 got;
	char			 what[200];

	if (err != NULL || p->status != 201) {
		snprintf(what, sizeof(what), "PUT of manifest %s as %s",
		    it->digest, it->ref);
		push_fail_reply(p, what, err, ur, body);
		return;
	}
	if (p->r_digest != NULL && strcmp(p->r_digest, it->digest) != 0) {
		push_finish(p, "PUT of manifest %s: the registry stored it as "
		    "%s", it->digest, digest_parse(p->r_digest, &got) == 0 ?
		    got.str : "an invalid digest");
		return;
	}
	p->st.manifests++;
	p->cur++;
	push_next(p);
}

static void
push_done_cb(struct upstream_req *ur, const char *err, struct evbuffer *body,
    void *arg)
{
	struct push	*p = arg;

	CHECK_OBJ_NOTNULL(p, PUSH_MAGIC);
	if (err == NULL)
		p->status = upstream_req_status(ur);
	switch (p->step) {
	case PUSH_TAG_HEAD:
		push_tag_head_done(p, ur, err, body);
		return;
	case PUSH_BLOB_HEAD:
		push_blob_head_done(p, ur, err, body);
		return;
	case PUSH_BLOB_MOUNT:
		push_blob_mount_done(p, err);
		return;
	case PUSH_BLOB_POST:
		push_blob_post_done(p, ur, err, body);
		return;
	case PUSH_BLOB_PATCH:
		push_blob_patch_done(p, ur, err, body);
		return;
	case PUSH_BLOB_PUT:
	case PUSH_BLOB_CLOSE:
		push_blob_put_done(p, ur, err, body);
		return;
	case PUSH_MANIFEST_PUT:
		push_manifest_put_done(p, ur, err, body);
		return;
	case PUSH_NEW:
	case PUSH_DONE:
	case PUSH_FAILED:
	case PUSH__NSTEPS:
		break;
	}
	WRONG("push_done_cb: no request of this push in flight");
}

static void
push_next(struct push *p)
{
	struct push_item	*it;
	struct upstream_body	 b;
	unsigned char		*data;
	char			*mt, *path;
	size_t			 len;

	if (p->cur == p->nitems) {
		push_finish(p, NULL);
		return;
	}
	it = &p->items[p->cur];
	if (!it->manifest) {
		xasprintf(&path, "/v2/%s/blobs/%s", p->repo, it->digest);
		push_req(p, PUSH_BLOB_HEAD, EVHTTP_REQ_HEAD, path, NULL, NULL);
		free(path);
		return;
	}
	if (cache_manifest_get(it->digest, NULL, &mt, &data, &len) != 0) {
		push_finish(p, "manifest %s is no longer cached", it->digest);
		return;
	}
	/* It becomes the PUT's Content-Type. */
	if (!ref_media_type_valid(mt)) {
		free(mt);
		free(data);
		push_finish(p, "manifest %s has no valid media type",
		    it->digest);
		return;
	}
	memset(&b, 0, sizeof(b));
	b.fd = -1;
	b.content_type = mt;
	b.data = data;
	b.len = len;
	xasprintf(&path, "/v2/%s/manifests/%s", p->repo, it->ref);
	push_req(p, PUSH_MANIFEST_PUT, EVHTTP_REQ_PUT, path, &b, NULL);
	free(path);
	free(mt);
	free(data);
}

int
sync_push_start(struct upstream_worker *w, struct upstream *u,
    const char *repo, const char *tag, const char *digest, uint64_t chunk,
    push_done_f done, void *arg, char *err, size_t errlen)
{
	struct push	*p;
	struct digest	 d;
	char		*path;

	/* Into request lines: a repository, a tag and a digest only. */
	if (!ref_name_valid(repo) || !ref_tag_valid(tag) ||
	    digest_parse(digest, &d) != 0) {
		snprintf(err, errlen, "not a repository, tag and digest");
		return -1;
	}
	p = xcalloc(1, sizeof(*p));
	p->magic = PUSH_MAGIC;
	p->planned = json_object();
	p->w = w;
	p->u = u;
	p->fd = -1;
	p->repo = xstrdup(repo);
	p->tag = xstrdup(tag);
	snprintf(p->digest, sizeof(p->digest), "%s", d.str);
	p->chunk = chunk;
	p->done = done;
	p->arg = arg;
	if (push_plan(p, d.str, tag, 0) != 0) {
		snprintf(err, errlen, "%s", p->err);
		push_free(p);
		return -1;
	}
	xasprintf(&path, "/v2/%s/manifests/%s", repo, tag);
	push_req(p, PUSH_TAG_HEAD, EVHTTP_REQ_HEAD, path, NULL,
	    sync_accept_images);
	free(path);
	return 0;
}
