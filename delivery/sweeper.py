"""Recovering rows that a lost task message or a killed worker left in flight.

PostgreSQL is the record of every send and Redis only carries messages, so a message lost with
Redis, or a worker SIGKILLed mid-chunk, leaves rows `queued` or `sending`. The sweeper re-enqueues
stale queued rows (a duplicate task finds nothing to claim). A `sending` row belongs to a chunk's
claim (delivery/inflight.py): while the claim's heartbeat is fresh the chunk is alive, however
slow, and its rows are left alone. Once the claim is stale, the worker was lost: a row whose
request may have left (named in the claim's `leaving`) becomes `unknown`, never sent again
blindly; a row that was never tried goes back to the queue and is re-enqueued at once. Rows
claimed before claims existed keep the old clock (DELIVERY_SENDING_STALE_S). The sweeper is also
what sends a row held for quiet hours at send time, on the first sweep after its window ends.
Last, `unknown` SMS rows due for a lookup in Twilio's list are handed to the SMS queue like the
rest (delivery/reconcile.py): its chunk task reconciles them before it claims.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
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
    lost_requeued += _unknown_reconciled(now=now)
    # A row held for quiet hours has no task message waiting for it (the window may last all
    # night), so it is due as soon as its not_before passes, not only once it looks stale.
    stale_queued = Delivery.objects.filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now),
        Q(updated_at__lt=now - timedelta(seconds=settings.DELIVERY_QUEUED_STALE_S))
        | Q(error_code=QUIET_HOURS_CODE),
        status=DeliveryStatus.QUEUED,
        # System mails have a task of their own (delivery/system_mail.py sweeps them).
        message__isnull=False,
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


def _unknown_reconciled(*, now: datetime) -> list[tuple[int, str]]:
    """Unknown SMS rows due for a lookup in Twilio's list, as (id, channel) to hand to the SMS
    queue: its chunk task reconciles them before it claims (delivery/reconcile.py).

    Best effort: whatever goes wrong here, the sweep's other work must go on, and the rows stay
    `unknown` for the next sweep.
    """
    from delivery.reconcile import sms_unknown_due

    try:
        ids = sms_unknown_due(now=now)
    except Exception:
        logger.exception("picking unknown SMS to reconcile failed: they wait for the next sweep")
        return []
    return [(i, "sms") for i in ids]


def _lost_claims_resolve(*, now: datetime, limit: int) -> tuple[list[int], list[tuple[int, str]]]:
    """Claims whose heartbeat is stale: their worker is lost (or the chunk gave them up).

    Each claim is resolved in one transaction holding its row lock, the same row the worker
    writes before each request (`claim_leaving`), so the two never interleave: the rows its
    `leaving` names may have reached the provider and become `unknown`; its other rows still
    `sending` were never tried and go back to the queue. The claim row is deleted, so a worker
    that was only slow finds it gone and sends nothing more; an answer it already has still
    settles its row (the answer's write is guarded by the claim, not by its heartbeat).

    Returns (rows made unknown, (id, channel) of rows put back in the queue).
    """
    cutoff = now - timedelta(seconds=settings.DELIVERY_CLAIM_STALE_S)
    unknown: list[int] = []
    requeued: list[tuple[int, str]] = []
    stale = list(
        DeliveryClaim.objects.filter(heartbeat_at__lt=cutoff)
        .order_by("heartbeat_at")
        .values_list("pk", flat=True)[:limit]
    )
    for claim_id in stale:
        with transaction.atomic():
            claim = (
                DeliveryClaim.objects.select_for_update(skip_locked=True)
                .filter(pk=claim_id, heartbeat_at__lt=cutoff)
                .first()
            )
            if claim is None:  # it beat meanwhile, or another sweeper has it
                continue
            leaving = {int(i) for i in claim.leaving}
            rows = list(
                Delivery.objects.filter(
                    claim_id=claim_id, status=DeliveryStatus.SENDING
                ).values_list("id", "channel")
            )
            unknown += _lost_in_flight([i for i, _ in rows if i in leaving])
            unsent = [(i, channel) for i, channel in rows if i not in leaving]
            moved = set(
                deliveries_requeue_unsent(
                    ids=[i for i, _ in unsent],
                    claim_id=claim_id,
                    error_code=WORKER_LOST_UNSENT,
                    error_text="its worker was lost before this request left: back in the queue",
                )
            )
            requeued += [(i, channel) for i, channel in unsent if i in moved]
            claim.delete()
    # A `sending` row whose claim row is gone without resolving it (not a path the chunk takes:
    # it deletes a claim only once every row has its answer). Nothing says whether its request
    # left, so it is treated as if it may have.
    orphans = list(
        Delivery.objects.filter(status=DeliveryStatus.SENDING, claim__isnull=False)
        .exclude(claim_id__in=DeliveryClaim.objects.values("pk"))
        .filter(sending_at__lt=cutoff)
        .values_list("id", flat=True)[:limit]
    )
    unknown += _lost_in_flight(orphans)
    if unknown or requeued:
        logger.warning(
            "lost chunks resolved: %s rows back in the queue, %s unknown",
            len(requeued),
            len(unknown),
        )
    return unknown, requeued


def _lost_in_flight(ids: list[int]) -> list[int]:
    return deliveries_transition(
        ids=ids,
        target=DeliveryStatus.UNKNOWN,
        detail="the worker was lost while this request was in flight",
        fields={
            "error_code": WORKER_LOST,
            "error_text": "the request may have left when its worker was lost",
        },
        sources=[DeliveryStatus.SENDING],
    )
