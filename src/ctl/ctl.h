/*
 * ctl.h - preforkctl, the operator's front end to a running preforkd: it
 * finds the daemon from the INI file ([admin] listen, [server] pidfile),
 * reads the master's admin endpoint and signals the master. A short-lived
 * process of its own, never part of the daemon. Files: main.c (argv,
 * dispatch), http.c (admin endpoint client), json.c (reading /stats),
 * status.c (the table), ops.c (reload, scale, stop, upgrade), worker.c
 * (snapshot, recycle, trace: one worker's), procs.c (pids, pidfiles,
 * /proc).
 * Convention: commands return an exit code (CTL_*), having printed what
 * failed and with which value; helpers return 0 / -1 with the reason in a
 * `why` buffer, or NULL for pointers.
 */
#ifndef PF_CTL_H
#define PF_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "listen.h"

/* Exit codes. */
#define CTL_OK 0
#define CTL_FAILED 1 /* the operation was refused or did not finish */
#define CTL_USAGE 2
#define CTL_UNREACHABLE 69 /* EX_UNAVAILABLE: no daemon to talk to */

#define CTL_WHY 512 /* size of `why` buffers */

struct ctl {
    const char *conf_path;
    struct config cfg;
    bool have_cfg;
    struct listen_addr admin;
    bool have_admin;
    const char *pidfile; /* NULL: none configured */
    double timeout;      /* -t; 0: each command's default */
    double graceful;     /* [server] graceful_timeout (30 without a file) */
    bool json;           /* status --json */
};

/* ---- json.c: a small DOM for the admin endpoint's JSON --------------------- */

enum json_type {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
};

struct json {
    enum json_type type;
    double num;         /* NUMBER */
    char *str;          /* STRING, decoded (\u escapes as UTF-8) */
    char *key;          /* the member's name, inside an OBJECT */
    struct json *items; /* ARRAY elements or OBJECT members, in order */
    size_t n;
};

/* Parses a whole JSON text (RFC 8259; nesting up to 64 deep). NULL with
 * the reason and byte offset in why. The result is freed by json_free. */
struct json *json_parse(const char *text, char *why, size_t len);
void json_free(struct json *v);
/* The member key of an OBJECT, or NULL (also when obj is NULL or not an
 * object). */
const struct json *json_get(const struct json *obj, const char *key);
/* A member's value as a number / string, or dflt when absent or of
 * another type. */
double json_number(const struct json *obj, const char *key, double dflt);
const char *json_string(const struct json *obj, const char *key, const char *dflt);

/* ---- http.c: the admin endpoint ------------------------------------------ */

/* GET path (HTTP/1.0) from the admin endpoint at a, within timeout
 * seconds. 0 with *status and *body (malloc'd, NUL-terminated); -1 when
 * there is no complete answer (why says what: connect, timeout...). */
/* The same with another method (a POST has no body). */
int ctl_request(const struct listen_addr *a, const char *method, const char *path,
                double timeout, int *status, char **body, char *why, size_t wlen);
int ctl_get(const struct listen_addr *a, const char *path, double timeout, int *status,
            char **body, char *why, size_t wlen);
/* GET /stats, checked (200, a "master" object) and parsed. NULL with why
 * and *fail = CTL_UNREACHABLE (no answer) or CTL_FAILED (a bad answer).
 * *raw, when raw is not NULL, receives the body as sent (caller frees). */
struct json *ctl_stats(const struct ctl *c, char **raw, int *fail, char *why,
                       size_t wlen);

/* ---- procs.c --------------------------------------------------------------- */

/* The pid in a pidfile, or -1 (why: missing, empty, not a number). */
pid_t ctl_read_pidfile(const char *path, char *why, size_t wlen);
/* The process exists and is not a zombie. */
bool ctl_alive(pid_t pid);
/* Children of pid (from /proc/PID/task/\*\/children), up to max, written
 * to out; the count, or -1 when /proc cannot tell. */
int ctl_children(pid_t pid, pid_t *out, int max);
/* Monotonic seconds. */
double ctl_now(void);
/* Sleeps s seconds (polling interval; never an assertion). */
void ctl_nap(double s);
/* Prints "preforkctl: ..." and a newline on stderr. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- commands (status.c, ops.c) ------------------------------------------- */

/* The master's pid: /stats master.pid when the admin endpoint answers,
 * else the live process the pidfile names. -1 with why when neither
 * finds one. */
pid_t ctl_master_pid(const struct ctl *c, char *why, size_t wlen);

int ctl_status(struct ctl *c);
int ctl_reload(struct ctl *c);
int ctl_scale(struct ctl *c, const char *arg);
int ctl_stop(struct ctl *c);
int ctl_upgrade(struct ctl *c);
/* snapshot, recycle and trace (worker.c): one worker's, through the
 * master's admin endpoint. cmd is argv's command, args what follows it.
 * CTL_USAGE when cmd is none of them or args do not fit. */
int ctl_worker(struct ctl *c, const char *cmd, int nargs, char **args);
bool ctl_is_worker_command(const char *cmd);

#endif
