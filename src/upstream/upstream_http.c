/*
 * upstream_http.c - the HTTP/1.1 client side of an upstream exchange, with
 * no sockets and no clock: frames requests (validated, Content-Length for
 * a body, never ambiguous) and parses responses with http-parser in
 * HTTP_RESPONSE mode (Content-Length, chunked, close-delimited; no body for
 * HEAD, 1xx, 204, 304). Runs in workers. Owns each response's copied head.
 * Convention: 0 / -1; parse errors leave a reason in ps->why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "upstream_int.h"

#define STR(lit) lit, sizeof(lit) - 1

/* ---- request framing ----------------------------------------------------- */

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool is_token(pf_str s)
{
    if (s.len == 0 || s.ptr == NULL)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!is_tchar((unsigned char)s.ptr[i]))
            return false;
    return true;
}

/* A header value: no CR, LF or NUL (the rest is the upstream's business). */
static bool is_value(pf_str s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] == '\r' || s.ptr[i] == '\n' || s.ptr[i] == '\0')
            return false;
    return true;
}

/* A request target: visible characters only. */
static bool is_target(pf_str s)
{
    if (s.len == 0 || s.ptr == NULL)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if ((unsigned char)s.ptr[i] <= ' ' || s.ptr[i] == 0x7f)
            return false;
    return true;
}

static bool str_is(pf_str s, const char *lit, size_t n)
{
    return s.len == n && strncasecmp(s.ptr, lit, n) == 0;
}

/* Headers the daemon writes itself on the upstream side. */
static bool owned_header(pf_str name)
{
    return str_is(name, STR("connection")) || str_is(name, STR("keep-alive")) ||
           str_is(name, STR("content-length")) || str_is(name, STR("transfer-encoding"));
}

/* See upstream_int.h (RFC 9110 9.2.2). */
bool upstream_http_idempotent(pf_str m)
{
    return str_is(m, STR("GET")) || str_is(m, STR("HEAD")) || str_is(m, STR("PUT")) ||
           str_is(m, STR("DELETE")) || str_is(m, STR("OPTIONS")) ||
           str_is(m, STR("TRACE"));
}

/* Methods whose requests have no body by convention: Content-Length: 0
 * is left out for them (RFC 9110 8.6). */
static bool bodiless_method(pf_str m)
{
    return str_is(m, STR("GET")) || str_is(m, STR("HEAD")) || str_is(m, STR("DELETE")) ||
           str_is(m, STR("OPTIONS")) || str_is(m, STR("TRACE"));
}

static bool valid_request(pf_str method, pf_str target, const pf_header *h, size_t n)
{
    if (!is_token(method) || str_is(method, STR("CONNECT")) || !is_target(target))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_token(h[i].name) || !is_value(h[i].value))
            return false;
    return true;
}

static void put_header(struct buf *out, pf_str name, pf_str value)
{
    buf_append(out, name.ptr, name.len);
    buf_append(out, ": ", 2);
    if (value.len > 0)
        buf_append(out, value.ptr, value.len);
    buf_append(out, "\r\n", 2);
}

/* See upstream_int.h. The final CRLF is left to the sender, which adds
 * "Connection: close" before it on a connection's last request. */
int upstream_http_request(struct buf *out, size_t *head_len, pf_str method, pf_str target,
                          const pf_header *h, size_t n, const void *body, size_t len,
                          const char *host)
{
    bool has_host = false;
    char line[48];

    if (!valid_request(method, target, h, n) || (len > 0 && body == NULL))
        return -1;
    buf_append(out, method.ptr, method.len);
    buf_append(out, " ", 1);
    buf_append(out, target.ptr, target.len);
    buf_puts(out, " HTTP/1.1\r\n");
    for (size_t i = 0; i < n; i++) {
        if (owned_header(h[i].name))
            continue;
        has_host = has_host || str_is(h[i].name, STR("host"));
        put_header(out, h[i].name, h[i].value);
    }
    if (!has_host)
        put_header(out, (pf_str){STR("Host")}, (pf_str){host, strlen(host)});
    if (len > 0 || !bodiless_method(method)) {
        snprintf(line, sizeof(line), "Content-Length: %zu\r\n", len);
        buf_puts(out, line);
    }
    *head_len = out->len;
    if (len > 0)
        buf_append(out, body, len);
    return 0;
}

/* ---- response parsing ---------------------------------------------------- */

static struct ups_parse *ps_of(http_parser *p)
{
    return p->data;
}

static int fail(struct ups_parse *ps, const char *why)
{
    ps->why = why;
    return -1;
}

static int on_message_begin(http_parser *p)
{
    struct ups_parse *ps = ps_of(p);

    ps->head.len = 0;
    ps->nhdrs = 0;
    ps->in_field = false;
    return 0;
}

/* Header pieces are appended to ps->head; a piece continues the current
 * name or value when the last callback was of the same kind. */
static int header_piece(struct ups_parse *ps, const char *at, size_t len, bool field)
{
    struct ups_hdr *h;

    if (ps->head.len + len > UPS_HEAD_MAX)
        return fail(ps, "response head too large");
    if (field && !ps->in_field) {
        if (ps->nhdrs == UPS_HEADERS_MAX)
            return fail(ps, "too many response header fields");
        if (ps->nhdrs == ps->hdr_cap) {
            uint32_t cap = ps->hdr_cap ? ps->hdr_cap * 2 : 16;
            h = realloc(ps->hdrs, cap * sizeof(*h));
            if (h == NULL)
                return fail(ps, "out of memory");
            ps->hdrs = h;
            ps->hdr_cap = cap;
        }
        ps->hdrs[ps->nhdrs++] = (struct ups_hdr){
            .name_off = (uint32_t)ps->head.len,
            .value_off = (uint32_t)ps->head.len,
        };
    }
    h = &ps->hdrs[ps->nhdrs - 1];
    if (!field && ps->in_field)
        h->value_off = (uint32_t)ps->head.len;
    buf_append(&ps->head, at, len);
    if (field)
        h->name_len += (uint32_t)len;
    else
        h->value_len += (uint32_t)len;
    ps->in_field = field;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    return header_piece(ps_of(p), at, len, true);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct ups_parse *ps = ps_of(p);

    if (ps->nhdrs == 0)
        return fail(ps, "header value without a name");
    return header_piece(ps, at, len, false);
}

/* The head as pf_headers (values without trailing white space), pointing
 * into ps->head, which does not move again for this response. */
static int build_view(struct ups_parse *ps)
{
    pf_header *v = realloc(ps->view, (ps->nhdrs ? ps->nhdrs : 1) * sizeof(*v));

    if (v == NULL)
        return fail(ps, "out of memory");
    ps->view = v;
    for (uint32_t i = 0; i < ps->nhdrs; i++) {
        const struct ups_hdr *h = &ps->hdrs[i];
        const char *val = ps->head.p + h->value_off;
        size_t n = h->value_len;

        while (n > 0 && (val[n - 1] == ' ' || val[n - 1] == '\t'))
            n--;
        v[i].name = (pf_str){ps->head.p + h->name_off, h->name_len};
        v[i].value = (pf_str){val, n};
    }
    return 0;
}

/* Returns 1 (no body) for HEAD, 1xx, 204 and 304: http-parser would read a
 * body after a 304 that carries the resource's Content-Length. */
static int on_headers_complete(http_parser *p)
{
    struct ups_parse *ps = ps_of(p);
    int status = (int)p->status_code;

    if (p->http_major != 1)
        return fail(ps, "not an HTTP/1.x response");
    if (status == 101 || p->upgrade)
        return fail(ps, "unrequested protocol switch");
    if (status < 100 || status > 999)
        return fail(ps, "bad status code");
    ps->status = status;
    if (status < 200) /* interim: dropped, the final head follows */
        return 1;
    if (build_view(ps) < 0)
        return -1;
    ps->head_done = true;
    ps->ev->on_head(ps->arg, status, ps->view, ps->nhdrs);
    return ps->head_only || status == 204 || status == 304 ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct ups_parse *ps = ps_of(p);

    ps->ev->on_body(ps->arg, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct ups_parse *ps = ps_of(p);

    if (ps->status < 200)
        return 0;
    ps->complete = true;
    ps->keepalive = http_should_keep_alive(p) != 0;
    /* Bytes after the response are not ours to parse. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* See upstream_int.h. Keeps the buffers of an earlier response. */
void upstream_http_init(struct ups_parse *ps, bool head_only,
                        const struct ups_parse_events *ev, void *arg)
{
    http_parser_init(&ps->p, HTTP_RESPONSE);
    ps->p.data = ps;
    ps->ev = ev;
    ps->arg = arg;
    ps->head.len = 0;
    ps->nhdrs = 0;
    ps->status = 0;
    ps->in_field = false;
    ps->head_only = head_only;
    ps->head_done = ps->complete = ps->keepalive = false;
    ps->why = NULL;
}

/* See upstream_int.h. */
void upstream_http_free(struct ups_parse *ps)
{
    buf_free(&ps->head);
    free(ps->hdrs);
    free(ps->view);
    ps->hdrs = NULL;
    ps->view = NULL;
    ps->nhdrs = ps->hdr_cap = 0;
}

static void check_errno(struct ups_parse *ps)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&ps->p);

    if (e != HPE_OK && e != HPE_PAUSED && ps->why == NULL)
        ps->why = http_errno_description(e);
}

/* See upstream_int.h. Callbacks run inside. */
size_t upstream_http_feed(struct ups_parse *ps, const char *data, size_t len)
{
    size_t n;

    if (ps->complete || ps->why != NULL)
        return 0;
    n = http_parser_execute(&ps->p, &settings, data, len);
    check_errno(ps);
    return n;
}

/* See upstream_int.h. */
int upstream_http_eof(struct ups_parse *ps)
{
    if (ps->complete)
        return 0;
    if (ps->why != NULL || HTTP_PARSER_ERRNO(&ps->p) != HPE_OK)
        return -1;
    /* Zero bytes tell http-parser the stream ended: that completes a body
     * delimited by the close, and is an error anywhere else. */
    http_parser_execute(&ps->p, &settings, NULL, 0);
    check_errno(ps);
    return ps->complete ? 0 : -1;
}

/* See upstream_int.h. A no-op once the response is complete or failed. */
void upstream_http_pause(struct ups_parse *ps, bool on)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&ps->p);

    if (ps->complete || (e != HPE_OK && e != HPE_PAUSED))
        return;
    http_parser_pause(&ps->p, on);
}
