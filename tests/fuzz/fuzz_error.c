/*
 * fuzz_error.c — libFuzzer entry point for what carries outside bytes out
 * again: the OCI error body (proxy_error_body in proxy/proxy_reply.c),
 * the log line (log_vformat in common/log.c) and the escaping under both
 * (text_escape, text_url_for_log in common/text.c).
 *
 * The input's first byte picks an error code, a buffer size and errno;
 * the rest, NUL-terminated, is the message (a name, a Location, a realm,
 * an upstream's error text).  The error body must parse as JSON with
 * errors[0].code the code and a message of printable ASCII; text_escape's
 * output must be printable ASCII within its buffer, and decode back to
 * the input (or to a prefix of it followed by "...", no escape cut in
 * half); a log line must end in its only newline with no other byte
 * below 0x20 or above 0x7e; text_url_for_log keeps the URL up to its
 * query and never more than its buffer.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/obj.h"
#include "common/text.h"
#include "common/xmalloc.h"
#include "proxy/proxy_int.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
fuzz_error_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Undo text_escape() on e (len bytes) into out; -1 if e is not something
 * text_escape() writes (a lone or half backslash escape, a raw byte
 * outside printable ASCII).  Returns the decoded length.
 */
static long
fuzz_error_unescape(const char *e, size_t len, char *out)
{
	size_t	i, n = 0;
	int	hi, lo;

	for (i = 0; i < len; i++) {
		if ((unsigned char)e[i] < 0x20 || (unsigned char)e[i] >= 0x7f)
			return -1;
		if (e[i] != '\\') {
			out[n++] = e[i];
			continue;
		}
		if (i + 1 < len && e[i + 1] == '\\') {
			out[n++] = '\\';
			i++;
			continue;
		}
		if (i + 3 >= len || e[i + 1] != 'x' ||
		    (hi = fuzz_error_hex(e[i + 2])) < 0 ||
		    (lo = fuzz_error_hex(e[i + 3])) < 0)
			return -1;
		out[n++] = (char)(hi << 4 | lo);
		i += 3;
	}
	return (long)n;
}

static void
fuzz_error_escape(const char *msg, size_t dstlen)
{
	char	*dst, *back;
	size_t	 n, srclen = strlen(msg);
	long	 m;

	dst = xmalloc(dstlen);
	memset(dst, 'Z', dstlen);
	n = text_escape(dst, dstlen, msg, srclen);
	if (dstlen == 0) {
		AZ(n);
		free(dst);
		return;
	}
	AN(n < dstlen);
	AN(dst[n] == '\0' && strlen(dst) == n);
	AN(text_printable(dst));
	back = xmalloc(n + 1);
	m = fuzz_error_unescape(dst, n, back);
	if (m < 0 || (size_t)m != srclen || memcmp(back, msg, srclen) != 0) {
		/* Cut: whole escapes of a proper prefix, then "..." if
		 * there is room for it. */
		if (dstlen <= 3) {
			AZ(n);
			free(back);
			free(dst);
			return;
		}
		AN(n >= 3 && memcmp(dst + n - 3, "...", 3) == 0);
		m = fuzz_error_unescape(dst, n - 3, back);
		AN(m >= 0 && (size_t)m < srclen);
		AZ(memcmp(back, msg, (size_t)m));
	}
	/* Four bytes per input byte always fit. */
	if (dstlen > 4 * srclen)
		AN((size_t)m == srclen);
	free(back);
	free(dst);
}

static void
fuzz_error_url(const char *url, size_t dstlen)
{
	char		*dst;
	const char	*q = strchr(url, '?');
	size_t		 n, keep = q != NULL ? (size_t)(q - url) : strlen(url);

	dst = xmalloc(dstlen + 1);
	n = text_url_for_log(dst, dstlen, url);
	if (dstlen == 0) {
		AZ(n);
		free(dst);
		return;
	}
	AN(n < dstlen && strlen(dst) == n);
	if (n <= keep)
		AZ(strncmp(dst, url, n));
	else {
		AN(q != NULL && n == keep + 4);
		AZ(strncmp(dst, url, keep));
		AZ(strcmp(dst + keep, "?..."));
	}
	free(dst);
}

static size_t
fuzz_error_log(char *line, enum log_level level, int with_errno, int err,
    const char *fmt, ...)
{
	va_list	ap;
	size_t	n;

	va_start(ap, fmt);
	n = log_vformat(line, level, with_errno, err, fmt, ap);
	va_end(ap);
	return n;
}

static void
fuzz_error_body(const char *code, const char *msg)
{
	json_t		*root, *e;
	json_error_t	 jerr;
	const char	*m;
	char		*body;

	body = proxy_error_body(code, msg);
	AN(body != NULL);
	root = json_loads(body, 0, &jerr);
	AN(root != NULL);
	e = json_array_get(json_object_get(root, "errors"), 0);
	AN(json_is_object(e));
	AZ(strcmp(json_string_value(json_object_get(e, "code")), code));
	m = json_string_value(json_object_get(e, "message"));
	AN(m != NULL && text_printable(m));
	AN(strlen(m) < PROXY_ERROR_MSG_MAX);
	AN(json_is_null(json_object_get(e, "detail")));
	json_decref(root);
	free(body);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const codes[] = { "BLOB_UNKNOWN",
	    "MANIFEST_UNKNOWN", "NAME_INVALID", "NAME_UNKNOWN", "UNSUPPORTED",
	    "UNAUTHORIZED", "DENIED", "TOOMANYREQUESTS", "UNAVAILABLE" };
	static const enum log_level levels[] = { LOG_LEVEL_ERROR,
	    LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };
	char		*msg, *line;
	size_t		 n, i, dstlen;
	unsigned	 sel;

	if (size == 0)
		return 0;
	sel = data[0];
	msg = xmalloc(size);
	memcpy(msg, data + 1, size - 1);
	msg[size - 1] = '\0';

	fuzz_error_body(codes[sel % (sizeof(codes) / sizeof(codes[0]))], msg);

	dstlen = sel < 0x80 ? sel % 24 : (size_t)sel * 4;
	fuzz_error_escape(msg, dstlen);
	fuzz_error_escape(msg, PROXY_ERROR_MSG_MAX);
	fuzz_error_url(msg, dstlen);
	fuzz_error_url(msg, 256);

	line = xmalloc(LOG_LINE_MAX);
	n = fuzz_error_log(line, levels[sel % 4], sel & 4, (int)sel % 140,
	    "r%u: %s", sel, msg);
	AN(n >= 2 && n <= LOG_LINE_MAX);
	AN(line[n - 1] == '\n');
	for (i = 0; i < n - 1; i++)
		AN((unsigned char)line[i] >= 0x20 &&
		    (unsigned char)line[i] < 0x7f);
	free(line);
	free(msg);
	return 0;
}
