/*
 * test_command.c - integration tests of operators' commands to one worker
 * (src/master/relay.c in the master, src/worker/command.c in the worker), driven with the
 * real preforkctl: snapshot, recycle, the errors for a worker that does not
 * exist and for a command the app does not have, a worker too busy to
 * answer, and a recycle under load that loses nothing.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "opsutil.h"

static char admin[64];

static struct hdaemon *start(const char *app, int workers, const char *extra)
{
    char *mod = load_module_path(strcmp(app, "hello") == 0 ? "PREFORKD_APPS"
                                                           : "PREFORKD_TEST_APPS",
                                 app);
    struct hdaemon *d = harness_daemon_new();

    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = %d\n"
                          "graceful_timeout = 5s\n%s\n[app]\nmodule = %s\n"
                          "[admin]\nlisten = 127.0.0.1:0\n",
                          workers, extra, mod);
    free(mod);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 10);
    snprintf(admin, sizeof admin, "127.0.0.1:%d", stats_admin_port(d));
    return d;
}

/* preforkctl -a ADMIN args...; its exit code, output in *out. */
static int ctl(char **out, const char *a1, const char *a2, const char *a3, const char *a4,
               const char *a5)
{
    const char *argv[] = {
        harness_env("PREFORKD_CTL"), "-a", admin, a1, a2, a3, a4, a5, NULL};

    return ops_run(argv, out, 20);
}

START_TEST(test_snapshot)
{
    struct hdaemon *d = start("hello", 2, "");
    char *out;

    ck_assert_int_eq(ctl(&out, "snapshot", "2", NULL, NULL, NULL), 0);
    ck_assert_msg(strncmp(out, "rss ", 4) == 0 && strstr(out, " uss ") &&
                      strstr(out, "malloc: in use") && strstr(out, "; requests 0;"),
                  "%s", out);
    free(out);
    ck_assert(harness_log_wait(d, "worker 2: command \"snapshot\": 200", 1, 5));
    load_sync(d->port, 10, true, "Hello, World!\n");
}
END_TEST

START_TEST(test_errors)
{
    start("hello", 2, "");
    char *out;

    ck_assert_int_eq(ctl(&out, "snapshot", "9", NULL, NULL, NULL), 1);
    ck_assert_msg(strstr(out, "snapshot 9: 404: no worker 9 (workers are 1..2)"), "%s",
                  out);
    free(out);
    ck_assert_int_eq(ctl(&out, "trace", "dump", "1", NULL, NULL), 1);
    ck_assert_msg(strstr(out, "trace dump: 404: app hello has no command \"trace\": "
                              "trace is for Python workers"),
                  "%s", out);
    free(out);
    ck_assert_int_eq(ctl(&out, "snapshot", "one", NULL, NULL, NULL), 2);
    ck_assert_msg(strstr(out, "expected a worker's number"), "%s", out);
    free(out);
    ck_assert_int_eq(ctl(&out, "trace", "start", "1", "--frames", "x"), 2);
    free(out);
}
END_TEST

/* A recycle on request, under load: the replacement serves first, nothing
 * is lost, and the retirement is counted as "requested". */
START_TEST(test_recycle_under_load)
{
    struct hdaemon *d = start("hello", 2, "");
    struct load_bg bg;
    char *out;

    load_bg_start(&bg, d->port, 4, "Hello, World!\n");
    ck_assert_int_eq(ctl(&out, "recycle", "1", NULL, NULL, NULL), 0);
    ck_assert_msg(strstr(out, "its replacement starts, then it retires"), "%s", out);
    free(out);
    ck_assert(harness_log_wait(d, "retired: requested", 1, 10));
    load_bg_stop(&bg);
    ck_assert_int_eq(ctl(&out, "recycle", "1", NULL, NULL, NULL), 0);
    free(out);
    ck_assert(harness_log_wait(d, "retired: requested", 2, 10));
    out = stats_get(stats_admin_port(d));
    ck_assert_msg(stats_num(out, "requested") == 2, "%s", out);
    free(out);
}
END_TEST

/* A worker whose loop is stuck in a request cannot answer: the command
 * times out with a message that says so, and the master goes on. */
START_TEST(test_busy_worker)
{
    struct hdaemon *d = start("block", 1, "timeout = 60s");
    struct hconn *c = harness_connect(d->port);
    char *out;

    harness_send_str(c, "GET /block HTTP/1.1\r\nHost: t\r\n\r\n");
    ck_assert_int_eq(ctl(&out, "-t", "1", "snapshot", "1", NULL), 1);
    ck_assert_msg(strstr(out, "504: worker 1 (pid") &&
                      strstr(out, "did not answer within 1s: its loop is busy"),
                  "%s", out);
    free(out);
    harness_close(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("command");
    TCase *tc = harness_tcase(s, "command", 60);

    tcase_add_test(tc, test_snapshot);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_recycle_under_load);
    tcase_add_test(tc, test_busy_worker);
    return harness_run_suite(s);
}
