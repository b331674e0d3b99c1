/*
 * test_metrics.c - integration tests of the figures an app publishes about
 * its worker (pf_worker_heap, pf_metric_set: src/metrics.c) as the master
 * shows them: /stats (heaps with growth slopes, app rows), /metrics (each
 * family together, escaped labels), the retirement line (which heap grew),
 * and the bounded table.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "opsutil.h"

static char *get(int port, const char *path)
{
    struct hconn *c = harness_connect(port);
    struct hresp r;
    char req[128], *body;

    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    harness_send_str(c, req);
    harness_expect_response(c, &r, false, path);
    ck_assert_int_eq(r.status, 200);
    body = strdup(r.body);
    hresp_free(&r);
    harness_close(c);
    return body;
}

/* Every sample line belongs to the family of the TYPE line above it: each
 * family together, as the text format requires. */
static void expect_grouped(char *text)
{
    char family[96] = "", *line, *save = NULL, *copy = strdup(text);

    for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t n;
        if (sscanf(line, "# TYPE %95s", family) == 1 || line[0] == '#')
            continue;
        n = strcspn(line, "{ ");
        ck_assert_msg(strlen(family) == n && strncmp(line, family, n) == 0,
                      "%s outside its family (%s): %s", line, family, text);
    }
    free(copy);
}

static char *admin_get(int port, const char *path)
{
    return get(port, path);
}

START_TEST(test_figures)
{
    char *mod = load_module_path("PREFORKD_TEST_APPS", "figures");
    struct hdaemon *d = harness_daemon_new();
    struct hconn *c;
    int admin;
    char *j, *m, why[128];
    double per_k;

    harness_daemon_config(d, "[server]\nlisten = 127.0.0.1:0\nworkers = 1\n"
                          "[recycle]\nmax_rss = 1G\n[app]\nmodule = %s\n[admin]\nlisten = 127.0.0.1:0\n", mod);
    free(mod);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 10);
    admin = stats_admin_port(d);
    c = harness_connect(d->port);
    for (int i = 0; i < 400; i++) {
        struct hresp r;
        harness_send_str(c, i % 4 == 3 ? "GET /b HTTP/1.1\r\nHost: t\r\n\r\n"
                                       : "GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
        harness_expect_response(c, &r, false, "GET /a or /b");
        ck_assert_int_eq(r.status, 200);
        hresp_free(&r);
    }
    harness_close(c);
    j = admin_get(admin, "/stats");
    ck_assert_msg(ops_json_valid(j, why, sizeof why), "%s: %s", why, j);
    ck_assert_msg(ops_num(j, "toy") == (1 << 20) + 300 * 2048, "%s", j);
    /* 2048 bytes on 3 requests of 4: 1.536 MB per 1000 requests. */
    per_k = ops_num(j, "toy_growth_per_1k_requests");
    ck_assert_msg(per_k > 1.3e6 && per_k < 1.8e6, "toy growth %f: %s", per_k, j);
    /* Under ASan malloc is the sanitizer's, and mallinfo2 says 0. */
    ck_assert_msg(ops_num(j, "c") > 0 || (getenv("PREFORKD_SANITIZE") &&
                                          strcmp(getenv("PREFORKD_SANITIZE"), "1") == 0 &&
                                          ops_num(j, "c") == 0), "%s", j);
    ck_assert_msg(strstr(j, "{\"name\": \"hits\", \"label\": \"/a\", \"value\": 300}") &&
                  strstr(j, "{\"name\": \"hits\", \"label\": \"/b\", \"value\": 100}"), "%s", j);
    free(j);
    m = admin_get(admin, "/metrics");
    ck_assert_msg(strstr(m, "# TYPE preforkd_app_hits gauge\n") &&
                  strstr(m, ",label=\"/a\"} 300\n") && strstr(m, ",label=\"/b\"} 100\n") &&
                  strstr(m, ",heap=\"toy\"} ") && strstr(m, ",heap=\"c\"} "), "%s", m);
    expect_grouped(m);
    free(m);
    /* 16 rows a worker: 2 taken by hits, 14 fit of 20. */
    j = get(d->port, "/fill");
    ck_assert_str_eq(j, "14\n");
    free(j);
    free(get(d->port, "/clear"));
    j = admin_get(admin, "/stats");
    ck_assert_msg(strstr(j, "\"fill\"") == NULL, "%s", j);
    free(j);
    j = get(d->port, "/fill");
    ck_assert_str_eq(j, "14\n");
    free(j);
    j = get(d->port, "/leaving");
    ck_assert_str_eq(j, "(null)\n");
    free(j);
    /* The retirement line says which heap grew; the app knew why it left. */
    ck_assert(harness_daemon_stop(d, SIGTERM, 10));
    ck_assert_msg(harness_log_count(d, "retired: shutdown .*; heaps: toy 1\\.[0-9]M "
                                    "\\(\\+1\\.[3-7]M/1000 requests\\), c [0-9.]+[BKM] ") == 1,
                  "%s", harness_log_tail(d, 1500));
    ck_assert_int_eq(harness_log_count(d, "worker 1: figures: leaving: shutdown"), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = harness_tcase(s, "metrics", 30);

    tcase_add_test(tc, test_figures);
    return harness_run_suite(s);
}
