/*
 * proxy.c - built-in app `proxy`: a reverse proxy to an [upstream NAME]
 * through the worker's keep-alive pool. Forwards the method, the target,
 * the end-to-end headers and the body (re-framed with Content-Length);
 * drops hop-by-hop headers both ways (RFC 9110 7.6.1); adds
 * X-Forwarded-For, -Proto and -Host; streams the response back with
 * back-pressure; answers 502, 503 or 504 itself when the upstream fails
 * before its head, and cuts the response when it fails after.
 * [app] keys: upstream (required), trust_forwarded (default false).
 * Runs in workers; owns one struct px per request, freed when it ends.
 */
#include <ev.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <preforkd.h>

#define LIT(s) s, sizeof(s) - 1
#define MAX_CONN_TOKENS 32 /* header names listed in Connection */

struct proxy {
    char *upstream;  /* [app] upstream */
    bool trust;      /* [app] trust_forwarded */
    pf_upstream *up; /* this worker's pool, from worker_init */
};

/* One proxied request. */
struct px {
    ev_timer later; /* first: ends r after a client abort */
    pf_request *r;
    pf_upstream_req *u;
    bool started; /* the response head went to the client */
    bool aborted; /* the client went away */
};

/* Names listed in Connection headers: hop-by-hop as well. */
struct conn_tokens {
    pf_str tok[MAX_CONN_TOKENS];
    size_t n;
};

static const pf_header text_plain[] = {
    {{LIT("Content-Type")}, {LIT("text/plain")}},
};

static bool name_is(pf_str s, const char *lit, size_t n)
{
    return s.len == n && strncasecmp(s.ptr, lit, n) == 0;
}

/* Adds the comma-separated tokens of a Connection header's value. */
static void add_tokens(struct conn_tokens *ct, const pf_header *h)
{
    const char *p = h->value.ptr, *end = p + h->value.len;

    if (!name_is(h->name, LIT("connection")))
        return;
    while (p < end && ct->n < MAX_CONN_TOKENS) {
        const char *t;

        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        t = p;
        while (p < end && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        if (p > t)
            ct->tok[ct->n++] = (pf_str){t, (size_t)(p - t)};
    }
}

/* RFC 9110 7.6.1, plus what Connection names. Content-Length goes too: the
 * daemon frames both sides itself. */
static bool hop_by_hop(pf_str name, const struct conn_tokens *ct)
{
    if (name_is(name, LIT("connection")) || name_is(name, LIT("keep-alive")) ||
        name_is(name, LIT("te")) || name_is(name, LIT("trailer")) ||
        name_is(name, LIT("transfer-encoding")) || name_is(name, LIT("upgrade")) ||
        name_is(name, LIT("content-length")) ||
        (name.len >= 6 && strncasecmp(name.ptr, "proxy-", 6) == 0))
        return true;
    for (size_t i = 0; i < ct->n; i++)
        if (name.len == ct->tok[i].len &&
            strncasecmp(name.ptr, ct->tok[i].ptr, name.len) == 0)
            return true;
    return false;
}

/* ---- the response -------------------------------------------------------- */

static void px_respond_error(struct px *x, int status, const char *body)
{
    pf_respond(x->r, status, text_plain, 1, body, strlen(body));
    free(x);
}

static void on_head(pf_upstream_req *u, void *arg, int status, const pf_header *h,
                    size_t n)
{
    struct px *x = arg;
    struct conn_tokens ct;
    pf_header *out = malloc((n ? n : 1) * sizeof(*out));
    size_t m = 0;
    const pf_str *cl = NULL;
    int rc;

    if (out == NULL) {
        pf_upstream_cancel(u);
        px_respond_error(x, 502, "502 Bad Gateway\n");
        return;
    }
    ct.n = 0;
    for (size_t i = 0; i < n; i++)
        add_tokens(&ct, &h[i]);
    for (size_t i = 0; i < n; i++) {
        if (name_is(h[i].name, LIT("content-length")))
            cl = &h[i].value;
        if (!hop_by_hop(h[i].name, &ct))
            out[m++] = h[i];
    }
    /* The upstream's length frames our response too (http-parser checked
     * it); without one the daemon sends the body chunked. */
    if (cl != NULL)
        out[m++] = (pf_header){{LIT("Content-Length")}, *cl};
    rc = pf_response_start(x->r, status, out, m);
    free(out);
    x->started = rc == 0 || x->aborted;
    if (x->aborted || rc == 0)
        return; /* on an abort, on_abort cancelled u and ends r later */
    pf_upstream_cancel(u);
    /* -1 and still in our hands: either the client has just gone (the
     * start counted as done and on_abort is yet to come, unless the
     * request ends first, as it does here), or the head was refused. */
    if (pf_response_abort(x->r) == 0) {
        free(x);
        return;
    }
    pf_log(PF_LOG_WARN, "proxy: upstream response head cannot be forwarded");
    px_respond_error(x, 502, "502 Bad Gateway\n");
}

static void on_drain(pf_request *r, void *arg)
{
    struct px *x = arg;

    pf_upstream_resume(x->u);
}

static void on_body(pf_upstream_req *u, void *arg, const void *data, size_t len)
{
    struct px *x = arg;
    int rc = pf_response_write(x->r, data, len);

    if (rc == 1) { /* the client's buffer is full: wait for it */
        pf_upstream_pause(u);
        pf_response_on_drain(x->r, on_drain, x);
    } else if (rc < 0 && !x->aborted) {
        pf_upstream_cancel(u);
        pf_response_abort(x->r);
        free(x);
    }
}

static void on_done(pf_upstream_req *u, void *arg, int error)
{
    struct px *x = arg;
    pf_str t = pf_request_target(x->r);

    x->u = NULL;
    if (error == PF_UPSTREAM_OK) {
        pf_response_end(x->r);
        free(x);
        return;
    }
    /* The pool has logged the cause (rate-limited); this is per request. */
    pf_log(PF_LOG_DEBUG, "proxy: %.*s: upstream: %s%s", (int)t.len, t.ptr,
           pf_upstream_strerror(error), x->started ? " (response cut)" : "");
    if (x->started) {
        pf_response_abort(x->r); /* the client sees the close */
        free(x);
    } else if (error == PF_UPSTREAM_ETIMEOUT) {
        px_respond_error(x, 504, "504 Gateway Timeout\n");
    } else if (error == PF_UPSTREAM_EBUSY) {
        px_respond_error(x, 503, "503 Service Unavailable\n");
    } else {
        px_respond_error(x, 502, "502 Bad Gateway\n");
    }
}

static const pf_upstream_callbacks callbacks = {
    .on_head = on_head,
    .on_body = on_body,
    .on_done = on_done,
};

/* ---- client aborts --------------------------------------------------------- */

static void on_later(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct px *x = (struct px *)w;

    /* Only frees r: the client is gone. */
    if (pf_response_end(x->r) < 0)
        pf_respond(x->r, 502, NULL, 0, NULL, 0);
    free(x);
}

/* The client went away: drop the upstream request (its connection is
 * closed, not pooled) and end r from the loop, never from inside the
 * daemon's call that noticed the abort. */
static void on_abort(pf_request *r, void *arg)
{
    struct px *x = arg;

    x->aborted = true;
    pf_upstream_cancel(x->u);
    x->u = NULL;
    ev_timer_init(&x->later, on_later, 0., 0.);
    ev_timer_start(pf_loop(), &x->later);
}

/* ---- the request ----------------------------------------------------------- */

/* "a, b" + ", " + peer, or just peer: malloc'd. */
static char *forwarded_for(pf_request *r, bool trust)
{
    const char *peer = pf_request_peer(r);
    size_t n = pf_request_header_count(r), len = strlen(peer) + 1;
    char *s, *p;

    for (size_t i = 0; trust && i < n; i++) {
        const pf_header *h = pf_request_header_at(r, i);
        if (name_is(h->name, LIT("x-forwarded-for")))
            len += h->value.len + 2;
    }
    s = p = malloc(len);
    if (s == NULL)
        return NULL;
    for (size_t i = 0; trust && i < n; i++) {
        const pf_header *h = pf_request_header_at(r, i);
        if (!name_is(h->name, LIT("x-forwarded-for")) || h->value.len == 0)
            continue;
        memcpy(p, h->value.ptr, h->value.len);
        p += h->value.len;
        *p++ = ',';
        *p++ = ' ';
    }
    strcpy(p, peer);
    return s;
}

/* The headers to send: the client's end-to-end ones, then X-Forwarded-*.
 * Incoming X-Forwarded-* are kept (trusted) or replaced. */
static size_t upstream_headers(pf_request *r, const struct proxy *p, pf_header *out,
                               const char *xff)
{
    size_t n = pf_request_header_count(r), m = 0;
    pf_str host = pf_request_header(r, "Host");
    bool has_proto = false, has_host = false;
    struct conn_tokens ct;

    ct.n = 0;
    for (size_t i = 0; i < n; i++)
        add_tokens(&ct, pf_request_header_at(r, i));
    for (size_t i = 0; i < n; i++) {
        const pf_header *h = pf_request_header_at(r, i);

        if (hop_by_hop(h->name, &ct) || name_is(h->name, LIT("expect")) ||
            name_is(h->name, LIT("x-forwarded-for")))
            continue;
        if (name_is(h->name, LIT("x-forwarded-proto"))) {
            if (!p->trust)
                continue;
            has_proto = true;
        }
        if (name_is(h->name, LIT("x-forwarded-host"))) {
            if (!p->trust)
                continue;
            has_host = true;
        }
        out[m++] = *h;
    }
    out[m++] = (pf_header){{LIT("X-Forwarded-For")}, {xff, strlen(xff)}};
    if (!has_proto)
        out[m++] = (pf_header){{LIT("X-Forwarded-Proto")}, {LIT("http")}};
    if (!has_host && host.ptr != NULL)
        out[m++] = (pf_header){{LIT("X-Forwarded-Host")}, host};
    return m;
}

/* The target to send upstream: as received, except that an absolute-form
 * target ("http://host/a?b", as a client configured for a proxy sends)
 * becomes the origin form "/a?b" (RFC 9112 3.2.1). Its host reaches the
 * upstream as Host: the daemon presents the target's authority as the
 * request's Host (3.2.2). When the path is empty, "/" is put before the
 * query in *buf, malloc'd (the caller frees it). */
static pf_str origin_form(pf_request *r, char **buf)
{
    pf_str t = pf_request_target(r), path = pf_request_path(r), q = pf_request_query(r);

    if (t.len == 0 || t.ptr[0] == '/' || (t.len == 1 && t.ptr[0] == '*') ||
        name_is(pf_request_method(r), LIT("CONNECT")))
        return t;
    if (path.ptr >= t.ptr && path.ptr < t.ptr + t.len) /* in the target */
        return (pf_str){path.ptr, (size_t)(t.ptr + t.len - path.ptr)};
    /* "http://host?q": the path was empty. */
    if (asprintf(buf, "/%s%.*s", q.ptr > t.ptr && q.ptr[-1] == '?' ? "?" : "", (int)q.len,
                 q.ptr) < 0) {
        *buf = NULL;
        return (pf_str){"/", 1};
    }
    return (pf_str){*buf, strlen(*buf)};
}

static int proxy_handle(pf_request *r, void *state)
{
    const struct proxy *p = state;
    pf_str body = pf_request_body(r);
    struct px *x = calloc(1, sizeof(*x));
    pf_header *h = malloc((pf_request_header_count(r) + 3) * sizeof(*h));
    char *xff = forwarded_for(r, p->trust), *origin[1] = {NULL};

    if (x == NULL || h == NULL || xff == NULL) {
        free(x);
        free(h);
        free(xff);
        return -1; /* the daemon answers 500 */
    }
    x->r = r;
    x->u = pf_upstream_request(p->up, pf_request_method(r), origin_form(r, origin), h,
                               upstream_headers(r, p, h, xff), body.ptr, body.len,
                               &callbacks, x);
    free(h);
    free(xff);
    free(origin[0]);
    if (x->u != NULL) {
        pf_request_on_abort(r, on_abort, x);
        return 0;
    }
    if (name_is(pf_request_method(r), LIT("CONNECT"))) {
        px_respond_error(x, 501, "501 Not Implemented\n");
        return 0;
    }
    pf_log(PF_LOG_WARN, "proxy: request cannot be forwarded as is");
    px_respond_error(x, 502, "502 Bad Gateway\n");
    return 0;
}

/* ---- life cycle ------------------------------------------------------------- */

static int parse_bool(const char *v, bool *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = true, 0;
        if (strcasecmp(v, no[i]) == 0)
            return *out = false, 0;
    }
    return -1;
}

static int proxy_load(const pf_app_config *cfg, void **state)
{
    const char *name = pf_config_get(cfg, "upstream");
    const char *trust = pf_config_get(cfg, "trust_forwarded");
    struct proxy *p;
    bool t = false;

    if (name == NULL || *name == '\0')
        return pf_config_error(cfg, "upstream",
                               "required: the NAME of an "
                               "[upstream NAME] section to forward to");
    if (!pf_config_has_upstream(cfg, name))
        return pf_config_error(cfg, "upstream",
                               "there is no [upstream %s] "
                               "section",
                               name);
    if (trust != NULL && parse_bool(trust, &t) < 0)
        return pf_config_error(cfg, "trust_forwarded",
                               "expected true or "
                               "false, got \"%s\"",
                               trust);
    p = calloc(1, sizeof(*p));
    if (p == NULL || (p->upstream = strdup(name)) == NULL) {
        free(p);
        return -1;
    }
    p->trust = t;
    *state = p;
    return 0;
}

static int proxy_worker_init(void *state)
{
    struct proxy *p = state;

    p->up = pf_upstream_find(p->upstream);
    if (p->up != NULL)
        return 0;
    pf_log(PF_LOG_ERROR,
           "proxy: [app] upstream = %s: there is no [upstream "
           "%s] section",
           p->upstream, p->upstream);
    return -1;
}

static void proxy_unload(void *state)
{
    struct proxy *p = state;

    if (p != NULL)
        free(p->upstream);
    free(p);
}

PF_APP_DEFINE(.name = "proxy",
              .description = "reverse proxy to an [upstream NAME] through "
                             "the worker's keep-alive pool",
              .load = proxy_load, .worker_init = proxy_worker_init,
              .handle = proxy_handle, .unload = proxy_unload);
