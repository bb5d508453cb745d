/*
 * test_admin.c — cli/cli_admin.c (included whole): the reply parser
 * (Content-Length, chunked, up to the close, and what it refuses), the
 * --mirror forms, the URL derived from a config's admin_listen, and the
 * options.
 */
#include "cli/cli_admin.c"

#include "tests/lib/tap.h"

/* Parse the whole of s: the outcome, *status and the body (or NULL). */
static enum cli_reply
reply(const char *s, int eof, int *status, char **body)
{
	size_t	len;

	*status = 0;
	return cli_reply_parse(s, strlen(s), eof, status, body, &len);
}

static void
test_reply(void)
{
	char	*b, *big;
	int	 st;

	ok(reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0, &st,
	    &b) == CLI_REPLY_DONE && st == 200, "Content-Length, complete");
	is_str(b, "hello", "  the body");
	free(b);
	ok(reply("HTTP/1.1 202 Accepted\r\ncontent-length:  2 \r\n\r\n{}junk",
	    0, &st, &b) == CLI_REPLY_DONE && st == 202 && strcmp(b, "{}") == 0,
	    "any case, blanks; bytes after the body ignored");
	free(b);
	ok(reply("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello", 0, &st,
	    &b) == CLI_REPLY_MORE && b == NULL, "a short body: more");
	ok(reply("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello", 1, &st,
	    &b) == CLI_REPLY_BAD, "  and at the close: bad");
	ok(reply("HTTP/1.1 200 OK\r\nContent-Le", 0, &st, &b) ==
	    CLI_REPLY_MORE, "a head in progress: more");
	ok(reply("HTTP/1.1 200 OK\r\nContent-Le", 1, &st, &b) ==
	    CLI_REPLY_BAD, "  and at the close: bad");
	ok(reply("HTTP/1.0 401 Unauthorized\r\nX: y\r\n\r\n{\"e\":1}", 0,
	    &st, &b) == CLI_REPLY_MORE, "no length: up to the close");
	ok(reply("HTTP/1.0 401 Unauthorized\r\nX: y\r\n\r\n{\"e\":1}", 1,
	    &st, &b) == CLI_REPLY_DONE && st == 401 &&
	    strcmp(b, "{\"e\":1}") == 0, "  which ends it");
	free(b);
	ok(reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n", 1, &st, &b) ==
	    CLI_REPLY_DONE && strcmp(b, "abcde") == 0, "chunked, trailers");
	free(b);
	ok(reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "3\r\nabc\r\n", 1, &st, &b) == CLI_REPLY_BAD,
	    "chunked without its last chunk");
	ok(reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "4\r\nabc\r\n0\r\n\r\n", 1, &st, &b) == CLI_REPLY_BAD,
	    "a chunk shorter than its size");
	ok(reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "fffffffff\r\n", 1, &st, &b) == CLI_REPLY_BAD, "a huge chunk");
	ok(reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 1,
	    &st, &b) == CLI_REPLY_BAD, "another transfer coding");
	ok(reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
	    "Content-Length: 1\r\n\r\n", 1, &st, &b) == CLI_REPLY_BAD,
	    "both a length and chunked");
	ok(reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2"
	    "\r\n\r\nab", 1, &st, &b) == CLI_REPLY_BAD, "two lengths");
	ok(reply("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 1, &st,
	    &b) == CLI_REPLY_BAD, "a negative length");
	ok(reply("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
	    1, &st, &b) == CLI_REPLY_BAD, "a length over the cap");
	ok(reply("HTTP/1.1 204 No Content\r\n\r\n", 0, &st, &b) ==
	    CLI_REPLY_DONE && st == 204 && *b == '\0', "204: no body");
	free(b);
	ok(reply("HTTP/1.1 100 Continue\r\n\r\n", 1, &st, &b) ==
	    CLI_REPLY_BAD, "1xx (never asked for)");
	ok(reply("HTTP/2 200\r\n\r\n", 1, &st, &b) == CLI_REPLY_BAD,
	    "not HTTP/1.x");
	ok(reply("HTTP/1.1 2x0 OK\r\n\r\n", 1, &st, &b) == CLI_REPLY_BAD,
	    "a status that is not a number");
	ok(reply("HTTP/1.1 200 OK\r\nbad\nline\r\n\r\n", 1, &st, &b) ==
	    CLI_REPLY_BAD, "a bare LF in the head");
	big = malloc(CLI_REPLY_HEAD_MAX + 64);
	memset(big, 'a', CLI_REPLY_HEAD_MAX + 63);
	big[CLI_REPLY_HEAD_MAX + 63] = '\0';
	ok(reply(big, 0, &st, &b) == CLI_REPLY_BAD, "a head over the cap");
	free(big);
}

static void
test_target(void)
{
	struct cli_target	t;

	ok(cli_target_parse("unix:/run/regmirror/admin.sock", &t) == 0 &&
	    t.ct_unix && !t.ct_tls && strcmp(t.ct_host,
	    "/run/regmirror/admin.sock") == 0, "unix:/PATH");
	free(t.ct_host);
	ok(cli_target_parse("http://127.0.0.1:5001", &t) == 0 && !t.ct_unix &&
	    !t.ct_tls && t.ct_port == 5001 && strcmp(t.ct_host, "127.0.0.1") ==
	    0, "http://HOST:PORT");
	free(t.ct_host);
	ok(cli_target_parse("https://[::1]:5443/", &t) == 0 && t.ct_tls &&
	    t.ct_port == 5443 && strcmp(t.ct_host, "::1") == 0,
	    "https://[v6]:PORT, no brackets kept");
	free(t.ct_host);
	ok(cli_target_parse("https://admin.example", &t) == 0 &&
	    t.ct_port == 443, "https: port 443");
	free(t.ct_host);
	ok(cli_target_parse("http://admin.example", &t) == 0 &&
	    t.ct_port == 80, "http: port 80");
	free(t.ct_host);
	ok(cli_target_parse("unix:relative", &t) == -1, "unix: relative");
	ok(cli_target_parse("ftp://h:1", &t) == -1, "another scheme");
	ok(cli_target_parse("127.0.0.1:5001", &t) == -1, "no scheme");
}

/* The URL cli_admin_default derives from a config's [server] lines. */
static char *
derived(const char *server)
{
	struct config	*cf;
	char		 text[1024], err[512], *url;

	snprintf(text, sizeof(text), "[server]\n%s\n[upstream \"docker.io\"]\n"
	    "url = https://registry-1.docker.io\n", server);
	if (config_load_string("t.conf", text, &cf, err, sizeof(err)) != 0)
		bail_out(err);
	url = cli_admin_default(cf, "test");
	config_free(cf);
	return url;
}

static void
test_default(const char *tokfile)
{
	struct cli_admin	 ca;
	char			 line[512];
	char			*u, *argv[] = { "--token-file", "f", "--cacert",
				    "c", "--key", "k", "--wait", "--cert" };
	size_t			 i;

	is_str(u = derived("admin_listen = 127.0.0.1:5001"),
	    "http://127.0.0.1:5001", "host:port");
	free(u);
	snprintf(line, sizeof(line), "admin_token_file = %s\nadmin_tls_cert "
	    "= /c\nadmin_tls_key = /k\nadmin_listen = :5001", tokfile);
	is_str(u = derived(line), "https://127.0.0.1:5001",
	    ":port with admin TLS: https on loopback");
	free(u);
	memcpy(strstr(line, ":5001"), "0.0.0.0:5001", 13);
	is_str(u = derived(line), "https://127.0.0.1:5001", "0.0.0.0:port");
	free(u);
	memcpy(strstr(line, "0.0.0.0:5001"), "[::]:5001", 10);
	is_str(u = derived(line), "https://[::1]:5001", "[::]:port");
	free(u);
	is_str(u = derived("admin_listen = [::1]:5001"),
	    "http://[::1]:5001", "[::1]:port");
	free(u);
	is_str(u = derived("admin_listen = unix:/run/r/admin.sock"),
	    "unix:/run/r/admin.sock", "unix:PATH");
	free(u);
	ok(cli_admin_default(NULL, "test") == NULL, "no config");

	memset(&ca, 0, sizeof(ca));
	for (i = 0; i < 6; i++)
		if (cli_admin_option(&ca, "test", 8, argv, &i) != 1)
			break;
	ok(i == 6 && strcmp(ca.ca_token_file, "f") == 0 &&
	    strcmp(ca.ca_cacert, "c") == 0 && strcmp(ca.ca_key, "k") == 0,
	    "the options and their values");
	i = 6;
	ok(cli_admin_option(&ca, "test", 8, argv, &i) == 0 && i == 6,
	    "not one of them");
	i = 7;
	ok(cli_admin_option(&ca, "test", 8, argv, &i) == -1,
	    "a missing value");
	ok(cli_admin_ready(&ca, "test", NULL) == 2, "--key without --cert");
	cli_admin_fini(&ca);
}

int
main(void)
{
	char	path[] = "/tmp/test_admin.XXXXXX";
	int	fd, rc;

	if ((fd = mkstemp(path)) == -1 || write(fd, "t\n", 2) != 2)
		bail_out("mkstemp");
	close(fd);
	test_reply();
	test_target();
	test_default(path);
	rc = done_testing();
	unlink(path);
	return rc;
}
