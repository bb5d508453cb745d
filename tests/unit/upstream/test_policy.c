/*
 * test_policy.c — upstream/upstream_policy.c, the rules that bind an
 * upstream's redirects and token realms to its trust boundary: address
 * classes (loopback, private, link-local, ... in IPv4, IPv6 and their
 * embeddings), registrable domains by the Public Suffix List plus the
 * registry hosting domains, realms with and without a listing, and which
 * redirects each kind of request may follow.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/config.h"
#include "common/xmalloc.h"
#include "tests/lib/tap.h"
#include "upstream/upstream_int.h"

static enum upstream_addr_class
class_of(const char *ip)
{
	struct sockaddr_storage	ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) ==
	    1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip,
	    &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		bail_out(ip);
	return upstream_addr_class((struct sockaddr *)&ss);
}

static void
test_classes(void)
{
	static const struct {
		const char		*ip;
		enum upstream_addr_class want;
	} t[] = {
		{ "8.8.8.8", UPSTREAM_ADDR_PUBLIC },
		{ "104.16.0.1", UPSTREAM_ADDR_PUBLIC },
		{ "127.0.0.1", UPSTREAM_ADDR_LOOPBACK },
		{ "127.255.255.254", UPSTREAM_ADDR_LOOPBACK },
		{ "10.1.2.3", UPSTREAM_ADDR_PRIVATE },
		{ "172.16.0.1", UPSTREAM_ADDR_PRIVATE },
		{ "172.31.255.255", UPSTREAM_ADDR_PRIVATE },
		{ "172.32.0.1", UPSTREAM_ADDR_PUBLIC },
		{ "192.168.1.1", UPSTREAM_ADDR_PRIVATE },
		{ "100.64.0.1", UPSTREAM_ADDR_PRIVATE },
		{ "169.254.169.254", UPSTREAM_ADDR_LINKLOCAL },
		{ "0.0.0.0", UPSTREAM_ADDR_UNSPECIFIED },
		{ "0.1.2.3", UPSTREAM_ADDR_UNSPECIFIED },
		{ "224.0.0.1", UPSTREAM_ADDR_MULTICAST },
		{ "255.255.255.255", UPSTREAM_ADDR_RESERVED },
		{ "192.0.2.1", UPSTREAM_ADDR_RESERVED },
		{ "198.18.0.1", UPSTREAM_ADDR_RESERVED },
		{ "2606:4700::1", UPSTREAM_ADDR_PUBLIC },
		{ "::1", UPSTREAM_ADDR_LOOPBACK },
		{ "::", UPSTREAM_ADDR_UNSPECIFIED },
		{ "fe80::1", UPSTREAM_ADDR_LINKLOCAL },
		{ "febf::1", UPSTREAM_ADDR_LINKLOCAL },
		{ "fc00::1", UPSTREAM_ADDR_PRIVATE },
		{ "fd12:3456::1", UPSTREAM_ADDR_PRIVATE },
		{ "ff02::1", UPSTREAM_ADDR_MULTICAST },
		{ "2001:db8::1", UPSTREAM_ADDR_RESERVED },
		{ "::ffff:127.0.0.1", UPSTREAM_ADDR_LOOPBACK },
		{ "::ffff:169.254.169.254", UPSTREAM_ADDR_LINKLOCAL },
		{ "::ffff:8.8.8.8", UPSTREAM_ADDR_PUBLIC },
		{ "64:ff9b::a00:1", UPSTREAM_ADDR_PRIVATE },
		{ "2002:7f00:1::", UPSTREAM_ADDR_LOOPBACK },
		{ "::127.0.0.1", UPSTREAM_ADDR_RESERVED },
	};
	size_t	i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		is_str(upstream_addr_class_str(class_of(t[i].ip)),
		    upstream_addr_class_str(t[i].want), "class of %s", t[i].ip);
}

/* A fake upstream with the given endpoints ("https://h:p" strings). */
static struct upstream *
mk_upstream(const char *const *urls, size_t n, const char *realms)
{
	struct config_upstream	*cu = xcalloc(1, sizeof(*cu));
	struct upstream		*u = xcalloc(1, sizeof(*u));
	size_t			 i;

	cu->name = xstrdup("test");
	if (realms != NULL) {
		cu->realms = xcalloc(1, sizeof(*cu->realms));
		cu->realms[0] = xstrdup(realms);
		cu->nrealms = 1;
	}
	u->magic = UPSTREAM_MAGIC;
	u->cfg = cu;
	u->nurls = n;
	u->urls = xcalloc(n, sizeof(*u->urls));
	for (i = 0; i < n; i++)
		if (upstream_url_parse(urls[i], &u->urls[i]) != 0)
			bail_out(urls[i]);
	pthread_mutex_init(&u->tok_mtx, NULL);
	return u;
}

static void
free_upstream(struct upstream *u)
{
	size_t	i;

	for (i = 0; i < u->nurls; i++)
		upstream_url_fini(&u->urls[i]);
	free(u->urls);
	for (i = 0; i < u->cfg->nrealms; i++)
		free(u->cfg->realms[i]);
	free(u->cfg->realms);
	free(u->cfg->name);
	free((void *)(uintptr_t)u->cfg);
	pthread_mutex_destroy(&u->tok_mtx);
	free(u);
}

/* May endpoint `from` (urls[0] of u) use realm? */
static int
realm_ok(struct upstream *u, const char *realm)
{
	struct upstream_url	r;
	char			why[300];
	int			ok;

	if (upstream_url_parse(realm, &r) != 0)
		bail_out(realm);
	ok = upstream_realm_allowed(u, &u->urls[0], &r, why, sizeof(why));
	upstream_url_fini(&r);
	return ok;
}

static void
test_realms(void)
{
	static const char *const hub[] = { "https://registry-1.docker.io" };
	static const char *const uk[] = { "https://registry.example.co.uk" };
	static const char *const acr[] = { "https://team.azurecr.io" };
	static const char *const ecr[] = {
	    "https://123456789012.dkr.ecr.us-east-1.amazonaws.com" };
	static const char *const local[] = { "http://127.0.0.1:5000" };
	static const char *const gl[] = { "https://registry.gitlab.com" };
	struct upstream	*u;

	u = mk_upstream(hub, 1, NULL);
	ok(realm_ok(u, "https://auth.docker.io/token"),
	    "Docker Hub: auth.docker.io (same registrable domain)");
	ok(!realm_ok(u, "http://auth.docker.io/token"),
	    "  not over http from an https upstream");
	ok(!realm_ok(u, "https://auth.docker.io.evil.com/token"),
	    "  not a lookalike domain");
	ok(!realm_ok(u, "https://evil.io/token"), "  not another domain");
	ok(!realm_ok(u, "https://127.0.0.1/token"), "  not an IP literal");
	free_upstream(u);

	u = mk_upstream(uk, 1, NULL);
	ok(realm_ok(u, "https://auth.example.co.uk/token"),
	    "co.uk: a sibling under example.co.uk");
	ok(!realm_ok(u, "https://evil.co.uk/token"),
	    "  not another registrant under co.uk (the last-two-labels bug)");
	free_upstream(u);

	u = mk_upstream(acr, 1, NULL);
	ok(realm_ok(u, "https://team.azurecr.io/oauth2/token"),
	    "ACR: the tenant's own host");
	ok(!realm_ok(u, "https://other.azurecr.io/oauth2/token"),
	    "  not another tenant's registry");
	free_upstream(u);

	u = mk_upstream(ecr, 1, NULL);
	ok(!realm_ok(u,
	    "https://999999999999.dkr.ecr.us-east-1.amazonaws.com/"),
	    "ECR: not another account's registry");
	free_upstream(u);

	u = mk_upstream(gl, 1, NULL);
	ok(realm_ok(u, "https://gitlab.com/jwt/auth"),
	    "GitLab: the parent domain");
	free_upstream(u);

	u = mk_upstream(local, 1, NULL);
	ok(realm_ok(u, "http://127.0.0.1:5001/token"),
	    "http upstream: a realm on its host, another port, over http");
	ok(!realm_ok(u, "http://127.0.0.2:5001/token"),
	    "  not another address");
	free_upstream(u);

	u = mk_upstream(local, 1, "127.0.0.2:5001");
	ok(realm_ok(u, "http://127.0.0.2:5001/token"),
	    "listed in realms (host:port)");
	ok(!realm_ok(u, "http://127.0.0.2:5002/token"),
	    "  not the same host on another port");
	free_upstream(u);
}

static int
redirect_ok(struct upstream *u, enum upstream_purpose p, const char *to)
{
	struct upstream_url	t;
	char			why[300];
	int			ok;

	if (upstream_url_parse(to, &t) != 0)
		bail_out(to);
	ok = upstream_redirect_allowed(u, p, &u->urls[0], &t, &u->urls[0],
	    why, sizeof(why));
	upstream_url_fini(&t);
	return ok;
}

static void
test_redirects(void)
{
	static const char *const two[] = { "https://ghcr.io",
	    "https://mirror.ghcr.example:8443" };
	struct upstream	*u = mk_upstream(two, 2, NULL);
	struct upstream_url x;

	ok(redirect_ok(u, UPSTREAM_PURPOSE_BLOB,
	    "https://pkg-containers.githubusercontent.com/ghcr1/blobs/x?sig=1"),
	    "a blob may go to a CDN");
	ok(!redirect_ok(u, UPSTREAM_PURPOSE_BLOB, "http://cdn.example/x"),
	    "  never from https to http");
	ok(!redirect_ok(u, UPSTREAM_PURPOSE_API, "https://cdn.example/x"),
	    "a manifest may not leave the endpoints");
	ok(redirect_ok(u, UPSTREAM_PURPOSE_API,
	    "https://mirror.ghcr.example:8443/v2/x/manifests/y"),
	    "  but may go to another endpoint");
	ok(!redirect_ok(u, UPSTREAM_PURPOSE_API,
	    "https://mirror.ghcr.example:9443/v2/x/manifests/y"),
	    "  not to another port of an endpoint's host");
	ok(redirect_ok(u, UPSTREAM_PURPOSE_TOKEN, "https://ghcr.io/token2"),
	    "a token request may go where a realm may");
	ok(!redirect_ok(u, UPSTREAM_PURPOSE_TOKEN, "https://evil.example/"),
	    "  not elsewhere");
	is_int(upstream_purpose_of("/v2/org/app/blobs/sha256:ab", "org/app"),
	    UPSTREAM_PURPOSE_BLOB, "purpose: a blob path");
	is_int(upstream_purpose_of("/v2/org/app/manifests/v1", "org/app"),
	    UPSTREAM_PURPOSE_API, "purpose: a manifest path");
	is_int(upstream_purpose_of("/v2/org/app/blobsx/y", "org/app"),
	    UPSTREAM_PURPOSE_API, "purpose: not fooled by a prefix");
	free_upstream(u);

	ok(upstream_url_parse("http://a%2fb/", &x) != 0,
	    "url: %%-escapes in a host refused");
	ok(upstream_url_parse("http://h\xc3\xa9/", &x) != 0,
	    "url: 8-bit bytes in a host refused");
	ok(upstream_url_parse("http://[fe80::1%25eth0]/", &x) != 0,
	    "url: an IPv6 zone refused");
	ok(upstream_url_parse("http://[::0:]/v2/", &x) != 0,
	    "url: an IPv6 literal that is no address refused (fuzz_url)");
	ok(upstream_url_parse("ftp://h/", &x) != 0, "url: ftp refused");
	ok(upstream_url_parse("http://u:p@h/", &x) != 0,
	    "url: userinfo refused");
	if (ok(upstream_url_parse("https://[::1]:8443/a?b=c", &x) == 0,
	    "url: IPv6 literal")) {
		is_str(x.host, "::1", "  host");
		is_int(x.port, 8443, "  port");
		is_str(x.pathq, "/a?b=c", "  path and query");
		upstream_url_fini(&x);
	}
}

/* The token cache: bounded in count, lifetime and token size. */
static void
test_tokens(void)
{
	static const char *const one[] = { "https://r.example" };
	struct upstream	*u = mk_upstream(one, 1, NULL);
	char		 scope[64], *v, *json;
	long		 exp;
	size_t		 i;

	for (i = 0; i < UPSTREAM_TOKEN_BUCKETS; i++)
		LIST_INIT(&u->tokens[i]);
	for (i = 0; i < UPSTREAM_TOKENS_MAX + 500; i++) {
		snprintf(scope, sizeof(scope), "repository:r%zu:pull", i);
		upstream_token_put(u, scope, "Bearer t", 300, 0);
	}
	is_int(u->ntokens, UPSTREAM_TOKENS_MAX, "tokens: capped at %d",
	    UPSTREAM_TOKENS_MAX);
	v = upstream_token_get(u, scope);
	is_str(v, "Bearer t", "tokens: the newest is kept");
	free(v);
	upstream_token_put(u, "repository:long:pull", "Bearer l",
	    86400 * 300, 0);
	ok(u->ntokens == UPSTREAM_TOKENS_MAX, "tokens: still capped");
	{
		struct upstream_token *t;
		int found = 0;

		for (i = 0; i < UPSTREAM_TOKEN_BUCKETS; i++)
			LIST_FOREACH(t, &u->tokens[i], entry)
				if (strcmp(t->scope, "repository:long:pull") ==
				    0 && t->expires <= time(NULL) +
				    UPSTREAM_TOKEN_TTL_MAX)
					found = 1;
		ok(found, "tokens: a 300-day expires_in kept at most %d s",
		    UPSTREAM_TOKEN_TTL_MAX);
	}
	json = xmalloc(UPSTREAM_TOKEN_LEN_MAX + 64);
	strcpy(json, "{\"token\":\"");
	memset(json + strlen(json), 'a', UPSTREAM_TOKEN_LEN_MAX + 1);
	strcpy(json + 10 + UPSTREAM_TOKEN_LEN_MAX + 1, "\"}");
	ok(upstream_token_parse(json, strlen(json), &exp) == NULL,
	    "tokens: one over %d bytes refused", UPSTREAM_TOKEN_LEN_MAX);
	free(json);
	for (i = 0; i < UPSTREAM_TOKEN_BUCKETS; i++)
		while (!LIST_EMPTY(&u->tokens[i])) {
			struct upstream_token *t = LIST_FIRST(&u->tokens[i]);

			LIST_REMOVE(t, entry);
			free(t->scope);
			free(t->value);
			free(t);
		}
	free_upstream(u);
}

int
main(void)
{
	upstream_policy_init();
	test_tokens();
	test_classes();
	test_realms();
	test_redirects();
	upstream_policy_fini();
	return done_testing();
}
