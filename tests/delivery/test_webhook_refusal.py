"""Outside the sandbox, a webhook whose verifying secret is missing or the sandbox's stand-in
refuses: 403 with the reason, the receipt kept with its verdict, nothing changed. (The issue's
case: with TWILIO_AUTH_TOKEN unset, a forged inbound START granted SMS consent.)"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import Client

from contacts.models import Channel, Consent, ConsentEvent, Contact
from continuity.sandbox_secrets import SANDBOX_SECRETS
from delivery.models import Delivery, ProviderReceipt, ReceiptVerdict
from delivery.states import DeliveryStatus as S
from sandbox.sendgrid import SendGridFake
from tests.contacts.factories import granted_contact
from tests.delivery.test_credentials import PUBLIC, SID_A, TOKEN_A, credentials_set, message_in
from tests.delivery.test_credentials_webhooks import twilio_post
from tests.workspaces import make_workspace

pytestmark = [pytest.mark.django_db]

REAL_TOKEN = "ab" * 16
REAL_SID = "AC" + "7" * 32
SANDBOX_TOKEN = SANDBOX_SECRETS["TWILIO_AUTH_TOKEN"]
INBOUND_URL = "/webhooks/twilio/inbound/"
STATUS_URL = "/webhooks/twilio/status/"
SENDGRID_URL = "/webhooks/sendgrid/events/"


@pytest.fixture
def production(settings: Any) -> Any:
    settings.DEBUG = False
    settings.SANDBOX_ENABLED = False
    settings.DELIVERY_PUBLIC_BASE_URL = PUBLIC
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = REAL_SID, REAL_TOKEN
    return settings


def keyword(phone: str, body: str, *, account_sid: str, token: str, path: str = INBOUND_URL) -> Any:
    params = {
        "AccountSid": account_sid,
        "MessageSid": "SM" + uuid.uuid4().hex,
        "From": phone,
        "Body": body,
    }
    return twilio_post(path, params, token=token)


def sms_state(contact: Contact) -> dict[str, str]:
    return dict(
        Consent.objects.filter(contact=contact, channel="sms").values_list("purpose", "state")
    )


def last_receipt() -> ProviderReceipt:
    return ProviderReceipt.objects.order_by("-pk").first()  # type: ignore[return-value]


def stopped_contact(phone: str) -> Contact:
    """A contact who texted STOP (verified with the install's real token)."""
    contact = granted_contact(channel=Channel.SMS, phone=phone)
    assert keyword(phone, "STOP", account_sid=REAL_SID, token=REAL_TOKEN).status_code == 200
    assert sms_state(contact)["marketing"] == "revoked"
    return contact


@pytest.mark.parametrize(
    ("configured", "reason", "sandbox_verifies"),
    [
        ("", "TWILIO_AUTH_TOKEN is not set", False),
        (SANDBOX_TOKEN, "holds the sandbox's stand-in", True),
    ],
    ids=["unset", "sandbox-token"],
)
def test_a_forged_start_is_refused_when_the_auth_token_is_missing_or_the_sandboxs(
    production: Any, configured: str, reason: str, sandbox_verifies: bool
) -> None:
    contact = stopped_contact("+14155550171")
    events_before = ConsentEvent.objects.filter(contact=contact).count()
    production.TWILIO_AUTH_TOKEN = configured

    # Signed with the key the server would verify with: "" or the token printed in the source.
    forged = keyword("+14155550171", "START", account_sid=REAL_SID, token=configured)

    assert forged.status_code == 403
    assert reason in forged.json()["detail"]
    receipt = last_receipt()
    assert (receipt.kind, receipt.verdict, receipt.status_code) == (
        "inbound",
        ReceiptVerdict.REJECTED,
        403,
    )
    assert reason in receipt.reason
    assert "START" in receipt.body, "the refused request is kept as it came"
    assert sms_state(contact) == {"marketing": "revoked", "service": "revoked"}
    assert ConsentEvent.objects.filter(contact=contact).count() == events_before

    # Inside the sandbox its stand-in token is what its fakes sign with; an empty key never is.
    production.SANDBOX_ENABLED = True
    in_sandbox = keyword("+14155550171", "START", account_sid=REAL_SID, token=configured)
    assert (in_sandbox.status_code == 200) is sandbox_verifies
    assert (sms_state(contact)["marketing"] == "granted") is sandbox_verifies


def test_a_status_callback_is_refused_and_moves_nothing_without_a_usable_token(
    production: Any,
) -> None:
    workspace = make_workspace()
    contact = granted_contact(channel=Channel.SMS, phone="+14155550174", workspace=workspace)
    row = Delivery.objects.create(
        workspace=workspace,
        message=message_in(workspace),
        contact=contact,
        channel=Channel.SMS,
        status=S.SENT,
        provider="twilio",
        provider_message_id="SM" + uuid.uuid4().hex,
    )
    production.TWILIO_AUTH_TOKEN = ""
    params = {
        "AccountSid": REAL_SID,
        "MessageSid": row.provider_message_id,
        "MessageStatus": "delivered",
    }

    answer = twilio_post(STATUS_URL, params, token="")

    assert answer.status_code == 403
    assert last_receipt().verdict == ReceiptVerdict.REJECTED
    row.refresh_from_db()
    assert row.status == S.SENT


def test_a_workspaces_own_token_counts_and_the_unusable_install_token_is_never_tried(
    production: Any,
) -> None:
    workspace = make_workspace()
    credentials_set(workspace, twilio_account_sid=SID_A, twilio_auth_token=TOKEN_A,
                    twilio_from_number="+15005550100")  # fmt: skip
    contact = granted_contact(channel=Channel.SMS, phone="+14155550175", workspace=workspace)
    path = f"{INBOUND_URL}{workspace.pk}/"
    production.TWILIO_AUTH_TOKEN = ""

    # Claiming the install's account, signed with the empty key anyone can use: refused.
    forged = keyword("+14155550175", "STOP", account_sid=REAL_SID, token="", path=path)
    assert forged.status_code == 403
    assert sms_state(contact)["marketing"] == "granted"
    # The workspace's own account verifies its own texts as before.
    own = keyword("+14155550175", "STOP", account_sid=SID_A, token=TOKEN_A, path=path)
    assert own.status_code == 200
    assert sms_state(contact)["marketing"] == "revoked"


def test_sendgrid_events_are_refused_without_a_verification_key_and_a_workspaces_key_counts(
    production: Any, sendgrid_fake: SendGridFake
) -> None:
    production.ANYMAIL = {**production.ANYMAIL, "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": None}
    workspace = make_workspace()
    credentials_set(
        workspace,
        sendgrid_api_key="SG.workspace-key-0123456789",
        sendgrid_from_email="news@ws.example",
        sendgrid_webhook_verification_key=sendgrid_fake.verification_key,
    )
    body = json.dumps([{"event": "processed", "sg_message_id": "x", "timestamp": 1}]).encode()
    signed = sendgrid_fake.events_sign(body)
    headers = {k: v for k, v in signed.items() if k != "Content-Type"}

    install = Client().post(
        SENDGRID_URL, data=body, content_type="application/json", headers=headers
    )
    assert install.status_code == 403
    assert "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY is not set" in install.json()["detail"]
    receipt = last_receipt()
    assert (receipt.verdict, receipt.status_code) == (ReceiptVerdict.REJECTED, 403)

    own = Client().post(
        f"{SENDGRID_URL}{workspace.pk}/",
        data=body,
        content_type="application/json",
        headers=headers,
    )
    assert own.status_code == 200
