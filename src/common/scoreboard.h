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

/* Why a worker left (or is leaving). Counted per reason by the master. */
enum retire_reason {
    RETIRE_NONE = 0,
    RETIRE_MAX_REQUESTS,
    RETIRE_MAX_RSS, /* soft memory limit, measured by the worker */
    RETIRE_LIFETIME,
    RETIRE_MAX_RSS_HARD, /* killed by the master */
    RETIRE_TIMEOUT,      /* no heartbeat: killed by the master */
    RETIRE_CRASH,        /* exited non-zero or killed by a signal on its own */
    RETIRE_OOM,          /* SIGKILL the master did not send: likely the OOM killer */
    RETIRE_RELOAD,       /* old generation after a reload */
    RETIRE_SCALE,        /* SIGTTOU */
    RETIRE_SHUTDOWN,
    RETIRE_REQUESTED, /* asked for: preforkctl recycle, trace stop, the app */
    RETIRE_NREASONS
};

/* Per upstream (by its index in the config), written by the worker's pool.
 * The config allows no more sections than this (config.c). The master
 * sums them over workers by name (generations may differ in their
 * sections), and keeps a departed worker's counts (account.c). */
#define SB_MAX_UPSTREAMS 16
#define SB_UPSTREAM_NAME 68               /* [upstream NAME]: at most 64 bytes */
enum sb_upstream_fail {                   /* why a request ended in an error */
                        SB_FAIL_CONNECT,  /* no server could be connected */
                        SB_FAIL_RESET,    /* closed or reset before the end */
                        SB_FAIL_PROTOCOL, /* not a valid HTTP response */
                        SB_FAIL_BUSY,     /* no free connection in time */
                        SB_FAIL_KINDS
};
struct sb_upstream {
    _Atomic uint32_t named; /* name is written (release) */
    char name[SB_UPSTREAM_NAME];
    _Atomic uint32_t open;                  /* connections open now */
    _Atomic uint32_t idle;                  /* of which idle in the pool */
    _Atomic uint64_t created;               /* connections opened */
    _Atomic uint64_t reused;                /* requests sent on a pooled connection */
    _Atomic uint64_t retried;               /* requests sent again (stale connection,
                                     or another server after a connect error) */
    _Atomic uint64_t failed[SB_FAIL_KINDS]; /* requests ended in an error */
    _Atomic uint64_t timed_out; /* requests ended in a connect or read timeout */
};

/* Responses by status class (1xx..5xx), the server's own error responses
 * included, and how long each took from its complete head to its end
 * (the access log's request time), in buckets. Written by the worker
 * (scoreboard_count_response); the master keeps a departed worker's
 * counts (account.c), so the sums never go back across recycles. */
#define SB_STATUS_CLASSES 5
#define SB_DURATION_BOUNDS 11 /* scoreboard_duration_bounds_us */
struct sb_http {
    _Atomic uint64_t by_class[SB_STATUS_CLASSES];
    _Atomic uint64_t duration_us;                     /* the sum */
    _Atomic uint64_t buckets[SB_DURATION_BOUNDS + 1]; /* each alone (not
                                     cumulative); the last: beyond every bound */
};

/* Memory samples for the growth slope: (age, requests, memory). */
#define SB_SAMPLES 16
#define SB_METRICS 16

struct slot {
    _Atomic int32_t pid;
    _Atomic uint32_t generation;
    _Atomic uint32_t state;       /* enum slot_state */
    _Atomic uint32_t accepting;   /* taking new connections now */
    _Atomic uint32_t connections; /* open client connections */
    _Atomic uint64_t requests;    /* responses completed */
    _Atomic int64_t started_ms;   /* CLOCK_REALTIME, at fork */
    _Atomic int64_t heartbeat_ms; /* CLOCK_MONOTONIC, loop alive */
    _Atomic int64_t forked_us;    /* CLOCK_MONOTONIC, just before fork */
    _Atomic uint32_t boot_us;     /* fork -> serving */
    _Atomic uint32_t
        first_accept_us;            /* fork -> first connection accepted; 0 = none yet */
    _Atomic uint64_t request_limit; /* this worker's max_requests draw, 0 = none */
    _Atomic uint64_t max_rss;       /* the master's: this worker's soft memory
                                        limit, 0 = off (memlimit.c may change it) */
    _Atomic uint64_t rss, uss, pss; /* bytes, last measured by the worker */
    _Atomic uint64_t mem;           /* by memory_metric: what the limits compare */
    _Atomic uint32_t loop_lag_us;   /* last measured event-loop lag */
    _Atomic uint32_t retire_reason; /* enum retire_reason, set when leaving */
    _Atomic uint32_t quiet;         /* the master's: a recycle's replacement,
                                        whose steps log at debug */
    _Atomic uint32_t nsamples;      /* samples[] written, wraps at SB_SAMPLES */
    /* While the app's handle() runs: "METHOD target", cut to fit, so that
     * the master's log line names the request of a worker whose loop is
     * blocked. len 0: not in handle(). Read torn at worst: a log line. */
    _Atomic uint32_t in_app_len;
    char in_app[96];
    struct {
        _Atomic int64_t age_ms;
        _Atomic uint64_t requests;
        _Atomic uint64_t mem;
        _Atomic uint64_t c_heap;   /* malloc's bytes in use */
        _Atomic uint64_t app_heap; /* the app's own heap (pf_worker_heap) */
    } samples[SB_SAMPLES];
    /* Which heap grows: malloc's bytes in use (mallinfo2: in arenas and
     * mmapped), and the heap an app manages itself (the wsgi module:
     * pymalloc's arenas), named by it; both sampled with mem. */
    _Atomic uint64_t c_heap, app_heap;
    char app_heap_name[16]; /* "" when the app has none */
    /* Figures the app publishes (pf_metric_set), by the worker's loop
     * thread; seq is odd while a row is written (the master re-reads). */
    struct sb_metric {
        _Atomic uint32_t seq;
        char name[32]; /* [a-z0-9_]+; "" = free row */
        char label[64];
        _Atomic uint64_t value; /* a double's bits */
    } metrics[SB_METRICS];
    struct sb_upstream upstreams[SB_MAX_UPSTREAMS];
    struct sb_http http;
};

struct scoreboard {
    uint32_t nslots;
    /* Written by the master: the replacement latency, from the spawn of a
     * recycle's replacement to its serving, a moving average in microseconds.
     * Workers read it to ask for their replacement early enough. */
    _Atomic uint32_t replace_us;
    /* Written by the master: leaving workers may pass idle connections to
     * serving ones (handoff.h); 0 while the master stops or after WINCH. */
    _Atomic uint32_t handoff_ok;
    struct slot slots[];
};

/* Maps nslots zeroed slots, shared with every later fork; NULL on error
 * (errno set). Master only. */
struct scoreboard *scoreboard_create(uint32_t nslots);
void scoreboard_destroy(struct scoreboard *sb);

/* Slot `slot` (0-based index; a worker's id is something else). */
static inline struct slot *scoreboard_slot(struct scoreboard *sb, uint32_t slot)
{
    return &sb->slots[slot];
}

#define SB_SET(field, v) atomic_store_explicit(&(field), (v), memory_order_relaxed)
#define SB_GET(field) atomic_load_explicit(&(field), memory_order_relaxed)
/* Every field has one writer (a slot's worker, on its loop thread): an
 * add is a relaxed load and store, not a locked read-modify-write. */
#define SB_ADD(field, v) SB_SET(field, SB_GET(field) + (v))

/* The upper bounds of the response-duration buckets, in microseconds:
 * 5ms .. 10s, as Prometheus' client libraries default to. */
extern const uint64_t scoreboard_duration_bounds_us[SB_DURATION_BOUNDS];

/* Worker: one response of status that took seconds, into s->http. */
void scoreboard_count_response(struct slot *s, int status, double seconds);

/* Milliseconds of CLOCK_MONOTONIC / CLOCK_REALTIME. */
int64_t scoreboard_mono_ms(void);
int64_t scoreboard_mono_us(void);
int64_t scoreboard_wall_ms(void);

#endif
