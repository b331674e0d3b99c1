/*
 * pidfile.c - the master's pid file: refuse to start over a live master,
 * replace a stale file atomically, and remove only our own. Runs in the
 * master (workers never touch it); preforkd -t reads it (pidfile_read) to
 * tell the running instance's addresses from another program's.
 * Convention: 0 / -1 with errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pidfile.h"

/* The pid in path: > 0; 0 when the file is missing or does not hold a
 * pid ("1234" with optional trailing whitespace); -1 with errno when the
 * file cannot be read. */
static long read_pid(const char *path)
{
    char buf[32];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    do
        n = read(fd, buf, sizeof(buf) - 1);
    while (n < 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    if (n < 0) {
        errno = saved;
        return -1;
    }
    buf[n] = '\0';
    if (buf[0] < '0' || buf[0] > '9')
        return 0;
    char *end;
    errno = 0;
    long pid = strtol(buf, &end, 10);
    if (errno != 0 || pid <= 0 || pid > INT_MAX || end[strspn(end, " \t\r\n")] != '\0')
        return 0;
    return pid;
}

static int pid_alive(long pid)
{
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* Creates tmp afresh (O_EXCL: never through a planted symlink) holding
 * text. 0 / -1 with errno; on -1 tmp is removed. */
static int write_new(const char *tmp, const char *text)
{
    size_t len = strlen(text);
    int fd;

    if (unlink(tmp) < 0 && errno != ENOENT)
        return -1;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail;
        text += n;
        len -= (size_t)n;
    }
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    return 0;

fail:;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = saved;
    return -1;
}

/* See pidfile.h. */
int pidfile_write(const char *path)
{
    char tmp[PATH_MAX], text[32];
    long old = read_pid(path);

    if (old < 0)
        return -1;
    if (old > 0 && old != (long)getpid() && pid_alive(old)) {
        log_errx("pidfile: %s: preforkd is already running as pid %ld", path, old);
        errno = EEXIST;
        return -1;
    }
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (write_new(tmp, text) < 0)
        return -1;
    if (rename(tmp, path) < 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        return -1;
    }
    return 0;
}

/* See pidfile.h. */
long pidfile_read(const char *path)
{
    return read_pid(path);
}

/* See pidfile.h. */
void pidfile_remove(const char *path)
{
    int saved = errno;
    long pid = read_pid(path);

    if (pid < 0)
        log_warn("pidfile: %s: cannot read it to remove it", path);
    else if (pid == (long)getpid() && unlink(path) < 0 && errno != ENOENT)
        log_warn("pidfile: %s: cannot remove it", path);
    errno = saved;
}
