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

struct upstream_token {
	char			*scope;
	char			*value;		/* "Bearer ..." header value */
	time_t			 expires;
	LIST_ENTRY(upstream_token) entry;
};

struct upstream {
	unsigned		 magic;
	const struct config_upstream *cfg;
	struct upstream_url	*urls;
	size_t			 nurls;
	SSL_CTX			*ssl_ctx;
	char			*basic;		/* "Basic ..." or NULL */
	int			 docker_hub;
	pthread_mutex_t		 tok_mtx;
	LIST_HEAD(, upstream_token) tokens;
	int			 wants_basic;	/* saw a Basic challenge */
	/* The last RateLimit-Remaining (-1: never seen) and RateLimit-Reset
	 * (seconds, 0: not sent) the upstream answered; any worker. */
	_Atomic long		 rl_remaining;
	_Atomic long		 rl_reset;
};

/* upstream_conn.c */
struct upstream_conn;
int	upstream_url_parse(const char *s, struct upstream_url *out);
void	upstream_url_fini(struct upstream_url *);
/* Take an idle (or new) connection to url's host; never NULL. */
struct upstream_conn *upstream_conn_get(struct upstream_worker *,
	    struct upstream *, const struct upstream_url *);
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
/* 1 if a token realm on host may be sent the credentials. */
int	 upstream_realm_allowed(const struct upstream *, const char *host,
	    int port);
/* The cached "Bearer x" for scope, malloc'd, or NULL. */
char	*upstream_token_get(struct upstream *, const char *scope);
void	 upstream_token_put(struct upstream *, const char *scope,
	    const char *value, long expires_in);
/* Parse a token service reply; malloc'd token or NULL. */
char	*upstream_token_parse(const char *json, size_t len,
	    long *expires_in);

#endif
