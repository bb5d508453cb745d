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
 * never when the wait would end past the request's deadline.
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
