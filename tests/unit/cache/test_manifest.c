/*
 * test_manifest.c — the one manifest walker (cache/cache_manifest.c),
 * on manifests shaped like the ones registries serve (an OCI index with
 * attestation entries as Docker Hub has them, a Docker schema 2 image, a
 * Windows image with foreign layers, a schema 1 manifest) and on
 * malformed ones: every bad field refuses the whole document, hands out
 * nothing, and is named without being quoted.
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "cache/cache.h"
#include "tests/lib/tap.h"

#define H64(c)	c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
		c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
		c c
#define DA	"sha256:" H64("a")
#define DB	"sha256:" H64("b")
#define DC	"sha256:" H64("c")
#define DD	"sha256:" H64("d")

struct seen {
	int	n;
	int	stop_at;	/* return 7 from this call on; 0: never */
	char	kinds[16];
	char	digests[16][80];
	char	plat[16][100];
	int	foreign[16];
	long long size[16];
};

static int
seen_cb(const struct cache_desc *d, void *arg)
{
	struct seen	*s = arg;

	if (s->n < 16) {
		s->kinds[s->n] = d->kind == CACHE_DESC_CHILD ? 'm' :
		    d->kind == CACHE_DESC_CONFIG ? 'c' : 'l';
		snprintf(s->digests[s->n], sizeof(s->digests[0]), "%s",
		    d->digest);
		snprintf(s->plat[s->n], sizeof(s->plat[0]), "%s/%s/%s",
		    d->os ? d->os : "-", d->arch ? d->arch : "-",
		    d->variant ? d->variant : "-");
		s->foreign[s->n] = d->foreign;
		s->size[s->n] = d->size;
	}
	s->n++;
	return s->stop_at != 0 && s->n >= s->stop_at ? 7 : 0;
}

static int
walk(const char *doc, struct seen *s, int *is_index, char *err, size_t len)
{
	memset(s, 0, sizeof(*s));
	err[0] = '\0';
	return cache_manifest_each(doc, strlen(doc), is_index, seen_cb, s,
	    err, len);
}

static const char hub_index[] =
    "{\"schemaVersion\":2,"
    "\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
    "\"manifests\":["
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"digest\":\"" DA "\",\"size\":1022,"
    "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"digest\":\"" DB "\",\"size\":1025,"
    "\"platform\":{\"architecture\":\"arm\",\"os\":\"linux\","
    "\"variant\":\"v7\"}},"
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"digest\":\"" DC "\",\"size\":566,"
    "\"annotations\":{\"vnd.docker.reference.digest\":\"" DA "\","
    "\"vnd.docker.reference.type\":\"attestation-manifest\"},"
    "\"platform\":{\"architecture\":\"unknown\",\"os\":\"unknown\"}}]}";

static const char docker_image[] =
    "{\"schemaVersion\":2,"
    "\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
    "\"config\":{\"mediaType\":"
    "\"application/vnd.docker.container.image.v1+json\","
    "\"size\":1472,\"digest\":\"" DA "\"},"
    "\"layers\":["
    "{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\","
    "\"size\":3623807,\"digest\":\"" DB "\"},"
    "{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\","
    "\"size\":0,\"digest\":\"" DC "\"}]}";

static const char windows_image[] =
    "{\"schemaVersion\":2,"
    "\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
    "\"config\":{\"mediaType\":"
    "\"application/vnd.docker.container.image.v1+json\","
    "\"size\":2312,\"digest\":\"" DA "\"},"
    "\"layers\":["
    "{\"mediaType\":"
    "\"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip\","
    "\"size\":1432414908,\"digest\":\"" DB "\","
    "\"urls\":[\"https://mcr.microsoft.com/v2/windows/servercore/blobs/" DB
    "\"]},"
    "{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\","
    "\"size\":1001,\"digest\":\"" DC "\"}]}";

static const char schema1[] =
    "{\"schemaVersion\":1,\"name\":\"library/old\",\"tag\":\"1\","
    "\"architecture\":\"amd64\","
    "\"fsLayers\":[{\"blobSum\":\"" DA "\"},{\"blobSum\":\"" DB "\"}],"
    "\"history\":[{\"v1Compatibility\":\"{}\"},{\"v1Compatibility\":\"{}\"}],"
    "\"signatures\":[]}";

static void
test_real(void)
{
	struct seen	s;
	char		err[256];
	int		idx;

	idx = -1;
	ok(walk(hub_index, &s, &idx, err, sizeof(err)) == 0,
	    "an OCI index: taken");
	ok(idx == 1, "and it is an index");
	is_int(s.n, 3, "three children");
	is_str(s.kinds, "mmm", "all children");
	is_str(s.digests[0], DA, "first child's digest");
	is_str(s.plat[0], "linux/amd64/-", "its platform");
	is_str(s.plat[1], "linux/arm/v7", "a variant");
	is_str(s.plat[2], "unknown/unknown/-", "the attestation entry");
	is_int(s.size[1], 1025, "a child's size");

	idx = -1;
	ok(walk(docker_image, &s, &idx, err, sizeof(err)) == 0,
	    "a Docker image manifest: taken");
	ok(idx == 0, "not an index");
	is_str(s.kinds, "cll", "config, then layers");
	is_str(s.digests[2], DC, "the second layer");
	is_int(s.size[1], 3623807, "a layer's size");
	is_int(s.size[2], 0, "size 0");
	ok(!s.foreign[1] && !s.foreign[2], "no foreign layers");

	ok(walk(windows_image, &s, NULL, err, sizeof(err)) == 0,
	    "a Windows image: taken");
	is_str(s.kinds, "cll", "config, then layers");
	ok(s.foreign[1], "the layer with urls is foreign");
	ok(!s.foreign[2], "the other is not");

	ok(walk(schema1, &s, NULL, err, sizeof(err)) == 0,
	    "a schema 1 manifest: taken");
	is_str(s.kinds, "ll", "its fsLayers are layers");
	is_str(s.digests[1], DB, "blobSum");
	is_int(s.size[0], -1, "no size");

	ok(walk("{\"schemaVersion\":2,\"mediaType\":"
	    "\"application/vnd.oci.image.index.v1+json\",\"manifests\":[]}",
	    &s, &idx, err, sizeof(err)) == 0 && idx == 1 && s.n == 0,
	    "an empty index: taken, an index, nothing in it");
	ok(walk("{}", &s, &idx, err, sizeof(err)) == 0 && idx == 0 &&
	    s.n == 0, "an empty object names nothing");

	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	ok(cache_manifest_each(docker_image, strlen(docker_image), NULL,
	    seen_cb, &s, err, sizeof(err)) == 7 && s.n == 2,
	    "a callback's nonzero return stops the walk and is returned");
}

/* A malformed document: refused, nothing handed out, the error names
 * want and never holds the value planted in it. */
static void
refused(const char *doc, const char *want)
{
	struct seen	s;
	char		err[256];

	ok(walk(doc, &s, NULL, err, sizeof(err)) == -1, "refused: %s", want);
	is_int(s.n, 0, "nothing handed out (%s)", want);
	ok(strstr(err, want) != NULL, "error '%s' says '%s'", err, want);
	ok(strstr(err, "EVIL") == NULL && strchr(err, '\r') == NULL,
	    "the value is not quoted (%s)", want);
}

static void
test_malformed(void)
{
	char	big[256];

	refused("", "not JSON");
	refused("{\"layers\":[", "not JSON");
	refused("[1,2]", "not a JSON object");
	refused("{\"mediaType\":\"EVIL\\r\\nX: y\"}",
	    "mediaType is not a media type");
	refused("{\"manifests\":{\"EVIL\":1}}", "manifests is not a list");
	refused("{\"manifests\":[\"EVIL\"]}", "manifests[0]: not a JSON "
	    "object");
	refused("{\"manifests\":[{\"digest\":\"" DA "\"},"
	    "{\"digest\":\"sha256:EVIL\"}]}",
	    "manifests[1]: digest is not a valid digest");
	refused("{\"manifests\":[{\"digest\":\"sha256:" H64("A") "\"}]}",
	    "manifests[0]: digest");
	refused("{\"manifests\":[{\"digest\":\"" DA "\\r\\nEVIL\"}]}",
	    "manifests[0]: digest");
	refused("{\"manifests\":[{\"digest\":\"" DA "\",\"size\":-1}]}",
	    "manifests[0]: size is not an integer");
	refused("{\"manifests\":[{\"digest\":\"" DA "\",\"size\":1.5}]}",
	    "manifests[0]: size");
	/* A child is a manifest: at most 4 MiB. */
	refused("{\"manifests\":[{\"digest\":\"" DA "\",\"size\":4194305}]}",
	    "manifests[0]: size is not an integer from 0 to 4194304");
	refused("{\"manifests\":[{\"digest\":\"" DA "\",\"platform\":"
	    "\"EVIL\"}]}", "manifests[0]: platform is not a JSON object");
	refused("{\"manifests\":[{\"digest\":\"" DA "\",\"platform\":"
	    "{\"os\":\"EVIL/\\r\\n\"}}]}", "manifests[0]: platform.os");
	snprintf(big, sizeof(big), "{\"manifests\":[{\"digest\":\"" DA
	    "\",\"platform\":{\"os\":\"linux\",\"architecture\":\"%065d\"}}]}",
	    0);
	refused(big, "manifests[0]: platform.architecture");
	refused("{\"manifests\":[{\"digest\":\"" DA "\",\"mediaType\":"
	    "\"EVIL\"}]}", "manifests[0]: mediaType is not a media type");
	refused("{\"config\":\"EVIL\"}", "config: not a JSON object");
	refused("{\"config\":{\"digest\":\"md5:EVIL\"}}",
	    "config: digest is not a valid digest");
	refused("{\"config\":{\"digest\":\"" DA "\"},\"layers\":\"EVIL\"}",
	    "layers is not a list");
	/* A good config and first layer do not make it past a bad second. */
	refused("{\"config\":{\"digest\":\"" DA "\"},\"layers\":["
	    "{\"digest\":\"" DB "\"},{\"digest\":\"" DC "\",\"size\":"
	    "1099511627777}]}", "layers[1]: size is not an integer from 0 to "
	    "1099511627776");
	refused("{\"fsLayers\":[{\"blobSum\":\"" DA "\"},{\"blobSum\":"
	    "\"EVIL\"}]}", "fsLayers[1]: blobSum is not a valid digest");
	refused("{\"fsLayers\":\"EVIL\"}", "fsLayers is not a list");
	/* Layers win over fsLayers; an index's config is not looked at. */
	{
		struct seen	s;
		char		err[256];

		ok(walk("{\"layers\":[{\"digest\":\"" DD "\"}],\"fsLayers\":"
		    "[{\"blobSum\":\"EVIL\"}]}", &s, NULL, err,
		    sizeof(err)) == 0 && s.n == 1, "layers, not fsLayers");
		ok(walk("{\"manifests\":[],\"config\":\"EVIL\"}", &s, NULL,
		    err, sizeof(err)) == 0 && s.n == 0,
		    "an index's config is not walked");
	}
}

int
main(void)
{
	test_real();
	test_malformed();
	return done_testing();
}
