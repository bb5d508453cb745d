/*
 * hash.h — one string hash (FNV-1a, 32 bits) for the small in-memory
 * tables that outside input can fill (fills, flights, tokens, limits,
 * answers in memory): chained buckets, never a walk of everything.
 */
#ifndef COMMON_HASH_H
#define COMMON_HASH_H

#include <stdint.h>

static inline uint32_t
hash_str(const char *s)
{
	uint32_t	h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

#endif
