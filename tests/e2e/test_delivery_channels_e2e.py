"""Four channels sent by a real worker process to the loopback fakes, consent revoked in between:
each fake receives exactly one message per consented contact and channel, none for the rest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from django.test import override_settings
from py_vapid import Vapid02

from contacts.consent import consent_grant, consent_revoke
from contacts.models import Channel, Contact, PushSubscription
from delivery.dispatch import deliveries_enqueue
from delivery.models import Delivery, Message
from delivery.states import DeliveryStatus as S
from sandbox.graph import GraphFake
from sandbox.push import PushServiceFake
from sandbox.sendgrid import SendGridFake
from sandbox.twilio import TwilioFake
from tests.contacts.factories import evidence, make_contact
from tests.harness import ProcessHandle, eventually
from tests.workspaces import workspace_for_tests

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]

CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.PUSH, Channel.WHATSAPP)
PHONE_ID = "106540352242922"


@pytest.fixture
def fakes() -> Iterator[tuple[TwilioFake, PushServiceFake, GraphFake]]:
    with (
        TwilioFake(account_sid="AC" + "7" * 32, auth_token="e2e-token", send_callbacks=False) as tw,
        PushServiceFake() as push,
        GraphFake() as graph,
    ):
        yield tw, push, graph


def test_each_fake_gets_one_message_per_consented_contact_and_channel(
    sendgrid_fake: SendGridFake,
    fakes: tuple[TwilioFake, PushServiceFake, GraphFake],
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    twilio, push, graph = fakes
    vapid = Vapid02()
    vapid.generate_keys()
    contacts: list[Contact] = []
    for n in range(100):
        contact = make_contact(phone=f"+3361299{n:04d}")
        for channel in CHANNELS:
            consent_grant(
                contact=contact, channel=channel, purpose="marketing", evidence=evidence()
            )
        info = push.subscription_create()
        PushSubscription.objects.create(
            workspace_id=contact.workspace_id,
            contact=contact,
            endpoint=info["endpoint"],
            p256dh=info["keys"]["p256dh"],
            auth=info["keys"]["auth"],
        )
        contacts.append(contact)
    message = Message.objects.create(
        workspace=workspace_for_tests(),
        name="e2e",
        email_subject="Hi {{ first_name }}",
        email_html="<p>Hi {{ first_name }}</p>",
        email_text="Hi {{ first_name }}",
        sms_text="Hi {{ first_name }}",
        push_title="Hi",
        push_body="Hi {{ first_name }}",
        whatsapp_template="outage_notice",
        whatsapp_language="en_US",
    )
    rows = Delivery.objects.bulk_create(
        [
            Delivery(workspace_id=message.workspace_id, message=message, contact=c, channel=ch)
            for c in contacts
            for ch in CHANNELS
        ]
    )
    revoked: dict[str, list[Contact]] = {
        Channel.EMAIL: contacts[::5],
        Channel.SMS: contacts[1::7],
        Channel.PUSH: contacts[2::9],
        Channel.WHATSAPP: contacts[3::6],
    }
    for revoked_channel, group in revoked.items():
        for contact in group:
            consent_revoke(
                contact=contact, channel=revoked_channel, purpose="marketing", evidence=evidence()
            )

    env = {
        "SENDGRID_API_URL": f"{sendgrid_fake.url}/v3/",
        "SENDGRID_API_KEY": sendgrid_fake.api_key,
        "TWILIO_API_BASE_URL": twilio.url,
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "DELIVERY_SMS_RATE_PER_S": "1000",
        "VAPID_PRIVATE_KEY": vapid.private_pem().decode(),
        "SANDBOX_PUSH_BASE_URL": push.url,
        "SOCIAL_GRAPH_BASE_URL": graph.url,
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_ID,
        "WHATSAPP_ACCESS_TOKEN": "e2e-wa-token",
        "DELIVERY_CHUNK_SIZE": "40",
        # The contacts live in Paris: at night there their SMS would rightly wait for 08:00.
        "REROUTE_QUIET_HOURS_SMS": "",
    }
    celery_worker_process(env_extra=env)
    with override_settings(DELIVERY_CHUNK_SIZE=40):
        deliveries_enqueue(ids=[r.pk for r in rows])

    def settled() -> bool:
        return not Delivery.objects.filter(status__in=[S.QUEUED, S.SENDING]).exists()

    eventually(settled, timeout=180, interval=0.5)

    def expected(channel: str, key: Callable[[Contact], str]) -> set[str]:
        return {key(c) for c in contacts} - {key(c) for c in revoked[channel]}

    got_email = Counter(p.to[0] for p in sendgrid_fake.personalizations)
    got_sms = Counter(m.to for m in twilio.messages)
    got_push = Counter(p.subscription_id for p in push.pushes)
    got_whatsapp = Counter(p.to for p in graph.posts_for(PHONE_ID))
    endpoint_id = {
        s.contact_id: s.endpoint.rsplit("/", 1)[-1] for s in PushSubscription.objects.all()
    }
    assert set(got_email) == expected(Channel.EMAIL, lambda c: str(c.email))
    assert set(got_sms) == expected(Channel.SMS, lambda c: str(c.phone))
    assert set(got_push) == expected(Channel.PUSH, lambda c: endpoint_id[c.pk])
    assert set(got_whatsapp) == expected(Channel.WHATSAPP, lambda c: str(c.phone).lstrip("+"))
    for got in (got_email, got_sms, got_push, got_whatsapp):
        assert set(got.values()) == {1}
    by_status = Counter(Delivery.objects.values_list("channel", "status"))
    for channel in CHANNELS:
        assert by_status[(channel, S.SUPPRESSED)] == len(revoked[channel])
        assert by_status[(channel, S.SENT)] == 100 - len(revoked[channel])
