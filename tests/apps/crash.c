/*
 * crash.c - test app: abort()s the worker on GET /crash, answers 200 "ok\n"
 * to anything else with an X-Worker-Pid header naming the worker that
 * served it. Runs in workers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <preforkd.h>

static int crash_handle(pf_request *r, void *state)
{
    pf_str path = pf_request_path(r);
    char pid[24];
    pf_header hdr[2] = {
        {{"Content-Type", 12}, {"text/plain", 10}},
        {{"X-Worker-Pid", 12}, {pid, 0}},
    };

    if (path.len == 6 && memcmp(path.ptr, "/crash", 6) == 0) {
        pf_log(PF_LOG_INFO, "crash: aborting on purpose");
        abort();
    }
    hdr[1].value.len = (size_t)snprintf(pid, sizeof pid, "%ld", (long)getpid());
    return pf_respond(r, 200, hdr, 2, "ok\n", 3);
}

PF_APP_DEFINE(.name = "crash", .description = "aborts the worker on /crash (tests)",
              .handle = crash_handle);
