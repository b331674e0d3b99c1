/*
 * command.h - an operator's command to one worker ("snapshot", "trace
 * start frames=5"), relayed by the master from its admin endpoint over a
 * socket pair of that worker's own (SOCK_SEQPACKET: one message each way
 * per command). The wire format, shared by the master (relay.c) and the
 * worker (command.c).
 */
#ifndef PF_COMMAND_H
#define PF_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "app.h"

#define CMD_LINE_MAX 1024   /* "NAME ARGS", NUL-terminated */
#define CMD_REPLY_MAX 65536 /* the answer's text, at most */

struct cmd_req {
    uint32_t seq;
    char line[CMD_LINE_MAX];
};

struct cmd_reply {
    uint32_t seq;             /* the request's */
    int32_t status;           /* HTTP status: 200, 400, 404, 409 */
    char text[CMD_REPLY_MAX]; /* sent up to its NUL */
};

/* The daemon's own commands (worker.c): the status, with the answer in
 * out; 0 when cmd is not one of them. */
typedef int (*command_builtin_fn)(const char *cmd, const char *args, char *out,
                                  size_t outlen);

/* Worker: answers commands arriving on fd, on loop, the daemon's own first,
 * then the app's (app_command). fd < 0: no channel (nothing happens). */
void command_start(struct ev_loop *loop, int fd, struct app *app,
                   command_builtin_fn builtin);
/* Stops answering (the worker leaves); closes fd. */
void command_stop(void);

#endif
