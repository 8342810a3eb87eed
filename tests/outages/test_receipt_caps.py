"""Refused monitor-webhook receipts stay small and few (outages/receipts.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from continuity.celery import QUEUE_CONTROL, _beat_schedule, app
from outages.models import MonitorSource, Verdict, WebhookReceipt
from outages.receipts import REFUSED_VERDICTS, receipts_refused_prune
from outages.tasks import prune_refused_receipts
from tests.outages.factories import hook_post, sample_bytes, source_create

pytestmark = pytest.mark.django_db

ACCEPTED = [Verdict.ACCEPTED, Verdict.IGNORED, Verdict.DUPLICATE, Verdict.UNMAPPED]


def test_a_request_for_an_unknown_slug_keeps_a_small_body(settings: Any) -> None:
    settings.OUTAGES_RECEIPT_REFUSED_BODY_MAX = 1000
    body = b'{"pad": "' + b"x" * 60_000 + b'"}'
    response = Client().post(
        "/hooks/monitors/made-up-slug/", data=body, content_type="application/json"
    )
    assert response.status_code == 404
    receipt = WebhookReceipt.objects.get()
    assert (receipt.verdict, len(receipt.body), receipt.body_truncated) == (
        Verdict.NOT_FOUND,
        1000,
        True,
    )
    assert receipt.size == len(body)  # what was sent is still on record


def test_a_request_with_bad_credentials_keeps_a_small_body(settings: Any) -> None:
    settings.OUTAGES_RECEIPT_REFUSED_BODY_MAX = 1000
    source = source_create(kind="uptime_kuma")
    body = b'{"pad": "' + b"x" * 5_000 + b'"}'
    response = Client().post(
        f"/hooks/monitors/{source.slug}/",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer wrong",
    )
    assert response.status_code == 401
    receipt = WebhookReceipt.objects.get()
    assert (receipt.verdict, len(receipt.body)) == (Verdict.UNAUTHORIZED, 1000)


def test_an_accepted_request_keeps_its_whole_body(settings: Any) -> None:
    settings.OUTAGES_RECEIPT_REFUSED_BODY_MAX = 10
    source = source_create(kind="uptime_kuma")
    body = sample_bytes("uptime_kuma", "down")
    assert hook_post(Client(), source, body).status_code == 200
    receipt = WebhookReceipt.objects.get()
    assert receipt.verdict not in REFUSED_VERDICTS
    assert (receipt.body, receipt.body_truncated) == (body.decode(), False)


def _receipt(verdict: str, *, source: MonitorSource | None = None, age_days: float = 0) -> int:
    row = WebhookReceipt.objects.create(
        slug=source.slug if source else "nobody", method="POST", verdict=verdict, source=source
    )
    if age_days:
        WebhookReceipt.objects.filter(pk=row.pk).update(
            created_at=timezone.now() - timedelta(days=age_days)
        )
    return row.pk


def test_pruning_caps_unknown_slugs_together_and_each_source_on_its_own(settings: Any) -> None:
    settings.OUTAGES_RECEIPT_REFUSED_KEEP_UNKNOWN = 2
    settings.OUTAGES_RECEIPT_REFUSED_KEEP_PER_SOURCE = 3
    busy, quiet = source_create(kind="uptime_kuma"), source_create(kind="uptime_kuma")
    accepted = [_receipt(v, source=busy) for v in ACCEPTED]
    unknown = [_receipt(Verdict.NOT_FOUND) for _ in range(5)]
    busy_refused = [_receipt(Verdict.UNAUTHORIZED, source=busy) for _ in range(6)]
    quiet_refused = [_receipt(Verdict.MALFORMED, source=quiet) for _ in range(2)]
    errors = [_receipt(Verdict.ERROR, source=busy) for _ in range(4)]
    assert receipts_refused_prune(batch=2, max_batches=100) == 3 + 3
    left = set(WebhookReceipt.objects.values_list("pk", flat=True))
    assert left == {*accepted, *unknown[-2:], *busy_refused[-3:], *quiet_refused, *errors}


def test_pruning_resumes_in_batches_and_never_deletes_an_accepted_receipt(settings: Any) -> None:
    settings.OUTAGES_RECEIPT_REFUSED_KEEP_UNKNOWN = 1
    accepted_old = [_receipt(v, age_days=20) for v in ACCEPTED]
    refused = [_receipt(Verdict.NOT_FOUND) for _ in range(6)]
    deleted = []
    while n := receipts_refused_prune(batch=2, max_batches=1):
        deleted.append(n)
    assert deleted == [2, 2, 1]
    left = set(WebhookReceipt.objects.values_list("pk", flat=True))
    assert left == {*accepted_old, refused[-1]}


def test_refused_receipts_past_their_retention_go(settings: Any) -> None:
    settings.OUTAGES_RECEIPT_REFUSED_RETENTION_DAYS = 7
    source = source_create(kind="uptime_kuma")
    old = [
        _receipt(Verdict.UNAUTHORIZED, source=source, age_days=8),
        _receipt(Verdict.NOT_FOUND, age_days=8),
    ]
    recent = [
        _receipt(Verdict.UNAUTHORIZED, source=source, age_days=6),
        _receipt(Verdict.NOT_FOUND),
    ]
    accepted_old = _receipt(Verdict.ACCEPTED, source=source, age_days=8)
    assert receipts_refused_prune() == 2
    left = set(WebhookReceipt.objects.values_list("pk", flat=True))
    assert left == {*recent, accepted_old}
    assert not left & set(old)


def test_the_prune_task_runs_it_and_beat_schedules_it_on_the_control_queue(
    settings: Any,
) -> None:
    settings.OUTAGES_RECEIPT_REFUSED_KEEP_UNKNOWN = 0
    _receipt(Verdict.NOT_FOUND)
    assert prune_refused_receipts() == 1
    entry = _beat_schedule()["outages.receipts.prune_refused"]
    assert entry["task"] == prune_refused_receipts.name
    assert entry["options"]["queue"] == QUEUE_CONTROL
    assert prune_refused_receipts.name in app.tasks
