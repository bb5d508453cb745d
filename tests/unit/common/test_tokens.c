/*
 * test_tokens.c — common/tokens.c: token files parsed (trimming, empty
 * lines, CRLF) and refused at each limit with their line; matching every
 * token and nothing near one; the Authorization header's token; the
 * first token for a client; files that cannot be read.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/tokens.h"
#include "tests/lib/tap.h"

static int
match(const struct tokens *t, const char *tok)
{
	return tokens_match(t, tok, strlen(tok));
}

/* Parse text: the count, or -1 with the error in err. */
static long
parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct tokens	*t;
	long		 n;

	if (tokens_parse(text, len, "f", &t, err, errlen) != 0)
		return -1;
	n = (long)tokens_count(t);
	tokens_free(t);
	return n;
}

static void
test_parse(void)
{
	struct tokens	*t;
	char		 err[256], *big;
	size_t		 i, n;

	ok(tokens_parse("one\n\n  two \r\n\tthree\t\n\n", 22, "f", &t, err,
	    sizeof(err)) == 0, "three tokens with blanks and empty lines");
	is_int((long long)tokens_count(t), 3, "counted");
	ok(match(t, "one") && match(t, "two") && match(t, "three"),
	    "each token matches, trimmed");
	ok(!match(t, "tw") && !match(t, "twoo") && !match(t, "TWO") &&
	    !match(t, " two") && !match(t, "") && !match(t, "one\n"),
	    "a prefix, a longer one, another case, blanks: no match");
	ok(!tokens_match(NULL, "one", 3), "no set: no match");
	tokens_free(t);
	ok(tokens_parse("last-no-newline", 15, "f", &t, err, sizeof(err)) ==
	    0 && match(t, "last-no-newline"), "a last line without newline");
	tokens_free(t);
	ok(tokens_parse("a\0b", 3, "f", &t, err, sizeof(err)) == -1,
	    "a NUL byte is refused");
	is_str(err, "f:1: a token may only hold printable ASCII, with no "
	    "blank inside", "  with its line");
	is_int(parse("", 0, err, sizeof(err)), -1, "an empty file");
	is_str(err, "f: no token (one a line)", "  says so");
	is_int(parse("\n \r\n\t\n", 6, err, sizeof(err)), -1,
	    "blank lines only");
	is_int(parse("ok\ntwo words\n", 13, err, sizeof(err)), -1,
	    "a blank inside a token");
	is_str(err, "f:2: a token may only hold printable ASCII, with no "
	    "blank inside", "  at its line, without the token");
	is_int(parse("ok\n\xc3\xa9t\xc3\xa9\n", 9, err, sizeof(err)), -1,
	    "8-bit bytes");

	big = malloc(TOKENS_MAX * 4 + TOKEN_MAX + 8);
	memset(big, 'x', TOKEN_MAX);
	big[TOKEN_MAX] = '\n';
	is_int(parse(big, TOKEN_MAX + 1, err, sizeof(err)), 1,
	    "a token of TOKEN_MAX bytes");
	big[TOKEN_MAX] = 'x';
	is_int(parse(big, TOKEN_MAX + 1, err, sizeof(err)), -1,
	    "one byte more");
	is_str(err, "f:1: a token longer than 4096 bytes", "  says so");
	for (i = 0, n = 0; i < TOKENS_MAX; i++)
		n += (size_t)sprintf(big + n, "%03zu\n", i);
	is_int(parse(big, n, err, sizeof(err)), TOKENS_MAX,
	    "TOKENS_MAX tokens");
	n += (size_t)sprintf(big + n, "one-more\n");
	is_int(parse(big, n, err, sizeof(err)), -1, "one token more");
	is_str(err, "f:1001: more than 1000 tokens", "  says so");
	free(big);
}

static void
test_bearer(void)
{
	const char	*p;
	size_t		 len = 0;

	p = tokens_bearer("Bearer abc", &len);
	ok(p != NULL && len == 3 && memcmp(p, "abc", 3) == 0, "Bearer abc");
	p = tokens_bearer("bEARER \t abc.def-_~+/= \t", &len);
	ok(p != NULL && len == 13 && memcmp(p, "abc.def-_~+/=", 13) == 0,
	    "any case, blanks around");
	ok(tokens_bearer("Basic YWJj", &len) == NULL, "Basic");
	ok(tokens_bearer("Bearer", &len) == NULL, "no token");
	ok(tokens_bearer("Bearer   ", &len) == NULL, "only blanks");
	ok(tokens_bearer("Bearerabc", &len) == NULL, "no blank after it");
	ok(tokens_bearer("Bearer a b", &len) == NULL, "two words");
	ok(tokens_bearer("Bearer a\x01", &len) == NULL, "a control byte");
	ok(tokens_bearer(NULL, &len) == NULL, "no header");
}

static char *
file_with(const char *text)
{
	static char	path[64];
	FILE		*f = NULL;
	int		 fd;

	snprintf(path, sizeof(path), "/tmp/test_tokens.XXXXXX");
	if ((fd = mkstemp(path)) == -1 || (f = fdopen(fd, "w")) == NULL)
		bail_out("mkstemp");
	fputs(text, f);
	fclose(f);
	return path;
}

static void
test_files(void)
{
	struct tokens	*t;
	char		 err[512], want[512], *path, *tok;

	path = file_with("\n  first-token \nsecond\n");
	ok(tokens_load(path, &t, err, sizeof(err)) == 0 &&
	    tokens_count(t) == 2 && match(t, "second"), "tokens_load");
	tokens_free(t);
	tok = tokens_first_file(path, err, sizeof(err));
	is_str(tok, "first-token", "the first non-empty line, trimmed");
	free(tok);
	unlink(path);
	ok(tokens_load(path, &t, err, sizeof(err)) == -1 && t == NULL,
	    "a missing file");
	snprintf(want, sizeof(want), "%s: cannot read: No such file or "
	    "directory", path);
	is_str(err, want, "  says why");
	ok(tokens_load("/tmp", &t, err, sizeof(err)) == -1, "a directory");
	is_str(err, "/tmp: cannot read: not a file", "  says so");
	ok(tokens_load("/dev/null", &t, err, sizeof(err)) == -1,
	    "a device: not for the daemon");
	ok(tokens_first_file("/dev/null", err, sizeof(err)) == NULL,
	    "nothing in it for a client");
	is_str(err, "/dev/null: no token", "  says so");

	tok = tokens_first(" \n\tenv-token\r\n", 14, "ENV", err, sizeof(err));
	is_str(tok, "env-token", "tokens_first of text");
	free(tok);
	ok(tokens_first("a b", 3, "ENV", err, sizeof(err)) == NULL,
	    "tokens_first: a blank inside");
	is_str(err, "ENV: a token is at most 4096 bytes of printable ASCII "
	    "with no blank inside", "  says so, naming the source");
}

int
main(void)
{
	test_parse();
	test_bearer();
	test_files();
	return done_testing();
}
