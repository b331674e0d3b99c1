/*
 * holder.h - who holds a listening address: the listening sockets bound to
 * it, from /proc/net/tcp, tcp6 and unix, and the processes with one of
 * them open, from /proc/PID/fd. For preforkd -t, to tell "in use by the
 * running preforkd" from "in use by someone else". Best effort: a process
 * whose /proc/PID/fd this one may not read (another user's, when not
 * root) is not found. Convention: counts, 0 when nothing is known.
 */
#ifndef PF_HOLDER_H
#define PF_HOLDER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "listen.h"

#define HOLDER_MAX 32

/* The processes, in ascending pid order, with a listening socket open
 * that keeps a from being bound: bound to the same address and port, or a
 * wildcard address and the same port (IP); bound to the same path (unix).
 * At most max; returns how many. Reads /proc: may take a few milliseconds
 * on a host with many processes. */
size_t holder_find(const struct listen_addr *a, pid_t *pids, size_t max);

/* True when something listens on the unix socket path of a (it is in
 * /proc/net/unix as a listening socket). */
bool holder_unix_listening(const struct listen_addr *a);

/* The name of pid's program (/proc/PID/comm: "nginx", "preforkd-master")
 * into buf; "?" when it cannot be read. Returns buf. */
const char *holder_name(pid_t pid, char *buf, size_t len);

/* The command line of pid with its arguments separated by spaces, as ps
 * shows it ("preforkd: master -c /etc/preforkd/preforkd.ini"), into buf;
 * "" when it cannot be read. Returns buf. */
const char *holder_cmdline(pid_t pid, char *buf, size_t len);

#endif
