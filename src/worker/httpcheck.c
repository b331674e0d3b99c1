/*
 * httpcheck.c - the strict request syntax checks of httpcheck.h: a small
 * cursor over a byte range per grammar rule of RFC 9112. Each check only
 * reads its range. Runs in workers.
 * Returns: 0 valid, else an HTTP status (400, 501) and a reason in *why.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "httpcheck.h"

struct cur {
    const unsigned char *p, *end;
    const char **why;
};

static int bad(struct cur *c, const char *why)
{
    *c->why = why;
    return 400;
}

/* Whether ch (ASCII) is in the set given as two 64-bit masks. */
static bool in_set(unsigned char ch, uint64_t lo, uint64_t hi)
{
    return ch < 64 ? (lo >> ch) & 1 : ch < 128 && ((hi >> (ch - 64)) & 1);
}

/* tchar of RFC 9110 5.6.2: ALPHA DIGIT !#$%&'*+-.^_`|~ */
static bool tchar(unsigned char ch)
{
    return in_set(ch, 0x03ff6cfa00000000ULL, 0x57ffffffc7fffffeULL);
}

static bool hexdig(unsigned char ch)
{
    return in_set(ch, 0x03ff000000000000ULL, 0x0000007e0000007eULL);
}

/* Field content: HTAB, SP, VCHAR and obs-text; no other control byte. */
static bool fieldchar(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

static size_t skip(struct cur *c, bool (*cls)(unsigned char))
{
    const unsigned char *start = c->p;

    while (c->p < c->end && cls(*c->p))
        c->p++;
    return (size_t)(c->p - start);
}

/* Consumes CRLF or LF; false (nothing consumed) otherwise. */
static bool eol(struct cur *c)
{
    if (c->p < c->end && *c->p == '\n') {
        c->p++;
        return true;
    }
    if (c->end - c->p >= 2 && c->p[0] == '\r' && c->p[1] == '\n') {
        c->p += 2;
        return true;
    }
    return false;
}

/* After a line's content: its end, or why it has none. */
static int line_end(struct cur *c)
{
    if (eol(c))
        return 0;
    if (c->p == c->end)
        return bad(c, "line not terminated");
    if (*c->p == '\r')
        return bad(c, "bare CR");
    return bad(c, "control byte in request");
}

/* Field lines up to and including the empty line (header or trailer
 * section). */
static int fields(struct cur *c)
{
    int rc;

    while (!eol(c)) {
        if (c->p == c->end)
            return bad(c, "head not terminated");
        if (*c->p == ' ' || *c->p == '\t')
            return bad(c, "obsolete line folding");
        if (skip(c, tchar) == 0)
            return bad(c, "invalid header name");
        if (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
            return bad(c, "white space before colon");
        if (c->p == c->end || *c->p != ':')
            return bad(c, "invalid header name");
        c->p++;
        skip(c, fieldchar);
        if ((rc = line_end(c)) != 0)
            return rc;
    }
    return 0;
}

static bool ows(unsigned char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool target_char(unsigned char ch)
{
    return ch > 0x20 && ch != 0x7f; /* obs-text passes, as nginx allows */
}

static bool digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

int httpcheck_head(const char *p, size_t len, size_t *head_len, const char **why)
{
    struct cur c = {(const unsigned char *)p, (const unsigned char *)p + len, why};
    static const char version[] = "HTTP/";
    int rc;

    while (eol(&c)) /* empty lines before the request line (RFC 9112 2.2) */
        ;
    if (skip(&c, tchar) == 0 || c.p == c.end || *c.p++ != ' ')
        return bad(&c, "malformed method");
    if (skip(&c, target_char) == 0 || c.p == c.end || *c.p++ != ' ')
        return bad(&c, "malformed request target");
    if ((size_t)(c.end - c.p) < 8 || memcmp(c.p, version, 5) != 0 || !digit(c.p[5]) ||
        c.p[6] != '.' || !digit(c.p[7]))
        return bad(&c, "malformed HTTP version");
    c.p += 8;
    if ((rc = line_end(&c)) != 0 || (rc = fields(&c)) != 0)
        return rc;
    *head_len = (size_t)((const char *)c.p - p);
    return 0;
}

/* chunk-size [ chunk-ext ] and the line end: extensions are not used, so
 * only their bytes are checked (BWS, then ';', then field content). */
static int size_line(struct cur *c, bool last)
{
    const unsigned char *digits = c->p;

    if (skip(c, hexdig) == 0)
        return bad(c, "invalid chunk size");
    if (last)
        for (const unsigned char *d = digits; d < c->p; d++)
            if (*d != '0')
                return bad(c, "invalid last chunk");
    skip(c, ows);
    if (c->p < c->end && *c->p == ';') {
        c->p++;
        skip(c, fieldchar);
    } else if (c->p > digits && (c->p[-1] == ' ' || c->p[-1] == '\t')) {
        return bad(c, "white space after chunk size");
    }
    return line_end(c);
}

static int data_end(struct cur *c, bool after_data)
{
    if (after_data && !eol(c))
        return bad(c, "chunk data not followed by CRLF");
    return 0;
}

int httpcheck_chunk_line(const char *p, size_t len, bool after_data, const char **why)
{
    struct cur c = {(const unsigned char *)p, (const unsigned char *)p + len, why};
    int rc;

    if ((rc = data_end(&c, after_data)) != 0 || (rc = size_line(&c, false)) != 0)
        return rc;
    return c.p == c.end ? 0 : bad(&c, "invalid chunk framing");
}

int httpcheck_chunk_tail(const char *p, size_t len, bool after_data, const char **why)
{
    struct cur c = {(const unsigned char *)p, (const unsigned char *)p + len, why};
    int rc;

    if ((rc = data_end(&c, after_data)) != 0 || (rc = size_line(&c, true)) != 0 ||
        (rc = fields(&c)) != 0)
        return rc;
    return c.p == c.end ? 0 : bad(&c, "invalid chunk framing");
}

int httpcheck_transfer_encoding(const char *const *vals, const size_t *lens, size_t n,
                                const char **why)
{
    size_t codings = 0, chunked = 0;
    bool last_chunked = false;

    for (size_t i = 0; i < n; i++) {
        struct cur c = {(const unsigned char *)vals[i],
                        (const unsigned char *)vals[i] + lens[i], why};
        while (c.p < c.end) {
            const unsigned char *tok;
            size_t tlen;

            skip(&c, ows);
            tok = c.p;
            tlen = skip(&c, tchar);
            skip(&c, ows);
            if (c.p < c.end && *c.p != ',')
                return bad(&c, "malformed Transfer-Encoding");
            if (c.p < c.end)
                c.p++;
            if (tlen == 0) /* empty list element: allowed, ignored */
                continue;
            codings++;
            last_chunked = tlen == 7 && strncasecmp((const char *)tok, "chunked", 7) == 0;
            chunked += last_chunked;
        }
    }
    if (codings == 0 || !last_chunked) {
        *why = "Transfer-Encoding does not end in chunked";
        return 400;
    }
    if (chunked > 1) {
        *why = "chunked applied twice";
        return 400;
    }
    if (codings > 1) {
        *why = "unsupported transfer coding";
        return 501;
    }
    return 0;
}

int httpcheck_target(int method, const char *t, size_t len, const char **why)
{
    struct http_parser_url u;

    if (len == 1 && t[0] == '*') {
        if (method == HTTP_OPTIONS)
            return 0;
        *why = "asterisk target without OPTIONS";
        return 400;
    }
    if (t[0] == '/' || method == HTTP_CONNECT)
        return 0; /* origin-form; authority-form was checked by the parser */
    http_parser_url_init(&u);
    if (http_parser_parse_url(t, len, 0, &u) != 0 || !(u.field_set & (1 << UF_SCHEMA)) ||
        !(u.field_set & (1 << UF_HOST))) {
        *why = "malformed absolute target";
        return 400;
    }
    return 0;
}

/* unreserved, pct-encoded (loosely: '%') and sub-delims of RFC 3986:
 * ALPHA DIGIT -._~% !$&'()*+,;= */
static bool regname_char(unsigned char ch)
{
    return in_set(ch, 0x2bff7ff200000000ULL, 0x47fffffe87fffffeULL);
}

static bool ipliteral_char(unsigned char ch)
{
    return hexdig(ch) || ch == ':' || ch == '.' || (ch | 0x20) == 'v' || regname_char(ch);
}

int httpcheck_host(const char *v, size_t len, const char **why)
{
    struct cur c = {(const unsigned char *)v, (const unsigned char *)v + len, why};

    if (c.p < c.end && *c.p == '[') {
        c.p++;
        if (skip(&c, ipliteral_char) == 0 || c.p == c.end || *c.p++ != ']')
            return bad(&c, "malformed Host");
    } else {
        skip(&c, regname_char);
    }
    if (c.p < c.end && *c.p == ':') {
        c.p++;
        skip(&c, digit);
    }
    return c.p == c.end ? 0 : bad(&c, "malformed Host");
}

bool httpcheck_is_method_token(const char *p, size_t len)
{
    struct cur c = {(const unsigned char *)p, (const unsigned char *)p + len, NULL};

    while (eol(&c))
        ;
    /* http-parser stops at the first byte that leaves its known methods,
     * so the token may be cut where the bytes received so far end. */
    return skip(&c, tchar) > 0 && (c.p == c.end || *c.p == ' ');
}
