/*
 * hello.c - built-in app `hello`: answers every request with 200 and
 * "Hello, World!\n" as text/plain. The benchmark app: runs in workers,
 * owns nothing, allocates nothing per request. No [app] keys.
 */
#include <preforkd.h>

#define STR(lit) \
    { \
        lit, sizeof(lit) - 1 \
    }

static const pf_header hello_headers[] = {
    {STR("Content-Type"), STR("text/plain")},
};
static const char hello_body[] = "Hello, World!\n";

static int hello_handle(pf_request *r, void *state)
{
    /* -1 only if the client is gone (the request is ended all the same). */
    return pf_respond(r, 200, hello_headers, 1, hello_body, sizeof hello_body - 1);
}

PF_APP_DEFINE(.name = "hello", .description = "fixed \"Hello, World!\" (benchmarks)",
              .handle = hello_handle);
