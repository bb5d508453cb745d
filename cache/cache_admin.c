/*
 * cache_admin.c — the cache's life after a blob is stored, apart from the
 * budget (cache_budget.c): pins, verify, listing, and the manager thread
 * that every tick flushes access times and keeps to the budget, and every
 * [cache] gc_interval runs the index's lifecycle (cache_gc.c).  Used by
 * the daemon's cache manager thread and by "regmirror cache ...", which
 * may run while the daemon does (LMDB is multi-process safe).
 *
 * Calls the budget, gc, the index and the directory's layout; of the
 * cache's files only the store calls it (cache_close() stops the
 * manager).
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/log.h"
#include "common/xmalloc.h"

#define CACHE_MANAGER_TICK	2	/* seconds */

/* The manager thread; cache_manager_stop() ends it. */
static pthread_mutex_t	 cache_mgr_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 cache_mgr_cv = PTHREAD_COND_INITIALIZER;
static int		 cache_mgr_stopping;
static int		 cache_mgr_running;
static pthread_t	 cache_mgr_thread;
static uint64_t		 cache_mgr_refused;	/* at the last pass */

int
cache_blob_pin(const char *digest, int64_t until)
{
	struct cache_blob_rec	rec;
	int			rc;

	if ((rc = cache_index_blob_get(cache_idx, digest, &rec)) != 0)
		return rc;
	rec.pinned_until = until;
	return cache_index_blob_put(cache_idx, digest, &rec);
}

/* Verify: re-hash every blob; quarantine the ones that do not match. */
struct cache_verify {
	char		**bad;
	size_t		  nbad;
	size_t		  checked;
	void		(*progress)(const char *, int, void *);
	void		 *arg;
};

static int
cache_verify_cb(const char *digest, const struct cache_blob_rec *rec,
    void *arg)
{
	struct cache_verify	*v = arg;
	struct digest		 want, got;
	uint64_t		 size;
	char			*path;
	int			 fd, ok = 0;

	if (digest_parse(digest, &want) != 0 ||
	    (path = cache_blob_path(digest)) == NULL)
		return 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) != -1) {
		ok = digest_file(want.algo, fd, &got, &size) == 0 &&
		    size == rec->size && strcmp(got.str, want.str) == 0;
		close(fd);
	}
	free(path);
	v->checked++;
	if (v->progress != NULL)
		v->progress(digest, ok, v->arg);
	if (!ok) {
		v->bad = xreallocarray(v->bad, v->nbad + 1, sizeof(*v->bad));
		v->bad[v->nbad++] = xstrdup(digest);
	}
	return 0;
}

int
cache_verify_all(size_t *checked, size_t *bad,
    void (*progress)(const char *digest, int ok, void *), void *arg)
{
	struct cache_verify	 v = { NULL, 0, 0, progress, arg };
	char			*path, *qdir, *qpath;
	size_t			 i;

	if (cache_index_blob_foreach(cache_idx, cache_verify_cb, &v) != 0)
		return -1;
	xasprintf(&qdir, "%s/quarantine", cache_dir());
	(void)mkdir(qdir, 0755);
	for (i = 0; i < v.nbad; i++) {
		path = cache_blob_path(v.bad[i]);
		xasprintf(&qpath, "%s/%s", qdir, v.bad[i]);
		/* Out of the index first: it is never served again. */
		cache_index_blob_del(cache_idx, v.bad[i]);
		if (path != NULL && rename(path, qpath) != 0 && errno != ENOENT)
			log_warn("cache: quarantine %s", path);
		log_warnx("cache: %s is corrupt: moved to %s", v.bad[i], qpath);
		free(path);
		free(qpath);
		free(v.bad[i]);
	}
	free(v.bad);
	free(qdir);
	*checked = v.checked;
	*bad = v.nbad;
	return 0;
}

/* Wait one tick; 1 when the manager is to stop. */
static int
cache_manager_wait(void)
{
	struct timespec	ts;
	int		stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += CACHE_MANAGER_TICK;
	pthread_mutex_lock(&cache_mgr_mtx);
	while (!cache_mgr_stopping && pthread_cond_timedwait(&cache_mgr_cv,
	    &cache_mgr_mtx, &ts) == 0)
		;
	stop = cache_mgr_stopping;
	pthread_mutex_unlock(&cache_mgr_mtx);
	return stop;
}

/* One lifecycle pass over the index; a line when it removed something. */
static void
cache_lifecycle_pass(const struct config *cfg)
{
	struct cache_gc_opts	o = { cfg, cfg->gc_grace, 0, 0 };
	struct cache_gc_result	r;
	struct cache_index_stat	st;

	if (cache_gc(&o, &r) != 0) {
		log_warnx("cache: index lifecycle pass failed");
		return;
	}
	if (cache_index_stat(cache_idx, &st) != 0)
		return;
	if (r.negatives + r.tags + r.manifests + r.links > 0)
		log_info("cache: index lifecycle: removed %zu negative "
		    "entries, %zu tags, %zu manifests (%llu bytes), %zu "
		    "links; %llu negative entries left", r.negatives, r.tags,
		    r.manifests, (unsigned long long)r.manifest_bytes,
		    r.links, (unsigned long long)st.is_negatives);
	if (st.is_neg_refused > cache_mgr_refused)
		log_warnx("cache: %llu upstream 404s not remembered since "
		    "the last pass: max_negative (%llu) entries are stored",
		    (unsigned long long)(st.is_neg_refused -
		    cache_mgr_refused), (unsigned long long)st.is_max_negative);
	cache_mgr_refused = st.is_neg_refused;
}

/*
 * The daemon's cache manager: flush access times, keep to the budget,
 * and every gc_interval run the index's lifecycle.  It holds no
 * transaction between steps, and each step's write transactions are
 * small batches.
 */
static void *
cache_manager_thread(void *arg)
{
	const struct config	*cfg = arg;
	time_t			 next_gc;

	next_gc = time(NULL) + cfg->gc_interval;
	while (!cache_manager_wait()) {
		cache_budget_flush();
		if (time(NULL) >= next_gc) {
			cache_lifecycle_pass(cfg);
			next_gc = time(NULL) + cfg->gc_interval;
		}
		cache_budget_keep();
	}
	return NULL;
}

/* cfg must outlive the manager: cache_close() stops it. */
void
cache_manager_start(const struct config *cfg)
{
	if (pthread_create(&cache_mgr_thread, NULL, cache_manager_thread,
	    (void *)(uintptr_t)cfg) != 0) {
		log_warn("cache: cannot start the cache manager");
		return;
	}
	cache_mgr_running = 1;
}

void
cache_manager_stop(void)
{
	if (!cache_mgr_running)
		return;
	pthread_mutex_lock(&cache_mgr_mtx);
	cache_mgr_stopping = 1;
	pthread_cond_signal(&cache_mgr_cv);
	pthread_mutex_unlock(&cache_mgr_mtx);
	pthread_join(cache_mgr_thread, NULL);
	cache_mgr_running = 0;
	cache_mgr_stopping = 0;
}

/*
 * The listing goes in batches, each copied out of its read transaction
 * before the callbacks see it: a slow reader of the output ("cache ls |
 * less", paused) holds no snapshot of the index, so the daemon's freed
 * pages stay reusable.
 */
#define CACHE_LS_BATCH	256

struct cache_ls_batch {
	struct cache_ls_tag_copy {
		char	 up[CACHE_INDEX_UPSTREAM_MAX + 1];
		char	 repo[CACHE_INDEX_REPO_MAX + 1];
		char	 tag[CACHE_INDEX_TAGNAME_MAX + 1];
		struct cache_tag_rec rec;
	}		 t[CACHE_LS_BATCH];
	struct cache_ls_blob_copy {
		char	 digest[DIGEST_STR_MAX];
		struct cache_blob_rec rec;
	}		 b[CACHE_LS_BATCH];
	size_t		 n;
};

static int
cache_ls_tag_copy(const char *up, const char *repo, const char *tag,
    const struct cache_tag_rec *rec, void *arg)
{
	struct cache_ls_batch		*b = arg;
	struct cache_ls_tag_copy	*t = &b->t[b->n++];

	snprintf(t->up, sizeof(t->up), "%s", up);
	snprintf(t->repo, sizeof(t->repo), "%s", repo);
	snprintf(t->tag, sizeof(t->tag), "%s", tag);
	t->rec = *rec;
	return 0;
}

static int
cache_ls_blob_copy(const char *digest, const struct cache_blob_rec *rec,
    void *arg)
{
	struct cache_ls_batch		*b = arg;
	struct cache_ls_blob_copy	*c = &b->b[b->n++];

	snprintf(c->digest, sizeof(c->digest), "%s", digest);
	c->rec = *rec;
	return 0;
}

static int
cache_ls_tags(struct cache_ls_batch *b, int (*cb)(const struct cache_ls_tag *,
    void *), void *arg)
{
	struct cache_index_pos	pos;
	struct cache_ls_tag	t;
	size_t			i;

	memset(&pos, 0, sizeof(pos));
	while (!pos.ip_done) {
		b->n = 0;
		if (cache_index_tag_scan(cache_idx, &pos, CACHE_LS_BATCH,
		    cache_ls_tag_copy, b) != 0)
			return -1;
		for (i = 0; i < b->n; i++) {
			t.upstream = b->t[i].up;
			t.repo = b->t[i].repo;
			t.tag = b->t[i].tag;
			t.digest = strcmp(b->t[i].rec.digest,
			    CACHE_TAG_NEGATIVE) == 0 ? NULL :
			    b->t[i].rec.digest;
			t.validated = b->t[i].rec.validated;
			if (cb(&t, arg) != 0)
				return 0;
		}
	}
	return 0;
}

static int
cache_ls_blobs(struct cache_ls_batch *b, int (*cb)(
    const struct cache_ls_blob *, void *), void *arg)
{
	struct cache_index_pos	pos;
	struct cache_ls_blob	c;
	size_t			i;

	memset(&pos, 0, sizeof(pos));
	while (!pos.ip_done) {
		b->n = 0;
		if (cache_index_blob_scan(cache_idx, &pos, CACHE_LS_BATCH,
		    cache_ls_blob_copy, b) != 0)
			return -1;
		for (i = 0; i < b->n; i++) {
			c.digest = b->b[i].digest;
			c.size = b->b[i].rec.size;
			c.stored = b->b[i].rec.stored;
			c.last_access = b->b[i].rec.last_access;
			c.pinned_until = b->b[i].rec.pinned_until;
			if (cb(&c, arg) != 0)
				return 0;
		}
	}
	return 0;
}

int
cache_ls(int (*tag_cb)(const struct cache_ls_tag *, void *),
    int (*blob_cb)(const struct cache_ls_blob *, void *), void *arg)
{
	struct cache_ls_batch	*b = xcalloc(1, sizeof(*b));
	int			 rc;

	rc = cache_ls_tags(b, tag_cb, arg) != 0 ||
	    cache_ls_blobs(b, blob_cb, arg) != 0 ? -1 : 0;
	free(b);
	return rc;
}
