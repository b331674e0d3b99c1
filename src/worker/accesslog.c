/*
 * accesslog.c - the worker's access log: one line per response, rendered
 * from a format compiled once ("common", "combined", or a custom format of
 * $variables and literal text), kept in a 64 KiB buffer and written out by
 * a 1 s timer on the worker's loop, when the buffer is full, on USR1 and at
 * exit. Runs only in workers (and unit tests); owns the log's fd, buffer
 * and timer. Convention: 0 / -1, failures logged to the error log.
 *
 * Atomicity: every flush ends on a line boundary. To a regular file (opened
 * O_APPEND) a flush is one write(2), so lines of different workers never mix
 * mid-line. To anything else (stderr as a pipe or the journal's socket) it
 * is written in pieces of at most PIPE_BUF bytes, each ending on a line
 * boundary, because only writes up to PIPE_BUF are atomic there.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "buf.h"
#include "log.h"

#define FLUSH_AT (64u * 1024) /* write the buffer out once it holds this */
#define FLUSH_EVERY 1.0       /* seconds: the timer */

/* As nginx and Apache log them: the body's bytes ($body_bytes_sent, %b). */
#define FMT_COMMON "$remote_addr - - [$time_local] \"$request\" $status $body_bytes_sent"
#define FMT_COMBINED FMT_COMMON " \"$http_referer\" \"$http_user_agent\""
/* One JSON object a line: in this format each text variable is a JSON
 * string (or null when absent), numbers are numbers. */
#define FMT_JSON \
    "{\"time\":$time_iso8601,\"remote_addr\":$remote_addr," \
    "\"request\":$request,\"method\":$request_method,\"uri\":$request_uri," \
    "\"protocol\":$server_protocol,\"status\":$status,\"bytes_sent\":$bytes_sent," \
    "\"body_bytes_sent\":$body_bytes_sent,\"request_time\":$request_time," \
    "\"referer\":$http_referer,\"user_agent\":$http_user_agent,\"host\":$http_host," \
    "\"worker_id\":$worker_id,\"worker_pid\":$worker_pid}"

enum var {
    V_LITERAL,
    V_REMOTE_ADDR,
    V_TIME_LOCAL,
    V_TIME_ISO8601,
    V_MSEC,
    V_REQUEST,
    V_METHOD,
    V_URI,
    V_PROTOCOL,
    V_STATUS,
    V_BYTES_SENT,
    V_BODY_BYTES,
    V_REFERER,
    V_USER_AGENT,
    V_HOST,
    V_REQUEST_TIME,
    V_REQUEST_TIME_US,
    V_WORKER_PID,
    V_WORKER_ID,
};

static const struct {
    const char *name;
    enum var var;
} vars[] = {
    {"remote_addr", V_REMOTE_ADDR},
    {"time_local", V_TIME_LOCAL},
    {"time_iso8601", V_TIME_ISO8601},
    {"msec", V_MSEC},
    {"request", V_REQUEST},
    {"request_method", V_METHOD},
    {"request_uri", V_URI},
    {"server_protocol", V_PROTOCOL},
    {"status", V_STATUS},
    {"bytes_sent", V_BYTES_SENT},
    {"body_bytes_sent", V_BODY_BYTES},
    {"http_referer", V_REFERER},
    {"http_user_agent", V_USER_AGENT},
    {"http_host", V_HOST},
    {"request_time", V_REQUEST_TIME},
    {"request_time_us", V_REQUEST_TIME_US},
    {"worker_pid", V_WORKER_PID},
    {"worker_id", V_WORKER_ID},
};

/* One piece of a compiled format: a variable, or literal text (off, len
 * into the format's own copy). */
struct op {
    enum var var;
    size_t off, len;
};

struct format {
    char *text;
    struct op *ops;
    size_t nops;
    bool json; /* "json": text variables as JSON strings */
};

static struct {
    struct ev_loop *loop;
    struct format fmt;
    char *path;   /* NULL: stderr */
    int fd;       /* -1: closed */
    bool chunked; /* not a regular file: PIPE_BUF pieces */
    bool failing; /* the last write failed (warned once) */
    struct buf out;
    ev_timer timer;
    time_t tsec; /* the second the cached times are for */
    char tlocal[40], tiso[40];
} alog = {.fd = -1, .tsec = -1};

/* ---- formats --------------------------------------------------------------- */

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

static int find_var(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        if (strlen(vars[i].name) == len && memcmp(vars[i].name, name, len) == 0)
            return (int)vars[i].var;
    return -1;
}

static void push_op(struct format *f, enum var v, size_t off, size_t len)
{
    struct op *ops = realloc(f->ops, (f->nops + 1) * sizeof(*ops));

    if (ops == NULL)
        fatal("access log: out of memory");
    f->ops = ops;
    f->ops[f->nops++] = (struct op){v, off, len};
}

/* Reads the variable at s + i (just after '$'): sets *name, *len and
 * returns the index after it, or -1 when no name follows. */
static long var_at(const char *s, size_t i, const char **name, size_t *len)
{
    size_t j = i;

    if (s[i] == '{') {
        const char *close = strchr(s + i + 1, '}');
        if (close == NULL || close == s + i + 1)
            return -1;
        *name = s + i + 1;
        *len = (size_t)(close - *name);
        return (long)(close - s) + 1;
    }
    while (name_char(s[j]))
        j++;
    if (j == i)
        return -1;
    *name = s + i;
    *len = j - i;
    return (long)j;
}

static void format_free(struct format *f)
{
    free(f->text);
    free(f->ops);
    *f = (struct format){0};
}

/* Compiles spec ("common", "combined" or custom) into f. 0, or -1 with a
 * message in why naming the offending text. */
static int compile(const char *spec, struct format *f, char *why, size_t wlen)
{
    const char *s = strcmp(spec, "common") == 0     ? FMT_COMMON
                    : strcmp(spec, "combined") == 0 ? FMT_COMBINED
                    : strcmp(spec, "json") == 0     ? FMT_JSON
                                                    : spec;
    size_t i = 0, lit = 0;

    *f = (struct format){.text = strdup(s), .json = strcmp(spec, "json") == 0};
    if (f->text == NULL)
        fatal("access log: out of memory");
    if (*s == '\0') {
        snprintf(why, wlen, "empty format");
        goto fail;
    }
    while (s[i] != '\0') {
        const char *name;
        size_t len;
        long next;
        int v;

        if (s[i] != '$') {
            i++;
            continue;
        }
        if (i > lit)
            push_op(f, V_LITERAL, lit, i - lit);
        if (s[i + 1] == '$') { /* "$$": one literal dollar sign */
            lit = i + 1;
            i += 2;
            continue;
        }
        next = var_at(s, i + 1, &name, &len);
        if (next < 0) {
            snprintf(why, wlen,
                     "\"$\" at offset %zu is not followed by a "
                     "variable name (write $$ for a dollar sign)",
                     i);
            goto fail;
        }
        if ((v = find_var(name, len)) < 0) {
            snprintf(why, wlen, "unknown variable \"$%.*s\" at offset %zu",
                     (int)(len > 64 ? 64 : len), name, i);
            goto fail;
        }
        push_op(f, (enum var)v, 0, 0);
        i = (size_t)next;
        lit = i;
    }
    if (i > lit)
        push_op(f, V_LITERAL, lit, i - lit);
    return 0;
fail:
    format_free(f);
    return -1;
}

/* Checks format like accesslog_open would; nothing is opened. Pure. */
int accesslog_check_format(const char *format, char *why, size_t len)
{
    struct format f;

    if (format == NULL) {
        snprintf(why, len, "no format");
        return -1;
    }
    if (compile(format, &f, why, len) < 0)
        return -1;
    format_free(&f);
    return 0;
}

/* ---- rendering a line ------------------------------------------------------ */

/* Appends n request bytes, escaped so that they cannot forge or break a
 * line or a field: control bytes, bytes >= 0x7f, '"' and '\\' become \xHH
 * (as nginx does); in the json format, '"' and '\\' get a backslash and
 * the others are \u00HH, standing for the byte HH as if the bytes were
 * Latin-1, so that a line stays valid JSON (and ASCII, so valid UTF-8)
 * whatever a client sent. */
static void put_escaped(struct buf *b, const char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *pre = alog.fmt.json ? "\\u00" : "\\x";
    size_t npre = strlen(pre), k = 0;
    char *o = buf_reserve(b, n * 6);

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            o[k++] = (char)c;
        } else if (alog.fmt.json && (c == '"' || c == '\\')) {
            o[k++] = '\\';
            o[k++] = (char)c;
        } else {
            memcpy(o + k, pre, npre);
            k += npre;
            o[k++] = hex[c >> 4];
            o[k++] = hex[c & 15];
        }
    }
    b->len += k;
}

/* Text as the format wants it: escaped, and a quoted JSON string in the
 * json format. */
static void put_text(struct buf *b, const char *p, size_t n)
{
    if (alog.fmt.json)
        buf_append(b, "\"", 1);
    put_escaped(b, p, n);
    if (alog.fmt.json)
        buf_append(b, "\"", 1);
}

/* What is not there: "-", or null in JSON. */
static void put_absent(struct buf *b)
{
    if (alog.fmt.json)
        buf_puts(b, "null");
    else
        buf_append(b, "-", 1);
}

/* A request field: absent when .ptr is NULL. */
static void put_str(struct buf *b, pf_str s)
{
    if (s.ptr == NULL)
        put_absent(b);
    else
        put_text(b, s.ptr, s.len);
}

static void put_fmt(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put_fmt(struct buf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_append(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Formats the times of second t once, for every line of that second. */
static void cache_times(time_t t)
{
    struct tm tm;
    char zone[8] = "+0000";

    if (t == alog.tsec)
        return;
    alog.tsec = t;
    if (localtime_r(&t, &tm) == NULL)
        gmtime_r(&t, &tm);
    strftime(zone, sizeof(zone), "%z", &tm);
    strftime(alog.tlocal, sizeof(alog.tlocal), "%d/%b/%Y:%H:%M:%S ", &tm);
    strncat(alog.tlocal, zone, sizeof(alog.tlocal) - strlen(alog.tlocal) - 1);
    strftime(alog.tiso, sizeof(alog.tiso), "%Y-%m-%dT%H:%M:%S", &tm);
    /* ISO 8601 wants the zone as +hh:mm. */
    snprintf(alog.tiso + strlen(alog.tiso), sizeof(alog.tiso) - strlen(alog.tiso),
             "%.3s:%.2s", zone, zone + 3);
}

/* "HTTP/1.1" into t, or "" before the version was read (a bad request
 * line). Returns t. */
static const char *protocol(int version, char t[32])
{
    if (version <= 0)
        t[0] = '\0';
    else
        snprintf(t, 32, "HTTP/%d.%d", version / 10, version % 10);
    return t;
}

/* "GET /a HTTP/1.1" (its protocol "-" when not read): one string in JSON. */
static void put_request(struct buf *b, const struct accesslog_entry *e)
{
    char t[32];

    if (e->method.len == 0 && e->target.len == 0) {
        put_absent(b);
        return;
    }
    if (alog.fmt.json)
        buf_append(b, "\"", 1);
    put_escaped(b, e->method.ptr, e->method.len);
    buf_append(b, " ", 1);
    put_escaped(b, e->target.ptr, e->target.len);
    buf_append(b, " ", 1);
    buf_puts(b, *protocol(e->version, t) ? t : "-");
    if (alog.fmt.json)
        buf_append(b, "\"", 1);
}

/* The method or the target: absent when not read. */
static void put_part(struct buf *b, pf_str s)
{
    if (s.len == 0)
        put_absent(b);
    else
        put_text(b, s.ptr, s.len);
}

static void put_var(struct buf *b, enum var v, const struct accesslog_entry *e)
{
    char t[32];

    switch (v) {
    case V_LITERAL: break;
    case V_REMOTE_ADDR:
        put_str(b, (pf_str){e->peer, e->peer ? strlen(e->peer) : 0});
        break;
    case V_TIME_LOCAL:
        cache_times((time_t)e->start);
        put_text(b, alog.tlocal, strlen(alog.tlocal));
        break;
    case V_TIME_ISO8601:
        cache_times((time_t)e->start);
        put_text(b, alog.tiso, strlen(alog.tiso));
        break;
    case V_MSEC: put_fmt(b, "%.3f", e->start); break;
    case V_REQUEST: put_request(b, e); break;
    case V_METHOD: put_part(b, e->method); break;
    case V_URI: put_part(b, e->target); break;
    case V_PROTOCOL: put_part(b, (pf_str){t, strlen(protocol(e->version, t))}); break;
    case V_STATUS: put_fmt(b, "%d", e->status); break;
    case V_BYTES_SENT: put_fmt(b, "%" PRIu64, e->bytes); break;
    case V_BODY_BYTES: put_fmt(b, "%" PRIu64, e->body_bytes); break;
    case V_REFERER: put_str(b, e->referer); break;
    case V_USER_AGENT: put_str(b, e->user_agent); break;
    case V_HOST: put_str(b, e->host); break;
    case V_REQUEST_TIME: put_fmt(b, "%.3f", e->duration > 0 ? e->duration : 0); break;
    case V_REQUEST_TIME_US:
        put_fmt(b, "%" PRIu64, e->duration > 0 ? (uint64_t)(e->duration * 1e6 + 0.5) : 0);
        break;
    case V_WORKER_PID: put_fmt(b, "%ld", (long)e->pid); break;
    case V_WORKER_ID: put_fmt(b, "%d", e->worker_id); break;
    }
}

/* ---- output ---------------------------------------------------------------- */

static int write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(alog.fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The next piece for a pipe or socket: at most PIPE_BUF bytes ending on a
 * line boundary, or one longer line alone (it cannot be atomic anyway). */
static size_t piece_len(const char *p, size_t n)
{
    const char *nl;

    if (n <= PIPE_BUF)
        return n;
    if ((nl = memrchr(p, '\n', PIPE_BUF)) != NULL)
        return (size_t)(nl - p) + 1;
    nl = memchr(p + PIPE_BUF, '\n', n - PIPE_BUF);
    return nl ? (size_t)(nl - p) + 1 : n;
}

static int write_pieces(const char *p, size_t n)
{
    while (n > 0) {
        size_t take = piece_len(p, n);
        if (write_all(p, take) < 0)
            return -1;
        p += take;
        n -= take;
    }
    return 0;
}

/* Writes the buffer out (one write to a file; see the top). A failing
 * write is logged once, not per flush, and the lines are dropped: the
 * access log never holds the worker up or grows without bound. */
void accesslog_flush(void)
{
    size_t n = alog.out.len;
    int rc;

    if (n == 0 || alog.fd < 0)
        return;
    rc = alog.chunked ? write_pieces(alog.out.p, n) : write_all(alog.out.p, n);
    if (rc < 0 && !alog.failing) {
        log_warn("access log: writing %zu bytes to %s", n,
                 alog.path ? alog.path : "stderr");
        alog.failing = true;
    } else if (rc == 0 && alog.failing) {
        log_info("access log: writing to %s works again",
                 alog.path ? alog.path : "stderr");
        alog.failing = false;
    }
    alog.out.len = 0;
    buf_shrink(&alog.out, FLUSH_AT * 2); /* after an oversized line */
}

/* Renders e with the compiled format into the buffer, then flushes if the
 * buffer is full. Never blocks except in that flush (one write). */
void accesslog_write(const struct accesslog_entry *e)
{
    if (alog.fd < 0)
        return;
    for (size_t i = 0; i < alog.fmt.nops; i++) {
        const struct op *op = &alog.fmt.ops[i];
        if (op->var == V_LITERAL)
            buf_append(&alog.out, alog.fmt.text + op->off, op->len);
        else
            put_var(&alog.out, op->var, e);
    }
    buf_append(&alog.out, "\n", 1);
    if (alog.out.len >= FLUSH_AT)
        accesslog_flush();
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    accesslog_flush();
}

/* Opens path for appending on an fd >= 3 (never taken for stdio). */
static int open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd >= 0 && fd < 3) {
        int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        close(fd);
        fd = high;
    }
    return fd;
}

static void set_fd(int fd)
{
    struct stat st;

    alog.fd = fd;
    alog.chunked = fstat(fd, &st) < 0 || !S_ISREG(st.st_mode);
}

/* See accesslog.h. Runs in a worker after it dropped privileges, so the
 * file (or its directory) must be writable by [server] user. The timer is
 * unreferenced: it never keeps the loop alive by itself. */
int accesslog_open(struct ev_loop *loop, const char *target, const char *format)
{
    char why[256];
    int fd = 2;

    if (alog.fd >= 0)
        accesslog_close();
    if (compile(format ? format : "combined", &alog.fmt, why, sizeof(why)) < 0) {
        log_errx("access log: access_log_format: %s", why);
        return -1;
    }
    if (strcmp(target, "stderr") != 0) {
        if ((alog.path = strdup(target)) == NULL || (fd = open_file(target)) < 0) {
            log_err("access log: opening %s", target);
            free(alog.path);
            alog.path = NULL;
            format_free(&alog.fmt);
            return -1;
        }
    }
    set_fd(fd);
    alog.loop = loop;
    alog.failing = false;
    ev_timer_init(&alog.timer, on_timer, FLUSH_EVERY, FLUSH_EVERY);
    ev_timer_start(loop, &alog.timer);
    ev_unref(loop);
    return 0;
}

/* USR1: flush to the old file, then open the path again (after logrotate
 * moved it away). If that fails, logging goes on to the old file. */
void accesslog_reopen(void)
{
    int fd;

    accesslog_flush();
    if (alog.fd < 0 || alog.path == NULL)
        return;
    if ((fd = open_file(alog.path)) < 0) {
        log_warn("access log: reopening %s (still writing to the old file)", alog.path);
        return;
    }
    close(alog.fd);
    set_fd(fd);
}

/* Flushes and releases everything; accesslog_write is a no-op afterwards. */
void accesslog_close(void)
{
    if (alog.fd < 0)
        return;
    accesslog_flush();
    ev_ref(
        alog.loop); /* libev: re-reference an unreferenced watcher before stopping it */
    ev_timer_stop(alog.loop, &alog.timer);
    if (alog.fd != 2)
        close(alog.fd);
    alog.fd = -1;
    free(alog.path);
    alog.path = NULL;
    format_free(&alog.fmt);
    buf_free(&alog.out);
}
