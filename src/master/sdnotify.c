/*
 * sdnotify.c - sd_notify(3) without libsystemd: one unix datagram socket,
 * sendto() the path in $NOTIFY_SOCKET ('@' = abstract namespace). Runs only
 * in the master. Non-blocking: a full or absent listener loses the message,
 * which the protocol tolerates. Convention: 0 / -1 (init only).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "log.h"
#include "sdnotify.h"

static struct {
    int fd;
    struct sockaddr_un addr;
    socklen_t len;
    double watchdog;
    bool heir_runs;
} sd = {.fd = -1};

int sdnotify_init(pid_t heir_of)
{
    const char *path = getenv("NOTIFY_SOCKET");
    const char *wd = getenv("WATCHDOG_USEC"), *wdpid = getenv("WATCHDOG_PID");
    size_t n;

    /* systemd names the main process; after a binary upgrade that is the
     * old master, whose place this one takes: the pings become ours, and
     * so does the variable, for the upgrade after this one. */
    if (wd && (!wdpid || atol(wdpid) == (long)getpid() ||
               (heir_of > 1 && atol(wdpid) == (long)heir_of))) {
        char me[24];
        sd.watchdog = strtod(wd, NULL) / 2e6;
        snprintf(me, sizeof(me), "%ld", (long)getpid());
        if (wdpid)
            setenv("WATCHDOG_PID", me, 1);
    }
    if (path == NULL || *path == '\0')
        return 0;
    n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sd.addr.sun_path)) {
        log_warnx("NOTIFY_SOCKET=%s: not a unix socket path, ignored", path);
        return -1;
    }
    sd.addr.sun_family = AF_UNIX;
    memcpy(sd.addr.sun_path, path, n);
    if (path[0] == '@')
        sd.addr.sun_path[0] = '\0';
    sd.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    sd.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (sd.fd < 0) {
        log_warn("NOTIFY_SOCKET: socket");
        return -1;
    }
    return 0;
}

void sdnotify(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    int n;

    if (sd.fd < 0)
        return;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(msg))
        return;
    /* The main process is, or is about to be, the new master: anything but
     * a watchdog ping from this one would speak for the service. */
    if (sd.heir_runs && strcmp(msg, "WATCHDOG=1") != 0)
        return;
    if (sendto(sd.fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sd.addr, sd.len) <
            0 &&
        errno != EAGAIN)
        log_debug("sd_notify: %s", strerror(errno));
}

void sdnotify_heir(bool on)
{
    sd.heir_runs = on;
}

double sdnotify_watchdog_interval(void)
{
    return sd.watchdog;
}

unsigned long long sdnotify_monotonic_usec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ULL +
           (unsigned long long)ts.tv_nsec / 1000;
}
