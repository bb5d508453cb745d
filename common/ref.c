/* placeholder: common/ref.c */
typedef int placeholder_ref_t;
