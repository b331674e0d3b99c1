/*
 * listen.h - listening addresses: parse "host:port", "[v6]:port",
 * "unix:/path"; bind and listen. Binds in the master (start-up, reload,
 * admin endpoint) and in preforkd -t; workers format addresses
 * (listen_port, listen_peer_text); preforkctl parses (listen_parse).
 * Convention: 0 / -1 with errno (listen_parse: -1 with *why set).
 */
#ifndef PF_LISTEN_H
#define PF_LISTEN_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

struct listen_addr {
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
        struct sockaddr_storage ss;
    } u;
    socklen_t len;
    char text[128]; /* canonical: "127.0.0.1:8000", "[::1]:8000", "unix:/p" */
    /* Unix sockets: the file listen_open created (st_dev/st_ino), so that
     * listen_close never unlinks a file that replaced it. 0 = none. */
    dev_t un_dev;
    ino_t un_ino;
};

/* Parses one address. Accepts "127.0.0.1:8000", "0.0.0.0:80", "*:80"
 * (all IPv4), "[::1]:8000", "[::]:80", "unix:/abs/or/rel/path". Port 0
 * asks the kernel for an ephemeral port. The host must be a numeric
 * address (no DNS in the master). On error returns -1 and points *why
 * at a static explanation ("missing port", "port out of range", ...). */
int listen_parse(const char *spec, struct listen_addr *out, const char **why);

/* TCP_DEFER_ACCEPT, seconds: a connection is accepted once its first
 * bytes come (or, silent, when this has passed and the kernel's SYN-ACK
 * retransmission is answered). */
#define LISTEN_DEFER_ACCEPT 1

/* A TCP listener's options for its connections: TCP_NODELAY, inherited by
 * every accepted socket, and TCP_DEFER_ACCEPT, so that a connection comes
 * with its request. For listeners preforkd bound and those it inherited
 * (systemd, a binary upgrade). A no-op for unix sockets. 0, or -1 with
 * errno when one could not be set (the connection works all the same). */
int listen_tune(int fd, const struct listen_addr *a);

/* Creates, binds and listens: non-blocking, close-on-exec, SO_REUSEADDR,
 * IPV6_V6ONLY for IPv6, then listen_tune. A stale unix socket file nobody listens on is
 * removed first; a live one is EADDRINUSE. With port 0, a->text and a->u
 * are updated to the port the kernel chose. Returns the fd, or -1. */
int listen_open(struct listen_addr *a, int backlog);

/* Closes fd; for a unix socket also unlinks the path (only if it is still
 * the socket we bound: same inode). */
void listen_close(int fd, const struct listen_addr *a);

/* The port of an AF_INET or AF_INET6 address, 0 for any other. */
int listen_port(const struct sockaddr *sa);

/* Formats a peer address (from accept) as text: "127.0.0.1", "::1", "unix".
 * buf must hold INET6_ADDRSTRLEN bytes. Returns buf. */
const char *listen_peer_text(const struct sockaddr *sa, char *buf, size_t len);

#endif
