/*
 * httpcheck.h - RFC 9112 / 9110 syntax checks that Debian's http-parser
 * (built without HTTP_PARSER_STRICT) does not make: the grammar of the
 * request head, of chunk-size lines and trailers, of Transfer-Encoding, the
 * request-target forms and Host. Pure functions over byte ranges, so they
 * are unit-tested and fuzzed alone. Runs in workers (called by httpmsg.c).
 * Convention: 0 when the bytes are valid, else the HTTP status to answer
 * (400, 501) with *why set to a short reason for the error log.
 */
#ifndef PF_HTTPCHECK_H
#define PF_HTTPCHECK_H

#include <stdbool.h>
#include <stddef.h>

/* Checks a request head: optional empty lines, the request line (token
 * method, SP, a target of visible bytes, SP, "HTTP/d.d"), field lines
 * (token name directly followed by ':', a value without control bytes
 * other than HTAB), an empty line. Lines end with CRLF or LF; a bare CR,
 * obs-fold or white space before the colon is an error. On success sets
 * *head_len to the bytes up to and including the empty line. Returns 400
 * as well when p[0, len) ends before the empty line. */
int httpcheck_head(const char *p, size_t len, size_t *head_len, const char **why);

/* The bytes between two pieces of a chunked body: the CRLF that ends the
 * previous chunk's data (when after_data), then a chunk-size line
 * (1*HEXDIG, optionally BWS ";" extensions) with its line end, exactly. */
int httpcheck_chunk_line(const char *p, size_t len, bool after_data, const char **why);

/* The bytes after the last chunk's data up to the end of the message: the
 * CRLF (when after_data), the last-chunk line ("0" digits, extensions), the
 * trailer field lines and the empty line, exactly. */
int httpcheck_chunk_tail(const char *p, size_t len, bool after_data, const char **why);

/* The Transfer-Encoding field values of a request (n of them, as given).
 * 0 when they are exactly one "chunked" (as a list, case-insensitively);
 * 400 when the list is malformed, empty, does not end in chunked or has it
 * twice; 501 when another coding comes before chunked (not understood). */
int httpcheck_transfer_encoding(const char *const *vals, const size_t *lens, size_t n,
                                const char **why);

/* The request-target against its method (http_parser's enum, as int):
 * "*" only for OPTIONS, absolute-form must be a URI with a host. */
int httpcheck_target(int method, const char *t, size_t len, const char **why);

/* A Host field value: uri-host [ ":" port ] (reg-name characters or an
 * IP-literal in brackets); empty is allowed. */
int httpcheck_host(const char *v, size_t len, const char **why);

/* Whether p[0, len) starts with a token followed by SP or the end of the
 * bytes: a method that http-parser does not know (answered with 501). */
bool httpcheck_is_method_token(const char *p, size_t len);

#endif
