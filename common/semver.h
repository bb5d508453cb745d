/*
 * semver.h — versions in tags ("1.2.3", "v1.2", "2") and ranges of them,
 * for replication filters:
 *
 *	range := comparator (whitespace comparator)*	all must hold
 *	comparator := [op] version	op: >= > <= < = ^ ~ (none: =)
 *	version := [v]MAJOR[.MINOR[.PATCH]] with x or * for a wildcard part
 *
 * "^1.2" is >=1.2.0 <2.0.0 (^0.2 is >=0.2.0 <0.3.0); "~1.2.3" is
 * >=1.2.3 <1.3.0; "1.x" is >=1.0.0 <2.0.0.  Tags with a pre-release part
 * ("1.2.3-rc1") never match a range.
 */
#ifndef COMMON_SEMVER_H
#define COMMON_SEMVER_H

struct semver {
	long	major, minor, patch;
	int	pre;		/* has a -pre-release part */
};

/* 0 and *out set if s is a version ("v" prefix allowed), -1 otherwise. */
int	semver_parse(const char *s, struct semver *out);
/* -1, 0, 1 like strcmp (pre-releases sort before their release). */
int	semver_cmp(const struct semver *, const struct semver *);
/* 1 if tag is a version within range, 0 if not, -1 if range is malformed. */
int	semver_match(const char *range, const char *tag);
/* 0 if range is well-formed. */
int	semver_range_valid(const char *range);

#endif
