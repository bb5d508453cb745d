/*
 * text.h — making bytes from the outside world safe to print.
 *
 * Client paths, upstream headers, token realms, JSON fields: any of them
 * can hold control bytes (a forged log line, a split header), invalid
 * UTF-8 (jansson refuses to encode it) or simply too much.  Everything
 * such a string reaches — a log line, an OCI error message, an admin API
 * field — goes through text_escape() first.
 */
#ifndef COMMON_TEXT_H
#define COMMON_TEXT_H

#include <stddef.h>

/*
 * Copy at most srclen bytes of src (stopping at a NUL) into dst as
 * printable ASCII: bytes below 0x20, 0x7f and every byte of 0x80 and
 * above become "\xNN", a backslash becomes "\\".  dst is always
 * NUL-terminated (dstlen > 0); an escape is never cut in half, and when
 * src does not fit the copy ends with "..." (room permitting).  Returns
 * the length written.  The result is valid UTF-8 and valid in a JSON
 * string, a header value and a log line.
 */
size_t	text_escape(char *dst, size_t dstlen, const char *src, size_t srclen);

/* The same, in place: s is rewritten into a buffer of size len. */
void	text_escape_inplace(char *s, size_t len);

/*
 * strlcpy: src copied into dst, cut to dstlen - 1 bytes, terminated
 * (dstlen 0: nothing written); returns the length written.  (A copy with
 * snprintf("%s") costs some 600 instructions; this runs per request.)
 */
size_t	text_copy(char *dst, size_t dstlen, const char *src);

/* v in decimal into dst (at least 21 bytes); returns the length. */
size_t	text_u64(char *dst, unsigned long long v);

/* 1 if s holds only bytes 0x20..0x7e (printable ASCII), else 0. */
int	text_printable(const char *s);

/*
 * A URL for a log line or an error message: the query (a presigned CDN
 * signature, a token) is cut and replaced by "?...".  Writes into dst
 * (always terminated).  Not escaped: the log and the error builder
 * escape what they write, once.
 */
size_t	text_url_for_log(char *dst, size_t dstlen, const char *url);

/*
 * A Retry-After from an upstream, if it is delta-seconds (what registries
 * send: digits, at most 9): v, else NULL (the caller uses its own).
 */
const char *text_retry_after(const char *v);

#endif
