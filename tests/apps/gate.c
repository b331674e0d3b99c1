/*
 * gate.c - test app: leaks leak_bytes per request (as the built-in leak
 * does) and answers 200 "pid N\n", so a test knows which worker served.
 * Its worker_init is gated by files the test creates and removes while the
 * daemon runs: it waits while hold_file exists (up to 30 s), then fails
 * when fail_file exists. So a test decides when replacements are slow to
 * start, or cannot start at all. Runs in the master (load) and in workers.
 *
 * [app] keys: leak_bytes (size, default 0), hold_file, fail_file (paths).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <preforkd.h>

struct gate {
    uint64_t bytes;
    char *hold, *fail;
};

static void *chain; /* leaked blocks stay reachable, as in leak.c */

static char *dup_key(const pf_app_config *cfg, const char *key)
{
    const char *v = pf_config_get(cfg, key);

    return v != NULL && *v != '\0' ? strdup(v) : NULL;
}

static int gate_load(const pf_app_config *cfg, void **state)
{
    static struct gate g;

    if (pf_config_get_size(cfg, "leak_bytes", 0, &g.bytes) < 0)
        return -1;
    g.hold = dup_key(cfg, "hold_file");
    g.fail = dup_key(cfg, "fail_file");
    *state = &g;
    return 0;
}

static int gate_worker_init(void *state)
{
    const struct gate *g = state;
    struct timespec ten_ms = {0, 10 * 1000 * 1000};

    if (g->hold != NULL && access(g->hold, F_OK) == 0) {
        pf_log(PF_LOG_INFO, "gate: held while %s exists", g->hold);
        for (int i = 0; i < 3000 && access(g->hold, F_OK) == 0; i++)
            nanosleep(&ten_ms, NULL);
    }
    if (g->fail != NULL && access(g->fail, F_OK) == 0) {
        pf_log(PF_LOG_ERROR, "gate: worker_init fails while %s exists", g->fail);
        return -1;
    }
    return 0;
}

static int gate_handle(pf_request *r, void *state)
{
    const struct gate *g = state;
    static const pf_header h[] = {{{"Content-Type", 12}, {"text/plain", 10}}};
    char body[32];
    int n;

    if (g->bytes >= sizeof(void *)) {
        char *p = malloc(g->bytes);
        if (p == NULL)
            return -1;
        memset(p, 0xa5, g->bytes); /* resident, not just reserved */
        memcpy(p, &chain, sizeof(void *));
        chain = p;
    }
    n = snprintf(body, sizeof(body), "pid %d\n", (int)getpid());
    return pf_respond(r, 200, h, 1, body, (size_t)n);
}

static void gate_unload(void *state)
{
    struct gate *g = state;

    free(g->hold);
    free(g->fail);
    g->hold = g->fail = NULL;
}

PF_APP_DEFINE(.name = "gate",
              .description = "leaks per request; worker_init gated by files (tests)",
              .load = gate_load, .worker_init = gate_worker_init, .handle = gate_handle,
              .unload = gate_unload);
