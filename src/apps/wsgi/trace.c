/*
 * trace.c - tracemalloc on one worker, on demand, without killing it: the
 * module's command hook for `preforkctl trace start|dump|stop WORKER`
 * (relayed by the master; the daemon calls it on the worker's loop
 * thread, between requests). start: tracemalloc.start(frames) and a
 * baseline snapshot; dump: what grew since, by line (by traceback with
 * frames > 1); stop: tracemalloc.stop(), and the worker asks to be
 * replaced, so that tracing's overhead and memory leave with it. The work
 * is Python's (a small helper module compiled here); this file takes the
 * GIL around it and turns its answer into the hook's (status, text).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsgi.h"

#define USAGE "usage: trace start [frames=N] | trace dump [top=N] | trace stop"
#define FRAMES_MAX 100
#define TOP_MAX 500

/* Each function returns (status, text). The snapshots are filtered of
 * tracemalloc's own frames and this helper's. */
static const char helper_src[] =
    "import os, time, tracemalloc\n"
    "_st = {'base': None, 'frames': 1, 'since': 0.0}\n"
    "_filters = [tracemalloc.Filter(False, tracemalloc.__file__),\n"
    "            tracemalloc.Filter(False, '<preforkd trace>')]\n"
    "def _size(n):\n"
    "    s, n = ('+' if n >= 0 else '-'), abs(n)\n"
    "    if n < 1024:\n"
    "        return '%s%d B' % (s, n)\n"
    "    for unit in ('KiB', 'MiB', 'GiB'):\n"
    "        n /= 1024\n"
    "        if n < 1024 or unit == 'GiB':\n"
    "            return '%s%.1f %s' % (s, n, unit)\n"
    "def _who(wid):\n"
    "    return 'worker %d (pid %d)' % (wid, os.getpid())\n"
    "def start(wid, frames):\n"
    "    if tracemalloc.is_tracing():\n"
    "        return 409, ('%s is already tracing (%d frame(s), for %.0fs): '\n"
    "                     'trace dump shows what grew, trace stop ends it'\n"
    "                     % (_who(wid), tracemalloc.get_traceback_limit(),\n"
    "                        time.monotonic() - _st['since']))\n"
    "    tracemalloc.start(frames)\n"
    "    _st['base'] = tracemalloc.take_snapshot().filter_traces(_filters)\n"
    "    _st['frames'], _st['since'] = frames, time.monotonic()\n"
    "    return 200, ('tracemalloc started on %s, %d frame(s) a trace; '\n"
    "                 'baseline taken. trace dump %d: what grew since; trace '\n"
    "                 'stop %d: stop and replace the worker\\n'\n"
    "                 % (_who(wid), frames, wid, wid))\n"
    "def dump(wid, top):\n"
    "    if not tracemalloc.is_tracing() or _st['base'] is None:\n"
    "        return 409, ('%s is not tracing: trace start %d first'\n"
    "                     % (_who(wid), wid))\n"
    "    t0 = time.monotonic()\n"
    "    snap = tracemalloc.take_snapshot().filter_traces(_filters)\n"
    "    frames = _st['frames']\n"
    "    diff = snap.compare_to(_st['base'],\n"
    "                           'traceback' if frames > 1 else 'lineno')\n"
    "    grew = [d for d in diff if d.size_diff > 0]\n"
    "    cur, peak = tracemalloc.get_traced_memory()\n"
    "    out = ['%s: %d places grew in %.0fs of tracing (traced now %s, '\n"
    "           'peak %s); the top %d, by size:'\n"
    "           % (_who(wid), len(grew), t0 - _st['since'], _size(cur)[1:],\n"
    "              _size(peak)[1:], min(top, len(grew)))]\n"
    "    for d in grew[:top]:\n"
    "        f = d.traceback[-1]\n"
    "        out.append('%s:%d: %s (%+d blocks)'\n"
    "                   % (f.filename, f.lineno, _size(d.size_diff),\n"
    "                      d.count_diff))\n"
    "        for f in reversed(d.traceback[:-1]):\n"
    "            out.append('    from %s:%d' % (f.filename, f.lineno))\n"
    "    out.append('(dump in %.0f ms)' % ((time.monotonic() - t0) * 1e3))\n"
    "    return 200, '\\n'.join(out) + '\\n'\n"
    "def stop(wid):\n"
    "    if not tracemalloc.is_tracing():\n"
    "        return 409, '%s is not tracing' % _who(wid)\n"
    "    tracemalloc.stop()\n"
    "    _st['base'] = None\n"
    "    return 200, ('tracemalloc stopped on %s; the worker is replaced: its '\n"
    "                 'replacement starts, then it retires (tracing\\'s memory '\n"
    "                 'leaves with it)\\n' % _who(wid))\n";

static PyObject *helper; /* the helper's namespace, made on first use */

static PyObject *helper_get(void)
{
    PyObject *code, *ns, *r;

    if (helper != NULL)
        return helper;
    code = Py_CompileString(helper_src, "<preforkd trace>", Py_file_input);
    if (code == NULL)
        return NULL;
    ns = PyDict_New();
    if (ns != NULL &&
        PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) == 0 &&
        (r = PyEval_EvalCode(code, ns, ns)) != NULL) {
        Py_DECREF(r);
        helper = ns;
    } else {
        Py_XDECREF(ns);
    }
    Py_DECREF(code);
    return helper;
}

/* "frames=5" -> 5 when key is "frames", within 1..max; 0 no such key, -1
 * bad. */
static int arg_value(const char *word, const char *key, int max)
{
    size_t k = strlen(key);
    char *end;
    long v;

    if (strncmp(word, key, k) != 0 || word[k] != '=')
        return 0;
    v = strtol(word + k + 1, &end, 10);
    if (end == word + k + 1 || *end != '\0' || v < 1 || v > max)
        return -1;
    return (int)v;
}

/* Splits args into at most 2 words: the subcommand and one key=value. */
static int parse(const char *args, char *what, char *opt)
{
    int n = sscanf(args, "%31s %63s", what, opt);
    const char *p = args;

    for (int words = 0; *p; words++) {
        p += strspn(p, " ");
        if (*p == '\0')
            break;
        if (words == 2)
            return -1;
        p += strcspn(p, " ");
    }
    if (n < 1)
        return -1;
    if (n < 2)
        opt[0] = '\0';
    return 0;
}

/* Calls the helper's fn with (worker id, n) (n < 0: without it) and copies
 * its (status, text) into out. [GIL] */
static int call(const char *fn, int n, char *out, size_t outlen)
{
    PyObject *ns = helper_get(), *f, *r = NULL;
    int status = 500;

    if (ns == NULL || (f = PyDict_GetItemString(ns, fn)) == NULL)
        goto fail;
    r = n < 0 ? PyObject_CallFunction(f, "i", pf_worker_id())
              : PyObject_CallFunction(f, "ii", pf_worker_id(), n);
    if (r == NULL || !PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2)
        goto fail;
    status = (int)PyLong_AsLong(PyTuple_GET_ITEM(r, 0));
    const char *text = PyUnicode_AsUTF8(PyTuple_GET_ITEM(r, 1));
    if (text == NULL)
        goto fail;
    snprintf(out, outlen, "%s", text);
    Py_DECREF(r);
    return status;
fail:
    Py_XDECREF(r);
    if (PyErr_Occurred())
        wsgi_log_exception(NULL, "wsgi: trace failed");
    snprintf(out, outlen,
             "trace %s failed on worker %d (pid %d): see the "
             "error log\n",
             fn, pf_worker_id(), (int)getpid());
    return 500;
}

int trace_command(void *state, const char *cmd, const char *args, char *out,
                  size_t outlen)
{
    char what[32], opt[64];
    int n = -1, status;
    PyGILState_STATE g;

    if (strcmp(cmd, "trace") != 0) {
        snprintf(out, outlen, "app wsgi has no command \"%s\" (it has: trace)\n", cmd);
        return 404;
    }
    if (parse(args, what, opt) < 0)
        goto usage;
    if (strcmp(what, "start") == 0)
        n = opt[0] ? arg_value(opt, "frames", FRAMES_MAX) : 1;
    else if (strcmp(what, "dump") == 0)
        n = opt[0] ? arg_value(opt, "top", TOP_MAX) : 10;
    else if (strcmp(what, "stop") != 0 || opt[0])
        goto usage;
    if (n == 0 || (n < 0 && strcmp(what, "stop") != 0))
        goto usage;
    g = PyGILState_Ensure();
    status = call(what, n, out, outlen);
    PyGILState_Release(g);
    if (status == 200 && strcmp(what, "stop") == 0)
        pf_worker_recycle();
    return status;
usage:
    snprintf(out, outlen, USAGE " (frames 1..%d, top 1..%d), got \"%s\"\n", FRAMES_MAX,
             TOP_MAX, args);
    return 400;
}
