/*
 * master.c - supervision policy. Runs only in the master, on libev's default
 * loop. Callbacks (signals, child exits, worker and mold messages, the 1 s
 * tick, admin commands) only record what happened in the master's state;
 * master_step() then acts on it in a fixed order, and is the only place
 * that signals or starts a process. Mechanism (fork, signals in the child)
 * is in proc.c and spawn.c; the worker's side is worker.c. Returns: see
 * master.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "admin.h"
#include "handoff.h"
#include "inherit.h"
#include "recycle.h"
#include "listen.h"
#include "log.h"
#include "master.h"
#include "master_int.h"
#include "memlimit.h"
#include "memory.h"
#include "pidfile.h"
#include "proc.h"
#include "proctitle.h"
#include "sdnotify.h"
#include "stats.h"
#include "worker.h"

#define BOOT_BACKOFF_MIN 0.1  /* first retry after a failed boot */
#define BOOT_BACKOFF_MAX 10.0
#define QUICK_FAILURE 1.0     /* a worker dying younger than this failed */
#define KILL_GRACE 1.0        /* QUIT, then SIGKILL this much later */
#define QUICK_TIMEOUT 5.0     /* INT/QUIT: SIGKILL what is left after this */

struct master M;

static ev_tstamp real_now(void)
{
    return ev_now(M.loop);
}

static pid_t real_fork_worker(int id, int slot, int ctl_fd);
static bool real_can_fork(void);

static const struct master_ops real_ops = {
    .now = real_now, .can_fork = real_can_fork,
    .fork_worker = real_fork_worker, .kill = kill, .start_mold = spawn_mold,
};
const struct master_ops *master_ops = &real_ops;

static ev_tstamp now_(void)
{
    return master_ops->now();
}

const char *master_phase_name(enum phase p)
{
    static const char *const names[] = {"active", "wants_recycle", "replacing",
                                        "retiring", "killing", "old_generation"};
    return names[p];
}

const char *master_reload_state_name(enum reload_state s)
{
    static const char *const names[] = {"none", "in_progress", "done", "failed"};
    return names[s];
}

static struct slot *slot_of(const struct worker *w)
{
    return scoreboard_slot(M.sb, (int)(w - M.w) + 1);
}

static bool holds_id(const struct worker *w)
{
    return w->pid != 0 && w->generation == M.generation &&
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

void master_signal(struct worker *w, int sig)
{
    if (w->pid == PID_PENDING) {
        /* Sent when the mold tells its pid (master_mold_message). */
        if (sig_rank(sig) >= sig_rank(w->deferred_sig))
            w->deferred_sig = sig;
        return;
    }
    /* The worker may want to know why it goes (pf_worker_leaving). */
    if (w->reason != RETIRE_NONE && sig != SIGUSR1)
        SB_SET(slot_of(w)->retire_reason, w->reason);
    if (w->pid > 0 && master_ops->kill(w->pid, sig) < 0 && errno != ESRCH)
        log_warn("kill(%d, SIG%s)", (int)w->pid, sigabbrev_np(sig));
    if (sig == SIGKILL)
        w->killed = true;
}

/* See master_int.h. In a new mold: it and the workers it forks never run
 * a master watcher. */
void master_forget_in_child(void)
{
    for (size_t i = 0; i < sizeof(M.sigs) / sizeof(M.sigs[0]); i++)
        ev_signal_stop(M.loop, &M.sigs[i]);
    ev_child_stop(M.loop, &M.child);
    ev_io_stop(M.loop, &M.msg_io);
    ev_timer_stop(M.loop, &M.tick);
    ev_timer_stop(M.loop, &M.spawn_timer);
    admin_forget_in_child();
    close(M.msg_rd);
    ev_loop_fork(M.loop);
}

static int free_slot(void)
{
    for (uint32_t i = 0; i < M.nslots; i++)
        if (M.w[i].pid == 0)
            return (int)i;
    return -1;
}

/* Workers come from the current generation's mold, started here when
 * there is none (at start, or after it died: then with the boot back-off). */
static bool real_can_fork(void)
{
    if (M.mold.pid == 0 && M.mode == RUNNING &&
        spawn_mold(&M.mold, M.generation, M.cfg, M.lfds, M.nlisten) < 0)
        M.next_spawn = now_() + BOOT_BACKOFF_MAX;
    return M.mold.ready;
}

static pid_t real_fork_worker(int id, int slot, int ctl_fd)
{
    return spawn_ask(&M.mold, id, slot, ctl_fd) == 0 ? PID_PENDING : 0;
}

/* Forks worker `id` into slot index i. Returns 0, or -1 (retry later). */
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

static int spawn(int id, int i, bool quiet)
{
    struct worker *w = &M.w[i];
    struct slot *s = scoreboard_slot(M.sb, i + 1);
    pid_t pid;
    int pair[2];

    memset(s, 0, sizeof(*s));
    SB_SET(s->state, SLOT_STARTING);
    SB_SET(s->generation, M.generation);
    SB_SET(s->started_ms, scoreboard_wall_ms());
    SB_SET(s->forked_us, scoreboard_mono_us());
    SB_SET(s->heartbeat_ms, scoreboard_mono_ms());
    SB_SET(s->max_rss, M.cfg->recycle.max_rss);
    SB_SET(s->quiet, quiet);
    /* The worker's command channel (relay.c): without one it serves all
     * the same, only preforkctl's commands to it fail. */
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) < 0) {
        log_warn("socketpair for worker %d's commands", id);
        pair[0] = pair[1] = -1;
    }
    pid = master_ops->fork_worker(id, i + 1, pair[1]);
    if (pair[1] >= 0)
        close(pair[1]);
    if (pid == 0) {
        if (pair[0] >= 0)
            close(pair[0]);
        log_warn("fork for worker %d", id);
        SB_SET(s->state, SLOT_EMPTY);
        M.next_spawn = now_() + BOOT_BACKOFF_MIN;
        return -1;
    }
    *w = (struct worker){.pid = pid, .id = id, .generation = M.generation,
                         .phase = PH_ACTIVE, .spawned = now_(),
                         .phase_since = now_(), .replacement = -1,
                         .ctl_fd = pair[0], .quiet = quiet};
    if (pid != PID_PENDING) {
        SB_SET(s->pid, (int32_t)pid);
        say_spawned(w);
    }
    return 0;
}

/* Graceful: the worker finishes its connections and exits. */
static void retire(struct worker *w, enum retire_reason why)
{
    w->phase = PH_RETIRING;
    w->phase_since = now_();
    if (w->reason == RETIRE_NONE || !soft_reason(w->reason))
        w->reason = why;
    master_signal(w, SIGTERM);
}

/* Hard limit: exit now, SIGKILL after KILL_GRACE; replaced at once. */
static void hard_kill(struct worker *w, enum retire_reason why, const char *detail)
{
    log_warnx("worker %d (pid %d): %s: %s, killing it", w->id, (int)w->pid,
              recycle_reason_name(why), detail);
    w->phase = PH_KILLING;
    w->reason = why;
    w->kill_at = now_() + KILL_GRACE;
    master_signal(w, SIGQUIT);
}

static bool may_spawn(ev_tstamp now)
{
    if (now >= M.next_spawn)
        return master_ops->can_fork();
    ev_timer_stop(M.loop, &M.spawn_timer);
    ev_timer_set(&M.spawn_timer, M.next_spawn - now, 0.);
    ev_timer_start(M.loop, &M.spawn_timer);
    return false;
}

/* A moving average of how long hand-overs take, for the workers to ask for
 * their replacement that much ahead of max_rss (see recycle.c). */
static void learn_handover(double secs)
{
    uint32_t old = SB_GET(M.sb->handover_us);
    double us = secs * 1e6;

    SB_SET(M.sb->handover_us, (uint32_t)(old ? 0.7 * old + 0.3 * us : us));
}

/* Replacements that serve retire their predecessors; recycles waiting for
 * the budget get a replacement, oldest request first. */
static void recycle(ev_tstamp now)
{
    uint32_t busy = 0, budget = M.cfg->recycle.max_concurrent_recycles;

    for (uint32_t i = 0; i < M.nslots; i++) {
        struct worker *w = &M.w[i];
        if (w->pid == 0)
            continue;
        if (w->phase == PH_REPLACING) {
            struct worker *r = &M.w[w->replacement];
            if (r->served || now - w->phase_since > M.cfg->server.timeout) {
                if (r->served)
                    learn_handover(now - w->phase_since);
                else
                    log_warnx("worker %d (pid %d): replacement not serving after "
                              "%.0fs: retiring anyway", w->id, (int)w->pid,
                              M.cfg->server.timeout);
                retire(w, w->reason);
            }
        }
        if (w->phase == PH_REPLACING || (w->phase == PH_RETIRING && soft_reason(w->reason)))
            busy++;
    }
    while (busy < budget) {
        struct worker *oldest = NULL;
        int i;
        for (uint32_t k = 0; k < M.nslots; k++)
            if (M.w[k].pid && M.w[k].phase == PH_WANTS &&
                (oldest == NULL || M.w[k].phase_since < oldest->phase_since))
                oldest = &M.w[k];
        if (oldest == NULL || !may_spawn(now) || (i = free_slot()) < 0)
            return;
        log_debug("worker %d (pid %d): %s: starting its replacement",
                  oldest->id, (int)oldest->pid, recycle_reason_name(oldest->reason));
        if (spawn(oldest->id, i, true) < 0)
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
static void mold_stuck(const struct worker *w)
{
    if (now_() - w->spawned <= M.cfg->server.timeout || M.mold.killed)
        return;
    log_errx("mold (pid %d) has not forked worker %d in %.0fs: killing it",
             (int)M.mold.pid, w->id, M.cfg->server.timeout);
    spawn_signal(&M.mold, SIGKILL);
    M.mold.killed = true;
}

/* The master's hard limits, once a second: no heartbeat, max_rss_hard. */
static void master_hard_limits(void)
{
    int64_t mono = scoreboard_mono_ms();
    double timeout_ms = M.cfg->server.timeout * 1000;
    char detail[192], m1[16], m2[16];

    for (uint32_t i = 0; i < M.nslots; i++) {
        struct worker *w = &M.w[i];
        struct slot *s = slot_of(w);
        struct mem_reader r;
        uint64_t mem;

        if (w->pid == 0 || w->phase == PH_KILLING)
            continue;
        if (w->pid == PID_PENDING) {
            mold_stuck(w);
            continue;
        }
        if ((double)(mono - SB_GET(s->heartbeat_ms)) > timeout_ms) {
            uint32_t len = SB_GET(s->in_app_len);
            snprintf(detail, sizeof(detail), "no heartbeat for %.1fs%s%.*s",
                     (double)(mono - SB_GET(s->heartbeat_ms)) / 1000,
                     len ? ", the app still on " : "",
                     (int)(len < sizeof(s->in_app) ? len : sizeof(s->in_app)), s->in_app);
            hard_kill(w, RETIRE_TIMEOUT, detail);
            continue;
        }
        if (M.cfg->recycle.max_rss_hard == 0 || memory_open(&r, w->pid) < 0)
            continue;
        if (memory_metric(&r, M.cfg->recycle.memory_metric, &mem) == 0 &&
            mem >= M.cfg->recycle.max_rss_hard) {
            SB_SET(s->mem, mem);
            snprintf(detail, sizeof(detail), "memory %s over %s",
                     memory_fmt(mem, m1, sizeof(m1)),
                     memory_fmt(M.cfg->recycle.max_rss_hard, m2, sizeof(m2)));
            hard_kill(w, RETIRE_MAX_RSS_HARD, detail);
        }
        memory_close(&r);
    }
}

/* A worker that could not boot: back off, or give up when the app can
 * never start (exit 70/78 before any worker ever served). */
static void back_off(void);

static void boot_failed(struct worker *w, int wstatus)
{
    int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 0;

    if ((code == EXIT_APP_INIT || code == EXIT_CONFIG) && !M.ever_served) {
        log_errx("worker %d could not boot (exit %d): %s, giving up", w->id, code,
                 code == EXIT_CONFIG ? "the configuration cannot be applied in a worker "
                                       "(the line before says what; preforkd -t finds it)"
                                     : "the app cannot start");
        M.exit_code = code;
        return;
    }
    back_off();
}

/* One more start-up failure in a row (a worker's or a mold's): the next
 * spawn waits, exponentially longer. */
static void back_off(void)
{
    double delay = BOOT_BACKOFF_MIN;

    M.boot_failures++;
    for (unsigned i = 1; i < M.boot_failures && delay < BOOT_BACKOFF_MAX; i++)
        delay *= 2;
    if (delay > BOOT_BACKOFF_MAX)
        delay = BOOT_BACKOFF_MAX;
    M.next_spawn = now_() + delay;
    if (M.boot_failures >= 3)
        log_errx("crash loop: %u workers in a row died at start-up; next "
                 "spawn in %.1fs", M.boot_failures, delay);
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
static void forget_worker(struct worker *w)
{
    int i = (int)(w - M.w);

    for (uint32_t k = 0; k < M.nslots; k++)
        if (M.w[k].pid && M.w[k].phase == PH_REPLACING && M.w[k].replacement == i) {
            M.w[k].phase = PH_WANTS; /* its replacement died: ask again */
            M.w[k].replacement = -1;
        }
    relay_forget(w);
    memset(slot_of(w), 0, sizeof(struct slot));
    memset(w, 0, sizeof(*w));
    w->replacement = -1;
    w->ctl_fd = -1;
}

/* Workers of generation gen whose pid their mold never told: it is gone,
 * so they will never be (a worker forked all the same has said so itself
 * over the pipe, and is known by now). */
static void drop_pending(uint32_t gen)
{
    for (uint32_t i = 0; i < M.nslots; i++)
        if (M.w[i].pid == PID_PENDING && M.w[i].generation == gen)
            forget_worker(&M.w[i]);
}

/* The pid of a worker asked of the mold is known: it now counts as any (a
 * signal decided for it meanwhile is sent by master_step). */
static void worker_known(struct worker *w, pid_t pid)
{
    SB_SET(slot_of(w)->pid, (int32_t)pid);
    w->pid = pid;
    say_spawned(w);
}

void master_mold_message(struct mold_proc *m, const struct mold_msg *msg)
{
    struct worker *w;

    if (msg->type == MOLD_READY) {
        m->ready = true;
        log_info("mold ready (pid %d, generation %u) after %.0f ms", (int)m->pid,
                 m->generation, (now_() - m->started) * 1000);
    } else if (msg->type == MOLD_FAILED) {
        snprintf(m->error, sizeof(m->error), "%s", msg->text);
    } else if (msg->type == MOLD_SPAWNED && msg->slot >= 1 &&
               (uint32_t)msg->slot <= M.nslots &&
               (w = &M.w[msg->slot - 1])->pid == PID_PENDING) {
        if (msg->pid > 0) {
            worker_known(w, msg->pid);
            return;
        }
        errno = msg->err;
        log_warn("mold: fork for worker %d", w->id);
        forget_worker(w);
        M.next_spawn = now_() + BOOT_BACKOFF_MIN;
    }
}

bool master_mold_reaped(pid_t pid, int wstatus)
{
    struct mold_proc *m = spawn_find(pid);
    char how[96];

    if (m == NULL)
        return false;
    proc_describe(wstatus, how, sizeof(how));
    drop_pending(m->generation);
    if (m == &M.next_mold) {
        master_reload_failed(wstatus, m->error);
    } else if (m == &M.old_mold || M.mode == STOPPING) {
        log_info("mold of generation %u (pid %d) %s", m->generation, (int)pid, how);
    } else if (!m->ready && !M.ever_served) {
        bool config = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == EXIT_CONFIG;

        log_errx("%s: the mold (pid %d) %s before it was ready; giving up",
                 config ? "the configuration cannot be applied (the line before says "
                          "what; preforkd -t finds it)" : "the app cannot start",
                 (int)pid, how);
        M.exit_code = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 0
                          ? WEXITSTATUS(wstatus) : EXIT_APP_INIT;
        M.intent.quick = true;
    } else {
        log_errx("mold (pid %d) %s%s: starting another; the workers go on "
                 "serving", (int)pid, how, m->ready ? "" : " before it was ready");
        back_off();
    }
    spawn_forget(m);
    return true;
}

/* A SIGKILL: for a crash or an OOM kill, one the master did not send (its
 * own carry w->reason and never count as either). */
static bool killed_outside(int wstatus)
{
    return WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL;
}

void master_reaped(struct worker *w, int wstatus)
{
    enum retire_reason why = exit_reason(w, wstatus);
    struct slot *s = slot_of(w);
    char how[96];

    proc_describe(wstatus, how, sizeof(how));
    if (why == RETIRE_OOM) /* the cgroup's oom_kill count tells */
        why = memlimit_sigkill(w, how);
    else if (why == RETIRE_CRASH)
        log_warnx("worker %d (pid %d) %s", w->id, (int)w->pid, how);
    account_retired(&M.account, w->id, s, why, how, SB_GET(s->max_rss)); /* its own limit */
    /* A crash loop: workers that die before they serve, or right after
     * (an app that crashes on every first request). A SIGKILL from outside
     * (an operator, the OOM killer) to a worker that served is not the
     * app failing to start: its replacement comes at once. */
    if (M.mode == RUNNING && (why == RETIRE_CRASH || why == RETIRE_OOM) &&
        (!w->served || (now_() - w->spawned < QUICK_FAILURE && !killed_outside(wstatus))))
        boot_failed(w, wstatus);
    forget_worker(w);
    if (M.exit_code != 0 && M.mode == RUNNING)
        M.intent.quick = true;
}

static void read_worker_msgs(void);

static void on_child(struct ev_loop *loop, ev_child *c, int revents)
{
    struct intent *in = &M.intent;

    /* What a child said before it ended is heard first: a worker's pid
     * from its mold, a worker's last message before its slot is reused. */
    spawn_read_all();
    read_worker_msgs();
    if (in->nexits == sizeof(in->exits) / sizeof(in->exits[0]))
        master_step(); /* never, as each exit is acted on at once: but safe */
    in->exits[in->nexits].pid = c->rpid;
    in->exits[in->nexits++].status = c->rstatus;
    master_step();
}

/* The current generation all serves: say so once, and finish a reload. */
static void generation_serving(void)
{
    uint32_t serving = 0;

    if (M.ready || M.mode != RUNNING || M.target == 0)
        return;
    for (uint32_t i = 0; i < M.nslots; i++)
        serving += holds_id(&M.w[i]) && M.w[i].served;
    if (serving < M.target)
        return;
    M.ready = true;
    log_info("ready: %u workers serving", serving);
    master_reload_done();
    if (M.upgraded) /* systemd follows the new master */
        sdnotify("MAINPID=%d\nREADY=1\nSTATUS=%u workers serving", (int)getpid(), serving);
    else
        sdnotify("READY=1\nSTATUS=%u workers serving", serving);
}

void master_message(struct worker *w, int type, int reason)
{
    if (type == MSG_SERVING) {
        w->served = true;
        M.ever_served = true;
    } else if (type == MSG_RECYCLE && w->phase == PH_ACTIVE &&
               reason > RETIRE_NONE && reason < RETIRE_NREASONS) {
        w->phase = PH_WANTS;
        w->reason = (enum retire_reason)reason;
        w->phase_since = now_();
    }
}

static void read_worker_msgs(void)
{
    struct worker_msg m;

    while (read(M.msg_rd, &m, sizeof(m)) == (ssize_t)sizeof(m)) {
        struct worker *w;
        if (m.slot < 1 || (uint32_t)m.slot > M.nslots)
            continue;
        w = &M.w[m.slot - 1];
        /* Its mold's word was lost (the mold died in between). */
        if (w->pid == PID_PENDING && m.pid > 0 && m.generation == w->generation)
            worker_known(w, m.pid);
        if (w->pid != m.pid)
            continue; /* from a worker already reaped */
        master_message(w, m.type, m.reason);
    }
}

static void on_msg(struct ev_loop *loop, ev_io *io, int revents)
{
    read_worker_msgs();
    master_step();
}

/* STATUS= for systemctl status, and WATCHDOG=1 only while the pool is of
 * use: something serves and no crash loop, so systemd restarts a master
 * that is alive but useless. */
static void notify_tick(ev_tstamp now)
{
    uint32_t serving = 0;
    uint64_t requests = 0;
    double every = sdnotify_watchdog_interval();

    for (uint32_t i = 0; i < M.nslots; i++) {
        struct slot *s = scoreboard_slot(M.sb, (int)i + 1);
        serving += M.w[i].pid && M.w[i].served && M.w[i].phase != PH_RETIRING;
        requests += SB_GET(s->requests);
    }
    sdnotify("STATUS=%u workers serving, generation %u, %llu requests by live workers",
             serving, M.generation, (unsigned long long)requests);
    if (every > 0 && now - M.last_watchdog >= every - 0.5 && serving > 0 &&
        M.boot_failures < 3 && M.mode == RUNNING) {
        sdnotify("WATCHDOG=1");
        M.last_watchdog = now;
    }
}

/* Handed-over connections wait in the queue for a worker that accepts. A
 * serving worker that does not (at worker_connections, or paused after
 * EMFILE) takes them when it can, as the kernel's backlog waits for it; but
 * an idle connection is not held longer than keepalive_timeout. When no
 * worker serves at all (a leaving worker saw another still serving, which
 * then left too), nobody will take them: close them now. */
static void handoff_sweep(void)
{
    bool serving = false;
    ev_tstamp now = now_();
    int n;

    for (uint32_t i = 0; i < M.nslots; i++) {
        const struct slot *s;

        if (!M.w[i].pid)
            continue;
        s = scoreboard_slot(M.sb, i + 1);
        if (SB_GET(s->accepting)) {
            M.handoff_stalled = 0;
            return;
        }
        serving |= SB_GET(s->state) == SLOT_SERVING;
    }
    if (serving && M.mode == RUNNING) {
        if (M.handoff_stalled == 0)
            M.handoff_stalled = now;
        if (now - M.handoff_stalled < M.cfg->server.keepalive_timeout)
            return;
    }
    if (M.handoff[1] >= 0 && (n = handoff_drain(M.handoff[1])) > 0)
        log_info("closed %d idle connections that no serving worker took", n);
    if (M.handoff_stalled != 0)
        M.handoff_stalled = now; /* the next ones get their full wait */
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    M.intent.tick = true;
    master_step();
}

static void on_spawn_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    master_step();
}

/* TERM (graceful) or INT/QUIT: every worker is told to go; the loop ends
 * when all are gone (step_stopping). */
static void master_stop(bool graceful)
{
    ev_tstamp now = now_();
    ev_tstamp limit = graceful ? M.cfg->server.graceful_timeout + KILL_GRACE
                               : QUICK_TIMEOUT;

    if (M.mode == STOPPING) {
        if (now + limit < M.stop_deadline)
            M.stop_deadline = now + limit;
        if (graceful)
            return;
    } else {
        M.mode = STOPPING;
        M.stop_deadline = now + limit;
        sdnotify("STOPPING=1");
        /* Refuse new connections at once rather than let them queue for
         * workers that are leaving. */
        for (size_t i = 0; i < M.nlisten; i++)
            master_close_listener(M.lfds[i], &M.cfg->server.listen[i]);
        M.nlisten = 0;
        /* No worker is forked any more; a reload in progress is dropped. */
        spawn_signal(&M.mold, SIGTERM);
        spawn_signal(&M.next_mold, SIGTERM);
        spawn_signal(&M.old_mold, SIGTERM);
    }
    for (uint32_t i = 0; i < M.nslots; i++) {
        if (M.w[i].pid == 0)
            continue;
        if (M.w[i].reason == RETIRE_NONE || M.w[i].phase != PH_RETIRING)
            M.w[i].reason = RETIRE_SHUTDOWN;
        M.w[i].phase = PH_RETIRING;
        SB_SET(M.sb->handoff_ok, 0); /* nobody will be left to take them */
        master_signal(&M.w[i], graceful ? SIGTERM : SIGQUIT);
    }
}

/* Stopping: SIGKILL whatever is left at the deadline; the loop ends when
 * every child is gone. */
static void step_stopping(ev_tstamp now)
{
    uint32_t live = (M.mold.pid > 0) + (M.next_mold.pid > 0) + (M.old_mold.pid > 0);

    for (uint32_t i = 0; i < M.nslots; i++)
        live += M.w[i].pid != 0;
    if (live == 0) {
        ev_break(M.loop, EVBREAK_ALL);
    } else if (now >= M.stop_deadline && !M.killed_all) {
        log_warnx("%u processes still running after the stop deadline: SIGKILL", live);
        for (uint32_t i = 0; i < M.nslots; i++)
            master_signal(&M.w[i], SIGKILL);
        spawn_signal(&M.mold, SIGKILL);
        spawn_signal(&M.next_mold, SIGKILL);
        spawn_signal(&M.old_mold, SIGKILL);
        M.killed_all = true;
    }
}

/* Children that ended, and the signals decided for workers whose pid their
 * mold has told since. */
static void step_reap(void)
{
    struct intent *in = &M.intent;

    for (uint32_t k = 0; k < in->nexits; k++) {
        pid_t pid = in->exits[k].pid;
        int wstatus = in->exits[k].status;

        if (master_upgrade_reaped(pid, wstatus) || master_mold_reaped(pid, wstatus))
            continue;
        for (uint32_t i = 0; i < M.nslots; i++)
            if (M.w[i].pid == pid) {
                master_reaped(&M.w[i], wstatus);
                break;
            }
    }
    in->nexits = 0;
    for (uint32_t i = 0; i < M.nslots; i++) {
        int sig = M.w[i].deferred_sig;

        if (M.w[i].pid > 0 && sig) {
            M.w[i].deferred_sig = 0;
            master_signal(&M.w[i], sig);
        }
    }
}

/* USR1: the master's log, then every worker's and the mold's. */
static void reopen_logs(void)
{
    log_info("received SIGUSR1: reopening log files");
    if (log_reopen() < 0)
        log_warn("reopening the error log");
    for (uint32_t i = 0; i < M.nslots; i++)
        master_signal(&M.w[i], SIGUSR1);
    spawn_signal(&M.mold, SIGUSR1);
}

/* TTIN, TTOU: one worker more or fewer per signal, within 1..max_workers. */
static void step_scale(void)
{
    for (; M.intent.scale > 0; M.intent.scale--) {
        if (M.target < M.cfg->server.max_workers)
            M.target++;
        log_info("received SIGTTIN: %u workers wanted", M.target);
        memlimit_rescale(); /* a share of the cgroup's memory is smaller now */
    }
    for (; M.intent.scale < 0; M.intent.scale++) {
        if (M.target > 1)
            M.target--;
        log_info("received SIGTTOU: %u workers wanted", M.target);
        memlimit_rescale();
    }
}

/* HUP, the next generation's mold ready, the new generation serving (and
 * its deadline), WINCH, USR2. */
static void step_generations(ev_tstamp now)
{
    struct intent *in = &M.intent;

    if (in->reload)
        master_reload();
    if (M.pending.cfg != NULL && M.next_mold.ready)
        master_reload_ready();
    generation_serving();
    if (in->tick && M.reload_state == RL_IN_PROGRESS &&
        now - M.reload_started > M.cfg->server.timeout) {
        snprintf(M.reload_error, sizeof(M.reload_error), "generation %u not "
                 "serving after %.0fs; the old generation goes on serving",
                 M.generation, M.cfg->server.timeout);
        log_errx("reload failed: %s", M.reload_error);
        M.reload_state = RL_FAILED;
    }
    if (in->winch)
        master_winch();
    if (in->upgrade)
        master_upgrade();
    in->reload = in->winch = in->upgrade = false;
}

/* Hard limits: the KILL after a QUIT's grace; on the tick, no heartbeat and
 * max_rss_hard (and a worker alive longer than QUICK_FAILURE ends a crash
 * loop). */
static void step_hard_limits(ev_tstamp now)
{
    for (uint32_t i = 0; i < M.nslots; i++) {
        struct worker *w = &M.w[i];
        if (w->pid && w->phase == PH_KILLING && !w->killed && now >= w->kill_at)
            master_signal(w, SIGKILL);
    }
    if (!M.intent.tick)
        return;
    for (uint32_t i = 0; i < M.nslots; i++)
        if (M.w[i].pid && M.w[i].served && now - M.w[i].spawned >= QUICK_FAILURE)
            M.boot_failures = 0;
    master_hard_limits();
}

/* The pool as wanted: ids above the target retire, missing ones are
 * spawned (and a mold started before a worker is needed). */
static void step_spawn(ev_tstamp now)
{
    for (uint32_t i = 0; i < M.nslots; i++)
        if (holds_id(&M.w[i]) && (uint32_t)M.w[i].id > M.target)
            retire(&M.w[i], RETIRE_SCALE);
    if (M.mold.pid == 0 && M.target > 0)
        (void)may_spawn(now);
    for (uint32_t id = 1; id <= M.target; id++) {
        bool held = false;
        int i;
        for (uint32_t k = 0; k < M.nslots && !held; k++)
            held = holds_id(&M.w[k]) && (uint32_t)M.w[k].id == id;
        if (held)
            continue;
        if (!may_spawn(now) || (i = free_slot()) < 0 || spawn((int)id, i, false) < 0)
            return;
    }
}

/* On the tick: systemd's STATUS and watchdog, handed-over connections
 * nobody takes. */
static void step_report(ev_tstamp now)
{
    if (!M.intent.tick)
        return;
    M.intent.tick = false;
    notify_tick(now);
    SB_SET(M.sb->handoff_ok, M.mode == RUNNING && M.target > 0);
    handoff_sweep();
}

/* See master_int.h. The ladder: each rung acts on what the callbacks
 * recorded and on what the rungs above decided. */
void master_step(void)
{
    ev_tstamp now = now_();

    step_reap();
    if (M.intent.quick)
        master_stop(false);
    else if (M.intent.stop)
        master_stop(true);
    M.intent.quick = M.intent.stop = false;
    if (M.intent.reopen)
        reopen_logs();
    M.intent.reopen = false;
    if (M.mode == STOPPING) {
        M.intent.scale = 0;
        M.intent.reload = M.intent.winch = M.intent.upgrade = false;
        step_stopping(now);
        step_report(now);
        return;
    }
    step_scale();
    step_generations(now);
    step_hard_limits(now);
    recycle(now);
    step_spawn(now);
    step_report(now);
}

/* Records what the signal asks for; master_step acts on it. */
static void on_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
    struct intent *in = &M.intent;

    switch (s->signum) {
    case SIGTERM:
        log_info("received SIGTERM: graceful shutdown");
        in->stop = true;
        break;
    case SIGINT:
    case SIGQUIT:
        log_info("received SIG%s: quick shutdown", sigabbrev_np(s->signum));
        in->quick = true;
        break;
    case SIGTTIN:
        in->scale++;
        break;
    case SIGTTOU:
        in->scale--;
        break;
    case SIGHUP:
        in->reload = true;
        break;
    case SIGWINCH:
        in->winch = true;
        break;
    case SIGUSR2:
        in->upgrade = true;
        break;
    case SIGUSR1:
        in->reopen = true;
        break;
    default:
        break;
    }
    master_step();
}

static void start_watchers(void)
{
    int nums[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN,
                  SIGTTOU, SIGUSR1, SIGUSR2, SIGWINCH};

    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        ev_signal_init(&M.sigs[i], on_signal, nums[i]);
        ev_signal_start(M.loop, &M.sigs[i]);
    }
    signal(SIGPIPE, SIG_IGN);
    ev_child_init(&M.child, on_child, 0, 0);
    ev_child_start(M.loop, &M.child);
    ev_io_init(&M.msg_io, on_msg, M.msg_rd, EV_READ);
    ev_io_start(M.loop, &M.msg_io);
    ev_timer_init(&M.tick, on_tick, 1., 1.);
    ev_timer_start(M.loop, &M.tick);
    ev_init(&M.spawn_timer, on_spawn_timer);
}

/* Binds every listener; -1 after logging which address failed. */
static int open_listeners(void)
{
    struct config *c = M.cfg;

    M.lfds = calloc(c->server.nlisten, sizeof(int));
    M.lspec = calloc(c->server.nlisten, sizeof(*M.lspec));
    if (M.lfds == NULL || M.lspec == NULL)
        return -1;
    for (size_t i = 0; i < c->server.nlisten; i++) {
        struct listen_addr *a = &c->server.listen[i];
        int fd;

        M.lspec[i] = *a;
        if ((fd = inherit_take(a)) >= 0) {
            log_info("listening on %s (inherited)", a->text);
            (void)listen_tune(fd, a);
        } else if ((fd = listen_open(a, (int)c->server.backlog)) >= 0) {
            log_info("listening on %s", a->text);
        } else {
            log_err("listen on %s", a->text);
            return -1;
        }
        M.lfds[M.nlisten++] = fd;
    }
    return 0;
}

/* Everything before the loop; returns 0 or an exit code. */
static int setup(void)
{
    int pfd[2];

    M.upgraded = getenv(INHERIT_ENV) != NULL;
    M.heir_of = M.upgraded ? getppid() : 0;
    if (getenv(GENERATION_ENV) != NULL) {
        M.generation = (uint32_t)strtoul(getenv(GENERATION_ENV), NULL, 10);
        M.generation = M.generation ? M.generation : 1;
        unsetenv(GENERATION_ENV);
    }
    sdnotify_init(M.heir_of);
    if (inherit_collect() > 0)
        log_info("%s: adopting inherited sockets", M.upgraded ?
                 "binary upgrade" : "socket activation");
    if (M.cfg->server.pidfile) {
        if (pidfile_write(M.cfg->server.pidfile) < 0)
            return 1;
        M.pidfile = strdup(M.cfg->server.pidfile);
    }
    if (open_listeners() < 0)
        return 1;
    /* Workers are forked by a mold, a child of ours, and become ours when
     * the middle process of the double fork exits (mold.c). */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        log_err("master: prctl(PR_SET_CHILD_SUBREAPER)");
        return 1;
    }
    M.nslots = master_slots_for(M.cfg);
    M.sb = scoreboard_create(M.nslots);
    M.w = calloc(M.nslots, sizeof(*M.w));
    if (M.sb == NULL || M.w == NULL) {
        log_err("master: allocating %u worker slots", M.nslots);
        return 1;
    }
    for (uint32_t i = 0; i < M.nslots; i++)
        M.w[i].ctl_fd = -1;
    if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0) {
        log_err("master: pipe");
        return 1;
    }
    M.msg_rd = pfd[0];
    M.msg_wr = pfd[1];
    if (handoff_pair(M.handoff) < 0) {
        log_err("master: socketpair");
        return 1;
    }
    SB_SET(M.sb->handoff_ok, 1);
    M.admin_spec = M.cfg->admin.listen;
    if (M.cfg->admin.enabled &&
        admin_start(M.loop, &M.cfg->admin.listen, stats_render) < 0)
        return 1;
    inherit_close_rest();
    return 0;
}

static void teardown(void)
{
    admin_stop(master_owns_paths());
    for (size_t i = 0; i < M.nlisten; i++)
        master_close_listener(M.lfds[i], &M.cfg->server.listen[i]);
    M.nlisten = 0;
    spawn_forget(&M.mold);
    spawn_forget(&M.next_mold);
    spawn_forget(&M.old_mold);
    if (M.sb)
        scoreboard_destroy(M.sb);
    free(M.w);
    free(M.lfds);
    free(M.lspec);
    if (M.msg_rd > 0) {
        close(M.msg_rd);
        close(M.msg_wr);
    }
    if (M.handoff[0] > 0) {
        close(M.handoff[0]);
        close(M.handoff[1]);
    }
    if (M.pidfile)
        pidfile_remove(M.pidfile);
    free(M.pidfile);
}

int master_run(struct config *cfg, char *const *argv)
{
    int rc;
    ssize_t n = readlink("/proc/self/exe", M.self, sizeof(M.self) - 1);

    /* Resolved now: a binary upgrade execs whatever is at this path then. */
    M.self[n > 0 ? n : 0] = '\0';
    M.argv = argv;
    /* On the heap like every config a reload loads, so each is freed alike. */
    if ((M.cfg = malloc(sizeof(*M.cfg))) == NULL)
        fatal("master: out of memory");
    *M.cfg = *cfg;
    cfg = M.cfg;
    M.loop = EV_DEFAULT;
    M.mold.fd = M.next_mold.fd = M.old_mold.fd = -1;
    M.started = now_();
    M.generation = 1;
    M.target = cfg->server.workers;
    log_set_role("master");
    proctitle_set("master -c %s", cfg->path);
    log_info("preforkd starting: %u workers, app %s%s", cfg->server.workers,
             cfg->app.module, cfg->server.preload ? " (preloaded)" : "");
    rc = memlimit_start() < 0 ? EXIT_CONFIG : setup();
    if (rc == 0) {
        start_watchers();
        master_step();
        ev_run(M.loop, 0);
        rc = M.exit_code;
    }
    teardown();
    if (rc == 0)
        log_info("shutdown complete");
    else
        log_errx("exiting with status %d", rc);
    config_free(M.cfg);
    free(M.cfg);
    return rc;
}
