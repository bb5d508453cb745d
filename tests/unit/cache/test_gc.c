/*
 * test_gc.c — the index's lifecycle (cache/cache_gc.c) through cache_gc()
 * on a real cache directory: which negative tags, tags, blobs, manifests
 * and links a pass removes and which it keeps; that a dry run counts what
 * the pass then removes and removes nothing; that cache_du() counts what
 * was written; that cache_tag_validated() stops at max_negative exactly.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/config.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "tests/lib/tap.h"

#define IMG_TYPE	"application/vnd.oci.image.manifest.v1+json"
#define IDX_TYPE	"application/vnd.oci.image.index.v1+json"

static int64_t	now;

static void
dg(char *buf, unsigned int n)
{
	snprintf(buf, DIGEST_STR_MAX, "sha256:%064x", n);
}

static void
rmtree(const char *path)
{
	DIR		*d;
	struct dirent	*de;
	char		 sub[1024];

	if ((d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			if (unlink(sub) == -1)
				rmtree(sub);
		}
		closedir(d);
	}
	rmdir(path);
}

static void
put_tag(const char *up, const char *repo, const char *tag,
    const char *digest, int64_t validated)
{
	struct cache_tag_rec	rec;

	memset(&rec, 0, sizeof(rec));
	snprintf(rec.digest, sizeof(rec.digest), "%s", digest);
	rec.validated = validated;
	if (cache_index_tag_put(cache_idx, up, repo, tag, &rec) != 0)
		bail_out("tag put");
}

static void
put_blob(const char *digest, int64_t stored, int64_t pinned)
{
	struct cache_blob_rec	rec = { 1000, stored, stored, pinned };

	if (cache_index_blob_commit(cache_idx, "a.example", "app", digest,
	    &rec, NULL) != 0)
		bail_out("blob commit");
}

/* An image manifest with one config and one layer; its length. */
static size_t
put_image(const char *digest, const char *tag, const char *config,
    const char *layer, int64_t when)
{
	char	*m;
	size_t	 len;

	xasprintf(&m, "{\"schemaVersion\":2,\"config\":{\"digest\":\"%s\"},"
	    "\"layers\":[{\"digest\":\"%s\"}]}", config, layer);
	len = strlen(m);
	if (cache_index_manifest_commit(cache_idx, "a.example", "app", tag,
	    digest, IMG_TYPE, (unsigned char *)m, len, when, NULL) != 0)
		bail_out("manifest commit");
	free(m);
	return len;
}

static int
has_manifest(const char *digest)
{
	char		*t;
	unsigned char	*d;
	size_t		 len;

	if (cache_manifest_get(digest, NULL, &t, &d, &len) != 0)
		return 0;
	free(t);
	free(d);
	return 1;
}

static int
has_tag(const char *up, const char *repo, const char *tag)
{
	char	d[DIGEST_STR_MAX];
	int64_t	v;

	return cache_tag_get(up, repo, tag, d, &v) == 0;
}

struct fixture {
	char	idx[DIGEST_STR_MAX], child[DIGEST_STR_MAX];
	char	lone[DIGEST_STR_MAX], pinned[DIGEST_STR_MAX];
	char	fresh[DIGEST_STR_MAX], stale[DIGEST_STR_MAX];
	char	legacy[DIGEST_STR_MAX];
	char	c1[DIGEST_STR_MAX], l1[DIGEST_STR_MAX];
	char	c2[DIGEST_STR_MAX], l2[DIGEST_STR_MAX];
	char	l3[DIGEST_STR_MAX], nothing[DIGEST_STR_MAX];
	size_t	lone_len, stale_len, bytes;
	size_t	manifests, links;
};

/*
 * The cache a pass is run on ("a.example" negative_ttl 30s, "b.example"
 * 1h, tag_max_age 1d, grace 1h):
 *	a.example/r:old		negative, 31 s old		goes
 *	a.example/r:new		negative, 5 s old		stays
 *	b.example/r:old		negative, 31 s old		stays
 *	gone.example/r:x	negative, upstream not in cfg	goes
 *	a.example/app:v1 -> idx -> child -> c1, l1		all stay
 *	a.example/app:stale, 2 d old -> stale manifest		both go
 *	lone: untagged, 2 h old -> c2, l2			lone, l2 go
 *	pinned: untagged, 2 h old -> c2, l3 (pinned)		stays
 *	fresh: untagged, stored now -> c2, l3			stays
 *	legacy: untagged, no mtime				stays
 *	a link to a digest that is nothing			goes
 */
static void
fixture_build(struct fixture *f)
{
	char	*m;
	size_t	 n;

	memset(f, 0, sizeof(*f));
	dg(f->idx, 1);
	dg(f->child, 2);
	dg(f->lone, 3);
	dg(f->pinned, 4);
	dg(f->fresh, 5);
	dg(f->stale, 6);
	dg(f->legacy, 7);
	dg(f->c1, 11);
	dg(f->l1, 12);
	dg(f->c2, 13);
	dg(f->l2, 14);
	dg(f->l3, 15);
	dg(f->nothing, 99);

	put_tag("a.example", "r", "old", CACHE_TAG_NEGATIVE, now - 31);
	put_tag("a.example", "r", "new", CACHE_TAG_NEGATIVE, now - 5);
	put_tag("b.example", "r", "old", CACHE_TAG_NEGATIVE, now - 31);
	put_tag("gone.example", "r", "x", CACHE_TAG_NEGATIVE, now);

	put_blob(f->c1, now - 7200, 0);
	put_blob(f->l1, now - 7200, 0);
	put_blob(f->c2, now - 7200, 0);
	put_blob(f->l2, now - 7200, 0);
	put_blob(f->l3, now - 7200, -1);
	f->bytes = put_image(f->child, NULL, f->c1, f->l1, now - 7200);
	xasprintf(&m, "{\"schemaVersion\":2,\"manifests\":[{\"digest\":"
	    "\"%s\"}]}", f->child);
	n = strlen(m);
	if (cache_index_manifest_commit(cache_idx, "a.example", "app", "v1",
	    f->idx, IDX_TYPE, (unsigned char *)m, n, now - 7200, NULL) != 0)
		bail_out("index commit");
	free(m);
	f->bytes += n;
	put_tag("a.example", "app", "v1", f->idx, now);
	f->stale_len = put_image(f->stale, "stale", f->c1, f->l1,
	    now - 2 * 86400);
	f->lone_len = put_image(f->lone, NULL, f->c2, f->l2, now - 7200);
	f->bytes += f->stale_len + f->lone_len;
	f->bytes += put_image(f->pinned, NULL, f->c2, f->l3, now - 7200);
	f->bytes += put_image(f->fresh, NULL, f->c2, f->l3, now);
	if (cache_index_manifest_put(cache_idx, f->legacy, IMG_TYPE,
	    (const unsigned char *)"{}", 2) != 0)
		bail_out("legacy put");
	f->bytes += 2;
	f->manifests = 7;
	if (cache_blob_link("a.example", "app", f->nothing) != 0)
		bail_out("link");
	/* 5 blobs, 6 manifests committed, 1 orphan. */
	f->links = 5 + 6 + 1;
}

static void
check_du(const struct fixture *f)
{
	struct cache_du	du;

	if (!is_int(cache_du(&du), 0, "du"))
		return;
	is_int(du.blobs, 5, "du: 5 blobs");
	is_int(du.manifests, f->manifests, "du: %zu manifests", f->manifests);
	is_int(du.manifest_bytes, f->bytes, "du: %zu manifest bytes",
	    f->bytes);
	is_int(du.tags, 2, "du: 2 tags (v1, stale)");
	is_int(du.negative_tags, 4, "du: 4 negative entries");
	is_int(du.links, f->links, "du: %zu links", f->links);
	is_int(du.max_negative, 6, "du: max_negative from the config");
	ok(du.index_bytes >= f->bytes && du.used_bytes == du.bytes +
	    du.index_bytes, "du: index bytes %llu hold the manifests, used = "
	    "blobs + index", (unsigned long long)du.index_bytes);
}

static void
check_dry_run(const struct config *cfg, const struct fixture *f)
{
	struct cache_gc_opts	o = { cfg, 3600, 1, 1 };
	struct cache_gc_result	r;
	struct cache_du		du;

	is_int(cache_gc(&o, &r), 0, "dry run");
	is_int(r.negatives, 2, "dry run: would remove 2 negative entries");
	is_int(r.tags, 1, "dry run: would remove 1 tag");
	is_int(r.manifests, 2, "dry run: would remove 2 manifests");
	is_int(r.manifest_bytes, f->lone_len + f->stale_len,
	    "dry run: ... of %zu bytes", f->lone_len + f->stale_len);
	is_int(r.blobs, 1, "dry run: would remove 1 blob (l2; c2 is used)");
	is_int(r.links, 4, "dry run: would remove 4 links (orphan, lone, "
	    "stale, l2)");
	cache_du(&du);
	ok(du.manifests == f->manifests && du.negative_tags == 4 &&
	    du.tags == 2 && du.blobs == 5 && du.links == f->links,
	    "dry run: removed nothing");
}

static void
check_pass(const struct config *cfg, const struct fixture *f)
{
	struct cache_gc_opts	o = { cfg, 3600, 1, 0 };
	struct cache_gc_result	r;
	uint64_t		size;

	is_int(cache_gc(&o, &r), 0, "gc");
	is_int(r.negatives, 2, "gc: 2 negative entries removed");
	ok(!has_tag("a.example", "r", "old"),
	    "gc: a negative entry older than its negative_ttl goes");
	ok(has_tag("a.example", "r", "new"), "gc: a fresh one stays");
	ok(has_tag("b.example", "r", "old"),
	    "gc: a longer negative_ttl keeps another upstream's");
	ok(!has_tag("gone.example", "r", "x"),
	    "gc: an upstream the config does not name keeps none");
	is_int(r.tags, 1, "gc: 1 tag removed");
	ok(!has_tag("a.example", "app", "stale"),
	    "gc: a tag not validated for tag_max_age goes");
	ok(has_tag("a.example", "app", "v1"), "gc: a validated one stays");

	is_int(r.manifests, 2, "gc: 2 manifests removed");
	is_int(r.manifest_bytes, f->lone_len + f->stale_len,
	    "gc: ... and their bytes");
	ok(has_manifest(f->idx) && has_manifest(f->child),
	    "gc: a tagged index and its child stay");
	ok(!has_manifest(f->lone), "gc: an unreferenced manifest goes");
	ok(!has_manifest(f->stale),
	    "gc: the manifest of an expired tag goes in the same pass");
	ok(has_manifest(f->pinned), "gc: a manifest reaching a pin stays");
	ok(has_manifest(f->fresh), "gc: one within the grace period stays");
	ok(has_manifest(f->legacy),
	    "gc: one without an mtime is stamped, not removed");

	is_int(r.blobs, 1, "gc: 1 blob removed");
	is_int(cache_blob_stat(f->l2, &size), 1, "gc: l2 is gone");
	is_int(cache_blob_stat(f->c2, &size), 0,
	    "gc: c2, which manifests that stay reach, stays");
	is_int(r.links, 4, "gc: 4 links removed");
	is_int(cache_blob_linked("a.example", "app", f->nothing), 1,
	    "gc: the orphan link goes");
	is_int(cache_blob_linked("a.example", "app", f->lone), 1,
	    "gc: the removed manifest's link goes");
	is_int(cache_blob_linked("a.example", "app", f->l1), 0,
	    "gc: a cached blob's link stays");

	is_int(cache_gc(&o, &r), 0, "gc again");
	ok(r.negatives + r.tags + r.manifests + r.blobs + r.links == 0,
	    "gc: a second pass finds nothing more");
}

/* Through the API the proxy uses: the cap holds at exactly 6. */
static void
check_cap(void)
{
	struct cache_du	du;
	char		tag[32];
	int		i, stored = 0, refused = 0, rc;

	cache_du(&du);
	is_int(du.negative_tags, 2, "cap: 2 negative entries left");
	for (i = 0; i < 300; i++) {
		snprintf(tag, sizeof(tag), "unknown-%d", i);
		rc = cache_tag_validated("a.example", "r", tag,
		    CACHE_TAG_NEGATIVE);
		stored += rc == 0;
		refused += rc == 1;
	}
	is_int(stored, 4, "cap: 4 of 300 new ones stored");
	is_int(refused, 296, "cap: 296 refused");
	cache_du(&du);
	is_int(du.negative_tags, 6, "cap: exactly max_negative (6) stored");
	ok(has_tag("a.example", "app", "v1") && du.tags == 1,
	    "cap: positive tags are not limited by it");
}

static int	keep_blobs;

static void
keep_count(const char *digest, int is_manifest, void *arg)
{
	(void)digest;
	(void)arg;
	keep_blobs += !is_manifest;
}

/*
 * What gc and pins keep is read leniently (cache_manifest_walk): a
 * foreign layer a client pulled through the mirror, and the children of
 * an index one of whose fields the strict walker would refuse (an empty
 * variant), stay with their tag.
 */
static void
check_keep_walk(const struct config *cfg)
{
	struct cache_gc_opts	o = { cfg, 3600, 1, 0 };
	struct cache_gc_result	r;
	char			img[DIGEST_STR_MAX], cfg1[DIGEST_STR_MAX];
	char			lay1[DIGEST_STR_MAX], fl1[DIGEST_STR_MAX];
	char			idx[DIGEST_STR_MAX], child[DIGEST_STR_MAX];
	char			cfg2[DIGEST_STR_MAX], lay2[DIGEST_STR_MAX];
	char			*m;
	uint64_t		size;

	dg(img, 101), dg(cfg1, 102), dg(lay1, 103), dg(fl1, 104);
	dg(idx, 110), dg(child, 111), dg(cfg2, 112), dg(lay2, 113);
	put_blob(cfg1, now - 7200, 0), put_blob(lay1, now - 7200, 0);
	put_blob(fl1, now - 7200, 0), put_blob(cfg2, now - 7200, 0);
	put_blob(lay2, now - 7200, 0);
	xasprintf(&m, "{\"schemaVersion\":2,\"config\":{\"digest\":\"%s\"},"
	    "\"layers\":[{\"mediaType\":\"application/vnd.docker.image."
	    "rootfs.foreign.diff.tar.gzip\",\"digest\":\"%s\",\"urls\":"
	    "[\"https://mcr.example/x\"]},{\"digest\":\"%s\"}]}", cfg1, fl1,
	    lay1);
	if (cache_index_manifest_commit(cache_idx, "a.example", "app", "win",
	    img, IMG_TYPE, (unsigned char *)m, strlen(m), now - 7200,
	    NULL) != 0)
		bail_out("manifest commit");
	free(m);
	put_image(child, NULL, cfg2, lay2, now - 7200);
	xasprintf(&m, "{\"schemaVersion\":2,\"manifests\":[{\"digest\":"
	    "\"%s\",\"platform\":{\"os\":\"linux\",\"architecture\":"
	    "\"arm\",\"variant\":\"\"}}]}", child);
	if (cache_index_manifest_commit(cache_idx, "a.example", "app",
	    "multi", idx, IDX_TYPE, (unsigned char *)m, strlen(m),
	    now - 7200, NULL) != 0)
		bail_out("manifest commit");
	free(m);

	keep_blobs = 0;
	cache_manifest_walk(img, keep_count, NULL);
	is_int(keep_blobs, 3, "keep walk: config, layer and foreign layer");
	keep_blobs = 0;
	cache_manifest_walk(idx, keep_count, NULL);
	is_int(keep_blobs, 2, "keep walk: an odd index's child's blobs");
	is_int(cache_gc(&o, &r), 0, "gc with the odd manifests");
	ok(cache_blob_stat(fl1, &size) == 0, "gc keeps a tagged foreign "
	    "layer");
	ok(has_manifest(child), "gc keeps the child of an odd tagged index");
	ok(cache_blob_stat(cfg2, &size) == 0 &&
	    cache_blob_stat(lay2, &size) == 0, "  and the child's blobs");
}

struct ls_seen {
	size_t	tags, blobs, dup;
	char	last[DIGEST_STR_MAX];
};

static int
ls_tag_cb(const struct cache_ls_tag *t, void *arg)
{
	(void)t;
	((struct ls_seen *)arg)->tags++;
	return 0;
}

static int
ls_blob_cb(const struct cache_ls_blob *b, void *arg)
{
	struct ls_seen	*s = arg;

	if (strcmp(b->digest, s->last) <= 0)
		s->dup++;
	snprintf(s->last, sizeof(s->last), "%s", b->digest);
	s->blobs++;
	return 0;
}

/* cache_ls() in batches: every record once, in order, across batches. */
static void
check_ls_batches(void)
{
	struct cache_blob_rec	b = { 1, 1, 1, 0 };
	struct ls_seen		s0, s;
	char			d[DIGEST_STR_MAX];
	unsigned int		i;

	memset(&s0, 0, sizeof(s0));
	cache_ls(ls_tag_cb, ls_blob_cb, &s0);
	cache_index_set_nosync(cache_idx);
	for (i = 0; i < 600; i++) {
		dg(d, 0x70000 + i);
		cache_index_blob_put(cache_idx, d, &b);
	}
	memset(&s, 0, sizeof(s));
	is_int(cache_ls(ls_tag_cb, ls_blob_cb, &s), 0, "ls: 600 more blobs");
	is_int(s.blobs, s0.blobs + 600, "ls: every blob once (%zu before)",
	    s0.blobs);
	is_int(s.dup, 0, "ls: in order, none twice across batches");
	is_int(s.tags, s0.tags, "ls: the tags");
}

/* Run cache_budget_keep() with stderr in a file: its warnings about
 * nothing left to evict. */
static int
keep_warnings(void)
{
	char	 path[] = "/tmp/test_gc_log.XXXXXX", line[1024];
	FILE	*f;
	int	 fd, saved = -1, n = 0;

	fflush(stderr);
	if ((fd = mkstemp(path)) == -1 || (saved = dup(2)) == -1 ||
	    dup2(fd, 2) == -1)
		bail_out("keep_warnings: redirect stderr");
	cache_budget_keep();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	if ((f = fdopen(fd, "r")) == NULL)
		bail_out("keep_warnings: fdopen");
	rewind(f);
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, "nothing unpinned is left") != NULL;
	fclose(f);
	unlink(path);
	return n;
}

/*
 * The budget at 1 byte: the first pass evicts every unpinned blob; with
 * only pinned ones left (and the index over the budget by itself) the
 * next pass says so once, and the one after does not walk again until
 * the bytes change: a new blob is evicted by the next pass.
 */
static void
check_keep_backoff(void)
{
	struct cache_blob_rec	b = { 5, 1, 1, 0 }, got;
	char			d[DIGEST_STR_MAX];

	log_set_level(LOG_LEVEL_INFO);
	cache_budget_set(1);
	dg(d, 0x70001);
	is_int(keep_warnings(), 0, "keep: the first pass evicts");
	is_int(cache_index_blob_get(cache_idx, d, &got), 1,
	    "keep: an unpinned blob went");
	is_int(keep_warnings(), 1, "keep: then nothing unpinned: one warning");
	is_int(keep_warnings(), 0, "keep: no second pass while nothing "
	    "changed");
	dg(d, 0x80000);
	cache_index_blob_put(cache_idx, d, &b);
	(void)keep_warnings();
	is_int(cache_index_blob_get(cache_idx, d, &got), 1,
	    "keep: the bytes changed: a new unpinned blob is evicted");
	cache_budget_set(0);
	log_set_level(LOG_LEVEL_WARN);
}

int
main(void)
{
	struct config	*cfg;
	struct fixture	 f;
	char		 tmpl[] = "/tmp/test_gc.XXXXXX", *dir, *text, err[512];

	alarm(120);
	log_set_level(LOG_LEVEL_WARN);
	now = (int64_t)time(NULL);
	if ((dir = mkdtemp(tmpl)) == NULL)
		bail_out("mkdtemp");
	xasprintf(&text, "[cache]\ndir = %s\ntag_max_age = 1d\n"
	    "max_negative = 6\n"
	    "[upstream \"a.example\"]\nurl = http://127.0.0.1:1\n"
	    "negative_ttl = 30s\n"
	    "[upstream \"b.example\"]\nurl = http://127.0.0.1:2\n"
	    "negative_ttl = 1h\n", dir);
	if (config_load_string("test.conf", text, &cfg, err,
	    sizeof(err)) != 0)
		bail_out(err);
	free(text);
	if (!ok(cache_open(cfg) == 0, "cache opens in %s", dir))
		bail_out("cache_open");

	fixture_build(&f);
	check_du(&f);
	check_dry_run(cfg, &f);
	check_pass(cfg, &f);
	check_cap();
	check_keep_walk(cfg);
	check_ls_batches();
	check_keep_backoff();

	cache_close();
	config_free(cfg);
	rmtree(dir);
	return done_testing();
}
