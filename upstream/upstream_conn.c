/*
 * upstream_conn.c — the per-worker pool of HTTP(S) connections to
 * registries, token services and redirect targets, and URL parsing.
 *
 * A connection carries one request at a time: upstream_conn_idle() hands
 * out an idle one, upstream_conn_open() makes a new one to an address the
 * redirect policy passed (upstream_policy.c), upstream_conn_put() takes it
 * back.
 * A connection the server closed, or one a request broke, is never reused:
 * evhttp's reconnect does not work for bufferevent_openssl, so every
 * close frees the connection (deferred to the loop, never inside one of
 * its own callbacks).
 *
 *	states: IDLE --get--> BUSY --put--> IDLE
 *		IDLE|BUSY --closed by peer--> DEAD --put/next tick--> freed
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/config.h"
#include "common/log.h"
#include "common/obj.h"
#include "common/xmalloc.h"
#include "upstream/upstream_int.h"

#define UPSTREAM_CONN_MAGIC	0x75636f6e
#define UPSTREAM_CONN_IDLE_MAX	16	/* idle connections kept per worker */

struct upstream_conn {
	unsigned		 magic;
	struct upstream_worker	*w;
	char			*key;	/* "https://host:port" */
	struct evhttp_connection *evcon;
	int			 busy;
	int			 dead;
	int			 established;	/* TCP (and TLS) up once */
	TAILQ_ENTRY(upstream_conn) entry;
};

/* Exchanges in progress with one upstream on this worker, and who waits. */
struct upstream_slots {
	unsigned		 busy, cap;
	TAILQ_HEAD(, upstream_waiter) wait;
};

struct upstream_worker {
	struct event_base	*base;
	struct evdns_base	*dns;
	long			 timeout;
	long			 connect_timeout;
	long			 queue_timeout;
	TAILQ_HEAD(upstream_conn_list, upstream_conn) conns;
	struct upstream_slots	*slots;		/* by upstream index */
	size_t			 nslots;
};

/* Accepts http(s)://host[:port][/path?query]; IPv6 hosts in brackets. */
int
upstream_url_parse(const char *s, struct upstream_url *out)
{
	struct evhttp_uri	*uri;
	const char		*scheme, *host, *path, *query;
	int			 port;

	memset(out, 0, sizeof(*out));
	if ((uri = evhttp_uri_parse(s)) == NULL)
		return -1;
	scheme = evhttp_uri_get_scheme(uri);
	host = evhttp_uri_get_host(uri);
	if (scheme == NULL || host == NULL || *host == '\0' ||
	    evhttp_uri_get_userinfo(uri) != NULL)
		goto fail;
	if (strcasecmp(scheme, "https") == 0)
		out->tls = 1;
	else if (strcasecmp(scheme, "http") != 0)
		goto fail;
	port = evhttp_uri_get_port(uri);
	if (port == -1)
		port = out->tls ? 443 : 80;
	if (port <= 0 || port > 65535)
		goto fail;
	out->port = port;
	if (host[0] == '[') {
		size_t		n = strlen(host);
		unsigned char	a6[16];

		if (n < 3 || host[n - 1] != ']' ||
		    strspn(host + 1, "0123456789abcdefABCDEF:.") != n - 2)
			goto fail;
		out->host = xstrndup(host + 1, n - 2);
		/* libevent's own inet_pton takes "[::1:]": the C library's
		 * is the one the resolver and the policy agree with. */
		if (inet_pton(AF_INET6, out->host, a6) != 1)
			goto fail;
	} else {
		/* A DNS name or an IPv4 address: nothing else is resolved
		 * (no %-escapes, no bytes a resolver may treat oddly). */
		if (strspn(host, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != strlen(host) ||
		    strlen(host) > 253)
			goto fail;
		out->host = xstrdup(host);
	}
	path = evhttp_uri_get_path(uri);
	query = evhttp_uri_get_query(uri);
	if (path == NULL || *path == '\0')
		path = "/";
	if (query != NULL)
		xasprintf(&out->pathq, "%s?%s", path, query);
	else
		out->pathq = xstrdup(path);
	evhttp_uri_free(uri);
	return 0;
fail:
	evhttp_uri_free(uri);
	upstream_url_fini(out);
	return -1;
}

/* RFC 3986 3.1: does ref start with a scheme ("http:", "x+y.z-1:")? */
static int
upstream_url_has_scheme(const char *ref)
{
	size_t	n;

	if (!((ref[0] >= 'a' && ref[0] <= 'z') ||
	    (ref[0] >= 'A' && ref[0] <= 'Z')))
		return 0;
	n = strspn(ref, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
	return ref[n] == ':';
}

/*
 * RFC 3986 5.2.4, remove_dot_segments, on a path without its query:
 * malloc'd.  The output never outgrows the input ("/." becomes "/").
 */
static char *
upstream_url_remove_dots(const char *in)
{
	char	*out = xmalloc(strlen(in) + 1), *o = out;

	while (*in != '\0') {
		if (strncmp(in, "../", 3) == 0)
			in += 3;
		else if (strncmp(in, "./", 2) == 0 ||
		    strncmp(in, "/./", 3) == 0)
			in += 2;
		else if (strcmp(in, "/.") == 0)
			in = "/";
		else if (strncmp(in, "/../", 4) == 0 ||
		    strcmp(in, "/..") == 0) {
			in = in[3] == '\0' ? "/" : in + 3;
			while (o > out && *--o != '/')
				;
		} else if (strcmp(in, ".") == 0 || strcmp(in, "..") == 0)
			in += strlen(in);
		else
			do
				*o++ = *in++;
			while (*in != '\0' && *in != '/');
	}
	*o = '\0';
	return out;
}

/*
 * A redirect's Location against the URL that answered it, as RFC 9110
 * 10.2.2 says (a URI reference, resolved by RFC 3986 5.2): absolute;
 * "//host/path" on the same scheme; "/path" or "?query" on the same
 * scheme, host and port; "path" merged with the base's directory, its
 * dot segments removed (absolute paths are kept as sent: the upstream
 * chose their bytes).  A fragment is dropped.  Written out whole and
 * parsed again, so that the target passes every rule of
 * upstream_url_parse; the redirect policy judges where it goes.
 */
int
upstream_url_resolve(const struct upstream_url *base, const char *loc,
    struct upstream_url *out)
{
	const char	*scheme = base->tls ? "https" : "http";
	int		 v6 = strchr(base->host, ':') != NULL;
	char		*ref, *abs, *path, *merged, *clean;
	size_t		 blen, dir, q;
	int		 rc;

	memset(out, 0, sizeof(*out));
	ref = xstrndup(loc, strcspn(loc, "#"));
	if (ref[0] == '\0') {
		free(ref);
		return -1;
	}
	if (upstream_url_has_scheme(ref))
		abs = xstrdup(ref);
	else if (ref[0] == '/' && ref[1] == '/')
		xasprintf(&abs, "%s:%s", scheme, ref);
	else {
		blen = strcspn(base->pathq, "?");
		if (ref[0] == '/')
			path = xstrdup(ref);
		else if (ref[0] == '?')
			xasprintf(&path, "%.*s%s", (int)blen, base->pathq, ref);
		else {
			for (dir = blen; dir > 0 && base->pathq[dir - 1] != '/';
			    dir--)
				;
			q = strcspn(ref, "?");
			xasprintf(&merged, "%.*s%.*s", (int)dir, base->pathq,
			    (int)q, ref);
			clean = upstream_url_remove_dots(merged);
			xasprintf(&path, "%s%s", clean, ref + q);
			free(clean);
			free(merged);
		}
		xasprintf(&abs, "%s://%s%s%s:%d%s", scheme, v6 ? "[" : "",
		    base->host, v6 ? "]" : "", base->port, path);
		free(path);
	}
	free(ref);
	rc = upstream_url_parse(abs, out);
	free(abs);
	return rc;
}

void
upstream_url_fini(struct upstream_url *url)
{
	free(url->host);
	free(url->pathq);
	url->host = url->pathq = NULL;
}

struct upstream_worker *
upstream_worker_new(struct event_base *base, const struct config *cfg,
    unsigned nclients, unsigned index)
{
	struct upstream_worker		*w;
	const struct config_upstream	*cu;
	size_t				 i;
	unsigned long			 n;

	w = xcalloc(1, sizeof(*w));
	w->base = base;
	w->timeout = cfg->first_byte_timeout;
	w->connect_timeout = cfg->connect_timeout;
	w->queue_timeout = cfg->queue_timeout;
	TAILQ_INIT(&w->conns);
	/* [upstream] max_connections, shared out between the clients. */
	w->nslots = cfg->nupstreams;
	w->slots = xcalloc(w->nslots, sizeof(*w->slots));
	if (nclients == 0)
		nclients = 1;
	for (cu = cfg->upstreams, i = 0; cu != NULL; cu = cu->next, i++) {
		n = (unsigned long)cu->max_connections / nclients +
		    (index < (unsigned long)cu->max_connections % nclients);
		w->slots[i].cap = n > 0 ? (unsigned)n : 1;
		TAILQ_INIT(&w->slots[i].wait);
	}
	w->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (w->dns == NULL) {
		/* No resolv.conf: numeric hosts and /etc/hosts still work. */
		w->dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (w->dns == NULL)
			fatalx("evdns_base_new failed");
		evdns_base_load_hosts(w->dns, NULL);
	}
	return w;
}

static void
upstream_conn_free(struct upstream_conn *c)
{
	CHECK_OBJ_NOTNULL(c, UPSTREAM_CONN_MAGIC);
	c->dead = 1;	/* evhttp_connection_free() calls our close cb */
	evhttp_connection_free(c->evcon);
	free(c->key);
	c->magic = 0;
	free(c);
}

void
upstream_worker_free(struct upstream_worker *w)
{
	struct upstream_conn	*c;

	if (w == NULL)
		return;
	while ((c = TAILQ_FIRST(&w->conns)) != NULL) {
		TAILQ_REMOVE(&w->conns, c, entry);
		upstream_conn_free(c);
	}
	evdns_base_free(w->dns, 0);
	free(w->slots);
	free(w);
}

long
upstream_worker_queue_timeout(struct upstream_worker *w)
{
	return w->queue_timeout;
}

int
upstream_slot_take(struct upstream_worker *w, const struct upstream *u)
{
	struct upstream_slots	*s = &w->slots[u->idx];

	AN(u->idx < w->nslots);
	if (s->busy >= s->cap || !TAILQ_EMPTY(&s->wait))
		return -1;
	s->busy++;
	return 0;
}

void
upstream_slot_wait(struct upstream_worker *w, const struct upstream *u,
    struct upstream_waiter *wt)
{
	TAILQ_INSERT_TAIL(&w->slots[u->idx].wait, wt, entry);
}

void
upstream_slot_cancel(struct upstream_worker *w, const struct upstream *u,
    struct upstream_waiter *wt)
{
	TAILQ_REMOVE(&w->slots[u->idx].wait, wt, entry);
}

/* A slot is free: the first waiter gets it (told, never run from here). */
void
upstream_slot_give(struct upstream_worker *w, const struct upstream *u)
{
	struct upstream_slots	*s = &w->slots[u->idx];
	struct upstream_waiter	*wt;

	AN(s->busy > 0);
	s->busy--;
	if ((wt = TAILQ_FIRST(&s->wait)) != NULL) {
		TAILQ_REMOVE(&s->wait, wt, entry);
		s->busy++;
		wt->cb(wt->arg);
	}
}

struct evdns_base *
upstream_worker_dns(struct upstream_worker *w)
{
	return w->dns;
}

struct event_base *
upstream_worker_base(struct upstream_worker *w)
{
	return w->base;
}

long
upstream_worker_timeout(struct upstream_worker *w)
{
	return w->timeout;
}

static void
upstream_conn_free_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	upstream_conn_free(arg);
}

/* Free on the next loop turn: we may be inside one of evcon's callbacks. */
static void
upstream_conn_free_later(struct upstream_conn *c)
{
	struct timeval	tv = { 0, 0 };

	if (event_base_once(c->w->base, -1, EV_TIMEOUT, upstream_conn_free_cb,
	    c, &tv) != 0)
		fatalx("event_base_once failed");
}

static void
upstream_conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct upstream_conn	*c = arg;

	(void)evcon;
	CHECK_OBJ_NOTNULL(c, UPSTREAM_CONN_MAGIC);
	if (c->dead)
		return;
	c->dead = 1;
	if (!c->busy) {
		TAILQ_REMOVE(&c->w->conns, c, entry);
		upstream_conn_free_later(c);
	}
}

/* Per upstream: TLS policy (ca_file, tls_verify) is the upstream's. */
static void
upstream_conn_key(const struct upstream *u, const struct upstream_url *url,
    char **key)
{
	xasprintf(key, "%s|%s://%s:%d", u->cfg->name,
	    url->tls ? "https" : "http", url->host, url->port);
}

static int
upstream_is_ip(const char *host)
{
	unsigned char	buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 ||
	    inet_pton(AF_INET6, host, buf) == 1;
}

/*
 * A new connection for url, to the address sa that the redirect policy
 * passed: evhttp is given the numeric address, so that it connects to
 * exactly what was checked; TLS names and verifies url's host.  Hosts
 * that are not one of u's endpoints (CDNs, token realms) are always
 * verified, whatever u's tls_verify says.
 */
struct upstream_conn *
upstream_conn_open(struct upstream_worker *w, struct upstream *u,
    const struct upstream_url *url, const struct sockaddr *sa)
{
	struct upstream_conn	*c;
	struct bufferevent	*bev;
	char			 addr[INET6_ADDRSTRLEN], *key;
	int			 port, verify;
	SSL			*ssl;

	if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
		    (const void *)sa)->sin6_addr, addr, sizeof(addr));
	} else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr, addr, sizeof(addr));
	port = url->port;
	verify = u->cfg->tls_verify || !upstream_url_is_endpoint(u, url);
	c = xcalloc(1, sizeof(*c));
	c->magic = UPSTREAM_CONN_MAGIC;
	c->w = w;
	upstream_conn_key(u, url, &key);
	c->key = key;
	if (url->tls) {
		if ((ssl = SSL_new(u->ssl_ctx)) == NULL)
			fatalx("SSL_new failed");
		if (!upstream_is_ip(url->host))
			SSL_set_tlsext_host_name(ssl, url->host);
		SSL_set_verify(ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
		    NULL);
		if (verify) {
			X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

			X509_VERIFY_PARAM_set_hostflags(param,
			    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (upstream_is_ip(url->host))
				X509_VERIFY_PARAM_set1_ip_asc(param,
				    url->host);
			else
				SSL_set1_host(ssl, url->host);
		}
		bev = bufferevent_openssl_socket_new(w->base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (bev == NULL)
			fatalx("bufferevent_openssl_socket_new failed");
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	} else
		bev = NULL;
	c->evcon = evhttp_connection_base_bufferevent_new(w->base, w->dns,
	    bev, addr, (unsigned short)port);
	if (c->evcon == NULL)
		fatalx("evhttp_connection_base_bufferevent_new failed");
	/* libevent reads 4 KiB at a time by default: far too little for
	 * blobs. */
	bufferevent_set_max_single_read(
	    evhttp_connection_get_bufferevent(c->evcon), 256 * 1024);
	evhttp_connection_set_timeout(c->evcon, (int)w->timeout);
	evhttp_connection_set_retries(c->evcon, 0);
	/* The status line and header block, whatever the upstream sends. */
	evhttp_connection_set_max_headers_size(c->evcon,
	    (ev_ssize_t)u->cfg->max_header_size);
	evhttp_connection_set_closecb(c->evcon, upstream_conn_close_cb, c);
	c->busy = 1;
	TAILQ_INSERT_TAIL(&w->conns, c, entry);
	return c;
}

/* An idle pooled connection for url, now busy; NULL if none. */
struct upstream_conn *
upstream_conn_idle(struct upstream_worker *w, struct upstream *u,
    const struct upstream_url *url)
{
	struct upstream_conn	*c;
	char			*key;

	upstream_conn_key(u, url, &key);
	TAILQ_FOREACH(c, &w->conns, entry)
		if (!c->busy && !c->dead && strcmp(c->key, key) == 0)
			break;
	free(key);
	if (c == NULL)
		return NULL;
	c->busy = 1;
	/* Most recently used at the tail; idle ones are found from the head. */
	TAILQ_REMOVE(&w->conns, c, entry);
	TAILQ_INSERT_TAIL(&w->conns, c, entry);
	return c;
}

/*
 * Has the connection been made (TCP connected and, for https, the TLS
 * handshake done)?  evhttp does not say, so ask the socket and the SSL.
 */
int
upstream_conn_established(struct upstream_conn *c)
{
	struct bufferevent	*bev;
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	evutil_socket_t		 fd;
	SSL			*ssl;

	CHECK_OBJ_NOTNULL(c, UPSTREAM_CONN_MAGIC);
	if (c->established)
		return 1;
	if ((bev = evhttp_connection_get_bufferevent(c->evcon)) == NULL ||
	    (fd = bufferevent_getfd(bev)) < 0 ||
	    getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if ((ssl = bufferevent_openssl_get_ssl(bev)) != NULL &&
	    !SSL_is_init_finished(ssl))
		return 0;
	c->established = 1;
	return 1;
}

long
upstream_worker_connect_timeout(struct upstream_worker *w)
{
	return w->connect_timeout;
}

struct evhttp_connection *
upstream_conn_evcon(struct upstream_conn *c)
{
	CHECK_OBJ_NOTNULL(c, UPSTREAM_CONN_MAGIC);
	return c->evcon;
}

void
upstream_conn_put(struct upstream_conn *c, int broken)
{
	struct upstream_conn	*o, *next;
	unsigned		 idle = 0;

	CHECK_OBJ_NOTNULL(c, UPSTREAM_CONN_MAGIC);
	AN(c->busy);
	c->busy = 0;
	if (broken || c->dead) {
		TAILQ_REMOVE(&c->w->conns, c, entry);
		c->dead = 1;
		upstream_conn_free_later(c);
		return;
	}
	/* Keep the pool small: drop the oldest idle connections. */
	for (o = TAILQ_LAST(&c->w->conns, upstream_conn_list); o != NULL;
	    o = next) {
		next = TAILQ_PREV(o, upstream_conn_list, entry);
		if (o->busy || o->dead)
			continue;
		if (++idle > UPSTREAM_CONN_IDLE_MAX) {
			TAILQ_REMOVE(&c->w->conns, o, entry);
			o->dead = 1;
			upstream_conn_free_later(o);
		}
	}
}
