"""Provider reports applied to deliveries and consent: status events, bounces, SMS keywords.

Webhook views verify and parse (delivery.provider_events), keep a receipt, then call these use
cases. Every status change is a guarded transition (delivery.transitions), so a repeated, late or
out-of-order event can only move a row forward or do nothing. Events naming a provider message id
we have not written yet (the callback overtook the send's own bookkeeping) come back as
``pending`` and wait on the receipt for ``receipts_reapply``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from contacts.consent import Evidence, consent_grant, consent_revoke, suppression_add
from contacts.models import (
    Channel,
    Consent,
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    ConsentState,
    Contact,
    Purpose,
    SuppressionReason,
)
from delivery.models import Delivery, ProviderReceipt, ReceiptVerdict
from delivery.provider_events import OptAction, OptEvent, StatusEvent
from delivery.signals import whatsapp_undelivered
from delivery.states import DeliveryStatus
from delivery.transitions import deliveries_transition

logger = logging.getLogger(__name__)

S = DeliveryStatus

# anymail's normalised event type -> delivery status (None: no status change).
EMAIL_STATUS: dict[str, str | None] = {
    "queued": S.SENT,  # SendGrid "processed": accepted, which settles an unknown send
    "sent": S.SENT,
    "delivered": S.DELIVERED,
    "opened": S.OPENED,
    "clicked": S.CLICKED,
    "bounced": S.BOUNCED,
    "rejected": S.FAILED,  # SendGrid "dropped"
    "failed": S.FAILED,
    "deferred": None,  # SendGrid keeps trying; nothing is settled yet
    "complained": None,
    "unsubscribed": None,
}
# Twilio MessageStatus -> delivery status.
SMS_STATUS: dict[str, str | None] = {
    "accepted": S.SENT,
    "scheduled": S.SENT,
    "queued": S.SENT,
    "sending": S.SENT,
    "sent": S.SENT,
    "delivered": S.DELIVERED,
    "read": S.OPENED,
    "undelivered": S.UNDELIVERED,
    "failed": S.FAILED,
    "canceled": S.FAILED,
}
# WhatsApp Cloud API status webhook ("statuses[].status") -> delivery status. "failed" after
# the send was accepted is a message that left and did not arrive.
WHATSAPP_STATUS: dict[str, str | None] = {
    "sent": S.SENT,
    "delivered": S.DELIVERED,
    "read": S.OPENED,
    "failed": S.UNDELIVERED,
    "deleted": None,
}
# A WhatsApp message reached its contact only once delivered or read.
WHATSAPP_REACHED_STATUSES: frozenset[str] = frozenset({S.DELIVERED, S.OPENED, S.CLICKED})
# Accepted (or maybe accepted) and not settled yet: it may still arrive.
WHATSAPP_SETTLING_STATUSES: frozenset[str] = frozenset({S.SENDING, S.SENT, S.UNKNOWN})
# The reroute's "already reached on WhatsApp": no fallback for these contacts (yet). Undelivered,
# failed, bounced, suppressed, cancelled and never-sent messages get the fallback.
WHATSAPP_NO_FALLBACK_STATUSES: frozenset[str] = (
    WHATSAPP_REACHED_STATUSES | WHATSAPP_SETTLING_STATUSES
)
# Messages that left (accepted, or maybe): a WhatsApp post with any of these was published.
WHATSAPP_LEFT_STATUSES: frozenset[str] = frozenset(
    {S.SENT, S.DELIVERED, S.OPENED, S.CLICKED, S.UNKNOWN, S.UNDELIVERED, S.BOUNCED}
)
# Progress order: applying a batch in this order lets "delivered" and "bounced" for the same
# message in one POST both land, whatever order the provider listed them in.
_ORDER: list[str] = [S.SENT, S.DELIVERED, S.OPENED, S.CLICKED, S.UNDELIVERED, S.FAILED, S.BOUNCED]

# Twilio error codes that say the number itself is unusable (docs: twilio.com/docs/api/errors).
# 30003 (handset off or out of coverage), 30007 (carrier filtering) and 30008 are about this
# message, not the number: they fail the delivery and suppress nothing.
SMS_INVALID_NUMBER_CODES = frozenset({"21211", "21614", "30005", "30006"})
SMS_OPTED_OUT_CODES = frozenset({"21610"})


@dataclass
class ApplyResult:
    matched: int = 0
    moved: int = 0
    pending: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # The workspaces of the deliveries the events matched.
    workspace_ids: set[int] = dataclasses.field(default_factory=set)

    @property
    def workspace_id(self) -> int | None:
        """The one workspace every event of the request belongs to, or None (install-level):
        an unmatched event, or events of several workspaces, keep the receipt for operators."""
        if self.pending or len(self.workspace_ids) != 1:
            return None
        return next(iter(self.workspace_ids))


def receipt_workspace_settle(*, receipt: ProviderReceipt, result: ApplyResult) -> None:
    """Give the receipt its workspace once all its events matched one workspace's messages;
    until then (or when they span several) it stays install-level, for operators only."""
    workspace_id = result.workspace_id
    if workspace_id is not None and receipt.workspace_id != workspace_id:
        receipt.workspace_id = workspace_id
        ProviderReceipt.objects.filter(pk=receipt.pk).update(workspace_id=workspace_id)


def status_event_to_json(event: StatusEvent) -> dict[str, Any]:
    return {
        "provider": event.provider,
        "message_id": event.message_id,
        "status": event.status,
        "error_code": event.error_code,
        "error_text": event.error_text,
        "recipient": event.recipient,
        "event_id": event.event_id,
        "delivery_id": event.delivery_id,
        # What the side effects read from the provider's own event (SendGrid drop reason).
        "raw": {k: str(event.raw[k]) for k in ("reason", "type") if k in event.raw},
    }


def status_event_from_json(data: dict[str, Any]) -> StatusEvent:
    fields = {f.name for f in dataclasses.fields(StatusEvent)} - {"timestamp"}
    return StatusEvent(**{k: v for k, v in data.items() if k in fields})


def _channel_for(provider: str) -> str:
    return {"twilio": Channel.SMS, "whatsapp": Channel.WHATSAPP}.get(provider, Channel.EMAIL)


_STATUS_TABLES: dict[str, dict[str, str | None]] = {
    Channel.SMS: SMS_STATUS,
    Channel.WHATSAPP: WHATSAPP_STATUS,
}


def status_events_apply(*, events: Sequence[StatusEvent]) -> ApplyResult:
    """Apply provider status events to the deliveries they name (by provider message id)."""
    result = ApplyResult()
    by_channel: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.message_id:
            by_channel[_channel_for(event.provider)].add(event.message_id)
    known: dict[tuple[str, str], tuple[int, int, int]] = {}
    for channel, message_ids in by_channel.items():
        rows = Delivery.objects.filter(
            channel=channel, provider_message_id__in=list(message_ids)
        ).values_list("provider_message_id", "id", "contact_id", "workspace_id")
        for provider_id, delivery_id, contact_id, workspace_id in rows:
            known[(channel, provider_id)] = (delivery_id, contact_id, workspace_id)
    known.update(_unknown_emails_settled(events=events, known=known))
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    effects: list[tuple[StatusEvent, int]] = []
    for event in events:
        channel = _channel_for(event.provider)
        hit = known.get((channel, event.message_id))
        if hit is None:
            result.pending.append(status_event_to_json(event))
            continue
        result.matched += 1
        delivery_id, contact_id, workspace_id = hit
        result.workspace_ids.add(workspace_id)
        table = _STATUS_TABLES.get(channel, EMAIL_STATUS)
        target = table.get(event.status)
        if target is not None:
            groups[(target, event.error_code[:50], event.error_text[:500])].append(delivery_id)
        effects.append((event, contact_id))
    whatsapp_failed: list[int] = []
    # Only a batch holding WhatsApp statuses pays for finding the failed ones' contacts.
    has_whatsapp = Channel.WHATSAPP in by_channel
    with transaction.atomic():
        for target, code, text in sorted(groups, key=lambda key: _ORDER.index(key[0])):
            failing = target in (S.FAILED, S.UNDELIVERED, S.BOUNCED)
            moved = deliveries_transition(
                ids=groups[(target, code, text)],
                target=target,
                detail=f"provider: {code} {text}".strip() if failing else "provider report",
                fields={"error_code": code, "error_text": text} if failing else None,
            )
            result.moved += len(moved)
            if failing and has_whatsapp:
                whatsapp_failed += moved
        if whatsapp_failed:
            _whatsapp_undelivered_announce(ids=whatsapp_failed)
        contacts = Contact.objects.in_bulk([contact_id for _, contact_id in effects])
        for event, contact_id in effects:
            _side_effects(event=event, contact=contacts[contact_id])
    return result


def _unknown_emails_settled(
    *, events: Sequence[StatusEvent], known: dict[tuple[str, str], tuple[int, int, int]]
) -> dict[tuple[str, str], tuple[int, int, int]]:
    """Email rows left `unknown` (their request may have left, its answer never came back) that
    an event shows did reach the provider: matched by the delivery id we send as a custom arg,
    and only when the event's recipient is the row's own address, so an event naming another
    row's id settles nothing. The row keeps the provider's message id from then on, so the
    events after it match it the usual way."""
    wanted = {
        event.delivery_id: event
        for event in events
        if event.delivery_id is not None
        and event.message_id
        and _channel_for(event.provider) == Channel.EMAIL
        and (Channel.EMAIL, event.message_id) not in known
    }
    if not wanted:
        return {}
    rows = Delivery.objects.filter(
        id__in=list(wanted), channel=Channel.EMAIL, status=S.UNKNOWN, provider_message_id=""
    ).values_list("id", "contact_id", "workspace_id", "address", "contact__email")
    settled: dict[tuple[str, str], tuple[int, int, int]] = {}
    for delivery_id, contact_id, workspace_id, address, email in rows:
        event = wanted[delivery_id]
        if event.recipient.strip().lower() != (address or email or "").strip().lower():
            continue
        Delivery.objects.filter(id=delivery_id, provider_message_id="").update(
            provider_message_id=event.message_id[:100]
        )
        settled[(Channel.EMAIL, event.message_id)] = (delivery_id, contact_id, workspace_id)
    return settled


def _whatsapp_undelivered_announce(*, ids: list[int]) -> None:
    """After commit, tell listeners which contacts' WhatsApp messages failed (campaigns gives
    them the fallback while their campaign is rerouted)."""
    rows = Delivery.objects.filter(id__in=ids, channel=Channel.WHATSAPP).values_list(
        "message_id", "contact_id"
    )
    message_contacts: dict[int, list[int]] = defaultdict(list)
    for message_id, contact_id in rows:
        message_contacts[message_id].append(contact_id)
    if message_contacts:
        transaction.on_commit(
            lambda: whatsapp_undelivered.send(
                sender=Delivery, message_contacts=dict(message_contacts)
            )
        )


def _first_time(event: StatusEvent) -> bool:
    # SendGrid repeats events (its own retries come with a fresh signature): the event id keeps
    # a consent change from being logged twice. Suppressions are idempotent anyway.
    if not event.event_id:
        return True
    return bool(
        cache.add(f"delivery:event-seen:{event.provider}:{event.event_id}", 1, timeout=7 * 86400)
    )


def _side_effects(*, event: StatusEvent, contact: Contact) -> None:
    if contact.erased_at is not None:
        return  # an erased contact keeps no consent history to add to
    if event.provider == "whatsapp":
        return  # a status only: the send itself suppresses unusable numbers (131026, 131050)
    detail = f"{event.provider} {event.status}: {event.error_code} {event.error_text}"[:500]
    if event.provider != "twilio":
        reason: tuple[str, str] | None = {
            "bounced": (SuppressionReason.HARD_BOUNCE, ConsentSource.BOUNCE),
            "complained": (SuppressionReason.COMPLAINT, ConsentSource.COMPLAINT),
        }.get(event.status)
        if event.status == "bounced" and str(event.raw.get("type", "")).lower() == "blocked":
            reason = None  # an ISP block is about this send, not a dead address
        if event.status == "rejected":
            reason = _drop_suppression(event)
            if event.error_code == "unsubscribed":
                _email_unsubscribe(contact=contact, event=event)
        if reason is not None:
            suppression_add(
                contact=contact,
                channel=Channel.EMAIL,
                reason=reason[0],
                source=reason[1],
                detail=detail,
            )
            if event.status == "complained":
                # A spam report is the person withdrawing consent, not only a bad address. (A
                # drop for a "spam reporting address" is the account's list speaking, maybe
                # about mail of another sender on it: a suppression, no consent change.)
                _email_unsubscribe(contact=contact, event=event, source=ConsentSource.COMPLAINT)
        elif event.status == "unsubscribed":
            _email_unsubscribe(contact=contact, event=event)
        return
    if event.error_code in SMS_OPTED_OUT_CODES and _first_time(event):
        _sms_revoke_all(contact=contact, note=detail, source_detail=event.message_id)
    elif event.error_code in SMS_INVALID_NUMBER_CODES:
        suppression_add(
            contact=contact,
            channel=Channel.SMS,
            reason=SuppressionReason.INVALID_NUMBER,
            source=ConsentSource.PROVIDER,
            detail=detail,
        )


def _drop_suppression(event: StatusEvent) -> tuple[str, str] | None:
    """A SendGrid drop names why; only an address-level reason becomes a suppression ("Spam
    Content" or a bad SMTPAPI header are about the message, not the recipient)."""
    raw_reason = str(event.raw.get("reason", "")).lower()
    if event.error_code == "bounced":
        return SuppressionReason.HARD_BOUNCE, ConsentSource.BOUNCE
    if event.error_code == "invalid":
        return SuppressionReason.INVALID_ADDRESS, ConsentSource.PROVIDER
    if raw_reason == "spam reporting address":
        return SuppressionReason.COMPLAINT, ConsentSource.COMPLAINT
    return None


def _email_unsubscribe(
    *, contact: Contact, event: StatusEvent, source: str = ConsentSource.UNSUBSCRIBE_LINK
) -> None:
    if not _first_time(event):
        return
    already = Consent.objects.filter(
        contact=contact,
        channel=Channel.EMAIL,
        purpose=Purpose.MARKETING,
        state=ConsentState.REVOKED,
    ).exists()
    if not already:
        consent_revoke(
            contact=contact,
            channel=Channel.EMAIL,
            purpose=Purpose.MARKETING,
            evidence=Evidence(
                source=source,
                source_detail=f"{event.provider} {event.status} event {event.event_id}"[:500],
            ),
        )


def _sms_revoke_all(*, contact: Contact, note: str, source_detail: str) -> None:
    # STOP on a short code or long code stops everything sent from it, service notices included.
    for purpose in Purpose.values:
        consent_revoke(
            contact=contact,
            channel=Channel.SMS,
            purpose=purpose,
            evidence=Evidence(
                source=ConsentSource.SMS_KEYWORD, note=note[:200], source_detail=source_detail
            ),
        )


@dataclass(frozen=True)
class KeywordResult:
    verdict: str
    matched: int
    reply: str = ""
    reason: str = ""
    # The one workspace whose contacts the keyword changed (None: none, or several).
    workspace_id: int | None = None


def sms_keyword_apply(*, event: OptEvent, workspace_ids: Collection[int]) -> KeywordResult:
    """STOP revokes SMS consent (every purpose), START restores what a keyword revoked, HELP
    answers: for the contacts with that number in ``workspace_ids`` (the workspaces that text
    from the number it was sent to), never another client's. The evidence names the keyword and
    the inbound message id."""
    contacts = list(
        Contact.objects.filter(
            phone=event.phone, erased_at__isnull=True, workspace_id__in=list(workspace_ids)
        )
    )
    if event.action == OptAction.HELP:
        return KeywordResult(ReceiptVerdict.APPLIED, len(contacts), settings.DELIVERY_SMS_HELP_TEXT)
    if not contacts:
        return KeywordResult(
            ReceiptVerdict.UNMATCHED, 0, reason=f"{event.keyword} from a number no contact has"
        )
    note = f"inbound SMS keyword {event.keyword}"
    with transaction.atomic():
        for contact in contacts:
            if event.action == OptAction.OPT_OUT:
                _sms_revoke_all(contact=contact, note=note, source_detail=event.message_id)
            else:
                for purpose in _keyword_revoked_purposes(contact=contact) or [Purpose.MARKETING]:
                    consent_grant(
                        contact=contact,
                        channel=Channel.SMS,
                        purpose=purpose,
                        evidence=Evidence(
                            source=ConsentSource.SMS_KEYWORD,
                            note=note,
                            source_detail=event.message_id,
                        ),
                    )
    workspaces = {contact.workspace_id for contact in contacts}
    return KeywordResult(
        ReceiptVerdict.APPLIED,
        len(contacts),
        reason=note,
        workspace_id=workspaces.pop() if len(workspaces) == 1 else None,
    )


def _keyword_revoked_purposes(*, contact: Contact) -> list[str]:
    """Purposes whose latest SMS consent change was a keyword revocation: what START undoes.

    A number that never texted STOP gets marketing (the handset asked for it), and a purpose the
    contact withdrew another way (preference centre) is not re-granted by a START."""
    purposes = []
    for purpose in Purpose.values:
        last = (
            ConsentEvent.objects.filter(contact=contact, channel=Channel.SMS, purpose=purpose)
            .order_by("-occurred_at", "-id")
            .values_list("action", "source")
            .first()
        )
        if last == (ConsentAction.REVOKE, ConsentSource.SMS_KEYWORD):
            purposes.append(purpose)
    return purposes


def receipts_reapply(*, limit: int | None = None) -> dict[str, int]:
    """Re-apply events that named an unknown message, while they are fresh enough to matter."""
    since = timezone.now() - timedelta(seconds=settings.DELIVERY_RECEIPT_RETRY_S)
    batch = limit or settings.DELIVERY_RECEIPT_RETRY_BATCH
    done = {"receipts": 0, "matched": 0}
    with transaction.atomic():
        receipts = list(
            ProviderReceipt.objects.select_for_update(skip_locked=True)
            .filter(verdict=ReceiptVerdict.UNMATCHED, created_at__gte=since)
            .exclude(pending=[])
            .order_by("created_at")[:batch]
        )
        for receipt in receipts:
            result = status_events_apply(
                events=[status_event_from_json(item) for item in receipt.pending]
            )
            receipt.attempts += 1
            receipt.matched += result.matched
            receipt.pending = result.pending
            fields = ["attempts", "matched", "pending", "verdict", "reason"]
            if not result.pending:
                receipt.verdict = ReceiptVerdict.APPLIED
                receipt.reason = f"matched on re-apply #{receipt.attempts}"
                # A receipt whose events all waited until now takes their workspace; one that
                # matched some on arrival cannot tell whose those were (only pending events are
                # kept), so it stays install-level.
                if receipt.matched == result.matched:
                    workspace_id = result.workspace_id
                    if workspace_id is not None:
                        receipt.workspace_id = workspace_id
                        fields.append("workspace")
            receipt.save(update_fields=fields)
            done["receipts"] += 1
            done["matched"] += result.matched
    return done
