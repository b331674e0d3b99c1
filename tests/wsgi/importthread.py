"""Starts a thread at import (in the mold): preforkd warns that it will not
exist in workers, once per thread name."""
import threading
import time
from wsgiref.validate import validator

STOP = threading.Event()


def tick():
    while not STOP.wait(0.05):
        pass


threading.Thread(target=tick, name="ticker", daemon=True).start()
threading.Thread(target=tick, name="ticker", daemon=True).start()


def _app(environ, start_response):
    names = sorted(t.name for t in threading.enumerate())
    body = ("threads: %s\n" % ",".join(names)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


app = validator(_app)
time.sleep(0)  # the threads above run while the mold waits
