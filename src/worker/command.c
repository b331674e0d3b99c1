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
} chan = {.fd = -1};

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
    chan.reply.seq = rq->seq;
    chan.reply.text[0] = '\0';
    status = chan.builtin != NULL
                 ? chan.builtin(cmd, args, chan.reply.text, sizeof(chan.reply.text))
                 : 0;
    if (status == 0)
        status = app_command(chan.app, cmd, args, chan.reply.text,
                             sizeof(chan.reply.text));
    chan.reply.status = status;
    chan.reply.text[sizeof(chan.reply.text) - 1] = '\0';
    log_info("command \"%s%s%s\": %d", cmd, *args ? " " : "", args, status);
    if (send(chan.fd, &chan.reply,
             offsetof(struct cmd_reply, text) + strlen(chan.reply.text) + 1,
             MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        log_warn("command: answering the master");
}

static void on_command(struct ev_loop *loop, ev_io *w, int revents)
{
    struct cmd_req rq;
    ssize_t n;

    for (;;) {
        memset(&rq, 0, sizeof(rq));
        n = recv(chan.fd, &rq, sizeof(rq), MSG_DONTWAIT);
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
    chan.loop = loop;
    chan.fd = fd;
    chan.app = app;
    chan.builtin = builtin;
    ev_io_init(&chan.io, on_command, fd, EV_READ);
    ev_io_start(loop, &chan.io);
}

/* See command.h. */
void command_stop(void)
{
    if (chan.fd < 0)
        return;
    ev_io_stop(chan.loop, &chan.io);
    close(chan.fd);
    chan.fd = -1;
}
