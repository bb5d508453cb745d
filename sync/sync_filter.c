/*
 * sync_filter.c — the jobs' choices, as pure functions (unit-tested in
 * tests/unit/sync/): which platforms of an index a job wants, which
 * repositories and tags a replication policy wants, and the newest
 * keep_newest of a repository's tags.
 */
#include "autoconf.h"

#include <fnmatch.h>
#include <regex.h>
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

/*
 * Version order: numbers compared as numbers ("v1.10" after "v1.9"); two
 * versions semver reads are in its order, a pre-release before its
 * release ("v2.0-rc1" before "v2.0").
 */
int
sync_version_cmp(const char *x, const char *y)
{
	struct semver	sx, sy;
	int		c;

	if (semver_parse(x, &sx) == 0 && semver_parse(y, &sy) == 0 &&
	    (c = semver_cmp(&sx, &sy)) != 0)
		return c;
	if (*x == 'v')
		x++;
	if (*y == 'v')
		y++;
	while (*x != '\0' && *y != '\0') {
		if (*x >= '0' && *x <= '9' && *y >= '0' && *y <= '9') {
			char *ex, *ey;
			unsigned long long nx = strtoull(x, &ex, 10);
			unsigned long long ny = strtoull(y, &ey, 10);

			if (nx != ny)
				return nx < ny ? -1 : 1;
			x = ex;
			y = ey;
			continue;
		}
		if (*x != *y)
			return (unsigned char)*x - (unsigned char)*y;
		x++;
		y++;
	}
	return (*x != '\0') - (*y != '\0');
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
