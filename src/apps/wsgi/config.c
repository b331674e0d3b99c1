/*
 * config.c - the wsgi module's [app] keys: read and checked (every key, so
 * none is "unknown"; app and post_fork as MODULE:CALLABLE, virtualenv
 * against the embedded Python), then app and post_fork resolved to their
 * callables once the interpreter runs (an import, a dotted getattr, a
 * factory call with literal arguments). Runs in the process that runs
 * load: the mold with preload, else each worker; config_resolve with the
 * GIL. Convention: 0 / -1 (or NULL), after a pf_config_error or a logged
 * traceback.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "wsgi.h"

/* ---- the keys --------------------------------------------------------------- */

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
 * app, CALLABLE may be a factory call, NAME(ARGS) (config_resolve checks
 * ARGS). */
static int check_spec(const pf_app_config *cfg, const char *key, const char *v)
{
    const char *colon = strchr(v, ':');
    size_t mlen = colon ? (size_t)(colon - v) : strlen(v);
    const char *callable = colon ? colon + 1 : "";
    const char *paren = strchr(callable, '(');
    size_t clen = paren ? (size_t)(paren - callable) : strlen(callable);
    bool call_ok = paren == NULL || (strcmp(key, "app") == 0 && v[strlen(v) - 1] == ')');

    if (!is_ident_path(v, mlen) ||
        (colon != NULL && (!is_ident_path(callable, clen) || !call_ok)))
        return pf_config_error(cfg, key,
                               "expected MODULE:CALLABLE (dotted Python "
                               "names, e.g. myproject.wsgi:application%s), "
                               "got \"%s\"",
                               strcmp(key, "app") == 0
                                   ? ", or a factory: myproject:create_app()"
                                   : "",
                               v);
    return 0;
}

static int parse_bool(const pf_app_config *cfg, const char *key, bool dflt, bool *out)
{
    const char *v = pf_config_get(cfg, key);

    *out = dflt;
    if (v == NULL)
        return 0;
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") ||
        !strcmp(v, "1"))
        *out = true;
    else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") ||
             !strcmp(v, "0"))
        *out = false;
    else
        return pf_config_error(cfg, key, "expected true or false, got \"%s\"", v);
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
                               "expected a number from 0 to 256, got \"%s\"", v);
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
        return pf_config_error(cfg, "virtualenv",
                               "expected an absolute "
                               "path, got \"%s\"",
                               venv);
    snprintf(path, sizeof(path), "%s/pyvenv.cfg", venv);
    if ((f = fopen(path, "r")) == NULL)
        return pf_config_error(cfg, "virtualenv",
                               "%s: %s (not a virtualenv "
                               "made by python3 -m venv?)",
                               path, strerror(errno));
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
                                   "embeds Python " PY_VER_STR,
                                   venv, major, minor);
        }
    }
    fclose(f);
    snprintf(path, sizeof(path), "%s/lib/python" PY_VER_STR "/site-packages", venv);
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return pf_config_error(cfg, "virtualenv",
                               "%s: no such directory: "
                               "not a virtualenv for Python " PY_VER_STR,
                               path);
    return 0;
}
/* Reads every [app] key (all of them, so none is "unknown"). */
int config_read(const pf_app_config *cfg, struct wsgi *w, const char **python_path,
                const char **venv)
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
        rc |= pf_config_error(cfg, "app",
                              "required: the WSGI application "
                              "as MODULE:CALLABLE, e.g. myproject.wsgi:"
                              "application");
    else if (check_spec(cfg, "app", app) < 0)
        rc = -1;
    if (pf != NULL && check_spec(cfg, "post_fork", pf) < 0)
        rc = -1;
    if (sn != NULL && *sn != '\0' && *sn != '/')
        rc |= pf_config_error(cfg, "script_name",
                              "expected a path starting "
                              "with /, got \"%s\"",
                              sn);
    if (scheme != NULL && strcmp(scheme, "http") && strcmp(scheme, "https"))
        rc |= pf_config_error(cfg, "url_scheme",
                              "expected http or https, "
                              "got \"%s\"",
                              scheme);
    if (*venv != NULL && check_virtualenv(cfg, *venv) < 0)
        rc = -1;
    if (rc != 0)
        return -1;
    w->app_spec = xstrdup(app);
    w->post_fork = pf ? xstrdup(pf) : NULL;
    w->script_name = xstrdup(sn ? sn : "");
    w->url_scheme = xstrdup(scheme ? scheme : "http");
    if (!w->app_spec || (pf && !w->post_fork) || !w->script_name || !w->url_scheme)
        return -1;
    w->script_name_len = strlen(w->script_name);
    while (w->script_name_len > 0 && w->script_name[w->script_name_len - 1] == '/')
        w->script_name[--w->script_name_len] = '\0';
    return 0;
}

/* ---- app and post_fork: from MODULE:CALLABLE to a callable ------------------ */

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
    if ((code = Py_CompileString(src, "<app factory arguments>", Py_eval_input)) !=
        NULL) {
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
static PyObject *call_factory(struct wsgi *w, const pf_app_config *cfg, const char *key,
                              const char *spec, PyObject *fn, const char *args)
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
        pf_config_error(cfg, key,
                        "%s: the factory's arguments must be literals "
                        "(numbers, strings, True, None, ...)",
                        spec);
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
PyObject *config_resolve(struct wsgi *w, const pf_app_config *cfg, const char *key,
                         const char *spec)
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
        snprintf(what, sizeof(what), "wsgi: [app] %s: cannot import \"%s\"", key,
                 modname);
        wsgi_log_exception(w, what);
        return NULL;
    }
    obj = get_dotted(mod, attr);
    Py_DECREF(mod);
    if (obj == NULL) {
        PyErr_Clear();
        pf_config_error(cfg, key, "module \"%s\" has no attribute \"%s\"", modname, attr);
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
