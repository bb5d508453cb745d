/*
 * test_index.c — unit tests for cache/cache_index.c, the LMDB index: every
 * database's put/get/del, the commit transactions, key limits, persistence
 * across close/reopen, a full map, concurrent writers, and a writer process
 * killed mid-transaction; for the index's lifecycle: the cap on negative
 * tags (exact, with threads racing for the last places), the totals
 * (exact across processes, and counted once for an index without them),
 * the lru order that eviction walks,
 * batched walks that resume, manifest mtimes, and the removals that check
 * each record again.  Everything lives in a mkdtemp directory that is
 * removed at the end.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "cache/cache_int.h"
#include "common/log.h"
#include "tests/lib/tap.h"

#define NTHREADS	4
#define NPERTHREAD	1000
#define CRASH_ACKS	50	/* commits the child reports before the kill */
#define CRASH_MLEN	(64 * 1024)

static char	test_dir[] = "/tmp/test_index.XXXXXX";

/* "sha256:" + 64 hex digits derived from (space, n). */
static void
test_digest(char *buf, unsigned int space, unsigned int n)
{
	snprintf(buf, DIGEST_STR_MAX, "sha256:%056x%08x", space, n);
}

static void
test_path(char *buf, size_t len, const char *sub)
{
	snprintf(buf, len, "%s/%s", test_dir, sub);
	if (mkdir(buf, 0700) == -1 && errno != EEXIST)
		bail_out("mkdir index dir");
}

static void
test_rmtree(const char *path)
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
				test_rmtree(sub);
		}
		closedir(d);
	}
	rmdir(path);
}

static int
test_blob_eq(const struct cache_blob_rec *a, const struct cache_blob_rec *b)
{
	return a->size == b->size && a->stored == b->stored &&
	    a->last_access == b->last_access &&
	    a->pinned_until == b->pinned_until;
}

static void
test_blob(struct cache_index *ci)
{
	struct cache_blob_rec	in = { (1ULL << 40) + 5, 1700000000,
	    1700000001, -1 };
	struct cache_blob_rec	out;
	char			d[DIGEST_STR_MAX];

	test_digest(d, 1, 1);
	is_int(cache_index_blob_get(ci, d, &out), 1, "blob: absent -> 1");
	is_int(cache_index_blob_put(ci, d, &in), 0, "blob: put");
	memset(&out, 0, sizeof(out));
	is_int(cache_index_blob_get(ci, d, &out), 0, "blob: get");
	ok(test_blob_eq(&in, &out), "blob: fields round-trip "
	    "(size %llu, pinned_until %lld)", (unsigned long long)out.size,
	    (long long)out.pinned_until);

	in.pinned_until = INT64_MIN;
	in.stored = INT64_MAX;
	in.size = UINT64_MAX;
	is_int(cache_index_blob_put(ci, d, &in), 0, "blob: overwrite");
	cache_index_blob_get(ci, d, &out);
	ok(test_blob_eq(&in, &out), "blob: extreme values round-trip");

	is_int(cache_index_blob_touch(ci, d, 1800000000), 0, "blob: touch");
	cache_index_blob_get(ci, d, &out);
	is_int(out.last_access, 1800000000, "blob: touch set last_access");
	ok(out.size == in.size && out.stored == in.stored &&
	    out.pinned_until == in.pinned_until,
	    "blob: touch left the other fields alone");
	is_int(cache_index_blob_touch(ci, d, 1800000000), 0,
	    "blob: touch to the same time");

	is_int(cache_index_blob_del(ci, d), 0, "blob: del");
	is_int(cache_index_blob_get(ci, d, &out), 1, "blob: gone after del");
	is_int(cache_index_blob_del(ci, d), 1, "blob: del of absent -> 1");
	is_int(cache_index_blob_touch(ci, d, 1), 1,
	    "blob: touch of absent -> 1");
	is_int(cache_index_blob_get(ci, "", &out), -1, "blob: empty digest");
}

struct test_walk {
	struct cache_index	*ci;		/* set: delete what is seen */
	int			 del_failed;
	int			 count;
	int			 stop_after;
	int			 ordered;
	int			 fields_ok;
	char			 last[DIGEST_STR_MAX];
};

static int
test_walk_cb(const char *digest, const struct cache_blob_rec *rec, void *arg)
{
	struct test_walk	*w = arg;

	if (w->count > 0 && strcmp(w->last, digest) >= 0)
		w->ordered = 0;
	if (rec->size != (uint64_t)strtoul(digest + strlen(digest) - 8,
	    NULL, 16) * 10)
		w->fields_ok = 0;
	snprintf(w->last, sizeof(w->last), "%s", digest);
	w->count++;
	if (w->ci != NULL && cache_index_blob_del(w->ci, digest) != 0)
		w->del_failed++;
	return w->stop_after > 0 && w->count >= w->stop_after;
}

static void
test_foreach(struct cache_index *ci)
{
	struct cache_blob_rec	rec = { 0, 1, 2, 0 };
	struct test_walk	w;
	char			d[DIGEST_STR_MAX];
	unsigned int		i, bad = 0;

	memset(&w, 0, sizeof(w));
	w.ordered = w.fields_ok = 1;
	is_int(cache_index_blob_foreach(ci, test_walk_cb, &w), 0,
	    "foreach: empty database");
	is_int(w.count, 0, "foreach: no calls on an empty database");

	/* Insert out of order; the walk must come back in key order. */
	for (i = 10; i > 0; i--) {
		test_digest(d, 2, i);
		rec.size = i * 10;
		if (cache_index_blob_put(ci, d, &rec) != 0)
			bad++;
	}
	is_int(bad, 0, "foreach: 10 puts");
	memset(&w, 0, sizeof(w));
	w.ordered = w.fields_ok = 1;
	is_int(cache_index_blob_foreach(ci, test_walk_cb, &w), 0,
	    "foreach: full walk");
	is_int(w.count, 10, "foreach: saw all 10 records");
	ok(w.ordered, "foreach: in key order");
	ok(w.fields_ok, "foreach: records match their keys");

	memset(&w, 0, sizeof(w));
	w.ordered = w.fields_ok = 1;
	w.stop_after = 3;
	is_int(cache_index_blob_foreach(ci, test_walk_cb, &w), 0,
	    "foreach: stopped walk returns 0");
	is_int(w.count, 3, "foreach: callback returning nonzero stops it");

	/* GC's pattern: delete from inside the walk (a write in the cb). */
	memset(&w, 0, sizeof(w));
	w.ordered = w.fields_ok = 1;
	w.ci = ci;
	is_int(cache_index_blob_foreach(ci, test_walk_cb, &w), 0,
	    "foreach: walk that deletes as it goes");
	is_int(w.count, 10, "foreach: the walk saw its whole snapshot");
	is_int(w.del_failed, 0, "foreach: every delete from the cb worked");
	for (i = 1; i <= 10; i++) {
		test_digest(d, 2, i);
		if (cache_index_blob_get(ci, d, &rec) != 1)
			bad++;
	}
	is_int(bad, 0, "foreach: all deleted");
}

static void
test_manifest(struct cache_index *ci)
{
	unsigned char	 in[1000], *data = NULL;
	char		*mt = NULL, d[DIGEST_STR_MAX];
	size_t		 len = 0, i;
	const char	*type = "application/vnd.oci.image.manifest.v1+json";

	/* Binary, with NULs everywhere, including first and last byte. */
	for (i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7);
	in[sizeof(in) - 1] = 0;
	test_digest(d, 3, 1);

	is_int(cache_index_manifest_get(ci, d, &mt, &data, &len), 1,
	    "manifest: absent -> 1");
	ok(mt == NULL && data == NULL, "manifest: outputs untouched if absent");
	is_int(cache_index_manifest_put(ci, d, type, in, sizeof(in)), 0,
	    "manifest: put");
	is_int(cache_index_manifest_get(ci, d, &mt, &data, &len), 0,
	    "manifest: get");
	is_str(mt, type, "manifest: media type");
	is_int(len, sizeof(in), "manifest: length");
	ok(data != NULL && memcmp(data, in, sizeof(in)) == 0,
	    "manifest: exact bytes, embedded NULs and all");
	free(mt);
	free(data);

	/* Overwrite with a shorter value and an empty media type. */
	is_int(cache_index_manifest_put(ci, d, "", in + 1, 3), 0,
	    "manifest: overwrite");
	is_int(cache_index_manifest_get(ci, d, &mt, &data, &len), 0,
	    "manifest: get after overwrite");
	ok(mt != NULL && *mt == '\0' && len == 3 &&
	    memcmp(data, in + 1, 3) == 0, "manifest: overwrite round-trips");
	free(mt);
	free(data);

	is_int(cache_index_manifest_put(ci, d, type, NULL, 0), 0,
	    "manifest: put empty");
	is_int(cache_index_manifest_get(ci, d, &mt, &data, &len), 0,
	    "manifest: get empty");
	ok(len == 0 && mt != NULL && strcmp(mt, type) == 0,
	    "manifest: empty body round-trips");
	free(mt);
	free(data);

	is_int(cache_index_manifest_del(ci, d), 0, "manifest: del");
	is_int(cache_index_manifest_del(ci, d), 1, "manifest: del absent -> 1");
	is_int(cache_index_manifest_get(ci, d, &mt, &data, &len), 1,
	    "manifest: gone after del");
}

static void
test_tag(struct cache_index *ci)
{
	struct cache_tag_rec	in, out;

	memset(&in, 0, sizeof(in));
	test_digest(in.digest, 4, 1);
	in.validated = 1700000000;

	is_int(cache_index_tag_get(ci, "docker.io", "library/alpine", "3.19",
	    &out), 1, "tag: absent -> 1");
	is_int(cache_index_tag_put(ci, "docker.io", "library/alpine", "3.19",
	    &in), 0, "tag: put");
	memset(&out, 0xff, sizeof(out));
	is_int(cache_index_tag_get(ci, "docker.io", "library/alpine", "3.19",
	    &out), 0, "tag: get");
	is_str(out.digest, in.digest, "tag: digest");
	is_int(out.validated, in.validated, "tag: validated");

	test_digest(in.digest, 4, 2);
	in.validated = -5;
	is_int(cache_index_tag_put(ci, "docker.io", "library/alpine", "3.19",
	    &in), 0, "tag: overwrite");
	cache_index_tag_get(ci, "docker.io", "library/alpine", "3.19", &out);
	is_str(out.digest, in.digest, "tag: overwritten digest");
	is_int(out.validated, -5, "tag: overwritten validated");

	/* The NUL separators keep neighbouring keys apart. */
	is_int(cache_index_tag_put(ci, "a", "bc", "t", &in), 0,
	    "tag: put a/bc:t");
	is_int(cache_index_tag_get(ci, "ab", "c", "t", &out), 1,
	    "tag: ab/c:t is another key");
	is_int(cache_index_tag_get(ci, "docker.io", "library/alpine", "3.1",
	    &out), 1, "tag: a prefix of a tag is another key");
	is_int(cache_index_tag_get(ci, "quay.io", "library/alpine", "3.19",
	    &out), 1, "tag: another upstream is another key");

	is_int(cache_index_tag_del(ci, "docker.io", "library/alpine", "3.19"),
	    0, "tag: del");
	is_int(cache_index_tag_get(ci, "docker.io", "library/alpine", "3.19",
	    &out), 1, "tag: gone after del");
	is_int(cache_index_tag_del(ci, "docker.io", "library/alpine", "3.19"),
	    1, "tag: del absent -> 1");
	is_int(cache_index_tag_get(ci, "a", "bc", "t", &out), 0,
	    "tag: the other key survived");

	memset(in.digest, 'x', sizeof(in.digest));
	is_int(cache_index_tag_put(ci, "a", "b", "c", &in), -1,
	    "tag: unterminated digest -> -1");
	in.digest[0] = '\0';
	is_int(cache_index_tag_put(ci, "a", "b", "c", &in), -1,
	    "tag: empty digest -> -1");
}

static void
test_link(struct cache_index *ci)
{
	char	d[DIGEST_STR_MAX];

	test_digest(d, 5, 1);
	is_int(cache_index_link_get(ci, "docker.io", "library/nginx", d), 1,
	    "link: absent -> 1");
	is_int(cache_index_link_put(ci, "docker.io", "library/nginx", d, 42),
	    0, "link: put");
	is_int(cache_index_link_get(ci, "docker.io", "library/nginx", d), 0,
	    "link: get");
	is_int(cache_index_link_get(ci, "docker.io", "library/redis", d), 1,
	    "link: another repo does not hold it");
	is_int(cache_index_link_put(ci, "docker.io", "library/nginx", d, 43),
	    0, "link: put again");
}

static void
test_commit(struct cache_index *ci)
{
	struct cache_blob_rec	 brec = { 123, 1700000100, 1700000100, 0 };
	struct cache_blob_rec	 bout;
	struct cache_tag_rec	 tout;
	const unsigned char	 m1[] = "{\"schemaVersion\":2}\0tail";
	const unsigned char	 m2[] = "different";
	const char		*type = "application/vnd.oci.image.index.v1"
	    "+json";
	unsigned char		*data;
	char			*mt, d[DIGEST_STR_MAX], d2[DIGEST_STR_MAX];
	size_t			 len;

	test_digest(d, 6, 1);
	is_int(cache_index_manifest_commit(ci, "ghcr.io", "org/app", "v1", d,
	    type, m1, sizeof(m1), 1700000000, NULL), 0,
	    "commit: manifest with tag");
	is_int(cache_index_manifest_get(ci, d, &mt, &data, &len), 0,
	    "commit: manifest stored");
	ok(len == sizeof(m1) && memcmp(data, m1, len) == 0,
	    "commit: manifest bytes");
	is_str(mt, type, "commit: manifest media type");
	free(mt);
	free(data);
	is_int(cache_index_link_get(ci, "ghcr.io", "org/app", d), 0,
	    "commit: manifest linked to the repo");
	is_int(cache_index_tag_get(ci, "ghcr.io", "org/app", "v1", &tout), 0,
	    "commit: tag stored");
	is_str(tout.digest, d, "commit: tag points at the manifest");
	is_int(tout.validated, 1700000000, "commit: tag validated = now");

	/* Same digest again: the stored bytes stay; link and tag move on. */
	is_int(cache_index_manifest_commit(ci, "ghcr.io", "org/other", "v2",
	    d, "text/plain", m2, sizeof(m2), 1700000500, NULL), 0,
	    "commit: manifest already present");
	is_int(cache_index_manifest_get(ci, d, &mt, &data, &len), 0,
	    "commit: manifest still there");
	ok(len == sizeof(m1) && memcmp(data, m1, len) == 0 &&
	    strcmp(mt, type) == 0, "commit: an existing manifest is kept");
	free(mt);
	free(data);
	is_int(cache_index_link_get(ci, "ghcr.io", "org/other", d), 0,
	    "commit: second repo linked");
	is_int(cache_index_tag_get(ci, "ghcr.io", "org/other", "v2", &tout),
	    0, "commit: second tag stored");
	is_int(tout.validated, 1700000500, "commit: second tag validated");

	test_digest(d2, 6, 2);
	is_int(cache_index_manifest_commit(ci, "ghcr.io", "org/app", NULL, d2,
	    type, m2, sizeof(m2), 1700000600, NULL), 0,
	    "commit: manifest by digest, no tag");
	is_int(cache_index_link_get(ci, "ghcr.io", "org/app", d2), 0,
	    "commit: untagged manifest linked");
	is_int(cache_index_tag_get(ci, "ghcr.io", "org/app", "v1", &tout), 0,
	    "commit: the existing tag is untouched");
	is_str(tout.digest, d, "commit: ... and still points at the first");

	/* A bad tag must not leave a half-done transaction behind. */
	test_digest(d2, 6, 3);
	is_int(cache_index_manifest_commit(ci, "ghcr.io", "org/app",
	    "", d2, type, m2, sizeof(m2), 1, NULL), -1,
	    "commit: empty tag -> -1");
	is_int(cache_index_manifest_get(ci, d2, &mt, &data, &len), 1,
	    "commit: nothing stored after a rejected commit");

	test_digest(d, 7, 1);
	is_int(cache_index_blob_commit(ci, "docker.io", "library/busybox", d,
	    &brec, NULL), 0, "commit: blob");
	is_int(cache_index_blob_get(ci, d, &bout), 0, "commit: blob stored");
	ok(test_blob_eq(&brec, &bout), "commit: blob record");
	is_int(cache_index_link_get(ci, "docker.io", "library/busybox", d), 0,
	    "commit: blob linked");
	is_int(cache_index_link_get(ci, "docker.io", "library/other", d), 1,
	    "commit: blob not linked elsewhere");

	/* Origin: bytes from an isolated upstream are recorded as its own;
	 * the next commit from a shared one makes them shared again. */
	{
		char	origin[256];

		is_int(cache_index_origin_get(ci, d, origin, sizeof(origin)),
		    1, "origin: shared by default");
		is_int(cache_index_blob_commit(ci, "private.example", "team/x",
		    d, &brec, "private.example"), 0, "origin: isolated commit");
		if (is_int(cache_index_origin_get(ci, d, origin,
		    sizeof(origin)), 0, "origin: recorded"))
			is_str(origin, "private.example", "origin: its name");
		is_int(cache_index_origin_get(ci, d, origin, 8), -1,
		    "origin: too small a buffer is an error, not a cut name");
		is_int(cache_index_blob_commit(ci, "docker.io", "library/x", d,
		    &brec, NULL), 0, "origin: shared commit");
		is_int(cache_index_origin_get(ci, d, origin, sizeof(origin)),
		    1, "origin: shared again");
		is_int(cache_index_manifest_commit(ci, "private.example",
		    "team/x", NULL, d2, type, m2, sizeof(m2), 1,
		    "private.example"), 0, "origin: isolated manifest");
		is_int(cache_index_origin_get(ci, d2, origin, sizeof(origin)),
		    0, "origin: manifest recorded");
		is_int(cache_index_manifest_exists(ci, d2), 0,
		    "exists: the manifest");
		is_int(cache_index_manifest_exists(ci, "sha256:00"), 1,
		    "exists: not another");
	}
}

static void
test_limits(struct cache_index *ci)
{
	struct cache_tag_rec	rec = { "sha256:x", 1 };
	struct cache_blob_rec	b = { 1, 1, 1, 0 };
	char			up[300], repo[300], tag[200];
	char			d[DIGEST_STR_MAX + 8];

	memset(up, 'u', sizeof(up));
	memset(repo, 'r', sizeof(repo));
	memset(tag, 't', sizeof(tag));

	up[256] = repo[10] = tag[10] = '\0';
	is_int(cache_index_tag_put(ci, up, repo, tag, &rec), -1,
	    "limits: 256-byte upstream -> -1");
	up[10] = '\0';
	repo[10] = 'r';
	repo[256] = '\0';
	is_int(cache_index_tag_get(ci, up, repo, tag, &rec), -1,
	    "limits: 256-byte repository -> -1");
	repo[10] = '\0';
	tag[10] = 't';
	tag[129] = '\0';
	is_int(cache_index_tag_put(ci, up, repo, tag, &rec), -1,
	    "limits: 129-byte tag -> -1");
	tag[128] = '\0';
	is_int(cache_index_tag_put(ci, up, repo, tag, &rec), 0,
	    "limits: 128-byte tag is fine");

	/* Each part within its cap, the whole over LMDB's 511 bytes. */
	memset(up, 'u', sizeof(up));
	memset(repo, 'r', sizeof(repo));
	up[255] = repo[255] = '\0';
	tag[1] = '\0';
	is_int(cache_index_tag_put(ci, up, repo, tag, &rec), -1,
	    "limits: 513-byte key -> -1");
	is_int(cache_index_tag_get(ci, up, repo, tag, &rec), -1,
	    "limits: 513-byte key on get -> -1");
	is_int(cache_index_tag_del(ci, up, repo, tag), -1,
	    "limits: 513-byte key on del -> -1");
	up[200] = repo[200] = '\0';
	memset(tag, 't', sizeof(tag));
	tag[109] = '\0';			/* 200+1+200+1+109 = 511 */
	is_int(cache_index_tag_put(ci, up, repo, tag, &rec), 0,
	    "limits: 511-byte key is fine");
	memset(&rec, 0, sizeof(rec));
	is_int(cache_index_tag_get(ci, up, repo, tag, &rec), 0,
	    "limits: 511-byte key reads back");
	is_str(rec.digest, "sha256:x", "limits: 511-byte key value");

	test_digest(d, 8, 1);
	up[200] = 'u';				/* 255+1+200+1+71 = 528 */
	is_int(cache_index_link_put(ci, up, repo, d, 1), -1,
	    "limits: link key too long -> -1");
	is_int(cache_index_blob_commit(ci, up, repo, d, &b, NULL), -1,
	    "limits: blob_commit with a long key -> -1");
	is_int(cache_index_blob_get(ci, d, &b), 1,
	    "limits: ... and stored nothing");

	memset(d, 'd', sizeof(d));
	memcpy(d, "sha512:", 7);
	d[DIGEST_STR_MAX] = '\0';		/* 136 bytes */
	is_int(cache_index_blob_put(ci, d, &b), -1,
	    "limits: 136-byte digest -> -1");
	d[DIGEST_STR_MAX - 1] = '\0';		/* 135: sha512 */
	is_int(cache_index_blob_put(ci, d, &b), 0,
	    "limits: 135-byte digest is fine");
}

/* A small map fills up: -1, and the index stays usable. */
static void
test_map_full(void)
{
	struct cache_index	*ci;
	struct cache_blob_rec	 b = { 1, 1, 1, 0 };
	unsigned char		*big;
	char			 dir[512], d[DIGEST_STR_MAX];
	unsigned int		 i;
	int			 rc = 0;

	test_path(dir, sizeof(dir), "small");
	if (cache_index_open(dir, 1 << 20, &ci) != 0) {
		ok(0, "map full: open a 1 MiB index");
		return;
	}
	big = calloc(1, 256 * 1024);
	test_digest(d, 9, 0);
	is_int(cache_index_blob_put(ci, d, &b), 0, "map full: first put");
	for (i = 1; i < 64 && rc == 0; i++) {
		test_digest(d, 9, i);
		rc = cache_index_manifest_put(ci, d, "x", big, 256 * 1024);
	}
	is_int(rc, -1, "map full: put into a full map -> -1 (after %u)", i);
	test_digest(d, 9, 0);
	is_int(cache_index_blob_get(ci, d, &b), 0,
	    "map full: reads still work");
	is_int(cache_index_blob_touch(ci, d, 2), 0,
	    "map full: a small write still fits");
	free(big);
	cache_index_close(ci);
}

struct test_thread {
	struct cache_index	*ci;
	unsigned int		 id;
	unsigned int		 failed;
};

static void *
test_thread_main(void *arg)
{
	struct test_thread	*t = arg;
	struct cache_blob_rec	 rec, out;
	char			 d[DIGEST_STR_MAX];
	unsigned int		 i;

	for (i = 0; i < NPERTHREAD; i++) {
		test_digest(d, 100 + t->id, i);
		rec.size = i;
		rec.stored = t->id;
		rec.last_access = i;
		rec.pinned_until = 0;
		if (cache_index_blob_put(t->ci, d, &rec) != 0)
			t->failed++;
		/* Interleave reads with the other threads' writes. */
		else if (cache_index_blob_get(t->ci, d, &out) != 0 ||
		    !test_blob_eq(&rec, &out))
			t->failed++;
	}
	return NULL;
}

static int
test_count_cb(const char *digest, const struct cache_blob_rec *rec,
    void *arg)
{
	(void)digest;
	(void)rec;
	(*(int *)arg)++;
	return 0;
}

/* NTHREADS writers on one shared index, in a directory of their own. */
static void
test_threads(void)
{
	pthread_t		 tid[NTHREADS];
	struct test_thread	 t[NTHREADS];
	struct cache_index	*ci;
	struct cache_blob_rec	 out;
	char			 dir[512], d[DIGEST_STR_MAX];
	unsigned int		 i, j, failed = 0, missing = 0;
	int			 started = 0, count = 0;

	test_path(dir, sizeof(dir), "threads");
	if (cache_index_open(dir, 0, &ci) != 0) {
		ok(0, "threads: open");
		return;
	}
	for (i = 0; i < NTHREADS; i++) {
		t[i].ci = ci;
		t[i].id = i;
		t[i].failed = 0;
		if (pthread_create(&tid[i], NULL, test_thread_main,
		    &t[i]) != 0)
			break;
		started++;
	}
	is_int(started, NTHREADS, "threads: %d writers started", NTHREADS);
	for (i = 0; i < (unsigned int)started; i++) {
		pthread_join(tid[i], NULL);
		failed += t[i].failed;
	}
	is_int(failed, 0, "threads: every put and read-back succeeded");

	for (i = 0; i < NTHREADS; i++) {
		for (j = 0; j < NPERTHREAD; j++) {
			test_digest(d, 100 + i, j);
			if (cache_index_blob_get(ci, d, &out) != 0 ||
			    out.size != j || out.stored != (int64_t)i)
				missing++;
		}
	}
	is_int(missing, 0, "threads: all %d records present",
	    NTHREADS * NPERTHREAD);
	is_int(cache_index_blob_foreach(ci, test_count_cb, &count), 0,
	    "threads: walk");
	is_int(count, NTHREADS * NPERTHREAD, "threads: no extra records");
	cache_index_close(ci);
}

static void
test_crash_fill(unsigned char *buf, unsigned int i)
{
	memset(buf, (int)(i & 0xff), CRASH_MLEN);
	memcpy(buf, &i, sizeof(i));
}

/*
 * The child opens the index itself (after the fork, as LMDB requires),
 * commits one blob record, then writes manifests in a loop, reporting each
 * commit on the pipe, until it is killed.
 */
static void __attribute__((noreturn))
test_crash_child(const char *dir, int fd)
{
	struct cache_index	*ci;
	struct cache_blob_rec	 rec = { 77, 1, 1, -1 };
	unsigned char		*buf;
	char			 d[DIGEST_STR_MAX];
	unsigned int		 i;

	if (cache_index_open(dir, 0, &ci) != 0)
		_exit(2);
	test_digest(d, 10, 0xffffffff);
	if (cache_index_blob_put(ci, d, &rec) != 0)
		_exit(3);
	if ((buf = malloc(CRASH_MLEN)) == NULL)
		_exit(4);
	for (i = 0;; i++) {
		test_digest(d, 10, i);
		test_crash_fill(buf, i);
		if (cache_index_manifest_put(ci, d, "crash/test", buf,
		    CRASH_MLEN) != 0)
			_exit(5);
		if (write(fd, &i, sizeof(i)) != sizeof(i))
			_exit(6);
	}
}

static void
test_crash(void)
{
	struct cache_index	*ci;
	struct cache_blob_rec	 rec;
	unsigned char		*want, *data;
	char			 dir[512], d[DIGEST_STR_MAX], *mt;
	unsigned int		 ack, last = 0, nacks = 0, i, bad = 0;
	size_t			 len;
	pid_t			 pid;
	int			 fds[2], status = 0;

	test_path(dir, sizeof(dir), "crash");
	if (pipe(fds) == -1)
		bail_out("pipe");
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1)
		bail_out("fork");
	if (pid == 0) {
		close(fds[0]);
		test_crash_child(dir, fds[1]);
	}
	close(fds[1]);
	while (nacks < CRASH_ACKS &&
	    read(fds[0], &ack, sizeof(ack)) == sizeof(ack)) {
		last = ack;
		nacks++;
	}
	/* Kill it in the middle of its next write transaction. */
	kill(pid, SIGKILL);
	while (read(fds[0], &ack, sizeof(ack)) == sizeof(ack)) {
		last = ack;
		nacks++;
	}
	close(fds[0]);
	waitpid(pid, &status, 0);
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	    "crash: writer killed (status %#x)", status);
	ok(nacks >= CRASH_ACKS && last == nacks - 1,
	    "crash: %u commits acknowledged before the kill", nacks);

	if (cache_index_open(dir, 0, &ci) != 0) {
		ok(0, "crash: reopen after the kill");
		return;
	}
	test_digest(d, 10, 0xffffffff);
	is_int(cache_index_blob_get(ci, d, &rec), 0,
	    "crash: the first committed record is there");
	is_int(rec.size, 77, "crash: ... intact");

	want = malloc(CRASH_MLEN);
	for (i = 0; i < nacks && want != NULL; i++) {
		test_digest(d, 10, i);
		test_crash_fill(want, i);
		if (cache_index_manifest_get(ci, d, &mt, &data, &len) != 0) {
			bad++;
			continue;
		}
		if (len != CRASH_MLEN || memcmp(data, want, len) != 0 ||
		    strcmp(mt, "crash/test") != 0)
			bad++;
		free(mt);
		free(data);
	}
	free(want);
	is_int(bad, 0, "crash: all %u acknowledged commits are intact", nacks);
	rec.size = 78;
	is_int(cache_index_blob_put(ci, d, &rec), 0,
	    "crash: the index takes writes again");
	cache_index_close(ci);
}

static struct cache_tag_rec
test_neg(int64_t when)
{
	struct cache_tag_rec	r;

	memset(&r, 0, sizeof(r));
	strcpy(r.digest, CACHE_TAG_NEGATIVE);
	r.validated = when;
	return r;
}

static uint64_t
test_negatives(struct cache_index *ci)
{
	struct cache_index_stat	st;

	if (cache_index_stat(ci, &st) != 0)
		return UINT64_MAX;
	return st.is_negatives;
}

/* The cap holds at exactly max_negative; what frees a place. */
static void
test_negative_cap(struct cache_index *ci)
{
	struct cache_tag_rec	 neg = test_neg(1700000000), pos, out;
	struct cache_index_stat	 st;
	char			 tag[32], d[DIGEST_STR_MAX];
	unsigned int		 i, stored = 0, refused = 0;
	int			 rc;

	cache_index_set_max_negative(ci, 5);
	for (i = 0; i < 8; i++) {
		snprintf(tag, sizeof(tag), "nope-%u", i);
		rc = cache_index_tag_put(ci, "u", "r", tag, &neg);
		stored += rc == 0;
		refused += rc == 1;
	}
	is_int(stored, 5, "cap: 5 of 8 distinct negative tags stored");
	is_int(refused, 3, "cap: the other 3 refused (1)");
	is_int(test_negatives(ci), 5, "cap: the total is 5");
	is_int(cache_index_tag_get(ci, "u", "r", "nope-7", &out), 1,
	    "cap: a refused one is not in the index");
	neg.validated++;
	is_int(cache_index_tag_put(ci, "u", "r", "nope-0", &neg), 0,
	    "cap: an existing negative is refreshed at the cap");
	is_int(test_negatives(ci), 5, "cap: ... and is not counted twice");

	memset(&pos, 0, sizeof(pos));
	test_digest(pos.digest, 20, 1);
	pos.validated = 1700000000;
	is_int(cache_index_tag_put(ci, "u", "r", "real", &pos), 0,
	    "cap: a positive tag is stored at the cap");
	is_int(cache_index_tag_put(ci, "u", "r", "real", &neg), 1,
	    "cap: it cannot turn negative at the cap");
	is_int(cache_index_tag_get(ci, "u", "r", "real", &out), 1,
	    "cap: ... and its stale positive record went");

	is_int(cache_index_tag_del(ci, "u", "r", "nope-1"), 0,
	    "cap: delete a negative");
	is_int(test_negatives(ci), 4, "cap: the total is 4");
	is_int(cache_index_tag_put(ci, "u", "r", "nope-7", &neg), 0,
	    "cap: its place is taken by a new one");
	test_digest(d, 20, 2);
	is_int(cache_index_manifest_commit(ci, "u", "r", "nope-7", d, "t",
	    (const unsigned char *)"{}", 2, 1700000001, NULL), 0,
	    "cap: a manifest commit turns a negative tag positive");
	is_int(test_negatives(ci), 4, "cap: the total is 4 again");
	is_int(cache_index_stat(ci, &st), 0, "cap: stat");
	ok(st.is_neg_refused >= 4, "cap: refusals counted (%llu)",
	    (unsigned long long)st.is_neg_refused);
	cache_index_set_max_negative(ci, 0);
	is_int(cache_index_tag_put(ci, "u", "r", "zero", &neg), 1,
	    "cap: max_negative 0 stores none");
	cache_index_set_max_negative(ci, UINT64_MAX);
}

struct test_race {
	struct cache_index	*ci;
	unsigned int		 id, stored;
};

static void *
test_race_main(void *arg)
{
	struct test_race	*t = arg;
	struct cache_tag_rec	 neg = test_neg(1);
	char			 tag[32];
	unsigned int		 i;

	for (i = 0; i < 200; i++) {
		snprintf(tag, sizeof(tag), "t%u-%u", t->id, i);
		if (cache_index_tag_put(t->ci, "race", "r", tag, &neg) == 0)
			t->stored++;
	}
	return NULL;
}

static int
test_count_neg_cb(const char *up, const char *repo, const char *tag,
    const struct cache_tag_rec *rec, void *arg)
{
	(void)repo;
	(void)tag;
	if (strcmp(up, "race") == 0 &&
	    strcmp(rec->digest, CACHE_TAG_NEGATIVE) == 0)
		(*(unsigned int *)arg)++;
	return 0;
}

/* NTHREADS writers race for the last 50 places: exactly 50 are taken. */
static void
test_negative_race(struct cache_index *ci)
{
	pthread_t		tid[NTHREADS];
	struct test_race	t[NTHREADS];
	unsigned int		i, stored = 0, counted = 0, before;

	before = (unsigned int)test_negatives(ci);
	cache_index_set_max_negative(ci, before + 50);
	for (i = 0; i < NTHREADS; i++) {
		t[i].ci = ci;
		t[i].id = i;
		t[i].stored = 0;
		if (pthread_create(&tid[i], NULL, test_race_main, &t[i]) != 0)
			bail_out("pthread_create");
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(tid[i], NULL);
		stored += t[i].stored;
	}
	cache_index_tag_foreach(ci, test_count_neg_cb, &counted);
	is_int(stored, 50, "race: %d threads stored 50 negatives in all",
	    NTHREADS);
	is_int(counted, 50, "race: 50 are in the index");
	is_int(test_negatives(ci), before + 50, "race: the total agrees");
	cache_index_set_max_negative(ci, UINT64_MAX);
}

struct test_seen {
	unsigned int	n;
	char		last[600];
	int		ordered;
};

static int
test_seen_cb(const char *up, const char *repo, const char *tag,
    const struct cache_tag_rec *rec, void *arg)
{
	struct test_seen	*w = arg;
	char			 k[600];

	(void)rec;
	snprintf(k, sizeof(k), "%s/%s/%s", up, repo, tag);
	if (w->n > 0 && strcmp(w->last, k) >= 0)
		w->ordered = 0;
	snprintf(w->last, sizeof(w->last), "%s", k);
	w->n++;
	return 0;
}

/* A walk in batches of 3 resumes where it stopped, even past a delete. */
static void
test_scan_batches(struct cache_index *ci)
{
	struct cache_index_pos	 pos;
	struct cache_tag_rec	 rec;
	struct test_seen	 w = { 0, "", 1 }, all = { 0, "", 1 };
	char			 tag[16];
	unsigned int		 i, calls = 0;

	memset(&rec, 0, sizeof(rec));
	test_digest(rec.digest, 21, 0);
	for (i = 0; i < 10; i++) {
		snprintf(tag, sizeof(tag), "b%02u", i);
		cache_index_tag_put(ci, "scan", "r", tag, &rec);
	}
	cache_index_tag_foreach(ci, test_seen_cb, &all);
	memset(&pos, 0, sizeof(pos));
	while (!pos.ip_done && calls < 100) {
		if (cache_index_tag_scan(ci, &pos, 3, test_seen_cb, &w) != 0)
			break;
		if (calls++ == 1)	/* the next batch's first key goes */
			cache_index_tag_del(ci, "scan", "r", "b06");
	}
	is_int(w.n, all.n - 1, "scan: every tag once, the deleted one not "
	    "(%u of %u)", w.n, all.n);
	ok(w.ordered, "scan: in key order across batches");
	ok(calls >= all.n / 3, "scan: in %u batches", calls);
	for (i = 0; i < 10; i++) {
		snprintf(tag, sizeof(tag), "b%02u", i);
		cache_index_tag_del(ci, "scan", "r", tag);
	}
}

struct test_mscan {
	char		digest[DIGEST_STR_MAX];
	size_t		len;
	int64_t		when;
	int		found;
};

static int
test_mscan_cb(const char *digest, size_t len, int64_t when, void *arg)
{
	struct test_mscan	*m = arg;

	if (strcmp(digest, m->digest) == 0) {
		m->found = 1;
		m->len = len;
		m->when = when;
	}
	return 0;
}

static int64_t
test_mtime(struct cache_index *ci, const char *digest, size_t *len)
{
	struct test_mscan	m;

	memset(&m, 0, sizeof(m));
	snprintf(m.digest, sizeof(m.digest), "%s", digest);
	cache_index_manifest_scan(ci, NULL, 0, test_mscan_cb, &m);
	if (len != NULL)
		*len = m.len;
	return m.found ? m.when : -2;
}

static uint64_t
test_manifest_bytes(struct cache_index *ci)
{
	struct cache_index_stat	st;

	return cache_index_stat(ci, &st) == 0 ? st.is_manifest_bytes : 0;
}

/*
 * mtime: set by a commit, restarted by a tag validated to the manifest;
 * removal honours the cutoff and stamps a manifest that has none.
 */
static void
test_manifest_mtime(struct cache_index *ci)
{
	struct cache_tag_rec	 rec;
	char			 d1[DIGEST_STR_MAX], d2[DIGEST_STR_MAX];
	char			 d3[DIGEST_STR_MAX], *v[4];
	uint64_t		 b0, bytes;
	size_t			 len, removed;

	b0 = test_manifest_bytes(ci);
	test_digest(d1, 22, 1);
	test_digest(d2, 22, 2);
	test_digest(d3, 22, 3);
	cache_index_manifest_commit(ci, "m", "r", NULL, d1, "t",
	    (const unsigned char *)"0123456789", 10, 1000, NULL);
	cache_index_manifest_commit(ci, "m", "r", "t2", d2, "t",
	    (const unsigned char *)"abc", 3, 5000, NULL);
	cache_index_manifest_put(ci, d3, "t", (const unsigned char *)"xy", 2);
	is_int(test_mtime(ci, d1, &len), 1000, "mtime: set by the commit");
	is_int(len, 10, "mtime: the scan reports the manifest's size");
	is_int(test_mtime(ci, d3, NULL), -1, "mtime: none without a commit");
	is_int(test_manifest_bytes(ci), b0 + 15, "mtime: manifest bytes +15");

	memset(&rec, 0, sizeof(rec));
	snprintf(rec.digest, sizeof(rec.digest), "%s", d1);
	rec.validated = 3000;
	cache_index_tag_put(ci, "m", "r", "t1", &rec);
	is_int(test_mtime(ci, d1, NULL), 3000,
	    "mtime: a tag validated to it restarts it");

	v[0] = d1;
	v[1] = d2;
	v[2] = d3;
	v[3] = "sha256:absent";
	is_int(cache_index_manifest_del_many(ci, v, 4, 4000, 9000, &removed,
	    &bytes), 0, "del_many manifests");
	is_int(removed, 1, "del_many: only the one before the cutoff went");
	is_int(bytes, 10, "del_many: its 10 bytes");
	is_int(test_mtime(ci, d1, NULL), -2, "del_many: d1 gone");
	is_int(test_mtime(ci, d2, NULL), 5000, "del_many: d2 after the cutoff");
	is_int(test_mtime(ci, d3, NULL), 9000,
	    "del_many: d3 had no mtime: stamped now, not removed");
	is_int(test_manifest_bytes(ci), b0 + 5, "mtime: manifest bytes +5");
	is_int(cache_index_manifest_del(ci, d2), 0, "mtime: del d2");
	is_int(cache_index_manifest_del(ci, d3), 0, "mtime: del d3");
	is_int(test_manifest_bytes(ci), b0, "mtime: manifest bytes back");
	cache_index_tag_del(ci, "m", "r", "t1");
	cache_index_tag_del(ci, "m", "r", "t2");
}

/* A tag validated again since the walk saw it is kept. */
static void
test_tag_del_many(struct cache_index *ci)
{
	struct cache_tag_ent	v[3];
	struct cache_tag_rec	out;
	size_t			removed, i;

	memset(v, 0, sizeof(v));
	for (i = 0; i < 3; i++) {
		snprintf(v[i].te_upstream, sizeof(v[i].te_upstream), "dm");
		snprintf(v[i].te_repo, sizeof(v[i].te_repo), "r");
		snprintf(v[i].te_tag, sizeof(v[i].te_tag), "t%zu", i);
		v[i].te_rec = test_neg(100);
		cache_index_tag_put(ci, "dm", "r", v[i].te_tag, &v[i].te_rec);
	}
	v[1].te_rec.validated = 200;
	cache_index_tag_put(ci, "dm", "r", "t1", &v[1].te_rec);
	v[1].te_rec.validated = 100;		/* what the walk saw */
	uint64_t before = test_negatives(ci);
	is_int(cache_index_tag_del_many(ci, v, 3, &removed), 0,
	    "tag_del_many");
	is_int(removed, 2, "tag_del_many: 2 removed");
	is_int(cache_index_tag_get(ci, "dm", "r", "t1", &out), 0,
	    "tag_del_many: the one validated since is kept");
	is_int(test_negatives(ci), before - 2, "tag_del_many: total -2");
	cache_index_tag_del(ci, "dm", "r", "t1");
}

struct test_links {
	struct cache_link_ent	v[8];
	size_t			n;
};

static int
test_links_cb(const struct cache_link_ent *e, void *arg)
{
	struct test_links	*l = arg;

	if (strcmp(e->le_upstream, "ln") == 0 && l->n < 8)
		l->v[l->n++] = *e;
	return 0;
}

/* Links to a blob or a manifest stay; a link to nothing goes. */
static void
test_link_orphans(struct cache_index *ci)
{
	struct cache_blob_rec	b = { 1, 1, 1, 0 };
	struct test_links	l;
	char			db[DIGEST_STR_MAX], dm[DIGEST_STR_MAX];
	char			dn[DIGEST_STR_MAX];
	size_t			removed, i;
	int			flags_ok = 1;

	test_digest(db, 23, 1);
	test_digest(dm, 23, 2);
	test_digest(dn, 23, 3);
	cache_index_blob_commit(ci, "ln", "r", db, &b, NULL);
	cache_index_manifest_commit(ci, "ln", "r", NULL, dm, "t",
	    (const unsigned char *)"{}", 2, 1, NULL);
	cache_index_link_put(ci, "ln", "r", dn, 1);
	memset(&l, 0, sizeof(l));
	is_int(cache_index_link_scan(ci, NULL, 0, test_links_cb, &l), 0,
	    "links: scan");
	is_int(l.n, 3, "links: 3 links");
	for (i = 0; i < l.n; i++)
		if (l.v[i].le_has_blob != (strcmp(l.v[i].le_digest, db) == 0) ||
		    l.v[i].le_has_manifest !=
		    (strcmp(l.v[i].le_digest, dm) == 0))
			flags_ok = 0;
	ok(flags_ok, "links: the scan says which digest is a blob, which a "
	    "manifest");
	is_int(cache_index_link_del_orphans(ci, l.v, l.n, &removed), 0,
	    "links: del_orphans");
	is_int(removed, 1, "links: one orphan removed");
	is_int(cache_index_link_get(ci, "ln", "r", dn), 1,
	    "links: the orphan is gone");
	is_int(cache_index_link_get(ci, "ln", "r", db), 0,
	    "links: the blob's link stays");
	is_int(cache_index_link_get(ci, "ln", "r", dm), 0,
	    "links: the manifest's link stays");
	cache_index_blob_del(ci, db);
	is_int(cache_index_link_del_orphans(ci, l.v, l.n, &removed), 0,
	    "links: del_orphans again");
	is_int(removed, 1, "links: the blob's link goes once the blob does");
	cache_index_manifest_del(ci, dm);
}

/*
 * Another process removes negatives, a manifest and a blob: this one's
 * totals show it at once (they are a record in the index, not a count in
 * memory).
 */
static void
test_totals_shared(struct cache_index *ci, const char *dir)
{
	struct cache_index_stat	 st0, st;
	struct cache_tag_rec	 neg = test_neg(1);
	struct cache_blob_rec	 b = { 1000, 1, 1, 0 };
	char			 d[DIGEST_STR_MAX], db[DIGEST_STR_MAX];
	pid_t			 pid;
	int			 status = -1;

	cache_index_tag_put(ci, "rc", "r", "a", &neg);
	cache_index_tag_put(ci, "rc", "r", "b", &neg);
	test_digest(d, 24, 1);
	cache_index_manifest_commit(ci, "rc", "r", NULL, d, "t",
	    (const unsigned char *)"12345678", 8, 1, NULL);
	test_digest(db, 24, 2);
	cache_index_blob_put(ci, db, &b);
	cache_index_stat(ci, &st0);
	fflush(stdout);
	if ((pid = fork()) == -1)
		bail_out("fork");
	if (pid == 0) {
		struct cache_index	*other;

		/* LMDB: one environment per process, opened after fork. */
		if (cache_index_open(dir, 0, &other) != 0 ||
		    cache_index_tag_del(other, "rc", "r", "a") != 0 ||
		    cache_index_tag_del(other, "rc", "r", "b") != 0 ||
		    cache_index_manifest_del(other, d) != 0 ||
		    cache_index_blob_del(other, db) != 0)
			_exit(1);
		cache_index_close(other);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	is_int(status, 0, "totals: the other process removed 4 records");
	cache_index_stat(ci, &st);
	is_int(st.is_negatives, st0.is_negatives - 2,
	    "totals: 2 negatives fewer, seen at once");
	is_int(st.is_manifest_bytes, st0.is_manifest_bytes - 8,
	    "totals: 8 manifest bytes fewer");
	is_int(st.is_blob_bytes, st0.is_blob_bytes - 1000,
	    "totals: 1000 blob bytes fewer");
}

/* LMDB's statistics: entries per database, pages in use. */
static void
test_stat(struct cache_index *ci)
{
	struct cache_index_stat	st0, st;
	struct cache_blob_rec	b = { 5, 1, 1, 0 };
	unsigned char		big[20000];
	char			d[DIGEST_STR_MAX];

	memset(big, 'm', sizeof(big));
	is_int(cache_index_stat(ci, &st0), 0, "stat");
	ok(st0.is_bytes >= 4096, "stat: index bytes %llu",
	    (unsigned long long)st0.is_bytes);
	test_digest(d, 25, 1);
	cache_index_blob_commit(ci, "st", "r", d, &b, NULL);
	test_digest(d, 25, 2);
	cache_index_manifest_commit(ci, "st", "r", "v1", d, "t", big,
	    sizeof(big), 1, NULL);
	is_int(cache_index_stat(ci, &st), 0, "stat again");
	is_int(st.is_blobs, st0.is_blobs + 1, "stat: +1 blob");
	is_int(st.is_manifests, st0.is_manifests + 1, "stat: +1 manifest");
	is_int(st.is_tags, st0.is_tags + 1, "stat: +1 tag");
	is_int(st.is_links, st0.is_links + 2, "stat: +2 links");
	ok(st.is_bytes >= st0.is_bytes + sizeof(big),
	    "stat: the index grew by at least the manifest (%llu -> %llu)",
	    (unsigned long long)st0.is_bytes, (unsigned long long)st.is_bytes);
}

/* The lifecycle's index operations, in a directory of their own. */
static void
test_lifecycle(void)
{
	struct cache_index	*ci;
	char			 dir[512];

	test_path(dir, sizeof(dir), "life");
	if (cache_index_open(dir, 0, &ci) != 0) {
		ok(0, "life: open");
		return;
	}
	test_negative_cap(ci);
	test_negative_race(ci);
	test_scan_batches(ci);
	test_manifest_mtime(ci);
	test_tag_del_many(ci);
	test_link_orphans(ci);
	test_totals_shared(ci, dir);
	test_stat(ci);
	cache_index_close(ci);

	/* The totals are a record: the same after a reopen. */
	if (cache_index_open(dir, 0, &ci) != 0) {
		ok(0, "life: reopen");
		return;
	}
	is_int(test_negatives(ci), 54, "life: negatives counted at open");
	is_int(test_manifest_bytes(ci), 2 + 20000,
	    "life: manifest bytes counted at open");
	cache_index_close(ci);
}

/* Make dir's index one of before the lru, pin and totals databases. */
static void
test_make_old(const char *dir)
{
	static const char *const names[] = { "lru", "pin", "totals" };
	MDB_env		*env;
	MDB_txn		*txn;
	MDB_dbi		 dbi;
	size_t		 i;

	if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0 ||
	    mdb_env_open(env, dir, MDB_NOTLS, 0600) != 0 ||
	    mdb_txn_begin(env, NULL, 0, &txn) != 0)
		bail_out("lru: cannot open the index with LMDB");
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (mdb_dbi_open(txn, names[i], 0, &dbi) != 0 ||
		    mdb_drop(txn, dbi, 1) != 0)
			bail_out("lru: cannot drop a database");
	if (mdb_txn_commit(txn) != 0)
		bail_out("lru: commit");
	mdb_env_close(env);
}

static int
test_pin_cb(const char *digest, const struct cache_blob_rec *rec, void *arg)
{
	(void)digest;
	(void)rec;
	(*(int *)arg)++;
	return 0;
}

/* One eviction batch; the digests removed, in order, as their numbers. */
static size_t
test_evict(struct cache_index *ci, uint64_t want, size_t max, int *got)
{
	struct cache_evicted	v[8];
	struct cache_index_pos	pos;
	char			d[DIGEST_STR_MAX];
	size_t			n = 0, i;
	int			j;


	memset(&pos, 0, sizeof(pos));
	if (cache_index_blob_evict(ci, 1000, want, v, max, &pos, &n) != 0)
		return SIZE_MAX;
	for (i = 0; i < n; i++) {
		got[i] = 0;
		for (j = 1; j <= 6; j++) {
			test_digest(d, 30, (unsigned int)j);
			if (strcmp(d, v[i].digest) == 0)
				got[i] = j;
		}
	}
	return n;
}

static uint64_t
test_blob_bytes(struct cache_index *ci)
{
	struct cache_index_stat	st;

	return cache_index_stat(ci, &st) == 0 ? st.is_blob_bytes : UINT64_MAX;
}

/* Blobs 1..6: sizes 10..60; blob 2 pinned forever, blob 4's pin over. */
static void
test_lru_fill(struct cache_index *ci)
{
	static const int64_t	 access[] = { 600, 100, 500, 200, 300, 400 };
	struct cache_blob_rec	 b;
	char			 d[DIGEST_STR_MAX], *dp = d;
	int64_t			 when = 700;
	unsigned int		 i;

	for (i = 1; i <= 6; i++) {
		memset(&b, 0, sizeof(b));
		b.size = 10 * i;
		b.stored = 1;
		b.last_access = access[i - 1];
		b.pinned_until = i == 2 ? -1 : i == 4 ? 1 : 0;
		test_digest(d, 30, i);
		cache_index_blob_put(ci, d, &b);
	}
	is_int(test_blob_bytes(ci), 210, "lru: blob bytes 10 + .. + 60");
	test_digest(d, 30, 6);
	b.size = 61;
	b.last_access = 400;
	b.pinned_until = 0;
	cache_index_blob_put(ci, d, &b);
	is_int(test_blob_bytes(ci), 211, "lru: an overwrite counts its size "
	    "once");
	is_int(cache_index_blob_del(ci, d), 0, "lru: del");
	is_int(test_blob_bytes(ci), 150, "lru: a del gives its bytes back");
	is_int(cache_index_blob_del(ci, d), 1, "lru: del again: nothing");
	is_int(test_blob_bytes(ci), 150, "lru: ... and no bytes");
	b.size = 60;
	cache_index_blob_put(ci, d, &b);
	test_digest(d, 30, 5);
	is_int(cache_index_blob_touch_many(ci, &dp, &when, 1), 0,
	    "lru: touch blob 5 to 700");
	is_int(test_blob_bytes(ci), 210, "lru: a touch keeps the bytes");
}

/*
 * The lru order: least recently used first, pinned blobs skipped, a
 * touch moves a blob to the back, a batch stops at want bytes or max
 * records; the bytes follow.  Then the same index as one of an older
 * version: open counts it again.
 */
static void
test_lru(void)
{
	struct cache_index	*ci;
	struct cache_tag_rec	 neg = test_neg(1);
	struct cache_blob_rec	 b = { 10, 1, 50, 0 };
	struct cache_index_stat	 st;
	char			 dir[512], d[DIGEST_STR_MAX];
	int			 got[8], pins = 0;

	test_path(dir, sizeof(dir), "lru");
	if (cache_index_open(dir, 0, &ci) != 0) {
		ok(0, "lru: open");
		return;
	}
	test_lru_fill(ci);
	is_int(test_evict(ci, 1, 8, got), 1, "lru: 1 byte wanted: 1 blob");
	is_int(got[0], 4, "lru: blob 4 first (blob 2 is pinned, 4's pin is "
	    "over)");
	is_int(test_evict(ci, 70, 8, got), 2, "lru: 70 bytes: 2 blobs");
	is_int(got[0] * 10 + got[1], 63, "lru: blob 6 (400), then 3 (500)");
	is_int(test_evict(ci, 1000, 1, got), 1, "lru: max 1: 1 blob");
	is_int(got[0], 1, "lru: blob 1 (600)");
	is_int(test_evict(ci, 1000, 8, got), 1, "lru: all: 1 blob left "
	    "unpinned");
	is_int(got[0], 5, "lru: blob 5 (touched to 700) last");
	is_int(test_evict(ci, 1000, 8, got), 0, "lru: only the pinned blob "
	    "is left");
	is_int(test_blob_bytes(ci), 20, "lru: the pinned blob's bytes");
	cache_index_pin_foreach(ci, test_pin_cb, &pins);
	is_int(pins, 1, "lru: one pinned blob");
	test_digest(d, 30, 2);
	is_int(cache_index_blob_get(ci, d, &b), 0, "lru: blob 2 is kept");
	b.stored++;
	is_int(cache_index_blob_del_if(ci, d, &b), 1, "del_if: a record not "
	    "as expected stays");
	b.stored--;
	test_digest(d, 30, 6);
	cache_index_blob_put(ci, d, &b);
	is_int(cache_index_blob_del_if(ci, d, &b), 0, "del_if: the record "
	    "as expected goes");
	is_int(cache_index_blob_del_if(ci, d, &b), 1, "del_if: then nothing");
	is_int(test_blob_bytes(ci), 20, "del_if: its bytes went with it");
	test_digest(d, 30, 2);

	b.size = 10;
	b.pinned_until = 0;
	b.last_access = 60;
	test_digest(d, 30, 3);
	cache_index_blob_put(ci, d, &b);
	b.last_access = 50;
	test_digest(d, 30, 1);
	cache_index_blob_put(ci, d, &b);
	cache_index_tag_put(ci, "lru", "r", "gone", &neg);
	cache_index_close(ci);

	test_make_old(dir);
	if (cache_index_open(dir, 0, &ci) != 0) {
		ok(0, "lru: open an index of the older version");
		return;
	}
	cache_index_stat(ci, &st);
	is_int(st.is_blob_bytes, 40, "lru: old index: blob bytes counted");
	is_int(st.is_negatives, 1, "lru: old index: negatives counted");
	pins = 0;
	cache_index_pin_foreach(ci, test_pin_cb, &pins);
	is_int(pins, 1, "lru: old index: pins listed");
	is_int(test_evict(ci, 1000, 8, got), 2, "lru: old index: 2 to "
	    "evict");
	is_int(got[0] * 10 + got[1], 13, "lru: old index: blob 1 (50), "
	    "then 3 (60)");
	cache_index_close(ci);
}

/* Raw LMDB on dir's index (no cache_index open in this process). */
static void
test_raw(const char *dir, const char *db, const char *key, size_t klen,
    const char *val, size_t vlen)
{
	MDB_env		*env;
	MDB_txn		*txn;
	MDB_dbi		 dbi;
	MDB_val		 k = { klen, (void *)(uintptr_t)key };
	MDB_val		 v = { vlen, (void *)(uintptr_t)val };
	int		 rc;

	if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0 ||
	    mdb_env_open(env, dir, MDB_NOTLS, 0600) != 0 ||
	    mdb_txn_begin(env, NULL, 0, &txn) != 0 ||
	    mdb_dbi_open(txn, db, 0, &dbi) != 0)
		bail_out("raw: cannot open the index with LMDB");
	rc = val == NULL ? mdb_del(txn, dbi, &k, NULL) :
	    mdb_put(txn, dbi, &k, &v, 0);
	if (rc != 0 || mdb_txn_commit(txn) != 0)
		bail_out("raw: write");
	mdb_env_close(env);
}

/*
 * Eviction with 5,000 pinned blobs at the front of the lru order: a
 * batch reads a bounded number of keys (it removes nothing and is not
 * done), the next one reaches the unpinned blob.
 */
static void
test_evict_scan(void)
{
	struct cache_index	*ci;
	struct cache_index_pos	 pos;
	struct cache_evicted	 v[8];
	struct cache_blob_rec	 b;
	char			 dir[512], d[DIGEST_STR_MAX];
	size_t			 n = 99;
	unsigned int		 i;

	test_path(dir, sizeof(dir), "evscan");
	if (cache_index_open(dir, 0, &ci) != 0 ||
	    cache_index_set_nosync(ci) != 0) {
		ok(0, "evscan: open");
		return;
	}
	for (i = 1; i <= 5001; i++) {
		memset(&b, 0, sizeof(b));
		b.size = 7;
		b.stored = 1;
		b.last_access = i == 5001 ? 10000 : (int64_t)i;
		b.pinned_until = i == 5001 ? 0 : -1;
		test_digest(d, 31, i);
		cache_index_blob_put(ci, d, &b);
	}
	memset(&pos, 0, sizeof(pos));
	is_int(cache_index_blob_evict(ci, 1000, 1, v, 8, &pos, &n), 0,
	    "evscan: a batch");
	ok(n == 0 && !pos.ip_done, "evscan: the first batch reads at most "
	    "its share of the 5,000 pinned keys (removed %zu, done %d)", n,
	    pos.ip_done);
	while (n == 0 && !pos.ip_done)
		cache_index_blob_evict(ci, 1000, 1, v, 8, &pos, &n);
	test_digest(d, 31, 5001);
	ok(n == 1 && strcmp(v[0].digest, d) == 0, "evscan: a later batch "
	    "evicts the one unpinned blob");
	cache_index_close(ci);

	/* The totals record corrupt: counted again at open. */
	test_raw(dir, "totals", "totals", 6, "xyz", 3);
	if (cache_index_open(dir, 0, &ci) != 0) {
		ok(0, "evscan: open with a corrupt totals record");
		return;
	}
	is_int(test_blob_bytes(ci), 5000 * 7, "evscan: a corrupt totals "
	    "record is counted again at open");
	cache_index_close(ci);

	/* A blob record another version wrote (no lru key): counted again. */
	test_digest(d, 31, 6000);
	{
		unsigned char	raw[33] = { 1, 9 };	/* size 9, times 0 */

		test_raw(dir, "blob", d, strlen(d), (const char *)raw,
		    sizeof(raw));
	}
	test_digest(d, 31, 6001);
	test_raw(dir, "blob", d, strlen(d), "bad", 3);
	if (cache_index_open(dir, 0, &ci) != 0) {
		ok(0, "evscan: open after another version's write");
		return;
	}
	is_int(test_blob_bytes(ci), 5000 * 7 + 9, "evscan: the foreign "
	    "record is counted");
	is_int(cache_index_blob_get(ci, d, &b), 1, "evscan: a corrupt blob "
	    "record is dropped when counting");
	memset(&pos, 0, sizeof(pos));
	cache_index_blob_evict(ci, 1000, 1, v, 8, &pos, &n);
	test_digest(d, 31, 6000);
	ok(n == 1 && strcmp(v[0].digest, d) == 0, "evscan: ... and in the "
	    "lru order (last access 0: first)");
	cache_index_close(ci);
}

/* Records written before a close are there after a reopen. */
static void
test_persist(const char *dir)
{
	struct cache_index	*ci;
	struct cache_blob_rec	 b;
	struct cache_tag_rec	 t;
	unsigned char		*data = NULL;
	char			*mt = NULL, d[DIGEST_STR_MAX];
	size_t			 len;

	if (cache_index_open(dir, 0, &ci) != 0) {
		ok(0, "persist: reopen");
		return;
	}
	ok(1, "persist: reopen");
	test_digest(d, 7, 1);
	is_int(cache_index_blob_get(ci, d, &b), 0, "persist: blob");
	is_int(b.size, 123, "persist: blob record");
	test_digest(d, 6, 1);
	is_int(cache_index_manifest_get(ci, d, &mt, &data, &len), 0,
	    "persist: manifest");
	is_int(len, 25, "persist: manifest length");
	free(mt);
	free(data);
	is_int(cache_index_tag_get(ci, "ghcr.io", "org/app", "v1", &t), 0,
	    "persist: tag");
	is_str(t.digest, d, "persist: tag digest");
	is_int(cache_index_link_get(ci, "ghcr.io", "org/app", d), 0,
	    "persist: link");
	cache_index_close(ci);
}

int
main(void)
{
	struct cache_index	*ci = NULL;
	char			 dir[512];

	alarm(300);		/* a hang (a stuck writer lock) is a failure */
	if (mkdtemp(test_dir) == NULL)
		bail_out("mkdtemp");

	test_path(dir, sizeof(dir), "missing");
	rmdir(dir);
	is_int(cache_index_open(dir, 0, &ci), -1,
	    "open: missing directory -> -1");
	ok(ci == NULL, "open: no index on failure");

	test_path(dir, sizeof(dir), "index");
	is_int(cache_index_open(dir, 0, &ci), 0, "open: new index");
	if (ci == NULL) {
		test_rmtree(test_dir);
		bail_out("cannot open the index");
	}
	test_blob(ci);
	test_foreach(ci);
	test_manifest(ci);
	test_tag(ci);
	test_link(ci);
	test_commit(ci);
	test_limits(ci);
	cache_index_close(ci);

	test_persist(dir);
	test_map_full();
	test_threads();
	test_crash();
	test_lifecycle();
	test_lru();
	test_evict_scan();

	test_rmtree(test_dir);
	ok(access(test_dir, F_OK) == -1, "temp dir removed");
	return done_testing();
}
