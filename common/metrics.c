/*
 * metrics.c — the counter table of metrics.h, the labelled families,
 * and the Prometheus text format of all of them.
 *
 * Label values come from fixed tables here, or from the config's
 * upstream names: a client or an upstream can add no series.  An
 * upstream's status is counted exactly for the codes registries and CDNs
 * answer (metric_codes[]); any other code counts in its class ("4xx"),
 * anything outside 100..599 as "other", no response at all as "none".
 */
#include "autoconf.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/metrics.h"
#include "common/xmalloc.h"

static _Atomic uint64_t	metric_values[METRIC__MAX];

static const char *const metric_names[] = {
#define METRIC_NAME(id, name, help) name,
	METRICS_TABLE(METRIC_NAME)
#undef METRIC_NAME
};

static const char *const metric_helps[] = {
#define METRIC_HELP(id, name, help) help,
	METRICS_TABLE(METRIC_HELP)
#undef METRIC_HELP
};

/* The access log's src values, and the source of the bytes each sends. */
static const struct {
	const char	*src;
	const char	*source;
} metric_results[] = {
	{ "hit", "cache" },		/* blob or manifest from disk */
	{ "revalidated", "cache" },	/* tag HEAD upstream, body here */
	{ "stale", "cache" },		/* upstream failed, served old */
	{ "negative", "cache" },	/* a remembered 404 */
	{ "head", "cache" },		/* blob HEAD answered here */
	{ "miss", "upstream" },		/* started a fill, streamed it */
	{ "attach", "upstream" },	/* joined a fill in progress */
	{ "coalesced", "upstream" },	/* waited on a manifest fetch */
	{ "pass", "passthrough" },	/* a list passed through */
	{ "token", "local" },		/* the token service */
	{ "limited", "local" },		/* refused 429 by miss_limit */
	{ "none", "local" },		/* /v2/, errors: nothing cached */
	{ "other", "local" },
};
#define METRIC_NRESULTS	(sizeof(metric_results) / sizeof(metric_results[0]))
#define METRIC_RESULT_NONE	(METRIC_NRESULTS - 2)
#define METRIC_RESULT_OTHER	(METRIC_NRESULTS - 1)

static const char *const metric_sources[] = {
	"cache", "upstream", "passthrough", "local",
};
#define METRIC_NSOURCES	(sizeof(metric_sources) / sizeof(metric_sources[0]))

static const char *const metric_kinds[METRIC_KIND__MAX] = {
	"blob", "manifest", "other",
};

static _Atomic uint64_t	metric_requests[METRIC_KIND__MAX][METRIC_NRESULTS];
static _Atomic uint64_t	metric_bytes[METRIC_NSOURCES];

/* Fill durations: bucket upper bounds in microseconds (cold blobs take
 * milliseconds on a LAN, minutes for GiBs from far away). */
static const uint64_t	metric_fill_le[] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
	2500000, 5000000, 10000000, 30000000, 60000000, 120000000,
	300000000, 600000000, 1800000000, 3600000000,
};
#define METRIC_NLE	(sizeof(metric_fill_le) / sizeof(metric_fill_le[0]))

static const char *const metric_fill_results[METRIC_FILL__MAX] = {
	"stored", "failed", "passed",
};

struct metric_hist {
	_Atomic uint64_t	buckets[METRIC_NLE + 1];	/* + +Inf */
	_Atomic uint64_t	sum_usec;
	_Atomic uint64_t	count;
};
static struct metric_hist	metric_fills[METRIC_FILL__MAX];

static const int metric_codes[] = {
	200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401,
	403, 404, 405, 406, 408, 409, 412, 413, 416, 429, 500, 501, 502,
	503, 504,
};
#define METRIC_NCODES	(sizeof(metric_codes) / sizeof(metric_codes[0]))
/* Slots: the exact codes, then 1xx..5xx, "other", "none". */
#define METRIC_SLOT_CLASS	METRIC_NCODES
#define METRIC_SLOT_OTHER	(METRIC_NCODES + 5)
#define METRIC_SLOT_NONE	(METRIC_NCODES + 6)
#define METRIC_NSLOTS		(METRIC_NCODES + 7)

static char		**metric_up_names;
static size_t		  metric_nups;
static _Atomic uint64_t	(*metric_up_codes)[METRIC_NSLOTS];

void
metric_add(enum metric m, uint64_t n)
{
	atomic_fetch_add_explicit(&metric_values[m], n, memory_order_relaxed);
}

uint64_t
metric_get(enum metric m)
{
	return atomic_load_explicit(&metric_values[m], memory_order_relaxed);
}

const char *
metric_name(enum metric m)
{
	return metric_names[m];
}

const char *
metric_help(enum metric m)
{
	return metric_helps[m];
}

static size_t
metric_result(const char *src)
{
	size_t	i;

	if (src == NULL || strcmp(src, "-") == 0)
		return METRIC_RESULT_NONE;
	for (i = 0; i < METRIC_RESULT_NONE; i++)
		if (strcmp(metric_results[i].src, src) == 0)
			return i;
	return METRIC_RESULT_OTHER;
}

static size_t
metric_source(const char *source)
{
	size_t	i;

	for (i = 0; i < METRIC_NSOURCES - 1; i++)
		if (strcmp(metric_sources[i], source) == 0)
			return i;
	return METRIC_NSOURCES - 1;
}

const char *
metric_src_result(const char *src)
{
	return metric_results[metric_result(src)].src;
}

const char *
metric_src_source(const char *src)
{
	return metric_results[metric_result(src)].source;
}

void
metric_request(enum metric_kind k, const char *src, uint64_t bytes)
{
	size_t	r = metric_result(src);

	atomic_fetch_add_explicit(&metric_requests[k][r], 1,
	    memory_order_relaxed);
	atomic_fetch_add_explicit(&metric_bytes[metric_source(
	    metric_results[r].source)], bytes, memory_order_relaxed);
}

void
metric_fill_observe(enum metric_fill res, uint64_t usec)
{
	struct metric_hist	*h = &metric_fills[res];
	size_t			 i;

	for (i = 0; i < METRIC_NLE && usec > metric_fill_le[i]; i++)
		;
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_usec, usec, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void
metric_upstreams_init(const char *const *names, size_t n)
{
	size_t	i;

	/* Again (a second config in one process: tests): the old go. */
	for (i = 0; i < metric_nups; i++)
		free(metric_up_names[i]);
	free(metric_up_names);
	free(metric_up_codes);
	metric_up_names = xcalloc(n > 0 ? n : 1, sizeof(*metric_up_names));
	for (i = 0; i < n; i++)
		metric_up_names[i] = xstrdup(names[i]);
	metric_up_codes = xcalloc(n > 0 ? n : 1, sizeof(*metric_up_codes));
	metric_nups = n;
}

static size_t
metric_code_slot(int status)
{
	size_t	i;

	if (status == 0)
		return METRIC_SLOT_NONE;
	if (status < 100 || status > 599)
		return METRIC_SLOT_OTHER;
	for (i = 0; i < METRIC_NCODES; i++)
		if (metric_codes[i] == status)
			return i;
	return METRIC_SLOT_CLASS + (size_t)(status / 100 - 1);
}

void
metric_upstream_status(size_t idx, int status)
{
	if (idx >= metric_nups)
		return;
	atomic_fetch_add_explicit(&metric_up_codes[idx][metric_code_slot(
	    status)], 1, memory_order_relaxed);
}

void
metrics_label_escape(char *dst, size_t dstlen, const char *v)
{
	size_t	n = 0;

	for (; *v != '\0' && n + 3 < dstlen; v++) {
		if (*v == '\\' || *v == '"' || *v == '\n') {
			dst[n++] = '\\';
			dst[n++] = *v == '\n' ? 'n' : *v;
		} else
			dst[n++] = *v;
	}
	dst[n] = '\0';
}

void
metrics_write_sample(struct evbuffer *b, const char *name, const char *type,
    const char *help, uint64_t v)
{
	evbuffer_add_printf(b, "# HELP regmirror_%s %s\n# TYPE regmirror_%s "
	    "%s\nregmirror_%s %llu\n", name, help, name, type, name,
	    (unsigned long long)v);
}

static void
metrics_write_requests(struct evbuffer *b)
{
	size_t		 k, r;
	uint64_t	 v;

	evbuffer_add_printf(b, "# HELP regmirror_cache_requests_total "
	    "Client requests by kind and how the cache answered (the access "
	    "log's src)\n# TYPE regmirror_cache_requests_total counter\n");
	for (k = 0; k < METRIC_KIND__MAX; k++)
		for (r = 0; r < METRIC_NRESULTS; r++) {
			v = atomic_load_explicit(&metric_requests[k][r],
			    memory_order_relaxed);
			/* hit and miss always: a ratio exists from the
			 * start; the rest once they happen. */
			if (v == 0 && (k == METRIC_KIND_OTHER ||
			    (strcmp(metric_results[r].src, "hit") != 0 &&
			    strcmp(metric_results[r].src, "miss") != 0)))
				continue;
			evbuffer_add_printf(b, "regmirror_cache_requests_total"
			    "{kind=\"%s\",result=\"%s\"} %llu\n",
			    metric_kinds[k], metric_results[r].src,
			    (unsigned long long)v);
		}
	evbuffer_add_printf(b, "# HELP regmirror_served_bytes_total Body "
	    "bytes sent to clients by where they came from\n"
	    "# TYPE regmirror_served_bytes_total counter\n");
	for (r = 0; r < METRIC_NSOURCES; r++)
		evbuffer_add_printf(b, "regmirror_served_bytes_total"
		    "{source=\"%s\"} %llu\n", metric_sources[r],
		    (unsigned long long)atomic_load_explicit(&metric_bytes[r],
		    memory_order_relaxed));
}

static void
metrics_write_fills(struct evbuffer *b)
{
	struct metric_hist	*h;
	uint64_t		 cum, sum;
	size_t			 f, i;

	evbuffer_add_printf(b, "# HELP regmirror_fill_duration_seconds "
	    "Blob fills, from the first request to stored, failed or passed "
	    "through\n# TYPE regmirror_fill_duration_seconds histogram\n");
	for (f = 0; f < METRIC_FILL__MAX; f++) {
		h = &metric_fills[f];
		cum = 0;
		for (i = 0; i <= METRIC_NLE; i++) {
			cum += atomic_load_explicit(&h->buckets[i],
			    memory_order_relaxed);
			if (i < METRIC_NLE)
				evbuffer_add_printf(b,
				    "regmirror_fill_duration_seconds_bucket"
				    "{result=\"%s\",le=\"%g\"} %llu\n",
				    metric_fill_results[f],
				    (double)metric_fill_le[i] / 1e6,
				    (unsigned long long)cum);
			else
				evbuffer_add_printf(b,
				    "regmirror_fill_duration_seconds_bucket"
				    "{result=\"%s\",le=\"+Inf\"} %llu\n",
				    metric_fill_results[f],
				    (unsigned long long)cum);
		}
		sum = atomic_load_explicit(&h->sum_usec, memory_order_relaxed);
		/* _count is the +Inf bucket's: the same read, consistent. */
		evbuffer_add_printf(b, "regmirror_fill_duration_seconds_sum"
		    "{result=\"%s\"} %llu.%06llu\n"
		    "regmirror_fill_duration_seconds_count{result=\"%s\"} "
		    "%llu\n", metric_fill_results[f],
		    (unsigned long long)(sum / 1000000),
		    (unsigned long long)(sum % 1000000),
		    metric_fill_results[f], (unsigned long long)cum);
	}
}

static void
metrics_write_code(char *dst, size_t dstlen, size_t slot)
{
	if (slot < METRIC_NCODES)
		snprintf(dst, dstlen, "%d", metric_codes[slot]);
	else if (slot < METRIC_SLOT_OTHER)
		snprintf(dst, dstlen, "%zuxx", slot - METRIC_SLOT_CLASS + 1);
	else
		snprintf(dst, dstlen, "%s", slot == METRIC_SLOT_OTHER ?
		    "other" : "none");
}

static void
metrics_write_upstreams(struct evbuffer *b)
{
	char		 name[512], code[16];
	size_t		 u, s;
	uint64_t	 v;

	evbuffer_add_printf(b, "# HELP regmirror_upstream_http_requests_total "
	    "HTTP exchanges with upstreams (tokens and redirects included) by "
	    "upstream and status; none: no response\n"
	    "# TYPE regmirror_upstream_http_requests_total counter\n");
	for (u = 0; u < metric_nups; u++) {
		metrics_label_escape(name, sizeof(name), metric_up_names[u]);
		for (s = 0; s < METRIC_NSLOTS; s++) {
			v = atomic_load_explicit(&metric_up_codes[u][s],
			    memory_order_relaxed);
			if (v == 0)
				continue;
			metrics_write_code(code, sizeof(code), s);
			evbuffer_add_printf(b,
			    "regmirror_upstream_http_requests_total"
			    "{upstream=\"%s\",code=\"%s\"} %llu\n", name, code,
			    (unsigned long long)v);
		}
	}
}

void
metrics_write(struct evbuffer *b)
{
	enum metric	 m;

	for (m = 0; m < METRIC__MAX; m++)
		metrics_write_sample(b, metric_name(m), "counter",
		    metric_help(m), metric_get(m));
	metrics_write_requests(b);
	metrics_write_fills(b);
	metrics_write_upstreams(b);
}
