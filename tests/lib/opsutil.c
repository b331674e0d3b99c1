/*
 * opsutil.c - helpers for the operations tests: admin endpoint client over
 * a unix socket, a strict JSON validator (recursive descent, no DOM), /stats
 * number lookups, promtool on a /metrics body, and running preforkctl with
 * a deadline. Runs in the test
 * process. Convention: see opsutil.h.
 */
#include "opsutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* ---- promtool ------------------------------------------------------------ */

/* See opsutil.h. */
bool ops_promtool_check(const char *dir, const char *text)
{
    const char *req = getenv("PREFORKD_REQUIRE_PROMTOOL");
    char file[512], out[540], cmd[1200], *said;
    size_t len = 0;
    int rc;

    if (system("command -v promtool > /dev/null 2>&1") != 0) {
        ck_assert_msg(req == NULL || strcmp(req, "1") != 0,
                      "PREFORKD_REQUIRE_PROMTOOL=1 and no promtool on PATH "
                      "(Debian's prometheus package)");
        fprintf(stderr, "promtool not installed: /metrics not checked by it\n");
        return false;
    }
    snprintf(file, sizeof file, "%s/metrics.txt", dir);
    snprintf(out, sizeof out, "%s.out", file);
    harness_write_file(file, text, strlen(text));
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' > '%s' 2>&1", file, out);
    rc = system(cmd);
    said = harness_read_file(out, &len);
    ck_assert_msg(rc == 0 && len == 0,
                  "promtool check metrics (status %d) says:\n%s\n"
                  "on:\n%s",
                  rc, said ? said : "?", text);
    free(said);
    return true;
}

/* ---- admin endpoint ------------------------------------------------------ */

static int read_until_eof(int fd, char **buf, size_t *len, double deadline)
{
    size_t cap = 65536;

    *len = 0;
    *buf = malloc(cap);
    ck_assert_ptr_nonnull(*buf);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        double left = deadline - harness_now();
        ssize_t n;

        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) < 0)
            return -1;
        if (cap - *len < 4096) {
            *buf = realloc(*buf, cap *= 2);
            ck_assert_ptr_nonnull(*buf);
        }
        n = read(fd, *buf + *len, cap - *len - 1);
        if (n == 0)
            break;
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (n > 0)
            *len += (size_t)n;
    }
    (*buf)[*len] = '\0';
    return 0;
}

char *ops_admin_get(const char *sock, const char *path, int *status, double timeout)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    double deadline = harness_now() + timeout;
    char req[256], *answer = NULL, *body = NULL, *end;
    size_t len;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 &&
        write(fd, req, strlen(req)) == (ssize_t)strlen(req) &&
        read_until_eof(fd, &answer, &len, deadline) == 0 &&
        sscanf(answer, "HTTP/1.%*d %d", status) == 1 &&
        (end = strstr(answer, "\r\n\r\n")) != NULL)
        body = strdup(end + 4);
    free(answer);
    close(fd);
    return body;
}

char *ops_stats(const char *sock)
{
    int status = 0;
    char *body = ops_admin_get(sock, "/stats", &status, 5);

    if (body != NULL && status != 200) {
        free(body);
        body = NULL;
    }
    return body;
}

/* ---- JSON ------------------------------------------------------------------ */

struct jv {
    const char *s, *p;
    char *why;
    size_t len;
    int depth;
};

static bool jfail(struct jv *j, const char *what)
{
    snprintf(j->why, j->len, "%s at offset %td: %.30s", what, j->p - j->s, j->p);
    return false;
}

static void jws(struct jv *j)
{
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

static bool jvalue(struct jv *j);

static bool jstring(struct jv *j)
{
    for (j->p++; *j->p != '"'; j->p++) {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20)
            return jfail(j, c ? "control byte in a string" : "unterminated string");
        if (c != '\\')
            continue;
        c = (unsigned char)*++j->p;
        if (c == 'u') {
            for (int i = 1; i <= 4; i++)
                if (!strchr("0123456789abcdefABCDEF", j->p[i]) || !j->p[i])
                    return jfail(j, "bad \\u escape");
            j->p += 4;
        } else if (!c || !strchr("\"\\/bfnrt", c)) {
            return jfail(j, "bad escape");
        }
    }
    j->p++;
    return true;
}

static bool digits(struct jv *j)
{
    const char *start = j->p;

    while (*j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > start;
}

static bool jnumber(struct jv *j)
{
    if (*j->p == '-')
        j->p++;
    if (*j->p == '0')
        j->p++;
    else if (!digits(j))
        return jfail(j, "bad number");
    if (*j->p == '.' && (j->p++, !digits(j)))
        return jfail(j, "bad fraction");
    if (*j->p == 'e' || *j->p == 'E') {
        j->p++;
        if (*j->p == '+' || *j->p == '-')
            j->p++;
        if (!digits(j))
            return jfail(j, "bad exponent");
    }
    return true;
}

static bool jcontainer(struct jv *j, char close)
{
    if (++j->depth > 64)
        return jfail(j, "too deep");
    j->p++;
    jws(j);
    if (*j->p == close) {
        j->p++;
        j->depth--;
        return true;
    }
    for (;;) {
        jws(j);
        if (close == '}') {
            if (*j->p != '"' || !jstring(j))
                return jfail(j, "expected a member name");
            jws(j);
            if (*j->p++ != ':')
                return jfail(j, "expected ':'");
        }
        if (!jvalue(j))
            return false;
        jws(j);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p != close)
            return jfail(j, "expected ',' or the end of the container");
        j->p++;
        j->depth--;
        return true;
    }
}

static bool jvalue(struct jv *j)
{
    jws(j);
    switch (*j->p) {
    case '{': return jcontainer(j, '}');
    case '[': return jcontainer(j, ']');
    case '"': return jstring(j);
    case 't':
        return strncmp(j->p, "true", 4) == 0 ? (j->p += 4, true)
                                             : jfail(j, "bad literal");
    case 'f':
        return strncmp(j->p, "false", 5) == 0 ? (j->p += 5, true)
                                              : jfail(j, "bad literal");
    case 'n':
        return strncmp(j->p, "null", 4) == 0 ? (j->p += 4, true)
                                             : jfail(j, "bad literal");
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
            return jnumber(j);
        return jfail(j, "unexpected character");
    }
}

bool ops_json_valid(const char *text, char *why, size_t len)
{
    struct jv j = {.s = text, .p = text, .why = why, .len = len};

    if (!jvalue(&j))
        return false;
    jws(&j);
    return *j.p == '\0' || jfail(&j, "trailing bytes");
}

/* ---- /stats lookups ------------------------------------------------------ */

double ops_num(const char *text, const char *key)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\": ", key);
    p = text ? strstr(text, pat) : NULL;
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

void ops_each_worker(const char *json, void (*fn)(const char *obj, void *), void *arg)
{
    const char *p = json ? strstr(json, "\"workers\": [") : NULL;

    while (p && (p = strstr(p, "{\"slot\": ")) != NULL) {
        fn(p, arg);
        p++;
    }
}

/* ---- running a program ----------------------------------------------------- */

int ops_run(const char *const *argv, char **out, double timeout)
{
    char path[] = "/tmp/pf-ops-run-XXXXXX";
    int fd = mkstemp(path), st = 0;
    double deadline = harness_now() + timeout;
    pid_t pid, r = 0;

    ck_assert_int_ge(fd, 0);
    unlink(path);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)(uintptr_t)argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int werr = 0;
    bool timed_out = false;
    ssize_t n;

    while ((r = waitpid(pid, &st, WNOHANG)) == 0 && harness_now() < deadline)
        harness_pause(0.01);
    if (r < 0)
        werr = errno;
    if (r == 0) {
        timed_out = true;
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    lseek(fd, 0, SEEK_SET);
    *out = calloc(1, 65536);
    ck_assert_ptr_nonnull(*out);
    n = read(fd, *out, 65000);
    ck_assert_int_ge(n, 0);
    close(fd);
    if (r == pid && WIFEXITED(st))
        return WEXITSTATUS(st);
    /* Why there is no exit code, for the caller's failure message. */
    snprintf(*out + n, 65536 - (size_t)n, "\n[ops_run: %s]\n",
             timed_out         ? "no exit within the timeout: killed"
             : r < 0           ? strerror(werr)
             : WIFSIGNALED(st) ? strsignal(WTERMSIG(st))
                               : "stopped");
    return -1;
}
