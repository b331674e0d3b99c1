/*
 * test_ops.c - integration tests of operating a running preforkd: USR1
 * reopening the error and access logs after logrotate moved them, the
 * access log's lines (combined format, flushed at exit), TTIN/TTOU scaling
 * under load and its bounds, /stats as valid JSON answered while every
 * worker is blocked, /metrics as Prometheus text, and privilege drop of
 * the workers. The real daemon on 127.0.0.1:0, its admin endpoint on a
 * unix socket in the test's temp dir.
 */
#include <check.h>
#include <ctype.h>
#include <pwd.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "load.h"
#include "opsutil.h"

/* ---- the daemon ------------------------------------------------------------ */

struct ops {
    struct hdaemon *d;
    char admin[160];  /* the admin socket's path */
    char access[160]; /* the access log's path */
};

/* A temp dir and paths for a daemon, not started. */
static void prepare(struct ops *o)
{
    o->d = harness_daemon_new();
    snprintf(o->admin, sizeof(o->admin), "%s/admin.sock", o->d->dir);
    snprintf(o->access, sizeof(o->access), "%s/access.log", o->d->dir);
}

/* Starts the prepared daemon with `workers` workers of app (a .so in the
 * directory named by env: PREFORKD_APPS or PREFORKD_TEST_APPS), the admin
 * endpoint on a unix socket, and extra lines for [server] and [log]. */
static void launch(struct ops *o, const char *env, const char *app, int workers,
                   const char *server, const char *log)
{
    char file[64], *mod;

    snprintf(file, sizeof(file), "%s.so", app);
    mod = harness_path(env, file);
    harness_daemon_config(o->d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = %d\n"
                          "pidfile = %s\n%s\n%s\n"
                          "[app]\nmodule = %s\n"
                          "[log]\n%s\n"
                          "[admin]\nlisten = unix:%s\n",
                          workers, o->d->pidfile,
                          server && strstr(server, "graceful_timeout")
                              ? ""
                              : "graceful_timeout = 5s",
                          server ? server : "", mod, log ? log : "", o->admin);
    free(mod);
    harness_daemon_spawn(o->d, NULL);
    harness_daemon_wait_ready(o->d, 10);
}

static void start(struct ops *o, const char *env, const char *app, int workers,
                  const char *server, const char *log)
{
    prepare(o);
    launch(o, env, app, workers, server, log);
}

/* /stats, asserting it answers. */
static char *stats(struct ops *o)
{
    char *j = ops_stats(o->admin);

    ck_assert_msg(j != NULL, "no /stats from %s", o->admin);
    return j;
}

struct want {
    struct ops *o;
    double wanted, serving;
    char *last;
};

static bool counts_are(void *arg)
{
    struct want *w = arg;

    free(w->last);
    w->last = ops_stats(w->o->admin);
    return ops_num(w->last, "workers_wanted") == w->wanted &&
           ops_num(w->last, "workers_serving") == w->serving;
}

/* Waits until /stats says `n` workers wanted and `n` serving. */
static void expect_workers(struct ops *o, int n)
{
    struct want w = {o, n, n, NULL};

    ck_assert_msg(harness_wait_for(counts_are, &w, 15),
                  "want %d workers wanted and serving; /stats: %s", n, w.last);
    free(w.last);
}

static void first_pids(const char *obj, void *arg)
{
    long *pids = arg;

    for (int i = 0; i < 16; i++)
        if (pids[i] == 0) {
            pids[i] = (long)ops_num(obj, "pid");
            return;
        }
}

/* The pids of the live workers (0-terminated, at most 15). */
static void worker_pids(struct ops *o, long pids[16])
{
    char *j = stats(o);

    memset(pids, 0, 16 * sizeof(long));
    ops_each_worker(j, first_pids, pids);
    free(j);
}

/* One request on its own connection; the number of bytes the server sent. */
static size_t raw_request(int port, const char *req)
{
    struct hconn *c = harness_connect(port);
    size_t total = 0;
    char buf[4096];

    harness_send_str(c, req);
    for (double end = harness_now() + 10; harness_now() < end;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    harness_close(c);
    return total;
}

/* ---- access log and USR1 -------------------------------------------------- */

struct grep {
    const char *path, *needle;
    int min;
};

static int count_in(const char *path, const char *needle)
{
    char *t = harness_read_file(path, NULL);
    int n = 0;

    for (const char *p = t; p && (p = strstr(p, needle)) != NULL; p++)
        n++;
    free(t);
    return n;
}

static bool file_has(void *arg)
{
    struct grep *g = arg;

    return count_in(g->path, g->needle) >= g->min;
}

/* Combined-format lines with the right status and body bytes (hello's 14),
 * flushed at exit even though the 1 s timer never ran for them. */
START_TEST(test_access_log_combined)
{
    struct ops o;
    char req[256], want[512], log[256], *text;
    size_t sent[3];

    prepare(&o);
    snprintf(log, sizeof(log), "access_log = %s\naccess_log_format = combined", o.access);
    launch(&o, "PREFORKD_APPS", "hello", 2, NULL, log);
    for (int i = 0; i < 3; i++) {
        snprintf(req, sizeof(req),
                 "GET /combined-%d?q=\"x\" HTTP/1.1\r\nHost: t\r\n"
                 "Referer: http://ref/%d\r\nUser-Agent: ops\"test\r\n"
                 "Connection: close\r\n\r\n",
                 i, i);
        sent[i] = raw_request(o.d->port, req);
    }
    /* Stopped at once: the lines are written at exit, not by the timer. */
    ck_assert(harness_daemon_stop(o.d, SIGTERM, 10));
    text = harness_read_file(o.access, NULL);
    ck_assert_ptr_nonnull(text);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_gt(sent[i], 14); /* head and body did arrive */
        snprintf(want, sizeof(want),
                 "\"GET /combined-%d?q=\\x22x\\x22 HTTP/1.1\" 200 14 "
                 "\"http://ref/%d\" \"ops\\x22test\"\n",
                 i, i);
        ck_assert_msg(strstr(text, want) != NULL, "no line ending %s in:\n%s", want,
                      text);
    }
    ck_assert_msg(strncmp(text, "127.0.0.1 - - [", 15) == 0, "%s", text);
    free(text);
}
END_TEST

/* The server's own error responses are logged too (as nginx does), with
 * "-" for what was not parsed: a request line that is not one, a target
 * too long, a declared body too large, a head that never ends (408). */
START_TEST(test_access_log_errors)
{
    struct ops o;
    char log[256], *text, longreq[9000];

    prepare(&o);
    snprintf(log, sizeof(log),
             "access_log = %s\naccess_log_format = "
             "[$request] $status $body_bytes_sent ua=$http_user_agent",
             o.access);
    launch(&o, "PREFORKD_APPS", "hello", 1, "header_timeout = 1s\nmax_body_size = 10",
           log);
    raw_request(o.d->port, "GARBAGE\r\n\r\n");
    snprintf(longreq, sizeof longreq, "GET /%08200d HTTP/1.1\r\nHost: t\r\n\r\n", 0);
    raw_request(o.d->port, longreq);
    raw_request(o.d->port, "POST /big HTTP/1.1\r\nHost: t\r\nUser-Agent: up\r\n"
                           "Content-Length: 11\r\n\r\n");
    raw_request(o.d->port, "GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    /* Half a head: the 408 comes after header_timeout. */
    ck_assert_uint_gt(raw_request(o.d->port, "GET /slow HTTP/1.1\r\nHost: t\r\n"), 0);
    ck_assert(harness_daemon_stop(o.d, SIGTERM, 10));
    text = harness_read_file(o.access, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "[-] 400 16 ua=-\n"), "no 400 line:\n%s", text);
    ck_assert_msg(strstr(text, "[GET /00000000") && strstr(text, "0000 -] 414 "),
                  "no 414 line:\n%s", text);
    ck_assert_msg(strstr(text, "[POST /big HTTP/1.1] 413 "), "no 413 line:\n%s", text);
    ck_assert_msg(strstr(text, " ua=up\n"), "no User-Agent on the 413 line:\n%s", text);
    ck_assert_msg(strstr(text, "[GET /ok HTTP/1.1] 200 14 ua=-\n"), "no 200 line:\n%s",
                  text);
    ck_assert_msg(strstr(text, "[GET /slow -] 408 20 ua=-\n"), "no 408 line:\n%s", text);
    free(text);
}
END_TEST

/* Sends USR2 to each worker until each one's snapshot line shows up in the
 * new error log: proof that it reopened its logs (USR1 came first). */
static void expect_workers_reopened(struct ops *o, long pids[16])
{
    for (int i = 0; pids[i]; i++) {
        char needle[64];
        struct grep g = {o->d->log, needle, 1};
        double end = harness_now() + 10;
        bool seen = false;

        snprintf(needle, sizeof(needle), "[%ld] worker", pids[i]);
        while (!seen && harness_now() < end) {
            ck_assert_int_eq(kill((pid_t)pids[i], SIGUSR2), 0);
            seen = harness_wait_for(file_has, &g, 0.3);
        }
        ck_assert_msg(seen, "worker %ld never wrote to the new error log", pids[i]);
    }
}

/* logrotate's way: rename both logs, USR1; new lines go to new files and
 * nothing more to the old ones. */
START_TEST(test_usr1_reopen)
{
    struct ops o;
    char log[512], old_log[200], old_access[200], req[128], *text;
    long pids[16];
    size_t old_size;
    struct grep g;

    prepare(&o);
    /* The error log is the file the harness reads (d->log) */
    snprintf(log, sizeof(log),
             "error_log = %s\naccess_log = %s\n"
             "access_log_format = $request_uri $status $worker_pid",
             o.d->log, o.access);
    launch(&o, "PREFORKD_APPS", "hello", 2, NULL, log);
    for (int i = 0; i < 4; i++)
        raw_request(o.d->port,
                    "GET /before HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    g = (struct grep){o.access, "/before 200", 4};
    ck_assert_msg(harness_wait_for(file_has, &g, 5), "access log: %s", o.access);
    worker_pids(&o, pids);

    snprintf(old_log, sizeof(old_log), "%s.1", o.d->log);
    snprintf(old_access, sizeof(old_access), "%s.1", o.access);
    ck_assert_int_eq(rename(o.d->log, old_log), 0);
    ck_assert_int_eq(rename(o.access, old_access), 0);
    ck_assert_int_eq(kill(o.d->pid, SIGUSR1), 0);
    expect_workers_reopened(&o, pids);
    old_size = strlen(text = harness_read_file(old_log, NULL));
    free(text);

    for (int i = 0; i < 6; i++) {
        snprintf(req, sizeof(req),
                 "GET /after-%d HTTP/1.1\r\nHost: t\r\n"
                 "Connection: close\r\n\r\n",
                 i);
        raw_request(o.d->port, req);
    }
    g = (struct grep){o.access, "/after-", 6};
    ck_assert_msg(harness_wait_for(file_has, &g, 5), "new access log has %d of 6 lines",
                  count_in(o.access, "/after-"));
    ck_assert_int_eq(count_in(old_access, "/after-"), 0);
    ck_assert_int_eq(count_in(old_access, "/before 200"), 4);
    /* Nothing reached the old error log once every worker had reopened. */
    text = harness_read_file(old_log, NULL);
    ck_assert_uint_eq(strlen(text), old_size);
    free(text);
    ck_assert(harness_daemon_stop(o.d, SIGTERM, 10));
    ck_assert_int_ge(harness_log_count(o.d, "master: shutdown complete"), 1);
}
END_TEST

/* ---- scaling --------------------------------------------------------------- */

/* Sends sig to the master and waits for its log line saying `n` wanted:
 * the n-th such line (a signal is acted on, even when it changes nothing). */
static void scale_signal(struct ops *o, int sig, int n)
{
    char re[96];
    int before;

    snprintf(re, sizeof(re), "received SIG%s: %d workers wanted", sigabbrev_np(sig), n);
    before = harness_log_count(o->d, re);
    ck_assert_int_eq(kill(o->d->pid, sig), 0);
    ck_assert_msg(harness_log_wait(o->d, re, before + 1, 10), "no \"%s\" line:\n%s", re,
                  harness_log_tail(o->d, 1500));
}

/* TTIN x3 then TTOU x2 under keep-alive and short-lived clients: /stats
 * shows the expected count each time and no request fails; the bounds
 * hold (never above max_workers, never below 1). */
START_TEST(test_ttin_ttou_under_load)
{
    struct ops o;
    struct load_bg g;

    start(&o, "PREFORKD_APPS", "hello", 2, "max_workers = 5", NULL);
    load_bg_start(&g, o.d->port, 4, "Hello, World!\n");
    for (int n = 3; n <= 5; n++) {
        scale_signal(&o, SIGTTIN, n);
        expect_workers(&o, n);
    }
    scale_signal(&o, SIGTTIN, 5); /* at max_workers: stays */
    expect_workers(&o, 5);
    for (int n = 4; n >= 3; n--) {
        scale_signal(&o, SIGTTOU, n);
        expect_workers(&o, n);
    }
    load_bg_stop(&g);
    ck_assert(harness_log_wait(o.d, "retired: scale_down", 2, 10));
}
END_TEST

START_TEST(test_ttou_never_below_one)
{
    struct ops o;
    struct load_bg g;

    start(&o, "PREFORKD_APPS", "hello", 2, NULL, NULL);
    load_bg_start(&g, o.d->port, 4, "Hello, World!\n");
    scale_signal(&o, SIGTTOU, 1);
    expect_workers(&o, 1);
    scale_signal(&o, SIGTTOU, 1);
    scale_signal(&o, SIGTTOU, 1);
    expect_workers(&o, 1);
    load_bg_stop(&g);
}
END_TEST

/* ---- /stats, /metrics ------------------------------------------------------ */

static void expect_valid_stats(struct ops *o, double timeout)
{
    double t0 = harness_now();
    char why[200], *j = ops_stats(o->admin);

    ck_assert_msg(j != NULL, "/stats did not answer");
    ck_assert_msg(harness_now() - t0 < timeout, "/stats took %.2f s", harness_now() - t0);
    ck_assert_msg(ops_json_valid(j, why, sizeof(why)), "invalid JSON: %s\n%s", why, j);
    ck_assert_double_eq(ops_num(j, "pid"), o->d->pid); /* master first */
    ck_assert_ptr_nonnull(strstr(j, "\"workers\": ["));
    free(j);
}

struct busy {
    int n;
};

static void count_busy(const char *obj, void *arg)
{
    struct busy *b = arg;

    b->n += ops_num(obj, "connections") >= 1;
}

static int busy_workers(struct ops *o)
{
    char *j = stats(o);
    struct busy b = {0};

    ops_each_worker(j, count_busy, &b);
    free(j);
    return b.n;
}

/* Blocks every worker's loop with GET /block, one connection at a time: a
 * blocked worker accepts nothing, so each new connection reaches a free
 * worker (or the backlog). Returns the connections (to close later). */
static int block_all(struct ops *o, int workers, struct hconn **conns, int max)
{
    int n = 0;

    while (busy_workers(o) < workers) {
        double end = harness_now() + 2;
        int before = busy_workers(o);
        ck_assert_msg(n < max, "%d connections and still not every worker blocked", n);
        conns[n] = harness_connect(o->d->port);
        harness_send_str(conns[n++], "GET /block HTTP/1.1\r\nHost: t\r\n\r\n");
        while (busy_workers(o) == before && harness_now() < end)
            harness_pause(0.01);
    }
    return n;
}

/* The master answers /stats, /metrics and /healthz while no worker can. */
START_TEST(test_stats_while_blocked)
{
    struct ops o;
    struct hconn *conns[8], *probe;
    struct hresp r;
    int n, status = 0;
    char *body;

    start(&o, "PREFORKD_TEST_APPS", "block", 2, "timeout = 60s\ngraceful_timeout = 1s",
          NULL);
    expect_valid_stats(&o, 1.0);
    n = block_all(&o, 2, conns, 8);
    /* The premise: no worker answers now. */
    probe = harness_connect(o.d->port);
    harness_send_str(probe, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_msg(harness_read_response(probe, &r, false, 1.0) != 0,
                  "a worker answered: not every worker is blocked");
    hresp_free(&r);
    for (int i = 0; i < 5; i++)
        expect_valid_stats(&o, 1.0);
    body = ops_admin_get(o.admin, "/metrics", &status, 1.0);
    ck_assert_msg(body != NULL && status == 200, "/metrics: %d", status);
    free(body);
    body = ops_admin_get(o.admin, "/healthz", &status, 1.0);
    ck_assert_ptr_nonnull(body);
    free(body);
    harness_close(probe);
    for (int i = 0; i < n; i++)
        harness_close(conns[i]);
}
END_TEST

static bool metric_name(const char **p)
{
    const char *s = *p;

    if (!(isalpha((unsigned char)*s) || *s == '_' || *s == ':'))
        return false;
    while (isalnum((unsigned char)*s) || *s == '_' || *s == ':')
        s++;
    *p = s;
    return true;
}

/* {name="value",...}: label names, quoted values with \\ \" \n escapes. */
static bool labels(const char **p)
{
    const char *s = *p;

    if (*s != '{')
        return true;
    for (s++; *s != '}';) {
        if (!metric_name(&s) || *s++ != '=' || *s++ != '"')
            return false;
        for (; *s != '"'; s++) {
            if (*s == '\0' || *s == '\n')
                return false;
            if (*s == '\\' && !strchr("\\\"n", *++s))
                return false;
        }
        s++;
        if (*s == ',')
            s++;
    }
    *p = s + 1;
    return true;
}

static bool sample_value(const char *s)
{
    char *end;

    if (strcmp(s, "+Inf") == 0 || strcmp(s, "-Inf") == 0 || strcmp(s, "NaN") == 0)
        return true;
    strtod(s, &end);
    /* An optional timestamp (integer milliseconds) may follow. */
    if (*end == ' ')
        strtoll(end + 1, &end, 10);
    return end != s && *end == '\0';
}

/* One line of the text format 0.0.4; TYPE must precede a metric's samples. */
static void check_metric_line(char *line, char *typed, size_t tlen)
{
    const char *p = line;
    char name[128];

    if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
        p = line + 7;
        ck_assert_msg(metric_name(&p) && *p == ' ', "bad comment: %s", line);
        if (line[2] == 'T') {
            ck_assert_msg(strstr(" counter gauge histogram summary untyped ", p) !=
                                  NULL &&
                              p[1] != '\0',
                          "bad TYPE: %s", line);
            snprintf(name, sizeof(name), " %.*s ", (int)(p - line - 7), line + 7);
            ck_assert_msg(strstr(typed, name) == NULL, "TYPE twice: %s", line);
            strncat(typed, name + 1, tlen - strlen(typed) - 1);
        }
        return;
    }
    ck_assert_msg(line[0] != '#', "unknown comment form: %s", line);
    ck_assert_msg(metric_name(&p), "bad metric name: %s", line);
    snprintf(name, sizeof(name), " %.*s ", (int)(p - line), line);
    if (strstr(typed, name) == NULL) { /* a histogram's NAME_bucket, _sum, _count */
        static const char *const sfx[] = {"_bucket ", "_sum ", "_count "};
        size_t n = strlen(name);

        for (size_t k = 0; k < 3; k++)
            if (n > strlen(sfx[k]) && strcmp(name + n - strlen(sfx[k]), sfx[k]) == 0) {
                strcpy(name + n - strlen(sfx[k]), " ");
                break;
            }
    }
    ck_assert_msg(strstr(typed, name) != NULL, "sample before its TYPE: %s", line);
    ck_assert_msg(labels(&p) && *p == ' ' && sample_value(p + 1), "bad sample: %s", line);
}

START_TEST(test_metrics_prometheus)
{
    struct ops o;
    char typed[8192] = " ", *body, *line, *nl;
    int status = 0, samples = 0;

    start(&o, "PREFORKD_APPS", "hello", 2, NULL, NULL);
    raw_request(o.d->port, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    body = ops_admin_get(o.admin, "/metrics", &status, 5);
    ck_assert_msg(body != NULL && status == 200, "/metrics: %d", status);
    ck_assert_msg(body[0] != '\0' && body[strlen(body) - 1] == '\n', "%s", body);
    for (line = body; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        ck_assert_msg(*line != '\0', "empty line in /metrics");
        check_metric_line(line, typed, sizeof(typed));
        samples += line[0] != '#';
    }
    ck_assert_int_gt(samples, 3);
    free(body);
    body = ops_admin_get(o.admin, "/metrics", &status, 5);
    ck_assert_ptr_nonnull(strstr(body, "\npreforkd_workers_serving 2\n"));
    free(body);
}
END_TEST

/* ---- privileges ------------------------------------------------------------- */

/* The four ids of a "Uid:" or "Gid:" line of /proc/PID/status. */
static void proc_ids(long pid, const char *field, long ids[4])
{
    char path[64], *text, *p;

    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    text = harness_read_file(path, NULL);
    ck_assert_msg(text != NULL, "%s", path);
    p = strstr(text, field);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(sscanf(p + strlen(field), "%ld %ld %ld %ld", &ids[0], &ids[1],
                            &ids[2], &ids[3]),
                     4);
    free(text);
}

static void expect_ids(long pid, const char *field, long want)
{
    long ids[4];

    proc_ids(pid, field, ids);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(ids[i] == want, "pid %ld %s %ld %ld %ld %ld, want all %ld", pid,
                      field, ids[0], ids[1], ids[2], ids[3], want);
}

/* user = nobody: every worker runs as nobody (real, effective, saved and
 * filesystem ids), the master stays root; requests are served. */
START_TEST(test_privilege_drop)
{
    struct passwd *pw = getpwnam("nobody");
    struct group *gr;
    struct ops o;
    char server[128];
    long pids[16];
    struct hresp r;

    if (getuid() != 0) {
        fprintf(stderr, "test_privilege_drop: skipped (not root)\n");
        return;
    }
    ck_assert_ptr_nonnull(pw);
    gr = getgrgid(pw->pw_gid);
    ck_assert_ptr_nonnull(gr);
    snprintf(server, sizeof(server), "user = nobody\ngroup = %s", gr->gr_name);
    start(&o, "PREFORKD_APPS", "hello", 2, server, NULL);
    harness_roundtrip(o.d->port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    hresp_free(&r);
    worker_pids(&o, pids);
    ck_assert_int_gt(pids[0], 0);
    ck_assert_int_gt(pids[1], 0);
    for (int i = 0; pids[i]; i++) {
        expect_ids(pids[i], "Uid:", (long)pw->pw_uid);
        expect_ids(pids[i], "Gid:", (long)gr->gr_gid);
    }
    expect_ids(o.d->pid, "Uid:", 0);
    expect_ids(o.d->pid, "Gid:", 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = harness_tcase(s, "ops", 90);

    tcase_add_test(tc, test_access_log_combined);
    tcase_add_test(tc, test_access_log_errors);
    tcase_add_test(tc, test_usr1_reopen);
    tcase_add_test(tc, test_ttin_ttou_under_load);
    tcase_add_test(tc, test_ttou_never_below_one);
    tcase_add_test(tc, test_stats_while_blocked);
    tcase_add_test(tc, test_metrics_prometheus);
    tcase_add_test(tc, test_privilege_drop);
    return harness_run_suite(s);
}
