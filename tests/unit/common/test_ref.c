/*
 * test_ref.c — repository names, tags and image references against the
 * OCI distribution-spec grammar.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "common/ref.h"
#include "tests/lib/tap.h"

#define D256	"sha256:ba7816bf8f01cfea414140de5dae2223" \
		"b00361a396177a9cb410ff61f20015ad"

/* A string of n copies of c, in a static buffer. */
static const char *
repeat(char c, size_t n)
{
	static char	buf[1024];

	if (n >= sizeof(buf))
		abort();
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

static void
test_names(void)
{
	static const char *const good[] = {
		"a", "alpine", "library/alpine", "a/b/c/d", "0", "9lives",
		"my-app", "my--app", "my---app", "my.app", "my_app", "my__app",
		"a.b.c", "a-b_c.d__e", "org/sub.team/app-1",
		"x/y", "abc123/def456",
	};
	static const char *const bad[] = {
		"", "Alpine", "library/Alpine", "ALPINE", "a..b", "a/../b",
		"..", ".", "-a", "a-", "_a", "a_", ".a", "a.", "a___b", "a._b",
		"a_.b", "a-.b", "a.-b", "a//b", "a/", "/a", "/", "a/b/",
		"a b", "a:b", "a@b", "a\tb", "a\nb", "é", "a/.b", "a/b.",
		"a+b", "a%2fb", "a/-b", "a/_b",
	};
	char	name[300];
	size_t	i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		is_int(ref_name_valid(good[i]), 1, "name '%s' valid", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is_int(ref_name_valid(bad[i]), 0, "name '%s' invalid", bad[i]);
	is_int(ref_name_valid(NULL), 0, "NULL name invalid");

	is_int(ref_name_valid(repeat('a', 255)), 1, "255 chars valid");
	is_int(ref_name_valid(repeat('a', 256)), 0, "256 chars invalid");
	is_int(ref_name_valid(repeat('a', 1000)), 0, "1000 chars invalid");

	/* 255 in all, across components. */
	memset(name, 0, sizeof(name));
	for (i = 0; i < 255; i++)
		name[i] = (i % 4 == 3) ? '/' : 'b';
	name[254] = 'b';
	is_int(ref_name_valid(name), 1, "255 chars with slashes valid");
	name[255] = 'b';
	is_int(ref_name_valid(name), 0, "256 chars with slashes invalid");
}

static void
test_tags(void)
{
	static const char *const good[] = {
		"latest", "3", "3.19", "v1.2.3-rc.1", "_x", "A", "Z9",
		"a_b-c.d", "sha256-abc", "__", "0.-_",
	};
	static const char *const bad[] = {
		"", ".x", "-x", "a/b", "a:b", "a@b", "a b", "a+b", "é",
		"v1\n",
	};
	size_t	i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		is_int(ref_tag_valid(good[i]), 1, "tag '%s' valid", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is_int(ref_tag_valid(bad[i]), 0, "tag '%s' invalid", bad[i]);
	is_int(ref_tag_valid(NULL), 0, "NULL tag invalid");
	is_int(ref_tag_valid(repeat('t', 128)), 1, "128-char tag valid");
	is_int(ref_tag_valid(repeat('t', 129)), 0, "129-char tag invalid");
}

static void
test_media_types(void)
{
	static const char *const good[] = {
		"application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.image.rootfs.diff.tar.gzip",
		"text/plain; charset=utf-8", "a/b", "x/",
	};
	static const char *const bad[] = {
		"", "/json", "json", " a/b", "application/x\r\nX-Evil: 1",
		"application/x\n", "a/b\t", "a/\x7f", "a/\xc3\xa9",
	};
	char	mt[REF_MEDIA_TYPE_MAX + 2];
	size_t	i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		is_int(ref_media_type_valid(good[i]), 1,
		    "media type '%s' valid", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is_int(ref_media_type_valid(bad[i]), 0,
		    "media type #%zu invalid", i);
	is_int(ref_media_type_valid(NULL), 0, "NULL media type invalid");
	memcpy(mt, "a/", 2);
	memcpy(mt + 2, repeat('b', REF_MEDIA_TYPE_MAX - 2),
	    REF_MEDIA_TYPE_MAX - 1);
	is_int(ref_media_type_valid(mt), 1, "255-char media type valid");
	memcpy(mt + 2, repeat('b', REF_MEDIA_TYPE_MAX - 1), REF_MEDIA_TYPE_MAX);
	is_int(ref_media_type_valid(mt), 0, "256-char media type invalid");
}

struct image_case {
	const char	*in;
	const char	*host;
	const char	*name;
	const char	*tag;
	const char	*digest;
};

static void
test_image_good(void)
{
	static const struct image_case cases[] = {
		{ "alpine", NULL, "alpine", NULL, NULL },
		{ "alpine:3", NULL, "alpine", "3", NULL },
		{ "library/alpine:3", NULL, "library/alpine", "3", NULL },
		{ "ghcr.io/org/app:v1", "ghcr.io", "org/app", "v1", NULL },
		{ "ghcr.io/org/app", "ghcr.io", "org/app", NULL, NULL },
		{ "localhost:5000/x@" D256, "localhost:5000", "x", NULL,
		    D256 },
		{ "localhost/x", "localhost", "x", NULL, NULL },
		{ "127.0.0.1:5000/demo:v1", "127.0.0.1:5000", "demo", "v1",
		    NULL },
		{ "docker.io/library/alpine:3.19@" D256, "docker.io",
		    "library/alpine", "3.19", D256 },
		{ "alpine@" D256, NULL, "alpine", NULL, D256 },
		{ "Registry.Example.COM/a/b", "Registry.Example.COM", "a/b",
		    NULL, NULL },
		{ "[::1]:5000/img:tag", "[::1]:5000", "img", "tag", NULL },
		{ "reg:443/a", "reg:443", "a", NULL, NULL },
		{ "localhost:5000", NULL, "localhost", "5000", NULL },
		{ "org/app:_", NULL, "org/app", "_", NULL },
	};
	struct ref_image	img;
	size_t			i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct image_case *c = &cases[i];

		if (!is_int(ref_image_parse(c->in, &img), 0, "parse '%s'",
		    c->in)) {
			skip(4, "parse failed");
			continue;
		}
		is_str(img.host, c->host, "  host");
		is_str(img.name, c->name, "  name");
		is_str(img.tag, c->tag, "  tag");
		is_str(img.digest, c->digest, "  digest");
		ref_image_fini(&img);
	}
}

static void
test_image_bad(void)
{
	static const char *const bad[] = {
		"", "Alpine", "alpine:", "alpine@", "@" D256, ":v1",
		"alpine:.v1", "alpine:-v1", "alpine:a/b",
		"alpine@sha256:abc",
		"alpine@md5:900150983cd24fb0d6963f7d28e17f72",
		"alpine@" D256 "@" D256, "alpine@SHA256:abc",
		"ghcr.io/", "ghcr.io//app", "ghcr.io/Org/app",
		"ghcr.io/org/app/", "-bad.io/app", "bad-.io/app",
		"bad..io/app", ".io/app", "host:0/app", "host:65536/app",
		"host:port/app", "host:/app", "ho_st.io/app", "[::1/app",
		"[]:5000/app", "[::1]x/app", "a//b", "a b", "a/../b",
		"ghcr.io/org/app:v1:v2", "ghcr.io/org/app:toolong",
		"/alpine", "alpine:3 ",
	};
	struct ref_image	img;
	char			buf[1100];
	size_t			i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (strcmp(bad[i], "ghcr.io/org/app:toolong") == 0) {
			snprintf(buf, sizeof(buf), "ghcr.io/org/app:%s",
			    repeat('t', 129));
			is_int(ref_image_parse(buf, &img), -1,
			    "reject a 129-char tag");
		} else
			is_int(ref_image_parse(bad[i], &img), -1,
			    "reject '%s'", bad[i]);
		ok(img.host == NULL && img.name == NULL && img.tag == NULL &&
		    img.digest == NULL, "  outputs are NULL");
	}
	is_int(ref_image_parse(NULL, &img), -1, "reject NULL");

	snprintf(buf, sizeof(buf), "ghcr.io/%s:v1", repeat('n', 256));
	is_int(ref_image_parse(buf, &img), -1, "reject a 256-char name");
	snprintf(buf, sizeof(buf), "ghcr.io/%s:v1", repeat('n', 255));
	is_int(ref_image_parse(buf, &img), 0, "accept a 255-char name");
	ref_image_fini(&img);
	ref_image_fini(&img);
	ok(img.name == NULL, "fini twice is safe");
}

int
main(void)
{
	test_names();
	test_tags();
	test_media_types();
	test_image_good();
	test_image_bad();
	return done_testing();
}
