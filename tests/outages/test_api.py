"""/api/v1/outages/: list, declare, resolve, with token auth and the one error shape."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from outages.windows import outage_declare

pytestmark = pytest.mark.django_db


def api(*perms: str) -> APIClient:
    user = User.objects.create_user(f"u{len(perms)}{User.objects.count()}", password="pw")
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_without_a_token_the_api_answers_401_in_the_error_shape() -> None:
    response = APIClient().get("/api/v1/outages/")
    assert response.status_code == 401
    assert set(response.json()) == {"error", "detail"}


def test_declare_list_and_resolve() -> None:
    client = api("add_outagewindow", "change_outagewindow")
    created = client.post(
        "/api/v1/outages/", {"network": "facebook", "reason": "down"}, format="json"
    )
    assert created.status_code == 201, created.json()
    body: dict[str, Any] = created.json()
    assert (body["network"], body["state"], body["campaigns_touched"]) == ("facebook", "open", 0)
    listed = client.get("/api/v1/outages/?state=open").json()
    assert [w["id"] for w in listed] == [body["id"]]
    resolved = client.post(
        f"/api/v1/outages/{body['id']}/resolve/", {"reason": "back"}, format="json"
    )
    assert resolved.status_code == 200
    assert resolved.json()["state"] == "resolved"
    again = client.post(f"/api/v1/outages/{body['id']}/resolve/", {"reason": "x"}, format="json")
    assert again.status_code == 409
    assert again.json()["error"] == "window_not_open"


def test_an_unknown_network_is_a_400_naming_it() -> None:
    client = api("add_outagewindow")
    response = client.post("/api/v1/outages/", {"network": "myspace", "reason": "r"}, format="json")
    assert response.status_code == 400
    assert "myspace" in str(response.json()["detail"])


def test_declaring_needs_the_permission() -> None:
    response = api().post("/api/v1/outages/", {"network": "x", "reason": "r"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"


def test_a_missing_outage_is_404_and_a_bad_state_filter_400() -> None:
    client = api("change_outagewindow")
    assert client.get("/api/v1/outages/999999/").status_code == 404
    assert (
        client.post("/api/v1/outages/999999/resolve/", {"reason": "r"}, format="json").status_code
        == 404
    )
    assert client.get("/api/v1/outages/?state=maybe").status_code == 400


def test_detail_shows_one_window() -> None:
    window = outage_declare(network="tiktok", reason="down", actor="ops")
    response = api().get(f"/api/v1/outages/{window.pk}/")
    assert response.json()["network_display"] == "TikTok"
