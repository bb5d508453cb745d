/* placeholder: upstream/upstream_fetch.c */
typedef int placeholder_upstream_fetch_t;
