"""Silent holders: a window no monitor has spoken for past its repeat limit is flagged, and closed
with that reason where its sources are set to, so a lost resolve cannot hold a network down."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from continuity.celery import app
from outages import windows
from outages.models import MonitorSource, OutageSignal, OutageWindow
from outages.selectors import silent_windows
from outages.signals import outage_closed
from outages.tasks import close_silent_windows
from outages.windows import (
    outage_declare,
    outage_signal_apply,
    silent_windows_close,
    windows_silent,
)
from tests.outages.factories import source_create

pytestmark = pytest.mark.django_db
HOUR = timedelta(hours=1)


def fire(source: MonitorSource, key: str = "k", network: str = "facebook") -> Any:
    return outage_signal_apply(
        network=network,
        firing=True,
        source_kind="monitor",
        source=source,
        source_ref=f"source:{source.slug}",
        incident_key=key,
    )


def quiet_since(ago: timedelta, **filters: Any) -> None:
    OutageSignal.objects.filter(**filters).update(last_seen_at=timezone.now() - ago)


def test_an_alertmanager_holder_silent_past_twice_its_default_repeat_interval_is_flagged() -> None:
    source = source_create(kind="alertmanager")  # repeat_interval default: 4 h
    window_id = fire(source).window_id
    quiet_since(7 * HOUR)
    assert silent_windows() == []
    quiet_since(9 * HOUR)
    [silent] = silent_windows()
    assert (silent.window_id, silent.network, silent.auto_close) == (window_id, "facebook", False)
    assert silent.message.startswith("no news from the monitor since ")
    assert silent.last_news_at == OutageSignal.objects.get().last_seen_at


def test_a_window_is_flagged_only_when_every_holder_is_silent() -> None:
    quiet, chatty = source_create(kind="alertmanager"), source_create(kind="alertmanager")
    fire(quiet)
    fire(chatty)
    quiet_since(9 * HOUR, source=quiet)
    assert silent_windows() == []
    quiet_since(9 * HOUR)
    assert len(silent_windows()) == 1


def test_senders_that_do_not_repeat_and_people_never_go_silent() -> None:
    pagerduty = source_create(kind="pagerduty")  # no repeats by default
    never = source_create(kind="alertmanager")
    MonitorSource.objects.filter(pk=never.pk).update(repeat_interval_s=0)
    fire(pagerduty, network="x")
    fire(never, network="instagram")
    outage_declare(network="whatsapp", reason="ops says so", actor="ana")
    quiet_since(1000 * HOUR)
    assert silent_windows() == []


def test_a_window_also_held_by_a_holder_that_never_goes_silent_is_not_flagged() -> None:
    closing = source_create(kind="alertmanager")
    MonitorSource.objects.filter(pk=closing.pk).update(silence_auto_close=True)
    fire(closing)
    fire(source_create(kind="pagerduty"), key="pd")  # PagerDuty does not repeat
    outage_declare(network="facebook", reason="ops says so", actor="ana")
    quiet_since(1000 * HOUR)
    assert silent_windows() == []
    assert silent_windows_close() == []


def test_a_source_declares_its_own_repeat_interval() -> None:
    kuma = source_create(kind="uptime_kuma")
    MonitorSource.objects.filter(pk=kuma.pk).update(repeat_interval_s=60)
    fire(kuma)
    quiet_since(timedelta(seconds=110))
    assert silent_windows() == []
    quiet_since(timedelta(seconds=130))
    assert len(silent_windows()) == 1


def test_the_silent_selector_is_one_query(django_assert_num_queries: Any) -> None:
    for index in range(3):
        fire(
            source_create(kind="alertmanager"),
            key=f"k{index}",
            network=["x", "tiktok", "threads"][index],
        )
    quiet_since(9 * HOUR)
    with django_assert_num_queries(1):
        assert len(windows_silent()) == 3


def test_silent_windows_of_auto_closing_sources_are_closed_with_the_reason(
    django_capture_on_commit_callbacks: Any,
) -> None:
    closing = source_create(kind="alertmanager")
    MonitorSource.objects.filter(pk=closing.pk).update(silence_auto_close=True)
    closing.refresh_from_db()
    keeping = source_create(kind="alertmanager")
    closed_window = fire(closing, network="facebook").window_id
    kept_window = fire(keeping, network="x").window_id
    quiet_since(9 * HOUR)
    sent: list[Any] = []

    def receiver(window: OutageWindow, **_: Any) -> None:
        sent.append(window.pk)

    outage_closed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert close_silent_windows() == [closed_window]
    finally:
        outage_closed.disconnect(receiver)
    assert sent == [closed_window]
    window = OutageWindow.objects.get(pk=closed_window)
    assert window.state == "resolved"
    assert window.closed_by == "silence"
    assert window.close_reason.startswith("no news from the monitor since ")
    assert OutageWindow.objects.get(pk=kept_window).state == "open"  # flagged, not closed
    assert [w.window_id for w in silent_windows()] == [kept_window]
    # The sender was only late: its next repeat makes the alert fire again (same episode start).
    assert fire(closing, network="facebook").action in ("opened", "reopened")


def test_a_window_held_by_an_auto_closing_and_a_keeping_source_stays_open() -> None:
    closing = source_create(kind="alertmanager")
    MonitorSource.objects.filter(pk=closing.pk).update(silence_auto_close=True)
    fire(closing)
    fire(source_create(kind="alertmanager"))
    quiet_since(9 * HOUR)
    assert silent_windows_close() == []
    assert OutageWindow.objects.get().state == "open"


def test_a_repeat_between_the_read_and_the_close_keeps_the_window_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closing = source_create(kind="alertmanager")
    MonitorSource.objects.filter(pk=closing.pk).update(silence_auto_close=True)
    fire(closing)
    quiet_since(9 * HOUR)
    stale = windows_silent()
    assert stale
    fire(closing)  # the repeat arrives after the task's first read
    real = windows.windows_silent

    def first_read_is_stale(**kwargs: Any) -> Any:
        return stale if kwargs.get("window_id") is None else real(**kwargs)

    monkeypatch.setattr(windows, "windows_silent", first_read_is_stale)
    assert silent_windows_close() == []
    assert OutageWindow.objects.get().state == "open"


def test_the_silence_task_is_scheduled_by_beat_on_the_control_queue() -> None:
    periodic = PeriodicTask.objects.get(name="outages.windows.silent_close")
    assert periodic.task == close_silent_windows.name
    assert periodic.queue == "control"
    assert periodic.interval is not None
    assert close_silent_windows.name in app.tasks


def test_the_admin_banner_says_since_when_a_silent_window_heard_nothing(admin_client: Any) -> None:
    source = source_create(kind="alertmanager")
    fire(source, network="instagram")
    page = admin_client.get("/admin/").content.decode()
    assert "outages-banner" in page and "no news from the monitor" not in page
    quiet_since(9 * HOUR)
    page = admin_client.get("/admin/").content.decode()
    assert "no news from the monitor since" in page


def test_an_operator_sets_the_repeat_interval_and_silence_close_in_the_source_form() -> None:
    from outages.forms import MonitorSourceForm

    assert {"repeat_interval_s", "silence_auto_close"} <= set(MonitorSourceForm().fields)
