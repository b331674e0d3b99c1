"""A Flask app for tests/integration/test_wsgi_hunt.c (leak hunting): / answers "ok",
/leak keeps a Leaky object a request (with ?kb=N, N KiB of bytes in it),
/ok/N makes N of them and keeps none, /slow holds its thread for 3
seconds."""
import time

from flask import Flask, request

app = Flask(__name__)
KEPT = []


class Leaky:
    def __init__(self, payload):
        self.payload = payload


@app.route("/")
def root():
    return "ok\n"


@app.route("/leak")
def leak():
    KEPT.append(Leaky(b"x" * (1024 * request.args.get("kb", 2, type=int))))
    return "kept %d\n" % len(KEPT)


@app.route("/ok/<int:n>")
def fine(n):
    made = [Leaky(b"y" * 2048) for _ in range(n)]
    return "made %d\n" % len(made)


@app.route("/slow")
def slow():
    time.sleep(3)
    return "slow\n"


application = app
