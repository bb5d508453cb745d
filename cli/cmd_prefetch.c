/*
 * cmd_prefetch.c — "regmirror prefetch": warm images on one or more
 * mirrors (one per region) before a rollout, through their admin APIs.
 *
 * Each tag is resolved once, by the first mirror; every other mirror is
 * then asked for that same digest, so every region deploys the same bytes.
 * Prints IMAGE@sha256:... per image on stdout; progress goes to stderr (a
 * progress line on a terminal, JSON lines otherwise).  Exit 1 if anything
 * failed.
 *
 * "regmirror sync" (cmd_sync, at the end) is here too: the same admin API
 * client (cli_admin.c, with its --token-file, --cacert, --cert and --key),
 * another route.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/config.h"
#include "common/ref.h"
#include "common/xmalloc.h"
#include "cli/cli_int.h"
#include "cli/cmd.h"

struct cli_job {
	struct cli_admin *admin;
	const char	*mirror;
	char		 id[64];
	json_t		*last;		/* last job state */
};

static int
cli_job_post(struct cli_job *cj, json_t *images, json_t *plats,
    const char *pin)
{
	json_t	*req, *resp;
	char	*body;
	int	 status;

	req = json_pack("{s:O,s:O}", "images", images, "platforms", plats);
	if (pin != NULL)
		json_object_set_new(req, "pin", json_string(pin));
	body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	resp = cli_admin_call(cj->admin, cj->mirror, "/api/v1/prefetch", body,
	    &status);
	free(body);
	if (status != 202 || resp == NULL ||
	    !json_is_string(json_object_get(resp, "id"))) {
		fprintf(stderr, "regmirror prefetch: %s refused the job "
		    "(status %d): %s\n", cj->mirror, status, resp != NULL &&
		    json_is_string(json_object_get(resp, "error")) ?
		    json_string_value(json_object_get(resp, "error")) :
		    "no answer");
		json_decref(resp);
		return -1;
	}
	snprintf(cj->id, sizeof(cj->id), "%s",
	    json_string_value(json_object_get(resp, "id")));
	json_decref(resp);
	return 0;
}

/* Refresh; 1 when finished (done/failed), 0 running, -1 error. */
static int
cli_job_poll(struct cli_job *cj)
{
	char		 path[128];
	int		 status;
	json_t		*j;
	const char	*st;

	snprintf(path, sizeof(path), "/api/v1/jobs/%s", cj->id);
	if ((j = cli_admin_call(cj->admin, cj->mirror, path, NULL,
	    &status)) == NULL || status != 200) {
		json_decref(j);
		return -1;
	}
	json_decref(cj->last);
	cj->last = j;
	st = json_string_value(json_object_get(j, "state"));
	return st != NULL && (strcmp(st, "done") == 0 ||
	    strcmp(st, "failed") == 0);
}

/* 1 when every image has a digest or has failed. */
static int
cli_job_resolved(const struct cli_job *cj)
{
	json_t		*e;
	size_t		 i;
	const char	*d, *st;

	json_array_foreach(json_object_get(cj->last, "images"), i, e) {
		d = json_string_value(json_object_get(e, "digest"));
		st = json_string_value(json_object_get(e, "state"));
		if ((d == NULL || *d == '\0') && (st == NULL ||
		    strcmp(st, "failed") != 0))
			return 0;
	}
	return 1;
}

/*
 * Progress on stderr.  A terminal gets one bar per mirror, redrawn in
 * place ("[#######.............]  35%  7/20 blobs  12.3 MB  URL  running");
 * anything else gets one JSON line per mirror and poll, for machines.
 */
#define CLI_BAR	30

static void
cli_progress(struct cli_job *jobs, size_t n, int tty)
{
	static size_t	 drawn;		/* bar lines on screen */
	json_t		*e;
	size_t		 i, k, fill;
	json_int_t	 b, bd, bytes;
	char		 bar[CLI_BAR + 1];
	int		 pct;

	if (tty && drawn > 0)
		fprintf(stderr, "\033[%zuA", drawn);	/* back up */
	drawn = 0;
	for (k = 0; k < n; k++) {
		if (jobs[k].last == NULL)
			continue;
		b = bd = bytes = 0;
		json_array_foreach(json_object_get(jobs[k].last, "images"),
		    i, e) {
			b += json_integer_value(json_object_get(e, "blobs"));
			bd += json_integer_value(json_object_get(e,
			    "blobs_done"));
			bytes += json_integer_value(json_object_get(e,
			    "bytes"));
		}
		if (tty) {
			const char *st = json_string_value(json_object_get(
			    jobs[k].last, "state"));

			pct = b > 0 ? (int)(bd * 100 / b) : 0;
			if (st != NULL && strcmp(st, "done") == 0)
				pct = 100;
			fill = (size_t)pct * CLI_BAR / 100;
			memset(bar, '#', fill);
			memset(bar + fill, '.', CLI_BAR - fill);
			bar[CLI_BAR] = '\0';
			fprintf(stderr, "\033[2K[%s] %3d%%  %lld/%lld blobs  "
			    "%.1f MB  %s  %s%s\n", bar, pct, (long long)bd,
			    (long long)b, (double)bytes / 1e6, jobs[k].mirror,
			    st != NULL ? st : "?", json_is_true(
			    json_object_get(jobs[k].last, "paused")) ?
			    " (rate limit)" : "");
			drawn++;
		} else {
			json_t	*line = json_pack("{s:s,s:O}", "mirror",
			    jobs[k].mirror, "job", jobs[k].last);
			char	*s = json_dumps(line, JSON_COMPACT);

			fprintf(stderr, "%s\n", s);
			free(s);
			json_decref(line);
		}
	}
}

static void
cli_sleep_poll(void)
{
	struct timespec	ts = { 0, 200 * 1000 * 1000 };

	nanosleep(&ts, NULL);	/* the polling interval, not a sync */
}

/* "regmirror prefetch" as asked. */
struct cli_pf_args {
	json_t		*images, *plats;	/* JSON arrays of strings */
	const char	*pin;
	char		**mirrors;		/* URLs, from argv */
	size_t		 nm;
	int		 wait;
	struct cli_admin admin;			/* how to reach them */
};

/* 0, or the exit status (2: a bad option, no image). */
static int
cli_pf_args_parse(struct cli_pf_args *a, int argc, char **argv)
{
	size_t	i;
	int	r;

	for (i = 0; i < (size_t)argc; i++) {
		if ((r = cli_admin_option(&a->admin, "prefetch", argc, argv,
		    &i)) != 0) {
			if (r < 0)
				return 2;
		} else if (strcmp(argv[i], "--mirror") == 0 &&
		    i + 1 < (size_t)argc) {
			a->mirrors = xreallocarray(a->mirrors, a->nm + 1,
			    sizeof(*a->mirrors));
			a->mirrors[a->nm++] = argv[++i];
		} else if (strcmp(argv[i], "--platform") == 0 &&
		    i + 1 < (size_t)argc)
			json_array_append_new(a->plats, json_string(argv[++i]));
		else if (strcmp(argv[i], "--pin") == 0 && i + 1 < (size_t)argc)
			a->pin = argv[++i];
		else if (strcmp(argv[i], "--wait") == 0)
			a->wait = 1;
		else if (argv[i][0] == '-') {
			fprintf(stderr, "regmirror prefetch: bad option '%s'\n",
			    argv[i]);
			return 2;
		} else
			json_array_append_new(a->images, json_string(argv[i]));
	}
	if (json_array_size(a->images) == 0) {
		fprintf(stderr, "usage: regmirror prefetch [--mirror URL]... "
		    "[--platform OS/ARCH]... [--pin DURATION] [--wait] "
		    CLI_ADMIN_USAGE " IMAGE...\n");
		return 2;
	}
	return 0;
}

/*
 * The first mirror's job, until every tag has a digest (other mirrors are
 * asked for those digests), or until it is finished when it is the only
 * one and --wait was given.  -1 if the mirror was lost.
 */
static int
cli_pf_resolve(struct cli_job *first, size_t nm, int wait, int tty)
{
	int	deadline, r;

	for (deadline = 0; deadline < 5 * 60 * 30; deadline++) {
		if ((r = cli_job_poll(first)) < 0) {
			fprintf(stderr, "regmirror prefetch: lost %s\n",
			    first->mirror);
			return -1;
		}
		if (r == 1 || (nm > 1 && cli_job_resolved(first)) ||
		    (!wait && cli_job_resolved(first)))
			break;
		cli_progress(first, 1, tty);
		cli_sleep_poll();
	}
	return 0;
}

/* Every image the first job resolved, as IMAGE@DIGEST: a JSON array. */
static json_t *
cli_pf_by_digest(const struct cli_job *first)
{
	json_t			*out = json_array(), *e;
	struct ref_image	 ri;
	const char		*d;
	char			*byd;
	size_t			 i;

	json_array_foreach(json_object_get(first->last, "images"), i, e) {
		d = json_string_value(json_object_get(e, "digest"));
		if (d == NULL || *d == '\0' || ref_image_parse(
		    json_string_value(json_object_get(e, "image")), &ri) != 0)
			continue;
		xasprintf(&byd, "%s%s%s@%s", ri.host != NULL ? ri.host : "",
		    ri.host != NULL ? "/" : "", ri.name, d);
		json_array_append_new(out, json_string(byd));
		free(byd);
		ref_image_fini(&ri);
	}
	return out;
}

/* --wait: poll every job until each has finished. */
static void
cli_pf_wait(struct cli_job *jobs, size_t nm, int tty)
{
	size_t	k;
	int	deadline, all;

	for (deadline = 0; deadline < 60 * 60 * 5; deadline++) {
		all = 1;
		for (k = 0; k < nm; k++)
			if (jobs[k].id[0] != '\0' &&
			    cli_job_poll(&jobs[k]) == 0)
				all = 0;
		cli_progress(jobs, nm, tty);
		if (all)
			break;
		cli_sleep_poll();
	}
}

/* Each image's error on stderr, then IMAGE@DIGEST per resolved image on
 * stdout.  1 if anything failed (or, with --wait, did not finish). */
static int
cli_pf_report(struct cli_job *jobs, size_t nm, int wait)
{
	json_t		*e;
	const char	*st, *err, *d, *img;
	size_t		 i, k;
	int		 rc = 0;

	for (k = 0; k < nm; k++) {
		if (jobs[k].last == NULL)
			continue;
		st = json_string_value(json_object_get(jobs[k].last, "state"));
		if (wait && (st == NULL || strcmp(st, "done") != 0))
			rc = 1;
		json_array_foreach(json_object_get(jobs[k].last, "images"), i,
		    e) {
			err = json_string_value(json_object_get(e, "error"));
			if (err != NULL) {
				fprintf(stderr, "%s: %s: %s\n", jobs[k].mirror,
				    json_string_value(json_object_get(e,
				    "image")), err);
				rc = 1;
			}
		}
	}
	json_array_foreach(json_object_get(jobs[0].last, "images"), i, e) {
		d = json_string_value(json_object_get(e, "digest"));
		img = json_string_value(json_object_get(e, "image"));
		if (d == NULL || *d == '\0' || img == NULL)
			rc = 1;
		else if (strchr(img, '@') != NULL)	/* asked by digest */
			printf("%s\n", img);
		else
			printf("%s@%s\n", img, d);
	}
	return rc;
}

int
cmd_prefetch(const struct config *cfg, int argc, char **argv)
{
	struct cli_pf_args	 a;
	struct cli_job		*jobs = NULL;
	json_t			*pinned;
	char			*url = NULL;
	size_t			 k;
	int			 tty = isatty(2), rc;

	memset(&a, 0, sizeof(a));
	a.images = json_array();
	a.plats = json_array();
	if ((rc = cli_pf_args_parse(&a, argc, argv)) != 0)
		goto done;
	if (a.nm == 0) {
		if ((url = cli_admin_default(cfg, "prefetch")) == NULL) {
			rc = 2;
			goto done;
		}
		a.mirrors = xcalloc(1, sizeof(*a.mirrors));
		a.mirrors[a.nm++] = url;
	}
	/* The config's own token only for the config's own admin API. */
	if ((rc = cli_admin_ready(&a.admin, "prefetch", url != NULL ? cfg :
	    NULL)) != 0)
		goto done;
	jobs = xcalloc(a.nm, sizeof(*jobs));
	for (k = 0; k < a.nm; k++) {
		jobs[k].admin = &a.admin;
		jobs[k].mirror = a.mirrors[k];
	}

	/* The first mirror resolves every tag. */
	if (cli_job_post(&jobs[0], a.images, a.plats, a.pin) != 0 ||
	    cli_pf_resolve(&jobs[0], a.nm, a.wait, tty) != 0) {
		rc = 1;
		goto done;
	}
	/* Every other mirror fetches the same digests. */
	pinned = cli_pf_by_digest(&jobs[0]);
	for (k = 1; k < a.nm; k++)
		if (json_array_size(pinned) == 0 ||
		    cli_job_post(&jobs[k], pinned, a.plats, a.pin) != 0)
			rc = 1;
	json_decref(pinned);
	if (a.wait)
		cli_pf_wait(jobs, a.nm, tty);
	if (cli_pf_report(jobs, a.nm, a.wait) != 0)
		rc = 1;
done:
	for (k = 0; jobs != NULL && k < a.nm; k++)
		json_decref(jobs[k].last);
	free(jobs);
	free(url);
	free(a.mirrors);
	json_decref(a.images);
	json_decref(a.plats);
	cli_admin_fini(&a.admin);
	return rc;
}

/* Ask mirror to run every policy, or one: its reply ({"policies": [...]},
 * each with the runs so far), or NULL (said on stderr). */
static json_t *
cli_sync_trigger(struct cli_admin *ca, const char *mirror,
    const char *policy)
{
	char	 path[300];
	json_t	*resp;
	int	 status;

	if (policy != NULL)
		snprintf(path, sizeof(path), "/api/v1/replication/%s/sync",
		    policy);
	else
		snprintf(path, sizeof(path), "/api/v1/replication/sync");
	resp = cli_admin_call(ca, mirror, path, "{}", &status);
	if (status != 202 || resp == NULL) {
		fprintf(stderr, "regmirror sync: %s answered %d%s%s\n", mirror,
		    status, resp != NULL ? ": " : "", resp != NULL &&
		    json_is_string(json_object_get(resp, "error")) ?
		    json_string_value(json_object_get(resp, "error")) : "");
		json_decref(resp);
		return NULL;
	}
	return resp;
}

/* 1 when every policy in want is idle in now and has run since. */
static int
cli_sync_settled(json_t *now, json_t *want)
{
	json_t		*e, *w;
	const char	*name, *st;
	size_t		 i, k;
	int		 done = 1;

	json_array_foreach(json_object_get(now, "policies"), i, e) {
		name = json_string_value(json_object_get(e, "name"));
		st = json_string_value(json_object_get(e, "state"));
		json_array_foreach(want, k, w)
			if (strcmp(json_string_value(json_object_get(w,
			    "name")), name) == 0 && (strcmp(st, "idle") != 0 ||
			    json_integer_value(json_object_get(e, "runs")) <
			    json_integer_value(json_object_get(w, "runs"))))
				done = 0;
	}
	return done;
}

/* The policies of want as they are in now: {"policies": [...]}. */
static json_t *
cli_sync_select(json_t *now, json_t *want)
{
	json_t	*sel = json_array(), *e, *w;
	size_t	 i, k;

	json_array_foreach(json_object_get(now, "policies"), i, e)
		json_array_foreach(want, k, w)
			if (json_equal(json_object_get(w, "name"),
			    json_object_get(e, "name")))
				json_array_append(sel, e);
	return json_pack("{s:o}", "policies", sel);
}

/* --wait: poll until the policies triggered have run; *resp becomes their
 * state then (unchanged if they never settle). */
static void
cli_sync_wait(struct cli_admin *ca, const char *mirror, json_t **resp)
{
	json_t	*now, *want = json_object_get(*resp, "policies");
	int	 status, tries;

	for (tries = 0; tries < 5 * 60 * 30; tries++) {
		now = cli_admin_call(ca, mirror, "/api/v1/replication", NULL,
		    &status);
		if (cli_sync_settled(now, want)) {
			/* Report the policies asked for, as they are now. */
			json_t *sel = cli_sync_select(now, want);

			json_decref(*resp);
			json_decref(now);
			*resp = sel;
			return;
		}
		json_decref(now);
		cli_sleep_poll();
	}
}

/* One line per policy, and one for its pushes; 1 if, with --wait, one
 * failed. */
static int
cli_sync_print(json_t *policies, int wait)
{
	json_t		*e, *p;
	const char	*err;
	size_t		 i;
	int		 rc = 0;

	json_array_foreach(policies, i, e) {
		err = json_string_value(json_object_get(e, "last_error"));
		printf("%s: %s, run %lld: %lld tags in sync, %lld failed%s%s\n",
		    json_string_value(json_object_get(e, "name")),
		    json_string_value(json_object_get(e, "state")),
		    (long long)json_integer_value(json_object_get(e, "runs")),
		    (long long)json_integer_value(json_object_get(e,
		    "last_tags")), (long long)json_integer_value(
		    json_object_get(e, "last_failed")), err != NULL ? ": " : "",
		    err != NULL ? err : "");
		if ((p = json_object_get(e, "push")) != NULL)
			printf("%s: %lld tags pushed to %s, %lld failed\n",
			    json_string_value(json_object_get(e, "name")),
			    (long long)json_integer_value(json_object_get(p,
			    "last_pushed")), json_string_value(
			    json_object_get(p, "destination")),
			    (long long)json_integer_value(json_object_get(p,
			    "last_failed")));
		if (wait && (err != NULL || json_integer_value(
		    json_object_get(e, "last_failed")) > 0))
			rc = 1;
	}
	return rc;
}

/*
 * "regmirror sync [POLICY] [--mirror URL] [--wait] [admin options]":
 * trigger replication now on a mirror's admin API and show each policy's
 * status.
 */
int
cmd_sync(const struct config *cfg, int argc, char **argv)
{
	struct cli_admin	 ca;
	const char		*mirror = NULL, *policy = NULL;
	char			*url = NULL;
	json_t			*resp;
	size_t			 i;
	int			 wait = 0, rc, r;

	memset(&ca, 0, sizeof(ca));
	for (i = 0; i < (size_t)argc; i++) {
		if ((r = cli_admin_option(&ca, "sync", argc, argv, &i)) != 0) {
			if (r < 0)
				return 2;
		} else if (strcmp(argv[i], "--mirror") == 0 &&
		    i + 1 < (size_t)argc)
			mirror = argv[++i];
		else if (strcmp(argv[i], "--wait") == 0)
			wait = 1;
		else if (argv[i][0] == '-') {
			fprintf(stderr, "regmirror sync: bad option '%s'\n",
			    argv[i]);
			return 2;
		} else
			policy = argv[i];
	}
	if (mirror == NULL) {
		if ((url = cli_admin_default(cfg, "sync")) == NULL)
			return 2;
		mirror = url;
	}
	if ((rc = cli_admin_ready(&ca, "sync", url != NULL ? cfg : NULL)) !=
	    0)
		goto done;
	if ((resp = cli_sync_trigger(&ca, mirror, policy)) == NULL) {
		rc = 1;
		goto done;
	}
	if (wait)
		cli_sync_wait(&ca, mirror, &resp);
	rc = cli_sync_print(json_object_get(resp, "policies"), wait);
	json_decref(resp);
done:
	cli_admin_fini(&ca);
	free(url);
	return rc;
}
