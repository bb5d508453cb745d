/*
 * metrics.c — the counter table of metrics.h.
 */
#include "autoconf.h"

#include <stdatomic.h>

#include "common/metrics.h"

static _Atomic uint64_t	metric_values[METRIC__MAX];

static const char *const metric_names[] = {
#define METRIC_NAME(id, name, help) name,
	METRICS_TABLE(METRIC_NAME)
#undef METRIC_NAME
};

static const char *const metric_helps[] = {
#define METRIC_HELP(id, name, help) help,
	METRICS_TABLE(METRIC_HELP)
#undef METRIC_HELP
};

void
metric_add(enum metric m, uint64_t n)
{
	atomic_fetch_add_explicit(&metric_values[m], n, memory_order_relaxed);
}

uint64_t
metric_get(enum metric m)
{
	return atomic_load_explicit(&metric_values[m], memory_order_relaxed);
}

const char *
metric_name(enum metric m)
{
	return metric_names[m];
}

const char *
metric_help(enum metric m)
{
	return metric_helps[m];
}
