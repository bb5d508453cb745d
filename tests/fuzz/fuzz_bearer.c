/*
 * fuzz_bearer.c — libFuzzer entry point for common/tokens.c: the input is
 * an Authorization header value (tokens_bearer, which reads what a client
 * sent the admin API) and a token file's text (tokens_parse,
 * tokens_first).
 *
 * A token tokens_bearer hands out lies inside the header, after a
 * "Bearer" scheme in any case and a blank, is 1..TOKEN_MAX bytes of
 * 0x21..0x7e, and ends the header but for blanks.  A file tokens_parse
 * takes holds 1..TOKENS_MAX tokens, among them the one tokens_first
 * finds, which matches, and which tokens_bearer hands back whole from
 * "Bearer TOKEN"; a file it refuses leaves nothing allocated and an error
 * that names the file.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/obj.h"
#include "common/tokens.h"
#include "common/xmalloc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_bearer_header(const char *h)
{
	const char	*tok, *p;
	size_t		 len = 0, i;

	if ((tok = tokens_bearer(h, &len)) == NULL)
		return;
	AZ(strncasecmp(h, "Bearer", 6));
	AN(tok >= h + 7 && tok + len <= h + strlen(h));
	AN(len >= 1 && len <= TOKEN_MAX);
	for (i = 0; i < len; i++)
		AN((unsigned char)tok[i] > 0x20 &&
		    (unsigned char)tok[i] < 0x7f);
	for (p = tok + len; *p != '\0'; p++)
		AN(*p == ' ' || *p == '\t' || *p == '\r');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tokens	*t = (struct tokens *)1;
	const char	*back;
	char		*s, *first, *h, err[512];
	size_t		 n, len = 0;

	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	fuzz_bearer_header(s);

	err[0] = '\0';
	first = tokens_first((const char *)data, size, "fuzz", err,
	    sizeof(err));
	if (tokens_parse((const char *)data, size, "fuzz", &t, err,
	    sizeof(err)) != 0) {
		AZ(t);
		AZ(strncmp(err, "fuzz", 4));
	} else {
		n = tokens_count(t);
		AN(n >= 1 && n <= TOKENS_MAX);
		AN(first);
		AN(tokens_match(t, first, strlen(first)));
		xasprintf(&h, "Bearer %s", first);
		back = tokens_bearer(h, &len);
		AN(back && len == strlen(first) && !memcmp(back, first, len));
		free(h);
		tokens_free(t);
	}
	free(first);
	free(s);
	return 0;
}
