/*
 * test_access.c — access/: globs, the rules' decisions (first match,
 * users, from, repositories, allow, [auth] alone), htpasswd passwords and
 * the login cache, failed logins per address, and the mirror's tokens
 * (round trip, every way of forging one, expiry, the key kept on disk),
 * and SIGHUP's swap of the rules while another thread decides.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <crypt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access/access.h"
#include "common/config.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "tests/lib/tap.h"

static char	dir[] = "/tmp/test_access.XXXXXX";

static char *
bcrypt(const char *pw)
{
	struct crypt_data	*cd = xcalloc(1, sizeof(*cd));
	char			 salt[64], *out;

	if (crypt_gensalt_rn("$2b$", 4, NULL, 0, salt, sizeof(salt)) == NULL)
		bail_out("crypt_gensalt_rn");
	out = xstrdup(crypt_r(pw, salt, cd));
	free(cd);
	return out;
}

static struct config *
load(const char *text)
{
	struct config	*cf;
	char		 err[512];

	if (config_load_string("t.conf", text, &cf, err, sizeof(err)) != 0)
		bail_out(err);
	return cf;
}

static void
test_globs(void)
{
	static const struct {
		const char	*g, *s;
		int		 want;
	} c[] = {
		{ "docker.io/team-a/**", "docker.io/team-a/app", 1 },
		{ "docker.io/team-a/**", "docker.io/team-a/x/y/z", 1 },
		{ "docker.io/team-a/**", "docker.io/team-a", 0 },
		{ "docker.io/team-a/**", "docker.io/team-ab/app", 0 },
		{ "docker.io/*", "docker.io/app", 1 },
		{ "docker.io/*", "docker.io/team/app", 0 },
		{ "docker.io/**", "docker.io/a/b", 1 },
		{ "**", "anything/at/all", 1 },
		{ "*/library/*", "docker.io/library/alpine", 1 },
		{ "*/library/*", "docker.io/x/library/alpine", 0 },
		{ "docker.io/**/app", "docker.io/app", 1 },
		{ "docker.io/**/app", "docker.io/a/b/app", 1 },
		{ "docker.io/**/app", "docker.io/a/b/apps", 0 },
		{ "docker.io/app-?", "docker.io/app-1", 1 },
		{ "docker.io/app-?", "docker.io/app-/", 0 },
		{ "Docker.IO/App", "docker.io/app", 1 },
		{ "docker.io/app", "docker.io/app/", 0 },
		{ "", "", 1 },
		{ "***", "a/b", 1 },
	};
	size_t	i;

	char	name[401], glob[64];

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		is_int(access_glob_match(c[i].g, c[i].s), c[i].want,
		    "glob '%s' on '%s'", c[i].g, c[i].s);
	/* Stars backtrack: memoised, so this is quick, not 2^15 deep (the
	 * fuzzer found the exponential version; alarm() guards it). */
	memset(name, 'a', 400);
	name[400] = '\0';
	snprintf(glob, sizeof(glob), "**a**a**a**a**a*a*a*a*a*a*a*a*a*a*ab");
	is_int(access_glob_match(glob, name), 0, "many stars, a long name");
	name[399] = 'b';
	is_int(access_glob_match(glob, name), 1, "  and one that matches");
}

static struct access_who
who(enum access_how how, const char *user, const char *addr)
{
	struct access_who	w;

	memset(&w, 0, sizeof(w));
	w.how = how;
	snprintf(w.user, sizeof(w.user), "%s", user);
	w.addr = addr;
	return w;
}

static int
allows(const struct access_who *w, const char *up, const char *repo,
    unsigned want, const char *rule)
{
	struct access_decision	d;

	access_decide(w, up, repo, want, &d);
	if (strcmp(d.rule, rule) != 0)
		diag("decided by '%s', not '%s'", d.rule, rule);
	return d.allowed && strcmp(d.rule, rule) == 0 ? 1 :
	    !d.allowed && strcmp(d.rule, rule) == 0 ? 0 : -1;
}

static void
test_rules(const char *htp)
{
	struct config		*cf;
	struct access_who	 alice = who(ACCESS_PASSWORD, "alice",
				    "10.9.0.1");
	struct access_who	 bob = who(ACCESS_CERT, "bob", "192.0.2.1");
	struct access_who	 anon = who(ACCESS_ANONYMOUS, "", "192.0.2.1");
	struct access_who	 lan = who(ACCESS_ANONYMOUS, "", "10.1.2.3");
	char			*text, err[256];

	xasprintf(&text, "[server]\nlisten = 127.0.0.1:1\n"
	    "[cache]\ndir = %s\n"
	    "[auth]\nhtpasswd = %s\n"
	    "[access \"team-a\"]\nusers = alice\n"
	    "repositories = docker.io/team-a/**\n"
	    "[access \"block\"]\nusers = *\nrepositories = docker.io/secret/*\n"
	    "allow = none\n"
	    "[access \"ops\"]\nusers = bob\nrepositories = **\n"
	    "allow = pull, catalog\n"
	    "[access \"lan\"]\nusers = anonymous\nfrom = 10.0.0.0/8\n"
	    "repositories = hub/lan/*\n"
	    "[access \"public\"]\nusers = anonymous, *\n"
	    "repositories = hub/library/**\n"
	    "[upstream \"docker.io\"]\nurl = https://r\naliases = hub\n"
	    "[upstream \"ghcr.io\"]\nurl = https://g\n", dir, htp);
	cf = load(text);
	free(text);
	if (access_init(cf, err, sizeof(err)) != 0)
		bail_out(err);
	ok(access_enabled(), "rules: enabled");
	is_int(allows(&alice, "docker.io", "team-a/app", ACCESS_WANT_PULL,
	    "team-a"), 1, "alice pulls team-a/app (team-a)");
	is_int(allows(&alice, "docker.io", "team-b/app", ACCESS_WANT_PULL,
	    "-"), 0, "alice may not pull team-b/app (no rule)");
	is_int(allows(&alice, "docker.io", "secret/x", ACCESS_WANT_PULL,
	    "block"), 0, "allow = none decides, first match");
	is_int(allows(&bob, "docker.io", "secret/x", ACCESS_WANT_PULL,
	    "block"), 0, "  for bob too: it comes before ops");
	is_int(allows(&bob, "ghcr.io", "any/thing", ACCESS_WANT_PULL, "ops"),
	    1, "bob (a certificate CN) pulls anything from any upstream");
	is_int(allows(&bob, "ghcr.io", NULL, ACCESS_WANT_CATALOG, "ops"), 1,
	    "  and lists the catalog");
	is_int(allows(&alice, "docker.io", NULL, ACCESS_WANT_CATALOG, "-"),
	    0, "alice may not list the catalog");
	is_int(allows(&anon, "docker.io", "library/alpine", ACCESS_WANT_PULL,
	    "public"), 1, "anonymous pulls library/ (by the alias hub)");
	is_int(allows(&alice, "docker.io", "library/alpine",
	    ACCESS_WANT_PULL, "public"), 1, "  so does any user (*)");
	is_int(allows(&anon, "docker.io", "team-a/app", ACCESS_WANT_PULL,
	    "-"), 0, "anonymous may not pull team-a/");
	is_int(allows(&lan, "docker.io", "lan/tool", ACCESS_WANT_PULL, "lan"),
	    1, "anonymous from 10/8 pulls lan/");
	is_int(allows(&anon, "docker.io", "lan/tool", ACCESS_WANT_PULL, "-"),
	    0, "  not from elsewhere");
	is_int(allows(&anon, "ghcr.io", "library/alpine", ACCESS_WANT_PULL,
	    "-"), 0, "hub/library/** is docker.io's, not ghcr.io's");
	ok(access_anonymous_pulls("192.0.2.1"), "anonymous pulls something");
	ok(access_catalog_covers(&bob, "docker.io", "x/y"), "catalog: bob "
	    "sees x/y");
	ok(!access_catalog_covers(&bob, "docker.io", "secret/x"), "catalog: "
	    "not secret/x, which block denies him");
	ok(!access_catalog_covers(&alice, "docker.io", "team-a/app"),
	    "catalog: alice sees nothing (no catalog grant)");
	access_fini();
	config_free(cf);

	/* [auth] and no rules: logged-in users pull, nobody lists. */
	xasprintf(&text, "[server]\nlisten = 127.0.0.1:1\n[cache]\ndir = %s\n"
	    "[auth]\nhtpasswd = %s\n"
	    "[upstream \"docker.io\"]\nurl = https://r\n", dir, htp);
	cf = load(text);
	free(text);
	if (access_init(cf, err, sizeof(err)) != 0)
		bail_out(err);
	is_int(allows(&alice, "docker.io", "any/repo", ACCESS_WANT_PULL, "-"),
	    1, "[auth] alone: a user pulls anything");
	is_int(allows(&anon, "docker.io", "any/repo", ACCESS_WANT_PULL, "-"),
	    0, "[auth] alone: anonymous pulls nothing");
	is_int(allows(&alice, "docker.io", NULL, ACCESS_WANT_CATALOG, "-"),
	    0, "[auth] alone: no catalog");
	ok(!access_anonymous_pulls("192.0.2.1"), "  anonymous pulls nothing");
	access_fini();
	config_free(cf);

	/* Docker Hub: a rule may name an official image without library/. */
	xasprintf(&text, "[server]\nlisten = 127.0.0.1:1\n[cache]\ndir = %s\n"
	    "[access \"nopub\"]\nusers = anonymous\n"
	    "repositories = docker.io/pub\nallow = none\n"
	    "[access \"hub\"]\nusers = anonymous\nrepositories = docker.io/**\n"
	    "[upstream \"docker.io\"]\nurl = https://r\n"
	    "[upstream \"ghcr.io\"]\nurl = https://g\n", dir);
	cf = load(text);
	free(text);
	if (access_init(cf, err, sizeof(err)) != 0)
		bail_out(err);
	is_int(allows(&anon, "docker.io", "library/pub", ACCESS_WANT_PULL,
	    "nopub"), 0, "docker.io/pub covers Docker Hub's library/pub");
	is_int(allows(&anon, "docker.io", "library/other", ACCESS_WANT_PULL,
	    "hub"), 1, "  and nothing else");
	access_fini();
	config_free(cf);

	/* Neither: everyone pulls. */
	cf = load("[server]\nlisten = 127.0.0.1:1\n"
	    "[upstream \"docker.io\"]\nurl = https://r\n");
	if (access_init(cf, err, sizeof(err)) != 0)
		bail_out(err);
	ok(!access_enabled(), "no [auth], no [access]: off");
	is_int(allows(&anon, "docker.io", "x", ACCESS_WANT_PULL, "-"), 1,
	    "  anonymous pulls");
	access_fini();
	config_free(cf);
}

/* Rules named NAME for alice on docker.io/REPOS, as a reload takes them. */
static struct config *
rules_conf(const char *htp, const char *name, const char *repos)
{
	struct config	*cf;
	char		*text;

	xasprintf(&text, "[server]\nlisten = 127.0.0.1:1\n[cache]\ndir = %s\n"
	    "[auth]\nhtpasswd = %s\n"
	    "[access \"%s\"]\nusers = alice\nrepositories = docker.io/%s\n"
	    "[upstream \"docker.io\"]\nurl = https://r\n", dir, htp, name,
	    repos);
	cf = load(text);
	free(text);
	return cf;
}

/* Take cf's rules (as proxy_reload.c does) and free the rest. */
static int
rules_reload(struct config *cf)
{
	struct config_access	*list = cf->access;
	size_t			 n = cf->naccess;

	cf->access = NULL;
	cf->naccess = 0;
	config_free(cf);
	return access_rules_reload(list, n, NULL, NULL);
}

struct hammer {
	atomic_int	stop;
	atomic_ulong	n;
	unsigned long	bad;
};

/* A worker deciding all the time: every answer is one rule's. */
static void *
hammer_main(void *arg)
{
	struct hammer		*h = arg;
	struct access_who	 alice = who(ACCESS_PASSWORD, "alice",
				    "10.0.0.1");
	struct access_decision	 d;

	while (!atomic_load(&h->stop)) {
		access_decide(&alice, "docker.io", "team-a/app",
		    ACCESS_WANT_PULL, &d);
		if (!(strcmp(d.rule, "one") == 0 && d.allowed) &&
		    !(strcmp(d.rule, "two") == 0 && !d.allowed))
			h->bad++;
		atomic_fetch_add(&h->n, 1);
	}
	return NULL;
}

static void
test_reload(const char *htp)
{
	struct config		*cf;
	struct access_who	 alice = who(ACCESS_PASSWORD, "alice",
				    "10.0.0.1");
	struct access_decision	 d0, d;
	struct hammer		 h;
	pthread_t		 t;
	char			 err[256];
	int			 i, swapped = 0;

	cf = rules_conf(htp, "one", "team-a/**");
	if (access_init(cf, err, sizeof(err)) != 0)
		bail_out(err);
	access_decide(&alice, "docker.io", "team-a/app", ACCESS_WANT_PULL,
	    &d0);
	is_str(d0.rule, "one", "reload: rule one decides first");
	is_int(rules_reload(rules_conf(htp, "one", "team-a/**")), 0,
	    "reload: the same rules are not swapped");
	memset(&h, 0, sizeof(h));
	if (pthread_create(&t, NULL, hammer_main, &h) != 0)
		bail_out("pthread_create");
	for (i = 0; i < 200; i++) {
		unsigned long n = atomic_load(&h.n);

		/* Interleaved: the worker decides between any two swaps. */
		while (atomic_load(&h.n) == n)
			sched_yield();
		swapped += rules_reload(i % 2 == 0 ?
		    rules_conf(htp, "two", "team-a/**\nallow = none") :
		    rules_conf(htp, "one", "team-a/**"));
	}
	atomic_store(&h.stop, 1);
	pthread_join(t, NULL);
	is_int(swapped, 200, "reload: 200 swaps");
	ok(atomic_load(&h.n) >= 200 && h.bad == 0, "reload: %lu decisions on "
	    "another thread, each one rule's whole answer (%lu not)",
	    atomic_load(&h.n), h.bad);
	is_int(rules_reload(rules_conf(htp, "two", "team-a/**\nallow = none")),
	    1, "reload: rule two now");
	access_decide(&alice, "docker.io", "team-a/app", ACCESS_WANT_PULL,
	    &d);
	ok(!d.allowed && strcmp(d.rule, "two") == 0, "  decides the next "
	    "request");
	is_str(d0.rule, "one", "  a decision's rule name outlives its rules");
	access_fini();
	config_free(cf);
}

static void
test_passwords(const char *htp)
{
	struct config	*cf;
	char		*text, err[256];
	long		 retry;
	int		 i;

	xasprintf(&text, "[server]\nlisten = 127.0.0.1:1\n[cache]\ndir = %s\n"
	    "[auth]\nhtpasswd = %s\nmax_login_failures = 3\n"
	    "[upstream \"docker.io\"]\nurl = https://r\n", dir, htp);
	cf = load(text);
	free(text);
	if (access_init(cf, err, sizeof(err)) != 0)
		bail_out(err);
	ok(!access_password_cached("alice", "s3cret"), "not cached at first");
	ok(access_password_check("alice", "s3cret"), "alice's password");
	ok(access_password_cached("alice", "s3cret"), "  then cached");
	ok(!access_password_cached("alice", "s3cre"), "  not another one");
	ok(!access_password_check("alice", "wrong"), "a wrong password");
	ok(!access_password_check("nobody", "s3cret"), "an unknown user");
	ok(!access_password_check("carol", "x"), "a non-bcrypt hash? (carol "
	    "is not in the file)");
	ok(access_password_check("bob", "pa:ss word"), "a password with ':' "
	    "and a space");
	ok(access_user_known("alice") && access_user_known("bob"),
	    "alice and bob are known users");
	ok(!access_user_known("nobody") && !access_user_known("alic") &&
	    !access_user_known(""), "  nobody, alic and \"\" are not");
	if (access_reload(cf, err, sizeof(err)) != 0)
		bail_out(err);
	ok(!access_password_cached("alice", "s3cret"), "reload forgets the "
	    "cache");

	ok(!access_login_blocked("192.0.2.9", &retry), "no failures: free");
	for (i = 0; i < 3; i++)
		access_login_failed("192.0.2.9");
	ok(access_login_blocked("192.0.2.9", &retry) && retry > 0 &&
	    retry <= 60, "3 failures (max 3): blocked, Retry-After %ld",
	    retry);
	ok(!access_login_blocked("192.0.2.10", &retry), "  another address "
	    "is not");
	access_fini();
	config_free(cf);
}

/* Replace the n-th '.'-part of a token with repl. */
static char *
token_part(const char *t, int n, const char *repl)
{
	const char	*d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.');
	char		*out;

	if (n == 0)
		xasprintf(&out, "%s%s", repl, d1);
	else if (n == 1)
		xasprintf(&out, "%.*s.%s%s", (int)(d1 - t), t, repl, d2);
	else
		xasprintf(&out, "%.*s.%s", (int)(d2 - t), t, repl);
	return out;
}

static void
test_tokens(const char *htp)
{
	struct config		*cf;
	struct access_token	 t;
	struct access_grant	 g[2] = { { "docker.io", "team-a/app" },
	    { "ghcr.io", "x/y" } };
	char			*text, *tok, *bad, err[256], key[600];
	struct stat		 st;
	time_t			 now = time(NULL);

	xasprintf(&text, "[server]\nlisten = 127.0.0.1:1\n[cache]\ndir = %s\n"
	    "[auth]\nhtpasswd = %s\ntoken_ttl = 1m\n"
	    "[upstream \"docker.io\"]\nurl = https://r\n", dir, htp);
	cf = load(text);
	free(text);
	if (access_init(cf, err, sizeof(err)) != 0)
		bail_out(err);
	snprintf(key, sizeof(key), "%s/token.key", dir);
	ok(stat(key, &st) == 0 && (st.st_mode & 0777) == 0600 &&
	    st.st_size == 32, "the key is made in the cache dir, 0600");

	tok = access_token_issue("alice", g, 2, 0, now);
	is_int(access_token_verify(tok, now, &t), 0, "a token verifies");
	is_str(t.user, "alice", "  its user");
	ok(access_token_grants(&t, "docker.io", "team-a/app",
	    ACCESS_WANT_PULL) && access_token_grants(&t, "ghcr.io", "x/y",
	    ACCESS_WANT_PULL), "  its grants");
	ok(!access_token_grants(&t, "docker.io", "team-b/app",
	    ACCESS_WANT_PULL) && !access_token_grants(&t, "ghcr.io",
	    "team-a/app", ACCESS_WANT_PULL), "  nothing else");
	ok(!access_token_grants(&t, "docker.io", NULL, ACCESS_WANT_CATALOG),
	    "  no catalog");
	access_token_free(&t);
	is_int(access_token_verify(tok, now + 61, &t), -1, "expired after "
	    "token_ttl");

	/* Forgeries. */
	bad = token_part(tok, 0, "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0");
	is_int(access_token_verify(bad, now, &t), -1, "alg none refused");
	free(bad);
	bad = token_part(tok, 1, "eyJzdWIiOiJib2IifQ");
	is_int(access_token_verify(bad, now, &t), -1, "another payload, "
	    "same signature: refused");
	free(bad);
	bad = token_part(tok, 2, "AAAA");
	is_int(access_token_verify(bad, now, &t), -1, "another signature");
	free(bad);
	bad = token_part(tok, 2, "");
	is_int(access_token_verify(bad, now, &t), -1, "no signature");
	free(bad);
	is_int(access_token_verify("a.b", now, &t), -1, "two parts");
	is_int(access_token_verify("", now, &t), -1, "empty");
	is_int(access_token_verify("a.b.c.d", now, &t), -1, "four parts");
	free(tok);

	tok = access_token_issue(NULL, NULL, 0, 1, now);
	ok(access_token_verify(tok, now, &t) == 0 && t.user[0] == '\0' &&
	    t.catalog && t.ngrants == 0, "an anonymous catalog token");
	access_token_free(&t);
	access_fini();

	/* The same key after a restart; another key refuses it. */
	if (access_init(cf, err, sizeof(err)) != 0)
		bail_out(err);
	ok(access_token_verify(tok, now, &t) == 0, "the key is kept: a token "
	    "verifies after a restart");
	access_token_free(&t);
	access_fini();
	unlink(key);
	if (access_init(cf, err, sizeof(err)) != 0)
		bail_out(err);
	is_int(access_token_verify(tok, now, &t), -1, "a new key refuses it");
	access_fini();
	free(tok);
	config_free(cf);
}

int
main(void)
{
	char	 htp[600], *a, *b;
	FILE	*f;

	alarm(60);
	log_set_level(LOG_LEVEL_WARN);
	if (mkdtemp(dir) == NULL)
		bail_out("mkdtemp");
	snprintf(htp, sizeof(htp), "%s/htpasswd", dir);
	a = bcrypt("s3cret");
	b = bcrypt("pa:ss word");
	if ((f = fopen(htp, "w")) == NULL)
		bail_out("htpasswd");
	fprintf(f, "# users\nalice:%s\n\nbob:%s\r\n", a, b);
	fclose(f);
	free(a);
	free(b);

	test_globs();
	test_rules(htp);
	test_reload(htp);
	test_passwords(htp);
	test_tokens(htp);
	{
		char	 cmd[700];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			diag("could not remove %s", dir);
	}
	return done_testing();
}
