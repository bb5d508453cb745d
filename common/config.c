/* placeholder: common/config.c */
typedef int placeholder_config_t;
