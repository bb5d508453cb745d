/*
 * cache_admin.c — the cache's life after a blob is stored: access times,
 * the byte budget (LRU eviction between high and low watermarks, never
 * pinned content), pins, verify, usage and the manager thread that runs
 * the index's lifecycle (cache_gc.c).  Used by the daemon's cache manager
 * thread and by "regmirror cache ...", which may run while the daemon
 * does (LMDB is multi-process safe).
 *
 * The budget counts blob files and the index's pages in use (manifests,
 * tags and links live there): eviction removes least recently used
 * unpinned blobs, and the lifecycle pass removes what nothing references.
 *
 * Deleting a blob is: index record first, then the file.  A reader that
 * already opened the file keeps streaming from its descriptor; a fill in
 * progress lives in tmp/ and is not in blobs/ until it is published, so
 * nothing is deleted from under a reader.
 *
 * Access times are recorded in memory on every hit and written to the
 * index in one transaction every few seconds by the manager thread: no
 * disk write per request.
 */
#include "autoconf.h"

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

#include <jansson.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/xmalloc.h"

#define CACHE_TOUCH_MAX		4096	/* access times kept between flushes */
#define CACHE_TOUCH_RECENT	16	/* entries checked for a repeat */
#define CACHE_MANAGER_TICK	2	/* seconds */
#define CACHE_EVICT_BATCH	256	/* blobs per tick, so serving never
					   waits on a long transaction */

static pthread_mutex_t	 cache_touch_mtx = PTHREAD_MUTEX_INITIALIZER;
static char		*cache_touch_digest[CACHE_TOUCH_MAX];
static int64_t		 cache_touch_when[CACHE_TOUCH_MAX];
static size_t		 cache_ntouch;
static _Atomic uint64_t	 cache_total_bytes;
static uint64_t		 cache_max_bytes;

/* The manager thread; cache_manager_stop() ends it. */
static pthread_mutex_t	 cache_mgr_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 cache_mgr_cv = PTHREAD_COND_INITIALIZER;
static int		 cache_mgr_stopping;
static int		 cache_mgr_running;
static pthread_t	 cache_mgr_thread;
static uint64_t		 cache_mgr_refused;	/* at the last pass */

void
cache_blob_touch(const char *digest)
{
	int64_t	now = (int64_t)time(NULL);
	size_t	i;

	/*
	 * Constant work per hit: only the most recent entries are checked
	 * for a repeat; a repeat further back costs one slot, and when the
	 * batch is full until the next flush, the hit goes unrecorded (its
	 * blob's next hit records it).
	 */
	pthread_mutex_lock(&cache_touch_mtx);
	for (i = cache_ntouch; i > 0 && i + CACHE_TOUCH_RECENT > cache_ntouch;
	    i--)
		if (strcmp(cache_touch_digest[i - 1], digest) == 0) {
			cache_touch_when[i - 1] = now;
			break;
		}
	if ((i == 0 || i + CACHE_TOUCH_RECENT <= cache_ntouch) &&
	    cache_ntouch < CACHE_TOUCH_MAX) {
		cache_touch_digest[cache_ntouch] = xstrdup(digest);
		cache_touch_when[cache_ntouch++] = now;
	}
	pthread_mutex_unlock(&cache_touch_mtx);
}

static void
cache_touch_flush(void)
{
	char	*d[CACHE_TOUCH_MAX];
	int64_t	 w[CACHE_TOUCH_MAX];
	size_t	 n, i;

	pthread_mutex_lock(&cache_touch_mtx);
	n = cache_ntouch;
	memcpy(d, cache_touch_digest, n * sizeof(*d));
	memcpy(w, cache_touch_when, n * sizeof(*w));
	cache_ntouch = 0;
	pthread_mutex_unlock(&cache_touch_mtx);
	if (n > 0)
		cache_index_blob_touch_many(cache_idx, d, w, n);
	for (i = 0; i < n; i++)
		free(d[i]);
}

void
cache_usage_add(int64_t bytes)
{
	if (bytes >= 0)
		atomic_fetch_add(&cache_total_bytes, (uint64_t)bytes);
	else
		atomic_fetch_sub(&cache_total_bytes, (uint64_t)-bytes);
}

static int
cache_du_cb(const char *digest, const struct cache_blob_rec *rec, void *arg)
{
	struct cache_du	*du = arg;
	int64_t		 now = (int64_t)time(NULL);

	(void)digest;
	du->blobs++;
	du->bytes += rec->size;
	if (rec->pinned_until == -1 || rec->pinned_until > now) {
		du->pinned_blobs++;
		du->pinned_bytes += rec->size;
	}
	return 0;
}

static int
cache_du_tag_cb(const char *up, const char *repo, const char *tag,
    const struct cache_tag_rec *rec, void *arg)
{
	struct cache_du	*du = arg;

	(void)up;
	(void)repo;
	(void)tag;
	if (strcmp(rec->digest, CACHE_TAG_NEGATIVE) != 0)
		du->tags++;
	else
		du->negative_tags++;
	return 0;
}

static int
cache_du_manifest_cb(const char *digest, size_t len, int64_t when, void *arg)
{
	struct cache_du	*du = arg;

	(void)digest;
	(void)when;
	du->manifests++;
	du->manifest_bytes += len;
	return 0;
}

uint64_t
cache_usage_bytes(void)
{
	return atomic_load(&cache_total_bytes);
}

uint64_t
cache_budget_bytes(void)
{
	return cache_max_bytes;
}

void
cache_budget_set(uint64_t max_bytes)
{
	cache_max_bytes = max_bytes;
}

/* Blobs, tags and manifests by walking them; links and pages by stat. */
int
cache_du(struct cache_du *du)
{
	struct cache_index_stat	st;

	memset(du, 0, sizeof(*du));
	if (cache_index_blob_foreach(cache_idx, cache_du_cb, du) != 0 ||
	    cache_index_tag_foreach(cache_idx, cache_du_tag_cb, du) != 0 ||
	    cache_index_manifest_scan(cache_idx, NULL, 0,
	    cache_du_manifest_cb, du) != 0 ||
	    cache_index_stat(cache_idx, &st) != 0)
		return -1;
	du->links = st.is_links;
	du->index_bytes = st.is_bytes;
	du->used_bytes = du->bytes + du->index_bytes;
	du->max_negative = st.is_max_negative;
	du->max_bytes = cache_max_bytes;
	return 0;
}

/* No walk: counts from LMDB, bytes from the running totals. */
int
cache_stats(struct cache_stats *s)
{
	struct cache_index_stat	st;

	memset(s, 0, sizeof(*s));
	if (cache_index_stat(cache_idx, &st) != 0)
		return -1;
	s->blobs = st.is_blobs;
	s->bytes = atomic_load(&cache_total_bytes);
	s->manifests = st.is_manifests;
	s->manifest_bytes = st.is_manifest_bytes;
	s->negative_tags = st.is_negatives;
	s->tags = st.is_tags > st.is_negatives ?
	    st.is_tags - st.is_negatives : 0;
	s->max_negative = st.is_max_negative;
	s->negative_refused = st.is_neg_refused;
	s->links = st.is_links;
	s->index_bytes = st.is_bytes;
	s->used_bytes = s->bytes + s->index_bytes;
	s->max_bytes = cache_max_bytes;
	return 0;
}

/* Index record first, then the file: a reader keeps its descriptor. */
int
cache_blob_remove(const char *digest, const char *why)
{
	struct cache_blob_rec	 rec;
	char			*path;
	int			 rc;

	if ((rc = cache_index_blob_get(cache_idx, digest, &rec)) != 0)
		return rc;
	if (cache_index_blob_del(cache_idx, digest) != 0)
		return -1;
	if ((path = cache_blob_path(digest)) != NULL) {
		if (unlink(path) != 0 && errno != ENOENT)
			log_warn("cache: unlink %s", path);
		free(path);
	}
	cache_usage_add(-(int64_t)rec.size);
	metric_inc(METRIC_EVICTIONS);
	log_info("cache: removed %s (%llu bytes): %s", digest,
	    (unsigned long long)rec.size, why);
	return 0;
}

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

/* LRU candidates: unpinned blobs, oldest access first. */
struct cache_lru {
	struct cache_lru_ent {
		char		digest[DIGEST_STR_MAX];
		int64_t		last_access;
		uint64_t	size;
	}		*v;
	size_t		 n;
};

static int
cache_lru_cb(const char *digest, const struct cache_blob_rec *rec, void *arg)
{
	struct cache_lru	*l = arg;
	int64_t			 now = (int64_t)time(NULL);

	if (rec->pinned_until == -1 || rec->pinned_until > now)
		return 0;
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	snprintf(l->v[l->n].digest, sizeof(l->v[l->n].digest), "%s", digest);
	l->v[l->n].last_access = rec->last_access;
	l->v[l->n].size = rec->size;
	l->n++;
	return 0;
}

static int
cache_lru_cmp(const void *a, const void *b)
{
	const struct cache_lru_ent	*x = a, *y = b;

	return x->last_access < y->last_access ? -1 :
	    x->last_access > y->last_access ? 1 : strcmp(x->digest, y->digest);
}

/*
 * Evict least-recently-used unpinned blobs until the cache (blob files
 * and index) holds at most target bytes, or max blobs have gone (max 0:
 * no limit).  Returns the number evicted, -1 on error.
 */
int
cache_evict_lru(uint64_t target, size_t max)
{
	struct cache_lru	l = { NULL, 0 };
	struct cache_du		du;
	uint64_t		total;
	size_t			i;
	int			n = 0;

	cache_touch_flush();
	if (cache_du(&du) != 0)
		return -1;
	total = du.used_bytes;
	if (total <= target)
		return 0;
	if (cache_index_blob_foreach(cache_idx, cache_lru_cb, &l) != 0) {
		free(l.v);
		return -1;
	}
	if (l.n > 0)		/* with the index counted, all may be pinned */
		qsort(l.v, l.n, sizeof(*l.v), cache_lru_cmp);
	for (i = 0; i < l.n && total > target && (max == 0 ||
	    (size_t)n < max); i++) {
		if (cache_blob_remove(l.v[i].digest, "evicted (least recently "
		    "used, over max_size)") == 0) {
			total -= l.v[i].size;
			n++;
		}
	}
	free(l.v);
	return n;
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

/* Above 95% of the budget, evict down to 90%, a batch per tick. */
static void
cache_budget_keep(void)
{
	struct cache_index_stat	st;
	struct cache_du		du;
	uint64_t		high, low, total;
	int			n;

	if (cache_max_bytes == 0 || cache_index_stat(cache_idx, &st) != 0)
		return;
	high = cache_max_bytes / 100 * 95;
	low = cache_max_bytes / 100 * 90;
	total = atomic_load(&cache_total_bytes) + st.is_bytes;
	if (total <= high)
		return;
	/* "regmirror cache" may have removed blobs behind our back:
	 * measure before evicting. */
	if (cache_du(&du) == 0) {
		atomic_store(&cache_total_bytes, du.bytes);
		if ((total = du.used_bytes) <= high)
			return;
	}
	n = cache_evict_lru(low, CACHE_EVICT_BATCH);
	if (n > 0)
		log_info("cache: evicted %d blobs (was %llu bytes with the "
		    "index, budget %llu)", n, (unsigned long long)total,
		    (unsigned long long)cache_max_bytes);
	else if (n == 0)
		log_warnx("cache: %llu bytes (blobs and index) is over the "
		    "budget of %llu, but nothing unpinned is left to evict",
		    (unsigned long long)total,
		    (unsigned long long)cache_max_bytes);
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
	if (cache_index_recount(cache_idx) != 0 ||
	    cache_index_stat(cache_idx, &st) != 0)
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
		cache_touch_flush();
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
	struct cache_du	du;

	if (cache_du(&du) == 0)
		atomic_store(&cache_total_bytes, du.bytes);
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

struct cache_ls_ctx {
	int	(*tag_cb)(const struct cache_ls_tag *, void *);
	int	(*blob_cb)(const struct cache_ls_blob *, void *);
	void	 *arg;
};

static int
cache_ls_tag_cb(const char *up, const char *repo, const char *tag,
    const struct cache_tag_rec *rec, void *arg)
{
	struct cache_ls_ctx	*c = arg;
	struct cache_ls_tag	 t = { up, repo, tag,
				    strcmp(rec->digest, CACHE_TAG_NEGATIVE) ==
				    0 ? NULL : rec->digest, rec->validated };

	return c->tag_cb(&t, c->arg);
}

static int
cache_ls_blob_cb(const char *digest, const struct cache_blob_rec *rec,
    void *arg)
{
	struct cache_ls_ctx	*c = arg;
	struct cache_ls_blob	 b = { digest, rec->size, rec->stored,
				    rec->last_access, rec->pinned_until };

	return c->blob_cb(&b, c->arg);
}

int
cache_ls(int (*tag_cb)(const struct cache_ls_tag *, void *),
    int (*blob_cb)(const struct cache_ls_blob *, void *), void *arg)
{
	struct cache_ls_ctx	c = { tag_cb, blob_cb, arg };

	if (cache_index_tag_foreach(cache_idx, cache_ls_tag_cb, &c) != 0 ||
	    cache_index_blob_foreach(cache_idx, cache_ls_blob_cb, &c) != 0)
		return -1;
	return 0;
}
