"""Test sends per language: one language's content on one channel to one consenting contact of
the workspace, through the normal send path; refused with the reason otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import TestCase
from rest_framework.test import APIClient

from contacts.consent import consent_grant
from continuity.models import Role
from delivery.dispatch import deliveries_send_chunk
from delivery.models import Delivery, MessageVariant
from delivery.senders import channel_sender
from delivery.states import DeliveryStatus as S
from sandbox.sendgrid import SendGridFake
from tests.campaigns.factories import make_campaign
from tests.contacts.factories import evidence, make_contact
from tests.workspaces import bearer, make_api_key, make_member, make_workspace, workspace_for_tests

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]


@pytest.fixture
def api() -> APIClient:
    workspace = workspace_for_tests()
    user = make_member(workspace=workspace, role=Role.MARKETER)
    client = APIClient()
    client.credentials(**bearer(make_api_key(user=user, workspace=workspace)))
    return client


@pytest.fixture
def sendgrid(settings: Any) -> Iterator[SendGridFake]:
    with SendGridFake(api_key="test-send-key") as fake:
        settings.ANYMAIL = {
            **settings.ANYMAIL,
            "SENDGRID_API_KEY": fake.api_key,
            "SENDGRID_API_URL": f"{fake.url}/v3/",
        }
        channel_sender.cache_clear()
        yield fake
        channel_sender.cache_clear()


def _campaign_with_english() -> Any:
    campaign = make_campaign()
    MessageVariant.objects.create(
        workspace=campaign.workspace,
        message=campaign.message,
        language="en",
        email_subject="ENGLISH TEST SUBJECT",
        email_text="Hello",
    )
    return campaign


def test_a_test_email_in_english_reaches_the_marketer_whatever_their_own_locale(
    api: APIClient, sendgrid: SendGridFake
) -> None:
    campaign = _campaign_with_english()
    me = make_contact(locale="it-IT", email="marketer@example.com")
    consent_grant(contact=me, channel="email", purpose="marketing", evidence=evidence())
    with TestCase.captureOnCommitCallbacks(execute=False):
        response = api.post(
            f"/api/v1/campaigns/{campaign.pk}/test-send/",
            {"channel": "email", "language": "en-US", "contact": me.pk},
            format="json",
        )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == S.QUEUED
    report = deliveries_send_chunk(channel="email", ids=[body["delivery"]])
    assert report.sent == 1
    (received,) = sendgrid.personalizations
    assert (received.to, received.subject) == (["marketer@example.com"], "ENGLISH TEST SUBJECT")
    # The campaign's own message is untouched: the contact can still get it in the reroute.
    assert not Delivery.objects.filter(message=campaign.message).exists()


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        ({"channel": "email", "language": "xx"}, 400, "Unknown language tag"),
        ({"channel": "fax", "language": "en"}, 400, "email, SMS or push"),
        ({"channel": "sms", "language": "en"}, 400, "has not consented to sms"),
    ],
)
def test_a_test_send_is_refused_with_the_reason(
    api: APIClient, payload: dict[str, str], status: int, reason: str
) -> None:
    campaign = _campaign_with_english()
    me = make_contact(phone="+393331234567")
    consent_grant(contact=me, channel="email", purpose="marketing", evidence=evidence())
    response = api.post(
        f"/api/v1/campaigns/{campaign.pk}/test-send/", {**payload, "contact": me.pk}, format="json"
    )
    assert response.status_code == status
    assert reason in str(response.json()["detail"])
    assert not Delivery.objects.exists()


def test_another_workspaces_contact_is_not_found(api: APIClient) -> None:
    campaign = _campaign_with_english()
    stranger = make_contact(workspace=make_workspace())
    consent_grant(contact=stranger, channel="email", purpose="marketing", evidence=evidence())
    response = api.post(
        f"/api/v1/campaigns/{campaign.pk}/test-send/",
        {"channel": "email", "language": "en", "contact": stranger.pk},
        format="json",
    )
    assert response.status_code == 404
    assert not Delivery.objects.exists()
