"""Celery edge of campaigns/whatsapp.py: ids in, one use case."""

from __future__ import annotations

from celery import shared_task

WHATSAPP_FALLBACK_TASK = "campaigns.whatsapp_fallback_plan"


@shared_task(name=WHATSAPP_FALLBACK_TASK, ignore_result=True)
def whatsapp_fallback_plan(message_id: int, contact_ids: list[int]) -> int:
    from campaigns.whatsapp import whatsapp_fallback_plan as plan

    return plan(message_id=int(message_id), contact_ids=[int(c) for c in contact_ids])


def whatsapp_fallback_enqueue(*, message_id: int, contact_ids: list[int]) -> None:
    from continuity.celery import app

    app.send_task(
        WHATSAPP_FALLBACK_TASK, kwargs={"message_id": message_id, "contact_ids": contact_ids}
    )
