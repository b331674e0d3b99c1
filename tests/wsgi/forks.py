"""Fork hooks: post_fork logs what `random` draws in each worker (after
PyOS_AfterFork_Child reseeded it) and an os.register_at_fork hook counts."""
import os
import random
import sys
from wsgiref.validate import validator

AFTER_FORK = []
os.register_at_fork(after_in_child=lambda: AFTER_FORK.append(os.getpid()))
IMPORT_DRAW = random.random()  # the mold's state, inherited by every worker


def post_fork():
    sys.stderr.write("post_fork pid %d random %r at_fork %d\n" % (
        os.getpid(), random.random(), len(AFTER_FORK)))


def _app(environ, start_response):
    body = ("pid %d random %r\n" % (os.getpid(), random.random())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


app = validator(_app)


def failing_post_fork():
    raise RuntimeError("post_fork refuses")
