/*
 * upstream_auth.c — the configured upstreams and what they need to be
 * talked to: parsed URLs, the TLS context (verification on unless the
 * config says tls_verify = no), Basic credentials, and the Bearer token
 * cache, keyed by scope and shared by every worker under tok_mtx.
 */
#include "autoconf.h"

#include <stdatomic.h>

#include <arpa/inet.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "common/hash.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/obj.h"
#include "common/xmalloc.h"
#include "upstream/upstream_int.h"

static struct upstream	*upstreams;
static size_t		 nupstreams;
static struct upstream	*upstream_dflt;

static SSL_CTX *
upstream_ssl_ctx_new(const struct config_upstream *cu)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		log_ssl_errors("SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (cu->ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, cu->ca_file,
		    NULL) != 1) {
			log_ssl_errors(cu->ca_file);
			log_warnx("upstream %s: cannot load ca_file %s",
			    cu->name, cu->ca_file);
			SSL_CTX_free(ctx);
			return NULL;
		}
	}
	/* The system store too: CDN redirects carry public certificates. */
	SSL_CTX_set_default_verify_paths(ctx);
	SSL_CTX_set_verify(ctx, cu->tls_verify ? SSL_VERIFY_PEER :
	    SSL_VERIFY_NONE, NULL);
	return ctx;
}

static char *
upstream_basic_new(const char *user, const char *pass)
{
	char		*plain, *out;
	size_t		 len;
	int		 n;

	len = (size_t)xasprintf(&plain, "%s:%s", user, pass);
	out = xmalloc(6 + 4 * ((len + 2) / 3) + 1);
	memcpy(out, "Basic ", 6);
	n = EVP_EncodeBlock((unsigned char *)out + 6,
	    (const unsigned char *)plain, (int)len);
	out[6 + n] = '\0';
	explicit_bzero(plain, len);
	free(plain);
	return out;
}

static void
upstream_basic_free(char *b)
{
	if (b != NULL) {
		explicit_bzero(b, strlen(b));
		free(b);
	}
}

int
upstream_init_all(const struct config *cfg)
{
	const struct config_upstream	*cu;
	struct upstream			*u;
	const char			**names;
	size_t				 i;

	upstream_policy_init();
	nupstreams = cfg->nupstreams;
	upstreams = xcalloc(nupstreams, sizeof(*upstreams));
	names = xcalloc(nupstreams + 1, sizeof(*names));
	for (cu = cfg->upstreams, i = 0; cu != NULL; cu = cu->next, i++)
		names[i] = cu->name;
	metric_upstreams_init(names, nupstreams);
	free(names);
	for (cu = cfg->upstreams, u = upstreams; cu != NULL;
	    cu = cu->next, u++) {
		u->magic = UPSTREAM_MAGIC;
		u->idx = (size_t)(u - upstreams);
		u->cfg = cu;
		u->nurls = cu->nurls;
		u->urls = xcalloc(cu->nurls, sizeof(*u->urls));
		for (i = 0; i < cu->nurls; i++) {
			if (upstream_url_parse(cu->urls[i], &u->urls[i]) != 0) {
				log_warnx("upstream %s: bad url %s", cu->name,
				    cu->urls[i]);
				return -1;
			}
		}
		if ((u->ssl_ctx = upstream_ssl_ctx_new(cu)) == NULL)
			return -1;
		if (cu->username != NULL)
			u->basic = upstream_basic_new(cu->username,
			    cu->password != NULL ? cu->password : "");
		u->docker_hub = strcasecmp(cu->name, "docker.io") == 0 ||
		    strcasecmp(cu->name, "registry-1.docker.io") == 0 ||
		    strcasecmp(cu->name, "index.docker.io") == 0;
		pthread_mutex_init(&u->tok_mtx, NULL);
		atomic_init(&u->rl_remaining, -1);
		atomic_init(&u->rl_reset, 0);
		for (i = 0; i < UPSTREAM_TOKEN_BUCKETS; i++)
			LIST_INIT(&u->tokens[i]);
		if (cu->is_default)
			upstream_dflt = u;
	}
	return 0;
}

static void	upstream_token_drop(struct upstream *, struct upstream_token *);

/* A token's memory, its value wiped first. */
static void
upstream_token_free(struct upstream_token *t)
{
	free(t->scope);
	explicit_bzero(t->value, strlen(t->value));
	free(t->value);
	free(t);
}

void
upstream_fini_all(void)
{
	struct upstream_token	*t, *next;
	size_t			 i, j;

	for (i = 0; i < nupstreams; i++) {
		struct upstream *u = &upstreams[i];

		for (j = 0; j < u->nurls; j++)
			upstream_url_fini(&u->urls[j]);
		free(u->urls);
		SSL_CTX_free(u->ssl_ctx);
		upstream_basic_free(u->basic);
		/* Freed without LIST_REMOVE: the lists go with u. */
		for (j = 0; j < UPSTREAM_TOKEN_BUCKETS; j++)
			for (t = LIST_FIRST(&u->tokens[j]); t != NULL;
			    t = next) {
				next = LIST_NEXT(t, entry);
				upstream_token_free(t);
			}
		pthread_mutex_destroy(&u->tok_mtx);
	}
	free(upstreams);
	upstreams = NULL;
	nupstreams = 0;
	upstream_dflt = NULL;
	upstream_policy_fini();
}

struct upstream *
upstream_find(const char *name)
{
	size_t	i, j;

	for (i = 0; i < nupstreams; i++) {
		const struct config_upstream *cu = upstreams[i].cfg;

		if (strcasecmp(cu->name, name) == 0)
			return &upstreams[i];
		for (j = 0; j < cu->naliases; j++)
			if (strcasecmp(cu->aliases[j], name) == 0)
				return &upstreams[i];
	}
	return NULL;
}

struct upstream *
upstream_default(void)
{
	return upstream_dflt;
}

const char *
upstream_name(const struct upstream *u)
{
	CHECK_OBJ_NOTNULL(u, UPSTREAM_MAGIC);
	return u->cfg->name;
}

size_t
upstream_index(const struct upstream *u)
{
	CHECK_OBJ_NOTNULL(u, UPSTREAM_MAGIC);
	return u->idx;
}

long
upstream_tag_ttl(const struct upstream *u, const char *tag, long dflt)
{
	const struct config_upstream	*cu;
	size_t				 i;

	CHECK_OBJ_NOTNULL(u, UPSTREAM_MAGIC);
	cu = u->cfg;
	for (i = 0; tag != NULL && i < cu->nttl; i++)
		if (fnmatch(cu->ttl_globs[i], tag, 0) == 0)
			return cu->ttl_values[i];
	return cu->tag_ttl >= 0 ? cu->tag_ttl : dflt;
}

long
upstream_stale_if_error(const struct upstream *u)
{
	CHECK_OBJ_NOTNULL(u, UPSTREAM_MAGIC);
	return u->cfg->stale_if_error;
}

long
upstream_negative_ttl(const struct upstream *u)
{
	CHECK_OBJ_NOTNULL(u, UPSTREAM_MAGIC);
	return u->cfg->negative_ttl;
}

int
upstream_is_docker_hub(const struct upstream *u)
{
	CHECK_OBJ_NOTNULL(u, UPSTREAM_MAGIC);
	return u->docker_hub;
}

size_t
upstream_url_pick(struct upstream *u)
{
	time_t	now = time(NULL);
	size_t	i, pick = 0;

	pthread_mutex_lock(&u->tok_mtx);
	for (i = 0; i < u->nurls; i++)
		if (u->urls[i].down_until <= now) {
			pick = i;
			break;
		}
	pthread_mutex_unlock(&u->tok_mtx);
	return pick;
}

void
upstream_url_mark_down(struct upstream *u, size_t idx, int seconds)
{
	if (u->nurls < 2)
		return;		/* nothing to fail over to */
	pthread_mutex_lock(&u->tok_mtx);
	u->urls[idx].down_until = time(NULL) + seconds;
	pthread_mutex_unlock(&u->tok_mtx);
	log_warnx("upstream %s: endpoint %s:%d marked down for %d s",
	    u->cfg->name, u->urls[idx].host, u->urls[idx].port, seconds);
}

static struct upstream_token_list *
upstream_token_bucket(struct upstream *u, const char *scope)
{
	return &u->tokens[hash_str(scope) % UPSTREAM_TOKEN_BUCKETS];
}

/* Under tok_mtx. */
static void
upstream_token_drop(struct upstream *u, struct upstream_token *t)
{
	LIST_REMOVE(t, entry);
	u->ntokens--;
	upstream_token_free(t);
}

/*
 * At the cap, under tok_mtx: the expired go; if none had, the one that
 * expires first (a walk of the table, only when it is full).
 */
static void
upstream_token_make_room(struct upstream *u, time_t now)
{
	struct upstream_token	*t, *next, *soonest = NULL;
	size_t			 i;

	for (i = 0; i < UPSTREAM_TOKEN_BUCKETS; i++)
		for (t = LIST_FIRST(&u->tokens[i]); t != NULL; t = next) {
			next = LIST_NEXT(t, entry);
			if (t->expires <= now)
				upstream_token_drop(u, t);
			else if (soonest == NULL ||
			    t->expires < soonest->expires)
				soonest = t;
		}
	if (u->ntokens >= UPSTREAM_TOKENS_MAX && soonest != NULL)
		upstream_token_drop(u, soonest);
}

/* Tokens are kept until 30 s before they expire. */
char *
upstream_token_get(struct upstream *u, const char *scope)
{
	struct upstream_token	*t;
	char			*v = NULL;
	time_t			 now = time(NULL);

	pthread_mutex_lock(&u->tok_mtx);
	LIST_FOREACH(t, upstream_token_bucket(u, scope), entry)
		if (strcmp(t->scope, scope) == 0)
			break;
	if (t != NULL && t->expires <= now) {
		upstream_token_drop(u, t);
		t = NULL;
	}
	if (t != NULL)
		v = xstrdup(t->value);
	pthread_mutex_unlock(&u->tok_mtx);
	return v;
}

void
upstream_token_put(struct upstream *u, const char *scope, const char *value,
    long expires_in, unsigned gen)
{
	struct upstream_token	*t;
	time_t			 now = time(NULL);

	if (expires_in < 60)
		expires_in = 60;	/* the spec's minimum lifetime */
	if (expires_in > UPSTREAM_TOKEN_TTL_MAX)
		expires_in = UPSTREAM_TOKEN_TTL_MAX;
	pthread_mutex_lock(&u->tok_mtx);
	if (gen != u->cred_gen) {
		/* Got with credentials a SIGHUP has replaced since. */
		pthread_mutex_unlock(&u->tok_mtx);
		return;
	}
	LIST_FOREACH(t, upstream_token_bucket(u, scope), entry)
		if (strcmp(t->scope, scope) == 0)
			break;
	if (t == NULL) {
		if (u->ntokens >= UPSTREAM_TOKENS_MAX)
			upstream_token_make_room(u, now);
		t = xcalloc(1, sizeof(*t));
		t->scope = xstrdup(scope);
		LIST_INSERT_HEAD(upstream_token_bucket(u, scope), t, entry);
		u->ntokens++;
	} else
		free(t->value);
	t->value = xstrdup(value);
	/* A margin: a long upload must not meet the expiry mid-body. */
	t->expires = now + expires_in - 30;
	pthread_mutex_unlock(&u->tok_mtx);
}

char *
upstream_token_parse(const char *json, size_t len, long *expires_in)
{
	json_t		*root, *tok, *exp;
	json_error_t	 jerr;
	char		*out = NULL;

	*expires_in = 60;
	if ((root = json_loadb(json, len, 0, &jerr)) == NULL)
		return NULL;
	if (!json_is_object(root))
		goto done;
	tok = json_object_get(root, "token");
	if (!json_is_string(tok) || json_string_length(tok) == 0)
		tok = json_object_get(root, "access_token");
	if (!json_is_string(tok) || json_string_length(tok) == 0 ||
	    json_string_length(tok) > UPSTREAM_TOKEN_LEN_MAX)
		goto done;
	/* A token is a header value: refuse CR, LF and other controls. */
	for (const char *p = json_string_value(tok); *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			goto done;
	exp = json_object_get(root, "expires_in");
	if (json_is_integer(exp) && json_integer_value(exp) > 0 &&
	    json_integer_value(exp) < 86400 * 365)
		*expires_in = (long)json_integer_value(exp);
	xasprintf(&out, "Bearer %s", json_string_value(tok));
done:
	json_decref(root);
	return out;
}

long
upstream_rate_remaining(const struct upstream *u, long *reset)
{
	CHECK_OBJ_NOTNULL(u, UPSTREAM_MAGIC);
	if (reset != NULL)
		*reset = atomic_load(&u->rl_reset);
	return atomic_load(&u->rl_remaining);
}

void
upstream_rate_forget(struct upstream *u)
{
	CHECK_OBJ_NOTNULL(u, UPSTREAM_MAGIC);
	atomic_store(&u->rl_remaining, -1);
	atomic_store(&u->rl_reset, 0);
}

/*
 * Resolved as a redirect is, against the first endpoint (only the path
 * is kept, so any would do) at base; the result must name one of u's
 * endpoints.  A reference like "//other.host/x" is another host, not a
 * path, and a path with bytes a request line cannot carry is refused.
 */
int
upstream_location_path(const struct upstream *u, const char *loc,
    const char *base, char **out)
{
	struct upstream_url	 from, url;
	size_t			 i;
	int			 rc, ours = 0;

	CHECK_OBJ_NOTNULL(u, UPSTREAM_MAGIC);
	*out = NULL;
	if (loc == NULL || *loc == '\0' || base[0] != '/' || u->nurls == 0)
		return -1;
	from = u->urls[0];
	from.pathq = xstrdup(base);
	rc = upstream_url_resolve(&from, loc, &url);
	free(from.pathq);
	if (rc != 0)
		return -1;
	for (i = 0; i < u->nurls && !ours; i++)
		ours = url.tls == u->urls[i].tls && url.port ==
		    u->urls[i].port && strcasecmp(url.host,
		    u->urls[i].host) == 0;
	if (ours)
		*out = xstrdup(url.pathq);
	upstream_url_fini(&url);
	return ours ? 0 : -1;
}

char *
upstream_basic_dup(struct upstream *u, unsigned *gen)
{
	char	*v;

	pthread_mutex_lock(&u->tok_mtx);
	v = u->basic != NULL ? xstrdup(u->basic) : NULL;
	if (gen != NULL)
		*gen = u->cred_gen;
	pthread_mutex_unlock(&u->tok_mtx);
	return v;
}

int
upstream_has_basic(struct upstream *u)
{
	int	has;

	pthread_mutex_lock(&u->tok_mtx);
	has = u->basic != NULL;
	pthread_mutex_unlock(&u->tok_mtx);
	return has;
}

int
upstream_credentials_set(const char *name, const char *user,
    const char *password)
{
	struct upstream_token	*t, *next;
	struct upstream		*u;
	char			*b, *old;
	size_t			 i;

	if ((u = upstream_find(name)) == NULL)
		return -1;
	b = user != NULL ? upstream_basic_new(user, password != NULL ?
	    password : "") : NULL;
	pthread_mutex_lock(&u->tok_mtx);
	if (b == NULL ? u->basic == NULL : u->basic != NULL &&
	    strcmp(b, u->basic) == 0) {
		pthread_mutex_unlock(&u->tok_mtx);
		upstream_basic_free(b);
		return 0;
	}
	old = u->basic;
	u->basic = b;
	u->cred_gen++;
	/* Tokens the old credentials got may grant what the new ones do
	 * not (or be why they were changed). */
	for (i = 0; i < UPSTREAM_TOKEN_BUCKETS; i++)
		for (t = LIST_FIRST(&u->tokens[i]); t != NULL; t = next) {
			next = LIST_NEXT(t, entry);
			upstream_token_drop(u, t);
		}
	pthread_mutex_unlock(&u->tok_mtx);
	upstream_basic_free(old);
	return 1;
}
