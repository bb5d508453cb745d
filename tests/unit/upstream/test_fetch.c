/*
 * test_fetch.c — upstream/upstream_fetch.c: its state table, every pair
 * of states against the transitions its header comment lists (and what
 * follows from them: every state reached from NEW, DONE reached from
 * every state, nothing after DONE); then requests against a scripted
 * upstream on 127.0.0.1 (a listener of the test's own that answers each
 * request head it reads with the next response of a script, byte for
 * byte): an interim 100 is not the answer the owner is given, nor are
 * its fields (its Content-Length framed the answer's body); the
 * final response's Retry-After and RateLimit-* through the accessors, in
 * the head and the done callbacks, after a redirect, a retried 503 and a
 * Basic round (whose own headers never count), none when the request
 * failed before a final response, an HTTP-date or junk refused.
 */
#include "autoconf.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "common/config.h"
#include "common/xmalloc.h"
#include "tests/lib/tap.h"
#include "upstream/upstream_int.h"

#define S(st)	UPSTREAM_REQ_##st
#define NS	UPSTREAM_REQ_NSTATES

/* The second table of upstream_fetch.c's header comment, copied. */
static const struct {
	enum upstream_req_state	from;
	enum upstream_req_state	to[NS];
	int			n;
} want[] = {
	{ S(NEW), { S(QUEUE), S(RESOLVE), S(EXCHANGE) }, 3 },
	{ S(QUEUE), { S(RESOLVE), S(EXCHANGE), S(DONE) }, 3 },
	{ S(RESOLVE), { S(EXCHANGE), S(RETRY), S(DONE) }, 3 },
	{ S(EXCHANGE), { S(QUEUE), S(RESOLVE), S(EXCHANGE), S(TOKEN),
	    S(RETRY), S(DELIVER), S(DONE) }, 7 },
	{ S(TOKEN), { S(QUEUE), S(RESOLVE), S(EXCHANGE), S(DONE) }, 4 },
	{ S(RETRY), { S(QUEUE), S(RESOLVE), S(EXCHANGE), S(DONE) }, 4 },
	{ S(DELIVER), { S(DONE) }, 1 },
	{ S(DONE), { 0 }, 0 },		/* none */
};

static int
wanted(int from, int to)
{
	size_t	i;
	int	j;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if ((int)want[i].from == from)
			for (j = 0; j < want[i].n; j++)
				if ((int)want[i].to[j] == to)
					return 1;
	return 0;
}

/* The table's check with plain ints: the loops below count through
 * states, and one case is deliberately out of range. */
static int
tok(int from, int to)
{
	return upstream_req_transition_ok((enum upstream_req_state)from,
	    (enum upstream_req_state)to);
}

static void
test_table(void)
{
	static const char *const names[] = { "new", "queue", "resolve",
	    "exchange", "token", "retry", "deliver", "done" };
	int	from, to, bad = 0, changed, reach[NS];

	is_int(NS, 8, "8 states");
	is_int(sizeof(want) / sizeof(want[0]), NS, "  each with a row here");
	for (from = 0; from < NS; from++)
		is_str(upstream_req_state_str(
		    (enum upstream_req_state)from), names[from],
		    "state %d is %s", from, names[from]);
	for (from = 0; from < NS; from++)
		for (to = 0; to < NS; to++)
			if (tok(from, to) != wanted(from, to)) {
				diag("%s -> %s: the code says %d",
				    names[from], names[to],
				    tok(from, to));
				bad++;
			}
	is_int(bad, 0, "all %d pairs as the header comment says", NS * NS);
	ok(!tok(S(DONE), S(DONE)) &&
	    !tok(S(DELIVER), S(DELIVER)),
	    "DONE and DELIVER never again");
	ok(!tok(NS, S(DONE)) &&
	    !tok(S(NEW), NS) &&
	    !tok(-1, S(DONE)),
	    "no state out of range");

	/* Every state is reachable from NEW. */
	memset(reach, 0, sizeof(reach));
	reach[S(NEW)] = 1;
	do {
		changed = 0;
		for (from = 0; from < NS; from++)
			for (to = 0; to < NS; to++)
				if (reach[from] && !reach[to] &&
				    tok(from, to))
					reach[to] = changed = 1;
	} while (changed);
	for (bad = 0, to = 0; to < NS; to++)
		bad += !reach[to];
	is_int(bad, 0, "every state is reached from NEW");

	/* DONE is reachable from every state (nothing is stuck). */
	memset(reach, 0, sizeof(reach));
	reach[S(DONE)] = 1;
	do {
		changed = 0;
		for (from = 0; from < NS; from++)
			for (to = 0; to < NS; to++)
				if (reach[to] && !reach[from] &&
				    tok(from, to))
					reach[from] = changed = 1;
	} while (changed);
	for (bad = 0, from = 0; from < NS; from++)
		bad += !reach[from];
	is_int(bad, 0, "DONE is reached from every state");
}

/*
 * The scripted upstream: responses in order, one per request head; its
 * open connections, freed at the end (pooled ones are still open then).
 */
#define FAKE_CONNS	64
static struct {
	const char *const	*script;
	size_t			 next;
	int			 requests;
	struct bufferevent	*conns[FAKE_CONNS];
} fake;

static void
fake_close(struct bufferevent *bev)
{
	size_t	i;

	for (i = 0; i < FAKE_CONNS; i++)
		if (fake.conns[i] == bev)
			fake.conns[i] = NULL;
	bufferevent_free(bev);
}

static void
fake_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_ptr	 end;

	(void)arg;
	for (;;) {
		end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		if (end.pos < 0)
			return;
		evbuffer_drain(in, (size_t)end.pos + 4);
		fake.requests++;
		if (fake.script[fake.next] == NULL) {
			/* Out of script: hang up, before any response. */
			fake_close(bev);
			return;
		}
		bufferevent_write(bev, fake.script[fake.next],
		    strlen(fake.script[fake.next]));
		fake.next++;
	}
}

static void
fake_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		fake_close(bev);
}

static void
fake_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct bufferevent	*bev;
	size_t			 i;

	(void)sa;
	(void)salen;
	(void)arg;
	bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
	    BEV_OPT_CLOSE_ON_FREE);
	for (i = 0; i < FAKE_CONNS && fake.conns[i] != NULL; i++)
		;
	if (i == FAKE_CONNS)
		bail_out("more than 64 connections to the fake upstream");
	fake.conns[i] = bev;
	bufferevent_setcb(bev, fake_read_cb, NULL, fake_event_cb, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* What the accessors said in one callback. */
struct said {
	char			 retry_after[16];	/* "(null)" for NULL */
	int			 counted;
	struct upstream_ratelimit rl;
};

/* What the owner's callbacks saw. */
struct seen {
	struct event_base	*base;
	int			 heads;
	int			 head_status;
	int			 fields;	/* in the head given */
	int			 dones;
	const char		*err;
	char			 body[256];
	struct said		 at_head, at_done;
};

static void
ask(const struct upstream_req *ur, struct said *d)
{
	const char	*ra = upstream_req_retry_after(ur);

	snprintf(d->retry_after, sizeof(d->retry_after), "%s",
	    ra != NULL ? ra : "(null)");
	d->counted = upstream_req_ratelimit(ur, &d->rl);
}

static int
t_head_cb(struct upstream_req *ur, int status, struct evkeyvalq *h,
    int64_t clen, void *arg)
{
	struct seen	*s = arg;

	struct evkeyval	*kv;

	(void)clen;
	s->heads++;
	s->head_status = status;
	ask(ur, &s->at_head);
	TAILQ_FOREACH(kv, h, next)
		s->fields++;
	return 0;
}

static void
t_done_cb(struct upstream_req *ur, const char *err, struct evbuffer *body,
    void *arg)
{
	struct seen	*s = arg;
	size_t		 n;

	s->dones++;
	s->err = err;
	ask(ur, &s->at_done);
	if (body != NULL) {
		n = evbuffer_get_length(body);
		if (n >= sizeof(s->body))
			n = sizeof(s->body) - 1;
		evbuffer_copyout(body, s->body, n);
		s->body[n] = '\0';
	}
	event_base_loopbreak(s->base);
}

static void
t_deadline_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	bail_out("a request did not finish within 10 s");
}

static struct event_base	*base;
static struct upstream_worker	*uw;
static struct upstream		*up, *up_basic;
static int			 fake_port;

/*
 * Run one buffered GET against script (head callback or not); what the
 * callbacks saw in *s.
 */
static void
fetch_on(struct upstream *u, const char *const *script, int with_head,
    struct seen *s)
{
	struct event	*deadline;
	struct timeval	 tv = { 10, 0 };

	fake.script = script;
	fake.next = 0;
	fake.requests = 0;
	memset(s, 0, sizeof(*s));
	s->base = base;
	deadline = evtimer_new(base, t_deadline_cb, NULL);
	evtimer_add(deadline, &tv);
	(void)upstream_req_start(uw, u, EVHTTP_REQ_GET,
	    "/v2/app/manifests/v1", "app", NULL, 4096,
	    with_head ? t_head_cb : NULL, NULL, t_done_cb, s);
	event_base_dispatch(base);
	event_free(deadline);
}

static void
fetch(const char *const *script, struct seen *s)
{
	fetch_on(up, script, 1, s);
}

static void
is_said(const struct said *d, const char *ra, int counted, long remaining,
    long limit, long reset, const char *where)
{
	is_str(d->retry_after, ra, "  %s: Retry-After %s", where, ra);
	is_int(d->counted, counted, "  %s: %s", where,
	    counted ? "a RateLimit-Remaining count" : "no count");
	ok(d->rl.remaining == remaining && d->rl.limit == limit &&
	    d->rl.reset == reset, "  %s: remaining %ld limit %ld reset %ld "
	    "(got %ld %ld %ld)", where, remaining, limit, reset,
	    d->rl.remaining, d->rl.limit, d->rl.reset);
}

/* Past a redirect and a retried 503, what the 429 at the end says. */
static void
test_final_only(void)
{
	static const char *const script[] = {
		"HTTP/1.1 307 Temporary Redirect\r\n"
		"Location: /v2/app/manifests/v2\r\nRetry-After: 30\r\n"
		"RateLimit-Limit: 60\r\nRateLimit-Remaining: 50;w=60\r\n"
		"RateLimit-Reset: 9\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
		"RateLimit-Remaining: 40\r\nContent-Length: 4\r\n\r\nbusy",
		"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
		"RateLimit-Limit: 100;w=21600\r\n"
		"RateLimit-Remaining: 0;w=21600\r\nRateLimit-Reset: 42\r\n"
		"Content-Length: 2\r\n\r\n{}",
		NULL
	};
	struct seen	s;
	long		reset = -1;

	fetch(script, &s);
	is_int(fake.requests, 3, "307, 503, 429: three requests");
	is_int(s.heads, 1, "  one head, the 429's");
	is_int(s.head_status, 429, "  429");
	ok(s.err == NULL, "  done without an error");
	is_said(&s.at_head, "7", 1, 0, 100, 42, "in head");
	is_said(&s.at_done, "7", 1, 0, 100, 42, "in done");
	is_int(upstream_rate_remaining(up, &reset), 0,
	    "  the upstream's floor counts the last answer");
	is_int(reset, 42, "  and its RateLimit-Reset");
}

/* A Basic round: the 401's headers are not the answer's. */
static void
test_basic_round(void)
{
	static const char *const script[] = {
		"HTTP/1.1 401 Unauthorized\r\n"
		"WWW-Authenticate: Basic realm=\"r\"\r\nRetry-After: 30\r\n"
		"RateLimit-Remaining: 5\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n"
		"Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
		"RateLimit-Remaining: lots\r\nRateLimit-Limit: many\r\n"
		"Content-Length: 2\r\n\r\nok",
		NULL
	};
	struct seen	s;

	fetch_on(up_basic, script, 1, &s);
	is_int(fake.requests, 2, "401 Basic, then 200: two requests");
	is_int(s.head_status, 200, "  the head is the 200's");
	is_said(&s.at_head, "(null)", 0, -1, -1, 0, "in head");
	is_said(&s.at_done, "(null)", 0, -1, -1, 0, "in done");
}

/* Buffered without a head callback: the accessors in done. */
static void
test_no_head_cb(void)
{
	static const char *const script[] = {
		"HTTP/1.1 404 Not Found\r\nRetry-After: 120\r\n"
		"RateLimit-Remaining: 12\r\nContent-Length: 0\r\n\r\n",
		NULL
	};
	struct seen	s;

	fetch_on(up, script, 0, &s);
	is_int(s.heads, 0, "no head callback");
	is_said(&s.at_done, "120", 1, 12, -1, 0, "in done");
}

/*
 * The token service fails: the request never had a final response, so
 * the 401's Retry-After and RateLimit are not reported.
 */
static void
test_no_final(void)
{
	static char	challenge[300];
	static const char *script[] = {
		challenge,
		"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 9\r\n"
		"Content-Length: 0\r\n\r\n",
		NULL
	};
	struct seen	s;

	snprintf(challenge, sizeof(challenge), "HTTP/1.1 401 Unauthorized\r\n"
	    "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:%d/token\","
	    "service=\"t\"\r\nRetry-After: 30\r\n"
	    "RateLimit-Remaining: 5\r\nContent-Length: 0\r\n\r\n",
	    fake_port);
	fetch(script, &s);
	is_int(fake.requests, 2, "401 Bearer, token service 503");
	ok(s.err == upstream_err_auth, "  done with upstream_err_auth");
	is_int(s.heads, 0, "  no head callback");
	is_said(&s.at_done, "(null)", 0, -1, -1, 0, "in done");
}

static void
test_interim_100(void)
{
	static const char *const script[] = {
		"HTTP/1.1 100 Continue\r\n\r\n"
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
		NULL
	};
	static const char *const fields[] = {
		"HTTP/1.1 100 Continue\r\nContent-Length: 1\r\n"
		"Retry-After: 5\r\nX-Interim: 1\r\n\r\n"
		"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnone",
		NULL
	};
	struct seen	s;

	fetch(script, &s);
	is_int(s.heads, 1, "100, then 200: the head callback once");
	is_int(s.head_status, 200, "  with the 200");
	ok(s.err == NULL, "  done without an error");
	is_str(s.body, "hi", "  and the 200's body");

	fetch(fields, &s);
	is_int(s.head_status, 404, "a 100 with fields, then 404: the 404");
	is_int(s.fields, 1, "  the head holds the 404's one field only");
	is_str(s.body, "none", "  its whole body (not the 100's length)");
	is_str(s.at_head.retry_after, "(null)",
	    "  no Retry-After: the 100's is not the answer's");
}

/*
 * [upstream] max_connections (128 here) shared out exactly between the
 * loops that talk to upstreams (the workers and the jobs' loop), each
 * with at least one.
 */
static void
test_slot_shares(const struct config *cfg, const struct upstream *u)
{
	struct upstream_worker	*w;
	unsigned		 idx, total = 0, got, lo = ~0U, hi = 0, i;

	for (idx = 0; idx < 3; idx++) {
		w = upstream_worker_new(base, cfg, 3, idx);
		for (got = 0; upstream_slot_take(w, u) == 0; got++)
			;
		for (i = 0; i < got; i++)
			upstream_slot_give(w, u);
		upstream_worker_free(w);
		total += got;
		lo = got < lo ? got : lo;
		hi = got > hi ? got : hi;
	}
	is_int(total, 128, "3 loops share max_connections 128 exactly");
	ok(hi - lo <= 1, "  evenly (%u to %u)", lo, hi);
	w = upstream_worker_new(base, cfg, 200, 199);
	for (got = 0; upstream_slot_take(w, u) == 0; got++)
		;
	for (i = 0; i < got; i++)
		upstream_slot_give(w, u);
	upstream_worker_free(w);
	is_int(got, 1, "more loops than max_connections: one each");
}

int
main(void)
{
	struct evconnlistener	*l;
	struct sockaddr_in	 sin;
	socklen_t		 slen = sizeof(sin);
	struct config		*cfg;
	size_t			 i;
	char			 err[256], *text;
	char			 pwfile[] = "/tmp/test_fetch.XXXXXX";
	int			 pw;

	test_table();

	base = event_base_new();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = evconnlistener_new_bind(base, fake_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (l == NULL || getsockname(evconnlistener_get_fd(l),
	    (struct sockaddr *)&sin, &slen) != 0)
		bail_out("cannot listen on 127.0.0.1");
	fake_port = ntohs(sin.sin_port);
	if ((pw = mkstemp(pwfile)) < 0 || write(pw, "pass\n", 5) != 5)
		bail_out("mkstemp");
	close(pw);
	xasprintf(&text, "[timeouts]\nconnect = 2s\nfirst_byte = 5s\n"
	    "[upstream \"test.example\"]\nurl = http://127.0.0.1:%d\n"
	    "default = yes\n"
	    "[upstream \"basic.example\"]\nurl = http://127.0.0.1:%d\n"
	    "username = user\npassword_file = %s\npublic = yes\n",
	    fake_port, fake_port, pwfile);
	if (config_load_string("test.conf", text, &cfg, err,
	    sizeof(err)) != 0)
		bail_out(err);
	free(text);
	unlink(pwfile);
	if (upstream_init_all(cfg) != 0 || (up = upstream_default()) == NULL ||
	    (up_basic = upstream_find("basic.example")) == NULL)
		bail_out("upstream_init_all");
	uw = upstream_worker_new(base, cfg, 1, 0);

	test_slot_shares(cfg, up);
	test_interim_100();
	test_final_only();
	test_basic_round();
	test_no_head_cb();
	test_no_final();

	upstream_worker_free(uw);
	upstream_fini_all();
	config_free(cfg);
	for (i = 0; i < FAKE_CONNS; i++)
		if (fake.conns[i] != NULL)
			fake_close(fake.conns[i]);
	evconnlistener_free(l);
	event_base_free(base);
	return done_testing();
}
