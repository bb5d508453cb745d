/*
 * test_config.c — mirror.conf: a full file, every default, the value
 * parsers, and each error message with the line it must point at (and
 * the key or section it suggests).
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/xmalloc.h"
#include "tests/lib/tap.h"

#define MINIMAL_UPSTREAM \
	"[upstream \"docker.io\"]\nurl = https://registry-1.docker.io\n"

static char	tmp_paths[32][32];
static int	ntmp;

/* A new file under /tmp holding data; removed at the end of the run. */
static const char *
tmpfile_with(const char *data, size_t len)
{
	char	*path;
	int	 fd;

	if (ntmp == (int)(sizeof(tmp_paths) / sizeof(tmp_paths[0])))
		bail_out("too many temporary files");
	path = tmp_paths[ntmp++];
	strcpy(path, "/tmp/test_config.XXXXXX");
	if ((fd = mkstemp(path)) == -1)
		bail_out("mkstemp failed");
	if (write(fd, data, len) != (ssize_t)len)
		bail_out("write failed");
	close(fd);
	return path;
}

static void
tmpfiles_remove(void)
{
	int	i;

	for (i = 0; i < ntmp; i++)
		unlink(tmp_paths[i]);
}

/* Load text; on failure the error is diagnosed. */
static struct config *
load(const char *text)
{
	struct config	*cf;
	char		 err[512];

	if (config_load_string("mirror.conf", text, &cf, err,
	    sizeof(err)) == -1) {
		diag("unexpected error: %s", err);
		return NULL;
	}
	return cf;
}

/* text must fail with exactly want. */
static void
load_fails(const char *text, const char *want)
{
	struct config	*cf = (struct config *)&cf;	/* not NULL */
	char		 err[512];

	if (!is_int(config_load_string("mirror.conf", text, &cf, err,
	    sizeof(err)), -1, "fails: %s", want)) {
		config_free(cf);
		skip(2, "loaded");
		return;
	}
	ok(cf == NULL, "  *out is NULL");
	is_str(err, want, "  message");
}

static void
test_full(void)
{
	struct config_upstream	*up;
	struct config		*cf;
	const char		*pwfile, *cafile;
	char			*text;

	pwfile = tmpfile_with("s3cret\n", 7);
	cafile = tmpfile_with("-----BEGIN CERTIFICATE-----\n", 28);
	xasprintf(&text,
	    "# regmirror configuration\n"
	    "; another comment style\n"
	    "\n"
	    "[server]\n"
	    "listen = 0.0.0.0:5000, [::]:5000\n"
	    "listen = :5001   # comment after whitespace\n"
	    "admin_listen = 127.0.0.1:5080\n"
	    "tls_cert = /etc/regmirror/cert.pem\n"
	    "tls_key = \"/etc/regmirror/key.pem\"\n"
	    "workers = 4\n"
	    "log_level = debug\n"
	    "max_header_size = 32K\n"
	    "\n"
	    "[cache]\n"
	    "   dir   =   /srv/cache   \n"
	    "max_size = 200G\n"
	    "tag_ttl = 10m\n"
	    "tag_max_age = 7d\n"
	    "max_negative = 500\n"
	    "gc_interval = 30s\n"
	    "gc_grace = 2h\n"
	    "\n"
	    "[upstream \"docker.io\"]\n"
	    "url = https://registry-1.docker.io/\n"
	    "url = https://mirror.gcr.io\n"
	    "aliases = index.docker.io, registry-1.docker.io\n"
	    "default = yes\n"
	    "username = bob\n"
	    "password_file = %s\n"
	    "public = yes\n"
	    "tag_ttl = 1h\n"
	    "\n"
	    "[upstream \"ghcr.io\"]\n"
	    "url = https://ghcr.io\n"
	    "\n"
	    "[upstream \"registry.internal:5000\"]\n"
	    "url = http://10.0.0.5:5000, http://[fd00::5]:5000/\n"
	    "ca_file = %s\n"
	    "tls_verify = off\n"
	    "\n"
	    "[timeouts]\n"
	    "connect = 3s\n"
	    "first_byte = 2m\n"
	    "idle = 90\n", pwfile, cafile);
	cf = load(text);
	free(text);
	if (!ok(cf != NULL, "full file loads"))
		bail_out("cannot go on");

	is_str(cf->path, "mirror.conf", "path");
	is_int(cf->nlisten, 3, "three listen addresses");
	is_str(cf->listen[0], "0.0.0.0:5000", "listen[0]");
	is_str(cf->listen[1], "[::]:5000", "listen[1]");
	is_str(cf->listen[2], ":5001", "listen[2] (comment stripped)");
	is_str(cf->admin_listen, "127.0.0.1:5080", "admin_listen");
	is_str(cf->tls_cert, "/etc/regmirror/cert.pem", "tls_cert");
	is_str(cf->tls_key, "/etc/regmirror/key.pem", "tls_key (quoted)");
	is_int(cf->workers, 4, "workers");
	is_str(cf->log_level, "debug", "log_level");
	is_int(cf->max_header_size, 32 * 1024, "max_header_size");
	is_str(cf->cache_dir, "/srv/cache", "cache dir (trimmed)");
	ok(cf->max_size == 200ULL << 30, "max_size 200G");
	is_int(cf->tag_ttl, 600, "cache tag_ttl");
	is_int(cf->tag_max_age, 7 * 86400, "tag_max_age");
	is_int(cf->max_negative, 500, "max_negative");
	is_int(cf->gc_interval, 30, "gc_interval");
	is_int(cf->gc_grace, 7200, "gc_grace");
	is_int(cf->connect_timeout, 3, "connect");
	is_int(cf->first_byte_timeout, 120, "first_byte");
	is_int(cf->idle_timeout, 90, "idle");
	is_int(cf->nupstreams, 3, "three upstreams");

	up = cf->upstreams;
	is_str(up->name, "docker.io", "upstream 1 name");
	is_int(up->nurls, 2, "  two urls");
	is_str(up->urls[0], "https://registry-1.docker.io", "  '/' stripped");
	is_str(up->urls[1], "https://mirror.gcr.io", "  second url");
	is_int(up->naliases, 2, "  two aliases");
	is_str(up->aliases[0], "index.docker.io", "  alias 0");
	is_str(up->aliases[1], "registry-1.docker.io", "  alias 1");
	is_int(up->is_default, 1, "  default");
	is_str(up->username, "bob", "  username");
	is_str(up->password, "s3cret", "  password read, newline dropped");
	is_str(up->password_file, pwfile, "  password_file");
	is_str(up->ca_file, NULL, "  no ca_file");
	is_int(up->tls_verify, 1, "  tls_verify default");
	is_int(up->tag_ttl, 3600, "  tag_ttl");

	up = up->next;
	is_str(up->name, "ghcr.io", "upstream 2 name");
	is_int(up->nurls, 1, "  one url");
	is_int(up->naliases, 0, "  no aliases");
	is_int(up->is_default, 0, "  not default");
	is_str(up->username, NULL, "  anonymous");
	is_str(up->password, NULL, "  no password");
	is_int(up->tag_ttl, -1, "  tag_ttl unset");

	up = up->next;
	is_str(up->name, "registry.internal:5000", "upstream 3 name");
	is_str(up->urls[0], "http://10.0.0.5:5000", "  url 0");
	is_str(up->urls[1], "http://[fd00::5]:5000", "  url 1 (v6)");
	is_str(up->ca_file, cafile, "  ca_file");
	is_int(up->tls_verify, 0, "  tls_verify off");
	ok(up->next == NULL, "no fourth upstream");

	ok(config_upstream_default(cf) == cf->upstreams, "default upstream");
	ok(config_upstream_find(cf, "docker.io") == cf->upstreams,
	    "find by name");
	ok(config_upstream_find(cf, "INDEX.Docker.IO") == cf->upstreams,
	    "find by alias, case-insensitive");
	ok(config_upstream_find(cf, "GHCR.io") == cf->upstreams->next,
	    "find ghcr.io");
	ok(config_upstream_find(cf, "quay.io") == NULL, "unknown: NULL");
	ok(config_upstream_find(cf, NULL) == NULL, "NULL: NULL");
	config_free(cf);
	config_free(NULL);
}

static void
test_defaults(void)
{
	struct config	*cf;

	cf = load(MINIMAL_UPSTREAM);
	if (!ok(cf != NULL, "minimal file loads"))
		return;
	is_int(cf->nlisten, 1, "one default listen");
	is_str(cf->listen[0], "0.0.0.0:5000", "listen default");
	is_str(cf->admin_listen, NULL, "no admin_listen");
	is_str(cf->tls_cert, NULL, "no tls_cert");
	is_str(cf->tls_key, NULL, "no tls_key");
	is_int(cf->workers, 0, "workers auto");
	is_str(cf->log_level, "info", "log_level info");
	is_str(cf->access_log, "text", "access_log text");
	is_int(cf->max_header_size, 16 * 1024, "max_header_size 16K");
	is_str(cf->cache_dir, "/var/lib/regmirror", "cache dir");
	ok(cf->max_size == 0, "max_size unlimited");
	is_int(cf->tag_ttl, 300, "tag_ttl 5m");
	is_int(cf->tag_max_age, 30 * 86400, "tag_max_age 30d");
	is_int(cf->max_negative, 10000, "max_negative 10000");
	is_int(cf->gc_interval, 300, "gc_interval 5m");
	is_int(cf->gc_grace, 3600, "gc_grace 1h");
	is_int(cf->connect_timeout, 5, "connect 5s");
	is_int(cf->first_byte_timeout, 30, "first_byte 30s");
	is_int(cf->idle_timeout, 60, "idle 60s");
	is_int(cf->nupstreams, 1, "one upstream");
	is_int(cf->upstreams->is_default, 1, "the only upstream is default");
	is_int(cf->upstreams->tls_verify, 1, "tls_verify yes");
	is_int(cf->upstreams->tag_ttl, -1, "upstream tag_ttl unset");
	is_str(cf->upstreams->ca_file, NULL, "system CA store");
	config_free(cf);

	cf = load("[server]\nworkers = auto\n" MINIMAL_UPSTREAM
	    "default = no\n");
	if (ok(cf != NULL, "explicit default = no")) {
		is_int(cf->upstreams->is_default, 1,
		    "  a single upstream is default anyway");
		config_free(cf);
	}

	cf = load(MINIMAL_UPSTREAM "[upstream \"ghcr.io\"]\n"
	    "url = https://ghcr.io\n");
	if (ok(cf != NULL, "two upstreams, none default")) {
		ok(config_upstream_default(cf) == NULL, "  no default");
		config_free(cf);
	}

	cf = load(MINIMAL_UPSTREAM "[upstream \"ghcr.io\"]\n"
	    "url = https://ghcr.io\ndefault = true\n");
	if (ok(cf != NULL, "second upstream default")) {
		ok(config_upstream_default(cf) == cf->upstreams->next,
		    "  it is the default");
		config_free(cf);
	}
}

static void
test_syntax(void)
{
	struct config	*cf;
	char		*text;

	/* A UTF-8 BOM is not silently skipped. */
	load_fails("\xef\xbb\xbf" MINIMAL_UPSTREAM,
	    "mirror.conf:1: malformed line (expected 'key = value')");

	cf = load("[server]\r\nlisten = :80\r\n\r\n"
	    "[upstream \"docker.io\"]\r\nurl = https://r\r\n");
	if (ok(cf != NULL, "CRLF line endings")) {
		is_str(cf->listen[0], ":80", "  no CR in values");
		is_str(cf->upstreams->urls[0], "https://r", "  nor in urls");
		config_free(cf);
	}

	xasprintf(&text, "[ server ]\n\tlisten=:80\n"
	    "  ; indented comment\n"
	    "\t# indented comment\n"
	    "[Upstream \"docker.io\"] # comment\n"
	    "URL = https://r ; comment\n"
	    "username = u;v#w   # trailing\n"
	    "password_file = \"%s\"\n"
	    "Public = Yes\n", tmpfile_with("pw", 2));
	cf = load(text);
	free(text);
	if (ok(cf != NULL, "comments, case, whitespace")) {
		is_str(cf->listen[0], ":80", "  listen");
		is_str(cf->upstreams->urls[0], "https://r", "  url");
		is_str(cf->upstreams->username, "u;v#w", "  '#' and ';' kept");
		is_str(cf->upstreams->password, "pw", "  password");
		config_free(cf);
	}

	cf = load("[server]\nlisten = \":80\" ; c\n" MINIMAL_UPSTREAM
	    "[cache]\ndir = /srv/a#b;c\n"
	    "[timeouts]\nidle = \"7d\"");
	if (ok(cf != NULL, "quotes, and '#' without whitespace")) {
		is_str(cf->listen[0], ":80", "  quoted listen");
		is_str(cf->cache_dir, "/srv/a#b;c", "  '#' and ';' kept");
		is_int(cf->idle_timeout, 7 * 86400, "  last line, no newline");
		config_free(cf);
	}

	cf = load("[server]\nlisten = :80 #\n[cache]\ndir = \"a \\\"q\\\" "
	    "\\\\ b\"\n" MINIMAL_UPSTREAM);
	if (ok(cf != NULL, "escapes in a quoted value")) {
		is_str(cf->cache_dir, "a \"q\" \\ b", "  unescaped");
		config_free(cf);
	}

	cf = load("[server]\nlisten = :1\n[server]\nlisten = :2\n"
	    "[upstream \"docker.io\"]\nurl = https://a, https://b\n"
	    "[cache]\n[timeouts]\n");
	if (ok(cf != NULL, "a section may be repeated")) {
		is_int(cf->nlisten, 2, "  listens add up");
		is_int(cf->upstreams->nurls, 2, "  url list");
		config_free(cf);
	}

	cf = load("[server]\nlog_level = WARN\n" MINIMAL_UPSTREAM);
	if (ok(cf != NULL, "log_level is case-insensitive")) {
		is_str(cf->log_level, "warn", "  stored in lower case");
		config_free(cf);
	}

	cf = load("[server]\naccess_log = JSON\n" MINIMAL_UPSTREAM);
	if (ok(cf != NULL, "access_log json")) {
		is_str(cf->access_log, "json", "  stored in lower case");
		config_free(cf);
	}
}

static void
test_errors(void)
{
	char	*text, line[9000];

	/* The examples from the spec, and the syntax errors. */
	load_fails("[server]\nlisen = :5000\n" MINIMAL_UPSTREAM,
	    "mirror.conf:2: unknown key 'lisen' in [server] (did you mean "
	    "'listen'?)");
	load_fails(MINIMAL_UPSTREAM "tag_ttl = 5x\n",
	    "mirror.conf:3: bad duration '5x' for tag_ttl");
	load_fails(MINIMAL_UPSTREAM "bogus = 1\n",
	    "mirror.conf:3: unknown key 'bogus' in [upstream \"docker.io\"]");
	load_fails("[cache]\nlisten = :80\n",
	    "mirror.conf:2: unknown key 'listen' in [cache]");
	load_fails("# hello\n\nlisten = :5000\n",
	    "mirror.conf:3: key 'listen' outside of any section");
	load_fails("[server]\n\n\njunk\n",
	    "mirror.conf:4: malformed line (expected 'key = value')");
	load_fails("[server]\n = x\n", "mirror.conf:2: missing key before '='");
	load_fails("[server]\nlis ten = x\n",
	    "mirror.conf:2: malformed key 'lis ten'");
	load_fails("\n\n[server\nlisten = :80\n",
	    "mirror.conf:3: unterminated section header");
	load_fails("[upstream \"docker.io]\n",
	    "mirror.conf:1: unterminated section header");
	load_fails("[upstream \"docker.io\"\n",
	    "mirror.conf:1: unterminated section header");
	load_fails("[]\n", "mirror.conf:1: malformed section header");
	load_fails("[ser ver]\n", "mirror.conf:1: malformed section header");
	load_fails("[server] x\n", "mirror.conf:1: junk after section header");
	load_fails("[serverx]\n", "mirror.conf:1: unknown section [serverx] "
	    "(did you mean [server]?)");
	load_fails("[server \"x\"]\n",
	    "mirror.conf:1: section [server] takes no name");
	load_fails("[upstream]\n", "mirror.conf:1: [upstream] needs a quoted "
	    "name: [upstream \"registry.example.com\"]");
	load_fails("[upstream \"bad name\"]\n", "mirror.conf:1: bad upstream "
	    "name 'bad name' (want a registry host such as \"docker.io\")");
	load_fails("[upstream \"\"]\n", "mirror.conf:1: bad upstream "
	    "name '' (want a registry host such as \"docker.io\")");
	load_fails("[upstream \"https://x\"]\n", "mirror.conf:1: bad upstream "
	    "name 'https://x' (want a registry host such as \"docker.io\")");
	load_fails("[upstream \"x:99999\"]\n", "mirror.conf:1: bad upstream "
	    "name 'x:99999' (want a registry host such as \"docker.io\")");
	load_fails("[server]\nlisten = \":80\n",
	    "mirror.conf:2: unterminated quoted value");
	load_fails("[server]\nlisten = \":80\" x\n",
	    "mirror.conf:2: junk after quoted value");
	load_fails("[server]\nlisten = \":80\\n\"\n",
	    "mirror.conf:2: bad escape in quoted value (only \\\" and \\\\)");
	load_fails("[server]\nworkers = 2\nworkers = 3\n",
	    "mirror.conf:3: duplicate key 'workers' in [server]");
	load_fails("[cache]\ndir = /a\n[cache]\ndir = /b\n",
	    "mirror.conf:4: duplicate key 'dir' in [cache]");
	load_fails(MINIMAL_UPSTREAM "default = yes\ndefault = yes\n",
	    "mirror.conf:4: duplicate key 'default' in "
	    "[upstream \"docker.io\"]");

	/* Whole-file and whole-section checks. */
	load_fails("", "mirror.conf:0: no [upstream] section");
	load_fails("[server]\nlisten = :5000\n",
	    "mirror.conf:0: no [upstream] section");
	load_fails("[server]\n[upstream \"docker.io\"]\n\n[cache]\n",
	    "mirror.conf:2: upstream 'docker.io' has no url");
	load_fails("[upstream \"docker.io\"]\n",
	    "mirror.conf:1: upstream 'docker.io' has no url");
	load_fails("\n" MINIMAL_UPSTREAM "username = bob\n",
	    "mirror.conf:2: upstream 'docker.io': username requires "
	    "password_file");
	load_fails("[server]\n\ntls_cert = /c.pem\n" MINIMAL_UPSTREAM,
	    "mirror.conf:3: tls_cert requires tls_key");
	load_fails("[server]\ntls_key = /k.pem\n" MINIMAL_UPSTREAM,
	    "mirror.conf:2: tls_key requires tls_cert");
	load_fails("[server]\ntls_key = \"\"\n" MINIMAL_UPSTREAM,
	    "mirror.conf:2: empty path for tls_key");

	/* Upstream names and aliases. */
	load_fails(MINIMAL_UPSTREAM "[upstream \"Docker.IO\"]\n",
	    "mirror.conf:3: duplicate upstream 'Docker.IO' (already used by "
	    "upstream 'docker.io')");
	load_fails(MINIMAL_UPSTREAM "aliases = index.docker.io\n"
	    "[upstream \"index.docker.io\"]\n",
	    "mirror.conf:4: duplicate upstream 'index.docker.io' (already "
	    "used by upstream 'docker.io')");
	load_fails(MINIMAL_UPSTREAM "[upstream \"ghcr.io\"]\n"
	    "url = https://ghcr.io\naliases = a.io, docker.io\n",
	    "mirror.conf:5: alias 'docker.io' is already used by upstream "
	    "'docker.io'");
	load_fails(MINIMAL_UPSTREAM "aliases = a.io\n[upstream \"ghcr.io\"]\n"
	    "url = https://ghcr.io\naliases = A.IO\n",
	    "mirror.conf:6: alias 'A.IO' is already used by upstream "
	    "'docker.io'");
	load_fails(MINIMAL_UPSTREAM "aliases = a.io, a.io\n",
	    "mirror.conf:3: alias 'a.io' is already used by upstream "
	    "'docker.io'");
	load_fails(MINIMAL_UPSTREAM "aliases = docker.io\n",
	    "mirror.conf:3: alias 'docker.io' is already used by upstream "
	    "'docker.io'");
	load_fails(MINIMAL_UPSTREAM "aliases = a b\n",
	    "mirror.conf:3: bad alias 'a b' (want a registry host)");
	load_fails(MINIMAL_UPSTREAM "aliases = a.io,,b.io\n",
	    "mirror.conf:3: empty element in aliases list 'a.io,,b.io'");
	load_fails(MINIMAL_UPSTREAM "default = yes\n[upstream \"ghcr.io\"]\n"
	    "url = https://ghcr.io\n\ndefault = on\n",
	    "mirror.conf:7: upstream 'ghcr.io' cannot be default: "
	    "'docker.io' already is");
	load_fails(MINIMAL_UPSTREAM "default = maybe\n",
	    "mirror.conf:3: bad boolean 'maybe' for default");
	load_fails(MINIMAL_UPSTREAM "tls_verify = 2\n",
	    "mirror.conf:3: bad boolean '2' for tls_verify");

	/* URLs. */
	load_fails("[upstream \"docker.io\"]\nurl = ftp://r\n",
	    "mirror.conf:2: bad url 'ftp://r' (want http(s)://host[:port] "
	    "with no path)");
	load_fails("[upstream \"docker.io\"]\nurl = https://\n",
	    "mirror.conf:2: bad url 'https://' (want http(s)://host[:port] "
	    "with no path)");
	load_fails("[upstream \"docker.io\"]\nurl = https://r/v2\n",
	    "mirror.conf:2: bad url 'https://r/v2' (want "
	    "http(s)://host[:port] with no path)");
	load_fails("[upstream \"docker.io\"]\nurl = https://r//\n",
	    "mirror.conf:2: bad url 'https://r//' (want "
	    "http(s)://host[:port] with no path)");
	load_fails("[upstream \"docker.io\"]\nurl = https://u:p@r\n",
	    "mirror.conf:2: bad url 'https://u:p@r' (want "
	    "http(s)://host[:port] with no path)");
	load_fails("[upstream \"docker.io\"]\nurl = https://r:0\n",
	    "mirror.conf:2: bad url 'https://r:0' (want "
	    "http(s)://host[:port] with no path)");
	load_fails("[upstream \"docker.io\"]\nurl = https://r:\n",
	    "mirror.conf:2: bad url 'https://r:' (want "
	    "http(s)://host[:port] with no path)");
	load_fails("[upstream \"docker.io\"]\nurl = https://r?x\n",
	    "mirror.conf:2: bad url 'https://r?x' (want "
	    "http(s)://host[:port] with no path)");
	load_fails("[upstream \"docker.io\"]\nurl = HTTPS://r\n",
	    "mirror.conf:2: bad url 'HTTPS://r' (want "
	    "http(s)://host[:port] with no path)");
	load_fails("[upstream \"docker.io\"]\nurl = https://a,\n",
	    "mirror.conf:2: empty element in url list 'https://a,'");
	load_fails("[upstream \"docker.io\"]\nurl =\n",
	    "mirror.conf:2: empty element in url list ''");

	/* [server] values. */
	load_fails("[server]\nlisten = 5000\n",
	    "mirror.conf:2: bad listen address '5000' (want host:port, "
	    "[v6]:port or :port)");
	load_fails("[server]\nlisten = :80, host:\n",
	    "mirror.conf:2: bad listen address 'host:' (want host:port, "
	    "[v6]:port or :port)");
	load_fails("[server]\nlisten = :0\n",
	    "mirror.conf:2: bad listen address ':0' (want host:port, "
	    "[v6]:port or :port)");
	load_fails("[server]\nlisten = :65536\n",
	    "mirror.conf:2: bad listen address ':65536' (want host:port, "
	    "[v6]:port or :port)");
	load_fails("[server]\nlisten = ::1:80\n",
	    "mirror.conf:2: bad listen address '::1:80' (want host:port, "
	    "[v6]:port or :port)");
	load_fails("[server]\nlisten = [::1]80\n",
	    "mirror.conf:2: bad listen address '[::1]80' (want host:port, "
	    "[v6]:port or :port)");
	load_fails("[server]\nlisten = [zz]:80\n",
	    "mirror.conf:2: bad listen address '[zz]:80' (want host:port, "
	    "[v6]:port or :port)");
	load_fails("[server]\nlisten = [::1]\n",
	    "mirror.conf:2: bad listen address '[::1]' (want host:port, "
	    "[v6]:port or :port)");
	load_fails("[server]\nlisten = a_b:80\n",
	    "mirror.conf:2: bad listen address 'a_b:80' (want host:port, "
	    "[v6]:port or :port)");
	load_fails("[server]\nlisten = :80,,:81\n",
	    "mirror.conf:2: empty element in listen list ':80,,:81'");
	load_fails("[server]\nadmin_listen = :80, :81\n",
	    "mirror.conf:2: bad listen address ':80, :81' for admin_listen "
	    "(want host:port, [v6]:port, :port or unix:PATH)");
	load_fails("[server]\nworkers = 0\n",
	    "mirror.conf:2: workers '0' is out of range (1..256)");
	load_fails("[server]\nworkers = 257\n",
	    "mirror.conf:2: workers '257' is out of range (1..256)");
	load_fails("[server]\nworkers = -1\n",
	    "mirror.conf:2: bad number '-1' for workers (want auto or "
	    "1..256)");
	load_fails("[server]\nworkers = 4x\n",
	    "mirror.conf:2: bad number '4x' for workers (want auto or "
	    "1..256)");
	load_fails("[server]\nworkers = Auto\n",
	    "mirror.conf:2: bad number 'Auto' for workers (want auto or "
	    "1..256)");
	load_fails("[server]\nworkers = 99999999999999999999\n",
	    "mirror.conf:2: workers '99999999999999999999' is out of range "
	    "(1..256)");
	load_fails("[server]\nmax_connections = many\n",
	    "mirror.conf:2: bad number 'many' for max_connections (want "
	    "auto or 1..1000000)");
	load_fails("[server]\nlog_level = verbose\n",
	    "mirror.conf:2: bad log_level 'verbose' (want error, warn, info "
	    "or debug)");
	load_fails("[server]\naccess_log = yaml\n",
	    "mirror.conf:2: bad access_log 'yaml' (want text or json)");
	load_fails("[server]\nmax_header_size = 512\n",
	    "mirror.conf:2: max_header_size '512' is out of range (1K..1M)");
	load_fails("[server]\nmax_header_size = 2M\n",
	    "mirror.conf:2: max_header_size '2M' is out of range (1K..1M)");
	load_fails("[server]\nmax_header_size = 16Q\n",
	    "mirror.conf:2: bad size '16Q' for max_header_size");

	/* [cache] and [timeouts] values. */
	load_fails("[cache]\nmax_size = lots\n",
	    "mirror.conf:2: bad size 'lots' for max_size");
	load_fails("[cache]\nmax_size = 20000000T\n",
	    "mirror.conf:2: bad size '20000000T' for max_size");
	load_fails("[cache]\ntag_ttl = -5\n",
	    "mirror.conf:2: bad duration '-5' for tag_ttl");
	load_fails("[cache]\ndir =\n", "mirror.conf:2: empty path for dir");
	load_fails("[cache]\ntag_max_age = 30days\n",
	    "mirror.conf:2: bad duration '30days' for tag_max_age");
	load_fails("[cache]\nmax_negative = 10000001\n",
	    "mirror.conf:2: max_negative '10000001' is out of range "
	    "(0..10000000)");
	load_fails("[cache]\nmax_negative = -1\n",
	    "mirror.conf:2: bad number '-1' for max_negative (want "
	    "0..10000000)");
	load_fails("[cache]\nmax_negative = 1k\n",
	    "mirror.conf:2: bad number '1k' for max_negative (want "
	    "0..10000000)");
	load_fails("[cache]\ngc_interval = 0\n",
	    "mirror.conf:2: gc_interval must be at least 1s, not '0'");
	load_fails("[cache]\ngc_grace = -1h\n",
	    "mirror.conf:2: bad duration '-1h' for gc_grace");
	load_fails("[cache]\ngc_grace = 1h\ngc_grace = 2h\n",
	    "mirror.conf:3: duplicate key 'gc_grace' in [cache]");
	load_fails("[timeouts]\nconnect = 0\n",
	    "mirror.conf:2: connect must be at least 1s, not '0'");
	load_fails("[timeouts]\nidle = 1w\n",
	    "mirror.conf:2: bad duration '1w' for idle");
	load_fails("[timeouts]\nfirst_byte = \n",
	    "mirror.conf:2: bad duration '' for first_byte");
	load_fails("[timeouts]\nread = 5s\n",
	    "mirror.conf:2: unknown key 'read' in [timeouts]");

	/* Long lines: the limit is 8192 bytes, with the right line number. */
	memset(line, 'x', 8193);
	line[8193] = '\0';
	xasprintf(&text, "[server]\n# %s\n", line);
	load_fails(text, "mirror.conf:2: line too long (more than 8192 "
	    "bytes)");
	free(text);
	memset(line, ' ', 8000);
	line[8000] = '\0';
	xasprintf(&text, "[server]\n#%s\n%sjunk\n", line, line);
	load_fails(text, "mirror.conf:3: malformed line (expected "
	    "'key = value')");
	free(text);

	/* CRLF does not shift line numbers. */
	load_fails("[server]\r\n\r\nlisen = 1\r\n",
	    "mirror.conf:3: unknown key 'lisen' in [server] (did you mean "
	    "'listen'?)");
}

/*
 * The error for a bad whole number at line: out of range when it is all
 * digits, else malformed.
 */
static void
number_error(char *buf, size_t len, int line, const char *key,
    const char *value, const char *bounds)
{
	if (*value != '\0' && strspn(value, "0123456789") == strlen(value))
		snprintf(buf, len, "mirror.conf:%d: %s '%s' is out of range "
		    "(%s)", line, key, value, bounds);
	else
		snprintf(buf, len, "mirror.conf:%d: bad number '%s' for %s "
		    "(want %s)", line, value, key, bounds);
}

/*
 * [replication "NAME"] push-mode keys: destination (an [upstream] other
 * than the source; checked once the whole file is read, reported at the
 * destination line), chunk_size (64k..1g), concurrency (1..32) and
 * rate_limit_floor (0..1000000).  REPL_BASE ends at line 8.
 */
#define REPL_BASE \
	"[upstream \"docker.io\"]\n" \
	"url = https://registry-1.docker.io\n" \
	"[upstream \"backup.example.com\"]\n" \
	"url = https://backup.example.com\n" \
	"aliases = backup\n" \
	"[replication \"apps\"]\n" \
	"source = docker.io\n" \
	"repositories = org/app\n"

static void
test_replication_push(void)
{
	struct config_replication	*r;
	struct config			*cf;
	char				*text, want[200];
	size_t				 i;
	static const char *const bad_chunks[] = {
		"0", "65535", "63k", "63KiB", "1025m", "1073741825", "2g",
		"1t", "-1", "1.5m", "lots", "", "8 M",
		"99999999999999999999999",
	};
	static const char *const bad_concurrency[] = {
		"0", "33", "100", "-1", "+4", "4x", "4 ", "", "auto",
		"99999999999999999999",
	};
	static const char *const bad_floors[] = {
		"1000001", "9999999", "-1", "+1", "10k", "1e6", "",
		"99999999999999999999",
	};
	static const char *const keys[] = {
		"destination = backup.example.com", "chunk_size = 1m",
		"concurrency = 2", "rate_limit_floor = 10",
	};

	/* Defaults. */
	cf = load(REPL_BASE);
	if (ok(cf != NULL, "replication without push keys loads")) {
		r = cf->replications;
		is_int(cf->nreplications, 1, "  one policy");
		is_str(r->name, "apps", "  name");
		is_str(r->destination, NULL, "  no destination: cache only");
		ok(r->chunk_size == 8 * 1024 * 1024, "  chunk_size 8 MiB");
		is_int(r->concurrency, 4, "  concurrency 4");
		is_int(r->rate_limit_floor, 0, "  rate_limit_floor 0 (none)");
		is_int(r->dest_line, 0, "  dest_line 0");
		is_int(r->line, 6, "  header line");
		config_free(cf);
	}

	/* Good values, at the bounds. */
	cf = load(REPL_BASE "destination = backup.example.com\n"
	    "chunk_size = 64k\nconcurrency = 32\nrate_limit_floor = 1000000\n");
	if (ok(cf != NULL, "push keys at their upper/lower bounds")) {
		r = cf->replications;
		is_str(r->destination, "backup.example.com", "  destination");
		is_int(r->dest_line, 9, "  dest_line");
		ok(r->chunk_size == 64 * 1024, "  chunk_size 64k");
		is_int(r->concurrency, 32, "  concurrency 32");
		is_int(r->rate_limit_floor, 1000000,
		    "  rate_limit_floor 1000000");
		config_free(cf);
	}
	cf = load(REPL_BASE "Chunk_Size = 1g\nCONCURRENCY = 1\n"
	    "rate_limit_floor = 0\n\n# c\ndestination = \"backup\" # alias\n");
	if (ok(cf != NULL, "other bounds, key case, an alias as destination")) {
		r = cf->replications;
		ok(r->chunk_size == UINT64_C(1) << 30, "  chunk_size 1g");
		is_int(r->concurrency, 1, "  concurrency 1");
		is_int(r->rate_limit_floor, 0, "  rate_limit_floor 0");
		is_str(r->destination, "backup", "  destination as written");
		is_int(r->dest_line, 14, "  dest_line");
		ok(config_upstream_find(cf, r->destination) ==
		    cf->upstreams->next, "  names the backup upstream");
		config_free(cf);
	}
	cf = load(REPL_BASE "chunk_size = 65536\nconcurrency = 004\n"
	    "rate_limit_floor = 250\ndestination = BACKUP.Example.COM\n");
	if (ok(cf != NULL, "plain bytes, leading zeros, destination case")) {
		r = cf->replications;
		ok(r->chunk_size == 65536, "  chunk_size 65536");
		is_int(r->concurrency, 4, "  concurrency 004");
		is_int(r->rate_limit_floor, 250, "  rate_limit_floor 250");
		is_str(r->destination, "BACKUP.Example.COM", "  destination");
		config_free(cf);
	}
	cf = load(REPL_BASE "chunk_size = 1GiB\n");
	if (ok(cf != NULL, "chunk_size 1GiB")) {
		ok(cf->replications->chunk_size == UINT64_C(1) << 30,
		    "  is 1g");
		config_free(cf);
	}

	/* The destination may be defined after the policy. */
	cf = load("[upstream \"docker.io\"]\nurl = https://r\n"
	    "[replication \"apps\"]\nsource = docker.io\n"
	    "repositories = org/app\ndestination = later.example.com\n"
	    "[upstream \"later.example.com\"]\nurl = https://later\n");
	if (ok(cf != NULL, "destination defined after the policy")) {
		is_str(cf->replications->destination, "later.example.com",
		    "  destination");
		config_free(cf);
	}

	/* Each policy has its own values and defaults; keys may repeat
	 * across policies. */
	cf = load(REPL_BASE "destination = backup.example.com\n"
	    "chunk_size = 128k\nconcurrency = 8\nrate_limit_floor = 5\n"
	    "[replication \"more\"]\nsource = docker.io\n"
	    "repositories = org/other\n"
	    "[replication \"third\"]\nsource = backup\n"
	    "repositories = org/x\ndestination = docker.io\n"
	    "chunk_size = 2m\nconcurrency = 16\nrate_limit_floor = 7\n");
	if (ok(cf != NULL, "three policies")) {
		is_int(cf->nreplications, 3, "  three");
		r = cf->replications->next;
		is_str(r->name, "more", "  second policy");
		is_str(r->destination, NULL, "  its destination: none");
		ok(r->chunk_size == 8 * 1024 * 1024,
		    "  its chunk_size: default");
		is_int(r->concurrency, 4, "  its concurrency: default");
		is_int(r->rate_limit_floor, 0, "  its floor: default");
		r = r->next;
		is_str(r->destination, "docker.io", "  third: destination");
		is_int(r->dest_line, 19, "  third: dest_line");
		ok(r->chunk_size == 2 * 1024 * 1024, "  third: chunk_size");
		is_int(r->concurrency, 16, "  third: concurrency");
		is_int(r->rate_limit_floor, 7, "  third: floor");
		r = cf->replications;
		ok(r->chunk_size == 128 * 1024, "  first keeps its chunk_size");
		is_int(r->concurrency, 8, "  first keeps its concurrency");
		is_int(r->rate_limit_floor, 5, "  first keeps its floor");
		config_free(cf);
	}

	/* destination: a known upstream other than the source, reported at
	 * the destination's line even though it is checked at the end. */
	load_fails(REPL_BASE "destination = quay.io\n",
	    "mirror.conf:9: replication 'apps': destination 'quay.io' is not "
	    "an [upstream] section");
	load_fails(REPL_BASE "concurrency = 2\n\ndestination = quay.io\n"
	    "chunk_size = 1m\n[server]\nworkers = 2\n",
	    "mirror.conf:11: replication 'apps': destination 'quay.io' is "
	    "not an [upstream] section");
	load_fails(REPL_BASE "destination = docker.io\n",
	    "mirror.conf:9: replication 'apps': destination is the source");
	load_fails(REPL_BASE "\ndestination = DOCKER.IO\n",
	    "mirror.conf:10: replication 'apps': destination is the source");
	load_fails("[upstream \"docker.io\"]\nurl = https://r\n"
	    "[upstream \"backup.example.com\"]\nurl = https://b\n"
	    "aliases = backup\n[replication \"apps\"]\nsource = backup\n"
	    "repositories = org/app\ndestination = backup.example.com\n",
	    "mirror.conf:9: replication 'apps': destination is the source");
	load_fails(REPL_BASE "[replication \"more\"]\nsource = backup\n"
	    "repositories = org/x\n\ndestination = nowhere.example.com\n",
	    "mirror.conf:13: replication 'more': destination "
	    "'nowhere.example.com' is not an [upstream] section");
	load_fails(REPL_BASE "destination = https://backup.example.com\n",
	    "mirror.conf:9: bad destination 'https://backup.example.com' "
	    "(want the name of an [upstream] section)");
	load_fails(REPL_BASE "destination =\n",
	    "mirror.conf:9: bad destination '' (want the name of an "
	    "[upstream] section)");
	load_fails(REPL_BASE "destination = a b\n",
	    "mirror.conf:9: bad destination 'a b' (want the name of an "
	    "[upstream] section)");

	/* chunk_size, concurrency, rate_limit_floor: out of range or
	 * malformed, one message each. */
	for (i = 0; i < sizeof(bad_chunks) / sizeof(bad_chunks[0]); i++) {
		uint64_t	size;

		xasprintf(&text, REPL_BASE "\nchunk_size = %s\n",
		    bad_chunks[i]);
		if (config_parse_size(bad_chunks[i], &size) == -1)
			snprintf(want, sizeof(want), "mirror.conf:10: bad "
			    "size '%s' for chunk_size", bad_chunks[i]);
		else
			snprintf(want, sizeof(want), "mirror.conf:10: "
			    "chunk_size '%s' is out of range (64K..1G)",
			    bad_chunks[i]);
		load_fails(text, want);
		free(text);
	}
	for (i = 0; i < sizeof(bad_concurrency) / sizeof(bad_concurrency[0]);
	    i++) {
		xasprintf(&text, REPL_BASE "concurrency = \"%s\"\n",
		    bad_concurrency[i]);
		number_error(want, sizeof(want), 9, "concurrency",
		    bad_concurrency[i], "1..32");
		load_fails(text, want);
		free(text);
	}
	for (i = 0; i < sizeof(bad_floors) / sizeof(bad_floors[0]); i++) {
		xasprintf(&text, REPL_BASE "rate_limit_floor = %s\n",
		    bad_floors[i]);
		number_error(want, sizeof(want), 9, "rate_limit_floor",
		    bad_floors[i], "0..1000000");
		load_fails(text, want);
		free(text);
	}

	/* Not repeatable within a policy, like keep_newest or interval. */
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char name[32];

		snprintf(name, sizeof(name), "%.*s",
		    (int)strcspn(keys[i], " "), keys[i]);
		xasprintf(&text, REPL_BASE "%s\n# again\n%s\n", keys[i],
		    keys[i]);
		snprintf(want, sizeof(want), "mirror.conf:11: duplicate key "
		    "'%s' in [replication]", name);
		load_fails(text, want);
		free(text);
	}
	load_fails(REPL_BASE "keep_newest = 2\nkeep_newest = 3\n",
	    "mirror.conf:10: duplicate key 'keep_newest' in [replication]");
	load_fails(REPL_BASE "keep_newest = 0\n",
	    "mirror.conf:9: keep_newest '0' is out of range (1..100000)");
	load_fails(REPL_BASE "keep_newest = all\n",
	    "mirror.conf:9: bad number 'all' for keep_newest (want "
	    "1..100000)");

	/* Only in [replication]. */
	load_fails("[server]\nchunk_size = 1m\n" MINIMAL_UPSTREAM,
	    "mirror.conf:2: unknown key 'chunk_size' in [server]");
	load_fails(MINIMAL_UPSTREAM "destination = docker.io\n",
	    "mirror.conf:3: unknown key 'destination' in "
	    "[upstream \"docker.io\"]");
	load_fails("[cache]\nconcurrency = 4\n",
	    "mirror.conf:2: unknown key 'concurrency' in [cache]");
	load_fails("[timeouts]\nrate_limit_floor = 4\n",
	    "mirror.conf:2: unknown key 'rate_limit_floor' in [timeouts]");
}

/*
 * Unknown keys and sections name the closest known one of that section
 * when it is a likely typo (one edit per three characters), and nothing
 * when none is.
 */
static void
test_did_you_mean(void)
{
	char	*text, key[100], want[200];

	load_fails("[server]\nLSITEN = :80\n",
	    "mirror.conf:2: unknown key 'LSITEN' in [server] (did you mean "
	    "'listen'?)");
	load_fails("[server]\nmax_connection = 5\n",
	    "mirror.conf:2: unknown key 'max_connection' in [server] (did "
	    "you mean 'max_connections'?)");
	load_fails("[server]\nmax_connections_per_clients = 5\n",
	    "mirror.conf:2: unknown key 'max_connections_per_clients' in "
	    "[server] (did you mean 'max_connections_per_client'?)");
	load_fails("[timeouts]\nconect = 5s\n",
	    "mirror.conf:2: unknown key 'conect' in [timeouts] (did you "
	    "mean 'connect'?)");
	load_fails(MINIMAL_UPSTREAM "tls_verfy = no\n",
	    "mirror.conf:3: unknown key 'tls_verfy' in [upstream "
	    "\"docker.io\"] (did you mean 'tls_verify'?)");
	load_fails(MINIMAL_UPSTREAM "urls = https://b\n",
	    "mirror.conf:3: unknown key 'urls' in [upstream \"docker.io\"] "
	    "(did you mean 'url'?)");
	load_fails(REPL_BASE "exclude_tag = x\n",
	    "mirror.conf:9: unknown key 'exclude_tag' in [replication] (did "
	    "you mean 'exclude_tags'?)");
	load_fails("[timeouts]\nidel = 1m\n",
	    "mirror.conf:2: unknown key 'idel' in [timeouts] (did you mean "
	    "'idle'?)");
	/* Only the keys of that section are candidates. */
	load_fails("[cache]\nlisen = :80\n",
	    "mirror.conf:2: unknown key 'lisen' in [cache]");
	/* Too far from every key: no suggestion. */
	load_fails("[server]\nlog = info\n",
	    "mirror.conf:2: unknown key 'log' in [server]");
	load_fails("[cache]\nmax_tags = 5\n",
	    "mirror.conf:2: unknown key 'max_tags' in [cache]");
	/* A name longer than any key is compared with none. */
	memset(key, 'x', 90);
	key[90] = '\0';
	xasprintf(&text, "[server]\n%s = 1\n", key);
	snprintf(want, sizeof(want), "mirror.conf:2: unknown key '%s' in "
	    "[server]", key);
	load_fails(text, want);
	free(text);

	load_fails("[cahce]\n", "mirror.conf:1: unknown section [cahce] "
	    "(did you mean [cache]?)");
	load_fails("[Timeout]\n", "mirror.conf:1: unknown section [Timeout] "
	    "(did you mean [timeouts]?)");
	load_fails("[upstreams \"docker.io\"]\n", "mirror.conf:1: unknown "
	    "section [upstreams] (did you mean [upstream]?)");
	load_fails("[replicaton \"x\"]\n", "mirror.conf:1: unknown section "
	    "[replicaton] (did you mean [replication]?)");
	load_fails("[authn]\n", "mirror.conf:1: unknown section [authn] "
	    "(did you mean [auth]?)");
	load_fails("[acess \"a\"]\n", "mirror.conf:1: unknown section "
	    "[acess] (did you mean [access]?)");
	load_fails("[nonsense]\n", "mirror.conf:1: unknown section "
	    "[nonsense]");
}

/*
 * The limits on jobs ([server] max_jobs 1..1024, max_job_images
 * 1..100000, max_job_platforms 1..64) and on what one replication run
 * reads (max_repositories 1..1000000, max_tags_per_repository
 * 1..1000000, max_tags 1..10000000): defaults, both bounds, and each
 * bad value's message at its line.
 */
struct limit_key {
	const char	*key;
	int		 dflt, max;
	int		 server;	/* in [server], else [replication] */
	size_t		 off;		/* in struct config or _replication */
};

#define LIMIT_SERVER(k, d, m) \
	{ #k, d, m, 1, offsetof(struct config, k) }
#define LIMIT_REPL(k, d, m) \
	{ #k, d, m, 0, offsetof(struct config_replication, k) }
static const struct limit_key limit_keys[] = {
	LIMIT_SERVER(max_jobs, 16, 1024),
	LIMIT_SERVER(max_job_images, 1000, 100000),
	LIMIT_SERVER(max_job_platforms, 16, 64),
	LIMIT_REPL(max_repositories, 10000, 1000000),
	LIMIT_REPL(max_tags_per_repository, 10000, 1000000),
	LIMIT_REPL(max_tags, 100000, 10000000),
};

/* A file setting lk to value: on line 2 ([server]) or 9 (REPL_BASE). */
static char *
limit_text(const struct limit_key *lk, const char *value)
{
	char	*text;

	if (lk->server)
		xasprintf(&text, "[server]\n%s = %s\n" MINIMAL_UPSTREAM,
		    lk->key, value);
	else
		xasprintf(&text, REPL_BASE "%s = %s\n", lk->key, value);
	return text;
}

static int
limit_value(const struct limit_key *lk, const struct config *cf)
{
	const char	*base = lk->server ? (const char *)cf :
			    (const char *)cf->replications;

	return *(const int *)(const void *)(base + lk->off);
}

/* value must load as want. */
static void
limit_loads(const struct limit_key *lk, const char *value, int want)
{
	struct config	*cf;
	char		*text = limit_text(lk, value);

	cf = load(text);
	free(text);
	if (ok(cf != NULL, "%s = %s loads", lk->key, value)) {
		is_int(limit_value(lk, cf), want, "  is %d", want);
		config_free(cf);
	}
}

static void
test_job_limits(void)
{
	static const char *const bad[] = {
		"0", "-1", "+4", "4x", "1e3", "", "auto", "forever", "16 ",
		"99999999999999999999",
	};
	const struct limit_key	*lk;
	struct config		*cf;
	char			*text, want[200], v[64], bounds[32];
	size_t			 i, k;

	for (i = 0; i < sizeof(limit_keys) / sizeof(limit_keys[0]); i++) {
		lk = &limit_keys[i];
		cf = load(lk->server ? MINIMAL_UPSTREAM : REPL_BASE);
		if (ok(cf != NULL, "%s unset", lk->key)) {
			is_int(limit_value(lk, cf), lk->dflt, "  default %d",
			    lk->dflt);
			config_free(cf);
		}
		limit_loads(lk, "1", 1);
		snprintf(v, sizeof(v), "%d", lk->max);
		limit_loads(lk, v, lk->max);
		limit_loads(lk, "007", 7);
		limit_loads(lk, "\"12\"", 12);

		snprintf(bounds, sizeof(bounds), "1..%d", lk->max);
		snprintf(v, sizeof(v), "%d", lk->max + 1);
		text = limit_text(lk, v);
		number_error(want, sizeof(want), lk->server ? 2 : 9, lk->key,
		    v, bounds);
		load_fails(text, want);
		free(text);
		for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
			snprintf(v, sizeof(v), "\"%s\"", bad[k]);
			text = limit_text(lk, v);
			number_error(want, sizeof(want), lk->server ? 2 : 9,
			    lk->key, bad[k], bounds);
			load_fails(text, want);
			free(text);
		}

		/* Given once per section, and only in its own section. */
		if (lk->server)
			xasprintf(&text, "[server]\n%s = 2\n%s = 3\n"
			    MINIMAL_UPSTREAM, lk->key, lk->key);
		else
			xasprintf(&text, REPL_BASE "%s = 2\n%s = 3\n",
			    lk->key, lk->key);
		snprintf(want, sizeof(want), "mirror.conf:%d: duplicate key "
		    "'%s' in [%s]", lk->server ? 3 : 10, lk->key,
		    lk->server ? "server" : "replication");
		load_fails(text, want);
		free(text);
		xasprintf(&text, "[cache]\n%s = 2\n", lk->key);
		snprintf(want, sizeof(want), "mirror.conf:2: unknown key '%s' "
		    "in [cache]", lk->key);
		load_fails(text, want);
		free(text);
	}

	/* Per policy: each has its own values, and its own defaults. */
	cf = load(REPL_BASE "max_tags = 5\nmax_repositories = 6\n"
	    "[replication \"more\"]\nsource = docker.io\n"
	    "repositories = org/other\nmax_tags_per_repository = 7\n");
	if (ok(cf != NULL, "two policies with their own limits")) {
		is_int(cf->replications->max_tags, 5, "  first: max_tags");
		is_int(cf->replications->max_repositories, 6,
		    "  first: max_repositories");
		is_int(cf->replications->max_tags_per_repository, 10000,
		    "  first: max_tags_per_repository default");
		is_int(cf->replications->next->max_tags, 100000,
		    "  second: max_tags default");
		is_int(cf->replications->next->max_tags_per_repository, 7,
		    "  second: max_tags_per_repository");
		config_free(cf);
	}
}

static void
test_password_file(void)
{
	struct config	*cf;
	const char	*path;
	char		*text, err[512];
	size_t		 i;
	static const struct {
		const char	*data;
		size_t		 len;
		const char	*want;
	} cases[] = {
		{ "secret", 6, "secret" },
		{ "secret\n", 7, "secret" },
		{ "secret\r\n", 8, "secret" },
		{ "secret\n\n", 8, "secret\n" },
		{ " pass word \n", 12, " pass word " },
	};

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		path = tmpfile_with(cases[i].data, cases[i].len);
		xasprintf(&text, MINIMAL_UPSTREAM "username = u\n"
		    "password_file = %s\n"
		    "public = yes\n", path);
		cf = load(text);
		free(text);
		if (!ok(cf != NULL, "password file %zu loads", i)) {
			skip(1, "not loaded");
			continue;
		}
		is_str(cf->upstreams->password, cases[i].want, "  password");
		config_free(cf);
		unlink(path);
	}

	xasprintf(&text, MINIMAL_UPSTREAM "username = u\n"
	    "password_file = /nonexistent/pw\n");
	load_fails(text, "mirror.conf:4: cannot read password_file "
	    "'/nonexistent/pw': No such file or directory");
	free(text);
	xasprintf(&text, MINIMAL_UPSTREAM "password_file = /tmp\n");
	load_fails(text, "mirror.conf:3: cannot read password_file "
	    "'/tmp': Is a directory");
	free(text);
	xasprintf(&text, MINIMAL_UPSTREAM "username = u\n"
	    "password_file = /dev/null\n");
	load_fails(text, "mirror.conf:4: password_file '/dev/null' is empty");
	free(text);
	path = tmpfile_with("\n", 1);
	xasprintf(&text, MINIMAL_UPSTREAM "username = u\n"
	    "password_file = %s\n", path);
	if (config_load_string("mirror.conf", text, &cf, err,
	    sizeof(err)) == 0)
		config_free(cf);
	ok(strstr(err, "is empty") != NULL, "a lone newline is empty: %s",
	    err);
	free(text);
	path = tmpfile_with("a\0b", 3);
	xasprintf(&text, MINIMAL_UPSTREAM "username = u\n"
	    "password_file = %s\n", path);
	if (config_load_string("mirror.conf", text, &cf, err,
	    sizeof(err)) == 0)
		config_free(cf);
	ok(strstr(err, "has a NUL byte") != NULL, "NUL in password: %s", err);
	free(text);
	/* At the limit (64 KiB, a secret file's cap) and one byte over. */
	{
		char	*big = xmalloc(64 * 1024 + 1), want[256];

		memset(big, 'p', 64 * 1024 + 1);
		path = tmpfile_with(big, 64 * 1024);
		xasprintf(&text, MINIMAL_UPSTREAM "username = u\n"
		    "password_file = %s\n"
		    "public = yes\n", path);
		cf = load(text);
		ok(cf != NULL && strlen(cf->upstreams->password) == 64 * 1024,
		    "a password file of 64 KiB loads whole");
		config_free(cf);
		free(text);
		unlink(path);
		path = tmpfile_with(big, 64 * 1024 + 1);
		xasprintf(&text, MINIMAL_UPSTREAM "username = u\n"
		    "password_file = %s\n", path);
		snprintf(want, sizeof(want), "mirror.conf:4: password_file "
		    "'%s' is larger than 65536 bytes", path);
		load_fails(text, want);
		free(text);
		unlink(path);
		free(big);
	}
	path = tmpfile_with("pw\n", 3);
	xasprintf(&text, MINIMAL_UPSTREAM "password_file = %s\n", path);
	if (config_load_string("mirror.conf", text, &cf, err,
	    sizeof(err)) == 0)
		config_free(cf);
	is_str(err, "mirror.conf:1: upstream 'docker.io': password_file "
	    "requires username", "password_file without username");
	free(text);

	load_fails(MINIMAL_UPSTREAM "ca_file = /nonexistent/ca.pem\n",
	    "mirror.conf:3: cannot read ca_file '/nonexistent/ca.pem': "
	    "No such file or directory");
	load_fails(MINIMAL_UPSTREAM "ca_file = /tmp\n",
	    "mirror.conf:3: cannot read ca_file '/tmp': not a file");
}

static void
test_load_file(void)
{
	struct config	*cf;
	const char	*path;
	char		*big, err[512], want[600];
	size_t		 n;

	path = tmpfile_with(MINIMAL_UPSTREAM, strlen(MINIMAL_UPSTREAM));
	if (ok(config_load(path, &cf, err, sizeof(err)) == 0,
	    "config_load of a file")) {
		is_str(cf->path, path, "  path recorded");
		is_str(cf->upstreams->name, "docker.io", "  upstream");
		config_free(cf);
	}

	ok(config_load("/nonexistent/mirror.conf", &cf, err,
	    sizeof(err)) == -1 && cf == NULL, "missing file fails");
	is_str(err, "/nonexistent/mirror.conf:0: cannot open: No such file "
	    "or directory", "  message");
	ok(config_load("/tmp", &cf, err, sizeof(err)) == -1,
	    "a directory fails");
	is_str(err, "/tmp:0: cannot read: Is a directory", "  message");

	path = tmpfile_with("[server]\n\n\0junk", 15);
	ok(config_load(path, &cf, err, sizeof(err)) == -1, "NUL byte fails");
	snprintf(want, sizeof(want), "%s:3: NUL byte in file", path);
	is_str(err, want, "  message with its line");

	/* 1 MiB is fine (if it is all comments it has no upstream). */
	n = 1024 * 1024;
	big = malloc(n + 1);
	memset(big, '#', n);
	for (size_t i = 100; i < n; i += 101)
		big[i] = '\n';
	path = tmpfile_with(big, n);
	ok(config_load(path, &cf, err, sizeof(err)) == -1, "1 MiB is read");
	snprintf(want, sizeof(want), "%s:0: no [upstream] section", path);
	is_str(err, want, "  and parsed");
	free(big);
	big = malloc(n + 1);
	memset(big, '\n', n + 1);
	path = tmpfile_with(big, n + 1);
	free(big);
	ok(config_load(path, &cf, err, sizeof(err)) == -1,
	    "more than 1 MiB fails");
	snprintf(want, sizeof(want), "%s:0: file is larger than 1 MiB", path);
	is_str(err, want, "  message");

	/* A tiny error buffer truncates but never overflows. */
	ok(config_load_string("mirror.conf", "junk", &cf, err, 8) == -1,
	    "small error buffer");
	is_str(err, "mirror.", "  truncated");
	ok(config_load_string("mirror.conf", "junk", &cf, NULL, 0) == -1,
	    "no error buffer");
}

/* Replace the first line "from" of text (which it owns) with "to". */
static char *
replace_line(char *text, const char *from, const char *to)
{
	char	*at, *out;
	size_t	 n = strlen(from);

	for (at = text; (at = strstr(at, from)) != NULL; at++)
		if ((at == text || at[-1] == '\n') && at[n] == '\n')
			break;
	if (at == NULL)
		bail_out("no such line");
	xasprintf(&out, "%.*s%s%s", (int)(at - text), text, to, at + n);
	free(text);
	return out;
}

/*
 * --print-defaults: every section, a default as "key = value", a key
 * without one as "# key =", and the whole text, once the keys an
 * [upstream] and a [replication] need are filled in, loads back into
 * exactly the defaults.
 */
static void
test_print_defaults(void)
{
	struct config_replication	*r;
	struct config_upstream		*up;
	struct config			*cf, *min;
	char				*text = NULL, *line;
	size_t				 len = 0;
	FILE				*f;

	if ((f = open_memstream(&text, &len)) == NULL)
		bail_out("open_memstream failed");
	is_int(config_print_defaults(f), 0, "config_print_defaults");
	fclose(f);
	ok(strstr(text, "\n[server]\n") != NULL &&
	    strstr(text, "\n[cache]\n") != NULL &&
	    strstr(text, "\n[timeouts]\n") != NULL &&
	    strstr(text, "\n[upstream \"registry.example.com\"]\n") != NULL &&
	    strstr(text, "\n[replication \"prod-images\"]\n") != NULL &&
	    strstr(text, "\n[auth]\n") != NULL &&
	    strstr(text, "\n[access \"team-a\"]\n") != NULL,
	    "  every section");
	ok(strstr(text, "\nlisten = 0.0.0.0:5000\n") != NULL, "  listen");
	ok(strstr(text, "\n# admin_listen =\n") != NULL,
	    "  admin_listen, commented");
	ok(strstr(text, "\nworkers = auto\n") != NULL, "  workers");
	ok(strstr(text, "\nchunk_size = 8M\n") != NULL, "  chunk_size");
	ok(strstr(text, "\n# (integer, 1..256, or auto)\nworkers") != NULL,
	    "  what a value may be");

	text = replace_line(text, "# url =", "url = https://r");
	text = replace_line(text, "# source =",
	    "source = registry.example.com");
	text = replace_line(text, "# repositories =", "repositories = a/b");
	/* [auth] needs a way to log in, [access] who and what. */
	xasprintf(&line, "htpasswd = %s", tmpfile_with("u:x\n", 4));
	text = replace_line(text, "# htpasswd =", line);
	free(line);
	text = replace_line(text, "# users =", "users = anonymous");
	text = replace_line(text, "# repositories =",
	    "repositories = registry.example.com/**");
	cf = load(text);
	free(text);
	min = load("[upstream \"registry.example.com\"]\nurl = https://r\n"
	    "[replication \"prod-images\"]\nsource = registry.example.com\n"
	    "repositories = a/b\n");
	if (!ok(cf != NULL && min != NULL, "  loads back")) {
		config_free(cf);
		config_free(min);
		return;
	}
	is_int(cf->nlisten, 1, "  one listener");
	is_str(cf->listen[0], min->listen[0], "  listen");
	is_int(cf->workers, min->workers, "  workers");
	is_str(cf->log_level, min->log_level, "  log_level");
	is_int(cf->max_header_size, min->max_header_size, "  max_header_size");
	is_int(cf->max_connections, min->max_connections, "  max_connections");
	is_int(cf->send_buffer, min->send_buffer, "  send_buffer");
	is_str(cf->cache_dir, min->cache_dir, "  dir");
	ok(cf->max_size == min->max_size, "  max_size");
	ok(cf->max_blob_size == min->max_blob_size, "  max_blob_size");
	ok(cf->cache_memory == min->cache_memory, "  memory");
	is_int(cf->tag_max_age, min->tag_max_age, "  tag_max_age");
	is_int(cf->queue_timeout, min->queue_timeout, "  queue");
	up = cf->upstreams;
	is_int(up->is_default, 1, "  the lone upstream is default");
	is_int(up->tls_verify, min->upstreams->tls_verify, "  tls_verify");
	is_int(up->tag_ttl, -1, "  upstream tag_ttl unset");
	is_int(up->stale_if_error, min->upstreams->stale_if_error,
	    "  stale_if_error");
	is_int(up->max_header_size, min->upstreams->max_header_size,
	    "  upstream max_header_size");
	is_int(up->max_connections, min->upstreams->max_connections,
	    "  upstream max_connections");
	r = cf->replications;
	is_int(r->keep_newest, 0, "  keep_newest unset");
	is_int(r->interval, min->replications->interval, "  interval");
	ok(r->chunk_size == min->replications->chunk_size, "  chunk_size");
	is_int(r->max_tags, min->replications->max_tags, "  max_tags");
	is_int(r->delete, 0, "  delete no");
	config_free(cf);
	config_free(min);
}

/* The example shipped in the top directory must load as it is. */
static void
test_example(void)
{
	struct config	*cf;
	const char	*top;
	char		*path, err[512];

	if ((top = getenv("top_srcdir")) == NULL)
		top = ".";
	xasprintf(&path, "%s/mirror.conf.example", top);
	if (access(path, R_OK) == -1) {
		skip(3, "no mirror.conf.example (top_srcdir unset)");
		free(path);
		return;
	}
	if (!ok(config_load(path, &cf, err, sizeof(err)) == 0,
	    "mirror.conf.example loads")) {
		diag("%s", err);
		skip(2, "not loaded");
	} else {
		is_str(cf->upstreams->urls[0], "https://registry-1.docker.io",
		    "  docker.io url");
		ok(config_upstream_default(cf) == cf->upstreams,
		    "  docker.io is default");
		config_free(cf);
	}
	free(path);
}

static void
test_parsers(void)
{
	static const struct {
		const char	*s;
		long		 want;
	} durations[] = {
		{ "0", 0 }, { "30", 30 }, { "30s", 30 }, { "5m", 300 },
		{ "2h", 7200 }, { "7d", 604800 }, { "007", 7 },
		{ "9223372036854775807", 9223372036854775807L },
		{ "9223372036854775807s", 9223372036854775807L },
		{ "106751991167300d", 106751991167300L * 86400 },
	};
	static const char *const bad_durations[] = {
		"", "s", "-1", "+1", " 1", "1 ", "1x", "1ss", "1m2", "5M",
		"1.5h", "0x10", "9223372036854775808",
		"106751991167301d", "99999999999999999999999", "1w",
	};
	static const struct {
		const char	*s;
		uint64_t	 want;
	} sizes[] = {
		{ "0", 0 }, { "512", 512 }, { "512b", 512 },
		{ "512K", 512 << 10 }, { "512k", 512 << 10 },
		{ "1KiB", 1024 }, { "1KB", 1024 }, { "1kb", 1024 },
		{ "512M", 512ULL << 20 }, { "3MiB", 3ULL << 20 },
		{ "2MB", 2ULL << 20 }, { "200G", 200ULL << 30 },
		{ "1GiB", 1ULL << 30 }, { "5GB", 5ULL << 30 },
		{ "1T", 1ULL << 40 }, { "2TiB", 2ULL << 40 },
		{ "3TB", 3ULL << 40 }, { "16777215T", 16777215ULL << 40 },
		{ "18446744073709551615", UINT64_MAX },
	};
	static const char *const bad_sizes[] = {
		"", "K", "-1", "+1", " 1", "1 ", "1 K", "1X", "1KK", "1KiBs",
		"1.5G", "1P", "16777216T", "18446744073709551616",
		"99999999999999999999999", "1iB", "0x10",
	};
	static const struct {
		const char	*s;
		int		 want;
	} bools[] = {
		{ "yes", 1 }, { "no", 0 }, { "true", 1 }, { "false", 0 },
		{ "on", 1 }, { "off", 0 }, { "1", 1 }, { "0", 0 },
		{ "YES", 1 }, { "Off", 0 },
	};
	static const char *const bad_bools[] = {
		"", "y", "n", "2", "yes ", "enable", "nope", "01",
	};
	uint64_t	size;
	long		d;
	size_t		i;
	int		b;

	for (i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		d = -42;
		ok(config_parse_duration(durations[i].s, &d) == 0 &&
		    d == durations[i].want, "duration '%s' = %ld",
		    durations[i].s, durations[i].want);
	}
	for (i = 0; i < sizeof(bad_durations) / sizeof(bad_durations[0]);
	    i++)
		is_int(config_parse_duration(bad_durations[i], &d), -1,
		    "bad duration '%s'", bad_durations[i]);
	is_int(config_parse_duration(NULL, &d), -1, "NULL duration");

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size = 42;
		ok(config_parse_size(sizes[i].s, &size) == 0 &&
		    size == sizes[i].want, "size '%s'", sizes[i].s);
	}
	for (i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++)
		is_int(config_parse_size(bad_sizes[i], &size), -1,
		    "bad size '%s'", bad_sizes[i]);
	is_int(config_parse_size(NULL, &size), -1, "NULL size");

	for (i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		b = -1;
		ok(config_parse_bool(bools[i].s, &b) == 0 &&
		    b == bools[i].want, "bool '%s'", bools[i].s);
	}
	for (i = 0; i < sizeof(bad_bools) / sizeof(bad_bools[0]); i++)
		is_int(config_parse_bool(bad_bools[i], &b), -1,
		    "bad bool '%s'", bad_bools[i]);
	is_int(config_parse_bool(NULL, &b), -1, "NULL bool");
}

/*
 * Bounds on what clients and upstreams can make the mirror hold: each a
 * key with a default, a range and FILE:LINE errors at the range's ends.
 */
static void
test_limits(void)
{
	struct config	*cf;

	cf = load(MINIMAL_UPSTREAM);
	if (ok(cf != NULL, "limits: defaults")) {
		is_int(cf->max_connections, 0, "  max_connections auto");
		is_int(cf->max_connections_per_client, 128,
		    "  max_connections_per_client 128");
		is_int(cf->request_head_timeout, 10, "  request_head 10s");
		is_int(cf->tls_handshake_timeout, 10, "  tls_handshake 10s");
		config_free(cf);
	}
	cf = load("[server]\nmax_connections = 1000000\n"
	    "max_connections_per_client = 0\n[timeouts]\nrequest_head = 1\n"
	    "tls_handshake = 2m\n" MINIMAL_UPSTREAM);
	if (ok(cf != NULL, "limits: at their bounds")) {
		is_int(cf->max_connections, 1000000, "  max_connections");
		is_int(cf->max_connections_per_client, 0, "  per client: none");
		is_int(cf->request_head_timeout, 1, "  request_head");
		is_int(cf->tls_handshake_timeout, 120, "  tls_handshake");
		config_free(cf);
	}
	load_fails("[server]\nmax_connections = 0\n",
	    "mirror.conf:2: max_connections '0' is out of range (1..1000000)");
	load_fails("[server]\nmax_connections = 1000001\n",
	    "mirror.conf:2: max_connections '1000001' is out of range "
	    "(1..1000000)");
	load_fails("[server]\nmax_connections = 99999999999999999999999\n",
	    "mirror.conf:2: max_connections '99999999999999999999999' is out "
	    "of range (1..1000000)");
	load_fails("[server]\nmax_connections_per_client = -1\n",
	    "mirror.conf:2: bad number '-1' for max_connections_per_client "
	    "(want 0..1000000)");
	load_fails("[server]\nmax_connections_per_client = 5x\n",
	    "mirror.conf:2: bad number '5x' for max_connections_per_client "
	    "(want 0..1000000)");
	load_fails("[timeouts]\nrequest_head = 0\n",
	    "mirror.conf:2: request_head must be at least 1s, not '0'");
	load_fails("[timeouts]\ntls_handshake = soon\n",
	    "mirror.conf:2: bad duration 'soon' for tls_handshake");

	/* Memory, lists, queues, send window, miss limit. */
	cf = load(MINIMAL_UPSTREAM);
	if (ok(cf != NULL, "limits: memory and quota defaults")) {
		ok(cf->cache_memory == 64 * 1024 * 1024, "  memory 64M");
		is_int(cf->list_ttl, 10, "  list_ttl 10s");
		is_int(cf->queue_timeout, 30, "  queue 30s");
		is_int(cf->send_buffer, 256 * 1024, "  send_buffer 256K");
		is_int(cf->miss_limit, 100,
		    "  miss_limit 100");
		is_int(cf->max_fills_per_client, 16,
		    "  max_fills_per_client 16");
		config_free(cf);
	}
	cf = load("[server]\nsend_buffer = 16K\nmiss_limit = 0\n"
	    "[cache]\nmemory = 0\nlist_ttl = 0\n[timeouts]\nqueue = 1\n"
	    MINIMAL_UPSTREAM);
	if (ok(cf != NULL, "limits: memory and quota at their bounds")) {
		ok(cf->cache_memory == 0, "  memory 0");
		is_int(cf->list_ttl, 0, "  list_ttl 0");
		is_int(cf->queue_timeout, 1, "  queue 1s");
		is_int(cf->send_buffer, 16 * 1024, "  send_buffer 16K");
		is_int(cf->miss_limit, 0, "  no miss limit");
		config_free(cf);
	}
	load_fails("[server]\nsend_buffer = 15K\n",
	    "mirror.conf:2: send_buffer '15K' is out of range (16K..16M)");
	load_fails("[server]\nmax_fills_per_client = 100001\n",
	    "mirror.conf:2: max_fills_per_client '100001' is out of range "
	    "(0..100000)");
	load_fails("[server]\nmiss_limit = lots\n",
	    "mirror.conf:2: bad number 'lots' for miss_limit (want "
	    "0..1000000)");
	load_fails("[cache]\nmemory = 17G\n",
	    "mirror.conf:2: memory '17G' is out of range (0..16G)");
	load_fails("[timeouts]\nqueue = 0\n",
	    "mirror.conf:2: queue must be at least 1s, not '0'");

	/* Per-upstream bounds. */
	cf = load(MINIMAL_UPSTREAM);
	if (ok(cf != NULL, "upstream limits: defaults")) {
		is_int(cf->upstreams->max_header_size, 64 * 1024,
		    "  max_header_size 64K");
		is_int(cf->upstreams->max_headers, 100, "  max_headers 100");
		is_int(cf->upstreams->max_fills, 64, "  max_fills 64");
		is_int(cf->upstreams->max_connections, 128,
		    "  max_connections 128");
		is_int(cf->upstreams->isolate, 0, "  isolate no");
		is_int(cf->upstreams->nredirect_hosts, 0,
		    "  no redirect_hosts");
		ok(cf->max_blob_size == (uint64_t)64 << 30,
		    "  [cache] max_blob_size 64G");
		config_free(cf);
	}
	cf = load(MINIMAL_UPSTREAM "max_header_size = 1M\nmax_headers = 10\n"
	    "max_fills = 1\nmax_connections = 100000\nisolate = yes\n"
	    "redirect_hosts = minio.internal:9000, cdn.internal\n"
	    "[cache]\nmax_blob_size = 1M\n");
	if (ok(cf != NULL, "upstream limits: at their bounds")) {
		is_int(cf->upstreams->max_header_size, 1024 * 1024,
		    "  max_header_size");
		is_int(cf->upstreams->max_headers, 10, "  max_headers");
		is_int(cf->upstreams->max_fills, 1, "  max_fills");
		is_int(cf->upstreams->max_connections, 100000,
		    "  max_connections");
		is_int(cf->upstreams->isolate, 1, "  isolate");
		if (is_int(cf->upstreams->nredirect_hosts, 2,
		    "  two redirect_hosts"))
			is_str(cf->upstreams->redirect_hosts[0],
			    "minio.internal:9000", "  the first");
		ok(cf->max_blob_size == 1024 * 1024, "  max_blob_size");
		config_free(cf);
	}
	load_fails(MINIMAL_UPSTREAM "max_header_size = 1K\n",
	    "mirror.conf:3: max_header_size '1K' is out of range (4K..1M)");
	load_fails(MINIMAL_UPSTREAM "max_headers = 9\n",
	    "mirror.conf:3: max_headers '9' is out of range (10..10000)");
	load_fails(MINIMAL_UPSTREAM "max_fills = 0\n",
	    "mirror.conf:3: max_fills '0' is out of range (1..100000)");
	load_fails(MINIMAL_UPSTREAM "isolate = maybe\n",
	    "mirror.conf:3: bad boolean 'maybe' for isolate");
	load_fails(MINIMAL_UPSTREAM "redirect_hosts = a b\n",
	    "mirror.conf:3: bad redirect_hosts host 'a b' (want host or "
	    "host:port)");
	load_fails("[cache]\nmax_blob_size = 1K\n",
	    "mirror.conf:2: max_blob_size '1K' is out of range (at least "
	    "1M)");

	/* Loads, with a warning: credentials in the clear, a readable
	 * secret. */
	{
		const char	*pw = tmpfile_with("pw\n", 3);
		char		*text;

		chmod(pw, 0644);
		xasprintf(&text, "[upstream \"r.example\"]\n"
		    "url = http://r.example\nusername = u\n"
		    "password_file = %s\n"
		    "public = yes\n", pw);
		cf = load(text);
		free(text);
		if (ok(cf != NULL, "warnings: loads") &&
		    is_int(cf->nwarnings, 2, "  two warnings")) {
			ok(strstr(cf->warnings[0], "mirror.conf:4: warning: "
			    "password_file") != NULL &&
			    strstr(cf->warnings[0], "readable by every user") !=
			    NULL, "  the readable password_file, at its line");
			is_str(cf->warnings[1], "mirror.conf:1: warning: "
			    "upstream 'r.example' has credentials and a "
			    "plain-http url http://r.example: anyone on the "
			    "path can read them", "  credentials over http");
		}
		config_free(cf);
	}
}

/*
 * [auth], [access], the admin listener's locks, and fail closed: what
 * loads, and the exact FILE:LINE of each refusal.
 */
static void
test_access(void)
{
	struct config			*cf;
	const struct config_access	*a;
	const char			*htp = tmpfile_with("alice:x\n", 8);
	const char			*pw = tmpfile_with("pw\n", 3);
	char				*text, want[600];

	xasprintf(&text, "[server]\nlisten = 127.0.0.1:5000\n"
	    "trusted_proxies = 10.0.0.0/8, ::1\n"
	    "[auth]\nhtpasswd = %s\ntoken_ttl = 2m\n"
	    "token_realm = https://m.example/token\n"
	    "[access \"team-a\"]\nusers = alice, *\n"
	    "from = 10.1.0.0/16, fd00::/8\n"
	    "repositories = docker.io/team-a/**, docker.io/x\n"
	    "allow = pull, catalog\n"
	    "[access \"nobody\"]\nusers = anonymous\n"
	    "repositories = **/x\nallow = none\n" MINIMAL_UPSTREAM, htp);
	cf = load(text);
	free(text);
	if (ok(cf != NULL, "access: a full file loads")) {
		a = cf->access;
		ok(cf->auth && strcmp(cf->htpasswd, htp) == 0 &&
		    cf->token_ttl == 120 && strcmp(cf->token_path, "/token") ==
		    0 && strcmp(cf->token_service, "regmirror") == 0 &&
		    cf->max_login_failures == 5 &&
		    cf->login_failure_window == 60, "  [auth] and defaults");
		ok(cf->naccess == 2 && strcmp(a->name, "team-a") == 0 &&
		    a->nusers == 2 && a->nfrom == 2 && a->nrepos == 2 &&
		    a->allow == (CONFIG_ALLOW_PULL | CONFIG_ALLOW_CATALOG),
		    "  the first rule");
		ok(a->next->allow == 0 && a->next->next == NULL,
		    "  allow = none, in file order");
		ok(cf->ntrusted_proxies == 2, "  trusted_proxies");
		config_free(cf);
	}

	load_fails("[access]\n", "mirror.conf:1: [access] needs a quoted "
	    "name: [access \"team-a\"]");
	load_fails("[access \"a\"]\nrepositories = docker.io/**\n"
	    MINIMAL_UPSTREAM, "mirror.conf:1: access 'a' has no users "
	    "(names, *, or anonymous)");
	load_fails("[access \"a\"]\nusers = *\n" MINIMAL_UPSTREAM,
	    "mirror.conf:1: access 'a' has no repositories (UPSTREAM/REPO "
	    "globs)");
	load_fails("[access \"a\"]\nusers = *\nrepositories = ghcr.io/x/**\n"
	    MINIMAL_UPSTREAM, "mirror.conf:1: access 'a': repository glob "
	    "'ghcr.io/x/**' covers no [upstream] section");
	load_fails("[access \"a\"]\nrepositories = x\n", "mirror.conf:2: bad "
	    "repositories glob 'x' (want UPSTREAM/REPO, e.g. "
	    "ghcr.io/team-a/** or docker.io/library/*)");
	load_fails("[access \"a\"]\nallow = push\n", "mirror.conf:2: bad "
	    "allow 'push' (want pull, catalog or none)");
	load_fails("[access \"a\"]\nallow = none, pull\n", "mirror.conf:2: "
	    "allow: none cannot go with pull or catalog");
	load_fails("[access \"a\"]\nfrom = 10.1.2.3/16\n", "mirror.conf:2: "
	    "bad from entry '10.1.2.3/16' (want an address or a prefix such "
	    "as 10.0.0.0/8, without host bits)");
	load_fails("[access \"a\"]\nfrom = 300.0.0.0/8\n", "mirror.conf:2: "
	    "bad from entry '300.0.0.0/8' (want an address or a prefix such "
	    "as 10.0.0.0/8, without host bits)");
	load_fails("[access \"a\"]\nusers = al ice\n", "mirror.conf:2: bad "
	    "user 'al ice' in users (want a name, * or anonymous)");
	load_fails("[access \"a\"]\n[access \"a\"]\n", "mirror.conf:2: "
	    "duplicate access rule 'a'");
	load_fails("[auth]\n" MINIMAL_UPSTREAM, "mirror.conf:1: [auth] names "
	    "no way to log in: set htpasswd or client_ca");
	xasprintf(&text, "[auth]\nhtpasswd = %s\n[auth]\n", htp);
	load_fails(text, "mirror.conf:3: duplicate section [auth] (first on "
	    "line 1)");
	free(text);
	xasprintf(&text, "[auth]\nclient_ca = %s\n" MINIMAL_UPSTREAM, htp);
	load_fails(text, "mirror.conf:2: client_ca needs an HTTPS listener "
	    "(tls_cert and tls_key)");
	free(text);
	load_fails("[auth]\ntoken_path = token\n", "mirror.conf:2: bad "
	    "token_path 'token' (want an absolute path outside /v2, such as "
	    "/token)");
	load_fails("[auth]\ntoken_path = /v2/token\n", "mirror.conf:2: bad "
	    "token_path '/v2/token' (want an absolute path outside /v2, such "
	    "as /token)");
	load_fails("[auth]\ntoken_realm = ftp://x/token\n", "mirror.conf:2: "
	    "bad token_realm 'ftp://x/token' (want an http:// or https:// "
	    "URL)");
	load_fails("[auth]\ntoken_ttl = 5\n", "mirror.conf:2: token_ttl "
	    "must be at least 10s, not '5'");

	/* The admin listener: loopback, a unix socket, or locked. */
	cf = load("[server]\nadmin_listen = unix:/run/rm/admin.sock\n"
	    MINIMAL_UPSTREAM);
	ok(cf != NULL && strcmp(cf->admin_listen, "unix:/run/rm/admin.sock")
	    == 0, "admin_listen on a unix socket");
	config_free(cf);
	load_fails("[server]\nadmin_listen = unix:rel.sock\n", "mirror.conf:2: "
	    "bad admin_listen 'unix:rel.sock' (want unix: and an absolute "
	    "path under 108 bytes)");
	load_fails("[server]\nadmin_listen = 0.0.0.0:5001\n" MINIMAL_UPSTREAM,
	    "mirror.conf:2: admin_listen 0.0.0.0:5001 is not on loopback or "
	    "a unix socket: it needs admin_token_file with admin_tls_cert "
	    "and admin_tls_key, or admin_client_ca");
	xasprintf(&text, "[server]\nadmin_listen = 0.0.0.0:5001\n"
	    "admin_token_file = %s\n" MINIMAL_UPSTREAM, pw);
	load_fails(text, "mirror.conf:2: admin_listen 0.0.0.0:5001 is not on "
	    "loopback or a unix socket: it needs admin_token_file with "
	    "admin_tls_cert and admin_tls_key, or admin_client_ca");
	free(text);
	xasprintf(&text, "[server]\nadmin_listen = 0.0.0.0:5001\n"
	    "admin_token_file = %s\nadmin_tls_cert = /c.pem\n"
	    "admin_tls_key = /k.pem\n" MINIMAL_UPSTREAM, pw);
	cf = load(text);
	ok(cf != NULL, "admin_listen off loopback with a token and TLS");
	config_free(cf);
	free(text);
	load_fails("[server]\nadmin_tls_cert = /c.pem\n" MINIMAL_UPSTREAM,
	    "mirror.conf:2: admin_tls_cert and admin_tls_key go together");
	xasprintf(&text, "[server]\nadmin_client_ca = %s\n" MINIMAL_UPSTREAM,
	    pw);
	load_fails(text, "mirror.conf:2: admin_client_ca requires "
	    "admin_tls_cert and admin_tls_key");
	free(text);

	/* Fail closed: credentials, off loopback, nobody kept out. */
	xasprintf(&text, MINIMAL_UPSTREAM "username = u\npassword_file = %s\n",
	    pw);
	load_fails(text, "mirror.conf:1: upstream 'docker.io' has credentials "
	    "and listener 0.0.0.0:5000 is not on loopback, but no [auth] or "
	    "[access] rule says who may pull from it (add rules, or say "
	    "public = yes if its credentials may serve anyone)");
	free(text);
	{
		static const char *const loopback[] = { "127.0.0.1:5000",
		    "[::1]:5000", "localhost:5000", "127.9.9.9:1" };
		size_t	i;

		for (i = 0; i < 4; i++) {
			xasprintf(&text, "[server]\nlisten = %s\n"
			    MINIMAL_UPSTREAM "username = u\n"
			    "password_file = %s\n", loopback[i], pw);
			cf = load(text);
			ok(cf != NULL, "credentials, listener on %s: loads",
			    loopback[i]);
			config_free(cf);
			free(text);
		}
	}
	xasprintf(&text, "[server]\nlisten = 127.0.0.1:5000\n"
	    "tls_listen = [::]:5443\ntls_cert = /c\ntls_key = /k\n"
	    MINIMAL_UPSTREAM "username = u\npassword_file = %s\n", pw);
	load_fails(text, "mirror.conf:6: upstream 'docker.io' has credentials "
	    "and listener [::]:5443 is not on loopback, but no [auth] or "
	    "[access] rule says who may pull from it (add rules, or say "
	    "public = yes if its credentials may serve anyone)");
	free(text);
	xasprintf(&text, MINIMAL_UPSTREAM "username = u\npassword_file = %s\n"
	    "[access \"open\"]\nusers = anonymous, *\n"
	    "repositories = docker.io/**\n", pw);
	snprintf(want, sizeof(want), "mirror.conf:5: access 'open' lets "
	    "anonymous clients from anywhere pull from upstream 'docker.io', "
	    "which has credentials, through listener 0.0.0.0:5000 (restrict "
	    "users or from, or say public = yes in [upstream \"docker.io\"])");
	load_fails(text, want);
	free(text);
	xasprintf(&text, MINIMAL_UPSTREAM "username = u\npassword_file = %s\n"
	    "[access \"open\"]\nusers = anonymous\nfrom = 10.0.0.0/8, ::/0\n"
	    "repositories = docker.io/**\n", pw);
	load_fails(text, "mirror.conf:5: access 'open' lets anonymous clients "
	    "from anywhere pull from upstream 'docker.io', which has "
	    "credentials, through listener 0.0.0.0:5000 (restrict users or "
	    "from, or say public = yes in [upstream \"docker.io\"])");
	free(text);
	xasprintf(&text, MINIMAL_UPSTREAM "username = u\npassword_file = %s\n"
	    "[access \"open\"]\nusers = anonymous\n"
	    "repositories = */library/**\n", pw);
	load_fails(text, "mirror.conf:5: access 'open' lets anonymous clients "
	    "from anywhere pull from upstream 'docker.io', which has "
	    "credentials, through listener 0.0.0.0:5000 (restrict users or "
	    "from, or say public = yes in [upstream \"docker.io\"])");
	free(text);
	{
		static const char *const closed[] = {
		    "public = yes\n",
		    "[access \"lan\"]\nusers = anonymous\nfrom = 10.0.0.0/8\n"
		    "repositories = docker.io/**\n",
		    "[access \"team\"]\nusers = *\n"
		    "repositories = docker.io/**\n",
		    "[access \"none\"]\nusers = anonymous\n"
		    "repositories = docker.io/**\nallow = none\n",
		};
		size_t	i;

		for (i = 0; i < 4; i++) {
			xasprintf(&text, MINIMAL_UPSTREAM "username = u\n"
			    "password_file = %s\n%s", pw, closed[i]);
			cf = load(text);
			ok(cf != NULL, "credentials off loopback, restricted "
			    "(%zu): loads", i);
			config_free(cf);
			free(text);
		}
		xasprintf(&text, MINIMAL_UPSTREAM "username = u\n"
		    "password_file = %s\n[auth]\nhtpasswd = %s\n", pw, htp);
		cf = load(text);
		ok(cf != NULL, "credentials off loopback, [auth] alone: loads");
		config_free(cf);
		free(text);
	}
}

/*
 * A member of a tier ([server] front, job_token_file, drain,
 * shutdown_timeout, ready_after_reconcile): defaults, bounds, bad values.
 * Durations with a maximum enforce it (they did not: login_cache_ttl).
 */
static void
test_tier(void)
{
	struct config	*cf;

	cf = load(MINIMAL_UPSTREAM);
	if (ok(cf != NULL, "tier: defaults")) {
		ok(cf->front == NULL, "  front unset");
		ok(cf->job_token_file == NULL, "  job_token_file unset");
		is_int(cf->drain, 5, "  drain 5s");
		is_int(cf->shutdown_timeout, 60, "  shutdown_timeout 60s");
		is_int(cf->ready_after_reconcile, 1, "  ready_after_reconcile");
		config_free(cf);
	}
	cf = load("[server]\nfront = https://lb.example\ndrain = 0\n"
	    "shutdown_timeout = 1d\nready_after_reconcile = no\n"
	    MINIMAL_UPSTREAM);
	if (ok(cf != NULL, "tier: at the bounds")) {
		is_str(cf->front, "https://lb.example", "  front normalised");
		is_int(cf->drain, 0, "  drain 0");
		is_int(cf->shutdown_timeout, 86400, "  shutdown_timeout 1d");
		is_int(cf->ready_after_reconcile, 0, "  not after reconcile");
		config_free(cf);
	}
	cf = load("[server]\ndrain = 1h\n" MINIMAL_UPSTREAM);
	if (ok(cf != NULL, "tier: drain 1h"))
		config_free(cf);
	load_fails("[server]\ndrain = 61m\n",
	    "mirror.conf:2: drain must be at most 3600s, not '61m'");
	load_fails("[server]\nshutdown_timeout = 2d\n",
	    "mirror.conf:2: shutdown_timeout must be at most 86400s, not '2d'");
	load_fails("[auth]\nlogin_cache_ttl = 2h\n",
	    "mirror.conf:2: login_cache_ttl must be at most 3600s, not '2h'");
	load_fails("[server]\nfront = ftp://lb\n",
	    "mirror.conf:2: bad front 'ftp://lb' (want http(s)://host[:port] "
	    "with no path)");
	load_fails("[server]\nfront = http://lb:5000/v2\n",
	    "mirror.conf:2: bad front 'http://lb:5000/v2' (want "
	    "http(s)://host[:port] with no path)");
	/* The job secret: readable by everyone, over plain http. */
	{
		const char	*jt = tmpfile_with("0123456789abcdef01\n", 19);
		char		*text;

		chmod(jt, 0644);
		xasprintf(&text, "[server]\nfront = http://lb.example:5000\n"
		    "job_token_file = %s\n" MINIMAL_UPSTREAM, jt);
		cf = load(text);
		free(text);
		if (ok(cf != NULL, "tier warnings: loads") &&
		    is_int(cf->nwarnings, 2, "  two warnings")) {
			ok(strstr(cf->warnings[0], "mirror.conf:3: warning: "
			    "job_token_file") != NULL && strstr(cf->warnings[0],
			    "readable by every user") != NULL,
			    "  the readable job_token_file, at its line");
			ok(strstr(cf->warnings[1], "mirror.conf:2: warning: "
			    "front http://lb.example:5000 is plain http") !=
			    NULL, "  the secret over http, at front's line");
		}
		config_free(cf);
		chmod(jt, 0600);
		xasprintf(&text, "[server]\nfront = http://127.0.0.1:5000\n"
		    "job_token_file = %s\n" MINIMAL_UPSTREAM, jt);
		cf = load(text);
		free(text);
		if (ok(cf != NULL, "tier: loopback front, private secret"))
			is_int(cf->nwarnings, 0, "  no warning");
		config_free(cf);
	}
	load_fails("[server]\njob_token_file = /nonexistent/job.token\n",
	    "mirror.conf:2: cannot read job_token_file "
	    "'/nonexistent/job.token': No such file or directory");
}

int
main(void)
{
	test_parsers();
	test_full();
	test_defaults();
	test_syntax();
	test_errors();
	test_did_you_mean();
	test_replication_push();
	test_job_limits();
	test_password_file();
	test_load_file();
	test_example();
	test_print_defaults();
	test_limits();
	test_tier();
	test_access();
	tmpfiles_remove();
	return done_testing();
}
