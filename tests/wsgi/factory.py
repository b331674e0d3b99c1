"""An application factory, as Flask projects write them, for
tests/integration/test_wsgi_reload.c: `app = factory:create_app('prod', answer=42)`."""


def create_app(env="dev", answer=0):
    body = ("%s %d\n" % (env, answer)).encode()

    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return application


def broken_factory():
    raise ValueError("the factory fails on purpose")
