/*
 * proxy_reload.c — SIGHUP's config half: read mirror.conf again, and when
 * it validates take over what can change while the mirror runs, say what
 * else changed and needs a restart.
 *
 * Taken over: the [access] rules (access/access.c swaps them under a
 * read-write lock), each upstream's username and password
 * (upstream_credentials_set: its cached tokens go), and the keys of each
 * replication policy (sync_reload: the jobs' loop takes them when the
 * policy is next idle).  The certificates, htpasswd and the admin
 * tokens are reread by proxy_server.c as before.
 *
 * Lifetimes: the start-up config stays what everything else points
 * into, until exit; every restart-only key keeps its start-up value.
 * The config a SIGHUP reads lives only during the reload: each part
 * taken over is moved out of it (or copied, for credentials) into the
 * module that uses it, which frees the part it replaces once nothing
 * can read it any more (README, "Reloading"; docs/ARCHITECTURE.md).
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/log.h"
#include "proxy/proxy_int.h"
#include "sync/sync.h"
#include "upstream/upstream.h"

static void
proxy_reload_restart_cb(const char *section, const char *key, void *arg)
{
	(void)arg;
	if (strcmp(key, "added") == 0 || strcmp(key, "removed") == 0)
		log_warnx("SIGHUP: %s %s; needs a restart", section, key);
	else
		log_warnx("SIGHUP: %s %s changed; needs a restart", section,
		    key);
}

/* The running upstream of cf's section cu (by its own name), or NULL. */
static const struct config_upstream *
proxy_reload_upstream(const struct config *run,
    const struct config_upstream *cu)
{
	const struct config_upstream	*ru;

	ru = config_upstream_find(run, cu->name);
	return ru != NULL && strcasecmp(ru->name, cu->name) == 0 ? ru : NULL;
}

/*
 * The rules and credentials read must keep what they guard shut on the
 * listeners that still run (a new listen waits for a restart): the
 * fail-closed check again, with those.
 */
static int
proxy_reload_check(const struct config *run, struct config *cf)
{
	struct config		 mix = *cf;
	struct config_upstream	*cu;
	const struct config_upstream *ru;
	char			 err[1024];

	mix.listen = run->listen;
	mix.nlisten = run->nlisten;
	mix.tls_listen = run->tls_listen;
	mix.ntls_listen = run->ntls_listen;
	/* And with what stays in force until a restart: [auth] on or off,
	 * each running upstream's public. */
	mix.auth = run->auth;
	for (cu = cf->upstreams; cu != NULL; cu = cu->next)
		if ((ru = proxy_reload_upstream(run, cu)) != NULL)
			cu->public = ru->public;
	if (config_fail_closed_check(&mix, err, sizeof(err)) == 0)
		return 0;
	log_warnx("SIGHUP: %s (with the listeners running now)", err);
	return -1;
}

/*
 * Credentials: those that go first (gone = 1: an upstream now anonymous),
 * then, after the new rules are in, the rest; so that at no moment do
 * credentials meet rules neither config allowed them with.
 */
static unsigned
proxy_reload_creds(const struct config *run, const struct config *cf,
    int gone)
{
	const struct config_upstream	*cu;
	unsigned			 n = 0;

	for (cu = cf->upstreams; cu != NULL; cu = cu->next) {
		if (proxy_reload_upstream(run, cu) == NULL ||
		    (cu->username == NULL) != gone)
			continue;
		if (upstream_credentials_set(cu->name, cu->username,
		    cu->password) != 1)
			continue;
		n++;
		if (cu->username != NULL)
			log_info("SIGHUP: upstream %s: new credentials for "
			    "user %s; its cached tokens dropped", cu->name,
			    cu->username);
		else
			log_info("SIGHUP: upstream %s: no credentials now; "
			    "its cached tokens dropped", cu->name);
	}
	return n;
}

/*
 * cf's policies, taken out of it, less those whose source or destination
 * the running mirror does not have (an upstream added waits for a
 * restart, and so does a policy that needs it).
 */
static struct config_replication *
proxy_reload_policies(const struct config *run, struct config *cf)
{
	struct config_replication	*list = NULL, **tail = &list, *cr;
	const char			*missing;

	while ((cr = cf->replications) != NULL) {
		cf->replications = cr->next;
		cr->next = NULL;
		missing = config_upstream_find(run, cr->source) == NULL ?
		    cr->source : cr->destination != NULL &&
		    config_upstream_find(run, cr->destination) == NULL ?
		    cr->destination : NULL;
		if (missing != NULL) {
			log_warnx("SIGHUP: [replication \"%s\"] names upstream "
			    "%s, which is not running: its old keys stay "
			    "(needs a restart)", cr->name, missing);
			config_replication_free(cr);
			continue;
		}
		*tail = cr;
		tail = &cr->next;
	}
	cf->nreplications = 0;
	return list;
}

int
proxy_config_reload(const struct config *run)
{
	struct config			*cf;
	struct config_access		*rules;
	struct config_replication	*repls;
	char				 err[1024];
	size_t				 i, nrules;
	unsigned			 nrestart, ncreds;

	if (config_load(run->path, &cf, err, sizeof(err)) != 0) {
		log_warnx("SIGHUP: %s", err);
		log_warnx("SIGHUP: config has errors, nothing reloaded");
		return -1;
	}
	if (proxy_reload_check(run, cf) != 0) {
		log_warnx("SIGHUP: config has errors, nothing reloaded");
		config_free(cf);
		return -1;
	}
	for (i = 0; i < cf->nwarnings; i++)
		log_warnx("SIGHUP: %s", cf->warnings[i]);
	nrestart = config_diff_restart(run, cf, proxy_reload_restart_cb,
	    NULL);
	nrestart += sync_secret_changed(run);
	ncreds = 0;
	if ((run->auth || run->naccess > 0) != (cf->auth || cf->naccess > 0))
		/* Rules that would not be enforced (or none where they are)
		 * must not meet new credentials: neither is taken. */
		log_warnx("SIGHUP: access control would turn %s: the [access] "
		    "rules and upstream credentials stay as they are until a "
		    "restart", cf->auth || cf->naccess > 0 ? "on" : "off");
	else {
		ncreds = proxy_reload_creds(run, cf, 1);
		rules = cf->access;
		nrules = cf->naccess;
		cf->access = NULL;
		cf->naccess = 0;
		if (proxy_access_rules_reload(rules, nrules) == 1)
			log_info("SIGHUP: [access] rules reloaded (%zu rule%s)",
			    nrules, nrules == 1 ? "" : "s");
		ncreds += proxy_reload_creds(run, cf, 0);
	}
	repls = proxy_reload_policies(run, cf);
	sync_reload(repls);
	log_info("SIGHUP: reread %s; %u upstream credential%s changed; %u "
	    "change%s need%s a restart", run->path, ncreds, ncreds == 1 ?
	    "" : "s", nrestart, nrestart == 1 ? "" : "s", nrestart == 1 ?
	    "s" : "");
	config_free(cf);
	return 0;
}
