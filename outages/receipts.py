"""Receipt retention and caps (docs/monitors.md, "Receipts").

Every receipt (and replay-guard id) is deleted after OUTAGES_RECEIPT_RETENTION_DAYS by the
retention run (outages/retention.py, continuity/retention.py). Refused
requests (unknown slug, wrong method, bad credentials, too large, malformed, replayed) are kept
in a tighter bound, since anyone can send them: a small prefix of the body, the newest ones per
source (and for all requests that named no source together), and none past
OUTAGES_RECEIPT_REFUSED_RETENTION_DAYS.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from continuity.receipt_caps import PruneBudget, refused_body_trim, refused_prune
from outages.models import Verdict, WebhookReceipt

logger = logging.getLogger(__name__)

# The verdicts of requests we refused; a server error (the sender retries) and every accepted
# verdict are not among them.
REFUSED_VERDICTS = frozenset(
    {
        Verdict.NOT_FOUND,
        Verdict.METHOD_NOT_ALLOWED,
        Verdict.TOO_LARGE,
        Verdict.MALFORMED,
        Verdict.INVALID,
        Verdict.UNAUTHORIZED,
        Verdict.REPLAYED,
    }
)


def receipt_refused_trim(*, receipt_id: int, verdict: str) -> None:
    """Cut a just-refused receipt's body to OUTAGES_RECEIPT_REFUSED_BODY_MAX (intake calls this
    when it writes the verdict)."""
    if verdict not in REFUSED_VERDICTS:
        return
    refused_body_trim(
        refused=WebhookReceipt.objects.filter(pk=receipt_id, verdict__in=REFUSED_VERDICTS),
        cap=settings.OUTAGES_RECEIPT_REFUSED_BODY_MAX,
    )


def receipts_refused_prune(
    *, now: datetime | None = None, batch: int | None = None, max_batches: int | None = None
) -> int:
    """Delete refused receipts over their caps or past their retention, in batches; returns how
    many. A run that spends its batches leaves the rest to the next run."""
    cutoff = (now or timezone.now()) - timedelta(
        days=settings.OUTAGES_RECEIPT_REFUSED_RETENTION_DAYS
    )
    budget = PruneBudget(
        batch=batch or settings.RECEIPTS_REFUSED_PRUNE_BATCH,
        batches_left=max_batches or settings.RECEIPTS_REFUSED_PRUNE_MAX_BATCHES,
    )
    refused = WebhookReceipt.objects.filter(verdict__in=REFUSED_VERDICTS)
    per_source = settings.OUTAGES_RECEIPT_REFUSED_KEEP_PER_SOURCE
    # Requests that named no source: random slugs are the cheap way to add receipts.
    deleted = refused_prune(
        refused=refused.filter(source__isnull=True),
        keep=settings.OUTAGES_RECEIPT_REFUSED_KEEP_UNKNOWN,
        cutoff=cutoff,
        budget=budget,
    )
    crowded = (
        refused.filter(source__isnull=False)
        .values("source")
        .annotate(n=Count("pk"))
        .filter(n__gt=per_source)
        .values_list("source", flat=True)
    )
    for source_id in list(crowded):
        deleted += refused_prune(
            refused=refused.filter(source_id=source_id),
            keep=per_source,
            cutoff=cutoff,
            budget=budget,
        )
    # Within their count, a source's refusals still go after the retention.
    deleted += refused_prune(
        refused=refused.filter(source__isnull=False), keep=None, cutoff=cutoff, budget=budget
    )
    if deleted:
        logger.info(
            "pruned %s refused monitor webhook receipts%s",
            deleted,
            " (batch budget spent: the next run goes on)" if budget.spent else "",
        )
    return deleted
