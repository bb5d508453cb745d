/*
 * upstream_int.h — private to upstream/: the upstream objects and their
 * token caches (upstream_auth.c), the per-worker connection pool
 * (upstream_conn.c) and the request state machine (upstream_fetch.c).
 */
#ifndef UPSTREAM_UPSTREAM_INT_H
#define UPSTREAM_UPSTREAM_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include <openssl/ssl.h>

#include "upstream/upstream.h"

#define UPSTREAM_MAGIC		0x75707374
#define UPSTREAM_REQ_MAGIC	0x75726571

/* A parsed absolute URL. */
struct upstream_url {
	int	 tls;
	char	*host;		/* without brackets */
	int	 port;
	char	*pathq;		/* path and query, at least "/" */
	time_t	 down_until;	/* upstream endpoints: skipped until then */
};

#define UPSTREAM_TOKEN_BUCKETS	256
#define UPSTREAM_TOKENS_MAX	4096
#define UPSTREAM_TOKEN_LEN_MAX	(16 * 1024)	/* bytes of one token */
#define UPSTREAM_TOKEN_TTL_MAX	3600		/* seconds kept at most */

struct upstream_token {
	char			*scope;
	char			*value;		/* "Bearer ..." header value */
	time_t			 expires;
	LIST_ENTRY(upstream_token) entry;
};

/* An address an upstream's endpoint resolved to (redirect policy). */
#define UPSTREAM_OWN_MAX	16
struct upstream_addr {
	int		family;
	unsigned char	bytes[16];
	uint16_t	port;		/* network order */
};

struct upstream {
	unsigned		 magic;
	size_t			 idx;		/* in the config's order */
	const struct config_upstream *cfg;
	struct upstream_url	*urls;
	size_t			 nurls;
	SSL_CTX			*ssl_ctx;
	/* "Basic ..." or NULL, and how many times a SIGHUP changed it:
	 * both under tok_mtx (upstream_basic_dup). */
	char			*basic;
	unsigned		 cred_gen;
	int			 docker_hub;
	pthread_mutex_t		 tok_mtx;
	/* Bearer tokens by scope: hashed, at most UPSTREAM_TOKENS_MAX (a
	 * scope per repository name: clients choose how many). */
	LIST_HEAD(upstream_token_list, upstream_token)
				 tokens[UPSTREAM_TOKEN_BUCKETS];
	size_t			 ntokens;
	int			 wants_basic;	/* saw a Basic challenge */
	/* The last RateLimit-Remaining (-1: never seen) and RateLimit-Reset
	 * (seconds, 0: not sent) the upstream answered; any worker. */
	_Atomic long		 rl_remaining;
	_Atomic long		 rl_reset;
	/* Addresses its endpoints resolved to (under tok_mtx). */
	struct upstream_addr	 own[UPSTREAM_OWN_MAX];
	size_t			 nown, own_next;
};

/* upstream_conn.c */
struct upstream_conn;
int	upstream_url_parse(const char *s, struct upstream_url *out);
/* A redirect Location (any URI reference) against base, the URL that
 * sent it: 0 and out (parsed as upstream_url_parse does), or -1 (out
 * empty). */
int	upstream_url_resolve(const struct upstream_url *base,
	    const char *loc, struct upstream_url *out);
void	upstream_url_fini(struct upstream_url *);
/* An idle pooled connection for url, taken; NULL if none. */
struct upstream_conn *upstream_conn_idle(struct upstream_worker *,
	    struct upstream *, const struct upstream_url *);
struct sockaddr;
/* A new connection for url to the address sa (already checked), taken. */
struct upstream_conn *upstream_conn_open(struct upstream_worker *,
	    struct upstream *, const struct upstream_url *,
	    const struct sockaddr *sa);
struct evdns_base *upstream_worker_dns(struct upstream_worker *);
long	upstream_worker_queue_timeout(struct upstream_worker *);
/*
 * Exchange slots: at most [upstream] max_connections exchanges with one
 * upstream at once (shared out between the workers).  take: 0 got one,
 * -1 none free (or others already wait).  A waiter is told (cb, which
 * must only schedule) when give hands it a slot.
 */
struct upstream_waiter {
	void				(*cb)(void *);
	void				 *arg;
	TAILQ_ENTRY(upstream_waiter)	  entry;
};
int	upstream_slot_take(struct upstream_worker *, const struct upstream *);
void	upstream_slot_wait(struct upstream_worker *, const struct upstream *,
	    struct upstream_waiter *);
void	upstream_slot_cancel(struct upstream_worker *,
	    const struct upstream *, struct upstream_waiter *);
void	upstream_slot_give(struct upstream_worker *, const struct upstream *);
struct evhttp_connection *upstream_conn_evcon(struct upstream_conn *);
/* 1 once TCP (and TLS) is up: [timeouts] connect no longer applies. */
int	upstream_conn_established(struct upstream_conn *);
long	upstream_worker_connect_timeout(struct upstream_worker *);
/* Give it back; broken = 1 drops it. */
void	upstream_conn_put(struct upstream_conn *, int broken);
struct event_base *upstream_worker_base(struct upstream_worker *);
long	upstream_worker_timeout(struct upstream_worker *);

/* upstream_auth.c */
/* Endpoint health: the first url not marked down (else the first). */
size_t	 upstream_url_pick(struct upstream *);
void	 upstream_url_mark_down(struct upstream *, size_t idx, int seconds);
/* The cached "Bearer x" for scope, malloc'd, or NULL. */
char	*upstream_token_get(struct upstream *, const char *scope);
void	 upstream_token_put(struct upstream *, const char *scope,
	    const char *value, long expires_in, unsigned gen);
/* A copy of u's "Basic ..." (NULL: no credentials), with *gen the
 * credentials' generation: a token fetched with them is cached only while
 * it is still the current one. */
char	*upstream_basic_dup(struct upstream *, unsigned *gen);
int	 upstream_has_basic(struct upstream *);
/* Parse a token service reply; malloc'd token or NULL. */
char	*upstream_token_parse(const char *json, size_t len,
	    long *expires_in);

/*
 * upstream_retry.c: the retry schedule.  The delay before retry n
 * (0-based, 0..16): UPSTREAM_RETRY_BASE_MS << n
 * plus jitter % UPSTREAM_RETRY_JITTER_MS (the caller's random number).
 * Whether a request may be retried now: 1 for GET and HEAD, not a token
 * request, under UPSTREAM_MAX_RETRIES retries so far, and when
 * elapsed_ms (since it started) plus the next delay ends before
 * deadline_ms; else 0.  upstream_retry_next is the two in one, for one
 * jitter: the delay of retry number retries when it is allowed, else -1;
 * the caller waits that delay (or none), never one drawn again.
 */
#define UPSTREAM_MAX_RETRIES		3
#define UPSTREAM_RETRY_BASE_MS		100L
#define UPSTREAM_RETRY_JITTER_MS	100U
long	upstream_retry_delay(int n, uint32_t jitter);
int	upstream_retry_allowed(enum evhttp_cmd_type method, int is_token,
	    int retries, long elapsed_ms, long deadline_ms, long next_delay_ms);
long	upstream_retry_next(enum evhttp_cmd_type method, int is_token,
	    int retries, long elapsed_ms, long deadline_ms, uint32_t jitter);

/*
 * upstream_fetch.c: the states of a request (its header comment has the
 * table of events and transitions).  upstream_req_transition_ok says
 * whether from -> to is one of the table's transitions: the only ones
 * upstream_req_set_state lets a request make.
 */
#define UPSTREAM_REQ_STATES(X)						\
	X(NEW, "new")							\
	X(QUEUE, "queue")						\
	X(RESOLVE, "resolve")						\
	X(EXCHANGE, "exchange")						\
	X(TOKEN, "token")						\
	X(RETRY, "retry")						\
	X(DELIVER, "deliver")						\
	X(DONE, "done")
#define UPSTREAM_REQ_ENUM(id, name)	UPSTREAM_REQ_##id,
#define UPSTREAM_REQ_NAME(id, name)	name,
enum upstream_req_state {
	UPSTREAM_REQ_STATES(UPSTREAM_REQ_ENUM)
	UPSTREAM_REQ_NSTATES
};
const char *upstream_req_state_str(enum upstream_req_state);
int	upstream_req_transition_ok(enum upstream_req_state from,
	    enum upstream_req_state to);

/* upstream_policy.c: where an upstream may send us (see there). */
#define UPSTREAM_ADDR_CLASSES(X)					\
	X(PUBLIC, "public")						\
	X(LOOPBACK, "loopback")						\
	X(PRIVATE, "private")						\
	X(LINKLOCAL, "link-local")					\
	X(UNSPECIFIED, "unspecified")					\
	X(MULTICAST, "multicast")					\
	X(RESERVED, "reserved")
#define UPSTREAM_ADDR_ENUM(id, name)	UPSTREAM_ADDR_##id,
#define UPSTREAM_ADDR_NAME(id, name)	name,
enum upstream_addr_class {
	UPSTREAM_ADDR_CLASSES(UPSTREAM_ADDR_ENUM)
};
enum upstream_purpose {
	UPSTREAM_PURPOSE_API = 0,	/* manifests, tags, catalog, ... */
	UPSTREAM_PURPOSE_BLOB,		/* may be redirected to a CDN */
	UPSTREAM_PURPOSE_TOKEN,		/* a realm */
};
struct sockaddr;
void	upstream_policy_init(void);
void	upstream_policy_fini(void);
enum upstream_addr_class upstream_addr_class(const struct sockaddr *);
const char *upstream_addr_class_str(enum upstream_addr_class);
/* One of u's configured endpoints (scheme, host and port)? */
int	upstream_url_is_endpoint(const struct upstream *,
	    const struct upstream_url *);
/* Record an address of an endpoint. */
void	upstream_own_addr_add(struct upstream *, const struct sockaddr *);
/* May a connection of purpose p for url go to sa?  1 yes; 0 no, why
 * set. */
int	upstream_addr_allowed(struct upstream *, enum upstream_purpose p,
	    const struct upstream_url *, const struct sockaddr *sa, char *why,
	    size_t whylen);
/* May a realm be used for a challenge from endpoint from?  1 / 0 + why. */
int	upstream_realm_allowed(const struct upstream *,
	    const struct upstream_url *from, const struct upstream_url *realm,
	    char *why, size_t whylen);
/* May a request of purpose p follow a redirect from -> to?  For token
 * requests realm_base is the endpoint that sent the challenge. */
int	upstream_redirect_allowed(const struct upstream *,
	    enum upstream_purpose p, const struct upstream_url *from,
	    const struct upstream_url *to,
	    const struct upstream_url *realm_base, char *why, size_t whylen);
enum upstream_purpose upstream_purpose_of(const char *path,
	    const char *repo);

#endif
