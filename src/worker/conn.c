/*
 * conn.c - one client connection in a worker: read buffer, parsing, the
 * app call, the output buffer, keep-alive, pipelining and every timeout.
 * Runs in workers, on the loop; nothing here blocks (sockets are
 * non-blocking). Owns the fd and both buffers; frees itself when done.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "conn_int.h"
#include "handoff.h"
#include "log.h"

#define IN_MIN_FREE 1024         /* read at least this much at once */
#define IN_KEEP (16 * 1024)      /* shrink a grown buffer back to this */
#define LINGER_TIME 2.0          /* discard input after an error this long */
#define LINGER_MAX (1024 * 1024) /* ... or at most this many bytes */

static void process(struct conn *c);
static void flush_out(struct conn *c);
static bool handoff(struct conn *c);

static ev_tstamp now(const struct conn *c)
{
    return ev_now(c->srv->loop);
}

/* Sets the deadline of c's one timer `secs` from now. Lazily: a timer
 * already armed to fire no later is left alone, and on_timer re-arms it
 * for the rest, so a keep-alive request (header, app, keep-alive deadlines
 * each later than the last) costs no timer-heap operation at all. */
static void set_timer(struct conn *c, double secs)
{
    struct ev_loop *loop = c->srv->loop;

    c->deadline = now(c) + secs;
    if (ev_is_active(&c->timer) && ev_timer_remaining(loop, &c->timer) <= secs)
        return;
    ev_timer_stop(loop, &c->timer);
    ev_timer_set(&c->timer, secs, 0.);
    ev_timer_start(loop, &c->timer);
}

/* Pushes the deadline out without touching the timer heap: the timer
 * re-arms itself when it fires early (libev's "lazy" pattern). */
static void touch_timer(struct conn *c, double secs)
{
    c->deadline = now(c) + secs;
}

static void rearm(struct conn *c, ev_tstamp left)
{
    ev_timer_stop(c->srv->loop, &c->timer);
    ev_timer_set(&c->timer, left, 0.);
    ev_timer_start(c->srv->loop, &c->timer);
}

/* An orphan left the count when it lost its socket (see close_conn). */
static void unlink_conn(struct conn *c)
{
    struct conn_server *s = c->srv;

    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->state != CONN_ORPHAN)
        s->nconns--;
}

static void free_conn(struct conn *c)
{
    struct conn_server *s = c->srv;
    bool counted = c->state != CONN_ORPHAN;

    ev_timer_stop(s->loop, &c->timer); /* an orphan's pending abort call */
    buf_free(&c->in);
    buf_free(&c->out);
    httpmsg_parse_free(&c->hp);
    free(c->req.hdrs);
    free(c);
    if (counted && s->on_conn_closed)
        s->on_conn_closed(s);
}

static void on_orphaned(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct conn *c = w->data;
    struct conn_server *s = c->srv;

    request_abort(c); /* may end the request and free c */
    if (s->on_conn_closed)
        s->on_conn_closed(s); /* a retiring worker may leave now */
}

bool conn_aborts_pending(const struct conn_server *s)
{
    for (struct conn *c = s->conns; c; c = c->next)
        if (c->state == CONN_ORPHAN && ev_is_active(&c->timer))
            return true;
    return false;
}

/* Closes the socket. If the app still holds the request, the connection
 * lives on as an orphan until the app ends it. An orphan no longer counts
 * as a connection (worker_connections, draining): no client waits on it,
 * and an app that lost the request must not hold a retiring worker until
 * graceful_timeout. It stays in the list, so conn_close_all frees it. */
static void close_conn(struct conn *c)
{
    struct conn_server *s = c->srv;
    struct ev_loop *loop = s->loop;

    if (c->state == CONN_ORPHAN)
        return; /* closed already */
    s->closed++;
    ev_io_stop(loop, &c->rio);
    ev_io_stop(loop, &c->wio);
    ev_timer_stop(loop, &c->timer);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->req.state == REQ_APP || c->req.state == REQ_STREAMING) {
        /* The app is told from the loop, not from here: we may be inside
         * one of its own pf_* calls, which must not see c vanish. */
        c->state = CONN_ORPHAN;
        c->req.aborted = true;
        ev_set_cb(&c->timer, on_orphaned);
        ev_timer_set(&c->timer, 0., 0.);
        ev_timer_start(loop, &c->timer);
        s->nconns--;
        if (s->on_conn_closed)
            s->on_conn_closed(s);
        return;
    }
    unlink_conn(c);
    free_conn(c);
}

void conn_release_orphan(struct conn *c)
{
    unlink_conn(c);
    free_conn(c);
}

size_t conn_pending(const struct conn *c)
{
    return c->out.len - c->out_pos;
}

const char *conn_local(struct conn *c, int *port)
{
    if (c->local[0] == '\0') {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);

        memset(&ss, 0, sizeof(ss));
        if (getsockname(c->fd, (struct sockaddr *)&ss, &len) < 0 ||
            len <= sizeof(sa_family_t))
            ss.ss_family = AF_UNIX;
        listen_peer_text((struct sockaddr *)&ss, c->local, sizeof(c->local));
        c->local_port = listen_port((struct sockaddr *)&ss);
    }
    if (port != NULL)
        *port = c->local_port;
    return c->local;
}

/* After an error response: stop sending, read and drop what the client
 * still sends, so that closing does not reset the connection before the
 * client has read our answer (a close with unread input sends RST). */
static void start_linger(struct conn *c)
{
    c->state = CONN_LINGER;
    shutdown(c->fd, SHUT_WR);
    ev_io_start(c->srv->loop, &c->rio);
    set_timer(c, LINGER_TIME);
}

/* Reads and drops input while lingering; closes at EOF, on an error, or
 * after LINGER_MAX bytes. A scratch buffer, not c->in: an app whose request
 * timed out may still hold pointers into c->in. */
static void linger_read(struct conn *c)
{
    char scratch[16384];
    ssize_t n;

    do
        n = read(c->fd, scratch, sizeof(scratch));
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n > 0) {
        c->lingered += (size_t)n;
        if (c->lingered < LINGER_MAX)
            return;
    }
    close_conn(c);
}

/* c->req for the access log line of an error response: the whole head
 * when it was read, else the method and target when the request line was,
 * else nothing (logged as "-"). */
static void error_request(struct conn *c, int status, uint64_t bytes, size_t body)
{
    struct pf_request *r = &c->req;
    const struct httpmsg_parse *hp = &c->hp;

    if (hp->started && hp->req.version != 0) {
        request_prepare(c);
    } else {
        r->method = r->target = r->path = r->query = (pf_str){"", 0};
        if (hp->started && hp->req.url_len > 0) {
            const char *m = http_method_str((enum http_method)hp->p.method);
            r->method = (pf_str){m, strlen(m)};
            r->target = (pf_str){c->in.p + hp->req.url_off, hp->req.url_len};
        }
        r->nhdrs = 0;
        r->started = ev_time();
        r->head_only = false;
    }
    r->resp.status = status;
    r->resp.version = hp->req.version;
    r->resp.framing = FRAME_LENGTH;
    r->bytes = bytes;
    r->sent = body;
}

/* Earlier responses of a pipelined batch may still be in c->out: the
 * error response follows them. */
static void respond_error(struct conn *c, int status)
{
    size_t before = c->out.len, body;

    log_debug("%s: %d (%s)", c->peer, status, c->hp.why ? c->hp.why : "");
    body = httpmsg_write_error(&c->out, status, (time_t)now(c));
    if (c->srv->on_error_response) {
        error_request(c, status, c->out.len - before, body);
        c->srv->on_error_response(c->srv, &c->req);
    }
    c->close_after = true;
    c->req.state = REQ_NONE;
    flush_out(c);
}

/* request_timeout passed without a sign of life from the app: the client
 * gets a 504, or, once a response head is out, a closed connection; the
 * app is told through its abort callback, as if the client had left, and
 * its later calls on the request only end it. */
static void app_timed_out(struct conn *c)
{
    struct conn_server *s = c->srv;
    struct pf_request *r = &c->req;
    bool head_sent = r->state == REQ_STREAMING;

    log_warnx("%s: %.*s %.*s: no response from the app for %gs "
              "(request_timeout): %s",
              c->peer, (int)r->method.len, r->method.ptr, (int)r->target.len,
              r->target.ptr, s->cfg->server.request_timeout,
              head_sent ? "closing the connection" : "answering 504");
    if (!head_sent)
        request_write_timeout(c);
    if (s->on_request_done)
        s->on_request_done(s, &c->req); /* the access log line, the count */
    if (head_sent) {
        close_conn(c); /* an orphan: the abort callback runs from the loop */
        return;
    }
    c->close_after = true;
    request_abort(c); /* the app's calls on r now only end it */
    flush_out(c);
}

/* The timer fired in CONN_APP with nothing waiting to be written. */
static void check_app(struct conn *c)
{
    double limit = c->srv->cfg->server.request_timeout;
    const struct pf_request *r = &c->req;
    ev_tstamp left;

    if (limit <= 0 || r->aborted || (r->state != REQ_APP && r->state != REQ_STREAMING))
        return;
    left = c->app_since + limit - now(c);
    if (left > 0.001) {
        c->deadline = now(c) + left;
        rearm(c, left);
        return;
    }
    app_timed_out(c);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct conn *c = w->data;
    ev_tstamp left = c->deadline - ev_now(loop);
    double send_timeout = c->srv->cfg->server.send_timeout;

    if (left > 0.001) {
        rearm(c, left);
        return;
    }
    /* While output waits, the only question is whether the client reads. */
    if (conn_pending(c) > 0) {
        left = c->last_write + send_timeout - ev_now(loop);
        if (left > 0.001) {
            c->deadline = c->last_write + send_timeout;
            rearm(c, left);
            return;
        }
        log_info("%s: client read nothing for %.0fs, closing", c->peer, send_timeout);
        close_conn(c);
        return;
    }
    switch (c->state) {
    case CONN_HEAD:
        if (c->hp.started) { /* part of a request came: say why we close */
            respond_error(c, 408);
            return;
        }
        break;
    case CONN_BODY: respond_error(c, 408); return;
    case CONN_APP: check_app(c); return;
    default: break;
    }
    close_conn(c);
}

/* Reads what is there. Returns bytes read, 0 on EOF, -1 on EAGAIN (or no
 * room), -2 on a connection error. The buffer grows only when `grow`. */
static ssize_t read_some(struct conn *c, bool grow)
{
    ssize_t n;

    if (grow)
        buf_reserve(&c->in, IN_MIN_FREE);
    else if (c->in.cap == c->in.len)
        return -1;
    do
        n = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        c->in.len += (size_t)n;
    else if (n < 0)
        return errno == EAGAIN ? -1 : -2;
    return n;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;
    ssize_t n;

    if (c->state == CONN_LINGER) {
        linger_read(c);
        return;
    }
    /* While the app holds the request it holds pointers into c->in, so the
     * buffer must not move: read only into the room it has. */
    n = read_some(c, c->state != CONN_APP);
    if (n == -1) {
        if (c->state == CONN_APP && c->in.cap == c->in.len)
            ev_io_stop(loop, &c->rio);
        return;
    }
    if (n == 0 && conn_pending(c) > 0 && c->req.state != REQ_APP &&
        c->req.state != REQ_STREAMING) {
        /* A half-close (shutdown(SHUT_WR)) with a response still being
         * written: the client may well be waiting for it. Finish it, then
         * close (send_timeout still applies). */
        ev_io_stop(loop, &c->rio);
        c->close_after = true;
        return;
    }
    if (n <= 0) {
        /* EOF or reset. With the app holding a request, the client is
         * gone: the app is told through its abort callback (as nginx
         * takes a client's EOF for an abort). */
        close_conn(c);
        return;
    }
    switch (c->state) {
    case CONN_IDLE:
        c->state = CONN_HEAD;
        set_timer(c, c->srv->cfg->server.header_timeout);
        break;
    case CONN_BODY: touch_timer(c, c->srv->cfg->server.body_timeout); break;
    case CONN_APP:
        /* Pipelined bytes wait in the buffer; stop reading beyond a
         * bound so a client cannot make us buffer without limit. */
        if (c->in.len - c->in_pos > IN_KEEP)
            ev_io_stop(loop, &c->rio);
        return;
    default: break;
    }
    process(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    flush_out(w->data);
}

/* Writes as much of out as the socket takes. May close c. */
static void flush_out(struct conn *c)
{
    struct pf_request *r = &c->req;

    while (conn_pending(c) > 0) {
        ssize_t n = send(c->fd, c->out.p + c->out_pos, conn_pending(c), MSG_NOSIGNAL);
        if (n > 0) {
            c->out_pos += (size_t)n;
            c->last_write = now(c);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (!ev_is_active(&c->wio)) {
                ev_io_start(c->srv->loop, &c->wio);
                c->last_write = now(c);
                if (!ev_is_active(&c->timer))
                    set_timer(c, c->srv->cfg->server.send_timeout);
            }
            break;
        }
        close_conn(c);
        return;
    }
    if (conn_pending(c) == 0) {
        c->out.len = c->out_pos = 0;
        if (ev_is_active(&c->wio)) {
            ev_io_stop(c->srv->loop, &c->wio);
            if (c->state == CONN_IDLE) /* idle time counts from here */
                set_timer(c, c->srv->cfg->server.keepalive_timeout);
            else if (c->state == CONN_APP) /* that wait was the client's */
                c->app_since = now(c);
        }
        /* A timed-out request closes even while the app still holds it
         * (then an orphan): its 504 was the response. */
        bool app_has_it = r->state == REQ_APP || r->state == REQ_STREAMING;
        if (c->close_after && (r->aborted || !app_has_it)) {
            if (c->hp.error || r->aborted || c->in.len > c->in_pos)
                start_linger(c);
            else
                close_conn(c);
            return;
        }
        if (c->state == CONN_IDLE && (c->srv->retiring || c->srv->no_keepalive) &&
            handoff(c))
            return;
    }
    if (r->drain_cb && r->state == REQ_STREAMING && conn_pending(c) < CONN_LOW_WATER) {
        void (*cb)(pf_request *, void *) = r->drain_cb;
        r->drain_cb = NULL;
        cb(r, r->drain_arg);
    }
}

/* The request is answered: prepare for the next one on this connection. */
static void next_request(struct conn *c)
{
    struct conn_server *s = c->srv;

    c->req.state = REQ_NONE;
    /* A response that promised keep-alive is never followed by a close
     * here: the client may already be sending the next request, which a
     * retiring worker then answers with Connection: close. */
    if (!c->req.resp.keepalive)
        c->close_after = true;
    if (c->close_after)
        return;
    buf_consume(&c->in, c->in_pos);
    c->in_pos = 0;
    if (c->in.len == 0)
        buf_shrink(&c->in, IN_KEEP);
    httpmsg_parse_next(&c->hp);
    c->sent_continue = false;
    if (!ev_is_active(&c->rio))
        ev_io_start(s->loop, &c->rio);
    if (c->in.len > 0) {
        c->state = CONN_HEAD;
        set_timer(c, s->cfg->server.header_timeout);
    } else {
        c->state = CONN_IDLE;
        set_timer(c, s->cfg->server.keepalive_timeout);
    }
}

void conn_response_done(struct conn *c)
{
    if (c->srv->on_request_done)
        c->srv->on_request_done(c->srv, &c->req);
    next_request(c);
    if (!c->req.in_dispatch)
        conn_kick(c);
}

void conn_kick(struct conn *c)
{
    if (c->state == CONN_ORPHAN || c->fd < 0)
        return;
    if (c->req.state == REQ_NONE && !c->close_after)
        process(c); /* pipelined requests buffered meanwhile */
    else
        flush_out(c);
}

/* Parses buffered input and runs every complete request, then writes all
 * responses at once (one send for a pipelined batch). */
static void process(struct conn *c)
{
    struct conn_server *s = c->srv;
    struct httpmsg_parse *hp = &c->hp;

    while (c->req.state == REQ_NONE && !c->close_after) {
        if (c->in_pos < c->in.len)
            c->in_pos += httpmsg_feed(hp, c->in.p, c->in_pos, c->in.len - c->in_pos);
        if (hp->error) {
            respond_error(c, hp->error);
            return;
        }
        if (hp->req.head_done && c->state == CONN_HEAD) {
            c->state = CONN_BODY;
            if (!hp->req.complete)
                set_timer(c, s->cfg->server.body_timeout);
        }
        if (hp->req.expect_continue && !c->sent_continue && !hp->req.complete) {
            buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
            c->sent_continue = true;
        }
        if (!hp->req.complete)
            break;
        c->state = CONN_APP;
        c->app_since = now(c);
        if (s->cfg->server.request_timeout > 0)
            set_timer(c, s->cfg->server.request_timeout);
        else
            ev_timer_stop(s->loop, &c->timer);
        request_prepare(c);
        request_dispatch(c);
        if (c->state == CONN_ORPHAN)
            return;
    }
    flush_out(c);
}

static struct conn *conn_open(struct conn_server *s, int fd, const struct sockaddr *peer)
{
    struct conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL) {
        log_warn("conn: cannot allocate a connection");
        close(fd);
        return NULL;
    }
    if (peer->sa_family != AF_UNIX && !s->nodelay_inherited)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    listen_peer_text(peer, c->peer, sizeof(c->peer));
    c->peer_port = listen_port(peer);
    c->srv = s;
    c->req.c = c;
    c->fd = fd;
    c->state = CONN_HEAD;
    httpmsg_parse_init(&c->hp, &s->limits);
    ev_io_init(&c->rio, on_readable, fd, EV_READ);
    ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
    ev_init(&c->timer, on_timer);
    c->rio.data = c->wio.data = c->timer.data = c;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    return c;
}

/* The listeners defer accept (TCP_DEFER_ACCEPT, listen.c): a connection
 * comes with its first bytes, so it is read at once, and registered with
 * epoll only if it outlives this call. A Connection: close request that
 * the app answers at once costs accept, read, write and close: no
 * epoll_ctl, no epoll_wait. */
void conn_accept(struct conn_server *s, int fd, const struct sockaddr *peer)
{
    struct conn *c = conn_open(s, fd, peer);
    uint64_t closed = s->closed;
    ssize_t n;

    if (c == NULL)
        return;
    set_timer(c, s->cfg->server.header_timeout);
    n = read_some(c, true);
    if (n == 0 || n == -2) {
        close_conn(c);
        return;
    }
    if (n > 0)
        process(c);
    if (s->closed != closed)
        return; /* closed (or orphaned) while it was served */
    /* Closing once the response is out: nothing more to read, unless the
     * app still holds the request (a client's EOF is its abort). */
    if (c->close_after && c->state != CONN_APP)
        return;
    if (!ev_is_active(&c->rio) && c->state != CONN_LINGER)
        ev_io_start(s->loop, &c->rio);
}

void conn_adopt(struct conn_server *s, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    struct conn *c;

    memset(&ss, 0, sizeof(ss));
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) {
        close(fd); /* the client left on the way */
        return;
    }
    if (len <= sizeof(sa_family_t))
        ss.ss_family = AF_UNIX;
    if ((c = conn_open(s, fd, (struct sockaddr *)&ss)) == NULL)
        return;
    c->state = CONN_IDLE; /* nothing of the next request was read */
    set_timer(c, s->cfg->server.keepalive_timeout);
    ev_io_start(s->loop, &c->rio);
}

/* Nothing of the next request has been read and nothing is left to
 * write: the connection can go to another worker as it is. */
static bool can_handoff(const struct conn *c)
{
    return c->state == CONN_IDLE && c->in.len == 0 && conn_pending(c) == 0;
}

static bool may_handoff(const struct conn_server *s)
{
    return s->may_handoff != NULL && s->may_handoff(s);
}

bool conn_keeps_alive(const struct conn_server *s)
{
    return (!s->retiring && !s->no_keepalive) || may_handoff(s);
}

/* An idle connection of a leaving worker goes to a serving one: the
 * client keeps its connection (no new handshake, no keep-alive race).
 * The socket lives on in the other worker, so our epoll set may still
 * report it once our descriptor is closed: libev notices (its DEL fails)
 * and rebuilds its kernel state, which this worker, leaving or shedding,
 * pays for rarely. */
/* Sends n connections in one message and closes our side of each; false
 * (all kept) when the queue refuses it. */
static bool send_batch(struct conn_server *s, struct conn *const *batch, int n)
{
    int fds[HANDOFF_BATCH] = {0};

    for (int i = 0; i < n; i++)
        fds[i] = batch[i]->fd;
    if (handoff_send(s->handoff_fd, fds, n) < 0)
        return false;
    for (int i = 0; i < n; i++)
        close_conn(batch[i]);
    s->handed_off += (uint64_t)n;
    return true;
}

static bool handoff(struct conn *c)
{
    return can_handoff(c) && may_handoff(c->srv) && send_batch(c->srv, &c, 1);
}

/* Every idle connection at once, HANDOFF_BATCH to a message. */
void conn_handoff_idle(struct conn_server *s)
{
    struct conn *batch[HANDOFF_BATCH], *c, *next;
    int n = 0;

    if (!may_handoff(s))
        return;
    for (c = s->conns; c; c = next) {
        next = c->next;
        if (can_handoff(c))
            batch[n++] = c;
        if (n == HANDOFF_BATCH || (next == NULL && n > 0)) {
            send_batch(s, batch, n);
            n = 0;
        }
    }
}

void conn_retire_all(struct conn_server *s)
{
    s->retiring = true;
    /* Idle keep-alive connections go to a serving worker. Without one they
     * are left to their keepalive_timeout: a request may be racing toward
     * us on them, and closing now would fail it. Busy ones are handed off
     * after their response, or answered with Connection: close. */
    conn_handoff_idle(s);
}

void conn_close_all(struct conn_server *s)
{
    while (s->conns) {
        struct conn *c = s->conns;
        close_conn(c);
        if (s->conns == c) /* orphaned: the app never ends it now */
            conn_release_orphan(c);
    }
}
