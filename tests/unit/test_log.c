/*
 * test_log.c - unit tests for src/common/log.c (line format, levels, errno,
 * reopen after rotation, pf_log, fatal) and src/master/pidfile.c. Each test runs
 * in its own Check child, so each starts with the log's defaults. Files
 * live in a private mkdtemp directory, removed at the end.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pidfile.h"
#include "preforkd.h"

static char tmpdir[] = "/tmp/pf-test-log-XXXXXX";
static char text[16384]; /* what read_text last read */

static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];
    int n = snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
    ck_assert_int_lt(n, (int)sizeof(buf[0]));
    return p;
}

/* The whole file into `text` ("" when missing). Returns text. */
static const char *read_text(const char *path)
{
    size_t n = 0;
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
    }
    text[n] = '\0';
    return text;
}

static void write_text(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(fputs(s, f), 0);
    ck_assert_int_eq(fclose(f), 0);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int matches(const char *s, const char *re)
{
    regex_t r;
    ck_assert_int_eq(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
    int rc = regexec(&r, s, 0, NULL, 0);
    regfree(&r);
    return rc == 0;
}

#define STAMP "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}"

/* A log file that exists and is the current target, at level. */
static const char *open_log(const char *name, int level)
{
    const char *path = tmp_path(name);
    ck_assert_int_eq(log_open(path, level), 0);
    return path;
}

START_TEST(line_format)
{
    char re[256];
    const char *path = open_log("format.log", LOG_INFO);

    log_set_role("master");
    log_info("hello %d", 42);
    snprintf(re, sizeof(re),
             "^" STAMP "[+-][0-9]{4} \\[info\\] \\[%ld\\] "
             "master: hello 42\n$",
             (long)getpid());
    ck_assert_msg(matches(read_text(path), re), "line: %s", text);
}
END_TEST

/* The stamp is local time with its numeric zone, and it is now. */
START_TEST(line_time_and_zone)
{
    struct tm tm;
    const char *path = open_log("zone.log", LOG_INFO);

    struct timespec ts;
    long long before, after, t;

    setenv("TZ", "XYZ-5:30", 1);
    tzset();
    clock_gettime(CLOCK_REALTIME, &ts);
    before = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
    log_info("tick");
    clock_gettime(CLOCK_REALTIME, &ts);
    after = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
    read_text(path);
    ck_assert_msg(matches(text, "^" STAMP "\\+0530 "), "line: %s", text);
    memset(&tm, 0, sizeof(tm));
    const char *ms = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    ck_assert_ptr_nonnull(ms);
    t = (timegm(&tm) - (5 * 3600 + 30 * 60)) * 1000LL + atoi(ms + 1);
    ck_assert_int_ge(t, before);
    ck_assert_int_le(t, after);
}
END_TEST

START_TEST(level_names)
{
    const char *path = open_log("levels.log", LOG_DEBUG);
    char re[512];

    log_set_role("worker 3");
    log_errx("e");
    log_warnx("w");
    log_info("i");
    log_debug("d");
    snprintf(re, sizeof(re),
             "^" STAMP "[^ ]* \\[error\\] \\[%1$ld\\] worker 3: e\n" STAMP
             "[^ ]* \\[warn\\] \\[%1$ld\\] worker 3: w\n" STAMP
             "[^ ]* \\[info\\] \\[%1$ld\\] worker 3: i\n" STAMP
             "[^ ]* \\[debug\\] \\[%1$ld\\] worker 3: d\n$",
             (long)getpid());
    ck_assert_msg(matches(read_text(path), re), "log: %s", text);
}
END_TEST

START_TEST(level_filter)
{
    const char *path = open_log("filter.log", LOG_WARN);

    ck_assert_int_eq(log_get_level(), LOG_WARN);
    log_debug("dropped debug");
    log_info("dropped info");
    log_warnx("kept warn");
    log_errx("kept error");
    read_text(path);
    ck_assert_int_eq(count_lines(text), 2);
    ck_assert_ptr_null(strstr(text, "dropped"));
    ck_assert_ptr_nonnull(strstr(text, "] master: kept warn\n"));

    log_set_level(LOG_ERROR);
    ck_assert_int_eq(log_get_level(), LOG_ERROR);
    log_warnx("dropped warn");
    log_errx("kept error 2");
    ck_assert_int_eq(count_lines(read_text(path)), 3);
    ck_assert_ptr_null(strstr(text, "dropped"));

    log_set_level(LOG_DEBUG);
    log_debug("kept debug");
    ck_assert_int_eq(count_lines(read_text(path)), 4);
    log_set_level(99);
    ck_assert_int_eq(log_get_level(), LOG_DEBUG);
}
END_TEST

START_TEST(errno_appended_and_preserved)
{
    const char *path = open_log("errno.log", LOG_INFO);

    errno = ENOENT;
    log_warn("open %s", "/x");
    ck_assert_int_eq(errno, ENOENT);
    errno = EACCES;
    log_err("bind %s", "y");
    ck_assert_int_eq(errno, EACCES);
    errno = EPIPE;
    log_warnx("no suffix");
    ck_assert_int_eq(errno, EPIPE);
    errno = EINTR;
    log_debug("filtered out");
    ck_assert_int_eq(errno, EINTR);
    errno = ENOSPC;
    log_info("info");
    ck_assert_int_eq(errno, ENOSPC);

    read_text(path);
    ck_assert_int_eq(count_lines(text), 4);
    ck_assert_msg(matches(text, "\\[warn\\] \\[[0-9]+\\] master: open /x: "
                                "No such file or directory\n"),
                  "%s", text);
    ck_assert_msg(matches(text, "\\[error\\] \\[[0-9]+\\] master: bind y: "
                                "Permission denied\n"),
                  "%s", text);
    ck_assert_msg(matches(text, "\\[warn\\] \\[[0-9]+\\] master: "
                                "no suffix\n"),
                  "%s", text);
}
END_TEST

/* Even a failing write (fd 2 closed) leaves errno alone. */
START_TEST(errno_preserved_on_write_error)
{
    ck_assert_int_eq(log_open("stderr", LOG_INFO), 0);
    int saved = dup(2);
    ck_assert_int_ge(saved, 0);
    close(2);
    errno = ERANGE;
    log_info("into the void");
    int e1 = errno;
    errno = ERANGE;
    log_warn("into the void");
    int e2 = errno;
    dup2(saved, 2);
    close(saved);
    ck_assert_int_eq(e1, ERANGE);
    ck_assert_int_eq(e2, ERANGE);
}
END_TEST

START_TEST(reopen_after_rotation)
{
    const char *path = open_log("rotate.log", LOG_INFO);
    const char *old = tmp_path("rotate.log.1");

    log_info("one");
    ck_assert_int_eq(rename(path, old), 0);
    log_info("two"); /* still the renamed file: nobody reopened yet */
    errno = EXDEV;
    ck_assert_int_eq(log_reopen(), 0);
    ck_assert_int_eq(errno, EXDEV);
    log_info("three");

    read_text(old);
    ck_assert_int_eq(count_lines(text), 2);
    ck_assert_ptr_nonnull(strstr(text, "master: one\n"));
    ck_assert_ptr_nonnull(strstr(text, "master: two\n"));
    read_text(path);
    ck_assert_int_eq(count_lines(text), 1);
    ck_assert_ptr_nonnull(strstr(text, "master: three\n"));
}
END_TEST

/* The fd number survives a reopen: a worker forked before the reopen and
 * the master keep writing to "the log fd". */
START_TEST(reopen_keeps_fd_number)
{
    char link[64], target[512];
    const char *path = open_log("fdnum.log", LOG_INFO);
    int fd = -1;

    for (int i = 3; i < 256 && fd < 0; i++) {
        snprintf(link, sizeof(link), "/proc/self/fd/%d", i);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            if (strcmp(target, path) == 0)
                fd = i;
        }
    }
    ck_assert_int_ge(fd, 3);
    ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    ck_assert_int_ne(fcntl(fd, F_GETFL) & O_APPEND, 0);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(log_reopen(), 0);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    ck_assert_int_gt(n, 0);
    target[n] = '\0';
    ck_assert_str_eq(target, path); /* not "... (deleted)" */
    ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
}
END_TEST

START_TEST(reopen_stderr_is_noop)
{
    ck_assert_int_eq(log_open("stderr", LOG_INFO), 0);
    ck_assert_int_eq(log_reopen(), 0);
}
END_TEST

START_TEST(open_failure_keeps_previous)
{
    const char *path = open_log("keep.log", LOG_INFO);

    errno = 0;
    ck_assert_int_eq(log_open(tmp_path("no/such/dir.log"), LOG_DEBUG), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(log_get_level(), LOG_INFO);
    log_info("still here");
    ck_assert_ptr_nonnull(strstr(read_text(path), "master: still here\n"));
}
END_TEST

START_TEST(open_switches_file)
{
    const char *a = open_log("a.log", LOG_INFO);
    log_info("to a");
    const char *b = open_log("b.log", LOG_INFO);
    log_info("to b");
    read_text(a);
    ck_assert_int_eq(count_lines(text), 1);
    ck_assert_ptr_nonnull(strstr(text, "master: to a\n"));
    read_text(b);
    ck_assert_int_eq(count_lines(text), 1);
    ck_assert_ptr_nonnull(strstr(text, "master: to b\n"));
}
END_TEST

/* Before log_open: stderr, level info. */
START_TEST(default_is_stderr_info)
{
    const char *path = tmp_path("stderr.log");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    ck_assert_int_ge(fd, 0);
    int saved = dup(2);
    ck_assert_int_eq(dup2(fd, 2), 2);
    close(fd);
    ck_assert_int_eq(log_get_level(), LOG_INFO);
    log_info("default info");
    log_debug("default debug");
    dup2(saved, 2);
    close(saved);
    read_text(path);
    ck_assert_int_eq(count_lines(text), 1);
    ck_assert_ptr_nonnull(strstr(text, "[info]"));
    ck_assert_ptr_nonnull(strstr(text, "master: default info\n"));
}
END_TEST

/* Under systemd, stderr is the stream JOURNAL_STREAM names: each line
 * starts with its syslog priority (journalctl -p err finds errors) and has
 * no time of its own. Another stream (stderr redirected by a child of the
 * unit) keeps the plain format. */
START_TEST(journal_stream_prefixes)
{
    const char *path = tmp_path("journal.log");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    int saved = dup(2);
    struct stat st;
    char v[64], re[512];

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(dup2(fd, 2), 2);
    close(fd);
    ck_assert_int_eq(fstat(2, &st), 0);
    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
    ck_assert_int_eq(log_open("stderr", LOG_DEBUG), 0);
    log_errx("broken %d", 1);
    log_warnx("odd");
    log_info("fine");
    log_debug("detail");
    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", v, 1);
    ck_assert_int_eq(log_open("stderr", LOG_DEBUG), 0);
    log_errx("elsewhere");
    unsetenv("JOURNAL_STREAM");
    dup2(saved, 2);
    close(saved);
    snprintf(re, sizeof re,
             "^<3>\\[error\\] \\[%ld\\] master: broken 1\n"
             "<4>\\[warn\\] \\[%ld\\] master: odd\n"
             "<6>\\[info\\] \\[%ld\\] master: fine\n"
             "<7>\\[debug\\] \\[%ld\\] master: detail\n" STAMP
             "[+-][0-9]{4} \\[error\\] \\[%ld\\] master: elsewhere\n$",
             (long)getpid(), (long)getpid(), (long)getpid(), (long)getpid(),
             (long)getpid());
    ck_assert_msg(matches(read_text(path), re), "lines:\n%s", text);
}
END_TEST

/* The pid is read at each call: a forked worker logs its own. */
START_TEST(pid_after_fork)
{
    const char *path = open_log("fork.log", LOG_INFO);
    char re[512];
    int status;

    log_info("parent");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        log_set_role("worker 1");
        log_info("child");
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(status, 0);
    log_info("parent again");
    read_text(path);
    snprintf(re, sizeof(re),
             "^" STAMP "[^ ]* \\[info\\] \\[%ld\\] master: parent\n" STAMP
             "[^ ]* \\[info\\] \\[%ld\\] worker 1: child\n" STAMP
             "[^ ]* \\[info\\] \\[%ld\\] master: parent again\n$",
             (long)getpid(), (long)pid, (long)getpid());
    ck_assert_msg(matches(text, re), "log: %s", text);
}
END_TEST

START_TEST(long_message_truncated)
{
    static char big[10000];
    const char *path = open_log("long.log", LOG_INFO);

    memset(big, 'a', sizeof(big) - 1);
    log_info("%s", big);
    errno = ENOENT;
    log_warn("%s", big);
    read_text(path);
    ck_assert_int_eq(count_lines(text), 2);
    char *second = strchr(text, '\n') + 1;
    size_t len1 = (size_t)(second - text);
    ck_assert_uint_eq(len1, 4096);
    ck_assert_mem_eq(second - 6, "aa...\n", 6);
    ck_assert_uint_eq(strlen(second), 4096);
    const char *tail = "aaa...: No such file or directory\n";
    ck_assert_str_eq(second + strlen(second) - strlen(tail), tail);
}
END_TEST

START_TEST(newlines_flattened)
{
    const char *path = open_log("nl.log", LOG_INFO);

    log_info("GET /a\r\n[error] forged");
    read_text(path);
    ck_assert_int_eq(count_lines(text), 1);
    ck_assert_ptr_nonnull(strstr(text, "master: GET /a  [error] forged\n"));
}
END_TEST

START_TEST(role_copied)
{
    char role[16] = "worker 7";
    const char *path = open_log("role.log", LOG_INFO);

    log_set_role(role);
    strcpy(role, "garbage");
    log_info("x");
    ck_assert_ptr_nonnull(strstr(read_text(path), "] worker 7: x\n"));
}
END_TEST

START_TEST(pf_log_levels)
{
    const char *path = open_log("pf.log", LOG_INFO);

    pf_log(PF_LOG_ERROR, "app %s", "e");
    pf_log(PF_LOG_WARN, "app w");
    pf_log(PF_LOG_INFO, "app i");
    pf_log(PF_LOG_DEBUG, "app d (dropped)");
    pf_log(99, "app out of range");
    pf_log(-1, "app negative");
    read_text(path);
    ck_assert_int_eq(count_lines(text), 5);
    ck_assert_ptr_nonnull(strstr(text, "[error] "));
    ck_assert_ptr_nonnull(strstr(text, "master: app e\n"));
    ck_assert_msg(matches(text, "\\[warn\\] [^\n]*master: app w\n"), "%s", text);
    ck_assert_msg(matches(text, "\\[info\\] [^\n]*master: app out of "
                                "range\n"),
                  "%s", text);
    ck_assert_msg(matches(text, "\\[info\\] [^\n]*master: app negative\n"), "%s", text);
    ck_assert_ptr_null(strstr(text, "dropped"));
}
END_TEST

START_TEST(level_parse)
{
    static const struct {
        const char *s;
        int level;
    } cases[] = {
        {"error", LOG_ERROR}, {"ERROR", LOG_ERROR},
        {"warn", LOG_WARN},   {"Warning", LOG_WARN},
        {"info", LOG_INFO},   {"InFo", LOG_INFO},
        {"debug", LOG_DEBUG}, {"", -1},
        {"verbose", -1},      {"inf", -1},
        {"info ", -1},        {"warnings", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(log_level_parse(cases[i].s) == cases[i].level, "\"%s\"",
                      cases[i].s);
    ck_assert_int_eq(log_level_parse(NULL), -1);
}
END_TEST

/* Runs fn in a child that logs to path; returns its wait status. */
static int run_child(const char *path, void (*fn)(void))
{
    int status;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (log_open(path, LOG_INFO) < 0)
            _exit(99);
        fn();
        _exit(98);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

static void call_fatalx(void)
{
    fatalx("cannot %s", "boot");
}

static void call_fatal(void)
{
    errno = EADDRINUSE;
    fatal("bind %s", "127.0.0.1:80");
}

START_TEST(fatal_exits_1)
{
    const char *path = tmp_path("fatal.log");
    int status = run_child(path, call_fatalx);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 1);
    status = run_child(path, call_fatal);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 1);
    read_text(path);
    ck_assert_int_eq(count_lines(text), 2);
    ck_assert_msg(matches(text, "\\[error\\] \\[[0-9]+\\] master: "
                                "cannot boot\n"),
                  "%s", text);
    ck_assert_msg(matches(text, "\\[error\\] \\[[0-9]+\\] master: bind "
                                "127.0.0.1:80: Address already in use\n"),
                  "%s", text);
}
END_TEST

/* ---- pidfile ------------------------------------------------------------ */

static void assert_pid_in(const char *path, long pid)
{
    char want[32];
    snprintf(want, sizeof(want), "%ld\n", pid);
    ck_assert_str_eq(read_text(path), want);
}

START_TEST(pidfile_writes_our_pid)
{
    const char *path = tmp_path("write.pid");
    struct stat st;

    umask(022);
    ck_assert_int_eq(pidfile_write(path), 0);
    assert_pid_in(path, (long)getpid());
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0644);
    ck_assert_int_eq(access(tmp_path("write.pid.tmp"), F_OK), -1);
    /* Our own pid in the file is no obstacle. */
    ck_assert_int_eq(pidfile_write(path), 0);
    assert_pid_in(path, (long)getpid());
}
END_TEST

START_TEST(pidfile_refuses_live_pid)
{
    const char *path = tmp_path("live.pid");
    const char *logpath = open_log("live.log", LOG_INFO);
    long live = (long)getppid(); /* the test runner: alive */
    char want[128];

    ck_assert_int_ne(live, 1);
    snprintf(want, sizeof(want), "%ld\n", live);
    write_text(path, want);
    errno = 0;
    ck_assert_int_eq(pidfile_write(path), -1);
    ck_assert_int_eq(errno, EEXIST);
    assert_pid_in(path, live);
    snprintf(want, sizeof(want),
             "[error] [%ld] master: pidfile: %s: "
             "preforkd is already running as pid %ld\n",
             (long)getpid(), path, live);
    ck_assert_ptr_nonnull(strstr(read_text(logpath), want));
}
END_TEST

START_TEST(pidfile_replaces_stale)
{
    const char *path = tmp_path("stale.pid");
    char buf[32];
    int status;

    pid_t dead = fork();
    ck_assert_int_ge(dead, 0);
    if (dead == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(dead, &status, 0), dead);
    snprintf(buf, sizeof(buf), "%ld\n", (long)dead);
    write_text(path, buf);
    ck_assert_int_eq(pidfile_write(path), 0);
    assert_pid_in(path, (long)getpid());

    static const char *const junk[] = {
        "", "\n", "hello\n", "-5\n", "0\n", "12x\n", "99999999999999999999\n"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        write_text(path, junk[i]);
        ck_assert_msg(pidfile_write(path) == 0, "\"%s\"", junk[i]);
        assert_pid_in(path, (long)getpid());
    }
}
END_TEST

/* A leftover (or planted) path.tmp symlink must not redirect the write. */
START_TEST(pidfile_ignores_tmp_symlink)
{
    const char *path = tmp_path("sym.pid");
    const char *tmp = tmp_path("sym.pid.tmp");
    const char *victim = tmp_path("victim.txt");

    write_text(victim, "precious\n");
    ck_assert_int_eq(symlink(victim, tmp), 0);
    ck_assert_int_eq(pidfile_write(path), 0);
    assert_pid_in(path, (long)getpid());
    ck_assert_str_eq(read_text(victim), "precious\n");
    ck_assert_int_eq(access(tmp, F_OK), -1);
}
END_TEST

START_TEST(pidfile_remove_only_ours)
{
    const char *path = tmp_path("remove.pid");
    char buf[32];

    ck_assert_int_eq(pidfile_write(path), 0);
    errno = EAGAIN;
    pidfile_remove(path);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(access(path, F_OK), -1);

    /* Our successor (here: another live process) owns it now. */
    snprintf(buf, sizeof(buf), "%ld\n", (long)getppid());
    write_text(path, buf);
    pidfile_remove(path);
    assert_pid_in(path, (long)getppid());

    ck_assert_int_eq(unlink(path), 0);
    errno = EAGAIN;
    pidfile_remove(path); /* missing: nothing to do */
    ck_assert_int_eq(errno, EAGAIN);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *l = tcase_create("log");
    TCase *p = tcase_create("pidfile");

    tcase_add_test(l, line_format);
    tcase_add_test(l, line_time_and_zone);
    tcase_add_test(l, level_names);
    tcase_add_test(l, level_filter);
    tcase_add_test(l, errno_appended_and_preserved);
    tcase_add_test(l, errno_preserved_on_write_error);
    tcase_add_test(l, reopen_after_rotation);
    tcase_add_test(l, reopen_keeps_fd_number);
    tcase_add_test(l, reopen_stderr_is_noop);
    tcase_add_test(l, open_failure_keeps_previous);
    tcase_add_test(l, open_switches_file);
    tcase_add_test(l, default_is_stderr_info);
    tcase_add_test(l, journal_stream_prefixes);
    tcase_add_test(l, pid_after_fork);
    tcase_add_test(l, long_message_truncated);
    tcase_add_test(l, newlines_flattened);
    tcase_add_test(l, role_copied);
    tcase_add_test(l, pf_log_levels);
    tcase_add_test(l, level_parse);
    tcase_add_test(l, fatal_exits_1);
    suite_add_tcase(s, l);

    tcase_add_test(p, pidfile_writes_our_pid);
    tcase_add_test(p, pidfile_refuses_live_pid);
    tcase_add_test(p, pidfile_replaces_stale);
    tcase_add_test(p, pidfile_ignores_tmp_symlink);
    tcase_add_test(p, pidfile_remove_only_ours);
    suite_add_tcase(s, p);
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
    SRunner *sr = srunner_create(log_suite());
    /* Every test needs a fresh process: the log's state is global. */
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed == 0 ? 0 : 1;
}
