/*
 * fakeup.h - a fake upstream HTTP server for the upstream and proxy tests,
 * running in threads of the test process (one per connection, blocking
 * I/O) on 127.0.0.1 and an ephemeral port. It misbehaves on request:
 * closes idle connections, drops a request, never answers, resets in the
 * middle of a body, answers with any raw bytes. Counts what it sees, so
 * tests can assert from the upstream side. Stopped by fakeup_stop (every
 * thread joined, every fd closed).
 */
#ifndef PF_TEST_FAKEUP_H
#define PF_TEST_FAKEUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fakeup_cfg {
    const char *resp;    /* raw response to each request; NULL: 200 "ok\n" */
    size_t resp_len;     /* 0: strlen(resp) */
    bool close_after;    /* close (FIN) after each response */
    int drop_request;    /* n > 0: the n-th request of a connection is not
                            answered, the connection is closed instead */
    bool accept_close;   /* close each connection right after accept */
    bool silent;         /* read requests, never answer */
    size_t reset_after;  /* > 0: send that many bytes of resp, then RST */
    uint64_t big;        /* > 0: 200 with a body of this many bytes, byte i
                            being 'a' + i % 26 */
    volatile bool *hold; /* if not NULL: answers wait while *hold is true */
};

struct fakeup;

/* Listens on 127.0.0.1:0 and serves cfg (copied; resp must outlive the
 * server). Asserts (Check) on failure. */
struct fakeup *fakeup_start(const struct fakeup_cfg *cfg);
/* Stops accepting, closes every connection, joins every thread, frees. */
void fakeup_stop(struct fakeup *f);

int fakeup_port(const struct fakeup *f);
/* Connections accepted so far. */
int fakeup_accepted(const struct fakeup *f);
/* Connections the client side closed (EOF or reset seen). */
int fakeup_closed_by_peer(const struct fakeup *f);
/* Connections open now (accepted, not yet closed by either side). */
int fakeup_open(const struct fakeup *f);
/* Complete requests received. */
int fakeup_requests(const struct fakeup *f);
/* Responses sent in full. */
int fakeup_responses(const struct fakeup *f);
/* The last request received, head and body, NUL-terminated (malloc'd). */
char *fakeup_last_request(struct fakeup *f, size_t *len);
/* Waits until cond(f) >= want, within timeout s. True if it happened. */
bool fakeup_wait(struct fakeup *f, int (*count)(const struct fakeup *), int want,
                 double timeout);

#endif
