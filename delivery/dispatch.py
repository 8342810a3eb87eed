"""Sending deliveries: release planned rows to the queue, then send claimed chunks per channel.

Tasks carry delivery ids only (at most DELIVERY_CHUNK_SIZE per task and channel). A chunk task
claims its rows, asks the channel's sender for one outcome per row, and records the outcomes in a
few bulk statements. Nothing here retries a send whose outcome is unknown.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from contacts.models import Channel, SuppressionReason
from delivery.claim import ClaimedDelivery, claimed_load, deliveries_claim
from delivery.models import Delivery, Message
from delivery.providers.base import (
    Deferred,
    Failed,
    OutboundMessage,
    Outcome,
    PushKeys,
    Sent,
    Suppressed,
    SuppressReason,
    Unknown,
)
from delivery.quiet_hours import (
    QUIET_HOURS_CODE,
    QuietRules,
    quiet_hours_ends,
    quiet_hours_starts,
    quiet_rules,
)
from delivery.senders import channel_content, channel_sender
from delivery.states import DeliveryStatus
from delivery.transitions import (
    deliveries_mark_sent,
    deliveries_retry_later,
    deliveries_transition,
)

logger = logging.getLogger(__name__)

# A provider's "this address is unusable" becomes a suppression with the CRM's reason.
SUPPRESSION_REASON = {
    SuppressReason.OPTED_OUT: SuppressionReason.CARRIER_BLOCK,
    SuppressReason.INVALID_ADDRESS: SuppressionReason.INVALID_ADDRESS,
}


@dataclass
class ChunkReport:
    channel: str
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    suppressed: int = 0
    deferred: int = 0
    quiet_deferred: int = 0
    retry_ids: list[int] = field(default_factory=list)
    retry_after_s: float = 0.0


def chunked(ids: Sequence[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def deliveries_enqueue(
    *, ids: Iterable[int], send: Callable[[str, list[int]], None] | None = None
) -> int:
    """planned (or failed, for an operator retry) -> queued, then one send task per chunk.

    The tasks are sent after commit, so a worker never looks for rows it cannot see yet.
    """
    from delivery.tasks import send_chunk_enqueue

    sender = send or send_chunk_enqueue
    with transaction.atomic():
        moved = deliveries_transition(ids=ids, target=DeliveryStatus.QUEUED, detail="enqueued")
        by_channel: dict[str, list[int]] = defaultdict(list)
        for delivery_id, channel in Delivery.objects.filter(id__any_of=moved).values_list(
            "id", "channel"
        ):
            by_channel[channel].append(delivery_id)

        def _send_all() -> None:
            for channel, channel_ids in by_channel.items():
                for chunk in chunked(sorted(channel_ids), settings.DELIVERY_CHUNK_SIZE):
                    sender(channel, chunk)

        transaction.on_commit(_send_all)
    return len(moved)


def _outbound(
    claimed: ClaimedDelivery,
    *,
    channel: str,
    unsubscribe: dict[int, str],
    quiet_from: dict[str, datetime],
) -> OutboundMessage:
    keys = (
        PushKeys(p256dh=claimed.push_p256dh, auth=claimed.push_auth)
        if channel == Channel.PUSH
        else None
    )
    return OutboundMessage(
        delivery_id=claimed.delivery_id,
        to=claimed.address,
        merge_fields=claimed.merge_fields,
        unsubscribe_url=unsubscribe.get(claimed.contact_id, ""),
        push_keys=keys,
        hold_from=quiet_from.get(claimed.timezone),
    )


def deliveries_send_chunk(*, channel: str, ids: Sequence[int]) -> ChunkReport:
    """Claim, send and record one chunk of at most DELIVERY_CHUNK_SIZE deliveries."""
    report = ChunkReport(channel=channel)
    ids_by_message: dict[int, list[int]] = defaultdict(list)
    for delivery_id, message_id in Delivery.objects.filter(
        id__any_of=ids, channel=channel
    ).values_list("id", "message_id"):
        ids_by_message[message_id].append(delivery_id)
    for message in Message.objects.filter(id__in=ids_by_message).select_related("workspace"):
        row_ids = ids_by_message[message.pk]
        # The message's workspace sets the quiet hours its deliveries are held to at send time.
        quiet = quiet_rules(workspace=message.workspace)
        claimed_ids = deliveries_claim(
            ids=row_ids, channel=channel, purpose=message.purpose, quiet=quiet
        )
        if not claimed_ids:
            continue
        claimed = claimed_load(ids=claimed_ids, channel=channel)
        report.claimed += len(claimed)
        unreachable = [c.delivery_id for c in claimed if not c.address]
        sendable = [c for c in claimed if c.address]
        outcomes: list[Outcome] = [
            Failed(i, "unreachable", f"contact has no {channel} address") for i in unreachable
        ]
        sender = channel_sender(channel)
        if sendable:
            from contacts.links import unsubscribe_urls

            content = channel_content(message=message, channel=channel)
            # Every email carries its contact's one-click link (List-Unsubscribe, RFC 8058).
            unsubscribe = (
                unsubscribe_urls(contact_ids=[c.contact_id for c in sendable], channel=channel)
                if channel == Channel.EMAIL
                else {}
            )
            # A paced chunk can run for minutes: each message carries the moment its contact's
            # quiet hours begin, and the sender hands back what has not left by then.
            quiet_from = quiet_hours_starts(
                channel=channel,
                tzs={c.timezone for c in sendable},
                now=timezone.now(),
                rules=quiet,
            )
            outbound = [
                _outbound(c, channel=channel, unsubscribe=unsubscribe, quiet_from=quiet_from)
                for c in sendable
            ]
            outcomes += sender.send_batch(content=content, messages=outbound)
        _outcomes_record(
            outcomes=outcomes,
            claimed={c.delivery_id: c for c in claimed},
            channel=channel,
            provider=getattr(sender, "provider", channel),
            report=report,
            quiet=quiet,
        )
    logger.info(
        "chunk %s: claimed %s sent %s failed %s unknown %s suppressed %s deferred %s "
        "quiet hours %s",
        channel,
        report.claimed,
        report.sent,
        report.failed,
        report.unknown,
        report.suppressed,
        report.deferred,
        report.quiet_deferred,
    )
    return report


def _outcomes_record(
    *,
    outcomes: Sequence[Outcome],
    claimed: dict[int, ClaimedDelivery],
    channel: str,
    provider: str,
    report: ChunkReport,
    quiet: QuietRules | None = None,
) -> None:
    """Record a chunk's outcomes with one statement per (outcome kind, reason), not per row."""
    sent_by_provider: dict[str, dict[int, Sent]] = defaultdict(dict)
    grouped: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    deferred: dict[tuple[str, str], list[Deferred]] = defaultdict(list)
    for outcome in outcomes:
        if isinstance(outcome, Sent):
            sent_by_provider[outcome.provider or provider][outcome.delivery_id] = outcome
        elif isinstance(outcome, Failed | Unknown):
            target = (
                DeliveryStatus.FAILED if isinstance(outcome, Failed) else DeliveryStatus.UNKNOWN
            )
            grouped[(target, outcome.code, outcome.text)].append(outcome.delivery_id)
        elif isinstance(outcome, Deferred):
            deferred[(outcome.code, outcome.text)].append(outcome)
        else:
            report.suppressed += _suppress(outcome, claimed[outcome.delivery_id], channel)
    for name, group in sent_by_provider.items():
        report.sent += len(
            deliveries_mark_sent(
                provider_ids={i: o.provider_message_id for i, o in group.items()},
                provider=name,
                cost_units={i: o.cost_units for i, o in group.items()},
            )
        )
    for (status, code, text), ids in grouped.items():
        moved = deliveries_transition(
            ids=ids,
            target=status,
            detail=f"{code}: {text}",
            fields={"error_code": code[:50], "error_text": text[:500]},
        )
        if status == DeliveryStatus.FAILED:
            report.failed += len(moved)
            if channel == Channel.PUSH:
                _push_failures_record(ids=moved, claimed=claimed, code=code, text=text)
        else:
            report.unknown += len(moved)
    for (code, text), items in deferred.items():
        _defer(
            items,
            code=code,
            text=text,
            report=report,
            claimed=claimed,
            channel=channel,
            quiet=quiet,
        )


def _quiet_defer(
    *,
    ids: list[int],
    claimed: dict[int, ClaimedDelivery],
    channel: str,
    report: ChunkReport,
    quiet: QuietRules | None,
) -> None:
    """Rows whose contact's quiet hours began before their request left: back to the queue.

    No request left, so the claim's attempt is given back (quiet hours are not a failure) and the
    row waits for the end of its contact's window; the sweeper re-enqueues it then.
    """
    now = timezone.now()
    by_zone: dict[str, list[int]] = defaultdict(list)
    for delivery_id in ids:
        by_zone[claimed[delivery_id].timezone].append(delivery_id)
    ends = quiet_hours_ends(channel=channel, tzs=by_zone, now=now, rules=quiet)
    with transaction.atomic():
        for zone, zone_ids in by_zone.items():
            # A window already over (a very short one) leaves the row due now: the claim decides.
            moved = deliveries_retry_later(
                ids=zone_ids,
                not_before=ends.get(zone, now),
                error_code=QUIET_HOURS_CODE,
                error_text="the contact's quiet hours began before the request left",
            )
            Delivery.objects.filter(id__any_of=moved).update(attempt=F("attempt") - 1)
            report.quiet_deferred += len(moved)


def _push_failures_record(
    *, ids: list[int], claimed: dict[int, ClaimedDelivery], code: str, text: str
) -> None:
    """Pushes that failed for the subscription's own reason count against it (the CRM shows
    the count); a payload too large or a VAPID problem is not the subscription's doing."""
    from contacts.push import push_subscriptions_record_failure
    from delivery.providers.webpush import SUBSCRIPTION_FAILURE_CODES

    subscription_ids = [sub for i in ids if (sub := claimed[i].push_subscription_id) is not None]
    if code in SUBSCRIPTION_FAILURE_CODES and subscription_ids:
        push_subscriptions_record_failure(
            subscription_ids=subscription_ids, reason=f"{code}: {text}"
        )


def _defer(
    items: list[Deferred],
    *,
    code: str,
    text: str,
    report: ChunkReport,
    claimed: dict[int, ClaimedDelivery],
    channel: str,
    quiet: QuietRules | None = None,
) -> None:
    ids = [item.delivery_id for item in items]
    if code == QUIET_HOURS_CODE:
        _quiet_defer(ids=ids, claimed=claimed, channel=channel, report=report, quiet=quiet)
        return
    report.deferred += len(ids)
    exhausted = list(
        Delivery.objects.filter(
            id__any_of=ids, attempt__gte=settings.DELIVERY_MAX_ATTEMPTS
        ).values_list("id", flat=True)
    )
    if exhausted:
        deliveries_transition(
            ids=exhausted,
            target=DeliveryStatus.FAILED,
            detail=f"gave up after {settings.DELIVERY_MAX_ATTEMPTS} attempts: {code}",
            fields={"error_code": code[:50], "error_text": text[:500]},
        )
    retry = [i for i in ids if i not in set(exhausted)]
    if not retry:
        return
    attempt = (
        Delivery.objects.filter(id__any_of=retry)
        .order_by("-attempt")
        .values_list("attempt", flat=True)
    ).first() or 1
    # Exponential back-off with full jitter, and at least what the provider asked for.
    backoff = settings.DELIVERY_RETRY_BASE_S * (2 ** max(attempt - 1, 0))
    asked = max(item.retry_after_s for item in items)
    delay = max(asked, random.uniform(0, backoff))  # noqa: S311 - jitter, not security  # nosec B311
    moved = deliveries_retry_later(
        ids=retry,
        not_before=timezone.now() + timedelta(seconds=delay),
        error_code=code,
        error_text=text,
    )
    report.retry_ids.extend(moved)
    report.retry_after_s = max(report.retry_after_s, delay)


def _suppress(outcome: Suppressed, claimed: ClaimedDelivery, channel: str) -> int:
    from contacts.consent import Evidence, consent_revoke, suppression_add
    from contacts.models import ConsentSource, Contact, Purpose

    moved = deliveries_transition(
        ids=[outcome.delivery_id],
        target=DeliveryStatus.SUPPRESSED,
        detail=f"{outcome.reason}: {outcome.text}",
        fields={"error_code": outcome.code[:50], "error_text": outcome.text[:500]},
    )
    contact = Contact.objects.get(pk=claimed.contact_id)
    if outcome.reason == SuppressReason.SUBSCRIPTION_GONE:
        from contacts.push import push_subscription_deactivate

        if claimed.push_subscription_id is not None:
            push_subscription_deactivate(
                subscription_id=claimed.push_subscription_id,
                reason=f"{outcome.code}: {outcome.text}",
            )
    elif outcome.reason == SuppressReason.OPTED_OUT and channel == Channel.SMS:
        # Twilio 21610: the handset sent STOP. That is a revocation by the person, not a
        # deliverability problem, so it lands in the consent log as such.
        for purpose in Purpose.values:
            consent_revoke(
                contact=contact,
                channel=channel,
                purpose=purpose,
                evidence=Evidence(source=ConsentSource.SMS_KEYWORD, note=outcome.text[:200]),
            )
    else:
        suppression_add(
            contact=contact,
            channel=channel,
            reason=SUPPRESSION_REASON.get(outcome.reason, SuppressionReason.INVALID_ADDRESS),
            source=ConsentSource.PROVIDER,
            detail=f"{outcome.code}: {outcome.text}"[:500],
        )
    return len(moved)


def deliveries_retry_failed(*, ids: Iterable[int], send: Any = None) -> int:
    """The admin's "retry failed": only failed rows go back; sent or unknown ones never do."""
    failed = list(
        Delivery.objects.filter(id__any_of=list(ids), status=DeliveryStatus.FAILED).values_list(
            "id", flat=True
        )
    )
    return deliveries_enqueue(ids=failed, send=send)
