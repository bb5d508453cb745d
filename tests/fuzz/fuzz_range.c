/*
 * fuzz_range.c — libFuzzer entry point for the client's Range header
 * (proxy_range_parse, proxy_range_resolve in proxy/proxy_range.c).
 *
 * The input is the header value, NUL-terminated.  An accepted range must
 * start "bytes=" and name one range (no ','), print back to an equal one,
 * and resolve against every size that matters (0, 1, each bound, each
 * bound + 1, 2^64 - 1) exactly as RFC 9110 says: a satisfiable range is a
 * non-empty [start, end) inside [0, size), a-b ends at min(b + 1, size),
 * a suffix of n bytes starts at size - min(n, size), and no arithmetic
 * wraps (UBSan and the checks below would see it).
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/obj.h"
#include "common/xmalloc.h"
#include "proxy/proxy_int.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* What RFC 9110 §14.1.2 asks for, written independently of the code. */
static void
fuzz_range_check(const struct proxy_range *r, uint64_t size)
{
	uint64_t	start = 7, end = 7;
	int		rc;

	rc = proxy_range_resolve(r, size, &start, &end);
	switch (r->kind) {
	case PROXY_RANGE_NONE:
		AZ(rc);
		AN(start == 0 && end == size);
		return;
	case PROXY_RANGE_FROM_TO:
	case PROXY_RANGE_FROM:
		if (r->a >= size) {
			AN(rc == -1);
			AN(start == 7 && end == 7);
			return;
		}
		AZ(rc);
		AN(start == r->a);
		if (r->kind == PROXY_RANGE_FROM_TO && r->b < size)
			AN(end == r->b + 1);
		else
			AN(end == size);
		break;
	case PROXY_RANGE_SUFFIX:
		if (r->b == 0 || size == 0) {
			AN(rc == -1);
			return;
		}
		AZ(rc);
		AN(end == size);
		AN(start == (r->b >= size ? 0 : size - r->b));
		break;
	default:
		WRONG("range kind");
	}
	AN(start < end);
	AN(end <= size);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_range	 r, again;
	char			*s, buf[64];
	uint64_t		 sizes[8];
	size_t			 i;

	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';

	if (proxy_range_parse(s, &r) == 0) {
		AN(r.kind == PROXY_RANGE_NONE && r.a == 0 && r.b == 0);
	} else {
		AN(r.kind == PROXY_RANGE_FROM_TO ||
		    r.kind == PROXY_RANGE_FROM || r.kind == PROXY_RANGE_SUFFIX);
		AZ(strncasecmp(s, "bytes=", 6));
		AZ(strchr(s, ','));
		if (r.kind == PROXY_RANGE_FROM_TO)
			AN(r.a <= r.b);
		/* The canonical spelling parses to the same range. */
		switch (r.kind) {
		case PROXY_RANGE_FROM_TO:
			snprintf(buf, sizeof(buf), "bytes=%" PRIu64 "-%"
			    PRIu64, r.a, r.b);
			break;
		case PROXY_RANGE_FROM:
			snprintf(buf, sizeof(buf), "bytes=%" PRIu64 "-", r.a);
			break;
		default:
			snprintf(buf, sizeof(buf), "bytes=-%" PRIu64, r.b);
			break;
		}
		AN(proxy_range_parse(buf, &again) == 1);
		AN(again.kind == r.kind && again.a == r.a && again.b == r.b);
	}

	sizes[0] = 0;
	sizes[1] = 1;
	sizes[2] = r.a;
	sizes[3] = r.a + 1;	/* wraps to 0 for 2^64 - 1: also a size */
	sizes[4] = r.b;
	sizes[5] = r.b + 1;
	sizes[6] = UINT64_MAX;
	sizes[7] = 1 + (size > 0 ? data[0] : 0);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		fuzz_range_check(&r, sizes[i]);
	free(s);
	return 0;
}
