/*
 * master.c - supervision policy. Runs only in the master, on libev's default
 * loop: signals, child exits and worker messages record what happened; one
 * function, reconcile(), then decides what to do (spawn, kill, stop) from
 * that state and the time. Mechanism (fork, signals in the child) is in
 * proc.c; the worker's side is worker.c. Returns: see master.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>

#include <ev.h>

#include "app.h"
#include "listen.h"
#include "log.h"
#include "master.h"
#include "pidfile.h"
#include "proc.h"
#include "proctitle.h"
#include "scoreboard.h"
#include "worker.h"

#define BOOT_BACKOFF_MIN 0.1  /* first retry after a failed boot */
#define BOOT_BACKOFF_MAX 10.0
#define QUICK_FAILURE 1.0     /* a worker dying younger than this failed */
#define KILL_GRACE 1.0        /* after graceful_timeout, then SIGKILL */
#define QUICK_TIMEOUT 5.0     /* INT/QUIT: SIGKILL what is left after this */

enum mode { RUNNING, STOPPING };

struct worker {
    pid_t pid;          /* 0: slot free */
    uint32_t generation;
    ev_tstamp spawned;
    bool served;        /* reached SERVING */
};

static struct master {
    struct ev_loop *loop;
    struct config *cfg;
    struct app app;
    int *lfds;
    size_t nlisten;
    struct scoreboard *sb;
    struct worker *w;   /* cfg->server.max_workers slots, id = index + 1 */
    uint32_t target;    /* workers wanted */
    uint32_t generation;
    int msg_rd, msg_wr;
    enum mode mode;
    ev_tstamp stop_deadline;
    bool killed;        /* SIGKILL sent to the stragglers */
    unsigned boot_failures; /* in a row */
    ev_tstamp next_spawn;
    bool ever_served;
    bool ready;
    int exit_code;
    ev_signal sigs[9];
    ev_child child;
    ev_io msg_io;
    ev_timer tick, spawn_timer;
} M;

static uint32_t live_workers(void)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < M.cfg->server.max_workers; i++)
        n += M.w[i].pid != 0;
    return n;
}

static void signal_workers(int sig)
{
    for (uint32_t i = 0; i < M.cfg->server.max_workers; i++)
        if (M.w[i].pid > 0 && kill(M.w[i].pid, sig) < 0 && errno != ESRCH)
            log_warn("kill(%d, SIG%s)", (int)M.w[i].pid, sigabbrev_np(sig));
}

/* In the child, before worker_main: forget everything of the master's
 * loop, so the worker never runs a master watcher. */
static void child_forget_master(void)
{
    for (size_t i = 0; i < sizeof(M.sigs) / sizeof(M.sigs[0]); i++)
        ev_signal_stop(M.loop, &M.sigs[i]);
    ev_child_stop(M.loop, &M.child);
    ev_io_stop(M.loop, &M.msg_io);
    ev_timer_stop(M.loop, &M.tick);
    ev_timer_stop(M.loop, &M.spawn_timer);
    close(M.msg_rd);
    ev_loop_fork(M.loop);
}

static void spawn(int id)
{
    struct worker *w = &M.w[id - 1];
    struct slot *s = scoreboard_slot(M.sb, id);
    pid_t pid;

    memset(s, 0, sizeof(*s));
    SB_SET(s->state, SLOT_STARTING);
    SB_SET(s->generation, M.generation);
    SB_SET(s->started_ms, scoreboard_wall_ms());
    pid = proc_fork();
    if (pid < 0) {
        log_warn("fork for worker %d", id);
        SB_SET(s->state, SLOT_EMPTY);
        M.next_spawn = ev_now(M.loop) + BOOT_BACKOFF_MIN;
        return;
    }
    if (pid == 0) {
        struct worker_boot boot = {
            .id = id, .generation = M.generation, .cfg = M.cfg,
            .app = &M.app, .listen_fds = M.lfds, .nlisten = M.nlisten,
            .sb = M.sb, .msg_fd = M.msg_wr,
        };
        child_forget_master();
        worker_main(&boot);
    }
    SB_SET(s->pid, (int32_t)pid);
    *w = (struct worker){.pid = pid, .generation = M.generation,
                         .spawned = ev_now(M.loop)};
    log_info("worker %d spawned (pid %d, generation %u)", id, (int)pid,
             M.generation);
}

static void begin_stop(bool graceful)
{
    ev_tstamp now = ev_now(M.loop);
    ev_tstamp limit = graceful ? M.cfg->server.graceful_timeout + KILL_GRACE
                               : QUICK_TIMEOUT;

    if (M.mode == STOPPING) {
        if (!graceful) /* a second, quicker stop */
            signal_workers(SIGQUIT);
        if (now + limit < M.stop_deadline)
            M.stop_deadline = now + limit;
        return;
    }
    M.mode = STOPPING;
    M.stop_deadline = now + limit;
    /* Refuse new connections at once rather than let them queue for
     * workers that are leaving. */
    for (size_t i = 0; i < M.nlisten; i++)
        listen_close(M.lfds[i], &M.cfg->server.listen[i]);
    M.nlisten = 0;
    signal_workers(graceful ? SIGTERM : SIGQUIT);
}

/* The one place decisions are made, from state and time only. */
static void reconcile(void)
{
    ev_tstamp now = ev_now(M.loop);
    uint32_t live = live_workers();

    if (M.mode == STOPPING) {
        if (live == 0) {
            ev_break(M.loop, EVBREAK_ALL);
        } else if (now >= M.stop_deadline && !M.killed) {
            log_warnx("%u workers still running after the stop deadline: SIGKILL", live);
            signal_workers(SIGKILL);
            M.killed = true;
        }
        return;
    }
    for (uint32_t i = 0; i < M.cfg->server.max_workers && live < M.target; i++) {
        if (M.w[i].pid != 0)
            continue;
        if (now < M.next_spawn) {
            ev_timer_stop(M.loop, &M.spawn_timer);
            ev_timer_set(&M.spawn_timer, M.next_spawn - now, 0.);
            ev_timer_start(M.loop, &M.spawn_timer);
            return;
        }
        spawn((int)i + 1);
        live++;
    }
}

/* A worker that could not boot: back off, or give up when the app can
 * never start (exit 70/78 before any worker ever served). */
static void boot_failed(int id, int wstatus)
{
    int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 0;
    double delay;

    if ((code == EXIT_APP_INIT || code == EXIT_CONFIG) && !M.ever_served) {
        log_errx("worker %d could not boot (exit %d): the app cannot start, "
                 "giving up", id, code);
        M.exit_code = code;
        begin_stop(false);
        return;
    }
    M.boot_failures++;
    delay = BOOT_BACKOFF_MIN;
    for (unsigned i = 1; i < M.boot_failures && delay < BOOT_BACKOFF_MAX; i++)
        delay *= 2;
    if (delay > BOOT_BACKOFF_MAX)
        delay = BOOT_BACKOFF_MAX;
    M.next_spawn = ev_now(M.loop) + delay;
    if (M.boot_failures >= 3)
        log_errx("crash loop: %u workers in a row died at start-up; next "
                 "spawn in %.1fs", M.boot_failures, delay);
}

static void on_child(struct ev_loop *loop, ev_child *c, int revents)
{
    char how[96];

    for (uint32_t i = 0; i < M.cfg->server.max_workers; i++) {
        struct worker *w = &M.w[i];
        if (w->pid != c->rpid)
            continue;
        proc_describe(c->rstatus, how, sizeof(how));
        if (M.mode == STOPPING && WIFEXITED(c->rstatus) &&
            WEXITSTATUS(c->rstatus) == 0)
            log_info("worker %u (pid %d) %s", i + 1, (int)w->pid, how);
        else
            log_warnx("worker %u (pid %d) %s", i + 1, (int)w->pid, how);
        if (M.mode == RUNNING &&
            (!w->served || ev_now(loop) - w->spawned < QUICK_FAILURE))
            boot_failed((int)i + 1, c->rstatus);
        SB_SET(scoreboard_slot(M.sb, (int)i + 1)->state, SLOT_EMPTY);
        SB_SET(scoreboard_slot(M.sb, (int)i + 1)->pid, 0);
        w->pid = 0;
        break;
    }
    reconcile();
}

static void on_msg(struct ev_loop *loop, ev_io *io, int revents)
{
    struct worker_msg m;

    while (read(M.msg_rd, &m, sizeof(m)) == (ssize_t)sizeof(m)) {
        if (m.id < 1 || (uint32_t)m.id > M.cfg->server.max_workers ||
            M.w[m.id - 1].pid != m.pid)
            continue; /* from a worker already reaped */
        if (m.type == MSG_SERVING) {
            M.w[m.id - 1].served = true;
            M.ever_served = true;
        }
    }
    if (!M.ready && M.mode == RUNNING) {
        uint32_t serving = 0;
        for (uint32_t i = 0; i < M.cfg->server.max_workers; i++)
            serving += M.w[i].pid != 0 && M.w[i].served;
        if (serving >= M.target) {
            M.ready = true;
            log_info("ready: %u workers serving", serving);
        }
    }
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    /* A worker alive longer than QUICK_FAILURE ends a crash loop. */
    for (uint32_t i = 0; i < M.cfg->server.max_workers; i++)
        if (M.w[i].pid && M.w[i].served &&
            ev_now(loop) - M.w[i].spawned >= QUICK_FAILURE)
            M.boot_failures = 0;
    reconcile();
}

static void on_spawn_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    reconcile();
}

/* Retires the highest-numbered worker (SIGTTOU). */
static void retire_one(void)
{
    for (uint32_t i = M.cfg->server.max_workers; i-- > 0;)
        if (M.w[i].pid > 0) {
            log_info("retiring worker %u (pid %d)", i + 1, (int)M.w[i].pid);
            kill(M.w[i].pid, SIGTERM);
            return;
        }
}

static void on_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
    const char *name = sigabbrev_np(s->signum);

    switch (s->signum) {
    case SIGTERM:
        log_info("received SIGTERM: graceful shutdown");
        begin_stop(true);
        break;
    case SIGINT:
    case SIGQUIT:
        log_info("received SIG%s: quick shutdown", name);
        begin_stop(false);
        break;
    case SIGTTIN:
        if (M.mode == RUNNING && M.target < M.cfg->server.max_workers)
            M.target++;
        log_info("received SIGTTIN: %u workers wanted", M.target);
        break;
    case SIGTTOU:
        if (M.mode == RUNNING && M.target > 1) {
            M.target--;
            retire_one();
        }
        log_info("received SIGTTOU: %u workers wanted", M.target);
        break;
    case SIGUSR1:
        log_info("received SIGUSR1: reopening log files");
        if (log_reopen() < 0)
            log_warn("reopening the error log");
        signal_workers(SIGUSR1);
        break;
    default:
        log_warnx("received SIG%s: not supported yet, ignored", name);
        break;
    }
    reconcile();
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
    if (M.lfds == NULL)
        return -1;
    for (size_t i = 0; i < c->server.nlisten; i++) {
        int fd = listen_open(&c->server.listen[i], (int)c->server.backlog);
        if (fd < 0) {
            log_err("listen on %s", c->server.listen[i].text);
            return -1;
        }
        M.lfds[M.nlisten++] = fd;
        log_info("listening on %s", c->server.listen[i].text);
    }
    return 0;
}

/* Everything before the loop; returns 0 or an exit code. */
static int setup(void)
{
    int pfd[2];

    if (M.cfg->server.pidfile && pidfile_write(M.cfg->server.pidfile) < 0)
        return 1;
    if (open_listeners() < 0)
        return 1;
    if (M.cfg->server.preload &&
        (app_open(&M.app, M.cfg->app.module) < 0 || app_load(&M.app, M.cfg) < 0))
        return EXIT_APP_INIT;
    M.sb = scoreboard_create(M.cfg->server.max_workers);
    M.w = calloc(M.cfg->server.max_workers, sizeof(*M.w));
    if (M.sb == NULL || M.w == NULL) {
        log_err("master: allocating %u worker slots", M.cfg->server.max_workers);
        return 1;
    }
    if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0) {
        log_err("master: pipe");
        return 1;
    }
    M.msg_rd = pfd[0];
    M.msg_wr = pfd[1];
    return 0;
}

static void teardown(void)
{
    for (size_t i = 0; i < M.nlisten; i++)
        listen_close(M.lfds[i], &M.cfg->server.listen[i]);
    M.nlisten = 0;
    app_close(&M.app);
    scoreboard_destroy(M.sb);
    free(M.w);
    free(M.lfds);
    if (M.msg_rd > 0) {
        close(M.msg_rd);
        close(M.msg_wr);
    }
    if (M.cfg->server.pidfile)
        pidfile_remove(M.cfg->server.pidfile);
}

int master_run(struct config *cfg)
{
    int rc;

    M.cfg = cfg;
    M.loop = EV_DEFAULT;
    M.generation = 1;
    M.target = cfg->server.workers;
    log_set_role("master");
    proctitle_set("master -c %s", cfg->path);
    log_info("preforkd starting: %u workers, app %s%s", cfg->server.workers,
             cfg->app.module, cfg->server.preload ? " (preloaded)" : "");
    rc = setup();
    if (rc == 0) {
        start_watchers();
        reconcile();
        ev_run(M.loop, 0);
        rc = M.exit_code;
    }
    teardown();
    if (rc == 0)
        log_info("shutdown complete");
    else
        log_errx("exiting with status %d", rc);
    config_free(cfg);
    return rc;
}
