/*
 * mold.h - the mold: the process that loads the app (with preload) and
 * forks the workers of one generation, so that the master never runs
 * application code. Entered in a child of the master, never returns.
 * Also the messages the master and a mold exchange over their socket pair
 * (SOCK_SEQPACKET: one message per send, never merged or split).
 */
#ifndef PF_MOLD_H
#define PF_MOLD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "scoreboard.h"

/* Master -> mold, with the worker's end of its command socket pair
 * (command.h) attached (SCM_RIGHTS), or none. */
struct mold_cmd {
    uint32_t type; /* MOLD_SPAWN */
    int32_t id;    /* the worker's place in the pool */
    int32_t slot;  /* its scoreboard slot, 0-based */
};

enum { MOLD_SPAWN = 1 };

/* Mold -> master. */
enum mold_msg_type {
    MOLD_READY = 1, /* the app is loaded (or nothing to load): ask away */
    MOLD_SPAWNED,   /* slot's worker is pid (or pid -1: fork failed, errno err) */
    MOLD_FAILED,    /* the app could not be loaded: text says why; exit follows */
};

#define MOLD_TEXT_MAX 3072

struct mold_msg {
    uint32_t type; /* enum mold_msg_type */
    int32_t slot;
    int32_t pid;
    int32_t err;
    char text[MOLD_TEXT_MAX]; /* MOLD_FAILED: the error lines, NUL-terminated */
};

/* What a mold is forked with: the generation's config and everything the
 * master created for workers to inherit. */
struct mold_boot {
    uint32_t generation;
    const struct config *cfg;
    const int *listen_fds;
    size_t nlisten;
    struct scoreboard *sb;
    int msg_fd;        /* write end of the worker -> master pipe */
    int handoff_fd[2]; /* handoff.h */
    int sock;          /* the mold's end of its socket pair with the master */
    pid_t master;
};

/* Runs the mold in the current (just forked) process: drops privileges,
 * loads the app when cfg preloads, says MOLD_READY, then forks a worker
 * for each MOLD_SPAWN until the master closes the socket or signals it.
 * A worker is forked twice over (mold -> a short-lived middle process ->
 * worker) so that it becomes the master's child: the master is a child
 * subreaper and adopts it when the middle process exits at once. Exits
 * EXIT_APP_INIT when the app cannot be loaded (after MOLD_FAILED), 0
 * when the master closes the socket, 1 on other failures. */
void mold_main(const struct mold_boot *b) __attribute__((noreturn));

#endif
