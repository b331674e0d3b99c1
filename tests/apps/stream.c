/*
 * stream.c - test app: streams ?bytes=N bytes (default 1 MiB) of the pattern
 * "abc...z" repeated (byte i is 'a' + i % 26) with pf_response_start (no
 * Content-Length: chunked on HTTP/1.1, close-delimited on HTTP/1.0) and
 * pf_response_write in 16 KiB pieces, waiting for the drain callback whenever
 * a write reports back-pressure. Runs in workers.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <preforkd.h>

#define PIECE 16384

struct stream {
    pf_request *r;
    size_t left;  /* bytes still to write */
    size_t off;   /* bytes written so far */
    bool pumping; /* inside pump(): an abort is handled there */
    bool aborted;
};

static char pattern[PIECE + 26];

static void pump(struct stream *s);

static void finish(struct stream *s)
{
    pf_response_end(s->r);
    free(s);
}

static void on_drain(pf_request *r, void *arg)
{
    pump(arg);
}

static void on_abort(pf_request *r, void *arg)
{
    struct stream *s = arg;

    s->aborted = true;
    if (!s->pumping)
        finish(s); /* waiting for a drain that will never come */
}

static void pump(struct stream *s)
{
    s->pumping = true;
    while (s->left > 0 && !s->aborted) {
        size_t n = s->left < PIECE ? s->left : PIECE;
        int rc = pf_response_write(s->r, pattern + s->off % 26, n);

        if (rc == -1)
            break;
        s->left -= n;
        s->off += n;
        if (rc == 1 && s->left > 0) {
            s->pumping = false;
            pf_response_on_drain(s->r, on_drain, s);
            return;
        }
    }
    finish(s);
}

/* The value of ?bytes=N, or dflt. */
static size_t query_bytes(pf_str q, size_t dflt)
{
    size_t i = 0;

    while (i < q.len) {
        size_t end = i;

        while (end < q.len && q.ptr[end] != '&')
            end++;
        if (end - i > 6 && memcmp(q.ptr + i, "bytes=", 6) == 0) {
            size_t v = 0, j;

            for (j = i + 6; j < end && q.ptr[j] >= '0' && q.ptr[j] <= '9'; j++)
                if (v < ((size_t)1 << 40))
                    v = v * 10 + (size_t)(q.ptr[j] - '0');
            return v;
        }
        i = end + 1;
    }
    return dflt;
}

static int stream_load(const pf_app_config *cfg, void **state)
{
    size_t i;

    for (i = 0; i < sizeof pattern; i++)
        pattern[i] = (char)('a' + i % 26);
    return 0;
}

static int stream_handle(pf_request *r, void *state)
{
    static const pf_header hdr[] = {
        {{"Content-Type", 12}, {"text/plain", 10}},
    };
    struct stream *s = calloc(1, sizeof *s);

    if (s == NULL)
        return -1;
    s->r = r;
    s->left = query_bytes(pf_request_query(r), (size_t)1 << 20);
    if (pf_response_start(r, 200, hdr, 1) == -1) {
        free(s);
        return -1; /* nothing was sent: the daemon answers 500 */
    }
    pf_request_on_abort(r, on_abort, s);
    pump(s);
    return 0;
}

PF_APP_DEFINE(.name = "stream", .description = "streams ?bytes=N bytes, chunked (tests)",
              .load = stream_load, .handle = stream_handle);
