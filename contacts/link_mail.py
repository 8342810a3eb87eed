"""Mails that carry a signed link to a contact's own address: the preference-centre link a
contact asks for, and the confirmation of a new email address.

Whoever asks never sees the link: it goes to an address we hold (or to the new address being
confirmed), and the asker gets the same answer whether a mail left or not. Mails are throttled
per contact (CONTACTS_LINK_MAIL_INTERVAL_MIN) so no page can be used to flood someone's inbox.

Every system mail leaves through `link_mail_send`: moving system mail to the email channel (#19)
changes that one function.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from contacts.language import interface_language
from contacts.links import double_opt_in_url, email_change_url, preference_url
from contacts.models import Contact

logger = logging.getLogger(__name__)

KIND_PREFERENCES = "preferences"
KIND_EMAIL_CHANGE = "email-change"


def link_mail_send(*, contact_id: int, address: str, subject: str, body: str, kind: str) -> bool:
    """Send one system mail to one address through Django's mail API (EMAIL_BACKEND). False,
    logged, when the mail API fails: the pages answer the same either way."""
    try:
        send_mail(subject=subject, message=body, from_email=None, recipient_list=[address])
    except Exception:  # any transport's failure: the answer must not depend on it
        logger.exception("system mail failed", extra={"contact_id": contact_id, "kind": kind})
        return False
    logger.info("system mail sent", extra={"contact_id": contact_id, "kind": kind})
    return True


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
    contact_id, language = contact.pk, contact_mail_language(contact)
    transaction.on_commit(
        lambda: _preference_link_mail(contact_id=contact_id, address=address, language=language)
    )


def contact_mail_language(contact: Contact) -> str:
    """The interface language a system mail to ``contact`` is written in: theirs, else their
    workspace's, else the install's; never the language of whoever's request sent it."""
    return interface_language(contact.locale, contact.workspace)


def _preference_link_mail(*, contact_id: int, address: str, language: str) -> None:
    url = preference_url(contact_id=contact_id)
    hours = settings.CONTACTS_PREFERENCE_LINK_MAX_AGE_HOURS
    with translation.override(language):
        subject = _("Your link to manage your subscriptions")
        body = _(
            "You (or someone with one of our messages) asked to manage your subscriptions.\n\n"
            "Open this link to choose how we may contact you:\n\n%(url)s\n\n"
            "It works for %(hours)s hours. If you did not ask for it, ignore this message: "
            "nothing changes."
        ) % {"url": url, "hours": hours}
    link_mail_send(
        contact_id=contact_id, address=address, subject=subject, body=body, kind=KIND_PREFERENCES
    )


def email_change_request(*, contact: Contact, new_email: str) -> bool:
    """Mail a confirmation link to `new_email`; the contact's address changes only when it is
    opened there. False when the contact was sent one within the interval (nothing sent)."""
    if not _throttle_acquire(kind=KIND_EMAIL_CHANGE, contact_id=contact.pk):
        logger.info("email change confirmation throttled", extra={"contact_id": contact.pk})
        return False
    contact_id, previous = contact.pk, contact.email or ""
    language = contact_mail_language(contact)
    transaction.on_commit(
        lambda: _email_change_mail(
            contact_id=contact_id, new_email=new_email, previous_email=previous, language=language
        )
    )
    return True


def _email_change_mail(
    *, contact_id: int, new_email: str, previous_email: str, language: str
) -> None:
    url = email_change_url(contact_id=contact_id, email=new_email, previous_email=previous_email)
    hours = settings.CONTACTS_PREFERENCE_LINK_MAX_AGE_HOURS
    with translation.override(language):
        subject = _("Confirm your new email address")
        body = _(
            "Someone asked to use this address for their subscriptions with us.\n\n"
            "If it was you, confirm it by opening this link:\n\n%(url)s\n\n"
            "It works for %(hours)s hours. If it was not you, ignore this message: "
            "nothing changes."
        ) % {"url": url, "hours": hours}
    link_mail_send(
        contact_id=contact_id, address=new_email, subject=subject, body=body, kind=KIND_EMAIL_CHANGE
    )


# The install's default subject, marked so that it is translated; a subject set in
# CONTACTS_DOUBLE_OPT_IN_SUBJECT is the business's own words and is sent as written.
DOUBLE_OPT_IN_DEFAULT_SUBJECT = gettext_noop("Please confirm your subscription")


def double_opt_in_mail_render(*, contact_id: int, purpose: str) -> tuple[str, str]:
    """Subject and body of the double opt-in mail, in the contact's language (their
    workspace's when they have none), whoever's request or task asks for it."""
    contact = Contact.objects.select_related("workspace").filter(pk=contact_id).first()
    language = contact_mail_language(contact) if contact is not None else settings.LANGUAGE_CODE
    url = double_opt_in_url(contact_id=contact_id, purpose=purpose)
    with translation.override(language):
        configured = settings.CONTACTS_DOUBLE_OPT_IN_SUBJECT
        subject = _(configured) if configured == DOUBLE_OPT_IN_DEFAULT_SUBJECT else configured
        body = _(
            "Please confirm that you want to receive our emails by opening this link:\n\n"
            "%(url)s\n\nIf you did not ask for this, ignore this message."
        ) % {"url": url}
    return subject, body
