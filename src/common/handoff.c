/*
 * handoff.c - the connection handoff queue of handoff.h: sendmsg and
 * recvmsg of 1 to HANDOFF_BATCH SCM_RIGHTS descriptors with a one-byte
 * payload. Runs in workers (send, receive) and the master (create, drain).
 * Returns per handoff.h; -1 with errno on failure.
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

/* One message: the tag byte and room for HANDOFF_BATCH descriptors. */
struct fdmsg {
    char tag;
    struct iovec iov;
    struct msghdr m;
    union { /* last: struct cmsghdr ends in a flexible array */
        struct cmsghdr h;
        char space[CMSG_SPACE(HANDOFF_BATCH * sizeof(int))];
    } ctl;
};

static void fdmsg_init(struct fdmsg *f, int n)
{
    memset(f, 0, sizeof(*f));
    f->tag = TAG;
    f->iov = (struct iovec){.iov_base = &f->tag, .iov_len = 1};
    f->m.msg_iov = &f->iov;
    f->m.msg_iovlen = 1;
    f->m.msg_control = f->ctl.space;
    f->m.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
}

int handoff_send(int sock, const int *fds, int n)
{
    struct fdmsg f;
    struct cmsghdr *h;
    ssize_t r;

    if (n < 1 || n > HANDOFF_BATCH) {
        errno = EINVAL;
        return -1;
    }
    fdmsg_init(&f, n);
    h = CMSG_FIRSTHDR(&f.m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
    memcpy(CMSG_DATA(h), fds, (size_t)n * sizeof(int));
    do
        r = sendmsg(sock, &f.m, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r == 1 ? 0 : -1;
}

int handoff_recv(int sock, int *fds)
{
    struct fdmsg f;
    struct cmsghdr *h;
    ssize_t r;
    size_t bytes;

    fdmsg_init(&f, HANDOFF_BATCH);
    f.tag = 0;
    do
        r = recvmsg(sock, &f.m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -1;
    h = CMSG_FIRSTHDR(&f.m);
    if (r != 1 || f.tag != TAG || h == NULL || h->cmsg_level != SOL_SOCKET ||
        h->cmsg_type != SCM_RIGHTS || h->cmsg_len <= CMSG_LEN(0) ||
        (f.m.msg_flags & MSG_CTRUNC)) {
        /* Descriptors the kernel could not install (MSG_CTRUNC: out of
         * fds) are closed by it; any that did arrive are closed here. */
        if (h != NULL && h->cmsg_type == SCM_RIGHTS && h->cmsg_len > CMSG_LEN(0)) {
            int got[HANDOFF_BATCH];
            bytes = h->cmsg_len - CMSG_LEN(0);
            memcpy(got, CMSG_DATA(h), bytes);
            for (size_t i = 0; i < bytes / sizeof(int); i++)
                close(got[i]);
        }
        errno = (f.m.msg_flags & MSG_CTRUNC) ? EMFILE : EPROTO;
        return -1;
    }
    bytes = h->cmsg_len - CMSG_LEN(0);
    memcpy(fds, CMSG_DATA(h), bytes);
    return (int)(bytes / sizeof(int));
}

int handoff_drain(int sock)
{
    int fds[HANDOFF_BATCH], k, n = 0;

    /* A message whose descriptors were lost is consumed all the same. */
    while ((k = handoff_recv(sock, fds)) >= 0 || errno == EMFILE || errno == EPROTO) {
        for (int i = 0; i < k; i++)
            close(fds[i]);
        n += k > 0 ? k : 0;
    }
    return n;
}
