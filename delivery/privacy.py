"""delivery's part in a contact's export and erasure (contacts/privacy.py calls these through
CONTACTS_EXPORT_HOOKS and CONTACTS_ERASURE_HOOKS), and the rule that a provider report about an
erased person is kept only as a hashed, payload-free receipt."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from typing import Any
from urllib.parse import unquote_plus

from django.conf import settings
from django.db import connection

from contacts.models import Contact, ErasedIdentifier
from contacts.privacy import ErasureSubject, erasure_subject_hashes, text_scrub
from delivery.models import Delivery, DeliveryEvent, ProviderReceipt

logger = logging.getLogger(__name__)

REDACTED_REASON = "payload dropped: it named an erased contact"


def contact_deliveries_export(*, contact: Contact) -> dict[str, Any]:
    """Every delivery to the contact (campaign messages and system mails) with its timeline."""
    events: dict[int, list[dict[str, Any]]] = {}
    for delivery_id, status, occurred_at, detail in (
        DeliveryEvent.objects.filter(delivery__contact=contact)
        .order_by("occurred_at", "id")
        .values_list("delivery_id", "status", "occurred_at", "detail")
    ):
        events.setdefault(delivery_id, []).append(
            {"status": status, "at": occurred_at.isoformat(), "detail": detail}
        )
    deliveries = [
        {
            "id": d.pk,
            "kind": d.kind,
            "channel": d.channel,
            "message": d.message.name if d.message is not None else None,
            "purpose": d.purpose or (d.message.purpose if d.message is not None else ""),
            "address": d.address,
            "status": d.status,
            "attempts": d.attempt,
            "provider": d.provider,
            "provider_message_id": d.provider_message_id,
            "error_code": d.error_code,
            "error_text": d.error_text,
            "created_at": d.created_at.isoformat(),
            **{
                name: value.isoformat() if value else None
                for name in (
                    "sent_at",
                    "delivered_at",
                    "opened_at",
                    "clicked_at",
                    "failed_at",
                )
                for value in (getattr(d, name),)
            },
            "events": events.get(d.pk, []),
        }
        for d in Delivery.objects.filter(contact=contact)
        .select_related("message")
        .order_by("created_at", "id")
    ]
    return {"deliveries": deliveries}


def _receipt_redact(receipt_ids: list[int], *, provider_ids: list[str], pattern: str) -> int:
    """Drop the payload of these receipts; keep when and from whom, the verdict, and a keyed
    hash of the dropped body (matching a dispute without holding the data). Events other people
    have still waiting for a retry stay in ``pending``."""
    key = settings.CONTACTS_ERASURE_HASH_KEY.encode()
    needle = re.compile(pattern, re.IGNORECASE) if pattern else None
    redacted = 0
    for receipt in ProviderReceipt.objects.filter(pk__in=receipt_ids).only(
        "body", "pending", "reason"
    ):
        digest = hmac.new(key, receipt.body.encode(), hashlib.sha256).hexdigest()
        kept = [
            event
            for event in receipt.pending or []
            if not _mentions(json.dumps(event), needle=needle, provider_ids=provider_ids)
        ]
        ProviderReceipt.objects.filter(pk=receipt.pk).update(
            body="",
            headers={},
            pending=kept,
            reason=f"{REDACTED_REASON} (body hmac-sha256 {digest})",
        )
        redacted += 1
    return redacted


def _mentions(text: str, *, needle: re.Pattern[str] | None, provider_ids: list[str]) -> bool:
    return bool(needle is not None and needle.search(unquote_plus(text))) or any(
        pid in text for pid in provider_ids
    )


def contact_deliveries_erase(*, subject: ErasureSubject) -> dict[str, int]:
    """Erasure hook: the contact's deliveries keep their statuses and times but no address or
    text naming them; every provider receipt that mentions them (their address in any written
    form, or the provider id of one of their deliveries) loses its payload."""
    provider_ids = [
        pid
        for pid in Delivery.objects.filter(contact_id=subject.contact_id)
        .exclude(provider_message_id="")
        .values_list("provider_message_id", flat=True)
    ]
    # Python's regex dialect for the pending events: PostgreSQL's lookbehind syntax is the same.
    pattern = subject.pattern if subject.needles else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM delivery_providerreceipt WHERE body ~* %s OR reason ~* %s "
            "OR pending::text ~* %s OR body LIKE ANY(%s) OR pending::text LIKE ANY(%s)",
            [
                subject.pattern,
                subject.pattern,
                subject.pattern,
                [f"%{pid}%" for pid in provider_ids] or ["\x01"],
                [f"%{pid}%" for pid in provider_ids] or ["\x01"],
            ],
        )
        receipt_ids = [row[0] for row in cursor.fetchall()]
    receipts = _receipt_redact(receipt_ids, provider_ids=provider_ids, pattern=pattern)
    addresses = (
        Delivery.objects.filter(contact_id=subject.contact_id)
        .exclude(address="")
        .update(address="")
    )
    texts = text_scrub(
        table="delivery_delivery",
        columns=("error_text",),
        where="contact_id = %s",
        params=[subject.contact_id],
        subject=subject,
    )
    texts += text_scrub(
        table="delivery_deliveryevent",
        columns=("detail",),
        where="delivery_id IN (SELECT id FROM delivery_delivery WHERE contact_id = %s)",
        params=[subject.contact_id],
        subject=subject,
    )
    logger.info(
        "erasure: %s receipts redacted, %s addresses and %s texts scrubbed",
        receipts,
        addresses,
        texts,
        extra={"contact_id": subject.contact_id},
    )
    return {"receipts": receipts, "addresses": addresses, "texts": texts}


# Identifiers as provider bodies carry them: email addresses, and E.164 numbers (possibly
# URL-encoded, or WhatsApp's bare digits).
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![0-9])\+?[1-9][0-9]{6,14}(?![0-9])")


def receipt_redact_if_erased(*, receipt: ProviderReceipt) -> bool:
    """A provider report that names an erased person (by email or phone, in any workspace: the
    receipt may not know its own yet) keeps no payload. True when the receipt was redacted."""
    text = unquote_plus(receipt.body or "")
    candidates = {m.lower() for m in _EMAIL.findall(text)}
    candidates |= {m if m.startswith("+") else f"+{m}" for m in _PHONE.findall(text)}
    if not candidates or not settings.CONTACTS_ERASURE_HASH_KEY:
        return False
    by_digest = {d: value for value in candidates for d in erasure_subject_hashes(identifier=value)}
    erased = {
        by_digest[digest]
        for digest in ErasedIdentifier.objects.filter(
            digest__in=list(by_digest), lifted_at__isnull=True
        ).values_list("digest", flat=True)
    }
    if not erased:
        return False
    # Other people's events still waiting in ``pending`` stay; the erased person's go.
    pattern = "|".join(re.escape(value) for value in sorted(erased))
    _receipt_redact([receipt.pk], provider_ids=[], pattern=pattern)
    logger.info("receipt %s named an erased contact: payload dropped", receipt.pk)
    return True
