"""Test sends through the API, per language: one language's content on one channel to the
address given, through the workspace's provider account, marked [TEST] and never a Delivery;
refused with the reason otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from continuity.models import Role
from delivery.models import Delivery, MessageVariant
from sandbox.sendgrid import SendGridFake
from tests.campaigns.factories import make_campaign
from tests.contacts.factories import make_contact
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


def test_a_test_email_in_english_reaches_the_marketer_marked_and_never_counted(
    api: APIClient, sendgrid: SendGridFake
) -> None:
    campaign = _campaign_with_english()
    response = api.post(
        f"/api/v1/campaigns/{campaign.pk}/test-send/",
        {"channel": "email", "language": "en-US", "address": "marketer@example.com"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["sent"] is True
    (received,) = sendgrid.personalizations
    assert received.to == ["marketer@example.com"]
    assert received.subject == "[TEST] ENGLISH TEST SUBJECT"
    # No Delivery row: a test is never planned, counted or reported.
    assert not Delivery.objects.exists()


def test_without_a_language_the_test_takes_the_picked_contacts(
    api: APIClient, sendgrid: SendGridFake
) -> None:
    campaign = _campaign_with_english()
    english = make_contact(locale="en-GB", first_name="Ann")
    response = api.post(
        f"/api/v1/campaigns/{campaign.pk}/test-send/",
        {"channel": "email", "address": "marketer@example.com", "contact": english.pk},
        format="json",
    )
    assert response.status_code == 200, response.json()
    (received,) = sendgrid.personalizations
    assert received.subject == "[TEST] ENGLISH TEST SUBJECT"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"channel": "email", "language": "xx", "address": "a@example.com"}, "language"),
        ({"channel": "fax", "address": "a@example.com"}, "email, SMS or web push"),
        ({"channel": "email", "address": "not an address"}, "email"),
        ({"channel": "email"}, "address"),
    ],
)
def test_a_test_send_is_refused_with_the_reason(
    api: APIClient, payload: dict[str, str], reason: str
) -> None:
    campaign = _campaign_with_english()
    response = api.post(f"/api/v1/campaigns/{campaign.pk}/test-send/", payload, format="json")
    assert response.status_code == 400
    assert reason in str(response.json()["detail"])
    assert not Delivery.objects.exists()


def test_another_workspaces_contact_is_not_found(api: APIClient) -> None:
    campaign = _campaign_with_english()
    stranger = make_contact(workspace=make_workspace())
    response = api.post(
        f"/api/v1/campaigns/{campaign.pk}/test-send/",
        {"channel": "email", "address": "a@example.com", "contact": stranger.pk},
        format="json",
    )
    assert response.status_code == 404
    assert not Delivery.objects.exists()
