/*
 * test_route.c — proxy/proxy_route.c, the routing of a request target: a
 * table of paths and queries, against upstreams with aliases, with and
 * without a default, to the upstream, repository (Docker Hub's library/
 * prefix, counted in the 255-byte limit), kind, reference and the query
 * passed on; or to the exact refusal (status, OCI code, message):
 * absolute URIs, dot segments, //, overlong paths, unknown ns, prefixes
 * and first components, no default, bad names, tags and digests, and the
 * query rules (n, last, artifactType, once each; ns).
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/digest.h"
#include "common/xmalloc.h"
#include "proxy/proxy_int.h"
#include "tests/lib/tap.h"

/*
 * Routing never looks inside an upstream (it goes through the callbacks
 * of struct proxy_route_cfg), so the test has a struct of its own.
 */
struct upstream {
	const char	*name;
	const char	*aliases[3];
	int		 hub;
};

static struct upstream test_ups[] = {
	{ "docker.io", { "dockerhub", NULL }, 1 },
	{ "ghcr.io", { "gh", NULL }, 0 },
	{ "local", { "localhost", "localhost:5000", NULL }, 0 },
	{ "mirror", { NULL }, 0 },
};
#define NUPS	(sizeof(test_ups) / sizeof(test_ups[0]))

/* arg: the default upstream, or NULL. */
static struct upstream *
test_find(const char *name, void *arg)
{
	size_t	i, j;

	if (name == NULL)
		return arg;
	for (i = 0; i < NUPS; i++) {
		if (strcasecmp(test_ups[i].name, name) == 0)
			return &test_ups[i];
		for (j = 0; test_ups[i].aliases[j] != NULL; j++)
			if (strcasecmp(test_ups[i].aliases[j], name) == 0)
				return &test_ups[i];
	}
	return NULL;
}

static int
test_docker_hub(const struct upstream *up, void *arg)
{
	(void)arg;
	return up->hub;
}

static const struct proxy_route_cfg cfg_dflt = {
	test_find, test_docker_hub, &test_ups[0]
};
static const struct proxy_route_cfg cfg_nodflt = {
	test_find, test_docker_hub, NULL
};

#define D64	"0123456789abcdef0123456789abcdef" \
		"0123456789abcdef0123456789abcdef"
#define DG	"sha256:" D64

struct route_case {
	const char	*uri;
	int		 nodflt;	/* no default upstream */
	const char	*up;		/* routed to (or known on refusal) */
	enum proxy_kind	 kind;
	const char	*repo, *ref, *query, *ns;
	int		 status;	/* 0: routed; else the refusal */
	const char	*code, *msg;
};

static const struct route_case cases[] = {
	/* The base and the catalog. */
	{ .uri = "/v2/", .kind = PROXY_KIND_BASE },
	{ .uri = "/v2", .kind = PROXY_KIND_BASE },
	{ .uri = "/v2/", .nodflt = 1, .kind = PROXY_KIND_BASE },
	{ .uri = "/v2/?ns=ghcr.io", .up = "ghcr.io", .ns = "ghcr.io",
	    .kind = PROXY_KIND_BASE },
	{ .uri = "/v2/?ns=gh", .up = "ghcr.io", .ns = "gh",
	    .kind = PROXY_KIND_BASE },
	{ .uri = "/ghcr.io/v2/", .up = "ghcr.io", .kind = PROXY_KIND_BASE },
	{ .uri = "/ghcr.io/v2", .up = "ghcr.io", .kind = PROXY_KIND_BASE },
	{ .uri = "/mirror/v2/", .up = "mirror", .kind = PROXY_KIND_BASE },
	{ .uri = "/v2/_catalog", .up = "docker.io", .repo = "_catalog",
	    .kind = PROXY_KIND_CATALOG },
	{ .uri = "/v2/_catalog?n=10&last=abc", .up = "docker.io",
	    .repo = "_catalog", .query = "n=10&last=abc",
	    .kind = PROXY_KIND_CATALOG },
	{ .uri = "/v2/_catalog?ns=local", .up = "local", .ns = "local",
	    .repo = "_catalog", .kind = PROXY_KIND_CATALOG },
	{ .uri = "/v2/_catalog", .nodflt = 1, .status = 404,
	    .code = "NAME_UNKNOWN",
	    .msg = "request names no upstream and none is the default" },

	/* Manifests; Docker Hub's library/ prefix for one component. */
	{ .uri = "/v2/alpine/manifests/latest", .up = "docker.io",
	    .repo = "library/alpine", .ref = "latest",
	    .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/v2/org/app/manifests/v1.2", .up = "docker.io",
	    .repo = "org/app", .ref = "v1.2", .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/v2/alpine/manifests/latest?ns=ghcr.io", .up = "ghcr.io",
	    .ns = "ghcr.io", .repo = "alpine", .ref = "latest",
	    .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/v2/a/b/c/d/manifests/V_1-x.y", .up = "docker.io",
	    .repo = "a/b/c/d", .ref = "V_1-x.y", .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/v2/org/app/manifests/list", .up = "docker.io",
	    .repo = "org/app", .ref = "list", .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/v2/org/app/manifests/" DG, .up = "docker.io",
	    .repo = "org/app", .ref = DG, .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/v2/org/app/manifests/v1?last=x", .up = "docker.io",
	    .repo = "org/app", .ref = "v1", .query = "last=x",
	    .kind = PROXY_KIND_MANIFEST },

	/* podman/CRI-O: a first component that names an upstream and looks
	 * like a host ('.', ':' or localhost). */
	{ .uri = "/v2/ghcr.io/org/app/manifests/v1", .up = "ghcr.io",
	    .repo = "org/app", .ref = "v1", .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/v2/GHCR.IO/org/app/manifests/v1", .up = "ghcr.io",
	    .repo = "org/app", .ref = "v1", .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/v2/docker.io/alpine/manifests/3", .up = "docker.io",
	    .repo = "library/alpine", .ref = "3",
	    .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/v2/localhost/app/tags/list", .up = "local",
	    .repo = "app", .kind = PROXY_KIND_TAGS },
	{ .uri = "/v2/localhost:5000/app/manifests/v1", .up = "local",
	    .repo = "app", .ref = "v1", .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/v2/ghcr.io/org/app/manifests/v1", .nodflt = 1,
	    .up = "ghcr.io", .repo = "org/app", .ref = "v1",
	    .kind = PROXY_KIND_MANIFEST },
	/* An alias without a dot is a repository component, not a route. */
	{ .uri = "/v2/gh/org/app/manifests/v1", .up = "docker.io",
	    .repo = "gh/org/app", .ref = "v1", .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/v2/local/app/manifests/v1", .up = "docker.io",
	    .repo = "local/app", .ref = "v1", .kind = PROXY_KIND_MANIFEST },
	/* A host nobody configured: a name on the default upstream. */
	{ .uri = "/v2/unknown.example/app/manifests/v1", .up = "docker.io",
	    .repo = "unknown.example/app", .ref = "v1",
	    .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/v2/ghcr.io/manifests/v1", .up = "docker.io",
	    .repo = "library/ghcr.io", .ref = "v1",
	    .kind = PROXY_KIND_MANIFEST },
	/* ns wins over a prefix and over a first component. */
	{ .uri = "/docker.io/v2/app/manifests/v1?ns=ghcr.io", .up = "ghcr.io",
	    .ns = "ghcr.io", .repo = "app", .ref = "v1",
	    .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/v2/docker.io/app/manifests/v1?ns=ghcr.io", .up = "ghcr.io",
	    .ns = "ghcr.io", .repo = "docker.io/app", .ref = "v1",
	    .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/v2/app/manifests/v1?ns=nope&ns=ghcr.io", .up = "ghcr.io",
	    .ns = "ghcr.io", .repo = "app", .ref = "v1",
	    .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/v2/a/manifests/v1?ns=ghcr.io&ns=gh", .up = "ghcr.io",
	    .ns = "gh", .repo = "a", .ref = "v1",
	    .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/ghcr.io/v2/org/app/manifests/v1", .up = "ghcr.io",
	    .repo = "org/app", .ref = "v1", .kind = PROXY_KIND_MANIFEST },
	{ .uri = "/dockerhub/v2/busybox/manifests/1", .up = "docker.io",
	    .repo = "library/busybox", .ref = "1",
	    .kind = PROXY_KIND_MANIFEST },

	/* Blobs, tags, referrers. */
	{ .uri = "/v2/org/app/blobs/" DG, .up = "docker.io",
	    .repo = "org/app", .ref = DG, .kind = PROXY_KIND_BLOB },
	{ .uri = "/v2/app/tags/list", .up = "docker.io",
	    .repo = "library/app", .kind = PROXY_KIND_TAGS },
	{ .uri = "/v2/tags/tags/list", .up = "docker.io",
	    .repo = "library/tags", .kind = PROXY_KIND_TAGS },
	{ .uri = "/v2/app/tags/list?n=5", .up = "docker.io",
	    .repo = "library/app", .query = "n=5", .kind = PROXY_KIND_TAGS },
	{ .uri = "/v2/app/tags/list?ns=ghcr.io&foo=bar", .up = "ghcr.io",
	    .ns = "ghcr.io", .repo = "app", .kind = PROXY_KIND_TAGS },
	{ .uri = "/v2/app/tags/list?", .up = "docker.io",
	    .repo = "library/app", .kind = PROXY_KIND_TAGS },
	{ .uri = "/v2/app/tags/list?last=UPPER_tag&n=1234567",
	    .up = "docker.io", .repo = "library/app",
	    .query = "last=UPPER_tag&n=1234567", .kind = PROXY_KIND_TAGS },
	{ .uri = "/v2/app/tags/list?last=org/app", .up = "docker.io",
	    .repo = "library/app", .query = "last=org%2Fapp",
	    .kind = PROXY_KIND_TAGS },
	{ .uri = "/v2/org/app/referrers/" DG, .up = "docker.io",
	    .repo = "org/app", .ref = DG, .kind = PROXY_KIND_REFERRERS },
	{ .uri = "/v2/org/app/referrers/" DG
	    "?artifactType=application/vnd.example%2Bjson", .up = "docker.io",
	    .repo = "org/app", .ref = DG,
	    .query = "artifactType=application%2Fvnd.example%2Bjson",
	    .kind = PROXY_KIND_REFERRERS },

	/* Refused before anything is looked up. */
	{ .uri = "http://evil.example/v2/", .status = 400,
	    .code = "NAME_INVALID", .msg = "absolute URI refused" },
	{ .uri = "*", .status = 400, .code = "NAME_INVALID",
	    .msg = "absolute URI refused" },
	{ .uri = "", .status = 400, .code = "NAME_INVALID",
	    .msg = "absolute URI refused" },
	{ .uri = "/v2/../x", .status = 400, .code = "NAME_INVALID",
	    .msg = "malformed path" },
	{ .uri = "/v2/a/./b/manifests/v1", .status = 400,
	    .code = "NAME_INVALID", .msg = "malformed path" },
	{ .uri = "/v2/a/..", .status = 400, .code = "NAME_INVALID",
	    .msg = "malformed path" },
	{ .uri = "/v2/a/../../x/manifests/v1?ns=ghcr.io", .status = 400,
	    .code = "NAME_INVALID", .msg = "malformed path" },
	{ .uri = "/v2//a/manifests/v1", .status = 400,
	    .code = "NAME_INVALID", .msg = "malformed path" },
	{ .uri = "//v2/", .status = 400, .code = "NAME_INVALID",
	    .msg = "malformed path" },

	/* Unknown ns, prefix; not the API. */
	{ .uri = "/v2/?ns=nope", .status = 404, .code = "NAME_UNKNOWN",
	    .msg = "no upstream named 'nope' is configured" },
	{ .uri = "/v2/app/manifests/v1?ns=", .status = 404,
	    .code = "NAME_UNKNOWN",
	    .msg = "no upstream named '' is configured" },
	{ .uri = "/nope/v2/", .status = 404, .code = "NAME_UNKNOWN",
	    .msg = "no upstream named 'nope' is configured" },
	{ .uri = "/nope/v2/app/manifests/v1?ns=ghcr.io", .status = 404,
	    .code = "NAME_UNKNOWN",
	    .msg = "no upstream named 'nope' is configured" },
	{ .uri = "/a/b/v2/", .status = 404, .code = "NAME_UNKNOWN",
	    .msg = "not a registry API path" },
	{ .uri = "/ghcr.io/v2x/", .status = 404, .code = "NAME_UNKNOWN",
	    .msg = "not a registry API path" },
	{ .uri = "/v3/", .status = 404, .code = "NAME_UNKNOWN",
	    .msg = "not a registry API path" },
	{ .uri = "/", .status = 404, .code = "NAME_UNKNOWN",
	    .msg = "not a registry API path" },
	{ .uri = "/v2/a", .status = 404, .code = "NAME_UNKNOWN",
	    .msg = "not a registry API path" },
	{ .uri = "/v2/a/foo/v1", .status = 404, .code = "NAME_UNKNOWN",
	    .msg = "not a registry API path" },
	{ .uri = "/v2/a/manifests/v1/", .status = 404,
	    .code = "NAME_UNKNOWN", .msg = "not a registry API path" },
	{ .uri = "/v2/tags/list", .status = 404, .code = "NAME_UNKNOWN",
	    .msg = "not a registry API path" },
	{ .uri = "/v2/manifests/v1", .status = 404, .code = "NAME_UNKNOWN",
	    .msg = "not a registry API path" },

	/* No default. */
	{ .uri = "/v2/app/manifests/v1", .nodflt = 1, .status = 404,
	    .code = "NAME_UNKNOWN",
	    .msg = "request names no upstream and none is the default" },
	{ .uri = "/v2/gh/app/manifests/v1", .nodflt = 1, .status = 404,
	    .code = "NAME_UNKNOWN",
	    .msg = "request names no upstream and none is the default" },

	/* Bad names: the upstream is known by then. */
	{ .uri = "/v2/UPPER/manifests/v1", .up = "docker.io", .status = 400,
	    .code = "NAME_INVALID", .msg = "invalid repository name" },
	{ .uri = "/v2/%2e%2e/x/manifests/latest", .up = "docker.io",
	    .status = 400, .code = "NAME_INVALID",
	    .msg = "invalid repository name" },
	{ .uri = "/v2/a-/manifests/v1", .up = "docker.io", .status = 400,
	    .code = "NAME_INVALID", .msg = "invalid repository name" },
	{ .uri = "/v2/ghcr.io/_x/manifests/v1", .up = "ghcr.io",
	    .status = 400, .code = "NAME_INVALID",
	    .msg = "invalid repository name" },

	/* Bad tags and digests. */
	{ .uri = "/v2/a/manifests/bad%20tag", .up = "docker.io",
	    .status = 400, .code = "TAG_INVALID", .msg = "invalid tag" },
	{ .uri = "/v2/a/manifests/.v1", .up = "docker.io", .status = 400,
	    .code = "TAG_INVALID", .msg = "invalid tag" },
	{ .uri = "/v2/a/manifests/sha256:baddigest", .up = "docker.io",
	    .status = 400, .code = "DIGEST_INVALID",
	    .msg = "invalid or unsupported digest" },
	{ .uri = "/v2/a/manifests/SHA256:" D64, .up = "docker.io",
	    .status = 400, .code = "DIGEST_INVALID",
	    .msg = "invalid or unsupported digest" },
	{ .uri = "/v2/a/blobs/sha256:xyz", .up = "docker.io", .status = 400,
	    .code = "DIGEST_INVALID", .msg = "invalid or unsupported digest" },
	{ .uri = "/v2/a/blobs/md5:abc", .up = "docker.io", .status = 400,
	    .code = "DIGEST_INVALID", .msg = "invalid or unsupported digest" },
	{ .uri = "/v2/a/blobs/latest", .up = "docker.io", .status = 400,
	    .code = "DIGEST_INVALID", .msg = "invalid or unsupported digest" },
	{ .uri = "/v2/a/blobs/sha256:" D64 "0", .up = "docker.io",
	    .status = 400, .code = "DIGEST_INVALID",
	    .msg = "invalid or unsupported digest" },
	{ .uri = "/v2/a/referrers/v1", .up = "docker.io", .status = 400,
	    .code = "DIGEST_INVALID", .msg = "invalid or unsupported digest" },

	/* The query: n, last, artifactType once each and well-formed. */
	{ .uri = "/v2/a/tags/list?n=abc", .status = 400,
	    .code = "UNSUPPORTED", .msg = "malformed query" },
	{ .uri = "/v2/a/tags/list?n=", .status = 400, .code = "UNSUPPORTED",
	    .msg = "malformed query" },
	{ .uri = "/v2/a/tags/list?n=-1", .status = 400,
	    .code = "UNSUPPORTED", .msg = "malformed query" },
	{ .uri = "/v2/a/tags/list?n=12345678", .status = 400,
	    .code = "UNSUPPORTED", .msg = "malformed query" },
	{ .uri = "/v2/a/tags/list?n=1&n=2", .status = 400,
	    .code = "UNSUPPORTED", .msg = "malformed query" },
	{ .uri = "/v2/a/tags/list?last=a%20b", .status = 400,
	    .code = "UNSUPPORTED", .msg = "malformed query" },
	{ .uri = "/v2/a/tags/list?last=", .status = 400,
	    .code = "UNSUPPORTED", .msg = "malformed query" },
	{ .uri = "/v2/a/tags/list?last=x&last=y", .status = 400,
	    .code = "UNSUPPORTED", .msg = "malformed query" },
	{ .uri = "/v2/a/referrers/" DG "?artifactType=notype", .status = 400,
	    .code = "UNSUPPORTED", .msg = "malformed query" },
	{ .uri = "/v2/a/referrers/" DG "?artifactType=a/b&artifactType=c/d",
	    .status = 400, .code = "UNSUPPORTED", .msg = "malformed query" },
	{ .uri = "/v2/a/referrers/" DG "?artifactType=a/b%0d%0aX:%20y",
	    .status = 400, .code = "UNSUPPORTED", .msg = "malformed query" },
	{ .uri = "/v2/a/tags/list?foo", .status = 400, .code = "UNSUPPORTED",
	    .msg = "malformed query" },
	{ .uri = "/v2/a/tags/list?=x", .status = 400, .code = "UNSUPPORTED",
	    .msg = "malformed query" },
	/* An ns before a malformed parameter was leaked (ASan). */
	{ .uri = "/v2/a/tags/list?ns=ghcr.io&n=x", .status = 400,
	    .code = "UNSUPPORTED", .msg = "malformed query" },
	{ .uri = "/v2/a/tags/list?ns=ghcr.io&foo", .status = 400,
	    .code = "UNSUPPORTED", .msg = "malformed query" },
	{ .uri = "/v2/../a?n=x", .status = 400, .code = "NAME_INVALID",
	    .msg = "malformed path" },
};

static void
check_case(const struct route_case *c)
{
	struct proxy_route	 rt;
	struct proxy_route_err	 err;
	const char		*uri = c->uri;
	int			 rc;

	rc = proxy_route_parse(uri, c->nodflt ? &cfg_nodflt : &cfg_dflt, &rt,
	    &err);
	is_str(rt.up != NULL ? rt.up->name : NULL, c->up, "%s%s: upstream",
	    uri, c->nodflt ? " (no default)" : "");
	if (c->status != 0) {
		is_int(rc, -1, "%s: refused", uri);
		is_int(err.status, c->status, "  status");
		is_str(err.code, c->code, "  code");
		is_str(err.msg, c->msg, "  message");
		proxy_route_fini(&rt);
		return;
	}
	if (!is_int(rc, 0, "%s: routed", uri))
		diag("refused: %d %s %s", err.status, err.code, err.msg);
	is_int(rt.kind, c->kind, "  kind");
	is_str(rt.repo, c->repo, "  repository");
	is_str(rt.ref, c->ref, "  reference");
	is_str(rt.query, c->query, "  query");
	is_str(rt.ns, c->ns, "  ns");
	is_int(rt.ref_is_digest, c->ref != NULL &&
	    strncmp(c->ref, "sha256:", 7) == 0, "  by digest");
	if (rt.ref_is_digest)
		is_str(rt.digest.str, c->ref, "  the digest");
	proxy_route_fini(&rt);
}

/* The path cap counts the path alone, not the query. */
static void
test_lengths(void)
{
	struct proxy_route	 rt;
	struct proxy_route_err	 err;
	char			*uri;
	size_t			 fill;

	/* "/v2/" + name + "/manifests/v1" == PROXY_ROUTE_PATH_MAX */
	fill = PROXY_ROUTE_PATH_MAX - strlen("/v2/") - strlen("/manifests/v1");
	uri = xmalloc(PROXY_ROUTE_PATH_MAX + 64);
	snprintf(uri, PROXY_ROUTE_PATH_MAX + 64, "/v2/%0*d/manifests/v1",
	    (int)fill, 0);
	is_int(strlen(uri), PROXY_ROUTE_PATH_MAX, "a path of %d bytes",
	    PROXY_ROUTE_PATH_MAX);
	is_int(proxy_route_parse(uri, &cfg_dflt, &rt, &err), -1,
	    "  refused");
	is_str(err.msg, "invalid repository name",
	    "  for its name, not its length");
	proxy_route_fini(&rt);

	snprintf(uri, PROXY_ROUTE_PATH_MAX + 64, "/v2/%0*d/manifests/v1",
	    (int)fill + 1, 0);
	is_int(proxy_route_parse(uri, &cfg_dflt, &rt, &err), -1,
	    "a path of %d bytes", PROXY_ROUTE_PATH_MAX + 1);
	is_int(err.status, 400, "  400");
	is_str(err.msg, "malformed path", "  for its length");
	proxy_route_fini(&rt);
	free(uri);

	/* A repository name of 255 bytes passes, 256 does not. */
	xasprintf(&uri, "/v2/org/%0*d/manifests/v1", 255 - 4, 0);
	is_int(proxy_route_parse(uri, &cfg_dflt, &rt, &err), 0,
	    "a 255-byte name");
	is_int(strlen(rt.repo), 255, "  kept whole");
	proxy_route_fini(&rt);
	free(uri);
	xasprintf(&uri, "/v2/org/%0*d/manifests/v1", 255 - 3, 0);
	is_int(proxy_route_parse(uri, &cfg_dflt, &rt, &err), -1,
	    "a 256-byte name");
	is_str(err.code, "NAME_INVALID", "  NAME_INVALID");
	proxy_route_fini(&rt);
	free(uri);
	/*
	 * Docker Hub: the limit holds for the name sent upstream, library/
	 * and all: 247 bytes of one component pass, 248 (and the 253 that
	 * once went upstream as 261) do not.
	 */
	xasprintf(&uri, "/v2/%0*d/manifests/v1", 255 - 8, 0);
	is_int(proxy_route_parse(uri, &cfg_dflt, &rt, &err), 0,
	    "a 247-byte single-component name on Docker Hub");
	is_int(strlen(rt.repo), 255, "  255 bytes with library/ in front");
	ok(strncmp(rt.repo, "library/", 8) == 0, "  library/%.8s...",
	    rt.repo + 8);
	proxy_route_fini(&rt);
	free(uri);
	xasprintf(&uri, "/v2/%0*d/manifests/v1", 255 - 7, 0);
	is_int(proxy_route_parse(uri, &cfg_dflt, &rt, &err), -1,
	    "a 248-byte single-component name on Docker Hub");
	is_int(err.status, 400, "  400");
	is_str(err.code, "NAME_INVALID", "  NAME_INVALID");
	is_str(err.msg, "invalid repository name: over 255 bytes with "
	    "library/ in front", "  for its length with library/");
	ok(rt.up == &test_ups[0] && rt.repo == NULL,
	    "  its upstream known, no repository");
	proxy_route_fini(&rt);
	free(uri);
	xasprintf(&uri, "/v2/%0*d/manifests/v1", 253, 0);
	is_int(proxy_route_parse(uri, &cfg_dflt, &rt, &err), -1,
	    "a 253-byte single-component name on Docker Hub");
	proxy_route_fini(&rt);
	free(uri);
	xasprintf(&uri, "/v2/ghcr.io/%0*d/manifests/v1", 255, 0);
	is_int(proxy_route_parse(uri, &cfg_dflt, &rt, &err), 0,
	    "  255 bytes elsewhere (no library/)");
	is_int(strlen(rt.repo), 255, "  kept whole");
	proxy_route_fini(&rt);
	free(uri);
	xasprintf(&uri, "/v2/docker.io/library/%0*d/manifests/v1", 255 - 8,
	    0);
	is_int(proxy_route_parse(uri, &cfg_dflt, &rt, &err), 0,
	    "  library/ and 247 bytes named so on Docker Hub");
	is_int(strlen(rt.repo), 255, "  kept whole");
	proxy_route_fini(&rt);
	free(uri);

	/* A tag of 128 bytes passes, 129 does not. */
	xasprintf(&uri, "/v2/a/manifests/t%0*d", 127, 0);
	is_int(proxy_route_parse(uri, &cfg_dflt, &rt, &err), 0,
	    "a 128-byte tag");
	proxy_route_fini(&rt);
	free(uri);
	xasprintf(&uri, "/v2/a/manifests/t%0*d", 128, 0);
	is_int(proxy_route_parse(uri, &cfg_dflt, &rt, &err), -1,
	    "a 129-byte tag");
	is_str(err.code, "TAG_INVALID", "  TAG_INVALID");
	proxy_route_fini(&rt);
	free(uri);

	/* last: 255 bytes at most. */
	xasprintf(&uri, "/v2/a/tags/list?last=%0*d", 255, 0);
	is_int(proxy_route_parse(uri, &cfg_dflt, &rt, &err), 0,
	    "last= of 255 bytes");
	proxy_route_fini(&rt);
	free(uri);
	xasprintf(&uri, "/v2/a/tags/list?last=%0*d", 256, 0);
	is_int(proxy_route_parse(uri, &cfg_dflt, &rt, &err), -1,
	    "last= of 256 bytes");
	is_str(err.msg, "malformed query", "  malformed query");
	proxy_route_fini(&rt);
	free(uri);

	/* A long query of parameters nobody passes on is not a path. */
	uri = xmalloc(8192);
	strcpy(uri, "/v2/a/tags/list?");
	while (strlen(uri) < 8000)
		strcat(uri, "junk=1&");
	strcat(uri, "n=2");
	is_int(proxy_route_parse(uri, &cfg_dflt, &rt, &err), 0,
	    "an 8 KB query of unknown parameters");
	is_str(rt.query, "n=2", "  only n passed on");
	proxy_route_fini(&rt);
	free(uri);
}

int
main(void)
{
	size_t	i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i]);
	test_lengths();
	return done_testing();
}
