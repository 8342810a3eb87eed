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

# --- delivery -------------------------------------------------------------------------------------
# Owned channels (email, SMS, web push) and their loopback sandbox fakes. Every provider base URL is
# a setting that defaults to a sandbox port on loopback, so nothing reaches the internet unless real
# URLs and credentials are configured (docs/configuration.md, "Delivery").

INSTALLED_APPS += ["anymail"]
SANDBOX_HOST = env_str("SANDBOX_HOST", default="127.0.0.1")
SANDBOX_SENDGRID_PORT = env_int("SANDBOX_SENDGRID_PORT", default=18025, minimum=1)
SANDBOX_FAILOVER_ESP_PORT = env_int("SANDBOX_FAILOVER_ESP_PORT", default=18026, minimum=1)
SANDBOX_TWILIO_PORT = env_int("SANDBOX_TWILIO_PORT", default=18030, minimum=1)
SANDBOX_PUSH_PORT = env_int("SANDBOX_PUSH_PORT", default=18040, minimum=1)
# The fake SendGrid signs its events with this P-256 key (PEM, PKCS8); the public half is what
# SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY must hold. Empty: generated per sandbox start.
SANDBOX_SENDGRID_EVENT_SIGNING_KEY = env_str("SANDBOX_SENDGRID_EVENT_SIGNING_KEY", default="")
# Where the SendGrid fake POSTs signed processed/delivered events (empty: it does not).
SANDBOX_SENDGRID_EVENTS_URL = env_str("SANDBOX_SENDGRID_EVENTS_URL", default="")

# The URL the internet sees this app at (behind a proxy it differs from the Host header); status
# callbacks are built from it and Twilio signs exactly that URL.
DELIVERY_PUBLIC_BASE_URL = env_str("DELIVERY_PUBLIC_BASE_URL", default="http://127.0.0.1:8000")

# Email: anymail's SendGrid backend as a named connection (EMAIL_BACKEND stays Django's, so admin
# mail never goes through campaign pacing), plus an optional failover ESP for SendGrid outages.
DELIVERY_EMAIL_BACKEND = env_str(
    "DELIVERY_EMAIL_BACKEND", default="anymail.backends.sendgrid.EmailBackend"
)
DELIVERY_EMAIL_FROM = env_str("DELIVERY_EMAIL_FROM", default="Continuity <news@example.com>")
DELIVERY_EMAIL_REPLY_TO = env_list("DELIVERY_EMAIL_REPLY_TO", default=[])
DELIVERY_EMAIL_BATCH_SIZE = env_int("DELIVERY_EMAIL_BATCH_SIZE", default=1000, minimum=1)
DELIVERY_EMAIL_FAILOVER_BACKEND = env_str("DELIVERY_EMAIL_FAILOVER_BACKEND", default="")
DELIVERY_EMAIL_FAILOVER_OPTIONS: dict[str, object] = {
    "api_key": env_str("DELIVERY_EMAIL_FAILOVER_API_KEY", default="sandbox-failover-key"),
    "api_url": env_str(
        "DELIVERY_EMAIL_FAILOVER_API_URL",
        default=f"http://{SANDBOX_HOST}:{SANDBOX_FAILOVER_ESP_PORT}/v3/",
    ),
}
# A read timeout means SendGrid may have accepted the request: failing over then risks a second
# copy. Off by default (the recipients become unknown); turn on to prefer delivery over no-dupes.
DELIVERY_EMAIL_FAILOVER_ON_READ_TIMEOUT = env_bool(
    "DELIVERY_EMAIL_FAILOVER_ON_READ_TIMEOUT", default=False
)
ANYMAIL = {
    "SENDGRID_API_KEY": env_str("SENDGRID_API_KEY", default="sandbox-sendgrid-key"),
    "SENDGRID_API_URL": env_str(
        "SENDGRID_API_URL", default=f"http://{SANDBOX_HOST}:{SANDBOX_SENDGRID_PORT}/v3/"
    ),
    # Substitution tags in rendered bodies look like -first_name- (providers/sendgrid_email.py).
    "SENDGRID_MERGE_FIELD_FORMAT": "-{}-",
    "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": env_str(
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY", default=""
    )
    or None,
    # anymail's default is 30 s; a chunk task must fail fast and let the sweeper decide.
    "REQUESTS_TIMEOUT": env_float("SENDGRID_REQUESTS_TIMEOUT_S", default=10.0, minimum=0.1),
}
# Signed events older (or further in the future) than this are refused as replays.
DELIVERY_WEBHOOK_MAX_AGE_S = env_int("DELIVERY_WEBHOOK_MAX_AGE_S", default=300, minimum=10)
# anymail dropped official SendGrid support (anymail.W003 and AnymailNotSupportedWarning). We keep
# it deliberately: it still works, it is the ESP the business uses, and the backend is swappable
# by DELIVERY_EMAIL_BACKEND. The warning filter lives in delivery/apps.py.
SILENCED_SYSTEM_CHECKS = ["anymail.W003"]

# SMS: Twilio. Either a Messaging Service SID or a From number.
TWILIO_ACCOUNT_SID = env_str("TWILIO_ACCOUNT_SID", default="AC" + "0" * 32)
TWILIO_AUTH_TOKEN = env_str("TWILIO_AUTH_TOKEN", default="sandbox-twilio-token")
TWILIO_MESSAGING_SERVICE_SID = env_str("TWILIO_MESSAGING_SERVICE_SID", default="")
TWILIO_FROM_NUMBER = env_str("TWILIO_FROM_NUMBER", default="+15005550006")
TWILIO_API_BASE_URL = env_str(
    "TWILIO_API_BASE_URL", default=f"http://{SANDBOX_HOST}:{SANDBOX_TWILIO_PORT}"
)
TWILIO_TIMEOUT_S = env_float("TWILIO_TIMEOUT_S", default=10.0, minimum=0.1)
# Global pace across every worker (Redis token bucket); Twilio queues beyond the sender's MPS.
DELIVERY_SMS_RATE_PER_S = env_float("DELIVERY_SMS_RATE_PER_S", default=10.0, minimum=0.1)
DELIVERY_SMS_MAX_ATTEMPTS = env_int("DELIVERY_SMS_MAX_ATTEMPTS", default=3, minimum=1)
# Headroom the pace keeps for the time between a send starting and the provider reading it: no
# one-second window at the provider exceeds the rate unless that stretch varies by more than this.
DELIVERY_SMS_PACE_MARGIN_S = env_float("DELIVERY_SMS_PACE_MARGIN_S", default=0.012, minimum=0.0)

# Web push: VAPID keys from `manage.py vapid_keys`. Empty private key: a key is generated into
# var/ for the sandbox (never in production, where DEBUG is off).
VAPID_PRIVATE_KEY = env_str("VAPID_PRIVATE_KEY", default="")
VAPID_PUBLIC_KEY = env_str("VAPID_PUBLIC_KEY", default="")
VAPID_SUBJECT = env_str("VAPID_SUBJECT", default="mailto:ops@example.com")
DELIVERY_PUSH_TTL_S = env_int("DELIVERY_PUSH_TTL_S", default=24 * 3600, minimum=0)
DELIVERY_PUSH_URGENCY = env_choice(
    "DELIVERY_PUSH_URGENCY", default="normal", choices=("very-low", "low", "normal", "high")
)
DELIVERY_PUSH_TIMEOUT_S = env_float("DELIVERY_PUSH_TIMEOUT_S", default=10.0, minimum=0.1)
DELIVERY_PUSH_CONCURRENCY = env_int("DELIVERY_PUSH_CONCURRENCY", default=16, minimum=1)
SANDBOX_PUSH_BASE_URL = env_str(
    "SANDBOX_PUSH_BASE_URL", default=f"http://{SANDBOX_HOST}:{SANDBOX_PUSH_PORT}"
)
# The twilio library logs every request and response header at INFO.
LOGGING["loggers"]["twilio.http_client"] = {"level": "WARNING"}  # type: ignore[index]
