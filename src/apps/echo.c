/*
 * echo.c - built-in app `echo`: answers 200 text/plain with the request it
 * received: "METHOD TARGET HTTP/1.x", one "Name: value" line per header in
 * order, an empty line, then the body verbatim. For tests and debugging.
 * Runs in workers; owns one buffer per request, freed before returning.
 */
#include <stdlib.h>
#include <string.h>

#include <preforkd.h>

#define STR(lit) \
    { \
        lit, sizeof(lit) - 1 \
    }

static const pf_header echo_headers[] = {
    {STR("Content-Type"), STR("text/plain")},
};

static char *put(char *p, pf_str s)
{
    if (s.len > 0)
        memcpy(p, s.ptr, s.len);
    return p + s.len;
}

static char *put_lit(char *p, const char *s)
{
    size_t len = strlen(s);

    memcpy(p, s, len);
    return p + len;
}

static int echo_handle(pf_request *r, void *state)
{
    pf_str method = pf_request_method(r), target = pf_request_target(r);
    pf_str body = pf_request_body(r);
    const char *version = pf_request_version(r) == 10 ? " HTTP/1.0\n" : " HTTP/1.1\n";
    size_t n = pf_request_header_count(r), len, i;
    char *buf, *p;
    int rc;

    len = method.len + 1 + target.len + strlen(version) + 1 + body.len;
    for (i = 0; i < n; i++) {
        const pf_header *h = pf_request_header_at(r, i);
        len += h->name.len + 2 + h->value.len + 1;
    }
    buf = malloc(len);
    if (buf == NULL)
        return -1;
    p = put(buf, method);
    *p++ = ' ';
    p = put(p, target);
    p = put_lit(p, version);
    for (i = 0; i < n; i++) {
        const pf_header *h = pf_request_header_at(r, i);
        p = put(p, h->name);
        p = put_lit(p, ": ");
        p = put(p, h->value);
        *p++ = '\n';
    }
    *p++ = '\n';
    p = put(p, body);
    /* pf_respond copies the body: the buffer can go at once. */
    rc = pf_respond(r, 200, echo_headers, 1, buf, (size_t)(p - buf));
    free(buf);
    return rc;
}

PF_APP_DEFINE(.name = "echo",
              .description = "returns the request it received (tests, "
                             "debugging)",
              .handle = echo_handle);
