"""Celery edges of delivery: parse ids, call one use case, return. Queue = channel (by name)."""

from __future__ import annotations

import logging

from celery import shared_task

from delivery.dispatch import deliveries_send_chunk
from delivery.receipt_caps import receipts_refused_prune
from delivery.status import receipts_reapply
from delivery.sweeper import deliveries_sweep

logger = logging.getLogger(__name__)

CHUNK_TASKS = {
    "email": "delivery.email.send_chunk",
    "sms": "delivery.sms.send_chunk",
    "push": "delivery.push.send_chunk",
    "whatsapp": "delivery.whatsapp.send_chunk",
}


def _send_chunk(channel: str, ids: list[int]) -> dict[str, int]:
    report = deliveries_send_chunk(channel=channel, ids=ids)
    if report.retry_ids:
        # Short waits only (seconds to minutes): the row's not_before guards the claim, and the
        # sweeper re-enqueues it if this message is lost.
        send_chunk_enqueue(channel, report.retry_ids, countdown=report.retry_after_s)
    return {"claimed": report.claimed, "sent": report.sent}


@shared_task(name="delivery.email.send_chunk", ignore_result=True)
def email_send_chunk(ids: list[int]) -> dict[str, int]:
    return _send_chunk("email", ids)


@shared_task(name="delivery.sms.send_chunk", ignore_result=True)
def sms_send_chunk(ids: list[int]) -> dict[str, int]:
    return _send_chunk("sms", ids)


@shared_task(name="delivery.push.send_chunk", ignore_result=True)
def push_send_chunk(ids: list[int]) -> dict[str, int]:
    return _send_chunk("push", ids)


@shared_task(name="delivery.whatsapp.send_chunk", ignore_result=True)
def whatsapp_send_chunk(ids: list[int]) -> dict[str, int]:
    return _send_chunk("whatsapp", ids)


def send_chunk_enqueue(channel: str, ids: list[int], countdown: float = 0.0) -> None:
    from continuity.celery import app

    app.send_task(CHUNK_TASKS[channel], args=[ids], countdown=countdown or None)


@shared_task(name="delivery.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    swept = deliveries_sweep(send=send_chunk_enqueue)
    # Provider callbacks that overtook the write of their message's id wait on receipts.
    reapplied = receipts_reapply()
    return {**swept, "receipts_matched": reapplied["matched"]}


@shared_task(name="delivery.receipts.prune_refused", ignore_result=True)
def prune_refused_receipts() -> int:
    """Keep refused provider-webhook receipts within their caps (beat; continuity/celery.py)."""
    return receipts_refused_prune()
