/*
 * cache_budget.c — the byte budget and what it is measured with: the
 * index's totals, access times, du and stats, and least recently used
 * eviction (above 95% of [cache] max_size, down to 90%, never pinned
 * content) with the one removal of a blob that gc goes through.
 *
 * The budget counts blob files and the index's pages in use (manifests,
 * tags and links live there): eviction removes least recently used
 * unpinned blobs, and the lifecycle pass (cache_gc.c) removes what
 * nothing references.
 *
 * Access times are recorded in memory on every hit and written to the
 * index in one transaction every few seconds by the manager thread
 * (cache_admin.c): no disk write per request.
 *
 * None of it walks the index: the blob bytes are the index's totals
 * record, the eviction order its lru database, and du's pinned figures a
 * walk of the pinned blobs only (cache_int.h).  Eviction costs what it
 * evicts: the order read in bounded read transactions, a batch removed
 * per write transaction.
 *
 * Deleting a blob is: index record first, then the file.  A reader that
 * already opened the file keeps streaming from its descriptor; a fill in
 * progress lives in tmp/ and is not in blobs/ until it is published, so
 * nothing is deleted from under a reader.
 *
 * Direction: the store calls the budget (a hit's access time, max_size
 * at open), and so do fills and reconcile (bytes stored and dropped), gc
 * (removal), the manager and the CLI.  The budget calls only the index
 * and the directory's layout (cache_dir.c), never the store or the
 * manager, so none of those calls is part of a cycle.
 */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/digest.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/obj.h"
#include "common/xmalloc.h"

#define CACHE_TOUCH_MAX		4096	/* access times kept between flushes */
#define CACHE_TOUCH_RECENT	16	/* entries checked for a repeat */
#define CACHE_EVICT_BATCH	256	/* blobs per write transaction, so
					   no writer waits on a long one */

static pthread_mutex_t	 cache_touch_mtx = PTHREAD_MUTEX_INITIALIZER;
static char		*cache_touch_digest[CACHE_TOUCH_MAX];
static int64_t		 cache_touch_when[CACHE_TOUCH_MAX];
static size_t		 cache_ntouch;
static uint64_t		 cache_max_bytes;

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

/* The access times recorded since the last flush, in one transaction. */
void
cache_budget_flush(void)
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

static int
cache_du_pin_cb(const char *digest, const struct cache_blob_rec *rec,
    void *arg)
{
	struct cache_du	*du = arg;
	int64_t		 now = (int64_t)time(NULL);

	(void)digest;
	if (rec->pinned_until == -1 || rec->pinned_until > now) {
		du->pinned_blobs++;
		du->pinned_bytes += rec->size;
	}
	return 0;
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

/*
 * The index's counts and totals, and a walk of the pinned blobs only;
 * the pins may be a moment newer than the counts (two transactions).
 */
int
cache_du(struct cache_du *du)
{
	struct cache_stats	s;

	memset(du, 0, sizeof(*du));
	if (cache_stats(&s) != 0 ||
	    cache_index_pin_foreach(cache_idx, cache_du_pin_cb, du) != 0)
		return -1;
	du->blobs = s.blobs;
	du->bytes = s.bytes;
	du->tags = s.tags;
	du->negative_tags = s.negative_tags;
	du->manifests = s.manifests;
	du->manifest_bytes = s.manifest_bytes;
	du->links = s.links;
	du->index_bytes = s.index_bytes;
	du->used_bytes = s.used_bytes;
	du->max_negative = s.max_negative;
	du->max_bytes = s.max_bytes;
	return 0;
}

json_t *
cache_du_json(const struct cache_du *du)
{
	json_t	*j;

	j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
	    "s:I}", "blobs", (json_int_t)du->blobs, "bytes",
	    (json_int_t)du->bytes, "pinned_blobs",
	    (json_int_t)du->pinned_blobs, "pinned_bytes",
	    (json_int_t)du->pinned_bytes, "tags", (json_int_t)du->tags,
	    "max_bytes", (json_int_t)du->max_bytes, "manifests",
	    (json_int_t)du->manifests, "manifest_bytes",
	    (json_int_t)du->manifest_bytes, "negative_tags",
	    (json_int_t)du->negative_tags, "max_negative",
	    (json_int_t)du->max_negative, "links", (json_int_t)du->links,
	    "index_bytes", (json_int_t)du->index_bytes, "used_bytes",
	    (json_int_t)du->used_bytes);
	AN(j != NULL);		/* numbers and fixed keys only */
	return j;
}

/* No walk: counts from LMDB, bytes from the index's totals. */
int
cache_stats(struct cache_stats *s)
{
	struct cache_index_stat	st;

	memset(s, 0, sizeof(*s));
	if (cache_index_stat(cache_idx, &st) != 0)
		return -1;
	s->blobs = st.is_blobs;
	s->bytes = st.is_blob_bytes;
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
	metric_inc(METRIC_EVICTIONS);
	log_info("cache: removed %s (%llu bytes): %s", digest,
	    (unsigned long long)rec.size, why);
	return 0;
}

/* The blobs and the index's pages in use: cache_stats()'s used_bytes. */
static int
cache_budget_used(uint64_t *used)
{
	struct cache_stats	s;

	if (cache_stats(&s) != 0)
		return -1;
	*used = s.used_bytes;
	return 0;
}

/* After the commit: unlink each file unless the blob is back (a fill). */
static void
cache_evict_files(const struct cache_evicted *v, size_t n)
{
	struct cache_blob_rec	 rec;
	char			*path;
	size_t			 i;

	for (i = 0; i < n; i++) {
		if (cache_index_blob_get(cache_idx, v[i].digest, &rec) == 1 &&
		    (path = cache_blob_path(v[i].digest)) != NULL) {
			if (unlink(path) != 0 && errno != ENOENT)
				log_warn("cache: unlink %s", path);
			free(path);
		}
		metric_inc(METRIC_EVICTIONS);
		log_info("cache: removed %s (%llu bytes): evicted (least "
		    "recently used, over max_size)", v[i].digest,
		    (unsigned long long)v[i].size);
	}
}

/*
 * Evict least-recently-used unpinned blobs until the cache (blob files
 * and index) holds at most target bytes, or max blobs have gone (max 0:
 * no limit): one pass over the lru order, a batch per write transaction,
 * each batch's files unlinked after its commit, the access times of the
 * hits meanwhile flushed before each batch.  Returns the number evicted,
 * -1 on an error before any was.
 */
int
cache_evict_lru(uint64_t target, size_t max)
{
	struct cache_evicted	 v[CACHE_EVICT_BATCH];
	struct cache_index_pos	*pos;
	uint64_t		 total;
	size_t			 n, batch;
	int			 evicted = 0, err = 0;

	pos = xcalloc(1, sizeof(*pos));
	while (!pos->ip_done) {
		cache_budget_flush();
		if (cache_budget_used(&total) != 0) {
			err = 1;
			break;
		}
		if (total <= target)
			break;
		batch = CACHE_EVICT_BATCH;
		if (max > 0 && max - (size_t)evicted < batch)
			batch = max - (size_t)evicted;
		if (batch == 0)
			break;
		if (cache_index_blob_evict(cache_idx, (int64_t)time(NULL),
		    total - target, v, batch, pos, &n) != 0) {
			err = 1;
			break;
		}
		cache_evict_files(v, n);
		evicted += (int)n;
	}
	free(pos);
	return err && evicted == 0 ? -1 : evicted;
}

/*
 * Above 95% of the budget, evict down to 90%.  When a pass found nothing
 * to evict (all pinned), the next one waits until the bytes change or a
 * minute has passed (a pin may expire): not a walk of the order per tick.
 */
void
cache_budget_keep(void)
{
	static uint64_t	idle_total;
	static time_t	idle_until;
	uint64_t	high, low, total;
	int		n;

	if (cache_max_bytes == 0 || cache_budget_used(&total) != 0)
		return;
	high = cache_max_bytes / 100 * 95;
	low = cache_max_bytes / 100 * 90;
	if (total <= high || (total == idle_total && time(NULL) < idle_until))
		return;
	n = cache_evict_lru(low, 0);
	idle_total = total;
	idle_until = n == 0 ? time(NULL) + 60 : 0;
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
