"""Installs a SIGUSR2 handler at import time: preforkd undoes it (it owns
the process's signals), so a USR2 to a worker is the worker's snapshot and
never kills it or runs this handler."""
import os
import signal
from wsgiref.validate import validator

HITS = []


def on_usr2(signum, frame):
    HITS.append(signum)
    os._exit(99)  # if this ever ran, the test would see the worker die


signal.signal(signal.SIGUSR2, on_usr2)


def _app(environ, start_response):
    body = ("pid %d hits %d\n" % (os.getpid(), len(HITS))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


app = validator(_app)
