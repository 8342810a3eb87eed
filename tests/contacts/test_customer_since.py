"""customer_since (the customer relationship a soft opt-in rests on) can be set where contacts
are written: the import command, the admin import, the API's create, bulk upsert and PATCH. A
value that is no date, or a date still to come, is the row's error, never a 5xx."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from contacts.models import Contact
from contacts.privacy import contact_erase
from continuity.models import Role
from tests.contacts.factories import import_file, last_import_report, make_contact
from tests.workspaces import bearer, make_api_key, make_member, workspace_for_tests

pytestmark = pytest.mark.django_db

TOMORROW_EVERYWHERE = (timezone.now() + timedelta(days=2)).date().isoformat()


def _import(path: Path) -> list[dict[str, str]]:
    import_file(path, "--single-process")
    return last_import_report()


def test_the_import_command_sets_it_and_refuses_bad_or_future_dates_by_row(
    tmp_path: Path,
) -> None:
    make_contact(email="kept@example.com", customer_since=date(2020, 1, 2))
    path = tmp_path / "buyers.csv"
    path.write_text(
        "email,customer_since\n"
        "ann@example.com,2025-03-01\n"
        "bob@example.com,01/03/2025\n"
        "cy@example.com,2025-02-30\n"
        f"di@example.com,{TOMORROW_EVERYWHERE}\n"
        "kept@example.com,\n"
        "eve@example.com,\n"
    )

    errors = _import(path)

    assert [(e["row"], e["field"], e["email"]) for e in errors] == [
        ("3", "customer_since", "bob@example.com"),
        ("4", "customer_since", "cy@example.com"),
        ("5", "customer_since", "di@example.com"),
    ]
    assert "'01/03/2025' is not a date (YYYY-MM-DD)" in errors[0]["message"]
    assert "in the future" in errors[2]["message"]
    since = dict(Contact.objects.values_list("email", "customer_since"))
    assert since == {
        "ann@example.com": date(2025, 3, 1),
        "kept@example.com": date(2020, 1, 2),  # a blank cell in a file changes nothing
        "eve@example.com": None,
    }


def test_an_import_updates_an_existing_contacts_relationship(tmp_path: Path) -> None:
    contact = make_contact(email="ann@example.com")
    path = tmp_path / "update.csv"
    path.write_text("email,customer_since\nann@example.com,2019-07-14\n")
    assert _import(path) == []
    contact.refresh_from_db()
    assert contact.customer_since == date(2019, 7, 14)


def test_the_admin_import_sets_it_and_previews_a_bad_date_as_the_rows_error(
    admin_client: Client,
) -> None:
    upload = io.BytesIO(
        b"email,customer_since\nann@example.com,2024-05-06\nbob@example.com,yesterday\n"
    )
    upload.name = "shop.csv"
    preview = admin_client.post(
        "/admin/contacts/contact/import/",
        {"resource": "0", "format": "0", "import_file": upload},
    )
    assert preview.status_code == 200
    html = preview.content.decode()
    assert "is not a date (YYYY-MM-DD)" in html
    fields = dict(
        re.findall(
            r'name="(import_file_name|original_file_name|format|resource)"[^>]*value="([^"]*)"',
            html,
        )
    )
    done = admin_client.post("/admin/contacts/contact/process_import/", fields)
    assert done.status_code == 302, done.content[:2000]
    assert dict(Contact.objects.values_list("email", "customer_since")) == {
        "ann@example.com": date(2024, 5, 6)
    }


def test_the_admin_export_writes_it_as_an_iso_date(admin_client: Client) -> None:
    make_contact(email="exp@example.com", customer_since=date(2023, 9, 8))
    response = admin_client.post(
        "/admin/contacts/contact/export/",
        {
            "format": "0",
            "resource": "0",
            **{f"contactresource_{f}": "on" for f in ("email", "customer_since")},
        },
    )
    assert response.status_code == 200
    assert "exp@example.com,2023-09-08" in response.getvalue().decode()


# --- the API ------------------------------------------------------------------------------------


@pytest.fixture
def api(client: Client) -> Client:
    workspace = workspace_for_tests()
    user = make_member(workspace=workspace, role=Role.OWNER, username="integrator")
    client.defaults.update(bearer(make_api_key(user=user, workspace=workspace)))
    return client


def test_the_api_creates_sets_and_clears_it(api: Client) -> None:
    created = api.post(
        "/api/v1/contacts/",
        {"email": "ann@example.com", "customer_since": "2025-03-01"},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["customer_since"] == "2025-03-01"
    url = f"/api/v1/contacts/{created.json()['id']}/"

    changed = api.patch(url, {"customer_since": "2021-12-31"}, content_type="application/json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["customer_since"] == "2021-12-31"

    untouched = api.patch(url, {"first_name": "Ann"}, content_type="application/json")
    assert untouched.json()["customer_since"] == "2021-12-31"

    cleared = api.patch(url, {"customer_since": None}, content_type="application/json")
    assert cleared.status_code == 200
    assert cleared.json()["customer_since"] is None
    assert Contact.objects.get(email="ann@example.com").customer_since is None


HOSTILE: list[Any] = [
    "2025-02-30",
    "01/03/2025",
    "tomorrow",
    "2025-03-01' OR '1'='1",
    "2025-03-01\u0000",
    "9" * 10_000,
    "99999-01-01",
    "-2025-01-01",
    20250301,
    1.5,
    True,
    ["2025-03-01"],
    {"date": "2025-03-01"},
    TOMORROW_EVERYWHERE,
    "9999-12-31",
]


@pytest.mark.parametrize("value", HOSTILE, ids=[repr(v)[:30] for v in HOSTILE])
def test_a_hostile_value_is_a_400_naming_the_field_and_changes_nothing(
    api: Client, value: Any
) -> None:
    contact = make_contact(email="ann@example.com", customer_since=date(2020, 1, 1))
    response = api.patch(
        f"/api/v1/contacts/{contact.pk}/",
        {"customer_since": value},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert "customer_since" in response.json()["detail"]
    contact.refresh_from_db()
    assert contact.customer_since == date(2020, 1, 1)

    created = api.post(
        "/api/v1/contacts/",
        {"email": "new@example.com", "customer_since": value},
        content_type="application/json",
    )
    assert created.status_code == 400, created.content
    assert not Contact.objects.filter(email="new@example.com").exists()


def test_the_bulk_upsert_reports_a_bad_date_on_its_row_and_writes_the_others(api: Client) -> None:
    response = api.post(
        "/api/v1/contacts/bulk/",
        {
            "contacts": [
                {"email": "ann@example.com", "customer_since": "2024-01-31"},
                {"email": "bob@example.com", "customer_since": TOMORROW_EVERYWHERE},
            ]
        },
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "error"]
    assert results[1]["errors"][0]["field"] == "customer_since"
    assert dict(Contact.objects.values_list("email", "customer_since")) == {
        "ann@example.com": date(2024, 1, 31)
    }


def test_today_is_accepted_even_where_the_day_has_just_begun(api: Client) -> None:
    contact = make_contact(email="ann@example.com")
    today_east = (timezone.now() + timedelta(hours=14)).date().isoformat()
    response = api.patch(
        f"/api/v1/contacts/{contact.pk}/",
        {"customer_since": today_east},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content


def test_the_schema_documents_it_as_a_writable_date(api: Client) -> None:
    schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    inputs = [
        body["properties"]["customer_since"]
        for name, body in schema["components"]["schemas"].items()
        if name.startswith("ContactIn") and "customer_since" in body.get("properties", {})
    ]
    assert inputs, "ContactIn does not document customer_since"
    assert inputs[0]["format"] == "date"
    assert inputs[0].get("nullable") is True


def test_erasure_clears_it() -> None:
    contact = make_contact(email="ann@example.com", customer_since=date(2020, 1, 1))
    contact_erase(contact=contact)
    contact.refresh_from_db()
    assert contact.customer_since is None


def test_a_soft_opt_in_grant_cannot_claim_a_customer_relationship_that_starts_later(
    api: Client,
) -> None:
    contact = make_contact(email="ann@example.com")
    response = api.post(
        f"/api/v1/contacts/{contact.pk}/consent/",
        {
            "channel": "email",
            "action": "grant",
            "source": "api",
            "lawful_basis": "legitimate_interest",
            "customer_since": TOMORROW_EVERYWHERE,
        },
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert "customer_since" in response.json()["detail"]
    contact.refresh_from_db()
    assert contact.customer_since is None
    assert not contact.consents.exists()
