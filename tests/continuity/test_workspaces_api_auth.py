"""API keys at the door: 401 for every key that is no good, and /api/v1/me/ says who and where."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from continuity.models import ApiKey, Membership, Role
from continuity.roles import ROLE_PERMISSIONS
from tests.workspaces import bearer, make_api_key, make_member, make_workspace

pytestmark = pytest.mark.django_db

ME = "/api/v1/me/"


def _unauthorised(client: Client, **headers: Any) -> dict[str, str]:
    response = client.get(ME, **headers)
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == "Bearer"
    body: dict[str, str] = response.json()
    assert set(body) == {"error", "detail"}
    return body


def test_no_key_is_401(client: Client) -> None:
    assert _unauthorised(client)["error"] == "not_authenticated"


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Bearer no-dot-here", "Bearer " + "a." * 150, "bearer x.y.z"],
)
def test_a_malformed_or_unknown_key_is_401(client: Client, header: str) -> None:
    assert _unauthorised(client, HTTP_AUTHORIZATION=header)["error"] == "authentication_failed"


def test_a_key_with_a_known_prefix_but_the_wrong_secret_is_401(client: Client) -> None:
    workspace = make_workspace()
    key = make_api_key(user=make_member(workspace=workspace), workspace=workspace)
    prefix = key.partition(".")[0]
    body = _unauthorised(client, **bearer(f"{prefix}.{'x' * 32}"))
    assert "Unknown" in body["detail"]


def test_an_expired_key_is_401(client: Client) -> None:
    workspace = make_workspace()
    key = make_api_key(
        user=make_member(workspace=workspace),
        workspace=workspace,
        expiry_date=timezone.now() - timedelta(seconds=1),
    )
    assert "expired" in _unauthorised(client, **bearer(key))["detail"]


def test_a_revoked_key_is_401(client: Client) -> None:
    workspace = make_workspace()
    key = make_api_key(user=make_member(workspace=workspace), workspace=workspace)
    ApiKey.objects.update(revoked=True)
    assert "revoked" in _unauthorised(client, **bearer(key))["detail"]


def test_the_key_of_a_user_who_left_the_workspace_is_401(client: Client) -> None:
    workspace = make_workspace()
    user = make_member(workspace=workspace, role=Role.MARKETER)
    key = make_api_key(user=user, workspace=workspace)
    assert client.get(ME, **bearer(key)).status_code == 200
    Membership.objects.filter(user=user).delete()
    assert "Not a member" in _unauthorised(client, **bearer(key))["detail"]
    # On a workspace endpoint too, not only on /me/.
    response = client.get("/api/v1/contacts/", **bearer(key))
    assert response.status_code == 401


def test_the_key_of_an_inactive_user_is_401(client: Client) -> None:
    workspace = make_workspace()
    user = make_member(workspace=workspace)
    key = make_api_key(user=user, workspace=workspace)
    user.is_active = False
    user.save()
    assert "inactive" in _unauthorised(client, **bearer(key))["detail"]


def test_me_shows_the_workspace_the_role_and_its_permissions(client: Client) -> None:
    workspace = make_workspace(slug="trattoria", name="Trattoria Roma")
    user = make_member(workspace=workspace, role=Role.PRIVACY, username="paola")
    key = make_api_key(user=user, workspace=workspace)

    body = client.get(ME, **bearer(key)).json()

    assert body["username"] == "paola"
    assert (body["workspace"], body["workspace_name"], body["role"]) == (
        "trattoria",
        "Trattoria Roma",
        "privacy",
    )
    assert set(body["permissions"]) == set(ROLE_PERMISSIONS[Role.PRIVACY])
    assert "contacts.export_contact" in body["permissions"]
    assert "campaigns.add_campaign" not in body["permissions"]
    assert body["operator"] is False and body["install_permissions"] == []


def test_me_with_an_operators_install_wide_key_names_no_workspace(client: Client) -> None:
    call_command("operator_add", "oscar", stdout=io.StringIO())
    oscar = get_user_model().objects.get(username="oscar")
    body = client.get(ME, **bearer(make_api_key(user=oscar, workspace=None))).json()
    assert body["workspace"] is None and body["role"] is None and body["permissions"] == []
    assert body["operator"] is True
    assert "outages.add_outagewindow" in body["install_permissions"]


def test_a_key_acts_in_its_own_workspace_only(client: Client) -> None:
    """The same user in two workspaces: each key answers for its own."""
    first, second = make_workspace(), make_workspace()
    user = make_member(workspace=first, role=Role.OWNER)
    Membership.objects.create(user=user, workspace=second, role=Role.VIEWER)
    first_key = make_api_key(user=user, workspace=first)
    second_key = make_api_key(user=user, workspace=second)
    assert client.get(ME, **bearer(first_key)).json()["role"] == "owner"
    assert client.get(ME, **bearer(second_key)).json()["role"] == "viewer"


def test_using_a_key_notes_when_it_was_last_used_without_writing_on_every_call(
    client: Client,
) -> None:
    workspace = make_workspace()
    key = make_api_key(user=make_member(workspace=workspace), workspace=workspace)
    client.get(ME, **bearer(key))
    first = ApiKey.objects.get().last_used_at
    assert first is not None
    client.get(ME, **bearer(key))
    assert ApiKey.objects.get().last_used_at == first


def test_the_openapi_schema_describes_the_bearer_api_key(client: Client) -> None:
    schema = client.get("/api/v1/schema/", {"format": "json"}).json()
    scheme = schema["components"]["securitySchemes"]["apiKeyAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert {"apiKeyAuth": []} in schema["paths"]["/api/v1/me/"]["get"]["security"]
