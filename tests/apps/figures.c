/*
 * figures.c - test app for the figures an app publishes (src/worker/metrics.c):
 * its own "toy" heap grows by 2048 bytes on each GET /a; every path's hits
 * are the metric "hits" labelled by the path; GET /fill sets 20 rows of
 * "fill" and answers how many fitted; GET /clear removes them; GET /leaving
 * answers what pf_worker_leaving says while serving. At exit it logs
 * "figures: leaving: REASON". Runs in workers; answers 200 with a short
 * body.
 */
#include <stdio.h>
#include <string.h>

#include <preforkd.h>

static uint64_t heap = 1 << 20;
static double hits[3]; /* /a, /b, anything else */

static int figures_init(void *state)
{
    pf_worker_heap("toy", heap);
    return 0;
}

static int figures_handle(pf_request *r, void *state)
{
    pf_str path = pf_request_path(r);
    char body[64], label[16];
    int n = 0, fitted = 0;

    if (path.len == 5 && memcmp(path.ptr, "/fill", 5) == 0) {
        for (int i = 0; i < 20; i++) {
            snprintf(label, sizeof label, "f%d", i);
            fitted += pf_metric_set("fill", label, i) == 0;
        }
        n = snprintf(body, sizeof body, "%d\n", fitted);
    } else if (path.len == 8 && memcmp(path.ptr, "/leaving", 8) == 0) {
        const char *why = pf_worker_leaving();
        n = snprintf(body, sizeof body, "%s\n", why ? why : "(null)");
    } else if (path.len == 6 && memcmp(path.ptr, "/clear", 6) == 0) {
        pf_metric_clear("fill");
        n = snprintf(body, sizeof body, "cleared\n");
    } else {
        int k = path.len == 2 && path.ptr[1] == 'a'   ? 0
                : path.len == 2 && path.ptr[1] == 'b' ? 1
                                                      : 2;
        if (k == 0)
            pf_worker_heap("toy", heap += 2048);
        hits[k]++;
        snprintf(label, sizeof label, "%.*s", (int)(path.len < 15 ? path.len : 15),
                 path.ptr);
        if (pf_metric_set("hits", label, hits[k]) < 0 ||
            pf_metric_set("Bad-Name", "", 1) == 0)
            return -1;
        n = snprintf(body, sizeof body, "ok\n");
    }
    return pf_respond(r, 200, NULL, 0, body, (size_t)n);
}

/* Says why it leaves (pf_worker_leaving), which a test reads in the log. */
static void figures_exit(void *state)
{
    const char *why = pf_worker_leaving();

    pf_log(PF_LOG_INFO, "figures: leaving: %s", why ? why : "(null)");
}

PF_APP_DEFINE(.name = "figures", .description = "publishes figures (tests)",
              .worker_init = figures_init, .handle = figures_handle,
              .worker_exit = figures_exit);
