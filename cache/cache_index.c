/*
 * cache_index.c — the LMDB index of the cache: blob records, manifests,
 * tags and repository links (see cache_int.h for the databases).  This is
 * the only file in regmirror that includes lmdb.h.
 *
 * MDB_NOMETASYNC: one fsync per commit instead of two; after a crash at
 * most the last transaction is lost, and the index stays consistent
 * (start-up reconcile adopts a blob whose commit was lost).
 *
 * One environment per process, opened after any fork, with MDB_NOTLS so
 * that worker threads share it and read transactions are not tied to the
 * thread that began them.  The named databases are opened once, in one
 * write transaction, by cache_index_open().  Every other call is one short
 * transaction that copies what it read out of the map before it ends; no
 * transaction outlives the call that began it.
 *
 * On-disk value formats (all integers little-endian, whatever the host):
 *
 *   blob      u8 version (1) | u64 size | i64 stored | i64 last_access |
 *             i64 pinned_until                                  33 bytes
 *   tag       u8 version (1) | i64 validated | digest bytes (no NUL)
 *                                                   10..144 bytes
 *   link      u8 version (1) | i64 time linked                   9 bytes
 *   mtime     u8 version (1) | i64 time                          9 bytes
 *   manifest  media type | NUL | manifest bytes    (as in cache_int.h)
 *   origin    upstream name (no NUL): the cached bytes of that digest
 *             came from an upstream with isolate = yes
 *
 * A value of the wrong length or an unknown version is corrupt: the call
 * logs it and returns -1.  Keys are the digest string (blob, manifest,
 * mtime) or "upstream NUL repo NUL tag|digest" (tag, link), never
 * NUL-terminated.  mtime is new in this version: an older index gets the
 * database at open and has no record for its manifests, which gc then
 * stamps instead of removing (cache_index_manifest_del_many).
 *
 * Every walk goes through one cursor loop, cache_index_walk().
 */
#include "autoconf.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "cache/cache_int.h"
#include "common/log.h"
#include "common/xmalloc.h"

#define CACHE_INDEX_MAP_DEFAULT	((uint64_t)64 << 30)	/* sparse */
#define CACHE_INDEX_MAXDBS	12
/* Reader slots: one per concurrent read transaction, across threads. */
#define CACHE_INDEX_MAXREADERS	256

#define CACHE_INDEX_FMT_V1	1
#define CACHE_INDEX_BLOB_LEN	(1 + 4 * 8)
#define CACHE_INDEX_TAG_MIN	(1 + 8 + 1)
#define CACHE_INDEX_TAG_MAX	(1 + 8 + DIGEST_STR_MAX - 1)
#define CACHE_INDEX_TIME_LEN	(1 + 8)		/* link and mtime */
#define CACHE_INDEX_MEDIATYPE_MAX	255
#define CACHE_INDEX_TOTALS_LEN	(1 + 3 * 8)
#define CACHE_INDEX_LRU_TIME	8	/* big-endian prefix of an lru key */
#define CACHE_INDEX_EVICT_SCAN	4096	/* lru keys read per eviction batch */
#define CACHE_INDEX_EVICT_STALE	64	/* stale lru keys removed per batch */

struct cache_index {
	MDB_env		*ci_env;
	MDB_dbi		 ci_blob;
	MDB_dbi		 ci_manifest;
	MDB_dbi		 ci_mtime;
	MDB_dbi		 ci_tag;
	MDB_dbi		 ci_link;
	MDB_dbi		 ci_meta;	/* small named records (replication) */
	MDB_dbi		 ci_origin;	/* digest -> isolated upstream */
	MDB_dbi		 ci_lru;	/* last access . digest -> "" */
	MDB_dbi		 ci_pin;	/* digest of a pinned blob -> "" */
	MDB_dbi		 ci_totals;	/* "totals" -> the totals record */
	size_t		 ci_maxkey;	/* min(LMDB's max, our buffer) */
	size_t		 ci_mapsize;
	int		 ci_nosync;	/* cache_index_set_nosync() */
	/* The negative cap and its refusals, under ci_mtx. */
	pthread_mutex_t	 ci_mtx;
	uint64_t	 ci_max_negative;
	uint64_t	 ci_neg_refused;
};

/* The totals record, and what one write transaction changes in it. */
struct cache_index_totals {
	int64_t		 t_negatives;
	int64_t		 t_manifest_bytes;
	int64_t		 t_blob_bytes;
};

struct cache_index_delta {
	int64_t		 d_negatives;
	int64_t		 d_manifest_bytes;
	int64_t		 d_blob_bytes;
};

/* The one cursor loop's callback: raw key and value, valid during the
 * call only; 0 goes on, 1 stops, -1 is an error. */
typedef int (*cache_index_raw_f)(MDB_txn *, const MDB_val *key,
    const MDB_val *val, void *arg);

/* A composite key lives on the caller's stack: no static buffers. */
struct cache_index_key {
	char		 k_buf[CACHE_INDEX_KEYBUF];
	MDB_val		 k_val;
};

static int	cache_index_totals_init(struct cache_index *, const char *);

static void
cache_index_put64(unsigned char *p, uint64_t v)
{
	int	i;

	for (i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t
cache_index_get64(const unsigned char *p)
{
	uint64_t	v = 0;
	int		i;

	for (i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Two's complement back to int64_t without implementation-defined casts. */
static int64_t
cache_index_gets64(const unsigned char *p)
{
	uint64_t	u = cache_index_get64(p);

	if (u <= INT64_MAX)
		return (int64_t)u;
	return -(int64_t)(~u) - 1;
}

/* Log an LMDB failure; MDB_MAP_FULL gets a hint, since it needs an admin. */
static void
cache_index_warn(const struct cache_index *ci, const char *fn,
    const char *op, int rc)
{
	if (rc == MDB_MAP_FULL)
		log_warnx("%s: %s: index map full (%zu bytes), raise the "
		    "index map size: %s", fn, op, ci->ci_mapsize,
		    mdb_strerror(rc));
	else
		log_warnx("%s: %s: %s", fn, op, mdb_strerror(rc));
}

static int
cache_index_begin(struct cache_index *ci, const char *fn, unsigned int flags,
    MDB_txn **txn)
{
	int	rc;

	if ((rc = mdb_txn_begin(ci->ci_env, NULL, flags, txn)) != 0) {
		cache_index_warn(ci, fn, "mdb_txn_begin", rc);
		*txn = NULL;
		return -1;
	}
	return 0;
}

/* Commit; LMDB frees the transaction whether or not the commit worked. */
static int
cache_index_commit(struct cache_index *ci, const char *fn, MDB_txn *txn)
{
	int	rc;

	if ((rc = mdb_txn_commit(txn)) != 0) {
		cache_index_warn(ci, fn, "mdb_txn_commit", rc);
		return -1;
	}
	return 0;
}

/* Length of s if it is 1..max bytes, else log and return 0. */
static size_t
cache_index_len(const char *fn, const char *what, const char *s, size_t max)
{
	size_t	len;

	if (s == NULL || (len = strnlen(s, max + 1)) == 0) {
		log_warnx("%s: empty %s", fn, what);
		return 0;
	}
	if (len > max) {
		log_warnx("%s: %s longer than %zu bytes", fn, what, max);
		return 0;
	}
	return len;
}

static int
cache_index_key_digest(const char *fn, const char *digest,
    struct cache_index_key *k)
{
	size_t	len;

	if ((len = cache_index_len(fn, "digest", digest,
	    CACHE_INDEX_DIGEST_MAX)) == 0)
		return -1;
	memcpy(k->k_buf, digest, len);
	k->k_val.mv_data = k->k_buf;
	k->k_val.mv_size = len;
	return 0;
}

/*
 * "upstream NUL repo NUL last": the components hold no NUL, so the
 * encoding is unambiguous, and a prefix "upstream NUL repo NUL" ranges over
 * one repository.
 */
static int
cache_index_key_repo(const struct cache_index *ci, const char *fn,
    const char *upstream, const char *repo, const char *what,
    const char *last, size_t lastmax, struct cache_index_key *k)
{
	size_t	ulen, rlen, llen, total;

	if ((ulen = cache_index_len(fn, "upstream", upstream,
	    CACHE_INDEX_UPSTREAM_MAX)) == 0 ||
	    (rlen = cache_index_len(fn, "repository", repo,
	    CACHE_INDEX_REPO_MAX)) == 0 ||
	    (llen = cache_index_len(fn, what, last, lastmax)) == 0)
		return -1;
	total = ulen + 1 + rlen + 1 + llen;
	if (total > ci->ci_maxkey) {
		log_warnx("%s: key for %.64s/%.64s %s %.64s is %zu bytes, "
		    "over the index limit of %zu", fn, upstream, repo, what,
		    last, total, ci->ci_maxkey);
		return -1;
	}
	memcpy(k->k_buf, upstream, ulen);
	k->k_buf[ulen] = '\0';
	memcpy(k->k_buf + ulen + 1, repo, rlen);
	k->k_buf[ulen + 1 + rlen] = '\0';
	memcpy(k->k_buf + ulen + 1 + rlen + 1, last, llen);
	k->k_val.mv_data = k->k_buf;
	k->k_val.mv_size = total;
	return 0;
}

static void
cache_index_blob_encode(const struct cache_blob_rec *rec,
    unsigned char buf[CACHE_INDEX_BLOB_LEN])
{
	buf[0] = CACHE_INDEX_FMT_V1;
	cache_index_put64(buf + 1, rec->size);
	cache_index_put64(buf + 9, (uint64_t)rec->stored);
	cache_index_put64(buf + 17, (uint64_t)rec->last_access);
	cache_index_put64(buf + 25, (uint64_t)rec->pinned_until);
}

static int
cache_index_blob_decode(const char *fn, const MDB_val *v,
    struct cache_blob_rec *rec)
{
	const unsigned char	*p = v->mv_data;

	if (v->mv_size != CACHE_INDEX_BLOB_LEN || p[0] != CACHE_INDEX_FMT_V1) {
		log_warnx("%s: corrupt blob record (%zu bytes, version %u)",
		    fn, v->mv_size, v->mv_size > 0 ? (unsigned int)p[0] : 0u);
		return -1;
	}
	rec->size = cache_index_get64(p + 1);
	rec->stored = cache_index_gets64(p + 9);
	rec->last_access = cache_index_gets64(p + 17);
	rec->pinned_until = cache_index_gets64(p + 25);
	return 0;
}

/* Returns the encoded length, or 0 (logged) if the digest does not fit. */
static size_t
cache_index_tag_encode(const char *fn, const char *digest, int64_t validated,
    unsigned char buf[CACHE_INDEX_TAG_MAX])
{
	size_t	len;

	if ((len = cache_index_len(fn, "tag digest", digest,
	    CACHE_INDEX_DIGEST_MAX)) == 0)
		return 0;
	buf[0] = CACHE_INDEX_FMT_V1;
	cache_index_put64(buf + 1, (uint64_t)validated);
	memcpy(buf + 9, digest, len);
	return 9 + len;
}

static int
cache_index_tag_decode(const char *fn, const MDB_val *v,
    struct cache_tag_rec *rec)
{
	const unsigned char	*p = v->mv_data;
	size_t			 dlen;

	if (v->mv_size < CACHE_INDEX_TAG_MIN ||
	    v->mv_size > CACHE_INDEX_TAG_MAX || p[0] != CACHE_INDEX_FMT_V1 ||
	    memchr(p + 9, '\0', v->mv_size - 9) != NULL) {
		log_warnx("%s: corrupt tag record (%zu bytes, version %u)",
		    fn, v->mv_size, v->mv_size > 0 ? (unsigned int)p[0] : 0u);
		return -1;
	}
	dlen = v->mv_size - 9;
	rec->validated = cache_index_gets64(p + 1);
	memcpy(rec->digest, p + 9, dlen);
	rec->digest[dlen] = '\0';
	return 0;
}

/* A negative tag record, told from its bytes without decoding it. */
static int
cache_index_tag_val_negative(const MDB_val *v)
{
	const unsigned char	*p = v->mv_data;

	return v->mv_size == 9 + sizeof(CACHE_TAG_NEGATIVE) - 1 &&
	    p[0] == CACHE_INDEX_FMT_V1 &&
	    memcmp(p + 9, CACHE_TAG_NEGATIVE,
	    sizeof(CACHE_TAG_NEGATIVE) - 1) == 0;
}

/* Link and mtime records: a version byte and a time. */
static void
cache_index_time_encode(int64_t when, unsigned char buf[CACHE_INDEX_TIME_LEN])
{
	buf[0] = CACHE_INDEX_FMT_V1;
	cache_index_put64(buf + 1, (uint64_t)when);
}

static int
cache_index_time_decode(const char *fn, const MDB_val *v, int64_t *when)
{
	const unsigned char	*p = v->mv_data;

	if (v->mv_size != CACHE_INDEX_TIME_LEN || p[0] != CACHE_INDEX_FMT_V1) {
		log_warnx("%s: corrupt time record (%zu bytes, version %u)",
		    fn, v->mv_size, v->mv_size > 0 ? (unsigned int)p[0] : 0u);
		return -1;
	}
	*when = cache_index_gets64(p + 1);
	return 0;
}

/* The manifest bytes of a manifest record (after "media type NUL"). */
static size_t
cache_index_manifest_body(const MDB_val *v)
{
	const unsigned char	*nul;
	size_t			 scan;

	scan = v->mv_size < CACHE_INDEX_MEDIATYPE_MAX + 1 ?
	    v->mv_size : CACHE_INDEX_MEDIATYPE_MAX + 1;
	if ((nul = memchr(v->mv_data, '\0', scan)) == NULL)
		return 0;
	return v->mv_size - (size_t)(nul - (const unsigned char *)v->mv_data) -
	    1;
}

/*
 * Create and open the environment in dir with its limits, MDB_NOTLS
 * (worker threads share it) and MDB_NOMETASYNC.  An existing index
 * keeps its map size if that is larger.  On failure ci->ci_env may be
 * set: the caller closes it.
 */
static int
cache_index_env_open(struct cache_index *ci, const char *fn, const char *dir)
{
	MDB_envinfo	info;
	int		rc, dead, maxkey;

	if ((rc = mdb_env_create(&ci->ci_env)) != 0) {
		ci->ci_env = NULL;
		cache_index_warn(ci, fn, "mdb_env_create", rc);
		return -1;
	}
	if ((rc = mdb_env_set_maxdbs(ci->ci_env, CACHE_INDEX_MAXDBS)) != 0) {
		cache_index_warn(ci, fn, "mdb_env_set_maxdbs", rc);
		return -1;
	}
	if ((rc = mdb_env_set_maxreaders(ci->ci_env,
	    CACHE_INDEX_MAXREADERS)) != 0) {
		cache_index_warn(ci, fn, "mdb_env_set_maxreaders", rc);
		return -1;
	}
	if ((rc = mdb_env_set_mapsize(ci->ci_env, ci->ci_mapsize)) != 0) {
		cache_index_warn(ci, fn, "mdb_env_set_mapsize", rc);
		return -1;
	}
	if ((rc = mdb_env_open(ci->ci_env, dir, MDB_NOTLS | MDB_NOMETASYNC,
	    0600)) != 0) {
		log_warnx("%s: mdb_env_open %s: %s", fn, dir, mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_env_info(ci->ci_env, &info)) != 0) {
		cache_index_warn(ci, fn, "mdb_env_info", rc);
		return -1;
	}
	ci->ci_mapsize = info.me_mapsize;
	/* Free the reader slots of processes that died in a transaction. */
	if ((rc = mdb_reader_check(ci->ci_env, &dead)) != 0) {
		cache_index_warn(ci, fn, "mdb_reader_check", rc);
		return -1;
	}
	if (dead > 0)
		log_info("%s: %s: cleared %d stale reader slot(s)", fn, dir,
		    dead);
	maxkey = mdb_env_get_maxkeysize(ci->ci_env);
	ci->ci_maxkey = (size_t)maxkey < CACHE_INDEX_KEYBUF ?
	    (size_t)maxkey : CACHE_INDEX_KEYBUF;
	return 0;
}

/* The named databases, created if new, in one write transaction. */
static int
cache_index_dbs_open(struct cache_index *ci, const char *fn)
{
	static const char *const names[] = { "blob", "manifest", "tag",
	    "link", "meta", "origin", "mtime", "lru", "pin", "totals" };
	MDB_dbi		*dbis[] = { &ci->ci_blob, &ci->ci_manifest,
			    &ci->ci_tag, &ci->ci_link, &ci->ci_meta,
			    &ci->ci_origin, &ci->ci_mtime, &ci->ci_lru,
			    &ci->ci_pin, &ci->ci_totals };
	MDB_txn		*txn;
	size_t		 i;
	int		 rc;

	_Static_assert(sizeof(dbis) / sizeof(dbis[0]) ==
	    sizeof(names) / sizeof(names[0]), "a handle for every name");
	if (cache_index_begin(ci, fn, 0, &txn) == -1)
		return -1;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((rc = mdb_dbi_open(txn, names[i], MDB_CREATE,
		    dbis[i])) != 0) {
			log_warnx("%s: mdb_dbi_open %s: %s", fn, names[i],
			    mdb_strerror(rc));
			mdb_txn_abort(txn);
			return -1;
		}
	}
	return cache_index_commit(ci, fn, txn);
}

int
cache_index_open(const char *dir, uint64_t map_size, struct cache_index **out)
{
	struct cache_index	*ci;

	*out = NULL;
	if (map_size == 0)
		map_size = CACHE_INDEX_MAP_DEFAULT;
#if UINT64_MAX > SIZE_MAX
	if (map_size > SIZE_MAX) {
		log_warnx("%s: index map size %llu too large for this host",
		    __func__, (unsigned long long)map_size);
		return -1;
	}
#endif
	ci = xcalloc(1, sizeof(*ci));
	ci->ci_mapsize = (size_t)map_size;
	ci->ci_max_negative = UINT64_MAX;
	if (pthread_mutex_init(&ci->ci_mtx, NULL) != 0)
		fatalx("%s: pthread_mutex_init", __func__);
	if (cache_index_env_open(ci, __func__, dir) == -1 ||
	    cache_index_dbs_open(ci, __func__) == -1 ||
	    cache_index_totals_init(ci, __func__) == -1)
		goto fail;
	*out = ci;
	return 0;

fail:
	if (ci->ci_env != NULL)
		mdb_env_close(ci->ci_env);
	pthread_mutex_destroy(&ci->ci_mtx);
	free(ci);
	return -1;
}

/*
 * Bulk loading (the bench's index generator): commits stop syncing, and
 * cache_index_close() syncs once.  A crash meanwhile may lose the load,
 * never the index's consistency (LMDB's meta pages are written last).
 */
int
cache_index_set_nosync(struct cache_index *ci)
{
	int	rc;

	if ((rc = mdb_env_set_flags(ci->ci_env, MDB_NOSYNC, 1)) != 0) {
		cache_index_warn(ci, __func__, "mdb_env_set_flags", rc);
		return -1;
	}
	ci->ci_nosync = 1;
	return 0;
}

/* Every transaction must have ended: they never outlive a call. */
void
cache_index_close(struct cache_index *ci)
{
	int	rc;

	if (ci == NULL)
		return;
	if (ci->ci_nosync && (rc = mdb_env_sync(ci->ci_env, 1)) != 0)
		cache_index_warn(ci, __func__, "mdb_env_sync", rc);
	mdb_env_close(ci->ci_env);
	pthread_mutex_destroy(&ci->ci_mtx);
	free(ci);
}

void
cache_index_set_max_negative(struct cache_index *ci, uint64_t max)
{
	pthread_mutex_lock(&ci->ci_mtx);
	ci->ci_max_negative = max;
	pthread_mutex_unlock(&ci->ci_mtx);
}

/* The one key of the totals database. */
static MDB_val
cache_index_totals_key(void)
{
	MDB_val	k = { 6, (void *)(uintptr_t)"totals" };

	return k;
}

/* The totals record in txn: 0, 1 if there is none, -1 (logged). */
static int
cache_index_totals_get(struct cache_index *ci, const char *fn, MDB_txn *txn,
    struct cache_index_totals *t)
{
	MDB_val			 key = cache_index_totals_key();
	MDB_val			 val;
	const unsigned char	*p;
	int			 rc;

	memset(t, 0, sizeof(*t));
	if ((rc = mdb_get(txn, ci->ci_totals, &key, &val)) == MDB_NOTFOUND)
		return 1;
	if (rc != 0) {
		cache_index_warn(ci, fn, "mdb_get totals", rc);
		return -1;
	}
	p = val.mv_data;
	if (val.mv_size != CACHE_INDEX_TOTALS_LEN ||
	    p[0] != CACHE_INDEX_FMT_V1) {
		log_warnx("%s: corrupt totals record (%zu bytes)", fn,
		    val.mv_size);
		return -1;
	}
	t->t_negatives = cache_index_gets64(p + 1);
	t->t_manifest_bytes = cache_index_gets64(p + 9);
	t->t_blob_bytes = cache_index_gets64(p + 17);
	return 0;
}

static int
cache_index_totals_put(struct cache_index *ci, const char *fn, MDB_txn *txn,
    const struct cache_index_totals *t)
{
	unsigned char	buf[CACHE_INDEX_TOTALS_LEN];
	MDB_val		key = cache_index_totals_key();
	MDB_val		val = { sizeof(buf), buf };
	int		rc;

	buf[0] = CACHE_INDEX_FMT_V1;
	cache_index_put64(buf + 1, (uint64_t)t->t_negatives);
	cache_index_put64(buf + 9, (uint64_t)t->t_manifest_bytes);
	cache_index_put64(buf + 17, (uint64_t)t->t_blob_bytes);
	if ((rc = mdb_put(txn, ci->ci_totals, &key, &val, 0)) != 0) {
		cache_index_warn(ci, fn, "mdb_put totals", rc);
		return -1;
	}
	return 0;
}

/*
 * Commit a transaction that changed the totals by d: the totals record
 * changes in the same transaction, so it is exact for every process that
 * opens the index, whatever another one wrote.
 */
static int
cache_index_commit_counted(struct cache_index *ci, const char *fn,
    MDB_txn *txn, const struct cache_index_delta *d)
{
	struct cache_index_totals	t;

	if (d->d_negatives != 0 || d->d_manifest_bytes != 0 ||
	    d->d_blob_bytes != 0) {
		if (cache_index_totals_get(ci, fn, txn, &t) == -1)
			goto fail;
		t.t_negatives += d->d_negatives;
		t.t_manifest_bytes += d->d_manifest_bytes;
		t.t_blob_bytes += d->d_blob_bytes;
		if (cache_index_totals_put(ci, fn, txn, &t) == -1)
			goto fail;
	}
	return cache_index_commit(ci, fn, txn);
fail:
	mdb_txn_abort(txn);
	return -1;
}

/*
 * The one cursor loop.  Visit dbi's records in key order inside txn, from
 * pos (NULL or empty: the first key), at most max of them (0: all; a max
 * needs a pos), calling cb with the raw key and value.  The key after the
 * last one visited is copied into pos, so that the next call, in another
 * transaction, resumes there; at the end pos is marked done.  0 or -1.
 */
static int
cache_index_walk(struct cache_index *ci, const char *fn, MDB_txn *txn,
    MDB_dbi dbi, struct cache_index_pos *pos, size_t max,
    cache_index_raw_f cb, void *arg)
{
	MDB_cursor	*cur;
	MDB_val		 key, val;
	MDB_cursor_op	 op = MDB_FIRST;
	size_t		 n = 0;
	int		 rc, ret = -1;

	if (pos != NULL && pos->ip_done)
		return 0;
	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0) {
		cache_index_warn(ci, fn, "mdb_cursor_open", rc);
		return -1;
	}
	if (pos != NULL && pos->ip_len > 0) {
		key.mv_data = pos->ip_key;
		key.mv_size = pos->ip_len;
		op = MDB_SET_RANGE;
	}
	for (;; op = MDB_NEXT) {
		rc = mdb_cursor_get(cur, &key, &val, op);
		if (rc == MDB_NOTFOUND) {
			if (pos != NULL)
				pos->ip_done = 1;
			ret = 0;
			break;
		}
		if (rc != 0) {
			cache_index_warn(ci, fn, "mdb_cursor_get", rc);
			break;
		}
		if (max > 0 && n == max) {
			ret = 0;
			if (pos == NULL)
				break;
			if (key.mv_size > sizeof(pos->ip_key)) {
				log_warnx("%s: corrupt key (%zu bytes)", fn,
				    key.mv_size);
				ret = -1;
				break;
			}
			memcpy(pos->ip_key, key.mv_data, key.mv_size);
			pos->ip_len = key.mv_size;
			break;
		}
		n++;
		if ((rc = cb(txn, &key, &val, arg)) != 0) {
			if (rc > 0 && pos != NULL)
				pos->ip_done = 1;
			ret = rc > 0 ? 0 : -1;
			break;
		}
	}
	mdb_cursor_close(cur);
	return ret;
}

/* cache_index_walk() in a read transaction of its own. */
static int
cache_index_scan(struct cache_index *ci, const char *fn, MDB_dbi dbi,
    struct cache_index_pos *pos, size_t max, cache_index_raw_f cb,
    void *arg)
{
	MDB_txn	*txn;
	int	 rc;

	if (cache_index_begin(ci, fn, MDB_RDONLY, &txn) == -1)
		return -1;
	rc = cache_index_walk(ci, fn, txn, dbi, pos, max, cb, arg);
	mdb_txn_abort(txn);
	return rc;
}

/*
 * One read transaction around one mdb_get; decode() copies the value out
 * before the transaction is aborted.  0 found, 1 not found, -1 error.
 */
static int
cache_index_get(struct cache_index *ci, const char *fn, MDB_dbi dbi,
    MDB_val *key, int (*decode)(const char *, const MDB_val *, void *),
    void *arg)
{
	MDB_txn	*txn;
	MDB_val	 val;
	int	 rc, ret;

	if (cache_index_begin(ci, fn, MDB_RDONLY, &txn) == -1)
		return -1;
	rc = mdb_get(txn, dbi, key, &val);
	if (rc == 0)
		ret = decode(fn, &val, arg);
	else if (rc == MDB_NOTFOUND)
		ret = 1;
	else {
		cache_index_warn(ci, fn, "mdb_get", rc);
		ret = -1;
	}
	mdb_txn_abort(txn);
	return ret;
}

/* One write transaction around one mdb_put. */
static int
cache_index_put(struct cache_index *ci, const char *fn, MDB_dbi dbi,
    MDB_val *key, MDB_val *val)
{
	MDB_txn	*txn;
	int	 rc;

	if (cache_index_begin(ci, fn, 0, &txn) == -1)
		return -1;
	if ((rc = mdb_put(txn, dbi, key, val, 0)) != 0) {
		cache_index_warn(ci, fn, "mdb_put", rc);
		mdb_txn_abort(txn);
		return -1;
	}
	return cache_index_commit(ci, fn, txn);
}

static int
cache_index_blob_decode_cb(const char *fn, const MDB_val *v, void *arg)
{
	return cache_index_blob_decode(fn, v, arg);
}

static int
cache_index_tag_decode_cb(const char *fn, const MDB_val *v, void *arg)
{
	return cache_index_tag_decode(fn, v, arg);
}

static int
cache_index_link_decode_cb(const char *fn, const MDB_val *v, void *arg)
{
	int64_t	when;

	(void)arg;
	return cache_index_time_decode(fn, v, &when);
}

/*
 * The lru key of a blob: its last access (negative as 0), big-endian so
 * that keys sort by it, then its digest.
 */
static void
cache_index_lru_key(const MDB_val *digest, int64_t last_access,
    struct cache_index_key *k)
{
	uint64_t	t = last_access > 0 ? (uint64_t)last_access : 0;
	int		i;

	for (i = 0; i < CACHE_INDEX_LRU_TIME; i++)
		k->k_buf[i] = (char)(unsigned char)(t >> (56 - 8 * i));
	memcpy(k->k_buf + CACHE_INDEX_LRU_TIME, digest->mv_data,
	    digest->mv_size);
	k->k_val.mv_data = k->k_buf;
	k->k_val.mv_size = CACHE_INDEX_LRU_TIME + digest->mv_size;
}

/* Add (add != 0) or remove a blob's lru and pin entries in txn. */
static int
cache_index_blob_list(struct cache_index *ci, const char *fn, MDB_txn *txn,
    MDB_val *key, const struct cache_blob_rec *rec, int add)
{
	struct cache_index_key	lk;
	MDB_val			empty = { 0, NULL };
	int			rc = 0;

	cache_index_lru_key(key, rec->last_access, &lk);
	if (add) {
		if ((rc = mdb_put(txn, ci->ci_lru, &lk.k_val, &empty,
		    0)) == 0 && rec->pinned_until != 0)
			rc = mdb_put(txn, ci->ci_pin, key, &empty, 0);
	} else {
		if ((rc = mdb_del(txn, ci->ci_lru, &lk.k_val, NULL)) ==
		    MDB_NOTFOUND)
			rc = 0;
		if (rc == 0 && rec->pinned_until != 0 &&
		    (rc = mdb_del(txn, ci->ci_pin, key, NULL)) == MDB_NOTFOUND)
			rc = 0;
	}
	if (rc != 0) {
		cache_index_warn(ci, fn, add ? "mdb_put lru/pin" :
		    "mdb_del lru/pin", rc);
		return -1;
	}
	return 0;
}

/*
 * Every change to a blob record goes through here: replace it with rec,
 * or remove it (rec NULL), in txn, with its lru and pin entries; d gets
 * the change in blob bytes.  0, 1 (nothing to remove), -1.
 */
static int
cache_index_blob_set(struct cache_index *ci, const char *fn, MDB_txn *txn,
    MDB_val *key, const struct cache_blob_rec *rec,
    struct cache_index_delta *d)
{
	struct cache_blob_rec	old;
	unsigned char		buf[CACHE_INDEX_BLOB_LEN];
	MDB_val			val;
	int			rc;

	rc = mdb_get(txn, ci->ci_blob, key, &val);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		cache_index_warn(ci, fn, "mdb_get blob", rc);
		return -1;
	}
	if (rc == MDB_NOTFOUND && rec == NULL)
		return 1;
	/* A corrupt old record leaves a stale lru key: eviction drops it. */
	if (rc == 0 && cache_index_blob_decode(fn, &val, &old) == 0) {
		if (cache_index_blob_list(ci, fn, txn, key, &old, 0) == -1)
			return -1;
		d->d_blob_bytes -= (int64_t)old.size;
	}
	if (rec == NULL) {
		if ((rc = mdb_del(txn, ci->ci_blob, key, NULL)) != 0) {
			cache_index_warn(ci, fn, "mdb_del blob", rc);
			return -1;
		}
		return 0;
	}
	cache_index_blob_encode(rec, buf);
	val.mv_data = buf;
	val.mv_size = sizeof(buf);
	if ((rc = mdb_put(txn, ci->ci_blob, key, &val, 0)) != 0) {
		cache_index_warn(ci, fn, "mdb_put blob", rc);
		return -1;
	}
	if (cache_index_blob_list(ci, fn, txn, key, rec, 1) == -1)
		return -1;
	d->d_blob_bytes += (int64_t)rec->size;
	return 0;
}

/* cache_index_blob_set() in a write transaction of its own. */
static int
cache_index_blob_set1(struct cache_index *ci, const char *fn,
    const char *digest, const struct cache_blob_rec *rec)
{
	struct cache_index_key		k;
	struct cache_index_delta	d = { 0, 0, 0 };
	MDB_txn				*txn;
	int				 rc;

	if (cache_index_key_digest(fn, digest, &k) == -1 ||
	    cache_index_begin(ci, fn, 0, &txn) == -1)
		return -1;
	if ((rc = cache_index_blob_set(ci, fn, txn, &k.k_val, rec,
	    &d)) != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return cache_index_commit_counted(ci, fn, txn, &d);
}

int
cache_index_blob_get(struct cache_index *ci, const char *digest,
    struct cache_blob_rec *out)
{
	struct cache_index_key	k;

	if (cache_index_key_digest(__func__, digest, &k) == -1)
		return -1;
	return cache_index_get(ci, __func__, ci->ci_blob, &k.k_val,
	    cache_index_blob_decode_cb, out);
}

int
cache_index_blob_put(struct cache_index *ci, const char *digest,
    const struct cache_blob_rec *rec)
{
	return cache_index_blob_set1(ci, __func__, digest, rec);
}

/* 0 deleted, 1 there was no record, -1 error. */
int
cache_index_blob_del(struct cache_index *ci, const char *digest)
{
	return cache_index_blob_set1(ci, __func__, digest, NULL);
}

/*
 * Delete the record only if it is still *expect, checked inside the write
 * transaction (a fill may have published the blob again since the caller
 * read it).  0 deleted, 1 absent or changed, -1 error.
 */
int
cache_index_blob_del_if(struct cache_index *ci, const char *digest,
    const struct cache_blob_rec *expect)
{
	struct cache_index_key		k;
	struct cache_index_delta	d = { 0, 0, 0 };
	struct cache_blob_rec		rec;
	MDB_txn				*txn;
	MDB_val				 val;
	int				 rc;

	if (cache_index_key_digest(__func__, digest, &k) == -1 ||
	    cache_index_begin(ci, __func__, 0, &txn) == -1)
		return -1;
	rc = mdb_get(txn, ci->ci_blob, &k.k_val, &val);
	if (rc != 0 && rc != MDB_NOTFOUND)
		cache_index_warn(ci, __func__, "mdb_get", rc);
	if (rc != 0 || cache_index_blob_decode(__func__, &val, &rec) == -1 ||
	    rec.size != expect->size || rec.stored != expect->stored ||
	    rec.last_access != expect->last_access ||
	    rec.pinned_until != expect->pinned_until) {
		mdb_txn_abort(txn);
		return rc == 0 || rc == MDB_NOTFOUND ? 1 : -1;
	}
	if (cache_index_blob_set(ci, __func__, txn, &k.k_val, NULL,
	    &d) == -1) {
		mdb_txn_abort(txn);
		return -1;
	}
	return cache_index_commit_counted(ci, __func__, txn, &d);
}

/* Read-modify-write in one write transaction; 1 if there is no record. */
int
cache_index_blob_touch(struct cache_index *ci, const char *digest,
    int64_t when)
{
	struct cache_blob_rec	rec;
	char			*d = (char *)(uintptr_t)digest;
	int			 rc;

	if ((rc = cache_index_blob_get(ci, digest, &rec)) != 0)
		return rc;
	return cache_index_blob_touch_many(ci, &d, &when, 1);
}

/* A digest key as a NUL-terminated copy; -1 (logged) if corrupt. */
static int
cache_index_key_digest_copy(const char *fn, const MDB_val *key,
    char digest[DIGEST_STR_MAX])
{
	if (key->mv_size == 0 || key->mv_size > CACHE_INDEX_DIGEST_MAX ||
	    memchr(key->mv_data, '\0', key->mv_size) != NULL) {
		log_warnx("%s: corrupt digest key (%zu bytes)", fn,
		    key->mv_size);
		return -1;
	}
	memcpy(digest, key->mv_data, key->mv_size);
	digest[key->mv_size] = '\0';
	return 0;
}

struct cache_index_blob_walk {
	int	(*cb)(const char *, const struct cache_blob_rec *, void *);
	void	 *arg;
	struct cache_index	*ci;	/* the pin walk's */
};

static int
cache_index_blob_walk_cb(MDB_txn *txn, const MDB_val *key,
    const MDB_val *val, void *arg)
{
	struct cache_index_blob_walk	*w = arg;
	struct cache_blob_rec		 rec;
	char				 digest[DIGEST_STR_MAX];

	(void)txn;
	if (cache_index_key_digest_copy("cache_index_blob_foreach", key,
	    digest) == -1 ||
	    cache_index_blob_decode("cache_index_blob_foreach", val,
	    &rec) == -1)
		return -1;
	return w->cb(digest, &rec, w->arg) != 0;
}

/*
 * Walk the blob database in key order inside one read transaction; cb gets
 * copies (a NUL-terminated digest and a decoded record) and may call any
 * other cache_index function, writes included: the walk holds only a read
 * transaction, so it sees the snapshot it started from.  A long walk keeps
 * that snapshot's pages from being reused, so walk in batches where that
 * matters.  0 when done or stopped by cb, -1 on error.
 */
int
cache_index_blob_foreach(struct cache_index *ci,
    int (*cb)(const char *, const struct cache_blob_rec *, void *), void *arg)
{
	struct cache_index_blob_walk	w = { cb, arg, ci };

	return cache_index_scan(ci, __func__, ci->ci_blob, NULL, 0,
	    cache_index_blob_walk_cb, &w);
}

/* The same in batches: at most max records from pos, one transaction. */
int
cache_index_blob_scan(struct cache_index *ci, struct cache_index_pos *pos,
    size_t max, int (*cb)(const char *, const struct cache_blob_rec *,
    void *), void *arg)
{
	struct cache_index_blob_walk	w = { cb, arg, ci };

	return cache_index_scan(ci, __func__, ci->ci_blob, pos, max,
	    cache_index_blob_walk_cb, &w);
}

struct cache_index_blob_prefix {
	struct cache_index_blob_walk	 w;
	const char			*prefix;
	size_t				 len;
};

static int
cache_index_blob_prefix_cb(MDB_txn *txn, const MDB_val *key,
    const MDB_val *val, void *arg)
{
	struct cache_index_blob_prefix	*p = arg;

	if (key->mv_size < p->len || memcmp(key->mv_data, p->prefix,
	    p->len) != 0)
		return 1;
	return cache_index_blob_walk_cb(txn, key, val, &p->w);
}

/*
 * cache_index_blob_foreach() over the digests that start with prefix
 * ("sha256:ab": the blobs of one directory), in one read transaction.
 */
int
cache_index_blob_foreach_prefix(struct cache_index *ci, const char *prefix,
    int (*cb)(const char *, const struct cache_blob_rec *, void *), void *arg)
{
	struct cache_index_blob_prefix	p = { { cb, arg, ci }, prefix,
					    strlen(prefix) };
	struct cache_index_pos		pos;

	if (p.len == 0 || p.len > sizeof(pos.ip_key))
		return -1;
	memset(&pos, 0, sizeof(pos));
	memcpy(pos.ip_key, prefix, p.len);
	pos.ip_len = p.len;
	return cache_index_scan(ci, __func__, ci->ci_blob, &pos, 0,
	    cache_index_blob_prefix_cb, &p);
}

/*
 * One lru key's blob, read in txn: 0 a candidate (out filled), 1 pinned
 * at now, 2 a stale key (no record, a corrupt one, or touched since: the
 * record's key is another), -1 error.
 */
static int
cache_index_lru_pick(struct cache_index *ci, const char *fn, MDB_txn *txn,
    const MDB_val *key, int64_t now, struct cache_evicted *out)
{
	struct cache_blob_rec	 rec;
	const unsigned char	*p = key->mv_data;
	MDB_val			 dk, val;
	uint64_t		 t = 0;
	int			 i, rc;

	if (key->mv_size <= CACHE_INDEX_LRU_TIME)
		return 2;
	for (i = 0; i < CACHE_INDEX_LRU_TIME; i++)
		t = t << 8 | p[i];
	dk.mv_data = (void *)(uintptr_t)(p + CACHE_INDEX_LRU_TIME);
	dk.mv_size = key->mv_size - CACHE_INDEX_LRU_TIME;
	if (cache_index_key_digest_copy(fn, &dk, out->digest) == -1)
		return 2;
	rc = mdb_get(txn, ci->ci_blob, &dk, &val);
	if (rc == MDB_NOTFOUND)
		return 2;
	if (rc != 0) {
		cache_index_warn(ci, fn, "mdb_get blob", rc);
		return -1;
	}
	if (cache_index_blob_decode(fn, &val, &rec) == -1 ||
	    (rec.last_access > 0 ? (uint64_t)rec.last_access : 0) != t)
		return 2;
	if (rec.pinned_until == -1 || rec.pinned_until > now)
		return 1;
	out->size = rec.size;
	out->last_access = rec.last_access;
	return 0;
}

/* A stale lru key met by the read walk, removed by the write. */
struct cache_index_lru_stale {
	char		ls_key[CACHE_INDEX_KEYBUF];
	size_t		ls_len;
};

struct cache_index_evict {
	struct cache_evicted		*out;
	size_t				 max, n;
	uint64_t			 want, freed;
	int64_t				 now;
	struct cache_index_lru_stale	 stale[CACHE_INDEX_EVICT_STALE];
	size_t				 nstale;
};

/*
 * The read half: walk the lru order from pos, at most
 * CACHE_INDEX_EVICT_SCAN keys, choosing blobs not pinned at now until max
 * of them or want bytes; pos moves to the key after the last one read.
 */
static int
cache_index_evict_choose(struct cache_index *ci, const char *fn,
    struct cache_index_pos *pos, struct cache_index_evict *e)
{
	MDB_cursor	*cur;
	MDB_txn		*txn;
	MDB_val		 key, val;
	MDB_cursor_op	 op = pos->ip_len > 0 ? MDB_SET_RANGE : MDB_FIRST;
	size_t		 scanned = 0;
	int		 rc;

	if (cache_index_begin(ci, fn, MDB_RDONLY, &txn) == -1)
		return -1;
	if ((rc = mdb_cursor_open(txn, ci->ci_lru, &cur)) != 0) {
		cache_index_warn(ci, fn, "mdb_cursor_open", rc);
		mdb_txn_abort(txn);
		return -1;
	}
	key.mv_data = pos->ip_key;
	key.mv_size = pos->ip_len;
	for (;; op = MDB_NEXT) {
		if ((rc = mdb_cursor_get(cur, &key, &val, op)) != 0)
			break;
		if (key.mv_size > sizeof(pos->ip_key)) {
			rc = MDB_CORRUPTED;
			break;
		}
		if (scanned++ == CACHE_INDEX_EVICT_SCAN || e->n == e->max ||
		    e->freed >= e->want) {
			memcpy(pos->ip_key, key.mv_data, key.mv_size);
			pos->ip_len = key.mv_size;
			break;		/* the next batch starts here */
		}
		rc = cache_index_lru_pick(ci, fn, txn, &key, e->now,
		    &e->out[e->n]);
		if (rc == -1)
			break;
		if (rc == 0)
			e->freed += e->out[e->n++].size;
		else if (rc == 2 && e->nstale < CACHE_INDEX_EVICT_STALE) {
			memcpy(e->stale[e->nstale].ls_key, key.mv_data,
			    key.mv_size);
			e->stale[e->nstale++].ls_len = key.mv_size;
		}
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc == MDB_NOTFOUND) {
		pos->ip_done = 1;
		return 0;
	}
	if (rc != 0) {
		cache_index_warn(ci, fn, "lru walk", rc);
		return -1;
	}
	return 0;
}

/*
 * The write half: each chosen record checked again (a blob touched or
 * pinned since is kept) and removed; the stale keys still stale go.
 */
static int
cache_index_evict_remove(struct cache_index *ci, const char *fn,
    struct cache_index_evict *e)
{
	struct cache_index_delta	 d = { 0, 0, 0 };
	struct cache_index_key		 k, lkey;
	struct cache_evicted		 check;
	MDB_txn				*txn;
	MDB_val				 lk;
	size_t				 i, kept = 0;
	int				 rc;

	if (cache_index_begin(ci, fn, 0, &txn) == -1)
		return -1;
	for (i = 0; i < e->n; i++) {
		if (cache_index_key_digest(fn, e->out[i].digest, &k) == -1)
			continue;
		cache_index_lru_key(&k.k_val, e->out[i].last_access, &lkey);
		if ((rc = cache_index_lru_pick(ci, fn, txn, &lkey.k_val,
		    e->now, &check)) == -1)
			goto fail;
		if (rc != 0)
			continue;	/* touched, pinned or gone since */
		if (cache_index_blob_set(ci, fn, txn, &k.k_val, NULL,
		    &d) == -1)
			goto fail;
		e->out[kept] = e->out[i];
		e->out[kept++].size = check.size;
	}
	e->n = kept;
	for (i = 0; i < e->nstale; i++) {
		lk.mv_data = e->stale[i].ls_key;
		lk.mv_size = e->stale[i].ls_len;
		if ((rc = cache_index_lru_pick(ci, fn, txn, &lk, e->now,
		    &check)) == -1)
			goto fail;
		if (rc == 2 && (rc = mdb_del(txn, ci->ci_lru, &lk,
		    NULL)) != 0 && rc != MDB_NOTFOUND) {
			cache_index_warn(ci, fn, "mdb_del lru", rc);
			goto fail;
		}
	}
	return cache_index_commit_counted(ci, fn, txn, &d);
fail:
	mdb_txn_abort(txn);
	return -1;
}

/*
 * One batch of least recently used eviction: read the lru order from pos
 * (at most CACHE_INDEX_EVICT_SCAN keys, in a read transaction, so that
 * pinned blobs at the front cost no writer any wait), then remove what
 * was chosen in one write transaction.  The records removed are
 * out[0 .. *n); the files are the caller's to unlink.  pos->ip_done once
 * the order is read to its end.  0 or -1.
 */
int
cache_index_blob_evict(struct cache_index *ci, int64_t now, uint64_t want,
    struct cache_evicted *out, size_t max, struct cache_index_pos *pos,
    size_t *n)
{
	struct cache_index_evict	*e;
	int				 rc;

	*n = 0;
	e = xcalloc(1, sizeof(*e));
	e->out = out;
	e->max = max;
	e->want = want;
	e->now = now;
	rc = cache_index_evict_choose(ci, __func__, pos, e);
	if (rc == 0 && (e->n > 0 || e->nstale > 0))
		rc = cache_index_evict_remove(ci, __func__, e);
	if (rc == 0)
		*n = e->n;
	free(e);
	return rc;
}

/* Pinned blobs: the pin database's keys, each checked against its record. */
static int
cache_index_pin_walk_cb(MDB_txn *txn, const MDB_val *key, const MDB_val *val,
    void *arg)
{
	struct cache_index_blob_walk	*w = arg;
	struct cache_blob_rec		 rec;
	char				 digest[DIGEST_STR_MAX];
	MDB_val				 dk = *key, bv;
	struct cache_index		*ci = w->ci;

	(void)val;
	if (cache_index_key_digest_copy("cache_index_pin_foreach", key,
	    digest) == -1 || mdb_get(txn, ci->ci_blob, &dk, &bv) != 0 ||
	    cache_index_blob_decode("cache_index_pin_foreach", &bv,
	    &rec) == -1 || rec.pinned_until == 0)
		return 0;	/* stale: the record's next change drops it */
	return w->cb(digest, &rec, w->arg) != 0;
}

int
cache_index_pin_foreach(struct cache_index *ci,
    int (*cb)(const char *, const struct cache_blob_rec *, void *),
    void *arg)
{
	struct cache_index_blob_walk	w = { cb, arg, ci };

	return cache_index_scan(ci, __func__, ci->ci_pin, NULL, 0,
	    cache_index_pin_walk_cb, &w);
}

/* Media type and bytes copied out of the map into malloc'd buffers. */
struct cache_index_manifest_out {
	char		*mo_type;
	unsigned char	*mo_data;
	size_t		 mo_len;
};

static int
cache_index_manifest_decode_cb(const char *fn, const MDB_val *v, void *arg)
{
	struct cache_index_manifest_out	*mo = arg;
	const unsigned char		*p = v->mv_data, *nul;
	size_t				 tlen, scan;

	scan = v->mv_size < CACHE_INDEX_MEDIATYPE_MAX + 1 ?
	    v->mv_size : CACHE_INDEX_MEDIATYPE_MAX + 1;
	if ((nul = memchr(p, '\0', scan)) == NULL) {
		log_warnx("%s: corrupt manifest record (%zu bytes, no media "
		    "type)", fn, v->mv_size);
		return -1;
	}
	tlen = (size_t)(nul - p);
	mo->mo_len = v->mv_size - tlen - 1;
	mo->mo_type = xmalloc(tlen + 1);
	memcpy(mo->mo_type, p, tlen + 1);
	mo->mo_data = xmalloc(mo->mo_len);
	if (mo->mo_len > 0)
		memcpy(mo->mo_data, nul + 1, mo->mo_len);
	return 0;
}

int
cache_index_manifest_get(struct cache_index *ci, const char *digest,
    char **media_type, unsigned char **data, size_t *len)
{
	struct cache_index_key			k;
	struct cache_index_manifest_out		mo = { NULL, NULL, 0 };
	int					rc;

	if (cache_index_key_digest(__func__, digest, &k) == -1)
		return -1;
	rc = cache_index_get(ci, __func__, ci->ci_manifest, &k.k_val,
	    cache_index_manifest_decode_cb, &mo);
	if (rc != 0)
		return rc;
	*media_type = mo.mo_type;
	*data = mo.mo_data;
	*len = mo.mo_len;
	return 0;
}

/*
 * Put "media type NUL bytes" straight into the map with MDB_RESERVE (a
 * manifest may be MiBs: no staging copy).  With MDB_NOOVERWRITE an existing
 * record is kept.  d gets the manifest bytes stored less those replaced.
 * The caller owns txn.
 */
static int
cache_index_manifest_write(struct cache_index *ci, const char *fn,
    MDB_txn *txn, MDB_val *key, const char *media_type, size_t tlen,
    const unsigned char *data, size_t len, unsigned int flags,
    struct cache_index_delta *d)
{
	MDB_val	val, old;
	size_t	oldlen = 0;
	int	rc;

	if (!(flags & MDB_NOOVERWRITE)) {
		rc = mdb_get(txn, ci->ci_manifest, key, &old);
		if (rc == 0)
			oldlen = cache_index_manifest_body(&old);
		else if (rc != MDB_NOTFOUND) {
			cache_index_warn(ci, fn, "mdb_get manifest", rc);
			return -1;
		}
	}
	val.mv_size = tlen + 1 + len;
	val.mv_data = NULL;
	rc = mdb_put(txn, ci->ci_manifest, key, &val, flags | MDB_RESERVE);
	if (rc == MDB_KEYEXIST && (flags & MDB_NOOVERWRITE))
		return 0;
	if (rc != 0) {
		cache_index_warn(ci, fn, "mdb_put manifest", rc);
		return -1;
	}
	memcpy(val.mv_data, media_type, tlen);
	((unsigned char *)val.mv_data)[tlen] = '\0';
	if (len > 0)
		memcpy((unsigned char *)val.mv_data + tlen + 1, data, len);
	d->d_manifest_bytes += (int64_t)len - (int64_t)oldlen;
	return 0;
}

/* Set a manifest's mtime in txn: its gc grace starts again. */
static int
cache_index_mtime_put(struct cache_index *ci, const char *fn, MDB_txn *txn,
    MDB_val *key, int64_t when)
{
	unsigned char	buf[CACHE_INDEX_TIME_LEN];
	MDB_val		val = { sizeof(buf), buf };
	int		rc;

	cache_index_time_encode(when, buf);
	if ((rc = mdb_put(txn, ci->ci_mtime, key, &val, 0)) != 0) {
		cache_index_warn(ci, fn, "mdb_put mtime", rc);
		return -1;
	}
	return 0;
}

/* The same, only if the manifest is in the index. */
static int
cache_index_mtime_stamp(struct cache_index *ci, const char *fn,
    MDB_txn *txn, MDB_val *key, int64_t when)
{
	MDB_val	val;
	int	rc;

	rc = mdb_get(txn, ci->ci_manifest, key, &val);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0) {
		cache_index_warn(ci, fn, "mdb_get manifest", rc);
		return -1;
	}
	return cache_index_mtime_put(ci, fn, txn, key, when);
}

/* Remove a manifest and its mtime in txn; *body: its bytes.  0, 1, -1. */
static int
cache_index_manifest_remove(struct cache_index *ci, const char *fn,
    MDB_txn *txn, MDB_val *key, struct cache_index_delta *d, size_t *body)
{
	MDB_val	old;
	int	rc;

	rc = mdb_get(txn, ci->ci_manifest, key, &old);
	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc != 0) {
		cache_index_warn(ci, fn, "mdb_get manifest", rc);
		return -1;
	}
	*body = cache_index_manifest_body(&old);
	if ((rc = mdb_del(txn, ci->ci_manifest, key, NULL)) != 0) {
		cache_index_warn(ci, fn, "mdb_del manifest", rc);
		return -1;
	}
	rc = mdb_del(txn, ci->ci_mtime, key, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		cache_index_warn(ci, fn, "mdb_del mtime", rc);
		return -1;
	}
	d->d_manifest_bytes -= (int64_t)*body;
	return 0;
}

/*
 * At the cap on negative records, counting what txn changed so far (d)?
 * Counts the refusal if so.  1 full, 0 not, -1 error.
 */
static int
cache_index_negative_full(struct cache_index *ci, const char *fn,
    MDB_txn *txn, const struct cache_index_delta *d)
{
	struct cache_index_totals	t;
	int64_t				neg;
	int				full;

	if (cache_index_totals_get(ci, fn, txn, &t) == -1)
		return -1;
	neg = t.t_negatives + d->d_negatives;
	pthread_mutex_lock(&ci->ci_mtx);
	full = neg >= 0 && (uint64_t)neg >= ci->ci_max_negative;
	if (full)
		ci->ci_neg_refused++;
	pthread_mutex_unlock(&ci->ci_mtx);
	return full;
}

/*
 * Write the tag record val under key in txn; d gets the change in
 * negative records.  A negative record that would be a new one at the
 * cap is not written, and the tag's positive record goes instead: 1.
 * The cap is read inside the write transaction, so no other writer, of
 * this process or another, can pass it at the same time.
 */
static int
cache_index_tag_write(struct cache_index *ci, const char *fn, MDB_txn *txn,
    MDB_val *key, MDB_val *val, struct cache_index_delta *d)
{
	MDB_val	old;
	int	rc, exists = 0, was_neg = 0, neg;

	neg = cache_index_tag_val_negative(val);
	rc = mdb_get(txn, ci->ci_tag, key, &old);
	if (rc == 0) {
		exists = 1;
		was_neg = cache_index_tag_val_negative(&old);
	} else if (rc != MDB_NOTFOUND) {
		cache_index_warn(ci, fn, "mdb_get tag", rc);
		return -1;
	}
	if (neg && !was_neg && (rc = cache_index_negative_full(ci, fn, txn,
	    d)) != 0) {
		if (rc == -1)
			return -1;
		if (exists && (rc = mdb_del(txn, ci->ci_tag, key, NULL)) != 0) {
			cache_index_warn(ci, fn, "mdb_del tag", rc);
			return -1;
		}
		return 1;
	}
	if ((rc = mdb_put(txn, ci->ci_tag, key, val, 0)) != 0) {
		cache_index_warn(ci, fn, "mdb_put tag", rc);
		return -1;
	}
	d->d_negatives += neg - was_neg;
	return 0;
}

/* Media type may be empty; returns its length or SIZE_MAX (logged). */
static size_t
cache_index_mediatype_len(const char *fn, const char *media_type,
    const unsigned char *data, size_t len)
{
	size_t	tlen;

	if (media_type == NULL || (data == NULL && len > 0)) {
		log_warnx("%s: no media type or data", fn);
		return SIZE_MAX;
	}
	tlen = strnlen(media_type, CACHE_INDEX_MEDIATYPE_MAX + 1);
	if (tlen > CACHE_INDEX_MEDIATYPE_MAX) {
		log_warnx("%s: media type longer than %d bytes", fn,
		    CACHE_INDEX_MEDIATYPE_MAX);
		return SIZE_MAX;
	}
	if (len > UINT32_MAX - tlen - 1) {
		log_warnx("%s: manifest of %zu bytes too large", fn, len);
		return SIZE_MAX;
	}
	return tlen;
}

int
cache_index_manifest_put(struct cache_index *ci, const char *digest,
    const char *media_type, const unsigned char *data, size_t len)
{
	struct cache_index_key		k;
	struct cache_index_delta	d = { 0, 0, 0 };
	MDB_txn				*txn;
	size_t				 tlen;

	if (cache_index_key_digest(__func__, digest, &k) == -1 ||
	    (tlen = cache_index_mediatype_len(__func__, media_type, data,
	    len)) == SIZE_MAX)
		return -1;
	if (cache_index_begin(ci, __func__, 0, &txn) == -1)
		return -1;
	if (cache_index_manifest_write(ci, __func__, txn, &k.k_val,
	    media_type, tlen, data, len, 0, &d) == -1) {
		mdb_txn_abort(txn);
		return -1;
	}
	return cache_index_commit_counted(ci, __func__, txn, &d);
}

/* 0 deleted, 1 there was no record, -1 error. */
static int
cache_index_exists_cb(const char *fn, const MDB_val *v, void *arg)
{
	(void)fn;
	(void)v;
	(void)arg;
	return 0;
}

int
cache_index_manifest_exists(struct cache_index *ci, const char *digest)
{
	struct cache_index_key	k;

	if (cache_index_key_digest(__func__, digest, &k) == -1)
		return -1;
	return cache_index_get(ci, __func__, ci->ci_manifest, &k.k_val,
	    cache_index_exists_cb, NULL);
}

int
cache_index_manifest_del(struct cache_index *ci, const char *digest)
{
	struct cache_index_key		k;
	struct cache_index_delta	d = { 0, 0, 0 };
	MDB_txn				*txn;
	size_t				 body;
	int				 rc;

	if (cache_index_key_digest(__func__, digest, &k) == -1)
		return -1;
	if (cache_index_begin(ci, __func__, 0, &txn) == -1)
		return -1;
	if ((rc = cache_index_manifest_remove(ci, __func__, txn, &k.k_val, &d,
	    &body)) != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return cache_index_commit_counted(ci, __func__, txn, &d);
}

int
cache_index_tag_get(struct cache_index *ci, const char *upstream,
    const char *repo, const char *tag, struct cache_tag_rec *out)
{
	struct cache_index_key	k;

	if (cache_index_key_repo(ci, __func__, upstream, repo, "tag", tag,
	    CACHE_INDEX_TAGNAME_MAX, &k) == -1)
		return -1;
	return cache_index_get(ci, __func__, ci->ci_tag, &k.k_val,
	    cache_index_tag_decode_cb, out);
}

/* 0 stored, 1 refused at the negative cap (see cache_int.h), -1. */
int
cache_index_tag_put(struct cache_index *ci, const char *upstream,
    const char *repo, const char *tag, const struct cache_tag_rec *rec)
{
	struct cache_index_key		k, mk;
	struct cache_index_delta	d = { 0, 0, 0 };
	unsigned char			buf[CACHE_INDEX_TAG_MAX];
	MDB_val				val;
	MDB_txn				*txn;
	int				rc, stamp;

	if (cache_index_key_repo(ci, __func__, upstream, repo, "tag", tag,
	    CACHE_INDEX_TAGNAME_MAX, &k) == -1)
		return -1;
	if ((val.mv_size = cache_index_tag_encode(__func__, rec->digest,
	    rec->validated, buf)) == 0)
		return -1;
	val.mv_data = buf;
	stamp = strcmp(rec->digest, CACHE_TAG_NEGATIVE) != 0 &&
	    cache_index_key_digest(__func__, rec->digest, &mk) == 0;

	if (cache_index_begin(ci, __func__, 0, &txn) == -1)
		return -1;
	if ((rc = cache_index_tag_write(ci, __func__, txn, &k.k_val, &val,
	    &d)) == -1 || (stamp && cache_index_mtime_stamp(ci, __func__, txn,
	    &mk.k_val, rec->validated) == -1)) {
		mdb_txn_abort(txn);
		return -1;
	}
	if (cache_index_commit_counted(ci, __func__, txn, &d) == -1)
		return -1;
	return rc;
}

/* 0 deleted, 1 there was no record, -1 error. */
int
cache_index_tag_del(struct cache_index *ci, const char *upstream,
    const char *repo, const char *tag)
{
	struct cache_index_key		k;
	struct cache_index_delta	d = { 0, 0, 0 };
	MDB_txn				*txn;
	MDB_val				 old;
	int				 rc;

	if (cache_index_key_repo(ci, __func__, upstream, repo, "tag", tag,
	    CACHE_INDEX_TAGNAME_MAX, &k) == -1)
		return -1;
	if (cache_index_begin(ci, __func__, 0, &txn) == -1)
		return -1;
	rc = mdb_get(txn, ci->ci_tag, &k.k_val, &old);
	if (rc == MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return 1;
	}
	if (rc == 0) {
		d.d_negatives = -cache_index_tag_val_negative(&old);
		rc = mdb_del(txn, ci->ci_tag, &k.k_val, NULL);
	}
	if (rc != 0) {
		cache_index_warn(ci, __func__, "mdb_get/mdb_del tag", rc);
		mdb_txn_abort(txn);
		return -1;
	}
	return cache_index_commit_counted(ci, __func__, txn, &d);
}

int
cache_index_link_get(struct cache_index *ci, const char *upstream,
    const char *repo, const char *digest)
{
	struct cache_index_key	k;

	if (cache_index_key_repo(ci, __func__, upstream, repo, "digest",
	    digest, CACHE_INDEX_DIGEST_MAX, &k) == -1)
		return -1;
	return cache_index_get(ci, __func__, ci->ci_link, &k.k_val,
	    cache_index_link_decode_cb, NULL);
}

int
cache_index_link_put(struct cache_index *ci, const char *upstream,
    const char *repo, const char *digest, int64_t when)
{
	struct cache_index_key	k;
	unsigned char		buf[CACHE_INDEX_TIME_LEN];
	MDB_val			val = { sizeof(buf), buf };

	if (cache_index_key_repo(ci, __func__, upstream, repo, "digest",
	    digest, CACHE_INDEX_DIGEST_MAX, &k) == -1)
		return -1;
	cache_index_time_encode(when, buf);
	return cache_index_put(ci, __func__, ci->ci_link, &k.k_val, &val);
}

/*
 * Inside a write transaction: record that digest's bytes came from the
 * isolated upstream origin, or (origin NULL) that they are shared now.
 */
static int
cache_index_origin_write(struct cache_index *ci, const char *fn, MDB_txn *txn,
    MDB_val *dkey, const char *origin)
{
	MDB_val	v;
	int	rc;

	if (origin == NULL) {
		if ((rc = mdb_del(txn, ci->ci_origin, dkey, NULL)) != 0 &&
		    rc != MDB_NOTFOUND) {
			cache_index_warn(ci, fn, "mdb_del origin", rc);
			return -1;
		}
		return 0;
	}
	v.mv_data = (void *)(uintptr_t)origin;
	v.mv_size = strnlen(origin, CACHE_INDEX_UPSTREAM_MAX + 1);
	if (v.mv_size == 0 || v.mv_size > CACHE_INDEX_UPSTREAM_MAX) {
		log_warnx("%s: bad origin upstream name", fn);
		return -1;
	}
	if ((rc = mdb_put(txn, ci->ci_origin, dkey, &v, 0)) != 0) {
		cache_index_warn(ci, fn, "mdb_put origin", rc);
		return -1;
	}
	return 0;
}

struct cache_index_origin_out {
	char	*buf;
	size_t	 len;
};

static int
cache_index_origin_decode_cb(const char *fn, const MDB_val *v, void *arg)
{
	struct cache_index_origin_out	*o = arg;

	if (v->mv_size == 0 || v->mv_size >= o->len) {
		log_warnx("%s: corrupt origin record", fn);
		return -1;
	}
	memcpy(o->buf, v->mv_data, v->mv_size);
	o->buf[v->mv_size] = '\0';
	return 0;
}

int
cache_index_origin_get(struct cache_index *ci, const char *digest, char *buf,
    size_t len)
{
	struct cache_index_key		k;
	struct cache_index_origin_out	o = { buf, len };

	if (cache_index_key_digest(__func__, digest, &k) == -1)
		return -1;
	return cache_index_get(ci, __func__, ci->ci_origin, &k.k_val,
	    cache_index_origin_decode_cb, &o);
}

/*
 * Keys and values are all built before the write transaction begins, so
 * that a bad argument never costs a transaction and the writer lock is
 * held only for the puts.
 */
int
cache_index_manifest_commit(struct cache_index *ci, const char *upstream,
    const char *repo, const char *tag, const char *digest,
    const char *media_type, const unsigned char *data, size_t len,
    int64_t now, const char *origin)
{
	struct cache_index_key		mkey, lkey, tkey;
	struct cache_index_delta	d = { 0, 0, 0 };
	unsigned char			lbuf[CACHE_INDEX_TIME_LEN];
	unsigned char			tbuf[CACHE_INDEX_TAG_MAX];
	MDB_val				lval = { sizeof(lbuf), lbuf }, tval;
	MDB_txn				*txn;
	size_t				 tlen;
	int				 rc;

	if (cache_index_key_digest(__func__, digest, &mkey) == -1 ||
	    (tlen = cache_index_mediatype_len(__func__, media_type, data,
	    len)) == SIZE_MAX ||
	    cache_index_key_repo(ci, __func__, upstream, repo, "digest",
	    digest, CACHE_INDEX_DIGEST_MAX, &lkey) == -1)
		return -1;
	cache_index_time_encode(now, lbuf);
	if (tag != NULL) {
		if (cache_index_key_repo(ci, __func__, upstream, repo, "tag",
		    tag, CACHE_INDEX_TAGNAME_MAX, &tkey) == -1)
			return -1;
		if ((tval.mv_size = cache_index_tag_encode(__func__, digest,
		    now, tbuf)) == 0)
			return -1;
		tval.mv_data = tbuf;
	}

	if (cache_index_begin(ci, __func__, 0, &txn) == -1)
		return -1;
	/* Same digest, same bytes: an existing manifest is kept as is, and
	 * its gc grace starts again. */
	if (cache_index_manifest_write(ci, __func__, txn, &mkey.k_val,
	    media_type, tlen, data, len, MDB_NOOVERWRITE, &d) == -1 ||
	    cache_index_mtime_put(ci, __func__, txn, &mkey.k_val, now) == -1)
		goto fail;
	if ((rc = mdb_put(txn, ci->ci_link, &lkey.k_val, &lval, 0)) != 0) {
		cache_index_warn(ci, __func__, "mdb_put link", rc);
		goto fail;
	}
	if (tag != NULL && cache_index_tag_write(ci, __func__, txn,
	    &tkey.k_val, &tval, &d) == -1)
		goto fail;
	if (cache_index_origin_write(ci, __func__, txn, &mkey.k_val,
	    origin) == -1)
		goto fail;
	return cache_index_commit_counted(ci, __func__, txn, &d);

fail:
	mdb_txn_abort(txn);
	return -1;
}

/* The blob record (replacing any) and its link, timed rec->stored. */
int
cache_index_blob_commit(struct cache_index *ci, const char *upstream,
    const char *repo, const char *digest, const struct cache_blob_rec *rec,
    const char *origin)
{
	struct cache_index_key		bkey, lkey;
	struct cache_index_delta	d = { 0, 0, 0 };
	unsigned char			lbuf[CACHE_INDEX_TIME_LEN];
	MDB_val				lval = { sizeof(lbuf), lbuf };
	MDB_txn				*txn;
	int				 rc;

	if (cache_index_key_digest(__func__, digest, &bkey) == -1 ||
	    cache_index_key_repo(ci, __func__, upstream, repo, "digest",
	    digest, CACHE_INDEX_DIGEST_MAX, &lkey) == -1)
		return -1;
	cache_index_time_encode(rec->stored, lbuf);

	if (cache_index_begin(ci, __func__, 0, &txn) == -1)
		return -1;
	if (cache_index_blob_set(ci, __func__, txn, &bkey.k_val, rec,
	    &d) == -1)
		goto fail;
	if ((rc = mdb_put(txn, ci->ci_link, &lkey.k_val, &lval, 0)) != 0) {
		cache_index_warn(ci, __func__, "mdb_put link", rc);
		goto fail;
	}
	if (cache_index_origin_write(ci, __func__, txn, &bkey.k_val,
	    origin) == -1)
		goto fail;
	return cache_index_commit_counted(ci, __func__, txn, &d);

fail:
	mdb_txn_abort(txn);
	return -1;
}

/*
 * Last-access times batched by the cache manager: one write transaction
 * (one fsync) for many blobs instead of one per request.  Absent blobs are
 * skipped.  0 ok, -1 error.
 */
int
cache_index_blob_touch_many(struct cache_index *ci, char *const *digests,
    const int64_t *when, size_t n)
{
	struct cache_index_key		k;
	struct cache_index_delta	d = { 0, 0, 0 };
	struct cache_blob_rec		rec;
	MDB_txn				*txn;
	MDB_val				 val;
	size_t				 i;
	int				 rc;

	if (n == 0)
		return 0;
	if (cache_index_begin(ci, __func__, 0, &txn) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (cache_index_key_digest(__func__, digests[i], &k) == -1)
			continue;
		rc = mdb_get(txn, ci->ci_blob, &k.k_val, &val);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0) {
			cache_index_warn(ci, __func__, "mdb_get", rc);
			goto fail;
		}
		if (cache_index_blob_decode(__func__, &val, &rec) == -1 ||
		    rec.last_access >= when[i])
			continue;
		rec.last_access = when[i];
		if (cache_index_blob_set(ci, __func__, txn, &k.k_val, &rec,
		    &d) == -1)
			goto fail;
	}
	return cache_index_commit_counted(ci, __func__, txn, &d);
fail:
	mdb_txn_abort(txn);
	return -1;
}

/*
 * Split "upstream NUL repo NUL last" into NUL-terminated copies in buf;
 * -1 if the key is not of that shape or a part is over its cap.
 */
static int
cache_index_key_split(const MDB_val *key, char buf[CACHE_INDEX_KEYBUF + 1],
    size_t lastmax, char **up, char **repo, char **last)
{
	size_t	ulen, rlen;

	if (key->mv_size == 0 || key->mv_size > CACHE_INDEX_KEYBUF)
		return -1;
	memcpy(buf, key->mv_data, key->mv_size);
	buf[key->mv_size] = '\0';
	ulen = strlen(buf);
	if (ulen == 0 || ulen > CACHE_INDEX_UPSTREAM_MAX ||
	    ulen + 1 >= key->mv_size)
		return -1;
	rlen = strlen(buf + ulen + 1);
	if (rlen == 0 || rlen > CACHE_INDEX_REPO_MAX ||
	    ulen + 1 + rlen + 1 >= key->mv_size)
		return -1;
	*up = buf;
	*repo = buf + ulen + 1;
	*last = *repo + rlen + 1;
	if (strlen(*last) != key->mv_size - ulen - rlen - 2 ||
	    strlen(*last) > lastmax)
		return -1;
	return 0;
}

struct cache_index_tag_walk {
	int	(*cb)(const char *, const char *, const char *,
		    const struct cache_tag_rec *, void *);
	void	 *arg;
};

/* Records that are not of the expected shape are skipped. */
static int
cache_index_tag_walk_cb(MDB_txn *txn, const MDB_val *key, const MDB_val *val,
    void *arg)
{
	struct cache_index_tag_walk	*w = arg;
	struct cache_tag_rec		 rec;
	char				 kbuf[CACHE_INDEX_KEYBUF + 1];
	char				*up, *repo, *tag;

	(void)txn;
	if (cache_index_key_split(key, kbuf, CACHE_INDEX_TAGNAME_MAX, &up,
	    &repo, &tag) == -1 ||
	    cache_index_tag_decode("cache_index_tag_scan", val, &rec) == -1)
		return 0;
	return w->cb(up, repo, tag, &rec, w->arg) != 0;
}

/*
 * Walk the tag database (one read transaction); cb gets NUL-terminated
 * copies of upstream, repository and tag and the decoded record.
 */
int
cache_index_tag_foreach(struct cache_index *ci,
    int (*cb)(const char *, const char *, const char *,
    const struct cache_tag_rec *, void *), void *arg)
{
	return cache_index_tag_scan(ci, NULL, 0, cb, arg);
}

int
cache_index_tag_scan(struct cache_index *ci, struct cache_index_pos *pos,
    size_t max, int (*cb)(const char *, const char *, const char *,
    const struct cache_tag_rec *, void *), void *arg)
{
	struct cache_index_tag_walk	w = { cb, arg };

	return cache_index_scan(ci, __func__, ci->ci_tag, pos, max,
	    cache_index_tag_walk_cb, &w);
}

struct cache_index_manifest_walk {
	struct cache_index	*ci;
	int			(*cb)(const char *, size_t, int64_t, void *);
	void			*arg;
};

/* Each manifest with its size and mtime, read in the same snapshot. */
static int
cache_index_manifest_walk_cb(MDB_txn *txn, const MDB_val *key,
    const MDB_val *val, void *arg)
{
	struct cache_index_manifest_walk	*w = arg;
	char					 digest[DIGEST_STR_MAX];
	MDB_val					 k = *key, tv;
	int64_t					 when = -1;
	int					 rc;

	if (cache_index_key_digest_copy("cache_index_manifest_scan", key,
	    digest) == -1)
		return 0;
	rc = mdb_get(txn, w->ci->ci_mtime, &k, &tv);
	if (rc == 0 && cache_index_time_decode("cache_index_manifest_scan",
	    &tv, &when) == -1)
		when = -1;
	else if (rc != 0 && rc != MDB_NOTFOUND) {
		cache_index_warn(w->ci, "cache_index_manifest_scan",
		    "mdb_get mtime", rc);
		return -1;
	}
	return w->cb(digest, cache_index_manifest_body(val), when,
	    w->arg) != 0;
}

int
cache_index_manifest_scan(struct cache_index *ci, struct cache_index_pos *pos,
    size_t max, int (*cb)(const char *, size_t, int64_t, void *), void *arg)
{
	struct cache_index_manifest_walk	w = { ci, cb, arg };

	return cache_index_scan(ci, __func__, ci->ci_manifest, pos, max,
	    cache_index_manifest_walk_cb, &w);
}

/* Is digest (a key) in dbi, in txn?  1, 0, -1 (logged). */
static int
cache_index_has(struct cache_index *ci, const char *fn, MDB_txn *txn,
    MDB_dbi dbi, MDB_val *key)
{
	MDB_val	val;
	int	rc;

	if ((rc = mdb_get(txn, dbi, key, &val)) == 0)
		return 1;
	if (rc == MDB_NOTFOUND)
		return 0;
	cache_index_warn(ci, fn, "mdb_get", rc);
	return -1;
}

struct cache_index_link_walk {
	struct cache_index	*ci;
	int			(*cb)(const struct cache_link_ent *, void *);
	void			*arg;
};

static int
cache_index_link_walk_cb(MDB_txn *txn, const MDB_val *key,
    const MDB_val *val, void *arg)
{
	struct cache_index_link_walk	*w = arg;
	struct cache_link_ent		 e;
	char				 kbuf[CACHE_INDEX_KEYBUF + 1];
	char				*up, *repo, *digest;
	MDB_val				 dk;

	if (cache_index_key_split(key, kbuf, CACHE_INDEX_DIGEST_MAX, &up,
	    &repo, &digest) == -1 ||
	    cache_index_time_decode("cache_index_link_scan", val,
	    &e.le_when) == -1)
		return 0;
	memcpy(e.le_upstream, up, strlen(up) + 1);
	memcpy(e.le_repo, repo, strlen(repo) + 1);
	memcpy(e.le_digest, digest, strlen(digest) + 1);
	dk.mv_data = e.le_digest;
	dk.mv_size = strlen(e.le_digest);
	if ((e.le_has_blob = cache_index_has(w->ci, "cache_index_link_scan",
	    txn, w->ci->ci_blob, &dk)) == -1 ||
	    (e.le_has_manifest = cache_index_has(w->ci,
	    "cache_index_link_scan", txn, w->ci->ci_manifest, &dk)) == -1)
		return -1;
	return w->cb(&e, w->arg) != 0;
}

int
cache_index_link_scan(struct cache_index *ci, struct cache_index_pos *pos,
    size_t max, int (*cb)(const struct cache_link_ent *, void *), void *arg)
{
	struct cache_index_link_walk	w = { ci, cb, arg };

	return cache_index_scan(ci, __func__, ci->ci_link, pos, max,
	    cache_index_link_walk_cb, &w);
}

/* Only tags still as the walk saw them go (see cache_int.h). */
int
cache_index_tag_del_many(struct cache_index *ci,
    const struct cache_tag_ent *v, size_t n, size_t *removed)
{
	struct cache_index_key		k;
	struct cache_index_delta	d = { 0, 0, 0 };
	struct cache_tag_rec		cur;
	MDB_txn				*txn;
	MDB_val				 val;
	size_t				 i, nrm = 0;
	int				 rc;

	*removed = 0;
	if (n == 0)
		return 0;
	if (cache_index_begin(ci, __func__, 0, &txn) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (cache_index_key_repo(ci, __func__, v[i].te_upstream,
		    v[i].te_repo, "tag", v[i].te_tag, CACHE_INDEX_TAGNAME_MAX,
		    &k) == -1)
			continue;
		rc = mdb_get(txn, ci->ci_tag, &k.k_val, &val);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0)
			goto fail;
		if (cache_index_tag_decode(__func__, &val, &cur) == -1 ||
		    cur.validated != v[i].te_rec.validated ||
		    strcmp(cur.digest, v[i].te_rec.digest) != 0)
			continue;
		d.d_negatives -= cache_index_tag_val_negative(&val);
		if ((rc = mdb_del(txn, ci->ci_tag, &k.k_val, NULL)) != 0)
			goto fail;
		nrm++;
	}
	if (cache_index_commit_counted(ci, __func__, txn, &d) == -1)
		return -1;
	*removed = nrm;
	return 0;
fail:
	cache_index_warn(ci, __func__, "mdb_get/mdb_del tag", rc);
	mdb_txn_abort(txn);
	return -1;
}

/*
 * One manifest in the removal transaction: 1 removed (*body set), 0 kept
 * (mtime after cutoff, gone already, or just stamped), -1 error.
 */
static int
cache_index_manifest_expire(struct cache_index *ci, const char *fn,
    MDB_txn *txn, MDB_val *key, int64_t cutoff, int64_t now,
    struct cache_index_delta *d, size_t *body)
{
	MDB_val	tv;
	int64_t	when;
	int	rc;

	if ((rc = cache_index_has(ci, fn, txn, ci->ci_manifest, key)) != 1)
		return rc;
	rc = mdb_get(txn, ci->ci_mtime, key, &tv);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		cache_index_warn(ci, fn, "mdb_get mtime", rc);
		return -1;
	}
	if (rc == MDB_NOTFOUND ||
	    cache_index_time_decode(fn, &tv, &when) == -1)
		return cache_index_mtime_put(ci, fn, txn, key, now);
	if (when > cutoff)
		return 0;
	rc = cache_index_manifest_remove(ci, fn, txn, key, d, body);
	return rc == 0 ? 1 : rc == 1 ? 0 : -1;
}

int
cache_index_manifest_del_many(struct cache_index *ci, char *const *digests,
    size_t n, int64_t cutoff, int64_t now, size_t *removed, uint64_t *bytes)
{
	struct cache_index_key		k;
	struct cache_index_delta	d = { 0, 0, 0 };
	MDB_txn				*txn;
	size_t				 i, nrm = 0, body;
	uint64_t			 nbytes = 0;
	int				 rc;

	*removed = 0;
	*bytes = 0;
	if (n == 0)
		return 0;
	if (cache_index_begin(ci, __func__, 0, &txn) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (cache_index_key_digest(__func__, digests[i], &k) == -1)
			continue;
		body = 0;
		if ((rc = cache_index_manifest_expire(ci, __func__, txn,
		    &k.k_val, cutoff, now, &d, &body)) == -1) {
			mdb_txn_abort(txn);
			return -1;
		}
		nrm += (size_t)rc;
		nbytes += body;
	}
	if (cache_index_commit_counted(ci, __func__, txn, &d) == -1)
		return -1;
	*removed = nrm;
	*bytes = nbytes;
	return 0;
}

/* Only links whose digest is neither a blob nor a manifest now go. */
int
cache_index_link_del_orphans(struct cache_index *ci,
    const struct cache_link_ent *v, size_t n, size_t *removed)
{
	struct cache_index_key	k, dk;
	MDB_txn			*txn;
	size_t			 i, nrm = 0;
	int			 rc;

	*removed = 0;
	if (n == 0)
		return 0;
	if (cache_index_begin(ci, __func__, 0, &txn) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (cache_index_key_repo(ci, __func__, v[i].le_upstream,
		    v[i].le_repo, "digest", v[i].le_digest,
		    CACHE_INDEX_DIGEST_MAX, &k) == -1 ||
		    cache_index_key_digest(__func__, v[i].le_digest, &dk) == -1)
			continue;
		if ((rc = cache_index_has(ci, __func__, txn, ci->ci_blob,
		    &dk.k_val)) == 0)
			rc = cache_index_has(ci, __func__, txn,
			    ci->ci_manifest, &dk.k_val);
		if (rc == -1)
			goto fail;
		if (rc == 1)
			continue;
		/* Neither blob nor manifest: its origin goes too. */
		if ((rc = mdb_del(txn, ci->ci_origin, &dk.k_val, NULL)) != 0 &&
		    rc != MDB_NOTFOUND) {
			cache_index_warn(ci, __func__, "mdb_del origin", rc);
			goto fail;
		}
		rc = mdb_del(txn, ci->ci_link, &k.k_val, NULL);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0) {
			cache_index_warn(ci, __func__, "mdb_del link", rc);
			goto fail;
		}
		nrm++;
	}
	if (cache_index_commit(ci, __func__, txn) == -1)
		return -1;
	*removed = nrm;
	return 0;
fail:
	mdb_txn_abort(txn);
	return -1;
}

/* Entries and pages in use of one database, added to *pages. */
static int
cache_index_dbstat(struct cache_index *ci, MDB_txn *txn, MDB_dbi dbi,
    uint64_t *entries, uint64_t *pages, unsigned int *psize)
{
	MDB_stat	st;
	int		rc;

	if ((rc = mdb_stat(txn, dbi, &st)) != 0) {
		cache_index_warn(ci, "cache_index_stat", "mdb_stat", rc);
		return -1;
	}
	if (entries != NULL)
		*entries = st.ms_entries;
	*pages += st.ms_branch_pages + st.ms_leaf_pages +
	    st.ms_overflow_pages;
	*psize = st.ms_psize;
	return 0;
}

/*
 * LMDB's statistics, no scan: entries per database, and the pages in use
 * (every named database and the main one that lists them; free pages are
 * not in use).  Manifests live in those pages, so is_bytes includes them.
 */
int
cache_index_stat(struct cache_index *ci, struct cache_index_stat *st)
{
	struct cache_index_totals	 t;
	MDB_dbi				 other[] = { ci->ci_mtime, ci->ci_meta,
					    ci->ci_origin, ci->ci_lru,
					    ci->ci_pin, ci->ci_totals };
	MDB_txn				*txn;
	MDB_stat			 env;
	uint64_t			 pages = 0;
	unsigned int			 psize = 4096;
	size_t				 i;
	int				 rc;

	memset(st, 0, sizeof(*st));
	if (cache_index_begin(ci, __func__, MDB_RDONLY, &txn) == -1)
		return -1;
	rc = cache_index_dbstat(ci, txn, ci->ci_blob, &st->is_blobs, &pages,
	    &psize) == -1 || cache_index_dbstat(ci, txn, ci->ci_manifest,
	    &st->is_manifests, &pages, &psize) == -1 ||
	    cache_index_dbstat(ci, txn, ci->ci_tag, &st->is_tags, &pages,
	    &psize) == -1 || cache_index_dbstat(ci, txn, ci->ci_link,
	    &st->is_links, &pages, &psize) == -1 ||
	    cache_index_totals_get(ci, __func__, txn, &t) == -1 ? -1 : 0;
	for (i = 0; rc == 0 && i < sizeof(other) / sizeof(other[0]); i++)
		rc = cache_index_dbstat(ci, txn, other[i], NULL, &pages,
		    &psize);
	mdb_txn_abort(txn);
	if (rc == 0 && (rc = mdb_env_stat(ci->ci_env, &env)) != 0) {
		cache_index_warn(ci, __func__, "mdb_env_stat", rc);
		rc = -1;
	}
	if (rc != 0)
		return -1;
	pages += env.ms_branch_pages + env.ms_leaf_pages +
	    env.ms_overflow_pages;
	st->is_bytes = pages * psize;
	st->is_negatives = t.t_negatives > 0 ? (uint64_t)t.t_negatives : 0;
	st->is_manifest_bytes = t.t_manifest_bytes > 0 ?
	    (uint64_t)t.t_manifest_bytes : 0;
	st->is_blob_bytes = t.t_blob_bytes > 0 ? (uint64_t)t.t_blob_bytes : 0;
	pthread_mutex_lock(&ci->ci_mtx);
	st->is_max_negative = ci->ci_max_negative;
	st->is_neg_refused = ci->ci_neg_refused;
	pthread_mutex_unlock(&ci->ci_mtx);
	return 0;
}

static int
cache_index_count_neg_cb(MDB_txn *txn, const MDB_val *key,
    const MDB_val *val, void *arg)
{
	(void)txn;
	(void)key;
	((struct cache_index_totals *)arg)->t_negatives +=
	    cache_index_tag_val_negative(val);
	return 0;
}

static int
cache_index_count_bytes_cb(MDB_txn *txn, const MDB_val *key,
    const MDB_val *val, void *arg)
{
	(void)txn;
	(void)key;
	((struct cache_index_totals *)arg)->t_manifest_bytes +=
	    (int64_t)cache_index_manifest_body(val);
	return 0;
}

struct cache_index_count_blobs {
	struct cache_index		*ci;
	struct cache_index_totals	*t;
	MDB_val				*bad;	/* corrupt records' keys */
	size_t				 nbad;
};

static int
cache_index_count_blobs_cb(MDB_txn *txn, const MDB_val *key,
    const MDB_val *val, void *arg)
{
	struct cache_index_count_blobs	*w = arg;
	struct cache_blob_rec		 rec;
	MDB_val				 k = *key;

	if (key->mv_size > CACHE_INDEX_DIGEST_MAX ||
	    cache_index_blob_decode("cache_index_totals_init", val,
	    &rec) == -1) {
		/* Dropped below: reconcile adopts the file again. */
		w->bad = xreallocarray(w->bad, w->nbad + 1, sizeof(*w->bad));
		w->bad[w->nbad].mv_size = key->mv_size;
		w->bad[w->nbad].mv_data = xmalloc(key->mv_size);
		memcpy(w->bad[w->nbad++].mv_data, key->mv_data, key->mv_size);
		return 0;
	}
	w->t->t_blob_bytes += (int64_t)rec.size;
	return cache_index_blob_list(w->ci, "cache_index_totals_init", txn,
	    &k, &rec, 1);
}

/*
 * Does the index need counting?  When its totals record is missing (an
 * index of an older version) or corrupt, or its lru order does not have
 * one entry per blob record (an older version wrote to it since).  1
 * yes, 0 no, -1 error.
 */
static int
cache_index_totals_stale(struct cache_index *ci, const char *fn,
    MDB_txn *txn)
{
	struct cache_index_totals	t;
	MDB_stat			blobs, lru;
	int				rc;

	if (cache_index_totals_get(ci, fn, txn, &t) != 0)
		return 1;	/* -1: corrupt (logged), counted again */
	if ((rc = mdb_stat(txn, ci->ci_blob, &blobs)) != 0 ||
	    (rc = mdb_stat(txn, ci->ci_lru, &lru)) != 0) {
		cache_index_warn(ci, fn, "mdb_stat", rc);
		return -1;
	}
	if (blobs.ms_entries == lru.ms_entries)
		return 0;
	log_warnx("%s: %zu blob records but %zu in the lru order: counting "
	    "the index again", fn, blobs.ms_entries, lru.ms_entries);
	return 1;
}

/*
 * An index that needs it (cache_index_totals_stale) is counted, in one
 * write transaction: negative tags, manifest bytes, blob bytes, and the
 * lru and pin entries of every blob; a corrupt blob record is dropped.
 * From then on every write keeps them (cache_index_commit_counted), and
 * open reads one record instead of walking the index.
 */
static int
cache_index_totals_init(struct cache_index *ci, const char *fn)
{
	struct cache_index_totals	t;
	struct cache_index_count_blobs	w = { ci, &t, NULL, 0 };
	MDB_txn				*txn;
	size_t				 i;
	int				 rc;

	if (cache_index_begin(ci, fn, 0, &txn) == -1)
		return -1;
	if ((rc = cache_index_totals_stale(ci, fn, txn)) != 1) {
		mdb_txn_abort(txn);
		return rc;
	}
	memset(&t, 0, sizeof(t));
	if ((rc = mdb_drop(txn, ci->ci_lru, 0)) != 0 ||
	    (rc = mdb_drop(txn, ci->ci_pin, 0)) != 0) {
		cache_index_warn(ci, fn, "mdb_drop", rc);
		goto fail;
	}
	if (cache_index_walk(ci, fn, txn, ci->ci_tag, NULL, 0,
	    cache_index_count_neg_cb, &t) == -1 ||
	    cache_index_walk(ci, fn, txn, ci->ci_manifest, NULL, 0,
	    cache_index_count_bytes_cb, &t) == -1 ||
	    cache_index_walk(ci, fn, txn, ci->ci_blob, NULL, 0,
	    cache_index_count_blobs_cb, &w) == -1 ||
	    cache_index_totals_put(ci, fn, txn, &t) == -1)
		goto fail;
	for (i = 0; i < w.nbad; i++)
		if ((rc = mdb_del(txn, ci->ci_blob, &w.bad[i], NULL)) != 0) {
			cache_index_warn(ci, fn, "mdb_del blob", rc);
			goto fail;
		}
	rc = cache_index_commit(ci, fn, txn);
	goto done;
fail:
	mdb_txn_abort(txn);
	rc = -1;
done:
	for (i = 0; i < w.nbad; i++)
		free(w.bad[i].mv_data);
	free(w.bad);
	return rc;
}

/* Small named records (JSON text): a malloc'd NUL-terminated copy. */
struct cache_index_meta_out {
	char	*v;
	size_t	 len;
};

static int
cache_index_meta_decode_cb(const char *fn, const MDB_val *v, void *arg)
{
	struct cache_index_meta_out	*o = arg;

	(void)fn;
	o->v = xmalloc(v->mv_size + 1);
	memcpy(o->v, v->mv_data, v->mv_size);
	o->v[v->mv_size] = '\0';
	o->len = v->mv_size;
	return 0;
}

int
cache_index_meta_get(struct cache_index *ci, const char *key, char **val)
{
	struct cache_index_meta_out	 o = { NULL, 0 };
	MDB_val				 k;
	int				 rc;

	k.mv_data = (void *)(uintptr_t)key;
	k.mv_size = strlen(key);
	if (k.mv_size == 0 || k.mv_size > ci->ci_maxkey)
		return -1;
	rc = cache_index_get(ci, __func__, ci->ci_meta, &k,
	    cache_index_meta_decode_cb, &o);
	if (rc == 0)
		*val = o.v;
	return rc;
}

int
cache_index_meta_put(struct cache_index *ci, const char *key, const char *val)
{
	MDB_val	k, v;

	k.mv_data = (void *)(uintptr_t)key;
	k.mv_size = strlen(key);
	v.mv_data = (void *)(uintptr_t)val;
	v.mv_size = strlen(val);
	if (k.mv_size == 0 || k.mv_size > ci->ci_maxkey)
		return -1;
	return cache_index_put(ci, __func__, ci->ci_meta, &k, &v);
}
