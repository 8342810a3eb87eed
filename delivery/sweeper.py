"""Recovering rows that a lost task message or a killed worker left in flight.

PostgreSQL is the record of every send and Redis only carries messages, so a message lost with
Redis, or a worker SIGKILLed mid-chunk, leaves rows `queued` or `sending`. The sweeper re-enqueues
stale queued rows (a duplicate task finds nothing to claim). A `sending` row belongs to a chunk's
claim (delivery/inflight.py): while the claim's heartbeat is fresh the chunk is alive, however
slow, and its rows are left alone. Once the claim is stale or gone, the worker was lost: a row
whose request may have left (`inflight_at` set) becomes `unknown`, never sent again blindly; a row
that was never tried goes back to the queue and is re-enqueued at once. Rows claimed before claims
existed keep the old clock (DELIVERY_SENDING_STALE_S). The sweeper is also what sends a row held
for quiet hours at send time, on the first sweep after its window ends.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from delivery.dispatch import chunked
from delivery.models import Delivery, DeliveryClaim
from delivery.quiet_hours import QUIET_HOURS_CODE
from delivery.states import DeliveryStatus
from delivery.transitions import deliveries_requeue_unsent, deliveries_transition

logger = logging.getLogger(__name__)


WORKER_LOST = "worker_lost"
WORKER_LOST_UNSENT = "worker_lost_unsent"


def deliveries_sweep(*, send: Callable[[str, list[int]], None]) -> dict[str, int]:
    now = timezone.now()
    limit = settings.DELIVERY_SWEEP_BATCH
    # Rows claimed before claims were recorded: only the clock can tell.
    unclaimed_stale = list(
        Delivery.objects.filter(
            status=DeliveryStatus.SENDING,
            claim__isnull=True,
            sending_at__lt=now - timedelta(seconds=settings.DELIVERY_SENDING_STALE_S),
        ).values_list("id", flat=True)[:limit]
    )
    unknown = deliveries_transition(
        ids=unclaimed_stale,
        target=DeliveryStatus.UNKNOWN,
        detail="still sending past the deadline: the worker was lost mid-send",
        fields={"error_code": WORKER_LOST, "error_text": "outcome unknown after a lost worker"},
        sources=[DeliveryStatus.SENDING],
    )
    lost_unknown, lost_requeued = _lost_claims_resolve(now=now, limit=limit)
    unknown += lost_unknown
    # A row held for quiet hours has no task message waiting for it (the window may last all
    # night), so it is due as soon as its not_before passes, not only once it looks stale.
    stale_queued = Delivery.objects.filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now),
        Q(updated_at__lt=now - timedelta(seconds=settings.DELIVERY_QUEUED_STALE_S))
        | Q(error_code=QUIET_HOURS_CODE),
        status=DeliveryStatus.QUEUED,
    ).values_list("id", "channel")[:limit]
    by_channel: dict[str, list[int]] = defaultdict(list)
    for delivery_id, channel in [*lost_requeued, *stale_queued]:
        by_channel[channel].append(delivery_id)
    requeued = 0
    stranded = 0
    for channel, ids in by_channel.items():
        for chunk in chunked(sorted(set(ids)), settings.DELIVERY_CHUNK_SIZE):
            try:
                send(channel, chunk)
            except LookupError:
                # A channel with no send task must not stop the other channels' recovery.
                logger.error("no send task for channel %r: %s rows left queued", channel, len(ids))
                stranded += len(ids)
                break
            requeued += len(chunk)
    # `requeued` counts the rows of lost chunks put back in the queue too.
    return {"unknown": len(unknown), "requeued": requeued, "stranded": stranded}


def _lost_claims_resolve(*, now: datetime, limit: int) -> tuple[list[int], list[tuple[int, str]]]:
    """`sending` rows whose claim is stale or gone: their worker is lost.

    Returns (rows made unknown, (id, channel) of rows put back in the queue). Both statements
    re-check the row in their WHERE clause, so a worker that was only slow, not lost, and records
    a request or an answer at the same moment is never overwritten: its own writes are guarded
    by the claim and `inflight_at` the same way.
    """
    cutoff = now - timedelta(seconds=settings.DELIVERY_CLAIM_STALE_S)
    live = DeliveryClaim.objects.filter(heartbeat_at__gte=cutoff).values("pk")
    orphaned = list(
        Delivery.objects.filter(status=DeliveryStatus.SENDING, claim__isnull=False)
        .exclude(claim_id__in=live)
        .values_list("id", "channel", "inflight_at")[:limit]
    )
    if not orphaned:
        DeliveryClaim.objects.filter(heartbeat_at__lt=cutoff).delete()
        return [], []
    unsent = [(i, channel) for i, channel, inflight in orphaned if inflight is None]
    requeued = set(
        deliveries_requeue_unsent(
            ids=[i for i, _ in unsent],
            error_code=WORKER_LOST_UNSENT,
            error_text="its worker was lost before this request left: back in the queue",
        )
    )
    unknown = deliveries_transition(
        ids=[i for i, _, inflight in orphaned if inflight is not None],
        target=DeliveryStatus.UNKNOWN,
        detail="the worker was lost while this request was in flight",
        fields={
            "error_code": WORKER_LOST,
            "error_text": "the request may have left when its worker was lost",
        },
        sources=[DeliveryStatus.SENDING],
    )
    DeliveryClaim.objects.filter(heartbeat_at__lt=cutoff).delete()
    if requeued or unknown:
        logger.warning(
            "lost chunks resolved: %s rows back in the queue, %s unknown",
            len(requeued),
            len(unknown),
        )
    return unknown, [(i, channel) for i, channel in unsent if i in requeued]
