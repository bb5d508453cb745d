/*
 * proxy_watchdog.c — the systemd watchdog (WatchdogSec=, $WATCHDOG_USEC).
 *
 * The main thread sends WATCHDOG=1 every half period while it waits for
 * its signals, but only while every worker loop runs
 * (proxy_workers_stalled), so that a stalled worker gets the process
 * restarted.  The wait is sigtimedwait() up to the next ping rather than
 * a timer thread: no thread is added, and a main thread stuck (in a
 * reload, say) stops the pings as well.  Without WatchdogSec it is a
 * plain sigwait().  Once SIGTERM has come the pings end: systemd stops
 * the watchdog when the unit leaves the running state (STOPPING=1).
 */
#include "autoconf.h"

#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/sdnotify.h"
#include "proxy/proxy_int.h"

static uint64_t
proxy_mono_usec(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void
proxy_watchdog_init(struct proxy_watchdog *wd, int nw)
{
	uint64_t	usec = sdnotify_watchdog_usec();

	memset(wd, 0, sizeof(*wd));
	wd->stalled = -1;
	wd->nw = nw;
	if (usec == 0)
		return;
	wd->half = usec > 1 ? usec / 2 : 1;
	log_info("systemd watchdog: WATCHDOG=1 every %llu ms while every "
	    "worker runs", (unsigned long long)(wd->half / 1000));
}

/*
 * When a ping is due: WATCHDOG=1 unless a worker has stalled.  While one
 * has, only the status line says so: the log may be what blocks the
 * workers (a full stderr), and this thread must not stop pinging for
 * that reason.  The log tells once the workers run again.
 */
static void
proxy_watchdog_tick(struct proxy_watchdog *wd, uint64_t now)
{
	int	w;

	if (now < wd->next)
		return;
	wd->next = now + wd->half;
	w = proxy_workers_stalled(PROXY_STALL_SECONDS);
	if (w >= 0 && wd->stalled < 0) {
		sdnotify_status("worker %d stalled: no watchdog pings", w);
		wd->since = now;
	} else if (w < 0 && wd->stalled >= 0) {
		sdnotify_status("serving with %d worker%s", wd->nw,
		    wd->nw == 1 ? "" : "s");
		log_warnx("watchdog: worker %d had not run for %d s: no "
		    "WATCHDOG=1 for %llu s; every worker runs again",
		    wd->stalled, PROXY_STALL_SECONDS,
		    (unsigned long long)((now - wd->since) / 1000000));
	}
	wd->stalled = w;
	if (w < 0)
		sdnotify_watchdog();
}

int
proxy_watchdog_sigwait(struct proxy_watchdog *wd, const sigset_t *set)
{
	struct timespec	ts;
	uint64_t	now, left;
	int		sig;

	if (wd->half == 0)
		return sigwait(set, &sig) == 0 ? sig : -1;
	now = proxy_mono_usec();
	proxy_watchdog_tick(wd, now);
	left = wd->next > now ? wd->next - now : 1;
	ts.tv_sec = (time_t)(left / 1000000);
	ts.tv_nsec = (long)(left % 1000000 * 1000);
	return sigtimedwait(set, NULL, &ts);	/* -1: EAGAIN, EINTR */
}
