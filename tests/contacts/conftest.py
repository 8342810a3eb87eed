from __future__ import annotations

import pytest
from django.test import Client


@pytest.fixture
def admin_client(owner_client: Client) -> Client:
    """This app's admin tests act as the workspace's owner, not as a superuser."""
    return owner_client
