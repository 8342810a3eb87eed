from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from django.http import HttpRequest
from django.test import RequestFactory, override_settings
from twilio.request_validator import RequestValidator

from delivery.provider_events import (
    OptAction,
    WebhookRejected,
    sendgrid_events_parse,
    twilio_inbound_parse,
    twilio_status_parse,
)
from delivery.providers.base import EmailContent, OutboundMessage
from delivery.providers.sendgrid_email import SendGridEmailSender, sendgrid_connection
from sandbox.sendgrid import SendGridFake
from sandbox.twilio import TwilioFake
from tests.delivery.conftest import SinkFake
from tests.harness import eventually

PUBLIC = "https://continuity.example.com"
TOKEN = "test-twilio-token"
SID = "AC" + "1" * 32


@pytest.fixture
def signed_sendgrid(sendgrid_fake: SendGridFake) -> Iterator[SendGridFake]:
    anymail = {
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": sendgrid_fake.verification_key,
        "SENDGRID_API_KEY": sendgrid_fake.api_key,
    }
    with override_settings(ANYMAIL=anymail):
        yield sendgrid_fake


def _sendgrid_request(body: bytes, headers: dict[str, str]) -> HttpRequest:
    return RequestFactory().post(
        "/webhooks/sendgrid/tracking/",
        data=body,
        content_type="application/json",
        headers={k: v for k, v in headers.items() if k != "Content-Type"},
    )


def _send_two(fake: SendGridFake) -> list[str]:
    sender = SendGridEmailSender(
        connection=sendgrid_connection(api_url=f"{fake.url}/v3/", api_key=fake.api_key)
    )
    outcomes = sender.send_batch(
        content=EmailContent(subject="s", html="<p>h</p>", text="t"),
        messages=[OutboundMessage(delivery_id=i, to=f"p{i}@example.com") for i in (7, 8)],
    )
    return [o.provider_message_id for o in outcomes]  # type: ignore[union-attr]


def test_signed_sendgrid_events_are_verified_and_normalised(signed_sendgrid: SendGridFake) -> None:
    ids = _send_two(signed_sendgrid)
    events = signed_sendgrid.events_for("delivered") + signed_sendgrid.events_for(
        "bounce", reason="550 5.1.1 no such user", status="5.1.1"
    )
    body = json.dumps(events).encode()
    parsed = sendgrid_events_parse(
        request=_sendgrid_request(body, signed_sendgrid.events_sign(body))
    )
    assert [(e.message_id, e.status, e.delivery_id) for e in parsed] == [
        (ids[0], "delivered", 7),
        (ids[1], "delivered", 8),
        (ids[0], "bounced", 7),
        (ids[1], "bounced", 8),
    ]
    assert parsed[2].error_code == "5.1.1"
    assert parsed[2].error_text == "550 5.1.1 no such user"
    assert parsed[0].recipient == "p7@example.com"


def test_unsigned_sendgrid_events_are_refused(signed_sendgrid: SendGridFake) -> None:
    body = json.dumps([{"event": "delivered", "sg_event_id": uuid.uuid4().hex}]).encode()
    with pytest.raises(WebhookRejected) as caught:
        sendgrid_events_parse(request=_sendgrid_request(body, {}))
    assert caught.value.status_code == 401


def test_badly_signed_sendgrid_events_are_refused(signed_sendgrid: SendGridFake) -> None:
    body = json.dumps([{"event": "delivered", "sg_event_id": uuid.uuid4().hex}]).encode()
    headers = signed_sendgrid.events_sign(body)
    tampered = body.replace(b"delivered", b"bounce")
    with pytest.raises(WebhookRejected) as caught:
        sendgrid_events_parse(request=_sendgrid_request(tampered, headers))
    assert caught.value.status_code == 403
    other = SendGridFake()
    with pytest.raises(WebhookRejected, match="does not verify"):
        sendgrid_events_parse(request=_sendgrid_request(body, other.events_sign(body)))


def test_a_stale_or_replayed_sendgrid_post_is_refused(signed_sendgrid: SendGridFake) -> None:
    body = json.dumps([{"event": "open", "sg_event_id": uuid.uuid4().hex}]).encode()
    old = signed_sendgrid.events_sign(body, timestamp=int(time.time()) - 3600)
    with pytest.raises(WebhookRejected, match="window") as caught:
        sendgrid_events_parse(request=_sendgrid_request(body, old))
    assert caught.value.status_code == 403
    fresh = signed_sendgrid.events_sign(body)
    assert len(sendgrid_events_parse(request=_sendgrid_request(body, fresh))) == 1
    with pytest.raises(WebhookRejected, match="replay") as replay:
        sendgrid_events_parse(request=_sendgrid_request(body, fresh))
    assert replay.value.status_code == 409


@pytest.mark.parametrize("body", [b"not json", b'{"event": "open"}', b"[1, 2]", b'[{"x": 1}]'])
def test_malformed_sendgrid_bodies_are_refused_even_when_signed(
    signed_sendgrid: SendGridFake, body: bytes
) -> None:
    with pytest.raises(WebhookRejected) as caught:
        sendgrid_events_parse(request=_sendgrid_request(body, signed_sendgrid.events_sign(body)))
    assert caught.value.status_code == 400


def test_sendgrid_events_are_refused_when_verification_is_not_configured(
    sendgrid_fake: SendGridFake,
) -> None:
    body = b"[]"
    with (
        override_settings(ANYMAIL={"SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": None}),
        pytest.raises(WebhookRejected, match="not configured"),
    ):
        sendgrid_events_parse(request=_sendgrid_request(body, sendgrid_fake.events_sign(body)))


# --- Twilio ---------------------------------------------------------------------------------------


def _twilio_request(
    path: str, params: dict[str, str], *, sign_url: str | None = None
) -> HttpRequest:
    url = sign_url or PUBLIC + path
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    # The app sits behind a proxy: Django sees an internal host, Twilio signed the public URL.
    return RequestFactory().post(
        path,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
        SERVER_NAME="10.0.0.5",
    )


@pytest.fixture
def twilio_settings() -> Iterator[None]:
    with override_settings(
        DELIVERY_PUBLIC_BASE_URL=PUBLIC, TWILIO_AUTH_TOKEN=TOKEN, TWILIO_ACCOUNT_SID=SID
    ):
        yield


def _status(status: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": SID,
        "MessageSid": "SM" + uuid.uuid4().hex,
        "MessageStatus": status,
        "To": "+14155550100",
        "ApiVersion": "2010-04-01",
        **extra,
    }


@pytest.mark.usefixtures("twilio_settings")
def test_a_signed_status_callback_is_parsed_against_the_public_url() -> None:
    params = _status("undelivered", ErrorCode="30003", SomeNewParam="x")
    event = twilio_status_parse(request=_twilio_request("/webhooks/twilio/status/", params))
    assert (event.message_id, event.status, event.error_code) == (
        params["MessageSid"],
        "undelivered",
        "30003",
    )


@pytest.mark.usefixtures("twilio_settings")
def test_a_callback_signed_for_another_url_or_token_or_unsigned_is_refused() -> None:
    params = _status("delivered")
    internal = _twilio_request(
        "/webhooks/twilio/status/", params, sign_url="http://10.0.0.5/webhooks/twilio/status/"
    )
    with pytest.raises(WebhookRejected) as caught:
        twilio_status_parse(request=internal)
    assert caught.value.status_code == 403
    unsigned = RequestFactory().post("/webhooks/twilio/status/", data=params)
    with pytest.raises(WebhookRejected) as missing:
        twilio_status_parse(request=unsigned)
    assert missing.value.status_code == 401
    forged = _twilio_request("/webhooks/twilio/status/", params)
    forged.META["HTTP_X_TWILIO_SIGNATURE"] = RequestValidator("other").compute_signature(
        PUBLIC + "/webhooks/twilio/status/", params
    )
    with pytest.raises(WebhookRejected, match="does not verify"):
        twilio_status_parse(request=forged)


@pytest.mark.usefixtures("twilio_settings")
def test_a_replayed_or_malformed_status_callback_is_refused() -> None:
    params = _status("delivered")
    twilio_status_parse(request=_twilio_request("/webhooks/twilio/status/", params))
    with pytest.raises(WebhookRejected, match="replay"):
        twilio_status_parse(request=_twilio_request("/webhooks/twilio/status/", params))
    no_sid = {"AccountSid": SID, "MessageStatus": "sent", "Nonce": uuid.uuid4().hex}
    with pytest.raises(WebhookRejected, match="MessageSid") as caught:
        twilio_status_parse(request=_twilio_request("/webhooks/twilio/status/", no_sid))
    assert caught.value.status_code == 400
    other_account = _status("sent", AccountSid="AC" + "9" * 32)
    with pytest.raises(WebhookRejected, match="another Twilio account"):
        twilio_status_parse(request=_twilio_request("/webhooks/twilio/status/", other_account))


@pytest.mark.usefixtures("twilio_settings")
@pytest.mark.parametrize(
    ("body", "opt_out_type", "action", "keyword"),
    [
        ("STOP", "", OptAction.OPT_OUT, "STOP"),
        (" Stop! ", "", OptAction.OPT_OUT, "STOP"),
        ("revoke", "", OptAction.OPT_OUT, "REVOKE"),
        ("OptOut", "", OptAction.OPT_OUT, "OPTOUT"),
        ("info", "", OptAction.HELP, "INFO"),
        ("Unsubscribe.", "", OptAction.OPT_OUT, "UNSUBSCRIBE"),
        ("quit", "", OptAction.OPT_OUT, "QUIT"),
        ("StopAll", "", OptAction.OPT_OUT, "STOPALL"),
        ("cancel", "", OptAction.OPT_OUT, "CANCEL"),
        ("end", "", OptAction.OPT_OUT, "END"),
        ("start", "", OptAction.OPT_IN, "START"),
        ("YES", "", OptAction.OPT_IN, "YES"),
        ("unstop", "", OptAction.OPT_IN, "UNSTOP"),
        ("help", "", OptAction.HELP, "HELP"),
        ("arrêt", "STOP", OptAction.OPT_OUT, "STOP"),  # Advanced Opt-Out's own keyword
        ("go on", "START", OptAction.OPT_IN, "START"),
    ],
)
def test_inbound_keywords_become_consent_events(
    body: str, opt_out_type: str, action: OptAction, keyword: str
) -> None:
    params = {
        "AccountSid": SID,
        "From": "+14155550100",
        "Body": body,
        "MessageSid": "SM" + uuid.uuid4().hex,
    }
    if opt_out_type:
        params["OptOutType"] = opt_out_type
    event = twilio_inbound_parse(request=_twilio_request("/webhooks/twilio/inbound/", params))
    assert event is not None
    assert (event.phone, event.action, event.keyword) == ("+14155550100", action, keyword)


@pytest.mark.usefixtures("twilio_settings")
def test_an_ordinary_reply_is_not_a_consent_event() -> None:
    params = {
        "AccountSid": SID,
        "From": "+14155550100",
        "Body": "Stopping by later!",
        "MessageSid": "SM" + uuid.uuid4().hex,
    }
    request = _twilio_request("/webhooks/twilio/inbound/", params)
    assert twilio_inbound_parse(request=request) is None


def test_the_twilio_fake_signs_callbacks_the_parser_accepts(
    twilio_fake: TwilioFake, sink: SinkFake
) -> None:
    path = "/webhooks/twilio/inbound/"
    with override_settings(
        DELIVERY_PUBLIC_BASE_URL=sink.url,
        TWILIO_AUTH_TOKEN=twilio_fake.auth_token,
        TWILIO_ACCOUNT_SID=twilio_fake.account_sid,
    ):
        assert twilio_fake.inbound_post(sink.url + path, sender="+14155550100", body="STOP").ok
        [received] = sink.received
        request = RequestFactory().post(
            path,
            data=received.body,
            content_type="application/x-www-form-urlencoded",
            HTTP_X_TWILIO_SIGNATURE=received.headers["X-Twilio-Signature"],
        )
        event = twilio_inbound_parse(request=request)
    assert event is not None and event.action == OptAction.OPT_OUT


def test_the_sendgrid_fake_posts_signed_events_the_parser_accepts(sink: SinkFake) -> None:
    with SendGridFake(api_key="k", events_url=f"{sink.url}/webhooks/sendgrid/tracking/") as fake:
        ids = _send_two(fake)
        eventually(lambda: len(fake.event_posts) == 2, timeout=60)
    assert fake.event_posts == [204, 204]
    anymail = {"SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": fake.verification_key}
    parsed = []
    with override_settings(ANYMAIL=anymail):
        for received in sink.received:
            request = _sendgrid_request(received.body, received.headers)
            parsed += sendgrid_events_parse(request=request)
    assert sorted((e.status, e.message_id) for e in parsed) == sorted(
        [("queued", i) for i in ids] + [("delivered", i) for i in ids]
    )
