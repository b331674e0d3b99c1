# djangoapp.py - bench/run.sh's Django app (Debian's python3-django), in
# one file: this module is its own settings module and URLconf, with one
# view, GET / -> "Hello, World!\n" as text/plain. No database, no
# middleware, no installed apps. Served as djangoapp:application.
import os

from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse
from django.urls import path

# Settings: read by django.setup() (get_wsgi_application, below) from
# this module, already in sys.modules by then.
DEBUG = False
SECRET_KEY = "preforkd-bench-only"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}
USE_TZ = True
# Django sets TZ from TIME_ZONE (default America/Chicago) for the whole
# process: UTC keeps the server's own log times as they are.
TIME_ZONE = "UTC"


def hello(request):
    response = HttpResponse(b"Hello, World!\n", content_type="text/plain")
    # Without CommonMiddleware Django sets no Content-Length.
    response["Content-Length"] = "14"
    return response


urlpatterns = [path("", hello)]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", __name__)
application = get_wsgi_application()
