/*
 * tokens.c — bearer tokens from a file, matched in constant time
 * (tokens.h).
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/tokens.h"
#include "common/xmalloc.h"

#define TOKENS_DIGEST	32		/* SHA-256 */

struct tokens {
	size_t		 tk_n;
	unsigned char	(*tk_digests)[TOKENS_DIGEST];
};

static int
tokens_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* A token's bytes: printable ASCII, no blank (a header can carry it). */
static int
tokens_valid(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || len > TOKEN_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/*
 * The next line of text[*pos..len), trimmed: *tok and *toklen (0 for an
 * empty line), *pos moved past it.  0 at the end of the text.
 */
static int
tokens_next_line(const char *text, size_t len, size_t *pos,
    const char **tok, size_t *toklen)
{
	const char	*s, *e, *nl;

	if (*pos >= len)
		return 0;
	s = text + *pos;
	nl = memchr(s, '\n', len - *pos);
	e = nl != NULL ? nl : text + len;
	*pos = (size_t)(e - text) + (nl != NULL ? 1 : 0);
	while (s < e && tokens_blank(*s))
		s++;
	while (e > s && tokens_blank(e[-1]))
		e--;
	*tok = s;
	*toklen = (size_t)(e - s);
	return 1;
}

static void
tokens_hash(const char *tok, size_t len, unsigned char *out)
{
	unsigned int	n = 0;

	if (EVP_Digest(tok, len, out, &n, EVP_sha256(), NULL) != 1 ||
	    n != TOKENS_DIGEST)
		abort();	/* SHA-256 of bytes in memory cannot fail */
}

int
tokens_parse(const char *text, size_t len, const char *name,
    struct tokens **out, char *err, size_t errlen)
{
	struct tokens	*t;
	const char	*tok;
	size_t		 pos = 0, toklen;
	unsigned long	 line = 0;

	*out = NULL;
	t = xcalloc(1, sizeof(*t));
	while (tokens_next_line(text, len, &pos, &tok, &toklen)) {
		line++;
		if (toklen == 0)
			continue;
		if (toklen > TOKEN_MAX) {
			snprintf(err, errlen, "%s:%lu: a token longer than %d "
			    "bytes", name, line, TOKEN_MAX);
			goto fail;
		}
		if (!tokens_valid(tok, toklen)) {
			snprintf(err, errlen, "%s:%lu: a token may only hold "
			    "printable ASCII, with no blank inside", name,
			    line);
			goto fail;
		}
		if (t->tk_n == TOKENS_MAX) {
			snprintf(err, errlen, "%s:%lu: more than %d tokens",
			    name, line, TOKENS_MAX);
			goto fail;
		}
		t->tk_digests = xreallocarray(t->tk_digests, t->tk_n + 1,
		    sizeof(*t->tk_digests));
		tokens_hash(tok, toklen, t->tk_digests[t->tk_n++]);
	}
	if (t->tk_n == 0) {
		snprintf(err, errlen, "%s: no token (one a line)", name);
		goto fail;
	}
	*out = t;
	return 0;
fail:
	tokens_free(t);
	return -1;
}

/*
 * The whole file path, at most max bytes: 0 and *buf (NUL after *len
 * bytes), or -1 and a message in err.  A regular file, or with any set
 * anything but a directory (a client's --token-file /dev/stdin); the
 * daemon reads only regular files, which cannot block it.
 */
static int
tokens_read(const char *path, size_t max, int any, char **buf, size_t *len,
    char *err, size_t errlen)
{
	struct stat	 st;
	char		*b;
	size_t		 n = 0;
	ssize_t		 r = 0;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: cannot read: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || S_ISDIR(st.st_mode) ||
	    (!any && !S_ISREG(st.st_mode))) {
		snprintf(err, errlen, "%s: cannot read: not a file", path);
		close(fd);
		return -1;
	}
	b = xmalloc(max + 1);
	while (n <= max) {
		r = read(fd, b + n, max + 1 - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	if (r == -1)
		snprintf(err, errlen, "%s: cannot read: %s", path,
		    strerror(errno));
	else if (n > max)
		snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
	close(fd);
	if (r == -1 || n > max) {
		OPENSSL_cleanse(b, n);
		free(b);
		return -1;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

int
tokens_load(const char *path, struct tokens **out, char *err, size_t errlen)
{
	char	*buf;
	size_t	 len;
	int	 rc;

	*out = NULL;
	if (tokens_read(path, TOKENS_FILE_MAX, 0, &buf, &len, err,
	    errlen) != 0)
		return -1;
	rc = tokens_parse(buf, len, path, out, err, errlen);
	OPENSSL_cleanse(buf, len);
	free(buf);
	return rc;
}

void
tokens_free(struct tokens *t)
{
	if (t == NULL)
		return;
	free(t->tk_digests);
	free(t);
}

size_t
tokens_count(const struct tokens *t)
{
	return t != NULL ? t->tk_n : 0;
}

int
tokens_match(const struct tokens *t, const char *tok, size_t len)
{
	unsigned char	d[TOKENS_DIGEST];
	size_t		i;
	int		hit = 0;

	/* Leaves early only on what the caller sent, never on a token. */
	if (t == NULL || tok == NULL || !tokens_valid(tok, len))
		return 0;
	tokens_hash(tok, len, d);
	for (i = 0; i < t->tk_n; i++)
		hit |= CRYPTO_memcmp(d, t->tk_digests[i], sizeof(d)) == 0;
	OPENSSL_cleanse(d, sizeof(d));
	return hit;
}

const char *
tokens_bearer(const char *value, size_t *len)
{
	const char	*s, *e;

	if (value == NULL || strncasecmp(value, "Bearer", 6) != 0 ||
	    (value[6] != ' ' && value[6] != '\t'))
		return NULL;
	for (s = value + 6; *s == ' ' || *s == '\t'; s++)
		;
	for (e = s + strlen(s); e > s && tokens_blank(e[-1]); e--)
		;
	if (!tokens_valid(s, (size_t)(e - s)))
		return NULL;
	*len = (size_t)(e - s);
	return s;
}

char *
tokens_first(const char *text, size_t len, const char *name, char *err,
    size_t errlen)
{
	const char	*tok = NULL;
	size_t		 pos = 0, toklen = 0;

	while (tokens_next_line(text, len, &pos, &tok, &toklen))
		if (toklen > 0)
			break;
	if (toklen == 0) {
		snprintf(err, errlen, "%s: no token", name);
		return NULL;
	}
	if (!tokens_valid(tok, toklen)) {
		snprintf(err, errlen, "%s: a token is at most %d bytes of "
		    "printable ASCII with no blank inside", name, TOKEN_MAX);
		return NULL;
	}
	return xstrndup(tok, toklen);
}

char *
tokens_first_file(const char *path, char *err, size_t errlen)
{
	char	*buf, *out;
	size_t	 len;

	if (tokens_read(path, TOKENS_FILE_MAX, 1, &buf, &len, err,
	    errlen) != 0)
		return NULL;
	out = tokens_first(buf, len, path, err, errlen);
	OPENSSL_cleanse(buf, len);
	free(buf);
	return out;
}
