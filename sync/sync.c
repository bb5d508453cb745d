/*
 * sync.c — the jobs module's front (sync.h): set-up, the admin routes it
 * answers, and the secret its requests carry.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>

#include "sync/sync.h"
#include "sync/sync_int.h"

char	sync_secret[33];

static void
sync_secret_init(void)
{
	unsigned char	r[16];
	size_t		i;

	arc4random_buf(r, sizeof(r));
	for (i = 0; i < sizeof(r); i++)
		snprintf(sync_secret + 2 * i, 3, "%02x", r[i]);
}

const char *
sync_token(void)
{
	return sync_secret;
}

int
sync_init(struct event_base *base, struct upstream_worker *up,
    const struct config *cfg, int have_plain)
{
	sync_secret_init();
	/* Replication fetches through prefetch jobs: without them, neither. */
	if (sync_pf_init(base, up, cfg, have_plain) != 0)
		return -1;
	sync_repl_init(base, up, cfg);
	return 0;
}

void
sync_fini(void)
{
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
