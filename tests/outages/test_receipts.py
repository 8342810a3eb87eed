"""Receipt retention and its periodic task."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from continuity.celery import app
from outages.models import WebhookReceipt
from outages.receipts import receipts_prune
from outages.tasks import prune_receipts

pytestmark = pytest.mark.django_db


@override_settings(OUTAGES_RECEIPT_RETENTION_DAYS=7)
def test_receipts_older_than_the_retention_are_pruned_and_newer_kept() -> None:
    old = WebhookReceipt.objects.create(slug="a", method="POST")
    new = WebhookReceipt.objects.create(slug="b", method="POST")
    WebhookReceipt.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=8))
    assert receipts_prune(batch=1) == 1
    assert list(WebhookReceipt.objects.values_list("pk", flat=True)) == [new.pk]


def test_the_prune_task_is_scheduled_by_beat_on_the_control_queue() -> None:
    periodic = PeriodicTask.objects.get(name="outages.receipts.prune")
    assert periodic.task == prune_receipts.name == "outages.receipts.prune"
    assert periodic.queue == "control"
    assert periodic.interval is not None
    assert prune_receipts.name in app.tasks
