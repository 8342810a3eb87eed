"""Sandbox Graph and X fakes on loopback, reached through the real publishers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.test import Client

from sandbox.graph import GraphFake
from sandbox.x import XFake

# The key settings_test configures (worker processes load the same settings), else a fresh one.
_configured = [key for key in getattr(django_settings, "SOCIAL_TOKEN_KEYS", []) if key]
TOKEN_KEY = _configured[0] if _configured else Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def campaigns_settings(settings: Any) -> None:
    settings.SOCIAL_TOKEN_KEYS = [TOKEN_KEY]
    settings.SOCIAL_IG_CONTAINER_POLL_INTERVAL_S = 0.0
    settings.CAMPAIGNS_UNKNOWN_CHECK_DELAY_S = 0.0
    settings.CAMPAIGNS_PUBLISH_RETRY_BASE_S = 0.0


@pytest.fixture
def graph(settings: Any) -> Iterator[GraphFake]:
    with GraphFake() as fake:
        settings.SOCIAL_GRAPH_BASE_URL = fake.url
        yield fake


@pytest.fixture
def x(settings: Any) -> Iterator[XFake]:
    with XFake() as fake:
        settings.SOCIAL_X_BASE_URL = fake.url
        yield fake


@pytest.fixture
def admin_client(owner_client: Client) -> Client:
    """This app's admin tests act as the workspace's owner, not as a superuser."""
    return owner_client
