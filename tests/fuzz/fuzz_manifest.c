/*
 * fuzz_manifest.c — libFuzzer entry point for the one walker of
 * manifests and indexes from upstream, cache_manifest_each()
 * (cache/cache_manifest.c: gc, pins, the cache CLI, prefetch and push
 * all follow it).
 *
 * The input is the manifest's bytes.  A document it refuses hands out
 * nothing and has an error of printable ASCII.  A document it takes hands
 * out every descriptor of the document, in document order (an index's
 * children; or the config, then the layers; or schema 1's fsLayers),
 * each with a digest that passes digest_parse() and is its canonical
 * string and the document's own (it becomes a path, an index key and a
 * request line), a printable media type, a size within its bound, and
 * printable platform fields.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cache/cache.h"
#include "common/digest.h"
#include "common/obj.h"
#include "common/ref.h"
#include "common/text.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct fuzz_manifest {
	const json_t	*root;
	size_t		 calls;
	int		 saw_layer;
};

/* The document's entry the walker says it handed out. */
static const json_t *
fuzz_manifest_entry(const struct fuzz_manifest *fm,
    const struct cache_desc *d, const char **key)
{
	*key = "digest";
	switch (d->kind) {
	case CACHE_DESC_CHILD:
		return json_array_get(json_object_get(fm->root, "manifests"),
		    d->index);
	case CACHE_DESC_CONFIG:
		return json_object_get(fm->root, "config");
	case CACHE_DESC_LAYER:
		if (json_object_get(fm->root, "layers") != NULL)
			return json_array_get(json_object_get(fm->root,
			    "layers"), d->index);
		*key = "blobSum";
		return json_array_get(json_object_get(fm->root, "fsLayers"),
		    d->index);
	}
	return NULL;
}

static void
fuzz_manifest_field(const char *s)
{
	if (s != NULL)
		AN(cache_platform_field_valid(s, strlen(s)));
}

static int
fuzz_manifest_cb(const struct cache_desc *d, void *arg)
{
	struct fuzz_manifest	*fm = arg;
	struct digest		 again;
	const json_t		*e;
	const char		*key;
	int64_t			 max;

	e = fuzz_manifest_entry(fm, d, &key);
	AN(e != NULL);
	AZ(digest_parse(d->digest, &again));
	AZ(strcmp(again.str, d->digest));
	AZ(strcmp(d->digest, json_string_value(json_object_get(e, key))));
	if (d->media_type != NULL) {
		AN(ref_media_type_valid(d->media_type));
		AN(text_printable(d->media_type));
		AN(strlen(d->media_type) <= REF_MEDIA_TYPE_MAX);
	}
	max = d->kind == CACHE_DESC_CHILD ? CACHE_DESC_MANIFEST_MAX :
	    CACHE_DESC_BLOB_MAX;
	AN(d->size >= -1 && d->size <= max);
	AN((d->size == -1) == (json_object_get(e, "size") == NULL));
	fuzz_manifest_field(d->os);
	fuzz_manifest_field(d->arch);
	fuzz_manifest_field(d->variant);
	if (d->kind != CACHE_DESC_CHILD)
		AZ(d->os != NULL || d->arch != NULL || d->variant != NULL);
	/* Order: the config before any layer. */
	if (d->kind == CACHE_DESC_CONFIG)
		AZ(fm->saw_layer);
	if (d->kind == CACHE_DESC_LAYER)
		fm->saw_layer = 1;
	AN(d->foreign == 0 || d->foreign == 1);
	fm->calls++;
	return 0;
}

/* How many descriptors a document the walker took has. */
static size_t
fuzz_manifest_count(const json_t *root)
{
	const json_t	*a;

	if ((a = json_object_get(root, "manifests")) != NULL)
		return json_array_size(a);
	if ((a = json_object_get(root, "layers")) != NULL)
		return (json_object_get(root, "config") != NULL) +
		    json_array_size(a);
	return (json_object_get(root, "config") != NULL) +
	    json_array_size(json_object_get(root, "fsLayers"));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_manifest	 fm = { NULL, 0, 0 };
	json_error_t		 jerr;
	json_t			*root;
	char			 err[256];
	int			 rc, is_index = -1;

	root = json_loadb((const char *)data, size, 0, &jerr);
	fm.root = root;
	memset(err, 'x', sizeof(err));
	rc = cache_manifest_each(data, size, &is_index, fuzz_manifest_cb,
	    &fm, err, sizeof(err));
	if (rc != 0) {
		AN(rc == -1);
		AZ(fm.calls);
		AN(memchr(err, '\0', sizeof(err)) != NULL);
		AN(err[0] != '\0' && text_printable(err));
	} else {
		AN(root != NULL && json_is_object(root));
		AN(is_index == (json_object_get(root, "manifests") != NULL));
		AN(fm.calls == fuzz_manifest_count(root));
	}
	json_decref(root);
	return 0;
}
