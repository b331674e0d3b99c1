/*
 * upstream_conn.c - one connection to an upstream server: non-blocking
 * connect, writing a request, reading and parsing its response, handing
 * head and body to the app, the connect/read/idle timers, and watching an
 * idle connection for a close. Runs in workers, on the loop; never blocks.
 * Owns the fd, the watchers and the read buffer. Decisions (reuse, retry,
 * health) are the pool's (upstream.c), reported through upstream_* calls.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "listen.h"
#include "log.h"
#include "upstream_int.h"

static const char close_tail[] = "Connection: close\r\n\r\n";

static struct ev_loop *loop_of(const struct ups_conn *c)
{
    return c->srv->up->loop;
}

/* Arms the one timer of c for secs from now. */
static void set_timer(struct ups_conn *c, double secs)
{
    c->deadline = ev_now(loop_of(c)) + secs;
    ev_timer_stop(loop_of(c), &c->timer);
    ev_timer_set(&c->timer, secs, 0.);
    ev_timer_start(loop_of(c), &c->timer);
}

/* Pushes the deadline out; the timer re-arms itself when it fires early. */
static void touch_timer(struct ups_conn *c, double secs)
{
    c->deadline = ev_now(loop_of(c)) + secs;
}

/* ---- delivering to the app ----------------------------------------------- */

static void deliver_head(void *arg, int status, const pf_header *h, size_t n)
{
    struct ups_conn *c = arg;
    ureq_t *u = c->req;

    upstream_server_ok(c->srv);
    if (!u->cancelled && u->cb.on_head != NULL)
        u->cb.on_head(u, u->arg, status, h, n);
    if (u->cancelled || u->paused)
        upstream_http_pause(&c->ps, true);
}

static void deliver_body(void *arg, const char *data, size_t len)
{
    struct ups_conn *c = arg;
    ureq_t *u = c->req;

    if (!u->cancelled && u->cb.on_body != NULL)
        u->cb.on_body(u, u->arg, data, len);
    if (u->cancelled || u->paused)
        upstream_http_pause(&c->ps, true);
}

static const struct ups_parse_events parse_events = {
    .on_head = deliver_head,
    .on_body = deliver_body,
};

/* ---- sending -------------------------------------------------------------- */

/* The request as three pieces: head, the end of the head, body. */
static int request_iov(const struct ups_conn *c, struct iovec iov[3])
{
    const ureq_t *u = c->req;
    size_t tail = c->last ? sizeof(close_tail) - 1 : 2;
    struct iovec all[3] = {
        {u->msg.p, u->head_len},
        {(void *)(uintptr_t)(c->last ? close_tail : "\r\n"), tail},
        {u->msg.p + u->head_len, u->msg.len - u->head_len},
    };
    size_t skip = c->sent;
    int n = 0;

    for (int i = 0; i < 3; i++) {
        if (skip >= all[i].iov_len) {
            skip -= all[i].iov_len;
            continue;
        }
        iov[n].iov_base = (char *)all[i].iov_base + skip;
        iov[n].iov_len = all[i].iov_len - skip;
        skip = 0;
        n++;
    }
    return n;
}

/* Writes what the socket takes. 0 all sent, 1 wait for writable, -1 the
 * connection broke. */
static int send_some(struct ups_conn *c)
{
    struct iovec iov[3];
    struct msghdr mh = {.msg_iov = iov};
    ssize_t n;

    while ((mh.msg_iovlen = (size_t)request_iov(c, iov)) > 0) {
        n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && errno == EAGAIN ? 1 : -1;
    }
    return 0;
}

/* Connected, or a pooled connection was handed a request: send it and
 * read the answer, both within read_timeout. */
static void begin_exchange(struct ups_conn *c)
{
    struct ev_loop *loop = loop_of(c);
    int rc;

    c->state = UCONN_BUSY;
    set_timer(c, c->srv->up->cfg->read_timeout);
    rc = send_some(c);
    if (rc < 0) {
        /* Reported from the loop: this may run inside an app's call. */
        c->broken = true;
        ev_io_start(loop, &c->wio);
        ev_feed_event(loop, &c->wio, EV_WRITE);
        return;
    }
    if (rc == 1)
        ev_io_start(loop, &c->wio);
    else
        ev_io_stop(loop, &c->wio);
    /* Read even while sending: an upstream may answer (and close) early. */
    if (c->req->paused)
        ev_io_stop(loop, &c->rio);
    else
        ev_io_start(loop, &c->rio);
}

static void on_connected(struct ups_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        upstream_warn(c->srv->up, c->srv, "connect: %s", strerror(err));
        upstream_exchange_failed(c, UFAIL_CONNECT);
        return;
    }
    begin_exchange(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct ups_conn *c = w->data;
    int rc;

    if (c->state == UCONN_CONNECTING) {
        on_connected(c);
        return;
    }
    rc = c->broken ? -1 : send_some(c);
    if (rc < 0) {
        upstream_exchange_failed(c, UFAIL_RESET);
        return;
    }
    if (rc == 0)
        ev_io_stop(loop, w);
}

/* ---- receiving ------------------------------------------------------------ */

/* Parses the buffered bytes; reports the end of the exchange, if any. */
static void feed(struct ups_conn *c)
{
    ureq_t *u = c->req;
    size_t n;

    u->in_cb++;
    n = upstream_http_feed(&c->ps, c->in.p + c->in_pos, c->in.len - c->in_pos);
    u->in_cb--;
    c->in_pos += n;
    if (u->cancelled) {
        upstream_reap_cancelled(u);
        return;
    }
    if (c->ps.why != NULL) {
        upstream_warn(c->srv->up, c->srv, "invalid response: %s", c->ps.why);
        upstream_exchange_failed(c, UFAIL_PROTO);
        return;
    }
    if (c->ps.complete) {
        /* Reusable only when the upstream says so, nothing follows the
         * response, and the request went out whole. */
        upstream_exchange_done(c, c->ps.keepalive && c->in_pos == c->in.len &&
                                      !ev_is_active(&c->wio) && !c->last);
        return;
    }
    if (c->in_pos == c->in.len)
        c->in.len = c->in_pos = 0;
    if (u->paused)
        upstream_conn_pause(c);
}

/* The upstream closed (reset: a read error). A clean close may end a body
 * delimited by it; a reset never completes anything. */
static void on_eof(struct ups_conn *c, bool reset)
{
    ureq_t *u = c->req;
    int rc;

    if (!c->got_byte || reset) {
        upstream_exchange_failed(c, UFAIL_RESET);
        return;
    }
    u->in_cb++;
    rc = upstream_http_eof(&c->ps);
    u->in_cb--;
    if (u->cancelled)
        upstream_reap_cancelled(u);
    else if (rc == 0)
        upstream_exchange_done(c, false);
    else
        upstream_exchange_failed(c, UFAIL_RESET);
}

/* An idle connection became readable: the upstream closed it (or sent
 * bytes nobody asked for). Either way it cannot be used again. */
static void idle_readable(struct ups_conn *c)
{
    char b[64];
    ssize_t n = recv(c->fd, b, sizeof(b), MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    log_debug("upstream %s: %s: idle connection %s", c->srv->up->cfg->name,
              c->srv->addr->text,
              n == 0  ? "closed by the server"
              : n > 0 ? "got unexpected bytes"
                      : strerror(errno));
    upstream_idle_lost(c);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct ups_conn *c = w->data;
    ssize_t n;

    if (c->state == UCONN_IDLE) {
        idle_readable(c);
        return;
    }
    if (c->in_pos < c->in.len) { /* left over from a pause */
        feed(c);
        return;
    }
    c->in.len = c->in_pos = 0;
    buf_reserve(&c->in, UPS_READ_SIZE);
    do
        n = read(c->fd, c->in.p, c->in.cap);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0) {
        on_eof(c, n < 0);
        return;
    }
    c->in.len = (size_t)n;
    c->got_byte = true;
    touch_timer(c, c->srv->up->cfg->read_timeout);
    feed(c);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ups_conn *c = w->data;
    ev_tstamp left = c->deadline - ev_now(loop);

    if (left > 0.001) {
        ev_timer_set(w, left, 0.);
        ev_timer_start(loop, w);
        return;
    }
    switch (c->state) {
    case UCONN_CONNECTING:
        upstream_warn(c->srv->up, c->srv, "connect: timed out after %.3gs",
                      c->srv->up->cfg->connect_timeout);
        upstream_exchange_failed(c, UFAIL_CONNECT_TIMEOUT);
        break;
    case UCONN_BUSY:
        if (c->req->paused && !ev_is_active(&c->wio))
            break; /* waiting for the app's client, not for the upstream */
        upstream_warn(c->srv->up, c->srv, "no response bytes for %.3gs",
                      c->srv->up->cfg->read_timeout);
        upstream_exchange_failed(c, UFAIL_READ_TIMEOUT);
        break;
    case UCONN_IDLE: upstream_idle_lost(c); break;
    }
}

/* ---- life cycle ----------------------------------------------------------- */

/* See upstream_int.h. connect() never blocks: the socket is non-blocking
 * and the address numeric. The connect timer starts here. */
struct ups_conn *upstream_conn_open(struct ups_server *s)
{
    const struct listen_addr *a = s->addr;
    struct ups_conn *c;
    int fd, one = 1;

    fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    if (a->family != AF_UNIX)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, &a->u.sa, a->len) < 0 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        errno = err;
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    c->srv = s;
    c->fd = fd;
    c->state = UCONN_CONNECTING;
    ev_io_init(&c->rio, on_readable, fd, EV_READ);
    ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
    ev_init(&c->timer, on_timer);
    c->rio.data = c->wio.data = c->timer.data = c;
    ev_io_start(s->up->loop, &c->wio);
    set_timer(c, s->up->cfg->connect_timeout);
    return c;
}

/* See upstream_int.h. */
void upstream_conn_free(struct ups_conn *c)
{
    struct ev_loop *loop = loop_of(c);

    ev_io_stop(loop, &c->rio);
    ev_io_stop(loop, &c->wio);
    ev_timer_stop(loop, &c->timer);
    close(c->fd);
    buf_free(&c->in);
    upstream_http_free(&c->ps);
    free(c);
}

/* See upstream_int.h. On a pooled connection the request is written at
 * once; a failure to write is reported from the loop, not from here. */
void upstream_conn_start(struct ups_conn *c, ureq_t *u, bool last)
{
    c->req = u;
    c->nreq++;
    c->sent = 0;
    c->last = last;
    c->got_byte = false;
    c->in.len = c->in_pos = 0;
    upstream_http_init(&c->ps, u->head_only, &parse_events, c);
    if (c->state == UCONN_IDLE)
        begin_exchange(c);
}

/* See upstream_int.h. The idle timer is the connection's one timer. */
void upstream_conn_idle(struct ups_conn *c)
{
    struct ev_loop *loop = loop_of(c);

    c->state = UCONN_IDLE;
    c->req = NULL;
    ev_io_stop(loop, &c->wio);
    ev_io_start(loop, &c->rio);
    /* The read buffer is only needed during an exchange. */
    buf_free(&c->in);
    c->in_pos = 0;
    c->idle_since = ev_now(loop);
    set_timer(c, c->srv->up->cfg->idle_timeout);
}

/* See upstream_int.h. Also stops read_timeout: a paused exchange waits
 * for the app's client, not for the upstream. */
void upstream_conn_pause(struct ups_conn *c)
{
    if (c->state != UCONN_BUSY)
        return;
    upstream_http_pause(&c->ps, true);
    ev_io_stop(loop_of(c), &c->rio);
    ev_timer_stop(loop_of(c), &c->timer);
}

/* See upstream_int.h. */
void upstream_conn_resume(struct ups_conn *c)
{
    struct ev_loop *loop = loop_of(c);

    if (c->state != UCONN_BUSY)
        return;
    upstream_http_pause(&c->ps, false);
    ev_io_start(loop, &c->rio);
    if (!ev_is_active(&c->timer))
        set_timer(c, c->srv->up->cfg->read_timeout);
    /* Bytes read before the pause are parsed on the next loop iteration,
     * never from inside the app's call to pf_upstream_resume. */
    if (c->in_pos < c->in.len)
        ev_feed_event(loop, &c->rio, EV_READ);
}
