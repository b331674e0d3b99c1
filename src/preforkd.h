/*
 * preforkd.h - the public application ABI of preforkd.
 *
 * This is the only header an application module includes. A module is a
 * shared object that exports one symbol, `pf_app_entry`, a const struct pf_app
 * (use PF_APP_DEFINE). The daemon dlopen()s the module, refuses it when
 * abi_version differs from the daemon's PF_ABI_VERSION, and calls:
 *
 *   load         once, in the mold before it forks any worker (preload =
 *                true: memory shared copy-on-write), or in each worker
 *                after fork (preload = false). Reads the [app] keys.
 *   fork_prepare, fork_parent
 *                in the mold, around each fork of a worker (optional).
 *   worker_init  once in each worker after fork, before it accepts.
 *   handle       once per request, on the worker's event loop. Must not block.
 *   worker_exit  once in each worker before it exits (not on a crash).
 *   unload       once where load ran, at the end.
 *
 * Every pf_* function below runs in a worker, on the worker's event loop
 * thread, except pf_config_* (load only) and pf_log (anywhere, any thread:
 * each line is one write(2)).
 *
 * Strings handed to the app (pf_str) are NOT NUL-terminated: they point into
 * the connection's buffer and stay valid until the response ends (pf_respond
 * or pf_response_end returns).
 */
#ifndef PREFORKD_H
#define PREFORKD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change to this header. */
#define PF_ABI_VERSION 1

#define PF_APP_SYMBOL "pf_app_entry"

typedef struct pf_request pf_request;       /* one HTTP request, opaque */
typedef struct pf_app_config pf_app_config; /* the [app] section, opaque */
struct ev_loop;                             /* libev's, see pf_loop() */

typedef struct pf_str {
    const char *ptr; /* NULL when absent */
    size_t len;
} pf_str;

typedef struct pf_header {
    pf_str name;
    pf_str value;
} pf_header;

struct pf_app {
    uint32_t abi_version; /* PF_ABI_VERSION the module was built with */
    uint32_t size;        /* sizeof(struct pf_app) the module was built with */
    const char *name;
    const char *description;
    /* 0 on success; -1 refuses to start (log why with pf_config_error or
     * pf_log first). *state is handed to every later call. May be NULL. */
    int (*load)(const pf_app_config *cfg, void **state);
    /* 0 on success; -1 makes the worker exit 70 (the master stops
     * respawning when no worker can boot). May be NULL. */
    int (*worker_init)(void *state);
    /* Respond now (pf_respond) or later (keep r, respond from a callback on
     * pf_loop()). Return 0 when a response is given or pending; -1 when the
     * request failed and nothing was sent: the daemon answers 500. */
    int (*handle)(pf_request *r, void *state);
    void (*worker_exit)(void *state); /* may be NULL */
    void (*unload)(void *state);      /* may be NULL */
    /* Added within ABI version 1; a module built before has a smaller
     * `size` and is run as if both were NULL. In the mold (the process that
     * preloads the app and forks the workers), just before and just after
     * it forks a worker, in the mold itself; the new worker starts with
     * worker_init. An interpreter takes its locks here (CPython's
     * PyOS_BeforeFork / PyOS_AfterFork_Parent). May be NULL. */
    void (*fork_prepare)(void *state);
    void (*fork_parent)(void *state);
    /* Added within ABI version 1, as the two above. An operator's command
     * to one worker (preforkctl, relayed by the master), e.g. cmd "trace",
     * args "start frames=5"; on the worker's loop thread, in a worker that
     * has booted. Writes its answer, text, into out (at most outlen bytes,
     * NUL-terminated) and returns an HTTP status: 200 done, 400 bad
     * arguments, 404 no such command, 409 not now. May be NULL: every
     * command the daemon does not know itself is then 404. */
    int (*command)(void *state, const char *cmd, const char *args, char *out,
                   size_t outlen);
};

/* The size of struct pf_app in modules built before fork_prepare. */
#define PF_APP_SIZE_V1 offsetof(struct pf_app, fork_prepare)

#if defined(__GNUC__)
#define PF_EXPORT __attribute__((visibility("default")))
#else
#define PF_EXPORT
#endif

/* PF_APP_DEFINE(.name = "x", .handle = x_handle, ...) */
#define PF_APP_DEFINE(...) \
    PF_EXPORT const struct pf_app pf_app_entry = {.abi_version = PF_ABI_VERSION, \
                                                  .size = sizeof(struct pf_app), \
                                                  __VA_ARGS__}

/* ---- configuration (in load only) ---------------------------------------
 * Keys of [app] other than `module`. A key the app never asks for is an
 * "unknown key" error once load returns, so typos never pass silently. */

/* The value of key, NUL-terminated, or NULL when the key is absent. */
const char *pf_config_get(const pf_app_config *cfg, const char *key);
/* Size with optional K/M/G suffix; *out = dflt when absent.
 * 0, or -1 after logging a file:line error naming the key. */
int pf_config_get_size(const pf_app_config *cfg, const char *key, uint64_t dflt,
                       uint64_t *out);
/* Duration in seconds, with optional ms/s/m/h suffix; as above. */
int pf_config_get_duration(const pf_app_config *cfg, const char *key, double dflt,
                           double *out);
/* 1 if the file has an [upstream NAME] section, else 0: lets load() refuse
 * a name that pf_upstream_find would not find in the workers. */
int pf_config_has_upstream(const pf_app_config *cfg, const char *name);
/* Logs "FILE:LINE: [app] KEY: <message>" at error level and returns -1. */
int pf_config_error(const pf_app_config *cfg, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- the request -------------------------------------------------------- */

pf_str pf_request_method(const pf_request *r);
/* The target as sent: "/path?query", or "http://host/path?query" from a
 * client that takes the server for a proxy (absolute form). Path and query
 * are the same in both forms; with the absolute form, the Host header reads
 * as the target's host (RFC 9112 3.2.2). */
pf_str pf_request_target(const pf_request *r);
pf_str pf_request_path(const pf_request *r);  /* "/path": at least "/" */
pf_str pf_request_query(const pf_request *r); /* after '?', len 0 if none */
int pf_request_version(const pf_request *r);  /* 10 or 11 */
size_t pf_request_header_count(const pf_request *r);
const pf_header *pf_request_header_at(const pf_request *r, size_t i);
/* First header named name (case-insensitive); .ptr NULL when absent. */
pf_str pf_request_header(const pf_request *r, const char *name);
/* The whole body, de-chunked; len 0 when there is none. */
pf_str pf_request_body(const pf_request *r);
/* The client's address as text ("127.0.0.1", "::1", "unix"). */
const char *pf_request_peer(const pf_request *r);
/* The client's port; 0 for a unix socket. */
int pf_request_peer_port(const pf_request *r);
/* The address the connection came in on, as text ("127.0.0.1", "unix"),
 * with its port in *port (0 for a unix socket; port may be NULL). Read
 * from the socket once per connection. */
const char *pf_request_local(const pf_request *r, int *port);

/* Called once if the client goes away before the response ends, or when
 * the app has said nothing about the request for [server] request_timeout
 * (the client then gets 504, or a closed connection once the head is out).
 * The request stays valid: the app must still end it (pf_respond /
 * pf_response_end), which then only frees it. */
void pf_request_on_abort(pf_request *r, void (*cb)(pf_request *, void *), void *arg);

/* ---- the response ------------------------------------------------------- *
 * The daemon writes the status line, Date, Server, Connection and the framing
 * (Content-Length or chunked); headers the app passes with those names are
 * ignored, except Content-Length in pf_response_start (see there) and
 * "Connection: close", which closes the connection after the response.
 * Header names and values must not contain CR, LF or NUL: -1.
 *
 * Return values: 0 done; -1 invalid use (response already started, bad
 * header) or the request was aborted (the call is then a no-op that still
 * ends the request where it would have). */

/* A whole response: status, headers and body at once. Ends the request. */
int pf_respond(pf_request *r, int status, const pf_header *headers, size_t nheaders,
               const void *body, size_t len);

/* A streamed response. With a Content-Length header in headers, exactly that
 * many bytes must follow; without one, the body is chunked (HTTP/1.1) or
 * delimited by closing the connection (HTTP/1.0). */
int pf_response_start(pf_request *r, int status, const pf_header *headers,
                      size_t nheaders);
/* Queue body bytes (copied). 0: accepted, write more; 1: accepted, but the
 * connection's buffer is above its high-water mark: wait for the drain
 * callback before writing more; -1: aborted or not started. */
int pf_response_write(pf_request *r, const void *data, size_t len);
/* cb runs once the buffered output falls below the low-water mark. */
void pf_response_on_drain(pf_request *r, void (*cb)(pf_request *, void *), void *arg);
/* Ends a streamed response. The request must not be used afterwards. */
int pf_response_end(pf_request *r);
/* Ends a streamed response that cannot be completed (its source failed):
 * the body is left unterminated and the connection closes once what was
 * queued is written, so the client sees that it is cut. -1 when no
 * streamed response is in progress. The request must not be used
 * afterwards. */
int pf_response_abort(pf_request *r);

/* ---- the worker ---------------------------------------------------------- */

/* The worker's libev loop, for the app's own timers and I/O watchers. */
struct ev_loop *pf_loop(void);
/* This worker's number, 1..max_workers (stable across its replacement). */
int pf_worker_id(void);
/* Asks the master to replace this worker gracefully, as when it reaches
 * max_requests: the replacement starts, then this worker retires. Its
 * retirement is counted as "requested". Once per worker; later calls do
 * nothing. */
void pf_worker_recycle(void);
/* Why this worker is leaving, once it is ("max_rss", "max_requests",
 * "max_lifetime", "requested", "reload", "scale_down", "shutdown", or
 * "signal" for a TERM from outside), e.g. for worker_exit to log what an
 * operator hunting a leak wants to see; NULL while it serves. */
const char *pf_worker_leaving(void);

/* ---- figures the app publishes (workers, loop thread) --------------------
 * Shown per worker in /stats and /metrics, so that an operator sees which
 * heap grows and what the app itself counts. */

/* The heap the app manages itself (an interpreter's object allocator),
 * named (at most 15 bytes, e.g. "python") and in bytes in use. It is
 * sampled with the worker's memory and malloc's bytes in use ("c"), each
 * with a growth slope in /stats and the retirement log line. Call it as
 * often as the figure changes (it is read once a second). */
void pf_worker_heap(const char *name, uint64_t bytes);
/* Sets one figure: name is [a-z0-9_]{1,31} (/metrics shows it as
 * preforkd_app_NAME), label free text (up to 63 bytes, "" for none) that
 * tells rows of one name apart (a route, a generation). At most 16 rows a
 * worker: 0, or -1 when the table is full or the name malformed. */
int pf_metric_set(const char *name, const char *label, double value);
/* Removes every row of name (to publish a new top N, say). */
void pf_metric_clear(const char *name);

enum pf_log_level { PF_LOG_ERROR = 0, PF_LOG_WARN, PF_LOG_INFO, PF_LOG_DEBUG };
void pf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- upstream requests (workers only) -------------------------------------
 * HTTP/1.1 requests to the servers of an [upstream NAME] section, through
 * this worker's pool of keep-alive connections (round robin over the
 * servers, passive health checks, bounded in every dimension; see
 * docs/upstreams.md). Asynchronous: every result arrives through the
 * callbacks, on pf_loop(), and never from inside the call that started the
 * request. Each request ends exactly once: on_done runs, or the app
 * cancels it. */

typedef struct pf_upstream pf_upstream;         /* an [upstream NAME] */
typedef struct pf_upstream_req pf_upstream_req; /* one request, opaque */

/* Why an upstream request failed (on_done's error). */
enum pf_upstream_error {
    PF_UPSTREAM_OK = 0,
    PF_UPSTREAM_ECONNECT, /* no server could be connected (refused,
                             unreachable, every server marked down) */
    PF_UPSTREAM_ETIMEOUT, /* connect_timeout or read_timeout passed */
    PF_UPSTREAM_ERESET,   /* closed or reset before the response ended */
    PF_UPSTREAM_EPROTO,   /* the response is not valid HTTP/1.x */
    PF_UPSTREAM_EBUSY     /* every connection in use and the queue full,
                             or no connection came within connect_timeout */
};

typedef struct pf_upstream_callbacks {
    /* The response head (interim 1xx responses are skipped). headers are
     * valid during the call only; status is 200..999. May be NULL. */
    void (*on_head)(pf_upstream_req *u, void *arg, int status, const pf_header *headers,
                    size_t nheaders);
    /* A piece of the body, de-chunked, valid during the call only. Call
     * pf_upstream_pause to get no more pieces until pf_upstream_resume.
     * Never called for HEAD requests or 204/304 responses. May be NULL. */
    void (*on_body)(pf_upstream_req *u, void *arg, const void *data, size_t len);
    /* The end: error is PF_UPSTREAM_OK after a complete response, else an
     * enum pf_upstream_error (on_head may or may not have run before). u
     * is freed when on_done returns. Not called after pf_upstream_cancel. */
    void (*on_done)(pf_upstream_req *u, void *arg, int error);
} pf_upstream_callbacks;

/* The [upstream name] of the configuration, or NULL when there is none.
 * Valid for the worker's life; call it from worker_init or later. */
pf_upstream *pf_upstream_find(const char *name);

/* Sends method target HTTP/1.1 with headers and body to a server of up.
 * Everything is copied: the arguments may go once the call returns. The
 * daemon writes Content-Length (for a body, or a method that usually has
 * one: the upstream never sees ambiguous framing) and Connection itself,
 * ignoring those headers and Keep-Alive and Transfer-Encoding in headers,
 * and adds "Host: NAME" (of its [upstream NAME]) when headers have no Host. An
 * idempotent request (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) that fails on
 * a reused connection before any response byte is retried on a new one.
 * cb is copied; arg is handed to each callback. Returns the request, or
 * NULL when it cannot be sent at all: unknown up, a method, target or
 * header with CR, LF, NUL or (method, name) a non-token character, or the
 * method CONNECT. Then no callback runs. */
pf_upstream_req *pf_upstream_request(pf_upstream *up, pf_str method, pf_str target,
                                     const pf_header *headers, size_t nheaders,
                                     const void *body, size_t len,
                                     const pf_upstream_callbacks *cb, void *arg);

/* Abandons u: no callback runs after this, and u must not be used again.
 * The connection goes back to the pool only if nothing of the request was
 * sent yet; a connection with an exchange in progress is closed. Allowed
 * from on_head and on_body (not from on_done, after which u is gone). */
void pf_upstream_cancel(pf_upstream_req *u);

/* Back-pressure: stop reading the response of u (after the current
 * on_body piece) until pf_upstream_resume. read_timeout does not run while
 * paused. Both are no-ops on a request that ended. */
void pf_upstream_pause(pf_upstream_req *u);
void pf_upstream_resume(pf_upstream_req *u);

/* "connect failed", "timed out", ... for an enum pf_upstream_error. */
const char *pf_upstream_strerror(int error);

#ifdef __cplusplus
}
#endif
#endif /* PREFORKD_H */
