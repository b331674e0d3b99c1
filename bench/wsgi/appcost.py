"""appcost.py - the CPU time of a WSGI application callable itself, in
process, without a server: what bench/run.sh subtracts from a server's
CPU time per request to get the host's own cost per request.

Run by bench/run.sh under /usr/bin/python3, pinned to the servers' CPU,
with this folder on sys.path:

    appcost.py NAME MODULE:CALLABLE [SECONDS]

Prints one line, tab-separated: NAME, microseconds of CPU per call (the
median of 5 batches), calls per batch. A call is what a server does with
the app once it has the request: app(environ, start_response), iterate the
result, close() it. Building the environ is the host's work, not the
app's: each call gets a fresh copy of one prebuilt environ (a GET / as
wrk sends it) and a new empty wsgi.input, and the time of a loop that does
only that is subtracted. Exits 1 when the app does not answer 200 with
"Hello, World!\\n".
"""
import gc
import importlib
import io
import sys
import time

BODY = b"Hello, World!\n"

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/",
    "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "40000",
    "HTTP_HOST": "127.0.0.1:8000",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": False,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
}


def load(spec):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name or "application")


def start_response(status, headers, exc_info=None):
    start_response.status = status
    return None


def call(app):
    env = ENVIRON.copy()
    env["wsgi.input"] = io.BytesIO(b"")
    result = app(env, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return body


def environ_only(app):
    env = ENVIRON.copy()
    env["wsgi.input"] = io.BytesIO(b"")
    return env


def batch(fn, app, n):
    t0 = time.process_time()
    for _ in range(n):
        fn(app)
    return time.process_time() - t0


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: appcost.py NAME MODULE:CALLABLE [SECONDS]")
    name, spec = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) == 4 else 1.0
    app = load(spec)
    body = call(app)
    if not start_response.status.startswith("200") or body != BODY:
        sys.exit("appcost: %s answers %r, %r" % (spec, start_response.status, body))
    # Warm up, then size a batch to a fifth of the time asked for.
    n = 1000
    while batch(call, app, n) < 0.05:
        n *= 2
    n = max(1000, int(n * (seconds / 5) / batch(call, app, n)))
    # Servers collect garbage too (preforkd's wsgi freezes what the import
    # made, as gc.freeze() here does), so collection stays on.
    gc.collect()
    gc.freeze()
    per_call = []
    for _ in range(5):
        per_call.append((batch(call, app, n) - batch(environ_only, app, n)) / n)
    per_call.sort()
    print("%s\t%.3f\t%d" % (name, per_call[2] * 1e6, n))


if __name__ == "__main__":
    main()
