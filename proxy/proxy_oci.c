/* placeholder: proxy/proxy_oci.c */
typedef int placeholder_proxy_oci_t;
