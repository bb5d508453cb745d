/*
 * cache_reconcile.c — start-up reconciliation of disk and index (nginx's
 * cache loader), on its own thread so that serving starts at once:
 *
 *  1. index entries whose blob file is missing or has the wrong size are
 *     dropped (cache_blob_open() also drops them lazily);
 *  2. blob files with no index entry (a crash between rename and commit,
 *     or files put there by hand) are hashed: adopted when the content
 *     matches the name, removed otherwise.
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

struct cache_reconcile_list {
	char	**v;
	size_t	  n;
};

static int
cache_reconcile_check_cb(const char *digest, const struct cache_blob_rec *rec,
    void *arg)
{
	struct cache_reconcile_list	*l = arg;
	struct stat			 st;
	char				*path;

	/* A link or a FIFO in a blob's place is not the blob. */
	if ((path = cache_blob_path(digest)) == NULL ||
	    lstat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != rec->size) {
		cache_usage_add(-(int64_t)rec->size);
		l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
		l->v[l->n++] = xstrdup(digest);
	}
	free(path);
	return 0;
}

/* One file under blobs/<algo>/<ab>/: adopt it or remove it. */
static void
cache_reconcile_file(const char *algo, const char *dir, const char *name,
    unsigned *adopted, unsigned *removed)
{
	struct cache_blob_rec	 rec;
	struct digest		 want, got;
	char			*path, *ds;
	struct stat		 st;
	uint64_t		 size;
	int			 fd, ok;

	xasprintf(&path, "%s/%s", dir, name);
	xasprintf(&ds, "%s:%s", algo, name);
	if (digest_parse(ds, &want) != 0) {
		log_warnx("cache: removing %s: not a blob name", path);
		unlink(path);
		(*removed)++;
		goto done;
	}
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
		(*removed)++;
		goto done;
	}
	memset(&rec, 0, sizeof(rec));
	rec.size = size;
	rec.stored = rec.last_access = (int64_t)time(NULL);
	if (cache_index_blob_put(cache_idx, want.str, &rec) == 0) {
		cache_usage_add((int64_t)size);
		log_info("cache: adopted %s (%llu bytes) found without an "
		    "index entry", want.str, (unsigned long long)size);
		(*adopted)++;
	}
done:
	free(ds);
	free(path);
}

static void *
cache_reconcile_thread(void *arg)
{
	struct cache_reconcile_list	 l = { NULL, 0 };
	static const char *const	 algos[] = { "sha256", "sha512" };
	struct dirent			*de, *fe;
	DIR				*d, *f;
	char				*adir, *sub;
	unsigned			 adopted = 0, removed = 0;
	size_t				 i;

	(void)arg;
	cache_index_blob_foreach(cache_idx, cache_reconcile_check_cb, &l);
	for (i = 0; i < l.n; i++) {
		log_warnx("cache: dropping index entry %s: its file is missing "
		    "or has the wrong size", l.v[i]);
		cache_index_blob_del(cache_idx, l.v[i]);
		free(l.v[i]);
	}
	free(l.v);

	for (i = 0; i < sizeof(algos) / sizeof(algos[0]); i++) {
		xasprintf(&adir, "%s/blobs/%s", cache_dir(), algos[i]);
		if ((d = opendir(adir)) == NULL) {
			free(adir);
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			xasprintf(&sub, "%s/%s", adir, de->d_name);
			if ((f = opendir(sub)) != NULL) {
				while ((fe = readdir(f)) != NULL)
					if (fe->d_name[0] != '.')
						cache_reconcile_file(algos[i],
						    sub, fe->d_name, &adopted,
						    &removed);
				closedir(f);
			}
			free(sub);
		}
		closedir(d);
		free(adir);
	}
	log_info("cache: reconciled: %zu index entries dropped, %u files "
	    "adopted, %u removed", l.n, adopted, removed);
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
