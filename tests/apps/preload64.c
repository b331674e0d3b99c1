/*
 * preload64.c - test app: load() (run in the master with preload = true)
 * allocates and touches 64 MiB, which every worker then shares copy-on-write
 * and never writes. Each worker's RSS includes those pages, its USS does not:
 * the memory_metric test. Requests: 200 "ok\n".
 */
#include <stdlib.h>
#include <string.h>

#include <preforkd.h>

#define PRELOAD (64u << 20)

static int preload_load(const pf_app_config *cfg, void **state)
{
    char *p = malloc(PRELOAD);

    if (p == NULL)
        return -1;
    memset(p, 1, PRELOAD);
    *state = p;
    return 0;
}

static int preload_handle(pf_request *r, void *state)
{
    static const pf_header h[] = {{{"Content-Type", 12}, {"text/plain", 10}}};
    const char *p = state;

    /* Read a byte so the pages are used, never written: they stay shared. */
    return pf_respond(r, 200, h, 1, p[PRELOAD - 1] == 1 ? "ok\n" : "??\n", 3);
}

static void preload_unload(void *state)
{
    free(state);
}

PF_APP_DEFINE(.name = "preload64", .description = "64 MiB preloaded, shared",
              .load = preload_load, .handle = preload_handle, .unload = preload_unload);
