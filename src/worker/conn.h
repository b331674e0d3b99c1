/*
 * conn.h - the client connections of a worker, as the worker sees them:
 * what they share (struct conn_server), accepting, adopting a handed-off
 * one, retiring and closing them all. Runs in workers, on the loop; nothing
 * here blocks. A connection itself (struct conn) is conn.c's and
 * request.c's alone (conn_int.h).
 */
#ifndef PF_CONN_H
#define PF_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>

#include "app.h"
#include "config.h"
#include "httpmsg.h"
#include "preforkd.h"

struct conn;

/* What all connections of one worker share. */
struct conn_server {
    struct ev_loop *loop;
    const struct config *cfg;
    struct app *app;
    struct httpmsg_limits limits;
    bool
        retiring; /* leaving: hand idle connections off (else close), exit when drained */
    bool no_keepalive; /* over max_rss: the same, without leaving yet */
    uint32_t nconns;
    struct conn *conns; /* every open connection, for retiring */
    /* Called after a connection is freed (resume accepting, exit when
     * drained) and after each response is complete. */
    void (*on_conn_closed)(struct conn_server *);
    void (*on_request_done)(struct conn_server *, const struct pf_request *);
    /* After the server's own error response (400, 408, 413...): the
     * request describes what was parsed of it (error_request, conn.c). */
    void (*on_error_response)(struct conn_server *, const struct pf_request *);
    /* Leaving (retiring, no_keepalive), idle keep-alive connections go to
     * a serving worker through handoff_fd (handoff.h) when may_handoff
     * says one serves now; NULL: never, they close as before. */
    int handoff_fd;
    bool (*may_handoff)(const struct conn_server *);
    uint64_t handed_off;    /* connections passed on */
    uint64_t closed;        /* connections closed so far (conn_accept tells
                            * whether the one it served is gone) */
    bool nodelay_inherited; /* every TCP listener has TCP_NODELAY, which
                             * accepted sockets inherit: no setsockopt each */
    struct slot *slot;      /* this worker's: the request in handle() (or NULL) */
};

enum req_state {
    REQ_NONE,      /* no request dispatched */
    REQ_APP,       /* handed to the app, nothing sent yet */
    REQ_STREAMING, /* head sent, body in progress */
    REQ_DONE,      /* response complete */
};

/* A connection's request, opaque to apps (preforkd.h). Defined here, not
 * in conn_int.h, because the callbacks above read its response for the
 * access log and /metrics (worker.c) and for the fuzz harness's checks;
 * only conn.c and request.c write it. */
struct pf_request {
    struct conn *c;
    enum req_state state;
    bool aborted;     /* the client went away; writes are discarded */
    bool head_only;   /* HEAD: send no body */
    bool in_dispatch; /* inside handle(): do not re-enter the loop */
    struct httpmsg_resp resp;
    uint64_t sent;  /* body bytes given by the app, for Content-Length */
    uint64_t bytes; /* response bytes queued: head and body (access log) */
    double started; /* ev_time() when the request was complete (access log) */
    pf_str method, target, path, query, body;
    pf_header *hdrs;
    size_t nhdrs, hdr_cap;
    void (*abort_cb)(pf_request *, void *);
    void *abort_arg;
    void (*drain_cb)(pf_request *, void *);
    void *drain_arg;
};

/* Takes ownership of an accepted, non-blocking fd and starts serving it. */
void conn_accept(struct conn_server *s, int fd, const struct sockaddr *peer);

/* Takes over an idle keep-alive connection another worker handed off. */
void conn_adopt(struct conn_server *s, int fd);

/* Worker retiring: idle connections are handed off now when a serving
 * worker can take them, busy ones after their current response; without
 * one, they close after their response or their keep-alive time. */
void conn_retire_all(struct conn_server *s);

/* Hands off every idle connection that can be (retiring, no_keepalive). */
void conn_handoff_idle(struct conn_server *s);

/* An orphaned request whose abort callback has not run yet: the worker
 * must not exit before it does. */
bool conn_aborts_pending(const struct conn_server *s);

/* Worker exiting now: closes every connection (aborting app requests). */
void conn_close_all(struct conn_server *s);

/* Bytes of response queued on c and not yet written. */
size_t conn_pending(const struct conn *c);

#endif
