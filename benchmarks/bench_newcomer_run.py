"""newcomer.run_cold_s and newcomer.run_warm_s: `make run` until the admin login and /readyz answer.

What a newcomer waits for: a fresh clone's first `make run` (a new .venv from the package cache,
the embedded PostgreSQL initialised, migrations, the demo seed), then, after Ctrl-C, a second
`make run` on the same clone (the server and its data reused). Each is timed from the command's
start until GET /admin/login/ and GET /readyz both answer 200, then stopped as Ctrl-C does (SIGINT
to the process group) and checked to leave no process behind.

The clone is of the committed HEAD. Web and sandbox listen on free ports, so a demo already running
on this machine is left alone. Only at full scale: the small-scale smoke run skips it (the
end-to-end test tests/e2e/test_embedded_run.py covers the same path).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from benchmarks._common import emit, popen_tied, process_group_kill

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_PORTS = ("SENDGRID", "FAILOVER_ESP", "TWILIO", "PUSH", "GRAPH", "X")
READY_TIMEOUT_S = 900


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our loopback URL
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def _newcomer_env(web_port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "CONTINUITY_WEB_PORT": str(web_port),
        "DELIVERY_PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
        "CONTACTS_PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
        **{f"SANDBOX_{name}_PORT": str(_free_port()) for name in SANDBOX_PORTS},
    }
    # A newcomer has nothing configured: `make bench` runs with the test settings and services.
    for name in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    for name in ("DEBUG", "SECRET_KEY", "BENCH_SCALE", "SANDBOX_SENDGRID_DEMO_EVENTS"):
        env.pop(name, None)
    return env


def _make_run_until_ready(clone: Path) -> float:
    port = _free_port()
    log = (clone.parent / f"make-run-{port}.log").open("w")
    started = time.perf_counter()
    run = popen_tied(
        ["make", "run"], cwd=clone, env=_newcomer_env(port), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if run.poll() is not None:
                raise SystemExit(f"make run exited {run.returncode}: see {log.name}")
            login = _status(f"http://127.0.0.1:{port}/admin/login/")
            if login == 200 and _status(f"http://127.0.0.1:{port}/readyz") == 200:
                return time.perf_counter() - started
            time.sleep(0.2)
        raise SystemExit(f"make run not ready within {READY_TIMEOUT_S} s: see {log.name}")
    finally:
        group = [run.pid, *(p.pid for p in psutil.Process(run.pid).children(recursive=True))]
        os.killpg(run.pid, signal.SIGINT)
        try:
            run.wait(timeout=120)
        finally:
            process_group_kill(run)
            log.close()
        _wait_gone(group)


def _wait_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and _not_zombie(p)]
        if not alive:
            return
        time.sleep(0.2)
    raise SystemExit(f"processes left behind after Ctrl-C: {alive}")


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def main() -> None:
    parent = Path(tempfile.mkdtemp(prefix="continuity-newcomer-"))
    clone = parent / "continuity"
    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        cold = _make_run_until_ready(clone)
        warm = _make_run_until_ready(clone)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    emit(
        "newcomer.run_cold_s",
        cold,
        "s",
        target="report (fresh clone, package cache warm)",
        includes="new .venv from the pip cache, initdb, migrate, demo seed, the four processes",
    )
    emit("newcomer.run_warm_s", warm, "s", target="<= 15 s (second make run on the same clone)")


if __name__ == "__main__":
    main()
