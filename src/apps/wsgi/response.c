/*
 * response.c - the Python half of a response: start_response (with its
 * checks) and write(), calling the app, pulling the body with
 * back-pressure (parking once WSGI_WINDOW bytes wait) and close(). Runs
 * where Python runs the app, with the GIL: the loop thread (threads = 0)
 * or a pool thread. The loop's half is deliver.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsgi.h"

/* ---- start_response ---------------------------------------------------------- */

typedef struct {
    PyObject_HEAD struct job *j; /* NULL once the request is over */
} StartResponse;

static PyTypeObject StartResponseType;

/* RFC 9110 tchar */
static bool is_tchar(Py_UCS4 c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c < 128 && strchr("!#$%&'*+-.^_`|~", (int)c) && c != 0);
}

static int check_status(PyObject *s, int *code)
{
    Py_ssize_t n;

    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "status must be a str, not %s",
                     Py_TYPE(s)->tp_name);
        return -1;
    }
    n = PyUnicode_GET_LENGTH(s);
    if (n < 4 || PyUnicode_READ_CHAR(s, 3) != ' ')
        goto bad;
    *code = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ_CHAR(s, i);
        if (i < 3 && (c < '0' || c > '9'))
            goto bad;
        if (i < 3)
            *code = *code * 10 + (int)(c - '0');
        if (c == '\r' || c == '\n' || c == 0 || c > 255)
            goto bad;
    }
    if (*code < 200) {
        PyErr_Format(PyExc_ValueError,
                     "status %R: the app may not send "
                     "1xx responses",
                     s);
        return -1;
    }
    return 0;
bad:
    PyErr_Format(PyExc_ValueError,
                 "status %R is not of the form "
                 "\"200 OK\"",
                 s);
    return -1;
}

static int parse_cl(PyObject *v, uint64_t *out)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    uint64_t x = 0;

    if (n == 0 || n > 19)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ_CHAR(v, i);
        if (c < '0' || c > '9')
            return -1;
        x = x * 10 + (c - '0');
    }
    *out = x;
    return 0;
}

/* A list of (str, str): names are tokens, values latin-1 without CR, LF
 * or NUL. Notes Content-Length. */
static int check_headers(struct job *j, PyObject *h)
{
    j->has_cl = false;
    if (!PyList_Check(h)) {
        PyErr_Format(PyExc_TypeError, "headers must be a list, not %s",
                     Py_TYPE(h)->tp_name);
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(h); i++) {
        PyObject *t = PyList_GET_ITEM(h, i), *name, *value;

        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 2 ||
            !PyUnicode_Check(name = PyTuple_GET_ITEM(t, 0)) ||
            !PyUnicode_Check(value = PyTuple_GET_ITEM(t, 1))) {
            PyErr_Format(PyExc_TypeError,
                         "header %zd must be a (str, str) "
                         "tuple, got %R",
                         i, t);
            return -1;
        }
        if (PyUnicode_GET_LENGTH(name) == 0)
            goto bad;
        for (Py_ssize_t k = 0; k < PyUnicode_GET_LENGTH(name); k++)
            if (!is_tchar(PyUnicode_READ_CHAR(name, k)))
                goto bad;
        for (Py_ssize_t k = 0; k < PyUnicode_GET_LENGTH(value); k++) {
            Py_UCS4 c = PyUnicode_READ_CHAR(value, k);
            if (c == '\r' || c == '\n' || c == 0 || c > 255)
                goto bad;
        }
        if (PyUnicode_CompareWithASCIIString(name, "Content-Length") == 0 ||
            (PyUnicode_GET_LENGTH(name) == 14 && PyUnicode_IS_ASCII(name) &&
             strcasecmp(PyUnicode_AsUTF8(name), "content-length") == 0)) {
            if (j->has_cl) {
                PyErr_SetString(PyExc_ValueError, "two Content-Length "
                                                  "headers");
                return -1;
            }
            if (parse_cl(value, &j->cl) < 0) {
                PyErr_Format(PyExc_ValueError,
                             "Content-Length %R is not a "
                             "number",
                             value);
                return -1;
            }
            j->has_cl = true;
        }
        continue;
    bad:
        PyErr_Format(PyExc_ValueError,
                     "header %R: invalid name or value "
                     "(a token, and latin-1 text without CR, LF or NUL)",
                     t);
        return -1;
    }
    return 0;
}

static PyObject *sr_write(PyObject *self, PyObject *data);
static PyMethodDef write_def = {"write", sr_write, METH_O,
                                "write(bytes): the legacy write callable"};

static PyObject *sr_call(PyObject *self, PyObject *args, PyObject *kw)
{
    static char k1[] = "status", k2[] = "headers", k3[] = "exc_info";
    static char *kwlist[] = {k1, k2, k3, NULL};
    struct job *j = ((StartResponse *)self)->j;
    PyObject *status, *headers, *exc_info = Py_None;
    int code;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:start_response", kwlist, &status,
                                     &headers, &exc_info))
        return NULL;
    if (j == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "start_response called after "
                                            "the response ended");
        return NULL;
    }
    if (exc_info != Py_None) {
        if (j->committed) {
            /* PEP 3333: too late to change the head: re-raise. */
            PyObject *t, *v, *tb;
            if (!PyArg_ParseTuple(exc_info, "OOO", &t, &v, &tb))
                return NULL;
            Py_INCREF(t);
            Py_INCREF(v);
            Py_INCREF(tb);
            PyErr_Restore(t, v, tb == Py_None ? NULL : tb);
            if (tb == Py_None)
                Py_DECREF(tb);
            return NULL;
        }
    } else if (j->sr_status != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "start_response called twice "
                                            "without exc_info");
        return NULL;
    }
    if (check_status(status, &code) < 0 || check_headers(j, headers) < 0)
        return NULL;
    Py_XSETREF(j->sr_status, Py_NewRef(status));
    Py_XSETREF(j->sr_headers, Py_NewRef(headers));
    j->status = code;
    return PyCFunction_New(&write_def, self);
}

static PyTypeObject StartResponseType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "preforkd.StartResponse",
    .tp_basicsize = sizeof(StartResponse),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "start_response(status, headers, exc_info=None)",
    .tp_call = sr_call,
};

int response_init(void)
{
    return PyType_Ready(&StartResponseType);
}

/* ---- the Python half ------------------------------------------------------------ */

static int obuf_add(struct obuf *b, const char *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *np;

        while (cap < b->len + n)
            cap *= 2;
        if ((np = realloc(b->p, cap)) == NULL)
            return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

/* The head as pf_headers in one allocation (names and values copied in
 * latin-1, which start_response checked). Sets j->ohdrs and j->nohdrs. */
static int build_head(struct job *j)
{
    PyObject *h = j->sr_headers;
    Py_ssize_t n = PyList_GET_SIZE(h);
    size_t bytes = (size_t)n * sizeof(pf_header);
    pf_header *out;
    char *p;

    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyList_GET_ITEM(h, i);
        bytes += (size_t)PyUnicode_GET_LENGTH(PyTuple_GET_ITEM(t, 0)) +
                 (size_t)PyUnicode_GET_LENGTH(PyTuple_GET_ITEM(t, 1));
    }
    if ((out = malloc(bytes ? bytes : 1)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    p = (char *)(out + n);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyList_GET_ITEM(h, i);
        pf_str *dst[2] = {&out[i].name, &out[i].value};

        for (int k = 0; k < 2; k++) {
            PyObject *s = PyTuple_GET_ITEM(t, k);
            Py_ssize_t len = PyUnicode_GET_LENGTH(s);

            /* checked: every character < 256, so the str is 1-byte kind */
            memcpy(p, PyUnicode_1BYTE_DATA(s), (size_t)len);
            dst[k]->ptr = p;
            dst[k]->len = (size_t)len;
            p += len;
        }
    }
    free(j->ohdrs);
    j->ohdrs = out;
    j->nohdrs = (size_t)n;
    return 0;
}

/* Makes the head final (with the first body byte, or at the end). */
static int commit(struct job *j)
{
    if (j->committed)
        return 0;
    if (j->sr_status == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the app sent a body (or "
                                            "returned) without calling start_response");
        return -1;
    }
    if (build_head(j) < 0)
        return -1;
    j->committed = true;
    lock(j->w);
    j->head_ready = true;
    unlock(j->w);
    return 0;
}

/* Queues body bytes for the loop, cut at a declared Content-Length.
 * 1 when the declared length is reached (pull no more). */
static int emit(struct job *j, const char *p, size_t n)
{
    int full = 0;

    if (commit(j) < 0)
        return -1;
    if (j->has_cl && j->body_out + n >= j->cl) {
        n = (size_t)(j->cl - j->body_out);
        full = 1;
    }
    lock(j->w);
    if (j->q.p == NULL && j->spare.p != NULL) { /* no malloc per piece */
        j->q = j->spare;
        j->q.len = 0;
        j->spare = (struct obuf){0};
    }
    int rc = obuf_add(&j->q, p, n);
    unlock(j->w);
    if (rc < 0) {
        PyErr_NoMemory();
        return -1;
    }
    j->body_out += n;
    return full;
}

static PyObject *sr_write(PyObject *self, PyObject *data)
{
    struct job *j = ((StartResponse *)self)->j;

    if (j == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "write() after the response "
                                            "ended");
        return NULL;
    }
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "write() takes bytes, not %s",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    if (emit(j, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data)) < 0)
        return NULL;
    if (j->w->nthreads > 0) {
        bool wait;
        threads_post(j);
        lock(j->w);
        wait = (j->q.len >= WSGI_WINDOW || j->blocked) && !j->aborted;
        unlock(j->w);
        if (wait) { /* as fast as the client reads, as a generator is */
            Py_BEGIN_ALLOW_THREADS lock(j->w);
            while ((j->q.len >= WSGI_WINDOW || j->blocked) && !j->aborted &&
                   !j->w->stopping)
                pthread_cond_wait(&j->w->room, &j->w->mu);
            unlock(j->w);
            Py_END_ALLOW_THREADS
        }
    }
    return Py_NewRef(Py_None);
}

static void request_line(struct job *j, char *buf, size_t size)
{
    snprintf(buf, size, "wsgi: %.*s %.*s", (int)j->method.len, j->method.ptr,
             (int)(j->target.len > 512 ? 512 : j->target.len), j->target.ptr);
}

/* A whole small response of our own (404, 500) instead of the app's. */
static void respond_plain(struct job *j, int status, const char *body)
{
    static const char ct[] = "Content-Typetext/plain";
    pf_header *h = malloc(sizeof(*h) + sizeof(ct));

    lock(j->w);
    j->q.len = 0;
    if (h != NULL) {
        memcpy(h + 1, ct, sizeof(ct));
        h->name = (pf_str){(char *)(h + 1), 12};
        h->value = (pf_str){(char *)(h + 1) + 12, 10};
    }
    free(j->ohdrs);
    j->ohdrs = h;
    j->nohdrs = h != NULL;
    j->status = status;
    j->head_ready = true;
    obuf_add(&j->q, body, strlen(body));
    unlock(j->w);
    j->committed = true;
    j->has_cl = false;
}

/* The app raised (or broke the protocol): before the head, a 500; after
 * it, the response is cut. Either way the worker goes on. */
static void app_failed(struct job *j)
{
    char what[700];

    request_line(j, what, sizeof(what));
    if (!j->committed) {
        strcat(what, ": the app failed, answering 500");
        wsgi_log_exception(j->w, what);
        respond_plain(j, 500, "500 Internal Server Error\n");
        return;
    }
    strcat(what, ": the app failed after the response head: cutting the "
                 "response");
    wsgi_log_exception(j->w, what);
    lock(j->w);
    j->failed = true;
    unlock(j->w);
}

/* The result's close(), if it has one (PEP 3333: on every path). */
static void close_result(struct job *j)
{
    PyObject *close, *r;
    char what[700];

    if (j->result == NULL)
        return;
    close = PyObject_GetAttrString(j->result, "close");
    if (close == NULL) {
        PyErr_Clear();
        return;
    }
    r = PyObject_CallNoArgs(close);
    Py_DECREF(close);
    if (r == NULL) {
        request_line(j, what, sizeof(what));
        strcat(what, ": the response's close() failed");
        wsgi_log_exception(j->w, what);
    }
    Py_XDECREF(r);
}

static bool is_aborted(struct job *j)
{
    bool a;

    lock(j->w);
    a = j->aborted;
    unlock(j->w);
    return a;
}

/* Parks j when the loop has enough to write; true if parked. */
static bool maybe_park(struct job *j, bool always)
{
    bool park;

    lock(j->w);
    park = always || j->blocked || j->q.len >= WSGI_WINDOW;
    if (park)
        j->py = PY_IDLE;
    unlock(j->w);
    if (park)
        threads_post(j);
    return park;
}

/* Calls the app. 0: pull the body next; 1: finished (done); 2: handed a
 * file to the loop (Python waits). */
static int start(struct job *j)
{
    struct wsgi *w = j->w;
    bool not_found;
    PyObject *env, *res;
    uint64_t off, len;
    int fd;

    if ((env = environ_build(j, &not_found)) == NULL) {
        app_failed(j);
        return 1;
    }
    if (not_found) {
        Py_DECREF(env);
        respond_plain(j, 404, "404 Not Found\n");
        return 1;
    }
    if ((j->sr = PyObject_New(PyObject, &StartResponseType)) == NULL) {
        Py_DECREF(env);
        app_failed(j);
        return 1;
    }
    ((StartResponse *)j->sr)->j = j;
    res = PyObject_CallFunctionObjArgs(w->app, env, j->sr, NULL);
    Py_DECREF(env);
    if (res == NULL) {
        app_failed(j);
        return 1;
    }
    j->result = res;
    if ((fd = file_wrapper_fd(res, &off, &len)) >= 0) {
        if (commit(j) < 0) {
            close(fd);
            app_failed(j);
            return 1;
        }
        if (j->has_cl && len > j->cl)
            len = j->cl;
        lock(w);
        j->file_fd = fd;
        j->file_off = off;
        j->file_left = len;
        j->body_out = len;
        j->file_sending = true;
        j->py = PY_IDLE;
        unlock(w);
        threads_post(j);
        return 2;
    }
    if (!PyList_CheckExact(res) && !PyTuple_CheckExact(res) &&
        (j->iter = PyObject_GetIter(res)) == NULL) {
        app_failed(j);
        return 1;
    }
    return 0;
}

/* Pulls body pieces. 0: the body ended (or failed: handled); 1: parked. */
static int pull(struct job *j)
{
    bool seq = j->iter == NULL, inline_mode = j->w->nthreads == 0;

    for (;;) {
        PyObject *chunk;
        int full;

        if (is_aborted(j))
            return 0;
        if (seq) {
            if (j->seq_pos >= PySequence_Fast_GET_SIZE(j->result))
                break;
            chunk = Py_NewRef(PySequence_Fast_GET_ITEM(j->result, j->seq_pos));
            j->seq_pos++;
        } else if ((chunk = PyIter_Next(j->iter)) == NULL) {
            if (PyErr_Occurred()) {
                app_failed(j);
                return 0;
            }
            break;
        }
        if (!PyBytes_Check(chunk)) {
            PyErr_Format(PyExc_TypeError,
                         "the response iterable gave %s, "
                         "not bytes",
                         Py_TYPE(chunk)->tp_name);
            Py_DECREF(chunk);
            app_failed(j);
            return 0;
        }
        if (PyBytes_GET_SIZE(chunk) == 0) {
            Py_DECREF(chunk);
            continue;
        }
        full = emit(j, PyBytes_AS_STRING(chunk), (size_t)PyBytes_GET_SIZE(chunk));
        Py_DECREF(chunk);
        if (full < 0) {
            app_failed(j);
            return 0;
        }
        if (full)
            return 0; /* the declared length is reached: the rest is cut */
        /* A generator may be slow: its pieces go out as they come. */
        if (!seq) {
            if (maybe_park(j, inline_mode))
                return 1;
            threads_post(j); /* the loop writes this piece now */
        }
        if (seq && j->q.len >= WSGI_WINDOW && maybe_park(j, false))
            return 1;
    }
    if (commit(j) < 0) /* an empty body: the head alone */
        app_failed(j);
    return 0;
}

/* The end of j's Python side: close(), the input detached, every
 * reference dropped; the loop may end the request once it sees PY_DONE. */
static void finish(struct job *j)
{
    close_result(j);
    if (j->input != NULL)
        input_detach(j->input);
    if (j->sr != NULL)
        ((StartResponse *)j->sr)->j = NULL;
    Py_CLEAR(j->iter);
    Py_CLEAR(j->result);
    Py_CLEAR(j->input);
    Py_CLEAR(j->sr);
    Py_CLEAR(j->sr_status);
    Py_CLEAR(j->sr_headers);
    hunt_request_end(j);
    lock(j->w);
    j->py = PY_DONE;
    unlock(j->w);
    threads_post(j);
}

void response_run(struct job *j)
{
    bool first, file_done;

    lock(j->w);
    first = !j->started;
    j->started = true;
    file_done = j->file_done;
    unlock(j->w);
    if (first) {
        hunt_request_begin(j);
        if (is_aborted(j)) {
            finish(j); /* the client left before the app saw it */
            return;
        }
        switch (start(j)) {
        case 1: finish(j); return;
        case 2: return;
        default: break;
        }
    } else if (file_done || is_aborted(j)) {
        finish(j);
        return;
    }
    if (pull(j) == 0)
        finish(j);
}
