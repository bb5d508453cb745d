/*
 * access_token.c — the mirror's own Bearer tokens: JWTs (RFC 7519) with
 * HMAC-SHA256 (RFC 7518 HS256), issued by the token service and checked
 * on every request that carries one.
 *
 * Only this mirror has the key, so a token that verifies was issued here:
 * no key ids, no other algorithms (the header must be exactly ours, so
 * "alg":"none" and algorithm confusion cannot happen).  Claims:
 *	iss "regmirror", aud [auth] token_service, sub the user ("" for an
 *	anonymous token), iat, nbf, exp (iat + token_ttl), jti (random),
 *	access: [{type "repository", name "UPSTREAM/REPO", actions
 *	["pull"]}, ... , {type "registry", name "catalog", actions ["*"]}]
 * The repository names are the upstream's (what the rules were asked
 * about), not what the client typed: verifying needs no routing.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "access/access.h"
#include "access/access_int.h"
#include "common/config.h"
#include "common/log.h"
#include "common/obj.h"
#include "common/xmalloc.h"

#define ACCESS_KEY_LEN	32
#define ACCESS_SKEW	60	/* seconds of clock difference allowed */

/* base64url('{"alg":"HS256","typ":"JWT"}') */
#define ACCESS_JWT_HEADER	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

static unsigned char	access_key[ACCESS_KEY_LEN];
static int		access_have_key;

/* base64url without padding of len bytes; malloc'd. */
static char *
access_b64url(const unsigned char *in, size_t len)
{
	char	*out = xmalloc(4 * ((len + 2) / 3) + 1);
	int	 n;
	char	*c;

	n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (c = out; *c != '\0'; c++)
		*c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
	return out;
}

/* Decode base64url (no padding) into a malloc'd buffer; NULL if bad. */
static unsigned char *
access_b64url_decode(const char *in, size_t len, size_t *outlen)
{
	char		*std;
	unsigned char	*out;
	size_t		 i, padded = (len + 3) / 4 * 4;
	int		 n;

	if (len % 4 == 1)
		return NULL;
	std = xmalloc(padded + 1);
	for (i = 0; i < len; i++) {
		char c = in[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_')) {
			free(std);
			return NULL;
		}
		std[i] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	for (; i < padded; i++)
		std[i] = '=';
	std[padded] = '\0';
	out = xmalloc(padded / 4 * 3 + 1);
	n = EVP_DecodeBlock(out, (unsigned char *)std, (int)padded);
	free(std);
	if (n < 0) {
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	*outlen = (size_t)n - (padded - len);
	out[*outlen] = '\0';
	return out;
}

static void
access_hmac(const char *data, size_t len, unsigned char out[32])
{
	unsigned int	olen = 32;

	AN(HMAC(EVP_sha256(), access_key, ACCESS_KEY_LEN,
	    (const unsigned char *)data, len, out, &olen) != NULL);
}

char *
access_token_issue(const char *user, const struct access_grant *g, size_t n,
    int catalog, time_t now)
{
	json_t		*claims, *acc;
	unsigned char	 jti[12], sig[32];
	char		*payload, *p64, *jti64, *s64, *signing, *token, name[600];
	size_t		 i;

	AN(access_have_key);
	acc = json_array();
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s/%s", g[i].upstream, g[i].repo);
		json_array_append_new(acc, json_pack("{s:s,s:s,s:[s]}", "type",
		    "repository", "name", name, "actions", "pull"));
	}
	if (catalog)
		json_array_append_new(acc, json_pack("{s:s,s:s,s:[s]}", "type",
		    "registry", "name", "catalog", "actions", "*"));
	AN(RAND_bytes(jti, sizeof(jti)) == 1);
	jti64 = access_b64url(jti, sizeof(jti));
	claims = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:o}", "iss",
	    "regmirror", "aud", access_cfg->token_service, "sub",
	    user != NULL ? user : "", "iat", (json_int_t)now, "nbf",
	    (json_int_t)now, "exp", (json_int_t)(now + access_cfg->token_ttl),
	    "jti", jti64, "access", acc);
	free(jti64);
	/* Names are checked by the router and users by the config and
	 * htpasswd: jansson only refuses what is not UTF-8. */
	AN(claims != NULL);
	payload = json_dumps(claims, JSON_COMPACT);
	json_decref(claims);
	AN(payload != NULL);
	p64 = access_b64url((unsigned char *)payload, strlen(payload));
	free(payload);
	xasprintf(&signing, "%s.%s", ACCESS_JWT_HEADER, p64);
	free(p64);
	access_hmac(signing, strlen(signing), sig);
	s64 = access_b64url(sig, sizeof(sig));
	xasprintf(&token, "%s.%s", signing, s64);
	free(signing);
	free(s64);
	return token;
}

void
access_token_free(struct access_token *t)
{
	size_t	i;

	for (i = 0; i < t->ngrants; i++) {
		free(t->grants[i].upstream);
		free(t->grants[i].repo);
	}
	free(t->grants);
	memset(t, 0, sizeof(*t));
}

/* The access claim into t: repository grants and the catalog. */
static int
access_token_claims(const json_t *acc, struct access_token *t)
{
	const json_t	*e;
	const char	*type, *name, *slash;
	size_t		 i;

	if (!json_is_array(acc) || json_array_size(acc) > ACCESS_SCOPES_MAX +
	    1)
		return -1;
	t->grants = xcalloc(json_array_size(acc) + 1, sizeof(*t->grants));
	json_array_foreach(acc, i, e) {
		type = json_string_value(json_object_get(e, "type"));
		name = json_string_value(json_object_get(e, "name"));
		if (type == NULL || name == NULL)
			return -1;
		if (strcmp(type, "registry") == 0 &&
		    strcmp(name, "catalog") == 0) {
			t->catalog = 1;
			continue;
		}
		if (strcmp(type, "repository") != 0 ||
		    (slash = strchr(name, '/')) == NULL)
			return -1;
		t->grants[t->ngrants].upstream = xstrndup(name,
		    (size_t)(slash - name));
		t->grants[t->ngrants].repo = xstrdup(slash + 1);
		t->ngrants++;
	}
	return 0;
}

int
access_token_verify(const char *token, time_t now, struct access_token *out)
{
	const char	*dot1, *dot2, *sub, *aud;
	unsigned char	 sig[32], *given = NULL, *payload = NULL;
	size_t		 glen, plen, tlen = strlen(token);
	json_t		*claims = NULL;
	json_int_t	 exp, nbf;
	int		 rc = -1;

	memset(out, 0, sizeof(*out));
	if (!access_have_key || tlen > ACCESS_TOKEN_MAX ||
	    (dot1 = strchr(token, '.')) == NULL ||
	    (dot2 = strchr(dot1 + 1, '.')) == NULL || strchr(dot2 + 1, '.'))
		return -1;
	if ((size_t)(dot1 - token) != strlen(ACCESS_JWT_HEADER) ||
	    memcmp(token, ACCESS_JWT_HEADER, strlen(ACCESS_JWT_HEADER)) != 0)
		return -1;
	access_hmac(token, (size_t)(dot2 - token), sig);
	given = access_b64url_decode(dot2 + 1, strlen(dot2 + 1), &glen);
	if (given == NULL || glen != sizeof(sig) ||
	    CRYPTO_memcmp(given, sig, sizeof(sig)) != 0)
		goto done;
	payload = access_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1),
	    &plen);
	if (payload == NULL ||
	    (claims = json_loadb((char *)payload, plen, 0, NULL)) == NULL)
		goto done;
	sub = json_string_value(json_object_get(claims, "sub"));
	aud = json_string_value(json_object_get(claims, "aud"));
	exp = json_integer_value(json_object_get(claims, "exp"));
	nbf = json_integer_value(json_object_get(claims, "nbf"));
	if (sub == NULL || strlen(sub) > ACCESS_USER_MAX || aud == NULL ||
	    strcmp(aud, access_cfg->token_service) != 0 ||
	    exp <= (json_int_t)now || nbf > (json_int_t)now + ACCESS_SKEW)
		goto done;
	snprintf(out->user, sizeof(out->user), "%s", sub);
	out->exp = exp;
	if (access_token_claims(json_object_get(claims, "access"), out) != 0) {
		access_token_free(out);
		goto done;
	}
	rc = 0;
done:
	json_decref(claims);
	free(given);
	free(payload);
	return rc;
}

int
access_token_grants(const struct access_token *t, const char *upstream,
    const char *repo, unsigned want)
{
	size_t	i;

	if (want & ACCESS_WANT_CATALOG)
		return t->catalog;
	for (i = 0; i < t->ngrants; i++)
		if (strcmp(t->grants[i].upstream, upstream) == 0 &&
		    strcmp(t->grants[i].repo, repo) == 0)
			return 1;
	return 0;
}

/*
 * The key: token_key if set, else <cache dir>/token.key; made (random,
 * mode 0600, O_EXCL) when it does not exist yet.
 */
int
access_token_init(const struct config *cfg, char *err, size_t errlen)
{
	char		*path;
	struct stat	 st;
	int		 fd;

	if (cfg->token_key != NULL)
		path = xstrdup(cfg->token_key);
	else
		xasprintf(&path, "%s/token.key", cfg->cache_dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1 &&
	    errno == ENOENT) {
		if (RAND_bytes(access_key, sizeof(access_key)) != 1 ||
		    (fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600)) == -1 || write(fd, access_key, sizeof(access_key))
		    != (ssize_t)sizeof(access_key) || fsync(fd) != 0) {
			snprintf(err, errlen, "%s: cannot make the token key: "
			    "%s", path, strerror(errno));
			if (fd != -1)
				close(fd);
			free(path);
			return -1;
		}
		close(fd);
		log_info("made a new token key in %s", path);
		access_have_key = 1;
		free(path);
		return 0;
	}
	if (fd == -1 || fstat(fd, &st) != 0 ||
	    read(fd, access_key, sizeof(access_key)) !=
	    (ssize_t)sizeof(access_key)) {
		snprintf(err, errlen, "%s: cannot read %d bytes of token key: "
		    "%s", path, ACCESS_KEY_LEN, fd == -1 ? strerror(errno) :
		    "too short");
		if (fd != -1)
			close(fd);
		free(path);
		return -1;
	}
	close(fd);
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		log_warnx("%s: the token key is readable by others "
		    "(chmod 600)", path);
	access_have_key = 1;
	free(path);
	return 0;
}

void
access_token_fini(void)
{
	explicit_bzero(access_key, sizeof(access_key));
	access_have_key = 0;
}
