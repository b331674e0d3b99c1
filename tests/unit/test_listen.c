/*
 * test_listen.c - unit tests for src/common/listen.c: parsing of listen
 * addresses (pure) and real binds on 127.0.0.1 and on unix sockets in a
 * private mkdtemp directory, removed at the end.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "listen.h"

static char tmpdir[] = "/tmp/pf-test-listen-XXXXXX";

static void tmp_path(char *buf, size_t len, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", tmpdir, name);
    ck_assert_int_lt(n, (int)len);
}

/* The lowest free fd: equal before and after a failing call = no leak. */
static int lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    close(fd);
    return fd;
}

static void parse_ok(const char *spec, struct listen_addr *a)
{
    const char *why = NULL;
    int rc = listen_parse(spec, a, &why);
    ck_assert_msg(rc == 0, "%s: %s", spec, why ? why : "(null)");
}

START_TEST(parse_ipv4)
{
    static const struct {
        const char *spec, *text, *addr;
        unsigned port;
    } cases[] = {
        {"127.0.0.1:8000", "127.0.0.1:8000", "127.0.0.1", 8000},
        {"0.0.0.0:80", "0.0.0.0:80", "0.0.0.0", 80},
        {"*:80", "0.0.0.0:80", "0.0.0.0", 80},
        {"10.1.2.3:0", "10.1.2.3:0", "10.1.2.3", 0},
        {"127.0.0.1:65535", "127.0.0.1:65535", "127.0.0.1", 65535},
        {"127.0.0.1:08080", "127.0.0.1:8080", "127.0.0.1", 8080},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct listen_addr a;
        char host[INET_ADDRSTRLEN];
        parse_ok(cases[i].spec, &a);
        ck_assert_int_eq(a.family, AF_INET);
        ck_assert_int_eq(a.u.in.sin_family, AF_INET);
        ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in));
        ck_assert_uint_eq(ntohs(a.u.in.sin_port), cases[i].port);
        inet_ntop(AF_INET, &a.u.in.sin_addr, host, sizeof(host));
        ck_assert_str_eq(host, cases[i].addr);
        ck_assert_str_eq(a.text, cases[i].text);
    }
}
END_TEST

START_TEST(parse_ipv6)
{
    static const struct {
        const char *spec, *text;
        unsigned port;
    } cases[] = {
        {"[::1]:8000", "[::1]:8000", 8000},
        {"[::]:80", "[::]:80", 80},
        {"[0:0:0:0:0:0:0:1]:8080", "[::1]:8080", 8080},
        {"[2001:DB8::A]:0", "[2001:db8::a]:0", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct listen_addr a;
        parse_ok(cases[i].spec, &a);
        ck_assert_int_eq(a.family, AF_INET6);
        ck_assert_int_eq(a.u.in6.sin6_family, AF_INET6);
        ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in6));
        ck_assert_uint_eq(ntohs(a.u.in6.sin6_port), cases[i].port);
        ck_assert_str_eq(a.text, cases[i].text);
    }
}
END_TEST

START_TEST(parse_unix)
{
    struct listen_addr a;

    parse_ok("unix:/run/preforkd/http.sock", &a);
    ck_assert_int_eq(a.family, AF_UNIX);
    ck_assert_int_eq(a.u.un.sun_family, AF_UNIX);
    ck_assert_str_eq(a.u.un.sun_path, "/run/preforkd/http.sock");
    ck_assert_str_eq(a.text, "unix:/run/preforkd/http.sock");
    ck_assert_uint_eq(a.len, offsetof(struct sockaddr_un, sun_path) +
                                 strlen("/run/preforkd/http.sock") + 1);

    parse_ok("unix:rel.sock", &a);
    ck_assert_str_eq(a.u.un.sun_path, "rel.sock");
    ck_assert_str_eq(a.text, "unix:rel.sock");
}
END_TEST

START_TEST(parse_invalid)
{
    static const struct {
        const char *spec, *why;
    } cases[] = {
        {"", "empty address"},
        {"127.0.0.1", "missing port"},
        {"127.0.0.1:", "missing port"},
        {"127.0.0.1:65536", "port out of range"},
        {"127.0.0.1:99999999999999999999999", "port out of range"},
        {"127.0.0.1:-1", "port must be a decimal number"},
        {"127.0.0.1:+80", "port must be a decimal number"},
        {"127.0.0.1:0x50", "port must be a decimal number"},
        {"127.0.0.1:80a", "port must be a decimal number"},
        {"127.0.0.1: 80", "port must be a decimal number"},
        {"localhost:80", "host must be a numeric IPv4 or [IPv6] address"},
        {"example.com:80", "host must be a numeric IPv4 or [IPv6] address"},
        {"256.0.0.1:80", "host must be a numeric IPv4 or [IPv6] address"},
        {"127.1:80", "host must be a numeric IPv4 or [IPv6] address"},
        {":80", "host must be a numeric IPv4 or [IPv6] address"},
        {" 127.0.0.1:80", "host must be a numeric IPv4 or [IPv6] address"},
        {"::1:80", "IPv6 addresses must be in brackets, e.g. [::1]:8000"},
        {"[::1]", "missing port"},
        {"[::1]:", "missing port"},
        {"[::1]80", "expected ':' after ']'"},
        {"[::1:80", "missing ']' after IPv6 address"},
        {"[]:80", "invalid IPv6 address"},
        {"[127.0.0.1]:80", "invalid IPv6 address"},
        {"[localhost]:80", "invalid IPv6 address"},
        {"[::1]:70000", "port out of range"},
        {"unix:", "empty unix socket path"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct listen_addr a;
        const char *why = NULL;
        int rc = listen_parse(cases[i].spec, &a, &why);
        ck_assert_msg(rc == -1, "\"%s\" was accepted", cases[i].spec);
        ck_assert_ptr_nonnull(why);
        ck_assert_msg(strcmp(why, cases[i].why) == 0,
                      "\"%s\": got \"%s\", expected \"%s\"", cases[i].spec, why,
                      cases[i].why);
        ck_assert_int_eq(a.family, 0); /* nothing half-filled */
    }
}
END_TEST

START_TEST(parse_unix_path_length)
{
    struct listen_addr a;
    char spec[300], path[200];
    const char *why = NULL;
    size_t max = sizeof(a.u.un.sun_path) - 1; /* 107 on Linux */

    memset(path, 'p', max);
    path[0] = '/';
    path[max] = '\0';
    snprintf(spec, sizeof(spec), "unix:%s", path);
    parse_ok(spec, &a);
    ck_assert_uint_eq(strlen(a.u.un.sun_path), max);
    ck_assert_str_eq(a.text, spec);

    path[max] = 'p';
    path[max + 1] = '\0';
    snprintf(spec, sizeof(spec), "unix:%s", path);
    ck_assert_int_eq(listen_parse(spec, &a, &why), -1);
    ck_assert_str_eq(why, "unix socket path too long");
}
END_TEST

START_TEST(parse_null_why)
{
    struct listen_addr a;
    ck_assert_int_eq(listen_parse("nope", &a, NULL), -1);
    ck_assert_int_eq(listen_parse(NULL, &a, NULL), -1);
}
END_TEST

START_TEST(open_tcp_ephemeral)
{
    struct listen_addr a;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    char want[64];
    int one = 0;
    socklen_t olen = sizeof(one);

    parse_ok("127.0.0.1:0", &a);
    int fd = listen_open(&a, 16);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    ck_assert_uint_ne(ntohs(sin.sin_port), 0);
    ck_assert_uint_eq(a.u.in.sin_port, sin.sin_port);
    snprintf(want, sizeof(want), "127.0.0.1:%u", ntohs(sin.sin_port));
    ck_assert_str_eq(a.text, want);

    ck_assert_int_ne(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, &olen), 0);
    ck_assert_int_eq(one, 1);
    ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &one, &olen), 0);
    ck_assert_int_eq(one, 1);

    /* It really listens: a client connects and is accepted. */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(c, &a.u.sa, a.len), 0);
    int s = -1;
    for (int i = 0; i < 1000 && s < 0; i++) {
        s = accept(fd, NULL, NULL);
        if (s < 0 && errno == EAGAIN)
            usleep(1000);
    }
    ck_assert_int_ge(s, 0);
    close(s);
    close(c);
    listen_close(fd, &a);
}
END_TEST

START_TEST(open_tcp_in_use)
{
    struct listen_addr a, b;

    parse_ok("127.0.0.1:0", &a);
    int fd = listen_open(&a, 16);
    ck_assert_int_ge(fd, 0);
    parse_ok(a.text, &b);
    int before = lowest_free_fd();
    errno = 0;
    ck_assert_int_eq(listen_open(&b, 16), -1);
    ck_assert_int_eq(errno, EADDRINUSE);
    ck_assert_int_eq(lowest_free_fd(), before); /* the socket was closed */
    listen_close(fd, &a);
}
END_TEST

START_TEST(open_unix)
{
    struct listen_addr a;
    char path[256], spec[300];
    struct stat st;

    tmp_path(path, sizeof(path), "http.sock");
    snprintf(spec, sizeof(spec), "unix:%s", path);
    parse_ok(spec, &a);
    int fd = listen_open(&a, 16);
    ck_assert_int_ge(fd, 0);
    ck_assert_str_eq(a.text, spec);
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert(a.un_ino == st.st_ino);
    ck_assert(a.un_dev == st.st_dev);
    ck_assert_int_ne(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);

    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(c, &a.u.sa, a.len), 0);
    close(c);

    listen_close(fd, &a);
    ck_assert_int_eq(lstat(path, &st), -1);
    ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* A socket file left by a process that died: bound, never listening. */
static void make_stale_socket(const struct listen_addr *a)
{
    struct stat st;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s, 0);
    ck_assert_int_eq(bind(s, &a->u.sa, a->len), 0);
    close(s);
    ck_assert_int_eq(lstat(a->u.un.sun_path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
}

START_TEST(open_unix_stale)
{
    struct listen_addr a;
    char path[256], spec[300];
    struct stat st;

    tmp_path(path, sizeof(path), "stale.sock");
    snprintf(spec, sizeof(spec), "unix:%s", path);
    parse_ok(spec, &a);
    make_stale_socket(&a);
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(c, &a.u.sa, a.len), -1);
    ck_assert_int_eq(errno, ECONNREFUSED);
    close(c);

    int fd = listen_open(&a, 16);
    ck_assert_msg(fd >= 0, "listen_open: %s", strerror(errno));
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert(st.st_ino == a.un_ino);
    /* The path now leads to a listening socket, not the dead one. */
    c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(c, &a.u.sa, a.len), 0);
    close(c);
    listen_close(fd, &a);
    ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

START_TEST(open_unix_live)
{
    struct listen_addr a, b;
    char path[256], spec[300];
    struct stat st;

    tmp_path(path, sizeof(path), "live.sock");
    snprintf(spec, sizeof(spec), "unix:%s", path);
    parse_ok(spec, &a);
    parse_ok(spec, &b);
    int fd = listen_open(&a, 16);
    ck_assert_int_ge(fd, 0);
    int before = lowest_free_fd();
    errno = 0;
    ck_assert_int_eq(listen_open(&b, 16), -1);
    ck_assert_int_eq(errno, EADDRINUSE);
    ck_assert_int_eq(lowest_free_fd(), before);
    /* The live socket is untouched and still answers. */
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(st.st_ino == a.un_ino);
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(c, &a.u.sa, a.len), 0);
    close(c);
    /* Closing the loser's address must not unlink the winner's file. */
    listen_close(-1, &b);
    ck_assert_int_eq(access(path, F_OK), 0);
    listen_close(fd, &a);
    ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(fputs(text, f), 0);
    ck_assert_int_eq(fclose(f), 0);
}

static void assert_file_is(const char *path, const char *text)
{
    char buf[256];
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    ck_assert_str_eq(buf, text);
}

START_TEST(open_unix_regular_file)
{
    struct listen_addr a;
    char path[256], spec[300];

    tmp_path(path, sizeof(path), "precious.txt");
    write_file(path, "do not delete\n");
    snprintf(spec, sizeof(spec), "unix:%s", path);
    parse_ok(spec, &a);
    int before = lowest_free_fd();
    errno = 0;
    ck_assert_int_eq(listen_open(&a, 16), -1);
    ck_assert_int_eq(errno, EEXIST);
    ck_assert_int_eq(lowest_free_fd(), before);
    assert_file_is(path, "do not delete\n");
    listen_close(-1, &a);
    assert_file_is(path, "do not delete\n");
    unlink(path);
}
END_TEST

START_TEST(close_keeps_replaced_file)
{
    struct listen_addr a;
    char path[256], spec[300];

    tmp_path(path, sizeof(path), "replaced.sock");
    snprintf(spec, sizeof(spec), "unix:%s", path);
    parse_ok(spec, &a);
    int fd = listen_open(&a, 16);
    ck_assert_int_ge(fd, 0);
    /* Somebody else takes the path (e.g. a new master after unlink). */
    ck_assert_int_eq(unlink(path), 0);
    struct listen_addr other = a;
    int fd2 = listen_open(&other, 16);
    ck_assert_int_ge(fd2, 0);
    ck_assert(other.un_ino != a.un_ino);
    listen_close(fd, &a);
    ck_assert_int_eq(access(path, F_OK), 0);
    listen_close(fd2, &other);
    ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

START_TEST(open_unix_missing_dir)
{
    struct listen_addr a;
    char path[256], spec[300];

    tmp_path(path, sizeof(path), "no/such/dir.sock");
    snprintf(spec, sizeof(spec), "unix:%s", path);
    parse_ok(spec, &a);
    int before = lowest_free_fd();
    errno = 0;
    ck_assert_int_eq(listen_open(&a, 16), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(lowest_free_fd(), before);
}
END_TEST

START_TEST(close_preserves_errno)
{
    struct listen_addr a;

    parse_ok("127.0.0.1:0", &a);
    int fd = listen_open(&a, 16);
    ck_assert_int_ge(fd, 0);
    errno = ENOSPC;
    listen_close(fd, &a);
    ck_assert_int_eq(errno, ENOSPC);
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1); /* closed */
}
END_TEST

START_TEST(peer_text)
{
    char buf[INET6_ADDRSTRLEN];
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct sockaddr_storage other = {.ss_family = AF_PACKET};

    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    inet_pton(AF_INET6, "::1", &sin6.sin6_addr);
    ck_assert_str_eq(listen_peer_text((struct sockaddr *)&sin, buf, sizeof(buf)),
                     "127.0.0.1");
    ck_assert_str_eq(listen_peer_text((struct sockaddr *)&sin6, buf, sizeof(buf)), "::1");
    ck_assert_str_eq(listen_peer_text((struct sockaddr *)&sun, buf, sizeof(buf)), "unix");
    ck_assert_str_eq(listen_peer_text((struct sockaddr *)&other, buf, sizeof(buf)),
                     "unknown");
    ck_assert_ptr_eq(listen_peer_text(NULL, buf, sizeof(buf)), buf);
    ck_assert_str_eq(buf, "unknown");
}
END_TEST

static Suite *listen_suite(void)
{
    Suite *s = suite_create("listen");
    TCase *p = tcase_create("parse");
    TCase *o = tcase_create("open");

    tcase_add_test(p, parse_ipv4);
    tcase_add_test(p, parse_ipv6);
    tcase_add_test(p, parse_unix);
    tcase_add_test(p, parse_invalid);
    tcase_add_test(p, parse_unix_path_length);
    tcase_add_test(p, parse_null_why);
    tcase_add_test(p, peer_text);
    suite_add_tcase(s, p);

    tcase_add_test(o, open_tcp_ephemeral);
    tcase_add_test(o, open_tcp_in_use);
    tcase_add_test(o, open_unix);
    tcase_add_test(o, open_unix_stale);
    tcase_add_test(o, open_unix_live);
    tcase_add_test(o, open_unix_regular_file);
    tcase_add_test(o, close_keeps_replaced_file);
    tcase_add_test(o, open_unix_missing_dir);
    tcase_add_test(o, close_preserves_errno);
    suite_add_tcase(s, o);
    return s;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    SRunner *sr = srunner_create(listen_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed == 0 ? 0 : 1;
}
