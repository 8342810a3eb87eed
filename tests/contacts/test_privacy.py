"""Erasure's hashed suppression outside the API and imports (#19): the preference centre and the
staff command that records new consent. The whole-database erasure test is
tests/delivery/test_erasure.py."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from contacts.errors import EmailChangeRefused, InvalidContactData
from contacts.models import Contact, ErasedIdentifier
from contacts.preferences import email_change_confirm, preferences_apply
from contacts.privacy import contact_erase, erasure_subject_hashes
from contacts.upsert import contact_update
from continuity.models import AuditEvent
from tests.contacts.factories import evidence, make_contact
from tests.workspaces import workspace_for_tests

pytestmark = pytest.mark.django_db


def test_only_hashes_of_the_identifiers_are_kept() -> None:
    contact = make_contact(email="hash.me@example.org", phone="+14155550142")
    contact_erase(contact=contact)
    digests = set(ErasedIdentifier.objects.values_list("digest", flat=True))
    assert digests == {
        erasure_subject_hashes(identifier="hash.me@example.org")[0],
        erasure_subject_hashes(identifier="+14155550142")[0],
    }
    assert all(len(d) == 64 for d in digests)


def test_the_preference_centre_cannot_bring_an_erased_person_back() -> None:
    contact_erase(contact=make_contact(email="gone@example.org", phone="+14155550143"))
    other = make_contact(email="other@example.org")
    with pytest.raises(EmailChangeRefused, match="asked to be erased"):
        email_change_confirm(
            contact=other,
            email="gone@example.org",
            previous_email="other@example.org",
            evidence=evidence(),
        )
    preferences_apply(
        contact=other, wanted={}, email=None, phone="+14155550143", evidence=evidence()
    )
    other.refresh_from_db()
    assert (other.email, other.phone) == ("other@example.org", None)
    with pytest.raises(InvalidContactData, match="asked to be erased"):
        contact_update(contact=other, data={"email": "gone@example.org"}, replace_tags=False)


def test_new_consent_is_a_staff_command_with_its_evidence_in_the_audit_trail() -> None:
    contact_erase(contact=make_contact(email="back.again@example.org"))
    slug = workspace_for_tests().slug
    with pytest.raises(CommandError, match="required"):
        call_command("erasure_lift", "--workspace", slug, "--email", "back.again@example.org")
    with pytest.raises(CommandError, match="no erased person"):
        call_command(
            "erasure_lift", "--workspace", slug, "--email", "never@example.org",
            "--recorded-by", "dpo", "--note", "signed form", stdout=io.StringIO(),
        )  # fmt: skip
    call_command(
        "erasure_lift", "--workspace", slug, "--email", "Back.Again@example.org",
        "--recorded-by", "dpo", "--note", "signed paper form of 2026-12-07",
        stdout=io.StringIO(),
    )  # fmt: skip
    audit = AuditEvent.objects.get(action="contact.erasure_lift")
    assert audit.actor_label == "dpo"
    assert audit.detail["note"] == "signed paper form of 2026-12-07"
    assert "back.again" not in str(audit.detail)
    contact_update(
        contact=make_contact(email=None), data={"email": "back.again@example.org"},
        replace_tags=False,
    )  # fmt: skip
    assert Contact.objects.filter(email="back.again@example.org").exists()


def test_the_admin_import_refuses_an_erased_person_with_the_reason(admin_client: Client) -> None:
    contact_erase(contact=make_contact(email="imported.gone@example.org"))
    upload = io.BytesIO(b"email,first_name\nimported.gone@example.org,Back\nnew@example.org,New\n")
    upload.name = "again.csv"
    preview = admin_client.post(
        "/admin/contacts/contact/import/",
        {"resource": "0", "format": "0", "import_file": upload},
    )
    assert preview.status_code == 200
    html = preview.content.decode()
    assert "asked to be erased" in html
    assert "will be skipped" in html
