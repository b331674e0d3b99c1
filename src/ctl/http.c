/*
 * http.c - preforkctl's client of the admin endpoint: one HTTP/1.0 GET per
 * connection over the unix socket or TCP address of [admin] listen, every
 * step bounded by a deadline. Runs in preforkctl only.
 * Convention: 0 / -1 with the reason in `why`.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl.h"

#define MAX_ANSWER (16u << 20)

/* Waits for events on fd until deadline; 0 ready, -1 timeout or error. */
static int wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        struct pollfd p = {fd, events, 0};
        double left = deadline - ctl_now();
        int rc;

        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        rc = poll(&p, 1, (int)(left * 1000) + 1);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

/* A connected non-blocking socket, or -1. A unix socket whose backlog is
 * full (EAGAIN) is retried until the deadline. */
static int connect_to(const struct listen_addr *a, double deadline)
{
    for (;;) {
        int fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err;
        socklen_t len = sizeof(err);

        if (fd < 0)
            return -1;
        if (connect(fd, &a->u.sa, a->len) == 0)
            return fd;
        if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 0 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0) {
            if (err == 0)
                return fd;
            errno = err;
        }
        err = errno;
        close(fd);
        errno = err;
        if (err != EAGAIN || ctl_now() >= deadline)
            return -1;
        ctl_nap(0.01);
    }
}

static int send_all(int fd, const char *p, size_t n, double deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EAGAIN) {
            if (wait_fd(fd, POLLOUT, deadline) < 0)
                return -1;
        } else if (w < 0 && errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

/* Reads until the server closes; the answer is NUL-terminated. */
static char *recv_all(int fd, double deadline, size_t *len)
{
    size_t cap = 16384, n = 0;
    char *b = malloc(cap);

    while (b != NULL) {
        ssize_t r;
        if (cap - n < 4096) {
            char *more = cap < MAX_ANSWER ? realloc(b, cap * 2) : NULL;
            if (more == NULL) {
                errno = EMSGSIZE;
                break;
            }
            b = more;
            cap *= 2;
        }
        r = recv(fd, b + n, cap - n - 1, 0);
        if (r > 0) {
            n += (size_t)r;
        } else if (r == 0) {
            b[n] = '\0';
            *len = n;
            return b;
        } else if (errno == EAGAIN) {
            if (wait_fd(fd, POLLIN, deadline) < 0)
                break;
        } else if (errno != EINTR) {
            break;
        }
    }
    free(b);
    return NULL;
}

/* "HTTP/1.x NNN ...\r\n...\r\n\r\nbody": the status and the body. */
static int parse_answer(char *a, int *status, char **body, char *why, size_t wlen)
{
    char *end = strstr(a, "\r\n\r\n");
    int minor;

    if (sscanf(a, "HTTP/1.%d %3d", &minor, status) != 2 || end == NULL) {
        snprintf(why, wlen, "not an HTTP answer: \"%.40s\"", a);
        return -1;
    }
    *body = strdup(end + 4);
    if (*body == NULL) {
        snprintf(why, wlen, "out of memory");
        return -1;
    }
    return 0;
}

int ctl_get(const struct listen_addr *a, const char *path, double timeout, int *status,
            char **body, char *why, size_t wlen)
{
    return ctl_request(a, "GET", path, timeout, status, body, why, wlen);
}

int ctl_request(const struct listen_addr *a, const char *method, const char *path,
                double timeout, int *status, char **body, char *why, size_t wlen)
{
    double deadline = ctl_now() + timeout;
    char req[1024], *answer = NULL;
    size_t len = 0;
    int fd, rc = -1, n;

    n = snprintf(req, sizeof(req),
                 "%s %s HTTP/1.0\r\nHost: preforkd\r\n"
                 "User-Agent: preforkctl\r\nContent-Length: 0\r\n\r\n",
                 method, path);
    if (n < 0 || (size_t)n >= sizeof(req)) {
        snprintf(why, wlen, "%s %s: too long", method, path);
        return -1;
    }
    if ((fd = connect_to(a, deadline)) < 0) {
        snprintf(why, wlen, "connecting to the admin endpoint %s: %s", a->text,
                 strerror(errno));
        return -1;
    }
    if (send_all(fd, req, (size_t)n, deadline) < 0 ||
        (answer = recv_all(fd, deadline, &len)) == NULL)
        snprintf(why, wlen, "%s %s at %s: %s", method, path, a->text, strerror(errno));
    else
        rc = parse_answer(answer, status, body, why, wlen);
    free(answer);
    close(fd);
    return rc;
}

struct json *ctl_stats(const struct ctl *c, char **raw, int *fail, char *why, size_t wlen)
{
    char *body = NULL, jwhy[128];
    struct json *j = NULL;
    int status;

    *fail = CTL_FAILED;
    if (!c->have_admin) {
        snprintf(why, wlen,
                 "no admin endpoint: set [admin] listen in %s, or give -a ADDRESS",
                 c->conf_path);
        return NULL;
    }
    *fail = CTL_UNREACHABLE;
    if (ctl_get(&c->admin, "/stats", 5.0, &status, &body, why, wlen) < 0)
        return NULL;
    *fail = CTL_FAILED;
    if (status != 200)
        snprintf(why, wlen, "GET /stats from %s: status %d", c->admin.text, status);
    else if ((j = json_parse(body, jwhy, sizeof(jwhy))) == NULL)
        snprintf(why, wlen, "GET /stats from %s: invalid JSON: %s", c->admin.text, jwhy);
    else if (json_get(j, "master") == NULL) {
        snprintf(why, wlen, "GET /stats from %s: no \"master\" object", c->admin.text);
        json_free(j);
        j = NULL;
    }
    if (j != NULL && raw != NULL)
        *raw = body;
    else
        free(body);
    return j;
}
