"""The seed's leak, reproduced: a Flask view that makes a urllib3
PoolManager for each request to the stock service and keeps it, "for
reuse", in a module-level list that nothing ever reads again. Each
PoolManager keeps its HTTPConnectionPool, each pool its HTTPConnection:
a worker grows by a few KiB a request, for ever. See
docs/python.md, "Hunting a leak in a Python app"."""
import os

import urllib3
from flask import Flask, jsonify

app = Flask(__name__)
STOCK = os.environ.get("STOCK_URL", "http://127.0.0.1:8081/")
CLIENTS = []  # "kept so that connections are reused": never read again


def stock_client():
    http = urllib3.PoolManager(maxsize=2, headers={"Connection": "close"})
    CLIENTS.append(http)  # the leak: one PoolManager a request
    return http


@app.route("/api/items/<int:item>")
def item(item):
    r = stock_client().request("GET", STOCK, timeout=2.0)
    return jsonify(item=item, stock=r.data.decode().strip())


@app.route("/api/health")
def health():
    return jsonify(ok=True)


application = app
