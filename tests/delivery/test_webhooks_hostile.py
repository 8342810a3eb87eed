"""Provider webhooks under hostile input: never a 5xx, the receipt always kept, nothing changed
on a refusal. The fuzz tests sign what they send, so hostility reaches past the signature."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client
from hypothesis import event, given
from hypothesis import strategies as st

from contacts.models import Consent, ConsentEvent, Contact, Suppression
from delivery.models import Delivery, DeliveryEvent, ProviderReceipt, ReceiptVerdict
from delivery.states import DeliveryStatus as S
from sandbox.sendgrid import SendGridFake
from tests.contacts.factories import granted_contact
from tests.delivery.test_webhooks import (
    INBOUND_URL,
    PUBLIC,
    SENDGRID_URL,
    SID,
    STATUS_URL,
    TOKEN,
    make_message,
    twilio_post,
)
from tests.delivery.test_webhooks import (
    sendgrid_raw as signed_sendgrid,
)
from tests.fuzz import FUZZ, HOSTILE_NUMBERS, HOSTILE_TEXT, bodies, counts, dumps, objects_like

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def sendgrid(sendgrid_fake: SendGridFake, settings: Any) -> SendGridFake:
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": sendgrid_fake.verification_key,
    }
    return sendgrid_fake


@pytest.fixture(autouse=True)
def twilio_settings(settings: Any) -> None:
    settings.DELIVERY_PUBLIC_BASE_URL = PUBLIC
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.TWILIO_ACCOUNT_SID = SID


STATE = counts(Delivery, DeliveryEvent, Suppression, Consent, ConsentEvent, Contact)


def client() -> Client:
    # Answer a crash as the 500 a real server would send, so the test sees the status code.
    return Client(raise_request_exception=False)


def sendgrid_raw(fake: SendGridFake, body: bytes, *, stamp: str | None = None) -> Any:
    return signed_sendgrid(fake, body, stamp=stamp, http=client())


def twilio_raw(path: str, params: dict[str, str], *, signed: bool = True) -> Any:
    return twilio_post(path, params, signed=signed, http=client())


def last_receipt() -> ProviderReceipt:
    receipt = ProviderReceipt.objects.order_by("-id").first()
    assert receipt is not None
    return receipt


def sent_email() -> Delivery:
    contact = granted_contact()
    return Delivery.objects.create(
        workspace_id=contact.workspace_id,
        message=make_message(),
        contact=contact,
        channel="email",
        status=S.SENT,
        provider="sendgrid",
        provider_message_id="known-anymail-id",
    )


# --- NUL bytes --------------------------------------------------------------------------------


def test_an_escaped_nul_in_signed_sendgrid_events_is_accepted_and_the_event_applied(
    sendgrid: SendGridFake,
) -> None:
    row = sent_email()
    body = json.dumps(
        [
            {
                "event": "delivered",
                "anymail_id": "known-anymail-id",
                "email": "a\x00b@example.com",
                "response": "250 ok\x00",
                "timestamp": int(time.time()),
            },
            # Names no message yet: it waits on the receipt (jsonb) for the re-apply.
            {"event": "open", "anymail_id": "later\x00", "useragent": "\x00"},
        ]
    ).encode()
    assert b"\\u0000" in body
    response = sendgrid_raw(sendgrid, body)
    assert response.status_code == 200
    row.refresh_from_db()
    assert row.status == S.DELIVERED
    receipt = last_receipt()
    assert receipt.verdict == ReceiptVerdict.UNMATCHED
    assert receipt.pending[0]["message_id"] == "later\ufffd"
    assert "\\u0000" in receipt.body  # the receipt keeps the body as sent


def test_a_raw_nul_byte_in_sendgrid_events_is_400_and_kept_with_the_nul_replaced(
    sendgrid: SendGridFake,
) -> None:
    body = b'[{"event": "delivered", "email": "a\x00b"}]'
    before = STATE()
    response = sendgrid_raw(sendgrid, body)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]
    receipt = last_receipt()
    assert (receipt.verdict, receipt.status_code) == (ReceiptVerdict.REJECTED, 400)
    assert receipt.body == '[{"event": "delivered", "email": "a\ufffdb"}]'
    assert STATE() == before


def test_unsigned_sendgrid_events_with_nul_are_refused_and_kept(sendgrid: SendGridFake) -> None:
    response = client().post(
        SENDGRID_URL, data=b"\x00\x00", content_type="application/json; x=\x00"
    )
    assert response.status_code == 401
    assert last_receipt().body == "\ufffd\ufffd"


@pytest.mark.parametrize("path", [STATUS_URL, INBOUND_URL])
def test_nul_in_signed_twilio_parameters_is_accepted_and_kept(path: str) -> None:
    params = {
        "MessageSid": "SM\x00x",
        "MessageStatus": "delivered",
        "From": "+1415555\x000100",
        "Body": "STOP\x00",
        "ErrorMessage": "\x00",
    }
    response = twilio_raw(path, params)
    assert response.status_code == 200
    receipt = last_receipt()
    assert receipt.verdict != ReceiptVerdict.REJECTED
    assert "%00" in receipt.body
    assert json.dumps(receipt.pending).find("\\u0000") == -1


@pytest.mark.parametrize("path", [STATUS_URL, INBOUND_URL])
def test_nul_in_forged_twilio_parameters_is_403_and_kept(path: str) -> None:
    before = STATE()
    response = twilio_raw(path, {"From": "+14155550100\x00", "Body": "START"}, signed=False)
    assert response.status_code == 403
    assert last_receipt().verdict == ReceiptVerdict.REJECTED
    assert STATE() == before


# --- absurd timestamps, wrong shapes, deep nesting ------------------------------------------


@pytest.mark.parametrize(
    "stamp", ["9" * 400, "-1", "1e10", "NaN", "0x5f5e100", "\uff11\uff12\uff13"]
)
def test_an_absurd_sendgrid_timestamp_is_400(sendgrid: SendGridFake, stamp: str) -> None:
    response = sendgrid_raw(sendgrid, b"[]", stamp=stamp)
    assert response.status_code == 400
    assert "not a unix time" in response.json()["detail"]
    assert last_receipt().verdict == ReceiptVerdict.REJECTED


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"[" * 50_000 + b"]" * 50_000, "nested deeper"),
        (b'{"event": "delivered"}', "JSON array of events"),
        (b'"delivered"', "JSON array of events"),
        (b"[1, 2]", "JSON array of events"),
        (b'[{"event": ["delivered"]}]', "JSON array of events"),
        (b'[{"event": "delivered", "timestamp": 1e300}]', "event [0] cannot be read"),
        (b'[{"event": "delivered", "timestamp": "soon"}]', "event [0] cannot be read"),
        (b'[{"event": "dropped", "reason": 5}]', "event [0] cannot be read"),
        (b'[{"event": "delivered", "timestamp": NaN}]', "not a JSON number"),
    ],
)
def test_malformed_signed_sendgrid_bodies_are_400_with_the_reason(
    sendgrid: SendGridFake, body: bytes, detail: str
) -> None:
    before = STATE()
    started = time.monotonic()
    response = sendgrid_raw(sendgrid, body)
    assert response.status_code == 400
    assert detail in response.json()["detail"]
    assert time.monotonic() - started < 10  # no pathological parse, even on a busy machine
    assert STATE() == before


def test_a_sendgrid_delivery_id_that_is_a_digit_but_not_a_number_is_ignored(
    sendgrid: SendGridFake,
) -> None:
    body = json.dumps([{"event": "delivered", "delivery_id": "²", "anymail_id": "x"}]).encode()
    assert sendgrid_raw(sendgrid, body).status_code == 200


# --- fuzz -----------------------------------------------------------------------------------

# Every event names a real event type, so most examples pass the shape check and reach anymail
# and the status machine; the other fields are plausible or hostile.
SENDGRID_EVENT = st.builds(
    lambda event, rest: {"event": event, **rest},
    st.sampled_from(["delivered", "bounce", "dropped", "spamreport", "open", "processed"]),
    objects_like(
        {
            "anymail_id": st.sampled_from(["known-anymail-id", "unknown"]) | HOSTILE_TEXT,
            "email": st.emails() | HOSTILE_TEXT,
            "timestamp": st.integers(0, 2**40) | HOSTILE_NUMBERS | HOSTILE_TEXT,
            "reason": st.text(max_size=30) | HOSTILE_TEXT,
            "type": st.sampled_from(["bounce", "blocked"]) | HOSTILE_TEXT,
            "status": st.sampled_from(["5.1.1", "4.0.0"]) | HOSTILE_TEXT,
            "delivery_id": st.integers() | HOSTILE_TEXT,
            "sg_event_id": st.uuids().map(str) | HOSTILE_TEXT,
        }
    ),
)
# Mostly a good timestamp (None), so most examples reach the body parser.
STAMPS = st.one_of(
    st.none(),
    st.none(),
    st.none(),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
)


@FUZZ
@given(
    body=st.one_of(
        st.lists(SENDGRID_EVENT, max_size=3).map(dumps),
        bodies(st.lists(SENDGRID_EVENT, max_size=3)),
    ),
    stamp=STAMPS,
)
def test_fuzz_sendgrid_events_never_5xx_and_refusals_change_nothing(
    sendgrid: SendGridFake, body: bytes, stamp: str | None
) -> None:
    if not Delivery.objects.filter(provider_message_id="known-anymail-id").exists():
        sent_email()
    before, receipts = STATE(), ProviderReceipt.objects.count()
    response = sendgrid_raw(sendgrid, body, stamp=stamp)
    assert response.status_code < 500, response.content[:300]
    event(f"answered {response.status_code}")
    assert ProviderReceipt.objects.count() == receipts + 1
    if response.status_code >= 400:
        assert STATE() == before
        assert last_receipt().verdict == ReceiptVerdict.REJECTED


TWILIO_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40) | (
    HOSTILE_TEXT.filter(lambda t: "\ud800" not in t)
)
TWILIO_PARAMS = st.fixed_dictionaries(
    {
        "MessageSid": st.sampled_from(["SM1", "SM2"]) | TWILIO_TEXT,
        "MessageStatus": st.sampled_from(["delivered", "failed", "undelivered"]) | TWILIO_TEXT,
        "From": st.sampled_from(["+14155550100", "+14155550101"]) | TWILIO_TEXT,
        "Body": st.sampled_from(["STOP", "START", "HELP", "hi"]) | TWILIO_TEXT,
    },
    optional={
        "OptOutType": st.sampled_from(["STOP", "START", "HELP"]) | TWILIO_TEXT,
        "ErrorCode": st.sampled_from(["30003", "21610"]) | TWILIO_TEXT,
        "ErrorMessage": TWILIO_TEXT,
        "AccountSid": st.just(SID) | TWILIO_TEXT,
    },
)


@FUZZ
@given(
    path=st.sampled_from([STATUS_URL, INBOUND_URL]),
    params=TWILIO_PARAMS,
    # Mostly signed form posts, so most examples reach the parameter parsers.
    signed=st.sampled_from([True, True, True, False]),
    raw=st.one_of(st.none(), st.none(), st.none(), st.binary(max_size=200)),
)
def test_fuzz_twilio_webhooks_never_5xx_and_refusals_change_nothing(
    path: str, params: dict[str, str], signed: bool, raw: bytes | None
) -> None:
    if not Contact.objects.filter(phone="+14155550100").exists():
        granted_contact(channel="sms", phone="+14155550100")
    before, receipts = STATE(), ProviderReceipt.objects.count()
    if raw is None:
        response = twilio_raw(path, params, signed=signed)
    else:
        response = client().post(path, data=raw, content_type="application/x-www-form-urlencoded")
    assert response.status_code < 500, response.content[:300]
    event(f"answered {response.status_code}")
    assert ProviderReceipt.objects.count() == receipts + 1
    if response.status_code >= 400:
        assert STATE() == before


def test_too_many_twilio_form_fields_is_400_with_the_reason_on_the_receipt() -> None:
    body = "&".join(f"f{i}=1" for i in range(2000))
    response = client().post(
        STATUS_URL,
        data=body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE="x",
    )
    assert response.status_code == 400
    assert "malformed request" in response.json()["detail"]
    receipt = last_receipt()
    assert (receipt.verdict, receipt.status_code) == (ReceiptVerdict.REJECTED, 400)


def test_a_body_over_the_upload_limit_is_413_and_the_receipt_kept(settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = client().post(STATUS_URL, data=b"x=" + b"1" * 4096, content_type="text/plain")
    assert response.status_code == 413
    receipt = last_receipt()
    assert (receipt.verdict, receipt.status_code) == (ReceiptVerdict.REJECTED, 413)
    assert (receipt.body, receipt.body_truncated) == ("", True)
