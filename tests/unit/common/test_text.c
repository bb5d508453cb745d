/*
 * test_text.c — escaping outside bytes (common/text.c): what each byte
 * becomes, cuts that never split an escape, and text_escape_inplace()
 * giving what text_escape() into another buffer gives, for every buffer
 * size and for bytes of every value.
 */
#include "autoconf.h"

#include <stdint.h>
#include <string.h>

#include "common/text.h"
#include "tests/lib/tap.h"

#define TEST_TEXT_BUF	512

static size_t
test_text_escape(char *dst, size_t dstlen, const char *src)
{
	return text_escape(dst, dstlen, src, strlen(src));
}

/*
 * The contract of text_escape_inplace(): s (of size len) rewritten as
 * text_escape() would write its first strnlen(s, len - 1) bytes into
 * another buffer of size len.  1 if so for every len up to max.
 */
static int
test_text_inplace_all(const char *src, size_t srclen, size_t max)
{
	char	buf[TEST_TEXT_BUF], want[TEST_TEXT_BUF];
	size_t	len, n;

	for (len = 1; len <= max; len++) {
		n = srclen < len - 1 ? srclen : len - 1;
		memset(buf, 'Z', sizeof(buf));
		memcpy(buf, src, n);
		if (n < len)
			buf[n] = '\0';
		text_escape(want, len, src, n);
		text_escape_inplace(buf, len);
		if (strcmp(buf, want) != 0 || buf[len] != 'Z') {
			diag("len %zu: got \"%s\", want \"%s\"", len, buf,
			    want);
			return 0;
		}
	}
	return 1;
}

/* A little xorshift, so that the random cases are the same every run. */
static uint32_t
test_text_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

int
main(void)
{
	char		 out[64], src[TEST_TEXT_BUF];
	static const char *const cases[] = { "", "a", "plain text",
	    "\\", "a\\b\\\\c", "line\nforged 2026-01-01 info",
	    "\x1b[31mred\x1b[0m", "caf\xc3\xa9", "\x7f\x80\xff",
	    "mixed \\x41 \t and \\" };
	uint32_t	 seed = 2463534242u;
	size_t		 i, j, n;
	int		 all;

	is_int(test_text_escape(out, sizeof(out), "abc"), 3, "abc: 3 bytes");
	is_str(out, "abc", "printable ASCII is kept");
	test_text_escape(out, sizeof(out), "a\nb\r");
	is_str(out, "a\\x0ab\\x0d", "CR and LF become \\xNN");
	test_text_escape(out, sizeof(out), "\\");
	is_str(out, "\\\\", "a backslash is doubled");
	test_text_escape(out, sizeof(out), "\x7f\x80\xc3\xa9");
	is_str(out, "\\x7f\\x80\\xc3\\xa9", "DEL and bytes >= 0x80 escaped");
	is_int(text_escape(out, sizeof(out), "abc\0def", 7), 3,
	    "stops at a NUL");
	is_int(text_escape(out, sizeof(out), "abcdef", 2), 2,
	    "at most srclen bytes");
	is_str(out, "ab", "srclen 2");

	is_int(test_text_escape(out, 8, "abcdefghij"), 7, "cut: 7 bytes");
	is_str(out, "abcd...", "a cut ends with ...");
	test_text_escape(out, 8, "\n\n\n");
	is_str(out, "\\x0a...", "whole escapes, then ...");
	test_text_escape(out, 7, "\n\n\n");
	is_str(out, "...", "an escape is never cut in half");
	test_text_escape(out, 8, "ab\\\\\\");
	is_str(out, "ab\\\\...", "nor a doubled backslash");
	test_text_escape(out, 3, "abcdef");
	is_str(out, "", "no room for ...: nothing");
	is_int(text_escape(out, 0, "abc", 3), 0, "dstlen 0 writes nothing");
	test_text_escape(out, 1, "abc");
	is_str(out, "", "dstlen 1: just the NUL");

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ok(test_text_inplace_all(cases[i], strlen(cases[i]),
		    4 * strlen(cases[i]) + 8), "in place = to a copy, every "
		    "size: case %zu", i);
	all = 1;
	for (i = 0; i < 200 && all; i++) {
		n = test_text_rand(&seed) % 100;
		for (j = 0; j < n; j++)
			src[j] = (char)(1 + test_text_rand(&seed) % 255);
		src[n] = '\0';
		all = test_text_inplace_all(src, n, 4 * n + 8);
	}
	ok(all, "in place = to a copy, every size: 200 random strings");
	memset(src, 'x', 16);
	text_escape_inplace(src, 16);
	is_str(src, "xxxxxxxxxxxxxxx", "no NUL in the buffer: len - 1 bytes");
	memcpy(src, "\\\\\\\\", 5);
	text_escape_inplace(src, 6);
	is_str(src, "\\\\...", "in place, cut between escapes");

	ok(text_printable("GET /v2/") == 1, "printable");
	ok(text_printable("a\tb") == 0, "a tab is not printable");
	text_url_for_log(out, sizeof(out), "https://cdn.example/blob?sig=1");
	is_str(out, "https://cdn.example/blob?...", "query cut for the log");
	is_str(text_retry_after("120"), "120", "Retry-After in seconds");
	ok(text_retry_after("Wed, 21 Oct 2026 07:28:00 GMT") == NULL,
	    "Retry-After as a date: the caller's own");
	is_int(text_copy(out, 4, "abcdef"), 3, "text_copy cuts to dstlen - 1");
	is_str(out, "abc", "text_copy: cut and terminated");
	is_int(text_copy(out, sizeof(out), ""), 0, "text_copy of empty");
	out[0] = 'x';
	is_int(text_copy(out, 0, "abc"), 0, "text_copy: dstlen 0 writes none");
	ok(out[0] == 'x', "text_copy: dstlen 0 leaves dst alone");
	is_int(text_u64(out, 0), 1, "text_u64 of 0");
	is_str(out, "0", "text_u64: 0");
	is_int(text_u64(out, 18446744073709551615ULL), 20, "text_u64 of max");
	is_str(out, "18446744073709551615", "text_u64: UINT64_MAX");
	text_u64(out, 1678);
	is_str(out, "1678", "text_u64: 1678");
	return done_testing();
}
