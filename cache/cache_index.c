/* placeholder: cache/cache_index.c */
typedef int placeholder_cache_index_t;
