/*
 * cache_int.h — private to cache/: the LMDB index (cache_index.c, the only
 * file that includes lmdb.h), blob file paths (cache_store.c) and in-flight
 * fills (cache_fill.c).
 *
 * Index databases (one LMDB environment in <dir>/index, opened once per
 * process, after any fork; named databases opened once at start-up):
 *
 *   blob      digest string            -> struct cache_blob_rec
 *   manifest  digest string            -> media type NUL bytes
 *   tag       upstream NUL repo NUL tag -> struct cache_tag_rec
 *   link      upstream NUL repo NUL digest -> int64 time linked
 *   origin    digest string            -> upstream name (isolate = yes)
 *
 * Every call is its own short transaction; values are copied out before the
 * transaction ends.  Return codes: 0 found/done, 1 not found (getters),
 * -1 LMDB error (already logged with mdb_strerror).  Thread-safe (LMDB
 * handles its own locking; MDB_NOTLS is used so read transactions are not
 * tied to threads).
 */
#ifndef CACHE_CACHE_INT_H
#define CACHE_CACHE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/digest.h"

struct cache_index;

struct cache_blob_rec {
	uint64_t	size;
	int64_t		stored;		/* unix seconds */
	int64_t		last_access;	/* unix seconds */
	int64_t		pinned_until;	/* 0: not pinned, -1: forever */
};

struct cache_tag_rec {
	char		digest[DIGEST_STR_MAX];
	int64_t		validated;	/* unix seconds of last upstream check */
};

/* Open (creating) the environment in dir (which must exist). */
int	cache_index_open(const char *dir, uint64_t map_size,
	    struct cache_index **out);
void	cache_index_close(struct cache_index *);

int	cache_index_blob_get(struct cache_index *, const char *digest,
	    struct cache_blob_rec *out);
int	cache_index_blob_put(struct cache_index *, const char *digest,
	    const struct cache_blob_rec *);
int	cache_index_blob_del(struct cache_index *, const char *digest);
/* Update last_access only (cheap; may be batched by the caller). */
int	cache_index_blob_touch(struct cache_index *, const char *digest,
	    int64_t when);
/* Call cb for every blob record, in key order; cb returns nonzero to stop. */
int	cache_index_blob_foreach(struct cache_index *,
	    int (*cb)(const char *digest, const struct cache_blob_rec *,
	    void *), void *arg);

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
int	cache_index_tag_put(struct cache_index *, const char *upstream,
	    const char *repo, const char *tag, const struct cache_tag_rec *);
int	cache_index_tag_del(struct cache_index *, const char *upstream,
	    const char *repo, const char *tag);

int	cache_index_link_get(struct cache_index *, const char *upstream,
	    const char *repo, const char *digest);
int	cache_index_link_put(struct cache_index *, const char *upstream,
	    const char *repo, const char *digest, int64_t when);

/*
 * One transaction for a fetched manifest: store the manifest (if absent),
 * link it to (upstream, repo), when tag != NULL point the tag at it with
 * validated = now, and record its origin (NULL: shared; else the name of
 * the isolated upstream the bytes came from).
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

/* Small named records in the "meta" database (malloc'd copy). */
int	cache_index_meta_get(struct cache_index *, const char *key, char **val);
int	cache_index_meta_put(struct cache_index *, const char *key,
	    const char *val);

/* cache_store.c */
extern struct cache_index *cache_idx;
/* Path of a blob's file (malloc'd), NULL if digest is malformed. */
char	*cache_blob_path(const char *digest);
/* Make the blob's <algo>/<ab> directory. */
int	 cache_blob_dir_make(const char *digest);

#endif
