"""The export answers "on what basis do you write to me?": each consent's and each consent
event's lawful basis, and the customer relationship a soft opt-in rests on."""

from __future__ import annotations

from datetime import date

import pytest

from contacts.consent import consent_grant, consent_revoke
from contacts.models import Channel, LawfulBasis, Purpose
from contacts.privacy import EXPORT_FORMAT, contact_export
from tests.contacts.factories import evidence, make_contact

pytestmark = pytest.mark.django_db

LI = LawfulBasis.LEGITIMATE_INTEREST


def test_the_export_names_the_lawful_basis_of_each_consent_and_event_and_the_customer_date() -> (
    None
):
    contact = make_contact(customer_since=date(2024, 11, 5))
    consent_grant(
        contact=contact,
        channel=Channel.SMS,
        purpose=Purpose.MARKETING,
        evidence=evidence(),
        lawful_basis=LI,
    )
    consent_grant(
        contact=contact, channel=Channel.EMAIL, purpose=Purpose.MARKETING, evidence=evidence()
    )
    consent_revoke(
        contact=contact, channel=Channel.SMS, purpose=Purpose.MARKETING, evidence=evidence()
    )

    document = contact_export(contact=contact)

    assert document["format"] == EXPORT_FORMAT
    assert document["contact"]["customer_since"] == "2024-11-05"
    bases = {(c["channel"], c["state"]): c["lawful_basis"] for c in document["consents"]}
    assert bases == {("email", "granted"): "consent", ("sms", "revoked"): LI}
    events = [(e["channel"], e["action"], e["lawful_basis"]) for e in document["consent_events"]]
    assert events == [("sms", "grant", LI), ("email", "grant", "consent"), ("sms", "revoke", LI)]


def test_a_contact_who_never_bought_exports_no_customer_date() -> None:
    assert contact_export(contact=make_contact())["contact"]["customer_since"] is None
