/*
 * fuzz_link.c — libFuzzer entry point for sync_repl_next_page(),
 * which turns a source upstream's Link header (pagination of tags/list
 * and _catalog) into the next request replication sends to the mirror's
 * own listener.
 *
 * The input is the header value, NUL-terminated; its first byte picks the
 * list.  A next page, if any, must be the same list on the same registry
 * API: the path asked for, then a query of URL-safe bytes only (nothing
 * that ends a request line or starts a fragment), that parses as a query,
 * whose only "ns" is the last parameter and names the source, and that is
 * bounded whatever the header's length.  Without rel="next" there is
 * neither a next page nor an error.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/obj.h"
#include "common/xmalloc.h"
#include "sync/sync.h"
#include "sync/sync_int.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* The query bytes the mirror's own listener sees as intended. */
#define FUZZ_LINK_SAFE	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" \
			"0123456789-._~%=&"

static void
fuzz_link_check(const char *next, const char *path, const char *source)
{
	struct evkeyvalq	 params;
	struct evkeyval		*kv, *last = NULL;
	const char		*q;
	size_t			 plen = strlen(path);

	AZ(strncmp(next, "/v2/", 4));
	AZ(strncmp(next, path, plen));
	AN(next[plen] == '?');
	q = next + plen + 1;
	AN(strspn(q, FUZZ_LINK_SAFE) == strlen(q));
	/* Each byte read encoded in at most three, plus '=' and '&'. */
	AN(strlen(q) <= 4 * SYNC_PAGE_QUERY_MAX + 3 + 3 * strlen(source));
	TAILQ_INIT(&params);
	AZ(evhttp_parse_query_str(q, &params));
	TAILQ_FOREACH(kv, &params, next) {
		if (last != NULL)
			AN(strcmp(last->key, "ns") != 0);
		last = kv;
	}
	AN(last != NULL);
	AZ(strcmp(last->key, "ns"));
	AZ(strcmp(last->value, source));
	evhttp_clear_headers(&params);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = { "/v2/_catalog",
	    "/v2/library/alpine/tags/list", "/v2/a/b/c/tags/list" };
	static const char *const sources[] = { "docker.io", "ghcr.io",
	    "peer-eu" };
	const char	*path, *source;
	char		*s, *next = NULL;
	int		 rc;

	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	path = paths[size > 0 ? data[0] % 3 : 0];
	source = sources[size > 1 ? data[1] % 3 : 0];
	rc = sync_repl_next_page(s, path, source, &next);
	AN(rc == 0 || rc == -1);
	if (rc == -1)
		AZ(next);
	/* A next page is named only by rel="next". */
	if (strstr(s, "rel=\"next\"") == NULL)
		AN(rc == 0 && next == NULL);
	if (next != NULL) {
		fuzz_link_check(next, path, source);
		free(next);
	}
	AZ(sync_repl_next_page(NULL, path, source, &next));
	AZ(next);
	free(s);
	return 0;
}
