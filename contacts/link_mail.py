"""Mails the system sends a contact itself: the preference-centre link a contact asks for, the
confirmation of a new email address, and the double opt-in confirmation (contacts.consent).

Whoever asks never sees the link: it goes to an address we hold (or to the new address being
confirmed), and the asker gets the same answer whether a mail left or not. Link mails are
throttled per contact (CONTACTS_LINK_MAIL_INTERVAL_MIN) so no page can be used to flood someone's
inbox.

Every one of them leaves through the product's email channel (#19): `system_mail_enqueue` writes a
Delivery row in the caller's transaction through CONTACTS_SYSTEM_MAIL_SENDER (delivery's
system_mail_request: contacts never imports delivery), and a task sends it with the workspace's
SendGrid account. What the mail says is decided when it is sent, by `system_mail_content`, in the
contact's interface language.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.utils import translation
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from contacts.language import interface_language
from contacts.links import double_opt_in_url, email_change_url, preference_url
from contacts.models import Channel, Consent, ConsentState, Contact

logger = logging.getLogger(__name__)

# The kinds of system mail; delivery.models.DeliveryKind holds the same values.
KIND_DOUBLE_OPT_IN = "double_opt_in"
KIND_PREFERENCES = "preference_link"
KIND_EMAIL_CHANGE = "email_change"


def system_mail_enqueue(*, contact: Contact, kind: str, address: str, purpose: str = "") -> bool:
    """Ask the email channel for one system mail to `address`, sent after commit. False, logged,
    when it could not even be recorded: the pages and the API answer the same either way."""
    request: Callable[..., int | None] = import_string(settings.CONTACTS_SYSTEM_MAIL_SENDER)
    try:
        request(contact=contact, kind=kind, address=address, purpose=purpose)
    except Exception:  # the asker's answer must not depend on the mail
        logger.exception("system mail not recorded", extra={"contact_id": contact.pk, "kind": kind})
        return False
    return True


def system_mail_content(
    *, kind: str, contact: Contact, address: str, purpose: str = ""
) -> tuple[str, str] | None:
    """Subject and text of a system mail as it is sent now, in the contact's interface language;
    None when it is no longer wanted (the contact was erased, or the opt-in it confirms is no
    longer pending)."""
    if contact.erased_at is not None:
        return None
    hours = settings.CONTACTS_PREFERENCE_LINK_MAX_AGE_HOURS
    with translation.override(interface_language(contact.locale, contact.workspace)):
        if kind == KIND_DOUBLE_OPT_IN:
            pending = Consent.objects.filter(
                contact=contact, channel=Channel.EMAIL, purpose=purpose, state=ConsentState.PENDING
            ).exists()
            if not pending:
                return None
            url = double_opt_in_url(contact_id=contact.pk, purpose=purpose)
            subject = settings.CONTACTS_DOUBLE_OPT_IN_SUBJECT or _(
                "Please confirm your subscription"
            )
            body = _(
                "Please confirm that you want to receive our emails by opening this link:\n\n"
                "%(url)s\n\nIf you did not ask for this, ignore this message."
            ) % {"url": url}
            return subject, body
        if kind == KIND_PREFERENCES:
            url = preference_url(contact_id=contact.pk)
            subject = _("Your link to manage your subscriptions")
            body = _(
                "You (or someone with one of our messages) asked to manage your subscriptions.\n\n"
                "Open this link to choose how we may contact you:\n\n%(url)s\n\n"
                "It works for %(hours)s hours. If you did not ask for it, ignore this message: "
                "nothing changes."
            ) % {"url": url, "hours": hours}
            return subject, body
        if kind == KIND_EMAIL_CHANGE:
            url = email_change_url(
                contact_id=contact.pk, email=address, previous_email=contact.email or ""
            )
            subject = _("Confirm your new email address")
            body = _(
                "Someone asked to use this address for their subscriptions with us.\n\n"
                "If it was you, confirm it by opening this link:\n\n%(url)s\n\n"
                "It works for %(hours)s hours. If it was not you, ignore this message: "
                "nothing changes."
            ) % {"url": url, "hours": hours}
            return subject, body
    raise ValueError(f"unknown system mail {kind!r}")


def _throttle_acquire(*, kind: str, contact_id: int) -> bool:
    """True for the first request of the interval (atomic: cache.add sets only an absent key)."""
    key = f"contacts:link-mail:{kind}:{contact_id}"
    try:
        return bool(cache.add(key, 1, timeout=settings.CONTACTS_LINK_MAIL_INTERVAL_MIN * 60))
    except Exception:
        # The cache (Redis) is unreachable: without the throttle nothing is sent, so a broken
        # cache can never become a way to flood an inbox.
        logger.exception("link mail throttle unavailable", extra={"contact_id": contact_id})
        return False


def preference_link_request(*, contact: Contact) -> None:
    """Mail a fresh preference-centre link to the contact's own address, at most once per
    interval. Returns nothing on purpose: the caller's answer must not depend on whether the
    contact has an address, was throttled or the mail failed."""
    address = contact.email
    if contact.erased_at is not None or not address:
        return
    if not _throttle_acquire(kind=KIND_PREFERENCES, contact_id=contact.pk):
        logger.info("preference link throttled", extra={"contact_id": contact.pk})
        return
    system_mail_enqueue(contact=contact, kind=KIND_PREFERENCES, address=address)


def email_change_request(*, contact: Contact, new_email: str) -> bool:
    """Mail a confirmation link to `new_email`; the contact's address changes only when it is
    opened there. False when the contact was sent one within the interval (nothing sent)."""
    if not _throttle_acquire(kind=KIND_EMAIL_CHANGE, contact_id=contact.pk):
        logger.info("email change confirmation throttled", extra={"contact_id": contact.pk})
        return False
    system_mail_enqueue(contact=contact, kind=KIND_EMAIL_CHANGE, address=new_email)
    return True
