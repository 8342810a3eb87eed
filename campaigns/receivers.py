"""Outage and delivery signals in, reroute tasks out. The signals arrive after the sender's
transaction has committed; the receivers only enqueue, so a webhook answers fast whatever the
audience size."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from campaigns import whatsapp_tasks
from delivery.signals import whatsapp_undelivered
from outages.models import OutageWindow
from outages.signals import outage_closed, outage_opened


@receiver(outage_opened, dispatch_uid="campaigns.reroute_on_outage_opened")
def _on_outage_opened(sender: Any, window: OutageWindow, **_: Any) -> None:
    from campaigns.reroute_tasks import reroute_window_opened

    reroute_window_opened.delay(window_id=window.pk)


@receiver(outage_closed, dispatch_uid="campaigns.failback_on_outage_closed")
def _on_outage_closed(sender: Any, window: OutageWindow, **_: Any) -> None:
    from campaigns.reroute_tasks import reroute_window_closed

    reroute_window_closed.delay(window_id=window.pk)


@receiver(whatsapp_undelivered, dispatch_uid="campaigns.whatsapp_fallback_on_undelivered")
def _on_whatsapp_undelivered(sender: Any, message_contacts: dict[int, list[int]], **_: Any) -> None:
    # A webhook sent this after its commit: only enqueue (campaigns/whatsapp.py plans).
    for message_id, contact_ids in message_contacts.items():
        whatsapp_tasks.whatsapp_fallback_enqueue(message_id=message_id, contact_ids=contact_ids)
