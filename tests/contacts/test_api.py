from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.test.utils import override_settings

from contacts.models import Consent, ConsentEvent, Contact, Segment
from contacts.upsert import contacts_upsert_rows
from continuity.models import Role
from tests.contacts.factories import granted_contact, make_contact
from tests.workspaces import bearer, make_api_key, make_member, workspace_for_tests

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client: Client) -> Client:
    """An owner's key in the tests' workspace: every contacts right."""
    workspace = workspace_for_tests()
    user = make_member(workspace=workspace, role=Role.OWNER, username="integrator")
    client.defaults.update(bearer(make_api_key(user=user, workspace=workspace)))
    return client


def test_the_api_needs_a_token(client: Client) -> None:
    response = client.get("/api/v1/contacts/")
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_list_filters_by_tag_consent_and_updated_since_with_a_cursor(api: Client) -> None:
    contacts_upsert_rows(
        workspace=workspace_for_tests(),
        raws=[{"email": f"t{i}@example.com", "tags": ["vip"] if i % 2 else []} for i in range(5)],
        blank_means_unchanged=False,
    )
    granted = granted_contact(email="granted@example.com")
    page = api.get("/api/v1/contacts/", {"tag": "vip", "page_size": "1"})
    body = page.json()
    assert len(body["results"]) == 1 and body["next"]
    second = api.get(body["next"]).json()
    assert {r["email"] for r in body["results"] + second["results"]} == {
        "t1@example.com",
        "t3@example.com",
    }
    consented = api.get("/api/v1/contacts/", {"consent_email": "granted"}).json()["results"]
    assert [r["id"] for r in consented] == [granted.pk]
    since = api.get("/api/v1/contacts/", {"updated_since": "2999-01-01T00:00:00Z"})
    assert since.json()["results"] == []
    bad = api.get("/api/v1/contacts/", {"updated_since": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_contact"


def test_create_then_patch_a_contact(api: Client) -> None:
    created = api.post(
        "/api/v1/contacts/",
        {"email": "Api@Example.com", "phone": "+447911123456", "timezone": "Europe/London"},
        content_type="application/json",
    )
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert created.json()["email"] == "api@example.com"
    patched = api.patch(
        f"/api/v1/contacts/{pk}/",
        {"first_name": "Ada", "tags": ["beta"]},
        content_type="application/json",
    )
    assert patched.status_code == 200
    assert patched.json()["first_name"] == "Ada" and patched.json()["tags"] == ["beta"]
    bad = api.patch(
        f"/api/v1/contacts/{pk}/", {"timezone": "Nowhere/City"}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert bad.json() == {
        "error": "invalid_contact",
        "detail": {
            "timezone": "unknown timezone 'Nowhere/City': use an IANA name such as Europe/Paris"
        },
    }


def test_bulk_upsert_reports_each_row(api: Client) -> None:
    rows = [{"email": "a@example.com"}, {"email": "broken"}, {"email": "b@example.com"}]
    response = api.post(
        "/api/v1/contacts/bulk/", {"contacts": rows}, content_type="application/json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["summary"]["created"] == 2 and body["summary"]["errors"] == 1
    assert body["results"][1]["errors"][0]["field"] == "email"
    assert Contact.objects.count() == 2


@override_settings(CONTACTS_BULK_UPSERT_MAX=3)
def test_bulk_upsert_refuses_more_rows_than_the_limit(api: Client) -> None:
    rows = [{"email": f"r{i}@example.com"} for i in range(4)]
    response = api.post(
        "/api/v1/contacts/bulk/", {"contacts": rows}, content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json()["error"] == "too_many_rows"
    assert not Contact.objects.exists()


def test_consent_grant_needs_an_evidence_source_and_history_shows_the_evidence(
    api: Client,
) -> None:
    contact = make_contact()
    url = f"/api/v1/contacts/{contact.pk}/consent/"
    refused = api.post(url, {"channel": "sms", "action": "grant"}, content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["error"] == "consent_evidence_missing"
    assert not Consent.objects.exists()
    granted = api.post(
        url,
        {
            "channel": "sms",
            "action": "grant",
            "source": "form",
            "ip": "192.0.2.10",
            "consent_text_version": "2026-11",
        },
        content_type="application/json",
    )
    assert granted.status_code == 200 and granted.json()["state"] == "granted"
    history = api.get(f"/api/v1/contacts/{contact.pk}/consent/history/").json()
    event = history["results"][0] if isinstance(history, dict) else history[0]
    assert (event["source"], event["ip"], event["recorded_by"]) == (
        "form",
        "192.0.2.10",
        "integrator",
    )


def test_export_then_erase_then_reimport_does_not_resurrect_consent(api: Client) -> None:
    contact = granted_contact(email="gdpr@example.com", attributes={"city": "Lyon"})
    export = api.get(f"/api/v1/contacts/{contact.pk}/export/")
    assert export.status_code == 200
    doc = export.json()
    assert doc["contact"]["email"] == "gdpr@example.com"
    assert doc["consents"][0]["state"] == "granted"
    assert doc["consent_events"][0]["source"] == "form"

    assert api.delete(f"/api/v1/contacts/{contact.pk}/").status_code == 204
    erased = api.get(f"/api/v1/contacts/{contact.pk}/export/").json()
    assert erased["contact"]["email"] is None and erased["contact"]["attributes"] == {}
    assert erased["consents"] == []
    assert all(e["ip"] is None for e in erased["consent_events"])
    assert ConsentEvent.objects.filter(contact=contact).exclude(subject_hash="").count() == 2

    # An erased person is not re-added without new consent (tests/delivery/test_erasure.py).
    again = api.post(
        "/api/v1/contacts/bulk/",
        {"contacts": [{"email": "gdpr@example.com"}]},
        content_type="application/json",
    ).json()
    assert again["results"][0]["status"] == "error"
    assert "asked to be erased" in again["results"][0]["errors"][0]["message"]
    allowed = api.get("/api/v1/contacts/", {"consent_email": "allowed"}).json()["results"]
    assert allowed == []
    assert api.delete(f"/api/v1/contacts/{contact.pk}/").status_code == 409


def test_segment_count_with_and_without_a_consent_filter(api: Client) -> None:
    contacts_upsert_rows(
        workspace=workspace_for_tests(),
        raws=[
            {"email": "s1@example.com", "tags": ["fr", "vip"], "attributes": {"plan": "gold"}},
            {"email": "s2@example.com", "tags": ["fr"], "attributes": {"plan": "free"}},
            {"email": "s3@example.com", "tags": ["de", "vip"], "attributes": {"plan": "gold"}},
        ],
        blank_means_unchanged=False,
    )
    granted_contact(email="s4@example.com")
    created = api.post(
        "/api/v1/segments/",
        {
            "name": "vip gold",
            "tags_any": ["vip"],
            "attribute_filters": [{"key": "plan", "op": "eq", "value": "gold"}],
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert api.get(f"/api/v1/segments/{pk}/count/").json()["count"] == 2
    assert api.get(f"/api/v1/segments/{pk}/count/", {"channel": "email"}).json()["count"] == 0
    everyone = Segment.objects.create(workspace=workspace_for_tests(), name="all")
    assert (
        api.get(f"/api/v1/segments/{everyone.pk}/count/", {"channel": "email"}).json()["count"] == 1
    )
    bad = api.post(
        "/api/v1/segments/",
        {"name": "bad", "attribute_filters": [{"key": "x;drop", "op": "eq", "value": 1}]},
        content_type="application/json",
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_segment"


def test_the_openapi_schema_lists_the_contacts_endpoints(api: Client) -> None:
    schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert b"/api/v1/contacts/bulk/" in schema.content


def test_double_opt_in_through_the_api_mails_a_link_and_stays_pending(
    api: Client, django_capture_on_commit_callbacks: Any
) -> None:
    from django.core import mail

    contact = make_contact(email="doi-api@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/v1/contacts/{contact.pk}/consent/",
            {"channel": "email", "action": "double_opt_in", "source": "form"},
            content_type="application/json",
        )
    assert response.status_code == 200 and response.json()["state"] == "pending"
    assert mail.outbox[0].to == ["doi-api@example.com"]
    sms = api.post(
        f"/api/v1/contacts/{contact.pk}/consent/",
        {"channel": "sms", "action": "double_opt_in", "source": "form"},
        content_type="application/json",
    )
    assert sms.status_code == 400


@pytest.mark.parametrize("key", ["city__regex", "city__isnull", "_x", "a-b"])
def test_a_segment_key_that_is_not_a_plain_name_is_a_400_naming_it(api: Client, key: str) -> None:
    for body in (
        {"name": "bad", "attribute_filters": [{"key": key, "op": "eq", "value": "("}]},
        {"name": "bad", "attribute_filters": [{"key": key, "op": "exists"}]},
    ):
        refused = api.post("/api/v1/segments/", body, content_type="application/json")
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_segment" and key in refused.json()["detail"]
    assert not Segment.objects.filter(name="bad").exists()


def test_a_segment_saved_with_an_invalid_key_lists_counts_zero_and_says_why(api: Client) -> None:
    contacts_upsert_rows(
        workspace=workspace_for_tests(),
        raws=[{"email": "lyon@example.com", "attributes": {"city": "Lyon"}}],
        blank_means_unchanged=False,
    )
    # Written as rows from before the rule were: no validation on the way in.
    old = Segment.objects.create(
        workspace=workspace_for_tests(),
        name="old",
        attribute_filters=[{"key": "city__regex", "op": "eq", "value": "("}],
    )
    good = Segment.objects.create(workspace=workspace_for_tests(), name="everyone")
    listed = api.get("/api/v1/segments/")
    assert listed.status_code == 200
    problems = {s["name"]: s["problem"] for s in listed.json()}
    assert problems["everyone"] is None
    assert "This rule is invalid" in problems["old"] and "city__regex" in problems["old"]
    shown = api.get(f"/api/v1/segments/{old.pk}/")
    assert shown.status_code == 200 and "city__regex" in shown.json()["problem"]
    for params in ({}, {"channel": "email"}):
        counted = api.get(f"/api/v1/segments/{old.pk}/count/", params)
        assert counted.status_code == 200
        assert counted.json()["count"] == 0 and "city__regex" in counted.json()["problem"]
    assert api.get(f"/api/v1/segments/{good.pk}/count/").json() == {
        "count": 1,
        "channel": None,
        "purpose": None,
        "problem": None,
    }
    fixed = api.patch(
        f"/api/v1/segments/{old.pk}/",
        {"attribute_filters": [{"key": "city", "op": "eq", "value": "Lyon"}]},
        content_type="application/json",
    )
    assert fixed.status_code == 200 and fixed.json()["problem"] is None
    assert api.get(f"/api/v1/segments/{old.pk}/count/").json()["count"] == 1


def test_a_segment_definition_under_an_unknown_name_is_refused_not_saved_as_everyone(
    api: Client,
) -> None:
    refused = api.post(
        "/api/v1/segments/",
        {"name": "regex", "definition": {"attributes": {"city__regex": {"eq": "("}}}},
        content_type="application/json",
    )
    assert refused.status_code == 400
    assert "definition" in refused.json()["detail"]
    assert "attribute_filters" in str(refused.json()["detail"]["definition"])
    assert not Segment.objects.exists()
    # What a GET returns can be sent back as it is: read-only fields are known, not refused.
    created = api.post("/api/v1/segments/", {"name": "vip"}, content_type="application/json")
    body = created.json()
    again = api.put(f"/api/v1/segments/{body['id']}/", body, content_type="application/json")
    assert again.status_code == 200, again.json()
