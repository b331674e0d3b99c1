/*
 * wsgi.c - built-in app `wsgi`: embeds CPython 3.11 and serves a PEP 3333
 * application (Flask, Django, Falcon, ...). This file is the pf_app: the
 * [app] keys, the interpreter's start (load: in the mold with preload, else
 * in each worker), the fork hooks (mold), worker_init (each worker: after-
 * fork duties, post_fork, the thread pool) and handle (the loop thread).
 * Owns struct wsgi; see docs/python.md.
 */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wsgi.h"

#ifndef WSGI_PY_PREFIX
#define WSGI_PY_PREFIX "/usr"
#endif
#define PY_VER_STR                                                            \
    Py_STRINGIFY(PY_MAJOR_VERSION) "." Py_STRINGIFY(PY_MINOR_VERSION)

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
    if (w == NULL || w->loop == NULL ||
        pthread_equal(pthread_self(), w->loop_thread)) {
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
                                             value ? value : Py_None,
                                             tb ? tb : Py_None, NULL);
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
static void signals_restore(struct wsgi *w, const struct sigsave *s,
                            const char *when)
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

/* ---- configuration ---------------------------------------------------------- */

static bool is_ident_path(const char *s, size_t len)
{
    bool start = true;

    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (start)
                return false;
            start = true;
            continue;
        }
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (!start && c >= '0' && c <= '9') || c >= 0x80))
            return false;
        start = false;
    }
    return !start;
}

/* MODULE[:CALLABLE], both dotted names; CALLABLE defaults to dflt. For
 * app, CALLABLE may be a factory call, NAME(ARGS) (resolve checks ARGS). */
static int check_spec(const pf_app_config *cfg, const char *key,
                      const char *v)
{
    const char *colon = strchr(v, ':');
    size_t mlen = colon ? (size_t)(colon - v) : strlen(v);
    const char *callable = colon ? colon + 1 : "";
    const char *paren = strchr(callable, '(');
    size_t clen = paren ? (size_t)(paren - callable) : strlen(callable);
    bool call_ok = paren == NULL ||
                   (strcmp(key, "app") == 0 && v[strlen(v) - 1] == ')');

    if (!is_ident_path(v, mlen) ||
        (colon != NULL && (!is_ident_path(callable, clen) || !call_ok)))
        return pf_config_error(cfg, key,
                               "expected MODULE:CALLABLE (dotted Python "
                               "names, e.g. myproject.wsgi:application%s), "
                               "got \"%s\"", strcmp(key, "app") == 0
                                   ? ", or a factory: myproject:create_app()" : "",
                               v);
    return 0;
}

static int parse_bool(const pf_app_config *cfg, const char *key, bool dflt,
                      bool *out)
{
    const char *v = pf_config_get(cfg, key);

    *out = dflt;
    if (v == NULL)
        return 0;
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
        !strcasecmp(v, "on") || !strcmp(v, "1"))
        *out = true;
    else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") ||
             !strcasecmp(v, "off") || !strcmp(v, "0"))
        *out = false;
    else
        return pf_config_error(cfg, key, "expected true or false, got \"%s\"",
                               v);
    return 0;
}

static int parse_threads(const pf_app_config *cfg, int *out)
{
    const char *v = pf_config_get(cfg, "threads");
    char *end;
    long n;

    *out = 1;
    if (v == NULL)
        return 0;
    errno = 0;
    n = strtol(v, &end, 10);
    /* Digits only, as the daemon's own numbers: strtol would take " 5"
     * and "+5". */
    if (*v < '0' || *v > '9' || errno != 0 || *end != '\0' || n < 0 || n > 256)
        return pf_config_error(cfg, "threads",
                               "expected a number from 0 to 256, got \"%s\"",
                               v);
    *out = (int)n;
    return 0;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);

    if (d == NULL)
        pf_log(PF_LOG_ERROR, "wsgi: out of memory");
    return d;
}

/* A virtualenv for this Python: VENV/lib/python3.11/site-packages. */
static int check_virtualenv(const pf_app_config *cfg, const char *venv)
{
    char path[4096], line[256];
    struct stat st;
    FILE *f;

    if (venv[0] != '/')
        return pf_config_error(cfg, "virtualenv", "expected an absolute "
                               "path, got \"%s\"", venv);
    snprintf(path, sizeof(path), "%s/pyvenv.cfg", venv);
    if ((f = fopen(path, "r")) == NULL)
        return pf_config_error(cfg, "virtualenv", "%s: %s (not a virtualenv "
                               "made by python3 -m venv?)", path,
                               strerror(errno));
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned major, minor;
        char *eq = strchr(line, '=');

        if (strncmp(line, "version", 7) != 0 || eq == NULL)
            continue;
        if (sscanf(eq + 1, " %u.%u", &major, &minor) == 2 &&
            (major != PY_MAJOR_VERSION || minor != PY_MINOR_VERSION)) {
            fclose(f);
            return pf_config_error(cfg, "virtualenv",
                                   "%s is for Python %u.%u, this preforkd "
                                   "embeds Python " PY_VER_STR, venv, major,
                                   minor);
        }
    }
    fclose(f);
    snprintf(path, sizeof(path), "%s/lib/python" PY_VER_STR "/site-packages",
             venv);
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return pf_config_error(cfg, "virtualenv", "%s: no such directory: "
                               "not a virtualenv for Python " PY_VER_STR,
                               path);
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

/* Reads every [app] key (all of them, so none is "unknown"). */
static int read_config(const pf_app_config *cfg, struct wsgi *w,
                       const char **python_path, const char **venv)
{
    const char *app = pf_config_get(cfg, "app");
    const char *pf = pf_config_get(cfg, "post_fork");
    const char *sn = pf_config_get(cfg, "script_name");
    const char *scheme = pf_config_get(cfg, "url_scheme");
    int rc = 0;

    *python_path = pf_config_get(cfg, "python_path");
    *venv = pf_config_get(cfg, "virtualenv");
    rc |= parse_threads(cfg, &w->nthreads);
    rc |= parse_bool(cfg, "gc_freeze", true, &w->gc_freeze);
    rc |= pf_config_get_duration(cfg, "stuck_timeout", 30., &w->stuck_timeout);
    rc |= hunt_config(cfg);
    if (app == NULL || *app == '\0')
        rc |= pf_config_error(cfg, "app", "required: the WSGI application "
                              "as MODULE:CALLABLE, e.g. myproject.wsgi:"
                              "application");
    else if (check_spec(cfg, "app", app) < 0)
        rc = -1;
    if (pf != NULL && check_spec(cfg, "post_fork", pf) < 0)
        rc = -1;
    if (sn != NULL && *sn != '\0' && *sn != '/')
        rc |= pf_config_error(cfg, "script_name", "expected a path starting "
                              "with /, got \"%s\"", sn);
    if (scheme != NULL && strcmp(scheme, "http") && strcmp(scheme, "https"))
        rc |= pf_config_error(cfg, "url_scheme", "expected http or https, "
                              "got \"%s\"", scheme);
    if (*venv != NULL && check_virtualenv(cfg, *venv) < 0)
        rc = -1;
    if (rc != 0)
        return -1;
    w->app_spec = xstrdup(app);
    w->post_fork = pf ? xstrdup(pf) : NULL;
    w->script_name = xstrdup(sn ? sn : "");
    w->url_scheme = xstrdup(scheme ? scheme : "http");
    if (!w->app_spec || (pf && !w->post_fork) || !w->script_name ||
        !w->url_scheme)
        return -1;
    w->script_name_len = strlen(w->script_name);
    while (w->script_name_len > 0 &&
           w->script_name[w->script_name_len - 1] == '/')
        w->script_name[--w->script_name_len] = '\0';
    return 0;
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
    pf_log(PF_LOG_ERROR, "wsgi: cannot initialise Python: %s%s%s",
           st.func ? st.func : "", st.func ? ": " : "",
           st.err_msg ? st.err_msg : "?");
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

/* Whether tree (ast.parse of "(lambda *a, **k: (a, k))(ARGS)", "eval")
 * calls with literal arguments only: every argument and keyword value
 * passes ast.literal_eval. */
static bool check_literal_call(PyObject *tree)
{
    PyObject *ast = PyImport_ImportModule("ast"), *call = NULL, *lit = NULL;
    PyObject *args = NULL, *kws = NULL;
    bool ok = false;

    if (ast == NULL || (call = PyObject_GetAttrString(tree, "body")) == NULL ||
        (lit = PyObject_GetAttrString(ast, "literal_eval")) == NULL ||
        (args = PyObject_GetAttrString(call, "args")) == NULL ||
        (kws = PyObject_GetAttrString(call, "keywords")) == NULL)
        goto done;
    ok = true;
    for (Py_ssize_t i = 0; ok && i < PyList_Size(args); i++) {
        PyObject *v = PyObject_CallOneArg(lit, PyList_GET_ITEM(args, i));
        ok = v != NULL;
        Py_XDECREF(v);
    }
    for (Py_ssize_t i = 0; ok && i < PyList_Size(kws); i++) {
        PyObject *val = PyObject_GetAttrString(PyList_GET_ITEM(kws, i), "value");
        PyObject *v = val ? PyObject_CallOneArg(lit, val) : NULL;
        ok = v != NULL;
        Py_XDECREF(v);
        Py_XDECREF(val);
    }
done:
    PyErr_Clear();
    Py_XDECREF(kws);
    Py_XDECREF(args);
    Py_XDECREF(lit);
    Py_XDECREF(call);
    Py_XDECREF(ast);
    return ok;
}

/* (args, kwargs) of the literal call src, checked by check_literal_call:
 * evaluated with no builtins. New reference, or NULL with an exception. */
static PyObject *eval_args(const char *src)
{
    PyObject *globals = PyDict_New(), *none = PyDict_New(), *res = NULL, *code;

    if (globals == NULL || none == NULL ||
        PyDict_SetItemString(globals, "__builtins__", none) < 0)
        goto done;
    if ((code = Py_CompileString(src, "<app factory arguments>", Py_eval_input)) != NULL) {
        res = PyEval_EvalCode(code, globals, globals);
        Py_DECREF(code);
    }
done:
    Py_XDECREF(none);
    Py_XDECREF(globals);
    return res;
}

/* getattr along a dotted path. New reference, or NULL with an exception. */
static PyObject *get_dotted(PyObject *obj, const char *path)
{
    char name[256];

    Py_INCREF(obj);
    while (*path != '\0') {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        PyObject *next;

        snprintf(name, sizeof(name), "%.*s", (int)len, path);
        next = PyObject_GetAttrString(obj, name);
        Py_DECREF(obj);
        if (next == NULL)
            return NULL;
        obj = next;
        path += len + (dot != NULL);
    }
    return obj;
}

/* An application factory, as Gunicorn takes it: "create_app()" or
 * "create_app('prod', debug=False)" -> calls ATTR with the literal
 * arguments (ast.literal_eval; keywords too) and returns what it returns.
 * NULL after logging why. */
static PyObject *call_factory(struct wsgi *w, const pf_app_config *cfg,
                              const char *key, const char *spec, PyObject *fn,
                              const char *args)
{
    PyObject *ast = NULL, *call = NULL, *res = NULL;
    char src[600], what[700];

    /* f(*a, **k) with the arguments parsed as a literal call of a dummy. */
    snprintf(src, sizeof(src), "(lambda *a, **k: (a, k))(%s)", args);
    if ((ast = PyImport_ImportModule("ast")) == NULL)
        goto fail;
    call = PyObject_CallMethod(ast, "parse", "sss", src, "<app>", "eval");
    if (call == NULL || !check_literal_call(call)) {
        PyErr_Clear();
        pf_config_error(cfg, key, "%s: the factory's arguments must be literals "
                        "(numbers, strings, True, None, ...)", spec);
        goto done;
    }
    Py_CLEAR(call);
    if ((call = eval_args(src)) == NULL)
        goto fail;
    res = PyObject_Call(fn, PyTuple_GET_ITEM(call, 0), PyTuple_GET_ITEM(call, 1));
    if (res == NULL)
        goto fail;
    goto done;
fail:
    snprintf(what, sizeof(what), "wsgi: [app] %s: calling the factory %s", key, spec);
    wsgi_log_exception(w, what);
done:
    Py_XDECREF(call);
    Py_XDECREF(ast);
    return res;
}

/* Imports MODULE of spec and returns CALLABLE (default "application"), or
 * NULL after logging why: an import failure with its traceback, a bad
 * attribute as a configuration error naming the key. CALLABLE may be a
 * factory call, "create_app()" (call_factory). */
static PyObject *resolve(struct wsgi *w, const pf_app_config *cfg,
                         const char *key, const char *spec)
{
    const char *colon = strchr(spec, ':');
    const char *attr = colon ? colon + 1 : "application";
    const char *paren = strchr(attr, '(');
    char modname[512], what[600], name[256], args[512] = "";
    PyObject *mod, *obj;
    size_t alen = strlen(attr);

    if (paren != NULL) {
        if (attr[alen - 1] != ')' || paren == attr) {
            pf_config_error(cfg, key, "%s: expected NAME or NAME(ARGS)", spec);
            return NULL;
        }
        snprintf(args, sizeof(args), "%.*s", (int)(alen - (size_t)(paren - attr) - 2),
                 paren + 1);
        snprintf(name, sizeof(name), "%.*s", (int)(paren - attr), attr);
        attr = name;
    }

    snprintf(modname, sizeof(modname), "%.*s",
             (int)(colon ? (size_t)(colon - spec) : strlen(spec)), spec);
    mod = PyImport_ImportModule(modname);
    if (mod == NULL) {
        snprintf(what, sizeof(what),
                 "wsgi: [app] %s: cannot import \"%s\"", key, modname);
        wsgi_log_exception(w, what);
        return NULL;
    }
    obj = get_dotted(mod, attr);
    Py_DECREF(mod);
    if (obj == NULL) {
        PyErr_Clear();
        pf_config_error(cfg, key, "module \"%s\" has no attribute \"%s\"",
                        modname, attr);
        return NULL;
    }
    if (paren != NULL && PyCallable_Check(obj)) {
        PyObject *made = call_factory(w, cfg, key, spec, obj, args);
        Py_DECREF(obj);
        if ((obj = made) == NULL)
            return NULL;
    }
    if (!PyCallable_Check(obj)) {
        pf_config_error(cfg, key, "%s is a %s, not a callable", spec,
                        Py_TYPE(obj)->tp_name);
        Py_DECREF(obj);
        return NULL;
    }
    return obj;
}

static PyObject *post_fork_fn; /* post_fork's callable, when set */

/* Threads that the import started do not survive fork(): say so, once per
 * name (a thread's name is all the app can recognise). */
static void warn_import_threads(struct wsgi *w)
{
    PyObject *mods = PySys_GetObject("modules"), *threading, *list = NULL,
             *main_t = NULL, *seen = NULL;

    if (mods == NULL ||
        (threading = PyDict_GetItemString(mods, "threading")) == NULL)
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
                     "exist in workers", s);
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

static int import_app(struct wsgi *w, const pf_app_config *cfg,
                      const char *python_path)
{
    PyObject *tb;

    if ((tb = PyImport_ImportModule("traceback")) != NULL) {
        format_exception = PyObject_GetAttrString(tb, "format_exception");
        Py_DECREF(tb);
    }
    if (format_exception == NULL || set_python_path(python_path) < 0 ||
        input_init() < 0 || response_init() < 0 ||
        (w->errors = errors_new(w)) == NULL || environ_init(w) < 0) {
        wsgi_log_exception(w, "wsgi: cannot set up the interpreter");
        return -1;
    }
    if ((w->app = resolve(w, cfg, "app", w->app_spec)) == NULL)
        return -1;
    if (w->post_fork != NULL &&
        (post_fork_fn = resolve(w, cfg, "post_fork", w->post_fork)) == NULL)
        return -1;
    if (w->gc_freeze && freeze_gc() < 0) {
        wsgi_log_exception(w, "wsgi: gc.freeze() failed");
        return -1;
    }
    if (pf_worker_id() == 0)
        warn_import_threads(w);
    return 0;
}

static int wsgi_load(const pf_app_config *cfg, void **state)
{
    struct wsgi *w = calloc(1, sizeof(*w));
    const char *python_path, *venv;
    struct sigsave *saved = NULL;
    int rc = -1;

    if (w == NULL)
        return -1;
    if (read_config(cfg, w, &python_path, &venv) < 0) {
        wsgi_free(w);
        return -1;
    }
    if (Py_IsInitialized()) {
        /* A second load in one process (a reload without a mold): an
         * interpreter is never finalised and started again. */
        pf_log(PF_LOG_ERROR, "wsgi: Python is already running in this "
               "process (pid %d): the app can only be loaded again in a "
               "new process", (int)getpid());
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
              .load = wsgi_load, .worker_init = wsgi_worker_init,
              .handle = wsgi_handle, .worker_exit = wsgi_worker_exit,
              .unload = wsgi_unload, .fork_prepare = wsgi_fork_prepare,
              .fork_parent = wsgi_fork_parent, .command = trace_command);
