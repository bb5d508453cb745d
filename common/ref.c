/*
 * ref.c — the OCI distribution-spec grammar for repository names and tags,
 * and docker-style image references ("ghcr.io/org/app:v1@sha256:...").
 *
 * Names and tags end up in file names, LMDB keys and upstream URLs, so the
 * checks are hand-written scanners that walk each byte once: no regex
 * engine, no backtracking, nothing that depends on the locale.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "common/digest.h"
#include "common/ref.h"
#include "common/xmalloc.h"

static int
ref_is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int
ref_is_alnum(char c)
{
	return ref_is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static int
ref_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*.  Returns the
 * number of bytes matched, 0 when s does not start with a component that
 * ends at len or at a '/'.
 */
static size_t
ref_component_len(const char *s, size_t len)
{
	size_t	i = 0, seplen;
	char	c;

	if (len == 0 || !ref_is_lower_alnum(s[0]))
		return 0;
	while (i < len && s[i] != '/') {
		if (ref_is_lower_alnum(s[i])) {
			i++;
			continue;
		}
		/* A separator run must be ".", "_", "__" or "-+". */
		c = s[i];
		seplen = 0;
		while (i + seplen < len && s[i + seplen] == c)
			seplen++;
		if (c == '.' && seplen != 1)
			return 0;
		if (c == '_' && seplen > 2)
			return 0;
		if (c != '.' && c != '_' && c != '-')
			return 0;
		i += seplen;
		/* ... and be followed by an alphanumeric. */
		if (i >= len || !ref_is_lower_alnum(s[i]))
			return 0;
	}
	return i;
}

static int
ref_name_valid_len(const char *name, size_t len)
{
	size_t	i = 0, n;

	if (len == 0 || len > REF_NAME_MAX)
		return 0;
	for (;;) {
		if ((n = ref_component_len(name + i, len - i)) == 0)
			return 0;
		i += n;
		if (i == len)
			return 1;
		/* name[i] == '/': another component must follow. */
		i++;
	}
}

int
ref_name_valid(const char *name)
{
	size_t	len;

	if (name == NULL)
		return 0;
	len = strnlen(name, REF_NAME_MAX + 1);
	return ref_name_valid_len(name, len);
}

static int
ref_tag_valid_len(const char *tag, size_t len)
{
	size_t	i;

	if (len == 0 || len > REF_TAG_MAX)
		return 0;
	if (!ref_is_alnum(tag[0]) && tag[0] != '_')
		return 0;
	for (i = 1; i < len; i++) {
		if (!ref_is_alnum(tag[i]) && tag[i] != '_' && tag[i] != '.' &&
		    tag[i] != '-')
			return 0;
	}
	return 1;
}

int
ref_tag_valid(const char *tag)
{
	if (tag == NULL)
		return 0;
	return ref_tag_valid_len(tag, strnlen(tag, REF_TAG_MAX + 1));
}

int
ref_media_type_valid(const char *mt)
{
	size_t	len, i;

	if (mt == NULL || (len = strnlen(mt, REF_MEDIA_TYPE_MAX + 1)) == 0 ||
	    len > REF_MEDIA_TYPE_MAX || mt[0] == '/' || mt[0] == ' ' ||
	    strchr(mt, '/') == NULL)
		return 0;
	for (i = 0; i < len; i++)
		if (mt[i] < 0x20 || mt[i] > 0x7e)
			return 0;
	return 1;
}

/* An optional ":port" suffix: 1..65535, digits only. */
static int
ref_port_valid(const char *s, size_t len)
{
	unsigned long	port = 0;
	size_t		i;

	if (len == 0 || len > 5)
		return 0;
	for (i = 0; i < len; i++) {
		if (!ref_is_digit(s[i]))
			return 0;
		port = port * 10 + (unsigned long)(s[i] - '0');
	}
	return port >= 1 && port <= 65535;
}

/*
 * A registry host as docker accepts it: DNS labels of [A-Za-z0-9-] that
 * neither start nor end with '-', joined by '.', or an IPv6 literal in
 * brackets; then an optional ":port".
 */
static int
ref_host_valid(const char *s, size_t len)
{
	size_t	i = 0, label;

	if (len == 0)
		return 0;
	if (s[0] == '[') {
		for (i = 1; i < len && s[i] != ']'; i++) {
			if (!ref_is_digit(s[i]) && s[i] != ':' && s[i] != '.' &&
			    !((s[i] >= 'a' && s[i] <= 'f') ||
			    (s[i] >= 'A' && s[i] <= 'F')))
				return 0;
		}
		if (i >= len || i == 1)
			return 0;
		i++;
	} else {
		for (;;) {
			label = 0;
			while (i + label < len &&
			    (ref_is_alnum(s[i + label]) || s[i + label] == '-'))
				label++;
			if (label == 0 || s[i] == '-' ||
			    s[i + label - 1] == '-')
				return 0;
			i += label;
			if (i < len && s[i] == '.') {
				i++;
				continue;
			}
			break;
		}
	}
	if (i == len)
		return 1;
	if (s[i] != ':')
		return 0;
	return ref_port_valid(s + i + 1, len - i - 1);
}

void
ref_image_fini(struct ref_image *img)
{
	if (img == NULL)
		return;
	free(img->host);
	free(img->name);
	free(img->tag);
	free(img->digest);
	memset(img, 0, sizeof(*img));
}

/*
 * "[host[:port]/]name[:tag][@digest]".  The name is returned as written:
 * "alpine" stays "alpine" (not "library/alpine") and the host stays NULL,
 * because which registry a bare name means is the caller's policy.
 */
int
ref_image_parse(const char *s, struct ref_image *out)
{
	struct digest	 d;
	const char	*at, *slash, *colon, *path, *end;
	size_t		 hostlen;

	memset(out, 0, sizeof(*out));
	if (s == NULL || *s == '\0')
		return -1;

	end = s + strlen(s);
	if ((at = strchr(s, '@')) != NULL) {
		if (digest_parse(at + 1, &d) == -1)
			goto fail;
		out->digest = xstrdup(d.str);
		end = at;
	}

	/* A first component with '.' or ':', or "localhost", is a host. */
	path = s;
	slash = memchr(s, '/', (size_t)(end - s));
	if (slash != NULL) {
		hostlen = (size_t)(slash - s);
		if (memchr(s, '.', hostlen) != NULL ||
		    memchr(s, ':', hostlen) != NULL ||
		    (hostlen == 9 && strncmp(s, "localhost", 9) == 0)) {
			if (!ref_host_valid(s, hostlen))
				goto fail;
			out->host = xstrndup(s, hostlen);
			path = slash + 1;
		}
	}

	/* A tag is after the last ':' that follows the last '/'. */
	colon = NULL;
	for (const char *p = end; p > path; p--) {
		if (p[-1] == '/')
			break;
		if (p[-1] == ':') {
			colon = p - 1;
			break;
		}
	}
	if (colon != NULL) {
		if (!ref_tag_valid_len(colon + 1, (size_t)(end - colon - 1)))
			goto fail;
		out->tag = xstrndup(colon + 1, (size_t)(end - colon - 1));
		end = colon;
	}

	if (!ref_name_valid_len(path, (size_t)(end - path)))
		goto fail;
	out->name = xstrndup(path, (size_t)(end - path));
	return 0;

fail:
	ref_image_fini(out);
	return -1;
}
