/*
 * listen.c - listening addresses: parse "a.b.c.d:port", "*:port",
 * "[v6]:port" and "unix:PATH"; create, bind and listen; close (and unlink
 * what we bound). Binding runs in the master: at start-up before any
 * worker is forked, and on its loop when a reload binds new addresses or
 * the admin endpoint opens; workers inherit the fds and call only
 * listen_port and listen_peer_text (each connection). listen_parse also
 * runs in preforkd -t and preforkctl, which binds nothing; -t binds and
 * closes to try. Never resolves names: no DNS in the master.
 * Convention: 0 / -1 with errno; listen_parse: -1 with *why set.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "listen.h"

#define UNIX_PREFIX "unix:"

/* "0".."65535", decimal digits only (no sign, no spaces, no 0x). */
static int parse_port(const char *s, in_port_t *out, const char **why)
{
    unsigned long v = 0;

    if (*s == '\0') {
        *why = "missing port";
        return -1;
    }
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') {
            *why = "port must be a decimal number";
            return -1;
        }
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > 65535) {
            *why = "port out of range";
            return -1;
        }
    }
    *out = (in_port_t)v;
    return 0;
}

static int parse_unix(const char *path, struct listen_addr *out, const char **why)
{
    size_t n = strlen(path);

    if (n == 0) {
        *why = "empty unix socket path";
        return -1;
    }
    if (n >= sizeof(out->u.un.sun_path)) {
        *why = "unix socket path too long";
        return -1;
    }
    out->family = AF_UNIX;
    out->u.un.sun_family = AF_UNIX;
    memcpy(out->u.un.sun_path, path, n + 1);
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    snprintf(out->text, sizeof(out->text), UNIX_PREFIX "%s", path);
    return 0;
}

/* Rewrites a->text from a->u (IP families only). */
static void format_ip(struct listen_addr *a)
{
    char host[INET6_ADDRSTRLEN];

    if (a->family == AF_INET6) {
        inet_ntop(AF_INET6, &a->u.in6.sin6_addr, host, sizeof(host));
        snprintf(a->text, sizeof(a->text), "[%s]:%u", host, ntohs(a->u.in6.sin6_port));
    } else {
        inet_ntop(AF_INET, &a->u.in.sin_addr, host, sizeof(host));
        snprintf(a->text, sizeof(a->text), "%s:%u", host, ntohs(a->u.in.sin_port));
    }
}

/* "[v6]:port": spec points at '['. */
static int parse_v6(const char *spec, struct listen_addr *out, const char **why)
{
    char host[INET6_ADDRSTRLEN];
    const char *end = strchr(spec, ']');
    size_t n;
    in_port_t port;

    if (end == NULL) {
        *why = "missing ']' after IPv6 address";
        return -1;
    }
    n = (size_t)(end - spec - 1);
    if (n == 0 || n >= sizeof(host)) {
        *why = "invalid IPv6 address";
        return -1;
    }
    memcpy(host, spec + 1, n);
    host[n] = '\0';
    if (end[1] != ':') {
        *why = end[1] == '\0' ? "missing port" : "expected ':' after ']'";
        return -1;
    }
    if (inet_pton(AF_INET6, host, &out->u.in6.sin6_addr) != 1) {
        *why = "invalid IPv6 address";
        return -1;
    }
    if (parse_port(end + 2, &port, why) < 0)
        return -1;
    out->family = AF_INET6;
    out->u.in6.sin6_family = AF_INET6;
    out->u.in6.sin6_port = htons(port);
    out->len = sizeof(out->u.in6);
    format_ip(out);
    return 0;
}

/* "a.b.c.d:port" or "*:port". */
static int parse_v4(const char *spec, struct listen_addr *out, const char **why)
{
    char host[INET_ADDRSTRLEN];
    const char *colon = strrchr(spec, ':');
    size_t n;
    in_port_t port;

    if (colon == NULL) {
        *why = "missing port";
        return -1;
    }
    if (memchr(spec, ':', (size_t)(colon - spec)) != NULL) {
        *why = "IPv6 addresses must be in brackets, e.g. [::1]:8000";
        return -1;
    }
    n = (size_t)(colon - spec);
    if (n == 1 && spec[0] == '*') {
        out->u.in.sin_addr.s_addr = htonl(INADDR_ANY);
    } else {
        if (n == 0 || n >= sizeof(host))
            goto not_numeric;
        memcpy(host, spec, n);
        host[n] = '\0';
        if (inet_pton(AF_INET, host, &out->u.in.sin_addr) != 1)
            goto not_numeric;
    }
    if (parse_port(colon + 1, &port, why) < 0)
        return -1;
    out->family = AF_INET;
    out->u.in.sin_family = AF_INET;
    out->u.in.sin_port = htons(port);
    out->len = sizeof(out->u.in);
    format_ip(out);
    return 0;

not_numeric:
    *why = "host must be a numeric IPv4 or [IPv6] address";
    return -1;
}

/* Parses spec into *out (zeroed first). Pure: no sockets, no DNS, no
 * file system access. Returns 0, or -1 with *why pointing at a static
 * explanation ("missing port", "port out of range", ...). */
int listen_parse(const char *spec, struct listen_addr *out, const char **why)
{
    const char *dummy;
    int rc;

    if (why == NULL)
        why = &dummy;
    memset(out, 0, sizeof(*out));
    if (spec == NULL || *spec == '\0') {
        *why = "empty address";
        return -1;
    }
    if (strncmp(spec, UNIX_PREFIX, strlen(UNIX_PREFIX)) == 0)
        rc = parse_unix(spec + strlen(UNIX_PREFIX), out, why);
    else if (spec[0] == '[')
        rc = parse_v6(spec, out, why);
    else
        rc = parse_v4(spec, out, why);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* Is anybody accepting on the unix socket at path? 1 yes, 0 no (stale
 * file), -1 with errno when it cannot tell. The probe is non-blocking: a
 * full backlog (EAGAIN) also means somebody listens. */
static int unix_in_use(const struct listen_addr *a)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc;

    if (fd < 0)
        return -1;
    if (connect(fd, &a->u.sa, a->len) == 0)
        rc = 1;
    else if (errno == EAGAIN || errno == EINPROGRESS)
        rc = 1;
    else if (errno == ECONNREFUSED)
        rc = 0;
    else
        rc = -1;
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* Clears the way for bind(): nothing at the path is fine; a socket file
 * nobody listens on is removed; a live socket is EADDRINUSE; anything else
 * (a regular file, a directory, a symlink) is EEXIST and left alone. */
static int unix_prepare(const struct listen_addr *a)
{
    const char *path = a->u.un.sun_path;
    struct stat st;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISSOCK(st.st_mode)) {
        errno = EEXIST;
        return -1;
    }
    switch (unix_in_use(a)) {
    case 0:
        if (unlink(path) < 0 && errno != ENOENT)
            return -1;
        return 0;
    case 1: errno = EADDRINUSE; return -1;
    default: return -1;
    }
}

static int set_int_opt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value));
}

/* Binds fd to a, with the family's preparations and bookkeeping. */
static int bind_addr(int fd, struct listen_addr *a)
{
    struct stat st;

    if (a->family == AF_UNIX) {
        if (unix_prepare(a) < 0)
            return -1;
    } else if (set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0) {
        return -1;
    }
    if (a->family == AF_INET6 && set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1) < 0)
        return -1;
    if (bind(fd, &a->u.sa, a->len) < 0)
        return -1;
    if (a->family == AF_UNIX) {
        if (stat(a->u.un.sun_path, &st) < 0)
            return -1;
        a->un_dev = st.st_dev;
        a->un_ino = st.st_ino;
    }
    return 0;
}

/* With port 0, learns the port the kernel chose and rewrites a. */
static int learn_port(int fd, struct listen_addr *a)
{
    in_port_t port = a->family == AF_INET6 ? a->u.in6.sin6_port : a->u.in.sin_port;
    socklen_t len = a->len;

    if (a->family == AF_UNIX || port != 0)
        return 0;
    if (getsockname(fd, &a->u.sa, &len) < 0)
        return -1;
    format_ip(a);
    return 0;
}

/* See listen.h. */
int listen_tune(int fd, const struct listen_addr *a)
{
    int rc = 0;

    if (a->family == AF_UNIX)
        return 0;
    if (set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1) < 0)
        rc = -1;
    if (set_int_opt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, LISTEN_DEFER_ACCEPT) < 0)
        rc = -1;
    return rc;
}

/* Creates a non-blocking, close-on-exec stream socket for a, binds it
 * (see unix_prepare for what happens to an existing unix socket file) and
 * listens with backlog. Port 0: a->u and a->text get the real port. For
 * unix sockets, records the file's identity in a for listen_close.
 * Returns the fd, or -1 with errno (nothing left open or created). Does
 * not block (a unix probe connect is non-blocking). */
int listen_open(struct listen_addr *a, int backlog)
{
    int fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int bound = 0;

    if (fd < 0)
        return -1;
    if (bind_addr(fd, a) < 0)
        goto fail;
    bound = 1;
    if (listen(fd, backlog) < 0 || learn_port(fd, a) < 0)
        goto fail;
    (void)listen_tune(fd, a); /* best effort: connections work without */
    return fd;

fail:;
    int saved = errno;
    if (bound && a->family == AF_UNIX) {
        listen_close(fd, a);
        a->un_dev = 0;
        a->un_ino = 0;
    } else {
        close(fd);
    }
    errno = saved;
    return -1;
}

/* Closes fd (when >= 0). For a unix address bound by listen_open, also
 * unlinks the path, but only while it is still the socket file we created
 * (same device and inode): a file another process put there survives.
 * Only the process that owns the socket's life should call it — the
 * master at shutdown, never a worker, nor an old master that handed the
 * socket to its successor. errno is preserved. */
void listen_close(int fd, const struct listen_addr *a)
{
    int saved = errno;
    struct stat st;

    /* Compare before closing: while our socket is open its inode cannot
     * be freed and its number handed to a newer file. */
    if (a != NULL && a->family == AF_UNIX && a->un_ino != 0 &&
        lstat(a->u.un.sun_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
        st.st_dev == a->un_dev && st.st_ino == a->un_ino)
        unlink(a->u.un.sun_path);
    if (fd >= 0)
        close(fd);
    errno = saved;
}

/* Formats a peer address as "127.0.0.1", "::1" or "unix" ("unknown" for
 * other families or a NULL sa) into buf (len >= INET6_ADDRSTRLEN for any
 * IP address to fit). Returns buf. Pure. */
int listen_port(const struct sockaddr *sa)
{
    if (sa != NULL && sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
    if (sa != NULL && sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
    return 0;
}

const char *listen_peer_text(const struct sockaddr *sa, char *buf, size_t len)
{
    const void *addr = NULL;
    int family = sa ? sa->sa_family : AF_UNSPEC;

    if (len == 0)
        return buf;
    if (family == AF_INET)
        addr = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    else if (family == AF_INET6)
        addr = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (addr != NULL && inet_ntop(family, addr, buf, (socklen_t)len) != NULL)
        return buf;
    snprintf(buf, len, "%s", family == AF_UNIX ? "unix" : "unknown");
    return buf;
}
