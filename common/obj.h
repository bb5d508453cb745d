/*
 * obj.h — magic numbers on long-lived objects (after Varnish's miniobj.h).
 * A struct that is passed through void * starts with "unsigned magic" and
 * is checked on every cast.  Assertions stay on in production builds.
 */
#ifndef COMMON_OBJ_H
#define COMMON_OBJ_H

#include <stdio.h>
#include <stdlib.h>

#define OBJ_ASSERT(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "assertion failed: %s at %s:%d (%s)\n",	\
		    #cond, __FILE__, __LINE__, __func__);		\
		abort();						\
	}								\
} while (0)

#define AN(x)		OBJ_ASSERT((x) != 0)
#define AZ(x)		OBJ_ASSERT((x) == 0)
/* Code that must not be reached; msg says why. */
#define WRONG(msg) do {							\
	fprintf(stderr, "assertion failed: %s at %s:%d (%s)\n", (msg),	\
	    __FILE__, __LINE__, __func__);				\
	abort();							\
} while (0)

#define CHECK_OBJ(o, m)		OBJ_ASSERT((o)->magic == (m))
#define CHECK_OBJ_NOTNULL(o, m) do {					\
	OBJ_ASSERT((o) != NULL);					\
	OBJ_ASSERT((o)->magic == (m));					\
} while (0)
#define CAST_OBJ_NOTNULL(to, from, m) do {				\
	(to) = (from);							\
	CHECK_OBJ_NOTNULL((to), (m));					\
} while (0)

#endif
