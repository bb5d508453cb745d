/*
 * cidr.c — address prefixes: parse once, match many (cidr.h).
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "common/cidr.h"

/* Text to bytes: "1.2.3.4", "::1", "[::1]"; family 4 or 6, 0 if none. */
static int
cidr_addr(const char *s, size_t len, uint8_t *out)
{
	char	buf[64];

	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, out) == 1)
		return 4;
	if (inet_pton(AF_INET6, buf, out) == 1)
		return 6;
	return 0;
}

int
cidr_parse(const char *s, struct cidr *out)
{
	const char	*slash;
	char		*end;
	unsigned long	 bits;
	unsigned	 max, i;
	size_t		 len;

	memset(out, 0, sizeof(*out));
	slash = strchr(s, '/');
	len = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if ((out->family = cidr_addr(s, len, out->addr)) == 0)
		return -1;
	max = out->family == 4 ? 32 : 128;
	if (slash == NULL)
		bits = max;
	else {
		if (slash[1] < '0' || slash[1] > '9')
			return -1;
		bits = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || bits > max)
			return -1;
	}
	out->bits = (unsigned)bits;
	/* No host bits below the prefix. */
	for (i = out->bits; i < max; i++)
		if (out->addr[i / 8] & (0x80 >> (i % 8)))
			return -1;
	return 0;
}

int
cidr_match(const struct cidr *c, int family, const uint8_t *addr)
{
	static const uint8_t	mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };
	unsigned		full, rest;

	if (family == 6 && c->family == 4 && memcmp(addr, mapped, 12) == 0) {
		addr += 12;
		family = 4;
	}
	if (family != c->family)
		return 0;
	full = c->bits / 8;
	rest = c->bits % 8;
	if (memcmp(addr, c->addr, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((addr[full] ^ c->addr[full]) & (0xff << (8 - rest)) & 0xff)
	    == 0;
}

int
cidr_match_str(const struct cidr *c, const char *addr)
{
	uint8_t	b[16];
	int	family;

	if ((family = cidr_addr(addr, strlen(addr), b)) == 0)
		return 0;
	return cidr_match(c, family, b);
}

int
cidr_is_loopback_str(const char *addr)
{
	struct cidr	v4, v6;

	if (strcmp(addr, "localhost") == 0)
		return 1;
	if (cidr_parse("127.0.0.0/8", &v4) != 0 || cidr_parse("::1", &v6) !=
	    0)
		return 0;
	return cidr_match_str(&v4, addr) || cidr_match_str(&v6, addr);
}
