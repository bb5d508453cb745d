/*
 * log.c — leveled logging to stderr, one write(2) per line so that lines
 * from worker threads never interleave.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/log.h"
#include "common/text.h"

static enum log_level	log_level = LOG_LEVEL_INFO;

static const char *const log_names[] = { "error", "warn", "info", "debug" };

void
log_set_level(enum log_level level)
{
	log_level = level;
}

int
log_level_parse(const char *s)
{
	size_t	i;

	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcasecmp(s, log_names[i]) == 0)
			return (int)i;
	return -1;
}

int
log_is_debug(void)
{
	return log_level >= LOG_LEVEL_DEBUG;
}

/*
 * Format the message, then escape it (common/text.h): arguments carry
 * client and upstream bytes, and a CR, LF or escape sequence in one
 * must never forge a log line or reach a terminal.
 */
size_t
log_vformat(char *line, enum log_level level, int with_errno,
    int saved_errno, const char *fmt, va_list ap)
{
	char		 msg[LOG_LINE_MAX / 2];
	struct timespec	 ts;
	struct tm	 tm;
	size_t		 n;
	int		 r;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, LOG_LINE_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, LOG_LINE_MAX - n, ".%03ldZ %s ",
	    ts.tv_nsec / 1000000, log_names[level]);
	if (r > 0)
		n += (size_t)r;
	r = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (r > 0)
		n += text_escape(line + n, LOG_LINE_MAX - n - 1, msg,
		    (size_t)r < sizeof(msg) ? (size_t)r : sizeof(msg) - 1);
	if (with_errno) {
		r = snprintf(line + n, LOG_LINE_MAX - n - 1, ": %s",
		    strerror(saved_errno));
		if (r > 0)
			n += (size_t)r;
		if (n >= LOG_LINE_MAX - 1)
			n = LOG_LINE_MAX - 2;
	}
	line[n++] = '\n';
	return n;
}

void
log_timestamp(char *buf, size_t len)
{
	struct timespec	 ts;
	struct tm	 tm;
	size_t		 n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void
log_line(enum log_level level, const char *s, size_t len)
{
	char	line[LOG_LINE_MAX];

	if (level > log_level)
		return;
	/* One write(2), as every line: lines of threads never mix. */
	if (len > LOG_LINE_MAX - 1)
		len = LOG_LINE_MAX - 1;
	memcpy(line, s, len);
	line[len++] = '\n';
	(void)!write(STDERR_FILENO, line, len);
}

static void
log_vwrite(enum log_level level, int with_errno, int saved_errno,
    const char *fmt, va_list ap)
{
	char	line[LOG_LINE_MAX];
	size_t	n;

	if (level > log_level)
		return;
	n = log_vformat(line, level, with_errno, saved_errno, fmt, ap);
	(void)!write(STDERR_FILENO, line, n);
}

#define LOG_FN(name, level, with_errno)					\
void									\
name(const char *fmt, ...)						\
{									\
	va_list	ap;							\
	int	saved = errno;						\
									\
	va_start(ap, fmt);						\
	log_vwrite(level, with_errno, saved, fmt, ap);			\
	va_end(ap);							\
	errno = saved;							\
}

LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_warn, LOG_LEVEL_WARN, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARN, 0)

void
log_ssl_errors(const char *prefix)
{
	unsigned long	e;
	char		buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_warnx("%s: %s", prefix, buf);
	}
}

void
fatal(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, 1, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, 0, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
