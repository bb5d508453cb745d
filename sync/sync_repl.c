/*
 * sync_repl.c — replication policies ([replication "NAME"]): on an
 * interval, or when triggered, pull the tags a region needs from a source
 * upstream (which may be another region's mirror) into the local cache.
 *
 * A run lists each repository's tags through the mirror itself (tags/list
 * passed through), filters them (tag regexes and exclusions, keep_newest
 * by version order), and hands the survivors to a prefetch job with
 * Cache-Control: no-cache, so every tag is revalidated with one HEAD and
 * only digests not cached yet are fetched: an unchanged tag costs one
 * HEAD, a moved tag propagates.  Replicated content is pinned.
 *
 *	policy:	IDLE --timer or trigger--> LISTING --lists in--> FETCHING
 *		FETCHING --job finished--> IDLE (stats updated, timer re-armed)
 *		FETCHING --job finished, destination--> PUSHING --> IDLE
 *
 * Registry notifications (POST /api/v1/events) bring a matching policy's
 * next run forward to within a second.
 *
 * With delete = yes, tags the source no longer has are deleted here
 * (and unpinned; gc takes their blobs).  keep_newest orders by version
 * (sync_filter.c: numbers compared as numbers).
 *
 * Progress is kept in the cache index; a run cut short by a restart is
 * redone right after start-up.
 *
 * With a destination, the run's tags are then pushed to that upstream
 * (sync_push.c): PUSHING, then IDLE.  With rate_limit_floor, the fetch
 * pauses while the source's RateLimit-Remaining is under it.
 *
 * The source is not trusted: a run reads at most max_repositories
 * catalog entries and max_tags_per_repository / max_tags tags/list
 * entries (a list cut short decides no deletes and releases no pins);
 * names that are not valid repository names or tags are skipped and
 * counted.  Sets are JSON objects, so nothing is quadratic in the number
 * of tags.
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <jansson.h>

#include "cache/cache.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/obj.h"
#include "common/ref.h"
#include "common/text.h"
#include "common/xmalloc.h"
#include "sync/sync.h"
#include "sync/sync_int.h"
#include "upstream/upstream.h"

#define REPL_EVENT_DELAY	1	/* seconds from an event to its run */

enum repl_state { REPL_IDLE = 0, REPL_LISTING, REPL_FETCHING,
    REPL_PUSHING };
static const char *const repl_state_names[] = { "idle", "listing",
    "fetching", "pushing" };

/* One tag to push to the destination. */
struct repl_push {
	char	*repo;
	char	*tag;
	char	 digest[DIGEST_STR_MAX];
};

#define REPL_MAGIC	0x7265706c

struct repl {
	unsigned	 magic;
	const struct config_replication *cr;
	/*
	 * A SIGHUP's keys for this policy: taken over when the policy is
	 * idle (at once, or when the run under way ends), so a run reads
	 * one set of keys from start to end.  cr_owned: cr came from a
	 * reload and is freed when replaced (the start-up config's lives
	 * until exit).  On the jobs' loop only.
	 */
	struct config_replication *next_cr;
	int		 cr_owned;
	enum repl_state	 state;
	struct event	*timer;
	time_t		 last_start, last_end, next_run;
	unsigned	 runs;
	unsigned	 pending_lists;
	char		**images;	/* candidates of the current run */
	size_t		 nimages, images_cap;
	unsigned	 last_tags, last_failed;
	uint64_t	 total_tags, total_failed, total_bytes;
	int		 rerun;		/* an event came during a run */
	int		 resumed;	/* the last run was cut by a restart */
	uint64_t	 deleted;
	uint64_t	 events;
	char		 last_error[256];
	struct pf_job	*job;		/* while FETCHING */
	int		 catalog_pages;
	char		*catalog_prev;
	json_t		*asked;		/* repositories asked for this run */
	json_t		*listed;	/* ... and listed in full: sets */
	size_t		 run_tags;	/* tags/list entries read this run */
	size_t		 catalog_repos;	/* _catalog entries read this run */
	unsigned	 last_invalid;	/* names skipped, this or last run */
	char		 last_capped[256]; /* the first cap hit, ditto */
	struct repl_push *pushes;	/* while PUSHING */
	size_t		 npushes, push_next;
	unsigned	 push_inflight;
	unsigned	 last_pushed, last_push_failed;
	uint64_t	 total_pushed, push_bytes;
	unsigned	 blobs_uploaded, blobs_mounted;
	/* For /metrics: the last run that ended without an error (start,
	 * end), runs by outcome, and since when this process has had the
	 * policy (the lag before any success). */
	time_t		 ok_start, ok_end, since;
	uint64_t	 ok_runs, failed_runs;
	int		 last_run_failed;
};

static struct repl		*repls;
static size_t			 nrepls;
static struct event_base	*repl_base;
static struct upstream_worker	*repl_up;
static const struct config	*repl_cfg;
/* Policies a SIGHUP read, handed from the main thread to the jobs'
 * loop (a newer reload replaces ones not yet taken). */
static pthread_mutex_t		 repl_reload_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct config_replication *repl_reload_list;

static void	repl_run(struct repl *);

static void
repl_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	repl_run(arg);
}

static void
repl_arm(struct repl *r, long secs)
{
	struct timeval	tv = { secs, 0 };

	/* An earlier run already armed stays (events only bring it on). */
	if (evtimer_pending(r->timer, NULL) && r->next_run <= time(NULL) + secs)
		return;
	r->next_run = time(NULL) + secs;
	evtimer_add(r->timer, &tv);
}

static void
repl_error(struct repl *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
repl_error(struct repl *r, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(r->last_error, sizeof(r->last_error), fmt, ap);
	text_escape_inplace(r->last_error, sizeof(r->last_error));
	va_end(ap);
	log_warnx("replication %s: %s", r->cr->name, r->last_error);
}

/* A cap cut this run's lists: the first is kept, shown and logged. */
static void
repl_cap(struct repl *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
repl_cap(struct repl *r, const char *fmt, ...)
{
	va_list	ap;

	if (r->last_capped[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(r->last_capped, sizeof(r->last_capped), fmt, ap);
	va_end(ap);
	log_warnx("replication %s: run %u: %s", r->cr->name, r->runs,
	    r->last_capped);
}

/*
 * Per-policy progress lives in the cache index ("replication/NAME"), so a
 * restart continues the counts and knows a run was cut short: that run is
 * redone at start-up (a run is idempotent: it reconciles by digest, and
 * what the cut run already fetched is cached).
 */
static void
repl_save(const struct repl *r)
{
	json_t	*j;
	char	*s, key[300];

	j = json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s}",
	    "running", r->state != REPL_IDLE, "runs", (json_int_t)r->runs,
	    "last_start", (json_int_t)r->last_start, "last_end",
	    (json_int_t)r->last_end, "last_tags", (json_int_t)r->last_tags,
	    "last_failed", (json_int_t)r->last_failed, "tags_synced",
	    (json_int_t)r->total_tags, "failures",
	    (json_int_t)r->total_failed, "bytes", (json_int_t)r->total_bytes,
	    "deleted", (json_int_t)r->deleted, "events",
	    (json_int_t)r->events, "last_error", r->last_error);
	json_object_set_new(j, "pushed", json_integer((json_int_t)
	    r->total_pushed));
	json_object_set_new(j, "push_bytes", json_integer((json_int_t)
	    r->push_bytes));
	json_object_set_new(j, "ok_start", json_integer((json_int_t)
	    r->ok_start));
	json_object_set_new(j, "ok_end", json_integer((json_int_t)r->ok_end));
	json_object_set_new(j, "ok_runs", json_integer((json_int_t)
	    r->ok_runs));
	json_object_set_new(j, "failed_runs", json_integer((json_int_t)
	    r->failed_runs));
	json_object_set_new(j, "last_run_failed",
	    json_boolean(r->last_run_failed));
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	snprintf(key, sizeof(key), "replication/%s", r->cr->name);
	if (cache_meta_put(key, s) != 0)
		log_warnx("replication %s: cannot save its state",
		    r->cr->name);
	free(s);
}

static void
repl_load_ok(struct repl *r, json_t *j)
{
	r->ok_start = (time_t)json_integer_value(json_object_get(j,
	    "ok_start"));
	r->ok_end = (time_t)json_integer_value(json_object_get(j, "ok_end"));
	r->ok_runs = (uint64_t)json_integer_value(json_object_get(j,
	    "ok_runs"));
	r->failed_runs = (uint64_t)json_integer_value(json_object_get(j,
	    "failed_runs"));
	r->last_run_failed = json_is_true(json_object_get(j,
	    "last_run_failed"));
}

static void
repl_load(struct repl *r)
{
	json_t		*j;
	json_error_t	 jerr;
	char		*s, key[300];
	const char	*e;

	snprintf(key, sizeof(key), "replication/%s", r->cr->name);
	if (cache_meta_get(key, &s) != 0)
		return;
	if ((j = json_loads(s, 0, &jerr)) != NULL) {
		r->runs = (unsigned)json_integer_value(json_object_get(j,
		    "runs"));
		r->last_start = (time_t)json_integer_value(json_object_get(j,
		    "last_start"));
		r->last_end = (time_t)json_integer_value(json_object_get(j,
		    "last_end"));
		r->last_tags = (unsigned)json_integer_value(json_object_get(j,
		    "last_tags"));
		r->last_failed = (unsigned)json_integer_value(
		    json_object_get(j, "last_failed"));
		r->total_tags = (uint64_t)json_integer_value(
		    json_object_get(j, "tags_synced"));
		r->total_failed = (uint64_t)json_integer_value(
		    json_object_get(j, "failures"));
		r->total_bytes = (uint64_t)json_integer_value(
		    json_object_get(j, "bytes"));
		r->deleted = (uint64_t)json_integer_value(json_object_get(j,
		    "deleted"));
		r->events = (uint64_t)json_integer_value(json_object_get(j,
		    "events"));
		if ((e = json_string_value(json_object_get(j,
		    "last_error"))) != NULL)
			snprintf(r->last_error, sizeof(r->last_error), "%s",
			    e);
		r->total_pushed = (uint64_t)json_integer_value(
		    json_object_get(j, "pushed"));
		r->push_bytes = (uint64_t)json_integer_value(
		    json_object_get(j, "push_bytes"));
		repl_load_ok(r, j);
		r->resumed = json_is_true(json_object_get(j, "running"));
		if (r->resumed)
			log_info("replication %s: run %u was cut short by a "
			    "restart: resuming", r->cr->name, r->runs);
		json_decref(j);
	}
	free(s);
}

/* An idle policy takes the keys a SIGHUP gave it. */
static void
repl_take_keys(struct repl *r)
{
	const struct config_replication	*old = r->cr;
	int				 owned = r->cr_owned;
	long				 wait;

	r->cr = r->next_cr;
	r->next_cr = NULL;
	r->cr_owned = 1;
	log_info("replication %s: reloaded keys in use from run %u on",
	    r->cr->name, r->runs + 1);
	/* A new interval counts from the end of the last run (none yet:
	 * the first run stays where start-up put it). */
	if (old->interval != r->cr->interval && r->state == REPL_IDLE &&
	    r->last_end != 0 && evtimer_pending(r->timer, NULL)) {
		wait = (long)(r->last_end + r->cr->interval - time(NULL));
		evtimer_del(r->timer);
		repl_arm(r, wait < 1 ? 1 : wait);
	}
	if (owned)
		config_replication_free((struct config_replication *)
		    (uintptr_t)old);
}

/* End of a run, however it ended: an event during it means run again. */
static void
repl_done(struct repl *r)
{
	json_decref(r->asked);
	json_decref(r->listed);
	r->asked = r->listed = NULL;
	r->job = NULL;
	r->state = REPL_IDLE;
	r->last_end = time(NULL);
	/* Every failure of a run went through repl_error(). */
	r->last_run_failed = r->last_error[0] != '\0';
	if (r->last_run_failed)
		r->failed_runs++;
	else {
		r->ok_runs++;
		r->ok_start = r->last_start;
		r->ok_end = r->last_end;
	}
	if (r->next_cr != NULL)
		repl_take_keys(r);
	repl_arm(r, r->rerun ? REPL_EVENT_DELAY : r->cr->interval);
	r->rerun = 0;
	repl_save(r);
}

struct repl_del {
	struct repl	*r;
	const char	*repo;
	json_t		*source_tags;	/* a set */
	char		**gone;
	size_t		 ngone;
};

static void
repl_del_cb(const char *tag, const char *digest, void *arg)
{
	struct repl_del	*d = arg;

	(void)digest;
	if (!sync_tag_wanted(d->r->cr, tag) ||
	    json_object_get(d->source_tags, tag) != NULL)
		return;
	d->gone = xreallocarray(d->gone, d->ngone + 1, sizeof(*d->gone));
	d->gone[d->ngone++] = xstrdup(tag);
}

static void
repl_unpin_cb(const char *digest, int is_manifest, void *arg)
{
	(void)is_manifest;
	(void)arg;
	cache_blob_pin(digest, 0);
}

/* delete = yes: tags the source no longer has (tags: the set of those
 * it lists) go here too (unpinned; their blobs are left to gc). */
static void
repl_propagate_deletes(struct repl *r, const char *repo, json_t *tags)
{
	struct repl_del	 d = { r, repo, tags, NULL, 0 };
	char		 digest[DIGEST_STR_MAX];
	int64_t		 validated;
	size_t		 i;

	cache_tags_of(r->cr->source, repo, repl_del_cb, &d);
	for (i = 0; i < d.ngone; i++) {
		if (cache_tag_get(r->cr->source, repo, d.gone[i], digest,
		    &validated) == 0)
			cache_manifest_walk(digest, repl_unpin_cb, NULL);
		cache_tag_delete(r->cr->source, repo, d.gone[i]);
		r->deleted++;
		log_info("replication %s: %s:%s is gone at %s: deleted here",
		    r->cr->name, repo, d.gone[i], r->cr->source);
		free(d.gone[i]);
	}
	free(d.gone);
}

/* Collects digests into a JSON object used as a set. */
static void
repl_set_cb(const char *digest, int is_manifest, void *arg)
{
	(void)is_manifest;
	json_object_set_new(arg, digest, json_true());
}

/* Pins a digest and collects it (repl_set_cb). */
static void
repl_pin_cb(const char *digest, int is_manifest, void *arg)
{
	cache_blob_pin(digest, -1);
	repl_set_cb(digest, is_manifest, arg);
}

static void
repl_unpin_unless_cb(const char *digest, int is_manifest, void *arg)
{
	(void)is_manifest;
	if (json_object_get(arg, digest) == NULL)
		cache_blob_pin(digest, 0);
}

static int
repl_listed(const struct repl *r, const char *repo)
{
	return json_object_get(r->listed, repo) != NULL;
}

/* A pin record's "repo:tag" and digest, as a run would have made them. */
static int
repl_pin_valid(const char *key, const json_t *v)
{
	struct digest	 d;
	const char	*colon = strrchr(key, ':');
	char		*repo;
	int		 ok;

	if (colon == NULL || digest_parse(json_string_value(v), &d) != 0 ||
	    strcmp(d.str, json_string_value(v)) != 0 ||
	    !ref_tag_valid(colon + 1))
		return 0;
	repo = xstrndup(key, (size_t)(colon - key));
	ok = ref_name_valid(repo);
	free(repo);
	return ok;
}

/*
 * A policy's pinned tags, {"repo:tag": digest}, from the cache index.
 * Its digests are walked and pinned: a record that is not what a run
 * writes is dropped (and said once).
 */
static json_t *
repl_pins_load(const char *name)
{
	json_t		*j = NULL, *v;
	json_error_t	 jerr;
	char		 key[300], *s;
	const char	*k;
	void		*tmp;
	size_t		 bad = 0;

	snprintf(key, sizeof(key), "replpins/%s", name);
	if (cache_meta_get(key, &s) == 0) {
		j = json_loads(s, 0, &jerr);
		free(s);
	}
	if (!json_is_object(j)) {
		json_decref(j);
		j = json_object();
	}
	json_object_foreach_safe(j, tmp, k, v)
		if (!repl_pin_valid(k, v)) {
			json_object_del(j, k);
			bad++;
		}
	if (bad > 0)
		log_warnx("replication %s: %zu malformed pin records in the "
		    "cache index dropped", name, bad);
	return j;
}

/*
 * Replicated content is pinned while its tag matches the policy.  The
 * tags a policy pinned are kept in the cache index ("replpins/NAME":
 * {"repo:tag": digest}); after a run, a tag that no longer matches
 * (filters changed, keep_newest moved on) or that moved is released:
 * its blobs are unpinned unless a tag this policy or another policy still
 * holds uses them.  The wanted tags are pinned first, so nothing they use
 * is ever unpinned in between.  Tags of repositories whose list failed
 * this run keep their pins.  (Pins have no owner: an operator's pin on a
 * blob that only a released tag used is released with it.)
 */
static void
repl_pins_update(struct repl *r, struct pf_job *j)
{
	json_t		*old, *now, *v, *keep, *other;
	char		 key[300], *s, *k;
	const char	*repo, *ref, *digest, *ok;
	size_t		 i, n = sync_pf_nimages(j);
	void		*tmp;

	old = repl_pins_load(r->cr->name);
	now = json_object();
	for (i = 0; i < n; i++) {
		int done = sync_pf_image(j, i, &repo, &ref, &digest);

		xasprintf(&k, "%s:%s", repo, ref);
		if (done && digest[0] != '\0')
			json_object_set_new(now, k, json_string(digest));
		else if ((v = json_object_get(old, k)) != NULL)
			json_object_set(now, k, v);	/* failed: keep */
		free(k);
	}
	/* Unlisted repositories: their tags are kept as they were. */
	json_object_foreach_safe(old, tmp, ref, v) {
		const char *colon = strrchr(ref, ':');
		char *rp = xstrndup(ref, colon != NULL ?
		    (size_t)(colon - ref) : strlen(ref));

		if (!repl_listed(r, rp) && json_object_get(now, ref) == NULL)
			json_object_set(now, ref, v);
		free(rp);
	}
	/* What stays pinned: this policy's tags, then every other's. */
	keep = json_object();
	json_object_foreach(now, ref, v)
		cache_manifest_walk(json_string_value(v), repl_pin_cb, keep);
	for (i = 0; i < nrepls; i++) {
		if (&repls[i] == r)
			continue;
		other = repl_pins_load(repls[i].cr->name);
		json_object_foreach(other, ref, v)
			cache_manifest_walk(json_string_value(v), repl_set_cb,
			    keep);
		json_decref(other);
	}
	json_object_foreach(old, ref, v) {
		ok = json_string_value(json_object_get(now, ref));
		if (ok != NULL && strcmp(ok, json_string_value(v)) == 0)
			continue;
		log_info("replication %s: %s no longer matches the policy "
		    "(or moved): unpinned", r->cr->name, ref);
		cache_manifest_walk(json_string_value(v),
		    repl_unpin_unless_cb, keep);
	}
	s = json_dumps(now, JSON_COMPACT);
	snprintf(key, sizeof(key), "replpins/%s", r->cr->name);
	if (cache_meta_put(key, s) != 0)
		log_warnx("replication %s: cannot save its pins", r->cr->name);
	free(s);
	json_decref(keep);
	json_decref(old);
	json_decref(now);
}

/*
 * Push mode (destination = an upstream): once the run's tags are in the
 * local cache (fetched, verified, pinned), each is pushed to the
 * destination, up to concurrency at a time (sync_push.c).
 */
static void	repl_push_pump(struct repl *);

static void
repl_push_count(struct repl *r, const char *err, const struct push_stats *st)
{
	r->push_bytes += st->bytes;
	r->blobs_uploaded += st->blobs_uploaded;
	r->blobs_mounted += st->blobs_mounted;
	if (err != NULL) {
		r->last_push_failed++;
		r->last_failed++;
		r->total_failed++;
		repl_error(r, "push to %s: %s", r->cr->destination, err);
	} else {
		r->last_pushed++;
		r->total_pushed++;
	}
}

static void
repl_push_done(const char *err, const struct push_stats *st, void *arg)
{
	struct repl	*r = arg;

	CHECK_OBJ_NOTNULL(r, REPL_MAGIC);

	r->push_inflight--;
	repl_push_count(r, err, st);
	repl_push_pump(r);
}

static void
repl_push_pump(struct repl *r)
{
	struct repl_push	*p;
	struct upstream		*u = upstream_find(r->cr->destination);
	struct push_stats	 none;
	char			 err[512];
	size_t			 i;

	memset(&none, 0, sizeof(none));
	while (r->push_inflight < (unsigned)r->cr->concurrency &&
	    r->push_next < r->npushes) {
		p = &r->pushes[r->push_next++];
		if (u == NULL)
			repl_push_count(r, "no such upstream", &none);
		else if (sync_push_start(repl_up, u, p->repo, p->tag,
		    p->digest, r->cr->chunk_size, repl_push_done, r, err,
		    sizeof(err)) != 0)
			repl_push_count(r, err, &none);
		else
			r->push_inflight++;
	}
	if (r->push_inflight > 0 || r->push_next < r->npushes)
		return;
	log_info("replication %s: run %u: %u tags pushed to %s, %u failed",
	    r->cr->name, r->runs, r->last_pushed, r->cr->destination,
	    r->last_push_failed);
	for (i = 0; i < r->npushes; i++) {
		free(r->pushes[i].repo);
		free(r->pushes[i].tag);
	}
	free(r->pushes);
	r->pushes = NULL;
	r->npushes = r->push_next = 0;
	repl_done(r);
}

static void
repl_push_begin(struct repl *r, struct pf_job *j)
{
	const char	*repo, *ref, *digest;
	size_t		 i, n = sync_pf_nimages(j);

	r->state = REPL_PUSHING;
	r->job = NULL;
	r->last_pushed = r->last_push_failed = 0;
	for (i = 0; i < n; i++) {
		if (!sync_pf_image(j, i, &repo, &ref, &digest) ||
		    digest[0] == '\0')
			continue;
		r->pushes = xreallocarray(r->pushes, r->npushes + 1,
		    sizeof(*r->pushes));
		r->pushes[r->npushes].repo = xstrdup(repo);
		r->pushes[r->npushes].tag = xstrdup(ref);
		snprintf(r->pushes[r->npushes].digest, DIGEST_STR_MAX, "%s",
		    digest);
		r->npushes++;
	}
	r->push_next = 0;
	repl_push_pump(r);
}

static void
repl_job_done(struct pf_job *j, void *arg)
{
	struct repl	*r = arg;
	unsigned	 ok, failed;
	uint64_t	 bytes;
	char		 err[256];

	CHECK_OBJ_NOTNULL(r, REPL_MAGIC);
	sync_pf_stats(j, &ok, &failed, &bytes, err, sizeof(err));
	r->last_tags = ok;
	r->last_failed = failed;
	r->total_tags += ok;
	r->total_failed += failed;
	r->total_bytes += bytes;
	if (failed > 0)
		repl_error(r, "%s", err);
	log_info("replication %s: run %u: %u tags in sync, %u failed",
	    r->cr->name, r->runs, ok, failed);
	repl_pins_update(r, j);
	if (r->cr->destination != NULL && repl_up != NULL) {
		repl_push_begin(r, j);
		return;
	}
	repl_done(r);
}

static void
repl_fetch(struct repl *r)
{
	const struct config_replication *cr = r->cr;
	struct sync_pf_params	 pp;
	char			 err[256];
	size_t			 i;

	if (r->last_invalid > 0)
		log_warnx("replication %s: run %u: %u invalid tag or "
		    "repository names from the source skipped", cr->name,
		    r->runs, r->last_invalid);
	if (r->nimages == 0) {
		r->last_tags = 0;
		repl_done(r);
		return;
	}
	r->state = REPL_FETCHING;
	memset(&pp, 0, sizeof(pp));
	pp.upstream = cr->source;
	pp.images = (const char *const *)r->images;
	pp.nimages = r->nimages;
	pp.platforms = (const char *const *)cr->platforms;
	pp.nplatforms = cr->nplatforms;
	pp.pin = -1;
	pp.revalidate = 1;
	pp.concurrency = (unsigned)cr->concurrency;
	pp.rate_floor = cr->rate_limit_floor;
	pp.done = repl_job_done;
	pp.arg = r;
	if ((r->job = sync_pf_start(repl_cfg, &pp, err, sizeof(err))) ==
	    NULL) {
		repl_error(r, "%s", err);
		repl_done(r);
	}
	for (i = 0; i < r->nimages; i++)
		free(r->images[i]);
	free(r->images);
	r->images = NULL;
	r->nimages = r->images_cap = 0;
}

/* A candidate "repo:tag" of this run (taken). */
static void
repl_image_add(struct repl *r, char *img)
{
	if (r->nimages == r->images_cap) {
		r->images_cap = r->images_cap > 0 ? 2 * r->images_cap : 64;
		r->images = xreallocarray(r->images, r->images_cap,
		    sizeof(*r->images));
	}
	r->images[r->nimages++] = img;
}


#define REPL_PAGES_MAX	1000	/* tags/list or _catalog pages per list */

/*
 * The next page of a paginated list, from Link: <...?last=X&n=N>;
 * rel="next": the same path (never the Link's host or path), the Link's
 * query parameters decoded and encoded again, and our ns last.  The
 * source is an upstream: copied as is, its query put spaces, a CR, 8-bit
 * bytes or an ns of its own into the request line to our own listener,
 * which only libevent's leniency (the URI runs to the last space) and
 * the listener's "last ns wins" kept harmless.
 */
int
sync_repl_next_page(const char *link, const char *path,
    const char *source, char **out)
{
	struct evkeyvalq	 params;
	struct evkeyval		*kv;
	struct evbuffer		*b;
	const char		*lt, *gt, *q, *rel;
	char			*query, *k, *v;
	int			 rc = -1;

	*out = NULL;
	/* Link: <a>; rel="prev", <b>; rel="next": the entry naming next. */
	if (link == NULL || (rel = strstr(link, "rel=\"next\"")) == NULL)
		return 0;
	for (lt = NULL, q = link; (q = strchr(q, '<')) != NULL && q < rel;
	    q++)
		lt = q;
	if (lt == NULL || (gt = strchr(lt, '>')) == NULL || gt > rel)
		return 0;
	if ((q = memchr(lt, '?', (size_t)(gt - lt))) == NULL || q + 1 == gt)
		return 0;
	if ((size_t)(gt - q - 1) > SYNC_PAGE_QUERY_MAX)
		return -1;
	query = xstrndup(q + 1, (size_t)(gt - q - 1));
	TAILQ_INIT(&params);
	if (evhttp_parse_query_str(query, &params) != 0)
		goto done;
	b = evbuffer_new();
	evbuffer_add_printf(b, "%s?", path);
	TAILQ_FOREACH(kv, &params, next) {
		if (strcmp(kv->key, "ns") == 0)
			continue;
		k = evhttp_encode_uri(kv->key);
		v = evhttp_encode_uri(kv->value);
		evbuffer_add_printf(b, "%s=%s&", k, v);
		free(k);
		free(v);
	}
	v = evhttp_encode_uri(source);
	evbuffer_add_printf(b, "ns=%s", v);
	free(v);
	*out = xstrndup((const char *)evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	evbuffer_free(b);
	rc = 0;
done:
	evhttp_clear_headers(&params);
	free(query);
	return rc;
}

struct repl_list {
	struct repl	*r;
	char		*repo;
	json_t		*tags;		/* every page's, so far */
	int		 pages;
	char		*prev;		/* the page asked for last */
};

static void
repl_list_done(struct repl *r)
{
	if (--r->pending_lists == 0)
		repl_fetch(r);
}

/*
 * Append a tags/list page's entries to the list being gathered, up to
 * max_tags_per_repository for the repository and max_tags for the run.
 * 1 when a cap cut the list (the rest is not read), else 0.
 */
static int
repl_tags_gather(struct repl_list *rl, json_t *page)
{
	struct repl	*r = rl->r;
	const struct config_replication *cr = r->cr;
	json_t		*e;
	size_t		 i;

	json_array_foreach(page, i, e) {
		if (json_array_size(rl->tags) >=
		    (size_t)cr->max_tags_per_repository) {
			repl_cap(r, "max_tags_per_repository (%d) reached at "
			    "%s: the rest of its tags were not read",
			    cr->max_tags_per_repository, rl->repo);
			return 1;
		}
		if (r->run_tags >= (size_t)cr->max_tags) {
			repl_cap(r, "max_tags (%d) reached at %s: the rest of "
			    "the run's tags were not read", cr->max_tags,
			    rl->repo);
			return 1;
		}
		json_array_append(rl->tags, e);
		r->run_tags++;
	}
	return 0;
}

/*
 * A repository's gathered list: its valid tags (each once) that the
 * policy wants become the run's candidates.  A list cut by a cap is not
 * the source's whole list: no deletes are decided from it and the
 * repository does not count as listed (its old pins are kept).
 */
static void
repl_tags_take(struct repl_list *rl, int capped)
{
	struct repl	*r = rl->r;
	const struct config_replication *cr = r->cr;
	json_t		*set = json_object(), *e;
	char		**keep = NULL, *img;
	size_t		 n = 0, i, from;

	keep = xreallocarray(NULL, json_array_size(rl->tags) + 1,
	    sizeof(*keep));
	json_array_foreach(rl->tags, i, e) {
		const char *t = json_string_value(e);

		if (!ref_tag_valid(t)) {
			r->last_invalid++;
			continue;
		}
		if (json_object_get(set, t) != NULL)
			continue;
		json_object_set_new(set, t, json_true());
		if (sync_tag_wanted(cr, t))
			keep[n++] = xstrdup(t);
	}
	if (!capped) {
		json_object_set_new(r->listed, rl->repo, json_true());
		if (cr->delete)
			repl_propagate_deletes(r, rl->repo, set);
	}
	json_decref(set);
	from = sync_keep_newest(keep, n, cr->keep_newest);
	for (i = 0; i < n; i++) {
		if (i >= from) {
			xasprintf(&img, "%s:%s", rl->repo, keep[i]);
			repl_image_add(r, img);
		}
		free(keep[i]);
	}
	free(keep);
}

static void
repl_tags_cb(int status, struct evbuffer *body, const char *link, void *arg)
{
	struct repl_list	*rl = arg;
	struct repl		*r = rl->r;
	json_t			*root;
	json_error_t		 jerr;
	char			*next = NULL, *path;
	int			 capped, bad = 0;

	if (status != 200 || body == NULL || (root = json_loadb(
	    (const char *)evbuffer_pullup(body, -1),
	    evbuffer_get_length(body), 0, &jerr)) == NULL) {
		repl_error(r, "tags of %s: status %d", rl->repo, status);
		goto done;
	}
	/* Paginated (Link: rel="next"): gather every page first. */
	capped = repl_tags_gather(rl, json_object_get(root, "tags"));
	json_decref(root);
	if (!capped) {
		xasprintf(&path, "/v2/%s/tags/list", rl->repo);
		bad = sync_repl_next_page(link, path, r->cr->source,
		    &next);
		free(path);
	}
	if (bad) {
		/* Not an end either: nothing is decided from the list. */
		repl_error(r, "tags of %s: the source's Link header names a "
		    "malformed next page", rl->repo);
		goto done;
	}
	if (next != NULL) {
		/* A list that does not advance, or never ends, is a failed
		 * list: nothing is decided (deleted, unpinned) from it. */
		if (++rl->pages >= REPL_PAGES_MAX || (rl->prev != NULL &&
		    strcmp(rl->prev, next) == 0)) {
			repl_error(r, "tags of %s: the source's pagination "
			    "does not end", rl->repo);
			free(next);
			goto done;
		}
		free(rl->prev);
		rl->prev = next;
		if (sync_self_get(next, repl_tags_cb, rl) == 0)
			return;
		repl_error(r, "cannot reach the mirror's own listener");
		goto done;
	}
	repl_tags_take(rl, capped);
done:
	json_decref(rl->tags);
	free(rl->prev);
	free(rl->repo);
	free(rl);
	repl_list_done(r);
}

static void
repl_list_repo(struct repl *r, const char *repo)
{
	struct repl_list	*rl;
	char			*path, *ens;

	/* Named in the policy and found by its glob, or listed twice by
	 * the catalog: asked for once. */
	if (json_object_get(r->asked, repo) != NULL)
		return;
	json_object_set_new(r->asked, repo, json_true());
	rl = xcalloc(1, sizeof(*rl));
	rl->r = r;
	rl->repo = xstrdup(repo);
	rl->tags = json_array();
	ens = evhttp_encode_uri(r->cr->source);
	xasprintf(&path, "/v2/%s/tags/list?ns=%s", repo, ens);
	free(ens);
	r->pending_lists++;
	if (sync_self_get(path, repl_tags_cb, rl) != 0) {
		repl_error(r, "cannot reach the mirror's own listener");
		json_decref(rl->tags);
		free(rl->repo);
		free(rl);
		r->pending_lists--;
	}
	free(path);
}

/*
 * A catalog page's repositories: valid names the policy wants are
 * listed, up to max_repositories entries read in the run.  1 when the
 * cap cut the catalog (the rest is not read), else 0.
 */
static int
repl_catalog_take(struct repl *r, const json_t *repos)
{
	const json_t	*e;
	const char	*name;
	size_t		 i;

	json_array_foreach(repos, i, e) {
		if (r->catalog_repos >= (size_t)r->cr->max_repositories) {
			repl_cap(r, "max_repositories (%d) reached: the rest "
			    "of the source's catalog was not read",
			    r->cr->max_repositories);
			return 1;
		}
		r->catalog_repos++;
		if (!ref_name_valid(name = json_string_value(e))) {
			r->last_invalid++;
			continue;
		}
		if (sync_repo_wanted(r->cr, name))
			repl_list_repo(r, name);
	}
	return 0;
}

static void
repl_catalog_cb(int status, struct evbuffer *body, const char *link,
    void *arg)
{
	struct repl	*r = arg;
	json_t		*root;
	json_error_t	 jerr;
	char		*next = NULL;
	int		 capped;

	CHECK_OBJ_NOTNULL(r, REPL_MAGIC);
	if (status == 200 && body != NULL && (root = json_loadb(
	    (const char *)evbuffer_pullup(body, -1),
	    evbuffer_get_length(body), 0, &jerr)) != NULL) {
		capped = repl_catalog_take(r, json_object_get(root,
		    "repositories"));
		json_decref(root);
		if (!capped && sync_repl_next_page(link,
		    "/v2/_catalog", r->cr->source, &next) != 0)
			repl_error(r, "the source's catalog: its Link header "
			    "names a malformed next page");
		/* The next page is one more pending list. */
		if (next != NULL) {
			if (++r->catalog_pages >= REPL_PAGES_MAX ||
			    (r->catalog_prev != NULL &&
			    strcmp(r->catalog_prev, next) == 0)) {
				repl_error(r, "the source's catalog pagination "
				    "does not end");
				free(next);
			} else {
				free(r->catalog_prev);
				r->catalog_prev = next;
				r->pending_lists++;
				if (sync_self_get(next, repl_catalog_cb, r)
				    != 0) {
					r->pending_lists--;
					repl_error(r, "cannot reach the "
					    "mirror's own listener");
				}
			}
		}
	} else
		repl_error(r, "the source's catalog is not available (status "
		    "%d): list repositories by name", status);
	repl_list_done(r);
}

static int
repl_is_glob(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

static void
repl_run(struct repl *r)
{
	const struct config_replication *cr = r->cr;
	char	*path, *ens;
	size_t	 i;
	int	 globs = 0;

	if (r->state != REPL_IDLE)
		return;
	evtimer_del(r->timer);
	r->state = REPL_LISTING;
	r->runs++;
	r->last_start = time(NULL);
	r->last_error[0] = '\0';
	r->last_capped[0] = '\0';
	r->last_invalid = 0;
	r->run_tags = r->catalog_repos = 0;
	r->asked = json_object();
	r->listed = json_object();
	repl_save(r);			/* "running": a restart redoes it */
	r->pending_lists = 1;		/* held until every list is asked */
	for (i = 0; i < cr->nrepos; i++) {
		if (repl_is_glob(cr->repos[i]))
			globs = 1;
		else if (sync_repo_wanted(cr, cr->repos[i]))
			repl_list_repo(r, cr->repos[i]);
	}
	if (globs) {
		ens = evhttp_encode_uri(cr->source);
		/* No n: registries cap it (distribution: catalog.maxentries)
		 * and refuse more; their default page and Link it is. */
		xasprintf(&path, "/v2/_catalog?ns=%s", ens);
		r->catalog_pages = 0;
		free(r->catalog_prev);
		r->catalog_prev = NULL;
		free(ens);
		r->pending_lists++;
		if (sync_self_get(path, repl_catalog_cb, r) != 0)
			r->pending_lists--;
		free(path);
	}
	repl_list_done(r);
}

void
sync_repl_init(struct event_base *base, struct upstream_worker *up,
    const struct config *cfg)
{
	const struct config_replication	*cr;
	size_t				 i = 0;

	repl_base = base;
	repl_up = up;
	repl_cfg = cfg;
	nrepls = cfg->nreplications;
	if (nrepls == 0)
		return;
	repls = xcalloc(nrepls, sizeof(*repls));
	for (cr = cfg->replications; cr != NULL; cr = cr->next, i++) {
		repls[i].magic = REPL_MAGIC;
		repls[i].cr = cr;
		repls[i].timer = evtimer_new(base, repl_timer_cb, &repls[i]);
		repls[i].since = time(NULL);
		repl_load(&repls[i]);
		repl_arm(&repls[i], 1);	/* first run soon after start */
	}
}

/* The per-policy families of /metrics, in the order they are written. */
enum repl_metric {
	REPL_M_LAG, REPL_M_OK_AT, REPL_M_FAILED, REPL_M_RUNNING,
	REPL_M_INTERVAL, REPL_M_RUNS, REPL_M_TAGS, REPL_M_TAGS_FAILED,
	REPL_M__MAX
};

static const struct {
	const char	*name, *type, *help;
} repl_metrics[REPL_M__MAX] = {
	[REPL_M_LAG] = { "lag_seconds", "gauge", "Seconds since the start "
	    "of the policy's last run that ended without an error (before "
	    "any: since start-up); what the source had then is here" },
	[REPL_M_OK_AT] = { "last_success_timestamp_seconds", "gauge",
	    "When the last run without an error ended (Unix time; 0: "
	    "never)" },
	[REPL_M_FAILED] = { "last_run_failed", "gauge", "1 if the last run "
	    "ended with an error (a list, a tag or a push failed)" },
	[REPL_M_RUNNING] = { "running", "gauge", "1 while a run is under "
	    "way" },
	[REPL_M_INTERVAL] = { "interval_seconds", "gauge", "The policy's "
	    "interval: lag alerts compare with it" },
	[REPL_M_RUNS] = { "runs_total", "counter", "Runs ended, by result" },
	[REPL_M_TAGS] = { "tags_synced_total", "counter", "Tags brought in "
	    "sync" },
	[REPL_M_TAGS_FAILED] = { "tags_failed_total", "counter", "Tags that "
	    "failed to sync or push" },
};

static long long
repl_metric_value(const struct repl *r, enum repl_metric m, time_t now)
{
	switch (m) {
	case REPL_M_LAG:
		return (long long)(now - (r->ok_start != 0 ? r->ok_start :
		    r->since));
	case REPL_M_OK_AT:
		return (long long)r->ok_end;
	case REPL_M_FAILED:
		return r->last_run_failed;
	case REPL_M_RUNNING:
		return r->state != REPL_IDLE;
	case REPL_M_INTERVAL:
		return r->cr->interval;
	case REPL_M_TAGS:
		return (long long)r->total_tags;
	case REPL_M_TAGS_FAILED:
		return (long long)r->total_failed;
	default:
		WRONG("repl_metric_value");
	}
}

static void
repl_metric_write(struct evbuffer *b, enum repl_metric m, time_t now)
{
	const char	*name = repl_metrics[m].name;
	char		 pol[512];
	long long	 v;
	size_t		 i;

	evbuffer_add_printf(b, "# HELP regmirror_replication_%s %s\n"
	    "# TYPE regmirror_replication_%s %s\n", name,
	    repl_metrics[m].help, name, repl_metrics[m].type);
	for (i = 0; i < nrepls; i++) {
		metrics_label_escape(pol, sizeof(pol), repls[i].cr->name);
		if (m == REPL_M_RUNS) {
			evbuffer_add_printf(b, "regmirror_replication_"
			    "runs_total{policy=\"%s\",result=\"ok\"} %llu\n"
			    "regmirror_replication_runs_total{policy=\"%s\","
			    "result=\"failed\"} %llu\n", pol,
			    (unsigned long long)repls[i].ok_runs, pol,
			    (unsigned long long)repls[i].failed_runs);
			continue;
		}
		v = repl_metric_value(&repls[i], m, now);
		evbuffer_add_printf(b, "regmirror_replication_%s"
		    "{policy=\"%s\"} %lld\n", name, pol, v > 0 ? v : 0);
	}
}

/* On the jobs' loop, as the admin listener that asks. */
void
sync_repl_metrics(struct evbuffer *b)
{
	time_t		 now = time(NULL);
	enum repl_metric m;

	if (nrepls == 0)
		return;
	for (m = 0; m < REPL_M__MAX; m++)
		repl_metric_write(b, m, now);
}

/* On the jobs' loop: take the policies repl_reload_list holds. */
static void
repl_reload_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct config_replication	*list, *cr;
	struct repl			*r;
	size_t				 i;

	(void)fd;
	(void)ev;
	(void)arg;
	pthread_mutex_lock(&repl_reload_mtx);
	list = repl_reload_list;
	repl_reload_list = NULL;
	pthread_mutex_unlock(&repl_reload_mtx);
	while ((cr = list) != NULL) {
		list = cr->next;
		cr->next = NULL;
		for (i = 0, r = NULL; i < nrepls && r == NULL; i++)
			if (strcmp(repls[i].cr->name, cr->name) == 0)
				r = &repls[i];
		/* A new policy needs a restart (proxy_reload.c says so). */
		if (r == NULL || config_replication_equal(r->next_cr != NULL ?
		    r->next_cr : r->cr, cr)) {
			config_replication_free(cr);
			continue;
		}
		config_replication_free(r->next_cr);
		r->next_cr = cr;
		if (r->state == REPL_IDLE)
			repl_take_keys(r);
		else
			log_info("replication %s: reloaded keys taken when "
			    "run %u ends", cr->name, r->runs);
	}
}

void
sync_repl_reload(struct config_replication *list)
{
	struct config_replication	*old, *cr;

	if (repl_base == NULL || nrepls == 0) {
		old = list;
	} else {
		pthread_mutex_lock(&repl_reload_mtx);
		old = repl_reload_list;
		repl_reload_list = list;
		pthread_mutex_unlock(&repl_reload_mtx);
		if (event_base_once(repl_base, -1, EV_TIMEOUT, repl_reload_cb,
		    NULL, NULL) != 0)
			log_warnx("SIGHUP: cannot hand the replication "
			    "policies to the jobs' loop");
	}
	while ((cr = old) != NULL) {
		old = cr->next;
		config_replication_free(cr);
	}
}

static json_t *
repl_json(const struct repl *r)
{
	json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
	    "s:I,s:s?}", "name", r->cr->name, "source", r->cr->source, "state",
	    repl_state_names[r->state], "runs", (json_int_t)r->runs,
	    "last_start", (json_int_t)r->last_start, "last_end",
	    (json_int_t)r->last_end, "next_run", (json_int_t)(r->state ==
	    REPL_IDLE ? r->next_run : 0), "last_tags",
	    (json_int_t)r->last_tags, "last_failed",
	    (json_int_t)r->last_failed, "tags_synced",
	    (json_int_t)r->total_tags, "failures",
	    (json_int_t)r->total_failed, "bytes", (json_int_t)r->total_bytes,
	    "last_error", r->last_error[0] != '\0' ? r->last_error : NULL);
	json_object_set_new(j, "events", json_integer((json_int_t)r->events));
	json_object_set_new(j, "deleted", json_integer((json_int_t)r->deleted));
	json_object_set_new(j, "resumed", json_boolean(r->resumed));
	json_object_set_new(j, "last_invalid", json_integer((json_int_t)
	    r->last_invalid));
	json_object_set_new(j, "last_capped", r->last_capped[0] != '\0' ?
	    json_string(r->last_capped) : json_null());
	json_object_set_new(j, "paused", json_boolean(r->state ==
	    REPL_FETCHING && r->job != NULL && sync_pf_paused(r->job)));
	if (r->cr->destination != NULL)
		json_object_set_new(j, "push", json_pack("{s:s,s:I,s:I,s:I,"
		    "s:I,s:I,s:I}", "destination", r->cr->destination,
		    "last_pushed", (json_int_t)r->last_pushed, "last_failed",
		    (json_int_t)r->last_push_failed, "pushed",
		    (json_int_t)r->total_pushed, "bytes",
		    (json_int_t)r->push_bytes, "blobs_uploaded",
		    (json_int_t)r->blobs_uploaded, "blobs_mounted",
		    (json_int_t)r->blobs_mounted));
	return j;
}

/*
 * A notification envelope, from whoever can reach the admin API: only
 * push events with a valid repository and tag come out (they are matched
 * against globs and logged); the others are skipped, the invalid ones
 * counted.
 */
int
sync_repl_events_parse(const char *body, size_t len,
    sync_repl_event_f cb, void *arg, size_t *invalid)
{
	json_t		*root, *e, *t;
	json_error_t	 jerr;
	const char	*repo, *tag, *action;
	size_t		 i;

	*invalid = 0;
	root = json_loadb(body, len, 0, &jerr);
	if (!json_is_object(root)) {
		json_decref(root);
		return -1;
	}
	json_array_foreach(json_object_get(root, "events"), i, e) {
		action = json_string_value(json_object_get(e, "action"));
		t = json_object_get(e, "target");
		repo = json_string_value(json_object_get(t, "repository"));
		tag = json_string_value(json_object_get(t, "tag"));
		if (action == NULL || strcmp(action, "push") != 0 ||
		    repo == NULL || tag == NULL)
			continue;
		if (!ref_name_valid(repo) || !ref_tag_valid(tag)) {
			(*invalid)++;
			continue;
		}
		cb(repo, tag, arg);
	}
	json_decref(root);
	return 0;
}

struct repl_event_ctx {
	const char	*source;	/* ?source=, or NULL */
	int		 triggered;
};

/* A pushed tag: every policy that wants it runs soon. */
static void
repl_event_cb(const char *repo, const char *tag, void *arg)
{
	struct repl_event_ctx	*ec = arg;
	size_t			 k;

	for (k = 0; k < nrepls; k++) {
		struct repl *r = &repls[k];
		const struct config_replication *cr = r->cr;

		if ((ec->source != NULL && strcmp(ec->source, cr->source) != 0)
		    || !sync_repo_wanted(cr, repo) ||
		    !sync_tag_wanted(cr, tag))
			continue;
		r->events++;
		log_info("replication %s: event: %s:%s pushed",
		    cr->name, repo, tag);
		/*
		 * Debounced by a second: a push comes as a burst of
		 * events, and a registry may notify a moment before
		 * the tag answers reads.
		 */
		if (r->state == REPL_IDLE)
			repl_arm(r, REPL_EVENT_DELAY);
		else
			r->rerun = 1;
		ec->triggered++;
	}
}

/*
 * POST /api/v1/events[?source=UPSTREAM]: registry notifications
 * (distribution's envelope: {"events":[{"action":"push","target":
 * {"repository":...,"tag":...}}]}).  A pushed tag that a policy wants
 * triggers that policy now (or right after its current run).
 */
static int
repl_events(struct evhttp_request *req, int *status, json_t **out)
{
	struct evbuffer	*b = evhttp_request_get_input_buffer(req);
	const char	*q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(
			    req));
	struct evkeyvalq params;
	struct repl_event_ctx ec = { NULL, 0 };
	size_t		 invalid;

	TAILQ_INIT(&params);
	if (q != NULL && evhttp_parse_query_str(q, &params) == 0)
		ec.source = evhttp_find_header(&params, "source");
	if (sync_repl_events_parse((const char *)evbuffer_pullup(b, -1),
	    evbuffer_get_length(b), repl_event_cb, &ec, &invalid) != 0) {
		evhttp_clear_headers(&params);
		*status = 400;
		*out = json_pack("{s:s}", "error", "not a notification "
		    "envelope");
		return 0;
	}
	evhttp_clear_headers(&params);
	if (invalid > 0)
		log_warnx("replication: events: %zu push events with an "
		    "invalid repository or tag skipped", invalid);
	*status = 200;
	*out = json_pack("{s:i}", "triggered", ec.triggered);
	return 0;
}

/*
 * GET /api/v1/replication; POST /api/v1/replication/sync (every policy)
 * or /api/v1/replication/NAME/sync.  0 if path was one of them.
 */
int
sync_repl_route(struct evhttp_request *req, const char *path,
    int *status, json_t **out)
{
	json_t		*a;
	size_t		 i, n = 0, len;
	const char	*name;

	if (strcmp(path, "/api/v1/events") == 0) {
		if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
			*status = 405;
			*out = json_pack("{s:s}", "error", "POST events");
			return 0;
		}
		return repl_events(req, status, out);
	}
	if (strcmp(path, "/api/v1/replication") == 0) {
		a = json_array();
		for (i = 0; i < nrepls; i++)
			json_array_append_new(a, repl_json(&repls[i]));
		*status = 200;
		*out = json_pack("{s:o}", "policies", a);
		return 0;
	}
	if (strncmp(path, "/api/v1/replication/", 20) != 0)
		return -1;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		*status = 405;
		*out = json_pack("{s:s}", "error", "POST to trigger a run");
		return 0;
	}
	name = path + 20;
	len = strlen(name);
	if (len < 5 || strcmp(name + len - 5, "/sync") != 0) {
		if (strcmp(name, "sync") != 0) {
			*status = 404;
			*out = json_pack("{s:s}", "error", "not found");
			return 0;
		}
		len = 0;
	} else
		len -= 5;
	a = json_array();
	for (i = 0; i < nrepls; i++) {
		if (len > 0 && (strlen(repls[i].cr->name) != len ||
		    strncmp(repls[i].cr->name, name, len) != 0))
			continue;
		repl_run(&repls[i]);
		json_array_append_new(a, repl_json(&repls[i]));
		n++;
	}
	if (n == 0) {
		json_decref(a);
		*status = 404;
		*out = json_pack("{s:s}", "error", "no such policy");
		return 0;
	}
	*status = 202;
	*out = json_pack("{s:o}", "policies", a);
	return 0;
}
