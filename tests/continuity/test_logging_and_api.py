from __future__ import annotations

import logging

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client

from continuity.logging import ContextFilter, RequestIdMiddleware, current_context_id
from tests.workspaces import bearer, make_api_key, make_member, workspace_for_tests

pytestmark = pytest.mark.django_db


def _capture_middleware(header: str | None) -> tuple[HttpResponse, str]:
    seen: dict[str, str] = {}

    def view(request: HttpRequest) -> HttpResponse:
        seen["id"] = current_context_id()
        return HttpResponse("ok")

    request = HttpRequest()
    if header is not None:
        request.META["HTTP_X_REQUEST_ID"] = header
    response = RequestIdMiddleware(view)(request)
    return response, seen["id"]


def test_a_plain_incoming_request_id_is_kept_in_logs_and_echoed() -> None:
    response, context_id = _capture_middleware("abc-123")
    assert response["X-Request-ID"] == "abc-123"
    assert context_id == "req:abc-123"
    assert current_context_id() == "-"


def test_a_hostile_request_id_is_replaced_not_logged() -> None:
    response, context_id = _capture_middleware("evil\nINFO forged line")
    assert "\n" not in response["X-Request-ID"]
    assert len(response["X-Request-ID"]) == 32
    assert "evil" not in context_id


def test_every_log_record_carries_the_context_id() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    assert ContextFilter().filter(record) is True
    assert getattr(record, "context_id", None) == "-"


def test_api_errors_use_the_one_error_shape(client: Client) -> None:
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    body = response.json()
    assert body == {"error": "not_authenticated", "detail": body["detail"]}
    assert "credentials" in body["detail"]
    bad_key = client.get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer nope.nope")
    assert bad_key.status_code == 401
    assert bad_key.json()["error"] == "authentication_failed"


def test_a_valid_api_key_is_accepted(client: Client) -> None:
    workspace = workspace_for_tests()
    user = make_member(workspace=workspace, role="viewer", username="integrator")
    key = make_api_key(user=user, workspace=workspace)
    response = client.get("/api/v1/me/", **bearer(key))
    assert response.status_code == 200
    assert response.json()["username"] == "integrator"


def test_swagger_ui_is_served(admin_client: Client) -> None:
    response = admin_client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_production_logs_are_one_json_object_per_line_with_the_context_id() -> None:
    import json
    import subprocess
    import sys

    from tests.harness import ROOT, child_env

    code = (
        "import logging; from continuity.logging import bind_context_id;"
        "bind_context_id('task:abc'); logging.getLogger('probe').warning('hello %s', 'world')"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=child_env({"LOG_FORMAT": "json"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello world"
    assert line["level"] == "WARNING"
    assert line["logger"] == "probe"
    assert line["context_id"] == "task:abc"
