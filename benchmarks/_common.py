"""Shared helpers for benchmark scripts: each script prints exactly one JSON line per figure."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.metadata
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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


ROOT = Path(__file__).resolve().parent.parent
# Third-party apps that ship migrations: a new version of one changes the schema too.
_MIGRATING_PACKAGES = ("django", "djangorestframework", "django-celery-beat")


def _database_base_url() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/continuity")
    if not urlsplit(base).scheme.startswith("postgres"):
        sys.exit("the benchmarks need PostgreSQL: set DATABASE_URL to a postgres:// URL")
    return base


def _database_url(base: str, name: str) -> str:
    return urlunsplit(urlsplit(base)._replace(path=f"/{name}", query="", fragment=""))


def _admin_dsn(base: str) -> str:
    return urlunsplit(("postgresql", urlsplit(base).netloc, "/postgres", "", ""))


def migrations_fingerprint() -> str:
    """A hash of everything that decides the migrated schema: our migration files and the
    versions of the packages whose migrations run too."""
    digest = hashlib.sha256()
    for path in sorted(ROOT.glob("*/migrations/*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    for package in _MIGRATING_PACKAGES:
        digest.update(f"{package}=={importlib.metadata.version(package)}".encode())
    return digest.hexdigest()[:16]


# A template no run asked for in this long is dropped by the next run that builds or uses another.
TEMPLATE_KEPT_UNUSED_S = 24 * 3600


def bench_template_ensure(prefix: str = "continuity_bench_tpl_") -> str:
    """The name of a database migrated once for the current migrations, built if missing.

    Migrating takes seconds per database and every benchmark wants one; copying a migrated
    template (CREATE DATABASE ... TEMPLATE) takes a fraction of that. The name carries the
    migrations' fingerprint, so a changed migration builds a new template; one that no run has
    used for TEMPLATE_KEPT_UNUSED_S goes. The test suite keeps its own under another prefix.
    """
    import psycopg

    base = _database_base_url()
    template = f"{prefix}{migrations_fingerprint()}"
    with psycopg.connect(_admin_dsn(base), autocommit=True) as conn:
        # Two benchmark runs starting together build it once: the second waits here.
        conn.execute("SELECT pg_advisory_lock(hashtext('continuity_bench_template'))")
        try:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [template]
            ).fetchone()
            if not exists:
                building = f"{template}_building"
                conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{building}"')
                env = {
                    **os.environ,
                    "DATABASE_URL": _database_url(base, building),
                    "DJANGO_SETTINGS_MODULE": "continuity.settings_test",
                }
                subprocess.run(
                    [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
                )
                # Renamed only once complete: a half-migrated template is never copied.
                conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{template}"')
            # When it was last asked for: checkouts with other migrations (branches, another
            # session's work) keep theirs while they use them, instead of each run dropping the
            # other's template and rebuilding its own.
            conn.execute(f"COMMENT ON DATABASE \"{template}\" IS 'used {int(time.time())}'")
            stale = conn.execute(
                "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE datname LIKE %s AND datname <> %s",
                [f"{prefix}%", template],
            ).fetchall()
            for name, comment in stale:
                used = (comment or "").removeprefix("used ")
                # No date: another checkout's older code built it; that checkout may still use it.
                if not used.isdigit() or time.time() - int(used) < TEMPLATE_KEPT_UNUSED_S:
                    continue
                with contextlib.suppress(psycopg.Error):
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('continuity_bench_template'))")
    return template


def bench_database_create(name: str) -> str:
    """A fresh database ``name``, migrated (a copy of the template), replacing any old one."""
    import psycopg

    base = _database_base_url()
    template = bench_template_ensure()
    with psycopg.connect(_admin_dsn(base), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        conn.execute(f"COMMENT ON DATABASE \"{name}\" IS 'migrations {migrations_fingerprint()}'")
    return _database_url(base, name)


def bench_database_prepare(name: str) -> str:
    """A PostgreSQL database of the benchmark's own, migrated; returns its URL.

    Benchmarks never touch the development or test databases: they fill tables with millions of
    rows and time statements against them. The small scale (the test suite's smoke run) gets a
    database of its own, fresh each time, so `make test` never shrinks the million-row audience a
    full run keeps; the full scale keeps its database and migrates it only when migrations
    changed since it was made.
    """
    import psycopg

    base = _database_base_url()
    if bench_scale() == "small":
        name = f"{name}_small"
    with psycopg.connect(_admin_dsn(base), autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [name],
        ).fetchone()
    url = _database_url(base, name)
    if row is None or bench_scale() == "small":
        url = bench_database_create(name)
    elif row[0] != f"migrations {migrations_fingerprint()}":
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "continuity.settings_test",
        }
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
        )
        with psycopg.connect(_admin_dsn(base), autocommit=True) as conn:
            conn.execute(
                f"COMMENT ON DATABASE \"{name}\" IS 'migrations {migrations_fingerprint()}'"
            )
    os.environ["DATABASE_URL"] = url
    return url


def worker_production_env() -> dict[str, str]:
    """Environment that makes a benchmark's Celery worker run as deployed: DEBUG off.

    The test settings default to DEBUG on, and with DEBUG on Django keeps the last 9,000 queries
    of every connection in memory (Celery warns about it at start-up): with chunk statements that
    carry 1,000 ids each, that log alone grows a worker by tens of MB, which no deployed worker
    has. DEBUG off needs a SECRET_KEY and a link signing key; throwaway ones serve a benchmark.
    """
    import secrets

    return {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "CONTACTS_LINK_SIGNING_KEY": secrets.token_urlsafe(50),
    }


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


def redis_keys_delete(*, url: str, prefix: str) -> int:
    """Delete the keys under ``prefix`` (one run's namespace, or its cache), nothing else: other
    runs may share this Redis database."""
    import redis

    if not prefix:
        raise ValueError("an empty prefix would delete every key in the database")
    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(client.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(client.delete(*batch))
    finally:
        client.close()
    return deleted


def gunicorn_wait_healthy(*, base: str, server: subprocess.Popen[str]) -> None:
    """Wait up to 60 s for a web server a benchmark started to answer /healthz; exit with its
    stderr if it died or never answered."""
    import requests

    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            sys.exit(f"gunicorn did not start: {server.stderr.read() if server.stderr else ''}")
        time.sleep(0.2)
