/*
 * sync_int.h — private to sync/: prefetch jobs (sync_pf.c), the client of
 * our own listener (sync_self_get, in sync_pf.c), pushes (sync_push.c),
 * replication policies (sync_repl.c) and their filters (sync_filter.c).
 * Everything runs on the jobs' loop (sync.h).
 */
#ifndef SYNC_SYNC_INT_H
#define SYNC_SYNC_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/digest.h"

struct config;
struct event_base;
struct evhttp_request;
struct upstream;
struct upstream_worker;

struct config_replication;

/* sync_filter.c: pure functions (tests/unit/sync/test_filter.c). */
int	sync_platform_valid(const char *);
int	sync_platform_match(char *const *plats, size_t n, const char *os,
	    const char *arch, const char *variant);
int	sync_tag_wanted(const struct config_replication *, const char *);
int	sync_repo_wanted(const struct config_replication *, const char *);
int	sync_version_cmp(const char *, const char *);
size_t	sync_keep_newest(char **tags, size_t n, int keep);

/* sync_pf.c: jobs run on base, as clients of our own listener. */
extern const char sync_accept_images[];	/* Accept: for manifests */
int	sync_pf_init(struct event_base *, struct upstream_worker *,
	    const struct config *, int have_plain);
void	sync_pf_fini(void);
/* Where the jobs reach listener "l": its address, loopback for a
 * wildcard; -1 if "l" is not host:port.  *host is allocated. */
int	sync_self_addr(const char *l, char **host, int *port);
struct pf_job;
struct evbuffer;
/*
 * A prefetch job's parameters (posted ones are parsed from JSON into
 * these; replication fills them in).  The strings are only read during
 * sync_pf_start().
 */
struct sync_pf_params {
	const char		*upstream;	/* images are repository:tag
						 * on it; NULL: by their host */
	const char *const	*images;
	size_t			 nimages;
	const char *const	*platforms;	/* none: all */
	size_t			 nplatforms;
	long			 pin;		/* seconds; 0 off, -1 forever */
	int			 revalidate;	/* Cache-Control: no-cache */
	unsigned		 concurrency;	/* requests at once; 0: 4 */
	long			 rate_floor;	/* RateLimit-Remaining */
	int			 admin;		/* posted: max_job_* apply */
	void			(*done)(struct pf_job *, void *);
	void			*arg;		/* for done */
};
/* A started job, or NULL with err set. */
struct pf_job	*sync_pf_start(const struct config *,
		    const struct sync_pf_params *, char *err, size_t errlen);
void	sync_pf_stats(const struct pf_job *, unsigned *ok,
	    unsigned *failed, uint64_t *bytes, char *err, size_t errlen);
/* One buffered GET to our own listener; link: the reply's Link header
 * (pagination), or NULL. */
typedef void	(*sync_self_f)(int status, struct evbuffer *body,
		    const char *link, void *arg);
int	sync_self_get(const char *path, sync_self_f, void *arg);
int	sync_pf_paused(const struct pf_job *);
/* Image i of a job: repository, reference, digest; 1 if it is done. */
size_t	sync_pf_nimages(const struct pf_job *);
int	sync_pf_image(const struct pf_job *, size_t i,
	    const char **repo, const char **reference, const char **digest);

/* sync_push.c: push a cached image to a registry (replication). */
struct push_stats {
	unsigned	 unchanged;	/* the tag already named it */
	unsigned	 manifests;
	unsigned	 blobs_uploaded, blobs_mounted, blobs_present;
	uint64_t	 bytes;
};
typedef void	(*push_done_f)(const char *err, const struct push_stats *,
		    void *arg);
int	sync_push_start(struct upstream_worker *, struct upstream *,
	    const char *repo, const char *tag, const char *digest,
	    uint64_t chunk, push_done_f, void *arg, char *err, size_t errlen);

/* sync_repl.c */
struct evbuffer;
/* The policies' figures for /metrics (Prometheus text). */
void	sync_repl_metrics(struct evbuffer *);
void	sync_repl_init(struct event_base *, struct upstream_worker *,
	    const struct config *);
void	sync_repl_reload(struct config_replication *);
int	sync_repl_route(struct evhttp_request *, const char *path,
	    int *status, struct json_t **out);
int	sync_pf_route(struct evhttp_request *, const char *path,
	    const struct config *, int *status, struct json_t **out);
/*
 * The next page of a paginated list (tags/list, _catalog) from its Link
 * header (NULL: none): 0 and *out the path with the Link's query
 * (re-encoded, at most SYNC_PAGE_QUERY_MAX bytes of it read, any ns
 * dropped) and ns=source last, malloc'd, or *out NULL when there is no
 * next page; -1 (*out NULL) when the Link names a next page whose query
 * is malformed or too long.
 */
#define SYNC_PAGE_QUERY_MAX	4096
int	sync_repl_next_page(const char *link, const char *path,
	    const char *source, char **out);
/*
 * Walk a registry notification envelope of len bytes: cb(repository,
 * tag, arg) for every push event whose repository and tag are valid
 * names (the strings live until the call returns); *invalid counts the
 * push events refused.  -1 if body is not a JSON object.
 */
typedef void	(*sync_repl_event_f)(const char *repo, const char *tag,
		    void *arg);
int	sync_repl_events_parse(const char *body, size_t len,
	    sync_repl_event_f cb, void *arg, size_t *invalid);

/* sync.c */

#endif
