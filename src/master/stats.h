/*
 * stats.h - rendering the master's state for the admin endpoint (stats.c).
 * Master process only.
 */
#ifndef PF_STATS_H
#define PF_STATS_H

#include "admin.h"
#include "buf.h"

/* An admin_render_fn (data: the struct master): /stats (JSON), /metrics
 * (Prometheus), /healthz render from a const view of the master's state;
 * /workers/ID/... is relayed (relay.c). */
int stats_render(void *master, const struct admin_req *rq, struct buf *out,
                 const char **ctype);

#endif
