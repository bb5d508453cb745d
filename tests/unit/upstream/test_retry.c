/*
 * test_retry.c — upstream/upstream_retry.c, the retry schedule of
 * upstream requests, on a fake clock: delays of 100 ms doubling plus a
 * jitter under 100 ms, at most 3 retries, none that would end past the
 * first_byte deadline, none for POST, PUT, PATCH or DELETE or for token
 * requests; one jitter per retry (the wait the deadline check approved is
 * the wait, so no retry starts at or past the deadline); then whole
 * requests that keep failing (refused at once, or slowly) replayed
 * attempt by attempt as upstream_fetch.c runs them.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <event2/http.h>

#include "tests/lib/tap.h"
#include "upstream/upstream_int.h"

static void
test_delay(void)
{
	static const uint32_t jitters[] = { 0, 1, 42, 99, 100, 199, 12345,
	    UINT32_MAX };
	long	lo, got;
	int	n, bad;
	size_t	i;
	uint32_t j;

	is_int(upstream_retry_delay(0, 0), 100, "retry 0: 100 ms");
	is_int(upstream_retry_delay(1, 0), 200, "retry 1: 200 ms");
	is_int(upstream_retry_delay(2, 0), 400, "retry 2: 400 ms");
	is_int(upstream_retry_delay(3, 0), 800, "retry 3: 800 ms");
	is_int(upstream_retry_delay(0, 99), 199, "jitter 99: +99 ms");
	is_int(upstream_retry_delay(0, 100), 100, "jitter 100: +0 ms");
	is_int(upstream_retry_delay(2, 12345), 445, "jitter 12345: +45 ms");
	is_int(upstream_retry_delay(1, UINT32_MAX), 295,
	    "jitter 2^32-1: +95 ms");
	for (n = 0; n < 3; n++)
		is_int(upstream_retry_delay(n + 1, 0),
		    2 * upstream_retry_delay(n, 0), "retry %d doubles retry %d",
		    n + 1, n);

	/* Whatever the jitter, [100 << n, (100 << n) + 100). */
	bad = 0;
	for (n = 0; n <= UPSTREAM_MAX_RETRIES; n++) {
		lo = 100L << n;
		for (i = 0; i < sizeof(jitters) / sizeof(jitters[0]); i++) {
			got = upstream_retry_delay(n, jitters[i]);
			if (got < lo || got >= lo + 100)
				bad++;
		}
		for (j = 0; j < 100000; j += 7) {
			got = upstream_retry_delay(n, j * 2654435761U);
			if (got < lo || got >= lo + 100)
				bad++;
		}
	}
	is_int(bad, 0, "every jitter keeps a delay within its 100 ms band");
}

static void
test_allowed(void)
{
	static const struct {
		const char		*what;
		enum evhttp_cmd_type	 method;
		int			 token, retries;
		long			 elapsed, deadline, delay;
		int			 want;
	} t[] = {
		{ "GET, first retry", EVHTTP_REQ_GET, 0, 0, 0, 30000, 100, 1 },
		{ "HEAD", EVHTTP_REQ_HEAD, 0, 0, 0, 30000, 100, 1 },
		{ "POST", EVHTTP_REQ_POST, 0, 0, 0, 30000, 100, 0 },
		{ "PUT", EVHTTP_REQ_PUT, 0, 0, 0, 30000, 100, 0 },
		{ "PATCH", EVHTTP_REQ_PATCH, 0, 0, 0, 30000, 100, 0 },
		{ "DELETE", EVHTTP_REQ_DELETE, 0, 0, 0, 30000, 100, 0 },
		{ "OPTIONS", EVHTTP_REQ_OPTIONS, 0, 0, 0, 30000, 100, 0 },
		{ "a token request", EVHTTP_REQ_GET, 1, 0, 0, 30000, 100, 0 },
		{ "a token request by POST", EVHTTP_REQ_POST, 1, 0, 0, 30000,
		    100, 0 },
		{ "after 1 retry", EVHTTP_REQ_GET, 0, 1, 500, 30000, 200, 1 },
		{ "after 2 retries", EVHTTP_REQ_GET, 0, 2, 900, 30000, 400, 1 },
		{ "after 3 retries", EVHTTP_REQ_GET, 0, 3, 1500, 30000, 800,
		    0 },
		{ "after 4 retries", EVHTTP_REQ_GET, 0, 4, 0, 30000, 100, 0 },
		/* The deadline: the wait must end before it. */
		{ "ends 1 ms before the deadline", EVHTTP_REQ_GET, 0, 0, 899,
		    1000, 100, 1 },
		{ "ends at the deadline", EVHTTP_REQ_GET, 0, 0, 900, 1000, 100,
		    0 },
		{ "ends past it", EVHTTP_REQ_GET, 0, 1, 29900, 30000, 200, 0 },
		{ "already past it", EVHTTP_REQ_GET, 0, 0, 31000, 30000, 100,
		    0 },
		{ "no deadline left at all", EVHTTP_REQ_GET, 0, 0, 0, 0, 100,
		    0 },
		{ "a 0 ms wait on another endpoint, in time", EVHTTP_REQ_GET,
		    0, 0, 999, 1000, 0, 1 },
	};
	size_t	i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		is_int(upstream_retry_allowed(t[i].method, t[i].token,
		    t[i].retries, t[i].elapsed, t[i].deadline, t[i].delay),
		    t[i].want, "%s: %s", t[i].what,
		    t[i].want ? "retried" : "not retried");
}

/*
 * upstream_retry_next is upstream_retry_delay and upstream_retry_allowed
 * for one jitter: the delay it approves is the one it returns, so a retry
 * that waits it starts before the deadline, whatever the jitter.
 */
static void
test_next(void)
{
	static const enum evhttp_cmd_type methods[] = { EVHTTP_REQ_GET,
	    EVHTTP_REQ_HEAD, EVHTTP_REQ_POST, EVHTTP_REQ_PUT };
	long	elapsed, got, delay;
	int	retries, token, late = 0, differs = 0, mi;
	uint32_t j;

	is_int(upstream_retry_next(EVHTTP_REQ_GET, 0, 0, 0, 30000, 42), 142,
	    "next: retry 0, jitter 42: 142 ms");
	is_int(upstream_retry_next(EVHTTP_REQ_GET, 0, 2, 0, 30000, 7), 407,
	    "next: retry 2, jitter 7: 407 ms");
	is_int(upstream_retry_next(EVHTTP_REQ_GET, 0, 3, 0, 30000, 0), -1,
	    "next: no 4th retry");
	is_int(upstream_retry_next(EVHTTP_REQ_POST, 0, 0, 0, 30000, 0), -1,
	    "next: POST is not retried");
	is_int(upstream_retry_next(EVHTTP_REQ_GET, 1, 0, 0, 30000, 0), -1,
	    "next: a token request is not retried");
	/* 850 ms in, a 1 s deadline: jitter 49 ends at 999, 50 at 1000. */
	is_int(upstream_retry_next(EVHTTP_REQ_GET, 0, 0, 850, 1000, 49), 149,
	    "next: a wait ending 1 ms before the deadline is approved");
	is_int(upstream_retry_next(EVHTTP_REQ_GET, 0, 0, 850, 1000, 50), -1,
	    "  one ending at it is not");

	/* Every case near a deadline, against the two functions it joins. */
	for (mi = 0; mi < 4; mi++)
	for (token = 0; token <= 1; token++)
	for (retries = 0; retries <= UPSTREAM_MAX_RETRIES + 1; retries++)
	for (elapsed = 0; elapsed <= 1000; elapsed += 7)
	for (j = 0; j < 2 * UPSTREAM_RETRY_JITTER_MS; j += 3) {
		got = upstream_retry_next(methods[mi], token, retries,
		    elapsed, 1000, j);
		delay = upstream_retry_delay(retries, j);
		if (got >= 0 && elapsed + got >= 1000)
			late++;
		if (got != (retries < UPSTREAM_MAX_RETRIES &&
		    upstream_retry_allowed(methods[mi], token, retries,
		    elapsed, 1000, delay) ? delay : -1))
			differs++;
	}
	is_int(late, 0, "next: no approved wait ends at or past the deadline");
	is_int(differs, 0, "next: the delay of the check, or -1 when refused");
}

/*
 * A request that fails every time, fail_ms after each attempt starts, on
 * a fake clock from 0: the start times of its attempts in starts[] (at
 * most 8), their number returned.  The loop is upstream_fetch.c's: on a
 * failure, ask upstream_retry_next with one jitter, then wait what it
 * approved.
 */
static int
run(enum evhttp_cmd_type method, int token, long fail_ms, long deadline_ms,
    const uint32_t *jitter, long *starts)
{
	long	now = 0, delay;
	int	retries = 0, n = 0;

	for (;;) {
		starts[n++] = now;
		now += fail_ms;
		delay = upstream_retry_next(method, token, retries, now,
		    deadline_ms, jitter[retries]);
		if (delay < 0 || n == 8)
			return n;
		now += delay;
		retries++;
	}
}

static void
test_schedule(void)
{
	static const uint32_t	jit[] = { 7, 42, 99, 0, 0 };
	static const uint32_t	none[] = { 0, 0, 0, 0, 0 };
	long			s[8];
	int			n;

	/* Refused at once (1 ms), a 30 s first_byte: all three retries. */
	n = run(EVHTTP_REQ_GET, 0, 1, 30000, jit, s);
	is_int(n, 4, "refused at once: 4 attempts (3 retries)");
	is_int(s[1], 1 + 107, "  the 2nd after 1 ms + 107 ms");
	is_int(s[2], s[1] + 1 + 242, "  the 3rd 1 ms + 242 ms later");
	is_int(s[3], s[2] + 1 + 499, "  the 4th 1 ms + 499 ms later");
	ok(s[3] + 1 < 1100, "  all over in %ld ms", s[3] + 1);

	/* Slow failures (5 s each) against a 12 s deadline. */
	n = run(EVHTTP_REQ_GET, 0, 5000, 12000, none, s);
	is_int(n, 3, "5 s failures, 12 s deadline: 3 attempts");
	is_int(s[1], 5100, "  the 2nd at 5.1 s");
	is_int(s[2], 10300, "  the 3rd at 10.3 s");

	/* A retry whose wait would end exactly at the deadline: none. */
	n = run(EVHTTP_REQ_GET, 0, 900, 1000, none, s);
	is_int(n, 1, "a wait ending at the deadline: no retry");
	n = run(EVHTTP_REQ_GET, 0, 899, 1000, none, s);
	is_int(n, 2, "  1 ms earlier: one retry");
	is_int(s[1], 999, "  starting at 999 ms");

	/* Each request kind. */
	n = run(EVHTTP_REQ_HEAD, 0, 1, 30000, jit, s);
	is_int(n, 4, "HEAD: retried as GET is");
	n = run(EVHTTP_REQ_POST, 0, 1, 30000, jit, s);
	is_int(n, 1, "POST: never retried");
	n = run(EVHTTP_REQ_PUT, 0, 1, 30000, jit, s);
	is_int(n, 1, "PUT: never retried");
	n = run(EVHTTP_REQ_PATCH, 0, 1, 30000, jit, s);
	is_int(n, 1, "PATCH: never retried");
	n = run(EVHTTP_REQ_GET, 1, 1, 30000, jit, s);
	is_int(n, 1, "a token request: never retried");

	/* A retry approved just in time starts in time: 850 ms failures,
	 * a 1 s deadline, jitter 49 (the wait ends at 999 ms). */
	{
		static const uint32_t edge[] = { 49, 0, 0, 0, 0 };

		n = run(EVHTTP_REQ_GET, 0, 850, 1000, edge, s);
		is_int(n, 2, "a retry approved 1 ms before the deadline");
		is_int(s[1], 999, "  starts at 999 ms, before it");
	}

	/* The longest a request can spend waiting between attempts. */
	{
		static const uint32_t worst[] = { 99, 99, 99, 99, 99 };

		n = run(EVHTTP_REQ_GET, 0, 0, 1000000, worst, s);
		is_int(n, 4, "worst jitter: still 3 retries");
		is_int(s[3], 100 + 200 + 400 + 3 * 99,
		    "  %d ms of waiting at most", 100 + 200 + 400 + 3 * 99);
	}
}

int
main(void)
{
	test_delay();
	test_allowed();
	test_next();
	test_schedule();
	return done_testing();
}
