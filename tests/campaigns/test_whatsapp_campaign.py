"""Publishing to WhatsApp: one template message per consented contact, as Deliveries."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.models import CampaignStatus, PostStatus, SocialPost
from campaigns.publishing import social_post_publish
from contacts.models import Channel
from delivery.dispatch import deliveries_send_chunk
from delivery.models import Delivery
from delivery.senders import channel_sender
from delivery.states import DeliveryStatus as S
from sandbox.graph import GraphFake
from tests.campaigns.factories import make_account, make_campaign, make_message
from tests.delivery.test_materialize import contact_with

pytestmark = pytest.mark.django_db


def test_a_whatsapp_post_plans_one_message_per_consented_contact_with_a_phone() -> None:
    consented = [contact_with(Channel.WHATSAPP, push=False) for _ in range(3)]
    no_phone = contact_with(Channel.WHATSAPP, phone=False, push=False)
    no_consent = contact_with(Channel.EMAIL, push=False)
    campaign = make_campaign(
        accounts=[make_account(network="whatsapp")],
        segment=None,
        message=make_message(whatsapp_template="autumn_sale"),
        status=CampaignStatus.PUBLISHING,
    )
    post = SocialPost.objects.create(
        workspace_id=campaign.workspace_id,
        campaign=campaign,
        account=campaign.accounts.get(),
        network="whatsapp",
    )
    report = social_post_publish(post_id=post.pk)
    # Queued is not published: the post waits for WhatsApp to accept its messages.
    assert report.outcome == "retry" and report.retry_after_s
    rows = Delivery.objects.filter(channel="whatsapp")
    assert {d.contact_id for d in rows} == {c.pk for c in consented}
    assert set(rows.values_list("status", flat=True)) == {S.QUEUED}
    assert not Delivery.objects.filter(contact__in=[no_phone, no_consent]).exists()
    post.refresh_from_db()
    assert post.status == PostStatus.PUBLISHING
    # A repeated task looks again and plans nothing twice.
    assert social_post_publish(post_id=post.pk).outcome == "retry"
    assert rows.count() == 3


def test_whatsapp_messages_go_out_from_the_campaigns_own_number(settings: Any) -> None:
    with GraphFake() as graph:
        settings.SOCIAL_GRAPH_BASE_URL = graph.url
        channel_sender.cache_clear()
        contact_with(Channel.WHATSAPP, push=False)
        account = make_account(network="whatsapp")
        campaign = make_campaign(
            accounts=[account],
            segment=None,
            message=make_message(whatsapp_template="autumn_sale"),
            status=CampaignStatus.PUBLISHING,
        )
        post = SocialPost.objects.create(
            workspace_id=campaign.workspace_id,
            campaign=campaign,
            account=account,
            network="whatsapp",
        )
        social_post_publish(post_id=post.pk)
        ids = list(Delivery.objects.values_list("id", flat=True))
        report = deliveries_send_chunk(channel="whatsapp", ids=ids)
        channel_sender.cache_clear()
    assert report.sent == 1
    paths = [r.path for r in graph.received if r.path.endswith("/messages")]
    assert paths == [f"/{settings.SOCIAL_GRAPH_API_VERSION}/{account.phone_number_id}/messages"]
