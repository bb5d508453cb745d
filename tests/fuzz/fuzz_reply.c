/*
 * fuzz_reply.c — libFuzzer entry point for cli_reply_parse (cli/
 * cli_admin.c, included whole: cli/ is no library), which reads the
 * admin API's reply for "regmirror prefetch" and "regmirror sync".
 *
 * The input is the bytes read so far, parsed as if more could come and
 * as if the server had closed.  A reply taken has a status of 200..599
 * and a NUL-terminated body of at most CLI_REPLY_BODY_MAX bytes, no
 * longer than the input; one taken before the
 * close is taken the same at the close; one refused before the close is
 * refused at it too; and nothing is handed out with MORE or BAD.
 */
#include "cli/cli_admin.c"

#include <stdint.h>

#include "common/obj.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*buf = (const char *)data;
	enum cli_reply	 r0, r1;
	char		*b0, *b1;
	size_t		 l0, l1;
	int		 s0 = 0, s1 = 0;

	r0 = cli_reply_parse(buf, size, 0, &s0, &b0, &l0);
	r1 = cli_reply_parse(buf, size, 1, &s1, &b1, &l1);
	AN(r1 != CLI_REPLY_MORE);
	if (r0 != CLI_REPLY_DONE)
		AZ(b0);
	if (r1 != CLI_REPLY_DONE)
		AZ(b1);
	if (r0 == CLI_REPLY_BAD)
		AN(r1 == CLI_REPLY_BAD);
	if (r1 == CLI_REPLY_DONE) {
		AN(s1 >= 200 && s1 <= 599);
		AN(l1 <= CLI_REPLY_BODY_MAX && b1[l1] == '\0');
		AN(l1 <= size);
	}
	if (r0 == CLI_REPLY_DONE) {
		AN(r1 == CLI_REPLY_DONE && s0 == s1 && l0 == l1);
		AZ(memcmp(b0, b1, l0));
	}
	free(b0);
	free(b1);
	return 0;
}
