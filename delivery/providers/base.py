"""The provider contract: what a channel sender takes, what it returns, and how it fails.

The dispatch task hands a sender plain dataclasses (never model instances) and gets back one
outcome per message, in the same order. Outcomes sort every provider answer into the few things
the Delivery state machine cares about: sent (with the provider's id), suppressed (the address is
unusable: stop sending to it), failed for good, deferred (not sent, safe to try again later) and
unknown (the request may have been acted on: never retry blindly).

Inside a provider module, single calls raise the exceptions below; the module's batch loop turns
them into outcomes. No Django model is imported here or in any provider module.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from continuity.api import ContinuityError


class ProviderError(ContinuityError):
    """Root of provider failures; ``code`` is the provider's own error code as text."""

    code = "provider_error"
    status_code = 502

    def __init__(self, detail: str, *, provider_code: str = "") -> None:
        super().__init__(detail)
        self.provider_code = provider_code


class ProviderRetryable(ProviderError):
    """The provider did not act on the request (5xx before acceptance, connection refused)."""

    code = "provider_retryable"


class ProviderThrottled(ProviderRetryable):
    """The provider asked us to slow down; ``retry_after_s`` is its hint (or our back-off)."""

    code = "provider_throttled"

    def __init__(self, detail: str, *, retry_after_s: float, provider_code: str = "") -> None:
        super().__init__(detail, provider_code=provider_code)
        self.retry_after_s = retry_after_s


class ProviderPermanent(ProviderError):
    """The request is wrong for good (bad address, payload too large, bad credentials)."""

    code = "provider_permanent"


class ProviderOutcomeUnknown(ProviderError):
    """The request left and no answer came back: it may have been acted on."""

    code = "provider_outcome_unknown"


class SuppressReason(enum.StrEnum):
    """Why an address must not be used again on this channel."""

    OPTED_OUT = "opted_out"
    INVALID_ADDRESS = "invalid_address"
    SUBSCRIPTION_GONE = "subscription_gone"


# --- what goes in -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushKeys:
    """A browser push subscription's keys (base64url, as the browser gives them)."""

    p256dh: str
    auth: str


@dataclass(frozen=True)
class OutboundMessage:
    """One recipient of a batch. ``to`` is an email address, an E.164 number or a push endpoint.

    ``merge_fields`` fill the batch content's placeholders for this recipient; ``headers`` are
    extra per-recipient headers (email); ``unsubscribe_url`` is the contact's one-click link.
    ``hold_from`` is when the contact's quiet hours begin: a sender that paces its requests must
    not start this one at or after it, and hands it back as ``Deferred`` with code
    ``quiet_hours`` instead.
    """

    delivery_id: int
    to: str
    merge_fields: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    unsubscribe_url: str = ""
    # Appended to an SMS sent on the soft opt-in, unless its text already says STOP: a message
    # sent on legitimate interest offers the opt-out every time (docs/privacy.md).
    opt_out_text: str = ""
    push_keys: PushKeys | None = None
    hold_from: datetime | None = None


# --- whose account sends (a workspace's own, resolved per batch; None: the install's) -------------


@dataclass(frozen=True)
class SendGridAccount:
    """A workspace's own SendGrid API key (plain only for the length of one batch)."""

    api_key: str = field(repr=False)


@dataclass(frozen=True)
class TwilioAccount:
    """A workspace's own Twilio account and the sender to use in it."""

    account_sid: str
    auth_token: str = field(repr=False)
    messaging_service_sid: str = ""
    from_number: str = ""


@dataclass(frozen=True)
class VapidKeys:
    """A workspace's own VAPID key pair (its subscriptions were made with ``public_key``)."""

    private_key: str = field(repr=False)
    public_key: str
    subject: str = ""


@dataclass(frozen=True)
class EmailContent:
    """Django template sources for subject, HTML and text; rendered once per batch.

    ``account`` is the workspace's own SendGrid account (None: the install's connection);
    ``credentials_error`` says the workspace's credentials could not be read: nothing is sent.
    """

    subject: str
    html: str
    text: str
    from_email: str = ""
    reply_to: Sequence[str] = ()
    tags: Sequence[str] = ()
    account: SendGridAccount | None = None
    credentials_error: str = ""


@dataclass(frozen=True)
class SmsContent:
    """A Django template source for the SMS text, rendered per recipient.

    ``account``: the workspace's own Twilio account (None: the install's); ``workspace_id``
    picks the workspace's status-callback URL, whose signature is checked with its auth token.
    """

    text: str
    account: TwilioAccount | None = None
    workspace_id: int | None = None
    credentials_error: str = ""


@dataclass(frozen=True)
class PushContent:
    """The notification; title/body/url are Django template sources rendered per recipient.

    ``topic`` (<= 32 URL-safe chars) lets the push service replace an undelivered earlier copy.
    """

    title: str
    body: str
    url: str = ""
    icon: str = ""
    topic: str = ""
    ttl_s: int | None = None
    urgency: str = ""
    vapid: VapidKeys | None = None
    credentials_error: str = ""


# --- what comes out -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    delivery_id: int
    provider_message_id: str
    provider: str
    cost_units: int = 1


@dataclass(frozen=True)
class Failed:
    """Permanent failure: retrying the same request cannot help."""

    delivery_id: int
    code: str
    text: str


@dataclass(frozen=True)
class Deferred:
    """Not sent (the provider never acted on it); safe to try again after ``retry_after_s``."""

    delivery_id: int
    code: str
    text: str
    retry_after_s: float = 0.0


@dataclass(frozen=True)
class Unknown:
    """The request may have been acted on: mark unknown, reconcile, never retry blindly."""

    delivery_id: int
    code: str
    text: str


@dataclass(frozen=True)
class Suppressed:
    """The address is unusable on this channel: the caller adds a suppression (or revokes)."""

    delivery_id: int
    reason: SuppressReason
    code: str
    text: str


Outcome = Sent | Failed | Deferred | Unknown | Suppressed

ContentT_contra = TypeVar("ContentT_contra", contravariant=True)


class ChannelSender(Protocol[ContentT_contra]):
    """What dispatch calls: one outcome per message, in the order given."""

    channel: str

    def send_batch(
        self, *, content: ContentT_contra, messages: Sequence[OutboundMessage]
    ) -> list[Outcome]: ...


CREDENTIALS_UNREADABLE = "credentials_unreadable"


def outcomes_credentials_unreadable(
    messages: Sequence[OutboundMessage], detail: str
) -> list[Outcome]:
    """The workspace's credentials cannot be decrypted: nothing leaves, under no other account
    either (sending as the install would be sending as someone else). An operator restores the
    key or an owner sets the secret again, then retries the failed rows."""
    return [Failed(m.delivery_id, CREDENTIALS_UNREADABLE, detail[:500]) for m in messages]


def outcome_for_error(delivery_id: int, exc: ProviderError) -> Outcome:
    """Sort one call's exception into its outcome (providers map codes to these classes)."""
    code = exc.provider_code or exc.code
    if isinstance(exc, ProviderOutcomeUnknown):
        return Unknown(delivery_id, code, str(exc))
    if isinstance(exc, ProviderThrottled):
        return Deferred(delivery_id, code, str(exc), exc.retry_after_s)
    if isinstance(exc, ProviderRetryable):
        return Deferred(delivery_id, code, str(exc))
    return Failed(delivery_id, code, str(exc))
