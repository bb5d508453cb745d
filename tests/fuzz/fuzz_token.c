/*
 * fuzz_token.c — libFuzzer entry point for upstream_token_parse(), which
 * reads a token service's JSON reply ({"token": ..., "access_token": ...,
 * "expires_in": ...}).
 *
 * The input is the reply body (not NUL-terminated, as it comes out of the
 * evbuffer).  A token that comes out must be a header value: "Bearer "
 * and at least one more byte, no control byte (below 0x20, 0x7f) that
 * could end or split the header; its lifetime must be positive and under
 * a year whatever expires_in said.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/obj.h"
#include "upstream/upstream_int.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char	*p;
	char			*tok;
	long			 exp = -1;

	tok = upstream_token_parse((const char *)data, size, &exp);
	AN(exp > 0 && exp < 86400L * 365);
	if (tok == NULL)
		return 0;
	AZ(strncmp(tok, "Bearer ", 7));
	AN(strlen(tok) > 7);
	for (p = (const unsigned char *)tok; *p != '\0'; p++)
		AN(*p >= 0x20 && *p != 0x7f);
	free(tok);
	return 0;
}
