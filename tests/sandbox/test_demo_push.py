"""Demo push subscriptions: keys derived from the id decrypt on a freshly started sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from py_vapid import Vapid02

from delivery.providers.base import OutboundMessage, PushContent, PushKeys, Sent
from delivery.providers.webpush import WebPushSender
from sandbox.demo_push import demo_subscription_keys, demo_subscriptions_enable
from sandbox.push import PushServiceFake

pytestmark = pytest.mark.django_db


def test_a_demo_subscription_seeded_earlier_is_delivered_and_decrypted(settings: Any) -> None:
    with PushServiceFake() as fake:
        settings.SANDBOX_PUSH_BASE_URL = fake.url
        demo_subscriptions_enable(fake)
        p256dh, auth = demo_subscription_keys("demo-42")
        assert demo_subscription_keys("demo-42") == (p256dh, auth)
        vapid = Vapid02()
        vapid.generate_keys()
        outcomes = WebPushSender(vapid=vapid).send_batch(
            content=PushContent(title="Winter sale", body="Hi {{ first_name }}"),
            messages=[
                OutboundMessage(
                    delivery_id=1,
                    to=f"{fake.url}/push/demo-42",
                    merge_fields={"first_name": "Ada"},
                    push_keys=PushKeys(p256dh=p256dh, auth=auth),
                )
            ],
        )
        assert isinstance(outcomes[0], Sent), outcomes
        assert b"Hi Ada" in fake.pushes[0].payload
