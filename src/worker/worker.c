/*
 * worker.c - one worker process: the boot sequence after fork, accepting on
 * the shared listening sockets, the heartbeat, and retiring. Runs only in
 * workers. Owns the worker's loop watchers, its connections (via conn.c)
 * and its scoreboard slot. Nothing here blocks once the loop runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <dirent.h>

#include <ev.h>

#include "accesslog.h"
#include "command.h"
#include "conn.h"
#include "handoff.h"
#include "recycle.h"
#include "log.h"
#include "metrics.h"
#include "proc.h"
#include "proctitle.h"
#include "upstream.h"
#include "worker.h"

#define ACCEPT_BATCH 64  /* accepts per readiness event, then yield */
#define EMFILE_PAUSE 0.5 /* stop accepting this long when out of fds */

/* This worker: the master's table has a struct worker for each (master_int.h). */
static struct worker_self {
    const struct worker_boot *boot;
    struct ev_loop *loop;
    struct slot *slot;
    struct conn_server srv;
    ev_io *accept_w;
    size_t naccept;
    ev_io handoff_w; /* connections passed on by leaving workers */
    bool accepting;
    bool
        guard_gave_up; /* memory_guard: accepting again, past max_rss, as nobody else serves */
    bool app_in_worker; /* loaded here (preload = false): unload here */
    bool access_log;    /* [log] access_log is on */
    bool asked_recycle; /* pf_worker_recycle was called */
    bool leaving;       /* retiring, or out of its loop: pf_worker_leaving */
    struct recycle rec;
    ev_tstamp last_beat;
    ev_signal sig_term, sig_int, sig_quit, sig_usr1, sig_usr2;
    ev_timer heartbeat, pause, graceful;
} wk;

/* Set by the SIGTERM handler itself, before the loop has heard of it: see
 * on_term. */
static volatile sig_atomic_t term_pending;

struct ev_loop *pf_loop(void)
{
    return wk.loop;
}

int pf_worker_id(void)
{
    return wk.boot ? wk.boot->id : 0;
}

static void tell_master(uint16_t type, uint16_t reason);

/* A soft limit was reached: the master starts a replacement first and
 * retires this worker (SIGTERM) once the replacement serves. */
static void soft_limit(enum retire_reason r)
{
    char mem[16];

    /* Leaving already (retiring, or a recycle it asked for): its slot's
     * reason stays the one the master acts on (pf_worker_leaving). */
    if (r == RETIRE_NONE || wk.leaving || wk.asked_recycle)
        return;
    memory_fmt(SB_GET(wk.slot->mem), mem, sizeof(mem));
    log_debug("%s reached (%llu requests, %s, %.0fs old): asking for a replacement",
              recycle_reason_name(r), (unsigned long long)wk.rec.requests, mem,
              ev_now(wk.loop) - wk.rec.started);
    SB_SET(wk.slot->retire_reason, r);
    tell_master(MSG_RECYCLE, (uint16_t)r);
}

static void accepting(bool on)
{
    if (on == wk.accepting)
        return;
    wk.accepting = on;
    SB_SET(wk.slot->accepting, on);
    for (size_t i = 0; i < wk.naccept; i++) {
        if (on)
            ev_io_start(wk.loop, &wk.accept_w[i]);
        else
            ev_io_stop(wk.loop, &wk.accept_w[i]);
    }
    /* Who takes new connections takes handed-off ones too. */
    if (on)
        ev_io_start(wk.loop, &wk.handoff_w);
    else
        ev_io_stop(wk.loop, &wk.handoff_w);
}

/* Out of fds (or memory) while accepting: level-triggered readiness would
 * spin, so stop for a while. */
static void accept_pause(const char *what)
{
    log_warn("%s: pausing %.1fs", what, EMFILE_PAUSE);
    accepting(false);
    ev_timer_set(&wk.pause, EMFILE_PAUSE, 0.);
    ev_timer_start(wk.loop, &wk.pause);
}

/* Microseconds since the master forked this worker: at least 1 (0 means
 * "not yet"), at most UINT32_MAX (about 71 minutes). */
static uint32_t since_fork_us(void)
{
    int64_t d = scoreboard_mono_us() - SB_GET(wk.slot->forked_us);

    return d < 1 ? 1 : d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    uint32_t limit = wk.boot->cfg->server.worker_connections;

    /* conn_accept serves what came with the connection at once, so the
     * worker may stop accepting in the middle of a batch (over max_rss,
     * leaving): then the rest wait for another worker. */
    for (int i = 0;
         i < ACCEPT_BATCH && wk.srv.nconns < limit && ev_is_active(w) && !term_pending;
         i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(w->fd, (struct sockaddr *)&ss, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if (SB_GET(wk.slot->first_accept_us) == 0)
                SB_SET(wk.slot->first_accept_us, since_fork_us());
            if (len == 0 || ss.ss_family == AF_UNSPEC)
                ss.ss_family = AF_UNIX;
            /* Counted before it is served: an app that blocks the loop
             * shows as a busy worker. */
            SB_SET(wk.slot->connections, wk.srv.nconns + 1);
            conn_accept(&wk.srv, fd, (struct sockaddr *)&ss);
            SB_SET(wk.slot->connections, wk.srv.nconns);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return; /* another worker took it, or the backlog is empty */
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            accept_pause("accept");
            return;
        }
        log_warn("accept");
        return;
    }
    if (wk.srv.nconns >= limit)
        accepting(false); /* resumed by on_conn_closed */
}

/* Idle keep-alive connections from a leaving worker: served from here on. */
static void on_handoff(struct ev_loop *loop, ev_io *w, int revents)
{
    uint32_t limit = wk.boot->cfg->server.worker_connections;
    int fds[HANDOFF_BATCH];

    /* A message may bring a few connections past the limit: they are
     * served all the same (none may be lost here). */
    for (int i = 0; i < ACCEPT_BATCH && wk.srv.nconns < limit; i++) {
        int n = handoff_recv(w->fd, fds);

        if (n >= 0) {
            for (int k = 0; k < n; k++)
                conn_adopt(&wk.srv, fds[k]);
            SB_SET(wk.slot->connections, wk.srv.nconns);
            continue;
        }
        if (errno == EMFILE) /* that connection is lost, as in accept */
            accept_pause("receiving a handed-off connection");
        else if (errno != EAGAIN)
            log_warn("receiving a handed-off connection");
        return;
    }
    if (wk.srv.nconns >= limit)
        accepting(false);
}

static void on_pause_over(struct ev_loop *loop, ev_timer *w, int revents)
{
    if (!wk.srv.retiring && !wk.srv.no_keepalive &&
        wk.srv.nconns < wk.boot->cfg->server.worker_connections)
        accepting(true);
}

static void on_conn_closed(struct conn_server *s)
{
    SB_SET(wk.slot->connections, s->nconns);
    if (s->retiring) {
        /* Gone when no client is left and every orphaned request's app has
         * been told (its abort callback runs from the loop). */
        if (s->nconns == 0 && !conn_aborts_pending(s))
            ev_break(wk.loop, EVBREAK_ALL);
        return;
    }
    if (!wk.accepting && !ev_is_active(&wk.pause) && !wk.srv.no_keepalive &&
        s->nconns < wk.boot->cfg->server.worker_connections)
        accepting(true);
}

/* Another worker takes new connections now (so this one may stop), or,
 * with starting, is on its way: forked, not serving yet. */
static bool another_worker(bool starting)
{
    for (uint32_t i = 0; i < wk.boot->sb->nslots; i++) {
        struct slot *s = &wk.boot->sb->slots[i];
        if (s != wk.slot && SB_GET(s->pid) > 0 &&
            (starting ? SB_GET(s->state) == SLOT_STARTING : SB_GET(s->accepting)))
            return true;
    }
    return false;
}

static bool others_accepting(void)
{
    return another_worker(false);
}

/* Whether a leaving worker's idle connections can go to a serving one. */
static bool may_handoff(const struct conn_server *s)
{
    return SB_GET(wk.boot->sb->handoff_ok) && others_accepting();
}

/* Past max_rss itself (asking early did not suffice: a burst, a slow
 * replacement, or waiting for the recycle budget), the worker stops
 * growing: no new connections while another worker takes them (or, a
 * quarter past max_rss, while one starts), and each keep-alive connection
 * is handed off or ends after its current request. The kernel backlog is
 * shared: no connection is lost. */
static void memory_guard(bool tick)
{
    bool others;

    if (!wk.rec.over_rss || wk.srv.retiring)
        return;
    if (!wk.srv.no_keepalive) {
        wk.srv.no_keepalive = true;
        conn_handoff_idle(&wk.srv);
    }
    /* Asked after every request. When every other worker is past the limit
     * too, this one goes on accepting, but only up to a quarter past
     * max_rss: beyond, it waits for its replacement to serve (the listen
     * backlog holds new connections meanwhile) rather than grow on. */
    others = others_accepting();
    if (wk.accepting && (others || (wk.rec.far_over_rss && !wk.guard_gave_up))) {
        accepting(false);
        log_info("over max_rss%s: no new connections until the replacement serves",
                 others ? "" : " by a quarter");
        return;
    }
    /* Unless no worker serves or starts (the master cannot start one): then
     * someone has to serve, and it is this worker, from the next heartbeat
     * on; max_rss_hard is the limit left. */
    if (tick && !wk.accepting && !wk.guard_gave_up && !others && !another_worker(true) &&
        !ev_is_active(&wk.pause) &&
        wk.srv.nconns < wk.boot->cfg->server.worker_connections) {
        wk.guard_gave_up = true;
        accepting(true);
        log_warnx("over max_rss and no other worker serves or starts: accepting again");
    }
}

/* One access log line per response, when the access log is on; now is
 * when the response was done. */
static void log_access(const struct pf_request *r, double now)
{
    struct accesslog_entry e = {
        .peer = pf_request_peer(r),
        .duration = now - r->started,
        .start = r->started,
        .method = r->method,
        .target = r->target,
        .version = r->resp.version,
        .status = r->resp.status,
        .bytes = r->bytes,
        .body_bytes = r->head_only || r->resp.framing == FRAME_NONE ? 0 : r->sent,
        .referer = pf_request_header(r, "Referer"),
        .user_agent = pf_request_header(r, "User-Agent"),
        .host = pf_request_header(r, "Host"),
        .pid = SB_GET(wk.slot->pid),
        .worker_id = wk.boot->id,
    };

    accesslog_write(&e);
}

/* Every response, the server's own error responses too: by status class
 * and duration (the access log's request time) for /metrics, and the
 * access log line. One clock reading for both. */
static void response_done(const struct pf_request *r)
{
    double now = ev_time();

    scoreboard_count_response(wk.slot, r->resp.status, now - r->started);
    if (wk.access_log)
        log_access(r, now);
}

static void on_error_response(struct conn_server *s, const struct pf_request *r)
{
    response_done(r);
}

static void on_request_done(struct conn_server *s, const struct pf_request *r)
{
    SB_ADD(wk.slot->requests, 1);
    response_done(r);
    soft_limit(recycle_after_request(&wk.rec, ev_now(wk.loop)));
    memory_guard(false);
}

/* Every second (timeout/4 when shorter): proof of life for the master,
 * loop lag, soft limits. */
static void on_heartbeat(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_tstamp now = ev_now(loop);
    double lag = now - wk.last_beat - w->repeat;

    wk.last_beat = now;
    if (getppid() != wk.boot->master) { /* PDEATHSIG is the fast path */
        log_errx("the master (pid %d) is gone: exiting", (int)wk.boot->master);
        exit(1);
    }
    SB_SET(wk.slot->heartbeat_ms, scoreboard_mono_ms());
    SB_SET(wk.slot->loop_lag_us, lag > 0 ? (uint32_t)(lag * 1e6) : 0);
    soft_limit(recycle_tick(&wk.rec, now));
    memory_guard(true);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own fd */
}

/* A picture of this worker for whoever hunts the leak (USR2, preforkctl
 * snapshot), into out. Keeps serving. */
static void snapshot_text(char *out, size_t len)
{
    struct mem_usage u = {0};
    struct mallinfo2 mi = mallinfo2();
    char rss[16], uss[16], pss[16], heap[16], freeb[16], mmapb[16];

    memory_full(0, &u);
    snprintf(out, len,
             "rss %s uss %s pss %s; malloc: in use %s, free %s in "
             "%zu chunks, mmapped %s, main arena %zu B; fds %d; "
             "connections %u; requests %llu; loop lag %u us",
             memory_fmt(u.rss, rss, sizeof(rss)), memory_fmt(u.uss, uss, sizeof(uss)),
             memory_fmt(u.pss, pss, sizeof(pss)),
             memory_fmt(mi.uordblks, heap, sizeof(heap)),
             memory_fmt(mi.fordblks, freeb, sizeof(freeb)), mi.ordblks,
             memory_fmt(mi.hblkhd, mmapb, sizeof(mmapb)), mi.arena, count_fds(),
             wk.srv.nconns, (unsigned long long)wk.rec.requests,
             SB_GET(wk.slot->loop_lag_us));
}

/* USR2: the snapshot, to the log. */
static void snapshot(void)
{
    char text[512];

    snapshot_text(text, sizeof(text));
    log_info("snapshot: %s", text);
}

/* The daemon's own commands to a worker (command.h); 0: not one of them. */
static int builtin_command(const char *cmd, const char *args, char *out, size_t len)
{
    if (strcmp(cmd, "snapshot") != 0)
        return 0;
    snapshot_text(out, len);
    if (strlen(out) + 2 < len)
        strcat(out, "\n");
    return 200;
}

/* See preforkd.h. The master writes the reason into the slot before it
 * signals a worker to go; a worker that asked for its replacement wrote
 * its own. */
const char *pf_worker_leaving(void)
{
    enum retire_reason r;

    if (wk.boot == NULL || !wk.leaving)
        return NULL;
    r = (enum retire_reason)SB_GET(wk.slot->retire_reason);
    return r == RETIRE_NONE ? "signal" : recycle_reason_name(r);
}

/* See preforkd.h. */
void pf_worker_recycle(void)
{
    if (wk.boot == NULL || wk.asked_recycle || wk.srv.retiring)
        return;
    wk.asked_recycle = true;
    log_info("recycle requested (%llu requests): asking for a replacement",
             (unsigned long long)wk.rec.requests);
    SB_SET(wk.slot->retire_reason, RETIRE_REQUESTED);
    tell_master(MSG_RECYCLE, RETIRE_REQUESTED);
}

static void on_graceful_over(struct ev_loop *loop, ev_timer *w, int revents)
{
    log_warnx("graceful_timeout reached: closing %u connections", wk.srv.nconns);
    conn_close_all(&wk.srv);
    ev_break(loop, EVBREAK_ALL);
}

/* TERM: stop accepting, finish what is in flight, then leave. */
static void start_retiring(void)
{
    if (wk.srv.retiring)
        return;
    wk.leaving = true;
    /* The master's retirement line tells the operator; this one only
     * counts what is open now (idle keep-alive connections may have been
     * handed off before: see "handed ... idle connections" at exit). */
    log_debug("retiring: %u connections open", wk.srv.nconns);
    SB_SET(wk.slot->state, SLOT_RETIRING);
    accepting(false);
    ev_timer_stop(wk.loop, &wk.pause);
    /* Our copies only: the master and other workers keep the sockets, so
     * connections waiting in the backlog are not lost. */
    for (size_t i = 0; i < wk.naccept; i++)
        close(wk.accept_w[i].fd);
    wk.naccept = 0;
    conn_retire_all(&wk.srv);
    ev_timer_set(&wk.graceful, wk.boot->cfg->server.graceful_timeout, 0.);
    ev_timer_start(wk.loop, &wk.graceful);
    if (wk.srv.nconns == 0)
        ev_break(wk.loop, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    switch (w->signum) {
    case SIGTERM: start_retiring(); break;
    case SIGUSR1:
        if (log_reopen() < 0)
            log_warn("reopening the error log");
        if (wk.access_log)
            accesslog_reopen();
        break;
    case SIGUSR2: snapshot(); break;
    default: /* INT, QUIT: leave now */
        log_info("received SIG%s: exiting now", sigabbrev_np(w->signum));
        conn_close_all(&wk.srv);
        ev_break(loop, EVBREAK_ALL);
        break;
    }
}

/* SIGTERM's handler, in place of libev's (which only feeds the loop).
 * The loop may learn of the signal one iteration late: epoll_wait can
 * return the listener ready while the handler runs on the way out, and
 * libev then calls on_accept before it reads its signal pipe. So a worker
 * the master has told to retire could still take one more connection and
 * serve it with the old code after "reload done". With this flag, once the
 * handler has run no accept4 follows. */
static void on_term(int signum)
{
    int saved = errno;

    term_pending = 1;
    ev_feed_signal(signum);
    errno = saved;
}

static void start_signals(void)
{
    struct sigaction sa = {.sa_handler = on_term, .sa_flags = SA_RESTART};

    ev_signal *sigs[] = {&wk.sig_term, &wk.sig_int, &wk.sig_quit, &wk.sig_usr1,
                         &wk.sig_usr2};
    int nums[] = {SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2};

    /* The master's scaling and reload signals mean nothing to a worker;
     * a terminal's SIGHUP or SIGTTIN must not stop or kill it. */
    signal(SIGHUP, SIG_IGN);
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
    signal(SIGWINCH, SIG_IGN);
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        ev_signal_init(sigs[i], on_signal, nums[i]);
        ev_signal_start(wk.loop, sigs[i]);
    }
    sigfillset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL); /* after libev installed its own */
}

static void start_accepting(void)
{
    const struct worker_boot *b = wk.boot;

    wk.accept_w = calloc(b->nlisten, sizeof(*wk.accept_w));
    if (wk.accept_w == NULL)
        fatal("worker: out of memory");
    wk.naccept = b->nlisten;
    /* Accepted sockets inherit TCP_NODELAY from their listener (set by
     * listen_tune): then no setsockopt per connection. A unix listener
     * answers the question with an error, which is fine: its connections
     * need none. */
    wk.srv.nodelay_inherited = true;
    for (size_t i = 0; i < b->nlisten; i++) {
        int on = 0;
        socklen_t len = sizeof(on);
        struct sockaddr_storage ss;
        socklen_t slen = sizeof(ss);

        ev_io_init(&wk.accept_w[i], on_accept, b->listen_fds[i], EV_READ);
        if (getsockname(b->listen_fds[i], (struct sockaddr *)&ss, &slen) == 0 &&
            ss.ss_family != AF_UNIX &&
            (getsockopt(b->listen_fds[i], IPPROTO_TCP, TCP_NODELAY, &on, &len) < 0 ||
             !on))
            wk.srv.nodelay_inherited = false;
    }
    ev_init(&wk.pause, on_pause_over);
    ev_io_init(&wk.handoff_w, on_handoff, b->handoff_fd[1], EV_READ);
    accepting(true);
}

/* App start-up in the worker; exits EXIT_APP_INIT when it fails. */
static void boot_app(void)
{
    struct app *app = wk.boot->app;

    if (!app->loaded) {
        /* cfg is const for the worker; app_load marks [app] keys as used,
         * which is bookkeeping on this process's own copy. */
        if (app_open(app, wk.boot->cfg->app.module) < 0 ||
            app_load(app, (struct config *)(uintptr_t)wk.boot->cfg) < 0)
            exit(EXIT_APP_INIT);
        wk.app_in_worker = true;
    }
    if (app_worker_init(app) < 0)
        exit(EXIT_APP_INIT);
}

static void tell_master(uint16_t type, uint16_t reason)
{
    struct worker_msg m = {
        .slot = wk.boot->slot,
        .pid = (int32_t)getpid(),
        .generation = wk.boot->generation,
        .type = type,
        .reason = reason,
    };

    /* Non-blocking: if the pipe is full, the master still sees the state
     * in the scoreboard on its next tick. */
    if (write(wk.boot->msg_fd, &m, sizeof(m)) < 0 && errno != EAGAIN)
        log_warn("worker: telling the master");
}

/* 1. Identity: the slot, the log prefix, the process title. */
static void take_identity(const struct worker_boot *b)
{
    char role[32];

    wk.boot = b;
    wk.loop = EV_DEFAULT;
    wk.slot = scoreboard_slot(b->sb, b->slot);
    snprintf(role, sizeof(role), "worker %d", b->id);
    log_set_role(role);
    proctitle_set("worker %d [gen %u]", b->id, b->generation);
    SB_SET(wk.slot->heartbeat_ms, scoreboard_mono_ms());
    SB_SET(wk.slot->pid, (int32_t)getpid());
    metrics_init(wk.slot);
}

/* 3. Privileges, before any app code runs in this process (the mold has
 *    usually dropped them already); then the master's death is ours. */
static void become_user(const struct worker_boot *b)
{
    const struct config *cfg = b->cfg;

    if (proc_drop_privileges(cfg->server.user, cfg->server.group) < 0)
        exit(EXIT_CONFIG);
    /* A master killed outright (SIGKILL, a crash) must not leave workers
     * serving on their own: they get SIGTERM, and retire. Set after the
     * change of credentials, which clears it. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != b->master)
        exit(1); /* it died before prctl took effect */
}

/* 5. Connections and timers. */
static void start_connections(const struct worker_boot *b)
{
    const struct config *cfg = b->cfg;
    double beat;

    wk.srv = (struct conn_server){
        .loop = wk.loop,
        .cfg = cfg,
        .app = b->app,
        .limits =
            {
                .max_request_line = cfg->server.max_request_line,
                .max_headers = cfg->server.max_headers,
                .max_header_size = cfg->server.max_header_size,
                .max_body_size = cfg->server.max_body_size,
            },
        .on_conn_closed = on_conn_closed,
        .on_request_done = on_request_done,
        .on_error_response = on_error_response,
        .handoff_fd = b->handoff_fd[0],
        .may_handoff = may_handoff,
        .slot = wk.slot,
    };
    recycle_init(&wk.rec, cfg, b->sb, wk.slot, ev_now(wk.loop));
    wk.last_beat = ev_now(wk.loop);
    if (cfg->log.access_log &&
        accesslog_open(wk.loop, cfg->log.access_log, cfg->log.access_log_format) == 0)
        wk.access_log = true;
    /* Often enough that a healthy worker never looks a whole timeout old,
     * even with a timeout of a second or two. */
    beat = cfg->server.timeout / 4 < 1. ? cfg->server.timeout / 4 : 1.;
    ev_timer_init(&wk.heartbeat, on_heartbeat, beat, beat);
    ev_timer_start(wk.loop, &wk.heartbeat);
    ev_init(&wk.graceful, on_graceful_over);
    start_accepting();
    command_start(wk.loop, b->ctl_fd, b->app, builtin_command);
}

/* 7. Leaving: what the worker opened, closed in the reverse order. */
static void __attribute__((noreturn)) leave(const struct worker_boot *b)
{
    wk.leaving = true;
    if (wk.srv.handed_off > 0)
        log_debug("handed %llu idle connections to serving workers in all",
                  (unsigned long long)wk.srv.handed_off);
    command_stop();
    recycle_close(&wk.rec, ev_now(wk.loop));
    if (wk.access_log)
        accesslog_close();
    app_worker_exit(b->app);
    upstream_worker_exit();
    if (wk.app_in_worker)
        app_close(b->app);
    exit(0);
}

void worker_main(const struct worker_boot *b)
{
    take_identity(b);
    /* 2. Signals: the mold's handlers are gone; install ours. They stay
     *    blocked until the loop is about to run. */
    proc_child_reset_signals();
    start_signals();
    become_user(b);
    /* 4. The app: load (without preload) and per-worker init, after the
     *    upstream pools, which worker_init may look up. */
    if (upstream_worker_init(wk.loop, b->cfg, wk.slot) < 0)
        fatal("worker: cannot allocate the upstream pools");
    boot_app();
    start_connections(b);
    /* 6. Serving. */
    proc_child_signals_done();
    SB_SET(wk.slot->state, SLOT_SERVING);
    SB_SET(wk.slot->boot_us, since_fork_us());
    tell_master(MSG_SERVING, 0);
    if (SB_GET(wk.slot->quiet))
        log_debug("serving");
    else
        log_info("serving");
    ev_run(wk.loop, 0);
    leave(b);
}
