"""Bounds on refused provider-webhook receipts (docs/delivery.md, "Refused receipts").

A refused request keeps its headers, reason and the first DELIVERY_RECEIPT_REFUSED_BODY_MAX
characters of its body; the beat task keeps the newest DELIVERY_RECEIPT_REFUSED_KEEP of them and
none older than DELIVERY_RECEIPT_REFUSED_RETENTION_DAYS. Every other verdict (applied, unmatched,
ignored, and received: still in flight or interrupted) is left to the general retention.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from continuity.receipt_caps import PruneBudget, refused_body_trim, refused_prune
from delivery.models import ProviderReceipt, ReceiptVerdict

logger = logging.getLogger(__name__)


def receipt_refused_trim(*, receipt: ProviderReceipt) -> None:
    """Cut a just-refused receipt's body to the refused cap (the webhook calls this)."""
    cap = settings.DELIVERY_RECEIPT_REFUSED_BODY_MAX
    if receipt.verdict != ReceiptVerdict.REJECTED or len(receipt.body) <= cap:
        return
    refused_body_trim(
        refused=ProviderReceipt.objects.filter(pk=receipt.pk, verdict=ReceiptVerdict.REJECTED),
        cap=cap,
    )


def receipts_refused_prune(
    *, now: datetime | None = None, batch: int | None = None, max_batches: int | None = None
) -> int:
    """Delete refused receipts over the count cap or past their retention, in batches; returns
    how many. A run that spends its batches leaves the rest to the next run."""
    cutoff = (now or timezone.now()) - timedelta(
        days=settings.DELIVERY_RECEIPT_REFUSED_RETENTION_DAYS
    )
    budget = PruneBudget(
        batch=batch or settings.RECEIPTS_REFUSED_PRUNE_BATCH,
        batches_left=max_batches or settings.RECEIPTS_REFUSED_PRUNE_MAX_BATCHES,
    )
    deleted = refused_prune(
        refused=ProviderReceipt.objects.filter(verdict=ReceiptVerdict.REJECTED),
        keep=settings.DELIVERY_RECEIPT_REFUSED_KEEP,
        cutoff=cutoff,
        budget=budget,
    )
    if deleted:
        logger.info(
            "pruned %s refused provider receipts%s",
            deleted,
            " (batch budget spent: the next run goes on)" if budget.spent else "",
        )
    return deleted
