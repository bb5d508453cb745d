/*
 * config_diff.c — what differs between the running config and the one a
 * SIGHUP read (proxy/proxy_reload.c): the keys a reload takes over
 * ([access] rules, an upstream's username and password, the keys of a
 * replication policy) and those that need a restart (everything else).
 * Pure: it compares the two through the key table (config_schema.c), so
 * a key added there is compared without being listed here.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/config_int.h"
#include "common/xmalloc.h"

#define CONFIG_FIELD(base, k, type)					\
	((type const *)(const void *)((const char *)(base) + (k)->ck_off))
#define CONFIG_COUNT(base, k)						\
	((const size_t *)(const void *)((const char *)(base) + (k)->ck_noff))

static int
config_str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Whether key k holds the same value in a and b (two bases of its
 * section). */
static int
config_key_equal(const struct config_key *k, const void *a, const void *b)
{
	size_t	i, n;

	switch (k->ck_ftype) {
	case CONFIG_FT_INT:
		return *CONFIG_FIELD(a, k, int) == *CONFIG_FIELD(b, k, int);
	case CONFIG_FT_LONG:
		return *CONFIG_FIELD(a, k, long) == *CONFIG_FIELD(b, k, long);
	case CONFIG_FT_UINT:
		return *CONFIG_FIELD(a, k, unsigned) ==
		    *CONFIG_FIELD(b, k, unsigned);
	case CONFIG_FT_ULONG:
		return *CONFIG_FIELD(a, k, unsigned long) ==
		    *CONFIG_FIELD(b, k, unsigned long);
	case CONFIG_FT_ULLONG:
		return *CONFIG_FIELD(a, k, unsigned long long) ==
		    *CONFIG_FIELD(b, k, unsigned long long);
	case CONFIG_FT_STR:
		return config_str_eq(*CONFIG_FIELD(a, k, char *),
		    *CONFIG_FIELD(b, k, char *));
	case CONFIG_FT_STRV:
		if ((n = *CONFIG_COUNT(a, k)) != *CONFIG_COUNT(b, k))
			return 0;
		for (i = 0; i < n; i++)
			if (!config_str_eq((*CONFIG_FIELD(a, k, char **))[i],
			    (*CONFIG_FIELD(b, k, char **))[i]))
				return 0;
		return 1;
	default:
		/* config_keys_check() admits no other field type. */
		return 0;
	}
}

/* tag_ttl_for keeps its durations beside its globs. */
static int
config_ttl_for_equal(const struct config_upstream *a,
    const struct config_upstream *b)
{
	size_t	i;

	for (i = 0; i < a->nttl && i < b->nttl; i++)
		if (a->ttl_values[i] != b->ttl_values[i])
			return 0;
	return 1;
}

/* Is k one a SIGHUP takes over (the rest of its section needs a
 * restart)? */
static int
config_key_reloads(const struct config_key *k)
{
	if (k->ck_sect == CONFIG_SECT_ACCESS ||
	    k->ck_sect == CONFIG_SECT_REPLICATION)
		return 1;
	return k->ck_sect == CONFIG_SECT_UPSTREAM &&
	    (strcmp(k->ck_name, "username") == 0 ||
	    strcmp(k->ck_name, "password_file") == 0);
}

/* Report every key of s, of those that reload (reloads 1) or not (0),
 * that differs between a and b: cb(section label, key). */
static unsigned
config_section_diff(enum config_section s, const char *label, const void *a,
    const void *b, int reloads, config_diff_f *cb, void *arg)
{
	const struct config_key	*k;
	unsigned		 n = 0;

	for (k = config_keys; k < config_keys + config_nkeys; k++) {
		if (k->ck_sect != s || config_key_reloads(k) != reloads)
			continue;
		if (config_key_equal(k, a, b) && (s != CONFIG_SECT_UPSTREAM ||
		    strcmp(k->ck_name, "tag_ttl_for") != 0 ||
		    config_ttl_for_equal(a, b)))
			continue;
		n++;
		if (cb != NULL)
			cb(label, k->ck_name, arg);
	}
	return n;
}

int
config_upstream_creds_equal(const struct config_upstream *a,
    const struct config_upstream *b)
{
	return config_str_eq(a->username, b->username) &&
	    config_str_eq(a->password, b->password);
}

int
config_replication_equal(const struct config_replication *a,
    const struct config_replication *b)
{
	return config_section_diff(CONFIG_SECT_REPLICATION, NULL, a, b, 1,
	    NULL, NULL) == 0;
}

int
config_access_equal(const struct config_access *a,
    const struct config_access *b)
{
	for (; a != NULL && b != NULL; a = a->next, b = b->next)
		if (strcmp(a->name, b->name) != 0 ||
		    config_section_diff(CONFIG_SECT_ACCESS, NULL, a, b, 1,
		    NULL, NULL) != 0)
			return 0;
	return a == NULL && b == NULL;
}

static const struct config_replication *
config_replication_find(const struct config *cf, const char *name)
{
	const struct config_replication	*r;

	for (r = cf->replications; r != NULL; r = r->next)
		if (strcmp(r->name, name) == 0)
			return r;
	return NULL;
}

/* Sections added or removed (by name), and the upstreams' keys. */
static unsigned
config_upstreams_diff(const struct config *a, const struct config *b,
    config_diff_f *cb, void *arg)
{
	const struct config_upstream	*ua, *ub;
	char				 label[300];
	unsigned			 n = 0;

	for (ua = a->upstreams; ua != NULL; ua = ua->next) {
		snprintf(label, sizeof(label), "[upstream \"%s\"]", ua->name);
		for (ub = b->upstreams; ub != NULL; ub = ub->next)
			if (strcasecmp(ua->name, ub->name) == 0)
				break;
		if (ub == NULL) {
			n++;
			cb(label, "removed", arg);
			continue;
		}
		n += config_section_diff(CONFIG_SECT_UPSTREAM, label, ua, ub,
		    0, cb, arg);
	}
	for (ub = b->upstreams; ub != NULL; ub = ub->next)
		for (ua = a->upstreams; ; ua = ua->next) {
			if (ua == NULL) {
				snprintf(label, sizeof(label),
				    "[upstream \"%s\"]", ub->name);
				n++;
				cb(label, "added", arg);
				break;
			}
			if (strcasecmp(ua->name, ub->name) == 0)
				break;
		}
	return n;
}

/* Policies are taken over by name; a new or a removed one needs a
 * restart (each has its own timer and state in the jobs' loop). */
static unsigned
config_replications_diff(const struct config *a, const struct config *b,
    config_diff_f *cb, void *arg)
{
	const struct config_replication	*r;
	char				 label[300];
	unsigned			 n = 0;

	for (r = a->replications; r != NULL; r = r->next)
		if (config_replication_find(b, r->name) == NULL) {
			snprintf(label, sizeof(label), "[replication \"%s\"]",
			    r->name);
			n++;
			cb(label, "removed", arg);
		}
	for (r = b->replications; r != NULL; r = r->next)
		if (config_replication_find(a, r->name) == NULL) {
			snprintf(label, sizeof(label), "[replication \"%s\"]",
			    r->name);
			n++;
			cb(label, "added", arg);
		}
	return n;
}

unsigned
config_diff_restart(const struct config *a, const struct config *b,
    config_diff_f *cb, void *arg)
{
	unsigned	n = 0;

	n += config_section_diff(CONFIG_SECT_SERVER, "[server]", a, b, 0, cb,
	    arg);
	n += config_section_diff(CONFIG_SECT_CACHE, "[cache]", a, b, 0, cb,
	    arg);
	n += config_section_diff(CONFIG_SECT_TIMEOUTS, "[timeouts]", a, b, 0,
	    cb, arg);
	/* Access control on or off: the login threads and the token key
	 * are set up at start (or not at all). */
	if (a->auth != b->auth ||
	    (a->auth || a->naccess > 0) != (b->auth || b->naccess > 0)) {
		n++;
		cb("[auth]", a->auth != b->auth ? "section" :
		    "access control on or off", arg);
	} else
		n += config_section_diff(CONFIG_SECT_AUTH, "[auth]", a, b, 0,
		    cb, arg);
	n += config_upstreams_diff(a, b, cb, arg);
	n += config_replications_diff(a, b, cb, arg);
	return n;
}

void
config_access_list_free(struct config_access *a)
{
	struct config_access	*next;

	for (; a != NULL; a = next) {
		next = a->next;
		config_section_free(CONFIG_SECT_ACCESS, a);
		free(a->name);
		free(a);
	}
}

void
config_replication_free(struct config_replication *r)
{
	if (r == NULL)
		return;
	config_section_free(CONFIG_SECT_REPLICATION, r);
	free(r->name);
	free(r);
}
