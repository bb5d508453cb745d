/*
 * fuzz_semver.c — libFuzzer entry point for common/semver.c, which orders
 * and filters the tags a source upstream lists (replication's
 * keep_newest and version ranges).
 *
 * The input is "RANGE\nTAG" (no newline: the whole input is both).  A
 * parsed version has no negative part and compares equal to itself; the
 * order is antisymmetric; a range semver_range_valid() refuses makes
 * semver_match() say -1 for any tag, and one it accepts never does; a tag
 * with a pre-release part never matches.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/obj.h"
#include "common/semver.h"
#include "common/xmalloc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct semver	 a, b;
	char		*s, *range, *tag, *nl;
	int		 valid, m, ta, tb;

	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	range = s;
	tag = s;
	if ((nl = strchr(s, '\n')) != NULL) {
		*nl = '\0';
		tag = nl + 1;
	}

	ta = semver_parse(range, &a);
	tb = semver_parse(tag, &b);
	if (ta == 0) {
		AN(a.major >= 0 && a.minor >= 0 && a.patch >= 0);
		AZ(semver_cmp(&a, &a));
	}
	if (tb == 0) {
		AN(b.major >= 0 && b.minor >= 0 && b.patch >= 0);
		AZ(semver_cmp(&b, &b));
	}
	if (ta == 0 && tb == 0)
		AN(semver_cmp(&a, &b) == -semver_cmp(&b, &a));

	valid = semver_range_valid(range) == 0;
	m = semver_match(range, tag);
	AN(m == -1 || m == 0 || m == 1);
	AN((m == -1) == !valid);
	if (tb != 0 || b.pre)
		AN(m != 1);
	free(s);
	return 0;
}
