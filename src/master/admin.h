/*
 * admin.h - the admin endpoint, served by the master on its own loop (so it
 * answers while every worker is stuck): GET /stats, /metrics, /healthz,
 * and /workers/ID/... relayed to one worker (relay.c). One request per
 * connection, bounded in size and time. Runs only in the master.
 */
#ifndef PF_ADMIN_H
#define PF_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "buf.h"
#include "listen.h"

/* One request: method "GET", "HEAD" or "POST"; the path and the query
 * (after '?', "" if none); token names the request for admin_answer. */
struct admin_req {
    const char *method, *path, *query;
    uint64_t token;
};

/* A render function's status when the answer comes later, through
 * admin_answer (a command relayed to a worker). */
#define ADMIN_LATER 0

/* Renders rq into out; sets *ctype; returns the HTTP status (or
 * ADMIN_LATER). data: what admin_start was given. */
typedef int (*admin_render_fn)(void *data, const struct admin_req *rq, struct buf *out,
                               const char **ctype);

/* Serves addr on loop: an inherited socket for it (binary upgrade) or a
 * new one (a unix socket is made mode 0600). 0 / -1 (logged). */
int admin_start(struct ev_loop *loop, struct listen_addr *addr, admin_render_fn render,
                void *data);
/* Closes the listener and every open admin connection; unlinks a unix
 * socket only when `unlink_path` (not when a new master shares it). */
void admin_stop(bool unlink_path);
/* Stops (true) or resumes (false) accepting, keeping the socket. */
void admin_pause(bool pause);
/* The listening fd, or -1. */
int admin_fd(void);
/* Its address as bound (for a unix socket this master created, with the
 * file's identity: listen.h). */
const struct listen_addr *admin_addr(void);
/* The answer to a request rendered ADMIN_LATER. -1 when its client is
 * gone (closed, or timed out): nothing is sent. */
int admin_answer(uint64_t token, int status, const char *ctype, const char *body,
                 size_t len);
/* Lets the request wait up to `seconds` more for its answer. */
void admin_hold(uint64_t token, double seconds);
/* In a just-forked worker: close inherited admin fds, touch no watcher. */
void admin_forget_in_child(void);

#endif
