/*
 * appkeys.c - test module that reads its own [app] keys: `greeting`
 * (text, default "hello") and `size` (a size, default 4K, at most 1M).
 * Used by tests/unit/test_app.c for unknown-key detection and config errors
 * raised by apps. Logs what it read at load and "appkeys: unload" at
 * unload, so tests can see both. Answers requests with the greeting.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <preforkd.h>

struct appkeys {
    char *greeting;
    uint64_t size;
};

static int appkeys_load(const pf_app_config *cfg, void **state)
{
    const char *greeting = pf_config_get(cfg, "greeting");
    struct appkeys *st;
    uint64_t size;

    if (pf_config_get_size(cfg, "size", 4096, &size) != 0)
        return -1;
    if (size > 1024 * 1024)
        return pf_config_error(cfg, "size", "at most 1M, got %" PRIu64, size);
    st = calloc(1, sizeof *st);
    if (st == NULL)
        return -1;
    st->greeting = strdup(greeting != NULL ? greeting : "hello");
    if (st->greeting == NULL) {
        free(st);
        return -1;
    }
    st->size = size;
    pf_log(PF_LOG_INFO, "appkeys: greeting=\"%s\" size=%" PRIu64, st->greeting, st->size);
    *state = st;
    return 0;
}

static int appkeys_handle(pf_request *r, void *state)
{
    const struct appkeys *st = state;
    static const pf_header headers[] = {
        {{"Content-Type", 12}, {"text/plain", 10}},
    };

    return pf_respond(r, 200, headers, 1, st->greeting, strlen(st->greeting));
}

static void appkeys_unload(void *state)
{
    struct appkeys *st = state;

    pf_log(PF_LOG_INFO, "appkeys: unload");
    if (st != NULL)
        free(st->greeting);
    free(st);
}

PF_APP_DEFINE(.name = "appkeys", .description = "test: reads [app] greeting and size",
              .load = appkeys_load, .handle = appkeys_handle, .unload = appkeys_unload);
