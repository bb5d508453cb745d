/*
 * test_error.c — proxy/proxy_reply.c without a connection: the mapping
 * of a failed or non-2xx upstream exchange to the client's reply
 * (proxy_map_upstream) for every error sentinel and every status it
 * tells apart (404 by kind, 401/403, 429, 5xx and others; busy, timeout,
 * policy, auth with and without a message), the Retry-After sent with
 * it (proxy_error_retry_after), and the OCI error body
 * (proxy_error_body): exact for plain messages, escaped, cut without
 * splitting an escape, and valid JSON for any bytes.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proxy/proxy_int.h"
#include "tests/lib/tap.h"
#include "upstream/upstream.h"

#define DG	"sha256:0123456789abcdef0123456789abcdef" \
		"0123456789abcdef0123456789abcdef"
#define DENIED_MSG(st)	"upstream up.example denied access to org/app " \
			"(status " st "): check the mirror's credentials for it"

static void
test_map(void)
{
	static const struct {
		const char	*what;
		enum proxy_kind	 kind;
		const char	*ref;
		int		 ustatus;
		const char	*err, *errmsg;
		int		 status;
		const char	*code;
		int		 retry;
		const char	*retry_after, *msg;
	} t[] = {
		/* Ours: a slot did not come free in time. */
		{ "busy", PROXY_KIND_BLOB, DG, 0, upstream_err_busy,
		    "upstream up.example: 8 requests in progress", 503,
		    "UNAVAILABLE", 1, "5",
		    "upstream up.example: 8 requests in progress" },
		{ "busy, whatever the status", PROXY_KIND_MANIFEST, "v1", 429,
		    upstream_err_busy, "busy", 503, "UNAVAILABLE", 1, "5",
		    "busy" },
		{ "timeout", PROXY_KIND_MANIFEST, "v1", 0,
		    upstream_err_timeout, "upstream up.example timed out", 504,
		    "UNAVAILABLE", 0, NULL, "upstream up.example timed out" },
		{ "timeout after a 429", PROXY_KIND_MANIFEST, "v1", 429,
		    upstream_err_timeout, "t", 504, "UNAVAILABLE", 0, NULL,
		    "t" },
		/* Every other failure: 502 with the details. */
		{ "connect", PROXY_KIND_BLOB, DG, 0, upstream_err_connect,
		    "cannot connect to up.example:443", 502, "UNAVAILABLE", 0,
		    NULL, "cannot connect to up.example:443" },
		{ "reset", PROXY_KIND_BLOB, DG, 200, upstream_err_reset, "r",
		    502, "UNAVAILABLE", 0, NULL, "r" },
		{ "protocol", PROXY_KIND_MANIFEST, "v1", 302,
		    upstream_err_protocol, "bad redirect Location 'x'", 502,
		    "UNAVAILABLE", 0, NULL, "bad redirect Location 'x'" },
		{ "too large", PROXY_KIND_MANIFEST, "v1", 200,
		    upstream_err_too_large, "over 4 MiB", 502, "UNAVAILABLE",
		    0, NULL, "over 4 MiB" },
		{ "policy", PROXY_KIND_BLOB, DG, 307, upstream_err_policy,
		    "upstream up.example: redirect to 10.0.0.1 refused", 502,
		    "UNAVAILABLE", 0, NULL,
		    "upstream up.example: redirect to 10.0.0.1 refused" },
		{ "cancelled", PROXY_KIND_BLOB, DG, 0, upstream_err_cancelled,
		    "c", 502, "UNAVAILABLE", 0, NULL, "c" },
		{ "a %% in a message is not a format", PROXY_KIND_BLOB, DG, 0,
		    upstream_err_connect, "100%s %n", 502, "UNAVAILABLE", 0,
		    NULL, "100%s %n" },
		/* The token service failed. */
		{ "auth, no response", PROXY_KIND_MANIFEST, "v1", 0,
		    upstream_err_auth, "token service down", 502,
		    "UNAVAILABLE", 0, NULL, "token service down" },
		{ "auth after a 403", PROXY_KIND_MANIFEST, "v1", 403,
		    upstream_err_auth, "token service down", 502,
		    "UNAVAILABLE", 0, NULL, "token service down" },
		{ "auth after a 401, with a message", PROXY_KIND_MANIFEST,
		    "v1", 401, upstream_err_auth,
		    "token service at auth.example answered 401", 403,
		    "DENIED", 0, NULL,
		    "token service at auth.example answered 401" },
		{ "auth after a 401, empty message", PROXY_KIND_MANIFEST,
		    "v1", 401, upstream_err_auth, "", 403, "DENIED", 0, NULL,
		    DENIED_MSG("401") },
		{ "auth after a 401, no message", PROXY_KIND_MANIFEST, "v1",
		    401, upstream_err_auth, NULL, 403, "DENIED", 0, NULL,
		    DENIED_MSG("401") },
		/* A whole exchange with a status that is not 2xx. */
		{ "401", PROXY_KIND_MANIFEST, "v1", 401, NULL, NULL, 403,
		    "DENIED", 0, NULL, DENIED_MSG("401") },
		{ "401, an errmsg is not used", PROXY_KIND_BLOB, DG, 401, NULL,
		    "ignored", 403, "DENIED", 0, NULL, DENIED_MSG("401") },
		{ "403", PROXY_KIND_BLOB, DG, 403, NULL, NULL, 403, "DENIED", 0,
		    NULL, DENIED_MSG("403") },
		{ "404 manifest", PROXY_KIND_MANIFEST, "v1", 404, NULL, NULL,
		    404, "MANIFEST_UNKNOWN", 0, NULL,
		    "manifest v1 not found at upstream up.example" },
		{ "404 manifest by digest", PROXY_KIND_MANIFEST, DG, 404, NULL,
		    NULL, 404, "MANIFEST_UNKNOWN", 0, NULL,
		    "manifest " DG " not found at upstream up.example" },
		{ "404 blob", PROXY_KIND_BLOB, DG, 404, NULL, NULL, 404,
		    "BLOB_UNKNOWN", 0, NULL,
		    "blob " DG " not found at upstream up.example" },
		{ "404 tags", PROXY_KIND_TAGS, NULL, 404, NULL, NULL, 404,
		    "NAME_UNKNOWN", 0, NULL,
		    "manifest org/app not found at upstream up.example" },
		{ "404 catalog", PROXY_KIND_CATALOG, NULL, 404, NULL, NULL, 404,
		    "NAME_UNKNOWN", 0, NULL,
		    "manifest org/app not found at upstream up.example" },
		{ "404 referrers", PROXY_KIND_REFERRERS, DG, 404, NULL, NULL,
		    404, "NAME_UNKNOWN", 0, NULL,
		    "manifest " DG " not found at upstream up.example" },
		{ "404 base", PROXY_KIND_BASE, NULL, 404, NULL, NULL, 404,
		    "NAME_UNKNOWN", 0, NULL,
		    "manifest org/app not found at upstream up.example" },
		{ "429", PROXY_KIND_MANIFEST, "v1", 429, NULL, NULL, 429,
		    "TOOMANYREQUESTS", 1, NULL,
		    "upstream up.example is rate-limiting the mirror" },
		{ "429 blob", PROXY_KIND_BLOB, DG, 429, NULL, NULL, 429,
		    "TOOMANYREQUESTS", 1, NULL,
		    "upstream up.example is rate-limiting the mirror" },
		{ "500", PROXY_KIND_MANIFEST, "v1", 500, NULL, NULL, 502,
		    "UNAVAILABLE", 0, NULL,
		    "upstream up.example answered 500" },
		{ "502", PROXY_KIND_BLOB, DG, 502, NULL, NULL, 502,
		    "UNAVAILABLE", 0, NULL,
		    "upstream up.example answered 502" },
		{ "503", PROXY_KIND_BLOB, DG, 503, NULL, NULL, 502,
		    "UNAVAILABLE", 0, NULL,
		    "upstream up.example answered 503" },
		{ "504", PROXY_KIND_TAGS, NULL, 504, NULL, NULL, 502,
		    "UNAVAILABLE", 0, NULL,
		    "upstream up.example answered 504" },
		{ "599", PROXY_KIND_BLOB, DG, 599, NULL, NULL, 502,
		    "UNAVAILABLE", 0, NULL,
		    "upstream up.example answered 599" },
		{ "400", PROXY_KIND_MANIFEST, "v1", 400, NULL, NULL, 502,
		    "UNAVAILABLE", 0, NULL,
		    "upstream up.example answered unexpected status 400" },
		{ "405", PROXY_KIND_MANIFEST, "v1", 405, NULL, NULL, 502,
		    "UNAVAILABLE", 0, NULL,
		    "upstream up.example answered unexpected status 405" },
		{ "302 not followed", PROXY_KIND_BLOB, DG, 302, NULL, NULL, 502,
		    "UNAVAILABLE", 0, NULL,
		    "upstream up.example answered unexpected status 302" },
		{ "206 where 200 was due", PROXY_KIND_BLOB, DG, 206, NULL,
		    NULL, 502, "UNAVAILABLE", 0, NULL,
		    "upstream up.example answered unexpected status 206" },
		{ "no status", PROXY_KIND_BLOB, DG, 0, NULL, NULL, 502,
		    "UNAVAILABLE", 0, NULL,
		    "upstream up.example answered unexpected status 0" },
	};
	struct proxy_err	e;
	size_t			i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&e, 0x5a, sizeof(e));
		proxy_map_upstream(t[i].kind, t[i].ref, "org/app",
		    "up.example", t[i].ustatus, t[i].err, t[i].errmsg, &e);
		is_int(e.status, t[i].status, "%s: %d", t[i].what,
		    t[i].status);
		is_str(e.code, t[i].code, "  code");
		is_int(e.retry, t[i].retry, "  Retry-After %s",
		    t[i].retry ? "sent" : "not sent");
		is_str(e.retry_after, t[i].retry_after, "  our Retry-After");
		is_str(e.msg, t[i].msg, "  message");
	}
}

/* An upstream's message longer than the reply's field is cut, ended. */
static void
test_map_long(void)
{
	struct proxy_err	 e;
	char			*m;

	m = malloc(2000);
	memset(m, 'm', 1999);
	m[1999] = '\0';
	proxy_map_upstream(PROXY_KIND_BLOB, DG, "org/app", "up.example", 0,
	    upstream_err_connect, m, &e);
	is_int(strlen(e.msg), sizeof(e.msg) - 1, "a 1999-byte errmsg: %zu "
	    "bytes kept", sizeof(e.msg) - 1);
	free(m);
}

static void
test_retry_after(void)
{
	static const struct {
		const char	*what;
		int		 ustatus;
		const char	*err, *upstream, *want;
	} t[] = {
		{ "429 with delta-seconds", 429, NULL, "120", "120" },
		{ "429 with 0", 429, NULL, "0", "0" },
		{ "429 with 9 digits", 429, NULL, "999999999", "999999999" },
		{ "429 with 10 digits", 429, NULL, "1234567890", "60" },
		{ "429 with none", 429, NULL, NULL, "60" },
		{ "429 with an empty one", 429, NULL, "", "60" },
		{ "429 with an HTTP-date", 429, NULL,
		    "Wed, 21 Oct 2015 07:28:00 GMT", "60" },
		{ "429 with a negative", 429, NULL, "-5", "60" },
		{ "429 with a space", 429, NULL, " 5", "60" },
		{ "429 with a fraction", 429, NULL, "1.5", "60" },
		{ "429 with a header in it", 429, NULL, "5\r\nSet-Cookie: x",
		    "60" },
		{ "busy: ours, not the upstream's", 0, upstream_err_busy, "120",
		    "5" },
		{ "busy, upstream sent none", 0, upstream_err_busy, NULL, "5" },
		{ "503: none", 503, NULL, "120", NULL },
		{ "timeout: none", 0, upstream_err_timeout, "30", NULL },
		{ "404: none", 404, NULL, "30", NULL },
		{ "401: none", 401, NULL, "30", NULL },
		{ "policy: none", 307, upstream_err_policy, "30", NULL },
	};
	struct proxy_err	e;
	size_t			i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		proxy_map_upstream(PROXY_KIND_MANIFEST, "v1", "org/app",
		    "up.example", t[i].ustatus, t[i].err, "m", &e);
		is_str(proxy_error_retry_after(&e, t[i].upstream), t[i].want,
		    "Retry-After: %s", t[i].what);
	}
}

/* Is s printable ASCII (what a body may hold outside its quotes)? */
static int
printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

/*
 * body parses as {"errors":[{"code":code,"message":M,"detail":null}]}
 * with nothing else in it: 1 and M in msg (malloc'd), or 0.
 */
static int
body_ok(const char *body, const char *code, char **msg)
{
	json_t		*root, *e;
	json_error_t	 jerr;
	const char	*c, *m;
	int		 rc = 0;

	*msg = NULL;
	if (!printable(body) ||
	    (root = json_loads(body, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return 0;
	if (json_object_size(root) == 1 &&
	    json_array_size(json_object_get(root, "errors")) == 1 &&
	    (e = json_array_get(json_object_get(root, "errors"), 0)) != NULL &&
	    json_object_size(e) == 3 &&
	    json_is_null(json_object_get(e, "detail")) &&
	    (c = json_string_value(json_object_get(e, "code"))) != NULL &&
	    strcmp(c, code) == 0 &&
	    (m = json_string_value(json_object_get(e, "message"))) != NULL) {
		*msg = strdup(m);
		rc = 1;
	}
	json_decref(root);
	return rc;
}

/* A message that was cut ends in "..." after whole escapes only. */
static int
whole_escapes(const char *m)
{
	size_t	i = 0, n = strlen(m);

	while (i < n) {
		if (m[i] != '\\') {
			i++;
			continue;
		}
		if (m[i + 1] == '\\')
			i += 2;
		else if (m[i + 1] == 'x' && m[i + 2] != '\0' &&
		    m[i + 3] != '\0' && strchr("0123456789abcdef", m[i + 2]) &&
		    strchr("0123456789abcdef", m[i + 3]))
			i += 4;
		else
			return 0;
	}
	return 1;
}

static void
test_body(void)
{
	static const struct {
		const char	*msg, *want;
	} t[] = {
		{ "", "" },
		{ "manifest v1 not found", "manifest v1 not found" },
		{ "a \"quoted\" name", "a \"quoted\" name" },
		{ "back\\slash", "back\\\\slash" },
		{ "line\r\nX-Injected: 1", "line\\x0d\\x0aX-Injected: 1" },
		{ "tab\there", "tab\\x09here" },
		{ "del\x7f", "del\\x7f" },
		{ "caf\xc3\xa9", "caf\\xc3\\xa9" },
		{ "bad utf-8 \xff\xfe\xc3", "bad utf-8 \\xff\\xfe\\xc3" },
		{ "</script><script>", "</script><script>" },
		{ "\\x41", "\\\\x41" },
	};
	char	*body, *m, *big;
	size_t	 i;
	int	 bad;

	body = proxy_error_body("NAME_UNKNOWN", "no upstream named 'x'");
	is_str(body, "{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":"
	    "\"no upstream named 'x'\",\"detail\":null}]}", "the exact body");
	free(body);

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		body = proxy_error_body("UNAVAILABLE", t[i].msg);
		ok(body_ok(body, "UNAVAILABLE", &m), "body %zu: an OCI error, "
		    "printable", i);
		is_str(m, t[i].want, "  message escaped");
		free(m);
		free(body);
	}

	/* Too long: cut to PROXY_ERROR_MSG_MAX with "...", escapes whole. */
	big = malloc(4000);
	memset(big, 'a', 3999);
	big[3999] = '\0';
	body = proxy_error_body("UNAVAILABLE", big);
	ok(body_ok(body, "UNAVAILABLE", &m), "a 3999-byte message");
	ok(m != NULL && strlen(m) < PROXY_ERROR_MSG_MAX &&
	    strlen(m) > PROXY_ERROR_MSG_MAX - 8, "  cut under %d bytes",
	    PROXY_ERROR_MSG_MAX);
	ok(m != NULL && strcmp(m + strlen(m) - 3, "...") == 0,
	    "  ending in ...");
	free(m);
	free(body);
	for (i = 0; i < 4; i++) {
		/* Shift the escapes against the cut: 0..3 plain bytes. */
		memset(big, 'a', i);
		memset(big + i, 0xff, 3999 - i);
		body = proxy_error_body("UNAVAILABLE", big);
		ok(body_ok(body, "UNAVAILABLE", &m) && whole_escapes(m) &&
		    strcmp(m + strlen(m) - 3, "...") == 0,
		    "%zu + 8-bit bytes: cut between escapes", i);
		free(m);
		free(body);
	}

	/* Every byte, alone and between letters. */
	bad = 0;
	for (i = 1; i < 256; i++) {
		char s[4] = { 'x', (char)i, 'y', '\0' };

		body = proxy_error_body("DENIED", s);
		if (!body_ok(body, "DENIED", &m))
			bad++;
		free(m);
		free(body);
	}
	is_int(bad, 0, "every byte 1..255: valid, printable JSON");

	/* Random bytes (a fixed seed: the same run every time). */
	{
		uint32_t	seed = 20240611;
		size_t		len, k;

		bad = 0;
		for (i = 0; i < 2000; i++) {
			seed = seed * 1103515245 + 12345;
			len = (seed >> 16) % 800;
			for (k = 0; k < len; k++) {
				seed = seed * 1103515245 + 12345;
				big[k] = (char)((seed >> 16) % 255 + 1);
			}
			big[len] = '\0';
			body = proxy_error_body("UNAVAILABLE", big);
			if (!body_ok(body, "UNAVAILABLE", &m) ||
			    !whole_escapes(m) ||
			    strlen(m) >= PROXY_ERROR_MSG_MAX)
				bad++;
			free(m);
			free(body);
		}
		is_int(bad, 0, "2000 random messages: valid, printable JSON, "
		    "cut between escapes");
	}
	free(big);
}

int
main(void)
{
	test_map();
	test_map_long();
	test_retry_after();
	test_body();
	return done_testing();
}
