/*
 * wwwauth.h — parse a WWW-Authenticate header (RFC 7235 challenges, as
 * registries send them):
 *
 *   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",
 *          scope="repository:library/alpine:pull"
 *   Basic realm="Registry Realm"
 *
 * Several challenges may share one header; the parser keeps the first
 * Bearer challenge if there is one, else the first Basic, else the first.
 * Quoted strings with backslash escapes and token values are both accepted;
 * parameter names are case-insensitive; unknown parameters are ignored.
 */
#ifndef COMMON_WWWAUTH_H
#define COMMON_WWWAUTH_H

enum wwwauth_scheme {
	WWWAUTH_UNKNOWN = 0,
	WWWAUTH_BASIC,
	WWWAUTH_BEARER,
};

struct wwwauth {
	enum wwwauth_scheme	scheme;
	char			*realm;		/* malloc'd or NULL */
	char			*service;
	char			*scope;
	char			*error;
};

/* 0 on success, -1 if the header is malformed (out is then zeroed). */
int	wwwauth_parse(const char *header, struct wwwauth *out);
void	wwwauth_fini(struct wwwauth *);

#endif
