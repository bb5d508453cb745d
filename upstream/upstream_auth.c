/* placeholder: upstream/upstream_auth.c */
typedef int placeholder_upstream_auth_t;
