/*
 * cache_dir.c — where things are in the cache directory: its root, the
 * file of each blob (blobs/<algo>/<ab>/<hex>) and the directories on the
 * way, and the index opened in it (cache_idx).  cache_open()
 * (cache_store.c) sets them; the store, fills, reconcile, the budget, gc
 * and verify read them.
 *
 * It calls nothing else in cache/.  It is small, but it is the bottom of
 * the module's call graph: every file that needs a blob's path gets it
 * here instead of from the store, which calls most of them.
 */
#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/digest.h"
#include "common/log.h"
#include "common/xmalloc.h"

static char		*cache_root;
struct cache_index	*cache_idx;

void
cache_dir_set(const char *root)
{
	free(cache_root);
	cache_root = root != NULL ? xstrdup(root) : NULL;
}

const char *
cache_dir(void)
{
	return cache_root;
}

/*
 * Can the cache take a new file?  A probe file is made in tmp/ (where
 * fills start) with one byte written and removed: a read-only mount, a
 * full disk or a lost directory all show (root ignores modes, so
 * access(2) would not).  The answer is kept for a second: /readyz and
 * /metrics may be asked often, by anyone who reaches the admin port.
 * The probe's name has no leading dot, so a start-up after a crash
 * empties it from tmp/ with the fills' leftovers.  0, or -1 and why.
 */
int
cache_dir_writable(char *err, size_t errlen)
{
	static pthread_mutex_t	 mtx = PTHREAD_MUTEX_INITIALIZER;
	static time_t		 last;
	static int		 last_rc;
	static char		 last_err[256];
	char			*path;
	int			 fd, rc = 0;
	time_t			 now = time(NULL);

	pthread_mutex_lock(&mtx);
	if (last != 0 && now == last) {
		snprintf(err, errlen, "%s", last_err);
		rc = last_rc;
		pthread_mutex_unlock(&mtx);
		return rc;
	}
	last_err[0] = '\0';
	if (cache_root == NULL) {
		snprintf(last_err, sizeof(last_err), "no cache directory");
		rc = -1;
	} else {
		xasprintf(&path, "%s/tmp/readyz-probe.XXXXXX", cache_root);
		if ((fd = mkstemp(path)) == -1 || write(fd, "", 1) != 1) {
			snprintf(last_err, sizeof(last_err), "%s/tmp: %s",
			    cache_root, strerror(errno));
			rc = -1;
		}
		if (fd != -1) {
			close(fd);
			unlink(path);
		}
		free(path);
	}
	last = now;
	last_rc = rc;
	snprintf(err, errlen, "%s", last_err);
	pthread_mutex_unlock(&mtx);
	return rc;
}

int
cache_dir_mkdir(const char *path)
{
	if (mkdir(path, 0755) != 0 && errno != EEXIST) {
		log_warn("mkdir %s", path);
		return -1;
	}
	return 0;
}

int
cache_dir_mkdir_p(const char *path)
{
	char	buf[PATH_MAX], *p;

	if (strlen(path) >= sizeof(buf))
		return -1;
	strcpy(buf, path);
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (cache_dir_mkdir(buf) != 0)
			return -1;
		*p = '/';
	}
	return cache_dir_mkdir(buf);
}

/* "<dir>/blobs/sha256/ab/abcdef..." for a valid digest string. */
char *
cache_blob_path(const char *digest)
{
	struct digest	 d;
	char		*p;

	if (digest_parse(digest, &d) != 0)
		return NULL;
	xasprintf(&p, "%s/blobs/%s/%.2s/%s", cache_root,
	    digest_algo_name(d.algo), d.hex, d.hex);
	return p;
}

int
cache_blob_dir_make(const char *digest)
{
	struct digest	 d;
	char		*p;
	int		 rc;

	if (digest_parse(digest, &d) != 0)
		return -1;
	xasprintf(&p, "%s/blobs/%s/%.2s", cache_root,
	    digest_algo_name(d.algo), d.hex);
	rc = cache_dir_mkdir_p(p);
	free(p);
	return rc;
}
