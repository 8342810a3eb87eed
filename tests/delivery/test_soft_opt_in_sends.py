"""Every message sent on legitimate interest (the soft opt-in) offers the opt-out: an SMS ends with
the STOP line (dispatch marks those recipients, the Twilio sender appends it), an email carries
its contact's one-click unsubscribe link."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from contacts.consent import consent_grant
from contacts.models import Channel, Consent, LawfulBasis
from delivery.dispatch import deliveries_send_chunk
from delivery.models import Delivery
from delivery.providers.base import OutboundMessage
from delivery.providers.twilio_sms import sms_opt_out_append
from delivery.ratelimit import RedisTokenBucket
from sandbox.sendgrid import SendGridFake
from sandbox.twilio import TwilioFake
from tests.contacts.factories import evidence, make_contact
from tests.delivery.test_dispatch import enqueue_now, make_message, plan, sendgrid  # noqa: F401
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


def test_an_email_sent_on_the_soft_opt_in_carries_the_one_click_unsubscribe_link(
    sendgrid: SendGridFake,  # noqa: F811 - the fixture imported above
) -> None:
    from datetime import date

    customer = make_contact(customer_since=date(2024, 5, 1))
    consent_grant(
        contact=customer,
        channel=Channel.EMAIL,
        purpose="marketing",
        evidence=evidence(),
        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST,
    )
    ids = plan(make_message(), [customer], channel=Channel.EMAIL)
    enqueue_now(ids)

    assert deliveries_send_chunk(channel="email", ids=ids).sent == 1

    [received] = sendgrid.personalizations
    assert received.to == [customer.email]
    assert received.headers["List-Unsubscribe"].startswith("<http")
    assert received.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
