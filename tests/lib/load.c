/*
 * load.c - concurrent client load and /stats reading for the integration
 * tests (see load.h). Threads use only the harness's non-asserting calls;
 * results are checked on the main thread.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "load.h"

#define LOAD_THREADS_MAX 16

char *load_module_path(const char *env_dir, const char *name)
{
    char file[64];

    snprintf(file, sizeof file, "%s.so", name);
    return harness_path(env_dir, file);
}

int stats_admin_port(struct hdaemon *d)
{
    long port = 0;

    ck_assert_msg(harness_log_wait(d, "admin endpoint on 127\\.0\\.0\\.1:[0-9]+", 1, 5),
                  "no admin endpoint line");
    ck_assert_int_eq(harness_log_numbers(d, "admin endpoint on 127\\.0\\.0\\.1:([0-9]+)",
                                         1, &port, 1),
                     1);
    return (int)port;
}

char *stats_get(int port)
{
    return stats_get_path(port, "/stats");
}

char *stats_get_path(int port, const char *path)
{
    struct hconn *c = harness_try_connect(port);
    struct hresp r;
    char *body = NULL, req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);

    if (c == NULL)
        return NULL;
    if (harness_send(c, req, (size_t)n, 5) == 0 &&
        harness_read_response(c, &r, false, 5) == 0) {
        if (r.status == 200) {
            body = r.body;
            r.body = NULL;
        }
        hresp_free(&r);
    }
    harness_close(c);
    return body;
}

double stats_num(const char *text, const char *key)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof pat, "\"%s\": ", key);
    p = text ? strstr(text, pat) : NULL;
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

bool stats_str_is(const char *obj, const char *key, const char *want)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof pat, "\"%s\": \"%s\"", key, want);
    p = strstr(obj, pat);
    return p != NULL && p < strchr(obj, '}');
}

void stats_each_worker(const char *json, void (*fn)(const char *obj, void *), void *arg)
{
    const char *p = json ? strstr(json, "\"workers\": [") : NULL;

    while (p && (p = strstr(p, "{\"slot\": ")) != NULL) {
        fn(p, arg);
        p++;
    }
}

static void load_fail(struct load *l, int i, const char *what)
{
    if (__atomic_fetch_add(&l->failed, 1, __ATOMIC_RELAXED) == 0)
        snprintf(l->why, sizeof l->why, "request %d: %s", i, what);
}

void *load_run(void *arg)
{
    struct load *l = arg;
    struct hconn *c = NULL;
    char req[160];

    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n",
             l->path ? l->path : "/", l->keepalive ? "" : "Connection: close\r\n");
    for (int i = 0; l->stop ? !*l->stop : i < l->requests; i++) {
        struct hresp r = {0};
        const char *conn;

        if (c == NULL && (c = harness_try_connect(l->port)) == NULL) {
            load_fail(l, i, harness_error());
            continue;
        }
        if (harness_send(c, req, strlen(req), 10) != 0 ||
            harness_read_response(c, &r, false, 10) != 0) {
            load_fail(l, i, harness_error());
            hresp_free(&r);
            harness_close(c);
            c = NULL;
            continue;
        }
        if (r.status != 200 || (l->body && strcmp(r.body, l->body) != 0)) {
            char what[96];
            snprintf(what, sizeof what, "status %d, body %.40s", r.status, r.body);
            load_fail(l, i, what);
        } else {
            __atomic_fetch_add(&l->ok, 1, __ATOMIC_RELAXED); /* load_bg_start reads it */
        }
        conn = hresp_header(&r, "Connection");
        if (!l->keepalive || (conn && strcasecmp(conn, "close") == 0)) {
            harness_close(c);
            c = NULL;
        }
        hresp_free(&r);
    }
    if (c)
        harness_close(c);
    return NULL;
}

void load_bg_start(struct load_bg *g, int port, int n, const char *body)
{
    ck_assert(n > 0 && n <= LOAD_BG_MAX);
    g->stop = false;
    g->n = n;
    for (int i = 0; i < n; i++) {
        g->l[i] = (struct load){.port = port,
                                .stop = &g->stop,
                                .keepalive = i % 2 == 0,
                                .body = body};
        ck_assert(pthread_create(&g->t[i], NULL, load_run, &g->l[i]) == 0);
    }
    /* Running before the caller goes on: each client has had an answer. */
    for (double t0 = harness_now();; harness_pause(0.005)) {
        int answered = 0;
        for (int i = 0; i < n; i++)
            answered += __atomic_load_n(&g->l[i].ok, __ATOMIC_RELAXED) +
                            __atomic_load_n(&g->l[i].failed, __ATOMIC_RELAXED) >
                        0;
        if (answered == n)
            break;
        ck_assert_msg(harness_now() - t0 < 10, "%d of %d clients answered in 10 s",
                      answered, n);
    }
}

void load_bg_stop(struct load_bg *g)
{
    int ok = 0, failed = 0;
    const char *why = "";

    g->stop = true;
    for (int i = 0; i < g->n; i++) {
        pthread_join(g->t[i], NULL);
        ok += g->l[i].ok;
        failed += g->l[i].failed;
        if (g->l[i].failed)
            why = g->l[i].why;
    }
    ck_assert_msg(failed == 0, "%d requests failed (%d ok): %s", failed, ok, why);
    ck_assert_int_gt(ok, 0);
}

void load_sync(int port, int n, bool keepalive, const char *body)
{
    struct load l = {.port = port, .requests = n, .keepalive = keepalive, .body = body};

    load_run(&l);
    ck_assert_msg(l.failed == 0, "%d of %d failed: %s", l.failed, n, l.why);
}

static void *sample_run(void *arg)
{
    struct sampler *s = arg;
    double t0 = harness_now();

    /* Until told to stop, and in any case until one sample is taken (a
     * short load may end before the first /stats answer; 10 s at most). */
    while (!s->stop || (s->samples == 0 && harness_now() - t0 < 10)) {
        char *j = stats_get(s->port);
        if (j == NULL)
            continue;
        s->fn(j, s->arg);
        s->samples++;
        free(j);
    }
    return NULL;
}

void load_concurrent(int port, int nthreads, int per_thread, const char *body,
                     struct sampler *s, void (*during)(void *), void *arg)
{
    pthread_t t[LOAD_THREADS_MAX], st;
    struct load l[LOAD_THREADS_MAX];
    int failed = 0;
    char why[160] = "";

    ck_assert(nthreads <= LOAD_THREADS_MAX);
    if (s) {
        s->stop = false;
        s->samples = 0;
        ck_assert(pthread_create(&st, NULL, sample_run, s) == 0);
    }
    for (int i = 0; i < nthreads; i++) {
        l[i] = (struct load){.port = port,
                             .requests = per_thread,
                             .keepalive = i % 2 == 0,
                             .body = body};
        ck_assert(pthread_create(&t[i], NULL, load_run, &l[i]) == 0);
    }
    if (during)
        during(arg);
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        failed += l[i].failed;
        if (l[i].failed && !why[0])
            memcpy(why, l[i].why, sizeof why);
    }
    if (s) {
        s->stop = true;
        pthread_join(st, NULL);
        ck_assert_msg(s->samples > 0, "no /stats sample taken");
    }
    ck_assert_msg(failed == 0, "%d of %d requests failed: %s", failed,
                  nthreads * per_thread, why);
}
