"""Provider webhooks over HTTP: receipts kept, hostile requests refused, events applied."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client, TestCase
from twilio.request_validator import RequestValidator

from contacts.models import (
    Channel,
    Consent,
    ConsentEvent,
    ConsentSource,
    ConsentState,
    Contact,
    Purpose,
    Suppression,
    SuppressionReason,
)
from delivery.claim import deliveries_claim
from delivery.dispatch import deliveries_enqueue, deliveries_send_chunk
from delivery.models import Delivery, DeliveryEvent, Message, ProviderReceipt, ReceiptVerdict
from delivery.senders import channel_sender
from delivery.states import DeliveryStatus as S
from delivery.status import receipts_reapply
from sandbox.sendgrid import SendGridFake
from tests.contacts.factories import evidence, granted_contact
from tests.workspaces import workspace_for_tests

pytestmark = [pytest.mark.django_db]

PUBLIC = "https://continuity.example.com"
TOKEN = "test-twilio-token"
SID = "AC" + "1" * 32
SENDGRID_URL = "/webhooks/sendgrid/events/"
STATUS_URL = "/webhooks/twilio/status/"
INBOUND_URL = "/webhooks/twilio/inbound/"


@pytest.fixture
def sendgrid(sendgrid_fake: SendGridFake, settings: object) -> Iterator[SendGridFake]:
    settings.ANYMAIL = {  # type: ignore[attr-defined]
        **settings.ANYMAIL,  # type: ignore[attr-defined]
        "SENDGRID_API_KEY": sendgrid_fake.api_key,
        "SENDGRID_API_URL": f"{sendgrid_fake.url}/v3/",
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": sendgrid_fake.verification_key,
    }
    channel_sender.cache_clear()
    yield sendgrid_fake
    channel_sender.cache_clear()


@pytest.fixture(autouse=True)
def twilio_settings(settings: object) -> None:
    settings.DELIVERY_PUBLIC_BASE_URL = PUBLIC  # type: ignore[attr-defined]
    settings.TWILIO_AUTH_TOKEN = TOKEN  # type: ignore[attr-defined]
    settings.TWILIO_ACCOUNT_SID = SID  # type: ignore[attr-defined]


def make_message() -> Message:
    return Message.objects.create(
        workspace=workspace_for_tests(),
        name="m",
        email_subject="Hi {{ first_name }}",
        email_html="<p>Hi</p>",
        email_text="Hi",
        sms_text="Hi {{ first_name }}",
    )


def plan(message: Message, contacts: list[Contact], channel: str = Channel.EMAIL) -> list[int]:
    rows = Delivery.objects.bulk_create(
        [
            Delivery(workspace_id=message.workspace_id, message=message, contact=c, channel=channel)
            for c in contacts
        ]
    )
    ids = [r.pk for r in rows]
    with TestCase.captureOnCommitCallbacks(execute=True):
        deliveries_enqueue(ids=ids, send=lambda channel, chunk: None)
    return ids


def sendgrid_raw(
    fake: SendGridFake, body: bytes, *, stamp: str | None = None, http: Client | None = None
) -> Any:
    """`body` as SendGrid posts it, signed by the fake (its timestamp header set to `stamp`)."""
    headers = fake.events_sign(body)
    if stamp is not None:
        headers["X-Twilio-Email-Event-Webhook-Timestamp"] = stamp
    return (http or Client()).post(
        SENDGRID_URL,
        data=body,
        content_type="application/json",
        headers={k: v for k, v in headers.items() if k != "Content-Type"},
    )


def sendgrid_post(fake: SendGridFake, events: list[dict[str, object]]) -> object:
    return sendgrid_raw(fake, json.dumps(events).encode())


def twilio_post(
    path: str,
    params: dict[str, str],
    *,
    token: str = TOKEN,
    signed: bool = True,
    http: Client | None = None,
) -> Any:
    signature = RequestValidator(token).compute_signature(PUBLIC + path, params)
    return (http or Client()).post(
        path,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature if signed else "forged",
    )


def sent_emails(sendgrid: SendGridFake, count: int) -> tuple[list[Contact], list[int]]:
    contacts = [granted_contact() for _ in range(count)]
    ids = plan(make_message(), contacts)
    report = deliveries_send_chunk(channel="email", ids=ids)
    assert report.sent == count
    return contacts, ids


# --- SendGrid -------------------------------------------------------------------------------------


def test_sendgrid_events_move_deliveries_and_a_bounce_suppresses_the_next_claim(
    sendgrid: SendGridFake,
) -> None:
    contacts, ids = sent_emails(sendgrid, 3)
    delivered = sendgrid.events_for("delivered")
    response = sendgrid_post(sendgrid, delivered)
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert set(Delivery.objects.filter(id__in=ids).values_list("status", flat=True)) == {
        S.DELIVERED
    }
    bounced_email = contacts[0].email
    bounce = [
        e
        for e in sendgrid.events_for("bounce", reason="550 5.1.1 no such user", status="5.1.1")
        if e["email"] == bounced_email
    ]
    assert sendgrid_post(sendgrid, bounce).status_code == 200  # type: ignore[attr-defined]
    row = Delivery.objects.get(contact=contacts[0])
    assert (row.status, row.error_code) == (S.BOUNCED, "5.1.1")
    suppression = Suppression.objects.get(contact=contacts[0], channel="email", active=True)
    assert suppression.reason == SuppressionReason.HARD_BOUNCE
    receipt = ProviderReceipt.objects.order_by("-id").first()
    assert receipt is not None
    assert (receipt.verdict, receipt.matched, receipt.kind) == (ReceiptVerdict.APPLIED, 1, "events")

    # The next campaign's claim skips the bounced address and settles it as suppressed.
    ids2 = plan(make_message(), contacts)
    claimed = deliveries_claim(ids=ids2, channel="email", purpose="marketing")
    assert len(claimed) == 2
    assert Delivery.objects.get(id__in=ids2, contact=contacts[0]).status == S.SUPPRESSED


def test_duplicate_sendgrid_events_are_harmless(sendgrid: SendGridFake) -> None:
    contacts, ids = sent_emails(sendgrid, 2)
    events = sendgrid.events_for("delivered") + sendgrid.events_for("bounce", status="5.1.1")
    events += sendgrid.events_for("unsubscribe")
    for _ in range(3):  # SendGrid's retries: same events, fresh signatures
        assert sendgrid_post(sendgrid, events).status_code == 200  # type: ignore[attr-defined]
    assert set(Delivery.objects.filter(id__in=ids).values_list("status", flat=True)) == {S.BOUNCED}
    assert DeliveryEvent.objects.filter(delivery_id__in=ids, status=S.BOUNCED).count() == 2
    assert DeliveryEvent.objects.filter(delivery_id__in=ids, status=S.DELIVERED).count() == 2
    assert Suppression.objects.filter(contact__in=contacts, active=True).count() == 2
    revokes = ConsentEvent.objects.filter(
        contact__in=contacts, channel="email", action="revoke", source="unsubscribe_link"
    )
    assert revokes.count() == 2
    assert set(
        Consent.objects.filter(contact__in=contacts, channel="email").values_list(
            "state", flat=True
        )
    ) == {ConsentState.REVOKED}


def test_a_spam_report_and_a_drop_add_suppressions(sendgrid: SendGridFake) -> None:
    """The spam report also withdraws email marketing consent, with the event as evidence."""
    contacts, _ = sent_emails(sendgrid, 2)
    spam = [e for e in sendgrid.events_for("spamreport") if e["email"] == contacts[0].email]
    drop = [
        e
        for e in sendgrid.events_for("dropped", reason="Invalid")
        if e["email"] == contacts[1].email
    ]
    assert sendgrid_post(sendgrid, spam + drop).status_code == 200  # type: ignore[attr-defined]
    reasons = dict(
        Suppression.objects.filter(contact__in=contacts).values_list("contact_id", "reason")
    )
    assert reasons == {
        contacts[0].pk: SuppressionReason.COMPLAINT,
        contacts[1].pk: SuppressionReason.INVALID_ADDRESS,
    }
    assert Delivery.objects.get(contact=contacts[1]).status == S.FAILED
    consent = dict(
        Consent.objects.filter(
            contact__in=contacts, channel="email", purpose="marketing"
        ).values_list("contact_id", "state")
    )
    assert consent == {contacts[0].pk: ConsentState.REVOKED, contacts[1].pk: ConsentState.GRANTED}
    evidence_row = ConsentEvent.objects.filter(contact=contacts[0], action="revoke").get()
    assert evidence_row.source == ConsentSource.COMPLAINT
    assert evidence_row.source_detail.startswith("sendgrid complained event ")


@pytest.mark.parametrize(
    ("event", "extra", "suppression", "revoked"),
    [
        ("dropped", {"reason": "Bounced Address"}, SuppressionReason.HARD_BOUNCE, False),
        ("dropped", {"reason": "Spam Reporting Address"}, SuppressionReason.COMPLAINT, False),
        ("dropped", {"reason": "Spam Content"}, None, False),
        ("dropped", {"reason": "Unsubscribed Address"}, None, True),
        ("bounce", {"type": "blocked", "reason": "421 try later"}, None, False),
        ("bounce", {"type": "bounce", "reason": "550 no such user"}, "hard_bounce", False),
    ],
)
def test_only_address_level_reasons_suppress(
    sendgrid: SendGridFake,
    event: str,
    extra: dict[str, str],
    suppression: str | None,
    revoked: bool,
) -> None:
    [contact], _ = sent_emails(sendgrid, 1)
    assert sendgrid_post(sendgrid, sendgrid.events_for(event, **extra)).status_code == 200  # type: ignore[attr-defined]
    found = Suppression.objects.filter(contact=contact).values_list("reason", flat=True).first()
    assert found == suppression
    state = Consent.objects.get(contact=contact, channel="email", purpose="marketing").state
    assert (state == ConsentState.REVOKED) is revoked


def _unsigned(fake: SendGridFake, body: bytes) -> dict[str, str]:
    return {}


def _badly_signed(fake: SendGridFake, body: bytes) -> dict[str, str]:
    return SendGridFake().events_sign(body)


def _stale(fake: SendGridFake, body: bytes) -> dict[str, str]:
    return fake.events_sign(body, timestamp=1_700_000_000)


@pytest.mark.parametrize(
    ("make_headers", "body", "status"),
    [
        (_unsigned, b'[{"event": "delivered"}]', 401),
        (_badly_signed, b'[{"event": "delivered"}]', 403),
        (_stale, b'[{"event": "delivered"}]', 403),
        (lambda fake, body: fake.events_sign(body), b"not json", 400),
        (lambda fake, body: fake.events_sign(body), b'{"event": "open"}', 400),
    ],
    ids=["unsigned", "badly-signed", "stale", "not-json", "not-a-list"],
)
def test_hostile_sendgrid_posts_get_a_4xx_and_their_receipt_is_kept(
    sendgrid: SendGridFake, make_headers: object, body: bytes, status: int
) -> None:
    headers = make_headers(sendgrid, body)  # type: ignore[operator]
    response = Client().post(
        SENDGRID_URL,
        data=body,
        content_type="application/json",
        headers={k: v for k, v in headers.items() if k != "Content-Type"},
    )
    assert response.status_code == status
    assert response.json()["error"] == "webhook_rejected"
    receipt = ProviderReceipt.objects.get()
    assert (receipt.verdict, receipt.status_code, receipt.provider) == (
        ReceiptVerdict.REJECTED,
        status,
        "sendgrid",
    )
    assert receipt.body == body.decode()
    assert receipt.reason == response.json()["detail"]


def test_a_replayed_sendgrid_post_is_refused_and_kept(sendgrid: SendGridFake) -> None:
    sent_emails(sendgrid, 1)
    body = json.dumps(sendgrid.events_for("delivered")).encode()
    headers = {k: v for k, v in sendgrid.events_sign(body).items() if k != "Content-Type"}
    first = Client().post(SENDGRID_URL, data=body, content_type="application/json", headers=headers)
    again = Client().post(SENDGRID_URL, data=body, content_type="application/json", headers=headers)
    assert (first.status_code, again.status_code) == (200, 409)
    assert list(ProviderReceipt.objects.order_by("id").values_list("verdict", flat=True)) == [
        ReceiptVerdict.APPLIED,
        ReceiptVerdict.REJECTED,
    ]


def test_get_is_refused() -> None:
    assert Client().get(SENDGRID_URL).status_code == 405


# --- Twilio status --------------------------------------------------------------------------------


def sms_row(*, sid: str, status: str = S.SENT) -> Delivery:
    contact = granted_contact(channel=Channel.SMS, phone=f"+1415555{uuid.uuid4().int % 10000:04d}")
    row = Delivery.objects.create(
        workspace_id=contact.workspace_id,
        message=make_message(),
        contact=contact,
        channel="sms",
        status=status,
    )
    if sid:
        Delivery.objects.filter(pk=row.pk).update(provider_message_id=sid, provider="twilio")
    return row


def status_params(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {"AccountSid": SID, "MessageSid": sid, "MessageStatus": status, **extra}


def test_twilio_status_callbacks_move_the_delivery() -> None:
    sid = "SM" + uuid.uuid4().hex
    row = sms_row(sid=sid)
    assert twilio_post(STATUS_URL, status_params(sid, "delivered")).status_code == 200
    row.refresh_from_db()
    assert row.status == S.DELIVERED
    # A late "sent" after "delivered" is kept but moves nothing back.
    assert twilio_post(STATUS_URL, status_params(sid, "sent")).status_code == 200
    row.refresh_from_db()
    assert row.status == S.DELIVERED


@pytest.mark.parametrize(
    ("code", "status", "suppressed", "revoked"),
    [
        ("30005", S.UNDELIVERED, True, False),
        ("30006", S.UNDELIVERED, True, False),
        ("30003", S.UNDELIVERED, False, False),
        ("21610", S.FAILED, False, True),
    ],
)
def test_twilio_error_codes_are_mapped(
    code: str, status: str, suppressed: bool, revoked: bool
) -> None:
    sid = "SM" + uuid.uuid4().hex
    row = sms_row(sid=sid)
    twilio_status = "failed" if status == S.FAILED else "undelivered"
    response = twilio_post(STATUS_URL, status_params(sid, twilio_status, ErrorCode=code))
    assert response.status_code == 200
    row.refresh_from_db()
    assert (row.status, row.error_code) == (status, code)
    assert (
        Suppression.objects.filter(
            contact=row.contact, channel="sms", reason=SuppressionReason.INVALID_NUMBER
        ).exists()
        is suppressed
    )
    assert (
        Consent.objects.filter(contact=row.contact, channel="sms", state="revoked").exists()
        is revoked
    )


def test_a_status_for_an_unknown_message_is_kept_and_reapplied_when_it_appears() -> None:
    sid = "SM" + uuid.uuid4().hex
    row = sms_row(sid="", status=S.SENDING)  # the send has not written its provider id yet
    response = twilio_post(STATUS_URL, status_params(sid, "delivered"))
    assert response.status_code == 200
    receipt = ProviderReceipt.objects.get()
    assert receipt.verdict == ReceiptVerdict.UNMATCHED
    assert receipt.pending[0]["message_id"] == sid
    assert receipts_reapply() == {"receipts": 1, "matched": 0}

    Delivery.objects.filter(pk=row.pk).update(provider_message_id=sid, status=S.SENT)
    assert receipts_reapply() == {"receipts": 1, "matched": 1}
    row.refresh_from_db()
    receipt.refresh_from_db()
    assert row.status == S.DELIVERED
    assert (receipt.verdict, receipt.pending, receipt.attempts) == (ReceiptVerdict.APPLIED, [], 2)
    assert receipts_reapply() == {"receipts": 0, "matched": 0}


def test_hostile_twilio_callbacks_get_a_4xx_and_a_receipt() -> None:
    sid = "SM" + uuid.uuid4().hex
    params = status_params(sid, "delivered")
    unsigned = Client().post(STATUS_URL, data=params)
    forged = twilio_post(STATUS_URL, params, token="not-our-token")
    malformed = twilio_post(STATUS_URL, {"AccountSid": SID, "Foo": uuid.uuid4().hex})
    replay_params = status_params("SM" + uuid.uuid4().hex, "sent")
    first = twilio_post(STATUS_URL, replay_params)
    replay = twilio_post(STATUS_URL, replay_params)
    codes = [r.status_code for r in (unsigned, forged, malformed, first, replay)]
    assert codes == [401, 403, 400, 200, 409]
    verdicts = list(ProviderReceipt.objects.order_by("id").values_list("verdict", flat=True))
    assert verdicts == ["rejected", "rejected", "rejected", "unmatched", "rejected"]


# --- Twilio inbound -------------------------------------------------------------------------------


def inbound(phone: str, body: str, **extra: str) -> object:
    params = {"AccountSid": SID, "MessageSid": "SM" + uuid.uuid4().hex, "From": phone}
    return twilio_post(INBOUND_URL, {**params, "Body": body, **extra})


def sms_state(contact: Contact) -> dict[str, str]:
    return dict(
        Consent.objects.filter(contact=contact, channel="sms").values_list("purpose", "state")
    )


def test_stop_and_start_keywords_change_sms_consent_with_evidence() -> None:
    contact = granted_contact(channel=Channel.SMS, phone="+14155550111")
    response = inbound("+14155550111", " Stop. ")
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert response["Content-Type"].startswith("text/xml")  # type: ignore[index]
    assert sms_state(contact) == {"marketing": "revoked", "service": "revoked"}
    revoke = ConsentEvent.objects.filter(contact=contact, action="revoke").latest("id")
    assert revoke.source == ConsentSource.SMS_KEYWORD
    assert "STOP" in revoke.note
    assert revoke.source_detail.startswith("SM")

    assert inbound("+14155550111", "START").status_code == 200  # type: ignore[attr-defined]
    # START restores what the keyword took away, and nothing the contact never had.
    assert sms_state(contact) == {"marketing": "granted", "service": "granted"}
    grant = ConsentEvent.objects.filter(contact=contact, action="grant").latest("id")
    assert (grant.source, grant.note) == (ConsentSource.SMS_KEYWORD, "inbound SMS keyword START")
    assert ProviderReceipt.objects.filter(verdict="applied", kind="inbound").count() == 2


def test_start_does_not_undo_a_withdrawal_made_elsewhere() -> None:
    from contacts.consent import consent_revoke

    contact = granted_contact(channel=Channel.SMS, phone="+14155550112")
    consent_revoke(
        contact=contact,
        channel="sms",
        purpose=Purpose.MARKETING,
        evidence=evidence(source=ConsentSource.PREFERENCE_CENTRE),
    )
    inbound("+14155550112", "STOP")
    consent_revoke(
        contact=contact,
        channel="sms",
        purpose=Purpose.MARKETING,
        evidence=evidence(source=ConsentSource.PREFERENCE_CENTRE),
    )
    inbound("+14155550112", "unstop")
    assert sms_state(contact) == {"marketing": "revoked", "service": "granted"}


def test_advanced_opt_out_type_wins_and_help_is_answered() -> None:
    contact = granted_contact(channel=Channel.SMS, phone="+14155550113")
    inbound("+14155550113", "ARRET", OptOutType="STOP")
    assert sms_state(contact)["marketing"] == "revoked"
    help_answer = inbound("+14155550113", "help")
    assert b"Reply STOP" in help_answer.content  # type: ignore[attr-defined]
    assert b"<Message>" in help_answer.content  # type: ignore[attr-defined]
    plain = inbound("+14155550113", "what time do you open?")
    assert b"<Message>" not in plain.content  # type: ignore[attr-defined]
    assert ProviderReceipt.objects.latest("id").verdict == ReceiptVerdict.IGNORED


@pytest.mark.parametrize("body", ["REVOKE", "optout", "Cancel!", "end", "QUIT", "stopall"])
def test_each_of_twilios_default_opt_out_words_alone_is_a_stop(body: str) -> None:
    contact = granted_contact(channel=Channel.SMS, phone="+14155550114")
    inbound("+14155550114", body)
    assert sms_state(contact)["marketing"] == "revoked"


@pytest.mark.parametrize("body", ["Cancel my order", "stop please", "please STOP", "yes I will"])
def test_a_keyword_inside_a_sentence_is_a_customer_talking_not_a_keyword(body: str) -> None:
    contact = granted_contact(channel=Channel.SMS, phone="+14155550115")
    inbound("+14155550115", body)
    assert sms_state(contact) == {"marketing": "granted"}
    assert ProviderReceipt.objects.latest("id").verdict == ReceiptVerdict.IGNORED


def test_stop_from_an_unknown_number_is_kept_as_unmatched() -> None:
    response = inbound("+14155550199", "STOP")
    assert response.status_code == 200  # type: ignore[attr-defined]
    receipt = ProviderReceipt.objects.get()
    assert (receipt.verdict, receipt.matched) == (ReceiptVerdict.UNMATCHED, 0)


def test_a_large_body_is_capped_in_the_receipt(settings: object) -> None:
    settings.DELIVERY_RECEIPT_BODY_MAX = 1024  # type: ignore[attr-defined]
    response = Client().post(SENDGRID_URL, data=b"x" * 5000, content_type="application/json")
    assert response.status_code == 403  # no verification key configured: refused
    receipt = ProviderReceipt.objects.get()
    assert (len(receipt.body), receipt.body_truncated) == (1024, True)
