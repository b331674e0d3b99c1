/*
 * memlimit.c - max_rss / max_rss_hard written as shares of the cgroup's
 * memory, resolved into bytes (a pure function of the config, the cgroup's
 * limit and the number of workers), and the master's use of it: at start,
 * on reload, on SIGTTIN/SIGTTOU, and when a worker dies of a SIGKILL the
 * master did not send (was it the OOM killer?). Runs in the master and in
 * preforkd -t. Convention: 0 / -1 (see memlimit.h for each function).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cgroup.h"
#include "log.h"
#include "master_int.h"
#include "memlimit.h"
#include "memory.h"

/* A clamped max_rss: this much of max_rss_hard (soft x 1.25 = hard). */
#define CLAMP_NUM 4
#define CLAMP_DEN 5

const char *memlimit_source_name(enum memlimit_source s)
{
    static const char *const names[] = {"off",  "size",     "share",
                                        "auto", "no_limit", "clamped"};
    return s <= MEMLIMIT_CLAMPED ? names[s] : "?";
}

static uint64_t resolve_one(struct config_memlimit *m, uint64_t limit, uint64_t share)
{
    if (m->percent <= 0) {
        m->source = m->bytes > 0 ? MEMLIMIT_SIZE : MEMLIMIT_OFF;
        return m->bytes;
    }
    if (limit == 0) {
        m->source = MEMLIMIT_NO_LIMIT;
        return 0;
    }
    m->source = m->automatic ? MEMLIMIT_AUTO : MEMLIMIT_SHARE;
    return (uint64_t)((long double)share * m->percent / 100);
}

int memlimit_resolve(struct config *c, uint64_t limit, uint32_t workers, bool clamp,
                     char *err, size_t len)
{
    struct config_memlimit *soft = &c->recycle.max_rss_set;
    struct config_memlimit *hard = &c->recycle.max_rss_hard_set;
    uint64_t n = (uint64_t)workers + c->recycle.max_concurrent_recycles;
    char m1[16], m2[16], m3[16];

    c->recycle.share = limit > 0 && n > 0 ? limit / n : 0;
    c->recycle.max_rss = resolve_one(soft, limit, c->recycle.share);
    c->recycle.max_rss_hard = resolve_one(hard, limit, c->recycle.share);
    if (c->recycle.max_rss == 0 || c->recycle.max_rss_hard == 0 ||
        c->recycle.max_rss_hard > c->recycle.max_rss)
        return 0;
    if (clamp) {
        c->recycle.max_rss = c->recycle.max_rss_hard / CLAMP_DEN * CLAMP_NUM;
        soft->source = MEMLIMIT_CLAMPED;
        return 1;
    }
    /* The one that is a share says what it came to. */
    snprintf(err, len,
             "%s:%d: [recycle] max_rss_hard: expected more than max_rss "
             "(%s%s%s), got \"%s\" (%s%s%sthe cgroup's memory limit %s over workers %u "
             "+ max_concurrent_recycles %u)",
             c->path, hard->line, soft->text, soft->percent > 0 ? " = " : "",
             soft->percent > 0 ? memory_fmt(c->recycle.max_rss, m1, sizeof(m1)) : "",
             hard->text, hard->percent > 0 ? "= " : "",
             hard->percent > 0 ? memory_fmt(c->recycle.max_rss_hard, m2, sizeof(m2)) : "",
             hard->percent > 0 ? "; " : "", memory_fmt(limit, m3, sizeof(m3)), workers,
             c->recycle.max_concurrent_recycles);
    return -1;
}

/* One line of -t's output (stderr), or of the master's log. */
static void say(bool check, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(bool check, int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (check) {
        fprintf(stderr, "preforkd: %s", level == LOG_WARN ? "warning: " : "");
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    } else {
        log_vmsg(level, 0, fmt, ap);
    }
    va_end(ap);
}

/* What a key written as a share resolved to (nothing for a size). */
static void explain(bool check, const struct config *c, const struct cgroup *cg,
                    uint32_t workers, const char *key, const struct config_memlimit *m,
                    uint64_t bytes)
{
    char b1[16], b2[16], b3[16];

    if (m->percent <= 0)
        return;
    if (m->source == MEMLIMIT_NO_LIMIT) {
        say(check, LOG_WARN, "%s:%d: [recycle] %s = %s: %s is off: %s", c->path, m->line,
            key, m->text, key, cg->why);
        return;
    }
    say(check, LOG_INFO,
        "[recycle] %s = %s: %s%s (%g%% of %s per worker: the cgroup's "
        "memory limit %s over workers %u + max_concurrent_recycles %u)",
        key, m->text, memory_fmt(bytes, b1, sizeof(b1)),
        m->source == MEMLIMIT_CLAMPED ? ", lowered below max_rss_hard" : "", m->percent,
        memory_fmt(c->recycle.share, b2, sizeof(b2)),
        memory_fmt(cg->limit, b3, sizeof(b3)), workers,
        c->recycle.max_concurrent_recycles);
}

static void explain_both(bool check, const struct config *c, const struct cgroup *cg,
                         uint32_t workers)
{
    explain(check, c, cg, workers, "max_rss", &c->recycle.max_rss_set,
            c->recycle.max_rss);
    explain(check, c, cg, workers, "max_rss_hard", &c->recycle.max_rss_hard_set,
            c->recycle.max_rss_hard);
    if (c->recycle.max_rss_set.source == MEMLIMIT_CLAMPED)
        say(check, LOG_WARN,
            "[recycle] max_rss %s is not below max_rss_hard with %u "
            "workers: recycling at 4/5 of max_rss_hard until the share grows again",
            c->recycle.max_rss_set.text, workers);
}

int memlimit_check(struct config *cfg, char *err, size_t len)
{
    struct cgroup cg;

    cgroup_find(NULL, &cg);
    if (memlimit_resolve(cfg, cg.limit, cfg->server.workers, false, err, len) < 0)
        return -1;
    explain_both(true, cfg, &cg, cfg->server.workers);
    return 0;
}

/* Finds the cgroup again (the master may have been moved, its limit
 * changed); a new one's oom_kill count is where naming starts. */
static void find_cgroup(struct master *ms, bool at_start)
{
    struct cgroup cg;
    char lim[16];
    uint64_t n;
    bool moved;

    cgroup_find(NULL, &cg);
    moved = at_start || strcmp(cg.dir, ms->cgroup.dir) != 0 ||
            cg.version != ms->cgroup.version;
    if (cg.limit > 0 && (moved || cg.limit != ms->cgroup.limit))
        log_info("cgroup %s %s: memory limit %s", cgroup_version_name(cg.version),
                 cg.path, memory_fmt(cg.limit, lim, sizeof(lim)));
    ms->cgroup = cg;
    if (moved)
        ms->oom_claimed = cgroup_oom_kills(&cg, &n) == 0 ? n : 0;
}

int memlimit_start(struct master *ms)
{
    char err[1024];

    find_cgroup(ms, true);
    if (memlimit_resolve(ms->cfg, ms->cgroup.limit, ms->target, false, err, sizeof(err)) <
        0) {
        log_errx("%s", err);
        return -1;
    }
    explain_both(false, ms->cfg, &ms->cgroup, ms->target);
    return 0;
}

void memlimit_refresh(struct master *ms)
{
    find_cgroup(ms, false);
}

int memlimit_reload(const struct cgroup *cg, struct config *nc, char *err, size_t len)
{
    if (memlimit_resolve(nc, cg->limit, nc->server.workers, false, err, len) < 0)
        return -1;
    explain_both(false, nc, cg, nc->server.workers);
    return 0;
}

void memlimit_rescale(struct master *ms)
{
    uint64_t soft = ms->cfg->recycle.max_rss, hard = ms->cfg->recycle.max_rss_hard;

    if (ms->target == 0 || (ms->cfg->recycle.max_rss_set.percent <= 0 &&
                            ms->cfg->recycle.max_rss_hard_set.percent <= 0))
        return;
    find_cgroup(ms, false);
    memlimit_resolve(ms->cfg, ms->cgroup.limit, ms->target, true, NULL, 0);
    if (ms->cfg->recycle.max_rss == soft && ms->cfg->recycle.max_rss_hard == hard)
        return;
    explain_both(false, ms->cfg, &ms->cgroup, ms->target);
    /* Workers read their max_rss from their slot; older generations keep
     * the one their config gave them. */
    for (uint32_t i = 0; i < ms->nslots; i++)
        if (ms->w[i].pid != 0 && ms->w[i].generation == ms->generation)
            SB_SET(scoreboard_slot(ms->sb, i)->max_rss, ms->cfg->recycle.max_rss);
}

enum retire_reason memlimit_sigkill(struct master *ms, const struct worker *w,
                                    const char *how)
{
    char lim[16];
    uint64_t n;

    if (cgroup_oom_kills(&ms->cgroup, &n) < 0) {
        log_errx("worker %d (pid %d) %s, not by preforkd: probably the kernel's "
                 "OOM killer (see dmesg)",
                 w->id, (int)w->pid, how);
        return RETIRE_OOM;
    }
    if (n > ms->oom_claimed) {
        ms->oom_claimed++; /* two deaths of one rise by 2 are both named */
        if (ms->cgroup.limit > 0)
            log_errx("worker %d (pid %d) killed by the kernel's OOM killer: cgroup %s %s "
                     "at its memory limit of %s (oom_kill count %" PRIu64 "; %s)",
                     w->id, (int)w->pid, cgroup_version_name(ms->cgroup.version),
                     ms->cgroup.path, memory_fmt(ms->cgroup.limit, lim, sizeof(lim)), n,
                     how);
        else
            log_errx("worker %d (pid %d) killed by the kernel's OOM killer: cgroup %s %s "
                     "has no memory limit, the host ran out (oom_kill count %" PRIu64
                     "; %s)",
                     w->id, (int)w->pid, cgroup_version_name(ms->cgroup.version),
                     ms->cgroup.path, n, how);
        return RETIRE_OOM;
    }
    ms->oom_claimed = n; /* never above the count: a new cgroup starts lower */
    log_warnx("worker %d (pid %d) %s, neither by preforkd nor by the kernel's OOM "
              "killer (the cgroup's oom_kill count is still %" PRIu64 ")",
              w->id, (int)w->pid, how, n);
    return RETIRE_CRASH;
}
