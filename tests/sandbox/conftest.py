"""The fakes on free loopback ports, fresh for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.sendgrid import SendGridFake
from sandbox.twilio import TwilioFake


@pytest.fixture
def sendgrid_fake() -> Iterator[SendGridFake]:
    with SendGridFake(api_key="test-sendgrid-key") as fake:
        yield fake


@pytest.fixture
def twilio_fake() -> Iterator[TwilioFake]:
    with TwilioFake(account_sid="AC" + "1" * 32, auth_token="test-twilio-token") as fake:
        yield fake
