"""Inputs Schemathesis found answering 5xx (#14), each now a 4xx in the API's error shape."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.test.utils import override_settings

from contacts.models import Contact, Segment
from continuity.models import Role
from tests.contacts.factories import make_contact
from tests.workspaces import bearer, make_api_key, make_member, workspace_for_tests

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> Client:
    """An owner's key in the tests' workspace. Exceptions are answered as the server would
    (500), not raised into the test, so a regression shows as the status it would be."""
    workspace = workspace_for_tests()
    user = make_member(workspace=workspace, role=Role.OWNER)
    client = Client(raise_request_exception=False)
    client.defaults.update(bearer(make_api_key(user=user, workspace=workspace)))
    return client


def _refused(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "detail"}
    return body


@pytest.mark.parametrize(
    "when", ["2024-02-30T00:00:00Z", "2023-13-01T00:00:00", "2024-02-29T24:00:00"]
)
def test_an_impossible_updated_since_is_a_400_naming_the_parameter(api: Client, when: str) -> None:
    body = _refused(api.get("/api/v1/contacts/", {"updated_since": when}))
    assert "updated_since" in body["detail"]


def test_an_unknown_purpose_is_a_400_even_without_a_consent_filter(api: Client) -> None:
    body = _refused(api.get("/api/v1/contacts/", {"purpose": "spam"}))
    assert "purpose" in body["detail"]


def test_a_segment_count_refuses_an_unknown_purpose_or_channel(api: Client) -> None:
    segment = Segment.objects.create(workspace=workspace_for_tests(), name="all")
    url = f"/api/v1/segments/{segment.pk}/count/"
    assert "purpose" in _refused(api.get(url, {"purpose": "spam"}))["detail"]
    assert "channel" in _refused(api.get(url, {"channel": "pigeon"}))["detail"]
    assert api.get(url, {"channel": "email"}).json()["count"] == 0


@pytest.mark.parametrize("method", ["patch", "put"])
@pytest.mark.parametrize("body", ["[1, 2]", '"Ada"', "42", "null"])
def test_a_contact_body_that_is_not_an_object_is_a_400(api: Client, method: str, body: str) -> None:
    contact = make_contact(first_name="Ada")
    response = getattr(api, method)(
        f"/api/v1/contacts/{contact.pk}/", body, content_type="application/json"
    )
    assert _refused(response)["error"] == "invalid_contact"
    contact.refresh_from_db()
    assert contact.first_name == "Ada"


def test_bulk_rows_that_are_not_objects_are_reported_and_the_good_rows_written(api: Client) -> None:
    response = api.post(
        "/api/v1/contacts/bulk/",
        {"contacts": [[None, None], {"email": "good@example.com"}, "bad@example.com", 7]},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert [(r["row"], r["status"]) for r in body["results"]] == [
        (1, "error"),
        (2, "created"),
        (3, "error"),
        (4, "error"),
    ]
    assert body["summary"]["created"] == 1 and body["summary"]["errors"] == 3
    assert list(Contact.objects.values_list("email", flat=True)) == ["good@example.com"]


def test_a_segment_from_a_form_with_null_tags_is_not_a_500(api: Client) -> None:
    # A form cannot send null: "null" is the text of a tag name, stored as such.
    response = api.post("/api/v1/segments/", {"name": "form", "tags_any": "null"})
    assert response.status_code == 201, response.content
    assert Segment.objects.get().tags_any == ["null"]


@pytest.mark.parametrize("value", ["²", "١٢"])
def test_a_reroute_filter_that_is_not_ascii_digits_is_a_400(api: Client, value: str) -> None:
    body = _refused(api.get("/api/v1/reroutes/", {"window": value}))
    assert "window" in body["detail"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"first_name": "a\\u0000b"}',
        b'{"attributes": {"\\u0000": 1}}',
        b'{"first_name": "\\ud800"}',
        b'{"attributes": {"n": 1e400}}',
        b'{"attributes": ' + b"[" * 100 + b"]" * 100 + b"}",
    ],
)
def test_a_json_body_postgresql_could_not_store_is_a_400(api: Client, body: bytes) -> None:
    contact = make_contact(first_name="Ada")
    response = api.patch(f"/api/v1/contacts/{contact.pk}/", body, content_type="application/json")
    assert _refused(response)["error"] == "parse_error"
    contact.refresh_from_db()
    assert contact.first_name == "Ada" and contact.attributes == {}


def test_a_form_field_holding_nul_is_a_400(api: Client) -> None:
    response = api.post("/api/v1/segments/", {"name": "a\x00b"})
    assert _refused(response)["error"] == "parse_error"
    assert not Segment.objects.exists()


def test_attributes_sent_as_json_text_holding_an_escaped_nul_are_a_400_not_a_500(
    api: Client,
) -> None:
    contact = make_contact()
    form = encode_multipart(BOUNDARY, {"attributes": '{"\\u0000": 1}'})
    response = api.patch(f"/api/v1/contacts/{contact.pk}/", form, content_type=MULTIPART_CONTENT)
    assert "attributes" in _refused(response)["detail"]


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=5)
def test_too_many_form_fields_is_a_400_in_the_error_shape_not_an_html_page(api: Client) -> None:
    response = api.post("/api/v1/segments/", {f"f{n}": "x" for n in range(10)})
    assert _refused(response)["error"] == "malformed_request"


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_a_json_body_over_the_size_limit_is_a_413(api: Client) -> None:
    response = api.post("/api/v1/segments/", {"name": "x" * 2000}, content_type="application/json")
    assert _refused(response, status=413)["error"] == "body_too_large"


@pytest.mark.parametrize("path", ["/api/v1/contacts/null,null/", "/api/v1/nowhere/"])
def test_a_path_under_the_api_that_names_no_route_is_a_json_404(api: Client, path: str) -> None:
    assert _refused(api.get(path), status=404)["error"] == "not_found"
    # Pages outside the API keep Django's own 404 page.
    page = api.get(path.replace("/api/v1/", "/"))
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_a_query_parameter_holding_nul_is_a_400_once_the_key_is_checked(api: Client) -> None:
    assert _refused(api.get("/api/v1/contacts/?tag=a%00b"))["error"] == "parse_error"
    # Without a key the answer stays 401: the check runs after authentication.
    assert Client().get("/api/v1/contacts/?tag=a%00b").status_code == 401
