"""Recovering rows that a lost task message or a killed worker left in flight.

PostgreSQL is the record of every send and Redis only carries messages, so a message lost with
Redis, or a worker SIGKILLed mid-chunk, leaves rows `queued` or `sending`. The sweeper re-enqueues
stale queued rows (a duplicate task finds nothing to claim) and turns stale sending rows into
`unknown`: the provider may have accepted them, so they are never sent again blindly. It is also
what sends a row held for quiet hours at send time, on the first sweep after its window ends.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from delivery.dispatch import chunked
from delivery.models import Delivery
from delivery.quiet_hours import QUIET_HOURS_CODE
from delivery.states import DeliveryStatus
from delivery.transitions import deliveries_transition

logger = logging.getLogger(__name__)


def deliveries_sweep(*, send: Callable[[str, list[int]], None]) -> dict[str, int]:
    now = timezone.now()
    limit = settings.DELIVERY_SWEEP_BATCH
    stale_sending = list(
        Delivery.objects.filter(
            status=DeliveryStatus.SENDING,
            sending_at__lt=now - timedelta(seconds=settings.DELIVERY_SENDING_STALE_S),
        ).values_list("id", flat=True)[:limit]
    )
    unknown = deliveries_transition(
        ids=stale_sending,
        target=DeliveryStatus.UNKNOWN,
        detail="still sending past the deadline: the worker was lost mid-send",
        fields={"error_code": "worker_lost", "error_text": "outcome unknown after a lost worker"},
        sources=[DeliveryStatus.SENDING],
    )
    # A row held for quiet hours has no task message waiting for it (the window may last all
    # night), so it is due as soon as its not_before passes, not only once it looks stale.
    stale_queued = Delivery.objects.filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now),
        Q(updated_at__lt=now - timedelta(seconds=settings.DELIVERY_QUEUED_STALE_S))
        | Q(error_code=QUIET_HOURS_CODE),
        status=DeliveryStatus.QUEUED,
    ).values_list("id", "channel")[:limit]
    by_channel: dict[str, list[int]] = defaultdict(list)
    for delivery_id, channel in stale_queued:
        by_channel[channel].append(delivery_id)
    requeued = 0
    stranded = 0
    for channel, ids in by_channel.items():
        for chunk in chunked(sorted(ids), settings.DELIVERY_CHUNK_SIZE):
            try:
                send(channel, chunk)
            except LookupError:
                # A channel with no send task must not stop the other channels' recovery.
                logger.error("no send task for channel %r: %s rows left queued", channel, len(ids))
                stranded += len(ids)
                break
            requeued += len(chunk)
    return {"unknown": len(unknown), "requeued": requeued, "stranded": stranded}
