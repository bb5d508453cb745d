/*
 * proxy_route.c — a request target, "/[prefix/]v2/<name>/<kind>/<ref>?q",
 * to what it asks for (upstream, repository, kind, reference, the query
 * to pass on) or to the exact refusal (status, OCI code, message).
 *
 * Pure: nothing here touches a request, a socket or the global upstream
 * table; the upstreams are reached through struct proxy_route_cfg's
 * callbacks, so that tests/unit/proxy/test_route.c can route against a
 * table of its own.  proxy_oci.c turns the result into a reply.
 *
 * Routing, first match wins: the "ns" query parameter (containerd); the
 * first path component after /v2/ when it names an upstream or alias and
 * looks like a host (podman/CRI-O mirrors with a path); a prefix before
 * /v2 (Docker mirror URLs with a path); otherwise the default upstream.
 * A request naming no configured upstream is refused.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>

#include "common/digest.h"
#include "common/ref.h"
#include "common/xmalloc.h"
#include "proxy/proxy_int.h"

#define PROXY_ROUTE_LIBRARY_LEN	(sizeof("library/") - 1)

/*
 * Fill err.  proxy_route_refuse() is the same as an expression worth -1,
 * so that a refusal is one return statement, and so that the -1 can be
 * seen where it is returned (scan-build does not look into a variadic
 * function, and took a refusal for a success).
 */
static void __attribute__((format(printf, 4, 5)))
proxy_route_err_set(struct proxy_route_err *err, int status, const char *code,
    const char *fmt, ...)
{
	va_list	ap;

	err->status = status;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

#define proxy_route_refuse(...)	(proxy_route_err_set(__VA_ARGS__), -1)

static unsigned
proxy_route_query_bit(const char *key)
{
	return key[0] == 'n' ? 1 : key[0] == 'l' ? 2 : 4;
}

/* n: a count; last: a tag or repository name; artifactType: a media
 * type. */
static int
proxy_route_query_value_ok(const char *key, const char *v)
{
	size_t	n = strlen(v);

	if (strcmp(key, "n") == 0)
		return n >= 1 && n <= 7 && strspn(v, "0123456789") == n;
	if (strcmp(key, "last") == 0)
		return n >= 1 && n <= 255 && (ref_tag_valid(v) ||
		    ref_name_valid(v));
	return ref_media_type_valid(v);
}

/*
 * Keep only the query parameters that mean something upstream (n, last,
 * artifactType), re-encoded, in *query (NULL when none), and pick out ns
 * (the last one wins).  0 ok, -1 malformed (*query and *ns then NULL).
 */
static int
proxy_route_query(const char *q, char **query, char **ns)
{
	struct evkeyvalq	 params;
	struct evkeyval		*kv;
	struct evbuffer		*b;
	char			*e;
	unsigned		 seen = 0;
	int			 rc = 0;

	*ns = NULL;
	TAILQ_INIT(&params);
	if (evhttp_parse_query_str(q, &params) != 0)
		return -1;
	b = evbuffer_new();
	TAILQ_FOREACH(kv, &params, next) {
		if (strcmp(kv->key, "ns") == 0) {
			free(*ns);
			*ns = xstrdup(kv->value);
		} else if (strcmp(kv->key, "n") == 0 ||
		    strcmp(kv->key, "last") == 0 ||
		    strcmp(kv->key, "artifactType") == 0) {
			/*
			 * Passed upstream and part of the list cache's key:
			 * what the spec allows, once each (a 12 KB "last"
			 * per request would grow the cache with junk).
			 */
			if (!proxy_route_query_value_ok(kv->key, kv->value) ||
			    (seen & proxy_route_query_bit(kv->key)) != 0) {
				rc = -1;
				break;
			}
			seen |= proxy_route_query_bit(kv->key);
			e = evhttp_encode_uri(kv->value);
			evbuffer_add_printf(b, "%s%s=%s",
			    evbuffer_get_length(b) > 0 ? "&" : "", kv->key, e);
			free(e);
		}
	}
	evhttp_clear_headers(&params);
	if (rc != 0) {
		free(*ns);
		*ns = NULL;
		evbuffer_free(b);
		return rc;
	}
	if (evbuffer_get_length(b) > 0) {
		evbuffer_add(b, "", 1);
		*query = xstrdup((const char *)evbuffer_pullup(b, -1));
	}
	evbuffer_free(b);
	return 0;
}

/*
 * "/v2..." or "/<upstream>/v2..." (Docker mirror URLs with a path): in
 * *rest what follows "/v2", in *up the upstream a prefix names (else
 * NULL).  Modifies path.
 */
static int
proxy_route_prefix(const struct proxy_route_cfg *cfg, char *path,
    struct upstream **up, char **rest, struct proxy_route_err *err)
{
	char	*p;

	*up = NULL;
	*rest = NULL;
	if (strncmp(path, "/v2/", 4) == 0 || strcmp(path, "/v2") == 0) {
		*rest = path + 3;
		return 0;
	}
	if (path[0] == '/' && (p = strstr(path + 1, "/v2")) != NULL &&
	    (p[3] == '/' || p[3] == '\0') &&
	    memchr(path + 1, '/', (size_t)(p - path - 1)) == NULL) {
		*p = '\0';
		if ((*up = cfg->find(path + 1, cfg->arg)) == NULL)
			return proxy_route_refuse(err, 404, "NAME_UNKNOWN",
			    "no upstream named '%s' is configured", path + 1);
		*rest = p + 3;
		return 0;
	}
	return proxy_route_refuse(err, 404, "NAME_UNKNOWN",
	    "not a registry API path");
}

/*
 * "<name>/tags/list" or "<name>/<kind>/<ref>", split in place: out->kind,
 * *name and *ref (NULL for a tag list); -1 when it is neither.  From the
 * right, since a name has slashes of its own.
 */
static int
proxy_route_kind(char *rest, struct proxy_route *out, char **name,
    char **ref)
{
	char	*p, *kind;

	if ((p = strrchr(rest, '/')) == NULL)
		return -1;
	*ref = p + 1;
	*p = '\0';
	if (strcmp(*ref, "list") == 0 && (p = strrchr(rest, '/')) != NULL &&
	    strcmp(p + 1, "tags") == 0) {
		*p = '\0';
		out->kind = PROXY_KIND_TAGS;
		*ref = NULL;
	} else {
		if ((p = strrchr(rest, '/')) == NULL)
			return -1;
		kind = p + 1;
		*p = '\0';
		if (strcmp(kind, "manifests") == 0)
			out->kind = PROXY_KIND_MANIFEST;
		else if (strcmp(kind, "blobs") == 0)
			out->kind = PROXY_KIND_BLOB;
		else if (strcmp(kind, "referrers") == 0)
			out->kind = PROXY_KIND_REFERRERS;
		else
			return -1;
	}
	*name = rest;
	return 0;
}

/*
 * The upstream, when neither ns nor a prefix named it (a podman/CRI-O
 * first component that looks like a host, else the default), into
 * out->up; then the repository name at it into out->repo.
 */
static int
proxy_route_repo(const struct proxy_route_cfg *cfg, struct upstream *up,
    char *name, struct proxy_route *out, struct proxy_route_err *err)
{
	char	*p;

	/* podman/CRI-O: /v2/<upstream>/<name>/... */
	if (up == NULL && (p = strchr(name, '/')) != NULL) {
		*p = '\0';
		if (strchr(name, '.') != NULL || strchr(name, ':') != NULL ||
		    strcmp(name, "localhost") == 0)
			up = cfg->find(name, cfg->arg);
		if (up != NULL)
			name = p + 1;
		else
			*p = '/';
	}
	if (up == NULL && (up = cfg->find(NULL, cfg->arg)) == NULL)
		return proxy_route_refuse(err, 404, "NAME_UNKNOWN",
		    "request names no upstream and none is the default");
	out->up = up;
	if (!ref_name_valid(name))
		return proxy_route_refuse(err, 400, "NAME_INVALID",
		    "invalid repository name");
	if (cfg->docker_hub(up, cfg->arg) && strchr(name, '/') == NULL) {
		/* The limit is on the name the upstream is asked for. */
		if (strlen(name) > REF_NAME_MAX - PROXY_ROUTE_LIBRARY_LEN)
			return proxy_route_refuse(err, 400, "NAME_INVALID",
			    "invalid repository name: over %d bytes with "
			    "library/ in front", REF_NAME_MAX);
		xasprintf(&out->repo, "library/%s", name);
	} else
		out->repo = xstrdup(name);
	return 0;
}

/* A tag (manifests only) or a digest, into out. */
static int
proxy_route_ref(const char *ref, struct proxy_route *out,
    struct proxy_route_err *err)
{
	if (digest_parse(ref, &out->digest) == 0)
		out->ref_is_digest = 1;
	else if (out->kind != PROXY_KIND_MANIFEST || !ref_tag_valid(ref)) {
		if (out->kind == PROXY_KIND_MANIFEST &&
		    strchr(ref, ':') == NULL)
			return proxy_route_refuse(err, 400, "TAG_INVALID",
			    "invalid tag");
		return proxy_route_refuse(err, 400, "DIGEST_INVALID",
		    "invalid or unsupported digest");
	}
	out->ref = xstrdup(ref);
	return 0;
}

/*
 * Split path (modified in place) and route it.  What is learnt before a
 * refusal stays in out: the access log names the upstream of a request
 * whose repository name was invalid.
 */
static int
proxy_route_path(const struct proxy_route_cfg *cfg, char *path,
    const char *ns, struct proxy_route *out, struct proxy_route_err *err)
{
	struct upstream	*up;
	char		*rest, *name, *ref;

	if (proxy_route_prefix(cfg, path, &up, &rest, err) != 0)
		return -1;
	if (ns != NULL) {
		if ((up = cfg->find(ns, cfg->arg)) == NULL)
			return proxy_route_refuse(err, 404, "NAME_UNKNOWN",
			    "no upstream named '%s' is configured", ns);
		out->ns = xstrdup(ns);
	}
	if (*rest == '\0' || strcmp(rest, "/") == 0) {
		out->kind = PROXY_KIND_BASE;
		out->up = up;
		return 0;
	}
	if (strcmp(rest, "/_catalog") == 0) {
		if (up == NULL && (up = cfg->find(NULL, cfg->arg)) == NULL)
			return proxy_route_refuse(err, 404, "NAME_UNKNOWN",
			    "request names no upstream and none is the "
			    "default");
		out->kind = PROXY_KIND_CATALOG;
		out->up = up;
		out->repo = xstrdup("_catalog");
		return 0;
	}
	/* Past the '/'. */
	if (proxy_route_kind(rest + 1, out, &name, &ref) != 0)
		return proxy_route_refuse(err, 404, "NAME_UNKNOWN",
		    "not a registry API path");
	if (proxy_route_repo(cfg, up, name, out, err) != 0)
		return -1;
	return ref != NULL ? proxy_route_ref(ref, out, err) : 0;
}

/*
 * The raw path is never decoded: names, tags and digests never need
 * escapes, so a '%' fails their grammar, and dot segments are refused
 * here, before anything is looked up.
 */
int
proxy_route_parse(const char *uri, const struct proxy_route_cfg *cfg,
    struct proxy_route *out, struct proxy_route_err *err)
{
	const char	*q;
	char		*path, *ns = NULL;
	size_t		 len;
	int		 rc;

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	if (uri[0] != '/')
		return proxy_route_refuse(err, 400, "NAME_INVALID",
		    "absolute URI refused");
	q = strchr(uri, '?');
	path = q != NULL ? xstrndup(uri, (size_t)(q - uri)) : xstrdup(uri);
	len = strlen(path);
	if (len > PROXY_ROUTE_PATH_MAX ||
	    strstr(path, "/../") != NULL || strstr(path, "/./") != NULL ||
	    strstr(path, "//") != NULL ||
	    (len >= 3 && strcmp(path + len - 3, "/..") == 0)) {
		free(path);
		return proxy_route_refuse(err, 400, "NAME_INVALID",
		    "malformed path");
	}
	if (q != NULL && proxy_route_query(q + 1, &out->query, &ns) != 0) {
		free(path);
		return proxy_route_refuse(err, 400, "UNSUPPORTED",
		    "malformed query");
	}
	rc = proxy_route_path(cfg, path, ns, out, err);
	free(path);
	free(ns);
	return rc;
}

void
proxy_route_fini(struct proxy_route *rt)
{
	free(rt->repo);
	free(rt->ref);
	free(rt->query);
	free(rt->ns);
	memset(rt, 0, sizeof(*rt));
}
