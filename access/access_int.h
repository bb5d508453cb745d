/*
 * access_int.h — inside access/ only: what access.c and access_token.c
 * share.
 */
#ifndef ACCESS_ACCESS_INT_H
#define ACCESS_ACCESS_INT_H

#include <stddef.h>

struct config;

/* The config access_init() was given (read-only). */
extern const struct config	*access_cfg;

/* access_token.c: the signing key (token_key, or made in the cache). */
int	access_token_init(const struct config *, char *err, size_t errlen);
void	access_token_fini(void);

#endif
