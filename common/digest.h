/*
 * digest.h — content digests ("sha256:<64 hex>", "sha512:<128 hex>") and
 * incremental hashing over OpenSSL's EVP API.
 *
 * Only sha256 and sha512 are accepted: a digest string is valid when it
 * matches the OCI grammar AND names one of these with the exact hex length,
 * lowercase.  Anything else is DIGEST_INVALID for the caller.
 */
#ifndef COMMON_DIGEST_H
#define COMMON_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_STR_MAX	(7 + 128 + 1)	/* "sha512:" + hex + NUL */

enum digest_algo {
	DIGEST_SHA256 = 0,
	DIGEST_SHA512,
};

struct digest {
	enum digest_algo	algo;
	char			str[DIGEST_STR_MAX];	/* "sha256:abcd..." */
	const char		*hex;			/* points into str */
};

/* Parse and validate; 0 on success, -1 if malformed or unsupported. */
int	digest_parse(const char *s, struct digest *out);
/* "sha256" or "sha512". */
const char *digest_algo_name(enum digest_algo);

/* Incremental hashing.  _new never fails (dies on OOM). */
struct digest_ctx;
struct digest_ctx *digest_ctx_new(enum digest_algo);
void	digest_ctx_update(struct digest_ctx *, const void *, size_t);
/* Finish into out (formatted "algo:hex"); the ctx is freed. */
void	digest_ctx_final(struct digest_ctx *, struct digest *out);
void	digest_ctx_free(struct digest_ctx *);
/* One-shot hash of a buffer. */
void	digest_buf(enum digest_algo, const void *, size_t, struct digest *out);
/* Hash a whole file; 0 ok, -1 with errno on I/O error. */
int	digest_file(enum digest_algo, int fd, struct digest *out,
	    uint64_t *size);

#endif
