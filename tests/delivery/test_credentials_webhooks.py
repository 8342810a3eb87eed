"""Provider webhooks verified with the right workspace's secrets: the URL names the workspace,
its own auth token (or event key) verifies the request, and a request about another workspace's
message is refused with its receipt kept."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from twilio.request_validator import RequestValidator

from contacts.models import Channel, Consent
from continuity.models import Workspace
from delivery.models import Delivery, ProviderReceipt, ReceiptVerdict
from delivery.states import DeliveryStatus as S
from sandbox.sendgrid import SendGridFake
from tests.delivery.test_credentials import (
    INSTALL_SID,
    INSTALL_TOKEN,
    PUBLIC,
    SID_A,
    SID_B,
    TOKEN_A,
    TOKEN_B,
    consented_contact,
    credentials_set,
    message_in,
)
from tests.workspaces import make_workspace

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def install_accounts(settings: Any) -> None:
    settings.DELIVERY_PUBLIC_BASE_URL = PUBLIC
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = INSTALL_SID, INSTALL_TOKEN


@pytest.fixture
def two_accounts() -> tuple[Workspace, Workspace]:
    a, b = make_workspace(), make_workspace()
    credentials_set(a, twilio_account_sid=SID_A, twilio_auth_token=TOKEN_A,
                    twilio_from_number="+15005550100")  # fmt: skip
    credentials_set(b, twilio_account_sid=SID_B, twilio_auth_token=TOKEN_B,
                    twilio_from_number="+15005550200")  # fmt: skip
    return a, b


def sms_sent(workspace: Workspace) -> Delivery:
    contact = consented_contact(
        workspace, Channel.SMS, phone=f"+1415555{uuid.uuid4().int % 10000:04d}"
    )
    return Delivery.objects.create(
        workspace=workspace,
        message=message_in(workspace),
        contact=contact,
        channel=Channel.SMS,
        status=S.SENT,
        provider="twilio",
        provider_message_id="SM" + uuid.uuid4().hex,
    )


def twilio_post(path: str, params: dict[str, str], *, token: str) -> Any:
    signature = RequestValidator(token).compute_signature(PUBLIC + path, params)
    return Client().post(
        path,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )


def status(row: Delivery, account_sid: str, value: str = "delivered") -> dict[str, str]:
    sid = row.provider_message_id
    return {"AccountSid": account_sid, "MessageSid": sid, "MessageStatus": value}


def last_receipt() -> ProviderReceipt:
    return ProviderReceipt.objects.order_by("-pk").first()  # type: ignore[return-value]


def test_a_callback_signed_with_a_workspaces_own_token_on_its_url_moves_its_delivery(
    two_accounts: tuple[Workspace, Workspace],
) -> None:
    _a, b = two_accounts
    row = sms_sent(b)

    response = twilio_post(f"/webhooks/twilio/status/{b.pk}/", status(row, SID_B), token=TOKEN_B)

    assert response.status_code == 200
    row.refresh_from_db()
    assert row.status == S.DELIVERED


def test_a_callback_signed_with_workspace_a_token_for_a_workspace_b_message_is_rejected(
    two_accounts: tuple[Workspace, Workspace],
) -> None:
    a, b = two_accounts
    row = sms_sent(b)

    # On B's URL: B's token is what verifies, and A's signature does not.
    on_b = twilio_post(f"/webhooks/twilio/status/{b.pk}/", status(row, SID_B), token=TOKEN_A)
    assert on_b.status_code == 403
    assert last_receipt().verdict == ReceiptVerdict.REJECTED
    # On A's URL the signature verifies, but the message is B's.
    on_a = twilio_post(f"/webhooks/twilio/status/{a.pk}/", status(row, SID_A), token=TOKEN_A)
    assert on_a.status_code == 403
    receipt = last_receipt()
    assert (receipt.verdict, receipt.status_code) == (ReceiptVerdict.REJECTED, 403)
    assert "another account" in receipt.reason
    assert ProviderReceipt.objects.filter(verdict=ReceiptVerdict.REJECTED).count() == 2
    row.refresh_from_db()
    assert row.status == S.SENT, "a refused callback changes nothing"


def test_messages_sent_before_a_workspace_brought_its_own_account_still_get_their_callbacks(
    two_accounts: tuple[Workspace, Workspace],
) -> None:
    _a, b = two_accounts
    row = sms_sent(b)  # sent through the install's account, before B set its own
    path = f"/webhooks/twilio/status/{b.pk}/"

    # The AccountSid the callback names picks the token; the signature must then match it.
    claimed_install = twilio_post(path, status(row, INSTALL_SID), token=TOKEN_B)
    assert claimed_install.status_code == 403
    claimed_other = twilio_post(path, status(row, SID_A), token=TOKEN_A)
    assert claimed_other.status_code == 403
    response = twilio_post(path, status(row, INSTALL_SID), token=INSTALL_TOKEN)
    assert response.status_code == 200
    row.refresh_from_db()
    assert row.status == S.DELIVERED


def test_a_workspace_without_its_own_account_is_verified_with_the_install_token() -> None:
    plain = make_workspace()
    row = sms_sent(plain)
    path = f"/webhooks/twilio/status/{plain.pk}/"

    forged = twilio_post(path, status(row, INSTALL_SID), token=TOKEN_A)
    assert forged.status_code == 403
    response = twilio_post(path, status(row, INSTALL_SID), token=INSTALL_TOKEN)
    assert response.status_code == 200
    row.refresh_from_db()
    assert row.status == S.DELIVERED


def test_a_callback_for_a_workspace_that_does_not_exist_is_refused_and_kept() -> None:
    response = twilio_post(
        "/webhooks/twilio/status/999999/",
        {"AccountSid": INSTALL_SID, "MessageSid": "SM" + "0" * 32, "MessageStatus": "sent"},
        token=INSTALL_TOKEN,
    )

    assert response.status_code == 404
    assert (last_receipt().verdict, last_receipt().status_code) == (ReceiptVerdict.REJECTED, 404)


def test_an_inbound_sms_on_a_workspace_url_is_verified_with_that_workspaces_token(
    two_accounts: tuple[Workspace, Workspace],
) -> None:
    a, _b = two_accounts
    params = {
        "AccountSid": SID_A,
        "From": "+14155550999",
        "To": "+15005550100",
        "Body": "HELP",
        "MessageSid": "SM" + uuid.uuid4().hex,
    }
    path = f"/webhooks/twilio/inbound/{a.pk}/"

    assert twilio_post(path, params, token=TOKEN_B).status_code == 403
    assert twilio_post(path, params, token=TOKEN_A).status_code == 200


def test_a_stop_speaks_only_for_the_workspaces_that_text_from_the_number_it_was_sent_to(
    two_accounts: tuple[Workspace, Workspace],
) -> None:
    """The same person is a customer of three workspaces: A and B text from their own Twilio
    accounts, C from the install's. A STOP to A's number stops A's messages only; a STOP to the
    install's number stops those of every workspace without its own account, never A's or B's."""
    a, b = two_accounts
    c = make_workspace()
    phone = "+14155550777"
    people = {ws.slug: consented_contact(ws, Channel.SMS, phone=phone) for ws in (a, b, c)}

    def sms(workspace: Workspace) -> str:
        return str(
            Consent.objects.get(
                contact=people[workspace.slug], channel="sms", purpose="marketing"
            ).state
        )

    def stop(path: str, account_sid: str, token: str) -> Any:
        params = {
            "AccountSid": account_sid,
            "From": phone,
            "Body": "STOP",
            "MessageSid": "SM" + uuid.uuid4().hex,
        }
        return twilio_post(path, params, token=token)

    assert stop(f"/webhooks/twilio/inbound/{a.pk}/", SID_A, TOKEN_A).status_code == 200
    assert [sms(ws) for ws in (a, b, c)] == ["revoked", "granted", "granted"]
    assert last_receipt().workspace_id == a.pk

    assert stop("/webhooks/twilio/inbound/", INSTALL_SID, INSTALL_TOKEN).status_code == 200
    assert [sms(ws) for ws in (a, b, c)] == ["revoked", "granted", "revoked"]


# --- SendGrid -------------------------------------------------------------------------------------


def sendgrid_post(path: str, signer: SendGridFake, events: list[dict[str, Any]]) -> Any:
    body = json.dumps(events).encode()
    headers = signer.events_sign(body)
    return Client().post(
        path,
        data=body,
        content_type="application/json",
        headers={k: v for k, v in headers.items() if k != "Content-Type"},
    )


def email_sent(workspace: Workspace) -> Delivery:
    contact = consented_contact(workspace, Channel.EMAIL, email=f"{uuid.uuid4().hex}@x.example")
    return Delivery.objects.create(
        workspace=workspace,
        message=message_in(workspace),
        contact=contact,
        channel=Channel.EMAIL,
        status=S.SENT,
        provider="sendgrid",
        provider_message_id=str(uuid.uuid4()),
    )


def delivered(row: Delivery) -> list[dict[str, Any]]:
    return [
        {
            "email": row.contact.email,
            "timestamp": 1_700_000_000,
            "event": "delivered",
            "sg_event_id": uuid.uuid4().hex,
            "anymail_id": row.provider_message_id,
        }
    ]


def test_sendgrid_events_of_a_workspace_account_are_verified_with_its_own_key(
    settings: Any,
) -> None:
    install, own = SendGridFake(), SendGridFake()  # signers only: two accounts, two key pairs
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": install.verification_key,
    }
    workspace, other = make_workspace(), make_workspace()
    credentials_set(workspace, sendgrid_webhook_verification_key=own.verification_key)
    row, foreign = email_sent(workspace), email_sent(other)
    path = f"/webhooks/sendgrid/events/{workspace.pk}/"

    # The install's key does not verify the workspace account's events, nor its key the install's.
    assert sendgrid_post(path, install, delivered(row)).status_code == 403
    assert sendgrid_post("/webhooks/sendgrid/events/", own, delivered(row)).status_code == 403
    # Verified, but about another workspace's message: refused.
    assert sendgrid_post(path, own, delivered(foreign)).status_code == 403
    for refused in (row, foreign):
        refused.refresh_from_db()
        assert refused.status == S.SENT

    assert sendgrid_post(path, own, delivered(row)).status_code == 200
    row.refresh_from_db()
    assert row.status == S.DELIVERED


@pytest.mark.parametrize("workspace_id", ["0", "99999999999999999999999", "2147483648"])
def test_a_workspace_id_out_of_any_range_is_not_found_never_5xx(workspace_id: str) -> None:
    params = {"AccountSid": INSTALL_SID, "MessageSid": "SM" + "0" * 32, "MessageStatus": "sent"}
    for path in (
        f"/webhooks/twilio/status/{workspace_id}/",
        f"/webhooks/twilio/inbound/{workspace_id}/",
        f"/webhooks/sendgrid/events/{workspace_id}/",
    ):
        response = twilio_post(path, params, token=INSTALL_TOKEN)
        assert response.status_code == 404, path
