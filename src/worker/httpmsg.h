/*
 * httpmsg.h - HTTP/1.x glue over http-parser: bytes in, a parsed request out
 * (as offsets into the caller's buffer), limits enforced, response framing
 * written. No sockets and no clock, so it is unit-tested and fuzzed alone.
 * Runs in workers. Convention: protocol results are HTTP status codes.
 */
#ifndef PF_HTTPMSG_H
#define PF_HTTPMSG_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <http_parser.h>

#include "buf.h"
#include "preforkd.h"

struct httpmsg_limits {
    uint32_t max_request_line; /* bytes of the request target: 414 */
    uint32_t max_headers;      /* header fields: 431 */
    uint32_t max_header_size;  /* name + value of one field: 431 */
    uint64_t max_body_size;    /* declared or received body: 413 */
};

/* A header as offsets into the buffer handed to httpmsg_feed. */
struct httpmsg_hdr {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
};

/* The request being parsed. Offsets stay valid while the buffer only
 * grows (realloc keeps offsets) and nothing before the request moves. */
struct httpmsg_req {
    size_t url_off, url_len;
    size_t body_off, body_len; /* body de-chunked in place */
    struct httpmsg_hdr *hdrs;
    uint32_t nhdrs, hdr_cap;
    uint8_t method;       /* enum http_method */
    uint8_t version;      /* 10 or 11 */
    bool head_done;       /* on_headers_complete passed every check */
    bool complete;        /* on_message_complete: parser is paused */
    bool keepalive;       /* the client allows another request after this */
    bool expect_continue; /* "Expect: 100-continue" and a body follows */
    bool in_field;        /* last callback was a header name piece */
    bool chunked;         /* the body is chunked: its framing is checked */
    bool chunk_begins;    /* a chunk-size line was parsed; data comes next */
    bool had_data;        /* a chunk with data came (a CRLF follows its data) */
    size_t frame_pos;     /* chunked: where the unchecked framing bytes begin
                       * (as received, before de-chunking moved data) */
};

struct httpmsg_parse {
    http_parser p;
    const struct httpmsg_limits *lim;
    char *base; /* buffer of the current httpmsg_feed call */
    struct httpmsg_req req;
    int error;       /* status to answer and close with; 0 = none */
    const char *why; /* short reason for the error, for the log */
    bool started;    /* a byte of the current request has been parsed */
    size_t head_off; /* where the current request's bytes begin */
    size_t end;      /* end of the bytes given to this httpmsg_feed */
};

/* Sets the process-wide header-size cap of http-parser from lim (call once
 * per worker before parsing) and prepares hp for the first request. */
void httpmsg_parse_init(struct httpmsg_parse *hp, const struct httpmsg_limits *lim);
void httpmsg_parse_free(struct httpmsg_parse *hp);

/* Parses base[off, off+len). Returns the bytes consumed. Stops early at the
 * end of a request (hp->req.complete, parser paused) or on an error
 * (hp->error set to 400, 413, 414, 417, 431, 501 or 505). Beyond what
 * http-parser checks, the head, chunk framing, Transfer-Encoding, target
 * and Host must be valid RFC 9112 syntax (httpcheck.h). May move body bytes
 * within base[req.body_off, off+len) to de-chunk in place. */
size_t httpmsg_feed(struct httpmsg_parse *hp, char *base, size_t off, size_t len);

/* After a complete request has been answered: forget it, unpause. */
void httpmsg_parse_next(struct httpmsg_parse *hp);

/* FRAME_NONE: a status that has no body (1xx, 204, 304). */
enum httpmsg_framing { FRAME_LENGTH, FRAME_CHUNKED, FRAME_CLOSE, FRAME_NONE };

struct httpmsg_resp {
    int status;
    uint8_t version; /* of the request: 10 or 11 */
    bool keepalive;  /* in: allowed; out: cleared by "Connection: close" */
    enum httpmsg_framing framing;
    uint64_t content_length; /* for FRAME_LENGTH */
};

/* Appends the status line, the daemon's headers (Date, Server, framing,
 * Connection) and the app's headers (minus those the daemon owns) to out.
 * Returns 0, or -1 (out untouched) when an app header holds CR, LF or NUL
 * or an empty name. Clears r->keepalive on an app "Connection: close". */
int httpmsg_write_head(struct buf *out, struct httpmsg_resp *r, const pf_header *h,
                       size_t n, time_t now);

/* 1 with *len set when h has a valid Content-Length, 0 when it has none,
 * -1 when it is malformed. */
int httpmsg_header_content_length(const pf_header *h, size_t n, uint64_t *len);

/* One chunk of a chunked body (nothing for len 0) / the last chunk. */
void httpmsg_write_chunk(struct buf *out, const void *data, size_t len);
void httpmsg_write_last_chunk(struct buf *out);

/* A whole error response (small text body, Connection: close). Returns
 * the body's length. */
size_t httpmsg_write_error(struct buf *out, int status, time_t now);

/* "Tue, 24 Nov 2026 07:50:00 GMT", formatted at most once a second. */
const char *httpmsg_date(time_t now);

/* The reason phrase of status ("OK", "Not Found", ...). */
const char *httpmsg_reason(int status);

#endif
