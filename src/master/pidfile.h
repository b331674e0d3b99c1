/*
 * pidfile.h - the master's pid file: written once the master owns its
 * sockets, removed at exit. Runs in the master; preforkd -t reads it.
 * Convention: 0 / -1 with errno.
 */
#ifndef PF_PIDFILE_H
#define PF_PIDFILE_H

/* Writes "PID\n" (getpid()) to path atomically: path.tmp, then rename(2).
 * Refuses with -1 and errno EEXIST, after logging the pid, when path
 * already names a live process other than us (kill(pid, 0) succeeds or
 * fails with EPERM). A pid file naming a dead process, or holding no pid
 * at all, is replaced. Other failures: -1 with errno, nothing left behind.
 * Blocks only on local file I/O (no fsync). */
int pidfile_write(const char *path);

/* Removes path if it still holds our pid (after a binary upgrade it may
 * name our successor, which keeps it). Failures are logged; errno is
 * preserved. */
void pidfile_remove(const char *path);

/* The pid path holds: > 0; 0 when the file is missing or holds no pid;
 * -1 with errno when it cannot be read. Also for preforkd -t. */
long pidfile_read(const char *path);

#endif
