/* placeholder: common/digest.c */
typedef int placeholder_digest_t;
