/* placeholder: upstream/upstream_conn.c */
typedef int placeholder_upstream_conn_t;
