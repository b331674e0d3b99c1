/*
 * hunt.c - leak hunting in a worker of the wsgi module, always on and
 * cheap: Python's blocks counted as they come and go (for routes.c), the
 * figures published once a second (allocated blocks, GC collections and
 * uncollectable objects), and a census of objects by type after the
 * worker's first census_after requests, compared with one taken when the
 * worker retires for max_rss. Runs in a worker: the request hooks where
 * Python runs the app (GIL held), the rest on the loop thread. The state
 * is this process's (statics: one worker per process). See docs/python.md,
 * "Hunting a leak in a Python app".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "wsgi.h"

/* libpython exports it (sys.getallocatedblocks()); its header is internal. */
PyAPI_FUNC(Py_ssize_t) _Py_GetAllocatedBlocks(void);

/* A census above this many allocated blocks is skipped: it would hold the
 * GIL too long. Measured: 120 000 to 155 000 tracked objects (of 340 000
 * blocks) in 40 to 150 ms, gc.get_objects() included. */
#define CENSUS_MAX_BLOCKS (4L * 1000 * 1000)
#define CENSUS_TOP 10

/* One type's count in a census; the type is referenced (a class may go
 * and its address be reused). */
struct tcount {
    PyTypeObject *type;
    Py_ssize_t n;
};

struct census {
    struct tcount *t; /* open addressing on the type's address */
    size_t cap, used;
    Py_ssize_t objects;
    double ms;
};

static struct {
    /* [app] keys (load) */
    bool on;           /* hunt = true */
    long census_after; /* 0: no census */
    int route_segments, route_keys;

    /* the worker */
    bool counting; /* our allocator hooks are in */
    PyMemAllocatorEx mem_orig, obj_orig;
    int64_t blocks;     /* +1 a block, -1 a free: under the GIL */
    int64_t gc_freed;   /* blocks the collector freed */
    int64_t gc_start;   /* blocks when a collection started */
    long requests;      /* requests the app has finished */
    struct census base; /* after census_after requests */
    bool base_taken;
    double next_figures; /* monotonic seconds */

    /* figures, from the Python side to the loop */
    pthread_mutex_t mu;
    bool fresh;
    double allocated, collections[3], uncollectable;
} hunt = {.on = true,
          .census_after = 100,
          .route_segments = 2,
          .route_keys = 64,
          .mu = PTHREAD_MUTEX_INITIALIZER};

static double mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- configuration (load) ------------------------------------------------- */

static int get_long(const pf_app_config *cfg, const char *key, long lo, long hi,
                    long *out)
{
    const char *v = pf_config_get(cfg, key);
    char *end;
    long n;

    if (v == NULL)
        return 0;
    errno = 0;
    n = strtol(v, &end, 10); /* digits only, as the daemon's own numbers */
    if (*v < '0' || *v > '9' || errno != 0 || *end != '\0' || n < lo || n > hi)
        return pf_config_error(cfg, key,
                               "expected a number from %ld to %ld, "
                               "got \"%s\"",
                               lo, hi, v);
    *out = n;
    return 0;
}

int hunt_config(const pf_app_config *cfg)
{
    const char *v = pf_config_get(cfg, "hunt");
    long seg = hunt.route_segments, keys = hunt.route_keys;
    int rc = 0;

    if (v != NULL) {
        if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") ||
            !strcmp(v, "1"))
            hunt.on = true;
        else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") ||
                 !strcasecmp(v, "off") || !strcmp(v, "0"))
            hunt.on = false;
        else
            rc = pf_config_error(cfg, "hunt",
                                 "expected true or false, got "
                                 "\"%s\"",
                                 v);
    }
    rc |= get_long(cfg, "census_after", 0, 1000000000L, &hunt.census_after);
    rc |= get_long(cfg, "route_segments", 0, 16, &seg);
    rc |= get_long(cfg, "route_keys", 0, 1000, &keys);
    hunt.route_segments = (int)seg;
    hunt.route_keys = (int)keys;
    return rc;
}

/* ---- counting blocks ------------------------------------------------------ */

/* Hooks on PyMem_* and PyObject_* (pymalloc, what sys.getallocatedblocks()
 * counts), calling the allocator they replace; ctx is that allocator.
 * Both domains are used with the GIL held, so a plain counter will do:
 * reading sys.getallocatedblocks() instead walks every pool of every
 * arena, about 5 us for a Flask app, twice a request. */
static void *count_malloc(void *ctx, size_t n)
{
    PyMemAllocatorEx *o = ctx;
    void *p = o->malloc(o->ctx, n);

    hunt.blocks += p != NULL;
    return p;
}

static void *count_calloc(void *ctx, size_t nelem, size_t size)
{
    PyMemAllocatorEx *o = ctx;
    void *p = o->calloc(o->ctx, nelem, size);

    hunt.blocks += p != NULL;
    return p;
}

static void *count_realloc(void *ctx, void *ptr, size_t n)
{
    PyMemAllocatorEx *o = ctx;
    void *p = o->realloc(o->ctx, ptr, n);

    hunt.blocks += p != NULL && ptr == NULL;
    return p;
}

static void count_free(void *ctx, void *ptr)
{
    PyMemAllocatorEx *o = ctx;

    hunt.blocks -= ptr != NULL;
    o->free(o->ctx, ptr);
}

static void count_blocks(void)
{
    PyMemAllocatorEx mem, obj;

    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &hunt.mem_orig);
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &hunt.obj_orig);
    mem = (PyMemAllocatorEx){&hunt.mem_orig, count_malloc, count_calloc, count_realloc,
                             count_free};
    obj = (PyMemAllocatorEx){&hunt.obj_orig, count_malloc, count_calloc, count_realloc,
                             count_free};
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &mem);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &obj);
    hunt.counting = true;
}

/* Blocks the collector frees are not the request's that happens to
 * trigger a collection: it would be credited with the cycles other
 * requests left. A request is charged with what it allocated and did not
 * free itself; cycles it leaves count as retained until collected. */
static PyObject *on_gc(PyObject *self, PyObject *args)
{
    const char *phase;
    PyObject *info;

    if (!PyArg_ParseTuple(args, "sO", &phase, &info))
        return NULL;
    if (strcmp(phase, "start") == 0)
        hunt.gc_start = hunt.blocks;
    else
        hunt.gc_freed += hunt.gc_start - hunt.blocks;
    Py_RETURN_NONE;
}

static PyMethodDef on_gc_def = {"preforkd_hunt_gc", on_gc, METH_VARARGS,
                                "counts the blocks the collector frees"};

static void watch_gc(void)
{
    PyObject *gc = PyImport_ImportModule("gc"), *cbs = NULL, *fn = NULL;

    if (gc != NULL && (cbs = PyObject_GetAttrString(gc, "callbacks")) != NULL &&
        PyList_Check(cbs) && (fn = PyCFunction_New(&on_gc_def, NULL)) != NULL)
        PyList_Append(cbs, fn);
    PyErr_Clear();
    Py_XDECREF(fn);
    Py_XDECREF(cbs);
    Py_XDECREF(gc);
}

int64_t hunt_blocks(void)
{
    return hunt.blocks + hunt.gc_freed;
}

/* ---- figures --------------------------------------------------------------- */

/* Reads the figures (GIL) for the loop to publish. */
static void read_figures(void)
{
    PyObject *gc = PyImport_ImportModule("gc"), *stats = NULL;
    double coll[3] = {0, 0, 0}, unc = 0, alloc;

    alloc = (double)_Py_GetAllocatedBlocks();
    if (gc != NULL)
        stats = PyObject_CallMethod(gc, "get_stats", NULL);
    if (stats != NULL && PyList_Check(stats)) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(stats) && i < 3; i++) {
            PyObject *d = PyList_GET_ITEM(stats, i), *v;

            if (!PyDict_Check(d))
                continue;
            if ((v = PyDict_GetItemString(d, "collections")) != NULL)
                coll[i] = PyLong_AsDouble(v);
            if ((v = PyDict_GetItemString(d, "uncollectable")) != NULL)
                unc += PyLong_AsDouble(v);
        }
    }
    PyErr_Clear();
    Py_XDECREF(stats);
    Py_XDECREF(gc);
    pthread_mutex_lock(&hunt.mu);
    hunt.allocated = alloc;
    memcpy(hunt.collections, coll, sizeof(coll));
    hunt.uncollectable = unc;
    hunt.fresh = true;
    pthread_mutex_unlock(&hunt.mu);
}

void hunt_publish(void)
{
    static const char *gen[3] = {"gen0", "gen1", "gen2"};
    double alloc, coll[3], unc;
    bool fresh;

    if (!hunt.on)
        return;
    pthread_mutex_lock(&hunt.mu);
    fresh = hunt.fresh;
    hunt.fresh = false;
    alloc = hunt.allocated;
    memcpy(coll, hunt.collections, sizeof(coll));
    unc = hunt.uncollectable;
    pthread_mutex_unlock(&hunt.mu);
    if (fresh) {
        pf_metric_set("python_allocated_blocks", "", alloc);
        for (int i = 0; i < 3; i++)
            pf_metric_set("python_gc_collections", gen[i], coll[i]);
        pf_metric_set("python_gc_uncollectable", "", unc);
    }
    if (hunt.route_keys > 0)
        routes_publish();
}

/* ---- the census -------------------------------------------------------------- */

static size_t slot_of(const struct census *c, PyTypeObject *t)
{
    size_t i = ((uintptr_t)t >> 4) * 0x9E3779B97F4A7C15ull & (c->cap - 1);

    while (c->t[i].type != NULL && c->t[i].type != t)
        i = (i + 1) & (c->cap - 1);
    return i;
}

static int census_grow(struct census *c)
{
    struct census n = {.cap = c->cap ? c->cap * 2 : 1024};

    if ((n.t = calloc(n.cap, sizeof(*n.t))) == NULL)
        return -1;
    for (size_t i = 0; i < c->cap; i++)
        if (c->t[i].type != NULL)
            n.t[slot_of(&n, c->t[i].type)] = c->t[i];
    free(c->t);
    c->t = n.t;
    c->cap = n.cap;
    return 0;
}

static void census_free(struct census *c)
{
    for (size_t i = 0; i < c->cap; i++)
        Py_XDECREF(c->t[i].type);
    free(c->t);
    *c = (struct census){0};
}

/* Counts the objects the collector tracks (gc.get_objects(): containers
 * and instances of classes, not str, bytes or int; objects frozen in the
 * mold are left out, which is fine for a difference) by type. 0, or -1
 * (logged) when it is skipped. [GIL] */
static int census_take(struct wsgi *w, struct census *c, const char *when)
{
    Py_ssize_t blocks = _Py_GetAllocatedBlocks();
    PyObject *gc, *objs = NULL;
    double t0 = mono();

    *c = (struct census){0};
    if (blocks > CENSUS_MAX_BLOCKS) {
        wsgi_log(w, PF_LOG_WARN,
                 "wsgi: no census of objects %s: Python has %zd "
                 "blocks, more than %ld (it would hold the GIL too long)",
                 when, blocks, CENSUS_MAX_BLOCKS);
        return -1;
    }
    if ((gc = PyImport_ImportModule("gc")) != NULL)
        objs = PyObject_CallMethod(gc, "get_objects", NULL);
    Py_XDECREF(gc);
    if (objs == NULL || !PyList_Check(objs) || census_grow(c) < 0)
        goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(objs); i++) {
        PyTypeObject *t = Py_TYPE(PyList_GET_ITEM(objs, i));
        size_t s;

        if (c->used * 2 >= c->cap && census_grow(c) < 0)
            goto fail;
        s = slot_of(c, t);
        if (c->t[s].type == NULL) {
            Py_INCREF(t);
            c->t[s].type = t;
            c->used++;
        }
        c->t[s].n++;
    }
    c->objects = PyList_GET_SIZE(objs);
    Py_DECREF(objs);
    c->ms = (mono() - t0) * 1e3;
    return 0;
fail:
    PyErr_Clear();
    Py_XDECREF(objs);
    census_free(c);
    wsgi_log(w, PF_LOG_WARN, "wsgi: no census of objects %s: out of memory", when);
    return -1;
}

static Py_ssize_t census_count(const struct census *c, PyTypeObject *t)
{
    size_t s = slot_of(c, t);

    return c->t[s].type != NULL ? c->t[s].n : 0;
}

/* "module.Qualname", or the bare name of a builtin type. */
static void type_name(PyTypeObject *t, char *out, size_t len)
{
    PyObject *mod = PyObject_GetAttrString((PyObject *)t, "__module__");
    PyObject *qn = PyObject_GetAttrString((PyObject *)t, "__qualname__");
    const char *m = mod != NULL && PyUnicode_Check(mod) ? PyUnicode_AsUTF8(mod) : NULL;
    const char *q = qn != NULL && PyUnicode_Check(qn) ? PyUnicode_AsUTF8(qn) : NULL;

    if (q == NULL)
        q = t->tp_name;
    if (m != NULL && strcmp(m, "builtins") != 0)
        snprintf(out, len, "%s.%s", m, q);
    else
        snprintf(out, len, "%s", q);
    PyErr_Clear();
    Py_XDECREF(mod);
    Py_XDECREF(qn);
}

/* "dict +120431, urllib3.connectionpool.HTTPConnectionPool +3012, ...":
 * the CENSUS_TOP types that grew most from base to now. [GIL] */
static void census_diff(const struct census *base, const struct census *now, char *out,
                        size_t len)
{
    struct tcount top[CENSUS_TOP];
    int ntop = 0;
    size_t o = 0;

    for (size_t i = 0; i < now->cap; i++) {
        PyTypeObject *t = now->t[i].type;
        Py_ssize_t d;
        int k;

        if (t == NULL || (d = now->t[i].n - census_count(base, t)) <= 0)
            continue;
        if (ntop == CENSUS_TOP && d <= top[ntop - 1].n)
            continue;
        k = ntop < CENSUS_TOP ? ntop++ : ntop - 1;
        while (k > 0 && top[k - 1].n < d) {
            top[k] = top[k - 1];
            k--;
        }
        top[k] = (struct tcount){t, d};
    }
    out[0] = '\0';
    for (int i = 0; i < ntop && o + 1 < len; i++) {
        char name[128];
        int n;

        type_name(top[i].type, name, sizeof(name));
        n = snprintf(out + o, len - o, "%s%s +%zd", i ? ", " : "", name, top[i].n);
        if (n < 0)
            break;
        o += (size_t)n;
    }
    if (ntop == 0)
        snprintf(out, len, "nothing");
}

/* ---- the worker's life ------------------------------------------------------ */

void hunt_worker_init(struct wsgi *w)
{
    if (!hunt.on)
        return;
    if (hunt.route_keys > 0 && routes_init(hunt.route_segments, hunt.route_keys) == 0) {
        count_blocks();
        watch_gc();
    }
    read_figures();
    hunt.next_figures = mono() + 1;
}

void hunt_request_begin(struct job *j)
{
    j->hunt_route = -1;
    if (!hunt.counting)
        return;
    j->hunt_route = routes_find(j);
    j->hunt_blocks = hunt_blocks();
}

void hunt_request_end(struct job *j)
{
    if (!hunt.on)
        return;
    if (j->hunt_route >= 0) {
        routes_add(j->hunt_route, hunt_blocks() - j->hunt_blocks);
        j->hunt_route = -1;
    }
    if (++hunt.requests == hunt.census_after && !hunt.base_taken) {
        if (census_take(j->w, &hunt.base, "after the first requests") == 0) {
            hunt.base_taken = true;
            wsgi_log(j->w, PF_LOG_INFO,
                     "wsgi: census of objects after %ld requests "
                     "(the baseline of the census at a max_rss retirement): "
                     "%zd objects of %zu types in %.1f ms",
                     hunt.requests, hunt.base.objects, hunt.base.used, hunt.base.ms);
        }
    }
    if (mono() >= hunt.next_figures) {
        read_figures();
        hunt.next_figures = mono() + 1;
    }
}

/* A worker leaving for max_rss (a soft limit: it has stopped accepting;
 * max_rss_hard is a kill, and nothing runs) logs what grew since its
 * first requests. */
void hunt_worker_exit(struct wsgi *w)
{
    const char *why = pf_worker_leaving();
    struct census now;
    char text[2048];
    PyGILState_STATE g;

    if (!hunt.on || hunt.census_after == 0 || why == NULL || strcmp(why, "max_rss") != 0)
        return;
    if (!hunt.base_taken) {
        pf_log(PF_LOG_INFO,
               "wsgi: no census at this max_rss retirement: the "
               "worker finished %ld requests, the baseline is taken after "
               "census_after = %ld",
               hunt.requests, hunt.census_after);
        return;
    }
    g = PyGILState_Ensure();
    if (census_take(w, &now, "at this max_rss retirement") == 0) {
        census_diff(&hunt.base, &now, text, sizeof(text));
        pf_log(PF_LOG_INFO,
               "wsgi: grew since boot: %s (objects the collector "
               "tracks, %zd after %ld requests, %zd now after %ld; census in "
               "%.1f ms)",
               text, hunt.base.objects, hunt.census_after, now.objects, hunt.requests,
               now.ms);
        census_free(&now);
    }
    PyGILState_Release(g);
}
