/*
 * test_semver.c — version tags and ranges for replication filters.
 */
#include "autoconf.h"

#include "common/semver.h"
#include "tests/lib/tap.h"

int
main(void)
{
	struct semver	a, b;

	ok(semver_parse("1.2.3", &a) == 0 && a.major == 1 && a.minor == 2 &&
	    a.patch == 3 && !a.pre, "1.2.3");
	ok(semver_parse("v2", &a) == 0 && a.major == 2 && a.minor == 0,
	    "v2 is 2.0.0");
	ok(semver_parse("1.2.3-rc1", &a) == 0 && a.pre, "pre-release");
	ok(semver_parse("latest", &a) == -1, "latest is not a version");
	ok(semver_parse("1.2.x", &a) == -1, "wildcards are not tags");
	ok(semver_parse("1..2", &a) == -1, "1..2");
	semver_parse("1.10.0", &a);
	semver_parse("1.9.9", &b);
	ok(semver_cmp(&a, &b) > 0, "1.10.0 > 1.9.9");
	semver_parse("1.2.3-rc1", &a);
	semver_parse("1.2.3", &b);
	ok(semver_cmp(&a, &b) < 0, "1.2.3-rc1 < 1.2.3");

	ok(semver_match(">=1.2.0 <2.0.0", "1.5.0") == 1, ">=1.2 <2: 1.5.0");
	ok(semver_match(">=1.2.0 <2.0.0", "2.0.0") == 0, ">=1.2 <2: 2.0.0");
	ok(semver_match(">=1.2.0 <2.0.0", "v1.2") == 1, ">=1.2 <2: v1.2");
	ok(semver_match("^1.2", "1.9.3") == 1, "^1.2: 1.9.3");
	ok(semver_match("^1.2", "2.0.0") == 0, "^1.2: 2.0.0");
	ok(semver_match("^0.2.3", "0.2.9") == 1, "^0.2.3: 0.2.9");
	ok(semver_match("^0.2.3", "0.3.0") == 0, "^0.2.3: 0.3.0");
	ok(semver_match("~1.2.3", "1.2.9") == 1, "~1.2.3: 1.2.9");
	ok(semver_match("~1.2.3", "1.3.0") == 0, "~1.2.3: 1.3.0");
	ok(semver_match("1.x", "1.7.0") == 1, "1.x: 1.7.0");
	ok(semver_match("1.x", "2.0.0") == 0, "1.x: 2.0.0");
	ok(semver_match("1.2", "1.2.7") == 1, "1.2: 1.2.7");
	ok(semver_match("=1.2.3", "1.2.3") == 1, "=1.2.3");
	ok(semver_match(">1.2.3", "1.2.3") == 0, ">1.2.3: 1.2.3");
	ok(semver_match("<=1.2.3", "1.2.3") == 1, "<=1.2.3: 1.2.3");
	ok(semver_match(">=1.0.0", "1.5.0-rc1") == 0, "pre-releases excluded");
	ok(semver_match(">=1.0.0", "latest") == 0, "latest never matches");
	ok(semver_match("*", "3.1.4") == 1, "* matches any release");
	ok(semver_match(">=banana", "1.0.0") == -1, "malformed range");
	ok(semver_range_valid(">=1.2 <2") == 0, "valid range");
	ok(semver_range_valid("") == -1, "empty range");
	ok(semver_range_valid("=>1") == -1, "=> is not an operator");
	return done_testing();
}
