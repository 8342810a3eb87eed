"""Test settings: real PostgreSQL and Redis at their local defaults, overridable by env."""

import os
import secrets

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/continuity")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("LOG_FORMAT", "text")
# Tests start their own SendGrid fakes with their own keys; the demo's shared pair stays out.
os.environ.setdefault("SANDBOX_SENDGRID_DEMO_EVENTS", "false")
# pytest-django runs tests with DEBUG off, where a missing token key is refused; this one is for
# tests only, and a worker started by a test inherits whatever key that test chose.
os.environ.setdefault("SOCIAL_TOKEN_KEYS", "yHxtgplI4byoFRvWeYVvgG1Lh_2YgwSfztm2VuhAfVU=")
# One Redis namespace per run: broker queues, worker control, cache and pace keys all start with
# it, so a worker left over from another run, checkout or `make bench` on the same Redis consumes
# nothing of this one. The first process to load these settings picks it; every process it starts
# (workers, the sandbox, benchmark scripts) inherits it through the environment.
os.environ.setdefault("REDIS_KEY_PREFIX", f"continuity-test-{secrets.token_hex(6)}:")

from continuity.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Until continuity/settings.py reads REDIS_KEY_PREFIX itself, the namespace is applied here.
REDIS_KEY_PREFIX = os.environ["REDIS_KEY_PREFIX"]
if not BROKER_IS_EMBEDDED:  # noqa: F405
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405
        "global_keyprefix": REDIS_KEY_PREFIX,
    }
    CACHES = {"default": {**CACHES["default"], "KEY_PREFIX": f"{REDIS_KEY_PREFIX}cache"}}  # noqa: F405
