"""Settings, all from the environment (see docs/configuration.md and .env.example).

Two run modes share this file. With no DATABASE_URL and no broker URL the project runs embedded:
SQLite in var/ and Celery over kombu's filesystem transport, nothing to install. Setting
DATABASE_URL (PostgreSQL) and REDIS_URL / CELERY_BROKER_URL switches to the production shape.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from continuity.env import (
    env_bool,
    env_choice,
    env_database,
    env_float,
    env_int,
    env_list,
    env_redis_url,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# A local .env is a convenience for `make run`; real environment variables always win over it.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
VAR_DIR = Path(env_str("CONTINUITY_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", default=False)


def _secret_key() -> str:
    configured = env_str("SECRET_KEY", default="")
    if configured:
        return configured
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: production (DEBUG off) needs a long random SECRET_KEY; "
            "for local work set DEBUG=true and one is generated into var/secret_key."
        )
    # A per-checkout key, so no secret is ever committed and sessions survive restarts.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_celery_beat",
    "corsheaders",
    "continuity",
    "contacts",
    "outages",
    "delivery",
    "campaigns",
]

MIDDLEWARE = [
    "continuity.logging.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "continuity.urls"
WSGI_APPLICATION = "continuity.wsgi.application"
ASGI_APPLICATION = "continuity.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "continuity" / "templates"],
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

# --- Database -------------------------------------------------------------------------------------

EMBEDDED_DATABASE_URL = f"sqlite:///{VAR_DIR / 'continuity.sqlite3'}"
_database = env_database("DATABASE_URL", default=EMBEDDED_DATABASE_URL)
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; IMMEDIATE transactions plus a busy
    # timeout make concurrent writers (web, worker, beat) wait for the lock instead of failing
    # with "database is locked" in the middle of a transaction.
    _database["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": env_int("SQLITE_BUSY_TIMEOUT_S", default=30, minimum=1),
    }
elif _database["ENGINE"] == "django.db.backends.postgresql":
    _database.setdefault("CONN_MAX_AGE", env_int("DATABASE_CONN_MAX_AGE", default=60, minimum=0))
    _database["CONN_HEALTH_CHECKS"] = True
    _database.setdefault("OPTIONS", {})["connect_timeout"] = env_int(
        "DATABASE_CONNECT_TIMEOUT_S", default=5, minimum=1
    )
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery ---------------------------------------------------------------------------------------

REDIS_URL = env_redis_url("REDIS_URL", default="redis://127.0.0.1:6379/0")
_broker_explicit = env_str("CELERY_BROKER_URL", default="")
_redis_explicit = env_str("REDIS_URL", default="")
if _broker_explicit:
    CELERY_BROKER_URL = _broker_explicit
elif _redis_explicit:
    CELERY_BROKER_URL = REDIS_URL
else:
    CELERY_BROKER_URL = "filesystem://"
BROKER_IS_EMBEDDED = CELERY_BROKER_URL.startswith("filesystem://")
BROKER_DIR = VAR_DIR / "broker"

# A Redis message not acked within this many seconds is handed to another worker. It must be longer
# than the longest task (a chunk of 1,000 sends) and is the same number everywhere the transport
# reads it, so redelivery never races a running task.
CELERY_VISIBILITY_TIMEOUT_S = env_int("CELERY_VISIBILITY_TIMEOUT_S", default=3600, minimum=60)
if BROKER_IS_EMBEDDED:
    (BROKER_DIR / "queue").mkdir(parents=True, exist_ok=True)
    (BROKER_DIR / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        # The transport polls once a second by default, which makes every hop feel slow.
        "polling_interval": env_float("CELERY_FS_POLLING_INTERVAL_S", default=0.05, minimum=0.01),
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT_S,
        "socket_connect_timeout": 5,
        "socket_timeout": 10,
        "retry_on_timeout": True,
        "health_check_interval": 30,
    }
CELERY_TASK_ALWAYS_EAGER = False
# Prefetch 1 on Redis keeps a slow provider from stranding a backlog behind one process. The
# filesystem transport, though, only looks for messages once per polling interval and per prefetch
# window, so prefetch 1 caps the embedded mode at ~2 tasks per poll (measured: 38 tasks/s); a
# deeper window there costs nothing, since the embedded mode is one host with one worker.
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int(
    "CELERY_WORKER_PREFETCH_MULTIPLIER", default=8 if BROKER_IS_EMBEDDED else 1, minimum=1
)
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", default=2, minimum=1)

# --- Caches (rate limits, short locks) ------------------------------------------------------------

if BROKER_IS_EMBEDDED:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }

# --- Auth, i18n, static ---------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# --- API ------------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "continuity.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Continuity API",
    "DESCRIPTION": "First-party CRM, campaigns, outages and fallback delivery.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/(api/v1/public|push)/.*$"

# --- Security (production) ------------------------------------------------------------------------

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", default=31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# --- Logging --------------------------------------------------------------------------------------

LOG_FORMAT = env_choice("LOG_FORMAT", default="text" if DEBUG else "json", choices=("text", "json"))
LOG_LEVEL = env_choice(
    "LOG_LEVEL", default="info", choices=("debug", "info", "warning", "error")
).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "continuity.logging.ContextFilter"}},
    "formatters": {
        "text": {
            "format": "%(asctime)s %(levelname)-7s %(name)s [%(context_id)s] %(message)s",
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "celery": {"level": LOG_LEVEL, "propagate": True},
    },
}

# --- Health ---------------------------------------------------------------------------------------

BEAT_HEARTBEAT_INTERVAL_S = env_int("BEAT_HEARTBEAT_INTERVAL_S", default=15, minimum=1)
BEAT_HEARTBEAT_MAX_AGE_S = env_int("BEAT_HEARTBEAT_MAX_AGE_S", default=60, minimum=5)

# --- outages ---
# Monitor webhooks (docs/monitors.md): body limits, signature tolerance, flap damping, receipts.
OUTAGES_WEBHOOK_MAX_BODY_BYTES = env_int(
    "OUTAGES_WEBHOOK_MAX_BODY_BYTES", default=1024 * 1024, minimum=1024
)
OUTAGES_RECEIPT_BODY_BYTES = env_int("OUTAGES_RECEIPT_BODY_BYTES", default=64 * 1024, minimum=0)
OUTAGES_RECEIPT_RETENTION_DAYS = env_int("OUTAGES_RECEIPT_RETENTION_DAYS", default=30, minimum=1)
OUTAGES_RECEIPT_PRUNE_INTERVAL_S = env_int(
    "OUTAGES_RECEIPT_PRUNE_INTERVAL_S", default=3600, minimum=60
)
OUTAGES_SIGNATURE_TOLERANCE_S = env_int("OUTAGES_SIGNATURE_TOLERANCE_S", default=300, minimum=1)
OUTAGES_FLAP_DAMPING_S = env_int("OUTAGES_FLAP_DAMPING_S", default=300, minimum=0)
OUTAGES_EARLY_RESOLVE_GRACE_S = env_int("OUTAGES_EARLY_RESOLVE_GRACE_S", default=600, minimum=0)
OUTAGES_CREDENTIAL_OVERLAP_S = env_int("OUTAGES_CREDENTIAL_OVERLAP_S", default=86400, minimum=0)
OUTAGES_CREDENTIAL_KEY = env_str("OUTAGES_CREDENTIAL_KEY", default="")
OUTAGES_SOURCE_CACHE_S = env_int("OUTAGES_SOURCE_CACHE_S", default=5, minimum=0)
OUTAGES_IMPACT_COUNTER = env_str("OUTAGES_IMPACT_COUNTER", default="")
OUTAGES_EXTRA_NETWORKS: dict[str, str] = {}
# django.contrib.admin comes first in INSTALLED_APPS, so an app template cannot override its
# admin/base_site.html; the open-outages banner's override is found through DIRS instead.
_outages_dirs: list[Path] = list(TEMPLATES[0]["DIRS"])  # type: ignore[call-overload]
TEMPLATES[0]["DIRS"] = [*_outages_dirs, BASE_DIR / "outages" / "admin_templates"]
