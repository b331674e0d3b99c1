/*
 * leak.c - the built-in `leak` app: leaks `leak_bytes` (default 100K) per
 * request on purpose, touching every page so that RSS really grows, then
 * answers 200 "leaked N bytes". It exists to demonstrate and test worker
 * recycling (conf/leak-demo.ini). Never use it for anything else.
 *
 * [app] keys: leak_bytes (size, default 100K).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <preforkd.h>

struct leak {
    uint64_t bytes;
};

/* Every block is chained from here and never freed: the compiler cannot
 * elide the allocation, and the memory stays reachable, as leaked objects
 * in a real app usually are (caches, pools, lists that only grow). */
static void *chain;

static int leak_load(const pf_app_config *cfg, void **state)
{
    static struct leak l;

    if (pf_config_get_size(cfg, "leak_bytes", 100 * 1024, &l.bytes) < 0)
        return -1;
    if (l.bytes > (uint64_t)1 << 30)
        return pf_config_error(cfg, "leak_bytes", "at most 1G per request");
    *state = &l;
    return 0;
}

static int leak_handle(pf_request *r, void *state)
{
    const struct leak *l = state;
    static const pf_header h[] = {{{"Content-Type", 12}, {"text/plain", 10}}};
    char body[64];
    int n;

    if (l->bytes > 0) {
        char *p = malloc(l->bytes);
        if (p == NULL)
            return -1;
        memset(p, 0xa5, l->bytes); /* touched: resident, not just reserved */
        if (l->bytes >= sizeof(void *)) {
            memcpy(p, &chain, sizeof(void *));
            chain = p;
        }
    }
    n = snprintf(body, sizeof(body), "leaked %llu bytes\n", (unsigned long long)l->bytes);
    return pf_respond(r, 200, h, 1, body, (size_t)n);
}

PF_APP_DEFINE(.name = "leak",
              .description = "leaks leak_bytes per request (recycling demo)",
              .load = leak_load, .handle = leak_handle);
