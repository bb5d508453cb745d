/*
 * cache_int.h — private to cache/: the LMDB index (cache_index.c, the only
 * file that includes lmdb.h), blob file paths (cache_dir.c) and in-flight
 * fills (cache_fill.c).
 *
 * Index databases (one LMDB environment in <dir>/index, opened once per
 * process, after any fork; named databases opened once at start-up):
 *
 *   blob      digest string            -> struct cache_blob_rec
 *   manifest  digest string            -> media type NUL bytes
 *   mtime     digest string            -> int64 time a manifest was last
 *                                         stored or had a tag validated to
 *                                         it (gc's grace starts there)
 *   tag       upstream NUL repo NUL tag -> struct cache_tag_rec
 *   link      upstream NUL repo NUL digest -> int64 time linked
 *   origin    digest string            -> upstream name (isolate = yes)
 *   lru       be64 last access . digest -> "" (every blob, oldest first)
 *   pin       digest string            -> "" (the blobs with a pin)
 *   totals    "totals"                 -> negative tags, manifest bytes
 *                                         and blob bytes
 *
 * Every call is its own short transaction; values are copied out before the
 * transaction ends.  Return codes: 0 found/done, 1 not found (getters),
 * -1 LMDB error (already logged with mdb_strerror).  Thread-safe (LMDB
 * handles its own locking; MDB_NOTLS is used so read transactions are not
 * tied to threads).
 *
 * The budget, du and the negative-entry cap never walk the index, and
 * eviction reads only the lru order from its oldest end: lru, pin and
 * totals change in the same write transaction as the records they
 * follow, so they are exact for every process that opens the index (the
 * daemon and "regmirror cache" at once).  An index without them, or with
 * an lru order of another length than its blob records (an older version
 * wrote to it), gets them counted at open.
 */
#ifndef CACHE_CACHE_INT_H
#define CACHE_CACHE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "common/digest.h"

/* Component caps; the whole key must also fit mdb_env_get_maxkeysize(). */
#define CACHE_INDEX_UPSTREAM_MAX	255
#define CACHE_INDEX_REPO_MAX		255
#define CACHE_INDEX_TAGNAME_MAX		128
#define CACHE_INDEX_DIGEST_MAX		(DIGEST_STR_MAX - 1)
/* LMDB's default MDB_MAXKEYSIZE; composite keys are built in this. */
#define CACHE_INDEX_KEYBUF		511

struct cache_index;

struct cache_blob_rec {
	uint64_t	size;
	int64_t		stored;		/* unix seconds */
	int64_t		last_access;	/* unix seconds */
	int64_t		pinned_until;	/* 0: not pinned, -1: forever */
};

struct cache_tag_rec {
	char		digest[DIGEST_STR_MAX];	/* or CACHE_TAG_NEGATIVE */
	int64_t		validated;	/* unix time of last upstream check */
};

/* A tag with its key, as a walk saw it (batched removal). */
struct cache_tag_ent {
	char			te_upstream[CACHE_INDEX_UPSTREAM_MAX + 1];
	char			te_repo[CACHE_INDEX_REPO_MAX + 1];
	char			te_tag[CACHE_INDEX_TAGNAME_MAX + 1];
	struct cache_tag_rec	te_rec;
};

/* A link with its key; has_blob and has_manifest say what the digest is
 * in the index (in the walk's snapshot). */
struct cache_link_ent {
	char		le_upstream[CACHE_INDEX_UPSTREAM_MAX + 1];
	char		le_repo[CACHE_INDEX_REPO_MAX + 1];
	char		le_digest[DIGEST_STR_MAX];
	int64_t		le_when;
	int		le_has_blob;
	int		le_has_manifest;
};

/*
 * Where a batched walk resumes: the next key to visit, copied out of the
 * map.  Zero it to start from the first key; ip_done is set at the end.
 */
struct cache_index_pos {
	unsigned char	ip_key[CACHE_INDEX_KEYBUF];
	size_t		ip_len;
	int		ip_done;
};

/* Entries and sizes, from LMDB's own statistics (no scan). */
struct cache_index_stat {
	uint64_t	is_blobs;
	uint64_t	is_manifests;
	uint64_t	is_tags;		/* negative ones included */
	uint64_t	is_links;
	uint64_t	is_bytes;		/* pages in use x page size */
	uint64_t	is_negatives;		/* the totals record */
	uint64_t	is_manifest_bytes;
	uint64_t	is_blob_bytes;
	uint64_t	is_max_negative;
	uint64_t	is_neg_refused;		/* at the cap, since open */
};

/* Open (creating) the environment in dir (which must exist). */
int	cache_index_open(const char *dir, uint64_t map_size,
	    struct cache_index **out);
void	cache_index_close(struct cache_index *);
/* Bulk loading: no sync per commit, one at close.  0 or -1. */
int	cache_index_set_nosync(struct cache_index *);

int	cache_index_blob_get(struct cache_index *, const char *digest,
	    struct cache_blob_rec *out);
int	cache_index_blob_put(struct cache_index *, const char *digest,
	    const struct cache_blob_rec *);
int	cache_index_blob_del(struct cache_index *, const char *digest);
/* Only if the record is still *expect: 0 deleted, 1 absent or changed. */
int	cache_index_blob_del_if(struct cache_index *, const char *digest,
	    const struct cache_blob_rec *expect);
/* Update last_access only (cheap; may be batched by the caller). */
int	cache_index_blob_touch(struct cache_index *, const char *digest,
	    int64_t when);
/* Call cb for every blob record, in key order; cb returns nonzero to stop. */
int	cache_index_blob_foreach(struct cache_index *,
	    int (*cb)(const char *digest, const struct cache_blob_rec *,
	    void *), void *arg);

/* The same in batches: at most max (> 0) records from pos. */
int	cache_index_blob_scan(struct cache_index *, struct cache_index_pos *,
	    size_t max, int (*cb)(const char *digest,
	    const struct cache_blob_rec *, void *), void *arg);
/* The same, for the digests that start with prefix ("sha256:ab"). */
int	cache_index_blob_foreach_prefix(struct cache_index *,
	    const char *prefix, int (*cb)(const char *digest,
	    const struct cache_blob_rec *, void *), void *arg);
/* The same, for the pinned blobs only (pinned_until != 0; expired too). */
int	cache_index_pin_foreach(struct cache_index *,
	    int (*cb)(const char *digest, const struct cache_blob_rec *,
	    void *), void *arg);

/*
 * One batch of least recently used eviction: read the lru order from pos
 * (a bounded number of keys, in a read transaction), then remove, in one
 * write transaction, up to max records of blobs not pinned at now, oldest
 * access first, until want bytes are freed.  The records removed are in
 * out[0 .. *n); unlinking their files is the caller's.  pos moves on, and
 * is done at the end of the order; a batch may remove nothing and still
 * move it (pinned blobs).  0 or -1.
 */
struct cache_evicted {
	char		digest[DIGEST_STR_MAX];
	uint64_t	size;
	int64_t		last_access;
};
int	cache_index_blob_evict(struct cache_index *, int64_t now,
	    uint64_t want, struct cache_evicted *out, size_t max,
	    struct cache_index_pos *pos, size_t *n);

/*
 * Manifests: *media_type and *data are malloc'd copies (free(3) them).
 */
int	cache_index_manifest_get(struct cache_index *, const char *digest,
	    char **media_type, unsigned char **data, size_t *len);
int	cache_index_manifest_put(struct cache_index *, const char *digest,
	    const char *media_type, const unsigned char *data, size_t len);
int	cache_index_manifest_del(struct cache_index *, const char *digest);
/* 0 present, 1 absent, -1 error; nothing is copied. */
int	cache_index_manifest_exists(struct cache_index *, const char *digest);

int	cache_index_tag_get(struct cache_index *, const char *upstream,
	    const char *repo, const char *tag, struct cache_tag_rec *out);
/*
 * A negative record (digest CACHE_TAG_NEGATIVE) that would be a new one
 * while the index holds max_negative of them is not stored, and the
 * tag's positive record, if any, is removed (upstream said 404): 1.  A
 * positive record also restarts its manifest's grace (mtime = validated).
 */
int	cache_index_tag_put(struct cache_index *, const char *upstream,
	    const char *repo, const char *tag, const struct cache_tag_rec *);
int	cache_index_tag_del(struct cache_index *, const char *upstream,
	    const char *repo, const char *tag);
/* The cap on negative records (default: none); cache_open() sets it. */
void	cache_index_set_max_negative(struct cache_index *, uint64_t);

int	cache_index_link_get(struct cache_index *, const char *upstream,
	    const char *repo, const char *digest);
int	cache_index_link_put(struct cache_index *, const char *upstream,
	    const char *repo, const char *digest, int64_t when);

/*
 * One transaction for a fetched manifest: store the manifest (if absent),
 * set its mtime to now, link it to (upstream, repo), when tag != NULL
 * point the tag at it with validated = now, and record its origin (NULL:
 * shared; else the name of the isolated upstream the bytes came from).
 */
int	cache_index_manifest_commit(struct cache_index *, const char *upstream,
	    const char *repo, const char *tag, const char *digest,
	    const char *media_type, const unsigned char *data, size_t len,
	    int64_t now, const char *origin);
/* One transaction for a verified blob: blob record, link and origin. */
int	cache_index_blob_commit(struct cache_index *, const char *upstream,
	    const char *repo, const char *digest,
	    const struct cache_blob_rec *, const char *origin);
/* The isolated upstream a digest's bytes came from: 0 (buf set), 1 none
 * (shared), -1 error. */
int	cache_index_origin_get(struct cache_index *, const char *digest,
	    char *buf, size_t len);

/* Batched last-access update (one transaction). */
int	cache_index_blob_touch_many(struct cache_index *, char *const *digests,
	    const int64_t *when, size_t n);
int	cache_index_tag_foreach(struct cache_index *,
	    int (*cb)(const char *upstream, const char *repo, const char *tag,
	    const struct cache_tag_rec *, void *), void *arg);

/*
 * Batched walks for gc: at most max records (0: all) from *pos, in one
 * read transaction; *pos is advanced for the next call.  Callbacks get
 * copies and may write to the index; nonzero from cb stops the walk.
 */
int	cache_index_tag_scan(struct cache_index *, struct cache_index_pos *,
	    size_t max, int (*cb)(const char *upstream, const char *repo,
	    const char *tag, const struct cache_tag_rec *, void *), void *arg);
/* when: the manifest's mtime, -1 if it has none (written before mtime). */
int	cache_index_manifest_scan(struct cache_index *,
	    struct cache_index_pos *, size_t max, int (*cb)(const char *digest,
	    size_t len, int64_t when, void *), void *arg);
int	cache_index_link_scan(struct cache_index *, struct cache_index_pos *,
	    size_t max, int (*cb)(const struct cache_link_ent *, void *),
	    void *arg);

/*
 * Batched removal, one write transaction each (keep n small: the writer
 * lock is held for it).  Each record is checked again inside the
 * transaction, so that what changed since the walk saw it is kept:
 *  - tags: only if digest and validated are still as seen;
 *  - manifests: only if their mtime is at or before cutoff; one with no
 *    mtime (written by an older version) is given mtime = now instead, so
 *    that it gets a whole grace period;
 *  - links: only if their digest is neither a blob nor a manifest.
 * *removed (and *bytes: manifest bytes) count what went.  0 or -1.
 */
int	cache_index_tag_del_many(struct cache_index *,
	    const struct cache_tag_ent *, size_t n, size_t *removed);
int	cache_index_manifest_del_many(struct cache_index *,
	    char *const *digests, size_t n, int64_t cutoff, int64_t now,
	    size_t *removed, uint64_t *bytes);
int	cache_index_link_del_orphans(struct cache_index *,
	    const struct cache_link_ent *, size_t n, size_t *removed);

/* Entries per database, pages in use, the in-memory totals. */
int	cache_index_stat(struct cache_index *, struct cache_index_stat *);

/* Small named records in the "meta" database (malloc'd copy). */
int	cache_index_meta_get(struct cache_index *, const char *key, char **val);
int	cache_index_meta_put(struct cache_index *, const char *key,
	    const char *val);

/* cache_admin.c: end the manager thread (cache_close() does). */
void	 cache_manager_stop(void);

/*
 * cache_budget.c (the manager calls these every tick).  Calls only the
 * index and cache_dir.c.
 */
/* [cache] max_size, for du in the daemon and the CLI alike. */
void	 cache_budget_set(uint64_t max_bytes);
/* Write the access times recorded since the last flush. */
void	 cache_budget_flush(void);
/* Over 95% of max_size (blobs and index): evict down to 90%. */
void	 cache_budget_keep(void);

/*
 * cache_dir.c: the directory's layout, and the index opened in it
 * (cache_open() opens it).  Calls nothing else in cache/.
 */
extern struct cache_index *cache_idx;
/* The root that cache_dir() returns (a copy; NULL forgets it). */
void	 cache_dir_set(const char *root);
/* mkdir(2) that accepts an existing directory; _p makes the parents. */
int	 cache_dir_mkdir(const char *path);
int	 cache_dir_mkdir_p(const char *path);
/* Path of a blob's file (malloc'd), NULL if digest is malformed. */
char	*cache_blob_path(const char *digest);
/* Make the blob's <algo>/<ab> directory. */
int	 cache_blob_dir_make(const char *digest);

#endif
