/*
 * tap.h — a header-only Test Anything Protocol library for the unit tests.
 *
 *	#include "tests/lib/tap.h"
 *
 *	int
 *	main(void)
 *	{
 *		ok(1 + 1 == 2, "arithmetic");
 *		is_int(strlen("abc"), 3, "strlen");
 *		is_str(s, "expected", "s is right");	(NULL-safe)
 *		diag("a comment: %d", 42);
 *		return done_testing();
 *	}
 *
 * plan(n) prints the plan up front; done_testing() prints it at the end if
 * plan() was not called, and returns the exit status: 0 when every test
 * passed (and, with a plan, the count matched), 1 otherwise.  automake's
 * plain test driver only looks at that status; the TAP text on stdout is
 * for people reading the .log file.  Failures print the file and line of
 * the check.  Not thread-safe: call from the main thread only.
 */
#ifndef TESTS_LIB_TAP_H
#define TESTS_LIB_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	tap_planned = -1;	/* -1: no plan yet */
static int	tap_run;
static int	tap_failed;

static inline void
tap_vprint_desc(const char *fmt, va_list ap)
{
	if (fmt != NULL && *fmt != '\0') {
		fputs(" - ", stdout);
		vfprintf(stdout, fmt, ap);
	}
	fputc('\n', stdout);
}

/* Print a "# " comment line. */
static inline void __attribute__((format(printf, 1, 2)))
diag(const char *fmt, ...)
{
	va_list	ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static inline void
plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

static inline int
tap_vok(const char *file, int line, int cond, const char *fmt, va_list ap)
{
	tap_run++;
	if (!cond)
		tap_failed++;
	printf("%sok %d", cond ? "" : "not ", tap_run);
	tap_vprint_desc(fmt, ap);
	if (!cond)
		diag("  Failed test at %s line %d.", file, line);
	fflush(stdout);
	return cond;
}

static inline int __attribute__((format(printf, 4, 5)))
tap_ok_at(const char *file, int line, int cond, const char *fmt, ...)
{
	va_list	ap;
	int	r;

	va_start(ap, fmt);
	r = tap_vok(file, line, cond, fmt, ap);
	va_end(ap);
	return r;
}

static inline int __attribute__((format(printf, 5, 6)))
tap_is_int_at(const char *file, int line, long long got, long long want,
    const char *fmt, ...)
{
	va_list	ap;
	int	r;

	va_start(ap, fmt);
	r = tap_vok(file, line, got == want, fmt, ap);
	va_end(ap);
	if (!r) {
		diag("         got: %lld", got);
		diag("    expected: %lld", want);
	}
	return r;
}

static inline int __attribute__((format(printf, 5, 6)))
tap_is_str_at(const char *file, int line, const char *got, const char *want,
    const char *fmt, ...)
{
	va_list	ap;
	int	r, same;

	if (got == NULL || want == NULL)
		same = got == want;
	else
		same = strcmp(got, want) == 0;
	va_start(ap, fmt);
	r = tap_vok(file, line, same, fmt, ap);
	va_end(ap);
	if (!r) {
		if (got == NULL)
			diag("         got: NULL");
		else
			diag("         got: '%s'", got);
		if (want == NULL)
			diag("    expected: NULL");
		else
			diag("    expected: '%s'", want);
	}
	return r;
}

/* Mark the next n tests as skipped (they count as passed). */
static inline void
skip(int n, const char *why)
{
	while (n-- > 0)
		printf("ok %d # skip %s\n", ++tap_run, why);
	fflush(stdout);
}

/* Print the plan if needed; returns the process exit status. */
static inline int
done_testing(void)
{
	if (tap_planned < 0) {
		printf("1..%d\n", tap_run);
		tap_planned = tap_run;
	}
	if (tap_failed > 0)
		diag("Looks like you failed %d test%s of %d.", tap_failed,
		    tap_failed == 1 ? "" : "s", tap_run);
	if (tap_run != tap_planned) {
		diag("Looks like you planned %d tests but ran %d.",
		    tap_planned, tap_run);
		return 1;
	}
	fflush(stdout);
	return tap_failed > 0 ? 1 : 0;
}

/* Stop now (a check that later tests depend on failed). */
static inline void
bail_out(const char *why)
{
	printf("Bail out! %s\n", why);
	fflush(stdout);
	exit(1);
}

#define ok(cond, ...)							\
	tap_ok_at(__FILE__, __LINE__, (cond) ? 1 : 0, __VA_ARGS__)
#define is_int(got, want, ...)						\
	tap_is_int_at(__FILE__, __LINE__, (long long)(got),		\
	    (long long)(want), __VA_ARGS__)
#define is_str(got, want, ...)						\
	tap_is_str_at(__FILE__, __LINE__, (got), (want), __VA_ARGS__)

#endif
