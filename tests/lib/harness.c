/*
 * harness.c - integration-test helpers: start and stop the real preforkd,
 * watch its error log, and speak raw HTTP/1.x with deadlines.
 * Runs in the test process (one Check fork per test) and, for cleanup, in a
 * small "sentinel" process per test that outlives it: Check ends a failed
 * test with _exit() (no atexit, no teardown) and a timed-out one with
 * SIGKILL, so only another process can stop the daemons such a test leaves.
 * Convention: see harness.h.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_DAEMONS 16
#define MAX_BODY (64u << 20)
#define MAX_HEAD (256u << 10)

static struct hdaemon *daemons[MAX_DAEMONS];
static int ndaemons;
static int sentinel_fd = -1; /* write end of the pipe the sentinel reads */
static pid_t sentinel_pid = -1;
static __thread char errbuf[2048];   /* per thread: load.c runs clients in threads */
static __thread bool fill_timed_out; /* the last fill() failed by its deadline */

static void seterr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void seterr(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
}

const char *harness_error(void)
{
    return errbuf;
}

double harness_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void harness_pause(double s)
{
    struct timespec ts;

    if (s <= 0)
        return;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

bool harness_wait_for(bool (*cond)(void *), void *arg, double timeout)
{
    double end = harness_now() + timeout;

    for (;;) {
        if (cond(arg))
            return true;
        if (harness_now() > end)
            return false;
        harness_pause(0.005);
    }
}

const char *harness_env(const char *name)
{
    const char *v = getenv(name);

    ck_assert_msg(v != NULL && *v != '\0',
                  "environment variable %s is not set (run through make check)", name);
    return v;
}

char *harness_path(const char *env_dir, const char *file)
{
    char *p;

    ck_assert(asprintf(&p, "%s/%s", harness_env(env_dir), file) >= 0);
    return p;
}

int harness_proc_fds(pid_t pid)
{
    char path[64];
    struct dirent *e;
    DIR *dir;
    int n = 0;

    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    dir = opendir(path);
    ck_assert_msg(dir != NULL, "%s: %s", path, strerror(errno));
    while ((e = readdir(dir)) != NULL)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n;
}

long harness_proc_rss_kib(pid_t pid)
{
    char path[64], *text, *p;
    long kib = -1;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    text = harness_read_file(path, NULL);
    ck_assert_msg(text != NULL, "%s: %s", path, strerror(errno));
    p = strstr(text, "VmRSS:");
    if (p != NULL)
        kib = strtol(p + 6, NULL, 10);
    free(text);
    ck_assert_msg(kib > 0, "no VmRSS in %s", path);
    return kib;
}

char *harness_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t cap = 4096, n = 0;
    char *buf;

    if (fd == -1)
        return NULL;
    buf = malloc(cap);
    ck_assert(buf != NULL);
    for (;;) {
        ssize_t r;

        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert(buf != NULL);
        }
        r = read(fd, buf + n, cap - n - 1);
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

void harness_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const char *p = data;

    ck_assert_msg(fd != -1, "open %s: %s", path, strerror(errno));
    while (len > 0) {
        ssize_t w = write(fd, p, len);

        if (w == -1 && errno == EINTR)
            continue;
        ck_assert_msg(w > 0, "write %s: %s", path, strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    close(fd);
}

const char *harness_printable(const void *data, size_t len, size_t max)
{
    static char out[4096];
    const unsigned char *p = data;
    size_t o = 0, i;

    if (max > sizeof out / 5)
        max = sizeof out / 5;
    for (i = 0; i < len && i < max && o + 8 < sizeof out; i++) {
        unsigned char ch = p[i];

        if (ch == '\r')
            o += (size_t)snprintf(out + o, sizeof out - o, "\\r");
        else if (ch == '\n')
            o += (size_t)snprintf(out + o, sizeof out - o, "\\n");
        else if (ch == '\\')
            o += (size_t)snprintf(out + o, sizeof out - o, "\\\\");
        else if (ch < 32 || ch > 126)
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    if (i < len && o + 4 < sizeof out)
        o += (size_t)snprintf(out + o, sizeof out - o, "...");
    out[o] = '\0';
    return out;
}

/* ---- cleanup: the sentinel ---------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

static void rm_tree(const char *dir)
{
    if (getenv("PREFORKD_TEST_KEEP") != NULL && *getenv("PREFORKD_TEST_KEEP"))
        return;
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void sentinel_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void sentinel_send(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    if (sentinel_fd == -1)
        return;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof line) /* one write < PIPE_BUF: atomic */
        (void)!write(sentinel_fd, line, (size_t)n);
}

static void dump_log_tail(const char *path)
{
    char buf[6000];
    int fd = open(path, O_RDONLY);
    off_t size;
    ssize_t n;

    if (fd == -1)
        return;
    size = lseek(fd, 0, SEEK_END);
    lseek(fd, size > (off_t)sizeof buf ? size - (off_t)sizeof buf : 0, SEEK_SET);
    n = read(fd, buf, sizeof buf);
    close(fd);
    if (n <= 0)
        return;
    fprintf(stderr,
            "---- a test failed; its daemon log %s (last %zd bytes):\n"
            "%.*s---- end of log ----\n",
            path, n, (int)n, buf);
}

/*
 * The sentinel: reads "d DIR", "l LOG", "p PGID", "u PGID" and "ok" lines
 * from the test process. When the pipe ends (the test process exited, was
 * killed, or called harness_end), it SIGKILLs every process group still
 * registered and removes the temp dirs; if the test did not reach
 * harness_end, it first prints the daemon logs to help read the failure.
 * It runs in its own process group, out of reach of Check's killpg().
 */
static void __attribute__((noreturn)) sentinel_run(int fd)
{
    char dirs[MAX_DAEMONS][64], logs[MAX_DAEMONS][128];
    pid_t groups[MAX_DAEMONS * 2];
    int ndirs = 0, nlogs = 0, ngroups = 0, i;
    bool ok = false;
    char buf[4096];
    size_t len = 0;

    setpgid(0, 0);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        char *line, *nl;

        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        line = buf;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            if (line[0] == 'd' && ndirs < MAX_DAEMONS)
                snprintf(dirs[ndirs++], sizeof dirs[0], "%s", line + 2);
            else if (line[0] == 'l' && nlogs < MAX_DAEMONS)
                snprintf(logs[nlogs++], sizeof logs[0], "%s", line + 2);
            else if (line[0] == 'p' && ngroups < MAX_DAEMONS * 2)
                groups[ngroups++] = (pid_t)atoi(line + 2);
            else if (line[0] == 'u') {
                pid_t g = (pid_t)atoi(line + 2);

                for (i = 0; i < ngroups; i++)
                    if (groups[i] == g)
                        groups[i] = 0;
            } else if (strcmp(line, "ok") == 0)
                ok = true;
            line = nl + 1;
        }
        len = strlen(line);
        memmove(buf, line, len);
    }
    for (i = 0; i < ngroups; i++)
        if (groups[i] > 0)
            kill(-groups[i], SIGKILL);
    if (!ok)
        for (i = 0; i < nlogs; i++)
            dump_log_tail(logs[i]);
    for (i = 0; i < ndirs; i++)
        rm_tree(dirs[i]);
    _exit(0);
}

void harness_begin(void)
{
    int p[2];
    pid_t pid;

    errbuf[0] = '\0';
    signal(SIGPIPE, SIG_IGN);
    /* Workers orphaned by a killed master come to us, to be reaped. */
    ck_assert(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    ck_assert(pipe2(p, O_CLOEXEC) == 0);
    /* No Check call in the child: each one writes to Check's message file,
     * which the child shares with the test and the runner. */
    pid = fork();
    if (pid == 0) {
        close(p[1]);
        sentinel_run(p[0]);
    }
    ck_assert(pid != -1);
    /* Also here, so that it is out of the test's group (and of Check's
     * killpg) even if the test dies before the sentinel runs. */
    setpgid(pid, pid);
    close(p[0]);
    sentinel_fd = p[1];
    sentinel_pid = pid;
}

/* SIGKILLs the daemon's whole process group and reaps it all. */
static void kill_group(struct hdaemon *d)
{
    int st;

    if (d->pid <= 0)
        return;
    kill(-d->pid, SIGKILL);
    if (!d->reaped) {
        while (waitpid(d->pid, &st, 0) == -1 && errno == EINTR)
            ;
        d->status = st;
        d->reaped = true;
    }
    /* Orphaned workers were re-parented to us (subreaper). */
    while (waitpid(-d->pid, &st, 0) > 0 || errno == EINTR)
        ;
    sentinel_send("u %d\n", (int)d->pid);
}

/* The first sanitizer report (ASan, LSan, UBSan) in d's log, or NULL.
 * Malloc'd. */
static char *sanitizer_report(struct hdaemon *d)
{
    static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                        "runtime error:"};
    char *t = harness_read_file(d->log, NULL), *hit = NULL, *out = NULL;
    size_t i;

    if (t == NULL)
        return NULL;
    for (i = 0; i < sizeof marks / sizeof marks[0] && hit == NULL; i++)
        hit = strstr(t, marks[i]);
    if (hit != NULL) {
        while (hit > t && hit[-1] != '\n')
            hit--;
        out = strndup(hit, 1500);
    }
    free(t);
    return out;
}

void harness_end(void)
{
    char *report = NULL;
    int i;

    for (i = 0; i < ndaemons; i++) {
        kill_group(daemons[i]);
        if (report == NULL)
            report = sanitizer_report(daemons[i]);
        rm_tree(daemons[i]->dir);
        free(daemons[i]);
        daemons[i] = NULL;
    }
    ndaemons = 0;
    sentinel_send("ok\n");
    if (sentinel_fd != -1) {
        close(sentinel_fd);
        sentinel_fd = -1;
        while (waitpid(sentinel_pid, NULL, 0) == -1 && errno == EINTR)
            ;
    }
    ck_assert_msg(report == NULL, "sanitizer report in the daemon log:\n%s", report);
}

/* ---- the daemon ----------------------------------------------------------- */

struct hdaemon *harness_daemon_new(void)
{
    struct hdaemon *d;

    ck_assert_msg(ndaemons < MAX_DAEMONS, "too many daemons in one test");
    d = calloc(1, sizeof *d);
    ck_assert(d != NULL);
    snprintf(d->dir, sizeof d->dir, "/tmp/preforkd-test.XXXXXX");
    ck_assert_msg(mkdtemp(d->dir) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(d->conf, sizeof d->conf, "%s/preforkd.ini", d->dir);
    snprintf(d->log, sizeof d->log, "%s/error.log", d->dir);
    snprintf(d->pidfile, sizeof d->pidfile, "%s/preforkd.pid", d->dir);
    d->pid = -1;
    daemons[ndaemons++] = d;
    sentinel_send("d %s\n", d->dir);
    sentinel_send("l %s\n", d->log);
    return d;
}

void harness_daemon_config(struct hdaemon *d, const char *fmt, ...)
{
    va_list ap;
    char *text;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&text, fmt, ap);
    va_end(ap);
    ck_assert(n >= 0);
    harness_write_file(d->conf, text, (size_t)n);
    free(text);
}

/* In the forked child, before exec: a clean process for the daemon. */
static void __attribute__((noreturn))
exec_daemon(const char *bin, const char *const *args, int logfd, const struct hdaemon *d)
{
    struct rlimit nocore = {0, 0};
    char *argv[32];
    sigset_t none;
    int i, n = 0, nul;

    setpgid(0, 0);
    nul = open("/dev/null", O_RDONLY);
    if (nul != -1)
        dup2(nul, 0);
    dup2(logfd, 1);
    dup2(logfd, 2);
    close_range(3, ~0u, 0);
    setrlimit(RLIMIT_CORE, &nocore);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (i = 1; i < NSIG; i++)
        signal(i, SIG_DFL); /* ignored dispositions survive exec */
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDNAMES");
    unsetenv("NOTIFY_SOCKET");
    if (d->notify_socket)
        setenv("NOTIFY_SOCKET", d->notify_socket, 1);
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    if (d->watchdog_usec) {
        char me[24];
        snprintf(me, sizeof me, "%d", (int)getpid());
        setenv("WATCHDOG_USEC", d->watchdog_usec, 1);
        setenv("WATCHDOG_PID", me, 1);
    }
    if (d->exec_bin)
        bin = d->exec_bin;
    argv[n++] = strdup(bin);
    if (args == NULL) {
        argv[n++] = strdup("-c");
        argv[n++] = strdup(d->conf);
    } else {
        for (i = 0; args[i] != NULL && n < 31; i++)
            argv[n++] = strdup(args[i]);
    }
    argv[n] = NULL;
    execv(bin, argv);
    dprintf(2, "harness: exec %s: %s\n", bin, strerror(errno));
    _exit(127);
}

void harness_daemon_spawn(struct hdaemon *d, const char *const *args)
{
    const char *bin = harness_env("PREFORKD_BIN");
    int logfd;
    pid_t pid;

    ck_assert_msg(access(bin, X_OK) == 0, "%s: %s", bin, strerror(errno));
    logfd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ck_assert_msg(logfd != -1, "open %s: %s", d->log, strerror(errno));
    pid = fork();
    if (pid == 0) /* no Check call in the child (see harness_begin) */
        exec_daemon(bin, args, logfd, d);
    ck_assert(pid != -1);
    close(logfd);
    setpgid(pid, pid); /* also here: no window where the group is ours */
    d->pid = pid;
    d->reaped = false;
    d->port = 0;
    sentinel_send("p %d\n", (int)pid);
}

static bool reap_nohang(struct hdaemon *d)
{
    int st;
    pid_t r;

    if (d->reaped)
        return true;
    r = waitpid(d->pid, &st, WNOHANG);
    if (r == d->pid) {
        d->status = st;
        d->reaped = true;
    }
    return d->reaped;
}

int harness_exit_code(const struct hdaemon *d)
{
    ck_assert(d->reaped);
    if (WIFEXITED(d->status))
        return WEXITSTATUS(d->status);
    if (WIFSIGNALED(d->status))
        return -WTERMSIG(d->status);
    return -1000;
}

void harness_daemon_wait_ready(struct hdaemon *d, double timeout)
{
    double end = harness_now() + timeout;
    long port = 0;

    for (;;) {
        if (harness_log_count(d, "master: ready: ") > 0)
            break;
        if (reap_nohang(d))
            ck_abort_msg("preforkd exited (code %d) before it was ready; "
                         "log:\n%s",
                         harness_exit_code(d), harness_log_tail(d, 1500));
        if (harness_now() > end)
            ck_abort_msg("preforkd not ready after %.1f s; log:\n%s", timeout,
                         harness_log_tail(d, 1500));
        harness_pause(0.005);
    }
    harness_log_numbers(d, "master: listening on 127\\.0\\.0\\.1:([0-9]+)", 1, &port, 1);
    ck_assert_msg(port > 0 && port < 65536,
                  "no \"master: listening on 127.0.0.1:PORT\" in the log:\n%s",
                  harness_log_tail(d, 1500));
    d->port = (int)port;
}

struct hdaemon *harness_start(const char *module, int workers, const char *extra_server)
{
    struct hdaemon *d = harness_daemon_new();
    const char *extra = extra_server ? extra_server : "";
    size_t n = strlen(extra);

    harness_daemon_config(d,
                          "[server]\n"
                          "listen = 127.0.0.1:0\n"
                          "workers = %d\n"
                          "pidfile = %s\n"
                          "%s%s"
                          "[app]\n"
                          "module = %s\n"
                          "[log]\n"
                          "level = info\n",
                          workers, d->pidfile, extra,
                          n > 0 && extra[n - 1] != '\n' ? "\n" : "", module);
    harness_daemon_spawn(d, NULL);
    harness_daemon_wait_ready(d, 10.0);
    return d;
}

bool harness_daemon_wait_exit(struct hdaemon *d, double timeout)
{
    double end = harness_now() + timeout;

    for (;;) {
        if (reap_nohang(d))
            return true;
        if (harness_now() > end)
            return false;
        harness_pause(0.005);
    }
}

bool harness_daemon_stop(struct hdaemon *d, int sig, double timeout)
{
    bool ok;

    if (d->pid <= 0)
        return true;
    if (!d->reaped)
        kill(d->pid, sig);
    ok = harness_daemon_wait_exit(d, timeout);
    kill_group(d);
    return ok;
}

bool harness_daemon_group_gone(struct hdaemon *d, double timeout)
{
    double end = harness_now() + timeout;

    ck_assert_msg(d->reaped, "harness_daemon_group_gone before the master "
                             "was reaped");
    for (;;) {
        while (waitpid(-d->pid, NULL, WNOHANG) > 0)
            ;
        if (kill(-d->pid, 0) == -1 && errno == ESRCH)
            return true;
        if (harness_now() > end)
            return false;
        harness_pause(0.005);
    }
}

/* ---- the log ------------------------------------------------------------- */

int harness_log_numbers(struct hdaemon *d, const char *regex, int group, long *out,
                        int max)
{
    regex_t re;
    regmatch_t m[8];
    char *text, *line, *nl;
    int n = 0, rc;

    rc = regcomp(&re, regex, REG_EXTENDED);
    ck_assert_msg(rc == 0, "bad regex %s", regex);
    ck_assert(group >= 0 && group < 8);
    text = harness_read_file(d->log, NULL);
    if (text == NULL) {
        regfree(&re);
        return 0;
    }
    /* Complete lines only: a line being appended shows up next time. */
    for (line = text; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        if (regexec(&re, line, 8, m, 0) != 0)
            continue;
        if (out != NULL && n < max && group > 0 && m[group].rm_so >= 0)
            out[n] = strtol(line + m[group].rm_so, NULL, 10);
        n++;
    }
    free(text);
    regfree(&re);
    return n;
}

int harness_log_count(struct hdaemon *d, const char *regex)
{
    return harness_log_numbers(d, regex, 0, NULL, 0);
}

bool harness_log_wait(struct hdaemon *d, const char *regex, int min, double timeout)
{
    double end = harness_now() + timeout;

    for (;;) {
        if (harness_log_count(d, regex) >= min)
            return true;
        if (harness_now() > end)
            return false;
        harness_pause(0.005);
    }
}

char *harness_log_text(struct hdaemon *d)
{
    char *t = harness_read_file(d->log, NULL);

    return t ? t : strdup("");
}

const char *harness_log_tail(struct hdaemon *d, size_t max)
{
    static char out[8192];
    size_t len;
    char *t = harness_read_file(d->log, &len);
    const char *p;

    if (t == NULL)
        return "(no log)";
    if (max > sizeof out - 1)
        max = sizeof out - 1;
    p = len > max ? t + len - max : t;
    snprintf(out, sizeof out, "%s", p);
    free(t);
    return out;
}

/* ---- HTTP client ----------------------------------------------------------- */

struct hconn *harness_try_connect(int port)
{
    struct sockaddr_in sin;
    int fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        seterr("socket: %s", strerror(errno));
        return NULL;
    }
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Loopback: connect either succeeds or is refused at once. */
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == -1) {
        seterr("connect 127.0.0.1:%d: %s", port, strerror(errno));
        close(fd);
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return harness_wrap_fd(fd);
}

int harness_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    ck_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

TCase *harness_tcase(Suite *s, const char *name, double timeout)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, harness_begin, harness_end);
    tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

int harness_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

struct hconn *harness_wrap_fd(int fd)
{
    struct hconn *c = calloc(1, sizeof *c);

    ck_assert(c != NULL);
    c->fd = fd;
    c->cap = 65536;
    c->buf = malloc(c->cap);
    ck_assert(c->buf != NULL);
    return c;
}

struct hconn *harness_connect(int port)
{
    struct hconn *c = harness_try_connect(port);

    ck_assert_msg(c != NULL, "%s", errbuf);
    return c;
}

void harness_close(struct hconn *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    free(c->buf);
    free(c);
}

int harness_send(struct hconn *c, const void *data, size_t len, double timeout)
{
    double end = harness_now() + timeout;
    const char *p = data;

    while (len > 0) {
        struct pollfd pfd = {c->fd, POLLOUT, 0};
        double left = end - harness_now();
        ssize_t n;
        int rc;

        if (left <= 0) {
            seterr("timeout sending (%zu bytes left)", len);
            return -1;
        }
        rc = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (rc == -1 && errno != EINTR) {
            seterr("poll: %s", strerror(errno));
            return -1;
        }
        if (rc <= 0)
            continue;
        n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == -1) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            seterr("send: %s (%zu bytes left)", strerror(errno), len);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void harness_send_all(struct hconn *c, const void *data, size_t len)
{
    ck_assert_msg(harness_send(c, data, len, 10.0) == 0, "%s", errbuf);
}

void harness_send_str(struct hconn *c, const char *s)
{
    harness_send_all(c, s, strlen(s));
}

/* Reads more bytes into c->buf. 1 got some, 0 the server closed (or reset),
 * -1 error or deadline (fill_timed_out tells which). */
static int fill(struct hconn *c, double deadline)
{
    fill_timed_out = false;
    if (c->eof)
        return 0;
    for (;;) {
        struct pollfd pfd = {c->fd, POLLIN, 0};
        double left = deadline - harness_now();
        ssize_t n;
        int rc;

        /* Always poll once, so that a zero timeout still looks. */
        rc = poll(&pfd, 1, left > 0 ? (int)(left * 1000) + 1 : 0);
        if (rc == -1 && errno != EINTR) {
            seterr("poll: %s", strerror(errno));
            return -1;
        }
        if (rc <= 0) {
            if (harness_now() >= deadline) {
                fill_timed_out = true;
                seterr("timeout");
                return -1;
            }
            continue;
        }
        if (c->cap - c->len < 65536 + 1) {
            c->cap = c->cap * 2 + 65536;
            c->buf = realloc(c->buf, c->cap);
            ck_assert(c->buf != NULL);
        }
        n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, MSG_DONTWAIT);
        if (n > 0) {
            c->len += (size_t)n;
            c->buf[c->len] = '\0';
            return 1;
        }
        if (n == 0) {
            c->eof = true;
            return 0;
        }
        if (errno == EAGAIN || errno == EINTR)
            continue;
        if (errno == ECONNRESET) {
            c->eof = c->reset = true;
            return 0;
        }
        seterr("recv: %s", strerror(errno));
        return -1;
    }
}

static void consume(struct hconn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    c->buf[c->len] = '\0';
}

/* Makes sure c->buf holds at least n bytes. 0 / -1 (seterr names what). */
static int need(struct hconn *c, size_t n, double deadline, const char *what)
{
    while (c->len < n) {
        int rc = fill(c, deadline);

        if (rc == 1)
            continue;
        if (rc == 0)
            seterr("connection %s while reading %s (have %zu of %zu bytes: "
                   "%s)",
                   c->reset ? "reset" : "closed", what, c->len, n,
                   harness_printable(c->buf, c->len, 200));
        else {
            char why[sizeof errbuf];

            snprintf(why, sizeof why, "%s", fill_timed_out ? "timeout" : errbuf);
            seterr("%s while reading %s (have %zu of %zu bytes: %s)", why, what, c->len,
                   n, harness_printable(c->buf, c->len, 200));
        }
        return -1;
    }
    return 0;
}

/* Length of the next CRLF-terminated line (without CRLF), waiting for it. */
static int need_line(struct hconn *c, size_t *line_len, double deadline, const char *what)
{
    char *crlf;

    while ((crlf = memmem(c->buf, c->len, "\r\n", 2)) == NULL) {
        if (c->len > 4096) {
            seterr("%s: line too long: %s", what, harness_printable(c->buf, c->len, 200));
            return -1;
        }
        if (need(c, c->len + 1, deadline, what) == -1)
            return -1;
    }
    *line_len = (size_t)(crlf - c->buf);
    return 0;
}

static int append_body(struct hresp *r, const char *p, size_t n)
{
    if (r->body_len + n > MAX_BODY) {
        seterr("body larger than %u bytes", MAX_BODY);
        return -1;
    }
    r->body = realloc(r->body, r->body_len + n + 1);
    ck_assert(r->body != NULL);
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return 0;
}

static int read_chunked(struct hconn *c, struct hresp *r, double deadline)
{
    for (;;) {
        size_t ll, size;
        char line[64], *end;

        if (need_line(c, &ll, deadline, "a chunk size line") == -1)
            return -1;
        if (ll == 0 || ll >= sizeof line || !isxdigit((unsigned char)c->buf[0])) {
            seterr("bad chunk size line: %s", harness_printable(c->buf, ll, 80));
            return -1;
        }
        memcpy(line, c->buf, ll);
        line[ll] = '\0';
        errno = 0;
        size = strtoul(line, &end, 16);
        if (errno != 0 || (*end != '\0' && *end != ';' && *end != ' ' && *end != '\t')) {
            seterr("bad chunk size line: %s", harness_printable(line, ll, 80));
            return -1;
        }
        consume(c, ll + 2);
        if (size == 0)
            break;
        if (size > MAX_BODY) {
            seterr("chunk of %zu bytes", size);
            return -1;
        }
        if (need(c, size + 2, deadline, "chunk data") == -1)
            return -1;
        if (memcmp(c->buf + size, "\r\n", 2) != 0) {
            seterr("chunk of %zu bytes not followed by CRLF: %s", size,
                   harness_printable(c->buf + size, 2, 2));
            return -1;
        }
        if (append_body(r, c->buf, size) == -1)
            return -1;
        r->nchunks++;
        consume(c, size + 2);
    }
    /* Trailer fields, then the empty line. */
    for (;;) {
        size_t ll;

        if (need_line(c, &ll, deadline, "the chunked trailer") == -1)
            return -1;
        consume(c, ll + 2);
        if (ll == 0)
            return 0;
    }
}

static int parse_head(struct hresp *r, char *head)
{
    char *line = head, *next, *p;

    next = strstr(line, "\r\n");
    *next = '\0';
    if (sscanf(line, "HTTP/1.%d %d", &r->minor, &r->status) != 2 ||
        strncmp(line, "HTTP/1.", 7) != 0 || r->status < 100 || r->status > 999) {
        seterr("bad status line: %s", harness_printable(line, strlen(line), 200));
        return -1;
    }
    p = strchr(line + 9, ' ');
    snprintf(r->reason, sizeof r->reason, "%s", p ? p + 1 : "");
    for (line = next + 2; *line != '\0'; line = next + 2) {
        char *colon, *v, *e;

        next = strstr(line, "\r\n");
        *next = '\0';
        if (*line == '\0')
            break;
        colon = strchr(line, ':');
        if (colon == NULL || colon == line) {
            seterr("bad header line: %s", harness_printable(line, strlen(line), 200));
            return -1;
        }
        if (r->nhdr == HRESP_MAX_HEADERS) {
            seterr("more than %d response headers", HRESP_MAX_HEADERS);
            return -1;
        }
        for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
            ;
        for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); e--)
            ;
        r->hdr[r->nhdr].name = strndup(line, (size_t)(colon - line));
        r->hdr[r->nhdr].value = strndup(v, (size_t)(e - v));
        r->nhdr++;
    }
    return 0;
}

/* Reads and parses the head into r. 0 / -1. */
static int read_head(struct hconn *c, struct hresp *r, double deadline)
{
    char *end, *head;
    size_t head_len;
    int rc;

    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL) {
        if (c->len > MAX_HEAD) {
            seterr("response head longer than %u bytes", MAX_HEAD);
            return -1;
        }
        if (need(c, c->len + 1, deadline, "a response head") == -1)
            return -1;
    }
    head_len = (size_t)(end - c->buf) + 4;
    head = strndup(c->buf, head_len);
    ck_assert(head != NULL);
    rc = parse_head(r, head);
    free(head);
    if (rc == 0)
        consume(c, head_len);
    return rc;
}

static int read_length_body(struct hconn *c, struct hresp *r, const char *cl,
                            double deadline)
{
    unsigned long long n;
    char *e;

    errno = 0;
    n = strtoull(cl, &e, 10);
    if (errno != 0 || e == cl || *e != '\0' || n > MAX_BODY) {
        seterr("bad Content-Length: %s", cl);
        return -1;
    }
    if (need(c, (size_t)n, deadline, "a Content-Length body") == -1)
        return -1;
    append_body(r, c->buf, (size_t)n);
    consume(c, (size_t)n);
    return 0;
}

static int read_body_to_eof(struct hconn *c, struct hresp *r, double deadline)
{
    int rc;

    r->to_eof = true;
    while ((rc = fill(c, deadline)) != 0) {
        if (rc == -1) {
            char why[sizeof errbuf];

            snprintf(why, sizeof why, "%s", fill_timed_out ? "timeout" : errbuf);
            seterr("%s reading a body delimited by close (have %zu bytes)", why, c->len);
            return -1;
        }
        if (c->len > MAX_BODY) {
            seterr("body larger than %u bytes", MAX_BODY);
            return -1;
        }
    }
    append_body(r, c->buf, c->len);
    consume(c, c->len);
    return 0;
}

static int read_response(struct hconn *c, struct hresp *r, bool head_request,
                         double deadline)
{
    const char *te, *cl;

    if (read_head(c, r, deadline) == -1)
        return -1;
    if (head_request || r->status / 100 == 1 || r->status == 204 || r->status == 304)
        return 0;
    te = hresp_header(r, "Transfer-Encoding");
    cl = hresp_header(r, "Content-Length");
    if (te != NULL && strcasestr(te, "chunked") != NULL) {
        r->chunked = true;
        return read_chunked(c, r, deadline);
    }
    if (cl != NULL)
        return read_length_body(c, r, cl, deadline);
    return read_body_to_eof(c, r, deadline);
}

int harness_read_response(struct hconn *c, struct hresp *r, bool head_request,
                          double timeout)
{
    memset(r, 0, sizeof *r);
    r->body = calloc(1, 1);
    ck_assert(r->body != NULL);
    return read_response(c, r, head_request, harness_now() + timeout);
}

void harness_expect_response(struct hconn *c, struct hresp *r, bool head_request,
                             const char *what)
{
    int rc = harness_read_response(c, r, head_request, 10.0);

    ck_assert_msg(rc == 0, "response to %s: %s", what, errbuf);
}

int harness_read_exact(struct hconn *c, char *out, size_t n, double timeout)
{
    if (need(c, n, harness_now() + timeout, "bytes") == -1)
        return -1;
    memcpy(out, c->buf, n);
    out[n] = '\0';
    consume(c, n);
    return 0;
}

int harness_wait_closed(struct hconn *c, double timeout)
{
    int rc;

    if (c->len > 0) {
        seterr("unexpected bytes: %s", harness_printable(c->buf, c->len, 200));
        return -1;
    }
    rc = fill(c, harness_now() + timeout);
    if (rc == 0)
        return 1;
    if (rc == 1) {
        seterr("unexpected bytes: %s", harness_printable(c->buf, c->len, 200));
        return -1;
    }
    if (fill_timed_out) {
        seterr("still open after %.1f s", timeout);
        return 0;
    }
    return -1;
}

const char *hresp_header(const struct hresp *r, const char *name)
{
    size_t i;

    for (i = 0; i < r->nhdr; i++)
        if (strcasecmp(r->hdr[i].name, name) == 0)
            return r->hdr[i].value;
    return NULL;
}

void hresp_free(struct hresp *r)
{
    size_t i;

    for (i = 0; i < r->nhdr; i++) {
        free(r->hdr[i].name);
        free(r->hdr[i].value);
    }
    free(r->body);
    memset(r, 0, sizeof *r);
}

void harness_roundtrip(int port, const char *raw, struct hresp *r)
{
    struct hconn *c = harness_connect(port);

    harness_send_str(c, raw);
    harness_expect_response(c, r, false, harness_printable(raw, strlen(raw), 120));
    harness_close(c);
}
