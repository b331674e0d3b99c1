"""Django settings for the test project: sqlite in the test's temp dir
(PF_TEST_DIR), no middleware beyond what the views need."""
import os

SECRET_KEY = "preforkd-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["djproj.notes"]
MIDDLEWARE = []
ROOT_URLCONF = "djproj.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(os.environ.get("PF_TEST_DIR", "/tmp"),
                             "db.sqlite3"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
TIME_ZONE = "UTC"  # Django would set TZ (and the log times) to Chicago
