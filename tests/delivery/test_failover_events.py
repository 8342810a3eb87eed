"""The failover ESP's event webhook: received, verified with its own key, applied as SendGrid's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from contacts.models import Consent, ConsentState, Contact, Suppression, SuppressionReason
from delivery.dispatch import deliveries_send_chunk
from delivery.models import Delivery, Message, ProviderReceipt, ReceiptVerdict
from delivery.senders import channel_sender
from delivery.states import DeliveryStatus as S
from sandbox.sendgrid import SendGridFake
from tests.contacts.factories import granted_contact
from tests.delivery.test_webhooks import make_message, plan, sendgrid_post
from tests.workspaces import make_workspace, workspace_for_tests

pytestmark = [pytest.mark.django_db]

FAILOVER_URL = "/webhooks/failover/events/"


@pytest.fixture
def accounts(
    sendgrid_fake: SendGridFake, failover_fake: SendGridFake, settings: Any
) -> Iterator[tuple[SendGridFake, SendGridFake]]:
    """SendGrid (the primary) and the failover ESP, each a SendGrid account with its own key."""
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "SENDGRID_API_KEY": sendgrid_fake.api_key,
        "SENDGRID_API_URL": f"{sendgrid_fake.url}/v3/",
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": sendgrid_fake.verification_key,
    }
    settings.DELIVERY_EMAIL_FAILOVER_BACKEND = "delivery.providers.sendgrid_backend.EmailBackend"
    settings.DELIVERY_EMAIL_FAILOVER_OPTIONS = {
        "api_key": failover_fake.api_key,
        "api_url": f"{failover_fake.url}/v3/",
    }
    settings.DELIVERY_EMAIL_FAILOVER_WEBHOOK_VERIFICATION_KEY = failover_fake.verification_key
    channel_sender.cache_clear()
    yield sendgrid_fake, failover_fake
    channel_sender.cache_clear()


def failover_raw(fake: SendGridFake, body: bytes, *, headers: dict[str, str] | None = None) -> Any:
    signed = fake.events_sign(body) if headers is None else headers
    return Client().post(
        FAILOVER_URL,
        data=body,
        content_type="application/json",
        headers={k: v for k, v in signed.items() if k != "Content-Type"},
    )


def failover_post(fake: SendGridFake, events: list[dict[str, Any]]) -> Any:
    return failover_raw(fake, json.dumps(events).encode())


def sent_through(
    accounts: tuple[SendGridFake, SendGridFake], count: int, *, primary_down: bool
) -> tuple[list[Contact], list[int]]:
    primary, _ = accounts
    if primary_down:
        primary.set_fault(mode="error", status=503)
    contacts = [granted_contact() for _ in range(count)]
    ids = plan(make_message(), contacts)
    report = deliveries_send_chunk(channel="email", ids=ids)
    primary.clear_fault()
    assert report.sent == count
    expected = "failover" if primary_down else "sendgrid"
    assert set(Delivery.objects.filter(id__in=ids).values_list("provider", flat=True)) == {expected}
    return contacts, ids


def last_receipt() -> ProviderReceipt:
    receipt = ProviderReceipt.objects.order_by("-id").first()
    assert receipt is not None
    return receipt


def test_failover_events_settle_the_mail_it_took_and_keep_a_receipt(
    accounts: tuple[SendGridFake, SendGridFake],
) -> None:
    _, failover = accounts
    _, ids = sent_through(accounts, 3, primary_down=True)
    assert failover_post(failover, failover.events_for("delivered")).status_code == 200
    assert set(Delivery.objects.filter(id__in=ids).values_list("status", flat=True)) == {
        S.DELIVERED
    }
    receipt = last_receipt()
    assert (receipt.provider, receipt.kind, receipt.verdict, receipt.matched) == (
        "failover",
        "events",
        ReceiptVerdict.APPLIED,
        3,
    )
    assert receipt.workspace_id is not None  # all three are one workspace's messages


def test_a_failover_bounce_and_complaint_suppress_like_sendgrids(
    accounts: tuple[SendGridFake, SendGridFake],
) -> None:
    _, failover = accounts
    contacts, _ = sent_through(accounts, 2, primary_down=True)
    bounce = [
        e
        for e in failover.events_for("bounce", reason="550 5.1.1 no such user", status="5.1.1")
        if e["email"] == contacts[0].email
    ]
    spam = [e for e in failover.events_for("spamreport") if e["email"] == contacts[1].email]
    assert failover_post(failover, bounce + spam).status_code == 200
    reasons = dict(
        Suppression.objects.filter(contact__in=contacts, active=True).values_list(
            "contact_id", "reason"
        )
    )
    assert reasons == {
        contacts[0].pk: SuppressionReason.HARD_BOUNCE,
        contacts[1].pk: SuppressionReason.COMPLAINT,
    }
    assert Delivery.objects.get(contact=contacts[0]).status == S.BOUNCED
    consent = Consent.objects.get(contact=contacts[1], channel="email", purpose="marketing")
    assert consent.state == ConsentState.REVOKED


# --- hostile requests: 4xx with the reason, the receipt kept, nothing applied --------------------


def _refused(response: Any, status: int, ids: list[int], *, reason: str) -> None:
    assert response.status_code == status
    assert reason in response.json()["detail"]
    receipt = last_receipt()
    assert (receipt.provider, receipt.verdict, receipt.status_code) == (
        "failover",
        ReceiptVerdict.REJECTED,
        status,
    )
    assert set(Delivery.objects.filter(id__in=ids).values_list("status", flat=True)) == {S.SENT}


def test_unsigned_failover_events_are_refused(accounts: tuple[SendGridFake, SendGridFake]) -> None:
    _, failover = accounts
    _, ids = sent_through(accounts, 1, primary_down=True)
    body = json.dumps(failover.events_for("delivered")).encode()
    _refused(failover_raw(failover, body, headers={}), 401, ids, reason="header missing")


def test_failover_events_are_refused_while_no_key_is_configured(
    accounts: tuple[SendGridFake, SendGridFake], settings: Any
) -> None:
    _, failover = accounts
    _, ids = sent_through(accounts, 1, primary_down=True)
    settings.DELIVERY_EMAIL_FAILOVER_WEBHOOK_VERIFICATION_KEY = ""
    response = failover_post(failover, failover.events_for("delivered"))
    _refused(response, 403, ids, reason="DELIVERY_EMAIL_FAILOVER_WEBHOOK_VERIFICATION_KEY")


def test_events_signed_by_the_primary_account_do_not_verify_on_the_failover_route(
    accounts: tuple[SendGridFake, SendGridFake],
) -> None:
    primary, failover = accounts
    _, ids = sent_through(accounts, 1, primary_down=True)
    body = json.dumps(failover.events_for("delivered")).encode()
    response = failover_raw(failover, body, headers=primary.events_sign(body))
    _refused(response, 403, ids, reason="signature does not verify")


def test_tampered_failover_events_do_not_verify(
    accounts: tuple[SendGridFake, SendGridFake],
) -> None:
    _, failover = accounts
    _, ids = sent_through(accounts, 1, primary_down=True)
    body = json.dumps(failover.events_for("delivered")).encode()
    headers = failover.events_sign(body)
    tampered = body.replace(b"delivered", b"bounce")
    _refused(failover_raw(failover, tampered, headers=headers), 403, ids, reason="signature")


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"event": "delivered"}', b"[1, 2]", b'[{"event": "delivered", "x": NaN}]'],
)
def test_malformed_signed_failover_bodies_are_400(
    accounts: tuple[SendGridFake, SendGridFake], body: bytes
) -> None:
    _, failover = accounts
    _, ids = sent_through(accounts, 1, primary_down=True)
    response = failover_raw(failover, body)
    assert response.status_code == 400
    _refused(response, 400, ids, reason="")


def test_a_replayed_failover_request_is_refused(
    accounts: tuple[SendGridFake, SendGridFake],
) -> None:
    _, failover = accounts
    _, ids = sent_through(accounts, 1, primary_down=True)
    body = json.dumps(failover.events_for("processed")).encode()
    headers = failover.events_sign(body)
    assert failover_raw(failover, body, headers=headers).status_code == 200
    Delivery.objects.filter(id__in=ids).update(status=S.SENT)
    _refused(failover_raw(failover, body, headers=headers), 409, ids, reason="replay")


def test_failover_events_about_mail_the_primary_sent_are_refused(
    accounts: tuple[SendGridFake, SendGridFake],
) -> None:
    primary, failover = accounts
    _, ids = sent_through(accounts, 2, primary_down=False)
    # The failover account's key, the primary's message ids (another account's messages).
    response = failover_post(failover, primary.events_for("bounce", status="5.1.1"))
    _refused(response, 403, ids, reason="another account sent")
    assert not Suppression.objects.exists()


def test_sendgrid_events_about_mail_the_failover_took_are_refused(
    accounts: tuple[SendGridFake, SendGridFake],
) -> None:
    primary, failover = accounts
    _, ids = sent_through(accounts, 1, primary_down=True)
    body = json.dumps(failover.events_for("bounce", status="5.1.1")).encode()
    response = sendgrid_post(primary, json.loads(body))
    assert response.status_code == 403  # type: ignore[attr-defined]
    assert Delivery.objects.get(id=ids[0]).status == S.SENT
    assert not Suppression.objects.exists()


def test_failover_events_for_unknown_messages_wait_on_the_receipt(
    accounts: tuple[SendGridFake, SendGridFake],
) -> None:
    _, failover = accounts
    events = [
        {
            "email": "nobody@example.com",
            "timestamp": 1,
            "event": "delivered",
            "sg_event_id": "e1",
            "sg_message_id": "x.filter0001.0",
            "anymail_id": "00000000-0000-0000-0000-000000000000",
        }
    ]
    assert failover_post(failover, events).status_code == 200
    receipt = last_receipt()
    assert receipt.verdict == ReceiptVerdict.UNMATCHED
    assert receipt.pending[0]["provider"] == "failover"


def test_one_failover_batch_over_two_workspaces_applies_and_stays_install_level(
    accounts: tuple[SendGridFake, SendGridFake],
) -> None:
    """The failover is the install's: it reports on every workspace's mail it took, and a
    receipt spanning two workspaces is kept for operators, not handed to either client."""
    primary, failover = accounts
    primary.set_fault(mode="error", status=503)
    ids = []
    for workspace in (workspace_for_tests(), make_workspace()):
        contact = granted_contact(workspace=workspace)
        message = Message.objects.create(
            workspace=workspace,
            name="m",
            email_subject="Hi",
            email_html="<p>Hi</p>",
            email_text="Hi",
        )
        ids += plan(message, [contact])
    assert deliveries_send_chunk(channel="email", ids=ids).sent == 2
    primary.clear_fault()
    assert failover_post(failover, failover.events_for("delivered")).status_code == 200
    assert set(Delivery.objects.filter(id__in=ids).values_list("status", flat=True)) == {
        S.DELIVERED
    }
    receipt = last_receipt()
    assert (receipt.verdict, receipt.matched, receipt.workspace_id) == (
        ReceiptVerdict.APPLIED,
        2,
        None,
    )
