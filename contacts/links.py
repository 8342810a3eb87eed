"""Signed links a contact uses without logging in: one-click unsubscribe, preference centre and
double opt-in confirmation. Each kind has its own salt, so one kind never opens another."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.urls import reverse

from contacts.errors import BadLink, LinkExpired
from contacts.models import Channel

SALT_UNSUBSCRIBE = "contacts.unsubscribe"
SALT_PREFERENCES = "contacts.preferences"
SALT_DOUBLE_OPT_IN = "contacts.double-opt-in"
SALT_PUSH = "contacts.push"


@dataclass(frozen=True)
class LinkClaims:
    contact_id: int
    channel: str = ""
    purpose: str = ""


def _max_age(salt: str) -> timedelta:
    days = {
        SALT_UNSUBSCRIBE: settings.CONTACTS_UNSUBSCRIBE_LINK_MAX_AGE_DAYS,
        SALT_PREFERENCES: settings.CONTACTS_PREFERENCE_LINK_MAX_AGE_DAYS,
        SALT_DOUBLE_OPT_IN: settings.CONTACTS_DOUBLE_OPT_IN_MAX_AGE_DAYS,
        SALT_PUSH: settings.CONTACTS_PREFERENCE_LINK_MAX_AGE_DAYS,
    }[salt]
    return timedelta(days=days)


def _absolute(path: str) -> str:
    return settings.CONTACTS_PUBLIC_BASE_URL.rstrip("/") + path


def token_make(*, salt: str, contact_id: int, channel: str = "", purpose: str = "") -> str:
    payload: dict[str, Any] = {"c": contact_id}
    if channel:
        payload["ch"] = channel
    if purpose:
        payload["p"] = purpose
    return signing.dumps(payload, salt=salt, compress=True)


def token_read(*, token: str, salt: str) -> LinkClaims:
    """The claims of a link, or BadLink / LinkExpired saying which."""
    try:
        payload = signing.loads(token, salt=salt, max_age=_max_age(salt))
    except signing.SignatureExpired:
        raise LinkExpired(
            "this link has expired: use the link in a more recent message, or ask for a new one"
        ) from None
    except signing.BadSignature:
        raise BadLink("this link is not valid (it was changed or cut short)") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("c"), int):
        raise BadLink("this link is not valid")
    return LinkClaims(
        contact_id=payload["c"], channel=payload.get("ch", ""), purpose=payload.get("p", "")
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
    token = token_make(salt=SALT_PREFERENCES, contact_id=contact_id)
    return _absolute(reverse("contacts:preferences", args=[token]))


def double_opt_in_url(*, contact_id: int, purpose: str) -> str:
    token = token_make(
        salt=SALT_DOUBLE_OPT_IN, contact_id=contact_id, channel=Channel.EMAIL, purpose=purpose
    )
    return _absolute(reverse("contacts:confirm", args=[token]))


def push_token(*, contact_id: int) -> str:
    """What a site passes to the push snippet so a browser subscription joins a known contact."""
    return token_make(salt=SALT_PUSH, contact_id=contact_id)
