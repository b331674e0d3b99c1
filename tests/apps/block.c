/*
 * block.c - test app: GET /block blocks the worker's event loop (a sleep
 * in handle, as a stuck app would), so the master's heartbeat `timeout`
 * must kill and replace the worker. Anything else: 200 "ok\n".
 */
#include <string.h>
#include <unistd.h>

#include <preforkd.h>

static int block_handle(pf_request *r, void *state)
{
    static const pf_header h[] = {{{"Content-Type", 12}, {"text/plain", 10}}};
    pf_str path = pf_request_path(r);

    if (path.len == 6 && memcmp(path.ptr, "/block", 6) == 0)
        for (;;)
            sleep(3600); /* never returns: the loop is stuck */
    return pf_respond(r, 200, h, 1, "ok\n", 3);
}

PF_APP_DEFINE(.name = "block", .description = "blocks the loop on /block",
              .handle = block_handle);
