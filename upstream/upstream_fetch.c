/*
 * upstream_fetch.c — one logical request to an upstream registry, as a
 * small state machine over evhttp exchanges.  r->state changes only in
 * upstream_req_set_state(), which aborts on a transition this table does
 * not list; upstream_req_next[] below is the same table as data, and
 * tests/unit/upstream/test_fetch.c holds it to this comment.
 *
 *	state		event			next
 *	NEW		started			begin
 *	QUEUE		a slot came free (from	begin (holding the slot: never
 *			the loop)		QUEUE again)
 *	QUEUE		[timeouts] queue	DONE (upstream_err_busy)
 *			passed
 *	RESOLVE		an address the		EXCHANGE (connected to that
 *			redirect policy allows	number)
 *			(upstream_policy.c)
 *	RESOLVE		no allowed address	DONE (upstream_err_policy)
 *	RESOLVE		name unknown, or	RETRY (next url first), or DONE
 *			[timeouts] connect	when none is left
 *			passed
 *	EXCHANGE	final response head	DELIVER (head cb)
 *	EXCHANGE	an interim 100 head	(stays: the next head is the
 *						answer)
 *	EXCHANGE	401 Bearer challenge,	TOKEN (a token request of its
 *			realm within the trust	own)
 *			boundary
 *	EXCHANGE	401 Basic, have		begin (with Basic)
 *			credentials
 *	EXCHANGE	3xx with Location	begin (new target, no
 *			(<= 5), the policy	Authorization off the
 *			allows			upstream's host)
 *	EXCHANGE	failed before any	RETRY (GET/HEAD while the
 *			response (refused,	deadline allows; next url
 *			reset, [timeouts]	first), or DONE (error)
 *			connect), or
 *			502/503/504 once its
 *			body is read
 *	EXCHANGE	3xx or realm the	DONE (upstream_err_policy)
 *			policy refuses
 *	EXCHANGE	head over		DONE (protocol, no retry)
 *			max_header_size or
 *			max_headers fields; a
 *			bad challenge, realm or
 *			Location; over 5
 *			redirects
 *	EXCHANGE	401 and no usable	DONE (upstream_err_auth)
 *			credentials
 *	EXCHANGE	not sent; failed after	DONE (error)
 *			a response began
 *	TOKEN		token reply parsed	begin (with the token)
 *	TOKEN		token service failed	DONE (upstream_err_auth)
 *	RETRY		its backoff passed	begin
 *	DELIVER		body bytes		(stays: data cb)
 *	DELIVER		end of body, or an	DONE
 *			error, a body over the
 *			cap, head cb -1
 *	QUEUE..DELIVER	upstream_req_cancel	DONE (upstream_err_cancelled)
 *	DONE		done cb called; r is freed when it returns (a cancel
 *			from inside it changes nothing)
 *
 * "begin" is upstream_req_exchange(): QUEUE while no exchange slot is free
 * ([upstream] max_connections), else EXCHANGE on an idle pooled
 * connection to the target, else RESOLVE (evdns looks the name up).  So
 * the transitions, from each state to the next:
 *
 *	NEW		QUEUE RESOLVE EXCHANGE
 *	QUEUE		RESOLVE EXCHANGE DONE
 *	RESOLVE		EXCHANGE RETRY DONE
 *	EXCHANGE	QUEUE RESOLVE EXCHANGE TOKEN RETRY DELIVER DONE
 *	TOKEN		QUEUE RESOLVE EXCHANGE DONE
 *	RETRY		QUEUE RESOLVE EXCHANGE DONE
 *	DELIVER		DONE
 *	DONE		-
 *
 * Everything runs on the worker's loop.  The owner's callbacks are never
 * called from inside upstream_req_start().
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/obj.h"
#include "common/text.h"
#include "common/wwwauth.h"
#include "common/xmalloc.h"
#include <openssl/err.h>
#include "upstream/upstream_int.h"

/* Bytes read at once from a plain upstream socket (upstream_req_topup). */
#define UPSTREAM_TOPUP	(256 * 1024)
/* This thread is in upstream_req_topup_cb: no topup from inside it. */
static _Thread_local int upstream_topup_depth;

#define UPSTREAM_MAX_REDIRECTS	5
#define UPSTREAM_TOKEN_MAX	(256 * 1024)
#define UPSTREAM_URL_BACKOFF	10	/* seconds an endpoint is skipped */

const char upstream_err_connect[] = "cannot connect";
const char upstream_err_timeout[] = "timed out";
const char upstream_err_reset[] = "connection lost mid-response";
const char upstream_err_protocol[] = "protocol error";
const char upstream_err_too_large[] = "response too large";
const char upstream_err_auth[] = "token service failed";
const char upstream_err_cancelled[] = "cancelled";
const char upstream_err_policy[] = "refused by the redirect policy";
const char upstream_err_busy[] = "too many requests to the upstream in "
    "progress";

/* What the deferred step event does next (in the state it names). */
enum upstream_step {
	UPSTREAM_STEP_NONE = 0,
	UPSTREAM_STEP_CONNECT,		/* RESOLVE: the target is resolved */
	UPSTREAM_STEP_FAIL,		/* EXCHANGE: it could not be sent */
	UPSTREAM_STEP_GO,		/* QUEUE: a slot came free */
};

/* What the end of an exchange leads to, decided when its head arrived. */
enum upstream_then {
	UPSTREAM_THEN_NONE = 0,		/* delivered, or no head yet */
	UPSTREAM_THEN_REDIRECT,		/* 3xx with Location */
	UPSTREAM_THEN_CHALLENGE,	/* 401 with WWW-Authenticate */
	UPSTREAM_THEN_RETRY,		/* 502/503/504, retry approved */
};

struct upstream_req {
	unsigned		 magic;
	enum upstream_req_state	 state;		/* upstream_req_set_state */
	struct upstream_worker	*w;
	struct upstream		*u;
	enum evhttp_cmd_type	 method;
	char			*repo;
	char			*accept;
	size_t			 buffer_max;
	upstream_head_f		 head_cb;
	upstream_data_f		 data_cb;
	upstream_done_f		 done_cb;
	void			*arg;

	struct upstream_url	 url;		/* current target */
	enum upstream_purpose	 purpose;	/* where it may be redirected */
	struct upstream_url	 realm_from;	/* token: the challenger */
	size_t			 url_idx;	/* which of u->urls */
	int			 send_auth;	/* target is the upstream */
	char			*authz;		/* Authorization value */
	unsigned		 cred_gen;	/* of the Basic in authz */
	int			 redirects;
	int			 auth_tries;
	int			 retries;
	long			 retry_ms;	/* the approved wait, or -1 */
	struct timespec		 started;	/* for the retry deadline */
	struct event		*retry_ev;
	struct event		*connect_ev;	/* [timeouts] connect */
	struct evdns_getaddrinfo_request *dns;	/* resolving the target */
	struct evutil_addrinfo	*ai;		/* ... its answer */
	int			 ai_err;
	enum upstream_step	 step;		/* deferred to step_ev */
	struct event		*step_ev;
	int			 hdr_refused;	/* too many header fields */
	int			 slot;		/* holds an exchange slot */
	int			 queued;	/* waiter is on the wait list */
	struct upstream_waiter	 waiter;
	struct event		*queue_ev;	/* [timeouts] queue */

	struct upstream_conn	*conn;
	struct evhttp_request	*hreq;
	int			 status;
	int			 got_response;
	/* An exchange not yet counted by status (metric_upstream_status) */
	int			 uncounted;
	enum upstream_then	 then;		/* 401/3xx/5xx we act upon */
	int			 too_large;
	int			 cancelled;
	int			 held;		/* upstream_req_hold */
	struct event		*topup_ev;	/* upstream_req_topup_cb */
	int			 herr;		/* evhttp error + 1, or 0 */
	/* The final response's, from DELIVER on (the accessors). */
	struct upstream_ratelimit rl;
	char			 retry_after[10];	/* "" or digits */
	char			*location;
	char			*challenge;
	struct evbuffer		*body;

	struct upstream_req	*child;		/* token request */
	char			*token_scope;

	int			 push;		/* scope pull,push; body */
	char			*ctype;		/* body's Content-Type */
	char			*crange;	/* body's Content-Range */
	char			*bdata;		/* body bytes, or */
	int			 bfd;		/* a file (-1: none) */
	uint64_t		 boff;
	size_t			 blen;
	char			 errmsg[512];
};

static void	upstream_req_exchange(struct upstream_req *);

static const char *
upstream_method_str(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	default:
		return "?";
	}
}

static int
upstream_url_same_host(const struct upstream_url *a,
    const struct upstream_url *b)
{
	return a->tls == b->tls && a->port == b->port &&
	    strcasecmp(a->host, b->host) == 0;
}

static const char *const upstream_req_state_names[] = {
	UPSTREAM_REQ_STATES(UPSTREAM_REQ_NAME)
};

const char *
upstream_req_state_str(enum upstream_req_state st)
{
	AN((unsigned)st < UPSTREAM_REQ_NSTATES);
	return upstream_req_state_names[st];
}

#define UPSTREAM_REQ_TO(st)	(1U << UPSTREAM_REQ_##st)
#define UPSTREAM_REQ_BEGIN						\
	(UPSTREAM_REQ_TO(QUEUE) | UPSTREAM_REQ_TO(RESOLVE) |		\
	UPSTREAM_REQ_TO(EXCHANGE))

/* The second table of the header comment: where each state may go. */
static const unsigned upstream_req_next[UPSTREAM_REQ_NSTATES] = {
	[UPSTREAM_REQ_NEW] = UPSTREAM_REQ_BEGIN,
	[UPSTREAM_REQ_QUEUE] = UPSTREAM_REQ_TO(RESOLVE) |
	    UPSTREAM_REQ_TO(EXCHANGE) | UPSTREAM_REQ_TO(DONE),
	[UPSTREAM_REQ_RESOLVE] = UPSTREAM_REQ_TO(EXCHANGE) |
	    UPSTREAM_REQ_TO(RETRY) | UPSTREAM_REQ_TO(DONE),
	[UPSTREAM_REQ_EXCHANGE] = UPSTREAM_REQ_BEGIN | UPSTREAM_REQ_TO(TOKEN) |
	    UPSTREAM_REQ_TO(RETRY) | UPSTREAM_REQ_TO(DELIVER) |
	    UPSTREAM_REQ_TO(DONE),
	[UPSTREAM_REQ_TOKEN] = UPSTREAM_REQ_BEGIN | UPSTREAM_REQ_TO(DONE),
	[UPSTREAM_REQ_RETRY] = UPSTREAM_REQ_BEGIN | UPSTREAM_REQ_TO(DONE),
	[UPSTREAM_REQ_DELIVER] = UPSTREAM_REQ_TO(DONE),
	[UPSTREAM_REQ_DONE] = 0,
};

int
upstream_req_transition_ok(enum upstream_req_state from,
    enum upstream_req_state to)
{
	if ((unsigned)from >= UPSTREAM_REQ_NSTATES ||
	    (unsigned)to >= UPSTREAM_REQ_NSTATES)
		return 0;
	return (upstream_req_next[from] & (1U << to)) != 0;
}

/*
 * Every change of r->state: one the table lists, or a bug (the request
 * would go on with timers, a connection or a slot it should not hold).
 */
static void
upstream_req_set_state(struct upstream_req *r, enum upstream_req_state to)
{
	if (!upstream_req_transition_ok(r->state, to)) {
		log_warnx("upstream %s: request %s -> %s is not in the state "
		    "table", r->u->cfg->name, upstream_req_state_str(r->state),
		    upstream_req_state_str(to));
		WRONG("upstream request state transition");
	}
	r->state = to;
}

/* The exchange under way ended with status (0: no response, as an
 * exchange ends that is retried, cancelled or given up before one). */
static void
upstream_req_count(struct upstream_req *r, int status)
{
	if (!r->uncounted)
		return;
	r->uncounted = 0;
	metric_upstream_status(r->u->idx, status);
}

static void
upstream_req_finish(struct upstream_req *r, const char *err)
{
	struct evbuffer	*body = NULL;

	if (r->state == UPSTREAM_REQ_DONE)
		return;		/* cancelled from inside its done callback */
	upstream_req_count(r, 0);
	upstream_req_set_state(r, UPSTREAM_REQ_DONE);
	if (err != NULL && r->errmsg[0] == '\0')
		snprintf(r->errmsg, sizeof(r->errmsg), "upstream %s: %s %s:%d",
		    r->u->cfg->name, err, r->url.host, r->url.port);
	if (err == NULL && r->buffer_max > 0)
		body = r->body;
	if (r->done_cb != NULL)
		r->done_cb(r, err, body, r->arg);
	upstream_url_fini(&r->url);
	upstream_url_fini(&r->realm_from);
	if (r->retry_ev != NULL)
		event_free(r->retry_ev);
	if (r->connect_ev != NULL)
		event_free(r->connect_ev);
	if (r->step_ev != NULL)
		event_free(r->step_ev);
	if (r->queue_ev != NULL)
		event_free(r->queue_ev);
	if (r->topup_ev != NULL)
		event_free(r->topup_ev);
	AZ(r->queued);
	if (r->slot) {
		r->slot = 0;
		upstream_slot_give(r->w, r->u);
	}
	if (r->ai != NULL)
		evutil_freeaddrinfo(r->ai);
	AZ(r->dns);
	if (r->body != NULL)
		evbuffer_free(r->body);
	free(r->repo);
	free(r->accept);
	free(r->authz);
	free(r->location);
	free(r->challenge);
	free(r->token_scope);
	free(r->ctype);
	free(r->crange);
	free(r->bdata);
	if (r->bfd >= 0)
		close(r->bfd);
	r->magic = 0;
	free(r);
}

static void	upstream_req_connect(struct upstream_req *);

static void
upstream_req_step_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct upstream_req	*r = arg;
	enum upstream_step	 step;

	(void)fd;
	(void)ev;
	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	step = r->step;
	r->step = UPSTREAM_STEP_NONE;
	switch (step) {
	case UPSTREAM_STEP_CONNECT:
		AN(r->state == UPSTREAM_REQ_RESOLVE);
		upstream_req_connect(r);
		break;
	case UPSTREAM_STEP_FAIL:
		AN(r->state == UPSTREAM_REQ_EXCHANGE);
		upstream_req_finish(r, upstream_err_connect);
		break;
	case UPSTREAM_STEP_GO:
		AN(r->state == UPSTREAM_REQ_QUEUE && r->slot);
		upstream_req_exchange(r);
		break;
	case UPSTREAM_STEP_NONE:
		break;
	}
}

/* Run step from the loop (an event owned by r: cancelled with it). */
static void
upstream_req_defer(struct upstream_req *r, enum upstream_step step)
{
	if (r->step_ev == NULL &&
	    (r->step_ev = event_new(upstream_worker_base(r->w), -1, 0,
	    upstream_req_step_cb, r)) == NULL)
		fatalx("event_new failed");
	r->step = step;
	event_active(r->step_ev, EV_TIMEOUT, 0);
}

/* The exchange is over: its connection back to the pool, its slot to
 * whoever waits. */
static void
upstream_req_put_conn(struct upstream_req *r, int broken)
{
	if (r->topup_ev != NULL)
		event_del(r->topup_ev);
	upstream_conn_put(r->conn, broken);
	r->conn = NULL;
	if (r->slot) {
		r->slot = 0;
		upstream_slot_give(r->w, r->u);
	}
}

/* upstream_slot_give handed us a slot: go on from the loop. */
static void
upstream_req_slot_cb(void *arg)
{
	struct upstream_req	*r = arg;

	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	r->queued = 0;
	r->slot = 1;
	evtimer_del(r->queue_ev);
	upstream_req_defer(r, UPSTREAM_STEP_GO);
}

/* Waited [timeouts] queue for a slot: 503 with Retry-After, upstream. */
static void
upstream_req_queue_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct upstream_req	*r = arg;

	(void)fd;
	(void)ev;
	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	upstream_slot_cancel(r->w, r->u, &r->waiter);
	r->queued = 0;
	snprintf(r->errmsg, sizeof(r->errmsg), "upstream %s: %ld s waiting "
	    "for one of its max_connections (%ld) to come free",
	    r->u->cfg->name, upstream_worker_queue_timeout(r->w),
	    r->u->cfg->max_connections);
	metric_inc(METRIC_UPSTREAM_QUEUE_TIMEOUTS);
	upstream_req_finish(r, upstream_err_busy);
}

/*
 * An exchange needs a slot ([upstream] max_connections); 0 got one, -1
 * queued (r goes on from upstream_req_slot_cb, or fails at the queue's
 * deadline).
 */
static int
upstream_req_slot(struct upstream_req *r)
{
	struct timeval	tv = { upstream_worker_queue_timeout(r->w), 0 };

	if (r->slot)
		return 0;
	if (upstream_slot_take(r->w, r->u) == 0) {
		r->slot = 1;
		return 0;
	}
	r->waiter.cb = upstream_req_slot_cb;
	r->waiter.arg = r;
	upstream_slot_wait(r->w, r->u, &r->waiter);
	r->queued = 1;
	upstream_req_set_state(r, UPSTREAM_REQ_QUEUE);
	if (r->queue_ev == NULL && (r->queue_ev = evtimer_new(
	    upstream_worker_base(r->w), upstream_req_queue_cb, r)) == NULL)
		fatalx("evtimer_new failed");
	evtimer_add(r->queue_ev, &tv);
	return -1;
}

/* Stop resolving or connecting (a timeout, a cancel). */
static void
upstream_req_stop_connecting(struct upstream_req *r)
{
	if (r->dns != NULL) {
		evdns_getaddrinfo_cancel(r->dns);
		r->dns = NULL;
	}
	if (r->step != UPSTREAM_STEP_NONE) {
		event_del(r->step_ev);
		r->step = UPSTREAM_STEP_NONE;
	}
	if (r->ai != NULL) {
		evutil_freeaddrinfo(r->ai);
		r->ai = NULL;
	}
}

static long
upstream_elapsed_ms(const struct timespec *since)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000 +
	    (now.tv_nsec - since->tv_nsec) / 1000000;
}

/*
 * Idempotent requests are retried with exponential backoff while the
 * retry deadline (first_byte) allows; a token request is not.  1 keeps
 * the approved delay, jitter included, for upstream_req_retry.
 */
static int
upstream_req_may_retry(struct upstream_req *r)
{
	r->retry_ms = upstream_retry_next(r->method, r->token_scope != NULL,
	    r->retries, upstream_elapsed_ms(&r->started),
	    upstream_worker_timeout(r->w) * 1000,
	    arc4random_uniform(UPSTREAM_RETRY_JITTER_MS));
	return r->retry_ms >= 0;
}

/* Mark the current endpoint down and move to the next one, if any. */
static void
upstream_req_failover(struct upstream_req *r)
{
	const struct upstream_url	*b;
	char				*pathq;

	if (!r->send_auth || r->u->nurls < 2 ||
	    !upstream_url_same_host(&r->url, &r->u->urls[r->url_idx]))
		return;
	upstream_url_mark_down(r->u, r->url_idx, UPSTREAM_URL_BACKOFF);
	r->url_idx = (r->url_idx + 1) % r->u->nurls;
	b = &r->u->urls[r->url_idx];
	pathq = xstrdup(r->url.pathq);
	upstream_url_fini(&r->url);
	r->url.tls = b->tls;
	r->url.port = b->port;
	r->url.host = xstrdup(b->host);
	r->url.pathq = pathq;
	log_info("upstream %s: failing over to %s:%d", r->u->cfg->name,
	    b->host, b->port);
}

static void
upstream_req_retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct upstream_req	*r = arg;

	(void)fd;
	(void)ev;
	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	AN(r->state == UPSTREAM_REQ_RETRY);
	upstream_req_exchange(r);
}

/* Only after upstream_req_may_retry said yes: its delay is the wait. */
static void
upstream_req_retry(struct upstream_req *r, const char *why)
{
	struct timeval	tv;
	long		ms = r->retry_ms;
	size_t		idx;

	AN(ms >= 0);
	r->retry_ms = -1;
	upstream_req_set_state(r, UPSTREAM_REQ_RETRY);
	r->retries++;
	metric_inc(METRIC_UPSTREAM_RETRIES);
	idx = r->url_idx;
	upstream_req_failover(r);
	if (r->url_idx != idx)
		ms = 0;		/* another endpoint: no reason to wait */
	log_info("upstream %s: %s, retry %d in %ld ms", r->u->cfg->name, why,
	    r->retries, ms);
	if (r->retry_ev == NULL)
		r->retry_ev = evtimer_new(upstream_worker_base(r->w),
		    upstream_req_retry_cb, r);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(r->retry_ev, &tv);
}

/* A RateLimit-* count: digits, then ";w=...", ',', ' ' or nothing. */
static int
upstream_ratelimit_count(const char *v, long *n)
{
	char	*end;

	*n = strtol(v, &end, 10);
	return end != v && (*end == '\0' || *end == ';' || *end == ',' ||
	    *end == ' ');
}

/*
 * RateLimit-* of any head, read once into *rl (for the accessors, if it
 * is the final one).  The floor that replication and prefetch obey counts
 * what every answer says (upstream_rate_remaining), with a warning when
 * it is nearly used up.
 */
static void
upstream_req_ratelimit_note(struct upstream_req *r, struct evkeyvalq *in,
    struct upstream_ratelimit *rl)
{
	const char	*v, *lim, *rst;
	long		 left, n;

	rl->remaining = rl->limit = -1;
	rl->reset = 0;
	lim = evhttp_find_header(in, "RateLimit-Limit");
	if (lim != NULL && upstream_ratelimit_count(lim, &n) && n >= 0)
		rl->limit = n;
	if ((rst = evhttp_find_header(in, "RateLimit-Reset")) != NULL &&
	    (n = strtol(rst, NULL, 10)) > 0)
		rl->reset = n;
	if ((v = evhttp_find_header(in, "RateLimit-Remaining")) == NULL)
		return;
	if (upstream_ratelimit_count(v, &left)) {
		rl->remaining = left < 0 ? 0 : left;
		atomic_store(&r->u->rl_reset, rl->reset);
		atomic_store(&r->u->rl_remaining, rl->remaining);
	}
	/* Not a count at all ("abc") reads as 0: warn, as for a real 0. */
	if (left <= 10)
		log_warnx("upstream %s: rate limit nearly used up: "
		    "RateLimit-Remaining %s, RateLimit-Limit %s",
		    r->u->cfg->name, v, lim != NULL ? lim : "?");
	else
		log_debug("upstream %s: RateLimit-Remaining %s",
		    r->u->cfg->name, v);
}

/*
 * Is this head one we act on ourselves (a redirect to follow, a challenge
 * to answer, a 5xx to retry) rather than the answer?  What it says is
 * kept for the end of the exchange, when its body has been drained.
 */
static enum upstream_then
upstream_req_then(struct upstream_req *r, struct evkeyvalq *in)
{
	const char	*v;

	switch (r->status) {
	case 301: case 302: case 303: case 307: case 308:
		if ((v = evhttp_find_header(in, "Location")) != NULL &&
		    r->method != EVHTTP_REQ_PUT &&
		    r->method != EVHTTP_REQ_POST &&
		    r->method != EVHTTP_REQ_PATCH) {
			free(r->location);
			r->location = xstrdup(v);
			return UPSTREAM_THEN_REDIRECT;
		}
		break;
	case 401:
		if (r->token_scope != NULL)	/* a token request itself */
			break;
		if (r->auth_tries < 2 && r->send_auth &&
		    (v = evhttp_find_header(in, "WWW-Authenticate")) != NULL) {
			free(r->challenge);
			r->challenge = xstrdup(v);
			return UPSTREAM_THEN_CHALLENGE;
		}
		break;
	}
	if ((r->status == 502 || r->status == 503 || r->status == 504) &&
	    upstream_req_may_retry(r))
		return UPSTREAM_THEN_RETRY;	/* maybe on the next url */
	return UPSTREAM_THEN_NONE;
}

/*
 * EXCHANGE -> DELIVER: the final head to the owner (and what it says
 * about coming back, rl and Retry-After, to the accessors); -1 stops the
 * body.
 */
static int
upstream_req_deliver(struct upstream_req *r, struct evkeyvalq *in,
    const struct upstream_ratelimit *rl)
{
	const char	*v;
	int64_t		 cl = -1;
	char		*end;

	upstream_req_set_state(r, UPSTREAM_REQ_DELIVER);
	r->rl = *rl;
	v = text_retry_after(evhttp_find_header(in, "Retry-After"));
	snprintf(r->retry_after, sizeof(r->retry_after), "%s",
	    v != NULL ? v : "");
	if ((v = evhttp_find_header(in, "Content-Length")) != NULL) {
		errno = 0;
		cl = strtoll(v, &end, 10);
		if (errno != 0 || end == v || *end != '\0' || cl < 0)
			cl = -1;
	}
	if (r->method == EVHTTP_REQ_HEAD && cl < 0)
		cl = -1;
	if (r->buffer_max > 0 && r->method != EVHTTP_REQ_HEAD && cl >= 0 &&
	    (uint64_t)cl > r->buffer_max) {
		r->too_large = 1;
		return -1;
	}
	if (r->head_cb != NULL &&
	    r->head_cb(r, r->status, in, cl, r->arg) != 0) {
		r->cancelled = 1;
		return -1;
	}
	return 0;
}

/* A response head (EXCHANGE): refused, interim, acted on, or delivered. */
static int
upstream_req_header_cb(struct evhttp_request *h, void *arg)
{
	struct upstream_req	*r = arg;
	struct evkeyval		*kv;
	long			 nhdr = 0;
	struct evkeyvalq	*in;
	struct upstream_ratelimit rl;

	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	AN(r->state == UPSTREAM_REQ_EXCHANGE);
	r->got_response = 1;
	r->status = evhttp_request_get_response_code(h);
	in = evhttp_request_get_input_headers(h);
	/* Their bytes are capped by evhttp (max_header_size); the count
	 * here, before anything looks at them. */
	TAILQ_FOREACH(kv, in, next)
		nhdr++;
	if (nhdr > r->u->cfg->max_headers) {
		snprintf(r->errmsg, sizeof(r->errmsg), "upstream %s sent %ld "
		    "header fields (the limit is %ld: max_headers)",
		    r->u->cfg->name, nhdr, r->u->cfg->max_headers);
		r->hdr_refused = 1;
		return -1;
	}
	if (log_is_debug()) {
		char p[512];

		text_url_for_log(p, sizeof(p), r->url.pathq);
		log_debug("upstream %s: %s %s:%d%s -> %d", r->u->cfg->name,
		    upstream_method_str(r->method), r->url.host, r->url.port,
		    p, r->status);
	}
	upstream_req_ratelimit_note(r, in, &rl);
	/*
	 * An interim 100 (never asked for: we send no Expect): evhttp reads
	 * the next head on the same request, and that one is the answer.
	 * evhttp adds its fields to these, so they go now: none of the
	 * interim's (a Content-Length, a Retry-After) may pass for the
	 * answer's.
	 */
	if (r->status == 100) {
		evhttp_clear_headers(in);
		return 0;
	}
	upstream_req_count(r, r->status);
	if ((r->then = upstream_req_then(r, in)) != UPSTREAM_THEN_NONE)
		return 0;
	return upstream_req_deliver(r, in, &rl);
}

/*
 * libevent 2.1 reads a plain socket 4 KiB per turn of the loop
 * (EVBUFFER_MAX_READ, whatever bufferevent_set_max_single_read says):
 * a body streamed from a plain-HTTP upstream (a registry on the LAN, a
 * region's primary mirror) would cost a turn, an ioctl and a readv per
 * 4 KiB.  So after each piece is delivered, what the kernel already
 * holds (FIONREAD, up to UPSTREAM_TOPUP) is read in one readv into the
 * connection's input, and evhttp is handed it from an event of the
 * request's own, later in this turn, as if its bufferevent had read it.
 * Nothing is read while the request is paused or held (its consumer is
 * queueing), nor while the input still holds bytes evhttp has not
 * taken; reading no more than the kernel holds leaves an EOF or an
 * error for the bufferevent's own next read.  The event goes with the
 * request's connection (upstream_req_put_conn) and with the request.
 * TLS connections read whole records already.
 */
static struct bufferevent *
upstream_req_plain_bev(struct upstream_req *r)
{
	struct bufferevent	*bev;

	if (r->conn == NULL || r->url.tls || r->held || r->cancelled ||
	    r->state != UPSTREAM_REQ_DELIVER)
		return NULL;
	bev = evhttp_connection_get_bufferevent(upstream_conn_evcon(r->conn));
	if (bev == NULL || (bufferevent_get_enabled(bev) & EV_READ) == 0 ||
	    bufferevent_getfd(bev) < 0)
		return NULL;
	return bev;
}

static void
upstream_req_topup_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct upstream_req	*r = arg;
	struct bufferevent	*bev;

	(void)fd;
	(void)ev;
	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	if ((bev = upstream_req_plain_bev(r)) == NULL ||
	    evbuffer_get_length(bufferevent_get_input(bev)) == 0)
		return;
	/* What this hands evhttp is not topped up again in this turn:
	 * the event would run again at once, and a fast upstream would
	 * keep the worker on this one body, away from every other client
	 * (measured: warm p99 20x idle during 4 cold fills).  The
	 * bufferevent's next read, a turn later, tops up again. */
	upstream_topup_depth++;
	bufferevent_trigger(bev, EV_READ, 0);	/* may finish and free r */
	upstream_topup_depth--;
}

/* Read up to want bytes into in; the bytes committed, or 0. */
static size_t
upstream_req_readin(struct evbuffer *in, evutil_socket_t fd, size_t want)
{
	struct evbuffer_iovec	 v[2];
	struct iovec		 iov[2];
	ssize_t			 got, left;
	int			 n, i;

	if ((n = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2)) <= 0)
		return 0;
	/* The space given may be more than asked for: read want. */
	for (i = 0, left = (ssize_t)want; i < n; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = (size_t)left < v[i].iov_len ? (size_t)left :
		    v[i].iov_len;
		left -= (ssize_t)iov[i].iov_len;
	}
	if ((got = readv(fd, iov, n)) <= 0)
		return 0;		/* nothing committed */
	for (i = 0, left = got; i < n && left > 0; i++) {
		if ((size_t)left < v[i].iov_len)
			v[i].iov_len = (size_t)left;
		left -= (ssize_t)v[i].iov_len;
	}
	return evbuffer_commit_space(in, v, i) == 0 ? (size_t)got : 0;
}

static void
upstream_req_topup(struct upstream_req *r)
{
	struct bufferevent	*bev;
	struct evbuffer		*in;
	evutil_socket_t		 fd;
	int			 avail = 0;
	size_t			 got;

	if (upstream_topup_depth > 0 ||
	    (bev = upstream_req_plain_bev(r)) == NULL)
		return;
	fd = bufferevent_getfd(bev);
	in = bufferevent_get_input(bev);
	if (evbuffer_get_length(in) > 0 || ioctl(fd, FIONREAD, &avail) != 0 ||
	    avail <= 0)
		return;
	if (r->topup_ev == NULL && (r->topup_ev = event_new(
	    upstream_worker_base(r->w), -1, 0, upstream_req_topup_cb,
	    r)) == NULL)
		return;
	/* A socket bufferevent keeps its input's end frozen but for its
	 * own reads; so do we. */
	evbuffer_unfreeze(in, 0);
	got = upstream_req_readin(in, fd, (size_t)avail < UPSTREAM_TOPUP ?
	    (size_t)avail : UPSTREAM_TOPUP);
	evbuffer_freeze(in, 0);
	if (got > 0)
		event_active(r->topup_ev, EV_TIMEOUT, 0);
}

static void
upstream_req_chunk_cb(struct evhttp_request *h, void *arg)
{
	struct upstream_req	*r = arg;
	struct evbuffer		*buf = evhttp_request_get_input_buffer(h);

	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	/* Not delivering: the body of a 3xx, 401 or 5xx we act on. */
	if (r->state != UPSTREAM_REQ_DELIVER || r->cancelled || r->too_large)
		return;		/* evhttp drains what we leave */
	if (r->buffer_max > 0) {
		if (evbuffer_get_length(r->body) + evbuffer_get_length(buf) >
		    r->buffer_max) {
			r->too_large = 1;
			return;
		}
		evbuffer_add_buffer(r->body, buf);
	} else if (r->data_cb != NULL) {
		r->data_cb(r, buf, r->arg);
		upstream_req_topup(r);
	}
}

static void
upstream_req_error_cb(enum evhttp_request_error e, void *arg)
{
	struct upstream_req	*r = arg;

	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	r->herr = (int)e + 1;
}

static void
upstream_token_done(struct upstream_req *t, const char *err,
    struct evbuffer *body, void *arg)
{
	struct upstream_req	*r = arg;
	char			*tok;
	long			 exp;
	int			 status = upstream_req_status(t);

	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	AN(r->state == UPSTREAM_REQ_TOKEN);
	r->child = NULL;
	if (err != NULL || status != 200 || body == NULL) {
		/* Unreachable or broken token service: the upstream is
		 * unavailable (502), not denying us (403). */
		if (status != 401 && status != 403)
			r->status = status;
		snprintf(r->errmsg, sizeof(r->errmsg),
		    "upstream %s: token service %s:%d failed: %s",
		    r->u->cfg->name, t->url.host, t->url.port,
		    err != NULL ? err : status == 401 || status == 403 ?
		    "credentials refused" : "bad status");
		log_warnx("%s (status %d)", r->errmsg, status);
		upstream_req_finish(r, upstream_err_auth);
		return;
	}
	tok = upstream_token_parse((const char *)evbuffer_pullup(body, -1),
	    evbuffer_get_length(body), &exp);
	if (tok == NULL) {
		snprintf(r->errmsg, sizeof(r->errmsg),
		    "upstream %s: token service %s:%d sent no usable token",
		    r->u->cfg->name, t->url.host, t->url.port);
		log_warnx("%s", r->errmsg);
		upstream_req_finish(r, upstream_err_auth);
		return;
	}
	upstream_token_put(r->u, t->token_scope, tok, exp, t->cred_gen);
	metric_inc(METRIC_UPSTREAM_TOKENS);
	free(r->authz);
	r->authz = tok;
	upstream_req_exchange(r);
}

/* "scope=A&scope=B" (each encoded) from "A B". */
static char *
upstream_scope_query(const char *scope)
{
	struct evbuffer	*b = evbuffer_new();
	const char	*s = scope, *sp;
	char		*one, *enc, *out;
	size_t		 n;

	while (*s != '\0') {
		while (*s == ' ')
			s++;
		if (*s == '\0')
			break;
		sp = strchr(s, ' ');
		n = sp != NULL ? (size_t)(sp - s) : strlen(s);
		one = xstrndup(s, n);
		enc = evhttp_encode_uri(one);
		evbuffer_add_printf(b, "%sscope=%s",
		    evbuffer_get_length(b) > 0 ? "&" : "", enc);
		free(enc);
		free(one);
		s += n;
	}
	n = evbuffer_get_length(b);
	out = xmalloc(n + 1);
	evbuffer_remove(b, out, n);
	out[n] = '\0';
	evbuffer_free(b);
	return out;
}

/* A token request that never started. */
static void
upstream_token_req_free(struct upstream_req *t)
{
	upstream_url_fini(&t->url);
	upstream_url_fini(&t->realm_from);
	free(t->repo);
	free(t->token_scope);
	evbuffer_free(t->body);
	t->magic = 0;
	free(t);
}

/*
 * Start a token request on the realm; it calls back upstream_token_done.
 * NULL, or the error sentinel when the realm is unusable or refused.
 */
static const char *
upstream_token_fetch(struct upstream_req *r, const struct wwwauth *wa,
    const char *scope)
{
	struct upstream_req	*t;
	char			*url, *esvc = NULL, *escope, why[300];

	/* Several scopes (a cross-repository mount asks for two) are one
	 * space-separated challenge parameter but repeated query ones. */
	escope = upstream_scope_query(scope);
	if (wa->service != NULL)
		esvc = evhttp_encode_uri(wa->service);
	xasprintf(&url, "%s%s%s%s%s", wa->realm,
	    strchr(wa->realm, '?') != NULL ? "&" : "?", escope,
	    esvc != NULL ? "&service=" : "", esvc != NULL ? esvc : "");
	free(escope);
	free(esvc);

	t = xcalloc(1, sizeof(*t));
	t->magic = UPSTREAM_REQ_MAGIC;
	t->bfd = -1;
	t->retry_ms = -1;
	t->rl.remaining = t->rl.limit = -1;
	t->w = r->w;
	t->u = r->u;
	t->method = EVHTTP_REQ_GET;
	t->repo = xstrdup(r->repo);
	t->buffer_max = UPSTREAM_TOKEN_MAX;
	t->body = evbuffer_new();
	t->done_cb = upstream_token_done;
	t->arg = r;
	t->token_scope = xstrdup(scope);
	t->purpose = UPSTREAM_PURPOSE_TOKEN;
	t->realm_from.tls = r->url.tls;
	t->realm_from.port = r->url.port;
	t->realm_from.host = xstrdup(r->url.host);
	if (upstream_url_parse(url, &t->url) != 0) {
		char l[256];

		text_url_for_log(l, sizeof(l), wa->realm);
		snprintf(r->errmsg, sizeof(r->errmsg),
		    "upstream %s: bad token realm '%s'", r->u->cfg->name, l);
		free(url);
		upstream_token_req_free(t);
		return upstream_err_protocol;
	}
	free(url);
	/*
	 * The realm's token comes back as Authorization, and it gets the
	 * credentials: whether or not there are any, it must be within the
	 * upstream's trust boundary (upstream_policy.c).
	 */
	if (!upstream_realm_allowed(r->u, &r->url, &t->url, why,
	    sizeof(why))) {
		snprintf(r->errmsg, sizeof(r->errmsg), "upstream %s: %s%s",
		    r->u->cfg->name, why, upstream_has_basic(r->u) ?
		    "; credentials not sent" : "");
		log_warnx("%s", r->errmsg);
		metric_inc(METRIC_UPSTREAM_REFUSED);
		upstream_token_req_free(t);
		return upstream_err_policy;
	}
	t->send_auth = 1;
	t->authz = upstream_basic_dup(r->u, &t->cred_gen);
	upstream_req_set_state(r, UPSTREAM_REQ_TOKEN);
	r->child = t;
	upstream_req_exchange(t);
	return NULL;
}

static void
upstream_req_challenge(struct upstream_req *r)
{
	struct wwwauth	 wa;
	char		*scope = NULL;
	const char	*terr;

	r->auth_tries++;
	if (wwwauth_parse(r->challenge, &wa) != 0) {
		snprintf(r->errmsg, sizeof(r->errmsg),
		    "upstream %s: malformed WWW-Authenticate", r->u->cfg->name);
		upstream_req_finish(r, upstream_err_protocol);
		return;
	}
	if (wa.scheme == WWWAUTH_BEARER && wa.realm != NULL) {
		if (wa.scope != NULL)
			scope = xstrdup(wa.scope);
		else
			xasprintf(&scope, "repository:%s:%s", r->repo,
			    r->push ? "pull,push" : "pull");
		if ((terr = upstream_token_fetch(r, &wa, scope)) != NULL)
			upstream_req_finish(r, terr);
	} else if (wa.scheme == WWWAUTH_BASIC && upstream_has_basic(r->u)) {
		r->u->wants_basic = 1;
		free(r->authz);
		r->authz = upstream_basic_dup(r->u, NULL);
		r->auth_tries = 2;	/* one try with Basic is enough */
		upstream_req_exchange(r);
	} else {
		snprintf(r->errmsg, sizeof(r->errmsg),
		    "upstream %s: authentication required and no usable "
		    "credentials", r->u->cfg->name);
		r->status = 401;
		upstream_req_finish(r, upstream_err_auth);
	}
	free(scope);
	wwwauth_fini(&wa);
}

static void
upstream_req_redirect(struct upstream_req *r)
{
	struct upstream_url	 nu;
	char			 why[300];

	if (++r->redirects > UPSTREAM_MAX_REDIRECTS) {
		snprintf(r->errmsg, sizeof(r->errmsg),
		    "upstream %s: more than %d redirects", r->u->cfg->name,
		    UPSTREAM_MAX_REDIRECTS);
		upstream_req_finish(r, upstream_err_protocol);
		return;
	}
	if (upstream_url_resolve(&r->url, r->location, &nu) != 0) {
		char l[256];

		text_url_for_log(l, sizeof(l), r->location);
		snprintf(r->errmsg, sizeof(r->errmsg),
		    "upstream %s: bad redirect Location '%s'",
		    r->u->cfg->name, l);
		upstream_req_finish(r, upstream_err_protocol);
		return;
	}
	if (!upstream_redirect_allowed(r->u, r->purpose, &r->url, &nu,
	    &r->realm_from, why, sizeof(why))) {
		snprintf(r->errmsg, sizeof(r->errmsg), "upstream %s: %s",
		    r->u->cfg->name, why);
		log_warnx("%s", r->errmsg);
		metric_inc(METRIC_UPSTREAM_REFUSED);
		upstream_url_fini(&nu);
		upstream_req_finish(r, upstream_err_policy);
		return;
	}
	log_debug("upstream %s: redirected to %s:%d", r->u->cfg->name,
	    nu.host, nu.port);
	upstream_url_fini(&r->url);
	r->url = nu;
	r->send_auth = upstream_url_same_host(&r->url,
	    &r->u->urls[r->url_idx]);
	if (r->method == EVHTTP_REQ_POST)
		r->method = EVHTTP_REQ_GET;
	upstream_req_exchange(r);
}

/* Say why a TLS connection failed (certificate, host name, protocol). */
static void
upstream_req_tls_error(struct upstream_req *r)
{
	struct bufferevent	*bev;
	unsigned long		 e;
	char			 buf[256];

	bev = evhttp_connection_get_bufferevent(upstream_conn_evcon(r->conn));
	if (bev == NULL || (e = bufferevent_get_openssl_error(bev)) == 0)
		return;
	ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(r->errmsg, sizeof(r->errmsg),
	    "upstream %s: TLS with %s:%d failed: %s", r->u->cfg->name,
	    r->url.host, r->url.port, buf);
	while (bufferevent_get_openssl_error(bev) != 0)
		;
}

static const char *
upstream_req_herr(struct upstream_req *r)
{
	if (r->herr == EVREQ_HTTP_TIMEOUT + 1)
		return upstream_err_timeout;
	if (!r->got_response)
		return upstream_err_connect;
	if (r->herr == EVREQ_HTTP_INVALID_HEADER + 1)
		return upstream_err_protocol;
	return upstream_err_reset;
}

/*
 * The target could not be reached before any response (its name did not
 * resolve): retried like a refused connection, on the next endpoint first.
 */
static void
upstream_req_connect_failed(struct upstream_req *r, const char *why)
{
	if (r->connect_ev != NULL)
		evtimer_del(r->connect_ev);
	if (upstream_req_may_retry(r)) {
		upstream_req_retry(r, why);
		return;
	}
	log_warnx("%s", r->errmsg);
	metric_inc(METRIC_UPSTREAM_ERRORS);
	if (r->send_auth && r->token_scope == NULL &&
	    upstream_url_same_host(&r->url, &r->u->urls[r->url_idx]))
		upstream_url_mark_down(r->u, r->url_idx, UPSTREAM_URL_BACKOFF);
	upstream_req_finish(r, upstream_err_connect);
}

/*
 * [timeouts] connect: libevent 2.1's client has one timeout for
 * everything, so a timer of our own gives up on a connection that is not
 * made (TCP, then TLS) in time: retried (the next endpoint first) while
 * the request may be, else a timeout.
 */
static void
upstream_req_connect_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct upstream_req	*r = arg;

	(void)fd;
	(void)ev;
	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	if (r->state == UPSTREAM_REQ_RESOLVE)
		upstream_req_stop_connecting(r);	/* DNS was too slow */
	else if (r->state != UPSTREAM_REQ_EXCHANGE || r->conn == NULL ||
	    r->hreq == NULL || r->got_response ||
	    upstream_conn_established(r->conn))
		return;
	else {
		evhttp_cancel_request(r->hreq);
		r->hreq = NULL;
		upstream_req_put_conn(r, 1);
	}
	if (upstream_req_may_retry(r)) {
		upstream_req_retry(r, "connect timed out");
		return;
	}
	snprintf(r->errmsg, sizeof(r->errmsg), "upstream %s: connecting to "
	    "%s:%d timed out after %ld s", r->u->cfg->name, r->url.host,
	    r->url.port, upstream_worker_connect_timeout(r->w));
	log_warnx("%s", r->errmsg);
	metric_inc(METRIC_UPSTREAM_ERRORS);
	if (r->send_auth && r->token_scope == NULL &&
	    upstream_url_same_host(&r->url, &r->u->urls[r->url_idx]))
		upstream_url_mark_down(r->u, r->url_idx, UPSTREAM_URL_BACKOFF);
	upstream_req_finish(r, upstream_err_timeout);
}

/* A misbehaving upstream, not a network fault: no retry. */
static void
upstream_req_bad_head(struct upstream_req *r)
{
	if (!r->hdr_refused)
		snprintf(r->errmsg, sizeof(r->errmsg), "upstream %s sent a "
		    "malformed response head, or one over %zu bytes "
		    "(max_header_size)", r->u->cfg->name,
		    r->u->cfg->max_header_size);
	log_warnx("%s", r->errmsg);
	metric_inc(METRIC_UPSTREAM_ERRORS);
	upstream_req_finish(r, upstream_err_protocol);
}

/* The exchange failed with err and is not tried again. */
static void
upstream_req_give_up(struct upstream_req *r, const char *err)
{
	char	p[512];

	text_url_for_log(p, sizeof(p), r->url.pathq);
	log_warnx("upstream %s: %s %s:%d%s: %s%s%s", r->u->cfg->name,
	    upstream_method_str(r->method), r->url.host, r->url.port, p, err,
	    r->errmsg[0] != '\0' ? ": " : "", r->errmsg);
	metric_inc(METRIC_UPSTREAM_ERRORS);
	/* A push body cut short (a 401 sent before it was read) says
	 * nothing about the endpoint's health. */
	if (!r->got_response && r->send_auth && !r->push &&
	    r->token_scope == NULL &&
	    upstream_url_same_host(&r->url, &r->u->urls[r->url_idx]))
		upstream_url_mark_down(r->u, r->url_idx, UPSTREAM_URL_BACKOFF);
	upstream_req_finish(r, err);
}

/* DELIVER: the answer's body is over, whole or not. */
static void
upstream_req_delivered(struct upstream_req *r, int failed)
{
	AZ(r->hdr_refused);	/* such a head is never delivered */
	if (r->cancelled)
		upstream_req_finish(r, upstream_err_cancelled);
	else if (r->too_large)
		upstream_req_finish(r, upstream_err_too_large);
	else if (r->herr == EVREQ_HTTP_INVALID_HEADER + 1)
		upstream_req_bad_head(r);
	else if (failed)
		upstream_req_give_up(r, upstream_req_herr(r));
	else
		upstream_req_finish(r, NULL);
}

/*
 * EXCHANGE: the exchange ended before an answer was delivered, failed or
 * with a head we act on (upstream_req_then), now that its body is read.
 */
static void
upstream_req_answered(struct upstream_req *r, int failed)
{
	enum upstream_then	 then = r->then;
	const char		*err;
	char			 why[32];

	/* Only a delivered head can be refused by size or by the owner. */
	AZ(r->cancelled);
	AZ(r->too_large);
	r->then = UPSTREAM_THEN_NONE;
	if (r->hdr_refused || r->herr == EVREQ_HTTP_INVALID_HEADER + 1) {
		upstream_req_bad_head(r);
		return;
	}
	if (failed) {
		err = upstream_req_herr(r);
		if (!r->got_response && upstream_req_may_retry(r))
			upstream_req_retry(r, err);
		else
			upstream_req_give_up(r, err);
		return;
	}
	switch (then) {
	case UPSTREAM_THEN_RETRY:
		snprintf(why, sizeof(why), "status %d", r->status);
		upstream_req_retry(r, why);
		return;
	case UPSTREAM_THEN_REDIRECT:
		upstream_req_redirect(r);
		return;
	case UPSTREAM_THEN_CHALLENGE:
		upstream_req_challenge(r);
		return;
	case UPSTREAM_THEN_NONE:
		break;
	}
	/* Complete, yet no final head (evhttp never does this). */
	upstream_req_finish(r, NULL);
}

static void
upstream_req_done_cb(struct evhttp_request *h, void *arg)
{
	struct upstream_req	*r = arg;
	int			 failed;

	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	AN(r->state == UPSTREAM_REQ_EXCHANGE ||
	    r->state == UPSTREAM_REQ_DELIVER);
	if (r->connect_ev != NULL)
		evtimer_del(r->connect_ev);
	failed = h == NULL || r->herr != 0 ||
	    evhttp_request_get_response_code(h) == 0;
	if (failed && r->url.tls && !r->got_response)
		upstream_req_tls_error(r);
	r->hreq = NULL;
	upstream_req_put_conn(r, failed);
	if (r->state == UPSTREAM_REQ_DELIVER)
		upstream_req_delivered(r, failed);
	else
		upstream_req_answered(r, failed);
}

/* The push body, again for every exchange (a 401 means resending it).
 * -1 if it cannot be attached (no Content-Length without its body). */
static int
upstream_req_add_body(struct upstream_req *r, struct evkeyvalq *out)
{
	struct evbuffer	*ob = evhttp_request_get_output_buffer(r->hreq);
	char		 len[32];
	int		 fd;

	if (r->method == EVHTTP_REQ_HEAD || r->method == EVHTTP_REQ_GET)
		return 0;
	if (r->blen > 0 && r->bdata != NULL)
		evbuffer_add(ob, r->bdata, r->blen);
	else if (r->blen > 0) {
		/* A file segment: sendfile on plain connections; never more
		 * than one chunk is mapped or read at a time. */
		if ((fd = fcntl(r->bfd, F_DUPFD_CLOEXEC, 0)) < 0)
			goto fail;
		if (evbuffer_add_file(ob, fd, (ev_off_t)r->boff,
		    (ev_off_t)r->blen) != 0) {
			close(fd);
			goto fail;
		}
	}
	snprintf(len, sizeof(len), "%zu", r->blen);
	evhttp_add_header(out, "Content-Length", len);
	if (r->ctype != NULL)
		evhttp_add_header(out, "Content-Type", r->ctype);
	if (r->crange != NULL)
		evhttp_add_header(out, "Content-Range", r->crange);
	return 0;
fail:
	snprintf(r->errmsg, sizeof(r->errmsg), "upstream %s: cannot attach "
	    "the request body: %s", r->u->cfg->name, strerror(errno));
	return -1;
}

/* Make the HTTP request on r->conn (a connection that passed policy). */
static void
upstream_req_send(struct upstream_req *r)
{
	struct evkeyvalq	*out;
	char			 host[300];
	int			 dflt;

	r->hreq = evhttp_request_new(upstream_req_done_cb, r);
	evhttp_request_set_header_cb(r->hreq, upstream_req_header_cb);
	evhttp_request_set_chunked_cb(r->hreq, upstream_req_chunk_cb);
	evhttp_request_set_error_cb(r->hreq, upstream_req_error_cb);
	out = evhttp_request_get_output_headers(r->hreq);
	dflt = r->url.port == (r->url.tls ? 443 : 80);
	if (strchr(r->url.host, ':') != NULL)
		snprintf(host, sizeof(host), dflt ? "[%s]" : "[%s]:%d",
		    r->url.host, r->url.port);
	else
		snprintf(host, sizeof(host), dflt ? "%s" : "%s:%d",
		    r->url.host, r->url.port);
	evhttp_add_header(out, "Host", host);
	evhttp_add_header(out, "User-Agent", PACKAGE_NAME "/" PACKAGE_VERSION);
	if (r->accept != NULL)
		evhttp_add_header(out, "Accept", r->accept);
	if (r->send_auth && r->authz != NULL)
		evhttp_add_header(out, "Authorization", r->authz);
	if ((r->push && upstream_req_add_body(r, out) != 0) ||
	    evhttp_make_request(upstream_conn_evcon(r->conn), r->hreq,
	    r->method, r->url.pathq) != 0) {
		if (r->hreq != NULL)
			evhttp_request_free(r->hreq);
		r->hreq = NULL;
		upstream_req_put_conn(r, 1);
		upstream_req_defer(r, UPSTREAM_STEP_FAIL);
	}
}

/* The first address of ai that the policy allows, else NULL (why set). */
static const struct sockaddr *
upstream_req_pick_addr(struct upstream_req *r, const struct evutil_addrinfo *ai,
    char *why, size_t whylen)
{
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;

	for (; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			sin = (struct sockaddr_in *)(void *)ai->ai_addr;
			sin->sin_port = htons((uint16_t)r->url.port);
		} else if (ai->ai_family == AF_INET6) {
			sin6 = (struct sockaddr_in6 *)(void *)ai->ai_addr;
			sin6->sin6_port = htons((uint16_t)r->url.port);
		} else
			continue;
		if (upstream_addr_allowed(r->u, r->purpose, &r->url,
		    ai->ai_addr, why, whylen))
			return ai->ai_addr;
	}
	return NULL;
}

/* Connect to the resolved target (r->ai), or fail as policy says. */
static void
upstream_req_connect(struct upstream_req *r)
{
	const struct sockaddr	*sa;
	char			 why[300] = "no usable address";

	if (r->ai_err != 0) {
		snprintf(r->errmsg, sizeof(r->errmsg), "upstream %s: cannot "
		    "resolve %s: %s", r->u->cfg->name, r->url.host,
		    evutil_gai_strerror(r->ai_err));
		upstream_req_connect_failed(r, "cannot resolve");
		return;
	}
	if ((sa = upstream_req_pick_addr(r, r->ai, why, sizeof(why))) == NULL) {
		snprintf(r->errmsg, sizeof(r->errmsg), "upstream %s: refused "
		    "to connect to %s:%d: %s", r->u->cfg->name, r->url.host,
		    r->url.port, why);
		log_warnx("%s", r->errmsg);
		metric_inc(METRIC_UPSTREAM_REFUSED);
		upstream_req_finish(r, upstream_err_policy);
		return;
	}
	r->conn = upstream_conn_open(r->w, r->u, &r->url, sa);
	evutil_freeaddrinfo(r->ai);
	r->ai = NULL;
	upstream_req_set_state(r, UPSTREAM_REQ_EXCHANGE);
	upstream_req_send(r);
}

static void
upstream_req_resolved_cb(int result, struct evutil_addrinfo *ai, void *arg)
{
	struct upstream_req	*r = arg;

	if (result == EVUTIL_EAI_CANCEL)
		return;		/* the canceller cleans up */
	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	r->dns = NULL;
	r->ai = ai;
	r->ai_err = result;
	/* Maybe called from inside evdns_getaddrinfo(): go on from the
	 * loop, never from under our caller. */
	upstream_req_defer(r, UPSTREAM_STEP_CONNECT);
}

/*
 * One HTTP exchange: on an idle pooled connection to the target, or on a
 * new one once the target's name is resolved (by us: the address is
 * checked by the redirect policy, then connected to as a number).
 */
static void
upstream_req_exchange(struct upstream_req *r)
{
	struct evutil_addrinfo	 hints;
	struct evdns_getaddrinfo_request *q;

	if (upstream_req_slot(r) != 0)
		return;
	r->status = 0;
	r->got_response = 0;
	r->herr = 0;
	r->errmsg[0] = '\0';
	r->then = UPSTREAM_THEN_NONE;
	if (r->body != NULL)
		evbuffer_drain(r->body, evbuffer_get_length(r->body));
	metric_inc(METRIC_UPSTREAM_REQUESTS);
	upstream_req_count(r, 0);
	r->uncounted = 1;
	if ((r->conn = upstream_conn_idle(r->w, r->u, &r->url)) != NULL) {
		upstream_req_set_state(r, UPSTREAM_REQ_EXCHANGE);
		upstream_req_send(r);
		return;
	}
	upstream_req_set_state(r, UPSTREAM_REQ_RESOLVE);
	if (upstream_worker_connect_timeout(r->w) > 0) {
		struct timeval ctv = {
			upstream_worker_connect_timeout(r->w), 0 };

		if (r->connect_ev == NULL)
			r->connect_ev = evtimer_new(upstream_worker_base(r->w),
			    upstream_req_connect_cb, r);
		evtimer_add(r->connect_ev, &ctv);
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	/* NULL when it answered at once (then the step is deferred). */
	q = evdns_getaddrinfo(upstream_worker_dns(r->w), r->url.host, NULL,
	    &hints, upstream_req_resolved_cb, r);
	r->dns = q;
}

static struct upstream_req *
upstream_req_new(struct upstream_worker *w, struct upstream *u,
    enum evhttp_cmd_type method, const char *path, const char *repo,
    const char *accept, size_t buffer_max, upstream_head_f head_cb,
    upstream_data_f data_cb, upstream_done_f done_cb, void *arg)
{
	struct upstream_req	*r;
	const struct upstream_url *b;

	CHECK_OBJ_NOTNULL(u, UPSTREAM_MAGIC);
	r = xcalloc(1, sizeof(*r));
	r->magic = UPSTREAM_REQ_MAGIC;
	r->w = w;
	r->u = u;
	r->method = method;
	r->repo = xstrdup(repo);
	r->accept = accept != NULL ? xstrdup(accept) : NULL;
	r->buffer_max = buffer_max;
	if (buffer_max > 0)
		r->body = evbuffer_new();
	r->head_cb = head_cb;
	r->data_cb = data_cb;
	r->done_cb = done_cb;
	r->arg = arg;
	clock_gettime(CLOCK_MONOTONIC, &r->started);
	r->retry_ms = -1;
	r->rl.remaining = r->rl.limit = -1;
	r->url_idx = upstream_url_pick(u);
	b = &u->urls[r->url_idx];
	r->url.tls = b->tls;
	r->url.port = b->port;
	r->url.host = xstrdup(b->host);
	r->url.pathq = xstrdup(path);
	r->purpose = upstream_purpose_of(path, repo);
	r->send_auth = 1;
	r->bfd = -1;
	return r;
}

/* Send what worked last time (token or Basic), saving a 401 round trip. */
static void
upstream_req_go(struct upstream_req *r)
{
	char	*scope;

	xasprintf(&scope, "repository:%s:%s", r->repo,
	    r->push ? "pull,push" : "pull");
	r->authz = upstream_token_get(r->u, scope);
	free(scope);
	if (r->authz == NULL && r->u->wants_basic)
		r->authz = upstream_basic_dup(r->u, NULL);
	upstream_req_exchange(r);
}

struct upstream_req *
upstream_req_start(struct upstream_worker *w, struct upstream *u,
    enum evhttp_cmd_type method, const char *path, const char *repo,
    const char *accept, size_t buffer_max, upstream_head_f head_cb,
    upstream_data_f data_cb, upstream_done_f done_cb, void *arg)
{
	struct upstream_req	*r;

	r = upstream_req_new(w, u, method, path, repo, accept, buffer_max,
	    head_cb, data_cb, done_cb, arg);
	upstream_req_go(r);
	return r;
}

struct upstream_req *
upstream_req_start_push(struct upstream_worker *w, struct upstream *u,
    enum evhttp_cmd_type method, const char *path, const char *repo,
    const char *accept, const struct upstream_body *body,
    upstream_head_f head_cb, upstream_done_f done_cb, void *arg)
{
	struct upstream_req	*r;

	r = upstream_req_new(w, u, method, path, repo, accept,
	    UPSTREAM_PUSH_REPLY_MAX, head_cb, NULL, done_cb, arg);
	r->push = 1;
	if (body != NULL) {
		if (body->content_type != NULL)
			r->ctype = xstrdup(body->content_type);
		if (body->content_range != NULL)
			r->crange = xstrdup(body->content_range);
		r->blen = body->len;
		if (body->fd >= 0) {
			r->bfd = fcntl(body->fd, F_DUPFD_CLOEXEC, 0);
			r->boff = body->offset;
		} else if (body->len > 0) {
			r->bdata = xmalloc(body->len);
			memcpy(r->bdata, body->data, body->len);
		}
	}
	upstream_req_go(r);
	return r;
}

void
upstream_req_cancel(struct upstream_req *r)
{
	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	if (r->child != NULL) {
		r->child->done_cb = NULL;
		upstream_req_cancel(r->child);
		r->child = NULL;
	}
	if (r->retry_ev != NULL)
		evtimer_del(r->retry_ev);
	if (r->connect_ev != NULL)
		evtimer_del(r->connect_ev);
	if (r->queued) {
		upstream_slot_cancel(r->w, r->u, &r->waiter);
		r->queued = 0;
	}
	upstream_req_stop_connecting(r);
	if (r->hreq != NULL) {
		evhttp_cancel_request(r->hreq);
		r->hreq = NULL;
		upstream_req_put_conn(r, 1);
	}
	upstream_req_finish(r, upstream_err_cancelled);
}

void
upstream_req_pause(struct upstream_req *r, int pause)
{
	struct bufferevent	*bev;

	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	if (r->conn == NULL || r->state == UPSTREAM_REQ_DONE)
		return;
	bev = evhttp_connection_get_bufferevent(upstream_conn_evcon(r->conn));
	if (pause)
		bufferevent_disable(bev, EV_READ);
	else {
		r->held = 0;
		bufferevent_enable(bev, EV_READ);
	}
}

void
upstream_req_hold(struct upstream_req *r, int hold)
{
	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	r->held = hold;
}

const char *
upstream_req_errmsg(const struct upstream_req *r)
{
	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	return r->errmsg;
}

int
upstream_req_status(const struct upstream_req *r)
{
	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	return r->status;
}

const char *
upstream_req_retry_after(const struct upstream_req *r)
{
	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	return r->retry_after[0] != '\0' ? r->retry_after : NULL;
}

int
upstream_req_ratelimit(const struct upstream_req *r,
    struct upstream_ratelimit *out)
{
	CHECK_OBJ_NOTNULL(r, UPSTREAM_REQ_MAGIC);
	*out = r->rl;
	return r->rl.remaining >= 0;
}
