"""WhatsApp Cloud API template messages: POST /{phone-number-id}/messages, one recipient each.

WhatsApp has no broadcast post: a campaign's WhatsApp share is one Delivery per consented
contact, each sent with ``send_template``. ``publish`` therefore refuses, and ``find_recent``
cannot reconcile (there is no list of sent messages): an ambiguous send stays unknown until the
status webhook (sent/delivered/failed for the wamid) or the marketer settles it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from delivery.publishers.base import (
    WHATSAPP,
    ConnectionStatus,
    HttpCall,
    PublishPermanent,
    PublishResult,
    PublishUnknown,
    SocialAccountRef,
    SocialPostRequest,
)
from delivery.publishers.graph_api import GraphPublisher, graph_url

_E164 = re.compile(r"^\+?[1-9]\d{6,14}$")
_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")


class WhatsAppPublisher(GraphPublisher):
    network = WHATSAPP

    def content_problems(self, *, post: SocialPostRequest) -> list[str]:
        return []

    def template_problems(self, *, template_name: str, language: str) -> list[str]:
        problems = []
        if not _TEMPLATE_NAME.match(template_name):
            problems.append(
                "WhatsApp template names are lowercase letters, digits and underscores."
            )
        if not language:
            problems.append("WhatsApp templates need a language code such as en_US.")
        return problems

    def publish(self, *, account: SocialAccountRef, post: SocialPostRequest) -> PublishResult:
        raise PublishPermanent(
            "WhatsApp is one-to-one: send a template per contact with send_template",
            network=self.network,
        )

    def send_template(
        self,
        *,
        account: SocialAccountRef,
        to_phone: str,
        template_name: str,
        language: str,
        components: Sequence[dict[str, Any]] = (),
    ) -> PublishResult:
        """Send one approved template to one phone (E.164). Same taxonomy as publish."""
        if not _E164.match(to_phone):
            raise PublishPermanent("recipient is not an E.164 phone number", network=self.network)
        problems = self.template_problems(template_name=template_name, language=language)
        if problems:
            raise PublishPermanent(" ".join(problems), network=self.network)
        template: dict[str, Any] = {"name": template_name, "language": {"code": language}}
        if components:
            template["components"] = list(components)
        body = self.call(
            account,
            HttpCall(
                "POST",
                graph_url(account, account.phone_number_id, "messages"),
                sends=True,
                json={
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": to_phone.lstrip("+"),
                    "type": "template",
                    "template": template,
                },
            ),
        )
        messages = body.get("messages")
        message_id = ""
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            message_id = str(messages[0].get("id") or "")
        if not message_id:
            raise PublishUnknown(
                "message send answered without messages[0].id", network=self.network
            )
        return PublishResult(network=self.network, external_id=message_id)

    def find_recent(
        self, *, account: SocialAccountRef, post: SocialPostRequest, since: datetime
    ) -> str | None:
        # The Cloud API lists no sent messages; reconciliation comes from status webhooks.
        return None

    def check_connection(self, *, account: SocialAccountRef) -> ConnectionStatus:
        body = self.node_fetch(
            account, account.phone_number_id, fields="display_phone_number,verified_name"
        )
        if isinstance(body, ConnectionStatus):
            return body
        name = str(body.get("verified_name") or "")
        number = str(body.get("display_phone_number") or account.phone_number_id)
        return ConnectionStatus(
            ok=True, detail=f"WhatsApp {name} {number}".strip(), display_name=name
        )
