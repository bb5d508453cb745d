/*
 * test_url.c — the URLs an upstream hands the mirror: upstream_url_parse
 * (schemes, default and explicit ports, IPv6 literals, userinfo, hosts
 * with bytes a resolver may take oddly, paths and queries), the
 * resolution of a redirect Location against the URL that sent it
 * (upstream_url_resolve: "/path", "//host/path", "path", "?query",
 * absolute, and hostile ones), and an upload session's Location as a
 * path on the upstream (upstream_location_path).
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/text.h"
#include "common/xmalloc.h"
#include "tests/lib/tap.h"
#include "upstream/upstream_int.h"

/* For a description: the input with its control and 8-bit bytes shown. */
static const char *
shown(const char *s)
{
	static char	buf[4][160];
	static int	n;

	n = (n + 1) % 4;
	text_escape(buf[n], sizeof(buf[n]), s, strlen(s));
	return buf[n];
}

struct url_case {
	const char	*s;
	int		 ok;
	int		 tls;
	const char	*host;
	int		 port;
	const char	*pathq;
};

static void
check_url(const char *what, const struct url_case *c,
    const struct upstream_url *u, int rc)
{
	if (!c->ok) {
		is_int(rc, -1, "%s '%s': refused", what, shown(c->s));
		ok(u->host == NULL && u->pathq == NULL, "  nothing left");
		return;
	}
	if (!is_int(rc, 0, "%s '%s': accepted", what, shown(c->s)))
		return;
	is_int(u->tls, c->tls, "  %s", c->tls ? "https" : "http");
	is_str(u->host, c->host, "  host");
	is_int(u->port, c->port, "  port");
	is_str(u->pathq, c->pathq, "  path and query");
}

/* Refused, nothing to compare. */
#define NO(s)		{ s, 0, 0, NULL, 0, NULL }
#define REFUSED		NO(NULL)

static void
test_parse(void)
{
	static char	host253[300], host254[300];
	static const struct url_case t[] = {
		/* Schemes and default ports. */
		{ "http://h", 1, 0, "h", 80, "/" },
		{ "https://h", 1, 1, "h", 443, "/" },
		{ "http://h/", 1, 0, "h", 80, "/" },
		{ "HTTPS://Registry.Example/v2/", 1, 1, "Registry.Example",
		    443, "/v2/" },
		{ "HtTp://h/x", 1, 0, "h", 80, "/x" },
		NO("ftp://h/"),
		NO("ws://h/"),
		NO("file:///etc/passwd"),
		NO("javascript:alert(1)"),
		NO("h/x"),
		NO("//h/x"),
		NO("/x"),
		NO(""),
		NO("http:/x"),
		NO("http:x"),
		NO("http://"),
		NO("http:///x"),
		/* Ports. */
		{ "http://h:8080/v2/", 1, 0, "h", 8080, "/v2/" },
		{ "https://h:80/", 1, 1, "h", 80, "/" },
		{ "http://h:1/", 1, 0, "h", 1, "/" },
		{ "http://h:65535/", 1, 0, "h", 65535, "/" },
		NO("http://h:0/"),
		NO("http://h:65536/"),
		NO("http://h:99999999999/"),
		NO("http://h:-1/"),
		NO("http://h:8x/"),
		{ "http://127.0.0.1:5000/v2/", 1, 0, "127.0.0.1", 5000,
		    "/v2/" },
		/* IPv6 literals: addresses only, no zone. */
		{ "http://[::1]/", 1, 0, "::1", 80, "/" },
		{ "https://[::1]:8443/a?b=c", 1, 1, "::1", 8443, "/a?b=c" },
		{ "http://[2001:db8::5]:5000/v2/", 1, 0, "2001:db8::5", 5000,
		    "/v2/" },
		{ "http://[::ffff:127.0.0.1]/", 1, 0, "::ffff:127.0.0.1", 80,
		    "/" },
		{ "http://[FE80::1]/", 1, 0, "FE80::1", 80, "/" },
		NO("http://[::1/"),
		NO("http://[]/"),
		NO("http://::1/"),
		NO("http://[fe80::1%25eth0]/"),
		NO("http://[::0:]/"),
		NO("http://[1:2:3:4:5:6:7:8:9]/"),
		NO("http://[v1.x]/"),
		NO("http://[127.0.0.1]/"),
		/* Userinfo is refused, whatever its form. */
		NO("http://u:p@h/"),
		NO("http://u@h/"),
		NO("https://r.example@evil.example/"),
		NO("http://:@h/"),
		/* Hosts: a DNS name or an IPv4 address, nothing else. */
		NO("http://a%2fb/"),
		NO("http://h\xc3\xa9/"),
		NO("http://h_x/"),
		NO("http://h!/"),
		NO("http://a b/"),
		NO("http://h\r\n/"),
		NO("http://h\\x/"),
		NO("http://h;x/"),
		{ "http://xn--caf-dma.example/", 1, 0, "xn--caf-dma.example",
		    80, "/" },
		/* Paths and queries: kept as sent, fragment dropped. */
		{ "http://h/v2/x?y=1&z=2", 1, 0, "h", 80, "/v2/x?y=1&z=2" },
		{ "http://h?x=1", 1, 0, "h", 80, "/?x=1" },
		{ "http://h/?", 1, 0, "h", 80, "/?" },
		{ "http://h/a#b", 1, 0, "h", 80, "/a" },
		{ "http://h/a?q#b", 1, 0, "h", 80, "/a?q" },
		{ "http://h/%41%2F", 1, 0, "h", 80, "/%41%2F" },
		{ "http://h/a/../b", 1, 0, "h", 80, "/a/../b" },
		{ "http://h/b?sig=a%2Bb&X-Amz-Expires=300", 1, 0, "h", 80,
		    "/b?sig=a%2Bb&X-Amz-Expires=300" },
		NO("http://h/a b"),
		NO("http://h/a\x01"),
		NO("http://h/a\x7f"),
		NO("http://h/\xff"),
		NO("http://h/a\r\nX-Injected: 1"),
		NO("http://h/a?b c"),
		NO("http://h/a?\""),
	};
	struct upstream_url	u;
	struct url_case		c;
	size_t			i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&u, 0x5a, sizeof(u));
		check_url("parse", &t[i], &u, upstream_url_parse(t[i].s, &u));
		upstream_url_fini(&u);
	}

	/* A host of 253 bytes is a DNS name; 254 is not. */
	memset(host253, 'a', sizeof(host253));
	memcpy(host253, "http://", 7);
	host253[7 + 253] = '\0';
	c = (struct url_case) { host253, 1, 0, host253 + 7, 80, "/" };
	check_url("parse", &c, &u, upstream_url_parse(host253, &u));
	upstream_url_fini(&u);
	memset(host254, 'a', sizeof(host254));
	memcpy(host254, "http://", 7);
	host254[7 + 254] = '\0';
	c = (struct url_case) { host254, 0, 0, NULL, 0, NULL };
	check_url("parse", &c, &u, upstream_url_parse(host254, &u));

	ok(upstream_url_parse("https://h/x", &u) == 0, "fini");
	upstream_url_fini(&u);
	ok(u.host == NULL && u.pathq == NULL, "  clears host and path");
	upstream_url_fini(&u);
	ok(1, "  and may be called again");
}

/*
 * RFC 3986 5.4's examples on its base "http://a/b/c/d;p?q", as paths on
 * host a (NULL: refused).  Where we differ from the RFC, and why: "g:h"
 * and "http:g" are not http(s) URLs with a host; "" and "#s" name the
 * page that redirected (a loop); "/./g" and "/../g" are absolute paths
 * the upstream chose, sent as they are.
 */
static void
test_rfc3986(void)
{
	static const struct {
		const char	*ref, *want;
	} t[] = {
		{ "g:h", NULL }, { "g", "/b/c/g" }, { "./g", "/b/c/g" },
		{ "g/", "/b/c/g/" }, { "/g", "/g" }, { "//g", "/" },
		{ "?y", "/b/c/d;p?y" }, { "g?y", "/b/c/g?y" },
		{ "#s", NULL }, { "g#s", "/b/c/g" }, { "g?y#s", "/b/c/g?y" },
		{ ";x", "/b/c/;x" }, { "g;x", "/b/c/g;x" },
		{ "g;x?y#s", "/b/c/g;x?y" }, { "", NULL }, { ".", "/b/c/" },
		{ "./", "/b/c/" }, { "..", "/b/" }, { "../", "/b/" },
		{ "../g", "/b/g" }, { "../..", "/" }, { "../../", "/" },
		{ "../../g", "/g" },
		/* 5.4.2, abnormal */
		{ "../../../g", "/g" }, { "../../../../g", "/g" },
		{ "/./g", "/./g" }, { "/../g", "/../g" }, { "g.", "/b/c/g." },
		{ ".g", "/b/c/.g" }, { "g..", "/b/c/g.." },
		{ "..g", "/b/c/..g" }, { "./../g", "/b/g" },
		{ "./g/.", "/b/c/g/" }, { "g/./h", "/b/c/g/h" },
		{ "g/../h", "/b/c/h" }, { "g;x=1/./y", "/b/c/g;x=1/y" },
		{ "g;x=1/../y", "/b/c/y" }, { "g?y/./x", "/b/c/g?y/./x" },
		{ "g?y/../x", "/b/c/g?y/../x" }, { "g#s/./x", "/b/c/g" },
		{ "g#s/../x", "/b/c/g" }, { "http:g", NULL },
	};
	struct upstream_url	base, u;
	size_t			i;
	int			rc;

	if (upstream_url_parse("http://a/b/c/d;p?q", &base) != 0)
		bail_out("RFC 3986 base");
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rc = upstream_url_resolve(&base, t[i].ref, &u);
		if (t[i].want == NULL)
			is_int(rc, -1, "RFC 3986 '%s': refused", t[i].ref);
		else if (is_int(rc, 0, "RFC 3986 '%s'", t[i].ref))
			is_str(u.pathq, t[i].want, "  %s on %s", t[i].want,
			    strcmp(t[i].ref, "//g") == 0 ? "g" : "a");
		if (rc == 0 && strcmp(t[i].ref, "//g") == 0)
			is_str(u.host, "g", "  host g");
		else if (rc == 0)
			is_str(u.host, "a", "  host a");
		upstream_url_fini(&u);
	}
	upstream_url_fini(&base);
}

struct resolve_case {
	const char	*base, *loc;
	struct url_case	 want;		/* .s unused */
};

static void
test_resolve(void)
{
	static const char b[] = "https://r.example/v2/app/blobs/sha256:x";
	static const char b6[] = "https://[2001:db8::5]:8443/v2/a/blobs/d";
	static const char bh[] = "http://127.0.0.1:5000/v2/a/blobs/d?x=1";
	static const struct resolve_case t[] = {
		/* A path: the same scheme, host and port. */
		{ b, "/v2/app/blobs/y", { NULL, 1, 1, "r.example", 443,
		    "/v2/app/blobs/y" } },
		{ b, "/cdn/x?sig=1&exp=2", { NULL, 1, 1, "r.example", 443,
		    "/cdn/x?sig=1&exp=2" } },
		{ b, "/x#frag", { NULL, 1, 1, "r.example", 443, "/x" } },
		{ b, "/", { NULL, 1, 1, "r.example", 443, "/" } },
		{ b6, "/x", { NULL, 1, 1, "2001:db8::5", 8443, "/x" } },
		{ bh, "/x", { NULL, 1, 0, "127.0.0.1", 5000, "/x" } },
		/* Absolute: as it says (the redirect policy judges it). */
		{ b, "https://cdn.example/b?sig=abc", { NULL, 1, 1,
		    "cdn.example", 443, "/b?sig=abc" } },
		{ b, "http://cdn.example:8080/b", { NULL, 1, 0, "cdn.example",
		    8080, "/b" } },
		{ b, "HTTPS://[::1]:9/x", { NULL, 1, 1, "::1", 9, "/x" } },
		{ bh, "https://r.example", { NULL, 1, 1, "r.example", 443,
		    "/" } },
		/* Protocol-relative: another host on the same scheme. */
		{ b, "//cdn.example/x", { NULL, 1, 1, "cdn.example", 443,
		    "/x" } },
		{ b, "//cdn.example:8443", { NULL, 1, 1, "cdn.example", 8443,
		    "/" } },
		{ bh, "//[::1]:9/x?y", { NULL, 1, 0, "::1", 9, "/x?y" } },
		/* Relative: the base's directory, or its path for a query. */
		{ b, "y", { NULL, 1, 1, "r.example", 443, "/v2/app/blobs/y" } },
		{ b, "../x", { NULL, 1, 1, "r.example", 443, "/v2/app/x" } },
		{ b, "?q=1", { NULL, 1, 1, "r.example", 443,
		    "/v2/app/blobs/sha256:x?q=1" } },
		{ bh, "?q=2", { NULL, 1, 0, "127.0.0.1", 5000,
		    "/v2/a/blobs/d?q=2" } },
		{ bh, "e?sig=1", { NULL, 1, 0, "127.0.0.1", 5000,
		    "/v2/a/blobs/e?sig=1" } },
		{ b6, "../../../../../x", { NULL, 1, 1, "2001:db8::5", 8443,
		    "/x" } },
		{ b, "u1?next=http://x/y", { NULL, 1, 1, "r.example", 443,
		    "/v2/app/blobs/u1?next=http://x/y" } },
		{ b, "#frag", REFUSED },
		{ b, "a:b", REFUSED },
		{ b, "y z", REFUSED },
		{ b, "../\x01", REFUSED },
		{ b, "//", REFUSED },
		{ b, "//:443/x", REFUSED },
		{ b, "//evil.example\\@r.example/", REFUSED },
		/* Hostile or broken. */
		{ b, "", REFUSED },
		{ b, "/a b", REFUSED },
		{ b, "/a\x01", REFUSED },
		{ b, "/\xff", REFUSED },
		{ b, "/a\r\nX-Injected: 1", REFUSED },
		{ b, "/a?\"<script>", REFUSED },
		{ b, "//u@evil.example/", REFUSED },
		{ b, "///x", REFUSED },
		{ b, "javascript:alert(1)", REFUSED },
		{ b, "ftp://cdn.example/x", REFUSED },
		{ b, "https://evil.example@r.example/", REFUSED },
		{ b, "https://r.example:99999/", REFUSED },
		{ b, "https:evil.example", REFUSED },
		{ b, "http:/x", REFUSED },
		{ b, "\t/x", REFUSED },
		{ b, " /x", REFUSED },
		{ b, "https://a%2f@b/", REFUSED },
		{ b, "https://[fe80::1%25eth0]/", REFUSED },
	};
	struct upstream_url	base, u;
	char			what[300];
	size_t			i;

	test_rfc3986();
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (upstream_url_parse(t[i].base, &base) != 0)
			bail_out(t[i].base);
		memset(&u, 0x5a, sizeof(u));
		snprintf(what, sizeof(what), "resolve on %s:%d",
		    base.host, base.port);
		{
			struct url_case c = t[i].want;

			c.s = t[i].loc;
			check_url(what, &c, &u,
			    upstream_url_resolve(&base, t[i].loc, &u));
		}
		upstream_url_fini(&u);
		upstream_url_fini(&base);
	}
}

/* An upstream with the given endpoints, as upstream_init_all makes it. */
static struct upstream *
mk_upstream(const char *const *urls, size_t n)
{
	struct config_upstream	*cu = xcalloc(1, sizeof(*cu));
	struct upstream		*u = xcalloc(1, sizeof(*u));
	size_t			 i;

	cu->name = xstrdup("test");
	u->magic = UPSTREAM_MAGIC;
	u->cfg = cu;
	u->nurls = n;
	u->urls = xcalloc(n, sizeof(*u->urls));
	for (i = 0; i < n; i++)
		if (upstream_url_parse(urls[i], &u->urls[i]) != 0)
			bail_out(urls[i]);
	return u;
}

static void
free_upstream(struct upstream *u)
{
	size_t	i;

	for (i = 0; i < u->nurls; i++)
		upstream_url_fini(&u->urls[i]);
	free(u->urls);
	free(u->cfg->name);
	free((void *)(uintptr_t)u->cfg);
	free(u);
}

static void
test_location_path(void)
{
	static const char *const eps[] = { "https://r.example",
	    "https://mirror.example:8443" };
	static const char up[] = "/v2/app/blobs/uploads/";
	static const struct {
		const char	*loc, *base, *want;	/* want NULL: -1 */
	} t[] = {
		{ "/v2/app/blobs/uploads/u1?_state=s", up,
		    "/v2/app/blobs/uploads/u1?_state=s" },
		{ "/", up, "/" },
		{ "u1", up, "/v2/app/blobs/uploads/u1" },
		{ "u1?_state=s", up, "/v2/app/blobs/uploads/u1?_state=s" },
		{ "u1", "/v2/app/blobs/uploads", "/v2/app/blobs/u1" },
		{ "u1", "noslash", NULL },
		{ "https://r.example/v2/app/blobs/uploads/u2",
		    up, "/v2/app/blobs/uploads/u2" },
		{ "https://R.EXAMPLE:443/v2/x?y=1", up, "/v2/x?y=1" },
		{ "https://mirror.example:8443/v2/x", up, "/v2/x" },
		{ "http://r.example/v2/x", up, NULL },
		{ "https://r.example:8443/v2/x", up, NULL },
		{ "https://mirror.example/v2/x", up, NULL },
		{ "https://evil.example/v2/x", up, NULL },
		{ "https://r.example.evil.example/v2/x", up, NULL },
		{ "https://u@r.example/v2/x", up, NULL },
		{ "", up, NULL },
		{ NULL, up, NULL },
		/* A path a request line cannot carry (it was passed on). */
		{ "/v2/app/blobs/uploads/u1 HTTP/1.0", up, NULL },
		{ "u1\x01", up, NULL },
		/* Another host, not a path (it was taken as a path). */
		{ "//evil.example/v2/x", up, NULL },
		{ "//r.example/v2/x", up, "/v2/x" },
		{ "//mirror.example:8443/v2/x", up, "/v2/x" },
		/* Dot segments of a relative one, resolved. */
		{ "../u3", up, "/v2/app/blobs/u3" },
		{ "u1?next=https://evil.example/", up,
		    "/v2/app/blobs/uploads/u1?next=https://evil.example/" },
	};
	struct upstream	*u = mk_upstream(eps, 2);
	char		*out;
	size_t		 i;
	int		 rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rc = upstream_location_path(u, t[i].loc, t[i].base, &out);
		if (t[i].want == NULL) {
			is_int(rc, -1, "location '%s' on %s: refused",
			    t[i].loc != NULL ? shown(t[i].loc) : "(none)",
			    t[i].base);
			is_str(out, NULL, "  no path");
		} else {
			is_int(rc, 0, "location '%s' on %s", shown(t[i].loc),
			    t[i].base);
			is_str(out, t[i].want, "  the path");
		}
		free(out);
	}
	free_upstream(u);
}

int
main(void)
{
	test_parse();
	test_resolve();
	test_location_path();
	return done_testing();
}
