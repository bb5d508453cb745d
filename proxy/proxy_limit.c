/*
 * proxy_limit.c — [server] miss_limit: how many requests a minute one
 * client may make that the mirror cannot answer from its cache and must
 * send upstream: a manifest by an unknown tag or uncached digest, the
 * HEAD that checks another repository holds cached content, a tag list
 * not in memory, a HEAD of an uncached blob.  Docker Hub counts every
 * manifest GET against the mirror's quota, other registries every
 * request; a client asking for random names must not spend them.  A
 * deploy host needs a handful per image; the default, 100 a minute, is
 * far above that.  (Cold blob GETs are not counted: an image is its
 * layers; max_fills bounds them.)
 *
 * A client is its address; an IPv6 one its /64 (one host gets a whole
 * prefix to rotate through), an IPv4-mapped one its IPv4 address.
 *
 * A token bucket per address (capacity = the limit, refilled at limit a
 * minute), in one table shared by every worker; the table is bounded:
 * past PROXY_LIMIT_MAX addresses the least recently seen goes (a full
 * bucket is what a forgotten address gets back, so forgetting is safe
 * for everyone but an attacker with very many addresses).
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/http.h>

#include "common/hash.h"
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
	return hash_str(s) % PROXY_LIMIT_BUCKETS;
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

/* The client's key: its address, an IPv6 one cut to its /64. */
static void
proxy_limit_key(const char *peer, char *key, size_t len)
{
	struct in6_addr	a6;
	struct in_addr	a4;

	if (inet_pton(AF_INET6, peer, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			memcpy(&a4, a6.s6_addr + 12, 4);
			inet_ntop(AF_INET, &a4, key, (socklen_t)len);
			return;
		}
		memset(a6.s6_addr + 8, 0, 8);
		inet_ntop(AF_INET6, &a6, key, (socklen_t)len);
		return;
	}
	snprintf(key, len, "%s", peer);
}

/*
 * Spend one miss for the request's client: 0 allowed, else the seconds
 * until one is (for Retry-After).  The mirror's own jobs do not count.
 */
static long
proxy_limit_miss(const struct proxy_req *pr)
{
	double			 limit = (double)pr->w->cfg->miss_limit;
	double			 now, wait;
	struct proxy_bucket	*b;
	char			 key[64];

	if (limit <= 0 || proxy_req_is_job(pr))
		return 0;
	proxy_limit_key(pr->peer, key, sizeof(key));
	now = proxy_limit_now();
	pthread_mutex_lock(&proxy_limit_mtx);
	b = proxy_limit_bucket(key, limit, now);
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

int
proxy_limit_allow(struct proxy_req *pr)
{
	char	ra[32];
	long	wait;

	if ((wait = proxy_limit_miss(pr)) == 0)
		return 1;
	snprintf(ra, sizeof(ra), "%ld", wait);
	evhttp_add_header(evhttp_request_get_output_headers(pr->req),
	    "Retry-After", ra);
	pr->src = "limited";
	proxy_error(pr, 429, "TOOMANYREQUESTS", "too many requests from %s "
	    "for content this mirror has not cached (miss_limit: %ld a "
	    "minute)", pr->peer, pr->w->cfg->miss_limit);
	return 0;
}

/*
 * [server] max_fills_per_client: cold fills one client may have started
 * and not yet finished (a fill runs on after its client leaves, so a
 * client cutting cold requests short could otherwise take every one of
 * an upstream's max_fills).
 */
struct proxy_fillcount {
	char			 key[64];
	unsigned		 n;
	LIST_ENTRY(proxy_fillcount) hash;
};

static LIST_HEAD(, proxy_fillcount) proxy_fill_table[PROXY_LIMIT_BUCKETS];

int
proxy_limit_fill_take(const struct proxy_req *pr, char *key, size_t len)
{
	long			 max = pr->w->cfg->max_fills_per_client;
	struct proxy_fillcount	*c;
	unsigned		 h;

	key[0] = '\0';
	if (max <= 0 || proxy_req_is_job(pr))
		return 0;
	proxy_limit_key(pr->peer, key, len);
	h = proxy_limit_hash(key);
	pthread_mutex_lock(&proxy_limit_mtx);
	LIST_FOREACH(c, &proxy_fill_table[h], hash)
		if (strcmp(c->key, key) == 0)
			break;
	if (c != NULL && c->n >= (unsigned)max) {
		pthread_mutex_unlock(&proxy_limit_mtx);
		key[0] = '\0';
		return -1;
	}
	if (c == NULL) {
		c = xcalloc(1, sizeof(*c));
		snprintf(c->key, sizeof(c->key), "%s", key);
		LIST_INSERT_HEAD(&proxy_fill_table[h], c, hash);
	}
	c->n++;
	pthread_mutex_unlock(&proxy_limit_mtx);
	return 0;
}

void
proxy_limit_fill_give(const char *key)
{
	struct proxy_fillcount	*c;

	if (key[0] == '\0')
		return;
	pthread_mutex_lock(&proxy_limit_mtx);
	LIST_FOREACH(c, &proxy_fill_table[proxy_limit_hash(key)], hash)
		if (strcmp(c->key, key) == 0)
			break;
	if (c != NULL && --c->n == 0) {
		LIST_REMOVE(c, hash);
		free(c);
	}
	pthread_mutex_unlock(&proxy_limit_mtx);
}
