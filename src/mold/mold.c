/*
 * mold.c - the mold process: loads the app once (with preload), then forks
 * the generation's workers when the master asks. Runs only in the mold and,
 * for a moment, in the middle process of each double fork. The mold has
 * nothing to do but wait for the master, so it blocks in recv(2); it never
 * runs an event loop. It owns the app's preloaded state, shared copy-on-write
 * by every worker it forks.
 */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app.h"
#include "log.h"
#include "mold.h"
#include "proc.h"
#include "proctitle.h"
#include "worker.h"

static volatile sig_atomic_t reopen_logs;

static void on_usr1(int sig)
{
    reopen_logs = 1;
}

/* TERM, INT, QUIT once the app is loaded: nothing to finish, nothing to
 * flush (the log is written line by line). */
static void on_stop(int sig)
{
    _exit(0);
}

/* Defaults, except: USR1 reopens the log (it interrupts recv), and the
 * master's own signals, which a terminal may send to the whole process
 * group, are ignored. TERM, INT and QUIT end the mold (handlers an app
 * installs for them while it loads are replaced once it is loaded). */
static void mold_signals(void)
{
    struct sigaction sa;

    proc_child_reset_signals();
    signal(SIGHUP, SIG_IGN);
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
    signal(SIGWINCH, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1; /* no SA_RESTART: recv returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    proc_child_signals_done();
}

/* One message to the master. Never blocks: the master reads its molds at
 * once, and a lost MOLD_SPAWNED is made good by the worker's own message. */
static void tell(int sock, const struct mold_msg *m, size_t len)
{
    if (send(sock, m, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        log_warn("mold: telling the master");
}

/* The new worker, a grandchild of the mold. It waits to be adopted by the
 * master (the middle process is exiting; that takes microseconds) so that
 * the master is the parent it checks and that reaps it. */
static void __attribute__((noreturn))
worker(const struct mold_boot *b, struct app *app, const struct mold_cmd *c, int ctl_fd,
       pid_t middle)
{
    struct worker_boot wb = {
        .id = c->id,
        .slot = c->slot,
        .generation = b->generation,
        .cfg = b->cfg,
        .app = app,
        .listen_fds = b->listen_fds,
        .nlisten = b->nlisten,
        .sb = b->sb,
        .msg_fd = b->msg_fd,
        .handoff_fd = {b->handoff_fd[0], b->handoff_fd[1]},
        .master = b->master,
        .ctl_fd = ctl_fd,
    };
    pid_t parent;

    close(b->sock);
    while ((parent = getppid()) != b->master) {
        if (parent != middle)
            _exit(1); /* adopted by someone else: the master is gone */
        sched_yield();
    }
    worker_main(&wb);
}

/* What the middle process and the worker need of spawn_worker: in static
 * storage, so that the worker finds it after its longjmp (locals of a
 * function left by longjmp are not to be trusted). */
static struct {
    const struct mold_boot *b;
    struct app *app;
    struct mold_cmd c;
    int ctl_fd;
    pid_t middle;   /* the middle process: the worker's first parent */
    jmp_buf worker; /* spawn_worker's frame, where the worker goes on */
} mold;

/* The middle process: forks the worker, tells the master its pid, exits.
 *
 * It shares the mold's memory (proc_fork_shared: a clone with CLONE_VM,
 * the mold suspended meanwhile) instead of being a fork of it, because a
 * fork costs as much as the page tables it copies: 1.2 ms of CPU on the
 * benchmark machine, for a 2 MB process. The worker it forks is a copy of
 * the mold's memory, as before; it starts on the middle's stack and jumps
 * back to spawn_worker's frame on the main stack, which its copy holds as
 * the mold left it, to run there. The mold sees what the middle wrote
 * (mold.middle, errno), nothing else. */
static int __attribute__((noreturn)) middle(void *arg)
{
    struct mold_msg m = {.type = MOLD_SPAWNED, .slot = mold.c.slot};
    pid_t pid;

    mold.middle = getpid();
    pid = fork();
    if (pid == 0)
        longjmp(mold.worker, 1);
    m.pid = pid > 0 ? pid : -1;
    m.err = pid > 0 ? 0 : errno;
    tell(mold.b->sock, &m, offsetof(struct mold_msg, text));
    _exit(0);
}

/* One worker, forked through a middle process that exits at once, so that
 * the master (a child subreaper) becomes its parent. Signals stay blocked
 * in the children until the worker has installed its own. Under the
 * sanitizers, whose run-time does not follow a longjmp from one stack to
 * another, the middle is a fork of its own, as it was before. */
static void spawn_worker(const struct mold_boot *b, struct app *app,
                         const struct mold_cmd *c, int ctl_fd)
{
    struct mold_msg m = {.type = MOLD_SPAWNED, .slot = c->slot, .pid = -1};
    pid_t mid;
    int st;

    mold.b = b;
    mold.app = app;
    mold.c = *c;
    mold.ctl_fd = ctl_fd;
    app_fork_prepare(app);
    if (setjmp(mold.worker) != 0)
        worker(mold.b, mold.app, &mold.c, mold.ctl_fd, mold.middle);
#if defined(__SANITIZE_ADDRESS__)
    mid = proc_fork();
    if (mid == 0)
        middle(NULL);
#else
    mid = proc_fork_shared(middle, NULL);
#endif
    m.err = errno;
    app_fork_parent(app);
    if (ctl_fd >= 0)
        close(ctl_fd); /* the worker's now */
    if (mid < 0) {
        log_warn("mold: fork for worker %d", c->id);
        tell(b->sock, &m, offsetof(struct mold_msg, text));
        return;
    }
    while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
        ;
}

/* One request of the master, and the fd it carries (or -1). */
static ssize_t recv_cmd(int sock, struct mold_cmd *c, int *fd)
{
    char ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = c, .iov_len = sizeof(*c)};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl,
                        .msg_controllen = sizeof(ctl)};
    struct cmsghdr *cm;
    ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

    *fd = -1;
    if (n > 0 && (cm = CMSG_FIRSTHDR(&mh)) != NULL && cm->cmsg_level == SOL_SOCKET &&
        cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(fd, CMSG_DATA(cm), sizeof(int));
    return n;
}

/* Preloads the app; on failure tells the master why and exits. */
static void preload(const struct mold_boot *b, struct app *app)
{
    static struct mold_msg m = {.type = MOLD_FAILED};

    log_capture(m.text, sizeof(m.text));
    if (app_open(app, b->cfg->app.module) == 0 &&
        app_load(app, (struct config *)(uintptr_t)b->cfg) == 0) {
        log_capture(NULL, 0);
        return;
    }
    log_capture(NULL, 0);
    tell(b->sock, &m, sizeof(m));
    exit(EXIT_APP_INIT);
}

void mold_main(const struct mold_boot *b)
{
    struct app app = {0};
    struct mold_msg ready = {.type = MOLD_READY};
    struct mold_cmd c;
    ssize_t n;

    /* 1. Identity and signals (blocked since the fork, until now). */
    log_set_role("mold");
    proctitle_set("mold [gen %u]", b->generation);
    mold_signals();
    /* 2. No application code as root. The parent-death signal is set after
     *    the change of credentials, which clears it. */
    if (proc_drop_privileges(b->cfg->server.user, b->cfg->server.group) < 0) {
        struct mold_msg m = {.type = MOLD_FAILED};
        snprintf(m.text, sizeof(m.text), "cannot drop privileges to %s",
                 b->cfg->server.user ? b->cfg->server.user : "?");
        tell(b->sock, &m, sizeof(m));
        exit(EXIT_CONFIG);
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != b->master)
        exit(1);
    /* 3. The app, once for every worker of the generation. */
    if (b->cfg->server.preload)
        preload(b, &app);
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    signal(SIGQUIT, on_stop);
    tell(b->sock, &ready, offsetof(struct mold_msg, text));
    /* 4. Workers, on request, until the master closes its end. */
    for (;;) {
        int fd = -1;

        n = recv_cmd(b->sock, &c, &fd);
        if (n < 0 && errno == EINTR) {
            if (reopen_logs && log_reopen() < 0)
                log_warn("reopening the error log");
            reopen_logs = 0;
            continue;
        }
        if (n == 0)
            exit(0);
        if (n < 0) {
            log_warn("mold: reading from the master");
            exit(1);
        }
        if (n == (ssize_t)sizeof(c) && c.type == MOLD_SPAWN) {
            spawn_worker(b, &app, &c, fd);
        } else {
            log_warnx("mold: a malformed request of %zd bytes", n);
            if (fd >= 0)
                close(fd);
        }
    }
}
