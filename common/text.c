/*
 * text.c — escaping outside bytes for logs, error messages and JSON (see
 * text.h for the rules).  Depends on nothing.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "common/text.h"
#include "common/xmalloc.h"

static const char text_hex[] = "0123456789abcdef";

/*
 * src did not fit: keep the longest run of whole escapes in dst[0..n)
 * that leaves room for "..." and the NUL, then the "..." if it fits.  A
 * byte-wise cut could leave "\x4..." or a lone "\" that reads as an
 * escaped '.'.
 */
static size_t
text_escape_cut(char *dst, size_t n, size_t dstlen)
{
	size_t	j = 0, unit;

	while (j < n) {
		unit = dst[j] != '\\' ? 1 : dst[j + 1] == '\\' ? 2 : 4;
		if (j + unit + 3 >= dstlen)
			break;
		j += unit;
	}
	if (j + 3 < dstlen) {
		memcpy(dst + j, "...", 3);
		j += 3;
	}
	return j;
}

size_t
text_escape(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t		 n = 0, i, need;
	unsigned char	 c;

	if (dstlen == 0)
		return 0;
	for (i = 0; i < srclen && src[i] != '\0'; i++) {
		c = (unsigned char)src[i];
		need = c == '\\' ? 2 : c < 0x20 || c >= 0x7f ? 4 : 1;
		if (n + need >= dstlen) {
			n = text_escape_cut(dst, n, dstlen);
			break;
		}
		if (c == '\\') {
			dst[n++] = '\\';
			dst[n++] = '\\';
		} else if (need == 4) {
			dst[n++] = '\\';
			dst[n++] = 'x';
			dst[n++] = text_hex[c >> 4];
			dst[n++] = text_hex[c & 15];
		} else
			dst[n++] = (char)c;
	}
	dst[n] = '\0';
	return n;
}

void
text_escape_inplace(char *s, size_t len)
{
	char	*tmp;
	size_t	 n;

	if (len == 0)
		return;
	n = strnlen(s, len - 1);
	tmp = xstrndup(s, n);
	text_escape(s, len, tmp, n);
	free(tmp);
}

int
text_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

size_t
text_url_for_log(char *dst, size_t dstlen, const char *url)
{
	const char	*q = strchr(url, '?');
	size_t		 n = q != NULL ? (size_t)(q - url) : strlen(url);

	if (dstlen == 0)
		return 0;
	if (n > dstlen - 1)
		n = dstlen - 1;
	memcpy(dst, url, n);
	dst[n] = '\0';
	if (q != NULL && n + 4 < dstlen) {
		memcpy(dst + n, "?...", 5);
		n += 4;
	}
	return n;
}

const char *
text_retry_after(const char *v)
{
	size_t	n;

	if (v == NULL)
		return NULL;
	n = strlen(v);
	return n >= 1 && n <= 9 && strspn(v, "0123456789") == n ? v : NULL;
}
