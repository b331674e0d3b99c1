/*
 * command.c - the worker's side of operators' commands: reads one request
 * at a time from the worker's socket pair with the master, runs the
 * daemon's own command or the app's (on the loop thread: a command waits
 * while the loop is busy, and the master times out), and sends the answer.
 * Runs only in workers. Never blocks: the master reads what it asked for.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "command.h"
#include "log.h"

static struct {
    struct ev_loop *loop;
    int fd;
    struct app *app;
    command_builtin_fn builtin;
    ev_io io;
    struct cmd_reply reply; /* 64 KiB: not on the stack */
} C = {.fd = -1};

/* "trace start frames=5": cmd "trace", args "start frames=5" (in place). */
static void split(char *line, const char **cmd, const char **args)
{
    char *sp = strchr(line, ' ');

    *cmd = line;
    *args = "";
    if (sp != NULL) {
        *sp = '\0';
        *args = sp + 1;
    }
}

static void answer(const struct cmd_req *rq)
{
    char line[CMD_LINE_MAX];
    const char *cmd, *args;
    int status;

    memcpy(line, rq->line, sizeof(line));
    line[sizeof(line) - 1] = '\0';
    split(line, &cmd, &args);
    C.reply.seq = rq->seq;
    C.reply.text[0] = '\0';
    status = C.builtin != NULL ? C.builtin(cmd, args, C.reply.text, sizeof(C.reply.text))
                               : 0;
    if (status == 0)
        status = app_command(C.app, cmd, args, C.reply.text, sizeof(C.reply.text));
    C.reply.status = status;
    C.reply.text[sizeof(C.reply.text) - 1] = '\0';
    log_info("command \"%s%s%s\": %d", cmd, *args ? " " : "", args, status);
    if (send(C.fd, &C.reply, offsetof(struct cmd_reply, text) + strlen(C.reply.text) + 1,
             MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        log_warn("command: answering the master");
}

static void on_command(struct ev_loop *loop, ev_io *w, int revents)
{
    struct cmd_req rq;
    ssize_t n;

    for (;;) {
        memset(&rq, 0, sizeof(rq));
        n = recv(C.fd, &rq, sizeof(rq), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) { /* the master is gone: the heartbeat sees to that */
            command_stop();
            return;
        }
        if ((size_t)n > offsetof(struct cmd_req, line))
            answer(&rq);
    }
}

/* See command.h. */
void command_start(struct ev_loop *loop, int fd, struct app *app,
                   command_builtin_fn builtin)
{
    if (fd < 0)
        return;
    C.loop = loop;
    C.fd = fd;
    C.app = app;
    C.builtin = builtin;
    ev_io_init(&C.io, on_command, fd, EV_READ);
    ev_io_start(loop, &C.io);
}

/* See command.h. */
void command_stop(void)
{
    if (C.fd < 0)
        return;
    ev_io_stop(C.loop, &C.io);
    close(C.fd);
    C.fd = -1;
}
