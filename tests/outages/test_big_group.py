"""Bounded work per request: a big Alertmanager group is applied set-based, in batches that each
hold the network's lock briefly, with the same outcomes as applying its alerts one by one."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from outages import intake, windows
from outages.models import OutageSignal, OutageWindow, WindowEvent
from outages.windows import SignalInput, outage_signal_apply, outage_signals_apply
from tests.outages.factories import hook_post, source_create

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
HOUR_ = timedelta(hours=1)


def group(count: int, *, status: str = "firing", prefix: str = "fp", service: str = "x") -> bytes:
    alerts = [
        {
            "status": status,
            "labels": {"alertname": "PublishFailing", "service": service, "pod": f"p{i}"},
            "annotations": {},
            "startsAt": "2026-11-24T08:00:00Z",
            "endsAt": "2026-11-24T09:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": f"{prefix}{i:05d}",
        }
        for i in range(count)
    ]
    return json.dumps({"version": "4", "status": status, "alerts": alerts}).encode()


@pytest.mark.django_db
def test_a_group_of_4000_new_alerts_costs_a_bounded_number_of_queries(
    client: Client, django_assert_max_num_queries: Any
) -> None:
    source = source_create(kind="alertmanager", default_network="x")
    with django_assert_max_num_queries(60):
        response = hook_post(client, source, group(4000))
    assert response.status_code == 200
    assert {s["outcome"] for s in response.json()["signals"]} == {"opened", "joined"}
    window = OutageWindow.objects.get()
    assert OutageSignal.objects.filter(window=window, state="firing").count() == 4000
    # Its repeat (repeat_interval) is 4,000 duplicates, as cheaply.
    with django_assert_max_num_queries(60):
        again = hook_post(client, source, group(4000))
    assert {s["outcome"] for s in again.json()["signals"]} == {"duplicate"}
    # And its resolve closes the window, as cheaply.
    with django_assert_max_num_queries(60):
        resolved = hook_post(client, source, group(4000, status="resolved"))
    outcomes = [s["outcome"] for s in resolved.json()["signals"]]
    assert outcomes.count("closed") == 1 and outcomes.count("released") == 3999
    window.refresh_from_db()
    assert window.state == "resolved"
    events = list(window.events.values_list("kind", flat=True))
    # One "released" per batch that left holders, not one per alert.
    assert events[0] == "opened" and events[-1] == "closed"
    assert len(events) <= 4000 // intake.APPLY_BATCH + 2


@pytest.mark.django_db(transaction=True)
def test_a_big_group_holds_the_network_lock_one_batch_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(intake, "APPLY_BATCH", 1000)
    transactions: set[int] = set()
    real_lock = windows._network_lock

    def spy(network: str) -> int | None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT txid_current()")
            transactions.add(int(cursor.fetchone()[0]))
        return real_lock(network)

    monkeypatch.setattr(windows, "_network_lock", spy)
    source = source_create(kind="alertmanager", default_network="x")
    response = hook_post(Client(), source, group(4000))
    assert response.status_code == 200
    assert len(transactions) == 4
    assert OutageSignal.objects.filter(state="firing").count() == 4000
    assert OutageWindow.objects.filter(state="open").count() == 1


@pytest.mark.django_db
def test_a_group_mixing_repeats_new_alerts_resolves_and_a_key_twice_is_applied_in_full(
    client: Client,
) -> None:
    source = source_create(kind="alertmanager", default_network="x")
    hook_post(client, source, group(10))
    alerts = json.loads(group(10))["alerts"]
    for alert in alerts[:3]:
        alert.update(status="resolved", endsAt="2026-11-24T09:00:00Z")
    alerts.append(dict(alerts[5]))  # the same alert twice in one group
    alerts.append({**alerts[6], "fingerprint": "new-one"})
    body = json.dumps({"version": "4", "status": "firing", "alerts": alerts}).encode()
    outcomes = {
        (s["incident_key"], s["outcome"]) for s in hook_post(client, source, body).json()["signals"]
    }
    assert ("fp00000", "released") in outcomes
    assert ("new-one", "joined") in outcomes
    assert ("fp00005", "duplicate") in outcomes
    assert OutageSignal.objects.filter(state="firing").count() == 8
    assert OutageWindow.objects.get().state == "open"


@pytest.mark.django_db
def test_a_batch_resolving_the_last_holder_while_a_known_alert_fires_again_never_flaps() -> None:
    def apply(*signals: SignalInput) -> list[str]:
        outcomes = outage_signals_apply(
            network="x", signals=signals, source_kind="monitor", source_ref="source:b"
        )
        return [o.action for o in outcomes]

    apply(SignalInput("a", firing=True, started_at=T0), SignalInput("c", firing=True))
    apply(SignalInput("a", firing=False, ended_at=T0 + HOUR_))
    # "a" fires again (a new episode of a known key) while "c", the last holder, resolves.
    assert apply(
        SignalInput("a", firing=True, started_at=T0 + 2 * HOUR_),
        SignalInput("c", firing=False),
    ) == ["joined", "released"]
    window = OutageWindow.objects.get()
    assert (window.state, window.reopen_count) == ("open", 0)
    assert "closed" not in window.events.values_list("kind", flat=True)


# --- the set-based path and the one-by-one path agree ------------------------------------------


def _scenario(seed: int) -> list[list[SignalInput]]:
    rng = random.Random(seed)
    batches = []
    for _ in range(6):
        batch = []
        for _ in range(rng.randint(2, 8)):
            key = f"k{rng.randint(0, 6)}"
            firing = rng.random() < 0.6
            start = T0 + timedelta(minutes=rng.randint(0, 90))
            end = start + timedelta(minutes=rng.randint(-30, 60))
            batch.append(
                SignalInput(
                    incident_key=key,
                    firing=firing,
                    started_at=start if rng.random() < 0.8 else None,
                    ended_at=None if firing else (end if rng.random() < 0.8 else None),
                    summary=key,
                    remember=rng.random() < 0.8,
                )
            )
        batches.append(batch)
    return batches


def _state() -> list[tuple[Any, ...]]:
    signals = OutageSignal.objects.order_by("incident_key").values_list(
        "incident_key", "state", "started_at", "window__state"
    )
    # A start the sender did not give is the arrival time: the same in both runs only as "now".
    return [
        (key, state, start if start and start < T0 + timedelta(days=1) else "now", window)
        for key, state, start, window in signals
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(12))
def test_the_set_based_path_ends_where_applying_one_by_one_ends(seed: int) -> None:
    scenario = _scenario(seed)
    for batch in scenario:
        outage_signals_apply(
            network="x", signals=batch, source_kind="monitor", source_ref="source:bulk"
        )
    bulk = _state()
    OutageSignal.objects.all().delete()
    WindowEvent.objects.all().delete()
    OutageWindow.objects.all().delete()
    for batch in scenario:
        # The one-by-one order intake used before: sorted by key.
        for signal in sorted(batch, key=lambda s: s.incident_key):
            outage_signal_apply(
                network="x",
                firing=signal.firing,
                source_kind="monitor",
                source_ref="source:bulk",
                incident_key=signal.incident_key,
                started_at=signal.started_at,
                ended_at=signal.ended_at,
                summary=signal.summary,
                remember=signal.remember,
            )
    one_by_one = _state()
    # The signals end in the same states. Windows may differ in how a batch that both resolves
    # the last holder and adds a new one is split (set-based: no close-and-reopen), not in state.
    assert bulk == one_by_one


@pytest.mark.django_db
def test_one_alert_repeated_thousands_of_times_in_a_group_is_applied_once(
    client: Client, django_assert_max_num_queries: Any
) -> None:
    source = source_create(kind="alertmanager", default_network="x")
    alerts = json.loads(group(1))["alerts"] * 3000
    body = json.dumps({"version": "4", "status": "firing", "alerts": alerts}).encode()
    with django_assert_max_num_queries(30):
        response = hook_post(client, source, body)
    assert response.status_code == 200
    outcomes = [s["outcome"] for s in response.json()["signals"]]
    assert outcomes.count("opened") == 1 and outcomes.count("duplicate") == 2999
    assert OutageSignal.objects.get().notifications == 1
