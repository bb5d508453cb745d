/*
 * cache_reconcile.c — start-up reconciliation of disk and index (nginx's
 * cache loader), on its own thread so that serving starts at once.  Each
 * blobs/<algo>/<ab>/ directory is read once, its names sorted, and
 * merged with the index's records under "<algo>:<ab>" (one read
 * transaction, in key order):
 *
 *  1. index records whose blob file is missing, or is not a regular file,
 *     are dropped;
 *  2. blob files with no index record (a crash between rename and commit,
 *     or files put there by hand) are hashed: adopted when the content
 *     matches the name, removed otherwise.
 *
 * There is no stat(2) per blob: readdir's d_type says what a name is,
 * and a file's size is checked where it matters, when cache_blob_open()
 * opens it (a blob is written, verified and fsync'd under another name
 * before it is renamed into place, so only a hand on the disk can
 * shorten one; the open drops such a record and the blob is fetched
 * again).  That keeps a start-up over a million blobs to one pass over
 * the directories and one over the index.
 *
 * Until a file is adopted it is not served: cache_blob_open() needs both.
 * Adopted blobs carry no repository links, so the first request for one
 * asks the upstream whether its repository holds it (proxy_blob.c).
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/log.h"
#include "common/xmalloc.h"

/* Set once the thread has finished (or could not start): /readyz. */
static atomic_int	cache_reconcile_done;

struct cache_reconcile_ent {
	char		*name;
	unsigned char	 type;		/* d_type */
	unsigned char	 matched;	/* an index record has this name */
};

/* One blobs/<algo>/<ab>/ directory and the merge's state over it. */
struct cache_reconcile_dir {
	const char			*algo;
	char				*path;
	int				 fd;	/* -1: no such directory */
	struct cache_reconcile_ent	*ent;
	size_t				 n, next;
	struct cache_reconcile_drop {
		char			*digest;
		struct cache_blob_rec	 rec;	/* as the walk saw it */
	}				*drop;	/* records to drop */
	size_t				 ndrop;
	unsigned			 dropped, adopted, removed;
};

static int
cache_reconcile_ent_cmp(const void *a, const void *b)
{
	const struct cache_reconcile_ent	*x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Read and sort the directory's names; a missing directory has none. */
static void
cache_reconcile_read(struct cache_reconcile_dir *d)
{
	struct dirent	*de;
	DIR		*dp;
	int		 fd;

	d->n = d->next = 0;
	if ((d->fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
	    O_NOFOLLOW)) == -1 || (fd = dup(d->fd)) == -1)
		return;
	if ((dp = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		d->ent = xreallocarray(d->ent, d->n + 1, sizeof(*d->ent));
		d->ent[d->n].name = xstrdup(de->d_name);
		d->ent[d->n].type = de->d_type;
		d->ent[d->n].matched = 0;
		d->n++;
	}
	closedir(dp);
	if (d->n > 1)
		qsort(d->ent, d->n, sizeof(*d->ent), cache_reconcile_ent_cmp);
}

/* 1: name is a regular file in the directory now (no link followed). */
static int
cache_reconcile_is_file(const struct cache_reconcile_dir *d, const char *name,
    unsigned char type)
{
	struct stat	st;
	char		*path;
	int		 rc;

	if (type == DT_REG)
		return 1;
	if (type != DT_UNKNOWN)
		return 0;
	if (d->fd != -1)
		return fstatat(d->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode);
	/* The directory may have been made since it was read. */
	xasprintf(&path, "%s/%s", d->path, name);
	rc = lstat(path, &st) == 0 && S_ISREG(st.st_mode);
	free(path);
	return rc;
}

static int
cache_reconcile_merge_cb(const char *digest, const struct cache_blob_rec *rec,
    void *arg)
{
	struct cache_reconcile_dir	*d = arg;
	struct cache_reconcile_ent	*e;
	const char			*name;
	int				 c = 1;

	name = digest + strlen(d->algo) + 1;	/* the prefix matched */
	while (d->next < d->n && (c = strcmp(d->ent[d->next].name,
	    name)) < 0)
		d->next++;
	if (d->next < d->n && c == 0) {
		e = &d->ent[d->next++];
		if (cache_reconcile_is_file(d, e->name, e->type)) {
			e->matched = 1;
			return 0;
		}
	} else if (cache_reconcile_is_file(d, name, DT_UNKNOWN))
		return 0;	/* renamed in after the directory was read */
	d->drop = xreallocarray(d->drop, d->ndrop + 1, sizeof(*d->drop));
	d->drop[d->ndrop].digest = xstrdup(digest);
	d->drop[d->ndrop++].rec = *rec;
	return 0;
}

/* One file under blobs/<algo>/<ab>/ with no index record: adopt or remove. */
static void
cache_reconcile_file(struct cache_reconcile_dir *d, const char *name)
{
	struct cache_blob_rec	 rec;
	struct digest		 want, got;
	char			*path, *ds;
	struct stat		 st;
	uint64_t		 size;
	int			 fd, ok;

	xasprintf(&path, "%s/%s", d->path, name);
	xasprintf(&ds, "%s:%s", d->algo, name);
	if (digest_parse(ds, &want) != 0 || strncmp(name, d->path +
	    strlen(d->path) - 2, 2) != 0) {
		log_warnx("cache: removing %s: not a blob name", path);
		unlink(path);
		d->removed++;
		goto done;
	}
	/* Committed since the index was read. */
	if (cache_index_blob_get(cache_idx, want.str, &rec) == 0)
		goto done;
	/* Not a FIFO or a device to hang on, not a link to follow. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK |
	    O_NOFOLLOW)) == -1 && errno != ELOOP)
		goto done;
	ok = fd != -1 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    digest_file(want.algo, fd, &got, &size) == 0 &&
	    strcmp(got.str, want.str) == 0;
	if (fd != -1)
		close(fd);
	if (!ok) {
		log_warnx("cache: removing %s: not a regular file whose "
		    "content matches its digest", path);
		unlink(path);
		d->removed++;
		goto done;
	}
	memset(&rec, 0, sizeof(rec));
	rec.size = size;
	rec.stored = rec.last_access = (int64_t)time(NULL);
	if (cache_index_blob_put(cache_idx, want.str, &rec) == 0) {
		log_info("cache: adopted %s (%llu bytes) found without an "
		    "index entry", want.str, (unsigned long long)size);
		d->adopted++;
	}
done:
	free(ds);
	free(path);
}

/* Merge one directory with its index records, then act on both sides. */
static void
cache_reconcile_dir(struct cache_reconcile_dir *d, const char *adir,
    const char *ab)
{
	char	prefix[DIGEST_STR_MAX];
	size_t	i;

	xasprintf(&d->path, "%s/%s", adir, ab);
	(void)snprintf(prefix, sizeof(prefix), "%s:%s", d->algo, ab);
	cache_reconcile_read(d);
	(void)cache_index_blob_foreach_prefix(cache_idx, prefix,
	    cache_reconcile_merge_cb, d);
	for (i = 0; i < d->ndrop; i++) {
		/* Not if a fill published it since the walk read it. */
		if (cache_index_blob_del_if(cache_idx, d->drop[i].digest,
		    &d->drop[i].rec) == 0) {
			log_warnx("cache: dropped index entry %s: its file "
			    "is missing or is not a regular file",
			    d->drop[i].digest);
			d->dropped++;
		}
		free(d->drop[i].digest);
	}
	d->ndrop = 0;
	for (i = 0; i < d->n; i++) {
		if (!d->ent[i].matched)
			cache_reconcile_file(d, d->ent[i].name);
		free(d->ent[i].name);
	}
	if (d->fd != -1)
		close(d->fd);
	free(d->path);
}

/* Names in blobs/<algo>/ other than the 256 "ab" directories. */
static void
cache_reconcile_stray(const char *adir)
{
	struct dirent	*de;
	DIR		*dp;

	if ((dp = opendir(adir)) == NULL)
		return;
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.' || (strlen(de->d_name) == 2 &&
		    strspn(de->d_name, "0123456789abcdef") == 2))
			continue;
		log_warnx("cache: %s/%s is not a blob directory; it is "
		    "left alone and never served", adir, de->d_name);
	}
	closedir(dp);
}

static void *
cache_reconcile_thread(void *arg)
{
	static const char *const	 algos[] = { "sha256", "sha512" };
	struct cache_reconcile_dir	 d;
	char				*adir, ab[3];
	unsigned			 b;
	size_t				 i;

	(void)arg;
	memset(&d, 0, sizeof(d));
	for (i = 0; i < sizeof(algos) / sizeof(algos[0]); i++) {
		d.algo = algos[i];
		xasprintf(&adir, "%s/blobs/%s", cache_dir(), algos[i]);
		for (b = 0; b < 256; b++) {
			(void)snprintf(ab, sizeof(ab), "%02x", b);
			cache_reconcile_dir(&d, adir, ab);
		}
		cache_reconcile_stray(adir);
		free(adir);
	}
	free(d.ent);
	free(d.drop);
	log_info("cache: reconciled: %u index entries dropped, %u files "
	    "adopted, %u removed", d.dropped, d.adopted, d.removed);
	atomic_store(&cache_reconcile_done, 1);
	return NULL;
}

int
cache_reconciled(void)
{
	return atomic_load(&cache_reconcile_done);
}

void
cache_reconcile_start(void)
{
	pthread_t	th;
	pthread_attr_t	attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, cache_reconcile_thread, NULL) != 0) {
		log_warn("cache: cannot start the reconcile thread");
		atomic_store(&cache_reconcile_done, 1);
	}
	pthread_attr_destroy(&attr);
}
