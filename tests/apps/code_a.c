/*
 * code_a.c - test app: answers "code A\n". With code_b.c it is swapped
 * in by rename before a SIGHUP, to prove that a reload runs the new code
 * even when the module is preloaded in the master.
 *
 * GET /hold?FILE blocks the worker's loop while FILE exists (up to 30 s),
 * so a test can keep an old worker busy across a reload.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <preforkd.h>

static void hold(pf_str file)
{
    char path[512];

    if (file.len == 0 || file.len >= sizeof(path))
        return;
    memcpy(path, file.ptr, file.len);
    path[file.len] = '\0';
    for (int i = 0; i < 3000 && access(path, F_OK) == 0; i++)
        usleep(10000);
}

static int code_handle(pf_request *r, void *state)
{
    static const pf_header h[] = {{{"Content-Type", 12}, {"text/plain", 10}}};
    pf_str path = pf_request_path(r);

    if (path.len == 5 && memcmp(path.ptr, "/hold", 5) == 0)
        hold(pf_request_query(r));
    return pf_respond(r, 200, h, 1, "code A\n", 7);
}

PF_APP_DEFINE(.name = "code_a", .description = "answers code A", .handle = code_handle);
