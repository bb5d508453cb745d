/*
 * proxy_server.c — listeners and worker loops (memcached's model): every
 * worker thread runs its own event_base with its own evhttp, accepting on
 * its own dup of every listening socket, and its own upstream connection
 * pool.  The main thread waits for SIGTERM/SIGINT (pinging the systemd
 * watchdog meanwhile: proxy_watchdog.c) and stops them.
 *
 * Also the per-request bookkeeping: ids, common headers and the one access
 * log line written when a request ends.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "cache/cache.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/obj.h"
#include "common/sdnotify.h"
#include "common/xmalloc.h"
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "sync/sync.h"
#include "upstream/upstream.h"

static atomic_uint_fast64_t	proxy_next_id = 1;
static atomic_int		proxy_drain_flag;	/* SIGTERM seen */

int
proxy_draining(void)
{
	return atomic_load_explicit(&proxy_drain_flag, memory_order_relaxed);
}

/*
 * The mirror's own jobs (sync/) are clients of its listener like any
 * other; they say who they are with a secret made at start-up, in
 * X-Regmirror-Job.  Only they may force a revalidation (Cache-Control:
 * no-cache) and skip the miss limits: an ordinary client cannot spend
 * the upstream's quota at will.
 */
int
proxy_req_is_job(const struct proxy_req *pr)
{
	const char	*v = evhttp_find_header(
			    evhttp_request_get_input_headers(pr->req),
			    "X-Regmirror-Job");
	const char	*secret = sync_token();
	unsigned char	 a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];

	if (v == NULL || secret[0] == '\0')
		return 0;
	/* Digests of equal length: neither the length nor a prefix of the
	 * tier's secret shows in the time a guess takes. */
	SHA256((const unsigned char *)v, strlen(v), a);
	SHA256((const unsigned char *)secret, strlen(secret), b);
	return CRYPTO_memcmp(a, b, sizeof(a)) == 0;
}

/*
 * A TLS context of a kind of listener: the registry's HTTPS listeners
 * (tls_cert) and the admin API's (admin_tls_cert, with admin_client_ca
 * the CA whose client certificates it asks for and verifies).  SIGHUP
 * builds a new context and swaps it in; new connections take the new
 * one, open connections keep theirs (each SSL holds a reference to its
 * context).
 */
struct proxy_tls {
	const char	*pt_what;	/* in logs: "tls", "admin tls" */
	const char	*pt_cert;
	const char	*pt_key;
	const char	*pt_ca;		/* client certificates: or NULL */
	pthread_mutex_t	 pt_mtx;
	SSL_CTX		*pt_ctx;
};

static struct proxy_tls	proxy_tls_main = {
	.pt_what = "tls", .pt_mtx = PTHREAD_MUTEX_INITIALIZER };
static struct proxy_tls	proxy_tls_admin = {
	.pt_what = "admin tls", .pt_mtx = PTHREAD_MUTEX_INITIALIZER };

/* Ask for client certificates and verify them against t's CA; a client
 * without one still connects (it may carry a token instead). */
static int
proxy_tls_client_ca(SSL_CTX *ctx, const struct proxy_tls *t)
{
	STACK_OF(X509_NAME)	*names;
	static const char	 sid[] = "regmirror";

	if (SSL_CTX_load_verify_locations(ctx, t->pt_ca, NULL) != 1 ||
	    (names = SSL_load_client_CA_file(t->pt_ca)) == NULL) {
		log_ssl_errors(t->pt_what);
		log_warnx("%s: cannot load the client CA %s", t->pt_what,
		    t->pt_ca);
		return -1;
	}
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* Resumed sessions keep their verified certificate. */
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)sid,
	    sizeof(sid) - 1);
	return 0;
}

static SSL_CTX *
proxy_tls_ctx_new(const struct proxy_tls *t)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		log_ssl_errors("SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	/* TLS 1.2: forward-secret AEAD suites only; 1.3 keeps its own. */
	if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:"
	    "!aNULL:!eNULL:!MD5:!RC4:!3DES") != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, t->pt_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, t->pt_key,
	    SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		log_ssl_errors(t->pt_what);
		log_warnx("%s: cannot load certificate %s and key %s",
		    t->pt_what, t->pt_cert, t->pt_key);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (t->pt_ca != NULL && proxy_tls_client_ca(ctx, t) != 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* (Re)load the certificate and key (and CA); on failure the old ones
 * stay. */
static int
proxy_tls_load(struct proxy_tls *t)
{
	SSL_CTX	*ctx, *old;

	if ((ctx = proxy_tls_ctx_new(t)) == NULL)
		return -1;
	pthread_mutex_lock(&t->pt_mtx);
	old = t->pt_ctx;
	t->pt_ctx = ctx;
	pthread_mutex_unlock(&t->pt_mtx);
	SSL_CTX_free(old);
	log_info("%s: loaded certificate %s%s%s", t->pt_what, t->pt_cert,
	    t->pt_ca != NULL ? ", client CA " : "",
	    t->pt_ca != NULL ? t->pt_ca : "");
	return 0;
}

static void
proxy_tls_unload(struct proxy_tls *t)
{
	SSL_CTX_free(t->pt_ctx);
	t->pt_ctx = NULL;
}

/* A server-side TLS bufferevent on t's current context, for evhttp to
 * give its accepted socket; NULL on failure. */
static struct bufferevent *
proxy_tls_bev_new(struct proxy_tls *t, struct event_base *base)
{
	struct bufferevent	*bev;
	SSL			*ssl;

	pthread_mutex_lock(&t->pt_mtx);
	ssl = SSL_new(t->pt_ctx);
	pthread_mutex_unlock(&t->pt_mtx);
	if (ssl == NULL) {
		log_ssl_errors("SSL_new");
		return NULL;
	}
	/* XXX: evhttp shuts a socket down after freeing its bufferevent;
	 * with CLOSE_ON_FREE (needed for SSL_free) that is after close. */
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev != NULL)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* evhttp's constructor for connections on a plain listener. */
static struct bufferevent *
proxy_plain_bev_cb(struct event_base *base, void *arg)
{
	/* Options 0, as evhttp's own: it shuts the socket down, then
	 * closes it. */
	return proxy_conn_bev_new(arg, bufferevent_socket_new(base, -1, 0), 0);
}

/* evhttp's constructor for connections on a TLS listener. */
static struct bufferevent *
proxy_tls_bev_cb(struct event_base *base, void *arg)
{
	return proxy_conn_bev_new(arg, proxy_tls_bev_new(&proxy_tls_main,
	    base), 1);
}

/* evhttp's constructor for connections to the admin API over TLS (not
 * client connections: no connection tracking, no per-client caps). */
static struct bufferevent *
proxy_admin_tls_bev_cb(struct event_base *base, void *arg)
{
	(void)arg;
	return proxy_tls_bev_new(&proxy_tls_admin, base);
}

uint64_t	proxy_req_next_id(void);

uint64_t
proxy_req_next_id(void)
{
	return atomic_fetch_add(&proxy_next_id, 1);
}

long
proxy_tag_ttl(const struct proxy_req *pr)
{
	return upstream_tag_ttl(pr->up, pr->ref, pr->w->cfg->tag_ttl);
}

/*
 * A socket of a SO_REUSEPORT group on the address fd is bound to, for
 * another worker: each worker accepts on its own socket of the group and
 * the kernel spreads new connections over them by their addresses, so
 * that no worker takes a burst of connections that another was as ready
 * for (with one shared socket, the first worker awake accepted them all
 * and kept them: measured, one wrk run in five had every connection on
 * one worker).  -1 on failure (logged).
 */
static evutil_socket_t
proxy_listen_again(evutil_socket_t fd0)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	evutil_socket_t		 fd;
	int			 one = 1, v6only = 0;
	socklen_t		 vlen = sizeof(v6only);

	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd0, (struct sockaddr *)&ss, &sslen) != 0 ||
	    (fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("a worker's listening socket");
		return -1;
	}
	if (ss.ss_family == AF_INET6 && getsockopt(fd0, IPPROTO_IPV6,
	    IPV6_V6ONLY, &v6only, &vlen) == 0)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
		    sizeof(v6only));
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&ss, sslen) != 0 ||
	    listen(fd, 1024) != 0) {
		log_warn("a worker's listening socket");
		close(fd);
		return -1;
	}
	evutil_make_socket_nonblocking(fd);
	return fd;
}

/*
 * *fd is bound without SO_REUSEPORT (so nobody else listens there): the
 * same address (the port the kernel chose, for port 0), bound again with
 * the option, in its place.  0, or -1 (logged, *fd closed).
 */
static int
proxy_listen_group(evutil_socket_t *fd, const char *spec)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	evutil_socket_t		 nfd;
	int			 one = 1;

	memset(&ss, 0, sizeof(ss));
	if (getsockname(*fd, (struct sockaddr *)&ss, &sslen) != 0 ||
	    (nfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC,
	    0)) == -1) {
		log_warn("listen %s", spec);
		close(*fd);
		return -1;
	}
	close(*fd);
	*fd = nfd;
	(void)setsockopt(nfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(nfd, SOL_SOCKET, SO_REUSEPORT, &one,
	    sizeof(one)) != 0 || bind(nfd, (struct sockaddr *)&ss,
	    sslen) != 0) {
		log_warn("bind %s", spec);
		close(nfd);
		return -1;
	}
	return 0;
}

/*
 * "host:port", "[v6]:port" or ":port" to a bound, listening socket.
 * group: it is the first of a SO_REUSEPORT group (proxy_listen_again);
 * the address is first bound without the option, so that a listener of
 * another process, even another regmirror of the same user, is an error
 * ("Address already in use") and never a silent share of the port.
 */
static evutil_socket_t
proxy_listen(const char *spec, int tls, int group)
{
	struct sockaddr_storage	 ss;
	int			 sslen = sizeof(ss);
	evutil_socket_t		 fd;
	char			 buf[300];
	int			 one = 1;

	if (spec[0] == ':')
		snprintf(buf, sizeof(buf), "0.0.0.0%s", spec);
	else
		snprintf(buf, sizeof(buf), "%s", spec);
	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(buf, (struct sockaddr *)&ss,
	    &sslen) != 0) {
		log_warnx("listen %s: not an address:port", spec);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_warn("socket for %s", spec);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) != 0) {
		log_warn("bind %s", spec);
		close(fd);
		return -1;
	}
	if (group && proxy_listen_group(&fd, spec) != 0)
		return -1;
	if (listen(fd, 1024) != 0) {
		log_warn("listen %s", spec);
		close(fd);
		return -1;
	}
	evutil_make_socket_nonblocking(fd);
	log_info("listening on %s%s", spec, tls ? " (https)" : "");
	return fd;
}

/* Whether a process accepts connections on the socket file at sun. */
static int
proxy_unix_in_use(const struct sockaddr_un *sun)
{
	int	fd, rc;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return rc;
}

/*
 * unix:PATH to a bound, listening unix socket of mode 0660 (the owner
 * and the daemon's group may connect).  A stale socket file at PATH (a
 * daemon that was killed) is removed first; any other file there is an
 * error.  The mode is set between bind and listen, so nobody connects
 * under the umask's mode.  *st gets the socket file's identity, so that
 * shutdown removes that file and not one a later daemon made.
 */
static evutil_socket_t
proxy_listen_unix(const char *spec, struct stat *st)
{
	struct sockaddr_un	 sun;
	const char		*path = spec + 5;
	evutil_socket_t		 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_warnx("listen %s: path too long", spec);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if (lstat(path, st) == 0) {
		if (!S_ISSOCK(st->st_mode)) {
			log_warnx("listen %s: %s exists and is not a socket",
			    spec, path);
			return -1;
		}
		if (proxy_unix_in_use(&sun)) {
			log_warnx("listen %s: another process serves on it",
			    spec);
			return -1;
		}
		if (unlink(path) != 0) {
			log_warn("listen %s: unlink of the old socket", spec);
			return -1;
		}
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("socket for %s", spec);
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		log_warn("bind %s", spec);
		close(fd);
		return -1;
	}
	if (chmod(path, 0660) != 0 || lstat(path, st) != 0) {
		log_warn("listen %s: chmod 0660", spec);
		goto fail;
	}
	if (listen(fd, 128) != 0) {
		log_warn("listen %s", spec);
		goto fail;
	}
	evutil_make_socket_nonblocking(fd);
	log_info("listening on %s (mode 0660)", spec);
	return fd;
fail:
	unlink(path);
	close(fd);
	return -1;
}

/* Remove the socket file proxy_listen_unix made, if it is still ours. */
static void
proxy_unlisten_unix(const char *spec, const struct stat *made)
{
	struct stat	st;

	if (lstat(spec + 5, &st) == 0 && st.st_dev == made->st_dev &&
	    st.st_ino == made->st_ino && unlink(spec + 5) != 0)
		log_warn("unlink %s", spec + 5);
}

/* evhttp's hard cap on a request head (the configured one is checked
 * with an OCI error in proxy_oci.c; this one only bounds memory). */
size_t
proxy_head_cap(const struct config *cfg)
{
	return cfg->max_header_size * 4 > 128 * 1024 ?
	    cfg->max_header_size * 4 : 128 * 1024;
}

/* One evhttp of a worker, accepting on its own sockets of fds' groups. */
static struct evhttp *
proxy_http_new(struct proxy_worker *w, int tls, const evutil_socket_t *fds,
    size_t n)
{
	const struct config	*cfg = w->cfg;
	struct evhttp		*http;
	size_t			 l;

	http = evhttp_new(w->base);
	evhttp_set_gencb(http, tls ? proxy_oci_request_tls_cb :
	    proxy_oci_request_cb, w);
	evhttp_set_bevcb(http, tls ? proxy_tls_bev_cb : proxy_plain_bev_cb, w);
	/* The configured limit is enforced with an OCI error in
	 * proxy_oci.c; this hard cap only bounds memory. */
	evhttp_set_max_headers_size(http, (ev_ssize_t)proxy_head_cap(cfg));
	evhttp_set_max_body_size(http, 1024 * 1024);
	evhttp_set_timeout(http, (int)cfg->idle_timeout);
	evhttp_set_default_content_type(http, "application/octet-stream");
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
	for (l = 0; l < n; l++) {
		/* The first worker takes over the socket bound at start-up
		 * (closed in main once every worker runs); the others have
		 * their own of its group. */
		evutil_socket_t fd = w->id == 0 ?
		    fcntl(fds[l], F_DUPFD_CLOEXEC, 0) :
		    proxy_listen_again(fds[l]);

		if (fd == -1)
			fatalx("worker %d: no listening socket", w->id);
		proxy_conn_listen(w, http, fd);
	}
	return http;
}

/* [upstream] max_fills, shared out between the nw workers. */
static void
proxy_fill_slots_init(struct proxy_worker *w, int nw)
{
	const struct config_upstream	*cu;
	size_t				 i;

	w->fills = xcalloc(w->cfg->nupstreams, sizeof(*w->fills));
	for (cu = w->cfg->upstreams, i = 0; cu != NULL; cu = cu->next, i++) {
		w->fills[i].cap = (unsigned)((cu->max_fills + nw - 1) / nw);
		TAILQ_INIT(&w->fills[i].queue);
	}
}

static struct proxy_worker	*proxy_beat_workers;
static int			 proxy_beat_nw;

static int64_t
proxy_mono_seconds(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

/* Each worker's loop says, every second, that it still runs. */
static void
proxy_worker_beat_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct proxy_worker	*w = arg;

	(void)fd;
	(void)ev;
	atomic_store_explicit(&w->beat, proxy_mono_seconds(),
	    memory_order_relaxed);
}

int
proxy_workers_stalled(int64_t max_age)
{
	int64_t	now = proxy_mono_seconds();
	int	i;

	for (i = 0; i < proxy_beat_nw; i++)
		if (now - atomic_load_explicit(&proxy_beat_workers[i].beat,
		    memory_order_relaxed) > max_age)
			return i;
	return -1;
}

static void *
proxy_worker_main(void *arg)
{
	struct proxy_worker	*w = arg;

	event_base_dispatch(w->base);
	return NULL;
}

static int
proxy_workers_count(const struct config *cfg)
{
	long	n;

	if (cfg->workers > 0)
		return cfg->workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

/*
 * The running server: listening sockets, workers with their loops and
 * threads, and the jobs' loop (sync/), which also carries the admin API.
 */
struct proxy_server {
	const struct config	*cfg;
	evutil_socket_t		*fds;
	size_t			 nplain, ntls;
	struct proxy_worker	*workers;
	pthread_t		*threads;
	int			 nw;
	struct event_base	*jobs;
	struct upstream_worker	*jobs_up;
	pthread_t		 jobs_thread;
	struct proxy_admin	*admin;
	evutil_socket_t		 admin_fd;	/* its listening socket */
	int			 admin_tls;	/* the admin API is HTTPS */
	int			 admin_unix;	/* on a unix socket */
	struct stat		 admin_sock;	/* its socket file */
};

/* Bind every listener: plain ones first, then HTTPS.  0 or -1. */
static int
proxy_listeners_open(struct proxy_server *sv)
{
	const struct config	*cfg = sv->cfg;
	size_t			 l;

	/* With tls_cert and no tls_listen, every listener is HTTPS. */
	if (cfg->tls_cert != NULL && cfg->ntls_listen == 0) {
		sv->nplain = 0;
		sv->ntls = cfg->nlisten;
	} else {
		sv->nplain = cfg->nlisten;
		sv->ntls = cfg->ntls_listen;
	}
	proxy_tls_main.pt_cert = cfg->tls_cert;
	proxy_tls_main.pt_key = cfg->tls_key;
	/* [auth] client_ca: a certificate that verifies names the user
	 * (proxy_access.c); none at all is anonymous. */
	proxy_tls_main.pt_ca = cfg->client_ca;
	if (sv->ntls > 0 && proxy_tls_load(&proxy_tls_main) != 0)
		return -1;
	sv->fds = xcalloc(cfg->nlisten + cfg->ntls_listen, sizeof(*sv->fds));
	for (l = 0; l < cfg->nlisten; l++)
		if ((sv->fds[l] = proxy_listen(cfg->listen[l],
		    l >= sv->nplain, 1)) == -1)
			return -1;
	for (l = 0; l < cfg->ntls_listen; l++)
		if ((sv->fds[cfg->nlisten + l] = proxy_listen(
		    cfg->tls_listen[l], 1, 1)) == -1)
			return -1;
	return 0;
}

/*
 * A worker's loop.  epoll with a changelist: evhttp turns a
 * connection's read and write events off and on around every request,
 * and the changelist folds what one turn of the loop changes into one
 * epoll_ctl(2) per descriptor, not one per change (half the calls on a
 * kept-alive connection).  libevent warns that it can go wrong with
 * dup'd descriptors: one removed and closed in the same turn stays
 * registered in the epoll set while another dup of it lives.  No
 * worker's descriptor has a live dup (each has its own listening socket,
 * the start-up ones are closed once the workers run, connections are
 * never dup'd), and proxy_conn_unlisten disables listeners a turn
 * before it closes them all the same.  libevent retries a change that
 * meets a closed and reused descriptor (MOD as ADD, ADD as MOD).
 */
static struct event_base *
proxy_worker_base_new(void)
{
	struct event_config	*ec;
	struct event_base	*base;

	if ((ec = event_config_new()) == NULL ||
	    event_config_set_flag(ec,
	    EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) != 0 ||
	    (base = event_base_new_with_config(ec)) == NULL)
		fatalx("a worker's event loop could not be made");
	event_config_free(ec);
	return base;
}

static void
proxy_workers_new(struct proxy_server *sv)
{
	const struct timeval	second = { 1, 0 };
	int			i;

	sv->nw = proxy_workers_count(sv->cfg);
	sv->workers = xcalloc((size_t)sv->nw, sizeof(*sv->workers));
	sv->threads = xcalloc((size_t)sv->nw, sizeof(*sv->threads));
	for (i = 0; i < sv->nw; i++) {
		struct proxy_worker *w = &sv->workers[i];

		w->id = i;
		w->cfg = sv->cfg;
		w->base = proxy_worker_base_new();
		if (sv->nplain > 0)
			w->http = proxy_http_new(w, 0, sv->fds, sv->nplain);
		if (sv->ntls > 0)
			w->https = proxy_http_new(w, 1, sv->fds + sv->nplain,
			    sv->ntls);
		w->up = upstream_worker_new(w->base, sv->cfg,
		    (unsigned)sv->nw + 1, (unsigned)i);
		proxy_fill_slots_init(w, sv->nw);
		atomic_store(&w->beat, proxy_mono_seconds());
		w->beat_ev = event_new(w->base, -1, EV_PERSIST,
		    proxy_worker_beat_cb, w);
		if (w->beat_ev == NULL || event_add(w->beat_ev, &second) != 0)
			fatalx("worker %d: heartbeat timer", i);
	}
	proxy_beat_workers = sv->workers;
	proxy_beat_nw = sv->nw;
}

static void *
proxy_jobs_main(void *arg)
{
	/* Not a worker's loop: it may be idle (no policy, no admin API). */
	event_base_loop(arg, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/*
 * The admin API's credentials, TLS and listening socket, before any other
 * listener: a token file that cannot be used, a certificate that does not
 * load, or an address or socket path that cannot be had stops the start.
 * On a unix socket the API is plain HTTP (the socket file's mode is its
 * guard, and TLS between two processes of one host protects nothing):
 * admin TLS and client certificates are not used there.
 */
static int
proxy_admin_open(struct proxy_server *sv)
{
	const struct config	*cfg = sv->cfg;

	if (cfg->admin_listen == NULL)
		return 0;
	sv->admin_unix = strncmp(cfg->admin_listen, "unix:", 5) == 0;
	if (sv->admin_unix && cfg->admin_tls_cert != NULL)
		log_warnx("admin_listen %s is a unix socket: admin_tls_cert, "
		    "admin_tls_key and admin_client_ca are not used on it%s",
		    cfg->admin_listen, cfg->admin_client_ca != NULL &&
		    cfg->admin_token_file == NULL ? "; without "
		    "admin_token_file no admin request can authenticate" : "");
	if ((sv->admin = proxy_admin_new(cfg, !sv->admin_unix)) == NULL)
		return -1;
	if (cfg->admin_tls_cert != NULL && !sv->admin_unix) {
		sv->admin_tls = 1;
		proxy_tls_admin.pt_cert = cfg->admin_tls_cert;
		proxy_tls_admin.pt_key = cfg->admin_tls_key;
		proxy_tls_admin.pt_ca = cfg->admin_client_ca;
		if (proxy_tls_load(&proxy_tls_admin) != 0)
			goto fail;
	}
	/* It listens now; the jobs' loop accepts once it runs. */
	sv->admin_fd = sv->admin_unix ? proxy_listen_unix(cfg->admin_listen,
	    &sv->admin_sock) : proxy_listen(cfg->admin_listen, sv->admin_tls,
	    0);
	if (sv->admin_fd == -1)
		goto fail;
	return 0;
fail:
	proxy_tls_unload(&proxy_tls_admin);
	proxy_admin_free(sv->admin);
	sv->admin = NULL;
	return -1;
}

/* The jobs' loop, thread and upstream client, and the admin API on it. */
static void
proxy_jobs_start(struct proxy_server *sv)
{
	const struct config	*cfg = sv->cfg;

	if ((sv->jobs = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	/* The last of nw + 1 shares of each upstream's max_connections. */
	sv->jobs_up = upstream_worker_new(sv->jobs, cfg,
	    (unsigned)sv->nw + 1, (unsigned)sv->nw);
	if (sync_init(sv->jobs, sv->jobs_up, cfg, sv->nplain > 0) != 0)
		log_warnx("prefetch and replication are off");
	if (sv->admin != NULL) {
		proxy_admin_serve(sv->admin, sv->jobs, sv->admin_fd,
		    sv->admin_tls ? proxy_admin_tls_bev_cb : NULL);
		log_info("admin API on %s%s", cfg->admin_listen,
		    sv->admin_tls ? " (https)" : "");
	}
	if (pthread_create(&sv->jobs_thread, NULL, proxy_jobs_main,
	    sv->jobs) != 0)
		fatal("pthread_create");
}

/* SIGHUP: the config (proxy_reload.c), htpasswd, the TLS certificates and
 * keys, the admin API's tokens; nothing if the config has errors. */
static void
proxy_reload(struct proxy_server *sv)
{
	const struct config	*cfg = sv->cfg;

	if (proxy_config_reload(cfg) != 0)
		return;
	proxy_access_reload();
	if (sv->ntls == 0 && !sv->admin_tls && (sv->admin == NULL ||
	    (cfg->admin_token_file == NULL &&
	    cfg->events_token_file == NULL))) {
		log_info("SIGHUP: no certificate or admin token to reload");
		return;
	}
	if (sv->ntls > 0) {
		log_info("SIGHUP: reloading the TLS certificate and key");
		if (proxy_tls_load(&proxy_tls_main) != 0)
			log_warnx("SIGHUP: reload failed, keeping the old "
			    "certificate");
	}
	if (sv->admin_tls) {
		log_info("SIGHUP: reloading the admin TLS certificate and "
		    "key");
		if (proxy_tls_load(&proxy_tls_admin) != 0)
			log_warnx("SIGHUP: admin TLS reload failed, keeping "
			    "the old certificate");
	}
	if (sv->admin == NULL || (cfg->admin_token_file == NULL &&
	    cfg->events_token_file == NULL))
		return;
	log_info("SIGHUP: rereading the admin API's token files");
	if (proxy_admin_reload(sv->admin) != 0)
		log_warnx("SIGHUP: keeping the admin API's old tokens");
}

/* READY=1 with the status `systemctl status` shows while serving. */
static void
proxy_notify_ready(int nw)
{
	sdnotify_ready("serving with %d worker%s", nw, nw == 1 ? "" : "s");
}

static int64_t
proxy_mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The next stop signal (SIGTERM, SIGINT) within ms milliseconds (-1:
 * for ever, pinging the systemd watchdog meanwhile); SIGHUP reloads what
 * it can on the way (systemd told RELOADING=1, then READY=1, unless
 * draining).  The signal, or 0 when the time is up.
 */
static int
proxy_signals_wait(struct proxy_server *sv, sigset_t *set, long ms)
{
	struct proxy_watchdog	wd;
	struct timespec		ts;
	int64_t			until = proxy_mono_ms() + ms, left;
	int			sig;

	memset(&wd, 0, sizeof(wd));
	if (ms < 0)
		proxy_watchdog_init(&wd, sv->nw);
	for (;;) {
		if (ms < 0)
			sig = proxy_watchdog_sigwait(&wd, set);
		else {
			/* A SIGHUP on the way does not restart the wait. */
			if ((left = until - proxy_mono_ms()) <= 0)
				return 0;
			ts.tv_sec = (time_t)(left / 1000);
			ts.tv_nsec = (long)(left % 1000) * 1000000;
			if ((sig = sigtimedwait(set, NULL, &ts)) == -1 &&
			    errno == EAGAIN)
				return 0;
		}
		if (sig == -1)
			continue;
		if (sig != SIGHUP)
			return sig;
		if (ms < 0)
			sdnotify_reloading();
		proxy_reload(sv);
		if (ms < 0)
			proxy_notify_ready(sv->nw);
	}
}

/* On a worker's thread: forget connections that ended unseen. */
static void
proxy_worker_sweep_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	proxy_conn_drain_sweep(arg);
}

/* On a worker's thread: its part of closing the listeners. */
static void
proxy_worker_unlisten_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	proxy_conn_unlisten(arg);
}

/*
 * SIGTERM (the load balancer's way out, as nginx and HAProxy members do
 * it): /readyz says 503 at once and every reply closes its connection;
 * after [server] drain (the balancer's checks have seen it) the listeners
 * close, so new connections are refused and go to another member; the
 * requests and fills in flight get shutdown_timeout to finish.  Another
 * SIGTERM or SIGINT on the way stops at once.  0 when everything
 * finished, else the signal or -1 (time up).
 */
static int
proxy_drain(struct proxy_server *sv, sigset_t *set)
{
	const struct config	*cfg = sv->cfg;
	struct timeval		 now = { 0, 0 };
	int64_t			 until;
	unsigned		 conns, fills, told_c = UINT_MAX, told_f = 0;
	int			 i, sig;

	atomic_store(&proxy_drain_flag, 1);
	log_info("draining: not ready; listeners close in %ld s, then "
	    "requests in flight get %ld s", cfg->drain, cfg->shutdown_timeout);
	sdnotify_status("draining: not ready, listeners close in %ld s",
	    cfg->drain);
	if ((sig = proxy_signals_wait(sv, set, cfg->drain * 1000)) != 0)
		return sig;
	for (i = 0; i < sv->nw; i++)
		event_base_once(sv->workers[i].base, -1, EV_TIMEOUT,
		    proxy_worker_unlisten_cb, &sv->workers[i], &now);
	log_info("draining: closing the listeners; %u connections and %u "
	    "fills in flight", proxy_conn_count(), cache_fills_running());
	until = proxy_mono_ms() + cfg->shutdown_timeout * 1000;
	for (;;) {
		conns = proxy_conn_count();
		fills = cache_fills_running();
		if (conns == 0 && fills == 0)
			return 0;
		if (conns != told_c || fills != told_f) {	/* systemd */
			told_c = conns;
			told_f = fills;
			sdnotify_status("draining: %u connections, %u fills",
			    conns, fills);
		}
		if (proxy_mono_ms() >= until) {
			log_warnx("draining: shutdown_timeout: %u connections "
			    "and %u fills cut", conns, fills);
			return -1;
		}
		if ((sig = proxy_signals_wait(sv, set, 100)) != 0)
			return sig;
		/* Trackers of connections evhttp closed unseen go now. */
		for (i = 0; i < sv->nw; i++)
			event_base_once(sv->workers[i].base, -1, EV_TIMEOUT,
			    proxy_worker_sweep_cb, &sv->workers[i], &now);
	}
}

static void
proxy_server_stop(struct proxy_server *sv)
{
	int	i;

	for (i = 0; i < sv->nw; i++)
		event_base_loopbreak(sv->workers[i].base);
	event_base_loopbreak(sv->jobs);
	for (i = 0; i < sv->nw; i++)
		pthread_join(sv->threads[i], NULL);
	pthread_join(sv->jobs_thread, NULL);
	/* Before the loops go: a writer wakes events on them.  One stuck
	 * (a hung fsync) would use what is freed next: exit as after
	 * shutdown_timeout, what is committed on disk. */
	if (cache_fills_stop(CACHE_STOP_WAIT_MS) != 0) {
		log_warnx("stop: fill writers still running after %u ms: "
		    "exiting without waiting", CACHE_STOP_WAIT_MS);
		fflush(NULL);
		_exit(0);
	}
	proxy_access_stop();
	proxy_beat_nw = 0;
	if (sv->admin != NULL)
		proxy_admin_free(sv->admin);
	if (sv->admin_unix)
		proxy_unlisten_unix(sv->cfg->admin_listen, &sv->admin_sock);
	sync_fini();
	upstream_worker_free(sv->jobs_up);
	event_base_free(sv->jobs);
	for (i = 0; i < sv->nw; i++) {
		if (sv->workers[i].http != NULL)
			evhttp_free(sv->workers[i].http);
		if (sv->workers[i].https != NULL)
			evhttp_free(sv->workers[i].https);
		proxy_conn_fini(&sv->workers[i]);
		upstream_worker_free(sv->workers[i].up);
		event_free(sv->workers[i].beat_ev);
		free(sv->workers[i].fills);
		event_base_free(sv->workers[i].base);
	}
	free(sv->workers);
	free(sv->threads);
	proxy_tls_unload(&proxy_tls_main);
	proxy_tls_unload(&proxy_tls_admin);
	proxy_access_fini();
}

int
proxy_run(const struct config *cfg)
{
	struct proxy_server	 sv;
	sigset_t		 set;
	size_t			 l;
	int			 i, sig;

	memset(&sv, 0, sizeof(sv));
	sv.cfg = cfg;
	if (evthread_use_pthreads() != 0)
		fatalx("evthread_use_pthreads failed");
	signal(SIGPIPE, SIG_IGN);
	/* Threads inherit a mask without the stop signals; main waits. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (proxy_access_init(cfg) != 0)
		return -1;
	if (proxy_admin_open(&sv) != 0) {
		proxy_access_fini();
		return -1;
	}
	if (proxy_listeners_open(&sv) != 0) {
		if (sv.admin != NULL) {
			close(sv.admin_fd);
			proxy_admin_free(sv.admin);
		}
		if (sv.admin_unix)
			proxy_unlisten_unix(cfg->admin_listen, &sv.admin_sock);
		proxy_access_fini();
		return -1;
	}
	proxy_conn_init(cfg);
	proxy_workers_new(&sv);
	proxy_jobs_start(&sv);
	for (i = 0; i < sv.nw; i++)
		if (pthread_create(&sv.threads[i], NULL, proxy_worker_main,
		    &sv.workers[i]) != 0)
			fatal("pthread_create");
	for (l = 0; l < sv.nplain + sv.ntls; l++)
		close(sv.fds[l]);
	free(sv.fds);
	log_info("regmirror %s serving with %d worker%s", PACKAGE_VERSION,
	    sv.nw, sv.nw == 1 ? "" : "s");
	proxy_notify_ready(sv.nw);	/* listeners bound, cache open */
	/* SIGINT (a terminal's ^C) stops at once; SIGTERM drains. */
	sig = proxy_signals_wait(&sv, &set, -1);
	sdnotify_stopping();
	if (sig == SIGTERM && (sig = proxy_drain(&sv, &set)) != 0) {
		/*
		 * shutdown_timeout, or another signal during the drain: the
		 * requests and fills still in flight are abandoned, not
		 * wound down (their loops, connections and upstream fetches
		 * would each have to be unpicked).  What is committed is on
		 * disk (LMDB, renamed blobs); a fill's temporary file goes
		 * at the next start, as after a crash.
		 */
		if (sig > 0)
			log_info("signal %d: stopping now", sig);
		else
			log_info("shutdown_timeout: exiting with work in "
			    "flight cut");
		fflush(NULL);
		_exit(0);
	}
	if (sig == 0)
		log_info("drained: shutting down");
	else
		log_info("signal %d: stopping now", sig);
	proxy_server_stop(&sv);
	return 0;
}
