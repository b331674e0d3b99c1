/*
 * test_faults.c - fault tests against the real daemon, each bounded in
 * time: workers SIGKILLed under load, a SIGSTOPped worker, a worker out of
 * file descriptors, slowloris clients, and an app that fails, hangs or
 * loses a request (request_timeout). Runs in the test process (Check forks
 * one per test); the harness stops every daemon a test starts. Needs the
 * variables `make check` sets (PREFORKD_BIN, PREFORKD_TEST_APPS, ...).
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "load.h"

#define RE_SPAWNED "master: worker [0-9]+ spawned \\(pid ([0-9]+),"
#define GET(path) "GET " path " HTTP/1.1\r\nHost: t\r\n\r\n"
#define BODY_504 "504 Gateway Timeout\n"
#define BODY_500 "500 Internal Server Error\n"

/* ---- the daemon and its workers ---------------------------------------- */

/* Writes the config of a daemon with the test app `app`: `workers`
 * workers, `server` keys added to [server], an admin endpoint, an access
 * log in its dir. */
static struct hdaemon *configure_app(const char *app, int workers, const char *server)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod = load_module_path("PREFORKD_TEST_APPS", app);

    ck_assert_msg(access(mod, R_OK) == 0, "%s: %s", mod, strerror(errno));
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = %d\n%s\n"
                          "[app]\nmodule = %s\n"
                          "[admin]\nlisten = 127.0.0.1:0\n"
                          "[log]\naccess_log = %s/access.log\n",
                          workers, server, mod, d->dir);
    free(mod);
    return d;
}

static struct hdaemon *start_app(const char *app, int workers, const char *server)
{
    struct hdaemon *d = configure_app(app, workers, server);

    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 20);
    return d;
}

static struct hdaemon *start(int workers, const char *server)
{
    return start_app("faulty", workers, server);
}

/* The pids of the serving workers in a /stats body. */
struct pids {
    long pid[16];
    int n;
    int listed; /* worker objects, in any state */
};

static void add_serving(const char *obj, void *arg)
{
    struct pids *p = arg;

    p->listed++;
    if (stats_str_is(obj, "state", "serving") && p->n < 16)
        p->pid[p->n++] = (long)stats_num(obj, "pid");
}

static bool has_pid(const long *pids, int n, long pid)
{
    for (int i = 0; i < n; i++)
        if (pids[i] == pid)
            return true;
    return false;
}

/* Serving workers now (none when /stats does not answer). */
static struct pids serving_pids(int admin)
{
    struct pids p = {.n = 0};
    char *j = stats_get(admin);

    stats_each_worker(j, add_serving, &p);
    free(j);
    return p;
}

struct pool_want {
    int admin;
    int workers;      /* this many listed, all serving */
    const long *gone; /* none of these among them */
    int ngone;
};

static bool pool_is(void *arg)
{
    const struct pool_want *w = arg;
    struct pids p = serving_pids(w->admin);

    for (int i = 0; i < p.n; i++)
        if (has_pid(w->gone, w->ngone, p.pid[i]))
            return false;
    return p.n == w->workers && p.listed == w->workers;
}

/* Waits until exactly `workers` workers are listed, all serving, none of
 * them in gone[0..ngone). */
static void wait_pool(int admin, int workers, const long *gone, int ngone, double timeout)
{
    struct pool_want w = {admin, workers, gone, ngone};
    char *j;

    if (harness_wait_for(pool_is, &w, timeout))
        return;
    j = stats_get(admin);
    ck_abort_msg("not %d serving workers after %.0f s: %s", workers, timeout,
                 j ? j : "(no /stats)");
}

static bool process_gone(void *arg)
{
    return kill((pid_t)(long)arg, 0) == -1 && errno == ESRCH;
}

/* ---- one request ---------------------------------------------------------- */

/* GET path on c; the response in r (for the caller to free). 0, or -1
 * with nothing to free (harness_error()). */
static int get(struct hconn *c, const char *path, struct hresp *r)
{
    char req[128];

    memset(r, 0, sizeof(*r));
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    if (harness_send(c, req, strlen(req), 10) != 0)
        return -1;
    if (harness_read_response(c, r, false, 10) == 0)
        return 0;
    hresp_free(r); /* a failed read leaves what it had allocated */
    return -1;
}

static long worker_pid(const struct hresp *r)
{
    const char *p = hresp_header(r, "X-Worker-Pid");

    return p ? atol(p) : 0;
}

/* GET / on c must give the app's 200 "ok\n"; returns the worker's pid. */
static long expect_ok(struct hconn *c, const char *what)
{
    struct hresp r;
    long pid;

    ck_assert_msg(get(c, "/", &r) == 0, "%s: %s", what, harness_error());
    ck_assert_msg(r.status == 200 && strcmp(r.body, "ok\n") == 0,
                  "%s: status %d, body %s", what, r.status,
                  harness_printable(r.body, r.body_len, 80));
    pid = worker_pid(&r);
    ck_assert_msg(pid > 0, "%s: no X-Worker-Pid", what);
    hresp_free(&r);
    return pid;
}

/* A fresh connection, GET /: the serving worker's pid. */
static long fresh_ok(int port, const char *what)
{
    struct hconn *c = harness_connect(port);
    long pid = expect_ok(c, what);

    harness_close(c);
    return pid;
}

static int spawned_count(struct hdaemon *d)
{
    return harness_log_count(d, RE_SPAWNED);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;

    ck_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rl.rlim_cur = rl.rlim_max;
    ck_assert(setrlimit(RLIMIT_NOFILE, &rl) == 0);
}

/* ---- kill storm ------------------------------------------------------------ */

#define STORM_SECONDS 10.0
#define STORM_EVERY 0.1
#define STORM_CLIENTS 4 /* every other one keep-alive */
#define STORM_KILLS_MAX 512
#define HANG_SECONDS 9.0 /* a failure this slow is a hang, not a reset */

/* One client of the storm. A failed request is one that got no complete
 * response; a response must always be the app's 200 "ok\n". */
struct client {
    int port;
    bool keepalive;
    volatile bool *stop;
    int ok, bad, failed, refused, hung;
    int unknown; /* failures on a connection no response named a pid for */
    long fail_pid[STORM_KILLS_MAX]; /* the worker of each other failure */
    int nfail_pid;
    char why[160];
};

/* Sends one request on *c; counts the outcome; *pid is the worker seen. */
static void client_request(struct client *cl, struct hconn **c, long *pid)
{
    double t0 = harness_now();
    struct hresp r;
    const char *conn;

    if (get(*c, "/", &r) != 0) {
        cl->failed++;
        cl->hung += harness_now() - t0 >= HANG_SECONDS;
        if (*pid > 0 && cl->nfail_pid < STORM_KILLS_MAX)
            cl->fail_pid[cl->nfail_pid++] = *pid;
        else
            cl->unknown++;
        harness_close(*c);
        *c = NULL;
        return;
    }
    *pid = worker_pid(&r);
    if (r.status == 200 && strcmp(r.body, "ok\n") == 0 && *pid > 0)
        cl->ok++;
    else if (cl->bad++ == 0)
        snprintf(cl->why, sizeof cl->why, "status %d, body %.40s", r.status, r.body);
    conn = hresp_header(&r, "Connection");
    if (!cl->keepalive || (conn && strcasecmp(conn, "close") == 0)) {
        harness_close(*c);
        *c = NULL;
    }
    hresp_free(&r);
}

static void *client_run(void *arg)
{
    struct client *cl = arg;
    struct hconn *c = NULL;
    long pid = 0;

    while (!*cl->stop) {
        if (c == NULL) {
            c = harness_try_connect(cl->port);
            pid = 0;
            if (c == NULL) {
                cl->refused++;
                continue;
            }
        }
        client_request(cl, &c, &pid);
    }
    harness_close(c);
    return NULL;
}

struct killed {
    long pid[STORM_KILLS_MAX];
    int n;
};

/* SIGKILLs a random serving worker not killed before; records it. */
static void kill_one(int admin, struct killed *k)
{
    struct pids p = serving_pids(admin);
    long cand[16], pid;
    int n = 0;

    for (int i = 0; i < p.n; i++)
        if (!has_pid(k->pid, k->n, p.pid[i]))
            cand[n++] = p.pid[i];
    if (n == 0 || k->n == STORM_KILLS_MAX)
        return;
    pid = cand[rand() % n];
    if (kill((pid_t)pid, SIGKILL) == 0)
        k->pid[k->n++] = pid;
}

/* Every failure with a known worker was on a killed one, at most one per
 * keep-alive client per kill; all failures at most one per client per kill. */
static void check_storm(const struct client *cl, const struct killed *k)
{
    int nkilled = k->n;
    int failed = 0, ok = 0, unknown = 0;

    for (int i = 0; i < STORM_CLIENTS; i++) {
        ck_assert_msg(cl[i].bad == 0, "client %d: %d wrong responses: %s", i, cl[i].bad,
                      cl[i].why);
        ck_assert_msg(cl[i].refused == 0, "client %d: %d connections refused", i,
                      cl[i].refused);
        ck_assert_msg(cl[i].hung == 0, "client %d: %d requests hung", i, cl[i].hung);
        for (int f = 0; f < cl[i].nfail_pid; f++) {
            ck_assert_msg(has_pid(k->pid, k->n, cl[i].fail_pid[f]),
                          "client %d: a request failed on worker %ld, which "
                          "was not killed",
                          i, cl[i].fail_pid[f]);
            ck_assert_msg(!has_pid(cl[i].fail_pid, f, cl[i].fail_pid[f]),
                          "client %d: two failures on killed worker %ld", i,
                          cl[i].fail_pid[f]);
        }
        ck_assert_msg(cl[i].failed <= nkilled,
                      "client %d: %d failures, %d "
                      "kills",
                      i, cl[i].failed, nkilled);
        failed += cl[i].failed;
        ok += cl[i].ok;
        unknown += cl[i].unknown;
    }
    fprintf(stderr,
            "kill storm: %d kills in %.0f s, %d requests ok, %d failed "
            "(%d before any response on their connection; bound %d)\n",
            nkilled, STORM_SECONDS, ok, failed, unknown, nkilled * STORM_CLIENTS);
    ck_assert_msg(nkilled >= 10, "only %d kills in %.0f s", nkilled, STORM_SECONDS);
    ck_assert_msg(ok > 0, "no request succeeded during the storm");
}

START_TEST(test_kill_storm)
{
    struct hdaemon *d = start(2, "");
    int admin = stats_admin_port(d);
    volatile bool stop = false;
    struct client cl[STORM_CLIENTS];
    pthread_t t[STORM_CLIENTS];
    struct killed *k = calloc(1, sizeof(*k));
    double end;
    char *j;

    ck_assert(k != NULL);
    srand((unsigned)getpid());
    wait_pool(admin, 2, NULL, 0, 10);
    for (int i = 0; i < STORM_CLIENTS; i++) {
        cl[i] = (struct client){.port = d->port, .keepalive = i % 2 == 0, .stop = &stop};
        ck_assert(pthread_create(&t[i], NULL, client_run, &cl[i]) == 0);
    }
    for (end = harness_now() + STORM_SECONDS; harness_now() < end;) {
        kill_one(admin, k);
        harness_pause(STORM_EVERY);
    }
    stop = true;
    for (int i = 0; i < STORM_CLIENTS; i++)
        pthread_join(t[i], NULL);
    check_storm(cl, k);
    /* After the storm: the configured pool serves again, not starved. */
    wait_pool(admin, 2, k->pid, k->n, 20);
    load_sync(d->port, 20, true, "ok\n");
    load_sync(d->port, 20, false, "ok\n");
    j = stats_get(admin);
    /* SIGKILLs from outside that the cgroup's OOM count does not explain
     * are crashes (memlimit.c). */
    ck_assert_msg(stats_num(j, "crash") == k->n && stats_num(j, "oom_kill") == 0,
                  "%d kills, /stats: %s", k->n, j);
    free(j);
    free(k);
}
END_TEST

/* ---- a stopped worker ------------------------------------------------------- */

/* A SIGSTOPped worker sends no heartbeat: the master kills it (SIGQUIT
 * stays pending in a stopped process; the SIGKILL after the grace ends
 * it) and replaces it; /stats counts it under "timeout". Not 1s: a worker
 * beats once a second, so a healthy one can look a second old. */
START_TEST(test_sigstop_worker_replaced)
{
    struct hdaemon *d = start(2, "timeout = 2s");
    int admin = stats_admin_port(d);
    long stopped, gone[1];
    char re[128], *j;

    wait_pool(admin, 2, NULL, 0, 10);
    stopped = serving_pids(admin).pid[0];
    ck_assert_int_eq(kill((pid_t)stopped, SIGSTOP), 0);
    /* The other worker takes every new connection meanwhile. */
    load_sync(d->port, 10, false, "ok\n");
    ck_assert_msg(harness_wait_for(process_gone, (void *)stopped, 20),
                  "stopped worker %ld still there; log:\n%s", stopped,
                  harness_log_tail(d, 1500));
    snprintf(re, sizeof re,
             "worker [0-9]+ \\(pid %ld\\): timeout: no heartbeat "
             "for [0-9.]+s, killing it",
             stopped);
    ck_assert_msg(harness_log_count(d, re) == 1,
                  "no heartbeat line for %ld; "
                  "log:\n%s",
                  stopped, harness_log_tail(d, 1500));
    gone[0] = stopped;
    wait_pool(admin, 2, gone, 1, 20);
    j = stats_get(admin);
    ck_assert_msg(stats_num(j, "timeout") == 1, "%s", j);
    ck_assert_msg(stats_num(j, "oom_kill") == 0 && stats_num(j, "crash") == 0, "%s", j);
    free(j);
    load_sync(d->port, 20, true, "ok\n");
}
END_TEST

/* ---- out of file descriptors ------------------------------------------------ */

#define EMFILE_LIMIT 24 /* RLIMIT_NOFILE of the daemon: a worker uses ~10 */
#define EMFILE_CLIENTS 40

/* utime + stime of pid, in seconds; -1 when unreadable. */
static double cpu_seconds(long pid)
{
    char path[64], *text, *p;
    unsigned long ut = 0, st = 0;
    double secs = -1;

    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    text = harness_read_file(path, NULL);
    /* Fields after the command (which may hold blanks) start at ") ". */
    p = text ? strrchr(text, ')') : NULL;
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
                    &st) == 2)
        secs = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    free(text);
    return secs;
}

/* Runs the daemon under `prlimit --nofile=N:N` (util-linux). */
static struct hdaemon *start_fd_limited(void)
{
    struct hdaemon *d = configure_app("faulty", 1, "header_timeout = 60s");
    char nofile[32];
    const char *args[] = {nofile, harness_env("PREFORKD_BIN"), "-c", d->conf, NULL};

    ck_assert_msg(access("/usr/bin/prlimit", X_OK) == 0,
                  "/usr/bin/prlimit (util-linux) is missing");
    snprintf(nofile, sizeof nofile, "--nofile=%d:%d", EMFILE_LIMIT, EMFILE_LIMIT);
    d->exec_bin = "/usr/bin/prlimit";
    harness_daemon_spawn(d, args);
    harness_daemon_wait_ready(d, 20);
    return d;
}

struct served {
    int port;
    long pid;
};

static bool serves_again(void *arg)
{
    struct served *s = arg;
    struct hconn *c = harness_try_connect(s->port);
    struct hresp r;
    bool ok = false;

    if (c == NULL)
        return false;
    if (get(c, "/", &r) == 0) {
        ok = r.status == 200 && worker_pid(&r) == s->pid;
        hresp_free(&r);
    }
    harness_close(c);
    return ok;
}

START_TEST(test_emfile_no_spin)
{
    struct hdaemon *d = start_fd_limited();
    struct served s = {d->port, fresh_ok(d->port, "before")};
    struct hconn *c[EMFILE_CLIENTS];
    double cpu0, cpu1, t0, wall, share;

    for (int i = 0; i < EMFILE_CLIENTS; i++)
        c[i] = harness_connect(d->port);
    ck_assert_msg(harness_log_wait(d, "accept: pausing .*Too many open files", 1, 10),
                  "no EMFILE pause with %d connections and %d fds; log:\n%s",
                  EMFILE_CLIENTS, EMFILE_LIMIT, harness_log_tail(d, 1500));
    /* Out of fds, with connections waiting: the loop must not spin. */
    cpu0 = cpu_seconds(s.pid);
    t0 = harness_now();
    harness_pause(1.0);
    cpu1 = cpu_seconds(s.pid);
    wall = harness_now() - t0;
    ck_assert_msg(cpu0 >= 0 && cpu1 >= 0, "cannot read /proc/%ld/stat", s.pid);
    share = (cpu1 - cpu0) / wall;
    ck_assert_msg(share < 0.3, "worker used %.0f%% of a CPU while out of fds",
                  share * 100);
    for (int i = 0; i < EMFILE_CLIENTS; i++)
        harness_close(c[i]);
    ck_assert_msg(harness_wait_for(serves_again, &s, 20),
                  "worker %ld does not serve after its fds were freed; log:\n%s", s.pid,
                  harness_log_tail(d, 1500));
    ck_assert_int_eq(spawned_count(d), 1);
}
END_TEST

/* ---- slowloris ------------------------------------------------------------ */

#define LORIS_N 500
#define LORIS_HEADER_TIMEOUT 5.0
#define LORIS_EVERY 0.05 /* a byte on every connection this often */

static const char loris_head[] = "GET /loris HTTP/1.1\r\nHost: t\r\nX-Slow: ";

/* Connections that trickle a request head one byte at a time and never
 * finish it. The thread stops writing to a connection once the server
 * answered or closed it, and records when that happened. */
struct loris {
    int fd[LORIS_N];
    double opened[LORIS_N];
    double ended[LORIS_N]; /* 0 while the server has said nothing */
    size_t sent[LORIS_N];
    volatile int nended; /* ended[] set so far, for the main thread */
    double deadline;     /* stop by then in any case */
};

static int loris_connect(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s",
                  strerror(errno));
    return fd;
}

/* One round: notes what the server answered, then one byte on each. */
static int loris_round(struct loris *l)
{
    struct pollfd p[LORIS_N];
    int open = 0;

    for (int i = 0; i < LORIS_N; i++)
        p[i] = (struct pollfd){l->ended[i] ? -1 : l->fd[i], POLLIN, 0};
    poll(p, LORIS_N, 0);
    for (int i = 0; i < LORIS_N; i++) {
        size_t k = l->sent[i];
        char ch = k < sizeof(loris_head) - 1 ? loris_head[k] : 'a';

        if (p[i].revents != 0 && l->ended[i] == 0) {
            l->ended[i] = harness_now();
            l->nended++;
        }
        if (l->ended[i] != 0)
            continue;
        open++;
        if (send(l->fd[i], &ch, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
            l->sent[i]++;
    }
    return open;
}

static void *loris_run(void *arg)
{
    struct loris *l = arg;

    while (harness_now() < l->deadline && loris_round(l) > 0)
        harness_pause(LORIS_EVERY);
    return NULL;
}

/* Each slowloris connection got a 408 and then the end of the stream. */
static void loris_check_408(struct loris *l)
{
    for (int i = 0; i < LORIS_N; i++) {
        struct hconn *c = harness_wrap_fd(l->fd[i]);
        struct hresp r;

        ck_assert_msg(l->ended[i] - l->opened[i] >= LORIS_HEADER_TIMEOUT - 0.5,
                      "slowloris %d answered after %.2f s (header_timeout "
                      "%.0f s)",
                      i, l->ended[i] - l->opened[i], LORIS_HEADER_TIMEOUT);
        ck_assert_msg(harness_read_response(c, &r, false, 5) == 0, "slowloris %d: %s", i,
                      harness_error());
        ck_assert_msg(r.status == 408, "slowloris %d: status %d", i, r.status);
        hresp_free(&r);
        ck_assert_msg(harness_wait_closed(c, 10) == 1, "slowloris %d: %s", i,
                      harness_error());
        harness_close(c);
    }
}

START_TEST(test_slowloris)
{
    struct hdaemon *d;
    struct loris *l = calloc(1, sizeof(*l));
    pthread_t t;
    int early;

    ck_assert(l != NULL);
    raise_fd_limit(); /* ours, and the daemon's, which inherits it */
    d = start(1, "header_timeout = 5s");
    for (int i = 0; i < LORIS_N; i++) {
        l->fd[i] = loris_connect(d->port);
        l->opened[i] = harness_now();
    }
    l->deadline = harness_now() + LORIS_HEADER_TIMEOUT + 30;
    ck_assert(pthread_create(&t, NULL, loris_run, l) == 0);
    /* Normal clients, one worker, 500 half heads on it. */
    load_sync(d->port, 100, true, "ok\n");
    load_sync(d->port, 100, false, "ok\n");
    early = l->nended;
    pthread_join(t, NULL);
    ck_assert_msg(early == 0,
                  "%d slowloris connections ended while the "
                  "normal requests ran: these did not run alongside them",
                  early);
    ck_assert_msg(l->nended == LORIS_N,
                  "%d of %d slowloris connections "
                  "still open 30 s after header_timeout",
                  LORIS_N - l->nended, LORIS_N);
    loris_check_408(l);
    free(l);
}
END_TEST

/* ---- the app fails ---------------------------------------------------------- */

START_TEST(test_app_error_500)
{
    struct hdaemon *d = start(1, "");
    struct hconn *c = harness_connect(d->port);
    long pid = expect_ok(c, "GET / before");
    struct hresp r;

    ck_assert_msg(get(c, "/fail", &r) == 0, "GET /fail: %s", harness_error());
    ck_assert_int_eq(r.status, 500);
    ck_assert_str_eq(r.body, BODY_500);
    ck_assert_ptr_null(hresp_header(&r, "Connection")); /* still keep-alive */
    hresp_free(&r);
    ck_assert_int_eq(expect_ok(c, "GET / after /fail, same connection"), pid);
    ck_assert_int_eq(fresh_ok(d->port, "GET / after /fail, new connection"), pid);
    ck_assert_int_eq(harness_log_count(d, "handle failed for GET /fail: "
                                          "answering 500"),
                     1);
    ck_assert_int_eq(spawned_count(d), 1);
    harness_close(c);
}
END_TEST

/* Reads c until the server closes it (at most timeout): keeps the first
 * cap - 1 bytes in first (NUL-terminated), returns how many came in all. */
static size_t count_to_close(struct hconn *c, char *first, size_t cap, double timeout)
{
    static char chunk[65536];
    double end = harness_now() + timeout;
    size_t total = 0;

    for (;;) {
        struct pollfd p = {c->fd, POLLIN, 0};
        ssize_t n;

        ck_assert_msg(harness_now() < end,
                      "still open after %.0f s, %zu "
                      "bytes read",
                      timeout, total);
        if (poll(&p, 1, 50) <= 0)
            continue;
        n = recv(c->fd, chunk, sizeof chunk, 0);
        if (n <= 0)
            break;
        if (total < cap - 1)
            memcpy(first + total, chunk,
                   (size_t)n < cap - 1 - total ? (size_t)n : cap - 1 - total);
        total += (size_t)n;
    }
    first[total < cap - 1 ? total : cap - 1] = '\0';
    return total;
}

/* Bytes until the server closes c (at most timeout, 4 KiB), NUL-terminated. */
static char *read_to_close(struct hconn *c, double timeout)
{
    char *text = malloc(4096);

    ck_assert(text != NULL);
    ck_assert_msg(count_to_close(c, text, 4096, timeout) < 4095, "more than 4 KiB: %s",
                  harness_printable(text, strlen(text), 200));
    return text;
}

/* A streamed response the app stops feeding: cut once request_timeout
 * passes without a piece (no last chunk). */
static void check_hang_stream(struct hdaemon *d)
{
    struct hconn *c = harness_connect(d->port);
    char *text;

    harness_send_str(c, GET("/hang-stream"));
    text = read_to_close(c, 10);
    ck_assert_msg(strncmp(text, "HTTP/1.1 200 OK\r\n", 17) == 0 &&
                      strstr(text, "\r\n\r\n8\r\npartial\n\r\n") != NULL &&
                      strstr(text, "\r\n0\r\n\r\n") == NULL,
                  "cut stream: %s", harness_printable(text, strlen(text), 400));
    free(text);
    harness_close(c);
    ck_assert_msg(harness_log_wait(d, "faulty: /hang-stream aborted", 1, 5),
                  "the app's abort callback did not run");
}

/* GET path on a new connection must end in a 504 and a close. */
static void expect_504(int port, const char *path)
{
    struct hconn *c = harness_connect(port);
    struct hresp r;

    ck_assert_msg(get(c, path, &r) == 0, "GET %s: %s", path, harness_error());
    ck_assert_msg(r.status == 504, "GET %s: status %d", path, r.status);
    ck_assert_str_eq(r.body, BODY_504);
    ck_assert_str_eq(hresp_header(&r, "Connection"), "close");
    hresp_free(&r);
    ck_assert_msg(harness_wait_closed(c, 10) == 1, "GET %s: %s", path, harness_error());
    harness_close(c);
}

static bool access_logged(void *arg)
{
    struct hdaemon *d = arg;
    char path[192], *text;
    bool yes;

    snprintf(path, sizeof path, "%s/access.log", d->dir);
    text = harness_read_file(path, NULL);
    yes = text && strstr(text, "\"GET /hang HTTP/1.1\" 504 20 ") != NULL;
    free(text);
    return yes;
}

/* Serves requests on b (keep-alive, worker pid) and on new connections
 * until the server answers on a; returns how many were served. */
static int serve_while_waiting(struct hdaemon *d, struct hconn *a, struct hconn *b,
                               long pid, double timeout)
{
    double end = harness_now() + timeout;
    int served = 0;

    for (;;) {
        struct pollfd p = {a->fd, POLLIN, 0};

        if (poll(&p, 1, 0) == 1)
            return served;
        ck_assert_msg(harness_now() < end,
                      "no answer on the hung request "
                      "after %.0f s; log:\n%s",
                      timeout, harness_log_tail(d, 1500));
        ck_assert_int_eq(expect_ok(b, "keep-alive request meanwhile"), pid);
        ck_assert_int_eq(fresh_ok(d->port, "new connection meanwhile"), pid);
        served += 2;
        harness_pause(0.02);
    }
}

/* An app that takes a request and never answers: with request_timeout =
 * 1s the client gets a 504 after about a second, the app's abort callback
 * runs, every other connection of the same worker is served meanwhile. */
START_TEST(test_app_never_responds)
{
    struct hdaemon *d = start(1, "request_timeout = 1s\ngraceful_timeout = 20s");
    struct hconn *a = harness_connect(d->port), *b = harness_connect(d->port);
    long pid = expect_ok(b, "GET / first");
    struct hresp r;
    double t0, waited;
    int served;

    harness_send_str(a, GET("/hang"));
    t0 = harness_now();
    served = serve_while_waiting(d, a, b, pid, 10);
    ck_assert_msg(harness_read_response(a, &r, false, 5) == 0, "GET /hang: %s",
                  harness_error());
    waited = harness_now() - t0;
    ck_assert_msg(r.status == 504, "GET /hang: status %d", r.status);
    ck_assert_str_eq(r.body, BODY_504);
    ck_assert_str_eq(hresp_header(&r, "Connection"), "close");
    hresp_free(&r);
    ck_assert_msg(waited >= 0.9, "504 after %.2f s, request_timeout 1s", waited);
    ck_assert_msg(served >= 5, "only %d requests served while /hang waited", served);
    ck_assert_int_eq(harness_wait_closed(a, 10), 1);
    harness_close(a);
    ck_assert_msg(harness_log_wait(d, "faulty: /hang aborted", 1, 5),
                  "the app's abort callback did not run");
    check_hang_stream(d);
    expect_504(d->port, "/lost"); /* no abort callback: still a 504 */
    ck_assert_int_eq(expect_ok(b, "keep-alive after the timeouts"), pid);
    ck_assert_int_eq(spawned_count(d), 1);
    ck_assert_msg(harness_wait_for(access_logged, d, 5),
                  "no 504 line for /hang in the access log");
    harness_close(b);
    /* The lost request must not hold the worker until graceful_timeout. */
    ck_assert_msg(harness_daemon_stop(d, SIGTERM, 10),
                  "TERM: not stopped within 10 s (graceful_timeout 20s)");
    ck_assert_int_eq(harness_exit_code(d), 0);
}
END_TEST

/* A client that reads slowly is not the app's silence: while response
 * bytes wait for the client, request_timeout does not run. */
START_TEST(test_request_timeout_spares_slow_reader)
{
    struct hdaemon *d = start_app("stream", 1, "request_timeout = 1s");
    struct hconn *c = harness_connect(d->port);
    const size_t len = 32u << 20; /* far more than the socket buffers hold */
    char req[96], first[4096], *body;
    size_t total;

    /* HTTP/1.0: the body ends with the connection, nothing to parse. */
    snprintf(req, sizeof req, "GET /?bytes=%zu HTTP/1.0\r\n\r\n", len);
    harness_send_str(c, req);
    harness_pause(2.5); /* not reading: the app waits on back-pressure */
    total = count_to_close(c, first, sizeof first, 60);
    body = strstr(first, "\r\n\r\n");
    ck_assert_msg(strncmp(first, "HTTP/1.1 200 ", 13) == 0 && body != NULL,
                  "slow reader: %s", harness_printable(first, strlen(first), 300));
    body += 4;
    ck_assert_uint_eq(total - (size_t)(body - first), len);
    ck_assert(strncmp(body, "abcdefghijklmnopqrstuvwxyzabc", 29) == 0);
    ck_assert_int_eq(harness_log_count(d, "request_timeout"), 0);
    harness_close(c);
}
END_TEST

/* ---- a client fault after a good request ------------------------------------ */

/* A malformed request pipelined behind a good one: the good one's response
 * still comes, then the error, then the close. */
START_TEST(test_pipelined_error_keeps_earlier_response)
{
    struct hdaemon *d = start(1, "");
    struct hconn *c = harness_connect(d->port);
    struct hresp r;

    harness_send_str(c, GET("/") "GET / HTTP/9.9\r\nHost: t\r\n\r\n");
    ck_assert_msg(harness_read_response(c, &r, false, 10) == 0, "first response: %s",
                  harness_error());
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "ok\n");
    hresp_free(&r);
    ck_assert_msg(harness_read_response(c, &r, false, 10) == 0, "second response: %s",
                  harness_error());
    ck_assert_int_eq(r.status, 505);
    hresp_free(&r);
    ck_assert_int_eq(harness_wait_closed(c, 10), 1);
    harness_close(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("faults");

    tcase_add_test(harness_tcase(s, "kill_storm", 90), test_kill_storm);
    tcase_add_test(harness_tcase(s, "sigstop", 90), test_sigstop_worker_replaced);
    tcase_add_test(harness_tcase(s, "emfile", 90), test_emfile_no_spin);
    tcase_add_test(harness_tcase(s, "slowloris", 90), test_slowloris);
    tcase_add_test(harness_tcase(s, "app_error", 90), test_app_error_500);
    tcase_add_test(harness_tcase(s, "app_hang", 90), test_app_never_responds);
    tcase_add_test(harness_tcase(s, "slow_reader", 90),
                   test_request_timeout_spares_slow_reader);
    tcase_add_test(harness_tcase(s, "client_error", 90),
                   test_pipelined_error_keeps_earlier_response);
    return harness_run_suite(s);
}
