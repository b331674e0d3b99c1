/*
 * cgroup.h - the memory cgroup this process runs in, as the kernel shows
 * it: /proc/self/cgroup names the cgroup, /proc/self/mountinfo where its
 * hierarchy is mounted (never assumed). cgroup v2 when the memory
 * controller is there, else v1 (hybrid hosts). Its memory limit is the
 * smallest over the cgroup and its ancestors visible under the mount.
 * Master (and -t) only; reads a few small files, never anything else.
 * Convention: 0 / -1; on -1, cg->why says what was missing.
 */
#ifndef PF_CGROUP_H
#define PF_CGROUP_H

#include <stdint.h>

enum cgroup_version { CGROUP_NONE = 0, CGROUP_V1 = 1, CGROUP_V2 = 2 };

struct cgroup {
    enum cgroup_version version;
    char path[512]; /* as /proc/self/cgroup names it: "/system.slice/x.service" */
    char dir[1024]; /* its directory: the mount point + path below the mount's root */
    uint64_t limit; /* bytes; 0 = no limit found */
    char limit_dir[1024]; /* the directory whose limit is the smallest ("": none) */
    char why[512];        /* no cgroup, or no limit: why not, for logs and /stats */
};

/* Finds the memory cgroup of the calling process and its limit. root is
 * prepended to every path read ("" or NULL: the real system; a test points
 * it at a fake tree holding proc/self/cgroup, proc/self/mountinfo and the
 * mount points those name). 0 when a memory cgroup was found (its limit may
 * still be 0, cg->why then says why), -1 when none was (cg->why). */
int cgroup_find(const char *root, struct cgroup *cg);

/* The cgroup's memory in use now (v2 memory.current, v1
 * memory.usage_in_bytes). 0 / -1. */
int cgroup_usage(const struct cgroup *cg, uint64_t *bytes);

/* How many processes of the cgroup the kernel's OOM killer has killed
 * (the "oom_kill N" line of v2 memory.events, v1 memory.oom_control).
 * 0 / -1 (no cgroup, or a kernel without the line). One small read. */
int cgroup_oom_kills(const struct cgroup *cg, uint64_t *n);

/* The CPU quota of the cgroup the calling process runs in, in CPUs (1.5
 * = one and a half CPUs' time per period), the smallest over its
 * ancestors: v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us. 0 when
 * there is none (or no cpu controller). root as for cgroup_find. */
double cgroup_cpu_limit(const char *root);

/* "v1", "v2" or "none". */
const char *cgroup_version_name(enum cgroup_version v);

#endif
