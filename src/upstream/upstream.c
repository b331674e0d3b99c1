/*
 * upstream.c - the worker's pools of keep-alive connections to the servers
 * of each [upstream NAME], and the pf_upstream_* ABI on top of them: server
 * choice (round robin, passive health), idle lists (most recently used
 * first, idle_timeout, max_idle), the bounded queue of requests waiting for
 * a connection, retries, and the scoreboard counters. Runs in workers, on
 * the loop; never blocks, and never calls the app from inside a
 * pf_upstream_* call (errors found there are reported from a timer).
 * Owns every connection and request: upstream_worker_exit frees them all.
 * Convention: dispatching returns 0 or the enum pf_upstream_error to end a
 * request with; upstream_worker_init returns 0 / -1.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "upstream.h"
#include "upstream_int.h"

static struct {
    struct ev_loop *loop;
    struct pf_upstream *ups;
    size_t nups;
} pools;

static void serve_waiters(ups_t *up);

/* ---- counters ------------------------------------------------------------- */

static void sync_gauges(const ups_t *up)
{
    if (up->sb == NULL)
        return;
    SB_SET(up->sb->open, up->nopen);
    SB_SET(up->sb->idle, up->nidle);
}

#define COUNT(up, field) \
    do { \
        if ((up)->sb != NULL) \
            SB_ADD((up)->sb->field, 1); \
    } while (0)

/* The counter of a request that ended with err (not a timeout). */
static enum sb_upstream_fail fail_kind(int err)
{
    switch (err) {
    case PF_UPSTREAM_ECONNECT: return SB_FAIL_CONNECT;
    case PF_UPSTREAM_EPROTO: return SB_FAIL_PROTOCOL;
    case PF_UPSTREAM_EBUSY: return SB_FAIL_BUSY;
    default: return SB_FAIL_RESET;
    }
}

/* ---- warnings --------------------------------------------------------------- */

/* See upstream_int.h. One limiter per server and one per upstream, shared
 * by every kind of warning about it. */
void upstream_warn(ups_t *up, struct ups_server *s, const char *fmt, ...)
{
    struct ups_ratelimit *rl = s != NULL ? &s->rl : &up->rl;
    ev_tstamp now = ev_now(up->loop);
    char msg[512];
    va_list ap;

    if (rl->last > 0 && now - rl->last < 1.0) {
        rl->dropped++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (rl->dropped > 0)
        log_warnx("upstream %s: %s%s%s (%u more suppressed in %.1fs)", up->cfg->name,
                  s ? s->addr->text : "", s ? ": " : "", msg, rl->dropped,
                  now - rl->last);
    else
        log_warnx("upstream %s: %s%s%s", up->cfg->name, s ? s->addr->text : "",
                  s ? ": " : "", msg);
    rl->last = now;
    rl->dropped = 0;
}

/* ---- connections and idle lists ------------------------------------------ */

static void idle_push(struct ups_conn *c)
{
    struct ups_server *s = c->srv;

    c->iprev = NULL;
    c->inext = s->idle_head;
    if (s->idle_head != NULL)
        s->idle_head->iprev = c;
    else
        s->idle_tail = c;
    s->idle_head = c;
    s->nidle++;
    s->up->nidle++;
}

static void idle_remove(struct ups_conn *c)
{
    struct ups_server *s = c->srv;

    if (c->iprev != NULL)
        c->iprev->inext = c->inext;
    else
        s->idle_head = c->inext;
    if (c->inext != NULL)
        c->inext->iprev = c->iprev;
    else
        s->idle_tail = c->iprev;
    c->iprev = c->inext = NULL;
    s->nidle--;
    s->up->nidle--;
}

static void conn_link(struct ups_server *s, struct ups_conn *c)
{
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->nopen++;
    s->up->nopen++;
    COUNT(s->up, created);
    sync_gauges(s->up);
}

/* Closes c and forgets it. The caller detached its request, if any. */
static void conn_destroy(struct ups_conn *c)
{
    struct ups_server *s = c->srv;

    if (c->state == UCONN_IDLE)
        idle_remove(c);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->nopen--;
    s->up->nopen--;
    sync_gauges(s->up);
    upstream_conn_free(c);
}

/* Idle connections beyond max_idle are closed once they have been idle for
 * UPS_SURPLUS_GRACE: a load a little above max_idle keeps its connections
 * (no churn), a burst that ended gives them back soon. */
static double surplus_grace(const struct config_upstream *cfg)
{
    return cfg->idle_timeout < UPS_SURPLUS_GRACE ? cfg->idle_timeout : UPS_SURPLUS_GRACE;
}

static void on_trim(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ups_server *s = w->data;
    const struct config_upstream *cfg = s->up->cfg;
    double grace = surplus_grace(cfg);

    while (s->nidle > cfg->max_idle) {
        struct ups_conn *c = s->idle_tail;
        ev_tstamp left = c->idle_since + grace - ev_now(loop);

        if (left > 0.001) {
            ev_timer_set(w, left, 0.);
            ev_timer_start(loop, w);
            return;
        }
        conn_destroy(c);
    }
}

static void go_idle(struct ups_conn *c)
{
    struct ups_server *s = c->srv;

    idle_push(c);
    upstream_conn_idle(c);
    sync_gauges(s->up);
    if (s->nidle > s->up->cfg->max_idle && !ev_is_active(&s->trim)) {
        ev_timer_set(&s->trim, surplus_grace(s->up->cfg), 0.);
        ev_timer_start(s->up->loop, &s->trim);
    }
}

/* ---- passive health --------------------------------------------------------- */

static bool server_down(const struct ups_server *s)
{
    return s->down_until > ev_now(s->up->loop);
}

/* max_fails failures in a row mark s down for fail_timeout. A lone server
 * is never marked down: there would be nowhere else to go. */
static void server_failed(struct ups_server *s)
{
    const struct config_upstream *cfg = s->up->cfg;

    if (cfg->max_fails == 0 || s->up->nservers < 2 || ++s->fails < cfg->max_fails)
        return;
    s->fails = 0;
    s->down_until = ev_now(s->up->loop) + cfg->fail_timeout;
    log_warnx("upstream %s: %s marked down for %.3gs after %u failure%s", cfg->name,
              s->addr->text, cfg->fail_timeout, cfg->max_fails,
              cfg->max_fails == 1 ? "" : "s");
    while (s->idle_head != NULL)
        conn_destroy(s->idle_head);
}

/* See upstream_int.h: a response head came, s is healthy again. */
void upstream_server_ok(struct ups_server *s)
{
    s->fails = 0;
    s->down_until = 0;
}

/* ---- requests --------------------------------------------------------------- */

static void req_unlink(ureq_t *u)
{
    ups_t *up = u->up;

    if (u->prev != NULL)
        u->prev->next = u->next;
    else
        up->reqs = u->next;
    if (u->next != NULL)
        u->next->prev = u->prev;
    u->prev = u->next = NULL;
}

static void req_free(ureq_t *u)
{
    ev_timer_stop(u->up->loop, &u->timer);
    buf_free(&u->msg);
    free(u);
}

static void enqueue(ureq_t *u)
{
    ups_t *up = u->up;

    u->state = UREQ_WAITING;
    u->wnext = NULL;
    u->wprev = up->wait_tail;
    if (up->wait_tail != NULL)
        up->wait_tail->wnext = u;
    else
        up->wait_head = u;
    up->wait_tail = u;
    up->nwaiting++;
    ev_timer_set(&u->timer, up->cfg->connect_timeout, 0.);
    ev_timer_start(up->loop, &u->timer);
}

static void dequeue(ureq_t *u)
{
    ups_t *up = u->up;

    if (u->wprev != NULL)
        u->wprev->wnext = u->wnext;
    else
        up->wait_head = u->wnext;
    if (u->wnext != NULL)
        u->wnext->wprev = u->wprev;
    else
        up->wait_tail = u->wprev;
    u->wprev = u->wnext = NULL;
    up->nwaiting--;
    u->state = UREQ_NEW;
    ev_timer_stop(up->loop, &u->timer);
}

/* Ends u: counts it, tells the app, frees it. Only from u's own events
 * (its connection's watchers, its timer), never from an app's call. */
static void finish(ureq_t *u, int err)
{
    ups_t *up = u->up;

    req_unlink(u);
    ev_timer_stop(up->loop, &u->timer);
    u->state = UREQ_DONE;
    if (err == PF_UPSTREAM_ETIMEOUT)
        COUNT(up, timed_out);
    else if (err != PF_UPSTREAM_OK)
        COUNT(up, failed[fail_kind(err)]);
    if (u->cb.on_done != NULL) {
        u->in_cb++;
        u->cb.on_done(u, u->arg, err);
    }
    req_free(u);
}

/* Ends u with err on the next loop iteration. */
static void defer_error(ureq_t *u, int err)
{
    u->state = UREQ_NEW;
    u->error = err;
    ev_timer_stop(u->up->loop, &u->timer);
    ev_timer_set(&u->timer, 0., 0.);
    ev_timer_start(u->up->loop, &u->timer);
}

static void on_req_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    ureq_t *u = w->data;

    if (u->state == UREQ_WAITING) {
        dequeue(u);
        upstream_warn(u->up, NULL, "no free connection within %.3gs",
                      u->up->cfg->connect_timeout);
        finish(u, PF_UPSTREAM_EBUSY);
        return;
    }
    finish(u, u->error);
}

/* Frees a request the app cancelled, closing its connection: whatever is
 * in flight on it can no longer be told apart from the next response. */
static void reap(ureq_t *u)
{
    ups_t *up = u->up;
    struct ups_conn *c = u->conn;

    if (u->state == UREQ_WAITING)
        dequeue(u);
    req_unlink(u);
    u->state = UREQ_DONE;
    if (c != NULL) {
        c->req = NULL;
        u->conn = NULL;
        conn_destroy(c);
    }
    req_free(u);
    if (c != NULL)
        serve_waiters(up);
}

/* See upstream_int.h. Frees u and closes its connection. */
void upstream_reap_cancelled(ureq_t *u)
{
    reap(u);
}

/* ---- choosing a server and a connection ------------------------------------- */

static bool has_room(const struct ups_server *s)
{
    return s->nidle > 0 || s->nopen < s->up->cfg->max_connections;
}

/* The next server, in round-robin order, that is up and can take u (a
 * pooled connection or room for a new one); with prefer_idle, one with a
 * pooled connection first. NULL if none; *all_down when none is up. */
static struct ups_server *pick(ups_t *up, const ureq_t *u, bool prefer_idle,
                               bool *all_down)
{
    size_t n = up->nservers;
    bool any_up = false;

    for (int pass = prefer_idle ? 0 : 1; pass < 2; pass++) {
        for (size_t k = 0; k < n; k++) {
            size_t i = (up->rr + k) % n;
            struct ups_server *s = &up->servers[i];
            bool fits = pass == 0 ? s->nidle > 0 && !u->fresh : has_room(s);

            if (server_down(s))
                continue;
            any_up = true;
            if (fits) {
                up->rr = (i + 1) % n;
                return s;
            }
        }
    }
    *all_down = !any_up;
    return NULL;
}

static void attach(ureq_t *u, struct ups_conn *c)
{
    const struct config_upstream *cfg = u->up->cfg;

    u->state = UREQ_ACTIVE;
    u->conn = c;
    u->fresh = false;
    upstream_conn_start(c, u,
                        cfg->max_idle == 0 || c->nreq + 1 >= cfg->keepalive_requests);
}

/* Gives u a connection to s: a pooled one unless u needs a fresh one, else
 * a new one. 0, or -1 when connecting failed at once (s is charged). */
static int assign(ureq_t *u, struct ups_server *s)
{
    ups_t *up = u->up;
    struct ups_conn *c;

    if (!u->fresh && s->idle_head != NULL) {
        c = s->idle_head;
        idle_remove(c);
        sync_gauges(up);
        COUNT(up, reused);
        attach(u, c);
        return 0;
    }
    if (s->nopen >= up->cfg->max_connections) /* make room: u needs a new one */
        conn_destroy(s->idle_tail);
    u->attempts++;
    c = upstream_conn_open(s);
    if (c == NULL) {
        upstream_warn(up, s, "connect: %s", strerror(errno));
        server_failed(s);
        return -1;
    }
    conn_link(s, c);
    attach(u, c);
    return 0;
}

/* Finds u a connection, or a place in the queue. 0, or the error to end u
 * with. Never calls the app. */
static int dispatch(ureq_t *u, bool prefer_idle)
{
    ups_t *up = u->up;
    struct ups_server *s;
    bool all_down = false;

    while ((s = pick(up, u, prefer_idle, &all_down)) != NULL) {
        if (assign(u, s) == 0)
            return 0;
        if (u->attempts >= up->nservers)
            return PF_UPSTREAM_ECONNECT;
    }
    if (all_down) {
        upstream_warn(up, NULL, "every server is marked down");
        return PF_UPSTREAM_ECONNECT;
    }
    if (up->nwaiting >= up->cfg->max_waiters) {
        upstream_warn(up, NULL,
                      "%u connections per server busy and %u "
                      "requests waiting",
                      up->cfg->max_connections, up->nwaiting);
        return PF_UPSTREAM_EBUSY;
    }
    enqueue(u);
    return 0;
}

/* A connection was released or closed: hand it (or its room) on. */
static void serve_waiters(ups_t *up)
{
    bool all_down;
    int err;

    while (up->wait_head != NULL) {
        ureq_t *u = up->wait_head;
        struct ups_server *s = pick(up, u, true, &all_down);

        if (s == NULL && !all_down)
            return;
        dequeue(u);
        /* Every server down, or connecting failed at once: dispatch
         * tries the others, or says why u must end. */
        err = s != NULL && assign(u, s) == 0 ? 0 : dispatch(u, true);
        if (err != 0)
            defer_error(u, err);
    }
}

/* ---- what the connections report ------------------------------------------- */

/* See upstream_int.h. c goes idle (or to a waiter) when reusable, else
 * closes; then the app hears of the end (on_done). */
void upstream_exchange_done(struct ups_conn *c, bool reusable)
{
    ureq_t *u = c->req;
    struct ups_server *s = c->srv;

    u->conn = NULL;
    u->state = UREQ_NEW;
    c->req = NULL;
    if (reusable && !c->last && !server_down(s))
        go_idle(c);
    else
        conn_destroy(c);
    serve_waiters(s->up);
    finish(u, PF_UPSTREAM_OK);
}

/* Another try for u after why, or false. Connecting failed: nothing was
 * sent, so any other server may have it. A pooled connection that failed
 * before any response byte was most likely closed by the upstream while
 * idle: an idempotent request goes again, on a new connection. */
static bool may_retry(ureq_t *u, enum uconn_fail why, bool reused, bool before_byte)
{
    if (why == UFAIL_CONNECT || why == UFAIL_CONNECT_TIMEOUT)
        return u->attempts < u->up->nservers;
    if (why != UFAIL_RESET || !reused || !before_byte || !u->idempotent ||
        u->retries_left == 0)
        return false;
    u->retries_left--;
    u->fresh = true;
    return true;
}

static int error_of(enum uconn_fail why)
{
    switch (why) {
    case UFAIL_CONNECT: return PF_UPSTREAM_ECONNECT;
    case UFAIL_CONNECT_TIMEOUT:
    case UFAIL_READ_TIMEOUT: return PF_UPSTREAM_ETIMEOUT;
    case UFAIL_PROTO: return PF_UPSTREAM_EPROTO;
    default: return PF_UPSTREAM_ERESET;
    }
}

/* See upstream_int.h. Closes c, charges its server unless c was a stale
 * pooled connection, then retries the request or ends it with an error. */
void upstream_exchange_failed(struct ups_conn *c, enum uconn_fail why)
{
    ureq_t *u = c->req;
    struct ups_server *s = c->srv;
    ups_t *up = s->up;
    bool reused = c->nreq > 1, before_byte = !c->got_byte;
    int err = error_of(why);

    u->conn = NULL;
    u->state = UREQ_NEW;
    c->req = NULL;
    /* A stale pooled connection says nothing about the server. */
    if (!(why == UFAIL_RESET && reused && before_byte))
        server_failed(s);
    conn_destroy(c);
    if (may_retry(u, why, reused, before_byte)) {
        COUNT(up, retried);
        log_debug("upstream %s: %s: retrying after: %s", up->cfg->name, s->addr->text,
                  pf_upstream_strerror(err));
        err = dispatch(u, false);
    }
    serve_waiters(up);
    if (err != 0)
        finish(u, err);
}

/* See upstream_int.h: an idle connection closed or timed out. */
void upstream_idle_lost(struct ups_conn *c)
{
    ups_t *up = c->srv->up;

    conn_destroy(c);
    serve_waiters(up);
}

/* ---- the ABI ------------------------------------------------------------------ */

/* See preforkd.h. Linear: a handful of upstreams at most. */
pf_upstream *pf_upstream_find(const char *name)
{
    for (size_t i = 0; name != NULL && i < pools.nups; i++)
        if (strcmp(pools.ups[i].cfg->name, name) == 0)
            return &pools.ups[i];
    return NULL;
}

/* See preforkd.h. Frames and copies everything now; any error found
 * while dispatching is reported from u's timer, never from here. */
pf_upstream_req *pf_upstream_request(pf_upstream *up, pf_str method, pf_str target,
                                     const pf_header *headers, size_t nheaders,
                                     const void *body, size_t len,
                                     const pf_upstream_callbacks *cb, void *arg)
{
    ureq_t *u;
    int err;

    if (up == NULL || cb == NULL || up->loop == NULL)
        return NULL;
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    if (upstream_http_request(&u->msg, &u->head_len, method, target, headers, nheaders,
                              body, len, up->cfg->name) < 0) {
        free(u);
        return NULL;
    }
    u->up = up;
    u->cb = *cb;
    u->arg = arg;
    u->idempotent = upstream_http_idempotent(method);
    u->head_only = method.len == 4 && memcmp(method.ptr, "HEAD", 4) == 0;
    u->retries_left = up->cfg->retries;
    ev_init(&u->timer, on_req_timer);
    u->timer.data = u;
    u->next = up->reqs;
    if (up->reqs != NULL)
        up->reqs->prev = u;
    up->reqs = u;
    err = dispatch(u, false);
    if (err != 0)
        defer_error(u, err);
    return u;
}

/* See preforkd.h. From inside one of u's callbacks the work is left to
 * the connection code, which reaps u when the callback returns. */
void pf_upstream_cancel(pf_upstream_req *u)
{
    if (u == NULL || u->state == UREQ_DONE || u->cancelled)
        return;
    u->cancelled = true;
    if (u->in_cb > 0) { /* the connection's code reaps it on the way out */
        if (u->conn != NULL)
            upstream_http_pause(&u->conn->ps, true);
        return;
    }
    reap(u);
}

/* See preforkd.h. */
void pf_upstream_pause(pf_upstream_req *u)
{
    if (u == NULL || u->state == UREQ_DONE || u->cancelled || u->paused)
        return;
    u->paused = true;
    if (u->conn != NULL)
        upstream_conn_pause(u->conn);
}

/* See preforkd.h. */
void pf_upstream_resume(pf_upstream_req *u)
{
    if (u == NULL || u->state == UREQ_DONE || u->cancelled || !u->paused)
        return;
    u->paused = false;
    if (u->conn != NULL)
        upstream_conn_resume(u->conn);
}

/* See preforkd.h. Static strings. */
const char *pf_upstream_strerror(int error)
{
    switch (error) {
    case PF_UPSTREAM_OK: return "ok";
    case PF_UPSTREAM_ECONNECT: return "cannot connect";
    case PF_UPSTREAM_ETIMEOUT: return "timed out";
    case PF_UPSTREAM_ERESET: return "connection closed or reset";
    case PF_UPSTREAM_EPROTO: return "invalid response";
    case PF_UPSTREAM_EBUSY: return "no free connection";
    default: return "unknown error";
    }
}

/* ---- the worker's life ---------------------------------------------------- */

static int init_one(ups_t *up, struct ev_loop *loop, const struct config_upstream *cfg,
                    struct sb_upstream *sb)
{
    up->loop = loop;
    up->cfg = cfg;
    up->sb = sb;
    up->nservers = cfg->nservers;
    up->servers = calloc(cfg->nservers ? cfg->nservers : 1, sizeof(*up->servers));
    if (up->servers == NULL)
        return -1;
    for (size_t j = 0; j < cfg->nservers; j++) {
        struct ups_server *s = &up->servers[j];

        s->up = up;
        s->addr = &cfg->servers[j];
        ev_init(&s->trim, on_trim);
        s->trim.data = s;
    }
    if (sb != NULL) {
        /* Named before anything counts: the master sums by name. */
        memset(sb, 0, sizeof(*sb));
        snprintf(sb->name, sizeof(sb->name), "%s", cfg->name);
        atomic_store_explicit(&sb->named, 1, memory_order_release);
    }
    return 0;
}

/* See upstream.h. Runs in the worker after fork, before the loop. */
int upstream_worker_init(struct ev_loop *loop, const struct config *cfg,
                         struct slot *slot)
{
    pools.loop = loop;
    pools.nups = 0;
    pools.ups = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*pools.ups));
    if (pools.ups == NULL)
        return -1;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        struct sb_upstream *sb = slot != NULL && i < SB_MAX_UPSTREAMS
                                     ? &slot->upstreams[i]
                                     : NULL;

        if (init_one(&pools.ups[i], loop, &cfg->upstreams[i], sb) < 0) {
            upstream_worker_exit();
            errno = ENOMEM;
            return -1;
        }
        pools.nups++;
    }
    return 0;
}

/* See upstream.h. Requests first (they point at connections), then the
 * connections, then the tables. */
void upstream_worker_exit(void)
{
    for (size_t i = 0; i < pools.nups; i++) {
        ups_t *up = &pools.ups[i];

        while (up->reqs != NULL) {
            ureq_t *u = up->reqs;

            if (u->state == UREQ_WAITING)
                dequeue(u);
            if (u->conn != NULL)
                u->conn->req = NULL;
            req_unlink(u);
            req_free(u);
        }
        for (size_t j = 0; j < up->nservers; j++) {
            ev_timer_stop(up->loop, &up->servers[j].trim);
            while (up->servers[j].conns != NULL)
                conn_destroy(up->servers[j].conns);
        }
        free(up->servers);
    }
    free(pools.ups);
    memset(&pools, 0, sizeof(pools));
}
