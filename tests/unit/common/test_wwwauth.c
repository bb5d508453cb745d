/*
 * test_wwwauth.c — WWW-Authenticate parsing: the headers registries send,
 * RFC 7235 corner cases, choosing among challenges, and garbage.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "common/wwwauth.h"
#include "tests/lib/tap.h"

struct auth_case {
	const char		*in;
	enum wwwauth_scheme	 scheme;
	const char		*realm;
	const char		*service;
	const char		*scope;
	const char		*error;
};

static void
test_good(void)
{
	static const struct auth_case cases[] = {
		/* Docker Hub. */
		{ "Bearer realm=\"https://auth.docker.io/token\","
		  "service=\"registry.docker.io\","
		  "scope=\"repository:library/alpine:pull\"",
		  WWWAUTH_BEARER, "https://auth.docker.io/token",
		  "registry.docker.io", "repository:library/alpine:pull",
		  NULL },
		/* ghcr.io, with spaces after the commas. */
		{ "Bearer realm=\"https://ghcr.io/token\", "
		  "service=\"ghcr.io\", scope=\"repository:o/a:pull\"",
		  WWWAUTH_BEARER, "https://ghcr.io/token", "ghcr.io",
		  "repository:o/a:pull", NULL },
		{ "Basic realm=\"Registry Realm\"", WWWAUTH_BASIC,
		  "Registry Realm", NULL, NULL, NULL },
		{ "Basic", WWWAUTH_BASIC, NULL, NULL, NULL, NULL },
		{ "  basic  ", WWWAUTH_BASIC, NULL, NULL, NULL, NULL },
		{ "BEARER REALM=\"r\"", WWWAUTH_BEARER, "r", NULL, NULL,
		  NULL },
		/* Token values, BWS around '='. */
		{ "Bearer realm=tok,service = svc , scope= s", WWWAUTH_BEARER,
		  "tok", "svc", "s", NULL },
		/* An unquoted URL (sent by some registries). */
		{ "Bearer realm=https://h/token?x=1,service=h",
		  WWWAUTH_BEARER, "https://h/token?x=1", "h", NULL, NULL },
		/* Quoted commas and escapes. */
		{ "Bearer realm=\"a,b\",scope=\"repository:x:pull,push\"",
		  WWWAUTH_BEARER, "a,b", NULL, "repository:x:pull,push",
		  NULL },
		{ "Basic realm=\"say \\\"hi\\\" \\\\ bye\"", WWWAUTH_BASIC,
		  "say \"hi\" \\ bye", NULL, NULL, NULL },
		{ "Basic realm=\"\\a\\b\"", WWWAUTH_BASIC, "ab", NULL, NULL,
		  NULL },
		{ "Basic realm=\"\"", WWWAUTH_BASIC, "", NULL, NULL, NULL },
		{ "Basic realm=\"tab\there\"", WWWAUTH_BASIC, "tab\there",
		  NULL, NULL, NULL },
		/* Errors from a token endpoint. */
		{ "Bearer realm=\"r\",error=\"insufficient_scope\","
		  "scope=\"repository:a:push\"", WWWAUTH_BEARER, "r", NULL,
		  "repository:a:push", "insufficient_scope" },
		/* Unknown parameters are ignored; first value wins. */
		{ "Bearer foo=bar, realm=\"r1\", Realm=\"r2\", x=\"y\"",
		  WWWAUTH_BEARER, "r1", NULL, NULL, NULL },
		/* Several challenges: Bearer wins, wherever it is. */
		{ "Basic realm=\"basic\", Bearer realm=\"bearer\",service=s",
		  WWWAUTH_BEARER, "bearer", "s", NULL, NULL },
		{ "Bearer realm=\"first\", Bearer realm=\"second\"",
		  WWWAUTH_BEARER, "first", NULL, NULL, NULL },
		{ "Negotiate, Basic realm=\"b\"", WWWAUTH_BASIC, "b", NULL,
		  NULL, NULL },
		{ "Newauth realm=\"apps\", type=1, "
		  "title=\"Login to \\\"apps\\\"\", Basic realm=\"simple\"",
		  WWWAUTH_BASIC, "simple", NULL, NULL, NULL },
		{ "Negotiate", WWWAUTH_UNKNOWN, NULL, NULL, NULL, NULL },
		{ "Digest realm=\"d\", Mutual", WWWAUTH_UNKNOWN, "d", NULL,
		  NULL, NULL },
		/* token68. */
		{ "Negotiate YIIC+w/Yabc==, Basic realm=\"x\"", WWWAUTH_BASIC,
		  "x", NULL, NULL, NULL },
		{ "Basic abc=", WWWAUTH_BASIC, NULL, NULL, NULL, NULL },
		/* Empty list elements. */
		{ ", ,Bearer realm=\"r\",, ,service=\"s\",", WWWAUTH_BEARER,
		  "r", "s", NULL, NULL },
		/* obs-text inside quotes is kept. */
		{ "Basic realm=\"caf\xc3\xa9\"", WWWAUTH_BASIC,
		  "caf\xc3\xa9", NULL, NULL, NULL },
	};
	struct wwwauth	a;
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct auth_case *c = &cases[i];

		if (!is_int(wwwauth_parse(c->in, &a), 0, "parse <%s>",
		    c->in)) {
			skip(5, "parse failed");
			continue;
		}
		is_int(a.scheme, c->scheme, "  scheme");
		is_str(a.realm, c->realm, "  realm");
		is_str(a.service, c->service, "  service");
		is_str(a.scope, c->scope, "  scope");
		is_str(a.error, c->error, "  error");
		wwwauth_fini(&a);
	}
}

static void
test_bad(void)
{
	static const char *const bad[] = {
		"",
		"   ",
		",,,",
		"realm=\"r\"",				/* param, no scheme */
		"=",
		"Bearer realm=\"unterminated",
		"Bearer realm=\"ends in backslash\\",
		"Bearer realm=\"r\" service=\"s\"",	/* missing comma */
		"Bearer realm=\"r\"junk",
		"Bearer realm=\"a\nb\"",		/* control byte */
		"Bearer realm=\"a\x01" "b\"",
		"Bearer realm=\"a\x7f" "b\"",
		"Bearer\"realm\"",
		"Bearer \"realm\"",
		"Bearer realm=\"r\", \"x\"",
		"Bearer realm=\"r\", @",
		"Basic abc== def",
		"Basic =",
		"\"Bearer\"",
		"Bearer realm=\"r\",service=\"s\",scope=\"x",
		"@@@",
		"Bearer realm=\"r\";service=\"s\"",
		"\x80\xff",
		"Bearer\x01",
	};
	struct wwwauth	a;
	size_t		i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&a, 0x5a, sizeof(a));
		is_int(wwwauth_parse(bad[i], &a), -1, "reject <%s>", bad[i]);
		ok(a.scheme == WWWAUTH_UNKNOWN && a.realm == NULL &&
		    a.service == NULL && a.scope == NULL && a.error == NULL,
		    "  out is zeroed");
	}
	is_int(wwwauth_parse(NULL, &a), -1, "reject NULL");
	wwwauth_fini(&a);
	wwwauth_fini(NULL);
	ok(1, "fini of a zeroed struct and of NULL");
}

/*
 * Every prefix of a valid header, and single-byte mutations of it, must
 * parse or fail cleanly (run under ASan this catches any over-read).
 */
static void
test_prefixes_and_mutations(void)
{
	static const char	*hdr = "Basic realm=\"x\", Bearer "
	    "realm=\"https://auth.docker.io/token\",service=\"reg\\\"istry\","
	    "scope=\"repository:library/alpine:pull\", Negotiate ab+/c==";
	static const char	 bytes[] = "\"\\,= \t\x01\x7f\x80" "a";
	struct wwwauth		 a;
	size_t			 len = strlen(hdr), i, j;
	char			*buf;
	int			 odd = 0, parsed = 0;

	for (i = 0; i <= len; i++) {
		buf = malloc(i + 1);
		memcpy(buf, hdr, i);
		buf[i] = '\0';
		if (wwwauth_parse(buf, &a) == 0)
			parsed++;
		wwwauth_fini(&a);
		free(buf);
	}
	ok(parsed > 0, "prefixes: %d of %zu parse", parsed, len + 1);

	buf = malloc(len + 1);
	for (i = 0; i < len; i++) {
		for (j = 0; j < sizeof(bytes) - 1; j++) {
			memcpy(buf, hdr, len + 1);
			buf[i] = bytes[j];
			if (wwwauth_parse(buf, &a) == 0 &&
			    a.scheme != WWWAUTH_BEARER &&
			    a.scheme != WWWAUTH_BASIC &&
			    a.scheme != WWWAUTH_UNKNOWN)
				odd++;
			wwwauth_fini(&a);
		}
	}
	free(buf);
	ok(odd == 0, "single-byte mutations parse or fail cleanly");

	ok(wwwauth_parse(hdr, &a) == 0 && a.scheme == WWWAUTH_BEARER,
	    "the full header picks Bearer");
	is_str(a.service, "reg\"istry", "  escaped quote in service");
	wwwauth_fini(&a);
}

int
main(void)
{
	test_good();
	test_bad();
	test_prefixes_and_mutations();
	return done_testing();
}
