/*
 * harness.h - helpers shared by the integration tests: run the real preforkd
 * in a temp dir, watch its error log, and talk raw HTTP/1.x over blocking
 * sockets where every wait has a deadline. Runs in the test process (one
 * Check fork per test). Every daemon it starts is stopped when the test ends,
 * whether it passes, fails an assertion or times out.
 * Convention: harness_* functions that can only fail because of the
 * environment assert (Check); the ones whose failure a test may want to
 * examine return 0 / -1 and leave a description in harness_error().
 */
#ifndef PF_TEST_HARNESS_H
#define PF_TEST_HARNESS_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ---- the test's life ------------------------------------------------------ */

/* Checked-fixture setup: makes the test process the reaper of orphaned
 * daemon workers and starts the sentinel, a process that outlives the test
 * and SIGKILLs every daemon it started however the test ends (Check ends a
 * failed test with _exit(), skipping teardown, and a timed-out one with
 * SIGKILL). It also prints the daemon logs of a test that did not reach
 * harness_end, to help read the failure. */
void harness_begin(void);
/* Checked-fixture teardown: kills what still runs, removes temp dirs
 * (kept when PREFORKD_TEST_KEEP is set), ends the sentinel. Fails the test
 * if a daemon log holds a sanitizer report (make SANITIZE=1 check). */
void harness_end(void);

/* Monotonic clock, in seconds. */
double harness_now(void);
/* getenv(name), asserting that it is set and not empty. */
const char *harness_env(const char *name);
/* "$env_dir/file" (env_dir is an environment variable's name), malloc'd. */
char *harness_path(const char *env_dir, const char *file);
/* Waits until cond(arg) is true or timeout seconds pass; true if it became
 * true. Polls every few milliseconds (never a sleep as an assertion). */
bool harness_wait_for(bool (*cond)(void *), void *arg, double timeout);
/* Sleeps for s seconds: only to shape traffic, never to wait for a result. */
void harness_pause(double s);

/* The whole file, NUL-terminated (*len excludes the NUL; may be NULL), or
 * NULL with errno set. Caller frees. */
char *harness_read_file(const char *path, size_t *len);
/* Open descriptors of a live process (/proc/PID/fd); asserts it can read. */
int harness_proc_fds(pid_t pid);
/* VmRSS of a live process in KiB (/proc/PID/status); asserts it is there. */
long harness_proc_rss_kib(pid_t pid);
/* Writes (truncates) a file, asserting success. */
void harness_write_file(const char *path, const void *data, size_t len);

/* ---- the daemon ----------------------------------------------------------- */

struct hdaemon {
    pid_t pid;                 /* master; its process group is the same number */
    bool reaped;               /* waitpid done; status is valid */
    int status;                /* wait status */
    int port;                  /* from "master: listening on 127.0.0.1:PORT" */
    char dir[64];              /* mkdtemp under /tmp, removed at the end */
    char conf[128];            /* dir/preforkd.ini */
    char log[128];             /* dir/error.log: the daemon's stdout and stderr */
    char pidfile[128];         /* dir/preforkd.pid, for configs that want one */
    const char *exec_bin;      /* run this instead of PREFORKD_BIN (NULL: no) */
    const char *notify_socket; /* NOTIFY_SOCKET for the daemon (NULL: none) */
    const char *watchdog_usec; /* WATCHDOG_USEC, with WATCHDOG_PID = the
                                * daemon's pid as systemd sets it (NULL: none) */
};

/* A fresh temp dir and paths; the daemon is not started. */
struct hdaemon *harness_daemon_new(void);
/* Writes d->conf from a printf format. */
void harness_daemon_config(struct hdaemon *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Starts PREFORKD_BIN with args (NULL-terminated, after argv[0]; NULL means
 * "-c d->conf") in its own process group, stdout and stderr appended to
 * d->log, no core dumps. Returns at once. */
void harness_daemon_spawn(struct hdaemon *d, const char *const *args);
/* Waits for "master: ready:" and parses the port; asserts (with the log in
 * the message) if the daemon exits or does not get ready in time. */
void harness_daemon_wait_ready(struct hdaemon *d, double timeout);
/* The usual case: a daemon on 127.0.0.1:0 with module (a path), `workers`
 * workers, pidfile in its dir and extra_server appended to [server] (may be
 * NULL or ""). Returns it ready. */
struct hdaemon *harness_start(const char *module, int workers, const char *extra_server);
/* Waits for the master to exit; true when it did within timeout (d->status
 * is then valid). Never kills. */
bool harness_daemon_wait_exit(struct hdaemon *d, double timeout);
/* Sends sig to the master and waits up to timeout for it to exit; then
 * SIGKILLs its whole group and reaps everything. True if it exited by
 * itself in time. */
bool harness_daemon_stop(struct hdaemon *d, int sig, double timeout);
/* True when no process of the daemon's group is left (zombies are reaped on
 * the way) within timeout. Call after the master was reaped. */
bool harness_daemon_group_gone(struct hdaemon *d, double timeout);
/* Exit code of a reaped master, or -(signal) if killed by a signal. */
int harness_exit_code(const struct hdaemon *d);

/* ---- the daemon's log ----------------------------------------------------- */

/* Number of log lines matching an extended regex. */
int harness_log_count(struct hdaemon *d, const char *regex);
/* Waits until at least min lines match; true if they did within timeout. */
bool harness_log_wait(struct hdaemon *d, const char *regex, int min, double timeout);
/* Capture group `group` of each matching line, as numbers, into out (at most
 * max). Returns how many lines matched. */
int harness_log_numbers(struct hdaemon *d, const char *regex, int group, long *out,
                        int max);
/* The log, malloc'd (never NULL), for failure messages and strstr. */
char *harness_log_text(struct hdaemon *d);
/* The last `max` bytes of the log, in a static buffer (for messages). */
const char *harness_log_tail(struct hdaemon *d, size_t max);

/* ---- raw HTTP client ------------------------------------------------------ */

/* One client connection with its own receive buffer (bytes of the next,
 * pipelined response stay there). */
struct hconn {
    int fd;
    char *buf;
    size_t len, cap;
    bool eof;   /* the server closed (FIN) */
    bool reset; /* ... or reset (ECONNRESET) */
};

struct hheader {
    char *name;
    char *value;
};

#define HRESP_MAX_HEADERS 64

struct hresp {
    int minor; /* HTTP/1.minor of the status line */
    int status;
    char reason[64];
    struct hheader hdr[HRESP_MAX_HEADERS];
    size_t nhdr;
    char *body; /* malloc'd, NUL-terminated; de-chunked */
    size_t body_len;
    bool chunked;   /* the body came with Transfer-Encoding: chunked */
    bool to_eof;    /* the body was delimited by the server closing */
    size_t nchunks; /* data chunks, when chunked */
};

/* Description of the last failure of a function below. */
const char *harness_error(void);

/* Connects to 127.0.0.1:port; asserts success. */
struct hconn *harness_connect(int port);
/* Connects; NULL on failure (harness_error()). */
struct hconn *harness_try_connect(int port);
/* A connection object around an already connected socket (unix, say). */
struct hconn *harness_wrap_fd(int fd);
/* A port on 127.0.0.1 that nobody listens on now (bound, read, released). */
int harness_free_port(void);
/* A test case of s whose tests run between harness_begin and harness_end
 * (the daemons they start are stopped), each within timeout seconds. */
TCase *harness_tcase(Suite *s, const char *name, double timeout);
/* Runs every test of s (CK_NORMAL output); the exit status for main. */
int harness_run_suite(Suite *s);
void harness_close(struct hconn *c);
/* Sends everything (within timeout); 0 / -1. */
int harness_send(struct hconn *c, const void *data, size_t len, double timeout);
/* Sends everything, asserting. */
void harness_send_all(struct hconn *c, const void *data, size_t len);
void harness_send_str(struct hconn *c, const char *s);

/* Reads one response: head, then the body framed by Content-Length, chunked
 * coding, or the end of the connection (none for HEAD, 1xx, 204, 304).
 * 0 / -1 (timeout, closed early, malformed: harness_error()); either way r
 * holds what was read (the status of a cut response, say): hresp_free it. */
int harness_read_response(struct hconn *c, struct hresp *r, bool head_request,
                          double timeout);
/* The same, asserting success; `what` names the request in the message. */
void harness_expect_response(struct hconn *c, struct hresp *r, bool head_request,
                             const char *what);
/* Reads exactly n bytes into out (n+1 bytes, NUL-terminated); 0 / -1. */
int harness_read_exact(struct hconn *c, char *out, size_t n, double timeout);
/* Waits for the server to close: 1 closed (FIN or reset), 0 still open at
 * the deadline, -1 more bytes arrived (they stay in c->buf). */
int harness_wait_closed(struct hconn *c, double timeout);
/* Value of the first header named name (case-insensitive), or NULL. */
const char *hresp_header(const struct hresp *r, const char *name);
void hresp_free(struct hresp *r);

/* One request on a fresh connection; returns the response (asserting that
 * one came). */
void harness_roundtrip(int port, const char *raw, struct hresp *r);

/* Printable form of bytes (escapes CR, LF, controls), for messages; static
 * buffer, cut at about max bytes. */
const char *harness_printable(const void *data, size_t len, size_t max);

#endif
