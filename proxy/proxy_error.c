/* placeholder: proxy/proxy_error.c */
typedef int placeholder_proxy_error_t;
