"""`make run`: prepare the database and the demo, then run web, worker, beat and the sandbox.

The steps run in this one process (one Django start-up instead of four), and the process stays up
while the Procfile's processes run: in the embedded mode `manage.py` started the PostgreSQL server
for this command, so it must outlive every process that uses it and stop it only once they are
gone (continuity/embedded.py).

Ctrl-C stops them in order rather than all at once: first what makes work (web, beat), then the
worker, given time to finish the tasks it holds (Celery's warm shutdown), then the provider
fakes it may still be talking to. Each process runs in its own session, so the terminal's SIGINT
reaches only this command, which then sends each one SIGTERM in turn. An interrupted run exits 0:
stopping was asked for, and `make` then has no error to print.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

# Web, worker, beat and sandbox: each is a line in the Procfile, so production's process manager
# and this command read the same list.
PROCFILE = Path(settings.BASE_DIR) / "Procfile"
# Producers first, the worker next, what the worker calls last. Unlisted processes stop first.
STOP_ORDER = ("web", "beat", "worker", "sandbox")
# How long each may take to stop before it is killed: the worker finishes the chunk it holds.
STOP_GRACE_S = {"worker": 90.0}
DEFAULT_STOP_GRACE_S = 15.0
_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


@dataclass
class Running:
    name: str
    process: subprocess.Popen[bytes]


def procfile_read(path: Path) -> list[tuple[str, str]]:
    """(name, command) per Procfile line; comments and blank lines skipped."""
    entries = []
    for line in path.read_text().splitlines():
        match = _LINE.match(line.strip())
        if match and not line.lstrip().startswith("#"):
            entries.append((match.group(1), match.group(2)))
    return entries


def _pipe(name: str, stream: IO[bytes], out: IO[str], width: int, lock: threading.Lock) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        with lock:
            out.write(f"{time.strftime('%H:%M:%S')} {name.ljust(width)} | {line}\n")
            out.flush()


def stop_order(names: Sequence[str]) -> list[str]:
    listed = [n for n in STOP_ORDER if n in names]
    return [n for n in names if n not in STOP_ORDER] + listed


def procfile_supervise(*, procfile: Path, cwd: Path, out: IO[str] = sys.stdout) -> int:
    """Run every Procfile process until a signal or until one of them ends; then stop the rest
    in STOP_ORDER. Returns 0 when a signal asked for the stop, else the code of the one that
    ended first (a crash is not hidden)."""
    entries = procfile_read(procfile)
    width = max((len(n) for n, _ in entries), default=1)
    lock = threading.Lock()
    stopping = threading.Event()
    hurry = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            hurry.set()  # a second Ctrl-C: whatever is still stopping is killed now
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    running: dict[str, Running] = {}
    pipes = []
    for name, command in entries:
        process = subprocess.Popen(  # noqa: S603 - our own Procfile's lines  # nosec B603
            ["/bin/sh", "-c", f"exec {command}"],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        running[name] = Running(name, process)
        assert process.stdout is not None  # noqa: S101 - stdout=PIPE above  # nosec B101
        pipe = threading.Thread(
            target=_pipe, args=(name, process.stdout, out, width, lock), daemon=True
        )
        pipe.start()
        pipes.append(pipe)
    first_exit: int | None = None
    while not stopping.is_set():
        ended = next((r for r in running.values() if r.process.poll() is not None), None)
        if ended is not None:
            first_exit = ended.process.returncode
            _say(out, lock, f"{ended.name} ended (exit {first_exit}): stopping the others")
            break
        stopping.wait(0.2)
    else:
        _say(out, lock, "stopping: " + ", ".join(stop_order(list(running))))
    for name in stop_order(list(running)):
        _stop(running[name], out=out, lock=lock, hurry=hurry)
    for pipe in pipes:
        pipe.join(timeout=2)
    return 0 if first_exit is None else (first_exit or 1)


def _stop(running: Running, *, out: IO[str], lock: threading.Lock, hurry: threading.Event) -> None:
    process = running.process
    if process.poll() is not None:
        return
    # The main process only: Celery's warm shutdown needs its pool children alive to finish
    # their tasks; it stops them itself.
    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S.get(running.name, DEFAULT_STOP_GRACE_S)
    while process.poll() is None and time.monotonic() < deadline and not hurry.is_set():
        time.sleep(0.1)
    if process.poll() is None:
        _say(out, lock, f"{running.name} did not stop in time: killing it")
        _signal_group(process, signal.SIGKILL)
        process.wait()
    else:
        _signal_group(process, signal.SIGTERM)  # anything it left behind in its session
    _say(out, lock, f"{running.name} stopped")


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def _say(out: IO[str], lock: threading.Lock, text: str) -> None:
    with lock:
        out.write(f"{time.strftime('%H:%M:%S')} run | {text}\n")
        out.flush()


class Command(BaseCommand):
    help = "Migrate, seed the demo and run web + worker + beat + sandbox until Ctrl-C."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--no-demo", action="store_true", help="Skip the demo admin and the demo data."
        )

    def handle(self, *args: Any, no_demo: bool = False, **options: Any) -> None:
        call_command("preflight")
        call_command("migrate", interactive=False, verbosity=0)
        # The demo lives in the sandbox app, installed with the sandbox on (DEBUG, the default
        # of the embedded mode); this command never imports it.
        if not no_demo and apps.is_installed("sandbox"):
            call_command("ensure_demo_admin")
            call_command("seed_demo")
        sys.exit(procfile_supervise(procfile=PROCFILE, cwd=Path(settings.BASE_DIR)))
