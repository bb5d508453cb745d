/*
 * proxy_server.c — listeners and worker loops (memcached's model): every
 * worker thread runs its own event_base with its own evhttp, accepting on
 * its own dup of every listening socket, and its own upstream connection
 * pool.  The main thread only waits for SIGTERM/SIGINT and stops them.
 *
 * Also the per-request bookkeeping: ids, common headers and the one access
 * log line written when a request ends.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
#include <openssl/ssl.h>

#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/obj.h"
#include "common/xmalloc.h"
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "sync/sync.h"
#include "upstream/upstream.h"

static atomic_uint_fast64_t	proxy_next_id = 1;

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
	const char *v = evhttp_find_header(
	    evhttp_request_get_input_headers(pr->req), "X-Regmirror-Job");
	const char *secret = sync_token();

	return v != NULL && secret[0] != '\0' &&
	    strlen(v) == strlen(secret) &&
	    CRYPTO_memcmp(v, secret, strlen(secret)) == 0;
}

/*
 * The server TLS context.  SIGHUP builds a new one and swaps it in; new
 * connections take the new one, open connections keep theirs (each SSL
 * holds a reference to its context).
 */
static pthread_mutex_t		proxy_tls_mtx = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX			*proxy_tls_ctx;

static SSL_CTX *
proxy_tls_ctx_new(const struct config *cfg)
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
	    SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key,
	    SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		log_ssl_errors("tls");
		log_warnx("tls: cannot load certificate %s and key %s",
		    cfg->tls_cert, cfg->tls_key);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* [auth] client_ca: ask for a certificate; one that verifies names
	 * the user (proxy_access.c), none at all is anonymous. */
	if (cfg->client_ca != NULL) {
		STACK_OF(X509_NAME)	*names;

		if (SSL_CTX_load_verify_locations(ctx, cfg->client_ca,
		    NULL) != 1 ||
		    (names = SSL_load_client_CA_file(cfg->client_ca)) ==
		    NULL) {
			log_ssl_errors("tls");
			log_warnx("tls: cannot load client_ca %s",
			    cfg->client_ca);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_session_id_context(ctx,
		    (const unsigned char *)"regmirror", 9);
	}
	return ctx;
}

/* (Re)load the certificate and key; on failure the old ones stay. */
static int
proxy_tls_load(const struct config *cfg)
{
	SSL_CTX	*ctx, *old;

	if ((ctx = proxy_tls_ctx_new(cfg)) == NULL)
		return -1;
	pthread_mutex_lock(&proxy_tls_mtx);
	old = proxy_tls_ctx;
	proxy_tls_ctx = ctx;
	pthread_mutex_unlock(&proxy_tls_mtx);
	SSL_CTX_free(old);
	log_info("tls: loaded certificate %s", cfg->tls_cert);
	return 0;
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
	struct bufferevent	*bev;
	SSL			*ssl;

	pthread_mutex_lock(&proxy_tls_mtx);
	ssl = SSL_new(proxy_tls_ctx);
	pthread_mutex_unlock(&proxy_tls_mtx);
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
	return proxy_conn_bev_new(arg, bev, 1);
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

/* "host:port", "[v6]:port" or ":port" to a bound, listening socket. */
static evutil_socket_t
proxy_listen(const char *spec, int tls)
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
	if (listen(fd, 1024) != 0) {
		log_warn("listen %s", spec);
		close(fd);
		return -1;
	}
	evutil_make_socket_nonblocking(fd);
	log_info("listening on %s%s", spec, tls ? " (https)" : "");
	return fd;
}

/* evhttp's hard cap on a request head (the configured one is checked
 * with an OCI error in proxy_oci.c; this one only bounds memory). */
size_t
proxy_head_cap(const struct config *cfg)
{
	return cfg->max_header_size * 4 > 128 * 1024 ?
	    cfg->max_header_size * 4 : 128 * 1024;
}

/* One evhttp of a worker, accepting on its own dups of fds. */
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
		evutil_socket_t fd = fcntl(fds[l], F_DUPFD_CLOEXEC, 0);

		if (fd == -1)
			fatal("dup of a listening socket");
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
	struct evhttp		*admin;
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
	if (sv->ntls > 0 && proxy_tls_load(cfg) != 0)
		return -1;
	sv->fds = xcalloc(cfg->nlisten + cfg->ntls_listen, sizeof(*sv->fds));
	for (l = 0; l < cfg->nlisten; l++)
		if ((sv->fds[l] = proxy_listen(cfg->listen[l],
		    l >= sv->nplain)) == -1)
			return -1;
	for (l = 0; l < cfg->ntls_listen; l++)
		if ((sv->fds[cfg->nlisten + l] = proxy_listen(
		    cfg->tls_listen[l], 1)) == -1)
			return -1;
	return 0;
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
		if ((w->base = event_base_new()) == NULL)
			fatalx("event_base_new failed");
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

/* The jobs' loop, thread and upstream client, and the admin API on it. */
static int
proxy_jobs_start(struct proxy_server *sv)
{
	if ((sv->jobs = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	/* The last of nw + 1 shares of each upstream's max_connections. */
	sv->jobs_up = upstream_worker_new(sv->jobs, sv->cfg,
	    (unsigned)sv->nw + 1, (unsigned)sv->nw);
	if (sync_init(sv->jobs, sv->jobs_up, sv->cfg, sv->nplain > 0) != 0)
		log_warnx("prefetch and replication are off");
	if (sv->cfg->admin_listen != NULL) {
		evutil_socket_t afd = proxy_listen(sv->cfg->admin_listen, 0);

		if (afd == -1)
			return -1;
		sv->admin = proxy_admin_new(sv->jobs, afd, sv->cfg);
		log_info("admin API on %s", sv->cfg->admin_listen);
	}
	if (pthread_create(&sv->jobs_thread, NULL, proxy_jobs_main,
	    sv->jobs) != 0)
		fatal("pthread_create");
	return 0;
}

/* Until SIGTERM or SIGINT; SIGHUP reloads what it can.  The signal. */
static int
proxy_signals_wait(struct proxy_server *sv, sigset_t *set)
{
	int	sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			return sig;
		proxy_access_reload();
		if (sv->ntls == 0) {
			log_info("SIGHUP: nothing to reload");
			continue;
		}
		log_info("SIGHUP: reloading the TLS certificate and key");
		if (proxy_tls_load(sv->cfg) != 0)
			log_warnx("SIGHUP: reload failed, keeping the old "
			    "certificate");
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
	proxy_beat_nw = 0;
	if (sv->admin != NULL)
		evhttp_free(sv->admin);
	sync_fini();
	upstream_worker_free(sv->jobs_up);
	event_base_free(sv->jobs);
	for (i = 0; i < sv->nw; i++) {
		if (sv->workers[i].http != NULL)
			evhttp_free(sv->workers[i].http);
		if (sv->workers[i].https != NULL)
			evhttp_free(sv->workers[i].https);
		upstream_worker_free(sv->workers[i].up);
		event_free(sv->workers[i].beat_ev);
		free(sv->workers[i].fills);
		event_base_free(sv->workers[i].base);
	}
	free(sv->workers);
	free(sv->threads);
	SSL_CTX_free(proxy_tls_ctx);
	proxy_tls_ctx = NULL;
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
	if (proxy_listeners_open(&sv) != 0)
		return -1;
	if (proxy_access_init(cfg) != 0)
		return -1;
	proxy_conn_init(cfg);
	proxy_workers_new(&sv);
	if (proxy_jobs_start(&sv) != 0)
		return -1;
	for (i = 0; i < sv.nw; i++)
		if (pthread_create(&sv.threads[i], NULL, proxy_worker_main,
		    &sv.workers[i]) != 0)
			fatal("pthread_create");
	for (l = 0; l < sv.nplain + sv.ntls; l++)
		close(sv.fds[l]);
	free(sv.fds);
	log_info("regmirror %s serving with %d worker%s", PACKAGE_VERSION,
	    sv.nw, sv.nw == 1 ? "" : "s");
	sig = proxy_signals_wait(&sv, &set);
	log_info("signal %d: shutting down", sig);
	proxy_server_stop(&sv);
	return 0;
}
