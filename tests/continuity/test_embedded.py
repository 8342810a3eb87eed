"""The embedded PostgreSQL is shared by every process that uses it and stopped by the last one."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT, child_env

HOLD = (
    "import sys; from pathlib import Path; from continuity.embedded import embedded_server\n"
    "with embedded_server(Path(sys.argv[1])):\n"
    "    print('in', flush=True)\n"
    "    sys.stdin.readline()\n"
)


def _holder(var_dir: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(var_dir)],
        cwd=ROOT,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "in"
    return holder


def _release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.wait(timeout=120) == 0


def _server_running(var_dir: Path) -> bool:
    return (var_dir / "postgres" / "postmaster.pid").exists()


def test_the_server_outlives_the_process_that_started_it_while_another_uses_it(
    embedded_var_dir: Path,
) -> None:
    first = _holder(embedded_var_dir)  # e.g. `manage.py shell` opened before `make run`
    second = _holder(embedded_var_dir)
    _release(first)
    assert _server_running(embedded_var_dir)
    _release(second)
    assert not _server_running(embedded_var_dir)


def test_a_killed_user_does_not_keep_the_server_up_for_good(embedded_var_dir: Path) -> None:
    killed = _holder(embedded_var_dir)
    killed.kill()
    killed.wait(timeout=30)
    assert _server_running(embedded_var_dir)
    # The next command finds the server running, uses it and, being its last live user, stops it.
    _release(_holder(embedded_var_dir))
    assert not _server_running(embedded_var_dir)


def test_a_command_stopped_by_sigterm_still_stops_the_server_it_started(
    embedded_var_dir: Path,
) -> None:
    env = child_env({"CONTINUITY_VAR_DIR": str(embedded_var_dir)})
    for name in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "DEBUG"):
        env.pop(name, None)
    command = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "import time; print('in', flush=True); time.sleep(120)",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert command.stdout is not None
    assert "in" in [command.stdout.readline().strip() for _ in range(3)]
    assert _server_running(embedded_var_dir)
    command.terminate()  # what `kill` or a closing terminal (SIGHUP) does
    assert command.wait(timeout=120) == 128 + signal.SIGTERM
    assert not _server_running(embedded_var_dir)
