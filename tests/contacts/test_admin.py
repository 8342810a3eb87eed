from __future__ import annotations

import pytest
from django.test import Client

from contacts.models import ConsentEvent, ContactTag
from contacts.upsert import contacts_upsert_rows
from tests.contacts.factories import granted_contact, make_contact
from tests.workspaces import workspace_for_tests

pytestmark = pytest.mark.django_db


def test_the_contact_list_searches_and_filters_by_tag_and_consent(admin_client: Client) -> None:
    contacts_upsert_rows(
        workspace=workspace_for_tests(),
        raws=[{"email": "tagged@example.com", "tags": ["vip"]}],
        blank_means_unchanged=False,
    )
    granted_contact(email="consented@example.com")
    make_contact(email="plain@example.com", external_id="CRM-42")
    listing = admin_client.get("/admin/contacts/contact/", {"q": "CRM-42"}).content.decode()
    assert "plain@example.com" in listing and "tagged@example.com" not in listing
    by_tag = admin_client.get("/admin/contacts/contact/", {"tag": "vip"}).content.decode()
    assert "tagged@example.com" in by_tag and "plain@example.com" not in by_tag
    allowed = admin_client.get(
        "/admin/contacts/contact/", {"consent_email": "allowed"}
    ).content.decode()
    assert "consented@example.com" in allowed and "plain@example.com" not in allowed


def test_the_change_page_shows_the_consent_history_read_only(admin_client: Client) -> None:
    contact = granted_contact()
    page = admin_client.get(f"/admin/contacts/contact/{contact.pk}/change/").content.decode()
    assert "consent history" in page.lower()
    assert "203.0.113.9" in page
    assert 'name="consent_events-0-source"' not in page  # shown, not editable


def test_bulk_actions_tag_and_revoke_through_the_consent_log(admin_client: Client) -> None:
    a, b = granted_contact(), granted_contact()
    ids = [str(a.pk), str(b.pk)]
    admin_client.post(
        "/admin/contacts/contact/",
        {"action": "add_tag", "_selected_action": ids, "tag": "spring", "channel": ""},
    )
    assert ContactTag.objects.filter(tag__name="spring").count() == 2
    admin_client.post(
        "/admin/contacts/contact/",
        {"action": "revoke_channel", "_selected_action": ids, "tag": "", "channel": "email"},
    )
    revokes = ConsentEvent.objects.filter(action="revoke", source="admin")
    assert sorted(revokes.values_list("contact_id", flat=True)) == sorted([a.pk, b.pk])
    assert set(revokes.values_list("recorded_by", flat=True)) == {"admin"}


def test_the_segment_editor_counts_live_and_names_a_bad_filter(admin_client: Client) -> None:
    contacts_upsert_rows(
        workspace=workspace_for_tests(),
        raws=[
            {"email": "x1@example.com", "tags": ["fr"]},
            {"email": "x2@example.com", "tags": ["fr", "churned"]},
        ],
        blank_means_unchanged=False,
    )
    counted = admin_client.post(
        "/admin/contacts/segment/count/",
        {"tags_any": ["fr"], "tags_none": ["churned"]},
        content_type="application/json",
    )
    assert counted.json() == {"all": 1, "email": 0, "sms": 0, "push": 0, "whatsapp": 0}
    bad = admin_client.post(
        "/admin/contacts/segment/count/",
        {"attribute_filters": [{"key": "a", "op": "between"}]},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "op must be one of" in bad.json()["detail"]
    assert admin_client.get("/admin/contacts/segment/add/").status_code == 200


def test_saving_a_bad_segment_in_the_admin_shows_the_error_in_plain_words(
    admin_client: Client,
) -> None:
    response = admin_client.post(
        "/admin/contacts/segment/add/",
        {
            "name": "broken",
            "description": "",
            "rule-0-kind": "created",
            "rule-0-created_op": "gte",
            "rule-0-value": "last tuesday",
            "rule-1-kind": "attribute",
            "rule-1-key": "",
            "rule-1-value": "Lyon",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Rule 2: say which attribute the value “Lyon” is for." in page
    response = admin_client.post(
        "/admin/contacts/segment/add/",
        {
            "name": "broken",
            "rule-0-kind": "created",
            "rule-0-created_op": "gte",
            "rule-0-value": "last tuesday",
        },
    )
    assert "Rule 1: must be a date such as 2026-01-31" in response.content.decode()
    assert "attribute_filters[" not in response.content.decode()


def test_contacts_typed_in_the_admin_are_normalised_like_imports(admin_client: Client) -> None:
    from contacts.models import Contact

    form = {
        "external_id": "",
        "email": " Typed@Example.COM ",
        "phone": "+33 6 12 34 56 78",
        "first_name": "Ty",
        "last_name": "",
        "locale": "",
        "timezone": "Europe/Paris",
        "attributes": "{}",
        **{
            f"{prefix}-{key}": value
            for prefix in ("consents", "suppressions", "push_subscriptions", "consent_events")
            for key, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
        },
    }
    response = admin_client.post("/admin/contacts/contact/add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    contact = Contact.objects.get()
    assert (contact.email, str(contact.phone), contact.external_id) == (
        "typed@example.com",
        "+33612345678",
        None,
    )
    bad = admin_client.post("/admin/contacts/contact/add/", {**form, "phone": "0612345678"})
    assert bad.status_code == 200 and "country code" in bad.content.decode()
    # Attribute names follow the rule imports and segment rules share.
    other = {**form, "email": "other@example.com", "phone": ""}
    for attributes in ('{"city__regex": "x"}', '{"loyalty-tier": "gold"}'):
        refused = admin_client.post(
            "/admin/contacts/contact/add/", {**other, "attributes": attributes}
        )
        assert refused.status_code == 200
        assert "not a valid attribute name" in refused.content.decode()
    assert Contact.objects.count() == 1
    ok = admin_client.post(
        "/admin/contacts/contact/add/", {**other, "attributes": '{"city": "Lyon"}'}
    )
    assert ok.status_code == 302
    assert Contact.objects.get(email="other@example.com").attributes == {"city": "Lyon"}


def test_a_segment_key_that_is_not_a_plain_name_is_a_form_error_naming_it(
    admin_client: Client,
) -> None:
    from contacts.models import Segment

    response = admin_client.post(
        "/admin/contacts/segment/add/",
        {
            "name": "regex",
            "description": "",
            "rule-0-kind": "attribute",
            "rule-0-key": "city__regex",
            "rule-0-op": "eq",
            "rule-0-value": "(",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "city__regex" in page and "not a valid attribute name" in page
    assert not Segment.objects.filter(name="regex").exists()
    counted = admin_client.post(
        "/admin/contacts/segment/count/",
        {"attribute_filters": [{"key": "city__isnull", "op": "eq", "value": True}]},
        content_type="application/json",
    )
    assert counted.status_code == 400 and "city__isnull" in counted.json()["detail"]


def test_a_segment_saved_with_an_invalid_key_shows_why_in_the_list_and_editor(
    admin_client: Client,
) -> None:
    from contacts.models import Segment

    contacts_upsert_rows(
        workspace=workspace_for_tests(),
        raws=[{"email": "lyon@example.com", "attributes": {"city": "Lyon"}}],
        blank_means_unchanged=False,
    )
    # As rows saved before the rule: create() skips validation.
    old = Segment.objects.create(
        workspace=workspace_for_tests(),
        name="old rule",
        attribute_filters=[{"key": "city__regex", "op": "eq", "value": "("}],
    )
    listing = admin_client.get("/admin/contacts/segment/")
    assert listing.status_code == 200
    assert "This rule is invalid" in listing.content.decode()
    editor = admin_client.get(f"/admin/contacts/segment/{old.pk}/change/")
    assert editor.status_code == 200
    assert "city__regex" in editor.content.decode()
    assert "This rule is invalid" in editor.content.decode()
