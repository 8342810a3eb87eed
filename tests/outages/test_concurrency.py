"""Concurrent webhooks for one network: exactly one window opens and one signal is sent."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.db import connection

from outages.models import OutageWindow
from outages.signals import outage_closed, outage_opened
from outages.windows import outage_signal_apply
from tests.outages.factories import auth_for, sample_bytes, source_create


@pytest.fixture
def signal_log() -> Any:
    log: list[tuple[str, int]] = []
    lock = threading.Lock()

    def opened(window: OutageWindow, **_: Any) -> None:
        with lock:
            log.append(("opened", window.pk))

    def closed(window: OutageWindow, **_: Any) -> None:
        with lock:
            log.append(("closed", window.pk))

    outage_opened.connect(opened, dispatch_uid="conc-open")
    outage_closed.connect(closed, dispatch_uid="conc-close")
    yield log
    outage_opened.disconnect(dispatch_uid="conc-open")
    outage_closed.disconnect(dispatch_uid="conc-close")


@pytest.mark.django_db(transaction=True)
def test_concurrent_firings_from_many_sources_open_exactly_one_window(signal_log: Any) -> None:
    barrier = threading.Barrier(12)

    def worker(i: int) -> str:
        try:
            barrier.wait()
            return outage_signal_apply(
                network="instagram",
                firing=True,
                source_kind="monitor",
                source_ref=f"source:s{i % 4}",
                incident_key=f"k{i % 3}",
            ).action
        finally:
            connection.close()

    with ThreadPoolExecutor(12) as pool:
        actions = list(pool.map(worker, range(12)))
    assert actions.count("opened") == 1
    assert OutageWindow.objects.filter(network="instagram").count() == 1
    assert signal_log == [("opened", OutageWindow.objects.get().pk)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_resolves_close_the_window_once(signal_log: Any) -> None:
    for i in range(8):
        outage_signal_apply(
            network="x", firing=True, source_kind="monitor", source_ref=f"s{i}", incident_key="k"
        )
    barrier = threading.Barrier(8)

    def worker(i: int) -> str:
        try:
            barrier.wait()
            return outage_signal_apply(
                network="x",
                firing=False,
                source_kind="monitor",
                source_ref=f"s{i}",
                incident_key="k",
            ).action
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        actions = list(pool.map(worker, range(8)))
    assert actions.count("closed") == 1
    assert [kind for kind, _ in signal_log] == ["opened", "closed"]


@pytest.mark.django_db(transaction=True)
def test_the_same_alert_sent_concurrently_to_a_live_server_opens_one_window(
    live_server: Any, signal_log: Any
) -> None:
    source = source_create(kind="alertmanager", default_network="messenger")
    body = sample_bytes("alertmanager", "firing")
    headers, _ = auth_for(kind="alertmanager", body=body)
    url = f"{live_server.url}/hooks/monitors/{source.slug}/"
    barrier = threading.Barrier(10)

    def post(_: int) -> int:
        barrier.wait()
        response = requests.post(
            url,
            data=body,
            headers={
                "Authorization": headers["HTTP_AUTHORIZATION"],
                "Content-Type": "application/json",
            },
            timeout=30,
        )
        return response.status_code

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(post, range(10)))
    assert codes == [200] * 10
    window = OutageWindow.objects.get(network="messenger")
    assert window.holds.count() == 2  # two alerts (fingerprints) in the group
    assert signal_log == [("opened", window.pk)]


@pytest.mark.django_db(transaction=True)
def test_one_group_listed_in_opposite_orders_by_two_senders_never_deadlocks() -> None:
    import json

    from outages.intake import webhook_intake

    source = source_create(kind="alertmanager", default_network="")

    def alert(network: str, key: str) -> dict[str, Any]:
        return {"status": "firing", "labels": {"network": network}, "fingerprint": key}

    def post(alerts: list[dict[str, Any]], barrier: threading.Barrier) -> int:
        body = json.dumps({"version": "4", "alerts": alerts}).encode()
        headers, _ = auth_for(kind="alertmanager", body=body)
        try:
            barrier.wait()
            return webhook_intake(
                slug=source.slug,
                method="POST",
                headers={"Authorization": headers["HTTP_AUTHORIZATION"]},
                query={},
                body=body,
                content_type="application/json",
            ).status_code
        finally:
            connection.close()

    for round_ in range(8):
        first, second = alert("x", f"a{round_}"), alert("tiktok", f"b{round_}")
        barrier = threading.Barrier(2)
        with ThreadPoolExecutor(2) as pool:
            codes = list(pool.map(post, [[first, second], [second, first]], [barrier, barrier]))
        assert codes == [200, 200]
    assert OutageWindow.objects.filter(state="open").count() == 2
