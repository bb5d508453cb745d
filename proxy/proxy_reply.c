/*
 * proxy_reply.c — replies built in memory: OCI error JSON
 * ({"errors":[{"code":...,"message":...,"detail":...}]}), small bodies
 * and shared buffers; the one place that maps upstream failures to
 * client statuses; and the end of every request (the headers every reply
 * carries, the access log line, the counters).
 *
 * It depends on nothing else in proxy/: a request that others wait on
 * (a manifest flight's leader) sets pr->on_reply, which is told of the
 * reply before it is sent.
 *
 * Never a 500 for what a client or an upstream did: upstream trouble is a
 * 502/503/504 naming the upstream and the cause, 429 stays 429.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "access/access.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/obj.h"
#include "common/rbuf.h"
#include "common/text.h"
#include "common/xmalloc.h"
#include "proxy/proxy_int.h"
#include "upstream/upstream.h"

/* Replies up to this size leave a TLS connection as one record. */
#define PROXY_TLS_COALESCE_MAX	(16 * 1024)
/* Replies up to this size on plain HTTP are written in the callback that
 * made them (proxy_reply_write_now); a bigger one waits for EPOLLOUT. */
#define PROXY_WRITE_NOW_MAX	(256 * 1024)

/*
 * The IMF-fixdate of now (RFC 9110 5.6.7), formatted once a second per
 * thread.  The names are spelled out: strftime's follow the locale.
 */
static const char *
proxy_http_date(void)
{
	static const char	 days[7][4] = { "Sun", "Mon", "Tue", "Wed",
				    "Thu", "Fri", "Sat" };
	static const char	 months[12][4] = { "Jan", "Feb", "Mar", "Apr",
				    "May", "Jun", "Jul", "Aug", "Sep", "Oct",
				    "Nov", "Dec" };
	static _Thread_local time_t	last = -1;
	static _Thread_local char	date[40];
	struct tm		 tm;
	time_t			 now = time(NULL);

	if (now != last && gmtime_r(&now, &tm) != NULL) {
		snprintf(date, sizeof(date),
		    "%s, %02d %s %04d %02d:%02d:%02d GMT",
		    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
		    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
		last = now;
	}
	return date;
}

void
proxy_req_common_headers(struct proxy_req *pr)
{
	struct evkeyvalq	*out;

	out = evhttp_request_get_output_headers(pr->req);
	if (evhttp_find_header(out,
	    "Docker-Distribution-API-Version") == NULL) {
		evhttp_add_header(out, "Docker-Distribution-API-Version",
		    "registry/2.0");
		/* No browser may take a body for anything but its type. */
		evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
		/* Ours, so evhttp does not format one per reply (gmtime and
		 * a printf: 5% of a cached manifest's instructions). */
		evhttp_add_header(out, "Date", proxy_http_date());
	}
}

/* The request's counters (common/metrics.h). */
static void
proxy_req_count(const struct proxy_req *pr)
{
	const char	*src = pr->src != NULL ? pr->src : "";
	int		 blob = pr->kind == PROXY_KIND_BLOB;

	metric_inc(METRIC_HTTP_REQUESTS);
	metric_add(METRIC_HTTP_BYTES, pr->bytes);
	metric_request(blob ? METRIC_KIND_BLOB : pr->kind ==
	    PROXY_KIND_MANIFEST ? METRIC_KIND_MANIFEST : METRIC_KIND_OTHER,
	    pr->src, pr->bytes);
	if (pr->status == 499)
		metric_inc(METRIC_HTTP_ABORTED);
	else if (pr->status >= 500)
		metric_inc(METRIC_HTTP_5XX);
	else if (pr->status >= 400)
		metric_inc(METRIC_HTTP_4XX);
	else if (pr->status >= 200 && pr->status < 300)
		metric_inc(METRIC_HTTP_2XX);
	if (pr->status < 200 || pr->status >= 400)
		return;
	if (strcmp(src, "hit") == 0)
		metric_inc(blob ? METRIC_BLOB_HITS : METRIC_MANIFEST_HITS);
	else if (strcmp(src, "miss") == 0)
		metric_inc(blob ? METRIC_BLOB_MISSES : METRIC_MANIFEST_MISSES);
	else if (strcmp(src, "attach") == 0)
		metric_inc(METRIC_BLOB_ATTACHES);
	else if (strcmp(src, "revalidated") == 0)
		metric_inc(METRIC_MANIFEST_REVALIDATED);
	else if (strcmp(src, "stale") == 0)
		metric_inc(METRIC_MANIFEST_STALE);
}

static const char *const proxy_kind_names[] = {
	[PROXY_KIND_BASE] = "base",
	[PROXY_KIND_MANIFEST] = "manifest",
	[PROXY_KIND_BLOB] = "blob",
	[PROXY_KIND_TAGS] = "tags",
	[PROXY_KIND_REFERRERS] = "referrers",
	[PROXY_KIND_CATALOG] = "catalog",
};

static const char *const proxy_how_names[] = {
	[ACCESS_ANONYMOUS] = "anonymous",
	[ACCESS_PASSWORD] = "password",
	[ACCESS_TOKEN] = "token",
	[ACCESS_CERT] = "cert",
};

static const char *
proxy_method_name(enum evhttp_cmd_type m)
{
	return m == EVHTTP_REQ_HEAD ? "HEAD" : m == EVHTTP_REQ_GET ? "GET" :
	    "OTHER";
}

/*
 * [server] access_log = json: the access line as one JSON object, built
 * by jansson.  What a client sent (the path, a user name) is escaped to
 * printable ASCII first (jansson refuses invalid UTF-8), within bounds
 * that keep the line under LOG_LINE_MAX.
 */
static void
proxy_req_log_json(const struct proxy_req *pr, long ms)
{
	char	 path[2048], user[4 * sizeof(pr->user)], when[32], id[32];
	char	*s;
	json_t	*j;

	text_escape(path, sizeof(path), pr->uri, strlen(pr->uri));
	text_escape(user, sizeof(user), pr->user, strlen(pr->user));
	log_timestamp(when, sizeof(when));
	snprintf(id, sizeof(id), "r%llu", (unsigned long long)pr->id);
	j = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s,s:s?,s:s,s:s,s:s,s:s?,"
	    "s:s?,s:s,s:s?,s:s,s:i,s:I,s:I,s:b}", "time", when,
	    "request_id", id,
	    "client", pr->client[0] != '\0' ? pr->client : pr->peer,
	    "peer", pr->peer,
	    "user", pr->user[0] != '\0' ? user : NULL,
	    "auth", (size_t)pr->how < sizeof(proxy_how_names) /
	    sizeof(proxy_how_names[0]) ? proxy_how_names[pr->how] : "?",
	    "rule", pr->rule != NULL && strcmp(pr->rule, "-") != 0 ?
	    pr->rule : NULL,
	    "method", proxy_method_name(pr->method),
	    "path", path,
	    "route", (size_t)pr->kind < sizeof(proxy_kind_names) /
	    sizeof(proxy_kind_names[0]) ? proxy_kind_names[pr->kind] : "?",
	    "upstream", pr->up != NULL ? upstream_name(pr->up) : NULL,
	    "repository", pr->repo,
	    "cache", metric_src_result(pr->src),
	    "src", pr->src != NULL && strcmp(pr->src, "-") != 0 ? pr->src :
	    NULL,
	    "source", metric_src_source(pr->src),
	    "status", pr->status,
	    "bytes", (json_int_t)pr->bytes,
	    "duration_ms", (json_int_t)ms,
	    "tls", pr->tls);
	if (j == NULL || (s = json_dumps(j, JSON_COMPACT)) == NULL) {
		log_warnx("access %s: the JSON access line could not be made",
		    id);
		json_decref(j);
		return;
	}
	log_line(LOG_LEVEL_INFO, s, strlen(s));
	free(s);
	json_decref(j);
}

/* The access log line, then free.  The evhttp request is not touched. */
void
proxy_req_finish(struct proxy_req *pr)
{
	struct timespec	now;
	long		ms;

	CHECK_OBJ_NOTNULL(pr, PROXY_REQ_MAGIC);
	AZ(pr->done);
	pr->done = 1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	proxy_req_count(pr);
	ms = (now.tv_sec - pr->start.tv_sec) * 1000 +
	    (now.tv_nsec - pr->start.tv_nsec) / 1000000;
	if (pr->w->cfg->access_log != NULL &&
	    strcmp(pr->w->cfg->access_log, "json") == 0)
		proxy_req_log_json(pr, ms);
	else
		log_info("access r%llu %s \"%s %s\" %d %llu %ldms user=%s%s "
		    "rule=%s up=%s src=%s", (unsigned long long)pr->id,
		    pr->client[0] != '\0' ? pr->client : pr->peer,
		    proxy_method_name(pr->method), pr->uri, pr->status,
		    (unsigned long long)pr->bytes, ms, pr->user_how != NULL &&
		    pr->user[0] != '\0' ? pr->user_how : "",
		    pr->user[0] != '\0' ? pr->user : "-",
		    pr->rule != NULL ? pr->rule : "-",
		    pr->up != NULL ? upstream_name(pr->up) : "-",
		    pr->src != NULL ? pr->src : "-");
	free(pr->uri);
	free(pr->repo);
	free(pr->ref);
	free(pr->query);
	pr->magic = 0;
	free(pr);
}

static void
proxy_rbuf_cleanup(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	rbuf_unref(arg);
}

/* Queue rb's bytes on buf by reference (no copy). */
void
proxy_evbuffer_add_rbuf(struct evbuffer *buf, struct rbuf *rb)
{
	if (rb->len == 0)
		return;
	if (evbuffer_add_reference(buf, rb->data, rb->len,
	    proxy_rbuf_cleanup, rbuf_ref(rb)) != 0) {
		rbuf_unref(rb);
		fatalx("evbuffer_add_reference failed");
	}
}

/*
 * A small reply over TLS leaves as one record and one write, not two:
 * evhttp puts the head and the body in separate chains of the
 * connection's output, and bufferevent_openssl makes an SSL_write (a
 * record, a write(2)) of each.  The output of pr's TLS connection, or
 * NULL (plain HTTP, where one writev(2) sends every chain, or no
 * connection any more); taken before evhttp_send_reply, which may free
 * the request.
 */
static struct evbuffer *
proxy_reply_tls_output(const struct proxy_req *pr)
{
	struct evhttp_connection	*evcon;

	if (!pr->tls ||
	    (evcon = evhttp_request_get_connection(pr->req)) == NULL)
		return NULL;
	return bufferevent_get_output(evhttp_connection_get_bufferevent(evcon));
}

/* The reply is queued, not yet written (bufferevent_openssl writes when
 * the socket is writable): make what is small one chain. */
static void
proxy_reply_coalesce(struct evbuffer *out)
{
	size_t	len = evbuffer_get_length(out);

	if (len > 0 && len <= PROXY_TLS_COALESCE_MAX)
		(void)evbuffer_pullup(out, (ev_ssize_t)len);
}

/*
 * A small reply on plain HTTP is written at once, in the callback that
 * made it.  Left to evhttp, the bufferevent would arm EPOLLOUT, wait a
 * loop turn for epoll to say the socket is writable, write, and disarm
 * it: two epoll_ctl(2) and an epoll_wait(2) a request that nginx, which
 * writes first, does not make.  What the socket takes now is gone; evhttp
 * is then told the output drained (a deferred write callback, so it
 * finishes the request after this callback returns and its EPOLLOUT,
 * still in the changelist, is cancelled before it reaches the kernel).
 * A partial write or an error is left to the bufferevent, as before.
 * The bufferevent of pr's plain connection, or NULL (TLS, or no
 * connection any more); taken before evhttp_send_reply, which may free
 * the request.
 */
static struct bufferevent *
proxy_reply_plain_bev(const struct proxy_req *pr)
{
	struct evhttp_connection	*evcon;

	if (pr->tls ||
	    (evcon = evhttp_request_get_connection(pr->req)) == NULL)
		return NULL;
	return evhttp_connection_get_bufferevent(evcon);
}

static void
proxy_reply_write_now(struct bufferevent *bev)
{
	struct evbuffer	*out = bufferevent_get_output(bev);
	evutil_socket_t	 fd = bufferevent_getfd(bev);
	size_t		 len = evbuffer_get_length(out);

	if (fd < 0 || len == 0 || len > PROXY_WRITE_NOW_MAX ||
	    evbuffer_write(out, fd) <= 0 || evbuffer_get_length(out) != 0)
		return;
	bufferevent_trigger(bev, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
}

/*
 * A whole reply from one shared buffer: every client it goes to (the
 * waiters of a single-flight too) is sent rb by reference.
 */
void
proxy_reply_rbuf(struct proxy_req *pr, int status, const char *ctype,
    struct rbuf *rb)
{
	struct evkeyvalq	*out;
	struct evbuffer		*buf, *tls_out = NULL;
	struct bufferevent	*now;
	proxy_reply_hook	 hook;
	char			 clen[32];

	CHECK_OBJ_NOTNULL(pr, PROXY_REQ_MAGIC);
	if ((hook = pr->on_reply) != NULL) {
		pr->on_reply = NULL;
		hook(pr, status, ctype, rb);
	}
	out = evhttp_request_get_output_headers(pr->req);
	proxy_req_common_headers(pr);
	if (ctype != NULL)
		evhttp_add_header(out, "Content-Type", ctype);
	pr->status = status;
	/* evhttp sends no body and no length for HEAD: say it; for a GET
	 * it would format one with a printf. */
	if (status >= 200 && status != 204 && status != 304) {
		text_u64(clen, rb->len);
		evhttp_add_header(out, "Content-Length", clen);
	}
	now = proxy_reply_plain_bev(pr);
	if (pr->method == EVHTTP_REQ_HEAD)
		evhttp_send_reply(pr->req, status, NULL, NULL);
	else {
		buf = evbuffer_new();
		proxy_evbuffer_add_rbuf(buf, rb);
		tls_out = proxy_reply_tls_output(pr);
		evhttp_send_reply(pr->req, status, NULL, buf);
		evbuffer_free(buf);
		pr->bytes = rb->len;
	}
	if (tls_out != NULL)
		proxy_reply_coalesce(tls_out);
	if (now != NULL)
		proxy_reply_write_now(now);
	proxy_req_finish(pr);
}

void
proxy_reply_buf(struct proxy_req *pr, int status, const char *ctype,
    const void *data, size_t len)
{
	struct rbuf	*rb = rbuf_new(data, len);

	proxy_reply_rbuf(pr, status, ctype, rb);
	rbuf_unref(rb);
}

/*
 * The OCI error body for code and msg, malloc'd.  msg may hold anything
 * a client or an upstream sent (a name, a Location, a realm): it is
 * escaped to printable ASCII first, so encoding cannot fail on it; if
 * jansson still fails (memory), a fixed body says so.  Never NULL.
 */
char *
proxy_error_body(const char *code, const char *msg)
{
	char	 safe[PROXY_ERROR_MSG_MAX];
	char	*body;
	json_t	*root;

	text_escape(safe, sizeof(safe), msg, strlen(msg));
	root = json_pack("{s:[{s:s,s:s,s:n}]}", "errors", "code", code,
	    "message", safe, "detail");
	body = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	if (body == NULL)
		body = xstrdup("{\"errors\":[{\"code\":\"UNKNOWN\","
		    "\"message\":\"the error could not be encoded\","
		    "\"detail\":null}]}");
	return body;
}

static void
proxy_error_v(struct proxy_req *pr, int status, const char *code,
    const char *fmt, va_list ap)
{
	char	 msg[PROXY_ERROR_MSG_MAX];
	char	*body;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	body = proxy_error_body(code, msg);
	if (status >= 500)
		log_info("r%llu: %d %s: %s", (unsigned long long)pr->id,
		    status, code, msg);
	proxy_reply_buf(pr, status, "application/json", body, strlen(body));
	free(body);
}

void
proxy_error(struct proxy_req *pr, int status, const char *code,
    const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	proxy_error_v(pr, status, code, fmt, ap);
	va_end(ap);
}

void
proxy_map_upstream(enum proxy_kind kind, const char *ref, const char *repo,
    const char *upname, int ustatus, const char *err, const char *errmsg,
    struct proxy_err *out)
{
	out->retry = 0;
	out->retry_after = NULL;
	if (err == upstream_err_busy) {
		/* Ours, not the upstream's: come back in a moment. */
		out->status = 503;
		out->code = "UNAVAILABLE";
		out->retry = 1;
		out->retry_after = "5";
		snprintf(out->msg, sizeof(out->msg), "%s", errmsg);
		return;
	}
	if (err == upstream_err_timeout) {
		out->status = 504;
		out->code = "UNAVAILABLE";
		snprintf(out->msg, sizeof(out->msg), "%s", errmsg);
		return;
	}
	if (err != NULL && (err != upstream_err_auth || ustatus != 401)) {
		out->status = 502;
		out->code = "UNAVAILABLE";
		snprintf(out->msg, sizeof(out->msg), "%s", errmsg);
		return;
	}
	switch (ustatus) {
	case 404:
		out->status = 404;
		out->code = kind == PROXY_KIND_MANIFEST ? "MANIFEST_UNKNOWN" :
		    kind == PROXY_KIND_BLOB ? "BLOB_UNKNOWN" : "NAME_UNKNOWN";
		snprintf(out->msg, sizeof(out->msg),
		    "%s %s not found at upstream %s",
		    kind == PROXY_KIND_BLOB ? "blob" : "manifest",
		    ref != NULL ? ref : repo, upname);
		return;
	case 401:
	case 403:
		out->status = 403;
		out->code = "DENIED";
		if (err == upstream_err_auth && errmsg != NULL &&
		    errmsg[0] != '\0') {
			snprintf(out->msg, sizeof(out->msg), "%s", errmsg);
			return;
		}
		snprintf(out->msg, sizeof(out->msg),
		    "upstream %s denied access to %s (status %d): check the "
		    "mirror's credentials for it", upname, repo, ustatus);
		return;
	case 429:
		out->status = 429;
		out->code = "TOOMANYREQUESTS";
		out->retry = 1;
		snprintf(out->msg, sizeof(out->msg),
		    "upstream %s is rate-limiting the mirror", upname);
		return;
	default:
		out->status = 502;
		out->code = "UNAVAILABLE";
		snprintf(out->msg, sizeof(out->msg),
		    ustatus >= 500 ? "upstream %s answered %d" :
		    "upstream %s answered unexpected status %d", upname,
		    ustatus);
		return;
	}
}

/*
 * Ours when the mapping chose one (a busy slot: come back in 5 s), else
 * the upstream's when it is delta-seconds (an HTTP-date or junk is not
 * passed on), else a minute.
 */
const char *
proxy_error_retry_after(const struct proxy_err *e, const char *upstream)
{
	if (!e->retry)
		return NULL;
	if (e->retry_after != NULL)
		return e->retry_after;
	return text_retry_after(upstream) != NULL ? upstream : "60";
}

void
proxy_error_upstream(struct proxy_req *pr, int ustatus, const char *err,
    const char *errmsg, const char *retry_after)
{
	struct proxy_err	 e;
	const char		*ra;

	proxy_map_upstream(pr->kind, pr->ref, pr->repo, upstream_name(pr->up),
	    ustatus, err, errmsg, &e);
	if ((ra = proxy_error_retry_after(&e, retry_after)) != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(pr->req),
		    "Retry-After", ra);
	proxy_error(pr, e.status, e.code, "%s", e.msg);
}
