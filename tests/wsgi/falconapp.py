"""A Falcon app for tests/integration/test_wsgi.c, wrapped in the validator."""
from wsgiref.validate import validator

import falcon


class Things:
    def on_get(self, req, resp):
        resp.media = {"things": [1, 2, 3], "q": req.get_param("q")}

    def on_post(self, req, resp):
        resp.media = {"got": req.get_media()}
        resp.status = falcon.HTTP_201


falcon_app = falcon.App()
falcon_app.add_route("/things", Things())
application = validator(falcon_app)
