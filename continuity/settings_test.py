"""Test settings: real PostgreSQL and Redis at their local defaults, overridable by env."""

import os

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/continuity")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("LOG_FORMAT", "text")

from continuity.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# pytest-django runs tests with DEBUG off, where a missing key is refused; this one is for tests.
SOCIAL_TOKEN_KEYS = ["yHxtgplI4byoFRvWeYVvgG1Lh_2YgwSfztm2VuhAfVU="]
