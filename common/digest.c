/*
 * digest.c — content digests: strict parsing of "sha256:<hex>" and
 * "sha512:<hex>" strings, and hashing over OpenSSL's EVP API.
 *
 * A digest string names a file on disk and a key in the index, so the
 * parser accepts exactly one spelling per digest: the algorithm in lower
 * case, a colon, and the exact number of lowercase hex digits.  OpenSSL
 * failures while hashing mean a broken library or no memory; both are
 * fatal, so the hashing calls never return an error.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/digest.h"
#include "common/log.h"
#include "common/xmalloc.h"

#define DIGEST_FILE_CHUNK	(64 * 1024)

struct digest_ctx {
	enum digest_algo	 algo;
	EVP_MD_CTX		*md;
};

static const struct digest_algo_info {
	const char	*name;		/* "sha256" */
	size_t		 hexlen;	/* hex digits in the string form */
} digest_algos[] = {
	[DIGEST_SHA256] = { "sha256", 64 },
	[DIGEST_SHA512] = { "sha512", 128 },
};

static const EVP_MD *
digest_evp_md(enum digest_algo algo)
{
	switch (algo) {
	case DIGEST_SHA256:
		return EVP_sha256();
	case DIGEST_SHA512:
		return EVP_sha512();
	}
	fatalx("digest: unknown algorithm %d", (int)algo);
}

const char *
digest_algo_name(enum digest_algo algo)
{
	if ((unsigned)algo >= sizeof(digest_algos) / sizeof(digest_algos[0]))
		return "unknown";
	return digest_algos[algo].name;
}

/* Lowercase hex only: an uppercase digest is a different string. */
static int
digest_hex_valid(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return 1;
}

int
digest_parse(const char *s, struct digest *out)
{
	const struct digest_algo_info	*ai;
	size_t				 i, nlen, len;

	memset(out, 0, sizeof(*out));
	if (s == NULL)
		return -1;
	len = strnlen(s, DIGEST_STR_MAX);
	if (len >= DIGEST_STR_MAX)
		return -1;
	for (i = 0; i < sizeof(digest_algos) / sizeof(digest_algos[0]); i++) {
		ai = &digest_algos[i];
		nlen = strlen(ai->name);
		if (len != nlen + 1 + ai->hexlen ||
		    strncmp(s, ai->name, nlen) != 0 || s[nlen] != ':')
			continue;
		if (!digest_hex_valid(s + nlen + 1, ai->hexlen))
			return -1;
		out->algo = (enum digest_algo)i;
		memcpy(out->str, s, len + 1);
		out->hex = out->str + nlen + 1;
		return 0;
	}
	return -1;
}

struct digest_ctx *
digest_ctx_new(enum digest_algo algo)
{
	struct digest_ctx	*ctx;

	ctx = xcalloc(1, sizeof(*ctx));
	ctx->algo = algo;
	if ((ctx->md = EVP_MD_CTX_new()) == NULL)
		fatalx("digest: EVP_MD_CTX_new failed");
	if (EVP_DigestInit_ex(ctx->md, digest_evp_md(algo), NULL) != 1) {
		log_ssl_errors("digest");
		fatalx("digest: EVP_DigestInit_ex failed");
	}
	return ctx;
}

void
digest_ctx_update(struct digest_ctx *ctx, const void *buf, size_t len)
{
	if (len == 0)
		return;
	if (EVP_DigestUpdate(ctx->md, buf, len) != 1) {
		log_ssl_errors("digest");
		fatalx("digest: EVP_DigestUpdate failed");
	}
}

void
digest_ctx_final(struct digest_ctx *ctx, struct digest *out)
{
	static const char	 hexdig[] = "0123456789abcdef";
	unsigned char		 md[EVP_MAX_MD_SIZE];
	unsigned int		 mdlen, i;
	const char		*name;
	size_t			 nlen;
	char			*p;

	if (EVP_DigestFinal_ex(ctx->md, md, &mdlen) != 1) {
		log_ssl_errors("digest");
		fatalx("digest: EVP_DigestFinal_ex failed");
	}
	name = digest_algos[ctx->algo].name;
	nlen = strlen(name);
	if (mdlen * 2 != digest_algos[ctx->algo].hexlen)
		fatalx("digest: %s produced %u bytes", name, mdlen);

	memset(out, 0, sizeof(*out));
	out->algo = ctx->algo;
	memcpy(out->str, name, nlen);
	out->str[nlen] = ':';
	p = out->str + nlen + 1;
	for (i = 0; i < mdlen; i++) {
		*p++ = hexdig[md[i] >> 4];
		*p++ = hexdig[md[i] & 0x0f];
	}
	*p = '\0';
	out->hex = out->str + nlen + 1;
	digest_ctx_free(ctx);
}

void
digest_ctx_free(struct digest_ctx *ctx)
{
	if (ctx == NULL)
		return;
	EVP_MD_CTX_free(ctx->md);
	free(ctx);
}

void
digest_buf(enum digest_algo algo, const void *buf, size_t len,
    struct digest *out)
{
	struct digest_ctx	*ctx;

	ctx = digest_ctx_new(algo);
	digest_ctx_update(ctx, buf, len);
	digest_ctx_final(ctx, out);
}

/*
 * Hash from the current offset of fd to end of file.  The buffer is on
 * the heap rather than the stack because worker threads have small stacks.
 */
int
digest_file(enum digest_algo algo, int fd, struct digest *out,
    uint64_t *size)
{
	struct digest_ctx	*ctx;
	unsigned char		*buf;
	uint64_t		 total = 0;
	ssize_t			 n;
	int			 saved;

	ctx = digest_ctx_new(algo);
	buf = xmalloc(DIGEST_FILE_CHUNK);
	for (;;) {
		n = read(fd, buf, DIGEST_FILE_CHUNK);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			saved = errno;
			free(buf);
			digest_ctx_free(ctx);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		digest_ctx_update(ctx, buf, (size_t)n);
		total += (uint64_t)n;
	}
	free(buf);
	digest_ctx_final(ctx, out);
	if (size != NULL)
		*size = total;
	return 0;
}
