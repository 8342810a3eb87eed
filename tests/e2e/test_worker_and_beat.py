"""Real `celery worker` and `celery beat` processes against the test PostgreSQL and Redis."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest
from django.test import Client

from continuity.models import Heartbeat
from tests.harness import ProcessHandle, eventually, start_beat, start_worker

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
