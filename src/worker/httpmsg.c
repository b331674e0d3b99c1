/*
 * httpmsg.c - HTTP/1.x request parsing (http-parser callbacks that record
 * offsets into the connection's buffer, so nothing is copied) and response
 * framing. Runs in workers; owns no sockets and no timers.
 * Returns: httpmsg_feed reports problems as HTTP status codes in hp->error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "httpmsg.h"
#include "httpcheck.h"
#include "log.h"

static struct httpmsg_parse *hp_of(http_parser *p)
{
    return p->data;
}

static int fail(struct httpmsg_parse *hp, int status, const char *why)
{
    hp->error = status;
    hp->why = why;
    return -1;
}

static int on_message_begin(http_parser *p)
{
    struct httpmsg_parse *hp = hp_of(p);
    struct httpmsg_hdr *keep = hp->req.hdrs;
    uint32_t cap = hp->req.hdr_cap;

    memset(&hp->req, 0, sizeof(hp->req));
    hp->req.hdrs = keep;
    hp->req.hdr_cap = cap;
    hp->started = true;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct httpmsg_parse *hp = hp_of(p);
    struct httpmsg_req *rq = &hp->req;
    size_t off = (size_t)(at - hp->base);

    if (rq->url_len == 0)
        rq->url_off = off;
    else if (off != rq->url_off + rq->url_len)
        return fail(hp, 400, "request target split");
    rq->url_len += len;
    if (rq->url_len > hp->lim->max_request_line)
        return fail(hp, 414, "request target too long");
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct httpmsg_parse *hp = hp_of(p);
    struct httpmsg_req *rq = &hp->req;
    size_t off = (size_t)(at - hp->base);
    struct httpmsg_hdr *h;

    if (rq->head_done) /* trailer fields of a chunked body: not kept */
        return 0;
    if (!rq->in_field) {
        if (rq->nhdrs == hp->lim->max_headers)
            return fail(hp, 431, "too many header fields");
        if (rq->nhdrs == rq->hdr_cap) {
            uint32_t cap = rq->hdr_cap ? rq->hdr_cap * 2 : 16;
            h = realloc(rq->hdrs, cap * sizeof(*h));
            if (h == NULL)
                return fail(hp, 500, "out of memory");
            rq->hdrs = h;
            rq->hdr_cap = cap;
        }
        h = &rq->hdrs[rq->nhdrs++];
        memset(h, 0, sizeof(*h));
        h->name_off = (uint32_t)off;
        rq->in_field = true;
    }
    h = &rq->hdrs[rq->nhdrs - 1];
    if (off != (size_t)h->name_off + h->name_len)
        return fail(hp, 400, "header name split");
    h->name_len += (uint32_t)len;
    if (h->name_len > hp->lim->max_header_size)
        return fail(hp, 431, "header field too large");
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct httpmsg_parse *hp = hp_of(p);
    struct httpmsg_req *rq = &hp->req;
    size_t off = (size_t)(at - hp->base);
    struct httpmsg_hdr *h;

    if (rq->head_done)
        return 0;
    h = &rq->hdrs[rq->nhdrs - 1];
    if (rq->in_field) {
        rq->in_field = false;
        h->value_off = (uint32_t)off;
    } else if (off != (size_t)h->value_off + h->value_len) {
        /* Pieces of one value are contiguous in our buffer unless the
         * value was folded over several lines (obs-fold, RFC 9112 5.2). */
        return fail(hp, 400, "obsolete line folding");
    }
    h->value_len += (uint32_t)len;
    if ((uint64_t)h->name_len + h->value_len > hp->lim->max_header_size)
        return fail(hp, 431, "header field too large");
    return 0;
}

static bool value_is(const char *base, const struct httpmsg_hdr *h, const char *want)
{
    size_t n = strlen(want);
    return h->value_len == n && strncasecmp(base + h->value_off, want, n) == 0;
}

static bool name_eq(const char *base, const struct httpmsg_hdr *h, const char *want,
                    size_t n)
{
    return h->name_len == n && strncasecmp(base + h->name_off, want, n) == 0;
}

#define MAX_TE_FIELDS 8

/* The request's framing fields: one Content-Length, or Transfer-Encoding
 * that is exactly "chunked" (RFC 9112 6.1, 6.3; empty list elements
 * ignored), and never both. */
static int check_framing(struct httpmsg_parse *hp, const char *const *te,
                         const size_t *te_len, size_t nte, int ncl)
{
    int st;

    if (nte > 0) {
        if (hp->req.version == 10)
            return fail(hp, 400, "Transfer-Encoding in HTTP/1.0");
        if (ncl > 0)
            return fail(hp, 400, "Content-Length with Transfer-Encoding");
        if (nte > MAX_TE_FIELDS)
            return fail(hp, 400, "too many Transfer-Encoding fields");
        if ((st = httpcheck_transfer_encoding(te, te_len, nte, &hp->why)) != 0)
            return fail(hp, st, hp->why);
        /* The fields name chunked, once and last. http-parser misses it when
         * the list has empty elements (",chunked", "chunked,"), which RFC
         * 9110 5.6.1 says to ignore: tell it, so that the body is read as
         * chunked rather than as the next request. It reads the flag after
         * this callback returns. */
        hp->p.flags |= F_CHUNKED;
        hp->req.chunked = true;
    }
    if (ncl > 1)
        return fail(hp, 400, "duplicate Content-Length");
    /* http-parser stops at the end of a CONNECT head (a tunnel follows), so
     * a body would be parsed as the next request: smuggling. RFC 9110
     * 9.3.6: a CONNECT request has no content. */
    if (hp->p.method == HTTP_CONNECT &&
        (nte > 0 || ((hp->p.flags & F_CONTENTLENGTH) && hp->p.content_length > 0)))
        return fail(hp, 400, "CONNECT with content");
    return 0;
}

/* Checks that need the whole head: its syntax, version, target, Host,
 * framing, Expect, body size. */
static int on_headers_complete(http_parser *p)
{
    struct httpmsg_parse *hp = hp_of(p);
    struct httpmsg_req *rq = &hp->req;
    const char *te[MAX_TE_FIELDS + 1];
    size_t te_len[MAX_TE_FIELDS + 1], nte = 0, head_len;
    int hosts = 0, ncl = 0, st;

    st = httpcheck_head(hp->base + hp->head_off, hp->end - hp->head_off, &head_len,
                        &hp->why);
    if (st != 0)
        return fail(hp, st, hp->why);
    rq->frame_pos = hp->head_off + head_len;
    if (p->http_major != 1)
        return fail(hp, 505, "HTTP version not supported");
    rq->version = (uint8_t)(10 + (p->http_minor >= 1));
    rq->method = (uint8_t)p->method;
    rq->in_field = false;
    st = httpcheck_target(p->method, hp->base + rq->url_off, rq->url_len, &hp->why);
    if (st != 0)
        return fail(hp, st, hp->why);
    for (uint32_t i = 0; i < rq->nhdrs; i++) {
        struct httpmsg_hdr *h = &rq->hdrs[i];
        const char *value = hp->base + h->value_off;

        /* http-parser keeps trailing white space of a value: drop it. */
        while (h->value_len > 0 &&
               (value[h->value_len - 1] == ' ' || value[h->value_len - 1] == '\t'))
            h->value_len--;
        if (name_eq(hp->base, h, "host", 4)) {
            hosts++;
            if ((st = httpcheck_host(value, h->value_len, &hp->why)) != 0)
                return fail(hp, st, hp->why);
        } else if (name_eq(hp->base, h, "content-length", 14)) {
            ncl++;
        } else if (name_eq(hp->base, h, "transfer-encoding", 17)) {
            if (nte <= MAX_TE_FIELDS) {
                te[nte] = value;
                te_len[nte] = h->value_len;
            }
            nte++;
        } else if (name_eq(hp->base, h, "expect", 6)) {
            if (!value_is(hp->base, h, "100-continue"))
                return fail(hp, 417, "unsupported expectation");
            rq->expect_continue = rq->version == 11;
        }
    }
    if (hosts > 1 || (hosts == 0 && rq->version == 11))
        return fail(hp, 400, hosts ? "duplicate Host" : "missing Host");
    if (check_framing(hp, te, te_len, nte, ncl) != 0)
        return -1;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > hp->lim->max_body_size)
        return fail(hp, 413, "declared body too large");
    if (!(p->flags & (F_CONTENTLENGTH | F_CHUNKED)) || p->content_length == 0)
        rq->expect_continue = rq->expect_continue && (p->flags & F_CHUNKED);
    rq->keepalive = http_should_keep_alive(p) != 0;
    rq->head_done = true;
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    hp_of(p)->req.chunk_begins = true;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct httpmsg_parse *hp = hp_of(p);
    struct httpmsg_req *rq = &hp->req;
    size_t off = (size_t)(at - hp->base);

    if (rq->chunk_begins) {
        int st = httpcheck_chunk_line(hp->base + rq->frame_pos, off - rq->frame_pos,
                                      rq->had_data, &hp->why);
        if (st != 0)
            return fail(hp, st, hp->why);
        rq->chunk_begins = false;
        rq->had_data = true;
    }
    rq->frame_pos = off + len;
    if (rq->body_len == 0)
        rq->body_off = off;
    else if (off != rq->body_off + rq->body_len)
        /* Chunked: close the gap left by the chunk-size line. The source
         * lies after the destination and both were parsed already. */
        memmove(hp->base + rq->body_off + rq->body_len, at, len);
    rq->body_len += len;
    if (rq->body_len > hp->lim->max_body_size)
        return fail(hp, 413, "body too large");
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct httpmsg_parse *hp = hp_of(p);

    hp->req.complete = true;
    /* One request at a time: the next one waits until this one is answered
     * (pipelined responses must go out in order). */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};

void httpmsg_parse_init(struct httpmsg_parse *hp, const struct httpmsg_limits *lim)
{
    uint64_t head = (uint64_t)lim->max_request_line + 64 +
                    (uint64_t)lim->max_headers * (lim->max_header_size + 4);

    /* http-parser's own cap on the whole head: no lower than what our
     * finer limits allow, so they decide (and answer 414/431). */
    http_parser_set_max_header_size(head > UINT32_MAX ? UINT32_MAX : (uint32_t)head);
    memset(hp, 0, sizeof(*hp));
    http_parser_init(&hp->p, HTTP_REQUEST);
    hp->p.data = hp;
    hp->lim = lim;
}

void httpmsg_parse_free(struct httpmsg_parse *hp)
{
    free(hp->req.hdrs);
    hp->req.hdrs = NULL;
    hp->req.hdr_cap = 0;
}

static int parser_status(const struct httpmsg_parse *hp)
{
    switch (HTTP_PARSER_ERRNO(&hp->p)) {
    case HPE_HEADER_OVERFLOW: return 431;
    case HPE_INVALID_METHOD: /* a token it does not know: Not Implemented */
        return httpcheck_is_method_token(hp->base + hp->head_off, hp->end - hp->head_off)
                   ? 501
                   : 400;
    default: return 400;
    }
}

size_t httpmsg_feed(struct httpmsg_parse *hp, char *base, size_t off, size_t len)
{
    size_t n;

    hp->base = base;
    hp->end = off + len;
    if (!hp->started)
        hp->head_off = off;
    n = http_parser_execute(&hp->p, &settings, base + off, len);
    switch (HTTP_PARSER_ERRNO(&hp->p)) {
    case HPE_OK:
    case HPE_PAUSED: break;
    default:
        if (hp->error == 0) {
            hp->error = parser_status(hp);
            hp->why = hp->error == 501
                          ? "method not implemented"
                          : http_errno_description(HTTP_PARSER_ERRNO(&hp->p));
        }
        break;
    }
    if (hp->req.complete && hp->req.chunked) {
        /* The last chunk, trailers and the end of the message. */
        int st = httpcheck_chunk_tail(base + hp->req.frame_pos,
                                      off + n - hp->req.frame_pos, hp->req.had_data,
                                      &hp->why);
        if (st != 0) {
            hp->error = st;
            hp->req.complete = false;
        }
    }
    return n;
}

void httpmsg_parse_next(struct httpmsg_parse *hp)
{
    hp->req.complete = false;
    hp->req.head_done = false;
    hp->started = false;
    http_parser_pause(&hp->p, 0);
}

const char *httpmsg_reason(int status)
{
    const char *s = http_status_str((enum http_status)status);

    if (s[0] != '<')
        return s;
    switch (status / 100) {
    case 1: return "Informational";
    case 2: return "OK";
    case 3: return "Redirection";
    case 4: return "Client Error";
    default: return "Server Error";
    }
}

const char *httpmsg_date(time_t now)
{
    static char date[40];
    static time_t cached = -1;
    struct tm tm;

    if (now != cached) {
        gmtime_r(&now, &tm);
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached = now;
    }
    return date;
}

static bool name_is(const pf_str *s, const char *want, size_t n)
{
    return s->len == n && strncasecmp(s->ptr, want, n) == 0;
}

static bool clean(const pf_str *s)
{
    for (size_t i = 0; i < s->len; i++)
        if (s->ptr[i] == '\r' || s->ptr[i] == '\n' || s->ptr[i] == '\0')
            return false;
    return true;
}

int httpmsg_header_content_length(const pf_header *h, size_t n, uint64_t *len)
{
    for (size_t i = 0; i < n; i++) {
        if (!name_is(&h[i].name, "content-length", 14))
            continue;
        uint64_t v = 0;
        if (h[i].value.len == 0 || h[i].value.len > 19)
            return -1;
        for (size_t j = 0; j < h[i].value.len; j++) {
            char c = h[i].value.ptr[j];
            if (c < '0' || c > '9')
                return -1;
            v = v * 10 + (uint64_t)(c - '0');
        }
        *len = v;
        return 1;
    }
    return 0;
}

/* The daemon writes these itself; an app's copy is dropped. */
static bool owned(const pf_str *name, struct httpmsg_resp *r, const pf_str *value)
{
    switch (name->len) {
    case 4: return name_is(name, "date", 4);
    case 6: return name_is(name, "server", 6);
    case 10:
        if (!name_is(name, "connection", 10))
            return false;
        if (value->len == 5 && strncasecmp(value->ptr, "close", 5) == 0)
            r->keepalive = false;
        return true;
    case 14: return name_is(name, "content-length", 14);
    case 17: return name_is(name, "transfer-encoding", 17);
    default: return false;
    }
}

/* Copies n bytes at *w and advances it. */
static void put(char **w, const char *s, size_t n)
{
    memcpy(*w, s, n);
    *w += n;
}

#define PUT_LIT(w, lit) put(w, lit, sizeof(lit) - 1)

/* Decimal text of v, written backwards ending at end; returns its start. */
static char *u64_text(uint64_t v, char *end)
{
    do
        *--end = (char)('0' + v % 10);
    while (v /= 10);
    return end;
}

/* Bytes the framing and Connection lines take at most. */
#define TAIL_MAX 80

/* One reserve and straight copies: this runs once per response. */
int httpmsg_write_head(struct buf *out, struct httpmsg_resp *r, const pf_header *h,
                       size_t n, time_t now)
{
    const char *reason = httpmsg_reason(r->status), *date = httpmsg_date(now);
    size_t rlen = strlen(reason), need = 9 + 4 + rlen + 2 + 18 + 6 + 29 + 2 + TAIL_MAX;
    char digits[24], *d, *w;
    int st = r->status;

    for (size_t i = 0; i < n; i++) {
        if (h[i].name.len == 0 || !clean(&h[i].name) || !clean(&h[i].value))
            return -1;
        need += h[i].name.len + 2 + h[i].value.len + 2;
    }
    w = buf_reserve(out, need);
    PUT_LIT(&w, "HTTP/1.1 ");
    *w++ = (char)('0' + st / 100 % 10);
    *w++ = (char)('0' + st / 10 % 10);
    *w++ = (char)('0' + st % 10);
    *w++ = ' ';
    put(&w, reason, rlen);
    PUT_LIT(&w, "\r\nServer: preforkd\r\nDate: ");
    put(&w, date, strlen(date));
    PUT_LIT(&w, "\r\n");
    for (size_t i = 0; i < n; i++) {
        if (owned(&h[i].name, r, &h[i].value))
            continue;
        put(&w, h[i].name.ptr, h[i].name.len);
        PUT_LIT(&w, ": ");
        put(&w, h[i].value.ptr, h[i].value.len);
        PUT_LIT(&w, "\r\n");
    }
    if (r->framing == FRAME_CHUNKED && r->version < 11)
        r->framing = FRAME_CLOSE;
    if (r->framing == FRAME_CLOSE)
        r->keepalive = false;
    if (r->status == 204 || r->status == 304 || r->status < 200)
        r->framing = FRAME_NONE;
    if (r->framing == FRAME_LENGTH) {
        PUT_LIT(&w, "Content-Length: ");
        d = u64_text(r->content_length, digits + sizeof(digits));
        put(&w, d, (size_t)(digits + sizeof(digits) - d));
        PUT_LIT(&w, "\r\n");
    } else if (r->framing == FRAME_CHUNKED) {
        PUT_LIT(&w, "Transfer-Encoding: chunked\r\n");
    }
    if (!r->keepalive)
        PUT_LIT(&w, "Connection: close\r\n\r\n");
    else if (r->version < 11)
        PUT_LIT(&w, "Connection: keep-alive\r\n\r\n");
    else
        PUT_LIT(&w, "\r\n");
    out->len = (size_t)(w - out->p);
    return 0;
}

void httpmsg_write_chunk(struct buf *out, const void *data, size_t len)
{
    char *w;
    int shift = 60;

    if (len == 0)
        return;
    w = buf_reserve(out, 16 + 2 + len + 2);
    while (shift > 0 && (len >> shift) == 0)
        shift -= 4;
    for (; shift >= 0; shift -= 4)
        *w++ = "0123456789abcdef"[(len >> shift) & 15];
    PUT_LIT(&w, "\r\n");
    put(&w, data, len);
    PUT_LIT(&w, "\r\n");
    out->len = (size_t)(w - out->p);
}

void httpmsg_write_last_chunk(struct buf *out)
{
    buf_append(out, "0\r\n\r\n", 5);
}

size_t httpmsg_write_error(struct buf *out, int status, time_t now)
{
    struct httpmsg_resp r = {
        .status = status,
        .version = 11,
        .framing = FRAME_LENGTH,
    };
    char body[96];
    int k = snprintf(body, sizeof(body), "%d %s\n", status, httpmsg_reason(status));
    static const pf_header ct[] = {
        {{"Content-Type", 12}, {"text/plain", 10}},
    };

    r.content_length = (uint64_t)k;
    httpmsg_write_head(out, &r, ct, 1, now);
    buf_append(out, body, (size_t)k);
    return (size_t)k;
}
