/*
 * wsgi.h - internals of the built-in `wsgi` module (src/apps/wsgi/), shared
 * by its files only. [loop]: the worker's event-loop thread, where every
 * pf_* call happens; [GIL]: whoever runs the app (the loop thread with
 * threads = 0, else a pool thread). Convention: 0 / -1, Python errors left
 * set for the caller.
 */
#ifndef PF_WSGI_H
#define PF_WSGI_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <preforkd.h>

/* "3.11": the Python this module embeds. */
#define PY_VER_STR Py_STRINGIFY(PY_MAJOR_VERSION) "." Py_STRINGIFY(PY_MINOR_VERSION)

/* Body bytes a job may have queued for the loop before its Python side
 * parks (gives the thread back) until the connection has drained. */
#define WSGI_WINDOW (256 * 1024)

/* Bytes handed from Python to the loop (a growable buffer). */
struct obuf {
    char *p;
    size_t len, cap;
};

/* Where a job's Python side is (guarded by the pool's mutex). */
enum py_state {
    PY_IDLE,    /* not started, or parked: waiting for the loop */
    PY_QUEUED,  /* waiting for a Python thread */
    PY_RUNNING, /* in Python now */
    PY_DONE,    /* finished: close() called, nothing more will come */
};

/* One request. Created by the loop in handle, freed by the loop once the
 * request has ended and Python is done with it. */
struct job {
    struct wsgi *w;
    pf_request *r;          /* loop only */
    struct job *next_run;   /* in the run queue (PY_QUEUED) */
    struct job *next_out;   /* in the outbox (news for the loop) */
    struct job *next_ready; /* in the loop's ready list */
    bool in_out;            /* pool mutex */
    bool in_ready;          /* loop only */

    /* The request, read on the loop in handle. The pf_str bytes stay
     * valid until the request ends, which happens after PY_DONE. */
    pf_str method, target, path, query, body;
    int version;
    char peer[64];
    int peer_port;  /* 0: a unix socket */
    char local[64]; /* the address it came in on, for a */
    int local_port; /* request without Host */
    size_t nhdrs;
    pf_header *hdrs; /* points into this allocation */

    /* Python side (GIL). */
    PyObject *result;      /* what the app returned */
    PyObject *iter;        /* iter(result), for a general iterable */
    Py_ssize_t seq_pos;    /* next item of a list or tuple result */
    PyObject *input;       /* wsgi.input: detached at the end */
    PyObject *sr;          /* the start_response object */
    PyObject *sr_status;   /* from start_response (str) */
    PyObject *sr_headers;  /* from start_response (list) */
    bool committed;        /* the head is final (first body byte) */
    bool has_cl;           /* the app declared Content-Length */
    uint64_t cl, body_out; /* declared, and body bytes emitted */

    /* Shared between Python and the loop (pool mutex). */
    enum py_state py;
    bool started;      /* Python has seen it */
    bool aborted;      /* the client left (or request_timeout) */
    bool blocked;      /* the loop waits for a drain */
    bool head_ready;   /* status + ohdrs are set */
    bool failed;       /* Python failed after the head: cut it */
    struct obuf q;     /* body bytes for the loop */
    struct obuf spare; /* a buffer the loop is done with */
    int status;
    pf_header *ohdrs; /* the response head, one allocation */
    size_t nohdrs;
    int file_fd; /* wsgi.file_wrapper fast path, or -1 */
    uint64_t file_off, file_left;
    bool file_sending; /* the loop sends file_fd; Python idle */
    bool file_done;    /* ... and has finished: close() is due */

    /* Loop only. */
    bool head_sent;
    bool ended_early; /* the request was ended with a 500 */
    bool ended;       /* the request ended: free when unlisted */

    /* Leak hunting (hunt.c, routes.c), Python side. */
    int hunt_route;      /* its route key, or -1: not measured */
    int64_t hunt_blocks; /* Python's blocks when the app was called */
};

/* A log line from a pool thread, on its way to the loop. */
struct logline {
    struct logline *next;
    int level;
    char text[];
};

/* A Python thread of the pool. */
struct pythread {
    struct wsgi *w;
    int n; /* 1.. */
    pthread_t tid;
    PyThreadState *ts;
    bool busy;      /* in Python for a job (pool mutex) */
    double since;   /* ... since (monotonic seconds) */
    char what[160]; /* ... which: "METHOD TARGET" */
};

/* The module's state: one per load, inherited by every worker. */
struct wsgi {
    /* [app] keys */
    char *app_spec;    /* app = MODULE:CALLABLE */
    char *post_fork;   /* post_fork = MODULE:CALLABLE */
    char *script_name; /* without a trailing '/', "" for none */
    size_t script_name_len;
    char *url_scheme;
    int nthreads;
    bool gc_freeze;
    double stuck_timeout;

    /* the interpreter */
    pid_t load_pid;         /* the process that ran load */
    PyThreadState *main_ts; /* saved while the GIL is released */
    PyObject *app;          /* the callable */
    PyObject *environ_tmpl; /* constant environ keys, copied per request */
    PyObject *errors;       /* wsgi.errors, one per worker */

    /* the worker: the pool and the loop's side of it */
    struct ev_loop *loop;
    pthread_t loop_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* work for the pool */
    pthread_cond_t room; /* the loop took a job's queued bytes */
    struct job *run_head, *run_tail;
    struct job *out_head, *out_tail;
    struct job *ready_head, *ready_tail; /* loop only */
    struct logline *logs, **logs_tail;
    ev_async wake;
    ev_timer stuck;
    ev_timer heap; /* wsgi_publish_heap, every second */
    bool stopping, stuck_reported;
    struct pythread *threads;
    int started_threads;
};

/* ---- wsgi.c ---------------------------------------------------------------- */

/* pf_log from any thread: on the loop thread (or before the worker runs)
 * directly, from a pool thread through the loop (wake). */
void wsgi_log(struct wsgi *w, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Tells the daemon the size of Python's object heap (pymalloc's arenas).
 * [loop] */
void wsgi_publish_heap(void);
/* Logs the current Python exception (and clears it) as a traceback, one
 * line per log line, after `what`. [GIL] */
void wsgi_log_exception(struct wsgi *w, const char *what);

/* ---- config.c ---------------------------------------------------------------- */

/* Reads and checks every [app] key into w (strings copied), and returns
 * python_path and virtualenv (the config's, or NULL). 0 / -1 (reported
 * per key). [load, before the interpreter] */
int config_read(const pf_app_config *cfg, struct wsgi *w, const char **python_path,
                const char **venv);
/* Imports MODULE of spec (the value of the [app] key `key`) and returns
 * CALLABLE (default "application"), called first when it is a factory
 * call "NAME(ARGS)" with literal ARGS: a new reference, or NULL after
 * logging why (a traceback, or a configuration error naming key). [load,
 * GIL] */
PyObject *config_resolve(struct wsgi *w, const pf_app_config *cfg, const char *key,
                         const char *spec);

/* ---- environ.c --------------------------------------------------------------- */

/* Interns the key strings and builds w->environ_tmpl. 0 / -1. [GIL] */
int environ_init(struct wsgi *w);
/* The environ dict of job j (new reference), or NULL with an exception;
 * returns 1 through *not_found when the path is outside script_name.
 * Sets j->input. [GIL] */
PyObject *environ_build(struct job *j, bool *not_found);

/* ---- input.c -------------------------------------------------------------------- */

/* Readies the wsgi.input, wsgi.errors and wsgi.file_wrapper types. [GIL] */
int input_init(void);
/* A wsgi.input over data[0..len) (not copied: see input_detach). [GIL] */
PyObject *input_new(const char *data, size_t len);
/* Makes input read as empty from now on: the body's bytes are the
 * daemon's and go when the request ends. [GIL] */
void input_detach(PyObject *input);
/* The wsgi.errors object of this worker. [GIL] */
PyObject *errors_new(struct wsgi *w);
/* The wsgi.file_wrapper type; file_wrapper_fd: the descriptor, offset and
 * length to send when o is a FileWrapper over a regular file (the fd is a
 * dup the caller owns), else -1 with no exception. [GIL] */
PyObject *file_wrapper_type(void);
int file_wrapper_fd(PyObject *o, uint64_t *off, uint64_t *len);

/* ---- response.c ------------------------------------------------------------- */

/* Readies the start_response type. [GIL] */
int response_init(void);
/* Runs job j's Python side until it is done, parks (window full), or
 * hands a file to the loop. Then sets j->py (never to PY_RUNNING) and
 * reports to the loop (threads_post). [GIL, no pool mutex] */
void response_run(struct job *j);

/* ---- deliver.c ------------------------------------------------------------- */

/* The loop's side: writes what j's Python side queued, ends the request
 * when both sides are done, frees j. May ask for Python again
 * (threads_schedule). [loop] */
void response_deliver(struct job *j);
/* Frees j's memory (Python's references are gone by PY_DONE). [loop] */
void job_free(struct job *j);

/* ---- threads.c ------------------------------------------------------------- */

/* Starts w->nthreads Python threads (none for 0) and the loop's wake-up
 * watcher. The calling (loop) thread holds the GIL and keeps it with
 * threads = 0 between requests only while a request runs. 0 / -1. [loop] */
int threads_start(struct wsgi *w);
/* Stops the pool: idle threads leave, busy ones are abandoned (the process
 * exits next). [loop] */
void threads_stop(struct wsgi *w);
/* Queues j for Python: a pool thread, or (threads = 0) the loop itself on
 * its next wake-up. [loop] */
void threads_schedule(struct job *j);
/* Tells the loop that j has news (from Python). [any thread, pool mutex
 * not held] */
void threads_post(struct job *j);
/* The client left: j is aborted; Python is told, the loop ends it later.
 * [loop] */
void threads_abort(struct job *j);
/* threads = 0: runs j's Python side on the loop thread now, GIL taken and
 * released around it. [loop] */
void threads_run_inline(struct job *j);
/* response_deliver(j) on the loop's next turn (never from inside a
 * daemon callback such as abort or drain). [loop] */
void threads_kick(struct job *j);
/* The request of j has ended: frees j, now or when it leaves the lists
 * it is on. [loop] */
void threads_release(struct job *j);

/* ---- hunt.c: figures, the census, the request hooks ------------------------- */

/* Reads the [app] keys census_after, route_segments, route_keys, hunt.
 * 0 / -1 (logged). [load] */
int hunt_config(const pf_app_config *cfg);
/* Per worker, before the pool starts: counts Python's blocks, publishes
 * the first figures. [loop, GIL held] */
void hunt_worker_init(struct wsgi *w);
/* The census at a max_rss retirement. [loop, no GIL] */
void hunt_worker_exit(struct wsgi *w);
/* The figures and the route ranking, at most once a second. [loop] */
void hunt_publish(void);
/* Around the app's whole part in a request: before it is called, and once
 * its response is closed and dropped. [GIL] */
void hunt_request_begin(struct job *j);
void hunt_request_end(struct job *j);
/* Python's allocated blocks, counted as they come and go, plus those the
 * collector freed (0 when the count is off): differences only are
 * meaningful. [GIL] */
int64_t hunt_blocks(void);

/* ---- routes.c: which traffic retains blocks --------------------------------- */

/* The table of route keys: at most max_keys, then "other"; segments: how
 * many path segments a key has. 0 / -1. [loop] */
int routes_init(int segments, int max_keys);
/* The index of j's route key. [GIL] */
int routes_find(const struct job *j);
/* Adds one request's retained blocks to route i. [GIL] */
void routes_add(int i, int64_t blocks);
/* Publishes the top 5 routes by mean retained blocks per request. [loop] */
void routes_publish(void);

/* ---- trace.c: tracemalloc on demand ----------------------------------------- */

/* The module's command hook: "trace start [frames=N]", "trace dump
 * [top=N]", "trace stop". Takes the GIL. [loop] */
int trace_command(void *state, const char *cmd, const char *args, char *out,
                  size_t outlen);

static inline void lock(struct wsgi *w)
{
    pthread_mutex_lock(&w->mu);
}
static inline void unlock(struct wsgi *w)
{
    pthread_mutex_unlock(&w->mu);
}

#endif
