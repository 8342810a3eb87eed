"""What the preference centre changes: consent per channel, and the contact's email, phone and
language."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from contacts.consent import (
    Evidence,
    consent_grant,
    consent_log_details_change,
    consent_revoke,
)
from contacts.errors import EmailChangeRefused, InvalidContactData
from contacts.language import primary_language
from contacts.link_mail import email_change_request
from contacts.models import Channel, ConsentState, Contact, Purpose
from contacts.normalize import FieldError, email_normalise, locale_normalise, phone_normalise
from contacts.privacy import erased_identifiers_find, erased_refusal
from contacts.selectors import consent_states

PREFERENCE_CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.WHATSAPP, Channel.PUSH)


@dataclass
class PreferenceChanges:
    # What the page reports as saved, in the language of the request that saved it.
    changed: list[str] = field(default_factory=list)
    # A new email address waits for confirmation: a link was mailed to it (or, throttled, not).
    email_confirmation_to: str = ""
    email_change_throttled: bool = False
    # The number as asked for, shown back whether it applied or not (see preferences_apply).
    phone_requested: str | None = None


def _email_taken(contact: Contact, email: str) -> bool:
    # Addresses are unique per workspace: another business's contact may hold the same one.
    return (
        Contact.objects.for_workspace(contact.workspace_id)
        .exclude(pk=contact.pk)
        .filter(email=email)
        .exists()
    )


def preferences_apply(
    *,
    contact: Contact,
    wanted: dict[str, bool],
    email: str | None,
    phone: str | None,
    evidence: Evidence,
    language: str | None = None,
    purpose: str = Purpose.MARKETING,
) -> PreferenceChanges:
    """Apply the form: identifiers first (so a malformed one changes nothing), then one consent
    change per channel whose wish differs from the current state.

    Nothing here tells the link holder whether another contact holds an address: a new email is
    only mailed a confirmation link (the address changes when it is opened there), and a phone
    number another contact holds is answered like any change, not applied, and logged for staff.
    """
    result = PreferenceChanges()
    try:
        new_email = email_normalise(email) if email is not None else contact.email
        new_phone = phone_normalise(phone) if phone is not None else contact.phone
        new_locale = locale_normalise(language) if language else contact.locale
    except FieldError as exc:
        raise InvalidContactData({exc.field: exc.message}) from None
    with transaction.atomic():
        _details_apply(
            contact,
            email=new_email,
            phone=new_phone,
            locale=new_locale,
            result=result,
            evidence=evidence,
        )
        states = consent_states(contact=contact)
        for channel, want in wanted.items():
            granted = states.get((channel, purpose)) == ConsentState.GRANTED
            if want and not granted:
                consent_grant(contact=contact, channel=channel, purpose=purpose, evidence=evidence)
                result.changed.append(_("%(channel)s on") % {"channel": Channel(channel).label})
            elif not want and granted:
                consent_revoke(contact=contact, channel=channel, purpose=purpose, evidence=evidence)
                result.changed.append(_("%(channel)s off") % {"channel": Channel(channel).label})
        if new_email and new_email != contact.email:
            # Whether the address is free or another contact's, the answer is the same: a link
            # to confirm it goes to that address, and only its owner learns the outcome.
            if email_change_request(contact=contact, new_email=new_email):
                result.email_confirmation_to = new_email
            else:
                result.email_change_throttled = True
    return result


def _details_apply(
    contact: Contact,
    *,
    email: str | None,
    phone: object,
    locale: str,
    result: PreferenceChanges,
    evidence: Evidence,
) -> None:
    """Email removal, phone and language: one details-change event for whatever changed."""
    notes = []
    if not email and contact.email:
        # Removing an address needs no proof and can collide with nobody.
        contact.email = None
        contact.save(update_fields=["email", "updated_at"])
        notes.append("email removed")
        result.changed.append(_("email removed"))
    if str(phone or "") != str(contact.phone or ""):
        # Applied or not, the answer is the same: the page must not say that the number is
        # another contact's. Staff see why it did not apply in the consent history.
        result.changed.append(_("phone changed"))
        result.phone_requested = str(phone or "")
        if _phone_save(contact, phone):
            notes.append("phone changed")
        else:
            notes.append("phone change not applied: the number belongs to another contact")
    if _language_save(contact, locale):
        notes.append(f"language changed to {locale}")
        result.changed.append(_("language changed"))
    if notes:
        consent_log_details_change(contact=contact, evidence=evidence, note=", ".join(notes))


def _language_save(contact: Contact, locale: str) -> bool:
    # The same language in another spelling (``it`` for a stored ``it-IT``) changes nothing:
    # the region an import gave is kept.
    if primary_language(locale) == primary_language(contact.locale):
        return False
    contact.locale = locale
    contact.save(update_fields=["locale", "updated_at"])
    return True


def _phone_save(contact: Contact, phone: object) -> bool:
    """Store the number unless another contact of the workspace holds it (False then)."""
    taken = (
        Contact.objects.for_workspace(contact.workspace_id)
        .exclude(pk=contact.pk)
        .filter(phone=phone)
    )
    if phone and taken.exists():
        return False
    if phone and erased_identifiers_find(workspace_id=contact.workspace_id, phones=[str(phone)]):
        return False  # an erased person's number: answered like one another contact holds
    previous = contact.phone
    contact.phone = phone
    try:
        # A savepoint: a writer taking the number between the check and this save must not
        # abort the consent changes of the same form.
        with transaction.atomic():
            contact.save(update_fields=["phone", "updated_at"])
    except IntegrityError:
        contact.phone = previous
        return False
    return True


def email_change_confirm(
    *, contact: Contact, email: str, previous_email: str, evidence: Evidence
) -> None:
    """The new address opened its confirmation link: it becomes the contact's email. Refused
    (EmailChangeRefused, nothing changed) when the contact's address changed since the link was
    mailed, or when another contact of the workspace now holds the address; only the holder of
    that address, who opened the link, learns it."""
    with transaction.atomic():
        locked = Contact.objects.select_for_update().get(pk=contact.pk)
        if locked.erased_at is not None:
            raise EmailChangeRefused(_("we hold no data for this link any more"))
        if locked.email == email:
            return  # opened twice: already done
        if (locked.email or "") != previous_email:
            raise EmailChangeRefused(
                _(
                    "this link is out of date: the address changed since it was sent. "
                    "Ask for a new one from the preference centre."
                )
            )
        refused = EmailChangeRefused(
            _("this address cannot be used for this subscription; nothing was changed")
        )
        if _email_taken(locked, email):
            raise refused
        # An erased person's address comes back only with new consent recorded by staff; the
        # one who opened the link holds that address, so the reason is theirs to read.
        erased = erased_identifiers_find(workspace_id=locked.workspace_id, emails=[email])
        if email in erased:
            raise EmailChangeRefused(erased_refusal(erased_at=erased[email]))
        locked.email = email
        try:
            with transaction.atomic():
                locked.save(update_fields=["email", "updated_at"])
        except IntegrityError:
            raise refused from None
        consent_log_details_change(
            contact=locked, evidence=evidence, note="email changed (confirmed by the new address)"
        )
    contact.email = email
