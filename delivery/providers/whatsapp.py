"""WhatsApp template messages as an owned channel: one Cloud API call per delivery.

Adapts ``WhatsAppPublisher.send_template`` (the Graph pipeline, timeouts and error taxonomy of the
social publishers) to the channel-sender contract. An
unanswered send stays unknown: the Cloud API lists no sent messages to reconcile against.
The number comes from the content (the campaign's account or the workspace's own number), else
from settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from delivery.providers.base import (
    Deferred,
    Failed,
    OutboundMessage,
    Outcome,
    Sent,
    Suppressed,
    SuppressReason,
    Unknown,
    outcomes_credentials_unreadable,
)
from delivery.publishers.base import (
    WHATSAPP,
    PublishPermanent,
    PublishThrottled,
    PublishTransient,
    PublishUnknown,
    SocialAccountRef,
)
from delivery.publishers.whatsapp import WhatsAppPublisher
from delivery.templating import (
    TEMPLATE_INVALID,
    MarketerTemplateError,
    marketer_template_compile,
    marketer_template_render,
)

# Graph codes that say this recipient cannot be reached on WhatsApp, whatever we send:
# 131026 not a WhatsApp user / cannot receive, 131050 the user stopped marketing messages.
UNREACHABLE_CODES = frozenset({131026})
OPTED_OUT_CODES = frozenset({131050})


@dataclass(frozen=True)
class WhatsAppContent:
    """An approved template; ``parameters`` are marketer template sources (delivery.templating)
    for the body's {{1}}..."""

    template: str
    language: str
    parameters: Sequence[str] = ()
    # The business number to send from (the campaign's WhatsApp account, else the workspace's
    # own number); None: the settings'.
    account: SocialAccountRef | None = None
    credentials_error: str = ""


def whatsapp_account() -> SocialAccountRef:
    return SocialAccountRef(
        network=WHATSAPP,
        access_token=settings.WHATSAPP_ACCESS_TOKEN,
        phone_number_id=settings.WHATSAPP_PHONE_NUMBER_ID,
    )


class WhatsAppSender:
    channel = "whatsapp"
    provider = "whatsapp"

    def __init__(
        self,
        *,
        publisher: WhatsAppPublisher | None = None,
        account: SocialAccountRef | None = None,
    ) -> None:
        self.publisher = publisher or WhatsAppPublisher()
        self.account = account

    def send_batch(
        self, *, content: WhatsAppContent, messages: Sequence[OutboundMessage]
    ) -> list[Outcome]:
        if content.credentials_error:
            return outcomes_credentials_unreadable(messages, content.credentials_error)
        account = content.account or self.account or whatsapp_account()
        try:
            templates = [marketer_template_compile(p) for p in content.parameters]
        except MarketerTemplateError as exc:
            # A template saved before the rules: fail its deliveries with the reason.
            return [Failed(m.delivery_id, TEMPLATE_INVALID, str(exc)[:500]) for m in messages]
        outcomes: list[Outcome] = []
        stop: Outcome | None = None
        for message in messages:
            if stop is not None:
                # After an outage, a throttle or a dead token, the rest of the chunk would only
                # hammer the API for the same answer: defer (or fail) them without calling.
                outcomes.append(_like(stop, message.delivery_id))
                continue
            components: list[dict[str, Any]] = []
            if templates:
                # Parameters are plain text to WhatsApp: no HTML escaping, as for SMS.
                try:
                    texts = [
                        marketer_template_render(t, message.merge_fields, autoescape=False)
                        for t in templates
                    ]
                except MarketerTemplateError as exc:
                    outcomes.append(Failed(message.delivery_id, TEMPLATE_INVALID, str(exc)[:500]))
                    continue
                components = [
                    {
                        "type": "body",
                        "parameters": [{"type": "text", "text": text} for text in texts],
                    }
                ]
            outcome = self._send_one(account, content, message, components)
            outcomes.append(outcome)
            if isinstance(outcome, Deferred) or (
                isinstance(outcome, Failed) and outcome.code == "reauth"
            ):
                stop = outcome
        return outcomes

    def _send_one(  # noqa: PLR0911 - one return per outcome of the taxonomy
        self,
        account: SocialAccountRef,
        content: WhatsAppContent,
        message: OutboundMessage,
        components: list[dict[str, Any]],
    ) -> Outcome:
        delivery_id = message.delivery_id
        try:
            result = self.publisher.send_template(
                account=account,
                to_phone=message.to,
                template_name=content.template,
                language=content.language,
                components=components,
            )
        except PublishThrottled as exc:
            return Deferred(delivery_id, _code(exc.code, "throttled"), str(exc), exc.retry_after_s)
        except PublishTransient as exc:
            return Deferred(delivery_id, _code(exc.code, "transient"), str(exc))
        except PublishUnknown as exc:
            return Unknown(delivery_id, _code(exc.code, "unknown"), str(exc))
        except PublishPermanent as exc:
            if exc.code in OPTED_OUT_CODES:
                return Suppressed(delivery_id, SuppressReason.OPTED_OUT, str(exc.code), str(exc))
            if exc.code in UNREACHABLE_CODES:
                return Suppressed(
                    delivery_id, SuppressReason.INVALID_ADDRESS, str(exc.code), str(exc)
                )
            return Failed(
                delivery_id,
                "reauth" if exc.needs_reauth else _code(exc.code, "permanent"),
                str(exc),
            )
        return Sent(delivery_id, result.external_id, self.provider)


def _code(code: int | None, default: str) -> str:
    return str(code) if code is not None else default


def _like(outcome: Outcome, delivery_id: int) -> Outcome:
    if isinstance(outcome, Deferred):
        return Deferred(delivery_id, outcome.code, outcome.text, outcome.retry_after_s)
    assert isinstance(outcome, Failed)  # noqa: S101 - only these two stop a chunk  # nosec B101
    return Failed(delivery_id, outcome.code, outcome.text)
