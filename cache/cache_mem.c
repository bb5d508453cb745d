/*
 * cache_mem.c — the in-memory copies of hot answers: cached manifests (by
 * digest) and upstream tag lists (tags/list, _catalog, referrers, for
 * [cache] list_ttl).  Each is one reference-counted buffer that every
 * client is sent from, by reference (common/rbuf.h): N slow readers of a
 * 4 MiB manifest hold one copy, not N.
 *
 * Bounded by [cache] memory (every byte an entry holds: body, key and
 * header strings, and a fixed overhead) and by a count of entries; past
 * either the least recently used entries are dropped (a reader still
 * sending one keeps its reference until done).  One mutex; lookups copy
 * three short strings.
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "cache/cache.h"
#include "common/hash.h"
#include "common/obj.h"
#include "common/rbuf.h"
#include "common/xmalloc.h"

#define CACHE_MEM_BUCKETS	4096
#define CACHE_MEM_MAX		65536	/* entries */
#define CACHE_MEM_KEY_MAX	2048	/* longer keys are not kept */
#define CACHE_MEM_OVERHEAD	256	/* per entry, beyond its strings */

struct cache_mem_ent {
	char			*key;
	uint32_t		 hash;
	struct rbuf		*body;
	char			*ctype, *link, *filters;
	int64_t			 stored_ms;
	size_t			 cost;		/* bytes it holds */
	LIST_ENTRY(cache_mem_ent) bucket;
	TAILQ_ENTRY(cache_mem_ent) lru;		/* most recent at the tail */
};

static pthread_mutex_t	 cache_mem_mtx = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(, cache_mem_ent) cache_mem_table[CACHE_MEM_BUCKETS];
static TAILQ_HEAD(, cache_mem_ent) cache_mem_lru =
    TAILQ_HEAD_INITIALIZER(cache_mem_lru);
static uint64_t		 cache_mem_budget;
static uint64_t		 cache_mem_bytes;	/* every entry's cost */
static size_t		 cache_mem_n;

static int64_t
cache_mem_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static char *
cache_mem_strdup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static void
cache_mem_drop_locked(struct cache_mem_ent *e)
{
	LIST_REMOVE(e, bucket);
	TAILQ_REMOVE(&cache_mem_lru, e, lru);
	cache_mem_bytes -= e->cost;
	cache_mem_n--;
	rbuf_unref(e->body);
	free(e->key);
	free(e->ctype);
	free(e->link);
	free(e->filters);
	free(e);
}

void
cache_mem_init(uint64_t budget)
{
	size_t	i;

	pthread_mutex_lock(&cache_mem_mtx);
	for (i = 0; i < CACHE_MEM_BUCKETS; i++)
		LIST_INIT(&cache_mem_table[i]);
	cache_mem_budget = budget;
	pthread_mutex_unlock(&cache_mem_mtx);
}

void
cache_mem_clear(void)
{
	struct cache_mem_ent	*e;

	pthread_mutex_lock(&cache_mem_mtx);
	while ((e = TAILQ_FIRST(&cache_mem_lru)) != NULL)
		cache_mem_drop_locked(e);
	pthread_mutex_unlock(&cache_mem_mtx);
}

int
cache_mem_get(const char *key, int64_t max_age_ms, struct cache_mem_hold *h)
{
	struct cache_mem_ent	*e;
	uint32_t		 hash = hash_str(key);
	int64_t			 now = cache_mem_now_ms();

	memset(h, 0, sizeof(*h));
	pthread_mutex_lock(&cache_mem_mtx);
	LIST_FOREACH(e, &cache_mem_table[hash % CACHE_MEM_BUCKETS], bucket)
		if (e->hash == hash && strcmp(e->key, key) == 0)
			break;
	if (e != NULL && max_age_ms >= 0 && now - e->stored_ms > max_age_ms) {
		cache_mem_drop_locked(e);
		e = NULL;
	}
	if (e == NULL) {
		pthread_mutex_unlock(&cache_mem_mtx);
		return 1;
	}
	TAILQ_REMOVE(&cache_mem_lru, e, lru);
	TAILQ_INSERT_TAIL(&cache_mem_lru, e, lru);
	h->body = rbuf_ref(e->body);
	h->ctype = cache_mem_strdup(e->ctype);
	h->link = cache_mem_strdup(e->link);
	h->filters = cache_mem_strdup(e->filters);
	h->age_ms = now - e->stored_ms;
	pthread_mutex_unlock(&cache_mem_mtx);
	return 0;
}

void
cache_mem_put(const char *key, struct rbuf *body, const char *ctype,
    const char *link, const char *filters)
{
	struct cache_mem_ent	*e, *old;
	uint32_t		 hash = hash_str(key);

	if (cache_mem_budget == 0 || body->len > cache_mem_budget / 4 ||
	    strlen(key) > CACHE_MEM_KEY_MAX) {
		rbuf_unref(body);	/* too big to be worth keeping */
		return;
	}
	e = xcalloc(1, sizeof(*e));
	e->key = xstrdup(key);
	e->hash = hash;
	e->body = body;
	e->ctype = cache_mem_strdup(ctype);
	e->link = cache_mem_strdup(link);
	e->filters = cache_mem_strdup(filters);
	e->stored_ms = cache_mem_now_ms();
	/* Everything it holds counts, not only the body: keys and headers
	 * are the client's and the upstream's to choose. */
	e->cost = body->len + strlen(key) + (ctype != NULL ? strlen(ctype) :
	    0) + (link != NULL ? strlen(link) : 0) + (filters != NULL ?
	    strlen(filters) : 0) + CACHE_MEM_OVERHEAD;
	pthread_mutex_lock(&cache_mem_mtx);
	LIST_FOREACH(old, &cache_mem_table[hash % CACHE_MEM_BUCKETS], bucket)
		if (old->hash == hash && strcmp(old->key, key) == 0)
			break;
	if (old != NULL)
		cache_mem_drop_locked(old);
	LIST_INSERT_HEAD(&cache_mem_table[hash % CACHE_MEM_BUCKETS], e,
	    bucket);
	TAILQ_INSERT_TAIL(&cache_mem_lru, e, lru);
	cache_mem_bytes += e->cost;
	cache_mem_n++;
	while ((cache_mem_bytes > cache_mem_budget ||
	    cache_mem_n > CACHE_MEM_MAX) &&
	    (old = TAILQ_FIRST(&cache_mem_lru)) != NULL && old != e)
		cache_mem_drop_locked(old);
	pthread_mutex_unlock(&cache_mem_mtx);
}

void
cache_mem_release(struct cache_mem_hold *h)
{
	rbuf_unref(h->body);
	free(h->ctype);
	free(h->link);
	free(h->filters);
	memset(h, 0, sizeof(*h));
}

uint64_t
cache_mem_usage(void)
{
	uint64_t	n;

	pthread_mutex_lock(&cache_mem_mtx);
	n = cache_mem_bytes;
	pthread_mutex_unlock(&cache_mem_mtx);
	return n;
}
