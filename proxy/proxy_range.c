/*
 * proxy_range.c — a client's Range header on a blob GET.  The header is
 * parsed when the request arrives, before the blob's size is known (a
 * cold fill learns it from upstream later), and resolved against the
 * size once it is.  Pure functions over struct proxy_range, so that
 * tests/fuzz/fuzz_range.c can check them without a connection.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/proxy_int.h"

/*
 * Single byte ranges: "bytes=a-b", "bytes=a-", "bytes=-n".  Anything else
 * (several ranges, other units, junk, numbers past 2^64) is ignored: the
 * whole blob, 200, as RFC 9110 allows.
 */
int
proxy_range_parse(const char *h, struct proxy_range *r)
{
	const char		*p;
	char			*end;
	unsigned long long	 a = 0, b = 0;
	int			 has_a = 0, has_b = 0;

	memset(r, 0, sizeof(*r));
	if (h == NULL || strncasecmp(h, "bytes=", 6) != 0)
		return 0;
	p = h + 6;
	while (*p == ' ')
		p++;
	if (strchr(p, ',') != NULL)
		return 0;
	if (*p >= '0' && *p <= '9') {
		errno = 0;
		a = strtoull(p, &end, 10);
		if (errno != 0)
			return 0;
		p = end;
		has_a = 1;
	}
	if (*p++ != '-')
		return 0;
	if (*p >= '0' && *p <= '9') {
		errno = 0;
		b = strtoull(p, &end, 10);
		if (errno != 0)
			return 0;
		p = end;
		has_b = 1;
	}
	while (*p == ' ')
		p++;
	if (*p != '\0' || (!has_a && !has_b) || (has_a && has_b && b < a))
		return 0;
	r->a = a;
	r->b = b;
	r->kind = has_a && has_b ? PROXY_RANGE_FROM_TO : has_a ?
	    PROXY_RANGE_FROM : PROXY_RANGE_SUFFIX;
	return 1;
}

/*
 * A last byte past the end is clipped to it, and so is a suffix longer
 * than the blob; a first byte at or past the end, a suffix of 0 bytes or
 * any range of an empty blob cannot be satisfied.  Written so that no sum
 * can wrap: b + 1 only when b < size - 1.
 */
int
proxy_range_resolve(const struct proxy_range *r, uint64_t size,
    uint64_t *start, uint64_t *end)
{
	switch (r->kind) {
	case PROXY_RANGE_NONE:
		*start = 0;
		*end = size;
		return 0;
	case PROXY_RANGE_FROM_TO:
	case PROXY_RANGE_FROM:
		if (r->a >= size)
			return -1;
		*start = r->a;
		*end = r->kind == PROXY_RANGE_FROM_TO && r->b < size - 1 ?
		    r->b + 1 : size;
		return 0;
	case PROXY_RANGE_SUFFIX:
		if (r->b == 0 || size == 0)
			return -1;
		*start = r->b >= size ? 0 : size - r->b;
		*end = size;
		return 0;
	}
	return -1;
}
