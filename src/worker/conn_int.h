/*
 * conn_int.h - the two halves of one unit, which share struct conn:
 * conn.c (the socket, buffers, timers and parsing) and request.c (the
 * pf_request ABI the app calls). Runs in workers, on the loop; nothing
 * here blocks. Only src/worker/conn.c and request.c include it (no test
 * does: the fuzz harness drives a connection through conn.h). The worker
 * uses conn.h.
 */
#ifndef PF_CONN_INT_H
#define PF_CONN_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <arpa/inet.h>
#include <ev.h>

#include "buf.h"
#include "conn.h"
#include "httpmsg.h"

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
    ev_tstamp deadline;   /* lazy: the timer re-arms itself until then */
    ev_tstamp last_write; /* last progress writing out (send_timeout) */
    ev_tstamp app_since;  /* the app's last sign of life (request_timeout) */
    struct buf in;        /* request bytes; parsed up to in_pos */
    size_t in_pos;
    struct buf out; /* response bytes; written up to out_pos */
    size_t out_pos;
    struct httpmsg_parse hp;
    struct pf_request req; /* req.c is c, from conn_open on */
    size_t lingered;       /* bytes read and dropped in CONN_LINGER */
    bool close_after;      /* close once out is flushed */
    bool sent_continue;    /* "100 Continue" already written */
    char peer[INET6_ADDRSTRLEN];
    int peer_port;                /* 0 for a unix socket */
    char local[INET6_ADDRSTRLEN]; /* conn_local, read once: "" until */
    int local_port;
};

#define CONN_HIGH_WATER (256 * 1024) /* pf_response_write says "wait" */
#define CONN_LOW_WATER (64 * 1024)   /* drain callback fires */

/* ---- conn.c, for request.c -------------------------------------------- */

/* The response of c->req is complete: count it, then go on with the next
 * pipelined request or keep-alive, unless inside handle(). */
void conn_response_done(struct conn *c);
/* Output was queued outside handle(): try to write it now. */
void conn_kick(struct conn *c);
/* The app ended an orphaned request: free the connection. */
void conn_release_orphan(struct conn *c);
/* Whether a response may promise keep-alive as far as the worker's state
 * goes: it is staying, or it can hand the connection off. */
bool conn_keeps_alive(const struct conn_server *s);
/* The local address of c's socket as text, and its port in *port (unless
 * NULL; 0 for a unix socket): one getsockname per connection, on first
 * use. Never fails: an unknown address reads as a unix socket's. */
const char *conn_local(struct conn *c, int *port);

/* Close c once its output is flushed (the response ends the connection). */
static inline void conn_close_after(struct conn *c)
{
    c->close_after = true;
}

/* The app showed a sign of life on c's request: request_timeout counts
 * again from now. */
static inline void conn_app_active(struct conn *c)
{
    c->app_since = ev_now(c->srv->loop);
}

/* ---- request.c, for conn.c -------------------------------------------- */

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

#endif
