"""Sending deliveries: release planned rows to the queue, then send claimed chunks per channel.

Tasks carry delivery ids only (at most DELIVERY_CHUNK_SIZE per task and channel). A chunk task
claims its rows under a DeliveryClaim kept fresh by a heartbeat (delivery/inflight.py), asks the
channel's sender for one outcome per row, and records progress as the sender goes: each request
is recorded as leaving right before it is made, and its answer as soon as it comes (per message
for SMS, per request for email, per window for push). Nothing here retries a send whose outcome
is unknown, and only a row recorded as leaving can become unknown.

When Redis (the SMS pace) or PostgreSQL fails before the next request leaves, the chunk stops:
its rows that never left go back to the queue with a back-off and the task retries them.
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
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop

from contacts.models import Channel, SuppressionReason
from delivery.claim import ClaimedDelivery, claimed_load, deliveries_claim
from delivery.inflight import (
    DB_CONNECTION_ERRORS,
    ClaimHeartbeat,
    claim_open,
    claims_close,
    db_write_durably,
)
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
from delivery.providers.progress import CLAIM_LOST, SendInterrupted
from delivery.quiet_hours import (
    QUIET_HOURS_CODE,
    QuietRules,
    quiet_hours_ends,
    quiet_hours_starts,
    quiet_rules,
)
from delivery.ratelimit import PACE_UNAVAILABLE
from delivery.senders import channel_content, channel_sender
from delivery.states import DeliveryStatus
from delivery.transitions import (
    claim_leaving,
    deliveries_mark_sent,
    deliveries_requeue_unsent,
    deliveries_retry_later,
    deliveries_transition,
)
from delivery.variants import message_languages

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
    # Set when Redis or PostgreSQL stopped the chunk before its next request left: the code, and
    # how many claimed rows went back to the queue untried.
    interrupted: str = ""
    requeued: int = 0

    def add(self, other: ChunkReport) -> None:
        for name in ("sent", "failed", "unknown", "suppressed", "deferred", "quiet_deferred"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.retry_ids.extend(other.retry_ids)
        self.retry_after_s = max(self.retry_after_s, other.retry_after_s)


# Failures of what a send depends on, before its next request left. SendInterrupted: the pace
# (Redis) or a progress record (PostgreSQL) from inside the sender; a connection error: PostgreSQL
# between the claim and the first request (loading the rows, the content, the links).
INTERRUPTIONS = (SendInterrupted, *DB_CONNECTION_ERRORS)
DATABASE_UNAVAILABLE = "database_unavailable"
PROGRESS_UNAVAILABLE = "progress_unavailable"
OUTCOME_UNRECORDED = "outcome_unrecorded"
# Interruptions raised before the request being prepared was written.
NEVER_LEFT = frozenset({PACE_UNAVAILABLE, PROGRESS_UNAVAILABLE, DATABASE_UNAVAILABLE})


def interrupt_backoff_s(retries: int) -> float:
    """How long a chunk stopped by Redis or PostgreSQL waits: doubling per retry, jittered."""
    ceiling = min(
        settings.DELIVERY_INTERRUPT_BACKOFF_MAX_S,
        settings.DELIVERY_RETRY_BASE_S * 2 ** min(retries, 16),
    )
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security  # nosec B311


class ChunkProgress:
    """Where a sender's progress goes: PostgreSQL, written at once, retried over a reconnect,
    and guarded by the chunk's claim (a row the sweeper took back is never written to)."""

    def __init__(
        self,
        *,
        claim_id: int,
        claimed_ids: Iterable[int],
        channel: str,
        report: ChunkReport,
        quiet: QuietRules | None,
    ) -> None:
        self.claim_id = claim_id
        self.channel = channel
        self.provider = channel
        self.report = report
        self.quiet = quiet
        self.claimed_ids: set[int] = set(claimed_ids)
        self.claimed: dict[int, ClaimedDelivery] = {}
        # The request in flight (its answer not written yet), as the claim row records it.
        self.leaving_ids: set[int] = set()
        self.settled_ids: set[int] = set()
        # The sweeper took the claim back (it judged this chunk dead): nothing more is sent.
        self.lost = False
        # Answers that could not be written even after reconnecting (kept for one more try).
        self.unrecorded: dict[int, Outcome] = {}
        # Answers handed to settle_later: written with the next leaving record, or by flush.
        self.pending: list[Outcome] = []

    def loaded(self, claimed: Sequence[ClaimedDelivery]) -> None:
        self.claimed = {c.delivery_id: c for c in claimed}
        self.claimed_ids = set(self.claimed)

    def leaving(self, delivery_ids: Sequence[int]) -> list[int]:
        ids = [i for i in delivery_ids if i in self.claimed_ids and i not in self.settled_ids]
        # Answers waiting to be written go first: plain "sent" ones in the same statement as
        # this record (one round trip per SMS), any other kind just before it.
        sent, other = self._pending_split()
        try:
            self.settled(other)
        except SendInterrupted:
            self.unrecorded.update(sent)
            raise
        if not ids or self.lost:
            self.settled(list(sent.values()))
            return []
        provider = next((o.provider for o in sent.values() if o.provider), self.provider)
        try:
            kept, moved = db_write_durably(
                lambda: claim_leaving(
                    claim_id=self.claim_id,
                    delivery_ids=ids,
                    sent={i: (o.provider_message_id, o.cost_units) for i, o in sent.items()},
                    provider=provider,
                ),
                what="request leaving",
                attempts=max(1, settings.DELIVERY_OUTCOME_WRITE_ATTEMPTS // 3),
            )
        except DB_CONNECTION_ERRORS as exc:
            # The answers go with the rest of the chunk's unwritten ones (tried again once more).
            self.unrecorded.update(sent)
            raise SendInterrupted(PROGRESS_UNAVAILABLE, f"{type(exc).__name__}: {exc}") from exc
        self.settled_ids.update(sent)
        self.report.sent += len(moved)
        if not kept:
            self.lost = True
            logger.warning(
                "claim %s was taken back by the sweeper: the rest of its batch is not sent",
                self.claim_id,
            )
            return []
        # The previous request's answers are written by now: only these are in flight.
        self.leaving_ids = set(ids)
        return ids

    def settle_later(self, outcomes: Sequence[Outcome]) -> None:
        self.pending.extend(outcomes)

    def flush(self) -> None:
        sent, other = self._pending_split()
        self.settled([*sent.values(), *other])

    def _pending_split(self) -> tuple[dict[int, Sent], list[Outcome]]:
        """Take the pending answers: plain sends of one provider (by id), and the rest."""
        pending, self.pending = self.pending, []
        fresh = [o for o in pending if o.delivery_id not in self.settled_ids]
        sent = {o.delivery_id: o for o in fresh if isinstance(o, Sent)}
        if len({o.provider or self.provider for o in sent.values()}) > 1:
            return {}, fresh
        return sent, [o for o in fresh if not isinstance(o, Sent)]

    def unsettled(self) -> set[int]:
        return self.claimed_ids - self.settled_ids

    def settled(self, outcomes: Sequence[Outcome]) -> None:
        fresh = [
            o
            for o in outcomes
            if o.delivery_id in self.claimed_ids and o.delivery_id not in self.settled_ids
        ]
        # A row another chunk holds now: nothing was sent and nothing is ours to write.
        lost = {o.delivery_id for o in fresh if isinstance(o, Deferred) and o.code == CLAIM_LOST}
        self.settled_ids.update(lost)
        fresh = [o for o in fresh if o.delivery_id not in lost]
        if not fresh:
            return
        try:
            counts = db_write_durably(lambda: self._record(fresh), what="provider answers")
        except DB_CONNECTION_ERRORS as exc:
            self.unrecorded.update({o.delivery_id: o for o in fresh})
            raise SendInterrupted(OUTCOME_UNRECORDED, f"{type(exc).__name__}: {exc}") from exc
        for outcome in fresh:
            self.settled_ids.add(outcome.delivery_id)
            self.unrecorded.pop(outcome.delivery_id, None)
        self.report.add(counts)

    def _record(self, outcomes: Sequence[Outcome]) -> ChunkReport:
        # No transaction around the whole: each write is atomic on its own and guarded by the
        # status and the claim, so a try cut off by a dropped connection is simply made again and
        # skips what did commit. (A wrapping transaction would turn each write's own transaction
        # into a savepoint: two more round trips per SMS.)
        counts = ChunkReport(channel=self.channel)
        _outcomes_record(
            outcomes=outcomes,
            claimed=self.claimed,
            channel=self.channel,
            provider=self.provider,
            report=counts,
            quiet=self.quiet,
            claim_id=self.claim_id,
        )
        return counts


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
    opt_out: str = "",
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
        opt_out_text=opt_out,
        push_keys=keys,
        hold_from=quiet_from.get(claimed.timezone),
    )


def deliveries_send_chunk(*, channel: str, ids: Sequence[int], retries: int = 0) -> ChunkReport:
    """Claim, send and record one chunk of at most DELIVERY_CHUNK_SIZE deliveries.

    `retries` is how often the chunk was already stopped by Redis or PostgreSQL (the back-off
    grows with it). A DB connection error before anything was claimed goes up to the task.
    """
    report = ChunkReport(channel=channel)
    ids_by_message: dict[int, list[int]] = defaultdict(list)
    for delivery_id, message_id in Delivery.objects.filter(
        id__any_of=ids, channel=channel
    ).values_list("id", "message_id"):
        ids_by_message[message_id].append(delivery_id)
    messages = list(Message.objects.filter(id__in=ids_by_message).select_related("workspace"))
    heartbeat = ClaimHeartbeat()
    claims: list[int] = []
    clean = False
    try:
        for index, message in enumerate(messages):
            row_ids = ids_by_message[message.pk]
            # The message's workspace sets the quiet hours its deliveries are held to at send time.
            quiet = quiet_rules(workspace=message.workspace)
            claim_id = claim_open(workspace_id=message.workspace_id, channel=channel)
            claims.append(claim_id)
            heartbeat.track(claim_id)
            claimed_ids = deliveries_claim(
                ids=row_ids,
                channel=channel,
                purpose=message.purpose,
                quiet=quiet,
                claim_id=claim_id,
            )
            if not claimed_ids:
                continue
            progress = ChunkProgress(
                claim_id=claim_id, claimed_ids=claimed_ids, channel=channel, report=report,
                quiet=quiet,
            )  # fmt: skip
            try:
                _message_send(message=message, channel=channel, progress=progress, quiet=quiet)
            except INTERRUPTIONS as exc:
                _interrupted(progress=progress, exc=exc, report=report, retries=retries)
                # The later messages' rows were never claimed: still queued, they go with the
                # retry as they are.
                report.retry_ids.extend(
                    i for later in messages[index + 1 :] for i in ids_by_message[later.pk]
                )
                return report
            if progress.unsettled() and not progress.lost:
                # A sender gave no answer for some rows: they stay `sending` for the sweeper.
                logger.error("chunk %s: no outcome for %s", channel, sorted(progress.unsettled()))
                return report
        clean = True
    finally:
        heartbeat.stop()
        claims_close(claim_ids=claims, clean=clean)
        _chunk_log(report)
    return report


def _chunk_log(report: ChunkReport) -> None:
    logger.info(
        "chunk %s: claimed %s sent %s failed %s unknown %s suppressed %s deferred %s "
        "quiet hours %s requeued %s%s",
        report.channel,
        report.claimed,
        report.sent,
        report.failed,
        report.unknown,
        report.suppressed,
        report.deferred,
        report.quiet_deferred,
        report.requeued,
        f" (interrupted: {report.interrupted})" if report.interrupted else "",
    )


def sms_soft_opt_in_contacts(*, contact_ids: Sequence[int], purpose: str) -> frozenset[int]:
    """Which of these contacts get this purpose's SMS on legitimate interest, not consent."""
    from contacts.models import Consent, ConsentState, LawfulBasis

    return frozenset(
        Consent.objects.filter(
            contact_id__any_of=list(contact_ids),
            channel=Channel.SMS,
            purpose=purpose,
            state=ConsentState.GRANTED,
            lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
        ).values_list("contact_id", flat=True)
    )


# The opt-out line's default, in the recipient's language. Every translation keeps the word STOP:
# it is the keyword Twilio itself acts on, whatever language the rest of the line is in.
SMS_OPT_OUT_DEFAULT = gettext_noop("Reply STOP to opt out.")


def sms_opt_out_texts(*, locales: Iterable[str], workspace: Any) -> dict[str, str]:
    """The opt-out line for each contact locale: DELIVERY_SMS_OPT_OUT_TEXT as written when it is
    set (the operator chose the words), else the default in the contact's interface language."""
    from contacts.language import interface_language

    configured = settings.DELIVERY_SMS_OPT_OUT_TEXT
    texts: dict[str, str] = {}
    for locale in set(locales):
        if configured:
            texts[locale] = configured
            continue
        with translation.override(interface_language(locale, workspace)):
            texts[locale] = gettext(SMS_OPT_OUT_DEFAULT)
    return texts


def _message_send(
    *, message: Message, channel: str, progress: ChunkProgress, quiet: QuietRules | None
) -> None:
    """Send one message's claimed rows, recording progress as the sender goes."""
    claimed = claimed_load(ids=sorted(progress.claimed_ids), channel=channel)
    progress.loaded(claimed)
    progress.report.claimed += len(claimed)
    sender = channel_sender(channel)
    progress.provider = getattr(sender, "provider", channel)
    progress.settled(
        [
            Failed(c.delivery_id, "unreachable", f"contact has no {channel} address")
            for c in claimed
            if not c.address
        ]
    )
    sendable = [c for c in claimed if c.address]
    if not sendable:
        return
    from contacts.links import unsubscribe_urls

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
    soft_opt_in = (
        sms_soft_opt_in_contacts(
            contact_ids=[c.contact_id for c in sendable], purpose=message.purpose
        )
        if channel == Channel.SMS
        else frozenset()
    )
    opt_out_texts = (
        sms_opt_out_texts(
            locales=[c.locale for c in sendable if c.contact_id in soft_opt_in],
            workspace=message.workspace,
        )
        if soft_opt_in
        else {}
    )
    # One batch per content language (delivery/variants.py): an email request's
    # personalizations then share one subject and body, as SendGrid requires.
    languages = message_languages(message=message)
    batches: dict[str, list[OutboundMessage]] = {}
    for c in sendable:
        batches.setdefault(languages.language_for(locale=c.locale, channel=channel), []).append(
            _outbound(
                c,
                channel=channel,
                unsubscribe=unsubscribe,
                quiet_from=quiet_from,
                opt_out=opt_out_texts[c.locale] if c.contact_id in soft_opt_in else "",
            )
        )
    for language, outbound in sorted(batches.items()):
        if progress.lost:
            return
        content = channel_content(
            message=message, channel=channel, language=language, languages=languages
        )
        if getattr(sender, "reports_progress", False):
            outcomes = sender.send_batch(content=content, messages=outbound, progress=progress)
        else:
            # A sender that cannot say when each request leaves: its whole batch may have.
            ours = set(progress.leaving([m.delivery_id for m in outbound]))
            outcomes = sender.send_batch(
                content=content, messages=[m for m in outbound if m.delivery_id in ours]
            )
        # What the sender already reported is skipped; the rest (answers without a request).
        progress.settled(outcomes)


def _interrupted(
    *, progress: ChunkProgress, exc: Exception, report: ChunkReport, retries: int
) -> None:
    """Redis or PostgreSQL stopped the chunk before its next request left: the rows that never
    left go back to the queue (attempt given back, not before a back-off) for the task's retry.

    Rows whose request left keep their answer (written again here if it was not yet) or, with
    none, stay `sending` for the sweeper to call unknown once the claim is closed.
    """
    code = exc.code if isinstance(exc, SendInterrupted) else DATABASE_UNAVAILABLE
    detail = exc.detail if isinstance(exc, SendInterrupted) else f"{type(exc).__name__}: {exc}"
    delay = interrupt_backoff_s(retries)
    report.interrupted = code
    report.retry_after_s = max(report.retry_after_s, delay)
    logger.warning(
        "chunk %s stopped before its next request left (%s: %s): %s claimed rows unanswered",
        progress.channel,
        code,
        detail,
        len(progress.unsettled()),
    )
    # Answers already in hand (handed over to be written with the next request, or whose write
    # failed) are kept whatever happens next: those requests did leave.
    progress.unrecorded.update({o.delivery_id: o for o in progress.pending})
    progress.pending = []
    if progress.unrecorded:
        try:
            progress.settled(list(progress.unrecorded.values()))
        except SendInterrupted:
            # The answers are in this log line at least: an operator can reconcile the rows the
            # sweeper will call unknown.
            logger.error(
                "provider answers not recorded: %s",
                [
                    (o.delivery_id, type(o).__name__, getattr(o, "provider_message_id", ""))
                    for o in progress.unrecorded.values()
                ],
            )
    # The pace and the progress record fail before the request is written: the request being
    # prepared did not leave either. After an answer that could not be written, it did.
    in_flight = set() if code in NEVER_LEFT else progress.leaving_ids
    unsent = sorted(progress.unsettled() - in_flight - set(progress.unrecorded))
    not_before = timezone.now() + timedelta(seconds=delay)
    try:
        moved = db_write_durably(
            lambda: deliveries_requeue_unsent(
                ids=unsent,
                claim_id=progress.claim_id,
                not_before=not_before,
                error_code=code,
                error_text=f"not sent, retried later: {detail}",
            ),
            what="requeue unsent",
        )
    except DB_CONNECTION_ERRORS:
        # PostgreSQL is gone: the claim goes stale and the sweeper requeues these rows.
        logger.exception("could not requeue %s unsent rows: left to the sweeper", len(unsent))
        return
    report.requeued += len(moved)
    report.retry_ids.extend(moved)


def _outcomes_record(
    *,
    outcomes: Sequence[Outcome],
    claimed: dict[int, ClaimedDelivery],
    channel: str,
    provider: str,
    report: ChunkReport,
    quiet: QuietRules | None = None,
    claim_id: int | None = None,
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
            report.suppressed += _suppress(
                outcome, claimed[outcome.delivery_id], channel, claim_id=claim_id
            )
    for name, group in sent_by_provider.items():
        report.sent += len(
            deliveries_mark_sent(
                provider_ids={i: o.provider_message_id for i, o in group.items()},
                provider=name,
                cost_units={i: o.cost_units for i, o in group.items()},
                claim_id=claim_id,
            )
        )
    for (status, code, text), ids in grouped.items():
        moved = deliveries_transition(
            ids=ids,
            target=status,
            detail=f"{code}: {text}",
            fields={"error_code": code[:50], "error_text": text[:500]},
            claim_id=claim_id,
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
            claim_id=claim_id,
        )


def _quiet_defer(
    *,
    ids: list[int],
    claimed: dict[int, ClaimedDelivery],
    channel: str,
    report: ChunkReport,
    quiet: QuietRules | None,
    claim_id: int | None = None,
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
                claim_id=claim_id,
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
    claim_id: int | None = None,
) -> None:
    ids = [item.delivery_id for item in items]
    if code == QUIET_HOURS_CODE:
        _quiet_defer(
            ids=ids, claimed=claimed, channel=channel, report=report, quiet=quiet,
            claim_id=claim_id,
        )  # fmt: skip
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
            claim_id=claim_id,
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
        claim_id=claim_id,
    )
    report.retry_ids.extend(moved)
    report.retry_after_s = max(report.retry_after_s, delay)


def _suppress(
    outcome: Suppressed, claimed: ClaimedDelivery, channel: str, *, claim_id: int | None = None
) -> int:
    from contacts.consent import Evidence, consent_revoke, suppression_add
    from contacts.models import ConsentSource, Contact, Purpose

    moved = deliveries_transition(
        ids=[outcome.delivery_id],
        target=DeliveryStatus.SUPPRESSED,
        detail=f"{outcome.reason}: {outcome.text}",
        fields={"error_code": outcome.code[:50], "error_text": outcome.text[:500]},
        claim_id=claim_id,
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
    """The admin's "retry failed": only failed campaign rows go back; sent or unknown ones never
    do. A failed system mail (double opt-in, preference link) is not retried: its link was made
    for that ask, and a second ask of the same mail may be queued already; the person (or a
    member) asks again, which sends a fresh one."""
    failed = list(
        Delivery.objects.filter(
            id__any_of=list(ids), status=DeliveryStatus.FAILED, message__isnull=False
        ).values_list("id", flat=True)
    )
    return deliveries_enqueue(ids=failed, send=send)
