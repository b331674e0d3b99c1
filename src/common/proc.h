/*
 * proc.h - process mechanism: fork with signals held, the child's signal
 * reset, privilege drop, and describing how a process ended. Runs in the
 * master (proc_fork: the mold, a binary upgrade; proc_describe), in the
 * mold (proc_fork, proc_fork_shared), in each child right after fork
 * (signal reset, privilege drop) and in preforkd -t (privilege drop,
 * proc_describe).
 * Convention: 0 / -1 with errno, except where noted.
 */
#ifndef PF_PROC_H
#define PF_PROC_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

/* Worker exit codes: a contract between worker and master (sysexits). */
#define EXIT_APP_INIT 70 /* EX_SOFTWARE: the app could not start: stop respawning */
#define EXIT_TEMPFAIL 75 /* EX_TEMPFAIL: transient: respawn with back-off */
#define EXIT_CONFIG 78   /* EX_CONFIG: never respawn */

/* fork() with every signal blocked, so that no handler of the master runs
 * in the child before the child has reset them. In the parent the mask is
 * restored before returning; in the child it stays fully blocked until
 * proc_child_signals_done(). Returns as fork(). */
pid_t proc_fork(void);

/* fn(arg) in a child that shares the caller's memory (clone with CLONE_VM
 * and CLONE_VFORK, on a stack of its own), with every signal blocked: the
 * caller waits until the child has exited. For a child that only forks
 * again and exits (the mold's middle process): no copy of the caller's
 * page tables, which costs as much as a fork. fn must end with _exit. One
 * at a time (one stack). Returns the child's pid, or -1 with errno. */
pid_t proc_fork_shared(int (*fn)(void *), void *arg);

/* In the child: every signal back to its default disposition (SIGPIPE
 * ignored). Call before installing the worker's own handlers. */
void proc_child_reset_signals(void);
/* In the child: unblock every signal (pending ones are delivered now). */
void proc_child_signals_done(void);

/* Drops to user (and group, default: the user's primary group) when
 * running as root: setgroups/initgroups, setgid, setuid, then checks that
 * root cannot be regained. A no-op when user is NULL. -1 with a log line. */
int proc_drop_privileges(const char *user, const char *group);

/* "exited with status 0", "killed by signal 9 (SIGKILL)" into buf. */
const char *proc_describe(int wstatus, char *buf, size_t len);

#endif
