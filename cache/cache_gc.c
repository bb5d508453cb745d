/*
 * cache_gc.c — the index's lifecycle: what nothing references any more,
 * or what expired, leaves the index (and, for "regmirror cache gc", blob
 * files leave the disk).  Run by "regmirror cache gc" and, without blobs,
 * by the cache manager every [cache] gc_interval.
 *
 * One pass, in this order:
 *
 *   1. tags: negative ones (upstream said 404) at least their upstream's
 *      negative_ttl old, positive ones not validated for tag_max_age.
 *      The tags that stay are the roots: what their manifests reach
 *      (child manifests of an index, configs, layers) is live;
 *   2. manifests: not live, reaching no pinned blob, mtime at or before
 *      the cutoff, now - grace (a manifest's mtime is when it was last
 *      stored or had a tag validated to it).  What a manifest that stays
 *      reaches is kept too;
 *   3. blobs (with opts->blobs): not live, not kept, not pinned, stored
 *      at or before the cutoff;
 *   4. links: (upstream, repo, digest) whose digest is neither a blob nor
 *      a manifest any more.
 *
 * The index phases walk their database in batches of CACHE_GC_BATCH
 * records (one read transaction each) and remove in one short write
 * transaction per batch, which checks every record again: a tag
 * validated, or a manifest stored or tagged, since the walk saw it is
 * kept.  Serving never waits for more than one batch.  Blobs (the CLI's
 * phase) go one at a time, index record first, then the file.
 *
 * A dry run removes nothing; it leaves the tags it would remove out of
 * the roots and treats what it would remove as gone when it looks at
 * links, so that it counts what a real pass would.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/config.h"
#include "common/log.h"
#include "common/obj.h"
#include "common/xmalloc.h"

/* Records per walk and per write transaction; a walk of that many adds
 * at most that many to a batch, which is sized for it. */
#define CACHE_GC_BATCH	256

/* A set of digests: appended to, then sorted once and searched. */
struct cache_gc_set {
	char		**s_v;
	size_t		  s_n;
};

struct cache_gc {
	const struct cache_gc_opts	*g_opts;
	struct cache_gc_result		*g_res;
	int64_t				 g_now;
	int64_t				 g_cutoff;
	struct cache_gc_set		 g_live;	/* reached from tags */
	struct cache_gc_set		 g_kept;	/* from manifests that
							   stay */
	struct cache_gc_set		 g_gone;	/* dry run: removed */
	/* The current batch of one phase. */
	struct cache_tag_ent		*g_tags;
	size_t				 g_ntags;
	struct cache_tag_ent		*g_negs;
	size_t				 g_nnegs;
	char				**g_digests;
	size_t				 g_ndigests;
	uint64_t			 g_digest_bytes;
	struct cache_link_ent		*g_links;
	size_t				 g_nlinks;
};

static void
cache_gc_set_add(struct cache_gc_set *s, const char *digest)
{
	s->s_v = xreallocarray(s->s_v, s->s_n + 1, sizeof(*s->s_v));
	s->s_v[s->s_n++] = xstrdup(digest);
}

static int
cache_gc_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort, and drop repeats (a layer shared by many images). */
static void
cache_gc_set_sort(struct cache_gc_set *s)
{
	size_t	i, n = 0;

	if (s->s_n == 0)
		return;
	qsort(s->s_v, s->s_n, sizeof(*s->s_v), cache_gc_strcmp);
	for (i = 0; i < s->s_n; i++) {
		if (n > 0 && strcmp(s->s_v[n - 1], s->s_v[i]) == 0)
			free(s->s_v[i]);
		else
			s->s_v[n++] = s->s_v[i];
	}
	s->s_n = n;
}

static int
cache_gc_set_has(const struct cache_gc_set *s, const char *digest)
{
	return s->s_n > 0 && bsearch(&digest, s->s_v, s->s_n,
	    sizeof(*s->s_v), cache_gc_strcmp) != NULL;
}

static void
cache_gc_set_free(struct cache_gc_set *s)
{
	size_t	i;

	for (i = 0; i < s->s_n; i++)
		free(s->s_v[i]);
	free(s->s_v);
	s->s_v = NULL;
	s->s_n = 0;
}

/* An upstream the config does not name can never be asked: 0. */
static int64_t
cache_gc_negative_ttl(const struct config *cfg, const char *upstream)
{
	const struct config_upstream	*cu;

	cu = config_upstream_find(cfg, upstream);
	return cu != NULL ? cu->negative_ttl : 0;
}

static void
cache_gc_mark(const char *digest, int is_manifest, void *arg)
{
	struct cache_gc	*g = arg;

	(void)is_manifest;
	cache_gc_set_add(&g->g_live, digest);
}

static void
cache_gc_keep(const char *digest, int is_manifest, void *arg)
{
	struct cache_gc	*g = arg;

	(void)is_manifest;
	cache_gc_set_add(&g->g_kept, digest);
}

static void
cache_gc_tag_batch(struct cache_tag_ent *v, size_t *n, const char *up,
    const char *repo, const char *tag, const struct cache_tag_rec *rec)
{
	struct cache_tag_ent	*e;

	AN(*n < CACHE_GC_BATCH);
	e = &v[(*n)++];
	snprintf(e->te_upstream, sizeof(e->te_upstream), "%s", up);
	snprintf(e->te_repo, sizeof(e->te_repo), "%s", repo);
	snprintf(e->te_tag, sizeof(e->te_tag), "%s", tag);
	e->te_rec = *rec;
}

/*
 * Phase 1: an expired tag joins a batch; a tag that stays is a root.  A
 * negative entry is served while younger than negative_ttl, so it goes
 * at that age.  (Times are compared, not subtracted from: no overflow.)
 */
static int
cache_gc_tag_cb(const char *up, const char *repo, const char *tag,
    const struct cache_tag_rec *rec, void *arg)
{
	struct cache_gc		*g = arg;
	int64_t			 max_age = g->g_opts->cfg->tag_max_age;

	if (strcmp(rec->digest, CACHE_TAG_NEGATIVE) == 0) {
		if (rec->validated <= g->g_now -
		    cache_gc_negative_ttl(g->g_opts->cfg, up))
			cache_gc_tag_batch(g->g_negs, &g->g_nnegs, up, repo,
			    tag, rec);
	} else if (max_age > 0 && rec->validated < g->g_now - max_age)
		cache_gc_tag_batch(g->g_tags, &g->g_ntags, up, repo, tag,
		    rec);
	else
		cache_manifest_walk(rec->digest, cache_gc_mark, g);
	return 0;
}

static int
cache_gc_tags_flush(struct cache_gc *g, struct cache_tag_ent *v, size_t *n,
    size_t *count)
{
	size_t	removed = *n;

	if (!g->g_opts->dry_run &&
	    cache_index_tag_del_many(cache_idx, v, *n, &removed) != 0)
		return -1;
	*count += removed;
	*n = 0;
	return 0;
}

static int
cache_gc_tags(struct cache_gc *g)
{
	struct cache_index_pos	pos;

	memset(&pos, 0, sizeof(pos));
	while (!pos.ip_done) {
		if (cache_index_tag_scan(cache_idx, &pos, CACHE_GC_BATCH,
		    cache_gc_tag_cb, g) != 0 ||
		    cache_gc_tags_flush(g, g->g_negs, &g->g_nnegs,
		    &g->g_res->negatives) != 0 ||
		    cache_gc_tags_flush(g, g->g_tags, &g->g_ntags,
		    &g->g_res->tags) != 0)
			return -1;
	}
	cache_gc_set_sort(&g->g_live);
	return 0;
}

static void
cache_gc_pinned_cb(const char *digest, int is_manifest, void *arg)
{
	struct cache_blob_rec	 rec;
	int			*pinned = arg;

	if (!is_manifest && cache_index_blob_get(cache_idx, digest,
	    &rec) == 0 && (rec.pinned_until == -1 ||
	    rec.pinned_until > (int64_t)time(NULL)))
		*pinned = 1;
}

/* Pins are on blobs: a manifest is pinned when its walk reaches one. */
static int
cache_gc_manifest_pinned(const char *digest)
{
	int	pinned = 0;

	cache_manifest_walk(digest, cache_gc_pinned_cb, &pinned);
	return pinned;
}

/*
 * Phase 2.  A manifest with no mtime (when -1) is stamped, not removed.
 * What one that stays reaches is kept.
 */
static int
cache_gc_manifest_cb(const char *digest, size_t len, int64_t when, void *arg)
{
	struct cache_gc	*g = arg;

	if (cache_gc_set_has(&g->g_live, digest))
		return 0;
	if (when > g->g_cutoff || (when == -1 && g->g_opts->dry_run) ||
	    cache_gc_manifest_pinned(digest)) {
		cache_manifest_walk(digest, cache_gc_keep, g);
		return 0;
	}
	AN(g->g_ndigests < CACHE_GC_BATCH);
	g->g_digests[g->g_ndigests++] = xstrdup(digest);
	if (when != -1)
		g->g_digest_bytes += len;
	return 0;
}

/*
 * Remove the batch (unless apply is 0: the walk failed), then free it.
 * What the removal kept (stamped, or stored again since) keeps what it
 * reaches; for one that went the walk finds nothing below it.
 */
static int
cache_gc_manifests_flush(struct cache_gc *g, int apply)
{
	size_t		removed = g->g_ndigests, i;
	uint64_t	bytes = g->g_digest_bytes;
	int		rc = apply ? 0 : -1;

	if (rc == 0 && !g->g_opts->dry_run)
		rc = cache_index_manifest_del_many(cache_idx, g->g_digests,
		    g->g_ndigests, g->g_cutoff, g->g_now, &removed, &bytes);
	if (rc == 0) {
		g->g_res->manifests += removed;
		g->g_res->manifest_bytes += bytes;
	}
	for (i = 0; i < g->g_ndigests; i++) {
		if (rc == 0 && g->g_opts->dry_run)
			cache_gc_set_add(&g->g_gone, g->g_digests[i]);
		else if (rc == 0)
			cache_manifest_walk(g->g_digests[i], cache_gc_keep, g);
		free(g->g_digests[i]);
	}
	g->g_ndigests = 0;
	g->g_digest_bytes = 0;
	return rc;
}

static int
cache_gc_manifests(struct cache_gc *g)
{
	struct cache_index_pos	pos;

	memset(&pos, 0, sizeof(pos));
	while (!pos.ip_done)
		if (cache_gc_manifests_flush(g, cache_index_manifest_scan(
		    cache_idx, &pos, CACHE_GC_BATCH, cache_gc_manifest_cb,
		    g) == 0) != 0)
			return -1;
	cache_gc_set_sort(&g->g_kept);
	return 0;
}

/* Phase 3 (blobs): the removal logs each one. */
static int
cache_gc_blob_cb(const char *digest, const struct cache_blob_rec *rec,
    void *arg)
{
	struct cache_gc	*g = arg;

	if (rec->pinned_until == -1 || rec->pinned_until > g->g_now ||
	    rec->stored > g->g_cutoff || cache_gc_set_has(&g->g_live, digest) ||
	    cache_gc_set_has(&g->g_kept, digest))
		return 0;
	if (g->g_opts->dry_run)
		cache_gc_set_add(&g->g_gone, digest);
	else if (cache_blob_remove(digest,
	    "garbage: no tag or pin reaches it") != 0)
		return 0;
	g->g_res->blobs++;
	g->g_res->blob_bytes += rec->size;
	return 0;
}

/* Phase 4. */
static int
cache_gc_link_cb(const struct cache_link_ent *e, void *arg)
{
	struct cache_gc	*g = arg;

	if ((e->le_has_blob || e->le_has_manifest) &&
	    !cache_gc_set_has(&g->g_gone, e->le_digest))
		return 0;
	AN(g->g_nlinks < CACHE_GC_BATCH);
	g->g_links[g->g_nlinks++] = *e;
	return 0;
}

static int
cache_gc_links(struct cache_gc *g)
{
	struct cache_index_pos	pos;
	size_t			removed;

	memset(&pos, 0, sizeof(pos));
	while (!pos.ip_done) {
		if (cache_index_link_scan(cache_idx, &pos, CACHE_GC_BATCH,
		    cache_gc_link_cb, g) != 0)
			return -1;
		removed = g->g_nlinks;
		if (!g->g_opts->dry_run && cache_index_link_del_orphans(
		    cache_idx, g->g_links, g->g_nlinks, &removed) != 0)
			return -1;
		g->g_res->links += removed;
		g->g_nlinks = 0;
	}
	return 0;
}

int
cache_gc(const struct cache_gc_opts *opts, struct cache_gc_result *res)
{
	struct cache_gc	g;
	int		rc;

	memset(res, 0, sizeof(*res));
	memset(&g, 0, sizeof(g));
	g.g_opts = opts;
	g.g_res = res;
	g.g_now = (int64_t)time(NULL);
	g.g_cutoff = g.g_now - opts->grace;
	g.g_tags = xcalloc(CACHE_GC_BATCH, sizeof(*g.g_tags));
	g.g_negs = xcalloc(CACHE_GC_BATCH, sizeof(*g.g_negs));
	g.g_digests = xcalloc(CACHE_GC_BATCH, sizeof(*g.g_digests));
	g.g_links = xcalloc(CACHE_GC_BATCH, sizeof(*g.g_links));

	rc = cache_gc_tags(&g);
	if (rc == 0)
		rc = cache_gc_manifests(&g);
	if (rc == 0 && opts->blobs)
		rc = cache_index_blob_foreach(cache_idx, cache_gc_blob_cb, &g);
	if (rc == 0) {
		cache_gc_set_sort(&g.g_gone);
		rc = cache_gc_links(&g);
	}

	cache_gc_set_free(&g.g_live);
	cache_gc_set_free(&g.g_kept);
	cache_gc_set_free(&g.g_gone);
	free(g.g_tags);
	free(g.g_negs);
	free(g.g_digests);
	free(g.g_links);
	return rc;
}
