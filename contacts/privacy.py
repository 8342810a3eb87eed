"""GDPR: export everything held on a contact, and erase it. Both are audited when a person asks
(``access`` given): the audit row commits with the erasure, or is written with the export."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.consent import consent_erase
from contacts.errors import ContactErased
from contacts.models import ConsentEvent, Contact, ContactTag
from continuity.audit import audit_record
from continuity.tenancy import Access

AUDIT_EXPORT = "contact.export"
AUDIT_ERASE = "contact.erase"
AUDIT_EXPORT_FILE = "contact.export_file"
AUDIT_IMPORT_FILE = "contact.import_file"


def contact_export(*, contact: Contact, access: Access | None = None) -> dict[str, Any]:
    """One JSON-ready document of everything held on the contact; audited for ``access``."""
    if access is not None:
        audit_record(access=access, action=AUDIT_EXPORT, target=contact)
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


def contact_erase(
    *, contact: Contact, recorded_by: str = "", access: Access | None = None
) -> Contact:
    """Remove the personal data and keep a tombstone: the row stays (deliveries and evidence
    point at it) but holds no identifier, so a later import creates a new contact that starts
    with no consent; the evidence keeps only a keyed hash of who it was about."""
    if contact.erased_at is not None:
        raise ContactErased(_("contact #%(id)s is already erased") % {"id": contact.pk})
    if not settings.CONTACTS_ERASURE_HASH_KEY:
        # An unkeyed hash of an email address is reversed by hashing a list of addresses.
        raise ImproperlyConfigured(
            "CONTACTS_ERASURE_HASH_KEY is not set: erasure keeps a keyed hash of who the "
            'evidence was about (docs/configuration.md, "Secrets and rotation").'
        )
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=contact.pk)
        recorded_by = recorded_by or (access.actor_label if access is not None else "")
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
        if access is not None:
            audit_record(access=access, action=AUDIT_ERASE, target=contact)
    return contact


# --- erased evidence: matching a person again ---------------------------------------------------


def erasure_hash_keys() -> tuple[str, ...]:
    """Every key an erasure hash may have been made with, newest first.

    A hash cannot be recomputed once the identifier is gone, so old keys stay for matching:
    CONTACTS_ERASURE_HASH_KEY_FALLBACKS for the key's own rotations, and SECRET_KEY with its
    fallbacks, which made the hashes while the erasure key defaulted to it.
    """
    candidates = (
        settings.CONTACTS_ERASURE_HASH_KEY,
        *settings.CONTACTS_ERASURE_HASH_KEY_FALLBACKS,
        settings.SECRET_KEY,
        *settings.SECRET_KEY_FALLBACKS,
    )
    return tuple(dict.fromkeys(key for key in candidates if key))


def erasure_subject_hashes(*, identifier: str) -> list[str]:
    """The identifier's hash under each key (contacts.consent.subject_hash's scheme)."""
    normalised = identifier.strip().lower().encode()
    return [
        hmac.new(key.encode(), normalised, hashlib.sha256).hexdigest()
        for key in erasure_hash_keys()
    ]


def erased_evidence_find(*, workspace_id: int, identifier: str) -> QuerySet[ConsentEvent]:
    """The consent evidence of an erased person, found by an identifier they give again (an
    email, phone or external id), whichever key hashed it."""
    return ConsentEvent.objects.filter(
        workspace_id=workspace_id, subject_hash__in=erasure_subject_hashes(identifier=identifier)
    ).order_by("occurred_at", "id")
