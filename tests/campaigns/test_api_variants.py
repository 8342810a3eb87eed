"""/api/v1/campaigns/: the fallback message and the post per language, written and read with
the campaign; an unknown or repeated language tag is a 400 with the reason; the status counts
deliveries per content language."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from campaigns.models import CampaignPostVariant
from contacts.models import Channel
from continuity.models import Role, Workspace
from delivery.models import Delivery, MessageVariant
from tests.campaigns.factories import make_campaign
from tests.contacts.factories import make_contact
from tests.workspaces import bearer, make_api_key, make_member, workspace_for_tests

pytestmark = pytest.mark.django_db

ITALIAN = {
    "language": "it-IT",
    "email_subject": "Saldi, {{ first_name }}",
    "email_text": "Ciao {{ first_name }}",
    "sms_text": "Saldi: è già ora",
}


@pytest.fixture
def api() -> APIClient:
    workspace = workspace_for_tests()
    user = make_member(workspace=workspace, role=Role.MARKETER, username="marketer")
    client = APIClient()
    client.credentials(**bearer(make_api_key(user=user, workspace=workspace)))
    return client


def test_variants_are_written_and_read_with_the_campaign(api: APIClient) -> None:
    created = api.post(
        "/api/v1/campaigns/",
        {
            "name": "Autunno",
            "text": "Autumn sale",
            "message_variants": [ITALIAN, {"language": "en", "sms_text": "Sale now"}],
            "post_variants": [{"language": "it", "text": "Saldi d'autunno"}],
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body: dict[str, Any] = created.json()
    # The message is made with the campaign when content arrives without one.
    assert body["message"] is not None
    assert [v["language"] for v in body["message_variants"]] == ["en", "it"]
    assert body["message_variants"][1]["sms_text"] == "Saldi: è già ora"
    assert body["post_variants"] == [
        {"language": "it", "text": "Saldi d'autunno", "link": "", "image_url": ""}
    ]
    # A list replaces the variants of its kind; leaving it out keeps them.
    patched = api.patch(
        f"/api/v1/campaigns/{body['id']}/",
        {"message_variants": [{"language": "de", "sms_text": "Jetzt"}]},
        format="json",
    )
    assert patched.status_code == 200, patched.json()
    assert [v["language"] for v in patched.json()["message_variants"]] == ["de"]
    assert [v["language"] for v in patched.json()["post_variants"]] == ["it"]
    assert MessageVariant.objects.get().workspace_id == workspace_for_tests().pk
    listed = api.get("/api/v1/campaigns/").json()
    assert listed["results"][0]["message_variants"][0]["language"] == "de"


@pytest.mark.parametrize(
    ("variants", "reason"),
    [
        ([{"language": "xx", "sms_text": "?"}], 'Unknown language tag "xx"'),
        ([{"language": "", "sms_text": "?"}], "language"),
        ([{"language": "it", "sms_text": "a"}, {"language": "it_IT"}], "more than once"),
        ([{"language": "it", "sms_text": "{% load x %}"}], "sms_text"),
        ([{"sms_text": "no language"}], "needs its language"),
    ],
)
def test_a_bad_language_tag_is_a_400_with_the_reason(
    api: APIClient, variants: list[dict[str, str]], reason: str
) -> None:
    campaign = make_campaign()
    response = api.patch(
        f"/api/v1/campaigns/{campaign.pk}/", {"message_variants": variants}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_campaign"
    assert reason in str(response.json()["detail"])
    assert not MessageVariant.objects.exists()
    bad_post = api.patch(
        f"/api/v1/campaigns/{campaign.pk}/",
        {"post_variants": [{"language": "klingon", "text": "x"}]},
        format="json",
    )
    assert bad_post.status_code == 400
    assert "Unknown language tag" in str(bad_post.json()["detail"])
    assert not CampaignPostVariant.objects.exists()


def test_the_status_counts_deliveries_per_content_language(api: APIClient) -> None:
    Workspace.objects.filter(pk=workspace_for_tests().pk).update(language="it")
    campaign = make_campaign()
    assert campaign.message is not None
    MessageVariant.objects.create(
        workspace=campaign.workspace, message=campaign.message, language="en", sms_text="Hi"
    )
    for locale in ("it", "en-GB", "de", "en"):
        Delivery.objects.create(
            workspace_id=campaign.workspace_id,
            message=campaign.message,
            contact=make_contact(locale=locale),
            channel=Channel.SMS,
            status="sent",
        )
    body = api.get(f"/api/v1/campaigns/{campaign.pk}/status/").json()
    assert body["languages"] == {"sms": {"it": {"sent": 2}, "en": {"sent": 2}}}
