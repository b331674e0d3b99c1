/*
 * worker.h - a worker process: entered in the child right after fork, never
 * returns. Boots (signals, privileges, app), accepts on the shared listening
 * sockets, serves until told to retire or stop, then exits.
 */
#ifndef PF_WORKER_H
#define PF_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "app.h"
#include "config.h"
#include "scoreboard.h"

/* Worker -> master, over one pipe shared by all workers (each message is
 * smaller than PIPE_BUF, so writes from several workers never interleave). */
enum worker_msg_type {
    MSG_SERVING = 1, /* booted, now accepting */
    MSG_RECYCLE,     /* a soft limit was reached: start my replacement */
};

struct worker_msg {
    int32_t slot; /* scoreboard slot, 0-based */
    int32_t pid;
    uint32_t generation;
    uint16_t type;   /* enum worker_msg_type */
    uint16_t reason; /* enum retire_reason, for MSG_RECYCLE */
};

struct worker_boot {
    int id;   /* 1..workers: the worker's place in the pool */
    int slot; /* its scoreboard slot, 0-based (a replacement has its own) */
    uint32_t generation;
    const struct config *cfg;
    struct app *app; /* loaded in the master when cfg preloads */
    const int *listen_fds;
    size_t nlisten;
    struct scoreboard *sb;
    int msg_fd;        /* write end of the worker -> master pipe */
    int handoff_fd[2]; /* handoff.h: [0] send, [1] receive */
    int ctl_fd;        /* commands from the master (command.h), or -1 */
    pid_t master;      /* the master's pid: a worker never outlives it */
};

/* Runs the worker in the current (just forked) process, on libev's default
 * loop, which the caller has already stripped of the master's watchers and
 * passed through ev_loop_fork. Exits 0 after a graceful or quick stop,
 * EXIT_APP_INIT when the app cannot start, 1 on other boot failures. */
void worker_main(const struct worker_boot *b) __attribute__((noreturn));

#endif
