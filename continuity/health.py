"""Liveness and readiness checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    elapsed_ms: float


def heartbeat_record(*, name: str) -> None:
    from continuity.models import Heartbeat

    table = connection.ops.quote_name(Heartbeat._meta.db_table)
    # One statement, so two workers beating at once can neither lose a count nor collide on the
    # first insert.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (name, seen_at, beats) VALUES (%s, %s, 1) "  # noqa: S608 - table name from the model
            f"ON CONFLICT (name) DO UPDATE SET seen_at = EXCLUDED.seen_at, "
            f"beats = {table}.beats + 1",
            [name, timezone.now()],
        )


def _timed(name: str, probe: Callable[[], str]) -> CheckResult:
    started = time.perf_counter()
    try:
        detail = probe()
        ok = True
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"
        ok = False
    return CheckResult(name, ok, detail, round((time.perf_counter() - started) * 1000, 1))


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (version,) = cursor.fetchone()
    mode = "embedded" if settings.DATABASE_IS_EMBEDDED else "external"
    return f"PostgreSQL {version.split()[0]} ({mode})"


def _check_broker() -> str:
    from continuity.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return conn.transport_cls if isinstance(conn.transport_cls, str) else "connected"


def _check_beat() -> str:
    from continuity.models import Heartbeat

    seen = Heartbeat.objects.filter(name="beat").values_list("seen_at", flat=True).first()
    if seen is None:
        raise RuntimeError("no beat heartbeat yet: are `celery beat` and a control worker running?")
    age = timezone.now() - seen
    if age > timedelta(seconds=settings.BEAT_HEARTBEAT_MAX_AGE_S):
        raise RuntimeError(f"last beat heartbeat {age.total_seconds():.0f}s ago")
    return f"{age.total_seconds():.0f}s ago"


def readiness_checks() -> list[CheckResult]:
    database = _timed("database", _check_database)
    broker = _timed("broker", _check_broker)
    beat = (
        _timed("beat", _check_beat)
        if database.ok
        else CheckResult("beat", False, "database unavailable", 0.0)
    )
    return [database, broker, beat]
