/*
 * test_fill.c — the in-flight fill state machine (cache/cache_fill.c)
 * against a real cache directory: hold-back of the last byte until the
 * digest is verified, publishing (rename + index record), and failures
 * (short body, wrong digest, overlong body) leaving nothing behind.
 */
#include "autoconf.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "cache/cache.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/obj.h"
#include "common/xmalloc.h"
#include "tests/lib/tap.h"

static int
count_dir(const char *path)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Poll (the writer thread finishes asynchronously), 10 s at most. */
static enum cache_fill_state
wait_final(struct cache_fill *f, struct cache_fill_view *v)
{
	struct timespec	ts = { 0, 5 * 1000 * 1000 };
	int		i;

	for (i = 0; i < 2000; i++) {
		cache_fill_view(f, v);
		if (v->state == CACHE_FILL_DONE ||
		    v->state == CACHE_FILL_FAILED)
			break;
		nanosleep(&ts, NULL);
	}
	return v->state;
}

/* Poll until the writer thread has made avail bytes available (or the
 * fill has left STREAMING), 10 s at most. */
static uint64_t
wait_avail(struct cache_fill *f, struct cache_fill_view *v, uint64_t want)
{
	struct timespec	ts = { 0, 5 * 1000 * 1000 };
	int		i;

	for (i = 0; i < 2000; i++) {
		cache_fill_view(f, v);
		if (v->avail >= want || v->state != CACHE_FILL_STREAMING)
			break;
		nanosleep(&ts, NULL);
	}
	return v->avail;
}

/* Poll until the writer has decided: no longer STREAMING. */
static enum cache_fill_state
wait_decided(struct cache_fill *f, struct cache_fill_view *v)
{
	struct timespec	ts = { 0, 5 * 1000 * 1000 };
	int		i;

	for (i = 0; i < 2000; i++) {
		cache_fill_view(f, v);
		if (v->state != CACHE_FILL_STREAMING)
			break;
		nanosleep(&ts, NULL);
	}
	return v->state;
}

static int	room_woken;
static int	room_timedout;

static void
room_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	room_timedout = 1;
}

/* Run base until the room event has come (f NULL) or room is back (a
 * wake may be stale: it came while the filler still had room), 10 s at
 * most, on a timer of its own. */
static void
wait_room(struct event_base *base, struct cache_fill *f)
{
	struct timeval	 tv = { 10, 0 };
	struct event	*to = evtimer_new(base, room_timeout_cb, NULL);

	room_woken = room_timedout = 0;
	evtimer_add(to, &tv);
	while (!room_timedout && (f == NULL ? room_woken == 0 :
	    cache_fill_room(f) == 0))
		event_base_loop(base, EVLOOP_ONCE);
	event_free(to);
}

/* The readers' event: woken on every change, never looked at here. */
static void
nop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static void
room_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	room_woken++;
}

/*
 * The writer's queue: at most 1 MiB may wait for the writer thread, and
 * the filler is woken (its room event made active from the writer) once
 * half of a full queue has been written.
 */
static void
test_room(struct event_base *base)
{
	static unsigned char	 big[1024 * 1024];
	struct cache_fill	*f;
	struct cache_fill_view	 v;
	struct event		*rev;
	struct digest		 d;
	int			 created;

	memset(big, 'r', sizeof(big));
	digest_buf(DIGEST_SHA256, big, sizeof(big), &d);
	f = cache_fill_get(d.str, "docker.io", "library/r", &created);
	rev = event_new(base, -1, 0, room_cb, NULL);
	cache_fill_room_watch(f, rev);
	ok(cache_fill_room(f) == sizeof(big), "room: 1 MiB before the body");
	ok(cache_fill_begin(f, sizeof(big)) == 0 &&
	    cache_fill_append(f, big, sizeof(big)) == 0, "room: 1 MiB in");
	wait_room(base, NULL);
	ok(room_woken > 0, "room: the filler is woken as the queue drains");
	ok(wait_avail(f, &v, sizeof(big) - 1) == sizeof(big) - 1,
	    "room: the whole queue written");
	cache_fill_end(f, "up.example", "repo/r");
	ok(wait_final(f, &v) == CACHE_FILL_DONE, "room: DONE");
	cache_fill_room_watch(f, NULL);
	cache_fill_unref(f, "test");
	event_free(rev);
}

/*
 * 3 MiB through the 1 MiB queue from an evbuffer, in pieces of 300,001
 * bytes cut to the room left (the queue wraps around many times; at room
 * 0 the test waits for the room event, as the proxy's tick does): the
 * stored blob is the bytes sent.
 */
static void
test_wrap(struct event_base *base)
{
	static unsigned char	 blob[3 * 1024 * 1024 + 12345], back[65536];
	struct cache_fill	*f;
	struct cache_fill_view	 v;
	struct evbuffer		*src = evbuffer_new();
	struct event		*rev;
	struct digest		 d;
	size_t			 off = 0, n, room, waits = 0, bad = 0, i;
	uint64_t		 size;
	ssize_t			 k;
	int			 created, fd;

	for (i = 0; i < sizeof(blob); i++)
		blob[i] = (unsigned char)(i * 131 + i / 7);
	digest_buf(DIGEST_SHA256, blob, sizeof(blob), &d);
	f = cache_fill_get(d.str, "docker.io", "library/w", &created);
	rev = event_new(base, -1, 0, room_cb, NULL);
	cache_fill_room_watch(f, rev);
	ok(cache_fill_begin(f, sizeof(blob)) == 0, "wrap: begin");
	while (off < sizeof(blob) && bad == 0) {
		if ((room = cache_fill_room(f)) == 0) {
			wait_room(base, f);
			waits++;
			if (cache_fill_room(f) == 0)
				bad++;	/* no room in 10 s */
			continue;
		}
		n = sizeof(blob) - off < 300001 ? sizeof(blob) - off : 300001;
		if (n > room)
			n = room;
		evbuffer_add(src, blob + off, n);
		if (cache_fill_append_buffer(f, src, n) != 0 ||
		    evbuffer_get_length(src) != 0)
			bad++;
		off += n;
	}
	ok(bad == 0 && off == sizeof(blob), "wrap: %zu bytes in (%zu waits "
	    "for room)", off, waits);
	cache_fill_end(f, "up.example", "repo/w");
	ok(wait_final(f, &v) == CACHE_FILL_DONE, "wrap: DONE");
	ok(cache_blob_open(d.str, NULL, &fd, &size) == 0 &&
	    size == sizeof(blob), "wrap: stored, the right size");
	for (off = 0, bad = 0; off < sizeof(blob) && bad == 0; off += (size_t)k)
		if ((k = pread(fd, back, sizeof(back), (off_t)off)) <= 0 ||
		    memcmp(back, blob + off, (size_t)k) != 0)
			bad++;
	ok(bad == 0, "wrap: the stored bytes are the bytes sent");
	close(fd);
	cache_fill_room_watch(f, NULL);
	cache_fill_unref(f, "test");
	event_free(rev);
	evbuffer_free(src);
}

/* The state table of cache_fill.c, written out again: every pair. */
static void
test_transitions(void)
{
	enum { W = CACHE_FILL_WAITING, S = CACHE_FILL_STREAMING,
	    P = CACHE_FILL_PUBLISHING, D = CACHE_FILL_DONE,
	    F = CACHE_FILL_FAILED, X = CACHE_FILL_PASSED };
	static const int allowed[][2] = { { W, S }, { W, F }, { S, P },
	    { S, X }, { S, F }, { P, D }, { P, X } };
	int	from, to, want, bad = 0;
	size_t	i;

	for (from = W; from <= X; from++)
		for (to = W; to <= X; to++) {
			want = 0;
			for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]);
			    i++)
				if (allowed[i][0] == from &&
				    allowed[i][1] == to)
					want = 1;
			if (cache_fill_transition_ok((enum cache_fill_state)
			    from, (enum cache_fill_state)to) != want) {
				diag("transition %d -> %d: want %d", from, to,
				    want);
				bad++;
			}
		}
	ok(bad == 0, "the fill's transitions are the table's (%d states)",
	    X + 1);
	ok(!cache_fill_transition_ok(CACHE_FILL_PUBLISHING,
	    CACHE_FILL_FAILED), "verified bytes cannot fail");
	ok(!cache_fill_transition_ok(CACHE_FILL_DONE, CACHE_FILL_DONE) &&
	    !cache_fill_transition_ok(CACHE_FILL_PASSED, CACHE_FILL_FAILED),
	    "final states are final");
	ok(!cache_fill_transition_ok((enum cache_fill_state)99,
	    CACHE_FILL_DONE), "an unknown state has no transitions");
}

int
main(void)
{
	struct config		 cfg;
	struct cache_fill	*f, *g;
	struct cache_fill_view	 v;
	struct digest		 d;
	struct event_base	*base;
	struct event		*ev;
	char			 tmpl[] = "/tmp/test_fill.XXXXXX";
	char			*dir, *tmpdir;
	unsigned char		 data[262144];	/* 2 write batches */
	uint64_t		 size;
	int			 created, fd;
	size_t			 i;

	test_transitions();
	evthread_use_pthreads();
	base = event_base_new();
	ev = event_new(base, -1, 0, nop_cb, NULL);
	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7 + 3);
	digest_buf(DIGEST_SHA256, data, sizeof(data), &d);

	dir = mkdtemp(tmpl);
	AN(dir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.cache_dir = dir;
	ok(cache_open(&cfg) == 0, "cache opens in %s", dir);
	xasprintf(&tmpdir, "%s/tmp", dir);

	/* Success: hold-back, then DONE and a hit. */
	f = cache_fill_get(d.str, "docker.io", "library/x", &created);
	ok(created, "first get creates the fill");
	g = cache_fill_get(d.str, "docker.io", "library/x", &created);
	ok(!created && g == f, "second get attaches to the same fill");
	cache_fill_unref(g, "test");
	cache_fill_watch(f, ev);
	cache_fill_view(f, &v);
	ok(v.state == CACHE_FILL_WAITING && v.avail == 0, "waiting, nothing");
	ok(cache_fill_begin(f, sizeof(data)) == 0, "begin");
	ok(cache_fill_append(f, data, 100000) == 0, "append part");
	cache_fill_view(f, &v);
	ok(v.state == CACHE_FILL_STREAMING && v.avail <= 100000 &&
	    v.size == (int64_t)sizeof(data), "streaming, at most 100000 "
	    "available");
	ok(cache_fill_append(f, data + 100000, sizeof(data) - 100000) == 0,
	    "append rest");
	cache_fill_view(f, &v);
	ok(wait_avail(f, &v, sizeof(data) - 1) == sizeof(data) - 1,
	    "all on disk but the last byte is held back before verification");
	ok(cache_blob_open(d.str, NULL, &fd, &size) == 1, "not a hit yet");
	cache_fill_end(f, "up.example", "repo/a");
	wait_decided(f, &v);
	ok(cache_fill_state_verified(v.state), "verified by the writer "
	    "(state %d)", (int)v.state);
	/* Verified bytes stay verified: a late failure (the upstream's
	 * connection dropping after the body, say) changes nothing, and the
	 * writer cannot be raced into storing a FAILED fill. */
	cache_fill_fail(f, 502, "BLOB_UNKNOWN", NULL, "late");
	ok(wait_final(f, &v) == CACHE_FILL_DONE, "fill is DONE");
	ok(v.avail == sizeof(data), "all bytes available once verified");
	ok(cache_blob_open(d.str, NULL, &fd, &size) == 0 &&
	    size == sizeof(data), "now a hit of the right size");
	close(fd);
	ok(count_dir(tmpdir) == 0, "tmp/ is empty after publishing");
	g = cache_fill_get(d.str, "docker.io", "library/x", &created);
	ok(created && g != f, "a DONE fill has left the table");
	cache_fill_fail(g, 503, "UNAVAILABLE", NULL, "test");
	cache_fill_unref(g, "test");
	cache_fill_unwatch(f, ev);
	cache_fill_unref(f, "test");

	/* Wrong digest: FAILED, nothing kept. */
	data[0] ^= 1;
	digest_buf(DIGEST_SHA256, data, sizeof(data), &d);
	data[0] ^= 1;
	f = cache_fill_get(d.str, "docker.io", "library/x", &created);
	ok(cache_fill_begin(f, sizeof(data)) == 0 &&
	    cache_fill_append(f, data, sizeof(data)) == 0, "corrupt body in");
	cache_fill_end(f, "up.example", "repo/a");
	ok(wait_decided(f, &v) == CACHE_FILL_FAILED && v.fail_status == 502,
	    "digest mismatch fails with 502");
	ok(v.avail == 0, "nothing available after failure");
	ok(cache_blob_open(d.str, NULL, &fd, &size) == 1,
	    "corrupt blob not cached");
	ok(count_dir(tmpdir) == 0, "temp file removed");
	cache_fill_unref(f, "test");

	/* Short body. */
	f = cache_fill_get(d.str, "docker.io", "library/x", &created);
	ok(created, "a failed fill has left the table");
	ok(cache_fill_begin(f, sizeof(data)) == 0 &&
	    cache_fill_append(f, data, 1000) == 0, "short body in");
	cache_fill_end(f, "up.example", "repo/a");
	ok(wait_decided(f, &v) == CACHE_FILL_FAILED, "short body fails");
	ok(strstr(v.fail_msg, "ended at 1000 of 262144") != NULL, "message: %s",
	    v.fail_msg);
	cache_fill_unref(f, "test");

	/* The body is complete: a failure the filler sees after the end
	 * (before the writer has verified) changes nothing. */
	digest_buf(DIGEST_SHA256, data, sizeof(data), &d);
	f = cache_fill_get(d.str, "docker.io", "library/x", &created);
	ok(created, "a failed fill has left the table (2)");
	ok(cache_fill_begin(f, sizeof(data)) == 0 &&
	    cache_fill_append(f, data, sizeof(data)) == 0, "whole body in");
	cache_fill_end(f, "up.example", "repo/a");
	cache_fill_fail(f, 502, "BLOB_UNKNOWN", NULL, "after the end");
	ok(wait_final(f, &v) == CACHE_FILL_DONE, "a failure after the end "
	    "is ignored: DONE");
	cache_fill_unref(f, "test");

	/* More bytes than Content-Length. */
	f = cache_fill_get(d.str, "docker.io", "library/x", &created);
	ok(cache_fill_begin(f, 10) == 0, "begin with size 10");
	ok(cache_fill_append(f, data, 11) == -1, "11 bytes refused");
	cache_fill_view(f, &v);
	ok(v.state == CACHE_FILL_FAILED, "overlong body fails");
	cache_fill_unref(f, "test");
	ok(count_dir(tmpdir) == 0, "tmp/ empty at the end");

	/* No length: nothing is available until the end. */
	digest_buf(DIGEST_SHA256, data, 5000, &d);
	f = cache_fill_get(d.str, "docker.io", "library/x", &created);
	ok(cache_fill_begin(f, -1) == 0 && cache_fill_append(f, data,
	    5000) == 0, "unknown length body in");
	cache_fill_view(f, &v);
	ok(v.avail == 0, "no length: readers wait for the end");
	cache_fill_end(f, "up.example", "repo/b");
	ok(wait_final(f, &v) == CACHE_FILL_DONE && v.size == 5000 &&
	    v.avail == 5000, "no length: DONE with the size");
	cache_fill_unref(f, "test");

	/* max_blob_size: a length over it is refused at once; a chunked
	 * body is cut as it crosses it; nothing is left behind. */
	cache_fill_set_max(100000);
	digest_buf(DIGEST_SHA256, data, sizeof(data), &d);
	f = cache_fill_get(d.str, "docker.io", "library/x", &created);
	ok(cache_fill_begin(f, sizeof(data)) == -1,
	    "max_blob_size: a larger Content-Length refused");
	cache_fill_view(f, &v);
	ok(v.state == CACHE_FILL_FAILED && v.fail_status == 403 &&
	    strcmp(v.fail_code, "DENIED") == 0, "  403 DENIED");
	ok(strstr(v.fail_msg, "max_blob_size") != NULL, "  message: %s",
	    v.fail_msg);
	cache_fill_unref(f, "test");
	f = cache_fill_get(d.str, "docker.io", "library/x", &created);
	ok(cache_fill_begin(f, -1) == 0, "max_blob_size: chunked body begins");
	ok(cache_fill_append(f, data, 60000) == 0, "  60000 bytes in");
	ok(cache_fill_append(f, data + 60000, 60000) == -1,
	    "  the bytes crossing 100000 refused");
	cache_fill_view(f, &v);
	ok(v.state == CACHE_FILL_FAILED && v.fail_status == 403,
	    "  the fill fails 403");
	cache_fill_unref(f, "test");
	ok(count_dir(tmpdir) == 0, "  tmp/ empty");
	cache_fill_set_max(0);
	test_room(base);
	test_wrap(base);

	cache_close();
	event_free(ev);
	event_base_free(base);
	{
		char *cmd;

		xasprintf(&cmd, "rm -rf '%s'", dir);
		ok(system(cmd) == 0, "cleanup");
		free(cmd);
	}
	free(tmpdir);
	return done_testing();
}
