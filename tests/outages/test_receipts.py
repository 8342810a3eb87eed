"""Receipt retention: monitor receipts and replay ids expire with the retention run (#19), which
replaced the outages app's own pruning task."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from continuity.celery import _beat_schedule
from continuity.retention import retention_run
from continuity.retention_rules import MONITOR_RECEIPTS, MONITOR_REPLAY_IDS
from outages.models import DeliverySeen, MonitorSource, WebhookReceipt

pytestmark = pytest.mark.django_db


@override_settings(RETENTION_DAYS={MONITOR_RECEIPTS: 7, MONITOR_REPLAY_IDS: 7})
def test_receipts_and_replay_ids_older_than_the_retention_go_and_newer_stay() -> None:
    old = WebhookReceipt.objects.create(slug="a", method="POST")
    new = WebhookReceipt.objects.create(slug="b", method="POST")
    WebhookReceipt.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=8))
    source = MonitorSource.objects.create(slug="am", kind="alertmanager", name="am")
    DeliverySeen.objects.create(source=source, delivery_id="old")
    DeliverySeen.objects.create(source=source, delivery_id="new")
    DeliverySeen.objects.filter(delivery_id="old").update(
        created_at=timezone.now() - timedelta(days=8)
    )

    report = retention_run(kinds=[MONITOR_RECEIPTS, MONITOR_REPLAY_IDS], batch=1)

    assert report.deleted == {MONITOR_RECEIPTS: 1, MONITOR_REPLAY_IDS: 1}
    assert list(WebhookReceipt.objects.values_list("pk", flat=True)) == [new.pk]
    assert list(DeliverySeen.objects.values_list("delivery_id", flat=True)) == ["new"]


def test_the_old_pruning_task_is_gone_and_the_retention_run_is_scheduled() -> None:
    assert not PeriodicTask.objects.filter(name="outages.receipts.prune").exists()
    entry = _beat_schedule()["continuity.retention.run"]
    assert entry["task"] == "continuity.retention.run"
    assert entry["options"]["queue"] == "control"
