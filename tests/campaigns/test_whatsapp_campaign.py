"""Publishing to WhatsApp: one template message per consented contact, as Deliveries."""

from __future__ import annotations

import pytest

from campaigns.models import CampaignStatus, PostStatus, SocialPost
from campaigns.publishing import social_post_publish
from contacts.models import Channel
from delivery.models import Delivery
from delivery.states import DeliveryStatus as S
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
        campaign=campaign, account=campaign.accounts.get(), network="whatsapp"
    )
    report = social_post_publish(post_id=post.pk)
    assert report.outcome == "published"
    assert report.detail == "3 template messages"
    rows = Delivery.objects.filter(channel="whatsapp")
    assert {d.contact_id for d in rows} == {c.pk for c in consented}
    assert set(rows.values_list("status", flat=True)) == {S.QUEUED}
    assert not Delivery.objects.filter(contact__in=[no_phone, no_consent]).exists()
    post.refresh_from_db()
    assert post.status == PostStatus.PUBLISHED
    # A repeated task finds the post published and plans nothing twice.
    assert social_post_publish(post_id=post.pk).outcome == "noop"
    assert rows.count() == 3
