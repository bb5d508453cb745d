/*
 * proxy.h — the serving side: listeners, worker loops, the OCI pull API.
 */
#ifndef PROXY_PROXY_H
#define PROXY_PROXY_H

struct config;

/*
 * Bind every listener, start the worker threads and serve until SIGTERM
 * or SIGINT.  The cache and the upstreams must be initialised.  Returns 0
 * after a clean shutdown, -1 if start-up failed (logged).
 */
int	proxy_run(const struct config *);

#endif
