"""A Flask app for tests/integration/test_wsgi.c: JSON, a form POST, a multipart
upload, a streamed generator, a redirect, error handlers, and a route that
leaks on purpose (recycling with max_requests contains it). Wrapped in
wsgiref.validate.validator."""
import hashlib
from wsgiref.validate import validator

from flask import Flask, Response, jsonify, redirect, request, url_for

flask_app = Flask(__name__)
LEAK = []


@flask_app.route("/json")
def json_view():
    return jsonify(hello="world", n=3, q=request.args.get("q"))


@flask_app.route("/form", methods=["POST"])
def form_view():
    return jsonify(sorted(request.form.items()))


@flask_app.route("/upload", methods=["POST"])
def upload_view():
    f = request.files["file"]
    data = f.read()
    return jsonify(name=f.filename, size=len(data),
                   sha256=hashlib.sha256(data).hexdigest(),
                   note=request.form.get("note"))


@flask_app.route("/stream")
def stream_view():
    def gen():
        for i in range(5):
            yield "line %d\n" % i
    return Response(gen(), mimetype="text/plain")


@flask_app.route("/redirect")
def redirect_view():
    return redirect(url_for("json_view"))


@flask_app.route("/fail")
def fail_view():
    raise RuntimeError("flask view failed")


@flask_app.route("/leak")
def leak_view():
    LEAK.append(bytearray(200 * 1024))  # 200 KiB a request, never freed
    return "leaked %d\n" % len(LEAK)


@flask_app.errorhandler(404)
def not_found(e):
    return jsonify(error="not found", path=request.path), 404


@flask_app.errorhandler(500)
def server_error(e):
    return jsonify(error="handled"), 500


application = validator(flask_app)
