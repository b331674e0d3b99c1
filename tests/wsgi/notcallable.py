"""For `app = notcallable:config`: not a callable."""
config = {"debug": False}


class Holder:
    class inner:
        @staticmethod
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"dotted\n"]
