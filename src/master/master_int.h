/*
 * master_int.h - the master's state and what the master's files share.
 * There is no global: master_run owns one struct master and hands it, as
 * `ms`, to every function that needs it; libev callbacks find it as their
 * loop's userdata. Policy (master.c, reload.c) writes it; stats.c renders
 * it through a const pointer. Master process only.
 */
#ifndef PF_MASTER_INT_H
#define PF_MASTER_INT_H

#include <stdbool.h>
#include <sys/types.h>

#include <ev.h>

#include "account.h"
#include "admin.h"
#include "app.h"
#include "cgroup.h"
#include "config.h"
#include "mold.h"
#include "scoreboard.h"

/* A worker the master asked a mold for, whose pid is not known yet. */
#define PID_PENDING ((pid_t)-1)

/* Where a worker is in the master's eyes. A worker "holds" its id (its
 * place in the pool) while ACTIVE or WANTS; once its replacement starts,
 * the replacement holds it. */
enum phase {
    PH_ACTIVE,    /* starting or serving */
    PH_WANTS,     /* reached a soft limit, waits for the recycle budget */
    PH_REPLACING, /* its replacement is starting; it still serves */
    PH_RETIRING,  /* TERM sent: finishing its connections */
    PH_KILLING,   /* hard limit: QUIT sent, SIGKILL at kill_at */
    PH_OLD,       /* an older generation: serves until the new one does */
};

enum reload_state { RL_NONE, RL_IN_PROGRESS, RL_DONE, RL_FAILED };

struct worker {
    pid_t pid; /* 0: slot free; PID_PENDING: asked of the mold */
    int id;    /* place in the pool, 1..target */
    uint32_t generation;
    enum phase phase;
    enum retire_reason reason; /* decided by the master; NONE otherwise */
    ev_tstamp spawned, phase_since, kill_at;
    int replacement;  /* slot index of its replacement, or -1 */
    bool served;      /* reported SERVING */
    bool killed;      /* we sent SIGKILL */
    bool quiet;       /* a recycle's replacement: its steps log at debug;
                          * the retirement line is the recycle's one line */
    int deferred_sig; /* signalled while PID_PENDING: sent once known */
    /* relay.c: the master's end of the worker's command socket pair, and
     * the admin request waiting for its answer (token 0: none). */
    int ctl_fd;
    uint32_t ctl_seq;
    uint64_t ctl_token;
    double ctl_wait; /* seconds it may take, for the 504's message */
    ev_io ctl_io;
    ev_timer ctl_timer;
};

/* A mold as the master sees it (spawn.c). */
struct mold_proc {
    pid_t pid; /* 0: none */
    int fd;    /* the master's end of the socket pair; -1: none */
    uint32_t generation;
    bool ready;  /* said MOLD_READY */
    bool killed; /* stuck: SIGKILL sent */
    ev_tstamp started;
    char error[MOLD_TEXT_MAX]; /* MOLD_FAILED's text, or "" */
    ev_io io;
};

enum mode { RUNNING, STOPPING };

/* A reload waiting for its new mold to load the app (reload.c). */
struct pending_reload {
    struct config *cfg; /* NULL: none */
    int *fds;
    struct listen_addr *spec;
};

/* What the callbacks saw, for master_step to act on: they never act. */
struct intent {
    bool stop, quick;                    /* TERM; INT or QUIT (or the app cannot start) */
    bool reload, winch, upgrade, reopen; /* HUP, WINCH, USR2, USR1 */
    int scale;                           /* TTIN +1, TTOU -1 each */
    bool tick;       /* the 1 s timer: hard limits, deadlines, reports */
    pid_t exit_pid;  /* a child ev_child reaped (0: none); each is acted */
    int exit_status; /* on before the next callback runs */
};

struct master_ops;

struct master {
    struct ev_loop *loop; /* its userdata is this struct (callbacks) */
    const struct master_ops *ops;
    struct intent intent;
    struct config *cfg;         /* the current generation's */
    struct mold_proc mold;      /* forks the current generation's workers */
    struct mold_proc next_mold; /* a reload's, while it loads the app */
    struct mold_proc old_mold;  /* the one before a reload, until it ends */
    struct pending_reload pending;
    int *lfds;
    struct listen_addr *lspec;     /* each listener as configured (port 0 kept) */
    struct listen_addr admin_spec; /* [admin] listen as configured */
    size_t nlisten;
    char *const *argv; /* for the binary upgrade */
    char self[4096];   /* the executable, resolved at start */
    struct scoreboard *sb;
    struct worker *w; /* nslots entries: w[i] is in slot i */
    uint32_t nslots;
    uint32_t target; /* workers wanted */
    uint32_t generation;
    int msg_rd, msg_wr;
    int handoff[2]; /* handoff.h: [0] leaving workers send, [1] serving ones receive */
    ev_tstamp handoff_stalled; /* since when serving workers take none; 0 = they do */
    enum mode mode;
    ev_tstamp started, stop_deadline;
    bool killed_all;
    unsigned boot_failures; /* in a row */
    ev_tstamp next_spawn;
    bool ever_served, ready;
    int exit_code;
    struct account account;
    uint32_t reloads; /* SIGHUPs acted on */
    enum reload_state reload_state;
    char reload_error[4096];
    ev_tstamp reload_started;
    pid_t heir_pid; /* the new master of a binary upgrade (USR2), while it
                          * lives: it shares the sockets, so never unlink */
    bool upgraded;  /* this master was started by a binary upgrade */
    pid_t heir_of;  /* then: the old master, its parent while it lives */
    char *pidfile;  /* the pidfile this master owns now (or NULL) */
    ev_tstamp last_watchdog;
    struct cgroup cgroup; /* the master's memory cgroup (memlimit.c) */
    uint64_t oom_claimed; /* its oom_kill count, as far as deaths were named by it */
    ev_signal sigs[9];
    ev_child child;
    ev_io msg_io;
    ev_timer tick, spawn_timer;
};

/* What master_step needs of the world, replaceable by a unit test (fake
 * clock, fake fork and kill): tests/unit/test_master.c. */
struct master_ops {
    ev_tstamp (*now)(struct master *ms);
    /* Whether workers can be forked now: the mold has loaded the app. The
     * real one starts a mold when there is none. */
    bool (*can_fork)(struct master *ms);
    /* Starts worker `id` in scoreboard slot `slot` (0-based) with ctl_fd
     * (its end of the command pair, or -1; the caller closes its copy):
     * its pid, PID_PENDING (the mold tells it later: master_mold_message),
     * or 0 when it cannot be asked for now. */
    pid_t (*fork_worker)(struct master *ms, int id, int slot, int ctl_fd);
    int (*kill)(pid_t pid, int sig);
    /* Starts the mold of a reload's generation gen into m (spawn_mold). */
    int (*start_mold)(struct master *ms, struct mold_proc *m, uint32_t gen,
                      const struct config *cfg, const int *fds, size_t nfds);
    /* Starts the new master of a binary upgrade (USR2): forks, and the
     * child execs this binary with the inherited sockets fds ("3,4u,..."
     * for INHERIT_ENV). Its pid, or -1. */
    pid_t (*start_heir)(struct master *ms, const char *fds);
};

/* Worker slots a master with cfg needs: every worker, a replacement each
 * within the recycle budget, and as many again for workers still leaving
 * after a hard kill. Fixed for the master's life (the scoreboard is sized
 * once). */
static inline uint32_t master_slots_for(const struct config *cfg)
{
    return 2 * cfg->server.max_workers + cfg->recycle.max_concurrent_recycles;
}

/* Start-up failures in a row back off from the first to the last. */
#define BOOT_BACKOFF_MIN 0.1
#define BOOT_BACKOFF_MAX 10.0

/* The master's clock (a fake one in test_master). */
static inline ev_tstamp master_now(struct master *ms)
{
    return ms->ops->now(ms);
}

/* The master's one decision point (master.c): acts on ms->intent and on the
 * state, at ms->ops->now(), in a fixed order: reap → stop → reopen logs
 * → scale → generations (reload, upgrade) → hard limits → recycle → spawn
 * → report. The only caller of master_signal, spawn and the molds' signals;
 * every callback ends by calling it. */
void master_step(struct master *ms);
/* A worker (ms->w[i]) was reaped with wait status wstatus. */
void master_reaped(struct master *ms, struct worker *w, int wstatus);
/* Reads every worker message waiting on the pipe, and records each. */
void master_read_messages(struct master *ms);
/* A worker's message (the pipe), already validated. */
void master_message(struct master *ms, struct worker *w, int type, int reason);
/* Sends sig to w through ms->ops (SIGKILL marks it killed). */
void master_signal(struct master *ms, struct worker *w, int sig);

/* In a child of the master: stops every master watcher and closes what
 * only the master uses (run.c). */
void master_forget_in_child(struct master *ms);
/* A mold's message (spawn.c reads, master.c decides). */
void master_mold_message(struct master *ms, struct mold_proc *m,
                         const struct mold_msg *msg);
/* A child was reaped: a mold? true when it was (and has been dealt with). */
bool master_mold_reaped(struct master *ms, pid_t pid, int wstatus);

/* relay.c: operators' commands to one worker (GET|POST /workers/ID/...). */
/* An admin_render_fn for /workers/...: answers now, or ADMIN_LATER. */
int relay_render(struct master *ms, const struct admin_req *rq, struct buf *out);
/* w is being forgotten (exited, or never forked): a waiting admin request
 * gets 502, the socket is closed, the watchers stopped. */
void relay_forget(struct master *ms, struct worker *w);
/* In a new mold: close the master's ends of every worker's pair. */
void relay_forget_in_child(struct master *ms);

/* spawn.c: the molds' mechanism. */
/* Forks a mold for generation gen with cfg and the listeners fds (any
 * other listener of the master is closed in it). 0 / -1 (logged). */
int spawn_mold(struct master *ms, struct mold_proc *m, uint32_t gen,
               const struct config *cfg, const int *fds, size_t nfds);
/* Asks m for worker id in slot (0-based), handing it the worker's end of its
 * command socket pair (or -1). 0 / -1 (the mold is gone or stuck). */
int spawn_ask(struct mold_proc *m, int id, int slot, int ctl_fd);
/* Reads every message waiting from both molds, without blocking. */
void spawn_read_all(struct master *ms);
/* The mold (current, next or old) with this pid, or NULL. */
struct mold_proc *spawn_find(struct master *ms, pid_t pid);
/* kill(2) for a mold, logged when it fails for another reason than ESRCH. */
void spawn_signal(struct master *ms, struct mold_proc *m, int sig);
/* Stops watching m, closes its socket and empties it (pid 0, fd -1). */
void spawn_forget(struct master *ms, struct mold_proc *m);
/* Moves the mold in from to to (to is forgotten first); from is emptied. */
void spawn_move(struct master *ms, struct mold_proc *to, struct mold_proc *from);

/* stats.c: the names /stats and preforkctl show for a phase, a reload. */
const char *master_phase_name(enum phase p);
const char *master_reload_state_name(enum reload_state s);

/* reload.c: HUP, WINCH, USR2, called by master_step. */
void master_reload(struct master *ms);
void master_winch(struct master *ms);
void master_upgrade(struct master *ms);
/* The real master_ops.start_heir. */
pid_t master_start_heir(struct master *ms, const char *fds);
/* A child of the master that is no worker: the new master of an upgrade?
 * true when it was (and it has been dealt with). */
bool master_upgrade_reaped(struct master *ms, pid_t pid, int wstatus);
/* The new generation serves: retire the old one, finish the reload. */
void master_reload_done(struct master *ms);
/* The reload's mold loaded the app: start the new generation. */
void master_reload_ready(struct master *ms);
/* The reload's mold ended before it was ready: refuse the reload. */
void master_reload_failed(struct master *ms, int wstatus, const char *why);
/* Closes a listener, unlinking a unix socket only when no other master
 * shares it. */
void master_close_listener(struct master *ms, int fd, const struct listen_addr *a);
/* Whether this master removes its unix socket files when it closes them:
 * not once it handed them to a new master, nor while the old master it
 * took them from lives (a rollback gives them back to it). */
bool master_owns_paths(struct master *ms);

#endif
