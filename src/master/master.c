/*
 * master.c - supervision policy: master_step, the master's one decision
 * point, and the rungs it runs in a fixed order. Runs only in the master.
 * The callbacks (run.c: signals, child exits, worker messages, the 1 s
 * tick; spawn.c: mold messages; relay.c: admin commands) only record what
 * happened in the master's state; master_step then acts on it, and is the
 * only place that signals or starts a process. Mechanism (fork, signals in
 * the child) is in proc.c and spawn.c; the worker's side is worker.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "handoff.h"
#include "log.h"
#include "master_int.h"
#include "memlimit.h"
#include "memory.h"
#include "proc.h"
#include "recycle.h"
#include "sdnotify.h"
#include "worker.h"

#define QUICK_FAILURE 1.0 /* a worker dying younger than this failed */
#define KILL_GRACE 1.0    /* QUIT, then SIGKILL this much later */
#define QUICK_TIMEOUT 5.0 /* INT/QUIT: SIGKILL what is left after this */

static struct slot *slot_of(struct master *ms, const struct worker *w)
{
    return scoreboard_slot(ms->sb, (uint32_t)(w - ms->w));
}

static bool holds_id(struct master *ms, const struct worker *w)
{
    return w->pid != 0 && w->generation == ms->generation &&
           (w->phase == PH_ACTIVE || w->phase == PH_WANTS);
}

static bool soft_reason(enum retire_reason r)
{
    return r == RETIRE_MAX_REQUESTS || r == RETIRE_MAX_RSS || r == RETIRE_LIFETIME ||
           r == RETIRE_REQUESTED;
}

/* How strong a signal is to a worker, to keep the strongest deferred one. */
static int sig_rank(int sig)
{
    return sig == SIGKILL ? 3 : sig == SIGQUIT || sig == SIGINT ? 2 : sig == SIGTERM;
}

void master_signal(struct master *ms, struct worker *w, int sig)
{
    if (w->pid == PID_PENDING) {
        /* Sent when the mold tells its pid (master_mold_message). */
        if (sig_rank(sig) >= sig_rank(w->deferred_sig))
            w->deferred_sig = sig;
        return;
    }
    /* The worker may want to know why it goes (pf_worker_leaving). */
    if (w->reason != RETIRE_NONE && sig != SIGUSR1)
        SB_SET(slot_of(ms, w)->retire_reason, w->reason);
    if (w->pid > 0 && ms->ops->kill(w->pid, sig) < 0 && errno != ESRCH)
        log_warn("kill(%d, SIG%s)", (int)w->pid, sigabbrev_np(sig));
    if (sig == SIGKILL)
        w->killed = true;
}

static int free_slot(struct master *ms)
{
    for (uint32_t i = 0; i < ms->nslots; i++)
        if (ms->w[i].pid == 0)
            return (int)i;
    return -1;
}

/* A spawn's line: at info, except for a recycle's replacement (the old
 * worker's retirement line tells that recycle, once). */
static void say_spawned(const struct worker *w)
{
    if (w->quiet)
        log_debug("worker %d spawned (pid %d, generation %u)", w->id, (int)w->pid,
                  w->generation);
    else
        log_info("worker %d spawned (pid %d, generation %u)", w->id, (int)w->pid,
                 w->generation);
}

/* Forks worker `id` into slot i. Returns 0, or -1 (retry later). */
static int spawn(struct master *ms, int id, int i, bool quiet)
{
    struct worker *w = &ms->w[i];
    struct slot *s = scoreboard_slot(ms->sb, i);
    pid_t pid;
    int pair[2];

    memset(s, 0, sizeof(*s));
    SB_SET(s->state, SLOT_STARTING);
    SB_SET(s->generation, ms->generation);
    SB_SET(s->started_ms, scoreboard_wall_ms());
    SB_SET(s->forked_us, scoreboard_mono_us());
    SB_SET(s->heartbeat_ms, scoreboard_mono_ms());
    SB_SET(s->max_rss, ms->cfg->recycle.max_rss);
    SB_SET(s->quiet, quiet);
    /* The worker's command channel (relay.c): without one it serves all
     * the same, only preforkctl's commands to it fail. */
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) < 0) {
        log_warn("socketpair for worker %d's commands", id);
        pair[0] = pair[1] = -1;
    }
    pid = ms->ops->fork_worker(ms, id, i, pair[1]);
    if (pair[1] >= 0)
        close(pair[1]);
    if (pid == 0) {
        if (pair[0] >= 0)
            close(pair[0]);
        log_warn("fork for worker %d", id);
        SB_SET(s->state, SLOT_EMPTY);
        ms->next_spawn = master_now(ms) + BOOT_BACKOFF_MIN;
        return -1;
    }
    *w = (struct worker){.pid = pid,
                         .id = id,
                         .generation = ms->generation,
                         .phase = PH_ACTIVE,
                         .spawned = master_now(ms),
                         .phase_since = master_now(ms),
                         .replacement = -1,
                         .ctl_fd = pair[0],
                         .quiet = quiet};
    if (pid != PID_PENDING) {
        SB_SET(s->pid, (int32_t)pid);
        say_spawned(w);
    }
    return 0;
}

/* Graceful: the worker finishes its connections and exits. */
static void retire(struct master *ms, struct worker *w, enum retire_reason why)
{
    w->phase = PH_RETIRING;
    w->phase_since = master_now(ms);
    if (w->reason == RETIRE_NONE || !soft_reason(w->reason))
        w->reason = why;
    master_signal(ms, w, SIGTERM);
}

/* Hard limit: exit now, SIGKILL after KILL_GRACE; replaced at once. */
static void hard_kill(struct master *ms, struct worker *w, enum retire_reason why,
                      const char *detail)
{
    log_warnx("worker %d (pid %d): %s: %s, killing it", w->id, (int)w->pid,
              recycle_reason_name(why), detail);
    w->phase = PH_KILLING;
    w->reason = why;
    w->kill_at = master_now(ms) + KILL_GRACE;
    master_signal(ms, w, SIGQUIT);
}

static bool may_spawn(struct master *ms, ev_tstamp now)
{
    if (now >= ms->next_spawn)
        return ms->ops->can_fork(ms);
    ev_timer_stop(ms->loop, &ms->spawn_timer);
    ev_timer_set(&ms->spawn_timer, ms->next_spawn - now, 0.);
    ev_timer_start(ms->loop, &ms->spawn_timer);
    return false;
}

/* A moving average of the replacement latency (fork to serving), for the
 * workers to ask for their replacement that much ahead of max_rss (see
 * recycle.c). */
static void learn_replace_time(struct master *ms, double secs)
{
    uint32_t old = SB_GET(ms->sb->replace_us);
    double us = secs * 1e6;

    SB_SET(ms->sb->replace_us, (uint32_t)(old ? 0.7 * old + 0.3 * us : us));
}

/* Replacements that serve retire their predecessors; recycles waiting for
 * the budget get a replacement, oldest request first. */
static void recycle(struct master *ms, ev_tstamp now)
{
    uint32_t busy = 0, budget = ms->cfg->recycle.max_concurrent_recycles;

    for (uint32_t i = 0; i < ms->nslots; i++) {
        struct worker *w = &ms->w[i];
        if (w->pid == 0)
            continue;
        if (w->phase == PH_REPLACING) {
            struct worker *r = &ms->w[w->replacement];
            if (r->served || now - w->phase_since > ms->cfg->server.timeout) {
                if (r->served)
                    learn_replace_time(ms, now - w->phase_since);
                else
                    log_warnx("worker %d (pid %d): replacement not serving after "
                              "%.0fs: retiring anyway",
                              w->id, (int)w->pid, ms->cfg->server.timeout);
                retire(ms, w, w->reason);
            }
        }
        if (w->phase == PH_REPLACING ||
            (w->phase == PH_RETIRING && soft_reason(w->reason)))
            busy++;
    }
    while (busy < budget) {
        struct worker *oldest = NULL;
        int i;
        for (uint32_t k = 0; k < ms->nslots; k++)
            if (ms->w[k].pid && ms->w[k].phase == PH_WANTS &&
                (oldest == NULL || ms->w[k].phase_since < oldest->phase_since))
                oldest = &ms->w[k];
        if (oldest == NULL || !may_spawn(ms, now) || (i = free_slot(ms)) < 0)
            return;
        log_debug("worker %d (pid %d): %s: starting its replacement", oldest->id,
                  (int)oldest->pid, recycle_reason_name(oldest->reason));
        if (spawn(ms, oldest->id, i, true) < 0)
            return;
        oldest->phase = PH_REPLACING;
        oldest->phase_since = now;
        oldest->replacement = i;
        busy++;
    }
}

/* A worker asked of the mold a whole timeout ago whose pid never came: the
 * mold is stuck (a lock held across fork by an app thread, say). Killed,
 * it is replaced, and its pending workers are asked again of the new one. */
static void mold_stuck(struct master *ms, const struct worker *w)
{
    if (master_now(ms) - w->spawned <= ms->cfg->server.timeout || ms->mold.killed)
        return;
    log_errx("mold (pid %d) has not forked worker %d in %.0fs: killing it",
             (int)ms->mold.pid, w->id, ms->cfg->server.timeout);
    spawn_signal(ms, &ms->mold, SIGKILL);
    ms->mold.killed = true;
}

/* The master's hard limits, once a second: no heartbeat, max_rss_hard. */
static void master_hard_limits(struct master *ms)
{
    int64_t mono = scoreboard_mono_ms();
    double timeout_ms = ms->cfg->server.timeout * 1000;
    char detail[192], m1[16], m2[16];

    for (uint32_t i = 0; i < ms->nslots; i++) {
        struct worker *w = &ms->w[i];
        struct slot *s = slot_of(ms, w);
        struct mem_reader r;
        uint64_t mem;

        if (w->pid == 0 || w->phase == PH_KILLING)
            continue;
        if (w->pid == PID_PENDING) {
            mold_stuck(ms, w);
            continue;
        }
        if ((double)(mono - SB_GET(s->heartbeat_ms)) > timeout_ms) {
            uint32_t len = SB_GET(s->in_app_len);
            snprintf(detail, sizeof(detail), "no heartbeat for %.1fs%s%.*s",
                     (double)(mono - SB_GET(s->heartbeat_ms)) / 1000,
                     len ? ", the app still on " : "",
                     (int)(len < sizeof(s->in_app) ? len : sizeof(s->in_app)), s->in_app);
            hard_kill(ms, w, RETIRE_TIMEOUT, detail);
            continue;
        }
        if (ms->cfg->recycle.max_rss_hard == 0 || memory_open(&r, w->pid) < 0)
            continue;
        if (memory_metric(&r, ms->cfg->recycle.memory_metric, &mem) == 0 &&
            mem >= ms->cfg->recycle.max_rss_hard) {
            SB_SET(s->mem, mem);
            snprintf(detail, sizeof(detail), "memory %s over %s",
                     memory_fmt(mem, m1, sizeof(m1)),
                     memory_fmt(ms->cfg->recycle.max_rss_hard, m2, sizeof(m2)));
            hard_kill(ms, w, RETIRE_MAX_RSS_HARD, detail);
        }
        memory_close(&r);
    }
}

/* A worker that could not boot: back off, or give up when the app can
 * never start (exit 70/78 before any worker ever served). */
static void back_off(struct master *ms);

static void boot_failed(struct master *ms, struct worker *w, int wstatus)
{
    int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 0;

    if ((code == EXIT_APP_INIT || code == EXIT_CONFIG) && !ms->ever_served) {
        log_errx("worker %d could not boot (exit %d): %s, giving up", w->id, code,
                 code == EXIT_CONFIG ? "the configuration cannot be applied in a worker "
                                       "(the line before says what; preforkd -t finds it)"
                                     : "the app cannot start");
        ms->exit_code = code;
        return;
    }
    back_off(ms);
}

/* One more start-up failure in a row (a worker's or a mold's): the next
 * spawn waits, exponentially longer. */
static void back_off(struct master *ms)
{
    double delay = BOOT_BACKOFF_MIN;

    ms->boot_failures++;
    for (unsigned i = 1; i < ms->boot_failures && delay < BOOT_BACKOFF_MAX; i++)
        delay *= 2;
    if (delay > BOOT_BACKOFF_MAX)
        delay = BOOT_BACKOFF_MAX;
    ms->next_spawn = master_now(ms) + delay;
    if (ms->boot_failures >= 3)
        log_errx("crash loop: %u workers in a row died at start-up; next "
                 "spawn in %.1fs",
                 ms->boot_failures, delay);
}

static enum retire_reason exit_reason(const struct worker *w, int wstatus)
{
    if (w->reason != RETIRE_NONE)
        return w->reason;
    if (WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
        return RETIRE_OOM; /* not ours: most likely the kernel's OOM killer */
    return RETIRE_CRASH;
}

/* Frees w's entry and slot; a worker it was replacing asks again. */
static void forget_worker(struct master *ms, struct worker *w)
{
    int i = (int)(w - ms->w);

    for (uint32_t k = 0; k < ms->nslots; k++)
        if (ms->w[k].pid && ms->w[k].phase == PH_REPLACING && ms->w[k].replacement == i) {
            ms->w[k].phase = PH_WANTS; /* its replacement died: ask again */
            ms->w[k].replacement = -1;
        }
    relay_forget(ms, w);
    memset(slot_of(ms, w), 0, sizeof(struct slot));
    memset(w, 0, sizeof(*w));
    w->replacement = -1;
    w->ctl_fd = -1;
}

/* Workers of generation gen whose pid their mold never told: it is gone,
 * so they will never be (a worker forked all the same has said so itself
 * over the pipe, and is known by now). */
static void drop_pending(struct master *ms, uint32_t gen)
{
    for (uint32_t i = 0; i < ms->nslots; i++)
        if (ms->w[i].pid == PID_PENDING && ms->w[i].generation == gen)
            forget_worker(ms, &ms->w[i]);
}

/* The pid of a worker asked of the mold is known: it now counts as any (a
 * signal decided for it meanwhile is sent by master_step). */
static void worker_known(struct master *ms, struct worker *w, pid_t pid)
{
    SB_SET(slot_of(ms, w)->pid, (int32_t)pid);
    w->pid = pid;
    say_spawned(w);
}

void master_mold_message(struct master *ms, struct mold_proc *m,
                         const struct mold_msg *msg)
{
    struct worker *w;

    if (msg->type == MOLD_READY) {
        m->ready = true;
        log_info("mold ready (pid %d, generation %u) after %.0f ms", (int)m->pid,
                 m->generation, (master_now(ms) - m->started) * 1000);
    } else if (msg->type == MOLD_FAILED) {
        snprintf(m->error, sizeof(m->error), "%s", msg->text);
    } else if (msg->type == MOLD_SPAWNED && msg->slot >= 0 &&
               (uint32_t)msg->slot < ms->nslots &&
               (w = &ms->w[msg->slot])->pid == PID_PENDING) {
        if (msg->pid > 0) {
            worker_known(ms, w, msg->pid);
            return;
        }
        errno = msg->err;
        log_warn("mold: fork for worker %d", w->id);
        forget_worker(ms, w);
        ms->next_spawn = master_now(ms) + BOOT_BACKOFF_MIN;
    }
}

bool master_mold_reaped(struct master *ms, pid_t pid, int wstatus)
{
    struct mold_proc *m = spawn_find(ms, pid);
    char how[96];

    if (m == NULL)
        return false;
    proc_describe(wstatus, how, sizeof(how));
    drop_pending(ms, m->generation);
    if (m == &ms->next_mold) {
        master_reload_failed(ms, wstatus, m->error);
    } else if (m == &ms->old_mold || ms->mode == STOPPING) {
        log_info("mold of generation %u (pid %d) %s", m->generation, (int)pid, how);
    } else if (!m->ready && !ms->ever_served) {
        bool config = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == EXIT_CONFIG;

        log_errx("%s: the mold (pid %d) %s before it was ready; giving up",
                 config ? "the configuration cannot be applied (the line before says "
                          "what; preforkd -t finds it)"
                        : "the app cannot start",
                 (int)pid, how);
        ms->exit_code = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 0
                            ? WEXITSTATUS(wstatus)
                            : EXIT_APP_INIT;
        ms->intent.quick = true;
    } else {
        log_errx("mold (pid %d) %s%s: starting another; the workers go on "
                 "serving",
                 (int)pid, how, m->ready ? "" : " before it was ready");
        back_off(ms);
    }
    spawn_forget(ms, m);
    return true;
}

/* A SIGKILL: for a crash or an OOM kill, one the master did not send (its
 * own carry w->reason and never count as either). */
static bool killed_outside(int wstatus)
{
    return WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL;
}

void master_reaped(struct master *ms, struct worker *w, int wstatus)
{
    enum retire_reason why = exit_reason(w, wstatus);
    struct slot *s = slot_of(ms, w);
    char how[96];

    proc_describe(wstatus, how, sizeof(how));
    if (why == RETIRE_OOM) /* the cgroup's oom_kill count tells */
        why = memlimit_sigkill(ms, w, how);
    else if (why == RETIRE_CRASH)
        log_warnx("worker %d (pid %d) %s", w->id, (int)w->pid, how);
    account_retired(&ms->account, w->id, s, why, how,
                    SB_GET(s->max_rss)); /* its own limit */
    /* A crash loop: workers that die before they serve, or right after
     * (an app that crashes on every first request). A SIGKILL from outside
     * (an operator, the OOM killer) to a worker that served is not the
     * app failing to start: its replacement comes at once. */
    if (ms->mode == RUNNING && (why == RETIRE_CRASH || why == RETIRE_OOM) &&
        (!w->served ||
         (master_now(ms) - w->spawned < QUICK_FAILURE && !killed_outside(wstatus))))
        boot_failed(ms, w, wstatus);
    forget_worker(ms, w);
    if (ms->exit_code != 0 && ms->mode == RUNNING)
        ms->intent.quick = true;
}

/* The current generation all serves: say so once, and finish a reload. */
static void generation_serving(struct master *ms)
{
    uint32_t serving = 0;

    if (ms->ready || ms->mode != RUNNING || ms->target == 0)
        return;
    for (uint32_t i = 0; i < ms->nslots; i++)
        serving += holds_id(ms, &ms->w[i]) && ms->w[i].served;
    if (serving < ms->target)
        return;
    ms->ready = true;
    log_info("ready: %u workers serving", serving);
    master_reload_done(ms);
    if (ms->upgraded) /* systemd follows the new master */
        sdnotify("MAINPID=%d\nREADY=1\nSTATUS=%u workers serving", (int)getpid(),
                 serving);
    else
        sdnotify("READY=1\nSTATUS=%u workers serving", serving);
}

void master_message(struct master *ms, struct worker *w, int type, int reason)
{
    if (type == MSG_SERVING) {
        w->served = true;
        ms->ever_served = true;
    } else if (type == MSG_RECYCLE && w->phase == PH_ACTIVE && reason > RETIRE_NONE &&
               reason < RETIRE_NREASONS) {
        w->phase = PH_WANTS;
        w->reason = (enum retire_reason)reason;
        w->phase_since = master_now(ms);
    }
}

void master_read_messages(struct master *ms)
{
    struct worker_msg m;

    while (read(ms->msg_rd, &m, sizeof(m)) == (ssize_t)sizeof(m)) {
        struct worker *w;
        if (m.slot < 0 || (uint32_t)m.slot >= ms->nslots)
            continue;
        w = &ms->w[m.slot];
        /* Its mold's word was lost (the mold died in between). */
        if (w->pid == PID_PENDING && m.pid > 0 && m.generation == w->generation)
            worker_known(ms, w, m.pid);
        if (w->pid != m.pid)
            continue; /* from a worker already reaped */
        master_message(ms, w, m.type, m.reason);
    }
}
/* STATUS= for systemctl status, and WATCHDOG=1 only while the pool is of
 * use: something serves and no crash loop, so systemd restarts a master
 * that is alive but useless. */
static void notify_tick(struct master *ms, ev_tstamp now)
{
    uint32_t serving = 0;
    uint64_t requests = 0;
    double every = sdnotify_watchdog_interval();

    for (uint32_t i = 0; i < ms->nslots; i++) {
        struct slot *s = scoreboard_slot(ms->sb, i);
        serving += ms->w[i].pid && ms->w[i].served && ms->w[i].phase != PH_RETIRING;
        requests += SB_GET(s->requests);
    }
    sdnotify("STATUS=%u workers serving, generation %u, %llu requests by live workers",
             serving, ms->generation, (unsigned long long)requests);
    if (every > 0 && now - ms->last_watchdog >= every - 0.5 && serving > 0 &&
        ms->boot_failures < 3 && ms->mode == RUNNING) {
        sdnotify("WATCHDOG=1");
        ms->last_watchdog = now;
    }
}

/* Handed-over connections wait in the queue for a worker that accepts. A
 * serving worker that does not (at worker_connections, or paused after
 * EMFILE) takes them when it can, as the kernel's backlog waits for it; but
 * an idle connection is not held longer than keepalive_timeout. When no
 * worker serves at all (a leaving worker saw another still serving, which
 * then left too), nobody will take them: close them now. */
static void handoff_sweep(struct master *ms)
{
    bool serving = false;
    ev_tstamp now = master_now(ms);
    int n;

    for (uint32_t i = 0; i < ms->nslots; i++) {
        const struct slot *s;

        if (!ms->w[i].pid)
            continue;
        s = scoreboard_slot(ms->sb, i);
        if (SB_GET(s->accepting)) {
            ms->handoff_stalled = 0;
            return;
        }
        serving |= SB_GET(s->state) == SLOT_SERVING;
    }
    if (serving && ms->mode == RUNNING) {
        if (ms->handoff_stalled == 0)
            ms->handoff_stalled = now;
        if (now - ms->handoff_stalled < ms->cfg->server.keepalive_timeout)
            return;
    }
    if (ms->handoff[1] >= 0 && (n = handoff_drain(ms->handoff[1])) > 0)
        log_info("closed %d idle connections that no serving worker took", n);
    if (ms->handoff_stalled != 0)
        ms->handoff_stalled = now; /* the next ones get their full wait */
}
/* TERM (graceful) or INT/QUIT: every worker is told to go; the loop ends
 * when all are gone (step_stopping). */
static void master_stop(struct master *ms, bool graceful)
{
    ev_tstamp now = master_now(ms);
    ev_tstamp limit = graceful ? ms->cfg->server.graceful_timeout + KILL_GRACE
                               : QUICK_TIMEOUT;

    if (ms->mode == STOPPING) {
        if (now + limit < ms->stop_deadline)
            ms->stop_deadline = now + limit;
        if (graceful)
            return;
    } else {
        ms->mode = STOPPING;
        ms->stop_deadline = now + limit;
        sdnotify("STOPPING=1");
        /* Refuse new connections at once rather than let them queue for
         * workers that are leaving. */
        for (size_t i = 0; i < ms->nlisten; i++)
            master_close_listener(ms, ms->lfds[i], &ms->cfg->server.listen[i]);
        ms->nlisten = 0;
        /* No worker is forked any more; a reload in progress is dropped. */
        spawn_signal(ms, &ms->mold, SIGTERM);
        spawn_signal(ms, &ms->next_mold, SIGTERM);
        spawn_signal(ms, &ms->old_mold, SIGTERM);
    }
    for (uint32_t i = 0; i < ms->nslots; i++) {
        if (ms->w[i].pid == 0)
            continue;
        if (ms->w[i].reason == RETIRE_NONE || ms->w[i].phase != PH_RETIRING)
            ms->w[i].reason = RETIRE_SHUTDOWN;
        ms->w[i].phase = PH_RETIRING;
        SB_SET(ms->sb->handoff_ok, 0); /* nobody will be left to take them */
        master_signal(ms, &ms->w[i], graceful ? SIGTERM : SIGQUIT);
    }
}

/* Stopping: SIGKILL whatever is left at the deadline; the loop ends when
 * every child is gone. */
static void step_stopping(struct master *ms, ev_tstamp now)
{
    uint32_t live = (ms->mold.pid > 0) + (ms->next_mold.pid > 0) + (ms->old_mold.pid > 0);

    for (uint32_t i = 0; i < ms->nslots; i++)
        live += ms->w[i].pid != 0;
    if (live == 0) {
        ev_break(ms->loop, EVBREAK_ALL);
    } else if (now >= ms->stop_deadline && !ms->killed_all) {
        log_warnx("%u processes still running after the stop deadline: SIGKILL", live);
        for (uint32_t i = 0; i < ms->nslots; i++)
            master_signal(ms, &ms->w[i], SIGKILL);
        spawn_signal(ms, &ms->mold, SIGKILL);
        spawn_signal(ms, &ms->next_mold, SIGKILL);
        spawn_signal(ms, &ms->old_mold, SIGKILL);
        ms->killed_all = true;
    }
}

/* Children that ended, and the signals decided for workers whose pid their
 * mold has told since. */
static void step_reap(struct master *ms)
{
    struct intent *in = &ms->intent;
    pid_t pid = in->exit_pid;

    in->exit_pid = 0;
    if (pid > 0 && !master_upgrade_reaped(ms, pid, in->exit_status) &&
        !master_mold_reaped(ms, pid, in->exit_status))
        for (uint32_t i = 0; i < ms->nslots; i++)
            if (ms->w[i].pid == pid) {
                master_reaped(ms, &ms->w[i], in->exit_status);
                break;
            }
    for (uint32_t i = 0; i < ms->nslots; i++) {
        int sig = ms->w[i].deferred_sig;

        if (ms->w[i].pid > 0 && sig) {
            ms->w[i].deferred_sig = 0;
            master_signal(ms, &ms->w[i], sig);
        }
    }
}

/* USR1: the master's log, then every worker's and the mold's. */
static void reopen_logs(struct master *ms)
{
    log_info("received SIGUSR1: reopening log files");
    if (log_reopen() < 0)
        log_warn("reopening the error log");
    for (uint32_t i = 0; i < ms->nslots; i++)
        master_signal(ms, &ms->w[i], SIGUSR1);
    spawn_signal(ms, &ms->mold, SIGUSR1);
}

/* TTIN, TTOU: one worker more or fewer per signal, within 1..max_workers. */
static void step_scale(struct master *ms)
{
    for (; ms->intent.scale > 0; ms->intent.scale--) {
        if (ms->target < ms->cfg->server.max_workers)
            ms->target++;
        log_info("received SIGTTIN: %u workers wanted", ms->target);
        memlimit_rescale(ms); /* a share of the cgroup's memory is smaller now */
    }
    for (; ms->intent.scale < 0; ms->intent.scale++) {
        if (ms->target > 1)
            ms->target--;
        log_info("received SIGTTOU: %u workers wanted", ms->target);
        memlimit_rescale(ms);
    }
}

/* HUP, the next generation's mold ready, the new generation serving (and
 * its deadline), WINCH, USR2. */
static void step_generations(struct master *ms, ev_tstamp now)
{
    struct intent *in = &ms->intent;

    if (in->reload)
        master_reload(ms);
    if (ms->pending.cfg != NULL && ms->next_mold.ready)
        master_reload_ready(ms);
    generation_serving(ms);
    if (in->tick && ms->reload_state == RL_IN_PROGRESS &&
        now - ms->reload_started > ms->cfg->server.timeout) {
        snprintf(ms->reload_error, sizeof(ms->reload_error),
                 "generation %u not "
                 "serving after %.0fs; the old generation goes on serving",
                 ms->generation, ms->cfg->server.timeout);
        log_errx("reload failed: %s", ms->reload_error);
        ms->reload_state = RL_FAILED;
    }
    if (in->winch)
        master_winch(ms);
    if (in->upgrade)
        master_upgrade(ms);
    in->reload = in->winch = in->upgrade = false;
}

/* Hard limits: the KILL after a QUIT's grace; on the tick, no heartbeat and
 * max_rss_hard (and a worker alive longer than QUICK_FAILURE ends a crash
 * loop). */
static void step_hard_limits(struct master *ms, ev_tstamp now)
{
    for (uint32_t i = 0; i < ms->nslots; i++) {
        struct worker *w = &ms->w[i];
        if (w->pid && w->phase == PH_KILLING && !w->killed && now >= w->kill_at)
            master_signal(ms, w, SIGKILL);
    }
    if (!ms->intent.tick)
        return;
    for (uint32_t i = 0; i < ms->nslots; i++)
        if (ms->w[i].pid && ms->w[i].served && now - ms->w[i].spawned >= QUICK_FAILURE)
            ms->boot_failures = 0;
    master_hard_limits(ms);
}

/* The pool as wanted: ids above the target retire, missing ones are
 * spawned (and a mold started before a worker is needed). */
static void step_spawn(struct master *ms, ev_tstamp now)
{
    for (uint32_t i = 0; i < ms->nslots; i++)
        if (holds_id(ms, &ms->w[i]) && (uint32_t)ms->w[i].id > ms->target)
            retire(ms, &ms->w[i], RETIRE_SCALE);
    if (ms->mold.pid == 0 && ms->target > 0)
        (void)may_spawn(ms, now);
    for (uint32_t id = 1; id <= ms->target; id++) {
        bool held = false;
        int i;
        for (uint32_t k = 0; k < ms->nslots && !held; k++)
            held = holds_id(ms, &ms->w[k]) && (uint32_t)ms->w[k].id == id;
        if (held)
            continue;
        if (!may_spawn(ms, now) || (i = free_slot(ms)) < 0 ||
            spawn(ms, (int)id, i, false) < 0)
            return;
    }
}

/* On the tick: systemd's STATUS and watchdog, handed-over connections
 * nobody takes. */
static void step_report(struct master *ms, ev_tstamp now)
{
    if (!ms->intent.tick)
        return;
    ms->intent.tick = false;
    notify_tick(ms, now);
    SB_SET(ms->sb->handoff_ok, ms->mode == RUNNING && ms->target > 0);
    handoff_sweep(ms);
}

/* See master_int.h. The ladder: each rung acts on what the callbacks
 * recorded and on what the rungs above decided. */
void master_step(struct master *ms)
{
    ev_tstamp now = master_now(ms);

    step_reap(ms);
    if (ms->intent.quick)
        master_stop(ms, false);
    else if (ms->intent.stop)
        master_stop(ms, true);
    ms->intent.quick = ms->intent.stop = false;
    if (ms->intent.reopen)
        reopen_logs(ms);
    ms->intent.reopen = false;
    if (ms->mode == STOPPING) {
        ms->intent.scale = 0;
        ms->intent.reload = ms->intent.winch = ms->intent.upgrade = false;
        step_stopping(ms, now);
        step_report(ms, now);
        return;
    }
    step_scale(ms);
    step_generations(ms, now);
    step_hard_limits(ms, now);
    recycle(ms, now);
    step_spawn(ms, now);
    step_report(ms, now);
}
