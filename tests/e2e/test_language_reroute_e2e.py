"""One reroute, three languages, real workers and fakes: an Italian and an English contact each
receive their own language's email, SMS and push; a German contact (no German variant) gets the
workspace's default language (Italian); the reroute counts its plan per language."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from py_vapid import Vapid02

from campaigns.models import Reroute, SendMode
from contacts.consent import consent_grant
from contacts.models import Channel, Contact, PushSubscription
from delivery.models import Delivery, MessageVariant
from delivery.states import DeliveryStatus as S
from sandbox.push import PushServiceFake
from sandbox.sendgrid import SendGridFake
from sandbox.twilio import TwilioFake
from tests.campaigns.reroute_factories import make_campaign, network_down
from tests.contacts.factories import evidence, make_contact
from tests.harness import ProcessHandle, eventually
from tests.workspaces import make_workspace

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]

CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.PUSH)
# Italian accented letters in the GSM-7 table (è, à, ù) keep the SMS in GSM-7.
ITALIAN = {
    "email_subject": "Instagram è giù, {{ first_name }}",
    "email_html": "<p>Ciao {{ first_name }}, i saldi continuano qui.</p>",
    "email_text": "Ciao {{ first_name }}, i saldi continuano qui.",
    "sms_text": "Ciao {{ first_name }}: i saldi sono già qui, più sconti.",
    "push_title": "Saldi già aperti",
    "push_body": "Ciao {{ first_name }}, è il momento.",
}
ENGLISH = {
    "email_subject": "Instagram is down, {{ first_name }}",
    "email_html": "<p>Hi {{ first_name }}, the sale goes on here.</p>",
    "email_text": "Hi {{ first_name }}, the sale goes on here.",
    "sms_text": "Hi {{ first_name }}: the sale is on here.",
    "push_title": "Sale is on",
    "push_body": "Hi {{ first_name }}, now is the time.",
}


@pytest.fixture
def fakes() -> Iterator[tuple[TwilioFake, PushServiceFake]]:
    with (
        TwilioFake(account_sid="AC" + "5" * 32, auth_token="e2e-token", send_callbacks=False) as tw,
        PushServiceFake() as push,
    ):
        yield tw, push


def _contact(workspace_id: int, locale: str, n: int, push: PushServiceFake) -> Contact:
    contact = make_contact(
        workspace_id=workspace_id, locale=locale, phone=f"+3933312{n:05d}", first_name=f"P{n}"
    )
    for channel in CHANNELS:
        consent_grant(contact=contact, channel=channel, purpose="marketing", evidence=evidence())
    info = push.subscription_create()
    PushSubscription.objects.create(
        workspace_id=workspace_id,
        contact=contact,
        endpoint=info["endpoint"],
        p256dh=info["keys"]["p256dh"],
        auth=info["keys"]["auth"],
    )
    return contact


def test_each_contact_gets_their_languages_email_sms_and_push_in_one_reroute(
    sendgrid_fake: SendGridFake,
    fakes: tuple[TwilioFake, PushServiceFake],
    worker_env: dict[str, str],
    celery_worker_process: Callable[..., ProcessHandle],
) -> None:
    twilio, push = fakes
    vapid = Vapid02()
    vapid.generate_keys()
    workspace = make_workspace(language="it")
    campaign = make_campaign(
        workspace=workspace,
        networks=("instagram",),
        fallback=CHANNELS,
        send_mode=SendMode.ALL,
    )
    assert campaign.message is not None
    for language, texts in (("it", ITALIAN), ("en", ENGLISH)):
        MessageVariant.objects.create(
            workspace=workspace, message=campaign.message, language=language, **texts
        )
    italian = _contact(workspace.pk, "it-IT", 1, push)
    english = _contact(workspace.pk, "en_GB", 2, push)
    german = _contact(workspace.pk, "de-DE", 3, push)
    celery_worker_process(
        env_extra={
            "SENDGRID_API_URL": f"{sendgrid_fake.url}/v3/",
            "SENDGRID_API_KEY": sendgrid_fake.api_key,
            "TWILIO_API_BASE_URL": twilio.url,
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "DELIVERY_SMS_RATE_PER_S": "500",
            "VAPID_PRIVATE_KEY": vapid.private_pem().decode(),
            "SANDBOX_PUSH_BASE_URL": push.url,
            "REROUTE_QUIET_HOURS_SMS": "",
            "REROUTE_FREQUENCY_CAP_PER_DAY": "0",
        }
    )
    network_down("instagram")

    def settled() -> bool:
        return (
            Delivery.objects.filter(status=S.SENT).count() == 9
            and not Reroute.objects.filter(status="planning").exists()
        )

    eventually(settled, timeout=180, interval=0.5)

    email_subject = {p.to[0]: p.subject for p in sendgrid_fake.personalizations}
    email_name = {p.to[0]: p.substitutions for p in sendgrid_fake.personalizations}
    sms = {m.to: m.body for m in twilio.messages}
    endpoint = {s.contact_id: s.endpoint.rsplit("/", 1)[-1] for s in PushSubscription.objects.all()}
    pushed = {p.subscription_id: json.loads(p.payload) for p in push.pushes}
    expected = {italian: ITALIAN, english: ENGLISH, german: ITALIAN}
    greeting = {id(ITALIAN): "Ciao", id(ENGLISH): "Hi"}
    for contact, texts in expected.items():
        email = str(contact.email)
        # The subject is one template per request, with each recipient's values substituted.
        assert email_subject[email].split(",")[0] == texts["email_subject"].split(",")[0]
        assert contact.first_name in email_name[email].values()
        assert sms[str(contact.phone)].startswith(f"{greeting[id(texts)]} {contact.first_name}:")
        assert sms[str(contact.phone)] == texts["sms_text"].replace(
            "{{ first_name }}", contact.first_name
        )
        body = pushed[endpoint[contact.pk]]
        assert body["title"] == texts["push_title"]
        assert body["body"] == texts["push_body"].replace("{{ first_name }}", contact.first_name)
    # Exactly one message per contact and channel, none in the base content.
    assert len(sendgrid_fake.personalizations) == 3
    assert len(twilio.messages) == 3
    assert len(push.pushes) == 3
    reroute = Reroute.objects.get(campaign=campaign)
    assert reroute.planned_languages == {ch: {"it": 2, "en": 1} for ch in CHANNELS}
    # The Italian SMS is GSM-7 (è, à, ù are in the table): one segment each.
    assert reroute.sms_segments_planned == 3
