# hello.py - bench/run.sh's plain WSGI app: "Hello, World!\n", text/plain,
# with Content-Length, for any request. Served by preforkd's wsgi module,
# Gunicorn and uWSGI as hello:application.

BODY = b"Hello, World!\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
