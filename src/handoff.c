/*
 * handoff.c - the connection hand-over queue of handoff.h: sendmsg and
 * recvmsg with one SCM_RIGHTS descriptor and a one-byte payload.
 * Runs in workers (send, receive) and the master (create, drain).
 * Returns: 0 / fd, or -1 with errno.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handoff.h"

#define TAG 'C' /* the payload: a message must carry a byte */

int handoff_pair(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds);
}

/* One message: the tag byte and room for one descriptor. */
struct fdmsg {
    char tag;
    struct iovec iov;
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr m;
};

static void fdmsg_init(struct fdmsg *f)
{
    memset(f, 0, sizeof(*f));
    f->tag = TAG;
    f->iov = (struct iovec){.iov_base = &f->tag, .iov_len = 1};
    f->m.msg_iov = &f->iov;
    f->m.msg_iovlen = 1;
    f->m.msg_control = f->ctl.space;
    f->m.msg_controllen = sizeof(f->ctl.space);
}

int handoff_send(int sock, int fd)
{
    struct fdmsg f;
    struct cmsghdr *h;
    ssize_t n;

    fdmsg_init(&f);
    h = CMSG_FIRSTHDR(&f.m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &fd, sizeof(int));
    do
        n = sendmsg(sock, &f.m, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -1;
}

int handoff_recv(int sock)
{
    struct fdmsg f;
    struct cmsghdr *h;
    ssize_t n;
    int fd;

    fdmsg_init(&f);
    f.tag = 0;
    do
        n = recvmsg(sock, &f.m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    h = CMSG_FIRSTHDR(&f.m);
    if (n != 1 || f.tag != TAG || h == NULL || h->cmsg_type != SCM_RIGHTS ||
        h->cmsg_len != CMSG_LEN(sizeof(int))) {
        /* The kernel dropped the descriptor (MSG_CTRUNC: out of fds). */
        errno = (f.m.msg_flags & MSG_CTRUNC) ? EMFILE : EPROTO;
        return -1;
    }
    memcpy(&fd, CMSG_DATA(h), sizeof(int));
    return fd;
}

int handoff_drain(int sock)
{
    int fd, n = 0;

    /* A message whose descriptor was lost is consumed all the same. */
    while ((fd = handoff_recv(sock)) >= 0 || errno == EMFILE || errno == EPROTO) {
        if (fd >= 0) {
            close(fd);
            n++;
        }
    }
    return n;
}
