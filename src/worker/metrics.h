/*
 * metrics.h - figures an app publishes about its worker (the pf_worker_heap
 * and pf_metric_* ABI, metrics.c): written by the worker into its
 * scoreboard slot, read by the master for /stats and /metrics.
 */
#ifndef PF_METRICS_H
#define PF_METRICS_H

#include <stdbool.h>

#include "scoreboard.h"

/* Worker: the slot pf_worker_heap and pf_metric_* write (at boot). */
void metrics_init(struct slot *slot);

struct metrics_row {
    char name[32];
    char label[64];
    double value;
};

/* Master: row i (0..SB_METRICS-1) of s, copied whole; false when it is
 * free or was being rewritten at each of a few tries. */
bool metrics_read(struct slot *s, int i, struct metrics_row *out);

#endif
