/*
 * faulty.c - test app for the fault tests: an app that fails in the ways
 * an app can fail without blocking its worker. Runs in workers.
 *   /fail         handle() returns -1: the daemon answers 500
 *   /hang         never responds; its abort callback logs "faulty: /hang
 *                 aborted" and ends the request (which then only frees it)
 *   /hang-stream  sends a chunked head and "partial\n", then nothing more;
 *                 the abort callback logs and ends the response
 *   /lost         never responds and sets no abort callback (a lost request)
 *   anything else 200 "ok\n"
 * Every response it gives carries X-Worker-Pid, the serving worker's pid.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <preforkd.h>

static bool is(pf_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

/* Content-Type and X-Worker-Pid; pid is the caller's buffer. */
static size_t headers(pf_header *h, char *pid, size_t len)
{
    h[0] = (pf_header){{"Content-Type", 12}, {"text/plain", 10}};
    h[1] = (pf_header){{"X-Worker-Pid", 12},
                       {pid, (size_t)snprintf(pid, len, "%ld", (long)getpid())}};
    return 2;
}

static void on_hang_abort(pf_request *r, void *arg)
{
    pf_log(PF_LOG_INFO, "faulty: /hang aborted");
    pf_respond(r, 200, NULL, 0, "", 0); /* a no-op that frees r */
}

static void on_stream_abort(pf_request *r, void *arg)
{
    pf_log(PF_LOG_INFO, "faulty: /hang-stream aborted");
    pf_response_end(r);
}

static int faulty_handle(pf_request *r, void *state)
{
    pf_str path = pf_request_path(r);
    pf_header h[2];
    char pid[24];
    size_t n = headers(h, pid, sizeof(pid));

    if (is(path, "/fail"))
        return -1;
    if (is(path, "/hang")) {
        pf_request_on_abort(r, on_hang_abort, NULL);
        return 0;
    }
    if (is(path, "/hang-stream")) {
        pf_request_on_abort(r, on_stream_abort, NULL);
        if (pf_response_start(r, 200, h, n) < 0)
            return -1;
        pf_response_write(r, "partial\n", 8);
        return 0;
    }
    if (is(path, "/lost"))
        return 0;
    return pf_respond(r, 200, h, n, "ok\n", 3);
}

PF_APP_DEFINE(.name = "faulty",
              .description = "fails, hangs and loses requests on purpose (tests)",
              .handle = faulty_handle);
