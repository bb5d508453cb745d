/*
 * config.c — load and validate mirror.conf (format in config.h).
 *
 * One pass over the text, line by line: a section header switches the
 * current section, a "key = value" line is looked up in config_keys[] and
 * applied at once, so every error carries the line that caused it.  Checks
 * that need a whole section (an [upstream] without url) are made when the
 * section ends and point at its header; checks that need the whole file
 * (no [upstream] at all) use line 0.  Secrets are read from password_file
 * while loading, so a daemon that started has everything it needs.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <regex.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/semver.h"
#include "common/xmalloc.h"

#define CONFIG_FILE_MAX		(1024 * 1024)
#define CONFIG_LINE_MAX		8192
#define CONFIG_SECRET_MAX	(64 * 1024)
#define CONFIG_DEFAULT_LISTEN	"0.0.0.0:5000"
#define CONFIG_DEFAULT_DIR	"/var/lib/regmirror"

enum config_section {
	CONFIG_SECT_NONE = 0,
	CONFIG_SECT_SERVER,
	CONFIG_SECT_CACHE,
	CONFIG_SECT_UPSTREAM,
	CONFIG_SECT_TIMEOUTS,
	CONFIG_SECT_REPLICATION,
};

static const char *const config_section_names[] = {
	[CONFIG_SECT_NONE] = "",
	[CONFIG_SECT_SERVER] = "server",
	[CONFIG_SECT_CACHE] = "cache",
	[CONFIG_SECT_UPSTREAM] = "upstream",
	[CONFIG_SECT_TIMEOUTS] = "timeouts",
	[CONFIG_SECT_REPLICATION] = "replication",
};

enum config_key_id {
	CONFIG_K_LISTEN,
	CONFIG_K_ADMIN_LISTEN,
	CONFIG_K_TLS_CERT,
	CONFIG_K_TLS_KEY,
	CONFIG_K_WORKERS,
	CONFIG_K_LOG_LEVEL,
	CONFIG_K_MAX_HEADER_SIZE,
	CONFIG_K_CACHE_DIR,
	CONFIG_K_MAX_SIZE,
	CONFIG_K_CACHE_TAG_TTL,
	CONFIG_K_TAG_MAX_AGE,
	CONFIG_K_MAX_NEGATIVE,
	CONFIG_K_GC_INTERVAL,
	CONFIG_K_GC_GRACE,
	CONFIG_K_URL,
	CONFIG_K_ALIASES,
	CONFIG_K_DEFAULT,
	CONFIG_K_USERNAME,
	CONFIG_K_PASSWORD_FILE,
	CONFIG_K_CA_FILE,
	CONFIG_K_TLS_VERIFY,
	CONFIG_K_UP_TAG_TTL,
	CONFIG_K_CONNECT,
	CONFIG_K_FIRST_BYTE,
	CONFIG_K_IDLE,
	CONFIG_K_TLS_LISTEN,
	CONFIG_K_REALMS,
	CONFIG_K_STALE_IF_ERROR,
	CONFIG_K_NEGATIVE_TTL,
	CONFIG_K_TAG_TTL_FOR,
	CONFIG_K_R_SOURCE,
	CONFIG_K_R_REPOS,
	CONFIG_K_R_EXCLUDE_REPOS,
	CONFIG_K_R_TAGS,
	CONFIG_K_R_EXCLUDE_TAGS,
	CONFIG_K_R_KEEP_NEWEST,
	CONFIG_K_R_PLATFORMS,
	CONFIG_K_R_INTERVAL,
	CONFIG_K_R_SEMVER,
	CONFIG_K_R_DELETE,
	CONFIG_K_R_DESTINATION,
	CONFIG_K_R_CHUNK_SIZE,
	CONFIG_K_R_CONCURRENCY,
	CONFIG_K_R_RATE_LIMIT_FLOOR,
	/* Bounds on what clients and upstreams can make the mirror hold. */
	CONFIG_K_MAX_CONNECTIONS,
	CONFIG_K_MAX_CONNECTIONS_PER_CLIENT,
	CONFIG_K_REQUEST_HEAD,
	CONFIG_K_TLS_HANDSHAKE,
	CONFIG_K_UP_MAX_HEADER_SIZE,
	CONFIG_K_UP_MAX_HEADERS,
	CONFIG_K_UP_REDIRECT_HOSTS,
	CONFIG_K_UP_ISOLATE,
	CONFIG_K_UP_MAX_FILLS,
	CONFIG_K_UP_MAX_CONNECTIONS,
	CONFIG_K_MAX_BLOB_SIZE,
	CONFIG_K_CACHE_MEMORY,
	CONFIG_K_LIST_TTL,
	CONFIG_K_QUEUE,
	CONFIG_K_SEND_BUFFER,
	CONFIG_K_MISS_LIMIT,
	CONFIG_K_MAX_FILLS_PER_CLIENT,
	/* Limits on jobs and runs (config_set_limit). */
	CONFIG_K_MAX_JOBS,
	CONFIG_K_MAX_JOB_IMAGES,
	CONFIG_K_MAX_JOB_PLATFORMS,
	CONFIG_K_R_MAX_REPOSITORIES,
	CONFIG_K_R_MAX_TAGS_PER_REPOSITORY,
	CONFIG_K_R_MAX_TAGS,
};

static const struct config_key {
	enum config_section	 section;
	const char		*name;
	int			 repeatable;	/* may appear more than once */
} config_keys[] = {
	[CONFIG_K_LISTEN] = { CONFIG_SECT_SERVER, "listen", 1 },
	[CONFIG_K_ADMIN_LISTEN] = { CONFIG_SECT_SERVER, "admin_listen", 0 },
	[CONFIG_K_TLS_CERT] = { CONFIG_SECT_SERVER, "tls_cert", 0 },
	[CONFIG_K_TLS_KEY] = { CONFIG_SECT_SERVER, "tls_key", 0 },
	[CONFIG_K_WORKERS] = { CONFIG_SECT_SERVER, "workers", 0 },
	[CONFIG_K_LOG_LEVEL] = { CONFIG_SECT_SERVER, "log_level", 0 },
	[CONFIG_K_MAX_HEADER_SIZE] = {
	    CONFIG_SECT_SERVER, "max_header_size", 0 },
	[CONFIG_K_CACHE_DIR] = { CONFIG_SECT_CACHE, "dir", 0 },
	[CONFIG_K_MAX_SIZE] = { CONFIG_SECT_CACHE, "max_size", 0 },
	[CONFIG_K_CACHE_TAG_TTL] = { CONFIG_SECT_CACHE, "tag_ttl", 0 },
	[CONFIG_K_TAG_MAX_AGE] = { CONFIG_SECT_CACHE, "tag_max_age", 0 },
	[CONFIG_K_MAX_NEGATIVE] = { CONFIG_SECT_CACHE, "max_negative", 0 },
	[CONFIG_K_GC_INTERVAL] = { CONFIG_SECT_CACHE, "gc_interval", 0 },
	[CONFIG_K_GC_GRACE] = { CONFIG_SECT_CACHE, "gc_grace", 0 },
	[CONFIG_K_URL] = { CONFIG_SECT_UPSTREAM, "url", 1 },
	[CONFIG_K_ALIASES] = { CONFIG_SECT_UPSTREAM, "aliases", 1 },
	[CONFIG_K_DEFAULT] = { CONFIG_SECT_UPSTREAM, "default", 0 },
	[CONFIG_K_USERNAME] = { CONFIG_SECT_UPSTREAM, "username", 0 },
	[CONFIG_K_PASSWORD_FILE] = { CONFIG_SECT_UPSTREAM, "password_file", 0 },
	[CONFIG_K_CA_FILE] = { CONFIG_SECT_UPSTREAM, "ca_file", 0 },
	[CONFIG_K_TLS_VERIFY] = { CONFIG_SECT_UPSTREAM, "tls_verify", 0 },
	[CONFIG_K_UP_TAG_TTL] = { CONFIG_SECT_UPSTREAM, "tag_ttl", 0 },
	[CONFIG_K_CONNECT] = { CONFIG_SECT_TIMEOUTS, "connect", 0 },
	[CONFIG_K_FIRST_BYTE] = { CONFIG_SECT_TIMEOUTS, "first_byte", 0 },
	[CONFIG_K_IDLE] = { CONFIG_SECT_TIMEOUTS, "idle", 0 },
	[CONFIG_K_TLS_LISTEN] = { CONFIG_SECT_SERVER, "tls_listen", 1 },
	[CONFIG_K_REALMS] = { CONFIG_SECT_UPSTREAM, "realms", 1 },
	[CONFIG_K_STALE_IF_ERROR] = {
	    CONFIG_SECT_UPSTREAM, "stale_if_error", 0 },
	[CONFIG_K_NEGATIVE_TTL] = { CONFIG_SECT_UPSTREAM, "negative_ttl", 0 },
	[CONFIG_K_TAG_TTL_FOR] = { CONFIG_SECT_UPSTREAM, "tag_ttl_for", 1 },
	[CONFIG_K_R_SOURCE] = { CONFIG_SECT_REPLICATION, "source", 0 },
	[CONFIG_K_R_REPOS] = { CONFIG_SECT_REPLICATION, "repositories", 1 },
	[CONFIG_K_R_EXCLUDE_REPOS] = {
	    CONFIG_SECT_REPLICATION, "exclude_repositories", 1 },
	[CONFIG_K_R_TAGS] = { CONFIG_SECT_REPLICATION, "tags", 1 },
	[CONFIG_K_R_EXCLUDE_TAGS] = {
	    CONFIG_SECT_REPLICATION, "exclude_tags", 1 },
	[CONFIG_K_R_KEEP_NEWEST] = {
	    CONFIG_SECT_REPLICATION, "keep_newest", 0 },
	[CONFIG_K_R_PLATFORMS] = { CONFIG_SECT_REPLICATION, "platforms", 1 },
	[CONFIG_K_R_INTERVAL] = { CONFIG_SECT_REPLICATION, "interval", 0 },
	[CONFIG_K_R_SEMVER] = { CONFIG_SECT_REPLICATION, "semver", 0 },
	[CONFIG_K_R_DELETE] = { CONFIG_SECT_REPLICATION, "delete", 0 },
	[CONFIG_K_R_DESTINATION] = {
	    CONFIG_SECT_REPLICATION, "destination", 0 },
	[CONFIG_K_R_CHUNK_SIZE] = { CONFIG_SECT_REPLICATION, "chunk_size", 0 },
	[CONFIG_K_R_CONCURRENCY] = {
	    CONFIG_SECT_REPLICATION, "concurrency", 0 },
	[CONFIG_K_R_RATE_LIMIT_FLOOR] = {
	    CONFIG_SECT_REPLICATION, "rate_limit_floor", 0 },
	[CONFIG_K_MAX_CONNECTIONS] = {
	    CONFIG_SECT_SERVER, "max_connections", 0 },
	[CONFIG_K_MAX_CONNECTIONS_PER_CLIENT] = {
	    CONFIG_SECT_SERVER, "max_connections_per_client", 0 },
	[CONFIG_K_REQUEST_HEAD] = { CONFIG_SECT_TIMEOUTS, "request_head", 0 },
	[CONFIG_K_TLS_HANDSHAKE] = {
	    CONFIG_SECT_TIMEOUTS, "tls_handshake", 0 },
	[CONFIG_K_UP_MAX_HEADER_SIZE] = {
	    CONFIG_SECT_UPSTREAM, "max_header_size", 0 },
	[CONFIG_K_UP_MAX_HEADERS] = { CONFIG_SECT_UPSTREAM, "max_headers", 0 },
	[CONFIG_K_UP_REDIRECT_HOSTS] = {
	    CONFIG_SECT_UPSTREAM, "redirect_hosts", 1 },
	[CONFIG_K_UP_ISOLATE] = { CONFIG_SECT_UPSTREAM, "isolate", 0 },
	[CONFIG_K_UP_MAX_FILLS] = { CONFIG_SECT_UPSTREAM, "max_fills", 0 },
	[CONFIG_K_UP_MAX_CONNECTIONS] = {
	    CONFIG_SECT_UPSTREAM, "max_connections", 0 },
	[CONFIG_K_MAX_BLOB_SIZE] = { CONFIG_SECT_CACHE, "max_blob_size", 0 },
	[CONFIG_K_CACHE_MEMORY] = { CONFIG_SECT_CACHE, "memory", 0 },
	[CONFIG_K_LIST_TTL] = { CONFIG_SECT_CACHE, "list_ttl", 0 },
	[CONFIG_K_QUEUE] = { CONFIG_SECT_TIMEOUTS, "queue", 0 },
	[CONFIG_K_SEND_BUFFER] = { CONFIG_SECT_SERVER, "send_buffer", 0 },
	[CONFIG_K_MISS_LIMIT] = {
	    CONFIG_SECT_SERVER, "miss_limit", 0 },
	[CONFIG_K_MAX_FILLS_PER_CLIENT] = {
	    CONFIG_SECT_SERVER, "max_fills_per_client", 0 },
	[CONFIG_K_MAX_JOBS] = { CONFIG_SECT_SERVER, "max_jobs", 0 },
	[CONFIG_K_MAX_JOB_IMAGES] = { CONFIG_SECT_SERVER, "max_job_images", 0 },
	[CONFIG_K_MAX_JOB_PLATFORMS] = {
	    CONFIG_SECT_SERVER, "max_job_platforms", 0 },
	[CONFIG_K_R_MAX_REPOSITORIES] = {
	    CONFIG_SECT_REPLICATION, "max_repositories", 0 },
	[CONFIG_K_R_MAX_TAGS_PER_REPOSITORY] = {
	    CONFIG_SECT_REPLICATION, "max_tags_per_repository", 0 },
	[CONFIG_K_R_MAX_TAGS] = { CONFIG_SECT_REPLICATION, "max_tags", 0 },
};
#define CONFIG_NKEYS	(sizeof(config_keys) / sizeof(config_keys[0]))

struct config_parser {
	const char		*cp_fname;
	unsigned long		 cp_line;
	char			*cp_err;
	size_t			 cp_errlen;
	struct config		*cp_cf;
	enum config_section	 cp_sect;
	struct config_upstream	*cp_up;		/* the current [upstream] */
	unsigned long		 cp_up_line;	/* ... and its header line */
	struct config_upstream	**cp_tail;
	unsigned char		 cp_seen[CONFIG_NKEYS];	/* keys given */
	unsigned long		 cp_cert_line;
	unsigned long		 cp_key_line;
	unsigned long		 cp_tls_listen_line;
	struct config_replication *cp_repl;	/* the current [replication] */
	struct config_replication **cp_repl_tail;
};

static int	config_error_at(struct config_parser *, unsigned long,
		    const char *, ...) __attribute__((format(printf, 3, 4)));

static int
config_error_at(struct config_parser *p, unsigned long line, const char *fmt,
    ...)
{
	va_list	ap;
	int	n;

	if (p->cp_err == NULL || p->cp_errlen == 0)
		return -1;
	n = snprintf(p->cp_err, p->cp_errlen, "%s:%lu: ", p->cp_fname, line);
	if (n >= 0 && (size_t)n < p->cp_errlen) {
		va_start(ap, fmt);
		vsnprintf(p->cp_err + n, p->cp_errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

#define config_error(p, ...)	config_error_at((p), (p)->cp_line, __VA_ARGS__)

static void	config_warning(struct config_parser *, unsigned long,
		    const char *, ...) __attribute__((format(printf, 3, 4)));

/* A warning ("FILE:LINE: warning: ..."), kept for the caller to show. */
static void
config_warning(struct config_parser *p, unsigned long line, const char *fmt,
    ...)
{
	struct config	*cf = p->cp_cf;
	char		 msg[512];
	char		*w;
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	xasprintf(&w, "%s:%lu: warning: %s", p->cp_fname, line, msg);
	cf->warnings = xreallocarray(cf->warnings, cf->nwarnings + 1,
	    sizeof(*cf->warnings));
	cf->warnings[cf->nwarnings++] = w;
}

static int
config_is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static int
config_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
config_is_hostchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    config_is_digit(c) || c == '.' || c == '-';
}

/* Trim whitespace at both ends, in place. */
static char *
config_trim(char *s)
{
	char	*e;

	while (config_is_ws(*s))
		s++;
	e = s + strlen(s);
	while (e > s && config_is_ws(e[-1]))
		*--e = '\0';
	return s;
}

static void
config_strv_add(char ***v, size_t *n, const char *s)
{
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[(*n)++] = xstrdup(s);
}

static void
config_strv_free(char **v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * Split a comma-separated list into trimmed, non-empty items.  NULL when
 * an item is empty ("a,,b", "a,").
 */
static char **
config_list_split(const char *value, size_t *np)
{
	char	**v = NULL, *copy, *s, *comma, *item;
	size_t	  n = 0;

	copy = s = xstrdup(value);
	for (;;) {
		if ((comma = strchr(s, ',')) != NULL)
			*comma = '\0';
		item = config_trim(s);
		if (*item == '\0') {
			config_strv_free(v, n);
			free(copy);
			return NULL;
		}
		config_strv_add(&v, &n, item);
		if (comma == NULL)
			break;
		s = comma + 1;
	}
	free(copy);
	*np = n;
	return v;
}

/* "1".."65535", digits only. */
static int
config_port_valid(const char *s, size_t len)
{
	unsigned long	port = 0;
	size_t		i;

	if (len == 0 || len > 5)
		return 0;
	for (i = 0; i < len; i++) {
		if (!config_is_digit(s[i]))
			return 0;
		port = port * 10 + (unsigned long)(s[i] - '0');
	}
	return port >= 1 && port <= 65535;
}

/* "[v6]" at s, of length len: an address inet_pton accepts. */
static int
config_v6_valid(const char *s, size_t len)
{
	char		buf[INET6_ADDRSTRLEN];
	struct in6_addr	a6;

	if (len < 3 || s[0] != '[' || s[len - 1] != ']' ||
	    len - 2 >= sizeof(buf))
		return 0;
	memcpy(buf, s + 1, len - 2);
	buf[len - 2] = '\0';
	return inet_pton(AF_INET6, buf, &a6) == 1;
}

/*
 * "host[:port]" or "[v6][:port]" of length len; need_port for listen
 * addresses, empty_host for ":port".
 */
static int
config_hostport_valid(const char *s, size_t len, int need_port,
    int empty_host)
{
	const char	*colon = NULL;
	size_t		 hlen, i;

	if (len > 0 && s[0] == '[') {
		for (hlen = 0; hlen < len && s[hlen] != ']'; hlen++)
			;
		if (hlen == len || !config_v6_valid(s, ++hlen))
			return 0;
		if (hlen < len && s[hlen] != ':')
			return 0;
		colon = hlen < len ? s + hlen : NULL;
	} else {
		for (i = 0; i < len && s[i] != ':'; i++)
			if (!config_is_hostchar(s[i]))
				return 0;
		hlen = i;
		colon = i < len ? s + i : NULL;
		if (hlen == 0 && !empty_host)
			return 0;
	}
	if (colon == NULL)
		return !need_port;
	return config_port_valid(colon + 1, len - (size_t)(colon + 1 - s));
}

/* A listen address: "host:port", "[v6]:port" or ":port". */
static int
config_listen_valid(const char *s)
{
	return config_hostport_valid(s, strlen(s), 1, 1);
}

/* An upstream name or alias: [A-Za-z0-9.-]+ with an optional :port. */
static int
config_registry_valid(const char *s)
{
	size_t	len = strlen(s);

	if (len == 0 || s[0] == '[')
		return 0;
	return config_hostport_valid(s, len, 0, 0);
}

/*
 * "http(s)://host[:port]" with an empty or "/" path; *out is the URL
 * without the trailing '/'.
 */
static int
config_url_parse(const char *s, char **out)
{
	const char	*auth, *slash;

	if (strncmp(s, "http://", 7) == 0)
		auth = s + 7;
	else if (strncmp(s, "https://", 8) == 0)
		auth = s + 8;
	else
		return -1;
	if ((slash = strchr(auth, '/')) == NULL)
		slash = auth + strlen(auth);
	else if (slash[1] != '\0')
		return -1;
	if (!config_hostport_valid(auth, (size_t)(slash - auth), 0, 0))
		return -1;
	*out = xstrndup(s, (size_t)(slash - s));
	return 0;
}

int
config_parse_duration(const char *s, long *seconds)
{
	unsigned long	v = 0, mult;

	if (s == NULL || !config_is_digit(*s))
		return -1;
	for (; config_is_digit(*s); s++) {
		if (v > ((unsigned long)LONG_MAX - (unsigned long)(*s - '0')) /
		    10)
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	switch (*s) {
	case '\0':
	case 's':
		mult = 1;
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = 86400;
		break;
	default:
		return -1;
	}
	if (*s != '\0' && s[1] != '\0')
		return -1;
	if (v > (unsigned long)LONG_MAX / mult)
		return -1;
	*seconds = (long)(v * mult);
	return 0;
}

int
config_parse_size(const char *s, uint64_t *bytes)
{
	static const struct {
		const char	*suffix;
		unsigned	 shift;
	} units[] = {
		{ "", 0 }, { "b", 0 },
		{ "k", 10 }, { "kb", 10 }, { "kib", 10 },
		{ "m", 20 }, { "mb", 20 }, { "mib", 20 },
		{ "g", 30 }, { "gb", 30 }, { "gib", 30 },
		{ "t", 40 }, { "tb", 40 }, { "tib", 40 },
	};
	uint64_t	v = 0;
	size_t		i;

	if (s == NULL || !config_is_digit(*s))
		return -1;
	for (; config_is_digit(*s); s++) {
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(s, units[i].suffix) != 0)
			continue;
		if (v > (UINT64_MAX >> units[i].shift))
			return -1;
		*bytes = v << units[i].shift;
		return 0;
	}
	return -1;
}

int
config_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t			 i;

	if (s == NULL)
		return -1;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/*
 * Read a secret file whole: at most CONFIG_SECRET_MAX bytes, no NUL, not
 * empty once one trailing newline ("\n" or "\r\n") is dropped.
 */
static int
config_read_secret(struct config_parser *p, const char *path, char **out)
{
	char	*buf;
	size_t	 len = 0;
	ssize_t	 n;
	int	 fd, saved;

	struct stat st;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return config_error(p, "cannot read password_file '%s': %s",
		    path, strerror(errno));
	if (fstat(fd, &st) == 0 && (st.st_mode & S_IROTH) != 0)
		config_warning(p, p->cp_line, "password_file '%s' is readable "
		    "by every user (chmod o-r)", path);
	buf = xmalloc(CONFIG_SECRET_MAX + 1);
	for (;;) {
		n = read(fd, buf + len, CONFIG_SECRET_MAX + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			saved = errno;
			close(fd);
			free(buf);
			return config_error(p,
			    "cannot read password_file '%s': %s", path,
			    strerror(saved));
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONFIG_SECRET_MAX) {
			close(fd);
			free(buf);
			return config_error(p,
			    "password_file '%s' is larger than %d bytes", path,
			    CONFIG_SECRET_MAX);
		}
	}
	close(fd);
	if (len > 0 && buf[len - 1] == '\n') {
		len--;
		if (len > 0 && buf[len - 1] == '\r')
			len--;
	}
	buf[len] = '\0';
	if (len == 0 || memchr(buf, '\0', len) != NULL) {
		free(buf);
		return config_error(p, "password_file '%s' is %s", path,
		    len == 0 ? "empty" : "binary (has a NUL byte)");
	}
	*out = buf;
	return 0;
}

static int
config_check_readable(struct config_parser *p, const char *key,
    const char *path)
{
	struct stat	st;
	int		fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return config_error(p, "cannot read %s '%s': %s", key, path,
		    strerror(errno));
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		return config_error(p, "cannot read %s '%s': not a file", key,
		    path);
	}
	close(fd);
	return 0;
}

static int
config_duration_key(struct config_parser *p, const char *key,
    const char *value, long min, long *out)
{
	long	v;

	if (config_parse_duration(value, &v) == -1)
		return config_error(p, "bad duration '%s' for %s", value, key);
	if (v < min)
		return config_error(p, "%s must be at least %lds, not '%s'",
		    key, min, value);
	*out = v;
	return 0;
}

/*
 * A whole number in [min, max]; errors name the key and the range.  With
 * auto_ok, "auto" is also accepted (by the caller) and the message says so.
 */
static int
config_long_key(struct config_parser *p, const char *key, const char *value,
    long min, long max, int auto_ok, long *out)
{
	long		 v = 0;
	const char	*c;

	for (c = value; config_is_digit(*c); c++)
		if (v <= max)
			v = v * 10 + (*c - '0');
	if (c == value || *c != '\0')
		return config_error(p, "bad number '%s' for %s (want %s%ld..%ld)",
		    value, key, auto_ok ? "auto or " : "", min, max);
	if (v > max || v < min)
		return config_error(p, "%s '%s' is out of range (%ld..%ld)",
		    key, value, min, max);
	*out = v;
	return 0;
}

/* config_long_key into an int. */
static int
config_int_key(struct config_parser *p, const char *key, const char *value,
    long min, long max, int auto_ok, int *out)
{
	long	v;

	if (config_long_key(p, key, value, min, max, auto_ok, &v) == -1)
		return -1;
	*out = (int)v;
	return 0;
}

/*
 * A comma-separated list appended to (*list, *nlist), every item checked
 * by valid; an error names the key, the item and what was wanted.
 */
static int
config_set_list(struct config_parser *p, const char *key, const char *value,
    int (*valid)(const char *), const char *noun, const char *want,
    char ***list, size_t *nlist)
{
	char	**v;
	size_t	  n, i;

	if ((v = config_list_split(value, &n)) == NULL)
		return config_error(p, "empty element in %s list '%s'", key,
		    value);
	for (i = 0; i < n; i++) {
		if (!valid(v[i])) {
			config_error(p, "bad %s %s '%s' (want %s)", key, noun,
			    v[i], want);
			config_strv_free(v, n);
			return -1;
		}
		config_strv_add(list, nlist, v[i]);
	}
	config_strv_free(v, n);
	return 0;
}

static int
config_set_listen(struct config_parser *p, const char *key,
    const char *value, char ***list, size_t *nlist)
{
	return config_set_list(p, key, value, config_listen_valid, "address",
	    "host:port, [v6]:port or :port", list, nlist);
}

static int
config_set_urls(struct config_parser *p, const char *value)
{
	struct config_upstream	 *up = p->cp_up;
	char			**v, *url;
	size_t			  n, i;

	if ((v = config_list_split(value, &n)) == NULL)
		return config_error(p, "empty element in url list '%s'", value);
	for (i = 0; i < n; i++) {
		if (config_url_parse(v[i], &url) == -1) {
			config_error(p, "bad url '%s' (want http(s)://host"
			    "[:port] with no path)", v[i]);
			config_strv_free(v, n);
			return -1;
		}
		up->urls = xreallocarray(up->urls, up->nurls + 1,
		    sizeof(*up->urls));
		up->urls[up->nurls++] = url;
	}
	config_strv_free(v, n);
	return 0;
}

static int
config_set_aliases(struct config_parser *p, const char *value)
{
	struct config_upstream	 *up = p->cp_up, *other;
	char			**v;
	size_t			  n, i;
	int			  rc = -1;

	if ((v = config_list_split(value, &n)) == NULL)
		return config_error(p, "empty element in aliases list '%s'",
		    value);
	for (i = 0; i < n; i++) {
		if (!config_registry_valid(v[i])) {
			config_error(p, "bad alias '%s' (want a registry host)",
			    v[i]);
			goto done;
		}
		/* The current upstream is already on the list. */
		if ((other = config_upstream_find(p->cp_cf, v[i])) != NULL) {
			config_error(p, "alias '%s' is already used by "
			    "upstream '%s'", v[i], other->name);
			goto done;
		}
		config_strv_add(&up->aliases, &up->naliases, v[i]);
	}
	rc = 0;
done:
	config_strv_free(v, n);
	return rc;
}

static int
config_set_default(struct config_parser *p, const char *value)
{
	struct config_upstream	*up;
	int			 b;

	if (config_parse_bool(value, &b) == -1)
		return config_error(p, "bad boolean '%s' for default", value);
	if (b && (up = config_upstream_default(p->cp_cf)) != NULL &&
	    up != p->cp_up)
		return config_error(p, "upstream '%s' cannot be default: "
		    "'%s' already is", p->cp_up->name, up->name);
	p->cp_up->is_default = b;
	return 0;
}

/*
 * Replication lists: repository globs, tag regexes (POSIX extended,
 * matched against the whole tag), platforms (os/arch[/variant]).
 */
static int
config_set_repl_list(struct config_parser *p, enum config_key_id id,
    const char *key, const char *value)
{
	struct config_replication *r = p->cp_repl;
	char		**v, ***list, *anchored;
	size_t		  n, i, *nlist;
	regex_t		  re;
	int		  rc = -1;

	switch (id) {
	case CONFIG_K_R_REPOS:
		list = &r->repos, nlist = &r->nrepos;
		break;
	case CONFIG_K_R_EXCLUDE_REPOS:
		list = &r->exclude_repos, nlist = &r->nexclude_repos;
		break;
	case CONFIG_K_R_TAGS:
		list = &r->tags, nlist = &r->ntags;
		break;
	case CONFIG_K_R_EXCLUDE_TAGS:
		list = &r->exclude_tags, nlist = &r->nexclude_tags;
		break;
	default:
		list = &r->platforms, nlist = &r->nplatforms;
		break;
	}
	if ((v = config_list_split(value, &n)) == NULL)
		return config_error(p, "empty element in %s list '%s'", key,
		    value);
	for (i = 0; i < n; i++) {
		if (id == CONFIG_K_R_TAGS || id == CONFIG_K_R_EXCLUDE_TAGS) {
			xasprintf(&anchored, "^(%s)$", v[i]);
			if (regcomp(&re, anchored, REG_EXTENDED | REG_NOSUB)
			    != 0) {
				free(anchored);
				config_error(p, "bad regular expression '%s' "
				    "for %s", v[i], key);
				goto done;
			}
			regfree(&re);
			free(anchored);
		} else if (id == CONFIG_K_R_PLATFORMS &&
		    strchr(v[i], '/') == NULL) {
			config_error(p, "bad platform '%s' (want os/arch or "
			    "os/arch/variant)", v[i]);
			goto done;
		}
		config_strv_add(list, nlist, v[i]);
	}
	rc = 0;
done:
	config_strv_free(v, n);
	return rc;
}

/* A list of registry hosts ("host" or "host:port"), appended to. */
static int
config_set_hostlist(struct config_parser *p, const char *key,
    const char *value, char ***list, size_t *nlist)
{
	return config_set_list(p, key, value, config_registry_valid, "host",
	    "host or host:port", list, nlist);
}

/*
 * The limits on what admin clients may start and what a source may make
 * a replication run hold: whole numbers in a range, no units.
 */
static int
config_set_limit(struct config_parser *p, enum config_key_id id,
    const char *key, const char *value)
{
	int	*out;
	long	 max;

	switch (id) {
	case CONFIG_K_MAX_JOBS:
		out = &p->cp_cf->max_jobs, max = 1024;
		break;
	case CONFIG_K_MAX_JOB_IMAGES:
		out = &p->cp_cf->max_job_images, max = 100000;
		break;
	case CONFIG_K_MAX_JOB_PLATFORMS:
		out = &p->cp_cf->max_job_platforms, max = 64;
		break;
	case CONFIG_K_R_MAX_REPOSITORIES:
		out = &p->cp_repl->max_repositories, max = 1000000;
		break;
	case CONFIG_K_R_MAX_TAGS_PER_REPOSITORY:
		out = &p->cp_repl->max_tags_per_repository, max = 1000000;
		break;
	default:
		out = &p->cp_repl->max_tags, max = 10000000;
		break;
	}
	return config_int_key(p, key, value, 1, max, 0, out);
}

/* Apply one key whose name and section have been checked. */
static int
config_set(struct config_parser *p, enum config_key_id id, const char *key,
    const char *value)
{
	struct config		*cf = p->cp_cf;
	struct config_upstream	*up = p->cp_up;
	uint64_t		 size;
	int			 level;

	switch (id) {
	case CONFIG_K_LISTEN:
		return config_set_listen(p, key, value, &cf->listen,
		    &cf->nlisten);
	case CONFIG_K_TLS_LISTEN:
		p->cp_tls_listen_line = p->cp_line;
		return config_set_listen(p, key, value, &cf->tls_listen,
		    &cf->ntls_listen);
	case CONFIG_K_R_SOURCE:
		if (!config_registry_valid(value))
			return config_error(p, "bad source '%s' (want the name "
			    "of an [upstream] section)", value);
		p->cp_repl->source = xstrdup(value);
		return 0;
	case CONFIG_K_R_REPOS:
	case CONFIG_K_R_EXCLUDE_REPOS:
	case CONFIG_K_R_TAGS:
	case CONFIG_K_R_EXCLUDE_TAGS:
	case CONFIG_K_R_PLATFORMS:
		return config_set_repl_list(p, id, key, value);
	case CONFIG_K_R_KEEP_NEWEST:
		return config_int_key(p, key, value, 1, 100000, 0,
		    &p->cp_repl->keep_newest);
	case CONFIG_K_R_INTERVAL:
		return config_duration_key(p, key, value, 1,
		    &p->cp_repl->interval);
	case CONFIG_K_R_SEMVER:
		if (semver_range_valid(value) != 0)
			return config_error(p, "bad semver range '%s' (e.g. "
			    "\">=1.2 <2\", \"^1.4\", \"~2.1.0\", \"1.x\")",
			    value);
		p->cp_repl->semver = xstrdup(value);
		return 0;
	case CONFIG_K_R_DELETE:
		if (config_parse_bool(value, &p->cp_repl->delete) == -1)
			return config_error(p, "bad boolean '%s' for %s",
			    value, key);
		return 0;
	case CONFIG_K_R_DESTINATION:
		if (!config_registry_valid(value))
			return config_error(p, "bad destination '%s' (want "
			    "the name of an [upstream] section)", value);
		p->cp_repl->destination = xstrdup(value);
		p->cp_repl->dest_line = p->cp_line;
		return 0;
	case CONFIG_K_R_CHUNK_SIZE:
		if (config_parse_size(value, &size) == -1)
			return config_error(p, "bad size '%s' for %s", value,
			    key);
		if (size < 64 * 1024 || size > UINT64_C(1) << 30)
			return config_error(p, "%s '%s' is out of range "
			    "(64K..1G)", key, value);
		p->cp_repl->chunk_size = size;
		return 0;
	case CONFIG_K_R_CONCURRENCY:
		return config_int_key(p, key, value, 1, 32, 0,
		    &p->cp_repl->concurrency);
	case CONFIG_K_R_RATE_LIMIT_FLOOR:
		return config_long_key(p, key, value, 0, 1000000, 0,
		    &p->cp_repl->rate_limit_floor);
	case CONFIG_K_MAX_JOBS:
	case CONFIG_K_MAX_JOB_IMAGES:
	case CONFIG_K_MAX_JOB_PLATFORMS:
	case CONFIG_K_R_MAX_REPOSITORIES:
	case CONFIG_K_R_MAX_TAGS_PER_REPOSITORY:
	case CONFIG_K_R_MAX_TAGS:
		return config_set_limit(p, id, key, value);
	case CONFIG_K_STALE_IF_ERROR:
		return config_duration_key(p, key, value, 0,
		    &up->stale_if_error);
	case CONFIG_K_NEGATIVE_TTL:
		return config_duration_key(p, key, value, 0,
		    &up->negative_ttl);
	case CONFIG_K_TAG_TTL_FOR: {
		char	**v, *colon;
		size_t	  n, i;
		long	  ttl;

		if ((v = config_list_split(value, &n)) == NULL)
			return config_error(p, "empty element in tag_ttl_for "
			    "list '%s'", value);
		for (i = 0; i < n; i++) {
			if ((colon = strrchr(v[i], ':')) == NULL ||
			    colon == v[i] ||
			    config_parse_duration(colon + 1, &ttl) == -1) {
				config_error(p, "bad tag_ttl_for entry '%s' "
				    "(want GLOB:DURATION, e.g. latest:1m)",
				    v[i]);
				config_strv_free(v, n);
				return -1;
			}
			*colon = '\0';
			config_strv_add(&up->ttl_globs, &up->nttl, v[i]);
			up->ttl_values = xreallocarray(up->ttl_values,
			    up->nttl, sizeof(*up->ttl_values));
			up->ttl_values[up->nttl - 1] = ttl;
		}
		config_strv_free(v, n);
		return 0;
	}
	case CONFIG_K_REALMS:
		return config_set_hostlist(p, key, value, &up->realms,
		    &up->nrealms);
	case CONFIG_K_ADMIN_LISTEN:
		if (!config_listen_valid(value))
			return config_error(p, "bad listen address '%s' for "
			    "admin_listen (want host:port, [v6]:port or :port)",
			    value);
		cf->admin_listen = xstrdup(value);
		return 0;
	case CONFIG_K_TLS_CERT:
	case CONFIG_K_TLS_KEY:
		if (*value == '\0')
			return config_error(p, "empty path for %s", key);
		if (id == CONFIG_K_TLS_CERT) {
			cf->tls_cert = xstrdup(value);
			p->cp_cert_line = p->cp_line;
		} else {
			cf->tls_key = xstrdup(value);
			p->cp_key_line = p->cp_line;
		}
		return 0;
	case CONFIG_K_WORKERS:
		if (strcmp(value, "auto") == 0) {
			cf->workers = 0;
			return 0;
		}
		return config_int_key(p, key, value, 1, 256, 1,
		    &cf->workers);
	case CONFIG_K_LOG_LEVEL:
		if ((level = log_level_parse(value)) == -1)
			return config_error(p, "bad log_level '%s' (want "
			    "error, warn, info or debug)", value);
		free(cf->log_level);
		cf->log_level = xstrdup(value);
		for (char *c = cf->log_level; *c != '\0'; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		return 0;
	case CONFIG_K_MAX_HEADER_SIZE:
		if (config_parse_size(value, &size) == -1)
			return config_error(p, "bad size '%s' for %s", value,
			    key);
		if (size < 1024 || size > 1024 * 1024)
			return config_error(p, "max_header_size '%s' is out "
			    "of range (1K..1M)", value);
		cf->max_header_size = (size_t)size;
		return 0;
	case CONFIG_K_CACHE_DIR:
		if (*value == '\0')
			return config_error(p, "empty path for dir");
		cf->cache_dir = xstrdup(value);
		return 0;
	case CONFIG_K_MAX_SIZE:
		if (config_parse_size(value, &cf->max_size) == -1)
			return config_error(p, "bad size '%s' for %s", value,
			    key);
		return 0;
	case CONFIG_K_CACHE_TAG_TTL:
		return config_duration_key(p, key, value, 0, &cf->tag_ttl);
	case CONFIG_K_TAG_MAX_AGE:
		return config_duration_key(p, key, value, 0, &cf->tag_max_age);
	case CONFIG_K_MAX_NEGATIVE:
		return config_long_key(p, key, value, 0, 10000000, 0,
		    &cf->max_negative);
	case CONFIG_K_GC_INTERVAL:
		return config_duration_key(p, key, value, 1, &cf->gc_interval);
	case CONFIG_K_GC_GRACE:
		return config_duration_key(p, key, value, 0, &cf->gc_grace);
	case CONFIG_K_URL:
		return config_set_urls(p, value);
	case CONFIG_K_ALIASES:
		return config_set_aliases(p, value);
	case CONFIG_K_DEFAULT:
		return config_set_default(p, value);
	case CONFIG_K_USERNAME:
		if (*value == '\0')
			return config_error(p, "empty username");
		up->username = xstrdup(value);
		return 0;
	case CONFIG_K_PASSWORD_FILE:
		if (config_read_secret(p, value, &up->password) == -1)
			return -1;
		up->password_file = xstrdup(value);
		return 0;
	case CONFIG_K_CA_FILE:
		if (config_check_readable(p, key, value) == -1)
			return -1;
		up->ca_file = xstrdup(value);
		return 0;
	case CONFIG_K_TLS_VERIFY:
		if (config_parse_bool(value, &up->tls_verify) == -1)
			return config_error(p, "bad boolean '%s' for %s",
			    value, key);
		return 0;
	case CONFIG_K_UP_TAG_TTL:
		return config_duration_key(p, key, value, 0, &up->tag_ttl);
	case CONFIG_K_CONNECT:
		return config_duration_key(p, key, value, 1,
		    &cf->connect_timeout);
	case CONFIG_K_FIRST_BYTE:
		return config_duration_key(p, key, value, 1,
		    &cf->first_byte_timeout);
	case CONFIG_K_IDLE:
		return config_duration_key(p, key, value, 1,
		    &cf->idle_timeout);
	case CONFIG_K_MAX_CONNECTIONS:
		if (strcmp(value, "auto") == 0) {
			cf->max_connections = 0;
			return 0;
		}
		return config_long_key(p, key, value, 1, 1000000, 1,
		    &cf->max_connections);
	case CONFIG_K_MAX_CONNECTIONS_PER_CLIENT:
		return config_long_key(p, key, value, 0, 1000000, 0,
		    &cf->max_connections_per_client);
	case CONFIG_K_REQUEST_HEAD:
		return config_duration_key(p, key, value, 1,
		    &cf->request_head_timeout);
	case CONFIG_K_TLS_HANDSHAKE:
		return config_duration_key(p, key, value, 1,
		    &cf->tls_handshake_timeout);
	case CONFIG_K_UP_MAX_HEADER_SIZE:
		if (config_parse_size(value, &size) == -1)
			return config_error(p, "bad size '%s' for %s", value,
			    key);
		if (size < 4096 || size > 1024 * 1024)
			return config_error(p, "%s '%s' is out of range "
			    "(4K..1M)", key, value);
		up->max_header_size = (size_t)size;
		return 0;
	case CONFIG_K_UP_MAX_HEADERS:
		return config_long_key(p, key, value, 10, 10000, 0,
		    &up->max_headers);
	case CONFIG_K_UP_REDIRECT_HOSTS:
		return config_set_hostlist(p, key, value, &up->redirect_hosts,
		    &up->nredirect_hosts);
	case CONFIG_K_UP_ISOLATE:
		if (config_parse_bool(value, &up->isolate) == -1)
			return config_error(p, "bad boolean '%s' for %s",
			    value, key);
		return 0;
	case CONFIG_K_UP_MAX_FILLS:
		return config_long_key(p, key, value, 1, 100000, 0,
		    &up->max_fills);
	case CONFIG_K_UP_MAX_CONNECTIONS:
		return config_long_key(p, key, value, 1, 100000, 0,
		    &up->max_connections);
	case CONFIG_K_MAX_BLOB_SIZE:
		if (config_parse_size(value, &cf->max_blob_size) == -1)
			return config_error(p, "bad size '%s' for %s", value,
			    key);
		if (cf->max_blob_size < 1024 * 1024)
			return config_error(p, "%s '%s' is out of range "
			    "(at least 1M)", key, value);
		return 0;
	case CONFIG_K_CACHE_MEMORY:
		if (config_parse_size(value, &cf->cache_memory) == -1)
			return config_error(p, "bad size '%s' for %s", value,
			    key);
		if (cf->cache_memory > (uint64_t)16 << 30)
			return config_error(p, "%s '%s' is out of range "
			    "(0..16G)", key, value);
		return 0;
	case CONFIG_K_LIST_TTL:
		return config_duration_key(p, key, value, 0, &cf->list_ttl);
	case CONFIG_K_QUEUE:
		return config_duration_key(p, key, value, 1,
		    &cf->queue_timeout);
	case CONFIG_K_SEND_BUFFER:
		if (config_parse_size(value, &size) == -1)
			return config_error(p, "bad size '%s' for %s", value,
			    key);
		if (size < 16 * 1024 || size > 16 * 1024 * 1024)
			return config_error(p, "%s '%s' is out of range "
			    "(16K..16M)", key, value);
		cf->send_buffer = (size_t)size;
		return 0;
	case CONFIG_K_MISS_LIMIT:
		return config_long_key(p, key, value, 0, 1000000, 0,
		    &cf->miss_limit);
	case CONFIG_K_MAX_FILLS_PER_CLIENT:
		return config_long_key(p, key, value, 0, 100000, 0,
		    &cf->max_fills_per_client);
	}
	abort();
}

/* Checks that need the whole [upstream] section; errors at its header. */
static int
config_upstream_close(struct config_parser *p)
{
	struct config_upstream	*up = p->cp_up;

	if (up == NULL)
		return 0;
	p->cp_up = NULL;
	if (up->nurls == 0)
		return config_error_at(p, p->cp_up_line,
		    "upstream '%s' has no url", up->name);
	if (up->username != NULL && up->password_file == NULL)
		return config_error_at(p, p->cp_up_line,
		    "upstream '%s': username requires password_file",
		    up->name);
	if (up->username == NULL && up->password_file != NULL)
		return config_error_at(p, p->cp_up_line,
		    "upstream '%s': password_file requires username",
		    up->name);
	for (size_t i = 0; up->username != NULL && i < up->nurls; i++)
		if (strncmp(up->urls[i], "http://", 7) == 0)
			config_warning(p, p->cp_up_line, "upstream '%s' has "
			    "credentials and a plain-http url %s: anyone on the "
			    "path can read them", up->name, up->urls[i]);
	return 0;
}

static int
config_upstream_open(struct config_parser *p, const char *name)
{
	struct config_upstream	*up, *other;

	if (!config_registry_valid(name))
		return config_error(p, "bad upstream name '%s' (want a "
		    "registry host such as \"docker.io\")", name);
	if ((other = config_upstream_find(p->cp_cf, name)) != NULL)
		return config_error(p, "duplicate upstream '%s' (already "
		    "used by upstream '%s')", name, other->name);
	up = xcalloc(1, sizeof(*up));
	up->name = xstrdup(name);
	up->tls_verify = 1;
	up->tag_ttl = -1;
	up->stale_if_error = 3600;
	up->negative_ttl = 30;
	up->max_header_size = 64 * 1024;
	up->max_headers = 100;
	up->max_fills = 64;
	up->max_connections = 128;
	*p->cp_tail = up;
	p->cp_tail = &up->next;
	p->cp_cf->nupstreams++;
	p->cp_up = up;
	p->cp_up_line = p->cp_line;
	/* Upstream keys may be given once per section. */
	for (size_t i = 0; i < CONFIG_NKEYS; i++)
		if (config_keys[i].section == CONFIG_SECT_UPSTREAM)
			p->cp_seen[i] = 0;
	return 0;
}

/* "[server]", "[upstream "NAME"]", with an optional trailing comment. */
static int
config_parse_section(struct config_parser *p, char *s)
{
	char	*word, *arg = NULL;
	size_t	 wlen, i;

	s++;
	while (config_is_ws(*s))
		s++;
	word = s;
	while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
	    *s == '_')
		s++;
	wlen = (size_t)(s - word);
	while (config_is_ws(*s))
		s++;
	if (*s == '"') {
		arg = ++s;
		while (*s != '"' && *s != '\0')
			s++;
		if (*s == '\0')
			return config_error(p, "unterminated section header");
		*s++ = '\0';
		while (config_is_ws(*s))
			s++;
	}
	if (*s == '\0')
		return config_error(p, "unterminated section header");
	if (*s != ']' || wlen == 0)
		return config_error(p, "malformed section header");
	word[wlen] = '\0';
	s++;
	while (config_is_ws(*s))
		s++;
	if (*s != '\0' && *s != '#' && *s != ';')
		return config_error(p, "junk after section header");

	if (config_upstream_close(p) == -1)
		return -1;
	for (i = 1; i < sizeof(config_section_names) /
	    sizeof(config_section_names[0]); i++)
		if (strcasecmp(word, config_section_names[i]) == 0)
			break;
	if (i == sizeof(config_section_names) / sizeof(config_section_names[0]))
		return config_error(p, "unknown section [%s]", word);
	p->cp_sect = (enum config_section)i;
	p->cp_repl = NULL;
	if (p->cp_sect == CONFIG_SECT_REPLICATION) {
		struct config_replication *r;

		if (arg == NULL || *arg == '\0')
			return config_error(p, "[replication] needs a quoted "
			    "name: [replication \"prod-images\"]");
		for (r = p->cp_cf->replications; r != NULL; r = r->next)
			if (strcmp(r->name, arg) == 0)
				return config_error(p, "duplicate replication "
				    "policy '%s'", arg);
		r = xcalloc(1, sizeof(*r));
		r->name = xstrdup(arg);
		r->interval = 600;
		r->chunk_size = 8 * 1024 * 1024;
		r->concurrency = 4;
		r->max_repositories = 10000;
		r->max_tags_per_repository = 10000;
		r->max_tags = 100000;
		r->line = p->cp_line;
		*p->cp_repl_tail = r;
		p->cp_repl_tail = &r->next;
		p->cp_cf->nreplications++;
		p->cp_repl = r;
		for (size_t k = 0; k < CONFIG_NKEYS; k++)
			if (config_keys[k].section == CONFIG_SECT_REPLICATION)
				p->cp_seen[k] = 0;
		return 0;
	}
	if (p->cp_sect == CONFIG_SECT_UPSTREAM) {
		if (arg == NULL)
			return config_error(p, "[upstream] needs a quoted "
			    "name: [upstream \"registry.example.com\"]");
		return config_upstream_open(p, arg);
	}
	if (arg != NULL)
		return config_error(p, "section [%s] takes no name", word);
	return 0;
}

/*
 * The value after '=': a double-quoted string (escapes \" and \\) or the
 * rest of the line up to a comment ('#' or ';' after whitespace).  Parsed
 * in place; NULL (error set) if malformed.
 */
static char *
config_parse_value(struct config_parser *p, char *start)
{
	char	*v, *r, *w;

	v = start;
	while (config_is_ws(*v))
		v++;
	if (*v != '"') {
		for (r = v; *r != '\0'; r++) {
			if ((*r == '#' || *r == ';') && r > start &&
			    config_is_ws(r[-1])) {
				*r = '\0';
				break;
			}
		}
		return config_trim(v);
	}
	for (r = w = ++v; *r != '"'; r++) {
		if (*r == '\0') {
			config_error(p, "unterminated quoted value");
			return NULL;
		}
		if (*r == '\\') {
			r++;
			if (*r != '"' && *r != '\\') {
				config_error(p, "bad escape in quoted value "
				    "(only \\\" and \\\\)");
				return NULL;
			}
		}
		*w++ = *r;
	}
	for (r++; config_is_ws(*r); r++)
		;
	if (*r != '\0' && *r != '#' && *r != ';') {
		config_error(p, "junk after quoted value");
		return NULL;
	}
	*w = '\0';
	return v;
}

static const char *
config_section_label(const struct config_parser *p, char *buf, size_t len)
{
	if (p->cp_sect == CONFIG_SECT_UPSTREAM && p->cp_up != NULL)
		snprintf(buf, len, "[upstream \"%s\"]", p->cp_up->name);
	else
		snprintf(buf, len, "[%s]", config_section_names[p->cp_sect]);
	return buf;
}

static int
config_parse_line(struct config_parser *p, char *line)
{
	char	*s, *eq, *key, *value, label[300];
	size_t	 i;

	s = config_trim(line);
	if (*s == '\0' || *s == '#' || *s == ';')
		return 0;
	if (*s == '[')
		return config_parse_section(p, s);
	if ((eq = strchr(s, '=')) == NULL)
		return config_error(p, "malformed line (expected "
		    "'key = value')");
	if ((value = config_parse_value(p, eq + 1)) == NULL)
		return -1;
	*eq = '\0';
	key = config_trim(s);
	if (*key == '\0')
		return config_error(p, "missing key before '='");
	for (s = key; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    config_is_digit(*s) || *s == '_' || *s == '-'))
			return config_error(p, "malformed key '%s'", key);
	if (p->cp_sect == CONFIG_SECT_NONE)
		return config_error(p, "key '%s' outside of any section", key);

	for (i = 0; i < CONFIG_NKEYS; i++)
		if (config_keys[i].section == p->cp_sect &&
		    strcasecmp(config_keys[i].name, key) == 0)
			break;
	if (i == CONFIG_NKEYS)
		return config_error(p, "unknown key '%s' in %s", key,
		    config_section_label(p, label, sizeof(label)));
	if (!config_keys[i].repeatable &&
	    p->cp_seen[i])
		return config_error(p, "duplicate key '%s' in %s", key,
		    config_section_label(p, label, sizeof(label)));
	p->cp_seen[i] = 1;
	return config_set(p, (enum config_key_id)i, config_keys[i].name,
	    value);
}

/* Checks and defaults that need the whole file. */
static int
config_finish(struct config_parser *p)
{
	struct config	*cf = p->cp_cf;

	if (config_upstream_close(p) == -1)
		return -1;
	if (cf->tls_cert != NULL && cf->tls_key == NULL)
		return config_error_at(p, p->cp_cert_line,
		    "tls_cert requires tls_key");
	if (cf->tls_key != NULL && cf->tls_cert == NULL)
		return config_error_at(p, p->cp_key_line,
		    "tls_key requires tls_cert");
	if (cf->ntls_listen > 0 && cf->tls_cert == NULL)
		return config_error_at(p, p->cp_tls_listen_line,
		    "tls_listen requires tls_cert and tls_key");
	if (cf->nupstreams == 0)
		return config_error_at(p, 0, "no [upstream] section");
	for (struct config_replication *r = cf->replications; r != NULL;
	    r = r->next) {
		if (r->source == NULL)
			return config_error_at(p, r->line, "replication '%s' "
			    "has no source", r->name);
		if (config_upstream_find(cf, r->source) == NULL)
			return config_error_at(p, r->line, "replication '%s': "
			    "source '%s' is not an [upstream] section",
			    r->name, r->source);
		if (r->nrepos == 0)
			return config_error_at(p, r->line, "replication '%s' "
			    "has no repositories", r->name);
		if (r->destination != NULL &&
		    config_upstream_find(cf, r->destination) == NULL)
			return config_error_at(p, r->dest_line, "replication "
			    "'%s': destination '%s' is not an [upstream] "
			    "section", r->name, r->destination);
		if (r->destination != NULL && config_upstream_find(cf,
		    r->destination) == config_upstream_find(cf, r->source))
			return config_error_at(p, r->dest_line, "replication "
			    "'%s': destination is the source", r->name);
	}
	if (cf->nupstreams == 1 && !cf->upstreams->is_default)
		cf->upstreams->is_default = 1;
	if (cf->nlisten == 0 && cf->ntls_listen == 0)
		config_strv_add(&cf->listen, &cf->nlisten,
		    CONFIG_DEFAULT_LISTEN);
	if (cf->cache_dir == NULL)
		cf->cache_dir = xstrdup(CONFIG_DEFAULT_DIR);
	return 0;
}

int
config_load_string(const char *fname, const char *text, struct config **out,
    char *err, size_t errlen)
{
	struct config_parser	 p;
	struct config		*cf;
	const char		*s, *nl;
	char			*line;
	size_t			 len;
	int			 rc = -1;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (fname == NULL)
		fname = "(config)";

	cf = xcalloc(1, sizeof(*cf));
	cf->path = xstrdup(fname);
	cf->log_level = xstrdup("info");
	cf->max_header_size = 16 * 1024;
	cf->tag_ttl = 300;
	cf->tag_max_age = 30 * 86400;
	cf->max_negative = 10000;
	cf->gc_interval = 300;
	cf->gc_grace = 3600;
	cf->connect_timeout = 5;
	cf->first_byte_timeout = 30;
	cf->idle_timeout = 60;
	cf->max_connections_per_client = 128;
	cf->request_head_timeout = 10;
	cf->tls_handshake_timeout = 10;
	cf->max_blob_size = (uint64_t)64 << 30;
	cf->cache_memory = 64 * 1024 * 1024;
	cf->list_ttl = 10;
	cf->queue_timeout = 30;
	cf->send_buffer = 256 * 1024;
	cf->miss_limit = 100;
	cf->max_fills_per_client = 16;
	cf->max_jobs = 16;
	cf->max_job_images = 1000;
	cf->max_job_platforms = 16;

	memset(&p, 0, sizeof(p));
	p.cp_fname = fname;
	p.cp_err = err;
	p.cp_errlen = errlen;
	p.cp_cf = cf;
	p.cp_tail = &cf->upstreams;
	p.cp_repl_tail = &cf->replications;

	line = xmalloc(CONFIG_LINE_MAX + 1);
	for (s = text; *s != '\0'; s = nl + 1) {
		p.cp_line++;
		if ((nl = strchr(s, '\n')) == NULL)
			nl = s + strlen(s);
		len = (size_t)(nl - s);
		if (len > CONFIG_LINE_MAX) {
			config_error(&p, "line too long (more than %d bytes)",
			    CONFIG_LINE_MAX);
			goto done;
		}
		memcpy(line, s, len);
		line[len] = '\0';
		if (config_parse_line(&p, line) == -1)
			goto done;
		if (*nl == '\0')
			break;
	}
	if (config_finish(&p) == -1)
		goto done;
	*out = cf;
	cf = NULL;
	rc = 0;
done:
	free(line);
	config_free(cf);
	return rc;
}

int
config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	char		*buf, *nul;
	size_t		 len = 0;
	ssize_t		 n;
	unsigned long	 line;
	int		 fd, rc, saved;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s:0: cannot open: %s", path,
		    strerror(errno));
		return -1;
	}
	buf = xmalloc(CONFIG_FILE_MAX + 2);
	for (;;) {
		n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			saved = errno;
			close(fd);
			free(buf);
			snprintf(err, errlen, "%s:0: cannot read: %s", path,
			    strerror(saved));
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONFIG_FILE_MAX) {
			close(fd);
			free(buf);
			snprintf(err, errlen, "%s:0: file is larger than "
			    "1 MiB", path);
			return -1;
		}
	}
	close(fd);
	if ((nul = memchr(buf, '\0', len)) != NULL) {
		line = 1;
		for (char *c = buf; c < nul; c++)
			if (*c == '\n')
				line++;
		free(buf);
		snprintf(err, errlen, "%s:%lu: NUL byte in file", path, line);
		return -1;
	}
	buf[len] = '\0';
	rc = config_load_string(path, buf, out, err, errlen);
	free(buf);
	return rc;
}

void
config_free(struct config *cf)
{
	struct config_upstream	*up, *next;

	if (cf == NULL)
		return;
	for (up = cf->upstreams; up != NULL; up = next) {
		next = up->next;
		free(up->name);
		config_strv_free(up->urls, up->nurls);
		config_strv_free(up->aliases, up->naliases);
		config_strv_free(up->realms, up->nrealms);
		config_strv_free(up->redirect_hosts, up->nredirect_hosts);
		config_strv_free(up->ttl_globs, up->nttl);
		free(up->ttl_values);
		free(up->username);
		if (up->password != NULL) {
			/* Do not leave the secret in freed memory. */
			explicit_bzero(up->password, strlen(up->password));
			free(up->password);
		}
		free(up->password_file);
		free(up->ca_file);
		free(up);
	}
	free(cf->path);
	while (cf->replications != NULL) {
		struct config_replication *r = cf->replications;

		cf->replications = r->next;
		free(r->name);
		free(r->source);
		free(r->destination);
		free(r->semver);
		config_strv_free(r->repos, r->nrepos);
		config_strv_free(r->exclude_repos, r->nexclude_repos);
		config_strv_free(r->tags, r->ntags);
		config_strv_free(r->exclude_tags, r->nexclude_tags);
		config_strv_free(r->platforms, r->nplatforms);
		free(r);
	}
	config_strv_free(cf->listen, cf->nlisten);
	config_strv_free(cf->tls_listen, cf->ntls_listen);
	config_strv_free(cf->warnings, cf->nwarnings);
	free(cf->admin_listen);
	free(cf->tls_cert);
	free(cf->tls_key);
	free(cf->log_level);
	free(cf->cache_dir);
	free(cf);
}

struct config_upstream *
config_upstream_default(const struct config *cf)
{
	struct config_upstream	*up;

	for (up = cf->upstreams; up != NULL; up = up->next)
		if (up->is_default)
			return up;
	return NULL;
}

struct config_upstream *
config_upstream_find(const struct config *cf, const char *name)
{
	struct config_upstream	*up;
	size_t			 i;

	if (name == NULL)
		return NULL;
	for (up = cf->upstreams; up != NULL; up = up->next) {
		if (strcasecmp(up->name, name) == 0)
			return up;
		for (i = 0; i < up->naliases; i++)
			if (strcasecmp(up->aliases[i], name) == 0)
				return up;
	}
	return NULL;
}
