/*
 * code_b.c - test app: answers "code B\n". With code_a.c it is swapped
 * in by rename before a SIGHUP, to prove that a reload runs the new code
 * even when the module is preloaded in the master.
 */
#include <preforkd.h>

static int code_handle(pf_request *r, void *state)
{
    static const pf_header h[] = {{{"Content-Type", 12}, {"text/plain", 10}}};

    return pf_respond(r, 200, h, 1, "code B\n", 7);
}

PF_APP_DEFINE(.name = "code_b", .description = "answers code B", .handle = code_handle);
