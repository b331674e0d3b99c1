/*
 * admin.h - the admin endpoint, served by the master on its own loop (so it
 * answers while every worker is stuck): GET /stats, /metrics, /healthz.
 * One request per connection, bounded in size and time.
 */
#ifndef PF_ADMIN_H
#define PF_ADMIN_H

#include <stdbool.h>

#include <ev.h>

#include "buf.h"
#include "listen.h"

/* Renders path into out; sets *ctype; returns the HTTP status. */
typedef int (*admin_render_fn)(const char *path, struct buf *out,
                               const char **ctype);

/* Serves addr on loop: an inherited socket for it (binary upgrade) or a
 * new one (a unix socket is made mode 0600). 0 / -1 (logged). */
int admin_start(struct ev_loop *loop, struct listen_addr *addr,
                admin_render_fn render);
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
/* In a just-forked worker: close inherited admin fds, touch no watcher. */
void admin_forget_in_child(void);

#endif
