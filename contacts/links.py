"""Signed links a contact uses without logging in. Each kind has its own salt, so one kind never
opens another, and each does one thing:

- unsubscribe: revokes marketing consent on one channel (travels in every mail's headers, so
  anyone a mail is forwarded to holds it: it opens nothing else);
- preferences: the preference centre (mailed on request to the address on file, short-lived);
- email change: confirms a new address, mailed to that address;
- double opt-in: confirms a pending subscription;
- push: attaches a browser subscription to a known contact.

They are signed with CONTACTS_LINK_SIGNING_KEY and verified with it and
CONTACTS_LINK_SIGNING_KEY_FALLBACKS, so the key rotates without breaking links already sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils.translation import gettext as _

from contacts.errors import BadLink, LinkExpired
from contacts.models import Channel

SALT_UNSUBSCRIBE = "contacts.unsubscribe"
SALT_PREFERENCES = "contacts.preferences"
SALT_DOUBLE_OPT_IN = "contacts.double-opt-in"
SALT_PUSH = "contacts.push"
SALT_EMAIL_CHANGE = "contacts.email-change"


@dataclass(frozen=True)
class LinkClaims:
    contact_id: int
    channel: str = ""
    purpose: str = ""
    # Email change: the address to confirm and the one it replaces (a stale link changes nothing).
    email: str = ""
    previous_email: str = ""


def _max_age(salt: str) -> timedelta:
    return {
        SALT_UNSUBSCRIBE: timedelta(days=settings.CONTACTS_UNSUBSCRIBE_LINK_MAX_AGE_DAYS),
        SALT_PREFERENCES: timedelta(hours=settings.CONTACTS_PREFERENCE_LINK_MAX_AGE_HOURS),
        SALT_EMAIL_CHANGE: timedelta(hours=settings.CONTACTS_PREFERENCE_LINK_MAX_AGE_HOURS),
        SALT_DOUBLE_OPT_IN: timedelta(days=settings.CONTACTS_DOUBLE_OPT_IN_MAX_AGE_DAYS),
        SALT_PUSH: timedelta(days=settings.CONTACTS_PUSH_TOKEN_MAX_AGE_DAYS),
    }[salt]


def _signing_key() -> str:
    # Settings refuse to start without a key outside DEBUG and the sandbox; this guards tests and
    # tools that override settings, so an empty key never signs anything.
    key: str = settings.CONTACTS_LINK_SIGNING_KEY
    if not key:
        raise ImproperlyConfigured("CONTACTS_LINK_SIGNING_KEY is empty: links cannot be signed")
    return key


def _fallback_keys() -> list[str | bytes]:
    # Always a list: None would make Django verify with SECRET_KEY_FALLBACKS instead.
    return [key for key in settings.CONTACTS_LINK_SIGNING_KEY_FALLBACKS if key]


def _absolute(path: str) -> str:
    return settings.CONTACTS_PUBLIC_BASE_URL.rstrip("/") + path


def token_make(
    *,
    salt: str,
    contact_id: int,
    channel: str = "",
    purpose: str = "",
    email: str = "",
    previous_email: str = "",
) -> str:
    payload: dict[str, Any] = {"c": contact_id}
    for name, value in (("ch", channel), ("p", purpose), ("e", email), ("o", previous_email)):
        if value:
            payload[name] = value
    return signing.dumps(payload, key=_signing_key(), salt=salt, compress=True)


def token_read(*, token: str, salt: str) -> LinkClaims:
    """The claims of a link, or BadLink / LinkExpired saying which."""
    try:
        payload = signing.loads(
            token,
            key=_signing_key(),
            fallback_keys=_fallback_keys(),
            salt=salt,
            max_age=_max_age(salt),
        )
    except signing.SignatureExpired:
        raise LinkExpired(
            _("this link has expired: use the link in a more recent message, or ask for a new one")
        ) from None
    except signing.BadSignature:
        raise BadLink(_("this link is not valid (it was changed or cut short)")) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("c"), int):
        raise BadLink(_("this link is not valid"))
    texts = {name: payload.get(name, "") for name in ("ch", "p", "e", "o")}
    if not all(isinstance(value, str) for value in texts.values()):
        raise BadLink(_("this link is not valid"))
    return LinkClaims(
        contact_id=payload["c"],
        channel=texts["ch"],
        purpose=texts["p"],
        email=texts["e"],
        previous_email=texts["o"],
    )


def unsubscribe_url(*, contact_id: int, channel: str = Channel.EMAIL) -> str:
    """One-click unsubscribe (RFC 8058): the List-Unsubscribe header target; a POST with
    List-Unsubscribe=One-Click revokes marketing consent for the channel."""
    token = token_make(salt=SALT_UNSUBSCRIBE, contact_id=contact_id, channel=channel)
    return _absolute(reverse("contacts:unsubscribe", args=[token]))


def unsubscribe_urls(*, contact_ids: Iterable[int], channel: str = Channel.EMAIL) -> dict[int, str]:
    """unsubscribe_url for many contacts (a send chunk): the route is reversed once, since a
    reverse() per recipient cost more than signing the token."""
    marker = "TOKEN-PLACEHOLDER"
    template = _absolute(reverse("contacts:unsubscribe", args=[marker]))
    return {
        contact_id: template.replace(
            marker, token_make(salt=SALT_UNSUBSCRIBE, contact_id=contact_id, channel=channel)
        )
        for contact_id in contact_ids
    }


def preference_url(*, contact_id: int) -> str:
    """The preference centre. Only ever mailed to the contact's own address (link_mail), never
    shown in a page: whoever holds it sees and edits the contact's details."""
    token = token_make(salt=SALT_PREFERENCES, contact_id=contact_id)
    return _absolute(reverse("contacts:preferences", args=[token]))


def email_change_url(*, contact_id: int, email: str, previous_email: str) -> str:
    """Confirms `email` as the contact's new address; mailed to that address only."""
    token = token_make(
        salt=SALT_EMAIL_CHANGE, contact_id=contact_id, email=email, previous_email=previous_email
    )
    return _absolute(reverse("contacts:email-change", args=[token]))


def double_opt_in_url(*, contact_id: int, purpose: str) -> str:
    token = token_make(
        salt=SALT_DOUBLE_OPT_IN, contact_id=contact_id, channel=Channel.EMAIL, purpose=purpose
    )
    return _absolute(reverse("contacts:confirm", args=[token]))


def push_token(*, contact_id: int) -> str:
    """What a site passes to the push snippet so a browser subscription joins a known contact."""
    return token_make(salt=SALT_PUSH, contact_id=contact_id)
