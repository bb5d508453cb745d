/*
 * genindex.c — the bench's index generator (issue 12, bullet 5): fill a
 * cache directory with BLOBS blob records and TAGS tags, as a busy region
 * would have them, through the cache's own index calls.
 *
 *   genindex DIR UPSTREAM BLOBS TAGS
 *
 * Each blob gets an index record (a size from 1 KiB to 32 MiB, stored and
 * last used at random times in the last 30 days, 1% pinned), a link to
 * one of TAGS / 10 repositories, and a sparse file of its size, so that
 * start-up reconcile finds what it expects.  The files' bytes are not the
 * digest's (they are holes): the bench measures the index, never serves
 * them.  Each tag points at its own image manifest (sha256 of its bytes)
 * listing ten of the blobs.  The index is loaded without a sync per
 * commit and synced once at the end.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache_int.h"
#include "common/digest.h"
#include "common/log.h"
#include "common/xmalloc.h"

#define GEN_LAYERS	10
#define GEN_DAY		86400

static uint64_t	gen_state = 0x9e3779b97f4a7c15ULL;

/* splitmix64: the same index from the same arguments. */
static uint64_t
gen_rand(void)
{
	uint64_t	z = (gen_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Blob i's digest: 64 hex digits made from i, the same in every run. */
static void
gen_digest(uint64_t i, char out[DIGEST_STR_MAX])
{
	uint64_t	z = i * 0xd1342543de82ef95ULL + 1;
	int		k, n;

	n = snprintf(out, DIGEST_STR_MAX, "sha256:");
	for (k = 0; k < 4; k++) {
		z ^= z >> 29;
		z *= 0xbf58476d1ce4e5b9ULL;
		z ^= z >> 32;
		n += snprintf(out + n, (size_t)(DIGEST_STR_MAX - n),
		    "%016" PRIx64, z);
	}
}

static void
gen_file(const char *digest, uint64_t size)
{
	char	*path;
	int	 fd;

	if (cache_blob_dir_make(digest) != 0)
		fatal("mkdir for %s", digest);
	path = cache_blob_path(digest);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1 || ftruncate(fd, (off_t)size) != 0)
		fatal("%s", path);
	close(fd);
	free(path);
}

static void
gen_blobs(struct cache_index *ci, const char *up, uint64_t nblobs,
    uint64_t nrepos, int64_t now)
{
	struct cache_blob_rec	rec;
	char			digest[DIGEST_STR_MAX], repo[64];
	uint64_t		i;

	for (i = 0; i < nblobs; i++) {
		gen_digest(i, digest);
		snprintf(repo, sizeof(repo), "bench/r%" PRIu64, i % nrepos);
		memset(&rec, 0, sizeof(rec));
		rec.size = 1024 + gen_rand() % (32u << 20);
		rec.stored = now - (int64_t)(gen_rand() % (30 * GEN_DAY));
		rec.last_access = rec.stored +
		    (int64_t)(gen_rand() % (uint64_t)(now - rec.stored + 1));
		rec.pinned_until = gen_rand() % 100 == 0 ? -1 : 0;
		if (cache_index_blob_commit(ci, up, repo, digest, &rec,
		    NULL) != 0)
			fatalx("blob %" PRIu64 ": index write failed", i);
		gen_file(digest, rec.size);
		if ((i + 1) % 100000 == 0)
			log_info("genindex: %" PRIu64 " blobs", i + 1);
	}
}

/* Tag t of repository t / 10: an image manifest of ten blobs. */
static void
gen_tags(struct cache_index *ci, const char *up, uint64_t nblobs,
    uint64_t ntags, int64_t now)
{
	static const char	mt[] =
	    "application/vnd.oci.image.manifest.v1+json";
	struct digest		d;
	char			layer[DIGEST_STR_MAX], repo[64], tag[32];
	char			*body;
	size_t			len;
	uint64_t		t;
	int			k;

	body = xmalloc(4096);
	for (t = 0; t < ntags; t++) {
		gen_digest(t * GEN_LAYERS % nblobs, layer);
		len = (size_t)snprintf(body, 4096, "{\"schemaVersion\":2,"
		    "\"mediaType\":\"%s\",\"config\":{\"mediaType\":"
		    "\"application/vnd.oci.image.config.v1+json\","
		    "\"digest\":\"%s\",\"size\":1024},\"layers\":[", mt,
		    layer);
		for (k = 1; k <= GEN_LAYERS; k++) {
			gen_digest((t * GEN_LAYERS + (uint64_t)k) % nblobs,
			    layer);
			len += (size_t)snprintf(body + len, 4096 - len,
			    "%s{\"mediaType\":\"application/vnd.oci.image."
			    "layer.v1.tar+gzip\",\"digest\":\"%s\",\"size\":"
			    "%d}", k > 1 ? "," : "", layer, 1024 * k);
		}
		len += (size_t)snprintf(body + len, 4096 - len, "]}");
		digest_buf(DIGEST_SHA256, body, len, &d);
		snprintf(repo, sizeof(repo), "bench/r%" PRIu64,
		    t / GEN_LAYERS);
		snprintf(tag, sizeof(tag), "v%" PRIu64, t % GEN_LAYERS);
		if (cache_index_manifest_commit(ci, up, repo, tag, d.str, mt,
		    (unsigned char *)body, len, now, NULL) != 0)
			fatalx("tag %" PRIu64 ": index write failed", t);
	}
	free(body);
}

static uint64_t
gen_count(const char *s)
{
	char			*end;
	unsigned long long	 v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v == 0)
		fatalx("not a count: %s", s);
	return v;
}

int
main(int argc, char **argv)
{
	struct cache_index	*ci;
	uint64_t		 nblobs, ntags;
	char			*p;
	int64_t			 now = (int64_t)time(NULL);

	if (argc != 5) {
		fprintf(stderr, "usage: genindex DIR UPSTREAM BLOBS TAGS\n");
		return 2;
	}
	nblobs = gen_count(argv[3]);
	ntags = gen_count(argv[4]);
	cache_dir_set(argv[1]);
	xasprintf(&p, "%s/index", argv[1]);
	if (cache_dir_mkdir_p(p) != 0)
		fatal("%s", p);
	if (cache_index_open(p, 0, &ci) != 0 || cache_index_set_nosync(ci))
		fatalx("cannot open the index in %s", p);
	free(p);
	gen_blobs(ci, argv[2], nblobs, ntags / GEN_LAYERS + 1, now);
	gen_tags(ci, argv[2], nblobs, ntags, now);
	cache_index_close(ci);
	return 0;
}
