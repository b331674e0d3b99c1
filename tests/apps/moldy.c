/*
 * moldy.c - test app for the mold (src/mold/mold.c): its load is gated by files
 * the test creates (it waits while hold_file exists, up to 30 s, then fails
 * when fail_file exists), it counts the fork hooks the mold runs, and it
 * answers 200 "pid P ppid Q prepared N parent M\n" so a test sees who forked
 * whom and which hooks ran before the fork. Runs in the mold (load,
 * fork_prepare, fork_parent) and in workers (handle).
 *
 * [app] keys: hold_file, fail_file (paths; absent: no gate).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <preforkd.h>

static unsigned prepared, parented;

static int exists(const char *path)
{
    return path != NULL && *path && access(path, F_OK) == 0;
}

static int moldy_load(const pf_app_config *cfg, void **state)
{
    const char *hold = pf_config_get(cfg, "hold_file");
    const char *fail = pf_config_get(cfg, "fail_file");
    struct timespec pause = {0, 10 * 1000 * 1000};

    for (int i = 0; i < 3000 && exists(hold); i++)
        nanosleep(&pause, NULL);
    if (exists(fail)) {
        pf_log(PF_LOG_ERROR, "moldy: load fails on purpose (%s exists)", fail);
        return -1;
    }
    return 0;
}

static void moldy_prepare(void *state)
{
    prepared++;
}

static void moldy_parent(void *state)
{
    parented++;
}

static int moldy_handle(pf_request *r, void *state)
{
    char body[128];
    int n = snprintf(body, sizeof body, "pid %ld ppid %ld prepared %u parent %u\n",
                     (long)getpid(), (long)getppid(), prepared, parented);

    return pf_respond(r, 200, NULL, 0, body, (size_t)n);
}

PF_APP_DEFINE(.name = "moldy",
              .description = "load gated by files, counts fork hooks (tests)",
              .load = moldy_load, .handle = moldy_handle, .fork_prepare = moldy_prepare,
              .fork_parent = moldy_parent);
