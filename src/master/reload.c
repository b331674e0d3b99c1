/*
 * reload.c - the master's graceful changes: SIGHUP (re-read the INI, load
 * the app afresh, open and close listeners, start a new generation; the old
 * one retires once the new one serves), SIGWINCH (retire every worker, keep
 * the master) and SIGUSR2 (binary upgrade: exec a new master that inherits
 * the listening sockets). Runs only in the master, from master_step.
 *
 * What a reload changes: everything in the file (app and its keys, workers,
 * limits, timeouts, listeners, log level and error_log) except what lives
 * for the master's life: max_workers above its start value (the scoreboard
 * is sized once), [admin] listen and pidfile (warned, kept).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <sys/wait.h>

#include "accesslog.h"
#include "admin.h"
#include "inherit.h"
#include "log.h"
#include "master_int.h"
#include "memlimit.h"
#include "proc.h"
#include "sdnotify.h"

static void fail(struct master *ms, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fail(struct master *ms, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(ms->reload_error, sizeof(ms->reload_error), fmt, ap);
    va_end(ap);
    ms->reload_state = RL_FAILED;
    log_errx("reload refused: %s; still serving generation %u", ms->reload_error,
             ms->generation);
    sdnotify("READY=1\nSTATUS=reload refused: %s", ms->reload_error);
}

/* The config errors as one line for /stats and preforkctl: "; " apart. */
static void join_lines(const char *in, char *out, size_t len)
{
    size_t o = 0;

    for (const char *p = in; *p && o + 3 < len; p++) {
        if (*p != '\n')
            out[o++] = *p;
        else if (p[1]) {
            out[o++] = ';';
            out[o++] = ' ';
        }
    }
    out[o] = '\0';
}

bool master_owns_paths(struct master *ms)
{
    return ms->heir_pid == 0 && !(ms->heir_of > 1 && getppid() == ms->heir_of);
}

void master_close_listener(struct master *ms, int fd, const struct listen_addr *a)
{
    if (master_owns_paths(ms))
        listen_close(fd, a);
    else
        close(fd); /* the path is another master's too */
}

/* The same address (compared as struct sockaddr). */
static bool same_spec(const struct listen_addr *a, const struct listen_addr *b)
{
    return a->family == b->family && a->len == b->len &&
           memcmp(&a->u, &b->u, a->len) == 0;
}

/* Closes the listeners in fds that the master does not have (bound for
 * nc only), and frees both arrays. */
static void drop_new_listeners(const struct master *ms, struct config *nc, int *fds,
                               struct listen_addr *spec)
{
    for (size_t i = 0; fds && i < nc->server.nlisten; i++) {
        bool ours = fds[i] >= 0;
        for (size_t k = 0; k < ms->nlisten && ours; k++)
            ours = ms->lfds[k] != fds[i];
        if (ours)
            listen_close(fds[i], &nc->server.listen[i]);
    }
    free(fds);
    free(spec);
}

/* Listeners for nc: an address configured before keeps its socket (no
 * connection is refused, whatever waits in its backlog stays); new ones
 * are bound. 0, or -1 with every socket opened here closed again. */
static int new_listeners(const struct master *ms, struct config *nc, int **fds,
                         struct listen_addr **spec, char *why, size_t len)
{
    size_t n = nc->server.nlisten;

    *fds = calloc(n, sizeof(int));
    *spec = calloc(n, sizeof(**spec));
    if (*fds == NULL || *spec == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        struct listen_addr *want = &nc->server.listen[i];
        (*spec)[i] = *want;
        (*fds)[i] = -1;
        for (size_t k = 0; k < ms->nlisten; k++)
            /* As configured (port 0 stays 0), or as bound (its real port). */
            if (ms->lfds[k] >= 0 && (same_spec(want, &ms->lspec[k]) ||
                                     same_spec(want, &ms->cfg->server.listen[k]))) {
                (*fds)[i] = ms->lfds[k];
                *want = ms->cfg->server.listen[k]; /* with the port it got */
            }
        if ((*fds)[i] >= 0)
            continue;
        if (((*fds)[i] = listen_open(want, (int)nc->server.backlog)) < 0) {
            snprintf(why, len, "listen on %s: %s", want->text, strerror(errno));
            goto fail;
        }
        log_info("listening on %s", want->text);
    }
    return 0;
fail:
    drop_new_listeners(ms, nc, *fds, *spec);
    return -1;
}

/* Closes the master's listeners that nc no longer has (workers of the old
 * generation keep their copies until they retire). */
static void drop_old_listeners(struct master *ms, int *fds, size_t n)
{
    for (size_t k = 0; k < ms->nlisten; k++) {
        bool kept = false;
        for (size_t i = 0; i < n && !kept; i++)
            kept = fds[i] == ms->lfds[k];
        if (!kept) {
            log_info("no longer listening on %s", ms->cfg->server.listen[k].text);
            master_close_listener(ms, ms->lfds[k], &ms->cfg->server.listen[k]);
        }
    }
}

/* What a reload cannot change: -1 with why for the first of them; the rest
 * keep the running values, with a warning. */
static int check_fixed(const struct master *ms, struct config *nc, char *why, size_t len)
{
    if (master_slots_for(nc) > ms->nslots) {
        snprintf(why, len,
                 "max_workers %u needs more worker slots than this master has "
                 "(%u): restart or upgrade (USR2) to raise it",
                 nc->server.max_workers, ms->nslots);
        return -1;
    }
    /* Compared as configured (port 0 stays 0) and as bound. */
    if (nc->admin.enabled != ms->cfg->admin.enabled ||
        (nc->admin.enabled && !same_spec(&nc->admin.listen, &ms->admin_spec) &&
         !same_spec(&nc->admin.listen, &ms->cfg->admin.listen)))
        log_warnx("reload: [admin] listen changes only with a restart; keeping %s",
                  ms->cfg->admin.enabled ? ms->cfg->admin.listen.text : "off");
    nc->admin = ms->cfg->admin;
    if ((nc->server.pidfile == NULL) != (ms->cfg->server.pidfile == NULL) ||
        (nc->server.pidfile && strcmp(nc->server.pidfile, ms->cfg->server.pidfile) != 0))
        log_warnx("reload: pidfile changes only with a restart");
    return 0;
}

/* The new config's log settings. */
static void apply_log(struct master *ms, struct config *nc)
{
    log_set_level(nc->log.level);
    if (strcmp(nc->log.error_log, ms->cfg->log.error_log) != 0 &&
        log_open(nc->log.error_log, nc->log.level) < 0)
        log_warn("reload: error_log %s: keeping %s", nc->log.error_log,
                 ms->cfg->log.error_log);
}

static void start_generation(struct master *ms, struct config *nc, int *fds,
                             struct listen_addr *spec)
{
    drop_old_listeners(ms, fds, nc->server.nlisten);
    apply_log(ms, nc);
    config_free(ms->cfg);
    free(ms->cfg);
    ms->cfg = nc;
    free(ms->lfds);
    free(ms->lspec);
    ms->lfds = fds;
    ms->lspec = spec;
    ms->nlisten = nc->server.nlisten;
    ms->generation++;
    ms->target = nc->server.workers;
    ms->ready = false;
    ms->boot_failures = 0;
    ms->next_spawn = 0;
    for (uint32_t i = 0; i < ms->nslots; i++) {
        struct worker *w = &ms->w[i];
        if (w->pid &&
            (w->phase == PH_ACTIVE || w->phase == PH_WANTS || w->phase == PH_REPLACING)) {
            w->phase = PH_OLD;
            w->reason = RETIRE_RELOAD;
            w->replacement = -1;
        }
    }
    log_info("reload: generation %u, %u workers, app %s", ms->generation, ms->target,
             nc->app.module);
}

/* Drops the reload waiting for its mold: the mold is stopped, what was
 * bound for it closed, its config freed. */
static void drop_pending(struct master *ms, bool mold_alive)
{
    struct pending_reload *p = &ms->pending;

    if (p->cfg == NULL)
        return;
    if (mold_alive)
        spawn_signal(ms, &ms->next_mold, SIGKILL);
    spawn_forget(ms, &ms->next_mold);
    drop_new_listeners(ms, p->cfg, p->fds, p->spec);
    config_free(p->cfg);
    free(p->cfg);
    *p = (struct pending_reload){0};
}

/* Phase one's pure part: reads and checks the file and binds the addresses
 * it adds. Touches nothing of the master's (it logs): 0 with *next holding
 * the new config and its listeners, or -1 with why and nothing left open. */
static int reload_prepare(const struct master *ms, struct pending_reload *next, char *why,
                          size_t len)
{
    struct config *nc = calloc(1, sizeof(*nc));
    struct listen_addr *spec = NULL;
    int *fds = NULL;
    char *errors = NULL, fmt[160];

    if (nc == NULL || (ms->cfg->text != NULL
                           ? config_load_text(ms->cfg->path, ms->cfg->text, nc, &errors)
                           : config_load(ms->cfg->path, nc, &errors)) < 0) {
        if (errors)
            log_errx("%s", errors);
        join_lines(errors ? errors : "out of memory", why, len);
        free(errors);
        free(nc);
        return -1;
    }
    if (nc->log.access_log &&
        accesslog_check_format(nc->log.access_log_format, fmt, sizeof(fmt)) < 0) {
        snprintf(why, len, "[log] access_log_format: %s", fmt);
        goto fail;
    }
    if (memlimit_reload(&ms->cgroup, nc, why, len) <
            0 || /* shares of the cgroup's memory */
        check_fixed(ms, nc, why, len) < 0 ||
        new_listeners(ms, nc, &fds, &spec, why, len) < 0)
        goto fail;
    *next = (struct pending_reload){.cfg = nc, .fds = fds, .spec = spec};
    return 0;
fail:
    config_free(nc);
    free(nc);
    return -1;
}

/* Phase one, on SIGHUP (master_step): prepare the next generation, and
 * fork its mold. The mold loads the app (new code, in a process that never
 * ran the old); phase two starts when it is ready (master_reload_ready) or
 * has failed (master_reload_failed). */
void master_reload(struct master *ms)
{
    struct pending_reload next;
    char why[sizeof(ms->reload_error)];

    if (ms->pending.cfg != NULL) {
        log_warnx("received SIGHUP while the reload before still loads: "
                  "dropping that one");
        drop_pending(ms, true);
    }
    ms->reloads++;
    ms->reload_state = RL_IN_PROGRESS;
    ms->reload_error[0] = '\0';
    ms->reload_started = master_now(ms);
    sdnotify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
             sdnotify_monotonic_usec(), ms->cfg->path);
    log_info("received SIGHUP: reloading %s", ms->cfg->path);
    memlimit_refresh(ms);
    if (reload_prepare(ms, &next, why, sizeof(why)) < 0) {
        fail(ms, "%s", why);
        return;
    }
    if (ms->ops->start_mold(ms, &ms->next_mold, ms->generation + 1, next.cfg, next.fds,
                            next.cfg->server.nlisten) < 0) {
        fail(ms, "cannot start a mold for the new generation: %s", strerror(errno));
        drop_new_listeners(ms, next.cfg, next.fds, next.spec);
        config_free(next.cfg);
        free(next.cfg);
        return;
    }
    ms->pending = next;
}

/* See master_int.h. The new mold has the app: its generation starts, the
 * old mold is told to go (it forks nothing any more), and the old workers
 * retire once the new ones serve (master_reload_done). */
void master_reload_ready(struct master *ms)
{
    struct pending_reload p = ms->pending;

    ms->pending = (struct pending_reload){0};
    if (ms->old_mold.pid > 0)
        spawn_forget(ms, &ms->old_mold); /* a reload ago: its end is no news */
    spawn_signal(ms, &ms->mold, SIGTERM);
    spawn_move(ms, &ms->old_mold, &ms->mold);
    spawn_move(ms, &ms->mold, &ms->next_mold);
    start_generation(ms, p.cfg, p.fds, p.spec);
}

/* See master_int.h. why: the error lines the mold sent, if any. */
void master_reload_failed(struct master *ms, int wstatus, const char *why)
{
    char how[96];

    proc_describe(wstatus, how, sizeof(how));
    if (why != NULL && *why) {
        char line[sizeof(ms->reload_error)];

        join_lines(why, line, sizeof(line));
        fail(ms, "app %s could not be loaded (the new mold %s): %s",
             ms->pending.cfg->app.module, how, line);
    } else {
        fail(ms, "app %s could not be loaded (the new mold %s; see the error log)",
             ms->pending.cfg->app.module, how);
    }
    drop_pending(ms, false); /* reaped: nothing left to kill */
}

void master_reload_done(struct master *ms)
{
    uint32_t old = 0;

    for (uint32_t i = 0; i < ms->nslots; i++)
        if (ms->w[i].pid && ms->w[i].phase == PH_OLD) {
            ms->w[i].phase = PH_RETIRING;
            ms->w[i].phase_since = master_now(ms);
            master_signal(ms, &ms->w[i], SIGTERM);
            old++;
        }
    if (ms->reload_state == RL_IN_PROGRESS || old > 0) {
        ms->reload_state = RL_DONE;
        log_info("reload done: generation %u serving, %u old workers retiring",
                 ms->generation, old);
    }
}

void master_winch(struct master *ms)
{
    log_info("received SIGWINCH: retiring every worker, the master stays");
    ms->target = 0;
    /* And its mold: nothing is forked until TTIN or HUP, which start one. */
    if (ms->mold.pid > 0) {
        spawn_signal(ms, &ms->mold, SIGTERM);
        spawn_move(ms, &ms->old_mold, &ms->mold);
    }
    SB_SET(ms->sb->handoff_ok, 0);
    for (uint32_t i = 0; i < ms->nslots; i++) {
        struct worker *w = &ms->w[i];
        if (w->pid && w->phase != PH_RETIRING && w->phase != PH_KILLING) {
            w->phase = PH_RETIRING;
            w->reason = RETIRE_SHUTDOWN;
            w->phase_since = master_now(ms);
            master_signal(ms, w, SIGTERM);
        }
    }
}

/* "3,4,7": the fds the new master inherits (listeners and admin). */
static void inherit_list(struct master *ms, char *buf, size_t len)
{
    size_t off = 0;
    int afd = admin_fd();

    buf[0] = '\0';
    for (size_t i = 0; i < ms->nlisten && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%d%s", off ? "," : "",
                                ms->lfds[i], ms->cfg->server.listen[i].un_ino ? "u" : "");
    if (afd >= 0 && off < len)
        snprintf(buf + off, len - off, "%s%d%s", off ? "," : "", afd,
                 admin_addr()->un_ino ? "u" : "");
}

/* In the forked child: let the sockets cross exec, then exec. */
static void __attribute__((noreturn)) exec_heir(const struct master *ms, const char *fds)
{
    char *save = NULL, *copy = strdup(fds), gen[16];

    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        fcntl(atoi(t), F_SETFD, 0);
    setenv(INHERIT_ENV, fds, 1);
    snprintf(gen, sizeof(gen), "%u", ms->generation + 1);
    setenv(GENERATION_ENV, gen, 1); /* generations go on counting */
    proc_child_reset_signals();     /* no master handler may run before exec */
    proc_child_signals_done();
    execv(ms->self, ms->argv);
    log_err("binary upgrade: exec %s", ms->self);
    _exit(127);
}

/* See master_int.h (master_ops.start_heir). */
pid_t master_start_heir(struct master *ms, const char *fds)
{
    pid_t pid = proc_fork();

    if (pid == 0)
        exec_heir(ms, fds);
    return pid;
}

void master_upgrade(struct master *ms)
{
    char fds[512], oldbin[4200];
    pid_t pid;

    if (ms->heir_pid > 0) {
        log_warnx("received SIGUSR2: an upgrade is under way (new master pid %d)",
                  (int)ms->heir_pid);
        return;
    }
    log_info("received SIGUSR2: binary upgrade: starting %s", ms->self);
    if (ms->pidfile) {
        snprintf(oldbin, sizeof(oldbin), "%s.oldbin", ms->pidfile);
        if (rename(ms->pidfile, oldbin) < 0)
            log_warn("binary upgrade: rename %s", ms->pidfile);
        free(ms->pidfile);
        ms->pidfile = strdup(oldbin);
    }
    inherit_list(ms, fds, sizeof(fds));
    pid = ms->ops->start_heir(ms, fds);
    if (pid < 0) {
        log_warn("binary upgrade: fork");
        master_upgrade_reaped(ms, -1, 0);
        return;
    }
    ms->heir_pid = pid;
    sdnotify_heir(true);
    admin_pause(true); /* the new master answers on the admin socket */
    log_info("binary upgrade: new master pid %d; send SIGWINCH then SIGTERM to "
             "this master (%d) once it serves",
             (int)pid, (int)getpid());
}

bool master_upgrade_reaped(struct master *ms, pid_t pid, int wstatus)
{
    char how[96], *dot;

    if (pid != ms->heir_pid && pid != -1)
        return false;
    if (pid > 0)
        log_errx("binary upgrade: new master (pid %d) %s; this master goes on", (int)pid,
                 proc_describe(wstatus, how, sizeof(how)));
    ms->heir_pid = 0;
    admin_pause(false);
    /* systemd may have taken the new master for the main process: this one
     * is again (a no-op when the new one never said MAINPID=). */
    sdnotify_heir(false);
    if (pid > 0 && ms->mode == RUNNING)
        sdnotify("MAINPID=%d\nREADY=1", (int)getpid());
    if (ms->pidfile && (dot = strstr(ms->pidfile, ".oldbin")) != NULL &&
        strcmp(dot, ".oldbin") == 0) {
        char *orig = strndup(ms->pidfile, (size_t)(dot - ms->pidfile));
        if (orig && rename(ms->pidfile, orig) == 0) {
            free(ms->pidfile);
            ms->pidfile = orig;
        } else {
            free(orig);
        }
    }
    return true;
}
