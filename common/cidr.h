/*
 * cidr.h — address prefixes ("10.1.0.0/16", "fd00::/8", "192.0.2.7")
 * for [access] from and [server] trusted_proxies.
 *
 * A prefix is parsed once (cidr_parse) and matched against a client's
 * address as text (cidr_match_str, what evhttp gives) or as bytes.  An
 * IPv4 address mapped into IPv6 ("::ffff:10.1.2.3") matches IPv4
 * prefixes: a dual-stack listener sees IPv4 clients that way.  A bare
 * address is a /32 or /128.  Bits set below the prefix length
 * ("10.1.2.3/16") are refused: such a typo usually means another net.
 */
#ifndef COMMON_CIDR_H
#define COMMON_CIDR_H

#include <stdint.h>

struct cidr {
	int		family;		/* 4 or 6 */
	unsigned	bits;		/* prefix length */
	uint8_t		addr[16];	/* 4 bytes used for IPv4 */
};

/* 0, or -1 when s is not an address or prefix (or has host bits set). */
int	cidr_parse(const char *s, struct cidr *out);
/* Whether the address in text (IPv4, IPv6, or "[v6]") is inside c. */
int	cidr_match_str(const struct cidr *c, const char *addr);
/* The same for raw bytes: family 4 (4 bytes) or 6 (16 bytes). */
int	cidr_match(const struct cidr *c, int family, const uint8_t *addr);
/* Whether addr (text) is a loopback address (127/8, ::1, mapped). */
int	cidr_is_loopback_str(const char *addr);

#endif
