/*
 * proxy_access.c — access control on each registry request, and the
 * mirror's own token service ([auth] token_path), over access/.
 *
 * A routed request passes proxy_access_check() before it is served:
 *
 *	1. Who: the mirror's own jobs (X-Regmirror-Job) pass untouched;
 *	   "Authorization: Bearer T" with a token this mirror issued;
 *	   "Authorization: Basic" checked against htpasswd (bcrypt, on a
 *	   login thread, never on the worker's loop; a good password is
 *	   remembered for login_cache_ttl); otherwise anonymous.
 *	2. What the rules say for (upstream, repository, pull), or for the
 *	   catalog; a token must also grant that scope itself.
 *	3. Allowed: served.  Denied and anonymous: 401 UNAUTHORIZED with a
 *	   Bearer challenge for the scope.  Denied and authenticated: 403
 *	   DENIED.  Credentials that do not verify, where the anonymous
 *	   answer would be allowed, are treated as anonymous (dockerd sends
 *	   its Docker Hub login to mirrors), logged, and counted as a
 *	   failed login when htpasswd has that user (a guess at a real
 *	   login: the answer, e.g. a token's sub, tells a right password
 *	   from a wrong one); where anonymous would not be allowed, they
 *	   count as a failed login.  After max_login_failures in a window
 *	   the address's passwords are not checked at all: what anonymous
 *	   may do is served as anonymous, the rest gets 429 with
 *	   Retry-After.
 *
 * The token service answers GET token_path?service=&scope=... with a
 * token granting what was asked for and the rules allow, for the Basic
 * user or anonymous, as {token, access_token, expires_in, issued_at}.
 * Scope names are what the client sees (its path after /v2/); they are
 * routed like a request (with the realm's ns, when the challenge gave
 * one) to the upstream's names the rules and the token speak of.
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "access/access.h"
#include "common/cidr.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/obj.h"
#include "common/rbuf.h"
#include "common/text.h"
#include "common/xmalloc.h"
#include "proxy/proxy_int.h"
#include "upstream/upstream.h"

#define PROXY_LOGIN_THREADS	2
#define PROXY_LOGIN_QUEUE	1024	/* checks waiting; more: 503 */
#define PROXY_LOGIN_MAGIC	0x6c6f6731
#define PROXY_XFF_MAX		8192	/* bytes of X-Forwarded-For read */
#define PROXY_LOGIN_RETRY	5	/* Retry-After: logins under way */

/* One bcrypt check, queued for a login thread, answered on pr's loop. */
struct proxy_login {
	unsigned			 magic;
	struct proxy_req		*pr;
	char				 user[ACCESS_USER_MAX + 1];
	char				*password;
	int				 good;
	char				 client[64];	/* pr->client */
	unsigned char			 key[32];	/* reserved as */
	int				 reserved;
	struct event			*ev;
	void				(*then)(struct proxy_req *, int);
	TAILQ_ENTRY(proxy_login)	 entry;		/* proxy_logins */
	TAILQ_ENTRY(proxy_login)	 all;		/* proxy_logins_all */
};

static pthread_mutex_t		 proxy_login_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t		 proxy_login_cv = PTHREAD_COND_INITIALIZER;
static TAILQ_HEAD(, proxy_login) proxy_logins =
    TAILQ_HEAD_INITIALIZER(proxy_logins);
/* Every login not yet answered: queued, being checked, or checked and
 * waiting for its loop (so that a stop can free them all). */
static TAILQ_HEAD(, proxy_login) proxy_logins_all =
    TAILQ_HEAD_INITIALIZER(proxy_logins_all);
static size_t			 proxy_nlogins;
static int			 proxy_login_stop;
static pthread_t		 proxy_login_threads[PROXY_LOGIN_THREADS];
static int			 proxy_login_started;
static const struct config	*proxy_access_cfg;

/*
 * Decisions by rule, for /metrics: one pair of counters for "-" (no
 * rule: the default), then one per [access] rule in file order.  A
 * reload appends the rules it brings that have none yet (a counter never
 * goes away: Prometheus counters only grow), so readers on any thread
 * walk the list without a lock: a node is complete before it is linked.
 */
struct proxy_access_counts {
	const char			*rule;	/* access_rule_names' */
	_Atomic uint64_t		 allowed, denied;
	struct proxy_access_counts	*_Atomic next;
};
static struct proxy_access_counts	*_Atomic proxy_counts;

static void
proxy_access_count(const char *rule, int allowed)
{
	struct proxy_access_counts	*c;

	for (c = atomic_load(&proxy_counts); c != NULL;
	    c = atomic_load(&c->next))
		if (c->rule == rule || strcmp(c->rule, rule) == 0) {
			atomic_fetch_add_explicit(allowed ? &c->allowed :
			    &c->denied, 1, memory_order_relaxed);
			return;
		}
}

/* A counter for rule, at the end, if it has none (main thread). */
static void
proxy_access_counts_add(const char *rule, void *arg)
{
	struct proxy_access_counts	*c, *_Atomic *tail = &proxy_counts;

	(void)arg;
	for (; (c = atomic_load(tail)) != NULL; tail = &c->next)
		if (strcmp(c->rule, rule) == 0)
			return;
	c = xcalloc(1, sizeof(*c));
	c->rule = rule;
	atomic_store(tail, c);
}

void
proxy_access_metrics(struct evbuffer *b)
{
	struct proxy_access_counts	*c;
	char				 name[512];

	if ((c = atomic_load(&proxy_counts)) == NULL)
		return;
	evbuffer_add_printf(b, "# HELP regmirror_access_decisions_total "
	    "Registry requests allowed and denied, by the [access] rule that "
	    "decided (- : none, the default)\n"
	    "# TYPE regmirror_access_decisions_total counter\n");
	for (; c != NULL; c = atomic_load(&c->next)) {
		/* A rule's name is the operator's: any byte but a quote. */
		metrics_label_escape(name, sizeof(name), c->rule);
		evbuffer_add_printf(b, "regmirror_access_decisions_total"
		    "{rule=\"%s\",decision=\"allowed\"} %llu\n"
		    "regmirror_access_decisions_total"
		    "{rule=\"%s\",decision=\"denied\"} %llu\n",
		    name, (unsigned long long)atomic_load(&c->allowed),
		    name, (unsigned long long)atomic_load(&c->denied));
	}
}

static void *
proxy_login_main(void *arg)
{
	struct proxy_login	*l;

	(void)arg;
	pthread_mutex_lock(&proxy_login_mtx);
	for (;;) {
		while (!proxy_login_stop && TAILQ_EMPTY(&proxy_logins))
			pthread_cond_wait(&proxy_login_cv, &proxy_login_mtx);
		if (proxy_login_stop)
			break;
		l = TAILQ_FIRST(&proxy_logins);
		TAILQ_REMOVE(&proxy_logins, l, entry);
		proxy_nlogins--;
		pthread_mutex_unlock(&proxy_login_mtx);
		l->good = access_password_check(l->user, l->password);
		event_active(l->ev, EV_TIMEOUT, 0);
		pthread_mutex_lock(&proxy_login_mtx);
	}
	pthread_mutex_unlock(&proxy_login_mtx);
	return NULL;
}

int
proxy_access_init(const struct config *cfg)
{
	char				 err[512];
	int				 i;

	proxy_access_cfg = cfg;
	if (access_init(cfg, err, sizeof(err)) != 0) {
		log_warnx("%s", err);
		return -1;
	}
	if (access_enabled()) {
		proxy_access_counts_add("-", NULL);
		access_rule_names(proxy_access_counts_add, NULL);
	}
	if (!access_enabled() || cfg->htpasswd == NULL)
		return 0;
	for (i = 0; i < PROXY_LOGIN_THREADS; i++)
		if (pthread_create(&proxy_login_threads[i], NULL,
		    proxy_login_main, NULL) != 0)
			fatal("pthread_create");
	proxy_login_started = 1;
	return 0;
}

/*
 * After the worker loops stopped and before they are freed: the login
 * threads are joined (a check under way finishes, its event_active on a
 * loop still there) and every login not answered is dropped.
 */
void
proxy_access_stop(void)
{
	struct proxy_login	*l;
	int			 i;

	if (proxy_login_started) {
		pthread_mutex_lock(&proxy_login_mtx);
		proxy_login_stop = 1;
		pthread_cond_broadcast(&proxy_login_cv);
		pthread_mutex_unlock(&proxy_login_mtx);
		for (i = 0; i < PROXY_LOGIN_THREADS; i++)
			pthread_join(proxy_login_threads[i], NULL);
		proxy_login_started = 0;
	}
	TAILQ_INIT(&proxy_logins);
	while ((l = TAILQ_FIRST(&proxy_logins_all)) != NULL) {
		TAILQ_REMOVE(&proxy_logins_all, l, all);
		access_login_release(l->client, l->key, l->reserved);
		event_free(l->ev);
		explicit_bzero(l->password, strlen(l->password));
		free(l->password);
		free(l);
	}
}

void
proxy_access_fini(void)
{
	struct proxy_access_counts	*c;

	proxy_access_stop();
	while ((c = atomic_load(&proxy_counts)) != NULL) {
		atomic_store(&proxy_counts, atomic_load(&c->next));
		free(c);
	}
	access_fini();
}

int
proxy_access_rules_reload(struct config_access *list, size_t n)
{
	if (!access_enabled()) {
		config_access_list_free(list);
		return 0;
	}
	return access_rules_reload(list, n, proxy_access_counts_add, NULL);
}

int
proxy_access_reload(void)
{
	char	err[512];

	if (proxy_access_cfg == NULL || !access_enabled() ||
	    proxy_access_cfg->htpasswd == NULL)
		return 0;
	if (access_reload(proxy_access_cfg, err, sizeof(err)) != 0) {
		log_warnx("SIGHUP: %s; keeping the old users", err);
		return -1;
	}
	log_info("SIGHUP: reloaded %s", proxy_access_cfg->htpasswd);
	return 0;
}

static void
proxy_login_done_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct proxy_login	*l = arg;

	(void)fd;
	(void)ev;
	CHECK_OBJ_NOTNULL(l, PROXY_LOGIN_MAGIC);
	pthread_mutex_lock(&proxy_login_mtx);
	TAILQ_REMOVE(&proxy_logins_all, l, all);
	pthread_mutex_unlock(&proxy_login_mtx);
	explicit_bzero(l->password, strlen(l->password));
	free(l->password);
	event_free(l->ev);
	snprintf(l->pr->user, sizeof(l->pr->user), "%s", l->user);
	l->then(l->pr, l->good);
	/*
	 * Released only now that then() has counted a failure: released
	 * first, another worker's guess from the address found one fewer
	 * in flight and none more failed, and was checked too (20 parallel
	 * guesses, 4 checked for max_login_failures = 3, once each
	 * worker had its own listening socket).
	 */
	access_login_release(l->client, l->key, l->reserved);
	l->magic = 0;
	free(l);
}

/*
 * Check (user, password): at once when remembered, else on a login
 * thread; then(pr, good) runs on pr's loop, with pr->user the name tried
 * (a bad one's to be cleared by then).  -1: the queue is full; -2: not
 * checked, as if the address were blocked (access_login_reserve).
 */
static int
proxy_login(struct proxy_req *pr, const char *user, const char *password,
    void (*then)(struct proxy_req *, int))
{
	struct proxy_login	*l;
	unsigned char		 key[32];
	int			 reserved;

	if (!proxy_login_started) {	/* no htpasswd: no one logs in */
		snprintf(pr->user, sizeof(pr->user), "%s", user);
		then(pr, 0);
		return 0;
	}
	/* Guesses sent in parallel count before their answers: past the
	 * limit (failures plus distinct logins under way), no check, not
	 * even a remembered one (a guess must not learn it was right). */
	if (access_login_reserve(pr->client, user, password, key,
	    &reserved) != 0)
		return -2;
	if (access_password_cached(user, password)) {
		access_login_release(pr->client, key, reserved);
		snprintf(pr->user, sizeof(pr->user), "%s", user);
		then(pr, 1);
		return 0;
	}
	pthread_mutex_lock(&proxy_login_mtx);
	if (proxy_nlogins >= PROXY_LOGIN_QUEUE) {
		pthread_mutex_unlock(&proxy_login_mtx);
		access_login_release(pr->client, key, reserved);
		return -1;
	}
	l = xcalloc(1, sizeof(*l));
	l->magic = PROXY_LOGIN_MAGIC;
	snprintf(l->client, sizeof(l->client), "%s", pr->client);
	memcpy(l->key, key, sizeof(l->key));
	l->reserved = reserved;
	l->pr = pr;
	snprintf(l->user, sizeof(l->user), "%s", user);
	l->password = xstrdup(password);
	l->then = then;
	l->ev = event_new(pr->w->base, -1, 0, proxy_login_done_cb, l);
	AN(l->ev != NULL);
	TAILQ_INSERT_TAIL(&proxy_logins, l, entry);
	TAILQ_INSERT_TAIL(&proxy_logins_all, l, all);
	proxy_nlogins++;
	pthread_cond_signal(&proxy_login_cv);
	pthread_mutex_unlock(&proxy_login_mtx);
	return 0;
}

/* ---- challenges ---------------------------------------------------- */

/* A Host header fit to be put in a URL and a quoted header value. */
static int
proxy_host_ok(const char *h)
{
	size_t	i, len = strlen(h);

	if (len == 0 || len > 255)
		return 0;
	for (i = 0; i < len; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') ||
		    (h[i] >= 'A' && h[i] <= 'Z') ||
		    (h[i] >= '0' && h[i] <= '9') || h[i] == '.' ||
		    h[i] == '-' || h[i] == ':' || h[i] == '[' || h[i] == ']'))
			return 0;
	return 1;
}

/*
 * What the client calls the repository (its path after /v2/, up to the
 * kind) and the ns its token request must carry when the route used one
 * (the ns query, or a prefix before /v2): into name and ns ("" if none).
 */
static void
proxy_client_name(const struct proxy_req *pr, char *name, size_t nlen,
    char *ns, size_t nslen)
{
	const char	*u = pr->uri, *v2, *end, *q;
	static const char *const kinds[] = { "/manifests/", "/blobs/",
	    "/tags/list", "/referrers/" };
	size_t		 i;

	name[0] = ns[0] = '\0';
	if ((v2 = strstr(u, "/v2/")) == NULL)
		return;
	if (v2 != u)
		snprintf(ns, nslen, "%.*s", (int)(v2 - u - 1), u + 1);
	/* The last ns= wins, as in the router. */
	for (q = strstr(u, "ns="); q != NULL; q = strstr(q + 3, "ns="))
		if (q[-1] == '?' || q[-1] == '&')
			snprintf(ns, nslen, "%.*s", (int)strcspn(q + 3, "&"),
			    q + 3);
	v2 += 4;
	for (end = NULL, i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const char *k = strstr(v2, kinds[i]), *last = NULL;

		while (k != NULL) {
			last = k;
			k = strstr(k + 1, kinds[i]);
		}
		if (last != NULL && (end == NULL || last > end))
			end = last;
	}
	if (end != NULL)
		snprintf(name, nlen, "%.*s", (int)(end - v2), v2);
}

/* 401 with the Bearer challenge for what pr asked. */
static void
proxy_challenge(struct proxy_req *pr)
{
	const struct config	*cf = proxy_access_cfg;
	struct evkeyvalq	*out;
	const char		*host;
	char			 realm[700], name[512], ns[300], hdr[1400];
	char			 scope[600];

	out = evhttp_request_get_output_headers(pr->req);
	host = evhttp_find_header(evhttp_request_get_input_headers(pr->req),
	    "Host");
	proxy_client_name(pr, name, sizeof(name), ns, sizeof(ns));
	if (cf->token_realm != NULL)
		snprintf(realm, sizeof(realm), "%s", cf->token_realm);
	else
		snprintf(realm, sizeof(realm), "%s://%s%s", pr->tls ? "https" :
		    "http", host != NULL && proxy_host_ok(host) ? host :
		    "localhost", cf->token_path);
	if (ns[0] != '\0' && proxy_host_ok(ns))
		snprintf(realm + strlen(realm), sizeof(realm) - strlen(realm),
		    "%sns=%s", strchr(realm, '?') != NULL ? "&" : "?", ns);
	scope[0] = '\0';
	if (pr->kind == PROXY_KIND_CATALOG)
		snprintf(scope, sizeof(scope), ",scope=\"registry:catalog:*\"");
	else if (pr->kind != PROXY_KIND_BASE && name[0] != '\0' &&
	    strpbrk(name, "\"\\ ,") == NULL)
		snprintf(scope, sizeof(scope), ",scope=\"repository:%s:pull\"",
		    name);
	if (strcmp(cf->challenge, "basic") == 0)
		snprintf(hdr, sizeof(hdr), "Basic realm=\"regmirror\"");
	else
		snprintf(hdr, sizeof(hdr), "Bearer realm=\"%s\","
		    "service=\"%s\"%s", realm, cf->token_service, scope);
	evhttp_add_header(out, "WWW-Authenticate", hdr);
	proxy_error(pr, 401, "UNAUTHORIZED", "authentication required");
}

/* ---- the decision -------------------------------------------------- */

static unsigned
proxy_want(const struct proxy_req *pr)
{
	return pr->kind == PROXY_KIND_CATALOG ? ACCESS_WANT_CATALOG :
	    ACCESS_WANT_PULL;
}

/* The rules' answer for pr as who; the base /v2/ asks for nothing. */
static int
proxy_access_allowed(struct proxy_req *pr, const struct access_who *w)
{
	struct access_decision	d;

	/* /v2/ without credentials is a 401: clients (containers/image)
	 * learn from it that the registry wants a token, as Docker Hub's
	 * does; any token of ours, even an anonymous one, passes. */
	if (pr->kind == PROXY_KIND_BASE) {
		pr->rule = "-";
		return w->how != ACCESS_ANONYMOUS;
	}
	access_decide(w, upstream_name(pr->up), pr->kind ==
	    PROXY_KIND_CATALOG ? NULL : pr->repo, proxy_want(pr), &d);
	pr->rule = d.rule;
	return d.allowed;
}

/* Serve, or say why not; counts and the log line know which rule. */
static void
proxy_access_end(struct proxy_req *pr, int allowed, int authenticated)
{
	proxy_access_count(pr->rule, allowed);
	if (allowed) {
		pr->access_ok(pr);
		return;
	}
	if (!authenticated) {
		proxy_challenge(pr);
		return;
	}
	proxy_error(pr, 403, "DENIED", "%s may not %s this", pr->user,
	    pr->kind == PROXY_KIND_CATALOG ? "list" : "pull");
}

/*
 * A password for pr->user that did not verify, where anonymous is
 * enough: logged (the address only), counted when htpasswd has the user
 * (else guesses at a real user's password would be free; a name it does
 * not have, as dockerd's Docker Hub login usually is, blocks nobody),
 * and forgotten.
 */
static void
proxy_login_ignored(struct proxy_req *pr, const char *where)
{
	if (access_user_known(pr->user))
		access_login_failed(pr->client);
	log_info("r%llu %s: failed login%s: anonymous",
	    (unsigned long long)pr->id, pr->client, where);
	pr->user[0] = '\0';
}

/* A Basic login failed: anonymous if that is enough, else 401. */
static void
proxy_access_bad_login(struct proxy_req *pr)
{
	struct access_who	w = { ACCESS_ANONYMOUS, "", pr->client };

	if (proxy_access_allowed(pr, &w)) {
		proxy_login_ignored(pr, "");
		proxy_access_end(pr, 1, 0);
		return;
	}
	pr->user[0] = '\0';
	access_login_failed(pr->client);
	log_info("r%llu %s: failed login", (unsigned long long)pr->id,
	    pr->client);
	proxy_access_end(pr, 0, 0);
}

static void
proxy_access_login_cb(struct proxy_req *pr, int good)
{
	struct access_who	w = { ACCESS_PASSWORD, "", pr->client };

	if (!good) {
		proxy_access_bad_login(pr);
		return;
	}
	pr->how = ACCESS_PASSWORD;
	snprintf(w.user, sizeof(w.user), "%s", pr->user);
	proxy_access_end(pr, proxy_access_allowed(pr, &w), 1);
}

/* A token that does not verify: anonymous if enough, else 401. */
static void
proxy_access_bad_token(struct proxy_req *pr)
{
	struct access_who	w = { ACCESS_ANONYMOUS, "", pr->client };

	pr->user[0] = '\0';
	proxy_access_end(pr, proxy_access_allowed(pr, &w), 0);
}

/*
 * A token of ours: the rules, as its user, and the token's own scope.
 * The rules say no to a user: 403.  The token lacks a scope the rules
 * would grant (or is anonymous): a challenge, for a token that has it.
 */
static void
proxy_access_bearer(struct proxy_req *pr, const char *token)
{
	struct access_token	t;
	struct access_who	w = { ACCESS_TOKEN, "", pr->client };
	int			rules, scoped;

	if (access_token_verify(token, time(NULL), &t) != 0) {
		proxy_access_bad_token(pr);
		return;
	}
	if (t.user[0] == '\0')
		w.how = ACCESS_ANONYMOUS;
	pr->how = (int)w.how;
	snprintf(w.user, sizeof(w.user), "%s", t.user);
	snprintf(pr->user, sizeof(pr->user), "%s", t.user);
	rules = pr->kind == PROXY_KIND_BASE || proxy_access_allowed(pr, &w);
	scoped = pr->kind == PROXY_KIND_BASE || access_token_grants(&t,
	    upstream_name(pr->up), pr->repo, proxy_want(pr));
	access_token_free(&t);
	if (rules && !scoped) {
		proxy_access_count(pr->rule, 0);
		proxy_challenge(pr);
		return;
	}
	proxy_access_end(pr, rules, w.how != ACCESS_ANONYMOUS);
}

static int
proxy_trusted(const char *addr)
{
	const struct config	*cf = proxy_access_cfg;
	struct cidr		 c;
	size_t			 i;

	for (i = 0; i < cf->ntrusted_proxies; i++)
		if (cidr_parse(cf->trusted_proxies[i], &c) == 0 &&
		    cidr_match_str(&c, addr))
			return 1;
	return 0;
}

/*
 * The client's address: the peer, or behind [server] trusted_proxies the
 * rightmost X-Forwarded-For address that is not itself a trusted proxy
 * (each proxy appends the address it saw; only trusted ones' word counts).
 */
/* One X-Forwarded-For entry, trimmed, a port cut off: an address, or 0. */
static int
proxy_xff_entry(const char *p, size_t len, char *out, size_t outlen)
{
	struct cidr	 c;
	const char	*colon;

	while (len > 0 && (*p == ' ' || *p == '\t'))
		p++, len--;
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (len > 0 && *p == '[') {		/* [v6] or [v6]:port */
		if ((colon = memchr(p, ']', len)) == NULL)
			return 0;
		p++;
		len = (size_t)(colon - p);
	} else if ((colon = memchr(p, ':', len)) != NULL &&
	    memchr(colon + 1, ':', len - (size_t)(colon - p) - 1) == NULL)
		len = (size_t)(colon - p);	/* v4:port */
	if (len == 0 || len >= outlen)
		return 0;
	memcpy(out, p, len);
	out[len] = '\0';
	return cidr_parse(out, &c) == 0;
}

/*
 * The client's address: the peer, or behind [server] trusted_proxies the
 * rightmost X-Forwarded-For address that is not itself a trusted proxy
 * (each proxy appends the address it saw; only trusted ones' word counts).
 * Every X-Forwarded-For line counts, in order, and all of the list: what
 * a proxy appended is at its end.  A list too long, or an entry that is
 * not an address where the walk needs one: "unknown", which no from
 * rule matches.
 */
static void
proxy_client_addr(struct proxy_req *pr)
{
	const struct config	*cf = proxy_access_cfg;
	struct evkeyval		*kv;
	struct evbuffer		*b;
	char			*list, *end, *comma, addr[64];
	size_t			 len;

	text_copy(pr->client, sizeof(pr->client), pr->peer);
	if (cf == NULL || cf->ntrusted_proxies == 0 ||
	    !proxy_trusted(pr->client))
		return;
	b = evbuffer_new();
	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(pr->req), next)
		if (strcasecmp(kv->key, "X-Forwarded-For") == 0)
			evbuffer_add_printf(b, "%s%s", evbuffer_get_length(b) >
			    0 ? "," : "", kv->value);
	len = evbuffer_get_length(b);
	if (len == 0) {
		evbuffer_free(b);
		return;
	}
	if (len > PROXY_XFF_MAX) {
		evbuffer_free(b);
		snprintf(pr->client, sizeof(pr->client), "unknown");
		return;
	}
	list = xstrndup((char *)evbuffer_pullup(b, -1), len);
	evbuffer_free(b);
	end = list + strlen(list);
	while (proxy_trusted(pr->client)) {
		if (end == list)	/* all trusted: the first one is it */
			break;
		for (comma = end; comma > list && comma[-1] != ','; comma--)
			;
		if (!proxy_xff_entry(comma, (size_t)(end - comma), addr,
		    sizeof(addr))) {
			snprintf(pr->client, sizeof(pr->client), "unknown");
			break;
		}
		snprintf(pr->client, sizeof(pr->client), "%s", addr);
		end = comma > list ? comma - 1 : list;
	}
	free(list);
}

/*
 * A client certificate that verified against [auth] client_ca names the
 * user: its subject's CN, if it is a name [access] users could give.
 * 1 and pr->user set, or 0.
 */
static int
proxy_cert_user(struct proxy_req *pr)
{
	struct evhttp_connection	*evcon;
	struct bufferevent		*bev;
	SSL				*ssl;
	X509				*x;
	char				 cn[ACCESS_USER_MAX + 2];
	int				 n, i;

	if (!pr->tls || proxy_access_cfg->client_ca == NULL ||
	    (evcon = evhttp_request_get_connection(pr->req)) == NULL ||
	    (bev = evhttp_connection_get_bufferevent(evcon)) == NULL ||
	    (ssl = bufferevent_openssl_get_ssl(bev)) == NULL ||
	    (x = SSL_get1_peer_certificate(ssl)) == NULL)
		return 0;
	n = SSL_get_verify_result(ssl) == X509_V_OK ?
	    X509_NAME_get_text_by_NID(X509_get_subject_name(x),
	    NID_commonName, cn, sizeof(cn)) : -1;
	X509_free(x);
	if (n <= 0 || n > ACCESS_USER_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((cn[i] >= 'a' && cn[i] <= 'z') ||
		    (cn[i] >= 'A' && cn[i] <= 'Z') ||
		    (cn[i] >= '0' && cn[i] <= '9') || cn[i] == '.' ||
		    cn[i] == '_' || cn[i] == '-' || cn[i] == '@'))
			return 0;
	memcpy(pr->user, cn, (size_t)n);
	pr->user[n] = '\0';
	pr->how = ACCESS_CERT;
	pr->user_how = "cert:";
	return 1;
}

void
proxy_access_check(struct proxy_req *pr, void (*ok)(struct proxy_req *))
{
	struct access_who	 w = { ACCESS_ANONYMOUS, "", NULL };
	const char		*h;
	char			 user[ACCESS_USER_MAX + 1], *password;
	long			 retry;
	int			 rc;

	proxy_client_addr(pr);
	pr->access_ok = ok;
	pr->rule = "-";
	if (!access_enabled() || proxy_req_is_job(pr)) {
		ok(pr);
		return;
	}
	w.addr = pr->client;
	/* A verified client certificate is who the client is. */
	if (proxy_cert_user(pr)) {
		w.how = ACCESS_CERT;
		snprintf(w.user, sizeof(w.user), "%s", pr->user);
		proxy_access_end(pr, proxy_access_allowed(pr, &w), 1);
		return;
	}
	h = evhttp_find_header(evhttp_request_get_input_headers(pr->req),
	    "Authorization");
	if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0) {
		proxy_access_bearer(pr, h + 7);
		return;
	}
	if (h != NULL && access_basic_parse(h, user, sizeof(user),
	    &password) == 0) {
		rc = access_login_blocked(pr->client, &retry) ? -2 :
		    proxy_login(pr, user, password, proxy_access_login_cb);
		if (rc == -2) {
			char	ra[32];

			if (retry <= 0)
				retry = PROXY_LOGIN_RETRY;
			explicit_bzero(password, strlen(password));
			free(password);
			/* Not checked: anonymous if that is enough. */
			if (proxy_access_allowed(pr, &w)) {
				proxy_access_end(pr, 1, 0);
				return;
			}
			pr->rule = "-";
			snprintf(ra, sizeof(ra), "%ld", retry);
			evhttp_add_header(evhttp_request_get_output_headers(
			    pr->req), "Retry-After", ra);
			proxy_error(pr, 429, "TOOMANYREQUESTS", "too many "
			    "failed logins from this address");
			return;
		}
		if (rc == -1)
			proxy_error(pr, 503, "UNAVAILABLE", "too many logins "
			    "being checked");
		explicit_bzero(password, strlen(password));
		free(password);
		return;
	}
	/* No credentials, or ones the mirror cannot read: anonymous. */
	proxy_access_end(pr, proxy_access_allowed(pr, &w), 0);
}

/* ---- the token service --------------------------------------------- */

/*
 * One requested scope into a grant, if the rules allow it for w:
 * "repository:NAME:pull[,...]" (NAME routed with ns like a request) or
 * "registry:catalog:*".  0 nothing granted, 1 a grant in g, 2 catalog.
 */
static int
proxy_token_scope(const char *scope, const char *ns,
    const struct access_who *w, struct access_grant *g)
{
	struct proxy_route	 rt;
	struct proxy_route_err	 err;
	struct access_decision	 d;
	const char		*c1, *c2;
	char			*uri, *name;
	int			 rc = 0, catalog;

	if ((c1 = strchr(scope, ':')) == NULL ||
	    (c2 = strrchr(scope, ':')) == c1)
		return 0;
	catalog = strncmp(scope, "registry:", 9) == 0 &&
	    strncmp(c1 + 1, "catalog:", 8) == 0;
	if (!catalog && (strncmp(scope, "repository:", 11) != 0 ||
	    (strstr(c2 + 1, "pull") == NULL && strcmp(c2 + 1, "*") != 0)))
		return 0;
	name = xstrndup(c1 + 1, (size_t)(c2 - c1 - 1));
	xasprintf(&uri, "/v2/%s%s%s%s", catalog ? "_catalog" : name,
	    catalog ? "" : "/manifests/x", ns != NULL ? "?ns=" : "",
	    ns != NULL ? ns : "");
	free(name);
	if (proxy_oci_route(uri, &rt, &err) == 0 && rt.up != NULL) {
		access_decide(w, upstream_name(rt.up), catalog ? NULL :
		    rt.repo, catalog ? ACCESS_WANT_CATALOG : ACCESS_WANT_PULL,
		    &d);
		if (d.allowed && catalog)
			rc = 2;
		else if (d.allowed) {
			g->upstream = xstrdup(upstream_name(rt.up));
			g->repo = xstrdup(rt.repo);
			rc = 1;
		}
	}
	proxy_route_fini(&rt);
	free(uri);
	return rc;
}

/* Issue what the query asks for, for w; the number of scopes granted. */
static size_t
proxy_token_issue(struct proxy_req *pr, const struct access_who *w,
    int reply)
{
	struct evkeyvalq	 q;
	struct evkeyval		*kv;
	struct access_grant	 g[ACCESS_SCOPES_MAX];
	const char		*query, *ns;
	size_t			 n = 0, asked = 0, i, fit;
	int			 catalog = 0, rc;
	char			*token, issued[40];
	time_t			 now = time(NULL);
	json_t			*j;

	TAILQ_INIT(&q);
	query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(pr->req));
	if (query != NULL)
		evhttp_parse_query_str(query, &q);
	ns = NULL;
	/* The last ns= wins, as in the router. */
	TAILQ_FOREACH(kv, &q, next)
		if (strcmp(kv->key, "ns") == 0)
			ns = kv->value;
	TAILQ_FOREACH(kv, &q, next) {
		if (strcmp(kv->key, "scope") != 0 || asked >= ACCESS_SCOPES_MAX)
			continue;
		asked++;
		if ((rc = proxy_token_scope(kv->value, ns, w, &g[n])) == 1)
			n++;
		catalog |= rc == 2;
	}
	evhttp_clear_headers(&q);
	if (reply) {
		/* What fits in a token the mirror accepts back: fewer grants
		 * (the first ones) rather than a token it would refuse. */
		for (fit = n;; fit--) {
			token = access_token_issue(w->how == ACCESS_ANONYMOUS ?
			    NULL : w->user, g, fit, catalog, now);
			if (strlen(token) <= ACCESS_TOKEN_MAX || fit == 0)
				break;
			free(token);
		}
		strftime(issued, sizeof(issued), "%Y-%m-%dT%H:%M:%SZ",
		    gmtime(&now));
		j = json_pack("{s:s,s:s,s:I,s:s}", "token", token,
		    "access_token", token, "expires_in",
		    (json_int_t)proxy_access_cfg->token_ttl, "issued_at",
		    issued);
		explicit_bzero(token, strlen(token));
		free(token);
		token = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		AN(token != NULL);
		proxy_reply_buf(pr, 200, "application/json", token,
		    strlen(token));
		explicit_bzero(token, strlen(token));
		free(token);
	}
	for (i = 0; i < n; i++) {
		free(g[i].upstream);
		free(g[i].repo);
	}
	return n + (size_t)catalog;
}

static void
proxy_token_login_cb(struct proxy_req *pr, int good)
{
	struct access_who	w = { ACCESS_PASSWORD, "", pr->client };

	if (good) {
		snprintf(w.user, sizeof(w.user), "%s", pr->user);
		pr->rule = "token";
		proxy_token_issue(pr, &w, 1);
		return;
	}
	/* Credentials it cannot verify: an anonymous token if that grants
	 * something asked for (dockerd sends its Docker Hub login). */
	w.how = ACCESS_ANONYMOUS;
	if (proxy_token_issue(pr, &w, 0) > 0) {
		proxy_login_ignored(pr, " at the token service");
		proxy_token_issue(pr, &w, 1);
		return;
	}
	pr->user[0] = '\0';
	access_login_failed(pr->client);
	log_info("r%llu %s: failed login at the token service",
	    (unsigned long long)pr->id, pr->client);
	evhttp_add_header(evhttp_request_get_output_headers(pr->req),
	    "WWW-Authenticate", "Basic realm=\"regmirror\"");
	proxy_error(pr, 401, "UNAUTHORIZED", "wrong user name or password");
}

void
proxy_token_serve(struct proxy_req *pr)
{
	struct access_who	 w = { ACCESS_ANONYMOUS, "", NULL };
	const char		*h;
	char			 user[ACCESS_USER_MAX + 1], *password, ra[32];
	long			 retry;
	int			 rc;

	proxy_client_addr(pr);
	w.addr = pr->client;
	pr->rule = "token";
	pr->src = "token";
	if (proxy_cert_user(pr)) {
		w.how = ACCESS_CERT;
		snprintf(w.user, sizeof(w.user), "%s", pr->user);
		proxy_token_issue(pr, &w, 1);
		return;
	}
	h = evhttp_find_header(evhttp_request_get_input_headers(pr->req),
	    "Authorization");
	if (h == NULL || access_basic_parse(h, user, sizeof(user),
	    &password) != 0) {
		proxy_token_issue(pr, &w, 1);
		return;
	}
	rc = access_login_blocked(pr->client, &retry) ? -2 :
	    proxy_login(pr, user, password, proxy_token_login_cb);
	if (rc == -2) {
		if (retry <= 0)
			retry = PROXY_LOGIN_RETRY;
		explicit_bzero(password, strlen(password));
		free(password);
		/* Not checked: an anonymous token if that grants something. */
		if (proxy_token_issue(pr, &w, 0) > 0) {
			proxy_token_issue(pr, &w, 1);
			return;
		}
		snprintf(ra, sizeof(ra), "%ld", retry);
		evhttp_add_header(evhttp_request_get_output_headers(pr->req),
		    "Retry-After", ra);
		proxy_error(pr, 429, "TOOMANYREQUESTS", "too many failed "
		    "logins from this address");
		return;
	}
	if (rc == -1)
		proxy_error(pr, 503, "UNAVAILABLE", "too many logins being "
		    "checked");
	explicit_bzero(password, strlen(password));
	free(password);
}

/* Is uri's path the token service's? */
int
proxy_token_path(const char *uri)
{
	size_t	n;

	if (proxy_access_cfg == NULL || !access_enabled())
		return 0;
	n = strlen(proxy_access_cfg->token_path);
	return strncmp(uri, proxy_access_cfg->token_path, n) == 0 &&
	    (uri[n] == '\0' || uri[n] == '?');
}

/* Whether pr's lists are cut to its rules (proxy_access_catalog). */
int
proxy_access_cuts(const struct proxy_req *pr)
{
	return access_enabled() && !proxy_req_is_job(pr);
}

/*
 * A _catalog answer for pr's client: only the repositories its catalog
 * rule covers and it may pull (README).  A new buffer, or NULL when the
 * upstream's answer is not a catalog (then nothing is listed).
 */
struct rbuf *
proxy_access_catalog(struct proxy_req *pr, struct rbuf *rb)
{
	struct access_who	 w = { ACCESS_ANONYMOUS, "", pr->client };
	json_t			*in, *repos, *out, *e;
	size_t			 i;
	char			*s;
	struct rbuf		*res;

	if (!access_enabled() || proxy_req_is_job(pr))
		return rbuf_ref(rb);
	w.how = (enum access_how)pr->how;
	snprintf(w.user, sizeof(w.user), "%s", pr->user);
	in = json_loadb((const char *)rb->data, rb->len, 0, NULL);
	if (in == NULL ||
	    !json_is_array(repos = json_object_get(in, "repositories"))) {
		json_decref(in);
		return NULL;
	}
	out = json_array();
	json_array_foreach(repos, i, e)
		if (json_is_string(e) && access_catalog_covers(&w,
		    upstream_name(pr->up), json_string_value(e)))
			json_array_append(out, e);
	json_decref(in);
	in = json_pack("{s:o}", "repositories", out);
	s = json_dumps(in, JSON_COMPACT);
	json_decref(in);
	if (s == NULL)
		return NULL;
	res = rbuf_take(s, strlen(s));
	return res;
}
