/*
 * sync_desc.c — descriptors from upstream JSON (an image manifest's
 * config and layers, an index's children), checked before anything of
 * them is reused.  A manifest is whatever bytes an upstream sent, digest
 * verified or not: its digests end up in request lines, paths, index
 * keys, pins and log lines, so each one goes through digest_parse and
 * only its canonical form is used afterwards; a media type must be fit
 * for a header or a log line; a size must be a JSON integer in range.
 * Prefetch (sync_pf.c) and push (sync_push.c) walk manifests with
 * these checks.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>

#include <jansson.h>

#include "common/digest.h"
#include "common/ref.h"
#include "sync/sync.h"
#include "sync/sync_int.h"

int
sync_desc_check(const json_t *e, uint64_t max_size, struct digest *out,
    char *err, size_t errlen)
{
	const json_t	*mt, *size;

	if (!json_is_object(e)) {
		snprintf(err, errlen, "not a JSON object");
		return -1;
	}
	if (digest_parse(json_string_value(json_object_get(e, "digest")),
	    out) != 0) {
		snprintf(err, errlen, "digest is not a valid digest "
		    "(sha256:<64 hex> or sha512:<128 hex>)");
		return -1;
	}
	if ((mt = json_object_get(e, "mediaType")) != NULL &&
	    !ref_media_type_valid(json_string_value(mt))) {
		snprintf(err, errlen, "mediaType is not a media type "
		    "(type/subtype, printable ASCII, at most %d characters)",
		    REF_MEDIA_TYPE_MAX);
		return -1;
	}
	/* Sizes are not used yet, but a negative or a fractional one says
	 * the rest of the document is not to be trusted either. */
	if ((size = json_object_get(e, "size")) != NULL &&
	    (!json_is_integer(size) || json_integer_value(size) < 0 ||
	    (uint64_t)json_integer_value(size) > max_size)) {
		snprintf(err, errlen, "size is not an integer from 0 to %"
		    PRIu64, max_size);
		return -1;
	}
	return 0;
}
