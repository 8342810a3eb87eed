from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from continuity.celery import app
from continuity.models import Heartbeat

pytestmark = pytest.mark.django_db


def test_liveness_answers_ok_without_touching_dependencies(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_is_503_until_beat_has_reported(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is True
    assert checks["broker"]["ok"] is True
    assert checks["beat"]["ok"] is False
    assert "no beat heartbeat" in checks["beat"]["detail"]


def test_readiness_is_200_with_a_fresh_beat_heartbeat(client: Client) -> None:
    Heartbeat.objects.create(name="beat", seen_at=timezone.now())
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "ready"


def test_readiness_reports_a_stale_beat_heartbeat(client: Client) -> None:
    Heartbeat.objects.create(name="beat", seen_at=timezone.now() - timedelta(minutes=5))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "ago" in response.json()["checks"]["beat"]["detail"]


def test_readiness_reports_an_unreachable_broker(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    Heartbeat.objects.create(name="beat", seen_at=timezone.now())
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    response = client.get("/readyz")
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker["ok"] is False
    assert broker["elapsed_ms"] < 10_000


def test_health_endpoints_refuse_writes(client: Client) -> None:
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db(transaction=True)
def test_heartbeats_from_concurrent_workers_are_each_counted_once() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from continuity.health import heartbeat_record

    def beat(_: int) -> None:
        try:
            heartbeat_record(name="racing")
        finally:
            connection.close()

    # Every thread's first beat may find no row: the insert and the count are one statement.
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(beat, range(40)))
    assert Heartbeat.objects.get(name="racing").beats == 40
