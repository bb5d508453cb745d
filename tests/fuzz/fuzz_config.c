/*
 * fuzz_config.c — libFuzzer entry point for config_load_string(): any
 * text must load or fail with a "FILE:LINE: message" error, never crash.
 * Inputs can name files (password_file = /etc/...), which the loader will
 * try to read; run the fuzzer as an unprivileged user.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/obj.h"
#include "common/xmalloc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*cf;
	char		*s, err[256];

	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if (config_load_string("fuzz.conf", s, &cf, err, sizeof(err)) == 0) {
		AN(cf != NULL);
		AN(cf->nlisten >= 1 && cf->nupstreams >= 1);
		AN(cf->upstreams->nurls >= 1);
		config_free(cf);
	} else {
		AN(cf == NULL);
		AZ(strncmp(err, "fuzz.conf:", 10));
	}
	free(s);
	return 0;
}
