"""Real `celery worker` and `celery beat` processes against the test PostgreSQL and Redis."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import Client

from continuity.models import Heartbeat
from tests.harness import ROOT, ProcessHandle, child_env, eventually, start_beat, start_worker

pytestmark = pytest.mark.e2e


def test_beat_and_a_worker_make_the_service_ready(
    celery_worker_process: Callable[..., ProcessHandle], worker_env: dict[str, str]
) -> None:
    client = Client()
    assert client.get("/readyz").status_code == 503
    worker = celery_worker_process(queues=["control"])
    beat = start_beat(env={**worker_env, "BEAT_HEARTBEAT_INTERVAL_S": "1"})
    try:
        eventually(lambda: Heartbeat.objects.filter(name="beat").exists(), timeout=120)
        response = client.get("/readyz")
        assert response.status_code == 200, response.json()
        assert "Task continuity.heartbeat" in worker.output
    finally:
        beat.stop()


def test_a_worker_without_its_broker_logs_the_problem_and_keeps_retrying(
    worker_env: dict[str, str],
) -> None:
    env = {**worker_env, "REDIS_URL": "redis://127.0.0.1:1/0"}
    worker = start_worker(env=env, queues=["control"], wait_ready=False, name="brokerless")
    try:
        line = worker.wait_for("Cannot connect to redis://", timeout=120)
        assert "127.0.0.1:1" in line
        worker.wait_for("Trying again in", timeout=60)
        time.sleep(3)
        assert worker.alive(), worker.output
    finally:
        worker.stop()


def test_sigterm_stops_a_worker_cleanly(
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    worker = celery_worker_process(queues=["control"])
    worker.kill(signal.SIGTERM)
    assert worker.proc.wait(timeout=60) == 0, worker.output


def test_the_embedded_default_runs_worker_and_beat_on_sqlite_and_the_filesystem_broker(
    tmp_path: Path,
) -> None:
    embedded = {
        "DEBUG": "true",
        "CONTINUITY_VAR_DIR": str(tmp_path),
        "BEAT_HEARTBEAT_INTERVAL_S": "1",
        "DJANGO_SETTINGS_MODULE": "continuity.settings",
    }
    env = child_env(embedded)
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    worker = start_worker(env=env, queues=["control"], name="embedded-worker")
    beat = start_beat(env=env)
    try:

        def heartbeat_written() -> bool:
            with sqlite3.connect(tmp_path / "continuity.sqlite3") as db:
                rows = db.execute("SELECT count(*) FROM continuity_heartbeat").fetchone()
            return bool(rows and rows[0])

        eventually(heartbeat_written, timeout=40)
        assert "continuityfs://" in worker.output
        with sqlite3.connect(tmp_path / "continuity.sqlite3") as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        beat.stop()
        worker.stop()
