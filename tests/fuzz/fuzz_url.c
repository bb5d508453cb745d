/*
 * fuzz_url.c — libFuzzer entry point for upstream_url_parse(), which
 * reads redirect Locations and token realms from upstreams.
 *
 * The input is the URL, NUL-terminated.  An accepted URL must have a host
 * of [A-Za-z0-9.-] only (at most 253 bytes) or an IPv6 literal that
 * inet_pton() takes, a port in 1..65535 (the scheme's default when none is
 * given), a path and query that start with '/' and hold no byte a request
 * line cannot carry (controls, space, 8-bit), and it must print back to a
 * URL that parses to the same parts.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/obj.h"
#include "common/xmalloc.h"
#include "upstream/upstream_int.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_url_check(const struct upstream_url *u)
{
	unsigned char	 a6[16];
	const char	*p;

	AN(u->host != NULL && u->pathq != NULL);
	AN(u->tls == 0 || u->tls == 1);
	AN(u->port >= 1 && u->port <= 65535);
	AN(u->host[0] != '\0');
	if (strchr(u->host, ':') != NULL)
		AN(inet_pton(AF_INET6, u->host, a6) == 1);
	else {
		AN(strspn(u->host, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") ==
		    strlen(u->host));
		AN(strlen(u->host) <= 253);
	}
	AN(u->pathq[0] == '/');
	for (p = u->pathq; *p != '\0'; p++)
		AN((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct upstream_url	 u, again;
	char			*s, *back;

	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if (upstream_url_parse(s, &u) != 0) {
		AN(u.host == NULL && u.pathq == NULL);
		free(s);
		return 0;
	}
	fuzz_url_check(&u);
	AN(u.tls == (strncasecmp(s, "https:", 6) == 0));

	/* Printed back, it is the same URL. */
	xasprintf(&back, "%s://%s%s%s:%d%s", u.tls ? "https" : "http",
	    strchr(u.host, ':') != NULL ? "[" : "", u.host,
	    strchr(u.host, ':') != NULL ? "]" : "", u.port, u.pathq);
	AZ(upstream_url_parse(back, &again));
	AN(again.tls == u.tls && again.port == u.port);
	AZ(strcmp(again.host, u.host));
	AZ(strcmp(again.pathq, u.pathq));
	upstream_url_fini(&again);
	free(back);
	upstream_url_fini(&u);
	AN(u.host == NULL && u.pathq == NULL);
	free(s);
	return 0;
}
