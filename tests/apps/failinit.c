/*
 * failinit.c - test app whose worker_init always fails, so no worker can
 * boot: the master must stop respawning and exit 70 with a clear error.
 * Runs in the master (load) and in workers (worker_init).
 */
#include <preforkd.h>

static int failinit_worker_init(void *state)
{
    pf_log(PF_LOG_ERROR, "failinit: worker_init fails on purpose (test app)");
    return -1;
}

static int failinit_handle(pf_request *r, void *state)
{
    return pf_respond(r, 500, NULL, 0, "unreachable\n", 12);
}

PF_APP_DEFINE(.name = "failinit", .description = "worker_init always fails (tests)",
              .worker_init = failinit_worker_init, .handle = failinit_handle);
