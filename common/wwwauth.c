/*
 * wwwauth.c — parse a WWW-Authenticate header into the one challenge we
 * will answer (RFC 7235 section 4.1; grammar in section 2.1):
 *
 *   challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *   auth-param = token BWS "=" BWS ( token / quoted-string )
 *
 * The header comes from an upstream we do not control, so the scanner only
 * ever looks at the current byte of a NUL-terminated string and never
 * backs up past what it has read.  Commas separate both challenges and
 * parameters; a token followed by '=' is a parameter of the current
 * challenge, any other token starts a new challenge.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/wwwauth.h"
#include "common/xmalloc.h"

/* tchar from RFC 7230 section 3.2.6. */
static int
wwwauth_is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* token68 characters, without the trailing '=' padding. */
static int
wwwauth_is_t68char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("-._~+/", c) != NULL;
}

/*
 * Bytes of an unquoted parameter value.  The grammar says token, but some
 * registries send unquoted URLs (realm=https://host/token), so any visible
 * ASCII byte is accepted except the delimiters that would make the header
 * ambiguous: '"', ',', '\\' and whitespace.
 */
static int
wwwauth_is_vchar(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '"' && c != ',' && c != '\\';
}

static int
wwwauth_is_ws(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static const char *
wwwauth_skip_ws(const char *p)
{
	while (wwwauth_is_ws((unsigned char)*p))
		p++;
	return p;
}

/* Rank for choosing among challenges: Bearer, then Basic, then others. */
static int
wwwauth_rank(enum wwwauth_scheme scheme)
{
	switch (scheme) {
	case WWWAUTH_BEARER:
		return 2;
	case WWWAUTH_BASIC:
		return 1;
	case WWWAUTH_UNKNOWN:
		break;
	}
	return 0;
}

/*
 * Does an auth-param start at p?  On a match, *vp is set to the first byte
 * of its value (a '"' or a value byte).  "abc=" at the end of a challenge
 * is token68 padding, not a parameter, hence the look at the value.
 */
static int
wwwauth_param_at(const char *p, size_t *namelen, const char **vp)
{
	const char	*q = p;

	while (wwwauth_is_tchar((unsigned char)*q))
		q++;
	if (q == p)
		return 0;
	*namelen = (size_t)(q - p);
	q = wwwauth_skip_ws(q);
	if (*q != '=')
		return 0;
	q = wwwauth_skip_ws(q + 1);
	if (*q != '"' && (!wwwauth_is_vchar((unsigned char)*q) || *q == '='))
		return 0;
	*vp = q;
	return 1;
}

/*
 * Read a parameter value at p (a quoted-string or an unquoted run) into a
 * new string; *endp is set past it.  NULL if a quoted string is
 * unterminated or holds a control byte.
 */
static char *
wwwauth_value(const char *p, const char **endp)
{
	const char	*q;
	char		*v, *w;

	if (*p != '"') {
		for (q = p; wwwauth_is_vchar((unsigned char)*q); q++)
			;
		*endp = q;
		return xstrndup(p, (size_t)(q - p));
	}

	/* The unescaped value is never longer than the quoted one. */
	for (q = p + 1; *q != '"'; q++) {
		if (*q == '\0')
			return NULL;
		if (*q == '\\' && *++q == '\0')
			return NULL;
	}
	v = w = xmalloc((size_t)(q - p));
	for (q = p + 1; *q != '"'; q++) {
		if (*q == '\\')
			q++;
		/* qdtext and quoted-pair: HTAB, SP, VCHAR, obs-text. */
		if ((unsigned char)*q < 0x20 && *q != '\t') {
			free(v);
			return NULL;
		}
		if ((unsigned char)*q == 0x7f) {
			free(v);
			return NULL;
		}
		*w++ = *q;
	}
	*w = '\0';
	*endp = q + 1;
	return v;
}

/* Keep the first value of the parameters we know; drop the rest. */
static void
wwwauth_set(struct wwwauth *c, const char *name, size_t namelen, char *value)
{
	char	**slot = NULL;

	if (namelen == 5 && strncasecmp(name, "realm", 5) == 0)
		slot = &c->realm;
	else if (namelen == 7 && strncasecmp(name, "service", 7) == 0)
		slot = &c->service;
	else if (namelen == 5 && strncasecmp(name, "scope", 5) == 0)
		slot = &c->scope;
	else if (namelen == 5 && strncasecmp(name, "error", 5) == 0)
		slot = &c->error;
	if (slot == NULL || *slot != NULL) {
		free(value);
		return;
	}
	*slot = value;
}

/*
 * The auth-param at p (its name namelen bytes, its value at vp, as
 * wwwauth_param_at found them) into c.  Where the scan goes on (a ',' or
 * the end), or NULL when the value is malformed or something follows it.
 */
static const char *
wwwauth_param(struct wwwauth *c, const char *p, size_t namelen,
    const char *vp)
{
	const char	*q;
	char		*value;

	if ((value = wwwauth_value(vp, &q)) == NULL)
		return NULL;
	wwwauth_set(c, p, namelen, value);
	p = wwwauth_skip_ws(q);
	return *p == ',' || *p == '\0' ? p : NULL;
}

static enum wwwauth_scheme
wwwauth_scheme_of(const char *tok, size_t toklen)
{
	if (toklen == 6 && strncasecmp(tok, "bearer", 6) == 0)
		return WWWAUTH_BEARER;
	if (toklen == 5 && strncasecmp(tok, "basic", 5) == 0)
		return WWWAUTH_BASIC;
	return WWWAUTH_UNKNOWN;
}

/*
 * A token68 at p: kept as syntax, never as a value we use.  Where the
 * scan goes on (a ',' or the end), or NULL when it is not one.
 */
static const char *
wwwauth_token68(const char *p)
{
	const char	*q = p;

	while (wwwauth_is_t68char((unsigned char)*q))
		q++;
	if (q == p)
		return NULL;
	while (*q == '=')
		q++;
	p = wwwauth_skip_ws(q);
	return *p == ',' || *p == '\0' ? p : NULL;
}

/* Move cur into best if it ranks higher (ties go to the earlier one). */
static void
wwwauth_choose(struct wwwauth *best, int *have_best, struct wwwauth *cur)
{
	if (!*have_best || wwwauth_rank(cur->scheme) >
	    wwwauth_rank(best->scheme)) {
		wwwauth_fini(best);
		*best = *cur;
		*have_best = 1;
	} else
		wwwauth_fini(cur);
	memset(cur, 0, sizeof(*cur));
}

int
wwwauth_parse(const char *header, struct wwwauth *out)
{
	struct wwwauth	 cur;
	const char	*p, *tok, *vp;
	size_t		 namelen;
	int		 have_cur = 0, have_best = 0;

	memset(out, 0, sizeof(*out));
	memset(&cur, 0, sizeof(cur));
	if (header == NULL)
		return -1;

	p = header;
	for (;;) {
		/* Empty list elements are allowed (RFC 7230 section 7). */
		while (wwwauth_is_ws((unsigned char)*p) || *p == ',')
			p++;
		if (*p == '\0')
			break;

		if (wwwauth_param_at(p, &namelen, &vp)) {
			if (!have_cur ||
			    (p = wwwauth_param(&cur, p, namelen, vp)) == NULL)
				goto fail;
			continue;
		}

		/* Anything else must be a new auth-scheme. */
		tok = p;
		while (wwwauth_is_tchar((unsigned char)*p))
			p++;
		if (p == tok)
			goto fail;
		if (have_cur)
			wwwauth_choose(out, &have_best, &cur);
		have_cur = 1;
		cur.scheme = wwwauth_scheme_of(tok, (size_t)(p - tok));

		if (*p == '\0' || *p == ',')
			continue;
		if (!wwwauth_is_ws((unsigned char)*p))
			goto fail;
		p = wwwauth_skip_ws(p);
		if (*p == '\0' || *p == ',' ||
		    wwwauth_param_at(p, &namelen, &vp))
			continue;
		if ((p = wwwauth_token68(p)) == NULL)
			goto fail;
	}
	if (!have_cur)
		goto fail;
	wwwauth_choose(out, &have_best, &cur);
	return 0;

fail:
	wwwauth_fini(&cur);
	wwwauth_fini(out);
	return -1;
}

void
wwwauth_fini(struct wwwauth *a)
{
	if (a == NULL)
		return;
	free(a->realm);
	free(a->service);
	free(a->scope);
	free(a->error);
	memset(a, 0, sizeof(*a));
}
