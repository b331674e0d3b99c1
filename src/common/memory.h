/*
 * memory.h - how big a process is: RSS from /proc/PID/statm (cheap), USS
 * and PSS from /proc/PID/smaps_rollup (walks every mapping: dearer). Used
 * by workers (soft limits, USR2 snapshot) and by the master (hard limit).
 * Convention: 0 / -1 with errno.
 */
#ifndef PF_MEMORY_H
#define PF_MEMORY_H

#include <stdint.h>
#include <sys/types.h>

#include "config.h"

struct mem_usage {
    uint64_t rss; /* resident, including pages shared with the master */
    uint64_t uss; /* Private_Clean + Private_Dirty: this process's own */
    uint64_t pss; /* proportional share of every resident page */
};

/* A reader for one process's statm, kept open so that each read is one
 * pread(2). pid 0 = this process. */
struct mem_reader {
    int statm_fd;
    pid_t pid;
};

int memory_open(struct mem_reader *m, pid_t pid);
void memory_close(struct mem_reader *m);
/* RSS only (statm): a few microseconds. */
int memory_rss(struct mem_reader *m, uint64_t *rss);
/* RSS, USS and PSS (smaps_rollup): tens of microseconds to milliseconds
 * for a large process. */
int memory_full(pid_t pid, struct mem_usage *u);
/* The figure metric compares: rss, uss or pss (reads what it needs). */
int memory_metric(struct mem_reader *m, enum memory_metric metric, uint64_t *out);

/* "12.3M", "512K", "2.0G" into buf (size >= 16). Returns buf. */
const char *memory_fmt(uint64_t bytes, char *buf, size_t len);

#endif
