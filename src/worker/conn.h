/*
 * conn.h - one client connection in a worker (conn.c: sockets, buffers,
 * timers, keep-alive; request.c: the pf_request ABI on top of it).
 * Internal to the worker process: nothing here runs in the master.
 */
#ifndef PF_CONN_H
#define PF_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <ev.h>

#include "app.h"
#include "buf.h"
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
    bool retiring;         /* leaving: hand idle connections off (else close), exit when drained */
    bool no_keepalive;     /* over max_rss: the same, without leaving yet */
    uint32_t nconns;
    struct conn *conns;    /* every open connection, for retiring */
    /* Called after a connection is freed (resume accepting, exit when
     * drained) and after each response is complete. */
    void (*on_conn_closed)(struct conn_server *);
    void (*on_request_done)(struct conn_server *, struct conn *);
    /* After the server's own error response (400, 408, 413...): c->req
     * describes what was parsed of the request (conn_error_request). */
    void (*on_error_response)(struct conn_server *, struct conn *);
    /* Leaving (retiring, no_keepalive), idle keep-alive connections go to
     * a serving worker through handoff_fd (handoff.h) when may_handoff
     * says one serves now; NULL: never, they close as before. */
    int handoff_fd;
    bool (*may_handoff)(const struct conn_server *);
    uint64_t handed_off;   /* connections passed on */
    uint64_t closed;       /* connections closed so far (conn_accept tells
                            * whether the one it served is gone) */
    bool nodelay_inherited; /* every TCP listener has TCP_NODELAY, which
                             * accepted sockets inherit: no setsockopt each */
    struct slot *slot;     /* this worker's: the request in handle() (or NULL) */
};

enum req_state {
    REQ_NONE,      /* no request dispatched */
    REQ_APP,       /* handed to the app, nothing sent yet */
    REQ_STREAMING, /* head sent, body in progress */
    REQ_DONE,      /* response complete */
};

struct pf_request {
    struct conn *c;
    enum req_state state;
    bool aborted;   /* the client went away; writes are discarded */
    bool head_only; /* HEAD: send no body */
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

enum conn_state {
    CONN_HEAD,   /* reading a request head (header_timeout) */
    CONN_BODY,   /* reading a request body (body_timeout between reads) */
    CONN_APP,    /* the app has the request; input is buffered */
    CONN_IDLE,   /* keep-alive, between requests (keepalive_timeout) */
    CONN_LINGER, /* after an error: output flushed, discarding input */
    CONN_ORPHAN, /* socket closed, waiting for the app to end the request */
};

struct conn {
    struct conn_server *srv;
    struct conn *prev, *next;
    int fd;
    enum conn_state state;
    ev_io rio, wio;
    ev_timer timer;
    ev_tstamp deadline; /* lazy: the timer re-arms itself until then */
    ev_tstamp last_write; /* last progress writing out (send_timeout) */
    ev_tstamp app_since;  /* the app's last sign of life (request_timeout) */
    struct buf in;      /* request bytes; parsed up to in_pos */
    size_t in_pos;
    struct buf out;     /* response bytes; written up to out_pos */
    size_t out_pos;
    struct httpmsg_parse hp;
    struct pf_request req;
    size_t lingered;    /* bytes read and dropped in CONN_LINGER */
    bool in_dispatch;   /* inside handle(): do not re-enter the loop */
    bool close_after;   /* close once out is flushed */
    bool sent_continue; /* "100 Continue" already written */
    char peer[INET6_ADDRSTRLEN];
    int peer_port;      /* 0 for a unix socket */
    char local[INET6_ADDRSTRLEN]; /* pf_request_local, read once: "" until */
    int local_port;
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

/* Whether a response may promise keep-alive as far as the worker's state
 * goes: it is staying, or it can hand the connection off. */
bool conn_keeps_alive(const struct conn_server *s);

/* An orphaned request whose abort callback has not run yet: the worker
 * must not exit before it does. */
bool conn_aborts_pending(const struct conn_server *s);

/* Worker exiting now: closes every connection (aborting app requests). */
void conn_close_all(struct conn_server *s);

/* ---- used by request.c --------------------------------------------------- */

/* The response of c->req is complete: count it, then go on with the next
 * pipelined request or keep-alive, unless inside handle(). */
void conn_response_done(struct conn *c);
/* Output was queued outside handle(): try to write it now. */
void conn_kick(struct conn *c);
/* Bytes of response queued and not yet written. */
size_t conn_pending(const struct conn *c);
/* The app ended an orphaned request: free the connection. */
void conn_release_orphan(struct conn *c);
/* Fills c->req from the parsed request (pointers into c->in). */
void request_prepare(struct conn *c);
/* Runs the app's handle(); answers 500 if it fails before responding. */
void request_dispatch(struct conn *c);
/* The client went away, or request_timeout passed, while the app holds
 * the request: marks it aborted and runs the app's abort callback. */
void request_abort(struct conn *c);
/* request_timeout passed before the app sent anything: queues a 504 with
 * Connection: close as the request's response (the access log's status). */
void request_write_timeout(struct conn *c);

#define CONN_HIGH_WATER (256 * 1024) /* pf_response_write says "wait" */
#define CONN_LOW_WATER (64 * 1024)   /* drain callback fires */

#endif
