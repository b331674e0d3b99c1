/*
 * procs.c - preforkctl's view of processes: pidfiles, liveness, a master's
 * children (from /proc), clocks and messages. Runs in preforkctl only.
 * Convention: see ctl.h.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

void ctl_err(const char *fmt, ...)
{
    va_list ap;

    fputs("preforkctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

double ctl_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ctl_nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

pid_t ctl_read_pidfile(const char *path, char *why, size_t wlen)
{
    FILE *f = fopen(path, "r");
    long pid = 0;
    char extra;
    int n;

    if (f == NULL) {
        snprintf(why, wlen, "pidfile %s: %s", path, strerror(errno));
        return -1;
    }
    n = fscanf(f, "%ld%c", &pid, &extra);
    fclose(f);
    if (n < 1 || pid <= 1 || pid > 0x3fffffff || (n == 2 && extra != '\n')) {
        snprintf(why, wlen, "pidfile %s: no pid in it", path);
        return -1;
    }
    return (pid_t)pid;
}

/* The state letter of /proc/PID/stat ('Z' zombie), or 0. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512], *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    return p && p[1] == ' ' ? p[2] : 0;
}

bool ctl_alive(pid_t pid)
{
    if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM))
        return false;
    return proc_state(pid) != 'Z';
}

int ctl_children(pid_t pid, pid_t *out, int max)
{
    char path[64];
    struct dirent *d;
    DIR *dir;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    if ((dir = opendir(path)) == NULL)
        return -1;
    while ((d = readdir(dir)) != NULL) {
        char file[512];
        long child;
        FILE *f;

        if (d->d_name[0] == '.')
            continue;
        snprintf(file, sizeof(file), "%s/%s/children", path, d->d_name);
        if ((f = fopen(file, "r")) == NULL) {
            n = -1; /* a kernel without CONFIG_PROC_CHILDREN */
            break;
        }
        while (fscanf(f, "%ld", &child) == 1)
            if (n < max)
                out[n++] = (pid_t)child;
        fclose(f);
    }
    closedir(dir);
    return n;
}
