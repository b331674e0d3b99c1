"""Plain WSGI apps for tests/integration/test_wsgi.c, dispatched on PATH_INFO.

`app` is wrapped in wsgiref.validate.validator (PEP 3333 conformance is
checked on every request); `raw` is the same without it (file_wrapper's
fast path needs to see the wrapper itself). Runs inside preforkd's wsgi
module, in a worker.
"""
import json
import os
import sys
import threading
import time
from wsgiref.validate import validator

ENV_KEYS = (
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING",
    "CONTENT_TYPE", "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT",
    "SERVER_PROTOCOL", "REMOTE_ADDR", "wsgi.url_scheme", "wsgi.multithread",
    "wsgi.multiprocess", "wsgi.run_once", "wsgi.input_terminated",
)

CLOSED = [0]  # close() calls of Tracked, per worker


def text(start_response, body, status="200 OK", extra=()):
    body = body.encode("latin-1") if isinstance(body, str) else body
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))] + list(extra))
    return [body]


def environ_view(environ, start_response):
    out = {k: environ[k] for k in ENV_KEYS if k in environ}
    out["wsgi.version"] = list(environ["wsgi.version"])
    out["HTTP"] = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    out["has_REMOTE_PORT"] = "REMOTE_PORT" in environ
    return text(start_response, json.dumps(out, sort_keys=True))


def input_view(environ, start_response):
    """Reads the body with every method of wsgi.input, as the query says."""
    inp = environ["wsgi.input"]
    how = environ["QUERY_STRING"]
    if how == "read":
        parts = [inp.read()]
    elif how == "read3":
        parts = []
        while True:
            b = inp.read(3)
            if not b:
                break
            parts.append(b)
    elif how == "readline":
        parts = []
        while True:
            b = inp.readline()
            if not b:
                break
            parts.append(b)
    elif how == "readline2":
        parts = [inp.readline(2), inp.readline(), inp.read()]
    elif how == "readlines":
        parts = inp.readlines()
    else:
        parts = list(inp)
    return text(start_response, json.dumps([p.decode("latin-1") for p in parts]))


def errors_view(environ, start_response):
    err = environ["wsgi.errors"]
    err.write("errors line one\nerrors ")
    err.writelines(["line two\n", "errors unterminated"])
    err.flush()
    return text(start_response, "logged\n")


class Tracked:
    """An iterable whose close() is counted (wsgi.errors says so too)."""

    def __init__(self, environ, n, size=10, fail_at=None):
        self.environ, self.n, self.size, self.fail_at = environ, n, size, fail_at

    def __iter__(self):
        for i in range(self.n):
            if i == self.fail_at:
                raise RuntimeError("failed at piece %d" % i)
            yield b"%0*d" % (self.size, i)

    def close(self):
        CLOSED[0] += 1
        self.environ["wsgi.errors"].write("closed %s %d\n" % (
            self.environ["PATH_INFO"], CLOSED[0]))


def stream(environ, start_response):
    """n pieces of size bytes (query: n=..&size=..), close() counted."""
    q = dict(p.split("=") for p in environ["QUERY_STRING"].split("&") if p)
    n, size = int(q.get("n", 3)), int(q.get("size", 10))
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return Tracked(environ, n, size, int(q["fail"]) if "fail" in q else None)


def big(environ, start_response):
    """100 MB in 64 KiB pieces, from a generator."""
    piece = b"x" * 65536
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(1600 * 65536))])

    def gen():
        for _ in range(1600):
            yield piece
    return gen()


def bigwrite(environ, start_response):
    """The same 100 MB through the legacy write() callable."""
    piece = b"x" * 65536
    write = start_response("200 OK", [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(1600 * 65536))])
    for _ in range(1600):
        write(piece)
    return []


def boom(environ, start_response):
    raise ValueError("boom before the head")


def boom_after(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first piece\n"
    raise ValueError("boom after the head")


def system_exit(environ, start_response):
    raise SystemExit(3)


def keyboard(environ, start_response):
    raise KeyboardInterrupt


def no_start(environ, start_response):
    return [b"never started"]


def bad_status(environ, start_response):
    start_response("OK", [("Content-Type", "text/plain")])
    return [b""]


def bad_header(environ, start_response):
    start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
    return [b""]


def twice(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"twice"]


def exc_info_replace(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise KeyError("x")
    except KeyError:
        start_response("503 Service Unavailable",
                       [("Content-Type", "text/plain")], sys.exc_info())
    return [b"replaced\n"]


def cl_short(environ, start_response):
    """Declares 10 bytes, sends 5: the client must see the cut."""
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", "10")])
    return iter([b"12345"])


def cl_long(environ, start_response):
    """Declares 5 bytes, sends 10: cut at 5."""
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", "5")])
    return iter([b"12345", b"67890"])


def writer(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    return [b"returned\n"]


def empty(environ, start_response):
    start_response("204 No Content", [])
    return []


def cext(environ, start_response):
    """C extensions need libpython's symbols to be global."""
    import _bz2  # noqa: F401
    import bz2
    import hashlib
    import sqlite3
    import ssl
    data = b"preforkd" * 100
    assert bz2.decompress(bz2.compress(data)) == data
    db = sqlite3.connect(":memory:")
    db.execute("create table t (x)")
    db.executemany("insert into t values (?)", [(i,) for i in range(10)])
    total = db.execute("select sum(x) from t").fetchone()[0]
    ctx = ssl.create_default_context()
    out = "bz2 ok, sqlite %d, ssl %s, sha256 %s\n" % (
        total, ctx.protocol.name, hashlib.sha256(b"x").hexdigest()[:8])
    return text(start_response, out)


def pid(environ, start_response):
    return text(start_response, "%d\n" % os.getpid())


def file_view(environ, start_response):
    """wsgi.file_wrapper over the file named by the query (from offset 3
    when the query says so); Content-Length 7 with cl7."""
    path, _, opt = environ["QUERY_STRING"].partition("&")
    f = open(path, "rb")
    headers = [("Content-Type", "application/octet-stream")]
    if "skip3" in opt:
        f.read(3)
    if "cl7" in opt:
        headers.append(("Content-Length", "7"))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, 4096)


# ---- threads ----------------------------------------------------------------

GATE = threading.Event()


def wait_gate(environ, start_response):
    """Blocks (in Python) until /open_gate, at most 10 s."""
    opened = GATE.wait(10)
    GATE.clear()
    return text(start_response, "gate %s\n" % ("opened" if opened else "timeout"))


def events(environ, start_response):
    """A slow generator: one piece, then the next once /open_gate."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"event 1\n"
    GATE.wait(10)
    GATE.clear()
    yield b"event 2\n"


def open_gate(environ, start_response):
    GATE.set()
    return text(start_response, "opening\n")


def wait_file(environ, start_response):
    """Blocks until the file named by the query exists, at most 10 s."""
    path = environ["QUERY_STRING"]
    end = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.01)
    return text(start_response, "file %s\n" % (
        "seen" if os.path.exists(path) else "timeout"))


def hang(environ, start_response):
    """In Python for (query) seconds."""
    time.sleep(float(environ["QUERY_STRING"] or 5))
    return text(start_response, "woke\n")


ROUTES = {
    "/environ": environ_view, "/input": input_view, "/errors": errors_view,
    "/stream": stream, "/big": big, "/bigwrite": bigwrite, "/boom": boom, "/boom_after": boom_after,
    "/system_exit": system_exit, "/keyboard": keyboard, "/no_start": no_start,
    "/bad_status": bad_status, "/bad_header": bad_header, "/twice": twice,
    "/exc_info": exc_info_replace, "/cl_short": cl_short, "/cl_long": cl_long,
    "/writer": writer, "/empty": empty, "/cext": cext, "/pid": pid,
    "/file": file_view, "/wait_gate": wait_gate, "/open_gate": open_gate, "/events": events,
    "/wait_file": wait_file, "/hang": hang,
}


def raw(environ, start_response):
    path = environ["PATH_INFO"]
    route = ROUTES.get("/" + path.split("/")[1] if path.count("/") else path)
    if route is None:
        return text(start_response, "no route %s\n" % environ["PATH_INFO"],
                    "404 Not Found")
    return route(environ, start_response)


# Apps that break PEP 3333 on purpose, to see preforkd refuse them (the
# validator would refuse them first), the file_wrapper fast path (the
# validator hides the wrapper) and /input, which calls read() without a
# size (the validator holds apps to read(size)), skip the validator.
UNVALIDATED = {"/no_start", "/bad_status", "/bad_header", "/twice", "/file",
               "/input"}
_validated = validator(raw)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if ("/" + path.split("/")[1] if path.count("/") else path) in UNVALIDATED:
        return raw(environ, start_response)
    return _validated(environ, start_response)
