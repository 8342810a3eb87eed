from __future__ import annotations

from typing import Any

import pytest
from django.test.utils import override_settings

from contacts.consent import Evidence
from contacts.models import Consent, ConsentEvent, ConsentSource, Contact, ContactTag
from contacts.privacy import contact_erase
from contacts.selectors import consent_allows
from contacts.upsert import contacts_upsert_rows
from tests.contacts.factories import granted_contact, make_contact
from tests.workspaces import workspace_for_tests

pytestmark = pytest.mark.django_db

IMPORT = Evidence(source=ConsentSource.IMPORT, source_detail="people.csv", recorded_by="alice")


def _api(rows: list[dict[str, Any]]) -> Any:
    return contacts_upsert_rows(
        workspace=workspace_for_tests(), raws=rows, blank_means_unchanged=False
    )


def test_bad_rows_are_reported_by_row_and_field_and_good_rows_still_land() -> None:
    report = _api(
        [
            {"email": "ok@example.com", "tags": ["vip", "fr"]},
            {"email": "not-an-email"},
            {"phone": "0612345678"},
            {"email": "tz@example.com", "timezone": "Mars/Olympus"},
            {"email": "OK@example.com"},
            {"first_name": "nobody"},
        ]
    )
    assert [r.status for r in report.results] == [
        "created",
        "error",
        "error",
        "error",
        "error",
        "error",
    ]
    fields = {e.row: e.field for e in report.errors}
    assert fields == {2: "email", 3: "phone", 4: "timezone", 5: "email", 6: "email"}
    messages = {e.row: e.message for e in report.errors}
    assert "no country code" in messages[3]
    assert "duplicate email 'ok@example.com': already in row 1" in messages[5]
    contact = Contact.objects.get()
    assert contact.email == "ok@example.com"
    assert set(ContactTag.objects.values_list("tag__name", flat=True)) == {"vip", "fr"}


@override_settings(CONTACTS_DEFAULT_PHONE_REGION="FR")
def test_a_default_region_lets_national_numbers_in_as_e164() -> None:
    report = _api([{"phone": "06 12 34 56 78"}])
    assert report.summary()["created"] == 1
    assert str(Contact.objects.get().phone) == "+33612345678"


def test_upsert_matches_by_external_id_then_email_then_phone() -> None:
    by_ext = make_contact(external_id="A1", email="a@example.com")
    by_email = make_contact(external_id=None, email="b@example.com")
    by_phone = make_contact(external_id=None, email=None, phone="+33612345670")
    report = _api(
        [
            {"external_id": "A1", "email": "a2@example.com", "first_name": "Ann"},
            {"external_id": "B1", "email": "B@example.com"},
            {"phone": "+33612345670", "attributes": {"plan": "gold"}},
            {"email": "new@example.com"},
        ]
    )
    assert [r.status for r in report.results] == ["updated", "updated", "updated", "created"]
    assert [r.id for r in report.results[:3]] == [by_ext.pk, by_email.pk, by_phone.pk]
    by_ext.refresh_from_db()
    by_email.refresh_from_db()
    by_phone.refresh_from_db()
    assert (by_ext.email, by_ext.first_name) == ("a2@example.com", "Ann")
    assert by_email.external_id == "B1"
    assert by_phone.attributes == {"plan": "gold"}
    # The same rows again change nothing.
    again = _api([{"external_id": "A1", "email": "a2@example.com", "first_name": "Ann"}])
    assert again.results[0].status == "unchanged"


def test_a_row_whose_identifiers_point_at_two_contacts_is_refused() -> None:
    make_contact(external_id="X", email="x@example.com")
    make_contact(external_id="Y", email="y@example.com")
    report = _api([{"external_id": "X", "email": "y@example.com"}])
    assert report.results[0].status == "error"
    assert "belongs to another contact" in report.errors[0].message


def test_a_consent_grant_without_evidence_source_is_refused_for_that_row() -> None:
    report = _api(
        [
            {"email": "c1@example.com", "consents": [{"channel": "email", "purpose": "marketing"}]},
            {
                "email": "c2@example.com",
                "consents": [
                    {
                        "channel": "email",
                        "purpose": "marketing",
                        "source": "form",
                        "ip": "192.0.2.1",
                        "consent_text_version": "2026-01",
                    }
                ],
            },
        ]
    )
    assert [r.status for r in report.results] == ["error", "created"]
    assert report.errors[0].field == "consents[0].source"
    event = ConsentEvent.objects.get()
    assert (event.source, event.ip, event.consent_text_version) == ("form", "192.0.2.1", "2026-01")


def test_import_consent_columns_use_the_file_as_evidence() -> None:
    report = contacts_upsert_rows(
        workspace=workspace_for_tests(),
        raws=[
            {"email": "i@example.com", "consent_email_marketing": "yes", "consent_sms_service": ""}
        ],
        blank_means_unchanged=True,
        default_evidence=IMPORT,
    )
    assert report.summary()["consent_changes"] == 1
    event = ConsentEvent.objects.get()
    assert (event.source, event.source_detail, event.recorded_by) == (
        "import",
        "people.csv",
        "alice",
    )


def test_an_erased_contact_reimported_gets_no_consent_back_unless_the_file_grants_it() -> None:
    from contacts.privacy import erased_identifier_lift
    from tests.contacts.factories import evidence

    contact = granted_contact(email="back@example.com")
    contact_erase(contact=contact)
    refused = contacts_upsert_rows(
        workspace=workspace_for_tests(),
        raws=[{"email": "back@example.com"}],
        blank_means_unchanged=True,
        default_evidence=IMPORT,
    )
    assert refused.results[0].status == "error"
    assert "asked to be erased" in refused.results[0].errors[0].message
    # New consent: staff record the person's fresh evidence; only then can a row add them.
    erased_identifier_lift(
        workspace_id=contact.workspace_id,
        identifier="back@example.com",
        evidence=evidence(note="signed up again on the shop's form"),
    )
    report = contacts_upsert_rows(
        workspace=workspace_for_tests(),
        raws=[{"email": "back@example.com"}],
        blank_means_unchanged=True,
        default_evidence=IMPORT,
    )
    new_id = report.results[0].id
    assert report.results[0].status == "created"
    assert new_id is not None and new_id != contact.pk
    assert not consent_allows(contact_ids=[new_id], channel="email", purpose="marketing")
    assert not Consent.objects.filter(contact_id=new_id).exists()
    contacts_upsert_rows(
        workspace=workspace_for_tests(),
        raws=[{"email": "back@example.com", "consent_email_marketing": "granted"}],
        blank_means_unchanged=True,
        default_evidence=IMPORT,
    )
    assert consent_allows(contact_ids=[new_id], channel="email", purpose="marketing") == {new_id}


def test_seen_keys_remembers_every_key_across_merges() -> None:
    from contacts.upsert import SeenKeys, key_digest

    seen = SeenKeys(recent_limit=10)
    keys = [key_digest(f"email:p{i}@example.com") for i in range(1_000)]
    for digest in keys:
        seen.add(digest)
    assert len(seen) == 1_000
    assert all(digest in seen for digest in keys)
    assert key_digest("email:never@example.com") not in seen
    assert "not an int" not in seen


def test_seen_keys_tells_apart_digests_that_share_a_filter_bit() -> None:
    from contacts.upsert import SeenKeys

    seen = SeenKeys(recent_limit=10)
    # Same low bits, so the same bitmap slot: the answer must come from the stored digests,
    # before and after they are merged into the sorted array.
    base = [i * 7919 for i in range(20)]
    seen.update(base[:5])
    assert all(d in seen for d in base[:5])
    assert all(d + (1 << 24) not in seen for d in base[:5])
    seen.update(base[5:])
    assert all(d in seen for d in base)
    assert all(d + (1 << 24) not in seen and d - (1 << 40) not in seen for d in base)
