/*
 * inherit.h - listening sockets handed to this master instead of bound by
 * it: by systemd (socket activation: LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES)
 * or by the previous master in a binary upgrade (PREFORKD_FDS). Each is
 * matched to a configured address by what it is bound to. Master only.
 */
#ifndef PF_INHERIT_H
#define PF_INHERIT_H

#include "listen.h"

/* The variable a master sets for the binary it execs: fd numbers, comma
 * separated; "7u": a unix socket whose file the old master created, so the
 * new one removes it when it ends (systemd's sockets are never marked). */
#define INHERIT_ENV "PREFORKD_FDS"
/* ... and the generation the new master starts at. */
#define GENERATION_ENV "PREFORKD_GENERATION"

/* Collects the handed-over fds and removes the variables from the
 * environment (so they reach no worker or later exec). Returns how many. */
int inherit_collect(void);
/* An inherited listening socket bound to a's address (a port 0 in a
 * matches any port of the same address, and a->text then gets the real
 * port), made non-blocking and close-on-exec; -1 if none. Each fd is
 * handed out once. */
int inherit_take(struct listen_addr *a);
/* Closes the inherited fds nobody took, with a warning naming each. */
void inherit_close_rest(void);

#endif
