/*
 * environ.c - a request as a PEP 3333 environ dict: a copy of a template
 * holding the constant keys, then the request's own (method, path split at
 * script_name and percent-decoded, query, protocol, peer, Host as SERVER_*,
 * headers as HTTP_*). Key strings are interned once. Runs where Python
 * runs the app (loop thread with threads = 0, else a pool thread), with the
 * GIL; reads the request through the job (pf_str copies made on the loop).
 */
#include <string.h>
#include <strings.h>

#include "wsgi.h"

#define LIT(s) s, sizeof(s) - 1

static PyObject *k_method, *k_script, *k_path, *k_query, *k_ctype, *k_clen, *k_sname,
    *k_sport, *k_proto, *k_raddr, *k_rport, *k_input;
static PyObject *v_http10, *v_http11, *v_empty, *v_port80, *v_port443, *v_localhost;

/* Methods seen often enough to keep their str. */
static struct {
    const char *name;
    size_t len;
    PyObject *v;
} methods[] = {
    {LIT("GET"), NULL},     {LIT("POST"), NULL},   {LIT("HEAD"), NULL},
    {LIT("PUT"), NULL},     {LIT("DELETE"), NULL}, {LIT("PATCH"), NULL},
    {LIT("OPTIONS"), NULL},
};

/* Header names seen often enough to keep their HTTP_ key. */
static struct {
    const char *name;
    size_t len;
    PyObject *key;
} common[] = {
    {LIT("Host"), NULL},
    {LIT("User-Agent"), NULL},
    {LIT("Accept"), NULL},
    {LIT("Accept-Encoding"), NULL},
    {LIT("Accept-Language"), NULL},
    {LIT("Connection"), NULL},
    {LIT("Cookie"), NULL},
    {LIT("Referer"), NULL},
    {LIT("Cache-Control"), NULL},
    {LIT("Upgrade-Insecure-Requests"), NULL},
    {LIT("X-Forwarded-For"), NULL},
    {LIT("X-Forwarded-Proto"), NULL},
    {LIT("X-Real-IP"), NULL},
    {LIT("Authorization"), NULL},
    {LIT("Origin"), NULL},
    {LIT("If-None-Match"), NULL},
    {LIT("If-Modified-Since"), NULL},
};

static PyObject *intern(const char *s)
{
    return PyUnicode_InternFromString(s);
}

/* "HTTP_" + the name upper-cased, '-' as '_', into out (size >= len + 6).
 * -1 when the name has a '_' (it could pose as another header). */
static int http_key(const char *name, size_t len, char *out)
{
    memcpy(out, "HTTP_", 5);
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '_')
            return -1;
        out[5 + i] = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? c - 32 : c;
    }
    out[5 + len] = '\0';
    return 0;
}

static int set_const(PyObject *d, const char *key, PyObject *v)
{
    int rc = v != NULL ? PyDict_SetItemString(d, key, v) : -1;

    Py_XDECREF(v);
    return rc;
}

int environ_init(struct wsgi *w)
{
    PyObject *d;
    char key[64];
    size_t i;

    if (!(k_method = intern("REQUEST_METHOD")) || !(k_script = intern("SCRIPT_NAME")) ||
        !(k_path = intern("PATH_INFO")) || !(k_query = intern("QUERY_STRING")) ||
        !(k_ctype = intern("CONTENT_TYPE")) || !(k_clen = intern("CONTENT_LENGTH")) ||
        !(k_sname = intern("SERVER_NAME")) || !(k_sport = intern("SERVER_PORT")) ||
        !(k_proto = intern("SERVER_PROTOCOL")) || !(k_raddr = intern("REMOTE_ADDR")) ||
        !(k_rport = intern("REMOTE_PORT")) || !(k_input = intern("wsgi.input")) ||
        !(v_http10 = intern("HTTP/1.0")) || !(v_http11 = intern("HTTP/1.1")) ||
        !(v_empty = intern("")) || !(v_port80 = intern("80")) ||
        !(v_port443 = intern("443")) || !(v_localhost = intern("localhost")))
        return -1;
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if ((methods[i].v = intern(methods[i].name)) == NULL)
            return -1;
    for (i = 0; i < sizeof(common) / sizeof(common[0]); i++) {
        http_key(common[i].name, common[i].len, key);
        if ((common[i].key = intern(key)) == NULL)
            return -1;
    }
    if ((d = PyDict_New()) == NULL)
        return -1;
    if (set_const(d, "wsgi.version", Py_BuildValue("(ii)", 1, 0)) < 0 ||
        set_const(d, "wsgi.url_scheme", PyUnicode_FromString(w->url_scheme)) < 0 ||
        set_const(d, "wsgi.multithread", PyBool_FromLong(w->nthreads >= 2)) < 0 ||
        set_const(d, "wsgi.multiprocess", Py_NewRef(Py_True)) < 0 ||
        set_const(d, "wsgi.run_once", Py_NewRef(Py_False)) < 0 ||
        set_const(d, "wsgi.errors", Py_NewRef(w->errors)) < 0 ||
        set_const(d, "wsgi.input_terminated", Py_NewRef(Py_True)) < 0 ||
        set_const(d, "wsgi.file_wrapper", Py_NewRef(file_wrapper_type())) < 0 ||
        set_const(d, "SERVER_SOFTWARE", PyUnicode_FromString("preforkd")) < 0 ||
        set_const(d, "SCRIPT_NAME",
                  PyUnicode_DecodeLatin1(w->script_name, (Py_ssize_t)w->script_name_len,
                                         NULL)) < 0) {
        Py_DECREF(d);
        return -1;
    }
    w->environ_tmpl = d;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s into out (room for len bytes); returns the length.
 * A '%' not followed by two hex digits stays as it is. */
static size_t pct_decode(const char *s, size_t len, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;

        if (s[i] == '%' && i + 2 < len && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

static int put(PyObject *d, PyObject *key, PyObject *v)
{
    int rc;

    if (v == NULL)
        return -1;
    rc = PyDict_SetItem(d, key, v);
    Py_DECREF(v);
    return rc;
}

static PyObject *latin1(const char *s, size_t len)
{
    return PyUnicode_DecodeLatin1(s ? s : "", (Py_ssize_t)len, NULL);
}

/* SCRIPT_NAME is in the template; PATH_INFO is the decoded path past it. */
static int set_path(struct job *j, PyObject *d, bool *not_found)
{
    struct wsgi *w = j->w;
    const char *p = j->path.ptr ? j->path.ptr : "";
    size_t len = j->path.len, n, sn = w->script_name_len;
    char stack[1024], *buf = stack;
    int rc;

    /* absolute-form (a proxy's "http://host/path"): the path part only */
    if (len > 0 && p[0] != '/' && p[0] != '*') {
        const char *scheme = memchr(p, ':', len);
        if (scheme != NULL && (size_t)(scheme - p) + 3 <= len && scheme[1] == '/' &&
            scheme[2] == '/') {
            const char *end = p + len, *slash;
            slash = memchr(scheme + 3, '/', (size_t)(end - scheme - 3));
            len = slash ? (size_t)(end - slash) : 0;
            p = slash ? slash : "";
        }
    }
    if (len > sizeof(stack) && (buf = PyMem_Malloc(len)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    n = pct_decode(p, len, buf);
    if (sn > 0) {
        if (n < sn || memcmp(buf, w->script_name, sn) != 0 ||
            (n > sn && buf[sn] != '/')) {
            *not_found = true;
            if (buf != stack)
                PyMem_Free(buf);
            return 0;
        }
    }
    rc = n > sn ? put(d, k_path, latin1(buf + sn, n - sn))
                : PyDict_SetItem(d, k_path, v_empty);
    if (buf != stack)
        PyMem_Free(buf);
    return rc;
}

/* SERVER_NAME and SERVER_PORT from Host ("name", "name:port",
 * "[v6]:port"); without one, the address and port the connection came in
 * on (a unix socket: localhost and the scheme's port). */
static int set_server(struct job *j, PyObject *d, pf_str host)
{
    bool https = strcmp(j->w->url_scheme, "https") == 0;
    const char *h = host.ptr, *colon = NULL;
    size_t len = host.len;
    char num[16];

    if ((h == NULL || len == 0) && j->local_port > 0) {
        snprintf(num, sizeof(num), "%d", j->local_port);
        return put(d, k_sname, latin1(j->local, strlen(j->local))) < 0 ||
                       put(d, k_sport, latin1(num, strlen(num))) < 0
                   ? -1
                   : 0;
    }
    if (h == NULL || len == 0)
        return PyDict_SetItem(d, k_sname, v_localhost) < 0 ||
                       PyDict_SetItem(d, k_sport, https ? v_port443 : v_port80) < 0
                   ? -1
                   : 0;
    for (size_t i = len; i > 0; i--) {
        if (h[i - 1] == ']')
            break;
        if (h[i - 1] == ':') {
            colon = h + i - 1;
            break;
        }
    }
    if (colon != NULL) {
        if (put(d, k_sname, latin1(h, (size_t)(colon - h))) < 0 ||
            put(d, k_sport, latin1(colon + 1, len - (size_t)(colon - h) - 1)) < 0)
            return -1;
        return 0;
    }
    if (put(d, k_sname, latin1(h, len)) < 0)
        return -1;
    return PyDict_SetItem(d, k_sport, https ? v_port443 : v_port80);
}

static PyObject *header_key(const pf_header *h)
{
    char buf[300], *key = buf;
    PyObject *k;

    for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
        if (common[i].len == h->name.len &&
            strncasecmp(common[i].name, h->name.ptr, h->name.len) == 0)
            return Py_NewRef(common[i].key);
    if (h->name.len + 6 > sizeof(buf) && (key = PyMem_Malloc(h->name.len + 6)) == NULL)
        return PyErr_NoMemory();
    if (http_key(h->name.ptr, h->name.len, key) < 0) {
        if (key != buf)
            PyMem_Free(key);
        return Py_NewRef(Py_None); /* dropped */
    }
    k = PyUnicode_DecodeLatin1(key, (Py_ssize_t)h->name.len + 5, NULL);
    if (key != buf)
        PyMem_Free(key);
    return k;
}

static bool name_is(pf_str n, const char *lit, size_t len)
{
    return n.len == len && strncasecmp(n.ptr, lit, len) == 0;
}

/* A repeated field joins its values with ", " ("; " for Cookie). */
static int add_header(PyObject *d, const pf_header *h)
{
    PyObject *key = header_key(h), *v, *old, *joined;
    int rc;

    if (key == NULL)
        return -1;
    if (key == Py_None) {
        Py_DECREF(key);
        return 0;
    }
    if ((v = latin1(h->value.ptr, h->value.len)) == NULL) {
        Py_DECREF(key);
        return -1;
    }
    old = PyDict_GetItemWithError(d, key); /* borrowed */
    if (old != NULL) {
        joined = PyUnicode_FromFormat(name_is(h->name, LIT("cookie")) ? "%U; %U"
                                                                      : "%U, %U",
                                      old, v);
        Py_DECREF(v);
        v = joined;
    } else if (PyErr_Occurred()) {
        Py_DECREF(v);
        v = NULL;
    }
    rc = v != NULL ? PyDict_SetItem(d, key, v) : -1;
    Py_XDECREF(v);
    Py_DECREF(key);
    return rc;
}

static PyObject *method_str(pf_str m)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (methods[i].len == m.len && memcmp(methods[i].name, m.ptr, m.len) == 0)
            return Py_NewRef(methods[i].v);
    return latin1(m.ptr, m.len);
}

PyObject *environ_build(struct job *j, bool *not_found)
{
    PyObject *d = PyDict_Copy(j->w->environ_tmpl);
    pf_str host = {NULL, 0};
    bool have_clen = false, have_ctype = false;
    char num[32];

    *not_found = false;
    if (d == NULL)
        return NULL;
    if (set_path(j, d, not_found) < 0)
        goto fail;
    if (*not_found)
        return d;
    if (put(d, k_method, method_str(j->method)) < 0 ||
        put(d, k_query, latin1(j->query.ptr, j->query.len)) < 0 ||
        PyDict_SetItem(d, k_proto, j->version == 10 ? v_http10 : v_http11) < 0 ||
        put(d, k_raddr,
            PyUnicode_DecodeLatin1(j->peer, (Py_ssize_t)strlen(j->peer), NULL)) < 0)
        goto fail;
    if (j->peer_port > 0) {
        snprintf(num, sizeof(num), "%d", j->peer_port);
        if (put(d, k_rport, latin1(num, strlen(num))) < 0)
            goto fail;
    }
    for (size_t i = 0; i < j->nhdrs; i++) {
        const pf_header *h = &j->hdrs[i];

        if (name_is(h->name, LIT("content-type"))) {
            if (!have_ctype && put(d, k_ctype, latin1(h->value.ptr, h->value.len)) < 0)
                goto fail;
            have_ctype = true;
            continue;
        }
        if (name_is(h->name, LIT("content-length"))) {
            if (!have_clen && put(d, k_clen, latin1(h->value.ptr, h->value.len)) < 0)
                goto fail;
            have_clen = true;
            continue;
        }
        if (host.ptr == NULL && name_is(h->name, LIT("host")))
            host = h->value;
        if (add_header(d, h) < 0)
            goto fail;
    }
    /* A chunked body has no Content-Length: give its de-chunked size. */
    if (!have_clen && j->body.len > 0) {
        snprintf(num, sizeof(num), "%zu", j->body.len);
        if (put(d, k_clen, PyUnicode_FromString(num)) < 0)
            goto fail;
    }
    if (set_server(j, d, host) < 0)
        goto fail;
    if ((j->input = input_new(j->body.ptr, j->body.len)) == NULL ||
        PyDict_SetItem(d, k_input, j->input) < 0)
        goto fail;
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}
