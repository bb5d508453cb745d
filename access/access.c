/*
 * access.c — the rules, htpasswd users, remembered logins and failed
 * logins per address (access.h).  Tokens are in access_token.c.
 *
 * Shared state, each under its own lock: the user table (a read-write
 * lock: every login reads it, SIGHUP replaces it), the login cache and
 * the failure table (mutexes; both bounded tables of chained buckets).
 * The rules: read-only once loaded; a SIGHUP replaces them whole under a
 * read-write lock that each decision holds while it runs (nothing keeps
 * a pointer into them after: a decision's rule name is an interned copy
 * that lives until exit).
 */
#include "autoconf.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "access/access.h"
#include "access/access_int.h"
#include "common/cidr.h"
#include "common/config.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/obj.h"
#include "common/xmalloc.h"

#define ACCESS_BUCKETS		1024
#define ACCESS_FAIL_MAX		10000	/* addresses with failures kept */
#define ACCESS_HTPASSWD_MAX	(4 * 1024 * 1024)
/* bcrypt of a random password at cost 5, for unknown users. */
#define ACCESS_DUMMY_HASH \
	"$2y$05$lofOhYudqFVtDIvvVflaj.QPWk2dKWwHeKNPnI1suQckZ2Dit96X2"

const struct config	*access_cfg;

/* A rule's from list, parsed once, and its name (access_names). */
struct access_rule {
	const struct config_access	*a;
	const char			*name;
	struct cidr			*from;
};
static pthread_rwlock_t		 access_rules_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct access_rule	*access_rules;
static size_t			 access_nrules;
/* The rules' config_access list when a reload gave it (freed with the
 * rules); NULL: the start-up config's (which lives until exit). */
static struct config_access	*access_rules_owned;

/*
 * Every rule name ever loaded, once each: decisions hand them out, and a
 * request keeps its rule's name for its log line however long it runs,
 * across reloads.  It grows only by the names a reload brings that were
 * never loaded before (an operator's edits); freed by access_fini.
 * Changed on the main thread only (access_init, access_rules_reload).
 */
struct access_name {
	struct access_name	*next;
	char			 name[];
};
static struct access_name	*access_names;

struct access_user {
	char	*name;
	char	*hash;
};
static pthread_rwlock_t		 access_users_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct access_user	*access_users;
static size_t			 access_nusers;
/* The hash with the highest bcrypt cost (or a fixed one), for unknown
 * users; under access_users_lock. */
static char			 access_costliest[128];

/* A good login, by a keyed digest of (user, password), until expires. */
struct access_login {
	unsigned char			key[32];
	time_t				expires;
	LIST_ENTRY(access_login)	entry;
};
static pthread_mutex_t	access_login_mtx = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(, access_login) access_logins[ACCESS_BUCKETS];
static size_t		access_nlogins;
static unsigned char	access_login_salt[32];

/*
 * Failed logins of one address in its current window, and the distinct
 * logins of it being checked now (a burst of guesses in parallel counts
 * before its answers do).
 */
#define ACCESS_INFLIGHT_MAX	8
struct access_fail {
	char				addr[64];
	time_t				start;
	long				count;
	unsigned char			inflight[ACCESS_INFLIGHT_MAX][32];
	int				ninflight;
	LIST_ENTRY(access_fail)		entry;
};
static pthread_mutex_t	access_fail_mtx = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(, access_fail)	access_fails[ACCESS_BUCKETS];
static size_t		access_nfails;

int
access_enabled(void)
{
	return access_cfg != NULL &&
	    (access_cfg->auth || access_cfg->naccess > 0);
}

/*
 * The glob matcher over (glob position, name position), each pair decided
 * once (memo): "*" and "**" backtrack, and a glob of many stars against a
 * long name must stay quadratic, not exponential.  memo[gi * (sl + 1) +
 * si]: 0 not yet, 1 no, 2 yes.
 */
struct access_glob {
	const char	*g, *s;
	size_t		 gl, sl;
	unsigned char	*memo;
};

static int
access_glob_at(struct access_glob *m, size_t gi, size_t si)
{
	unsigned char	*memo = &m->memo[gi * (m->sl + 1) + si];
	const char	*g = m->g;
	size_t		 t;
	int		 r;

	if (*memo != 0)
		return *memo == 2;
	if (gi == m->gl)
		r = si == m->sl;
	else if (g[gi] == '*' && gi + 1 < m->gl && g[gi + 1] == '*') {
		/* "**": any run, '/' too; "**" then "/y" also matches "y". */
		r = gi + 2 < m->gl && g[gi + 2] == '/' &&
		    access_glob_at(m, gi + 3, si);
		for (t = si; !r && t <= m->sl; t++)
			r = access_glob_at(m, gi + 2, t);
	} else if (g[gi] == '*') {
		for (r = 0, t = si; !r && t <= m->sl; t++) {
			r = access_glob_at(m, gi + 1, t);
			if (t < m->sl && m->s[t] == '/')
				break;
		}
	} else
		r = si < m->sl && (g[gi] == '?' ? m->s[si] != '/' :
		    tolower((unsigned char)g[gi]) ==
		    tolower((unsigned char)m->s[si])) &&
		    access_glob_at(m, gi + 1, si + 1);
	*memo = r ? 2 : 1;
	return r;
}

int
access_glob_match(const char *g, const char *s)
{
	struct access_glob	m;
	int			r;

	m.g = g;
	m.s = s;
	m.gl = strlen(g);
	m.sl = strlen(s);
	if (m.gl > 1024 || m.sl > 1024)
		return 0;
	m.memo = xcalloc((m.gl + 1) * (m.sl + 1), 1);
	r = access_glob_at(&m, 0, 0);
	free(m.memo);
	return r;
}

/* Is up Docker Hub (by its name or an alias), where library/ applies? */
static int
access_upstream_is_hub(const struct config_upstream *up)
{
	static const char *const hub[] = { "docker.io", "index.docker.io",
	    "registry-1.docker.io" };
	size_t			 i, j;

	for (i = 0; i <= up->naliases; i++)
		for (j = 0; j < sizeof(hub) / sizeof(hub[0]); j++)
			if (strcasecmp(i == 0 ? up->name : up->aliases[i - 1],
			    hub[j]) == 0)
				return 1;
	return 0;
}

/* glob against "NAME/repo" for the upstream's name and each alias. */
static int
access_glob_covers(const char *glob, const char *upstream, const char *repo)
{
	const struct config_upstream	*up;
	char				 subject[1024];
	size_t				 i;

	if ((up = config_upstream_find(access_cfg, upstream)) == NULL)
		return 0;
	for (i = 0; i <= up->naliases; i++) {
		snprintf(subject, sizeof(subject), "%s/%s", i == 0 ? up->name :
		    up->aliases[i - 1], repo);
		if (access_glob_match(glob, subject))
			return 1;
	}
	/*
	 * Docker Hub's official images: the router has made "pub" into
	 * "library/pub", the name users write in rules is either.
	 */
	if (strncmp(repo, "library/", 8) == 0 && strchr(repo + 8, '/') ==
	    NULL && access_upstream_is_hub(up))
		for (i = 0; i <= up->naliases; i++) {
			snprintf(subject, sizeof(subject), "%s/%s", i == 0 ?
			    up->name : up->aliases[i - 1], repo + 8);
			if (access_glob_match(glob, subject))
				return 1;
		}
	return 0;
}

/* The rule's glob's upstream part (before its first '/') covers it? */
static int
access_glob_upstream(const char *glob, const char *upstream)
{
	const struct config_upstream	*up;
	char				 first[300];
	size_t				 i, len = strcspn(glob, "/");

	if (len >= sizeof(first))
		return 0;
	memcpy(first, glob, len);
	first[len] = '\0';
	/* A "**" first component covers any upstream (and any depth). */
	if (strcmp(first, "**") == 0)
		return 1;
	if ((up = config_upstream_find(access_cfg, upstream)) == NULL)
		return 0;
	for (i = 0; i <= up->naliases; i++)
		if (access_glob_match(first, i == 0 ? up->name :
		    up->aliases[i - 1]))
			return 1;
	return 0;
}

static int
access_users_match(const struct config_access *a, const struct access_who *w)
{
	size_t	i;

	for (i = 0; i < a->nusers; i++) {
		if (strcmp(a->users[i], "anonymous") == 0) {
			if (w->how == ACCESS_ANONYMOUS)
				return 1;
		} else if (w->how == ACCESS_ANONYMOUS)
			continue;
		else if (strcmp(a->users[i], "*") == 0 ||
		    strcmp(a->users[i], w->user) == 0)
			return 1;
	}
	return 0;
}

static int
access_from_match(const struct access_rule *r, const char *addr)
{
	size_t	i;

	if (r->a->nfrom == 0)
		return 1;
	for (i = 0; addr != NULL && i < r->a->nfrom; i++)
		if (cidr_match_str(&r->from[i], addr))
			return 1;
	return 0;
}

/*
 * The first rule whose users, from and repositories match, or NULL.  For
 * the catalog (repo NULL) the first that grants it and covers upstream at
 * all: a listing spans many repositories, and the entries each still
 * pass the pull rules (access_catalog_covers).
 */
static const struct access_rule *
access_rule_find(const struct access_who *w, const char *upstream,
    const char *repo)
{
	const struct access_rule	*r;
	size_t				 i, j;

	for (i = 0; i < access_nrules; i++) {
		r = &access_rules[i];
		if (!access_users_match(r->a, w) || !access_from_match(r,
		    w->addr))
			continue;
		if (repo == NULL && !(r->a->allow & CONFIG_ALLOW_CATALOG))
			continue;
		for (j = 0; j < r->a->nrepos; j++)
			if (repo != NULL ? access_glob_covers(r->a->repos[j],
			    upstream, repo) : access_glob_upstream(
			    r->a->repos[j], upstream))
				return r;
	}
	return NULL;
}

/* access_decide under access_rules_lock (held by the caller). */
static void
access_decide_locked(const struct access_who *w, const char *upstream,
    const char *repo, unsigned want, struct access_decision *d)
{
	const struct access_rule	*r;

	d->rule = "-";
	if ((r = access_rule_find(w, upstream, repo)) != NULL) {
		d->rule = r->name;
		d->allowed = (r->a->allow & want) == want;
		return;
	}
	/* [auth] without rules: logged-in users pull; no one lists. */
	d->allowed = access_nrules == 0 && w->how != ACCESS_ANONYMOUS &&
	    want == ACCESS_WANT_PULL;
}

void
access_decide(const struct access_who *w, const char *upstream,
    const char *repo, unsigned want, struct access_decision *d)
{
	if (!access_enabled()) {
		d->rule = "-";
		d->allowed = 1;
		return;
	}
	pthread_rwlock_rdlock(&access_rules_lock);
	access_decide_locked(w, upstream, repo, want, d);
	pthread_rwlock_unlock(&access_rules_lock);
}

int
access_catalog_covers(const struct access_who *w, const char *upstream,
    const char *repo)
{
	const struct access_rule	*r;
	struct access_decision		 d;
	size_t				 j;
	int				 rc = 0;

	if (!access_enabled())
		return 1;
	pthread_rwlock_rdlock(&access_rules_lock);
	if ((r = access_rule_find(w, upstream, NULL)) != NULL)
		for (j = 0; j < r->a->nrepos; j++)
			if (access_glob_covers(r->a->repos[j], upstream,
			    repo)) {
				access_decide_locked(w, upstream, repo,
				    ACCESS_WANT_PULL, &d);
				rc = d.allowed;
				break;
			}
	pthread_rwlock_unlock(&access_rules_lock);
	return rc;
}

int
access_anonymous_pulls(const char *addr)
{
	struct access_who	w = { ACCESS_ANONYMOUS, "", addr };
	size_t			i;
	int			rc = 0;

	if (!access_enabled())
		return 1;
	pthread_rwlock_rdlock(&access_rules_lock);
	for (i = 0; i < access_nrules && !rc; i++)
		rc = access_users_match(access_rules[i].a, &w) &&
		    access_from_match(&access_rules[i], addr) &&
		    (access_rules[i].a->allow & CONFIG_ALLOW_PULL);
	pthread_rwlock_unlock(&access_rules_lock);
	return rc;
}

/*
 * "Basic base64(user:password)" into user and password (malloc'd): 0, or
 * -1 when it is not Basic credentials the mirror could check.
 */
int
access_basic_parse(const char *h, char *user, size_t ulen, char **password)
{
	unsigned char	*buf;
	size_t		 len, blen;
	int		 n;
	char		*colon;

	if (strncasecmp(h, "Basic ", 6) != 0)
		return -1;
	h += 6;
	while (*h == ' ')
		h++;
	len = strlen(h);
	if (len == 0 || len > 4 * ((ACCESS_USER_MAX + ACCESS_PASSWORD_MAX +
	    3) / 3) || len % 4 != 0)
		return -1;
	buf = xmalloc(len / 4 * 3 + 1);
	if ((n = EVP_DecodeBlock(buf, (const unsigned char *)h, (int)len)) <
	    0) {
		free(buf);
		return -1;
	}
	blen = (size_t)n;
	while (blen > 0 && len > 0 && h[len - 1] == '=') {
		blen--;
		len--;
	}
	buf[blen] = '\0';
	if (memchr(buf, '\0', blen) != NULL ||
	    (colon = strchr((char *)buf, ':')) == NULL ||
	    colon == (char *)buf || (size_t)(colon - (char *)buf) >= ulen) {
		explicit_bzero(buf, blen);
		free(buf);
		return -1;
	}
	*colon = '\0';
	snprintf(user, ulen, "%s", (char *)buf);
	*password = xstrdup(colon + 1);
	explicit_bzero(buf, blen);
	free(buf);
	return 0;
}

/* ---- htpasswd ---------------------------------------------------- */

static void
access_users_free(struct access_user *u, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		free(u[i].name);
		explicit_bzero(u[i].hash, strlen(u[i].hash));
		free(u[i].hash);
	}
	free(u);
}

/* Parse the htpasswd text: "user:$2y$..." lines; -1 with err. */
static int
access_users_parse(const char *path, char *text, struct access_user **out,
    size_t *nout, char *err, size_t errlen)
{
	struct access_user	*u = NULL;
	size_t			 n = 0, lineno = 0;
	char			*line, *next, *colon;

	for (line = text; line != NULL && *line != '\0'; line = next) {
		lineno++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		line[strcspn(line, "\r")] = '\0';
		if (*line == '\0' || *line == '#')
			continue;
		if ((colon = strchr(line, ':')) == NULL || colon == line ||
		    (size_t)(colon - line) > ACCESS_USER_MAX) {
			snprintf(err, errlen, "%s:%zu: not 'user:hash'", path,
			    lineno);
			goto fail;
		}
		*colon = '\0';
		if (strncmp(colon + 1, "$2y$", 4) != 0 &&
		    strncmp(colon + 1, "$2b$", 4) != 0 &&
		    strncmp(colon + 1, "$2a$", 4) != 0) {
			snprintf(err, errlen, "%s:%zu: user '%.128s' is not a "
			    "bcrypt entry (make it with htpasswd -B)", path,
			    lineno, line);
			goto fail;
		}
		u = xreallocarray(u, n + 1, sizeof(*u));
		u[n].name = xstrdup(line);
		u[n].hash = xstrdup(colon + 1);
		n++;
	}
	*out = u;
	*nout = n;
	return 0;
fail:
	access_users_free(u, n);
	return -1;
}

static int
access_users_load(const char *path, char *err, size_t errlen)
{
	struct access_user	*u, *old;
	size_t			 n, oldn, i;
	char			*text;
	FILE			*f;
	size_t			 len;

	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s:0: cannot open: %s", path,
		    strerror(errno));
		return -1;
	}
	text = xmalloc(ACCESS_HTPASSWD_MAX + 1);
	len = fread(text, 1, ACCESS_HTPASSWD_MAX + 1, f);
	fclose(f);
	if (len > ACCESS_HTPASSWD_MAX) {
		snprintf(err, errlen, "%s:0: larger than %d bytes", path,
		    ACCESS_HTPASSWD_MAX);
		free(text);
		return -1;
	}
	text[len] = '\0';
	if (access_users_parse(path, text, &u, &n, err, errlen) != 0) {
		explicit_bzero(text, len);
		free(text);
		return -1;
	}
	explicit_bzero(text, len);
	free(text);
	pthread_rwlock_wrlock(&access_users_lock);
	old = access_users;
	oldn = access_nusers;
	access_users = u;
	access_nusers = n;
	snprintf(access_costliest, sizeof(access_costliest), "%s",
	    ACCESS_DUMMY_HASH);
	for (i = 0; i < n; i++)		/* "$2y$NN$": NN is the cost */
		if (strlen(u[i].hash) < sizeof(access_costliest) &&
		    strncmp(u[i].hash + 4, access_costliest + 4, 2) > 0)
			snprintf(access_costliest, sizeof(access_costliest),
			    "%s", u[i].hash);
	pthread_rwlock_unlock(&access_users_lock);
	access_users_free(old, oldn);
	return 0;
}

/* ---- remembered logins -------------------------------------------- */

static void
access_login_key(const char *user, const char *pw, unsigned char key[32])
{
	EVP_MD_CTX	*c = EVP_MD_CTX_new();
	unsigned int	 len = 32;

	AN(c != NULL);
	AN(EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1);
	EVP_DigestUpdate(c, access_login_salt, sizeof(access_login_salt));
	EVP_DigestUpdate(c, user, strlen(user) + 1);
	EVP_DigestUpdate(c, pw, strlen(pw));
	AN(EVP_DigestFinal_ex(c, key, &len) == 1);
	EVP_MD_CTX_free(c);
}

static uint32_t
access_key_bucket(const unsigned char key[32])
{
	return ((uint32_t)key[0] << 8 | key[1]) % ACCESS_BUCKETS;
}

static void
access_logins_clear(void)
{
	struct access_login	*l;
	size_t			 i;

	pthread_mutex_lock(&access_login_mtx);
	for (i = 0; i < ACCESS_BUCKETS; i++)
		while ((l = LIST_FIRST(&access_logins[i])) != NULL) {
			LIST_REMOVE(l, entry);
			free(l);
		}
	access_nlogins = 0;
	pthread_mutex_unlock(&access_login_mtx);
}

int
access_password_cached(const char *user, const char *password)
{
	struct access_login	*l, *next;
	unsigned char		 key[32];
	time_t			 now = time(NULL);
	int			 found = 0;

	if (access_cfg == NULL || access_cfg->login_cache_ttl <= 0)
		return 0;
	access_login_key(user, password, key);
	pthread_mutex_lock(&access_login_mtx);
	for (l = LIST_FIRST(&access_logins[access_key_bucket(key)]);
	    l != NULL; l = next) {
		next = LIST_NEXT(l, entry);
		if (l->expires <= now) {
			LIST_REMOVE(l, entry);
			access_nlogins--;
			free(l);
		} else if (CRYPTO_memcmp(l->key, key, sizeof(key)) == 0)
			found = 1;
	}
	pthread_mutex_unlock(&access_login_mtx);
	return found;
}

static void
access_login_remember(const char *user, const char *password)
{
	struct access_login	*l;
	uint32_t		 b;

	if (access_cfg->login_cache_ttl <= 0 ||
	    access_cfg->max_cached_logins <= 0)
		return;
	l = xcalloc(1, sizeof(*l));
	access_login_key(user, password, l->key);
	l->expires = time(NULL) + access_cfg->login_cache_ttl;
	b = access_key_bucket(l->key);
	pthread_mutex_lock(&access_login_mtx);
	/* At the cap, this bucket's oldest goes (its tail), or this one. */
	if (access_nlogins >= (size_t)access_cfg->max_cached_logins) {
		struct access_login *t = LIST_FIRST(&access_logins[b]);

		while (t != NULL && LIST_NEXT(t, entry) != NULL)
			t = LIST_NEXT(t, entry);
		if (t == NULL) {
			pthread_mutex_unlock(&access_login_mtx);
			free(l);
			return;
		}
		LIST_REMOVE(t, entry);
		access_nlogins--;
		free(t);
	}
	LIST_INSERT_HEAD(&access_logins[b], l, entry);
	access_nlogins++;
	pthread_mutex_unlock(&access_login_mtx);
}

int
access_password_check(const char *user, const char *password)
{
	struct crypt_data	*cd;
	const char		*out;
	char			*hash = NULL;
	size_t			 i;
	int			 good = 0, unknown = 0;

	if (strlen(password) > ACCESS_PASSWORD_MAX)
		return 0;
	pthread_rwlock_rdlock(&access_users_lock);
	for (i = 0; i < access_nusers; i++)
		if (strcmp(access_users[i].name, user) == 0) {
			hash = xstrdup(access_users[i].hash);
			break;
		}
	/* An unknown user costs a bcrypt too, at the file's highest cost:
	 * the answer's time does not tell who exists. */
	if (hash == NULL) {
		unknown = 1;
		hash = xstrdup(access_costliest);
	}
	pthread_rwlock_unlock(&access_users_lock);
	cd = xcalloc(1, sizeof(*cd));
	out = crypt_r(password, hash, cd);
	good = !unknown && out != NULL && out[0] != '*' &&
	    strlen(out) == strlen(hash) &&
	    CRYPTO_memcmp(out, hash, strlen(hash)) == 0;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	explicit_bzero(hash, strlen(hash));
	free(hash);
	if (good)
		access_login_remember(user, password);
	return good;
}

int
access_user_known(const char *user)
{
	size_t	i;
	int	known = 0;

	pthread_rwlock_rdlock(&access_users_lock);
	for (i = 0; i < access_nusers && !known; i++)
		known = strcmp(access_users[i].name, user) == 0;
	pthread_rwlock_unlock(&access_users_lock);
	return known;
}

/* ---- failed logins ------------------------------------------------- */

int
access_login_blocked(const char *addr, long *retry_after)
{
	struct access_fail	*f;
	time_t			 now = time(NULL);
	int			 blocked = 0;

	*retry_after = 0;
	if (access_cfg == NULL)
		return 0;
	pthread_mutex_lock(&access_fail_mtx);
	LIST_FOREACH(f, &access_fails[hash_str(addr) % ACCESS_BUCKETS], entry)
		if (strcmp(f->addr, addr) == 0) {
			if (now - f->start < access_cfg->login_failure_window &&
			    f->count >= access_cfg->max_login_failures) {
				blocked = 1;
				*retry_after = access_cfg->login_failure_window
				    - (now - f->start);
			}
			break;
		}
	pthread_mutex_unlock(&access_fail_mtx);
	return blocked;
}

/* addr's entry under access_fail_mtx, made if need be (NULL: full). */
static struct access_fail *
access_fail_get(const char *addr, time_t now)
{
	struct access_fail	*f, *next;
	uint32_t		 b = hash_str(addr) % ACCESS_BUCKETS;

	for (f = LIST_FIRST(&access_fails[b]); f != NULL; f = next) {
		next = LIST_NEXT(f, entry);
		if (strcmp(f->addr, addr) == 0)
			break;
		/* Idle ones past their window go on the way (bounded). */
		if (f->ninflight == 0 && now - f->start >=
		    access_cfg->login_failure_window) {
			LIST_REMOVE(f, entry);
			access_nfails--;
			free(f);
		}
	}
	if (f == NULL && access_nfails < ACCESS_FAIL_MAX) {
		f = xcalloc(1, sizeof(*f));
		snprintf(f->addr, sizeof(f->addr), "%s", addr);
		f->start = now;
		LIST_INSERT_HEAD(&access_fails[b], f, entry);
		access_nfails++;
	}
	if (f != NULL && now - f->start >= access_cfg->login_failure_window) {
		f->start = now;
		f->count = 0;
	}
	return f;
}

int
access_login_reserve(const char *addr, const char *user, const char *pw,
    unsigned char key[32], int *reserved)
{
	struct access_fail	*f;
	int			 i, rc = 0;

	*reserved = 0;
	access_login_key(user, pw, key);
	pthread_mutex_lock(&access_fail_mtx);
	if ((f = access_fail_get(addr, time(NULL))) == NULL)
		goto done;		/* full: as before tracking began */
	for (i = 0; i < f->ninflight; i++)
		if (memcmp(f->inflight[i], key, 32) == 0)
			goto done;	/* the same login, already asked */
	if (f->count + f->ninflight >= access_cfg->max_login_failures ||
	    f->ninflight >= ACCESS_INFLIGHT_MAX) {
		rc = -1;
		goto done;
	}
	memcpy(f->inflight[f->ninflight++], key, 32);
	*reserved = 1;
done:
	pthread_mutex_unlock(&access_fail_mtx);
	return rc;
}

void
access_login_release(const char *addr, const unsigned char key[32],
    int reserved)
{
	struct access_fail	*f;
	uint32_t		 b = hash_str(addr) % ACCESS_BUCKETS;
	int			 i;

	if (!reserved)
		return;
	pthread_mutex_lock(&access_fail_mtx);
	LIST_FOREACH(f, &access_fails[b], entry)
		if (strcmp(f->addr, addr) == 0)
			break;
	for (i = 0; f != NULL && i < f->ninflight; i++)
		if (memcmp(f->inflight[i], key, 32) == 0) {
			memmove(f->inflight[i], f->inflight[i + 1],
			    (size_t)(f->ninflight - i - 1) * 32);
			f->ninflight--;
			break;
		}
	pthread_mutex_unlock(&access_fail_mtx);
}

void
access_login_failed(const char *addr)
{
	struct access_fail	*f, *next;
	time_t			 now = time(NULL);
	uint32_t		 b = hash_str(addr) % ACCESS_BUCKETS;

	if (access_cfg == NULL)
		return;
	pthread_mutex_lock(&access_fail_mtx);
	for (f = LIST_FIRST(&access_fails[b]); f != NULL; f = next) {
		next = LIST_NEXT(f, entry);
		if (strcmp(f->addr, addr) == 0)
			break;
		/* Windows long past are dropped on the way. */
		if (now - f->start >= access_cfg->login_failure_window &&
		    f->ninflight == 0) {
			LIST_REMOVE(f, entry);
			access_nfails--;
			free(f);
		}
	}
	if (f == NULL && access_nfails >= ACCESS_FAIL_MAX) {
		/* Full: count nothing new rather than forget the worst. */
		pthread_mutex_unlock(&access_fail_mtx);
		return;
	}
	if (f == NULL) {
		f = xcalloc(1, sizeof(*f));
		snprintf(f->addr, sizeof(f->addr), "%s", addr);
		f->start = now;
		LIST_INSERT_HEAD(&access_fails[b], f, entry);
		access_nfails++;
	}
	if (now - f->start >= access_cfg->login_failure_window) {
		f->start = now;
		f->count = 0;
	}
	f->count++;
	pthread_mutex_unlock(&access_fail_mtx);
}

/* ---- set-up -------------------------------------------------------- */

/* The one copy of name in access_names (added if new). */
static const char *
access_name_intern(const char *name)
{
	struct access_name	*n;
	size_t			 len = strlen(name);

	for (n = access_names; n != NULL; n = n->next)
		if (strcmp(n->name, name) == 0)
			return n->name;
	n = xmalloc(sizeof(*n) + len + 1);
	memcpy(n->name, name, len + 1);
	n->next = access_names;
	access_names = n;
	return n->name;
}

/* The rules of list (n of them; validated by config_load). */
static struct access_rule *
access_rules_new(const struct config_access *list, size_t n)
{
	const struct config_access	*a;
	struct access_rule		*rules;
	size_t				 i, j;

	rules = xcalloc(n + 1, sizeof(*rules));
	for (a = list, i = 0; a != NULL && i < n; a = a->next, i++) {
		rules[i].a = a;
		rules[i].name = access_name_intern(a->name);
		rules[i].from = xcalloc(a->nfrom + 1, sizeof(struct cidr));
		for (j = 0; j < a->nfrom; j++)
			AZ(cidr_parse(a->from[j], &rules[i].from[j]));
	}
	return rules;
}

static void
access_rules_free(struct access_rule *rules, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(rules[i].from);
	free(rules);
}

int
access_rules_reload(struct config_access *list, size_t n,
    void (*cb)(const char *, void *), void *arg)
{
	struct access_rule	*rules, *old;
	struct config_access	*old_owned;
	size_t			 i, old_n;

	if (config_access_equal(access_rules_owned != NULL ?
	    access_rules_owned : access_cfg->access, list)) {
		config_access_list_free(list);
		return 0;
	}
	/* Built, and the names interned, on this thread alone: only the
	 * main thread changes access_names. */
	rules = access_rules_new(list, n);
	for (i = 0; cb != NULL && i < n; i++)
		cb(rules[i].name, arg);
	pthread_rwlock_wrlock(&access_rules_lock);
	old = access_rules;
	old_n = access_nrules;
	old_owned = access_rules_owned;
	access_rules = rules;
	access_nrules = n;
	access_rules_owned = list;
	pthread_rwlock_unlock(&access_rules_lock);
	/* No decision is under way on the old ones: each held the lock. */
	access_rules_free(old, old_n);
	config_access_list_free(old_owned);
	return 1;
}

void
access_rule_names(void (*cb)(const char *, void *), void *arg)
{
	size_t	i;

	pthread_rwlock_rdlock(&access_rules_lock);
	for (i = 0; i < access_nrules; i++)
		cb(access_rules[i].name, arg);
	pthread_rwlock_unlock(&access_rules_lock);
}

int
access_init(const struct config *cfg, char *err, size_t errlen)
{
	access_cfg = cfg;
	if (RAND_bytes(access_login_salt, sizeof(access_login_salt)) != 1) {
		snprintf(err, errlen, "no random bytes for the login cache");
		return -1;
	}
	access_rules = access_rules_new(cfg->access, cfg->naccess);
	access_nrules = cfg->naccess;
	if (cfg->htpasswd != NULL &&
	    access_users_load(cfg->htpasswd, err, errlen) != 0)
		return -1;
	if (access_enabled() && access_token_init(cfg, err, errlen) != 0)
		return -1;
	return 0;
}

int
access_reload(const struct config *cfg, char *err, size_t errlen)
{
	if (cfg->htpasswd == NULL)
		return 0;
	if (access_users_load(cfg->htpasswd, err, errlen) != 0)
		return -1;
	access_logins_clear();
	return 0;
}

void
access_fini(void)
{
	struct access_fail	*f;
	struct access_name	*n;
	size_t			 i;

	access_rules_free(access_rules, access_nrules);
	access_rules = NULL;
	access_nrules = 0;
	config_access_list_free(access_rules_owned);
	access_rules_owned = NULL;
	while ((n = access_names) != NULL) {
		access_names = n->next;
		free(n);
	}
	pthread_rwlock_wrlock(&access_users_lock);
	access_users_free(access_users, access_nusers);
	access_users = NULL;
	access_nusers = 0;
	pthread_rwlock_unlock(&access_users_lock);
	access_logins_clear();
	pthread_mutex_lock(&access_fail_mtx);
	for (i = 0; i < ACCESS_BUCKETS; i++)
		while ((f = LIST_FIRST(&access_fails[i])) != NULL) {
			LIST_REMOVE(f, entry);
			free(f);
		}
	access_nfails = 0;
	pthread_mutex_unlock(&access_fail_mtx);
	access_token_fini();
	access_cfg = NULL;
}
