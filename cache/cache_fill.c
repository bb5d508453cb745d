/* placeholder: cache/cache_fill.c */
typedef int placeholder_cache_fill_t;
