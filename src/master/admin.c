/*
 * admin.c - the master's admin endpoint: a deliberately small HTTP/1.0
 * server (GET or HEAD, one request per connection, 8 KiB head, 5 s) for
 * stats, metrics and health. Runs only in the master, on its loop; nothing
 * blocks. Rendering is the caller's (stats.c). Convention: 0 / -1.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "admin.h"
#include "inherit.h"
#include "log.h"

#define ADMIN_HEAD_MAX 8192
#define ADMIN_TIMEOUT 5.0
#define ADMIN_CONNS_MAX 64

struct admin_conn {
    struct admin_conn *next;
    uint64_t token; /* names it for admin_answer */
    bool head_only;
    int fd;
    ev_io io;
    ev_timer timer;
    struct buf in, out;
    size_t out_pos;
};

static struct {
    struct ev_loop *loop;
    struct listen_addr addr; /* a copy: a reload frees the config */
    int fd;
    ev_io accept_w;
    admin_render_fn render;
    void *render_data;
    struct admin_conn *conns;
    unsigned nconns;
    uint64_t tokens; /* the last one given */
} adm = {.fd = -1};

static void conn_free(struct admin_conn *c)
{
    struct admin_conn **p = &adm.conns;

    while (*p != c)
        p = &(*p)->next;
    *p = c->next;
    ev_io_stop(adm.loop, &c->io);
    ev_timer_stop(adm.loop, &c->timer);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
    adm.nconns--;
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    struct admin_conn *c = w->data;

    while (c->out_pos < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_pos, c->out.len - c->out_pos,
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0 && errno != EINTR)
            break;
        if (n > 0)
            c->out_pos += (size_t)n;
    }
    conn_free(c);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

/* Queues the whole answer and switches c to writing it. */
static void send_answer(struct admin_conn *c, int status, const char *ctype,
                        const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.0 %d %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                     "Connection: close\r\n\r\n",
                     status, reason(status), ctype, len);

    buf_append(&c->out, head, (size_t)n);
    if (!c->head_only && len)
        buf_append(&c->out, body, len);
    ev_io_stop(adm.loop, &c->io);
    ev_io_set(&c->io, c->fd, EV_WRITE);
    ev_set_cb(&c->io, on_write);
    ev_io_start(adm.loop, &c->io);
}

/* Answers the request line in c->in: "GET /path?query HTTP/1.x". */
static void respond(struct admin_conn *c)
{
    struct buf body = {0};
    const char *ctype = "text/plain";
    char method[8] = "", path[256] = "";
    int status = 400;

    if (sscanf(c->in.p, "%7s %255s HTTP/1.%*c", method, path) == 2) {
        c->head_only = strcmp(method, "HEAD") == 0;
        if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0 && !c->head_only) {
            status = 405;
            buf_puts(&body, "only GET, HEAD and POST\n");
        } else {
            char *q = strchr(path, '?');
            struct admin_req rq = {.method = method,
                                   .path = path,
                                   .query = q ? q + 1 : "",
                                   .token = c->token};
            if (q)
                *q = '\0';
            status = adm.render(adm.render_data, &rq, &body, &ctype);
        }
    } else {
        buf_puts(&body, "bad request\n");
    }
    if (status != ADMIN_LATER) {
        send_answer(c, status, ctype, body.p, body.len);
    } else {
        ev_io_stop(adm.loop, &c->io); /* nothing more to read: wait */
    }
    buf_free(&body);
}

static struct admin_conn *by_token(uint64_t token)
{
    for (struct admin_conn *c = adm.conns; c != NULL; c = c->next)
        if (c->token == token)
            return c;
    return NULL;
}

int admin_answer(uint64_t token, int status, const char *ctype, const char *body,
                 size_t len)
{
    struct admin_conn *c = by_token(token);

    if (c == NULL || c->out.len > 0)
        return -1;
    send_answer(c, status, ctype, body, len);
    return 0;
}

void admin_hold(uint64_t token, double seconds)
{
    struct admin_conn *c = by_token(token);

    if (c == NULL)
        return;
    ev_timer_stop(adm.loop, &c->timer);
    ev_timer_set(&c->timer, seconds, 0.);
    ev_timer_start(adm.loop, &c->timer);
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    struct admin_conn *c = w->data;
    ssize_t n;

    buf_reserve(&c->in, 1024);
    n = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len - 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_free(c);
        return;
    }
    c->in.len += (size_t)n;
    c->in.p[c->in.len] = '\0';
    if (strstr(c->in.p, "\r\n\r\n") || strstr(c->in.p, "\n\n"))
        respond(c);
    else if (c->in.len > ADMIN_HEAD_MAX)
        conn_free(c);
}

static void on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    conn_free(t->data);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    for (;;) {
        int fd = accept4(adm.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct admin_conn *c;

        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warn("admin: accept");
            return;
        }
        if (adm.nconns >= ADMIN_CONNS_MAX || (c = calloc(1, sizeof(*c))) == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->token = ++adm.tokens;
        c->next = adm.conns;
        adm.conns = c;
        adm.nconns++;
        ev_io_init(&c->io, on_read, fd, EV_READ);
        ev_timer_init(&c->timer, on_timeout, ADMIN_TIMEOUT, 0.);
        c->io.data = c->timer.data = c;
        ev_io_start(loop, &c->io);
        ev_timer_start(loop, &c->timer);
    }
}

int admin_start(struct ev_loop *loop, struct listen_addr *addr, admin_render_fn render,
                void *data)
{
    adm.loop = loop;
    adm.render = render;
    adm.render_data = data;
    adm.fd = inherit_take(addr);
    if (adm.fd < 0) {
        /* A unix socket is created 0600 (the umask applies to bind), so
         * it is never reachable by others, not even for a moment. */
        mode_t old = umask(0177);

        adm.fd = listen_open(addr, 64);
        umask(old);
        if (adm.fd < 0) {
            log_err("admin: listen on %s", addr->text);
            return -1;
        }
    }
    adm.addr = *addr; /* after listen_open: it records the unix socket's inode */
    log_info("admin endpoint on %s", addr->text);
    ev_io_init(&adm.accept_w, on_accept, adm.fd, EV_READ);
    ev_io_start(loop, &adm.accept_w);
    return 0;
}

void admin_stop(bool unlink_path)
{
    while (adm.conns)
        conn_free(adm.conns);
    if (adm.fd >= 0) {
        ev_io_stop(adm.loop, &adm.accept_w);
        if (unlink_path)
            listen_close(adm.fd, &adm.addr);
        else
            close(adm.fd);
        adm.fd = -1;
    }
}

void admin_pause(bool pause)
{
    if (adm.fd < 0)
        return;
    if (pause)
        ev_io_stop(adm.loop, &adm.accept_w);
    else
        ev_io_start(adm.loop, &adm.accept_w);
}

int admin_fd(void)
{
    return adm.fd;
}

const struct listen_addr *admin_addr(void)
{
    return &adm.addr;
}

void admin_forget_in_child(void)
{
    if (adm.fd < 0)
        return;
    ev_io_stop(adm.loop, &adm.accept_w);
    close(adm.fd);
    adm.fd = -1;
    /* This process's copies of the master's admin clients: freed here,
     * or they would be lost (the master goes on serving its own). */
    while (adm.conns)
        conn_free(adm.conns);
}
