/*
 * ops.c - preforkctl's commands that change the daemon: reload (HUP, then
 * wait for the outcome), scale (TTIN/TTOU one at a time), stop (TERM, then
 * wait for the exit) and upgrade (USR2, WINCH, TERM, nginx-style). Each
 * polls /stats or /proc with a deadline and says on failure what state the
 * daemon was left in. Runs in preforkctl only. Convention: see ctl.h.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

#define POLL_EVERY 0.05 /* seconds between two looks */
#define RELOAD_TIMEOUT 60.0
#define SCALE_STEP_TIMEOUT 10.0

/* The master object of /stats, the fields the commands use. */
struct snap {
    pid_t pid;
    bool ready;
    char mode[16];
    double generation, wanted, serving, max_workers;
    double reloads; /* -1: this daemon does not report reloads */
    char reload_state[16];
    char reload_error[4096]; /* a Python traceback, say */
};

static int snap(const struct ctl *c, struct snap *s, char *why, size_t wlen)
{
    int fail;
    struct json *j = ctl_stats(c, NULL, &fail, why, wlen);
    const struct json *m = json_get(j, "master");

    if (j == NULL)
        return -fail;
    *s = (struct snap){
        .pid = (pid_t)json_number(m, "pid", -1),
        .ready = json_get(m, "ready") && json_get(m, "ready")->type == JSON_TRUE,
        .generation = json_number(m, "generation", 0),
        .wanted = json_number(m, "workers_wanted", -1),
        .serving = json_number(m, "workers_serving", -1),
        .max_workers = json_number(m, "max_workers", -1),
        .reloads = json_number(m, "reloads", -1),
    };
    snprintf(s->mode, sizeof(s->mode), "%s", json_string(m, "mode", "?"));
    snprintf(s->reload_state, sizeof(s->reload_state), "%s",
             json_string(m, "reload_state", "?"));
    snprintf(s->reload_error, sizeof(s->reload_error), "%s",
             json_string(m, "reload_error", ""));
    json_free(j);
    return 0;
}

static int send_signal(pid_t pid, int sig, const char *cmd)
{
    if (kill(pid, sig) == 0)
        return 0;
    ctl_err("%s: kill -%s %d: %s", cmd, sigabbrev_np(sig), (int)pid, strerror(errno));
    return -1;
}

static double timeout_or(const struct ctl *c, double dflt)
{
    return c->timeout > 0 ? c->timeout : dflt;
}

/* ---- reload ---------------------------------------------------------------- */

/* Polls until the reload after `before` is done or failed. */
static int reload_wait(struct ctl *c, const struct snap *before, double deadline)
{
    char why[CTL_WHY];
    struct snap s = *before;

    for (;;) {
        ctl_nap(POLL_EVERY);
        if (snap(c, &s, why, sizeof(why)) == 0 && s.reloads > before->reloads) {
            if (strcmp(s.reload_state, "done") == 0) {
                printf("reloaded: generation %.0f serving (%.0f of %.0f workers)\n",
                       s.generation, s.serving, s.wanted);
                return CTL_OK;
            }
            if (strcmp(s.reload_state, "failed") == 0) {
                ctl_err("reload refused: %s; still serving generation %.0f",
                        s.reload_error, s.generation);
                return CTL_FAILED;
            }
        }
        if (!ctl_alive(before->pid)) {
            ctl_err("reload: the master (pid %d) exited", (int)before->pid);
            return CTL_FAILED;
        }
        if (ctl_now() > deadline) {
            ctl_err("reload: not finished after %.0f s: reload_state \"%s\", reloads "
                    "%.0f (was %.0f), generation %.0f; the master goes on with it",
                    timeout_or(c, RELOAD_TIMEOUT), s.reload_state, s.reloads,
                    before->reloads, s.generation);
            return CTL_FAILED;
        }
    }
}

/* HUP, then wait: 0 once the new generation serves, 1 with the reason
 * when the daemon refused the new configuration or module. */
int ctl_reload(struct ctl *c)
{
    char why[CTL_WHY];
    struct snap s;
    int rc = snap(c, &s, why, sizeof(why));

    if (rc < 0) {
        ctl_err("reload: %s", why);
        return -rc;
    }
    if (s.reloads < 0) {
        ctl_err("reload: /stats from %s reports no \"reloads\": this preforkd "
                "cannot tell when a reload is done",
                c->admin.text);
        return CTL_FAILED;
    }
    if (send_signal(s.pid, SIGHUP, "reload") < 0)
        return CTL_FAILED;
    return reload_wait(c, &s, ctl_now() + timeout_or(c, RELOAD_TIMEOUT));
}

/* ---- scale ----------------------------------------------------------------- */

/* "+N", "-N" or "N" (N only digits) against the current count: 0 with
 * *want, or -1. */
static int scale_target(const char *arg, double current, long *want)
{
    const char *digits = arg + (*arg == '+' || *arg == '-');
    char *end;
    long n;

    if (*digits < '0' || *digits > '9')
        return -1;
    errno = 0;
    n = strtol(digits, &end, 10);
    if (errno != 0 || *end != '\0' || n > 100000)
        return -1;
    *want = *arg == '+' ? (long)current + n : *arg == '-' ? (long)current - n : n;
    return 0;
}

/* One TTIN or TTOU, then waits for workers_wanted to move. */
static int scale_step(struct ctl *c, struct snap *s, int sig)
{
    double before = s->wanted, deadline = ctl_now() + SCALE_STEP_TIMEOUT;
    char why[CTL_WHY] = "";

    if (send_signal(s->pid, sig, "scale") < 0)
        return -1;
    while (ctl_now() < deadline) {
        ctl_nap(POLL_EVERY);
        if (snap(c, s, why, sizeof(why)) == 0 && s->wanted != before)
            return 0;
    }
    ctl_err("scale: workers_wanted stays %.0f %.0f s after SIG%s (mode %s)%s%s", before,
            SCALE_STEP_TIMEOUT, sigabbrev_np(sig), s->mode, *why ? ": " : "", why);
    return -1;
}

/* Waits until as many workers serve as are wanted (new ones booted, or
 * old ones gone). */
static int scale_settle(struct ctl *c, struct snap *s, double deadline)
{
    char why[CTL_WHY];

    while (s->serving != s->wanted) {
        if (ctl_now() > deadline) {
            ctl_err("scale: %.0f workers wanted but %.0f serving after %.0f s", s->wanted,
                    s->serving, timeout_or(c, RELOAD_TIMEOUT));
            return CTL_FAILED;
        }
        ctl_nap(POLL_EVERY);
        if (snap(c, s, why, sizeof(why)) < 0) {
            ctl_err("scale: %s", why);
            return CTL_FAILED;
        }
    }
    printf("workers: %.0f wanted, %.0f serving\n", s->wanted, s->serving);
    return CTL_OK;
}

int ctl_scale(struct ctl *c, const char *arg)
{
    char why[CTL_WHY];
    struct snap s;
    long want, max;
    int rc;

    if (scale_target(arg, 0, &want) < 0) {
        ctl_err("scale: expected +N, -N or N, got \"%s\"", arg);
        return CTL_USAGE;
    }
    if ((rc = snap(c, &s, why, sizeof(why))) < 0) {
        ctl_err("scale: %s", why);
        return -rc;
    }
    scale_target(arg, s.wanted, &want);
    max = s.max_workers > 0 ? (long)s.max_workers
          : c->have_cfg     ? (long)c->cfg.server.max_workers
                            : 0;
    if (want < 1 || (max > 0 && want > max)) {
        long clamped = want < 1 ? 1 : max;
        if (max > 0)
            printf("scale: %s gives %ld workers: clamped to %ld (bounds 1..%ld)\n", arg,
                   want, clamped, max);
        else
            printf("scale: %s gives %ld workers: clamped to 1\n", arg, want);
        want = clamped;
    }
    while ((long)s.wanted != want)
        if (scale_step(c, &s, want > (long)s.wanted ? SIGTTIN : SIGTTOU) < 0)
            return CTL_FAILED;
    return scale_settle(c, &s, ctl_now() + timeout_or(c, RELOAD_TIMEOUT));
}

/* ---- stop ------------------------------------------------------------------ */

/* Waits until pid is gone (or a zombie). */
static bool wait_gone(pid_t pid, double deadline)
{
    while (ctl_alive(pid)) {
        if (ctl_now() > deadline)
            return false;
        ctl_nap(POLL_EVERY);
    }
    return true;
}

int ctl_stop(struct ctl *c)
{
    char why[CTL_WHY];
    double limit = timeout_or(c, c->graceful + 10);
    pid_t pid = ctl_master_pid(c, why, sizeof(why));

    if (pid < 0) {
        ctl_err("stop: %s", why);
        return CTL_UNREACHABLE;
    }
    if (send_signal(pid, SIGTERM, "stop") < 0)
        return CTL_FAILED;
    if (!wait_gone(pid, ctl_now() + limit)) {
        ctl_err("stop: the master (pid %d) still runs %.0f s after SIGTERM "
                "(graceful_timeout %.0f s)",
                (int)pid, limit, c->graceful);
        return CTL_FAILED;
    }
    printf("stopped: master %d exited\n", (int)pid);
    return CTL_OK;
}

/* ---- upgrade --------------------------------------------------------------- */

/* After USR2 to old: waits until the pidfile names a new, live master that
 * answers /stats as ready. Its pid, or -1 after saying what went wrong. */
static pid_t upgrade_wait_new(struct ctl *c, pid_t old, double deadline)
{
    char why[CTL_WHY] = "", oldbin[4096];
    bool started = false;
    pid_t now_pid = old;

    snprintf(oldbin, sizeof(oldbin), "%s.oldbin", c->pidfile);
    while (ctl_now() < deadline) {
        struct snap s;
        ctl_nap(POLL_EVERY);
        now_pid = ctl_read_pidfile(c->pidfile, why, sizeof(why));
        if (ctl_read_pidfile(oldbin, why, sizeof(why)) == old ||
            (now_pid > 0 && now_pid != old))
            started = true;
        if (now_pid > 0 && now_pid != old && !ctl_alive(now_pid)) {
            ctl_err(
                "upgrade: the new master (pid %d) exited before it was ready (see the "
                "error log); the old master %d goes on serving",
                (int)now_pid, (int)old);
            return -1;
        }
        if (started && now_pid == old && access(oldbin, F_OK) < 0) {
            ctl_err("upgrade: the old master %d took its pidfile back: the new master "
                    "failed (see the error log); the old master goes on serving",
                    (int)old);
            return -1;
        }
        if (now_pid > 0 && now_pid != old && snap(c, &s, why, sizeof(why)) == 0 &&
            s.pid == now_pid && s.ready)
            return now_pid;
    }
    ctl_err("upgrade: no new master ready after %.0f s (pidfile %s names %d, %s); "
            "the old master %d still serves",
            timeout_or(c, RELOAD_TIMEOUT), c->pidfile, (int)now_pid,
            started ? "upgrade started" : "no upgrade seen", (int)old);
    return -1;
}

/* WINCH to the old master, then waits until its only child left is the
 * new master (its workers are gone). */
static int upgrade_retire_old(struct ctl *c, pid_t old, pid_t new, double deadline)
{
    pid_t kids[256];
    int n;

    if (send_signal(old, SIGWINCH, "upgrade") < 0)
        return -1;
    while ((n = ctl_children(old, kids, 256)) > 0) {
        int workers = 0;
        for (int i = 0; i < n && i < 256; i++)
            workers += kids[i] != new;
        if (workers == 0)
            return 0;
        if (ctl_now() > deadline) {
            ctl_err(
                "upgrade: the new master %d serves, but %d workers of the old master %d "
                "are still running after WINCH; to finish: kill -TERM %d; to roll back: "
                "kill -HUP %d; kill -QUIT %d",
                (int)new, workers, (int)old, (int)old, (int)old, (int)new);
            return -1;
        }
        ctl_nap(POLL_EVERY);
    }
    return 0; /* no children left, or /proc cannot tell: TERM drains anyway */
}

int ctl_upgrade(struct ctl *c)
{
    char why[CTL_WHY];
    double limit = timeout_or(c, RELOAD_TIMEOUT), drain = c->graceful + 10;
    pid_t old, new;
    struct snap s;

    if (c->pidfile == NULL || !c->have_admin) {
        ctl_err("upgrade: needs [server] pidfile and [admin] listen in %s", c->conf_path);
        return CTL_FAILED;
    }
    if ((old = ctl_read_pidfile(c->pidfile, why, sizeof(why))) < 0 || !ctl_alive(old)) {
        ctl_err("upgrade: %s", old < 0 ? why : "the pidfile names no running master");
        return CTL_UNREACHABLE;
    }
    if (send_signal(old, SIGUSR2, "upgrade") < 0)
        return CTL_FAILED;
    if ((new = upgrade_wait_new(c, old, ctl_now() + limit)) < 0)
        return CTL_FAILED;
    printf("upgrade: new master %d ready; retiring the workers of the old master %d\n",
           (int)new, (int)old);
    if (upgrade_retire_old(c, old, new, ctl_now() + drain) < 0)
        return CTL_FAILED;
    if (send_signal(old, SIGTERM, "upgrade") < 0 || !wait_gone(old, ctl_now() + drain)) {
        ctl_err("upgrade: the old master %d still runs after SIGTERM; the new master %d "
                "serves",
                (int)old, (int)new);
        return CTL_FAILED;
    }
    if (snap(c, &s, why, sizeof(why)) < 0 || s.pid != new) {
        ctl_err(
            "upgrade: the old master %d is gone but the new master %d does not answer "
            "/stats: %s",
            (int)old, (int)new, *why ? why : "another pid answers");
        return CTL_FAILED;
    }
    printf(
        "upgraded: master %d (was %d), generation %.0f, %.0f of %.0f workers serving\n",
        (int)new, (int)old, s.generation, s.serving, s.wanted);
    return CTL_OK;
}
