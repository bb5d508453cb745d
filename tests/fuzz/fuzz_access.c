/*
 * fuzz_access.c — libFuzzer entry point for what access/ reads from
 * clients: the first byte picks the parser, the rest (NUL-terminated) is
 * its input.
 *	0	access_basic_parse: an Authorization header
 *	1	access_token_verify: a Bearer token (real key: forging one
 *		needs the HMAC, so this drives the splitting, base64url and
 *		JSON paths up to the signature check, and past it for inputs
 *		built from an issued token)
 *	2	access_glob_match: glob NUL name
 * Invariants: no crash, user names bounded, a password is a C string.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access/access.h"
#include "common/config.h"
#include "common/log.h"
#include "common/obj.h"
#include "common/xmalloc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_access_init(void)
{
	static int		 done;
	static struct config	*cf;
	char			 dir[] = "/tmp/fuzz_access.XXXXXX", *text;
	char			 htp[64], err[256];
	FILE			*f;

	if (done)
		return;
	done = 1;
	log_set_level(LOG_LEVEL_ERROR);
	AN(mkdtemp(dir) != NULL);
	snprintf(htp, sizeof(htp), "%s/htpasswd", dir);
	AN((f = fopen(htp, "w")) != NULL);
	fclose(f);
	xasprintf(&text, "[server]\nlisten = 127.0.0.1:1\n[cache]\ndir = %s\n"
	    "[auth]\nhtpasswd = %s\n[upstream \"r.example\"]\n"
	    "url = https://r.example\n", dir, htp);
	AZ(config_load_string("fuzz.conf", text, &cf, err, sizeof(err)));
	free(text);
	AZ(access_init(cf, err, sizeof(err)));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct access_token	 t;
	char			*s, user[ACCESS_USER_MAX + 1], *pw;
	const char		*name;

	if (size < 1)
		return 0;
	fuzz_access_init();
	s = xmalloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 3) {
	case 0:
		if (access_basic_parse(s, user, sizeof(user), &pw) == 0) {
			AN(strlen(user) < sizeof(user) && user[0] != '\0');
			AN(strchr(user, ':') == NULL);
			free(pw);
		}
		break;
	case 1:
		if (access_token_verify(s, time(NULL), &t) == 0) {
			AN(strlen(t.user) <= ACCESS_USER_MAX);
			access_token_free(&t);
		}
		break;
	default:
		name = s + strlen(s);
		if (name < s + size - 1)
			name++;
		(void)access_glob_match(s, name);
		break;
	}
	free(s);
	return 0;
}
