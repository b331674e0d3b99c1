/*
 * test_config.c - unit tests for src/common/config.c: defaults, every key type,
 * units, and every class of error with its exact file:line and key. Each
 * test writes its INI text to a file in a private mkdtemp directory, which
 * main removes at the end. In-process, no daemon.
 */
#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

static char tmpdir[PATH_MAX];
static char cur_path[PATH_MAX + 64]; /* the file of the last load */

/* Writes text to a fresh file in tmpdir; its path is cur_path. */
static void write_ini(const char *text)
{
    static int seq;
    FILE *f;

    snprintf(cur_path, sizeof(cur_path), "%s/t%d-%d.ini", tmpdir, (int)getpid(), seq++);
    f = fopen(cur_path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

static int load(const char *text, struct config *c, char **err)
{
    int rc;

    write_ini(text);
    rc = config_load(cur_path, c, err);
    unlink(cur_path);
    return rc;
}

/* Loads text that must be valid. */
static void load_ok(const char *text, struct config *c)
{
    char *err = NULL;
    int rc = load(text, c, &err);

    ck_assert_msg(rc == 0, "config_load failed:\n%s", err ? err : "(null)");
    ck_assert_ptr_null(err);
}

/* Loads text that must fail; returns the errors (caller frees). */
static char *load_err(const char *text)
{
    struct config c;
    char *err = NULL;

    ck_assert_int_eq(load(text, &c, &err), -1);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(c.path); /* left zeroed */
    ck_assert_uint_eq(c.nupstreams, 0);
    config_free(&c);
    return err;
}

/* errs holds "cur_path:line: msg" (line 0: "cur_path: msg"). */
static void has_error(const char *errs, int line, const char *msg)
{
    char want[PATH_MAX + 512];

    if (line > 0)
        snprintf(want, sizeof(want), "%s:%d: %s", cur_path, line, msg);
    else
        snprintf(want, sizeof(want), "%s: %s", cur_path, msg);
    ck_assert_msg(strstr(errs, want) != NULL, "missing error\n  %s\nin\n%s", want, errs);
}

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

#define APP "[app]\nmodule = hello\n"

/* Text that is no file (preforkd --wsgi): parsed and reported as a file,
 * and kept so that a reload parses it again. */
START_TEST(test_load_text)
{
    struct config c, again;
    char *errors = NULL;

    ck_assert_int_eq(config_load_text("cli", "[server]\nworkers = 3\n" APP, &c, &errors),
                     0);
    ck_assert_uint_eq(c.server.workers, 3);
    ck_assert_str_eq(c.path, "cli");
    ck_assert_ptr_nonnull(c.text);
    ck_assert_int_eq(config_load_text(c.path, c.text, &again, NULL), 0);
    ck_assert_uint_eq(again.server.workers, 3);
    config_free(&again);
    config_free(&c);
    ck_assert_int_eq(config_load_text("cli", "[server]\nworkers = x\n" APP, &c, &errors),
                     -1);
    ck_assert_msg(strstr(errors, "cli:2: [server] workers:") != NULL, "%s", errors);
    ck_assert_ptr_null(c.text);
    free(errors);
}
END_TEST

START_TEST(test_defaults)
{
    struct config c;

    config_defaults(&c);
    ck_assert_uint_eq(c.server.nlisten, 1);
    ck_assert_str_eq(c.server.listen[0].text, "127.0.0.1:8000");
    ck_assert_int_eq(c.server.listen[0].family, AF_INET);
    ck_assert_uint_eq(c.server.workers, 2);
    ck_assert_uint_eq(c.server.max_workers, 64);
    ck_assert_uint_eq(c.server.worker_connections, 1024);
    ck_assert_uint_eq(c.server.backlog, 1024);
    ck_assert(c.server.preload);
    ck_assert_ptr_null(c.server.pidfile);
    ck_assert_ptr_null(c.server.user);
    ck_assert_ptr_null(c.server.group);
    ck_assert_double_eq(c.server.timeout, 30);
    ck_assert_double_eq(c.server.graceful_timeout, 30);
    ck_assert_double_eq(c.server.keepalive_timeout, 5);
    ck_assert_double_eq(c.server.header_timeout, 10);
    ck_assert_double_eq(c.server.body_timeout, 30);
    ck_assert_double_eq(c.server.send_timeout, 30);
    ck_assert_double_eq(c.server.request_timeout, 60);
    ck_assert_uint_eq(c.server.max_request_line, 8190);
    ck_assert_uint_eq(c.server.max_headers, 100);
    ck_assert_uint_eq(c.server.max_header_size, 8190);
    ck_assert_uint_eq(c.server.max_body_size, 1048576);
    ck_assert_uint_eq(c.recycle.max_requests, 0);
    ck_assert_uint_eq(c.recycle.max_requests_jitter, 0);
    ck_assert_uint_eq(c.recycle.max_rss, 0);
    ck_assert_uint_eq(c.recycle.max_rss_hard, 0);
    ck_assert_int_eq(c.recycle.memory_metric, METRIC_RSS);
    ck_assert_double_eq(c.recycle.max_lifetime, 0);
    ck_assert_double_eq(c.recycle.max_lifetime_jitter, 0);
    ck_assert_double_eq(c.recycle.min_lifetime, 0);
    ck_assert_uint_eq(c.recycle.max_concurrent_recycles, 1);
    ck_assert_ptr_null(c.app.module);
    ck_assert_uint_eq(c.app.nkv, 0);
    ck_assert_uint_eq(c.nupstreams, 0);
    ck_assert_str_eq(c.log.error_log, "stderr");
    ck_assert_int_eq(c.log.level, LOG_INFO);
    ck_assert_ptr_null(c.log.access_log);
    ck_assert_str_eq(c.log.access_log_format, "combined");
    ck_assert(!c.admin.enabled);
    config_free(&c);
    config_free(&c); /* zeroed: harmless */
}
END_TEST

START_TEST(test_minimal_file)
{
    struct config c;

    load_ok(APP, &c);
    ck_assert_str_eq(c.path, cur_path);
    ck_assert_str_eq(c.app.module, "hello");
    ck_assert_uint_eq(c.server.nlisten, 1);
    ck_assert_str_eq(c.server.listen[0].text, "127.0.0.1:8000");
    ck_assert_uint_eq(c.server.workers, 2);
    ck_assert_uint_eq(c.server.max_workers, 64);
    ck_assert_str_eq(c.log.error_log, "stderr");
    ck_assert_str_eq(c.log.access_log_format, "combined");
    ck_assert_uint_eq(c.nupstreams, 0);
    config_free(&c);
}
END_TEST

static const char every_key[] =
    "[server]\n"
    "listen = 127.0.0.1:9100, [::1]:9101, unix:/tmp/pf-test.sock\n"
    "workers = 3\n"
    "max_workers = 12\n"
    "worker_connections = 500\n"
    "backlog = 77\n"
    "preload = no\n"
    "pidfile = /tmp/pf.pid\n"
    "user = nobody\n"
    "group = nogroup\n"
    "timeout = 45s\n"
    "graceful_timeout = 1m\n"
    "keepalive_timeout = 0\n"
    "header_timeout = 2500ms\n"
    "body_timeout = 7\n"
    "send_timeout = 0.25s\n"
    "request_timeout = 90s\n"
    "max_request_line = 4096\n"
    "max_headers = 50\n"
    "max_header_size = 2048\n"
    "max_body_size = 8M\n"
    "[recycle]\n"
    "max_requests = 5000\n"
    "max_requests_jitter = 500\n"
    "max_rss = 256M\n"
    "max_rss_hard = 1G\n"
    "memory_metric = pss\n"
    "max_lifetime = 1h\n"
    "max_lifetime_jitter = 5m\n"
    "min_lifetime = 30s\n"
    "max_concurrent_recycles = 2\n"
    "[app]\n"
    "module = proxy\n"
    "upstream = backend\n"
    "[upstream backend]\n"
    "servers = 127.0.0.1:9001, 127.0.0.1:9002\n"
    "max_idle = 8\n"
    "max_connections = 16\n"
    "connect_timeout = 500ms\n"
    "read_timeout = 10s\n"
    "idle_timeout = 2m\n"
    "keepalive_requests = 100\n"
    "retries = 0\n"
    "max_fails = 3\n"
    "fail_timeout = 20s\n"
    "[log]\n"
    "error_log = /tmp/pf-error.log\n"
    "level = debug\n"
    "access_log = stderr\n"
    "access_log_format = common\n"
    "[admin]\n"
    "listen = unix:/tmp/pf-admin.sock\n";

START_TEST(test_every_key)
{
    struct config c;
    const struct config_upstream *u;

    load_ok(every_key, &c);
    ck_assert_uint_eq(c.server.nlisten, 3);
    ck_assert_str_eq(c.server.listen[0].text, "127.0.0.1:9100");
    ck_assert_int_eq(c.server.listen[1].family, AF_INET6);
    ck_assert_str_eq(c.server.listen[1].text, "[::1]:9101");
    ck_assert_int_eq(c.server.listen[2].family, AF_UNIX);
    ck_assert_str_eq(c.server.listen[2].text, "unix:/tmp/pf-test.sock");
    ck_assert_uint_eq(c.server.workers, 3);
    ck_assert_uint_eq(c.server.max_workers, 12);
    ck_assert_uint_eq(c.server.worker_connections, 500);
    ck_assert_uint_eq(c.server.backlog, 77);
    ck_assert(!c.server.preload);
    ck_assert_str_eq(c.server.pidfile, "/tmp/pf.pid");
    ck_assert_str_eq(c.server.user, "nobody");
    ck_assert_str_eq(c.server.group, "nogroup");
    ck_assert_double_eq(c.server.timeout, 45);
    ck_assert_double_eq(c.server.graceful_timeout, 60);
    ck_assert_double_eq(c.server.keepalive_timeout, 0);
    ck_assert_double_eq_tol(c.server.header_timeout, 2.5, 1e-9);
    ck_assert_double_eq(c.server.body_timeout, 7);
    ck_assert_double_eq(c.server.send_timeout, 0.25);
    ck_assert_double_eq(c.server.request_timeout, 90);
    ck_assert_uint_eq(c.server.max_request_line, 4096);
    ck_assert_uint_eq(c.server.max_headers, 50);
    ck_assert_uint_eq(c.server.max_header_size, 2048);
    ck_assert_uint_eq(c.server.max_body_size, 8 << 20);
    ck_assert_uint_eq(c.recycle.max_requests, 5000);
    ck_assert_uint_eq(c.recycle.max_requests_jitter, 500);
    ck_assert_uint_eq(c.recycle.max_rss, 256u << 20);
    ck_assert_uint_eq(c.recycle.max_rss_hard, 1u << 30);
    ck_assert_int_eq(c.recycle.memory_metric, METRIC_PSS);
    ck_assert_double_eq(c.recycle.max_lifetime, 3600);
    ck_assert_double_eq(c.recycle.max_lifetime_jitter, 300);
    ck_assert_double_eq(c.recycle.min_lifetime, 30);
    ck_assert_uint_eq(c.recycle.max_concurrent_recycles, 2);
    ck_assert_str_eq(c.app.module, "proxy");
    ck_assert_uint_eq(c.app.nkv, 1);
    ck_assert_uint_eq(c.nupstreams, 1);
    u = &c.upstreams[0];
    ck_assert_str_eq(u->name, "backend");
    ck_assert_int_eq(u->line, 35);
    ck_assert_uint_eq(u->nservers, 2);
    ck_assert_str_eq(u->servers[1].text, "127.0.0.1:9002");
    ck_assert_uint_eq(u->max_idle, 8);
    ck_assert_uint_eq(u->max_connections, 16);
    ck_assert_double_eq_tol(u->connect_timeout, 0.5, 1e-9);
    ck_assert_double_eq(u->read_timeout, 10);
    ck_assert_double_eq(u->idle_timeout, 120);
    ck_assert_uint_eq(u->keepalive_requests, 100);
    ck_assert_uint_eq(u->retries, 0);
    ck_assert_uint_eq(u->max_fails, 3);
    ck_assert_double_eq(u->fail_timeout, 20);
    ck_assert_str_eq(c.log.error_log, "/tmp/pf-error.log");
    ck_assert_int_eq(c.log.level, LOG_DEBUG);
    ck_assert_str_eq(c.log.access_log, "stderr");
    ck_assert_str_eq(c.log.access_log_format, "common");
    ck_assert(c.admin.enabled);
    ck_assert_int_eq(c.admin.listen.family, AF_UNIX);
    ck_assert_str_eq(c.admin.listen.text, "unix:/tmp/pf-admin.sock");
    config_free(&c);
}
END_TEST

START_TEST(test_duration_units)
{
    static const struct {
        const char *s;
        double v;
    } good[] = {
        {"1500ms", 1.5}, {"2s", 2},           {"5m", 300},
        {"1h", 3600},    {"0.5s", 0.5},       {"7", 7},
        {"0", 0},        {"1.25", 1.25},      {"250ms", 0.25},
        {"0.5h", 1800},  {"1000000000", 1e9},
    };
    static const char *const bad[] = {
        "",    "s",    "-1s", "1x",   "1.s",  ".5",         "1 s",     "1e3", "nan",
        "inf", "1sec", "1S",  "2ms ", "0x10", "1000000001", "300000h", "+1",
    };
    double d;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        d = -1;
        ck_assert_msg(config_parse_duration(good[i].s, &d) == 0, "%s", good[i].s);
        ck_assert_double_eq_tol(d, good[i].v, 1e-9);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        d = 42;
        ck_assert_msg(config_parse_duration(bad[i], &d) == -1, "accepted \"%s\"", bad[i]);
        ck_assert_double_eq(d, 42);
    }
}
END_TEST

START_TEST(test_size_units)
{
    static const struct {
        const char *s;
        uint64_t v;
    } good[] = {
        {"1024", 1024},
        {"0", 0},
        {"10B", 10},
        {"64K", 65536},
        {"64k", 65536},
        {"64KB", 65536},
        {"64KiB", 65536},
        {"64kib", 65536},
        {"256M", 268435456},
        {"2MB", 2097152},
        {"1G", 1073741824},
        {"3GiB", UINT64_C(3) << 30},
        {"18446744073709551615", UINT64_MAX},
        {"17179869183G", UINT64_C(17179869183) << 30},
    };
    static const char *const bad[] = {
        "",
        "K",
        "-1",
        "1.5M",
        "1T",
        "1 K",
        "1KiBx",
        "1iB",
        "1Kb2",
        "18446744073709551616",
        "17179869184G",
        "0x10",
        "+1",
    };
    uint64_t n;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        n = 1;
        ck_assert_msg(config_parse_size(good[i].s, &n) == 0, "%s", good[i].s);
        ck_assert_uint_eq(n, good[i].v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = 42;
        ck_assert_msg(config_parse_size(bad[i], &n) == -1, "accepted \"%s\"", bad[i]);
        ck_assert_uint_eq(n, 42);
    }
}
END_TEST

START_TEST(test_bool_values)
{
    static const char *const yes[] = {"true", "TRUE", "yes", "On", "1"};
    static const char *const no[] = {"false", "No", "OFF", "0"};
    static const char *const bad[] = {"", "maybe", "2", "y", "truee"};
    bool b;

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        b = false;
        ck_assert_int_eq(config_parse_bool(yes[i], &b), 0);
        ck_assert(b);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        b = true;
        ck_assert_int_eq(config_parse_bool(no[i], &b), 0);
        ck_assert(!b);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_int_eq(config_parse_bool(bad[i], &b), -1);
}
END_TEST

START_TEST(test_workers_auto)
{
    struct config c;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    uint32_t want = cpus < 1 ? 1 : cpus > 1024 ? 1024 : (uint32_t)cpus;

    load_ok("[server]\nworkers = auto\n" APP, &c);
    ck_assert_uint_eq(c.server.workers, want);
    ck_assert_uint_ge(c.server.max_workers, c.server.workers);
    config_free(&c);

    /* max_workers left at its default follows a larger workers */
    load_ok("[server]\nworkers = 100\n" APP, &c);
    ck_assert_uint_eq(c.server.workers, 100);
    ck_assert_uint_eq(c.server.max_workers, 100);
    config_free(&c);
}
END_TEST

START_TEST(test_err_unknown_section)
{
    char *e = load_err(APP "[foo]\nbar = 1\nbaz = 2\n[Server]\n");

    has_error(e, 3, "unknown section [foo]");
    has_error(e, 6, "unknown section [Server]");
    ck_assert_int_eq(count_lines(e), 2); /* its keys are not reported */
    free(e);
}
END_TEST

START_TEST(test_err_unknown_key)
{
    char *e = load_err("[server]\nwrokers = 3\nzzz = 1\n" APP "[log]\nlevl = info\n");

    has_error(e, 2, "[server] wrokers: unknown key (did you mean \"workers\"?)\n");
    has_error(e, 3, "[server] zzz: unknown key\n");
    has_error(e, 7, "[log] levl: unknown key");
    ck_assert_int_eq(count_lines(e), 3);
    free(e);
    /* Control bytes of a key are shown escaped: a CR or an ESC in the
     * file must not rewrite the operator's terminal or forge log lines. */
    e = load_err("[server]\nwork\033[2Jers = 3\n" APP);
    has_error(e, 2, "work\\x1b[2Jers: control byte in a key name");
    ck_assert_ptr_null(strchr(e, '\033'));
    free(e);
    e = load_err("[server]\n" APP "a\001b = 1\n");
    ck_assert_ptr_nonnull(strstr(e, "a\\x01b: control byte in a key name"));
    free(e);
}
END_TEST

START_TEST(test_err_bad_int)
{
    char *e = load_err("[server]\n"
                       "workers = x\n"
                       "backlog = -1\n"
                       "worker_connections = 12x\n"
                       "max_request_line = 63\n"
                       "max_headers = 99999999999999999999999\n"
                       "[recycle]\n"
                       "max_requests = 18446744073709551616\n"
                       "max_concurrent_recycles = 0\n" APP);

    has_error(e, 2, "[server] workers: expected a number or \"auto\", got \"x\"\n");
    has_error(e, 3,
              "[server] backlog: expected a number from 1 to "
              "2147483647, got \"-1\"\n");
    has_error(e, 4,
              "[server] worker_connections: expected a number, "
              "got \"12x\"\n");
    has_error(e, 5,
              "[server] max_request_line: expected a number from 64 "
              "to 1048576, got \"63\"\n");
    has_error(e, 6,
              "[server] max_headers: expected a number from 1 to "
              "10000, got \"99999999999999999999999\"\n");
    has_error(e, 8,
              "[recycle] max_requests: expected a number from 0 to "
              "18446744073709551615, got \"18446744073709551616\"\n");
    has_error(e, 9,
              "[recycle] max_concurrent_recycles: expected a number "
              "from 1 to 1024, got \"0\"\n");
    ck_assert_int_eq(count_lines(e), 7);
    free(e);

    e = load_err("[server]\nworkers = 0\n" APP);
    has_error(e, 2,
              "[server] workers: expected a number from 1 to 1024 or "
              "\"auto\", got \"0\"\n");
    free(e);
    e = load_err("[server]\nworkers = 1025\n" APP);
    has_error(e, 2, "[server] workers: expected a number from 1 to 1024");
    free(e);
}
END_TEST

START_TEST(test_err_bad_duration)
{
    char *e = load_err("[server]\n"
                       "timeout = 5x\n"
                       "keepalive_timeout = -1\n"
                       "header_timeout = 0\n"
                       "graceful_timeout = 0\n" /* fine: >= 0 */
                       APP "[upstream b]\nservers = 127.0.0.1:1\n"
                       "connect_timeout = 0ms\n");

    has_error(e, 2,
              "[server] timeout: expected a duration > 0 (e.g. 30s, "
              "1500ms, 5m, 1h), got \"5x\"\n");
    has_error(e, 3,
              "[server] keepalive_timeout: expected a duration (e.g. "
              "30s, 1500ms, 5m, 1h), got \"-1\"\n");
    has_error(e, 4, "[server] header_timeout: expected a duration > 0");
    has_error(e, 10, "[upstream b] connect_timeout: expected a duration > 0");
    ck_assert_int_eq(count_lines(e), 4);
    free(e);
}
END_TEST

/* request_timeout: 0 turns it off; like every duration, no sign or junk. */
START_TEST(test_request_timeout)
{
    struct config c;
    char *e;

    load_ok("[server]\nrequest_timeout = 0\n" APP, &c);
    ck_assert_double_eq(c.server.request_timeout, 0);
    config_free(&c);
    load_ok("[server]\nrequest_timeout = 1500ms\n" APP, &c);
    ck_assert_double_eq_tol(c.server.request_timeout, 1.5, 1e-9);
    config_free(&c);
    e = load_err("[server]\nworkers = 1\nrequest_timeout = 10x\n" APP
                 "[log]\nlevel = info\n");
    has_error(e, 3,
              "[server] request_timeout: expected a duration (e.g. "
              "30s, 1500ms, 5m, 1h), got \"10x\"\n");
    ck_assert_int_eq(count_lines(e), 1);
    free(e);
    e = load_err("[server]\nrequest_timeout = -1s\n" APP);
    has_error(e, 2,
              "[server] request_timeout: expected a duration (e.g. "
              "30s, 1500ms, 5m, 1h), got \"-1s\"\n");
    free(e);
}
END_TEST

START_TEST(test_err_bad_size)
{
    char *e = load_err("[server]\nmax_body_size = 1.5M\n"
                       "[recycle]\nmax_rss = 10T\n" APP);

    has_error(e, 2,
              "[server] max_body_size: expected a size (e.g. 8190, "
              "64K, 256M, 1G), got \"1.5M\"\n");
    has_error(e, 4,
              "[recycle] max_rss: expected a size (e.g. 8190, 64K, "
              "256M, 1G), a share of the cgroup's memory per worker (e.g. 80%, "
              "at most 100%) or auto, got \"10T\"\n");
    ck_assert_int_eq(count_lines(e), 2);
    free(e);
}
END_TEST

START_TEST(test_err_bad_bool_enum_string)
{
    char *e = load_err("[server]\npreload = maybe\npidfile =\n"
                       "[recycle]\nmemory_metric = vss\n"
                       "[log]\nlevel = loud\naccess_log =\nerror_log =\n" APP);

    has_error(e, 2,
              "[server] preload: expected true or false (also yes/no, "
              "on/off, 1/0), got \"maybe\"\n");
    has_error(e, 3, "[server] pidfile: expected a non-empty value, got \"\"\n");
    has_error(e, 5,
              "[recycle] memory_metric: expected rss, uss or pss, "
              "got \"vss\"\n");
    has_error(e, 7,
              "[log] level: expected error, warn, info or debug, "
              "got \"loud\"\n");
    has_error(e, 8,
              "[log] access_log: expected \"off\", \"stderr\" or a "
              "path, got \"\"\n");
    has_error(e, 9,
              "[log] error_log: expected \"stderr\" or a path, "
              "got \"\"\n");
    ck_assert_int_eq(count_lines(e), 6);
    free(e);
}
END_TEST

START_TEST(test_err_bad_listen)
{
    char *e = load_err("[server]\n"
                       "listen = 127.0.0.1:80, localhost, , [::1]:8080,\n" APP
                       "[admin]\nlisten = 127.0.0.1:99999\n"
                       "[upstream b]\nservers = 127.0.0.1:1, 127.0.0.1:1\n");

    has_error(e, 2,
              "[server] listen: expected host:port, [v6]:port or "
              "unix:/path (");
    ck_assert_ptr_nonnull(strstr(e, "), got \"localhost\"\n"));
    has_error(e, 2,
              "[server] listen: expected host:port, [v6]:port or "
              "unix:/path (empty list item), got \"\"\n");
    has_error(e, 6,
              "[admin] listen: expected host:port, [v6]:port or "
              "unix:/path (");
    has_error(e, 8,
              "[upstream b] servers: duplicate address "
              "\"127.0.0.1:1\"\n");
    ck_assert_int_eq(count_lines(e), 5); /* two empty items on line 2 */
    free(e);
}
END_TEST

START_TEST(test_err_duplicate_key)
{
    char *e = load_err("[server]\nworkers = 2\nworkers = 3\n"
                       "[app]\nmodule = hello\nmodule = echo\n"
                       "greeting = hi\ngreeting = ho\n"
                       "[upstream b]\nservers = 127.0.0.1:1\n"
                       "retries = 1\nretries = 2\n");

    has_error(e, 3, "[server] workers: duplicate key (first set at line 2)\n");
    has_error(e, 6, "[app] module: duplicate key (first set at line 5)\n");
    has_error(e, 8, "[app] greeting: duplicate key (first set at line 7)\n");
    has_error(e, 12,
              "[upstream b] retries: duplicate key (first set at "
              "line 11)\n");
    ck_assert_int_eq(count_lines(e), 4);
    free(e);
}
END_TEST

START_TEST(test_err_cross_fields)
{
    char *e = load_err("[server]\nmax_workers = 4\nworkers = 8\n"
                       "[recycle]\nmax_rss = 512M\nmax_rss_hard = 256M\n"
                       "max_lifetime = 1m\nmin_lifetime = 2m\n" APP);

    has_error(e, 2,
              "[server] max_workers: expected a number >= workers (8), "
              "got \"4\"\n");
    has_error(e, 6,
              "[recycle] max_rss_hard: expected a size greater than "
              "max_rss (512M), got \"256M\"\n");
    has_error(e, 8,
              "[recycle] min_lifetime: expected a duration <= "
              "max_lifetime (1m), got \"2m\"\n");
    ck_assert_int_eq(count_lines(e), 3);
    free(e);

    e = load_err("[recycle]\nmax_rss = 1G\nmax_rss_hard = 1024M\n" APP);
    has_error(e, 3, "[recycle] max_rss_hard: expected a size greater than");
    free(e);
}
END_TEST

START_TEST(test_cross_fields_ok)
{
    struct config c;

    /* max_rss_hard alone, max_workers == workers, min_lifetime alone */
    load_ok("[server]\nworkers = 4\nmax_workers = 4\n"
            "[recycle]\nmax_rss_hard = 1G\nmin_lifetime = 1h\n" APP,
            &c);
    ck_assert_uint_eq(c.server.max_workers, 4);
    ck_assert_uint_eq(c.recycle.max_rss_hard, 1u << 30);
    config_free(&c);
}
END_TEST

/* max_rss and max_rss_hard as shares of the cgroup's memory per worker:
 * kept as written for the master to resolve (memlimit.c); bytes 0 here. */
START_TEST(test_memory_shares)
{
    struct config c;
    char *e;

    load_ok("[recycle]\nmax_rss = auto\nmax_rss_hard = 97.5%\n" APP, &c);
    ck_assert_uint_eq(c.recycle.max_rss, 0);
    ck_assert(c.recycle.max_rss_set.automatic);
    ck_assert_double_eq(c.recycle.max_rss_set.percent, CONFIG_AUTO_MAX_RSS);
    ck_assert_int_eq(c.recycle.max_rss_set.line, 2);
    ck_assert_str_eq(c.recycle.max_rss_set.text, "auto");
    ck_assert(!c.recycle.max_rss_hard_set.automatic);
    ck_assert_double_eq(c.recycle.max_rss_hard_set.percent, 97.5);
    ck_assert_str_eq(c.recycle.max_rss_hard_set.text, "97.5%");
    config_free(&c);
    /* A size and a share: compared by the master, once it knows the limit. */
    load_ok("[recycle]\nmax_rss = 2G\nmax_rss_hard = AUTO\n" APP, &c);
    ck_assert_uint_eq(c.recycle.max_rss, 2u << 30);
    ck_assert_uint_eq(c.recycle.max_rss_set.bytes, 2u << 30);
    ck_assert_double_eq(c.recycle.max_rss_set.percent, 0);
    ck_assert_double_eq(c.recycle.max_rss_hard_set.percent, CONFIG_AUTO_MAX_RSS_HARD);
    config_free(&c);

    e = load_err("[recycle]\nmax_rss = 0%\nmax_rss_hard = 101%\n" APP);
    has_error(e, 2,
              "[recycle] max_rss: expected a size (e.g. 8190, 64K, 256M, 1G), "
              "a share of the cgroup's memory per worker (e.g. 80%, at most 100%) "
              "or auto, got \"0%\"\n");
    has_error(e, 3, "[recycle] max_rss_hard: expected a size");
    ck_assert_int_eq(count_lines(e), 2);
    free(e);
    e = load_err("[recycle]\nmax_rss = 80 %\nmax_rss_hard = %\n" APP);
    has_error(e, 2, "[recycle] max_rss: expected a size");
    has_error(e, 3, "[recycle] max_rss_hard: expected a size");
    free(e);
    e = load_err("[recycle]\nmax_rss = 1.5%x\nmax_rss_hard = auto5\n" APP);
    ck_assert_int_eq(count_lines(e), 2);
    free(e);
    /* Two shares compare at once. */
    e = load_err("[recycle]\nmax_rss = 96%\nmax_rss_hard = auto\n" APP);
    ck_assert_int_eq(count_lines(e), 1);
    has_error(e, 3,
              "[recycle] max_rss_hard: expected a share greater than max_rss "
              "(96% = 96%), got \"auto\" (= 95%)\n");
    free(e);
    e = load_err("[recycle]\nmax_rss = auto\nmax_rss_hard = 75%\n" APP);
    has_error(e, 3,
              "[recycle] max_rss_hard: expected a share greater than max_rss "
              "(auto = 75%), got \"75%\" (= 75%)\n");
    free(e);
}
END_TEST

START_TEST(test_err_missing_module)
{
    char *e = load_err("[server]\nworkers = 2\n");

    has_error(e, 0, "[app] module: required key is missing");
    ck_assert_int_eq(count_lines(e), 1);
    free(e);

    e = load_err("[server]\nworkers = 2\n[app]\nupstream = b\n");
    has_error(e, 3, "[app] module: required key is missing");
    ck_assert_int_eq(count_lines(e), 1);
    free(e);
}
END_TEST

START_TEST(test_err_missing_file)
{
    struct config c;
    char *e = NULL;

    snprintf(cur_path, sizeof(cur_path), "%s/no-such.ini", tmpdir);
    ck_assert_int_eq(config_load(cur_path, &c, &e), -1);
    ck_assert_ptr_nonnull(e);
    has_error(e, 0, "cannot open: No such file or directory\n");
    ck_assert_int_eq(count_lines(e), 1);
    ck_assert_ptr_null(c.path);
    ck_assert_ptr_null(c.server.listen);
    config_free(&c);
    free(e);

    /* errors may be NULL */
    ck_assert_int_eq(config_load(cur_path, &c, NULL), -1);
}
END_TEST

START_TEST(test_err_syntax_lines)
{
    char *e = load_err("stray = 1\n" APP "no equals sign\n"
                       "[server\n"
                       "workers = 3\n"
                       "[server] trailing\n"
                       "workers: 3\n"
                       "listen = 127.0.0.1:1\n"
                       "   127.0.0.1:2\n"
                       "= 5\n");

    has_error(e, 1, "stray: key outside any section");
    has_error(e, 4,
              "expected \"key = value\" or \"[section]\", got "
              "\"no equals sign\"\n");
    has_error(e, 5,
              "expected \"]\" to close the section header, got "
              "\"[server\"\n");
    has_error(e, 7, "unexpected text after \"]\": \"trailing\"\n");
    has_error(e, 8,
              "expected \"key = value\" or \"[section]\", got "
              "\"workers: 3\"\n");
    has_error(e, 10,
              "expected \"key = value\" or \"[section]\" (an indented "
              "line does not continue the one above), got \"127.0.0.1:2\"\n");
    has_error(e, 11, "expected \"key = value\", got no key before \"=\"\n");
    ck_assert_int_eq(count_lines(e), 7); /* line 6: in the broken section */
    free(e);
}
END_TEST

START_TEST(test_err_many_sorted)
{
    char *e = load_err("[server]\n"         /* 1 */
                       "max_workers = 1\n"  /* 2: cross-check, found last */
                       "workers = two\n"    /* 3 */
                       "[nope]\n"           /* 4 */
                       "[recycle]\n"        /* 5 */
                       "max_rss = lots\n"   /* 6 */
                       "[upstream api]\n"   /* 7: no servers */
                       "max_idle = -3\n"    /* 8 */
                       "[log]\n"            /* 9 */
                       "level = chatty\n"); /* 10; and no [app] */
    const char *want[] = {": [app] module",
                          ":2: [server] max_workers",
                          ":3: [server] workers",
                          ":4: unknown section",
                          ":6: [recycle] max_rss",
                          ":7: [upstream api] servers",
                          ":8: [upstream api] max_idle",
                          ":10: [log] level"};
    const char *at = e;

    ck_assert_int_eq(count_lines(e), 8);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const char *hit = strstr(at, want[i]);
        ck_assert_msg(hit != NULL, "\"%s\" missing or out of order in\n%s", want[i], e);
        at = hit;
    }
    has_error(e, 2,
              "[server] max_workers: expected a number >= workers (2), "
              "got \"1\"");
    free(e);
}
END_TEST

START_TEST(test_long_servers_line)
{
    char text[4096], list[2048] = "";
    struct config c;
    size_t off = 0;

    for (int i = 1; i <= 40; i++)
        off += (size_t)snprintf(list + off, sizeof(list) - off, "%s127.0.0.%d:%d",
                                i > 1 ? ", " : "", i, 9000 + i);
    ck_assert_uint_gt(strlen(list), 600);
    snprintf(text, sizeof(text),
             APP "[upstream many]\nservers = %s\n"
                 "max_idle = 4\n",
             list);
    load_ok(text, &c);
    ck_assert_uint_eq(c.nupstreams, 1);
    ck_assert_uint_eq(c.upstreams[0].nservers, 40);
    ck_assert_str_eq(c.upstreams[0].servers[0].text, "127.0.0.1:9001");
    ck_assert_str_eq(c.upstreams[0].servers[20].text, "127.0.0.21:9021");
    ck_assert_str_eq(c.upstreams[0].servers[39].text, "127.0.0.40:9040");
    ck_assert_uint_eq(c.upstreams[0].max_idle, 4); /* nothing split off */
    config_free(&c);
}
END_TEST

START_TEST(test_line_too_long)
{
    size_t n = 70000;
    char *text = malloc(n + 64), *e;

    ck_assert_ptr_nonnull(text);
    strcpy(text, APP "[server]\npidfile = ");
    memset(text + strlen(text), 'x', n);
    strcpy(text + strlen(APP "[server]\npidfile = ") + n, "\nworkers = x\n");
    e = load_err(text);
    has_error(e, 4, "line too long (more than 65535 bytes)\n");
    has_error(e, 5, "[server] workers: expected"); /* numbering goes on */
    ck_assert_int_eq(count_lines(e), 2);
    free(e);
    /* The limit itself: a comment line of 65535 bytes is read, one more is not. */
    for (size_t len = 65535; len <= 65536; len++) {
        strcpy(text, APP "[server]\n");
        memset(text + strlen(text), ';', len);
        strcpy(text + strlen(APP "[server]\n") + len, "\nworkers = x\n");
        e = load_err(text);
        if (len == 65536)
            has_error(e, 4, "line too long (more than 65535 bytes)\n");
        has_error(e, 5, "[server] workers: expected");
        ck_assert_int_eq(count_lines(e), len == 65536 ? 2 : 1);
        free(e);
    }
    free(text);
}
END_TEST

START_TEST(test_app_keys_raw)
{
    struct config c;
    struct config_kv *kv;

    load_ok("; leading comment\n"
            "[app]\n"
            "greeting = Hello,  World!\n"
            "module = ./apps/x.so\n"
            "upstream = backend\n"
            "leak_bytes = 1M ; a comment\n"
            "Weird-Key = 2s\n",
            &c);
    ck_assert_str_eq(c.app.module, "./apps/x.so");
    ck_assert_uint_eq(c.app.nkv, 4);
    ck_assert_str_eq(c.app.kv[0].key, "greeting");
    ck_assert_str_eq(c.app.kv[0].value, "Hello,  World!");
    ck_assert_int_eq(c.app.kv[0].line, 3);
    ck_assert_str_eq(c.app.kv[1].key, "upstream");
    ck_assert_int_eq(c.app.kv[1].line, 5);
    ck_assert_str_eq(c.app.kv[2].value, "1M");
    ck_assert_int_eq(c.app.kv[2].line, 6);
    ck_assert_str_eq(c.app.kv[3].key, "Weird-Key");
    ck_assert_int_eq(c.app.kv[3].line, 7);
    for (size_t i = 0; i < c.app.nkv; i++)
        ck_assert(!c.app.kv[i].used);
    kv = config_app_find(&c, "leak_bytes");
    ck_assert_ptr_eq(kv, &c.app.kv[2]);
    ck_assert_ptr_null(config_app_find(&c, "module"));
    ck_assert_ptr_null(config_app_find(&c, "missing"));
    config_free(&c);
}
END_TEST

START_TEST(test_multiple_upstreams)
{
    struct config c;

    load_ok(APP "[upstream api]\n" /* 3 */
                "servers = 127.0.0.1:9001\n"
                "max_connections = 8\n"
                "[log]\n"
                "level = warn\n"
                "[upstream cache.v2]\n" /* 8 */
                "servers = [::1]:6000, unix:/tmp/cache.sock\n",
            &c);
    ck_assert_uint_eq(c.nupstreams, 2);
    ck_assert_str_eq(c.upstreams[0].name, "api");
    ck_assert_int_eq(c.upstreams[0].line, 3);
    ck_assert_uint_eq(c.upstreams[0].nservers, 1);
    ck_assert_uint_eq(c.upstreams[0].max_connections, 8);
    ck_assert_str_eq(c.upstreams[1].name, "cache.v2");
    ck_assert_int_eq(c.upstreams[1].line, 8);
    ck_assert_uint_eq(c.upstreams[1].nservers, 2);
    ck_assert_str_eq(c.upstreams[1].servers[0].text, "[::1]:6000");
    ck_assert_str_eq(c.upstreams[1].servers[1].text, "unix:/tmp/cache.sock");
    /* the second keeps every default */
    ck_assert_uint_eq(c.upstreams[1].max_idle, 32);
    ck_assert_uint_eq(c.upstreams[1].max_connections, 256);
    ck_assert_double_eq(c.upstreams[1].connect_timeout, 2);
    ck_assert_double_eq(c.upstreams[1].read_timeout, 30);
    ck_assert_double_eq(c.upstreams[1].idle_timeout, 60);
    ck_assert_uint_eq(c.upstreams[1].keepalive_requests, 1000);
    ck_assert_uint_eq(c.upstreams[1].retries, 1);
    ck_assert_uint_eq(c.upstreams[1].max_fails, 1);
    ck_assert_double_eq(c.upstreams[1].fail_timeout, 10);
    ck_assert_int_eq(c.log.level, LOG_WARN);
    config_free(&c);
}
END_TEST

START_TEST(test_err_upstream_sections)
{
    char *e = load_err(APP "[upstream a]\nservers = 127.0.0.1:1\n" /* 3 */
                           "[upstream a]\nservers = 127.0.0.1:2\n" /* 5 */
                           "[upstream]\n"                          /* 7 */
                           "[upstream two words]\n"                /* 8 */
                           "[upstream empty]\n"                    /* 9 */
                           "max_connections = 0\n"
                           "[server]\n[server]\nworkers = x\n"); /* 11-13 */

    has_error(e, 5, "duplicate section [upstream a] (first at line 3)\n");
    has_error(e, 7, "[upstream ]: expected a name of 1 to 64 letters");
    has_error(e, 8, "[upstream two words]: expected a name");
    has_error(e, 9, "[upstream empty] servers: required key is missing\n");
    has_error(e, 10,
              "[upstream empty] max_connections: expected a number "
              "from 1 to 1048576, got \"0\"\n");
    has_error(e, 12, "duplicate section [server] (first at line 11)\n");
    ck_assert_int_eq(count_lines(e), 6); /* keys of ignored sections skipped */
    free(e);
}
END_TEST

START_TEST(test_comments_and_whitespace)
{
    struct config c;

    load_ok("\xEF\xBB\xBF; a BOM, then a comment\r\n"
            "# hash comment\r\n"
            "[server]   ; section comment\r\n"
            "  workers = 3 ; indented key, inline comment\r\n"
            "\tmax_workers = 9 # hash inline comment\r\n"
            "\r\n"
            "user = www-data;not-a-comment\r\n"
            "[app]\r\n"
            "module = hello\r\n",
            &c);
    ck_assert_uint_eq(c.server.workers, 3);
    ck_assert_uint_eq(c.server.max_workers, 9);
    ck_assert_str_eq(c.server.user, "www-data;not-a-comment");
    ck_assert_str_eq(c.app.module, "hello");
    config_free(&c);
}
END_TEST

START_TEST(test_log_values)
{
    struct config c;

    load_ok(APP "[log]\naccess_log = /var/log/pf/access.log\n"
                "error_log = stderr\nlevel = WARNING\n",
            &c);
    ck_assert_str_eq(c.log.access_log, "/var/log/pf/access.log");
    ck_assert_str_eq(c.log.error_log, "stderr");
    ck_assert_int_eq(c.log.level, LOG_WARN);
    config_free(&c);

    load_ok(APP "[log]\naccess_log = off\nlevel = error\n", &c);
    ck_assert_ptr_null(c.log.access_log);
    ck_assert_int_eq(c.log.level, LOG_ERROR);
    config_free(&c);
}
END_TEST

START_TEST(test_failed_load_then_reload)
{
    struct config c;
    char *e = NULL;

    ck_assert_int_eq(load("[server]\nworkers = 3\nbogus = 1\n" APP
                          "[upstream u]\nservers = 127.0.0.1:1\n",
                          &c, &e),
                     -1);
    ck_assert_ptr_null(c.path);
    ck_assert_ptr_null(c.upstreams);
    ck_assert_ptr_null(c.app.module);
    ck_assert_uint_eq(c.server.workers, 0);
    config_free(&c);
    free(e);

    e = (char *)1; /* must be reset to NULL on success */
    ck_assert_int_eq(load("[server]\nworkers = 3\n" APP, &c, &e), 0);
    ck_assert_ptr_null(e);
    ck_assert_uint_eq(c.server.workers, 3);
    config_free(&c);
}
END_TEST

/* An unclosed section header: its own error only, not first a "required
 * key is missing" that follows from it (issue 14). */
START_TEST(test_err_unclosed_header)
{
    char *e = load_err("[server]\nworkers = 2\n[app\nmodule = hello\n");

    has_error(e, 3, "expected \"]\" to close the section header, got \"[app\"\n");
    ck_assert_msg(count_lines(e) == 1, "more than the syntax error:\n%s", e);
    free(e);
    /* the same for a line that is no key at all */
    e = load_err("[server]\nworkers = 2\n[app]\nmodule hello\n");
    has_error(e, 4, "expected \"key = value\" or \"[section]\", got \"module hello\"\n");
    ck_assert_msg(count_lines(e) == 1, "more than the syntax error:\n%s", e);
    free(e);
    /* a bad value is no syntax error: the missing module is still named */
    e = load_err("[server]\nworkers = x\n");
    has_error(e, 2, "[server] workers: expected");
    has_error(e, 0, "[app] module: required key is missing");
    free(e);
}
END_TEST

/* config_line and config_raw: where each key of a fixed section was set,
 * and as what. */
START_TEST(test_key_lines)
{
    struct config c;

    load_ok("; a comment\n"            /* 1 */
            "[server]\n"               /* 2 */
            "workers = auto\n"         /* 3 */
            "user = www-data\n"        /* 4 */
            "\n"                       /* 5 */
            "[app]\n"                  /* 6 */
            "module = hello\n"         /* 7 */
            "greeting = hi\n"          /* 8 */
            "[log]\n"                  /* 9 */
            "error_log = /tmp/x.log\n" /* 10 */
            "[upstream api]\n"         /* 11 */
            "servers = 127.0.0.1:1\n", /* 12 */
            &c);
    ck_assert_int_eq(config_line(&c, "server", NULL), 2);
    ck_assert_int_eq(config_line(&c, "server", "workers"), 3);
    ck_assert_int_eq(config_line(&c, "server", "user"), 4);
    ck_assert_int_eq(config_line(&c, "server", "group"), 0);
    ck_assert_int_eq(config_line(&c, "app", NULL), 6);
    ck_assert_int_eq(config_line(&c, "app", "module"), 7);
    ck_assert_int_eq(config_line(&c, "log", "error_log"), 10);
    ck_assert_int_eq(config_line(&c, "log", "access_log"), 0);
    ck_assert_int_eq(config_line(&c, "admin", NULL), 0);
    ck_assert_str_eq(config_raw(&c, "server", "workers"), "auto");
    ck_assert_str_eq(config_raw(&c, "log", "error_log"), "/tmp/x.log");
    ck_assert_ptr_null(config_raw(&c, "server", "group"));
    config_free(&c);
}
END_TEST

/* config_walk's values as "key = value" lines, sections as headers; keys
 * without a value left out. */
static void walk_line(void *arg, const char *section, const char *key, const char *value)
{
    char **text = arg, *more;

    if (key == NULL)
        ck_assert(asprintf(&more, "%s[%s]\n", *text, section) > 0);
    else if (value != NULL)
        ck_assert(asprintf(&more, "%s%s = %s\n", *text, key, value) > 0);
    else
        return;
    free(*text);
    *text = more;
}

static char *walk_text(const struct config *c)
{
    char *text = strdup("");

    config_walk(c, walk_line, &text);
    return text;
}

/* What config_walk writes is what config_load reads back as the same
 * configuration: every key, defaults included, each value written in the
 * unit it was given in where that is exact (preforkd -T). */
START_TEST(test_walk_round_trip)
{
    static const char *const want[] = {
        "[server]\nlisten = 127.0.0.1:8000, [::1]:8001, unix:/run/x.sock\n",
        "\nworkers = 3\nmax_workers = 9\n",
        "\npreload = false\n",
        "\npidfile = /run/p.pid\nuser = nobody\n",
        "\ntimeout = 30s\n",
        "\ngraceful_timeout = 90s\n",
        "\nkeepalive_timeout = 1500ms\n",
        "\nheader_timeout = 250ms\n",
        "\nbody_timeout = 2h\n",
        "\nrequest_timeout = 1m\n",
        "\nmax_body_size = 1536K\n",
        "\nmax_header_size = 8190\n",
        "[recycle]\nmax_requests = 1000\n",
        "\nmax_rss = 62.5%\nmax_rss_hard = auto\n",
        "\nmemory_metric = pss\nmax_lifetime = 0.0015s\n",
        "[app]\nmodule = hello\ngreeting = hi there\n[upstream api]\n"
        "servers = 127.0.0.1:9001\n",
        "\nread_timeout = 45s\n",
        "[log]\nerror_log = stderr\nlevel = debug\naccess_log = /var/log/a.log\n"
        "access_log_format = %h %s\n[admin]\nlisten = 127.0.0.1:9000\n",
    };
    struct config c, again;
    char *text, *text2, *err = NULL;

    load_ok("[server]\nlisten = 127.0.0.1:8000, [::1]:8001, unix:/run/x.sock\n"
            "workers = 3\nmax_workers = 9\nkeepalive_timeout = 1500ms\n"
            "header_timeout = 0.25s\ngraceful_timeout = 90\nbody_timeout = 2h\n"
            "max_body_size = 1536K\npidfile = /run/p.pid\nuser = nobody\n"
            "preload = no\n"
            "[recycle]\nmax_rss = 62.5%\nmax_rss_hard = auto\nmemory_metric = pss\n"
            "max_lifetime = 0.0015s\nmax_requests = 1000\n"
            "[app]\nmodule = hello\ngreeting = hi there\n"
            "[upstream api]\nservers = 127.0.0.1:9001\nread_timeout = 45s\n"
            "[log]\nlevel = debug\naccess_log = /var/log/a.log\n"
            "access_log_format = %h %s\n"
            "[admin]\nlisten = 127.0.0.1:9000\n",
            &c);
    text = walk_text(&c);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(text, want[i]) != NULL, "no\n%s\nin\n%s", want[i], text);
    ck_assert_msg(strstr(text, "group =") == NULL, "an unset key written:\n%s", text);
    ck_assert_msg(config_load_text("walked", text, &again, &err) == 0, "%s\nin\n%s", err,
                  text);
    text2 = walk_text(&again);
    ck_assert_str_eq(text2, text);
    config_free(&again);
    config_free(&c);
    free(text2);
    free(text);

    /* The defaults alone. */
    load_ok(APP, &c);
    text = walk_text(&c);
    ck_assert_msg(strstr(text, "\naccess_log = off\n") &&
                      strstr(text, "\nlisten = 127.0.0.1:8000\n") &&
                      strstr(text, "\nmax_rss = 0\n") && strstr(text, "[admin]\n") &&
                      !strstr(text, "pidfile"),
                  "%s", text);
    ck_assert_int_eq(config_load_text("walked", text, &again, NULL), 0);
    config_free(&again);
    config_free(&c);
    free(text);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *t = tcase_create("config");

    tcase_add_test(t, test_defaults);
    tcase_add_test(t, test_load_text);
    tcase_add_test(t, test_minimal_file);
    tcase_add_test(t, test_every_key);
    tcase_add_test(t, test_duration_units);
    tcase_add_test(t, test_size_units);
    tcase_add_test(t, test_bool_values);
    tcase_add_test(t, test_workers_auto);
    tcase_add_test(t, test_err_unknown_section);
    tcase_add_test(t, test_err_unknown_key);
    tcase_add_test(t, test_err_bad_int);
    tcase_add_test(t, test_err_bad_duration);
    tcase_add_test(t, test_request_timeout);
    tcase_add_test(t, test_err_bad_size);
    tcase_add_test(t, test_err_bad_bool_enum_string);
    tcase_add_test(t, test_err_bad_listen);
    tcase_add_test(t, test_err_duplicate_key);
    tcase_add_test(t, test_err_cross_fields);
    tcase_add_test(t, test_cross_fields_ok);
    tcase_add_test(t, test_memory_shares);
    tcase_add_test(t, test_err_missing_module);
    tcase_add_test(t, test_err_missing_file);
    tcase_add_test(t, test_err_syntax_lines);
    tcase_add_test(t, test_err_many_sorted);
    tcase_add_test(t, test_long_servers_line);
    tcase_add_test(t, test_line_too_long);
    tcase_add_test(t, test_app_keys_raw);
    tcase_add_test(t, test_multiple_upstreams);
    tcase_add_test(t, test_err_upstream_sections);
    tcase_add_test(t, test_comments_and_whitespace);
    tcase_add_test(t, test_log_values);
    tcase_add_test(t, test_failed_load_then_reload);
    tcase_add_test(t, test_err_unclosed_header);
    tcase_add_test(t, test_key_lines);
    tcase_add_test(t, test_walk_round_trip);
    suite_add_tcase(s, t);
    return s;
}

/* Removes tmpdir and whatever a failed test left in it. */
static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    char path[PATH_MAX * 2];

    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
        unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(tmpdir);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    SRunner *sr;
    int failed;

    snprintf(tmpdir, sizeof(tmpdir), "%s/pf-config-XXXXXX",
             base != NULL && *base != '\0' ? base : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_tmpdir();
    return failed == 0 ? 0 : 1;
}
