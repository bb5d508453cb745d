/*
 * config.c — read mirror.conf (format in config.h; keys in
 * config_schema.c).
 *
 * One pass over the text, line by line: a section header switches the
 * current section (a new [upstream] or [replication] starts with the
 * table's defaults), a "key = value" line is looked up in config_keys[]
 * and applied at once by its kind's setter, so every error carries the
 * line that caused it.  An unknown key or section names the closest
 * known one when it looks like a typo of it.  Checks that need a whole
 * section (an [upstream] without url) are made when the section ends and
 * point at its header; checks that need the whole file (no [upstream] at
 * all, a destination that names none) are made at the end, at the line
 * the key was given on or line 0.  Secrets are read from password_file
 * while loading, so a daemon that started has everything it needs.
 *
 * The lexer is written here rather than taken from libinih, which cuts
 * lines at 199 bytes, keeps '#' comments inside values and gives its
 * handler no line number.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cidr.h"
#include "common/config.h"
#include "common/config_int.h"
#include "common/obj.h"
#include "common/xmalloc.h"

#define CONFIG_FILE_MAX		(1024 * 1024)
#define CONFIG_LINE_MAX		8192

static const char *const config_section_names[] = {
#define CONFIG_SECTION_NAME(id, name, example)	[CONFIG_SECT_##id] = name,
	CONFIG_SECTIONS(CONFIG_SECTION_NAME)
#undef CONFIG_SECTION_NAME
};

static const char *const config_section_examples[] = {
#define CONFIG_SECTION_EXAMPLE(id, name, example) [CONFIG_SECT_##id] = example,
	CONFIG_SECTIONS(CONFIG_SECTION_EXAMPLE)
#undef CONFIG_SECTION_EXAMPLE
};

const char *
config_section_str(enum config_section s)
{
	AN(s < CONFIG_NSECTIONS);
	return config_section_names[s];
}

const char *
config_section_example(enum config_section s)
{
	AN(s < CONFIG_NSECTIONS);
	return config_section_examples[s];
}

int
config_error_at(struct config_parser *p, unsigned long line, const char *fmt,
    ...)
{
	va_list	ap;
	int	n;

	if (p->cp_err == NULL || p->cp_errlen == 0)
		return -1;
	n = snprintf(p->cp_err, p->cp_errlen, "%s:%lu: ", p->cp_fname, line);
	if (n >= 0 && (size_t)n < p->cp_errlen) {
		va_start(ap, fmt);
		vsnprintf(p->cp_err + n, p->cp_errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* A warning ("FILE:LINE: warning: ..."), kept for the caller to show. */
void
config_warning(struct config_parser *p, unsigned long line, const char *fmt,
    ...)
{
	struct config	*cf = p->cp_cf;
	char		 msg[512];
	char		*w;
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	xasprintf(&w, "%s:%lu: warning: %s", p->cp_fname, line, msg);
	cf->warnings = xreallocarray(cf->warnings, cf->nwarnings + 1,
	    sizeof(*cf->warnings));
	cf->warnings[cf->nwarnings++] = w;
}

static int
config_is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

char *
config_trim(char *s)
{
	char	*e;

	while (config_is_ws(*s))
		s++;
	e = s + strlen(s);
	while (e > s && config_is_ws(e[-1]))
		*--e = '\0';
	return s;
}

int
config_parse_duration(const char *s, long *seconds)
{
	unsigned long	v = 0, mult;

	if (s == NULL || !config_is_digit(*s))
		return -1;
	for (; config_is_digit(*s); s++) {
		if (v > ((unsigned long)LONG_MAX - (unsigned long)(*s - '0')) /
		    10)
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	switch (*s) {
	case '\0':
	case 's':
		mult = 1;
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = 86400;
		break;
	default:
		return -1;
	}
	if (*s != '\0' && s[1] != '\0')
		return -1;
	if (v > (unsigned long)LONG_MAX / mult)
		return -1;
	*seconds = (long)(v * mult);
	return 0;
}

int
config_parse_size(const char *s, uint64_t *bytes)
{
	static const struct {
		const char	*suffix;
		unsigned	 shift;
	} units[] = {
		{ "", 0 }, { "b", 0 },
		{ "k", 10 }, { "kb", 10 }, { "kib", 10 },
		{ "m", 20 }, { "mb", 20 }, { "mib", 20 },
		{ "g", 30 }, { "gb", 30 }, { "gib", 30 },
		{ "t", 40 }, { "tb", 40 }, { "tib", 40 },
	};
	uint64_t	v = 0;
	size_t		i;

	if (s == NULL || !config_is_digit(*s))
		return -1;
	for (; config_is_digit(*s); s++) {
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(s, units[i].suffix) != 0)
			continue;
		if (v > (UINT64_MAX >> units[i].shift))
			return -1;
		*bytes = v << units[i].shift;
		return 0;
	}
	return -1;
}

int
config_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t			 i;

	if (s == NULL)
		return -1;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

#define CONFIG_NAME_MAX	64	/* longer names get no suggestion */

static char
config_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/*
 * Edit distance between two names, ignoring case: insertions, deletions,
 * substitutions and swaps of neighbours ("lsiten") count one each.
 */
static size_t
config_distance(const char *a, const char *b)
{
	unsigned char	d[CONFIG_NAME_MAX + 1][CONFIG_NAME_MAX + 1];
	size_t		la = strlen(a), lb = strlen(b), i, j, best;

	if (la > CONFIG_NAME_MAX || lb > CONFIG_NAME_MAX)
		return SIZE_MAX;
	for (i = 0; i <= la; i++)
		d[i][0] = (unsigned char)i;
	for (j = 0; j <= lb; j++)
		d[0][j] = (unsigned char)j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			best = d[i - 1][j - 1];
			if (config_lower(a[i - 1]) != config_lower(b[j - 1]))
				best++;
			if (d[i - 1][j] + 1u < best)
				best = d[i - 1][j] + 1u;
			if (d[i][j - 1] + 1u < best)
				best = d[i][j - 1] + 1u;
			if (i > 1 && j > 1 &&
			    config_lower(a[i - 1]) == config_lower(b[j - 2]) &&
			    config_lower(a[i - 2]) == config_lower(b[j - 1]) &&
			    d[i - 2][j - 2] + 1u < best)
				best = d[i - 2][j - 2] + 1u;
			d[i][j] = (unsigned char)best;
		}
	}
	return d[la][lb];
}

/*
 * Keep cand in *best if it is closer to word than *best is and close
 * enough to be a typo of it: at most one edit per three characters of
 * word, rounded up ("lisen" finds "listen", "bogus" nothing).
 */
static void
config_closer(const char *word, const char *cand, const char **best,
    size_t *bestd)
{
	size_t	d = config_distance(word, cand);

	if (d <= (strlen(word) + 2) / 3 && d < *bestd) {
		*best = cand;
		*bestd = d;
	}
}

/* The key of section s that word is a typo of, or NULL. */
static const char *
config_suggest_key(enum config_section s, const char *word)
{
	const char	*best = NULL;
	size_t		 bestd = SIZE_MAX, i;

	for (i = 0; i < config_nkeys; i++)
		if (config_keys[i].ck_sect == s)
			config_closer(word, config_keys[i].ck_name, &best,
			    &bestd);
	return best;
}

/* The section word is a typo of, or NULL. */
static const char *
config_suggest_section(const char *word)
{
	const char	*best = NULL;
	size_t		 bestd = SIZE_MAX, i;

	for (i = 1; i < CONFIG_NSECTIONS; i++)
		config_closer(word, config_section_names[i], &best, &bestd);
	return best;
}

/* Checks that need the whole [upstream] section; errors at its header. */
static int
config_upstream_close(struct config_parser *p)
{
	struct config_upstream	*up = p->cp_up;

	if (up == NULL)
		return 0;
	p->cp_up = NULL;
	if (up->nurls == 0)
		return config_error_at(p, p->cp_up_line,
		    "upstream '%s' has no url", up->name);
	if (up->username != NULL && up->password_file == NULL)
		return config_error_at(p, p->cp_up_line,
		    "upstream '%s': username requires password_file",
		    up->name);
	if (up->username == NULL && up->password_file != NULL)
		return config_error_at(p, p->cp_up_line,
		    "upstream '%s': password_file requires username",
		    up->name);
	for (size_t i = 0; up->username != NULL && i < up->nurls; i++)
		if (strncmp(up->urls[i], "http://", 7) == 0)
			config_warning(p, p->cp_up_line, "upstream '%s' has "
			    "credentials and a plain-http url %s: anyone on "
			    "the path can read them", up->name, up->urls[i]);
	return 0;
}

/* Keys of a named section may be given once per section, not per file. */
static void
config_key_lines_reset(struct config_parser *p, enum config_section s)
{
	for (size_t i = 0; i < config_nkeys; i++)
		if (config_keys[i].ck_sect == s)
			p->cp_key_line[i] = 0;
}

static int
config_upstream_open(struct config_parser *p, const char *name)
{
	struct config_upstream	*up, *other;

	if (!config_registry_valid(name))
		return config_error(p, "bad upstream name '%s' (want a "
		    "registry host such as \"docker.io\")", name);
	if ((other = config_upstream_find(p->cp_cf, name)) != NULL)
		return config_error(p, "duplicate upstream '%s' (already "
		    "used by upstream '%s')", name, other->name);
	up = xcalloc(1, sizeof(*up));
	up->name = xstrdup(name);
	up->line = p->cp_line;
	*p->cp_tail = up;
	p->cp_tail = &up->next;
	p->cp_cf->nupstreams++;
	p->cp_up = up;
	p->cp_up_line = p->cp_line;
	config_section_defaults(p, CONFIG_SECT_UPSTREAM, up);
	config_key_lines_reset(p, CONFIG_SECT_UPSTREAM);
	return 0;
}

static int
config_replication_open(struct config_parser *p, const char *name)
{
	struct config_replication	*r;

	for (r = p->cp_cf->replications; r != NULL; r = r->next)
		if (strcmp(r->name, name) == 0)
			return config_error(p, "duplicate replication policy "
			    "'%s'", name);
	r = xcalloc(1, sizeof(*r));
	r->name = xstrdup(name);
	r->line = p->cp_line;
	*p->cp_repl_tail = r;
	p->cp_repl_tail = &r->next;
	p->cp_cf->nreplications++;
	p->cp_repl = r;
	config_section_defaults(p, CONFIG_SECT_REPLICATION, r);
	config_key_lines_reset(p, CONFIG_SECT_REPLICATION);
	return 0;
}

static int
config_access_open(struct config_parser *p, const char *name)
{
	struct config_access	*a;

	for (a = p->cp_cf->access; a != NULL; a = a->next)
		if (strcmp(a->name, name) == 0)
			return config_error(p, "duplicate access rule '%s'",
			    name);
	a = xcalloc(1, sizeof(*a));
	a->name = xstrdup(name);
	a->line = p->cp_line;
	*p->cp_access_tail = a;
	p->cp_access_tail = &a->next;
	p->cp_cf->naccess++;
	p->cp_access = a;
	config_section_defaults(p, CONFIG_SECT_ACCESS, a);
	config_key_lines_reset(p, CONFIG_SECT_ACCESS);
	return 0;
}

/*
 * Lex "[word]" or "[word "arg"]", with an optional trailing comment, in
 * place; *arg is NULL when there is no quoted name.
 */
static int
config_section_lex(struct config_parser *p, char *s, char **word, char **arg)
{
	size_t	wlen;

	*arg = NULL;
	s++;
	while (config_is_ws(*s))
		s++;
	*word = s;
	while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
	    *s == '_')
		s++;
	wlen = (size_t)(s - *word);
	while (config_is_ws(*s))
		s++;
	if (*s == '"') {
		*arg = ++s;
		while (*s != '"' && *s != '\0')
			s++;
		if (*s == '\0')
			return config_error(p, "unterminated section header");
		*s++ = '\0';
		while (config_is_ws(*s))
			s++;
	}
	if (*s == '\0')
		return config_error(p, "unterminated section header");
	if (*s != ']' || wlen == 0)
		return config_error(p, "malformed section header");
	(*word)[wlen] = '\0';
	s++;
	while (config_is_ws(*s))
		s++;
	if (*s != '\0' && *s != '#' && *s != ';')
		return config_error(p, "junk after section header");
	return 0;
}

/* "[server]", "[upstream "NAME"]": end the current section, open this. */
static int
config_parse_section(struct config_parser *p, char *s)
{
	const char	*near;
	char		*word, *arg;
	size_t		 i;

	if (config_section_lex(p, s, &word, &arg) == -1 ||
	    config_upstream_close(p) == -1)
		return -1;
	for (i = 1; i < CONFIG_NSECTIONS; i++)
		if (strcasecmp(word, config_section_names[i]) == 0)
			break;
	if (i == CONFIG_NSECTIONS && (near = config_suggest_section(word)))
		return config_error(p, "unknown section [%s] (did you mean "
		    "[%s]?)", word, near);
	if (i == CONFIG_NSECTIONS)
		return config_error(p, "unknown section [%s]", word);
	p->cp_sect = (enum config_section)i;
	p->cp_repl = NULL;
	p->cp_access = NULL;
	switch (p->cp_sect) {
	case CONFIG_SECT_ACCESS:
		if (arg == NULL || *arg == '\0')
			return config_error(p, "[access] needs a quoted "
			    "name: [access \"%s\"]",
			    config_section_examples[i]);
		return config_access_open(p, arg);
	case CONFIG_SECT_AUTH:
		if (arg != NULL)
			return config_error(p, "section [%s] takes no name",
			    word);
		if (p->cp_cf->auth)
			return config_error(p, "duplicate section [auth] "
			    "(first on line %lu)", p->cp_cf->auth_line);
		p->cp_cf->auth = 1;
		p->cp_cf->auth_line = p->cp_line;
		return 0;
	case CONFIG_SECT_REPLICATION:
		if (arg == NULL || *arg == '\0')
			return config_error(p, "[replication] needs a quoted "
			    "name: [replication \"%s\"]",
			    config_section_examples[i]);
		return config_replication_open(p, arg);
	case CONFIG_SECT_UPSTREAM:
		if (arg == NULL)
			return config_error(p, "[upstream] needs a quoted "
			    "name: [upstream \"%s\"]",
			    config_section_examples[i]);
		return config_upstream_open(p, arg);
	default:
		if (arg != NULL)
			return config_error(p, "section [%s] takes no name",
			    word);
		return 0;
	}
}

/*
 * The value after '=': a double-quoted string (escapes \" and \\) or the
 * rest of the line up to a comment ('#' or ';' after whitespace).  Parsed
 * in place; NULL (error set) if malformed.
 */
static char *
config_parse_value(struct config_parser *p, char *start)
{
	char	*v, *r, *w;

	v = start;
	while (config_is_ws(*v))
		v++;
	if (*v != '"') {
		for (r = v; *r != '\0'; r++) {
			if ((*r == '#' || *r == ';') && r > start &&
			    config_is_ws(r[-1])) {
				*r = '\0';
				break;
			}
		}
		return config_trim(v);
	}
	for (r = w = ++v; *r != '"'; r++) {
		if (*r == '\0') {
			config_error(p, "unterminated quoted value");
			return NULL;
		}
		if (*r == '\\') {
			r++;
			if (*r != '"' && *r != '\\') {
				config_error(p, "bad escape in quoted value "
				    "(only \\\" and \\\\)");
				return NULL;
			}
		}
		*w++ = *r;
	}
	for (r++; config_is_ws(*r); r++)
		;
	if (*r != '\0' && *r != '#' && *r != ';') {
		config_error(p, "junk after quoted value");
		return NULL;
	}
	*w = '\0';
	return v;
}

static const char *
config_section_label(const struct config_parser *p, char *buf, size_t len)
{
	if (p->cp_sect == CONFIG_SECT_UPSTREAM && p->cp_up != NULL)
		snprintf(buf, len, "[upstream \"%s\"]", p->cp_up->name);
	else if (p->cp_sect == CONFIG_SECT_ACCESS && p->cp_access != NULL)
		snprintf(buf, len, "[access \"%s\"]", p->cp_access->name);
	else
		snprintf(buf, len, "[%s]", config_section_names[p->cp_sect]);
	return buf;
}

/* "key": letters, digits, '_' and '-'. */
static int
config_key_valid(const char *key)
{
	for (; *key != '\0'; key++)
		if (!((*key >= 'a' && *key <= 'z') ||
		    (*key >= 'A' && *key <= 'Z') || config_is_digit(*key) ||
		    *key == '_' || *key == '-'))
			return 0;
	return 1;
}

static int
config_parse_line(struct config_parser *p, char *line)
{
	const struct config_key	*k;
	const char		*near;
	char			*s, *eq, *key, *value, label[300];
	size_t			 i;

	s = config_trim(line);
	if (*s == '\0' || *s == '#' || *s == ';')
		return 0;
	if (*s == '[')
		return config_parse_section(p, s);
	if ((eq = strchr(s, '=')) == NULL)
		return config_error(p, "malformed line (expected "
		    "'key = value')");
	if ((value = config_parse_value(p, eq + 1)) == NULL)
		return -1;
	*eq = '\0';
	key = config_trim(s);
	if (*key == '\0')
		return config_error(p, "missing key before '='");
	if (!config_key_valid(key))
		return config_error(p, "malformed key '%s'", key);
	if (p->cp_sect == CONFIG_SECT_NONE)
		return config_error(p, "key '%s' outside of any section", key);

	k = config_key_find(p->cp_sect, key);
	if (k == NULL && (near = config_suggest_key(p->cp_sect, key)))
		return config_error(p, "unknown key '%s' in %s (did you mean "
		    "'%s'?)", key, config_section_label(p, label,
		    sizeof(label)), near);
	if (k == NULL)
		return config_error(p, "unknown key '%s' in %s", key,
		    config_section_label(p, label, sizeof(label)));
	i = (size_t)(k - config_keys);
	if (!(k->ck_flags & CONFIG_KF_REPEAT) && p->cp_key_line[i] != 0)
		return config_error(p, "duplicate key '%s' in %s", key,
		    config_section_label(p, label, sizeof(label)));
	p->cp_key_line[i] = p->cp_line;
	return config_key_set(p, k, value);
}

/* The line [server] key name was given on, 0 if it was not. */
static unsigned long
config_server_line(const struct config_parser *p, const char *name)
{
	const struct config_key	*k = config_key_find(CONFIG_SECT_SERVER, name);

	AN(k != NULL);
	return p->cp_key_line[k - config_keys];
}

/* The names each policy gives, against the [upstream] sections. */
static int
config_finish_replication(struct config_parser *p,
    const struct config_replication *r)
{
	struct config	*cf = p->cp_cf;

	if (r->source == NULL)
		return config_error_at(p, r->line, "replication '%s' "
		    "has no source", r->name);
	if (config_upstream_find(cf, r->source) == NULL)
		return config_error_at(p, r->line, "replication '%s': "
		    "source '%s' is not an [upstream] section",
		    r->name, r->source);
	if (r->nrepos == 0)
		return config_error_at(p, r->line, "replication '%s' "
		    "has no repositories", r->name);
	if (r->destination != NULL &&
	    config_upstream_find(cf, r->destination) == NULL)
		return config_error_at(p, r->dest_line, "replication "
		    "'%s': destination '%s' is not an [upstream] "
		    "section", r->name, r->destination);
	if (r->destination != NULL && config_upstream_find(cf,
	    r->destination) == config_upstream_find(cf, r->source))
		return config_error_at(p, r->dest_line, "replication "
		    "'%s': destination is the source", r->name);
	return 0;
}

/* The line key name of (unnamed) section sect was given on, or 0. */
static unsigned long
config_sect_line(const struct config_parser *p, enum config_section sect,
    const char *name)
{
	const struct config_key	*k = config_key_find(sect, name);

	AN(k != NULL);
	return p->cp_key_line[k - config_keys];
}

/* "host:port", "[v6]:port", ":port": on a loopback address only? */
static int
config_listen_loopback(const char *addr)
{
	char		 host[256];
	const char	*end;
	size_t		 len;

	if (addr[0] == '[') {
		if ((end = strchr(addr, ']')) == NULL)
			return 0;
		addr++;
	} else if ((end = strrchr(addr, ':')) == NULL)
		end = addr + strlen(addr);
	len = (size_t)(end - addr);
	if (len == 0 || len >= sizeof(host))
		return 0;		/* ":5000" is every address */
	memcpy(host, addr, len);
	host[len] = '\0';
	return cidr_is_loopback_str(host);
}

/* The first listener (plain or HTTPS) off loopback, or NULL. */
static const char *
config_public_listener(const struct config *cf)
{
	size_t	i;

	for (i = 0; i < cf->nlisten; i++)
		if (!config_listen_loopback(cf->listen[i]))
			return cf->listen[i];
	for (i = 0; i < cf->ntls_listen; i++)
		if (!config_listen_loopback(cf->tls_listen[i]))
			return cf->tls_listen[i];
	return NULL;
}

/* Does glob's upstream part (up to its first '/') cover upstream up? */
static int
config_glob_covers(const char *glob, const struct config_upstream *up)
{
	char	first[300];
	size_t	len = strcspn(glob, "/");

	if (len >= sizeof(first))
		return 0;
	memcpy(first, glob, len);
	first[len] = '\0';
	if (fnmatch(first, up->name, FNM_CASEFOLD) == 0)
		return 1;
	for (size_t i = 0; i < up->naliases; i++)
		if (fnmatch(first, up->aliases[i], FNM_CASEFOLD) == 0)
			return 1;
	return 0;
}

/* No from, or a from with a /0 in it (0.0.0.0/0, ::/0): anywhere. */
static int
config_from_anywhere(const struct config_access *a)
{
	struct cidr	c;
	size_t		i;

	for (i = 0; i < a->nfrom; i++)
		if (cidr_parse(a->from[i], &c) == 0 && c.bits == 0)
			return 1;
	return a->nfrom == 0;
}

/* A rule that lets anyone, from anywhere, pull from up; or NULL. */
static const struct config_access *
config_rule_opens(const struct config *cf, const struct config_upstream *up)
{
	const struct config_access	*a;
	size_t				 i, j;

	for (a = cf->access; a != NULL; a = a->next) {
		if (!(a->allow & CONFIG_ALLOW_PULL) || !config_from_anywhere(a))
			continue;
		for (i = 0; i < a->nusers; i++)
			if (strcmp(a->users[i], "anonymous") == 0)
				break;
		if (i == a->nusers)
			continue;
		for (j = 0; j < a->nrepos; j++)
			if (config_glob_covers(a->repos[j], up))
				return a;
	}
	return NULL;
}

/*
 * Fail closed: an upstream's credentials reach what anonymous clients
 * could not; off loopback, someone must be kept out of them.  Refused:
 * credentials, a listener off loopback, and no rule in the way (no
 * [auth] or [access] at all, or a rule letting anonymous clients from
 * anywhere pull from it), unless the upstream says public = yes.
 */
static int
config_finish_fail_closed(struct config_parser *p)
{
	const struct config		*cf = p->cp_cf;
	const struct config_upstream	*up;
	const struct config_access	*a;
	const char			*pub;

	if ((pub = config_public_listener(cf)) == NULL)
		return 0;
	for (up = cf->upstreams; up != NULL; up = up->next) {
		if (up->username == NULL || up->public)
			continue;
		if (!cf->auth && cf->naccess == 0)
			return config_error_at(p, up->line, "upstream '%s' "
			    "has credentials and listener %s is not on "
			    "loopback, but no [auth] or [access] rule says "
			    "who may pull from it (add rules, or say public "
			    "= yes if its credentials may serve anyone)",
			    up->name, pub);
		if ((a = config_rule_opens(cf, up)) != NULL)
			return config_error_at(p, a->line, "access '%s' lets "
			    "anonymous clients from anywhere pull from "
			    "upstream '%s', which has credentials, through "
			    "listener %s (restrict users or from, or say "
			    "public = yes in [upstream \"%s\"])", a->name,
			    up->name, pub, up->name);
	}
	return 0;
}

/* The admin listener: off loopback and unix sockets, locked. */
static int
config_finish_admin(struct config_parser *p)
{
	const struct config	*cf = p->cp_cf;
	unsigned long		 line;

	line = config_sect_line(p, CONFIG_SECT_SERVER, "admin_tls_cert");
	if ((cf->admin_tls_cert == NULL) != (cf->admin_tls_key == NULL))
		return config_error_at(p, line != 0 ? line :
		    config_sect_line(p, CONFIG_SECT_SERVER, "admin_tls_key"),
		    "admin_tls_cert and admin_tls_key go together");
	if (cf->admin_client_ca != NULL && cf->admin_tls_cert == NULL)
		return config_error_at(p, config_sect_line(p,
		    CONFIG_SECT_SERVER, "admin_client_ca"), "admin_client_ca "
		    "requires admin_tls_cert and admin_tls_key");
	if (cf->admin_listen == NULL ||
	    strncmp(cf->admin_listen, "unix:", 5) == 0 ||
	    config_listen_loopback(cf->admin_listen))
		return 0;
	if (cf->admin_client_ca != NULL ||
	    (cf->admin_token_file != NULL && cf->admin_tls_cert != NULL))
		return 0;
	return config_error_at(p, config_sect_line(p, CONFIG_SECT_SERVER,
	    "admin_listen"), "admin_listen %s is not on loopback or a unix "
	    "socket: it needs admin_token_file with admin_tls_cert and "
	    "admin_tls_key, or admin_client_ca", cf->admin_listen);
}

/* [auth] and [access]: complete, and naming what exists. */
static int
config_finish_access(struct config_parser *p)
{
	const struct config		*cf = p->cp_cf;
	const struct config_access	*a;
	const struct config_upstream	*up;
	size_t				 i;

	for (a = cf->access; a != NULL; a = a->next) {
		if (a->nusers == 0)
			return config_error_at(p, a->line, "access '%s' has "
			    "no users (names, *, or anonymous)", a->name);
		if (a->nrepos == 0)
			return config_error_at(p, a->line, "access '%s' has "
			    "no repositories (UPSTREAM/REPO globs)", a->name);
		for (i = 0; i < a->nrepos; i++) {
			for (up = cf->upstreams; up != NULL; up = up->next)
				if (config_glob_covers(a->repos[i], up))
					break;
			if (up == NULL)
				return config_error_at(p, a->line, "access "
				    "'%s': repository glob '%s' covers no "
				    "[upstream] section", a->name,
				    a->repos[i]);
		}
	}
	if (cf->auth && cf->htpasswd == NULL && cf->client_ca == NULL)
		return config_error_at(p, cf->auth_line, "[auth] names no way "
		    "to log in: set htpasswd or client_ca");
	if (cf->client_ca != NULL && cf->tls_cert == NULL)
		return config_error_at(p, config_sect_line(p,
		    CONFIG_SECT_AUTH, "client_ca"), "client_ca needs an "
		    "HTTPS listener (tls_cert and tls_key)");
	if (config_finish_admin(p) == -1)
		return -1;
	return config_finish_fail_closed(p);
}

/*
 * The tier's job secret travels in every job request to the front door:
 * over plain http off loopback anyone on the path can read it, and with
 * it skip every member's access rules.  And like any secret file, it
 * must not be readable by every user.
 */
static void
config_finish_front(struct config_parser *p)
{
	const struct config	*cf = p->cp_cf;
	const char		*h;
	struct stat		 st;

	if (cf->job_token_file == NULL)
		return;
	if (stat(cf->job_token_file, &st) == 0 && (st.st_mode & S_IROTH))
		config_warning(p, config_server_line(p, "job_token_file"),
		    "job_token_file '%s' is readable by every user (chmod "
		    "o-r)", cf->job_token_file);
	if (cf->front == NULL || strncmp(cf->front, "http://", 7) != 0)
		return;
	h = cf->front + 7;
	if (strncmp(h, "127.", 4) != 0 && strncmp(h, "[::1]", 5) != 0 &&
	    strncmp(h, "localhost", 9) != 0)
		config_warning(p, config_server_line(p, "front"),
		    "front %s is plain http: the job secret (job_token_file) "
		    "crosses the network readable; use https or a network "
		    "only the tier's hosts reach", cf->front);
}

/* Checks and defaults that need the whole file. */
int
config_fail_closed_check(const struct config *cf, char *err, size_t errlen)
{
	struct config_parser	p;

	memset(&p, 0, sizeof(p));
	p.cp_fname = cf->path;
	p.cp_err = err;
	p.cp_errlen = errlen;
	/* Only read: the check reports errors, it adds no warnings. */
	p.cp_cf = (struct config *)(uintptr_t)cf;
	return config_finish_fail_closed(&p);
}

static int
config_finish(struct config_parser *p)
{
	struct config			*cf = p->cp_cf;
	struct config_replication	*r;

	if (config_upstream_close(p) == -1)
		return -1;
	if (cf->tls_cert != NULL && cf->tls_key == NULL)
		return config_error_at(p, config_server_line(p, "tls_cert"),
		    "tls_cert requires tls_key");
	if (cf->tls_key != NULL && cf->tls_cert == NULL)
		return config_error_at(p, config_server_line(p, "tls_key"),
		    "tls_key requires tls_cert");
	if (cf->ntls_listen > 0 && cf->tls_cert == NULL)
		return config_error_at(p, config_server_line(p, "tls_listen"),
		    "tls_listen requires tls_cert and tls_key");
	if (cf->nupstreams == 0)
		return config_error_at(p, 0, "no [upstream] section");
	config_finish_front(p);
	for (r = cf->replications; r != NULL; r = r->next)
		if (config_finish_replication(p, r) == -1)
			return -1;
	if (cf->nupstreams == 1 && !cf->upstreams->is_default)
		cf->upstreams->is_default = 1;
	/* listen's default is for a file that names no listener at all. */
	if (cf->nlisten == 0 && cf->ntls_listen == 0)
		config_key_default(p, config_key_find(CONFIG_SECT_SERVER,
		    "listen"), cf);
	return config_finish_access(p);
}

int
config_load_string(const char *fname, const char *text, struct config **out,
    char *err, size_t errlen)
{
	struct config_parser	 p;
	const char		*s, *nl;
	char			*line;
	size_t			 len;
	int			 rc = -1;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (fname == NULL)
		fname = "(config)";
	config_keys_check();

	memset(&p, 0, sizeof(p));
	p.cp_fname = fname;
	p.cp_err = err;
	p.cp_errlen = errlen;
	p.cp_cf = xcalloc(1, sizeof(*p.cp_cf));
	p.cp_cf->path = xstrdup(fname);
	p.cp_tail = &p.cp_cf->upstreams;
	p.cp_repl_tail = &p.cp_cf->replications;
	p.cp_access_tail = &p.cp_cf->access;
	p.cp_key_line = xcalloc(config_nkeys, sizeof(*p.cp_key_line));
	config_section_defaults(&p, CONFIG_SECT_SERVER, p.cp_cf);
	config_section_defaults(&p, CONFIG_SECT_CACHE, p.cp_cf);
	config_section_defaults(&p, CONFIG_SECT_TIMEOUTS, p.cp_cf);
	config_section_defaults(&p, CONFIG_SECT_AUTH, p.cp_cf);

	line = xmalloc(CONFIG_LINE_MAX + 1);
	for (s = text; *s != '\0'; s = nl + 1) {
		p.cp_line++;
		if ((nl = strchr(s, '\n')) == NULL)
			nl = s + strlen(s);
		len = (size_t)(nl - s);
		if (len > CONFIG_LINE_MAX) {
			config_error(&p, "line too long (more than %d bytes)",
			    CONFIG_LINE_MAX);
			goto done;
		}
		memcpy(line, s, len);
		line[len] = '\0';
		if (config_parse_line(&p, line) == -1)
			goto done;
		if (*nl == '\0')
			break;
	}
	if (config_finish(&p) == -1)
		goto done;
	*out = p.cp_cf;
	p.cp_cf = NULL;
	rc = 0;
done:
	free(line);
	free(p.cp_key_line);
	config_free(p.cp_cf);
	return rc;
}

int
config_read_fd(int fd, size_t max, char **bufp, size_t *lenp)
{
	char	*buf;
	size_t	 len = 0;
	ssize_t	 n;
	int	 saved;

	buf = xmalloc(max + 2);
	for (;;) {
		n = read(fd, buf + len, max + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			saved = errno;
			free(buf);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			free(buf);
			return -2;
		}
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

int
config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	char		*buf, *nul;
	size_t		 len;
	unsigned long	 line;
	int		 fd, rc, saved;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s:0: cannot open: %s", path,
		    strerror(errno));
		return -1;
	}
	rc = config_read_fd(fd, CONFIG_FILE_MAX, &buf, &len);
	saved = errno;
	close(fd);
	if (rc == -1) {
		snprintf(err, errlen, "%s:0: cannot read: %s", path,
		    strerror(saved));
		return -1;
	}
	if (rc == -2) {
		snprintf(err, errlen, "%s:0: file is larger than 1 MiB", path);
		return -1;
	}
	if ((nul = memchr(buf, '\0', len)) != NULL) {
		line = 1;
		for (char *c = buf; c < nul; c++)
			if (*c == '\n')
				line++;
		free(buf);
		snprintf(err, errlen, "%s:%lu: NUL byte in file", path, line);
		return -1;
	}
	buf[len] = '\0';
	rc = config_load_string(path, buf, out, err, errlen);
	free(buf);
	return rc;
}

void
config_free(struct config *cf)
{
	struct config_upstream		*up;
	struct config_replication	*r;

	if (cf == NULL)
		return;
	while ((up = cf->upstreams) != NULL) {
		cf->upstreams = up->next;
		config_section_free(CONFIG_SECT_UPSTREAM, up);
		free(up->name);
		free(up->ttl_values);
		if (up->password != NULL) {
			/* Do not leave the secret in freed memory. */
			explicit_bzero(up->password, strlen(up->password));
			free(up->password);
		}
		free(up);
	}
	while ((r = cf->replications) != NULL) {
		cf->replications = r->next;
		config_replication_free(r);
	}
	config_access_list_free(cf->access);
	cf->access = NULL;
	config_section_free(CONFIG_SECT_SERVER, cf);
	config_section_free(CONFIG_SECT_CACHE, cf);
	config_section_free(CONFIG_SECT_TIMEOUTS, cf);
	config_section_free(CONFIG_SECT_AUTH, cf);
	config_strv_free(cf->warnings, cf->nwarnings);
	free(cf->path);
	free(cf);
}

struct config_upstream *
config_upstream_default(const struct config *cf)
{
	struct config_upstream	*up;

	for (up = cf->upstreams; up != NULL; up = up->next)
		if (up->is_default)
			return up;
	return NULL;
}

struct config_upstream *
config_upstream_find(const struct config *cf, const char *name)
{
	struct config_upstream	*up;
	size_t			 i;

	if (name == NULL)
		return NULL;
	for (up = cf->upstreams; up != NULL; up = up->next) {
		if (strcasecmp(up->name, name) == 0)
			return up;
		for (i = 0; i < up->naliases; i++)
			if (strcasecmp(up->aliases[i], name) == 0)
				return up;
	}
	return NULL;
}
