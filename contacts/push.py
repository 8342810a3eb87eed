"""Browser push subscriptions: registering one (which is also the contact's push opt-in) and
the provider-driven changes delivery/ reports back."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _

from contacts.consent import Evidence, consent_grant
from contacts.errors import InvalidPushSubscription
from contacts.models import Channel, ConsentSource, Contact, Purpose, PushSubscription
from continuity.models import Workspace
from continuity.outbound import OutboundRefused, push_endpoint_check

# 9999-12-31T23:59:59.999Z, the last instant a datetime holds.
EXPIRATION_MAX_MS = 253_402_300_799_999


def _b64url_bytes(value: Any, field: str) -> str:
    # The field's name (keys.p256dh, keys.auth) is the browser's JSON key: kept as it is.
    names = {"field": f"keys.{field}"}
    if not isinstance(value, str) or not value.strip():
        raise InvalidPushSubscription(_("%(field)s is missing") % names)
    text = value.strip()
    # The decoder skips characters outside the alphabet, so junk could decode fine and still
    # overflow the column; a real key is at most 88 characters.
    if len(text) > 100:
        raise InvalidPushSubscription(_("%(field)s is too long") % names)
    try:
        base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidPushSubscription(_("%(field)s is not base64url") % names) from None
    return text


def push_subscription_validate(*, data: Any) -> tuple[str, str, str, datetime | None]:
    """The browser's PushSubscription.toJSON(): endpoint, keys.p256dh, keys.auth, expirationTime.
    Returns the cleaned values or raises InvalidPushSubscription naming the field."""
    if not isinstance(data, dict):
        raise InvalidPushSubscription(_("expected the JSON of a browser PushSubscription"))
    endpoint = data.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidPushSubscription(_("endpoint is missing"))
    if len(endpoint) > 1000:
        raise InvalidPushSubscription(_("endpoint is not a usable URL"))
    # The server will POST to this address: only known push services (https, by name) pass, and
    # the sandbox's loopback push service while the sandbox is on. Names are resolved and their
    # addresses vetted when a push is sent (at connect time), not here.
    try:
        push_endpoint_check(url=endpoint)
    except OutboundRefused as exc:
        raise InvalidPushSubscription(
            _("endpoint refused: %(reason)s") % {"reason": exc.reason}
        ) from None
    keys = data.get("keys")
    if not isinstance(keys, dict):
        raise InvalidPushSubscription(_("keys (p256dh and auth) are missing"))
    p256dh = _b64url_bytes(keys.get("p256dh"), "p256dh")
    auth = _b64url_bytes(keys.get("auth"), "auth")
    raw_p256 = base64.urlsafe_b64decode(p256dh + "=" * (-len(p256dh) % 4))
    if len(raw_p256) != 65 or raw_p256[0] != 4:
        raise InvalidPushSubscription(_("keys.p256dh is not an uncompressed P-256 public key"))
    if len(base64.urlsafe_b64decode(auth + "=" * (-len(auth) % 4))) != 16:
        raise InvalidPushSubscription(_("keys.auth must be 16 bytes"))
    expiration = data.get("expirationTime")
    expires: datetime | None = None
    if expiration is not None:
        # Between 1970 and the year 9999: NaN, infinities and 1e300 would overflow (or silently
        # misplace) the datetime, and no browser sends a negative time.
        if (
            not isinstance(expiration, int | float)
            or isinstance(expiration, bool)
            or not 0 <= expiration <= EXPIRATION_MAX_MS
        ):
            raise InvalidPushSubscription(
                _("expirationTime must be milliseconds since 1970 or null")
            )
        from datetime import UTC

        expires = datetime.fromtimestamp(expiration / 1000, tz=UTC)
    return endpoint, p256dh, auth, expires


def push_subscription_register(
    *,
    workspace: Workspace,
    data: Any,
    contact: Contact | None,
    ip: str | None,
    user_agent: str,
    consent_text_version: str = "",
) -> PushSubscription:
    """Store (or move, inside the workspace) a browser subscription and record the push opt-in
    it stands for. Without a known contact, an anonymous one is created in the workspace."""
    if contact is not None and contact.workspace_id != workspace.pk:
        raise ValueError("the contact belongs to another workspace")
    endpoint, p256dh, auth, expires = push_subscription_validate(data=data)
    with transaction.atomic():
        if contact is None:
            contact = Contact.objects.create(workspace=workspace, attributes={"origin": "web-push"})
        subscription, _created = PushSubscription.objects.update_or_create(
            workspace=workspace,
            endpoint=endpoint,
            defaults={
                "contact": contact,
                "p256dh": p256dh,
                "auth": auth,
                "user_agent": user_agent[:500],
                "expiration_time": expires,
                "active": True,
                "failure_count": 0,
                "last_failure": "",
            },
        )
        consent_grant(
            contact=contact,
            channel=Channel.PUSH,
            purpose=Purpose.MARKETING,
            evidence=Evidence(
                source=ConsentSource.PUSH_SUBSCRIBE,
                ip=ip,
                user_agent=user_agent,
                consent_text_version=consent_text_version or settings.CONTACTS_CONSENT_TEXT_VERSION,
                source_detail=urlsplit(endpoint).hostname or "",
            ),
        )
    return subscription


def push_subscription_deactivate(*, subscription_id: int, reason: str) -> bool:
    """The push service said the subscription is gone (404/410). Returns whether it changed."""
    return bool(
        PushSubscription.objects.filter(pk=subscription_id, active=True).update(
            active=False, last_failure=reason[:300]
        )
    )


def push_subscriptions_record_failure(*, subscription_ids: Iterable[int], reason: str) -> int:
    """A send to these subscriptions failed for good (bad keys, refused): counted, kept active."""
    return PushSubscription.objects.filter(pk__any_of=list(subscription_ids)).update(
        failure_count=F("failure_count") + 1, last_failure=reason[:300]
    )
