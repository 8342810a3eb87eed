"""The push sender goes through the outbound guard: refused endpoints fail without a request
leaving, names are vetted at connect time, and a redirect is a failure, never a send."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from py_vapid import Vapid02

from contacts.models import Channel, PushSubscription
from continuity import outbound
from delivery.dispatch import deliveries_send_chunk
from delivery.models import Delivery
from delivery.providers.base import Deferred, Failed, OutboundMessage, PushContent, PushKeys, Sent
from delivery.providers.webpush import WebPushSender
from delivery.states import DeliveryStatus as S
from sandbox.base import FakeRequest, FakeResponse, FakeServer
from sandbox.push import PushServiceFake
from tests.contacts.factories import granted_contact
from tests.delivery.test_dispatch import enqueue_now, make_message, plan

CONTENT = PushContent(title="Hi", body="Facebook is down", ttl_s=60)


@pytest.fixture
def vapid() -> Vapid02:
    key = Vapid02()
    key.generate_keys()
    return key


def _sender(vapid: Vapid02) -> WebPushSender:
    return WebPushSender(vapid=vapid, subject="mailto:ops@example.com", timeout_s=2.0)


def _message(to: str, keys: dict[str, str] | None = None) -> OutboundMessage:
    keys = keys or PushServiceFake().subscription_create()["keys"]
    return OutboundMessage(delivery_id=1, to=to, push_keys=PushKeys(**keys))


class Listener:
    """A bare loopback TCP listener that counts connections: proof that nothing connected."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def _resolve_to(monkeypatch: pytest.MonkeyPatch, address: str) -> list[str]:
    """Stand in for DNS at the guard's single lookup; returns the names it was asked for."""
    asked: list[str] = []

    async def fake(host: str, port: int, family: int) -> list[tuple[int, str]]:
        asked.append(host)
        return [(socket.AF_INET6 if ":" in address else socket.AF_INET, address)]

    monkeypatch.setattr(outbound, "outbound_resolve", fake)
    return asked


@pytest.mark.parametrize(
    ("to", "reason"),
    [
        ("https://127.0.0.1:5432/x", "not an IP address"),
        ("https://169.254.169.254/latest/meta-data/", "not an IP address"),
        ("https://[::1]:8301/admin/", "not an IP address"),
        ("http://fcm.googleapis.com/fcm/send/x", "only https"),
        ("https://evil.example/push/x", "not an allowed host"),
    ],
)
def test_a_refused_endpoint_fails_before_anything_is_resolved_or_sent(
    monkeypatch: pytest.MonkeyPatch, vapid: Vapid02, to: str, reason: str
) -> None:
    asked = _resolve_to(monkeypatch, "142.250.74.10")
    [outcome] = _sender(vapid).send_batch(content=CONTENT, messages=[_message(to)])
    assert isinstance(outcome, Failed) and outcome.code == "endpoint_refused"
    assert reason in outcome.text
    assert asked == []


def test_the_sandbox_push_service_is_refused_once_the_sandbox_is_off(
    push_fake: PushServiceFake, vapid: Vapid02, settings: Any
) -> None:
    sub = push_fake.subscription_create()
    settings.SANDBOX_ENABLED = False
    [outcome] = _sender(vapid).send_batch(
        content=CONTENT, messages=[_message(sub["endpoint"], sub["keys"])]
    )
    assert isinstance(outcome, Failed) and outcome.code == "endpoint_refused"
    assert "only https" in outcome.text
    assert push_fake.accepted == 0 and push_fake.received == []


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1"])
def test_an_allowed_name_that_resolves_to_a_private_address_is_refused_at_connect_time(
    monkeypatch: pytest.MonkeyPatch, vapid: Vapid02, listener: Listener, address: str
) -> None:
    # The name passes the allow-list; only the address it resolves to (here: where a listener
    # waits, for loopback) gives it away.
    asked = _resolve_to(monkeypatch, address)
    to = f"https://fcm.googleapis.com:{listener.port}/fcm/send/abc"
    [outcome] = _sender(vapid).send_batch(content=CONTENT, messages=[_message(to)])
    assert isinstance(outcome, Failed) and outcome.code == "endpoint_refused", outcome
    assert f"fcm.googleapis.com resolves to a refused address: {address}" in outcome.text
    assert asked and listener.accepted == 0


def test_a_name_that_does_not_resolve_is_unreachable_not_refused(
    monkeypatch: pytest.MonkeyPatch, vapid: Vapid02
) -> None:
    async def no_such_name(host: str, port: int, family: int) -> list[tuple[int, str]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(outbound, "outbound_resolve", no_such_name)
    to = "https://fcm.googleapis.com/fcm/send/abc"
    [outcome] = _sender(vapid).send_batch(content=CONTENT, messages=[_message(to)])
    assert isinstance(outcome, Deferred) and outcome.code == "push_unreachable", outcome


class RedirectingPushService(FakeServer):
    """A push service that answers every push with a 307 to ``target``."""

    name = "redirecting-push"

    def __init__(self, *, target: str) -> None:
        self.target = target
        super().__init__()

    def setup(self) -> None:
        self.route("POST", r"/.*", self._redirect)

    def _redirect(self, request: FakeRequest, match: Any) -> FakeResponse:
        return FakeResponse(307, b"", {"Location": self.target})


class InternalService(FakeServer):
    """An internal plain-HTTP address that would accept anything posted to it."""

    name = "internal"

    def setup(self) -> None:
        self.route("POST", r"/.*", lambda request, match: FakeResponse(201))


def test_a_redirecting_push_service_fails_the_delivery_and_the_target_gets_nothing(
    vapid: Vapid02, settings: Any
) -> None:
    with (
        InternalService() as internal,
        RedirectingPushService(target=f"{internal.url}/admin/") as service,
    ):
        # The redirecting service is reachable only as the sandbox's own push base URL.
        settings.SANDBOX_PUSH_BASE_URL = service.url
        [outcome] = _sender(vapid).send_batch(
            content=CONTENT, messages=[_message(f"{service.url}/push/abc")]
        )
        assert isinstance(outcome, Failed) and outcome.code == "push_redirect", outcome
        assert "307" in outcome.text
        assert len(service.received) == 1
        assert internal.received == []


def test_the_sandbox_push_service_still_gets_its_pushes(
    push_fake: PushServiceFake, vapid: Vapid02
) -> None:
    sub = push_fake.subscription_create()
    [outcome] = _sender(vapid).send_batch(
        content=CONTENT, messages=[_message(sub["endpoint"], sub["keys"])]
    )
    assert isinstance(outcome, Sent), outcome
    assert push_fake.accepted == 1


@pytest.mark.django_db
def test_a_delivery_whose_endpoint_now_resolves_privately_is_failed_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, vapid: Vapid02, settings: Any, listener: Listener
) -> None:
    settings.VAPID_PRIVATE_KEY = vapid.private_pem().decode()
    from delivery.senders import channel_sender

    channel_sender.cache_clear()
    contact = granted_contact(channel=Channel.PUSH)
    keys = PushServiceFake().subscription_create()["keys"]
    subscription = PushSubscription.objects.create(
        workspace_id=contact.workspace_id,
        contact=contact,
        endpoint=f"https://fcm.googleapis.com:{listener.port}/fcm/send/abc",
        p256dh=keys["p256dh"],
        auth=keys["auth"],
    )
    _resolve_to(monkeypatch, "10.0.0.1")
    ids = plan(make_message(push_title="Hi", push_body="x"), [contact], channel=Channel.PUSH)
    enqueue_now(ids)
    try:
        report = deliveries_send_chunk(channel=Channel.PUSH, ids=ids)
    finally:
        channel_sender.cache_clear()

    assert report.failed == 1 and report.sent == 0
    delivery = Delivery.objects.get(pk=ids[0])
    assert delivery.status == S.FAILED and delivery.error_code == "endpoint_refused"
    assert "10.0.0.1 is not a public address" in delivery.error_text
    subscription.refresh_from_db()
    assert subscription.failure_count == 1
    assert listener.accepted == 0
