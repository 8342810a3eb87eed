"""“Send me a test”: one copy of a campaign's fallback message to the marketer's own address,
through the same sender and provider account as a real send, marked as a test.

Why not a Delivery row: a Delivery belongs to a contact of the audience, is UNIQUE per
(message, contact, channel) and is what reroute planning, reports, engagement and the sweeper
count. A test goes to a person who is usually not a contact, may be repeated, and must never
appear in those figures, so it takes a separate path that writes no Delivery at all: the
sender is called directly with a recipient whose delivery id is 0 (no row to update), and the
attempt is kept in the audit trail (who, which campaign, which channel, the outcome; not the
address). Consent does not apply: the recipient is the signed-in member, asking for it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext as _

from campaigns.models import Campaign
from contacts.models import Channel, Contact, PushSubscription
from contacts.normalize import FieldError, email_normalise, phone_normalise
from continuity.audit import audit_record
from continuity.tenancy import Access
from delivery.providers.base import (
    EmailContent,
    OutboundMessage,
    PushContent,
    PushKeys,
    Sent,
    SmsContent,
)
from delivery.senders import channel_content, channel_sender
from delivery.variants import message_languages

TEST_CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.PUSH)
TEST_HEADER = "X-Continuity-Test"
# A subject or text prefix the recipient sees, in the install's language.
SAMPLE_FIELDS = {"first_name": "Alex", "last_name": "Example", "email": "alex@example.com"}


@dataclass(frozen=True)
class TestSendResult:
    ok: bool
    detail: str


def quota_key(user_id: int) -> str:
    """The cache key counting a member's tests this hour."""
    return f"campaigns:test-send:{user_id}"


def _rate_limited(user_id: int) -> bool:
    """At most CAMPAIGNS_TEST_SENDS_PER_HOUR tests per member per hour (a fixed window): a test
    costs real provider money and reaches a real phone."""
    limit = settings.CAMPAIGNS_TEST_SENDS_PER_HOUR
    key = quota_key(user_id)
    cache.add(key, 0, timeout=3600)
    try:
        used = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=3600)
        used = 1
    return used > limit


def _address(channel: str, raw: str) -> str:
    if channel == Channel.EMAIL:
        return email_normalise(raw) or ""
    if channel == Channel.SMS:
        return phone_normalise(raw) or ""
    return raw.strip()


def _push_subscription(*, campaign: Campaign, email: str) -> PushSubscription | None:
    """A test push goes to a browser the member subscribed as a contact of this workspace (the
    preference page's push button) under the email they typed."""
    return (
        PushSubscription.objects.filter(
            contact__workspace_id=campaign.workspace_id,
            contact__email=email,
            contact__erased_at__isnull=True,
            active=True,
        )
        .order_by("-pk")
        .first()
    )


def _marked(content: Any, channel: str) -> Any:
    prefix = _("[TEST]") + " "
    if isinstance(content, EmailContent):
        return dataclasses.replace(content, subject=prefix + content.subject)
    if isinstance(content, SmsContent):
        return dataclasses.replace(content, text=prefix + content.text)
    if isinstance(content, PushContent):
        # A topic of its own: a test never replaces (or is replaced by) a real notification.
        return dataclasses.replace(content, title=prefix + content.title, topic="test")
    return content


def campaign_test_send(  # noqa: PLR0911 - one plain answer per reason it cannot send
    *,
    campaign: Campaign,
    channel: str,
    address: str,
    access: Access,
    contact: Contact | None = None,
    language: str = "",
) -> TestSendResult:
    """Send the campaign's fallback message on ``channel`` to ``address`` as a test, with
    ``contact``'s merge fields (a sample contact's without one), in the content a contact of
    ``language`` gets (empty: the contact's language, else the workspace's default). The caller
    checked the right to change the campaign; this checks the rate, the address and the
    content."""
    user_id = int(access.user.pk)
    if channel not in TEST_CHANNELS:
        return TestSendResult(False, _("Tests can be sent by email, SMS or web push."))
    message = campaign.message
    if message is None or channel not in message.channels_ready():
        return TestSendResult(
            False, _("Write the fallback message for this channel first, then send a test.")
        )
    try:
        to = _address(channel, address)
    except FieldError as exc:
        return TestSendResult(False, str(exc.message))
    if not to:
        return TestSendResult(False, _("Type the address to send the test to."))
    push_keys = None
    if channel == Channel.PUSH:
        subscription = _push_subscription(campaign=campaign, email=email_normalise(to) or "")
        if subscription is None:
            return TestSendResult(
                False,
                _(
                    "No browser is subscribed to push for that email address in this "
                    "workspace: subscribe one on your preference page first."
                ),
            )
        to = subscription.endpoint
        push_keys = PushKeys(p256dh=subscription.p256dh, auth=subscription.auth)
    if _rate_limited(user_id):
        return TestSendResult(
            False, _("You have sent many tests in the last hour: wait a little and try again.")
        )
    fields = (
        {key: str(value) for key, value in contact.merge_fields().items()}
        if contact is not None
        else dict(SAMPLE_FIELDS)
    )
    outbound = OutboundMessage(
        delivery_id=0,
        to=to,
        merge_fields=fields,
        headers={TEST_HEADER: "1"} if channel == Channel.EMAIL else {},
        push_keys=push_keys,
    )
    languages = message_languages(message=message)
    chosen = languages.language_for(
        locale=language or (contact.locale if contact is not None else ""), channel=channel
    )
    content = channel_content(
        message=message, channel=channel, language=chosen, languages=languages
    )
    content = _marked(content, channel)
    outcomes = channel_sender(channel).send_batch(content=content, messages=[outbound])
    outcome = outcomes[0] if outcomes else None
    ok = isinstance(outcome, Sent)
    audit_record(
        access=access,
        action="campaign.test_send",
        target=campaign,
        detail={
            "channel": channel,
            "language": chosen,
            "ok": ok,
            "outcome": type(outcome).__name__ if outcome else "none",
        },
    )
    if ok:
        return TestSendResult(True, _("Test sent. It is marked [TEST] and is not counted."))
    reason = getattr(outcome, "text", "") or getattr(outcome, "code", "") or ""
    return TestSendResult(
        False, _("The provider did not take the test: %(reason)s") % {"reason": reason}
    )
