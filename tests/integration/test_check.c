/*
 * test_check.c - preforkd -t and -T against the real binary (src/check/check.c,
 * src/check/dump.c): what start-up would fail on is found by -t, in the one
 * format "FILE:LINE: [section] key: message", in line order, then
 * "configuration invalid" and exit 78: a missing user or group, a log file
 * that cannot be opened (the access log as the workers' user), a listening
 * address another process holds (but not one the running preforkd of the
 * file holds), a module that does not load; -t leaves no file behind; -T
 * prints an INI file that -t accepts. Each preforkd -t runs to its exit
 * within a deadline, its stdout and stderr kept apart. 127.0.0.1 only.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"

#define NOUSER "pf-no-such-user"
#define NOGROUP "pf-no-such-group"

struct run {
    int code;  /* exit status, or -signal */
    char *out; /* stdout */
    char *err; /* stderr */
};

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

/* Runs preforkd with args (NULL-terminated, after argv[0]) to its end,
 * within 30 s; stdout and stderr go to files of dir and are read back. */
static struct run run_preforkd(const char *dir, const char *const *args)
{
    const char *bin = harness_env("PREFORKD_BIN");
    char out[160], err[160];
    const char *argv[16] = {bin};
    double deadline = harness_now() + 30;
    struct run r = {0};
    pid_t pid;
    int st, n = 1;

    for (; args[n - 1] != NULL && n < 15; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    snprintf(out, sizeof(out), "%s/run.out", dir);
    snprintf(err, sizeof(err), "%s/run.err", dir);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(127);
        execv(bin, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (harness_now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            ck_abort_msg("preforkd %s still running after 30 s", args[0]);
        }
        harness_pause(0.01);
    }
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    r.out = harness_read_file(out, NULL);
    r.err = harness_read_file(err, NULL);
    ck_assert(r.out != NULL && r.err != NULL);
    unlink(out);
    unlink(err);
    return r;
}

/* preforkd -t -c conf of d. */
static struct run check(struct hdaemon *d)
{
    const char *args[] = {"-t", "-c", d->conf, NULL};

    return run_preforkd(d->dir, args);
}

/* A line of r's stderr starts with "CONF:LINE: start". */
static bool has_line(const struct run *r, const struct hdaemon *d, int line,
                     const char *start)
{
    char want[1024];

    snprintf(want, sizeof(want), "%s:%d: %s", d->conf, line, start);
    for (const char *p = r->err; (p = strstr(p, want)) != NULL; p++)
        if (p == r->err || p[-1] == '\n')
            return true;
    return false;
}

/* The run ended as an invalid file does: 78, and the last line says so. */
static void assert_invalid(const struct run *r, const struct hdaemon *d)
{
    char last[300];
    size_t n = strlen(r->err), m;

    snprintf(last, sizeof(last), "preforkd: %s: configuration invalid\n", d->conf);
    m = strlen(last);
    ck_assert_msg(r->code == 78, "exit %d, want 78; stderr:\n%s", r->code, r->err);
    ck_assert_msg(n >= m && strcmp(r->err + n - m, last) == 0,
                  "stderr does not end with \"%s\":\n%s", last, r->err);
    ck_assert_msg(strstr(r->err, " [error] ") == NULL,
                  "a log line instead of FILE:LINE: ...:\n%s", r->err);
    ck_assert_msg(r->out[0] == '\0', "-t wrote to stdout:\n%s", r->out);
}

static void assert_ok(const struct run *r, const struct hdaemon *d)
{
    char last[300];
    size_t n = strlen(r->err), m;

    snprintf(last, sizeof(last), "preforkd: %s: configuration ok\n", d->conf);
    m = strlen(last);
    ck_assert_msg(r->code == 0 && n >= m && strcmp(r->err + n - m, last) == 0,
                  "exit %d, want 0 and \"%s\"; stderr:\n%s", r->code, last, r->err);
}

/* preforkd -t refuses d's file with, among its errors, a line that starts
 * with "CONF:LINE: start". */
static void expect_error(struct hdaemon *d, int line, const char *start)
{
    struct run r = check(d);

    assert_invalid(&r, d);
    ck_assert_msg(has_line(&r, d, line, start), "no \"%s:%d: %s\" in\n%s", d->conf, line,
                  start, r.err);
    run_free(&r);
}

static char *hello(void)
{
    return harness_path("PREFORKD_APPS", "hello.so");
}

/* A test that switches to user nobody needs root, and nobody; otherwise it
 * says it is skipped. */
static bool as_nobody(const char *test)
{
    if (getpwnam("nobody") != NULL && geteuid() == 0)
        return true;
    printf("skip %s: needs root and user nobody\n", test);
    return false;
}

/* The names in dir, sorted into one string, for "nothing was left". */
static char *listing(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    char *all = strdup(""), *more;

    ck_assert(n >= 0);
    for (int i = 0; i < n; i++) {
        ck_assert(asprintf(&more, "%s%s\n", all, names[i]->d_name) > 0);
        free(all);
        all = more;
        free(names[i]);
    }
    free(names);
    return all;
}

/* ---- user and group ------------------------------------------------------ */

START_TEST(test_user_missing)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod = hello(), want[128];
    struct run r;

    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nuser = " NOUSER "\n"
                          "[app]\nmodule = %s\n",
                          mod);
    r = check(d);
    snprintf(want, sizeof(want), "[server] user: \"%s\": no such user", NOUSER);
    if (geteuid() == 0) {
        assert_invalid(&r, d);
        ck_assert_msg(has_line(&r, d, 3, want), "no \"%s:3: %s\" in\n%s", d->conf, want,
                      r.err);
        /* Started all the same, it gives up with 78, and the line says the
         * configuration, not the app, is at fault. */
        harness_daemon_spawn(d, NULL);
        ck_assert(harness_daemon_wait_exit(d, 20));
        ck_assert_int_eq(harness_exit_code(d), 78);
        ck_assert_msg(harness_log_count(d, "the configuration cannot be applied") == 1 &&
                          harness_log_count(d, "the app cannot start") == 0,
                      "%s", harness_log_tail(d, 2000));
    } else { /* start-up keeps the uid: a warning */
        assert_ok(&r, d);
        ck_assert_msg(strstr(r.err, want) != NULL, "no warning %s in\n%s", want, r.err);
    }
    run_free(&r);
    free(mod);
}
END_TEST

START_TEST(test_group_missing)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod;

    if (!as_nobody("test_group_missing"))
        return;
    mod = hello();
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nuser = nobody\n"
                          "group = " NOGROUP "\n[app]\nmodule = %s\n",
                          mod);
    expect_error(d, 4, "[server] group: \"" NOGROUP "\": no such group");
    free(mod);
}
END_TEST

/* ---- log files ----------------------------------------------------------- */

/* An error log in a directory that does not exist is an error at its line;
 * one that can be created is, and is removed again: -t leaves nothing. */
START_TEST(test_error_log)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod = hello(), want[400], *before, *after;
    struct run r;

    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\n[app]\nmodule = %s\n"
                          "[log]\nerror_log = %s/nodir/err.log\n",
                          mod, d->dir);
    snprintf(want, sizeof(want),
             "[log] error_log: %s/nodir/err.log: No such file or "
             "directory",
             d->dir);
    expect_error(d, 6, want);

    /* A new one, a new access log, a pidfile, a unix socket: all tried,
     * none left. */
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0, unix:%s/http.sock\n"
                          "pidfile = %s/p.pid\n[app]\nmodule = %s\n[log]\n"
                          "error_log = %s/new.log\naccess_log = %s/access.log\n"
                          "[admin]\nlisten = unix:%s/admin.sock\n",
                          d->dir, d->dir, mod, d->dir, d->dir, d->dir);
    before = listing(d->dir);
    r = check(d);
    assert_ok(&r, d);
    after = listing(d->dir);
    ck_assert_str_eq(after, before);
    run_free(&r);
    free(before);
    free(after);
    free(mod);
}
END_TEST

/* The access log is opened by the workers, as [server] user: a directory
 * only root may write to is an error for user nobody, and a directory
 * nobody may write to is fine (and stays empty). */
START_TEST(test_access_log_as_user)
{
    struct hdaemon *d = harness_daemon_new();
    struct passwd *pw = getpwnam("nobody");
    char *mod, logs[200], want[400];
    struct run r;

    if (!as_nobody("test_access_log_as_user"))
        return;
    mod = hello();
    snprintf(logs, sizeof(logs), "%s/logs", d->dir);
    ck_assert_int_eq(chmod(d->dir, 0711), 0); /* nobody may pass, not list */
    ck_assert_int_eq(mkdir(logs, 0755), 0);
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nuser = nobody\n"
                          "[app]\nmodule = %s\n[log]\naccess_log = %s/access.log\n",
                          mod, logs);
    snprintf(want, sizeof(want),
             "[log] access_log: %s/access.log: Permission denied "
             "(workers open it as user nobody)",
             logs);
    expect_error(d, 7, want);

    /* root may write there, the check ran as nobody: now nobody may too */
    ck_assert_int_eq(chown(logs, pw->pw_uid, pw->pw_gid), 0);
    r = check(d);
    assert_ok(&r, d);
    snprintf(want, sizeof(want), "%s/access.log", logs);
    ck_assert_msg(access(want, F_OK) < 0, "the probe file %s was left behind", want);
    run_free(&r);
    free(mod);
}
END_TEST

/* ---- listening addresses ------------------------------------------------- */

/* A listening socket of 127.0.0.1 on an ephemeral port, held by this test;
 * its port in *port. */
static int hold_port(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
              listen(fd, 8) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

START_TEST(test_listen_in_use)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod = hello(), want[200];
    int port, fd = hold_port(&port);

    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0, 127.0.0.1:%d\n"
                          "[app]\nmodule = %s\n",
                          port, mod);
    snprintf(want, sizeof(want),
             "[server] listen: 127.0.0.1:%d: Address already in "
             "use: held by pid %d (",
             port, (int)getpid());
    expect_error(d, 2, want);
    close(fd);
    free(mod);
}
END_TEST

/* The addresses the running preforkd of this file holds are its own: fine,
 * and said so. The same addresses in another file (no pidfile naming that
 * master, not its -c file) are in use. */
START_TEST(test_listen_running_instance)
{
    struct hdaemon *d = harness_daemon_new(), *other = harness_daemon_new();
    char *mod = hello(), want[400];
    struct run r;
    int port = harness_free_port();

    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:%d\nworkers = 1\npidfile = %s\n"
                          "[app]\nmodule = %s\n[admin]\nlisten = unix:%s/admin.sock\n",
                          port, d->pidfile, mod, d->dir);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 10);
    r = check(d);
    assert_ok(&r, d);
    snprintf(want, sizeof(want),
             "preforkd: %s:2: [server] listen: 127.0.0.1:%d: in use "
             "by the running preforkd (pid %d): fine\n",
             d->conf, port, (int)d->pid);
    ck_assert_msg(strstr(r.err, want) != NULL, "no \"%s\" in\n%s", want, r.err);
    snprintf(want, sizeof(want),
             "preforkd: %s:8: [admin] listen: unix:%s/admin.sock: in "
             "use by the running preforkd (pid %d): fine\n",
             d->conf, d->dir, (int)d->pid);
    ck_assert_msg(strstr(r.err, want) != NULL, "no \"%s\" in\n%s", want, r.err);
    run_free(&r);

    harness_daemon_config(other, "[server]\nlisten = 127.0.0.1:%d\n[app]\nmodule = %s\n",
                          port, mod);
    snprintf(want, sizeof(want),
             "[server] listen: 127.0.0.1:%d: Address already in use: "
             "held by pid %d (",
             port, (int)d->pid);
    expect_error(other, 2, want);
    ck_assert(harness_daemon_stop(d, SIGTERM, 10));
    free(mod);
}
END_TEST

/* ---- the module, the order, the format ------------------------------------ */

START_TEST(test_module_missing)
{
    struct hdaemon *d = harness_daemon_new();
    char want[1024];
    struct run r;

    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\n\n[app]\n"
                          "module = %s/no/such/app.so\n",
                          d->dir);
    r = check(d);
    assert_invalid(&r, d);
    snprintf(want, sizeof(want),
             "%s:5: [app] module: %s/no/such/app.so: cannot open "
             "shared object file: No such file or directory\npreforkd: %s: "
             "configuration invalid\n",
             d->conf, d->dir, d->conf);
    ck_assert_str_eq(r.err, want);
    run_free(&r);
}
END_TEST

/* The module is loaded as [server] user, as the mold loads it: one only
 * root may read is an error. */
START_TEST(test_module_as_user)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod, *so, priv[200], want[400];
    size_t len;

    if (!as_nobody("test_module_as_user"))
        return;
    mod = hello();
    ck_assert((so = harness_read_file(mod, &len)) != NULL);
    snprintf(priv, sizeof(priv), "%s/private.so", d->dir);
    harness_write_file(priv, so, len);
    ck_assert_int_eq(chmod(priv, 0600), 0);
    ck_assert_int_eq(chmod(d->dir, 0711), 0);
    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nuser = nobody\n"
                          "[app]\nmodule = %s\n",
                          priv);
    snprintf(want, sizeof(want),
             "[app] module: %s: cannot open shared object file: "
             "Permission denied",
             priv);
    expect_error(d, 5, want);
    free(so);
    free(mod);
}
END_TEST

/* An unclosed [app header: the syntax error, and nothing about a missing
 * module before it. */
START_TEST(test_unclosed_header)
{
    struct hdaemon *d = harness_daemon_new();
    char *mod = hello(), want[1024];
    struct run r;

    harness_daemon_config(d, "[server]\nlisten = 127.0.0.1:0\n[app\nmodule = %s\n", mod);
    r = check(d);
    assert_invalid(&r, d);
    snprintf(want, sizeof(want),
             "%s:3: expected \"]\" to close the section header, got "
             "\"[app\"\npreforkd: %s: configuration invalid\n",
             d->conf, d->conf);
    ck_assert_str_eq(r.err, want);
    run_free(&r);
    free(mod);
}
END_TEST

/* Errors of every kind in one file come in line order, one format. */
START_TEST(test_many_in_line_order)
{
    struct hdaemon *d = harness_daemon_new();
    char want[5][300];
    const char *at;
    struct run r;
    int port, fd = hold_port(&port);

    if (geteuid() != 0) {
        printf("skip test_many_in_line_order: a missing user is an error as root only\n");
        close(fd);
        return;
    }
    harness_daemon_config(d,
                          "[log]\nerror_log = %s/nodir/err.log\n" /* 1-2 */
                          "[app]\nmodule = %s/nosuch.so\n"        /* 3-4 */
                          "[server]\nuser = " NOUSER "\n"         /* 5-6 */
                          "listen = 127.0.0.1:%d\n",              /* 7 */
                          d->dir, d->dir, port);
    r = check(d);
    assert_invalid(&r, d);
    snprintf(want[0], sizeof(want[0]), "%s:2: [log] error_log: ", d->conf);
    snprintf(want[1], sizeof(want[1]), "%s:4: [app] module: ", d->conf);
    snprintf(want[2], sizeof(want[2]), "%s:6: [server] user: ", d->conf);
    snprintf(want[3], sizeof(want[3]), "%s:7: [server] listen: ", d->conf);
    snprintf(want[4], sizeof(want[4]), "preforkd: %s: configuration invalid\n", d->conf);
    at = r.err;
    for (int i = 0; i < 5; i++) {
        const char *hit = strstr(at, want[i]);
        ck_assert_msg(hit != NULL && (hit == r.err || hit[-1] == '\n'),
                      "\"%s\" missing or out of order in\n%s", want[i], r.err);
        at = hit + 1;
    }
    run_free(&r);
    close(fd);
}
END_TEST

/* ---- -T ------------------------------------------------------------------ */

/* text without comments: each line cut at " ;", lines of only a comment
 * dropped. */
static char *strip_comments(const char *text)
{
    char *out = malloc(strlen(text) + 1), *o = out;

    ck_assert(out != NULL);
    for (const char *l = text; *l != '\0';) {
        const char *nl = strchr(l, '\n'), *end = nl ? nl : l + strlen(l);
        const char *cut = strstr(l, " ;");
        if (cut != NULL && cut < end)
            end = cut;
        if (*l != ';') {
            memcpy(o, l, (size_t)(end - l));
            o += end - l;
            *o++ = '\n';
        }
        l = nl ? nl + 1 : end;
        if (nl == NULL)
            break;
    }
    *o = '\0';
    return out;
}

/* -T prints the configuration in effect, defaults filled in, on stdout;
 * -t accepts that file, and -T of it prints the same keys and values. */
START_TEST(test_dump_round_trip)
{
    struct hdaemon *d = harness_daemon_new(), *back = harness_daemon_new();
    char *mod = hello(), *a, *b;
    const char *dump[] = {"-T", "-c", d->conf, NULL};
    const char *dump_back[] = {"-T", "-c", back->conf, NULL};
    struct run r, r2;

    harness_daemon_config(d,
                          "[server]\nlisten = 127.0.0.1:0\nworkers = auto\n"
                          "keepalive_timeout = 1500ms\n[recycle]\nmax_rss = auto\n"
                          "max_requests = 500\n[app]\nmodule = %s\n"
                          "[upstream api]\nservers = 127.0.0.1:1\n",
                          mod);
    r = run_preforkd(d->dir, dump);
    assert_ok(&r, d);
    ck_assert_msg(strncmp(r.out, "; preforkd -T", 13) == 0, "%s", r.out);
    ck_assert_msg(strstr(r.out, "\n[server]\nlisten = 127.0.0.1:0\nworkers = ") &&
                      strstr(r.out, " ; auto: ") &&
                      strstr(r.out, "\nmax_rss = auto ; ") &&
                      strstr(r.out, "\nkeepalive_timeout = 1500ms\n") &&
                      strstr(r.out, "\ntimeout = 30s\n") && /* a default */
                      strstr(r.out, "\n[upstream api]\nservers = 127.0.0.1:1\n") &&
                      strstr(r.out, "\nmax_idle = 32\n") &&
                      strstr(r.out, "\n[log]\nerror_log = stderr\n") &&
                      strstr(r.out, "\naccess_log = off\n") &&
                      strstr(r.out, "\n; pidfile: not set\n"),
                  "-T output lacks a key:\n%s", r.out);
    harness_write_file(back->conf, r.out, strlen(r.out));
    r2 = check(back);
    assert_ok(&r2, back);
    run_free(&r2);
    r2 = run_preforkd(back->dir, dump_back);
    assert_ok(&r2, back);
    a = strip_comments(r.out);
    b = strip_comments(r2.out);
    ck_assert_str_eq(b, a);
    free(a);
    free(b);
    run_free(&r2);
    run_free(&r);

    /* an invalid file: the errors, nothing on stdout */
    harness_daemon_config(d, "[server]\nworkers = lots\n[app]\nmodule = %s\n", mod);
    r = run_preforkd(d->dir, dump);
    assert_invalid(&r, d);
    run_free(&r);
    free(mod);
}
END_TEST

static Suite *check_suite(void)
{
    Suite *s = suite_create("check");
    TCase *tc = harness_tcase(s, "check", 60);

    tcase_add_test(tc, test_user_missing);
    tcase_add_test(tc, test_group_missing);
    tcase_add_test(tc, test_error_log);
    tcase_add_test(tc, test_access_log_as_user);
    tcase_add_test(tc, test_listen_in_use);
    tcase_add_test(tc, test_listen_running_instance);
    tcase_add_test(tc, test_module_missing);
    tcase_add_test(tc, test_module_as_user);
    tcase_add_test(tc, test_unclosed_header);
    tcase_add_test(tc, test_many_in_line_order);
    tcase_add_test(tc, test_dump_round_trip);
    return s;
}

int main(void)
{
    return harness_run_suite(check_suite());
}
