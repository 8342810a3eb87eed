"""System mail through the email channel (#19): a double opt-in (and the preference and
email-change links) is a Delivery row, sent by its task to SendGrid with the workspace's own
account, in the contact's language; SendGrid down or throttling puts the row back in the queue
with a back-off, and the pending consent stays pending whatever happens to the mail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client, TestCase
from django.utils import timezone

from contacts.consent import consent_confirm, consent_request_double_opt_in
from contacts.link_mail import KIND_DOUBLE_OPT_IN, KIND_EMAIL_CHANGE, KIND_PREFERENCES
from contacts.models import Channel, Consent, ConsentState, Purpose
from continuity.models import Role
from continuity.tenancy import access_for
from delivery import system_mail
from delivery.credentials import CredentialsChange, workspace_credentials_update
from delivery.models import Delivery, DeliveryKind
from delivery.senders import channel_sender
from delivery.states import DeliveryStatus as S
from sandbox.sendgrid import SendGridFake
from tests.contacts.factories import evidence, make_contact
from tests.workspaces import bearer, make_api_key, make_member, workspace_for_tests

pytestmark = [pytest.mark.django_db]

WORKSPACE_KEY = "SG.workspace-own-key"


@pytest.fixture
def sendgrid(settings: Any) -> Iterator[SendGridFake]:
    with SendGridFake(api_key="install-key", extra_api_keys=(WORKSPACE_KEY,)) as fake:
        settings.ANYMAIL = {
            **settings.ANYMAIL,
            "SENDGRID_API_KEY": fake.api_key,
            "SENDGRID_API_URL": f"{fake.url}/v3/",
            "REQUESTS_TIMEOUT": 2.0,
        }
        settings.DELIVERY_EMAIL_FAILOVER_BACKEND = ""
        settings.DELIVERY_RETRY_BASE_S = 0.2
        channel_sender.cache_clear()
        yield fake
    channel_sender.cache_clear()


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids handed to the task queue (the task itself is called by each test)."""
    handed: list[int] = []

    def enqueue(*, delivery_id: int, countdown: float = 0.0) -> bool:
        handed.append(delivery_id)
        return True

    monkeypatch.setattr(system_mail, "system_mail_enqueue", enqueue)
    return handed


def _due(delivery_id: int) -> None:
    """The back-off has passed."""
    Delivery.objects.filter(pk=delivery_id).update(not_before=timezone.now() - timedelta(seconds=1))


def _pending(contact_id: int) -> bool:
    return Consent.objects.filter(
        contact_id=contact_id, channel=Channel.EMAIL, state=ConsentState.PENDING
    ).exists()


def test_the_kinds_contacts_asks_for_are_the_delivery_kinds() -> None:
    assert {KIND_DOUBLE_OPT_IN, KIND_PREFERENCES, KIND_EMAIL_CHANGE} == set(
        system_mail.SYSTEM_MAIL_KINDS
    )


def test_a_double_opt_in_is_a_delivery_sent_with_the_workspaces_account_in_its_language(
    sendgrid: SendGridFake, queued: list[int], client: Client
) -> None:
    workspace = workspace_for_tests()
    owner = make_member(workspace=workspace, role=Role.OWNER, username="owner-doi")
    workspace_credentials_update(
        access=access_for(owner, workspace),
        workspace=workspace,
        change=CredentialsChange(
            plain={"sendgrid_from_email": "hello@shop.example", "sendgrid_from_name": "Shop"},
            secrets={"sendgrid_api_key": WORKSPACE_KEY},
        ),
    )
    contact = make_contact(email="doi.it@example.org", locale="it-IT")
    client.defaults.update(bearer(make_api_key(user=owner, workspace=workspace)))
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(
            f"/api/v1/contacts/{contact.pk}/consent/",
            {"channel": "email", "action": "double_opt_in", "source": "form"},
            content_type="application/json",
        )
    assert response.status_code == 200, response.content
    row = Delivery.objects.get(contact=contact)
    assert (row.kind, row.address, row.purpose, row.status, row.message_id) == (
        DeliveryKind.DOUBLE_OPT_IN,
        "doi.it@example.org",
        Purpose.MARKETING,
        S.QUEUED,
        None,
    )
    assert queued == [row.pk]
    assert sendgrid.personalizations == []  # nothing leaves inside the request

    assert system_mail.system_mail_send(delivery_id=row.pk).status == S.SENT
    [mail] = sendgrid.personalizations
    assert mail.to == ["doi.it@example.org"]
    assert mail.api_key == WORKSPACE_KEY
    assert mail.from_email == "hello@shop.example"
    assert mail.subject == "Confermi la Sua iscrizione"
    assert "/confirm/" in mail.rendered("text/plain")
    assert 'href="' in mail.rendered("text/html")
    row.refresh_from_db()
    assert row.status == S.SENT and row.provider_message_id
    assert list(row.events.values_list("status", flat=True)) == [S.QUEUED, S.SENDING, S.SENT]
    # A redelivered task finds nothing to send.
    system_mail.system_mail_send(delivery_id=row.pk)
    assert len(sendgrid.personalizations) == 1
    assert _pending(contact.pk)


def test_a_429_and_an_outage_are_retried_with_back_off_and_the_consent_stays_pending(
    sendgrid: SendGridFake, queued: list[int]
) -> None:
    contact = make_contact(email="doi.retry@example.org")
    with TestCase.captureOnCommitCallbacks(execute=True):
        consent_request_double_opt_in(contact=contact, evidence=evidence())
    [delivery_id] = queued

    sendgrid.set_fault(mode="rate_limit", retry_after_s=3, remaining=1)
    result = system_mail.system_mail_send(delivery_id=delivery_id)
    assert result.status == S.QUEUED and result.retry_after_s is not None
    assert result.retry_after_s >= 3  # at least what SendGrid asked for
    row = Delivery.objects.get(pk=delivery_id)
    assert (row.status, row.error_code, row.attempt) == (S.QUEUED, "sendgrid_429", 1)
    assert row.not_before is not None and row.not_before > timezone.now()
    # An early copy of the task does not jump the back-off.
    assert system_mail.system_mail_send(delivery_id=delivery_id).status == S.QUEUED
    assert Delivery.objects.get(pk=delivery_id).attempt == 1

    sendgrid.set_fault(mode="error", status=503, remaining=1)
    _due(delivery_id)
    assert system_mail.system_mail_send(delivery_id=delivery_id).retry_after_s is not None
    assert Delivery.objects.get(pk=delivery_id).error_code == "sendgrid_503"
    assert _pending(contact.pk)

    _due(delivery_id)
    assert system_mail.system_mail_send(delivery_id=delivery_id).status == S.SENT
    assert [p.to for p in sendgrid.personalizations] == [["doi.retry@example.org"]]
    assert Delivery.objects.get(pk=delivery_id).attempt == 3
    assert _pending(contact.pk)  # the person still confirms it themselves


def test_sendgrid_down_until_the_attempts_run_out_fails_the_row_with_the_reason(
    sendgrid: SendGridFake, queued: list[int], settings: Any
) -> None:
    settings.DELIVERY_MAX_ATTEMPTS = 2
    contact = make_contact(email="doi.down@example.org")
    with TestCase.captureOnCommitCallbacks(execute=True):
        consent_request_double_opt_in(contact=contact, evidence=evidence())
    [delivery_id] = queued
    sendgrid.set_fault(mode="refuse")
    assert system_mail.system_mail_send(delivery_id=delivery_id).retry_after_s is not None
    assert Delivery.objects.get(pk=delivery_id).error_code == "sendgrid_unreachable"
    _due(delivery_id)
    result = system_mail.system_mail_send(delivery_id=delivery_id)
    assert (result.status, result.retry_after_s) == (S.FAILED, None)
    row = Delivery.objects.get(pk=delivery_id)
    assert row.status == S.FAILED
    assert row.error_text.startswith("gave up after 2 attempts")
    assert _pending(contact.pk)


def test_a_mail_no_longer_wanted_is_cancelled_and_asking_twice_joins_the_queued_one(
    sendgrid: SendGridFake, queued: list[int]
) -> None:
    contact = make_contact(email="doi.twice@example.org")
    with TestCase.captureOnCommitCallbacks(execute=True):
        consent_request_double_opt_in(contact=contact, evidence=evidence())
        consent_request_double_opt_in(contact=contact, evidence=evidence())
    assert Delivery.objects.filter(contact=contact).count() == 1
    consent_confirm(contact=contact, purpose=Purpose.MARKETING, evidence=evidence())
    assert system_mail.system_mail_send(delivery_id=queued[0]).status == S.CANCELLED
    assert sendgrid.personalizations == []


def test_a_lost_task_is_handed_over_again_by_the_sweeper(
    sendgrid: SendGridFake, queued: list[int], settings: Any
) -> None:
    contact = make_contact(email="doi.lost@example.org")
    with TestCase.captureOnCommitCallbacks(execute=True):
        consent_request_double_opt_in(contact=contact, evidence=evidence())
    [delivery_id] = queued
    settings.DELIVERY_QUEUED_STALE_S = 1
    Delivery.objects.filter(pk=delivery_id).update(updated_at=timezone.now() - timedelta(seconds=5))
    handed: list[int] = []

    def hand(*, delivery_id: int) -> bool:
        handed.append(delivery_id)
        return True

    assert system_mail.system_mails_sweep(send=hand) == 1
    assert handed == [delivery_id]
