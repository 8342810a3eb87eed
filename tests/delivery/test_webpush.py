from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from py_vapid import Vapid02

from delivery.providers import webpush
from delivery.providers.base import (
    Deferred,
    Failed,
    OutboundMessage,
    PushContent,
    PushKeys,
    Sent,
    Suppressed,
    SuppressReason,
    Unknown,
)
from delivery.providers.webpush import (
    MAX_PLAINTEXT_BYTES,
    WebPushSender,
    push_host_backoff_clear,
    push_topic_default,
    vapid_key_load,
    vapid_public_key,
)
from sandbox.push import PushServiceFake, sandbox_push_subscriptions_create

CONTENT = PushContent(
    title="{{ shop }} is here",
    body="Facebook is down; reach us here, {{ first_name }}.",
    url="https://shop.example/c/1",
    icon="https://shop.example/icon.png",
    topic="campaign-1",
    ttl_s=3600,
    urgency="high",
)


@pytest.fixture(autouse=True)
def _fresh_backoff() -> Iterator[None]:
    push_host_backoff_clear()
    webpush._vapid_cache.clear()
    yield
    push_host_backoff_clear()


@pytest.fixture
def vapid() -> Vapid02:
    key = Vapid02()
    key.generate_keys()
    return key


def _messages(fake: PushServiceFake, n: int) -> list[OutboundMessage]:
    out = []
    for i in range(1, n + 1):
        sub = fake.subscription_create()
        out.append(
            OutboundMessage(
                delivery_id=i,
                to=sub["endpoint"],
                merge_fields={"first_name": f"Ann {i}", "shop": "Shop & Co"},
                push_keys=PushKeys(**sub["keys"]),
            )
        )
    return out


def _sender(vapid: Vapid02, **kwargs: Any) -> WebPushSender:
    return WebPushSender(vapid=vapid, subject="mailto:ops@example.com", **kwargs)


def test_each_push_is_encrypted_for_its_subscription_with_ttl_urgency_and_topic(
    push_fake: PushServiceFake, vapid: Vapid02
) -> None:
    outcomes = _sender(vapid).send_batch(content=CONTENT, messages=_messages(push_fake, 3))
    assert [type(o) for o in outcomes] == [Sent, Sent, Sent]
    assert all(o.provider_message_id.startswith(push_fake.url) for o in outcomes)  # type: ignore[union-attr]
    by_sub = {p.subscription_id: p for p in push_fake.pushes}
    assert len(by_sub) == 3
    first = json.loads(push_fake.pushes[0].payload)
    assert first["title"] == "Shop & Co is here"
    assert first["body"].startswith("Facebook is down; reach us here, Ann ")
    assert first["url"] == "https://shop.example/c/1"
    assert {(p.ttl, p.urgency, p.topic) for p in push_fake.pushes} == {(3600, "high", "campaign-1")}


def test_the_vapid_header_is_signed_once_per_origin_and_reused(
    push_fake: PushServiceFake, vapid: Vapid02, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed: list[dict[str, Any]] = []
    original = vapid.sign

    def counting_sign(claims: dict[str, Any], crypto_key: str | None = None) -> Any:
        signed.append(claims)
        return original(claims, crypto_key)

    monkeypatch.setattr(vapid, "sign", counting_sign)
    sender = _sender(vapid)
    sender.send_batch(content=CONTENT, messages=_messages(push_fake, 5))
    sender.send_batch(content=CONTENT, messages=_messages(push_fake, 2))
    assert len(signed) == 1
    assert signed[0]["aud"] == push_fake.url
    assert signed[0]["exp"] > time.time() + 3600
    assert push_fake.accepted == 7


def test_a_gone_or_unknown_subscription_is_suppressed(
    push_fake: PushServiceFake, vapid: Vapid02
) -> None:
    messages = _messages(push_fake, 2)
    push_fake.subscription_expire(messages[0].to)
    unknown = OutboundMessage(
        delivery_id=3, to=f"{push_fake.url}/push/nope", push_keys=messages[1].push_keys
    )
    outcomes = _sender(vapid).send_batch(content=CONTENT, messages=[*messages, unknown])
    assert isinstance(outcomes[0], Suppressed) and outcomes[0].code == "push_410"
    assert outcomes[0].reason == SuppressReason.SUBSCRIPTION_GONE
    assert isinstance(outcomes[1], Sent)
    assert isinstance(outcomes[2], Suppressed) and outcomes[2].code == "push_404"


def test_a_payload_over_4kb_is_refused_before_sending(
    push_fake: PushServiceFake, vapid: Vapid02
) -> None:
    big = PushContent(title="t", body="x" * MAX_PLAINTEXT_BYTES)
    [outcome] = _sender(vapid).send_batch(content=big, messages=_messages(push_fake, 1))
    assert isinstance(outcome, Failed) and outcome.code == "payload_too_large"
    assert push_fake.accepted == 0 and push_fake.rejected == {}


def test_the_largest_payload_that_fits_is_accepted(
    push_fake: PushServiceFake, vapid: Vapid02
) -> None:
    overhead = len(b'{"title":"t","body":"","url":"","icon":""}')
    fits = PushContent(title="t", body="x" * (MAX_PLAINTEXT_BYTES - overhead))
    [outcome] = _sender(vapid).send_batch(content=fits, messages=_messages(push_fake, 1))
    assert isinstance(outcome, Sent)


def test_a_413_from_the_push_service_is_permanent(
    push_fake: PushServiceFake, vapid: Vapid02
) -> None:
    push_fake.set_fault(mode="error", status=413)
    [outcome] = _sender(vapid).send_batch(content=CONTENT, messages=_messages(push_fake, 1))
    assert isinstance(outcome, Failed) and outcome.code == "push_413"


def test_a_429_backs_off_that_push_host_for_the_rest_of_the_batch(
    push_fake: PushServiceFake, vapid: Vapid02
) -> None:
    push_fake.set_fault(mode="rate_limit", retry_after_s=30, remaining=1)
    outcomes = _sender(vapid, concurrency=1).send_batch(
        content=CONTENT, messages=_messages(push_fake, 3)
    )
    assert [type(o) for o in outcomes] == [Deferred, Deferred, Deferred]
    assert outcomes[0].code == "push_429"  # type: ignore[union-attr]
    assert {o.code for o in outcomes[1:]} == {"host_backoff"}  # type: ignore[union-attr]
    assert all(25 < o.retry_after_s <= 30 for o in outcomes)  # type: ignore[union-attr]
    # Only the first request reached the push service.
    assert push_fake.accepted == 0


def test_a_5xx_defers(push_fake: PushServiceFake, vapid: Vapid02) -> None:
    push_fake.set_fault(mode="error", status=503)
    [outcome] = _sender(vapid).send_batch(content=CONTENT, messages=_messages(push_fake, 1))
    assert isinstance(outcome, Deferred) and outcome.code == "push_503"


def test_connection_refused_and_connect_timeout_defer(
    push_fake: PushServiceFake, vapid: Vapid02, blackhole_url: str, settings: Any
) -> None:
    messages = _messages(push_fake, 1)
    push_fake.set_fault(mode="refuse")
    [refused] = _sender(vapid).send_batch(content=CONTENT, messages=messages)
    assert isinstance(refused, Deferred) and refused.code == "push_unreachable"
    holed = [
        OutboundMessage(
            delivery_id=1, to=f"{blackhole_url}/push/x", push_keys=messages[0].push_keys
        )
    ]
    settings.SANDBOX_PUSH_BASE_URL = blackhole_url
    [timed_out] = _sender(vapid, timeout_s=0.3).send_batch(content=CONTENT, messages=holed)
    assert isinstance(timed_out, Deferred) and timed_out.code == "push_unreachable"


def test_a_timeout_after_the_request_left_is_unknown(
    push_fake: PushServiceFake, vapid: Vapid02
) -> None:
    push_fake.set_fault(mode="timeout", after_accept=True, delay_s=1.0)
    [outcome] = _sender(vapid, timeout_s=0.3).send_batch(
        content=CONTENT, messages=_messages(push_fake, 1)
    )
    assert isinstance(outcome, Unknown) and outcome.code == "push_no_answer"
    assert push_fake.accepted == 1


def test_the_fake_refuses_a_bad_vapid_signature_and_a_wrong_audience(
    push_fake: PushServiceFake, vapid: Vapid02
) -> None:
    sub = push_fake.subscription_create()
    other = Vapid02()
    other.generate_keys()
    good = vapid.sign({"aud": push_fake.url, "sub": "mailto:a@b.c", "exp": int(time.time()) + 60})
    forged = dict(good)
    forged["Authorization"] = good["Authorization"].replace(
        good["Authorization"].split("k=")[1], vapid_public_key(other)
    )
    wrong_aud = vapid.sign({"aud": "http://elsewhere:1", "sub": "mailto:a@b.c"})
    import requests

    for headers, reason in [
        ({}, "Authorization header missing"),
        (forged, "does not verify"),
        (wrong_aud, "aud"),
    ]:
        response = requests.post(
            sub["endpoint"], headers={**headers, "TTL": "60"}, data=b"", timeout=5
        )
        assert response.status_code == 401
        assert reason in response.json()["error"]
    no_ttl = requests.post(sub["endpoint"], headers=good, timeout=5)
    assert no_ttl.status_code == 400 and "TTL" in no_ttl.json()["error"]
    garbage = requests.post(
        sub["endpoint"],
        headers={**good, "TTL": "60", "Content-Encoding": "aes128gcm"},
        data=b"\x00" * 100,
        timeout=5,
    )
    assert garbage.status_code == 400 and "decrypt" in garbage.json()["error"]


def test_vapid_keys_prints_a_pair_the_sender_can_load() -> None:
    out = io.StringIO()
    call_command("vapid_keys", stdout=out)
    lines = dict(
        line.split("=", 1) for line in out.getvalue().splitlines() if not line.startswith("#")
    )
    loaded = vapid_key_load(private_key=lines["VAPID_PRIVATE_KEY"])
    assert vapid_public_key(loaded) == lines["VAPID_PUBLIC_KEY"]


def test_sandbox_subscriptions_can_be_made_over_http(push_fake: PushServiceFake) -> None:
    made = sandbox_push_subscriptions_create(count=2, base_url=push_fake.url)
    assert len(made) == 2 and all(s["endpoint"].startswith(push_fake.url) for s in made)
    assert set(made[0]["keys"]) == {"p256dh", "auth"}


def test_the_push_inbox_lists_decrypted_payloads(
    push_fake: PushServiceFake, vapid: Vapid02
) -> None:
    import requests

    _sender(vapid).send_batch(content=CONTENT, messages=_messages(push_fake, 1))
    inbox = requests.get(f"{push_fake.url}/__sandbox__/received", timeout=5).json()
    assert inbox["count"] == 1
    assert json.loads(inbox["items"][0]["body"])["title"] == "Shop & Co is here"
    assert inbox["items"][0]["topic"] == "campaign-1"


def test_a_vapid_key_other_than_the_subscriptions_fails_as_bad_credentials(
    push_fake: PushServiceFake, vapid: Vapid02
) -> None:
    other = Vapid02()
    other.generate_keys()
    sub = push_fake.subscription_create(application_server_key=vapid_public_key(other))
    message = OutboundMessage(delivery_id=1, to=sub["endpoint"], push_keys=PushKeys(**sub["keys"]))
    [outcome] = _sender(vapid).send_batch(content=CONTENT, messages=[message])
    assert isinstance(outcome, Failed) and outcome.code == "push_403"
    [ok] = _sender(other).send_batch(content=CONTENT, messages=[message])
    assert isinstance(ok, Sent)


def test_without_a_topic_each_push_gets_one_derived_from_the_content(
    push_fake: PushServiceFake, vapid: Vapid02
) -> None:
    plain = PushContent(title="Hi {{ first_name }}", body="We are here.")
    _sender(vapid).send_batch(content=plain, messages=_messages(push_fake, 2))
    _sender(vapid).send_batch(
        content=PushContent(title="Other", body="x"), messages=_messages(push_fake, 1)
    )
    topics = [p.topic for p in push_fake.pushes]
    assert topics[0] == topics[1] == push_topic_default(content=plain)
    assert topics[2] != topics[0]
    assert all(0 < len(t) <= 32 for t in topics)
