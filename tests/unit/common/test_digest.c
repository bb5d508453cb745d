/*
 * test_digest.c — digest string parsing, known hash vectors, incremental
 * hashing and digest_file over a temporary file.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/digest.h"
#include "tests/lib/tap.h"

/* Known answers (FIPS 180-2 and the empty string). */
#define ABC256		"ba7816bf8f01cfea414140de5dae2223" \
			"b00361a396177a9cb410ff61f20015ad"
#define ABC512		"ddaf35a193617abacc417349ae204131" \
			"12e6fa4e89a97ea20a9eeee64b55d39a" \
			"2192992a274fc1a836ba3c23a3feebbd" \
			"454d4423643ce80e2a9ac94fa54ca49f"
#define EMPTY256	"e3b0c44298fc1c149afbf4c8996fb924" \
			"27ae41e4649b934ca495991b7852b855"
#define MILLION_A256	"cdc76e5c9914fb9281a1c7e284d73e67" \
			"f1809a48a497200e046d39ccc7112cd0"

static void
test_parse_good(void)
{
	struct digest	d;

	is_int(digest_parse("sha256:" ABC256, &d), 0, "sha256 parses");
	is_int(d.algo, DIGEST_SHA256, "algo is sha256");
	is_str(d.str, "sha256:" ABC256, "str is the input");
	ok(d.hex == d.str + 7, "hex points into str");
	is_str(d.hex, ABC256, "hex part");

	is_int(digest_parse("sha512:" ABC512, &d), 0, "sha512 parses");
	is_int(d.algo, DIGEST_SHA512, "algo is sha512");
	is_str(d.hex, ABC512, "sha512 hex part");
	is_int(strlen(d.str), DIGEST_STR_MAX - 1, "sha512 fills the buffer");
}

static void
test_parse_bad(void)
{
	static const char *const bad[] = {
		"",
		"sha256",
		"sha256:",
		ABC256,					/* no algorithm */
		"sha256" ABC256,			/* missing colon */
		"sha256;" ABC256,
		"sha256:" ABC256 "0",			/* 65 hex */
		"sha256:" ABC256 "\n",
		"sha256:" ABC256 " ",
		" sha256:" ABC256,
		"SHA256:" ABC256,
		"Sha256:" ABC256,
		"sha256:BA7816BF8F01CFEA414140DE5DAE2223"
		    "B00361A396177A9CB410FF61F20015AD",	/* uppercase hex */
		"sha256:Ba7816bf8f01cfea414140de5dae2223"
		    "b00361a396177a9cb410ff61f20015ad",
		"sha256:ga7816bf8f01cfea414140de5dae2223"
		    "b00361a396177a9cb410ff61f20015ad",	/* non-hex */
		"md5:900150983cd24fb0d6963f7d28e17f72",
		"sha1:a9993e364706816aba3e25717850c26c9cd0d89d",
		"sha384:cb00753f45a35e8bb5a03d699ac65007272c32ab0eded163"
		    "1a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
		"sha512:" ABC256,		/* sha512, sha256 length */
		"sha256:" ABC512,
		"sha512:" ABC512 "f",
		"sha256::" ABC256,
		"sha256:ba7816bf8f01cfea414140de5dae2223"
		    "b00361a396177a9cb410ff61f20015a",	/* 63 hex */
		"sha256:ba7816bf8f01cfea414140de5dae2223"
		    "b00361a396177a9cb410ff61f2 015ad",	/* space */
	};
	struct digest	d;
	size_t		i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is_int(digest_parse(bad[i], &d), -1, "rejects '%s'", bad[i]);
	is_int(digest_parse(NULL, &d), -1, "rejects NULL");
	is_str(d.str, "", "out is cleared on failure");
	ok(d.hex == NULL, "hex is NULL on failure");
}

static void
test_vectors(void)
{
	struct digest	d, p;

	digest_buf(DIGEST_SHA256, "abc", 3, &d);
	is_str(d.str, "sha256:" ABC256, "sha256(abc)");
	is_str(d.hex, ABC256, "sha256(abc) hex");
	is_int(d.algo, DIGEST_SHA256, "sha256(abc) algo");
	digest_buf(DIGEST_SHA512, "abc", 3, &d);
	is_str(d.str, "sha512:" ABC512, "sha512(abc)");
	digest_buf(DIGEST_SHA256, "", 0, &d);
	is_str(d.str, "sha256:" EMPTY256, "sha256 of nothing");
	is_int(digest_parse(d.str, &p), 0, "a computed digest parses");
	is_str(p.str, d.str, "and round-trips");

	is_str(digest_algo_name(DIGEST_SHA256), "sha256", "name sha256");
	is_str(digest_algo_name(DIGEST_SHA512), "sha512", "name sha512");
}

static void
test_incremental(void)
{
	struct digest_ctx	*ctx;
	struct digest		 d;
	char			*buf;
	size_t			 i;

	ctx = digest_ctx_new(DIGEST_SHA256);
	digest_ctx_update(ctx, "a", 1);
	digest_ctx_update(ctx, "", 0);
	digest_ctx_update(ctx, "b", 1);
	digest_ctx_update(ctx, "c", 1);
	digest_ctx_final(ctx, &d);
	is_str(d.str, "sha256:" ABC256, "byte-by-byte equals one-shot");

	/* FIPS 180-2 long vector, fed in uneven pieces. */
	buf = malloc(1000000);
	memset(buf, 'a', 1000000);
	ctx = digest_ctx_new(DIGEST_SHA256);
	for (i = 0; i < 1000000; i += 9973)
		digest_ctx_update(ctx, buf + i,
		    1000000 - i < 9973 ? 1000000 - i : 9973);
	digest_ctx_final(ctx, &d);
	is_str(d.hex, MILLION_A256, "sha256 of a million 'a'");
	free(buf);

	/* Freeing without finishing must not leak (checked under ASan). */
	ctx = digest_ctx_new(DIGEST_SHA512);
	digest_ctx_update(ctx, "abc", 3);
	digest_ctx_free(ctx);
	digest_ctx_free(NULL);
	ok(1, "digest_ctx_free without final, and of NULL");
}

static void
test_file(void)
{
	char		 path[] = "/tmp/test_digest.XXXXXX";
	struct digest	 d, want;
	unsigned char	*buf;
	uint64_t	 size = 12345;
	size_t		 len = 3 * 64 * 1024 + 17, i;
	int		 fd;

	if ((fd = mkstemp(path)) == -1)
		bail_out("mkstemp failed");
	unlink(path);

	is_int(digest_file(DIGEST_SHA256, fd, &d, &size), 0, "empty file");
	is_str(d.str, "sha256:" EMPTY256, "empty file digest");
	is_int(size, 0, "empty file size");

	buf = malloc(len);
	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 7 + i / 251);
	ok(write(fd, buf, len) == (ssize_t)len, "write test data");
	digest_buf(DIGEST_SHA256, buf, len, &want);
	ok(lseek(fd, 0, SEEK_SET) == 0, "rewind");
	is_int(digest_file(DIGEST_SHA256, fd, &d, &size), 0, "digest_file");
	is_str(d.str, want.str, "file digest equals buffer digest");
	is_int(size, len, "file size (several 64K chunks and a tail)");

	digest_buf(DIGEST_SHA512, buf, len, &want);
	ok(lseek(fd, 0, SEEK_SET) == 0, "rewind");
	is_int(digest_file(DIGEST_SHA512, fd, &d, NULL), 0,
	    "sha512 digest_file, size not wanted");
	is_str(d.str, want.str, "sha512 file digest");

	/* From the current offset, not from the start. */
	digest_buf(DIGEST_SHA256, buf + 100, len - 100, &want);
	ok(lseek(fd, 100, SEEK_SET) == 100, "seek to 100");
	is_int(digest_file(DIGEST_SHA256, fd, &d, &size), 0,
	    "digest_file from offset");
	is_str(d.str, want.str, "digest of the rest");
	is_int(size, len - 100, "size of the rest");
	free(buf);
	close(fd);

	errno = 0;
	is_int(digest_file(DIGEST_SHA256, -1, &d, &size), -1, "bad fd fails");
	is_int(errno, EBADF, "errno is EBADF");
}

int
main(void)
{
	test_parse_good();
	test_parse_bad();
	test_vectors();
	test_incremental();
	test_file();
	return done_testing();
}
