/*
 * sync_filter.c — the jobs' choices, as pure functions (unit-tested in
 * tests/unit/sync/): which platforms of an index a job wants, which
 * repositories and tags a replication policy wants, and the newest
 * keep_newest of a repository's tags.
 */
#include "autoconf.h"

#include <fnmatch.h>
#include <regex.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "common/config.h"
#include "common/semver.h"
#include "common/xmalloc.h"
#include "sync/sync.h"
#include "sync/sync_int.h"

/* A platform a client asks for: "os/arch" or "os/arch/variant". */
int
sync_platform_valid(const char *s)
{
	const char	*slash;
	int		 n = 0;

	if (s == NULL)
		return 0;
	for (;; s = slash + 1) {
		if ((slash = strchr(s, '/')) == NULL)
			slash = s + strlen(s);
		if (!cache_platform_field_valid(s, (size_t)(slash - s)) ||
		    ++n > 3)
			return 0;
		if (*slash == '\0')
			return n >= 2;
	}
}

/*
 * Does an index entry's platform (os, arch, variant; NULL when absent)
 * match one of the n asked for?  None asked for: every entry does.
 * "os/arch" matches any variant; "os/arch/variant" only that one; an
 * entry without os or architecture matches only when none is asked for.
 */
int
sync_platform_match(char *const *plats, size_t n, const char *os,
    const char *arch, const char *variant)
{
	char	buf[3 * (CACHE_PLATFORM_FIELD_MAX + 1)];
	size_t	i;

	if (n == 0)
		return 1;
	if (os == NULL || arch == NULL)
		return 0;
	for (i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "%s/%s", os, arch);
		if (strcmp(plats[i], buf) == 0)
			return 1;
		if (variant != NULL) {
			snprintf(buf, sizeof(buf), "%s/%s/%s", os, arch,
			    variant);
			if (strcmp(plats[i], buf) == 0)
				return 1;
		}
	}
	return 0;
}

/* Does s match one of the n extended regexps, anchored?  None: dflt. */
static int
sync_match_any(char *const *res, size_t n, const char *s, int dflt)
{
	regex_t	re;
	char	*a;
	size_t	i;
	int	m = 0;

	if (n == 0)
		return dflt;
	for (i = 0; i < n && !m; i++) {
		xasprintf(&a, "^(%s)$", res[i]);
		if (regcomp(&re, a, REG_EXTENDED | REG_NOSUB) == 0) {
			m = regexec(&re, s, 0, NULL, 0) == 0;
			regfree(&re);
		}
		free(a);
	}
	return m;
}

/* tags (any if none), not exclude_tags, and semver if set. */
int
sync_tag_wanted(const struct config_replication *cr, const char *tag)
{
	return sync_match_any(cr->tags, cr->ntags, tag, 1) &&
	    !sync_match_any(cr->exclude_tags, cr->nexclude_tags, tag, 0) &&
	    (cr->semver == NULL || semver_match(cr->semver, tag) == 1);
}

/* One of repositories (globs), and none of exclude_repositories. */
int
sync_repo_wanted(const struct config_replication *cr, const char *repo)
{
	size_t	i;
	int	in = 0;

	for (i = 0; i < cr->nrepos && !in; i++)
		in = fnmatch(cr->repos[i], repo, 0) == 0;
	for (i = 0; i < cr->nexclude_repos && in; i++)
		if (fnmatch(cr->exclude_repos[i], repo, 0) == 0)
			in = 0;
	return in;
}

/* x[0..xl) and y[0..yl) with runs of digits compared as numbers. */
static int
sync_natural_cmp(const char *x, size_t xl, const char *y, size_t yl)
{
	const char	*xe = x + xl, *ye = y + yl;

	while (x < xe && y < ye) {
		if (*x >= '0' && *x <= '9' && *y >= '0' && *y <= '9') {
			unsigned long long	nx = 0, ny = 0;
			int			ox = 0, oy = 0;

			for (; x < xe && *x >= '0' && *x <= '9'; x++) {
				ox |= nx > (ULLONG_MAX - 9) / 10;
				nx = nx * 10 + (unsigned)(*x - '0');
			}
			for (; y < ye && *y >= '0' && *y <= '9'; y++) {
				oy |= ny > (ULLONG_MAX - 9) / 10;
				ny = ny * 10 + (unsigned)(*y - '0');
			}
			/* Past 64 bits: after every other, equal to each
			 * other. */
			if (ox)
				nx = ULLONG_MAX;
			if (oy)
				ny = ULLONG_MAX;
			if (nx != ny)
				return nx < ny ? -1 : 1;
			continue;
		}
		if (*x != *y)
			return (unsigned char)*x - (unsigned char)*y;
		x++;
		y++;
	}
	return (x < xe) - (y < ye);
}

/*
 * Version order, a total order whatever the tags: a leading "v" is
 * ignored; the release part (up to the first '-') is compared with
 * numbers as numbers ("v1.10" after "v1.9"); with equal releases, a
 * pre-release comes before its release ("v2.0-rc1" before "v2.0"), and
 * pre-releases are compared the same way ("rc2" before "rc10").  (Semver's
 * own order is not used here: mixed with this one for tags it cannot
 * read, it was not transitive, and keep_newest then kept a different tag
 * for each order the registry listed them in.)
 */
int
sync_version_cmp(const char *x, const char *y)
{
	const char	*px, *py;
	size_t		 xl, yl;
	int		 c;

	if (*x == 'v')
		x++;
	if (*y == 'v')
		y++;
	px = strchr(x, '-');
	py = strchr(y, '-');
	xl = px != NULL ? (size_t)(px - x) : strlen(x);
	yl = py != NULL ? (size_t)(py - y) : strlen(y);
	if ((c = sync_natural_cmp(x, xl, y, yl)) != 0)
		return c;
	if ((px == NULL) != (py == NULL))
		return px != NULL ? -1 : 1;
	if (px == NULL)
		return 0;
	return sync_natural_cmp(px + 1, strlen(px + 1), py + 1,
	    strlen(py + 1));
}

static int
sync_version_qcmp(const void *a, const void *b)
{
	return sync_version_cmp(*(char *const *)a, *(char *const *)b);
}

/*
 * keep_newest: sort the n tags in version order and return where the
 * newest keep of them start (0: keep them all, as keep <= 0 does).
 */
size_t
sync_keep_newest(char **tags, size_t n, int keep)
{
	if (keep <= 0 || n <= (size_t)keep)
		return 0;
	qsort(tags, n, sizeof(*tags), sync_version_qcmp);
	return n - (size_t)keep;
}
