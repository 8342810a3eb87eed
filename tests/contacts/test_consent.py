from __future__ import annotations

import pytest
from django.core import mail
from django.db import IntegrityError

from contacts.consent import (
    ConsentChange,
    Evidence,
    consent_confirm,
    consent_grant,
    consent_request_double_opt_in,
    consent_revoke,
    consents_apply_bulk,
    suppression_add,
    suppression_lift,
)
from contacts.errors import ConsentEvidenceMissing, ContactErased, NoPendingOptIn
from contacts.models import (
    Channel,
    Consent,
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    ConsentState,
    Purpose,
    Suppression,
    SuppressionReason,
)
from contacts.privacy import contact_erase
from contacts.selectors import consent_allows, contacts_consented
from tests.contacts.factories import evidence, granted_contact, make_contact
from tests.workspaces import workspace_for_tests

pytestmark = pytest.mark.django_db


def test_a_grant_writes_the_state_and_its_evidence_in_one_go() -> None:
    contact = make_contact()
    consent = consent_grant(
        contact=contact, channel=Channel.SMS, purpose=Purpose.MARKETING, evidence=evidence()
    )
    assert consent.state == ConsentState.GRANTED
    event = ConsentEvent.objects.get(contact=contact)
    assert (event.action, event.source, event.ip, event.consent_text_version) == (
        ConsentAction.GRANT,
        ConsentSource.FORM,
        "203.0.113.9",
        "v1",
    )


def test_a_grant_without_an_evidence_source_is_refused_and_writes_nothing() -> None:
    contact = make_contact()
    with pytest.raises(ConsentEvidenceMissing, match="evidence source"):
        consent_grant(
            contact=contact,
            channel=Channel.EMAIL,
            purpose=Purpose.MARKETING,
            evidence=Evidence(source=""),
        )
    with pytest.raises(ConsentEvidenceMissing, match="unknown evidence source"):
        consent_grant(
            contact=contact,
            channel=Channel.EMAIL,
            purpose=Purpose.MARKETING,
            evidence=Evidence(source="rumour"),
        )
    assert not Consent.objects.exists()
    assert not ConsentEvent.objects.exists()


def test_state_is_unique_per_contact_channel_and_purpose() -> None:
    contact = granted_contact()
    consent_revoke(
        contact=contact, channel=Channel.EMAIL, purpose=Purpose.MARKETING, evidence=evidence()
    )
    assert Consent.objects.get(contact=contact).state == ConsentState.REVOKED
    assert ConsentEvent.objects.filter(contact=contact).count() == 2
    with pytest.raises(IntegrityError):
        Consent.objects.create(
            contact=contact,
            channel=Channel.EMAIL,
            purpose=Purpose.MARKETING,
            state="granted",
            updated_at=Consent.objects.get().updated_at,
        )


def test_consent_allows_needs_grant_no_suppression_and_not_erased() -> None:
    ok = granted_contact()
    revoked = granted_contact()
    consent_revoke(
        contact=revoked, channel=Channel.EMAIL, purpose=Purpose.MARKETING, evidence=evidence()
    )
    suppressed = granted_contact()
    suppression_add(
        contact=suppressed,
        channel=Channel.EMAIL,
        reason=SuppressionReason.HARD_BOUNCE,
        source=ConsentSource.BOUNCE,
        detail="550 no such user",
    )
    other_purpose = granted_contact(purpose=Purpose.SERVICE)
    erased = granted_contact()
    contact_erase(contact=erased)
    never = make_contact()
    ids = [c.pk for c in (ok, revoked, suppressed, other_purpose, erased, never)]
    assert consent_allows(contact_ids=ids, channel=Channel.EMAIL, purpose=Purpose.MARKETING) == {
        ok.pk
    }
    assert set(
        contacts_consented(channel=Channel.EMAIL, purpose=Purpose.SERVICE).values_list(
            "pk", flat=True
        )
    ) == {other_purpose.pk}


def test_suppressions_are_idempotent_and_lifting_reopens_the_channel() -> None:
    contact = granted_contact()
    for _ in range(3):
        suppression_add(
            contact=contact,
            channel=Channel.EMAIL,
            reason=SuppressionReason.COMPLAINT,
            source=ConsentSource.COMPLAINT,
        )
    assert Suppression.objects.filter(contact=contact, active=True).count() == 1
    assert ConsentEvent.objects.filter(action=ConsentAction.SUPPRESS).count() == 1
    assert not consent_allows(
        contact_ids=[contact.pk], channel=Channel.EMAIL, purpose=Purpose.MARKETING
    )
    assert suppression_lift(contact=contact, channel=Channel.EMAIL, source=ConsentSource.ADMIN)
    assert consent_allows(
        contact_ids=[contact.pk], channel=Channel.EMAIL, purpose=Purpose.MARKETING
    ) == {contact.pk}


def test_double_opt_in_mails_a_link_and_confirming_grants(
    django_capture_on_commit_callbacks: object,
) -> None:
    contact = make_contact(email="doi@example.com")
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        consent = consent_request_double_opt_in(contact=contact, evidence=evidence())
    assert consent.state == ConsentState.PENDING
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["doi@example.com"]
    assert "/confirm/" in mail.outbox[0].body
    assert not consent_allows(
        contact_ids=[contact.pk], channel=Channel.EMAIL, purpose=Purpose.MARKETING
    )
    consent_confirm(
        contact=contact,
        purpose=Purpose.MARKETING,
        evidence=evidence(source=ConsentSource.DOUBLE_OPT_IN),
    )
    assert Consent.objects.get(contact=contact).state == ConsentState.GRANTED


def test_confirming_without_a_pending_request_is_refused() -> None:
    contact = make_contact()
    with pytest.raises(NoPendingOptIn):
        consent_confirm(
            contact=contact,
            purpose=Purpose.MARKETING,
            evidence=evidence(source=ConsentSource.DOUBLE_OPT_IN),
        )


def test_bulk_consent_skips_unchanged_rows_and_logs_each_change() -> None:
    a, b = make_contact(), make_contact()
    ev = evidence(source=ConsentSource.IMPORT, source_detail="file.csv")
    changes = [
        ConsentChange(a.pk, Channel.EMAIL, Purpose.MARKETING, ConsentState.GRANTED, ev),
        ConsentChange(b.pk, Channel.SMS, Purpose.MARKETING, ConsentState.REVOKED, ev),
    ]
    assert consents_apply_bulk(changes=changes) == 2
    assert consents_apply_bulk(changes=changes) == 0
    assert ConsentEvent.objects.filter(source_detail="file.csv").count() == 2
    with pytest.raises(ConsentEvidenceMissing):
        consents_apply_bulk(
            changes=[ConsentChange(a.pk, Channel.SMS, Purpose.MARKETING, ConsentState.GRANTED)]
        )


def test_an_erased_contact_keeps_hashed_evidence_and_no_state() -> None:
    contact = granted_contact(email="gone@example.com", phone="+33612345678")
    contact_erase(contact=contact, recorded_by="dpo")
    contact.refresh_from_db()
    assert contact.email is None and contact.phone is None and contact.first_name == ""
    assert not Consent.objects.filter(contact=contact).exists()
    events = list(ConsentEvent.objects.filter(contact=contact))
    assert len(events) == 2
    assert all(len(e.subject_hash) == 64 and e.ip is None for e in events)
    with pytest.raises(ContactErased):
        consent_grant(
            contact=contact, channel=Channel.EMAIL, purpose=Purpose.MARKETING, evidence=evidence()
        )


def _sendable_by_definition(contact_id: int) -> int:
    """The mask from first principles: granted, channel not suppressed, contact not erased."""
    from contacts.models import Contact, consent_bit

    contact = Contact.objects.get(pk=contact_id)
    if contact.erased_at is not None:
        return 0
    suppressed = set(
        Suppression.objects.filter(contact=contact, active=True).values_list("channel", flat=True)
    )
    mask = 0
    for consent in Consent.objects.filter(contact=contact, state=ConsentState.GRANTED):
        if consent.channel not in suppressed:
            mask |= consent_bit(consent.channel, consent.purpose)
    return mask


def test_the_sendable_mask_follows_every_kind_of_change() -> None:
    from contacts.models import Contact
    from contacts.upsert import contacts_upsert_rows

    contact = make_contact()
    other = make_contact()
    steps = [
        lambda: consent_grant(
            contact=contact, channel=Channel.SMS, purpose=Purpose.MARKETING, evidence=evidence()
        ),
        lambda: consent_grant(
            contact=contact, channel=Channel.EMAIL, purpose=Purpose.SERVICE, evidence=evidence()
        ),
        lambda: suppression_add(
            contact=contact,
            channel=Channel.SMS,
            reason=SuppressionReason.INVALID_NUMBER,
            source=ConsentSource.PROVIDER,
        ),
        lambda: consents_apply_bulk(
            changes=[
                ConsentChange(contact.pk, "push", "marketing", "granted", evidence()),
                ConsentChange(other.pk, "email", "marketing", "granted", evidence()),
                ConsentChange(contact.pk, "email", "service", "revoked", evidence()),
            ]
        ),
        lambda: suppression_lift(contact=contact, channel=Channel.SMS, source=ConsentSource.ADMIN),
        lambda: consent_revoke(
            contact=contact, channel=Channel.PUSH, purpose=Purpose.MARKETING, evidence=evidence()
        ),
        lambda: contacts_upsert_rows(
            workspace=workspace_for_tests(),
            raws=[{"email": "fresh@example.com", "consent_whatsapp_service": "yes"}],
            blank_means_unchanged=True,
            default_evidence=evidence(source=ConsentSource.IMPORT),
        ),
        lambda: contact_erase(contact=other),
    ]
    for step in steps:
        step()
        for c in Contact.objects.all():
            assert c.sendable == _sendable_by_definition(c.pk)
    contact.refresh_from_db()
    assert contact.sendable != 0
    assert Contact.objects.get(email="fresh@example.com").sendable != 0
