/*
 * ref.h — the OCI distribution-spec grammar for repository names, tags and
 * references, checked before anything touches the disk or an upstream.
 *
 *   name:  component(/component)*, at most 255 characters in all,
 *          where component is [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
 *   tag:   [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
 *   reference: a tag or a digest (see digest.h)
 *   media type: "type/subtype[; parameters]", printable ASCII (space
 *          included, no control characters), at most 255 characters
 */
#ifndef COMMON_REF_H
#define COMMON_REF_H

#define REF_NAME_MAX	255
#define REF_TAG_MAX	128
#define REF_MEDIA_TYPE_MAX	255

/* 1 if valid, 0 otherwise (NULL is invalid). */
int	ref_name_valid(const char *name);
int	ref_tag_valid(const char *tag);
/* A media type from upstream JSON or headers, fit for a header or a log
 * line: the bounds above, and a '/' after a non-empty type. */
int	ref_media_type_valid(const char *mt);

/*
 * Parse an image reference as a user writes it on a command line:
 * "[host[:port]/]name[:tag][@digest]".  A first component counts as a host
 * when it contains '.' or ':' or is "localhost".  Every output is a
 * malloc'd string or NULL when absent.  0 on success, -1 when malformed.
 */
struct ref_image {
	char	*host;
	char	*name;
	char	*tag;
	char	*digest;
};
int	ref_image_parse(const char *s, struct ref_image *out);
void	ref_image_fini(struct ref_image *);

#endif
