"""An app whose import fails: preforkd -t must print the traceback."""
import json  # noqa: F401


def helper():
    raise LookupError("configuration missing: PREFORKD_TEST_SETTING")


helper()


def application(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b""]
