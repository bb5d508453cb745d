/*
 * test_metrics.c — the labelled families of common/metrics.c as
 * Prometheus sees them: an upstream status outside the exact list goes
 * to its class, "other" or "none" (no series per code an upstream
 * invents), an unknown src to "other", a histogram's buckets are
 * cumulative with _count the +Inf bucket, and label values are escaped.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/metrics.h"
#include "tests/lib/tap.h"

/* The exposition now, NUL-terminated (malloc'd). */
static char *
test_metrics_text(void)
{
	struct evbuffer	*b = evbuffer_new();
	size_t		 n;
	char		*s;

	metrics_write(b);
	n = evbuffer_get_length(b);
	s = malloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

static int
test_metrics_has(const char *text, const char *line)
{
	const char	*p = text;
	size_t		 n = strlen(line);

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
		p += n;
	}
	return 0;
}

#define HAS(line, ...)	ok(test_metrics_has(text, line), __VA_ARGS__)

int
main(void)
{
	const char *const names[] = { "docker.io", "we\"ird\\name" };
	char	 out[64], *text;
	int	 i;

	metric_upstreams_init(names, 2);
	metric_upstream_status(0, 200);
	metric_upstream_status(0, 200);
	metric_upstream_status(0, 429);
	metric_upstream_status(0, 418);		/* not in the list */
	metric_upstream_status(0, 599);
	metric_upstream_status(0, 999);
	metric_upstream_status(0, 0);
	metric_upstream_status(1, 404);
	metric_upstream_status(7, 200);		/* no such upstream */
	for (i = 0; i < 3; i++)
		metric_request(METRIC_KIND_BLOB, "hit", 100);
	metric_request(METRIC_KIND_BLOB, "miss", 1000);
	metric_request(METRIC_KIND_MANIFEST, "made-up", 5);
	metric_request(METRIC_KIND_OTHER, NULL, 2);
	metric_request(METRIC_KIND_OTHER, "pass", 7);
	metric_fill_observe(METRIC_FILL_STORED, 3000);		/* 3 ms */
	metric_fill_observe(METRIC_FILL_STORED, 1500000);	/* 1.5 s */
	metric_fill_observe(METRIC_FILL_STORED, 7200000000);	/* 2 h */
	text = test_metrics_text();

	HAS("regmirror_upstream_http_requests_total{upstream=\"docker.io\","
	    "code=\"200\"} 2", "200 exact");
	HAS("regmirror_upstream_http_requests_total{upstream=\"docker.io\","
	    "code=\"429\"} 1", "429 exact");
	HAS("regmirror_upstream_http_requests_total{upstream=\"docker.io\","
	    "code=\"4xx\"} 1", "418 counts as 4xx");
	HAS("regmirror_upstream_http_requests_total{upstream=\"docker.io\","
	    "code=\"5xx\"} 1", "599 counts as 5xx");
	HAS("regmirror_upstream_http_requests_total{upstream=\"docker.io\","
	    "code=\"other\"} 1", "999 counts as other");
	HAS("regmirror_upstream_http_requests_total{upstream=\"docker.io\","
	    "code=\"none\"} 1", "no response: none");
	HAS("regmirror_upstream_http_requests_total{upstream="
	    "\"we\\\"ird\\\\name\",code=\"404\"} 1", "the name escaped");
	ok(strstr(text, "code=\"418\"") == NULL, "no series for 418");
	ok(strstr(text, "code=\"201\"") == NULL, "no series before a count");
	HAS("# TYPE regmirror_upstream_http_requests_total counter",
	    "TYPE line");

	HAS("regmirror_cache_requests_total{kind=\"blob\",result=\"hit\"} 3",
	    "blob hits");
	HAS("regmirror_cache_requests_total{kind=\"blob\",result=\"miss\"} 1",
	    "blob misses");
	HAS("regmirror_cache_requests_total{kind=\"manifest\",result=\"hit\"} "
	    "0", "manifest hit there before any");
	HAS("regmirror_cache_requests_total{kind=\"manifest\","
	    "result=\"other\"} 1", "an unknown src is other");
	HAS("regmirror_cache_requests_total{kind=\"other\",result=\"none\"} 1",
	    "NULL src is none");
	HAS("regmirror_served_bytes_total{source=\"cache\"} 300",
	    "cache bytes");
	HAS("regmirror_served_bytes_total{source=\"upstream\"} 1000",
	    "upstream bytes");
	HAS("regmirror_served_bytes_total{source=\"passthrough\"} 7",
	    "passthrough bytes");
	HAS("regmirror_served_bytes_total{source=\"local\"} 7",
	    "local bytes (none and other)");

	HAS("# TYPE regmirror_fill_duration_seconds histogram", "histogram");
	ok(strstr(text, "le=\"0.001\"") == NULL, "no bucket under 5 ms");
	HAS("regmirror_fill_duration_seconds_bucket{result=\"stored\","
	    "le=\"0.005\"} 1", "3 ms in le 0.005");
	HAS("regmirror_fill_duration_seconds_bucket{result=\"stored\","
	    "le=\"2.5\"} 2", "cumulative: 1.5 s in le 2.5");
	HAS("regmirror_fill_duration_seconds_bucket{result=\"stored\","
	    "le=\"3600\"} 2", "2 h past the last bound");
	HAS("regmirror_fill_duration_seconds_bucket{result=\"stored\","
	    "le=\"+Inf\"} 3", "+Inf has all");
	HAS("regmirror_fill_duration_seconds_sum{result=\"stored\"} "
	    "7201.503000", "_sum in seconds");
	HAS("regmirror_fill_duration_seconds_count{result=\"stored\"} 3",
	    "_count");
	HAS("regmirror_fill_duration_seconds_count{result=\"failed\"} 0",
	    "an empty histogram is there");
	free(text);

	metrics_label_escape(out, sizeof(out), "a\"b\\c\nd");
	is_str(out, "a\\\"b\\\\c\\nd", "label escaping");
	metrics_label_escape(out, 4, "\"\"\"");
	is_str(out, "\\\"", "escaping never cut in half");
	is_str(metric_src_source("attach"), "upstream", "attach: upstream");
	is_str(metric_src_source("stale"), "cache", "stale: cache");
	is_str(metric_src_result("-"), "none", "- is none");
	return done_testing();
}
