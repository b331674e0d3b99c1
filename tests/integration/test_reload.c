/*
 * test_reload.c - integration tests of the master's graceful changes
 * (src/master/reload.c): SIGHUP reloads under load, new module code after a reload
 * with preload, an invalid file on SIGHUP, the binary upgrade (USR2, WINCH,
 * TERM) under load, the sd_notify messages, and socket activation through
 * systemd-socket-activate.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "load.h"

static struct hdaemon *start(const char *module, int workers, bool preload,
                             struct hdaemon *d)
{
    if (d == NULL)
        d = harness_daemon_new();
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = %d\n"
                          "preload = %s\npidfile = %s\ngraceful_timeout = 5s\n"
                          "[app]\nmodule = %s\n"
                          "[admin]\nlisten = 127.0.0.1:0\n",
                          workers, preload ? "true" : "false", d->pidfile, module);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 10);
    return d;
}

struct hups {
    struct hdaemon *d;
    int count;
};

static void send_hups(void *arg)
{
    struct hups *h = arg;

    for (int i = 0; i < h->count; i++) {
        /* One at a time: signals of one kind do not queue. */
        long before = harness_log_count(h->d, "received SIGHUP");
        kill(h->d->pid, SIGHUP);
        for (double t0 = harness_now();
             harness_log_count(h->d, "received SIGHUP") == before &&
             harness_now() - t0 < 5;)
            harness_pause(0.005);
        harness_pause(0.05);
    }
}

/* 20 reloads while clients (keep-alive and not) hammer it: nothing fails.
 * A HUP that comes while the reload before still loads the app in its new
 * mold supersedes it ("dropping that one"): every HUP either made a
 * generation or was superseded by the next. */
START_TEST(test_reload_under_load)
{
    char *mod = load_module_path("PREFORKD_APPS", "hello");
    struct hdaemon *d = start(mod, 2, true, NULL);
    int admin = stats_admin_port(d);
    struct hups h = {.d = d, .count = 20};
    int superseded;
    char *j;

    load_concurrent(d->port, 4, 1500, "Hello, World!\n", NULL, send_hups, &h);
    ck_assert(harness_log_wait(d, "reload done", 1, 10));
    for (double t0 = harness_now();; harness_pause(0.02)) {
        j = stats_get(admin);
        superseded = harness_log_count(d, "dropping that one");
        /* The last generation counts from the HUP on; it is done when its
         * workers serve. */
        if ((stats_num(j, "generation") - 1 + superseded == 20 &&
             strstr(j, "\"reload_state\": \"done\"") != NULL) ||
            harness_now() - t0 > 10)
            break;
        free(j);
    }
    ck_assert_msg(stats_num(j, "generation") - 1 + superseded == 20, "%d superseded: %s",
                  superseded, j);
    ck_assert_msg(stats_num(j, "reloads") == 20, "%s", j);
    ck_assert_msg(strstr(j, "\"reload_state\": \"done\"") != NULL, "%s", j);
    ck_assert(
        harness_log_wait(d, "retired: reload", (int)stats_num(j, "generation") - 1, 10));
    free(j);
    /* The admin port was configured as 0: unchanged, not "changed". */
    ck_assert_int_eq(harness_log_count(d, "changes only with a restart"), 0);
    free(mod);
}
END_TEST

static void copy_file(const char *from, const char *to)
{
    size_t len;
    char *data = harness_read_file(from, &len);

    ck_assert(data != NULL);
    harness_write_file(to, data, len);
    free(data);
}

/* New code after a reload, even when the module is preloaded in the master
 * (the file is replaced by rename, as install(1) does). */
START_TEST(test_reload_new_code)
{
    struct hdaemon *d = harness_daemon_new();
    char *a = load_module_path("PREFORKD_TEST_APPS", "code_a");
    char *b = load_module_path("PREFORKD_TEST_APPS", "code_b");
    char mod[256], tmp[256];
    bool swapped = false;

    snprintf(mod, sizeof mod, "%s/app.so", d->dir);
    snprintf(tmp, sizeof tmp, "%s/app.so.new", d->dir);
    copy_file(a, mod);
    start(mod, 2, true, d);
    load_sync(d->port, 5, true, "code A\n");
    copy_file(b, tmp);
    ck_assert_int_eq(rename(tmp, mod), 0);
    kill(d->pid, SIGHUP);
    ck_assert(harness_log_wait(d, "reload done: generation 2", 1, 10));
    for (double t0 = harness_now(); !swapped && harness_now() - t0 < 5;) {
        struct load l = {.port = d->port, .requests = 1, .body = "code B\n"};
        load_run(&l);
        swapped = l.ok == 1;
    }
    ck_assert_msg(swapped, "still the old code after the reload");
    load_sync(d->port, 20, false, "code B\n");
    free(a);
    free(b);
}
END_TEST

/* "reload done" means what it says: a connection made after it is never
 * served by the old code. The old worker is kept busy in a request (its
 * loop blocked, as an app's handler blocks it) while the master tells it
 * to retire; the new worker is stopped (SIGSTOP) so that the next request
 * waits in the backlog when the old worker's loop runs again. The old
 * worker had accepted the busy connection in a batch, and before the fix
 * went on accepting from the backlog before its loop read the signal. */
START_TEST(test_reload_retiring_accepts_nothing)
{
    struct hdaemon *d = harness_daemon_new();
    char *a = load_module_path("PREFORKD_TEST_APPS", "code_a");
    char *b = load_module_path("PREFORKD_TEST_APPS", "code_b");
    char mod[256], tmp[256], gate[256], req[512];
    struct hconn *busy, *next;
    struct hresp r;
    long pids[2];
    int admin;

    snprintf(mod, sizeof mod, "%s/app.so", d->dir);
    snprintf(tmp, sizeof tmp, "%s/app.so.new", d->dir);
    snprintf(gate, sizeof gate, "%s/gate", d->dir);
    copy_file(a, mod);
    start(mod, 1, true, d);
    admin = stats_admin_port(d);
    harness_write_file(gate, "", 0);
    busy = harness_connect(d->port);
    snprintf(req, sizeof req, "GET /hold?%s HTTP/1.1\r\nHost: t\r\n\r\n", gate);
    harness_send_str(busy, req);
    /* Counted as the worker's connection before the app is called. */
    for (double t0 = harness_now();; harness_pause(0.01)) {
        char *j = stats_get(admin);
        bool held = strstr(j, "\"connections\": 1") != NULL;

        free(j);
        if (held)
            break;
        ck_assert_msg(harness_now() - t0 < 10, "the worker never took the held request");
    }
    copy_file(b, tmp);
    ck_assert_int_eq(rename(tmp, mod), 0);
    kill(d->pid, SIGHUP);
    ck_assert(harness_log_wait(d, "reload done: generation 2", 1, 10));
    ck_assert_int_eq(
        harness_log_numbers(d, "worker 1 spawned \\(pid ([0-9]+), generation 2\\)", 1,
                            pids, 2),
        1);
    ck_assert_int_eq(kill((pid_t)pids[0], SIGSTOP), 0);
    next = harness_connect(d->port);
    harness_send_str(next, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    unlink(gate);
    harness_expect_response(busy, &r, false, "the held request");
    ck_assert_str_eq(r.body, "code A\n");
    hresp_free(&r);
    /* The old worker leaves without taking the waiting connection. */
    ck_assert(
        harness_log_wait(d, "worker 1 \\(pid [0-9]+, generation 1\\) retired", 1, 10));
    ck_assert_int_eq(kill((pid_t)pids[0], SIGCONT), 0);
    harness_expect_response(next, &r, false, "the request made after reload done");
    ck_assert_str_eq(r.body, "code B\n");
    hresp_free(&r);
    harness_close(busy);
    harness_close(next);
    free(a);
    free(b);
}
END_TEST

/* An invalid file on SIGHUP: logged with file and line, nothing changes. */
START_TEST(test_reload_invalid_config)
{
    char *mod = load_module_path("PREFORKD_APPS", "hello");
    struct hdaemon *d = start(mod, 2, true, NULL);
    int admin = stats_admin_port(d);
    char *j, *conf;
    size_t len;

    conf = harness_read_file(d->conf, &len);
    harness_write_file(d->conf, "[server]\nworkers = lots\n", 24);
    kill(d->pid, SIGHUP);
    ck_assert(
        harness_log_wait(d, "preforkd\\.ini:2: \\[server\\] workers: expected", 1, 5));
    ck_assert(harness_log_wait(d, "reload refused", 1, 5));
    j = stats_get(admin);
    ck_assert_msg(strstr(j, "\"reload_state\": \"failed\"") != NULL, "%s", j);
    ck_assert_msg(strstr(j, "workers: expected") != NULL, "%s", j);
    ck_assert_msg(stats_num(j, "generation") == 1, "%s", j);
    free(j);
    load_sync(d->port, 20, true, "Hello, World!\n");
    harness_write_file(d->conf, conf, len);
    free(conf);
    free(mod);
}
END_TEST

struct upgrade {
    struct hdaemon *d;
    pid_t newpid;
};

static pid_t read_pid(const char *path)
{
    size_t len;
    char *s = harness_read_file(path, &len);
    pid_t pid = s ? (pid_t)atol(s) : 0;

    free(s);
    return pid;
}

/* USR2, wait for the new master to serve, then WINCH and TERM the old one. */
static void do_upgrade(void *arg)
{
    struct upgrade *u = arg;
    struct hdaemon *d = u->d;
    char oldbin[160];

    snprintf(oldbin, sizeof oldbin, "%s.oldbin", d->pidfile);
    kill(d->pid, SIGUSR2);
    for (double t0 = harness_now(); harness_now() - t0 < 10; harness_pause(0.01)) {
        u->newpid = read_pid(d->pidfile);
        if (u->newpid > 0 && u->newpid != d->pid &&
            harness_log_count(d, "binary upgrade: adopting") > 0 &&
            harness_log_count(d, "ready: 2 workers serving") >= 2)
            break;
    }
    kill(d->pid, SIGWINCH);
    harness_pause(0.2);
    kill(d->pid, SIGTERM);
}

START_TEST(test_binary_upgrade)
{
    char *mod = load_module_path("PREFORKD_APPS", "hello");
    struct hdaemon *d = start(mod, 2, true, NULL);
    struct upgrade u = {.d = d};
    char oldbin[160];
    pid_t old = d->pid;

    snprintf(oldbin, sizeof oldbin, "%s.oldbin", d->pidfile);
    load_concurrent(d->port, 4, 2000, "Hello, World!\n", NULL, do_upgrade, &u);
    ck_assert_msg(u.newpid > 0 && u.newpid != old, "no new master (%d)", (int)u.newpid);
    ck_assert(harness_daemon_wait_exit(d, 10));
    ck_assert_int_eq(harness_exit_code(d), 0);
    ck_assert_int_eq(access(oldbin, F_OK), -1);
    ck_assert_int_eq(read_pid(d->pidfile), u.newpid);
    load_sync(d->port, 50, true, "Hello, World!\n"); /* the new master serves */
    ck_assert_int_eq(kill(u.newpid, SIGTERM), 0);
    ck_assert_int_eq(waitpid(u.newpid, NULL, 0), u.newpid); /* we are its subreaper */
    free(mod);
}
END_TEST

/* A datagram socket standing in for systemd's notification socket. */
static int notify_listen(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    ck_assert(fd >= 0);
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* One datagram into buf (NUL-terminated), waiting up to 50 ms: false when
 * none came. */
static bool notify_recv(int fd, char *buf, size_t len)
{
    struct timeval tv = {0, 50000};
    ssize_t n;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    n = recv(fd, buf, len - 1, 0);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return true;
}

/* The next datagram that contains want (others are skipped); false at the
 * deadline. */
static bool notify_expect(int fd, const char *want, double timeout)
{
    char buf[1024];

    for (double t0 = harness_now(); harness_now() - t0 < timeout;) {
        if (!notify_recv(fd, buf, sizeof buf))
            continue;
        if (strstr(buf, want))
            return true;
        ck_assert_msg(strstr(buf, "READY=1") == NULL || strcmp(want, "READY=1") == 0 ||
                          strstr(want, "READY") != NULL,
                      "READY=1 out of order while waiting for %s", want);
    }
    return false;
}

START_TEST(test_sd_notify)
{
    char *mod = load_module_path("PREFORKD_APPS", "hello");
    struct hdaemon *d = harness_daemon_new();
    char path[100];
    int fd;

    snprintf(path, sizeof path, "%.80s/notify.sock", d->dir);
    fd = notify_listen(path);
    d->notify_socket = path;
    start(mod, 2, true, d);
    ck_assert_msg(notify_expect(fd, "READY=1", 5), "no READY=1");
    kill(d->pid, SIGHUP);
    ck_assert_msg(notify_expect(fd, "RELOADING=1\nMONOTONIC_USEC=", 5), "no RELOADING=1");
    ck_assert_msg(notify_expect(fd, "READY=1", 5), "no READY=1 after the reload");
    kill(d->pid, SIGTERM);
    ck_assert_msg(notify_expect(fd, "STOPPING=1", 5), "no STOPPING=1");
    ck_assert(harness_daemon_wait_exit(d, 10));
    close(fd);
    free(mod);
}
END_TEST

/* Every datagram that arrives within timeout; true if one contains want. */
static bool notify_seen(int fd, const char *want, double timeout)
{
    char buf[1024];
    bool seen = false;

    for (double t0 = harness_now(); harness_now() - t0 < timeout;)
        if (notify_recv(fd, buf, sizeof buf))
            seen = seen || strstr(buf, want) != NULL;
    return seen;
}

/* A binary upgrade under systemd: the new master says MAINPID= and takes
 * over the watchdog systemd set for the old one's pid; the old master, no
 * longer the main process, says nothing (its STOPPING=1 made systemd stop
 * the service it thought was ending). */
START_TEST(test_sd_notify_upgrade)
{
    char *mod = load_module_path("PREFORKD_APPS", "hello");
    struct hdaemon *d = harness_daemon_new();
    char path[100];
    pid_t old, newpid = 0;
    int fd;

    snprintf(path, sizeof path, "%.80s/notify.sock", d->dir);
    fd = notify_listen(path);
    d->notify_socket = path;
    d->watchdog_usec = "1000000";
    start(mod, 2, true, d);
    old = d->pid;
    ck_assert_msg(notify_expect(fd, "READY=1", 5), "no READY=1");
    ck_assert_msg(notify_expect(fd, "WATCHDOG=1", 3), "no WATCHDOG=1 before the upgrade");
    kill(old, SIGUSR2);
    ck_assert_msg(notify_expect(fd, "MAINPID=", 10), "the new master sent no MAINPID=");
    newpid = read_pid(d->pidfile);
    ck_assert_msg(newpid > 0 && newpid != old, "pidfile: %d", (int)newpid);
    kill(old, SIGWINCH);
    kill(old, SIGTERM);
    ck_assert(harness_daemon_wait_exit(d, 10));
    ck_assert_msg(!notify_seen(fd, "STOPPING=1", 0.5),
                  "the old master sent STOPPING=1 for a service that goes on");
    /* Only the new master is left to ping. */
    ck_assert_msg(notify_expect(fd, "WATCHDOG=1", 3),
                  "no WATCHDOG=1 from the new master");
    load_sync(d->port, 5, true, "Hello, World!\n");
    ck_assert_int_eq(kill(newpid, SIGTERM), 0);
    ck_assert_msg(notify_expect(fd, "STOPPING=1", 10),
                  "no STOPPING=1 from the new master");
    ck_assert_int_eq(waitpid(newpid, NULL, 0), newpid); /* we are its subreaper */
    close(fd);
    free(mod);
}
END_TEST

/* systemd-socket-activate binds, preforkd adopts the socket (LISTEN_FDS). */
START_TEST(test_socket_activation)
{
    char *mod = load_module_path("PREFORKD_APPS", "hello");
    struct hdaemon *d = harness_daemon_new();
    const char *bin = harness_env("PREFORKD_BIN");
    char listen[64];
    int port = harness_free_port();

    ck_assert_msg(access("/usr/bin/systemd-socket-activate", X_OK) == 0,
                  "systemd-socket-activate missing (Debian package systemd)");
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    harness_daemon_config(d, "[server]\nlisten = %s\nworkers = 2\n[app]\nmodule = %s\n",
                          listen, mod);
    d->exec_bin = "/usr/bin/systemd-socket-activate";
    {
        const char *args[] = {"-l", listen, bin, "-c", d->conf, NULL};
        harness_daemon_spawn(d, args);
    }
    /* It starts preforkd on the first connection, which then waits in the
     * inherited backlog: served, not lost. */
    ck_assert(harness_log_wait(d, "Listening on", 1, 10));
    load_sync(port, 20, true, "Hello, World!\n");
    ck_assert(harness_log_wait(d, "socket activation: adopting inherited sockets", 1, 5));
    ck_assert(
        harness_log_wait(d, "listening on 127\\.0\\.0\\.1:[0-9]+ \\(inherited\\)", 1, 5));
    free(mod);
}
END_TEST

/* GET / over a unix socket: the status, or -1 when it cannot connect. */
static int unix_get(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    struct hconn *c = harness_wrap_fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct hresp r;
    int status = -1;

    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (c->fd >= 0 && connect(c->fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        harness_send(c, "GET / HTTP/1.0\r\n\r\n", 18, 5) == 0 &&
        harness_read_response(c, &r, false, 5) == 0) {
        status = r.status;
        hresp_free(&r);
    }
    harness_close(c);
    return status;
}

/* A reload keeps a listener that stays (named by the port it got, too),
 * opens a new one and closes (and unlinks) a removed one. */
START_TEST(test_reload_listeners)
{
    char *mod = load_module_path("PREFORKD_APPS", "hello");
    struct hdaemon *d = harness_daemon_new();
    char a[100], b[100];

    snprintf(a, sizeof a, "%.80s/a.sock", d->dir);
    snprintf(b, sizeof b, "%.80s/b.sock", d->dir);
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0, unix:%s\nworkers = 2\n"
                          "[app]\nmodule = %s\n",
                          a, mod);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 10);
    ck_assert_int_eq(unix_get(a), 200);
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:%d, unix:%s\nworkers = 2\n"
                          "[app]\nmodule = %s\n",
                          d->port, b, mod);
    kill(d->pid, SIGHUP);
    ck_assert(harness_log_wait(d, "reload done: generation 2", 1, 10));
    ck_assert_int_eq(unix_get(b), 200);
    ck_assert_int_eq(access(a, F_OK), -1);
    load_sync(d->port, 10, true, "Hello, World!\n");
    free(mod);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reload");
    TCase *tc = harness_tcase(s, "reload", 90);

    tcase_add_test(tc, test_reload_under_load);
    tcase_add_test(tc, test_reload_new_code);
    tcase_add_test(tc, test_reload_retiring_accepts_nothing);
    tcase_add_test(tc, test_reload_invalid_config);
    tcase_add_test(tc, test_reload_listeners);
    tcase_add_test(tc, test_binary_upgrade);
    tcase_add_test(tc, test_sd_notify);
    tcase_add_test(tc, test_sd_notify_upgrade);
    tcase_add_test(tc, test_socket_activation);
    return harness_run_suite(s);
}
