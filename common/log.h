/*
 * log.h — the tiny logging API (after OpenBSD's log.c).
 *
 * log_warn() appends strerror(errno); log_warnx() does not.  fatal() and
 * fatalx() log and exit(1).  Every line goes to stderr with a timestamp and
 * the level; callers put a request or connection id first ("r42: ...").
 * Thread-safe: one write(2) per line.
 */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* A line; the message part is escaped into at most ~half of it. */
#define LOG_LINE_MAX	8192

/* Set the threshold; lines above it are dropped. Default INFO. */
void	log_set_level(enum log_level level);
/* Parse "error|warn|info|debug"; -1 if unknown. */
int	log_level_parse(const char *s);
int	log_is_debug(void);

void	log_debug(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
void	log_warn(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));
/*
 * The line log_*() would write (timestamp, level, escaped message, ": "
 * and strerror(saved_errno) if with_errno, "\n") into line, which holds
 * LOG_LINE_MAX bytes; not NUL-terminated.  Returns its length.
 */
size_t	log_vformat(char *line, enum log_level level, int with_errno,
	    int saved_errno, const char *fmt, va_list ap)
	    __attribute__((format(printf, 5, 0)));
/*
 * s (len bytes, no newline) as a line of its own at level: no timestamp
 * and no escaping, for lines an encoder made safe (the JSON access log).
 */
void	log_line(enum log_level level, const char *s, size_t len);
/* Now as "2026-01-02T03:04:05.678Z" into buf (at least 32 bytes). */
void	log_timestamp(char *buf, size_t len);
/* Log every queued OpenSSL error with the given prefix. */
void	log_ssl_errors(const char *prefix);
void	fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
