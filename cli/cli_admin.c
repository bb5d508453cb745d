/*
 * cli_admin.c — the client of a mirror's admin API (cli_int.h), for
 * "regmirror prefetch" and "regmirror sync".
 *
 * One request a connection ("Connection: close"), blocking, with a
 * deadline on every step: a command line waits for its answer anyway,
 * and a loop would buy nothing.  Three transports: http://HOST[:PORT],
 * https://HOST[:PORT] (TLS 1.2 or later, the certificate verified against
 * --cacert or the system's CAs and its name against HOST, an optional
 * client certificate) and unix:/PATH (HTTP over a unix socket).  A token
 * goes as "Authorization: Bearer TOKEN", never over plain HTTP to a peer
 * that is not on loopback, and never into a message.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/http.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cli/cli_int.h"
#include "common/config.h"
#include "common/tokens.h"
#include "common/xmalloc.h"

/* Seconds for connecting, and for each read or write after. */
#define CLI_CONNECT_SECONDS	10
#define CLI_IO_SECONDS		30

/* One admin API, as a --mirror names it. */
struct cli_target {
	int	 ct_unix;		/* unix:/PATH */
	int	 ct_tls;		/* https:// */
	char	*ct_host;		/* no brackets; the path for unix: */
	int	 ct_port;
};

int
cli_admin_option(struct cli_admin *ca, const char *cmd, int argc,
    char **argv, size_t *i)
{
	static const char *const names[] = { "--token-file", "--cacert",
	    "--cert", "--key" };
	const char	**slot[4];
	size_t		  k;

	slot[0] = &ca->ca_token_file;
	slot[1] = &ca->ca_cacert;
	slot[2] = &ca->ca_cert;
	slot[3] = &ca->ca_key;
	for (k = 0; k < 4; k++) {
		if (strcmp(argv[*i], names[k]) != 0)
			continue;
		if (*i + 1 >= (size_t)argc) {
			fprintf(stderr, "regmirror %s: %s needs a FILE\n",
			    cmd, names[k]);
			return -1;
		}
		*slot[k] = argv[++*i];
		return 1;
	}
	return 0;
}

int
cli_admin_ready(struct cli_admin *ca, const char *cmd,
    const struct config *cfg)
{
	const char	*env = getenv("REGMIRROR_ADMIN_TOKEN");
	char		 err[512];

	if ((ca->ca_cert == NULL) != (ca->ca_key == NULL)) {
		fprintf(stderr, "regmirror %s: --cert and --key go together\n",
		    cmd);
		return 2;
	}
	if (ca->ca_token_file != NULL) {
		ca->ca_token = tokens_first_file(ca->ca_token_file, err,
		    sizeof(err));
		if (ca->ca_token == NULL) {
			fprintf(stderr, "regmirror %s: --token-file %s\n", cmd,
			    err);
			return 2;
		}
	} else if (env != NULL && *env != '\0') {
		ca->ca_token = tokens_first(env, strlen(env),
		    "REGMIRROR_ADMIN_TOKEN", err, sizeof(err));
		if (ca->ca_token == NULL) {
			fprintf(stderr, "regmirror %s: %s\n", cmd, err);
			return 2;
		}
	} else if (cfg != NULL && cfg->admin_token_file != NULL &&
	    access(cfg->admin_token_file, R_OK) == 0)
		ca->ca_token = tokens_first_file(cfg->admin_token_file, err,
		    sizeof(err));
	return 0;
}

void
cli_admin_fini(struct cli_admin *ca)
{
	if (ca->ca_token != NULL) {
		OPENSSL_cleanse(ca->ca_token, strlen(ca->ca_token));
		free(ca->ca_token);
		ca->ca_token = NULL;
	}
	SSL_CTX_free(ca->ca_ssl);
	ca->ca_ssl = NULL;
}

char *
cli_admin_default(const struct config *cfg, const char *cmd)
{
	const char	*l, *port;
	char		*url;

	if (cfg == NULL || cfg->admin_listen == NULL) {
		fprintf(stderr, "regmirror %s: give --mirror "
		    "http://HOST:ADMINPORT (or https://, or unix:/PATH), or a "
		    "config with admin_listen\n", cmd);
		return NULL;
	}
	l = cfg->admin_listen;
	if (strncmp(l, "unix:", 5) == 0)
		return xstrdup(l);
	/* A wildcard address is reached on loopback. */
	port = strrchr(l, ':');
	if (l[0] == ':' || strncmp(l, "0.0.0.0:", 8) == 0)
		xasprintf(&url, "%s://127.0.0.1%s", cfg->admin_tls_cert !=
		    NULL ? "https" : "http", port);
	else if (strncmp(l, "[::]:", 5) == 0)
		xasprintf(&url, "%s://[::1]%s", cfg->admin_tls_cert != NULL ?
		    "https" : "http", port);
	else
		xasprintf(&url, "%s://%s", cfg->admin_tls_cert != NULL ?
		    "https" : "http", l);
	return url;
}

/* mirror to *t: 0, or -1 (said). */
static int
cli_target_parse(const char *mirror, struct cli_target *t)
{
	struct evhttp_uri	*uri;
	const char		*scheme, *host;
	size_t			 len;

	memset(t, 0, sizeof(*t));
	if (strncmp(mirror, "unix:", 5) == 0) {
		if (mirror[5] != '/' || strlen(mirror + 5) >=
		    sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
			fprintf(stderr, "regmirror: bad mirror %s (want "
			    "unix:/ABSOLUTE/PATH)\n", mirror);
			return -1;
		}
		t->ct_unix = 1;
		t->ct_host = xstrdup(mirror + 5);
		return 0;
	}
	if ((uri = evhttp_uri_parse(mirror)) == NULL ||
	    (scheme = evhttp_uri_get_scheme(uri)) == NULL ||
	    (strcasecmp(scheme, "http") != 0 &&
	    strcasecmp(scheme, "https") != 0) ||
	    (host = evhttp_uri_get_host(uri)) == NULL || *host == '\0') {
		fprintf(stderr, "regmirror: bad mirror URL %s (want "
		    "http://HOST:PORT, https://HOST:PORT or unix:/PATH)\n",
		    mirror);
		if (uri != NULL)	/* evhttp_uri_free(NULL) crashes */
			evhttp_uri_free(uri);
		return -1;
	}
	t->ct_tls = strcasecmp(scheme, "https") == 0;
	len = strlen(host);
	if (host[0] == '[' && len > 2 && host[len - 1] == ']')
		t->ct_host = xstrndup(host + 1, len - 2);
	else
		t->ct_host = xstrdup(host);
	t->ct_port = evhttp_uri_get_port(uri) > 0 ? evhttp_uri_get_port(uri) :
	    t->ct_tls ? 443 : 80;
	evhttp_uri_free(uri);
	return 0;
}

static void
cli_fd_timeouts(int fd)
{
	struct timeval	tv = { CLI_IO_SECONDS, 0 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* connect(2) within CLI_CONNECT_SECONDS: 0, or -1 with errno. */
static int
cli_connect_timed(int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct pollfd	pfd;
	socklen_t	elen = sizeof(int);
	int		fl, e = 0, rc;

	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	rc = connect(fd, sa, salen);
	if (rc != 0 && errno == EINPROGRESS) {
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if ((rc = poll(&pfd, 1, CLI_CONNECT_SECONDS * 1000)) == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e,
		    &elen) != 0)
			return -1;
		if (e != 0) {
			errno = e;
			return -1;
		}
		rc = 0;
	}
	fcntl(fd, F_SETFL, fl);
	return rc;
}

/* A connected socket to t, or -1 (said). *loopback: the peer is this
 * host (a unix socket, or a loopback address). */
static int
cli_connect(const char *mirror, const struct cli_target *t, int *loopback)
{
	struct sockaddr_un	 sun;
	struct addrinfo		 hints, *res = NULL, *ai;
	char			 port[16];
	int			 fd = -1, rc, e = 0;

	*loopback = 0;
	if (t->ct_unix) {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, t->ct_host, strlen(t->ct_host));
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
		    0)) == -1 || cli_connect_timed(fd,
		    (struct sockaddr *)&sun, sizeof(sun)) != 0) {
			fprintf(stderr, "regmirror: %s: connect: %s\n", mirror,
			    strerror(errno));
			if (fd != -1)
				close(fd);
			return -1;
		}
		*loopback = 1;
		cli_fd_timeouts(fd);
		return fd;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", t->ct_port);
	if ((rc = getaddrinfo(t->ct_host, port, &hints, &res)) != 0) {
		fprintf(stderr, "regmirror: %s: %s\n", mirror,
		    gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol)) == -1)
			continue;
		if (cli_connect_timed(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	if (ai != NULL)
		*loopback = (ai->ai_family == AF_INET &&
		    (ntohl(((struct sockaddr_in *)(void *)ai->ai_addr)->
		    sin_addr.s_addr) >> 24) == 127) ||
		    (ai->ai_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(
		    &((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr));
	freeaddrinfo(res);
	if (fd == -1) {
		fprintf(stderr, "regmirror: %s: connect: %s\n", mirror,
		    strerror(e != 0 ? e : ECONNREFUSED));
		return -1;
	}
	cli_fd_timeouts(fd);
	return fd;
}

/* OpenSSL's queued errors, on stderr. */
static void
cli_ssl_errors(const char *mirror)
{
	unsigned long	e;
	char		buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		fprintf(stderr, "regmirror: %s: %s\n", mirror, buf);
	}
}

/* The client TLS context of the options: 0, or -1 (said). */
static int
cli_ssl_ctx(struct cli_admin *ca, const char *mirror)
{
	SSL_CTX	*ctx;

	if (ca->ca_ssl != NULL)
		return 0;
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* A close without close_notify is an end: the reply's length
	 * tells a complete body from a cut one. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if ((ca->ca_cacert != NULL ? SSL_CTX_load_verify_locations(ctx,
	    ca->ca_cacert, NULL) : SSL_CTX_set_default_verify_paths(ctx)) !=
	    1) {
		fprintf(stderr, "regmirror: cannot load the CA %s\n",
		    ca->ca_cacert != NULL ? ca->ca_cacert : "(system)");
		goto fail;
	}
	if (ca->ca_cert != NULL && (SSL_CTX_use_certificate_chain_file(ctx,
	    ca->ca_cert) != 1 || SSL_CTX_use_PrivateKey_file(ctx, ca->ca_key,
	    SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1)) {
		fprintf(stderr, "regmirror: cannot load the client "
		    "certificate %s and key %s\n", ca->ca_cert, ca->ca_key);
		goto fail;
	}
	ca->ca_ssl = ctx;
	return 0;
fail:
	cli_ssl_errors(mirror);
	SSL_CTX_free(ctx);
	return -1;
}

/* TLS on fd to t (the name checked against t's host): the SSL, or NULL
 * (said). */
static SSL *
cli_ssl_open(struct cli_admin *ca, const char *mirror,
    const struct cli_target *t, int fd)
{
	unsigned char	 ip[16];
	SSL		*ssl;
	long		 v;
	int		 is_ip;

	if (cli_ssl_ctx(ca, mirror) != 0 || (ssl = SSL_new(ca->ca_ssl)) ==
	    NULL) {
		cli_ssl_errors(mirror);
		return NULL;
	}
	is_ip = inet_pton(AF_INET, t->ct_host, ip) == 1 ||
	    inet_pton(AF_INET6, t->ct_host, ip) == 1;
	X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl),
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
	    t->ct_host) : SSL_set1_host(ssl, t->ct_host)) != 1 ||
	    (!is_ip && SSL_set_tlsext_host_name(ssl, t->ct_host) != 1) ||
	    SSL_set_fd(ssl, fd) != 1)
		goto fail;
	if (SSL_connect(ssl) != 1) {
		if ((v = SSL_get_verify_result(ssl)) != X509_V_OK)
			fprintf(stderr, "regmirror: %s: the certificate: %s\n",
			    mirror, X509_verify_cert_error_string(v));
		else
			fprintf(stderr, "regmirror: %s: TLS handshake "
			    "failed\n", mirror);
		goto fail;
	}
	return ssl;
fail:
	cli_ssl_errors(mirror);
	SSL_free(ssl);
	return NULL;
}

static int
cli_write_all(int fd, SSL *ssl, const char *p, size_t n)
{
	ssize_t	w;
	int	k;

	while (n > 0) {
		if (ssl != NULL) {
			k = SSL_write(ssl, p, n > 65536 ? 65536 : (int)n);
			w = k > 0 ? k : -1;
		} else if ((w = write(fd, p, n)) == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Up to n bytes into p: their count, 0 at the end, -1 on an error. */
static ssize_t
cli_read_some(int fd, SSL *ssl, char *p, size_t n)
{
	ssize_t	r;
	int	k;

	if (ssl != NULL) {
		if ((k = SSL_read(ssl, p, n > 65536 ? 65536 : (int)n)) > 0)
			return k;
		return SSL_get_error(ssl, k) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
	}
	do
		r = read(fd, p, n);
	while (r == -1 && errno == EINTR);
	return r;
}

/* The request's bytes. */
static char *
cli_request(const struct cli_admin *ca, const struct cli_target *t,
    const char *path, const char *body)
{
	char	*req, *host, *clen = NULL;

	if (body != NULL)
		xasprintf(&clen, "Content-Type: application/json\r\n"
		    "Content-Length: %zu\r\n", strlen(body));
	if (t->ct_unix)
		host = xstrdup("localhost");
	else if (strchr(t->ct_host, ':') != NULL)
		xasprintf(&host, "[%s]:%d", t->ct_host, t->ct_port);
	else
		xasprintf(&host, "%s:%d", t->ct_host, t->ct_port);
	xasprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
	    "Accept: application/json\r\nUser-Agent: regmirror/%s\r\n"
	    "%s%s%s%s\r\n%s", body != NULL ? "POST" : "GET", path, host,
	    PACKAGE_VERSION, ca->ca_token != NULL ? "Authorization: Bearer " :
	    "", ca->ca_token != NULL ? ca->ca_token : "", ca->ca_token !=
	    NULL ? "\r\n" : "", clen != NULL ? clen : "", body != NULL ?
	    body : "");
	free(clen);
	free(host);
	return req;
}

/* Send req, read the reply: 0 and *status, *body; -1 (said). */
static int
cli_exchange(const char *mirror, int fd, SSL *ssl, const char *req,
    int *status, char **body)
{
	enum cli_reply	 rc = CLI_REPLY_MORE;
	char		*buf;
	size_t		 len = 0, cap = 65536, blen;
	ssize_t		 r;

	if (cli_write_all(fd, ssl, req, strlen(req)) != 0) {
		fprintf(stderr, "regmirror: %s: sending the request: %s\n",
		    mirror, ssl != NULL ? "TLS write failed" :
		    strerror(errno));
		return -1;
	}
	buf = xmalloc(cap);
	while (rc == CLI_REPLY_MORE) {
		if (len == cap) {
			if (cap >= CLI_REPLY_HEAD_MAX + CLI_REPLY_BODY_MAX) {
				rc = CLI_REPLY_BAD;
				break;
			}
			cap *= 2;
			buf = xreallocarray(buf, cap, 1);
		}
		if ((r = cli_read_some(fd, ssl, buf + len, cap - len)) < 0) {
			fprintf(stderr, "regmirror: %s: reading the reply: "
			    "%s\n", mirror, ssl != NULL ? "TLS read failed" :
			    strerror(errno));
			cli_ssl_errors(mirror);
			free(buf);
			return -1;
		}
		len += (size_t)r;
		rc = cli_reply_parse(buf, len, r == 0, status, body, &blen);
	}
	free(buf);
	if (rc != CLI_REPLY_DONE) {
		fprintf(stderr, "regmirror: %s: not an HTTP reply\n", mirror);
		return -1;
	}
	return 0;
}

json_t *
cli_admin_call(struct cli_admin *ca, const char *mirror, const char *path,
    const char *body, int *status)
{
	struct cli_target	 t;
	json_error_t		 jerr;
	json_t			*j = NULL;
	SSL			*ssl = NULL;
	char			*req = NULL, *reply = NULL;
	int			 fd = -1, loopback;

	*status = 0;
	if (cli_target_parse(mirror, &t) != 0)
		return NULL;
	if ((fd = cli_connect(mirror, &t, &loopback)) == -1)
		goto done;
	if (!t.ct_tls && !loopback && ca->ca_token != NULL) {
		fprintf(stderr, "regmirror: %s: not sending the admin token "
		    "over plain http off this host (use https://)\n", mirror);
		goto done;
	}
	if (t.ct_tls && (ssl = cli_ssl_open(ca, mirror, &t, fd)) == NULL)
		goto done;
	req = cli_request(ca, &t, path, body);
	if (cli_exchange(mirror, fd, ssl, req, status, &reply) != 0) {
		*status = 0;
		goto done;
	}
	if (*status == 401)
		fprintf(stderr, "regmirror: %s answered 401: give a token "
		    "(--token-file, REGMIRROR_ADMIN_TOKEN) or a client "
		    "certificate (--cert, --key)\n", mirror);
	j = json_loads(reply, 0, &jerr);
done:
	if (req != NULL) {
		OPENSSL_cleanse(req, strlen(req));
		free(req);
	}
	free(reply);
	if (ssl != NULL) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	if (fd != -1)
		close(fd);
	free(t.ct_host);
	return j;
}

/* ---------------------------------------------------------------- */
/* The reply parser: bytes from the network, so bounded and strict. */

/* The value of line (len bytes) if it is header name: NULL or a pointer
 * into line past the colon and blanks, *vlen its trimmed length. */
static const char *
cli_reply_header(const char *line, size_t len, const char *name,
    size_t *vlen)
{
	size_t	n = strlen(name);
	const char *v, *e = line + len;

	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return NULL;
	for (v = line + n + 1; v < e && (*v == ' ' || *v == '\t'); v++)
		;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*vlen = (size_t)(e - v);
	return v;
}

/* Decimal digits only, at most max: 0 and *out, else -1. */
static int
cli_reply_number(const char *s, size_t len, size_t max, size_t *out)
{
	size_t	i, n = 0;

	if (len == 0 || len > 10)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		n = n * 10 + (size_t)(s[i] - '0');
	}
	if (n > max)
		return -1;
	*out = n;
	return 0;
}

/* A chunked body in p[0..len), complete (the close came): into *out. */
static enum cli_reply
cli_reply_unchunk(const char *p, size_t len, char **out, size_t *outlen)
{
	const char	*e = p + len, *nl;
	char		*b = NULL;
	size_t		 n = 0, sz, i;
	int		 d;

	for (;;) {
		if ((nl = memchr(p, '\n', (size_t)(e - p))) == NULL ||
		    nl == p || nl[-1] != '\r')
			goto bad;
		for (sz = 0, i = 0; p + i < nl - 1 && p[i] != ';'; i++) {
			d = p[i] >= '0' && p[i] <= '9' ? p[i] - '0' :
			    p[i] >= 'a' && p[i] <= 'f' ? p[i] - 'a' + 10 :
			    p[i] >= 'A' && p[i] <= 'F' ? p[i] - 'A' + 10 : -1;
			if (d < 0 || i >= 8)
				goto bad;
			sz = sz * 16 + (size_t)d;
		}
		if (i == 0 || sz > CLI_REPLY_BODY_MAX - n)
			goto bad;
		p = nl + 1;
		if (sz == 0)
			break;
		if ((size_t)(e - p) < sz + 2 || p[sz] != '\r' ||
		    p[sz + 1] != '\n')
			goto bad;
		b = xreallocarray(b, n + sz + 1, 1);
		memcpy(b + n, p, sz);
		n += sz;
		p += sz + 2;
	}
	/* Trailers, up to an empty line. */
	while ((nl = memchr(p, '\n', (size_t)(e - p))) != NULL) {
		if (nl == p + 1 && p[0] == '\r') {
			if (b == NULL)
				b = xmalloc(1);
			b[n] = '\0';
			*out = b;
			*outlen = n;
			return CLI_REPLY_DONE;
		}
		p = nl + 1;
	}
bad:
	free(b);
	return CLI_REPLY_BAD;
}

/* What a reply's head says about its body. */
struct cli_reply_head {
	int	rh_status;
	int	rh_chunked;
	int	rh_have_length;
	size_t	rh_length;
};

/* The head buf[0..hlen) (ending in the blank line): 0 and *h, or -1. */
static int
cli_reply_head(const char *buf, size_t hlen, struct cli_reply_head *h)
{
	const char	*p, *nl, *v, *end = buf + hlen;
	size_t		 n, vlen, c;

	memset(h, 0, sizeof(*h));
	if (hlen > CLI_REPLY_HEAD_MAX || hlen < 14 ||
	    (memcmp(buf, "HTTP/1.1 ", 9) != 0 &&
	    memcmp(buf, "HTTP/1.0 ", 9) != 0) ||
	    buf[9] < '2' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' ||
	    buf[11] < '0' || buf[11] > '9' || (buf[12] != ' ' &&
	    buf[12] != '\r'))
		return -1;	/* 1xx too: never asked for (no Expect) */
	h->rh_status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 +
	    buf[11] - '0';
	/* Each header line, after the status line, before the blank one. */
	p = (const char *)memchr(buf, '\n', hlen) + 1;
	while (p < end - 2) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL || nl == p || nl[-1] != '\r')
			return -1;
		n = (size_t)(nl - 1 - p);
		if ((v = cli_reply_header(p, n, "Content-Length",
		    &vlen)) != NULL) {
			if (cli_reply_number(v, vlen, CLI_REPLY_BODY_MAX,
			    &c) != 0 || (h->rh_have_length &&
			    c != h->rh_length))
				return -1;
			h->rh_length = c;
			h->rh_have_length = 1;
		} else if ((v = cli_reply_header(p, n, "Transfer-Encoding",
		    &vlen)) != NULL) {
			if (vlen != 7 || strncasecmp(v, "chunked", 7) != 0)
				return -1;
			h->rh_chunked = 1;
		}
		p = nl + 1;
	}
	if (h->rh_chunked && h->rh_have_length)
		return -1;
	if (h->rh_status == 204 || h->rh_status == 304) {
		h->rh_length = 0;
		h->rh_have_length = 1;
	}
	return 0;
}

enum cli_reply
cli_reply_parse(const char *buf, size_t len, int eof, int *status,
    char **body, size_t *bodylen)
{
	struct cli_reply_head	 h;
	const char		*head_end = NULL, *p;
	size_t			 n;

	*body = NULL;
	*bodylen = 0;
	for (p = buf; p + 3 < buf + len; p++)
		if (memcmp(p, "\r\n\r\n", 4) == 0) {
			head_end = p + 4;
			break;
		}
	if (head_end == NULL)
		return eof || len > CLI_REPLY_HEAD_MAX ? CLI_REPLY_BAD :
		    CLI_REPLY_MORE;
	if (cli_reply_head(buf, (size_t)(head_end - buf), &h) != 0)
		return CLI_REPLY_BAD;
	n = len - (size_t)(head_end - buf);
	if (h.rh_have_length) {
		if (n < h.rh_length)
			return eof ? CLI_REPLY_BAD : CLI_REPLY_MORE;
		n = h.rh_length;
	} else if (h.rh_chunked) {
		/* Read to the close (Connection: close), then decode. */
		if (!eof)
			return n > CLI_REPLY_BODY_MAX * 2 ? CLI_REPLY_BAD :
			    CLI_REPLY_MORE;
		if (cli_reply_unchunk(head_end, n, body, bodylen) !=
		    CLI_REPLY_DONE)
			return CLI_REPLY_BAD;
		*status = h.rh_status;
		return CLI_REPLY_DONE;
	} else if (n > CLI_REPLY_BODY_MAX)
		return CLI_REPLY_BAD;
	else if (!eof)
		return CLI_REPLY_MORE;
	*body = xmalloc(n + 1);
	memcpy(*body, head_end, n);
	(*body)[n] = '\0';
	*bodylen = n;
	*status = h.rh_status;
	return CLI_REPLY_DONE;
}
