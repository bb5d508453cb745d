/*
 * upstream_policy.c — where an upstream may send the mirror (DESIGN.md
 * §8): an upstream, or anyone on the path to an http:// one, chooses
 * redirect Locations and token realms, and must not be able to make the
 * mirror fetch internal URLs (and hand the bodies back), nor to collect
 * the mirror's credentials.
 *
 *  - Redirects are followed only where registries use them: a blob
 *    GET/HEAD may go to a CDN; manifests, tags, catalog and referrers
 *    only to the upstream's own endpoints; a token request only where a
 *    realm may be.  Never from https to http.
 *  - A token realm must be on an endpoint's host, on the same registrable
 *    domain (the Public Suffix List, through libpsl, plus the registry
 *    hosting domains below, whose tenants are subdomains), or listed in
 *    the upstream's `realms`; https unless the upstream itself is http.
 *    With or without credentials: a realm's token is sent back as
 *    Authorization.
 *  - A host that is not one of the upstream's endpoints (a redirect
 *    target, a realm) may not be an address that is loopback, link-local,
 *    private, unspecified, multicast or reserved, unless it is the address
 *    and port of one of the upstream's own endpoints, or the host is
 *    listed in `redirect_hosts` (or, for realms, in `realms`): another
 *    port of a private registry's host may be anything.  The address
 *    checked is the address connected to: names are resolved by us and
 *    the connection is made to the address that passed (no DNS rebinding
 *    between check and connect).
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <libpsl.h>

#include "common/config.h"
#include "common/log.h"
#include "common/obj.h"
#include "upstream/upstream_int.h"

static psl_ctx_t	*upstream_psl;

/*
 * Registry hosting domains that hand each tenant a subdomain but are not
 * (yet) in the Public Suffix List: x.azurecr.io must not trust a realm
 * on y.azurecr.io.  Under these the registrable domain is the whole host.
 */
static const char *const upstream_tenant_suffixes[] = {
	".azurecr.io", ".azurecr.cn", ".azurecr.us", ".pkg.dev",
	".amazonaws.com", ".amazonaws.com.cn", ".jfrog.io",
};

void
upstream_policy_init(void)
{
	/* The system's list (Debian's publicsuffix) if newer than the
	 * one built in. */
	if ((upstream_psl = psl_latest(NULL)) == NULL)
		log_warnx("libpsl: no Public Suffix List: token realms must "
		    "be on an endpoint's host or listed in realms");
}

void
upstream_policy_fini(void)
{
	psl_free(upstream_psl);
	upstream_psl = NULL;
}

static const char *const upstream_addr_class_names[] = {
	UPSTREAM_ADDR_CLASSES(UPSTREAM_ADDR_NAME)
};

const char *
upstream_addr_class_str(enum upstream_addr_class c)
{
	return upstream_addr_class_names[c];
}

static enum upstream_addr_class
upstream_addr_class4(const unsigned char *a)
{
	uint32_t	v = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 |
			    (uint32_t)a[2] << 8 | a[3];

#define IN4(net, bits)							\
	((v >> (32 - (bits))) == ((uint32_t)(net) >> (32 - (bits))))
	if (IN4(0x00000000, 8))
		return UPSTREAM_ADDR_UNSPECIFIED;
	if (IN4(0x7f000000, 8))
		return UPSTREAM_ADDR_LOOPBACK;
	if (IN4(0xa9fe0000, 16))
		return UPSTREAM_ADDR_LINKLOCAL;
	if (IN4(0x0a000000, 8) || IN4(0xac100000, 12) ||
	    IN4(0xc0a80000, 16) || IN4(0x64400000, 10))
		return UPSTREAM_ADDR_PRIVATE;
	if (IN4(0xe0000000, 4))
		return UPSTREAM_ADDR_MULTICAST;
	if (IN4(0xf0000000, 4) || IN4(0xc0000000, 24) ||
	    IN4(0xc0000200, 24) || IN4(0xc6336400, 24) ||
	    IN4(0xcb007100, 24) || IN4(0xc6120000, 15))
		return UPSTREAM_ADDR_RESERVED;
#undef IN4
	return UPSTREAM_ADDR_PUBLIC;
}

enum upstream_addr_class
upstream_addr_class(const struct sockaddr *sa)
{
	const unsigned char	*b;
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
				    0xff, 0xff };
	static const unsigned char nat64[12] = { 0x00, 0x64, 0xff, 0x9b };

	if (sa->sa_family == AF_INET)
		return upstream_addr_class4((const unsigned char *)
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr);
	if (sa->sa_family != AF_INET6)
		return UPSTREAM_ADDR_RESERVED;
	b = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
	if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0)
		return upstream_addr_class4(b + 12);
	if (b[0] == 0x20 && b[1] == 0x02)		/* 6to4 */
		return upstream_addr_class4(b + 2);
	if (b[0] == 0) {
		static const unsigned char zero[16];

		if (memcmp(b, zero, 16) == 0)
			return UPSTREAM_ADDR_UNSPECIFIED;
		if (memcmp(b, zero, 15) == 0 && b[15] == 1)
			return UPSTREAM_ADDR_LOOPBACK;
		return UPSTREAM_ADDR_RESERVED;	/* ::/8, v4-compatible */
	}
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return UPSTREAM_ADDR_LINKLOCAL;
	if ((b[0] & 0xfe) == 0xfc)
		return UPSTREAM_ADDR_PRIVATE;		/* unique local */
	if (b[0] == 0xff)
		return UPSTREAM_ADDR_MULTICAST;
	if ((b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) ||
	    (b[0] == 0x01 && b[1] == 0x00))
		return UPSTREAM_ADDR_RESERVED;	/* documentation, discard */
	return UPSTREAM_ADDR_PUBLIC;
}

/* The same address and port (another port of an endpoint's address may
 * be anything: an admin API, a database, the mirror's own admin). */
static int
upstream_addr_same(const struct upstream_addr *a, const struct sockaddr *sa)
{
	const struct sockaddr_in	*s4;
	const struct sockaddr_in6	*s6;

	if (sa->sa_family == AF_INET) {
		s4 = (const struct sockaddr_in *)(const void *)sa;
		return a->family == AF_INET && a->port == s4->sin_port &&
		    memcmp(a->bytes, &s4->sin_addr, 4) == 0;
	}
	if (sa->sa_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		return a->family == AF_INET6 && a->port == s6->sin6_port &&
		    memcmp(a->bytes, &s6->sin6_addr, 16) == 0;
	}
	return 0;
}

void
upstream_own_addr_add(struct upstream *u, const struct sockaddr *sa)
{
	struct upstream_addr	*a;
	size_t			 i;

	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return;
	pthread_mutex_lock(&u->tok_mtx);
	for (i = 0; i < u->nown; i++)
		if (upstream_addr_same(&u->own[i], sa))
			break;
	if (i == u->nown) {
		/* Bounded: the oldest goes when the endpoints move a lot. */
		a = &u->own[u->nown < UPSTREAM_OWN_MAX ? u->nown++ :
		    u->own_next++ % UPSTREAM_OWN_MAX];
		memset(a, 0, sizeof(*a));
		a->family = sa->sa_family;
		if (sa->sa_family == AF_INET) {
			memcpy(a->bytes, &((const struct sockaddr_in *)
			    (const void *)sa)->sin_addr, 4);
			a->port = ((const struct sockaddr_in *)
			    (const void *)sa)->sin_port;
		} else {
			memcpy(a->bytes, &((const struct sockaddr_in6 *)
			    (const void *)sa)->sin6_addr, 16);
			a->port = ((const struct sockaddr_in6 *)
			    (const void *)sa)->sin6_port;
		}
	}
	pthread_mutex_unlock(&u->tok_mtx);
}

static int
upstream_own_addr_has(struct upstream *u, const struct sockaddr *sa)
{
	size_t	i;
	int	found = 0;

	pthread_mutex_lock(&u->tok_mtx);
	for (i = 0; i < u->nown && !found; i++)
		found = upstream_addr_same(&u->own[i], sa);
	pthread_mutex_unlock(&u->tok_mtx);
	return found;
}

int
upstream_url_is_endpoint(const struct upstream *u,
    const struct upstream_url *url)
{
	size_t	i;

	for (i = 0; i < u->nurls; i++)
		if (url->tls == u->urls[i].tls &&
		    url->port == u->urls[i].port &&
		    strcasecmp(url->host, u->urls[i].host) == 0)
			return 1;
	return 0;
}

/* host or host:port in a configured list. */
static int
upstream_host_listed(char *const *list, size_t n, const char *host, int port)
{
	char	hp[300];
	size_t	i;

	snprintf(hp, sizeof(hp), "%s:%d", host, port);
	for (i = 0; i < n; i++)
		if (strcasecmp(list[i], host) == 0 ||
		    strcasecmp(list[i], hp) == 0)
			return 1;
	return 0;
}

int
upstream_addr_allowed(struct upstream *u, enum upstream_purpose p,
    const struct upstream_url *url, const struct sockaddr *sa, char *why,
    size_t whylen)
{
	enum upstream_addr_class c;
	size_t			 i;

	if (upstream_url_is_endpoint(u, url)) {
		upstream_own_addr_add(u, sa);
		return 1;
	}
	/* A realm on an endpoint's host (another port: a token service
	 * beside the registry) passed the realm rules by that very name. */
	for (i = 0; p == UPSTREAM_PURPOSE_TOKEN && i < u->nurls; i++)
		if (strcasecmp(u->urls[i].host, url->host) == 0)
			return 1;
	if ((c = upstream_addr_class(sa)) == UPSTREAM_ADDR_PUBLIC ||
	    upstream_own_addr_has(u, sa) ||
	    upstream_host_listed(u->cfg->redirect_hosts,
	    u->cfg->nredirect_hosts, url->host, url->port) ||
	    upstream_host_listed(u->cfg->realms, u->cfg->nrealms, url->host,
	    url->port))
		return 1;
	snprintf(why, whylen, "%s is a %s address", url->host,
	    upstream_addr_class_str(c));
	return 0;
}

/*
 * The registrable domain of host (lower case) into buf: the Public
 * Suffix List's, or the whole host under a tenant suffix; 0, or -1 for
 * IP literals, one-label names and names that are a public suffix.
 */
static int
upstream_regdomain(const char *host, char *buf, size_t len)
{
	const char	*rd;
	size_t		 i, hl, sl;
	unsigned char	 tmp[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, host, tmp) == 1 ||
	    inet_pton(AF_INET6, host, tmp) == 1 || strlen(host) >= len)
		return -1;
	for (i = 0; host[i] != '\0'; i++)
		buf[i] = (char)tolower((unsigned char)host[i]);
	buf[i] = '\0';
	hl = i;
	for (i = 0; i < sizeof(upstream_tenant_suffixes) /
	    sizeof(upstream_tenant_suffixes[0]); i++) {
		sl = strlen(upstream_tenant_suffixes[i]);
		if (hl > sl && strcmp(buf + hl - sl,
		    upstream_tenant_suffixes[i]) == 0)
			return 0;
	}
	if (upstream_psl == NULL ||
	    (rd = psl_registrable_domain(upstream_psl, buf)) == NULL)
		return -1;
	memmove(buf, rd, strlen(rd) + 1);
	return 0;
}

int
upstream_realm_allowed(const struct upstream *u,
    const struct upstream_url *from, const struct upstream_url *realm,
    char *why, size_t whylen)
{
	char	rd[256], ud[256];
	size_t	i;

	if (from->tls && !realm->tls) {
		snprintf(why, whylen, "token realm %s:%d is http on an https "
		    "upstream", realm->host, realm->port);
		return 0;
	}
	if (upstream_host_listed(u->cfg->realms, u->cfg->nrealms,
	    realm->host, realm->port))
		return 1;
	for (i = 0; i < u->nurls; i++)
		if (strcasecmp(u->urls[i].host, realm->host) == 0)
			return 1;
	if (upstream_regdomain(realm->host, rd, sizeof(rd)) == 0)
		for (i = 0; i < u->nurls; i++)
			if (upstream_regdomain(u->urls[i].host, ud,
			    sizeof(ud)) == 0 && strcmp(rd, ud) == 0)
				return 1;
	snprintf(why, whylen, "token realm %s:%d is not on the upstream's "
	    "host or domain (list it in realms to allow it)", realm->host,
	    realm->port);
	return 0;
}

int
upstream_redirect_allowed(const struct upstream *u, enum upstream_purpose p,
    const struct upstream_url *from, const struct upstream_url *to,
    const struct upstream_url *realm_base, char *why, size_t whylen)
{
	if (from->tls && !to->tls) {
		snprintf(why, whylen, "redirect from https to http (%s:%d) "
		    "refused", to->host, to->port);
		return 0;
	}
	switch (p) {
	case UPSTREAM_PURPOSE_BLOB:
		return 1;	/* a CDN; its address is checked at connect */
	case UPSTREAM_PURPOSE_TOKEN:
		if (upstream_realm_allowed(u, realm_base, to, why, whylen))
			return 1;
		snprintf(why, whylen, "token request redirected to %s:%d, "
		    "which may not be a realm", to->host, to->port);
		return 0;
	case UPSTREAM_PURPOSE_API:
		if (upstream_url_is_endpoint(u, to))
			return 1;
		snprintf(why, whylen, "redirect to %s:%d refused: only blobs "
		    "may be redirected off the upstream's endpoints",
		    to->host, to->port);
		return 0;
	}
	return 0;
}

/* "/v2/<repo>/blobs/..." is a blob request (CDN redirects allowed). */
enum upstream_purpose
upstream_purpose_of(const char *path, const char *repo)
{
	size_t	rl = strlen(repo);

	if (strncmp(path, "/v2/", 4) == 0 && strncmp(path + 4, repo, rl) == 0 &&
	    strncmp(path + 4 + rl, "/blobs/", 7) == 0)
		return UPSTREAM_PURPOSE_BLOB;
	return UPSTREAM_PURPOSE_API;
}
