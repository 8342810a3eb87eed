"""Refused provider-webhook receipts stay small and few (delivery/receipt_caps.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone
from twilio.request_validator import RequestValidator

from continuity.celery import QUEUE_CONTROL, _beat_schedule, app
from delivery.models import ProviderReceipt, ReceiptVerdict
from delivery.receipt_caps import receipts_refused_prune
from delivery.tasks import prune_refused_receipts

pytestmark = pytest.mark.django_db

PUBLIC = "https://continuity.example.com"
TOKEN = "caps-twilio-token"  # nosec B105 - a test-only auth token
SID = "AC" + "7" * 32
STATUS_URL = "/webhooks/twilio/status/"
VERIFIED = [
    ReceiptVerdict.APPLIED,
    ReceiptVerdict.UNMATCHED,
    ReceiptVerdict.IGNORED,
    ReceiptVerdict.RECEIVED,
]


@pytest.fixture(autouse=True)
def twilio_settings(settings: Any) -> None:
    settings.DELIVERY_PUBLIC_BASE_URL = PUBLIC
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.TWILIO_ACCOUNT_SID = SID


def _status(params: dict[str, str], *, signed: bool) -> Any:
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + STATUS_URL, params)
    return Client().post(
        STATUS_URL,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature if signed else "forged",
    )


def _params(padding: int) -> dict[str, str]:
    sid = "SM" + uuid.uuid4().hex
    return {"AccountSid": SID, "MessageSid": sid, "MessageStatus": "sent", "Pad": "x" * padding}


def test_a_refused_request_keeps_a_small_body_and_its_reason(settings: Any) -> None:
    settings.DELIVERY_RECEIPT_REFUSED_BODY_MAX = 2048
    response = _status(_params(60_000), signed=False)
    assert response.status_code in (401, 403)
    receipt = ProviderReceipt.objects.get()
    assert receipt.verdict == ReceiptVerdict.REJECTED
    assert (len(receipt.body), receipt.body_truncated) == (2048, True)
    assert receipt.reason
    assert receipt.headers["X-Twilio-Signature"] == "forged"


def test_an_accepted_request_keeps_its_whole_body(settings: Any) -> None:
    settings.DELIVERY_RECEIPT_REFUSED_BODY_MAX = 2048
    params = _params(10_000)
    assert _status(params, signed=True).status_code == 200
    receipt = ProviderReceipt.objects.get()
    assert receipt.verdict != ReceiptVerdict.REJECTED
    assert (len(receipt.body), receipt.body_truncated) == (len(urlencode(params)), False)


def _receipt(verdict: str, *, age_days: float = 0) -> int:
    row = ProviderReceipt.objects.create(provider="twilio", kind="status", verdict=verdict)
    if age_days:
        ProviderReceipt.objects.filter(pk=row.pk).update(
            created_at=timezone.now() - timedelta(days=age_days)
        )
    return row.pk


def test_pruning_keeps_the_newest_refused_and_every_verified_receipt_in_resumable_batches(
    settings: Any,
) -> None:
    settings.DELIVERY_RECEIPT_REFUSED_KEEP = 3
    verified_old = [_receipt(v, age_days=400) for v in VERIFIED]
    refused = [_receipt(ReceiptVerdict.REJECTED) for _ in range(8)]
    verified_new = [_receipt(v) for v in VERIFIED]
    # A budget of one batch of two: each run deletes two, the next goes on.
    assert receipts_refused_prune(batch=2, max_batches=1) == 2
    assert not ProviderReceipt.objects.filter(pk__in=refused[:2]).exists()
    assert receipts_refused_prune(batch=2, max_batches=1) == 2
    assert receipts_refused_prune(batch=2, max_batches=5) == 1
    assert receipts_refused_prune(batch=2, max_batches=5) == 0
    left = set(ProviderReceipt.objects.values_list("pk", flat=True))
    assert left == {*verified_old, *verified_new, *refused[-3:]}


def test_refused_receipts_past_the_retention_go_even_under_the_count(settings: Any) -> None:
    settings.DELIVERY_RECEIPT_REFUSED_KEEP = 100
    settings.DELIVERY_RECEIPT_REFUSED_RETENTION_DAYS = 7
    old = _receipt(ReceiptVerdict.REJECTED, age_days=8)
    recent = _receipt(ReceiptVerdict.REJECTED, age_days=6)
    verified_old = _receipt(ReceiptVerdict.APPLIED, age_days=30)
    assert receipts_refused_prune() == 1
    assert set(ProviderReceipt.objects.values_list("pk", flat=True)) == {recent, verified_old}
    assert not ProviderReceipt.objects.filter(pk=old).exists()


def test_the_prune_task_runs_it_and_beat_schedules_it_on_the_control_queue(
    settings: Any,
) -> None:
    settings.DELIVERY_RECEIPT_REFUSED_KEEP = 0
    _receipt(ReceiptVerdict.REJECTED)
    kept = _receipt(ReceiptVerdict.APPLIED)
    assert prune_refused_receipts() == 1
    assert list(ProviderReceipt.objects.values_list("pk", flat=True)) == [kept]
    entry = _beat_schedule()["delivery.receipts.prune_refused"]
    assert entry["task"] == prune_refused_receipts.name
    assert entry["options"]["queue"] == QUEUE_CONTROL
    assert entry["schedule"] == timedelta(seconds=settings.RECEIPTS_REFUSED_PRUNE_INTERVAL_S)
    assert prune_refused_receipts.name in app.tasks
