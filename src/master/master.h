/*
 * master.h - the master process: owns the config, the listening sockets,
 * the scoreboard and every decision to start, retire or kill a worker or a
 * mold. Never runs application code (the mold does) nor handles a request.
 */
#ifndef PF_MASTER_H
#define PF_MASTER_H

#include <stdbool.h>

#include "config.h"

/* Binds (or adopts inherited sockets), preloads, forks the workers and
 * supervises them until a stop signal; cfg is owned by the master from here
 * on, argv is kept for a binary upgrade (SIGUSR2). Returns the process
 * exit code: 0 after a requested stop, 70 when the app cannot start,
 * 78 on a configuration problem found late, 1 on other fatal errors. */
int master_run(struct config *cfg, char *const *argv);

#endif
