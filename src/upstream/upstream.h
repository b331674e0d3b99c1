/*
 * upstream.h - the worker's upstream pools, as the worker sees them: built
 * after fork, torn down at exit. Apps use them through the pf_upstream_*
 * ABI (preforkd.h); the pools themselves are in upstream.c. Worker only.
 * Convention: 0 / -1 with errno.
 */
#ifndef PF_UPSTREAM_H
#define PF_UPSTREAM_H

#include <ev.h>

#include "config.h"
#include "scoreboard.h"

/* Builds one pool per [upstream] of cfg, on loop, counting into
 * slot->upstreams[i] (the upstream's index in cfg; slot may be NULL).
 * cfg must outlive the pools. Opens no connection. Call before the app's
 * worker_init, so that it may look its upstreams up. 0 / -1 (ENOMEM). */
int upstream_worker_init(struct ev_loop *loop, const struct config *cfg,
                         struct slot *slot);

/* Closes every upstream connection and frees every request still pending,
 * without calling the app (it has had its worker_exit). Never blocks. */
void upstream_worker_exit(void);

#endif
