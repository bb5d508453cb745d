/*
 * rbuf.c — reference-counted byte buffers (see rbuf.h).
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "common/obj.h"
#include "common/rbuf.h"
#include "common/xmalloc.h"

struct rbuf *
rbuf_take(void *data, size_t len)
{
	struct rbuf	*rb = xmalloc(sizeof(*rb));

	atomic_init(&rb->refs, 1);
	rb->len = len;
	rb->data = data;
	return rb;
}

struct rbuf *
rbuf_new(const void *data, size_t len)
{
	unsigned char	*copy = xmalloc(len > 0 ? len : 1);

	if (len > 0)
		memcpy(copy, data, len);
	return rbuf_take(copy, len);
}

struct rbuf *
rbuf_ref(struct rbuf *rb)
{
	AN(atomic_fetch_add(&rb->refs, 1) > 0);
	return rb;
}

void
rbuf_unref(struct rbuf *rb)
{
	unsigned	was;

	if (rb == NULL)
		return;
	was = atomic_fetch_sub(&rb->refs, 1);
	AN(was > 0);
	if (was > 1)
		return;
	free(rb->data);
	free(rb);
}
