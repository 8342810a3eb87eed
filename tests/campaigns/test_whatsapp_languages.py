"""WhatsApp failures reported after the reroute planned get their fallback counted per content
language too: the report's per-language figures add up to its per-channel ones."""

from __future__ import annotations

from typing import Any

import pytest

from campaigns.publishing import social_post_publish
from campaigns.whatsapp import whatsapp_fallback_plan
from contacts.models import Contact
from delivery.dispatch import deliveries_send_chunk
from delivery.models import Delivery, MessageVariant
from delivery.states import DeliveryStatus as S
from sandbox.graph import GraphFake
from tests.campaigns.test_whatsapp_outage import (
    NO_QUIET,
    graph,
    message_id_of,
    reroute_now,
    whatsapp_campaign,
    whatsapp_ids,
)

pytestmark = pytest.mark.django_db
__all__ = ["graph"]  # the fixture, used by name


@NO_QUIET
def test_a_late_whatsapp_fallback_is_counted_in_its_contacts_language(graph: GraphFake) -> None:
    campaign, post, people = whatsapp_campaign(3)
    workspace: Any = campaign.workspace
    workspace.language = "en"
    workspace.save(update_fields=["language"])
    for person, locale in zip(people, ("it-IT", "en-GB", "it"), strict=True):
        Contact.objects.filter(pk=person.pk).update(locale=locale)
    MessageVariant.objects.create(
        workspace=campaign.workspace,
        message_id=message_id_of(campaign),
        language="it",
        email_subject="Saldi d'autunno",
        email_text="Ciao",
    )
    social_post_publish(post_id=post.pk)
    ids = whatsapp_ids(campaign)
    assert deliveries_send_chunk(channel="whatsapp", ids=ids).sent == 3
    reroute = reroute_now(campaign)
    assert reroute.planned.get("email", 0) == 0  # all still settling when the slice ran
    Delivery.objects.filter(id__in=ids[:2]).update(status=S.UNDELIVERED)
    planned = whatsapp_fallback_plan(
        message_id=message_id_of(campaign), contact_ids=[people[0].pk, people[1].pk]
    )
    assert planned == 2
    # A repeated report adds nothing, in either count.
    assert (
        whatsapp_fallback_plan(
            message_id=message_id_of(campaign), contact_ids=[people[0].pk, people[1].pk]
        )
        == 0
    )
    reroute.refresh_from_db()
    assert reroute.planned.get("email") == 2
    assert reroute.planned_languages.get("email") == {"it": 1, "en": 1}
