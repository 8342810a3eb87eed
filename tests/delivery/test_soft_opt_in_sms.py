"""An SMS sent on legitimate interest (the soft opt-in) always offers the opt-out: dispatch marks
those recipients and the Twilio sender ends their text with the STOP line."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from contacts.models import Channel, Consent, LawfulBasis
from delivery.dispatch import deliveries_send_chunk
from delivery.models import Delivery
from delivery.providers.base import OutboundMessage
from delivery.providers.twilio_sms import sms_opt_out_append
from delivery.ratelimit import RedisTokenBucket
from sandbox.twilio import TwilioFake
from tests.delivery.test_dispatch import enqueue_now, make_message, plan
from tests.delivery.test_quiet_hours import MESSAGES, _sender, sms_contact

pytestmark = pytest.mark.django_db


def test_only_the_soft_opt_in_recipients_sms_ends_with_the_stop_line(
    twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender = _sender(twilio_fake, limiter=fast_limiter)
    monkeypatch.setattr("delivery.dispatch.channel_sender", lambda channel: sender)
    customer, subscriber = sms_contact("UTC"), sms_contact("UTC")
    Consent.objects.filter(contact=customer, channel=Channel.SMS).update(
        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST
    )
    ids = plan(make_message(), [customer, subscriber], channel=Channel.SMS)
    enqueue_now(ids)

    assert deliveries_send_chunk(channel="sms", ids=ids).sent == 2

    bodies = {
        params["To"]: params["Body"]
        for params in (dict(parse_qsl(r.body.decode())) for r in twilio_fake.requests_to(MESSAGES))
    }
    phones = dict(Delivery.objects.filter(pk__in=ids).values_list("contact_id", "contact__phone"))
    assert bodies[str(phones[customer.pk])].endswith("\nReply STOP to opt out.")
    assert "STOP" not in bodies[str(phones[subscriber.pk])]


def test_a_text_that_already_names_stop_gets_no_second_line() -> None:
    message = OutboundMessage(delivery_id=1, to="+1", opt_out_text="Reply STOP to opt out.")
    assert sms_opt_out_append("Sale today. Text stop to end", message) == (
        "Sale today. Text stop to end"
    )
    assert sms_opt_out_append("Sale today.", message) == "Sale today.\nReply STOP to opt out."
    plain = OutboundMessage(delivery_id=2, to="+1")
    assert sms_opt_out_append("Sale today.", plain) == "Sale today."
