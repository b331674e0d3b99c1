# flaskapp.py - bench/run.sh's Flask app (Debian's python3-flask): one
# route, GET / -> "Hello, World!\n" as text/plain (Flask adds the charset
# and Content-Length). Served as flaskapp:application.
from flask import Flask, Response

application = Flask(__name__)


@application.route("/")
def hello():
    return Response(b"Hello, World!\n", mimetype="text/plain")
