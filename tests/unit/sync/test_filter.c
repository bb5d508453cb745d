/*
 * test_filter.c — the jobs' choices (sync/sync_filter.c): platforms a
 * client may ask for and which index entries they select; the tags and
 * repositories a replication policy wants (regexes, exclusions, a semver
 * range); keep_newest's version order; and where the jobs reach the
 * mirror's own listener (sync_self_addr: the IPv6 listener bug).
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/xmalloc.h"
#include "sync/sync.h"
#include "sync/sync_int.h"
#include "tests/lib/tap.h"

static void
test_platform_valid(void)
{
	static const char *const good[] = { "linux/amd64", "linux/arm64/v8",
	    "windows/amd64/10.0.17763", "a/b" };
	static const char *const bad[] = { "", "linux", "linux/",
	    "/amd64", "linux//amd64", "linux/amd64/", "linux/amd64/v8/x",
	    "linux/am d64", "linux/amd64\n", "linux/\x7f" };
	char	field[70];
	size_t	i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ok(sync_platform_valid(good[i]), "platform '%s' valid",
		    good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(!sync_platform_valid(bad[i]), "platform #%zu refused", i);
	ok(!sync_platform_valid(NULL), "NULL refused");
	/* Each part at most 64 characters. */
	memset(field, 'a', 64);
	strcpy(field + 64, "/x");
	ok(sync_platform_valid(field), "a 64-character os");
	memset(field, 'a', 65);
	strcpy(field + 65, "/x");
	ok(!sync_platform_valid(field), "a 65-character os refused");
}

static void
test_platform_match(void)
{
	char	*amd[] = { "linux/amd64" };
	char	*arm[] = { "linux/arm/v7", "linux/arm64" };

	ok(sync_platform_match(NULL, 0, NULL, NULL, NULL),
	    "nothing asked for: every entry, even one without a platform");
	ok(sync_platform_match(amd, 1, "linux", "amd64", NULL),
	    "os/arch matches");
	ok(sync_platform_match(amd, 1, "linux", "amd64", "v3"),
	    "os/arch matches any variant");
	ok(!sync_platform_match(amd, 1, "linux", "arm64", NULL),
	    "another architecture");
	ok(!sync_platform_match(amd, 1, "unknown", "unknown", NULL),
	    "an attestation manifest (unknown/unknown) is not linux/amd64");
	ok(!sync_platform_match(amd, 1, NULL, "amd64", NULL),
	    "no os: no match when platforms are asked for");
	ok(!sync_platform_match(amd, 1, "linux", NULL, NULL), "no arch");
	ok(sync_platform_match(arm, 2, "linux", "arm", "v7"),
	    "os/arch/variant matches that variant");
	ok(!sync_platform_match(arm, 2, "linux", "arm", "v6"),
	    "not another variant");
	ok(!sync_platform_match(arm, 2, "linux", "arm", NULL),
	    "not an entry without a variant");
	ok(sync_platform_match(arm, 2, "linux", "arm64", "v8"),
	    "the second one asked for");
}

static void
test_tag_wanted(void)
{
	struct config_replication	cr;
	char	*tags[] = { "v[0-9]+\\..*", "latest" };
	char	*excl[] = { ".*-rc.*" };
	char	*badre[] = { "(" };

	memset(&cr, 0, sizeof(cr));
	ok(sync_tag_wanted(&cr, "anything"), "no filter: every tag");
	cr.tags = tags;
	cr.ntags = 2;
	ok(sync_tag_wanted(&cr, "v1.2"), "v1.2 matches v[0-9]+\\..*");
	ok(sync_tag_wanted(&cr, "latest"), "latest");
	ok(!sync_tag_wanted(&cr, "latest-debug"),
	    "regexes match the whole tag");
	ok(!sync_tag_wanted(&cr, "xv1.2"), "anchored at the start too");
	cr.exclude_tags = excl;
	cr.nexclude_tags = 1;
	ok(!sync_tag_wanted(&cr, "v1.3-rc1"), "excluded");
	ok(sync_tag_wanted(&cr, "v1.3"), "not excluded");
	cr.semver = ">=1.2 <2";
	ok(sync_tag_wanted(&cr, "v1.3"), "within the semver range");
	ok(!sync_tag_wanted(&cr, "v2.0"), "outside the semver range");
	ok(!sync_tag_wanted(&cr, "latest"),
	    "a semver range takes only versions");
	memset(&cr, 0, sizeof(cr));
	cr.tags = badre;
	cr.ntags = 1;
	ok(!sync_tag_wanted(&cr, "("), "a regex that does not compile "
	    "matches nothing (and does not crash)");
}

static void
test_repo_wanted(void)
{
	struct config_replication	cr;
	char	*repos[] = { "org/*", "lib/app" };
	char	*excl[] = { "org/secret-*" };

	memset(&cr, 0, sizeof(cr));
	ok(!sync_repo_wanted(&cr, "org/app"), "no repositories: none");
	cr.repos = repos;
	cr.nrepos = 2;
	ok(sync_repo_wanted(&cr, "org/app"), "a glob");
	ok(sync_repo_wanted(&cr, "lib/app"), "a name");
	ok(!sync_repo_wanted(&cr, "lib/app2"), "names are whole");
	/* fnmatch without FNM_PATHNAME, as documented: the glob takes the
	 * whole org/ tree. */
	ok(sync_repo_wanted(&cr, "org/a/b"), "* crosses '/'");
	ok(!sync_repo_wanted(&cr, "orgx/a"), "the prefix is whole");
	cr.exclude_repos = excl;
	cr.nexclude_repos = 1;
	ok(!sync_repo_wanted(&cr, "org/secret-x"), "excluded");
	ok(sync_repo_wanted(&cr, "org/public"), "not excluded");
}

static int
sorted(char **v, size_t n)
{
	size_t	i;

	for (i = 1; i < n; i++)
		if (sync_version_cmp(v[i - 1], v[i]) > 0)
			return 0;
	return 1;
}

/*
 * Version order is a total order on any tags (review: semver's order
 * mixed with plain order had 1.2.0-rc1 < 1.2.0 < 1.2.0- < 1.2.0-rc1), so
 * keep_newest keeps the same tag whatever order the registry lists them.
 */
static void
test_version_order_total(void)
{
	static const char *const t[] = { "1.2.0-rc1", "1.2.0", "1.2.0-",
	    "1.2.0.1", "1.2.0_1", "1.2", "1.2-rc1", "1.10", "1.9.0-beta",
	    "1.2.0a", "1.2.0-rc1-x", "v1.2.0", "1.2.0b", "1.3.0-rc1",
	    "1.2.0-rc0", "1.2.1-rc1", "latest", "v", "", "-", "v-1", "01.2",
	    "1.02", "99999999999999999999", "1.0.0-alpha.1",
	    "1.0.0-alpha.beta", "1.0.0-rc.10", "1.0.0-rc.9" };
	const size_t	n = sizeof(t) / sizeof(t[0]);
	size_t		a, b, c, bad = 0, anti = 0;
	char		*v[3];
	const char	*kept[6];
	int		p, same = 1;
	static const int perm[6][3] = { { 0, 1, 2 }, { 0, 2, 1 },
	    { 1, 0, 2 }, { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };

	for (a = 0; a < n; a++)
		for (b = 0; b < n; b++) {
			int ab = sync_version_cmp(t[a], t[b]);
			int ba = sync_version_cmp(t[b], t[a]);

			anti += (ab > 0) != (ba < 0) || (ab == 0) != (ba == 0);
			for (c = 0; c < n; c++)
				bad += ab <= 0 &&
				    sync_version_cmp(t[b], t[c]) <= 0 &&
				    sync_version_cmp(t[a], t[c]) > 0;
		}
	is_int((long long)anti, 0, "version order: antisymmetric");
	is_int((long long)bad, 0, "version order: transitive (%zu^3 triples)",
	    n);
	for (p = 0; p < 6; p++) {
		v[perm[p][0]] = (char *)"1.2.0-rc1";
		v[perm[p][1]] = (char *)"1.2.0";
		v[perm[p][2]] = (char *)"1.2.0-";
		kept[p] = v[sync_keep_newest(v, 3, 1)];
		same &= strcmp(kept[p], kept[0]) == 0;
	}
	ok(same, "keep_newest = 1 keeps %s in every listing order", kept[0]);
}

static void
test_keep_newest(void)
{
	char	*t1[] = { "v1.9", "v1.10", "v1.2", "v1.11", "v1.10.1" };
	char	*t2[] = { "v2.0", "v2.0-rc1", "v1.9", "v2.0-rc2" };
	char	*t3[] = { "b", "a" };
	size_t	 from;

	ok(sync_version_cmp("v1.10", "v1.9") > 0, "v1.10 after v1.9");
	ok(sync_version_cmp("1.10", "v1.9") > 0, "with or without v");
	ok(sync_version_cmp("v2.0-rc1", "v2.0") < 0,
	    "a pre-release before its release");
	ok(sync_version_cmp("v2.0-rc1", "v2.0-rc2") < 0, "rc1 before rc2");
	ok(sync_version_cmp("v1.2", "v1.2") == 0, "equal");
	ok(sync_version_cmp("18446744073709551616", "2") != 0,
	    "a number past 64 bits does not crash");

	from = sync_keep_newest(t1, 5, 2);
	is_int((long long)from, 3, "keep 2 of 5: from the fourth");
	ok(sorted(t1, 5), "sorted in version order");
	is_str(t1[3], "v1.10.1", "second newest");
	is_str(t1[4], "v1.11", "newest");
	from = sync_keep_newest(t2, 4, 1);
	is_str(t2[from], "v2.0", "the release is newer than its rcs");
	is_str(t2[0], "v1.9", "oldest first");
	from = sync_keep_newest(t3, 2, 0);
	is_int((long long)from, 0, "keep_newest = 0: all");
	is_str(t3[0], "b", "and not reordered");
	from = sync_keep_newest(t3, 2, 5);
	is_int((long long)from, 0, "fewer than keep_newest: all");
	is_int((long long)sync_keep_newest(NULL, 0, 3), 0, "none");
}

static void
self_is(const char *listen, const char *host, int port)
{
	char	*h = NULL;
	int	 p = 0;

	if (host == NULL) {
		ok(sync_self_addr(listen, &h, &p) == -1, "'%s' refused",
		    listen);
		return;
	}
	ok(sync_self_addr(listen, &h, &p) == 0, "'%s' taken", listen);
	is_str(h, host, "'%s': host", listen);
	is_int(p, port, "'%s': port", listen);
	free(h);
}

static void
test_self_addr(void)
{
	self_is("127.0.0.1:5000", "127.0.0.1", 5000);
	self_is(":5000", "127.0.0.1", 5000);
	self_is("0.0.0.0:5001", "127.0.0.1", 5001);
	self_is("[::]:5000", "::1", 5000);
	self_is("[0:0::0]:5000", "::1", 5000);
	self_is("[::1]:5000", "::1", 5000);
	/* The bug: every other IPv6 listener was reached at ::1. */
	self_is("[fd00::5]:5000", "fd00::5", 5000);
	self_is("[::ffff:127.0.0.1]:80", "::ffff:127.0.0.1", 80);
	self_is("localhost:8080", "localhost", 8080);
	self_is("10.1.2.3:1", "10.1.2.3", 1);
	self_is("127.0.0.1", NULL, 0);
	self_is("127.0.0.1:0", NULL, 0);
	self_is("127.0.0.1:65536", NULL, 0);
	self_is("[::1:5000", NULL, 0);
	self_is("[]:5000", NULL, 0);
}

int
main(void)
{
	test_platform_valid();
	test_platform_match();
	test_tag_wanted();
	test_repo_wanted();
	test_version_order_total();
	test_keep_newest();
	test_self_addr();
	return done_testing();
}
