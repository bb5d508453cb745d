/*
 * cache_manifest.c — what a manifest or an index names: the one walker
 * of manifests, used by gc and pins (cache_manifest_walk), prefetch and
 * push (cache_manifest_each).
 *
 * A manifest is whatever bytes an upstream sent.  Its digests end up in
 * request lines, paths, index keys, pins and log lines, so the whole
 * document is checked before any of it is handed out, with one set of
 * rules for every caller:
 *
 *	document	a JSON object; mediaType, if any, a media type
 *	index		"manifests" present: a list of descriptors (digest,
 *			mediaType, size up to CACHE_DESC_MANIFEST_MAX,
 *			platform fields printable); config and layers of an
 *			index are not looked at
 *	image		config (one descriptor) and layers (a list), sizes up
 *			to CACHE_DESC_BLOB_MAX; a layer with "urls" is
 *			foreign (served from those urls, not the registry)
 *	schema 1	no layers but fsLayers: each blobSum a digest
 *
 * One bad field refuses the document: no descriptor is handed out, and
 * the error names the field (never quoting it: it may hold anything).
 * Digests are handed out in canonical form (digest_parse).
 *
 * Those rules are for what the mirror fetches or pushes
 * (cache_manifest_each).  What it keeps (cache_manifest_walk: gc's roots,
 * pins) is read leniently: every digest a stored document names, foreign
 * layers included, however odd the rest of it.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/digest.h"
#include "common/log.h"
#include "common/ref.h"

/* A platform field: 1 to CACHE_PLATFORM_FIELD_MAX printable, no '/'. */
int
cache_platform_field_valid(const char *s, size_t len)
{
	size_t	i;

	if (s == NULL || len == 0 || len > CACHE_PLATFORM_FIELD_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '/')
			return 0;
	return 1;
}

/* A descriptor: d filled in, or -1 with err. */
static int
cache_desc_parse(const json_t *e, int64_t max_size, struct cache_desc *d,
    char *err, size_t errlen)
{
	const json_t	*v;

	if (!json_is_object(e)) {
		snprintf(err, errlen, "not a JSON object");
		return -1;
	}
	if (digest_parse(json_string_value(json_object_get(e, "digest")),
	    &d->dg) != 0) {
		snprintf(err, errlen, "digest is not a valid digest "
		    "(sha256:<64 hex> or sha512:<128 hex>)");
		return -1;
	}
	d->digest = d->dg.str;
	d->media_type = NULL;
	if ((v = json_object_get(e, "mediaType")) != NULL) {
		if (!ref_media_type_valid(json_string_value(v))) {
			snprintf(err, errlen, "mediaType is not a media type "
			    "(type/subtype, printable ASCII, at most %d "
			    "characters)", REF_MEDIA_TYPE_MAX);
			return -1;
		}
		d->media_type = json_string_value(v);
	}
	/* A negative or fractional size says the rest of the document is
	 * not to be trusted either. */
	d->size = -1;
	if ((v = json_object_get(e, "size")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > max_size) {
			snprintf(err, errlen, "size is not an integer from 0 "
			    "to %" PRId64, max_size);
			return -1;
		}
		d->size = json_integer_value(v);
	}
	return 0;
}

/* An index entry's platform: absent, or an object of printable fields. */
static int
cache_desc_platform(const json_t *plat, struct cache_desc *d, char *err,
    size_t errlen)
{
	static const char *const fields[] = { "os", "architecture",
	    "variant" };
	const char	**out[] = { &d->os, &d->arch, &d->variant };
	const json_t	*v;
	const char	*s;
	size_t		 i;

	d->os = d->arch = d->variant = NULL;
	if (plat == NULL)
		return 0;
	if (!json_is_object(plat)) {
		snprintf(err, errlen, "platform is not a JSON object");
		return -1;
	}
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if ((v = json_object_get(plat, fields[i])) == NULL)
			continue;
		if ((s = json_string_value(v)) == NULL ||
		    !cache_platform_field_valid(s, strlen(s))) {
			snprintf(err, errlen, "platform.%s is not 1 to %d "
			    "printable characters", fields[i],
			    CACHE_PLATFORM_FIELD_MAX);
			return -1;
		}
		*out[i] = s;
	}
	return 0;
}

/* How one element of a list becomes a descriptor: d filled in, or -1. */
typedef int (*cache_desc_elem_f)(const json_t *, struct cache_desc *d,
    char *why, size_t whylen);

/* An index's child: a manifest, with its platform. */
static int
cache_desc_child(const json_t *e, struct cache_desc *d, char *why,
    size_t whylen)
{
	if (cache_desc_parse(e, CACHE_DESC_MANIFEST_MAX, d, why, whylen) != 0)
		return -1;
	return cache_desc_platform(json_object_get(e, "platform"), d, why,
	    whylen);
}

static int
cache_desc_layer(const json_t *e, struct cache_desc *d, char *why,
    size_t whylen)
{
	if (cache_desc_parse(e, CACHE_DESC_BLOB_MAX, d, why, whylen) != 0)
		return -1;
	d->foreign = json_object_get(e, "urls") != NULL;
	return 0;
}

/* Schema 1's fsLayers name a blobSum and nothing else. */
static int
cache_desc_blobsum(const json_t *e, struct cache_desc *d, char *why,
    size_t whylen)
{
	if (digest_parse(json_string_value(json_object_get(e, "blobSum")),
	    &d->dg) != 0) {
		snprintf(why, whylen, "blobSum is not a valid digest");
		return -1;
	}
	d->digest = d->dg.str;
	d->media_type = NULL;
	d->size = -1;
	d->foreign = 0;
	return 0;
}

/*
 * One pass over a document: where descriptors go, and its errors.  A
 * lenient pass (the keep walk) refuses nothing: what is not a valid
 * descriptor is handed out by its digest alone if that parses, and
 * skipped otherwise.
 */
struct cache_pass {
	cache_desc_cb		*p_cb;		/* NULL: only check */
	void			*p_arg;
	char			*p_err;
	size_t			 p_errlen;
	int			 p_lenient;
	struct cache_desc	 p_d;
};

/* The lenient reading of e: its digest (or blobSum) only; -1: none. */
static int
cache_desc_digest_only(const json_t *e, struct cache_desc *d)
{
	const char	*s;

	if ((s = json_string_value(json_object_get(e, "digest"))) == NULL)
		s = json_string_value(json_object_get(e, "blobSum"));
	if (digest_parse(s, &d->dg) != 0)
		return -1;
	d->digest = d->dg.str;
	d->media_type = NULL;
	d->size = -1;
	d->foreign = json_object_get(e, "urls") != NULL;
	d->os = d->arch = d->variant = NULL;
	return 0;
}

static int
cache_pass_give(struct cache_pass *p)
{
	return p->p_cb != NULL ? p->p_cb(&p->p_d, p->p_arg) : 0;
}

/*
 * The list a (named name in errors) of descriptors of one kind, each
 * read by elem and given out in order.  0, cb's nonzero, or -1.
 */
static int
cache_pass_list(struct cache_pass *p, const json_t *a, const char *name,
    enum cache_desc_kind kind, cache_desc_elem_f elem)
{
	const json_t	*e;
	char		 why[200];
	size_t		 i;
	int		 rc;

	if (!json_is_array(a)) {
		if (p->p_lenient)
			return 0;
		snprintf(p->p_err, p->p_errlen, "%s is not a list", name);
		return -1;
	}
	p->p_d.kind = kind;
	json_array_foreach(a, i, e) {
		if (elem(e, &p->p_d, why, sizeof(why)) != 0) {
			if (p->p_lenient &&
			    cache_desc_digest_only(e, &p->p_d) == 0)
				;	/* handed out by its digest */
			else if (p->p_lenient)
				continue;
			else {
				snprintf(p->p_err, p->p_errlen, "%s[%zu]: %s",
				    name, i, why);
				return -1;
			}
		}
		p->p_d.index = i;
		if ((rc = cache_pass_give(p)) != 0)
			return rc;
	}
	return 0;
}

/*
 * Every descriptor of root in document order, each parsed and given to
 * cb when cb is not NULL: an index's manifests, else an image's config
 * and then its layers, or schema 1's fsLayers when it has no layers.
 * 0, the first nonzero cb value, or -1 with err.
 */
static int
cache_manifest_pass(const json_t *root, cache_desc_cb *cb, void *arg,
    char *err, size_t errlen)
{
	struct cache_pass	 p;
	const json_t		*a, *e;
	char			 why[200];
	int			 rc;

	memset(&p, 0, sizeof(p));
	p.p_cb = cb;
	p.p_arg = arg;
	p.p_err = err;
	p.p_errlen = errlen;
	if ((a = json_object_get(root, "manifests")) != NULL)
		return cache_pass_list(&p, a, "manifests", CACHE_DESC_CHILD,
		    cache_desc_child);
	if ((e = json_object_get(root, "config")) != NULL) {
		p.p_d.kind = CACHE_DESC_CONFIG;
		if (cache_desc_parse(e, CACHE_DESC_BLOB_MAX, &p.p_d, why,
		    sizeof(why)) != 0) {
			snprintf(err, errlen, "config: %s", why);
			return -1;
		}
		if ((rc = cache_pass_give(&p)) != 0)
			return rc;
	}
	if ((a = json_object_get(root, "layers")) != NULL)
		return cache_pass_list(&p, a, "layers", CACHE_DESC_LAYER,
		    cache_desc_layer);
	if ((a = json_object_get(root, "fsLayers")) != NULL)
		return cache_pass_list(&p, a, "fsLayers", CACHE_DESC_LAYER,
		    cache_desc_blobsum);
	return 0;
}

int
cache_manifest_each(const void *data, size_t len, int *is_index,
    cache_desc_cb *cb, void *arg, char *err, size_t errlen)
{
	json_t		*root;
	json_error_t	 jerr;
	const json_t	*mt;
	int		 rc;

	/* jerr.text may quote the document: only the position. */
	if ((root = json_loadb(data, len, 0, &jerr)) == NULL) {
		snprintf(err, errlen, "not JSON (line %d, column %d)",
		    jerr.line, jerr.column);
		return -1;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "not a JSON object");
		rc = -1;
	} else if ((mt = json_object_get(root, "mediaType")) != NULL &&
	    !ref_media_type_valid(json_string_value(mt))) {
		snprintf(err, errlen, "mediaType is not a media type");
		rc = -1;
	} else if ((rc = cache_manifest_pass(root, NULL, NULL, err,
	    errlen)) == 0) {
		if (is_index != NULL)
			*is_index = json_object_get(root, "manifests") != NULL;
		rc = cache_manifest_pass(root, cb, arg, err, errlen);
	}
	json_decref(root);
	return rc;
}

/*
 * The keep walk's reading of a document (gc roots, pins): every digest
 * it names, whatever else is wrong with it — an index's manifests, the
 * config, layers (foreign ones too: a client may have pulled one through
 * the mirror) and fsLayers.  Keeping too much costs disk; keeping too
 * little loses what a tag still needs.  The strict reading above is for
 * what the mirror will fetch or push.
 */
static void
cache_manifest_keep_pass(const json_t *root, cache_desc_cb *cb, void *arg)
{
	static const struct {
		const char		*name;
		enum cache_desc_kind	 kind;
		cache_desc_elem_f	 elem;
	} lists[] = {
		{ "manifests", CACHE_DESC_CHILD, cache_desc_child },
		{ "layers", CACHE_DESC_LAYER, cache_desc_layer },
		{ "fsLayers", CACHE_DESC_LAYER, cache_desc_blobsum },
	};
	struct cache_pass	 p;
	const json_t		*e;
	char			 err[200];
	size_t			 i;

	memset(&p, 0, sizeof(p));
	p.p_cb = cb;
	p.p_arg = arg;
	p.p_err = err;
	p.p_errlen = sizeof(err);
	p.p_lenient = 1;
	if ((e = json_object_get(root, "config")) != NULL &&
	    cache_desc_digest_only(e, &p.p_d) == 0) {
		p.p_d.kind = CACHE_DESC_CONFIG;
		(void)cache_pass_give(&p);
	}
	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		(void)cache_pass_list(&p, json_object_get(root,
		    lists[i].name), lists[i].name, lists[i].kind,
		    lists[i].elem);
}

struct cache_walk {
	void	(*cb)(const char *digest, int is_manifest, void *);
	void	 *arg;
	int	  depth;
};

static void	cache_walk_one(struct cache_walk *, const char *, int);

static int
cache_walk_desc(const struct cache_desc *d, void *arg)
{
	cache_walk_one(arg, d->digest, d->kind == CACHE_DESC_CHILD);
	return 0;
}

static void
cache_walk_one(struct cache_walk *w, const char *digest, int is_manifest)
{
	char		*ctype;
	unsigned char	*data;
	size_t		 len;
	json_t		*root;

	w->cb(digest, is_manifest, w->arg);
	if (!is_manifest || w->depth >= 4)
		return;
	/* The mirror's own walk (no upstream, no isolation check): from the
	 * index, not through the store, which calls gc, which walks. */
	if (cache_index_manifest_get(cache_idx, digest, &ctype, &data,
	    &len) != 0)
		return;
	w->depth++;
	if ((root = json_loadb((const char *)data, len, 0, NULL)) != NULL) {
		if (json_is_object(root))
			cache_manifest_keep_pass(root, cache_walk_desc, w);
		json_decref(root);
	} else
		log_debug("manifest %s: not JSON: nothing below it walked",
		    digest);
	w->depth--;
	free(ctype);
	free(data);
}

void
cache_manifest_walk(const char *digest,
    void (*cb)(const char *digest, int is_manifest, void *), void *arg)
{
	struct cache_walk	w = { cb, arg, 0 };
	struct digest		d;

	if (digest_parse(digest, &d) != 0)
		return;
	cache_walk_one(&w, d.str, 1);
}
