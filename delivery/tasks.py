"""Celery edges of delivery: parse ids, call one use case, return. Queue = channel (by name)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.exceptions import Reject
from kombu.exceptions import OperationalError as BrokerUnavailable

from delivery.dispatch import deliveries_send_chunk, interrupt_backoff_s
from delivery.inflight import DB_CONNECTION_ERRORS
from delivery.receipt_caps import receipts_refused_prune
from delivery.status import receipts_reapply
from delivery.sweeper import deliveries_sweep
from delivery.system_mail import system_mail_send, system_mails_sweep

logger = logging.getLogger(__name__)

CHUNK_TASKS = {
    "email": "delivery.email.send_chunk",
    "sms": "delivery.sms.send_chunk",
    "push": "delivery.push.send_chunk",
    "whatsapp": "delivery.whatsapp.send_chunk",
}


def _send_chunk(task: Any, channel: str, ids: list[int]) -> dict[str, int]:
    retries = int(task.request.retries or 0)
    if channel == "sms":
        _sms_unknown_reconcile(ids)
    try:
        report = deliveries_send_chunk(channel=channel, ids=ids, retries=retries)
    except DB_CONNECTION_ERRORS as exc:
        # PostgreSQL failed before (or while) the rows were claimed: a claim is one statement, so
        # they are all still queued. The same ids go again after a back-off.
        _chunk_retry(task, ids, delay=interrupt_backoff_s(retries), reason=str(exc))
        return {"claimed": 0, "sent": 0}
    if report.retry_ids:
        if report.interrupted:
            _chunk_retry(
                task, report.retry_ids, delay=report.retry_after_s, reason=report.interrupted
            )
        else:
            # Short waits only (seconds to minutes): the row's not_before guards the claim, and
            # the sweeper re-enqueues it if this message is lost.
            try:
                send_chunk_enqueue(channel, report.retry_ids, countdown=report.retry_after_s)
            except BrokerUnavailable as exc:
                logger.warning(
                    "retry of %s deferred rows not queued (%s): the sweeper re-enqueues them",
                    len(report.retry_ids),
                    exc,
                )
    return {"claimed": report.claimed, "sent": report.sent}


def _sms_unknown_reconcile(ids: list[int]) -> None:
    """`unknown` rows the sweeper handed out with the chunk are looked up in Twilio's list first:
    those that surely never left are queued again and claimed by this very chunk. Best effort:
    a failure here leaves them unknown for the next sweep and must not stop the send."""
    from delivery.reconcile import sms_unknown_reconcile

    try:
        sms_unknown_reconcile(ids=ids)
    except Exception:
        logger.exception("reconciling unknown SMS failed: they stay unknown for the next sweep")


def _chunk_retry(task: Any, ids: list[int], *, delay: float, reason: str) -> None:
    """Celery's retry with these ids after `delay`, as often as it takes: nothing was sent, so
    waiting costs nothing but time. With the broker down as well (Redis is both), the retry
    cannot be queued; the rows wait in PostgreSQL, queued, for the sweeper."""
    try:
        task.retry(args=[ids], countdown=delay)
    except Reject as exc:
        logger.warning(
            "retry of %s rows not queued (%s; %s): the sweeper re-enqueues them",
            len(ids),
            reason,
            exc,
        )


@shared_task(name="delivery.email.send_chunk", bind=True, ignore_result=True, max_retries=None)
def email_send_chunk(self: Any, ids: list[int]) -> dict[str, int]:
    return _send_chunk(self, "email", ids)


@shared_task(name="delivery.sms.send_chunk", bind=True, ignore_result=True, max_retries=None)
def sms_send_chunk(self: Any, ids: list[int]) -> dict[str, int]:
    return _send_chunk(self, "sms", ids)


@shared_task(name="delivery.push.send_chunk", bind=True, ignore_result=True, max_retries=None)
def push_send_chunk(self: Any, ids: list[int]) -> dict[str, int]:
    return _send_chunk(self, "push", ids)


@shared_task(name="delivery.whatsapp.send_chunk", bind=True, ignore_result=True, max_retries=None)
def whatsapp_send_chunk(self: Any, ids: list[int]) -> dict[str, int]:
    return _send_chunk(self, "whatsapp", ids)


def send_chunk_enqueue(channel: str, ids: list[int], countdown: float = 0.0) -> None:
    from continuity.celery import app

    app.send_task(CHUNK_TASKS[channel], args=[ids], countdown=countdown or None)


@shared_task(name="delivery.email.system_mail", bind=True, ignore_result=True, max_retries=None)
def email_system_mail(self: Any, delivery_id: int) -> str:
    """One system mail (delivery/system_mail.py); retried with back-off while SendGrid defers."""
    result = system_mail_send(delivery_id=delivery_id)
    if result.retry_after_s is not None:
        try:
            self.retry(args=[delivery_id], countdown=result.retry_after_s)
        except Reject as exc:
            # The broker is down too: the row waits, queued, for the sweeper.
            logger.warning("retry of system mail %s not queued (%s)", delivery_id, exc)
    return result.status


@shared_task(name="delivery.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    swept = deliveries_sweep(send=send_chunk_enqueue)
    swept["system_mails_requeued"] = system_mails_sweep()
    # Provider callbacks that overtook the write of their message's id wait on receipts.
    reapplied = receipts_reapply()
    return {**swept, "receipts_matched": reapplied["matched"]}


@shared_task(name="delivery.receipts.prune_refused", ignore_result=True)
def prune_refused_receipts() -> int:
    """Keep refused provider-webhook receipts within their caps (beat; continuity/celery.py)."""
    return receipts_refused_prune()
