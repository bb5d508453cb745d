/*
 * cache_fill.c — in-flight fills: one object per digest being fetched,
 * with the readers that stream it from the growing temp file.
 *
 *	state		event			next		who
 *	WAITING		upstream 200 (begin)	STREAMING	filler
 *	WAITING		failure before any	FAILED		filler
 *			body
 *	STREAMING	bytes written		STREAMING	writer
 *	STREAMING	end of body, verified	PUBLISHING	writer
 *	STREAMING	end of body, verified,	PASSED		writer
 *			the disk filled up on
 *			the way
 *	STREAMING	long body, max_blob_size FAILED		filler
 *	STREAMING	short or corrupt body,	FAILED		writer
 *			write error
 *	PUBLISHING	fsync, rename, commit	DONE		writer
 *			done
 *	PUBLISHING	fsync, rename or	PASSED		writer
 *			commit failed
 *
 * The filler is the worker loop that reads the upstream: it copies bytes
 * into the fill's queue.  The writer is the fill's thread, started by
 * begin: it hashes and writes them, and decides the end.  DONE, PASSED
 * and FAILED are final.  Once the body is complete (end) only the writer
 * may fail a fill, and once verified (PUBLISHING) nothing can: a late
 * failure is ignored.
 * Every change goes through cache_fill_set_state_locked(), which asserts
 * it against cache_fill_next[] (this table) and wakes the readers.
 *
 * A fill leaves the table when it reaches DONE or FAILED; it is freed when
 * its last reference goes.  The temp file is unlinked on failure and
 * renamed into blobs/ on success; open descriptors stay valid either way,
 * so readers already streaming are never cut by publishing.
 *
 * Locking: fill_table_mtx guards the table; each fill's mtx guards its
 * fields and its watcher list.  event_active() is called with the fill's
 * mutex held, so a watcher cannot be freed while it is being woken.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/obj.h"
#include "common/xmalloc.h"

#define CACHE_FILL_MAGIC	0x66696c6c
#define CACHE_FILL_WAKE_BYTES	(64 * 1024)
#define CACHE_FILL_CHUNK	(256 * 1024)	/* the writer's hash + pwrite */
#define CACHE_FILL_QMAX		(1024 * 1024)	/* appended, not yet written */
#define CACHE_FILL_BATCH	(128 * 1024)	/* the writer wakes for this */
#define CACHE_FILL_RING		(8 * 1024 * 1024) /* disk full: memory window */

static _Atomic uint64_t	cache_fill_nspills;
static uint64_t		cache_fill_max = UINT64_MAX;	/* max_blob_size */

void
cache_fill_set_max(uint64_t max)
{
	cache_fill_max = max > 0 ? max : UINT64_MAX;
}

struct cache_fill_watcher {
	struct event		*ev;
	uint64_t		 pos;	/* next byte the reader needs */
	LIST_ENTRY(cache_fill_watcher) entry;
};

struct cache_fill {
	unsigned		 magic;
	pthread_mutex_t		 mtx;
	int			 refs;
	int			 in_table;
	char			 digest[DIGEST_STR_MAX];
	const char		*domain;	/* isolated upstream, or NULL */
	char			*by_upstream;	/* who started it */
	char			*by_repo;
	struct digest		 want;
	enum cache_fill_state	 state;
	int64_t			 size;
	uint64_t		 written;
	uint64_t		 woken_at;	/* written at the last wake */
	uint64_t		 recv;		/* appended (the filler's) */
	/* Appended, not yet stored: qlen bytes from qhead in the circular
	 * qbuf of qcap bytes; the filler copies in past them, the writer
	 * hashes and writes from qhead. */
	unsigned char		*qbuf;
	size_t			 qcap, qhead, qlen;
	int			 eof;		/* end of body: writer ends */
	pthread_cond_t		 cv;		/* the writer waits on it */
	struct event		*room_ev;	/* the filler's: room again */
	int			 spill;		/* disk full: in memory */
	uint64_t		 disk_end;
	unsigned char		*ring;
	size_t			 ring_head, ring_len;
	uint64_t		 ring_base;	/* offset of ring[ring_head] */
	int			 fd;
	char			*tmp_path;
	struct digest_ctx	*dctx;
	char			*upstream;
	char			*repo;
	int			 fail_status;
	const char		*fail_code;
	char			 fail_msg[256];
	char			 retry_after[32];
	struct timespec		 created;	/* for the duration histogram */
	LIST_HEAD(, cache_fill_watcher) watchers;
	LIST_ENTRY(cache_fill)	 entry;
};

static pthread_mutex_t		 fill_table_mtx = PTHREAD_MUTEX_INITIALIZER;
/* Told (event_active, any thread) whenever a fill ends: published,
 * passed through or failed.  Under fill_table_mtx. */
static struct event		*fill_end_watchers[8];
static size_t			 fill_nend_watchers;
/* Hashed by digest: a flood of distinct cold digests must not make every
 * lookup a walk of them all under the one mutex. */
#define CACHE_FILL_BUCKETS	1024
LIST_HEAD(cache_fill_list, cache_fill);
static struct cache_fill_list	 fill_table[CACHE_FILL_BUCKETS];
static unsigned			 fill_count;	/* in the table */
/* Writer threads still running, under fill_table_mtx; cache_fills_stop()
 * waits on fill_writers_cv for none.  Once fill_stopping is set, a writer
 * whose body is not all in stops where it is (the temp file stays, as
 * after a crash); one whose body is in finishes it. */
static unsigned			 fill_writers;
static pthread_cond_t		 fill_writers_cv = PTHREAD_COND_INITIALIZER;
static atomic_int		 fill_stopping;

static struct cache_fill_list *
cache_fill_bucket(const char *digest)
{
	return &fill_table[hash_str(digest) % CACHE_FILL_BUCKETS];
}

static void
cache_fill_wake_locked(struct cache_fill *f)
{
	struct cache_fill_watcher	*w;

	LIST_FOREACH(w, &f->watchers, entry)
		event_active(w->ev, EV_READ, 0);
}

/* The table above, as data: cache_fill_next[from] has bit (1 << to). */
#define FILL_BIT(s)	(1u << (s))
static const unsigned cache_fill_next[] = {
	[CACHE_FILL_WAITING] = FILL_BIT(CACHE_FILL_STREAMING) |
	    FILL_BIT(CACHE_FILL_FAILED),
	[CACHE_FILL_STREAMING] = FILL_BIT(CACHE_FILL_PUBLISHING) |
	    FILL_BIT(CACHE_FILL_PASSED) | FILL_BIT(CACHE_FILL_FAILED),
	[CACHE_FILL_PUBLISHING] = FILL_BIT(CACHE_FILL_DONE) |
	    FILL_BIT(CACHE_FILL_PASSED),
	[CACHE_FILL_DONE] = 0,
	[CACHE_FILL_FAILED] = 0,
	[CACHE_FILL_PASSED] = 0,
};

int
cache_fill_transition_ok(enum cache_fill_state from,
    enum cache_fill_state to)
{
	if ((unsigned)from >= sizeof(cache_fill_next) /
	    sizeof(cache_fill_next[0]) || (unsigned)to >= 32)
		return 0;
	return (cache_fill_next[from] & FILL_BIT(to)) != 0;
}

/* The one place a fill changes state (under its mutex). */
static void
cache_fill_set_state_locked(struct cache_fill *f, enum cache_fill_state to)
{
	if (!cache_fill_transition_ok(f->state, to))
		log_warnx("fill %s: state %d to %d is not in the table",
		    f->digest, (int)f->state, (int)to);
	AN(cache_fill_transition_ok(f->state, to));
	f->state = to;
	pthread_cond_signal(&f->cv);
	cache_fill_wake_locked(f);
}

static void
cache_fill_leave_table(struct cache_fill *f)
{
	size_t	i;

	pthread_mutex_lock(&fill_table_mtx);
	if (f->in_table) {
		LIST_REMOVE(f, entry);
		f->in_table = 0;
		fill_count--;
	}
	for (i = 0; i < fill_nend_watchers; i++)
		event_active(fill_end_watchers[i], EV_READ, 0);
	pthread_mutex_unlock(&fill_table_mtx);
}

void
cache_fill_end_watch(struct event *ev)
{
	pthread_mutex_lock(&fill_table_mtx);
	AN(fill_nend_watchers < sizeof(fill_end_watchers) /
	    sizeof(fill_end_watchers[0]));
	fill_end_watchers[fill_nend_watchers++] = ev;
	pthread_mutex_unlock(&fill_table_mtx);
}

void
cache_fill_end_unwatch(struct event *ev)
{
	size_t	i;

	pthread_mutex_lock(&fill_table_mtx);
	for (i = 0; i < fill_nend_watchers; i++)
		if (fill_end_watchers[i] == ev) {
			fill_end_watchers[i] =
			    fill_end_watchers[--fill_nend_watchers];
			break;
		}
	pthread_mutex_unlock(&fill_table_mtx);
}

int
cache_fill_busy(const char *digest)
{
	struct cache_fill	*f;
	int			 busy = 0;

	pthread_mutex_lock(&fill_table_mtx);
	LIST_FOREACH(f, cache_fill_bucket(digest), entry)
		if (strcmp(f->digest, digest) == 0)
			busy = 1;
	pthread_mutex_unlock(&fill_table_mtx);
	return busy;
}

unsigned
cache_fills_running(void)
{
	unsigned	n;

	pthread_mutex_lock(&fill_table_mtx);
	n = fill_count;
	pthread_mutex_unlock(&fill_table_mtx);
	return n;
}

struct cache_fill *
cache_fill_get(const char *digest, const char *upstream, const char *repo,
    int *created)
{
	struct cache_fill	*f;
	const char		*domain = cache_isolated(upstream);

	*created = 0;
	pthread_mutex_lock(&fill_table_mtx);
	LIST_FOREACH(f, cache_fill_bucket(digest), entry)
		if (strcmp(f->digest, digest) == 0 && f->domain == domain)
			break;
	if (f != NULL) {
		pthread_mutex_lock(&f->mtx);
		f->refs++;
		pthread_mutex_unlock(&f->mtx);
		pthread_mutex_unlock(&fill_table_mtx);
		return f;
	}
	f = xcalloc(1, sizeof(*f));
	f->magic = CACHE_FILL_MAGIC;
	pthread_mutex_init(&f->mtx, NULL);
	pthread_cond_init(&f->cv, NULL);
	f->refs = 1;
	snprintf(f->digest, sizeof(f->digest), "%s", digest);
	f->domain = domain;
	f->by_upstream = xstrdup(upstream);
	f->by_repo = xstrdup(repo);
	AZ(digest_parse(digest, &f->want));
	f->state = CACHE_FILL_WAITING;
	f->size = -1;
	f->fd = -1;
	clock_gettime(CLOCK_MONOTONIC, &f->created);
	LIST_INIT(&f->watchers);
	f->in_table = 1;
	fill_count++;
	LIST_INSERT_HEAD(cache_fill_bucket(digest), f, entry);
	pthread_mutex_unlock(&fill_table_mtx);
	*created = 1;
	return f;
}

void
cache_fill_ref(struct cache_fill *f, const char *who)
{
	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	pthread_mutex_lock(&f->mtx);
	f->refs++;
	pthread_mutex_unlock(&f->mtx);
	log_debug("fill %s: ref by %s", f->digest, who);
}

void
cache_fill_unref(struct cache_fill *f, const char *who)
{
	int	last;

	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	pthread_mutex_lock(&f->mtx);
	AN(f->refs > 0);
	last = --f->refs == 0;
	pthread_mutex_unlock(&f->mtx);
	log_debug("fill %s: unref by %s%s", f->digest, who,
	    last ? " (freed)" : "");
	if (!last)
		return;
	/* Only a fill out of the table can lose its last reference. */
	AZ(f->in_table);
	AN(LIST_EMPTY(&f->watchers));
	if (f->fd != -1)
		close(f->fd);
	if (f->tmp_path != NULL && f->state != CACHE_FILL_DONE &&
	    f->state != CACHE_FILL_PASSED)
		unlink(f->tmp_path);
	free(f->tmp_path);
	free(f->qbuf);
	free(f->ring);
	if (f->dctx != NULL)
		digest_ctx_free(f->dctx);
	free(f->upstream);
	free(f->repo);
	free(f->by_upstream);
	free(f->by_repo);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mtx);
	f->magic = 0;
	free(f);
}

int
cache_fill_watched(struct cache_fill *f)
{
	int	w;

	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	pthread_mutex_lock(&f->mtx);
	w = !LIST_EMPTY(&f->watchers);
	pthread_mutex_unlock(&f->mtx);
	return w;
}

int
cache_fill_started_by(struct cache_fill *f, const char *upstream,
    const char *repo)
{
	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	/* Set at creation, never changed: no lock needed. */
	return strcmp(f->by_upstream, upstream) == 0 &&
	    strcmp(f->by_repo, repo) == 0;
}

const char *
cache_fill_digest(const struct cache_fill *f)
{
	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	return f->digest;
}

void
cache_fill_watch(struct cache_fill *f, struct event *ev)
{
	struct cache_fill_watcher	*w;

	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	w = xcalloc(1, sizeof(*w));
	w->ev = ev;
	w->pos = UINT64_MAX;	/* not started: does not hold the window */
	pthread_mutex_lock(&f->mtx);
	LIST_INSERT_HEAD(&f->watchers, w, entry);
	/* Whatever happened before the watch counts as a change. */
	event_active(ev, EV_READ, 0);
	pthread_mutex_unlock(&f->mtx);
}

void
cache_fill_unwatch(struct cache_fill *f, struct event *ev)
{
	struct cache_fill_watcher	*w;

	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	pthread_mutex_lock(&f->mtx);
	LIST_FOREACH(w, &f->watchers, entry)
		if (w->ev == ev)
			break;
	if (w != NULL)
		LIST_REMOVE(w, entry);
	pthread_mutex_unlock(&f->mtx);
	free(w);
}

/* Bytes received so far (on disk, or in the memory window). */
static uint64_t
cache_fill_end_locked(const struct cache_fill *f)
{
	return f->spill ? f->ring_base + f->ring_len : f->written;
}

void
cache_fill_reader_pos(struct cache_fill *f, struct event *ev, uint64_t pos)
{
	struct cache_fill_watcher	*w;

	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	pthread_mutex_lock(&f->mtx);
	LIST_FOREACH(w, &f->watchers, entry)
		if (w->ev == ev)
			w->pos = pos;
	pthread_mutex_unlock(&f->mtx);
}

/*
 * How many bytes the filler may append now: what the writer's queue has
 * room for and, disk full, what can go into the memory window without
 * pushing out bytes that a reader still needs.
 */
size_t
cache_fill_room(struct cache_fill *f)
{
	struct cache_fill_watcher	*w;
	uint64_t			 keep, end;
	size_t				 queued, room;

	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	pthread_mutex_lock(&f->mtx);
	queued = f->qlen;
	room = f->qcap - queued;
	if (f->state != CACHE_FILL_STREAMING || f->eof)
		room = CACHE_FILL_QMAX;	/* append says what is wrong */
	else if (f->spill && !LIST_EMPTY(&f->watchers)) {
		end = f->ring_base + f->ring_len + queued;
		keep = end;
		LIST_FOREACH(w, &f->watchers, entry)
			if (w->pos < keep)
				keep = w->pos;
		if (keep < f->ring_base)
			keep = f->ring_base;
		if (end - keep >= CACHE_FILL_RING)
			room = 0;
		else if (room > CACHE_FILL_RING - (end - keep))
			room = CACHE_FILL_RING - (size_t)(end - keep);
	}
	pthread_mutex_unlock(&f->mtx);
	return room;
}

void
cache_fill_room_watch(struct cache_fill *f, struct event *ev)
{
	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	pthread_mutex_lock(&f->mtx);
	f->room_ev = ev;
	pthread_mutex_unlock(&f->mtx);
}

uint64_t
cache_fill_spills(void)
{
	return atomic_load(&cache_fill_nspills);
}

/* Append to the memory window, dropping its oldest bytes when full. */
static void
cache_fill_ring_push(struct cache_fill *f, const unsigned char *p, size_t n)
{
	size_t	drop, at, k;

	if (n > CACHE_FILL_RING) {
		drop = n - CACHE_FILL_RING;
		f->ring_head = 0;
		f->ring_base += f->ring_len + drop;
		f->ring_len = 0;
		p += drop;
		n = CACHE_FILL_RING;
	}
	if (f->ring_len + n > CACHE_FILL_RING) {
		drop = f->ring_len + n - CACHE_FILL_RING;
		f->ring_head = (f->ring_head + drop) % CACHE_FILL_RING;
		f->ring_base += drop;
		f->ring_len -= drop;
	}
	while (n > 0) {
		at = (f->ring_head + f->ring_len) % CACHE_FILL_RING;
		k = CACHE_FILL_RING - at;
		if (k > n)
			k = n;
		memcpy(f->ring + at, p, k);
		f->ring_len += k;
		p += k;
		n -= k;
	}
}

ssize_t
cache_fill_copy(struct cache_fill *f, uint64_t off, void *buf, size_t len)
{
	unsigned char	*out = buf;
	size_t		 n = 0, at, k;

	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	pthread_mutex_lock(&f->mtx);
	if (!f->spill || off < f->ring_base) {
		pthread_mutex_unlock(&f->mtx);
		return -1;
	}
	while (n < len && off + n < f->ring_base + f->ring_len) {
		at = (f->ring_head + (size_t)(off + n - f->ring_base)) %
		    CACHE_FILL_RING;
		k = CACHE_FILL_RING - at;
		if (k > len - n)
			k = len - n;
		if (k > (size_t)(f->ring_base + f->ring_len - off - n))
			k = (size_t)(f->ring_base + f->ring_len - off - n);
		memcpy(out + n, f->ring + at, k);
		n += k;
	}
	pthread_mutex_unlock(&f->mtx);
	return (ssize_t)n;
}

void
cache_fill_view(struct cache_fill *f, struct cache_fill_view *v)
{
	uint64_t	end;
	int		verified;

	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	pthread_mutex_lock(&f->mtx);
	v->state = f->state;
	v->size = f->size;
	end = cache_fill_end_locked(f);
	verified = cache_fill_state_verified(f->state);
	if (verified)
		v->avail = end;
	else if (f->state == CACHE_FILL_STREAMING)
		/* Hold the last byte back until the digest is checked. */
		v->avail = f->size > 0 && end >= (uint64_t)f->size ?
		    (uint64_t)f->size - 1 : end;
	else
		v->avail = 0;
	if (f->size < 0 && !verified)
		v->avail = 0;	/* no length: wait for the whole blob */
	v->disk_end = f->spill ? f->disk_end : UINT64_MAX;
	v->mem_start = f->spill ? f->ring_base : UINT64_MAX;
	v->fail_status = f->fail_status;
	v->fail_code = f->fail_code;
	memcpy(v->fail_msg, f->fail_msg, sizeof(v->fail_msg));
	memcpy(v->retry_after, f->retry_after, sizeof(v->retry_after));
	pthread_mutex_unlock(&f->mtx);
}

int
cache_fill_dup_fd(struct cache_fill *f)
{
	int	fd;

	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	pthread_mutex_lock(&f->mtx);
	fd = f->fd == -1 ? -1 : fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
	pthread_mutex_unlock(&f->mtx);
	return fd;
}

/* 1 if f is FAILED now, 0 if it had ended or been verified already. */
static int
cache_fill_fail_locked(struct cache_fill *f, int status, const char *code,
    const char *retry_after, const char *msg)
{
	if (!cache_fill_transition_ok(f->state, CACHE_FILL_FAILED))
		return 0;	/* ended, or verified: see the table */
	f->fail_status = status;
	f->fail_code = code;
	snprintf(f->fail_msg, sizeof(f->fail_msg), "%s", msg);
	snprintf(f->retry_after, sizeof(f->retry_after), "%s",
	    retry_after != NULL ? retry_after : "");
	if (f->tmp_path != NULL)
		unlink(f->tmp_path);
	cache_fill_set_state_locked(f, CACHE_FILL_FAILED);
	return 1;
}

/* f ended as res: its time since the first request, into the histogram. */
static void
cache_fill_observe(const struct cache_fill *f, enum metric_fill res)
{
	struct timespec	now;
	int64_t		usec;

	clock_gettime(CLOCK_MONOTONIC, &now);
	usec = (int64_t)(now.tv_sec - f->created.tv_sec) * 1000000 +
	    (now.tv_nsec - f->created.tv_nsec) / 1000;
	metric_fill_observe(res, usec > 0 ? (uint64_t)usec : 0);
}

/*
 * Once the body is complete (eof) only the writer may fail the fill: a
 * failure the filler sees later (its connection dropping after the
 * body, say) changes nothing; the writer verifies what arrived.
 */
static void
cache_fill_failv(struct cache_fill *f, int writer, int status,
    const char *code, const char *retry_after, const char *fmt, va_list ap)
{
	char	msg[256];
	int	ok;

	pthread_mutex_lock(&f->mtx);
	ok = cache_fill_transition_ok(f->state, CACHE_FILL_FAILED) &&
	    (writer || !f->eof);
	pthread_mutex_unlock(&f->mtx);
	if (!ok)
		return;		/* ended, or verified: see the table */
	vsnprintf(msg, sizeof(msg), fmt, ap);
	cache_fill_leave_table(f);
	pthread_mutex_lock(&f->mtx);
	/* The filler and the writer may both fail it: one of them does. */
	ok = cache_fill_fail_locked(f, status, code, retry_after, msg);
	pthread_mutex_unlock(&f->mtx);
	if (!ok)
		return;
	metric_inc(METRIC_FILLS_FAILED);
	cache_fill_observe(f, METRIC_FILL_FAILED);
	log_info("fill %s: failed: %s", f->digest, msg);
}

void
cache_fill_fail(struct cache_fill *f, int status, const char *code,
    const char *retry_after, const char *fmt, ...)
{
	va_list	ap;

	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	va_start(ap, fmt);
	cache_fill_failv(f, 0, status, code, retry_after, fmt, ap);
	va_end(ap);
}

/* The writer fails the fill (a write error, a corrupt or short body). */
static void __attribute__((format(printf, 4, 5)))
cache_fill_wfail(struct cache_fill *f, int status, const char *code,
    const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	cache_fill_failv(f, 1, status, code, NULL, fmt, ap);
	va_end(ap);
}

static void	*cache_fill_writer(void *);

static void
cache_fill_writer_gone(void)
{
	pthread_mutex_lock(&fill_table_mtx);
	AN(fill_writers > 0);
	fill_writers--;
	pthread_cond_broadcast(&fill_writers_cv);
	pthread_mutex_unlock(&fill_table_mtx);
}

int
cache_fill_begin(struct cache_fill *f, int64_t size)
{
	pthread_t	 th;
	pthread_attr_t	 attr;
	char		*path;
	int		 fd, err;

	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	AN(f->state == CACHE_FILL_WAITING);
	if (atomic_load(&fill_stopping)) {
		/* No writer may start that cache_fills_stop() did not see. */
		cache_fill_fail(f, 503, "UNAVAILABLE", "1",
		    "the mirror is stopping");
		return -1;
	}
	if (size >= 0 && (uint64_t)size > cache_fill_max) {
		cache_fill_fail(f, 403, "DENIED", NULL, "blob %s is %lld "
		    "bytes, more than this mirror's max_blob_size (%llu)",
		    f->digest, (long long)size,
		    (unsigned long long)cache_fill_max);
		return -1;
	}
	xasprintf(&path, "%s/tmp/%.16s.XXXXXX", cache_dir(), f->want.hex);
	if ((fd = mkostemp(path, O_CLOEXEC)) == -1) {
		log_warn("fill %s: mkstemp %s", f->digest, path);
		free(path);
		cache_fill_fail(f, 503, "UNAVAILABLE", NULL,
		    "cache cannot create a temp file");
		return -1;
	}
	pthread_mutex_lock(&f->mtx);
	f->fd = fd;
	f->tmp_path = path;
	f->size = size;
	f->dctx = digest_ctx_new(f->want.algo);
	/* The queue: 1 MiB, or the blob's size when smaller. */
	f->qcap = size >= 0 && (uint64_t)size < CACHE_FILL_QMAX ?
	    (size_t)size + 1 : CACHE_FILL_QMAX;
	f->qbuf = xmalloc(f->qcap);
	cache_fill_set_state_locked(f, CACHE_FILL_STREAMING);
	pthread_mutex_unlock(&f->mtx);
	cache_fill_ref(f, "writer");
	pthread_mutex_lock(&fill_table_mtx);
	fill_writers++;
	pthread_mutex_unlock(&fill_table_mtx);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&th, &attr, cache_fill_writer, f);
	pthread_attr_destroy(&attr);
	if (err != 0) {
		/* Out of threads (RLIMIT_NPROC, memory): this fill fails,
		 * the mirror goes on. */
		log_warnx("fill %s: no writer thread: %s", f->digest,
		    strerror(err));
		cache_fill_fail(f, 503, "UNAVAILABLE", NULL,
		    "cache cannot start a writer thread");
		cache_fill_unref(f, "writer");
		cache_fill_writer_gone();
		return -1;
	}
	return 0;
}

/*
 * len bytes of the writer's batch are stored: the filler, waiting for
 * room once the queue is full, is told when half of it has gone.
 */
static void
cache_fill_stored_locked(struct cache_fill *f, size_t len)
{
	size_t	before, after;

	before = f->qlen;
	f->qhead = (f->qhead + len) % f->qcap;
	f->qlen -= len;
	after = f->qlen;
	if (f->room_ev != NULL && before > f->qcap / 2 &&
	    after <= f->qcap / 2)
		event_active(f->room_ev, EV_TIMEOUT, 0);
}

/*
 * The writer: p, n at offset written to the temp file or, once the disk
 * is full, to the memory window.  0 ok, -1 (FAILED) on a write error.
 */
static int
cache_fill_store(struct cache_fill *f, const unsigned char *p, size_t len)
{
	uint64_t	off = f->written;
	size_t		n = len;
	ssize_t		k;

	while (n > 0 && !f->spill) {
		k = pwrite(f->fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == ENOSPC || errno == EDQUOT)) {
			/* Disk full: serve, don't store (see cache.h). */
			log_warnx("fill %s: %s is full after %llu bytes: "
			    "passing the blob through uncached (disk-full "
			    "pass-throughs: %llu)", f->digest, cache_dir(),
			    (unsigned long long)off, (unsigned long long)
			    atomic_fetch_add(&cache_fill_nspills, 1) + 1);
			pthread_mutex_lock(&f->mtx);
			f->ring = xmalloc(CACHE_FILL_RING);
			f->disk_end = f->ring_base = f->written = off;
			f->spill = 1;
			cache_fill_wake_locked(f);
			pthread_mutex_unlock(&f->mtx);
			break;
		}
		if (k <= 0) {
			log_warn("fill %s: write %s", f->digest, f->tmp_path);
			cache_fill_wfail(f, 503, "UNAVAILABLE",
			    "cache write failed: %s", strerror(errno));
			return -1;
		}
		p += k;
		off += (uint64_t)k;
		n -= (size_t)k;
	}
	pthread_mutex_lock(&f->mtx);
	if (f->spill)
		cache_fill_ring_push(f, p, n);
	else
		f->written = off;
	cache_fill_stored_locked(f, len);
	/* Readers are woken per 64 KiB, not per write: the rest arrives
	 * with the next wake or with the end of the fill. */
	if (cache_fill_end_locked(f) - f->woken_at >= CACHE_FILL_WAKE_BYTES) {
		f->woken_at = cache_fill_end_locked(f);
		cache_fill_wake_locked(f);
	}
	pthread_mutex_unlock(&f->mtx);
	return 0;
}

/*
 * The filler's checks before it queues len more bytes: the body must not
 * outgrow its Content-Length or max_blob_size.  0 ok, -1 (FAILED).
 */
static int
cache_fill_take(struct cache_fill *f, size_t len)
{
	int	streaming;

	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	pthread_mutex_lock(&f->mtx);	/* the writer may fail it */
	streaming = f->state == CACHE_FILL_STREAMING && !f->eof;
	pthread_mutex_unlock(&f->mtx);
	if (!streaming)
		return -1;
	if (f->size >= 0 && f->recv + len > (uint64_t)f->size) {
		cache_fill_fail(f, 502, "BLOB_UNKNOWN", NULL,
		    "upstream sent more bytes than its Content-Length");
		return -1;
	}
	/* No length (chunked): cut at the cap rather than fill the disk. */
	if (f->recv + len > cache_fill_max) {
		cache_fill_fail(f, 403, "DENIED", NULL, "blob %s is more than "
		    "this mirror's max_blob_size (%llu bytes)", f->digest,
		    (unsigned long long)cache_fill_max);
		return -1;
	}
	f->recv += len;
	metric_add(METRIC_FILL_BYTES, len);
	return 0;
}

/*
 * The filler's copy of len bytes into the queue (from buf, or else out
 * of src), past what the writer still has to store: the copy is made
 * without the mutex, which is held only to read and move the marks.
 */
static void
cache_fill_enqueue(struct cache_fill *f, const unsigned char *buf,
    struct evbuffer *src, size_t len)
{
	size_t	at, k;

	pthread_mutex_lock(&f->mtx);
	AN(f->qlen + len <= f->qcap);
	at = (f->qhead + f->qlen) % f->qcap;
	pthread_mutex_unlock(&f->mtx);
	while (len > 0) {
		k = f->qcap - at < len ? f->qcap - at : len;
		if (buf != NULL) {
			memcpy(f->qbuf + at, buf, k);
			buf += k;
		} else
			AN(evbuffer_remove(src, f->qbuf + at, k) == (int)k);
		pthread_mutex_lock(&f->mtx);
		f->qlen += k;
		/* Woken per batch, not per read: fewer thread switches. */
		if (f->qlen >= CACHE_FILL_BATCH)
			pthread_cond_signal(&f->cv);
		pthread_mutex_unlock(&f->mtx);
		at = (at + k) % f->qcap;
		len -= k;
	}
}

/*
 * The filler queues bytes for the writer thread, which hashes and writes
 * them: the event loop never waits on the disk or spends its turns on
 * SHA-256.  The caller keeps within cache_fill_room().
 */
int
cache_fill_append(struct cache_fill *f, const void *buf, size_t len)
{
	if (cache_fill_take(f, len) != 0)
		return -1;
	cache_fill_enqueue(f, buf, NULL, len);
	return 0;
}

int
cache_fill_append_buffer(struct cache_fill *f, struct evbuffer *src,
    size_t len)
{
	if (cache_fill_take(f, len) != 0)
		return -1;
	cache_fill_enqueue(f, NULL, src, len);
	return 0;
}

/* fsync the directory so that a rename survives a crash. */
static void
cache_fsync_dir(const char *path)
{
	char	*dir, *slash;
	int	 fd;

	dir = xstrdup(path);
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
}

/*
 * The writer, once verified: fsync, rename into blobs/, fsync the
 * directory, commit the index record.
 */
static void
cache_fill_publish(struct cache_fill *f)
{
	struct cache_blob_rec	 rec;
	char			*final = NULL;
	const char		*why = NULL;

	if (fsync(f->fd) != 0)
		why = "fsync";
	else if (cache_blob_dir_make(f->digest) != 0)
		why = "mkdir";
	else if ((final = cache_blob_path(f->digest)) == NULL ||
	    rename(f->tmp_path, final) != 0)
		why = "rename";
	if (why == NULL) {
		cache_fsync_dir(final);
		memset(&rec, 0, sizeof(rec));
		rec.size = f->written;
		rec.stored = rec.last_access = (int64_t)time(NULL);
		if (cache_index_blob_commit(cache_idx, f->upstream, f->repo,
		    f->digest, &rec, f->domain) != 0) {
			why = "index commit";
			unlink(final);
		}
	}
	cache_fill_leave_table(f);
	pthread_mutex_lock(&f->mtx);
	if (why != NULL) {
		/* Verified bytes, just not stored: readers finish. */
		log_warn("fill %s: publish failed at %s", f->digest, why);
		if (f->tmp_path != NULL)
			unlink(f->tmp_path);
		cache_fill_set_state_locked(f, CACHE_FILL_PASSED);
	} else {
		free(f->tmp_path);
		f->tmp_path = NULL;
		cache_fill_set_state_locked(f, CACHE_FILL_DONE);
	}
	pthread_mutex_unlock(&f->mtx);
	cache_fill_observe(f, why == NULL ? METRIC_FILL_STORED :
	    METRIC_FILL_PASSED);
	if (why == NULL) {
		metric_inc(METRIC_FILLS_STORED);
		log_info("fill %s: stored %llu bytes", f->digest,
		    (unsigned long long)f->written);
	}
	free(final);
}

/*
 * The writer, at the end of the body: size and digest checked, then the
 * blob published (or, disk full, passed through).
 */
static void
cache_fill_finish(struct cache_fill *f)
{
	struct digest	got;
	uint64_t	got_bytes;

	got_bytes = f->spill ? f->ring_base + f->ring_len : f->written;
	if (f->size >= 0 && got_bytes != (uint64_t)f->size) {
		cache_fill_wfail(f, 502, "BLOB_UNKNOWN",
		    "upstream body ended at %llu of %lld bytes",
		    (unsigned long long)got_bytes, (long long)f->size);
		return;
	}
	digest_ctx_final(f->dctx, &got);
	f->dctx = NULL;
	if (strcmp(got.str, f->digest) != 0) {
		log_warnx("fill %s: upstream sent bytes with digest %s",
		    f->digest, got.str);
		cache_fill_wfail(f, 502, "BLOB_UNKNOWN",
		    "upstream sent corrupt data (digest mismatch)");
		return;
	}
	if (f->spill)
		cache_fill_leave_table(f);
	pthread_mutex_lock(&f->mtx);
	if (f->size < 0)
		f->size = (int64_t)got_bytes;
	/* Verified: readers may have the last byte now. */
	if (f->spill) {
		/* Verified but not stored: readers finish, nothing is kept. */
		if (f->tmp_path != NULL)
			unlink(f->tmp_path);
		cache_fill_set_state_locked(f, CACHE_FILL_PASSED);
	} else
		cache_fill_set_state_locked(f, CACHE_FILL_PUBLISHING);
	pthread_mutex_unlock(&f->mtx);
	if (!f->spill) {
		cache_fill_publish(f);
		return;
	}
	metric_inc(METRIC_FILLS_PASSED);
	cache_fill_observe(f, METRIC_FILL_PASSED);
	log_info("fill %s: passed through %llu bytes, not cached (disk full)",
	    f->digest, (unsigned long long)got_bytes);
}

/*
 * The writer's next span: at most CACHE_FILL_CHUNK bytes from qhead, up
 * to the end of qbuf; 0 when the fill has failed, the body is all
 * stored, or the mirror stops before the body is in.  Under mtx.
 */
static size_t
cache_fill_next_span(struct cache_fill *f)
{
	size_t	n;

	while (f->state == CACHE_FILL_STREAMING &&
	    f->qlen < CACHE_FILL_BATCH && !f->eof &&
	    !atomic_load(&fill_stopping))
		pthread_cond_wait(&f->cv, &f->mtx);
	if (f->state != CACHE_FILL_STREAMING || f->qlen == 0 ||
	    (!f->eof && atomic_load(&fill_stopping)))
		return 0;
	n = f->qlen < CACHE_FILL_CHUNK ? f->qlen : CACHE_FILL_CHUNK;
	if (n > f->qcap - f->qhead)
		n = f->qcap - f->qhead;
	return n;
}

/*
 * The fill's writer thread, from begin to the end of the fill: it hashes
 * the queued bytes and writes them (cache_fill_store), then verifies and
 * publishes the blob (cache_fill_finish).  It holds a reference.
 */
static void *
cache_fill_writer(void *arg)
{
	struct cache_fill	*f = arg;
	const unsigned char	*p;
	size_t			 n;
	int			 finish, cut;

	pthread_mutex_lock(&f->mtx);
	while ((n = cache_fill_next_span(f)) > 0) {
		p = f->qbuf + f->qhead;
		pthread_mutex_unlock(&f->mtx);
		digest_ctx_update(f->dctx, p, n);
		if (cache_fill_store(f, p, n) != 0) {
			pthread_mutex_lock(&f->mtx);
			break;
		}
		pthread_mutex_lock(&f->mtx);
	}
	finish = f->state == CACHE_FILL_STREAMING && f->eof && f->qlen == 0;
	/* Still streaming without its end: cache_fills_stop() cut it. */
	cut = f->state == CACHE_FILL_STREAMING && !f->eof;
	if (finish) {
		/* The filler has ended (eof): the queue can go before the
		 * readers of the fill do.  (A failed fill's filler may still
		 * be copying in: it goes with the last reference.) */
		free(f->qbuf);
		f->qbuf = NULL;
	}
	pthread_mutex_unlock(&f->mtx);
	if (finish)
		cache_fill_finish(f);
	else if (cut)	/* out of the table, its temp file gone */
		cache_fill_wfail(f, 503, "UNAVAILABLE",
		    "the mirror is stopping");
	cache_fill_unref(f, "writer");
	cache_fill_writer_gone();
	return NULL;
}

/*
 * The mirror stops (its event loops are stopped, not yet freed): every
 * writer is woken and waited for.  A body not all in is left where it is
 * (its temp file goes at the next start, as after a crash); one all in is
 * verified and published first.  After this no writer touches the index,
 * the cache dir or an event of a loop (SIGINT's stop freed the loops under
 * writers still storing, and cache_close closed the index under one
 * publishing).  At most timeout_ms: a writer stuck in a hung fsync does not
 * hold the exit for ever.  Returns the writers still running (the caller
 * must then free nothing they use).
 */
unsigned
cache_fills_stop(unsigned timeout_ms)
{
	struct cache_fill	*f;
	struct timespec		 until;
	unsigned		 writers, whole = 0, left;
	size_t			 i;

	atomic_store(&fill_stopping, 1);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&fill_table_mtx);
	writers = fill_writers;
	for (i = 0; i < CACHE_FILL_BUCKETS; i++)
		LIST_FOREACH(f, &fill_table[i], entry) {
			/* Under f->mtx: a writer between its check of
			 * fill_stopping and its wait cannot miss this. */
			pthread_mutex_lock(&f->mtx);
			whole += f->eof && (f->state == CACHE_FILL_STREAMING ||
			    f->state == CACHE_FILL_PUBLISHING);
			pthread_cond_broadcast(&f->cv);
			pthread_mutex_unlock(&f->mtx);
		}
	while (fill_writers > 0 && pthread_cond_timedwait(&fill_writers_cv,
	    &fill_table_mtx, &until) == 0)
		;
	left = fill_writers;
	pthread_mutex_unlock(&fill_table_mtx);
	if (writers > 0)
		log_info("stop: %u fill writer%s (%u with the body in, "
		    "publishing), %u still running after %u ms", writers,
		    writers == 1 ? "" : "s", whole, left, timeout_ms);
	if (left == 0)	/* the cache may be opened again (unit tests) */
		atomic_store(&fill_stopping, 0);
	return left;
}

void
cache_fill_end(struct cache_fill *f, const char *upstream, const char *repo)
{
	CHECK_OBJ_NOTNULL(f, CACHE_FILL_MAGIC);
	pthread_mutex_lock(&f->mtx);
	if (f->state == CACHE_FILL_STREAMING && !f->eof) {
		f->upstream = xstrdup(upstream);
		f->repo = xstrdup(repo);
		f->eof = 1;
		pthread_cond_signal(&f->cv);
	}
	pthread_mutex_unlock(&f->mtx);
}
