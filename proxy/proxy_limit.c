/*
 * proxy_limit.c — [server] manifest_miss_limit: how many manifest
 * requests a minute one client address may make that the mirror cannot
 * answer from its cache and must send upstream (an unknown tag, an
 * uncached digest).  Docker Hub counts every manifest GET against the
 * mirror's quota; a client asking for random tags must not spend it.
 * A deploy host needs a handful per image; the default, 100 a minute,
 * is far above that.
 *
 * A token bucket per address (capacity = the limit, refilled at limit a
 * minute), in one table shared by every worker; the table is bounded:
 * past PROXY_LIMIT_MAX addresses the least recently seen goes (a full
 * bucket is what a forgotten address gets back, so forgetting is safe
 * for everyone but an attacker with very many addresses).
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "common/config.h"
#include "common/metrics.h"
#include "common/xmalloc.h"
#include "proxy/proxy_int.h"

#define PROXY_LIMIT_MAX		16384
#define PROXY_LIMIT_BUCKETS	4096

struct proxy_bucket {
	char			 addr[64];
	double			 tokens;
	double			 at;		/* seconds, monotonic */
	LIST_ENTRY(proxy_bucket) hash;
	TAILQ_ENTRY(proxy_bucket) lru;
};

static pthread_mutex_t	 proxy_limit_mtx = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(, proxy_bucket) proxy_limit_table[PROXY_LIMIT_BUCKETS];
static TAILQ_HEAD(, proxy_bucket) proxy_limit_lru =
    TAILQ_HEAD_INITIALIZER(proxy_limit_lru);
static size_t		 proxy_limit_n;

static double
proxy_limit_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned
proxy_limit_hash(const char *s)
{
	unsigned	h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % PROXY_LIMIT_BUCKETS;
}

/* The bucket of addr, made (full) if new.  Under the lock. */
static struct proxy_bucket *
proxy_limit_bucket(const char *addr, double limit, double now)
{
	struct proxy_bucket	*b;
	unsigned		 h = proxy_limit_hash(addr);

	LIST_FOREACH(b, &proxy_limit_table[h], hash)
		if (strcmp(b->addr, addr) == 0) {
			TAILQ_REMOVE(&proxy_limit_lru, b, lru);
			TAILQ_INSERT_TAIL(&proxy_limit_lru, b, lru);
			return b;
		}
	if (proxy_limit_n >= PROXY_LIMIT_MAX) {
		b = TAILQ_FIRST(&proxy_limit_lru);
		LIST_REMOVE(b, hash);
		TAILQ_REMOVE(&proxy_limit_lru, b, lru);
	} else {
		b = xmalloc(sizeof(*b));
		proxy_limit_n++;
	}
	snprintf(b->addr, sizeof(b->addr), "%s", addr);
	b->tokens = limit;
	b->at = now;
	LIST_INSERT_HEAD(&proxy_limit_table[h], b, hash);
	TAILQ_INSERT_TAIL(&proxy_limit_lru, b, lru);
	return b;
}

/*
 * Spend one miss for the request's client: 0 allowed, else the seconds
 * until one is (for Retry-After).  The mirror's own jobs do not count.
 */
long
proxy_limit_miss(const struct proxy_req *pr)
{
	double			 limit = (double)pr->w->cfg->manifest_miss_limit;
	double			 now, wait;
	struct proxy_bucket	*b;

	if (limit <= 0 || proxy_req_is_job(pr))
		return 0;
	now = proxy_limit_now();
	pthread_mutex_lock(&proxy_limit_mtx);
	b = proxy_limit_bucket(pr->peer, limit, now);
	b->tokens += (now - b->at) * limit / 60.0;
	if (b->tokens > limit)
		b->tokens = limit;
	b->at = now;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		pthread_mutex_unlock(&proxy_limit_mtx);
		return 0;
	}
	wait = (1.0 - b->tokens) * 60.0 / limit;
	pthread_mutex_unlock(&proxy_limit_mtx);
	metric_inc(METRIC_MISS_LIMITED);
	return (long)wait + ((double)(long)wait < wait);
}
