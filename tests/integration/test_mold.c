/*
 * test_mold.c - integration tests of the mold (src/mold/mold.c, src/master/spawn.c):
 * the master never loads the app, workers are the master's children forked
 * from the mold with the app's fork hooks around each fork, a mold that
 * dies is replaced while the workers go on serving, an app that cannot
 * load stops the start or refuses the reload with its error, and the
 * master answers while the app is still loading.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load.h"

struct moldy {
    struct hdaemon *d;
    char hold[160], fail[160];
    int admin;
};

static void configure(struct moldy *m, int workers)
{
    char *mod = load_module_path("PREFORKD_TEST_APPS", "moldy");

    m->d = harness_daemon_new();
    snprintf(m->hold, sizeof m->hold, "%s/hold", m->d->dir);
    snprintf(m->fail, sizeof m->fail, "%s/fail", m->d->dir);
    harness_daemon_config(m->d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = %d\n"
                          "preload = true\ngraceful_timeout = 5s\n"
                          "[app]\nmodule = %s\nhold_file = %s\nfail_file = %s\n"
                          "[admin]\nlisten = 127.0.0.1:0\n",
                          workers, mod, m->hold, m->fail);
    free(mod);
}

static void start(struct moldy *m, int workers)
{
    configure(m, workers);
    harness_daemon_spawn(m->d, NULL);
    harness_daemon_wait_ready(m->d, 10);
    m->admin = stats_admin_port(m->d);
}

/* The pid of the n-th mold started (1-based), from the master's log. */
static pid_t mold_pid(struct hdaemon *d, int n)
{
    long pids[8];
    int got;

    ck_assert(harness_log_wait(d, "master: mold started \\(pid [0-9]+", n, 10));
    got = harness_log_numbers(d, "master: mold started \\(pid ([0-9]+)", 1, pids, 8);
    ck_assert_int_ge(got, n);
    return (pid_t)pids[n - 1];
}

static bool maps_has(pid_t pid, const char *needle)
{
    char path[64], *maps;
    bool has;

    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    maps = harness_read_file(path, NULL);
    ck_assert_msg(maps != NULL, "cannot read %s", path);
    has = strstr(maps, needle) != NULL;
    free(maps);
    return has;
}

/* "pid P ppid Q prepared N parent M" from one request. */
static void ask(int port, long v[4])
{
    struct hresp r;

    harness_roundtrip(port, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(sscanf(r.body, "pid %ld ppid %ld prepared %ld parent %ld", &v[0],
                            &v[1], &v[2], &v[3]),
                     4);
    hresp_free(&r);
}

/* The app is mapped in the mold and the workers, never in the master; the
 * workers are the master's children; the hooks ran around each fork. */
START_TEST(test_master_never_loads_the_app)
{
    struct moldy m;
    pid_t mold;
    long v[4];

    start(&m, 2);
    mold = mold_pid(m.d, 1);
    ck_assert(maps_has(mold, "moldy.so"));
    ck_assert_msg(!maps_has(m.d->pid, "moldy.so"), "the master mapped the app");
    ask(m.d->port, v);
    ck_assert_int_eq(v[1], m.d->pid);
    ck_assert(maps_has((pid_t)v[0], "moldy.so"));
    /* fork_prepare ran before the fork that made this worker, fork_parent
     * only after it (in the mold), once for each fork before. */
    ck_assert_int_ge(v[2], 1);
    ck_assert_int_eq(v[3], v[2] - 1);
}
END_TEST

static bool serving_is(void *arg)
{
    struct moldy *m = arg;
    char *j = stats_get(m->admin);
    bool ok = j && stats_num(j, "workers_serving") == 3;

    free(j);
    return ok;
}

/* SIGKILL to the mold: the workers go on serving, a new mold starts, and
 * it forks the next worker (SIGTTIN). */
START_TEST(test_mold_killed)
{
    struct moldy m;
    pid_t mold, again;
    long v[4];

    start(&m, 2);
    mold = mold_pid(m.d, 1);
    ck_assert_int_eq(kill(mold, SIGKILL), 0);
    ck_assert(harness_log_wait(m.d,
                               "mold \\(pid [0-9]+\\) killed by signal 9.*starting "
                               "another",
                               1, 5));
    load_sync(m.d->port, 20, true, NULL);
    again = mold_pid(m.d, 2);
    ck_assert_int_ne(again, mold);
    ck_assert(harness_log_wait(m.d, "master: mold ready", 2, 10));
    kill(m.d->pid, SIGTTIN);
    ck_assert_msg(harness_wait_for(serving_is, &m, 10), "%s",
                  harness_log_tail(m.d, 2000));
    ask(m.d->port, v);
    ck_assert_int_eq(v[1], m.d->pid);
}
END_TEST

/* An app that cannot be loaded at start: exit 70, with the app's error. */
START_TEST(test_app_cannot_load)
{
    struct moldy m;

    configure(&m, 2);
    harness_write_file(m.fail, "x", 1);
    harness_daemon_spawn(m.d, NULL);
    ck_assert(harness_daemon_wait_exit(m.d, 10));
    ck_assert_int_eq(harness_exit_code(m.d), 70);
    ck_assert_int_eq(harness_log_count(m.d, "mold: moldy: load fails on purpose"), 1);
    ck_assert_int_eq(harness_log_count(m.d, "master: the app cannot start"), 1);
    ck_assert(harness_daemon_group_gone(m.d, 5));
}
END_TEST

/* A reload whose app cannot be loaded is refused with the app's error (in
 * /stats, for preforkctl reload), and the old generation goes on; once
 * the cause is gone, the next reload works. */
START_TEST(test_reload_cannot_load)
{
    struct moldy m;
    char *j;

    start(&m, 2);
    harness_write_file(m.fail, "x", 1);
    kill(m.d->pid, SIGHUP);
    ck_assert(harness_log_wait(m.d,
                               "reload refused: app .*moldy.so could not be "
                               "loaded \\(the new mold exited with status 70\\)",
                               1, 10));
    j = stats_get(m.admin);
    ck_assert_msg(strstr(j, "\"reload_state\": \"failed\"") != NULL, "%s", j);
    ck_assert_msg(strstr(j, "moldy: load fails on purpose") != NULL, "%s", j);
    ck_assert_int_eq(stats_num(j, "generation"), 1);
    free(j);
    load_sync(m.d->port, 20, true, NULL);
    unlink(m.fail);
    kill(m.d->pid, SIGHUP);
    ck_assert(harness_log_wait(m.d, "reload done: generation 2", 1, 10));
}
END_TEST

static bool healthz_answers(void *arg)
{
    struct moldy *m = arg;
    struct hconn *c = harness_try_connect(m->admin);
    struct hresp r;
    bool ok;

    if (c == NULL)
        return false;
    harness_send_str(c, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
    ok = harness_read_response(c, &r, false, 2) == 0 && r.status != 0;
    hresp_free(&r);
    harness_close(c);
    return ok;
}

/* While the app loads (slowly) in the mold, the master answers its admin
 * endpoint; while a reload's app loads, the old generation serves. */
START_TEST(test_master_answers_while_loading)
{
    struct moldy m;

    configure(&m, 2);
    harness_write_file(m.hold, "x", 1);
    harness_daemon_spawn(m.d, NULL);
    m.admin = stats_admin_port(m.d);
    ck_assert(harness_wait_for(healthz_answers, &m, 5));
    ck_assert_int_eq(harness_log_count(m.d, "master: ready"), 0);
    unlink(m.hold);
    harness_daemon_wait_ready(m.d, 10);
    harness_write_file(m.hold, "x", 1);
    kill(m.d->pid, SIGHUP);
    ck_assert(harness_log_wait(m.d, "master: mold started", 2, 5));
    load_sync(m.d->port, 50, true, NULL);
    ck_assert_int_eq(harness_log_count(m.d, "reload done"), 0);
    unlink(m.hold);
    ck_assert(harness_log_wait(m.d, "reload done: generation 2", 1, 10));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mold");
    TCase *tc = harness_tcase(s, "mold", 30);

    tcase_add_test(tc, test_master_never_loads_the_app);
    tcase_add_test(tc, test_mold_killed);
    tcase_add_test(tc, test_app_cannot_load);
    tcase_add_test(tc, test_reload_cannot_load);
    tcase_add_test(tc, test_master_answers_while_loading);
    return harness_run_suite(s);
}
