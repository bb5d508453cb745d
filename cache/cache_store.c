/* placeholder: cache/cache_store.c */
typedef int placeholder_cache_store_t;
