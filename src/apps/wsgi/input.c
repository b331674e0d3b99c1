/*
 * input.c - the objects a WSGI environ carries: wsgi.input (the buffered
 * request body, read in place), wsgi.errors (lines to the error log) and
 * wsgi.file_wrapper (a file to send, sent from the loop when it has a
 * descriptor). Their methods run wherever Python runs the app (the loop
 * thread with threads = 0, a pool thread otherwise), always with the GIL.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wsgi.h"

/* ---- wsgi.input ------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD const char *data; /* the daemon's buffer: NULL once detached */
    Py_ssize_t len, pos;
} Input;

static PyTypeObject InputType;

PyObject *input_new(const char *data, size_t len)
{
    Input *in = PyObject_New(Input, &InputType);

    if (in == NULL)
        return NULL;
    in->data = data;
    in->len = data != NULL ? (Py_ssize_t)len : 0;
    in->pos = 0;
    return (PyObject *)in;
}

void input_detach(PyObject *o)
{
    Input *in = (Input *)o;

    in->data = NULL;
    in->len = in->pos = 0;
}

/* An optional size argument: None or a negative number mean "all". */
static int size_arg(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t *out)
{
    *out = -1;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "at most one argument");
        return -1;
    }
    if (nargs == 0 || args[0] == Py_None)
        return 0;
    *out = PyLong_AsSsize_t(args[0]);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *take(Input *in, Py_ssize_t n)
{
    PyObject *b = PyBytes_FromStringAndSize(in->data ? in->data + in->pos : "", n);

    if (b != NULL)
        in->pos += n;
    return b;
}

static PyObject *input_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Input *in = (Input *)self;
    Py_ssize_t n, left = in->len - in->pos;

    if (size_arg(args, nargs, &n) < 0)
        return NULL;
    return take(in, n < 0 || n > left ? left : n);
}

/* The length of the next line (newline included), at most max (< 0: no
 * bound). */
static Py_ssize_t line_len(const Input *in, Py_ssize_t max)
{
    Py_ssize_t left = in->len - in->pos;
    const char *p, *nl;

    if (max >= 0 && max < left)
        left = max;
    if (left <= 0)
        return 0;
    p = in->data + in->pos;
    nl = memchr(p, '\n', (size_t)left);
    return nl != NULL ? (Py_ssize_t)(nl - p) + 1 : left;
}

static PyObject *input_readline(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Input *in = (Input *)self;
    Py_ssize_t n;

    if (size_arg(args, nargs, &n) < 0)
        return NULL;
    return take(in, line_len(in, n));
}

static PyObject *input_readlines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Input *in = (Input *)self;
    Py_ssize_t hint, total = 0, n;
    PyObject *list;

    if (size_arg(args, nargs, &hint) < 0 || (list = PyList_New(0)) == NULL)
        return NULL;
    while ((n = line_len(in, -1)) > 0) {
        PyObject *line = take(in, n);

        if (line == NULL || PyList_Append(list, line) < 0) {
            Py_XDECREF(line);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(line);
        total += n;
        if (hint > 0 && total >= hint)
            break;
    }
    return list;
}

static PyObject *input_next(PyObject *self)
{
    Input *in = (Input *)self;
    Py_ssize_t n = line_len(in, -1);

    return n > 0 ? take(in, n) : NULL; /* NULL, no exception: stop */
}

static PyMethodDef input_methods[] = {
    {"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL,
     "read([size]) -> bytes"},
    {"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL,
     "readline([size]) -> bytes"},
    {"readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL,
     "readlines([hint]) -> list of bytes"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject InputType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "preforkd.Input",
    .tp_basicsize = sizeof(Input),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "wsgi.input: the request body, already received in full",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = input_next,
    .tp_methods = input_methods,
};

/* ---- wsgi.errors ------------------------------------------------------------ */

#define ERRORS_LINE_MAX 4000

typedef struct {
    PyObject_HEAD struct wsgi *w;
    char buf[ERRORS_LINE_MAX]; /* a partial line (GIL-protected) */
    size_t len;
} Errors;

static PyTypeObject ErrorsType;

PyObject *errors_new(struct wsgi *w)
{
    Errors *e = PyObject_New(Errors, &ErrorsType);

    if (e != NULL) {
        e->w = w;
        e->len = 0;
    }
    return (PyObject *)e;
}

static void errors_emit(Errors *e)
{
    if (e->len > 0)
        wsgi_log(e->w, PF_LOG_ERROR, "%.*s", (int)e->len, e->buf);
    e->len = 0;
}

static int errors_put(Errors *e, PyObject *s)
{
    Py_ssize_t n;
    const char *p;

    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "wsgi.errors.write() takes str, not %s",
                     Py_TYPE(s)->tp_name);
        return -1;
    }
    if ((p = PyUnicode_AsUTF8AndSize(s, &n)) == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            errors_emit(e);
            continue;
        }
        if (e->len == sizeof(e->buf))
            errors_emit(e);
        e->buf[e->len++] = p[i];
    }
    return 0;
}

static PyObject *errors_write(PyObject *self, PyObject *s)
{
    return errors_put((Errors *)self, s) < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *errors_writelines(PyObject *self, PyObject *seq)
{
    PyObject *it = PyObject_GetIter(seq), *s;

    if (it == NULL)
        return NULL;
    while ((s = PyIter_Next(it)) != NULL) {
        int rc = errors_put((Errors *)self, s);
        Py_DECREF(s);
        if (rc < 0)
            break;
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
}

static PyObject *errors_flush(PyObject *self, PyObject *unused)
{
    errors_emit((Errors *)self);
    return Py_NewRef(Py_None);
}

static PyMethodDef errors_methods[] = {
    {"write", errors_write, METH_O, "write(str): to the error log"},
    {"writelines", errors_writelines, METH_O, "writelines(iterable of str)"},
    {"flush", errors_flush, METH_NOARGS, "writes out a partial line"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ErrorsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "preforkd.Errors",
    .tp_basicsize = sizeof(Errors),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "wsgi.errors: each line becomes a line of the error log",
    .tp_methods = errors_methods,
};

/* ---- wsgi.file_wrapper ---------------------------------------------------------- */

typedef struct {
    PyObject_HEAD PyObject *filelike;
    Py_ssize_t blksize;
} FileWrapper;

static PyTypeObject FileWrapperType;

static PyObject *fw_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char k1[] = "filelike", k2[] = "blksize";
    static char *kwlist[] = {k1, k2, NULL};
    PyObject *filelike;
    Py_ssize_t blksize = 8192;
    FileWrapper *fw;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|n:FileWrapper", kwlist, &filelike,
                                     &blksize))
        return NULL;
    if ((fw = (FileWrapper *)type->tp_alloc(type, 0)) == NULL)
        return NULL;
    fw->filelike = Py_NewRef(filelike);
    fw->blksize = blksize > 0 ? blksize : 8192;
    return (PyObject *)fw;
}

static void fw_dealloc(PyObject *self)
{
    FileWrapper *fw = (FileWrapper *)self;

    Py_CLEAR(fw->filelike);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *fw_next(PyObject *self)
{
    FileWrapper *fw = (FileWrapper *)self;
    PyObject *data = PyObject_CallMethod(fw->filelike, "read", "n", fw->blksize);

    if (data != NULL && PyObject_Length(data) == 0) {
        Py_DECREF(data);
        return NULL;
    }
    return data;
}

static PyObject *fw_close(PyObject *self, PyObject *unused)
{
    FileWrapper *fw = (FileWrapper *)self;

    if (PyObject_HasAttrString(fw->filelike, "close"))
        return PyObject_CallMethod(fw->filelike, "close", NULL);
    return Py_NewRef(Py_None);
}

static PyMethodDef fw_methods[] = {
    {"close", fw_close, METH_NOARGS, "closes the file-like object"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FileWrapperType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "preforkd.FileWrapper",
    .tp_basicsize = sizeof(FileWrapper),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "wsgi.file_wrapper(filelike, blksize=8192)",
    .tp_new = fw_new,
    .tp_dealloc = fw_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = fw_next,
    .tp_methods = fw_methods,
};

PyObject *file_wrapper_type(void)
{
    return (PyObject *)&FileWrapperType;
}

/* The wrapped object's descriptor when it is a regular file: a dup of it,
 * its logical position (tell(): Python buffers reads) and what is left. */
int file_wrapper_fd(PyObject *o, uint64_t *off, uint64_t *len)
{
    FileWrapper *fw = (FileWrapper *)o;
    PyObject *r;
    long fd;
    long long pos = -1;
    struct stat st;
    int dup;

    if (Py_TYPE(o) != &FileWrapperType)
        return -1;
    if ((r = PyObject_CallMethod(fw->filelike, "fileno", NULL)) == NULL)
        goto no;
    fd = PyLong_AsLong(r);
    Py_DECREF(r);
    if (fd < 0 || fstat((int)fd, &st) != 0 || !S_ISREG(st.st_mode))
        goto no;
    if ((r = PyObject_CallMethod(fw->filelike, "tell", NULL)) != NULL) {
        pos = PyLong_AsLongLong(r);
        Py_DECREF(r);
    }
    if (pos < 0)
        goto no;
    if ((dup = fcntl((int)fd, F_DUPFD_CLOEXEC, 0)) < 0)
        goto no;
    *off = (uint64_t)pos;
    *len = (uint64_t)st.st_size > (uint64_t)pos ? (uint64_t)st.st_size - (uint64_t)pos
                                                : 0;
    return dup;
no:
    PyErr_Clear();
    return -1;
}

int input_init(void)
{
    if (PyType_Ready(&InputType) < 0 || PyType_Ready(&ErrorsType) < 0 ||
        PyType_Ready(&FileWrapperType) < 0)
        return -1;
    return 0;
}
