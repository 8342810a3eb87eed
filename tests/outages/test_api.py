"""/api/v1/outages/: install-wide, for operators: list, declare, resolve, each audited."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

from continuity.models import AuditEvent, AuditOutcome, Role
from outages.models import OutageWindow
from outages.windows import outage_declare
from tests.workspaces import bearer, make_api_key, make_member, make_workspace

pytestmark = pytest.mark.django_db


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(**bearer(key))
    return client


def operator(*, workspace_key: bool = False) -> APIClient:
    """An operator's client: an install-wide key, or a key of a workspace they are a member of."""
    workspace = make_workspace() if workspace_key else None
    if workspace is not None:
        user = make_member(workspace=workspace, role=Role.VIEWER)
        call_command("operator_add", user.username, stdout=io.StringIO())
    else:
        call_command("operator_add", "oscar", stdout=io.StringIO())
        user = get_user_model().objects.get(username="oscar")
    return _client(make_api_key(user=user, workspace=workspace))


def member(role: str = Role.OWNER) -> APIClient:
    workspace = make_workspace()
    return _client(
        make_api_key(user=make_member(workspace=workspace, role=role), workspace=workspace)
    )


def test_without_a_key_the_api_answers_401_in_the_error_shape() -> None:
    response = APIClient().get("/api/v1/outages/")
    assert response.status_code == 401
    assert set(response.json()) == {"error", "detail"}


def test_an_operator_declares_lists_and_resolves_and_each_manual_action_is_audited() -> None:
    client = operator()
    created = client.post(
        "/api/v1/outages/", {"network": "facebook", "reason": "down"}, format="json"
    )
    assert created.status_code == 201, created.json()
    body: dict[str, Any] = created.json()
    assert (body["network"], body["state"], body["campaigns_touched"]) == ("facebook", "open", 0)
    assert body["opened_by_ref"] == "manual:oscar"
    listed = client.get("/api/v1/outages/?state=open").json()
    assert [w["id"] for w in listed] == [body["id"]]
    resolved = client.post(
        f"/api/v1/outages/{body['id']}/resolve/", {"reason": "back"}, format="json"
    )
    assert resolved.status_code == 200
    assert resolved.json()["state"] == "resolved"

    events = list(AuditEvent.objects.order_by("id").filter(action__startswith="outage."))
    assert [(e.action, e.workspace_id, e.actor_label) for e in events] == [
        ("outage.declare", None, "oscar"),
        ("outage.resolve", None, "oscar"),
    ]
    assert events[0].target_type == "outages.outagewindow"
    assert events[0].target_id == str(body["id"])
    assert events[0].detail == {"network": "facebook", "reason": "down"}

    again = client.post(f"/api/v1/outages/{body['id']}/resolve/", {"reason": "x"}, format="json")
    assert again.status_code == 409
    assert again.json()["error"] == "window_not_open"
    # The refused resolve wrote nothing.
    assert AuditEvent.objects.filter(action="outage.resolve").count() == 1


def test_an_operator_acting_with_a_workspace_key_still_reaches_the_install_wide_outages() -> None:
    client = operator(workspace_key=True)
    created = client.post("/api/v1/outages/", {"network": "x", "reason": "down"}, format="json")
    assert created.status_code == 201
    # The audit row is install-level, not the key's workspace's.
    assert AuditEvent.objects.get(action="outage.declare").workspace_id is None


@pytest.mark.parametrize("role", [Role.OWNER, Role.MARKETER, Role.PRIVACY, Role.VIEWER])
def test_a_workspace_member_who_is_not_an_operator_gets_403_naming_the_permission(
    role: str,
) -> None:
    window = outage_declare(network="tiktok", reason="down", actor="ops")
    client = member(role)
    calls = [
        (client.get("/api/v1/outages/"), "outages.view_outagewindow"),
        (client.get(f"/api/v1/outages/{window.pk}/"), "outages.view_outagewindow"),
        (
            client.post("/api/v1/outages/", {"network": "x", "reason": "r"}, format="json"),
            "outages.add_outagewindow",
        ),
        (
            client.post(f"/api/v1/outages/{window.pk}/resolve/", {"reason": "r"}, format="json"),
            "outages.change_outagewindow",
        ),
    ]
    for response, perm in calls:
        assert response.status_code == 403
        assert response.json()["error"] == "permission_denied"
        assert perm in response.json()["detail"]
    assert OutageWindow.objects.get().state == "open"
    assert OutageWindow.objects.count() == 1
    assert not AuditEvent.objects.filter(outcome=AuditOutcome.DONE).exists()


def test_an_unknown_network_is_a_400_naming_it() -> None:
    response = operator().post(
        "/api/v1/outages/", {"network": "myspace", "reason": "r"}, format="json"
    )
    assert response.status_code == 400
    assert "myspace" in str(response.json()["detail"])
    assert not AuditEvent.objects.filter(action__startswith="outage.").exists()


def test_a_missing_outage_is_404_and_a_bad_state_filter_400() -> None:
    client = operator()
    assert client.get("/api/v1/outages/999999/").status_code == 404
    assert (
        client.post("/api/v1/outages/999999/resolve/", {"reason": "r"}, format="json").status_code
        == 404
    )
    assert client.get("/api/v1/outages/?state=maybe").status_code == 400


def test_an_undeclared_method_is_405() -> None:
    assert operator().delete("/api/v1/outages/").status_code == 405


def test_detail_shows_one_window() -> None:
    window = outage_declare(network="tiktok", reason="down", actor="ops")
    response = operator().get(f"/api/v1/outages/{window.pk}/")
    assert response.json()["network_display"] == "TikTok"


def test_an_operators_workspace_key_dies_with_their_membership() -> None:
    from continuity.models import Membership

    client = operator(workspace_key=True)
    assert client.get("/api/v1/outages/").status_code == 200
    Membership.objects.all().delete()
    response = client.get("/api/v1/outages/")
    assert response.status_code == 401
    assert "Not a member" in response.json()["detail"]
