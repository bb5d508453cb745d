/*
 * fuzz_events.c — libFuzzer entry point for sync_repl_events_parse(),
 * the walk of a registry notification envelope POSTed to /api/v1/events.
 *
 * The input is the request body (not NUL-terminated).  Every (repository,
 * tag) handed out must pass ref_name_valid() and ref_tag_valid() (they
 * are matched against globs and logged); a body that is not a JSON object
 * is refused without a call; the count of push events handed out plus
 * those refused as invalid is never more than the envelope's events.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/obj.h"
#include "common/ref.h"
#include "sync/sync.h"
#include "sync/sync_int.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_events_cb(const char *repo, const char *tag, void *arg)
{
	size_t	*n = arg;

	AN(ref_name_valid(repo));
	AN(ref_tag_valid(tag));
	AN(strlen(repo) <= REF_NAME_MAX && strlen(tag) <= REF_TAG_MAX);
	(*n)++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t		*root;
	json_error_t	 jerr;
	size_t		 n = 0, invalid = 99, events;
	int		 rc;

	rc = sync_repl_events_parse((const char *)data, size,
	    fuzz_events_cb, &n, &invalid);
	root = json_loadb((const char *)data, size, 0, &jerr);
	if (rc != 0) {
		AN(rc == -1);
		AZ(n);
		AN(!json_is_object(root));
	} else {
		AN(json_is_object(root));
		events = json_array_size(json_object_get(root, "events"));
		AN(n + invalid <= events);
	}
	json_decref(root);
	return 0;
}
