#!/usr/bin/python3
"""Copy-on-write with and without gc_freeze: the USS of preloaded Django
workers after 2000 requests and a full gc.collect() in each.

Starts build/preforkd (or $PREFORKD_BIN) with the wsgi module on a small
Django project it writes to a temp dir (django.contrib admin, auth,
contenttypes, sessions, messages; a view that reads the ORM on sqlite),
preloaded with gc_freeze = true, then false, then without preload, 2
workers each. Sends 2000
requests over 8 keep-alive connections, then GET /gc on every worker (a
view that runs gc.collect() and answers its pid), then reads each worker's
USS (Private_Clean + Private_Dirty of /proc/PID/smaps_rollup) and PSS.
Prints one line per setting. Run: /usr/bin/python3 bench/cow.py [ROUNDS]
"""
import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("PREFORKD_BIN", os.path.join(ROOT, "build", "preforkd"))
REQUESTS = 2000

SETTINGS = '''
SECRET_KEY = "bench"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "cowproj.urls"
INSTALLED_APPS = ["django.contrib.admin", "django.contrib.auth",
                  "django.contrib.contenttypes", "django.contrib.sessions",
                  "django.contrib.messages", "django.contrib.staticfiles"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware",
              "django.contrib.sessions.middleware.SessionMiddleware",
              "django.middleware.common.CommonMiddleware",
              "django.middleware.csrf.CsrfViewMiddleware",
              "django.contrib.auth.middleware.AuthenticationMiddleware",
              "django.contrib.messages.middleware.MessageMiddleware"]
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates",
              "APP_DIRS": True, "OPTIONS": {"context_processors": [
                  "django.template.context_processors.request",
                  "django.contrib.auth.context_processors.auth",
                  "django.contrib.messages.context_processors.messages"]}}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": %(db)r}}
STATIC_URL = "/static/"
USE_TZ = True
'''

URLS = '''
import gc, os
from django.contrib import admin
from django.contrib.auth.models import User
from django.http import HttpResponse, JsonResponse
from django.urls import path

def users(request):
    return JsonResponse({"users": [u.username for u in User.objects.all()[:10]],
                         "pid": os.getpid()})

def collect(request):
    gc.collect()
    return HttpResponse(str(os.getpid()))

urlpatterns = [path("admin/", admin.site.urls), path("users", users),
               path("gc", collect)]
'''

WSGI = '''
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cowproj.settings")
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
# What a real project's import pulls in: admin, forms, templates, the ORM.
import django.contrib.admin.sites, django.contrib.auth.forms, django.template.loader
from django.contrib.auth.models import User
list(User.objects.all()[:1])
'''


def project(tmp):
    pkg = os.path.join(tmp, "cowproj")
    os.makedirs(pkg)
    db = os.path.join(tmp, "db.sqlite3")
    for name, text in (("__init__.py", ""), ("settings.py", SETTINGS % {"db": db}),
                       ("urls.py", URLS), ("wsgi.py", WSGI)):
        with open(os.path.join(pkg, name), "w") as f:
            f.write(text)
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="cowproj.settings", PYTHONPATH=tmp)
    subprocess.run(["/usr/bin/python3", "-m", "django", "migrate", "-v", "0"], env=env,
                   check=True, cwd=tmp)
    subprocess.run(["/usr/bin/python3", "-c", "import django; django.setup(); "
                    "from django.contrib.auth.models import User; "
                    "[User.objects.create(username='u%d' % i) for i in range(20)]"],
                   env=env, check=True, cwd=tmp)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise SystemExit("cow.py: timed out waiting for " + what)


def smaps(pid):
    fields = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            m = re.match(r"(\w+):\s+(\d+) kB", line)
            if m:
                fields[m.group(1)] = int(m.group(2))
    return fields


def run(tmp, setting):
    """setting: "true" or "false" (gc_freeze, preloaded), or "no preload"."""
    port = free_port()
    log = os.path.join(tmp, "log-%s" % setting.replace(" ", "-"))
    conf = os.path.join(tmp, "cow.ini")
    preload = "false" if setting == "no preload" else "true"
    freeze = "true" if setting == "no preload" else setting
    with open(conf, "w") as f:
        f.write("[server]\nlisten = 127.0.0.1:%d\nworkers = 2\npreload = %s\n"
                "[app]\nmodule = wsgi\napp = cowproj.wsgi:application\n"
                "python_path = %s\ngc_freeze = %s\n" % (port, preload, tmp, freeze))
    with open(log, "w") as out:
        daemon = subprocess.Popen([BIN, "-c", conf], stdout=out, stderr=out)
    try:
        wait_for(lambda: "ready: 2 workers" in open(log).read(), 30, "the daemon")
        conns = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(8)]
        for i in range(REQUESTS):
            c = conns[i % len(conns)]
            c.request("GET", "/users")
            r = c.getresponse()
            r.read()
            assert r.status == 200, r.status
        for c in conns:
            c.close()
        collected = set()
        for _ in range(200):
            if len(collected) == 2:
                break
            c = http.client.HTTPConnection("127.0.0.1", port)
            c.request("GET", "/gc", headers={"Connection": "close"})
            collected.add(int(c.getresponse().read()))
            c.close()
        if len(collected) != 2:
            raise SystemExit("cow.py: /gc reached %d workers" % len(collected))
        figures = []
        for pid in sorted(collected):
            s = smaps(pid)
            figures.append((s["Private_Clean"] + s["Private_Dirty"], s["Pss"], s["Rss"]))
        return figures
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    with tempfile.TemporaryDirectory(prefix="preforkd-cow.") as tmp:
        project(tmp)
        settings = ("true", "false", "no preload")
        results = {k: [] for k in settings}
        for _ in range(rounds):
            for setting in settings:
                results[setting] += run(tmp, setting)
        print("Django, 2 workers, %d requests, then gc.collect() in each "
              "(%d rounds; medians, MiB):" % (REQUESTS, rounds))
        for setting in settings:
            uss = statistics.median(f[0] for f in results[setting]) / 1024
            pss = statistics.median(f[1] for f in results[setting]) / 1024
            rss = statistics.median(f[2] for f in results[setting]) / 1024
            name = ("preload = false" if setting == "no preload"
                    else "preload, gc_freeze = %s" % setting)
            print("  %-29s worker USS %5.1f  PSS %5.1f  RSS %5.1f" % (name, uss, pss, rss))


if __name__ == "__main__":
    main()
