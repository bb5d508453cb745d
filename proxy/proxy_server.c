/* placeholder: proxy/proxy_server.c */
typedef int placeholder_proxy_server_t;
