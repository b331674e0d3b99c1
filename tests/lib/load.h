/*
 * load.h - shared by the integration tests: concurrent HTTP client load
 * (keep-alive and not, every response checked) and reading the admin
 * endpoint's /stats while it runs. Safe to call from several threads; no
 * Check assertion runs off the test's main thread.
 */
#ifndef PF_TEST_LOAD_H
#define PF_TEST_LOAD_H

#include <pthread.h>
#include <stdbool.h>

#include "harness.h"

/* $env_dir/name.so, malloc'd. */
char *load_module_path(const char *env_dir, const char *name);

/* The port of the admin endpoint from "admin endpoint on 127.0.0.1:PORT". */
int stats_admin_port(struct hdaemon *d);
/* GET /stats from the admin port; the body (malloc'd) or NULL. */
char *stats_get(int port);
/* The same for any path of the admin endpoint (/metrics): a 200's body. */
char *stats_get_path(int port, const char *path);
/* The number after "key": in text (the first one at or after text), or -1. */
double stats_num(const char *text, const char *key);
/* Whether the worker object obj has "key": "want". */
bool stats_str_is(const char *obj, const char *key, const char *want);
/* Calls fn for each worker object of a /stats body. */
void stats_each_worker(const char *json, void (*fn)(const char *obj, void *), void *arg);

struct load {
    int port;
    int requests;        /* how many; ignored when stop is set */
    volatile bool *stop; /* if not NULL: run until *stop instead */
    bool keepalive;
    const char *path;
    const char *body; /* expected body, exactly; NULL: any 200 */
    int ok, failed;   /* out */
    char why[160];    /* out: the first failure */
};

/* A thread body: l->requests GETs, each a complete 200 (with l->body).
 * Keep-alive clients reconnect when the server closes, which is not a
 * failure (a retiring worker answers Connection: close). */
void *load_run(void *l);
/* load_run on this thread, asserting that nothing failed. */
void load_sync(int port, int n, bool keepalive, const char *body);

/* Called with each /stats body read during a load (on the sampler thread). */
struct sampler {
    int port; /* the admin endpoint */
    void (*fn)(const char *json, void *arg);
    void *arg;
    volatile bool stop;
    int samples; /* out */
};

/* nthreads clients (every other one keep-alive) of per_thread requests,
 * with s (if not NULL) sampling /stats until they are done, and `during`
 * (if not NULL) run on the main thread once the clients have started, e.g.
 * to send signals under load. Asserts that no request failed. */
void load_concurrent(int port, int nthreads, int per_thread, const char *body,
                     struct sampler *s, void (*during)(void *), void *arg);

/* Clients in the background, until load_bg_stop. */
#define LOAD_BG_MAX 8
struct load_bg {
    volatile bool stop;
    int n;
    pthread_t t[LOAD_BG_MAX];
    struct load l[LOAD_BG_MAX];
};

/* Starts n clients (every other one keep-alive) of GET /, each response a
 * 200 with `body` (NULL: any body); returns once each has had an answer. */
void load_bg_start(struct load_bg *g, int port, int n, const char *body);
/* Stops them; asserts that none failed and that some succeeded. */
void load_bg_stop(struct load_bg *g);

#endif
