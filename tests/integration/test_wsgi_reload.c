/*
 * test_wsgi_reload.c - the wsgi module across generations and limits, with
 * the real preforkd and preforkctl: SIGHUP with changed Python code under
 * load (a new mold imports it; nothing fails), SIGHUP with code that cannot
 * be imported (refused with the traceback, which preforkctl reload prints;
 * the old generation goes on), a leaking Flask route contained by
 * max_rss with memory_metric = uss with nothing lost, and application
 * factories (app = module:create_app(...), as Gunicorn takes them).
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load.h"
#include "opsutil.h"

/* The app, v1 or v2 (different sizes, so no stale bytecode can pass for
 * the new source), or one that raises while it is imported. */
static void write_app(const char *dir, const char *version)
{
    char path[256], text[512];
    int n;

    snprintf(path, sizeof path, "%s/reloadapp.py", dir);
    if (strcmp(version, "broken") == 0)
        n = snprintf(text, sizeof text,
                     "import json\n"
                     "raise RuntimeError('broken on purpose by the test')\n");
    else
        n = snprintf(
            text, sizeof text,
            "def application(environ, start_response):\n"
            "    body = b'%s\\n'\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain'),\n"
            "                              ('Content-Length', str(len(body)))])\n"
            "    return [body]\n",
            version);
    harness_write_file(path, text, (size_t)n);
}

static struct hdaemon *start_reloadable(const char *extra_app)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod = harness_path("PREFORKD_APPS", "wsgi.so");

    write_app(d->dir, "version one");
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = 2\n"
                          "graceful_timeout = 5s\npidfile = %s\n"
                          "[app]\nmodule = %s\napp = reloadapp:application\n"
                          "python_path = %s\n%s\n[admin]\nlisten = 127.0.0.1:0\n",
                          d->pidfile, mod, d->dir, extra_app);
    free(mod);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 20);
    return d;
}

static bool answers(int port, const char *body)
{
    struct load l = {.port = port, .requests = 1, .body = body};

    load_run(&l);
    return l.ok == 1;
}

/* preforkctl reload against d: exit code, output in *out. */
static int ctl_reload(struct hdaemon *d, char **out)
{
    char admin[64];
    const char *argv[] = {harness_env("PREFORKD_CTL"),
                          "-a",
                          admin,
                          "-p",
                          d->pidfile,
                          "-t",
                          "30",
                          "reload",
                          NULL};

    snprintf(admin, sizeof admin, "127.0.0.1:%d", stats_admin_port(d));
    return ops_run(argv, out, 40);
}

/* New code on SIGHUP, under load: the new mold imports it, the new
 * generation answers with it, and no request fails meanwhile. */
START_TEST(test_reload_new_python_code)
{
    struct hdaemon *d = start_reloadable("");
    struct load_bg bg;
    bool swapped = false;
    char *out;

    ck_assert(answers(d->port, "version one\n"));
    load_bg_start(&bg, d->port, 4, NULL);
    write_app(d->dir, "version two, longer");
    ck_assert_int_eq(ctl_reload(d, &out), 0);
    ck_assert_msg(strstr(out, "reloaded: generation 2"), "%s", out);
    free(out);
    load_bg_stop(&bg);
    for (double t0 = harness_now(); !swapped && harness_now() - t0 < 5;)
        swapped = answers(d->port, "version two, longer\n");
    ck_assert_msg(swapped, "still the old code after the reload");
    load_sync(d->port, 20, true, "version two, longer\n");
}
END_TEST

/* Code that cannot be imported: the reload is refused with the traceback,
 * preforkctl reload prints it and exits 1, the old code goes on serving. */
START_TEST(test_reload_broken_python_code)
{
    struct hdaemon *d = start_reloadable("");
    char *out;

    write_app(d->dir, "broken");
    ck_assert_int_eq(ctl_reload(d, &out), 1);
    ck_assert_msg(strstr(out, "reload refused: app ") &&
                      strstr(out, "Traceback (most recent call last)") &&
                      strstr(out, "reloadapp.py\", line 2") &&
                      strstr(out, "RuntimeError: broken on purpose by the test") &&
                      strstr(out, "still serving generation 1"),
                  "%s", out);
    free(out);
    load_sync(d->port, 20, true, "version one\n");
    write_app(d->dir, "version three, fixed");
    ck_assert_int_eq(ctl_reload(d, &out), 0);
    free(out);
    ck_assert(answers(d->port, "version three, fixed\n"));
}
END_TEST

/* A Flask route that keeps 256 KiB a request is contained by max_rss
 * (uss): workers are replaced, none is seen far past the limit, nothing
 * fails. */
START_TEST(test_flask_leak_max_rss)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod = harness_path("PREFORKD_APPS", "wsgi.so"), *dir;
    struct load l = {.path = "/leak", .requests = 600, .keepalive = true};
    long mem[64];
    int n;

    ck_assert(asprintf(&dir, "%s/tests/wsgi", harness_env("PREFORKD_SRC")) > 0);
    harness_daemon_config(
        d,
        "[server]\nlisten = 127.0.0.1:0\nworkers = 2\n"
        "graceful_timeout = 5s\n"
        "[recycle]\nmax_rss = 40M\nmemory_metric = uss\n"
        "[app]\nmodule = %s\napp = flaskapp:application\npython_path = %s\n",
        mod, dir);
    free(mod);
    free(dir);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 20);
    l.port = d->port;
    load_run(&l);
    ck_assert_msg(l.failed == 0 && l.ok == 600, "%d ok, %d failed: %s", l.ok, l.failed,
                  l.why);
    ck_assert_msg(harness_log_wait(d, "retired: max_rss", 2, 10), "%s",
                  harness_log_tail(d, 2000));
    /* "memory 41.2M" of each retirement: bounded. Under load a worker goes
     * on growing (200 KiB a request) until its replacement serves and its
     * last connections end, so the bound is twice the limit, not the limit. */
    n = harness_log_numbers(d, "retired: max_rss .*; memory ([0-9]+)\\.[0-9]M", 1, mem,
                            64);
    ck_assert_int_ge(n, 2);
    for (int i = 0; i < n; i++)
        ck_assert_msg(mem[i] < 2 * 40, "a worker left at %ldM", mem[i]);
}
END_TEST

/* preforkd -t against an app spec; its exit code, the output in *out. */
static int check_spec(const char *spec, char **out)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod = harness_path("PREFORKD_APPS", "wsgi.so"), *dir;
    const char *args[] = {"-t", "-c", d->conf, NULL};
    int code;

    ck_assert(asprintf(&dir, "%s/tests/wsgi", harness_env("PREFORKD_SRC")) > 0);
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\n[app]\nmodule = %s\n"
                          "app = %s\npython_path = %s\n",
                          mod, spec, dir);
    harness_daemon_spawn(d, args);
    ck_assert(harness_daemon_wait_exit(d, 20));
    code = harness_exit_code(d);
    *out = harness_log_text(d);
    free(mod);
    free(dir);
    return code;
}

/* module:create_app('prod', answer=42) is called once, with those literal
 * arguments; arguments that are not literals, a factory that raises, and a
 * malformed call are errors naming the key. */
START_TEST(test_app_factory)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod = harness_path("PREFORKD_APPS", "wsgi.so"), *dir, *out;

    ck_assert(asprintf(&dir, "%s/tests/wsgi", harness_env("PREFORKD_SRC")) > 0);
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = 2\n"
                          "[app]\nmodule = %s\napp = factory:create_app('prod', "
                          "answer=42)\npython_path = %s\n",
                          mod, dir);
    free(mod);
    free(dir);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 20);
    load_sync(d->port, 10, true, "prod 42\n");

    ck_assert_int_eq(check_spec("factory:create_app()", &out), 0);
    free(out);
    ck_assert_int_eq(check_spec("factory:create_app(__import__('os'))", &out), 78);
    ck_assert_msg(strstr(out, "[app] app: factory:create_app(__import__('os')): the "
                              "factory's arguments must be literals"),
                  "%s", out);
    free(out);
    ck_assert_int_eq(check_spec("factory:broken_factory()", &out), 78);
    ck_assert_msg(strstr(out, "calling the factory factory:broken_factory()") &&
                      strstr(out, "ValueError: the factory fails on purpose"),
                  "%s", out);
    free(out);
    ck_assert_int_eq(check_spec("factory:create_app(", &out), 78);
    ck_assert_msg(strstr(out, "[app] app: expected MODULE:CALLABLE (dotted Python names, "
                              "e.g. myproject.wsgi:application, or a factory: "
                              "myproject:create_app()), got \"factory:create_app(\""),
                  "%s", out);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wsgi_reload");
    TCase *tc = harness_tcase(s, "wsgi_reload", 90);

    tcase_add_test(tc, test_reload_new_python_code);
    tcase_add_test(tc, test_reload_broken_python_code);
    tcase_add_test(tc, test_flask_leak_max_rss);
    tcase_add_test(tc, test_app_factory);
    return harness_run_suite(s);
}
