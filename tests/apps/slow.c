/*
 * slow.c - test app: answers 200 "slow\n" after ?ms=N milliseconds
 * (default 1000), from an ev_timer on the worker's loop, so a request stays
 * in flight without blocking the worker. Runs in workers. If the client goes
 * away first, the timer is stopped and the request ended (which only frees
 * it). Logs "slow: TARGET: responding in N ms" when a request arrives, so
 * tests know it is in flight.
 */
#include <ev.h>
#include <stdlib.h>
#include <string.h>

#include <preforkd.h>

struct slow_req {
    ev_timer timer; /* first: the callback casts the watcher back */
    pf_request *r;
};

static const pf_header text_plain[] = {
    {{"Content-Type", 12}, {"text/plain", 10}},
};

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct slow_req *s = (struct slow_req *)w;

    pf_respond(s->r, 200, text_plain, 1, "slow\n", 5);
    free(s);
}

static void on_abort(pf_request *r, void *arg)
{
    struct slow_req *s = arg;

    ev_timer_stop(pf_loop(), &s->timer);
    pf_log(PF_LOG_INFO, "slow: client went away");
    pf_respond(r, 200, text_plain, 1, "slow\n", 5); /* only frees r */
    free(s);
}

/* The value of ?ms=N, or dflt. */
static long query_ms(pf_str q, long dflt)
{
    size_t i = 0;

    while (i < q.len) {
        size_t end = i;

        while (end < q.len && q.ptr[end] != '&')
            end++;
        if (end - i > 3 && memcmp(q.ptr + i, "ms=", 3) == 0) {
            long v = 0;
            size_t j;

            for (j = i + 3; j < end && q.ptr[j] >= '0' && q.ptr[j] <= '9'; j++)
                if (v < 3600000)
                    v = v * 10 + (q.ptr[j] - '0');
            return v;
        }
        i = end + 1;
    }
    return dflt;
}

static int slow_handle(pf_request *r, void *state)
{
    pf_str target = pf_request_target(r);
    long ms = query_ms(pf_request_query(r), 1000);
    struct slow_req *s = calloc(1, sizeof *s);

    if (s == NULL)
        return -1;
    s->r = r;
    ev_timer_init(&s->timer, on_timer, (double)ms / 1000.0, 0.0);
    ev_timer_start(pf_loop(), &s->timer);
    pf_request_on_abort(r, on_abort, s);
    pf_log(PF_LOG_INFO, "slow: %.*s: responding in %ld ms", (int)target.len, target.ptr,
           ms);
    return 0;
}

PF_APP_DEFINE(.name = "slow",
              .description = "answers 200 after ?ms=N milliseconds (tests)",
              .handle = slow_handle);
