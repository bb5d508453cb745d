/*
 * main.c — the regmirror command line: argv[1] names a subcommand in one
 * table (main_cmds); serve, check-config, help and version are here, the
 * others in cli/cmd_*.c.
 */
#include "autoconf.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/opensslv.h>

#include "cache/cache.h"
#include "common/config.h"
#include "common/log.h"
#include "common/sdnotify.h"
#include "common/xmalloc.h"
#include "cli/cmd.h"
#include "proxy/proxy.h"
#include "upstream/upstream.h"

static void
usage(FILE *f)
{
	fprintf(f,
"usage: regmirror COMMAND [options]\n"
"\n"
"A pull-through cache and mirror for container registries.\n"
"\n"
"Commands:\n"
"  serve [-c FILE]          run the mirror in the foreground\n"
"  check-config [-c FILE]   validate the configuration; errors are\n"
"                           reported as FILE:LINE: message (exit 2),\n"
"                           what loads but is unsafe (credentials over\n"
"                           http, a password file others can read) as\n"
"                           FILE:LINE: warning: message (exit 0)\n"
"  check-config --print-defaults\n"
"                           print every section and key with its default\n"
"                           (a key without one as \"# key =\")\n"
"  cache SUB [-c FILE]      inspect and manage the cache (works while the\n"
"                           daemon runs); add --json for JSON output:\n"
"      ls                   tags and blobs\n"
"      du                   blobs, manifests, tags, negative entries,\n"
"                           links, index size, budget (blobs + index)\n"
"      verify               re-hash every blob; corrupt ones go to\n"
"                           DIR/quarantine/ (exit 3 if any)\n"
"      gc [--grace D] [--dry-run]\n"
"                           remove expired tags and negative entries,\n"
"                           blobs and manifests no tag or pin reaches,\n"
"                           stored more than D ago (default gc_grace),\n"
"                           and links to what is gone\n"
"      evict DIGEST... | --to SIZE\n"
"                           remove blobs, or least recently used ones\n"
"                           until blobs and index hold at most SIZE\n"
"      pin [--for D] DIGEST|IMAGE...\n"
"                           keep an image's blobs (all of them, through\n"
"                           its index) from eviction and gc; forever by\n"
"                           default\n"
"      unpin DIGEST|IMAGE...\n"
"  prefetch [--mirror URL]... [--platform OS/ARCH]... [--pin D] [--wait]\n"
"           [ADMIN OPTIONS] IMAGE...\n"
"                           warm images on mirrors before a rollout (URL:\n"
"                           a mirror's admin API; default admin_listen of\n"
"                           -c FILE); tags are resolved once, by the first\n"
"                           mirror; prints IMAGE@sha256:... per image;\n"
"                           progress: a bar per mirror on a terminal,\n"
"                           JSON lines otherwise; exit 1 if any failed\n"
"  sync [POLICY] [--mirror URL] [--wait] [ADMIN OPTIONS]\n"
"                           run replication now (every policy, or one) and\n"
"                           show last run, tags in sync, tags pushed (to\n"
"                           a destination), failures; exit 1 if any\n"
"                           failed (with --wait)\n"
"      the admin API (prefetch, sync): URL is http://HOST:PORT,\n"
"      https://HOST:PORT or unix:/PATH (without --mirror: from\n"
"      admin_listen, https with admin_tls_cert); ADMIN OPTIONS:\n"
"      --token-file FILE    send its first token (Authorization: Bearer);\n"
"                           else $REGMIRROR_ADMIN_TOKEN; else, for the\n"
"                           admin API of -c FILE, its admin_token_file\n"
"                           when readable.  Never sent over plain http\n"
"                           off this host\n"
"      --cacert FILE        verify an https admin API's certificate\n"
"                           against these CAs (default: the system's);\n"
"                           its name must match the URL's host\n"
"      --cert FILE --key FILE\n"
"                           a client certificate (admin_client_ca)\n"
"  version                  print the version\n"
"  help                     this text\n"
"\n"
"Options:\n"
"  -c, --config FILE        configuration file (default %s)\n"
"  -d, --debug              log at debug level (overrides log_level)\n"
"  --cache-dir DIR          serve, cache: use DIR instead of [cache] dir\n"
"  -h, --help               this text\n"
"\n"
"See mirror.conf.example for every configuration key.\n",
	    CONFIG_DEFAULT_PATH);
}

static struct config *
load(const char *path)
{
	struct config	*cfg;
	char		 err[1024];

	if (config_load(path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		exit(2);
	}
	return cfg;
}

/* What -c, -d, -h, --cache-dir and --print-defaults said (serve,
 * check-config). */
struct main_opts {
	const char	*path;
	const char	*cache_dir;
	int		 debug;
	int		 defaults;
};

/*
 * --cache-dir DIR replaces [cache] dir: trying the mirror out of a source
 * tree with the example config needs a directory the user can write,
 * without editing the config (which keeps the packaged default).
 */
static void
main_cache_dir(struct config *cfg, const char *dir)
{
	if (dir == NULL)
		return;
	free(cfg->cache_dir);
	cfg->cache_dir = xstrdup(dir);
}

struct main_cmd;
typedef int	(*main_cmd_f)(const struct main_cmd *, int argc, char **argv,
		    const struct main_opts *);
typedef int	(*main_sub_f)(const struct config *, int argc, char **argv);

#define MAIN_GETOPT	0x1	/* -c, -d, -h after the command, by getopt */
#define MAIN_DEFAULTS	0x2	/* ... and --print-defaults */

struct main_cmd {
	const char	*name;
	main_cmd_f	 run;
	main_sub_f	 sub;		/* the cli/cmd_*.c behind it */
	unsigned	 flags;
};

static int
main_help(const struct main_cmd *c, int argc, char **argv,
    const struct main_opts *o)
{
	(void)c;
	(void)argc;
	(void)argv;
	(void)o;
	usage(stdout);
	return 0;
}

static int
main_version(const struct main_cmd *c, int argc, char **argv,
    const struct main_opts *o)
{
	(void)c;
	(void)argc;
	(void)argv;
	(void)o;
	printf("regmirror %s (libevent %s, %s)\n", PACKAGE_VERSION,
	    event_get_version(), OPENSSL_VERSION_TEXT);
	return 0;
}

/*
 * The subcommands' own arguments: -c FILE may come anywhere among them
 * (it sets *path and *have_c), and so may --cache-dir DIR where cache_dir
 * is not NULL; the rest go to rest[], in order.  The count of them.
 */
static int
main_split_config(int argc, char **argv, const char **path, int *have_c,
    const char **cache_dir, char **rest)
{
	int	n = 0, i;

	for (i = 2; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 ||
		    strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
			*path = argv[++i];
			*have_c = 1;
		} else if (cache_dir != NULL &&
		    strcmp(argv[i], "--cache-dir") == 0 && i + 1 < argc &&
		    argv[i + 1][0] != '\0')
			*cache_dir = argv[++i];
		else
			rest[n++] = argv[i];
	}
	return n;
}

/* prefetch, sync: the config is optional (a --mirror URL does without)
 * unless -c names one. */
static int
main_job(const struct main_cmd *c, int argc, char **argv,
    const struct main_opts *o)
{
	const char	*path = CONFIG_DEFAULT_PATH;
	struct config	*cfg;
	char		**rest = xcalloc((size_t)argc, sizeof(*rest));
	int		  n, have_c = 0, rc;

	(void)o;
	n = main_split_config(argc, argv, &path, &have_c, NULL, rest);
	cfg = have_c || access(path, R_OK) == 0 ? load(path) : NULL;
	rc = c->sub(cfg, n, rest);
	free(rest);
	if (cfg != NULL)
		config_free(cfg);
	return rc;
}

/* cache: works on the cache directory of a config, which it needs. */
static int
main_cache(const struct main_cmd *c, int argc, char **argv,
    const struct main_opts *o)
{
	const char	*path = CONFIG_DEFAULT_PATH, *dir = NULL;
	struct config	*cfg;
	char		**rest = xcalloc((size_t)argc, sizeof(*rest));
	int		  n, have_c = 0, rc;

	(void)o;
	n = main_split_config(argc, argv, &path, &have_c, &dir, rest);
	cfg = load(path);
	main_cache_dir(cfg, dir);
	log_set_level(LOG_LEVEL_WARN);
	rc = c->sub(cfg, n, rest);
	free(rest);
	config_free(cfg);
	return rc;
}

static int
main_check_config(const struct main_cmd *c, int argc, char **argv,
    const struct main_opts *o)
{
	struct config	*cfg;

	(void)c;
	(void)argc;
	(void)argv;
	if (o->defaults)
		return config_print_defaults(stdout) == 0 ? 0 : 1;
	cfg = load(o->path);
	for (size_t i = 0; i < cfg->nwarnings; i++)
		fprintf(stderr, "%s\n", cfg->warnings[i]);
	printf("%s: ok (%zu upstream%s, %zu listener%s)\n", o->path,
	    cfg->nupstreams, cfg->nupstreams == 1 ? "" : "s",
	    cfg->nlisten, cfg->nlisten == 1 ? "" : "s");
	config_free(cfg);
	return 0;
}

static int
main_serve(const struct main_cmd *c, int argc, char **argv,
    const struct main_opts *o)
{
	sigset_t	 set;
	struct config	*cfg;
	int		 lvl, rc;

	(void)c;
	(void)argc;
	(void)argv;
	cfg = load(o->path);
	main_cache_dir(cfg, o->cache_dir);
	if (o->debug)
		log_set_level(LOG_LEVEL_DEBUG);
	else if ((lvl = log_level_parse(cfg->log_level)) >= 0)
		log_set_level((enum log_level)lvl);
	for (size_t i = 0; i < cfg->nwarnings; i++)
		log_warnx("%s", cfg->warnings[i]);
	sdnotify_status("starting: opening the cache in %s", cfg->cache_dir);
	/*
	 * Every thread from here on (the cache's manager and reconcile
	 * threads too) inherits a mask without the signals the main thread
	 * waits for: one that reached another thread would take its
	 * default action and end the daemon (proxy_run waits for them).
	 */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (cache_open(cfg) != 0)
		fatalx("cannot open the cache in %s", cfg->cache_dir);
	/* The manager (access times, budget), then reconcile behind it. */
	cache_manager_start(cfg);
	cache_reconcile_start();
	if (upstream_init_all(cfg) != 0)
		fatalx("cannot set up the upstreams");
	rc = proxy_run(cfg) == 0 ? 0 : 1;
	upstream_fini_all();
	cache_close();
	config_free(cfg);
	return rc;
}

/* By argv[1].  A name that is not here has its options parsed first (-h
 * or a bad option answers as for serve), then is refused. */
static const struct main_cmd main_cmds[] = {
	{ "help",	  main_help,	     NULL,	   0 },
	{ "-h",		  main_help,	     NULL,	   0 },
	{ "--help",	  main_help,	     NULL,	   0 },
	{ "version",	  main_version,	     NULL,	   0 },
	{ "--version",	  main_version,	     NULL,	   0 },
	{ "prefetch",	  main_job,	     cmd_prefetch, 0 },
	{ "sync",	  main_job,	     cmd_sync,	   0 },
	{ "cache",	  main_cache,	     cmd_cache,	   0 },
	{ "check-config", main_check_config, NULL,	   MAIN_GETOPT |
							   MAIN_DEFAULTS },
	{ "serve",	  main_serve,	     NULL,	   MAIN_GETOPT },
};

/* -1 to go on, else the exit status (-h, or a bad option). */
static int
main_getopt(int argc, char **argv, struct main_opts *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "print-defaults", no_argument, NULL, 'P' },
		{ "cache-dir", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	int	ch;

	optind = 2;
	while ((ch = getopt_long(argc, argv, "c:dh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->path = optarg;
			break;
		case 'd':
			o->debug = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'P':
			o->defaults = 1;
			break;
		case 'C':
			if (optarg[0] == '\0') {
				usage(stderr);
				return 2;
			}
			o->cache_dir = optarg;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	return -1;
}

int
main(int argc, char *argv[])
{
	const struct main_cmd	*c = NULL;
	struct main_opts	 o = { CONFIG_DEFAULT_PATH, NULL, 0, 0 };
	size_t			 i;
	int			 rc;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	for (i = 0; i < sizeof(main_cmds) / sizeof(main_cmds[0]); i++)
		if (strcmp(argv[1], main_cmds[i].name) == 0)
			c = &main_cmds[i];
	if (c != NULL && !(c->flags & MAIN_GETOPT))
		return c->run(c, argc, argv, NULL);
	if ((rc = main_getopt(argc, argv, &o)) >= 0)
		return rc;
	if (o.defaults && (c == NULL || !(c->flags & MAIN_DEFAULTS))) {
		usage(stderr);
		return 2;
	}
	if (c == NULL) {
		fprintf(stderr, "regmirror: unknown command '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	return c->run(c, argc, argv, &o);
}
