from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest

from delivery.publishers.base import (
    Publisher,
    PublishError,
    PublishPermanent,
    PublishResult,
    PublishThrottled,
    PublishTransient,
    SocialAccountRef,
    SocialPostRequest,
)
from delivery.publishers.whatsapp import WhatsAppPublisher
from sandbox.graph import GraphFake
from tests.delivery.publishers.contract import Fake, PublisherContract
from tests.delivery.publishers.test_facebook import GRAPH_CASES, inject_graph_error

WHATSAPP_CASES: dict[str, type[PublishError]] = {
    **GRAPH_CASES,
    "code-130429": PublishThrottled,
    "code-131056": PublishThrottled,
    "code-131000": PublishTransient,
    "code-131026": PublishPermanent,
}


class TestWhatsAppContract(PublisherContract):
    network = "whatsapp"
    error_cases: ClassVar[dict[str, type[PublishError]]] = WHATSAPP_CASES
    send_path = r"/messages$"
    # The Cloud API lists no sent messages; status webhooks settle unknown sends instead.
    can_reconcile = False

    def make_fake(self) -> Fake:
        return GraphFake()

    def make_account(self, fake: Fake, token: str) -> SocialAccountRef:
        return SocialAccountRef(
            network="whatsapp", access_token=token, phone_number_id="1065", base_url=fake.url
        )

    def stored_ids(self, fake: Fake, account: SocialAccountRef) -> list[str]:
        assert isinstance(fake, GraphFake)
        return [p.id for p in fake.posts_for(account.phone_number_id)]

    def inject_error(self, fake: Fake, account: SocialAccountRef, case: str) -> SocialAccountRef:
        assert isinstance(fake, GraphFake)
        return inject_graph_error(fake, account, case)

    def send(
        self, publisher: Publisher, account: SocialAccountRef, post: SocialPostRequest
    ) -> PublishResult:
        assert isinstance(publisher, WhatsAppPublisher)
        return publisher.send_template(
            account=account, to_phone="+447700900123", template_name="autumn_sale", language="en_GB"
        )


@pytest.fixture
def graph() -> Iterator[GraphFake]:
    with GraphFake() as fake:
        yield fake


def _wa(fake: GraphFake) -> SocialAccountRef:
    return SocialAccountRef(
        network="whatsapp", access_token="tok", phone_number_id="1065", base_url=fake.url
    )


def test_a_template_message_has_the_cloud_api_shape(graph: GraphFake) -> None:
    components = [{"type": "body", "parameters": [{"type": "text", "text": "Ada"}]}]
    result = WhatsAppPublisher().send_template(
        account=_wa(graph),
        to_phone="+447700900123",
        template_name="autumn_sale",
        language="en_GB",
        components=components,
    )
    [request] = graph.requests_to(r"/messages$")
    assert request.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "447700900123",
        "type": "template",
        "template": {
            "name": "autumn_sale",
            "language": {"code": "en_GB"},
            "components": components,
        },
    }
    assert result.external_id.startswith("wamid.")


@pytest.mark.parametrize(
    ("phone", "template", "language"),
    [
        ("07700 900123", "autumn_sale", "en"),
        ("+447700900123", "Autumn Sale", "en"),
        ("+447700900123", "ok", ""),
    ],
)
def test_bad_recipients_or_templates_are_refused_before_any_request(
    graph: GraphFake, phone: str, template: str, language: str
) -> None:
    with pytest.raises(PublishPermanent):
        WhatsAppPublisher().send_template(
            account=_wa(graph), to_phone=phone, template_name=template, language=language
        )
    assert graph.received == []


def test_whatsapp_has_no_broadcast_publish(graph: GraphFake) -> None:
    with pytest.raises(PublishPermanent, match="one-to-one"):
        WhatsAppPublisher().publish(account=_wa(graph), post=SocialPostRequest(text="x"))
