/*
 * tokens.h — bearer tokens read from a file ([server] admin_token_file,
 * events_token_file) and matched in constant time; the token of an
 * Authorization header; the first token of a file, for clients.
 *
 * A file holds one token a line.  Each line is trimmed of blanks (space,
 * tab, CR) at both ends and empty lines are skipped; a token is at most
 * TOKEN_MAX bytes of printable ASCII with no blank inside (anything else
 * is refused with the line's number, never its text), and a file holds
 * at most TOKENS_MAX of them.  Only the SHA-256 of each token is kept:
 * tokens_match() hashes the candidate and compares it with every stored
 * digest (CRYPTO_memcmp, no early exit), so neither which token nor how
 * much of one matched shows in the time it takes.
 */
#ifndef COMMON_TOKENS_H
#define COMMON_TOKENS_H

#include <stddef.h>

#define TOKENS_MAX	1000
#define TOKEN_MAX	4096
/* The largest token file read: every token at its longest, with CRLF. */
#define TOKENS_FILE_MAX	((size_t)TOKENS_MAX * (TOKEN_MAX + 2) + 65536)

struct tokens;

/*
 * The tokens of text (len bytes, not NUL-terminated); name is the file's
 * name in errors.  0 and *out (free with tokens_free), or -1 and a message
 * in err ("NAME:LINE: ...", or "NAME: no token" for a file with none).
 */
int		 tokens_parse(const char *text, size_t len, const char *name,
		    struct tokens **out, char *err, size_t errlen);
/* The same, read from the regular file path (at most TOKENS_FILE_MAX
 * bytes; the bytes read are wiped once parsed). */
int		 tokens_load(const char *path, struct tokens **out, char *err,
		    size_t errlen);
void		 tokens_free(struct tokens *);
size_t		 tokens_count(const struct tokens *);
/* 1 when tok (len bytes) is one of t's tokens, else 0; t may be NULL. */
int		 tokens_match(const struct tokens *t, const char *tok,
		    size_t len);

/*
 * The token of an Authorization header value "Bearer TOKEN" (the scheme
 * in any case, blanks around the token): a pointer into value and its
 * length in *len, or NULL when value is no such header (another scheme,
 * no token, a token with a blank or control byte, or over TOKEN_MAX).
 */
const char	*tokens_bearer(const char *value, size_t *len);
/*
 * A token for a client: the first token of text (len bytes; name for
 * errors), under the same rules: a string to free, or NULL and a message
 * in err (never the token).  tokens_first_file reads the file path (a
 * pipe too: --token-file /dev/stdin).
 */
char		*tokens_first(const char *text, size_t len, const char *name,
		    char *err, size_t errlen);
char		*tokens_first_file(const char *path, char *err,
		    size_t errlen);

#endif
