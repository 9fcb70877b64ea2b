"""Settings for recsite, read from the environment (12-factor).

Every variable is documented in README.md ("Configuration") and .env.example.
"""

import json
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str | None = None) -> str | None:
    """Return an environment variable, or `default` when unset or empty."""
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_bool(name: str, default: bool = False) -> bool:
    """Parse a boolean environment variable (1/true/yes/on)."""
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    """Parse an integer environment variable."""
    value = env(name)
    return default if value is None else int(value)


def env_list(name: str, default: str = "") -> list[str]:
    """Parse a comma-separated environment variable into a list."""
    return [part.strip() for part in (env(name, default) or "").split(",") if part.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    # No production default for a secret: start.sh generates one for local use.
    raise ImproperlyConfigured("SECRET_KEY must be set (start.sh generates one locally).")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    # django.contrib.admin with recsite's AdminSite (dashboard index); `admin.site` stays the
    # one site every app (django-celery-beat too) registers on.
    "recsite.admin.RecsiteAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "users",
    "items",
    "recommendations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # JSON errors under /api/, 503 on a database outage, 413/400 on bad bodies.
    "recsite.middleware.ErrorResponseMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "recsite.urls"
WSGI_APPLICATION = "recsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "recsite" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: PostgreSQL only (one code path; start.sh provides an embedded server).
DATABASE_URL = env("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/recsite")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The stock backend, with a health check that skips its `SELECT 1` while the
    # connection's socket is quiet (recsite/db_backend/base.py).
    DATABASES["default"]["ENGINE"] = "recsite.db_backend"
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["OPTIONS"].setdefault(
    "connect_timeout", env_int("DB_CONNECT_TIMEOUT", 5)
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache (throttling, serving invalidation) and Celery broker.
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        # RedisCache that fails fast for a few seconds after a timeout (a hung Redis
        # must not cost every request a socket timeout).
        "BACKEND": "recsite.cache.CircuitBreakerRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "recsite"),
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / ".local" / "static")))
STATICFILES_DIRS = [BASE_DIR / "recsite" / "static"]
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / ".local" / "media")))
MEDIA_URL = "media/"

STORAGES = {
    "default": {"BACKEND": env("DEFAULT_FILE_STORAGE", "django.core.files.storage.FileSystemStorage")},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Model artifacts go through the storage "artifacts" (recommendations/artifact_store.py):
# local files at ARTIFACTS_DIR unless a backend is named, e.g. S3-compatible storage:
# ARTIFACTS_STORAGE_BACKEND=storages.backends.s3.S3Storage and
# ARTIFACTS_STORAGE_OPTIONS='{"bucket_name": "recsite", "endpoint_url": "http://minio:9000"}'
if env("ARTIFACTS_STORAGE_BACKEND"):
    STORAGES["artifacts"] = {
        "BACKEND": env("ARTIFACTS_STORAGE_BACKEND"),
        "OPTIONS": json.loads(env("ARTIFACTS_STORAGE_OPTIONS", "{}") or "{}"),
    }

# Request-size limits: a 10,000-row batch is well under this.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 20 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- CORS: browsers of the client app call the API with a public key.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", "")
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_HEADERS = ["authorization", "content-type", "accept"]

# --- REST framework.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "users.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["users.permissions.ApiKeyPermission"],
    "DEFAULT_THROTTLE_CLASSES": ["users.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "write": env("THROTTLE_WRITE", "6000/min"),
        "read_only": env("THROTTLE_READ_ONLY", "6000/min"),
        "public": env("THROTTLE_PUBLIC", "1200/min"),
        "staff": env("THROTTLE_STAFF", "6000/min"),
    },
    "DEFAULT_PAGINATION_CLASS": "recsite.pagination.BoundedPageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "recsite.negotiation.JsonShortcutNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "recsite.exceptions.api_exception_handler",
    "NON_FIELD_ERRORS_KEY": "non_field_errors",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append(
        "rest_framework.renderers.BrowsableAPIRenderer"
    )

SPECTACULAR_SETTINGS = {
    "TITLE": "recsite API",
    "DESCRIPTION": (
        "Self-hosted recommendations: users, items and interactions in; "
        "personalised, similar, popular and session recommendations out. "
        "Send `Authorization: Bearer <key>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "ImportJobStatusEnum": "recommendations.models.ImportJob.Status",
        "ImportJobKindEnum": "recommendations.models.ImportJob.Kind",
        "ImportJobFormatEnum": "recommendations.models.ImportJob.Format",
        "ModelVersionStatusEnum": "recommendations.models.ModelVersion.Status",
        "ModelVersionTriggerEnum": "recommendations.models.ModelVersion.Trigger",
    },
}

# --- Celery (see recsite/celery.py). Redis is the broker.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"recommendations.tasks.train_model_task": {"queue": "training"}}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 4 * 3600}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
DJANGO_CELERY_BEAT_TZ_AWARE = True

# --- recsite's own settings.
RECSITE = {
    # Where model artifacts are published (local files; memory-mapped by serving).
    "ARTIFACTS_DIR": env("ARTIFACTS_DIR", str(BASE_DIR / ".local" / "artifacts")),
    # With a remote artifacts storage: this machine's copy, memory-mapped by every worker.
    "ARTIFACTS_CACHE_DIR": env("ARTIFACTS_CACHE_DIR", str(BASE_DIR / ".local" / "artifact-cache")),
    # A new version is activated automatically when its validation NDCG@10 is at
    # least (1 - tolerance) x the active version's.
    "ACTIVATION_TOLERANCE": float(env("ACTIVATION_TOLERANCE", "0.05") or 0.05),
    "TRAIN_TIME_BUDGET_S": env_int("TRAIN_TIME_BUDGET_S", 300),
    "TRAIN_SOFT_TIME_LIMIT_S": env_int("TRAIN_SOFT_TIME_LIMIT_S", 3 * 3600),
    "SKIP_RETRAIN_IF_UNCHANGED": env_bool("SKIP_RETRAIN_IF_UNCHANGED", True),
    "KEEP_MODEL_VERSIONS": env_int("KEEP_MODEL_VERSIONS", 5),
    # How often a serving process checks which version is active (seconds).
    "SERVING_REFRESH_S": float(env("SERVING_REFRESH_S", "3") or 3),
    # Under gunicorn with preload_app (gunicorn.conf.py) the master loads a newly
    # activated version and re-forks the workers, so they share its memory; a worker
    # loads the version itself only if that has not happened after this long.
    "MASTER_RELOAD_GRACE_S": float(env("MASTER_RELOAD_GRACE_S", "120") or 120),
    # Server-side prepared statements for the serving path's hot queries. Turn off
    # behind a connection pooler in transaction mode (e.g. PgBouncer's).
    "DB_PREPARED_STATEMENTS": env_bool("DB_PREPARED_STATEMENTS", True),
    # Each web process listens for PostgreSQL's change notifications (one extra
    # connection per process; recsite/changes.py) and, while it receives them, keeps
    # API keys, business rules and the item catalog in memory: a similar-items
    # request then makes no database round trip. Off: every request reads them.
    "CHANGE_FEED": env_bool("CHANGE_FEED", True),
    # The in-memory item catalog (recommendations/catalog.py, about 100 bytes per
    # item per web process) is not loaded above this many items; 0 turns it off.
    "SERVING_CATALOG_MAX_ITEMS": env_int("SERVING_CATALOG_MAX_ITEMS", 2_000_000),
    "MAX_BATCH_ROWS": 10_000,
    "MAX_RECOMMENDATIONS": 100,
    # Background work (recommendations/tasks.py; docs/background.md).
    # The hard limit kills a training that ignores its soft limit this much later.
    "TRAIN_HARD_TIME_LIMIT_MARGIN_S": env_int("TRAIN_HARD_TIME_LIMIT_MARGIN_S", 600),
    # A training whose heartbeat is older than this is reaped as failed (worker lost).
    "STALE_RUN_AFTER_S": env_int("STALE_RUN_AFTER_S", 900),
    # A version queued this long without a worker picking it up is reaped as failed.
    "STALE_QUEUED_AFTER_S": env_int("STALE_QUEUED_AFTER_S", 6 * 3600),
    # Queued work not started after this long is sent again (its message was lost,
    # e.g. the broker was down when it was requested); duplicates are harmless.
    "RESEND_QUEUED_AFTER_S": env_int("RESEND_QUEUED_AFTER_S", 120),
    # Failed/rejected versions older than this many days are pruned.
    "PRUNE_FAILED_AFTER_DAYS": env_int("PRUNE_FAILED_AFTER_DAYS", 14),
    # Bulk file imports: rows per write, and the largest file POST /api/v1/imports/ takes
    # (bigger files: `manage.py import_file`).
    "IMPORT_CHUNK_ROWS": env_int("IMPORT_CHUNK_ROWS", 5000),
    "IMPORT_MAX_UPLOAD_BYTES": env_int("IMPORT_MAX_UPLOAD_BYTES", 1024 * 1024 * 1024),
}

# Training time limits, applied to the task wherever it is sent from.
CELERY_TASK_ANNOTATIONS = {
    "recommendations.tasks.train_model_task": {
        "soft_time_limit": RECSITE["TRAIN_SOFT_TIME_LIMIT_S"],
        "time_limit": RECSITE["TRAIN_SOFT_TIME_LIMIT_S"]
        + RECSITE["TRAIN_HARD_TIME_LIMIT_MARGIN_S"],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Production hardening, on unless DEBUG (manage.py check --deploy passes).
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
