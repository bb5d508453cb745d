/*
 * test_push.c — the push's steps (sync/sync_push.c, compiled in): every
 * path the table at the top of that file describes is allowed step by
 * step by the table push_step_to() asserts against, and what the table
 * rules out (the tag before its content, a PUT before a session, leaving
 * a finished push) is refused.
 */
#include "autoconf.h"

#include "sync/sync_push.c"
#include "tests/lib/tap.h"

static int
legal(enum push_step from, enum push_step to)
{
	return (push_step_next[from] & (1u << to)) != 0;
}

/* A path from NEW: 1 when every step may follow the one before. */
static int
path_ok(const enum push_step *steps, size_t n)
{
	enum push_step	cur = PUSH_NEW;
	size_t		i;

	for (i = 0; i < n; i++) {
		if (!legal(cur, steps[i])) {
			diag("step %zu: %d may not follow %d", i,
			    (int)steps[i], (int)cur);
			return 0;
		}
		cur = steps[i];
	}
	return 1;
}

#define PATH_OK(what, ...) do {						\
	static const enum push_step p_[] = { __VA_ARGS__ };		\
	ok(path_ok(p_, sizeof(p_) / sizeof(p_[0])), "%s", what);	\
} while (0)

static void
test_paths(void)
{
	PATH_OK("the tag names the digest already",
	    PUSH_TAG_HEAD, PUSH_DONE);
	PATH_OK("a blob there, one uploaded whole, the manifest by tag",
	    PUSH_TAG_HEAD, PUSH_BLOB_HEAD, PUSH_BLOB_HEAD, PUSH_BLOB_POST,
	    PUSH_BLOB_PUT, PUSH_MANIFEST_PUT, PUSH_DONE);
	PATH_OK("a blob in chunks",
	    PUSH_TAG_HEAD, PUSH_BLOB_HEAD, PUSH_BLOB_POST, PUSH_BLOB_PATCH,
	    PUSH_BLOB_PATCH, PUSH_BLOB_CLOSE, PUSH_MANIFEST_PUT, PUSH_DONE);
	PATH_OK("a blob mounted from another repository",
	    PUSH_TAG_HEAD, PUSH_BLOB_HEAD, PUSH_BLOB_MOUNT, PUSH_BLOB_HEAD,
	    PUSH_BLOB_MOUNT, PUSH_MANIFEST_PUT, PUSH_DONE);
	PATH_OK("a mount answered with a session (202)",
	    PUSH_TAG_HEAD, PUSH_BLOB_HEAD, PUSH_BLOB_MOUNT, PUSH_BLOB_PUT,
	    PUSH_BLOB_HEAD, PUSH_BLOB_MOUNT, PUSH_BLOB_PATCH, PUSH_BLOB_CLOSE,
	    PUSH_MANIFEST_PUT, PUSH_DONE);
	PATH_OK("a mount refused: uploaded instead",
	    PUSH_TAG_HEAD, PUSH_BLOB_HEAD, PUSH_BLOB_MOUNT, PUSH_BLOB_POST,
	    PUSH_BLOB_PUT, PUSH_MANIFEST_PUT, PUSH_DONE);
	PATH_OK("an index: child manifests by digest, then the index",
	    PUSH_TAG_HEAD, PUSH_BLOB_HEAD, PUSH_BLOB_POST, PUSH_BLOB_PUT,
	    PUSH_MANIFEST_PUT, PUSH_BLOB_HEAD, PUSH_MANIFEST_PUT,
	    PUSH_MANIFEST_PUT, PUSH_DONE);
	PATH_OK("a child manifest without blobs of its own first",
	    PUSH_TAG_HEAD, PUSH_MANIFEST_PUT, PUSH_MANIFEST_PUT, PUSH_DONE);
}

static void
test_refused(void)
{
	enum push_step	s;
	int		n;

	ok(!legal(PUSH_NEW, PUSH_BLOB_HEAD), "nothing before the tag's HEAD");
	ok(!legal(PUSH_NEW, PUSH_FAILED),
	    "a push that fails to start is freed, not finished");
	ok(!legal(PUSH_BLOB_HEAD, PUSH_BLOB_PUT), "no PUT without a session");
	ok(!legal(PUSH_BLOB_HEAD, PUSH_BLOB_PATCH),
	    "no PATCH without a session");
	ok(!legal(PUSH_BLOB_POST, PUSH_BLOB_CLOSE),
	    "no empty PUT before a chunk was sent");
	ok(!legal(PUSH_BLOB_PUT, PUSH_BLOB_PATCH),
	    "no PATCH after the whole blob went up");
	ok(!legal(PUSH_BLOB_PATCH, PUSH_BLOB_HEAD),
	    "a chunked upload is closed before the next item");
	ok(!legal(PUSH_BLOB_POST, PUSH_BLOB_MOUNT), "no mount after a POST");
	/* The root is planned last: a blob can never end a push. */
	for (n = 0, s = PUSH_NEW; s < PUSH__NSTEPS; s++)
		if (legal(s, PUSH_DONE)) {
			n++;
			ok(s == PUSH_TAG_HEAD || s == PUSH_MANIFEST_PUT,
			    "DONE after step %d", (int)s);
		}
	is_int(n, 2, "DONE follows only TAG_HEAD and MANIFEST_PUT");
	for (s = PUSH_NEW; s < PUSH__NSTEPS; s++) {
		if (s == PUSH_NEW || s == PUSH_DONE || s == PUSH_FAILED)
			continue;
		ok(legal(s, PUSH_FAILED), "step %d may fail", (int)s);
	}
	is_int(push_step_next[PUSH_DONE], 0, "DONE is final");
	is_int(push_step_next[PUSH_FAILED], 0, "FAILED is final");
}

int
main(void)
{
	test_paths();
	test_refused();
	return done_testing();
}
