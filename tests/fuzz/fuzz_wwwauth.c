/*
 * fuzz_wwwauth.c — libFuzzer entry point for wwwauth_parse(): the input,
 * NUL-terminated, is a WWW-Authenticate header from a hostile upstream.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/obj.h"
#include "common/wwwauth.h"
#include "common/xmalloc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wwwauth	 a;
	char		*s;

	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if (wwwauth_parse(s, &a) == 0) {
		AN(a.scheme == WWWAUTH_UNKNOWN || a.scheme == WWWAUTH_BASIC ||
		    a.scheme == WWWAUTH_BEARER);
		/* Values are C strings no longer than the header. */
		if (a.realm != NULL)
			AN(strlen(a.realm) <= size);
		if (a.service != NULL)
			AN(strlen(a.service) <= size);
		if (a.scope != NULL)
			AN(strlen(a.scope) <= size);
		if (a.error != NULL)
			AN(strlen(a.error) <= size);
	} else
		AN(a.realm == NULL && a.service == NULL && a.scope == NULL &&
		    a.error == NULL && a.scheme == WWWAUTH_UNKNOWN);
	wwwauth_fini(&a);
	free(s);
	return 0;
}
