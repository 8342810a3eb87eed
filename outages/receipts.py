"""Receipt retention: old receipts (and replay-guard ids) are deleted after the configured days."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from outages.models import DeliverySeen, WebhookReceipt


def receipts_prune(*, now: datetime | None = None, batch: int = 5000) -> int:
    """Delete receipts older than OUTAGES_RECEIPT_RETENTION_DAYS, in batches; returns the count."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.OUTAGES_RECEIPT_RETENTION_DAYS)
    total = 0
    while True:
        ids = list(
            WebhookReceipt.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[
                :batch
            ]
        )
        if not ids:
            break
        total += WebhookReceipt.objects.filter(pk__in=ids).delete()[0]
    # Replay ids only need to outlive the signature tolerance; keep them as long as receipts.
    total += DeliverySeen.objects.filter(created_at__lt=cutoff).delete()[0]
    return total
