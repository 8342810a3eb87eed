"""Publishing a campaign to WhatsApp: one template message per consented contact.

WhatsApp is one-to-one, so "publishing" plans a Delivery on the whatsapp channel for each
contact of the audience who consented to WhatsApp for the campaign's purpose and has a phone, and
hands them to dispatch: the same UNIQUE key, atomic claim and consent re-check as every other
owned channel, and the reroute engine can later tell who was already reached.
"""

from __future__ import annotations

from django.conf import settings

from campaigns.models import SocialPost
from campaigns.reroute import campaign_audience
from contacts.models import Channel
from delivery.dispatch import deliveries_enqueue
from delivery.materialize import PlanSpec, deliveries_plan_slice
from delivery.models import Delivery
from delivery.quiet_hours import quiet_rules
from delivery.states import DeliveryStatus


def campaign_whatsapp_send(*, post: SocialPost) -> int:
    """Plan and release the campaign's WhatsApp messages slice by slice; returns how many."""
    campaign = post.campaign
    if campaign.message_id is None:
        raise ValueError(f"campaign {campaign.pk} has no message with a WhatsApp template")
    spec = PlanSpec(
        message_id=campaign.message_id,
        workspace_id=campaign.workspace_id,
        purpose=campaign.purpose,
        channels=(Channel.WHATSAPP,),
        quiet=quiet_rules(workspace=campaign.workspace),
    )
    audience = campaign_audience(campaign)
    after, total = 0, 0
    while True:
        result = deliveries_plan_slice(
            spec=spec, audience=audience, after_contact_id=after, limit=settings.REROUTE_SLICE_SIZE
        )
        if not result.contacts:
            return total
        ids = list(
            Delivery.objects.filter(
                message_id=campaign.message_id,
                channel=Channel.WHATSAPP,
                status=DeliveryStatus.PLANNED,
                contact_id__gt=after,
                contact_id__lte=result.last_contact_id,
            ).values_list("id", flat=True)
        )
        deliveries_enqueue(ids=ids)
        total += result.planned.get(Channel.WHATSAPP, 0)
        after = result.last_contact_id
