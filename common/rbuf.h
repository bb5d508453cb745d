/*
 * rbuf.h — reference-counted immutable byte buffers.
 *
 * A cached manifest or tag list is sent to every client that asks from
 * one copy in memory (proxy/ hands it to libevent by reference), so that
 * N slow clients of a 4 MiB manifest hold 4 MiB, not N times that.  The
 * bytes never change once made; references may be taken and dropped from
 * any thread.
 */
#ifndef COMMON_RBUF_H
#define COMMON_RBUF_H

#include <stdatomic.h>
#include <stddef.h>

struct rbuf {
	_Atomic unsigned	 refs;
	size_t			 len;
	unsigned char		*data;
};

/* A new buffer holding a copy of len bytes (one reference). */
struct rbuf	*rbuf_new(const void *data, size_t len);
/* A new buffer taking data (malloc'd; freed with the buffer). */
struct rbuf	*rbuf_take(void *data, size_t len);
/* Take one more reference; returns rb. */
struct rbuf	*rbuf_ref(struct rbuf *rb);
/* Drop a reference; the last one frees the buffer.  NULL is fine. */
void		 rbuf_unref(struct rbuf *rb);

#endif
