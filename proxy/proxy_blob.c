/*
 * proxy_blob.c — blobs: served from verified cache files with sendfile, or
 * streamed from a fill in progress, which the first request for an
 * uncached digest starts and any later one attaches to.
 *
 * A reader is one client response.  It runs only from its wake event, which
 * fires when its fill changes (from any thread), when its connection's
 * output drains, and when the client goes away:
 *
 *	state	event					next
 *	WAIT	fill has a length (STREAMING with one)	SEND (headers out;
 *		or is verified				HEAD: END)
 *	WAIT	fill FAILED				END (its error)
 *	WAIT	range not satisfiable, no cache file	END (416, 503)
 *	SEND	bytes available, output below its mark	SEND (more queued)
 *	SEND	every byte sent, fill verified, output	END (reply end)
 *		drained
 *	SEND	fill FAILED, behind the disk-full	END (connection
 *		window, a copy or queue error		closed: the client
 *							sees a short body,
 *							never a complete
 *							wrong one)
 *	any	client gone				END
 *
 * A cache hit starts in SEND (its headers go out at once); a fill's
 * reader in WAIT.  proxy_reader_set_state() asserts each change against
 * proxy_reader_next[] (this table); END frees the reader.
 *
 * The fill itself (struct proxy_bfetch) belongs to no client: it runs to
 * its end even when every reader has left.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "cache/cache.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/obj.h"
#include "common/text.h"
#include "common/xmalloc.h"
#include "proxy/proxy_int.h"
#include "upstream/upstream.h"

#define PROXY_READER_MAGIC	0x72656164
/* File bytes queued per client. */
#define PROXY_OUT_HIWAT		(4 * 1024 * 1024)
/* TLS cannot sendfile: bytes are read into memory, at most [server]
 * send_buffer queued per client, in chunks of this. */
#define PROXY_TLS_CHUNK		(64 * 1024)
#define PROXY_SEGMENT_MAX	(2 * 1024 * 1024)

enum proxy_reader_state {
	PROXY_RD_WAIT = 0,
	PROXY_RD_SEND,
	PROXY_RD_END
};

struct proxy_reader {
	unsigned			 magic;
	int				 corked;	/* TCP_CORK set */
	struct proxy_req		*pr;
	struct evhttp_connection	*evcon;
	struct evbuffer			*out;
	struct evbuffer_cb_entry	*out_cb;
	struct event			*wake;
	struct cache_fill		*fill;	/* NULL: a cache hit */
	int				 fd;
	struct evbuffer_file_segment	*seg;
	uint64_t			 size;
	uint64_t			 sent;	/* offset of the next byte */
	struct proxy_range		 range;	/* the client's Range */
	uint64_t			 end;	/* offset after the last byte */
	enum proxy_reader_state		 state;
	int				 gone;	/* client went away */
	/* Queued when the head was: the head's bytes and the first body
	 * offset (proxy_reader_untouched). */
	size_t				 head_len;
	uint64_t			 start;
};

/* The table above, as data: proxy_reader_next[from] has bit (1 << to). */
static const unsigned proxy_reader_next[] = {
	[PROXY_RD_WAIT] = 1u << PROXY_RD_SEND | 1u << PROXY_RD_END,
	[PROXY_RD_SEND] = 1u << PROXY_RD_END,
	[PROXY_RD_END] = 0,
};

static void
proxy_reader_set_state(struct proxy_reader *rd, enum proxy_reader_state to)
{
	AN(proxy_reader_next[rd->state] & 1u << to);
	rd->state = to;
}

/* An upstream fetch feeding a fill. */
struct proxy_bfetch {
	struct proxy_worker	*w;
	struct cache_fill	*fill;
	struct upstream		*up;
	const char		*upname;
	char			*repo;
	char			*path;
	struct proxy_fill_slots	*slots;		/* its upstream's */
	int			 counted;	/* holds a fill slot */
	char			 client[64];	/* max_fills_per_client */
	struct event		*queue_ev;	/* waiting: [timeouts] queue */
	struct event		*start_ev;	/* a slot came free */
	TAILQ_ENTRY(proxy_bfetch) queue;
	int			 ok;
	char			*retry_after;
	/*
	 * Disk full (the fill passes bytes through a bounded window in
	 * memory): bytes waiting for room, and upstream reading paused
	 * until the slowest reader catches up.
	 */
	struct upstream_req	*ur;		/* NULL once done */
	struct evbuffer		*pending;
	struct event		*tick;
	int			 paused;
	/* The upstream is done; pending still holds bytes. */
	int			 done;
	const char		*err;
	int			 status;
	char			 errmsg[512];
};

static void	proxy_bfetch_finish(struct proxy_bfetch *);

static void	proxy_reader_pump(struct proxy_reader *);

static void
proxy_reader_free(struct proxy_reader *rd)
{
	CHECK_OBJ_NOTNULL(rd, PROXY_READER_MAGIC);
	proxy_reader_set_state(rd, PROXY_RD_END);
	if (rd->fill != NULL) {
		cache_fill_unwatch(rd->fill, rd->wake);
		cache_fill_unref(rd->fill, "reader");
	}
	event_free(rd->wake);
	if (rd->seg != NULL)
		evbuffer_file_segment_free(rd->seg);
	if (rd->fd != -1)
		close(rd->fd);
	rd->magic = 0;
	free(rd);
}

/* Stop hearing from the connection. */
static void
proxy_reader_detach(struct proxy_reader *rd)
{
	if (rd->out_cb != NULL && !rd->gone)
		evbuffer_remove_cb_entry(rd->out, rd->out_cb);
	rd->out_cb = NULL;
	if (rd->evcon != NULL && !rd->gone &&
	    proxy_conn_on_close(rd->pr->w, rd->evcon, NULL, NULL) != 0)
		evhttp_connection_set_closecb(rd->evcon, NULL, NULL);
}

static void
proxy_reader_wake_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct proxy_reader	*rd = arg;

	(void)fd;
	(void)ev;
	CHECK_OBJ_NOTNULL(rd, PROXY_READER_MAGIC);
	proxy_reader_pump(rd);
}

static void
proxy_reader_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct proxy_reader	*rd = arg;

	(void)buf;
	if (info->n_deleted > 0)
		event_active(rd->wake, EV_READ, 0);
}

static void
proxy_reader_gone(void *arg)
{
	struct proxy_reader	*rd = arg;

	CHECK_OBJ_NOTNULL(rd, PROXY_READER_MAGIC);
	if (rd->out_cb != NULL)
		evbuffer_remove_cb_entry(rd->out, rd->out_cb);
	rd->out_cb = NULL;
	rd->gone = 1;
	event_active(rd->wake, EV_READ, 0);
}

static void
proxy_reader_close_cb(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	proxy_reader_gone(arg);
}

/* The reply's status and headers for the client's Range (rd->sent and
 * rd->end set); -1 if it is unsatisfiable (Content-Range for the 416). */
static int
proxy_reader_status(struct proxy_reader *rd, int *status)
{
	struct proxy_req	*pr = rd->pr;
	struct evkeyvalq	*out;
	char			 clen[32], crange[96];

	out = evhttp_request_get_output_headers(pr->req);
	proxy_req_common_headers(pr);
	rd->sent = 0;
	rd->end = rd->size;
	*status = 200;
	if (rd->range.kind != PROXY_RANGE_NONE &&
	    pr->method == EVHTTP_REQ_GET) {
		if (proxy_range_resolve(&rd->range, rd->size, &rd->sent,
		    &rd->end) != 0) {
			snprintf(crange, sizeof(crange), "bytes */%llu",
			    (unsigned long long)rd->size);
			evhttp_add_header(out, "Content-Range", crange);
			return -1;
		}
		snprintf(crange, sizeof(crange), "bytes %llu-%llu/%llu",
		    (unsigned long long)rd->sent,
		    (unsigned long long)rd->end - 1,
		    (unsigned long long)rd->size);
		evhttp_add_header(out, "Content-Range", crange);
		*status = 206;
	}
	snprintf(clen, sizeof(clen), "%llu",
	    (unsigned long long)(rd->end - rd->sent));
	evhttp_add_header(out, "Content-Length", clen);
	evhttp_add_header(out, "Content-Type", "application/octet-stream");
	evhttp_add_header(out, "Docker-Content-Digest", pr->digest.str);
	evhttp_add_header(out, "Accept-Ranges", "bytes");
	evhttp_add_header(out, "Cache-Control", "max-age=31536000");
	return 0;
}

/* The connection, set up for a body sent from a file over time. */
static void
proxy_reader_stream(struct proxy_reader *rd)
{
	struct proxy_req	*pr = rd->pr;
	struct bufferevent	*bev;
	struct timeval		 tv = { pr->w->cfg->idle_timeout, 0 };
	int			 one = 1;

	rd->evcon = evhttp_request_get_connection(pr->req);
	bev = evhttp_connection_get_bufferevent(rd->evcon);
	/* One sendfile per 1 MiB rather than per 16 KiB. */
	bufferevent_set_max_single_write(bev, PROXY_OUT_HIWAT);
	/*
	 * A whole cached file: cork the socket (nginx's tcp_nopush) so that
	 * every sendfile leaves in full segments; measured ~25% more single-
	 * client throughput on loopback.  Not for fills in progress: a cork
	 * holds a short tail up to 200 ms, and their first bytes must go at
	 * once.  Uncorked when the body is done.
	 */
	if (!pr->tls && rd->fill == NULL && setsockopt(bufferevent_getfd(bev),
	    IPPROTO_TCP, TCP_CORK, &one, sizeof(one)) == 0)
		rd->corked = 1;
	/*
	 * evhttp keeps reading (to see the client close) with its idle
	 * timeout: a client that downloads for longer than that sends
	 * nothing and would be cut.  While streaming, only writes that
	 * make no progress time out.
	 */
	bufferevent_set_timeouts(bev, NULL, &tv);
	rd->out = bufferevent_get_output(bev);
	rd->out_cb = evbuffer_add_cb(rd->out, proxy_reader_out_cb, rd);
	if (proxy_conn_on_close(pr->w, rd->evcon, proxy_reader_gone, rd) != 0)
		evhttp_connection_set_closecb(rd->evcon,
		    proxy_reader_close_cb, rd);
	if (rd->size > 0 && !pr->tls) {
		/* The segment owns the descriptor: queued ranges may outlive
		 * the reader. */
		rd->seg = evbuffer_file_segment_new(rd->fd, 0,
		    (ev_off_t)rd->size,
		    EVBUF_FS_DISABLE_MMAP | EVBUF_FS_CLOSE_ON_FREE);
		if (rd->seg == NULL)
			fatalx("evbuffer_file_segment_new failed");
		rd->fd = -1;
	}
}

/* Send the status line and headers (WAIT to SEND); -1 if the range is
 * unsatisfiable (then nothing is sent: the caller replies 416). */
static int
proxy_reader_headers(struct proxy_reader *rd)
{
	struct proxy_req	*pr = rd->pr;
	int			 status;

	if (proxy_reader_status(rd, &status) != 0)
		return -1;
	pr->status = status;
	proxy_reader_set_state(rd, PROXY_RD_SEND);
	if (pr->method == EVHTTP_REQ_HEAD) {
		evhttp_send_reply(pr->req, 200, "OK", NULL);
		return 0;
	}
	evhttp_send_reply_start(pr->req, status,
	    status == 206 ? "Partial Content" : "OK");
	proxy_reader_stream(rd);
	rd->head_len = evbuffer_get_length(rd->out);
	rd->start = rd->sent;
	return 0;
}

/* End of the reader: the reply is finished (or abandoned), log, free. */
static void
proxy_reader_end(struct proxy_reader *rd, int abort_conn)
{
	struct proxy_req	*pr = rd->pr;

	if (rd->state == PROXY_RD_SEND && pr->method != EVHTTP_REQ_HEAD) {
		proxy_reader_detach(rd);
		if (rd->corked && !rd->gone) {
			int zero = 0;

			(void)setsockopt(bufferevent_getfd(
			    evhttp_connection_get_bufferevent(rd->evcon)),
			    IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero));
		}
		if (abort_conn && !rd->gone) {
			/* A short body then EOF: never a complete wrong one. */
			evhttp_connection_free(rd->evcon);
		} else {
			if (!rd->gone)	/* back to evhttp's idle timeouts */
				evhttp_connection_set_timeout(rd->evcon,
				    (int)pr->w->cfg->idle_timeout);
			/* Frees a request whose client is gone. */
			evhttp_send_reply_end(pr->req);
		}
		if (rd->gone || abort_conn)
			pr->status = pr->status == 200 ? 499 : pr->status;
	}
	pr->bytes = rd->sent;
	proxy_req_finish(pr);
	proxy_reader_free(rd);
}

/*
 * Copy bytes into the output buffer, a bounded amount at a time: for TLS
 * connections (OpenSSL needs them in memory: from_mem 0, pread from the
 * file) and for fills passed through on a full disk (from_mem 1, from the
 * fill's memory window).
 */
static int
proxy_reader_copy(struct proxy_reader *rd, uint64_t avail, int from_mem)
{
	struct evbuffer_iovec	 v;
	uint64_t		 n;
	ssize_t			 r;

	while (rd->sent < avail &&
	    evbuffer_get_length(rd->out) < rd->pr->w->cfg->send_buffer) {
		n = avail - rd->sent;
		if (n > PROXY_TLS_CHUNK)
			n = PROXY_TLS_CHUNK;
		if (evbuffer_reserve_space(rd->out, (ev_ssize_t)n, &v, 1) < 1)
			return -1;
		if (from_mem)
			r = cache_fill_copy(rd->fill, rd->sent, v.iov_base,
			    (size_t)n);
		else if ((r = pread(rd->fd, v.iov_base, (size_t)n,
		    (off_t)rd->sent)) == 0)
			r = -1;		/* the file is shorter than its size */
		if (r < 0) {
			if (!from_mem)
				log_warn("r%llu: pread of blob",
				    (unsigned long long)rd->pr->id);
			return -1;
		}
		v.iov_len = (size_t)r;
		if (evbuffer_commit_space(rd->out, &v, 1) != 0)
			return -1;
		rd->sent += (uint64_t)r;
		if (r == 0)
			break;		/* the window has nothing more yet */
	}
	return 0;
}

static void
proxy_reader_unsatisfiable(struct proxy_reader *rd)
{
	struct proxy_req	*pr = rd->pr;
	unsigned long long	 size = rd->size;

	rd->pr = NULL;
	proxy_reader_free(rd);
	proxy_error(pr, 416, "UNSUPPORTED",
	    "range not satisfiable (blob size %llu)", size);
}

/* WAIT: the fill's headers, once it has a length; 0 sent, -1 ended. */
static int
proxy_reader_wait(struct proxy_reader *rd, const struct cache_fill_view *v)
{
	struct proxy_req	*pr = rd->pr;

	if (v->state == CACHE_FILL_FAILED) {
		if (v->retry_after[0] != '\0' || v->fail_status == 429)
			evhttp_add_header(evhttp_request_get_output_headers(
			    pr->req), "Retry-After", v->retry_after[0] !=
			    '\0' ? v->retry_after : "60");
		rd->pr = NULL;
		proxy_reader_free(rd);
		proxy_error(pr, v->fail_status, v->fail_code, "%s",
		    v->fail_msg);
		return -1;
	}
	if (v->state == CACHE_FILL_WAITING ||
	    (v->size < 0 && !cache_fill_state_verified(v->state)))
		return -1;	/* not yet: the next wake */
	rd->size = (uint64_t)v->size;
	if ((rd->fd = cache_fill_dup_fd(rd->fill)) == -1) {
		rd->pr = NULL;
		proxy_reader_free(rd);
		proxy_error(pr, 503, "UNAVAILABLE", "cache file unavailable");
		return -1;
	}
	if (proxy_reader_headers(rd) != 0) {
		proxy_reader_unsatisfiable(rd);
		return -1;
	}
	cache_fill_reader_pos(rd->fill, rd->wake, rd->sent);
	if (pr->method == EVHTTP_REQ_HEAD) {
		proxy_reader_end(rd, 0);
		return -1;
	}
	return 0;
}

/*
 * A fill can fail before the socket has taken a byte of the reply (a
 * fast upstream, a slow client): the head and the body so far are all
 * still queued.  Then the client gets the failure as it would have
 * before the head was sent, not a closed connection with nothing.
 */
static int
proxy_reader_untouched(const struct proxy_reader *rd)
{
	/* Not over TLS: evhttp_send_reply_end on bufferevent_openssl's
	 * non-empty output loses the tail (proxy_reader_send). */
	return !rd->gone && !rd->pr->tls && rd->out != NULL &&
	    rd->head_len > 0 &&
	    evbuffer_get_length(rd->out) == rd->head_len +
	    (size_t)(rd->sent - rd->start);
}

static const char *
proxy_reader_reason(int status)
{
	switch (status) {
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 429:
		return "Too Many Requests";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Error";
	}
}

/* In place of the queued 200 or 206: the fill's error, as OCI JSON,
 * written raw (evhttp has sent its head already, as far as it knows),
 * and the connection closes after it. */
static void
proxy_reader_refuse(struct proxy_reader *rd, const struct cache_fill_view *v)
{
	struct proxy_req	*pr = rd->pr;
	char			*body;

	log_info("r%llu: fill failed before any byte went out: %d",
	    (unsigned long long)pr->id, v->fail_status);
	proxy_reader_detach(rd);
	/* A socket bufferevent keeps its output's start frozen but for
	 * its own writes (evhttp unfreezes it the same way). */
	if (evbuffer_drain(rd->out, evbuffer_get_length(rd->out)) != 0) {
		evbuffer_unfreeze(rd->out, 1);
		(void)evbuffer_drain(rd->out, evbuffer_get_length(rd->out));
		evbuffer_freeze(rd->out, 1);
	}
	if (evbuffer_get_length(rd->out) != 0) {
		proxy_reader_end(rd, 1);	/* as if not untouched */
		return;
	}
	body = proxy_error_body(v->fail_code, v->fail_msg);
	evbuffer_add_printf(rd->out, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %zu\r\n"
	    "Docker-Distribution-API-Version: registry/2.0\r\n"
	    "%s%s%s"
	    "Connection: close\r\n\r\n%s", v->fail_status,
	    proxy_reader_reason(v->fail_status), strlen(body),
	    v->retry_after[0] != '\0' ? "Retry-After: " : "",
	    v->retry_after, v->retry_after[0] != '\0' ? "\r\n" : "", body);
	free(body);
	/* Not sent, only what evhttp reads to close after the reply. */
	evhttp_add_header(evhttp_request_get_output_headers(pr->req),
	    "Connection", "close");
	rd->sent = rd->start;
	pr->status = v->fail_status;
	proxy_reader_end(rd, 0);
}

/*
 * SEND from a fill: what may go out now (the range's last byte waits for
 * the verified blob), and, on a full disk, bytes past the file copied
 * from the fill's memory window.  The offset to send up to from the
 * file, or -1 when the reader ended; *copied when the window was used.
 */
static int
proxy_reader_fill_avail(struct proxy_reader *rd,
    const struct cache_fill_view *v, uint64_t *avail, int *copied)
{
	*copied = 0;
	if (v->state == CACHE_FILL_FAILED) {
		if (proxy_reader_untouched(rd)) {
			proxy_reader_refuse(rd, v);
			return -1;
		}
		log_info("r%llu: fill failed after %llu bytes sent: closing "
		    "the connection", (unsigned long long)rd->pr->id,
		    (unsigned long long)rd->sent);
		proxy_reader_end(rd, 1);
		return -1;
	}
	if (cache_fill_state_verified(v->state))
		*avail = rd->end;
	else
		*avail = rd->end == 0 ? 0 : v->avail < rd->end - 1 ?
		    v->avail : rd->end - 1;
	if (v->disk_end == UINT64_MAX)
		return 0;
	if (rd->sent >= v->disk_end) {
		if (rd->sent < v->mem_start ||
		    proxy_reader_copy(rd, *avail, 1) != 0) {
			log_info("r%llu: fell behind the memory window of a "
			    "fill passed through: closing",
			    (unsigned long long)rd->pr->id);
			proxy_reader_end(rd, 1);
			return -1;
		}
		*copied = 1;
	} else if (*avail > v->disk_end)
		*avail = v->disk_end;
	return 0;
}

/* SEND: queue file bytes up to avail (sendfile ranges, or copies for
 * TLS); 0, or -1 when the reader ended. */
static int
proxy_reader_queue(struct proxy_reader *rd, uint64_t avail)
{
	uint64_t	n;

	if (rd->pr->tls) {
		if (proxy_reader_copy(rd, avail, 0) != 0) {
			proxy_reader_end(rd, 1);
			return -1;
		}
		return 0;
	}
	while (rd->sent < avail &&
	    evbuffer_get_length(rd->out) < PROXY_OUT_HIWAT) {
		n = avail - rd->sent;
		if (n > PROXY_SEGMENT_MAX)
			n = PROXY_SEGMENT_MAX;
		if (evbuffer_add_file_segment(rd->out, rd->seg,
		    (ev_off_t)rd->sent, (ev_off_t)n) != 0) {
			log_warnx("r%llu: evbuffer_add_file_segment failed",
			    (unsigned long long)rd->pr->id);
			proxy_reader_end(rd, 1);
			return -1;
		}
		rd->sent += n;
	}
	return 0;
}

/* SEND: as much as may go now; END once all of it is out. */
static void
proxy_reader_send(struct proxy_reader *rd, const struct cache_fill_view *v)
{
	uint64_t	avail = rd->end;
	int		copied = 0, verified = 1;

	if (rd->fill != NULL) {
		if (proxy_reader_fill_avail(rd, v, &avail, &copied) != 0)
			return;
		verified = cache_fill_state_verified(v->state);
	}
	if (!copied && proxy_reader_queue(rd, avail) != 0)
		return;
	if (rd->fill != NULL)
		cache_fill_reader_pos(rd->fill, rd->wake, rd->sent);
	/*
	 * Only a verified fill offers the last byte: sent == end is the end.
	 * The reply is ended once the output has drained: with
	 * bufferevent_openssl, evhttp_send_reply_end() on a non-empty output
	 * loses the tail (libevent 2.1).
	 */
	if (rd->sent == rd->end && (rd->out == NULL ||
	    evbuffer_get_length(rd->out) == 0) && verified)
		proxy_reader_end(rd, 0);
}

static void
proxy_reader_pump(struct proxy_reader *rd)
{
	struct cache_fill_view	 v;

	if (rd->gone) {
		proxy_reader_end(rd, 0);
		return;
	}
	if (rd->fill != NULL)
		cache_fill_view(rd->fill, &v);
	switch (rd->state) {
	case PROXY_RD_WAIT:
		AN(rd->fill);
		if (proxy_reader_wait(rd, &v) != 0)
			return;
		/* FALLTHROUGH */
	case PROXY_RD_SEND:
		proxy_reader_send(rd, &v);
		return;
	case PROXY_RD_END:
		break;
	}
	WRONG("pump of an ended reader");
}

static struct proxy_reader *
proxy_reader_new(struct proxy_req *pr)
{
	struct proxy_reader	*rd;

	rd = xcalloc(1, sizeof(*rd));
	rd->magic = PROXY_READER_MAGIC;
	rd->pr = pr;
	rd->fd = -1;
	rd->wake = event_new(pr->w->base, -1, 0, proxy_reader_wake_cb, rd);
	AN(rd->wake);
	return rd;
}

static void	proxy_bfetch_go(struct proxy_bfetch *);
static void	proxy_bfetch_free(struct proxy_bfetch *);

/* A fill slot came free: the first waiting fetch of that upstream goes. */
static void
proxy_bfetch_next_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct proxy_bfetch	*bf = arg;

	(void)fd;
	(void)ev;
	if (!cache_fill_watched(bf->fill)) {
		/* Everyone who asked has gone: nothing to fetch it for. */
		cache_fill_fail(bf->fill, 503, "UNAVAILABLE", "5", "no reader "
		    "waits for this blob any more");
		proxy_bfetch_free(bf);
		return;
	}
	proxy_bfetch_go(bf);
}

static void
proxy_bfetch_free(struct proxy_bfetch *bf)
{
	struct proxy_fill_slots	*sl = bf->slots;
	struct proxy_bfetch	*next;

	cache_fill_room_watch(bf->fill, NULL);
	cache_fill_unref(bf->fill, "fetch");
	proxy_limit_fill_give(bf->client);
	if (bf->counted) {
		AN(sl->active > 0);
		sl->active--;
		if ((next = TAILQ_FIRST(&sl->queue)) != NULL) {
			TAILQ_REMOVE(&sl->queue, next, queue);
			sl->nqueued--;
			evtimer_del(next->queue_ev);
			next->counted = 1;
			sl->active++;
			/* From the loop: we may be inside upstream's done. */
			event_active(next->start_ev, EV_TIMEOUT, 0);
		}
	}
	if (bf->queue_ev != NULL)
		event_free(bf->queue_ev);
	if (bf->start_ev != NULL)
		event_free(bf->start_ev);
	if (bf->tick != NULL)
		event_free(bf->tick);
	if (bf->pending != NULL)
		evbuffer_free(bf->pending);
	free(bf->repo);
	free(bf->path);
	free(bf->retry_after);
	free(bf);
}

static int
proxy_bfetch_head_cb(struct upstream_req *ur, int status,
    struct evkeyvalq *h, int64_t clen, void *arg)
{
	struct proxy_bfetch	*bf = arg;

	(void)h;
	bf->ur = ur;
	if (status != 200)
		return 0;	/* mapped in done, with the body read */
	if (cache_fill_begin(bf->fill, clen) != 0)
		return -1;
	bf->ok = 1;
	return 0;
}

/* Move what the fill has room for; 0 when nothing is left pending. */
static int
proxy_bfetch_drain(struct proxy_bfetch *bf)
{
	size_t	room, n;

	while (bf->ok && (n = evbuffer_get_length(bf->pending)) > 0) {
		if ((room = cache_fill_room(bf->fill)) == 0)
			return -1;
		if (n > room)
			n = room;
		if (cache_fill_append_buffer(bf->fill, bf->pending, n) != 0)
			bf->ok = 0;
	}
	if (!bf->ok)
		evbuffer_drain(bf->pending, evbuffer_get_length(bf->pending));
	return 0;
}

static void
proxy_bfetch_tick_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct proxy_bfetch	*bf = arg;
	struct timeval		 tv = { 0, 5000 };

	(void)fd;
	(void)ev;
	if (proxy_bfetch_drain(bf) == 0) {
		if (bf->ur != NULL)
			upstream_req_hold(bf->ur, 0);
		if (bf->paused && bf->ur != NULL)
			upstream_req_pause(bf->ur, 0);
		bf->paused = 0;
		if (bf->done)
			proxy_bfetch_finish(bf);
		return;
	}
	if (!bf->paused && bf->ur != NULL) {
		upstream_req_pause(bf->ur, 1);
		bf->paused = 1;
	}
	evtimer_add(bf->tick, &tv);
}

static void
proxy_bfetch_data_cb(struct upstream_req *ur, struct evbuffer *buf,
    void *arg)
{
	struct proxy_bfetch	*bf = arg;

	bf->ur = ur;
	if (!bf->ok)
		return;
	if (evbuffer_get_length(bf->pending) > 0 ||
	    cache_fill_room(bf->fill) < evbuffer_get_length(buf)) {
		/* Pausing is done from the tick, outside evhttp's reading. */
		evbuffer_add_buffer(bf->pending, buf);
		upstream_req_hold(ur, 1);
		if (!evtimer_pending(bf->tick, NULL))
			event_active(bf->tick, EV_TIMEOUT, 0);
		return;
	}
	if (cache_fill_append_buffer(bf->fill, buf,
	    evbuffer_get_length(buf)) != 0)
		bf->ok = 0;
}

static void
proxy_bfetch_finish(struct proxy_bfetch *bf)
{
	struct proxy_err	e;

	if (bf->err == NULL && bf->status == 200 && bf->ok)
		cache_fill_end(bf->fill, bf->upname, bf->repo);
	else if (bf->status == 200 && bf->err != NULL)
		cache_fill_fail(bf->fill, 502, "BLOB_UNKNOWN", NULL,
		    "%s", bf->errmsg);
	else {
		proxy_map_upstream(PROXY_KIND_BLOB,
		    cache_fill_digest(bf->fill), bf->repo, bf->upname,
		    bf->status, bf->err, bf->errmsg, &e);
		cache_fill_fail(bf->fill, e.status, e.code,
		    !e.retry ? NULL : e.retry_after != NULL ? e.retry_after :
		    text_retry_after(bf->retry_after) != NULL ?
		    bf->retry_after : "60", "%s", e.msg);
	}
	proxy_bfetch_free(bf);
}

static void
proxy_bfetch_done_cb(struct upstream_req *ur, const char *err,
    struct evbuffer *body, void *arg)
{
	struct proxy_bfetch	*bf = arg;

	(void)body;
	bf->ur = NULL;
	/* The fill may end after the request is gone (disk full: pending
	 * bytes still to go in): what to tell its readers is kept. */
	if (upstream_req_retry_after(ur) != NULL)
		bf->retry_after = xstrdup(upstream_req_retry_after(ur));
	bf->err = err;
	bf->status = upstream_req_status(ur);
	snprintf(bf->errmsg, sizeof(bf->errmsg), "%s",
	    upstream_req_errmsg(ur));
	if (bf->ok && evbuffer_get_length(bf->pending) > 0) {
		bf->done = 1;	/* the tick finishes once pending is in */
		return;
	}
	proxy_bfetch_finish(bf);
}

static void
proxy_bfetch_go(struct proxy_bfetch *bf)
{
	upstream_req_start(bf->w->up, bf->up, EVHTTP_REQ_GET, bf->path,
	    bf->repo, NULL, 0, proxy_bfetch_head_cb, proxy_bfetch_data_cb,
	    proxy_bfetch_done_cb, bf);
}

/* Waited [timeouts] queue for a fill slot: the fill fails, 503. */
static void
proxy_bfetch_queue_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct proxy_bfetch	*bf = arg;

	(void)fd;
	(void)ev;
	TAILQ_REMOVE(&bf->slots->queue, bf, queue);
	bf->slots->nqueued--;
	metric_inc(METRIC_FILL_QUEUE_TIMEOUTS);
	cache_fill_fail(bf->fill, 503, "UNAVAILABLE", "5", "%u blob fetches "
	    "from upstream %s are in progress (max_fills); none came free "
	    "in %ld s", bf->slots->active, bf->upname,
	    bf->w->cfg->queue_timeout);
	proxy_bfetch_free(bf);
}

/*
 * Start the upstream fetch of a new fill — at once, or once one of the
 * upstream's max_fills slots (shared out between the workers) is free;
 * a fetch that waits longer than [timeouts] queue fails its fill (503,
 * Retry-After), and its readers with it.
 */
static void
proxy_bfetch_start(struct proxy_req *pr, struct cache_fill *fill,
    const char *client)
{
	struct proxy_bfetch	*bf;
	struct timeval		 tv = { pr->w->cfg->queue_timeout, 0 };

	bf = xcalloc(1, sizeof(*bf));
	bf->w = pr->w;
	bf->fill = fill;
	cache_fill_ref(fill, "fetch");
	bf->up = pr->up;
	bf->upname = upstream_name(pr->up);
	bf->repo = xstrdup(pr->repo);
	bf->slots = &pr->w->fills[upstream_index(pr->up)];
	bf->pending = evbuffer_new();
	bf->tick = evtimer_new(pr->w->base, proxy_bfetch_tick_cb, bf);
	cache_fill_room_watch(fill, bf->tick);
	bf->queue_ev = evtimer_new(pr->w->base, proxy_bfetch_queue_cb, bf);
	bf->start_ev = event_new(pr->w->base, -1, 0, proxy_bfetch_next_cb, bf);
	xasprintf(&bf->path, "/v2/%s/blobs/%s", pr->repo, pr->digest.str);
	snprintf(bf->client, sizeof(bf->client), "%s", client);
	if (bf->slots->active >= bf->slots->cap ||
	    !TAILQ_EMPTY(&bf->slots->queue)) {
		/* At most as many wait as may run: the rest fail at once. */
		if (bf->slots->nqueued >= bf->slots->cap) {
			cache_fill_fail(fill, 503, "UNAVAILABLE", "5",
			    "%u blob fetches from upstream %s are in progress "
			    "and %u wait (max_fills)", bf->slots->active,
			    bf->upname, bf->slots->nqueued);
			proxy_bfetch_free(bf);
			return;
		}
		TAILQ_INSERT_TAIL(&bf->slots->queue, bf, queue);
		bf->slots->nqueued++;
		evtimer_add(bf->queue_ev, &tv);
		return;
	}
	bf->slots->active++;
	bf->counted = 1;
	proxy_bfetch_go(bf);
}

/* HEAD of an uncached blob: ask upstream, download nothing. */
struct proxy_bhead {
	struct proxy_req	*pr;
	int64_t			 clen;
};

static int
proxy_bhead_head_cb(struct upstream_req *ur, int status, struct evkeyvalq *h,
    int64_t clen, void *arg)
{
	struct proxy_bhead	*bh = arg;

	(void)ur;
	(void)status;
	(void)h;
	bh->clen = clen;
	return 0;
}

static void
proxy_bhead_done_cb(struct upstream_req *ur, const char *err,
    struct evbuffer *body, void *arg)
{
	struct proxy_bhead	*bh = arg;
	struct proxy_req	*pr = bh->pr;
	struct evkeyvalq	*out;
	int			 status = upstream_req_status(ur);
	char			 clen[32];

	out = evhttp_request_get_output_headers(pr->req);
	(void)body;
	if (err != NULL || status != 200 || bh->clen < 0) {
		proxy_error_upstream(pr, status, err, upstream_req_errmsg(ur),
		    upstream_req_retry_after(ur));
	} else if (pr->w->cfg->max_blob_size > 0 &&
	    (uint64_t)bh->clen > pr->w->cfg->max_blob_size) {
		proxy_error(pr, 403, "DENIED", "blob %s is %lld bytes, more "
		    "than this mirror's max_blob_size (%llu)", pr->digest.str,
		    (long long)bh->clen,
		    (unsigned long long)pr->w->cfg->max_blob_size);
	} else {
		proxy_req_common_headers(pr);
		snprintf(clen, sizeof(clen), "%lld", (long long)bh->clen);
		evhttp_add_header(out, "Content-Length", clen);
		evhttp_add_header(out, "Content-Type",
		    "application/octet-stream");
		evhttp_add_header(out, "Docker-Content-Digest",
		    pr->digest.str);
		evhttp_add_header(out, "Accept-Ranges", "bytes");
		pr->status = 200;
		pr->src = "head";
		evhttp_send_reply(pr->req, 200, "OK", NULL);
		proxy_req_finish(pr);
	}
	free(bh);
}

/* A verified cache file: served from it (sendfile, or copies for TLS). */
static void
proxy_blob_hit(struct proxy_req *pr, int fd, uint64_t size)
{
	struct proxy_reader	*rd;

	pr->src = "hit";
	rd = proxy_reader_new(pr);
	rd->fd = fd;
	rd->size = size;
	proxy_range_parse(evhttp_find_header(
	    evhttp_request_get_input_headers(pr->req), "Range"), &rd->range);
	if (proxy_reader_headers(rd) != 0) {
		proxy_reader_unsatisfiable(rd);
		return;
	}
	if (pr->method == EVHTTP_REQ_HEAD)
		proxy_reader_end(rd, 0);
	else
		proxy_reader_pump(rd);
}

/* HEAD of an uncached blob: asked upstream, nothing fetched. */
static void
proxy_blob_head_upstream(struct proxy_req *pr)
{
	struct proxy_bhead	*bh;
	char			*path;

	if (!proxy_limit_allow(pr))
		return;
	bh = xcalloc(1, sizeof(*bh));
	bh->pr = pr;
	bh->clen = -1;
	xasprintf(&path, "/v2/%s/blobs/%s", pr->repo, pr->digest.str);
	upstream_req_start(pr->w->up, pr->up, EVHTTP_REQ_HEAD, path, pr->repo,
	    NULL, 0, proxy_bhead_head_cb, NULL, proxy_bhead_done_cb, bh);
	free(path);
}

/*
 * GET of an uncached blob: a reader of its fill, which this request
 * creates (and starts the upstream fetch of, within the client's
 * max_fills_per_client) or attaches to.
 */
static void
proxy_blob_fill(struct proxy_req *pr)
{
	struct proxy_reader	*rd;
	struct cache_fill	*fill;
	char			 key[64];
	int			 created;

	fill = cache_fill_get(pr->digest.str, upstream_name(pr->up), pr->repo,
	    &created);
	if (!created && !pr->linked &&
	    !cache_fill_started_by(fill, upstream_name(pr->up), pr->repo) &&
	    cache_blob_linked(upstream_name(pr->up), pr->repo,
	    pr->digest.str) != 0) {
		/*
		 * Another repository's fill: its bytes are this one's only
		 * once upstream says this repository holds the blob too (a
		 * private blob must not leak while it streams).
		 */
		cache_fill_unref(fill, "attach check");
		proxy_link_check(pr, proxy_blob_get);
		return;
	}
	pr->src = created ? "miss" : "attach";
	rd = proxy_reader_new(pr);
	rd->fill = fill;	/* the reference from cache_fill_get */
	proxy_range_parse(evhttp_find_header(
	    evhttp_request_get_input_headers(pr->req), "Range"), &rd->range);
	if (created) {
		if (proxy_limit_fill_take(pr, key, sizeof(key)) == 0)
			proxy_bfetch_start(pr, fill, key);
		else	/* the reader replies the fill's error */
			cache_fill_fail(fill, 503, "UNAVAILABLE", "5", "cold "
			    "blob fetches started by %s are at this mirror's "
			    "max_fills_per_client (%ld)", pr->peer,
			    pr->w->cfg->max_fills_per_client);
	}
	cache_fill_watch(fill, rd->wake);
}

/*
 * "Cache-Control: only-if-cached" (RFC 9111 5.2.1.7): answer from the
 * cache or with 504, never from upstream.  A job of a tier asks its
 * blobs' owners so through the front door to know they have landed.
 */
static int
proxy_only_if_cached(const struct proxy_req *pr)
{
	const char *cc = evhttp_find_header(
	    evhttp_request_get_input_headers(pr->req), "Cache-Control");

	return cc != NULL && strstr(cc, "only-if-cached") != NULL;
}

/*
 * A job's "X-Regmirror-Pin: UNTIL" (a Unix time, or -1: for ever) on a
 * request this mirror answers from its cache: the blob is pinned here,
 * on the member that holds it (prefetch --pin through a tier's front).
 */
static void
proxy_blob_job_pin(const struct proxy_req *pr)
{
	const char	*v = evhttp_find_header(
			    evhttp_request_get_input_headers(pr->req),
			    "X-Regmirror-Pin");
	char		*end;
	long long	 until;

	if (v == NULL || !proxy_req_is_job(pr))
		return;
	errno = 0;
	until = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || until < -1)
		return;
	if (cache_blob_pin(pr->digest.str, (int64_t)until) != 0)
		log_warnx("r%llu: cannot pin %s", (unsigned long long)pr->id,
		    pr->digest.str);
}

void
proxy_blob_get(struct proxy_req *pr)
{
	int		fd;
	uint64_t	size;

	switch (cache_blob_open(pr->digest.str, upstream_name(pr->up), &fd,
	    &size)) {
	case 0:
		if (!pr->linked && cache_blob_linked(upstream_name(pr->up),
		    pr->repo, pr->digest.str) != 0) {
			/* Cached for another repository: does this one hold
			 * it?  Upstream decides (no cross-repository leak). */
			close(fd);
			if (proxy_only_if_cached(pr))
				break;
			proxy_link_check(pr, proxy_blob_get);
			return;
		}
		proxy_blob_job_pin(pr);
		proxy_blob_hit(pr, fd, size);
		return;
	case 1:
		break;
	default:
		proxy_error(pr, 503, "UNAVAILABLE", "cache index error");
		return;
	}
	if (proxy_only_if_cached(pr)) {
		proxy_error(pr, 504, "UNAVAILABLE", "not in this mirror's "
		    "cache (only-if-cached)");
		return;
	}
	if (pr->method == EVHTTP_REQ_HEAD)
		proxy_blob_head_upstream(pr);
	else
		proxy_blob_fill(pr);
}
