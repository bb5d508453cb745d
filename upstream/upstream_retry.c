/*
 * upstream_retry.c — when an upstream request that failed before any
 * response byte is tried again, as arithmetic on numbers the caller
 * passes in (the clock's reading, the deadline, the random jitter), so
 * that tests/unit/upstream/test_retry.c can run the schedule on a fake
 * clock.  upstream_fetch.c owns the timers.
 *
 * Retry n (0-based) waits 100 ms << n plus a jitter under 100 ms (so a
 * burst of requests that failed together does not come back together):
 * 100-199, 200-299, 400-499 ms, at most UPSTREAM_MAX_RETRIES times, and
 * never when the wait would end past the request's deadline.  The jitter
 * is drawn once per retry (upstream_retry_next): the wait the deadline
 * check approved is the wait the timer gets.
 */
#include "autoconf.h"

#include <stdint.h>

#include <event2/http.h>

#include "common/obj.h"
#include "upstream/upstream_int.h"

long
upstream_retry_delay(int n, uint32_t jitter)
{
	/* A bound on the shift (n is at most UPSTREAM_MAX_RETRIES). */
	AN(n >= 0 && n <= 16);
	return (UPSTREAM_RETRY_BASE_MS << n) +
	    (long)(jitter % UPSTREAM_RETRY_JITTER_MS);
}

/*
 * Only GET and HEAD are idempotent enough to repeat on our own (a push's
 * POST, PATCH or PUT may have been applied); a token request is not
 * retried either: the request that needed it is, as a whole.
 */
int
upstream_retry_allowed(enum evhttp_cmd_type method, int is_token,
    int retries, long elapsed_ms, long deadline_ms, long next_delay_ms)
{
	if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD)
		return 0;
	if (is_token || retries >= UPSTREAM_MAX_RETRIES)
		return 0;
	return elapsed_ms + next_delay_ms < deadline_ms;
}

/*
 * One random number per retry: checking the deadline with one draw and
 * arming the timer with another let a retry start up to 99 ms later than
 * the check allowed, past the deadline.
 */
long
upstream_retry_next(enum evhttp_cmd_type method, int is_token, int retries,
    long elapsed_ms, long deadline_ms, uint32_t jitter)
{
	long	delay;

	if (retries >= UPSTREAM_MAX_RETRIES)
		return -1;
	delay = upstream_retry_delay(retries, jitter);
	return upstream_retry_allowed(method, is_token, retries, elapsed_ms,
	    deadline_ms, delay) ? delay : -1;
}
