"""Lawful basis per consent: consent, or legitimate interest under the soft opt-in's rules (an
existing customer, email or SMS marketing only, never after an opt-out), in the use case, the
API and the admin."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.test import Client

from contacts.consent import (
    ConsentChange,
    consent_grant,
    consent_revoke,
    consents_apply_bulk,
    contact_customer_since_set,
)
from contacts.errors import LawfulBasisRefused
from contacts.models import (
    Channel,
    Consent,
    ConsentEvent,
    ConsentState,
    Contact,
    LawfulBasis,
    Purpose,
    consent_bit,
)
from contacts.selectors import consent_allows
from continuity.models import Role
from tests.contacts.factories import evidence, make_contact
from tests.workspaces import bearer, make_api_key, make_member, workspace_for_tests

pytestmark = pytest.mark.django_db

LI = LawfulBasis.LEGITIMATE_INTEREST


def customer(**overrides: Any) -> Contact:
    return make_contact(customer_since=date(2025, 3, 1), **overrides)


def soft_opt_in(contact: Contact, channel: str = Channel.EMAIL, **kw: Any) -> Consent:
    return consent_grant(
        contact=contact,
        channel=channel,
        purpose=kw.pop("purpose", Purpose.MARKETING),
        evidence=evidence(),
        lawful_basis=LI,
        **kw,
    )


@pytest.mark.parametrize("channel", [Channel.EMAIL, Channel.SMS])
def test_an_existing_customer_may_get_email_or_sms_marketing_on_legitimate_interest(
    channel: str,
) -> None:
    contact = customer()
    consent = soft_opt_in(contact, channel)
    assert (consent.state, consent.lawful_basis) == (ConsentState.GRANTED, LI)
    event = ConsentEvent.objects.get(contact=contact)
    assert event.lawful_basis == LI
    contact.refresh_from_db()
    assert contact.sendable & consent_bit(channel, Purpose.MARKETING)


@pytest.mark.parametrize("channel", [Channel.PUSH, Channel.WHATSAPP])
def test_push_and_whatsapp_never_go_out_without_consent(channel: str) -> None:
    contact = customer()
    with pytest.raises(LawfulBasisRefused, match="needs the person's consent"):
        soft_opt_in(contact, channel)
    assert not Consent.objects.filter(contact=contact).exists()
    assert not ConsentEvent.objects.filter(contact=contact).exists()


def test_someone_who_never_bought_is_refused_the_soft_opt_in() -> None:
    contact = make_contact()
    with pytest.raises(LawfulBasisRefused, match="only for existing customers"):
        soft_opt_in(contact)
    assert not Consent.objects.filter(contact=contact).exists()


def test_service_notices_are_not_marketing_and_keep_to_consent() -> None:
    with pytest.raises(LawfulBasisRefused, match="is for marketing"):
        soft_opt_in(customer(), purpose=Purpose.SERVICE)


def test_after_an_opt_out_only_the_persons_own_consent_starts_marketing_again() -> None:
    contact = customer()
    soft_opt_in(contact)
    revoked = consent_revoke(
        contact=contact, channel=Channel.EMAIL, purpose=Purpose.MARKETING, evidence=evidence()
    )
    # The withdrawal records the basis it ended.
    assert (revoked.state, revoked.lawful_basis) == (ConsentState.REVOKED, LI)
    with pytest.raises(LawfulBasisRefused, match="opted out"):
        soft_opt_in(contact)
    assert Consent.objects.get(contact=contact).state == ConsentState.REVOKED

    again = consent_grant(
        contact=contact, channel=Channel.EMAIL, purpose=Purpose.MARKETING, evidence=evidence()
    )
    assert (again.state, again.lawful_basis) == (ConsentState.GRANTED, LawfulBasis.CONSENT)
    bases = list(
        ConsentEvent.objects.filter(contact=contact).order_by("id").values_list("lawful_basis")
    )
    assert bases == [(LI,), (LI,), (LawfulBasis.CONSENT,)]


def test_a_bulk_withdrawal_keeps_the_basis_it_ends_and_a_bulk_grant_is_consent() -> None:
    contact = customer()
    soft_opt_in(contact)
    change: dict[str, Any] = {
        "contact_id": contact.pk,
        "channel": Channel.EMAIL,
        "purpose": Purpose.MARKETING,
    }
    consents_apply_bulk(
        changes=[ConsentChange(**change, state=ConsentState.REVOKED, evidence=evidence())]
    )
    assert Consent.objects.get(contact=contact).lawful_basis == LI
    consents_apply_bulk(
        changes=[ConsentChange(**change, state=ConsentState.GRANTED, evidence=evidence())]
    )
    assert Consent.objects.get(contact=contact).lawful_basis == LawfulBasis.CONSENT


# --- the API ------------------------------------------------------------------------------------


@pytest.fixture
def api(client: Client) -> Client:
    workspace = workspace_for_tests()
    user = make_member(workspace=workspace, role=Role.OWNER, username="integrator")
    client.defaults.update(bearer(make_api_key(user=user, workspace=workspace)))
    return client


def test_the_api_records_a_soft_opt_in_with_the_customer_relationship_and_shows_the_basis(
    api: Client,
) -> None:
    contact = make_contact()
    url = f"/api/v1/contacts/{contact.pk}/consent/"
    body = {"channel": "email", "action": "grant", "source": "api", "lawful_basis": LI}

    refused = api.post(url, body, content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["error"] == "lawful_basis_refused"

    granted = api.post(
        url, {**body, "customer_since": "2025-03-01"}, content_type="application/json"
    )
    assert granted.status_code == 200, granted.content
    assert granted.json()["lawful_basis"] == LI

    shown = api.get(f"/api/v1/contacts/{contact.pk}/").json()
    assert shown["customer_since"] == "2025-03-01"
    assert shown["consents"][0]["lawful_basis"] == LI
    history = api.get(f"/api/v1/contacts/{contact.pk}/consent/history/").json()
    events = history["results"] if isinstance(history, dict) else history
    assert events[0]["lawful_basis"] == LI


def test_the_api_refuses_legitimate_interest_for_push_with_the_reason(api: Client) -> None:
    contact = customer()
    response = api.post(
        f"/api/v1/contacts/{contact.pk}/consent/",
        {"channel": "push", "action": "grant", "source": "api", "lawful_basis": LI},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "consent" in response.json()["detail"]
    assert not Consent.objects.filter(contact=contact).exists()


def test_the_schema_documents_the_lawful_basis(api: Client) -> None:
    schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    text = schema.content.decode()
    assert "lawful_basis" in text
    assert "legitimate_interest" in text
    assert "customer_since" in text


# --- the admin ----------------------------------------------------------------------------------


def test_the_admin_shows_the_basis_and_records_soft_opt_ins_for_customers_only(
    admin_client: Client,
) -> None:
    buyer, stranger = customer(), make_contact()
    response = admin_client.post(
        "/admin/contacts/contact/",
        {
            "action": "grant_soft_opt_in",
            "channel": "sms",
            "_selected_action": [buyer.pk, stranger.pk],
        },
        follow=True,
    )
    text = response.content.decode()
    assert "Legitimate interest recorded for 1 contacts." in text
    assert "only for existing customers" in text
    assert Consent.objects.get(contact=buyer).lawful_basis == LI
    assert not Consent.objects.filter(contact=stranger).exists()

    page = admin_client.get(f"/admin/contacts/contact/{buyer.pk}/change/").content.decode()
    assert "Legitimate interest (soft opt-in)" in page
    assert 'name="customer_since"' in page


# --- the customer mark the soft opt-in rests on --------------------------------------------------


def _may_send(contact: Contact, channel: str = Channel.EMAIL) -> bool:
    return contact.pk in consent_allows(
        contact_ids=[contact.pk], channel=channel, purpose=Purpose.MARKETING
    )


def test_clearing_the_customer_mark_stops_soft_opt_in_messages_until_it_is_set_again() -> None:
    contact = customer()
    soft_opt_in(contact, Channel.EMAIL)
    consent_grant(
        contact=contact, channel=Channel.SMS, purpose=Purpose.MARKETING, evidence=evidence()
    )
    assert _may_send(contact) and _may_send(contact, Channel.SMS)

    contact_customer_since_set(contact=contact, since=None)
    # Email rested on the relationship: it stops. SMS rests on consent: it goes on.
    assert not _may_send(contact) and _may_send(contact, Channel.SMS)
    assert Consent.objects.get(contact=contact, channel=Channel.EMAIL).lawful_basis == LI

    contact_customer_since_set(contact=contact, since=date(2026, 1, 5))
    assert _may_send(contact)


def test_every_way_of_clearing_the_mark_stops_the_soft_opt_in(
    api: Client, admin_client: Client
) -> None:
    by_patch, by_bulk, by_admin = customer(), customer(), customer()
    for contact in (by_patch, by_bulk, by_admin):
        soft_opt_in(contact)
        assert _may_send(contact)

    patched = api.patch(
        f"/api/v1/contacts/{by_patch.pk}/",
        {"customer_since": None},
        content_type="application/json",
    )
    assert patched.status_code == 200, patched.content
    bulk = api.post(
        "/api/v1/contacts/bulk/",
        {"contacts": [{"external_id": by_bulk.external_id, "customer_since": None}]},
        content_type="application/json",
    )
    assert bulk.json()["results"][0]["status"] == "updated", bulk.content
    form = admin_client.get(f"/admin/contacts/contact/{by_admin.pk}/change/")
    assert form.status_code == 200
    saved = admin_client.post(
        f"/admin/contacts/contact/{by_admin.pk}/change/",
        {**_change_form_data(by_admin), "customer_since": ""},
    )
    assert saved.status_code == 302, saved.content.decode()[:3000]

    for contact in (by_patch, by_bulk, by_admin):
        contact.refresh_from_db()
        assert contact.customer_since is None
        assert not _may_send(contact), contact


def test_the_admin_refuses_a_customer_relationship_that_begins_later(admin_client: Client) -> None:
    contact = customer()
    response = admin_client.post(
        f"/admin/contacts/contact/{contact.pk}/change/",
        {**_change_form_data(contact), "customer_since": "2999-01-01"},
    )
    assert response.status_code == 200
    assert "is in the future" in response.content.decode()
    contact.refresh_from_db()
    assert contact.customer_since == date(2025, 3, 1)


def _change_form_data(contact: Contact) -> dict[str, Any]:
    """The contact's change form as the admin draws it, with its inlines' management forms."""
    data: dict[str, Any] = {
        "external_id": contact.external_id or "",
        "email": contact.email or "",
        "phone": str(contact.phone or ""),
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "locale": contact.locale,
        "timezone": contact.timezone,
        "attributes": "{}",
        "customer_since": contact.customer_since.isoformat() if contact.customer_since else "",
    }
    for prefix in ("consents", "suppressions", "push_subscriptions", "consent_events"):
        data |= {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"}
    return data
