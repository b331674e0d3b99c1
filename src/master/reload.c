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

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(M.reload_error, sizeof(M.reload_error), fmt, ap);
    va_end(ap);
    M.reload_state = RL_FAILED;
    log_errx("reload refused: %s; still serving generation %u", M.reload_error,
             M.generation);
    sdnotify("READY=1\nSTATUS=reload refused: %s", M.reload_error);
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

bool master_owns_paths(void)
{
    return !M.handed_over && !(M.heir_of > 1 && getppid() == M.heir_of);
}

void master_close_listener(int fd, const struct listen_addr *a)
{
    if (master_owns_paths())
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
static void drop_new_listeners(struct config *nc, int *fds, struct listen_addr *spec)
{
    for (size_t i = 0; fds && i < nc->server.nlisten; i++) {
        bool ours = fds[i] >= 0;
        for (size_t k = 0; k < M.nlisten && ours; k++)
            ours = M.lfds[k] != fds[i];
        if (ours)
            listen_close(fds[i], &nc->server.listen[i]);
    }
    free(fds);
    free(spec);
}

/* Listeners for nc: an address configured before keeps its socket (no
 * connection is refused, whatever waits in its backlog stays); new ones
 * are bound. 0, or -1 with every socket opened here closed again. */
static int new_listeners(struct config *nc, int **fds, struct listen_addr **spec)
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
        for (size_t k = 0; k < M.nlisten; k++)
            /* As configured (port 0 stays 0), or as bound (its real port). */
            if (M.lfds[k] >= 0 && (same_spec(want, &M.lspec[k]) ||
                                   same_spec(want, &M.cfg->server.listen[k]))) {
                (*fds)[i] = M.lfds[k];
                *want = M.cfg->server.listen[k]; /* with the port it got */
            }
        if ((*fds)[i] >= 0)
            continue;
        if (((*fds)[i] = listen_open(want, (int)nc->server.backlog)) < 0) {
            fail("listen on %s: %s", want->text, strerror(errno));
            goto fail;
        }
        log_info("listening on %s", want->text);
    }
    return 0;
fail:
    drop_new_listeners(nc, *fds, *spec);
    return -1;
}

/* Closes the master's listeners that nc no longer has (workers of the old
 * generation keep their copies until they retire). */
static void drop_old_listeners(int *fds, size_t n)
{
    for (size_t k = 0; k < M.nlisten; k++) {
        bool kept = false;
        for (size_t i = 0; i < n && !kept; i++)
            kept = fds[i] == M.lfds[k];
        if (!kept) {
            log_info("no longer listening on %s", M.cfg->server.listen[k].text);
            master_close_listener(M.lfds[k], &M.cfg->server.listen[k]);
        }
    }
}

/* What a reload cannot change; -1 after fail() for the first of them. */
static int check_fixed(struct config *nc)
{
    if (master_slots_for(nc) > M.nslots) {
        fail("max_workers %u needs more worker slots than this master has (%u): "
             "restart or upgrade (USR2) to raise it", nc->server.max_workers, M.nslots);
        return -1;
    }
    /* Compared as configured (port 0 stays 0) and as bound. */
    if (nc->admin.enabled != M.cfg->admin.enabled ||
        (nc->admin.enabled && !same_spec(&nc->admin.listen, &M.admin_spec) &&
         !same_spec(&nc->admin.listen, &M.cfg->admin.listen)))
        log_warnx("reload: [admin] listen changes only with a restart; keeping %s",
                  M.cfg->admin.enabled ? M.cfg->admin.listen.text : "off");
    nc->admin = M.cfg->admin;
    if ((nc->server.pidfile == NULL) != (M.cfg->server.pidfile == NULL) ||
        (nc->server.pidfile && strcmp(nc->server.pidfile, M.cfg->server.pidfile) != 0))
        log_warnx("reload: pidfile changes only with a restart");
    return 0;
}

/* The new config's log settings. */
static void apply_log(struct config *nc)
{
    log_set_level(nc->log.level);
    if (strcmp(nc->log.error_log, M.cfg->log.error_log) != 0 &&
        log_open(nc->log.error_log, nc->log.level) < 0)
        log_warn("reload: error_log %s: keeping %s", nc->log.error_log,
                 M.cfg->log.error_log);
}

static void start_generation(struct config *nc, int *fds,
                             struct listen_addr *spec)
{
    drop_old_listeners(fds, nc->server.nlisten);
    apply_log(nc);
    config_free(M.cfg);
    free(M.cfg);
    M.cfg = nc;
    free(M.lfds);
    free(M.lspec);
    M.lfds = fds;
    M.lspec = spec;
    M.nlisten = nc->server.nlisten;
    M.generation++;
    M.target = nc->server.workers;
    M.ready = false;
    M.boot_failures = 0;
    M.next_spawn = 0;
    for (uint32_t i = 0; i < M.nslots; i++) {
        struct worker *w = &M.w[i];
        if (w->pid && (w->phase == PH_ACTIVE || w->phase == PH_WANTS ||
                       w->phase == PH_REPLACING)) {
            w->phase = PH_OLD;
            w->reason = RETIRE_RELOAD;
            w->replacement = -1;
        }
    }
    log_info("reload: generation %u, %u workers, app %s", M.generation, M.target,
             nc->app.module);
}

/* Drops the reload waiting for its mold: the mold is stopped, what was
 * bound for it closed, its config freed. */
static void drop_pending(bool mold_alive)
{
    struct pending_reload *p = &M.pending;

    if (p->cfg == NULL)
        return;
    if (mold_alive)
        spawn_signal(&M.next_mold, SIGKILL);
    spawn_forget(&M.next_mold);
    drop_new_listeners(p->cfg, p->fds, p->spec);
    config_free(p->cfg);
    free(p->cfg);
    *p = (struct pending_reload){0};
}

/* Phase one, on SIGHUP: read and check the file, bind new listeners, and
 * fork the mold of the next generation. It loads the app (new code, in a
 * process that never ran the old); phase two starts when it is ready
 * (master_reload_ready) or has failed (master_reload_failed). */
void master_reload(void)
{
    struct config *nc = calloc(1, sizeof(*nc));
    struct listen_addr *spec = NULL;
    int *fds = NULL;
    char *errors = NULL, why[160];
    char limits[640];

    if (M.pending.cfg != NULL) {
        log_warnx("received SIGHUP while the reload before still loads: "
                  "dropping that one");
        drop_pending(true);
    }
    M.reloads++;
    M.reload_state = RL_IN_PROGRESS;
    M.reload_error[0] = '\0';
    M.reload_started = master_ops->now();
    sdnotify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
             sdnotify_monotonic_usec(), M.cfg->path);
    log_info("received SIGHUP: reloading %s", M.cfg->path);
    if (nc == NULL || (M.cfg->text != NULL
                           ? config_load_text(M.cfg->path, M.cfg->text, nc, &errors)
                           : config_load(M.cfg->path, nc, &errors)) < 0) {
        char line[sizeof(M.reload_error)];
        if (errors)
            log_errx("%s", errors);
        join_lines(errors ? errors : "out of memory", line, sizeof(line));
        fail("%s", line);
        free(errors);
        free(nc);
        return;
    }
    if (nc->log.access_log &&
        accesslog_check_format(nc->log.access_log_format, why, sizeof(why)) < 0) {
        fail("[log] access_log_format: %s", why);
        goto fail;
    }
    if (memlimit_reload(nc, limits, sizeof(limits)) < 0) { /* shares of the cgroup's memory */
        fail("%s", limits);
        goto fail;
    }
    if (check_fixed(nc) < 0 || new_listeners(nc, &fds, &spec) < 0)
        goto fail;
    if (master_ops->start_mold(&M.next_mold, M.generation + 1, nc, fds,
                               nc->server.nlisten) < 0) {
        fail("cannot start a mold for the new generation: %s", strerror(errno));
        drop_new_listeners(nc, fds, spec);
        goto fail;
    }
    M.pending = (struct pending_reload){.cfg = nc, .fds = fds, .spec = spec};
    return;
fail:
    config_free(nc);
    free(nc);
}

/* See master_int.h. The new mold has the app: its generation starts, the
 * old mold is told to go (it forks nothing any more), and the old workers
 * retire once the new ones serve (master_reload_done). */
void master_reload_ready(void)
{
    struct pending_reload p = M.pending;

    M.pending = (struct pending_reload){0};
    if (M.old_mold.pid > 0)
        spawn_forget(&M.old_mold); /* a reload ago: its end is no news */
    spawn_signal(&M.mold, SIGTERM);
    spawn_move(&M.old_mold, &M.mold);
    spawn_move(&M.mold, &M.next_mold);
    start_generation(p.cfg, p.fds, p.spec);
}

/* See master_int.h. why: the error lines the mold sent, if any. */
void master_reload_failed(int wstatus, const char *why)
{
    char how[96];

    proc_describe(wstatus, how, sizeof(how));
    if (why != NULL && *why) {
        char line[sizeof(M.reload_error)];

        join_lines(why, line, sizeof(line));
        fail("app %s could not be loaded (the new mold %s): %s",
             M.pending.cfg->app.module, how, line);
    } else {
        fail("app %s could not be loaded (the new mold %s; see the error log)",
             M.pending.cfg->app.module, how);
    }
    drop_pending(false); /* reaped: nothing left to kill */
}

void master_reload_done(void)
{
    uint32_t old = 0;

    for (uint32_t i = 0; i < M.nslots; i++)
        if (M.w[i].pid && M.w[i].phase == PH_OLD) {
            M.w[i].phase = PH_RETIRING;
            M.w[i].phase_since = master_ops->now();
            master_signal(&M.w[i], SIGTERM);
            old++;
        }
    if (M.reload_state == RL_IN_PROGRESS || old > 0) {
        M.reload_state = RL_DONE;
        log_info("reload done: generation %u serving, %u old workers retiring",
                 M.generation, old);
    }
}

void master_winch(void)
{
    log_info("received SIGWINCH: retiring every worker, the master stays");
    M.target = 0;
    /* And its mold: nothing is forked until TTIN or HUP, which start one. */
    if (M.mold.pid > 0) {
        spawn_signal(&M.mold, SIGTERM);
        spawn_move(&M.old_mold, &M.mold);
    }
    SB_SET(M.sb->handoff_ok, 0);
    for (uint32_t i = 0; i < M.nslots; i++) {
        struct worker *w = &M.w[i];
        if (w->pid && w->phase != PH_RETIRING && w->phase != PH_KILLING) {
            w->phase = PH_RETIRING;
            w->reason = RETIRE_SHUTDOWN;
            w->phase_since = master_ops->now();
            master_signal(w, SIGTERM);
        }
    }
}

/* "3,4,7": the fds the new master inherits (listeners and admin). */
static void inherit_list(char *buf, size_t len)
{
    size_t off = 0;
    int afd = admin_fd();

    buf[0] = '\0';
    for (size_t i = 0; i < M.nlisten && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%d%s", off ? "," : "",
                                M.lfds[i], M.cfg->server.listen[i].un_ino ? "u" : "");
    if (afd >= 0 && off < len)
        snprintf(buf + off, len - off, "%s%d%s", off ? "," : "", afd,
                 admin_addr()->un_ino ? "u" : "");
}

/* In the forked child: let the sockets cross exec, then exec. */
static void __attribute__((noreturn)) exec_new_master(const char *fds)
{
    char *save = NULL, *copy = strdup(fds), gen[16];

    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        fcntl(atoi(t), F_SETFD, 0);
    setenv(INHERIT_ENV, fds, 1);
    snprintf(gen, sizeof(gen), "%u", M.generation + 1);
    setenv(GENERATION_ENV, gen, 1); /* generations go on counting */
    proc_child_reset_signals(); /* no master handler may run before exec */
    proc_child_signals_done();
    execv(M.self, M.argv);
    log_err("binary upgrade: exec %s", M.self);
    _exit(127);
}

void master_upgrade(void)
{
    char fds[512], oldbin[4200];
    pid_t pid;

    if (M.upgrade_pid > 0) {
        log_warnx("received SIGUSR2: an upgrade is under way (new master pid %d)",
                  (int)M.upgrade_pid);
        return;
    }
    log_info("received SIGUSR2: binary upgrade: starting %s", M.self);
    if (M.pidfile) {
        snprintf(oldbin, sizeof(oldbin), "%s.oldbin", M.pidfile);
        if (rename(M.pidfile, oldbin) < 0)
            log_warn("binary upgrade: rename %s", M.pidfile);
        free(M.pidfile);
        M.pidfile = strdup(oldbin);
    }
    inherit_list(fds, sizeof(fds));
    pid = proc_fork();
    if (pid == 0)
        exec_new_master(fds);
    if (pid < 0) {
        log_warn("binary upgrade: fork");
        master_upgrade_reaped(-1, 0);
        return;
    }
    M.upgrade_pid = pid;
    M.handed_over = true;
    sdnotify_handover(true);
    admin_pause(true); /* the new master answers on the admin socket */
    log_info("binary upgrade: new master pid %d; send SIGWINCH then SIGTERM to "
             "this master (%d) once it serves", (int)pid, (int)getpid());
}

bool master_upgrade_reaped(pid_t pid, int wstatus)
{
    char how[96], *dot;

    if (pid != M.upgrade_pid && pid != -1)
        return false;
    if (pid > 0)
        log_errx("binary upgrade: new master (pid %d) %s; this master goes on",
                 (int)pid, proc_describe(wstatus, how, sizeof(how)));
    M.upgrade_pid = 0;
    M.handed_over = false;
    admin_pause(false);
    /* systemd may have taken the new master for the main process: this one
     * is again (a no-op when the new one never said MAINPID=). */
    sdnotify_handover(false);
    if (pid > 0 && M.mode == RUNNING)
        sdnotify("MAINPID=%d\nREADY=1", (int)getpid());
    if (M.pidfile && (dot = strstr(M.pidfile, ".oldbin")) != NULL &&
        strcmp(dot, ".oldbin") == 0) {
        char *orig = strndup(M.pidfile, (size_t)(dot - M.pidfile));
        if (orig && rename(M.pidfile, orig) == 0) {
            free(M.pidfile);
            M.pidfile = orig;
        } else {
            free(orig);
        }
    }
    return true;
}
