/*
 * test_range.c — proxy/proxy_range.c, a client's Range header on a blob
 * GET: every form it honours (a-b, a-, -n), what it ignores (several
 * ranges, other units, junk, numbers past 2^64, stray whitespace), and
 * the resolution against blob sizes of 0, 1, 1000 and 2^64 - 1, with
 * the unsatisfiable cases (416) leaving their outputs untouched; then
 * every small range against every small size, against a model.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/text.h"
#include "proxy/proxy_int.h"
#include "tests/lib/tap.h"

#define TB	(UINT64_C(1) << 40)
#define NONE	PROXY_RANGE_NONE
#define FROM_TO	PROXY_RANGE_FROM_TO
#define FROM	PROXY_RANGE_FROM
#define SUFFIX	PROXY_RANGE_SUFFIX

static void
test_parse(void)
{
	static const struct {
		const char		*h;
		enum proxy_range_kind	 kind;	/* NONE: ignored */
		uint64_t		 a, b;
	} t[] = {
		{ "bytes=0-0", FROM_TO, 0, 0 },
		{ "bytes=0-499", FROM_TO, 0, 499 },
		{ "bytes=500-999", FROM_TO, 500, 999 },
		{ "bytes=500-", FROM, 500, 0 },
		{ "bytes=0-", FROM, 0, 0 },
		{ "bytes=-500", SUFFIX, 0, 500 },
		{ "bytes=-0", SUFFIX, 0, 0 },	/* parsed; unsatisfiable */
		{ "bytes=00001-00002", FROM_TO, 1, 2 },
		{ "BYTES=1-2", FROM_TO, 1, 2 },
		{ "Bytes=1-2", FROM_TO, 1, 2 },
		{ "bytes= 1-2", FROM_TO, 1, 2 },
		{ "bytes=   1-2   ", FROM_TO, 1, 2 },
		{ "bytes=1-", FROM, 1, 0 },
		{ "bytes=18446744073709551615-", FROM, UINT64_MAX, 0 },
		{ "bytes=0-18446744073709551615", FROM_TO, 0, UINT64_MAX },
		{ "bytes=-18446744073709551615", SUFFIX, 0, UINT64_MAX },
		{ "bytes=18446744073709551615-18446744073709551615", FROM_TO,
		    UINT64_MAX, UINT64_MAX },
		/* Overflow: ignored, the whole blob. */
		{ "bytes=18446744073709551616-", NONE, 0, 0 },
		{ "bytes=0-18446744073709551616", NONE, 0, 0 },
		{ "bytes=-18446744073709551616", NONE, 0, 0 },
		{ "bytes=99999999999999999999999999-1", NONE, 0, 0 },
		/* Several ranges. */
		{ "bytes=0-1,2-3", NONE, 0, 0 },
		{ "bytes=0-1, 5-", NONE, 0, 0 },
		{ "bytes=0-1,", NONE, 0, 0 },
		{ "bytes=,0-1", NONE, 0, 0 },
		/* Other units, no unit. */
		{ "items=0-1", NONE, 0, 0 },
		{ "bytes 0-1", NONE, 0, 0 },
		{ "bytes:0-1", NONE, 0, 0 },
		{ "byte=0-1", NONE, 0, 0 },
		{ "0-1", NONE, 0, 0 },
		{ " bytes=0-1", NONE, 0, 0 },
		/* Junk. */
		{ "", NONE, 0, 0 },
		{ "bytes=", NONE, 0, 0 },
		{ "bytes=-", NONE, 0, 0 },
		{ "bytes=5-4", NONE, 0, 0 },
		{ "bytes=1 -2", NONE, 0, 0 },
		{ "bytes=1- 2", NONE, 0, 0 },
		{ "bytes=\t1-2", NONE, 0, 0 },
		{ "bytes=1-2\t", NONE, 0, 0 },
		{ "bytes=1-2\r\n", NONE, 0, 0 },
		{ "bytes=+1-2", NONE, 0, 0 },
		{ "bytes=1-+2", NONE, 0, 0 },
		{ "bytes=--1", NONE, 0, 0 },
		{ "bytes=-1-2", NONE, 0, 0 },
		{ "bytes=1--2", NONE, 0, 0 },
		{ "bytes=1-2-", NONE, 0, 0 },
		{ "bytes=1-2x", NONE, 0, 0 },
		{ "bytes=1x-2", NONE, 0, 0 },
		{ "bytes=0x10-", NONE, 0, 0 },
		{ "bytes=1.5-2", NONE, 0, 0 },
		{ "bytes=a-b", NONE, 0, 0 },
	};
	struct proxy_range	r;
	char			shown[128];
	size_t			i;
	int			rc;

	rc = proxy_range_parse(NULL, &r);
	is_int(rc, 0, "no header: none");
	is_int(r.kind, NONE, "  kind NONE");
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&r, 0x5a, sizeof(r));
		rc = proxy_range_parse(t[i].h, &r);
		text_escape(shown, sizeof(shown), t[i].h, strlen(t[i].h));
		is_int(rc, t[i].kind != NONE, "'%s': %s", shown,
		    t[i].kind != NONE ? "honoured" : "ignored");
		is_int(r.kind, t[i].kind, "  kind");
		if (t[i].kind != NONE) {
			is_int(r.a == t[i].a, 1, "  first %" PRIu64, t[i].a);
			is_int(r.b == t[i].b, 1, "  last/length %" PRIu64,
			    t[i].b);
		}
	}
}

/* The leading zeros of a long number are not an overflow. */
static void
test_long_numbers(void)
{
	char			h[1100];
	struct proxy_range	r;

	memcpy(h, "bytes=", 6);
	memset(h + 6, '0', 1000);
	snprintf(h + 1006, sizeof(h) - 1006, "7-");
	is_int(proxy_range_parse(h, &r), 1, "1000 leading zeros");
	is_int(r.kind == FROM && r.a == 7, 1, "  bytes=7-");
}

#define U	UINT64_MAX

static void
test_resolve(void)
{
	static const struct {
		enum proxy_range_kind	 kind;
		uint64_t		 a, b, size;
		int			 rc;
		uint64_t		 start, end;
	} t[] = {
		/* No range: the whole blob, even an empty one. */
		{ NONE, 0, 0, 0, 0, 0, 0 },
		{ NONE, 0, 0, 1, 0, 0, 1 },
		{ NONE, 0, 0, 1000, 0, 0, 1000 },
		{ NONE, 0, 0, U, 0, 0, U },
		/* An empty blob satisfies no range. */
		{ FROM_TO, 0, 0, 0, -1, 0, 0 },
		{ FROM, 0, 0, 0, -1, 0, 0 },
		{ SUFFIX, 0, 1, 0, -1, 0, 0 },
		/* One byte. */
		{ FROM_TO, 0, 0, 1, 0, 0, 1 },
		{ FROM_TO, 0, 5, 1, 0, 0, 1 },
		{ FROM_TO, 1, 1, 1, -1, 0, 0 },
		{ FROM, 0, 0, 1, 0, 0, 1 },
		{ FROM, 1, 0, 1, -1, 0, 0 },
		{ SUFFIX, 0, 1, 1, 0, 0, 1 },
		{ SUFFIX, 0, 2, 1, 0, 0, 1 },
		{ SUFFIX, 0, 0, 1, -1, 0, 0 },
		/* A thousand. */
		{ FROM_TO, 0, 499, 1000, 0, 0, 500 },
		{ FROM_TO, 500, 999, 1000, 0, 500, 1000 },
		{ FROM_TO, 0, 999, 1000, 0, 0, 1000 },
		{ FROM_TO, 0, 1000, 1000, 0, 0, 1000 },
		{ FROM_TO, 999, 5000, 1000, 0, 999, 1000 },
		{ FROM_TO, 999, 999, 1000, 0, 999, 1000 },
		{ FROM_TO, 1000, 1000, 1000, -1, 0, 0 },
		{ FROM_TO, 5000, 6000, 1000, -1, 0, 0 },
		{ FROM, 999, 0, 1000, 0, 999, 1000 },
		{ FROM, 1000, 0, 1000, -1, 0, 0 },
		{ SUFFIX, 0, 500, 1000, 0, 500, 1000 },
		{ SUFFIX, 0, 999, 1000, 0, 1, 1000 },
		{ SUFFIX, 0, 1000, 1000, 0, 0, 1000 },
		{ SUFFIX, 0, 5000, 1000, 0, 0, 1000 },
		{ SUFFIX, 0, 0, 1000, -1, 0, 0 },
		/* At the top of the range: no sum may wrap. */
		{ FROM_TO, 0, U, U, 0, 0, U },
		{ FROM_TO, 0, U - 1, U, 0, 0, U },
		{ FROM_TO, 0, U - 2, U, 0, 0, U - 1 },
		{ FROM_TO, U - 1, U, U, 0, U - 1, U },
		{ FROM_TO, U, U, U, -1, 0, 0 },
		{ FROM, U - 1, 0, U, 0, U - 1, U },
		{ FROM, U, 0, U, -1, 0, 0 },
		{ SUFFIX, 0, U, U, 0, 0, U },
		{ SUFFIX, 0, 1, U, 0, U - 1, U },
		{ FROM_TO, 0, U, 1000, 0, 0, 1000 },
		{ SUFFIX, 0, U, 1000, 0, 0, 1000 },
		/* A blob of 2^40 (the largest size a descriptor may give). */
		{ FROM, 1, 0, TB, 0, 1, TB },
		{ SUFFIX, 0, 10, TB, 0, TB - 10,
		    TB },
	};
	struct proxy_range	r;
	uint64_t		start, end;
	size_t			i;
	int			rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		r.kind = t[i].kind;
		r.a = t[i].a;
		r.b = t[i].b;
		start = end = 77;
		rc = proxy_range_resolve(&r, t[i].size, &start, &end);
		is_int(rc, t[i].rc, "kind %d a %" PRIu64 " b %" PRIu64
		    " of %" PRIu64 ": %s", t[i].kind, t[i].a, t[i].b,
		    t[i].size, t[i].rc == 0 ? "satisfiable" : "416");
		if (t[i].rc == 0)
			ok(start == t[i].start && end == t[i].end,
			    "  [%" PRIu64 ", %" PRIu64 ")", t[i].start,
			    t[i].end);
		else
			ok(start == 77 && end == 77, "  outputs untouched");
	}
}

/* From the header to the bytes sent, as proxy_blob.c uses them. */
static void
test_pipeline(void)
{
	static const struct {
		const char	*h;
		uint64_t	 size;
		int		 rc;
		uint64_t	 start, end;
	} t[] = {
		{ NULL, 10, 0, 0, 10 },
		{ "bytes=0-0", 10, 0, 0, 1 },
		{ "bytes=-3", 10, 0, 7, 10 },
		{ "bytes=8-", 10, 0, 8, 10 },
		{ "bytes=10-", 10, -1, 0, 0 },
		{ "bytes=-0", 10, -1, 0, 0 },
		{ "bytes=0-1,3-4", 10, 0, 0, 10 },	/* ignored: all */
		{ "bytes=5-4", 10, 0, 0, 10 },		/* ignored: all */
		{ "bytes=0-", 0, -1, 0, 0 },
		{ "bytes=5-4", 0, 0, 0, 0 },		/* all of nothing */
	};
	struct proxy_range	r;
	uint64_t		start, end;
	size_t			i;
	int			rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		proxy_range_parse(t[i].h, &r);
		start = end = 77;
		rc = proxy_range_resolve(&r, t[i].size, &start, &end);
		is_int(rc, t[i].rc, "'%s' on %" PRIu64 " bytes",
		    t[i].h != NULL ? t[i].h : "(none)", t[i].size);
		if (t[i].rc == 0)
			ok(start == t[i].start && end == t[i].end,
			    "  [%" PRIu64 ", %" PRIu64 ")", t[i].start,
			    t[i].end);
	}
}

/*
 * The rule written out the slow way (RFC 9110 14.1.2) for one range on
 * one size: 1 when proxy_range_resolve agrees with it, and a satisfiable
 * range is a non-empty [start, end) inside the blob.
 */
static int
model_agrees(enum proxy_range_kind kind, uint64_t a, uint64_t b,
    uint64_t size)
{
	struct proxy_range	r;
	uint64_t		start = 77, end = 77, ws, we;
	int			rc, wrc;

	r.kind = kind;
	r.a = a;
	r.b = b;
	if (kind == SUFFIX) {
		wrc = b > 0 && size > 0 ? 0 : -1;
		ws = b >= size ? 0 : size - b;
		we = size;
	} else {
		wrc = a < size ? 0 : -1;
		ws = a;
		we = kind == FROM || b + 1 > size ? size : b + 1;
	}
	rc = proxy_range_resolve(&r, size, &start, &end);
	if (rc == wrc && (rc != 0 || (start == ws && end == we &&
	    start < end && end <= size)))
		return 1;
	diag("kind %d a %" PRIu64 " b %" PRIu64 " size %" PRIu64 ": rc %d "
	    "[%" PRIu64 ", %" PRIu64 ")", kind, a, b, size, rc, start, end);
	return 0;
}

/* Every range with a, b in 0..8 against every size 0..8. */
static void
test_model(void)
{
	static const enum proxy_range_kind kinds[] = { FROM_TO, FROM, SUFFIX };
	uint64_t	a, b, size;
	size_t		k;
	int		bad = 0, n = 0;

	for (k = 0; k < 3; k++)
		for (a = 0; a <= 8; a++)
			for (b = kinds[k] == FROM_TO ? a : 0; b <= 8; b++)
				for (size = 0; size <= 8; size++, n++)
					if (!model_agrees(kinds[k], a, b,
					    size) && bad++ > 5)
						bail_out("model");
	is_int(bad, 0, "%d small ranges agree with the model", n);
}

int
main(void)
{
	test_parse();
	test_long_numbers();
	test_resolve();
	test_pipeline();
	test_model();
	return done_testing();
}
