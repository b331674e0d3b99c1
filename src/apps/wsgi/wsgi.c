/*
 * wsgi.c - built-in app `wsgi`: embeds CPython 3.11 and serves a PEP 3333
 * application (Flask, Django, Falcon, ...). This file is the pf_app: the
 * interpreter's start (load: in the mold with preload, else in each
 * worker; the [app] keys are config.c's), the fork hooks (mold),
 * worker_init (each worker: after-fork duties, post_fork, the thread pool)
 * and handle (the loop thread). Owns struct wsgi; see docs/python.md.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsgi.h"

#ifndef WSGI_PY_PREFIX
#define WSGI_PY_PREFIX "/usr"
#endif

/* ---- logging ----------------------------------------------------------------- */

static PyObject *format_exception; /* traceback.format_exception */

void wsgi_log(struct wsgi *w, int level, const char *fmt, ...)
{
    va_list ap;
    char buf[4096];
    struct logline *l;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (w == NULL || w->loop == NULL || pthread_equal(pthread_self(), w->loop_thread)) {
        pf_log(level, "%s", buf);
        return;
    }
    /* pf_* calls belong to the loop thread: hand the line over. */
    if ((size_t)n >= sizeof(buf))
        n = sizeof(buf) - 1;
    l = malloc(sizeof(*l) + (size_t)n + 1);
    if (l == NULL)
        return;
    l->next = NULL;
    l->level = level;
    memcpy(l->text, buf, (size_t)n + 1);
    lock(w);
    *w->logs_tail = l;
    w->logs_tail = &l->next;
    unlock(w);
    ev_async_send(w->loop, &w->wake);
}

/* Logs s line by line (a traceback: one log line per line). */
static void log_lines(struct wsgi *w, int level, const char *s)
{
    while (*s != '\0') {
        const char *nl = strchr(s, '\n');
        size_t len = nl != NULL ? (size_t)(nl - s) : strlen(s);

        if (len > 0)
            wsgi_log(w, level, "%.*s", (int)len, s);
        s += len + (nl != NULL);
    }
}

void wsgi_log_exception(struct wsgi *w, const char *what)
{
    PyObject *type, *value, *tb, *lines = NULL, *text = NULL, *sep = NULL;

    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        wsgi_log(w, PF_LOG_ERROR, "%s", what);
        return;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    wsgi_log(w, PF_LOG_ERROR, "%s:", what);
    if (format_exception != NULL)
        lines = PyObject_CallFunctionObjArgs(format_exception, type,
                                             value ? value : Py_None, tb ? tb : Py_None,
                                             NULL);
    if (lines != NULL && (sep = PyUnicode_FromString("")) != NULL)
        text = PyUnicode_Join(sep, lines);
    if (text != NULL && PyUnicode_Check(text)) {
        const char *s = PyUnicode_AsUTF8(text);
        if (s != NULL)
            log_lines(w, PF_LOG_ERROR, s);
    } else {
        wsgi_log(w, PF_LOG_ERROR, "(the traceback cannot be formatted)");
    }
    PyErr_Clear();
    Py_XDECREF(sep);
    Py_XDECREF(text);
    Py_XDECREF(lines);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* ---- the Python heap ------------------------------------------------------------ */

/* pymalloc's arenas (1 MiB blocks that hold every small object) are
 * counted as they come and go: the heap the daemon shows as "python" next
 * to malloc's ("c"), so that an operator sees which one grows. Objects
 * over 512 bytes come from malloc and count as "c". */
static PyObjectArenaAllocator arena_orig;
static int64_t arena_bytes;

static void *arena_alloc(void *ctx, size_t size)
{
    void *p = arena_orig.alloc(arena_orig.ctx, size);

    if (p != NULL)
        __atomic_add_fetch(&arena_bytes, (int64_t)size, __ATOMIC_RELAXED);
    return p;
}

static void arena_free(void *ctx, void *p, size_t size)
{
    arena_orig.free(arena_orig.ctx, p, size);
    __atomic_sub_fetch(&arena_bytes, (int64_t)size, __ATOMIC_RELAXED);
}

static void count_arenas(void)
{
    PyObjectArenaAllocator a = {NULL, arena_alloc, arena_free};

    PyObject_GetArenaAllocator(&arena_orig);
    PyObject_SetArenaAllocator(&a);
}

void wsgi_publish_heap(void)
{
    int64_t n = __atomic_load_n(&arena_bytes, __ATOMIC_RELAXED);

    pf_worker_heap("python", n > 0 ? (uint64_t)n : 0);
    hunt_publish();
}

/* ---- signals ------------------------------------------------------------------ */

/* preforkd owns the process's signals: whatever the app installs while its
 * code runs at start (import, post_fork) is undone, with a warning. */
struct sigsave {
    struct sigaction sa[NSIG];
    bool ok[NSIG];
};

static void signals_save(struct sigsave *s)
{
    for (int sig = 1; sig < NSIG; sig++)
        s->ok[sig] = sig != SIGKILL && sig != SIGSTOP &&
                     sigaction(sig, NULL, &s->sa[sig]) == 0;
}

/* Puts back every disposition of s; warns about each one that `when`
 * (NULL: quietly) changed. */
static void signals_restore(struct wsgi *w, const struct sigsave *s, const char *when)
{
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction now;

        if (!s->ok[sig] || sigaction(sig, NULL, &now) != 0)
            continue;
        /* The handler alone: the kernel reports flags glibc added
         * (SA_RESTORER) that were not in what we saved. */
        if (now.sa_handler == s->sa[sig].sa_handler)
            continue;
        sigaction(sig, &s->sa[sig], NULL);
        if (when != NULL)
            wsgi_log(w, PF_LOG_WARN,
                     "wsgi: the app changed the handling of SIG%s %s: undone "
                     "(preforkd owns the process's signals)",
                     sigabbrev_np(sig) ? sigabbrev_np(sig) : "?", when);
    }
}

/* ---- the interpreter ---------------------------------------------------------- */

/* preforkd dlopen()s modules RTLD_LOCAL, so libpython (our dependency) came
 * in local too, and C extensions (_ssl, _bz2, ...), which expect its
 * symbols to be global, would fail to load. Promote the very file that is
 * loaded (found from one of its symbols) to RTLD_GLOBAL. */
static int promote_libpython(void)
{
    Dl_info info;

    if (dladdr((void *)(uintptr_t)&Py_InitializeFromConfig, &info) == 0 ||
        info.dli_fname == NULL) {
        pf_log(PF_LOG_ERROR, "wsgi: cannot find the loaded libpython");
        return -1;
    }
    if (dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD) == NULL) {
        pf_log(PF_LOG_ERROR, "wsgi: %s: cannot make its symbols global: %s",
               info.dli_fname, dlerror());
        return -1;
    }
    return 0; /* the handle is kept: libpython stays for the process's life */
}

static int config_status(PyStatus st, PyConfig *c)
{
    if (!PyStatus_Exception(st))
        return 0;
    pf_log(PF_LOG_ERROR, "wsgi: cannot initialise Python: %s%s%s", st.func ? st.func : "",
           st.func ? ": " : "", st.err_msg ? st.err_msg : "?");
    PyConfig_Clear(c);
    return -1;
}

/* Isolated from the environment (PYTHONPATH, PYTHONHOME, the user site,
 * the working directory on sys.path: none of them leaks in from the
 * daemon's environment), with no signal handlers of Python's own. The
 * executable is the one of the Python we were built against, or the
 * virtualenv's, so that sys.prefix and site-packages are what that python3
 * would see. */
static int start_interpreter(const char *venv)
{
    PyConfig c;
    wchar_t *exe;
    char path[4096];

    PyConfig_InitIsolatedConfig(&c);
    c.install_signal_handlers = 0;
    c.buffered_stdio = 0; /* print() reaches the error log at once */
    c.parse_argv = 0;
    if (venv != NULL)
        snprintf(path, sizeof(path), "%s/bin/python" PY_VER_STR, venv);
    else
        snprintf(path, sizeof(path), WSGI_PY_PREFIX "/bin/python" PY_VER_STR);
    exe = Py_DecodeLocale(path, NULL);
    if (exe == NULL) {
        pf_log(PF_LOG_ERROR, "wsgi: cannot decode %s", path);
        PyConfig_Clear(&c);
        return -1;
    }
    if (config_status(PyConfig_SetString(&c, &c.program_name, exe), &c) < 0 ||
        config_status(PyConfig_SetString(&c, &c.executable, exe), &c) < 0) {
        PyMem_RawFree(exe);
        return -1;
    }
    PyMem_RawFree(exe);
    if (config_status(Py_InitializeFromConfig(&c), &c) < 0)
        return -1;
    PyConfig_Clear(&c);
    return 0;
}

/* python_path: each comma-separated entry, in order, first on sys.path. */
static int set_python_path(const char *list)
{
    PyObject *sys_path = PySys_GetObject("path"); /* borrowed */
    Py_ssize_t at = 0;

    if (list == NULL)
        return 0;
    if (sys_path == NULL || !PyList_Check(sys_path)) {
        PyErr_SetString(PyExc_RuntimeError, "sys.path is not a list");
        return -1;
    }
    while (*list != '\0') {
        const char *end = strchr(list, ',');
        size_t len = end ? (size_t)(end - list) : strlen(list);
        const char *s = list;
        PyObject *p;

        while (len > 0 && (*s == ' ' || *s == '\t'))
            s++, len--;
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (len > 0) {
            p = PyUnicode_DecodeFSDefaultAndSize(s, (Py_ssize_t)len);
            if (p == NULL || PyList_Insert(sys_path, at++, p) < 0) {
                Py_XDECREF(p);
                return -1;
            }
            Py_DECREF(p);
        }
        list = end ? end + 1 : list + strlen(list);
    }
    return 0;
}

static PyObject *post_fork_fn; /* post_fork's callable, when set */

/* Threads that the import started do not survive fork(): say so, once per
 * name (a thread's name is all the app can recognise). */
static void warn_import_threads(struct wsgi *w)
{
    PyObject *mods = PySys_GetObject("modules"), *threading, *list = NULL, *main_t = NULL,
             *seen = NULL;

    if (mods == NULL || (threading = PyDict_GetItemString(mods, "threading")) == NULL)
        return; /* threading never imported: no Python thread */
    list = PyObject_CallMethod(threading, "enumerate", NULL);
    main_t = PyObject_CallMethod(threading, "main_thread", NULL);
    seen = PySet_New(NULL);
    if (list == NULL || main_t == NULL || seen == NULL)
        goto out;
    for (Py_ssize_t i = 0; i < PyList_Size(list); i++) {
        PyObject *t = PyList_GET_ITEM(list, i), *name;
        const char *s;

        if (t == main_t || (name = PyObject_GetAttrString(t, "name")) == NULL)
            continue;
        s = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
        if (s != NULL && PySet_Contains(seen, name) == 0) {
            PySet_Add(seen, name);
            wsgi_log(w, PF_LOG_WARN,
                     "wsgi: thread '%s' started at import time will not "
                     "exist in workers",
                     s);
        }
        Py_DECREF(name);
    }
out:
    PyErr_Clear();
    Py_XDECREF(seen);
    Py_XDECREF(main_t);
    Py_XDECREF(list);
}

/* gc.collect() then gc.freeze(): objects made by the import are never
 * scanned again, so collections in workers do not write to (and unshare)
 * the pages they live on. */
static int freeze_gc(void)
{
    PyObject *gc = PyImport_ImportModule("gc"), *r;

    if (gc == NULL)
        return -1;
    r = PyObject_CallMethod(gc, "collect", NULL);
    Py_XDECREF(r);
    r = r ? PyObject_CallMethod(gc, "freeze", NULL) : NULL;
    Py_XDECREF(r);
    Py_DECREF(gc);
    return r != NULL ? 0 : -1;
}

static int import_app(struct wsgi *w, const pf_app_config *cfg, const char *python_path)
{
    PyObject *tb;

    if ((tb = PyImport_ImportModule("traceback")) != NULL) {
        format_exception = PyObject_GetAttrString(tb, "format_exception");
        Py_DECREF(tb);
    }
    if (format_exception == NULL || set_python_path(python_path) < 0 ||
        input_init() < 0 || response_init() < 0 || (w->errors = errors_new(w)) == NULL ||
        environ_init(w) < 0) {
        wsgi_log_exception(w, "wsgi: cannot set up the interpreter");
        return -1;
    }
    if ((w->app = config_resolve(w, cfg, "app", w->app_spec)) == NULL)
        return -1;
    if (w->post_fork != NULL &&
        (post_fork_fn = config_resolve(w, cfg, "post_fork", w->post_fork)) == NULL)
        return -1;
    if (w->gc_freeze && freeze_gc() < 0) {
        wsgi_log_exception(w, "wsgi: gc.freeze() failed");
        return -1;
    }
    if (pf_worker_id() == 0)
        warn_import_threads(w);
    return 0;
}

static void wsgi_free(struct wsgi *w)
{
    if (w == NULL)
        return;
    free(w->app_spec);
    free(w->post_fork);
    free(w->script_name);
    free(w->url_scheme);
    free(w);
}

static int wsgi_load(const pf_app_config *cfg, void **state)
{
    struct wsgi *w = calloc(1, sizeof(*w));
    const char *python_path, *venv;
    struct sigsave *saved = NULL;
    int rc = -1;

    if (w == NULL)
        return -1;
    if (config_read(cfg, w, &python_path, &venv) < 0) {
        wsgi_free(w);
        return -1;
    }
    if (Py_IsInitialized()) {
        /* A second load in one process (a reload without a mold): an
         * interpreter is never finalised and started again. */
        pf_log(PF_LOG_ERROR,
               "wsgi: Python is already running in this "
               "process (pid %d): the app can only be loaded again in a "
               "new process",
               (int)getpid());
        wsgi_free(w);
        return -1;
    }
    if (promote_libpython() < 0 || (saved = malloc(sizeof(*saved))) == NULL) {
        wsgi_free(w);
        return -1;
    }
    signals_save(saved);
    count_arenas();
    if (start_interpreter(venv) < 0) {
        free(saved);
        wsgi_free(w);
        return -1;
    }
    /* The signal module, when first imported, puts its KeyboardInterrupt
     * handler on a default SIGINT: that is Python's doing, not the app's,
     * so it is undone quietly here, before the app's import. */
    Py_XDECREF(PyImport_ImportModule("signal"));
    PyErr_Clear();
    signals_restore(NULL, saved, NULL);
    w->load_pid = getpid();
    rc = import_app(w, cfg, python_path);
    signals_restore(w, saved, "at import time");
    free(saved);
    /* Let the app's own threads (if any) run while we wait; every later
     * entry takes the GIL back. */
    w->main_ts = PyEval_SaveThread();
    if (rc < 0) {
        wsgi_free(w); /* the interpreter stays: this process exits soon */
        return -1;
    }
    *state = w;
    return 0;
}

/* In the mold, right before a fork: the GIL and Python's fork locks. */
static void wsgi_fork_prepare(void *state)
{
    struct wsgi *w = state;

    PyEval_RestoreThread(w->main_ts);
    PyOS_BeforeFork();
}

static void wsgi_fork_parent(void *state)
{
    struct wsgi *w = state;

    PyOS_AfterFork_Parent();
    w->main_ts = PyEval_SaveThread();
}

/* Each worker: after-fork duties (only when forked after load, i.e. load
 * ran in another process), the app's post_fork, the thread pool. */
static int wsgi_worker_init(void *state)
{
    struct wsgi *w = state;
    struct sigsave *saved;
    int rc = 0;

    if (getpid() != w->load_pid)
        PyOS_AfterFork_Child(); /* fork_prepare left us the GIL */
    else
        PyEval_RestoreThread(w->main_ts);
    w->loop = pf_loop();
    w->loop_thread = pthread_self();
    hunt_worker_init(w);
    if (post_fork_fn != NULL && (saved = malloc(sizeof(*saved))) != NULL) {
        PyObject *r;

        signals_save(saved);
        r = PyObject_CallNoArgs(post_fork_fn);
        signals_restore(w, saved, "in post_fork");
        free(saved);
        if (r == NULL) {
            wsgi_log_exception(w, "wsgi: post_fork failed");
            rc = -1;
        }
        Py_XDECREF(r);
    }
    if (rc == 0 && threads_start(w) < 0)
        rc = -1;
    w->main_ts = PyEval_SaveThread();
    return rc;
}

static void on_abort(pf_request *r, void *arg)
{
    threads_abort(arg);
}

static int wsgi_handle(pf_request *r, void *state)
{
    struct wsgi *w = state;
    size_t n = pf_request_header_count(r);
    struct job *j = calloc(1, sizeof(*j) + n * sizeof(pf_header));
    const char *peer = pf_request_peer(r);

    if (j == NULL)
        return -1;
    j->w = w;
    j->r = r;
    j->method = pf_request_method(r);
    j->target = pf_request_target(r);
    j->path = pf_request_path(r);
    j->query = pf_request_query(r);
    j->body = pf_request_body(r);
    j->version = pf_request_version(r);
    snprintf(j->peer, sizeof(j->peer), "%s", peer ? peer : "");
    j->peer_port = pf_request_peer_port(r);
    snprintf(j->local, sizeof(j->local), "%s", pf_request_local(r, &j->local_port));
    j->hdrs = (pf_header *)(j + 1);
    for (size_t i = 0; i < n; i++)
        j->hdrs[i] = *pf_request_header_at(r, i);
    j->nhdrs = n;
    j->file_fd = -1;
    j->py = PY_IDLE;
    pf_request_on_abort(r, on_abort, j);
    if (w->nthreads == 0) {
        threads_run_inline(j);
        response_deliver(j);
    } else {
        threads_schedule(j);
    }
    return 0;
}

static void wsgi_worker_exit(void *state)
{
    hunt_worker_exit(state);
    threads_stop(state);
}

/* Kept to the end: a pool thread still in the app uses it. */
static struct wsgi *unloaded_with_threads;

/* Python is not finalised: with the app's threads and C extensions that
 * is unsafe, and the process exits right after this. In a worker whose
 * pool threads ran (preload = false), the state outlives unload: a thread
 * stuck in the app may still finish a request and touch it. */
static void wsgi_unload(void *state)
{
    struct wsgi *w = state;

    if (w == NULL)
        return;
    if (w->started_threads > 0) {
        unloaded_with_threads = w;
        return;
    }
    w->app = NULL; /* Python's, left to the process's end */
    wsgi_free(w);
}

PF_APP_DEFINE(.name = "wsgi",
              .description = "a Python WSGI application (PEP 3333) on an "
                             "embedded CPython " PY_VER_STR,
              .load = wsgi_load, .worker_init = wsgi_worker_init, .handle = wsgi_handle,
              .worker_exit = wsgi_worker_exit, .unload = wsgi_unload,
              .fork_prepare = wsgi_fork_prepare, .fork_parent = wsgi_fork_parent,
              .command = trace_command);
