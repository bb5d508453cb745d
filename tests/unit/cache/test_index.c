/*
 * test_index.c — unit tests for cache/cache_index.c, the LMDB index: every
 * database's put/get/del, the commit transactions, key limits, persistence
 * across close/reopen, a full map, concurrent writers, and a writer process
 * killed mid-transaction.  Everything lives in a mkdtemp directory that is
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
	    type, m1, sizeof(m1), 1700000000, NULL), 0, "commit: manifest with tag");
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
	    "", d2, type, m2, sizeof(m2), 1, NULL), -1, "commit: empty tag -> -1");
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

	test_rmtree(test_dir);
	ok(access(test_dir, F_OK) == -1, "temp dir removed");
	return done_testing();
}
