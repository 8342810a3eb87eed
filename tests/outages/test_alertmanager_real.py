"""A real Prometheus Alertmanager fires, repeats and resolves against the live app.

Alertmanager (tests/outages/alertmanager_real.py) runs with a webhook receiver pointed at a
monitor source of the live test server, bearer auth and a repeat_interval of 3 s. Alerts go in
through its API v2 as Prometheus posts them; the assertions read the windows, signals and
receipts the app wrote. Skipped, saying why, where the package is missing and cannot be
installed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from outages.credentials import source_cache_clear
from outages.models import OutageSignal, OutageWindow, Verdict, WebhookReceipt
from outages.signals import outage_closed, outage_opened
from tests.outages.alertmanager_real import (
    RealAlertmanager,
    alert,
    alertmanager_binary,
    iso,
    wait_for,
)
from tests.outages.factories import SECRET, source_create

SLUG = "alertmanager-real"
RULES = [
    {"match": "labels.service", "equals": name, "network": name}
    for name in ("facebook", "instagram", "x")
]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def binary() -> str:
    path, why = alertmanager_binary()
    if path is None:
        pytest.skip(why)
    return path


@pytest.fixture
def transitions() -> Iterator[list[tuple[str, str]]]:
    """(signal, network) for every outage_opened / outage_closed sent: what campaigns fan out on."""
    sent: list[tuple[str, str]] = []

    def opened(window: OutageWindow, **_: Any) -> None:
        sent.append(("opened", window.network))

    def closed(window: OutageWindow, **_: Any) -> None:
        sent.append(("closed", window.network))

    outage_opened.connect(opened, weak=False)
    outage_closed.connect(closed, weak=False)
    yield sent
    outage_opened.disconnect(opened)
    outage_closed.disconnect(closed)


@pytest.fixture
def manager(binary: str, live_server: Any) -> Iterator[RealAlertmanager]:
    source_create(kind="alertmanager", slug=SLUG, default_network="", mapping_rules=RULES)
    source_cache_clear()
    with RealAlertmanager(
        binary=binary,
        webhook_url=f"{live_server.url}/hooks/monitors/{SLUG}/",
        bearer=SECRET,
        repeat_interval_s=3,
    ) as running:
        yield running


def receipts() -> list[WebhookReceipt]:
    return list(WebhookReceipt.objects.filter(slug=SLUG).order_by("pk"))


def outcomes(service_network: str) -> list[str]:
    return [
        entry["outcome"]
        for receipt in receipts()
        for entry in receipt.signals
        if entry["network"] == service_network
    ]


def test_fire_repeat_merge_an_earlier_start_and_resolve_one_window(
    manager: RealAlertmanager, transitions: list[tuple[str, str]]
) -> None:
    now = timezone.now()
    started = now - timedelta(minutes=1)
    manager.post(alert(service="facebook", alertname="FacebookDown", starts=started))
    window = wait_for(
        lambda: OutageWindow.objects.filter(network="facebook", state="open").first(),
        what="Alertmanager's first notification to open the facebook window",
    )
    # repeat_interval: the same group again, each a duplicate of the one signal.
    wait_for(lambda: len(outcomes("facebook")) >= 3, what="two repeats", timeout=40)
    # Re-posted with an earlier start: Alertmanager merges the copies and keeps the earliest.
    earlier = now - timedelta(minutes=10)
    manager.post(alert(service="facebook", alertname="FacebookDown", starts=earlier))
    seen = len(outcomes("facebook"))
    wait_for(
        lambda: len(outcomes("facebook")) > seen + 1, what="repeats after the merge", timeout=40
    )
    assert OutageWindow.objects.filter(network="facebook").count() == 1
    # Resolve: Alertmanager sends it once, carrying the merged (earlier) start.
    manager.post(
        alert(service="facebook", alertname="FacebookDown", starts=earlier, ends=timezone.now())
    )
    wait_for(
        lambda: OutageWindow.objects.get(pk=window.pk).state == "resolved",
        what="the resolve to close the window",
    )
    # The resolve did carry the merged start, earlier than the firing that opened the window.
    resolve_body = json.loads(receipts()[-1].body)
    assert resolve_body["alerts"][0]["status"] == "resolved"
    assert resolve_body["alerts"][0]["startsAt"].startswith(iso(earlier)[:19])
    first_body = json.loads(receipts()[0].body)
    assert first_body["alerts"][0]["startsAt"].startswith(iso(started)[:19])
    history = outcomes("facebook")
    assert history[0] == "opened"
    assert set(history[1:-1]) == {"duplicate"}
    assert history[-1] == "closed"
    assert all(r.status_code == 200 and r.verdict == Verdict.ACCEPTED for r in receipts())
    assert all(r.headers.get("Authorization") == "Bearer [redacted]" for r in receipts())
    signal = OutageSignal.objects.get(network="facebook")
    assert signal.state == "resolved"
    assert signal.notifications == len(history)
    assert OutageWindow.objects.count() == 1
    # One reroute and one fail-back, however many repeats.
    assert transitions == [("opened", "facebook"), ("closed", "facebook")]


def test_two_services_firing_together_get_two_windows_and_both_close_on_resolve(
    manager: RealAlertmanager, transitions: list[tuple[str, str]]
) -> None:
    now = timezone.now()
    started = now - timedelta(seconds=30)
    manager.post(
        alert(service="instagram", alertname="MetaDown", starts=started),
        alert(service="x", alertname="MetaDown", starts=started),
    )
    wait_for(
        lambda: OutageWindow.objects.filter(state="open").count() == 2,
        what="both windows to open",
    )
    # Usually one group in one request; on a loaded machine Alertmanager may flush the group
    # before it has taken in the second alert and send it in a request of its own.
    assert {e["network"] for r in receipts() for e in r.signals} == {"instagram", "x"}
    wait_for(lambda: len(receipts()) >= 2, what="a repeat", timeout=40)
    ended = timezone.now()
    manager.post(
        alert(service="instagram", alertname="MetaDown", starts=started, ends=ended),
        alert(service="x", alertname="MetaDown", starts=started, ends=ended),
    )
    wait_for(
        lambda: not OutageWindow.objects.filter(state="open").exists(),
        what="both windows to close",
    )
    assert OutageWindow.objects.count() == 2
    assert outcomes("instagram")[-1] == outcomes("x")[-1] == "closed"
    assert not WebhookReceipt.objects.filter(status_code__gte=300).exists()
    assert sorted(transitions) == [
        ("closed", "instagram"),
        ("closed", "x"),
        ("opened", "instagram"),
        ("opened", "x"),
    ]


def test_without_the_package_or_leave_to_install_it_the_tests_skip_saying_how(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests import system_packages

    monkeypatch.setattr(system_packages.shutil, "which", lambda _name: None)
    monkeypatch.setenv("CONTINUITY_TEST_APT", "0")
    path, why = alertmanager_binary()
    assert path is None
    assert "apt-get install -y prometheus-alertmanager" in why
