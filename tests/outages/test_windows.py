"""Window logic: holders, duplicates, early resolves, flap damping, operator control, signals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.test import override_settings
from django.utils import timezone

from outages.errors import UnknownNetwork, WindowNotOpen
from outages.models import OutageSignal, OutageWindow, WindowEvent
from outages.selectors import network_is_down, open_window_for, open_windows
from outages.signals import outage_closed, outage_opened
from outages.windows import outage_declare, outage_resolve, outage_signal_apply

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


@pytest.fixture
def sent() -> Iterator[list[tuple[str, int, bool]]]:
    calls: list[tuple[str, int, bool]] = []

    def on_open(window: OutageWindow, reopened: bool, **_: Any) -> None:
        calls.append(("opened", window.pk, reopened))

    def on_close(window: OutageWindow, reopened: bool, **_: Any) -> None:
        calls.append(("closed", window.pk, reopened))

    outage_opened.connect(on_open, dispatch_uid="test-open")
    outage_closed.connect(on_close, dispatch_uid="test-close")
    yield calls
    outage_opened.disconnect(dispatch_uid="test-open")
    outage_closed.disconnect(dispatch_uid="test-close")


def fire(key: str = "a", ref: str = "source:am", network: str = "facebook", **kw: Any) -> Any:
    return outage_signal_apply(
        network=network, firing=True, source_kind="monitor", source_ref=ref, incident_key=key, **kw
    )


def resolve(key: str = "a", ref: str = "source:am", network: str = "facebook", **kw: Any) -> Any:
    return outage_signal_apply(
        network=network, firing=False, source_kind="monitor", source_ref=ref, incident_key=key, **kw
    )


def test_a_firing_opens_a_window_and_the_signal_is_sent_only_on_commit(
    sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        outcome = fire()
        assert sent == []  # nothing before commit
    assert outcome.action == "opened"
    assert len(callbacks) == 1
    assert sent == [("opened", outcome.window_id, False)]
    assert network_is_down(network="facebook")
    assert open_window_for(network="facebook").pk == outcome.window_id  # type: ignore[union-attr]


def test_a_rolled_back_change_sends_nothing(
    sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        fire()
        raise RuntimeError("boom")
    assert sent == []
    assert not OutageWindow.objects.exists()


def test_repeated_firings_change_nothing(
    sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = fire(started_at=T0)
        repeats = [fire(started_at=T0) for _ in range(9)]
    assert {r.action for r in repeats} == {"duplicate"}
    assert {r.window_id for r in repeats} == {first.window_id}
    assert len(sent) == 1
    assert OutageSignal.objects.get().notifications == 10


def test_several_sources_hold_one_window_until_every_one_resolves(
    sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        opened = fire(ref="source:am")
        joined = fire(ref="source:kuma", key="monitor:1")
        assert joined.action == "joined"
        assert joined.window_id == opened.window_id
        assert resolve(ref="source:am").action == "released"
        assert network_is_down(network="facebook")
        assert resolve(ref="source:kuma", key="monitor:1").action == "closed"
    assert not network_is_down(network="facebook")
    assert sent == [("opened", opened.window_id, False), ("closed", opened.window_id, False)]
    kinds = list(WindowEvent.objects.values_list("kind", flat=True))
    assert kinds == ["opened", "released", "closed"]  # a join is recorded on the signal row


def test_a_resolve_that_arrives_before_its_firing_is_remembered() -> None:
    assert resolve(started_at=T0, ended_at=T0 + timedelta(minutes=5)).action == "remembered"
    late = fire(started_at=T0)
    assert late.action == "stale"
    assert not OutageWindow.objects.exists()
    # A later episode of the same alert is a new outage.
    assert fire(started_at=T0 + timedelta(hours=1)).action == "opened"


def test_an_undated_firing_right_after_its_early_resolve_is_absorbed() -> None:
    resolve(key="k")
    assert fire(key="k").action == "stale"
    assert not OutageWindow.objects.exists()


def test_a_late_resolve_of_an_earlier_episode_does_not_close_the_current_one() -> None:
    fire(started_at=T0 + timedelta(hours=1))
    assert resolve(started_at=T0, ended_at=T0 + timedelta(minutes=5)).action == "stale"
    assert network_is_down(network="facebook")


@override_settings(OUTAGES_FLAP_DAMPING_S=300)
def test_a_window_that_reopens_within_the_damping_interval_is_the_same_window(
    sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = fire(key="a")
        resolve(key="a")
        again = fire(key="b")
    assert again.action == "reopened"
    assert again.window_id == first.window_id
    window = OutageWindow.objects.get()
    assert (window.state, window.reopen_count, window.closed_at) == ("open", 1, None)
    assert sent[-1] == ("opened", first.window_id, True)


@override_settings(OUTAGES_FLAP_DAMPING_S=300)
def test_a_window_that_reopens_after_the_damping_interval_is_a_new_window() -> None:
    first = fire(key="a")
    resolve(key="a")
    OutageWindow.objects.filter(pk=first.window_id).update(
        closed_at=timezone.now() - timedelta(seconds=301)
    )
    assert fire(key="b").action == "opened"
    assert OutageWindow.objects.count() == 2


def test_an_operator_resolves_a_window_held_by_monitors(
    sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        fire(started_at=T0)
        window = outage_resolve(
            window=open_window_for(network="facebook"),  # type: ignore[arg-type]
            reason="confirmed fixed",
            actor="ops",
        )
    assert window.state == "resolved"
    assert window.closed_by == "manual:ops"
    assert sent[-1] == ("closed", window.pk, False)
    # The monitor repeating the same episode does not reopen it.
    assert fire(started_at=T0).action == "stale"
    with pytest.raises(WindowNotOpen):
        outage_resolve(window=window, reason="again", actor="ops")


def test_a_manual_declaration_opens_and_joins() -> None:
    window = outage_declare(network="tiktok", reason="TikTok API is down for everyone", actor="ops")
    assert (window.opened_by, window.reason) == ("manual", "TikTok API is down for everyone")
    assert outage_declare(network="tiktok", reason="again", actor="ops").pk == window.pk
    assert [w.pk for w in open_windows()] == [window.pk]


def test_self_detected_failures_open_windows_like_monitors() -> None:
    outcome = outage_signal_apply(
        network="x",
        firing=True,
        source_kind="self_detected",
        source_ref="publisher:x",
        incident_key="5xx-burst",
        summary="12 of 12 posts failed",
    )
    assert OutageWindow.objects.get(network="x").opened_by == "self_detected"
    assert outcome.action == "opened"


def test_an_unknown_network_is_refused() -> None:
    with pytest.raises(UnknownNetwork):
        fire(network="myspace")


@override_settings(OUTAGES_EXTRA_NETWORKS={"mastodon": "Mastodon"})
def test_extra_networks_come_from_settings() -> None:
    assert fire(network="mastodon").action == "opened"


def test_the_database_refuses_a_second_open_window_for_a_network() -> None:
    fire()
    with pytest.raises(IntegrityError), transaction.atomic():
        OutageWindow.objects.create(
            network="facebook", opened_at=timezone.now(), opened_by="manual"
        )
