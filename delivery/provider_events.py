"""Provider webhooks in, normalised events out: verification and parsing, no database.

The views that store receipts and apply these events to Delivery rows call these functions first;
each one either returns events or raises ``WebhookRejected`` with the 4xx status and reason the
view answers with (the view keeps the receipt either way).

- SendGrid's event webhook: anymail's SendGrid tracking view does the ECDSA P-256 signature check
  (``SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY``) and the event mapping. On top: the key is
  required (an unsigned webhook is refused, never trusted), the signed timestamp must be within
  ``DELIVERY_WEBHOOK_MAX_AGE_S`` of now, and a signature already seen is refused as a replay.
- The failover ESP's event webhook: a SendGrid account of its own, so the same checks with its
  own key (``DELIVERY_EMAIL_FAILOVER_WEBHOOK_VERIFICATION_KEY``) and provider "failover".
- WhatsApp Cloud API notifications: ``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body with
  ``WHATSAPP_APP_SECRET``), message statuses out; Meta's GET subscription handshake.
- Twilio's status callbacks and inbound messages: ``RequestValidator`` over the URL Twilio called,
  rebuilt from ``DELIVERY_PUBLIC_BASE_URL`` (behind a proxy the Host header is not what Twilio
  signed), with every POST parameter, since Twilio adds parameters without notice.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from twilio.request_validator import RequestValidator

from continuity.api import ContinuityError
from continuity.inputs import InputRejected, json_parse, text_storable, unix_seconds_parse
from continuity.sms_keywords import HELP_WORDS, START_WORDS, STOP_WORDS, keyword_normalise
from delivery.credentials import CredentialsUnreadable, whatsapp_app_secrets

# The provider name the email sender records for mail the failover ESP took (Sent.provider).
FAILOVER = "failover"


class WebhookRejected(ContinuityError):
    code = "webhook_rejected"

    def __init__(self, detail: str, *, status_code: int = 400) -> None:
        super().__init__(detail)
        self.status_code = status_code


@dataclasses.dataclass(frozen=True)
class StatusEvent:
    """A provider's word about one message. ``status`` is anymail's event type for email
    (delivered, bounced, rejected, complained, unsubscribed, opened, clicked, deferred, queued)
    and Twilio's MessageStatus for SMS (sent, delivered, undelivered, failed, ...)."""

    provider: str
    message_id: str
    status: str
    error_code: str = ""
    error_text: str = ""
    recipient: str = ""
    event_id: str = ""
    delivery_id: int | None = None
    timestamp: datetime | None = None
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)


class OptAction(enum.StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


@dataclasses.dataclass(frozen=True)
class InboundSms:
    """A verified inbound SMS, read for keywords: ``keyword`` is the whole message as one
    upper-cased word ("" when it is more than one word), ``opt_out_type`` what Twilio's Advanced
    Opt-Out recognised ("" without it)."""

    phone: str
    keyword: str
    opt_out_type: str = ""
    message_id: str = ""
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass(frozen=True)
class OptEvent:
    """An inbound SMS that changes (or asks about) the sender's SMS consent."""

    phone: str
    action: OptAction
    keyword: str
    message_id: str = ""
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)


def _replay_refuse(*, provider: str, signature: str) -> None:
    # A signature is unique to its body (and, for SendGrid, its timestamp); seeing one twice
    # within the freshness window means someone replayed a captured request.
    key = f"delivery:webhook-seen:{provider}:{hashlib.sha256(signature.encode()).hexdigest()}"
    if not cache.add(key, 1, timeout=settings.DELIVERY_WEBHOOK_MAX_AGE_S * 2):
        raise WebhookRejected("this signed request was already received (replay)", status_code=409)


# --- SendGrid -----------------------------------------------------------------------------------


def sendgrid_events_parse(
    *,
    request: HttpRequest,
    now: float | None = None,
    verification_key: str | None = None,
    provider: str = "sendgrid",
) -> list[StatusEvent]:
    """Verify a SendGrid event-webhook POST and return its events.

    ``verification_key``: the SendGrid account's public key (a workspace's own account signs
    with its own); None: the install's setting. ``provider`` names the account the events are
    from ("failover": the failover ESP, a SendGrid account of its own; see
    ``failover_events_parse``)."""
    key = (
        settings.ANYMAIL.get("SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY")
        if verification_key is None
        else verification_key
    )
    if not key:
        setting = (
            "DELIVERY_EMAIL_FAILOVER_WEBHOOK_VERIFICATION_KEY"
            if provider == FAILOVER
            else "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY"
        )
        raise WebhookRejected(
            f"{provider} event verification is not configured ({setting}): "
            "refusing unsigned events",
            status_code=403,
        )
    signature = request.headers.get("X-Twilio-Email-Event-Webhook-Signature", "")
    stamp = request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp", "")
    if not signature or not stamp:
        raise WebhookRejected("signature or timestamp header missing", status_code=401)
    try:
        # Parsed before the (costlier) signature check; absurd values (400 nines) are refused
        # here instead of overflowing the freshness arithmetic below.
        signed_at = unix_seconds_parse(value=stamp, what="timestamp header")
    except InputRejected as exc:
        raise WebhookRejected(exc.detail) from None
    view = SendGridTrackingWebhookView(tracking_webhook_verification_key=key)
    try:
        view.run_validators(request)
    except AnymailWebhookValidationFailure as exc:
        raise WebhookRejected(f"signature does not verify: {exc}", status_code=403) from exc
    current = time.time() if now is None else now
    if abs(current - signed_at) > settings.DELIVERY_WEBHOOK_MAX_AGE_S:
        raise WebhookRejected(
            f"signed {int(current - signed_at)} s from now, outside the "
            f"{settings.DELIVERY_WEBHOOK_MAX_AGE_S} s window (stale or replayed)",
            status_code=403,
        )
    try:
        # NUL (or a lone surrogate) in a signed body is replaced, not refused: the events are
        # otherwise SendGrid's own, a 4xx would make it retry the same bytes for 72 hours, and a
        # bounce or complaint in the batch must not be lost. The receipt keeps the body as sent.
        payload = json_parse(raw=request.body, nul="replace")
    except InputRejected as exc:
        raise WebhookRejected(exc.detail) from None
    if not isinstance(payload, list) or not all(
        isinstance(e, dict) and isinstance(e.get("event"), str) for e in payload
    ):
        raise WebhookRejected("body must be a JSON array of events with an 'event' field")
    _replay_refuse(provider=provider, signature=signature)
    return [_sendgrid_event(view, raw, index=i, provider=provider) for i, raw in enumerate(payload)]


def failover_events_parse(*, request: HttpRequest, now: float | None = None) -> list[StatusEvent]:
    """Verify the failover ESP's event-webhook POST and return its events (provider
    "failover"). The failover ESP is a SendGrid account of its own (DELIVERY_EMAIL_FAILOVER_*
    are anymail SendGrid options): the same signed event format, verified with that account's
    key, ``DELIVERY_EMAIL_FAILOVER_WEBHOOK_VERIFICATION_KEY``; without it, events are refused."""
    return sendgrid_events_parse(
        request=request,
        now=now,
        verification_key=settings.DELIVERY_EMAIL_FAILOVER_WEBHOOK_VERIFICATION_KEY,
        provider=FAILOVER,
    )


def _sendgrid_event(
    view: SendGridTrackingWebhookView, raw: dict[str, Any], *, index: int, provider: str
) -> StatusEvent:
    try:
        # anymail trusts the event's types: a string timestamp, one past year 9999 or a
        # non-string reason raises from inside it.
        event = view.esp_to_anymail_event(raw)
    except (TypeError, ValueError, OverflowError, OSError, AttributeError) as exc:
        raise WebhookRejected(f"event [{index}] cannot be read: {str(exc)[:200]}") from None
    delivery = str(raw.get("delivery_id", ""))
    return StatusEvent(
        provider=provider,
        message_id=str(event.message_id or ""),
        status=str(event.event_type),
        error_code=str(raw.get("status") or event.reject_reason or ""),
        error_text=str(event.mta_response or "")[:500],
        recipient=str(event.recipient or ""),
        event_id=str(event.event_id or ""),
        # isdecimal, not isdigit: "²" is a digit that int() refuses; 18 digits fit a bigint.
        delivery_id=int(delivery) if delivery.isdecimal() and len(delivery) <= 18 else None,
        timestamp=event.timestamp,
        raw=raw,
    )


# --- WhatsApp Cloud API -------------------------------------------------------------------------


def whatsapp_subscription_verify(*, request: HttpRequest) -> str:
    """Meta's subscription handshake (GET ``hub.mode=subscribe``, ``hub.verify_token``,
    ``hub.challenge``): the challenge to echo, or WebhookRejected when the token is not ours."""
    expected = settings.WHATSAPP_WEBHOOK_VERIFY_TOKEN
    if not expected:
        raise WebhookRejected(
            "WhatsApp webhook subscription is not configured (WHATSAPP_WEBHOOK_VERIFY_TOKEN)",
            status_code=403,
        )
    token = request.GET.get("hub.verify_token", "")
    if request.GET.get("hub.mode") != "subscribe" or not hmac.compare_digest(
        token.encode(), expected.encode()
    ):
        raise WebhookRejected("subscription verify token does not match", status_code=403)
    challenge = request.GET.get("hub.challenge", "")
    if not challenge.isdecimal() or len(challenge) > 32:
        raise WebhookRejected("hub.challenge must be digits")
    return challenge


def _whatsapp_phone_number_ids(payload: Any) -> set[str]:
    """The phone number ids a notification names (entry[].changes[].value.metadata), read
    before its signature is checked only to pick the app secret that must have signed it; a
    body that is not a notification names none (and fails its own checks after)."""
    found: set[str] = set()
    entries = payload.get("entry") if isinstance(payload, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            metadata = value.get("metadata") if isinstance(value, dict) else None
            number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            if isinstance(number, str | int) and len(found) < 100:
                found.add(str(number))
    return found


def _whatsapp_signature_check(request: HttpRequest, *, phone_number_ids: set[str]) -> str:
    try:
        secrets = whatsapp_app_secrets(phone_number_ids=phone_number_ids)
    except CredentialsUnreadable:
        raise WebhookRejected(
            "the workspace's stored Meta app secret cannot be read: set it again",
            status_code=403,
        ) from None
    if len(secrets) > 1:
        raise WebhookRejected(
            "the notification names WhatsApp numbers of different Meta apps; each app's "
            "notifications are signed and sent apart"
        )
    secret = next(iter(secrets))
    if not secret:
        raise WebhookRejected(
            "WhatsApp webhook verification is not configured (WHATSAPP_APP_SECRET): "
            "refusing unsigned events",
            status_code=403,
        )
    header = request.headers.get("X-Hub-Signature-256", "")
    if not header:
        raise WebhookRejected("X-Hub-Signature-256 header missing", status_code=401)
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(header.strip().encode(), expected.encode()):
        raise WebhookRejected("X-Hub-Signature-256 does not verify", status_code=403)
    return header


def _whatsapp_list(parent: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = parent.get(key, [])
    if not isinstance(value, list):
        raise WebhookRejected(f"{where}.{key} must be a list")
    return value


def whatsapp_statuses_parse(*, request: HttpRequest) -> list[StatusEvent]:
    """Verify a WhatsApp Cloud API webhook POST (``X-Hub-Signature-256``: HMAC-SHA256 of the raw
    body with the app secret) and return its message statuses (sent, delivered, read, failed).

    Inbound messages and other fields in the same notification are not statuses: they are
    left out. Meta signs no timestamp and retries a delivery with the same bytes, so a signature
    seen within the replay window is refused (409); later copies can only repeat transitions
    already made (statuses move rows forward only)."""
    # Parsed once: the numbers it names pick the secret; its errors are told only after the
    # signature verifies (an unsigned body learns nothing of how it was read).
    try:
        payload: Any = json_parse(raw=request.body, nul="replace")
        unreadable: InputRejected | None = None
    except InputRejected as exc:
        payload, unreadable = None, exc
    signature = _whatsapp_signature_check(
        request, phone_number_ids=_whatsapp_phone_number_ids(payload)
    )
    if unreadable is not None:
        raise WebhookRejected(unreadable.detail)
    if not isinstance(payload, dict):
        raise WebhookRejected("body must be a JSON object with an 'entry' list")
    events: list[StatusEvent] = []
    for e, entry in enumerate(_whatsapp_list(payload, "entry", "body")):
        if not isinstance(entry, dict):
            raise WebhookRejected(f"entry[{e}] must be an object")
        for c, change in enumerate(_whatsapp_list(entry, "changes", f"entry[{e}]")):
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                raise WebhookRejected(f"entry[{e}].changes[{c}].value must be an object")
            where = f"entry[{e}].changes[{c}].value"
            for i, raw in enumerate(_whatsapp_list(value, "statuses", where)):
                events.append(_whatsapp_status(raw, where=f"{where}.statuses[{i}]"))
    _replay_refuse(provider="whatsapp", signature=signature)
    return events


def _whatsapp_status(raw: Any, *, where: str) -> StatusEvent:
    if not isinstance(raw, dict):
        raise WebhookRejected(f"{where} must be an object")
    message_id, status = raw.get("id"), raw.get("status")
    if not isinstance(message_id, str) or not message_id or not isinstance(status, str):
        raise WebhookRejected(f"{where} needs a message 'id' and a 'status'")
    errors = raw.get("errors")
    error = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    detail = error.get("error_data", {}) if isinstance(error.get("error_data"), dict) else {}
    return StatusEvent(
        provider="whatsapp",
        message_id=text_storable(message_id[:100]),
        status=text_storable(status.lower()[:30]),
        error_code=text_storable(str(error.get("code", ""))[:50]),
        error_text=text_storable(str(detail.get("details") or error.get("title") or "")[:500]),
        recipient=text_storable(str(raw.get("recipient_id", ""))[:50]),
        raw={"status": status},
    )


# --- Twilio -------------------------------------------------------------------------------------


def twilio_public_url(*, request: HttpRequest) -> str:
    """The URL Twilio called (and signed): the public base URL plus this request's path."""
    return settings.DELIVERY_PUBLIC_BASE_URL.rstrip("/") + request.get_full_path()


@dataclasses.dataclass(frozen=True)
class TwilioVerifier:
    """The Twilio account a callback must be signed by (a workspace's own, or the install's)."""

    account_sid: str
    auth_token: str = dataclasses.field(repr=False)


def _install_twilio() -> TwilioVerifier:
    return TwilioVerifier(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN)


def _twilio_params(
    request: HttpRequest, accounts: Sequence[TwilioVerifier] | None
) -> dict[str, str]:
    candidates = list(accounts or [_install_twilio()])
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        raise WebhookRejected("X-Twilio-Signature header missing", status_code=401)
    params = request.POST.dict()
    # The AccountSid the request claims picks the token to check it with (the signature then
    # proves the claim); without one, the first candidate's.
    claimed = params.get("AccountSid", "")
    account = next(
        (a for a in candidates if a.account_sid == claimed), None if claimed else candidates[0]
    )
    if account is None:
        raise WebhookRejected("callback for another Twilio account", status_code=403)
    validator = RequestValidator(account.auth_token)
    if not validator.validate(twilio_public_url(request=request), params, signature):
        raise WebhookRejected("X-Twilio-Signature does not verify", status_code=403)
    # Verified over the parameters as sent; from here on NUL and lone surrogates are replaced
    # so nothing downstream (pending events, consent evidence) fails to store. Twilio signed
    # them, so the request is answered 2xx like any other: its retry would carry the same bytes.
    params = {text_storable(k): text_storable(v) for k, v in params.items()}
    if params.get("AccountSid") and params["AccountSid"] != account.account_sid:
        raise WebhookRejected("callback for another Twilio account", status_code=403)
    _replay_refuse(provider="twilio", signature=signature)
    return params


def twilio_status_parse(
    *, request: HttpRequest, accounts: Sequence[TwilioVerifier] | None = None
) -> StatusEvent:
    """Verify a Twilio StatusCallback (signed by one of ``accounts``, the one its AccountSid
    names; None: the install's) and return the message's new status."""
    params = _twilio_params(request, accounts)
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    if not sid or not status:
        raise WebhookRejected("MessageSid and MessageStatus are required")
    return StatusEvent(
        provider="twilio",
        message_id=sid,
        status=status.lower(),
        error_code=params.get("ErrorCode", ""),
        error_text=params.get("ErrorMessage", "")[:500],
        recipient=params.get("To", ""),
        raw=params,
    )


def twilio_inbound_read(
    *, request: HttpRequest, accounts: Sequence[TwilioVerifier] | None = None
) -> InboundSms:
    """Verify an inbound SMS and read what keywords are matched against (delivery.sms_keywords
    adds each workspace's own words to Twilio's)."""
    params = _twilio_params(request, accounts)
    phone = params.get("From", "")
    if not phone:
        raise WebhookRejected("From is required")
    words = params.get("Body", "").strip().split()
    return InboundSms(
        phone=phone,
        # Like Twilio, a keyword counts only as the whole message, trailing punctuation aside.
        keyword=keyword_normalise(words[0]) if len(words) == 1 else "",
        opt_out_type=params.get("OptOutType", "").strip().upper(),
        message_id=params.get("MessageSid", ""),
        raw=params,
    )


def twilio_inbound_parse(
    *, request: HttpRequest, accounts: Sequence[TwilioVerifier] | None = None
) -> OptEvent | None:
    """Verify an inbound SMS; one of Twilio's opt-out/opt-in/help keywords becomes an event,
    else None.

    Advanced Opt-Out sends ``OptOutType`` (STOP/START/HELP), which wins over our own reading of
    the body (a business may have configured its own keywords there).
    """
    inbound = twilio_inbound_read(request=request, accounts=accounts)
    keyword = inbound.keyword
    action: OptAction | None = None
    if inbound.opt_out_type:
        action = {"STOP": OptAction.OPT_OUT, "START": OptAction.OPT_IN, "HELP": OptAction.HELP}.get(
            inbound.opt_out_type
        )
        keyword = inbound.opt_out_type
    elif keyword in STOP_WORDS:
        action = OptAction.OPT_OUT
    elif keyword in START_WORDS:
        action = OptAction.OPT_IN
    elif keyword in HELP_WORDS:
        action = OptAction.HELP
    if action is None:
        return None
    return OptEvent(
        phone=inbound.phone,
        action=action,
        keyword=keyword,
        message_id=inbound.message_id,
        raw=inbound.raw,
    )
