"""Per-workspace provider credentials: each workspace's sends go out through its own accounts,
unset ones through the install's, against the real sandbox fakes (which record the API key and
the Twilio account each request was authorised with)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.test import Client as WebClient
from django.test import TestCase
from django.utils import timezone

from campaigns.models import SocialAccount
from contacts.models import Channel, Consent, ConsentState, Contact, Purpose, consent_bit
from continuity.models import Role, Workspace
from continuity.tenancy import access_for
from delivery.credentials import (
    SECRET_FIELDS,
    CredentialsChange,
    credentials_row,
    secrets_rotate,
    workspace_credentials_update,
)
from delivery.dispatch import deliveries_enqueue, deliveries_send_chunk
from delivery.models import Delivery, Message, WorkspaceCredentials
from delivery.providers.base import CREDENTIALS_UNREADABLE, Failed, OutboundMessage, Sent
from delivery.providers.webpush import vapid_public_key
from delivery.secrets import token_decrypt, token_encrypt
from delivery.senders import channel_content, channel_sender
from sandbox.push import PushServiceFake
from sandbox.sendgrid import SendGridFake
from sandbox.twilio import TwilioFake
from tests.workspaces import make_member, make_workspace

pytestmark = [pytest.mark.django_db]

INSTALL_KEY = "install-sendgrid-key"
KEY_A = "SG.workspace-a-key-0000000000000000-aaaa"
KEY_B = "SG.workspace-b-key-1111111111111111-bbbb"
INSTALL_SID, INSTALL_TOKEN = "AC" + "0" * 32, "install-twilio-token"
SID_A, TOKEN_A = "AC" + "a" * 32, "twilio-token-of-workspace-a-0001"
SID_B, TOKEN_B = "AC" + "b" * 32, "twilio-token-of-workspace-b-0002"
PUBLIC = "https://continuity.example.com"
_n = itertools.count(1)


@pytest.fixture
def sendgrid(settings: Any) -> Iterator[SendGridFake]:
    with SendGridFake(api_key=INSTALL_KEY, extra_api_keys=(KEY_A, KEY_B)) as fake:
        settings.ANYMAIL = {
            **settings.ANYMAIL,
            "SENDGRID_API_KEY": INSTALL_KEY,
            "SENDGRID_API_URL": f"{fake.url}/v3/",
        }
        settings.DELIVERY_EMAIL_FROM = "Agency <news@agency.example>"
        settings.DELIVERY_EMAIL_FAILOVER_BACKEND = ""
        channel_sender.cache_clear()
        yield fake
    channel_sender.cache_clear()


@pytest.fixture
def twilio(settings: Any) -> Iterator[TwilioFake]:
    with TwilioFake(
        account_sid=INSTALL_SID,
        auth_token=INSTALL_TOKEN,
        extra_accounts={SID_A: TOKEN_A, SID_B: TOKEN_B},
        send_callbacks=False,
    ) as fake:
        settings.TWILIO_API_BASE_URL = fake.url
        settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = INSTALL_SID, INSTALL_TOKEN
        settings.TWILIO_MESSAGING_SERVICE_SID = ""
        settings.TWILIO_FROM_NUMBER = "+15005550006"
        settings.DELIVERY_PUBLIC_BASE_URL = PUBLIC
        settings.DELIVERY_SMS_RATE_PER_S = 1000
        channel_sender.cache_clear()
        yield fake
    channel_sender.cache_clear()


def credentials_set(workspace: Workspace, **values: str) -> WorkspaceCredentials:
    """What an owner's form submission does: secrets by name, everything else plain."""
    owner = make_member(workspace=workspace, role=Role.OWNER)
    secrets = {k: v for k, v in values.items() if k in SECRET_FIELDS}
    plain = {k: v for k, v in values.items() if k not in secrets}
    row, _changed = workspace_credentials_update(
        access=access_for(owner, workspace),
        workspace=workspace,
        change=CredentialsChange(plain=plain, secrets=secrets),
    )
    return row


def message_in(workspace: Workspace, **overrides: Any) -> Message:
    values: dict[str, Any] = {
        "workspace": workspace,
        "name": "Instagram is down",
        "email_subject": "Hello {{ first_name }}",
        "email_html": "<p>Hi {{ first_name }}</p>",
        "email_text": "Hi {{ first_name }}",
        "sms_text": "Hi {{ first_name }}, we are here on SMS.",
    }
    values.update(overrides)
    return Message.objects.create(**values)


def outbound(*addresses: str) -> list[OutboundMessage]:
    return [
        OutboundMessage(delivery_id=next(_n), to=a, merge_fields={"first_name": "Zoë"})
        for a in addresses
    ]


def send(message: Message, channel: str, *addresses: str) -> list[Any]:
    content = channel_content(message=message, channel=channel)
    return channel_sender(channel).send_batch(content=content, messages=outbound(*addresses))


def test_secrets_are_stored_only_as_ciphertext_with_a_short_hint() -> None:
    workspace = make_workspace()
    row = credentials_set(workspace, sendgrid_api_key=KEY_A, sendgrid_from_email="a@a.example")
    stored = WorkspaceCredentials.objects.filter(pk=row.pk).values()[0]
    assert KEY_A not in str(stored)
    assert token_decrypt(ciphertext=stored["sendgrid_api_key_encrypted"]) == KEY_A
    assert stored["hints"] == {"sendgrid_api_key": "…aaaa"}
    short = credentials_set(make_workspace(), twilio_auth_token="short", twilio_account_sid=SID_A)
    assert short.hints == {"twilio_auth_token": ""}, "a short secret shows no characters at all"


def test_each_workspace_emails_through_its_own_sendgrid_key_and_sender(
    sendgrid: SendGridFake,
) -> None:
    a, b, plain = make_workspace(), make_workspace(), make_workspace()
    credentials_set(a, sendgrid_api_key=KEY_A, sendgrid_from_email="news@a.example",
                    sendgrid_from_name="Shop A")  # fmt: skip
    credentials_set(b, sendgrid_api_key=KEY_B, sendgrid_from_email="hello@b.example")

    for workspace, address in ((a, "one@x.example"), (b, "two@x.example"), (plain, "3@x.example")):
        [outcome] = send(message_in(workspace), Channel.EMAIL, address)
        assert isinstance(outcome, Sent)

    seen = {p.to[0]: (p.api_key, p.from_email) for p in sendgrid.personalizations}
    assert seen == {
        "one@x.example": (KEY_A, "news@a.example"),
        "two@x.example": (KEY_B, "hello@b.example"),
        # Nothing set: the install's key and sender.
        "3@x.example": (INSTALL_KEY, "news@agency.example"),
    }


def test_each_workspace_texts_from_its_own_twilio_account_with_its_own_callback_url(
    twilio: TwilioFake,
) -> None:
    a, b, plain = make_workspace(), make_workspace(), make_workspace()
    credentials_set(a, twilio_account_sid=SID_A, twilio_auth_token=TOKEN_A,
                    twilio_from_number="+15005550100")  # fmt: skip
    credentials_set(b, twilio_account_sid=SID_B, twilio_auth_token=TOKEN_B,
                    twilio_messaging_service_sid="MG" + "b" * 32)  # fmt: skip

    for workspace, number in ((a, "+14155550101"), (b, "+14155550102"), (plain, "+14155550103")):
        [outcome] = send(message_in(workspace), Channel.SMS, number)
        assert isinstance(outcome, Sent), outcome

    seen = {m.to: (m.account_sid, m.sender, m.status_callback) for m in twilio.messages}
    status = f"{PUBLIC}/webhooks/twilio/status"
    assert seen == {
        "+14155550101": (SID_A, "+15005550100", f"{status}/{a.pk}/"),
        "+14155550102": (SID_B, "MG" + "b" * 32, f"{status}/{b.pk}/"),
        # Nothing set: the install's account and number, still the workspace's callback URL.
        "+14155550103": (INSTALL_SID, "+15005550006", f"{status}/{plain.pk}/"),
    }


def test_a_changed_key_is_used_from_the_next_batch_on(sendgrid: SendGridFake) -> None:
    workspace = make_workspace()
    credentials_set(workspace, sendgrid_api_key=KEY_A, sendgrid_from_email="news@a.example")
    send(message_in(workspace), Channel.EMAIL, "before@x.example")

    credentials_set(workspace, sendgrid_api_key=KEY_B)
    send(message_in(workspace), Channel.EMAIL, "after@x.example")

    seen = {p.to[0]: p.api_key for p in sendgrid.personalizations}
    assert seen == {"before@x.example": KEY_A, "after@x.example": KEY_B}


def test_resolving_a_batchs_credentials_costs_one_query_whatever_the_channel(
    django_assert_num_queries: Any, settings: Any
) -> None:
    settings.DELIVERY_WHATSAPP_ACCOUNT_RESOLVER = ""
    workspace = make_workspace()
    credentials_set(workspace, sendgrid_api_key=KEY_A, sendgrid_from_email="news@a.example",
                    twilio_account_sid=SID_A, twilio_auth_token=TOKEN_A,
                    twilio_from_number="+15005550100")  # fmt: skip
    message = message_in(workspace, push_title="Hi", push_body="x", whatsapp_template="t")
    for channel in (Channel.EMAIL, Channel.SMS, Channel.PUSH, Channel.WHATSAPP):
        with django_assert_num_queries(1):
            channel_content(message=message, channel=channel)


def test_a_wrong_workspace_token_is_refused_by_twilio_and_never_retried_with_the_install_one(
    twilio: TwilioFake,
) -> None:
    workspace = make_workspace()
    credentials_set(workspace, twilio_account_sid=SID_A, twilio_auth_token="not-the-token",
                    twilio_from_number="+15005550100")  # fmt: skip

    [outcome] = send(message_in(workspace), Channel.SMS, "+14155550101")

    assert isinstance(outcome, Failed) and outcome.code == "20003"
    assert twilio.messages == []


def test_a_workspace_secret_no_key_opens_sends_nothing_under_any_account(
    sendgrid: SendGridFake, settings: Any
) -> None:
    workspace = make_workspace()
    credentials_set(workspace, sendgrid_api_key=KEY_A, sendgrid_from_email="news@a.example")
    settings.SOCIAL_TOKEN_KEYS = [Fernet.generate_key().decode()]  # the old key was dropped

    outcomes = send(message_in(workspace), Channel.EMAIL, "one@x.example", "two@x.example")

    assert {type(o) for o in outcomes} == {Failed}
    assert {o.code for o in outcomes} == {CREDENTIALS_UNREADABLE}
    assert sendgrid.requests_to("/v3/mail/send") == []


def test_a_workspace_pushes_with_its_own_vapid_pair(
    push_fake: PushServiceFake, settings: Any
) -> None:
    from py_vapid import Vapid02

    install, own = Vapid02(), Vapid02()
    install.generate_keys()
    own.generate_keys()
    settings.VAPID_PRIVATE_KEY = install.private_pem().decode()
    channel_sender.cache_clear()
    workspace = make_workspace()
    credentials_set(workspace, vapid_private_key=own.private_pem().decode(),
                    vapid_public_key=vapid_public_key(own),
                    vapid_subject="mailto:ops@a.example")  # fmt: skip
    # The browser subscribed on the workspace's page, with the workspace's key: the push
    # service refuses any other key for this subscription.
    info = push_fake.subscription_create(application_server_key=vapid_public_key(own))
    from delivery.providers.base import PushKeys

    message = message_in(workspace, push_title="Hi", push_body="Instagram is down")
    content = channel_content(message=message, channel=Channel.PUSH)
    [outcome] = channel_sender(Channel.PUSH).send_batch(
        content=content,
        messages=[
            OutboundMessage(
                delivery_id=1,
                to=info["endpoint"],
                push_keys=PushKeys(p256dh=info["keys"]["p256dh"], auth=info["keys"]["auth"]),
            )
        ],
    )
    channel_sender.cache_clear()
    assert isinstance(outcome, Sent), outcome
    assert len(push_fake.pushes) == 1


def test_a_workspace_number_sends_whatsapp_when_the_campaign_names_none(settings: Any) -> None:
    settings.DELIVERY_WHATSAPP_ACCOUNT_RESOLVER = ""
    workspace = make_workspace()
    credentials_set(workspace, whatsapp_phone_number_id="1234567890",
                    whatsapp_access_token="EAAB-workspace-whatsapp-token")  # fmt: skip
    message = message_in(workspace, whatsapp_template="outage_notice")

    content = channel_content(message=message, channel=Channel.WHATSAPP)
    other = channel_content(message=message_in(make_workspace()), channel=Channel.WHATSAPP)

    assert content.account is not None  # type: ignore[union-attr]
    assert content.account.phone_number_id == "1234567890"  # type: ignore[union-attr]
    assert content.account.access_token == "EAAB-workspace-whatsapp-token"  # type: ignore[union-attr]
    assert other.account is None, "no number of its own: the install's settings"  # type: ignore[union-attr]


# --- one chunk, two workspaces (through dispatch) -----------------------------------------------


def consented_contact(workspace: Workspace, channel: str, **fields: Any) -> Contact:
    n = next(_n)
    # Consent written as contacts.consent leaves it (the row and the sendable bit), so this test
    # is about credentials only.
    contact = Contact.objects.create(
        workspace=workspace,
        external_id=f"cred-{n}",
        first_name=f"P{n}",
        timezone="UTC",
        sendable=consent_bit(channel, Purpose.MARKETING),
        **fields,
    )
    Consent.objects.create(
        workspace=workspace,
        contact=contact,
        channel=channel,
        purpose=Purpose.MARKETING,
        state=ConsentState.GRANTED,
        updated_at=timezone.now(),
    )
    return contact


def test_one_chunk_holding_two_workspaces_sends_each_with_its_own_account(
    sendgrid: SendGridFake,
) -> None:
    a, b = make_workspace(), make_workspace()
    credentials_set(a, sendgrid_api_key=KEY_A, sendgrid_from_email="news@a.example")
    credentials_set(b, sendgrid_api_key=KEY_B, sendgrid_from_email="hello@b.example")
    ids = []
    for workspace, address in ((a, "one@x.example"), (b, "two@x.example")):
        message = message_in(workspace)
        contact = consented_contact(workspace, Channel.EMAIL, email=address)
        ids.append(
            Delivery.objects.create(
                workspace=workspace, message=message, contact=contact, channel=Channel.EMAIL
            ).pk
        )
    with TestCase.captureOnCommitCallbacks(execute=True):
        deliveries_enqueue(ids=ids, send=lambda channel, chunk: None)

    report = deliveries_send_chunk(channel=Channel.EMAIL, ids=ids)

    assert report.sent == 2
    assert {p.to[0]: p.api_key for p in sendgrid.personalizations} == {
        "one@x.example": KEY_A,
        "two@x.example": KEY_B,
    }
    assert len(sendgrid.requests_to("/v3/mail/send")) == 2, "one request per workspace"


# --- rotation ------------------------------------------------------------------------------------


def test_rotation_reencrypts_every_secret_and_old_ciphertext_opens_meanwhile(
    sendgrid: SendGridFake, settings: Any
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SOCIAL_TOKEN_KEYS = [old]
    workspace = make_workspace()
    credentials_set(workspace, sendgrid_api_key=KEY_A, sendgrid_from_email="news@a.example",
                    twilio_account_sid=SID_A, twilio_auth_token=TOKEN_A,
                    twilio_from_number="+15005550100")  # fmt: skip
    account = SocialAccount.objects.create(
        workspace=workspace,
        network="facebook",
        display_name="Shop A",
        page_id="1",
        access_token_encrypted=token_encrypt(plaintext="EAAB-page-token"),
    )
    before = credentials_row(workspace_id=workspace.pk)
    assert before is not None

    # A new key goes first; until the rotation ran, the old key still opens what is stored,
    # so sending goes on.
    settings.SOCIAL_TOKEN_KEYS = [new, old]
    [outcome] = send(message_in(workspace), Channel.EMAIL, "during@x.example")
    assert isinstance(outcome, Sent)

    call_command("secrets_rotate", stdout=(out := _Out()))
    assert "total: 3 re-encrypted, 0 already current, 0 unreadable" in out.text
    assert "campaigns.SocialAccount.access_token_encrypted: 1 re-encrypted" in out.text

    settings.SOCIAL_TOKEN_KEYS = [new]  # the old key is dropped
    after = credentials_row(workspace_id=workspace.pk)
    assert after is not None
    assert after.sendgrid_api_key_encrypted != before.sendgrid_api_key_encrypted
    assert after.updated_at == before.updated_at, "a rotation is not a change of credentials"
    account.refresh_from_db()
    assert token_decrypt(ciphertext=account.access_token_encrypted) == "EAAB-page-token"
    [outcome] = send(message_in(workspace), Channel.EMAIL, "after@x.example")
    assert isinstance(outcome, Sent)
    assert {p.to[0]: p.api_key for p in sendgrid.personalizations}["after@x.example"] == KEY_A

    # Idempotent: nothing left to do.
    again = secrets_rotate()
    assert sum(again.reencrypted.values()) == 0
    assert sum(again.current.values()) == 3


def test_rotation_reports_what_no_key_opens_and_leaves_it_in_place(settings: Any) -> None:
    settings.SOCIAL_TOKEN_KEYS = [Fernet.generate_key().decode()]
    row = credentials_set(make_workspace(), sendgrid_api_key=KEY_A,
                          sendgrid_from_email="news@a.example")  # fmt: skip
    settings.SOCIAL_TOKEN_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(CommandError, match="1 stored secret"):
        call_command("secrets_rotate", stdout=_Out())

    stored = WorkspaceCredentials.objects.get(pk=row.pk).sendgrid_api_key_encrypted
    assert stored == row.sendgrid_api_key_encrypted


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_a_contacts_preference_page_offers_the_push_key_its_workspace_sends_with(
    settings: Any,
) -> None:
    from py_vapid import Vapid02

    from contacts import links
    from tests.contacts.factories import make_contact

    own = Vapid02()
    own.generate_keys()
    settings.VAPID_PUBLIC_KEY = "install-public-key"
    with_keys, without = make_workspace(), make_workspace()
    credentials_set(with_keys, vapid_private_key=own.private_pem().decode(),
                    vapid_public_key=vapid_public_key(own))  # fmt: skip
    pages = {}
    for workspace in (with_keys, without):
        contact = make_contact(workspace=workspace)
        url = links.preference_url(contact_id=contact.pk)
        pages[workspace.pk] = WebClient().get(url[url.index("/", 8) :]).content.decode()
    assert f'data-vapid-public-key="{vapid_public_key(own)}"' in pages[with_keys.pk]
    assert 'data-vapid-public-key="install-public-key"' in pages[without.pk]
