/*
 * memlimit.h - [recycle] max_rss and max_rss_hard as shares of the memory
 * of the cgroup preforkd runs in ("N%", "auto"): resolved into bytes at
 * start, on reload and when the number of workers changes, and handed to
 * the workers (their scoreboard slots) and the master's hard check. Also
 * tells a death by the kernel's OOM killer from another SIGKILL. Master
 * process (and preforkd -t) only.
 */
#ifndef PF_MEMLIMIT_H
#define PF_MEMLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cgroup.h"
#include "config.h"
#include "scoreboard.h"

struct master;
struct worker;

/* Pure. Resolves c's max_rss and max_rss_hard for `workers` workers and a
 * cgroup memory limit (bytes, 0 = none): the per-worker share is
 * limit / (workers + max_concurrent_recycles), since each replacement runs
 * beside the worker it replaces. Writes c->recycle.max_rss, max_rss_hard,
 * share and each *_set.source; a share without a limit is off
 * (MEMLIMIT_NO_LIMIT). When a size and a share end up with max_rss_hard
 * <= max_rss: -1 with err = "FILE:LINE: [recycle] max_rss_hard: expected
 * ...", or, with clamp, max_rss lowered to 4/5 of max_rss_hard
 * (MEMLIMIT_CLAMPED) and 1. Otherwise 0. */
int memlimit_resolve(struct config *c, uint64_t limit, uint32_t workers, bool clamp,
                     char *err, size_t len);

/* "size", "share", "auto", "off", "no_limit", "clamped". */
const char *memlimit_source_name(enum memlimit_source s);

/* preforkd -t: finds the cgroup and resolves cfg for its workers; prints
 * what each share resolves to, or why it is off (a warning), on stderr.
 * 0, or -1 with the error ("FILE:LINE: [recycle] ...") in err. */
int memlimit_check(struct config *cfg, char *err, size_t len);

/* Master, at start (ms->cfg, ms->target): finds the cgroup, resolves, logs.
 * 0, or -1 after logging the error (exit 78). */
int memlimit_start(struct master *ms);
/* Master, SIGHUP: finds the master's cgroup again (it may have moved, its
 * limit changed) before the reload is prepared. */
void memlimit_refresh(struct master *ms);
/* Master, SIGHUP: resolves the new config for its own workers against cg.
 * Pure but for the log. 0, or -1 with the error in err. */
int memlimit_reload(const struct cgroup *cg, struct config *nc, char *err, size_t len);
/* Master: the number of workers wanted changed (SIGTTIN/SIGTTOU): resolves
 * ms->cfg again and hands new values to the current generation's workers. */
void memlimit_rescale(struct master *ms);

/* Master: worker w died of a SIGKILL the master did not send (how: its
 * wait status in words). Reads the cgroup's oom_kill count: when it rose
 * since the deaths already named by it, logs that the kernel's OOM killer
 * killed w (with the cgroup's limit) and returns RETIRE_OOM; when it did
 * not, logs that someone else did and returns RETIRE_CRASH; without a
 * count to read, logs that the OOM killer is likely (RETIRE_OOM). */
enum retire_reason memlimit_sigkill(struct master *ms, const struct worker *w,
                                    const char *how);

#endif
