/*
 * main.c — the regmirror command line: serve, check-config, version.
 */
#include "autoconf.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/opensslv.h>

#include "cache/cache.h"
#include "common/config.h"
#include "common/log.h"
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
"           IMAGE...        warm images on mirrors before a rollout (URL:\n"
"                           a mirror's admin API; default admin_listen of\n"
"                           -c FILE); tags are resolved once, by the first\n"
"                           mirror; prints IMAGE@sha256:... per image;\n"
"                           progress: a bar per mirror on a terminal,\n"
"                           JSON lines otherwise; exit 1 if any failed\n"
"  sync [POLICY] [--mirror URL] [--wait]\n"
"                           run replication now (every policy, or one) and\n"
"                           show last run, tags in sync, tags pushed (to\n"
"                           a destination), failures; exit 1 if any\n"
"                           failed (with --wait)\n"
"  version                  print the version\n"
"  help                     this text\n"
"\n"
"Options:\n"
"  -c, --config FILE        configuration file (default %s)\n"
"  -d, --debug              log at debug level (overrides log_level)\n"
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

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "print-defaults", no_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	const char	*cmd, *path = CONFIG_DEFAULT_PATH;
	struct config	*cfg;
	int		 ch, debug = 0, defaults = 0, lvl, rc;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
	    strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("regmirror %s (libevent %s, %s)\n", PACKAGE_VERSION,
		    event_get_version(), OPENSSL_VERSION_TEXT);
		return 0;
	}
	if (strcmp(cmd, "prefetch") == 0 || strcmp(cmd, "sync") == 0) {
		char	**rest = calloc((size_t)argc, sizeof(*rest));
		int	  n = 0, i, have_c = 0;

		for (i = 2; i < argc; i++) {
			if ((strcmp(argv[i], "-c") == 0 ||
			    strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
				path = argv[++i];
				have_c = 1;
			} else
				rest[n++] = argv[i];
		}
		cfg = have_c || access(path, R_OK) == 0 ? load(path) : NULL;
		rc = strcmp(cmd, "sync") == 0 ? cmd_sync(cfg, n, rest) :
		    cmd_prefetch(cfg, n, rest);
		free(rest);
		if (cfg != NULL)
			config_free(cfg);
		return rc;
	}
	if (strcmp(cmd, "cache") == 0) {
		/* -c may come anywhere; the rest is the subcommand's. */
		char	**rest = calloc((size_t)argc, sizeof(*rest));
		int	  n = 0, i;

		for (i = 2; i < argc; i++) {
			if ((strcmp(argv[i], "-c") == 0 ||
			    strcmp(argv[i], "--config") == 0) && i + 1 < argc)
				path = argv[++i];
			else
				rest[n++] = argv[i];
		}
		cfg = load(path);
		log_set_level(LOG_LEVEL_WARN);
		rc = cmd_cache(cfg, n, rest);
		free(rest);
		config_free(cfg);
		return rc;
	}
	optind = 2;
	while ((ch = getopt_long(argc, argv, "c:dh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'P':
			defaults = 1;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (defaults && strcmp(cmd, "check-config") != 0) {
		usage(stderr);
		return 2;
	}
	if (defaults)
		return config_print_defaults(stdout) == 0 ? 0 : 1;
	if (strcmp(cmd, "check-config") == 0) {
		cfg = load(path);
		for (size_t i = 0; i < cfg->nwarnings; i++)
			fprintf(stderr, "%s\n", cfg->warnings[i]);
		printf("%s: ok (%zu upstream%s, %zu listener%s)\n", path,
		    cfg->nupstreams, cfg->nupstreams == 1 ? "" : "s",
		    cfg->nlisten, cfg->nlisten == 1 ? "" : "s");
		config_free(cfg);
		return 0;
	}
	if (strcmp(cmd, "serve") != 0) {
		fprintf(stderr, "regmirror: unknown command '%s'\n", cmd);
		usage(stderr);
		return 2;
	}
	cfg = load(path);
	if (debug)
		log_set_level(LOG_LEVEL_DEBUG);
	else if ((lvl = log_level_parse(cfg->log_level)) >= 0)
		log_set_level((enum log_level)lvl);
	for (size_t i = 0; i < cfg->nwarnings; i++)
		log_warnx("%s", cfg->warnings[i]);
	if (cache_open(cfg) != 0)
		fatalx("cannot open the cache in %s", cfg->cache_dir);
	/* The budget's running total first, then reconcile adjusts it. */
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
