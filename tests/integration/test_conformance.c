/*
 * test_conformance.c - the request corpora of tests/conformance (Gunicorn's
 * valid and invalid requests, the same with Host added, and smuggler's
 * Transfer-Encoding obfuscations) sent as raw bytes to the real daemon
 * running the echo app. Each valid request is served as Gunicorn's tests
 * expect (method, path, body length, pipelined count); each invalid one is
 * answered with an error status and a closed connection; no smuggled
 * request is ever served; and the daemon keeps serving with the same
 * workers throughout. Where preforkd follows RFC 9112 differently from
 * Gunicorn, the case is listed below with its outcome and the reason.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"
#include "httpfile.h"
#include "load.h"

enum expect { SERVED, REJECTED, INCOMPLETE, NOT_SMUGGLED };

/* Cases whose outcome differs from their folder's, and why. */
static const struct deviation {
    const char *name;
    enum expect outcome;
    int status; /* REJECTED: the status (0: any 4xx or 5xx) */
    const char *why;
} deviations[] = {
    {"gunicorn/valid/009", REJECTED, 400,
     "Content-Length and Transfer-Encoding (RFC 9112 6.1)"},
    {"gunicorn-host/valid-009+host", REJECTED, 400,
     "Content-Length and Transfer-Encoding (RFC 9112 6.1)"},
    {"gunicorn/valid/022", REJECTED, 400, "its second request is HTTP/1.1 without Host"},
    {"gunicorn/valid/024", REJECTED, 431, "a field line over max_header_size (8190)"},
    {"gunicorn/valid/026", REJECTED, 431, "a field line over max_header_size (8190)"},
    {"gunicorn/valid/028", REJECTED, 400,
     "white space before the colon (RFC 9112 5.1: MUST reject)"},
    {"gunicorn-host/valid-028+host", REJECTED, 400,
     "white space before the colon (RFC 9112 5.1: MUST reject)"},
    {"gunicorn/valid/031", REJECTED, 501, "a method token it does not implement"},
    {"gunicorn/valid/031compat", REJECTED, 501, "a method token it does not implement"},
    {"gunicorn/valid/031compat2", REJECTED, 501, "a method token it does not implement"},
    {"gunicorn-host/valid-031+host", REJECTED, 501,
     "a method token it does not implement"},
    {"gunicorn-host/valid-031compat+host", REJECTED, 501,
     "a method token it does not implement"},
    {"gunicorn-host/valid-031compat2+host", REJECTED, 501,
     "a method token it does not implement"},
    {"gunicorn/valid/099", INCOMPLETE, 0,
     "the corpus body is shorter than its Content-Length"},
    {"gunicorn/valid/compat_obs_fold", REJECTED, 400,
     "obs-fold is refused (RFC 9112 5.2 allows 400)"},
    {"gunicorn/valid/compat_obs_fold_huge", REJECTED, 400,
     "obs-fold is refused (RFC 9112 5.2 allows 400)"},
    {"gunicorn/valid/pp_01", REJECTED, 501, "PROXY protocol is not spoken"},
    {"gunicorn/valid/pp_02", REJECTED, 501, "PROXY protocol is not spoken"},
    {"gunicorn/valid/pp_04", REJECTED, 400, "PROXY protocol is not spoken"},
    {"gunicorn/valid/pp_05", REJECTED, 400, "PROXY protocol is not spoken"},
    {"gunicorn/valid/rfc9112_smuggle_gzip_chunked_01", REJECTED, 501,
     "a transfer coding other than chunked (RFC 9112 6.1: 501)"},
    {"gunicorn/valid/rfc9112_smuggle_te_identity_chunked_01", REJECTED, 501,
     "a transfer coding other than chunked (RFC 9112 6.1: 501)"},
    {"gunicorn-host/valid-025+host", REJECTED, 501,
     "a transfer coding other than chunked (RFC 9112 6.1: 501)"},
    {"gunicorn-host/valid-025_line+host", REJECTED, 501,
     "a transfer coding other than chunked (RFC 9112 6.1: 501)"},
    {"gunicorn-host/valid-029+host", REJECTED, 501,
     "a transfer coding other than chunked (RFC 9112 6.1: 501)"},
    {"gunicorn/invalid/001", INCOMPLETE, 0, "a head that never ends"},
    {"gunicorn/invalid/rfc9112_chunked_missing_final_crlf_01", INCOMPLETE, 0,
     "a chunked body that never ends"},
    {"gunicorn/invalid/006", SERVED, 0,
     "Gunicorn's request-line limit (4094) is lower than max_request_line"},
    {"gunicorn/invalid/008", SERVED, 0,
     "Gunicorn's field limit is lower than max_header_size"},
    {"gunicorn/invalid/limit_header_default_01", SERVED, 0,
     "Gunicorn's field limit is lower than max_header_size"},
    {"gunicorn-host/invalid-017+host", SERVED, 0,
     "Gunicorn's field limit is lower than max_header_size"},
    {"gunicorn/invalid/011", SERVED, 0,
     "'=' is a sub-delim: 0.0.0.0=5000 is a valid reg-name Host"},
    {"gunicorn/invalid/012", SERVED, 0,
     "'=' is a sub-delim: 0.0.0.0=5000 is a valid reg-name Host"},
    {"gunicorn/invalid/040", SERVED, 0,
     "'_' is a token character; these are other fields, not framing"},
    {"gunicorn-host/invalid-chunked_07+host", SERVED, 0,
     "'_' is a token character; these are other fields, not framing"},
    {"gunicorn/invalid/041", SERVED, 0, "a repeated Content-Type is the app's to judge"},
    {"gunicorn-host/invalid-019+host", SERVED, 0,
     "X-Forwarded-* consistency is the app's to judge"},
    {"gunicorn-host/invalid-010+host", SERVED, 0,
     "invalid only for lacking Host, which was added"},
    {"gunicorn/invalid/rfc9110_trailer_forbidden_cl_01", SERVED, 0,
     "trailer fields are discarded, never merged"},
    {"gunicorn/invalid/rfc9110_trailer_forbidden_host_01", SERVED, 0,
     "trailer fields are discarded, never merged"},
    {"gunicorn/invalid/rfc9110_trailer_forbidden_te_01", SERVED, 0,
     "trailer fields are discarded, never merged"},
};

struct observed {
    int n; /* responses */
    int status[8];
    char line[8][160];  /* first line of each echo body */
    size_t body_len[8]; /* request body length echoed back */
    bool closed;        /* the server closed after the last response */
    char why[200];      /* a client-side failure, if any */
};

struct tally {
    int port;
    int cases, failures;
    int served, rejected, incomplete;
};

/* Case name: "folder/file" without ".http", relative to the corpus root. */
static const char *case_name(const char *path, char *out, size_t cap)
{
    const char *rel = strstr(path, "conformance/");
    size_t n;

    rel = rel ? rel + strlen("conformance/") : path;
    n = strlen(rel) - strlen(".http");
    snprintf(out, cap, "%.*s", (int)n, rel);
    return out;
}

static void observe(int port, const char *raw, size_t len, struct observed *o)
{
    struct hconn *c = harness_connect(port);

    memset(o, 0, sizeof(*o));
    if (harness_send(c, raw, len, 10) != 0)
        snprintf(o->why, sizeof(o->why), "send: %s", harness_error());
    shutdown(c->fd, SHUT_WR); /* the server answers what came, then closes */
    while (o->n < 8) {
        struct hresp r;
        const char *blank;

        if (harness_read_response(c, &r, false, 10) != 0) {
            hresp_free(&r);
            break;
        }
        o->status[o->n] = r.status;
        snprintf(o->line[o->n], sizeof(o->line[0]), "%.*s", (int)strcspn(r.body, "\n"),
                 r.body);
        blank = strstr(r.body, "\n\n");
        o->body_len[o->n] = blank ? r.body_len - (size_t)(blank + 2 - r.body) : 0;
        o->n++;
        hresp_free(&r);
    }
    o->closed = harness_wait_closed(c, 10) == 1;
    if (!o->closed && !o->why[0])
        snprintf(o->why, sizeof(o->why), "connection left open");
    harness_close(c);
}

/* The row of EXPECTED.tsv for a gunicorn valid case ("valid/001"):
 * methods, paths and body lengths, '|'-separated per request. */
static bool expected_row(const char *key, char *methods, char *paths, char *lens,
                         char *has_host)
{
    char *path = harness_path("PREFORKD_SRC", "tests/conformance/gunicorn/EXPECTED.tsv");
    char *text = harness_read_file(path, NULL), *line, *save = NULL;
    bool found = false;

    ck_assert_msg(text != NULL, "cannot read %s", path);
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[64];
        if (line[0] == '#' || sscanf(line, "%63s %255s %1023s %255s %7s", name, methods,
                                     paths, lens, has_host) != 5)
            continue;
        if (strcmp(name, key) == 0) {
            found = true;
            break;
        }
    }
    free(text);
    free(path);
    return found;
}

static const struct deviation *deviation_of(const char *name)
{
    for (size_t i = 0; i < sizeof(deviations) / sizeof(deviations[0]); i++)
        if (strcmp(deviations[i].name, name) == 0)
            return &deviations[i];
    return NULL;
}

/* "gunicorn/valid/018" or "gunicorn-host/valid-018+host" -> "valid/018". */
static bool gunicorn_valid_key(const char *name, char *key, size_t cap)
{
    const char *v;

    if (strncmp(name, "gunicorn/valid/", 15) == 0) {
        snprintf(key, cap, "valid/%s", name + 15);
        return true;
    }
    if ((v = strstr(name, "/valid-")) != NULL) {
        snprintf(key, cap, "valid/%.*s", (int)strcspn(v + 7, "+"), v + 7);
        return true;
    }
    return false;
}

/* In place: UTF-8 text of Latin-1 characters back to their bytes. */
static void latin1(char *s)
{
    unsigned char *r = (unsigned char *)s, *w = r;

    while (*r) {
        if ((r[0] == 0xc2 || r[0] == 0xc3) && r[1]) {
            *w++ = (unsigned char)(((r[0] & 3) << 6) | (r[1] & 0x3f));
            r += 2;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
}

/* Each request of a valid case served as Gunicorn's tests expect. */
static void check_served(const char *name, const struct observed *o, char *fail,
                         size_t cap)
{
    char key[96], methods[256], paths[1024], lens[256], host[8];
    char *ms = NULL, *ps = NULL, *ls = NULL;
    char *m = methods, *p = paths, *l = lens;
    int i = 0;

    if (!gunicorn_valid_key(name, key, sizeof(key)) ||
        !expected_row(key, methods, paths, lens, host)) {
        /* No expectation row: every response must be a 200. */
        for (i = 0; i < o->n; i++)
            if (o->status[i] != 200)
                snprintf(fail, cap, "response %d: status %d", i, o->status[i]);
        if (o->n == 0)
            snprintf(fail, cap, "no response");
        return;
    }
    for (; (m = strtok_r(m, "|", &ms)) && (p = strtok_r(p, "|", &ps)) &&
           (l = strtok_r(l, "|", &ls));
         m = p = l = NULL, i++) {
        size_t mlen = strlen(m);

        if (i >= o->n) {
            snprintf(fail, cap, "request %d (%s %s) not answered", i, m, p);
            return;
        }
        /* Gunicorn's path is the path part of the target (the whole of it
         * in origin-form), read as Latin-1. */
        latin1(p);
        if (o->status[i] != 200 || strncmp(o->line[i], m, mlen) != 0 ||
            o->line[i][mlen] != ' ' || strstr(o->line[i] + mlen, p) == NULL ||
            o->body_len[i] != strtoul(l, NULL, 10)) {
            snprintf(fail, cap,
                     "request %d: %d \"%s\" body %zu, want 200 \"%s %s\" body %s", i,
                     o->status[i], o->line[i], o->body_len[i], m, p, l);
            return;
        }
    }
    if (o->n != i)
        snprintf(fail, cap, "%d responses for %d requests", o->n, i);
}

static bool smuggled(const struct observed *o)
{
    for (int i = 0; i < o->n; i++)
        if (strstr(o->line[i], "/smuggled"))
            return true;
    return false;
}

static enum expect default_expect(const char *name, const char *raw)
{
    char key[96], m[256], p[1024], l[256], host[8];

    if (strncmp(name, "smuggler/", 9) == 0)
        return NOT_SMUGGLED;
    if (!strstr(name, "valid/") && !strstr(name, "/valid-"))
        return REJECTED;
    if (strstr(name, "invalid"))
        return REJECTED;
    /* Gunicorn serves HTTP/1.1 without Host; RFC 9112 3.2 says 400. */
    if (gunicorn_valid_key(name, key, sizeof(key)) && expected_row(key, m, p, l, host) &&
        host[0] == 'n' && strncmp(raw + strcspn(raw, "\r\n") - 8, "HTTP/1.1", 8) == 0 &&
        strstr(name, "+host") == NULL)
        return REJECTED;
    return SERVED;
}

static void one_case(const char *path, void *arg)
{
    struct tally *t = arg;
    char name[200], fail[400] = "";
    size_t len;
    char *raw = httpfile_load(path, &len);
    const struct deviation *dev;
    enum expect want;
    int status = 0, last;
    struct observed o;

    ck_assert_msg(raw != NULL, "cannot read %s", path);
    case_name(path, name, sizeof(name));
    dev = deviation_of(name);
    want = dev ? dev->outcome : default_expect(name, raw);
    status = dev ? dev->status : 0;
    observe(t->port, raw, len, &o);
    last = o.n ? o.status[o.n - 1] : 0;
    if (o.why[0])
        snprintf(fail, sizeof(fail), "%s", o.why);
    else if (want == SERVED)
        check_served(name, &o, fail, sizeof(fail));
    else if (want == REJECTED && (last < 400 || (status && last != status)))
        snprintf(fail, sizeof(fail), "%d responses, last status %d, want %d", o.n, last,
                 status ? status : 400);
    else if (want == INCOMPLETE && o.n != 0)
        snprintf(fail, sizeof(fail), "%d responses to an incomplete request", o.n);
    else if (want == NOT_SMUGGLED &&
             (smuggled(&o) || (o.n && last >= 400 && last != 400 && last != 501)))
        snprintf(fail, sizeof(fail), "smuggled or odd: %d responses, last %d \"%s\"", o.n,
                 last, o.n ? o.line[o.n - 1] : "");
    t->cases++;
    t->served += last == 200;
    t->rejected += last >= 400;
    t->incomplete += o.n == 0;
    if (fail[0]) {
        t->failures++;
        printf("FAIL %s: %s\n    request: %s\n", name, fail,
               harness_printable(raw, len, 300));
        fflush(stdout);
    }
    free(raw);
}

static void run_corpus(const char *dir, int min_cases)
{
    struct hdaemon *d;
    char *echo = load_module_path("PREFORKD_APPS", "echo");
    char *root = harness_path("PREFORKD_SRC", dir);
    struct tally t = {0};
    struct hresp r;
    int n;

    d = harness_start(echo, 1, "header_timeout = 5s\nmax_body_size = 64k\n");
    t.port = d->port;
    n = httpfile_each(root, one_case, &t);
    ck_assert_msg(n >= min_cases, "%s: %d cases, want at least %d", root, n, min_cases);
    printf("%s: %d cases, %d served, %d rejected, %d without a response, %d failed\n",
           dir, t.cases, t.served, t.rejected, t.incomplete, t.failures);
    fflush(stdout);
    ck_assert_msg(t.failures == 0, "%s: %d of %d cases failed (listed above)", dir,
                  t.failures, t.cases);
    /* Still serving, and no worker was lost on the way. */
    harness_roundtrip(d->port, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    hresp_free(&r);
    ck_assert_int_eq(harness_log_count(d, "worker [0-9]+ spawned"), 1);
    harness_daemon_stop(d, SIGTERM, 10);
    free(root);
    free(echo);
}

START_TEST(gunicorn_valid)
{
    run_corpus("tests/conformance/gunicorn/valid", 60);
}
END_TEST

START_TEST(gunicorn_invalid)
{
    run_corpus("tests/conformance/gunicorn/invalid", 70);
}
END_TEST

START_TEST(gunicorn_host)
{
    run_corpus("tests/conformance/gunicorn-host", 50);
}
END_TEST

START_TEST(smuggler)
{
    run_corpus("tests/conformance/smuggler", 240);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conformance");
    TCase *tc = harness_tcase(s, "corpus", 120);

    tcase_add_test(tc, gunicorn_valid);
    tcase_add_test(tc, gunicorn_invalid);
    tcase_add_test(tc, gunicorn_host);
    tcase_add_test(tc, smuggler);
    return harness_run_suite(s);
}
