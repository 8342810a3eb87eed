"""What the preference centre changes: consent per channel, and the contact's email and phone."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from contacts.consent import (
    Evidence,
    consent_grant,
    consent_log_details_change,
    consent_revoke,
)
from contacts.errors import InvalidContactData
from contacts.models import Channel, ConsentState, Contact, Purpose
from contacts.normalize import FieldError, email_normalise, phone_normalise
from contacts.selectors import consent_states

PREFERENCE_CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.WHATSAPP, Channel.PUSH)


@dataclass
class PreferenceChanges:
    changed: list[str] = field(default_factory=list)


def preferences_apply(
    *,
    contact: Contact,
    wanted: dict[str, bool],
    email: str | None,
    phone: str | None,
    evidence: Evidence,
    purpose: str = Purpose.MARKETING,
) -> PreferenceChanges:
    """Apply the form: identifiers first (so a refused address changes nothing), then one
    consent change per channel whose wish differs from the current state."""
    result = PreferenceChanges()
    try:
        new_email = email_normalise(email) if email is not None else contact.email
        new_phone = phone_normalise(phone) if phone is not None else contact.phone
    except FieldError as exc:
        raise InvalidContactData({exc.field: exc.message}) from None
    with transaction.atomic():
        taken = Contact.objects.exclude(pk=contact.pk)
        if new_email and new_email != contact.email and taken.filter(email=new_email).exists():
            raise InvalidContactData({"email": "this address is already registered"})
        if (
            new_phone
            and str(new_phone) != str(contact.phone or "")
            and taken.filter(phone=new_phone).exists()
        ):
            raise InvalidContactData({"phone": "this number is already registered"})
        notes = []
        if new_email != contact.email:
            notes.append("email changed")
            contact.email = new_email
        if str(new_phone or "") != str(contact.phone or ""):
            notes.append("phone changed")
            contact.phone = new_phone
        if notes:
            contact.save(update_fields=["email", "phone", "updated_at"])
            consent_log_details_change(contact=contact, evidence=evidence, note=", ".join(notes))
            result.changed.extend(notes)
        states = consent_states(contact=contact)
        for channel, want in wanted.items():
            granted = states.get((channel, purpose)) == ConsentState.GRANTED
            if want and not granted:
                consent_grant(contact=contact, channel=channel, purpose=purpose, evidence=evidence)
                result.changed.append(f"{channel} on")
            elif not want and granted:
                consent_revoke(contact=contact, channel=channel, purpose=purpose, evidence=evidence)
                result.changed.append(f"{channel} off")
    return result
