/*
 * fakeup.c - a fake upstream HTTP server in threads of the test process,
 * for tests/unit/test_upstream.c and tests/integration/test_proxy.c (see fakeup.h). One
 * thread accepts; each connection gets a thread with blocking I/O.
 * fakeup_stop shuts every socket down and joins every thread.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "fakeup.h"

#define MAX_CONNS 256
#define REQ_MAX (4 * 1024 * 1024)
#define DEFAULT_RESP "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"

struct fconn {
    struct fakeup *f;
    int fd; /* -1 once the thread closed it (under f->mu) */
    pthread_t th;
};

struct fakeup {
    struct fakeup_cfg cfg;
    int lfd, port;
    int stop[2];
    atomic_bool stopping; /* fakeup_stop: a held answer goes out now */
    pthread_t th;
    pthread_mutex_t mu;
    struct fconn *conns[MAX_CONNS];
    int nconns;
    atomic_int accepted, closed_by_peer, open, requests, responses;
    char *last;
    size_t last_len;
};

/* Counters: see fakeup.h. */
int fakeup_port(const struct fakeup *f)
{
    return f->port;
}
int fakeup_accepted(const struct fakeup *f)
{
    return atomic_load(&f->accepted);
}
int fakeup_closed_by_peer(const struct fakeup *f)
{
    return atomic_load(&f->closed_by_peer);
}
int fakeup_open(const struct fakeup *f)
{
    return atomic_load(&f->open);
}
int fakeup_requests(const struct fakeup *f)
{
    return atomic_load(&f->requests);
}
int fakeup_responses(const struct fakeup *f)
{
    return atomic_load(&f->responses);
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* See fakeup.h. Polls every 2 ms. */
bool fakeup_wait(struct fakeup *f, int (*count)(const struct fakeup *), int want,
                 double timeout)
{
    double end = now() + timeout;

    while (count(f) < want) {
        if (now() > end)
            return false;
        poll(NULL, 0, 2);
    }
    return true;
}

/* See fakeup.h. */
char *fakeup_last_request(struct fakeup *f, size_t *len)
{
    char *s;

    pthread_mutex_lock(&f->mu);
    s = malloc(f->last_len + 1);
    ck_assert(s != NULL);
    if (f->last_len > 0)
        memcpy(s, f->last, f->last_len);
    s[f->last_len] = '\0';
    if (len != NULL)
        *len = f->last_len;
    pthread_mutex_unlock(&f->mu);
    return s;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Length of a complete request at the start of b (head + body by
 * Content-Length, or chunked up to the last chunk), or 0 if incomplete. */
static size_t request_len(const char *b, size_t n)
{
    const char *end = memmem(b, n, "\r\n\r\n", 4), *p = b;
    size_t head, body = 0;

    if (end == NULL)
        return 0;
    head = (size_t)(end - b) + 4;
    while (p != NULL && p < end) {
        if (strncasecmp(p, "content-length:", 15) == 0)
            body = strtoul(p + 15, NULL, 10);
        if (strncasecmp(p, "transfer-encoding:", 18) == 0) {
            const char *last = memmem(b + head, n - head, "0\r\n\r\n", 5);
            return last ? (size_t)(last - b) + 5 : 0;
        }
        p = memchr(p, '\n', (size_t)(end - p));
        if (p != NULL)
            p++;
    }
    return n >= head + body ? head + body : 0;
}

static void record(struct fakeup *f, const char *req, size_t n)
{
    pthread_mutex_lock(&f->mu);
    free(f->last);
    f->last = malloc(n);
    if (f->last != NULL)
        memcpy(f->last, req, n);
    f->last_len = f->last != NULL ? n : 0;
    pthread_mutex_unlock(&f->mu);
    atomic_fetch_add(&f->requests, 1);
}

static bool send_big(int fd, uint64_t size)
{
    static char pattern[65536 + 26];
    char head[128];
    uint64_t off = 0;

    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (char)('a' + i % 26);
    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n\r\n",
             (unsigned long long)size);
    if (!send_all(fd, head, strlen(head)))
        return false;
    while (off < size) {
        size_t n = size - off < 65536 ? (size_t)(size - off) : 65536;
        if (!send_all(fd, pattern + off % 26, n))
            return false;
        off += n;
    }
    return true;
}

static void reset_close(int fd)
{
    struct linger lg = {1, 0};

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* Answers one request: 1 go on, 0 close the connection, -1 the client
 * went away (a send failed). */
static int answer(struct fakeup *f, int fd, int nth)
{
    const struct fakeup_cfg *c = &f->cfg;
    const char *resp = c->resp ? c->resp : DEFAULT_RESP;
    size_t len = c->resp_len ? c->resp_len : strlen(resp);

    if (c->silent)
        return 1;
    while (c->hold && *c->hold && !atomic_load(&f->stopping))
        usleep(1000); /* shaping only: the test releases it */
    if (c->drop_request > 0 && nth == c->drop_request)
        return 0;
    if (c->reset_after > 0) {
        send_all(fd, resp, c->reset_after < len ? c->reset_after : len);
        reset_close(fd);
        return 0;
    }
    if (!(c->big > 0 ? send_big(fd, c->big) : send_all(fd, resp, len)))
        return -1;
    atomic_fetch_add(&f->responses, 1);
    return c->close_after ? 0 : 1;
}

static void *conn_main(void *arg)
{
    struct fconn *fc = arg;
    struct fakeup *f = fc->f;
    char *b = malloc(REQ_MAX);
    size_t n = 0, r;
    int nth = 0;
    bool by_peer = false;

    while (b != NULL && !f->cfg.accept_close) {
        ssize_t k = recv(fc->fd, b + n, REQ_MAX - n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            by_peer = true;
            break;
        }
        n += (size_t)k;
        while ((r = request_len(b, n)) > 0) {
            int rc;

            record(f, b, r);
            memmove(b, b + r, n - r);
            n -= r;
            rc = answer(f, fc->fd, ++nth);
            if (rc < 0)
                by_peer = true;
            if (rc <= 0)
                goto out;
        }
    }
out:
    free(b);
    /* open first: who saw closed_by_peer reach n finds open down already */
    atomic_fetch_sub(&f->open, 1);
    if (by_peer)
        atomic_fetch_add(&f->closed_by_peer, 1);
    pthread_mutex_lock(&f->mu);
    close(fc->fd); /* a FIN, or a RST after reset_close */
    fc->fd = -1;
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static void *accept_main(void *arg)
{
    struct fakeup *f = arg;
    struct pollfd pf[2] = {{f->lfd, POLLIN, 0}, {f->stop[0], POLLIN, 0}};

    for (;;) {
        struct fconn *fc;
        int fd;

        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break;
        fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        atomic_fetch_add(&f->accepted, 1);
        atomic_fetch_add(&f->open, 1);
        fc = calloc(1, sizeof(*fc));
        pthread_mutex_lock(&f->mu);
        if (fc == NULL || f->nconns == MAX_CONNS) {
            pthread_mutex_unlock(&f->mu);
            close(fd);
            free(fc);
            atomic_fetch_sub(&f->open, 1);
            continue;
        }
        fc->f = f;
        fc->fd = fd;
        f->conns[f->nconns++] = fc;
        pthread_mutex_unlock(&f->mu);
        pthread_create(&fc->th, NULL, conn_main, fc);
    }
    return NULL;
}

/* See fakeup.h. */
struct fakeup *fakeup_start(const struct fakeup_cfg *cfg)
{
    struct fakeup *f = calloc(1, sizeof(*f));
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int one = 1;

    ck_assert(f != NULL);
    if (cfg != NULL)
        f->cfg = *cfg;
    pthread_mutex_init(&f->mu, NULL);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert(f->lfd >= 0);
    setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ck_assert(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
    ck_assert(listen(f->lfd, 128) == 0);
    ck_assert(getsockname(f->lfd, (struct sockaddr *)&a, &len) == 0);
    f->port = ntohs(a.sin_port);
    ck_assert(pipe2(f->stop, O_CLOEXEC) == 0);
    ck_assert(pthread_create(&f->th, NULL, accept_main, f) == 0);
    return f;
}

/* See fakeup.h. */
void fakeup_stop(struct fakeup *f)
{
    if (f == NULL)
        return;
    atomic_store(&f->stopping, true);
    ck_assert(write(f->stop[1], "x", 1) == 1);
    pthread_join(f->th, NULL);
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < f->nconns; i++)
        if (f->conns[i]->fd >= 0)
            shutdown(f->conns[i]->fd, SHUT_RDWR);
    pthread_mutex_unlock(&f->mu);
    for (int i = 0; i < f->nconns; i++) {
        pthread_join(f->conns[i]->th, NULL);
        free(f->conns[i]);
    }
    close(f->lfd);
    close(f->stop[0]);
    close(f->stop[1]);
    free(f->last);
    pthread_mutex_destroy(&f->mu);
    free(f);
}
