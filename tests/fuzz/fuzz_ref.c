/*
 * fuzz_ref.c — libFuzzer entry point for the reference grammar: every
 * accepted image reference must give back parts that are valid on their
 * own, so the parser and the validators cannot disagree; an accepted
 * name, tag or media type stays within its length and character set
 * (common/ref.h), since each goes into paths, index keys and headers.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/digest.h"
#include "common/obj.h"
#include "common/ref.h"
#include "common/text.h"
#include "common/xmalloc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ref_image	 img;
	struct digest		 d;
	char			*s;

	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';

	if (ref_name_valid(s))
		AN(strlen(s) <= REF_NAME_MAX && strspn(s,
		    "abcdefghijklmnopqrstuvwxyz0123456789._-/") == strlen(s));
	if (ref_tag_valid(s))
		AN(strlen(s) <= REF_TAG_MAX && strspn(s,
		    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789._-") == strlen(s));
	if (ref_media_type_valid(s))
		AN(strlen(s) <= REF_MEDIA_TYPE_MAX && text_printable(s) &&
		    s[0] != '/' && strchr(s, '/') != NULL);
	if (digest_parse(s, &d) == 0)
		AZ(strcmp(d.str, s));
	if (ref_image_parse(s, &img) == 0) {
		AN(ref_name_valid(img.name));
		if (img.tag != NULL)
			AN(ref_tag_valid(img.tag));
		if (img.digest != NULL)
			AZ(digest_parse(img.digest, &d));
		ref_image_fini(&img);
	} else
		AN(img.host == NULL && img.name == NULL && img.tag == NULL &&
		    img.digest == NULL);
	free(s);
	return 0;
}
