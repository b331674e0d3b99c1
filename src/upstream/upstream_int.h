/*
 * upstream_int.h - internals shared by the three files of the upstream
 * client: upstream.c (pools: servers, round robin, health, idle lists,
 * waiters, counters, the pf_upstream_* ABI), upstream_conn.c (one
 * connection's I/O: connect, send, receive, timers) and upstream_http.c
 * (request framing and response parsing, no sockets). Worker process only;
 * nothing here blocks. Not part of the public ABI.
 */
#ifndef PF_UPSTREAM_INT_H
#define PF_UPSTREAM_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>
#include <http_parser.h>

#include "buf.h"
#include "config.h"
#include "preforkd.h"
#include "scoreboard.h"

#define UPS_READ_SIZE (64 * 1024) /* bytes read from an upstream at once */
#define UPS_HEAD_MAX (64 * 1024)  /* response head: names and values */
#define UPS_HEADERS_MAX 256       /* response header fields */
#define UPS_SURPLUS_GRACE 1.0     /* idle beyond max_idle lives this long */

/* ---- upstream_http.c: framing and parsing ------------------------------- */

struct ups_hdr {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
};

/* What the parser reports to its owner, from inside upstream_http_feed. */
struct ups_parse_events {
    void (*on_head)(void *arg, int status, const pf_header *h, size_t n);
    void (*on_body)(void *arg, const char *data, size_t len);
};

/* One response being parsed. Header names and values are copied into
 * `head` (reads may split them anywhere), so the read buffer can be reused
 * at once. */
struct ups_parse {
    http_parser p;
    const struct ups_parse_events *ev;
    void *arg;
    struct buf head;
    struct ups_hdr *hdrs;
    pf_header *view; /* hdrs as pf_header, built when the head is done */
    uint32_t nhdrs, hdr_cap;
    int status;
    bool in_field;   /* the last header piece was (part of) a name */
    bool head_only;  /* answer to HEAD: no body whatever the head says */
    bool head_done;  /* the final (non-1xx) head was delivered */
    bool complete;   /* the whole response is parsed (parser paused) */
    bool keepalive;  /* the upstream allows another request */
    const char *why; /* set on a parse error */
};

/* Validates and frames a request into out: the head without its final
 * CRLF (its length in *head_len), then the body. Adds Host (host) when the
 * headers have none and Content-Length when there is a body or the method
 * usually has one; drops the caller's Connection, Keep-Alive,
 * Content-Length and Transfer-Encoding. 0, or -1 (out untouched) for a
 * method, target or header that cannot be sent as is. */
int upstream_http_request(struct buf *out, size_t *head_len, pf_str method, pf_str target,
                          const pf_header *h, size_t n, const void *body, size_t len,
                          const char *host);

/* True for the methods RFC 9110 calls idempotent. */
bool upstream_http_idempotent(pf_str method);

/* Prepares ps for one response (head_only: the request was HEAD). */
void upstream_http_init(struct ups_parse *ps, bool head_only,
                        const struct ups_parse_events *ev, void *arg);
void upstream_http_free(struct ups_parse *ps);

/* Parses data[0, len). Returns the bytes consumed: all of them, or fewer
 * when the response is complete (ps->complete), on an error (ps->why), or
 * when a callback paused the parser (upstream_http_pause). */
size_t upstream_http_feed(struct ups_parse *ps, const char *data, size_t len);

/* The connection ended. 0 when that completes the response (a body
 * delimited by the close); -1 when the response is cut. */
int upstream_http_eof(struct ups_parse *ps);

/* Stops the parser after the current callback / lets it go on. */
void upstream_http_pause(struct ups_parse *ps, bool on);

/* ---- the pool (upstream.c) ---------------------------------------------- */

struct ups_conn;
typedef struct pf_upstream ups_t;
typedef struct pf_upstream_req ureq_t;

/* At most one warning a second; the next one says how many were dropped. */
struct ups_ratelimit {
    ev_tstamp last;
    uint32_t dropped;
};

struct ups_server {
    struct pf_upstream *up;
    const struct listen_addr *addr;
    struct ups_conn *conns;     /* every open connection */
    struct ups_conn *idle_head; /* idle, most recently used first */
    struct ups_conn *idle_tail;
    uint32_t nopen, nidle;
    uint32_t fails;          /* failures in a row */
    ev_tstamp down_until;    /* skipped until then (passive health) */
    ev_timer trim;           /* closes idle connections beyond max_idle */
    struct ups_ratelimit rl; /* warnings about this server */
};

struct pf_upstream {
    struct ev_loop *loop;
    const struct config_upstream *cfg;
    struct ups_server *servers;
    size_t nservers;
    size_t rr;                     /* next server, round robin */
    ureq_t *wait_head, *wait_tail; /* requests waiting for a connection */
    uint32_t nwaiting;
    ureq_t *reqs;            /* every live request */
    uint32_t nopen, nidle;   /* over every server */
    struct sb_upstream *sb;  /* our counters in the scoreboard, or NULL */
    struct ups_ratelimit rl; /* warnings about the whole upstream */
};

enum ureq_state { UREQ_NEW, UREQ_WAITING, UREQ_ACTIVE, UREQ_DONE };

struct pf_upstream_req {
    ups_t *up;
    ureq_t *prev, *next;   /* up->reqs */
    ureq_t *wprev, *wnext; /* up->wait_head, while waiting */
    struct ups_conn *conn; /* while active */
    pf_upstream_callbacks cb;
    void *arg;
    struct buf msg;  /* the framed request: head, body */
    size_t head_len; /* head bytes of msg (no final CRLF) */
    enum ureq_state state;
    uint32_t attempts;     /* connections tried */
    uint32_t retries_left; /* sends on a fresh connection left */
    int error;             /* to report from the timer */
    int in_cb;             /* inside a callback to the app */
    bool idempotent;
    bool head_only; /* HEAD */
    bool fresh;     /* the next attempt needs a new connection */
    bool paused;
    bool cancelled; /* by the app from a callback: reap later */
    ev_timer timer; /* waiting deadline, or a deferred error */
};

enum uconn_state { UCONN_CONNECTING, UCONN_BUSY, UCONN_IDLE };

struct ups_conn {
    struct ups_server *srv;
    struct ups_conn *prev, *next;   /* srv->conns */
    struct ups_conn *iprev, *inext; /* srv idle list */
    int fd;
    enum uconn_state state;
    ev_io rio, wio;
    ev_timer timer;
    ev_tstamp deadline; /* lazy: the timer re-arms until then */
    ev_tstamp idle_since;
    uint32_t nreq; /* requests sent on it */
    ureq_t *req;   /* the exchange in progress */
    struct buf in; /* response bytes, parsed up to in_pos */
    size_t in_pos;
    size_t sent;   /* bytes of the request written */
    bool last;     /* no request after this one: "close" */
    bool got_byte; /* a response byte arrived */
    bool broken;   /* sending failed: report it from the loop */
    struct ups_parse ps;
};

/* Failure kinds the connection layer reports to the pool. */
enum uconn_fail {
    UFAIL_CONNECT, /* connect refused, unreachable ... */
    UFAIL_CONNECT_TIMEOUT,
    UFAIL_READ_TIMEOUT,
    UFAIL_RESET, /* closed or reset during the exchange */
    UFAIL_PROTO, /* the response is not valid HTTP */
};

/* upstream.c, called by upstream_conn.c */
/* log_warnx "upstream NAME: [SERVER: ]message", at most once a second per
 * server (s) or per upstream (s NULL): a dead upstream under load must not
 * flood the log. */
void upstream_warn(struct pf_upstream *up, struct ups_server *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void upstream_exchange_done(struct ups_conn *c, bool reusable);
void upstream_exchange_failed(struct ups_conn *c, enum uconn_fail why);
void upstream_idle_lost(struct ups_conn *c);
void upstream_server_ok(struct ups_server *s);
/* The app cancelled u from inside a callback: finish the job now. */
void upstream_reap_cancelled(ureq_t *u);

/* ---- one connection (upstream_conn.c) ----------------------------------- */

/* Opens a non-blocking connection to s (connect in progress). NULL with
 * errno when the socket cannot be created or connect fails at once. The
 * caller links it into s. */
struct ups_conn *upstream_conn_open(struct ups_server *s);
/* Stops every watcher, closes the fd, frees c (not unlinked here). */
void upstream_conn_free(struct ups_conn *c);
/* Starts the exchange of u on c (sent once c is connected). */
void upstream_conn_start(struct ups_conn *c, ureq_t *u, bool last);
/* c joined the idle list: watch it for a close, time it out. */
void upstream_conn_idle(struct ups_conn *c);
/* Stop / resume reading the response (back-pressure). */
void upstream_conn_pause(struct ups_conn *c);
void upstream_conn_resume(struct ups_conn *c);

#endif
