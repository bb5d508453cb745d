/*
 * cli_int.h — inside cli/: the client of a mirror's admin API
 * (cli_admin.c), which regmirror prefetch and sync speak through.
 */
#ifndef CLI_CLI_INT_H
#define CLI_CLI_INT_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/ssl.h>

struct config;

/*
 * How to reach and prove oneself to admin APIs: what the options said,
 * and what was made of them.  Zero it, give it the options
 * (cli_admin_option), then cli_admin_ready; cli_admin_fini at the end.
 */
struct cli_admin {
	const char	*ca_token_file;	/* --token-file */
	const char	*ca_cacert;	/* --cacert: verify https against it */
	const char	*ca_cert;	/* --cert, --key: a client cert */
	const char	*ca_key;
	char		*ca_token;	/* the token sent, or NULL */
	SSL_CTX		*ca_ssl;	/* made at the first https request */
};

/* The options, for usage lines. */
#define CLI_ADMIN_USAGE	"[--token-file FILE] [--cacert FILE] " \
	"[--cert FILE --key FILE]"

/*
 * argv[*i] is one of the options above: its value taken (*i moved past
 * it), 1; it is not: 0; its value is missing: -1 (said on stderr, with
 * cmd, "prefetch" or "sync").
 */
int	 cli_admin_option(struct cli_admin *, const char *cmd, int argc,
	    char **argv, size_t *i);
/*
 * After the options: the token read (--token-file, else the environment's
 * REGMIRROR_ADMIN_TOKEN, else, when cfg is not NULL, the first token of
 * its admin_token_file if this user can read it), --cert and --key
 * checked.  0, or 2 (said on stderr).
 */
int	 cli_admin_ready(struct cli_admin *, const char *cmd,
	    const struct config *cfg);
void	 cli_admin_fini(struct cli_admin *);
/*
 * One request to the admin API at mirror (http://HOST[:PORT],
 * https://HOST[:PORT] or unix:/PATH): GET path, or POST body (JSON) when
 * body is not NULL.  The reply parsed as JSON (NULL when none or not
 * JSON) and its status in *status; 0 when there was no reply (the reason
 * said on stderr).
 */
json_t	*cli_admin_call(struct cli_admin *, const char *mirror,
	    const char *path, const char *body, int *status);
/*
 * The admin API of cfg's admin_listen as a --mirror (unix:PATH; https://
 * with admin TLS; a wildcard address as loopback): a string to free, or
 * NULL (said on stderr) when cfg is NULL or has no admin listener.
 */
char	*cli_admin_default(const struct config *cfg, const char *cmd);

/*
 * A reply's bytes so far (buf, len; eof once the server closed): DONE
 * with *status and *body (NUL-terminated, *bodylen bytes; to free), MORE
 * bytes needed, or BAD (not an HTTP/1.x reply, or over the caps:
 * CLI_REPLY_HEAD_MAX of head, CLI_REPLY_BODY_MAX of body).  Content-Length
 * and chunked bodies, or up to the close.
 */
#define CLI_REPLY_HEAD_MAX	(64 * 1024)
#define CLI_REPLY_BODY_MAX	(16 * 1024 * 1024)
enum cli_reply {
	CLI_REPLY_MORE,
	CLI_REPLY_DONE,
	CLI_REPLY_BAD,
};
enum cli_reply	 cli_reply_parse(const char *buf, size_t len, int eof,
		    int *status, char **body, size_t *bodylen);

#endif
