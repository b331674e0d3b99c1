/*
 * request.c - the pf_request half of the app ABI: request accessors, whole
 * and streamed responses, abort and drain callbacks. Runs in workers, on the
 * loop. Responses are appended to the connection's output buffer; conn.c
 * writes them. Returns per preforkd.h: 0 / -1 (1 = wait, for writes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conn_int.h"
#include "log.h"
#include "scoreboard.h"

static time_t now_sec(const struct conn *c)
{
    return (time_t)ev_now(c->srv->loop);
}

/* An absolute-form target ("http://host:8080/a?b", RFC 9112 3.2.2, already
 * checked by httpcheck_target): returns its authority and sets *rest to
 * what follows it (path and query, maybe empty). Any other form: an empty
 * authority, and *rest is the whole target. */
static pf_str absolute_form(pf_str t, int method, pf_str *rest)
{
    const char *sep, *end = t.ptr + t.len, *a;

    *rest = t;
    if (t.len == 0 || t.ptr[0] == '/' || method == HTTP_CONNECT ||
        (sep = memmem(t.ptr, t.len, "://", 3)) == NULL)
        return (pf_str){"", 0};
    a = sep + 3;
    for (sep = a; sep < end && *sep != '/' && *sep != '?'; sep++)
        ;
    *rest = (pf_str){sep, (size_t)(end - sep)};
    /* "user:pass@host": the host is what follows the last '@' (RFC 9110
     * 4.2.4 deprecates userinfo; it never becomes the Host). */
    for (const char *at = sep; at > a; at--)
        if (at[-1] == '@') {
            a = at;
            break;
        }
    return (pf_str){a, (size_t)(sep - a)};
}

void request_prepare(struct conn *c)
{
    struct pf_request *r = &c->req;
    const struct httpmsg_req *rq = &c->hp.req;
    const char *base = c->in.p;
    const char *m = http_method_str((enum http_method)rq->method);
    const char *q;
    pf_str authority, path;

    r->state = REQ_APP;
    r->aborted = false;
    r->head_only = rq->method == HTTP_HEAD;
    r->sent = 0;
    r->bytes = 0;
    r->started = ev_time(); /* not the loop's cached time: $request_time_us */
    r->abort_cb = NULL;
    r->drain_cb = NULL;
    r->method = (pf_str){m, strlen(m)};
    r->target = (pf_str){base + rq->url_off, rq->url_len};
    authority = absolute_form(r->target, rq->method, &path);
    q = memchr(path.ptr, '?', path.len);
    r->path = (pf_str){path.ptr, q ? (size_t)(q - path.ptr) : path.len};
    r->query = q ? (pf_str){q + 1, path.len - r->path.len - 1}
                 : (pf_str){path.ptr + path.len, 0};
    if (authority.len > 0 && r->path.len == 0) /* "http://host", "http://host?q" */
        r->path = (pf_str){"/", 1};
    r->body = (pf_str){rq->body_len ? base + rq->body_off : "", rq->body_len};
    if (rq->nhdrs > r->hdr_cap) {
        pf_header *h = realloc(r->hdrs, rq->nhdrs * sizeof(*h));
        if (h == NULL)
            fatal("request: out of memory for %u headers", rq->nhdrs);
        r->hdrs = h;
        r->hdr_cap = rq->nhdrs;
    }
    r->nhdrs = rq->nhdrs;
    for (uint32_t i = 0; i < rq->nhdrs; i++) {
        const struct httpmsg_hdr *h = &rq->hdrs[i];
        r->hdrs[i].name = (pf_str){base + h->name_off, h->name_len};
        r->hdrs[i].value = (pf_str){base + h->value_off, h->value_len};
        /* RFC 9112 3.2.2: with an absolute-form target, the target's
         * authority is the host, whatever Host says. */
        if (authority.len > 0 && h->name_len == 4 &&
            strncasecmp(r->hdrs[i].name.ptr, "host", 4) == 0)
            r->hdrs[i].value = authority;
    }
    r->resp = (struct httpmsg_resp){
        .status = 200,
        .version = rq->version,
        .keepalive = rq->keepalive && conn_keeps_alive(c->srv) &&
                     c->srv->cfg->server.keepalive_timeout > 0,
        .framing = FRAME_LENGTH,
    };
}

/* Into the worker's slot: which request handle() has, for the master's
 * log line if the loop never comes back from it (heartbeat timeout). */
static void say_in_app(struct slot *s, const struct pf_request *r)
{
    size_t m = r->method.len < 16 ? r->method.len : 16;
    size_t t = r->target.len < sizeof(s->in_app) - m - 1 ? r->target.len
                                                         : sizeof(s->in_app) - m - 1;

    memcpy(s->in_app, r->method.ptr, m);
    s->in_app[m] = ' ';
    memcpy(s->in_app + m + 1, r->target.ptr, t);
    SB_SET(s->in_app_len, (uint32_t)(m + 1 + t));
}

void request_dispatch(struct conn *c)
{
    struct pf_request *r = &c->req;
    struct app *app = c->srv->app;
    struct slot *slot = c->srv->slot;
    int rc;

    r->in_dispatch = true;
    if (slot != NULL)
        say_in_app(slot, r);
    rc = app->api->handle(r, app->state);
    if (slot != NULL)
        SB_SET(slot->in_app_len, 0);
    r->in_dispatch = false;
    if (rc == 0 || r->state == REQ_DONE)
        return;
    if (r->state == REQ_APP) {
        log_warnx("app %s: handle failed for %.*s %.*s: answering 500",
                  app->api->name ? app->api->name : "?", (int)r->method.len,
                  r->method.ptr, (int)r->target.len, r->target.ptr);
        pf_respond(r, 500, NULL, 0, "500 Internal Server Error\n", 26);
        return;
    }
    /* Failed in the middle of a streamed body: the framing cannot be
     * finished honestly, so the client must see the connection close. */
    pf_response_abort(r);
}

void request_abort(struct conn *c)
{
    struct pf_request *r = &c->req;

    r->aborted = true;
    if (r->state != REQ_APP && r->state != REQ_STREAMING)
        return; /* ended meanwhile */
    if (r->abort_cb != NULL) {
        void (*cb)(pf_request *, void *) = r->abort_cb;
        r->abort_cb = NULL;
        cb(r, r->abort_arg);
    }
}

/* Ends r in every path: orphaned requests free their connection; the
 * connection of a request that timed out is closing by itself (its 504
 * was the response); any other goes on. */
static void finish(struct pf_request *r)
{
    struct conn *c = r->c;

    r->state = REQ_DONE;
    if (c->state == CONN_ORPHAN)
        conn_release_orphan(c);
    else if (!r->aborted)
        conn_response_done(c);
}

/* Queues a whole response (head and body) as r's. 0, or -1 for a bad
 * header (nothing queued). */
static int queue_whole(struct pf_request *r, int status, const pf_header *headers,
                       size_t nheaders, const void *body, size_t len)
{
    struct conn *c = r->c;
    size_t before = c->out.len;

    r->resp.status = status;
    r->resp.framing = FRAME_LENGTH;
    r->resp.content_length = len;
    if (httpmsg_write_head(&c->out, &r->resp, headers, nheaders, now_sec(c)) < 0)
        return -1;
    if (!r->head_only && r->resp.framing == FRAME_LENGTH)
        buf_append(&c->out, body, len);
    r->bytes += c->out.len - before;
    r->sent = len; /* the body's bytes, for the access log */
    return 0;
}

void request_write_timeout(struct conn *c)
{
    static const pf_header text[] = {
        {{"Content-Type", 12}, {"text/plain", 10}},
    };
    char body[64];
    int n = snprintf(body, sizeof(body), "504 %s\n", httpmsg_reason(504));

    c->req.resp.keepalive = false;
    queue_whole(&c->req, 504, text, 1, body, (size_t)n);
}

int pf_respond(pf_request *r, int status, const pf_header *headers, size_t nheaders,
               const void *body, size_t len)
{
    if (r->state != REQ_APP || status < 200 || status > 999)
        return -1;
    if (r->aborted) {
        finish(r);
        return -1;
    }
    if (queue_whole(r, status, headers, nheaders, body, len) < 0)
        return -1;
    finish(r);
    return 0;
}

int pf_response_start(pf_request *r, int status, const pf_header *headers,
                      size_t nheaders)
{
    struct conn *c = r->c;
    uint64_t len = 0;
    int has_len;

    if (r->state != REQ_APP || status < 200 || status > 999)
        return -1;
    if (r->aborted) {
        r->state = REQ_STREAMING;
        return -1;
    }
    has_len = httpmsg_header_content_length(headers, nheaders, &len);
    if (has_len < 0)
        return -1;
    r->resp.status = status;
    r->resp.framing = has_len ? FRAME_LENGTH : FRAME_CHUNKED;
    r->resp.content_length = len;
    size_t before = c->out.len;
    if (httpmsg_write_head(&c->out, &r->resp, headers, nheaders, now_sec(c)) < 0)
        return -1;
    r->bytes += c->out.len - before;
    if (!r->resp.keepalive)
        conn_close_after(c);
    r->state = REQ_STREAMING;
    conn_app_active(c);
    if (!r->in_dispatch)
        conn_kick(c);
    return 0;
}

int pf_response_write(pf_request *r, const void *data, size_t len)
{
    struct conn *c = r->c;

    if (r->state != REQ_STREAMING || r->aborted)
        return -1;
    if (r->resp.framing == FRAME_LENGTH && r->sent + len > r->resp.content_length) {
        log_warnx("app: response body longer than its Content-Length %llu",
                  (unsigned long long)r->resp.content_length);
        return -1;
    }
    r->sent += len;
    conn_app_active(c);
    if (r->head_only || r->resp.framing == FRAME_NONE || len == 0)
        return 0;
    size_t before = c->out.len;
    if (r->resp.framing == FRAME_CHUNKED)
        httpmsg_write_chunk(&c->out, data, len);
    else
        buf_append(&c->out, data, len);
    r->bytes += c->out.len - before;
    if (!r->in_dispatch)
        conn_kick(c); /* may close c's socket (then an orphan: still valid) */
    if (c->state == CONN_ORPHAN)
        return -1;
    return conn_pending(c) >= CONN_HIGH_WATER ? 1 : 0;
}

void pf_response_on_drain(pf_request *r, void (*cb)(pf_request *, void *), void *arg)
{
    r->drain_cb = cb;
    r->drain_arg = arg;
}

int pf_response_end(pf_request *r)
{
    struct conn *c = r->c;

    if (r->state != REQ_STREAMING)
        return -1;
    if (!r->aborted) {
        if (r->resp.framing == FRAME_CHUNKED && !r->head_only) {
            httpmsg_write_last_chunk(&c->out);
            r->bytes += 5;
        } else if (r->resp.framing == FRAME_LENGTH && !r->head_only &&
                   r->sent != r->resp.content_length)
            /* Short body: only closing tells the client it is cut. */
            conn_close_after(c);
        if (r->resp.framing == FRAME_CLOSE)
            conn_close_after(c);
    }
    finish(r);
    return 0;
}

int pf_response_abort(pf_request *r)
{
    if (r->state != REQ_STREAMING)
        return -1;
    /* No last chunk, no padding: only the close tells the client. */
    conn_close_after(r->c);
    r->resp.keepalive = false;
    finish(r);
    return 0;
}

void pf_request_on_abort(pf_request *r, void (*cb)(pf_request *, void *), void *arg)
{
    r->abort_cb = cb;
    r->abort_arg = arg;
}

pf_str pf_request_method(const pf_request *r)
{
    return r->method;
}
pf_str pf_request_target(const pf_request *r)
{
    return r->target;
}
pf_str pf_request_path(const pf_request *r)
{
    return r->path;
}
pf_str pf_request_query(const pf_request *r)
{
    return r->query;
}
pf_str pf_request_body(const pf_request *r)
{
    return r->body;
}
int pf_request_version(const pf_request *r)
{
    return r->resp.version;
}
size_t pf_request_header_count(const pf_request *r)
{
    return r->nhdrs;
}
const char *pf_request_peer(const pf_request *r)
{
    return r->c->peer;
}
int pf_request_peer_port(const pf_request *r)
{
    return r->c->peer_port;
}

const char *pf_request_local(const pf_request *r, int *port)
{
    return conn_local(r->c, port);
}

const pf_header *pf_request_header_at(const pf_request *r, size_t i)
{
    return i < r->nhdrs ? &r->hdrs[i] : NULL;
}

pf_str pf_request_header(const pf_request *r, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < r->nhdrs; i++)
        if (r->hdrs[i].name.len == n && strncasecmp(r->hdrs[i].name.ptr, name, n) == 0)
            return r->hdrs[i].value;
    return (pf_str){NULL, 0};
}
