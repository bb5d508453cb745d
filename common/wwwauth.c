/* placeholder: common/wwwauth.c */
typedef int placeholder_wwwauth_t;
