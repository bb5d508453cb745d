/* placeholder: proxy/proxy_blob.c */
typedef int placeholder_proxy_blob_t;
