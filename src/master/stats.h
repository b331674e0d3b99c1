/*
 * stats.h - rendering the master's state for the admin endpoint (stats.c).
 * Master process only.
 */
#ifndef PF_STATS_H
#define PF_STATS_H

#include "admin.h"
#include "buf.h"

/* An admin_render_fn: /stats (JSON), /metrics (Prometheus), /healthz. */
int stats_render(const struct admin_req *rq, struct buf *out, const char **ctype);

#endif
