"""Typed, strict reading of environment settings.

django-environ parses URLs and lists well, but its ``bool`` and ``int`` casts either accept garbage
silently ("maybe" reads as False) or fail with a bare ValueError that does not name the variable.
These helpers keep django-environ for parsing and turn every bad value into an ImproperlyConfigured
that names the variable and says what is expected, so start-up fails in plain words.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    return os.environ.get(name)


def env_file_load(base_dir: Path) -> None:
    """A local .env is a convenience for local work; real environment variables win over it."""
    if (base_dir / ".env").is_file():
        environ.Env.read_env(base_dir / ".env", overwrite=False)


def env_var_dir(base_dir: Path) -> Path:
    """Where local state lives (the embedded database, broker, keys): var/ unless configured."""
    return Path(env_str("CONTINUITY_VAR_DIR", default=str(base_dir / "var")))


def env_bool(name: str, *, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off."
    )


def env_int(name: str, *, default: int, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below its minimum of {minimum}.")
    return number


def env_float(name: str, *, default: float, minimum: float | None = None) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below its minimum of {minimum}.")
    return number


def env_str(name: str, *, default: str) -> str:
    value = _raw(name)
    return default if value is None else value


def env_list(name: str, *, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, *, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default=default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of: {', '.join(choices)}.")
    return value


def env_database(name: str, *, default: str) -> dict[str, Any]:
    url = env_str(name, default=default)
    try:
        config: dict[str, Any] = environ.Env.db_url_config(url)
    except (ImproperlyConfigured, KeyError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"{name}={url!r} is not a database URL "
            f"(expected postgres://user:password@host:5432/name): {exc}"
        ) from None
    if not config.get("ENGINE"):
        raise ImproperlyConfigured(f"{name}={url!r}: unsupported database scheme.")
    return config


def env_redis_url(name: str, *, default: str) -> str:
    url = env_str(name, default=default)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(
            f"{name}={url!r} is not a Redis URL (expected redis://host:6379/0 or rediss://...)."
        )
    return url
