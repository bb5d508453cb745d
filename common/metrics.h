/*
 * metrics.h — the one table of counters (Prometheus counters, monotonic),
 * shared by every module and exposed on the admin listener's /metrics,
 * and the few labelled families an operator's dashboards need (hit
 * ratio, upstream statuses, fill durations, bytes by source).
 * Increments are relaxed atomics: safe from any thread, no locks.
 */
#ifndef COMMON_METRICS_H
#define COMMON_METRICS_H

#include <stdint.h>

#define METRICS_TABLE(X)						\
	X(HTTP_REQUESTS, "http_requests_total",				\
	    "Client requests answered")					\
	X(HTTP_2XX, "http_responses_2xx_total", "Responses 2xx")	\
	X(HTTP_4XX, "http_responses_4xx_total", "Responses 4xx")	\
	X(HTTP_5XX, "http_responses_5xx_total", "Responses 5xx")	\
	X(HTTP_ABORTED, "http_responses_aborted_total",			\
	    "Responses cut short (client gone or fill failed)")		\
	X(HTTP_BYTES, "http_sent_bytes_total", "Body bytes queued to clients") \
	X(BLOB_HITS, "blob_hits_total", "Blob requests served from cache") \
	X(BLOB_MISSES, "blob_misses_total",				\
	    "Blob requests that started a fill")			\
	X(BLOB_ATTACHES, "blob_attaches_total",				\
	    "Blob requests that joined a fill in progress")		\
	X(MANIFEST_HITS, "manifest_hits_total",				\
	    "Manifest requests served without asking upstream")	\
	X(MANIFEST_REVALIDATED, "manifest_revalidated_total",		\
	    "Tags revalidated with upstream HEAD")			\
	X(MANIFEST_STALE, "manifest_stale_total",			\
	    "Manifests served stale because upstream failed")		\
	X(MANIFEST_MISSES, "manifest_misses_total",			\
	    "Manifests fetched from upstream")				\
	X(UPSTREAM_REQUESTS, "upstream_requests_total",			\
	    "HTTP exchanges with upstreams")				\
	X(UPSTREAM_ERRORS, "upstream_errors_total",			\
	    "Upstream requests that failed (network, timeout, TLS)")	\
	X(UPSTREAM_RETRIES, "upstream_retries_total", "Upstream retries") \
	X(UPSTREAM_QUEUE_TIMEOUTS, "upstream_queue_timeouts_total",	\
	    "Requests that waited [timeouts] queue for an upstream slot") \
	X(UPSTREAM_REFUSED, "upstream_refused_total",			\
	    "Redirects, realms and addresses refused by the redirect policy") \
	X(UPSTREAM_TOKENS, "upstream_token_fetches_total",		\
	    "Bearer tokens fetched")					\
	X(FILLS_STORED, "fills_stored_total", "Blobs verified and stored") \
	X(FILLS_FAILED, "fills_failed_total",				\
	    "Fills failed (upstream error, short or corrupt body)")	\
	X(FILLS_PASSED, "fills_passed_through_total",			\
	    "Fills passed through uncached because the disk was full")	\
	X(FILL_BYTES, "fill_bytes_total",				\
	    "Bytes received from upstreams for blobs")			\
	X(FILL_QUEUE_TIMEOUTS, "fill_queue_timeouts_total",		\
	    "Fills that waited [timeouts] queue for a max_fills slot")	\
	X(EVICTIONS, "cache_evictions_total",				\
	    "Blobs removed by the budget, gc or evict")			\
	X(CONN_REFUSED, "connections_refused_total",			\
	    "Client connections refused: over a connection cap")	\
	X(CONN_DEADLINES, "connections_timed_out_total",		\
	    "Client connections closed: request head or TLS "		\
	    "handshake too slow")					\
	X(ACCEPT_ERRORS, "accept_errors_total",				\
	    "accept() failures (EMFILE pauses the listener)")		\
	X(MISS_LIMITED, "manifest_misses_limited_total",		\
	    "Manifest misses refused 429 by miss_limit")		\
	X(ADMIN_DENIED, "admin_requests_denied_total",			\
	    "Admin API requests refused 401: no or a wrong token")

enum metric {
#define METRIC_ENUM(id, name, help) METRIC_##id,
	METRICS_TABLE(METRIC_ENUM)
#undef METRIC_ENUM
	METRIC__MAX
};

void		 metric_add(enum metric, uint64_t);
#define metric_inc(m)	metric_add((m), 1)
uint64_t	 metric_get(enum metric);
/* Name without the "regmirror_" prefix, and help text. */
const char	*metric_name(enum metric);
const char	*metric_help(enum metric);

/*
 * Labelled families (each label's values a fixed set, or the config's
 * names: bounded).  The counts are relaxed atomics too.
 */

/* What a request was, for regmirror_cache_requests_total{kind}. */
enum metric_kind {
	METRIC_KIND_BLOB = 0,
	METRIC_KIND_MANIFEST,
	METRIC_KIND_OTHER,	/* /v2/, lists, referrers, token */
	METRIC_KIND__MAX
};
/*
 * A request that ended: its kind, its src (the access log's src=: "hit",
 * "miss", ...; NULL or "-": none) and the body bytes it was sent.  An
 * unknown src counts as "other".
 */
void		 metric_request(enum metric_kind, const char *src,
		    uint64_t bytes);
/* The result label of src ("none" for NULL or "-"). */
const char	*metric_src_result(const char *src);
/* The label of the access log src a source of bytes: "cache",
 * "upstream", "passthrough" or "local". */
const char	*metric_src_source(const char *src);

/* How a fill ended, for regmirror_fill_duration_seconds{result}. */
enum metric_fill {
	METRIC_FILL_STORED = 0,
	METRIC_FILL_FAILED,
	METRIC_FILL_PASSED,	/* verified, not stored */
	METRIC_FILL__MAX
};
/* A fill that lasted usec microseconds ended. */
void		 metric_fill_observe(enum metric_fill, uint64_t usec);

/*
 * Upstream HTTP exchanges by upstream and status: names, in the config's
 * order (upstream_index()), before any count; called once at start-up.
 */
void		 metric_upstreams_init(const char *const *names, size_t n);
/* An exchange of upstream idx ended with status (0: no response). */
void		 metric_upstream_status(size_t idx, int status);

struct evbuffer;
/* Every counter, then the labelled families, in the text format. */
void		 metrics_write(struct evbuffer *);
/* A sample line with a fixed name, for modules' own gauges. */
void		 metrics_write_sample(struct evbuffer *, const char *name,
		    const char *type, const char *help, uint64_t v);
/* v escaped as a label value (\\, \" and \n), into dst (always
 * terminated). */
void		 metrics_label_escape(char *dst, size_t dstlen, const char *v);

#endif
