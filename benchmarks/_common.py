"""Shared helpers for benchmark scripts: each script prints exactly one JSON line per figure."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

_PR_SET_PDEATHSIG = 1
# Looked up once in the parent: the function that runs in the child between fork and exec must
# not import or load anything (other threads may hold locks at fork time).
_prctl = (
    getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform == "linux" else None
)


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when this process dies.

    Teardown code never runs when a test run or benchmark is SIGKILLed or times out, and a worker
    that outlives its parent keeps consuming queues and holding ports for as long as it lives.
    Linux only (prctl PR_SET_PDEATHSIG), and it fires when the *thread* that started the child
    ends, so start long-lived children from the main thread. Elsewhere it does nothing.
    """
    parent = os.getpid()

    def preexec() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        # The parent may have died between fork and prctl: then nobody would send the signal.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def popen_tied(argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` for a child that dies with this process, in a session of its own
    (so ``process_group_kill`` reaches the children it forks too)."""
    # The preexec function only calls a prctl resolved beforehand: nothing that takes a lock.
    preexec = die_with_parent()
    return subprocess.Popen(argv, preexec_fn=preexec, start_new_session=True, **kwargs)  # noqa: PLW1509


def process_group_kill(proc: subprocess.Popen[Any], *, timeout: float = 30.0) -> None:
    """SIGTERM a child started by ``popen_tied`` and everything it forked; SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def redis_namespace_fresh(kind: str) -> str:
    """A Redis key prefix of its own for one run (queues, cache, pace keys): set in the environment
    so every process started from here inherits it (continuity/settings_test.py reads it)."""
    prefix = f"continuity-{kind}-{secrets.token_hex(6)}:"
    os.environ["REDIS_KEY_PREFIX"] = prefix
    return prefix


def bench_scale() -> str:
    scale = os.environ.get("BENCH_SCALE", "full").strip().lower()
    if scale not in ("small", "full"):
        sys.exit(f"BENCH_SCALE={scale!r} must be 'small' or 'full'")
    return scale


def sized(*, full: int, small: int) -> int:
    return small if bench_scale() == "small" else full


def emit(
    bench: str,
    value: float,
    unit: str,
    *,
    target: str,
    floor: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Print one figure as the JSON line `make bench` collects."""
    ratio = round(value / floor, 3) if floor else None
    line = {
        "bench": bench,
        "value": round(value, 3),
        "unit": unit,
        "floor": None if floor is None else round(floor, 3),
        "ratio_to_floor": ratio,
        "target": target,
        "scale": bench_scale(),
        **extra,
    }
    print(json.dumps(line), flush=True)
    return line


def setup_django(settings_module: str = "continuity.settings_test") -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django

    django.setup()


def bench_database_prepare(name: str) -> str:
    """A PostgreSQL database of the benchmark's own, created and migrated; returns its URL.

    Benchmarks never touch the development or test databases: they fill tables with millions of
    rows and time statements against them. The small scale (the test suite's smoke run) gets a
    database of its own, so `make test` never shrinks the million-row audience a full run keeps.
    """
    import subprocess
    from pathlib import Path
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/continuity")
    parts = urlsplit(base)
    if not parts.scheme.startswith("postgres"):
        sys.exit(f"{name} needs PostgreSQL: set DATABASE_URL to a postgres:// URL")
    if bench_scale() == "small":
        name = f"{name}_small"
    admin = urlunsplit(("postgresql", parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "continuity.settings_test"}
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=root, env=env, check=True)
    os.environ["DATABASE_URL"] = url
    return url


def worker_production_env() -> dict[str, str]:
    """Environment that makes a benchmark's Celery worker run as deployed: DEBUG off.

    The test settings default to DEBUG on, and with DEBUG on Django keeps the last 9,000 queries
    of every connection in memory (Celery warns about it at start-up): with chunk statements that
    carry 1,000 ids each, that log alone grows a worker by tens of MB, which no deployed worker
    has. DEBUG off needs a SECRET_KEY; a throwaway one serves a benchmark.
    """
    import secrets

    return {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50)}


@contextlib.contextmanager
def request_bodies_captured() -> Iterator[list[Any]]:
    """Every body the app's `requests` sessions send while the block runs, in order: the floor
    of a send benchmark posts exactly these again with a bare client."""
    import requests

    bodies: list[Any] = []
    original = requests.Session.send

    def capture(self: requests.Session, request: Any, **kwargs: Any) -> Any:
        bodies.append(request.body)
        return original(self, request, **kwargs)

    requests.Session.send = capture  # type: ignore[method-assign]
    try:
        yield bodies
    finally:
        requests.Session.send = original  # type: ignore[method-assign]
