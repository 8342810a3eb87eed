"""GDPR: export everything held on a contact, and erase it. Both are audited when a person asks
(``access`` given): the audit row commits with the erasure, or is written with the export.

Erasure removes or irreversibly scrubs every copy of the person's identifiers that the install
stores (docs/privacy.md lists them): the contact row, the consent evidence (kept, with a keyed
hash of who it was about), the deliveries' addresses and texts, the provider receipts that
mention them (by address, or by the provider ids of their deliveries), the audit trail's
details, the lines of import error reports about them (which also discards the workspace's
unconfirmed import uploads). The modules that hold such copies and that this one may not
import (delivery's, contacts.import_runs) take part through CONTACTS_ERASURE_HOOKS and
CONTACTS_EXPORT_HOOKS, dotted paths called in the same transaction. What is kept is a hashed
suppression per identifier (ErasedIdentifier): an import, the API or the preference centre
cannot add the person back until staff record new consent (``erased_identifier_lift``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from contacts.consent import Evidence, consent_erase, subject_hash
from contacts.errors import ConsentEvidenceMissing, ContactErased, InvalidContactData
from contacts.models import (
    ConsentEvent,
    ConsentSource,
    Contact,
    ContactTag,
    ErasedIdentifier,
    ErasedIdentifierKind,
)
from continuity.audit import audit_record
from continuity.tenancy import Access

AUDIT_EXPORT = "contact.export"
AUDIT_ERASE = "contact.erase"
AUDIT_EXPORT_FILE = "contact.export_file"
AUDIT_IMPORT_FILE = "contact.import_file"
AUDIT_ERASURE_LIFT = "contact.erasure_lift"
ERASED_MARK = "[erased]"


EXPORT_FORMAT = "continuity.contact-export/2"


def _segments_of(contact: Contact) -> list[dict[str, Any]]:
    """The saved segments the contact is in now (each one query on the contact's id)."""
    from contacts.selectors import segment_contacts, segments_of

    found = []
    for segment in segments_of(workspace=contact.workspace_id).order_by("name"):
        if segment_contacts(segment).filter(pk=contact.pk).exists():
            found.append({"id": segment.pk, "name": segment.name})
    return found


def contact_export(*, contact: Contact, access: Access | None = None) -> dict[str, Any]:
    """One JSON-ready document of everything held on the contact (Articles 15 and 20): profile,
    tags and segments, consent with its evidence, suppressions, push subscriptions, and what the
    other apps hold (every delivery and its timeline); audited for ``access``."""
    if access is not None:
        audit_record(access=access, action=AUDIT_EXPORT, target=contact)
    held: dict[str, Any] = {}
    for path in settings.CONTACTS_EXPORT_HOOKS:
        export: Callable[..., dict[str, Any]] = import_string(path)
        held.update(export(contact=contact))
    return {
        "format": EXPORT_FORMAT,
        "exported_at": timezone.now().isoformat(),
        "segments": _segments_of(contact),
        **held,
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
            # What a soft opt-in rests on: the person may ask what relationship we claim.
            "customer_since": (
                contact.customer_since.isoformat() if contact.customer_since else None
            ),
        },
        "consents": [
            {
                "channel": c.channel,
                "purpose": c.purpose,
                "state": c.state,
                "lawful_basis": c.lawful_basis,
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
                "lawful_basis": e.lawful_basis,
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
                "expiration_time": p.expiration_time.isoformat() if p.expiration_time else None,
                "failure_count": p.failure_count,
                "last_failure": p.last_failure,
                "created_at": p.created_at.isoformat(),
            }
            for p in contact.push_subscriptions.order_by("created_at")
        ],
    }


@dataclass(frozen=True)
class ErasureSubject:
    """Who is being erased, as the other apps' erasure hooks need it: ids, the identifiers, and
    the SQL pattern that finds any written form of them in stored text."""

    contact_id: int
    workspace_id: int
    email: str
    phone: str
    external_id: str

    @property
    def needles(self) -> tuple[str, ...]:
        """The identifiers as they can appear in stored text: as is, and URL-encoded (form
        bodies such as Twilio's carry ``%2B1555...``, ``a%40b.example``)."""
        found: list[str] = []
        for value in (self.email, self.phone):
            if value:
                found += [value, quote(value, safe="")]
        return tuple(dict.fromkeys(found))

    @property
    def pattern(self) -> str:
        """A case-insensitive PostgreSQL regular expression (use with ~* and 'gi') matching
        every needle, and the phone's bare digits (WhatsApp's wa_id) between non-digits."""
        parts = [re.escape(n) for n in self.needles]
        digits = self.phone.lstrip("+")
        if digits.isdigit() and len(digits) >= 7:
            parts.append(f"(?<![0-9]){digits}(?![0-9])")
        # An impossible pattern when the contact held no identifier: nothing matches it.
        return "|".join(parts) or "(?!)"


def erasure_subject(contact: Contact) -> ErasureSubject:
    return ErasureSubject(
        contact_id=contact.pk,
        workspace_id=contact.workspace_id,
        email=(contact.email or "").strip().lower(),
        phone=str(contact.phone) if contact.phone else "",
        external_id=contact.external_id or "",
    )


def text_scrub(
    *, table: str, columns: Iterable[str], where: str, params: list[Any], subject: ErasureSubject
) -> int:
    """Replace every written form of the subject's identifiers with ERASED_MARK in text (or
    jsonb, cast through text) columns of the rows ``where`` selects. Returns rows changed."""
    if not subject.needles:
        return 0
    quoted = connection.ops.quote_name
    changed = 0
    with connection.cursor() as cursor:
        for column in columns:
            cursor.execute(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = %s AND column_name = %s",
                [table, column],
            )
            data_type = (cursor.fetchone() or ("text",))[0]
            expr = f"{quoted(column)}::text"
            replaced = f"regexp_replace({expr}, %s, %s, 'gi')"
            if data_type == "jsonb":
                replaced = f"({replaced})::jsonb"
            cursor.execute(
                f"UPDATE {quoted(table)} SET {quoted(column)} = {replaced} "  # noqa: S608  # nosec B608
                f"WHERE ({where}) AND {expr} ~* %s",
                [subject.pattern, ERASED_MARK, *params, subject.pattern],
            )
            changed += cursor.rowcount
    return changed


def contact_erase(
    *, contact: Contact, recorded_by: str = "", access: Access | None = None
) -> Contact:
    """Remove the personal data and keep a tombstone: the row stays (deliveries and evidence
    point at it) but holds no identifier, and every copy of its email and phone elsewhere is
    removed or scrubbed (the module's docstring). A keyed hash of each identifier stays as a
    suppression, so the person cannot be imported again without new consent."""
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
        if contact.erased_at is not None:  # a concurrent erasure won
            raise ContactErased(f"contact #{contact.pk} is already erased")
        now = timezone.now()
        subject = erasure_subject(contact)
        _erased_identifiers_add(subject=subject, at=now)
        recorded_by = recorded_by or (access.actor_label if access is not None else "")
        consent_erase(contact=contact, recorded_by=recorded_by)
        contact.push_subscriptions.all().delete()
        ContactTag.objects.filter(contact=contact).delete()
        for path in settings.CONTACTS_ERASURE_HOOKS:
            hook: Callable[..., Any] = import_string(path)
            hook(subject=subject)
        _contacts_text_scrub(subject=subject)
        contact.external_id = None
        contact.email = None
        contact.phone = None
        contact.first_name = ""
        contact.last_name = ""
        contact.locale = ""
        contact.timezone = ""
        contact.attributes = {}
        # When they bought from us is about them too; the evidence keeps the basis it justified.
        contact.customer_since = None
        contact.erased_at = now
        contact.save()
        if access is not None:
            audit_record(access=access, action=AUDIT_ERASE, target=contact)
    return contact


def _erased_identifiers_add(*, subject: ErasureSubject, at: datetime) -> None:
    rows = [
        ErasedIdentifier(
            workspace_id=subject.workspace_id, kind=kind, digest=subject_hash(value), erased_at=at
        )
        for kind, value in (
            (ErasedIdentifierKind.EMAIL, subject.email),
            (ErasedIdentifierKind.PHONE, subject.phone),
        )
        if value
    ]
    # Already there: the person was erased before (as another contact) and not let back in.
    ErasedIdentifier.objects.bulk_create(rows, ignore_conflicts=True)


def _contacts_text_scrub(*, subject: ErasureSubject) -> None:
    """Free text of this app and the audit trail that may quote the identifiers (a bounce's
    reason in a suppression or evidence detail, a file or field named in an audit detail)."""
    for table, columns in (
        ("contacts_consentevent", ("source_detail", "note")),
        ("contacts_suppression", ("detail",)),
    ):
        text_scrub(
            table=table,
            columns=columns,
            where="contact_id = %s",
            params=[subject.contact_id],
            subject=subject,
        )
    text_scrub(
        table="continuity_auditevent",
        columns=("detail", "target_id"),
        where="workspace_id = %s OR workspace_id IS NULL",
        params=[subject.workspace_id],
        subject=subject,
    )


# --- the hashed suppression: refusing to add an erased person back ------------------------------


def erased_identifiers_find(
    *, workspace_id: int, emails: Iterable[str] = (), phones: Iterable[str] = ()
) -> dict[str, datetime]:
    """Which of these identifiers (normalised, as contacts store them) belong to a person erased
    from the workspace and not let back in: identifier -> when they were erased. One query."""
    by_digest: dict[str, str] = {}
    for value in {*emails, *phones}:
        if value:
            for digest in erasure_subject_hashes(identifier=value):
                by_digest[digest] = value
    if not by_digest:
        return {}
    found: dict[str, datetime] = {}
    for digest, erased_at in ErasedIdentifier.objects.filter(
        workspace_id=workspace_id, digest__in=list(by_digest), lifted_at__isnull=True
    ).values_list("digest", "erased_at"):
        found[by_digest[digest]] = erased_at
    return found


def erased_refusal(*, erased_at: datetime) -> str:
    """The reason a row or request naming an erased person is refused."""
    return _(
        "this person asked to be erased on %(date)s: they cannot be added again until staff "
        'record new consent from them (docs/privacy.md, "New consent")'
    ) % {"date": erased_at.date().isoformat()}


def erased_rows_refused(
    *, workspace_id: int, rows: Sequence[Mapping[str, Any]]
) -> dict[int, tuple[str, str]]:
    """For a batch of parsed contact values: index -> (field, reason) of each row naming an
    erased person of the workspace, who must not be re-added (one query for the batch)."""
    found = erased_identifiers_find(
        workspace_id=workspace_id,
        emails=[str(v.get("email") or "") for v in rows],
        phones=[str(v.get("phone") or "") for v in rows],
    )
    if not found:
        return {}
    refused: dict[int, tuple[str, str]] = {}
    for index, values in enumerate(rows):
        for name in ("email", "phone"):
            value = str(values.get(name) or "")
            if value in found:
                refused[index] = (name, erased_refusal(erased_at=found[value]))
                break
    return refused


def erased_values_refuse(*, workspace_id: int, values: Mapping[str, Any]) -> None:
    """InvalidContactData naming the field when ``values`` (parsed contact fields) carry an
    erased person's email or phone."""
    email = values.get("email") or ""
    phone = str(values.get("phone") or "")
    found = erased_identifiers_find(workspace_id=workspace_id, emails=[email], phones=[phone])
    for name, value in (("email", email), ("phone", phone)):
        if value in found:
            raise InvalidContactData({name: erased_refusal(erased_at=found[value])})


def erased_identifier_lift(
    *, workspace_id: int, identifier: str, evidence: Evidence, access: Access | None = None
) -> int:
    """New consent: staff record fresh evidence that the erased person asked to be contacted
    again (a signed form, a new web sign-up they made themselves), which lets them be added back.
    The evidence names its source and says what it is; it is kept in the audit trail, with no
    identifier. Returns the suppressions lifted (0: the identifier was not erased)."""
    if evidence.source not in (ConsentSource.FORM, ConsentSource.ADMIN) or not (
        evidence.note.strip() or evidence.source_detail.strip()
    ):
        raise ConsentEvidenceMissing(
            _(
                "new consent needs its evidence: a source (form or admin) and a note saying "
                "what the person gave (a signed form, a sign-up they made)"
            )
        )
    digests = erasure_subject_hashes(identifier=identifier)
    with transaction.atomic():
        lifted = ErasedIdentifier.objects.filter(
            workspace_id=workspace_id, digest__in=digests, lifted_at__isnull=True
        ).update(lifted_at=timezone.now(), lifted_by=evidence.recorded_by[:150])
        if lifted and access is not None:
            audit_record(
                access=access,
                action=AUDIT_ERASURE_LIFT,
                actor_label=evidence.recorded_by or None,
                detail={
                    "source": evidence.source,
                    "source_detail": evidence.source_detail[:200],
                    "note": evidence.note[:500],
                    "consent_text_version": evidence.consent_text_version,
                    "digest": digests[0][:12],
                },
            )
    return lifted


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
