/*
 * cache.h — the mirror's cache: the LMDB index, verified blob files and
 * in-flight fills.  One cache per process (cache_open() once at start-up,
 * after any fork); every function is thread-safe.
 *
 * Layout under [cache] dir:
 *	LOCK			flock'd by the one daemon using the directory
 *	index/			LMDB environment
 *	blobs/<algo>/<ab>/<hex>	verified, immutable blob files
 *	tmp/			in-flight fills; emptied at start-up
 */
#ifndef CACHE_CACHE_H
#define CACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/digest.h"

struct config;
struct event;
struct evbuffer;

/* Create the directories, take the lock, empty tmp/, open the index. */
int	cache_open(const struct config *);
void	cache_close(void);
const char *cache_dir(void);
/* 0 when a file can be made in it, else -1 and why (/readyz). */
int	cache_dir_writable(char *err, size_t errlen);

/*
 * Isolation ([upstream] isolate = yes): bytes fetched from an isolated
 * upstream are recorded as its own and are a miss for requests through
 * any other upstream, whatever that one answers.  Requests are named by
 * their upstream (NULL: no check, the mirror's own use).  This returns
 * the upstream's name if it is isolated, else NULL.
 */
const char *cache_isolated(const char *upstream);

/*
 * A verified blob: opens its file read-only into *fd (the caller closes
 * it) and sets *size.  0 hit, 1 miss, -1 error (logged).  An index entry
 * whose file is missing or has the wrong size is dropped and is a miss.
 */
int	cache_blob_open(const char *digest, const char *upstream, int *fd,
	    uint64_t *size);
/* A tag record pointing here means "upstream said 404" (negative). */
#define CACHE_TAG_NEGATIVE	"-"

/*
 * cache_admin.c: budget, pins, verify (see there).  The budget (max_size)
 * is compared with used_bytes: blob files plus the index's pages in use,
 * which hold the manifests, tags and links.
 */
struct cache_du {
	uint64_t	blobs, bytes;		/* blob files */
	uint64_t	pinned_blobs, pinned_bytes;
	uint64_t	tags;			/* positive tags */
	uint64_t	max_bytes;	/* [cache] max_size, 0 unlimited */
	uint64_t	manifests, manifest_bytes;
	uint64_t	negative_tags;		/* upstream-404 records */
	uint64_t	max_negative;		/* [cache] max_negative */
	uint64_t	links;
	uint64_t	index_bytes;		/* LMDB pages in use */
	uint64_t	used_bytes;		/* bytes + index_bytes */
};
/* Cheap figures for /metrics: no scan (counts from LMDB's statistics,
 * bytes from the index's totals record). */
struct cache_stats {
	uint64_t	blobs, bytes;
	uint64_t	manifests, manifest_bytes;
	uint64_t	tags, negative_tags, max_negative, negative_refused;
	uint64_t	links;
	uint64_t	index_bytes, used_bytes, max_bytes;
};
/*
 * Start the manager thread: access times, LRU eviction, and every
 * [cache] gc_interval a pass of cache_gc() over the index (not blobs).
 * Daemon only.
 */
void	cache_manager_start(const struct config *);
/* Record a hit's access time (in memory; flushed in batches). */
void	cache_blob_touch(const char *digest);
/* The budget ([cache] max_size; 0: unlimited). */
uint64_t cache_budget_bytes(void);
/* Measure (no walk but of the pinned blobs): the CLI and the admin API. */
int	cache_du(struct cache_du *);
/* du's fields as a JSON object ("regmirror cache du --json", the admin
 * API's /api/v1/cache): a new reference. */
struct json_t;
struct json_t *cache_du_json(const struct cache_du *);
int	cache_stats(struct cache_stats *);
/* Remove a blob (index, then file).  0 done, 1 absent, -1 error. */
int	cache_blob_remove(const char *digest, const char *why);
/* Pin until (unix seconds), -1 forever, 0 unpins.  0, 1 absent, -1. */
int	cache_blob_pin(const char *digest, int64_t until);
int	cache_evict_lru(uint64_t target_bytes, size_t max);
int	cache_verify_all(size_t *checked, size_t *bad,
	    void (*progress)(const char *digest, int ok, void *), void *arg);

/*
 * cache_gc.c: the index's lifecycle.  One pass removes, in small batches
 * (short write transactions):
 *  - negative tags older than their upstream's negative_ttl (0 for an
 *    upstream cfg does not name: nothing can ask it any more);
 *  - tags not validated for cfg->tag_max_age (0: kept);
 *  - with blobs set, blobs no tag and no pin reaches, stored before
 *    now - grace;
 *  - manifests no tag reaches (through indexes too) whose walk reaches no
 *    pinned blob, with mtime before now - grace;
 *  - links whose digest is neither a blob nor a manifest.
 * A dry run removes nothing and counts what would go.  0 or -1.
 */
struct cache_gc_opts {
	const struct config	*cfg;
	int64_t			 grace;		/* seconds */
	int			 blobs;		/* also unreferenced blobs */
	int			 dry_run;
};
struct cache_gc_result {
	size_t		blobs, manifests, tags, negatives, links;
	uint64_t	blob_bytes, manifest_bytes;
};
int	cache_gc(const struct cache_gc_opts *, struct cache_gc_result *);
/*
 * Listing, for "regmirror cache ls": every tag (digest NULL for a
 * remembered upstream 404), then every blob; a callback returning
 * nonzero stops.  The strings live during the call.  0 or -1.
 */
struct cache_ls_tag {
	const char	*upstream, *repo, *tag;
	const char	*digest;
	int64_t		 validated;
};
struct cache_ls_blob {
	const char	*digest;
	uint64_t	 size;
	int64_t		 stored, last_access, pinned_until;
};
int	cache_ls(int (*tag_cb)(const struct cache_ls_tag *, void *),
	    int (*blob_cb)(const struct cache_ls_blob *, void *), void *arg);
/*
 * Manifests (cache_manifest.c): the one walker, with one set of rules
 * (its header comment).  cache_manifest_each checks a whole manifest or
 * index first, then sets *is_index (if not NULL) and gives cb each
 * descriptor in document order: an index's children, or an image's
 * config then layers (schema 1: fsLayers).  0, cb's first nonzero
 * return, or -1 with err naming the first bad field (cb not called).
 * The strings live during the call.
 */
#define CACHE_DESC_MANIFEST_MAX	(INT64_C(4) * 1024 * 1024)
#define CACHE_DESC_BLOB_MAX	(INT64_C(1) << 40)
#define CACHE_PLATFORM_FIELD_MAX 64	/* os, architecture, variant */
enum cache_desc_kind {
	CACHE_DESC_CHILD,	/* a manifest of an index */
	CACHE_DESC_CONFIG,
	CACHE_DESC_LAYER
};
struct cache_desc {
	enum cache_desc_kind	 kind;
	size_t			 index;		/* in manifests[] or layers[] */
	const char		*digest;	/* canonical */
	const char		*media_type;	/* NULL: absent */
	int64_t			 size;		/* -1: absent */
	/* CHILD only; NULL: absent. */
	const char		*os, *arch, *variant;
	int			 foreign;	/* LAYER with urls */
	struct digest		 dg;
};
typedef int	cache_desc_cb(const struct cache_desc *, void *);
int	cache_manifest_each(const void *data, size_t len, int *is_index,
	    cache_desc_cb *, void *arg, char *err, size_t errlen);
int	cache_platform_field_valid(const char *, size_t);
/* A cached manifest (itself included) and every cached manifest and
 * blob below it, foreign layers left out; cb is given canonical digests
 * only (an invalid root or manifest is not walked below). */
void	cache_manifest_walk(const char *digest,
	    void (*cb)(const char *digest, int is_manifest, void *),
	    void *arg);
/* Open without the lock, tmp cleanup or reconcile: for the CLI, which
 * may run beside the daemon. */
int	cache_open_shared(const struct config *);

/* Reconcile disk and index in the background (cache_reconcile.c). */
void	cache_reconcile_start(void);
/* 1 once it has finished. */
int	cache_reconciled(void);
/* Is the blob known to be in (upstream, repo)?  0 yes, 1 no, -1 error. */
int	cache_blob_linked(const char *upstream, const char *repo,
	    const char *digest);
/* Record that (upstream, repo) holds the blob. */
int	cache_blob_link(const char *upstream, const char *repo,
	    const char *digest);
/* Index lookup only: 0 present (size set), 1 absent, -1 error. */
int	cache_blob_stat(const char *digest, uint64_t *size);

/*
 * Manifests, exact bytes: *media_type and *data are malloc'd.
 * 0 hit, 1 miss, -1 error.
 */
int	cache_manifest_get(const char *digest, const char *upstream,
	    char **media_type, unsigned char **data, size_t *len);
/*
 * In-memory answers (cache_mem.c): one reference-counted copy of a hot
 * manifest or tag list that every client is sent from.  Keys: a digest
 * (manifests) or any string (lists).  get: 0 hit (the hold has a
 * reference and copies of the strings; release it), 1 miss or older
 * than max_age_ms (-1: any age).  put takes the body's reference.
 */
struct rbuf;
struct cache_mem_hold {
	struct rbuf	*body;
	char		*ctype, *link, *filters;
	int64_t		 age_ms;
};
void	cache_mem_init(uint64_t budget);
void	cache_mem_clear(void);
int	cache_mem_get(const char *key, int64_t max_age_ms,
	    struct cache_mem_hold *);
void	cache_mem_put(const char *key, struct rbuf *body, const char *ctype,
	    const char *link, const char *filters);
void	cache_mem_release(struct cache_mem_hold *);
uint64_t cache_mem_usage(void);
/*
 * A cached manifest for a request through upstream (isolation applies),
 * from memory or the index (then kept in memory): 0 and h set, 1 miss.
 */
int	cache_manifest_hold(const char *digest, const char *upstream,
	    struct cache_mem_hold *h);
/* 1 if the manifest is cached (and may serve upstream's requests). */
int	cache_manifest_has(const char *digest, const char *upstream);
/* Store a verified manifest, link it to (upstream, repo), and point tag
 * (may be NULL) at it, validated now. */
int	cache_manifest_put(const char *upstream, const char *repo,
	    const char *tag, const char *digest, const char *media_type,
	    const unsigned char *data, size_t len);
/* digest must hold DIGEST_STR_MAX.  0 hit, 1 miss, -1 error. */
int	cache_tag_get(const char *upstream, const char *repo, const char *tag,
	    char *digest, int64_t *validated);
/* Small durable records (JSON text) for other modules: replication
 * state.  get: 0 found (*val malloc'd), 1 absent, -1 error. */
int	cache_meta_get(const char *key, char **val);
int	cache_meta_put(const char *key, const char *val);
/* Every cached tag of (upstream, repo), with its digest. */
int	cache_tags_of(const char *upstream, const char *repo,
	    void (*cb)(const char *tag, const char *digest, void *),
	    void *arg);
/* Forget a tag (replication with delete = yes). 0, 1 absent, -1. */
int	cache_tag_delete(const char *upstream, const char *repo,
	    const char *tag);
/*
 * Upstream confirmed the tag still points at digest: validated = now.
 * digest CACHE_TAG_NEGATIVE records a 404; with [cache] max_negative of
 * those stored, a new one is not (1), and the tag's old record goes.
 */
int	cache_tag_validated(const char *upstream, const char *repo,
	    const char *tag, const char *digest);

/*
 * In-flight fills: one per digest being fetched, shared by every reader
 * on every worker.  The filler (the worker that created it) feeds bytes;
 * readers register an event which is made active (from any thread) on
 * every change, then take a snapshot with cache_fill_view().
 *
 *	states:	WAITING --begin--> STREAMING --end, verified--> PUBLISHING
 *		PUBLISHING --fsync, rename, commit--> DONE
 *		STREAMING --end, verified, disk full--> PASSED
 *		PUBLISHING --fsync, rename or commit failed--> PASSED
 *		WAITING|STREAMING --fail--> FAILED
 *	(the whole table, with who makes each change: cache_fill.c)
 *
 * When the disk is full (ENOSPC), the fill goes on in memory: the bytes
 * already written stay readable from the file, later ones from a bounded
 * window in memory, and the blob is passed through verified but not
 * stored (PASSED).  A reader that falls behind the window is cut.
 *
 * Bytes a reader may send (view.avail) are those written, less the last
 * byte until size and digest are verified (PUBLISHING), so that a corrupt
 * body never reaches a client looking complete.  Readers need not wait
 * for the fsync: only cache hits do.  Once DONE or
 * FAILED the fill leaves the table: the next request hits the cache or
 * starts a new fill.
 */
enum cache_fill_state {
	CACHE_FILL_WAITING = 0,
	CACHE_FILL_STREAMING,
	CACHE_FILL_PUBLISHING,
	CACHE_FILL_DONE,
	CACHE_FILL_FAILED,
	CACHE_FILL_PASSED,	/* verified, passed through, not stored */
};

/* Verified: every byte may be sent (PUBLISHING, DONE, PASSED). */
static inline int
cache_fill_state_verified(enum cache_fill_state s)
{
	return s == CACHE_FILL_PUBLISHING || s == CACHE_FILL_DONE ||
	    s == CACHE_FILL_PASSED;
}

/* Is from -> to a transition of the table?  (Tests, assertions.) */
int	cache_fill_transition_ok(enum cache_fill_state from,
	    enum cache_fill_state to);

struct cache_fill;

struct cache_fill_view {
	enum cache_fill_state	 state;
	int64_t			 size;		/* -1 until known */
	uint64_t		 avail;		/* bytes a reader may send */
	uint64_t		 disk_end;	/* bytes [0, disk_end) are in
						   the file (UINT64_MAX: all) */
	uint64_t		 mem_start;	/* disk full: bytes from here
						   are in memory (copy them) */
	int			 fail_status;	/* HTTP status for clients */
	const char		*fail_code;	/* OCI error code */
	char			 fail_msg[256];
	char			 retry_after[32];
};

/*
 * Find the fill for digest in upstream's isolation domain (every
 * upstream shares one, but an isolated upstream has its own), or create
 * it (*created = 1) for (upstream, repo), who start it.  Referenced.
 */
struct cache_fill *cache_fill_get(const char *digest, const char *upstream,
	    const char *repo, int *created);
/*
 * Completion: ev is made active (from any thread) whenever a fill leaves
 * the table — published, passed through or failed — so that a job waiting
 * for blobs to be stored looks again instead of polling.  At most 8.
 */
void	cache_fill_end_watch(struct event *ev);
void	cache_fill_end_unwatch(struct event *ev);
/* Fills under way (SIGTERM waits for them). */
unsigned cache_fills_running(void);
/* Stop every fill's writer thread and wait for them, at most timeout_ms
 * (once no event loop runs; cache_close does it too).  The writers still
 * running: 0 once all are gone. */
unsigned cache_fills_stop(unsigned timeout_ms);
#define CACHE_STOP_WAIT_MS	10000	/* the stop's wait for writers */
/* Is a fill of digest (any isolation domain) still under way? */
int	cache_fill_busy(const char *digest);
/* Has the fill any reader now? */
int	cache_fill_watched(struct cache_fill *);
/* Was the fill started for (upstream, repo)? */
int	cache_fill_started_by(struct cache_fill *, const char *upstream,
	    const char *repo);
void	cache_fill_ref(struct cache_fill *, const char *who);
void	cache_fill_unref(struct cache_fill *, const char *who);
const char *cache_fill_digest(const struct cache_fill *);

/* Readers. ev is activated on every change; unwatch before freeing it. */
void	cache_fill_watch(struct cache_fill *, struct event *ev);
void	cache_fill_unwatch(struct cache_fill *, struct event *ev);
void	cache_fill_view(struct cache_fill *, struct cache_fill_view *);
/* A new descriptor on the fill's file (valid once STREAMING). */
int	cache_fill_dup_fd(struct cache_fill *);
/*
 * Disk full: copy bytes at off from the fill's memory window into buf.
 * Returns the bytes copied (0: none yet), -1 if they have already left
 * the window (the reader is too slow and must give up).
 */
ssize_t	cache_fill_copy(struct cache_fill *, uint64_t off, void *buf,
	    size_t len);
/* A reader tells how far it has got (disk full: the window waits). */
void	cache_fill_reader_pos(struct cache_fill *, struct event *ev,
	    uint64_t pos);
/*
 * Bytes the filler may append now: at most the writer queue's 1 MiB, and
 * disk full what the memory window can take.  At 0 the filler waits:
 * ev (cache_fill_room_watch; NULL to stop, before freeing it) is made
 * active from the writer thread once half of the queue has been written;
 * disk full, the filler polls.
 */
size_t	cache_fill_room(struct cache_fill *);
void	cache_fill_room_watch(struct cache_fill *, struct event *ev);
/* Fills that hit a full disk and were passed through, uncached. */
uint64_t cache_fill_spills(void);

/* [cache] max_blob_size (0: none): larger blobs fail with 403 DENIED. */
void	cache_fill_set_max(uint64_t max);
/* Filler.  size -1 when upstream gave no length.  0 ok, -1 failed (the
 * fill is then FAILED). */
int	cache_fill_begin(struct cache_fill *, int64_t size);
int	cache_fill_append(struct cache_fill *, const void *, size_t);
/* The same, moving len bytes out of src (not drained on failure). */
int	cache_fill_append_buffer(struct cache_fill *, struct evbuffer *src,
	    size_t len);
/*
 * End of body.  The fill's writer thread (started by begin) hashes and
 * writes what was appended, then verifies, fsyncs, renames and commits,
 * linking the blob to (upstream, repo); from here on only it may fail
 * the fill.
 */
void	cache_fill_end(struct cache_fill *, const char *upstream,
	    const char *repo);
void	cache_fill_fail(struct cache_fill *, int status, const char *code,
	    const char *retry_after, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));

#endif
