/*
 * text.c — escaping outside bytes for logs, error messages and JSON (see
 * text.h for the rules).  Depends on nothing, not even xmalloc: the log
 * escapes through it and xmalloc dies through the log, so text is the
 * bottom of the three (log -> text, xmalloc -> log).
 */
#include "autoconf.h"

#include <string.h>

#include "common/text.h"

static const char text_hex[] = "0123456789abcdef";

/* Bytes c takes escaped: 1, 2 ("\\") or 4 ("\xNN"). */
static size_t
text_escape_unit(unsigned char c)
{
	return c == '\\' ? 2 : c < 0x20 || c >= 0x7f ? 4 : 1;
}

/* Write c's escape, unit bytes (text_escape_unit), at dst. */
static void
text_escape_put(char *dst, unsigned char c, size_t unit)
{
	if (unit == 2) {
		dst[0] = '\\';
		dst[1] = '\\';
	} else if (unit == 4) {
		dst[0] = '\\';
		dst[1] = 'x';
		dst[2] = text_hex[c >> 4];
		dst[3] = text_hex[c & 15];
	} else
		dst[0] = (char)c;
}

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
		need = text_escape_unit(c);
		if (n + need >= dstlen) {
			n = text_escape_cut(dst, n, dstlen);
			break;
		}
		text_escape_put(dst + n, c, need);
		n += need;
	}
	dst[n] = '\0';
	return n;
}

/*
 * Escaping only lengthens, so it is done from the end, with no copy:
 * first how many bytes fit (text_escape's rule, cut included: whole
 * escapes, then "..." if there is room), then each byte's escape is
 * written backwards, where it lands at or after the byte itself, which
 * has been read by then.
 */
void
text_escape_inplace(char *s, size_t len)
{
	unsigned char	c;
	size_t		n, k, out = 0, end, unit;

	if (len == 0)
		return;
	n = strnlen(s, len - 1);
	for (k = 0; k < n; k++) {
		unit = text_escape_unit((unsigned char)s[k]);
		if (out + unit >= len)
			break;
		out += unit;
	}
	end = out;
	if (k < n) {
		while (k > 0 && out + 3 >= len)
			out -= text_escape_unit((unsigned char)s[--k]);
		end = out;
		if (out + 3 < len) {
			memcpy(s + out, "...", 3);
			end = out + 3;
		}
	}
	s[end] = '\0';
	while (k > 0) {
		c = (unsigned char)s[--k];
		unit = text_escape_unit(c);
		out -= unit;
		text_escape_put(s + out, c, unit);
	}
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

size_t
text_copy(char *dst, size_t dstlen, const char *src)
{
	size_t	n;

	if (dstlen == 0)
		return 0;
	n = strnlen(src, dstlen - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
	return n;
}

size_t
text_u64(char *dst, unsigned long long v)
{
	char	tmp[20];
	size_t	n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		dst[i] = tmp[n - 1 - i];
	dst[n] = '\0';
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
