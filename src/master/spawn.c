/*
 * spawn.c - the master's side of the molds (mold.c): fork one for a
 * generation, ask it for workers, read what it says (ready, a worker's pid,
 * why it failed). Runs only in the master. Mechanism only: what a mold's
 * message or death means is decided in master.c and reload.c.
 * Convention: 0 / -1, logged here.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "master_int.h"
#include "proc.h"

static void on_mold(struct ev_loop *loop, ev_io *io, int revents);

/* Every mold the master may hear from: the current, a reload's, the old. */
#define NMOLDS 3
static struct mold_proc *mold_at(struct master *ms, size_t i)
{
    struct mold_proc *all[NMOLDS] = {&ms->mold, &ms->next_mold, &ms->old_mold};

    return all[i];
}

static bool in_list(int fd, const int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] == fd)
            return true;
    return false;
}

/* In the new mold: nothing of the master stays open but what the
 * generation's workers inherit. */
static void __attribute__((noreturn))
mold_child(struct master *ms, struct mold_proc *m, int sock, uint32_t gen,
           const struct config *cfg, const int *fds, size_t nfds, pid_t master)
{
    struct mold_boot b = {
        .generation = gen,
        .cfg = cfg,
        .listen_fds = fds,
        .nlisten = nfds,
        .sb = ms->sb,
        .msg_fd = ms->msg_wr,
        .handoff_fd = {ms->handoff[0], ms->handoff[1]},
        .sock = sock,
        .master = master,
    };

    master_forget_in_child(ms);
    for (size_t i = 0; i < ms->nlisten; i++)
        if (!in_list(ms->lfds[i], fds, nfds))
            close(ms->lfds[i]); /* the old generation's only */
    for (size_t i = 0; i < NMOLDS; i++)
        if (mold_at(ms, i) != m && mold_at(ms, i)->pid > 0 && mold_at(ms, i)->fd >= 0) {
            ev_io_stop(ms->loop, &mold_at(ms, i)->io);
            close(mold_at(ms, i)->fd);
        }
    relay_forget_in_child(ms); /* the master's ends of workers' command pairs */
    mold_main(&b);
}

/* See master_int.h. */
int spawn_mold(struct master *ms, struct mold_proc *m, uint32_t gen,
               const struct config *cfg, const int *fds, size_t nfds)
{
    pid_t master = getpid(), pid;
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        log_warn("master: socketpair for a mold");
        return -1;
    }
    pid = proc_fork();
    if (pid == 0) {
        close(sv[0]);
        mold_child(ms, m, sv[1], gen, cfg, fds, nfds, master);
    }
    close(sv[1]);
    if (pid < 0) {
        log_warn("master: fork for a mold");
        close(sv[0]);
        return -1;
    }
    *m = (struct mold_proc){.pid = pid,
                            .fd = sv[0],
                            .generation = gen,
                            .started = ev_now(ms->loop)};
    ev_io_init(&m->io, on_mold, m->fd, EV_READ);
    m->io.data = m;
    ev_io_start(ms->loop, &m->io);
    log_info("mold started (pid %d, generation %u, app %s%s)", (int)pid, gen,
             cfg->app.module, cfg->server.preload ? ", preloading" : "");
    return 0;
}

/* See master_int.h. */
int spawn_ask(struct mold_proc *m, int id, int slot, int ctl_fd)
{
    struct mold_cmd c = {.type = MOLD_SPAWN, .id = id, .slot = slot};
    char ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &c, .iov_len = sizeof(c)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    struct cmsghdr *cm;

    if (m->pid <= 0 || m->fd < 0 || !m->ready) {
        errno = ESRCH;
        return -1;
    }
    if (ctl_fd >= 0) {
        memset(ctl, 0, sizeof(ctl));
        mh.msg_control = ctl;
        mh.msg_controllen = sizeof(ctl);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &ctl_fd, sizeof(int));
    }
    if (sendmsg(m->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        log_warn("master: asking the mold (pid %d) for worker %d", (int)m->pid, id);
        return -1;
    }
    return 0;
}

/* Every message waiting on m's socket, in order. */
static void read_mold(struct master *ms, struct mold_proc *m)
{
    struct mold_msg msg;
    ssize_t n;

    while (m->pid > 0 && m->fd >= 0) {
        memset(&msg, 0, sizeof(msg));
        n = recv(m->fd, &msg, sizeof(msg), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                ev_io_stop(ms->loop, &m->io); /* gone: ev_child says how */
                close(m->fd);
                m->fd = -1;
            }
            return;
        }
        if ((size_t)n < offsetof(struct mold_msg, text)) {
            log_warnx("master: a malformed message of %zd bytes from the mold", n);
            continue;
        }
        msg.text[sizeof(msg.text) - 1] = '\0';
        master_mold_message(ms, m, &msg);
    }
}

static void on_mold(struct ev_loop *loop, ev_io *io, int revents)
{
    struct master *ms = ev_userdata(loop);
    read_mold(ms, io->data);
    master_step(ms);
}

/* See master_int.h. */
void spawn_read_all(struct master *ms)
{
    for (size_t i = 0; i < NMOLDS; i++)
        read_mold(ms, mold_at(ms, i));
}

/* See master_int.h. */
struct mold_proc *spawn_find(struct master *ms, pid_t pid)
{
    for (size_t i = 0; i < NMOLDS; i++)
        if (pid > 0 && mold_at(ms, i)->pid == pid)
            return mold_at(ms, i);
    return NULL;
}

/* See master_int.h. */
void spawn_signal(struct master *ms, struct mold_proc *m, int sig)
{
    if (m->pid > 0 && ms->ops->kill(m->pid, sig) < 0 && errno != ESRCH)
        log_warn("kill(%d, SIG%s)", (int)m->pid, sigabbrev_np(sig));
}

/* See master_int.h. */
void spawn_forget(struct master *ms, struct mold_proc *m)
{
    if (m->pid > 0 && m->fd >= 0) {
        ev_io_stop(ms->loop, &m->io);
        close(m->fd);
    }
    *m = (struct mold_proc){.fd = -1};
}

/* See master_int.h. An active ev_io must not be copied: stop, copy, start.
 * Whatever was in to is forgotten. */
void spawn_move(struct master *ms, struct mold_proc *to, struct mold_proc *from)
{
    spawn_forget(ms, to);
    if (from->pid > 0 && from->fd >= 0)
        ev_io_stop(ms->loop, &from->io);
    *to = *from;
    if (to->pid > 0 && to->fd >= 0) {
        ev_io_init(&to->io, on_mold, to->fd, EV_READ);
        to->io.data = to;
        ev_io_start(ms->loop, &to->io);
    }
    *from = (struct mold_proc){.fd = -1};
}
