/*
 * holder.c - who holds a listening address, read from /proc: the inodes of
 * the listening sockets in the way (/proc/net/tcp, tcp6, unix: the network
 * namespace of this process), then the processes with one of those inodes
 * open (/proc/PID/fd/N -> "socket:[INODE]"). Runs in preforkd -t only
 * (check.c), never in a daemon. Convention: counts and booleans; a file
 * that cannot be read counts as nothing found.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "holder.h"

#define MAX_INODES 64
#define TCP_LISTEN 0x0A        /* include/net/tcp_states.h */
#define UNIX_ACCEPTCON 0x10000 /* __SO_ACCEPTCON: a listening unix socket */

struct inodes {
    unsigned long v[MAX_INODES];
    size_t n;
};

static void add_inode(struct inodes *in, unsigned long inode)
{
    if (in->n < MAX_INODES && inode != 0)
        in->v[in->n++] = inode;
}

/* /proc/net/tcp6 prints an address as four 32-bit words, each "%08X" of
 * the word as it lies in memory: parsed back, the bytes are in order. */
static void parse_v6(const char *hex, struct in6_addr *out)
{
    char word[9];

    for (int i = 0; i < 4; i++) {
        uint32_t w;
        memcpy(word, hex + 8 * i, 8);
        word[8] = '\0';
        w = (uint32_t)strtoul(word, NULL, 16);
        memcpy(&out->s6_addr[4 * i], &w, 4);
    }
}

/* Does a listener on (hex address, port) keep a from being bound? */
static bool ip_in_the_way(const struct listen_addr *a, const char *hex, unsigned port)
{
    struct in6_addr them6;

    if ((unsigned)listen_port(&a->u.sa) != port)
        return false;
    if (strlen(hex) == 8) { /* IPv4, "%08X" of the address as it lies in memory */
        uint32_t them = (uint32_t)strtoul(hex, NULL, 16), us;
        if (a->family != AF_INET)
            return false;
        us = a->u.in.sin_addr.s_addr;
        return us == them || us == htonl(INADDR_ANY) || them == htonl(INADDR_ANY);
    }
    if (strlen(hex) != 32)
        return false;
    parse_v6(hex, &them6);
    if (a->family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&them6) ||
               IN6_IS_ADDR_UNSPECIFIED(&a->u.in6.sin6_addr) ||
               memcmp(&them6, &a->u.in6.sin6_addr, sizeof(them6)) == 0;
    /* an IPv4 address against a dual-stack socket */
    return IN6_IS_ADDR_UNSPECIFIED(&them6) ||
           (IN6_IS_ADDR_V4MAPPED(&them6) &&
            (memcmp(&them6.s6_addr[12], &a->u.in.sin_addr, 4) == 0 ||
             a->u.in.sin_addr.s_addr == htonl(INADDR_ANY)));
}

/* Listening TCP sockets in a's way, from one of /proc/net/tcp, tcp6. */
static void tcp_inodes(const char *table, const struct listen_addr *a, struct inodes *in)
{
    FILE *f = fopen(table, "re");
    char line[512], hex[40];
    unsigned port, st;
    unsigned long inode;

    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, " %*s %39[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*s %*s %lu", hex,
                   &port, &st, &inode) == 4 &&
            st == TCP_LISTEN && ip_in_the_way(a, hex, port))
            add_inode(in, inode);
    fclose(f);
}

/* Listening unix sockets bound to a's path. */
static void unix_inodes(const struct listen_addr *a, struct inodes *in)
{
    FILE *f = fopen("/proc/net/unix", "re");
    char line[512];
    unsigned flags;
    unsigned long inode;
    int off;

    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        off = 0;
        if (sscanf(line, "%*s %*x %*x %x %*x %*x %lu %n", &flags, &inode, &off) < 2 ||
            off == 0 || !(flags & UNIX_ACCEPTCON))
            continue;
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(line + off, a->u.un.sun_path) == 0)
            add_inode(in, inode);
    }
    fclose(f);
}

static bool holds(int dirfd, const struct inodes *in)
{
    DIR *d = fdopendir(dirfd);
    struct dirent *e;
    char link[64];
    unsigned long inode;
    bool yes = false;

    if (d == NULL) {
        close(dirfd);
        return false;
    }
    while (!yes && (e = readdir(d)) != NULL) {
        ssize_t n = readlinkat(dirfd, e->d_name, link, sizeof(link) - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        if (sscanf(link, "socket:[%lu]", &inode) != 1)
            continue;
        for (size_t i = 0; i < in->n && !yes; i++)
            yes = in->v[i] == inode;
    }
    closedir(d);
    return yes;
}

static int pid_cmp(const void *x, const void *y)
{
    pid_t a = *(const pid_t *)x, b = *(const pid_t *)y;

    return a < b ? -1 : a > b;
}

/* See holder.h. */
size_t holder_find(const struct listen_addr *a, pid_t *pids, size_t max)
{
    struct inodes in = {.n = 0};
    DIR *proc;
    struct dirent *e;
    char path[64];
    size_t n = 0;

    if (a->family == AF_UNIX) {
        unix_inodes(a, &in);
    } else {
        tcp_inodes("/proc/net/tcp", a, &in);
        tcp_inodes("/proc/net/tcp6", a, &in);
    }
    if (in.n == 0 || (proc = opendir("/proc")) == NULL)
        return 0;
    while (n < max && (e = readdir(proc)) != NULL) {
        int fd;
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        if (snprintf(path, sizeof(path), "/proc/%s/fd", e->d_name) >= (int)sizeof(path))
            continue;
        if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
            continue;
        if (holds(fd, &in))
            pids[n++] = (pid_t)strtol(e->d_name, NULL, 10);
    }
    closedir(proc);
    qsort(pids, n, sizeof(*pids), pid_cmp);
    return n;
}

/* See holder.h. */
bool holder_unix_listening(const struct listen_addr *a)
{
    struct inodes in = {.n = 0};

    unix_inodes(a, &in);
    return in.n > 0;
}

/* See holder.h. */
const char *holder_name(pid_t pid, char *buf, size_t len)
{
    char path[64];
    ssize_t n = -1;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
        n = read(fd, buf, len - 1);
        close(fd);
    }
    while (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n <= 0)
        snprintf(buf, len, "?");
    else
        buf[n] = '\0';
    return buf;
}

/* See holder.h. */
const char *holder_cmdline(pid_t pid, char *buf, size_t len)
{
    char path[64];
    ssize_t n = 0;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    if (len == 0)
        return buf;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
        n = read(fd, buf, len - 1);
        close(fd);
    }
    if (n < 0)
        n = 0;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    while (n > 0 && buf[n - 1] == ' ')
        n--;
    buf[n] = '\0';
    return buf;
}
