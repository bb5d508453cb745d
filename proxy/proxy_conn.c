/*
 * proxy_conn.c — client connections, for what libevent 2.1's evhttp does
 * not do for a server that faces a network:
 *
 *  - caps: at most [server] max_connections client connections at once,
 *    and max_connections_per_client from one address; a connection over
 *    either is answered 503 (plain listeners) and closed;
 *  - deadlines: a request head must arrive whole within [timeouts]
 *    request_head of its first byte (evhttp's idle timeout restarts on
 *    every read, so a client sending a byte a second would hold a
 *    connection for ever), a TLS handshake within tls_handshake;
 *  - input: at most a request head's worth is buffered per connection
 *    (evhttp reads on while it writes a reply; nothing drains that);
 *  - TCP_NODELAY on every client socket: a reply is a header block and a
 *    body written apart, and over TLS the second small record otherwise
 *    waits for the client's delayed ACK (~40 ms a request);
 *  - accept errors: out of descriptors (EMFILE, ENFILE), the listener
 *    pauses for a moment instead of spinning on the same error, with one
 *    warning a minute.
 *
 * evhttp 2.1 tells us of a connection only through its bufferevent
 * constructor (evhttp_set_bevcb), called before the socket is attached,
 * and of its end only through the close callback of a connection we were
 * handed a request on.  So each connection gets a tracker, found by its
 * bufferevent; the socket is read once evhttp has attached it (an event
 * made active in the constructor runs right after the accept); a
 * connection that dies before its first request is noticed when its
 * deadline fires (its descriptor no longer names the same socket) or when
 * a new bufferevent takes its address.
 *
 *	state	event					next
 *	NEW	socket attached, under the caps		FIRST (deadline: TLS
 *							handshake or head)
 *	NEW	over a cap				REFUSED (503, closed)
 *	FIRST	first byte (TLS: handshake done)	HEAD (deadline: head)
 *	HEAD	request head complete (proxy_conn_request)
 *							SERVING
 *	SERVING	reply done, bytes waiting		HEAD
 *	SERVING	reply done, nothing waiting		IDLE (evhttp's idle
 *							timeout only)
 *	IDLE	first byte of the next head		HEAD
 *	FIRST|HEAD deadline				closed, freed
 *	any	evhttp closes the connection		freed
 */
#include "autoconf.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <search.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/obj.h"
#include "common/xmalloc.h"
#include "proxy/proxy_int.h"

#define PROXY_CONN_MAGIC	0x70636f6e
#define PROXY_ACCEPT_PAUSE_MS	250	/* out of descriptors: wait this */
#define PROXY_WARN_EVERY	60	/* seconds between repeated warnings */
#define PROXY_CONN_INPUT_SLACK	(64 * 1024)	/* input past a head's cap */

enum proxy_conn_state {
	PROXY_CONN_NEW = 0,
	PROXY_CONN_FIRST,
	PROXY_CONN_HEAD,
	PROXY_CONN_SERVING,
	PROXY_CONN_IDLE,
	PROXY_CONN_REFUSED,
};

struct proxy_conn {
	unsigned			 magic;
	enum proxy_conn_state		 state;
	struct proxy_worker		*w;
	struct bufferevent		*bev;	/* the key; never touched
						   unless the socket lives */
	struct evhttp_connection	*evcon;	/* once a request came */
	evutil_socket_t			 fd;
	ino_t				 ino;	/* the socket's identity */
	int				 tls;
	int				 counted;
	struct proxy_addr		*addr;	/* per-address count */
	struct event			*attach;
	struct event			*deadline;
	struct evbuffer_cb_entry	*in_cb;
	proxy_conn_close_f		 on_close;
	void				*on_close_arg;
};

/* Connections per client address, across every worker. */
struct proxy_addr {
	int		family;
	unsigned char	bytes[16];
	unsigned	n;
};

static pthread_mutex_t	 proxy_addr_mtx = PTHREAD_MUTEX_INITIALIZER;
static void		*proxy_addrs;		/* tsearch tree */
static _Atomic unsigned	 proxy_nconns;
static unsigned		 proxy_max_conns;	/* resolved at start-up */
static unsigned		 proxy_max_per_client;
static long		 proxy_head_timeout;
static long		 proxy_tls_timeout;

/* Listeners, to pause and resume them (set up before workers run). */
struct proxy_listener {
	struct evconnlistener	*lev;	/* NULL once closed (SIGTERM) */
	int			 closing; /* disabled, closed next turn */
	struct event		*resume;
	struct proxy_worker	*w;
	struct evhttp		*http;
	struct evhttp_bound_socket *bound;
};
static struct proxy_listener	*proxy_listeners;
static size_t			 proxy_nlisteners;
static pthread_mutex_t		 proxy_listeners_mtx =
				    PTHREAD_MUTEX_INITIALIZER;

#define PROXY_BUSY_BODY							\
    "{\"errors\":[{\"code\":\"UNAVAILABLE\",\"message\":"		\
    "\"too many connections\",\"detail\":null}]}\n"
static const char proxy_busy_reply[] =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: application/json\r\n"
    "Retry-After: 1\r\n"
    "Connection: close\r\n"
    "Content-Length: 83\r\n\r\n" PROXY_BUSY_BODY;
_Static_assert(sizeof(PROXY_BUSY_BODY) - 1 == 83,
    "Content-Length of proxy_busy_reply");

/* One warning per PROXY_WARN_EVERY seconds per kind, with a count. */
struct proxy_ratelimit {
	_Atomic int64_t		last;
	_Atomic uint64_t	suppressed;
};
static struct proxy_ratelimit	proxy_rl_accept, proxy_rl_caps,
				proxy_rl_deadline;

static int
proxy_ratelimit_ok(struct proxy_ratelimit *rl, uint64_t *suppressed)
{
	int64_t	now = (int64_t)time(NULL), last = atomic_load(&rl->last);

	if (now - last < PROXY_WARN_EVERY ||
	    !atomic_compare_exchange_strong(&rl->last, &last, now)) {
		atomic_fetch_add(&rl->suppressed, 1);
		return 0;
	}
	*suppressed = atomic_exchange(&rl->suppressed, 0);
	return 1;
}

static int
proxy_conn_cmp(const void *a, const void *b)
{
	const struct proxy_conn	*x = a, *y = b;
	uintptr_t		 p = (uintptr_t)x->bev, q = (uintptr_t)y->bev;

	return p < q ? -1 : p > q;
}

static int
proxy_addr_cmp(const void *a, const void *b)
{
	const struct proxy_addr	*x = a, *y = b;

	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	return memcmp(x->bytes, y->bytes, sizeof(x->bytes));
}

/* The client's address as a key (IPv4-mapped IPv6 as IPv4). */
static int
proxy_addr_key(const struct sockaddr_storage *ss, struct proxy_addr *k)
{
	memset(k, 0, sizeof(*k));
	if (ss->ss_family == AF_INET) {
		k->family = AF_INET;
		memcpy(k->bytes, &((const struct sockaddr_in *)ss)->sin_addr,
		    4);
		return 0;
	}
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)ss)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a)) {
			k->family = AF_INET;
			memcpy(k->bytes, a->s6_addr + 12, 4);
		} else {
			k->family = AF_INET6;
			memcpy(k->bytes, a->s6_addr, 16);
		}
		return 0;
	}
	return -1;
}

/* Count a connection from k; NULL (nothing counted) when over a cap. */
static struct proxy_addr *
proxy_addr_take(const struct proxy_addr *k)
{
	struct proxy_addr	*a, **found;

	if (atomic_fetch_add(&proxy_nconns, 1) >= proxy_max_conns) {
		atomic_fetch_sub(&proxy_nconns, 1);
		return NULL;
	}
	pthread_mutex_lock(&proxy_addr_mtx);
	if ((found = tfind(k, &proxy_addrs, proxy_addr_cmp)) != NULL)
		a = *found;
	else {
		a = xmalloc(sizeof(*a));
		*a = *k;
		a->n = 0;
		if (tsearch(a, &proxy_addrs, proxy_addr_cmp) == NULL)
			fatalx("tsearch: out of memory");
	}
	if (proxy_max_per_client > 0 && a->n >= proxy_max_per_client) {
		if (a->n == 0) {
			tdelete(a, &proxy_addrs, proxy_addr_cmp);
			free(a);
		}
		pthread_mutex_unlock(&proxy_addr_mtx);
		atomic_fetch_sub(&proxy_nconns, 1);
		return NULL;
	}
	a->n++;
	pthread_mutex_unlock(&proxy_addr_mtx);
	return a;
}

static void
proxy_addr_release(struct proxy_addr *a)
{
	pthread_mutex_lock(&proxy_addr_mtx);
	AN(a->n > 0);
	if (--a->n == 0) {
		tdelete(a, &proxy_addrs, proxy_addr_cmp);
		free(a);
	}
	pthread_mutex_unlock(&proxy_addr_mtx);
	atomic_fetch_sub(&proxy_nconns, 1);
}

/* Forget a tracker: its connection is gone (or is being closed). */
static void
proxy_conn_free(struct proxy_conn *pc)
{
	CHECK_OBJ_NOTNULL(pc, PROXY_CONN_MAGIC);
	if (tdelete(pc, &pc->w->conns, proxy_conn_cmp) == NULL)
		WRONG("proxy_conn_free: not in the tree");
	if (pc->counted)
		proxy_addr_release(pc->addr);
	event_free(pc->attach);
	event_free(pc->deadline);
	pc->magic = 0;
	free(pc);
}

/* Stop hearing from a connection that is still alive. */
static void
proxy_conn_detach(struct proxy_conn *pc)
{
	if (pc->in_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_input(pc->bev),
		    pc->in_cb);
	pc->in_cb = NULL;
}

/* Does pc's descriptor still name the socket it was accepted on? */
static int
proxy_conn_alive(const struct proxy_conn *pc)
{
	struct stat	st;

	return pc->fd >= 0 && fstat(pc->fd, &st) == 0 &&
	    S_ISSOCK(st.st_mode) && st.st_ino == pc->ino;
}

static void
proxy_conn_arm(struct proxy_conn *pc, enum proxy_conn_state state,
    long seconds)
{
	struct timeval	tv = { seconds, 0 };

	pc->state = state;
	if (seconds > 0)
		evtimer_add(pc->deadline, &tv);
	else
		evtimer_del(pc->deadline);
}

/* Input arrived: a handshake finished, or the next head has begun. */
static void
proxy_conn_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct proxy_conn	*pc = arg;

	(void)buf;
	CHECK_OBJ_NOTNULL(pc, PROXY_CONN_MAGIC);
	if (info->n_added == 0)
		return;
	if (pc->state == PROXY_CONN_IDLE || (pc->state == PROXY_CONN_FIRST &&
	    pc->tls))
		proxy_conn_arm(pc, PROXY_CONN_HEAD, proxy_head_timeout);
	else if (pc->state == PROXY_CONN_FIRST)
		pc->state = PROXY_CONN_HEAD;	/* the accept's deadline */
}

static void
proxy_conn_deadline_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct proxy_conn	*pc = arg;
	uint64_t		 more;

	(void)fd;
	(void)ev;
	CHECK_OBJ_NOTNULL(pc, PROXY_CONN_MAGIC);
	if (!proxy_conn_alive(pc)) {
		proxy_conn_free(pc);	/* evhttp closed it before */
		return;
	}
	if (pc->state == PROXY_CONN_REFUSED) {
		proxy_conn_free(pc);	/* shut down already */
		return;
	}
	metric_inc(METRIC_CONN_DEADLINES);
	if (proxy_ratelimit_ok(&proxy_rl_deadline, &more))
		log_warnx("client connection closed: %s not complete in time "
		    "([timeouts] %s; %llu more since the last warning)",
		    pc->tls && pc->state == PROXY_CONN_FIRST ?
		    "TLS handshake" : "request head", pc->tls &&
		    pc->state == PROXY_CONN_FIRST ? "tls_handshake" :
		    "request_head", (unsigned long long)more);
	if (pc->evcon != NULL) {
		/* Its close callback frees the tracker. */
		evhttp_connection_free(pc->evcon);
		return;
	}
	/* Not ours to free: evhttp reads the EOF and frees it. */
	proxy_conn_detach(pc);
	shutdown(pc->fd, SHUT_RDWR);
	proxy_conn_free(pc);
}

/* The trackers of one worker that a predicate picks, collected by a
 * walk of its tree and acted on after it (the walk must not free). */
struct proxy_conn_sweep {
	int			(*want)(const struct proxy_conn *);
	struct proxy_conn	**dead;
	size_t			  n, cap;
};

static void
proxy_conn_collect_cb(const void *node, VISIT v, void *arg)
{
	struct proxy_conn	*pc = *(struct proxy_conn *const *)node;
	struct proxy_conn_sweep	*sw = arg;

	if ((v != postorder && v != leaf) || !sw->want(pc))
		return;
	if (sw->n == sw->cap) {
		sw->cap = sw->cap * 2 + 16;
		sw->dead = xreallocarray(sw->dead, sw->cap, sizeof(*sw->dead));
	}
	sw->dead[sw->n++] = pc;
}

/* w's trackers that want picks: an array (free it) and *n. */
static struct proxy_conn **
proxy_conn_collect(struct proxy_worker *w,
    int (*want)(const struct proxy_conn *), size_t *n)
{
	struct proxy_conn_sweep	sw = { want, NULL, 0, 0 };

	twalk_r(w->conns, proxy_conn_collect_cb, &sw);
	*n = sw.n;
	return sw.dead;
}

/*
 * At a cap: connections closed before their first request are noticed
 * only at their deadline; find this worker's now, so that a client that
 * closed idle connections may connect again at once.
 */
static int
proxy_conn_gone(const struct proxy_conn *pc)
{
	return pc->evcon == NULL && pc->state != PROXY_CONN_NEW &&
	    !proxy_conn_alive(pc);
}

static size_t
proxy_conn_sweep(struct proxy_worker *w)
{
	struct proxy_conn	**dead;
	size_t			  i, n;

	dead = proxy_conn_collect(w, proxy_conn_gone, &n);
	for (i = 0; i < n; i++)
		proxy_conn_free(dead[i]);
	free(dead);
	return n;
}

/* Right after the accept: read the socket, apply the caps. */
static void
proxy_conn_attach_cb(evutil_socket_t unused, short ev, void *arg)
{
	struct proxy_conn	*pc = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	struct proxy_addr	 key;
	struct stat		 st;
	bufferevent_event_cb	 ecb;
	struct bufferevent	*bev = pc->bev;
	uint64_t		 more;
	int			 one = 1;

	(void)unused;
	(void)ev;
	CHECK_OBJ_NOTNULL(pc, PROXY_CONN_MAGIC);
	/* getpeername() may fill less than the whole: no stale family. */
	memset(&ss, 0, sizeof(ss));
	bufferevent_getcb(bev, NULL, NULL, &ecb, NULL);
	if (ecb == NULL) {
		/* evhttp gave up on it already; ours is the last ref. */
		proxy_conn_free(pc);
		bufferevent_decref(bev);
		return;
	}
	pc->fd = bufferevent_getfd(bev);
	if (pc->fd < 0 || fstat(pc->fd, &st) != 0 ||
	    getpeername(pc->fd, (struct sockaddr *)&ss, &sslen) != 0 ||
	    proxy_addr_key(&ss, &key) != 0) {
		pc->fd = -1;
		proxy_conn_arm(pc, PROXY_CONN_FIRST, proxy_head_timeout);
		bufferevent_decref(bev);
		return;
	}
	pc->ino = st.st_ino;
	(void)setsockopt(pc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((pc->addr = proxy_addr_take(&key)) == NULL &&
	    proxy_conn_sweep(pc->w) > 0)
		pc->addr = proxy_addr_take(&key);
	if (pc->addr == NULL) {
		metric_inc(METRIC_CONN_REFUSED);
		if (proxy_ratelimit_ok(&proxy_rl_caps, &more))
			log_warnx("client connection refused: over [server] "
			    "max_connections (%u) or "
			    "max_connections_per_client (%u) (%llu more "
			    "since the last warning)",
			    proxy_max_conns, proxy_max_per_client,
			    (unsigned long long)more);
		if (!pc->tls)
			(void)!send(pc->fd, proxy_busy_reply,
			    sizeof(proxy_busy_reply) - 1,
			    MSG_DONTWAIT | MSG_NOSIGNAL);
		shutdown(pc->fd, SHUT_RDWR);
		/* The deadline makes sure the tracker goes. */
		proxy_conn_arm(pc, PROXY_CONN_REFUSED, 1);
		bufferevent_decref(bev);
		return;
	}
	pc->counted = 1;
	pc->in_cb = evbuffer_add_cb(bufferevent_get_input(bev),
	    proxy_conn_input_cb, pc);
	proxy_conn_arm(pc, PROXY_CONN_FIRST, pc->tls ? proxy_tls_timeout :
	    proxy_head_timeout);
	bufferevent_decref(bev);
}

/* evhttp's bufferevent constructor, one call per accepted connection. */
struct bufferevent *
proxy_conn_bev_new(struct proxy_worker *w, struct bufferevent *bev, int tls)
{
	struct proxy_conn	 key, *pc, **found;

	if (bev == NULL)
		return NULL;
	key.bev = bev;
	/* A tracker under this address belongs to a freed bufferevent
	 * whose connection ended unseen. */
	if ((found = tfind(&key, &w->conns, proxy_conn_cmp)) != NULL)
		proxy_conn_free(*found);
	pc = xcalloc(1, sizeof(*pc));
	pc->magic = PROXY_CONN_MAGIC;
	pc->w = w;
	pc->bev = bev;
	pc->fd = -1;
	pc->tls = tls;
	pc->attach = event_new(w->base, -1, 0, proxy_conn_attach_cb, pc);
	pc->deadline = evtimer_new(w->base, proxy_conn_deadline_cb, pc);
	AN(pc->attach);
	AN(pc->deadline);
	if (tsearch(pc, &w->conns, proxy_conn_cmp) == NULL)
		fatalx("tsearch: out of memory");
	/*
	 * evhttp keeps reading while it writes a reply (to see the client
	 * close), into a buffer nothing drains: without a high watermark a
	 * client pipelining junk behind a long download grows it without
	 * bound.  Past one request head's worth, reading pauses.
	 */
	bufferevent_setwatermark(bev, EV_READ, 0,
	    proxy_head_cap(w->cfg) + PROXY_CONN_INPUT_SLACK);
	bufferevent_incref(bev);	/* until the attach callback */
	event_active(pc->attach, EV_READ, 0);
	return bev;
}

static struct proxy_conn *
proxy_conn_find(struct proxy_worker *w, struct evhttp_connection *evcon)
{
	struct proxy_conn	 key, **found;

	key.bev = evhttp_connection_get_bufferevent(evcon);
	found = tfind(&key, &w->conns, proxy_conn_cmp);
	return found != NULL ? *found : NULL;
}

static void
proxy_conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct proxy_conn	*pc = arg;
	proxy_conn_close_f	 cb;

	(void)evcon;
	CHECK_OBJ_NOTNULL(pc, PROXY_CONN_MAGIC);
	if ((cb = pc->on_close) != NULL) {
		pc->on_close = NULL;
		cb(pc->on_close_arg);
	}
	proxy_conn_detach(pc);
	proxy_conn_free(pc);
}

static void
proxy_conn_complete_cb(struct evhttp_request *req, void *arg)
{
	struct proxy_conn	*pc = arg;

	(void)req;
	CHECK_OBJ_NOTNULL(pc, PROXY_CONN_MAGIC);
	/* Draining: a reply started before SIGTERM is the last one. */
	if (proxy_draining() && proxy_conn_alive(pc))
		shutdown(pc->fd, SHUT_RDWR);
	if (evbuffer_get_length(bufferevent_get_input(pc->bev)) > 0)
		proxy_conn_arm(pc, PROXY_CONN_HEAD, proxy_head_timeout);
	else
		proxy_conn_arm(pc, PROXY_CONN_IDLE, 0);
}

void
proxy_conn_request(struct proxy_worker *w, struct evhttp_request *req)
{
	struct evhttp_connection	*evcon;
	struct proxy_conn		*pc;

	if ((evcon = evhttp_request_get_connection(req)) == NULL ||
	    (pc = proxy_conn_find(w, evcon)) == NULL)
		return;
	proxy_conn_arm(pc, PROXY_CONN_SERVING, 0);
	/* Draining: evhttp closes the connection after this reply. */
	if (proxy_draining())
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Connection", "close");
	if (pc->evcon == NULL) {
		pc->evcon = evcon;
		evhttp_connection_set_closecb(evcon, proxy_conn_close_cb, pc);
	}
	evhttp_request_set_on_complete_cb(req, proxy_conn_complete_cb, pc);
}

int
proxy_conn_on_close(struct proxy_worker *w, struct evhttp_connection *evcon,
    proxy_conn_close_f cb, void *arg)
{
	struct proxy_conn	*pc;

	if ((pc = proxy_conn_find(w, evcon)) == NULL || pc->evcon != evcon)
		return -1;
	pc->on_close = cb;
	pc->on_close_arg = arg;
	return 0;
}

static void
proxy_conn_resume_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	evconnlistener_enable(arg);
}

/*
 * Accept failed.  Out of descriptors or memory, the pending connection
 * stays in the backlog and the listener would fire again at once: pause
 * it instead, and say so once a minute.
 */
static void
proxy_conn_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	int		 err = EVUTIL_SOCKET_ERROR();
	struct timeval	 tv = { 0, PROXY_ACCEPT_PAUSE_MS * 1000 };
	uint64_t	 more;
	size_t		 i;

	(void)arg;
	metric_inc(METRIC_ACCEPT_ERRORS);
	if (err != EMFILE && err != ENFILE && err != ENOBUFS &&
	    err != ENOMEM) {
		log_debug("accept: %s", strerror(err));
		return;
	}
	pthread_mutex_lock(&proxy_listeners_mtx);
	for (i = 0; i < proxy_nlisteners; i++)
		if (proxy_listeners[i].lev == lev) {
			evconnlistener_disable(lev);
			evtimer_add(proxy_listeners[i].resume, &tv);
		}
	pthread_mutex_unlock(&proxy_listeners_mtx);
	if (proxy_ratelimit_ok(&proxy_rl_accept, &more))
		log_warnx("accept: %s: not accepting for %d ms (descriptor "
		    "limit %ld; %llu more pauses since the last warning)",
		    strerror(err), PROXY_ACCEPT_PAUSE_MS,
		    (long)sysconf(_SC_OPEN_MAX), (unsigned long long)more);
}

void
proxy_conn_listen(struct proxy_worker *w, struct evhttp *http,
    evutil_socket_t fd)
{
	struct evhttp_bound_socket	*bound;
	struct evconnlistener		*lev;
	struct proxy_listener		*l;

	if ((bound = evhttp_accept_socket_with_handle(http, fd)) == NULL)
		fatal("evhttp_accept_socket");
	lev = evhttp_bound_socket_get_listener(bound);
	evconnlistener_set_error_cb(lev, proxy_conn_accept_error_cb);
	pthread_mutex_lock(&proxy_listeners_mtx);
	proxy_listeners = xreallocarray(proxy_listeners,
	    proxy_nlisteners + 1, sizeof(*proxy_listeners));
	l = &proxy_listeners[proxy_nlisteners++];
	l->lev = lev;
	l->w = w;
	l->http = http;
	l->bound = bound;
	l->resume = evtimer_new(w->base, proxy_conn_resume_cb, lev);
	AN(l->resume);
	pthread_mutex_unlock(&proxy_listeners_mtx);
}

/*
 * The caps, once at start-up.  The descriptor limit is raised to its
 * hard maximum (a mirror holds a socket, an upstream connection and a
 * cache file per download); "auto" connections are half of it.
 */
void
proxy_conn_init(const struct config *cfg)
{
	struct rlimit	rl;
	rlim_t		half;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			log_info("descriptor limit raised from %llu to %llu",
			    (unsigned long long)was,
			    (unsigned long long)rl.rlim_max);
		else
			(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	half = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 2000000 ?
	    1000000 : rl.rlim_cur / 2;
	proxy_max_conns = cfg->max_connections > 0 ?
	    (unsigned)cfg->max_connections : (unsigned)(half > 16 ? half : 16);
	proxy_max_per_client = (unsigned)cfg->max_connections_per_client;
	proxy_head_timeout = cfg->request_head_timeout;
	proxy_tls_timeout = cfg->tls_handshake_timeout;
	log_info("client connections: at most %u, %u per client address%s",
	    proxy_max_conns, proxy_max_per_client,
	    proxy_max_per_client == 0 ? " (no per-address cap)" : "");
}

unsigned
proxy_conn_count(void)
{
	return atomic_load(&proxy_nconns);
}

/* Trackers of connections waiting for a request: pc->fd is alive. */
static int
proxy_conn_waiting(const struct proxy_conn *pc)
{
	return (pc->state == PROXY_CONN_IDLE || pc->state == PROXY_CONN_FIRST ||
	    pc->state == PROXY_CONN_HEAD) && proxy_conn_alive(pc);
}

/*
 * The second half of proxy_conn_unlisten, one turn of w's loop later:
 * the listeners' events were removed while their descriptors were still
 * open, so that the worker's epoll changelist could tell the kernel
 * (proxy_server.c, proxy_worker_base_new); now they are closed.
 */
static void
proxy_conn_unlisten_close_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct proxy_worker	*w = arg;
	size_t			 i;

	(void)fd;
	(void)ev;
	pthread_mutex_lock(&proxy_listeners_mtx);
	for (i = 0; i < proxy_nlisteners; i++) {
		struct proxy_listener *l = &proxy_listeners[i];

		if (l->w != w || l->lev == NULL || !l->closing)
			continue;
		evhttp_del_accept_socket(l->http, l->bound);
		l->lev = NULL;
	}
	pthread_mutex_unlock(&proxy_listeners_mtx);
}

/*
 * SIGTERM, after [server] drain, on w's own thread: w's listening
 * sockets stop accepting now and are closed a turn of the loop later
 * (proxy_conn_unlisten_close_cb; once every worker's socket is, the
 * kernel refuses new connections and the load balancer goes elsewhere at
 * once), and the connections not being served (idle, or still sending
 * a request head) are shut down.  evhttp sees each end as a client's
 * close and frees it; a connection whose request is being served closes
 * after the reply (proxy_conn_complete_cb).  The trackers of
 * connections evhttp frees before their first request are not told:
 * proxy_conn_drain_sweep.
 */
void
proxy_conn_unlisten(struct proxy_worker *w)
{
	/* Not { 0, 0 }: event_base_once runs that in this very turn,
	 * before the changelist is applied. */
	const struct timeval	  later = { 0, 1 };
	struct proxy_conn	**waiting;
	size_t			  i, n;

	pthread_mutex_lock(&proxy_listeners_mtx);
	for (i = 0; i < proxy_nlisteners; i++) {
		struct proxy_listener *l = &proxy_listeners[i];

		if (l->w != w || l->lev == NULL || l->closing)
			continue;
		evtimer_del(l->resume);
		evconnlistener_disable(l->lev);
		l->closing = 1;
	}
	pthread_mutex_unlock(&proxy_listeners_mtx);
	if (event_base_once(w->base, -1, EV_TIMEOUT,
	    proxy_conn_unlisten_close_cb, w, &later) != 0)
		proxy_conn_unlisten_close_cb(-1, EV_TIMEOUT, w);
	waiting = proxy_conn_collect(w, proxy_conn_waiting, &n);
	for (i = 0; i < n; i++)
		shutdown(waiting[i]->fd, SHUT_RDWR);
	free(waiting);
}

/* Draining: free the trackers of connections that are gone, so that
 * they are not counted (else each holds the drain to its deadline). */
void
proxy_conn_drain_sweep(struct proxy_worker *w)
{
	(void)proxy_conn_sweep(w);
}

static int
proxy_conn_any(const struct proxy_conn *pc)
{
	(void)pc;
	return 1;
}

/* At exit, after w's evhttp is freed: the trackers of connections that
 * ended unseen (the others went with their connections). */
void
proxy_conn_fini(struct proxy_worker *w)
{
	struct proxy_conn	**all;
	size_t			  i, n;

	all = proxy_conn_collect(w, proxy_conn_any, &n);
	for (i = 0; i < n; i++)
		proxy_conn_free(all[i]);
	free(all);
}
