/*
 * config.h — mirror.conf: INI sections, "key = value", comments starting
 * with '#' or ';' (whole-line, or after whitespace), quoted section names
 * ([upstream "docker.io"]).  Durations: plain seconds or 30s 5m 2h 7d;
 * sizes: bytes or 512K 512M 200G 1T (powers of 1024).  Lists are
 * comma-separated, and a list key ("listen", "url", "tags", ...) may also
 * be repeated.  Booleans: yes/no/true/false/on/off/1/0.
 *
 * Every error is reported as "FILE:LINE: what is wrong" (LINE 0 for a
 * whole-file problem such as "no [upstream] section").  Unknown sections
 * and keys are errors, which name the closest known section or key of
 * that section when it looks like a typo ("unknown key 'lisen' in
 * [server] (did you mean 'listen'?)").
 */
#ifndef COMMON_CONFIG_H
#define COMMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* configure's sysconfdir (/etc for the Debian package, /usr/local/etc for
 * a plain ./configure); the unit file names the same path. */
#ifndef SYSCONFDIR
#define SYSCONFDIR		"/etc"
#endif
#define CONFIG_DEFAULT_PATH	SYSCONFDIR "/regmirror/mirror.conf"

struct config_upstream {
	/* The section name: a registry host. */
	char			*name;
	/* At least one, each "http(s)://host[:port]". */
	char			**urls;
	size_t			 nurls;
	char			**aliases;
	size_t			 naliases;
	char			**realms;	/* extra token realm hosts */
	size_t			 nrealms;
	int			 is_default;	/* default = yes */
	char			*username;	/* NULL: anonymous */
	char			*password;	/* read from password_file */
	char			*password_file;
	char			*ca_file;	/* NULL: system store */
	int			 tls_verify;	/* default 1 */
	long			 tag_ttl;	/* seconds; -1: use [cache] */
	char			**ttl_globs;	/* tag_ttl_for: first match */
	long			*ttl_values;
	size_t			 nttl;
	long			 stale_if_error;	/* default 1h */
	long			 negative_ttl;	/* default 30s */
	size_t			 max_header_size; /* of a response (64K) */
	long			 max_headers;	/* fields in a response (100) */
	char			**redirect_hosts; /* may be on private IPs */
	size_t			 nredirect_hosts;
	int			 isolate;	/* its content serves it only */
	long			 max_fills;	/* blob fetches at once (64) */
	long			 max_connections; /* at once (128) */
	int			 public;	/* its credentials: anyone */
	unsigned long		 line;		/* of its section header */
	struct config_upstream	*next;		/* in file order */
};

/* What an [access] rule grants (allow = pull, catalog; none: 0). */
#define CONFIG_ALLOW_PULL	0x01
#define CONFIG_ALLOW_CATALOG	0x02

/* [access "NAME"]: one rule; the first that matches a request decides. */
struct config_access {
	char			*name;
	char			**users;	/* names, "*", "anonymous" */
	size_t			 nusers;
	char			**from;		/* CIDRs; none: any address */
	size_t			 nfrom;
	char			**repos;	/* UPSTREAM/REPO globs */
	size_t			 nrepos;
	unsigned		 allow;		/* CONFIG_ALLOW_* */
	unsigned long		 line;
	struct config_access	*next;		/* in file order */
};

/* [replication "NAME"]: pull matching tags from source into the cache. */
struct config_replication {
	char			*name;
	char			*source;	/* an [upstream] name */
	char			**repos;	/* globs or names */
	size_t			 nrepos;
	char			**exclude_repos;
	size_t			 nexclude_repos;
	char			**tags;		/* regexes, whole tag */
	size_t			 ntags;
	char			**exclude_tags;
	size_t			 nexclude_tags;
	int			 keep_newest;	/* 0: all */
	char			*semver;	/* range, NULL: none */
	int			 delete;	/* propagate deletions */
	char			**platforms;	/* empty: all */
	size_t			 nplatforms;
	long			 interval;	/* seconds, default 10m */
	char			*destination;	/* push to: an [upstream]
						 * name; NULL: cache only */
	uint64_t		 chunk_size;	/* push: PATCH chunks above
						 * this (default 8 MiB) */
	int			 concurrency;	/* requests in flight (4) */
	long			 rate_limit_floor; /* 0: none */
	/* What one run may read from the source (the rest is not read):
	 * _catalog entries (10000), tags/list entries of one repository,
	 * all pages (10000), and of all of them (100000). */
	int			 max_repositories;
	int			 max_tags_per_repository;
	int			 max_tags;
	unsigned long		 line;
	unsigned long		 dest_line;
	struct config_replication *next;
};

struct config {
	char			*path;
	char			**listen;	/* "host:port" */
	size_t			 nlisten;
	char			**tls_listen;	/* HTTPS listeners */
	size_t			 ntls_listen;
	char			*admin_listen;	/* NULL: none; or "unix:PATH" */
	char			*admin_token_file; /* tokens, one a line */
	char			*admin_tls_cert; /* the admin API over TLS */
	char			*admin_tls_key;
	char			*admin_client_ca; /* admin client certs */
	char			*events_token_file; /* webhook tokens */
	char			**trusted_proxies; /* CIDRs: X-Forwarded-For */
	size_t			 ntrusted_proxies;
	char			*tls_cert;	/* with no tls_listen: every */
	char			*tls_key;	/* listen is HTTPS */
	char			*front;		/* NULL: jobs use our own */
	char			*job_token_file; /* shared job secret */
	long			 drain;		/* SIGTERM: seconds, 5 */
	long			 shutdown_timeout; /* then: seconds, 60 */
	int			 ready_after_reconcile; /* yes */
	int			 workers;	/* 0 = auto (one per core) */
	char			*log_level;	/* "info" */
	char			*access_log;	/* "text" or "json" */
	size_t			 max_header_size;	/* default 16K */
	long			 max_connections;	/* 0: auto */
	long			 max_connections_per_client; /* 0: none */
	/* Prefetch jobs from the admin API (replication's are not counted):
	 * running at once (16), images (1000) and platforms (16) per job. */
	int			 max_jobs;
	int			 max_job_images;
	int			 max_job_platforms;

	char			*cache_dir;	/* default /var/lib/regmirror */
	uint64_t		 max_size;	/* 0 = unlimited */
	long			 tag_ttl;	/* seconds, default 300 */
	uint64_t		 max_blob_size;	/* default 64G */
	uint64_t		 cache_memory;	/* hot manifests, lists (64M) */
	long			 list_ttl;	/* tags/list answers (10s) */
	long			 queue_timeout;	/* waiting for a slot (30s) */
	size_t			 send_buffer;	/* bytes copied per client */
	long			 miss_limit; /* per client, a minute */
	long			 max_fills_per_client;	/* cold fills (16) */
	/* The index's lifecycle (cache/cache_gc.c). */
	long			 tag_max_age;	/* seconds, 30d; 0: never */
	long			 max_negative;	/* default 10000 */
	long			 gc_interval;	/* seconds, default 5m */
	long			 gc_grace;	/* seconds, default 1h */

	long			 connect_timeout;	/* default 5s */
	long			 first_byte_timeout;	/* default 30s */
	long			 idle_timeout;		/* default 60s */
	long			 request_head_timeout;	/* default 10s */
	long			 tls_handshake_timeout;	/* default 10s */

	struct config_upstream	*upstreams;
	size_t			 nupstreams;
	struct config_replication *replications;
	size_t			 nreplications;

	/* [auth]: who a client is (docs: README, Access control). */
	int			 auth;		/* the section is given */
	unsigned long		 auth_line;
	char			*htpasswd;	/* bcrypt entries */
	char			*client_ca;	/* TLS client certificates */
	char			*challenge;	/* "bearer" or "basic" */
	char			*token_path;	/* default /token */
	long			 token_ttl;	/* seconds, default 5m */
	char			*token_key;	/* NULL: <dir>/token.key */
	char			*token_service;	/* default "regmirror" */
	char			*token_realm;	/* NULL: from the Host */
	long			 login_cache_ttl;	/* default 1m */
	long			 max_login_failures;	/* a window (5) */
	long			 login_failure_window;	/* default 1m */
	long			 max_cached_logins;	/* default 10000 */
	/* [access "NAME"] rules, in file order. */
	struct config_access	*access;
	size_t			 naccess;

	/* "FILE:LINE: warning: ..." for what loads but is unsafe (shown by
	 * check-config and logged at start-up). */
	char			**warnings;
	size_t			 nwarnings;
};

/*
 * Load and validate path.  On success *out is a new config and 0 is
 * returned; on failure -1 and err holds "FILE:LINE: message".
 */
int	config_load(const char *path, struct config **out, char *err,
	    size_t errlen);
/* The same, from a string (for tests and fuzzers); fname labels errors. */
int	config_load_string(const char *fname, const char *text,
	    struct config **out, char *err, size_t errlen);
void	config_free(struct config *);

/* The default upstream, or NULL. */
struct config_upstream *config_upstream_default(const struct config *);
/* By name or alias (case-insensitive host), or NULL. */
struct config_upstream *config_upstream_find(const struct config *,
	    const char *name);

/*
 * SIGHUP (proxy/proxy_reload.c, common/config_diff.c).  A reload takes
 * over the [access] rules, each upstream's username and password
 * (password_file is read again) and the keys of each replication policy;
 * every other difference needs a restart.  config_diff_restart calls
 * cb(section, key) for each of those ("[server]", "listen"; an upstream
 * or policy added or removed has key "added" or "removed") and returns
 * how many there were; a pure function of the two configs.
 */
typedef void	config_diff_f(const char *section, const char *key, void *);
unsigned	config_diff_restart(const struct config *running,
		    const struct config *read, config_diff_f *cb, void *arg);
/* Whether two upstreams' credentials, two policies' keys, or two lists of
 * [access] rules (names and keys, in order) are the same. */
int	config_upstream_creds_equal(const struct config_upstream *,
	    const struct config_upstream *);
int	config_replication_equal(const struct config_replication *,
	    const struct config_replication *);
int	config_access_equal(const struct config_access *,
	    const struct config_access *);
/* Free one policy; a list of rules (parts a reload took out of a config). */
void	config_replication_free(struct config_replication *);
void	config_access_list_free(struct config_access *);
/*
 * The fail-closed check of config_load() again, on cf as given (a reload
 * checks the rules and credentials it read against the listeners that
 * still run): 0, or -1 with "FILE:LINE: what".
 */
int	config_fail_closed_check(const struct config *cf, char *err,
	    size_t errlen);

/*
 * Write every section and key, in the order the parser knows them, each
 * under a comment line with its documentation and what its value may be:
 * "key = DEFAULT", or "# key =" for a key without a default
 * (check-config --print-defaults).  0, or -1 if writing to f failed.
 */
int	config_print_defaults(FILE *f);

/* Value parsers shared with the CLI; 0 ok, -1 malformed. */
int	config_parse_duration(const char *s, long *seconds);
int	config_parse_size(const char *s, uint64_t *bytes);
int	config_parse_bool(const char *s, int *out);

#endif
