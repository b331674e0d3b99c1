/*
 * log.c - the error log. Runs in every process: the master, the mold and,
 * after fork(), each worker, which inherit the log fd and the settings;
 * also preforkd -t and preforkctl. Owns one fd (2 for "stderr"); every
 * line is built on the stack and handed to the kernel with one write(2) on
 * an O_APPEND fd, so lines never interleave.
 * Convention: 0 / -1 with errno. No function here changes errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "log.h"
#include "preforkd.h"

/* One line, newline included. PIPE_BUF keeps writes to a pipe (journald
 * reading stderr) atomic too. */
#define LINE_MAX_BYTES 4096
#define ELLIPSIS "..."

static int log_fd = 2;
static int log_level = LOG_INFO;
static char log_path[PATH_MAX]; /* "" = stderr */
static char log_role[64] = "master";

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* sd-daemon(3) prefixes: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const char *const journal_prefix[] = {"<3>", "<4>", "<6>", "<7>"};

/* Whether stderr is systemd's journal stream: 1, 0, or -1 (not looked at
 * yet). Then a line starts with its syslog priority, which journald strips
 * and keeps (journalctl -p err), and has no time of its own: the journal
 * stamps every line. */
static int journal = -1;

/* log_capture: error lines are also appended here (without time and role). */
static char *capture_buf;
static size_t capture_len, capture_used;
static bool capture_only; /* captured messages are not written */

/* Parses "error", "warn"/"warning", "info", "debug", in any case. Returns
 * the level, or -1 for anything else (NULL included). Pure. */
int log_level_parse(const char *s)
{
    if (s == NULL)
        return -1;
    if (strcasecmp(s, "warning") == 0)
        return LOG_WARN;
    for (int i = LOG_ERROR; i <= LOG_DEBUG; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

static int clamp_level(int level)
{
    if (level < LOG_ERROR)
        return LOG_ERROR;
    if (level > LOG_DEBUG)
        return LOG_DEBUG;
    return level;
}

/* Opens path for appending, on an fd >= 3 so that it can never be taken
 * for stdin/stdout/stderr when the daemon was started with those closed. */
static int open_log_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd >= 0 && fd < 3) {
        int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        int saved = errno;
        close(fd);
        errno = saved;
        fd = high;
    }
    return fd;
}

/* JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected stderr to
 * (systemd.exec(5)); a child whose stderr was redirected inherits the
 * variable but not the stream, hence the comparison. */
static bool stderr_is_journal(void)
{
    const char *v = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (v == NULL || sscanf(v, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* Switches the log to target ("stderr" or a file path) at level. When a
 * file replaces a file, the new one takes over the old fd number. Returns
 * 0, or -1 with errno (the previous target then stays in use). Blocks only
 * on open(2). Call it in the master; workers inherit the result. */
int log_open(const char *target, int level)
{
    if (target == NULL || *target == '\0') {
        errno = EINVAL;
        return -1;
    }
    if (strcmp(target, "stderr") == 0) {
        if (log_fd != 2)
            close(log_fd);
        log_fd = 2;
        log_path[0] = '\0';
        log_level = clamp_level(level);
        journal = stderr_is_journal();
        return 0;
    }
    if (strlen(target) >= sizeof(log_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open_log_file(target);
    if (fd < 0)
        return -1;
    if (log_fd != 2) {
        if (dup3(fd, log_fd, O_CLOEXEC) < 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        close(fd);
    } else {
        log_fd = fd;
    }
    journal = 0;
    strcpy(log_path, target);
    log_level = clamp_level(level);
    return 0;
}

/* Reopens the current log file by path (after logrotate renamed it) and
 * puts the new file under the same fd number. A no-op for stderr. Returns
 * 0, or -1 with errno (logging then continues to the old file). Blocks
 * only on open(2); workers and the master each call it on SIGUSR1. */
int log_reopen(void)
{
    if (log_path[0] == '\0')
        return 0;
    int fd = open_log_file(log_path);
    if (fd < 0)
        return -1;
    int rc = dup3(fd, log_fd, O_CLOEXEC);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc < 0 ? -1 : 0;
}

/* Messages above level are dropped from now on; out-of-range levels are
 * clamped to error..debug. */
void log_set_level(int level)
{
    log_level = clamp_level(level);
}

int log_get_level(void)
{
    return log_level;
}

/* Sets the role printed before every message ("master", "worker 3").
 * Copied (truncated to 63 bytes); NULL means "master". */
void log_set_role(const char *role)
{
    snprintf(log_role, sizeof(log_role), "%s", role ? role : "master");
}

/* "2026-11-24T07:50:00.123+0000": local time, milliseconds, numeric zone.
 * Returns the length written (0 if the clock is unusable). */
static size_t format_time(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    char zone[8];

    clock_gettime(CLOCK_REALTIME, &ts);
    if (localtime_r(&ts.tv_sec, &tm) == NULL)
        return 0;
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n == 0 || strftime(zone, sizeof(zone), "%z", &tm) == 0)
        return 0;
    int m = snprintf(buf + n, size - n, ".%03ld%s", ts.tv_nsec / 1000000L, zone);
    if (m < 0 || (size_t)m >= size - n)
        return 0;
    return n + (size_t)m;
}

/* Writes all of buf, retrying on EINTR and after partial writes. A log
 * that cannot be written is dropped: there is nowhere to report it. */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* CR and LF inside a message would forge a second log line (a client's
 * request target can end up in a message): make them visible spaces. */
static void flatten(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\n' || s[i] == '\r')
            s[i] = ' ';
}

/* Formats and writes one line at level; with_errno appends ": " and
 * strerror(errno). Lines above the configured level cost one comparison.
 * errno is the same on return. Never blocks beyond one write(2). */
/* Appends one message and a newline to the capture buffer, as much as
 * fits; the buffer stays NUL-terminated. */
static void capture(const char *msg, size_t len)
{
    size_t room = capture_len - capture_used - 1;

    if (capture_used + 1 >= capture_len)
        return;
    if (len > room)
        len = room;
    memcpy(capture_buf + capture_used, msg, len);
    capture_used += len;
    if (capture_used + 1 < capture_len)
        capture_buf[capture_used++] = '\n';
    capture_buf[capture_used] = '\0';
}

/* See log.h. */
void log_capture(char *buf, size_t len)
{
    capture_buf = len > 0 ? buf : NULL;
    capture_len = len;
    capture_used = 0;
    capture_only = false;
    if (capture_buf != NULL)
        capture_buf[0] = '\0';
}

/* See log.h. */
void log_capture_only(char *buf, size_t len)
{
    log_capture(buf, len);
    capture_only = capture_buf != NULL;
}

void log_vmsg(int level, int with_errno, const char *fmt, va_list ap)
{
    if (level > log_level)
        return;
    int saved = errno;
    char line[LINE_MAX_BYTES];
    char suffix[160] = "";
    char errbuf[128];
    size_t pos, room, len, start;
    int n;

    level = clamp_level(level);
    if (with_errno)
        snprintf(suffix, sizeof(suffix), ": %s",
                 strerror_r(saved, errbuf, sizeof(errbuf)));
    if (journal < 0) /* stderr since start: nobody called log_open yet */
        journal = log_fd == 2 && stderr_is_journal();
    if (journal)
        pos = (size_t)snprintf(line, sizeof(line), "%s", journal_prefix[level]);
    else
        pos = format_time(line, sizeof(line));
    n = snprintf(line + pos, sizeof(line) - pos,
                 journal ? "[%s] [%ld] %s: " : " [%s] [%ld] %s: ", level_names[level],
                 (long)getpid(), log_role);
    pos += (size_t)n; /* role is at most 63 bytes: always fits */

    /* Room for the message; the suffix and the newline always fit. */
    room = sizeof(line) - pos - strlen(suffix) - 1;
    n = vsnprintf(line + pos, room + 1, fmt, ap);
    if (n < 0)
        n = 0;
    len = (size_t)n;
    if (len > room) {
        len = room;
        memcpy(line + pos + len - strlen(ELLIPSIS), ELLIPSIS, strlen(ELLIPSIS));
    }
    flatten(line + pos, len);
    start = pos;
    pos += len;
    len = strlen(suffix);
    memcpy(line + pos, suffix, len);
    pos += len;
    if (capture_buf != NULL && level == LOG_ERROR) {
        capture(line + start, pos - start);
        if (capture_only) {
            errno = saved;
            return;
        }
    }
    line[pos++] = '\n';
    write_all(log_fd, line, pos);
    errno = saved;
}

#define LOG_FN(name, level, with_errno) \
    void name(const char *fmt, ...) \
    { \
        va_list ap; \
        va_start(ap, fmt); \
        log_vmsg(level, with_errno, fmt, ap); \
        va_end(ap); \
    }

/* The logging calls: level and whether ": strerror(errno)" is appended.
 * None of them blocks beyond one write(2) or changes errno. */
LOG_FN(log_err, LOG_ERROR, 1)
LOG_FN(log_errx, LOG_ERROR, 0)
LOG_FN(log_warn, LOG_WARN, 1)
LOG_FN(log_warnx, LOG_WARN, 0)
LOG_FN(log_info, LOG_INFO, 0)
LOG_FN(log_debug, LOG_DEBUG, 0)

/* Logs at error level with strerror(errno), then exit(1) (atexit handlers
 * run, children are not cleaned up). For start-up failures before the
 * event loops, and for out of memory anywhere: buf_reserve (master and
 * workers) and the request's header array (workers) call it on the loop. */
void fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(LOG_ERROR, 1, fmt, ap);
    va_end(ap);
    exit(1);
}

/* As fatal, without strerror. */
void fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(LOG_ERROR, 0, fmt, ap);
    va_end(ap);
    exit(1);
}

/* Public ABI (preforkd.h): logging for app modules, from any process.
 * PF_LOG_ERROR..PF_LOG_DEBUG; an unknown level logs at info. */
void pf_log(int level, const char *fmt, ...)
{
    va_list ap;
    int l;

    switch (level) {
    case PF_LOG_ERROR: l = LOG_ERROR; break;
    case PF_LOG_WARN: l = LOG_WARN; break;
    case PF_LOG_DEBUG: l = LOG_DEBUG; break;
    default: l = LOG_INFO; break;
    }
    va_start(ap, fmt);
    log_vmsg(l, 0, fmt, ap);
    va_end(ap);
}
