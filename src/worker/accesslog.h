/*
 * accesslog.h - the access log of a worker: one line per response, in the
 * `common` or `combined` format or a custom one, buffered in memory and
 * written at most once a second (and at exit), so no request waits on a
 * disk. Runs only in workers.
 */
#ifndef PF_ACCESSLOG_H
#define PF_ACCESSLOG_H

#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "preforkd.h"

/* What one line may say. Strings point into the connection's buffer and
 * are only valid during accesslog_write. */
struct accesslog_entry {
    const char *peer; /* "127.0.0.1" */
    double start;     /* wall clock (seconds): request head complete */
    double duration;  /* seconds, head complete -> response queued */
    pf_str method, target;
    int version; /* 10, 11 */
    int status;
    uint64_t bytes;                   /* response bytes: head and body */
    uint64_t body_bytes;              /* of which the body (0 for HEAD, 204, 304) */
    pf_str referer, user_agent, host; /* .ptr NULL when absent */
    pid_t pid;
    int worker_id;
};

/* Parses the format ("common", "combined" or a custom one) and opens target
 * ("stderr" or a path, O_APPEND). Starts a 1 s flush timer on loop.
 * 0 / -1 (logged: a bad format names the token). */
int accesslog_open(struct ev_loop *loop, const char *target, const char *format);
/* Formats e into the buffer; flushes when the buffer is full. */
void accesslog_write(const struct accesslog_entry *e);
/* Writes the buffer out now. */
void accesslog_flush(void);
/* USR1: flush, then reopen the same path (logrotate). */
void accesslog_reopen(void);
/* Flush and close (worker exit). */
void accesslog_close(void);
/* Checks a format without opening anything (config check); 0 / -1 with a
 * message in why. */
int accesslog_check_format(const char *format, char *why, size_t len);

#endif
