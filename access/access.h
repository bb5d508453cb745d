/*
 * access.h — who may pull what: identities, rules, the mirror's own
 * tokens (README, "Access control"; docs/SECURITY.md).
 *
 * Pure and thread-safe; no event loop.  proxy/proxy_access.c asks it for
 * each request, after routing: who the client is (a password checked
 * against htpasswd, a token the mirror issued, a verified client
 * certificate's CN, or anonymous), then what the first matching [access]
 * rule says for (upstream, repository, pull or catalog).
 *
 * The rules, from the config:
 *	no [auth], no [access]	anyone may pull (access_enabled() is 0)
 *	[auth], no [access]	any authenticated user may pull anything;
 *				anonymous clients nothing
 *	[access] rules		the first whose users, from and
 *				repositories match decides; none: denied
 * users: names (htpasswd users and certificate CNs share one namespace),
 * "*" (any authenticated user), "anonymous".  repositories:
 * "UPSTREAM/REPO" globs, "*" within one path component, "**" across any
 * number of them (so docker.io/team-a/ followed by ** is every
 * repository under team-a/, and docker.io/ followed by ** every
 * repository of docker.io).
 *
 * Passwords are bcrypt (htpasswd -B), verified with crypt_r: slow by
 * design (a few ms to 100s of ms), so access_password_check() must not be
 * called on an event loop; a good (user, password) is remembered for
 * login_cache_ttl (access_password_cached() is cheap).
 *
 * Tokens are JWTs signed with HMAC-SHA256 by a key only this mirror
 * has (token_key, or <cache dir>/token.key made at first start, 0600).
 * A token carries its user and the (upstream, repository) pairs it grants
 * pull on (what was asked for, intersected with what the rules grant at
 * issue time), and whether it grants the catalog.
 */
#ifndef ACCESS_ACCESS_H
#define ACCESS_ACCESS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct config;

#define ACCESS_USER_MAX		128	/* bytes of a user name */
#define ACCESS_PASSWORD_MAX	1024	/* bytes of a password tried */
#define ACCESS_TOKEN_MAX	8192	/* bytes of a token accepted */
#define ACCESS_SCOPES_MAX	32	/* scopes one token request names */

/* What a request wants. */
#define ACCESS_WANT_PULL	0x01
#define ACCESS_WANT_CATALOG	0x02

/* How the client proved who it is. */
enum access_how {
	ACCESS_ANONYMOUS = 0,
	ACCESS_PASSWORD,	/* Basic, checked against htpasswd */
	ACCESS_TOKEN,		/* a Bearer token the mirror issued */
	ACCESS_CERT,		/* a verified client certificate's CN */
};

struct access_who {
	enum access_how	how;
	char		user[ACCESS_USER_MAX + 1];	/* "" if anonymous */
	const char	*addr;		/* the client's address (text) */
};

/* A decision and the rule that made it ("-": no rule, the default). */
struct access_decision {
	int		 allowed;
	const char	*rule;
};

/* Load htpasswd and the token key; 0, or -1 with err.  Call once. */
int	access_init(const struct config *, char *err, size_t errlen);
void	access_fini(void);
/* Reread htpasswd (SIGHUP); 0, or -1 with err (the old users stay). */
int	access_reload(const struct config *, char *err, size_t errlen);
/*
 * SIGHUP: the [access] rules list (n of them, from a config that
 * validated; taken, and freed when replaced) replace the rules in force,
 * unless they are the same (then list is freed): 1 replaced, 0 the same.
 * Before the swap, cb(name, arg) for each new rule's name (which lives
 * until exit), so that a counter can be there before the first decision.
 * Decisions under way finish on the old rules.  Not for turning access
 * control on or off (that needs a restart).  Main thread.
 */
struct config_access;
int	access_rules_reload(struct config_access *list, size_t n,
	    void (*cb)(const char *, void *), void *arg);
/* cb(name, arg) for each rule in force, in order (names live until
 * exit). */
void	access_rule_names(void (*cb)(const char *, void *), void *arg);
/* Whether any access control is configured at all. */
int	access_enabled(void);
/* Whether anonymous clients may pull anything at all (from addr). */
int	access_anonymous_pulls(const char *addr);

/* The rules' answer for (upstream, repo) (repo NULL: the catalog). */
void	access_decide(const struct access_who *, const char *upstream,
	    const char *repo, unsigned want, struct access_decision *);
/* Whether a catalog entry repo of upstream is covered for who. */
int	access_catalog_covers(const struct access_who *, const char *upstream,
	    const char *repo);

/*
 * Passwords.  access_password_cached: 1 if (user, password) was checked
 * good within login_cache_ttl (cheap, any thread).  access_password_check:
 * the bcrypt check itself (slow: never on an event loop); 1 good, 0 not
 * (unknown user, wrong password, a hash crypt_r cannot read).  A good one
 * is remembered.
 */
int	access_password_cached(const char *user, const char *password);
int	access_password_check(const char *user, const char *password);
/* Whether htpasswd has user (cheap, any thread). */
int	access_user_known(const char *user);

/*
 * Failed logins per client address: access_login_blocked says 1 (with the
 * seconds until the window ends) once max_login_failures have been seen
 * within login_failure_window; access_login_failed counts one.
 */
int	access_login_blocked(const char *addr, long *retry_after);
void	access_login_failed(const char *addr);
/*
 * Before a bcrypt check of (user, password) from addr: -1 when it must
 * not be checked (the failures so far plus the distinct logins of addr
 * being checked reach max_login_failures, or 8 are being checked), else
 * 0, with *reserved 1 when this login now counts as being checked (0: the
 * same one already is, or the table is full).  key is filled for
 * access_login_release, which the answer must call.
 */
int	access_login_reserve(const char *addr, const char *user,
	    const char *password, unsigned char key[32], int *reserved);
void	access_login_release(const char *addr, const unsigned char key[32],
	    int reserved);

/* One scope a token grants, resolved to the upstream's names. */
struct access_grant {
	char	*upstream;
	char	*repo;
};

/*
 * Issue a token for user (NULL: anonymous) granting n pulls and, with
 * catalog, the catalog; valid for [auth] token_ttl.  A malloc'd string.
 */
char	*access_token_issue(const char *user, const struct access_grant *,
	    size_t n, int catalog, time_t now);
/* A token's claims once verified (signature, service, time). */
struct access_token {
	char			 user[ACCESS_USER_MAX + 1];	/* "": anon */
	struct access_grant	*grants;
	size_t			 ngrants;
	int			 catalog;
	int64_t			 exp;
};
/* 0 and *out filled (free with access_token_free), or -1: not valid. */
int	access_token_verify(const char *token, time_t now,
	    struct access_token *out);
void	access_token_free(struct access_token *);
/* Whether a verified token grants want on (upstream, repo). */
int	access_token_grants(const struct access_token *, const char *upstream,
	    const char *repo, unsigned want);

/*
 * An Authorization header's "Basic base64(user:password)": 0 with user
 * (at most ulen - 1 bytes) and *password (malloc'd; wipe and free it), or
 * -1 when it is not Basic credentials the mirror could check.
 */
int	access_basic_parse(const char *header, char *user, size_t ulen,
	    char **password);

/* "**" and "*" globs over '/'-separated names (exposed for tests). */
int	access_glob_match(const char *glob, const char *name);

#endif
