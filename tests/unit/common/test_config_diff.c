/*
 * test_config_diff.c — what a SIGHUP compares (common/config_diff.c):
 * every key that needs a restart is named once with its section, the
 * keys a reload takes over are not, and the helpers that tell whether
 * credentials, a policy or the rules changed.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/xmalloc.h"
#include "tests/lib/tap.h"

static char	pw1[] = "/tmp/test_config_diff.1.XXXXXX";
static char	pw2[] = "/tmp/test_config_diff.2.XXXXXX";

static void
secret(char *path, const char *text)
{
	int	fd;

	if ((fd = mkstemp(path)) == -1 ||
	    write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		bail_out("cannot write a password file");
	close(fd);
}

/* The template's %s: where the variants differ. */
static struct config *
load(const char *fmt, const char *a, const char *b)
{
	struct config	*cf;
	char		*text, err[512];

	char		*at;

	xasprintf(&text, fmt, a, b);
	/* [auth] needs a readable htpasswd (any file: not parsed here). */
	if ((at = strstr(text, "@HT@")) != NULL) {
		char *t2;

		*at = '\0';
		xasprintf(&t2, "%s%s%s", text, pw1, at + 4);
		free(text);
		text = t2;
	}
	if (config_load_string("mirror.conf", text, &cf, err,
	    sizeof(err)) != 0)
		bail_out(err);
	free(text);
	return cf;
}

struct seen {
	char	buf[1024];
};

static void
seen_cb(const char *section, const char *key, void *arg)
{
	struct seen	*s = arg;
	size_t		 len = strlen(s->buf);

	snprintf(s->buf + len, sizeof(s->buf) - len, "%s%s %s",
	    len > 0 ? "; " : "", section, key);
}

/* The restart differences of a against b, as "SECTION KEY; ...". */
static unsigned
diff(const struct config *a, const struct config *b, struct seen *s)
{
	memset(s, 0, sizeof(*s));
	return config_diff_restart(a, b, seen_cb, s);
}

static const char base[] =
    "[server]\nlisten = %s\n"
    "[upstream \"reg.example\"]\nurl = http://127.0.0.1:5001\n"
    "username = u\npassword_file = %s\n"
    "[auth]\nhtpasswd = @HT@\n"
    "[access \"all\"]\nusers = *\nrepositories = **\n"
    "[replication \"p\"]\nsource = reg.example\nrepositories = a\n"
    "tags = v.*\n";

static void
test_restart_keys(void)
{
	struct config	*a, *b;
	struct seen	 s;

	a = load(base, "127.0.0.1:5000", pw1);
	b = load(base, "127.0.0.1:5000", pw1);
	is_int(diff(a, b, &s), 0, "the same file: nothing differs");
	is_str(s.buf, "", "  and cb was not called");
	config_free(b);

	b = load(base, "127.0.0.1:5999", pw1);
	is_int(diff(a, b, &s), 1, "listen changed: one difference");
	is_str(s.buf, "[server] listen", "  named with its section");
	config_free(b);

	/* Credentials reload: not a restart difference. */
	b = load(base, "127.0.0.1:5000", pw2);
	is_int(diff(a, b, &s), 0, "password_file changed: reloads");
	ok(!config_upstream_creds_equal(a->upstreams, b->upstreams),
	    "  the credentials differ (the password read)");
	ok(config_upstream_creds_equal(a->upstreams, a->upstreams),
	    "  and equal themselves");
	config_free(b);
	config_free(a);
}

static const char more[] =
    "[server]\nlisten = 127.0.0.1:5000\nworkers = %s\n"
    "[cache]\ndir = /tmp/x\n"
    "[upstream \"reg.example\"]\nurl = %s\n"
    "tag_ttl_for = v*:1m\n"
    "[access \"all\"]\nusers = anonymous\nrepositories = **\n";

static void
test_sections(void)
{
	struct config	*a, *b;
	struct seen	 s;

	a = load(more, "2", "http://127.0.0.1:5001");
	b = load(more, "3", "http://127.0.0.1:5002");
	is_int(diff(a, b, &s), 2, "workers and an upstream's url");
	is_str(s.buf, "[server] workers; [upstream \"reg.example\"] url",
	    "  each named once, in table order");
	config_free(b);

	/* tag_ttl_for: the same globs, another duration. */
	b = load("[server]\nlisten = 127.0.0.1:5000\nworkers = %s\n"
	    "[cache]\ndir = /tmp/x\n"
	    "[upstream \"reg.example\"]\nurl = %s\n"
	    "tag_ttl_for = v*:2m\n"
	    "[access \"all\"]\nusers = anonymous\nrepositories = **\n",
	    "2", "http://127.0.0.1:5001");
	is_int(diff(a, b, &s), 1, "tag_ttl_for: a duration changed");
	is_str(s.buf, "[upstream \"reg.example\"] tag_ttl_for", "  named");
	config_free(b);

	/* An upstream added, and access control turned off. */
	b = load("[server]\nlisten = 127.0.0.1:5000\nworkers = %s\n"
	    "[cache]\ndir = /tmp/x\n"
	    "[upstream \"reg.example\"]\nurl = %s\n"
	    "tag_ttl_for = v*:1m\n"
	    "[upstream \"other.example\"]\nurl = http://127.0.0.1:5003\n",
	    "2", "http://127.0.0.1:5001");
	/* A lone upstream is the default one; with two it is not. */
	is_int(diff(a, b, &s), 3, "an upstream added, rules all gone");
	is_str(s.buf, "[auth] access control on or off; "
	    "[upstream \"reg.example\"] default; "
	    "[upstream \"other.example\"] added", "  each named");
	is_int(diff(b, a, &s), 3, "and the other way round");
	is_str(s.buf, "[auth] access control on or off; "
	    "[upstream \"reg.example\"] default; "
	    "[upstream \"other.example\"] removed", "  removed");
	config_free(b);
	config_free(a);
}

static const char policy[] =
    "[server]\nlisten = 127.0.0.1:5000\n"
    "[upstream \"reg.example\"]\nurl = http://127.0.0.1:5001\n"
    "[replication \"p\"]\nsource = reg.example\nrepositories = a\n"
    "tags = %s\n%s";

static void
test_policies(void)
{
	struct config	*a, *b;
	struct seen	 s;

	a = load(policy, "v.*", "");
	b = load(policy, "v1.*", "");
	is_int(diff(a, b, &s), 0, "a policy's tags: reloads");
	ok(!config_replication_equal(a->replications, b->replications),
	    "  the policies differ");
	ok(config_replication_equal(a->replications, a->replications),
	    "  a policy equals itself");
	config_free(b);

	b = load(policy, "v.*", "[replication \"q\"]\nsource = reg.example\n"
	    "repositories = b\n");
	is_int(diff(a, b, &s), 1, "a policy added");
	is_str(s.buf, "[replication \"q\"] added", "  needs a restart");
	config_free(b);
	config_free(a);
}

static const char rules[] =
    "[server]\nlisten = 127.0.0.1:5000\n"
    "[upstream \"reg.example\"]\nurl = http://127.0.0.1:5001\n"
    "[auth]\nhtpasswd = @HT@\n"
    "[access \"%s\"]\nusers = *\nrepositories = %s\n";

static void
test_rules(void)
{
	struct config	*a, *b;
	struct seen	 s;

	a = load(rules, "r", "reg.example/**");
	b = load(rules, "r", "reg.example/a/**");
	is_int(diff(a, b, &s), 0, "a rule's repositories: reloads");
	ok(!config_access_equal(a->access, b->access), "  the rules differ");
	ok(config_access_equal(a->access, a->access), "  rules equal "
	    "themselves");
	config_free(b);
	b = load(rules, "s", "reg.example/**");
	ok(!config_access_equal(a->access, b->access), "a rule renamed "
	    "differs");
	ok(!config_access_equal(a->access, NULL), "rules differ from none");
	config_access_list_free(b->access);
	b->access = NULL;
	b->naccess = 0;
	config_free(b);
	config_free(a);
}

/*
 * A reload's rules and credentials against the listeners that still run
 * (proxy_reload.c): a file that is fine on loopback fails closed where
 * the mirror still listens off loopback.
 */
static void
test_fail_closed(void)
{
	struct config	*a, mix;
	static char	 addr[] = "0.0.0.0:5000";
	char		*pub[] = { addr }, err[512];

	a = load("[server]\nlisten = %s\n"
	    "[upstream \"reg.example\"]\nurl = https://r\n"
	    "username = u\npassword_file = %s\n", "127.0.0.1:5000", pw1);
	is_int(config_fail_closed_check(a, err, sizeof(err)), 0,
	    "fail closed: credentials, no rules, loopback: fine");
	mix = *a;
	mix.listen = pub;
	mix.nlisten = 1;
	is_int(config_fail_closed_check(&mix, err, sizeof(err)), -1,
	    "  the same with a listener off loopback: refused");
	ok(strncmp(err, "mirror.conf:3: upstream 'reg.example' has "
	    "credentials", 40) == 0, "  naming FILE:LINE: %s", err);
	config_free(a);
}

int
main(void)
{
	secret(pw1, "one\n");
	secret(pw2, "two\n");
	test_restart_keys();
	test_sections();
	test_policies();
	test_rules();
	test_fail_closed();
	unlink(pw1);
	unlink(pw2);
	return done_testing();
}
