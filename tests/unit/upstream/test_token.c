/*
 * test_token.c — upstream_token_parse, a token service's JSON reply to
 * the Authorization value the mirror sends: "token" before
 * "access_token" (empty or non-string ones skipped), expires_in bounds
 * (default 60 s, under a year, integers only), control bytes that would
 * split a header, the 16 KiB size cap, non-object replies, junk, and the
 * length given (the body is not NUL-terminated).
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"
#include "common/xmalloc.h"
#include "tests/lib/tap.h"
#include "upstream/upstream_int.h"

static const char *
shown(const char *s)
{
	static char	buf[2][200];
	static int	n;

	n = (n + 1) % 2;
	text_escape(buf[n], sizeof(buf[n]), s, strlen(s));
	return buf[n];
}

static void
test_table(void)
{
	static const struct {
		const char	*json;
		const char	*want;		/* NULL: refused */
		long		 exp;
	} t[] = {
		/* Which field. */
		{ "{\"token\":\"abc\"}", "Bearer abc", 60 },
		{ "{\"access_token\":\"abc\"}", "Bearer abc", 60 },
		{ "{\"token\":\"t\",\"access_token\":\"a\"}", "Bearer t", 60 },
		{ "{\"access_token\":\"a\",\"token\":\"t\"}", "Bearer t", 60 },
		{ "{\"token\":\"\",\"access_token\":\"a\"}", "Bearer a", 60 },
		{ "{\"token\":null,\"access_token\":\"a\"}", "Bearer a", 60 },
		{ "{\"token\":123,\"access_token\":\"a\"}", "Bearer a", 60 },
		{ "{\"token\":{\"x\":1},\"access_token\":\"a\"}", "Bearer a",
		    60 },
		{ "{\"token\":[\"t\"]}", NULL, 60 },
		{ "{\"token\":\"\"}", NULL, 60 },
		{ "{\"token\":\"\",\"access_token\":\"\"}", NULL, 60 },
		{ "{\"access_token\":true}", NULL, 60 },
		{ "{}", NULL, 60 },
		{ "{\"expires_in\":300}", NULL, 60 },
		{ "{\"Token\":\"abc\"}", NULL, 60 },
		/* The last of duplicate keys (jansson's rule). */
		{ "{\"token\":\"a\",\"token\":\"b\"}", "Bearer b", 60 },
		/* Extra fields are ignored. */
		{ "{\"token\":\"t\",\"issued_at\":\"2024-01-01T00:00:00Z\","
		    "\"refresh_token\":\"r\"}", "Bearer t", 60 },
		/* expires_in: a positive integer under a year, else 60. */
		{ "{\"token\":\"t\",\"expires_in\":300}", "Bearer t", 300 },
		{ "{\"token\":\"t\",\"expires_in\":1}", "Bearer t", 1 },
		{ "{\"token\":\"t\",\"expires_in\":31535999}", "Bearer t",
		    31535999 },
		{ "{\"token\":\"t\",\"expires_in\":31536000}", "Bearer t", 60 },
		{ "{\"token\":\"t\",\"expires_in\":0}", "Bearer t", 60 },
		{ "{\"token\":\"t\",\"expires_in\":-300}", "Bearer t", 60 },
		{ "{\"token\":\"t\",\"expires_in\":9223372036854775807}",
		    "Bearer t", 60 },
		{ "{\"token\":\"t\",\"expires_in\":300.5}", "Bearer t", 60 },
		{ "{\"token\":\"t\",\"expires_in\":\"300\"}", "Bearer t", 60 },
		{ "{\"token\":\"t\",\"expires_in\":null}", "Bearer t", 60 },
		{ "{\"token\":\"t\",\"expires_in\":1e3}", "Bearer t", 60 },
		/* A token is a header value: no control bytes. */
		{ "{\"token\":\"a\\nb\"}", NULL, 60 },
		{ "{\"token\":\"a\\r\\nX-Injected: 1\"}", NULL, 60 },
		{ "{\"token\":\"a\\tb\"}", NULL, 60 },
		{ "{\"token\":\"a\\u0001b\"}", NULL, 60 },
		{ "{\"token\":\"a\\u007fb\"}", NULL, 60 },
		{ "{\"token\":\"\\u001f\"}", NULL, 60 },
		{ "{\"token\":\"a\\u0000b\"}", NULL, 60 },
		{ "{\"token\":\"a\\nb\",\"access_token\":\"c\"}", NULL, 60 },
		/* Printable and 8-bit bytes are passed as they are. */
		{ "{\"token\":\"a b\"}", "Bearer a b", 60 },
		{ "{\"token\":\"eyJh.eyJz.c2ln-_=\"}",
		    "Bearer eyJh.eyJz.c2ln-_=", 60 },
		{ "{\"token\":\"caf\\u00e9\"}", "Bearer caf\xc3\xa9", 60 },
		/* Not an object. */
		{ "[]", NULL, 60 },
		{ "[{\"token\":\"t\"}]", NULL, 60 },
		{ "\"t\"", NULL, 60 },
		{ "123", NULL, 60 },
		{ "null", NULL, 60 },
		{ "true", NULL, 60 },
		/* Junk. */
		{ "", NULL, 60 },
		{ " ", NULL, 60 },
		{ "{", NULL, 60 },
		{ "{\"token\":", NULL, 60 },
		{ "{\"token\":\"t\"", NULL, 60 },
		{ "{\"token\":\"t\"} trailing", NULL, 60 },
		{ "{\"token\":\"t\"}{}", NULL, 60 },
		{ "{token:\"t\"}", NULL, 60 },
		{ "{'token':'t'}", NULL, 60 },
		{ "<html>401 Unauthorized</html>", NULL, 60 },
		{ "{\"token\":\"\xff\xfe\"}", NULL, 60 },
		{ "{\"token\":\"\\ud800\"}", NULL, 60 },
		{ "\xef\xbb\xbf{\"token\":\"t\"}", NULL, 60 },
		{ " \n{\"token\":\"t\"}\n ", "Bearer t", 60 },
	};
	char	*tok;
	long	 exp;
	size_t	 i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		exp = -1;
		tok = upstream_token_parse(t[i].json, strlen(t[i].json), &exp);
		is_str(tok, t[i].want, "'%s'", shown(t[i].json));
		is_int(exp, t[i].exp, "  expires_in %ld", t[i].exp);
		free(tok);
	}
}

/* The body comes out of an evbuffer: only len bytes count. */
static void
test_length(void)
{
	static const char	 j[] = "{\"token\":\"abc\"}garbage";
	char			*tok, *buf;
	long			 exp;

	tok = upstream_token_parse(j, 15, &exp);
	is_str(tok, "Bearer abc", "only len bytes are read");
	free(tok);
	tok = upstream_token_parse(j, 14, &exp);
	is_str(tok, NULL, "  one short: refused");
	tok = upstream_token_parse(j, 0, &exp);
	is_str(tok, NULL, "  none: refused");
	is_int(exp, 60, "  expires_in still set");

	/* Not NUL-terminated at all. */
	buf = xmalloc(15);
	memcpy(buf, j, 15);
	tok = upstream_token_parse(buf, 15, &exp);
	is_str(tok, "Bearer abc", "a body with no NUL after it");
	free(tok);
	free(buf);
}

/* A token of n bytes of 'a' in field. */
static char *
big_reply(const char *field, size_t n)
{
	char	*j;
	size_t	 k;

	j = xmalloc(n + 64);
	k = (size_t)snprintf(j, n + 64, "{\"%s\":\"", field);
	memset(j + k, 'a', n);
	strcpy(j + k + n, "\",\"expires_in\":120}");
	return j;
}

static void
test_size_cap(void)
{
	char	*j, *tok;
	long	 exp;

	j = big_reply("token", UPSTREAM_TOKEN_LEN_MAX);
	tok = upstream_token_parse(j, strlen(j), &exp);
	ok(tok != NULL && strlen(tok) == 7 + UPSTREAM_TOKEN_LEN_MAX,
	    "a token of %d bytes (the cap) is taken", UPSTREAM_TOKEN_LEN_MAX);
	is_int(exp, 120, "  with its expires_in");
	free(tok);
	free(j);

	j = big_reply("token", UPSTREAM_TOKEN_LEN_MAX + 1);
	tok = upstream_token_parse(j, strlen(j), &exp);
	is_str(tok, NULL, "one byte over: refused");
	free(j);

	j = big_reply("access_token", UPSTREAM_TOKEN_LEN_MAX + 1);
	tok = upstream_token_parse(j, strlen(j), &exp);
	is_str(tok, NULL, "  as access_token too");
	free(j);

	/* An oversized "token" does not fall back to access_token. */
	j = xmalloc(UPSTREAM_TOKEN_LEN_MAX + 128);
	snprintf(j, UPSTREAM_TOKEN_LEN_MAX + 128,
	    "{\"access_token\":\"small\",\"token\":\"%0*d\"}",
	    UPSTREAM_TOKEN_LEN_MAX + 1, 0);
	tok = upstream_token_parse(j, strlen(j), &exp);
	is_str(tok, NULL, "  an oversized token is not replaced by "
	    "access_token");
	free(tok);
	free(j);
}

int
main(void)
{
	test_table();
	test_length();
	test_size_cap();
	return done_testing();
}
