/*
 * fuzz_digest.c — libFuzzer entry point for digest_parse() and hashing.
 *
 * The input, NUL-terminated, is a digest string from anywhere (a URL, a
 * header, a manifest).  An accepted one is its own canonical string: the
 * algorithm's name, ':', exactly 64 (sha256) or 128 (sha512) lowercase
 * hex digits, hex pointing just past the ':', and it parses again to the
 * same thing; one byte changed to uppercase or cut off is refused.  The
 * input's bytes hashed in one go and in two pieces give the same digest,
 * and that digest parses.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/digest.h"
#include "common/obj.h"
#include "common/xmalloc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_digest_accepted(const char *s, const struct digest *d)
{
	struct digest	 again;
	const char	*name = digest_algo_name(d->algo);
	size_t		 nlen = strlen(name), hexlen, i;
	char		*t;

	AN(d->algo == DIGEST_SHA256 || d->algo == DIGEST_SHA512);
	hexlen = d->algo == DIGEST_SHA256 ? 64 : 128;
	AZ(strcmp(d->str, s));
	AZ(strncmp(d->str, name, nlen));
	AN(d->str[nlen] == ':');
	AN(d->hex == d->str + nlen + 1);
	AN(strlen(d->hex) == hexlen);
	AN(strspn(d->hex, "0123456789abcdef") == hexlen);
	AZ(digest_parse(d->str, &again));
	AN(again.algo == d->algo);
	AZ(strcmp(again.str, d->str));

	/* One spelling per digest: no other case, no shorter string. */
	t = xstrdup(s);
	for (i = 0; t[i] != '\0'; i++)
		if (t[i] >= 'a' && t[i] <= 'z') {
			t[i] = (char)(t[i] - 'a' + 'A');
			AN(digest_parse(t, &again) == -1);
			t[i] = s[i];
		}
	t[strlen(t) - 1] = '\0';
	AN(digest_parse(t, &again) == -1);
	free(t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct digest		 d, whole, parts;
	struct digest_ctx	*ctx;
	char			*s;
	size_t			 cut;
	int			 algo;

	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if (digest_parse(s, &d) == 0)
		fuzz_digest_accepted(s, &d);
	else
		AN(d.str[0] == '\0' && d.hex == NULL);

	cut = size > 0 ? data[0] % (size + 1) : 0;
	for (algo = DIGEST_SHA256; algo <= DIGEST_SHA512; algo++) {
		digest_buf((enum digest_algo)algo, data, size, &whole);
		ctx = digest_ctx_new((enum digest_algo)algo);
		digest_ctx_update(ctx, data, cut);
		digest_ctx_update(ctx, data + cut, size - cut);
		digest_ctx_final(ctx, &parts);
		AZ(strcmp(whole.str, parts.str));
		AZ(digest_parse(whole.str, &d));
		AN(d.algo == (enum digest_algo)algo);
	}
	free(s);
	return 0;
}
