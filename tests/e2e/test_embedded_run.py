"""`make run`'s own command in the embedded mode: PostgreSQL from the wheel, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.harness import ROOT, ProcessHandle, child_env, eventually

pytestmark = pytest.mark.e2e

SANDBOX_PORTS = ("SENDGRID", "FAILOVER_ESP", "TWILIO", "PUSH", "GRAPH", "X")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _embedded_env(var_dir: Path, web_port: int) -> dict[str, str]:
    env = child_env(
        {
            "CONTINUITY_VAR_DIR": str(var_dir),
            "CONTINUITY_WEB_PORT": str(web_port),
            "BEAT_HEARTBEAT_INTERVAL_S": "1",
            "DJANGO_SETTINGS_MODULE": "continuity.settings",
            **{f"SANDBOX_{name}_PORT": str(_free_port()) for name in SANDBOX_PORTS},
        }
    )
    # The embedded mode is what a newcomer gets: no database, broker or secret configured.
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DEBUG", "SECRET_KEY"):
        env.pop(name, None)
    return env


def _readyz(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return json.loads(response.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None


def _run_until_ready(var_dir: Path) -> tuple[ProcessHandle, int, dict[str, object]]:
    port = _free_port()
    run = ProcessHandle(
        [sys.executable, "manage.py", "run", "--no-demo"],
        env=_embedded_env(var_dir, port),
        name="manage.py run",
    )
    seen: dict[str, dict[str, object]] = {}

    def ready() -> bool:
        assert run.proc.poll() is None, run.output
        answer = _readyz(port)
        if answer and answer.get("status") == "ready":
            seen["answer"] = answer
            return True
        return False

    eventually(ready, timeout=180, interval=0.5)
    return run, port, seen["answer"]


def _ctrl_c(run: ProcessHandle) -> None:
    """What Ctrl-C in the terminal does: SIGINT to every process of the foreground group."""
    os.killpg(run.proc.pid, signal.SIGINT)
    assert run.proc.wait(timeout=120) is not None, run.output
    # Asked to stop, it stopped: exit 0, so `make run` ends without "make: *** Error 130", and no
    # process had to be killed.
    assert run.proc.returncode == 0, run.output
    assert "killing it" not in run.output, run.output


def test_make_run_serves_on_the_embedded_postgresql_and_ctrl_c_leaves_nothing_behind(
    embedded_var_dir: Path,
) -> None:
    var_dir = embedded_var_dir
    run, port, answer = _run_until_ready(var_dir)
    try:
        checks = answer["checks"]
        assert isinstance(checks, dict)
        assert checks["database"]["detail"].startswith("PostgreSQL 18"), checks
        assert checks["database"]["detail"].endswith("(embedded)"), checks
        assert checks["broker"]["detail"] == "continuityfs", checks
        assert checks["beat"]["ok"] is True, checks
        postmaster = int((var_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        children = psutil.Process(run.proc.pid).children(recursive=True)
        processes = [postmaster, *(child.pid for child in children)]
        assert len(children) >= 4, [c.cmdline() for c in children]  # the Procfile's four
    finally:
        _ctrl_c(run)

    def all_gone() -> bool:
        return not any(
            psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
            for pid in processes
        )

    eventually(all_gone, timeout=60)
    assert not (var_dir / "postgres" / "postmaster.pid").exists()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass

    # The next run reuses the data: the first run's beat heartbeats are still counted.
    shell = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from continuity.models import Heartbeat; "
            "print(Heartbeat.objects.get(name='beat').beats)",
        ],
        cwd=ROOT,
        env=_embedded_env(var_dir, port),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shell.returncode == 0, shell.stderr
    assert int(shell.stdout.split()[-1]) >= 1
