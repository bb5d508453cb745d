/*
 * sdnotify.c — sd_notify(3) messages (see sdnotify.h).  Built with
 * HAVE_LIBSYSTEMD only when configure found libsystemd; otherwise these
 * are empty, so that callers need no #ifdef of their own.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "common/sdnotify.h"

/* A STATUS= text; longer ones are cut (systemd shows one line anyway). */
#define SDNOTIFY_STATUS_MAX	256

#ifdef HAVE_LIBSYSTEMD
/* head (READY=1\n, or "") then STATUS=fmt, as one datagram. */
static void
sdnotify_vsend(const char *head, const char *fmt, va_list ap)
{
	char	status[SDNOTIFY_STATUS_MAX];

	(void)vsnprintf(status, sizeof(status), fmt, ap);
	(void)sd_notifyf(0, "%sSTATUS=%s", head, status);
}
#endif

void
sdnotify_ready(const char *fmt, ...)
{
#ifdef HAVE_LIBSYSTEMD
	va_list	ap;

	va_start(ap, fmt);
	sdnotify_vsend("READY=1\n", fmt, ap);
	va_end(ap);
#else
	(void)fmt;
#endif
}

void
sdnotify_status(const char *fmt, ...)
{
#ifdef HAVE_LIBSYSTEMD
	va_list	ap;

	va_start(ap, fmt);
	sdnotify_vsend("", fmt, ap);
	va_end(ap);
#else
	(void)fmt;
#endif
}

void
sdnotify_reloading(void)
{
#ifdef HAVE_LIBSYSTEMD
	struct timespec	ts;

	/* Type=notify-reload (systemd 253) wants the time of the reload
	 * with RELOADING=1; older ones ignore it. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	(void)sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\n"
	    "STATUS=reloading", (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL);
#endif
}

void
sdnotify_stopping(void)
{
#ifdef HAVE_LIBSYSTEMD
	(void)sd_notify(0, "STOPPING=1\nSTATUS=stopping");
#endif
}

uint64_t
sdnotify_watchdog_usec(void)
{
#ifdef HAVE_LIBSYSTEMD
	uint64_t	usec = 0;

	if (sd_watchdog_enabled(0, &usec) > 0)
		return usec;
#endif
	return 0;
}

void
sdnotify_watchdog(void)
{
#ifdef HAVE_LIBSYSTEMD
	(void)sd_notify(0, "WATCHDOG=1");
#endif
}
