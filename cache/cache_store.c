/*
 * cache_store.c — the cache directory: start-up (directories, the LOCK
 * flock, emptying tmp/, opening the index), isolation, and the thin
 * blob/manifest/tag layer over the index.  Where things are in the
 * directory is cache_dir.c's.
 */
#include "autoconf.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/config.h"
#include "common/log.h"
#include "common/rbuf.h"
#include "common/xmalloc.h"

/* Upstreams with isolate = yes (names), from the config. */
static char			**cache_iso;
static size_t			 cache_niso;
static int			 cache_lock_fd = -1;

/* Leftover fills from a previous run are never trusted: delete them. */
static void
cache_tmp_clean(const char *tmpdir)
{
	DIR		*d;
	struct dirent	*de;
	char		*p;
	unsigned	 n = 0;

	if ((d = opendir(tmpdir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		xasprintf(&p, "%s/%s", tmpdir, de->d_name);
		if (unlink(p) == 0)
			n++;
		else
			log_warn("unlink %s", p);
		free(p);
	}
	closedir(d);
	if (n > 0)
		log_info("cache: removed %u unfinished fills from %s", n,
		    tmpdir);
}

/* Remember which upstreams are isolated (their content is their own). */
static void
cache_iso_init(const struct config *cfg)
{
	const struct config_upstream	*cu;

	for (cu = cfg->upstreams; cu != NULL; cu = cu->next)
		if (cu->isolate) {
			cache_iso = xreallocarray(cache_iso, cache_niso + 1,
			    sizeof(*cache_iso));
			cache_iso[cache_niso++] = xstrdup(cu->name);
		}
}

const char *
cache_isolated(const char *upstream)
{
	size_t	i;

	for (i = 0; upstream != NULL && i < cache_niso; i++)
		if (strcmp(cache_iso[i], upstream) == 0)
			return cache_iso[i];
	return NULL;
}

/*
 * May a request through upstream have the cached bytes of digest?  Not
 * when they came from another upstream with isolate = yes, whatever that
 * upstream says (DESIGN.md §8): 1 yes, 0 no.
 */
static int
cache_origin_ok(const char *digest, const char *upstream)
{
	char	origin[256];

	if (cache_niso == 0 || upstream == NULL)
		return 1;
	if (cache_index_origin_get(cache_idx, digest, origin,
	    sizeof(origin)) != 0)
		return 1;	/* shared, or unreadable: the link rules hold */
	return strcmp(origin, upstream) == 0;
}

int
cache_open(const struct config *cfg)
{
	char	*p;

	cache_iso_init(cfg);
	cache_fill_set_max(cfg->max_blob_size);
	cache_mem_init(cfg->cache_memory);
	cache_dir_set(cfg->cache_dir);
	if (cache_dir_mkdir_p(cache_dir()) != 0)
		return -1;
	xasprintf(&p, "%s/LOCK", cache_dir());
	cache_lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (cache_lock_fd == -1) {
		log_warn("open %s", p);
		free(p);
		return -1;
	}
	if (flock(cache_lock_fd, LOCK_EX | LOCK_NB) != 0) {
		log_warn("cache directory %s is in use by another regmirror "
		    "(flock %s)", cache_dir(), p);
		free(p);
		return -1;
	}
	free(p);
	xasprintf(&p, "%s/tmp", cache_dir());
	if (cache_dir_mkdir(p) != 0) {
		free(p);
		return -1;
	}
	cache_tmp_clean(p);
	free(p);
	xasprintf(&p, "%s/blobs", cache_dir());
	if (cache_dir_mkdir(p) != 0) {
		free(p);
		return -1;
	}
	free(p);
	xasprintf(&p, "%s/index", cache_dir());
	if (cache_dir_mkdir(p) != 0 ||
	    cache_index_open(p, 0, &cache_idx) != 0) {
		log_warnx("cache: cannot open index in %s", p);
		free(p);
		return -1;
	}
	free(p);
	cache_index_set_max_negative(cache_idx, (uint64_t)cfg->max_negative);
	cache_budget_set(cfg->max_size);
	log_info("cache: %s", cache_dir());
	return 0;
}

int
cache_open_shared(const struct config *cfg)
{
	char	*p;

	cache_iso_init(cfg);
	cache_dir_set(cfg->cache_dir);
	xasprintf(&p, "%s/index", cache_dir());
	if (access(p, F_OK) != 0) {
		log_warnx("cache: no index in %s (has the mirror run with "
		    "this dir?)", cache_dir());
		free(p);
		return -1;
	}
	if (cache_index_open(p, 0, &cache_idx) != 0) {
		free(p);
		return -1;
	}
	free(p);
	cache_index_set_max_negative(cache_idx, (uint64_t)cfg->max_negative);
	cache_budget_set(cfg->max_size);
	return 0;
}

void
cache_close(void)
{
	if (cache_fills_stop(CACHE_STOP_WAIT_MS) != 0) {
		/* A writer stuck (a hung fsync) may still commit: the index
		 * and the dir stay, for the exit to take. */
		log_warnx("cache: fill writers still running after %u ms: "
		    "the index is left open", CACHE_STOP_WAIT_MS);
		return;
	}
	cache_manager_stop();
	if (cache_idx != NULL)
		cache_index_close(cache_idx);
	cache_idx = NULL;
	if (cache_lock_fd != -1)
		close(cache_lock_fd);
	cache_lock_fd = -1;
	cache_dir_set(NULL);
	while (cache_niso > 0)
		free(cache_iso[--cache_niso]);
	free(cache_iso);
	cache_iso = NULL;
}

int
cache_blob_stat(const char *digest, uint64_t *size)
{
	struct cache_blob_rec	rec;
	int			rc;

	rc = cache_index_blob_get(cache_idx, digest, &rec);
	if (rc == 0)
		*size = rec.size;
	return rc;
}

int
cache_blob_open(const char *digest, const char *upstream, int *fdp,
    uint64_t *size)
{
	struct cache_blob_rec	 rec;
	struct stat		 st;
	char			*path;
	int			 rc, fd;

	if ((rc = cache_index_blob_get(cache_idx, digest, &rec)) != 0)
		return rc;
	if (!cache_origin_ok(digest, upstream))
		return 1;
	if ((path = cache_blob_path(digest)) == NULL)
		return 1;
	/* Never a link to follow or a FIFO to hang a worker on. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != rec.size) {
		/* The index is ahead of the disk: forget the record. */
		log_warnx("cache: blob %s: file %s, dropping index entry",
		    digest, fd == -1 ? "missing" : "is not the blob");
		if (fd != -1)
			close(fd);
		(void)cache_index_blob_del(cache_idx, digest);
		free(path);
		return 1;
	}
	free(path);
	*fdp = fd;
	*size = rec.size;
	cache_blob_touch(digest);
	return 0;
}

int
cache_blob_linked(const char *upstream, const char *repo, const char *digest)
{
	return cache_index_link_get(cache_idx, upstream, repo, digest);
}

int
cache_blob_link(const char *upstream, const char *repo, const char *digest)
{
	return cache_index_link_put(cache_idx, upstream, repo, digest,
	    (int64_t)time(NULL));
}

int
cache_manifest_get(const char *digest, const char *upstream,
    char **media_type, unsigned char **data, size_t *len)
{
	if (!cache_origin_ok(digest, upstream))
		return 1;
	return cache_index_manifest_get(cache_idx, digest, media_type, data,
	    len);
}

int
cache_manifest_hold(const char *digest, const char *upstream,
    struct cache_mem_hold *h)
{
	char		*ctype;
	unsigned char	*data;
	size_t		 len;

	if (!cache_origin_ok(digest, upstream))
		return 1;
	if (cache_mem_get(digest, -1, h) == 0)
		return 0;
	if (cache_index_manifest_get(cache_idx, digest, &ctype, &data,
	    &len) != 0)
		return 1;
	h->body = rbuf_take(data, len);
	h->ctype = ctype;
	h->age_ms = 0;
	cache_mem_put(digest, rbuf_ref(h->body), ctype, NULL, NULL);
	return 0;
}

int
cache_manifest_has(const char *digest, const char *upstream)
{
	return cache_origin_ok(digest, upstream) &&
	    cache_index_manifest_exists(cache_idx, digest) == 0;
}

int
cache_manifest_put(const char *upstream, const char *repo, const char *tag,
    const char *digest, const char *media_type, const unsigned char *data,
    size_t len)
{
	return cache_index_manifest_commit(cache_idx, upstream, repo, tag,
	    digest, media_type, data, len, (int64_t)time(NULL),
	    cache_isolated(upstream));
}

int
cache_tag_get(const char *upstream, const char *repo, const char *tag,
    char *digest, int64_t *validated)
{
	struct cache_tag_rec	rec;
	int			rc;

	rc = cache_index_tag_get(cache_idx, upstream, repo, tag, &rec);
	if (rc == 0) {
		memcpy(digest, rec.digest, DIGEST_STR_MAX);
		digest[DIGEST_STR_MAX - 1] = '\0';
		*validated = rec.validated;
	}
	return rc;
}

int
cache_tag_validated(const char *upstream, const char *repo, const char *tag,
    const char *digest)
{
	struct cache_tag_rec	rec;

	memset(&rec, 0, sizeof(rec));
	snprintf(rec.digest, sizeof(rec.digest), "%s", digest);
	rec.validated = (int64_t)time(NULL);
	return cache_index_tag_put(cache_idx, upstream, repo, tag, &rec);
}

struct cache_tags_of {
	const char	*upstream, *repo;
	void		(*cb)(const char *, const char *, void *);
	void		*arg;
};

static int
cache_tags_of_cb(const char *up, const char *repo, const char *tag,
    const struct cache_tag_rec *rec, void *arg)
{
	struct cache_tags_of	*t = arg;

	if (strcmp(up, t->upstream) == 0 && strcmp(repo, t->repo) == 0 &&
	    strcmp(rec->digest, CACHE_TAG_NEGATIVE) != 0)
		t->cb(tag, rec->digest, t->arg);
	return 0;
}

int
cache_tags_of(const char *upstream, const char *repo,
    void (*cb)(const char *tag, const char *digest, void *), void *arg)
{
	struct cache_tags_of	t = { upstream, repo, cb, arg };

	return cache_index_tag_foreach(cache_idx, cache_tags_of_cb, &t);
}

int
cache_tag_delete(const char *upstream, const char *repo, const char *tag)
{
	return cache_index_tag_del(cache_idx, upstream, repo, tag);
}

int
cache_meta_get(const char *key, char **val)
{
	return cache_index_meta_get(cache_idx, key, val);
}

int
cache_meta_put(const char *key, const char *val)
{
	return cache_index_meta_put(cache_idx, key, val);
}
