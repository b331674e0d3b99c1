/*
 * inherit.c - adopting listening sockets from systemd or from the previous
 * master (see inherit.h). Runs in the master at start-up only, before any
 * fork. Convention: fds or -1.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inherit.h"
#include "log.h"

#define INHERIT_MAX 64
#define SD_LISTEN_FDS_START 3

static int fds[INHERIT_MAX];
static bool owned[INHERIT_MAX]; /* its unix socket file was the old master's to remove */
static int nfds;

static void add(int fd, bool owns_path)
{
    int type = 0, listening = 0;
    socklen_t len = sizeof(int);

    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
        type != SOCK_STREAM || !listening) {
        log_warnx("inherited fd %d is not a listening stream socket: ignored", fd);
        return;
    }
    if (nfds < INHERIT_MAX) {
        owned[nfds] = owns_path;
        fds[nfds++] = fd;
    }
}

int inherit_collect(void)
{
    const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
    const char *ours = getenv(INHERIT_ENV);

    if (pid && n && atol(pid) == (long)getpid())
        for (int i = 0; i < atoi(n); i++)
            add(SD_LISTEN_FDS_START + i, false); /* systemd's files */
    if (ours) {
        char *copy = strdup(ours), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            char *end;
            long fd = strtol(t, &end, 10);
            if (end != t && fd >= 0 && fd <= INT_MAX &&
                (*end == '\0' || strcmp(end, "u") == 0))
                add((int)fd, *end == 'u');
            else
                log_warnx("%s: ignoring \"%s\"", INHERIT_ENV, t);
        }
        free(copy);
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    unsetenv(INHERIT_ENV);
    return nfds;
}

/* Same address family and address; the same port unless want asks for 0. */
static bool same(const struct listen_addr *want, const struct sockaddr_storage *got)
{
    if (want->family != got->ss_family)
        return false;
    if (want->family == AF_UNIX)
        return strcmp(want->u.un.sun_path, ((const struct sockaddr_un *)got)->sun_path) ==
               0;
    if (want->family == AF_INET) {
        const struct sockaddr_in *g = (const void *)got;
        return g->sin_addr.s_addr == want->u.in.sin_addr.s_addr &&
               (want->u.in.sin_port == 0 || g->sin_port == want->u.in.sin_port);
    }
    const struct sockaddr_in6 *g6 = (const void *)got;
    return memcmp(&g6->sin6_addr, &want->u.in6.sin6_addr, sizeof(g6->sin6_addr)) == 0 &&
           (want->u.in6.sin6_port == 0 || g6->sin6_port == want->u.in6.sin6_port);
}

/* This master now removes the socket file at the end (listen_close): the
 * one at the path as it adopts the socket. */
static void own_path(struct listen_addr *a)
{
    struct stat st;

    if (lstat(a->u.un.sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        a->un_dev = st.st_dev;
        a->un_ino = st.st_ino;
    }
}

int inherit_take(struct listen_addr *a)
{
    for (int i = 0; i < nfds; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = fds[i];

        if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0 || !same(a, &ss))
            continue;
        fds[i] = -1;
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        if (a->family == AF_UNIX && owned[i])
            own_path(a);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        if (a->family == AF_INET && a->u.in.sin_port == 0) {
            char host[INET_ADDRSTRLEN];
            a->u.in.sin_port = ((struct sockaddr_in *)&ss)->sin_port;
            inet_ntop(AF_INET, &a->u.in.sin_addr, host, sizeof(host));
            snprintf(a->text, sizeof(a->text), "%s:%u", host, ntohs(a->u.in.sin_port));
        } else if (a->family == AF_INET6 && a->u.in6.sin6_port == 0) {
            char host[INET6_ADDRSTRLEN];
            a->u.in6.sin6_port = ((struct sockaddr_in6 *)&ss)->sin6_port;
            inet_ntop(AF_INET6, &a->u.in6.sin6_addr, host, sizeof(host));
            snprintf(a->text, sizeof(a->text), "[%s]:%u", host,
                     ntohs(a->u.in6.sin6_port));
        }
        return fd;
    }
    return -1;
}

void inherit_close_rest(void)
{
    for (int i = 0; i < nfds; i++)
        if (fds[i] >= 0) {
            log_warnx("inherited socket fd %d matches no configured address: closed",
                      fds[i]);
            close(fds[i]);
            fds[i] = -1;
        }
    nfds = 0;
}
