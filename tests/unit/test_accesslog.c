/*
 * test_accesslog.c - unit tests for src/worker/accesslog.c: every format variable,
 * the named formats, escaping of request bytes, format errors, buffering
 * (nothing written before a flush, a full buffer flushes itself, the 1 s
 * timer flushes and does not hold the loop), reopen after a rename, and
 * whole lines from concurrent processes. In-process; each test runs in its
 * own Check child, with TZ=UTC. Files live in a private temp directory.
 */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "accesslog.h"
#include "log.h"

#define T_START 1795506600.25 /* 2026-11-24 07:50:00.25 UTC */

static char tmpdir[] = "/tmp/pf-test-accesslog-XXXXXX";

static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];

    snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
    return p;
}

/* The whole file, malloc'd ("" when missing). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s = NULL;
    size_t cap = 0, n = 0;

    if (f != NULL) {
        for (;;) {
            s = realloc(s, cap += 65536);
            ck_assert_ptr_nonnull(s);
            size_t r = fread(s + n, 1, cap - n - 1, f);
            n += r;
            if (r == 0)
                break;
        }
        fclose(f);
    }
    s = realloc(s, n + 1);
    s[n] = '\0';
    return s;
}

static pf_str S(const char *s)
{
    return (pf_str){s, s ? strlen(s) : 0};
}

static struct accesslog_entry entry(void)
{
    return (struct accesslog_entry){
        .peer = "127.0.0.1",
        .start = T_START,
        .duration = 0.001234,
        .method = S("GET"),
        .target = S("/a?b=c"),
        .version = 11,
        .status = 200,
        .bytes = 1234,
        .body_bytes = 1000,
        .referer = S("http://r/"),
        .user_agent = S("curl/7.88.1"),
        .host = S("example.org"),
        .pid = 4242,
        .worker_id = 3,
    };
}

/* One line rendered with format, read back from the file. Caller frees. */
static char *render(const char *format, const struct accesslog_entry *e)
{
    const char *path = tmp_path("render.log");

    unlink(path);
    ck_assert_int_eq(accesslog_open(EV_DEFAULT, path, format), 0);
    accesslog_write(e);
    accesslog_close();
    return slurp(path);
}

static void expect_line(const char *format, const struct accesslog_entry *e,
                        const char *want)
{
    char *got = render(format, e);
    char line[4096];

    snprintf(line, sizeof(line), "%s\n", want);
    ck_assert_msg(strcmp(got, line) == 0, "format %s:\n got  %s want %s", format, got,
                  line);
    free(got);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    return remove(p);
}

static void setup(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    /* The access log's own errors go to the error log: into a file. */
    ck_assert_int_eq(log_open(tmp_path("error.log"), LOG_INFO), 0);
}

static void teardown(void)
{
    nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- formats --------------------------------------------------------------- */

START_TEST(test_named_formats)
{
    struct accesslog_entry e = entry();

    expect_line("common", &e,
                "127.0.0.1 - - [24/Nov/2026:07:50:00 +0000] "
                "\"GET /a?b=c HTTP/1.1\" 200 1000");
    expect_line("combined", &e,
                "127.0.0.1 - - [24/Nov/2026:07:50:00 +0000] "
                "\"GET /a?b=c HTTP/1.1\" 200 1000 \"http://r/\" \"curl/7.88.1\"");
}
END_TEST

static const struct {
    const char *var, *want;
} each_var[] = {
    {"$remote_addr", "127.0.0.1"},
    {"$time_local", "24/Nov/2026:07:50:00 +0000"},
    {"$time_iso8601", "2026-11-24T07:50:00+00:00"},
    {"$msec", "1795506600.250"},
    {"$request", "GET /a?b=c HTTP/1.1"},
    {"$request_method", "GET"},
    {"$request_uri", "/a?b=c"},
    {"$server_protocol", "HTTP/1.1"},
    {"$status", "200"},
    {"$bytes_sent", "1234"},
    {"$body_bytes_sent", "1000"},
    {"$http_referer", "http://r/"},
    {"$http_user_agent", "curl/7.88.1"},
    {"$http_host", "example.org"},
    {"$request_time", "0.001"},
    {"$request_time_us", "1234"},
    {"$worker_pid", "4242"},
    {"$worker_id", "3"},
};

START_TEST(test_each_variable)
{
    struct accesslog_entry e = entry();
    char fmt[64], want[128];

    /* Each alone, and between literals, to see that nothing spills. */
    snprintf(fmt, sizeof(fmt), "<%s>", each_var[_i].var);
    snprintf(want, sizeof(want), "<%s>", each_var[_i].want);
    expect_line(each_var[_i].var, &e, each_var[_i].want);
    expect_line(fmt, &e, want);
}
END_TEST

START_TEST(test_braces_and_dollar)
{
    struct accesslog_entry e = entry();

    expect_line("${status}ms $$ $${status} ${request_time_us}us", &e,
                "200ms $ ${status} 1234us");
    expect_line("no variables at all", &e, "no variables at all");
}
END_TEST

START_TEST(test_absent_and_odd_values)
{
    struct accesslog_entry e = entry();

    e.referer = e.user_agent = e.host = (pf_str){NULL, 0};
    e.peer = NULL;
    expect_line("$remote_addr \"$http_referer\" \"$http_user_agent\" $http_host", &e,
                "- \"-\" \"-\" -");
    e.version = 10;
    e.duration = -0.5; /* a clock step: never negative */
    expect_line("$request $request_time $request_time_us", &e,
                "GET /a?b=c HTTP/1.0 0.000 0");
    e.method = e.target = (pf_str){NULL, 0};
    e.version = 0;
    expect_line("\"$request\" $server_protocol", &e, "\"-\" -");
}
END_TEST

/* Request bytes cannot forge a line, a field or an escape. */
START_TEST(test_escaping)
{
    struct accesslog_entry e = entry();

    e.target = S("/x\"y\\z\r\n127.0.0.1 - - fake\x01\x7f\xff");
    e.user_agent = S("ua\"; rm\t");
    expect_line("combined", &e,
                "127.0.0.1 - - [24/Nov/2026:07:50:00 +0000] \"GET "
                "/x\\x22y\\x5Cz\\x0D\\x0A127.0.0.1 - - fake\\x01\\x7F\\xFF HTTP/1.1\" "
                "200 1000 \"http://r/\" \"ua\\x22; rm\\x09\"");
    /* The literal text of the format is the operator's: kept as written. */
    expect_line("\"$request_method\"\\", &e, "\"GET\"\\");
}
END_TEST

/* access_log_format = json: one JSON object a line, text as strings (null
 * when absent), numbers as numbers. */
START_TEST(test_json_format)
{
    struct accesslog_entry e = entry();

    expect_line(
        "json", &e,
        "{\"time\":\"2026-11-24T07:50:00+00:00\",\"remote_addr\":\"127.0.0.1\","
        "\"request\":\"GET /a?b=c HTTP/1.1\",\"method\":\"GET\",\"uri\":\"/a?b=c\","
        "\"protocol\":\"HTTP/1.1\",\"status\":200,\"bytes_sent\":1234,"
        "\"body_bytes_sent\":1000,\"request_time\":0.001,\"referer\":\"http://r/\","
        "\"user_agent\":\"curl/7.88.1\",\"host\":\"example.org\",\"worker_id\":3,"
        "\"worker_pid\":4242}");
    /* A 400 for a request line that never parsed. */
    e.method = e.target = (pf_str){NULL, 0};
    e.version = 0;
    e.status = 400;
    e.referer = e.user_agent = e.host = (pf_str){NULL, 0};
    e.peer = NULL;
    expect_line("json", &e,
                "{\"time\":\"2026-11-24T07:50:00+00:00\",\"remote_addr\":null,"
                "\"request\":null,\"method\":null,\"uri\":null,\"protocol\":null,"
                "\"status\":400,\"bytes_sent\":1234,\"body_bytes_sent\":1000,"
                "\"request_time\":0.001,\"referer\":null,\"user_agent\":null,"
                "\"host\":null,\"worker_id\":3,\"worker_pid\":4242}");
}
END_TEST

/* Every byte value a client can send, in every text field: each line is
 * still one JSON object for a real parser (Python's json, strict), and the
 * bytes come back as sent (\u00HH for HH). */
START_TEST(test_json_hostile_bytes)
{
    const char *path = tmp_path("json.log");
    char bytes[256], cmd[512];
    struct accesslog_entry e = entry();
    FILE *p;
    int st;

    if (access("/usr/bin/python3", X_OK) != 0) {
        fprintf(stderr, "skip: /usr/bin/python3 missing\n");
        return;
    }
    for (int i = 0; i < 256; i++)
        bytes[i] = (char)i;
    unlink(path);
    ck_assert_int_eq(accesslog_open(EV_DEFAULT, path, "json"), 0);
    e.target = (pf_str){bytes, sizeof bytes};
    e.method = (pf_str){"G\"E\\T\n", 6};
    e.user_agent = (pf_str){bytes + 1, 255};
    e.referer = S("\xc3\xa9\xff\xfe\\u0000\"}{");
    e.host = S("h\r\n{\"x\":1}");
    accesslog_write(&e);
    e.method = (pf_str){NULL, 0};
    accesslog_write(&e);
    accesslog_close();
    snprintf(
        cmd, sizeof cmd,
        "/usr/bin/python3 -c 'import json, sys\n"
        "lines = open(sys.argv[1], \"rb\").read().split(b\"\\n\")\n"
        "assert lines[-1] == b\"\" and len(lines) == 3, lines\n"
        "for l in lines[:2]:\n"
        "    o = json.loads(l.decode(\"ascii\"))\n"
        "    assert bytes(ord(c) for c in o[\"uri\"]) == bytes(range(256))\n"
        "    assert bytes(ord(c) for c in o[\"user_agent\"]) == bytes(range(1, 256))\n"
        "    assert o[\"host\"] == \"h\\r\\n{\\\"x\\\":1}\", o[\"host\"]\n"
        "print(\"json ok\")' %s 2>&1",
        path);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    {
        char out[4096] = "";
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = '\0';
        st = pclose(p);
        ck_assert_msg(st == 0 && strstr(out, "json ok"), "python3 json: %s\n%s", out,
                      slurp(path));
    }
}
END_TEST

static void expect_bad(const char *format, const char *why_part)
{
    char why[256] = "", *log_text;

    ck_assert_int_eq(accesslog_check_format(format, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, why_part) != NULL, "format %s: %s (want %s)", format, why,
                  why_part);
    ck_assert_int_eq(accesslog_open(EV_DEFAULT, tmp_path("bad.log"), format), -1);
    log_text = slurp(tmp_path("error.log"));
    ck_assert_msg(strstr(log_text, why) != NULL, "error log: %s", log_text);
    free(log_text);
}

START_TEST(test_bad_formats)
{
    expect_bad("$remote_addr $nope", "unknown variable \"$nope\" at offset 13");
    expect_bad("${status} ${bytes}", "unknown variable \"$bytes\" at offset 10");
    ck_assert_int_eq(access(tmp_path("bad.log"), F_OK), -1); /* none opened */
}
END_TEST

START_TEST(test_bad_formats_syntax)
{
    char why[256];

    expect_bad("$status $", "\"$\" at offset 8 is not followed by a variable name");
    expect_bad("${} x", "\"$\" at offset 0");
    expect_bad("${status", "\"$\" at offset 0");
    expect_bad("", "empty format");
    ck_assert_int_eq(accesslog_check_format("common", why, sizeof(why)), 0);
    ck_assert_int_eq(accesslog_check_format("combined", why, sizeof(why)), 0);
    ck_assert_int_eq(accesslog_check_format("$status $$5", why, sizeof(why)), 0);
}
END_TEST

/* ---- buffering and files --------------------------------------------------- */

START_TEST(test_buffered_until_flush)
{
    const char *path = tmp_path("buf.log");
    struct accesslog_entry e = entry();
    char *s;

    ck_assert_int_eq(accesslog_open(EV_DEFAULT, path, "$status"), 0);
    accesslog_write(&e);
    accesslog_write(&e);
    s = slurp(path);
    ck_assert_str_eq(s, ""); /* no write per request */
    free(s);
    accesslog_flush();
    s = slurp(path);
    ck_assert_str_eq(s, "200\n200\n");
    free(s);
    accesslog_close();
    accesslog_write(&e); /* closed: a no-op */
    s = slurp(path);
    ck_assert_str_eq(s, "200\n200\n");
    free(s);
}
END_TEST

/* A full buffer (64 KiB) is written by itself, in whole lines. */
START_TEST(test_full_buffer_flushes)
{
    const char *path = tmp_path("full.log");
    struct accesslog_entry e = entry();
    size_t lines = 0, len;
    char *s;

    ck_assert_int_eq(accesslog_open(EV_DEFAULT, path, "combined"), 0);
    for (int i = 0; i < 2000; i++)
        accesslog_write(&e);
    s = slurp(path);
    len = strlen(s);
    ck_assert_msg(len >= 64 * 1024, "only %zu bytes written", len);
    ck_assert_int_eq(s[len - 1], '\n');
    for (char *p = s; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    ck_assert_uint_eq(len, lines * (len / lines)); /* every line whole */
    /* What is left in the buffer is less than a full buffer. */
    ck_assert_msg(lines < 2000 && (2000 - lines) * (len / lines) < 64 * 1024,
                  "%zu of 2000 lines written", lines);
    free(s);
    accesslog_close();
    s = slurp(path);
    ck_assert_uint_eq(strlen(s), 2000 * (len / lines));
    free(s);
}
END_TEST

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

/* The 1 s timer writes the buffer; it never keeps the loop running. */
START_TEST(test_timer_flush)
{
    const char *path = tmp_path("timer.log");
    struct ev_loop *loop = EV_DEFAULT;
    struct accesslog_entry e = entry();
    ev_timer deadline;
    ev_tstamp t0;
    char *s;

    ck_assert_int_eq(accesslog_open(loop, path, "$worker_id"), 0);
    accesslog_write(&e);
    t0 = ev_time();
    ev_run(loop, 0); /* only the access log's timer: returns at once */
    ck_assert_msg(ev_time() - t0 < 0.5, "the flush timer held the loop");
    s = slurp(path);
    ck_assert_str_eq(s, "");
    free(s);
    ev_timer_init(&deadline, on_deadline, 1.5, 0.);
    ev_timer_start(loop, &deadline);
    ev_run(loop, 0);
    s = slurp(path);
    ck_assert_str_eq(s, "3\n");
    free(s);
    accesslog_close();
}
END_TEST

/* USR1 after logrotate renamed the file: old lines stay in the old file,
 * new lines go to a new file at the same path. */
START_TEST(test_reopen)
{
    const char *path = tmp_path("access.log"), *rotated = tmp_path("access.log.1");
    struct accesslog_entry e = entry();
    char *s;

    ck_assert_int_eq(accesslog_open(EV_DEFAULT, path, "$status"), 0);
    accesslog_write(&e);
    ck_assert_int_eq(rename(path, rotated), 0);
    accesslog_reopen();
    e.status = 404;
    accesslog_write(&e);
    accesslog_close();
    s = slurp(rotated);
    ck_assert_str_eq(s, "200\n");
    free(s);
    s = slurp(path);
    ck_assert_str_eq(s, "404\n");
    free(s);
}
END_TEST

START_TEST(test_open_failure)
{
    char *log_text;

    ck_assert_int_eq(accesslog_open(EV_DEFAULT, tmp_path("no/such/dir.log"), "common"),
                     -1);
    log_text = slurp(tmp_path("error.log"));
    ck_assert_msg(strstr(log_text, "access log: opening ") &&
                      strstr(log_text, "no/such/dir.log: No such file or directory"),
                  "%s", log_text);
    free(log_text);
    ck_assert_int_eq(accesslog_open(EV_DEFAULT, tmp_path("ok.log"), "common"), 0);
    accesslog_close();
}
END_TEST

/* Several processes append to one file: every line arrives whole. */
START_TEST(test_concurrent_writers)
{
    const char *path = tmp_path("many.log");
    enum { PROCS = 4, LINES = 5000 };
    int counts[PROCS] = {0};
    char *s, *line, *nl;

    for (int p = 0; p < PROCS; p++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            struct accesslog_entry e = entry();
            e.worker_id = p;
            if (accesslog_open(EV_DEFAULT, path,
                               "begin $worker_id $request "
                               "$http_user_agent end") < 0)
                _exit(1);
            for (int i = 0; i < LINES; i++)
                accesslog_write(&e);
            accesslog_close();
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int st;
        ck_assert_int_gt(wait(&st), 0);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    s = slurp(path);
    for (line = s; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        int id = -1, n = 0;
        *nl = '\0';
        ck_assert_msg(sscanf(line, "begin %d GET /a?b=c HTTP/1.1 curl/7.88.1 end%n", &id,
                             &n) == 1 &&
                          line[n] == '\0' && id >= 0 && id < PROCS,
                      "mixed line: %.200s", line);
        counts[id]++;
    }
    ck_assert_str_eq(line, "");
    for (int p = 0; p < PROCS; p++)
        ck_assert_int_eq(counts[p], LINES);
    free(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("accesslog");
    TCase *tc = tcase_create("accesslog");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_named_formats);
    tcase_add_loop_test(tc, test_each_variable, 0,
                        (int)(sizeof(each_var) / sizeof(each_var[0])));
    tcase_add_test(tc, test_braces_and_dollar);
    tcase_add_test(tc, test_absent_and_odd_values);
    tcase_add_test(tc, test_escaping);
    tcase_add_test(tc, test_json_format);
    tcase_add_test(tc, test_json_hostile_bytes);
    tcase_add_test(tc, test_bad_formats);
    tcase_add_test(tc, test_bad_formats_syntax);
    tcase_add_test(tc, test_buffered_until_flush);
    tcase_add_test(tc, test_full_buffer_flushes);
    tcase_add_test(tc, test_timer_flush);
    tcase_add_test(tc, test_reopen);
    tcase_add_test(tc, test_open_failure);
    tcase_add_test(tc, test_concurrent_writers);
    suite_add_tcase(s, tc);
    return harness_run_suite(s);
}
