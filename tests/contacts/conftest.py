from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from continuity.models import Role
from tests.workspaces import make_member, workspace_for_tests


@pytest.fixture
def admin_client(client: Client, db: Any) -> Client:
    """The contacts admin as the tests' workspace's owner (named "admin"), who has every
    contacts right there; a superuser would act in whichever workspace sorts first."""
    client.force_login(
        make_member(workspace=workspace_for_tests(), role=Role.OWNER, username="admin")
    )
    return client
