/*
 * run.c - the master's life: master_run sets it up (pidfile, listeners,
 * scoreboard, the workers' message pipe, the admin endpoint), runs libev's
 * default loop and tears down. Its callbacks only record what they saw in
 * the master's state and call master_step (master.c), which decides. Also
 * the real master_ops: the clock, and forking through the mold. Runs only
 * in the master. Returns: see master.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>

#include "admin.h"
#include "handoff.h"
#include "inherit.h"
#include "listen.h"
#include "log.h"
#include "master.h"
#include "master_int.h"
#include "memlimit.h"
#include "pidfile.h"
#include "proc.h"
#include "proctitle.h"
#include "sdnotify.h"
#include "stats.h"

static ev_tstamp real_now(struct master *ms)
{
    return ev_now(ms->loop);
}

/* Workers come from the current generation's mold, started here when
 * there is none (at start, or after it died: then with the boot back-off). */
static bool real_can_fork(struct master *ms)
{
    if (ms->mold.pid == 0 && ms->mode == RUNNING &&
        spawn_mold(ms, &ms->mold, ms->generation, ms->cfg, ms->lfds, ms->nlisten) < 0)
        ms->next_spawn = master_now(ms) + BOOT_BACKOFF_MAX;
    return ms->mold.ready;
}

static pid_t real_fork_worker(struct master *ms, int id, int slot, int ctl_fd)
{
    return spawn_ask(&ms->mold, id, slot, ctl_fd) == 0 ? PID_PENDING : 0;
}

static const struct master_ops real_ops = {
    .now = real_now,
    .can_fork = real_can_fork,
    .fork_worker = real_fork_worker,
    .kill = kill,
    .start_mold = spawn_mold,
    .start_heir = master_start_heir,
};

/* See master_int.h. In a new mold: it and the workers it forks never run
 * a master watcher. */
void master_forget_in_child(struct master *ms)
{
    for (size_t i = 0; i < sizeof(ms->sigs) / sizeof(ms->sigs[0]); i++)
        ev_signal_stop(ms->loop, &ms->sigs[i]);
    ev_child_stop(ms->loop, &ms->child);
    ev_io_stop(ms->loop, &ms->msg_io);
    ev_timer_stop(ms->loop, &ms->tick);
    ev_timer_stop(ms->loop, &ms->spawn_timer);
    admin_forget_in_child();
    close(ms->msg_rd);
    ev_loop_fork(ms->loop);
}

static void on_child(struct ev_loop *loop, ev_child *c, int revents)
{
    struct master *ms = ev_userdata(loop);
    struct intent *in = &ms->intent;

    /* What a child said before it ended is heard first: a worker's pid
     * from its mold, a worker's last message before its slot is reused. */
    spawn_read_all(ms);
    master_read_messages(ms);
    in->exit_pid = c->rpid;
    in->exit_status = c->rstatus;
    master_step(ms);
}

static void on_msg(struct ev_loop *loop, ev_io *io, int revents)
{
    struct master *ms = ev_userdata(loop);
    master_read_messages(ms);
    master_step(ms);
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master *ms = ev_userdata(loop);
    ms->intent.tick = true;
    master_step(ms);
}

static void on_spawn_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master *ms = ev_userdata(loop);
    master_step(ms);
}

/* Records what the signal asks for; master_step acts on it. */
static void on_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
    struct master *ms = ev_userdata(loop);
    struct intent *in = &ms->intent;

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
    case SIGTTIN: in->scale++; break;
    case SIGTTOU: in->scale--; break;
    case SIGHUP: in->reload = true; break;
    case SIGWINCH: in->winch = true; break;
    case SIGUSR2: in->upgrade = true; break;
    case SIGUSR1: in->reopen = true; break;
    default: break;
    }
    master_step(ms);
}

static void start_watchers(struct master *ms)
{
    int nums[] = {SIGTERM, SIGINT,  SIGQUIT, SIGHUP,  SIGTTIN,
                  SIGTTOU, SIGUSR1, SIGUSR2, SIGWINCH};

    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        ev_signal_init(&ms->sigs[i], on_signal, nums[i]);
        ev_signal_start(ms->loop, &ms->sigs[i]);
    }
    signal(SIGPIPE, SIG_IGN);
    ev_child_init(&ms->child, on_child, 0, 0);
    ev_child_start(ms->loop, &ms->child);
    ev_io_init(&ms->msg_io, on_msg, ms->msg_rd, EV_READ);
    ev_io_start(ms->loop, &ms->msg_io);
    ev_timer_init(&ms->tick, on_tick, 1., 1.);
    ev_timer_start(ms->loop, &ms->tick);
    ev_init(&ms->spawn_timer, on_spawn_timer);
}

/* Binds every listener; -1 after logging which address failed. */
static int open_listeners(struct master *ms)
{
    struct config *c = ms->cfg;

    ms->lfds = calloc(c->server.nlisten, sizeof(int));
    ms->lspec = calloc(c->server.nlisten, sizeof(*ms->lspec));
    if (ms->lfds == NULL || ms->lspec == NULL)
        return -1;
    for (size_t i = 0; i < c->server.nlisten; i++) {
        struct listen_addr *a = &c->server.listen[i];
        int fd;

        ms->lspec[i] = *a;
        if ((fd = inherit_take(a)) >= 0) {
            log_info("listening on %s (inherited)", a->text);
            (void)listen_tune(fd, a);
        } else if ((fd = listen_open(a, (int)c->server.backlog)) >= 0) {
            log_info("listening on %s", a->text);
        } else {
            log_err("listen on %s", a->text);
            return -1;
        }
        ms->lfds[ms->nlisten++] = fd;
    }
    return 0;
}

/* Everything before the loop; returns 0 or an exit code. */
static int setup(struct master *ms)
{
    int pfd[2];

    ms->upgraded = getenv(INHERIT_ENV) != NULL;
    ms->heir_of = ms->upgraded ? getppid() : 0;
    if (getenv(GENERATION_ENV) != NULL) {
        ms->generation = (uint32_t)strtoul(getenv(GENERATION_ENV), NULL, 10);
        ms->generation = ms->generation ? ms->generation : 1;
        unsetenv(GENERATION_ENV);
    }
    sdnotify_init(ms->heir_of);
    if (inherit_collect() > 0)
        log_info("%s: adopting inherited sockets",
                 ms->upgraded ? "binary upgrade" : "socket activation");
    if (ms->cfg->server.pidfile) {
        if (pidfile_write(ms->cfg->server.pidfile) < 0)
            return 1;
        ms->pidfile = strdup(ms->cfg->server.pidfile);
    }
    if (open_listeners(ms) < 0)
        return 1;
    /* Workers are forked by a mold, a child of ours, and become ours when
     * the middle process of the double fork exits (mold.c). */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        log_err("master: prctl(PR_SET_CHILD_SUBREAPER)");
        return 1;
    }
    ms->nslots = master_slots_for(ms->cfg);
    ms->sb = scoreboard_create(ms->nslots);
    ms->w = calloc(ms->nslots, sizeof(*ms->w));
    if (ms->sb == NULL || ms->w == NULL) {
        log_err("master: allocating %u worker slots", ms->nslots);
        return 1;
    }
    for (uint32_t i = 0; i < ms->nslots; i++)
        ms->w[i].ctl_fd = -1;
    if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0) {
        log_err("master: pipe");
        return 1;
    }
    ms->msg_rd = pfd[0];
    ms->msg_wr = pfd[1];
    if (handoff_pair(ms->handoff) < 0) {
        log_err("master: socketpair");
        return 1;
    }
    SB_SET(ms->sb->handoff_ok, 1);
    ms->admin_spec = ms->cfg->admin.listen;
    if (ms->cfg->admin.enabled &&
        admin_start(ms->loop, &ms->cfg->admin.listen, stats_render, ms) < 0)
        return 1;
    inherit_close_rest();
    return 0;
}

static void teardown(struct master *ms)
{
    admin_stop(master_owns_paths(ms));
    for (size_t i = 0; i < ms->nlisten; i++)
        master_close_listener(ms, ms->lfds[i], &ms->cfg->server.listen[i]);
    ms->nlisten = 0;
    spawn_forget(ms, &ms->mold);
    spawn_forget(ms, &ms->next_mold);
    spawn_forget(ms, &ms->old_mold);
    if (ms->sb)
        scoreboard_destroy(ms->sb);
    free(ms->w);
    free(ms->lfds);
    free(ms->lspec);
    account_free_upstreams(&ms->account.ups);
    if (ms->msg_rd > 0) {
        close(ms->msg_rd);
        close(ms->msg_wr);
    }
    if (ms->handoff[0] > 0) {
        close(ms->handoff[0]);
        close(ms->handoff[1]);
    }
    if (ms->pidfile)
        pidfile_remove(ms->pidfile);
    free(ms->pidfile);
}

int master_run(struct config *cfg, char *const *argv)
{
    struct master state = {.ops = &real_ops}, *ms = &state;
    int rc;
    ssize_t n = readlink("/proc/self/exe", ms->self, sizeof(ms->self) - 1);

    /* Resolved now: a binary upgrade execs whatever is at this path then. */
    ms->self[n > 0 ? n : 0] = '\0';
    ms->argv = argv;
    /* On the heap like every config a reload loads, so each is freed alike. */
    if ((ms->cfg = malloc(sizeof(*ms->cfg))) == NULL)
        fatal("master: out of memory");
    *ms->cfg = *cfg;
    cfg = ms->cfg;
    ms->loop = EV_DEFAULT;
    ev_set_userdata(ms->loop, ms);
    ms->mold.fd = ms->next_mold.fd = ms->old_mold.fd = -1;
    ms->started = master_now(ms);
    ms->generation = 1;
    ms->target = cfg->server.workers;
    log_set_role("master");
    proctitle_set("master -c %s", cfg->path);
    log_info("preforkd starting: %u workers, app %s%s", cfg->server.workers,
             cfg->app.module, cfg->server.preload ? " (preloaded)" : "");
    rc = memlimit_start(ms) < 0 ? EXIT_CONFIG : setup(ms);
    if (rc == 0) {
        start_watchers(ms);
        master_step(ms);
        ev_run(ms->loop, 0);
        rc = ms->exit_code;
    }
    teardown(ms);
    if (rc == 0)
        log_info("shutdown complete");
    else
        log_errx("exiting with status %d", rc);
    config_free(ms->cfg);
    free(ms->cfg);
    return rc;
}
