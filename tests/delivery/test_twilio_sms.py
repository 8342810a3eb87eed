from __future__ import annotations

from collections.abc import Callable

import pytest
from twilio.request_validator import RequestValidator

from delivery.providers.base import (
    Deferred,
    Failed,
    OutboundMessage,
    Sent,
    SmsContent,
    Suppressed,
    SuppressReason,
    Unknown,
)
from delivery.providers.twilio_sms import TwilioSmsSender, twilio_client
from delivery.ratelimit import RedisTokenBucket
from sandbox.twilio import TwilioFake
from tests.delivery.conftest import SinkFake
from tests.harness import eventually

CONTENT = SmsContent(text="Hi {{ first_name }}: FB is down, we're here & on SMS.")


def _sender(
    fake: TwilioFake,
    limiter: RedisTokenBucket,
    *,
    callback: str = "",
    timeout_s: float = 2.0,
    sleeps: list[float] | None = None,
    **kwargs: object,
) -> TwilioSmsSender:
    recorded = sleeps if sleeps is not None else []
    sleep: Callable[[float], None] = recorded.append
    return TwilioSmsSender(
        client=twilio_client(
            account_sid=fake.account_sid,
            auth_token=fake.auth_token,
            base_url=fake.url,
            timeout_s=timeout_s,
        ),
        limiter=limiter,
        status_callback_url=callback,
        sleep=sleep,
        **kwargs,  # type: ignore[arg-type]
    )


def _to(*numbers: str) -> list[OutboundMessage]:
    return [
        OutboundMessage(delivery_id=i, to=n, merge_fields={"first_name": "Zoë"})
        for i, n in enumerate(numbers, start=1)
    ]


def test_a_message_is_created_with_the_service_sid_and_a_signed_status_callback(
    twilio_fake: TwilioFake, sink: SinkFake, fast_limiter: RedisTokenBucket
) -> None:
    callback = f"{sink.url}/webhooks/twilio/status/"
    sender = _sender(
        twilio_fake, fast_limiter, callback=callback, messaging_service_sid="MG" + "2" * 32
    )
    outcomes = sender.send_batch(content=CONTENT, messages=_to("+14155550100"))
    assert isinstance(outcomes[0], Sent)
    assert outcomes[0].provider_message_id.startswith("SM")
    # "ë" is not GSM-7, so the 50-character text is one UCS-2 segment.
    assert outcomes[0].cost_units == 1
    [sms] = twilio_fake.messages
    assert sms.body == "Hi Zoë: FB is down, we're here & on SMS."
    assert sms.params["MessagingServiceSid"] == "MG" + "2" * 32
    assert "From" not in sms.params
    eventually(lambda: len(sink.received) == 2, timeout=60)
    validator = RequestValidator(twilio_fake.auth_token)
    statuses = []
    for request in sink.received:
        params = dict(item.split("=", 1) for item in request.body.decode().split("&"))
        from urllib.parse import unquote_plus

        params = {k: unquote_plus(v) for k, v in params.items()}
        assert validator.validate(callback, params, request.headers["X-Twilio-Signature"])
        assert params["MessageSid"] == outcomes[0].provider_message_id
        statuses.append(params["MessageStatus"])
    assert statuses == ["sent", "delivered"]


def test_a_from_number_is_used_when_there_is_no_service(
    twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket
) -> None:
    sender = _sender(
        twilio_fake, fast_limiter, messaging_service_sid="", from_number="+15005550006"
    )
    assert isinstance(sender.send_batch(content=CONTENT, messages=_to("+14155550100"))[0], Sent)
    assert twilio_fake.messages[0].params["From"] == "+15005550006"


def test_error_codes_become_suppressions_or_failures(
    twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket
) -> None:
    twilio_fake.number_errors["+14155550199"] = 21606
    outcomes = _sender(twilio_fake, fast_limiter).send_batch(
        content=CONTENT,
        messages=_to("+15005550004", "+15005550001", "+15005550009", "+14155550199", "+1415"),
    )
    assert [(type(o), getattr(o, "reason", None), o.code) for o in outcomes] == [  # type: ignore[union-attr]
        (Suppressed, SuppressReason.OPTED_OUT, "21610"),
        (Suppressed, SuppressReason.INVALID_ADDRESS, "21211"),
        (Suppressed, SuppressReason.INVALID_ADDRESS, "21614"),
        (Failed, None, "21606"),
        (Suppressed, SuppressReason.INVALID_ADDRESS, "21211"),
    ]
    assert twilio_fake.messages == []


def test_throttling_is_retried_with_back_off_then_sent(
    twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket
) -> None:
    twilio_fake.set_fault(mode="rate_limit", remaining=2)
    sleeps: list[float] = []
    outcomes = _sender(twilio_fake, fast_limiter, sleeps=sleeps, max_attempts=3).send_batch(
        content=CONTENT, messages=_to("+14155550100")
    )
    assert isinstance(outcomes[0], Sent)
    assert len(sleeps) == 2 and all(s >= 1.0 for s in sleeps)  # Retry-After of 1 s respected
    assert len(twilio_fake.messages) == 1


def test_persistent_20429_defers_after_the_last_attempt(
    twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket
) -> None:
    outcomes = _sender(twilio_fake, fast_limiter, max_attempts=2).send_batch(
        content=CONTENT, messages=_to("+15005550429")
    )
    assert isinstance(outcomes[0], Deferred)
    assert outcomes[0].code == "20429"
    assert outcomes[0].retry_after_s >= 1.0


def test_a_503_is_retried_but_a_500_is_unknown_because_create_is_not_idempotent(
    twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket
) -> None:
    twilio_fake.set_fault(mode="error", status=503, remaining=1)
    sleeps: list[float] = []
    sender = _sender(twilio_fake, fast_limiter, sleeps=sleeps)
    assert isinstance(sender.send_batch(content=CONTENT, messages=_to("+14155550100"))[0], Sent)
    assert len(sleeps) == 1
    twilio_fake.set_fault(mode="error", status=500)
    [outcome] = sender.send_batch(content=CONTENT, messages=_to("+14155550101"))
    assert isinstance(outcome, Unknown) and outcome.code == "20500"
    # No back-off sleep: the 500 was not retried.
    assert len(sleeps) == 1


def test_connection_refused_is_retried_then_deferred(
    twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket
) -> None:
    twilio_fake.set_fault(mode="refuse")
    sleeps: list[float] = []
    [outcome] = _sender(twilio_fake, fast_limiter, sleeps=sleeps, max_attempts=3).send_batch(
        content=CONTENT, messages=_to("+14155550100")
    )
    assert isinstance(outcome, Deferred) and outcome.code == "twilio_unreachable"
    assert len(sleeps) == 2


def test_a_timeout_before_the_request_left_is_retried(
    blackhole_url: str, fast_limiter: RedisTokenBucket
) -> None:
    sender = TwilioSmsSender(
        client=twilio_client(base_url=blackhole_url, timeout_s=0.2),
        limiter=fast_limiter,
        status_callback_url="",
        max_attempts=2,
        sleep=lambda s: None,
    )
    [outcome] = sender.send_batch(content=CONTENT, messages=_to("+14155550100"))
    assert isinstance(outcome, Deferred) and "ConnectTimeout" in outcome.text


def test_a_timeout_after_the_request_left_is_unknown_and_never_retried(
    twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket
) -> None:
    twilio_fake.set_fault(mode="timeout", after_accept=True, delay_s=1.0)
    sleeps: list[float] = []
    [outcome] = _sender(twilio_fake, fast_limiter, timeout_s=0.3, sleeps=sleeps).send_batch(
        content=CONTENT, messages=_to("+14155550100")
    )
    assert isinstance(outcome, Unknown) and outcome.code == "twilio_no_answer"
    assert sleeps == []
    assert len(twilio_fake.requests_to("Messages.json")) == 1


def test_invalid_credentials_fail(twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket) -> None:
    sender = TwilioSmsSender(
        client=twilio_client(
            account_sid=twilio_fake.account_sid, auth_token="wrong", base_url=twilio_fake.url
        ),
        limiter=fast_limiter,
        status_callback_url="",
    )
    [outcome] = sender.send_batch(content=CONTENT, messages=_to("+14155550100"))
    assert isinstance(outcome, Failed) and outcome.code == "20003"


def test_when_the_pace_is_booked_too_far_ahead_the_rest_of_the_batch_is_deferred(
    twilio_fake: TwilioFake, fast_limiter: RedisTokenBucket
) -> None:
    slow = RedisTokenBucket(
        client=fast_limiter.client, key=fast_limiter.key + ":slow", rate_per_s=1
    )
    slow.reset()
    sender = _sender(twilio_fake, slow, max_wait_s=0.5)
    outcomes = sender.send_batch(
        content=CONTENT, messages=_to("+14155550100", "+14155550101", "+14155550102")
    )
    assert [type(o) for o in outcomes] == [Sent, Deferred, Deferred]
    assert {o.code for o in outcomes[1:]} == {"rate_limited"}  # type: ignore[union-attr]


@pytest.mark.parametrize(("code", "expected"), [(30003, "undelivered")])
def test_the_fake_reports_later_delivery_failures_in_the_callback(
    twilio_fake: TwilioFake,
    sink: SinkFake,
    fast_limiter: RedisTokenBucket,
    code: int,
    expected: str,
) -> None:
    callback = f"{sink.url}/status"
    _sender(twilio_fake, fast_limiter, callback=callback).send_batch(
        content=CONTENT, messages=_to("+15005550030")
    )
    eventually(lambda: len(twilio_fake.callbacks) == 2, timeout=60)
    last = twilio_fake.callbacks[-1]
    assert last.params["MessageStatus"] == expected
    assert last.params["ErrorCode"] == str(code)
    assert last.status_code == 204
