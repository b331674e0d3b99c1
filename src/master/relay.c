/*
 * relay.c - operators' commands to one worker, from the admin endpoint:
 *   GET|POST /workers/ID/NAME[/MORE...][?key=value&...]
 * becomes the command line "NAME MORE... key=value ..." sent over that
 * worker's own socket pair (command.h); the answer goes back to the admin
 * client when it comes, or 504 at the deadline. POST /workers/ID/recycle
 * is the master's own: a graceful replacement, as for max_requests. Runs
 * only in the master, on its loop: nothing here waits.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "command.h"
#include "log.h"
#include "master_int.h"
#include "worker.h"

#define WAIT_DEFAULT 5.0 /* seconds for a worker to answer */
#define WAIT_MAX 120.0

static struct cmd_reply reply; /* 64 KiB: not on the stack */

/* The live worker with this id: the current generation's holder first,
 * else any that still serves it (an older generation during a reload). */
static struct worker *find(struct master *ms, long id)
{
    struct worker *any = NULL;

    for (uint32_t i = 0; i < ms->nslots; i++) {
        struct worker *w = &ms->w[i];
        if (w->pid <= 0 || w->id != id)
            continue;
        if (w->generation == ms->generation &&
            (w->phase == PH_ACTIVE || w->phase == PH_WANTS))
            return w;
        if (any == NULL && w->phase != PH_KILLING)
            any = w;
    }
    return any;
}

/* A word of a command line: letters, digits, and _ - . , : only, so that
 * a line is always "word word key=word". */
static bool word_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || strchr("_-.,:", ch) != NULL))
            return false;
    }
    return true;
}

/* "trace/dump" + "top=5&timeout=3" -> "trace dump top=5", *wait = 3.
 * -1 with a message in out for a malformed one. */
static int command_line(const char *rest, const char *query, char *line, size_t len,
                        double *wait, struct buf *out)
{
    size_t o = 0;
    const char *p = rest;

    *wait = WAIT_DEFAULT;
    while (*p) {
        size_t n = strcspn(p, "/");
        if (!word_ok(p, n) || o + n + 2 > len)
            goto bad;
        o += (size_t)snprintf(line + o, len - o, "%s%.*s", o ? " " : "", (int)n, p);
        p += n + (p[n] == '/');
    }
    for (p = query; *p;) {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        if (eq == NULL || !word_ok(p, (size_t)(eq - p)) ||
            !word_ok(eq + 1, n - (size_t)(eq + 1 - p)) || o + n + 2 > len)
            goto bad;
        if (eq - p == 7 && strncmp(p, "timeout", 7) == 0) {
            *wait = strtod(eq + 1, NULL);
            if (!(*wait > 0 && *wait <= WAIT_MAX))
                goto bad;
        } else {
            o += (size_t)snprintf(line + o, len - o, " %.*s", (int)n, p);
        }
        p += n + (p[n] == '&');
    }
    return o > 0 ? 0 : -1;
bad:
    buf_printf(out,
               "bad command /%s%s%s: words of [A-Za-z0-9_.,:-], arguments "
               "key=value, timeout=SECONDS up to %.0f\n",
               rest, *query ? "?" : "", query, WAIT_MAX);
    return -1;
}

static void done(struct master *ms, struct worker *w)
{
    ev_io_stop(ms->loop, &w->ctl_io);
    ev_timer_stop(ms->loop, &w->ctl_timer);
    w->ctl_token = 0;
}

static void answer(struct master *ms, struct worker *w, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void answer(struct master *ms, struct worker *w, int status, const char *fmt, ...)
{
    char text[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    admin_answer(w->ctl_token, status, "text/plain", text, strlen(text));
    done(ms, w);
}

static void on_reply(struct ev_loop *loop, ev_io *io, int revents)
{
    struct master *ms = ev_userdata(loop);
    struct worker *w = io->data;
    ssize_t n;

    while ((n = recv(w->ctl_fd, &reply, sizeof(reply), MSG_DONTWAIT)) > 0) {
        if ((size_t)n <= offsetof(struct cmd_reply, text) || reply.seq != w->ctl_seq)
            continue; /* the answer to a request that timed out */
        reply.text[sizeof(reply.text) - 1] = '\0';
        admin_answer(w->ctl_token, reply.status, "text/plain", reply.text,
                     strnlen(reply.text, (size_t)n - offsetof(struct cmd_reply, text)));
        done(ms, w);
        return;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR))
        answer(ms, w, 502, "worker %d (pid %d) closed its command channel\n", w->id,
               (int)w->pid);
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master *ms = ev_userdata(loop);
    struct worker *w = t->data;

    answer(ms, w, 504,
           "worker %d (pid %d) did not answer within %.0fs: its loop is "
           "busy (a long request?); try again, or give a longer timeout\n",
           w->id, (int)w->pid, w->ctl_wait);
}

/* POST /workers/ID/recycle: as if the worker had reached max_requests. */
static int recycle_one(struct master *ms, struct worker *w, const struct admin_req *rq,
                       struct buf *out)
{
    if (strcmp(rq->method, "POST") != 0) {
        buf_printf(out, "recycle changes things: POST it\n");
        return 405;
    }
    if (w->phase != PH_ACTIVE || w->generation != ms->generation) {
        buf_printf(out, "worker %d (pid %d) is %s already\n", w->id, (int)w->pid,
                   master_phase_name(w->phase));
        return 409;
    }
    log_info("worker %d (pid %d): recycle requested through the admin endpoint", w->id,
             (int)w->pid);
    master_message(ms, w, MSG_RECYCLE, RETIRE_REQUESTED);
    master_step(ms);
    buf_printf(out, "worker %d (pid %d): its replacement starts, then it retires\n",
               w->id, (int)w->pid);
    return 202;
}

/* See master_int.h. */
int relay_render(struct master *ms, const struct admin_req *rq, struct buf *out)
{
    struct cmd_req req = {0};
    const char *rest;
    char *end;
    long id = strtol(rq->path + strlen("/workers/"), &end, 10);
    struct worker *w;
    double wait;

    if (end == rq->path + strlen("/workers/") || *end != '/' || end[1] == '\0') {
        buf_printf(out, "try /workers/ID/snapshot, /workers/ID/recycle, or an app's "
                        "command (/workers/ID/trace/dump)\n");
        return 404;
    }
    rest = end + 1;
    if ((w = find(ms, id)) == NULL) {
        buf_printf(out, "no worker %ld (workers are 1..%u)\n", id, ms->target);
        return 404;
    }
    if (strcmp(rest, "recycle") == 0)
        return recycle_one(ms, w, rq, out);
    if (command_line(rest, rq->query, req.line, sizeof(req.line), &wait, out) < 0)
        return 400;
    if (w->ctl_fd < 0) {
        buf_printf(out, "worker %d (pid %d) has no command channel\n", w->id,
                   (int)w->pid);
        return 503;
    }
    if (w->ctl_token != 0) {
        buf_printf(out, "worker %d (pid %d) is answering another command; try again\n",
                   w->id, (int)w->pid);
        return 409;
    }
    req.seq = ++w->ctl_seq;
    if (send(w->ctl_fd, &req, offsetof(struct cmd_req, line) + strlen(req.line) + 1,
             MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        buf_printf(out, "worker %d (pid %d): cannot send the command: %s\n", w->id,
                   (int)w->pid, strerror(errno));
        return 502;
    }
    w->ctl_token = rq->token;
    ev_io_init(&w->ctl_io, on_reply, w->ctl_fd, EV_READ);
    ev_timer_init(&w->ctl_timer, on_deadline, wait, 0.);
    w->ctl_wait = wait;
    w->ctl_io.data = w->ctl_timer.data = w;
    ev_io_start(ms->loop, &w->ctl_io);
    ev_timer_start(ms->loop, &w->ctl_timer);
    admin_hold(rq->token, wait + 1);
    return ADMIN_LATER;
}

/* See master_int.h. */
void relay_forget(struct master *ms, struct worker *w)
{
    if (w->ctl_token != 0)
        answer(ms, w, 502, "worker %d (pid %d) ended before it answered\n", w->id,
               (int)w->pid);
    if (w->ctl_fd >= 0)
        close(w->ctl_fd);
    w->ctl_fd = -1;
}

/* See master_int.h. */
void relay_forget_in_child(struct master *ms)
{
    for (uint32_t i = 0; i < ms->nslots; i++)
        if (ms->w[i].pid != 0 && ms->w[i].ctl_fd >= 0) {
            if (ms->w[i].ctl_token != 0) {
                ev_io_stop(ms->loop, &ms->w[i].ctl_io);
                ev_timer_stop(ms->loop, &ms->w[i].ctl_timer);
            }
            close(ms->w[i].ctl_fd);
        }
}
