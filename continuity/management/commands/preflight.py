from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.utils import OperationalError

from continuity.checks import InsecureStart, start_refuse_if_insecure

HOW_TO_START = {
    "postgresql": (
        "Start it (Debian: pg_ctlcluster 15 main start) or point DATABASE_URL at a running server."
    ),
    "embedded": (
        "The embedded server in var/postgres is not running: `manage.py` starts it for each "
        "command; its log is var/postgres/log."
    ),
    "redis": ("Start it (redis-server --daemonize yes) or point REDIS_URL at a running server."),
}


class Command(BaseCommand):
    help = (
        "Check, within seconds, that the database and the broker answer (say which one does "
        "not) and, with DEBUG off, that `check --deploy` finds no error."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--test-run",
            action="store_true",
            help="The main database may be missing: pytest-django creates its own test_<name>.",
        )

    def handle(self, *args: Any, test_run: bool = False, **options: Any) -> None:
        # A production start (DEBUG off) goes no further with a deploy error, a missing or
        # sandbox-valued secret first of all: `manage.py run` starts with this command.
        try:
            start_refuse_if_insecure()
        except InsecureStart as exc:
            raise CommandError(str(exc)) from None
        problems = [p for p in (self._database_problem(test_run), self._broker_problem()) if p]
        if problems:
            raise CommandError("\n".join(problems))
        self.stdout.write(
            f"preflight ok: database {self._engine()} at {self._where(settings.DATABASES)}, "
            f"broker {self._redact(settings.CELERY_BROKER_URL)}"
        )

    @staticmethod
    def _redact(url: str) -> str:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"

    @staticmethod
    def _engine() -> str:
        return "PostgreSQL (embedded)" if settings.DATABASE_IS_EMBEDDED else "PostgreSQL"

    @staticmethod
    def _where(databases: dict[str, Any]) -> str:
        db = databases["default"]
        return f"{db.get('HOST') or 'local'}:{db.get('PORT') or '-'}/{db.get('NAME')}"

    def _database_problem(self, test_run: bool) -> str | None:
        db = settings.DATABASES["default"]
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except OperationalError as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            if "does not exist" in first_line:
                if test_run:
                    return None
                return (
                    f"DATABASE {self._where(settings.DATABASES)} does not exist on a running "
                    f"server: create it (createdb -h {db.get('HOST')} -U {db.get('USER')} "
                    f"{db.get('NAME')}) or fix DATABASE_URL."
                )
            hint = HOW_TO_START["embedded" if settings.DATABASE_IS_EMBEDDED else "postgresql"]
            return (
                f"DATABASE is unreachable: {connection.vendor} at {self._where(settings.DATABASES)}"
                f" ({first_line}). {hint}"
            )
        finally:
            connection.close()
        return None

    def _broker_problem(self) -> str | None:
        url = settings.CELERY_BROKER_URL
        if settings.BROKER_IS_EMBEDDED:
            return None
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 6379
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError as exc:
            return f"REDIS is unreachable at {self._redact(url)} ({exc}). {HOW_TO_START['redis']}"
        if not reply.startswith((b"+PONG", b"-NOAUTH")):
            return f"REDIS at {self._redact(url)} answered {reply!r} to PING: is it Redis?"
        return None
