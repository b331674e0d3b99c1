/*
 * routes.c - "which traffic leaks?": for each route key (the method and
 * the first route_segments segments of the path: "GET /api/items"), the
 * Python blocks a request leaves allocated once its response is closed,
 * summed; the top 5 by mean go to /stats and `preforkctl status` as
 * python_route_retained_blocks. At most route_keys keys; later ones are
 * counted under "other". Runs in a worker: routes_find and routes_add
 * where Python runs the app (GIL held), routes_publish on the loop; the
 * table is guarded by its own mutex (the loop never takes the GIL).
 */
#include <stdlib.h>
#include <string.h>

#include "wsgi.h"

#define LABEL 64 /* pf_metric_set keeps 63 bytes */
#define TOP 5

struct route {
    uint32_t hash;
    char key[LABEL];
    uint64_t n;  /* requests counted (the first one is not) */
    int64_t sum; /* their retained blocks */
    bool seen;   /* the first request went by */
};

static struct {
    pthread_mutex_t mu;
    struct route *r; /* max_keys + 1: the last is "other" */
    int n, max_keys, segments;
} routes = {.mu = PTHREAD_MUTEX_INITIALIZER};

int routes_init(int segments, int max_keys)
{
    routes.r = calloc((size_t)max_keys + 1, sizeof(*routes.r));
    if (routes.r == NULL)
        return -1;
    routes.max_keys = max_keys;
    routes.segments = segments;
    strcpy(routes.r[max_keys].key, "other");
    return 0;
}

/* "GET /api/items" from GET /api/items/42?x (2 segments), in out. Bytes
 * outside printable ASCII become '_' (a label is text). */
static size_t route_key(const struct job *j, char *out)
{
    size_t o = 0, seg = 0;

    for (size_t i = 0; i < j->method.len && o < 16; i++)
        out[o++] = j->method.ptr[i];
    out[o++] = ' ';
    if (j->path.len == 0 || j->path.ptr[0] != '/')
        out[o++] = '*'; /* OPTIONS *, or an absolute form */
    for (size_t i = 0; i < j->path.len && o < LABEL - 1; i++) {
        char c = j->path.ptr[i];

        if (c == '/' && seg++ == (size_t)routes.segments)
            break;
        out[o++] = c > ' ' && c < 127 && c != '"' && c != '\\' ? c : '_';
    }
    if (out[o - 1] == ' ')
        o--; /* route_segments = 0: the method alone */
    out[o] = '\0';
    return o;
}

int routes_find(const struct job *j)
{
    char key[LABEL];
    size_t len = route_key(j, key);
    uint32_t h = 2166136261u;
    int i;

    for (size_t k = 0; k < len; k++)
        h = (h ^ (unsigned char)key[k]) * 16777619u;
    pthread_mutex_lock(&routes.mu);
    for (i = 0; i < routes.n; i++)
        if (routes.r[i].hash == h && strcmp(routes.r[i].key, key) == 0)
            break;
    if (i == routes.n) {
        if (routes.n < routes.max_keys) {
            routes.r[i].hash = h;
            memcpy(routes.r[i].key, key, len + 1);
            routes.n++;
        } else {
            i = routes.max_keys;
        }
    }
    pthread_mutex_unlock(&routes.mu);
    return i;
}

void routes_add(int i, int64_t blocks)
{
    struct route *r = &routes.r[i];

    pthread_mutex_lock(&routes.mu);
    /* A route's first request fills caches (lazy imports, compiled
     * templates, the URL map): not a leak, left out. */
    if (!r->seen) {
        r->seen = true;
    } else {
        r->n++;
        r->sum += blocks;
    }
    pthread_mutex_unlock(&routes.mu);
}

void routes_publish(void)
{
    struct {
        char key[LABEL];
        double mean;
    } top[TOP];
    int ntop = 0;

    pthread_mutex_lock(&routes.mu);
    for (int i = 0; i <= routes.max_keys; i++) {
        const struct route *r = &routes.r[i];
        double mean;
        int k;

        if (r->n == 0)
            continue;
        mean = (double)r->sum / (double)r->n;
        if (ntop == TOP && mean <= top[TOP - 1].mean)
            continue;
        k = ntop < TOP ? ntop++ : TOP - 1;
        while (k > 0 && top[k - 1].mean < mean) {
            top[k] = top[k - 1];
            k--;
        }
        memcpy(top[k].key, r->key, LABEL);
        top[k].mean = mean;
    }
    pthread_mutex_unlock(&routes.mu);
    pf_metric_clear("python_route_retained_blocks");
    for (int i = 0; i < ntop; i++)
        pf_metric_set("python_route_retained_blocks", top[i].key, top[i].mean);
}
