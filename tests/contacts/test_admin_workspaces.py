"""The contacts admin inside a workspace: its custom pages (export, import, segment counter) check
the member's role, see and write only the session's workspace, and imports and exports (refused
ones too) leave audit rows."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from contacts.models import ConsentEvent, Contact, Segment
from contacts.upsert import contacts_upsert_rows
from continuity.models import AuditEvent, AuditOutcome, Role, Workspace
from tests.contacts.factories import granted_contact, make_contact
from tests.workspaces import make_member, make_workspace

pytestmark = pytest.mark.django_db

EXPORT = "/admin/contacts/contact/export/"
IMPORT = "/admin/contacts/contact/import/"
PROCESS_IMPORT = "/admin/contacts/contact/process_import/"
COUNT = "/admin/contacts/segment/count/"


def _staff(workspace: Workspace, role: str) -> Client:
    client = Client()
    client.force_login(make_member(workspace=workspace, role=role))
    return client


def _export_form(*columns: str) -> dict[str, str]:
    return {
        "format": "0",
        "resource": "0",
        **{f"contactresource_{c}": "on" for c in columns},
    }


def _upload(content: bytes, name: str = "people.csv") -> io.BytesIO:
    upload = io.BytesIO(content)
    upload.name = name
    return upload


@pytest.fixture
def two_shops() -> tuple[Workspace, Workspace]:
    shop, bakery = make_workspace(), make_workspace()
    contacts_upsert_rows(
        workspace=shop,
        raws=[
            {"email": "shop-vip@example.com", "tags": ["vip"]},
            {"email": "shared@example.com", "first_name": "Shop"},
        ],
        blank_means_unchanged=False,
    )
    contacts_upsert_rows(
        workspace=bakery,
        raws=[
            {"email": "bakery-vip@example.com", "tags": ["vip"]},
            {"email": "bakery-2@example.com", "tags": ["vip"]},
            {"email": "shared@example.com", "first_name": "Bakery"},
        ],
        blank_means_unchanged=False,
    )
    return shop, bakery


def test_a_viewer_is_refused_the_export_and_import_pages_and_the_refused_export_is_audited(
    two_shops: tuple[Workspace, Workspace],
) -> None:
    shop, _ = two_shops
    viewer = _staff(shop, Role.VIEWER)
    assert viewer.get(EXPORT).status_code == 403
    assert viewer.post(EXPORT, _export_form("email")).status_code == 403
    assert viewer.get(IMPORT).status_code == 403
    upload = _upload(b"email\nnew@example.com\n")
    assert (
        viewer.post(IMPORT, {"resource": "0", "format": "0", "import_file": upload}).status_code
        == 403
    )
    assert viewer.post(PROCESS_IMPORT, {"format": "0"}).status_code == 403
    assert not Contact.objects.filter(email="new@example.com").exists()
    denied = AuditEvent.objects.filter(workspace=shop, action="contact.export_file")
    assert set(denied.values_list("outcome", flat=True)) == {AuditOutcome.DENIED}
    assert denied.first() is not None and denied.first().detail == {  # type: ignore[union-attr]
        "missing": "contacts.export_contact"
    }
    # The list page offers neither the buttons nor the bulk actions.
    page = viewer.get("/admin/contacts/contact/").content.decode()
    assert "shop-vip@example.com" in page and "bakery-vip@example.com" not in page
    assert 'href="/admin/contacts/contact/export/' not in page
    assert "erase_contacts" not in page and "revoke_channel" not in page


def test_a_marketer_may_not_export_contacts_but_a_privacy_officer_exports_only_their_workspace(
    two_shops: tuple[Workspace, Workspace],
) -> None:
    shop, bakery = two_shops
    assert _staff(shop, Role.MARKETER).post(EXPORT, _export_form("email")).status_code == 403
    response = _staff(shop, Role.PRIVACY).post(EXPORT, _export_form("email", "first_name"))
    assert response.status_code == 200, response.content[:500]
    rows = list(csv.DictReader(io.StringIO(response.getvalue().decode())))
    assert sorted(r["email"] for r in rows) == ["shared@example.com", "shop-vip@example.com"]
    assert {r["first_name"] for r in rows} == {"", "Shop"}
    done = AuditEvent.objects.get(
        workspace=shop, action="contact.export_file", outcome=AuditOutcome.DONE
    )
    assert done.detail == {"contacts": 2, "format": "csv"}
    assert not AuditEvent.objects.filter(workspace=bakery).exists()


def test_a_marketers_import_matches_and_writes_only_in_their_workspace(
    two_shops: tuple[Workspace, Workspace],
) -> None:
    shop, bakery = two_shops
    marketer = _staff(shop, Role.MARKETER)
    content = (
        b"email,first_name,tags,consent_email_marketing\n"
        b"shared@example.com,Shared,vip,granted\n"
        b"bakery-2@example.com,Newcomer,,\n"
    )
    preview = marketer.post(
        IMPORT, {"resource": "0", "format": "0", "import_file": _upload(content)}
    )
    assert preview.status_code == 200
    fields = dict(
        re.findall(
            r'name="(import_file_name|original_file_name|format|resource)"[^>]*value="([^"]*)"',
            preview.content.decode(),
        )
    )
    done = marketer.post(PROCESS_IMPORT, fields)
    assert done.status_code == 302, done.content[:2000]
    mine = Contact.objects.for_workspace(shop)
    assert mine.get(email="shared@example.com").first_name == "Shared"
    assert mine.filter(email="bakery-2@example.com").exists()  # new here, not matched there
    theirs = Contact.objects.for_workspace(bakery)
    assert theirs.get(email="shared@example.com").first_name == "Bakery"
    assert theirs.count() == 3
    event = ConsentEvent.objects.get(contact__email="shared@example.com")
    assert event.workspace_id == shop.pk
    audit = AuditEvent.objects.get(workspace=shop, action="contact.import_file")
    assert audit.outcome == AuditOutcome.DONE and audit.detail["file"] == "people.csv"
    assert (audit.detail["new"], audit.detail["update"]) == (1, 1)


def test_the_segment_counter_counts_only_the_sessions_workspace(
    two_shops: tuple[Workspace, Workspace],
) -> None:
    shop, bakery = two_shops
    for workspace, expected in ((shop, 1), (bakery, 2)):
        counted = _staff(workspace, Role.VIEWER).post(
            COUNT, {"tags_any": ["vip"]}, content_type="application/json"
        )
        assert counted.status_code == 200
        assert counted.json()["all"] == expected


def test_the_segment_counter_is_refused_without_a_workspace_role() -> None:
    make_workspace()
    outsider = Client()
    outsider.force_login(get_user_model().objects.create_user(username="outsider", is_staff=True))
    response = outsider.post(COUNT, {"tags_any": ["vip"]}, content_type="application/json")
    assert response.status_code == 403


def test_a_bad_counter_body_is_a_400_not_a_500(two_shops: tuple[Workspace, Workspace]) -> None:
    shop, _ = two_shops
    client = _staff(shop, Role.MARKETER)
    for body in ("[1, 2]", "not json", '{"tags_any": "vip"}'):
        response = client.post(COUNT, body, content_type="application/json")
        assert response.status_code == 400, body


def test_another_workspaces_contact_is_not_found_in_the_admin(
    two_shops: tuple[Workspace, Workspace],
) -> None:
    shop, bakery = two_shops
    theirs = Contact.objects.for_workspace(bakery).get(email="bakery-vip@example.com")
    owner = _staff(shop, Role.OWNER)
    page = owner.get(f"/admin/contacts/contact/{theirs.pk}/change/", follow=True)
    assert "bakery-vip@example.com" not in page.content.decode()
    segment = Segment.objects.create(workspace=bakery, name="theirs")
    page = owner.get(f"/admin/contacts/segment/{segment.pk}/change/", follow=True)
    assert "theirs" not in page.content.decode().split("<main", 1)[-1]


def test_erasing_in_the_admin_is_a_privacy_action_and_is_audited(
    two_shops: tuple[Workspace, Workspace],
) -> None:
    shop, _ = two_shops
    contact = granted_contact(workspace=shop, email="leave-me@example.com")
    form = {"action": "erase_contacts", "_selected_action": [str(contact.pk)]}
    # A marketer is not offered the action: posting it anyway does nothing.
    _staff(shop, Role.MARKETER).post("/admin/contacts/contact/", form)
    contact.refresh_from_db()
    assert contact.erased_at is None
    _staff(shop, Role.PRIVACY).post("/admin/contacts/contact/", form)
    contact.refresh_from_db()
    assert contact.erased_at is not None and contact.email is None
    audit = AuditEvent.objects.get(workspace=shop, action="contact.erase")
    assert audit.target_id == str(contact.pk) and audit.outcome == AuditOutcome.DONE


def test_a_bulk_consent_revoke_in_the_admin_is_audited(
    two_shops: tuple[Workspace, Workspace],
) -> None:
    shop, _ = two_shops
    contact = granted_contact(workspace=shop)
    _staff(shop, Role.MARKETER).post(
        "/admin/contacts/contact/",
        {
            "action": "revoke_channel",
            "_selected_action": [str(contact.pk)],
            "tag": "",
            "channel": "email",
        },
    )
    audit = AuditEvent.objects.get(workspace=shop, action="consent.revoke_bulk")
    assert audit.detail == {"channel": "email", "purpose": "marketing", "changed": 1}


def test_a_duplicate_segment_or_contact_email_in_the_admin_is_a_form_error_not_a_500(
    two_shops: tuple[Workspace, Workspace],
) -> None:
    shop, bakery = two_shops
    Segment.objects.create(workspace=shop, name="taken")
    owner = _staff(bakery, Role.OWNER)
    form: dict[str, Any] = {
        "name": "taken",
        "description": "",
        "tags_any": "[]",
        "tags_all": "[]",
        "tags_none": "[]",
        "attribute_filters": "[]",
    }
    assert owner.post("/admin/contacts/segment/add/", form).status_code == 302
    again = owner.post("/admin/contacts/segment/add/", form)
    assert again.status_code == 200 and "already exists" in again.content.decode()
    make_contact(workspace=bakery, email="dupe@example.com")
    contact_form = {
        "external_id": "",
        "email": "dupe@example.com",
        "phone": "",
        "first_name": "",
        "last_name": "",
        "locale": "",
        "timezone": "",
        "attributes": "{}",
        **{
            f"{prefix}-{key}": value
            for prefix in ("consents", "suppressions", "push_subscriptions", "consent_events")
            for key, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
        },
    }
    duplicate = owner.post("/admin/contacts/contact/add/", contact_form)
    errors = re.findall(r"errorlist[^>]*>(.*?)</ul>", duplicate.content.decode(), re.S)
    assert duplicate.status_code == 200 and "already has it" in str(errors), errors
