"""The sandbox fakes on free loopback ports, fresh for each test, used through real clients."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import Client

from delivery.ratelimit import RedisTokenBucket
from sandbox.base import FakeResponse, FakeServer
from sandbox.push import PushServiceFake
from sandbox.sendgrid import SendGridFake
from sandbox.twilio import TwilioFake


@pytest.fixture
def sendgrid_fake() -> Iterator[SendGridFake]:
    with SendGridFake(api_key="test-sendgrid-key") as fake:
        yield fake


@pytest.fixture
def failover_fake() -> Iterator[SendGridFake]:
    with SendGridFake(api_key="test-failover-key") as fake:
        yield fake


@pytest.fixture
def blackhole_url() -> Iterator[str]:
    """A loopback address whose accept queue is full: connecting times out, nothing is sent."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    held = []
    for _ in range(4):
        client = socket.socket()
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect(("127.0.0.1", port))
        held.append(client)
    yield f"http://127.0.0.1:{port}"
    for sock in [*held, server]:
        sock.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # anymail warns on every SendGrid backend it builds; delivery/apps.py ignores it in the app,
    # but pytest resets warning filters per test.
    for item in items:
        if "tests/delivery" in str(item.fspath):
            item.add_marker(
                pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")
            )


class SinkFake(FakeServer):
    """Stands in for our own webhook endpoints: records every POST and answers 204."""

    name = "sink"

    def setup(self) -> None:
        self.route("POST", r"/.*", lambda request, match: FakeResponse(204))


@pytest.fixture
def sink() -> Iterator[SinkFake]:
    with SinkFake() as server:
        yield server


@pytest.fixture
def twilio_fake(sink: SinkFake) -> Iterator[TwilioFake]:
    with TwilioFake(account_sid="AC" + "1" * 32, auth_token="test-twilio-token") as fake:
        yield fake


@pytest.fixture
def fast_limiter(request: pytest.FixtureRequest) -> RedisTokenBucket:
    """A shared-pace bucket fast enough not to slow tests, on a key of its own."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"{settings.REDIS_KEY_PREFIX}test:{request.node.name}"
    bucket = RedisTokenBucket(client=client, key=key, rate_per_s=1000)
    bucket.reset()
    return bucket


@pytest.fixture
def push_fake(settings: Any) -> Iterator[PushServiceFake]:
    """The sandbox push service; its loopback origin is the one the outbound guard lets through."""
    with PushServiceFake() as fake:
        settings.SANDBOX_PUSH_BASE_URL = fake.url
        yield fake


@pytest.fixture
def admin_client(owner_client: Client) -> Client:
    """This app's admin tests act as the workspace's owner, not as a superuser."""
    return owner_client
