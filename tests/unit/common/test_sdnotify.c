/*
 * test_sdnotify.c — the datagrams common/sdnotify.c sends to
 * $NOTIFY_SOCKET (a socket of the test's own), and $WATCHDOG_USEC /
 * $WATCHDOG_PID as sdnotify_watchdog_usec() reads them.  Built without
 * libsystemd (configure --without-systemd) the same calls must send
 * nothing and the watchdog must be off: the no-op build is compiled and
 * checked here too.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/sdnotify.h"
#include "tests/lib/tap.h"

static int	test_fd = -1;

/* The next datagram queued on the socket, or "" when there is none. */
static const char *
test_recv(void)
{
	static char	buf[1024];
	ssize_t		n;

	n = recv(test_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void
test_bind(char *dir, size_t dirlen)
{
	struct sockaddr_un	sun;

	snprintf(dir, dirlen, "%s/sdnotify.XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL)
		bail_out("mkdtemp");
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/n",
	    dir) >= sizeof(sun.sun_path))
		bail_out("socket path too long");
	if ((test_fd = socket(AF_UNIX, SOCK_DGRAM, 0)) == -1 ||
	    bind(test_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		bail_out("socket");
	setenv("NOTIFY_SOCKET", sun.sun_path, 1);
}

static void
test_messages(void)
{
	char	want[512], longer[400];
	int	sd = 0;

#ifdef HAVE_LIBSYSTEMD
	sd = 1;
#endif
	sdnotify_ready("serving with %d workers", 2);
	is_str(test_recv(), sd ? "READY=1\nSTATUS=serving with 2 workers" :
	    "", "READY=1 and the status, in one datagram");
	sdnotify_status("draining: %u connections", 3u);
	is_str(test_recv(), sd ? "STATUS=draining: 3 connections" : "",
	    "STATUS= alone");
	sdnotify_reloading();
	if (sd)
		ok(strncmp(test_recv(), "RELOADING=1\nMONOTONIC_USEC=", 27) ==
		    0, "RELOADING=1 with MONOTONIC_USEC=");
	else
		is_str(test_recv(), "", "no RELOADING=1");
	sdnotify_stopping();
	is_str(test_recv(), sd ? "STOPPING=1\nSTATUS=stopping" : "",
	    "STOPPING=1");
	sdnotify_watchdog();
	is_str(test_recv(), sd ? "WATCHDOG=1" : "", "WATCHDOG=1");
	/* A long status is cut, not dropped. */
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	sdnotify_status("%s", longer);
	snprintf(want, sizeof(want), "STATUS=%.255s", longer);
	is_str(test_recv(), sd ? want : "", "a long STATUS= is cut at 255");
	is_str(test_recv(), "", "nothing else was sent");
}

static void
test_watchdog(void)
{
	char		pid[32];
	uint64_t	on = 0;

#ifdef HAVE_LIBSYSTEMD
	on = 500000;
#endif
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	is_int((long long)sdnotify_watchdog_usec(), 0, "no WATCHDOG_USEC: off");
	setenv("WATCHDOG_USEC", "500000", 1);
	is_int((long long)sdnotify_watchdog_usec(), (long long)on,
	    "WATCHDOG_USEC=500000");
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	is_int((long long)sdnotify_watchdog_usec(), (long long)on,
	    "WATCHDOG_PID is ours");
	/* Another process's watchdog (a parent's, inherited): not ours. */
	snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	is_int((long long)sdnotify_watchdog_usec(), 0, "WATCHDOG_PID of "
	    "another process: off");
	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "0", 1);
	is_int((long long)sdnotify_watchdog_usec(), 0, "WATCHDOG_USEC=0: off");
}

int
main(void)
{
	char	dir[256], path[300];

	/* Not under systemd: every call is a harmless no-op. */
	unsetenv("NOTIFY_SOCKET");
	sdnotify_ready("serving");
	sdnotify_stopping();
	ok(1, "no NOTIFY_SOCKET: the calls return");
	test_bind(dir, sizeof(dir));
	test_messages();
	test_watchdog();
	close(test_fd);
	snprintf(path, sizeof(path), "%s/n", dir);
	unlink(path);
	rmdir(dir);
	return done_testing();
}
