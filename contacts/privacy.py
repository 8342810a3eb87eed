"""GDPR: export everything held on a contact, and erase it."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from contacts.consent import consent_erase
from contacts.errors import ContactErased
from contacts.models import ConsentEvent, Contact, ContactTag


def contact_export(*, contact: Contact) -> dict[str, Any]:
    """One JSON-ready document of everything held on the contact."""
    return {
        "contact": {
            "id": contact.pk,
            "external_id": contact.external_id,
            "email": contact.email,
            "phone": str(contact.phone) if contact.phone else None,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "locale": contact.locale,
            "timezone": contact.timezone,
            "attributes": contact.attributes,
            "tags": sorted(
                ContactTag.objects.filter(contact=contact).values_list("tag__name", flat=True)
            ),
            "created_at": contact.created_at.isoformat(),
            "updated_at": contact.updated_at.isoformat(),
            "erased_at": contact.erased_at.isoformat() if contact.erased_at else None,
        },
        "consents": [
            {
                "channel": c.channel,
                "purpose": c.purpose,
                "state": c.state,
                "updated_at": c.updated_at.isoformat(),
            }
            for c in contact.consents.order_by("channel", "purpose")
        ],
        "consent_events": [
            {
                "channel": e.channel,
                "purpose": e.purpose,
                "action": e.action,
                "state": e.state,
                "source": e.source,
                "source_detail": e.source_detail,
                "occurred_at": e.occurred_at.isoformat(),
                "ip": e.ip,
                "user_agent": e.user_agent,
                "consent_text_version": e.consent_text_version,
                "recorded_by": e.recorded_by,
                "note": e.note,
            }
            for e in ConsentEvent.objects.filter(contact=contact).order_by("occurred_at", "id")
        ],
        "suppressions": [
            {
                "channel": s.channel,
                "reason": s.reason,
                "detail": s.detail,
                "active": s.active,
                "created_at": s.created_at.isoformat(),
            }
            for s in contact.suppressions.order_by("created_at")
        ],
        "push_subscriptions": [
            {
                "endpoint": p.endpoint,
                "user_agent": p.user_agent,
                "active": p.active,
                "created_at": p.created_at.isoformat(),
            }
            for p in contact.push_subscriptions.order_by("created_at")
        ],
    }


def contact_erase(*, contact: Contact, recorded_by: str = "") -> Contact:
    """Remove the personal data and keep a tombstone: the row stays (deliveries and evidence
    point at it) but holds no identifier, so a later import creates a new contact that starts
    with no consent; the evidence keeps only a keyed hash of who it was about."""
    if contact.erased_at is not None:
        raise ContactErased(f"contact #{contact.pk} is already erased")
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=contact.pk)
        consent_erase(contact=contact, recorded_by=recorded_by)
        contact.push_subscriptions.all().delete()
        ContactTag.objects.filter(contact=contact).delete()
        contact.external_id = None
        contact.email = None
        contact.phone = None
        contact.first_name = ""
        contact.last_name = ""
        contact.locale = ""
        contact.timezone = ""
        contact.attributes = {}
        contact.erased_at = timezone.now()
        contact.save()
    return contact
