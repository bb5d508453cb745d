/*
 * cmd_cache.c — "regmirror cache ls|du|verify|gc|evict|pin|unpin": the
 * operator's view of the cache.  Safe while the daemon runs: LMDB is
 * multi-process, removals go index-first, and fills live in tmp/.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cache/cache.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/log.h"
#include "common/ref.h"
#include "common/xmalloc.h"
#include "cli/cmd.h"

struct cmd_opts {
	int		 json;
	int		 dry_run;
	long		 grace;		/* gc, seconds */
	long		 pin_for;	/* pin, seconds; 0 forever */
	uint64_t	 to;		/* evict --to */
	int		 have_to;
	char		**args;
	int		 nargs;
};

static void
cmd_json_print(json_t *j)
{
	char	*s = json_dumps(j, JSON_COMPACT);

	printf("%s\n", s);
	free(s);
	json_decref(j);
}

static void
cmd_human(uint64_t n, char *buf, size_t len)
{
	static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double	 v = (double)n;
	int	 i = 0;

	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, i == 0 ? "%.0f %s" : "%.1f %s", v, u[i]);
}

/*
 * --json streams {"tags":[...],"blobs":[...]} one element at a time, so
 * that memory does not grow with the index (a million blobs is 180 MB of
 * JSON).
 */
struct cmd_ls {
	int	json;
	int	blobs;		/* the blobs array has begun */
	size_t	n;		/* elements printed in the current array */
};

/* One element; one jansson refuses (not UTF-8) is left out, with a line. */
static void
cmd_ls_json(struct cmd_ls *ls, json_t *j, const char *what)
{
	if (j == NULL) {
		log_warnx("cache ls: %s is not valid UTF-8; left out", what);
		return;
	}
	if (ls->n++ > 0)
		putchar(',');
	json_dumpf(j, stdout, JSON_COMPACT);
	json_decref(j);
}

static void
cmd_ls_blobs_begin(struct cmd_ls *ls)
{
	if (ls->blobs)
		return;
	fputs("],\"blobs\":[", stdout);
	ls->blobs = 1;
	ls->n = 0;
}

static int
cmd_ls_blob_cb(const struct cache_ls_blob *rec, void *arg)
{
	struct cmd_ls	*ls = arg;
	char		 h[32], t[32];
	time_t		 la = (time_t)rec->last_access;
	struct tm	 tm;

	if (ls->json) {
		cmd_ls_blobs_begin(ls);
		cmd_ls_json(ls, json_pack("{s:s,s:I,s:I,s:I,s:I}",
		    "digest", rec->digest, "size", (json_int_t)rec->size,
		    "stored", (json_int_t)rec->stored,
		    "last_access", (json_int_t)rec->last_access,
		    "pinned_until", (json_int_t)rec->pinned_until),
		    rec->digest);
		return 0;
	}
	gmtime_r(&la, &tm);
	strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
	cmd_human(rec->size, h, sizeof(h));
	printf("blob  %-71s %10s  last used %s%s\n", rec->digest, h, t,
	    rec->pinned_until == -1 ? "  pinned" :
	    rec->pinned_until > (int64_t)time(NULL) ? "  pinned (until)" : "");
	return 0;
}

static int
cmd_ls_tag_cb(const struct cache_ls_tag *rec, void *arg)
{
	struct cmd_ls	*ls = arg;

	if (ls->json) {
		cmd_ls_json(ls, json_pack("{s:s,s:s,s:s,s:s,s:I}",
		    "upstream", rec->upstream, "repository", rec->repo, "tag",
		    rec->tag, "digest", rec->digest != NULL ? rec->digest : "",
		    "validated", (json_int_t)rec->validated), rec->tag);
		return 0;
	}
	printf("tag   %s/%s:%s -> %s\n", rec->upstream, rec->repo, rec->tag,
	    rec->digest != NULL ? rec->digest : "(not found upstream)");
	return 0;
}

static int
cmd_ls(struct cmd_opts *o)
{
	struct cmd_ls	ls = { o->json, 0, 0 };

	if (o->json)
		fputs("{\"tags\":[", stdout);
	if (cache_ls(cmd_ls_tag_cb, cmd_ls_blob_cb, &ls) != 0) {
		if (o->json)
			putchar('\n');	/* the JSON is cut short: exit 1 */
		return 1;
	}
	if (o->json) {
		cmd_ls_blobs_begin(&ls);
		fputs("]}\n", stdout);
	}
	return 0;
}

/* The same fields as GET /api/v1/cache (proxy_admin.c). */
static int
cmd_du(struct cmd_opts *o)
{
	struct cache_du	du;
	char		a[32], b[32], c[32], m[32], x[32], u[32];

	if (cache_du(&du) != 0)
		return 1;
	if (o->json) {
		cmd_json_print(cache_du_json(&du));
		return 0;
	}
	cmd_human(du.bytes, a, sizeof(a));
	cmd_human(du.pinned_bytes, b, sizeof(b));
	cmd_human(du.max_bytes, c, sizeof(c));
	cmd_human(du.manifest_bytes, m, sizeof(m));
	cmd_human(du.index_bytes, x, sizeof(x));
	cmd_human(du.used_bytes, u, sizeof(u));
	printf("%llu blobs, %s (%llu bytes); pinned: %llu blobs, %s\n"
	    "%llu manifests, %s; %llu tags; %llu negative entries (max "
	    "%llu); %llu links\nindex %s; used %s of max_size %s\n",
	    (unsigned long long)du.blobs, a, (unsigned long long)du.bytes,
	    (unsigned long long)du.pinned_blobs, b,
	    (unsigned long long)du.manifests, m, (unsigned long long)du.tags,
	    (unsigned long long)du.negative_tags,
	    (unsigned long long)du.max_negative,
	    (unsigned long long)du.links, x, u,
	    du.max_bytes ? c : "unlimited");
	return 0;
}

static void
cmd_verify_progress(const char *digest, int ok, void *arg)
{
	json_t	*a = arg;

	if (a != NULL)
		json_array_append_new(a, json_pack("{s:s,s:b}", "digest",
		    digest, "ok", ok));
	else
		printf("%s %s\n", ok ? "ok     " : "CORRUPT", digest);
}

static int
cmd_verify(struct cmd_opts *o)
{
	json_t	*a = o->json ? json_array() : NULL;
	size_t	 checked, bad;

	if (cache_verify_all(&checked, &bad, cmd_verify_progress, a) != 0)
		return 1;
	if (o->json)
		cmd_json_print(json_pack("{s:I,s:I,s:o}", "checked",
		    (json_int_t)checked, "corrupt", (json_int_t)bad,
		    "blobs", a));
	else
		printf("%zu blobs checked, %zu corrupt (moved to "
		    "quarantine/)\n", checked, bad);
	return bad > 0 ? 3 : 0;
}

/* "removed" and "bytes" are blobs, as before manifests were collected. */
static int
cmd_gc(const struct config *cfg, struct cmd_opts *o)
{
	struct cache_gc_opts	g = { cfg, o->grace, 1, o->dry_run };
	struct cache_gc_result	r;

	if (cache_gc(&g, &r) != 0)
		return 1;
	if (o->json)
		cmd_json_print(json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b}",
		    "removed", (json_int_t)r.blobs, "bytes",
		    (json_int_t)r.blob_bytes, "manifests",
		    (json_int_t)r.manifests, "manifest_bytes",
		    (json_int_t)r.manifest_bytes, "tags", (json_int_t)r.tags,
		    "negative_tags", (json_int_t)r.negatives, "links",
		    (json_int_t)r.links, "dry_run", o->dry_run));
	else
		printf("%s%zu blobs, %llu bytes; %zu manifests, %llu bytes; "
		    "%zu tags; %zu negative entries; %zu links\n",
		    o->dry_run ? "would remove " : "removed ", r.blobs,
		    (unsigned long long)r.blob_bytes, r.manifests,
		    (unsigned long long)r.manifest_bytes, r.tags, r.negatives,
		    r.links);
	return 0;
}

static int
cmd_evict(struct cmd_opts *o)
{
	int	i, n = 0, rc = 0;
	struct digest d;

	if (o->have_to) {
		if ((n = cache_evict_lru(o->to, 0)) < 0)
			return 1;
	} else {
		if (o->nargs == 0) {
			fprintf(stderr, "regmirror cache evict: give digests "
			    "or --to SIZE\n");
			return 2;
		}
		for (i = 0; i < o->nargs; i++) {
			if (digest_parse(o->args[i], &d) != 0) {
				fprintf(stderr, "%s: not a digest\n",
				    o->args[i]);
				rc = 2;
				continue;
			}
			switch (cache_blob_remove(d.str, "evicted by the "
			    "operator")) {
			case 0:
				n++;
				break;
			case 1:
				fprintf(stderr, "%s: not cached\n", d.str);
				rc = 1;
				break;
			default:
				rc = 1;
			}
		}
	}
	if (o->json)
		cmd_json_print(json_pack("{s:i}", "evicted", n));
	else
		printf("evicted %d blobs\n", n);
	return rc;
}

struct cmd_pin_walk {
	int64_t	until;
	int	n;
};

static void
cmd_pin_cb(const char *digest, int is_manifest, void *arg)
{
	struct cmd_pin_walk	*p = arg;

	(void)is_manifest;
	if (cache_blob_pin(digest, p->until) == 0)
		p->n++;
}

/* A digest, or an image reference resolved through the cached tags. */
static int
cmd_pin_one(const struct config *cfg, const char *arg, int64_t until,
    int *count)
{
	struct cmd_pin_walk	 w = { until, 0 };
	struct ref_image	 ri;
	struct digest		 d;
	const struct config_upstream *cu;
	char			 digest[DIGEST_STR_MAX];
	int64_t			 validated;
	char			*repo = NULL;

	if (digest_parse(arg, &d) == 0) {
		cache_manifest_walk(d.str, cmd_pin_cb, &w);
		*count += w.n;
		return w.n > 0 ? 0 : 1;
	}
	if (ref_image_parse(arg, &ri) != 0) {
		fprintf(stderr, "%s: not a digest or image reference\n", arg);
		return 2;
	}
	cu = ri.host != NULL ? config_upstream_find(cfg, ri.host) :
	    config_upstream_default(cfg);
	if (cu == NULL) {
		fprintf(stderr, "%s: no upstream for it in the config\n", arg);
		ref_image_fini(&ri);
		return 2;
	}
	if (strchr(ri.name, '/') == NULL && strcmp(cu->name, "docker.io") == 0)
		xasprintf(&repo, "library/%s", ri.name);
	else
		repo = xstrdup(ri.name);
	if (ri.digest != NULL)
		snprintf(digest, sizeof(digest), "%s", ri.digest);
	else if (cache_tag_get(cu->name, repo, ri.tag != NULL ? ri.tag :
	    "latest", digest, &validated) != 0 ||
	    strcmp(digest, CACHE_TAG_NEGATIVE) == 0) {
		fprintf(stderr, "%s: not cached\n", arg);
		free(repo);
		ref_image_fini(&ri);
		return 1;
	}
	cache_manifest_walk(digest, cmd_pin_cb, &w);
	*count += w.n;
	free(repo);
	ref_image_fini(&ri);
	return w.n > 0 ? 0 : 1;
}

static int
cmd_pin(const struct config *cfg, struct cmd_opts *o, int unpin)
{
	int64_t	until;
	int	i, n = 0, rc = 0, r;

	if (o->nargs == 0) {
		fprintf(stderr, "regmirror cache %s: give digests or images\n",
		    unpin ? "unpin" : "pin");
		return 2;
	}
	until = unpin ? 0 : o->pin_for > 0 ?
	    (int64_t)time(NULL) + o->pin_for : -1;
	for (i = 0; i < o->nargs; i++)
		if ((r = cmd_pin_one(cfg, o->args[i], until, &n)) != 0) {
			if (r == 1)
				fprintf(stderr, "%s: nothing cached to %s\n",
				    o->args[i], unpin ? "unpin" : "pin");
			rc = r;
		}
	if (o->json)
		cmd_json_print(json_pack("{s:s,s:i}", "action",
		    unpin ? "unpin" : "pin", "blobs", n));
	else
		printf("%s %d blobs\n", unpin ? "unpinned" : "pinned", n);
	return rc;
}

int
cmd_cache(const struct config *cfg, int argc, char **argv)
{
	struct cmd_opts	 o;
	const char	*sub;
	int		 i, rc;

	if (argc < 1) {
		fprintf(stderr, "usage: regmirror cache "
		    "ls|du|verify|gc|evict|pin|unpin [options]\n");
		return 2;
	}
	sub = argv[0];
	memset(&o, 0, sizeof(o));
	o.grace = cfg->gc_grace;
	o.args = xcalloc((size_t)argc, sizeof(*o.args));
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			o.json = 1;
		else if (strcmp(argv[i], "--dry-run") == 0)
			o.dry_run = 1;
		else if (strcmp(argv[i], "--grace") == 0 && i + 1 < argc) {
			if (config_parse_duration(argv[++i], &o.grace) != 0)
				goto bad;
		} else if (strcmp(argv[i], "--for") == 0 && i + 1 < argc) {
			if (config_parse_duration(argv[++i], &o.pin_for) != 0)
				goto bad;
		} else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc) {
			if (config_parse_size(argv[++i], &o.to) != 0)
				goto bad;
			o.have_to = 1;
		} else if (argv[i][0] == '-') {
			goto bad;
		} else
			o.args[o.nargs++] = argv[i];
	}
	if (cache_open_shared(cfg) != 0) {
		free(o.args);
		return 1;
	}
	if (strcmp(sub, "ls") == 0)
		rc = cmd_ls(&o);
	else if (strcmp(sub, "du") == 0)
		rc = cmd_du(&o);
	else if (strcmp(sub, "verify") == 0)
		rc = cmd_verify(&o);
	else if (strcmp(sub, "gc") == 0)
		rc = cmd_gc(cfg, &o);
	else if (strcmp(sub, "evict") == 0)
		rc = cmd_evict(&o);
	else if (strcmp(sub, "pin") == 0)
		rc = cmd_pin(cfg, &o, 0);
	else if (strcmp(sub, "unpin") == 0)
		rc = cmd_pin(cfg, &o, 1);
	else {
		fprintf(stderr, "regmirror cache: unknown subcommand '%s'\n",
		    sub);
		rc = 2;
	}
	cache_close();
	free(o.args);
	return rc;
bad:
	fprintf(stderr, "regmirror cache %s: bad option '%s'\n", sub,
	    argv[i]);
	free(o.args);
	return 2;
}
