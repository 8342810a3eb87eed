"""Test harness shared by every app's tests: real Celery worker processes and service checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from benchmarks._common import popen_tied, redis_keys_delete

__all__ = ["redis_keys_delete"]  # shared with the benchmarks; tests import it from here

ROOT = Path(__file__).resolve().parent.parent
CELERY = str(Path(sys.executable).with_name("celery"))


class ProcessHandle:
    """A child process whose output is captured line by line, for waiting on log lines."""

    def __init__(self, argv: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self._cond = threading.Condition()
        # Its own session, so `kill` reaches a prefork worker's pool too, and tied to this
        # process, so it dies even when the test run is SIGKILLed or times out.
        self.proc = popen_tied(
            argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, name=f"{name}-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, needle: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None:
                    raise AssertionError(
                        f"{self.name}: {needle!r} not seen within {timeout}s "
                        f"(exit code {self.proc.poll()}). Output:\n" + "\n".join(self.lines[-60:])
                    )
                self._cond.wait(min(remaining, 0.2))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group: a prefork worker's children must die with it."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return

    def stop(self, timeout: float = 20.0) -> None:
        self.kill(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.proc.wait(timeout=5)


def child_env(overrides: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "continuity.settings_test")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides or {})
    return env


WORKER_APPLICATION_NAME = "continuity-test-worker"


def start_worker(
    *,
    env: dict[str, str],
    queues: Iterable[str],
    concurrency: int = 2,
    pool: str = "prefork",
    name: str = "worker",
    extra_args: list[str] | None = None,
    wait_ready: bool = True,
) -> ProcessHandle:
    argv = [
        CELERY,
        "-A",
        "continuity",
        "worker",
        "--queues",
        ",".join(queues),
        "--concurrency",
        str(concurrency),
        "--pool",
        pool,
        "--loglevel",
        "INFO",
        "--hostname",
        f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h",
        "--without-gossip",
        "--without-mingle",
        *(extra_args or []),
    ]
    # libpq names the worker's database sessions: a chaos test cuts exactly these, never the
    # test process's own (its live server's, say).
    handle = ProcessHandle(argv, {**env, "PGAPPNAME": WORKER_APPLICATION_NAME}, name)
    if wait_ready:
        handle.wait_for(" ready.", timeout=180)
    return handle


def start_beat(*, env: dict[str, str]) -> ProcessHandle:
    # The database scheduler keeps its state in the database, so no schedule file is written.
    argv = [CELERY, "-A", "continuity", "beat", "--loglevel", "INFO", "--pidfile="]
    return ProcessHandle(argv, env, "beat")


def eventually(check: Callable[[], bool], *, timeout: float = 30.0, interval: float = 0.1) -> None:
    """Wait for a cross-process effect: ``check()`` becomes true, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def database_connections_dead_closed() -> int:
    """Close this thread's database connections that the server has closed (outside a
    transaction); the next query opens a new one. Returns how many were closed."""
    from django.db import connections

    closed = 0
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.in_atomic_block and not conn.is_usable():
            conn.close()
            closed += 1
    return closed
