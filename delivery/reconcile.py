"""Reconciling `unknown` SMS with Twilio's own list of messages (invariant 4).

The sweeper picks the rows due for a lookup and hands them to the SMS queue (the workers there
hold Twilio's settings and the workspaces' credentials); the chunk task looks them up before it
claims, so a row found never to have left is sent by that same task.

An SMS row is `unknown` when its request may have reached Twilio: its worker was lost while the
request was leaving (the sweeper, `worker_lost`), or Twilio gave no usable answer (a read timeout,
a dropped connection, a 5xx). Twilio's create is not idempotent, so the row is never simply sent
again. Twilio does list what it accepted (``GET .../Messages.json?To=...&DateSent>=...``), so each
such row is looked up there, by its number, in the window of its attempt:

- **found** (a message to that number, with the body this row renders to, created within the
  attempt's window, whose SID no other row holds): it left. The row becomes `sent` with that SID
  (its status callbacks, kept as unmatched receipts, then match on the sweeper's re-apply), and a
  final status Twilio already lists (delivered, undelivered, failed) is applied as a callback
  would be.
- **not found**, once it is sure the request can no longer appear: it never left. The row goes
  back to `queued` (claim let go, attempt kept, so a provider that keeps failing this way ends
  the row `failed` after DELIVERY_MAX_ATTEMPTS) and is sent again. Nothing that left is sent twice.
- **no usable answer** (Twilio unreachable, slow past TWILIO_TIMEOUT_S, throttled with 429,
  refusing the credentials, several messages in the window that do not match): the row stays
  `unknown` and is looked up again after a back-off, at most DELIVERY_SMS_RECONCILE_MAX_TRIES
  times; then it keeps `unknown` with error code `unreconciled`, shown to the marketer.

**When "not found" means "never left".** Let U be when the row became unknown (`failed_at`). The
sweeper decided under the claim's row lock, so the request's "leaving" record was written before
U; the sender starts a request at most DELIVERY_SMS_LEAVE_MAX_S after that record or not at all
(delivery/providers/twilio_sms.py), even in a process that was frozen rather than killed, and its
connection attempt ends within TWILIO_TIMEOUT_S. A worker that recorded the unknown itself did so
after its request was written. So no request of this attempt reaches Twilio after
    U + DELIVERY_SMS_LEAVE_MAX_S + TWILIO_TIMEOUT_S,
and "never left" is only concluded once Twilio lists nothing DELIVERY_SMS_RECONCILE_LAG_S after
that (Twilio finishing a request whose client was gone, its list catching up). Before then an
empty list proves nothing and the row waits. Twilio fills `date_sent` only once a message leaves
the account's queue (a Messaging Service may hold messages for hours), and a DateSent filter
leaves such a message out; so an empty dated lookup is followed by one without the date before
anything is concluded. A window that cannot be read in full (more pages than allowed), or a
workspace whose Twilio credentials changed since the attempt (the message may be in the other
account), never concludes "never left".
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from contacts.models import Channel
from delivery.claim import _merge_fields
from delivery.credentials import CredentialsUnreadable, credentials_row, twilio_account
from delivery.merge import merge_template_compile
from delivery.models import Delivery, DeliveryEvent
from delivery.provider_events import StatusEvent
from delivery.providers.base import ProviderError, ProviderPermanent, ProviderThrottled
from delivery.providers.twilio_sms import ListedSms, twilio_client, twilio_messages_to
from delivery.states import DeliveryStatus
from delivery.templating import MarketerTemplateError
from delivery.transitions import _events_append, deliveries_transition

logger = logging.getLogger(__name__)

PROVIDER = "twilio"
# The row stays `unknown` for good: Twilio could not tell, or not clearly enough.
UNRECONCILED = "unreconciled"
# The row went back to the queue: Twilio never listed its request.
NEVER_LEFT = "reconciled_never_left"
# Timeline notes of lookups without a conclusion; they count the tries of an attempt.
NOTE_PREFIX = "reconcile: "
PAGE_SIZE = 100
MAX_PAGES = 10
# Twilio statuses that a status callback would apply on top of `sent`.
FINAL_LISTED = frozenset({"delivered", "undelivered", "failed"})

Lister = Callable[..., tuple[list[ListedSms], bool]]


@dataclass(frozen=True)
class UnknownSms:
    delivery_id: int
    workspace_id: int
    to: str
    body: str | None  # None: the template no longer renders
    sending_at: datetime
    unknown_at: datetime
    attempt: int


@dataclass
class Verdict:
    kind: str  # "found", "never_left", "wait", "inconclusive"
    detail: str = ""
    listed: ListedSms | None = None
    retry_after_s: float = 0.0
    # Twilio itself failed (down, slow, throttling): the account's other rows wait their turn.
    account_unavailable: bool = False


@dataclass
class ReconcileReport:
    sent: int = 0
    requeued: int = 0
    failed: int = 0
    waiting: int = 0
    inconclusive: int = 0
    unreconciled: int = 0
    requeued_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "reconciled_sent": self.sent,
            "reconciled_requeued": self.requeued,
            "reconciled_failed": self.failed,
            "reconcile_waiting": self.waiting,
            "reconcile_inconclusive": self.inconclusive,
            "unreconciled": self.unreconciled,
        }


def sent_by_latest(unknown_at: datetime) -> datetime:
    """The latest moment a request of an attempt that became unknown at `unknown_at` can have
    reached Twilio (see the module's docstring)."""
    return unknown_at + timedelta(
        seconds=settings.DELIVERY_SMS_LEAVE_MAX_S + settings.TWILIO_TIMEOUT_S
    )


def never_left_from(unknown_at: datetime) -> datetime:
    """From when an empty list proves that the attempt's request never left."""
    return sent_by_latest(unknown_at) + timedelta(seconds=settings.DELIVERY_SMS_RECONCILE_LAG_S)


def sms_unknown_due(*, now: datetime, limit: int | None = None) -> list[int]:
    """The sweeper's part: `unknown` SMS rows due for a lookup, handed out for one.

    The sweeper does not call Twilio itself: it sends these ids to the SMS queue in chunk tasks,
    whose workers hold the provider's settings and credentials and reconcile them first
    (delivery/tasks.py). Each row is leased for DELIVERY_QUEUED_STALE_S (its `not_before`), so
    the next sweeps do not hand it out again while a busy SMS worker has not got to it; a lost
    task message only delays the lookup to the lease's end.
    """
    ids = [
        row.delivery_id
        for row in _due(now=now, limit=limit or settings.DELIVERY_SMS_RECONCILE_BATCH)
    ]
    if ids:
        Delivery.objects.filter(id__in=ids, status=DeliveryStatus.UNKNOWN).update(
            not_before=now + timedelta(seconds=settings.DELIVERY_QUEUED_STALE_S)
        )
    return ids


def sms_unknown_reconcile(
    *,
    ids: Sequence[int] | None = None,
    now: datetime | None = None,
    limit: int | None = None,
    lister: Lister | None = None,
) -> ReconcileReport:
    """Look up `unknown` SMS rows in Twilio's list and settle what it tells (see above).

    With `ids` (a chunk task handed them out), those of them still unknown and past their first
    look, whatever their lease; without, every due row. Rows put back in the queue are in
    ``report.requeued_ids``. Every write is guarded by the row still being the same `unknown`
    attempt, so two lookups, or a late provider callback, cannot make it act twice.
    """
    now = now or timezone.now()
    lister = lister or twilio_messages_to
    report = ReconcileReport()
    rows = _due(now=now, limit=limit or settings.DELIVERY_SMS_RECONCILE_BATCH, ids=ids)
    if not rows:
        return report
    tries = _tries(rows)
    by_workspace: dict[int, list[UnknownSms]] = defaultdict(list)
    for row in rows:
        by_workspace[row.workspace_id].append(row)
    for workspace_id, workspace_rows in by_workspace.items():
        _workspace_reconcile(
            workspace_id=workspace_id,
            rows=workspace_rows,
            tries=tries,
            now=now,
            lister=lister,
            report=report,
        )
    if report.sent or report.requeued or report.failed or report.unreconciled:
        logger.warning(
            "unknown SMS reconciled with Twilio: %s sent, %s queued again, %s failed, "
            "%s left unknown for good",
            report.sent,
            report.requeued,
            report.failed,
            report.unreconciled,
        )
    return report


def _due(*, now: datetime, limit: int, ids: Sequence[int] | None = None) -> list[UnknownSms]:
    """Unknown SMS rows whose request can have reached Twilio by now and whose next look is due
    (or, with `ids`, those of them past their first look).

    The first look waits until the request, had it left, has surely reached Twilio: before that
    a found message is as likely to come as an empty list is to mislead.
    """
    first_look_before = now - timedelta(
        seconds=settings.DELIVERY_SMS_LEAVE_MAX_S + settings.TWILIO_TIMEOUT_S
    )
    due = (
        Q(id__in=list(ids))
        if ids is not None
        else Q(not_before__isnull=True) | Q(not_before__lte=now)
    )
    values = (
        Delivery.objects.filter(
            due,
            channel=Channel.SMS,
            status=DeliveryStatus.UNKNOWN,
            failed_at__lte=first_look_before,
        )
        .exclude(error_code=UNRECONCILED)
        .order_by("failed_at", "id")
        .values(
            "id",
            "workspace_id",
            "attempt",
            "sending_at",
            "failed_at",
            "created_at",
            "message__sms_text",
            "contact__phone",
            "contact__first_name",
            "contact__last_name",
            "contact__email",
            "contact__attributes",
        )[:limit]
    )
    rows = []
    renderers: dict[str, Any] = {}
    for value in values:
        text = value["message__sms_text"] or ""
        if text not in renderers:
            try:
                renderers[text] = merge_template_compile(source=text)
            except MarketerTemplateError:
                renderers[text] = None
        render = renderers[text]
        fields = _merge_fields(
            {
                "first_name": value["contact__first_name"],
                "last_name": value["contact__last_name"],
                "email": value["contact__email"],
                "attributes": value["contact__attributes"],
            }
        )
        body: str | None = None
        if render is not None:
            try:
                body = render(fields).strip()
            except MarketerTemplateError:
                body = None
        rows.append(
            UnknownSms(
                delivery_id=value["id"],
                workspace_id=value["workspace_id"],
                to=str(value["contact__phone"] or ""),
                body=body,
                sending_at=value["sending_at"] or value["created_at"],
                unknown_at=value["failed_at"],
                attempt=value["attempt"],
            )
        )
    return rows


def _tries(rows: Sequence[UnknownSms]) -> dict[int, int]:
    """Lookups without a conclusion so far, per row, in its current unknown attempt."""
    since = {row.delivery_id: row.unknown_at for row in rows}
    counts: dict[int, int] = defaultdict(int)
    notes = DeliveryEvent.objects.filter(
        delivery_id__in=list(since),
        status=DeliveryStatus.UNKNOWN,
        detail__startswith=NOTE_PREFIX,
    ).values_list("delivery_id", "occurred_at")
    for delivery_id, occurred_at in notes:
        if occurred_at >= since[delivery_id]:
            counts[delivery_id] += 1
    return counts


def _workspace_reconcile(
    *,
    workspace_id: int,
    rows: list[UnknownSms],
    tries: dict[int, int],
    now: datetime,
    lister: Lister,
    report: ReconcileReport,
) -> None:
    """One workspace's rows, through the account its sends use (its own, or the install's)."""
    row = credentials_row(workspace_id=workspace_id)
    try:
        account = twilio_account(row)
    except CredentialsUnreadable as exc:
        for item in rows:
            _inconclusive(item, tries=tries, now=now, report=report, detail=f"credentials: {exc}")
        return
    # The account may have changed since an attempt: its message would be in the other one.
    changed_at = row.updated_at if row is not None else None
    client = twilio_client(
        account_sid=account.account_sid if account else None,
        auth_token=account.auth_token if account else None,
    )
    # SIDs this run has given to a row: two rows never take the same listed message.
    used: set[str] = set()
    try:
        for index, item in enumerate(rows):
            verdict = _look_up(
                item, client=client, lister=lister, now=now, used=used, changed_at=changed_at
            )
            _apply(item, verdict, tries=tries, now=now, report=report)
            if verdict.listed is not None:
                used.add(verdict.listed.sid)
            if verdict.account_unavailable:
                # Asking again at once would only meet the same outage or throttle: the rest
                # wait for the next sweep, with no try counted against them.
                report.waiting += len(rows) - index - 1
                return
    finally:
        session = getattr(client.http_client, "session", None)
        if isinstance(session, requests.Session):
            session.close()


def _look_up(  # noqa: PLR0911 - one return per verdict
    item: UnknownSms,
    *,
    client: Any,
    lister: Lister,
    now: datetime,
    used: set[str],
    changed_at: datetime | None,
) -> Verdict:
    if not item.to:
        return Verdict("inconclusive", "no phone number on the contact any more")
    skew = timedelta(seconds=settings.DELIVERY_SMS_RECONCILE_SKEW_S)
    window = (item.sending_at - skew, sent_by_latest(item.unknown_at) + skew)
    candidates: list[ListedSms] = []
    # Dated first (what Twilio has sent, cheap for a number texted often), then undated for a
    # message still in the account's queue, which a DateSent filter leaves out.
    for sent_since in ((item.sending_at - skew).date(), None):
        try:
            listed, complete = lister(
                client=client,
                to=item.to,
                sent_since=sent_since,
                page_size=PAGE_SIZE,
                max_pages=MAX_PAGES,
            )
        except ProviderThrottled as exc:
            return Verdict(
                "inconclusive", f"throttled: {exc}", retry_after_s=exc.retry_after_s,
                account_unavailable=True,
            )  # fmt: skip
        except ProviderPermanent as exc:
            return Verdict("inconclusive", f"refused: {exc}", account_unavailable=True)
        except ProviderError as exc:
            return Verdict("inconclusive", f"no answer: {exc}", account_unavailable=True)
        candidates = _in_window(listed, to=item.to, window=window, used=used)
        if candidates:
            return _match(item, candidates)
        if not complete:
            return Verdict("inconclusive", "too many messages to this number to read them all")
    if now < never_left_from(item.unknown_at):
        return Verdict("wait", "not listed yet")
    if changed_at is not None and changed_at > item.sending_at:
        return Verdict("inconclusive", "the workspace's Twilio account changed since the attempt")
    return Verdict("never_left", "Twilio lists no message to this number for the attempt")


def _in_window(
    listed: Sequence[ListedSms], *, to: str, window: tuple[datetime, datetime], used: set[str]
) -> list[ListedSms]:
    start, end = window
    taken = used | set(
        Delivery.objects.filter(
            channel=Channel.SMS, provider_message_id__in=[m.sid for m in listed]
        ).values_list("provider_message_id", flat=True)
    )
    return [
        m
        for m in listed
        if m.to == to
        and m.direction.startswith("outbound")
        and m.sid not in taken
        and m.date_created is not None
        and start <= m.date_created <= end
    ]


def _match(item: UnknownSms, candidates: list[ListedSms]) -> Verdict:
    same = [m for m in candidates if item.body is not None and m.body.strip() == item.body]
    if not same:
        # Something went to this number then, but not this text (the contact's merge fields
        # changed, Twilio redacted the body, another message): not ours to claim, and not proof
        # that ours never left either.
        return Verdict("inconclusive", f"{len(candidates)} message(s) in the window, none matching")
    # Two copies would already be a duplicate: the earliest is the one this attempt sent.
    earliest = min(same, key=lambda m: m.date_created or item.sending_at)
    return Verdict("found", f"Twilio lists {earliest.sid} ({earliest.status})", listed=earliest)


def _apply(
    item: UnknownSms, verdict: Verdict, *, tries: dict[int, int], now: datetime,
    report: ReconcileReport,
) -> None:  # fmt: skip
    if verdict.kind == "found" and verdict.listed is not None:
        _found(item, verdict.listed, report=report)
    elif verdict.kind == "never_left":
        _never_left(item, report=report, now=now)
    elif verdict.kind == "wait":
        _wait(item, until=never_left_from(item.unknown_at))
        report.waiting += 1
    else:
        _inconclusive(
            item, tries=tries, now=now, report=report, detail=verdict.detail,
            retry_after_s=verdict.retry_after_s,
        )  # fmt: skip


def _found(item: UnknownSms, listed: ListedSms, *, report: ReconcileReport) -> None:
    moved = deliveries_transition(
        ids=[item.delivery_id],
        target=DeliveryStatus.SENT,
        sources=[DeliveryStatus.UNKNOWN],
        detail=f"reconciled: Twilio lists {listed.sid} ({listed.status})",
        fields={
            "provider": PROVIDER,
            "provider_message_id": listed.sid,
            "error_code": "",
            "error_text": "",
            "not_before": None,
        },
    )
    if not moved:
        return
    report.sent += 1
    if listed.status in FINAL_LISTED:
        from delivery.status import status_events_apply

        # What the status callback says, in case it came and went before the SID was known.
        status_events_apply(
            events=[
                StatusEvent(
                    provider=PROVIDER,
                    message_id=listed.sid,
                    status=listed.status,
                    error_code=listed.error_code,
                    recipient=listed.to,
                )
            ]
        )


def _never_left(item: UnknownSms, *, report: ReconcileReport, now: datetime) -> None:
    if item.attempt >= settings.DELIVERY_MAX_ATTEMPTS:
        moved = deliveries_transition(
            ids=[item.delivery_id],
            target=DeliveryStatus.FAILED,
            sources=[DeliveryStatus.UNKNOWN],
            detail=f"gave up after {item.attempt} attempts: none reached Twilio",
            fields={
                "error_code": NEVER_LEFT,
                "error_text": "Twilio never listed this message; attempts used up",
            },
        )
        report.failed += len(moved)
        return
    # Guarded by the very unknown attempt looked up (status and when it became unknown), so a
    # callback or another sweeper that settled it meanwhile wins. The attempt is kept: a provider
    # that keeps failing this way uses the row's attempts up.
    with transaction.atomic():
        changed = Delivery.objects.filter(
            id=item.delivery_id, status=DeliveryStatus.UNKNOWN, failed_at=item.unknown_at
        ).update(
            status=DeliveryStatus.QUEUED,
            updated_at=now,
            queued_at=now,
            not_before=None,
            error_code=NEVER_LEFT,
            error_text="Twilio never listed this message: sent again",
            claim=None,
        )
        moved = [item.delivery_id] if changed else []
        _events_append(
            ids=moved, status=DeliveryStatus.QUEUED, at=now, detail=f"retry: {NEVER_LEFT}"
        )
    report.requeued += len(moved)
    report.requeued_ids.extend(moved)


def _wait(item: UnknownSms, *, until: datetime) -> None:
    Delivery.objects.filter(
        id=item.delivery_id, status=DeliveryStatus.UNKNOWN, failed_at=item.unknown_at
    ).update(not_before=until)


def _inconclusive(
    item: UnknownSms,
    *,
    tries: dict[int, int],
    now: datetime,
    report: ReconcileReport,
    detail: str,
    retry_after_s: float = 0.0,
) -> None:
    done = tries.get(item.delivery_id, 0) + 1
    tries[item.delivery_id] = done
    guard = Delivery.objects.filter(
        id=item.delivery_id, status=DeliveryStatus.UNKNOWN, failed_at=item.unknown_at
    )
    with transaction.atomic():
        if done >= settings.DELIVERY_SMS_RECONCILE_MAX_TRIES:
            moved = guard.update(
                error_code=UNRECONCILED,
                error_text=f"Twilio could not tell whether it was sent: {detail}"[:500],
                not_before=None,
                updated_at=now,
            )
            report.unreconciled += moved
            note = f"{NOTE_PREFIX}gave up after {done} lookups: {detail}"
        else:
            # Doubling from the sweep's own interval, jittered, and never sooner than Twilio asked.
            base = settings.DELIVERY_SWEEP_INTERVAL_S * 2 ** (done - 1)
            delay = max(retry_after_s, random.uniform(base / 2, base))  # noqa: S311 - jitter  # nosec B311
            moved = guard.update(not_before=now + timedelta(seconds=delay), updated_at=now)
            report.inconclusive += moved
            note = (
                f"{NOTE_PREFIX}try {done} of {settings.DELIVERY_SMS_RECONCILE_MAX_TRIES}: {detail}"
            )
        if moved:
            _events_append(
                ids=[item.delivery_id], status=DeliveryStatus.UNKNOWN, at=now, detail=note
            )
