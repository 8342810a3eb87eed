"""A real worker plans the fallback for a WhatsApp message reported failed mid-reroute."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client, override_settings

from contacts.models import Channel
from delivery.dispatch import deliveries_send_chunk
from delivery.models import Delivery
from delivery.senders import channel_sender
from delivery.states import DeliveryStatus as S
from sandbox.graph import GraphFake
from tests.campaigns.conftest import TOKEN_KEY
from tests.campaigns.test_whatsapp_outage import (
    fallback_contacts,
    reroute_now,
    whatsapp_campaign,
    whatsapp_ids,
)
from tests.harness import ProcessHandle, eventually

pytestmark = pytest.mark.e2e
SECRET = "e2e-whatsapp-app-secret"


@override_settings(REROUTE_QUIET_HOURS={}, REROUTE_FREQUENCY_CAP_PER_DAY=0)
def test_a_worker_gives_the_fallback_to_a_contact_whose_whatsapp_message_failed(
    graph: GraphFake,
    settings: Any,
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    settings.WHATSAPP_APP_SECRET = SECRET
    channel_sender.cache_clear()
    campaign, post, people = whatsapp_campaign(2)
    from campaigns.publishing import social_post_publish

    social_post_publish(post_id=post.pk)
    ids = whatsapp_ids(campaign)
    assert deliveries_send_chunk(channel="whatsapp", ids=ids).sent == 2
    channel_sender.cache_clear()
    reroute_now(campaign)
    assert fallback_contacts(campaign) == set()  # both accepted, still settling

    # Only the control queue: the fallback's email chunk waits in its queue, unsent.
    env = {**worker_env, "SOCIAL_TOKEN_KEYS": TOKEN_KEY, "REROUTE_FREQUENCY_CAP_PER_DAY": "0"}
    celery_worker_process(queues=["control"], concurrency=1, env_extra=env)
    wamid = Delivery.objects.get(id=ids[1]).provider_message_id
    body = json.dumps(
        {"entry": [{"changes": [{"value": {"statuses": [{"id": wamid, "status": "failed"}]}}]}]}
    ).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = Client().post(
        "/webhooks/whatsapp/",
        data=body,
        content_type="application/json",
        headers={"X-Hub-Signature-256": f"sha256={digest}"},
    )
    assert response.status_code == 200
    assert Delivery.objects.get(id=ids[1]).status == S.UNDELIVERED
    eventually(lambda: fallback_contacts(campaign) == {people[1].pk}, timeout=90)
    row = Delivery.objects.get(message_id=campaign.message_id, contact=people[1], channel="email")
    assert row.status == S.QUEUED
    assert not Delivery.objects.filter(contact=people[0], channel=Channel.EMAIL).exists()
