"""WSGI entry of the test project. The tables are made at import (in the
mold); the database connection is closed before workers fork, and again in
post_fork, so no two processes share one sqlite handle."""
import os
from wsgiref.validate import validator

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproj.settings")

from django.core.management import call_command  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import connections  # noqa: E402

django_app = get_wsgi_application()
call_command("migrate", run_syncdb=True, verbosity=0)
connections.close_all()
application = validator(django_app)


def post_fork():
    connections.close_all()
