/*
 * test_cidr.c — common/cidr.c: prefixes parsed and refused, matching at
 * the prefix's edges, IPv4 mapped into IPv6, loopback.
 */
#include "autoconf.h"

#include <string.h>

#include "common/cidr.h"
#include "tests/lib/tap.h"

static int
in(const char *prefix, const char *addr)
{
	struct cidr	c;

	if (cidr_parse(prefix, &c) != 0)
		bail_out("cidr_parse");
	return cidr_match_str(&c, addr);
}

int
main(void)
{
	static const char *const bad[] = { "", "/8", "10.0.0.0/",
	    "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8x", "10.1.2.3/16",
	    "300.0.0.0/8", "fe80::1/10", "::/129", "10.0.0.0/ 8", "x",
	    "[::1", "10.0.0.0/08x" };
	struct cidr	c;
	size_t		i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(cidr_parse(bad[i], &c) == -1, "refused: '%s'", bad[i]);
	ok(cidr_parse("10.0.0.0/8", &c) == 0 && c.family == 4 && c.bits == 8,
	    "10.0.0.0/8");
	ok(cidr_parse("192.0.2.7", &c) == 0 && c.bits == 32, "a bare v4: /32");
	ok(cidr_parse("::1", &c) == 0 && c.family == 6 && c.bits == 128,
	    "a bare v6: /128");
	ok(cidr_parse("[fd00::]/8", &c) == 0 && c.bits == 8, "[v6]/8");
	ok(cidr_parse("0.0.0.0/0", &c) == 0 && cidr_match_str(&c, "1.2.3.4"),
	    "/0 matches every v4");

	ok(in("10.1.0.0/16", "10.1.0.0") && in("10.1.0.0/16", "10.1.255.255"),
	    "both ends of 10.1.0.0/16");
	ok(!in("10.1.0.0/16", "10.0.255.255") && !in("10.1.0.0/16", "10.2.0.0"),
	    "just outside it");
	ok(in("10.1.2.128/25", "10.1.2.200") && !in("10.1.2.128/25",
	    "10.1.2.127"), "a prefix inside a byte (/25)");
	ok(in("10.0.0.0/8", "::ffff:10.9.9.9"), "v4 mapped into v6 matches v4");
	ok(in("fd00::/8", "fd12:3456::1") && !in("fd00::/8", "fe00::1"), "v6");
	ok(in("fd00::/8", "[fd12::1]"), "a bracketed address");
	ok(!in("10.0.0.0/8", "fd00::1") && !in("fd00::/8", "10.0.0.1"),
	    "families do not mix");
	ok(!in("10.0.0.0/8", "") && !in("10.0.0.0/8", "junk") &&
	    !in("10.0.0.0/8", "10.0.0.1 "), "not addresses: no match");

	ok(cidr_is_loopback_str("127.0.0.1") &&
	    cidr_is_loopback_str("127.255.0.3") &&
	    cidr_is_loopback_str("::1") &&
	    cidr_is_loopback_str("::ffff:127.0.0.1") &&
	    cidr_is_loopback_str("localhost"), "loopback");
	ok(!cidr_is_loopback_str("0.0.0.0") && !cidr_is_loopback_str("::") &&
	    !cidr_is_loopback_str("10.0.0.1") && !cidr_is_loopback_str(""),
	    "not loopback");
	return done_testing();
}
