/*
 * worker.c - preforkctl's commands to one worker: snapshot, recycle and
 * trace start|dump|stop. Each is one request to the master's admin endpoint
 * (GET or POST /workers/ID/...), which relays it to the worker and returns
 * the worker's answer (src/master/relay.c). Runs in preforkctl only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define ANSWER_WAIT 5.0 /* what the master waits for the worker, by default */

bool ctl_is_worker_command(const char *cmd)
{
    return strcmp(cmd, "snapshot") == 0 || strcmp(cmd, "recycle") == 0 ||
           strcmp(cmd, "trace") == 0;
}

/* A worker id: 1..9999. */
static int worker_id(const char *s)
{
    char *end;
    long id = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || id < 1 || id > 9999) {
        ctl_err("worker \"%s\": expected a worker's number (the id preforkctl "
                "status shows)",
                s);
        return -1;
    }
    return (int)id;
}

/* "--frames 5" -> "frames=5" into query; -1 for anything else. */
static int option(const char *name, char **args, int nargs, char *query, size_t len)
{
    char *end;

    if (nargs == 0)
        return 0;
    if (nargs != 2 || strcmp(args[0], name) != 0 || strtol(args[1], &end, 10) < 1 ||
        *end != '\0') {
        ctl_err("expected %s N (a number >= 1) or nothing", name);
        return -1;
    }
    snprintf(query, len, "%s=%s&", name + 2, args[1]);
    return 0;
}

int ctl_worker(struct ctl *c, const char *cmd, int nargs, char **args)
{
    char path[256], query[64] = "", why[CTL_WHY], *body = NULL;
    const char *method = "GET", *what = cmd;
    double wait = c->timeout > 0 ? c->timeout : ANSWER_WAIT;
    int id, status, rc;

    if (strcmp(cmd, "trace") == 0) {
        if (nargs < 2)
            goto usage;
        what = args[0];
        if ((id = worker_id(args[1])) < 0)
            return CTL_USAGE;
        if (strcmp(what, "start") == 0) {
            method = "POST";
            rc = option("--frames", args + 2, nargs - 2, query, sizeof(query));
        } else if (strcmp(what, "dump") == 0) {
            rc = option("--top", args + 2, nargs - 2, query, sizeof(query));
        } else if (strcmp(what, "stop") == 0 && nargs == 2) {
            method = "POST";
            rc = 0;
        } else {
            goto usage;
        }
        if (rc < 0)
            return CTL_USAGE;
        snprintf(path, sizeof(path), "/workers/%d/trace/%s?%stimeout=%g", id, what, query,
                 wait);
    } else {
        if (nargs != 1)
            goto usage;
        if ((id = worker_id(args[0])) < 0)
            return CTL_USAGE;
        method = strcmp(cmd, "recycle") == 0 ? "POST" : "GET";
        snprintf(path, sizeof(path), "/workers/%d/%s?timeout=%g", id, cmd, wait);
    }
    if (!c->have_admin) {
        ctl_err("no admin endpoint: set [admin] listen in %s, or give -a ADDRESS",
                c->conf_path);
        return CTL_FAILED;
    }
    if (ctl_request(&c->admin, method, path, wait + 2, &status, &body, why, sizeof(why)) <
        0) {
        ctl_err("%s", why);
        return CTL_UNREACHABLE;
    }
    if (status / 100 == 2) {
        fputs(body, stdout);
        free(body);
        return CTL_OK;
    }
    body[strcspn(body, "\n")] = '\0'; /* one line; the worker's answers are */
    ctl_err("%s %s: %d: %s", cmd, what == cmd ? args[0] : what, status, body);
    free(body);
    return CTL_FAILED;
usage:
    ctl_err("usage: preforkctl snapshot|recycle WORKER, preforkctl trace "
            "start|dump|stop WORKER [--frames N | --top N]");
    return CTL_USAGE;
}
