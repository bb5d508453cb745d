/*
 * sdnotify.h — telling systemd how a Type=notify service is doing
 * (sd_notify(3) through libsystemd, when configure found it; without it
 * every call is a no-op and the watchdog is off).
 *
 * Every message is one datagram to $NOTIFY_SOCKET; without that variable
 * (not under systemd) nothing is sent.  Any thread may call these: each
 * sd_notify() opens its own socket.  Errors are ignored: systemd's view of
 * the service is not worth failing a request or a shutdown for.
 */
#ifndef COMMON_SDNOTIFY_H
#define COMMON_SDNOTIFY_H

#include <stdint.h>

/* READY=1 with STATUS=fmt: the listeners are bound, requests are served. */
void	sdnotify_ready(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
/* STATUS=fmt alone: what `systemctl status` shows on its Status: line. */
void	sdnotify_status(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
/* RELOADING=1, MONOTONIC_USEC= and STATUS=reloading (SIGHUP); READY=1
 * (sdnotify_ready) ends the reload. */
void	sdnotify_reloading(void);
/* STOPPING=1 and STATUS=stopping: shutdown has begun; systemd stops the
 * watchdog and waits up to TimeoutStopSec. */
void	sdnotify_stopping(void);
/* WatchdogSec= in microseconds when systemd asks for WATCHDOG=1 pings
 * ($WATCHDOG_USEC, and $WATCHDOG_PID unset or ours), else 0. */
uint64_t sdnotify_watchdog_usec(void);
/* WATCHDOG=1: the service still works. */
void	sdnotify_watchdog(void);

#endif
