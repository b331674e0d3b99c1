/*
 * master_int.h - the master's state, shared by master.c (policy) and
 * stats.c (rendering it for the admin endpoint). Master process only.
 */
#ifndef PF_MASTER_INT_H
#define PF_MASTER_INT_H

#include <stdbool.h>
#include <sys/types.h>

#include <ev.h>

#include "account.h"
#include "app.h"
#include "config.h"
#include "scoreboard.h"

/* Where a worker is in the master's eyes. A worker "holds" its id (its
 * place in the pool) while ACTIVE or WANTS; once its replacement starts,
 * the replacement holds it. */
enum phase {
    PH_ACTIVE,    /* starting or serving */
    PH_WANTS,     /* reached a soft limit, waits for the recycle budget */
    PH_REPLACING, /* its replacement is starting; it still serves */
    PH_RETIRING,  /* TERM sent: finishing its connections */
    PH_KILLING,   /* hard limit: QUIT sent, SIGKILL at kill_at */
};

struct worker {
    pid_t pid;           /* 0: slot free */
    int id;              /* place in the pool, 1..target */
    uint32_t generation;
    enum phase phase;
    enum retire_reason reason; /* decided by the master; NONE otherwise */
    ev_tstamp spawned, phase_since, kill_at;
    int replacement;     /* slot index of its replacement, or -1 */
    bool served;         /* reported SERVING */
    bool killed;         /* we sent SIGKILL */
};

enum mode { RUNNING, STOPPING };

struct master {
    struct ev_loop *loop;
    struct config *cfg;
    struct app app;
    int *lfds;
    size_t nlisten;
    struct scoreboard *sb;
    struct worker *w;    /* nslots entries, slot = index + 1 */
    uint32_t nslots;
    uint32_t target;     /* workers wanted */
    uint32_t generation;
    int msg_rd, msg_wr;
    enum mode mode;
    ev_tstamp started, stop_deadline;
    bool killed_all;
    unsigned boot_failures; /* in a row */
    ev_tstamp next_spawn;
    bool ever_served, ready;
    int exit_code;
    struct account account;
    ev_signal sigs[9];
    ev_child child;
    ev_io msg_io;
    ev_timer tick, spawn_timer;
};

extern struct master M;

const char *master_phase_name(enum phase p);

#endif
