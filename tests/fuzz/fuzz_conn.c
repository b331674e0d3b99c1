/*
 * fuzz_conn.c - libFuzzer harness over one client connection of a worker:
 * conn.c, httpmsg.c and request.c with the built-in echo app, in process (no
 * fork). The input's first 4 bytes choose the limits, the server's
 * keep-alive flags and how the rest is cut into writes; the rest is what a
 * client sends through a socketpair whose other end conn_accept serves on
 * a libev loop (run with EVRUN_NOWAIT between writes). Aborts when an
 * invariant breaks: the requests handed to the app, the bytes written back
 * (a sequence of well-formed responses, one per request, nothing after
 * "Connection: close"), and the connection being freed and its fd closed.
 * Returns 0 for every input (libFuzzer's convention).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sockios.h>

#include "app.h"
#include "buf.h"
#include "config.h"
#include "conn.h"
#include "log.h"

#define HEADER_BYTES 4     /* limits, flags, piece size, split seed */
#define SETTLE_ROUNDS 64   /* loop runs for the server to read a piece */
#define STUCK_ROUNDS 10000 /* loop runs without progress: the server hangs */
#define METHOD_MAX 32

/* What one input asks for, from its first HEADER_BYTES bytes. */
struct plan {
    struct httpmsg_limits lim;
    bool retiring;      /* worker retiring: every response closes */
    bool no_keepalive;  /* worker over max_rss: every response closes */
    bool no_ka_timeout; /* keepalive_timeout = 0: every response closes */
    bool small_buffers; /* socket buffers at their minimum: writes block */
    uint8_t max_piece;  /* 0: everything in one write */
    uint32_t seed;      /* piece sizes */
};

/* One response the app gave, in order (on_request_done). */
struct answered {
    int status;
    bool head_only;
    uint64_t bytes; /* head and body queued */
    char method[METHOD_MAX];
};

/* The test client: the other end of the socketpair. */
struct client {
    int fd;
    struct buf out; /* everything the server wrote */
    bool eof;
};

static struct ev_loop *loop;
static struct config cfg;
static struct app echo;
static struct conn_server srv;
static struct plan plan;
static struct answered *answers;
static size_t nanswers, answers_cap;
static unsigned closes;

static void die(const char *why, const char *detail)
{
    fprintf(stderr, "fuzz_conn: invariant broken: %s%s%s\n", why, detail ? ": " : "",
            detail ? detail : "");
    abort();
}

/* ---- the input's header ------------------------------------------------ */

static void plan_read(const uint8_t *h)
{
    static const uint32_t line[] = {8190, 64, 200, 1024};
    static const uint32_t nhdrs[] = {100, 1, 3, 10};
    static const uint32_t field[] = {8190, 64, 200, 1024};
    static const uint64_t body[] = {1 << 20, 0, 10, 1000};

    plan.lim = (struct httpmsg_limits){
        .max_request_line = line[h[0] & 3],
        .max_headers = nhdrs[(h[0] >> 2) & 3],
        .max_header_size = field[(h[0] >> 4) & 3],
        .max_body_size = body[(h[0] >> 6) & 3],
    };
    plan.retiring = h[1] & 1;
    plan.no_keepalive = h[1] & 2;
    plan.no_ka_timeout = h[1] & 4;
    plan.small_buffers = h[1] & 8;
    plan.max_piece = h[2];
    plan.seed = h[3] | 0x100u;
}

/* Length of the next write: 1..max_piece (xorshift), or all that is left. */
static size_t piece_len(size_t left)
{
    size_t n;

    if (plan.max_piece == 0)
        return left;
    plan.seed ^= plan.seed << 13;
    plan.seed ^= plan.seed >> 17;
    plan.seed ^= plan.seed << 5;
    n = 1 + plan.seed % plan.max_piece;
    return n < left ? n : left;
}

/* ---- what the app sees ------------------------------------------------- */

static bool has_line_break(pf_str s)
{
    return s.len > 0 && (memchr(s.ptr, '\r', s.len) || memchr(s.ptr, '\n', s.len));
}

static bool name_is(pf_str s, const char *want)
{
    return s.len == strlen(want) && strncasecmp(s.ptr, want, s.len) == 0;
}

/* A Content-Length value made of digits only, else -1. */
static int64_t digits(pf_str s)
{
    int64_t v = 0;

    if (s.len == 0 || s.len > 18)
        return -1;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return -1;
        v = v * 10 + (s.ptr[i] - '0');
    }
    return v;
}

/* The header fields of a request handed to the app: within the limits, no
 * line breaks, one Host for HTTP/1.1, no Content-Length beside
 * Transfer-Encoding, and a plain Content-Length is the body's length. */
static void check_fields(const pf_request *r)
{
    int hosts = 0, cls = 0, tes = 0;
    int64_t cl = -1;

    if (r->nhdrs > plan.lim.max_headers)
        die("more header fields than max_headers reached the app", NULL);
    for (size_t i = 0; i < r->nhdrs; i++) {
        const pf_header *h = &r->hdrs[i];
        if (h->name.len == 0)
            die("an empty header name reached the app", NULL);
        if (h->name.len + h->value.len > plan.lim.max_header_size)
            die("a header field over max_header_size reached the app", NULL);
        if (has_line_break(h->name) || has_line_break(h->value))
            die("a header field with CR or LF reached the app", NULL);
        hosts += name_is(h->name, "host");
        tes += name_is(h->name, "transfer-encoding");
        if (name_is(h->name, "content-length")) {
            cls++;
            cl = digits(h->value);
        }
    }
    if (hosts > 1 || (hosts == 0 && r->resp.version == 11))
        die("a request without exactly one Host reached the app", NULL);
    if (cls > 0 && tes > 0)
        die("Content-Length and Transfer-Encoding both reached the app", NULL);
    if (cls == 1 && cl >= 0 && (uint64_t)cl != r->body.len)
        die("the body's length differs from its Content-Length", NULL);
}

static void check_request(const pf_request *r)
{
    if (r->resp.version != 10 && r->resp.version != 11)
        die("a request of an unknown HTTP version reached the app", NULL);
    if (r->method.len == 0 || r->method.len >= METHOD_MAX)
        die("a request without a method reached the app", NULL);
    if (r->target.len == 0 || r->target.len > plan.lim.max_request_line)
        die("a target empty or over max_request_line reached the app", NULL);
    if (r->path.len + (r->query.len ? r->query.len + 1 : 0) > r->target.len)
        die("path and query do not fit in the target", NULL);
    if (r->body.len > plan.lim.max_body_size)
        die("a body over max_body_size reached the app", NULL);
    if (has_line_break(r->target))
        die("a target with CR or LF reached the app", NULL);
    check_fields(r);
}

static void on_request_done(struct conn_server *s, const pf_request *r)
{
    struct answered *a;

    check_request(r);
    if (nanswers == answers_cap) {
        answers_cap = answers_cap ? answers_cap * 2 : 16;
        answers = realloc(answers, answers_cap * sizeof(*answers));
        if (answers == NULL)
            die("out of memory", NULL);
    }
    a = &answers[nanswers++];
    *a = (struct answered){
        .status = r->resp.status,
        .head_only = r->head_only,
        .bytes = r->bytes,
    };
    memcpy(a->method, r->method.ptr, r->method.len);
}

static void on_conn_closed(struct conn_server *s)
{
    closes++;
}

/* ---- what the client reads --------------------------------------------- */

struct head {
    int status;
    bool close; /* Connection: close */
    bool has_length;
    uint64_t length; /* Content-Length */
    size_t size;     /* bytes of the head, blank line included */
};

static bool is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* One "Name: value" line of a response head, [p, end) without its CRLF. */
static void parse_field(const char *p, const char *end, struct head *h)
{
    const char *colon = memchr(p, ':', (size_t)(end - p));
    pf_str name, value;

    if (colon == NULL || colon == p || colon + 1 == end || colon[1] != ' ')
        die("a response header line is not \"Name: value\"", NULL);
    for (const char *q = p; q < colon; q++)
        if (!is_tchar(*q))
            die("a response header name holds a non-token byte", NULL);
    name = (pf_str){p, (size_t)(colon - p)};
    value = (pf_str){colon + 2, (size_t)(end - colon - 2)};
    if (has_line_break(value))
        die("a response header value holds CR or LF", NULL);
    if (name_is(name, "content-length")) {
        int64_t v = digits(value);
        if (h->has_length || v < 0)
            die("a response has a bad or second Content-Length", NULL);
        h->has_length = true;
        h->length = (uint64_t)v;
    } else if (name_is(name, "connection")) {
        h->close = name_is(value, "close");
    }
}

/* The response head at p[0, n): status line, fields, blank line. */
static void parse_head(const char *p, size_t n, struct head *h)
{
    const char *end = memmem(p, n, "\r\n\r\n", 4), *line;

    memset(h, 0, sizeof(*h));
    if (end == NULL)
        die("a response head is cut short", NULL);
    h->size = (size_t)(end - p) + 4;
    if (h->size < 16 || memcmp(p, "HTTP/1.1 ", 9) != 0 || p[9] < '1' || p[9] > '5' ||
        p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' || p[12] != ' ' ||
        p[13] == '\r')
        die("a response does not start with a status line", NULL);
    h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    line = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
    while (line < end) {
        const char *next = memmem(line + 2, (size_t)(end - line), "\r\n", 2);
        parse_field(line + 2, next, h);
        line = next;
    }
}

static bool is_error_status(int status)
{
    return status == 400 || status == 413 || status == 414 || status == 417 ||
           status == 431 || status == 501 || status == 505;
}

/* An echo body starts "METHOD TARGET HTTP/1.x\n". */
static void check_echo_body(const char *body, uint64_t len, const char *method)
{
    size_t m = strlen(method);

    if (len < m + 1 || memcmp(body, method, m) != 0 || body[m] != ' ')
        die("an echo body does not start with the request's method", method);
}

/* Everything the client read: the app's responses in order, each maybe
 * after a "100 Continue", then at most one error response; nothing after
 * a response that says Connection: close. Returns whether the last
 * response said Connection: close. */
static bool check_output(const char *p, size_t n)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    const size_t clen = sizeof(cont) - 1;
    bool must_close = plan.retiring || plan.no_keepalive || plan.no_ka_timeout;
    bool closed = false;
    size_t pos = 0, i = 0;

    while (pos < n) {
        struct head h;
        uint64_t body;

        if (closed)
            die("bytes follow a response with Connection: close", NULL);
        if (n - pos >= clen && memcmp(p + pos, cont, clen) == 0) {
            pos += clen;
            continue;
        }
        parse_head(p + pos, n - pos, &h);
        if (!h.has_length)
            die("a response without Content-Length", NULL);
        body = i < nanswers && answers[i].head_only ? 0 : h.length;
        if (h.size + body > n - pos)
            die("a response body is cut short", NULL);
        if (i < nanswers) {
            const struct answered *a = &answers[i++];
            if (h.status != a->status || h.size + body != a->bytes)
                die("a response differs from what the app gave", NULL);
            if (a->status == 200 && !a->head_only)
                check_echo_body(p + pos + h.size, body, a->method);
        } else if (!is_error_status(h.status) || !h.close) {
            die("a response nobody asked for, or an error that keeps the "
                "connection",
                NULL);
        }
        if (must_close && !h.close)
            die("a response keeps the connection while the worker refuses "
                "keep-alive",
                NULL);
        pos += h.size + body;
        closed = h.close;
    }
    if (i != nanswers)
        die("a response the app gave never reached the client", NULL);
    return closed;
}

/* ---- driving the connection -------------------------------------------- */

static void drain(struct client *cl)
{
    while (!cl->eof) {
        ssize_t n = recv(cl->fd, buf_reserve(&cl->out, 16384), 16384, MSG_DONTWAIT);
        if (n > 0)
            cl->out.len += (size_t)n;
        else if (n == 0 || errno == ECONNRESET)
            cl->eof = true;
        else if (errno == EAGAIN)
            return;
        else if (errno != EINTR)
            die("recv", strerror(errno));
    }
}

static void pump(struct client *cl)
{
    ev_run(loop, EVRUN_NOWAIT);
    drain(cl);
}

static int unread(const struct client *cl)
{
    int q = 0;

    if (ioctl(cl->fd, SIOCOUTQ, &q) < 0)
        die("ioctl SIOCOUTQ", strerror(errno));
    return q;
}

/* Writes one piece and lets the server read it all (so the next piece
 * arrives as a read of its own). False once the server has closed. */
static bool send_piece(struct client *cl, const uint8_t *p, size_t n)
{
    unsigned stuck = 0;

    while (n > 0) {
        ssize_t k = send(cl->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        } else if (k < 0 && errno == EAGAIN) {
            if (++stuck > STUCK_ROUNDS)
                die("the server stopped reading", NULL);
            pump(cl);
        } else if (k < 0 && errno != EINTR) {
            return false; /* EPIPE, ECONNRESET: the server closed */
        }
    }
    for (int i = 0; i < SETTLE_ROUNDS && srv.nconns > 0 && unread(cl) > 0; i++)
        pump(cl);
    pump(cl);
    return true;
}

/* Lets the server write all it has (output pending at the client's EOF is
 * not what this checks), then closes the client's write side: every
 * connection must then close. Returns whether the server had closed
 * before that. */
static bool finish(struct client *cl)
{
    unsigned rounds = 0;
    bool closed_first;

    while (srv.conns != NULL && conn_pending(srv.conns) > 0) {
        if (++rounds > STUCK_ROUNDS)
            die("the server never wrote its output", NULL);
        pump(cl);
    }
    closed_first = srv.nconns == 0;
    shutdown(cl->fd, SHUT_WR);
    for (rounds = 0; srv.nconns > 0 || !cl->eof; rounds++) {
        if (rounds > STUCK_ROUNDS)
            die("the connection stays open after the client's EOF", NULL);
        pump(cl);
    }
    return closed_first;
}

static void serve(const uint8_t *data, size_t size)
{
    struct sockaddr peer = {.sa_family = AF_UNIX};
    struct client cl = {0};
    int fds[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
        die("socketpair", strerror(errno));
    cl.fd = fds[1];
    if (plan.small_buffers) /* the kernel raises 1 to its minimum */
        for (int i = 0; i < 2; i++)
            setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &(int){1}, sizeof(int));
    conn_accept(&srv, fds[0], &peer);
    for (size_t off = 0, n; off < size; off += n) {
        n = piece_len(size - off);
        if (!send_piece(&cl, data + off, n))
            break;
    }
    bool closed_first = finish(&cl);
    bool said_close = check_output(cl.out.p, cl.out.len);
    if (closed_first && !said_close)
        die("the server closed after a response that kept the connection", NULL);
    if (closes != 1 || srv.conns != NULL)
        die("the connection was not freed exactly once", NULL);
    if (fcntl(fds[0], F_GETFD) >= 0 || errno != EBADF)
        die("the server's socket is still open", NULL);
    close(cl.fd);
    buf_free(&cl.out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Once: the loop, the default config, and the echo app, found (like the
 * daemon finds it) in apps/ next to this executable. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (log_open("/dev/null", LOG_DEBUG) < 0)
        die("cannot open /dev/null for the log", strerror(errno));
    config_defaults(&cfg);
    loop = ev_loop_new(EVFLAG_AUTO);
    if (loop == NULL)
        die("ev_loop_new failed", NULL);
    if (app_open(&echo, "echo") < 0 || app_load(&echo, &cfg) < 0 ||
        app_worker_init(&echo) < 0) {
        fprintf(stderr, "fuzz_conn: cannot load apps/echo.so next to the "
                        "executable\n");
        exit(1);
    }
    srv = (struct conn_server){
        .loop = loop,
        .cfg = &cfg,
        .app = &echo,
        .on_conn_closed = on_conn_closed,
        .on_request_done = on_request_done,
    };
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER_BYTES)
        return 0;
    plan_read(data);
    srv.limits = plan.lim;
    srv.retiring = plan.retiring;
    srv.no_keepalive = plan.no_keepalive;
    cfg.server.keepalive_timeout = plan.no_ka_timeout ? 0 : 5;
    nanswers = 0;
    closes = 0;
    serve(data + HEADER_BYTES, size - HEADER_BYTES);
    free(answers);
    answers = NULL;
    answers_cap = 0;
    return 0;
}
