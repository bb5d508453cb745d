/*
 * sync.c — the jobs module's front (sync.h): set-up, the admin routes it
 * answers, and the secret its requests carry.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "common/tokens.h"

#include "sync/sync.h"
#include "sync/sync_int.h"

static char	 sync_random[33];
static char	*sync_shared;	/* [server] job_token_file */

/*
 * The secret the jobs' requests carry (X-Regmirror-Job): the first token
 * of [server] job_token_file, shared by every member of a tier so that a
 * job reaching another member through the front door is known there;
 * else one made at start-up, known to this process only.
 */
static int
sync_secret_init(const struct config *cfg)
{
	unsigned char	r[16];
	char		err[512];
	size_t		i;

	arc4random_buf(r, sizeof(r));
	for (i = 0; i < sizeof(r); i++)
		snprintf(sync_random + 2 * i, 3, "%02x", r[i]);
	if (cfg->job_token_file == NULL)
		return 0;
	free(sync_shared);
	if ((sync_shared = tokens_first_file(cfg->job_token_file, err,
	    sizeof(err))) == NULL) {
		log_warnx("job_token_file %s", err);
		return -1;
	}
	if (strlen(sync_shared) < 16) {
		log_warnx("job_token_file %s: the secret is shorter than 16 "
		    "bytes", cfg->job_token_file);
		free(sync_shared);
		sync_shared = NULL;
		return -1;
	}
	return 0;
}

/*
 * SIGHUP: the secret is read once (workers compare against it while it
 * lives); a file rewritten in place is noticed and logged as needing a
 * restart.  1 when it was, else 0.
 */
unsigned
sync_secret_changed(const struct config *cfg)
{
	char	 err[512], *now;
	int	 changed;

	if (cfg->job_token_file == NULL || sync_shared == NULL)
		return 0;
	if ((now = tokens_first_file(cfg->job_token_file, err,
	    sizeof(err))) == NULL) {
		log_warnx("SIGHUP: job_token_file %s", err);
		return 0;
	}
	changed = strcmp(now, sync_shared) != 0;
	free(now);
	if (changed)
		log_warnx("SIGHUP: [server] job_token_file content changed; "
		    "needs a restart");
	return changed ? 1 : 0;
}

const char *
sync_token(void)
{
	return sync_shared != NULL ? sync_shared : sync_random;
}

int
sync_init(struct event_base *base, struct upstream_worker *up,
    const struct config *cfg, int have_plain)
{
	if (sync_secret_init(cfg) != 0)
		fatalx("cannot use job_token_file %s", cfg->job_token_file);
	/* Replication fetches through prefetch jobs: without them, neither. */
	if (sync_pf_init(base, up, cfg, have_plain) != 0)
		return -1;
	sync_repl_init(base, up, cfg);
	return 0;
}

void
sync_reload(struct config_replication *list)
{
	sync_repl_reload(list);
}

void
sync_fini(void)
{
	free(sync_shared);
	sync_shared = NULL;
	sync_pf_fini();
}

int
sync_admin_route(struct evhttp_request *req, const char *path,
    const struct config *cfg, int *status, struct json_t **out)
{
	if (sync_pf_route(req, path, cfg, status, out) == 0 ||
	    sync_repl_route(req, path, status, out) == 0)
		return 0;
	return -1;
}

void
sync_metrics(struct evbuffer *b)
{
	sync_repl_metrics(b);
}
