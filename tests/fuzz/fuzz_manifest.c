/*
 * fuzz_manifest.c — libFuzzer entry point for the walkers of manifests
 * and indexes from upstream: cache_manifest_refs() (cache/cache_admin.c:
 * gc, pins and the cache CLI follow it) and sync_desc_check()
 * (proxy/sync_desc.c: prefetch, push and replication check every
 * descriptor with it before reuse).
 *
 * The input is the manifest's bytes.  Every digest either hands out must
 * pass digest_parse() and be its canonical string (it becomes a path, an
 * index key and a request line); a descriptor sync_desc_check() accepts
 * has a printable media type and a size that is a JSON integer within its
 * bound; one it refuses has an error message of printable ASCII that does
 * not quote the document.  The walkers must agree: a digest
 * sync_desc_check() takes from manifests[], config or layers[] is one
 * cache_manifest_refs() hands out, in the same order.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cache/cache_int.h"
#include "common/digest.h"
#include "common/obj.h"
#include "common/ref.h"
#include "common/text.h"
#include "common/xmalloc.h"
#include "sync/sync.h"
#include "sync/sync_int.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_MANIFEST_REFS_MAX	4096

struct fuzz_manifest {
	char	*digests[FUZZ_MANIFEST_REFS_MAX];
	int	 is_manifest[FUZZ_MANIFEST_REFS_MAX];
	size_t	 n;		/* kept (the first REFS_MAX) */
	size_t	 calls;		/* handed out */
	size_t	 next;		/* the walk's next ref */
	size_t	 entries;	/* entries the walk met */
};

static void
fuzz_manifest_ref_cb(const char *digest, int is_manifest, void *arg)
{
	struct fuzz_manifest	*fm = arg;
	struct digest		 d;

	AZ(digest_parse(digest, &d));
	AZ(strcmp(d.str, digest));
	AN(is_manifest == 0 || is_manifest == 1);
	fm->calls++;
	if (fm->n < FUZZ_MANIFEST_REFS_MAX) {
		fm->digests[fm->n] = xstrdup(digest);
		fm->is_manifest[fm->n] = is_manifest;
		fm->n++;
	}
}

/* Check one descriptor; its canonical digest when accepted, else NULL. */
static const char *
fuzz_manifest_desc(const json_t *e, uint64_t max, struct digest *d)
{
	const json_t	*mt, *size;
	char		 err[160];
	struct digest	 again;

	memset(err, 'x', sizeof(err));
	if (sync_desc_check(e, max, d, err, sizeof(err)) != 0) {
		AN(memchr(err, '\0', sizeof(err)) != NULL);
		AN(err[0] != '\0' && text_printable(err));
		return NULL;
	}
	AZ(digest_parse(d->str, &again));
	AZ(strcmp(again.str, d->str));
	AZ(strcmp(d->str, json_string_value(json_object_get(e, "digest"))));
	if ((mt = json_object_get(e, "mediaType")) != NULL) {
		AN(json_is_string(mt));
		AN(ref_media_type_valid(json_string_value(mt)));
		AN(text_printable(json_string_value(mt)));
		AN(strlen(json_string_value(mt)) <= REF_MEDIA_TYPE_MAX);
	}
	if ((size = json_object_get(e, "size")) != NULL) {
		AN(json_is_integer(size));
		AN(json_integer_value(size) >= 0);
		AN((uint64_t)json_integer_value(size) <= max);
	}
	return d->str;
}

/*
 * One entry of the walk: cache_manifest_refs() handed out its digest, as
 * ref number fm->next, if and only if the entry's key parses; and when
 * sync_desc_check() takes the entry, it is that same digest.
 */
static void
fuzz_manifest_entry(struct fuzz_manifest *fm, const json_t *e,
    const char *key, int is_manifest, uint64_t max)
{
	struct digest	 d;
	const char	*got = NULL;

	fm->entries++;
	if (strcmp(key, "digest") == 0)
		got = fuzz_manifest_desc(e, max, &d);
	if (digest_parse(json_string_value(json_object_get(e, key)), &d) != 0) {
		AZ(got);
		return;
	}
	if (fm->next < fm->n) {
		AZ(strcmp(fm->digests[fm->next], d.str));
		AN(fm->is_manifest[fm->next] == is_manifest);
		if (got != NULL)
			AZ(strcmp(got, d.str));
	}
	fm->next++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_manifest	*fm;
	struct digest		 d;
	json_t			*root, *e;
	json_error_t		 jerr;
	size_t			 i, bad;

	fm = xcalloc(1, sizeof(*fm));
	bad = cache_manifest_refs(data, size, fuzz_manifest_ref_cb, fm);
	if ((root = json_loadb((const char *)data, size, 0, &jerr)) == NULL) {
		AZ(bad);
		AZ(fm->calls);
		goto done;
	}
	(void)fuzz_manifest_desc(root, SYNC_BLOB_MAX, &d);
	/* The walk's order: index children, config, layers, fsLayers. */
	json_array_foreach(json_object_get(root, "manifests"), i, e)
		fuzz_manifest_entry(fm, e, "digest", 1, SYNC_MANIFEST_MAX);
	if ((e = json_object_get(root, "config")) != NULL)
		fuzz_manifest_entry(fm, e, "digest", 0, SYNC_BLOB_MAX);
	json_array_foreach(json_object_get(root, "layers"), i, e)
		fuzz_manifest_entry(fm, e, "digest", 0, SYNC_BLOB_MAX);
	json_array_foreach(json_object_get(root, "fsLayers"), i, e)
		fuzz_manifest_entry(fm, e, "blobSum", 0, SYNC_BLOB_MAX);
	AN(fm->next == fm->calls);
	AN(fm->entries == fm->calls + bad);
	json_decref(root);
done:
	for (i = 0; i < fm->n; i++)
		free(fm->digests[i]);
	free(fm);
	return 0;
}
