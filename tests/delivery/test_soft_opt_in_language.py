"""The STOP line of an SMS sent on legitimate interest is in the recipient's language (their
interface language, as for every mail the system sends them), unless the operator configured
DELIVERY_SMS_OPT_OUT_TEXT, which is then sent as written to everyone."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from django.test import override_settings

from contacts.models import Channel, Consent, Contact, LawfulBasis
from delivery.dispatch import deliveries_send_chunk
from delivery.models import Delivery
from delivery.ratelimit import RedisTokenBucket
from sandbox.twilio import TwilioFake
from tests.delivery.test_dispatch import enqueue_now, make_message, plan
from tests.delivery.test_quiet_hours import MESSAGES, _sender, sms_contact

pytestmark = pytest.mark.django_db


def _soft_opt_in_contact(locale: str) -> Contact:
    contact = sms_contact("UTC")
    Contact.objects.filter(pk=contact.pk).update(locale=locale)
    Consent.objects.filter(contact=contact, channel=Channel.SMS).update(
        lawful_basis=LawfulBasis.LEGITIMATE_INTEREST
    )
    return contact


def _send_to_italian_and_english(
    twilio_fake: TwilioFake, limiter: RedisTokenBucket, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    sender = _sender(twilio_fake, limiter=limiter)
    monkeypatch.setattr("delivery.dispatch.channel_sender", lambda channel: sender)
    italian, english = _soft_opt_in_contact("it-IT"), _soft_opt_in_contact("en")
    ids = plan(make_message(), [italian, english], channel=Channel.SMS)
    enqueue_now(ids)
    assert deliveries_send_chunk(channel="sms", ids=ids).sent == 2
    bodies = {
        params["To"]: params["Body"]
        for params in (dict(parse_qsl(r.body.decode())) for r in twilio_fake.requests_to(MESSAGES))
    }
    phones = dict(Delivery.objects.filter(pk__in=ids).values_list("contact_id", "contact__phone"))
    return {
        "it": bodies[str(phones[italian.pk])],
        "en": bodies[str(phones[english.pk])],
    }


@override_settings(DELIVERY_SMS_OPT_OUT_TEXT="")
def test_the_default_stop_line_is_in_each_recipients_language(
    twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = _send_to_italian_and_english(twilio_fake, fast_limiter, monkeypatch)
    assert bodies["en"].endswith("\nReply STOP to opt out.")
    assert bodies["it"].endswith("\nRispondi STOP per non ricevere più messaggi.")


@override_settings(DELIVERY_SMS_OPT_OUT_TEXT="Text STOP to 12345 to end. Acme Ltd")
def test_a_configured_stop_line_is_sent_as_written_to_everyone(
    twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = _send_to_italian_and_english(twilio_fake, fast_limiter, monkeypatch)
    assert bodies["en"].endswith("\nText STOP to 12345 to end. Acme Ltd")
    assert bodies["it"].endswith("\nText STOP to 12345 to end. Acme Ltd")
