/*
 * config_schema.c — every key of mirror.conf, in one table: its section,
 * name, kind of value, the field it sets, bounds, default, whether it may
 * repeat, and a line of documentation.  The table drives everything the
 * reader (config.c) does with a key: the lookup, the check and the store
 * (one setter per kind, or a CUSTOM key's own), the defaults a new
 * section starts with, what config_free() releases, and
 * "regmirror check-config --print-defaults", which
 * tests/integration/06-config-defaults.sh compares with
 * mirror.conf.example.
 *
 * To add a key: a field in config.h, a row here (in the order the example
 * file documents it), the key in mirror.conf.example.  A row that does
 * not fit its field (a size into a char *, a list without a count) fails
 * config_keys_check() on the first load.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/cidr.h"
#include "common/config.h"
#include "common/config_int.h"
#include "common/obj.h"
#include "common/semver.h"
#include "common/xmalloc.h"

#define CONFIG_SECRET_MAX	(64 * 1024)

static config_set_f	config_set_default, config_set_password_file,
			config_set_semver, config_set_destination,
			config_set_admin_listen, config_set_token_path,
			config_set_realm_url, config_set_allow,
			config_set_front;
static config_item_f	config_url_item, config_alias_item,
			config_ttl_for_item, config_regex_item,
			config_platform_item, config_cidr_item,
			config_user_item, config_repo_glob_item;

/* The struct that holds a section's fields. */
#define CONFIG_STRUCT_SERVER		struct config
#define CONFIG_STRUCT_CACHE		struct config
#define CONFIG_STRUCT_TIMEOUTS		struct config
#define CONFIG_STRUCT_UPSTREAM		struct config_upstream
#define CONFIG_STRUCT_REPLICATION	struct config_replication
#define CONFIG_STRUCT_AUTH		struct config
#define CONFIG_STRUCT_ACCESS		struct config_access

#define CONFIG_FIELD_OF(type, field)					\
	.ck_off = offsetof(type, field),				\
	.ck_ftype = CONFIG_FTYPE(((type *)0)->field)

/*
 * CONFIG_KEY(SECTION, "name", KIND, field, flags, default, "doc", ...):
 * after the doc, the columns a kind needs (.ck_min, .ck_max, .ck_words;
 * for CUSTOM .ck_what and .ck_set or, for a list, .ck_item).  CONFIG_LIST
 * is the same for a list, whose count is the field "n" + field.
 */
#define CONFIG_KEY(sect, name, kind, field, flags, dflt, ...)		\
	{ .ck_sect = CONFIG_SECT_##sect, .ck_name = (name),		\
	  .ck_kind = CONFIG_KIND_##kind,				\
	  CONFIG_FIELD_OF(CONFIG_STRUCT_##sect, field),			\
	  .ck_flags = (flags), .ck_dflt = (dflt), .ck_doc = __VA_ARGS__ }
#define CONFIG_LIST(sect, name, kind, field, flags, dflt, ...)		\
	{ .ck_sect = CONFIG_SECT_##sect, .ck_name = (name),		\
	  .ck_kind = CONFIG_KIND_##kind,				\
	  CONFIG_FIELD_OF(CONFIG_STRUCT_##sect, field),			\
	  .ck_noff = offsetof(CONFIG_STRUCT_##sect, n##field),		\
	  .ck_flags = (flags), .ck_dflt = (dflt), .ck_doc = __VA_ARGS__ }

#define REPEAT	CONFIG_KF_REPEAT
#define AUTO	CONFIG_KF_AUTO
#define INHERIT	CONFIG_KF_INHERIT
#define KiB	UINT64_C(1024)
#define MiB	(KiB * 1024)
#define GiB	(MiB * 1024)

static const char *const config_challenges[] = {
	"bearer", "basic", NULL,
};

static const char *const config_access_logs[] = {
	"text", "json", NULL,
};

static const char *const config_log_levels[] = {
	"error", "warn", "info", "debug", NULL,		/* log_level_parse */
};

const struct config_key config_keys[] = {
	CONFIG_LIST(SERVER, "listen", ADDRESSES, listen, REPEAT,
	    "0.0.0.0:5000",
	    "Registry API listener; \":5000\" is every IPv4 address"),
	CONFIG_KEY(SERVER, "admin_listen", CUSTOM, admin_listen, 0, NULL,
	    "Admin API and /metrics listener; unset: none",
	    .ck_set = config_set_admin_listen,
	    .ck_what = "host:port, [v6]:port, :port or unix:PATH"),
	CONFIG_KEY(SERVER, "admin_token_file", FILE, admin_token_file, 0,
	    NULL, "Bearer tokens the admin API accepts, one a line"),
	CONFIG_KEY(SERVER, "admin_tls_cert", PATH, admin_tls_cert, 0, NULL,
	    "Admin API over HTTPS: PEM certificate chain"),
	CONFIG_KEY(SERVER, "admin_tls_key", PATH, admin_tls_key, 0, NULL,
	    "Admin API over HTTPS: the PEM key of admin_tls_cert"),
	CONFIG_KEY(SERVER, "admin_client_ca", FILE, admin_client_ca, 0, NULL,
	    "Admin API: client certificates from this CA are admins"),
	CONFIG_KEY(SERVER, "events_token_file", FILE, events_token_file, 0,
	    NULL, "Bearer tokens the registry event webhook may send"),
	CONFIG_LIST(SERVER, "trusted_proxies", CUSTOM, trusted_proxies,
	    REPEAT, NULL, "Peers whose X-Forwarded-For names the client",
	    .ck_item = config_cidr_item, .ck_what = "list of CIDRs"),
	CONFIG_KEY(SERVER, "workers", INTEGER, workers, AUTO, "auto",
	    "Worker threads, an event loop each; auto: one per core",
	    .ck_min = 1, .ck_max = 256),
	CONFIG_KEY(SERVER, "log_level", WORD, log_level, 0, "info",
	    "Lines above this level are dropped",
	    .ck_words = config_log_levels),
	CONFIG_KEY(SERVER, "access_log", WORD, access_log, 0, "text",
	    "Access lines: text, or json (one JSON object a line)",
	    .ck_words = config_access_logs),
	CONFIG_KEY(SERVER, "max_header_size", SIZE, max_header_size, 0,
	    "16K", "Largest request head a client may send; larger: 431",
	    .ck_min = 1 * KiB, .ck_max = 1 * MiB),
	CONFIG_KEY(SERVER, "max_connections", INTEGER, max_connections,
	    AUTO, "auto",
	    "Client connections at once; auto: half the descriptor limit",
	    .ck_min = 1, .ck_max = 1000000),
	CONFIG_KEY(SERVER, "max_connections_per_client", INTEGER,
	    max_connections_per_client, 0, "128",
	    "Connections from one client address; 0: no cap",
	    .ck_min = 0, .ck_max = 1000000),
	CONFIG_KEY(SERVER, "max_jobs", INTEGER, max_jobs, 0, "16",
	    "Prefetch jobs from the admin API running at once",
	    .ck_min = 1, .ck_max = 1024),
	CONFIG_KEY(SERVER, "max_job_images", INTEGER, max_job_images, 0,
	    "1000", "Images one prefetch job may name",
	    .ck_min = 1, .ck_max = 100000),
	CONFIG_KEY(SERVER, "max_job_platforms", INTEGER, max_job_platforms,
	    0, "16", "Platforms one prefetch job may name",
	    .ck_min = 1, .ck_max = 64),
	CONFIG_KEY(SERVER, "send_buffer", SIZE, send_buffer, 0, "256K",
	    "Blob bytes copied per client when sendfile cannot be used",
	    .ck_min = 16 * KiB, .ck_max = 16 * MiB),
	CONFIG_KEY(SERVER, "miss_limit", INTEGER, miss_limit, 0, "100",
	    "Requests a minute per client that go upstream; 0: no limit",
	    .ck_min = 0, .ck_max = 1000000),
	CONFIG_KEY(SERVER, "max_fills_per_client", INTEGER,
	    max_fills_per_client, 0, "16",
	    "Cold blob fills one client may have running; 0: no limit",
	    .ck_min = 0, .ck_max = 100000),
	CONFIG_KEY(SERVER, "tls_cert", PATH, tls_cert, 0, NULL,
	    "HTTPS: PEM certificate chain, with tls_key"),
	CONFIG_KEY(SERVER, "tls_key", PATH, tls_key, 0, NULL,
	    "HTTPS: the PEM key of tls_cert"),
	CONFIG_LIST(SERVER, "tls_listen", ADDRESSES, tls_listen, REPEAT,
	    NULL, "HTTPS listeners; with them, listen stays plain HTTP"),
	CONFIG_KEY(SERVER, "front", CUSTOM, front, 0, NULL,
	    "The tier's front door; jobs fetch through it; unset: own",
	    .ck_set = config_set_front, .ck_what = "http(s)://host[:port]"),
	CONFIG_KEY(SERVER, "job_token_file", FILE, job_token_file, 0, NULL,
	    "A tier's shared secret for jobs; unset: made at start-up"),
	CONFIG_KEY(SERVER, "drain", DURATION, drain, 0, "5s",
	    "SIGTERM: not ready at once, stop accepting after this long",
	    .ck_min = 0, .ck_max = 3600),
	CONFIG_KEY(SERVER, "shutdown_timeout", DURATION, shutdown_timeout,
	    0, "60s", "SIGTERM: then in-flight requests get this long",
	    .ck_min = 0, .ck_max = 86400),
	CONFIG_KEY(SERVER, "ready_after_reconcile", BOOL,
	    ready_after_reconcile, 0, "yes",
	    "/readyz says 503 until start-up reconcile has finished"),

	CONFIG_KEY(CACHE, "dir", PATH, cache_dir, 0, "/var/lib/regmirror",
	    "Blobs and the LMDB index; one daemon per directory"),
	CONFIG_KEY(CACHE, "max_size", SIZE, max_size, 0, "0",
	    "Blobs and index, LRU eviction above it; 0: unlimited"),
	CONFIG_KEY(CACHE, "max_blob_size", SIZE, max_blob_size, 0, "64G",
	    "Larger blobs are refused with 403 DENIED",
	    .ck_min = 1 * MiB),
	CONFIG_KEY(CACHE, "memory", SIZE, cache_memory, 0, "64M",
	    "Hot manifests and tag lists kept in memory",
	    .ck_min = 0, .ck_max = 16 * GiB),
	CONFIG_KEY(CACHE, "list_ttl", DURATION, list_ttl, 0, "10s",
	    "tags/list, _catalog and referrers answers are kept this long"),
	CONFIG_KEY(CACHE, "tag_ttl", DURATION, tag_ttl, 0, "5m",
	    "A tag resolved this recently is served without asking"),
	CONFIG_KEY(CACHE, "tag_max_age", DURATION, tag_max_age, 0, "30d",
	    "Tags nobody pulled this long are removed; 0: never"),
	CONFIG_KEY(CACHE, "gc_interval", DURATION, gc_interval, 0, "5m",
	    "How often the index's lifecycle pass runs",
	    .ck_min = 1),
	CONFIG_KEY(CACHE, "gc_grace", DURATION, gc_grace, 0, "1h",
	    "Unreferenced manifests younger than this are kept"),
	CONFIG_KEY(CACHE, "max_negative", INTEGER, max_negative, 0, "10000",
	    "Upstream 404s remembered at most, see negative_ttl",
	    .ck_min = 0, .ck_max = 10000000),

	CONFIG_KEY(TIMEOUTS, "connect", DURATION, connect_timeout, 0, "5s",
	    "TCP connect and TLS handshake with an upstream",
	    .ck_min = 1),
	CONFIG_KEY(TIMEOUTS, "first_byte", DURATION, first_byte_timeout, 0,
	    "30s", "An upstream's first byte, and between reads",
	    .ck_min = 1),
	CONFIG_KEY(TIMEOUTS, "idle", DURATION, idle_timeout, 0, "60s",
	    "Idle client connections are closed after this long",
	    .ck_min = 1),
	CONFIG_KEY(TIMEOUTS, "request_head", DURATION, request_head_timeout,
	    0, "10s", "A client's request head must arrive within this long",
	    .ck_min = 1),
	CONFIG_KEY(TIMEOUTS, "tls_handshake", DURATION,
	    tls_handshake_timeout, 0, "10s",
	    "A TLS client must finish its handshake within this long",
	    .ck_min = 1),
	CONFIG_KEY(TIMEOUTS, "queue", DURATION, queue_timeout, 0, "30s",
	    "Waiting for an upstream's fill or connection slot, then 503",
	    .ck_min = 1),

	CONFIG_LIST(UPSTREAM, "url", CUSTOM, urls, REPEAT, NULL,
	    "Where to reach it; later urls when earlier ones fail",
	    .ck_item = config_url_item,
	    .ck_what = "list of http(s)://host[:port]"),
	CONFIG_KEY(UPSTREAM, "default", CUSTOM, is_default, 0, "no",
	    "Requests naming no upstream come here; a lone one anyway",
	    .ck_set = config_set_default, .ck_what = "yes or no"),
	CONFIG_KEY(UPSTREAM, "username", STRING, username, 0, NULL,
	    "User for Basic auth or the token service, with password_file"),
	CONFIG_KEY(UPSTREAM, "password_file", CUSTOM, password_file, 0, NULL,
	    "File holding the password, read at start-up and on SIGHUP",
	    .ck_set = config_set_password_file,
	    .ck_what = "path of a readable file"),
	CONFIG_KEY(UPSTREAM, "ca_file", FILE, ca_file, 0, NULL,
	    "PEM CA certificates trusted on top of the system store"),
	CONFIG_KEY(UPSTREAM, "tls_verify", BOOL, tls_verify, 0, "yes",
	    "Verify the upstream's certificate chain and host name"),
	CONFIG_KEY(UPSTREAM, "tag_ttl", DURATION, tag_ttl, INHERIT, NULL,
	    "Overrides [cache] tag_ttl for this upstream"),
	CONFIG_KEY(UPSTREAM, "tag_ttl_for", CUSTOM, ttl_globs, REPEAT, NULL,
	    "TTLs by tag, first match wins, then tag_ttl",
	    .ck_noff = offsetof(struct config_upstream, nttl),
	    .ck_item = config_ttl_for_item,
	    .ck_what = "list of GLOB:DURATION"),
	CONFIG_KEY(UPSTREAM, "stale_if_error", DURATION, stale_if_error, 0,
	    "1h", "Failed revalidation: serve the last manifest this long"),
	CONFIG_KEY(UPSTREAM, "negative_ttl", DURATION, negative_ttl, 0,
	    "30s", "Remember an upstream 404 for a tag this long"),
	CONFIG_LIST(UPSTREAM, "aliases", CUSTOM, aliases, REPEAT, NULL,
	    "Other names clients may use for this upstream",
	    .ck_item = config_alias_item,
	    .ck_what = "list of registry hosts"),
	CONFIG_LIST(UPSTREAM, "realms", HOSTS, realms, REPEAT, NULL,
	    "Token realm hosts off the upstream's own domain"),
	CONFIG_LIST(UPSTREAM, "redirect_hosts", HOSTS, redirect_hosts,
	    REPEAT, NULL,
	    "Redirect targets allowed on private or loopback addresses"),
	CONFIG_KEY(UPSTREAM, "max_header_size", SIZE, max_header_size, 0,
	    "64K", "Largest response head from this upstream",
	    .ck_min = 4 * KiB, .ck_max = 1 * MiB),
	CONFIG_KEY(UPSTREAM, "max_headers", INTEGER, max_headers, 0, "100",
	    "Header fields in a response from this upstream",
	    .ck_min = 10, .ck_max = 10000),
	CONFIG_KEY(UPSTREAM, "isolate", BOOL, isolate, 0, "no",
	    "Content fetched from it serves only its own requests"),
	CONFIG_KEY(UPSTREAM, "max_fills", INTEGER, max_fills, 0, "64",
	    "Blob fetches from this upstream at once",
	    .ck_min = 1, .ck_max = 100000),
	CONFIG_KEY(UPSTREAM, "max_connections", INTEGER, max_connections, 0,
	    "128", "HTTP exchanges with this upstream at once",
	    .ck_min = 1, .ck_max = 100000),
	CONFIG_KEY(UPSTREAM, "public", BOOL, public, 0, "no",
	    "Its credentials may serve anyone: no [access] rule needed"),

	CONFIG_KEY(REPLICATION, "source", UPSTREAM, source, 0, NULL,
	    "The [upstream] to replicate from"),
	CONFIG_LIST(REPLICATION, "repositories", STRINGS, repos, REPEAT,
	    NULL, "Repository names or globs; globs need /v2/_catalog"),
	CONFIG_LIST(REPLICATION, "exclude_repositories", STRINGS,
	    exclude_repos, REPEAT, NULL, "Repositories left out"),
	CONFIG_LIST(REPLICATION, "tags", CUSTOM, tags, REPEAT, NULL,
	    "Tag regexes, POSIX extended, whole tag; unset: every tag",
	    .ck_item = config_regex_item, .ck_what = "list of regexes"),
	CONFIG_LIST(REPLICATION, "exclude_tags", CUSTOM, exclude_tags,
	    REPEAT, NULL, "Tag regexes left out",
	    .ck_item = config_regex_item, .ck_what = "list of regexes"),
	CONFIG_KEY(REPLICATION, "semver", CUSTOM, semver, 0, NULL,
	    "Only releases in this range, e.g. \">=1.2 <2\" or \"^1.4\"",
	    .ck_set = config_set_semver, .ck_what = "semver range"),
	CONFIG_KEY(REPLICATION, "keep_newest", INTEGER, keep_newest, 0, NULL,
	    "Only the newest N matching tags; unset: all",
	    .ck_min = 1, .ck_max = 100000),
	CONFIG_KEY(REPLICATION, "delete", BOOL, delete, 0, "no",
	    "Delete tags here that the source no longer has"),
	CONFIG_LIST(REPLICATION, "platforms", CUSTOM, platforms, REPEAT,
	    NULL, "From multi-arch indexes only these; unset: all",
	    .ck_item = config_platform_item,
	    .ck_what = "list of os/arch[/variant]"),
	CONFIG_KEY(REPLICATION, "interval", DURATION, interval, 0, "10m",
	    "How often the policy runs",
	    .ck_min = 1),
	CONFIG_KEY(REPLICATION, "destination", CUSTOM, destination, 0, NULL,
	    "Push the synced tags to this [upstream] too",
	    .ck_set = config_set_destination,
	    .ck_what = "name of an [upstream] section"),
	CONFIG_KEY(REPLICATION, "chunk_size", SIZE, chunk_size, 0, "8M",
	    "Larger blobs are pushed in PATCH chunks of this size",
	    .ck_min = 64 * KiB, .ck_max = 1 * GiB),
	CONFIG_KEY(REPLICATION, "concurrency", INTEGER, concurrency, 0, "4",
	    "Manifest and blob requests and pushes in flight",
	    .ck_min = 1, .ck_max = 32),
	CONFIG_KEY(REPLICATION, "rate_limit_floor", INTEGER,
	    rate_limit_floor, 0, "0",
	    "Pause while the source's RateLimit-Remaining is below this",
	    .ck_min = 0, .ck_max = 1000000),
	CONFIG_KEY(REPLICATION, "max_repositories", INTEGER,
	    max_repositories, 0, "10000",
	    "Repositories one run reads from /v2/_catalog",
	    .ck_min = 1, .ck_max = 1000000),
	CONFIG_KEY(REPLICATION, "max_tags_per_repository", INTEGER,
	    max_tags_per_repository, 0, "10000",
	    "Tags one run reads of one repository, all pages",
	    .ck_min = 1, .ck_max = 1000000),
	CONFIG_KEY(REPLICATION, "max_tags", INTEGER, max_tags, 0, "100000",
	    "Tags one run reads in all",
	    .ck_min = 1, .ck_max = 10000000),

	CONFIG_KEY(AUTH, "htpasswd", FILE, htpasswd, 0, NULL,
	    "Users: htpasswd -B (bcrypt) entries; reread on SIGHUP"),
	CONFIG_KEY(AUTH, "client_ca", FILE, client_ca, 0, NULL,
	    "HTTPS listeners ask for client certificates; CN is the user"),
	CONFIG_KEY(AUTH, "challenge", WORD, challenge, 0, "bearer",
	    "401s ask for a token (bearer) or for Basic credentials",
	    .ck_words = config_challenges),
	CONFIG_KEY(AUTH, "token_path", CUSTOM, token_path, 0, "/token",
	    "Where the mirror's own token service answers",
	    .ck_set = config_set_token_path, .ck_what = "absolute path"),
	CONFIG_KEY(AUTH, "token_ttl", DURATION, token_ttl, 0, "5m",
	    "How long a token the mirror issues is valid",
	    .ck_min = 10, .ck_max = 86400),
	CONFIG_KEY(AUTH, "token_key", PATH, token_key, 0, NULL,
	    "Token signing key; unset: <dir>/token.key, made at start"),
	CONFIG_KEY(AUTH, "token_service", STRING, token_service, 0,
	    "regmirror", "The service= the mirror's tokens are for"),
	CONFIG_KEY(AUTH, "token_realm", CUSTOM, token_realm, 0, NULL,
	    "Token URL in challenges; unset: from the request's Host",
	    .ck_set = config_set_realm_url, .ck_what = "http(s) URL"),
	CONFIG_KEY(AUTH, "login_cache_ttl", DURATION, login_cache_ttl, 0,
	    "1m", "A good password is not checked again for this long",
	    .ck_min = 0, .ck_max = 3600),
	CONFIG_KEY(AUTH, "max_login_failures", INTEGER, max_login_failures,
	    0, "5", "Failed logins from one address a window; then 429",
	    .ck_min = 1, .ck_max = 1000000),
	CONFIG_KEY(AUTH, "login_failure_window", DURATION,
	    login_failure_window, 0, "1m", "The window of max_login_failures",
	    .ck_min = 1, .ck_max = 86400),
	CONFIG_KEY(AUTH, "max_cached_logins", INTEGER, max_cached_logins, 0,
	    "10000", "Good logins remembered (login_cache_ttl) at most",
	    .ck_min = 0, .ck_max = 1000000),

	CONFIG_LIST(ACCESS, "users", CUSTOM, users, REPEAT, NULL,
	    "Who: user names, * (any logged-in user), anonymous",
	    .ck_item = config_user_item, .ck_what = "list of users"),
	CONFIG_LIST(ACCESS, "from", CUSTOM, from, REPEAT, NULL,
	    "Only from these client addresses; unset: any",
	    .ck_item = config_cidr_item, .ck_what = "list of CIDRs"),
	CONFIG_LIST(ACCESS, "repositories", CUSTOM, repos, REPEAT, NULL,
	    "UPSTREAM/REPO globs; * within a component, ** across /",
	    .ck_item = config_repo_glob_item, .ck_what = "list of globs"),
	CONFIG_KEY(ACCESS, "allow", CUSTOM, allow, 0, "pull",
	    "What the rule grants: pull, catalog, or none",
	    .ck_set = config_set_allow,
	    .ck_what = "list of pull, catalog, none"),
};
const size_t config_nkeys = sizeof(config_keys) / sizeof(config_keys[0]);

#undef REPEAT
#undef AUTO
#undef INHERIT
#undef KiB
#undef MiB
#undef GiB

static const char *const config_kind_names[] = {
#define CONFIG_KIND_NAME(id, what)	[CONFIG_KIND_##id] = what,
	CONFIG_KINDS(CONFIG_KIND_NAME)
#undef CONFIG_KIND_NAME
};

const char *
config_kind_str(enum config_kind k)
{
	AN(k < CONFIG_NKINDS);
	return config_kind_names[k];
}

static int
config_is_hostchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    config_is_digit(c) || c == '.' || c == '-';
}

/* The field k sets in base, as a pointer to its type; a list's count. */
#define CONFIG_FIELD(base, k, type)					\
	((type *)(void *)((char *)(base) + (k)->ck_off))
#define CONFIG_COUNT(base, k)						\
	((size_t *)(void *)((char *)(base) + (k)->ck_noff))

void
config_strv_add(char ***v, size_t *n, const char *s)
{
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[(*n)++] = xstrdup(s);
}

void
config_strv_free(char **v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Append item to the list key k sets in base. */
static void
config_list_add(void *base, const struct config_key *k, const char *item)
{
	config_strv_add(CONFIG_FIELD(base, k, char **), CONFIG_COUNT(base, k),
	    item);
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

int
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

/*
 * Store a number into k's field by the field's type.  The bounds in the
 * table keep it in range (config_keys_check).
 */
static void
config_store_number(void *base, const struct config_key *k, uint64_t v)
{
	switch (k->ck_ftype) {
	case CONFIG_FT_INT:
		*CONFIG_FIELD(base, k, int) = (int)v;
		break;
	case CONFIG_FT_LONG:
		*CONFIG_FIELD(base, k, long) = (long)v;
		break;
	case CONFIG_FT_UINT:
		*CONFIG_FIELD(base, k, unsigned int) = (unsigned int)v;
		break;
	case CONFIG_FT_ULONG:
		*CONFIG_FIELD(base, k, unsigned long) = (unsigned long)v;
		break;
	case CONFIG_FT_ULLONG:
		*CONFIG_FIELD(base, k, unsigned long long) = v;
		break;
	default:
		WRONG("a number for a field that is not one");
	}
}

/* Replace k's string field with a copy of s. */
static void
config_store_string(void *base, const struct config_key *k, const char *s)
{
	char	**f = CONFIG_FIELD(base, k, char *);

	free(*f);
	*f = xstrdup(s);
}

/* A size as the file would write it: 0, 512, 16K, 64M, 1G. */
static void
config_size_str(uint64_t v, char *buf, size_t len)
{
	static const char	 units[] = "KMGT";
	int			 u = -1;

	while (u < 3 && v != 0 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, v);
	else
		snprintf(buf, len, "%" PRIu64 "%c", v, units[u]);
}

/* k's bounds as errors and --print-defaults show them: "1K..1M". */
static void
config_bounds_str(const struct config_key *k, char *buf, size_t len)
{
	char	lo[32], hi[32];

	if (k->ck_kind == CONFIG_KIND_SIZE) {
		config_size_str(k->ck_min, lo, sizeof(lo));
		config_size_str(k->ck_max, hi, sizeof(hi));
	} else {
		snprintf(lo, sizeof(lo), "%" PRIu64, k->ck_min);
		snprintf(hi, sizeof(hi), "%" PRIu64, k->ck_max);
	}
	if (k->ck_kind == CONFIG_KIND_DURATION)
		snprintf(buf, len, "at least %ss", lo);
	else if (k->ck_max == 0)
		snprintf(buf, len, "at least %s", lo);
	else
		snprintf(buf, len, "%s..%s", lo, hi);
}

/* STRING and PATH: anything but the empty string. */
static int
config_set_string(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	if (*value == '\0' && k->ck_kind == CONFIG_KIND_PATH)
		return config_error(p, "empty path for %s", k->ck_name);
	if (*value == '\0')
		return config_error(p, "empty %s", k->ck_name);
	config_store_string(base, k, value);
	return 0;
}

/* FILE: a path that names a regular file we can open now. */
static int
config_set_file(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	struct stat	st;
	int		fd;

	if ((fd = open(value, O_RDONLY | O_CLOEXEC)) == -1)
		return config_error(p, "cannot read %s '%s': %s", k->ck_name,
		    value, strerror(errno));
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		return config_error(p, "cannot read %s '%s': not a file",
		    k->ck_name, value);
	}
	close(fd);
	config_store_string(base, k, value);
	return 0;
}

static int
config_set_bool(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	int	b;

	if (config_parse_bool(value, &b) == -1)
		return config_error(p, "bad boolean '%s' for %s", value,
		    k->ck_name);
	config_store_number(base, k, (uint64_t)b);
	return 0;
}

static int
config_set_duration(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	long	v;

	if (config_parse_duration(value, &v) == -1)
		return config_error(p, "bad duration '%s' for %s", value,
		    k->ck_name);
	if ((uint64_t)v < k->ck_min)
		return config_error(p, "%s must be at least %" PRIu64 "s, "
		    "not '%s'", k->ck_name, k->ck_min, value);
	if (k->ck_max != 0 && (uint64_t)v > k->ck_max)
		return config_error(p, "%s must be at most %" PRIu64 "s, "
		    "not '%s'", k->ck_name, k->ck_max, value);
	config_store_number(base, k, (uint64_t)v);
	return 0;
}

static int
config_set_size(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	uint64_t	v;
	char		bounds[80];

	if (config_parse_size(value, &v) == -1)
		return config_error(p, "bad size '%s' for %s", value,
		    k->ck_name);
	if (v < k->ck_min || (k->ck_max != 0 && v > k->ck_max)) {
		config_bounds_str(k, bounds, sizeof(bounds));
		return config_error(p, "%s '%s' is out of range (%s)",
		    k->ck_name, value, bounds);
	}
	config_store_number(base, k, v);
	return 0;
}

/* INTEGER: digits only, within the bounds; "auto" (0) if the key allows. */
static int
config_set_integer(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	const char	*c;
	uint64_t	 v = 0;
	char		 bounds[80];
	int		 is_auto = (k->ck_flags & CONFIG_KF_AUTO) != 0;

	if (is_auto && strcmp(value, "auto") == 0) {
		config_store_number(base, k, 0);
		return 0;
	}
	for (c = value; config_is_digit(*c); c++)
		if (v <= k->ck_max)
			v = v * 10 + (uint64_t)(*c - '0');
	config_bounds_str(k, bounds, sizeof(bounds));
	if (c == value || *c != '\0')
		return config_error(p, "bad number '%s' for %s (want %s%s)",
		    value, k->ck_name, is_auto ? "auto or " : "", bounds);
	if (v < k->ck_min || v > k->ck_max)
		return config_error(p, "%s '%s' is out of range (%s)",
		    k->ck_name, value, bounds);
	config_store_number(base, k, v);
	return 0;
}

/* "a, b, c or d" from a NULL-terminated list of words. */
static void
config_words_str(const char *const *w, char *buf, size_t len)
{
	size_t	i, used = 0;

	buf[0] = '\0';
	for (i = 0; w[i] != NULL && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s",
		    i == 0 ? "" : w[i + 1] == NULL ? " or " : ", ", w[i]);
}

/* WORD: one of ck_words, in any case; stored in lower case. */
static int
config_set_word(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	char	words[200];
	size_t	i;

	for (i = 0; k->ck_words[i] != NULL; i++) {
		if (strcasecmp(value, k->ck_words[i]) == 0) {
			config_store_string(base, k, k->ck_words[i]);
			return 0;
		}
	}
	config_words_str(k->ck_words, words, sizeof(words));
	return config_error(p, "bad %s '%s' (want %s)", k->ck_name, value,
	    words);
}

/* ADDRESS: one listen address. */
static int
config_set_address(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	if (!config_listen_valid(value))
		return config_error(p, "bad listen address '%s' for %s (want "
		    "host:port, [v6]:port or :port)", value, k->ck_name);
	config_store_string(base, k, value);
	return 0;
}

/* ADDRESSES: listen addresses. */
static int
config_address_item(struct config_parser *p, const struct config_key *k,
    void *base, char *item)
{
	if (!config_listen_valid(item))
		return config_error(p, "bad %s address '%s' (want host:port, "
		    "[v6]:port or :port)", k->ck_name, item);
	config_list_add(base, k, item);
	return 0;
}

/* HOSTS: host or host:port. */
static int
config_host_item(struct config_parser *p, const struct config_key *k,
    void *base, char *item)
{
	if (!config_registry_valid(item))
		return config_error(p, "bad %s host '%s' (want host or "
		    "host:port)", k->ck_name, item);
	config_list_add(base, k, item);
	return 0;
}

/* STRINGS: any non-empty item. */
static int
config_string_item(struct config_parser *p, const struct config_key *k,
    void *base, char *item)
{
	(void)p;
	config_list_add(base, k, item);
	return 0;
}

/*
 * A list: split the value and hand every item to the key's item checker
 * (its kind's, or a CUSTOM key's own), which stores it; stop at the first
 * error.  Items given before a bad one stay, but the load fails anyway.
 */
static int
config_set_list(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	config_item_f	 *item = k->ck_item;
	char		**v;
	size_t		  n, i;
	int		  rc = 0;

	if (item == NULL && k->ck_kind == CONFIG_KIND_ADDRESSES)
		item = config_address_item;
	else if (item == NULL && k->ck_kind == CONFIG_KIND_HOSTS)
		item = config_host_item;
	else if (item == NULL)
		item = config_string_item;
	if ((v = config_list_split(value, &n)) == NULL)
		return config_error(p, "empty element in %s list '%s'",
		    k->ck_name, value);
	for (i = 0; i < n && rc == 0; i++)
		rc = item(p, k, base, v[i]);
	config_strv_free(v, n);
	return rc;
}

/*
 * UPSTREAM: the name of an [upstream] section, checked for its form now
 * and against the sections once the whole file is read (config_finish).
 */
static int
config_set_upstream(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	if (!config_registry_valid(value))
		return config_error(p, "bad %s '%s' (want the name of an "
		    "[upstream] section)", k->ck_name, value);
	config_store_string(base, k, value);
	return 0;
}

static config_set_f *const config_kind_set[] = {
	[CONFIG_KIND_STRING] = config_set_string,
	[CONFIG_KIND_PATH] = config_set_string,
	[CONFIG_KIND_FILE] = config_set_file,
	[CONFIG_KIND_BOOL] = config_set_bool,
	[CONFIG_KIND_DURATION] = config_set_duration,
	[CONFIG_KIND_SIZE] = config_set_size,
	[CONFIG_KIND_INTEGER] = config_set_integer,
	[CONFIG_KIND_WORD] = config_set_word,
	[CONFIG_KIND_ADDRESS] = config_set_address,
	[CONFIG_KIND_ADDRESSES] = config_set_list,
	[CONFIG_KIND_HOSTS] = config_set_list,
	[CONFIG_KIND_UPSTREAM] = config_set_upstream,
	[CONFIG_KIND_STRINGS] = config_set_list,
	[CONFIG_KIND_CUSTOM] = NULL,		/* ck_set, or ck_item */
};

/* url: http(s)://host[:port], stored without a trailing '/'. */
static int
config_url_item(struct config_parser *p, const struct config_key *k,
    void *base, char *item)
{
	char	*url;

	if (config_url_parse(item, &url) == -1)
		return config_error(p, "bad url '%s' (want http(s)://host"
		    "[:port] with no path)", item);
	config_list_add(base, k, url);
	free(url);
	return 0;
}

/* aliases: registry hosts that name no other upstream (or alias). */
static int
config_alias_item(struct config_parser *p, const struct config_key *k,
    void *base, char *item)
{
	struct config_upstream	*other;

	if (!config_registry_valid(item))
		return config_error(p, "bad alias '%s' (want a registry host)",
		    item);
	/* The current upstream is already on the list. */
	if ((other = config_upstream_find(p->cp_cf, item)) != NULL)
		return config_error(p, "alias '%s' is already used by "
		    "upstream '%s'", item, other->name);
	config_list_add(base, k, item);
	return 0;
}

/* default: a boolean of which at most one upstream may be yes. */
static int
config_set_default(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	struct config_upstream	*up = base, *other;
	int			 b;

	if (config_parse_bool(value, &b) == -1)
		return config_error(p, "bad boolean '%s' for %s", value,
		    k->ck_name);
	if (b && (other = config_upstream_default(p->cp_cf)) != NULL &&
	    other != up)
		return config_error(p, "upstream '%s' cannot be default: "
		    "'%s' already is", up->name, other->name);
	up->is_default = b;
	return 0;
}

/*
 * Read a secret file whole: at most CONFIG_SECRET_MAX bytes, no NUL, not
 * empty once one trailing newline ("\n" or "\r\n") is dropped.
 */
static int
config_read_secret(struct config_parser *p, const char *path, char **out)
{
	char		*buf;
	size_t		 len;
	int		 fd, rc, saved;
	struct stat	 st;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return config_error(p, "cannot read password_file '%s': %s",
		    path, strerror(errno));
	if (fstat(fd, &st) == 0 && (st.st_mode & S_IROTH) != 0)
		config_warning(p, p->cp_line, "password_file '%s' is readable "
		    "by every user (chmod o-r)", path);
	rc = config_read_fd(fd, CONFIG_SECRET_MAX, &buf, &len);
	saved = errno;
	close(fd);
	if (rc == -1)
		return config_error(p, "cannot read password_file '%s': %s",
		    path, strerror(saved));
	if (rc == -2)
		return config_error(p, "password_file '%s' is larger than %d "
		    "bytes", path, CONFIG_SECRET_MAX);
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

/*
 * password_file: read at once, so that a daemon that started has its
 * secret; its path is kept for messages.
 */
static int
config_set_password_file(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	struct config_upstream	*up = base;

	if (config_read_secret(p, value, &up->password) == -1)
		return -1;
	config_store_string(base, k, value);
	return 0;
}

/* tag_ttl_for: GLOB:DURATION, into ttl_globs and ttl_values. */
static int
config_ttl_for_item(struct config_parser *p, const struct config_key *k,
    void *base, char *item)
{
	struct config_upstream	*up = base;
	char			*colon;
	long			 ttl;

	if ((colon = strrchr(item, ':')) == NULL || colon == item ||
	    config_parse_duration(colon + 1, &ttl) == -1)
		return config_error(p, "bad tag_ttl_for entry '%s' (want "
		    "GLOB:DURATION, e.g. latest:1m)", item);
	*colon = '\0';
	config_list_add(base, k, item);
	up->ttl_values = xreallocarray(up->ttl_values, up->nttl,
	    sizeof(*up->ttl_values));
	up->ttl_values[up->nttl - 1] = ttl;
	return 0;
}

/* tags, exclude_tags: POSIX extended regexes matched on the whole tag. */
static int
config_regex_item(struct config_parser *p, const struct config_key *k,
    void *base, char *item)
{
	regex_t	 re;
	char	*anchored;
	int	 rc;

	xasprintf(&anchored, "^(%s)$", item);
	rc = regcomp(&re, anchored, REG_EXTENDED | REG_NOSUB);
	free(anchored);
	if (rc != 0)
		return config_error(p, "bad regular expression '%s' for %s",
		    item, k->ck_name);
	regfree(&re);
	config_list_add(base, k, item);
	return 0;
}

/* semver: a range common/semver.c understands. */
static int
config_set_semver(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	if (semver_range_valid(value) != 0)
		return config_error(p, "bad semver range '%s' (e.g. "
		    "\">=1.2 <2\", \"^1.4\", \"~2.1.0\", \"1.x\")", value);
	config_store_string(base, k, value);
	return 0;
}

/* platforms: os/arch or os/arch/variant. */
static int
config_platform_item(struct config_parser *p, const struct config_key *k,
    void *base, char *item)
{
	if (strchr(item, '/') == NULL)
		return config_error(p, "bad platform '%s' (want os/arch or "
		    "os/arch/variant)", item);
	config_list_add(base, k, item);
	return 0;
}

/*
 * destination: an [upstream] name like source; its line is kept, as the
 * check that it names a section comes once the whole file is read.
 */
static int
config_set_destination(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	struct config_replication	*r = base;

	if (config_set_upstream(p, k, base, value) == -1)
		return -1;
	r->dest_line = p->cp_line;
	return 0;
}

/* admin_listen: a listen address, or unix:/absolute/path. */
static int
config_set_admin_listen(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	if (strncmp(value, "unix:", 5) == 0) {
		if (value[5] != '/' || strlen(value + 5) >= 108)
			return config_error(p, "bad %s '%s' (want unix: and an "
			    "absolute path under 108 bytes)", k->ck_name,
			    value);
	} else if (!config_listen_valid(value))
		return config_error(p, "bad listen address '%s' for %s (want "
		    "host:port, [v6]:port, :port or unix:PATH)", value,
		    k->ck_name);
	config_store_string(base, k, value);
	return 0;
}

/* token_path: "/...", printable, and not inside the registry API. */
static int
config_set_token_path(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	size_t	i, len = strlen(value);

	for (i = 0; i < len; i++)
		if (value[i] <= 0x20 || value[i] >= 0x7f || value[i] == '?' ||
		    value[i] == '#' || value[i] == '%')
			break;
	if (value[0] != '/' || len < 2 || len > 128 || i < len ||
	    strncmp(value, "/v2", 3) == 0)
		return config_error(p, "bad %s '%s' (want an absolute path "
		    "outside /v2, such as /token)", k->ck_name, value);
	config_store_string(base, k, value);
	return 0;
}

/* token_realm: the URL clients are sent to for tokens. */
static int
config_set_realm_url(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	size_t	i, len = strlen(value);

	for (i = 0; i < len; i++)
		if (value[i] <= 0x20 || value[i] >= 0x7f || value[i] == '"' ||
		    value[i] == '\\')
			break;
	if (i < len || len > 512 || (strncmp(value, "https://", 8) != 0 &&
	    strncmp(value, "http://", 7) != 0))
		return config_error(p, "bad %s '%s' (want an http:// or "
		    "https:// URL)", k->ck_name, value);
	config_store_string(base, k, value);
	return 0;
}

/* front: a URL as upstream urls are (http(s)://host[:port], no path). */
static int
config_set_front(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	char	*url;

	if (config_url_parse(value, &url) == -1)
		return config_error(p, "bad front '%s' (want http(s)://host"
		    "[:port] with no path)", value);
	config_store_string(base, k, url);
	free(url);
	return 0;
}

/* allow: pull, catalog (a list), or none alone. */
static int
config_set_allow(struct config_parser *p, const struct config_key *k,
    void *base, const char *value)
{
	unsigned	*allow = CONFIG_FIELD(base, k, unsigned);
	char		**v;
	size_t		  n, i;
	unsigned	  bits = 0, none = 0;

	if ((v = config_list_split(value, &n)) == NULL)
		return config_error(p, "empty element in %s list '%s'",
		    k->ck_name, value);
	for (i = 0; i < n; i++) {
		if (strcasecmp(v[i], "pull") == 0)
			bits |= CONFIG_ALLOW_PULL;
		else if (strcasecmp(v[i], "catalog") == 0)
			bits |= CONFIG_ALLOW_CATALOG;
		else if (strcasecmp(v[i], "none") == 0)
			none = 1;
		else {
			config_error(p, "bad %s '%s' (want pull, catalog or "
			    "none)", k->ck_name, v[i]);
			config_strv_free(v, n);
			return -1;
		}
	}
	config_strv_free(v, n);
	if (none && bits != 0)
		return config_error(p, "%s: none cannot go with pull or "
		    "catalog", k->ck_name);
	*allow = bits;
	return 0;
}

/* CIDR lists: 10.0.0.0/8, fd00::/8, 192.0.2.7. */
static int
config_cidr_item(struct config_parser *p, const struct config_key *k,
    void *base, char *item)
{
	struct cidr	c;

	if (cidr_parse(item, &c) != 0)
		return config_error(p, "bad %s entry '%s' (want an address "
		    "or a prefix such as 10.0.0.0/8, without host bits)",
		    k->ck_name, item);
	config_list_add(base, k, item);
	return 0;
}

/* users: a name (letters, digits, . _ - @), "*" or "anonymous". */
static int
config_user_item(struct config_parser *p, const struct config_key *k,
    void *base, char *item)
{
	size_t	i, len = strlen(item);

	for (i = 0; i < len; i++)
		if (!((item[i] >= 'a' && item[i] <= 'z') ||
		    (item[i] >= 'A' && item[i] <= 'Z') ||
		    config_is_digit(item[i]) || item[i] == '.' ||
		    item[i] == '_' || item[i] == '-' || item[i] == '@'))
			break;
	if (strcmp(item, "*") != 0 && (i < len || len > 128))
		return config_error(p, "bad user '%s' in %s (want a name, * "
		    "or anonymous)", item, k->ck_name);
	config_list_add(base, k, item);
	return 0;
}

/* repositories: UPSTREAM/REPO, printable, no spaces; checked whole later. */
static int
config_repo_glob_item(struct config_parser *p, const struct config_key *k,
    void *base, char *item)
{
	size_t	i, len = strlen(item);

	for (i = 0; i < len; i++)
		if (item[i] <= 0x20 || item[i] >= 0x7f)
			break;
	if (i < len || len > 512 || item[0] == '/' ||
	    (strchr(item, '/') == NULL && strcmp(item, "**") != 0))
		return config_error(p, "bad %s glob '%s' (want UPSTREAM/REPO, "
		    "e.g. ghcr.io/team-a/** or docker.io/library/*)",
		    k->ck_name, item);
	config_list_add(base, k, item);
	return 0;
}

/* The struct of the section k belongs to, as the parser has it now. */
static void *
config_key_base(struct config_parser *p, const struct config_key *k)
{
	switch (k->ck_sect) {
	case CONFIG_SECT_UPSTREAM:
		return p->cp_up;
	case CONFIG_SECT_REPLICATION:
		return p->cp_repl;
	case CONFIG_SECT_ACCESS:
		return p->cp_access;
	default:
		return p->cp_cf;
	}
}

static config_set_f *
config_key_setter(const struct config_key *k)
{
	if (k->ck_kind != CONFIG_KIND_CUSTOM)
		return config_kind_set[k->ck_kind];
	return k->ck_set != NULL ? k->ck_set : config_set_list;
}

int
config_key_set(struct config_parser *p, const struct config_key *k,
    const char *value)
{
	void	*base = config_key_base(p, k);

	AN(base != NULL);
	return config_key_setter(k)(p, k, base, value);
}

void
config_key_default(struct config_parser *p, const struct config_key *k,
    void *base)
{
	AN(k->ck_dflt != NULL);
	/* A default the setter refuses is a bug in the table. */
	AZ(config_key_setter(k)(p, k, base, k->ck_dflt));
}

/*
 * A new section's struct: every default that is not a list (a list's
 * default applies only when the file gives none, see config_finish), and
 * -1 in the fields that inherit another key's value until given.
 */
void
config_section_defaults(struct config_parser *p, enum config_section s,
    void *base)
{
	const struct config_key	*k;

	for (k = config_keys; k < config_keys + config_nkeys; k++) {
		if (k->ck_sect != s)
			continue;
		if (k->ck_flags & CONFIG_KF_INHERIT)
			*CONFIG_FIELD(base, k, long) = -1;
		else if (k->ck_dflt != NULL && k->ck_ftype != CONFIG_FT_STRV)
			config_key_default(p, k, base);
	}
}

void
config_section_free(enum config_section s, void *base)
{
	const struct config_key	*k;

	for (k = config_keys; k < config_keys + config_nkeys; k++) {
		if (k->ck_sect != s)
			continue;
		if (k->ck_ftype == CONFIG_FT_STR)
			free(*CONFIG_FIELD(base, k, char *));
		else if (k->ck_ftype == CONFIG_FT_STRV)
			config_strv_free(*CONFIG_FIELD(base, k, char **),
			    *CONFIG_COUNT(base, k));
	}
}

/* The largest value a number field of type t holds. */
static uint64_t
config_ftype_max(enum config_ftype t)
{
	switch (t) {
	case CONFIG_FT_INT:
		return INT_MAX;
	case CONFIG_FT_LONG:
		return LONG_MAX;
	case CONFIG_FT_UINT:
		return UINT_MAX;
	case CONFIG_FT_ULONG:
		return ULONG_MAX;
	case CONFIG_FT_ULLONG:
		return ULLONG_MAX;
	default:
		return 0;
	}
}

/* The field type each kind stores into (CUSTOM: any). */
static enum config_ftype
config_kind_ftype(enum config_kind kind)
{
	switch (kind) {
	case CONFIG_KIND_BOOL:
		return CONFIG_FT_INT;
	case CONFIG_KIND_DURATION:
		return CONFIG_FT_LONG;
	case CONFIG_KIND_SIZE:
	case CONFIG_KIND_INTEGER:
	case CONFIG_KIND_CUSTOM:
		return CONFIG_FT_OTHER;
	case CONFIG_KIND_ADDRESSES:
	case CONFIG_KIND_HOSTS:
	case CONFIG_KIND_STRINGS:
		return CONFIG_FT_STRV;
	default:
		return CONFIG_FT_STR;
	}
}

/*
 * Every row against its field and kind: what config_store_number and
 * the list setters rely on.
 */
static void
config_keys_check_once(void)
{
	const struct config_key	*k, *o;
	enum config_kind	 kind;
	uint64_t		 tmax;

	for (k = config_keys; k < config_keys + config_nkeys; k++) {
		kind = k->ck_kind;
		tmax = config_ftype_max(k->ck_ftype);
		AN(k->ck_sect != CONFIG_SECT_NONE && k->ck_doc != NULL);
		AN((kind == CONFIG_KIND_CUSTOM) ==
		    ((k->ck_set != NULL) != (k->ck_item != NULL)));
		AN(k->ck_item == NULL || k->ck_ftype == CONFIG_FT_STRV);
		AN((kind == CONFIG_KIND_CUSTOM) == (k->ck_what != NULL));
		AN((kind == CONFIG_KIND_WORD) == (k->ck_words != NULL));
		AN((k->ck_ftype == CONFIG_FT_STRV) == (k->ck_noff != 0));
		AN(config_kind_ftype(kind) == CONFIG_FT_OTHER ||
		    config_kind_ftype(kind) == k->ck_ftype);
		/* Numbers fit their field; only a 64-bit size is unbounded. */
		if (kind == CONFIG_KIND_INTEGER)
			AN(k->ck_max != 0 && k->ck_max <= tmax);
		if (kind == CONFIG_KIND_SIZE)
			AN(tmax != 0 && k->ck_max <= tmax &&
			    (k->ck_max != 0 || tmax == UINT64_MAX));
		if (k->ck_flags & CONFIG_KF_INHERIT)
			AN(k->ck_ftype == CONFIG_FT_LONG && k->ck_dflt == NULL);
		for (o = config_keys; o < k; o++)
			AN(o->ck_sect != k->ck_sect ||
			    strcasecmp(o->ck_name, k->ck_name) != 0);
	}
}

/* Once per process, so that a wrong row fails the first load or print. */
void
config_keys_check(void)
{
	static pthread_once_t	once = PTHREAD_ONCE_INIT;

	AZ(pthread_once(&once, config_keys_check_once));
}

const struct config_key *
config_key_find(enum config_section s, const char *name)
{
	const struct config_key	*k;

	for (k = config_keys; k < config_keys + config_nkeys; k++)
		if (k->ck_sect == s && strcasecmp(k->ck_name, name) == 0)
			return k;
	return NULL;
}

/* What k's value may be, as --print-defaults says it. */
static void
config_value_str(const struct config_key *k, char *buf, size_t len)
{
	char	extra[200] = "";

	switch (k->ck_kind) {
	case CONFIG_KIND_WORD:
		config_words_str(k->ck_words, extra, sizeof(extra));
		break;
	case CONFIG_KIND_INTEGER:
	case CONFIG_KIND_SIZE:
	case CONFIG_KIND_DURATION:
		if (k->ck_min != 0 || k->ck_max != 0)
			config_bounds_str(k, extra, sizeof(extra));
		break;
	default:
		break;
	}
	snprintf(buf, len, "%s%s%s%s%s",
	    k->ck_kind == CONFIG_KIND_CUSTOM ? k->ck_what :
	    config_kind_str(k->ck_kind), *extra == '\0' ? "" :
	    k->ck_kind == CONFIG_KIND_WORD ? " " : ", ", extra,
	    k->ck_flags & CONFIG_KF_AUTO ? ", or auto" : "",
	    k->ck_flags & CONFIG_KF_REPEAT ? "; repeatable" : "");
}

/* One key: its doc and value on a comment line (two if too long). */
static void
config_print_key(FILE *f, const struct config_key *k)
{
	char	what[300];

	config_value_str(k, what, sizeof(what));
	if (strlen(k->ck_doc) + strlen(what) + 5 <= 79)
		fprintf(f, "# %s (%s)\n", k->ck_doc, what);
	else
		fprintf(f, "# %s\n# (%s)\n", k->ck_doc, what);
	if (k->ck_dflt != NULL)
		fprintf(f, "%s = %s\n", k->ck_name, k->ck_dflt);
	else
		fprintf(f, "# %s =\n", k->ck_name);
}

int
config_print_defaults(FILE *f)
{
	const struct config_key	*k;
	enum config_section	 s = CONFIG_SECT_NONE;
	const char		*example;

	config_keys_check();
	fprintf(f, "# Every key of mirror.conf with its default, as "
	    "\"regmirror check-config\n# --print-defaults\" prints them; "
	    "a key without a default is commented.\n");
	for (k = config_keys; k < config_keys + config_nkeys; k++) {
		if (k->ck_sect != s) {
			s = k->ck_sect;
			if ((example = config_section_example(s)) != NULL)
				fprintf(f, "\n[%s \"%s\"]\n",
				    config_section_str(s), example);
			else
				fprintf(f, "\n[%s]\n", config_section_str(s));
		}
		config_print_key(f, k);
	}
	return fflush(f) == 0 && !ferror(f) ? 0 : -1;
}
