/*
 * test_ctl.c - integration tests of preforkctl (src/ctl/) against the real
 * daemon: status (table and --json), scale (relative, absolute, clamped,
 * bad arguments), reload (done, refused by the daemon, refused locally for
 * an invalid file), stop, upgrade under load and its rollback, and the exit
 * codes when no daemon is there. The daemon runs on 127.0.0.1:0 with its admin endpoint
 * on a unix socket in the test's temp dir, which preforkctl finds from -c.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "load.h"
#include "opsutil.h"

struct ctl {
    struct hdaemon *d;
    char admin[160];
    char mod[256];   /* hello.so */
    char extra[256]; /* more [server] lines */
};

/* Writes the config: `workers` workers of hello (or mod_path), [admin] on
 * a unix socket, a pidfile. */
static void write_config(struct ctl *c, int workers, const char *mod_path)
{
    harness_daemon_config(
        c->d,
        "[server]\nlisten = 127.0.0.1:0\nworkers = %d\nmax_workers = 6\n"
        "pidfile = %s\ngraceful_timeout = 5s\n%s\n"
        "[app]\nmodule = %s\n"
        "[admin]\nlisten = unix:%s\n",
        workers, c->d->pidfile, c->extra, mod_path ? mod_path : c->mod, c->admin);
}

static void start(struct ctl *c, int workers, const char *extra)
{
    char *mod = harness_path("PREFORKD_APPS", "hello.so");

    snprintf(c->mod, sizeof(c->mod), "%s", mod);
    free(mod);
    c->d = harness_daemon_new();
    snprintf(c->admin, sizeof(c->admin), "%s/admin.sock", c->d->dir);
    snprintf(c->extra, sizeof(c->extra), "%s", extra ? extra : "");
    write_config(c, workers, NULL);
    harness_daemon_spawn(c->d, NULL);
    harness_daemon_wait_ready(c->d, 10);
}

/* preforkctl -c CONF ARGS...: the exit code; *out holds what it printed. */
static int ctl(struct ctl *c, char **out, const char *a1, const char *a2)
{
    const char *argv[] = {harness_env("PREFORKD_CTL"), "-c", c->d->conf, a1, a2, NULL};

    return ops_run(argv, out, 90);
}

/* Runs preforkctl and asserts its exit code and that want is in its output. */
static void expect_ctl(struct ctl *c, int code, const char *want, const char *a1,
                       const char *a2)
{
    char *out;
    int rc = ctl(c, &out, a1, a2);

    ck_assert_msg(rc == code, "preforkctl %s %s: exit %d, want %d; output:\n%s", a1,
                  a2 ? a2 : "", rc, code, out);
    ck_assert_msg(want == NULL || strstr(out, want) != NULL,
                  "preforkctl %s %s: no \"%s\" in:\n%s", a1, a2 ? a2 : "", want, out);
    free(out);
}

static double stat_num(struct ctl *c, const char *key)
{
    char *j = ops_stats(c->admin);
    double v = ops_num(j, key);

    ck_assert_msg(j != NULL, "no /stats");
    free(j);
    return v;
}

static bool path_gone(void *path)
{
    return access(path, F_OK) < 0 && errno == ENOENT;
}

/* ---- status ------------------------------------------------------------------ */

struct rows {
    const char *out;
    int found;
};

static void row_for(const char *obj, void *arg)
{
    struct rows *r = arg;
    char pid[32];

    snprintf(pid, sizeof(pid), " %.0f ", ops_num(obj, "pid"));
    r->found += strstr(r->out, pid) != NULL;
}

START_TEST(test_status)
{
    struct ctl c;
    char *out, *j, why[200], master[64];
    struct rows rows;
    struct stat st;

    start(&c, 2, NULL);
    /* Only the owner may talk to the admin socket (docs/security.md). */
    ck_assert_int_eq(stat(c.admin, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    load_sync(c.d->port, 7, false, "Hello, World!\n");
    ck_assert_int_eq(ctl(&c, &out, "status", NULL), 0);
    ck_assert_msg(strstr(out, "\nresponses: 7 (1xx 0, 2xx 7, 3xx 0, 4xx 0, 5xx 0)\n"),
                  "%s", out);
    snprintf(master, sizeof(master), "master %d: running, ready, generation 1",
             (int)c.d->pid);
    ck_assert_msg(strstr(out, master) != NULL, "%s", out);
    ck_assert_msg(strstr(out, "2 of 2 workers serving") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "PID") && strstr(out, "GROW/1K") && strstr(out, "CONNS") &&
                      strstr(out, "\nretired: max_requests 0"),
                  "%s", out);
    j = ops_stats(c.admin);
    rows = (struct rows){out, 0};
    ops_each_worker(j, row_for, &rows);
    ck_assert_msg(rows.found == 2, "%d of 2 worker rows in:\n%s", rows.found, out);
    free(j);
    free(out);

    ck_assert_int_eq(ctl(&c, &out, "status", "--json"), 0);
    ck_assert_msg(ops_json_valid(out, why, sizeof(why)), "%s: %s", why, out);
    ck_assert_double_eq(ops_num(out, "pid"), c.d->pid);
    free(out);
    expect_ctl(&c, 2, "usage", "status", "--yaml");
    expect_ctl(&c, 2, "unknown command \"stats\"", "stats", NULL);
}
END_TEST

/* No daemon, or no way to find it: 69; an unreadable file: 1. */
START_TEST(test_unreachable)
{
    struct ctl c;
    const char *argv[] = {harness_env("PREFORKD_CTL"), "-c", "/nonexistent/preforkd.ini",
                          "status", NULL};
    char *out;

    start(&c, 1, NULL);
    ck_assert(harness_daemon_stop(c.d, SIGTERM, 10));
    expect_ctl(&c, 69, "admin endpoint unix:", "status", NULL);
    expect_ctl(&c, 69, "pidfile", "stop", NULL);
    expect_ctl(&c, 69, NULL, "reload", NULL);
    ck_assert_int_eq(ops_run(argv, &out, 10), 1);
    ck_assert_msg(strstr(out, "/nonexistent/preforkd.ini") != NULL, "%s", out);
    free(out);
}
END_TEST

/* ---- scale ------------------------------------------------------------------- */

START_TEST(test_scale)
{
    struct ctl c;

    start(&c, 2, NULL);
    expect_ctl(&c, 0, "workers: 4 wanted, 4 serving", "scale", "+2");
    ck_assert_double_eq(stat_num(&c, "workers_serving"), 4);
    expect_ctl(&c, 0, "workers: 3 wanted, 3 serving", "scale", "-1");
    expect_ctl(&c, 0, "workers: 1 wanted, 1 serving", "scale", "1");
    expect_ctl(&c, 0, "clamped to 1 (bounds 1..6)", "scale", "-5");
    ck_assert_double_eq(stat_num(&c, "workers_wanted"), 1);
    expect_ctl(&c, 0, "clamped to 6 (bounds 1..6)", "scale", "50");
    ck_assert_double_eq(stat_num(&c, "workers_serving"), 6);
    expect_ctl(&c, 2, "expected +N, -N or N, got \"x\"", "scale", "x");
    expect_ctl(&c, 2, "got \"+\"", "scale", "+");
    expect_ctl(&c, 2, "usage", "scale", NULL);
    ck_assert_double_eq(stat_num(&c, "workers_wanted"), 6);
}
END_TEST

/* ---- reload ------------------------------------------------------------------ */

START_TEST(test_reload)
{
    struct ctl c;
    char bad[256];

    start(&c, 2, NULL);
    write_config(&c, 3, NULL);
    expect_ctl(&c, 0, "reloaded: generation 2 serving (3 of 3 workers)", "reload", NULL);
    ck_assert_double_eq(stat_num(&c, "workers_serving"), 3);
    /* A module the daemon cannot load: refused by the daemon, which goes
     * on with generation 2; preforkctl says why and fails. */
    snprintf(bad, sizeof(bad), "%s/missing.so", c.d->dir);
    write_config(&c, 2, bad);
    {
        char *out;
        ck_assert_int_eq(ctl(&c, &out, "reload", NULL), 1);
        /* The daemon's reason, on the same line: the mold's own error. */
        ck_assert_msg(strstr(out, "reload refused: app ") && strstr(out, "missing.so") &&
                          strstr(out, "; still serving generation 2") &&
                          !strstr(out, "lines above") && !strstr(out, "):\n"),
                      "%s", out);
        free(out);
    }
    ck_assert_double_eq(stat_num(&c, "generation"), 2);
    ck_assert_double_eq(stat_num(&c, "workers_serving"), 3);
    /* An invalid file: the daemon would refuse it for the same errors, so
     * preforkctl says so without signalling anything, and does not suggest
     * reaching the daemon some other way. */
    harness_daemon_config(c.d, "[server]\nworkers = many\n");
    {
        char *out;
        ck_assert_int_eq(ctl(&c, &out, "reload", NULL), 1);
        ck_assert_msg(strstr(out, ":2: [server] workers: ") &&
                          strstr(out, "is not valid (above): nothing was sent") &&
                          !strstr(out, "-a") && !strstr(out, "cannot find"),
                      "%s", out);
        free(out);
    }
    write_config(&c, 2, NULL);
    expect_ctl(&c, 0, "reloaded: generation 3", "reload", NULL);
    ck_assert_int_eq(harness_log_count(c.d, "received SIGHUP"), 3);
}
END_TEST

/* ---- stop, upgrade ----------------------------------------------------------- */

START_TEST(test_stop)
{
    struct ctl c;

    start(&c, 2, NULL);
    expect_ctl(&c, 0, "stopped: master", "stop", NULL);
    ck_assert(harness_daemon_wait_exit(c.d, 5));
    ck_assert_int_eq(harness_exit_code(c.d), 0);
    ck_assert(harness_daemon_group_gone(c.d, 5));
    ck_assert_int_eq(access(c.d->pidfile, F_OK), -1);
}
END_TEST

/* USR2, wait for the new master, WINCH and TERM the old one: preforkctl
 * does it all; no request fails; the new master serves and stops. */
START_TEST(test_upgrade)
{
    struct ctl c;
    struct load_bg g;
    char *out, want[64];
    pid_t old;
    int rc;

    start(&c, 2, NULL);
    old = c.d->pid;
    load_bg_start(&g, c.d->port, 1, NULL); /* one keep-alive client */
    rc = ctl(&c, &out, "upgrade", NULL);
    ck_assert_msg(rc == 0, "preforkctl upgrade: exit %d; output:\n%s", rc, out);
    snprintf(want, sizeof(want), "(was %d)", (int)old);
    ck_assert_msg(strstr(out, "upgraded: master ") && strstr(out, want), "%s", out);
    free(out);
    load_bg_stop(&g);
    ck_assert(harness_daemon_wait_exit(c.d, 5)); /* the old master */
    ck_assert_int_eq(harness_exit_code(c.d), 0);
    ck_assert(stat_num(&c, "pid") != old);
    expect_ctl(&c, 0, "stopped: master", "stop", NULL);
    /* The new master took over the admin socket's file and removes it. */
    ck_assert_msg(harness_wait_for(path_gone, c.admin, 10),
                  "%s outlived the master that owned it", c.admin);
}
END_TEST

struct admin_pid {
    struct ctl *c;
    pid_t pid;  /* what /stats says, 0 when it did not answer */
    pid_t not ; /* wait for any pid but this one */
    pid_t is;   /* or for this one */
};

static bool admin_pid_seen(void *arg)
{
    struct admin_pid *a = arg;
    char *j = ops_stats(a->c->admin);

    a->pid = j ? (pid_t)ops_num(j, "pid") : 0;
    free(j);
    return a->pid > 0 && (a->is ? a->pid == a->is : a->pid != a->not );
}

/* Rolling back an upgrade (docs/operations.md): the new master leaves
 * before the old one was told to retire; the old master takes back its
 * pidfile and admin endpoint, at the same paths, and serves on. */
START_TEST(test_upgrade_rollback)
{
    struct ctl c;
    struct admin_pid a = {.c = &c};
    pid_t old;
    size_t len;
    char *pid;

    start(&c, 2, NULL);
    old = a.not = c.d->pid;
    ck_assert_int_eq(kill(old, SIGUSR2), 0);
    ck_assert_msg(harness_wait_for(admin_pid_seen, &a, 10), "no new master on %s",
                  c.admin);
    ck_assert_int_eq(kill(a.pid, SIGQUIT), 0);
    ck_assert(harness_log_wait(c.d,
                               "binary upgrade: new master \\(pid [0-9]+\\) "
                               ".*this master goes on",
                               1, 10));
    a.is = old;
    ck_assert_msg(harness_wait_for(admin_pid_seen, &a, 10),
                  "the old master does not answer on %s (last pid %d)", c.admin,
                  (int)a.pid);
    pid = harness_read_file(c.d->pidfile, &len);
    ck_assert_msg(pid != NULL && atol(pid) == old, "pidfile: %s", pid ? pid : "(none)");
    free(pid);
    load_sync(c.d->port, 20, true, "Hello, World!\n");
    expect_ctl(&c, 0, "stopped: master", "stop", NULL);
    ck_assert(harness_daemon_wait_exit(c.d, 10));
    ck_assert_int_eq(harness_exit_code(c.d), 0);
    ck_assert_msg(harness_wait_for(path_gone, c.admin, 10), "%s left behind", c.admin);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ctl");
    TCase *tc = harness_tcase(s, "ctl", 120);

    tcase_add_test(tc, test_status);
    tcase_add_test(tc, test_unreachable);
    tcase_add_test(tc, test_scale);
    tcase_add_test(tc, test_reload);
    tcase_add_test(tc, test_stop);
    tcase_add_test(tc, test_upgrade);
    tcase_add_test(tc, test_upgrade_rollback);
    return harness_run_suite(s);
}
