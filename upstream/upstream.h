/*
 * upstream.h — the HTTP(S) client to registries.
 *
 * struct upstream is one configured [upstream "NAME"] section: its URLs,
 * TLS context, credentials and token cache.  It is shared by every worker
 * thread; the token cache has its own lock.
 *
 * struct upstream_worker is the per-event-loop half: the connection pool
 * and the DNS resolver of one worker thread.  Requests are made and called
 * back on the worker's loop only.
 *
 * struct upstream_req is one logical request ("GET this manifest") that
 * may become several HTTP exchanges: a token fetch and retry after a 401
 * Bearer challenge, a retry with Basic credentials, up to 5 redirects
 * (Authorization is never sent to a host other than the upstream's own),
 * and one retry of an idempotent request that failed before any response
 * byte arrived.  Its owner sees only the final response.
 */
#ifndef UPSTREAM_UPSTREAM_H
#define UPSTREAM_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include <event2/http.h>

struct config;
struct config_upstream;
struct event_base;
struct evbuffer;
struct evkeyvalq;

struct upstream;
struct upstream_worker;
struct upstream_req;

/*
 * Asynchronous errors are these sentinel strings, compared by pointer
 * (h2o's habit); the log line carries the details.
 */
extern const char upstream_err_connect[];	/* refused, DNS, TLS */
extern const char upstream_err_timeout[];
extern const char upstream_err_reset[];		/* EOF/reset mid-response */
extern const char upstream_err_protocol[];	/* bad reply, bad redirect */
extern const char upstream_err_too_large[];	/* body over the cap */
extern const char upstream_err_auth[];		/* token service failed */
extern const char upstream_err_cancelled[];
extern const char upstream_err_policy[];	/* redirect/realm refused */
extern const char upstream_err_busy[];		/* max_connections: waited
						   queue_timeout for a slot */

/* Build every upstream of the config (TLS contexts, credentials). */
int	upstream_init_all(const struct config *);
void	upstream_fini_all(void);
/*
 * SIGHUP: the upstream named name now logs in as user with password
 * (user NULL: anonymously).  Requests from now on use them; its cached
 * tokens are dropped, and a token fetched with the old ones is not
 * cached.  1 changed, 0 the same, -1 no such upstream.  Any thread.
 */
int	upstream_credentials_set(const char *name, const char *user,
	    const char *password);
/* By section name or alias, or the default; NULL if none. */
struct upstream *upstream_find(const char *name);
struct upstream *upstream_default(void);
const char *upstream_name(const struct upstream *);
/* Its place in the config (0 .. nupstreams - 1). */
size_t	upstream_index(const struct upstream *);
/* The tag_ttl for tag (tag_ttl_for tiers, then the upstream's tag_ttl),
 * or dflt when it sets none. */
long	upstream_tag_ttl(const struct upstream *, const char *tag, long dflt);
/* How long past its tag_ttl a tag may be served when upstream fails. */
long	upstream_stale_if_error(const struct upstream *);
/* How long an upstream 404 for a tag is remembered. */
long	upstream_negative_ttl(const struct upstream *);
/* 1 when single-component names must become library/NAME (Docker Hub). */
int	upstream_is_docker_hub(const struct upstream *);

/*
 * The RateLimit-Remaining the upstream sent last (-1: it never sent one)
 * and, in *reset, the RateLimit-Reset seconds sent with it (0: none).
 */
long	upstream_rate_remaining(const struct upstream *, long *reset);
/* Forget it (an answer without the header: no limit is known). */
void	upstream_rate_forget(struct upstream *);

/*
 * An upload session's Location as a path on u: absolute URLs must name
 * one of u's endpoints, relative ones are taken against base (the
 * request's path).  0 and *out malloc'd, or -1.
 */
int	upstream_location_path(const struct upstream *u, const char *loc,
	    const char *base, char **out);

/*
 * Per loop: client index of nclients (the workers and the jobs' loop),
 * which share each [upstream] max_connections out exactly: max / n each,
 * one more for the first max % n, and at least 1.
 */
struct upstream_worker *upstream_worker_new(struct event_base *,
	    const struct config *, unsigned nclients, unsigned index);
void	upstream_worker_free(struct upstream_worker *);

/*
 * Callbacks, all on the worker's loop:
 *  head: the final response's status and headers (valid only during the
 *	call); content_length is -1 when unknown.  Return 0 to go on, -1 to
 *	cancel (done is then called with upstream_err_cancelled).
 *  data: streaming mode only; body bytes, which the callee must remove
 *	from buf (what is left is drained).
 *  done: err NULL when the whole body arrived, else a sentinel.  In
 *	buffered mode body holds the whole body (NULL on error).  After done
 *	returns the request is freed: do not touch it again.
 */
typedef int	(*upstream_head_f)(struct upstream_req *, int status,
		    struct evkeyvalq *headers, int64_t content_length,
		    void *arg);
typedef void	(*upstream_data_f)(struct upstream_req *, struct evbuffer *buf,
		    void *arg);
typedef void	(*upstream_done_f)(struct upstream_req *, const char *err,
		    struct evbuffer *body, void *arg);

/*
 * A request for path ("/v2/<repo>/...", with any query) on upstream u,
 * authorised for pulling repo (the token scope).  accept may be NULL.
 * buffer_max > 0 selects buffered mode with that cap; 0 streams.
 * The request starts at once; it cannot fail synchronously.
 */
struct upstream_req *upstream_req_start(struct upstream_worker *,
	    struct upstream *u, enum evhttp_cmd_type method, const char *path,
	    const char *repo, const char *accept, size_t buffer_max,
	    upstream_head_f, upstream_data_f, upstream_done_f, void *arg);
/*
 * A request body, for pushing: bytes (copied), or len bytes of the open
 * file fd from offset (fd is dup'd; the caller keeps its own).  Sent
 * again as it was if the request must be repeated (after a 401).
 */
struct upstream_body {
	const char	*content_type;
	const char	*content_range;	/* PATCH chunks: "FIRST-LAST" */
	const void	*data;
	size_t		 len;
	int		 fd;		/* -1: data */
	uint64_t	 offset;
};

/*
 * A push-side request (HEAD, POST, PATCH, PUT) on u: the token scope is
 * "pull,push" on repo, body may be NULL (Content-Length: 0), the reply
 * is buffered (up to 1 MiB).  Redirects are not followed for POST,
 * PATCH and PUT; nothing but GET and HEAD is retried.
 */
#define UPSTREAM_PUSH_REPLY_MAX	(1024 * 1024)
struct upstream_req *upstream_req_start_push(struct upstream_worker *,
	    struct upstream *u, enum evhttp_cmd_type method, const char *path,
	    const char *repo, const char *accept,
	    const struct upstream_body *body,
	    upstream_head_f, upstream_done_f, void *arg);
/* Stop a request; done is called (with upstream_err_cancelled) first. */
void	upstream_req_cancel(struct upstream_req *);
/* Stop (1) or resume (0) reading the response body: flow control. */
void	upstream_req_pause(struct upstream_req *, int pause);
/* From a data callback that kept what it was given (hold 1): read no
 * more ahead of evhttp's own reads until it has passed it on (hold 0,
 * or upstream_req_pause(r, 0)). */
void	upstream_req_hold(struct upstream_req *, int hold);
/* Set once done has been called with an error: a line for the client. */
const char *upstream_req_errmsg(const struct upstream_req *);
/* Status of the final response (0 if none). */
int	upstream_req_status(const struct upstream_req *);

/*
 * What the final response said about coming back: the response the head
 * callback is given (after any redirects, token or Basic round and
 * retries: a 3xx, 401 or retried 5xx the request acts on itself never
 * counts), read once as it arrives.  Valid from the head callback until
 * done returns (in buffered mode without a head callback too, in done);
 * before a final response, and in a done whose error came before one
 * (refused, timed out, token service failed), there is none.
 *
 * upstream_req_retry_after: its Retry-After when that is delta-seconds
 * (1 to 9 digits: what text_retry_after() accepts), else NULL (none, an
 * HTTP-date or junk: the caller uses its own).  The string is the
 * request's.
 */
const char *upstream_req_retry_after(const struct upstream_req *);
/*
 * upstream_req_ratelimit: 1 when the final response carried a
 * RateLimit-Remaining count, else 0; *out is filled either way, -1 (0 for
 * reset) where the response said nothing usable.  A count is the number
 * before any ";w=..." (Docker Hub: "76;w=21600").
 */
struct upstream_ratelimit {
	long	remaining;	/* RateLimit-Remaining, >= 0; -1: none */
	long	limit;		/* RateLimit-Limit, >= 0; -1: none */
	long	reset;		/* RateLimit-Reset seconds, > 0; 0: none */
};
int	upstream_req_ratelimit(const struct upstream_req *,
	    struct upstream_ratelimit *out);

#endif
