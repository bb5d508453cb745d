/*
 * semver.c — version tags and ranges (see semver.h).
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/semver.h"

/* One part: digits, or a wildcard (-1).  Advances *s. */
static int
semver_part(const char **s, long *out)
{
	char	*end;

	if (**s == 'x' || **s == 'X' || **s == '*') {
		(*s)++;
		*out = -1;
		return 0;
	}
	if (!isdigit((unsigned char)**s))
		return -1;
	errno = 0;
	*out = strtol(*s, &end, 10);
	if (errno != 0 || *out > INT_MAX)
		return -1;
	*s = end;
	return 0;
}

/* [v]MAJOR[.MINOR[.PATCH]][-pre]; missing parts are -1 (wildcards). */
static int
semver_parse_loose(const char *s, struct semver *v, int allow_wild)
{
	long	*parts[3] = { &v->major, &v->minor, &v->patch };
	int	 i;

	v->major = v->minor = v->patch = -1;
	v->pre = 0;
	if (*s == 'v' || *s == 'V')
		s++;
	for (i = 0; i < 3; i++) {
		if (semver_part(&s, parts[i]) != 0)
			return -1;
		if (*parts[i] == -1 && !allow_wild)
			return -1;
		if (*s != '.')
			break;
		s++;
	}
	if (*s == '-' && s[1] != '\0') {
		v->pre = 1;
		return 0;
	}
	if (*s == '+' && s[1] != '\0')
		return 0;	/* build metadata */
	return *s == '\0' ? 0 : -1;
}

int
semver_parse(const char *s, struct semver *out)
{
	if (semver_parse_loose(s, out, 0) != 0)
		return -1;
	if (out->minor < 0)
		out->minor = 0;
	if (out->patch < 0)
		out->patch = 0;
	return 0;
}

int
semver_cmp(const struct semver *a, const struct semver *b)
{
	if (a->major != b->major)
		return a->major < b->major ? -1 : 1;
	if (a->minor != b->minor)
		return a->minor < b->minor ? -1 : 1;
	if (a->patch != b->patch)
		return a->patch < b->patch ? -1 : 1;
	return a->pre == b->pre ? 0 : a->pre ? -1 : 1;
}

static struct semver
semver_mk(long ma, long mi, long pa)
{
	struct semver	v = { ma, mi, pa, 0 };

	return v;
}

/* Does v satisfy one comparator?  -1 if the comparator is malformed. */
static int
semver_comparator(const char *c, const struct semver *v)
{
	struct semver	b, lo, hi;
	char		op[3] = "";
	int		n = 0, r;

	while (n < 2 && strchr("<>=^~", c[n]) != NULL && c[n] != '\0') {
		op[n] = c[n];
		n++;
	}
	op[n] = '\0';
	if (semver_parse_loose(c + n, &b, 1) != 0 || b.pre || b.major < 0)
		return b.major < 0 && strcmp(c + n, "*") == 0 &&
		    n == 0 ? 1 : -1;
	if (strcmp(op, "^") == 0 || strcmp(op, "~") == 0 || (n == 0 &&
	    (b.minor < 0 || b.patch < 0)) || (strcmp(op, "=") == 0 &&
	    (b.minor < 0 || b.patch < 0))) {
		lo = semver_mk(b.major, b.minor < 0 ? 0 : b.minor,
		    b.patch < 0 ? 0 : b.patch);
		if (op[0] == '^') {
			if (b.major > 0 || b.minor < 0)
				hi = semver_mk(b.major + 1, 0, 0);
			else if (b.minor > 0 || b.patch < 0)
				hi = semver_mk(0, b.minor + 1, 0);
			else
				hi = semver_mk(0, 0, b.patch + 1);
		} else if (op[0] == '~' && b.minor >= 0)
			hi = semver_mk(b.major, b.minor + 1, 0);
		else if (b.minor < 0)
			hi = semver_mk(b.major + 1, 0, 0);
		else if (b.patch < 0)
			hi = semver_mk(b.major, b.minor + 1, 0);
		else
			hi = semver_mk(b.major, b.minor, b.patch + 1);
		return semver_cmp(v, &lo) >= 0 && semver_cmp(v, &hi) < 0;
	}
	if (b.minor < 0)
		b.minor = 0;
	if (b.patch < 0)
		b.patch = 0;
	r = semver_cmp(v, &b);
	if (strcmp(op, ">=") == 0)
		return r >= 0;
	if (strcmp(op, ">") == 0)
		return r > 0;
	if (strcmp(op, "<=") == 0)
		return r <= 0;
	if (strcmp(op, "<") == 0)
		return r < 0;
	if (strcmp(op, "=") == 0 || n == 0)
		return r == 0;
	return -1;
}

int
semver_match(const char *range, const char *tag)
{
	struct semver	 v;
	char		*copy, *tok, *save = NULL;
	int		 ok = 1, r, any = 0;

	if (semver_parse(tag, &v) != 0 || v.pre) {
		/* Not a release version: no match, but say if range is bad. */
		return semver_range_valid(range) == 0 ? 0 : -1;
	}
	copy = strdup(range);
	if (copy == NULL)
		return -1;
	for (tok = strtok_r(copy, " \t", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t", &save)) {
		any = 1;
		if ((r = semver_comparator(tok, &v)) < 0) {
			free(copy);
			return -1;
		}
		ok &= r;
	}
	free(copy);
	return any ? ok : -1;
}

int
semver_range_valid(const char *range)
{
	static const struct semver zero = { 0, 0, 0, 0 };
	char	*copy, *tok, *save = NULL;
	int	 any = 0, bad = 0;

	if ((copy = strdup(range)) == NULL)
		return -1;
	for (tok = strtok_r(copy, " \t", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t", &save)) {
		any = 1;
		if (semver_comparator(tok, &zero) < 0)
			bad = 1;
	}
	free(copy);
	return any && !bad ? 0 : -1;
}
