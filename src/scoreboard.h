/*
 * scoreboard.h - one MAP_SHARED anonymous mapping created by the master
 * before the first fork, one slot per possible worker. A worker writes only
 * its own slot; the master reads them all. Relaxed atomics, no locks.
 */
#ifndef PF_SCOREBOARD_H
#define PF_SCOREBOARD_H

#include <stdatomic.h>
#include <stdint.h>

enum slot_state {
    SLOT_EMPTY = 0,
    SLOT_STARTING, /* forked, running app init, not accepting */
    SLOT_SERVING,  /* accepting */
    SLOT_RETIRING, /* not accepting, finishing its connections */
};

struct slot {
    _Atomic int32_t pid;
    _Atomic uint32_t generation;
    _Atomic uint32_t state;          /* enum slot_state */
    _Atomic uint32_t connections;    /* open client connections */
    _Atomic uint64_t requests;       /* responses completed */
    _Atomic int64_t started_ms;      /* CLOCK_REALTIME, at fork */
    _Atomic int64_t heartbeat_ms;    /* CLOCK_MONOTONIC, loop alive */
};

struct scoreboard {
    uint32_t nslots;
    struct slot slots[];
};

/* Maps nslots zeroed slots, shared with every later fork; NULL on error
 * (errno set). Master only. */
struct scoreboard *scoreboard_create(uint32_t nslots);
void scoreboard_destroy(struct scoreboard *sb);

/* Slot of worker id (1-based). */
static inline struct slot *scoreboard_slot(struct scoreboard *sb, int id)
{
    return &sb->slots[id - 1];
}

#define SB_SET(field, v) atomic_store_explicit(&(field), (v), memory_order_relaxed)
#define SB_GET(field) atomic_load_explicit(&(field), memory_order_relaxed)
#define SB_ADD(field, v) atomic_fetch_add_explicit(&(field), (v), memory_order_relaxed)

/* Milliseconds of CLOCK_MONOTONIC / CLOCK_REALTIME. */
int64_t scoreboard_mono_ms(void);
int64_t scoreboard_wall_ms(void);

#endif
