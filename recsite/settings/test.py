"""Test settings: only overrides of base.py."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-0123456789")

from .base import *  # noqa: E402,F401,F403
from .base import BASE_DIR, RECSITE, REST_FRAMEWORK, env_bool  # noqa: E402

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
RECSITE = {
    **RECSITE,
    "ARTIFACTS_DIR": str(BASE_DIR / ".local" / "test-artifacts"),
    "TRAIN_TIME_BUDGET_S": 5,
    "SERVING_REFRESH_S": 0,
    # A test's transaction is never committed, so PostgreSQL never sends its
    # notifications: the feed (and the caches it keeps current) is off, except in
    # the transactional tests that turn it on (tests/core/test_change_feed.py) and
    # servers started with CHANGE_FEED=1 (tests/reliability/test_database_outage.py).
    "CHANGE_FEED": env_bool("CHANGE_FEED", False),
}
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {
        "write": "100000/min",
        "read_only": "100000/min",
        "public": "100000/min",
        "staff": "100000/min",
    },
}

# Several pytest runs may share one PostgreSQL server (parallel developers, CI
# re-runs): give each run its own test database unless one is named explicitly.
from .base import DATABASES  # noqa: E402

DATABASES["default"]["TEST"] = {
    "NAME": os.environ.get("TEST_DATABASE_NAME")
    or f"test_{DATABASES['default']['NAME']}_{os.getpid()}"
}
